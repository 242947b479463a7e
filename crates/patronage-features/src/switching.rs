//! Switching-cost features (Burnham, Frels & Mahajan 2003; docs/design.md §3): what leaving would cost a
//! customer, in three facets scored in [0, 1], and their mean `switching_cost_index`.
//!
//! Each facet is the mean of the components whose input exists for the customer; a facet with
//! no component is null, never a fake zero, and the index averages the facets that exist.
//! Components (each in [0, 1], saturating at a documented level):
//! - procedural (time and effort sunk into learning and setting up): `tenure_days / 730`,
//!   `saved_payment_methods / 2`, `saved_addresses / 2`, `categories_bought / 5`,
//!   `sessions / 50` (lifetime sessions, from the clickstream);
//! - financial (benefits lost): `points_balance` as its percentile rank among customers with a
//!   balance, `(membership_tier_rank − 1) / (tiers − 1)`, `subscription_active` (1 or 0);
//! - relational (personal bonds with the shop): `reviews_written / 3`, `referrals / 2`,
//!   `email_opt_in` (1 or 0).
//!
//! Support contacts (relational) and prepaid value (financial) join when those inputs arrive. Pure: reads the feature table by name, appends four columns.

use crate::{FeatureTable, Values};

/// One component: the feature it reads and how it maps to [0, 1].
struct Component {
    feature: &'static str,
    scale: Scale,
}

enum Scale {
    /// min(value / saturation, 1) for a non-negative value.
    Saturating(f64),
    /// Percentile rank among the customers that have a value (ties share the mean rank).
    Percentile,
    /// (rank − 1) / (max rank − 1).
    Rank,
    /// true = 1, false = 0.
    Flag,
}

const FACETS: [(&str, &str, &[Component]); 3] = [
    (
        "switching_cost_procedural",
        "procedural switching cost in [0, 1]: mean of tenure/730 d, saved payment methods/2, saved addresses/2, categories bought/5, lifetime sessions/50 (each capped at 1) over those known",
        &[
            Component { feature: "tenure_days", scale: Scale::Saturating(730.0) },
            Component { feature: "saved_payment_methods", scale: Scale::Saturating(2.0) },
            Component { feature: "saved_addresses", scale: Scale::Saturating(2.0) },
            Component { feature: "categories_bought", scale: Scale::Saturating(5.0) },
            Component { feature: "sessions", scale: Scale::Saturating(50.0) },
        ],
    ),
    (
        "switching_cost_financial",
        "financial switching cost in [0, 1]: mean of points-balance percentile, tier position (0 lowest, 1 highest), active subscription over those known",
        &[
            Component { feature: "points_balance", scale: Scale::Percentile },
            Component { feature: "membership_tier_rank", scale: Scale::Rank },
            Component { feature: "subscription_active", scale: Scale::Flag },
        ],
    ),
    (
        "switching_cost_relational",
        "relational switching cost in [0, 1]: mean of reviews written/3, referrals/2 (capped at 1), e-mail opt-in over those known",
        &[
            Component { feature: "reviews_written", scale: Scale::Saturating(3.0) },
            Component { feature: "referrals", scale: Scale::Saturating(2.0) },
            Component { feature: "email_opt_in", scale: Scale::Flag },
        ],
    ),
];

/// The features the switching costs read (their components' inputs).
pub fn switching_inputs() -> impl Iterator<Item = &'static str> {
    FACETS.iter().flat_map(|f| f.2.iter().map(|c| c.feature))
}

/// The columns [`add_switching_costs`] appends.
pub const SWITCHING_OUTPUTS: [&str; 4] = [
    "switching_cost_procedural",
    "switching_cost_financial",
    "switching_cost_relational",
    "switching_cost_index",
];

