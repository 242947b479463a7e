//! From feature columns to the matrix k-means sees: each feature `log1p`'d when it is never
//! negative, clipped to its 1st and 99th percentiles, missing values imputed with the median
//! (and counted per customer), then standardized. The fitted transform is part of the model
//! artifact, so tomorrow's run can place today's centroids in its own space.

use ndarray::Array2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// How one feature is turned into a matrix column (fitted on the customers clustered).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureTransform {
    pub name: String,
    /// `log1p` first (the feature is never negative).
    pub log1p: bool,
    /// Clip bounds (after `log1p`): the 1st and 99th percentiles.
    pub lower: f64,
    pub upper: f64,
    /// Imputed for a missing value (after clipping): the median.
    pub median: f64,
    /// Standardization (after clipping and imputing).
    pub mean: f64,
    pub sd: f64,
}

impl FeatureTransform {
    /// The clipped (unstandardized) value of a raw feature value.
    pub fn clip(&self, raw: f64) -> f64 {
        let v = if self.log1p {
            raw.max(0.0).ln_1p()
        } else {
            raw
        };
        v.clamp(self.lower, self.upper)
    }

    /// A matrix value (standardized) of a raw value, the median when missing.
    pub fn apply(&self, raw: Option<f64>) -> f64 {
        let v = raw
            .filter(|v| v.is_finite())
            .map_or(self.median, |v| self.clip(v));
        (v - self.mean) / self.sd
    }

    /// A standardized value back to the clipped scale.
    pub fn unscale(&self, z: f64) -> f64 {
        z * self.sd + self.mean
    }

    /// A clipped-scale value into this transform's standardized space.
    pub fn scale(&self, v: f64) -> f64 {
        (v - self.mean) / self.sd
    }
}

/// The matrix of the customers clustered.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub transforms: Vec<FeatureTransform>,
    /// Rows of the input (customer positions) in matrix order.
    pub rows: Vec<usize>,
    pub matrix: Array2<f64>,
    /// Per matrix row, how many of its features were imputed.
    pub imputed: Vec<u8>,
    /// Per feature, how many rows had it imputed.
    pub imputed_per_feature: Vec<usize>,
}

/// The `q` quantile (0..=1) of sorted values, linear between order statistics.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Fits the transforms on the rows where `in_fit` holds (eligible rows: all of them, or a
/// sample) and builds the matrix of the eligible rows. `columns` are (name, values per
/// customer); a row is clustered when `eligible[row]`.
pub fn prepare(
    columns: &[(String, Vec<Option<f64>>)],
    eligible: &[bool],
    in_fit: &[bool],
) -> Prepared {
    let rows: Vec<usize> = (0..eligible.len()).filter(|&r| eligible[r]).collect();
    let fit_rows: Vec<usize> = rows.iter().copied().filter(|&r| in_fit[r]).collect();
    // Features in parallel, each sorted in parallel: at millions of customers the sorts for the
    // percentiles were most of this stage.
    let fit = |(name, values): &(String, Vec<Option<f64>>)| -> FeatureTransform {
        let present: Vec<f64> = fit_rows
            .iter()
            .filter_map(|&r| values[r])
            .filter(|v| v.is_finite())
            .collect();
        let log1p = present.iter().all(|v| *v >= 0.0);
        let mut t = FeatureTransform {
            name: name.clone(),
            log1p,
            lower: f64::NEG_INFINITY,
            upper: f64::INFINITY,
            median: 0.0,
            mean: 0.0,
            sd: 1.0,
        };
        let mut v: Vec<f64> = present.par_iter().map(|&x| t.clip(x)).collect();
        drop(present);
        v.par_sort_unstable_by(f64::total_cmp);
        if !v.is_empty() {
            t.lower = quantile(&v, 0.01);
            t.upper = quantile(&v, 0.99);
            for x in &mut v {
                *x = x.clamp(t.lower, t.upper);
            }
            t.median = quantile(&v, 0.5);
        }
        // Mean and sd over every row fitted on, imputed ones at the median.
        let n = fit_rows.len().max(1) as f64;
        let missing = (fit_rows.len() - v.len()) as f64;
        let sum: f64 = v.iter().sum::<f64>() + missing * t.median;
        t.mean = sum / n;
        let ss: f64 = v.iter().map(|x| (x - t.mean).powi(2)).sum::<f64>()
            + missing * (t.median - t.mean).powi(2);
        let sd = (ss / n).sqrt();
        // A constant feature carries no distance; keep it at 0 rather than divide by 0.
        t.sd = if sd > 1e-12 { sd } else { 1.0 };
        t
    };
    let transforms: Vec<FeatureTransform> = columns.par_iter().map(fit).collect();
    apply(&transforms, columns, eligible)
}

/// The matrix of the eligible rows of `columns` under fitted `transforms` (one per column).
pub fn apply(
    transforms: &[FeatureTransform],
    columns: &[(String, Vec<Option<f64>>)],
    eligible: &[bool],
) -> Prepared {
    let rows: Vec<usize> = (0..eligible.len()).filter(|&r| eligible[r]).collect();
    let transforms = transforms.to_vec();
    let d = columns.len();
    // Row-major cells, rows in parallel.
    let raw = |r: usize, j: usize| columns[j].1[r].filter(|v| v.is_finite());
    let mut cells = vec![0.0f64; rows.len() * d];
    cells
        .par_chunks_mut(d.max(1))
        .zip(&rows)
        .for_each(|(row, &r)| {
            for (j, t) in transforms.iter().enumerate() {
                row[j] = t.apply(raw(r, j));
            }
        });
    let matrix = Array2::from_shape_vec((rows.len(), d), cells)
        .expect("rows × features cells make the matrix");
    let imputed: Vec<u8> = rows
        .par_iter()
        .map(|&r| (0..d).filter(|&j| raw(r, j).is_none()).count().min(255) as u8)
        .collect();
    let imputed_per_feature: Vec<usize> = (0..d)
        .map(|j| rows.par_iter().filter(|&&r| raw(r, j).is_none()).count())
        .collect();
    Prepared {
        transforms,
        rows,
        matrix,
        imputed,
        imputed_per_feature,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skewed_features_are_logged_clipped_imputed_and_standardized() {
        let mut values: Vec<Option<f64>> = (0..100).map(|i| Some(i as f64)).collect();
        values.push(Some(1e9)); // an outlier
        values.push(None); // missing
        let signed: Vec<Option<f64>> = (0..102).map(|i| Some(i as f64 - 50.0)).collect();
        let cols = vec![("m".to_string(), values), ("s".to_string(), signed)];
        let p = prepare(&cols, &[true; 102], &[true; 102]);
        let (m, s) = (&p.transforms[0], &p.transforms[1]);
        assert!(m.log1p && !s.log1p);
        // The outlier is clipped to the 99th percentile, not 1e9.
        assert!(m.upper < 1e9_f64.ln_1p());
        assert_eq!(p.imputed_per_feature, [1, 0]);
        assert_eq!(p.imputed[101], 1);
        let col = p.matrix.column(0);
        let mean = col.sum() / col.len() as f64;
        let var = col.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / col.len() as f64;
        assert!(
            mean.abs() < 1e-9 && (var - 1.0).abs() < 1e-9,
            "{mean} {var}"
        );
    }
}
