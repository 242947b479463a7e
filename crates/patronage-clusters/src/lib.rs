//! Behavioural clusters (docs/design.md §4): k-means from linfa on chosen customer features, k chosen
//! on a seeded sample by several indices under a minimum cluster share, the chosen solution's
//! bootstrap stability, and cluster ids kept from one night to the next by warm-starting from
//! the previous run's model and matching centroids (an exact minimum-cost assignment).
//!
//! Plain columns in, labels and a serializable [`ClusterModel`] out: linfa and ndarray stay in
//! this crate.

mod indices;
mod matching;
mod names;
mod prepare;

use std::ops::RangeInclusive;

use linfa::prelude::*;
pub use linfa_clustering::GaussianMixtureModel;
use linfa_clustering::{GmmCovarType, GmmInitMethod, KMeans, KMeansInit};
use linfa_nn::distance::Distance;
use ndarray::{Array2, ArrayView, ArrayView2, Dimension};
use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use indices::{
    adjusted_rand, assign, calinski_harabasz, davies_bouldin, inertia, silhouette, silhouettes,
};
pub use matching::{match_clusters, Matching};
pub use names::cluster_names;
pub use prepare::{prepare, quantile, FeatureTransform, Prepared};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{0} customers can be clustered; at least {1} are needed for k = {2}")]
    TooFew(usize, usize, usize),
    #[error("k-means failed: {0}")]
    KMeans(String),
    #[error("the Gaussian mixture did not fit: {0}")]
    Gmm(String),
}

/// The algorithm that assigns customers once k is chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Clusterer {
    /// k-means: hard assignment to the nearest centroid.
    #[default]
    Kmeans,
    /// A Gaussian mixture (full covariances, EM from the k-means solution): soft membership,
    /// each customer in the component of highest posterior probability.
    Gmm,
}

/// How clusters are found (`[clusters]` in the config).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// k is chosen in this range …
    pub k_range: RangeInclusive<usize>,
    /// … unless forced.
    pub k: Option<usize>,
    /// Smallest admissible cluster, as a share of the customers clustered.
    pub min_share: f64,
    /// Rows of the seeded sample k is chosen on (drawn from the rows fitted on).
    pub sample_rows: usize,
    /// Rows of the silhouette sample (O(n²)).
    pub silhouette_rows: usize,
    /// k-means++ initializations per fit.
    pub n_runs: usize,
    /// Bootstrap refits for the stability estimate.
    pub bootstrap: usize,
    pub seed: u64,
    pub clusterer: Clusterer,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            k_range: 3..=8,
            k: None,
            min_share: 0.05,
            sample_rows: 20_000,
            silhouette_rows: 3_000,
            n_runs: 10,
            bootstrap: 5,
            seed: 42,
            clusterer: Clusterer::Kmeans,
        }
    }
}

/// The indices of one k on the sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KScore {
    pub k: usize,
    pub silhouette: f64,
    pub davies_bouldin: f64,
    pub calinski_harabasz: f64,
    pub inertia: f64,
    /// Smallest cluster's share of the sample.
    pub smallest_share: f64,
    /// Every cluster holds at least the minimum share.
    pub admissible: bool,
    /// Mean of the ranks by silhouette, Davies–Bouldin and Calinski–Harabasz among admissible k.
    pub mean_rank: Option<f64>,
}

/// A fitted clustering, saved as `OUT/models/clusters/<as-of>.json` and read back by the next
/// run to keep its ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterModel {
    pub engine_version: String,
    pub as_of: String,
    pub seed: u64,
    #[serde(default)]
    pub clusterer: Clusterer,
    pub features: Vec<FeatureTransform>,
    pub k: usize,
    /// Stable id of each centroid.
    pub ids: Vec<u32>,
    pub names: Vec<String>,
    /// Centroids in the standardized space of `features`.
    pub centroids: Vec<Vec<f64>>,
}