/// A component's input values (booleans as 0/1); `None` when the table lacks the feature.
fn raw(t: &FeatureTable, feature: &str) -> Option<Vec<Option<f64>>> {
    let column = t.column(feature).ok()?;
    match &column.values {
        Values::Bool(v) => Some(
            v.iter()
                .map(|b| b.map(|b| f64::from(u8::from(b))))
                .collect(),
        ),
        _ => t.numeric(feature).ok(),
    }
}

/// What the components ranked against the whole customer base need to know about it: the
/// points balances (distinct values ascending, with counts) for percentile ranks, the highest
/// membership tier rank, and which components any customer has. Mergeable: the references of
/// disjoint partitions merge into those of their union, so a partition's customers get the
/// switching costs they get among every customer.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SwitchingRefs {
    pub points: Vec<(f64, u64)>,
    pub tier_max: f64,
    /// Component features some customer has a value of, ascending.
    pub present: Vec<String>,
}

impl SwitchingRefs {
    pub fn of(t: &FeatureTable) -> Self {
        let mut refs = SwitchingRefs {
            tier_max: 1.0,
            ..SwitchingRefs::default()
        };
        for feature in switching_inputs() {
            let Some(values) = raw(t, feature) else {
                continue;
            };
            if values.iter().any(Option::is_some) {
                refs.present.push(feature.to_string());
            }
            match feature {
                "points_balance" => {
                    let mut v: Vec<f64> = values.into_iter().flatten().collect();
                    v.sort_by(f64::total_cmp);
                    refs.points = counted(v.into_iter().map(|x| (x, 1)));
                }
                "membership_tier_rank" => {
                    refs.tier_max = values.iter().flatten().fold(1.0f64, |m, v| m.max(*v));
                }
                _ => {}
            }
        }
        refs.present.sort();
        refs
    }

    pub fn merge(parts: &[SwitchingRefs]) -> Self {
        let mut points: Vec<(f64, u64)> = parts.iter().flat_map(|p| p.points.clone()).collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut present: Vec<String> = parts.iter().flat_map(|p| p.present.clone()).collect();
        present.sort();
        present.dedup();
        SwitchingRefs {
            points: counted(points.into_iter()),
            tier_max: parts.iter().fold(1.0f64, |m, p| m.max(p.tier_max)),
            present,
        }
    }

    /// The mid-rank percentile of a points balance among every customer's (`below[k]`: the
    /// balances below the `k`-th distinct one, from [`SwitchingRefs::below`]).
    fn points_percentile(&self, below: &[u64], v: f64) -> f64 {
        let n = below.last().copied().unwrap_or(0);
        let at = self.points.partition_point(|p| p.0.total_cmp(&v).is_lt());
        let start = below[at];
        let count = self.points.get(at).map_or(1, |p| p.1);
        let mid = (start + start + count - 1) as f64 / 2.0;
        if n > 1 {
            mid / (n - 1) as f64
        } else {
            0.5
        }
    }

    /// Per distinct balance, how many balances are below it; then the total.
    fn below(&self) -> Vec<u64> {
        let mut out = Vec::with_capacity(self.points.len() + 1);
        let mut sum = 0;
        out.push(0);
        for p in &self.points {
            sum += p.1;
            out.push(sum);
        }
        out
    }
}

/// Equal values (ascending) joined, their counts summed.
fn counted(sorted: impl Iterator<Item = (f64, u64)>) -> Vec<(f64, u64)> {
    let mut out: Vec<(f64, u64)> = Vec::new();
    for (x, c) in sorted {
        match out.last_mut() {
            Some(last) if last.0 == x => last.1 += c,
            _ => out.push((x, c)),
        }
    }
    out
}

