//! Validation of customer profiles (the optional `customers` input, docs/design.md §2) into
//! [`Profiles`]: one row per customer.
//!
//! Columns (canonical names; `[customers.columns]` maps an export's own): `customer_id`
//! (required), `signup_ts` (timestamp, as for orders), `membership_tier` (text; with
//! `tier_order` it must be one of the configured tiers), `points_balance` (number),
//! `subscription_active` and `email_opt_in` (true/false, yes/no, 1/0, t/f, y/n),
//! `saved_payment_methods`, `saved_addresses`, `referrals`, `reviews_written` (whole numbers
//! ≥ 0). A column the export does not have is null for everyone (never a fake zero).
//!
//! Row rules, first failing wins: invalid UTF-8 → `invalid_utf8`; empty `customer_id` →
//! `missing_value`; a value that does not parse → `invalid_timestamp`, `invalid_number`,
//! `invalid_boolean`, or (tier outside `tier_order`) `unknown_value`. Rows sharing a
//! `customer_id`: identical copies collapse into one (counted), differing ones are all rejected
//! (`conflicting_duplicate`). Per file, `rows_read = rows_accepted + rows_rejected`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use patronage_features::{Labels, Nullable, Profiles};
use rayon::prelude::*;
use serde::Deserialize;

use crate::columns::{default_null_values, separator_byte, ColumnSpec};
use crate::error::InputError;
use crate::orders::{FileStats, RejectReason, RejectedRow};
use crate::parse::{check_amount, micros_to_day, parse_timestamp_micros};
use crate::text::{clean, has_replacement_char, Key, TextCol};
use crate::text_input::{read_text_file, TextFile};

/// `[customers]` section of the config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomersSchema {
    /// Canonical column → the export's column name.
    #[serde(default)]
    pub columns: CustomerColumns,
    /// A chrono format for `signup_ts` (ISO-8601, compact dates and epoch numbers need none).
    pub timestamp_format: Option<String>,
    /// CSV separator (one character or "tab"); detected when unset.
    pub separator: Option<String>,
    #[serde(default = "default_null_values")]
    pub null_values: Vec<String>,
    /// Membership tiers from lowest to highest (e.g. `["bronze", "silver", "gold"]`); a tier's
    /// rank is its position, 1 = lowest. Empty: tiers are kept as text, without a rank.
    #[serde(default)]
    pub tier_order: Vec<String>,
}

impl Default for CustomersSchema {
    fn default() -> Self {
        CustomersSchema {
            columns: CustomerColumns::default(),
            timestamp_format: None,
            separator: None,
            null_values: default_null_values(),
            tier_order: Vec::new(),
        }
    }
}

/// Source column names for each canonical profile column; `None` means "find it by name".
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerColumns {
    pub customer_id: Option<String>,
    pub signup_ts: Option<String>,
    pub membership_tier: Option<String>,
    pub points_balance: Option<String>,
    pub subscription_active: Option<String>,
    pub saved_payment_methods: Option<String>,
    pub saved_addresses: Option<String>,
    pub email_opt_in: Option<String>,
    pub referrals: Option<String>,
    pub reviews_written: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Id,
    Timestamp,
    Tier,
    Number,
    Count,
    Flag,
}

/// The profile columns: spec, kind, and the configured source name.
fn specs(c: &CustomerColumns) -> [(ColumnSpec, Kind, Option<&str>); 10] {
    let spec = |name, required, aliases| ColumnSpec {
        name,
        required,
        aliases,
    };
    [
        (
            spec("customer_id", true, &[]),
            Kind::Id,
            c.customer_id.as_deref(),
        ),
        (
            spec(
                "signup_ts",
                false,
                &["signupdate", "signup", "createdat", "registeredat"],
            ),
            Kind::Timestamp,
            c.signup_ts.as_deref(),
        ),
        (
            spec("membership_tier", false, &["tier", "loyaltytier"]),
            Kind::Tier,
            c.membership_tier.as_deref(),
        ),
        (
            spec("points_balance", false, &["points", "loyaltypoints"]),
            Kind::Number,
            c.points_balance.as_deref(),
        ),
        (
            spec(
                "subscription_active",
                false,
                &["subscribed", "subscription"],
            ),
            Kind::Flag,
            c.subscription_active.as_deref(),
        ),
        (
            spec(
                "saved_payment_methods",
                false,
                &["savedpayments", "paymentmethods"],
            ),
            Kind::Count,
            c.saved_payment_methods.as_deref(),
        ),
        (
            spec("saved_addresses", false, &["addresses"]),
            Kind::Count,
            c.saved_addresses.as_deref(),
        ),
        (
            spec(
                "email_opt_in",
                false,
                &["emailoptin", "optin", "newsletter"],
            ),
            Kind::Flag,
            c.email_opt_in.as_deref(),
        ),
        (
            spec("referrals", false, &[]),
            Kind::Count,
            c.referrals.as_deref(),
        ),
        (
            spec("reviews_written", false, &["reviews"]),
            Kind::Count,
            c.reviews_written.as_deref(),
        ),
    ]
}

