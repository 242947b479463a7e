//! The run: the stages of [`crate::stages`] in order, each timed, then one atomic publish with
//! the manifest (each stage's section, the warnings, the timings).

use std::path::PathBuf;
use std::time::Instant;

use patronage_input::format_day;
use patronage_output::OutDir;
use serde_json::json;

use crate::config::RunOptions;
use crate::error::EngineError;
use crate::stages::{self, Event, Stage, Tables, Warnings};

/// What a successful run produced.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub as_of: String,
    pub customers: usize,
    pub rows_read: i64,
    pub rows_rejected: i64,
    /// Customers of the index without an order (known from profiles).
    pub prospects: usize,
    /// Profile rows read and rejected, when profiles were given.
    pub profile_rows: Option<(i64, i64)>,
    /// Click events read and rejected, when a clickstream was given.
    pub click_rows: Option<(i64, i64)>,
    pub tables: Vec<(String, PathBuf, usize)>,
    pub manifest: PathBuf,
    pub warnings: Vec<String>,
    /// Set when a model failed: the other tables were published (exit code 4).
    pub models_failed: Option<String>,
}

struct Timer {
    timings: serde_json::Map<String, serde_json::Value>,
    /// The process's peak resident memory when each stage ended (Linux; empty elsewhere).
    peak_mb: serde_json::Map<String, serde_json::Value>,
    /// The process's CPU time (all threads) spent in each stage: with the wall time, how many
    /// cores the stage kept busy (Linux; empty elsewhere).
    cpu: serde_json::Map<String, serde_json::Value>,
    current: Option<(Stage, Instant, Option<f64>)>,
}

/// The CPU time of the process so far (user + system, all threads), in milliseconds: fields 14
/// and 15 of `/proc/self/stat`, in clock ticks of 10 ms (Linux's `USER_HZ` on every
/// architecture it ships). `None` off Linux.
pub(crate) fn cpu_ms() -> Option<f64> {
    let stat = fs_err::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((user + system) * 10.0)
}

/// The process's peak resident set so far, in MiB (`VmHWM`; `None` off Linux).
pub(crate) fn peak_rss_mb() -> Option<f64> {
    let status = fs_err::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some((kb / 1024.0 * 10.0).round() / 10.0)
}

impl Timer {
    fn start(&mut self, stage: Stage, report: &dyn Fn(Event)) {
        self.stop();
        report(Event::Stage(stage));
        self.current = Some((stage, Instant::now(), cpu_ms()));
    }

    fn stop(&mut self) {
        if let Some((stage, t, cpu)) = self.current.take() {
            let ms = (t.elapsed().as_secs_f64() * 1e4).round() / 10.0;
            self.timings.insert(stage.as_str().into(), json!(ms));
            if let (Some(from), Some(to)) = (cpu, cpu_ms()) {
                self.cpu.insert(stage.as_str().into(), json!(to - from));
            }
            if let Some(mb) = peak_rss_mb() {
                self.peak_mb.insert(stage.as_str().into(), json!(mb));
            }
        }
    }
}

