//! Clusters: behavioural k-means clusters (linfa, in `patronage-clusters`) on features asked
//! for by name, ids kept from the latest earlier run's model (`OUT/models/clusters/<as-of>.json`),
//! the `cluster_profiles` table, and `cluster_id`, `cluster_name`, `cluster_probability` (Gaussian
//! mixture only), `cluster_imputed` in `segments`.

use std::path::Path;

use patronage_clusters::{cluster, place, ClusterModel, Clusterer, Config, Placed};
use patronage_features::FeatureTable;
use polars::prelude::*;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Warnings;
use crate::error::EngineError;
use crate::protocol::Buyer;
use crate::tables;
use patronage_segments::ExactSum;
use std::collections::BTreeMap;

/// `[clusters]` in the config.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClustersConfig {
    /// Find clusters (and write `cluster_profiles`).
    pub enabled: bool,
    /// Feature columns by name; empty: recency_days, frequency, monetary, aov, tenure_days, plus
    /// p_alive when the models ran and sessions, bounce_rate with a clickstream.
    pub features: Vec<String>,
    /// k is chosen in k_min..=k_max unless `k` forces it (`--k`).
    pub k_min: usize,
    pub k_max: usize,
    pub k: Option<usize>,
    /// Smallest admissible cluster (share of the customers clustered).
    pub min_share: f64,
    /// Rows of the seeded sample k is chosen on.
    pub sample_rows: usize,
    /// Customers the transforms and centroids are fitted on: the eligible customers with the
    /// smallest hashes of their `customer_id` (all of them when fewer). A sample that depends
    /// only on the ids, so a partitioned run draws the same one; every customer is then
    /// assigned to its nearest centroid.
    pub fit_rows: usize,
    /// k-means++ initializations per fit.
    pub n_init: usize,
    /// Bootstrap refits for the stability estimate.
    pub bootstrap: usize,
    pub seed: u64,
    /// `kmeans`, or `gmm` (a Gaussian mixture started from k-means: soft membership, its
    /// probability in `segments.cluster_probability`).
    pub clusterer: Clusterer,
}

impl Default for ClustersConfig {
    fn default() -> Self {
        let c = Config::default();
        ClustersConfig {
            enabled: true,
            features: Vec::new(),
            k_min: *c.k_range.start(),
            k_max: *c.k_range.end(),
            k: None,
            min_share: c.min_share,
            sample_rows: c.sample_rows,
            fit_rows: DEFAULT_FIT_ROWS,
            n_init: c.n_runs,
            bootstrap: c.bootstrap,
            seed: c.seed,
            clusterer: c.clusterer,
        }
    }
}

impl ClustersConfig {
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.k_min < 2 || self.k_max < self.k_min || self.k_max > 16 {
            return Err(format!(
                "clusters.k_min..k_max must satisfy 2 ≤ k_min ≤ k_max ≤ 16 (got {}..{})",
                self.k_min, self.k_max
            ));
        }
        if let Some(k) = self.k {
            if !(2..=16).contains(&k) {
                return Err(format!("clusters.k (--k) must be 2..16, got {k}"));
            }
        }
        if !(0.0..0.5).contains(&self.min_share) {
            return Err("clusters.min_share must be in [0, 0.5)".into());
        }
        if self.sample_rows < 100 || self.n_init == 0 || self.fit_rows < self.sample_rows {
            return Err(
                "clusters.sample_rows must be ≥ 100, clusters.fit_rows ≥ sample_rows and clusters.n_init ≥ 1"
                    .into(),
            );
        }
        Ok(())
    }

    fn algorithm(&self) -> Config {
        Config {
            k_range: self.k_min..=self.k_max,
            k: self.k,
            min_share: self.min_share,
            sample_rows: self.sample_rows,
            n_runs: self.n_init,
            bootstrap: self.bootstrap,
            seed: self.seed,
            clusterer: self.clusterer,
            ..Config::default()
        }
    }
}

/// Customers fitted on by default: ample for a few centroids in a handful of features, and a
/// bounded sample for a partitioned run to gather.
pub const DEFAULT_FIT_ROWS: usize = 250_000;

