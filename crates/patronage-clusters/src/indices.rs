//! Cluster validity indices and agreement between two labelings, on a standardized matrix:
//! silhouette (Rousseeuw 1987), Davies–Bouldin (1979), Calinski–Harabasz (1974), inertia, and
//! the adjusted Rand index (Hubert & Arabie 1985). Written here (a few loops each) because linfa
//! has only the silhouette, and the selection needs all of them on the same footing.

use ndarray::{Array2, ArrayView1, ArrayView2};
use rayon::prelude::*;

fn sq_dist(a: ArrayView1<f64>, b: ArrayView1<f64>) -> f64 {
    a.iter().zip(b.iter()).map(|(x, y)| (x - y) * (x - y)).sum()
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
    let n = labels.len();
    let size = sizes(labels, k);
    let rows: Vec<ArrayView1<f64>> = x.rows().into_iter().collect();
    // Per row in parallel, summed in row order: a parallel float sum's grouping (and so its
    // last bits) would depend on how the work was split.
    let widths: Vec<f64> = (0..n)
        .into_par_iter()
        .map(|i| {
            if size[labels[i]] <= 1 {
                return 0.0;
            }
            let mut sum = vec![0.0; k];
            for j in 0..n {
                if j != i {
                    sum[labels[j]] += sq_dist(rows[i], rows[j]).sqrt();
                }
            }
            let a = sum[labels[i]] / (size[labels[i]] - 1) as f64;
            let b = (0..k)
                .filter(|&c| c != labels[i] && size[c] > 0)
                .map(|c| sum[c] / size[c] as f64)
                .fold(f64::INFINITY, f64::min);
            if !b.is_finite() {
                return 0.0;
            }
            (b - a) / a.max(b)
        })
        .collect();
    widths.iter().sum::<f64>() / n.max(1) as f64
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