impl ClusterModel {
    fn centroid_array(&self) -> Array2<f64> {
        let d = self.features.len();
        Array2::from_shape_fn((self.k, d), |(i, j)| self.centroids[i][j])
    }

    /// This model's centroids placed in the space of `transforms` (same feature names), or
    /// `None` when the features differ.
    pub fn centroids_in(&self, transforms: &[FeatureTransform]) -> Option<Array2<f64>> {
        let same = self.features.len() == transforms.len()
            && self
                .features
                .iter()
                .zip(transforms)
                .all(|(a, b)| a.name == b.name && a.log1p == b.log1p);
        same.then(|| {
            Array2::from_shape_fn((self.k, transforms.len()), |(i, j)| {
                transforms[j].scale(self.features[j].unscale(self.centroids[i][j]))
            })
        })
    }
}

/// What clustering produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub model: ClusterModel,
    /// Input rows clustered, and the centroid index of each (into `model.ids`).
    pub rows: Vec<usize>,
    pub labels: Vec<usize>,
    /// With a Gaussian mixture, each clustered row's posterior probability of its component.
    pub probability: Option<Vec<f64>>,
    /// Per clustered row, features imputed.
    pub imputed: Vec<u8>,
    pub imputed_per_feature: Vec<usize>,
    pub scores: Vec<KScore>,
    /// Why this k.
    pub chosen_by: String,
    /// Adjusted Rand index of each bootstrap refit against the solution, on the sample.
    pub bootstrap_ari: Vec<f64>,
    /// How tonight's clusters relate to the previous model's, when there was one.
    pub matching: Option<Matching>,
    pub sample_rows: usize,
    /// The Gaussian mixture, when that is the clusterer.
    pub mixture: Option<GaussianMixtureModel<f64>>,
}

/// k-means++ starts per k while choosing k (the chosen k is refitted with `n_runs` starts).
const SCORING_RUNS: usize = 3;

fn rng(seed: u64, stream: u64) -> Xoshiro256PlusPlus {
    let mut r = Xoshiro256PlusPlus::seed_from_u64(seed);
    for _ in 0..stream {
        r.jump();
    }
    r
}

/// When k-means has converged: scikit-learn's rule. Its `tol` (1e-4) bounds the summed squared
/// shift of the centroids relative to the mean variance of the features; linfa compares the
/// shift's Euclidean length, hence the square root. On standardized features that is a shift of
/// 0.01; a fixed 1e-4 took about 1.6× the time for the same k and, at 848,000 customers, moved
/// 0.8% of them across a border (the bootstrap refits agree with the fit at an ARI of 0.986).
fn tolerance(x: ArrayView2<f64>) -> f64 {
    let variance = x.var_axis(ndarray::Axis(0), 0.0).mean().unwrap_or(0.0);
    (1e-4 * variance).sqrt().max(f64::MIN_POSITIVE)
}

/// The Euclidean distance linfa's k-means runs with. linfa's own `L2Dist` goes through
/// ndarray-stats' generic `sq_l2_dist` (a shape check and a generic zip for every pair), about
/// 50 ns per row and centroid, a tenth of a 10M-row nightly run; this sums the same terms in the
/// same order over the rows' contiguous slices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Euclid;

impl Distance<f64> for Euclid {
    #[inline]
    fn distance<D: Dimension>(&self, a: ArrayView<f64, D>, b: ArrayView<f64, D>) -> f64 {
        self.rdistance(a, b).sqrt()
    }

    #[inline]
    fn rdistance<D: Dimension>(&self, a: ArrayView<f64, D>, b: ArrayView<f64, D>) -> f64 {
        assert_eq!(
            a.shape(),
            b.shape(),
            "distance between arrays of two shapes"
        );
        match (a.as_slice(), b.as_slice()) {
            (Some(x), Some(y)) => indices::sq_dist_slices(x, y),
            _ => a.iter().zip(b.iter()).map(|(x, y)| (x - y) * (x - y)).sum(),
        }
    }

