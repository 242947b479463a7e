//! The protocol's phases as separate steps (scale-out, #17), each a pure function of its inputs
//! and of the files the earlier steps left in a work directory:
//!
//! - [`partial`] `i/n`: the customers whose `customer_id` hashes to partition `i` of `n` give
//!   their statistics → `WORK/partial/<i>-of-<n>.bin`;
//! - [`fit`]: the `n` partitions' statistics merged → the models, cut points, thresholds and
//!   clusters → `WORK/fit.json`;
//! - [`score`] `i/n`: the partition's customers scored with the fit → its per-customer tables
//!   and its parts of the global ones → `WORK/score/<i>-of-<n>/`;
//! - [`publish`]: the parts merged (exact sums), every partition's tables as the parts of one
//!   run, published atomically with a manifest, as `run` publishes.
//!
//! By default every partition reads the whole export and keeps its customers (so order-id
//! conflicts between customers of different partitions are still found, and every rejected row
//! is reported by exactly one partition: the one its file and row hash to). With
//! `prepartitioned`, a router (the Spark recipe) has sent each partition its customers' rows
//! only. Either way the tables equal a single run's customer by customer.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use patronage_input::format_day;
use patronage_output::OutDir;
use patronage_segments::SummaryPart;
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::RunOptions;
use crate::error::EngineError;
use crate::job::{score_customers, RunSummary};
use crate::local::Routed;
use crate::protocol::{Fitted, PartitionStats, StatsMerger, SwitchingBuyers};
use crate::stages::clusters::{ProfilePart, ARTIFACT_DIR};
use crate::stages::{self, Event, Warnings};

/// Partition `index` of `count` (`i/n` on the command line; 0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    pub index: u32,
    pub count: u32,
    /// The inputs hold this partition's rows only (a router sent them here): every customer
    /// they name is the partition's, and every row they reject is reported here.
    #[serde(default)]
    pub prepartitioned: bool,
}

impl FromStr for Partition {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a partition: give i/n with 0 ≤ i < n, e.g. 0/8");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            i.trim().parse::<u32>().map_err(|_| bad())?,
            n.trim().parse::<u32>().map_err(|_| bad())?,
        );
        (index < count)
            .then_some(Partition {
                index,
                count,
                prepartitioned: false,
            })
            .ok_or_else(bad)
    }
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-of-{}", self.index, self.count)
    }
}

impl Partition {
    /// The `count` partitions of a run, in order.
    pub(crate) fn all(count: u32) -> impl Iterator<Item = Partition> {
        (0..count).map(move |index| Partition {
            index,
            count,
            prepartitioned: false,
        })
    }

    /// Whether the customer `id` belongs here: its stable hash modulo the count.
    pub fn holds(&self, id: &str) -> bool {
        self.holds_key(id.as_bytes())
    }

    /// The partition of `count` that the customer `id` belongs to.
    pub(crate) fn of(id: &str, count: u32) -> u32 {
        (patronage_segments::stable_hash(id.as_bytes()) % u64::from(count)) as u32
    }

    /// Whether anything keyed by `key` belongs here.
    fn holds_key(&self, key: &[u8]) -> bool {
        patronage_segments::stable_hash(key) % u64::from(self.count) == u64::from(self.index)
    }
}

fn io(path: &Path, e: impl std::fmt::Display) -> EngineError {
    EngineError::InvalidOptions(format!("{}: {e}", path.display()))
}

/// Writes `bytes` to `path` whole or not at all (a temporary file renamed into place).
fn write_file(path: &Path, bytes: Vec<u8>) -> Result<(), EngineError> {
    if let Some(parent) = path.parent() {
        fs_err::create_dir_all(parent).map_err(|e| io(parent, e))?;
    }
    let tmp = path.with_extension("tmp");
    fs_err::write(&tmp, bytes).map_err(|e| io(&tmp, e))?;
    fs_err::rename(&tmp, path).map_err(|e| io(path, e))
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), EngineError> {
    write_file(path, serde_json::to_vec(value).map_err(|e| io(path, e))?)
}

