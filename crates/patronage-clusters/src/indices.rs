//! Cluster validity indices and agreement between two labelings, on a standardized matrix:
//! silhouette (Rousseeuw 1987), Davies–Bouldin (1979), Calinski–Harabasz (1974), inertia, and
//! the adjusted Rand index (Hubert & Arabie 1985). Written here (a few loops each) because linfa
//! has only the silhouette, and the selection needs all of them on the same footing.

use ndarray::{Array2, ArrayView1, ArrayView2};
use rayon::prelude::*;

fn sq_dist(a: ArrayView1<f64>, b: ArrayView1<f64>) -> f64 {
    match (a.as_slice(), b.as_slice()) {
        (Some(a), Some(b)) => sq_dist_slices(a, b),
        _ => a.iter().zip(b.iter()).map(|(x, y)| (x - y) * (x - y)).sum(),
    }
}

/// Squared Euclidean distance of two rows of equal length, summed front to back.
#[inline]
pub(crate) fn sq_dist_slices(a: &[f64], b: &[f64]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Index of the nearest centroid of `x`.
pub fn nearest(x: ArrayView1<f64>, centroids: &Array2<f64>) -> usize {
    let mut best = (f64::INFINITY, 0);
    for (c, row) in centroids.rows().into_iter().enumerate() {
        let d = sq_dist(x, row);
        if d < best.0 {
            best = (d, c);
        }
    }
    best.1
}

/// Labels of every row (nearest centroid).
pub fn assign(x: ArrayView2<f64>, centroids: &Array2<f64>) -> Vec<usize> {
    let rows: Vec<ArrayView1<f64>> = x.rows().into_iter().collect();
    rows.par_iter().map(|r| nearest(*r, centroids)).collect()
}

/// Sum of squared distances to the assigned centroid.
pub fn inertia(x: ArrayView2<f64>, labels: &[usize], centroids: &Array2<f64>) -> f64 {
    x.rows()
        .into_iter()
        .zip(labels)
        .map(|(r, &l)| sq_dist(r, centroids.row(l)))
        .sum()
}

/// Cluster sizes.
pub fn sizes(labels: &[usize], k: usize) -> Vec<usize> {
    let mut n = vec![0; k];
    for &l in labels {
        n[l] += 1;
    }
    n
}

/// Mean silhouette width (rows of a single-member cluster count 0). O(n²): pass a sample.
pub fn silhouette(x: ArrayView2<f64>, labels: &[usize], k: usize) -> f64 {
    silhouettes(x, &[(labels, k)])[0]
}

/// The mean silhouette width of several labelings of the same rows (each with its k), in one
/// pass over the pairs: a pair's distance is computed once for all of them. Each labeling's
/// result is the bits [`silhouette`] gives it alone.
pub fn silhouettes(x: ArrayView2<f64>, labelings: &[(&[usize], usize)]) -> Vec<f64> {
    let n = x.nrows();
    let dim = x.ncols();
    let data = x.as_standard_layout();
    let flat = data.as_slice().unwrap_or_default();
    let row = |i: usize| &flat[i * dim..(i + 1) * dim];
    let sizes: Vec<Vec<usize>> = labelings.iter().map(|(l, k)| sizes(l, *k)).collect();
    // Per labeling, the distance sums of row i to each cluster, side by side.
    let offsets: Vec<usize> = labelings
        .iter()
        .scan(0, |at, (_, k)| {
            let o = *at;
            *at += k;
            Some(o)
        })
        .collect();
    let width: usize = labelings.iter().map(|(_, k)| k).sum();
    // Per row in parallel, summed in row order: a parallel float sum's grouping (and so its
    // last bits) would depend on how the work was split.
    let widths: Vec<Vec<f64>> = (0..n)
        .into_par_iter()
        .map_init(
            || vec![0.0; width],
            |sum, i| {
                sum.fill(0.0);
                let xi = row(i);
                for j in (0..n).filter(|&j| j != i) {
                    let d = xi
                        .iter()
                        .zip(row(j))
                        .map(|(a, b)| (a - b) * (a - b))
                        .sum::<f64>()
                        .sqrt();
                    for ((labels, _), o) in labelings.iter().zip(&offsets) {
                        sum[o + labels[j]] += d;
                    }
                }
                labelings
                    .iter()
                    .zip(&offsets)
                    .zip(&sizes)
                    .map(|(((labels, k), &o), size)| {
                        let own = labels[i];
                        if size[own] <= 1 {
                            return 0.0;
                        }
                        let a = sum[o + own] / (size[own] - 1) as f64;
                        let b = (0..*k)
                            .filter(|&c| c != own && size[c] > 0)
                            .map(|c| sum[o + c] / size[c] as f64)
                            .fold(f64::INFINITY, f64::min);
                        if !b.is_finite() {
                            return 0.0;
                        }
                        (b - a) / a.max(b)
                    })
                    .collect()
            },
        )
        .collect();
    (0..labelings.len())
        .map(|t| widths.iter().map(|w| w[t]).sum::<f64>() / n.max(1) as f64)
        .collect()
}

/// Davies–Bouldin index (lower is better).
pub fn davies_bouldin(x: ArrayView2<f64>, labels: &[usize], centroids: &Array2<f64>) -> f64 {
    let k = centroids.nrows();
    let size = sizes(labels, k);
    let mut scatter = vec![0.0; k];
    for (r, &l) in x.rows().into_iter().zip(labels) {
        scatter[l] += sq_dist(r, centroids.row(l)).sqrt();
    }
    for c in 0..k {
        scatter[c] /= size[c].max(1) as f64;
    }
    let live: Vec<usize> = (0..k).filter(|&c| size[c] > 0).collect();
    let worst: f64 = live
        .iter()
        .map(|&i| {
            live.iter()
                .filter(|&&j| j != i)
                .map(|&j| {
                    (scatter[i] + scatter[j])
                        / sq_dist(centroids.row(i), centroids.row(j))
                            .sqrt()
                            .max(1e-12)
                })
                .fold(0.0, f64::max)
        })
        .sum();
    worst / live.len().max(1) as f64
}

/// Calinski–Harabasz index (higher is better).
pub fn calinski_harabasz(x: ArrayView2<f64>, labels: &[usize], centroids: &Array2<f64>) -> f64 {
    let (n, k) = (x.nrows(), centroids.nrows());
    if k < 2 || n <= k {
        return 0.0;
    }
    let mean = x.mean_axis(ndarray::Axis(0)).unwrap_or_default();
    let size = sizes(labels, k);
    let between: f64 = (0..k)
        .map(|c| size[c] as f64 * sq_dist(centroids.row(c), mean.view()))
        .sum();
    let within = inertia(x, labels, centroids);
    (between / (k - 1) as f64) / (within / (n - k) as f64).max(1e-300)
}

/// Adjusted Rand index of two labelings of the same rows (1: identical partitions).
pub fn adjusted_rand(a: &[usize], b: &[usize]) -> f64 {
    let ka = a.iter().max().map_or(0, |m| m + 1);
    let kb = b.iter().max().map_or(0, |m| m + 1);
    let mut table = vec![0u64; ka * kb];
    for (&x, &y) in a.iter().zip(b) {
        table[x * kb + y] += 1;
    }
    let c2 = |n: u64| (n * n.saturating_sub(1) / 2) as f64;
    let index: f64 = table.iter().map(|&n| c2(n)).sum();
    let rows: f64 = (0..ka)
        .map(|i| c2(table[i * kb..(i + 1) * kb].iter().sum()))
        .sum();
    let cols: f64 = (0..kb)
        .map(|j| c2((0..ka).map(|i| table[i * kb + j]).sum()))
        .sum();
    let total = c2(a.len() as u64);
    let expected = rows * cols / total.max(1.0);
    let max = (rows + cols) / 2.0;
    if (max - expected).abs() < 1e-12 {
        return 1.0;
    }
    (index - expected) / (max - expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn indices_prefer_the_true_partition() {
        // Two tight groups far apart.
        let x = array![
            [0.0, 0.0],
            [0.1, 0.0],
            [0.0, 0.1],
            [5.0, 5.0],
            [5.1, 5.0],
            [5.0, 5.1]
        ];
        let good = [0, 0, 0, 1, 1, 1];
        let bad = [0, 1, 0, 1, 0, 1];
        let c_good = array![[0.033, 0.033], [5.033, 5.033]];
        let c_bad = array![[1.7, 1.7], [3.4, 3.4]];
        assert!(silhouette(x.view(), &good, 2) > 0.9);
        assert!(silhouette(x.view(), &bad, 2) < 0.1);
        assert!(davies_bouldin(x.view(), &good, &c_good) < davies_bouldin(x.view(), &bad, &c_bad));
        assert!(
            calinski_harabasz(x.view(), &good, &c_good) > calinski_harabasz(x.view(), &bad, &c_bad)
        );
    }

    /// Rousseeuw's definition, row by row, one labeling at a time.
    fn silhouette_by_definition(x: &Array2<f64>, labels: &[usize], k: usize) -> f64 {
        let n = labels.len();
        let size = sizes(labels, k);
        let dist = |i: usize, j: usize| sq_dist(x.row(i), x.row(j)).sqrt();
        let mut total = 0.0;
        for i in 0..n {
            if size[labels[i]] <= 1 {
                continue;
            }
            let mean_to = |c: usize, count: usize| {
                (0..n)
                    .filter(|&j| j != i && labels[j] == c)
                    .map(|j| dist(i, j))
                    .sum::<f64>()
                    / count as f64
            };
            let a = mean_to(labels[i], size[labels[i]] - 1);
            let b = (0..k)
                .filter(|&c| c != labels[i] && size[c] > 0)
                .map(|c| mean_to(c, size[c]))
                .fold(f64::INFINITY, f64::min);
            if b.is_finite() {
                total += (b - a) / a.max(b);
            }
        }
        total / n as f64
    }

    #[test]
    fn silhouettes_of_several_labelings_match_the_definition_in_one_pass() {
        // 200 points in 3 dimensions from a fixed recurrence, three labelings with k = 2, 3, 5
        // (one with a single-member cluster and one with an empty cluster).
        let n = 200;
        let x = Array2::from_shape_fn((n, 3), |(i, j)| {
            ((i * 7919 + j * 104_729) % 1009) as f64 / 101.0 + (i % 3) as f64 * 20.0
        });
        let by_three: Vec<usize> = (0..n).map(|i| i % 3).collect();
        let mut two: Vec<usize> = (0..n).map(|i| usize::from(i * 13 % 7 < 3)).collect();
        two[0] = 0;
        let mut five: Vec<usize> = (0..n).map(|i| (i * 31 % 11) % 4).collect();
        five[17] = 4; // alone in cluster 4
        let labelings: Vec<(&[usize], usize)> = vec![(&by_three, 3), (&two, 2), (&five, 6)];
        let together = silhouettes(x.view(), &labelings);
        for (t, (labels, k)) in labelings.iter().enumerate() {
            let want = silhouette_by_definition(&x, labels, *k);
            assert!(
                (together[t] - want).abs() < 1e-12,
                "{t}: {} vs {want}",
                together[t]
            );
        }
        // The true grouping scores best.
        assert!(together[0] > together[1] && together[0] > together[2]);
    }

    #[test]
    fn adjusted_rand_is_one_for_relabelings_and_near_zero_for_noise() {
        let a = [0, 0, 1, 1, 2, 2];
        let b = [2, 2, 0, 0, 1, 1];
        assert!((adjusted_rand(&a, &b) - 1.0).abs() < 1e-12);
        // Hubert & Arabie's example value for a known table is checked by symmetry and range.
        let c = [0, 1, 0, 1, 0, 1];
        let r = adjusted_rand(&a, &c);
        assert!(r < 0.1, "{r}");
        assert!((adjusted_rand(&a, &c) - adjusted_rand(&c, &a)).abs() < 1e-12);
    }
}