/// A parsed profile cell, borrowed from its file.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cell<'a> {
    Null,
    Id(Key<'a>),
    Day(i32),
    Text(&'a str),
    Number(f64),
    Count(i64),
    Flag(bool),
}

impl<'a> Cell<'a> {
    fn day(self) -> Option<i32> {
        match self {
            Cell::Day(d) => Some(d),
            _ => None,
        }
    }

    fn text(self) -> Option<&'a str> {
        match self {
            Cell::Text(t) => Some(t),
            _ => None,
        }
    }

    fn number(self) -> Option<f64> {
        match self {
            Cell::Number(x) => Some(x),
            _ => None,
        }
    }

    fn count(self) -> Option<i64> {
        match self {
            Cell::Count(x) => Some(x),
            _ => None,
        }
    }

    fn flag(self) -> Option<bool> {
        match self {
            Cell::Flag(x) => Some(x),
            _ => None,
        }
    }
}

/// One column of one file, parsed: row `r` is the file's record `r` (null where the record was
/// skipped or refused).
enum Parsed<'a> {
    Ids(Vec<Option<Key<'a>>>),
    Days(Nullable<i32>),
    Texts(Vec<Option<&'a str>>),
    Numbers(Nullable<f64>),
    Counts(Nullable<i64>),
    Flags(Nullable<bool>),
}

impl<'a> Parsed<'a> {
    fn new(kind: Kind) -> Self {
        match kind {
            Kind::Id => Parsed::Ids(Vec::new()),
            Kind::Timestamp => Parsed::Days(Nullable::default()),
            Kind::Tier => Parsed::Texts(Vec::new()),
            Kind::Number => Parsed::Numbers(Nullable::default()),
            Kind::Count => Parsed::Counts(Nullable::default()),
            Kind::Flag => Parsed::Flags(Nullable::default()),
        }
    }

    /// Appends a cell of this column's kind (`Null` for any kind).
    fn push(&mut self, c: Cell<'a>) {
        match (self, c) {
            (Parsed::Ids(v), Cell::Id(k)) => v.push(Some(k)),
            (Parsed::Ids(v), _) => v.push(None),
            (Parsed::Days(v), Cell::Day(d)) => v.push(Some(d)),
            (Parsed::Days(v), _) => v.push(None),
            (Parsed::Texts(v), Cell::Text(t)) => v.push(Some(t)),
            (Parsed::Texts(v), _) => v.push(None),
            (Parsed::Numbers(v), Cell::Number(x)) => v.push(Some(x)),
            (Parsed::Numbers(v), _) => v.push(None),
            (Parsed::Counts(v), Cell::Count(x)) => v.push(Some(x)),
            (Parsed::Counts(v), _) => v.push(None),
            (Parsed::Flags(v), Cell::Flag(x)) => v.push(Some(x)),
            (Parsed::Flags(v), _) => v.push(None),
        }
    }

    fn append(&mut self, other: Parsed<'a>) {
        match (self, other) {
            (Parsed::Ids(a), Parsed::Ids(b)) => a.extend(b),
            (Parsed::Days(a), Parsed::Days(b)) => a.append(b),
            (Parsed::Texts(a), Parsed::Texts(b)) => a.extend(b),
            (Parsed::Numbers(a), Parsed::Numbers(b)) => a.append(b),
            (Parsed::Counts(a), Parsed::Counts(b)) => a.append(b),
            (Parsed::Flags(a), Parsed::Flags(b)) => a.append(b),
            _ => unreachable!("blocks of one column share its kind"),
        }
    }

    fn cell(&self, row: usize) -> Cell<'a> {
        let cell = match self {
            Parsed::Ids(v) => v[row].map(Cell::Id),
            Parsed::Days(v) => v.get(row).map(Cell::Day),
            Parsed::Texts(v) => v[row].map(Cell::Text),
            Parsed::Numbers(v) => v.get(row).map(Cell::Number),
            Parsed::Counts(v) => v.get(row).map(Cell::Count),
            Parsed::Flags(v) => v.get(row).map(Cell::Flag),
        };
        cell.unwrap_or(Cell::Null)
    }
}

