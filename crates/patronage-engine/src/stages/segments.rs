//! Segments: tie-aware RFM scores and the named RFM segment of every customer (rule table),
//! value tiers by the 80/20 rule, and the `segment_summary` per segment, tier and score. Reads
//! its inputs from the feature table by name.

use patronage_features::FeatureTable;
use patronage_segments::{
    occupancy, Direction, Distribution, ScoreCuts, Summarizer, SummaryPart, TierCuts, TierParams,
    ValueTier,
};
use polars::prelude::*;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

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
    /// `segment_summary`, one part per dimension (mergeable across partitions): the loyalty
    /// stage adds its dimensions.
    pub summary: Vec<SummaryPart>,
    pub manifest: serde_json::Value,
}

/// The per-customer measures the segments are cut on, by name from the feature table.
pub(crate) struct SegmentInputs {
    /// Recency in days (every customer with one).
    recency: Vec<Option<f64>>,
    /// Frequency and monetary value of buyers (null for everyone else).
    frequency: Vec<Option<f64>>,
    monetary: Vec<Option<f64>>,
    /// The value tiers' basis: CLV when asked for and the models scored, else net revenue (0 for
    /// a prospect).
    value: Vec<Option<f64>>,
    value_by: &'static str,
}

impl SegmentInputs {
    pub fn of(
        f: &FeatureTable,
        value_by: ValueBasis,
        clv: Option<&[Option<f64>]>,
    ) -> Result<Self, EngineError> {
        let freq = f.int("frequency")?;
        let monetary = f.float("monetary")?;
        let buyer = |i: usize| freq.get(i).is_some_and(|v| v > 0);
        let n = f.len();
        let (value, value_by) = match (value_by, clv) {
            (ValueBasis::Clv, Some(clv)) => (clv.to_vec(), "clv"),
            _ => (
                f.float("net_revenue")?
                    .iter()
                    .map(|v| Some(v.unwrap_or(0.0)))
                    .collect(),
                "net_revenue",
            ),
        };
        Ok(SegmentInputs {
            recency: f.numeric("recency_days")?,
            frequency: (0..n)
                .map(|i| buyer(i).then(|| freq.get(i).unwrap_or(0) as f64))
                .collect(),
            monetary: (0..n)
                .map(|i| if buyer(i) { monetary.get(i) } else { None })
                .collect(),
            value,
            value_by,
        })
    }
}

/// What the segments need to know about a partition's customers, mergeable across partitions:
/// the distributions of recency, of the buyers' frequency and monetary value, and of net revenue
/// (0 for a prospect; the value tiers' basis unless they are cut on CLV, whose distribution
/// comes from the fit).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct SegmentStats {
    pub recency: Distribution,
    pub frequency: Distribution,
    pub monetary: Distribution,
    pub net_revenue: Distribution,
}

impl SegmentStats {
    pub fn of(f: &FeatureTable) -> Result<Self, EngineError> {
        let inputs = SegmentInputs::of(f, ValueBasis::NetRevenue, None)?;
        let ((recency, frequency), (monetary, net_revenue)) = rayon::join(
            || {
                rayon::join(
                    || Distribution::of_present(&inputs.recency),
                    || Distribution::of_present(&inputs.frequency),
                )
            },
            || {
                rayon::join(
                    || Distribution::of_present(&inputs.monetary),
                    || Distribution::of_present(&inputs.value),
                )
            },
        );
        Ok(SegmentStats {
            recency,
            frequency,
            monetary,
            net_revenue,
        })
    }

    /// The statistics of the union of the partitions' customers.
    pub fn merge(parts: &[SegmentStats]) -> Self {
        let merged = |pick: fn(&SegmentStats) -> &Distribution| {
            Distribution::merge(&parts.iter().map(|p| pick(p).clone()).collect::<Vec<_>>())
        };
        SegmentStats {
            recency: merged(|p| &p.recency),
            frequency: merged(|p| &p.frequency),
            monetary: merged(|p| &p.monetary),
            net_revenue: merged(|p| &p.net_revenue),
        }
    }
}

