//! The run: stages in order, each timed, then one atomic publish with the manifest.

use std::path::PathBuf;
use std::time::Instant;

use patronage_features::{CustomerFeatures, Day};
use patronage_input::{expand_inputs, format_day, ingest_orders, FileStats, Ingested};
use patronage_output::OutDir;
use patronage_segments::{
    occupancy, score_quintiles, summarize, value_tiers, Direction, ValueTier,
};
use polars::prelude::*;
use serde_json::json;

use crate::config::{AsOfChoice, RunOptions, ValueBasis};
use crate::error::EngineError;
use crate::tables;

/// Pipeline stages, reported to the caller as they start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Ingest,
    Features,
    Models,
    Segments,
    Write,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Features => "features",
            Stage::Models => "models",
            Stage::Segments => "segments",
            Stage::Write => "write",
        }
    }
}

/// What a run tells its caller as it goes.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A stage starts.
    Stage(Stage),
    /// Something the user should know that does not stop the run (also in the manifest).
    Warning(&'a str),
}

/// A latest purchase this many days before the as-of date draws a warning.
const STALE_DAYS: Day = 90;

/// What a successful run produced.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub as_of: String,
    pub customers: usize,
    pub rows_read: i64,
    pub rows_rejected: i64,
    pub tables: Vec<(String, PathBuf, usize)>,
    pub manifest: PathBuf,
    pub warnings: Vec<String>,
    /// Set when a model failed: the other tables were published (exit code 4).
    pub models_failed: Option<String>,
}

struct Timer {
    timings: serde_json::Map<String, serde_json::Value>,
    current: Option<(Stage, Instant)>,
}

impl Timer {
    fn start(&mut self, stage: Stage, report: &dyn Fn(Event)) {
        self.stop();
        report(Event::Stage(stage));
        self.current = Some((stage, Instant::now()));
    }

    fn stop(&mut self) {
        if let Some((stage, t)) = self.current.take() {
            let ms = (t.elapsed().as_secs_f64() * 1e4).round() / 10.0;
            self.timings.insert(stage.as_str().into(), json!(ms));
        }
    }
}

/// The `rfm_segment` (and summary label) of customers without a purchase.
pub const NO_PURCHASE: &str = "no_purchase";

/// The segments table and its summary rows.
struct Segments {
    frame: DataFrame,
    summary: Vec<patronage_segments::SummaryRow>,
    manifest: serde_json::Value,
}