/// The stable hash customers are sampled and partitioned by.
pub(crate) fn id_hash(id: &str) -> u64 {
    patronage_segments::stable_hash(id.as_bytes())
}

/// Features of the models (not of the feature table): the fit scores the sample for them.
const MODEL_FEATURES: [&str; 2] = ["p_alive", "clv"];

/// The features clustered on: the configured list, or the default one for what this run has
/// (p_alive when the models scored; sessions and bounce rate with a clickstream).
fn feature_list(config: &ClustersConfig, f: &FeatureTable, p_alive: bool) -> Vec<String> {
    if !config.features.is_empty() {
        return config.features.clone();
    }
    let mut names: Vec<&str> = vec![
        "recency_days",
        "frequency",
        "monetary",
        "aov",
        "tenure_days",
    ];
    if p_alive {
        names.push("p_alive");
    }
    for n in ["sessions", "bounce_rate"] {
        if f.has(n) {
            names.push(n);
        }
    }
    names.into_iter().map(String::from).collect()
}

fn unknown_feature(e: impl std::fmt::Display) -> EngineError {
    EngineError::InvalidConfig {
        path: "clusters.features".into(),
        message: format!("{e}; a cluster feature must be a numeric column of customer_features (or p_alive / clv with models)"),
    }
}

/// One customer of the fit sample: its id's hash and the id, its values of the table's
/// features, and its BTYD summary (the fit scores it for p_alive and CLV).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SampleRow {
    pub hash: u64,
    pub id: String,
    pub values: Vec<Option<f64>>,
    pub buyer: Option<Buyer>,
}

/// A partition's share of the cluster fit sample: of the customers that can be clustered
/// (buyers, and others with every table feature), those whose id hashes lowest, at most
/// `fit_rows`. The base's sample is the lowest `fit_rows` of the partitions' merged, so it
/// depends on the ids alone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ClusterSample {
    /// The table's features the rows hold values of, in order.
    pub features: Vec<String>,
    /// Ascending by id.
    pub rows: Vec<SampleRow>,
    /// When the partition held more candidates than it sent: the largest (hash, id) it sent
    /// (every candidate it kept back is above it).
    pub cutoff: Option<(u64, String)>,
}

/// Rows a partition of `partitions` sends: its expected share of the sample four times over (at
/// least 100), so that the base's lowest `fit_rows` are among the rows sent (checked when they
/// are merged; a partition's share is binomial, so four times its mean is never reached in
/// practice).
fn rows_to_send(fit_rows: usize, partitions: u32) -> usize {
    if partitions <= 1 {
        fit_rows
    } else {
        (4 * fit_rows.div_ceil(partitions as usize))
            .max(100)
            .min(fit_rows)
    }
}

impl ClusterSample {
    pub fn of(
        config: &ClustersConfig,
        f: &FeatureTable,
        ids: &[String],
        buyers: &[Option<Buyer>],
        partitions: u32,
    ) -> Result<Self, EngineError> {
        let features: Vec<String> = feature_list(config, f, false)
            .into_iter()
            .filter(|n| !MODEL_FEATURES.contains(&n.as_str()))
            .collect();
        let columns: Vec<Vec<Option<f64>>> = features
            .iter()
            .map(|n| f.numeric(n).map_err(unknown_feature))
            .collect::<Result<_, _>>()?;
        let candidates: Vec<(u64, u32)> = (0..f.len())
            .into_par_iter()
            .filter(|&r| buyers[r].is_some() || columns.iter().all(|c| c[r].is_some()))
            .map(|r| (id_hash(&ids[r]), r as u32))
            .collect();
        let limit = rows_to_send(config.fit_rows, partitions);
        let held = candidates.len();
        let key = |r: &(u64, u32)| (r.0, &ids[r.1 as usize]);
        let picked = lowest(candidates, limit, |a, b| key(a).cmp(&key(b)));
        let cutoff = (held > limit)
            .then(|| picked.iter().max_by(|a, b| key(a).cmp(&key(b))))
            .flatten()
            .map(|r| (r.0, ids[r.1 as usize].clone()));
        // In id order, as the customers of a run are (a base smaller than the sample is
        // clustered exactly as a run on every customer would).
        let picked: Vec<(&str, (u64, u32))> = picked
            .into_iter()
            .map(|p| (ids[p.1 as usize].as_str(), p))
            .collect();
        let picked = sorted_by_id(picked, |p| p.0);
        let rows = picked
            .into_par_iter()
            .map(|(_, (hash, r))| {
                let r = r as usize;
                SampleRow {
                    hash,
                    id: ids[r].clone(),
                    values: columns.iter().map(|c| c[r]).collect(),
                    buyer: buyers[r],
                }
            })
            .collect();
        Ok(ClusterSample {
            features,
            rows,
            cutoff,
        })
    }