/// Runs the whole job and publishes its tables. `report` hears stage starts and warnings.
pub fn run(opts: &RunOptions, report: &dyn Fn(Event)) -> Result<RunSummary, EngineError> {
    if opts.partitions_auto {
        if let Some(budget) = opts.memory_budget {
            let bytes = crate::plan::single_pass_bytes(opts);
            // The budget as the whole process's: half of it for one partition's customers,
            // a quarter for the routing's buffers (the rest: what both keep around).
            let n = crate::plan::partitions_for(bytes, budget / 2);
            if n > 1 {
                let mib = |b: u64| b.div_ceil(1 << 20);
                let note = format!(
                    "the inputs would take about {} MiB in one pass, more than the memory budget of {} MiB: working through {n} customer partitions (same tables; --partitions sets the number)",
                    mib(bytes),
                    mib(budget)
                );
                let planned = RunOptions {
                    partitions: n,
                    partitions_auto: false,
                    memory_budget: Some(budget / 4),
                    ..opts.clone()
                };
                return crate::local::run_partitioned(&planned, report, Some(note));
            }
        }
    }
    if opts.partitions > 1 {
        return crate::local::run_partitioned(opts, report, None);
    }
    let mut timer = Timer {
        timings: serde_json::Map::new(),
        peak_mb: serde_json::Map::new(),
        cpu: serde_json::Map::new(),
        current: None,
    };
    let mut warnings = Warnings::new(report);

    // The lock first: a second run on this OUT stops here, before reading anything; an earlier
    // run's interrupted publish is completed.
    let (out_dir, repaired) = OutDir::open(&opts.out)?;
    for note in repaired {
        warnings.warn(note);
    }

    timer.start(Stage::Ingest, report);
    let mut ingest = stages::ingest::run(opts, &out_dir, &mut warnings)?;
    let as_of = format_day(ingest.as_of);

    timer.start(Stage::Features, report);
    // Only the backtests and the seasonal index read the orders after the features.
    let keep_orders = stages::models::backtests_needed(opts);
    let features = stages::features::run(&mut ingest, keep_orders)?;
    let features_manifest = features.manifest;
    // The profiles and the click partials are now feature columns: freed before the models.
    ingest.profiles = None;
    ingest.clicks = None;

    // One partition holding every customer: its statistics are the base's, the fit decides the
    // models, cut points and thresholds, and the stages score the customers with them.
    if opts.models.enabled {
        timer.start(Stage::Models, report);
    }
    let backtest =
        stages::models::model_data(opts, &ingest.orders, ingest.ids.len(), ingest.as_of, None);
    // Nothing after this reads the orders (the backtest was their last reader).
    drop(std::mem::take(&mut ingest.orders));
    let mut stats = crate::protocol::PartitionStats::of(
        opts,
        &features.table,
        ingest.index.ids(),
        1,
        backtest,
    )?;
    let mut switching_buyers = stats.switching_buyers.take();
    let fitted = crate::protocol::fit(
        opts,
        &stats,
        &mut |visit| switching_buyers.take().map_or(Ok(()), visit),
        &as_of,
        &mut warnings,
    )?;
    drop(stats);
    let customers = features.table.len();
    let scored = score_customers(
        opts,
        &ingest.ids,
        ingest.index.ids(),
        features.table,
        fitted,
        &as_of,
        &mut warnings,
        &mut |stage| timer.start(stage, report),
    )?;
    timer.start(Stage::Write, report);
    let (mut tables, parts) = scored.into_tables();
    tables.extend(parts.tables()?);
    let Scored {
        manifests,
        models_failed,
        artifacts,
        dictionary,
        ..
    } = parts;
    let [models_manifest, segments_manifest, clusters_manifest, loyalty_manifest, control_manifest] =
        manifests;
    tables.extend(ingest.tables);
    let (rows_read, rows_rejected) = (ingest.manifest.rows_read, ingest.manifest.rows_rejected);
    let prospects = features_manifest.prospects;
    let profile_rows = ingest
        .customers_manifest
        .as_ref()
        .map(|c| (c.rows_read, c.rows_rejected));
    let click_rows = ingest
        .clicks_manifest
        .as_ref()
        .map(|c| (c.rows_read, c.rows_rejected));
    let warning_list = warnings.list.clone();
    let artifacts: Vec<(&str, Vec<u8>)> = artifacts;
    let written = stages::write::run(
        &out_dir,
        &as_of,
        tables,
        &artifacts,
        &dictionary,
        opts.format,
        |table_rows| {
            timer.stop();
            // Ingest is measured in input rows (every input), the other stages in customers.
            let input_rows =
                rows_read + profile_rows.map_or(0, |r| r.0) + click_rows.map_or(0, |r| r.0);
            let rates: serde_json::Map<String, serde_json::Value> = timer
                .timings
                .iter()
                .filter_map(|(stage, ms)| {
                    let seconds = ms.as_f64()? / 1e3;
                    let rows = if stage == "ingest" {
                        input_rows as f64
                    } else {
                        customers as f64
                    };
                    (seconds > 0.0).then(|| (stage.clone(), json!((rows / seconds).round())))
                })
                .collect();
            json!({
                "engine": { "name": "patronage", "version": crate::VERSION },
                "status": if models_failed.is_some() { "models_failed" } else { "ok" },
                "as_of": as_of,
                "as_of_source": opts.as_of.source(),
                "format": opts.format.as_str(),
                "config": opts.config_path.as_ref().map(|p| p.display().to_string()),
                "warnings": warning_list,
                "inputs": { "orders": ingest.manifest, "customers": ingest.customers_manifest, "clicks": ingest.clicks_manifest },
                "customers": customers,
                "features": features_manifest,
                "models": models_manifest,
                "segments": segments_manifest,
                "clusters": clusters_manifest,
                "loyalty": loyalty_manifest,
                "control_group": control_manifest,
                "tables": table_rows,
                "timings_ms": timer.timings,
                "rows_per_second": rates,
                "peak_memory_mb": timer.peak_mb,
                "cpu_ms": timer.cpu,
            })
        },
    )?;
    Ok(RunSummary {
        as_of,
        customers,
        rows_read,
        rows_rejected,
        prospects,
        profile_rows,
        click_rows,
        tables: written.tables,
        manifest: written.manifest,
        warnings: warnings.list,
        models_failed,
    })
}

