//! Builds the output frames from the stage results. Column names and types here are the data
//! contract of DESIGN §6 (Int64, Float64, String, Date, Boolean; keyed by `customer_id`).

use patronage_features::CustomerFeatures;
use patronage_input::RejectedRow;
use patronage_segments::SummaryRow;
use polars::prelude::*;

use crate::error::EngineError;

/// Every table a run writes, in write order.
/// `churn_scores` needs `models.enabled`; `backtest` needs a holdout.
pub const TABLES: &[&str] = &[
    "customer_features",
    "churn_scores",
    "segments",
    "segment_summary",
    "rejected",
    "backtest",
];

fn internal(table: &str) -> impl Fn(PolarsError) -> EngineError + '_ {
    move |e| EngineError::Internal {
        table: table.to_string(),
        message: e.to_string(),
    }
}

fn date_column(name: &str, days: &[Option<i32>]) -> PolarsResult<Column> {
    Column::new(name.into(), days).cast(&DataType::Date)
}

pub(crate) fn frame(table: &str, columns: Vec<Column>) -> Result<DataFrame, EngineError> {
    let height = columns.first().map(Column::len).unwrap_or(0);
    DataFrame::new(height, columns).map_err(internal(table))
}

pub(crate) fn customer_features(f: &CustomerFeatures) -> Result<DataFrame, EngineError> {
    let t = "customer_features";
    frame(
        t,
        vec![
            Column::new("customer_id".into(), &f.customer_id),
            Column::new("frequency".into(), &f.frequency),
            Column::new("purchase_days".into(), &f.purchase_days),
            Column::new("monetary".into(), &f.monetary),
            Column::new("refunds".into(), &f.refunds),
            Column::new("net_revenue".into(), &f.net_revenue),
            Column::new("aov".into(), &f.aov),
            date_column("first_order_date", &f.first_order_date).map_err(internal(t))?,
            date_column("last_order_date", &f.last_order_date).map_err(internal(t))?,
            Column::new("recency_days".into(), &f.recency_days),
            Column::new("tenure_days".into(), &f.tenure_days),
            Column::new("btyd_x".into(), &f.btyd_x),
            Column::new("btyd_t_x".into(), &f.btyd_t_x),
            Column::new("btyd_T".into(), &f.btyd_t),
            Column::new("btyd_m".into(), &f.btyd_m),
            Column::new("ipt_mean_days".into(), &f.ipt_mean_days),
            Column::new("ipt_cv".into(), &f.ipt_cv),
            Column::new("orders_last_90d".into(), &f.orders_last_90d),
            Column::new("orders_prev_90d".into(), &f.orders_prev_90d),
            Column::new("order_trend".into(), &f.order_trend),
        ],
    )
}

/// Refused input rows. Column names avoid SQL reserved words (`row`, `column`, `value`), so BI
/// users need not quote them.
pub(crate) fn rejected(source: &str, rows: &[RejectedRow]) -> Result<DataFrame, EngineError> {
    frame(
        "rejected",
        vec![
            Column::new("source".into(), vec![source; rows.len()]),
            Column::new(
                "source_file".into(),
                rows.iter()
                    .map(|r| r.source_file.as_str())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "source_row".into(),
                rows.iter().map(|r| r.row).collect::<Vec<_>>(),
            ),
            Column::new(
                "source_column".into(),
                rows.iter()
                    .map(|r| (!r.column.is_empty()).then_some(r.column.as_str()))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "raw_value".into(),
                rows.iter().map(|r| r.value.as_deref()).collect::<Vec<_>>(),
            ),
            Column::new(
                "reason".into(),
                rows.iter().map(|r| r.reason.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                "message".into(),
                rows.iter().map(|r| r.message.as_str()).collect::<Vec<_>>(),
            ),
        ],
    )
}

pub(crate) fn segment_summary(rows: &[SummaryRow]) -> Result<DataFrame, EngineError> {
    frame(
        "segment_summary",
        vec![
            Column::new(
                "dimension".into(),
                rows.iter()
                    .map(|r| r.dimension.as_str())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "segment".into(),
                rows.iter().map(|r| r.segment.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                "customers".into(),
                rows.iter().map(|r| r.customers).collect::<Vec<_>>(),
            ),
            Column::new(
                "customer_share".into(),
                rows.iter().map(|r| r.customer_share).collect::<Vec<_>>(),
            ),
            Column::new(
                "revenue".into(),
                rows.iter().map(|r| r.revenue).collect::<Vec<_>>(),
            ),
            Column::new(
                "revenue_share".into(),
                rows.iter().map(|r| r.revenue_share).collect::<Vec<_>>(),
            ),
        ],
    )
}