    /// The base's sample from the partitions': their lowest `fit_rows`, checked complete (no
    /// partition kept back a customer that belongs in it).
    pub fn merge(parts: Vec<ClusterSample>, fit_rows: usize) -> Result<Self, EngineError> {
        let features = parts
            .first()
            .map(|p| p.features.clone())
            .unwrap_or_default();
        let cutoffs: Vec<(u64, String)> = parts.iter().filter_map(|p| p.cutoff.clone()).collect();
        let rows: Vec<SampleRow> = parts.into_iter().flat_map(|p| p.rows).collect();
        let rows = lowest(rows, fit_rows, |a, b| (a.hash, &a.id).cmp(&(b.hash, &b.id)));
        let last = rows.iter().map(|r| (r.hash, &r.id)).max();
        let complete = cutoffs
            .iter()
            .all(|(h, id)| rows.len() == fit_rows && last.is_some_and(|l| l <= (*h, id)));
        if !complete {
            return Err(EngineError::InvalidOptions(
                "a partition held more of the cluster fit sample than it sent (one partition far larger than the others): run with fewer partitions".into(),
            ));
        }
        let rows = sorted_by_id(rows, |r| r.id.as_str());
        Ok(ClusterSample {
            features,
            rows,
            cutoff: None,
        })
    }
}

/// The `n` smallest items by `cmp` (a total order), in no particular order.
/// `items` in the order of their ids, sorted in parallel by each id's first bytes as a number
/// ([`text_prefix`]) and by the whole id only where those are equal.
fn sorted_by_id<T: Send + Sync>(items: Vec<T>, id: impl Fn(&T) -> &str + Sync) -> Vec<T> {
    let mut keyed: Vec<(u64, T)> = items
        .into_par_iter()
        .map(|t| (text_prefix(id(&t)), t))
        .collect();
    keyed.par_sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| id(&a.1).cmp(id(&b.1))));
    keyed.into_iter().map(|(_, t)| t).collect()
}

/// The first eight bytes of `id`, zero-padded, as a big-endian number. Where two ids' prefixes
/// differ, they are in the order of the ids: the first differing byte decides both, and an id
/// that ends there (a zero pad) is a prefix of the other, so the smaller. Equal prefixes say
/// nothing (`"ab"` and `"ab\0"`): then the ids are compared whole.
fn text_prefix(id: &str) -> u64 {
    let mut head = [0u8; 8];
    let n = id.len().min(8);
    head[..n].copy_from_slice(&id.as_bytes()[..n]);
    u64::from_be_bytes(head)
}

fn lowest<T>(mut items: Vec<T>, n: usize, cmp: impl Fn(&T, &T) -> std::cmp::Ordering) -> Vec<T> {
    if items.len() > n {
        items.select_nth_unstable_by(n, &cmp);
        items.truncate(n);
    }
    items
}

/// The clustering the fit decided, with what the partitions need to place their customers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FittedClusters {
    /// The features clustered on, in order.
    pub features: Vec<String>,
    pub model: ClusterModel,
    /// Per cluster (model order), per feature: the median over the sample's members.
    pub medians: Vec<Vec<Option<f64>>>,
    /// The fit's part of the stage's manifest (how k was chosen, stability, warm start).
    pub manifest: serde_json::Value,
    /// A Gaussian mixture places customers only in the process that fitted it.
    #[serde(skip)]
    pub mixture: Option<patronage_clusters::GaussianMixtureModel<f64>>,
}

