//! Clusters: behavioural k-means clusters (linfa, in `patronage-clusters`) on features asked
//! for by name, ids kept from the latest earlier run's model (`OUT/models/clusters/<as-of>.json`),
//! the `cluster_profiles` table, and `cluster_id`, `cluster_name`, `cluster_probability` (Gaussian
//! mixture only), `cluster_imputed` in `segments`.

use std::path::Path;

use patronage_clusters::{cluster, ClusterModel, Clusterer, Config, Outcome};
use patronage_features::FeatureTable;
use polars::prelude::*;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Tables, Warnings};
use crate::error::EngineError;
use crate::tables;

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

/// The eligible rows whose `customer_id` hashes lowest, at most `rows` of them (ties by row:
/// rows are in id order). It depends on the ids alone, not on their order or partitioning.
fn fit_sample(ids: &Column, eligible: &[bool], rows: usize) -> Result<Vec<bool>, EngineError> {
    let ids = ids.str().map_err(|e| EngineError::Internal {
        table: "segments".into(),
        message: e.to_string(),
    })?;
    let mut in_fit = eligible.to_vec();
    let count = eligible.iter().filter(|e| **e).count();
    if count > rows {
        let mut keyed: Vec<(u64, u32)> = (0..eligible.len())
            .into_par_iter()
            .filter(|&r| eligible[r])
            .map(|r| (id_hash(ids.get(r).unwrap_or_default()), r as u32))
            .collect();
        keyed.select_nth_unstable(rows);
        in_fit.iter_mut().for_each(|f| *f = false);
        for &(_, r) in &keyed[..rows] {
            in_fit[r as usize] = true;
        }
    }
    Ok(in_fit)
}

/// The stable hash customers are sampled and partitioned by.
pub(crate) fn id_hash(id: &str) -> u64 {
    patronage_segments::stable_hash(id.as_bytes())
}

