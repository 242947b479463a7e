//! Validation of order rows into canonical orders (docs/design.md §2).
//!
//! Row rules, first failing rule wins (one rejected record per refused input row):
//! 1. a CSV record with more fields than the header → `too_many_fields`;
//! 2. a text cell with bytes that are not UTF-8 → `invalid_utf8`;
//! 3. empty `customer_id`, `order_id`, `order_ts` or `amount` (blank, or a configured null marker
//!    such as `NULL` or `\N`) → `missing_value`;
//! 4. `order_ts` that does not parse → `invalid_timestamp`; `amount` that is not a finite
//!    decimal within ±1e15 → `invalid_number`; a `status` other than completed/cancelled/returned
//!    (after the configured mapping) → `unknown_status`.
//!
//! Identifiers: an integral number written as a float (`42.0`, what pandas writes for an id
//! column with a null) is the integer id `42`, in CSV and Parquet alike. Integer id columns are
//! read as integers and text ids that an integer column would print the same way (`42`, not
//! `042`) are keyed as integers too: one key space, compared and hashed without text.
//!
//! Order rules, over the rows that passed: rows sharing an `order_id` are the lines of one order.
//! Lines that disagree on `customer_id` or `order_ts` make a conflicting duplicate: every line of
//! that order is rejected (`conflicting_duplicate`). Lines identical in every mapped column are
//! collapsed into one (counted, not rejected). The order total is the sum of its completed lines:
//! a total ≥ 0 is a purchase; a negative total is a refund; cancelled lines count for nothing.
//! `returned` lines net to zero: by default they are neither purchase nor refund; with
//! `returned_counts_as_purchase` their amount counts as purchased and as refunded.

use std::collections::{BTreeMap, HashMap, HashSet};

use foldhash::fast::FixedState;
use std::path::PathBuf;

use patronage_features::{Day, Orders};
use polars::prelude::*;
use rayon::prelude::*;
use serde::Serialize;

use crate::columns::{ambiguous, looks_like, quoted, resolve, Canon, OrdersSchema, Unresolved};
use crate::error::InputError;
use crate::parse::{
    check_amount, format_micros, micros_to_day, numeric_timestamp, parse_amount,
    parse_timestamp_micros, MICROS_PER_DAY,
};
use crate::source::{ArrowDataType, InputFormat, Source};
use crate::text::{
    clean, has_replacement_char, ChunkCol, Dict, FloatCol, IdCol, IntCol, Key, TextCol, ViewMemo,
};
use crate::text_input::text_readable;

/// Why a row was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    TooManyFields,
    InvalidUtf8,
    MissingValue,
    InvalidTimestamp,
    InvalidNumber,
    UnknownStatus,
    InvalidBoolean,
    UnknownValue,
    ConflictingDuplicate,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::TooManyFields => "too_many_fields",
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::MissingValue => "missing_value",
            RejectReason::InvalidTimestamp => "invalid_timestamp",
            RejectReason::InvalidNumber => "invalid_number",
            RejectReason::UnknownStatus => "unknown_status",
            RejectReason::InvalidBoolean => "invalid_boolean",
            RejectReason::UnknownValue => "unknown_value",
            RejectReason::ConflictingDuplicate => "conflicting_duplicate",
        }
    }
}

/// One refused input row.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedRow {
    pub source_file: String,
    /// 1-based record number in the file, not counting the CSV header.
    pub row: i64,
    pub column: String,
    pub value: Option<String>,
    pub reason: RejectReason,
    pub message: String,
}

/// Row accounting for one input file: `rows_read = rows_accepted + rows_rejected`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FileStats {
    pub path: String,
    pub format: String,
    /// `gzip` when the file was decompressed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// The CSV separator used (configured, by extension, or detected).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub separator: Option<String>,
    /// Data rows read (blank lines excluded).
    pub rows_read: i64,
    pub rows_accepted: i64,
    pub rows_rejected: i64,
    /// Blank lines in a CSV file: not rows, neither accepted nor rejected.
    pub blank_lines_skipped: i64,
    /// Accepted rows that were identical copies of another line of the same order.
    pub duplicates_collapsed: i64,
    /// Accepted rows with status `cancelled`.
    pub cancelled_lines: i64,
    /// Accepted rows with status `returned`.
    pub returned_lines: i64,
    pub rejected_by_reason: BTreeMap<String, i64>,
    /// Canonical column → the file's column it was read from.
    pub columns: BTreeMap<String, String>,
    /// The file's columns that no canonical column maps to (not read).
    pub unused_columns: Vec<String>,
}

/// Everything ingestion produced.
#[derive(Debug, Clone, Default)]
pub struct Ingested {
    pub orders: Orders,
    pub rejected: Vec<RejectedRow>,
    pub files: Vec<FileStats>,
    /// Things a user should know that did not stop the run (unused columns that look like a
    /// canonical one, unknown status values and the mapping that would accept them...).
    pub warnings: Vec<String>,
    /// Passes over the input the memory budget asked for (1: one pass).
    pub passes: usize,
    /// Whether the orders came in `order_id` order and were grouped as they were read (one
    /// pass; the lines never outgrew a chunk).
    pub streamed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Status {
    Completed,
    Cancelled,
    Returned,
}

enum TsView<'a> {
    Text(TextCol<'a>),
    /// Typed datetimes, in microseconds.
    Micros(IntCol<'a>),
    /// Typed dates, in days.
    Days(ChunkCol<'a, Int32Type>),
    /// Numbers: compact dates or epoch values.
    Number(FloatCol<'a>),
}

enum NumView<'a> {
    Text(TextCol<'a>),
    Num(FloatCol<'a>),
}

/// A cell of an optional column, as compared to tell identical duplicate lines apart.
#[derive(PartialEq, Eq, Hash)]
enum Extra<'a> {
    Text(&'a str),
    Num(u64),
}

impl<'a> NumView<'a> {
    fn of(col: &'a Column) -> Self {
        match col.f64() {
            Ok(ca) => NumView::Num(ChunkCol::of(ca)),
            Err(_) => NumView::Text(TextCol::new(col)),
        }
    }

    fn raw(&self, row: usize) -> Option<String> {
        match self {
            NumView::Text(v) => v.get(row).map(str::to_string),
            NumView::Num(v) => v.get(row).map(|x| x.to_string()),
        }
    }

    fn extra(&self, row: usize) -> Option<Extra<'a>> {
        match self {
            NumView::Text(v) => v.get(row).map(Extra::Text),
            NumView::Num(v) => v.get(row).map(|x| Extra::Num(x.to_bits())),
        }
    }
}

/// Borrowed, typed views of one file's mapped columns.
struct FileView<'a> {
    path: &'a str,
    /// The file's record number of the chunk's first row.
    offset: usize,
    customer: IdCol<'a>,
    order_id: IdCol<'a>,
    ts: TsView<'a>,
    amount: NumView<'a>,
    status: Option<TextCol<'a>>,
    discount: Option<NumView<'a>>,
    category: Option<TextCol<'a>>,
    /// Optional columns kept raw, used to tell identical duplicate lines from distinct lines.
    extras: Vec<NumView<'a>>,
    names: Vec<(Canon, String)>,
    null_values: &'a [String],
    /// Sorted 0-based rows with more fields than the header.
    ragged: &'a [usize],
    /// Sorted 0-based rows that are blank lines (skipped: neither accepted nor rejected).
    blank: &'a [usize],
}

/// Owned, cast columns of one chunk of a file (the views borrow from these).
struct Prepared {
    height: usize,
    columns: Vec<(Canon, String, Column)>,
    ragged: Vec<usize>,
    blank: Vec<usize>,
}

/// One orders file, opened, its columns resolved and type-checked; read chunk by chunk.
struct OrdersFile {
    path: PathBuf,
    path_text: String,
    source: Source,
    mapped: Vec<(Canon, usize)>,
    unused: Vec<String>,
}

/// A validated row, borrowed from its chunk.
struct Parsed<'a> {
    customer: Key<'a>,
    /// The customer's cell as read (text ids only), and whether it repeats the previous row's.
    customer_raw: Option<&'a str>,
    customer_repeat: bool,
    order_id: Key<'a>,
    micros: i64,
    amount: f64,
    status: Status,
    /// The validated discount (0 without one).
    discount: f64,
    /// A hash of the row's optional cells as read, to tell identical duplicate lines apart.
    extras: u64,
}

/// Text of the rows of one block of a chunk, owned: the lines of that block point into it.
#[derive(Default)]
struct Arena {
    bytes: String,
    ends: Vec<u32>,
}

impl Arena {
    fn push(&mut self, s: &str) -> u32 {
        self.bytes.push_str(s);
        self.ends.push(self.bytes.len() as u32);
        self.ends.len() as u32 - 1
    }

    fn get(&self, at: u32) -> &str {
        let end = self.ends[at as usize] as usize;
        let start = if at == 0 {
            0
        } else {
            self.ends[at as usize - 1] as usize
        };
        &self.bytes[start..end]
    }
}

/// No category.
const NO_TEXT: u32 = u32::MAX;
/// `Line::text` bits: the customer id, the order id is text in the line's arena.
const CUSTOMER_TEXT: u8 = 1;
const ORDER_TEXT: u8 = 2;

/// A row that passed validation, owned (its chunk is gone): the unit grouping works on. 64
/// bytes: ids are 8 bytes each (an integer's bits, or the text's index in the arena, as `text`
/// says), so ten million lines take 640 MB.
#[derive(Clone, Copy)]
struct Line {
    micros: i64,
    amount: f64,
    discount: f64,
    extras: u64,
    customer: u64,
    order_id: u64,
    /// 0-based record of the file.
    row: u32,
    /// The arena holding this line's text.
    arena: u32,
    category: u32,
    file: u16,
    status: Status,
    text: u8,
}

impl Line {
    /// A slot not yet written.
    const EMPTY: Line = Line {
        micros: 0,
        amount: 0.0,
        discount: 0.0,
        extras: 0,
        customer: 0,
        order_id: 0,
        row: 0,
        arena: 0,
        category: NO_TEXT,
        file: 0,
        status: Status::Completed,
        text: 0,
    };

    fn key<'a>(bits: u64, text: bool, arena: &'a Arena) -> Key<'a> {
        if text {
            Key::Text(arena.get(bits as u32))
        } else {
            Key::Int(bits as i64)
        }
    }

    fn customer<'a>(&self, arenas: &'a [Arena]) -> Key<'a> {
        let text = self.text & CUSTOMER_TEXT != 0;
        Line::key(self.customer, text, &arenas[self.arena as usize])
    }

    fn order_id<'a>(&self, arenas: &'a [Arena]) -> Key<'a> {
        let text = self.text & ORDER_TEXT != 0;
        Line::key(self.order_id, text, &arenas[self.arena as usize])
    }

    fn category<'a>(&self, arenas: &'a [Arena]) -> Option<&'a str> {
        (self.category != NO_TEXT).then(|| arenas[self.arena as usize].get(self.category))
    }
}

/// Rows read per chunk of a file: the memory of ingest is one chunk and the validated lines.
const CHUNK_ROWS: usize = 1 << 20;
/// Rows parsed per task within a chunk (each with its own arena).
const BLOCK_ROWS: usize = 1 << 15;