fn segments(
    opts: &RunOptions,
    f: &CustomerFeatures,
    clv: Option<&[Option<f64>]>,
) -> Result<Segments, EngineError> {
    let buyer = |i: usize| f.frequency[i] > 0;
    let n = f.len();
    let recency: Vec<Option<f64>> = f.recency_days.iter().map(|v| v.map(|d| d as f64)).collect();
    let frequency: Vec<Option<f64>> = (0..n)
        .map(|i| buyer(i).then(|| f.frequency[i] as f64))
        .collect();
    let monetary: Vec<Option<f64>> = (0..n).map(|i| buyer(i).then(|| f.monetary[i])).collect();
    let (r, (fs, m)) = rayon::join(
        || score_quintiles(&recency, Direction::LowerIsBetter),
        || {
            rayon::join(
                || score_quintiles(&frequency, Direction::HigherIsBetter),
                || score_quintiles(&monetary, Direction::HigherIsBetter),
            )
        },
    );
    let rules: Vec<Option<&patronage_segments::Rule>> = (0..n)
        .map(|i| match (r[i], fs[i], m[i]) {
            (Some(r), Some(f), Some(m)) => opts.rules.classify(r, f, m),
            _ => None,
        })
        .collect();
    // Customers without a purchase (only cancelled, returned or refunded orders) have no scores
    // and the segment `no_purchase`.
    let labels: Vec<Option<&str>> = rules
        .iter()
        .enumerate()
        .map(|(i, r)| match r {
            Some(r) => Some(r.segment.as_str()),
            None if !buyer(i) => Some(NO_PURCHASE),
            None => None,
        })
        .collect();
    let (value, value_by): (Vec<Option<f64>>, &str) = match (opts.value_by, clv) {
        (ValueBasis::Clv, Some(clv)) => (clv.to_vec(), "clv"),
        _ => (
            f.net_revenue.iter().map(|v| Some(*v)).collect(),
            "net_revenue",
        ),
    };
    let tiers = value_tiers(&value, opts.value_tiers);

    let cell_labels: Vec<String> = (0..125)
        .map(|c| format!("{}{}{}", c / 25 + 1, c / 5 % 5 + 1, c % 5 + 1))
        .collect();
    let cell: Vec<Option<&str>> = (0..n)
        .map(|i| match (r[i], fs[i], m[i]) {
            (Some(r), Some(f), Some(m)) => {
                Some(cell_labels[((r - 1) * 25 + (f - 1) * 5 + (m - 1)) as usize].as_str())
            }
            _ => None,
        })
        .collect();
    let frame = tables::frame(
        "segments",
        vec![
            Column::new("customer_id".into(), &f.customer_id),
            Column::new("r_score".into(), &r),
            Column::new("f_score".into(), &fs),
            Column::new("m_score".into(), &m),
            Column::new("rfm_cell".into(), &cell),
            Column::new("rfm_segment".into(), &labels),
            Column::new(
                "rfm_rule_id".into(),
                rules
                    .iter()
                    .map(|r| r.map(|r| r.id.as_str()))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "value_tier".into(),
                tiers.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            ),
            Column::new("tier_value".into(), &value),
        ],
    )?;

    let segment_order: Vec<&str> = {
        let mut seen = Vec::new();
        for rule in &opts.rules.rules {
            if !seen.contains(&rule.segment.as_str()) {
                seen.push(rule.segment.as_str());
            }
        }
        seen
    };
    let tier_labels: Vec<Option<&str>> = tiers.iter().map(|t| Some(t.as_str())).collect();
    let tier_order: Vec<&str> = ValueTier::ALL.iter().map(|t| t.as_str()).collect();
    let mut summary = summarize("rfm_segment", &labels, &f.net_revenue, &segment_order);
    summary.extend(summarize(
        "value_tier",
        &tier_labels,
        &f.net_revenue,
        &tier_order,
    ));
    let score_order = ["1", "2", "3", "4", "5"];
    for (dim, scores) in [("r_score", &r), ("f_score", &fs), ("m_score", &m)] {
        let labels: Vec<Option<&str>> = scores
            .iter()
            .map(|s| s.map(|s| score_order[(s - 1) as usize]))
            .collect();
        summary.extend(summarize(dim, &labels, &f.net_revenue, &score_order));
    }

    // One pass: customers per rule id (several rules may share a segment name).
    let mut per_rule = std::collections::HashMap::<&str, usize>::new();
    for rule in rules.iter().flatten() {
        *per_rule.entry(rule.id.as_str()).or_default() += 1;
    }
    let mut fired = serde_json::Map::new();
    for rule in &opts.rules.rules {
        let count = per_rule.get(rule.id.as_str()).copied().unwrap_or(0);
        fired.insert(rule.id.clone(), json!(count));
    }
    let manifest = json!({
        "rules": { "source": opts.rules_source, "name": opts.rules.name, "customers_per_rule": fired },
        "score_occupancy": { "r": occupancy(&r), "f": occupancy(&fs), "m": occupancy(&m) },
        "value_tiers": { "by": value_by, "top_share": opts.value_tiers.top_share, "middle_share": opts.value_tiers.middle_share },
        "customers_without_purchase": (0..n).filter(|i| !buyer(*i)).count(),
    });
    Ok(Segments {
        frame,
        summary,
        manifest,
    })
}

fn sum_files(files: &[FileStats], field: fn(&FileStats) -> i64) -> i64 {
    files.iter().map(field).sum()
}

/// Why a run found nothing to score, in the user's terms: which file, which column, an example
/// value, and what to do.
fn explain_no_data(ingested: &Ingested, as_of: Option<Day>) -> String {
    let rows_read = sum_files(&ingested.files, |f| f.rows_read);
    let rows_rejected = sum_files(&ingested.files, |f| f.rows_rejected);
    let files = ingested
        .files
        .iter()
        .map(|f| f.path.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if rows_read == 0 {
        return format!("{files}: no data rows (the input has a header or schema but no rows)");
    }
    if rows_rejected == rows_read {
        let mut by_reason: std::collections::BTreeMap<&str, i64> = Default::default();
        for r in &ingested.rejected {
            *by_reason.entry(r.reason.as_str()).or_default() += 1;
        }
        let (top, _) = by_reason
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(k, n)| (*k, *n))
            .unwrap_or(("", 0));
        let counts = by_reason
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ");
        let example = ingested
            .rejected
            .iter()
            .find(|r| r.reason.as_str() == top)
            .map(|r| {
                format!(
                    "; e.g. {} row {}, column `{}`: {}",
                    r.source_file, r.row, r.column, r.message
                )
            })
            .unwrap_or_default();
        return format!("every one of the {rows_read} rows was rejected ({counts}){example}");
    }
    let orders = &ingested.orders;
    let purchases = orders.is_purchase.iter().filter(|p| **p).count();
    if purchases == 0 {
        let cancelled = sum_files(&ingested.files, |f| f.cancelled_lines);
        let returned = sum_files(&ingested.files, |f| f.returned_lines);
        return format!(
            "{} of {rows_read} rows were accepted, but no order is a purchase ({cancelled} cancelled lines, {returned} returned lines, {} refund-only or returned orders); check the status mapping ([orders.status_values]) and the sign of amounts",
            rows_read - rows_rejected,
            orders.len()
        );
    }
    match (
        as_of,
        orders
            .day
            .iter()
            .zip(&orders.is_purchase)
            .filter(|(_, p)| **p)
            .map(|(d, _)| *d)
            .min(),
    ) {
        (Some(as_of), Some(first)) if first > as_of => format!(
            "all {purchases} purchases are after it (the first on {}); pass a later --as-of",
            format_day(first)
        ),
        _ => format!("{purchases} purchases were read, none on or before it; pass a later --as-of"),
    }
}

