//! The analyst's report (`patronage report`, `run --report`): one self-contained HTML file per
//! run date, `OUT/reports/<as-of>.html`, read from the run's published tables and manifest —
//! headline numbers, segments, the R × F grid, churn risk, the backtest's calibration, the
//! value curve, the loyalty funnel, cluster profiles, and what changed since the previous run
//! in OUT. No network, no script: inline SVG and CSS, readable on a laptop and printable.

mod svg;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use svg::{count, escape, percent};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{}: no run to report on (no manifest under manifests/); run `patronage run --out {}` first", .0.display(), .0.display())]
    NoRun(PathBuf),
    #[error("{}: {message}", path.display())]
    Read { path: PathBuf, message: String },
    #[error("{}: {message}", path.display())]
    Write { path: PathBuf, message: String },
}

fn read_err(path: &Path, e: impl std::fmt::Display) -> ReportError {
    ReportError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// The run dates OUT holds a manifest for, ascending.
pub fn run_dates(out: &Path) -> Vec<String> {
    let mut dates: Vec<String> = fs_err::read_dir(out.join("manifests"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    name.strip_suffix(".json").map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    dates.sort();
    dates
}

/// A table of the run, its parts stacked; `None` when the run did not write it. Either layout:
/// a Delta table's live files are the ones its log names.
fn table(out: &Path, name: &str, as_of: &str) -> Result<Option<DataFrame>, ReportError> {
    let parts = patronage_output::partition_files(out, name, as_of)
        .map_err(|e| read_err(&out.join(name), e))?;
    let Some(parts) = parts else {
        return Ok(None);
    };
    let mut frame: Option<DataFrame> = None;
    for part in parts {
        let file = fs_err::File::open(&part).map_err(|e| read_err(&part, e))?;
        let df = ParquetReader::new(file.into_parts().0)
            .finish()
            .map_err(|e| read_err(&part, e))?;
        frame = Some(match frame {
            None => df,
            Some(mut f) => {
                f.vstack_mut(&df).map_err(|e| read_err(&part, e))?;
                f
            }
        });
    }
    Ok(frame)
}

/// The customer-base model's name from its manifest id (`pareto_nbd`, `mbgnbd+seasonal`, ...);
/// runs from before the choice had BG/NBD.
fn model_name(id: Option<&str>) -> &'static str {
    match id.map(|m| m.trim_end_matches("+seasonal")) {
        Some("mbgnbd") => "MBG/NBD",
        Some("pareto_nbd") => "Pareto/NBD",
        _ => "BG/NBD",
    }
}

fn floats(df: &DataFrame, column: &str) -> Vec<Option<f64>> {
    df.column(column)
        .and_then(|c| c.cast(&DataType::Float64))
        .ok()
        .and_then(|c| c.f64().ok().map(|v| v.iter().collect()))
        .unwrap_or_default()
}

fn texts(df: &DataFrame, column: &str) -> Vec<Option<String>> {
    df.column(column)
        .ok()
        .and_then(|c| {
            c.str()
                .ok()
                .map(|v| v.iter().map(|s| s.map(str::to_string)).collect())
        })
        .unwrap_or_default()
}

/// Counts of each value, in first-seen order of `order` then the rest ascending.
fn tally(values: &[Option<String>], order: &[&str]) -> Vec<(String, f64)> {
    let mut counts: BTreeMap<String, f64> = BTreeMap::new();
    for v in values.iter().flatten() {
        *counts.entry(v.clone()).or_default() += 1.0;
    }
    let mut out: Vec<(String, f64)> = order
        .iter()
        .filter_map(|k| counts.remove(*k).map(|n| (k.to_string(), n)))
        .collect();
    out.extend(counts);
    out
}

struct Section {
    title: String,
    note: String,
    body: String,
}

/// Writes `OUT/reports/<as-of>.html` for `as_of` (default: the latest run in OUT); returns its
/// path. The file is written whole, then renamed into place.
pub fn write(out: &Path, as_of: Option<&str>) -> Result<PathBuf, ReportError> {
    let dates = run_dates(out);
    let as_of = match as_of {
        Some(d) => d.to_string(),
        None => dates
            .last()
            .cloned()
            .ok_or_else(|| ReportError::NoRun(out.to_path_buf()))?,
    };
    let html = render(out, &as_of, &dates)?;
    let path = out.join("reports").join(format!("{as_of}.html"));
    let dir = out.join("reports");
    fs_err::create_dir_all(&dir).map_err(|e| ReportError::Write {
        path: dir.clone(),
        message: e.to_string(),
    })?;
    let tmp = path.with_extension("html.tmp");
    let write_err = |e: std::io::Error| ReportError::Write {
        path: path.clone(),
        message: e.to_string(),
    };
    fs_err::write(&tmp, html).map_err(write_err)?;
    fs_err::rename(&tmp, &path).map_err(write_err)?;
    Ok(path)
}

/// The report's HTML for run `as_of` of OUT (`dates`: every run date in OUT).
pub fn render(out: &Path, as_of: &str, dates: &[String]) -> Result<String, ReportError> {
    let manifest_path = out.join("manifests").join(format!("{as_of}.json"));
    let manifest: serde_json::Value = fs_err::read(&manifest_path)
        .map_err(|_| ReportError::NoRun(out.to_path_buf()))
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| read_err(&manifest_path, e)))?;
    let features = table(out, "customer_features", as_of)?.ok_or_else(|| {
        read_err(
            &out.join("customer_features"),
            format!("no table for {as_of}"),
        )
    })?;
    let scores = table(out, "churn_scores", as_of)?;
    let segments = table(out, "segments", as_of)?;
    let summary = table(out, "segment_summary", as_of)?;
    let loyalty = table(out, "loyalty_stages", as_of)?;
    let clusters = table(out, "cluster_profiles", as_of)?;
    let backtest = table(out, "backtest", as_of)?;
    let horizon = manifest["models"]["horizon_days"].as_u64().unwrap_or(90);

    // Headline numbers.
    let customers = features.height() as f64;
    let revenue: Vec<f64> = floats(&features, "net_revenue")
        .into_iter()
        .flatten()
        .collect();
    let total_revenue: f64 = revenue.iter().sum();
    let mut sorted = revenue.clone();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let top = (customers * 0.2).ceil() as usize;
    let top_share = if total_revenue > 0.0 {
        sorted.iter().take(top).sum::<f64>() / total_revenue
    } else {
        0.0
    };
    let expected: Option<f64> = scores
        .as_ref()
        .map(|s| floats(s, "expected_purchases").into_iter().flatten().sum());
    let mut cards = vec![
        ("customers".to_string(), count(customers)),
        ("net revenue".to_string(), count(total_revenue)),
        (
            "revenue from the top 20% of customers".to_string(),
            percent(top_share),
        ),
    ];
    if let Some(e) = expected {
        cards.push((format!("expected purchases, next {horizon} days"), count(e)));
    }

    let mut sections = Vec::new();
    if let Some(s) = &summary {
        let dims = texts(s, "dimension");
        let names = texts(s, "segment");
        let n = floats(s, "customers");
        let share = floats(s, "revenue_share");
        let mut items: Vec<(String, f64, String)> = (0..s.height())
            .filter(|&i| dims[i].as_deref() == Some("rfm_segment"))
            .map(|i| {
                let c = n[i].unwrap_or(0.0);
                (
                    names[i].clone().unwrap_or_default(),
                    c,
                    format!(
                        "{} · {} of revenue",
                        count(c),
                        percent(share[i].unwrap_or(0.0))
                    ),
                )
            })
            .collect();
        items.sort_by(|a, b| b.1.total_cmp(&a.1));
        sections.push(Section {
            title: "Segments".into(),
            note: "Customers per named RFM segment, and the segment's share of net revenue.".into(),
            body: svg::bars("customers per RFM segment", &items),
        });
    }
    if let Some(s) = &segments {
        let (r, f) = (floats(s, "r_score"), floats(s, "f_score"));
        let mut grid = vec![vec![0.0; 5]; 5];
        for (r, f) in r.iter().zip(&f) {
            if let (Some(r), Some(f)) = (r, f) {
                let (i, j) = (5 - *r as usize, *f as usize - 1);
                if i < 5 && j < 5 {
                    grid[i][j] += 1.0;
                }
            }
        }
        let labels = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        sections.push(Section {
            title: "Recency × frequency".into(),
            note:
                "Buyers per R score (rows, 5 = most recent) and F score (columns, 5 = most orders)."
                    .into(),
            body: svg::heatmap(
                "buyers by R and F score",
                &labels(&["R5", "R4", "R3", "R2", "R1"]),
                &labels(&["F1", "F2", "F3", "F4", "F5"]),
                &grid,
                "R",
                "F",
            ),
        });
    }
    if let Some(s) = &scores {
        let bands = tally(
            &texts(s, "churn_risk"),
            &["low", "medium", "high", "very_high"],
        );
        let total: f64 = bands.iter().map(|b| b.1).sum();
        let items: Vec<(String, f64, String)> = bands
            .iter()
            .map(|(b, n)| {
                (
                    b.clone(),
                    *n,
                    format!("{} · {}", count(*n), percent(n / total.max(1.0))),
                )
            })
            .collect();
        let mut bins = vec![0.0; 20];
        for p in floats(s, "p_purchase").into_iter().flatten() {
            bins[((p * 20.0) as usize).min(19)] += 1.0;
        }
        let bins: Vec<(String, f64)> = bins
            .into_iter()
            .enumerate()
            .map(|(k, n)| (format!("{:.2}", k as f64 / 20.0), n))
            .collect();
        sections.push(Section {
            title: "Churn risk".into(),
            note: format!("Risk bands from the probability of a purchase in the next {horizon} days ({}), and that probability's distribution over buyers.", model_name(manifest["models"]["customer_model"].as_str())),
            body: svg::bars("buyers per churn-risk band", &items)
                + &svg::histogram("buyers by probability of a purchase", &bins, &format!("p_purchase (next {horizon} days)")),
        });
    }
    if let Some(b) = &backtest {
        let buckets = texts(b, "calibration_repeat_purchases");
        let (pred, act) = (
            floats(b, "predicted_purchases"),
            floats(b, "actual_purchases"),
        );
        // The chosen model's rows (every candidate is backtested; older runs have one model).
        let chosen: Vec<bool> = match b.column("chosen").ok().and_then(|c| c.bool().ok()) {
            Some(c) => c.iter().map(|v| v.unwrap_or(false)).collect(),
            None => vec![true; b.height()],
        };
        let keep: Vec<usize> = (0..b.height())
            .filter(|&i| chosen[i] && buckets[i].as_deref() != Some("all"))
            .collect();
        let cats: Vec<String> = keep
            .iter()
            .map(|&i| buckets[i].clone().unwrap_or_default())
            .collect();
        let p: Vec<f64> = keep.iter().map(|&i| pred[i].unwrap_or(0.0)).collect();
        let a: Vec<f64> = keep.iter().map(|&i| act[i].unwrap_or(0.0)).collect();
        let holdout = manifest["models"]["backtest"]["holdout_days"]
            .as_u64()
            .unwrap_or(0);
        sections.push(Section {
            title: "Backtest calibration".into(),
            note: format!("{} fitted without the last {holdout} days: predicted against actual repeat purchases in those days, by repeat purchases in the calibration period{}.", model_name(manifest["models"]["backtest"]["customer_model"].as_str()), if manifest["models"]["backtest"]["customer_model"].as_str().is_some_and(|m| m.ends_with("+seasonal")) { ", with the seasonal index" } else { "" }),
            body: svg::paired_bars("predicted vs actual repeat purchases", &cats, ("predicted", &p), ("actual", &a)),
        });
    }
    if let Some(s) = &segments {
        let mut value: Vec<f64> = floats(s, "tier_value")
            .into_iter()
            .flatten()
            .filter(|v| *v > 0.0)
            .collect();
        value.sort_by(|a, b| b.total_cmp(a));
        let total: f64 = value.iter().sum();
        if total > 0.0 {
            let n = value.len();
            let step = (n / 200).max(1);
            let mut points = vec![(0.0, 0.0)];
            let mut acc = 0.0;
            for (k, v) in value.iter().enumerate() {
                acc += v;
                if (k + 1) % step == 0 || k + 1 == n {
                    points.push(((k + 1) as f64 / n as f64, acc / total));
                }
            }
            let k20 = ((n as f64) * 0.2).ceil() as usize;
            let at20 = value.iter().take(k20).sum::<f64>() / total;
            let tiers = tally(&texts(s, "value_tier"), &["top", "middle", "low", "zero"]);
            let basis = match manifest["segments"]["value_tiers"]["by"].as_str() {
                Some("clv") => "CLV",
                Some("net_revenue") => "net revenue",
                Some(other) => other,
                None => "value",
            };
            sections.push(Section {
                title: "Value concentration".into(),
                note: format!(
                    "Cumulative share of value ({basis}) against the share of customers with value, highest first; tiers: {}.",
                    tiers.iter().map(|(t, n)| format!("{t} {}", count(*n))).collect::<Vec<_>>().join(", ")
                ),
                body: svg::curve(
                    "value concentration (Pareto curve)",
                    &points,
                    Some((0.2, at20, format!("top 20%: {}", percent(at20)))),
                    "share of customers",
                    "share of value",
                ),
            });
        }
    }
    if let Some(l) = &loyalty {
        let order = [
            "prospect",
            "insufficient_history",
            "cognitive",
            "affective",
            "conative",
            "action",
        ];
        let stages = tally(&texts(l, "loyalty_stage"), &order);
        let total: f64 = stages.iter().map(|s| s.1).sum();
        let items: Vec<(String, f64, String)> = stages
            .iter()
            .map(|(s, n)| {
                (
                    s.clone(),
                    *n,
                    format!("{} · {}", count(*n), percent(n / total.max(1.0))),
                )
            })
            .collect();
        sections.push(Section {
            title: "Loyalty stages".into(),
            note: "Oliver's stages, cognitive → affective → conative → action: each customer at the highest stage whose conditions they meet (the evidence is in loyalty_stages).".into(),
            body: svg::bars("customers per loyalty stage", &items),
        });
    }
    if let Some(c) = &clusters {
        sections.push(Section {
            title: "Behavioural clusters".into(),
            note: "Size, revenue share, scores and the median of every clustering feature (raw units).".into(),
            body: html_table(c),
        });
    }
    sections.push(trends(out, as_of, dates, segments.as_ref())?);

    Ok(page(as_of, &manifest, &cards, &sections))
}