/// A refused cell: 0-based row, the reason, the message, the raw value.
type Refusal<'a> = (usize, RejectReason, String, Option<&'a str>);

/// Records parsed per task: big enough to amortize the task, small enough to spread the work.
const BLOCK: usize = 1 << 15;

/// What ingesting profiles produced.
#[derive(Debug, Clone, Default)]
pub struct IngestedCustomers {
    pub profiles: Profiles,
    pub rejected: Vec<RejectedRow>,
    pub files: Vec<FileStats>,
    pub warnings: Vec<String>,
}

fn parse_flag(s: &str) -> Option<bool> {
    let is = |words: [&str; 5]| words.iter().any(|w| s.eq_ignore_ascii_case(w));
    if is(["true", "t", "yes", "y", "1"]) {
        Some(true)
    } else if is(["false", "f", "no", "n", "0"]) {
        Some(false)
    } else {
        None
    }
}

/// One cleaned, non-null value of a `kind` column (`name`: the canonical column).
fn parse_cell<'a>(
    kind: Kind,
    v: &'a str,
    name: &str,
    schema: &CustomersSchema,
    tiers: &HashMap<String, i64>,
) -> Result<Cell<'a>, (RejectReason, String)> {
    let bad = |reason: RejectReason, what: &str| {
        (
            reason,
            format!("cannot read \"{v}\" as {what} for `{name}`"),
        )
    };
    match kind {
        Kind::Id => Ok(Cell::Id(Key::of_text(v))),
        Kind::Timestamp => parse_timestamp_micros(v, schema.timestamp_format.as_deref())
            .map(|us| Cell::Day(micros_to_day(us)))
            .map_err(|hint| {
                (
                    RejectReason::InvalidTimestamp,
                    format!("cannot parse \"{v}\" as a timestamp ({hint})"),
                )
            }),
        Kind::Tier => {
            if tiers.is_empty() || tiers.contains_key(&v.to_lowercase()) {
                Ok(Cell::Text(v))
            } else {
                Err((
                    RejectReason::UnknownValue,
                    format!(
                        "tier \"{v}\" is not in customers.tier_order ({})",
                        schema.tier_order.join(", ")
                    ),
                ))
            }
        }
        Kind::Number => v
            .parse::<f64>()
            .ok()
            .and_then(|x| check_amount(x).ok())
            .map(Cell::Number)
            .ok_or_else(|| bad(RejectReason::InvalidNumber, "a finite number")),
        Kind::Count => v
            .parse::<f64>()
            .ok()
            .filter(|x| x.fract() == 0.0 && (0.0..1e15).contains(x))
            .map(|x| Cell::Count(x as i64))
            .ok_or_else(|| bad(RejectReason::InvalidNumber, "a whole number ≥ 0")),
        Kind::Flag => parse_flag(v)
            .map(Cell::Flag)
            .ok_or_else(|| bad(RejectReason::InvalidBoolean, "true/false (yes/no, 1/0)")),
    }
}

/// Parses one text column of a file of `height` records, blocks of records in parallel; the
/// records `skip` marks are null. Returns the cells and the refused cells, in row order.
#[allow(clippy::too_many_arguments)]
fn parse_column<'a>(
    col: &TextCol<'a>,
    height: usize,
    skip: &[bool],
    kind: Kind,
    name: &str,
    source_name: &str,
    schema: &CustomersSchema,
    tiers: &HashMap<String, i64>,
) -> (Parsed<'a>, Vec<Refusal<'a>>) {
    let blocks: Vec<(Parsed<'a>, Vec<Refusal<'a>>)> = (0..height.div_ceil(BLOCK))
        .into_par_iter()
        .map(|b| {
            let mut cells = Parsed::new(kind);
            let mut refused = Vec::new();
            let rows = b * BLOCK..((b + 1) * BLOCK).min(height);
            for (row, &skipped) in rows.clone().zip(&skip[rows]) {
                if skipped {
                    cells.push(Cell::Null);
                    continue;
                }
                let raw = col.get(row);
                let parsed = if raw.is_some_and(has_replacement_char) {
                    Err((
                        RejectReason::InvalidUtf8,
                        "the cell holds bytes that are not valid UTF-8".to_string(),
                    ))
                } else {
                    match raw.and_then(|s| clean(s, &schema.null_values)) {
                        Some(v) => parse_cell(kind, v, name, schema, tiers),
                        None if kind == Kind::Id => Err((
                            RejectReason::MissingValue,
                            format!("`{source_name}` is empty"),
                        )),
                        None => Ok(Cell::Null),
                    }
                };
                match parsed {
                    Ok(cell) => cells.push(cell),
                    Err((reason, message)) => {
                        cells.push(Cell::Null);
                        refused.push((row, reason, message, raw));
                    }
                }
            }
            (cells, refused)
        })
        .collect();
    let mut out = Parsed::new(kind);
    let mut refused = Vec::new();
    for (cells, r) in blocks {
        out.append(cells);
        refused.extend(r);
    }
    (out, refused)
}