/// The partials are the bulk of what crosses the network: a compact binary encoding (bincode,
/// varint integers, floats with their bits), about three quarters of their JSON's size.
fn write_bin(path: &Path, value: &impl Serialize) -> Result<(), EngineError> {
    let bytes = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| io(path, e))?;
    write_file(path, bytes)
}

fn read_bin<T: for<'de> Deserialize<'de>>(path: &Path, hint: &str) -> Result<T, EngineError> {
    let bytes = fs_err::read(path).map_err(|e| io(path, format!("{e}; {hint}")))?;
    bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
        .map(|(v, _)| v)
        .map_err(|e| io(path, e))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path, hint: &str) -> Result<T, EngineError> {
    let bytes = fs_err::read(path).map_err(|e| io(path, format!("{e}; {hint}")))?;
    serde_json::from_slice(&bytes).map_err(|e| io(path, e))
}

/// What `partial` leaves for `fit`.
#[derive(Serialize, Deserialize)]
struct PartialFile {
    as_of: String,
    partition: Partition,
    stats: PartitionStats,
}

/// What `fit` leaves for `score` and `publish`.
#[derive(Serialize, Deserialize)]
struct FitFile {
    as_of: String,
    partitions: u32,
    fitted: Fitted,
    warnings: Vec<String>,
}

/// What `score` leaves for `publish`, beside the partition's tables.
#[derive(Serialize, Deserialize)]
struct ScoreFile {
    as_of: String,
    partition: Partition,
    customers: usize,
    prospects: usize,
    /// The per-customer tables written (file names are `<table>.parquet`), in output order.
    tables: Vec<(String, usize)>,
    summary: Vec<SummaryPart>,
    profiles: Option<(ProfilePart, bool)>,
    /// models, segments, clusters, loyalty, control group.
    manifests: Vec<serde_json::Value>,
    models_failed: Option<String>,
    inputs: serde_json::Value,
    features: serde_json::Value,
    rows: (i64, i64),
    profile_rows: Option<(i64, i64)>,
    click_rows: Option<(i64, i64)>,
    warnings: Vec<String>,
}

/// `WORK/fit.json`, checked to be the fit of `partitions` partitions.
fn read_fit(work: &Path, partitions: u32) -> Result<FitFile, EngineError> {
    let fit: FitFile = read_json(&work.join("fit.json"), "run `patronage fit` first")?;
    if fit.partitions != partitions {
        return Err(EngineError::InvalidOptions(format!(
            "the fit merged {} partitions, not {partitions}",
            fit.partitions
        )));
    }
    Ok(fit)
}

fn partial_path(work: &Path, p: Partition) -> PathBuf {
    work.join("partial").join(format!("{p}.bin"))
}

fn switching_path(work: &Path, p: Partition) -> PathBuf {
    work.join("partial").join(format!("{p}.switching.bin"))
}

fn score_dir(work: &Path, p: Partition) -> PathBuf {
    work.join("score").join(p.to_string())
}

impl Prepared {
    /// The partition's customer ids, in index order.
    fn ids(&self) -> Vec<String> {
        let all = self.ingest.index.ids();
        self.rows.iter().map(|&r| all[r].clone()).collect()
    }
}

/// A partition's customers after ingest and features: their rows of the run's index.
struct Prepared {
    ingest: stages::ingest::Ingest,
    features: stages::features::Features,
    /// Index rows of the partition's customers, ascending (id order).
    rows: Vec<usize>,
    keep: Vec<bool>,
}

/// Where a partition's inputs come from.
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    /// The exports the options name (whole, or routed to this partition).
    Exports,
    /// A local run's routed inputs (see [`crate::local`]).
    Routed(&'a Routed),
}

