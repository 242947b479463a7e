//! Reads order exports (CSV, gzip-compressed CSV or Parquet; a file, a directory or a glob) and validates them into the
//! canonical order contract of docs/design.md §2, returning [`patronage_features::Orders`] plus every row it
//! refused, with the file, row, column, raw value and reason.
//!
//! This crate is the I/O edge for inputs: it maps an export's own column names onto canonical ones
//! ([`OrdersSchema`]), parses timestamps and amounts, sums order lines per order, collapses identical
//! duplicate rows and rejects conflicting ones. Invariant, per file: `rows_read = rows_accepted +
//! rows_rejected`. What it does not do: decide the as-of date or compute features.

mod clicks;
mod columns;
mod customers;
mod error;
mod orders;
mod parse;
mod source;
mod text;
mod text_input;

pub use clicks::{
    ingest_clicks, ingest_clicks_routed, ClickColumns, ClickCounts, ClicksSchema, ClicksSink,
    EventMapping, IngestedClicks,
};
pub use columns::{default_null_values, OrderColumns, OrdersSchema};
pub use customers::{ingest_customers, CustomerColumns, CustomersSchema, IngestedCustomers};
pub use error::InputError;
pub use orders::{
    check_schema, ingest_orders, ingest_orders_routed, FileStats, Ingested, OrdersSink, Piece,
    RejectReason, RejectedRow,
};
pub use parse::{format_day, parse_date, parse_timestamp_micros, MAX_AMOUNT, MICROS_PER_DAY};
pub use source::{expand_inputs, Frame, InputFormat, Source};
