//! The run: stages in order, each timed, then one atomic publish with the manifest.

use std::path::PathBuf;
use std::time::Instant;

use patronage_features::CustomerFeatures;
use patronage_input::{expand_inputs, format_day, ingest_orders, FileStats};
use patronage_output::Staging;
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

/// What a successful run produced.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub as_of: String,
    pub customers: usize,
    pub rows_read: i64,
    pub rows_rejected: i64,
    pub tables: Vec<(String, PathBuf, usize)>,
    pub manifest: PathBuf,
}

struct Timer {
    timings: serde_json::Map<String, serde_json::Value>,
    current: Option<(Stage, Instant)>,
}

impl Timer {
    fn start(&mut self, stage: Stage, report: &dyn Fn(Stage)) {
        self.stop();
        report(stage);
        self.current = Some((stage, Instant::now()));
    }

    fn stop(&mut self) {
        if let Some((stage, t)) = self.current.take() {
            let ms = (t.elapsed().as_secs_f64() * 1e4).round() / 10.0;
            self.timings.insert(stage.as_str().into(), json!(ms));
        }
    }
}

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
    let labels: Vec<Option<&str>> = rules
        .iter()
        .map(|r| r.map(|r| r.segment.as_str()))
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

/// Runs the whole job and publishes its tables. `report` is told when each stage starts.
pub fn run(opts: &RunOptions, report: &dyn Fn(Stage)) -> Result<RunSummary, EngineError> {
    let mut timer = Timer {
        timings: serde_json::Map::new(),
        current: None,
    };

    timer.start(Stage::Ingest, report);
    let files = expand_inputs(&opts.orders)?;
    let ingested = ingest_orders(&files, &opts.schema)?;
    let orders = &ingested.orders;
    let as_of = match opts.as_of {
        AsOfChoice::Fixed(day) => day,
        AsOfChoice::LatestOrder { not_after } => orders
            .day
            .iter()
            .zip(&orders.is_purchase)
            .filter(|(d, p)| **p && **d <= not_after)
            .map(|(d, _)| *d)
            .max()
            .ok_or_else(|| EngineError::NoData {
                as_of: format_day(not_after),
                hint: "the input has no valid purchase; see the rejected rows".into(),
            })?,
    };
    let as_of_text = format_day(as_of);
    let after_as_of = orders.day.iter().filter(|d| **d > as_of).count();

    timer.start(Stage::Features, report);
    let features = patronage_features::compute(orders, as_of);
    if !features.frequency.iter().any(|f| *f > 0) {
        return Err(EngineError::NoData {
            as_of: as_of_text,
            hint: format!("{} orders are after it; pass a later --as-of", after_as_of),
        });
    }

    let scores = if opts.models.enabled {
        timer.start(Stage::Models, report);
        Some(crate::models::churn_scores(
            &opts.models,
            orders,
            &features,
            as_of,
            opts.holdout_days,
        )?)
    } else {
        None
    };

    timer.start(Stage::Segments, report);
    let segments = segments(opts, &features, scores.as_ref().map(|s| s.clv.as_slice()))?;

    timer.start(Stage::Write, report);
    let mut frames: Vec<(&str, DataFrame)> = vec![
        ("customer_features", tables::customer_features(&features)?),
        ("segments", segments.frame),
        (
            "segment_summary",
            tables::segment_summary(&segments.summary)?,
        ),
        ("rejected", tables::rejected(&ingested.rejected)?),
    ];
    let mut models_manifest = json!({ "enabled": false });
    if let Some(scores) = scores {
        frames.insert(1, ("churn_scores", scores.frame));
        if let Some(backtest) = scores.backtest {
            frames.push(("backtest", backtest));
        }
        models_manifest = scores.manifest;
    }
    fs_err::create_dir_all(&opts.out).map_err(patronage_output::OutputError::from)?;
    let mut staging = Staging::new(&opts.out, &as_of_text)?;
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
        "as_of": as_of_text,
        "as_of_source": match opts.as_of { AsOfChoice::Fixed(_) => "given", AsOfChoice::LatestOrder { .. } => "latest_valid_order" },
        "config": opts.config_path.as_ref().map(|p| p.display().to_string()),
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
                "orders": orders.len(),
                "purchase_orders": orders.is_purchase.iter().filter(|p| **p).count(),
                "refund_only_orders": orders.is_purchase.iter().filter(|p| !**p).count(),
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
    })
}