fn prepare(
    opts: &RunOptions,
    p: Partition,
    work: &Path,
    source: Source<'_>,
    keep_orders: bool,
    warnings: &mut Warnings,
) -> Result<Prepared, EngineError> {
    let mut ingest = match source {
        Source::Exports => {
            // Ingest writes the rejected rows of a run that finds no data beside its lock: the
            // work directory's, not OUT's.
            let (scratch, _) = OutDir::open(&work.join("ingest").join(p.to_string()))?;
            stages::ingest::run(opts, &scratch, warnings)?
        }
        Source::Routed(routed) => routed.load(p.index)?,
    };
    let features = stages::features::run(&mut ingest, keep_orders)?;
    ingest.profiles = None;
    ingest.clicks = None;
    let keep: Vec<bool> = ingest
        .index
        .ids()
        .iter()
        .map(|id| p.prepartitioned || p.holds(id))
        .collect();
    let rows = (0..keep.len()).filter(|&r| keep[r]).collect();
    Ok(Prepared {
        ingest,
        features,
        rows,
        keep,
    })
}

/// Phase 1: the statistics of partition `p`'s customers → `WORK/partial/<i>-of-<n>.bin`.
pub fn partial(
    opts: &RunOptions,
    p: Partition,
    work: &Path,
    report: &dyn Fn(Event),
) -> Result<PathBuf, EngineError> {
    partial_from(opts, p, work, Source::Exports, report)
}

pub(crate) fn partial_from(
    opts: &RunOptions,
    p: Partition,
    work: &Path,
    source: Source<'_>,
    report: &dyn Fn(Event),
) -> Result<PathBuf, EngineError> {
    let mut warnings = Warnings::new(report);
    let backtest_needed = stages::models::backtests_needed(opts);
    let prepared = prepare(opts, p, work, source, backtest_needed, &mut warnings)?;
    let ingest = &prepared.ingest;
    let backtest = stages::models::model_data(
        opts,
        &ingest.orders,
        ingest.ids.len(),
        ingest.as_of,
        Some(&prepared.keep),
    );
    let ids = prepared.ids();
    let table = prepared.features.table.select(&prepared.rows);
    let mut stats = PartitionStats::of(opts, &table, &ids, p.count, backtest)?;
    // The buyers' switching-cost inputs in a file of their own: the fit reads them one
    // partition at a time, after merging the rest.
    let switching = switching_path(work, p);
    match stats.switching_buyers.take() {
        Some(b) => write_bin(&switching, &b)?,
        None if switching.exists() => {
            fs_err::remove_file(&switching).map_err(|e| io(&switching, e))?
        }
        None => {}
    }
    let path = partial_path(work, p);
    write_bin(
        &path,
        &PartialFile {
            as_of: format_day(ingest.as_of),
            partition: p,
            stats,
        },
    )?;
    Ok(path)
}

/// Phase 2: the `partitions` partials merged and fitted → `WORK/fit.json`.
pub fn fit(
    opts: &RunOptions,
    partitions: u32,
    work: &Path,
    report: &dyn Fn(Event),
) -> Result<PathBuf, EngineError> {
    let mut warnings = Warnings::new(report);
    if partitions > 1 && opts.clusters.enabled && opts.clusters.clusterer == crate::Clusterer::Gmm {
        return Err(EngineError::InvalidOptions(
            "a Gaussian mixture (clusters.clusterer = \"gmm\") is not scored across partitions yet: use k-means, or one partition".into(),
        ));
    }
    // The partials folded in one at a time (memory: their union so far and one partial).
    let mut merger = StatsMerger::default();
    let mut as_of: Option<String> = None;
    for p in Partition::all(partitions) {
        let path = partial_path(work, p);
        let file: PartialFile =
            read_bin(&path, "run `patronage partial` for every partition first")?;
        match &as_of {
            Some(a) if *a != file.as_of => {
                return Err(EngineError::InvalidOptions(format!(
                    "{}: as-of {} but partition 0 has {a}: give every phase the same --as-of",
                    path.display(),
                    file.as_of
                )))
            }
            _ => as_of = Some(file.as_of),
        }
        merger.add(file.stats);
    }
    let as_of = as_of
        .ok_or_else(|| EngineError::InvalidOptions("--partitions must be at least 1".into()))?;
    let merged = merger.finish(opts.clusters.fit_rows)?;
    // The buyers' switching-cost inputs, a partition at a time.
    let mut switching_buyers =
        |visit: &mut dyn FnMut(SwitchingBuyers) -> Result<(), EngineError>| {
            for p in Partition::all(partitions) {
                let path = switching_path(work, p);
                if path.exists() {
                    visit(read_bin(
                        &path,
                        "run `patronage partial` for every partition first",
                    )?)?;
                }
            }
            Ok(())
        };
    let fitted = crate::protocol::fit(opts, &merged, &mut switching_buyers, &as_of, &mut warnings)?;
    let path = work.join("fit.json");
    write_json(
        &path,
        &FitFile {
            as_of,
            partitions,
            fitted,
            warnings: warnings.list,
        },
    )?;
    Ok(path)
}

