//! Loyalty: the Oliver (1999) stage of every customer from the stage file (`[loyalty] rules`),
//! with its evidence columns, the Dick & Basu cell and the Reinartz & Kumar quadrant
//! (`loyalty_stages`); stage rows in `segment_summary`; and the control group in `segments`.

use std::collections::BTreeMap;
use std::path::Path;

use patronage_features::FeatureTable;
use patronage_segments::{
    assign_stages_with, dick_basu, in_control, percentile_stats, reinartz_kumar, Distribution,
    StageFile, Summarizer, SummaryPart, STAGE_PRESETS,
};
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Tables;
use crate::error::EngineError;
use crate::tables;

/// `[loyalty]` in the config.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoyaltyConfig {
    pub enabled: bool,
    /// A shipped stage file (`oliver`) or a path to a TOML stage file.
    pub rules: String,
}

impl Default for LoyaltyConfig {
    fn default() -> Self {
        LoyaltyConfig {
            enabled: true,
            rules: "oliver".into(),
        }
    }
}

/// `[segments.control]`: campaign hold-outs.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// Share of every RFM segment held out as `control_group = true`.
    pub share: f64,
    /// Per-segment shares that override `share` (by segment name).
    pub shares: BTreeMap<String, f64>,
    /// Salt of the hash: change it to draw a fresh control group.
    pub salt: String,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            share: 0.10,
            shares: BTreeMap::new(),
            salt: "patronage-control-v1".into(),
        }
    }
}

impl ControlConfig {
    pub(crate) fn check(&self) -> Result<(), String> {
        for (name, s) in std::iter::once(("share", &self.share))
            .chain(self.shares.iter().map(|(k, v)| (k.as_str(), v)))
        {
            if !(0.0..=1.0).contains(s) {
                return Err(format!(
                    "segments.control {name} = {s} is not a share in [0, 1]"
                ));
            }
        }
        Ok(())
    }
}

/// Every feature name a run can produce (for `rules check` of a stage file).
pub const KNOWN_FEATURES: &[&str] = &[
    "frequency",
    "purchase_days",
    "monetary",
    "refunds",
    "net_revenue",
    "aov",
    "recency_days",
    "tenure_days",
    "btyd_x",
    "btyd_t_x",
    "btyd_T",
    "btyd_m",
    "ipt_mean_days",
    "ipt_cv",
    "orders_last_90d",
    "orders_prev_90d",
    "order_trend",
    "discounted_order_share",
    "mean_discount_rate",
    "categories_bought",
    "membership_tier_rank",
    "points_balance",
    "subscription_active",
    "saved_payment_methods",
    "saved_addresses",
    "email_opt_in",
    "referrals",
    "reviews_written",
    "switching_cost_procedural",
    "switching_cost_financial",
    "switching_cost_relational",
    "switching_cost_index",
    "sessions",
    "sessions_30d",
    "sessions_90d",
    "days_since_last_visit",
    "events_per_session",
    "bounce_rate",
    "product_views",
    "view_to_cart_rate",
    "cart_to_purchase_rate",
    "cart_abandonment_rate",
    "price_page_exit_rate",
    "browse_no_buy_sessions",
    "categories_viewed",
    "visits_since_last_order",
    "p_alive",
    "p_purchase",
    "expected_purchases",
    "clv",
    "cluster_id",
];

/// Loads a stage file: a shipped preset name or a path (relative to `base`).
pub fn load_stage_file(spec: &str, base: &Path) -> Result<(StageFile, String), EngineError> {
    let bad = |message: String| EngineError::InvalidConfig {
        path: spec.to_string(),
        message,
    };
    if let Some((_, text)) = STAGE_PRESETS.iter().find(|p| p.0 == spec) {
        return StageFile::from_toml(text)
            .map(|f| (f, format!("preset:{spec}")))
            .map_err(bad);
    }
    let path = if Path::new(spec).is_absolute() {
        Path::new(spec).to_path_buf()
    } else {
        base.join(spec)
    };
    let text = fs_err::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
    StageFile::from_toml(&text)
        .map(|f| (f, path.display().to_string()))
        .map_err(bad)
}

pub(crate) struct LoyaltyStage {
    pub tables: Tables,
    pub manifest: serde_json::Value,
}

