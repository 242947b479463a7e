//! Exact, mergeable distributions of one measure over customers: every distinct value with its
//! count. Everything the segments need from the whole customer base — RFM score cut points, value
//! tier cut points, percentiles and medians — is a function of the multiset of values, so it is
//! computed from a [`Distribution`]; distributions of disjoint sets of customers (partitions)
//! merge into the distribution of their union, exactly, in any grouping. A partitioned run
//! therefore scores every customer as a single run over all of them does (scale-out, #17).
//!
//! Its size is the number of distinct values, not of customers: a few hundred for recency and
//! frequency, and for money at most one entry per customer.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::scores::Direction;
use crate::tiers::{TierParams, ValueTier};

/// Distinct values ascending (`f64::total_cmp` order; NaN never enters) and their counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    values: Vec<f64>,
    counts: Vec<u64>,
    total: u64,
}

impl Distribution {
    /// The distribution of `values` (NaN ignored).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
        v.par_sort_unstable_by(f64::total_cmp);
        let mut d = Distribution {
            total: v.len() as u64,
            ..Distribution::default()
        };
        for x in v {
            match d.values.last() {
                Some(last) if last.total_cmp(&x).is_eq() => {
                    *d.counts.last_mut().expect("a count per value") += 1;
                }
                _ => {
                    d.values.push(x);
                    d.counts.push(1);
                }
            }
        }
        d
    }

    /// The distribution of values given with their counts (NaN ignored), in any order.
    pub fn of_counted(values: impl IntoIterator<Item = (f64, u64)>) -> Self {
        let mut pairs: Vec<(f64, u64)> = values.into_iter().filter(|p| !p.0.is_nan()).collect();
        pairs.par_sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let mut d = Distribution::default();
        for (x, c) in pairs {
            d.total += c;
            match d.values.last() {
                Some(last) if last.total_cmp(&x).is_eq() => {
                    *d.counts.last_mut().expect("a count per value") += c;
                }
                _ => {
                    d.values.push(x);
                    d.counts.push(c);
                }
            }
        }
        d
    }

    /// The distribution of the present values of `values`.
    pub fn of_present(values: &[Option<f64>]) -> Self {
        Distribution::of(values.iter().flatten().copied())
    }

    /// The distribution of the union of the customers of `parts` (disjoint sets).
    pub fn merge(parts: &[Distribution]) -> Self {
        Distribution::of_counted(parts.iter().flat_map(|p| p.pairs()))
    }

    /// Customers counted.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Distinct values.
    pub fn distinct(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// (value, count) pairs, ascending.
    pub fn pairs(&self) -> impl DoubleEndedIterator<Item = (f64, u64)> + '_ {
        self.values.iter().copied().zip(self.counts.iter().copied())
    }

    /// The value at 0-based position `k` of the sorted values, counts expanded.
    fn at(&self, k: u64, cumulative: &[u64]) -> f64 {
        let i = cumulative.partition_point(|&c| c <= k);
        self.values[i]
    }

    fn cumulative(&self) -> Vec<u64> {
        self.counts
            .iter()
            .scan(0u64, |s, &c| {
                *s += c;
                Some(*s)
            })
            .collect()
    }

    /// The `q` quantile (0..=1), linear between the order statistics around `q · (n − 1)` (as
    /// numpy's default); `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let cumulative = self.cumulative();
        let pos = q * (self.total - 1) as f64;
        let (lo, hi) = (pos.floor() as u64, pos.ceil() as u64);
        let (a, b) = (self.at(lo, &cumulative), self.at(hi, &cumulative));
        Some(a + (b - a) * (pos - lo as f64))
    }

    /// The upper median: the value at position ⌊n / 2⌋ of the sorted values.
    pub fn upper_median(&self) -> Option<f64> {
        (self.total > 0).then(|| self.at(self.total / 2, &self.cumulative()))
    }

    /// The 1–5 score cut points (see [`ScoreCuts`]) of the tie-aware quintile scores.
    pub fn score_cuts(&self, direction: Direction) -> ScoreCuts {
        let n = self.total as f64;
        let mut lowest_with = [None; 4];
        // Blocks from the worst value to the best: a block's lowest rank is one more than the
        // customers worse than it.
        let mut worse = 0u64;
        let mut visit = |x: f64, c: u64| {
            let score = ((5.0 * (worse + 1) as f64 / n).ceil() as i64).clamp(1, 5);
            for s in 2..=score {
                let slot = &mut lowest_with[(s - 2) as usize];
                if slot.is_none() {
                    *slot = Some(x);
                }
            }
            worse += c;
        };
        match direction {
            Direction::HigherIsBetter => self.pairs().for_each(|(x, c)| visit(x, c)),
            Direction::LowerIsBetter => self.pairs().rev().for_each(|(x, c)| visit(x, c)),
        }
        ScoreCuts {
            direction,
            at_least: lowest_with,
        }
    }

    /// The value tier cut points (see [`TierCuts`]) of the values > 0.
    pub fn tier_cuts(&self, params: TierParams) -> TierCuts {
        let n: u64 = self.pairs().filter(|p| p.0 > 0.0).map(|p| p.1).sum();
        let mut cuts = TierCuts::default();
        // Blocks from the most valuable down: ranks `better + 1 ..= better + c`, average rank
        // their midpoint.
        let mut better = 0u64;
        for (x, c) in self.pairs().rev().take_while(|p| p.0 > 0.0) {
            let rank = (better + 1 + better + c) as f64 / 2.0;
            let p = rank / n as f64;
            if p <= params.top_share {
                cuts.top = Some(x);
            } else if p <= params.top_share + params.middle_share {
                cuts.middle = Some(x);
            }
            better += c;
        }
        cuts
    }
}