/// Phase 3: partition `p`'s customers scored with `WORK/fit.json` → `WORK/score/<i>-of-<n>/`.
pub fn score(
    opts: &RunOptions,
    p: Partition,
    work: &Path,
    report: &dyn Fn(Event),
) -> Result<PathBuf, EngineError> {
    score_from(opts, p, work, Source::Exports, report)
}

pub(crate) fn score_from(
    opts: &RunOptions,
    p: Partition,
    work: &Path,
    source: Source<'_>,
    report: &dyn Fn(Event),
) -> Result<PathBuf, EngineError> {
    let mut warnings = Warnings::new(report);
    let fit = read_fit(work, p.count)?;
    let mut prepared = prepare(opts, p, work, source, false, &mut warnings)?;
    let as_of = format_day(prepared.ingest.as_of);
    if as_of != fit.as_of {
        return Err(EngineError::InvalidOptions(format!(
            "the fit is as of {} but this run is as of {as_of}: give every phase the same --as-of",
            fit.as_of
        )));
    }
    let id_text = prepared.ids();
    let ingest = &mut prepared.ingest;
    let ids = Column::new("customer_id".into(), &id_text);
    let mut table = prepared.features.table.select(&prepared.rows);
    drop(std::mem::take(&mut prepared.features.table));
    // The switching costs against the whole base (this partition's inputs know only theirs).
    patronage_features::add_switching_costs_with(&mut table, &fit.fitted.switching);
    let customers = table.len();
    let prospects = table
        .int("frequency")?
        .iter()
        .filter(|f| f.is_none())
        .count();
    let scored = score_customers(
        opts,
        &ids,
        &id_text,
        table,
        fit.fitted,
        &as_of,
        &mut warnings,
        &mut |s| report(Event::Stage(s)),
    )?;
    let dir = score_dir(work, p);
    if dir.exists() {
        fs_err::remove_dir_all(&dir).map_err(|e| io(&dir, e))?;
    }
    fs_err::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let mut tables = Vec::new();
    let mut rows = scored.rows;
    // The rejected rows this partition reports: those whose file and row hash to it.
    for (name, df) in std::mem::take(&mut ingest.tables) {
        rows.push((name, rejected_share(df, p)?));
    }
    let written = stages::write::write_side_by_side(rows, &scored.dictionary, |name| {
        dir.join(format!("{name}.parquet"))
    })?;
    tables.extend(written.into_iter().map(|(name, n)| (name.to_string(), n)));
    let file = ScoreFile {
        as_of,
        partition: p,
        customers,
        prospects,
        tables,
        summary: scored.summary,
        profiles: scored.profiles.map(|(part, _, models)| (part, models)),
        manifests: scored.manifests.to_vec(),
        models_failed: scored.models_failed,
        inputs: json!({ "orders": ingest.manifest, "customers": ingest.customers_manifest, "clicks": ingest.clicks_manifest }),
        features: json!(prepared.features.manifest),
        rows: (ingest.manifest.rows_read, ingest.manifest.rows_rejected),
        profile_rows: ingest
            .customers_manifest
            .as_ref()
            .map(|c| (c.rows_read, c.rows_rejected)),
        click_rows: ingest
            .clicks_manifest
            .as_ref()
            .map(|c| (c.rows_read, c.rows_rejected)),
        warnings: warnings.list,
    };
    write_json(&dir.join("parts.json"), &file)?;
    Ok(dir)
}

