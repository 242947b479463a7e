//! Exactly rounded float sums that merge: the revenue of a segment summed over partitions in
//! any grouping and order has the same bits as summed over every customer at once.

use serde::{Deserialize, Serialize};

/// A running sum kept exactly as non-overlapping partials (Shewchuk 1997, the algorithm of
/// Python's `math.fsum`); [`ExactSum::value`] is the exact sum correctly rounded, so it does
/// not depend on the order or grouping of the terms. Terms must be finite.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExactSum {
    partials: Vec<f64>,
}

impl ExactSum {
    pub fn add(&mut self, mut x: f64) {
        let mut i = 0;
        for j in 0..self.partials.len() {
            let mut y = self.partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                self.partials[i] = lo;
                i += 1;
            }
            x = hi;
        }
        self.partials.truncate(i);
        self.partials.push(x);
    }

    /// The exact sum of `terms`, pieces summed in parallel and merged (the same bits as adding
    /// them one by one).
    pub fn of_slice(terms: &[f64]) -> ExactSum {
        use rayon::prelude::*;
        terms
            .par_chunks(1 << 14)
            .map(|piece| piece.iter().copied().collect::<ExactSum>())
            .reduce(ExactSum::default, |mut a, b| {
                a.merge(&b);
                a
            })
    }

    /// Adds every term another sum holds.
    pub fn merge(&mut self, other: &ExactSum) {
        for &p in &other.partials {
            self.add(p);
        }
    }

    /// The sum, correctly rounded.
    pub fn value(&self) -> f64 {
        let p = &self.partials;
        let Some(&last) = p.last() else {
            return 0.0;
        };
        let mut n = p.len() - 1;
        let (mut hi, mut lo) = (last, 0.0);
        while n > 0 {
            let x = hi;
            let y = p[n - 1];
            n -= 1;
            hi = x + y;
            lo = y - (hi - x);
            if lo != 0.0 {
                break;
            }
        }
        // Round half to even across the remaining partials, as fsum does.
        if n > 0 && ((lo < 0.0 && p[n - 1] < 0.0) || (lo > 0.0 && p[n - 1] > 0.0)) {
            let y = lo * 2.0;
            let x = hi + y;
            if y == x - hi {
                hi = x;
            }
        }
        hi
    }
}

impl FromIterator<f64> for ExactSum {
    fn from_iter<I: IntoIterator<Item = f64>>(iter: I) -> Self {
        let mut s = ExactSum::default();
        iter.into_iter().for_each(|x| s.add(x));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any split of the terms, summed apart and merged, gives the bits of one sum; and
        /// the sum is exact where a naive one is not.
        #[test]
        fn merged_parts_have_the_bits_of_one_sum(
            terms in prop::collection::vec(-1e12f64..1e12, 0..200),
            cut in 0usize..200,
        ) {
            let cut = cut.min(terms.len());
            let whole: ExactSum = terms.iter().copied().collect();
            let mut a: ExactSum = terms[cut..].iter().rev().copied().collect();
            a.merge(&terms[..cut].iter().copied().collect());
            prop_assert_eq!(a.value().to_bits(), whole.value().to_bits());
        }
    }

    #[test]
    fn cancellation_is_exact() {
        let s: ExactSum = [1e16, 1.0, -1e16, 0.1, 0.2].into_iter().collect();
        assert_eq!(s.value(), 1.3);
        assert_eq!([1e16, 1.0, -1e16].iter().sum::<f64>(), 0.0);
    }
}