    #[inline]
    fn rdist_to_dist(&self, rdist: f64) -> f64 {
        rdist.sqrt()
    }

    #[inline]
    fn dist_to_rdist(&self, dist: f64) -> f64 {
        dist * dist
    }
}

/// k-means on `x` from k-means++ (`n_runs` starts) or from given centroids: the centroids.
fn kmeans(
    x: ArrayView2<f64>,
    k: usize,
    init: Option<Array2<f64>>,
    n_runs: usize,
    seed: u64,
    stream: u64,
) -> Result<Array2<f64>, ClusterError> {
    let data = DatasetBase::from(x);
    let params = KMeans::params_with(k, rng(seed, stream), Euclid)
        .tolerance(tolerance(x))
        .max_n_iterations(300);
    let params = match init {
        Some(c) => params.init_method(KMeansInit::Precomputed(c)).n_runs(1),
        None => params
            .init_method(KMeansInit::KMeansPlusPlus)
            .n_runs(n_runs.max(1)),
    };
    let model = params
        .fit(&data)
        .map_err(|e| ClusterError::KMeans(e.to_string()))?;
    Ok(model.centroids().clone())
}

/// A fitted mixture: component means, each row's component, its posterior probability, and the
/// mixture (to place more rows in it).
type Mixture = (Array2<f64>, Vec<usize>, Vec<f64>, GaussianMixtureModel<f64>);

/// A Gaussian mixture fitted on `fit` with k components started from k-means; the rows of `x`
/// placed in it.
fn gmm(
    fit: ArrayView2<f64>,
    x: ArrayView2<f64>,
    k: usize,
    seed: u64,
    stream: u64,
) -> Result<Mixture, ClusterError> {
    let data = DatasetBase::from(fit.to_owned());
    let model = GaussianMixtureModel::params_with_rng(k, rng(seed, stream))
        .covariance_type(GmmCovarType::Full)
        .init_method(GmmInitMethod::KMeans)
        .n_runs(1)
        .tolerance(1e-4)
        .reg_covariance(1e-6)
        .max_n_iterations(200)
        .fit(&data)
        .map_err(|e| ClusterError::Gmm(e.to_string()))?;
    let (labels, best) = posterior(&model, x)?;
    Ok((model.means().clone(), labels, best, model))
}

/// The solution's centroids, each row's label, and with a mixture each row's posterior
/// probability and the mixture.
type Solution = (
    Array2<f64>,
    Vec<usize>,
    Option<Vec<f64>>,
    Option<GaussianMixtureModel<f64>>,
);

/// Each row's most probable component of `model` and its posterior probability.
fn posterior(
    model: &GaussianMixtureModel<f64>,
    x: ArrayView2<f64>,
) -> Result<(Vec<usize>, Vec<f64>), ClusterError> {
    let proba = model.predict_proba(&x);
    let mut labels = Vec::with_capacity(x.nrows());
    let mut best = Vec::with_capacity(x.nrows());
    for row in proba.rows() {
        let (c, p) =
            row.iter().enumerate().fold(
                (0, f64::NEG_INFINITY),
                |a, (c, &p)| if p > a.1 { (c, p) } else { a },
            );
        if !p.is_finite() {
            return Err(ClusterError::Gmm(
                "a posterior probability is not finite".into(),
            ));
        }
        labels.push(c);
        best.push(p);
    }
    Ok((labels, best))
}

/// `n` distinct row indices of `0..len` drawn with a seeded shuffle (all when `n >= len`),
/// ascending.
fn sample_rows(len: usize, n: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..len).collect();
    if n < len {
        let mut r = rng(seed, 1);
        for i in 0..n {
            let j = i + (r.next_u64() % (len - i) as u64) as usize;
            idx.swap(i, j);
        }
        idx.truncate(n);
        idx.sort_unstable();
    }
    idx
}

