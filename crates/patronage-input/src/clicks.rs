//! Validation and identity stitching of clickstream events (the optional `clicks` input,
//! DESIGN §2) into [`Clicks`].
//!
//! Columns (canonical; `[clicks.columns]` maps an export's own): `event_ts` and `event_type`
//! (required), `customer_id` and/or `visitor_id` (at least one column), optional `session_id`,
//! `page_type`, `product_id`, `category`. `[clicks.events]` maps the export's event names onto the
//! canonical ones, optionally with a page type (`shipping_details = { event = "page_view",
//! page = "shipping" }`); a name that is neither mapped nor canonical is kept as `other` and
//! counted, not rejected.
//!
//! Row rules, first failing wins: invalid UTF-8 → `invalid_utf8`; empty `event_ts` or
//! `event_type`, or neither a customer nor a visitor id → `missing_value`; a timestamp that does
//! not parse → `invalid_timestamp`. Identity: an event with only a `visitor_id` belongs to the
//! customer that any event of the same visitor names (the smallest id when several do, counted);
//! the rest is anonymous traffic, counted in the manifest and not kept.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use patronage_features::{Clicks, EventType};
use serde::{Deserialize, Serialize};

use crate::columns::{default_null_values, quoted, separator_byte, ColumnSpec};
use crate::error::InputError;
use crate::orders::{FileStats, RejectReason, RejectedRow};
use crate::parse::parse_timestamp_micros;
use crate::text::{clean, has_replacement_char, integral_id, Dict, TextCol};
use crate::text_input::read_text_file;

/// `[clicks]` section of the config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClicksSchema {
    #[serde(default)]
    pub columns: ClickColumns,
    /// The export's event names → a canonical event (and optionally a page type).
    #[serde(default)]
    pub events: BTreeMap<String, EventMapping>,
    pub timestamp_format: Option<String>,
    pub separator: Option<String>,
    #[serde(default = "default_null_values")]
    pub null_values: Vec<String>,
    /// A new session starts after this many minutes without an event (when no session_id).
    #[serde(default = "default_gap")]
    pub session_gap_minutes: u32,
    /// Page types that count as price pages for `price_page_exit_rate`.
    #[serde(default = "default_price_pages")]
    pub price_pages: Vec<String>,
}

fn default_gap() -> u32 {
    30
}

fn default_price_pages() -> Vec<String> {
    ["price", "shipping", "payment"].map(String::from).to_vec()
}

impl Default for ClicksSchema {
    fn default() -> Self {
        ClicksSchema {
            columns: ClickColumns::default(),
            events: BTreeMap::new(),
            timestamp_format: None,
            separator: None,
            null_values: default_null_values(),
            session_gap_minutes: default_gap(),
            price_pages: default_price_pages(),
        }
    }
}

/// An export event name's meaning: a canonical event, or one with a page type.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum EventMapping {
    Event(String),
    WithPage { event: String, page: Option<String> },
}

impl EventMapping {
    fn event(&self) -> &str {
        match self {
            EventMapping::Event(e) => e,
            EventMapping::WithPage { event, .. } => event,
        }
    }

    fn page(&self) -> Option<&str> {
        match self {
            EventMapping::Event(_) => None,
            EventMapping::WithPage { page, .. } => page.as_deref(),
        }
    }
}

impl ClicksSchema {
    /// Checks what needs no data: the event mapping names canonical events, the gap is positive.
    pub fn check(&self) -> Result<(), String> {
        for (name, m) in &self.events {
            if EventType::parse(m.event()).is_none() {
                return Err(format!(
                    "clicks.events maps \"{name}\" to \"{}\", which is not a canonical event ({})",
                    m.event(),
                    EventType::ALL.map(|e| e.name()).join(", ")
                ));
            }
        }
        if self.session_gap_minutes == 0 {
            return Err("clicks.session_gap_minutes must be at least 1".into());
        }
        Ok(())
    }
}

/// Source column names for each canonical click column; `None` means "find it by name".
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickColumns {
    pub event_ts: Option<String>,
    pub event_type: Option<String>,
    pub customer_id: Option<String>,
    pub visitor_id: Option<String>,
    pub session_id: Option<String>,
    pub page_type: Option<String>,
    pub product_id: Option<String>,
    pub category: Option<String>,
}

/// Counts for the manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClickCounts {
    pub events_by_type: BTreeMap<String, i64>,
    /// Export event names that were neither mapped nor canonical (kept as `other`).
    pub unknown_event_names: BTreeMap<String, i64>,
    /// Events linked to a customer through their visitor id.
    pub events_linked_by_visitor: i64,
    pub anonymous_events: i64,
    pub anonymous_visitors: i64,
    /// Visitors whose events name more than one customer (linked to the smallest id).
    pub visitors_with_several_customers: i64,
}

