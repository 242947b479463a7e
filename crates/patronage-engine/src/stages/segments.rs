//! Segments: tie-aware RFM scores and the named RFM segment of every customer (rule table),
//! value tiers by the 80/20 rule, and the `segment_summary` per segment, tier and score. Reads
//! its inputs from the feature table by name.

use patronage_features::FeatureTable;
use patronage_segments::{
    occupancy, score_quintiles, summarize, value_tiers, Direction, ValueTier,
};
use polars::prelude::*;
use serde_json::json;

use super::Tables;
use crate::config::{RunOptions, ValueBasis};
use crate::error::EngineError;
use crate::tables;

pub const NO_PURCHASE: &str = "no_purchase";

/// The `rfm_segment` of a customer known from another input (a profile) without any order.
pub const PROSPECT: &str = "prospect";

/// The segments stage's output.
pub(crate) struct Segments {
    /// `segments`: later stages add their columns (clusters, control group, loyalty).
    pub frame: DataFrame,
    /// `segment_summary`: the loyalty stage adds its rows.
    pub summary: DataFrame,
    pub manifest: serde_json::Value,
}

impl Segments {
    /// The two tables, in output order.
    pub fn into_tables(self) -> Tables {
        vec![("segments", self.frame), ("segment_summary", self.summary)]
    }
}

pub(crate) fn run(
    opts: &RunOptions,
    ids: &Column,
    f: &FeatureTable,
    clv: Option<&[Option<f64>]>,
) -> Result<Segments, EngineError> {
    let freq = f.int("frequency")?;
    let buyer = |i: usize| freq.get(i).is_some_and(|v| v > 0);
    let n = f.len();
    // Revenue for value tiers and summaries: net revenue, 0 for a prospect.
    let net_revenue: Vec<f64> = f
        .float("net_revenue")?
        .iter()
        .map(|v| v.unwrap_or(0.0))
        .collect();
    // Each score's input is made, scored and freed on its own thread (three float columns of
    // every customer never wait together for the frame).
    let monetary_all = f.float("monetary")?;
    let recency = f.numeric("recency_days")?;
    let (r, (fs, m)) = rayon::join(
        move || score_quintiles(&recency, Direction::LowerIsBetter),
        || {
            rayon::join(
                || {
                    let frequency: Vec<Option<f64>> = (0..n)
                        .map(|i| buyer(i).then(|| freq.get(i).unwrap_or(0) as f64))
                        .collect();
                    score_quintiles(&frequency, Direction::HigherIsBetter)
                },
                || {
                    let monetary: Vec<Option<f64>> = (0..n)
                        .map(|i| if buyer(i) { monetary_all.get(i) } else { None })
                        .collect();
                    score_quintiles(&monetary, Direction::HigherIsBetter)
                },
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
            None if freq.get(i).is_none() => Some(PROSPECT),
            None if !buyer(i) => Some(NO_PURCHASE),
            None => None,
        })
        .collect();
    let (value, value_by): (Vec<Option<f64>>, &str) = match (opts.value_by, clv) {
        (ValueBasis::Clv, Some(clv)) => (clv.to_vec(), "clv"),
        _ => (
            net_revenue.iter().map(|v| Some(*v)).collect(),
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
            ids.clone(),
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
    let mut summary = summarize("rfm_segment", &labels, &net_revenue, &segment_order);
    summary.extend(summarize(
        "value_tier",
        &tier_labels,
        &net_revenue,
        &tier_order,
    ));
    let score_order = ["1", "2", "3", "4", "5"];
    for (dim, scores) in [("r_score", &r), ("f_score", &fs), ("m_score", &m)] {
        let labels: Vec<Option<&str>> = scores
            .iter()
            .map(|s| s.map(|s| score_order[(s - 1) as usize]))
            .collect();
        summary.extend(summarize(dim, &labels, &net_revenue, &score_order));
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
        summary: tables::segment_summary(&summary)?,
        manifest,
    })
}