/// The Arrow types a mapped Parquet column may have, checked before the column is decoded.
/// `Err` carries what was expected and a hint.
fn check_arrow_type(canon: Canon, t: &ArrowDataType) -> Result<(), (&'static str, &'static str)> {
    use ArrowDataType as A;
    let number = matches!(
        t,
        A::Int8
            | A::Int16
            | A::Int32
            | A::Int64
            | A::UInt8
            | A::UInt16
            | A::UInt32
            | A::UInt64
            | A::Float32
            | A::Float64
            | A::Decimal(..)
            | A::Decimal32(..)
            | A::Decimal64(..)
            | A::Decimal256(..)
    );
    let text = matches!(t, A::Utf8 | A::LargeUtf8 | A::Utf8View | A::Null);
    let temporal = matches!(t, A::Date32 | A::Date64 | A::Timestamp(..));
    let ok = match canon {
        Canon::CustomerId | Canon::OrderId => number || text,
        Canon::OrderTs => number || text || temporal,
        Canon::Amount | Canon::DiscountAmount | Canon::Quantity => number || text,
        _ => number || text || temporal || matches!(t, A::Boolean),
    };
    if ok {
        return Ok(());
    }
    let expected = match canon {
        Canon::OrderTs => "a timestamp (date, datetime, epoch number or text)",
        Canon::Amount | Canon::DiscountAmount | Canon::Quantity => {
            "a number (integer, float, decimal or text)"
        }
        _ => "an identifier or label (text or integer)",
    };
    Err((expected, text_readable(t).err().unwrap_or("")))
}

impl OrdersFile {
    /// The file's name of a canonical column (the canonical name when unmapped).
    fn source_name(&self, canon: Canon) -> String {
        self.mapped
            .iter()
            .find(|m| m.0 == canon)
            .map(|m| self.source.columns[m.1].clone())
            .unwrap_or_else(|| canon.name().to_string())
    }

    fn open(path: PathBuf, schema: &OrdersSchema) -> Result<OrdersFile, InputError> {
        let separator = schema.separator_byte().map_err(InputError::InvalidConfig)?;
        let source = Source::open(&path, separator)?;
        let found = &source.columns;
        let mut mapped: Vec<(Canon, usize)> = Vec::new();
        for canon in Canon::ALL {
            match resolve(canon, &schema.columns, found) {
                Ok(Some(i)) => mapped.push((canon, i)),
                Ok(None) => {}
                Err(Unresolved::Missing(mut hint)) => {
                    if found.len() == 1 && source.format == InputFormat::Csv {
                        hint.push_str(&format!(
                        "; the header has a single column, so the file may use another separator than {:?}: set orders.separator",
                        char::from(source.separator.unwrap_or(b','))
                    ));
                    }
                    return Err(InputError::ColumnNotFound {
                        path,
                        column: canon.name().to_string(),
                        hint,
                        found: quoted(found),
                    });
                }
                Err(Unresolved::Ambiguous(names)) => {
                    return Err(ambiguous(&path, "orders", canon.name(), &names))
                }
            }
        }
        for &(canon, i) in &mapped {
            if let Some(t) = source.arrow_type(i) {
                check_arrow_type(canon, t).map_err(|(expected, hint)| {
                    InputError::UnsupportedType {
                        path: path.to_path_buf(),
                        column: found[i].clone(),
                        dtype: format!("{t:?}"),
                        expected,
                        hint,
                    }
                })?;
            }
        }
        let unused = (0..found.len())
            .filter(|i| !mapped.iter().any(|m| m.1 == *i))
            .map(|i| found[i].clone())
            .collect();
        Ok(OrdersFile {
            path_text: path.display().to_string(),
            path,
            source,
            mapped,
            unused,
        })
    }

    fn has(&self, canon: Canon) -> bool {
        self.mapped.iter().any(|m| m.0 == canon)
    }

    /// The mapped columns of the rows `range` (see [`Source::chunks`]), cast for the views.
    fn read(&self, range: (usize, usize)) -> Result<Prepared, InputError> {
        let path = &self.path;
        let found = &self.source.columns;
        let projection: Vec<usize> = self.mapped.iter().map(|m| m.1).collect();
        let frame = self.source.read_range(&projection, range)?;
        let mut columns = Vec::new();
        for (&(canon, i), col) in self.mapped.iter().zip(frame.columns) {
            let name = found[i].clone();
            let mismatch = |expected: &'static str| InputError::SchemaMismatch {
                path: path.to_path_buf(),
                column: name.clone(),
                dtype: col.dtype().to_string(),
                expected,
            };
            let cast = |dtype: DataType, expected: &'static str| {
                col.cast(&dtype).map_err(|_| mismatch(expected))
            };
            let dtype = col.dtype().clone();
            let prepared = match (canon, &dtype) {
                (_, DataType::String) => col.clone(),
                // Integer ids stay integers (keys compare as numbers, never formatted as text); an
                // unsigned id past i64 is read as text.
                (Canon::CustomerId | Canon::OrderId, d) if d.is_integer() => col
                    .strict_cast(&DataType::Int64)
                    .or_else(|_| cast(DataType::String, "text"))?,
                (Canon::OrderTs, DataType::Datetime(_, _)) => cast(
                    DataType::Datetime(TimeUnit::Microseconds, None),
                    "a timestamp",
                )?,
                (Canon::OrderTs, DataType::Date) => cast(DataType::Date, "a timestamp")?,
                (Canon::OrderTs | Canon::Amount | Canon::DiscountAmount, d)
                    if d.is_primitive_numeric() || d.is_decimal() =>
                {
                    cast(DataType::Float64, "a number")?
                }
                _ => cast(DataType::String, "text")?,
            };
            columns.push((canon, name, prepared));
        }
        Ok(Prepared {
            height: frame.height,
            columns,
            ragged: frame.ragged_rows,
            blank: frame.blank_rows,
        })
    }
}

/// Views of a chunk whose first row is the file's record `offset`.
fn view<'a>(
    p: &'a Prepared,
    path: &'a str,
    offset: usize,
    null_values: &'a [String],
) -> FileView<'a> {
    let get = |c: Canon| p.columns.iter().find(|x| x.0 == c).map(|x| &x.2);
    let ts = match get(Canon::OrderTs) {
        Some(col) => {
            if let Ok(ca) = col.datetime() {
                TsView::Micros(ChunkCol::of(ca.physical()))
            } else if let Ok(ca) = col.date() {
                TsView::Days(ChunkCol::of(ca.physical()))
            } else if let Ok(ca) = col.f64() {
                TsView::Number(ChunkCol::of(ca))
            } else {
                TsView::Text(TextCol::new(col))
            }
        }
        None => TsView::Text(TextCol::absent()),
    };
    let amount = get(Canon::Amount)
        .map(NumView::of)
        .unwrap_or_else(|| NumView::Text(TextCol::absent()));
    let extras = p
        .columns
        .iter()
        .filter(|c| {
            !matches!(
                c.0,
                Canon::CustomerId | Canon::OrderId | Canon::OrderTs | Canon::Amount | Canon::Status
            )
        })
        .map(|c| NumView::of(&c.2))
        .collect();
    FileView {
        path,
        offset,
        customer: get(Canon::CustomerId).map_or_else(IdCol::absent, IdCol::new),
        order_id: get(Canon::OrderId).map_or_else(IdCol::absent, IdCol::new),
        ts,
        amount,
        status: get(Canon::Status).map(TextCol::new),
        discount: get(Canon::DiscountAmount).map(NumView::of),
        category: get(Canon::Category).map(TextCol::new),
        extras,
        names: p.columns.iter().map(|c| (c.0, c.1.clone())).collect(),
        null_values,
        ragged: &p.ragged,
        blank: &p.blank,
    }
}

impl<'v> FileView<'v> {
    fn source_name(&self, canon: Canon) -> String {
        self.names
            .iter()
            .find(|n| n.0 == canon)
            .map(|n| n.1.clone())
            .unwrap_or_else(|| canon.name().to_string())
    }

    /// A row's `discount_amount` read as a number (`None` when there is none): what validation
    /// checks and [`FileView::discount`] reads back.
    fn discount_cell(&self, row: usize) -> Option<Result<f64, String>> {
        match self.discount.as_ref()? {
            NumView::Num(d) => d.get(row).map(check_amount),
            NumView::Text(d) => self.cell(d, row).map(parse_amount),
        }
    }