/// Reads and validates every profile file.
pub fn ingest_customers(
    files: &[PathBuf],
    schema: &CustomersSchema,
) -> Result<IngestedCustomers, InputError> {
    let separator = separator_byte("customers", schema.separator.as_deref())
        .map_err(InputError::InvalidConfig)?;
    let tiers: HashMap<String, i64> = schema
        .tier_order
        .iter()
        .enumerate()
        .map(|(i, t)| (t.trim().to_lowercase(), i as i64 + 1))
        .collect();
    let specs = specs(&schema.columns);
    let spec_list: Vec<ColumnSpec> = specs.iter().map(|s| s.0).collect();
    let configured: Vec<Option<&str>> = specs.iter().map(|s| s.2).collect();
    let read: Vec<TextFile> = files
        .iter()
        .map(|path| {
            read_text_file(
                path,
                &spec_list,
                &configured,
                "customers",
                separator,
                "a profile value (text, number, boolean or timestamp)",
            )
        })
        .collect::<Result<_, _>>()?;
    let mut rejected = Vec::new();
    let mut stats = Vec::new();
    let mut present = vec![false; specs.len()];
    // Per file, per canonical column (index into `specs`), its parsed cells.
    let mut parsed: Vec<Vec<Option<Parsed<'_>>>> = Vec::with_capacity(read.len());
    // (id, file, row) of every accepted record.
    let mut accepted: Vec<(Key<'_>, u32, u32)> = Vec::new();
    for (f, (path, file)) in files.iter().zip(&read).enumerate() {
        let frame = &file.frame;
        let height = frame.height;
        let path_text = path.display().to_string();
        let mut by_reason: BTreeMap<String, i64> = BTreeMap::new();
        let mut reject = |row: usize,
                          column: &str,
                          value: Option<&str>,
                          reason: RejectReason,
                          message: String| {
            *by_reason.entry(reason.as_str().to_string()).or_default() += 1;
            rejected.push(RejectedRow {
                source_file: path_text.clone(),
                row: row as i64 + 1,
                column: column.to_string(),
                value: value.map(str::to_string),
                reason,
                message,
            });
        };
        // Skipped (blank) and refused records; a record's first refused column, in column
        // order, is its reason.
        let mut skip = vec![false; height];
        for &row in &frame.blank_rows {
            skip[row] = true;
        }
        let mut refused = 0i64;
        for &row in &frame.ragged_rows {
            skip[row] = true;
            refused += 1;
            reject(
                row,
                "",
                None,
                RejectReason::TooManyFields,
                "the record has more fields than the header".into(),
            );
        }
        let mut columns: Vec<Option<Parsed<'_>>> = (0..specs.len()).map(|_| None).collect();
        let found = &file.file.source.columns;
        for (m, (k, i)) in file.file.mapped().into_iter().enumerate() {
            present[k] = true;
            let (spec, kind, _) = &specs[k];
            let col = TextCol::new(&file.text[m]);
            let (cells, refusals) = parse_column(
                &col, height, &skip, *kind, spec.name, &found[i], schema, &tiers,
            );
            for (row, reason, message, raw) in refusals {
                if !skip[row] {
                    skip[row] = true;
                    refused += 1;
                    reject(row, &found[i], raw, reason, message);
                }
            }
            columns[k] = Some(cells);
        }
        if let Some(Parsed::Ids(ids)) = &columns[0] {
            let file_accepted: Vec<(Key<'_>, u32, u32)> = ids
                .par_iter()
                .zip(&skip)
                .enumerate()
                .filter(|(_, (_, skip))| !**skip)
                .filter_map(|(row, (id, _))| id.map(|id| (id, f as u32, row as u32)))
                .collect();
            accepted.extend(file_accepted);
        }
        let rows_read = (height - frame.blank_rows.len()) as i64;
        stats.push(FileStats {
            rows_read,
            rows_accepted: rows_read - refused,
            rows_rejected: refused,
            blank_lines_skipped: frame.blank_rows.len() as i64,
            rejected_by_reason: by_reason,
            ..file.file.stats(&spec_list)
        });
        parsed.push(columns);
    }

    // Records sharing an id: identical copies collapse into the first, differing ones are all
    // refused. Sorted by (id, file, row), so the first copy is the earliest.
    accepted.par_sort_unstable();
    let cell = |f: u32, row: u32, k: usize| {
        parsed[f as usize][k]
            .as_ref()
            .map_or(Cell::Null, |c| c.cell(row as usize))
    };
    let same = |a: &(Key<'_>, u32, u32), b: &(Key<'_>, u32, u32)| {
        (1..specs.len()).all(|k| cell(a.1, a.2, k) == cell(b.1, b.2, k))
    };
    let mut first_rows: Vec<(Key<'_>, u32, u32)> = Vec::new();
    let mut start = 0;
    while start < accepted.len() {
        let mut end = start + 1;
        while end < accepted.len() && accepted[end].0 == accepted[start].0 {
            end += 1;
        }
        let copies = &accepted[start..end];
        start = end;
        let first = &copies[0];
        if let Some(other) = copies[1..].iter().find(|c| !same(first, c)) {
            let id = first.0.to_string();
            for &(_, file, row) in copies {
                let st = &mut stats[file as usize];
                st.rows_accepted -= 1;
                st.rows_rejected += 1;
                *st.rejected_by_reason
                    .entry(RejectReason::ConflictingDuplicate.as_str().into())
                    .or_default() += 1;
                rejected.push(RejectedRow {
                    source_file: st.path.clone(),
                    row: row as i64 + 1,
                    column: "customer_id".into(),
                    value: Some(id.clone()),
                    reason: RejectReason::ConflictingDuplicate,
                    message: format!(
                        "customer_id \"{id}\" has {} profile rows that differ (e.g. {} row {} vs {} row {}); none of them were used",
                        copies.len(),
                        stats_path(files, first.1 as usize),
                        first.2 + 1,
                        stats_path(files, other.1 as usize),
                        other.2 + 1
                    ),
                });
            }
            continue;
        }
        for &(_, file, _) in &copies[1..] {
            stats[file as usize].duplicates_collapsed += 1;
        }
        first_rows.push(*first);
    }
    drop(accepted);
    let ids: Vec<String> = first_rows.par_iter().map(|r| r.0.to_string()).collect();

    // The accepted profiles as columns, gathered in parallel from their first records.
    fn gather<'a, T: Copy + Default + Send>(
        rows: &[(Key<'a>, u32, u32)],
        cell: &(impl Fn(u32, u32) -> Cell<'a> + Sync),
        pick: fn(Cell<'a>) -> Option<T>,
    ) -> Nullable<T> {
        rows.par_iter().map(|&(_, f, r)| pick(cell(f, r))).collect()
    }
    let column = |k: usize| move |f: u32, r: u32| cell(f, r, k);
    let membership_tier: Labels = first_rows
        .iter()
        .map(|&(_, f, r)| cell(f, r, 2).text())
        .collect();
    // A tier's rank is looked up once per distinct tier, not per customer.
    let rank: Vec<Option<i64>> = membership_tier
        .names()
        .iter()
        .map(|t| tiers.get(&t.to_lowercase()).copied())
        .collect();
    let membership_tier_rank = membership_tier
        .codes()
        .iter()
        .map(|c| c.and_then(|c| rank[c as usize]))
        .collect();
    let profiles = Profiles {
        customer_ids: ids,
        signup_day: gather(&first_rows, &column(1), Cell::day),
        membership_tier,
        membership_tier_rank,
        points_balance: gather(&first_rows, &column(3), Cell::number),
        subscription_active: gather(&first_rows, &column(4), Cell::flag),
        saved_payment_methods: gather(&first_rows, &column(5), Cell::count),
        saved_addresses: gather(&first_rows, &column(6), Cell::count),
        email_opt_in: gather(&first_rows, &column(7), Cell::flag),
        referrals: gather(&first_rows, &column(8), Cell::count),
        reviews_written: gather(&first_rows, &column(9), Cell::count),
        columns_present: specs
            .iter()
            .zip(&present)
            .filter(|(_, p)| **p)
            .map(|(s, _)| s.0.name.to_string())
            .collect(),
    };
    drop(parsed);
    rejected.sort_by(|a, b| a.source_file.cmp(&b.source_file).then(a.row.cmp(&b.row)));
    let mut warnings = Vec::new();
    for st in &stats {
        if !st.unused_columns.is_empty() {
            warnings.push(format!(
                "{}: columns not used: {}",
                st.path,
                st.unused_columns
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    Ok(IngestedCustomers {
        profiles,
        rejected,
        files: stats,
        warnings,
    })
}

fn stats_path(files: &[PathBuf], f: usize) -> String {
    files[f].display().to_string()
}