/// What ingesting clicks produced.
#[derive(Debug, Clone, Default)]
pub struct IngestedClicks {
    pub clicks: Clicks,
    pub rejected: Vec<RejectedRow>,
    pub files: Vec<FileStats>,
    pub counts: ClickCounts,
    pub warnings: Vec<String>,
}

const COLUMNS: [(&str, bool, &[&str]); 8] = [
    ("event_ts", true, &["timestamp", "eventtime", "ts", "time"]),
    ("event_type", true, &["event", "eventname", "action"]),
    ("customer_id", false, &["userid", "user"]),
    (
        "visitor_id",
        false,
        &["anonymousid", "cookieid", "deviceid"],
    ),
    ("session_id", false, &["session"]),
    ("page_type", false, &["page", "pagecategory"]),
    ("product_id", false, &["sku", "itemid"]),
    ("category", false, &["productcategory"]),
];

fn configured(c: &ClickColumns, k: usize) -> Option<&str> {
    [
        &c.event_ts,
        &c.event_type,
        &c.customer_id,
        &c.visitor_id,
        &c.session_id,
        &c.page_type,
        &c.product_id,
        &c.category,
    ][k]
        .as_deref()
}

/// One accepted event before identity stitching.
struct Raw {
    customer: Option<u32>,
    visitor: Option<u32>,
    micros: i64,
    event: EventType,
    price_page: bool,
    session: Option<u32>,
    category: Option<u32>,
}