    /// The `category` of a row.
    fn category(&self, row: usize) -> Option<&'v str> {
        self.category.as_ref().and_then(|c| self.cell(c, row))
    }

    /// The category cell's view when it is set and short ([`TextCol::inline_key`]).
    fn category_key(&self, row: usize) -> Option<u128> {
        self.category.as_ref().and_then(|c| c.inline_key(row))
    }

    /// A text cell, trimmed; `None` when empty or a null marker.
    fn cell(&self, col: &TextCol<'v>, row: usize) -> Option<&'v str> {
        self.clean(col.get(row))
    }

    /// A raw cell trimmed; `None` when empty or a null marker.
    fn clean(&self, raw: Option<&'v str>) -> Option<&'v str> {
        clean(raw?, self.null_values)
    }

    /// The row's `order_id` key as [`View::parse_row`] reads it, without the rest of the row
    /// (`None` where it would refuse the id): a later pass skips the other passes' orders with
    /// this alone.
    fn order_key(&self, row: usize) -> Option<Key<'v>> {
        match &self.order_id {
            IdCol::Int(c) => c.get(row).map(Key::Int),
            IdCol::Text(_) => self.clean(self.order_id.text(row)).map(Key::of_text),
        }
    }

    fn raw(&self, canon: Canon, row: usize) -> Option<String> {
        match canon {
            Canon::CustomerId => self.customer.raw(row),
            Canon::OrderId => self.order_id.raw(row),
            Canon::OrderTs => match &self.ts {
                TsView::Text(v) => v.get(row).map(str::to_string),
                TsView::Micros(v) => v.get(row).map(|m| m.to_string()),
                TsView::Days(v) => v.get(row).map(|m| m.to_string()),
                TsView::Number(v) => v.get(row).map(|m| m.to_string()),
            },
            Canon::Amount => self.amount.raw(row),
            Canon::Status => self
                .status
                .as_ref()
                .and_then(|s| s.get(row).map(str::to_string)),
            Canon::DiscountAmount => self.discount.as_ref().and_then(|d| d.raw(row)),
            _ => None,
        }
    }

    fn reject(
        &self,
        row: usize,
        canon: Canon,
        reason: RejectReason,
        message: String,
    ) -> RejectedRow {
        RejectedRow {
            source_file: self.path.to_string(),
            row: (self.offset + row) as i64 + 1,
            column: self.source_name(canon),
            value: self.raw(canon, row),
            reason,
            message,
        }
    }

    /// The status a raw status cell means (completed when empty).
    fn status(
        &self,
        row: usize,
        raw: Option<&str>,
        status_map: &StatusMap,
    ) -> Result<Status, RejectedRow> {
        let Some(raw) = self.clean(raw) else {
            return Ok(Status::Completed);
        };
        lookup_status(status_map, raw).copied().ok_or_else(|| {
            self.reject(
                row,
                Canon::Status,
                RejectReason::UnknownStatus,
                format!("unknown status \"{raw}\" (expected completed, cancelled or returned; map others with [orders.status_values], e.g. {raw} = \"{}\")", suggest_status(raw)),
            )
        })
    }

    fn parse_row(
        &self,
        row: usize,
        schema: &OrdersSchema,
        status_map: &StatusMap,
        statuses: &mut ViewMemo<Status>,
        last_customer: Option<(&'v str, Key<'v>)>,
    ) -> Result<Parsed<'v>, RejectedRow> {
        if !self.ragged.is_empty() && self.ragged.binary_search(&row).is_ok() {
            return Err(RejectedRow {
                source_file: self.path.to_string(),
                row: (self.offset + row) as i64 + 1,
                column: String::new(),
                value: None,
                reason: RejectReason::TooManyFields,
                message: format!(
                    "the record has more fields than the header's {} columns (an unquoted separator inside a value?)",
                    self.names.len().max(1)
                ),
            });
        }
        // Each cell is looked up once (the chunk search is the hot spot of ingest).
        let customer_raw = self.customer.text(row);
        // The previous row's customer again (an export sorted by customer): its cell was checked
        // and keyed then.
        let repeat = match (customer_raw, last_customer) {
            (Some(raw), Some((last, key))) if raw == last => Some(key),
            _ => None,
        };
        let order_raw = self.order_id.text(row);
        let status_raw = self.status.as_ref().and_then(|s| s.get(row));
        let text_cols: [(Canon, Option<&str>); 3] = [
            (Canon::CustomerId, customer_raw.filter(|_| repeat.is_none())),
            (Canon::OrderId, order_raw),
            (Canon::Status, status_raw),
        ];
        for (canon, v) in text_cols {
            if v.is_some_and(has_replacement_char) {
                return Err(self.reject(
                    row,
                    canon,
                    RejectReason::InvalidUtf8,
                    "the cell holds bytes that are not valid UTF-8".into(),
                ));
            }
        }
        let required = |canon: Canon, v: Option<&'v str>| -> Result<&'v str, RejectedRow> {
            v.ok_or_else(|| {
                self.reject(
                    row,
                    canon,
                    RejectReason::MissingValue,
                    format!("`{}` is empty", self.source_name(canon)),
                )
            })
        };
        let key = |canon: Canon, col: &IdCol<'v>, raw: Option<&'v str>| match col {
            IdCol::Int(c) => c.get(row).map(Key::Int).ok_or_else(|| {
                self.reject(
                    row,
                    canon,
                    RejectReason::MissingValue,
                    format!("`{}` is empty", self.source_name(canon)),
                )
            }),
            IdCol::Text(_) => required(canon, self.clean(raw)).map(Key::of_text),
        };
        let customer = match repeat {
            Some(key) => key,
            None => key(Canon::CustomerId, &self.customer, customer_raw)?,
        };
        let order_id = key(Canon::OrderId, &self.order_id, order_raw)?;
        let bad_ts = |hint: String, shown: String| {
            self.reject(
                row,
                Canon::OrderTs,
                RejectReason::InvalidTimestamp,
                format!("cannot parse \"{shown}\" as a timestamp ({hint})"),
            )
        };
        let missing_ts = || {
            self.reject(
                row,
                Canon::OrderTs,
                RejectReason::MissingValue,
                "the timestamp is empty".into(),
            )
        };
        let micros = match &self.ts {
            TsView::Micros(v) => v.get(row).ok_or_else(missing_ts)?,
            TsView::Days(v) => i64::from(v.get(row).ok_or_else(missing_ts)?) * MICROS_PER_DAY,
            TsView::Number(v) => {
                let x = v.get(row).ok_or_else(missing_ts)?;
                numeric_timestamp(x).map_err(|hint| bad_ts(hint, x.to_string()))?
            }
            TsView::Text(v) => {
                let s = required(Canon::OrderTs, self.cell(v, row))?;
                if has_replacement_char(s) {
                    return Err(self.reject(
                        row,
                        Canon::OrderTs,
                        RejectReason::InvalidUtf8,
                        "the cell holds bytes that are not valid UTF-8".into(),
                    ));
                }
                parse_timestamp_micros(s, schema.timestamp_format.as_deref())
                    .map_err(|hint| bad_ts(hint, s.to_string()))?
            }
        };
        let amount = match &self.amount {
            NumView::Num(v) => match v.get(row) {
                Some(x) => check_amount(x).map_err(|hint| {
                    self.reject(row, Canon::Amount, RejectReason::InvalidNumber, hint)
                })?,
                None => {
                    return Err(self.reject(
                        row,
                        Canon::Amount,
                        RejectReason::MissingValue,
                        "the amount is empty".into(),
                    ))
                }
            },
            NumView::Text(v) => {
                let s = required(Canon::Amount, self.cell(v, row))?;
                parse_amount(s).map_err(|hint| {
                    self.reject(
                        row,
                        Canon::Amount,
                        RejectReason::InvalidNumber,
                        format!("cannot parse \"{s}\" as an amount ({hint})"),
                    )
                })?
            }
        };
        let status_key = self.status.as_ref().and_then(|s| s.inline_key(row));
        let status =
            statuses.or_compute(status_key, || self.status(row, status_raw, status_map))?;
        let discount = self.discount_cell(row);
        // The cell as shown in a message (only made for a rejected row).
        let shown = || {
            self.raw(Canon::DiscountAmount, row)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let discount = match discount {
            None => 0.0,
            Some(parsed) => match parsed {
                Ok(d) if d >= 0.0 => d,
                Ok(_) => {
                    return Err(self.reject(
                        row,
                        Canon::DiscountAmount,
                        RejectReason::InvalidNumber,
                        format!(
                            "discount \"{}\" is negative (a discount is the amount taken off, ≥ 0)",
                            shown()
                        ),
                    ))
                }
                Err(hint) => {
                    return Err(self.reject(
                        row,
                        Canon::DiscountAmount,
                        RejectReason::InvalidNumber,
                        format!("cannot parse \"{}\" as a discount ({hint})", shown()),
                    ))
                }
            },
        };
        let extras = {
            use std::hash::{BuildHasher, Hash, Hasher};
            let mut h = FixedState::default().build_hasher();
            for e in &self.extras {
                e.extra(row).hash(&mut h);
            }
            h.finish()
        };
        Ok(Parsed {
            customer,
            customer_raw,
            customer_repeat: repeat.is_some(),
            order_id,
            micros,
            amount,
            status,
            discount,
            extras,
        })
    }
}

/// The canonical status a shop's own status name most likely means, for a mapping hint.
fn suggest_status(raw: &str) -> &'static str {
    let s = raw.to_ascii_lowercase();
    let any = |words: &[&str]| words.iter().any(|w| s.contains(w));
    if any(&[
        "void", "cancel", "declin", "fail", "reject", "abandon", "expire",
    ]) {
        "cancelled"
    } else if any(&["rma", "return", "refund", "chargeback"]) {
        "returned"
    } else {
        "completed"
    }
}

/// Case-insensitive status lookup; keys are lowercase, so lowercase values (the usual case) need
/// no allocation.
fn lookup_status<'m>(map: &'m StatusMap, raw: &str) -> Option<&'m Status> {
    if raw.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()) {
        map.get(&raw.to_lowercase())
    } else {
        map.get(raw)
    }
}

/// Checks `[orders]` settings that need no data: the status mapping and the separator.
pub fn check_schema(schema: &OrdersSchema) -> Result<(), String> {
    schema.separator_byte()?;
    status_map(schema).map(|_| ()).map_err(|e| match e {
        InputError::InvalidConfig(m) => m,
        other => other.to_string(),
    })
}

/// Status names to statuses, hashed with foldhash: every row of a file with a status column
/// looks its cell up here.
type StatusMap = HashMap<String, Status, FixedState>;