pub(crate) struct LoyaltyInputs<'a> {
    pub ids: &'a Column,
    pub p_alive: Option<&'a [Option<f64>]>,
    pub clv: Option<&'a [Option<f64>]>,
    /// `segments` (read) and `segment_summary` (stage rows added).
    pub segments: &'a DataFrame,
    pub summary: &'a mut Vec<SummaryPart>,
}

/// What the loyalty stage needs to know about a partition's customers, mergeable across
/// partitions: the buyers' values of the features percentile thresholds take (the model
/// outputs' come from the fit), their net revenue and their recency.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct LoyaltyStats {
    pub percentiles: BTreeMap<String, Distribution>,
    pub net_revenue: Distribution,
    pub recency: Distribution,
}

/// Features of the models (not of the feature table): their distributions come from the fit.
pub(crate) const MODEL_OUTPUTS: [&str; 2] = ["p_alive", "clv"];

impl LoyaltyStats {
    pub fn of(file: &StageFile, f: &FeatureTable) -> Result<Self, EngineError> {
        let buyer = buyers(f)?;
        // Model outputs and switching costs are ranked against the base by the fit.
        let feature = |name: &str| -> Option<Vec<Option<f64>>> {
            (!MODEL_OUTPUTS.contains(&name)
                && !patronage_features::SWITCHING_OUTPUTS.contains(&name))
            .then(|| f.numeric(name).ok())
            .flatten()
        };
        Ok(LoyaltyStats {
            percentiles: percentile_stats(file, &buyer, &feature),
            net_revenue: buyers_distribution(&f.float("net_revenue")?.to_vec(), &buyer),
            recency: buyers_distribution(&f.numeric("recency_days")?, &buyer),
        })
    }

    /// The statistics of the union of the partitions' customers.
    pub fn merge(parts: &[LoyaltyStats]) -> Self {
        let mut percentiles = BTreeMap::new();
        let names: std::collections::BTreeSet<&String> =
            parts.iter().flat_map(|p| p.percentiles.keys()).collect();
        for name in names {
            let of: Vec<Distribution> = parts
                .iter()
                .filter_map(|p| p.percentiles.get(name).cloned())
                .collect();
            percentiles.insert(name.clone(), Distribution::merge(&of));
        }
        let merged = |pick: fn(&LoyaltyStats) -> &Distribution| {
            Distribution::merge(&parts.iter().map(|p| pick(p).clone()).collect::<Vec<_>>())
        };
        LoyaltyStats {
            percentiles,
            net_revenue: merged(|p| &p.net_revenue),
            recency: merged(|p| &p.recency),
        }
    }
}

/// The stage file's thresholds resolved on the whole customer base: every percentile condition's
/// value, and the medians of the buyers' profit (CLV when the models scored, else net revenue)
/// and recency that split the Reinartz & Kumar quadrants.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct LoyaltyCuts {
    /// (feature, percentile, threshold; `None`: no buyer has the feature).
    pub percentiles: Vec<(String, f64, Option<f64>)>,
    pub profit_median: Option<f64>,
    pub recency_median: Option<f64>,
}

impl LoyaltyCuts {
    /// `model_outputs`: the buyers' p_alive and CLV distributions, when the models scored.
    pub fn fit(
        file: &StageFile,
        stats: &LoyaltyStats,
        model_outputs: Option<(&Distribution, &Distribution)>,
    ) -> Self {
        let distribution = |name: &str| match (name, model_outputs) {
            ("p_alive", Some((p, _))) => Some(p),
            ("clv", Some((_, c))) => Some(c),
            _ => stats.percentiles.get(name),
        };
        let percentiles = file
            .stages
            .iter()
            .flat_map(|s| &s.conditions)
            .filter_map(|c| match (c.value, c.percentile) {
                (None, Some(p)) => Some((
                    c.feature.clone(),
                    p,
                    distribution(&c.feature).and_then(|d| d.quantile(p)),
                )),
                _ => None,
            })
            .collect();
        let profit = model_outputs.map_or(&stats.net_revenue, |(_, clv)| clv);
        LoyaltyCuts {
            percentiles,
            profit_median: profit.upper_median(),
            recency_median: stats.recency.upper_median(),
        }
    }

    fn threshold(&self, feature: &str, p: f64) -> Option<f64> {
        self.percentiles
            .iter()
            .find(|(f, q, _)| f == feature && q.to_bits() == p.to_bits())
            .and_then(|t| t.2)
    }
}

fn buyers(f: &FeatureTable) -> Result<Vec<bool>, EngineError> {
    Ok(f.int("frequency")?
        .iter()
        .map(|v| v.is_some_and(|v| v > 0))
        .collect())
}