/// Scores a sample's buyers for p_alive and CLV: per buyer, as the partitions score theirs.
pub(crate) type SampleScorer<'a> = &'a dyn Fn(&[Buyer]) -> (Vec<f64>, Vec<Option<f64>>);

/// Fits the clustering on the base's sample (`scorer`: when the models scored). `Err` is why
/// there are no clusters this run (too few customers), not a failed run.
pub(crate) fn fit(
    config: &ClustersConfig,
    sample: &ClusterSample,
    scorer: Option<SampleScorer>,
    out: &Path,
    as_of: &str,
    warnings: &mut Warnings,
) -> Result<Result<FittedClusters, String>, EngineError> {
    let n = sample.rows.len();
    let (p_alive, clv) = match scorer {
        Some(score) => {
            let (at, buyers): (Vec<usize>, Vec<Buyer>) = sample
                .rows
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r.buyer.map(|b| (i, b)))
                .unzip();
            let (p, c) = score(&buyers);
            let (mut p_alive, mut clv) = (vec![None; n], vec![None; n]);
            for (k, &i) in at.iter().enumerate() {
                p_alive[i] = Some(p[k]);
                clv[i] = c[k];
            }
            (Some(p_alive), Some(clv))
        }
        None => (None, None),
    };
    let mut names = if config.features.is_empty() {
        let mut names = sample.features.clone();
        if p_alive.is_some() {
            let at = names
                .iter()
                .position(|n| n == "tenure_days")
                .map_or(names.len(), |k| k + 1);
            names.insert(at, "p_alive".into());
        }
        names
    } else {
        config.features.clone()
    };
    names.dedup();
    let mut columns: Vec<(String, Vec<Option<f64>>)> = Vec::new();
    for name in &names {
        let values = match (name.as_str(), &p_alive, &clv) {
            ("p_alive", Some(p), _) => p.clone(),
            ("clv", _, Some(c)) => c.clone(),
            _ => {
                let k = sample
                    .features
                    .iter()
                    .position(|f| f == name)
                    .ok_or_else(|| unknown_feature(format!("no feature `{name}` in this run")))?;
                sample.rows.iter().map(|r| r.values[k]).collect()
            }
        };
        columns.push((name.clone(), values));
    }
    let eligible: Vec<bool> = (0..n)
        .map(|i| sample.rows[i].buyer.is_some() || columns.iter().all(|(_, v)| v[i].is_some()))
        .collect();
    let previous = previous_model(out, as_of, warnings);
    let outcome = match cluster(
        &columns,
        &eligible,
        &eligible,
        &config.algorithm(),
        previous.as_ref(),
        as_of,
        crate::VERSION,
    ) {
        Ok(o) => o,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let k = outcome.model.k;
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); k];
    for (i, &row) in outcome.rows.iter().enumerate() {
        members[outcome.labels[i]].push(row);
    }
    let medians = members
        .par_iter()
        .map(|rows| {
            columns
                .iter()
                .map(|(_, v)| median(rows.iter().filter_map(|&r| v[r]).collect()))
                .collect()
        })
        .collect();
    let scores: Vec<serde_json::Value> = outcome
        .scores
        .iter()
        .map(|s| serde_json::to_value(s).unwrap_or_default())
        .collect();
    let ari = &outcome.bootstrap_ari;
    let manifest = json!({
        "transforms": outcome.model.features,
        "clusterer": outcome.model.clusterer,
        "k": outcome.model.k,
        "chosen_by": outcome.chosen_by,
        "k_range": [config.k_min, config.k_max],
        "min_share": config.min_share,
        "fit_rows": outcome.rows.len(),
        "sample_rows": outcome.sample_rows,
        "indices_per_k": scores,
        "bootstrap_ari": { "refits": ari.len(), "mean": if ari.is_empty() { None } else { Some(ari.iter().sum::<f64>() / ari.len() as f64) }, "min": ari.iter().copied().reduce(f64::min), "values": ari },
        "warm_start": previous.as_ref().map(|p| json!({ "from": p.as_of, "k": p.k, "same_features": p.centroids_in(&outcome.model.features).is_some() })),
        "changes": outcome.matching,
        "ids": outcome.model.ids,
        "names": outcome.model.names,
        "seed": config.seed,
    });
    Ok(Ok(FittedClusters {
        features: names,
        model: outcome.model,
        medians,
        manifest,
        mixture: outcome.mixture,
    }))
}