fn rows_of(x: ArrayView2<f64>, rows: &[usize]) -> Array2<f64> {
    x.select(ndarray::Axis(0), rows)
}

/// Scores every k of the range on the sample; `None` centroids when k does not fit.
fn score_ks(
    sample: ArrayView2<f64>,
    sil: ArrayView2<f64>,
    config: &Config,
) -> Result<Vec<(KScore, Array2<f64>)>, ClusterError> {
    // The k are fitted side by side (each fit's own seeded stream, so the order they finish in
    // does not matter): one fit alone leaves a core idle between its parallel steps.
    let ks: Vec<usize> = config
        .k_range
        .clone()
        .filter(|&k| k >= 2 && k < sample.nrows())
        .collect();
    let fits = ks
        .par_iter()
        .map(|&k| {
            let c = kmeans(sample, k, None, SCORING_RUNS, config.seed, k as u64)?;
            let labels = assign(sample, &c);
            let sizes = indices::sizes(&labels, k);
            let smallest = *sizes.iter().min().unwrap_or(&0) as f64 / labels.len() as f64;
            let score = KScore {
                k,
                silhouette: f64::NAN,
                davies_bouldin: davies_bouldin(sample, &labels, &c),
                calinski_harabasz: calinski_harabasz(sample, &labels, &c),
                inertia: inertia(sample, &labels, &c),
                smallest_share: smallest,
                admissible: smallest >= config.min_share,
                mean_rank: None,
            };
            let on_sil = assign(sil, &c);
            Ok(((score, c), (on_sil, k)))
        })
        .collect::<Result<Vec<_>, ClusterError>>()?;
    let (mut out, sil_labels): (Vec<_>, Vec<(Vec<usize>, usize)>) = fits.into_iter().unzip();
    // Every k's silhouette in one pass over the sample's pairs.
    let labelings: Vec<(&[usize], usize)> =
        sil_labels.iter().map(|(l, k)| (l.as_slice(), *k)).collect();
    for (o, s) in out.iter_mut().zip(silhouettes(sil, &labelings)) {
        o.0.silhouette = s;
    }
    // Rank the admissible k by each index; the best mean rank wins.
    let adm: Vec<usize> = (0..out.len()).filter(|&i| out[i].0.admissible).collect();
    let rank = |key: &dyn Fn(&KScore) -> f64| -> Vec<f64> {
        adm.iter()
            .map(|&i| {
                let v = key(&out[i].0);
                1.0 + adm.iter().filter(|&&j| key(&out[j].0) > v).count() as f64
            })
            .collect()
    };
    let by_sil = rank(&|s| s.silhouette);
    let by_db = rank(&|s| -s.davies_bouldin);
    let by_ch = rank(&|s| s.calinski_harabasz);
    for (n, &i) in adm.iter().enumerate() {
        out[i].0.mean_rank = Some((by_sil[n] + by_db[n] + by_ch[n]) / 3.0);
    }
    Ok(out)
}

