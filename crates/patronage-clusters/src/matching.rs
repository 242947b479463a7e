//! Tonight's clusters matched to the previous run's: an exact minimum-total-distance assignment
//! of centroids (the Hungarian problem, solved by dynamic programming over subsets: k ≤ 16 here,
//! so 2^k states are few and no solver crate is needed), and what changed.

use ndarray::Array2;
use serde::Serialize;

/// Distance (standardized units) beyond which a matched centroid is reported as moved.
pub const MOVED: f64 = 0.5;

/// How tonight's clusters relate to the previous run's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Matching {
    /// Id of each new centroid.
    pub ids: Vec<u32>,
    /// (id, distance between its old and new centroid) for the matched clusters.
    pub shifts: Vec<(u32, f64)>,
    /// Matched clusters whose centroid moved more than [`MOVED`].
    pub moved: Vec<u32>,
    /// New clusters with no previous counterpart (fresh ids).
    pub new: Vec<u32>,
    /// Previous ids with no counterpart tonight.
    pub gone: Vec<u32>,
    /// Previous ids nearest to two or more of tonight's centroids (split), and tonight's ids
    /// nearest to two or more previous centroids (merged).
    pub split: Vec<u32>,
    pub merged: Vec<u32>,
}

fn dist(a: &Array2<f64>, i: usize, b: &Array2<f64>, j: usize) -> f64 {
    a.row(i)
        .iter()
        .zip(b.row(j).iter())
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

/// The minimum-cost assignment of every row to a distinct column (rows ≤ columns ≤ 16).
fn assignment(cost: &[Vec<f64>], cols: usize) -> Vec<usize> {
    let rows = cost.len();
    let states = 1usize << cols;
    let mut best = vec![f64::INFINITY; states];
    let mut from = vec![(usize::MAX, usize::MAX); states];
    best[0] = 0.0;
    for mask in 0..states {
        let i = mask.count_ones() as usize;
        if i >= rows || !best[mask].is_finite() {
            continue;
        }
        for (j, cost_ij) in cost[i].iter().enumerate() {
            if mask & (1 << j) == 0 {
                let next = mask | (1 << j);
                let c = best[mask] + cost_ij;
                if c < best[next] {
                    best[next] = c;
                    from[next] = (mask, j);
                }
            }
        }
    }
    let end = (0..states)
        .filter(|m| m.count_ones() as usize == rows)
        .min_by(|a, b| best[*a].total_cmp(&best[*b]))
        .unwrap_or(0);
    let mut out = vec![0; rows];
    let mut mask = end;
    while mask != 0 {
        let (prev, j) = from[mask];
        out[prev.count_ones() as usize] = j;
        mask = prev;
    }
    out
}

/// Ids for `new` centroids from `old` ones (same space) carrying `old_ids`.
pub fn match_clusters(new: &Array2<f64>, old: &Array2<f64>, old_ids: &[u32]) -> Matching {
    let (kn, ko) = (new.nrows(), old.nrows());
    let mut ids = vec![0u32; kn];
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    if kn <= ko {
        let cost: Vec<Vec<f64>> = (0..kn)
            .map(|i| (0..ko).map(|j| dist(new, i, old, j)).collect())
            .collect();
        for (i, j) in assignment(&cost, ko).into_iter().enumerate() {
            pairs.push((i, j));
        }
    } else {
        let cost: Vec<Vec<f64>> = (0..ko)
            .map(|j| (0..kn).map(|i| dist(new, i, old, j)).collect())
            .collect();
        for (j, i) in assignment(&cost, kn).into_iter().enumerate() {
            pairs.push((i, j));
        }
    }
    let mut next_id = old_ids.iter().max().copied().unwrap_or(0) + 1;
    let mut shifts = Vec::new();
    for &(i, j) in &pairs {
        ids[i] = old_ids[j];
        shifts.push((old_ids[j], dist(new, i, old, j)));
    }
    let mut fresh = Vec::new();
    for (i, id) in ids.iter_mut().enumerate() {
        if !pairs.iter().any(|p| p.0 == i) {
            *id = next_id;
            fresh.push(next_id);
            next_id += 1;
        }
    }
    let gone: Vec<u32> = (0..ko)
        .filter(|j| !pairs.iter().any(|p| p.1 == *j))
        .map(|j| old_ids[j])
        .collect();
    let nearest_old: Vec<usize> = (0..kn)
        .map(|i| {
            (0..ko)
                .min_by(|a, b| dist(new, i, old, *a).total_cmp(&dist(new, i, old, *b)))
                .unwrap_or(0)
        })
        .collect();
    let nearest_new: Vec<usize> = (0..ko)
        .map(|j| {
            (0..kn)
                .min_by(|a, b| dist(new, *a, old, j).total_cmp(&dist(new, *b, old, j)))
                .unwrap_or(0)
        })
        .collect();
    let split = (0..ko)
        .filter(|j| nearest_old.iter().filter(|n| **n == *j).count() >= 2)
        .map(|j| old_ids[j])
        .collect();
    let merged = (0..kn)
        .filter(|i| nearest_new.iter().filter(|n| **n == *i).count() >= 2)
        .map(|i| ids[i])
        .collect();
    shifts.sort_by_key(|s| s.0);
    let moved = shifts.iter().filter(|s| s.1 > MOVED).map(|s| s.0).collect();
    Matching {
        ids,
        shifts,
        moved,
        new: fresh,
        gone,
        split,
        merged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn permuted_centroids_keep_their_ids_and_a_split_is_reported() {
        let old = array![[0.0, 0.0], [5.0, 5.0], [10.0, 0.0]];
        let new = array![[10.1, 0.0], [0.0, 0.1], [5.0, 4.9]];
        let m = match_clusters(&new, &old, &[1, 2, 3]);
        assert_eq!(m.ids, [3, 1, 2]);
        assert!(m.moved.is_empty() && m.new.is_empty() && m.gone.is_empty());
        // Cluster 2 splits in two: one half keeps id 2, the other gets a fresh id 4.
        let split = array![[0.0, 0.0], [4.0, 5.0], [6.0, 5.0], [10.0, 0.0]];
        let m = match_clusters(&split, &old, &[1, 2, 3]);
        assert_eq!(m.ids[0], 1);
        assert_eq!(m.ids[3], 3);
        assert!(m.ids[1] == 2 || m.ids[2] == 2);
        assert_eq!(m.new, [4]);
        assert_eq!(m.split, [2]);
    }
}