/// Inputs of the stage besides the feature table.
pub(crate) struct ClusterInputs<'a> {
    pub as_of: &'a str,
    pub p_alive: Option<&'a [Option<f64>]>,
    pub clv: Option<&'a [Option<f64>]>,
    /// The segments frame: `rfm_segment` is read, the cluster columns are added.
    pub segments: &'a mut DataFrame,
}

/// Places every customer in the fitted clusters: the cluster columns of `segments`,
/// `cluster_profiles` and the stage's manifest (or, when the fit found no clusters, null
/// columns and why).
pub(crate) fn run(
    config: &ClustersConfig,
    fitted: &Result<FittedClusters, String>,
    f: &FeatureTable,
    inputs: ClusterInputs,
    warnings: &mut Warnings,
) -> Result<ClustersStage, EngineError> {
    let n = f.len();
    let fitted = match fitted {
        Ok(c) => c,
        Err(e) => {
            warnings.warn(format!("no clusters this run: {e}"));
            add_cluster_columns(inputs.segments, n, None)?;
            let names = feature_list(config, f, inputs.p_alive.is_some());
            return Ok(ClustersStage {
                profile: None,
                manifest: json!({ "status": "skipped", "reason": e, "features": names }),
                artifact: None,
            });
        }
    };
    let names = &fitted.features;
    let mut columns: Vec<(String, Vec<Option<f64>>)> = Vec::new();
    for name in names {
        let values = match (name.as_str(), inputs.p_alive, inputs.clv) {
            ("p_alive", Some(p), _) => p.to_vec(),
            ("clv", _, Some(c)) => c.to_vec(),
            _ => f.numeric(name).map_err(unknown_feature)?,
        };
        columns.push((name.clone(), values));
    }
    // Buyers are clustered (missing features imputed and counted); a customer without an order
    // only when every feature exists for them.
    let freq = f.int("frequency")?;
    let eligible: Vec<bool> = (0..n)
        .map(|i| freq.get(i).is_some_and(|v| v > 0) || columns.iter().all(|(_, v)| v[i].is_some()))
        .collect();
    let model = &fitted.model;
    let placed = place(model, fitted.mixture.as_ref(), &columns, &eligible).map_err(|e| {
        EngineError::Internal {
            table: "segments".into(),
            message: e.to_string(),
        }
    })?;
    add_cluster_columns(inputs.segments, n, Some((model, &placed)))?;

    let mut sizes = vec![0usize; model.k];
    for &l in &placed.labels {
        sizes[l] += 1;
    }
    let smallest =
        sizes.iter().min().copied().unwrap_or(0) as f64 / placed.rows.len().max(1) as f64;
    if smallest < config.min_share {
        warnings.warn(format!(
            "the smallest cluster holds {:.1}% of the customers clustered, below clusters.min_share ({:.0}%){}",
            smallest * 100.0,
            config.min_share * 100.0,
            if config.clusterer == Clusterer::Gmm { "; the Gaussian mixture moved customers between components after k was chosen on k-means" } else { "" }
        ));
    }
    let profile = ProfilePart::of(f, model.k, &placed, &inputs)?;
    let mut manifest = json!({
        "status": "ok",
        "features": names,
        "customers_clustered": placed.rows.len(),
        "customers_not_clustered": n - placed.rows.len(),
        "imputed_per_feature": names.iter().cloned().zip(placed.imputed_per_feature.iter().copied()).collect::<std::collections::BTreeMap<String, usize>>(),
        "artifact": format!("{ARTIFACT_DIR}/{}.json", inputs.as_of),
    });
    if let (Some(m), Some(fit)) = (manifest.as_object_mut(), fitted.manifest.as_object()) {
        m.extend(fit.clone());
    }
    let artifact = serde_json::to_vec_pretty(model).map_err(|e| EngineError::Internal {
        table: "cluster model".into(),
        message: e.to_string(),
    })?;
    Ok(ClustersStage {
        profile: Some(profile),
        manifest,
        artifact: Some(artifact),
    })
}