/// Clusters the rows where `eligible` holds on `columns` (name, value per customer).
/// `previous` is the latest earlier model: its k is kept while admissible, its centroids seed
/// the fit, and its ids carry over by centroid matching.
pub fn cluster(
    columns: &[(String, Vec<Option<f64>>)],
    eligible: &[bool],
    in_fit: &[bool],
    config: &Config,
    previous: Option<&ClusterModel>,
    as_of: &str,
    engine_version: &str,
) -> Result<Outcome, ClusterError> {
    let prepared = prepare(columns, eligible, in_fit);
    let fit_positions: Vec<usize> = (0..prepared.rows.len())
        .filter(|&k| in_fit[prepared.rows[k]])
        .collect();
    let n = fit_positions.len();
    let k_floor = config.k.unwrap_or(*config.k_range.start()).max(2);
    if n < k_floor * 10 {
        return Err(ClusterError::TooFew(n, k_floor * 10, k_floor));
    }
    let x = prepared.matrix.view();
    // The rows fitted on (every clustered row unless the caller drew a fit sample); every
    // clustered row is then assigned.
    let fitted;
    let x_fit = if n == prepared.rows.len() {
        x
    } else {
        fitted = rows_of(x, &fit_positions);
        fitted.view()
    };
    let sample_idx = sample_rows(n, config.sample_rows, config.seed);
    let sample = rows_of(x_fit, &sample_idx);
    let sil_idx = sample_rows(sample.nrows(), config.silhouette_rows, config.seed ^ 0x5117);
    let sil = rows_of(sample.view(), &sil_idx);
    let scored = match config.k {
        Some(_) => Vec::new(),
        None => score_ks(sample.view(), sil.view(), config)?,
    };
    let scores: Vec<KScore> = scored.iter().map(|s| s.0.clone()).collect();
    let previous_init = previous.and_then(|p| p.centroids_in(&prepared.transforms).map(|c| (p, c)));
    let best = scores
        .iter()
        .filter(|s| s.mean_rank.is_some())
        .min_by(|a, b| {
            a.mean_rank
                .partial_cmp(&b.mean_rank)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(b.silhouette.total_cmp(&a.silhouette))
        });
    let (k, chosen_by) = match (config.k, &previous_init, best) {
        (Some(k), _, _) => (k, format!("forced: k = {k}")),
        (None, Some((p, _)), _)
            if scores.iter().any(|s| s.k == p.k && s.admissible) =>
        {
            (
                p.k,
                format!(
                    "kept the previous run's k = {} ({}): still admissible, so ids stay comparable",
                    p.k, p.as_of
                ),
            )
        }
        (None, _, Some(b)) => (
            b.k,
            format!(
                "best mean rank ({:.2}) by silhouette, Davies–Bouldin and Calinski–Harabasz among k whose every cluster holds ≥ {:.0}% of the sample",
                b.mean_rank.unwrap_or_default(),
                config.min_share * 100.0
            ),
        ),
        (None, _, None) => {
            // No k keeps every cluster above the floor: the one whose smallest cluster is largest.
            let s = scores
                .iter()
                .max_by(|a, b| a.smallest_share.total_cmp(&b.smallest_share))
                .ok_or(ClusterError::TooFew(n, k_floor * 10, k_floor))?;
            (
                s.k,
                format!(
                    "no k in the range keeps every cluster ≥ {:.0}%: k = {} has the largest smallest cluster ({:.1}%)",
                    config.min_share * 100.0,
                    s.k,
                    s.smallest_share * 100.0
                ),
            )
        }
    };
    // Stability: refits on bootstrap resamples of the sample, labels compared on the sample;
    // fitted side by side with the solution (each refit has its own seeded stream).
    let refit = |b: usize| -> Result<Vec<usize>, ClusterError> {
        let mut r = rng(config.seed ^ 0xB007, b as u64 + 1);
        let idx: Vec<usize> = (0..sample.nrows())
            .map(|_| (r.next_u64() % sample.nrows() as u64) as usize)
            .collect();
        let resample = rows_of(sample.view(), &idx);
        let c = match config.clusterer {
            Clusterer::Kmeans => kmeans(
                resample.view(),
                k,
                None,
                SCORING_RUNS,
                config.seed,
                100 + b as u64,
            )?,
            Clusterer::Gmm => {
                gmm(
                    resample.view(),
                    resample.view(),
                    k,
                    config.seed,
                    100 + b as u64,
                )?
                .0
            }
        };
        Ok(assign(sample.view(), &c))
    };
    let solve = || -> Result<Solution, ClusterError> {
        // The fit on every row: from the previous centroids when k is the previous k, else from
        // the best of `n_runs` k-means++ starts on the sample.
        let init = match &previous_init {
            Some((p, c)) if p.k == k => c.clone(),
            _ => kmeans(sample.view(), k, None, config.n_runs, config.seed, 50)?,
        };
        Ok(match config.clusterer {
            Clusterer::Kmeans => {
                let c = kmeans(x_fit, k, Some(init), 1, config.seed, 0)?;
                let l = assign(x, &c);
                (c, l, None, None)
            }
            Clusterer::Gmm => {
                let (c, l, p, m) = gmm(x_fit, x, k, config.seed, 0)?;
                (c, l, Some(p), Some(m))
            }
        })
    };
    let (solution, refits) = rayon::join(solve, || {
        (0..config.bootstrap)
            .into_par_iter()
            .map(refit)
            .collect::<Result<Vec<_>, ClusterError>>()
    });
    let (centroids, labels, probability, mixture) = solution?;
    let reference = assign(sample.view(), &centroids);
    let bootstrap_ari: Vec<f64> = refits?
        .iter()
        .map(|labels| adjusted_rand(&reference, labels))
        .collect();
    // Ids: matched to the previous model's, or by size (largest first) on a first run.
    let (ids, matching) = match &previous_init {
        Some((p, old)) => {
            let m = match_clusters(&centroids, old, &p.ids);
            (m.ids.clone(), Some(m))
        }
        None => {
            let sizes = indices::sizes(&labels, k);
            let mut order: Vec<usize> = (0..k).collect();
            order.sort_by_key(|&c| (std::cmp::Reverse(sizes[c]), c));
            let mut ids = vec![0u32; k];
            for (rank, &c) in order.iter().enumerate() {
                ids[c] = rank as u32 + 1;
            }
            (ids, None)
        }
    };
    let mut names = cluster_names(&centroids, &prepared.transforms, &ids);
    // A cluster that kept its place keeps its name (dashboards filter on it), unless that would
    // repeat a name.
    if let (Some((p, _)), Some(m)) = (&previous_init, &matching) {
        let kept: Vec<Option<String>> = ids
            .iter()
            .map(|id| {
                let old = p.ids.iter().position(|o| o == id)?;
                (!m.moved.contains(id) && !m.new.contains(id)).then(|| p.names[old].clone())
            })
            .collect();
        let candidate: Vec<String> = kept
            .iter()
            .zip(&names)
            .map(|(k, n)| k.clone().unwrap_or_else(|| n.clone()))
            .collect();
        let unique = candidate
            .iter()
            .all(|n| candidate.iter().filter(|m| *m == n).count() == 1);
        if unique {
            names = candidate;
        }
    }
    let model = ClusterModel {
        engine_version: engine_version.to_string(),
        as_of: as_of.to_string(),
        seed: config.seed,
        clusterer: config.clusterer,
        features: prepared.transforms.clone(),
        k,
        ids,
        names,
        centroids: centroids.rows().into_iter().map(|r| r.to_vec()).collect(),
    };
    debug_assert_eq!(model.centroid_array(), centroids);
    Ok(Outcome {
        model,
        rows: prepared.rows,
        labels,
        probability,
        imputed: prepared.imputed,
        imputed_per_feature: prepared.imputed_per_feature,
        scores,
        chosen_by,
        bootstrap_ari,
        matching,
        sample_rows: sample.nrows(),
        mixture,
    })
}