/// A partition's customers scored: its per-customer tables and its parts of the global ones.
pub(crate) struct Scored {
    /// `customer_features`, `churn_scores`, `segments`, `loyalty_stages` (as run).
    pub rows: Tables,
    /// `segment_summary` parts, one per dimension.
    pub summary: Vec<patronage_segments::SummaryPart>,
    /// `cluster_profiles` part, with the clustering it belongs to and whether models scored.
    pub profiles: Option<(
        stages::clusters::ProfilePart,
        stages::clusters::FittedClusters,
        bool,
    )>,
    /// `backtest`, from the fit.
    pub backtest: Option<polars::prelude::DataFrame>,
    /// Manifest sections: models, segments, clusters, loyalty, control group.
    pub manifests: [serde_json::Value; 5],
    pub models_failed: Option<String>,
    pub artifacts: Vec<(&'static str, Vec<u8>)>,
    /// What every column of these tables means.
    pub dictionary: crate::dictionary::Dictionary,
}

impl Scored {
    /// The per-customer tables (in output order, `backtest` and `segment_summary` placed among
    /// them) and the rest.
    fn into_tables(mut self) -> (Tables, Scored) {
        let rows = std::mem::take(&mut self.rows);
        (rows, self)
    }

    /// The global tables this run's (or the merged partitions') parts make.
    pub fn tables(&self) -> Result<Tables, EngineError> {
        let mut out = Vec::new();
        if let Some(b) = &self.backtest {
            out.push(("backtest", b.clone()));
        }
        let rows: Vec<_> = self.summary.iter().flat_map(|p| p.rows()).collect();
        out.push(("segment_summary", crate::tables::segment_summary(&rows)?));
        if let Some((part, fitted, models)) = &self.profiles {
            out.push(("cluster_profiles", part.table(fitted, *models)?));
        }
        Ok(out)
    }
}

/// Scores a partition's customers (`ids`: their `customer_id` column and its text) with what
/// the fit decided: every stage after the features. `stage` hears each stage start.
#[allow(clippy::too_many_arguments)]
pub(crate) fn score_customers(
    opts: &RunOptions,
    ids: &polars::prelude::Column,
    id_text: &[String],
    table: patronage_features::FeatureTable,
    fitted: crate::protocol::Fitted,
    as_of: &str,
    warnings: &mut Warnings,
    stage: &mut dyn FnMut(Stage),
) -> Result<Scored, EngineError> {
    let crate::protocol::Fitted {
        models: fitted_models,
        segments: cuts,
        loyalty: loyalty_cuts,
        clusters: fitted_clusters,
        switching: _,
    } = fitted;
    let models = match fitted_models {
        Some(m) => {
            let stage = stages::models::score_models(&opts.models, m, ids, &table)?;
            if let Some(why) = &stage.failure {
                warnings.warn(format!(
                    "models failed, the other tables are published: {why}"
                ));
            }
            Some(stage)
        }
        None => None,
    };
    stage(Stage::Segments);
    let clv = models
        .as_ref()
        .and_then(|m| m.scores.as_ref())
        .map(|s| s.clv.as_slice());
    let p_alive = models
        .as_ref()
        .and_then(|m| m.scores.as_ref())
        .map(|s| s.p_alive.as_slice());
    let mut segments = stages::segments::run(opts, ids, &table, clv, &cuts)?;

    let mut artifacts = Vec::new();
    let (clusters_manifest, profiles) = match &fitted_clusters {
        Some(fitted) if opts.clusters.enabled => {
            stage(Stage::Clusters);
            let c = stages::clusters::run(
                &opts.clusters,
                fitted,
                &table,
                stages::clusters::ClusterInputs {
                    as_of,
                    p_alive,
                    clv,
                    segments: &mut segments.frame,
                },
                warnings,
            )?;
            if let Some(a) = c.artifact {
                artifacts.push((stages::clusters::ARTIFACT_DIR, a));
            }
            let profiles = match (c.profile, fitted) {
                (Some(part), Ok(f)) => Some((part, f.clone(), p_alive.is_some() || clv.is_some())),
                _ => None,
            };
            (c.manifest, profiles)
        }
        _ => {
            // The same columns, null: the table's schema does not depend on the switch.
            stages::clusters::add_cluster_columns(&mut segments.frame, table.len(), None)?;
            (json!({ "enabled": false }), None)
        }
    };

    let control_manifest =
        stages::loyalty::add_control_group(&opts.control, id_text, &mut segments.frame)?;
    let loyalty = match (&opts.stages, &loyalty_cuts) {
        (Some((file, source)), Some(cuts)) => {
            stage(Stage::Loyalty);
            Some(stages::loyalty::run(
                file,
                source,
                &table,
                cuts,
                stages::loyalty::LoyaltyInputs {
                    ids,
                    p_alive,
                    clv,
                    segments: &mut segments.frame,
                    summary: &mut segments.summary,
                },
            )?)
        }
        _ => None,
    };

    // The data dictionary keeps the features' descriptions; nothing else reads the feature
    // table any more: the features become the `customer_features` frame column by column.
    let dictionary = crate::dictionary::Dictionary::new(
        opts,
        table
            .columns()
            .iter()
            .map(|c| (c.name.to_string(), c.description.to_string()))
            .collect(),
    );
    let mut rows = vec![(
        "customer_features",
        crate::tables::customer_frame("customer_features", ids, table)?,
    )];
    let mut backtest = None;
    let (models_manifest, models_failed) = match models {
        Some(stage) => {
            for (name, frame) in stage.tables {
                if name == "backtest" {
                    backtest = Some(frame);
                } else {
                    rows.push((name, frame));
                }
            }
            (stage.manifest, stage.failure)
        }
        None => (json!({ "enabled": false }), None),
    };
    let segments_manifest = std::mem::take(&mut segments.manifest);
    rows.push(("segments", segments.frame));
    let loyalty_manifest = match loyalty {
        Some(l) => {
            rows.extend(l.tables);
            l.manifest
        }
        None => json!({ "enabled": false }),
    };
    Ok(Scored {
        rows,
        dictionary,
        summary: segments.summary,
        profiles,
        backtest,
        manifests: [
            models_manifest,
            segments_manifest,
            clusters_manifest,
            loyalty_manifest,
            control_manifest,
        ],
        models_failed,
        artifacts,
    })
}