/// What the clusters stage produced.
pub(crate) struct ClustersStage {
    /// `cluster_profiles`.
    pub tables: Tables,
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

/// The default feature list for what this run has.
fn default_features(f: &FeatureTable, p_alive: bool) -> Vec<String> {
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

/// Inputs of the stage besides the feature table.
pub(crate) struct ClusterInputs<'a> {
    pub out: &'a Path,
    pub as_of: &'a str,
    pub ids: &'a Column,
    pub p_alive: Option<&'a [Option<f64>]>,
    pub clv: Option<&'a [Option<f64>]>,
    /// The segments frame: `rfm_segment` is read, the cluster columns are added.
    pub segments: &'a mut DataFrame,
}

pub(crate) fn run(
    config: &ClustersConfig,
    f: &FeatureTable,
    inputs: ClusterInputs,
    warnings: &mut Warnings,
) -> Result<ClustersStage, EngineError> {
    let n = f.len();
    let names = if config.features.is_empty() {
        default_features(f, inputs.p_alive.is_some())
    } else {
        config.features.clone()
    };
    let mut columns: Vec<(String, Vec<Option<f64>>)> = Vec::new();
    for name in &names {
        let values = match (name.as_str(), inputs.p_alive, inputs.clv) {
            ("p_alive", Some(p), _) => p.to_vec(),
            ("clv", _, Some(c)) => c.to_vec(),
            _ => f.numeric(name).map_err(|e| EngineError::InvalidConfig {
                path: "clusters.features".into(),
                message: format!("{e}; a cluster feature must be a numeric column of customer_features (or p_alive / clv with models)"),
            })?,
        };
        columns.push((name.clone(), values));
    }
    // Buyers are clustered (missing features imputed and counted); a customer without an order
    // only when every feature exists for them.
    let freq = f.int("frequency")?;
    let eligible: Vec<bool> = (0..n)
        .map(|i| freq.get(i).is_some_and(|v| v > 0) || columns.iter().all(|(_, v)| v[i].is_some()))
        .collect();
    let previous = previous_model(inputs.out, inputs.as_of, warnings);
    let in_fit = fit_sample(inputs.ids, &eligible, config.fit_rows)?;
    let outcome = match cluster(
        &columns,
        &eligible,
        &in_fit,
        &config.algorithm(),
        previous.as_ref(),
        inputs.as_of,
        crate::VERSION,
    ) {
        Ok(o) => o,
        Err(e) => {
            warnings.warn(format!("no clusters this run: {e}"));
            add_cluster_columns(inputs.segments, n, None)?;
            return Ok(ClustersStage {
                tables: Vec::new(),
                manifest: json!({ "status": "skipped", "reason": e.to_string(), "features": names }),
                artifact: None,
            });
        }
    };
    add_cluster_columns(inputs.segments, n, Some(&outcome))?;
    let mut sizes = vec![0usize; outcome.model.k];
    for &l in &outcome.labels {
        sizes[l] += 1;
    }
    let smallest =
        sizes.iter().min().copied().unwrap_or(0) as f64 / outcome.rows.len().max(1) as f64;
    if smallest < config.min_share {
        warnings.warn(format!(
            "the smallest cluster holds {:.1}% of the customers clustered, below clusters.min_share ({:.0}%){}",
            smallest * 100.0,
            config.min_share * 100.0,
            if config.clusterer == Clusterer::Gmm { "; the Gaussian mixture moved customers between components after k was chosen on k-means" } else { "" }
        ));
    }
    let profiles = profiles(f, &columns, &outcome, &inputs)?;
    let scores: Vec<serde_json::Value> = outcome
        .scores
        .iter()
        .map(|s| serde_json::to_value(s).unwrap_or_default())
        .collect();
    let ari = &outcome.bootstrap_ari;
    let manifest = json!({
        "status": "ok",
        "features": names,
        "transforms": outcome.model.features,
        "customers_clustered": outcome.rows.len(),
        "customers_not_clustered": n - outcome.rows.len(),
        "imputed_per_feature": names.iter().cloned().zip(outcome.imputed_per_feature.iter().copied()).collect::<std::collections::BTreeMap<String, usize>>(),
        "clusterer": outcome.model.clusterer,
        "k": outcome.model.k,
        "chosen_by": outcome.chosen_by,
        "k_range": [config.k_min, config.k_max],
        "min_share": config.min_share,
        "fit_rows": in_fit.iter().filter(|f| **f).count(),
        "sample_rows": outcome.sample_rows,
        "indices_per_k": scores,
        "bootstrap_ari": { "refits": ari.len(), "mean": if ari.is_empty() { None } else { Some(ari.iter().sum::<f64>() / ari.len() as f64) }, "min": ari.iter().copied().reduce(f64::min), "values": ari },
        "warm_start": previous.as_ref().map(|p| json!({ "from": p.as_of, "k": p.k, "same_features": p.centroids_in(&outcome.model.features).is_some() })),
        "changes": outcome.matching,
        "ids": outcome.model.ids,
        "names": outcome.model.names,
        "seed": config.seed,
        "artifact": format!("{ARTIFACT_DIR}/{}.json", inputs.as_of),
    });
    let artifact =
        serde_json::to_vec_pretty(&outcome.model).map_err(|e| EngineError::Internal {
            table: "cluster model".into(),
            message: e.to_string(),
        })?;
    Ok(ClustersStage {
        tables: vec![("cluster_profiles", profiles)],
        manifest,
        artifact: Some(artifact),
    })
}

/// `cluster_id`, `cluster_name`, `cluster_imputed` (features imputed) on `segments`; null for
/// customers not clustered.
pub(crate) fn add_cluster_columns(
    segments: &mut DataFrame,
    n: usize,
    outcome: Option<&Outcome>,
) -> Result<(), EngineError> {
    let mut id: Vec<Option<i64>> = vec![None; n];
    let mut name: Vec<Option<&str>> = vec![None; n];
    let mut imputed: Vec<Option<i64>> = vec![None; n];
    let mut probability: Vec<Option<f64>> = vec![None; n];
    if let Some(o) = outcome {
        for (k, &row) in o.rows.iter().enumerate() {
            let c = o.labels[k];
            id[row] = Some(i64::from(o.model.ids[c]));
            name[row] = Some(o.model.names[c].as_str());
            imputed[row] = Some(i64::from(o.imputed[k]));
            probability[row] = o.probability.as_ref().map(|p| p[k]);
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

/// One row per cluster, in id order.
fn profiles(
    f: &FeatureTable,
    columns: &[(String, Vec<Option<f64>>)],
    o: &Outcome,
    inputs: &ClusterInputs,
) -> Result<DataFrame, EngineError> {
    let k = o.model.k;
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); k];
    for (i, &row) in o.rows.iter().enumerate() {
        members[o.labels[i]].push(row);
    }
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by_key(|&c| o.model.ids[c]);
    let revenue = f.float("net_revenue")?;
    let total_revenue: f64 = revenue.iter().flatten().sum();
    let segment = inputs
        .segments
        .column("rfm_segment")
        .and_then(|c| c.str().cloned())
        .map_err(|e| EngineError::Internal {
            table: "cluster_profiles".into(),
            message: e.to_string(),
        })?;
    let clustered = o.rows.len() as f64;
    let mean_of = |v: Option<&[Option<f64>]>, rows: &[usize]| -> Option<f64> {
        let v = v?;
        let xs: Vec<f64> = rows.iter().filter_map(|&r| v[r]).collect();
        (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
    };
    let mut out = vec![
        Column::new(
            "cluster_id".into(),
            order
                .iter()
                .map(|&c| i64::from(o.model.ids[c]))
                .collect::<Vec<i64>>(),
        ),
        Column::new(
            "cluster_name".into(),
            order
                .iter()
                .map(|&c| o.model.names[c].as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "customers".into(),
            order
                .iter()
                .map(|&c| members[c].len() as i64)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "share".into(),
            order
                .iter()
                .map(|&c| members[c].len() as f64 / clustered)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "revenue_share".into(),
            order
                .iter()
                .map(|&c| {
                    let r: f64 = members[c].iter().filter_map(|&r| revenue.get(r)).sum();
                    (total_revenue > 0.0).then(|| r / total_revenue)
                })
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "mean_p_alive".into(),
            order
                .iter()
                .map(|&c| mean_of(inputs.p_alive, &members[c]))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "mean_clv".into(),
            order
                .iter()
                .map(|&c| mean_of(inputs.clv, &members[c]))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "dominant_rfm_segment".into(),
            order
                .par_iter()
                .map(|&c| {
                    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
                    for &r in &members[c] {
                        if let Some(s) = segment.get(r) {
                            *counts.entry(s).or_default() += 1;
                        }
                    }
                    counts
                        .into_iter()
                        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
                        .map(|(s, _)| s.to_string())
                })
                .collect::<Vec<_>>(),
        ),
    ];
    let medians: Vec<Column> = columns
        .par_iter()
        .map(|(name, values)| {
            Column::new(
                format!("median_{name}").into(),
                order
                    .par_iter()
                    .map(|&c| median(members[c].iter().filter_map(|&r| values[r]).collect()))
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    out.extend(medians);
    tables::frame("cluster_profiles", out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fit sample is a function of the ids: the same customers whatever their order or
    /// the other customers' partition, and only eligible ones.
    #[test]
    fn the_fit_sample_depends_on_the_ids_alone() {
        let ids: Vec<String> = (0..5000).map(|i| format!("C{i:08}")).collect();
        let eligible: Vec<bool> = (0..5000).map(|i| i % 7 != 0).collect();
        let picked = |ids: &[String], eligible: &[bool]| -> std::collections::BTreeSet<String> {
            let column = Column::new("customer_id".into(), ids);
            let in_fit = fit_sample(&column, eligible, 1000).unwrap();
            assert!(in_fit.iter().zip(eligible).all(|(f, e)| !*f || *e));
            (0..ids.len())
                .filter(|&r| in_fit[r])
                .map(|r| ids[r].clone())
                .collect()
        };
        let all = picked(&ids, &eligible);
        assert_eq!(all.len(), 1000);
        // Reversed order: the same customers.
        let (rev_ids, rev_eligible): (Vec<String>, Vec<bool>) = ids
            .iter()
            .cloned()
            .zip(eligible.iter().copied())
            .rev()
            .unzip();
        assert_eq!(picked(&rev_ids, &rev_eligible), all);
        // The bottom 1000 hashes of the whole base are also the bottom of each half's bottom
        // 1000: a partition's own sample holds every customer of the base's sample it has.
        let half: Vec<bool> = (0..5000).map(|i| eligible[i] && i % 2 == 0).collect();
        let from_half = picked(&ids, &half);
        assert!(all
            .iter()
            .filter(|id| id[1..].parse::<usize>().unwrap() % 2 == 0)
            .all(|id| from_half.contains(id)));
        // Fewer eligible than asked for: all of them.
        assert_eq!(
            fit_sample(&Column::new("customer_id".into(), &ids), &eligible, 10_000).unwrap(),
            eligible
        );
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