/// Per customer, the component's value in [0, 1] (null where unknown); `None` when no customer
/// of the base has the feature.
fn component(t: &FeatureTable, c: &Component, refs: &SwitchingRefs) -> Option<Vec<Option<f64>>> {
    if !refs.present.iter().any(|p| p == c.feature) {
        return None;
    }
    let values = raw(t, c.feature).unwrap_or_else(|| vec![None; t.len()]);
    Some(match c.scale {
        Scale::Saturating(s) => values
            .iter()
            .map(|v| v.map(|v| (v.max(0.0) / s).min(1.0)))
            .collect(),
        Scale::Flag => values,
        Scale::Rank => {
            let max = refs.tier_max;
            values
                .iter()
                .map(|v| {
                    v.map(|v| {
                        if max > 1.0 {
                            (v - 1.0) / (max - 1.0)
                        } else {
                            0.0
                        }
                    })
                })
                .collect()
        }
        Scale::Percentile => {
            let below = refs.below();
            values
                .iter()
                .map(|v| v.map(|v| refs.points_percentile(&below, v)))
                .collect()
        }
    })
}

/// Mid-rank percentiles in [0, 1]: equal values get equal ranks; one value alone gets 0.5 (the
/// definition [`SwitchingRefs`] ranks by; kept as the tests' reference).
#[cfg(test)]
fn percentile_ranks(values: &[Option<f64>]) -> Vec<Option<f64>> {
    let mut known: Vec<(f64, usize)> = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (v, i)))
        .collect();
    known.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = known.len();
    let mut out = vec![None; values.len()];
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && known[end].0 == known[start].0 {
            end += 1;
        }
        // Mean of the 0-based ranks start..end, over n − 1.
        let mid = (start + end - 1) as f64 / 2.0;
        let p = if n > 1 { mid / (n - 1) as f64 } else { 0.5 };
        for k in &known[start..end] {
            out[k.1] = Some(p);
        }
        start = end;
    }
    out
}

/// Appends `switching_cost_procedural`, `_financial`, `_relational` and `switching_cost_index`
/// to `table`, its customers being the whole base; returns, per facet, the features that fed it
/// (for the manifest).
pub fn add_switching_costs(table: &mut FeatureTable) -> Vec<(&'static str, Vec<&'static str>)> {
    let refs = SwitchingRefs::of(table);
    add_switching_costs_with(table, &refs)
}