fn status_map(schema: &OrdersSchema) -> Result<StatusMap, InputError> {
    let mut map: StatusMap = [
        ("completed", Status::Completed),
        ("complete", Status::Completed),
        ("cancelled", Status::Cancelled),
        ("canceled", Status::Cancelled),
        ("returned", Status::Returned),
        ("refunded", Status::Returned),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (raw, canonical) in &schema.status_values {
        let status = match canonical.as_str() {
            "completed" => Status::Completed,
            "cancelled" => Status::Cancelled,
            "returned" => Status::Returned,
            other => {
                return Err(InputError::InvalidConfig(format!(
                    "orders.status_values maps \"{raw}\" to \"{other}\"; expected completed, cancelled or returned"
                )))
            }
        };
        map.insert(raw.trim().to_lowercase(), status);
    }
    Ok(map)
}

/// Reads and validates every file chunk by chunk into owned lines (no file is held whole), then
/// builds canonical orders. The validated lines of the whole input are held at once unless
/// `memory_budget` (bytes) says otherwise: then the input is read in passes, each keeping the
/// orders whose `order_id` hashes to that pass (one order's lines always meet in one pass), so
/// the lines held at once stay within the budget.
pub fn ingest_orders(
    files: &[PathBuf],
    schema: &OrdersSchema,
    memory_budget: Option<u64>,
) -> Result<Ingested, InputError> {
    ingest_in_chunks(files, schema, CHUNK_ROWS, memory_budget, 1, None)
}

/// What [`ingest_orders_routed`] hands its sink.
#[derive(Debug)]
pub enum Piece {
    /// Canonical orders, each whole (all its lines were folded together), with their own
    /// customer dictionary and the run's category names so far.
    Orders(Box<Orders>),
    /// Forget every piece handed so far: the input turned out not to be in `order_id` order,
    /// and it is read again, in the passes the memory budget asks for.
    Restart,
}

/// Where [`ingest_orders_routed`] sends its canonical orders.
pub type OrdersSink<'a> = &'a mut dyn FnMut(Piece) -> Result<(), InputError>;

/// [`ingest_orders`] in at least `passes` passes (more if `memory_budget` asks), the canonical
/// orders handed to `sink` as soon as they are built instead of held: memory holds one pass,
/// or, for an input in `order_id` order (read in one streaming pass whatever the budget), one
/// chunk.
/// The returned [`Ingested`] has no orders; everything else (rejected rows, file statistics,
/// warnings) is the whole input's.
pub fn ingest_orders_routed(
    files: &[PathBuf],
    schema: &OrdersSchema,
    memory_budget: Option<u64>,
    passes: usize,
    sink: OrdersSink<'_>,
) -> Result<Ingested, InputError> {
    ingest_in_chunks(
        files,
        schema,
        CHUNK_ROWS,
        memory_budget,
        passes.max(1),
        Some(sink),
    )
}

/// Bytes a validated line takes while its order is assembled.
pub const LINE_BYTES: u64 = std::mem::size_of::<Line>() as u64;

/// Hands the orders folded so far to `sink` (with the run's category names so far), leaving
/// `next` and a new customer dictionary in their place.
fn hand(folded: &mut Folded, next: Orders, sink: OrdersSink<'_>) -> Result<(), InputError> {
    let mut piece = std::mem::replace(&mut folded.orders, next);
    piece.category_names = folded.categories.names.clone();
    folded.keys = CustomerKeys::default();
    sink(Piece::Orders(Box::new(piece)))
}

/// [`ingest_orders`] reading about `chunk_rows` rows at a time (the result depends on neither
/// the chunk size nor the number of passes).
fn ingest_in_chunks(
    files: &[PathBuf],
    schema: &OrdersSchema,
    chunk_rows: usize,
    memory_budget: Option<u64>,
    min_passes: usize,
    mut sink: Option<OrdersSink<'_>>,
) -> Result<Ingested, InputError> {
    let status_map = status_map(schema)?;
    if files.len() > usize::from(u16::MAX) {
        return Err(InputError::InvalidConfig(format!(
            "{} order files match; at most {} can be read in one run: merge some, or narrow the glob",
            files.len(),
            u16::MAX
        )));
    }
    let opened: Vec<OrdersFile> = files
        .iter()
        .map(|p| OrdersFile::open(p.clone(), schema))
        .collect::<Result<_, _>>()?;

    // Every file's chunks first: their row counts size the lines once (growing a vector of
    // millions of lines by doubling copies it and holds two copies at the switch) and say how
    // many passes the budget needs.
    let chunks: Vec<Vec<(usize, usize)>> =
        opened.iter().map(|f| f.source.chunks(chunk_rows)).collect();
    let known: usize = opened.iter().filter_map(|f| f.source.records()).sum();
    let planned = match memory_budget {
        Some(budget) => (known as u64 * LINE_BYTES).div_ceil(budget.max(1)).max(1),
        None => 1,
    }
    .max(min_passes as u64);
    // An input in `order_id` order needs one pass whatever its size (it streams, see below):
    // that is tried first unless more passes were asked for; the first line out of order falls
    // back to the passes the budget plans.
    let mut passes = if min_passes > 1 { planned } else { 1 };
    let largest = chunks
        .iter()
        .flatten()
        .map(|c| c.1)
        .max()
        .unwrap_or(0)
        .min(known);
    let has_discount = opened.iter().any(|f| f.has(Canon::DiscountAmount));
    let has_category = opened.iter().any(|f| f.has(Canon::Category));

    let mut rejected: Vec<RejectedRow> = Vec::new();
    // Per file: records read (blank lines included) and blank lines.
    let mut heights = vec![0usize; opened.len()];
    let mut blanks = vec![0usize; opened.len()];
    // Customer keys in first-seen order (deterministic: orders come in pass and order_id
    // order). Features sort customers by id, so the key order never reaches an output.
    // Orders of all passes; with a sink, of one pass, or of one chunk while streaming.
    let routed = sink.is_some();
    let capacity = |passes: u64, streaming: bool| match (routed, streaming) {
        (false, _) => known,
        (true, false) => known / passes as usize,
        (true, true) => largest + largest / 16,
    };
    let empty = |capacity: usize| Orders {
        customer_ids: Vec::new(),
        customer: Vec::with_capacity(capacity),
        day: Vec::with_capacity(capacity),
        amount: Vec::with_capacity(capacity),
        refund: Vec::with_capacity(capacity),
        is_purchase: Vec::with_capacity(capacity),
        discount: Vec::with_capacity(if has_discount { capacity } else { 0 }),
        discount_column: has_discount,
        // At most one category per line: reserved for every line (address space, not
        // memory, until written), so the columns are not regrown and copied order by order.
        category_start: if has_category {
            let mut start = Vec::with_capacity(capacity + 1);
            start.push(0);
            start
        } else {
            Vec::new()
        },
        category_ids: Vec::with_capacity(if has_category { capacity } else { 0 }),
        category_names: Vec::new(),
    };
    let fresh = |capacity: usize| Folded {
        orders: empty(capacity),
        keys: CustomerKeys::default(),
        categories: Dict::default(),
        counts: LineCounts::new(opened.len()),
    };
    let mut folded = fresh(capacity(passes, passes == 1));
    let shape = Shape {
        files: &opened,
        schema,
        has_discount,
        has_category,
    };
    let mut streaming = false;
    'passes: loop {
        // The passes of this read (a restart below sets more and reads again).
        let reading = passes;
        for pass in 0..reading {
            // Rows are validated in every pass; the first one reports the refused rows and counts.
            let first = pass == 0;
            let mine = |k: Key<'_>| -> bool { passes == 1 || id_hash(k) % passes == pass };
            // One pass over an input whose orders' lines are together streams: each chunk's
            // complete orders are folded as soon as it is read, and only the last order's lines
            // wait for the next chunk, so the lines never outgrow a chunk. It starts assuming
            // `order_id` order; the first line out of order starts it over as a grouped stream
            // (the orders in any order, every folded order's id hash remembered), and an order
            // that comes apart ends that: the pass starts over holding every line, sorted at
            // the end.
            streaming = passes == 1;
            let mut grouped: Option<FoldedIds> = None;
            'attempt: loop {
                // Streaming holds a chunk and the lines of the order it ends on: sized once for
                // the largest chunk, so the vector is not regrown (and copied) on the way.
                let mut lines: Vec<Line> = Vec::with_capacity(if streaming {
                    largest + largest / 16
                } else {
                    let share = known / passes as usize;
                    share + share / 16
                });
                let mut arenas: Vec<Arena> = Vec::new();
                // The next chunk is read (by polars, on its own threads) while this one is parsed.
                let work: Vec<(usize, (usize, usize))> = chunks
                    .iter()
                    .enumerate()
                    .flat_map(|(f, ranges)| ranges.iter().map(move |&r| (f, r)))
                    .collect();
                let restart = std::thread::scope(|s| -> Result<Option<Restart>, InputError> {
                    let mut ahead: Option<
                        std::thread::ScopedJoinHandle<'_, Result<Prepared, InputError>>,
                    > = None;
                    let mut read_all = || -> Result<Option<Restart>, InputError> {
                        for (i, &(f, range)) in work.iter().enumerate() {
                            let file = &opened[f];
                            let chunk = match ahead.take() {
                                Some(reading) => wait_helping(reading)?,
                                None => file.read(range)?,
                            };
                            if let Some(&(g, next)) = work.get(i + 1) {
                                let next_file = &opened[g];
                                ahead = Some(s.spawn(move || next_file.read(next)));
                            }
                            let v = view(&chunk, &file.path_text, range.0, &schema.null_values);
                            if first {
                                heights[f] += chunk.height;
                                blanks[f] += chunk.blank.len();
                            }
                            // Blocks of rows in parallel, each into its own lines and arena (ids,
                            // categories); blank lines are skipped (neither accepted nor rejected).
                            let base = arenas.len() as u32;
                            let parse_block = |b: usize, emit: &mut dyn FnMut(Line)| {
                                let rows = b * BLOCK_ROWS..((b + 1) * BLOCK_ROWS).min(chunk.height);
                                let mut arena = Arena::default();
                                let mut categories: HashMap<&str, u32, FixedState> =
                                    HashMap::default();
                                // Short status and category cells' meanings, by their views.
                                let mut statuses = ViewMemo::new(Status::Completed);
                                let mut category_codes = ViewMemo::new(NO_TEXT);
                                // The last row's customer (text ids): its cell, key and place in the
                                // arena, which the next rows of that customer share.
                                let mut last: Option<(&str, Key<'_>, (u64, bool))> = None;
                                let mut refused = Vec::new();
                                for row in rows {
                                    if !v.blank.is_empty() && v.blank.binary_search(&row).is_ok() {
                                        continue;
                                    }
                                    // The first pass reports every refused row; a later one only
                                    // needs its own orders' rows.
                                    if !first && !v.order_key(row).is_some_and(&mine) {
                                        continue;
                                    }
                                    let p = match v.parse_row(
                                        row,
                                        schema,
                                        &status_map,
                                        &mut statuses,
                                        last.map(|(raw, key, _)| (raw, key)),
                                    ) {
                                        Ok(p) if mine(p.order_id) => p,
                                        Ok(_) => continue,
                                        Err(r) => {
                                            if first {
                                                refused.push(r);
                                            }
                                            continue;
                                        }
                                    };
                                    let mut own = |k: Key<'_>| match k {
                                        Key::Int(i) => (i as u64, false),
                                        Key::Text(t) => (u64::from(arena.push(t)), true),
                                    };
                                    let (customer, customer_text) = match last {
                                        Some((_, _, owned)) if p.customer_repeat => owned,
                                        _ => own(p.customer),
                                    };
                                    if let Some(raw) = p.customer_raw {
                                        last = Some((raw, p.customer, (customer, customer_text)));
                                    }
                                    let (order_id, order_text) = own(p.order_id);
                                    let category = category_codes
                                        .or_compute(v.category_key(row), || {
                                            Ok::<_, ()>(match v.category(row) {
                                                Some(c) => *categories
                                                    .entry(c)
                                                    .or_insert_with(|| arena.push(c)),
                                                None => NO_TEXT,
                                            })
                                        })
                                        .unwrap_or(NO_TEXT);
                                    emit(Line {
                                        micros: p.micros,
                                        amount: p.amount,
                                        discount: p.discount,
                                        extras: p.extras,
                                        customer,
                                        order_id,
                                        row: (range.0 + row) as u32,
                                        arena: base + b as u32,
                                        category,
                                        file: f as u16,
                                        status: p.status,
                                        text: if customer_text { CUSTOMER_TEXT } else { 0 }
                                            | if order_text { ORDER_TEXT } else { 0 },
                                    });
                                }
                                (arena, refused)
                            };
                            let n_blocks = chunk.height.div_ceil(BLOCK_ROWS);
                            if passes == 1 {
                                // Every row may be kept: `lines` grows by the chunk's rows (filled in
                                // parallel, so both workers take the fresh pages' faults), each block writes
                                // its lines straight into its own rows' slots (no copy from a block's
                                // buffer), then the blocks close ranks over the rows they refused.
                                let at = lines.len();
                                lines.par_extend(rayon::iter::repeat_n(Line::EMPTY, chunk.height));
                                let slots = &mut lines[at..];
                                let blocks: Vec<(Arena, Vec<RejectedRow>, usize)> = slots
                                    .par_chunks_mut(BLOCK_ROWS)
                                    .enumerate()
                                    .map(|(b, slots)| {
                                        let mut kept = 0;
                                        let (arena, refused) = parse_block(b, &mut |line| {
                                            slots[kept] = line;
                                            kept += 1;
                                        });
                                        (arena, refused, kept)
                                    })
                                    .collect();
                                let mut filled = 0;
                                for (b, (arena, refused, kept)) in blocks.into_iter().enumerate() {
                                    let from = b * BLOCK_ROWS;
                                    if from != filled {
                                        slots.copy_within(from..from + kept, filled);
                                    }
                                    filled += kept;
                                    arenas.push(arena);
                                    rejected.extend(refused);
                                }
                                lines.truncate(at + filled);
                                if streaming {
                                    if grouped.is_none() {
                                        let from = at.saturating_sub(1);
                                        let in_order = lines[from..].par_windows(2).all(|w| {
                                            w[0].order_id(&arenas) <= w[1].order_id(&arenas)
                                        });
                                        if !in_order {
                                            return Ok(Some(Restart::Grouped));
                                        }
                                    }
                                    // Every order but the last is whole: fold them, keep the last's lines.
                                    let last = lines.last().map(|l| l.order_id(&arenas));
                                    let mut cut = lines.len();
                                    while cut > 0 && Some(lines[cut - 1].order_id(&arenas)) == last
                                    {
                                        cut -= 1;
                                    }
                                    if let Some(ids) = grouped.as_mut() {
                                        if !ids.fold(&lines[..cut], &arenas) {
                                            return Ok(Some(Restart::Passes));
                                        }
                                    }
                                    shape.fold(&lines[..cut], &arenas, &mut folded, &mut rejected);
                                    lines.drain(..cut);
                                    if let Some(sink) = sink.as_mut() {
                                        let next = empty(capacity(1, true));
                                        hand(&mut folded, next, sink)?;
                                    }
                                    // The text of blocks no waiting line points into is let go.
                                    let kept = lines
                                        .iter()
                                        .map(|l| l.arena as usize)
                                        .min()
                                        .unwrap_or(arenas.len())
                                        .min(arenas.len());
                                    for arena in &mut arenas[..kept] {
                                        *arena = Arena::default();
                                    }
                                }
                            } else {
                                // A pass keeps a share of the rows: blocks fill buffers of their own.
                                let blocks: Vec<(Arena, Vec<RejectedRow>, Vec<Line>)> = (0
                                    ..n_blocks)
                                    .into_par_iter()
                                    .map(|b| {
                                        let mut out =
                                            Vec::with_capacity(BLOCK_ROWS / passes as usize + 1);
                                        let (arena, refused) =
                                            parse_block(b, &mut |line| out.push(line));
                                        (arena, refused, out)
                                    })
                                    .collect();
                                for (arena, refused, out) in blocks {
                                    arenas.push(arena);
                                    lines.extend(out);
                                    rejected.extend(refused);
                                }
                            }
                        }
                        // The last order's lines are folded below: its id must not be a repeat.
                        if let (Some(ids), Some(line)) = (&grouped, lines.last()) {
                            if ids.holds(line.order_id(&arenas)) {
                                return Ok(Some(Restart::Passes));
                            }
                        }
                        Ok(None)
                    };
                    let read = read_all();
                    // A restart or an error leaves the next chunk's read running: it is waited
                    // for here too (the scope's own wait would block a worker of the pool).
                    if let Some(reading) = ahead.take() {
                        let _ = wait_helping(reading);
                    }
                    read
                })?;
                if let Some(how) = restart {
                    rejected.clear();
                    heights.iter_mut().for_each(|h| *h = 0);
                    blanks.iter_mut().for_each(|b| *b = 0);
                    if let Some(sink) = sink.as_mut() {
                        sink(Piece::Restart)?;
                    }
                    if how == Restart::Grouped {
                        // Out of `order_id` order: stream again, checking only that no order
                        // comes back once folded.
                        // Sized for one order a line at once: no table twice the size while
                        // it grows.
                        grouped = Some(FoldedIds::with_capacity(known));
                        folded = fresh(capacity(passes, true));
                        continue 'attempt;
                    }
                    // An order came back: start over in the passes the budget plans, or in this
                    // one pass holding every line (nothing of another pass is lost).
                    streaming = false;
                    grouped = None;
                    if planned > passes {
                        passes = planned;
                        folded = fresh(capacity(passes, false));
                        continue 'passes;
                    }
                    folded = fresh(capacity(passes, false));
                    continue 'attempt;
                }

                if !streaming {
                    // Group lines by order_id; (file, row) makes the order total and deterministic.
                    sort_lines(&mut lines, &arenas);
                }
                shape.fold(&lines, &arenas, &mut folded, &mut rejected);
                drop(lines);
                break;
            }
            if let Some(sink) = sink.as_mut() {
                hand(&mut folded, empty(capacity(passes, false)), sink)?;
            }
        }
        break;
    }
    let Folded {
        orders: mut canonical,
        categories: category_dict,
        counts,
        ..
    } = folded;
    let streamed = streaming;

    canonical.category_names = category_dict.names;
    rejected.sort_by(|a, b| a.source_file.cmp(&b.source_file).then(a.row.cmp(&b.row)));
    let mut warnings = Vec::new();
    let stats = opened
        .iter()
        .enumerate()
        .map(|(f, p)| {
            let mine: Vec<&RejectedRow> = rejected
                .iter()
                .filter(|r| r.source_file == p.path_text)
                .collect();
            let mut by_reason = BTreeMap::new();
            for r in &mine {
                *by_reason.entry(r.reason.as_str().to_string()).or_insert(0) += 1;
            }
            if !p.unused.is_empty() {
                let hints: Vec<String> = p
                    .unused
                    .iter()
                    .filter_map(|name| {
                        let canon = looks_like(name)?;
                        (!p.has(canon)).then(|| {
                            format!(
                                "; `{name}` looks like `{}`: to use it, map it with `[orders.columns] {} = \"{name}\"`",
                                canon.name(),
                                canon.name()
                            )
                        })
                    })
                    .collect();
                warnings.push(format!(
                    "{}: columns not used: {}{}",
                    p.path_text,
                    p.unused
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    hints.concat()
                ));
            }
            let rows_read = (heights[f] - blanks[f]) as i64;
            FileStats {
                path: p.path_text.clone(),
                format: p.source.format.as_str().to_string(),
                compression: p.source.compression.map(str::to_string),
                separator: p.source.separator.map(|s| char::from(s).to_string()),
                rows_read,
                blank_lines_skipped: blanks[f] as i64,
                rows_rejected: mine.len() as i64,
                rows_accepted: rows_read - mine.len() as i64,
                duplicates_collapsed: counts.collapsed[f],
                cancelled_lines: counts.cancelled[f],
                returned_lines: counts.returned[f],
                rejected_by_reason: by_reason,
                columns: p
                    .mapped
                    .iter()
                    .map(|&(canon, i)| (canon.name().to_string(), p.source.columns[i].clone()))
                    .collect(),
                unused_columns: p.unused.clone(),
            }
        })
        .collect();
    let mut unknown: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &rejected {
        if r.reason == RejectReason::UnknownStatus {
            *unknown
                .entry(r.value.as_deref().unwrap_or("").trim())
                .or_default() += 1;
        }
    }
    if !unknown.is_empty() {
        let mapping: Vec<String> = unknown
            .keys()
            .map(|v| format!("{} = \"{}\"", toml_key(v), suggest_status(v)))
            .collect();
        let counts: Vec<String> = unknown
            .iter()
            .map(|(v, n)| format!("\"{v}\" ({n})"))
            .collect();
        warnings.push(format!(
            "rows with unknown status values were rejected: {}; if they mean what is suggested, add to the config:\n[orders.status_values]\n{}",
            counts.join(", "),
            mapping.join("\n")
        ));
    }
    Ok(Ingested {
        orders: canonical,
        rejected,
        files: stats,
        warnings,
        passes: passes as usize,
        streamed,
    })
}