/// Customers across the run dates in OUT, and who moved between RFM segments since the previous
/// run.
fn trends(
    out: &Path,
    as_of: &str,
    dates: &[String],
    now: Option<&DataFrame>,
) -> Result<Section, ReportError> {
    let upto: Vec<&String> = dates.iter().filter(|d| d.as_str() <= as_of).collect();
    let points: Vec<(String, f64)> = upto
        .iter()
        .filter_map(|d| {
            let m: serde_json::Value = serde_json::from_slice(
                &fs_err::read(out.join("manifests").join(format!("{d}.json"))).ok()?,
            )
            .ok()?;
            Some((d.to_string(), m["customers"].as_f64()?))
        })
        .collect();
    let previous = upto.iter().rev().nth(1).map(|d| d.to_string());
    let mut body = String::new();
    if points.len() >= 2 {
        body.push_str(&svg::line("customers per run", &points));
    }
    let note;
    match (previous, now) {
        (Some(prev), Some(now)) => {
            let before = table(out, "segments", &prev)?;
            let mut moves: BTreeMap<(String, String), f64> = BTreeMap::new();
            if let Some(before) = before {
                let ids = texts(&before, "customer_id");
                let segs = texts(&before, "rfm_segment");
                let was: std::collections::HashMap<&str, &str> = ids
                    .iter()
                    .zip(&segs)
                    .filter_map(|(i, s)| Some((i.as_deref()?, s.as_deref()?)))
                    .collect();
                for (id, seg) in texts(now, "customer_id")
                    .iter()
                    .zip(texts(now, "rfm_segment"))
                {
                    if let (Some(id), Some(seg)) = (id, seg) {
                        if let Some(old) = was.get(id.as_str()) {
                            if *old != seg {
                                *moves.entry((old.to_string(), seg)).or_default() += 1.0;
                            }
                        }
                    }
                }
            }
            let champions_at_risk = moves
                .iter()
                .filter(|((a, b), _)| a.contains("champion") && b.contains("risk"))
                .map(|(_, n)| n)
                .sum::<f64>();
            let mut top: Vec<((String, String), f64)> = moves.into_iter().collect();
            top.sort_by(|a, b| b.1.total_cmp(&a.1));
            let items: Vec<(String, f64, String)> = top
                .iter()
                .take(12)
                .map(|((a, b), n)| (format!("{a} → {b}"), *n, count(*n)))
                .collect();
            note = format!(
                "Run dates in this output: {}. Since the previous run ({prev}): {} customers changed RFM segment; {} moved from Champions to At Risk.",
                upto.len(),
                count(top.iter().map(|t| t.1).sum()),
                count(champions_at_risk)
            );
            if !items.is_empty() {
                body.push_str(&svg::bars(
                    "largest segment migrations since the previous run",
                    &items,
                ));
            }
        }
        _ => {
            note = "One run date in this output so far: migrations appear from the second run on."
                .into()
        }
    }
    Ok(Section {
        title: "Trends and migration".into(),
        note,
        body,
    })
}

