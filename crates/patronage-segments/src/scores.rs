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
    let mut present: Vec<(f64, usize)> = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.filter(|x| !x.is_nan()).map(|x| (x, i)))
        .map(|(x, i)| match direction {
            Direction::HigherIsBetter => (x, i),
            Direction::LowerIsBetter => (-x, i),
        })
        .collect();
    present.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let n = present.len() as f64;
    let mut out = vec![None; values.len()];
    let mut start = 0;
    while start < present.len() {
        let mut end = start + 1;
        while end < present.len() && present[end].0 == present[start].0 {
            end += 1;
        }
        // Ranks are 1-based: the tie block start..end holds ranks start+1 ..= end.
        let average_rank = (start + 1 + end) as f64 / 2.0;
        let score = ((5.0 * average_rank / n).ceil() as i64).clamp(1, 5);
        for &(_, i) in &present[start..end] {
            out[i] = Some(score);
        }
        start = end;
    }
    out
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