/// [`add_switching_costs`] for customers that may be a part of the base `refs` describes (the
/// columns are replaced where the table has them already).
pub fn add_switching_costs_with(
    table: &mut FeatureTable,
    refs: &SwitchingRefs,
) -> Vec<(&'static str, Vec<&'static str>)> {
    let n = table.len();
    let mut fed = Vec::new();
    let mut facets: Vec<Vec<Option<f64>>> = Vec::new();
    for (name, _, components) in FACETS.iter() {
        let parts: Vec<(&'static str, Vec<Option<f64>>)> = components
            .iter()
            .filter_map(|c| component(table, c, refs).map(|v| (c.feature, v)))
            .collect();
        fed.push((*name, parts.iter().map(|p| p.0).collect()));
        facets.push(mean_of_known(n, parts.iter().map(|p| p.1.as_slice())));
    }
    let index = mean_of_known(n, facets.iter().map(Vec::as_slice));
    for ((name, description, _), values) in FACETS.iter().zip(facets) {
        table.set(name, description, Values::Float(values.into()));
    }
    table.set(
        "switching_cost_index",
        "mean of the switching-cost facets that exist for the customer, in [0, 1]",
        Values::Float(index.into()),
    );
    fed
}

/// Per row, the mean of the non-null values across `parts`; null when all are null.
fn mean_of_known<'a>(n: usize, parts: impl Iterator<Item = &'a [Option<f64>]>) -> Vec<Option<f64>> {
    let mut sum = vec![0.0; n];
    let mut count = vec![0u32; n];
    for part in parts {
        for (i, v) in part.iter().enumerate() {
            if let Some(v) = v {
                sum[i] += v;
                count[i] += 1;
            }
        }
    }
    sum.iter()
        .zip(&count)
        .map(|(s, c)| (*c > 0).then(|| s / f64::from(*c)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facets_average_what_is_known_and_are_null_otherwise() {
        let mut t = FeatureTable::new(3);
        t.push(
            "tenure_days",
            "",
            Values::Int(vec![Some(365), Some(1000), None].into()),
        );
        t.push(
            "saved_payment_methods",
            "",
            Values::Int(vec![Some(2), None, None].into()),
        );
        t.push(
            "points_balance",
            "",
            Values::Float(vec![Some(10.0), Some(30.0), None].into()),
        );
        t.push(
            "subscription_active",
            "",
            Values::Bool(vec![Some(true), Some(false), None].into()),
        );
        let fed = add_switching_costs(&mut t);
        let proc = t.float("switching_cost_procedural").unwrap();
        assert_eq!(proc.to_vec(), [Some(0.75), Some(1.0), None]);
        let fin = t.float("switching_cost_financial").unwrap();
        assert_eq!(fin.to_vec(), [Some(0.5), Some(0.5), None]);
        assert_eq!(
            t.float("switching_cost_relational").unwrap().to_vec(),
            [None, None, None]
        );
        let index = t.float("switching_cost_index").unwrap();
        assert_eq!(index.to_vec(), [Some(0.625), Some(0.75), None]);
        assert_eq!(fed[0].1, ["tenure_days", "saved_payment_methods"]);
        assert!(fed[2].1.is_empty());
    }

    /// Switching costs of a part of the customers, with the references of all of them merged
    /// from the parts', equal the switching costs computed over all of them.
    #[test]
    fn parts_with_merged_references_equal_the_whole() {
        let n = 40;
        let mut t = FeatureTable::new(n);
        let points: Vec<Option<f64>> = (0..n)
            .map(|i| (i % 7 != 0).then(|| ((i * 37) % 11) as f64 * 50.0))
            .collect();
        t.push("points_balance", "", Values::Float(points.clone().into()));
        let tiers: Vec<Option<i64>> = (0..n).map(|i| Some((i % 3) as i64 + 1)).collect();
        t.push("membership_tier_rank", "", Values::Int(tiers.into()));
        let tenure: Vec<Option<i64>> = (0..n).map(|i| Some(i as i64 * 30)).collect();
        t.push("tenure_days", "", Values::Int(tenure.into()));
        // Only customers of the first part subscribe: the second part alone lacks it.
        let sub: Vec<Option<bool>> = (0..n).map(|i| (i < 10).then_some(i % 2 == 0)).collect();
        t.push("subscription_active", "", Values::Bool(sub.into()));
        let mut whole = t.clone();
        add_switching_costs(&mut whole);
        assert_eq!(
            whole.float("switching_cost_financial").unwrap().to_vec()[1].map(|v| v > 0.0),
            Some(true)
        );
        let rows: [Vec<usize>; 2] = [(0..n).step_by(2).collect(), (1..n).step_by(2).collect()];
        let parts: Vec<FeatureTable> = rows.iter().map(|r| t.select(r)).collect();
        let refs = SwitchingRefs::merge(&parts.iter().map(SwitchingRefs::of).collect::<Vec<_>>());
        assert_eq!(refs, SwitchingRefs::of(&t));
        for (r, mut part) in rows.iter().zip(parts) {
            add_switching_costs_with(&mut part, &refs);
            assert_eq!(part, whole.select(r));
        }
        // The ranks are those of the whole base's sorted balances.
        assert_eq!(
            (0..n)
                .map(|i| points[i].map(|v| refs.points_percentile(&refs.below(), v)))
                .collect::<Vec<_>>(),
            percentile_ranks(&points)
        );
    }

    #[test]
    fn percentiles_share_ties() {
        let p = percentile_ranks(&[Some(5.0), None, Some(1.0), Some(5.0), Some(9.0)]);
        assert_eq!(p, [Some(0.5), None, Some(0.0), Some(0.5), Some(1.0)]);
    }
}