fn html_table(df: &DataFrame) -> String {
    let mut s = String::from("<div class=\"wide\"><table><thead><tr>");
    for c in df.get_column_names() {
        s.push_str(&format!("<th>{}</th>", escape(c.as_str())));
    }
    s.push_str("</tr></thead><tbody>");
    for i in 0..df.height() {
        s.push_str("<tr>");
        for c in df.columns() {
            let cell = match c.get(i) {
                Ok(AnyValue::Null) | Err(_) => String::new(),
                Ok(AnyValue::Float64(v)) => format!("{v:.3}"),
                Ok(AnyValue::String(v)) => v.to_string(),
                Ok(AnyValue::StringOwned(v)) => v.to_string(),
                Ok(v) => v.to_string(),
            };
            s.push_str(&format!("<td>{}</td>", escape(&cell)));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table></div>");
    s
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:980px;color:#1d2430;padding:0 1rem}h1{margin-bottom:.2rem}.sub{color:#5a6472;margin-top:0}.cards{display:flex;flex-wrap:wrap;gap:1rem;margin:1.5rem 0}.card{flex:1 1 200px;border:1px solid #d5dae1;border-radius:6px;padding:.8rem 1rem}.card .n{font-size:1.6rem;font-weight:600}.card .k{color:#5a6472;font-size:.9rem}section{margin:2rem 0;page-break-inside:avoid}section p{color:#3b4451}svg.chart{width:100%;height:auto;display:block;margin:.5rem 0}svg .label{font-size:11px;fill:#3b4451}svg .value{font-size:11px;fill:#1d2430}svg .value.light{fill:#fff}svg .axis{stroke:#8a94a3}svg .frame{fill:none;stroke:#d5dae1}.wide{overflow-x:auto}table{border-collapse:collapse;font-size:.8rem}th,td{border-bottom:1px solid #e3e7ec;padding:.3rem .5rem;text-align:right}th:first-child,td:first-child{text-align:left}footer{color:#5a6472;font-size:.8rem;margin-top:3rem}@media print{body{margin:0;max-width:none}.cards{gap:.5rem}.wide{overflow:visible}table{font-size:.65rem}}";

fn page(
    as_of: &str,
    manifest: &serde_json::Value,
    cards: &[(String, String)],
    sections: &[Section],
) -> String {
    let mut html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Patronage report {as_of}</title><style>{STYLE}</style></head><body><h1>Customer report</h1><p class=\"sub\">As of {as_of} · engine {} · status {}</p><div class=\"cards\">",
        escape(manifest["engine"]["version"].as_str().unwrap_or("")),
        escape(manifest["status"].as_str().unwrap_or(""))
    );
    for (k, v) in cards {
        html.push_str(&format!(
            "<div class=\"card\"><div class=\"n\">{}</div><div class=\"k\">{}</div></div>",
            escape(v),
            escape(k)
        ));
    }
    html.push_str("</div>");
    for s in sections {
        html.push_str(&format!(
            "<section><h2>{}</h2><p>{}</p>{}</section>",
            escape(&s.title),
            escape(&s.note),
            s.body
        ));
    }
    let warnings = manifest["warnings"].as_array().map_or(0, Vec::len);
    html.push_str(&format!(
        "<footer>From the tables and manifest of run {as_of} ({warnings} warnings in manifests/{as_of}.json). Every number here is in the Parquet tables; their columns are described in docs/tables.md.</footer></body></html>"
    ));
    html
}