/// The rows of `rejected` whose (source file, row) hash to partition `p`.
fn rejected_share(df: DataFrame, p: Partition) -> Result<DataFrame, EngineError> {
    if p.count == 1 || p.prepartitioned {
        return Ok(df);
    }
    let internal = |e: PolarsError| EngineError::Internal {
        table: "rejected".into(),
        message: e.to_string(),
    };
    let files = df
        .column("source_file")
        .and_then(|c| c.str().cloned())
        .map_err(internal)?;
    let rows = df
        .column("source_row")
        .and_then(|c| c.i64().cloned())
        .map_err(internal)?;
    let mask: BooleanChunked = files
        .iter()
        .zip(rows.iter())
        .map(|(f, r)| {
            let key = format!("{}\0{}", f.unwrap_or_default(), r.unwrap_or_default());
            Some(p.holds_key(key.as_bytes()))
        })
        .collect();
    df.filter(&mask).map_err(internal)
}

/// Phase 4: every partition's tables and parts → one run in `OUT`, published atomically.
pub fn publish(
    opts: &RunOptions,
    partitions: u32,
    work: &Path,
    report: &dyn Fn(Event),
) -> Result<RunSummary, EngineError> {
    let mut warnings = Warnings::new(report);
    let (out_dir, repaired) = OutDir::open(&opts.out)?;
    for note in repaired {
        warnings.warn(note);
    }
    publish_to(opts, &out_dir, partitions, work, warnings, None)
}