/// Reads, validates and stitches every click file.
pub fn ingest_clicks(
    files: &[PathBuf],
    schema: &ClicksSchema,
) -> Result<IngestedClicks, InputError> {
    schema.check().map_err(InputError::InvalidConfig)?;
    let separator =
        separator_byte("clicks", schema.separator.as_deref()).map_err(InputError::InvalidConfig)?;
    let mapping: HashMap<String, &EventMapping> = schema
        .events
        .iter()
        .map(|(k, v)| (k.trim().to_lowercase(), v))
        .collect();
    let price_pages: Vec<String> = schema
        .price_pages
        .iter()
        .map(|p| p.to_lowercase())
        .collect();
    let mut raws: Vec<Raw> = Vec::new();
    let (mut customers, mut visitors, mut sessions, mut categories) = (
        Dict::default(),
        Dict::default(),
        Dict::default(),
        Dict::default(),
    );
    let mut rejected = Vec::new();
    let mut stats = Vec::new();
    let mut counts = ClickCounts::default();
    for path in files {
        let specs: Vec<ColumnSpec> = COLUMNS
            .iter()
            .map(|(name, required, aliases)| ColumnSpec {
                name,
                required: *required,
                aliases,
            })
            .collect();
        let configured: Vec<Option<&str>> =
            (0..8).map(|k| configured(&schema.columns, k)).collect();
        let file = read_text_file(
            path,
            &specs,
            &configured,
            "clicks",
            separator,
            "a click value (text, number or timestamp)",
        )?;
        let at = &file.at;
        let found = &file.source.columns;
        if at[2].is_none() && at[3].is_none() {
            return Err(InputError::ColumnNotFound {
                path: path.clone(),
                column: "customer_id".into(),
                hint: " (nor `visitor_id`: events need one of them; map it with `[clicks.columns] customer_id = \"...\"`)".into(),
                found: quoted(found),
            });
        }
        let mapped = file.mapped();
        let frame = &file.frame;
        let cols: Vec<TextCol> = file.text.iter().map(TextCol::new).collect();
        let col_of = |k: usize| mapped.iter().position(|m| m.0 == k);
        let path_text = path.display().to_string();
        let mut file_stats = file.stats(&specs);
        for row in 0..frame.height {
            if frame.blank_rows.binary_search(&row).is_ok() {
                file_stats.blank_lines_skipped += 1;
                continue;
            }
            file_stats.rows_read += 1;
            let mut reject =
                |column: &str, value: Option<&str>, reason: RejectReason, message: String| {
                    *file_stats
                        .rejected_by_reason
                        .entry(reason.as_str().to_string())
                        .or_default() += 1;
                    file_stats.rows_rejected += 1;
                    rejected.push(RejectedRow {
                        source_file: path_text.clone(),
                        row: row as i64 + 1,
                        column: column.to_string(),
                        value: value.map(str::to_string),
                        reason,
                        message,
                    });
                };
            if frame.ragged_rows.binary_search(&row).is_ok() {
                reject(
                    "",
                    None,
                    RejectReason::TooManyFields,
                    "the record has more fields than the header".into(),
                );
                continue;
            }
            let raw = |k: usize| col_of(k).and_then(|m| cols[m].get(row));
            if let Some(k) = (0..8).find(|&k| raw(k).is_some_and(has_replacement_char)) {
                reject(
                    &found[at[k].unwrap_or_default()],
                    raw(k),
                    RejectReason::InvalidUtf8,
                    "the cell holds bytes that are not valid UTF-8".into(),
                );
                continue;
            }
            let cell = |k: usize| raw(k).and_then(|s| clean(s, &schema.null_values));
            let name = |k: usize| file.name(&specs, k);
            let Some(ts) = cell(0) else {
                reject(
                    name(0),
                    raw(0),
                    RejectReason::MissingValue,
                    format!("`{}` is empty", name(0)),
                );
                continue;
            };
            let micros = match parse_timestamp_micros(ts, schema.timestamp_format.as_deref()) {
                Ok(m) => m,
                Err(hint) => {
                    reject(
                        name(0),
                        raw(0),
                        RejectReason::InvalidTimestamp,
                        format!("cannot parse \"{ts}\" as a timestamp ({hint})"),
                    );
                    continue;
                }
            };
            let Some(event_name) = cell(1) else {
                reject(
                    name(1),
                    raw(1),
                    RejectReason::MissingValue,
                    format!("`{}` is empty", name(1)),
                );
                continue;
            };
            let customer = cell(2).map(|c| customers.intern(integral_id(c)));
            let visitor = cell(3).map(|v| visitors.intern(integral_id(v)));
            if customer.is_none() && visitor.is_none() {
                let k = if at[2].is_some() { 2 } else { 3 };
                reject(
                    name(k),
                    raw(k),
                    RejectReason::MissingValue,
                    "the event names neither a customer nor a visitor".into(),
                );
                continue;
            }
            let key = event_name.to_lowercase();
            let mapped_event = mapping.get(&key);
            let event = match mapped_event {
                Some(m) => EventType::parse(m.event()).unwrap_or(EventType::Other),
                None => EventType::parse(&key).unwrap_or_else(|| {
                    *counts
                        .unknown_event_names
                        .entry(event_name.to_string())
                        .or_default() += 1;
                    EventType::Other
                }),
            };
            let page = mapped_event
                .and_then(|m| m.page().map(str::to_string))
                .or_else(|| cell(5).map(str::to_string));
            let price_page = page.is_some_and(|p| price_pages.contains(&p.to_lowercase()));
            raws.push(Raw {
                customer,
                visitor,
                micros,
                event,
                price_page,
                session: cell(4).map(|v| sessions.intern(v)),
                category: cell(7).map(|v| categories.intern(v)),
            });
        }
        file_stats.rows_accepted = file_stats.rows_read - file_stats.rows_rejected;
        stats.push(file_stats);
    }

    // Identity: visitor → the customer its events name (the smallest id, deterministically).
    let mut link: Vec<Option<u32>> = vec![None; visitors.names.len()];
    let mut several = vec![false; visitors.names.len()];
    for r in &raws {
        if let (Some(v), Some(c)) = (r.visitor, r.customer) {
            let slot = &mut link[v as usize];
            match *slot {
                None => *slot = Some(c),
                Some(old) if old != c => {
                    several[v as usize] = true;
                    if customers.names[c as usize] < customers.names[old as usize] {
                        *slot = Some(c);
                    }
                }
                Some(_) => {}
            }
        }
    }
    counts.visitors_with_several_customers = several.iter().filter(|s| **s).count() as i64;
    let mut clicks = Clicks::default();
    let mut anonymous = vec![false; visitors.names.len()];
    for r in &raws {
        let customer = match (r.customer, r.visitor) {
            (Some(c), _) => c,
            (None, Some(v)) => match link[v as usize] {
                Some(c) => {
                    counts.events_linked_by_visitor += 1;
                    c
                }
                None => {
                    counts.anonymous_events += 1;
                    anonymous[v as usize] = true;
                    continue;
                }
            },
            (None, None) => continue,
        };
        *counts
            .events_by_type
            .entry(r.event.name().to_string())
            .or_default() += 1;
        clicks.customer.push(customer);
        clicks.micros.push(r.micros);
        clicks.event.push(r.event);
        clicks.price_page.push(r.price_page);
        clicks.session.push(r.session);
        clicks.category.push(r.category);
    }
    drop(raws);
    clicks.customer_ids = customers.names;
    clicks.category_names = categories.names;
    counts.anonymous_visitors = anonymous.iter().filter(|a| **a).count() as i64;
    rejected.sort_by(|a, b| a.source_file.cmp(&b.source_file).then(a.row.cmp(&b.row)));
    let mut warnings = Vec::new();
    if !counts.unknown_event_names.is_empty() {
        warnings.push(format!(
            "click events with names that are not mapped are kept as `other`: {}; map them with [clicks.events]",
            counts
                .unknown_event_names
                .iter()
                .map(|(k, n)| format!("\"{k}\" ({n})"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(IngestedClicks {
        clicks,
        rejected,
        files: stats,
        counts,
        warnings,
    })
}