/// Rows placed in a fitted clustering.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    /// Input rows clustered, and the centroid index of each (into `model.ids`).
    pub rows: Vec<usize>,
    pub labels: Vec<usize>,
    /// With a Gaussian mixture, each clustered row's posterior probability of its component.
    pub probability: Option<Vec<f64>>,
    /// Per clustered row, features imputed.
    pub imputed: Vec<u8>,
    pub imputed_per_feature: Vec<usize>,
}

/// Places the eligible rows of `columns` (the model's features, by name and in order) in the
/// fitted clustering: each row transformed as the model's features say, then in its nearest
/// centroid, or with a mixture its most probable component. The same rows placed in any
/// grouping get the same clusters.
pub fn place(
    model: &ClusterModel,
    mixture: Option<&GaussianMixtureModel<f64>>,
    columns: &[(String, Vec<Option<f64>>)],
    eligible: &[bool],
) -> Result<Placed, ClusterError> {
    let p = prepare::apply(&model.features, columns, eligible);
    let (labels, probability) = match (model.clusterer, mixture) {
        (Clusterer::Gmm, Some(m)) => {
            let (l, p) = posterior(m, p.matrix.view())?;
            (l, Some(p))
        }
        (Clusterer::Gmm, None) => {
            return Err(ClusterError::Gmm(
                "a Gaussian mixture places customers only in the process that fitted it".into(),
            ))
        }
        (Clusterer::Kmeans, _) => (assign(p.matrix.view(), &model.centroid_array()), None),
    };
    Ok(Placed {
        rows: p.rows,
        labels,
        probability,
        imputed: p.imputed,
        imputed_per_feature: p.imputed_per_feature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three well-separated blobs in two features, with a little noise.
    fn blobs(n: usize, shift: f64) -> Vec<(String, Vec<Option<f64>>)> {
        let mut r = rng(7, 0);
        let mut u = || (r.next_u64() % 1000) as f64 / 1000.0;
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for i in 0..n {
            let c = (i % 3) as f64;
            a.push(Some(10.0 * c + u() + shift));
            b.push(Some(-10.0 * c + u()));
        }
        vec![("a".to_string(), a), ("b".to_string(), b)]
    }

    /// The distance k-means runs with gives linfa's `L2Dist` values, on contiguous rows, on
    /// strided columns and on whole centroid matrices (the convergence test).
    #[test]
    fn euclid_matches_linfa_l2() {
        use linfa_nn::distance::L2Dist;
        let mut r = rng(3, 0);
        let mut u = || (r.next_u64() % 100_000) as f64 / 997.0 - 50.0;
        let a = Array2::from_shape_fn((5, 7), |_| u());
        let b = Array2::from_shape_fn((5, 7), |_| u());
        for i in 0..5 {
            let (x, y) = (a.row(i), b.row(i));
            assert_eq!(Euclid.rdistance(x, y), L2Dist.rdistance(x, y));
            assert_eq!(Euclid.distance(x, y), L2Dist.distance(x, y));
        }
        for j in 0..7 {
            let (x, y) = (a.column(j), b.column(j));
            assert!(x.as_slice().is_none());
            assert_eq!(Euclid.rdistance(x, y), L2Dist.rdistance(x, y));
        }
        assert_eq!(
            Euclid.distance(a.view(), b.view()),
            L2Dist.distance(a.view(), b.view())
        );
        assert_eq!(
            Euclid
                .dist_to_rdist(Euclid.distance(a.row(0), b.row(0)))
                .sqrt(),
            Euclid.distance(a.row(0), b.row(0))
        );
    }

    #[test]
    fn three_blobs_give_k_three_stable_and_ids_kept_next_night() {
        let config = Config {
            k_range: 2..=6,
            ..Config::default()
        };
        let cols = blobs(900, 0.0);
        let all = [true; 900];
        let first = cluster(&cols, &all, &all, &config, None, "2024-01-01", "t").unwrap();
        assert_eq!(first.model.k, 3, "{:?}", first.scores);
        assert!(first.bootstrap_ari.iter().all(|a| *a > 0.99));
        // Same inputs, same seed: same labels.
        let again = cluster(&cols, &all, &all, &config, None, "2024-01-01", "t").unwrap();
        assert_eq!(first.labels, again.labels);
        // Next night the data moved a little: every row keeps its cluster id.
        let next_cols = blobs(900, 0.3);
        let next = cluster(
            &next_cols,
            &all,
            &all,
            &config,
            Some(&first.model),
            "2024-01-02",
            "t",
        )
        .unwrap();
        let id = |o: &Outcome, r: usize| o.model.ids[o.labels[r]];
        assert!((0..900).all(|r| id(&first, r) == id(&next, r)));
        assert!(next.chosen_by.contains("kept"));
    }
}
