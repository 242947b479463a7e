//! The data dictionary: what every table holds and what every column means, in which unit, and
//! when it is null. The code's own words: the feature table's column descriptions, the stage
//! file's conditions, and the descriptions below for the tables the stages build. Every Parquet
//! file carries them (each field's `description` metadata, the file's `patronage.table` and
//! `patronage.grain` keys), and a test renders `docs/tables.md` from the files a run writes, so
//! the document cannot drift from the code.

use patronage_segments::Op;

use patronage_output::Described;

use crate::config::RunOptions;

/// A table: what one row is, and what the table is for.
pub struct TableDoc {
    pub name: &'static str,
    pub grain: &'static str,
    pub description: &'static str,
}

/// Every table, in output order.
pub const TABLE_DOCS: [TableDoc; 8] = [
    TableDoc {
        name: "customer_features",
        grain: "customer",
        description: "Everything known about each customer on the as-of day: RFM and the BTYD summary from the orders, rhythm, trend, promotion sensitivity and category breadth from the order lines, profile columns and switching costs from the customers input, engagement from the clickstream. A prospect (known from a profile or clicks, no order) has null order features.",
    },
    TableDoc {
        name: "churn_scores",
        grain: "customer",
        description: "Churn and value scores from the fitted BG/NBD and Gamma-Gamma models (horizon and CLV settings in the manifest's `models` section). Written when the models ran.",
    },
    TableDoc {
        name: "segments",
        grain: "customer",
        description: "Segment memberships: tie-aware RFM scores and the named RFM segment, the 80/20 value tier, the behavioural cluster, and the campaign control group.",
    },
    TableDoc {
        name: "loyalty_stages",
        grain: "customer",
        description: "Oliver's (1999) loyalty stage of each customer, with the evidence that placed them there (one boolean per condition of the stage file) and the Dick & Basu and Reinartz & Kumar classifications.",
    },
    TableDoc {
        name: "segment_summary",
        grain: "segment of a dimension",
        description: "Customers and net revenue per RFM segment, value tier, score value and loyalty stage, with their shares of the base.",
    },
    TableDoc {
        name: "cluster_profiles",
        grain: "behavioural cluster",
        description: "What each behavioural cluster looks like: size, revenue share, model scores and the median of every clustering feature. Written when clusters were found.",
    },
    TableDoc {
        name: "backtest",
        grain: "bucket of calibration repeat purchases",
        description: "With --holdout-days N: the models fitted on the orders up to N days before the as-of day, their predicted repeat purchases in those N days against the actual ones.",
    },
    TableDoc {
        name: "rejected",
        grain: "refused input row",
        description: "Every input row that was not used, with where it was and why: accepted + rejected rows equal the rows read.",
    },
];

const CUSTOMER_ID: &str =
    "The customer's id as the inputs give it (trimmed; an integer id as its decimal digits).";