/// Where the 1–5 scores change: `at_least[s − 2]` is the worst value that scores `s` or more
/// (`None`: no value does). Scoring a value of the distribution with them gives exactly its
/// tie-aware score ([`crate::score_quintiles`] over the same customers).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoreCuts {
    pub direction: Direction,
    pub at_least: [Option<f64>; 4],
}

impl ScoreCuts {
    /// The score of `x`: 1 plus the cut points it reaches.
    pub fn score(&self, x: f64) -> i64 {
        let reaches = |cut: &Option<f64>| match (cut, self.direction) {
            (Some(c), Direction::HigherIsBetter) => x.total_cmp(c).is_ge(),
            (Some(c), Direction::LowerIsBetter) => x.total_cmp(c).is_le(),
            (None, _) => false,
        };
        1 + self.at_least.iter().filter(|c| reaches(c)).count() as i64
    }

    /// Scores of present values (NaN and `None` stay `None`).
    pub fn scores(&self, values: &[Option<f64>]) -> Vec<Option<i64>> {
        values
            .par_iter()
            .map(|v| v.filter(|x| !x.is_nan()).map(|x| self.score(x)))
            .collect()
    }
}

/// Where the value tiers change: `top` is the smallest value in the top tier, `middle` the
/// smallest in the middle tier (`None`: the tier is empty). Values ≤ 0 (or unknown) are `zero`.
/// Tiering a value of the distribution with them gives exactly [`crate::value_tiers`] over the
/// same customers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TierCuts {
    pub top: Option<f64>,
    pub middle: Option<f64>,
}

impl TierCuts {
    pub fn tier(&self, v: Option<f64>) -> ValueTier {
        let reaches = |cut: Option<f64>, x: f64| cut.is_some_and(|c| x.total_cmp(&c).is_ge());
        match v {
            Some(x) if x > 0.0 => {
                if reaches(self.top, x) {
                    ValueTier::Top
                } else if reaches(self.middle, x) {
                    ValueTier::Middle
                } else {
                    ValueTier::Low
                }
            }
            _ => ValueTier::Zero,
        }
    }

    pub fn tiers(&self, values: &[Option<f64>]) -> Vec<ValueTier> {
        values.par_iter().map(|v| self.tier(*v)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{score_quintiles, value_tiers};
    use proptest::prelude::*;

    /// Values with many ties, some missing, some NaN.
    fn values() -> impl Strategy<Value = Vec<Option<f64>>> {
        prop::collection::vec(
            prop_oneof![
                6 => (-3i32..40).prop_map(|v| Some(f64::from(v) / 2.0)),
                1 => Just(None),
                1 => Just(Some(f64::NAN)),
                1 => Just(Some(0.0)),
            ],
            0..300,
        )
    }

    proptest! {
        /// Scores and tiers from cut points of the merged distribution of any split of the
        /// customers equal the rank-based ones over all of them.
        #[test]
        fn cut_points_of_merged_parts_score_like_ranks(v in values(), parts in 1usize..5) {
            let split: Vec<Distribution> = (0..parts)
                .map(|p| {
                    Distribution::of(
                        v.iter().enumerate().filter(|(i, _)| i % parts == p).filter_map(|(_, x)| *x),
                    )
                })
                .collect();
            let merged = Distribution::merge(&split);
            prop_assert_eq!(&merged, &Distribution::of_present(&v));
            for d in [Direction::HigherIsBetter, Direction::LowerIsBetter] {
                prop_assert_eq!(merged.score_cuts(d).scores(&v), score_quintiles(&v, d));
            }
            let params = TierParams { top_share: 0.2, middle_share: 0.3 };
            let clean: Vec<Option<f64>> = v.iter().map(|x| x.filter(|x| !x.is_nan())).collect();
            prop_assert_eq!(merged.tier_cuts(params).tiers(&clean), value_tiers(&clean, params));
        }

        /// Quantiles and the upper median equal those of the sorted values.
        #[test]
        fn quantiles_match_the_sorted_values(v in values(), q in 0.0f64..=1.0) {
            let mut sorted: Vec<f64> = v.iter().flatten().copied().filter(|x| !x.is_nan()).collect();
            sorted.sort_by(f64::total_cmp);
            let d = Distribution::of_present(&v);
            if sorted.is_empty() {
                prop_assert_eq!(d.quantile(q), None);
            } else {
                let pos = q * (sorted.len() - 1) as f64;
                let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
                let want = sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64);
                prop_assert_eq!(d.quantile(q).map(f64::to_bits), Some(want.to_bits()));
                prop_assert_eq!(d.upper_median(), Some(sorted[sorted.len() / 2]));
            }
        }
    }
}