/// What grouping needs to know about the run.
struct Shape<'v, 's> {
    files: &'v [OrdersFile],
    schema: &'s OrdersSchema,
    has_discount: bool,
    has_category: bool,
}

/// One piece's slots in the pass's order columns (one per line of the piece; the first
/// `Grouped::orders` are written). `first_line` holds each order's first line, in the pass's
/// lines, until customers are keyed.
struct OrderSlots<'a> {
    first_line: &'a mut [u32],
    day: &'a mut [Day],
    amount: &'a mut [f64],
    refund: &'a mut [f64],
    is_purchase: &'a mut [bool],
    /// Empty without a discount column.
    discount: &'a mut [f64],
}

impl<'a> OrderSlots<'a> {
    fn split_at(self, n: usize) -> (OrderSlots<'a>, OrderSlots<'a>) {
        let (first_line, first_line_rest) = self.first_line.split_at_mut(n);
        let (day, day_rest) = self.day.split_at_mut(n);
        let (amount, amount_rest) = self.amount.split_at_mut(n);
        let (refund, refund_rest) = self.refund.split_at_mut(n);
        let (is_purchase, is_purchase_rest) = self.is_purchase.split_at_mut(n);
        let (discount, discount_rest) = self.discount.split_at_mut(n.min(self.discount.len()));
        (
            OrderSlots {
                first_line,
                day,
                amount,
                refund,
                is_purchase,
                discount,
            },
            OrderSlots {
                first_line: first_line_rest,
                day: day_rest,
                amount: amount_rest,
                refund: refund_rest,
                is_purchase: is_purchase_rest,
                discount: discount_rest,
            },
        )
    }
}

/// What grouping one piece of the sorted lines leaves besides its orders' columns.
struct Grouped {
    /// Orders written to the piece's slots.
    orders: usize,
    /// CSR ends into `category_ids` (one per order when the input has categories); ids are the
    /// piece's own `categories` dictionary's.
    category_end: Vec<u32>,
    category_ids: Vec<u32>,
    categories: Dict,
    rejected: Vec<RejectedRow>,
    /// Per input file.
    collapsed: Vec<i64>,
    cancelled: Vec<i64>,
    returned_lines: Vec<i64>,
}

/// About `n` ranges covering `lines`, each starting at an order's first line.
/// Why a streaming read starts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Restart {
    /// A line out of `order_id` order: stream again as grouped orders ([`FoldedIds`]).
    Grouped,
    /// An order's lines came apart (its id came back after other orders): read in passes.
    Passes,
}

/// The orders a grouped stream has folded, as 64-bit hashes of their ids (9–18 bytes an order,
/// only for an input out of `order_id` order). A repeat is always found; two ids that share a
/// hash only cost a read in passes.
struct FoldedIds {
    set: HashSet<u64, std::hash::BuildHasherDefault<Prehashed>>,
    /// The hashes of one fold, reused.
    batch: Vec<u64>,
}

/// The hash of an order id: which pass keeps the order, and how a grouped stream remembers it.
fn id_hash(id: Key<'_>) -> u64 {
    use std::hash::BuildHasher;
    FixedState::default().hash_one(id)
}

impl FoldedIds {
    fn with_capacity(orders: usize) -> Self {
        FoldedIds {
            set: HashSet::with_capacity_and_hasher(orders, Default::default()),
            batch: Vec::new(),
        }
    }

    /// Records the orders of `lines` (each order's lines together); false when one was
    /// folded before or comes twice here.
    fn fold(&mut self, lines: &[Line], arenas: &[Arena]) -> bool {
        // Each order's first line, found and hashed in parallel.
        self.batch.clear();
        self.batch
            .par_extend((0..lines.len()).into_par_iter().filter_map(|i| {
                let id = lines[i].order_id(arenas);
                (i == 0 || lines[i - 1].order_id(arenas) != id).then(|| id_hash(id))
            }));
        // Inserted in the order of their low bits, which place them in the table: the inserts
        // walk the table front to back instead of missing the cache at every order.
        self.batch.par_sort_unstable_by_key(|&h| h as u32);
        self.set.reserve(self.batch.len());
        self.batch.iter().all(|&h| self.set.insert(h))
    }

    fn holds(&self, id: Key<'_>) -> bool {
        self.set.contains(&id_hash(id))
    }
}

/// A hasher for keys that are already hashes.
#[derive(Default)]
struct Prehashed(u64);

impl std::hash::Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

fn order_pieces(lines: &[Line], arenas: &[Arena], n: usize) -> Vec<std::ops::Range<usize>> {
    let step = lines.len().div_ceil(n.max(1)).max(1);
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < lines.len() {
        let mut end = (start + step).min(lines.len());
        while end < lines.len() && lines[end].order_id(arenas) == lines[end - 1].order_id(arenas) {
            end += 1;
        }
        pieces.push(start..end);
        start = end;
    }
    pieces
}