/// What the clusters stage produced.
pub(crate) struct ClustersStage {
    /// This run's (or partition's) part of `cluster_profiles`.
    pub profile: Option<ProfilePart>,
    pub manifest: serde_json::Value,
    /// The model artifact (JSON) to publish with the run.
    pub artifact: Option<Vec<u8>>,
}

/// Where model artifacts of a kind live: `OUT/models/<kind>/<as-of>.json`.
pub(crate) const ARTIFACT_DIR: &str = "models/clusters";

/// The latest model saved by a run with an earlier as-of day.
fn previous_model(out: &Path, as_of: &str, warnings: &mut Warnings) -> Option<ClusterModel> {
    let dir = out.join(ARTIFACT_DIR);
    let mut dates: Vec<String> = fs_err::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let date = name.strip_suffix(".json")?.to_string();
            (date.len() == 10 && date.as_str() < as_of).then_some(date)
        })
        .collect();
    dates.sort();
    let latest = dates.pop()?;
    let path = dir.join(format!("{latest}.json"));
    match fs_err::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice::<ClusterModel>(&b).map_err(|e| e.to_string()))
    {
        Ok(m) => Some(m),
        Err(e) => {
            warnings.warn(format!(
                "cannot read the previous cluster model {} ({e}); clusters start afresh",
                path.display()
            ));
            None
        }
    }
}

/// `cluster_id`, `cluster_name`, `cluster_probability` (Gaussian mixture), `cluster_imputed`
/// (features imputed) on `segments`; null for customers not clustered.
pub(crate) fn add_cluster_columns(
    segments: &mut DataFrame,
    n: usize,
    placed: Option<(&ClusterModel, &Placed)>,
) -> Result<(), EngineError> {
    let mut id: Vec<Option<i64>> = vec![None; n];
    let mut name: Vec<Option<&str>> = vec![None; n];
    let mut imputed: Vec<Option<i64>> = vec![None; n];
    let mut probability: Vec<Option<f64>> = vec![None; n];
    if let Some((model, p)) = placed {
        for (k, &row) in p.rows.iter().enumerate() {
            let c = p.labels[k];
            id[row] = Some(i64::from(model.ids[c]));
            name[row] = Some(model.names[c].as_str());
            imputed[row] = Some(i64::from(p.imputed[k]));
            probability[row] = p.probability.as_ref().map(|p| p[k]);
        }
    }
    let internal = |e: PolarsError| EngineError::Internal {
        table: "segments".into(),
        message: e.to_string(),
    };
    for c in [
        Column::new("cluster_id".into(), id),
        Column::new("cluster_name".into(), name),
        Column::new("cluster_probability".into(), probability),
        Column::new("cluster_imputed".into(), imputed),
    ] {
        segments.with_column(c).map_err(internal)?;
    }
    Ok(())
}

/// The median, as [`patronage_clusters::quantile`] at 0.5 of the sorted values gives it, from
/// two order statistics found in linear time (no sort).
fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let pos = 0.5 * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let (_, a, right) = v.select_nth_unstable_by(lo, f64::total_cmp);
    let a = *a;
    let b = if hi == lo {
        a
    } else {
        right.iter().copied().min_by(f64::total_cmp).unwrap_or(a)
    };
    Some(a + (b - a) * (pos - lo as f64))
}

/// A partition's part of `cluster_profiles` (exact sums, counts), mergeable across partitions;
/// the medians come from the fit's sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ProfilePart {
    /// Per cluster (model order).
    pub clusters: Vec<ClusterPart>,
    /// Net revenue of every customer of the partition (clustered or not).
    pub revenue: ExactSum,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ClusterPart {
    pub customers: i64,
    pub revenue: ExactSum,
    /// Sum and count of the members' p_alive and CLV (those that have one).
    pub p_alive: (ExactSum, i64),
    pub clv: (ExactSum, i64),
    /// Members per RFM segment.
    pub segments: BTreeMap<String, i64>,
}