/// Descriptions of the columns the stages build (the feature table's carry their own).
const COLUMN_DOCS: &[(&str, &str, &str)] = &[
    ("churn_scores", "p_alive", "Probability that the customer is still active (BG/NBD), in [0, 1]; null for customers without a purchase."),
    ("churn_scores", "p_purchase", "Probability of at least one purchase in the next horizon_days (90 by default), in [0, 1]; null without a purchase."),
    ("churn_scores", "expected_purchases", "Expected purchases in the next horizon_days (count, fractional); null without a purchase."),
    ("churn_scores", "expected_spend", "Expected spend per purchase (Gamma-Gamma, currency); null without a purchase."),
    ("churn_scores", "clv", "Customer lifetime value over the next 12 months at the configured margin, discounted at 10% a year by default (currency); null without a purchase."),
    ("churn_scores", "churn_risk", "low, medium, high or very_high, from p_purchase and the cut points in the manifest; null without a purchase."),
    ("segments", "r_score", "Recency score 1-5 (5 = most recent), tie-aware quintile of recency_days; null without a purchase."),
    ("segments", "f_score", "Frequency score 1-5 (5 = most orders), tie-aware quintile of frequency; null without a purchase."),
    ("segments", "m_score", "Monetary score 1-5 (5 = highest spend), tie-aware quintile of monetary; null without a purchase."),
    ("segments", "rfm_cell", "The three scores as text, e.g. 545; null without a purchase."),
    ("segments", "rfm_segment", "The named RFM segment the rule table gives the cell (e.g. champions, at_risk); prospect for a customer without an order, no_purchase for one whose orders were all cancelled, returned or refunded."),
    ("segments", "rfm_rule_id", "The rule of the rule table that fired; null for prospects and no_purchase."),
    ("segments", "value_tier", "top, middle, low or zero: among the customers with value above 0, ranked by it, the top 20% ([segments.value_tiers] top_share), the next 30% (middle_share) and the rest; zero without value (the basis, CLV or net revenue, is in the manifest)."),
    ("segments", "tier_value", "The value the tiers rank (CLV or net revenue, currency; the basis is in the manifest)."),
    ("segments", "cluster_id", "Behavioural cluster, stable from one run to the next; null when the customer was not clustered or clusters are off."),
    ("segments", "cluster_name", "The cluster's descriptive name; null when not clustered."),
    ("segments", "cluster_probability", "Membership probability of the cluster (Gaussian mixture only, in [0, 1]); null with k-means."),
    ("segments", "cluster_imputed", "Clustering features imputed for this customer (count); null when not clustered."),
    ("segments", "control_group", "True for the stable hold-out of every segment (a hash of the id and the configured salt): leave these customers out of campaigns to measure them."),
    ("loyalty_stages", "loyalty_stage", "prospect, insufficient_history, cognitive, affective, conative or action (Oliver 1999): the highest stage whose conditions the customer meets."),
    ("loyalty_stages", "stage_score", "Share of the stage's evidence conditions met, in [0, 1]; null for prospects and insufficient_history."),
    ("loyalty_stages", "next_stage_gap", "The next stage's conditions the customer does not meet yet; null at the last stage (action), for prospects and for insufficient_history."),
    ("loyalty_stages", "dick_basu", "Dick & Basu (1994): true, latent, spurious or none, from attitude (affective evidence) and repeat patronage (purchase_days >= 2)."),
    ("loyalty_stages", "reinartz_kumar", "Reinartz & Kumar (2002): true_friend, butterfly, barnacle or stranger, from profitability (above the buyers' median) and expected duration; null without a purchase."),
    ("segment_summary", "dimension", "What the segments are: rfm_segment, value_tier, r_score, f_score, m_score, loyalty_stage, or loyalty_stage_x_rfm_segment (segment = stage/segment)."),
    ("segment_summary", "segment", "The segment's value within the dimension."),
    ("segment_summary", "customers", "Customers in the segment (count)."),
    ("segment_summary", "customer_share", "Share of all customers of the run, in [0, 1]."),
    ("segment_summary", "revenue", "Net revenue of the segment's customers (currency)."),
    ("segment_summary", "revenue_share", "Share of all net revenue, in [0, 1]; null when the base's net revenue is 0."),
    ("cluster_profiles", "cluster_id", "The cluster, as segments.cluster_id."),
    ("cluster_profiles", "cluster_name", "The cluster's descriptive name, as segments.cluster_name."),
    ("cluster_profiles", "customers", "Customers placed in the cluster (count)."),
    ("cluster_profiles", "share", "Share of the clustered customers, in [0, 1]."),
    ("cluster_profiles", "revenue_share", "Share of all net revenue, in [0, 1]."),
    ("cluster_profiles", "mean_p_alive", "Mean p_alive of the cluster's buyers; null without models."),
    ("cluster_profiles", "mean_clv", "Mean CLV of the cluster's buyers (currency); null without models."),
    ("cluster_profiles", "dominant_rfm_segment", "The most common rfm_segment in the cluster."),
    ("backtest", "customer_model", "The candidate customer-base model the row's predictions come from: `bgnbd`, `mbgnbd` or `pareto_nbd` (every candidate is backtested)."),
    ("backtest", "seasonal", "Whether the candidate's predictions use the month-of-year seasonal index (`models.seasonality`), estimated on the calibration period alone."),
    ("backtest", "chosen", "Whether this is the model scored in `churn_scores` (`models.customer_model`, or the one `auto` chose)."),
    ("backtest", "calibration_repeat_purchases", "Repeat purchases in the calibration period: 0, 1, ... up to an open last bucket (e.g. 7+), and `all`."),
    ("backtest", "customers", "Calibration buyers in the bucket (count)."),
    ("backtest", "predicted_purchases", "Repeat purchases the models fitted on the calibration period predict for the bucket's customers in the holdout period (count, summed over them)."),
    ("backtest", "actual_purchases", "Repeat purchases the bucket's customers made in the holdout period (count, summed over them)."),
    ("rejected", "source", "Which input: orders, customers or clicks."),
    ("rejected", "source_file", "The file the row was read from."),
    ("rejected", "source_row", "The row's 1-based record number after the header (CSV) or row number (Parquet)."),
    ("rejected", "source_column", "The file's column that failed (empty when the whole row did)."),
    ("rejected", "raw_value", "The offending cell as read; null when empty."),
    ("rejected", "reason", "Why, as a code: missing_value, invalid_number, invalid_timestamp, conflicting_duplicate, ..."),
    ("rejected", "message", "Why, in words, with what to do about it."),
];

