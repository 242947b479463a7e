//! Customer profiles (the optional `customers` input, DESIGN §2): one row per customer with the
//! attributes that make leaving costly (DESIGN §3 switching costs read them). The input crate
//! builds [`Profiles`] after validation; [`profile_features`] aligns them with the run's index.

use crate::{CustomerIndex, Day, FeatureTable, Values};

/// Validated profiles, one row per customer id (ids unique).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profiles {
    pub customer_ids: Vec<String>,
    pub signup_day: Vec<Option<Day>>,
    pub membership_tier: Vec<Option<String>>,
    /// Position of the tier in the configured order, 1 = lowest; null without an order.
    pub membership_tier_rank: Vec<Option<i64>>,
    pub points_balance: Vec<Option<f64>>,
    pub subscription_active: Vec<Option<bool>>,
    pub saved_payment_methods: Vec<Option<i64>>,
    pub saved_addresses: Vec<Option<i64>>,
    pub email_opt_in: Vec<Option<bool>>,
    pub referrals: Vec<Option<i64>>,
    pub reviews_written: Vec<Option<i64>>,
    /// Profile columns the input had (canonical names): the others are null for everyone.
    pub columns_present: Vec<String>,
}

impl Profiles {
    pub fn len(&self) -> usize {
        self.customer_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.customer_ids.is_empty()
    }

    /// Ids of the profiles that existed on `as_of` (signed up by then, or without a signup
    /// date): the customers this input adds to the index.
    pub fn customers_until(&self, as_of: Day) -> impl Iterator<Item = &str> + '_ {
        self.customer_ids
            .iter()
            .zip(&self.signup_day)
            .filter(move |(_, d)| d.is_none_or(|d| d <= as_of))
            .map(|(id, _)| id.as_str())
    }
}

/// The profile columns over `index` (null for customers without a profile, or whose profile
/// starts after `as_of`).
pub fn profile_features(profiles: &Profiles, index: &CustomerIndex, as_of: Day) -> FeatureTable {
    let at = index.positions(&profiles.customer_ids);
    let n = index.len();
    let mut row: Vec<Option<usize>> = vec![None; n];
    for (p, pos) in at.iter().enumerate() {
        if let Some(pos) = pos {
            if profiles.signup_day[p].is_none_or(|d| d <= as_of) {
                row[*pos as usize] = Some(p);
            }
        }
    }
    fn spread<T: Clone>(row: &[Option<usize>], v: &[Option<T>]) -> Vec<Option<T>> {
        row.iter().map(|r| r.and_then(|p| v[p].clone())).collect()
    }
    let mut t = FeatureTable::new(n);
    use Values::{Bool, Date, Float, Int, Text};
    t.push(
        "signup_date",
        "profile: signup day (date)",
        Date(spread(&row, &profiles.signup_day).into()),
    );
    t.push(
        "membership_tier",
        "profile: membership tier as exported",
        Text(spread(&row, &profiles.membership_tier)),
    );
    t.push(
        "membership_tier_rank",
        "profile: tier position in customers.tier_order, 1 = lowest",
        Int(spread(&row, &profiles.membership_tier_rank).into()),
    );
    t.push(
        "points_balance",
        "profile: loyalty points balance",
        Float(spread(&row, &profiles.points_balance).into()),
    );
    t.push(
        "subscription_active",
        "profile: an active subscription",
        Bool(spread(&row, &profiles.subscription_active).into()),
    );
    t.push(
        "saved_payment_methods",
        "profile: saved payment methods (count)",
        Int(spread(&row, &profiles.saved_payment_methods).into()),
    );
    t.push(
        "saved_addresses",
        "profile: saved addresses (count)",
        Int(spread(&row, &profiles.saved_addresses).into()),
    );
    t.push(
        "email_opt_in",
        "profile: opted in to e-mail",
        Bool(spread(&row, &profiles.email_opt_in).into()),
    );
    t.push(
        "referrals",
        "profile: customers referred (count)",
        Int(spread(&row, &profiles.referrals).into()),
    );
    t.push(
        "reviews_written",
        "profile: reviews written (count)",
        Int(spread(&row, &profiles.reviews_written).into()),
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_align_with_the_index_and_respect_the_as_of() {
        let p = Profiles {
            customer_ids: vec!["b".into(), "z".into()],
            signup_day: vec![Some(5), Some(50)],
            membership_tier: vec![Some("gold".into()), None],
            membership_tier_rank: vec![Some(3), None],
            points_balance: vec![Some(120.0), Some(1.0)],
            subscription_active: vec![Some(true), None],
            saved_payment_methods: vec![Some(2), None],
            saved_addresses: vec![None, None],
            email_opt_in: vec![Some(false), None],
            referrals: vec![Some(0), None],
            reviews_written: vec![Some(4), None],
            columns_present: vec![],
        };
        assert_eq!(p.customers_until(10).collect::<Vec<_>>(), ["b"]);
        let index = CustomerIndex::new(["a", "b", "z"].map(String::from));
        let t = profile_features(&p, &index, 10);
        assert_eq!(
            t.float("points_balance").unwrap().to_vec(),
            [None, Some(120.0), None]
        );
        assert_eq!(
            t.int("membership_tier_rank").unwrap().to_vec(),
            [None, Some(3), None]
        );
    }
}
