//! Validation of customer profiles (the optional `customers` input, DESIGN §2) into
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

use patronage_features::Profiles;
use serde::Deserialize;

use crate::columns::{default_null_values, separator_byte, ColumnSpec};
use crate::error::InputError;
use crate::orders::{FileStats, RejectReason, RejectedRow};
use crate::parse::{check_amount, micros_to_day, parse_timestamp_micros};
use crate::text::{clean, has_replacement_char, integral_id, TextCol};
use crate::text_input::read_text_file;

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

/// A parsed profile cell.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Day(i32),
    Text(String),
    Number(f64),
    Count(i64),
    Flag(bool),
}

/// What ingesting profiles produced.
#[derive(Debug, Clone, Default)]
pub struct IngestedCustomers {
    pub profiles: Profiles,
    pub rejected: Vec<RejectedRow>,
    pub files: Vec<FileStats>,
    pub warnings: Vec<String>,
}

fn parse_flag(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "1" => Some(true),
        "false" | "f" | "no" | "n" | "0" => Some(false),
        _ => None,
    }
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
    // customer id → (file, row, cells) of its accepted row.
    let mut rows: BTreeMap<String, Vec<(usize, usize, Vec<Cell>)>> = BTreeMap::new();
    let mut rejected = Vec::new();
    let mut stats = Vec::new();
    let mut present = vec![false; specs.len()];
    let mut warnings = Vec::new();
    for (f, path) in files.iter().enumerate() {
        let file = read_text_file(
            path,
            &spec_list,
            &configured,
            "customers",
            separator,
            "a profile value (text, number, boolean or timestamp)",
        )?;
        let mapped = file.file.mapped();
        for &(k, _) in &mapped {
            present[k] = true;
        }
        let found = &file.file.source.columns;
        let frame = &file.frame;
        let cols: Vec<TextCol> = file.text.iter().map(TextCol::new).collect();
        let path_text = path.display().to_string();
        let mut file_rejected = 0i64;
        let mut blank = 0i64;
        let mut by_reason: BTreeMap<String, i64> = BTreeMap::new();
        let mut reject = |row: usize,
                          column: &str,
                          value: Option<&str>,
                          reason: RejectReason,
                          message: String,
                          rejected: &mut Vec<RejectedRow>| {
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
        'rows: for row in 0..frame.height {
            if frame.blank_rows.binary_search(&row).is_ok() {
                blank += 1;
                continue;
            }
            if frame.ragged_rows.binary_search(&row).is_ok() {
                reject(
                    row,
                    "",
                    None,
                    RejectReason::TooManyFields,
                    "the record has more fields than the header".into(),
                    &mut rejected,
                );
                file_rejected += 1;
                continue;
            }
            let mut cells = vec![Cell::Null; specs.len()];
            let mut id = None;
            for (m, &(k, i)) in mapped.iter().enumerate() {
                let (spec, kind, _) = &specs[k];
                let raw = cols[m].get(row);
                let name = &found[i];
                if raw.is_some_and(has_replacement_char) {
                    reject(
                        row,
                        name,
                        raw,
                        RejectReason::InvalidUtf8,
                        "the cell holds bytes that are not valid UTF-8".into(),
                        &mut rejected,
                    );
                    file_rejected += 1;
                    continue 'rows;
                }
                let value = raw.and_then(|s| clean(s, &schema.null_values));
                let Some(v) = value else {
                    if *kind == Kind::Id {
                        reject(
                            row,
                            name,
                            raw,
                            RejectReason::MissingValue,
                            format!("`{name}` is empty"),
                            &mut rejected,
                        );
                        file_rejected += 1;
                        continue 'rows;
                    }
                    continue;
                };
                let bad = |reason: RejectReason, what: &str| {
                    (
                        reason,
                        format!("cannot read \"{v}\" as {what} for `{}`", spec.name),
                    )
                };
                let parsed = match kind {
                    Kind::Id => {
                        id = Some(integral_id(v).to_string());
                        Ok(Cell::Null)
                    }
                    Kind::Timestamp => {
                        parse_timestamp_micros(v, schema.timestamp_format.as_deref())
                            .map(|us| Cell::Day(micros_to_day(us)))
                            .map_err(|hint| {
                                (
                                    RejectReason::InvalidTimestamp,
                                    format!("cannot parse \"{v}\" as a timestamp ({hint})"),
                                )
                            })
                    }
                    Kind::Tier => {
                        if tiers.is_empty() || tiers.contains_key(&v.to_lowercase()) {
                            Ok(Cell::Text(v.to_string()))
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
                    Kind::Flag => parse_flag(v).map(Cell::Flag).ok_or_else(|| {
                        bad(RejectReason::InvalidBoolean, "true/false (yes/no, 1/0)")
                    }),
                };
                match parsed {
                    Ok(cell) => cells[k] = cell,
                    Err((reason, message)) => {
                        reject(row, name, raw, reason, message, &mut rejected);
                        file_rejected += 1;
                        continue 'rows;
                    }
                }
            }
            if let Some(id) = id {
                rows.entry(id).or_default().push((f, row, cells));
            }
        }
        let rows_read = frame.height as i64 - blank;
        stats.push(FileStats {
            rows_read,
            rows_accepted: rows_read - file_rejected,
            rows_rejected: file_rejected,
            blank_lines_skipped: blank,
            rejected_by_reason: by_reason,
            ..file.file.stats(&spec_list)
        });
    }

    let mut profiles = Profiles {
        columns_present: specs
            .iter()
            .zip(&present)
            .filter(|(_, p)| **p)
            .map(|(s, _)| s.0.name.to_string())
            .collect(),
        ..Default::default()
    };
    for (id, copies) in rows {
        let (first_file, first_row, cells) = &copies[0];
        if let Some(other) = copies.iter().find(|c| &c.2 != cells) {
            for (file, row, _) in &copies {
                let st = &mut stats[*file];
                st.rows_accepted -= 1;
                st.rows_rejected += 1;
                *st.rejected_by_reason
                    .entry(RejectReason::ConflictingDuplicate.as_str().into())
                    .or_default() += 1;
                rejected.push(RejectedRow {
                    source_file: st.path.clone(),
                    row: *row as i64 + 1,
                    column: "customer_id".into(),
                    value: Some(id.clone()),
                    reason: RejectReason::ConflictingDuplicate,
                    message: format!(
                        "customer_id \"{id}\" has {} profile rows that differ (e.g. {} row {} vs {} row {}); none of them were used",
                        copies.len(),
                        stats_path(files, *first_file),
                        first_row + 1,
                        stats_path(files, other.0),
                        other.1 + 1
                    ),
                });
            }
            continue;
        }
        for (file, _, _) in &copies[1..] {
            stats[*file].duplicates_collapsed += 1;
        }
        profiles.customer_ids.push(id);
        let day = |c: &Cell| if let Cell::Day(d) = c { Some(*d) } else { None };
        let text = |c: &Cell| {
            if let Cell::Text(t) = c {
                Some(t.clone())
            } else {
                None
            }
        };
        let num = |c: &Cell| {
            if let Cell::Number(x) = c {
                Some(*x)
            } else {
                None
            }
        };
        let count = |c: &Cell| {
            if let Cell::Count(x) = c {
                Some(*x)
            } else {
                None
            }
        };
        let flag = |c: &Cell| {
            if let Cell::Flag(x) = c {
                Some(*x)
            } else {
                None
            }
        };
        profiles.signup_day.push(day(&cells[1]));
        let tier = text(&cells[2]);
        profiles.membership_tier_rank.push(
            tier.as_ref()
                .and_then(|t| tiers.get(&t.to_lowercase()).copied()),
        );
        profiles.membership_tier.push(tier);
        profiles.points_balance.push(num(&cells[3]));
        profiles.subscription_active.push(flag(&cells[4]));
        profiles.saved_payment_methods.push(count(&cells[5]));
        profiles.saved_addresses.push(count(&cells[6]));
        profiles.email_opt_in.push(flag(&cells[7]));
        profiles.referrals.push(count(&cells[8]));
        profiles.reviews_written.push(count(&cells[9]));
    }
    rejected.sort_by(|a, b| a.source_file.cmp(&b.source_file).then(a.row.cmp(&b.row)));
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