/// The cut points every partition scores its customers with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct SegmentCuts {
    pub recency: ScoreCuts,
    pub frequency: ScoreCuts,
    pub monetary: ScoreCuts,
    pub tiers: TierCuts,
}

impl SegmentCuts {
    /// `clv`: the distribution of the buyers' CLV when the tiers are cut on it (and the models
    /// scored), else they are cut on net revenue.
    pub fn fit(stats: &SegmentStats, tiers: TierParams, clv: Option<&Distribution>) -> Self {
        SegmentCuts {
            recency: stats.recency.score_cuts(Direction::LowerIsBetter),
            frequency: stats.frequency.score_cuts(Direction::HigherIsBetter),
            monetary: stats.monetary.score_cuts(Direction::HigherIsBetter),
            tiers: clv.unwrap_or(&stats.net_revenue).tier_cuts(tiers),
        }
    }

    /// R, F and M scores, value tiers, and the tier values.
    #[allow(clippy::type_complexity)]
    fn apply(
        &self,
        inputs: SegmentInputs,
    ) -> (
        Vec<Option<i64>>,
        Vec<Option<i64>>,
        Vec<Option<i64>>,
        Vec<ValueTier>,
        Vec<Option<f64>>,
    ) {
        (
            self.recency.scores(&inputs.recency),
            self.frequency.scores(&inputs.frequency),
            self.monetary.scores(&inputs.monetary),
            self.tiers.tiers(&inputs.value),
            inputs.value,
        )
    }
}

pub(crate) fn run(
    opts: &RunOptions,
    ids: &Column,
    f: &FeatureTable,
    clv: Option<&[Option<f64>]>,
    cuts: &SegmentCuts,
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
    let inputs = SegmentInputs::of(f, opts.value_by, clv)?;
    let value_by = inputs.value_by;
    let (r, fs, m, tiers, value) = cuts.apply(inputs);
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
    let mut columns = vec![ids.clone()];
    columns.extend(tables::side_by_side(vec![
        Box::new(|| Column::new("r_score".into(), &r)),
        Box::new(|| Column::new("f_score".into(), &fs)),
        Box::new(|| Column::new("m_score".into(), &m)),
        Box::new(|| Column::new("rfm_cell".into(), &cell)),
        Box::new(|| Column::new("rfm_segment".into(), &labels)),
        Box::new(|| {
            Column::new(
                "rfm_rule_id".into(),
                rules
                    .iter()
                    .map(|r| r.map(|r| r.id.as_str()))
                    .collect::<Vec<_>>(),
            )
        }),
        Box::new(|| {
            Column::new(
                "value_tier".into(),
                tiers.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            )
        }),
        Box::new(|| Column::new("tier_value".into(), &value)),
    ]));
    let frame = tables::frame("segments", columns)?;

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
    let score_order = ["1", "2", "3", "4", "5"];
    let score_labels = |scores: &[Option<i64>]| -> Vec<Option<&str>> {
        scores
            .iter()
            .map(|s| s.map(|s| score_order[(s - 1) as usize]))
            .collect()
    };
    // Per dimension: its name, each customer's label, the labels listed first.
    type Dimension<'a> = (&'a str, Vec<Option<&'a str>>, &'a [&'a str]);
    let dimensions: Vec<Dimension> = vec![
        ("rfm_segment", labels, &segment_order),
        ("value_tier", tier_labels, &tier_order),
        ("r_score", score_labels(&r), &score_order),
        ("f_score", score_labels(&fs), &score_order),
        ("m_score", score_labels(&m), &score_order),
    ];
    let summarizer = Summarizer::new(&net_revenue);
    let summary: Vec<SummaryPart> = dimensions
        .par_iter()
        .map(|(dim, labels, order)| summarizer.part(dim, labels, order))
        .collect();
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
