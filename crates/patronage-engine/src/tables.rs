//! Builds the output frames from the stage results. Column names and types here are the data
//! contract of docs/design.md §6 (Int64, Float64, String, Date, Boolean; keyed by `customer_id`).

use patronage_features::{FeatureTable, Nullable, Values};
use patronage_input::RejectedRow;
use patronage_segments::SummaryRow;
use polars::prelude::*;
use rayon::prelude::*;

use crate::error::EngineError;

/// Every table a run writes, in write order.
/// `churn_scores` needs `models.enabled`; `backtest` needs a holdout.
pub const TABLES: &[&str] = &[
    "customer_features",
    "churn_scores",
    "segments",
    "segment_summary",
    "cluster_profiles",
    "loyalty_stages",
    "rejected",
    "backtest",
];

fn internal(table: &str) -> impl Fn(PolarsError) -> EngineError + '_ {
    move |e| EngineError::Internal {
        table: table.to_string(),
        message: e.to_string(),
    }
}

pub(crate) fn frame(table: &str, columns: Vec<Column>) -> Result<DataFrame, EngineError> {
    let height = columns.first().map(Column::len).unwrap_or(0);
    DataFrame::new(height, columns).map_err(internal(table))
}

/// A column to be built by [`side_by_side`].
pub(crate) type Builder<'a> = Box<dyn FnOnce() -> Column + Send + 'a>;

/// Builds columns in parallel, in the order given: each is a pass over every customer (a
/// string column copies every label), and they do not depend on one another.
pub(crate) fn side_by_side(builders: Vec<Builder<'_>>) -> Vec<Column> {
    builders.into_par_iter().map(|build| build()).collect()
}

/// A nullable feature column as an array, without copying the values: the vector becomes the
/// array's buffer, the validity its bitmap (none when every row holds a value).
fn numbers<T: PolarsNumericType>(name: &str, v: Nullable<T::Native>) -> ChunkedArray<T> {
    let (values, valid) = v.into_parts();
    ChunkedArray::from_vec_validity(name.into(), values, validity(&valid))
}

/// A validity bitmap; none when every row holds a value.
fn validity(valid: &[bool]) -> Option<polars_arrow::bitmap::Bitmap> {
    valid
        .iter()
        .any(|ok| !ok)
        .then(|| polars_arrow::bitmap::Bitmap::from_iter(valid.iter().copied()))
}

/// One feature column as a polars column (consumed).
fn values_column(name: &str, values: Values) -> PolarsResult<Column> {
    Ok(match values {
        Values::Int(v) => numbers::<Int64Type>(name, v).into_column(),
        Values::Float(v) => numbers::<Float64Type>(name, v).into_column(),
        Values::Date(v) => numbers::<Int32Type>(name, v).into_date().into_column(),
        Values::Text(v) => StringChunked::from_iter_options(name.into(), v.iter()).into_column(),
        Values::Bool(v) => {
            let (values, valid) = v.into_parts();
            let array = polars_arrow::array::BooleanArray::new(
                polars_arrow::datatypes::ArrowDataType::Boolean,
                values.into_iter().collect(),
                validity(&valid),
            );
            BooleanChunked::with_chunk(name.into(), array).into_column()
        }
    })
}

/// A per-customer frame: `customer_id` from the index, then every column of `table` in order.
/// The table is consumed: its columns are converted in parallel and each is freed once
/// converted, so the frame never coexists with a whole second copy of the features.
pub(crate) fn customer_frame(
    name: &str,
    ids: &Column,
    table: FeatureTable,
) -> Result<DataFrame, EngineError> {
    let ids = ids.clone();
    let converted: Vec<Column> = table
        .into_columns()
        .into_par_iter()
        .map(|c| values_column(c.name, c.values))
        .collect::<PolarsResult<_>>()
        .map_err(internal(name))?;
    let mut columns = Vec::with_capacity(converted.len() + 1);
    columns.push(ids);
    columns.extend(converted);
    frame(name, columns)
}

/// Refused input rows of every input (`source` names it). Column names avoid SQL reserved
/// words (`row`, `column`, `value`), so BI users need not quote them.
pub(crate) fn rejected(sources: &[(&str, &[RejectedRow])]) -> Result<DataFrame, EngineError> {
    let rows: Vec<(&str, &RejectedRow)> = sources
        .iter()
        .flat_map(|(source, rows)| rows.iter().map(move |r| (*source, r)))
        .collect();
    frame(
        "rejected",
        vec![
            Column::new(
                "source".into(),
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            ),
            Column::new(
                "source_file".into(),
                rows.iter()
                    .map(|r| r.1.source_file.as_str())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "source_row".into(),
                rows.iter().map(|r| r.1.row).collect::<Vec<_>>(),
            ),
            Column::new(
                "source_column".into(),
                rows.iter()
                    .map(|r| (!r.1.column.is_empty()).then_some(r.1.column.as_str()))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "raw_value".into(),
                rows.iter()
                    .map(|r| r.1.value.as_deref())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "reason".into(),
                rows.iter().map(|r| r.1.reason.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                "message".into(),
                rows.iter()
                    .map(|r| r.1.message.as_str())
                    .collect::<Vec<_>>(),
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