impl ClusterPart {
    /// Adds another part of the same cluster.
    fn merge(&mut self, other: &ClusterPart) {
        self.customers += other.customers;
        self.revenue.merge(&other.revenue);
        self.p_alive.0.merge(&other.p_alive.0);
        self.p_alive.1 += other.p_alive.1;
        self.clv.0.merge(&other.clv.0);
        self.clv.1 += other.clv.1;
        for (s, n) in &other.segments {
            *self.segments.entry(s.clone()).or_default() += n;
        }
    }
}

impl ProfilePart {
    fn of(
        f: &FeatureTable,
        k: usize,
        o: &Placed,
        inputs: &ClusterInputs,
    ) -> Result<Self, EngineError> {
        let revenue = f.float("net_revenue")?;
        let segment = inputs
            .segments
            .column("rfm_segment")
            .and_then(|c| c.str().cloned())
            .map_err(|e| EngineError::Internal {
                table: "cluster_profiles".into(),
                message: e.to_string(),
            })?;
        // Blocks of clustered rows tallied in parallel, then merged in order (the sums are
        // exact, so the grouping changes no bit). Segments are counted by name in a block and
        // named once per block.
        const BLOCK: usize = 1 << 15;
        let blocks: Vec<Vec<ClusterPart>> = o
            .rows
            .par_chunks(BLOCK)
            .zip(o.labels.par_chunks(BLOCK))
            .map(|(rows, labels)| {
                let mut clusters = vec![ClusterPart::default(); k];
                let mut segments: Vec<BTreeMap<&str, i64>> = vec![BTreeMap::new(); k];
                for (&row, &label) in rows.iter().zip(labels) {
                    let c = &mut clusters[label];
                    c.customers += 1;
                    if let Some(r) = revenue.get(row) {
                        c.revenue.add(r);
                    }
                    for (sum, values) in
                        [(&mut c.p_alive, inputs.p_alive), (&mut c.clv, inputs.clv)]
                    {
                        if let Some(v) = values.and_then(|v| v[row]) {
                            sum.0.add(v);
                            sum.1 += 1;
                        }
                    }
                    if let Some(s) = segment.get(row) {
                        *segments[label].entry(s).or_default() += 1;
                    }
                }
                for (c, counts) in clusters.iter_mut().zip(segments) {
                    c.segments = counts
                        .into_iter()
                        .map(|(s, n)| (s.to_string(), n))
                        .collect();
                }
                clusters
            })
            .collect();
        let mut clusters = vec![ClusterPart::default(); k];
        for block in &blocks {
            for (a, b) in clusters.iter_mut().zip(block) {
                a.merge(b);
            }
        }
        let present: Vec<f64> = revenue.iter().flatten().collect();
        Ok(ProfilePart {
            clusters,
            revenue: ExactSum::of_slice(&present),
        })
    }

    /// Adds another partition's part.
    #[allow(dead_code)]
    pub fn merge(&mut self, other: &ProfilePart) {
        for (a, b) in self.clusters.iter_mut().zip(&other.clusters) {
            a.merge(b);
        }
        self.revenue.merge(&other.revenue);
    }

