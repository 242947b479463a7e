//! Customer profiles (the optional `customers` input, docs/design.md §2): one row per customer with the
//! attributes that make leaving costly (docs/design.md §3 switching costs read them). The input crate
//! builds [`Profiles`] after validation; [`profile_features`] aligns them with the run's index.

use rayon::prelude::*;

use crate::{Day, FeatureTable, Labels, Nullable, Values};

/// Validated profiles, one row per customer id (ids unique), as columns.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Profiles {
    pub customer_ids: Vec<String>,
    pub signup_day: Nullable<Day>,
    pub membership_tier: Labels,
    /// Position of the tier in the configured order, 1 = lowest; null without an order.
    pub membership_tier_rank: Nullable<i64>,
    pub points_balance: Nullable<f64>,
    pub subscription_active: Nullable<bool>,
    pub saved_payment_methods: Nullable<i64>,
    pub saved_addresses: Nullable<i64>,
    pub email_opt_in: Nullable<bool>,
    pub referrals: Nullable<i64>,
    pub reviews_written: Nullable<i64>,
    /// Profile columns the input had (canonical names): the others are null for everyone.
    pub columns_present: Vec<String>,
}

impl Profiles {
    /// Profiles (rows), also after the ids moved into an index.
    pub fn len(&self) -> usize {
        self.signup_day.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Profiles `rows` (positions), in that order: e.g. one partition's customers.
    pub fn select(&self, rows: &[usize]) -> Profiles {
        Profiles {
            customer_ids: rows.iter().map(|&r| self.customer_ids[r].clone()).collect(),
            signup_day: self.signup_day.select(rows),
            membership_tier: self.membership_tier.select(rows),
            membership_tier_rank: self.membership_tier_rank.select(rows),
            points_balance: self.points_balance.select(rows),
            subscription_active: self.subscription_active.select(rows),
            saved_payment_methods: self.saved_payment_methods.select(rows),
            saved_addresses: self.saved_addresses.select(rows),
            email_opt_in: self.email_opt_in.select(rows),
            referrals: self.referrals.select(rows),
            reviews_written: self.reviews_written.select(rows),
            columns_present: self.columns_present.clone(),
        }
    }

    /// Per profile, whether it existed on `as_of` (signed up by then, or without a signup
    /// date): the customers this input adds to the index.
    pub fn exists_on(&self, as_of: Day) -> Vec<bool> {
        self.signup_day
            .iter()
            .map(|d| d.is_none_or(|d| d <= as_of))
            .collect()
    }

    /// Ids of the profiles that existed on `as_of` (see [`Profiles::exists_on`]).
    pub fn customers_until(&self, as_of: Day) -> impl Iterator<Item = &str> + '_ {
        self.customer_ids
            .iter()
            .zip(self.exists_on(as_of))
            .filter(|(_, on)| *on)
            .map(|(id, _)| id.as_str())
    }
}

/// The profile columns over an index of `n` customers, where `at[p]` is profile `p`'s index
/// position (`None`: not a customer of the index, e.g. signed up after the as-of day). Customers
/// without a profile are null.
pub fn profile_features(profiles: &Profiles, at: &[Option<u32>], n: usize) -> FeatureTable {
    let mut row: Vec<Option<u32>> = vec![None; n];
    for (p, pos) in at.iter().enumerate() {
        if let Some(pos) = pos {
            row[*pos as usize] = Some(p as u32);
        }
    }
    fn spread<T: Copy + Default + Send + Sync>(
        row: &[Option<u32>],
        v: &Nullable<T>,
    ) -> Nullable<T> {
        row.par_iter()
            .map(|r| r.and_then(|p| v.get(p as usize)))
            .collect()
    }
    let tier = &profiles.membership_tier;
    let tier_codes: Nullable<u32> = spread(&row, tier.codes());
    let mut t = FeatureTable::new(n);
    use Values::{Bool, Date, Float, Int, Text};
    t.push(
        "signup_date",
        "profile: signup day (date)",
        Date(spread(&row, &profiles.signup_day)),
    );
    t.push(
        "membership_tier",
        "profile: membership tier as exported",
        Text(Labels::new(tier.names().to_vec(), tier_codes)),
    );
    t.push(
        "membership_tier_rank",
        "profile: tier position in customers.tier_order, 1 = lowest",
        Int(spread(&row, &profiles.membership_tier_rank)),
    );
    t.push(
        "points_balance",
        "profile: loyalty points balance",
        Float(spread(&row, &profiles.points_balance)),
    );
    t.push(
        "subscription_active",
        "profile: an active subscription",
        Bool(spread(&row, &profiles.subscription_active)),
    );
    t.push(
        "saved_payment_methods",
        "profile: saved payment methods (count)",
        Int(spread(&row, &profiles.saved_payment_methods)),
    );
    t.push(
        "saved_addresses",
        "profile: saved addresses (count)",
        Int(spread(&row, &profiles.saved_addresses)),
    );
    t.push(
        "email_opt_in",
        "profile: opted in to e-mail",
        Bool(spread(&row, &profiles.email_opt_in)),
    );
    t.push(
        "referrals",
        "profile: customers referred (count)",
        Int(spread(&row, &profiles.referrals)),
    );
    t.push(
        "reviews_written",
        "profile: reviews written (count)",
        Int(spread(&row, &profiles.reviews_written)),
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CustomerIndex;

    #[test]
    fn profiles_align_with_the_index_and_respect_the_as_of() {
        let p = Profiles {
            customer_ids: vec!["b".into(), "z".into()],
            signup_day: vec![Some(5), Some(50)].into(),
            membership_tier: [Some("gold"), None].into_iter().collect(),
            membership_tier_rank: vec![Some(3), None].into(),
            points_balance: vec![Some(120.0), Some(1.0)].into(),
            subscription_active: vec![Some(true), None].into(),
            saved_payment_methods: vec![Some(2), None].into(),
            saved_addresses: vec![None, None].into(),
            email_opt_in: vec![Some(false), None].into(),
            referrals: vec![Some(0), None].into(),
            reviews_written: vec![Some(4), None].into(),
            columns_present: vec![],
        };
        assert_eq!(p.customers_until(10).collect::<Vec<_>>(), ["b"]);
        let index = CustomerIndex::new(["a", "b", "z"].map(String::from));
        let on = p.exists_on(10);
        let at: Vec<Option<u32>> = index
            .positions(&p.customer_ids)
            .into_iter()
            .zip(on)
            .map(|(pos, on)| pos.filter(|_| on))
            .collect();
        let t = profile_features(&p, &at, index.len());
        assert_eq!(
            t.float("points_balance").unwrap().to_vec(),
            [None, Some(120.0), None]
        );
        assert_eq!(
            t.int("membership_tier_rank").unwrap().to_vec(),
            [None, Some(3), None]
        );
        let Values::Text(tiers) = &t.column("membership_tier").unwrap().values else {
            panic!("membership_tier is text")
        };
        assert_eq!(tiers.iter().collect::<Vec<_>>(), [None, Some("gold"), None]);
    }
}