impl<'v> Shape<'v, '_> {
    /// Groups lines sorted by `order_id` into orders (the order rules of the module docs),
    /// written to `out`; `offset` is the first line's position in the pass's lines.
    fn group<'a>(
        &self,
        lines: &[Line],
        arenas: &'a [Arena],
        offset: usize,
        out: OrderSlots<'_>,
    ) -> Grouped {
        let schema = self.schema;
        let files = self.files.len();
        // Most lines are whole orders: one order per line is the capacity to expect.
        let cap = lines.len();
        let mut g = Grouped {
            orders: 0,
            category_end: Vec::with_capacity(if self.has_category { cap } else { 0 }),
            category_ids: Vec::new(),
            categories: Dict::default(),
            rejected: Vec::new(),
            collapsed: vec![0; files],
            cancelled: vec![0; files],
            returned_lines: vec![0; files],
        };
        // Reused across groups: most orders have one line, and fresh vectors per order would be
        // millions of allocations. Amounts are summed in sorted order so that the input row
        // order cannot change a bit.
        let (mut completed, mut returned): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
        let mut discounts: Vec<f64> = Vec::new();
        let mut categories: Vec<&'a str> = Vec::new();
        // Identical lines of one order (amount, status, optional cells) seen so far.
        let mut seen: HashSet<(u64, Status, u64), FixedState> = HashSet::default();
        let sorted_sum = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v.iter().sum::<f64>()
        };
        let mut start = 0;
        while start < lines.len() {
            let mut end = start + 1;
            while end < lines.len() && lines[end].order_id(arenas) == lines[start].order_id(arenas)
            {
                end += 1;
            }
            let group = &lines[start..end];
            let group_start = start;
            start = end;
            let first = &group[0];
            if let Some(bad) = group
                .iter()
                .find(|l| l.customer(arenas) != first.customer(arenas) || l.micros != first.micros)
            {
                // The conflicting cells as validated: the customer's id, or the timestamp.
                let canon = if bad.customer(arenas) != first.customer(arenas) {
                    Canon::CustomerId
                } else {
                    Canon::OrderTs
                };
                let shown = |l: &Line| -> String {
                    if canon == Canon::CustomerId {
                        l.customer(arenas).to_string()
                    } else {
                        format_micros(l.micros)
                    }
                };
                let (a, b) = (shown(first), shown(bad));
                for l in group {
                    let file = &self.files[l.file as usize];
                    g.rejected.push(RejectedRow {
                        source_file: file.path_text.clone(),
                        row: i64::from(l.row) + 1,
                        column: file.source_name(canon),
                        value: Some(shown(l)),
                        reason: RejectReason::ConflictingDuplicate,
                        message: format!(
                            "order_id \"{}\" appears on {} rows with different {} (\"{a}\" vs \"{b}\"); none of its rows were used",
                            l.order_id(arenas),
                            group.len(),
                            canon.name()
                        ),
                    });
                }
                continue;
            }
            if !seen.is_empty() {
                // A set grown by a huge order is dropped rather than cleared for every order.
                if seen.capacity() > 256 {
                    seen = HashSet::default();
                } else {
                    seen.clear();
                }
            }
            completed.clear();
            returned.clear();
            discounts.clear();
            categories.clear();
            for l in group {
                if group.len() > 1 && !seen.insert((l.amount.to_bits(), l.status, l.extras)) {
                    g.collapsed[l.file as usize] += 1;
                    continue;
                }
                match l.status {
                    Status::Cancelled => g.cancelled[l.file as usize] += 1,
                    Status::Returned => {
                        g.returned_lines[l.file as usize] += 1;
                        returned.push(l.amount.abs());
                    }
                    Status::Completed => {
                        completed.push(l.amount);
                        if self.has_discount {
                            discounts.push(l.discount);
                        }
                        if self.has_category {
                            categories.extend(l.category(arenas));
                        }
                    }
                }
            }
            let has_completed = !completed.is_empty();
            let has_returned = !returned.is_empty();
            let total = sorted_sum(&mut completed);
            // A returned line was bought and given back: it nets to zero. Counted as a purchase
            // it adds its amount to both sides; otherwise it adds nothing.
            let returned_total = if schema.returned_counts_as_purchase {
                sorted_sum(&mut returned)
            } else {
                0.0
            };
            let purchase = total.max(0.0) + returned_total;
            let refund = returned_total + (-total).max(0.0);
            let is_purchase = (has_completed && total >= 0.0)
                || (has_returned && schema.returned_counts_as_purchase);
            let (amount, discount) = if is_purchase {
                (purchase, sorted_sum(&mut discounts))
            } else if has_completed || has_returned {
                // Refund-only (a negative total) or returned-only: the customer is known,
                // nothing was bought.
                categories.clear();
                (0.0, 0.0)
            } else {
                continue;
            };
            let k = g.orders;
            out.first_line[k] = (offset + group_start) as u32;
            out.day[k] = micros_to_day(first.micros);
            out.amount[k] = amount;
            out.refund[k] = refund;
            out.is_purchase[k] = is_purchase;
            if self.has_discount {
                out.discount[k] = discount;
            }
            g.orders += 1;
            if self.has_category {
                // This order's distinct categories, sorted by the piece's ids.
                let ids = &mut g.category_ids;
                let start = ids.len();
                ids.extend(categories.iter().map(|c| g.categories.intern(c)));
                ids[start..].sort_unstable();
                let mut end = start;
                for k in start..ids.len() {
                    if k == start || ids[k] != ids[end - 1] {
                        ids[end] = ids[k];
                        end += 1;
                    }
                }
                ids.truncate(end);
                g.category_end.push(end as u32);
            }
        }
        g
    }
}

impl Shape<'_, '_> {
    /// Folds `lines` (sorted by `order_id`, (file, row); their text in `arenas`) into `into`'s
    /// orders, refused orders to `rejected`.
    fn fold(
        &self,
        lines: &[Line],
        arenas: &[Arena],
        into: &mut Folded,
        rejected: &mut Vec<RejectedRow>,
    ) {
        let Folded {
            orders: canonical,
            keys,
            categories: category_dict,
            counts,
        } = into;
        let pieces = order_pieces(lines, arenas, rayon::current_num_threads() * 8);
        // Each piece writes its orders straight into the pass's columns, at its first line's
        // offset (a piece has at most one order per line); the pieces then close ranks. The
        // columns grow in parallel (both workers take the fresh pages' faults) and no order is
        // copied from a piece's buffer.
        let base = canonical.customer.len();
        let grow = lines.len();
        canonical
            .customer
            .par_extend(rayon::iter::repeat_n(0, grow));
        canonical.day.par_extend(rayon::iter::repeat_n(0, grow));
        canonical
            .amount
            .par_extend(rayon::iter::repeat_n(0.0, grow));
        canonical
            .refund
            .par_extend(rayon::iter::repeat_n(0.0, grow));
        canonical
            .is_purchase
            .par_extend(rayon::iter::repeat_n(false, grow));
        if self.has_discount {
            canonical
                .discount
                .par_extend(rayon::iter::repeat_n(0.0, grow));
        }
        let groups: Vec<Grouped> = {
            let mut rest = OrderSlots {
                first_line: &mut canonical.customer[base..],
                day: &mut canonical.day[base..],
                amount: &mut canonical.amount[base..],
                refund: &mut canonical.refund[base..],
                is_purchase: &mut canonical.is_purchase[base..],
                discount: if self.has_discount {
                    &mut canonical.discount[base..]
                } else {
                    &mut []
                },
            };
            let mut slots = Vec::with_capacity(pieces.len());
            for range in &pieces {
                let (head, tail) = rest.split_at(range.len());
                slots.push(head);
                rest = tail;
            }
            pieces
                .par_iter()
                .zip(slots)
                .map(|(range, out)| self.group(&lines[range.clone()], arenas, range.start, out))
                .collect()
        };
        let mut filled = base;
        for (range, g) in pieces.iter().zip(groups) {
            let from = base + range.start;
            if from != filled {
                let moved = from..from + g.orders;
                canonical.customer.copy_within(moved.clone(), filled);
                canonical.day.copy_within(moved.clone(), filled);
                canonical.amount.copy_within(moved.clone(), filled);
                canonical.refund.copy_within(moved.clone(), filled);
                canonical.is_purchase.copy_within(moved.clone(), filled);
                if self.has_discount {
                    canonical.discount.copy_within(moved, filled);
                }
            }
            filled += g.orders;
            if self.has_category {
                // The piece's own category ids, re-keyed to the run's dictionary and re-sorted.
                let global: Vec<u32> = g
                    .categories
                    .names
                    .iter()
                    .map(|n| category_dict.intern(n))
                    .collect();
                let out = &mut canonical.category_ids;
                let mut from = 0;
                for &to in &g.category_end {
                    let start = out.len();
                    out.extend(
                        g.category_ids[from..to as usize]
                            .iter()
                            .map(|&k| global[k as usize]),
                    );
                    out[start..].sort_unstable();
                    canonical.category_start.push(out.len() as u32);
                    from = to as usize;
                }
            }
            rejected.extend(g.rejected);
            for f in 0..self.files.len() {
                counts.collapsed[f] += g.collapsed[f];
                counts.cancelled[f] += g.cancelled[f];
                counts.returned[f] += g.returned_lines[f];
            }
        }
        canonical.customer.truncate(filled);
        canonical.day.truncate(filled);
        canonical.amount.truncate(filled);
        canonical.refund.truncate(filled);
        canonical.is_purchase.truncate(filled);
        if self.has_discount {
            canonical.discount.truncate(filled);
        }

        // Customers keyed in first-seen order: each order's first line (what `customer` holds
        // so far) names its customer.
        let orders = &mut canonical.customer[base..];
        let key_of = |line: u32| lines[line as usize].customer(arenas);
        // Where the customer changes from one order to the next, found in parallel: an export
        // sorted by customer has one run per customer, and only runs are looked up.
        let runs: Vec<usize> = (0..orders.len())
            .into_par_iter()
            .filter(|&i| i == 0 || key_of(orders[i]) != key_of(orders[i - 1]))
            .collect();
        // Each run's customer looked up in order; the new customers' ids written out
        // afterwards, in parallel.
        let known = canonical.customer_ids.len();
        let mut fresh: Vec<Key<'_>> = Vec::new();
        let run_ids: Vec<u32> = runs
            .iter()
            .map(|&i| {
                let key = key_of(orders[i]);
                let next = (known + fresh.len()) as u32;
                let id = match key {
                    Key::Int(v) => *keys.int.entry(v).or_insert(next),
                    Key::Text(t) => match keys.text.get(t) {
                        Some(&k) => k,
                        None => {
                            keys.text.insert(t.into(), next);
                            next
                        }
                    },
                };
                if id == next {
                    fresh.push(key);
                }
                id
            })
            .collect();
        canonical
            .customer_ids
            .par_extend(fresh.par_iter().map(|k| k.to_string()));
        // Every order takes its run's id.
        const SPAN: usize = 1 << 16;
        orders
            .par_chunks_mut(SPAN)
            .enumerate()
            .for_each(|(s, span)| {
                let from = s * SPAN;
                let mut r = runs.partition_point(|&i| i <= from) - 1;
                for (k, c) in span.iter_mut().enumerate() {
                    while r + 1 < runs.len() && runs[r + 1] <= from + k {
                        r += 1;
                    }
                    *c = run_ids[r];
                }
            });
    }
}