pub(crate) fn buyers_distribution(values: &[Option<f64>], buyer: &[bool]) -> Distribution {
    Distribution::of(
        values
            .iter()
            .zip(buyer)
            .filter(|(_, b)| **b)
            .filter_map(|(v, _)| *v),
    )
}

pub(crate) fn run(
    file: &StageFile,
    source: &str,
    f: &FeatureTable,
    cuts: &LoyaltyCuts,
    inputs: LoyaltyInputs,
) -> Result<LoyaltyStage, EngineError> {
    let n = f.len();
    let freq = f.int("frequency")?;
    let buyer: Vec<bool> = freq.iter().map(|v| v.is_some_and(|v| v > 0)).collect();
    let prospect: Vec<bool> = freq.iter().map(|v| v.is_none()).collect();
    let tenure = f.numeric("tenure_days")?;
    let feature = |name: &str| -> Option<Vec<Option<f64>>> {
        match name {
            "p_alive" => inputs.p_alive.map(<[_]>::to_vec),
            "clv" => inputs.clv.map(<[_]>::to_vec),
            _ => f.numeric(name).ok(),
        }
    };
    let (profit_basis, profit) = match inputs.clv {
        Some(c) => ("clv", c.to_vec()),
        None => ("net_revenue", f.float("net_revenue")?.to_vec()),
    };
    let recency = f.numeric("recency_days")?;
    let threshold = |name: &str, p: f64| cuts.threshold(name, p);
    let stages = assign_stages_with(file, n, &buyer, &tenure, &prospect, &feature, &threshold);

    // Cross-checks.
    let purchase_days = f.numeric("purchase_days")?;
    let repeat: Vec<Option<bool>> = (0..n)
        .map(|i| buyer[i].then(|| purchase_days[i].unwrap_or(0.0) >= 2.0))
        .collect();
    let (profit_median, recency_median) = (cuts.profit_median, cuts.recency_median);
    let (duration_basis, long): (&str, Vec<Option<bool>>) = match inputs.p_alive {
        Some(p) => (
            "p_alive >= 0.5",
            p.iter().map(|v| v.map(|v| v >= 0.5)).collect(),
        ),
        None => (
            "recency_days <= median",
            recency
                .iter()
                .map(|r| Some((*r)? <= recency_median?))
                .collect(),
        ),
    };
    let db: Vec<Option<&str>> = (0..n)
        .map(|i| dick_basu(stages.attitude[i], repeat[i]))
        .collect();
    let rk: Vec<Option<&str>> = (0..n)
        .map(|i| {
            let high = buyer[i]
                .then(|| Some(profit[i]? >= profit_median?))
                .flatten();
            reinartz_kumar(high, if buyer[i] { long[i] } else { None })
        })
        .collect();

    let gap: Vec<Option<&str>> = stages
        .next_gap
        .iter()
        .map(|g| g.map(|k| stages.gap_labels[k as usize].as_str()))
        .collect();
    let mut builders: Vec<tables::Builder> = vec![
        Box::new(|| Column::new("loyalty_stage".into(), &stages.stage)),
        Box::new(|| Column::new("stage_score".into(), &stages.score)),
        Box::new(|| Column::new("next_stage_gap".into(), &gap)),
        Box::new(|| Column::new("dick_basu".into(), &db)),
        Box::new(|| Column::new("reinartz_kumar".into(), &rk)),
    ];
    for (name, values) in &stages.evidence {
        builders.push(Box::new(move || Column::new(name.as_str().into(), values)));
    }
    let mut columns = vec![inputs.ids.clone()];
    columns.extend(tables::side_by_side(builders));
    let frame = tables::frame("loyalty_stages", columns)?;

    let (names, segment) = segment_indices(inputs.segments)?;

    // Stage rows in segment_summary: per stage, and stage × RFM segment.
    let revenue: Vec<f64> = f
        .float("net_revenue")?
        .iter()
        .map(|v| v.unwrap_or(0.0))
        .collect();
    let stage_labels: Vec<Option<&str>> = stages.stage.iter().map(|s| Some(*s)).collect();
    let order = [
        patronage_segments::STAGE_PROSPECT,
        patronage_segments::INSUFFICIENT_HISTORY,
        "cognitive",
        "affective",
        "conative",
        "action",
    ];
    // Stage × segment labels, each made once, looked up by (stage, segment) index.
    let (stage_names, stage_of) = label_indices(stages.stage.iter().copied());
    let cross: Vec<String> = stage_names
        .iter()
        .flat_map(|s| names.iter().map(move |n| format!("{s} × {n}")))
        .collect();
    let cross_labels: Vec<Option<&str>> = (0..n)
        .map(|i| Some(cross[stage_of[i] * names.len() + segment[i]].as_str()))
        .collect();
    let summarizer = Summarizer::new(&revenue);
    let (by_stage, by_cross) = rayon::join(
        || summarizer.part("loyalty_stage", &stage_labels, &order),
        || summarizer.part("loyalty_stage_x_rfm_segment", &cross_labels, &[]),
    );
    inputs.summary.push(by_stage);
    inputs.summary.push(by_cross);

    let mut counts = BTreeMap::<&str, usize>::new();
    for s in &stages.stage {
        *counts.entry(s).or_default() += 1;
    }
    let manifest = json!({
        "rules": { "source": source, "name": file.name, "min_history_days": file.min_history_days },
        "customers_per_stage": counts,
        "conditions": stages.conditions,
        "skipped_conditions": stages.conditions.iter().filter(|c| c.skipped.is_some()).map(|c| format!("{}.{}", c.stage, c.id)).collect::<Vec<_>>(),
        "dick_basu": { "attitude": "some satisfaction evidence of the affective stage holds", "repeat": "purchase_days >= 2" },
        "reinartz_kumar": { "profitability": format!("{profit_basis} >= buyers' median"), "duration": duration_basis },
    });
    Ok(LoyaltyStage {
        tables: vec![("loyalty_stages", frame)],
        manifest,
    })
}