/// Runs the whole job and publishes its tables. `report` hears stage starts and warnings.
pub fn run(opts: &RunOptions, report: &dyn Fn(Event)) -> Result<RunSummary, EngineError> {
    let mut timer = Timer {
        timings: serde_json::Map::new(),
        current: None,
    };
    let mut warnings: Vec<String> = Vec::new();
    let mut warn = |w: String| {
        report(Event::Warning(&w));
        warnings.push(w);
    };

    // The lock first: a second run on this OUT stops here, before reading anything; an earlier
    // run's interrupted publish is completed.
    let (out_dir, repaired) = OutDir::open(&opts.out)?;
    for note in repaired {
        warn(note);
    }

    timer.start(Stage::Ingest, report);
    let files = expand_inputs(&opts.orders)?;
    let ingested = ingest_orders(&files, &opts.schema)?;
    for w in &ingested.warnings {
        warn(w.clone());
    }
    for f in &ingested.files {
        if f.rows_read > 0 && f.rows_accepted == 0 {
            warn(format!(
                "{}: every one of its {} rows was rejected",
                f.path, f.rows_read
            ));
        }
    }
    let orders = &ingested.orders;
    let last_purchase = |not_after: Day| {
        orders
            .day
            .iter()
            .zip(&orders.is_purchase)
            .filter(|(d, p)| **p && **d <= not_after)
            .map(|(d, _)| *d)
            .max()
    };
    let no_data = |as_of: Option<Day>, label: Day| -> EngineError {
        let mut explanation = explain_no_data(&ingested, as_of);
        if !ingested.rejected.is_empty() {
            let written = tables::rejected("orders", &ingested.rejected).and_then(|mut df| {
                Ok(out_dir.write_failed(&format_day(label), "rejected.parquet", &mut df)?)
            });
            if let Ok(path) = written {
                explanation.push_str(&format!("; the rejected rows are in {}", path.display()));
            }
        }
        EngineError::NoData {
            as_of: as_of.map_or_else(|| "(latest order)".to_string(), format_day),
            explanation,
        }
    };
    let as_of = match opts.as_of {
        AsOfChoice::Fixed(day) => day,
        AsOfChoice::LatestOrder { not_after } => {
            last_purchase(not_after).ok_or_else(|| no_data(None, not_after))?
        }
    };
    let as_of_text = format_day(as_of);
    let after_as_of = orders.day.iter().filter(|d| **d > as_of).count();
    if as_of > opts.today {
        warn(format!(
            "the as-of date {as_of_text} is in the future (today is {}): recency and churn scores are measured from it",
            format_day(opts.today)
        ));
    }
    if let Some(last) = last_purchase(as_of) {
        let gap = as_of - last;
        if gap > STALE_DAYS {
            warn(format!(
                "the latest purchase ({}) is {gap} days before the as-of date {as_of_text}: is the export complete, or the as-of date right?",
                format_day(last)
            ));
        }
    }

    timer.start(Stage::Features, report);
    let features = patronage_features::compute(orders, as_of);
    if !features.frequency.iter().any(|f| *f > 0) {
        return Err(no_data(Some(as_of), as_of));
    }
    if let Some(n) = opts.holdout_days {
        let first = features
            .first_order_date
            .iter()
            .flatten()
            .min()
            .copied()
            .unwrap_or(as_of);
        let longest = as_of - first - 1;
        if !opts.models.enabled {
            warn(format!(
                "--holdout-days {n} has no effect with the models off (--no-models)"
            ));
        } else if i64::from(n) > i64::from(longest) {
            return Err(EngineError::InvalidOptions(format!(
                "--holdout-days {n} would end the calibration period on {}, but the first purchase is on {}: nothing would be left to fit on; use at most {} days",
                format_day(as_of - n as i32),
                format_day(first),
                longest.max(0)
            )));
        }
    }

    let models = if opts.models.enabled {
        timer.start(Stage::Models, report);
        let stage =
            crate::models::run_models(&opts.models, orders, &features, as_of, opts.holdout_days)?;
        if let Some(why) = &stage.failure {
            warn(format!(
                "models failed, the other tables are published: {why}"
            ));
        }
        Some(stage)
    } else {
        None
    };

    timer.start(Stage::Segments, report);
    let clv = models
        .as_ref()
        .and_then(|m| m.scores.as_ref())
        .map(|s| s.clv.as_slice());
    let segments = segments(opts, &features, clv)?;

    timer.start(Stage::Write, report);
    let mut frames: Vec<(&str, DataFrame)> =
        vec![("customer_features", tables::customer_features(&features)?)];
    let mut models_manifest = json!({ "enabled": false });
    let mut models_failed = None;
    if let Some(stage) = models {
        if let Some(scores) = stage.scores {
            frames.push(("churn_scores", scores.frame));
        }
        if let Some(backtest) = stage.backtest {
            frames.push(("backtest", backtest));
        }
        models_manifest = stage.manifest;
        models_failed = stage.failure;
    }
    frames.push(("segments", segments.frame));
    frames.push((
        "segment_summary",
        tables::segment_summary(&segments.summary)?,
    ));
    frames.push(("rejected", tables::rejected("orders", &ingested.rejected)?));
    let mut staging = out_dir.stage(&as_of_text)?;
    let mut table_rows = serde_json::Map::new();
    for (name, df) in &mut frames {
        staging.write_table(name, df)?;
        table_rows.insert(name.to_string(), json!(df.height()));
    }
    timer.stop();

    let rows_read = sum_files(&ingested.files, |f| f.rows_read);
    let rows_rejected = sum_files(&ingested.files, |f| f.rows_rejected);
    let mut by_reason = std::collections::BTreeMap::<String, i64>::new();
    for f in &ingested.files {
        for (k, v) in &f.rejected_by_reason {
            *by_reason.entry(k.clone()).or_default() += v;
        }
    }
    let manifest = json!({
        "engine": { "name": "patronage", "version": crate::VERSION },
        "status": if models_failed.is_some() { "models_failed" } else { "ok" },
        "as_of": as_of_text,
        "as_of_source": match opts.as_of { AsOfChoice::Fixed(_) => "given", AsOfChoice::LatestOrder { .. } => "latest_valid_order" },
        "config": opts.config_path.as_ref().map(|p| p.display().to_string()),
        "warnings": warnings,
        "inputs": {
            "orders": {
                "spec": opts.orders,
                "files": ingested.files,
                "rows_read": rows_read,
                "rows_accepted": rows_read - rows_rejected,
                "rows_rejected": rows_rejected,
                "rejected_by_reason": by_reason,
                "duplicates_collapsed": sum_files(&ingested.files, |f| f.duplicates_collapsed),
                "cancelled_lines": sum_files(&ingested.files, |f| f.cancelled_lines),
                "returned_lines": sum_files(&ingested.files, |f| f.returned_lines),
                "returned_counts_as_purchase": opts.schema.returned_counts_as_purchase,
                "null_values": opts.schema.null_values,
                "orders": orders.len(),
                "purchase_orders": orders.is_purchase.iter().filter(|p| **p).count(),
                "non_purchase_orders": orders.is_purchase.iter().filter(|p| !**p).count(),
                "orders_after_as_of_ignored": after_as_of,
            }
        },
        "customers": features.len(),
        "models": models_manifest,
        "segments": segments.manifest,
        "tables": table_rows,
        "timings_ms": timer.timings,
    });
    let published = staging.publish(&manifest, tables::TABLES)?;
    Ok(RunSummary {
        as_of: as_of_text,
        customers: features.len(),
        rows_read,
        rows_rejected,
        tables: published
            .tables
            .into_iter()
            .map(|(name, path)| {
                let rows = table_rows.get(&name).and_then(|v| v.as_u64()).unwrap_or(0) as usize;
                (name, path, rows)
            })
            .collect(),
        manifest: published.manifest,
        warnings,
        models_failed,
    })
}