/// One run's dictionary: the feature table's descriptions and the stage file's conditions on
/// top of the fixed ones.
#[derive(Debug, Clone, Default)]
pub(crate) struct Dictionary {
    /// `customer_features` columns: name → description.
    features: Vec<(String, String)>,
    /// `loyalty_stages` evidence columns: `<stage>_<condition>` → description.
    conditions: Vec<(String, String)>,
}

impl Dictionary {
    pub fn new(opts: &RunOptions, features: Vec<(String, String)>) -> Self {
        let conditions = opts
            .stages
            .iter()
            .flat_map(|(file, _)| &file.stages)
            .flat_map(|stage| {
                stage.conditions.iter().map(move |c| {
                    let threshold = match (c.value, c.percentile) {
                        (Some(v), _) => format!("{v}"),
                        (None, Some(p)) => format!("the {:.0}th percentile of the customers that have it", p * 100.0),
                        (None, None) => "its threshold".into(),
                    };
                    (
                        format!("{}_{}", stage.name, c.id),
                        format!(
                            "{} stage evidence `{}`: {} {} {threshold}; null where the customer has no {}.",
                            stage.name,
                            c.id,
                            c.feature,
                            match c.op {
                                Op::Ge => ">=",
                                Op::Gt => ">",
                                Op::Le => "<=",
                                Op::Lt => "<",
                            },
                            c.feature
                        ),
                    )
                })
            })
            .collect();
        Dictionary {
            features,
            conditions,
        }
    }

    /// What `column` of `table` means.
    pub fn describe(&self, table: &str, column: &str) -> Option<String> {
        let find = |list: &[(String, String)]| {
            list.iter()
                .find(|(name, _)| name == column)
                .map(|(_, d)| d.clone())
        };
        if column == "customer_id" {
            return Some(CUSTOMER_ID.into());
        }
        if let Some((_, _, d)) = COLUMN_DOCS
            .iter()
            .find(|(t, c, _)| *t == table && *c == column)
        {
            return Some(d.to_string());
        }
        match table {
            "customer_features" => find(&self.features),
            "loyalty_stages" => find(&self.conditions),
            "cluster_profiles" => column.strip_prefix("median_").map(|f| {
                format!("Median of {f} over the cluster's members in the fit sample (the feature's own unit); null when none has it.")
            }),
            _ => None,
        }
    }

    /// What `table`'s Parquet file carries: its columns' descriptions and, as file-level keys,
    /// the table's description and grain.
    pub fn described<'a>(&'a self, table: &'a str) -> Described<'a> {
        let file = TABLE_DOCS
            .iter()
            .find(|t| t.name == table)
            .map(|t| {
                vec![
                    ("patronage.table".to_string(), t.description.to_string()),
                    ("patronage.grain".to_string(), t.grain.to_string()),
                ]
            })
            .unwrap_or_default();
        Described {
            columns: Box::new(move |c: &str| self.describe(table, c)),
            file,
        }
    }
}
