//! Tie-aware 1–5 scores: `score = ceil(5 · p)` with `p = lowest rank of the tie block / n`, ranks
//! ascending in goodness. Equal values form one block and therefore always share a score; a
//! block takes the lowest score it spans, so the customers with the lowest value get score 1
//! even when they are most of the base (CDNOW: 51% buy on one day only; with the block's average
//! rank they scored F = 2 and no customer ever had F = 1, so the F = 1 rules never fired). The
//! score of a value depends only on the multiset of values: shuffled rows change nothing.

/// Which end of a measure is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
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
        let lowest = rank - (rows.len() as f64 - 1.0) / 2.0;
        let score = ((5.0 * lowest / n).ceil() as i64).clamp(1, 5);
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
        // Six tied values hold ranks 1–6: the block takes the lowest score it spans, 1 (with the
        // average rank it would be 2, and the lowest values would never score 1). The top pair
        // holds ranks 9–10: score 5.
        assert_eq!(s, vec![1, 1, 1, 1, 1, 1, 4, 4, 5, 5]);
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
