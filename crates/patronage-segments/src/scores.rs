//! Tie-aware 1–5 scores: `score = ceil(5 · p)` with `p = average rank / n`, ranks ascending in
//! goodness. Equal values share an average rank and therefore always share a score; the score of
//! a value depends only on the multiset of values, so shuffling input rows never changes it.

/// Which end of a measure is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Larger is better (frequency, monetary).
    HigherIsBetter,
    /// Smaller is better (recency in days).
    LowerIsBetter,
}

/// Scores 1–5 (5 = best) for the present values; `None` stays `None` and does not count in `n`.
pub fn score_quintiles(values: &[Option<f64>], direction: Direction) -> Vec<Option<i64>> {
    let present = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.filter(|x| !x.is_nan()).map(|x| (x, i)))
        .map(|(x, i)| match direction {
            Direction::HigherIsBetter => (x, i),
            Direction::LowerIsBetter => (-x, i),
        });
    let mut out = vec![None; values.len()];
    average_ranks(present, |rank, n, rows| {
        let score = ((5.0 * rank / n).ceil() as i64).clamp(1, 5);
        for &row in rows {
            out[row as usize] = Some(score);
        }
    });
    out
}

/// Ranks `(value, row)` pairs ascending by value and calls `each(average_rank, n, rows)` once per
/// block of equal values, in ascending order: ranks are 1-based, a tie block holding ranks
/// `start+1 ..= end` gets `(start + 1 + end) / 2`. The sort runs in parallel on a key whose
/// integer order is the floats' total order, with the row as tie-breaker, so the result never
/// depends on input order.
pub(crate) fn average_ranks(
    pairs: impl Iterator<Item = (f64, usize)>,
    mut each: impl FnMut(f64, f64, &[u32]),
) {
    use rayon::slice::ParallelSliceMut;
    let mut keyed: Vec<(u64, u32)> = pairs.map(|(x, i)| (order_key(x), i as u32)).collect();
    keyed.par_sort_unstable();
    let n = keyed.len() as f64;
    let mut rows: Vec<u32> = Vec::new();
    let mut start = 0;
    while start < keyed.len() {
        let mut end = start + 1;
        while end < keyed.len() && keyed[end].0 == keyed[start].0 {
            end += 1;
        }
        rows.clear();
        rows.extend(keyed[start..end].iter().map(|k| k.1));
        each((start + 1 + end) as f64 / 2.0, n, &rows);
        start = end;
    }
}

/// Maps a float to a u64 whose unsigned order is `f64::total_cmp` order (−0 < +0, as there).
fn order_key(x: f64) -> u64 {
    let bits = x.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    }
}

/// Customers per score 1..=5 (index 0 = score 1).
pub fn occupancy(scores: &[Option<i64>]) -> [i64; 5] {
    let mut counts = [0; 5];
    for s in scores.iter().flatten() {
        counts[(*s - 1) as usize] += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_key_sorts_like_total_cmp() {
        let mut v = vec![3.5, -0.0, 0.0, -7.25, f64::INFINITY, 1e-300, -1e300, 2.0];
        let mut by_key = v.clone();
        by_key.sort_by_key(|x| order_key(*x));
        v.sort_by(f64::total_cmp);
        assert_eq!(
            v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            by_key.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }

    fn some(v: &[f64]) -> Vec<Option<f64>> {
        v.iter().copied().map(Some).collect()
    }

    #[test]
    fn distinct_values_fill_quintiles_evenly() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        let s = score_quintiles(&some(&v), Direction::HigherIsBetter);
        let s: Vec<i64> = s.into_iter().flatten().collect();
        assert_eq!(s, vec![1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
    }

    #[test]
    fn ties_share_a_score_and_lower_is_better_reverses() {
        let v = some(&[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 3.0, 9.0, 9.0]);
        let s: Vec<i64> = score_quintiles(&v, Direction::HigherIsBetter)
            .into_iter()
            .flatten()
            .collect();
        // Six tied values: average rank 3.5, p = 0.35, score 2.
        assert_eq!(s, vec![2, 2, 2, 2, 2, 2, 4, 4, 5, 5]);
        let r: Vec<i64> = score_quintiles(
            &some(&[0.0, 10.0, 20.0, 30.0, 40.0]),
            Direction::LowerIsBetter,
        )
        .into_iter()
        .flatten()
        .collect();
        assert_eq!(r, vec![5, 4, 3, 2, 1]);
    }

    #[test]
    fn nulls_stay_null() {
        let s = score_quintiles(&[None, Some(1.0)], Direction::HigherIsBetter);
        assert_eq!(s, vec![None, Some(5)]);
        assert_eq!(occupancy(&s), [0, 0, 0, 0, 1]);
    }
}