    /// `cluster_profiles`: one row per cluster, in id order.
    pub fn table(&self, fitted: &FittedClusters, models: bool) -> Result<DataFrame, EngineError> {
        let model = &fitted.model;
        let mut order: Vec<usize> = (0..model.k).collect();
        order.sort_by_key(|&c| model.ids[c]);
        let clustered: i64 = self.clusters.iter().map(|c| c.customers).sum();
        let total_revenue = self.revenue.value();
        let at = |c: usize| &self.clusters[c];
        let mean = |s: &(ExactSum, i64)| (models && s.1 > 0).then(|| s.0.value() / s.1 as f64);
        let mut out = vec![
            Column::new(
                "cluster_id".into(),
                order
                    .iter()
                    .map(|&c| i64::from(model.ids[c]))
                    .collect::<Vec<i64>>(),
            ),
            Column::new(
                "cluster_name".into(),
                order
                    .iter()
                    .map(|&c| model.names[c].as_str())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "customers".into(),
                order.iter().map(|&c| at(c).customers).collect::<Vec<_>>(),
            ),
            Column::new(
                "share".into(),
                order
                    .iter()
                    .map(|&c| at(c).customers as f64 / clustered.max(1) as f64)
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "revenue_share".into(),
                order
                    .iter()
                    .map(|&c| (total_revenue > 0.0).then(|| at(c).revenue.value() / total_revenue))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "mean_p_alive".into(),
                order
                    .iter()
                    .map(|&c| mean(&at(c).p_alive))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "mean_clv".into(),
                order.iter().map(|&c| mean(&at(c).clv)).collect::<Vec<_>>(),
            ),
            Column::new(
                "dominant_rfm_segment".into(),
                order
                    .iter()
                    .map(|&c| {
                        at(c)
                            .segments
                            .iter()
                            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                            .map(|(s, _)| s.clone())
                    })
                    .collect::<Vec<_>>(),
            ),
        ];
        // Medians over each cluster's members in the fit sample (every member below its size).
        out.extend(fitted.features.iter().enumerate().map(|(j, name)| {
            Column::new(
                format!("median_{name}").into(),
                order
                    .iter()
                    .map(|&c| fitted.medians[c][j])
                    .collect::<Vec<_>>(),
            )
        }));
        tables::frame("cluster_profiles", out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ordering ids by (prefix, id) is ordering them by id: short ids, ids that share eight
    /// bytes, NUL bytes where the zero pad would be, bytes past 127.
    #[test]
    fn text_prefix_then_id_orders_as_the_ids() {
        let ids = [
            "",
            "\0",
            "a",
            "a\0",
            "a\0\0",
            "a\u{1}",
            "ab",
            "abcdefgh",
            "abcdefgh\0",
            "abcdefghi",
            "abcdefgg\u{ff}",
            "abcdefgi",
            "C00000001",
            "C00000001-2",
            "C0000001",
            "9",
            "10",
            "100",
            "é",
            "éa",
            "z\u{7f}",
            "z\u{80}",
        ];
        for a in ids {
            for b in ids {
                let by_prefix = (text_prefix(a), a).cmp(&(text_prefix(b), b));
                assert_eq!(by_prefix, a.cmp(b), "{a:?} vs {b:?}");
            }
        }
    }

    /// A merge refuses a sample a partition cut short where the base's sample needed more of
    /// its customers, and accepts it where it did not.
    #[test]
    fn a_sample_cut_too_short_is_refused() {
        let row = |hash: u64| SampleRow {
            hash,
            id: format!("C{hash}"),
            values: vec![Some(1.0)],
            buyer: None,
        };
        let parts = || {
            vec![
                ClusterSample {
                    features: vec!["f".into()],
                    rows: vec![row(1), row(2), row(3)],
                    cutoff: Some((3, "C3".into())),
                },
                ClusterSample {
                    features: vec!["f".into()],
                    rows: vec![row(4), row(5)],
                    cutoff: None,
                },
            ]
        };
        assert!(ClusterSample::merge(parts(), 4).is_err());
        let merged = ClusterSample::merge(parts(), 3).unwrap();
        assert_eq!(
            merged.rows.iter().map(|r| r.hash).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(rows_to_send(150, 8), 100);
        assert_eq!(rows_to_send(150, 3), 150);
        assert_eq!(rows_to_send(250_000, 160), 6252);
    }

    #[test]
    fn median_without_a_sort_equals_the_sorted_quantile() {
        for len in [1usize, 2, 3, 10, 11, 1000, 1001] {
            let v: Vec<f64> = (0..len)
                .map(|i| ((i * 7919) % 1009) as f64 * 0.37 - 50.0)
                .collect();
            let mut sorted = v.clone();
            sorted.sort_unstable_by(f64::total_cmp);
            assert_eq!(
                median(v),
                Some(patronage_clusters::quantile(&sorted, 0.5)),
                "{len}"
            );
        }
        assert_eq!(median(Vec::new()), None);
    }
}