/// [`publish`] into an `OUT` already locked; `extra` adds manifest sections (a local run's
/// timings).
pub(crate) fn publish_to(
    opts: &RunOptions,
    out_dir: &OutDir,
    partitions: u32,
    work: &Path,
    mut warnings: Warnings,
    extra: Option<serde_json::Map<String, serde_json::Value>>,
) -> Result<RunSummary, EngineError> {
    let fit = read_fit(work, partitions)?;
    let mut scores = Vec::new();
    for p in Partition::all(partitions) {
        let file: ScoreFile = read_json(
            &score_dir(work, p).join("parts.json"),
            "run `patronage score` for every partition first",
        )?;
        if file.as_of != fit.as_of {
            return Err(EngineError::InvalidOptions(format!(
                "partition {p} was scored as of {}, the fit is as of {}",
                file.as_of, fit.as_of
            )));
        }
        scores.push(file);
    }
    for w in fit
        .warnings
        .iter()
        .chain(scores.iter().flat_map(|s| &s.warnings))
    {
        if !warnings.list.contains(w) {
            warnings.warn(w.clone());
        }
    }
    // The global tables from the merged parts.
    let mut summary: Vec<SummaryPart> = scores[0].summary.clone();
    let mut profiles = scores[0].profiles.clone();
    for s in &scores[1..] {
        for (a, b) in summary.iter_mut().zip(&s.summary) {
            a.merge(b);
        }
        if let (Some((a, _)), Some((b, _))) = (profiles.as_mut(), &s.profiles) {
            a.merge(b);
        }
    }
    let as_of = fit.as_of.clone();
    let mut staging = out_dir.stage(&as_of, opts.format)?;
    let clusters = fit.fitted.clusters.as_ref().and_then(|c| c.as_ref().ok());
    if let Some(c) = clusters {
        let bytes = serde_json::to_vec_pretty(&c.model).map_err(|e| EngineError::Internal {
            table: "cluster model".into(),
            message: e.to_string(),
        })?;
        staging.write_artifact(ARTIFACT_DIR, &bytes)?;
    }
    let mut table_rows = serde_json::Map::new();
    for name in scores[0].tables.iter().map(|t| t.0.clone()) {
        let mut rows = 0;
        for (k, s) in scores.iter().enumerate() {
            let path = score_dir(work, s.partition).join(format!("{name}.parquet"));
            staging.copy_table_part(&name, k, &path)?;
            rows += s.tables.iter().find(|t| t.0 == name).map_or(0, |t| t.1);
        }
        table_rows.insert(name, json!(rows));
    }
    let mut global = Vec::new();
    if let Some(b) = fit.fitted.models.as_ref().and_then(|m| m.backtest_frame()) {
        global.push(("backtest", b?));
    }
    let rows: Vec<_> = summary.iter().flat_map(|p| p.rows()).collect();
    global.push(("segment_summary", crate::tables::segment_summary(&rows)?));
    if let (Some((part, models)), Some(c)) = (&profiles, clusters) {
        global.push(("cluster_profiles", part.table(c, *models)?));
    }
    let dictionary = crate::dictionary::Dictionary::new(opts, Vec::new());
    for (name, mut df) in global {
        staging.write_table(name, &mut df, &dictionary.described(name))?;
        table_rows.insert(name.to_string(), json!(df.height()));
    }
    let customers: usize = scores.iter().map(|s| s.customers).sum();
    let prospects: usize = scores.iter().map(|s| s.prospects).sum();
    let models_failed = scores.iter().find_map(|s| s.models_failed.clone());
    let first = &scores[0];
    let mut inputs = first.inputs.clone();
    if scores.len() > 1 && scores.iter().all(|s| s.partition.prepartitioned) {
        // Each partition's index is its own: the prospects add up.
        let prospects: u64 = scores
            .iter()
            .filter_map(|s| s.inputs["customers"]["prospects"].as_u64())
            .sum();
        if let Some(c) = inputs["customers"].as_object_mut() {
            c.insert("prospects".into(), json!(prospects));
        }
    }
    let mut manifest = json!({
        "engine": { "name": "patronage", "version": crate::VERSION },
        "status": if models_failed.is_some() { "models_failed" } else { "ok" },
        "as_of": as_of,
        "as_of_source": opts.as_of.source(),
        "format": opts.format.as_str(),
        "partitions": partitions,
        "config": opts.config_path.as_ref().map(|p| p.display().to_string()),
        "warnings": warnings.list,
        "inputs": inputs,
        "customers": customers,
        "tables": table_rows,
        "models": first.manifests.first(),
        "clusters": first.manifests.get(2).map(|m| {
            let mut m = m.clone();
            if let Some(o) = m.as_object_mut() {
                for key in ["customers_clustered", "customers_not_clustered", "imputed_per_feature"] {
                    o.remove(key);
                }
            }
            m
        }),
        "partition_sections": scores.iter().map(|s| json!({
            "partition": s.partition.to_string(),
            "customers": s.customers,
            "features": s.features,
            "models": s.manifests.first(),
            "segments": s.manifests.get(1),
            "clusters": s.manifests.get(2),
            "loyalty": s.manifests.get(3),
            "control_group": s.manifests.get(4),
        })).collect::<Vec<_>>(),
    });
    if let (Some(m), Some(extra)) = (manifest.as_object_mut(), extra) {
        m.extend(extra);
    }
    let published = staging.publish(&manifest, crate::tables::TABLES)?;
    Ok(RunSummary {
        as_of,
        customers,
        rows_read: first.rows.0,
        rows_rejected: first.rows.1,
        prospects,
        profile_rows: first.profile_rows,
        click_rows: first.click_rows,
        tables: published
            .tables
            .into_iter()
            .map(|(name, path)| {
                let n = table_rows.get(&name).and_then(|v| v.as_u64()).unwrap_or(0) as usize;
                (name, path, n)
            })
            .collect(),
        manifest: published.manifest,
        warnings: warnings.list,
        models_failed,
    })
}