/// The RFM segment names of `segments`, each once, and each customer's index into them (no
/// string per customer).
fn segment_indices(segments: &DataFrame) -> Result<(Vec<String>, Vec<usize>), EngineError> {
    let col = segments
        .column("rfm_segment")
        .and_then(|c| c.str().cloned())
        .map_err(|e| EngineError::Internal {
            table: "segments".into(),
            message: e.to_string(),
        })?;
    let (names, segment) = label_indices(col.iter().map(|v| v.unwrap_or("none")));
    Ok((names.into_iter().map(str::to_string).collect(), segment))
}

/// The few distinct labels of `labels`, in first-seen order, and each label's index into them.
fn label_indices<'a>(labels: impl Iterator<Item = &'a str>) -> (Vec<&'a str>, Vec<usize>) {
    let mut names: Vec<&str> = Vec::new();
    let index = labels
        .map(|v| match names.iter().position(|n| *n == v) {
            Some(k) => k,
            None => {
                names.push(v);
                names.len() - 1
            }
        })
        .collect();
    (names, index)
}

/// `segments.control_group`: a stable hold-out of every RFM segment (see [`in_control`]), and
/// the manifest's `control_group` section with the realized share per segment. Runs whether or
/// not loyalty stages do.
pub(crate) fn add_control_group(
    control: &ControlConfig,
    ids: &[String],
    segments: &mut DataFrame,
) -> Result<serde_json::Value, EngineError> {
    let (names, segment) = segment_indices(segments)?;
    let held_out: Vec<bool> = (0..ids.len())
        .map(|i| {
            let share = control
                .shares
                .get(&names[segment[i]])
                .copied()
                .unwrap_or(control.share);
            in_control(&control.salt, &ids[i], share)
        })
        .collect();
    segments
        .with_column(Column::new("control_group".into(), &held_out))
        .map_err(|e| EngineError::Internal {
            table: "segments".into(),
            message: e.to_string(),
        })?;
    let mut per_segment = vec![(0usize, 0usize); names.len()];
    for (i, held) in held_out.iter().enumerate() {
        per_segment[segment[i]].0 += 1;
        per_segment[segment[i]].1 += usize::from(*held);
    }
    let realized: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .zip(per_segment)
        .map(|(k, (n, c))| {
            (
                k.clone(),
                json!({ "customers": n, "control": c, "share": if n > 0 { c as f64 / n as f64 } else { 0.0 } }),
            )
        })
        .collect();
    Ok(json!({
        "algorithm": "FNV-1a 64 of salt + NUL + customer_id, SplitMix64 finalizer, top 53 bits / 2^53 < share",
        "salt": control.salt, "share": control.share, "shares": control.shares,
        "realized": realized,
    }))
}