/// Waits for the thread reading the next chunk. The job runs on polars' thread pool, and the read
/// needs a worker of that pool: a worker that blocked here could wait for itself (on a pool of
/// one thread, for ever). So a worker runs the pool's pending work meanwhile, the read's own
/// tasks among it; any other thread simply blocks.
fn wait_helping<T>(reading: std::thread::ScopedJoinHandle<'_, T>) -> T {
    if rayon::current_thread_index().is_some() {
        while !reading.is_finished() {
            if !matches!(rayon::yield_now(), Some(rayon::Yield::Executed)) {
                std::thread::sleep(std::time::Duration::from_micros(50));
            }
        }
    }
    reading
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Sorts lines by `order_id`, then (file, row): the order is total and deterministic.
fn sort_lines(lines: &mut [Line], arenas: &[Arena]) {
    lines.par_sort_unstable_by(|a, b| {
        a.order_id(arenas)
            .cmp(&b.order_id(arenas))
            .then(a.file.cmp(&b.file))
            .then(a.row.cmp(&b.row))
    });
}

/// What folding a pass's lines builds: its orders, their customers' keys (first-seen order),
/// the run's category dictionary and the per-file line counts.
struct Folded {
    orders: Orders,
    keys: CustomerKeys,
    categories: Dict,
    counts: LineCounts,
}

/// Customers keyed in first-seen order.
#[derive(Default)]
struct CustomerKeys {
    int: HashMap<i64, u32, FixedState>,
    text: HashMap<Box<str>, u32, FixedState>,
}

/// Per input file: lines collapsed as identical duplicates, cancelled lines, returned lines.
struct LineCounts {
    collapsed: Vec<i64>,
    cancelled: Vec<i64>,
    returned: Vec<i64>,
}

impl LineCounts {
    fn new(files: usize) -> Self {
        LineCounts {
            collapsed: vec![0; files],
            cancelled: vec![0; files],
            returned: vec![0; files],
        }
    }
}

/// A TOML key: bare when it can be, quoted otherwise.
fn toml_key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        k.to_string()
    } else {
        format!("{k:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn text_columns_read_across_chunks() {
        // Parquet row groups and CSV batches arrive as several chunks.
        let mut a = Series::new("c".into(), &[Some("a0"), None, Some("a2")]);
        a.append(&Series::new("c".into(), &[Some("b0")])).unwrap();
        a.append(&Series::new("c".into(), &[None::<&str>, Some("c1")]))
            .unwrap();
        let col = Column::from(a);
        assert_eq!(col.str().unwrap().chunks().len(), 3);
        let t = TextCol::new(&col);
        let got: Vec<Option<&str>> = (0..6).map(|i| t.get(i)).collect();
        assert_eq!(
            got,
            [Some("a0"), None, Some("a2"), Some("b0"), None, Some("c1")]
        );
        assert_eq!(t.uniform, None);
        assert_eq!(TextCol::absent().get(3), None);
        // Equal chunks (the last may be shorter) take the division path.
        let mut b = Series::new("c".into(), &["x0", "x1"]);
        b.append(&Series::new("c".into(), &["y0", "y1"])).unwrap();
        b.append(&Series::new("c".into(), &["z0"])).unwrap();
        let col = Column::from(b);
        let t = TextCol::new(&col);
        assert_eq!(t.uniform, Some(2));
        let got: Vec<Option<&str>> = (0..5).map(|i| t.get(i)).collect();
        assert_eq!(
            got,
            [Some("x0"), Some("x1"), Some("y0"), Some("y1"), Some("z0")]
        );
    }

    fn write_parquet(df: &mut DataFrame, name: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "patronage-input-{}-{name}.parquet",
            std::process::id()
        ));
        let file = fs_err::File::create(&path).unwrap();
        ParquetWriter::new(file.into_parts().0).finish(df).unwrap();
        path
    }

    #[test]
    fn typed_parquet_columns_take_the_fast_path() {
        // Datetime[ms] timestamps, integer customer ids, Float64 amounts with a null.
        let ts = Column::new(
            "OrderDate".into(),
            [1_704_067_200_000i64, 1_704_153_600_000, 1_704_240_000_000],
        )
        .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
        .unwrap();
        let mut df = DataFrame::new(
            3,
            vec![
                Column::new("CustomerID".into(), [7i64, 7, 8]),
                Column::new("order_id".into(), ["a", "b", "c"]),
                ts,
                Column::new("amount".into(), [Some(10.5), Some(-2.0), None]),
            ],
        )
        .unwrap();
        let path = write_parquet(&mut df, "typed");
        let got =
            ingest_orders(std::slice::from_ref(&path), &OrdersSchema::default(), None).unwrap();
        let _ = fs_err::remove_file(&path);
        assert_eq!(got.orders.customer_ids, vec!["7".to_string()]);
        assert_eq!(got.orders.day, vec![19723, 19724]);
        assert_eq!(got.orders.is_purchase, vec![true, false]);
        assert_eq!(got.orders.refund, vec![0.0, 2.0]);
        assert_eq!(got.rejected.len(), 1);
        assert_eq!(got.rejected[0].reason, RejectReason::MissingValue);
        assert_eq!(got.files[0].format, "parquet");
        assert_eq!(got.files[0].rows_read, 3);
    }

    /// Rows of one shop with every order rule at work: lines of one order far apart (across
    /// chunks), identical duplicates, a customer conflict, a timestamp conflict, cancelled and
    /// returned lines, refunds, bad cells, a blank line, a record with a field too many,
    /// categories and discounts.
    const DIRTY: &str = "customer_id,order_id,order_ts,amount,status,discount_amount,category\n\
        c1,o1,2024-01-02 10:00:00,10,completed,1,books\n\
        c2,o2,2024-01-03,20,completed,,toys\n\
        c1,o3,2024-01-04,5,cancelled,,books\n\
        c3,o4,2024-01-05,-7,completed,,\n\
        ,o5,2024-01-05,7,completed,,\n\
        c1,o1,2024-01-02 10:00:00,4,completed,0,games\n\
        \n\
        c2,o2,2024-01-03,20,completed,,toys\n\
        c4,o6,2024-01-06,9,completed,,\n\
        c5,o6,2024-01-06,9,completed,,\n\
        c6,o7,2024-01-07 08:00:00,3,completed,,\n\
        c6,o7,2024-01-07 09:30:00,3,completed,,\n\
        c7,o8,not a date,3,completed,,\n\
        c7,o9,2024-01-08,x,completed,,\n\
        42.0,o10,2024-01-09,8,returned,,toys\n\
        42,o10,2024-01-09,2,completed,-1,toys\n\
        c1,o1,2024-01-02 10:00:00,1,returned,,books\n\
        c8,o11,2024-01-10,6,completed,0.5,books\n\
        c9,o12,2024-01-11,5,completed,,books,one field too many\n\
        c9,o13,2024-01-12,5,completed,,books\n";

    /// A fresh directory for one test's files (removed by the test).
    fn test_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("patronage-input-{name}-{}", std::process::id()));
        fs_err::create_dir_all(&dir).unwrap();
        dir
    }

    /// Orders as comparable rows in a fixed order: (customer, day, amount, refund, purchase,
    /// discount, categories).
    type OrderRow = (String, i32, u64, u64, bool, u64, Vec<String>);

    /// One file read `chunk_rows` rows at a time, without a sink.
    fn read(
        path: &Path,
        schema: &OrdersSchema,
        chunk_rows: usize,
        budget: Option<u64>,
        passes: usize,
    ) -> Ingested {
        let files = [path.to_path_buf()];
        ingest_in_chunks(&files, schema, chunk_rows, budget, passes, None).unwrap()
    }

    /// A routed read: what it returned, and what its sink kept (the pieces since the last
    /// restart, joined), with how many pieces and restarts it heard.
    struct RoutedRead {
        got: Ingested,
        joined: Orders,
        pieces: usize,
        restarts: usize,
    }

    fn read_routed(
        path: &Path,
        schema: &OrdersSchema,
        chunk_rows: usize,
        budget: Option<u64>,
        passes: usize,
    ) -> RoutedRead {
        let mut pieces = Vec::new();
        let mut restarts = 0;
        let files = [path.to_path_buf()];
        let got = ingest_in_chunks(
            &files,
            schema,
            chunk_rows,
            budget,
            passes,
            Some(&mut |p: Piece| {
                match p {
                    Piece::Orders(o) => pieces.push(o),
                    Piece::Restart => {
                        restarts += 1;
                        pieces.clear();
                    }
                }
                Ok(())
            }),
        )
        .unwrap();
        let mut joined = Orders::default();
        let mut at = patronage_features::IdKeys::default();
        for p in &pieces {
            joined.append(p, &mut at);
        }
        RoutedRead {
            got,
            joined,
            pieces: pieces.len(),
            restarts,
        }
    }

    fn sorted_orders(o: &Orders) -> Vec<OrderRow> {
        let mut rows: Vec<OrderRow> = (0..o.len())
            .map(|i| {
                let mut cats: Vec<String> = o
                    .categories(i)
                    .iter()
                    .map(|&c| o.category_names[c as usize].clone())
                    .collect();
                cats.sort();
                (
                    o.customer_ids[o.customer[i] as usize].clone(),
                    o.day[i],
                    o.amount[i].to_bits(),
                    o.refund[i].to_bits(),
                    o.is_purchase[i],
                    o.discount.get(i).map_or(0, |d| d.to_bits()),
                    cats,
                )
            })
            .collect();
        rows.sort();
        rows
    }

    /// Lines are written in place by blocks of rows and orders by pieces of the sorted lines;
    /// refused rows and multi-line orders leave gaps that the blocks and pieces close. Four
    /// blocks of rows, two lines per order, one row in a thousand refused: the orders and
    /// refusals are what the rows say, and what passes with buffers of their own give.
    #[test]
    fn blocks_and_pieces_close_ranks_over_refused_rows() {
        let dir = test_dir("ranks");
        let csv = dir.join("orders.csv");
        let rows = 4 * BLOCK_ROWS - 100;
        let mut text = String::from("customer_id,order_id,order_ts,amount\n");
        for i in 0..rows {
            let customer = if i % 1000 == 7 {
                String::new()
            } else {
                format!("c{}", (i / 2) % 997)
            };
            let amount = if i % 2 == 0 { 1.0 } else { 2.0 };
            text.push_str(&format!(
                "{customer},o{:06},2024-03-{:02},{amount}\n",
                i / 2,
                1 + (i / 2) % 28
            ));
        }
        fs_err::write(&csv, text).unwrap();
        let schema = OrdersSchema::default();
        let one = read(&csv, &schema, CHUNK_ROWS, None, 1);
        let refused = (0..rows).filter(|i| i % 1000 == 7).count();
        assert_eq!(one.passes, 1);
        // The ids are in order: the orders were folded chunk by chunk.
        assert!(one.streamed);
        assert_eq!(one.rejected.len(), refused);
        assert!(one
            .rejected
            .iter()
            .all(|r| r.reason == RejectReason::MissingValue && r.row % 1000 == 8));
        assert_eq!(one.orders.len(), rows / 2);
        // Every order is 1 + 2; an order that lost its second line to a refusal is 1.
        let total: f64 = one.orders.amount.iter().sum();
        assert_eq!(total, (3 * rows / 2 - 2 * refused) as f64);
        // Each order keeps its customer and day: order k is customer k mod 997's, on March
        // 1 + k mod 28.
        let o = &one.orders;
        let first_day = *o.day.iter().min().unwrap();
        let mut got: Vec<(String, Day)> = (0..o.len())
            .map(|i| {
                (
                    o.customer_ids[o.customer[i] as usize].clone(),
                    o.day[i] - first_day,
                )
            })
            .collect();
        let mut expected: Vec<(String, Day)> = (0..rows / 2)
            .map(|k| (format!("c{}", k % 997), (k % 28) as Day))
            .collect();
        got.sort();
        expected.sort();
        assert_eq!(got, expected);
        // Passes asked for: each reads its share of the orders.
        let passes = read(&csv, &schema, CHUNK_ROWS, None, 3);
        assert!(passes.passes == 3 && !passes.streamed);
        assert_eq!(sorted_orders(&passes.orders), sorted_orders(&one.orders));
        assert_eq!(passes.rejected, one.rejected);
        // A budget a third of the lines: an input in order still streams, in one pass.
        let budget = Some(LINE_BYTES * (rows as u64 / 3));
        let streamed = read(&csv, &schema, CHUNK_ROWS, budget, 1);
        assert!(streamed.passes == 1 && streamed.streamed);
        assert_eq!(streamed.orders, one.orders);
        assert_eq!(streamed.rejected, one.rejected);
        // Chunks that cut orders in two (an odd number of rows): the order waits for its
        // second line, and the result is the whole read's, order for order.
        for chunk_rows in [1001, 4096] {
            let got = read(&csv, &schema, chunk_rows, None, 1);
            assert!(got.streamed);
            assert_eq!(got.orders, one.orders, "chunks of {chunk_rows}");
            assert_eq!(got.rejected, one.rejected);
            assert_eq!(got.files, one.files);
        }
        // One order out of place: the pass starts over holding every line; the same orders.
        let mut lines: Vec<String> = fs_err::read_to_string(&csv)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        let moved = lines.remove(2);
        lines.push(moved);
        let shuffled = dir.join("shuffled.csv");
        fs_err::write(&shuffled, lines.join("\n") + "\n").unwrap();
        let got = read(&shuffled, &schema, 4096, None, 1);
        assert!(!got.streamed);
        assert_eq!(sorted_orders(&got.orders), sorted_orders(&one.orders));
        assert_eq!(got.rejected.len(), one.rejected.len());
        // Under that budget the restarts (out of order, then the order's lines apart) fall
        // back to the passes it plans; routed, the sink hears each restart and forgets the
        // pieces it had.
        let routed = read_routed(&shuffled, &schema, 4096, budget, 1);
        let got = routed.got;
        assert!(got.passes >= 3 && !got.streamed);
        assert_eq!((routed.restarts, routed.pieces), (2, got.passes));
        assert_eq!(sorted_orders(&routed.joined), sorted_orders(&one.orders));
        assert_eq!(got.rejected.len(), one.rejected.len());

        // The orders last to first, each order's lines together (an export by customer whose
        // ids are not zero-padded looks like this): still one streamed pass under the budget,
        // routed or not, with the same orders and refusals.
        let original: Vec<String> = fs_err::read_to_string(&csv)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        let mut reversed = vec![original[0].clone()];
        for pair in original[1..].chunks(2).rev() {
            reversed.extend(pair.iter().cloned());
        }
        let grouped = dir.join("grouped.csv");
        fs_err::write(&grouped, reversed.join("\n") + "\n").unwrap();
        for chunk_rows in [1001, 4096] {
            let got = read(&grouped, &schema, chunk_rows, budget, 1);
            assert!(got.passes == 1 && got.streamed, "chunks of {chunk_rows}");
            assert_eq!(sorted_orders(&got.orders), sorted_orders(&one.orders));
            assert_eq!(got.rejected.len(), one.rejected.len());
            let routed = read_routed(&grouped, &schema, chunk_rows, budget, 1);
            assert!(routed.got.passes == 1 && routed.got.streamed);
            // One restart: the read found the ids out of order, then streamed them grouped.
            assert_eq!(routed.restarts, 1);
            assert_eq!(sorted_orders(&routed.joined), sorted_orders(&one.orders));
        }
        // Order 5's first line again at the very end: a repeat, found in the last order of
        // the read, so the passes.
        let mut repeated = reversed.clone();
        repeated.push(original[1 + 2 * 5].clone());
        let again = dir.join("again.csv");
        fs_err::write(&again, repeated.join("\n") + "\n").unwrap();
        let got = read(&again, &schema, 4096, budget, 1);
        assert!(got.passes >= 3 && !got.streamed);
        let _ = fs_err::remove_dir_all(&dir);
    }

    #[test]
    fn a_line_takes_64_bytes() {
        assert_eq!(std::mem::size_of::<Line>(), 64);
    }

    #[test]
    fn chunked_ingest_equals_a_whole_file_read() {
        let dir = test_dir("chunks");
        let csv = dir.join("orders.csv");
        fs_err::write(&csv, DIRTY).unwrap();
        let schema = OrdersSchema::default();
        let whole = read(&csv, &schema, usize::MAX, None, 1);
        assert_eq!(whole.files[0].rows_read, 19);
        assert_eq!(whole.files[0].blank_lines_skipped, 1);
        assert_eq!(whole.files[0].duplicates_collapsed, 1);
        let reasons: Vec<(i64, RejectReason)> =
            whole.rejected.iter().map(|r| (r.row, r.reason)).collect();
        assert_eq!(
            reasons,
            [
                (5, RejectReason::MissingValue),
                (9, RejectReason::ConflictingDuplicate),
                (10, RejectReason::ConflictingDuplicate),
                (11, RejectReason::ConflictingDuplicate),
                (12, RejectReason::ConflictingDuplicate),
                (13, RejectReason::InvalidTimestamp),
                (14, RejectReason::InvalidNumber),
                (16, RejectReason::InvalidNumber),
                (19, RejectReason::TooManyFields),
            ]
        );
        let ts_conflict = &whole.rejected[4];
        assert_eq!(ts_conflict.value.as_deref(), Some("2024-01-07 09:30:00"));
        assert!(
            ts_conflict
                .message
                .contains("(\"2024-01-07 08:00:00\" vs \"2024-01-07 09:30:00\")"),
            "{}",
            ts_conflict.message
        );
        // o1: 10 + 4 completed (one returned line nets to zero), discounts 1 + 0, two categories.
        let o = &whole.orders;
        let c1 = o.customer_ids.iter().position(|c| c == "c1").unwrap() as u32;
        let first = o.customer.iter().position(|&c| c == c1).unwrap();
        assert_eq!((o.amount[first], o.discount[first]), (14.0, 1.0));
        assert_eq!(o.categories(first).len(), 2);

        let parquet = dir.join("orders.parquet");
        let mut df = CsvReadOptions::default()
            .with_infer_schema_length(Some(0))
            .map_parse_options(|o| o.with_truncate_ragged_lines(true))
            .try_into_reader_with_file_path(Some(csv.clone()))
            .unwrap()
            .finish()
            .unwrap();
        let file = fs_err::File::create(&parquet).unwrap();
        ParquetWriter::new(file.into_parts().0)
            .with_row_group_size(Some(2))
            .finish(&mut df)
            .unwrap();
        for (path, sizes) in [(&csv, [1, 2, 3, 5, 7]), (&parquet, [1, 2, 4, 6, 100])] {
            let reference = read(path, &schema, usize::MAX, None, 1);
            assert_eq!(reference.passes, 1);
            for rows in sizes {
                let got = read(path, &schema, rows, None, 1);
                assert_eq!(got.orders, reference.orders, "{path:?} in chunks of {rows}");
                assert_eq!(
                    got.rejected, reference.rejected,
                    "{path:?} in chunks of {rows}"
                );
                assert_eq!(got.files, reference.files, "{path:?} in chunks of {rows}");
            }
            // Passes by order_id hash: the same orders (in pass order), rejections and counts.
            for lines_per_pass in [1, 3, 5] {
                let budget = Some(LINE_BYTES * lines_per_pass);
                let got = read(path, &schema, 2, budget, 1);
                // An input in order streams in one pass whatever the budget.
                assert!(
                    got.passes > 1 || got.streamed,
                    "{lines_per_pass} lines a pass"
                );
                assert_eq!(sorted_orders(&got.orders), sorted_orders(&reference.orders));
                assert_eq!(got.rejected, reference.rejected);
                assert_eq!(got.files, reference.files);
            }
            // Routed: each pass's orders (or, streaming, each chunk's) go to the sink; a
            // restart forgets what was sent; joined up they are the whole's.
            for (passes, budget) in [(1, None), (2, None), (3, None), (1, Some(LINE_BYTES * 3))] {
                let routed = read_routed(path, &schema, 2, budget, passes);
                let got = routed.got;
                if got.streamed {
                    assert_eq!(got.passes, 1);
                } else {
                    assert_eq!(got.passes, routed.pieces);
                    assert!(got.passes >= passes);
                }
                assert!(got.orders.is_empty());
                assert_eq!(
                    sorted_orders(&routed.joined),
                    sorted_orders(&reference.orders)
                );
                assert_eq!(got.rejected, reference.rejected);
                assert_eq!(got.files, reference.files);
            }
        }
        let _ = fs_err::remove_dir_all(&dir);
    }

    #[test]
    fn order_lines_are_summed_and_configured_status_values_apply() {
        let dir = test_dir("lines");
        let path = dir.join("lines.csv");
        fs_err::write(
            &path,
            "cust;oid;when;total;state\n\
             a;1;01/02/2024;10;OK\n\
             a;1;01/02/2024;5;OK\n\
             a;2;03/02/2024;7;X\n",
        )
        .unwrap();
        // Semicolons are not our separator: the file reads as one column and the error says so.
        let schema = OrdersSchema::default();
        assert!(matches!(
            ingest_orders(std::slice::from_ref(&path), &schema, None),
            Err(InputError::ColumnNotFound { .. })
        ));

        fs_err::write(&path, "cust,oid,when,total,state\na,1,01/02/2024,10,OK\na,1,01/02/2024,5,OK\na,2,03/02/2024,7,X\n").unwrap();
        let schema: OrdersSchema = toml_schema(
            r#"timestamp_format = "%d/%m/%Y"
               [columns]
               customer_id = "cust"
               order_id = "oid"
               order_ts = "when"
               amount = "total"
               status = "state"
               [status_values]
               OK = "completed"
               X = "cancelled""#,
        );
        let got = ingest_orders(std::slice::from_ref(&path), &schema, None).unwrap();
        let _ = fs_err::remove_dir_all(&dir);
        assert_eq!(got.orders.amount, vec![15.0]);
        assert_eq!(got.files[0].cancelled_lines, 1);
        assert_eq!(got.files[0].rows_accepted, 3);
    }

    fn toml_schema(text: &str) -> OrdersSchema {
        serde::Deserialize::deserialize(toml_value(text)).unwrap()
    }

    fn toml_value(text: &str) -> toml::Value {
        text.parse::<toml::Table>().map(toml::Value::Table).unwrap()
    }
}
