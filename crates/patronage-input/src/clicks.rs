//! Validation and identity stitching of clickstream events (the optional `clicks` input,
//! docs/design.md §2) into [`Clicks`].
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

use patronage_features::{day_of, ClickPartial, ClickPartials, Clicks, Day, EventType};
use polars::prelude::{Column, DataType, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::columns::{default_null_values, quoted, separator_byte, ColumnSpec};
use crate::error::InputError;
use crate::orders::{FileStats, RejectReason, RejectedRow};
use crate::parse::parse_timestamp_micros;
use crate::text::{clean, has_replacement_char, integral_id, Dict, TextCol};
use crate::text_input::TextSource;

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
    /// Rows read and folded into the per-customer partials at a time (Parquet row groups are
    /// joined up to it; a CSV file is cut into chunks of this many records): memory holds one
    /// such chunk of events, never the whole clickstream.
    #[serde(default = "default_chunk_rows")]
    pub chunk_rows: usize,
}

fn default_chunk_rows() -> usize {
    1 << 20
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
            chunk_rows: default_chunk_rows(),
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
        if self.chunk_rows == 0 {
            return Err("clicks.chunk_rows must be at least 1".into());
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
    /// Accepted events on or before the as-of day, by canonical type (anonymous ones included).
    pub events_by_type: BTreeMap<String, i64>,
    /// Export event names that were neither mapped nor canonical (kept as `other`).
    pub unknown_event_names: BTreeMap<String, i64>,
    /// Events (on or before the as-of day) linked to a customer through their visitor id.
    pub events_linked_by_visitor: i64,
    /// Events (on or before the as-of day) of visitors no event links to a customer.
    pub anonymous_events: i64,
    pub anonymous_visitors: i64,
    /// Visitors whose events name more than one customer (linked to the smallest id).
    pub visitors_with_several_customers: i64,
    /// Accepted events after the as-of day (kept out of the features).
    pub events_after_as_of_ignored: i64,
}

/// What ingesting clicks produced: per-customer partials, never the events themselves.
#[derive(Debug, Clone, Default)]
pub struct IngestedClicks {
    /// Partials of the events on or before the as-of day keyed by `customer_ids` positions,
    /// visitor-only events folded into the customer their visitor is linked to.
    pub partials: ClickPartials,
    /// Every customer an accepted event names; one whose partial is empty (all their events
    /// after the as-of day) is not a customer of the run through clicks.
    pub customer_ids: Vec<String>,
    pub rejected: Vec<RejectedRow>,
    pub files: Vec<FileStats>,
    pub counts: ClickCounts,
    pub warnings: Vec<String>,
}

impl IngestedClicks {
    /// Per customer of `customer_ids`, whether they have an event on or before the as-of day.
    pub fn has_events(&self) -> Vec<bool> {
        (0..self.customer_ids.len())
            .map(|k| self.partials.get(k).is_some_and(|p| !p.is_empty()))
            .collect()
    }
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

/// The fold of every chunk read so far.
struct Fold {
    customers: Dict,
    visitors: Dict,
    sessions: Dict,
    categories: Dict,
    /// Per visitor, the customer its events name (the smallest id when several do).
    link: Vec<Option<u32>>,
    several: Vec<bool>,
    /// Partials of customer-named events, keyed by `customers`.
    by_customer: ClickPartials,
    /// Partials of visitor-only events, keyed by `visitors`.
    by_visitor: ClickPartials,
    /// The events of the chunk being read: customer-named, visitor-only.
    piece: Clicks,
    visitor_piece: Clicks,
}

impl Fold {
    fn link(&mut self, visitor: u32, customer: u32) {
        let v = visitor as usize;
        if v >= self.link.len() {
            self.link.resize(v + 1, None);
            self.several.resize(v + 1, false);
        }
        match self.link[v] {
            None => self.link[v] = Some(customer),
            Some(old) if old != customer => {
                self.several[v] = true;
                if self.customers.names[customer as usize] < self.customers.names[old as usize] {
                    self.link[v] = Some(customer);
                }
            }
            Some(_) => {}
        }
    }

    /// Folds the chunk's events into the partials.
    fn flush(&mut self, as_of: Day) {
        self.by_customer.add(&self.piece, as_of);
        self.by_visitor.add(&self.visitor_piece, as_of);
        self.piece.clear();
        self.visitor_piece.clear();
    }
}

/// Reads, validates and stitches every click file, folding each chunk (a CSV file, a run of
/// Parquet row groups of about `chunk_rows` rows) into per-customer partials as it goes:
/// memory holds one chunk and the partials (sessions, not events).
pub fn ingest_clicks(
    files: &[PathBuf],
    schema: &ClicksSchema,
    as_of: Day,
) -> Result<IngestedClicks, InputError> {
    ingest_clicks_with(files, schema, as_of, None)
}

/// Where [`ingest_clicks_routed`] sends the customers' partials: `(customer_id, partial)`,
/// ids unique within a call; one customer's partials from several calls merge exactly
/// ([`ClickPartial::merge`]) into the partial of all their events.
pub type ClicksSink<'a> = &'a mut dyn FnMut(Vec<(String, ClickPartial)>) -> Result<(), InputError>;

/// [`ingest_clicks`] handing the customers' partials to `sink` whenever the events folded since
/// the last hand-over reach `flush_events` (and once at the end, with the visitors' events
/// joined to their customers): memory holds the partials of that many events, not of the whole
/// clickstream. The returned partials and ids are empty; everything else is the whole input's.
pub fn ingest_clicks_routed(
    files: &[PathBuf],
    schema: &ClicksSchema,
    as_of: Day,
    flush_events: usize,
    sink: ClicksSink<'_>,
) -> Result<IngestedClicks, InputError> {
    ingest_clicks_with(files, schema, as_of, Some((flush_events.max(1), sink)))
}

/// Hands the customers' partials held to `sink` (the customer dictionary stays: keys are stable).
fn hand_over(fold: &mut Fold, gap_minutes: u32, sink: ClicksSink<'_>) -> Result<(), InputError> {
    let parts = std::mem::replace(&mut fold.by_customer, ClickPartials::new(gap_minutes));
    let names = &fold.customers.names;
    let pieces: Vec<(String, ClickPartial)> = parts
        .into_keyed()
        .map(|(k, p)| (names[k].clone(), p))
        .collect();
    if pieces.is_empty() {
        return Ok(());
    }
    sink(pieces)
}

fn ingest_clicks_with(
    files: &[PathBuf],
    schema: &ClicksSchema,
    as_of: Day,
    mut spill: Option<(usize, ClicksSink<'_>)>,
) -> Result<IngestedClicks, InputError> {
    let mut pending = 0usize;
    schema.check().map_err(InputError::InvalidConfig)?;
    let separator =
        separator_byte("clicks", schema.separator.as_deref()).map_err(InputError::InvalidConfig)?;
    let price_pages: Vec<String> = schema
        .price_pages
        .iter()
        .map(|p| p.to_lowercase())
        .collect();
    let names = EventNames::new(schema, &price_pages);
    let mut fold = Fold {
        customers: Dict::default(),
        visitors: Dict::default(),
        sessions: Dict::default(),
        categories: Dict::default(),
        link: Vec::new(),
        several: Vec::new(),
        by_customer: ClickPartials::new(schema.session_gap_minutes),
        by_visitor: ClickPartials::new(schema.session_gap_minutes),
        piece: Clicks::default(),
        visitor_piece: Clicks::default(),
    };
    let mut rejected = Vec::new();
    let mut stats = Vec::new();
    let mut counts = ClickCounts::default();
    let mut by_type = [0i64; EventType::ALL.len()];
    let specs: Vec<ColumnSpec> = COLUMNS
        .iter()
        .map(|(name, required, aliases)| ColumnSpec {
            name,
            required: *required,
            aliases,
        })
        .collect();
    let configured: Vec<Option<&str>> = (0..8).map(|k| configured(&schema.columns, k)).collect();
    for path in files {
        let file = TextSource::open(
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
        let col_of = |k: usize| mapped.iter().position(|m| m.0 == k);
        let path_text = path.display().to_string();
        let mut file_stats = file.stats(&specs);
        for range in file.source.chunks(schema.chunk_rows.max(1)) {
            let chunk = file.read_chunk(range, &[0])?;
            let frame = &chunk.frame;
            let cols: Vec<TextCol> = chunk.text.iter().map(TextCol::new).collect();
            let absent = TextCol::absent();
            let text = |k: usize| col_of(k).map_or(&absent, |m| &cols[m]);
            let cells = Cells::of(
                &mut fold,
                frame.height,
                &|k| text(k),
                col_of(0).and_then(|m| typed_micros(&frame.columns[m])),
                schema,
                &names,
                &price_pages,
            );
            for row in 0..frame.height {
                let file_row = range.0 + row;
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
                            row: file_row as i64 + 1,
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
                let raw = |k: usize| text(k).get(row);
                let name = |k: usize| file.name(&specs, k);
                if let Some(k) = (0..8).find(|&k| cells.invalid_utf8(k, row)) {
                    reject(
                        &found[at[k].unwrap_or_default()],
                        raw(k),
                        RejectReason::InvalidUtf8,
                        "the cell holds bytes that are not valid UTF-8".into(),
                    );
                    continue;
                }
                let micros = match cells.ts[row] {
                    Cell::Val(Some(m)) => m,
                    Cell::Val(None) => {
                        let ts = raw(0).unwrap_or_default().trim();
                        let hint = parse_timestamp_micros(ts, schema.timestamp_format.as_deref())
                            .err()
                            .unwrap_or_default();
                        reject(
                            name(0),
                            raw(0),
                            RejectReason::InvalidTimestamp,
                            format!("cannot parse \"{ts}\" as a timestamp ({hint})"),
                        );
                        continue;
                    }
                    _ => {
                        reject(
                            name(0),
                            raw(0),
                            RejectReason::MissingValue,
                            format!("`{}` is empty", name(0)),
                        );
                        continue;
                    }
                };
                let Cell::Val((event, mapped_price, known)) = cells.event[row] else {
                    reject(
                        name(1),
                        raw(1),
                        RejectReason::MissingValue,
                        format!("`{}` is empty", name(1)),
                    );
                    continue;
                };
                let (customer, visitor) = (cells.customer[row].value(), cells.visitor[row].value());
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
                if !known {
                    let event_name = raw(1).unwrap_or_default().trim();
                    *counts
                        .unknown_event_names
                        .entry(event_name.to_string())
                        .or_default() += 1;
                }
                let price_page =
                    mapped_price.unwrap_or_else(|| cells.price_page[row].value().unwrap_or(false));
                if let (Some(v), Some(c)) = (visitor, customer) {
                    fold.link(v, c);
                }
                if day_of(micros) > as_of {
                    counts.events_after_as_of_ignored += 1;
                    continue;
                }
                by_type[event as usize] += 1;
                let (session, category) = (cells.session[row].value(), cells.category[row].value());
                match (customer, visitor) {
                    (Some(c), _) => fold
                        .piece
                        .push(c, micros, event, price_page, session, category),
                    (None, Some(v)) => fold
                        .visitor_piece
                        .push(v, micros, event, price_page, session, category),
                    (None, None) => {}
                }
            }
            pending += fold.piece.len();
            fold.flush(as_of);
            if let Some((every, sink)) = spill.as_mut() {
                if pending >= *every {
                    hand_over(&mut fold, schema.session_gap_minutes, &mut **sink)?;
                    pending = 0;
                }
            }
        }
        file_stats.rows_accepted = file_stats.rows_read - file_stats.rows_rejected;
        stats.push(file_stats);
    }

    // Identity: a visitor's events join the customer its events name; the rest is anonymous.
    counts.visitors_with_several_customers = fold.several.iter().filter(|s| **s).count() as i64;
    for v in 0..fold.by_visitor.len() {
        let partial = fold.by_visitor.take(v);
        if partial.is_empty() {
            continue;
        }
        let events = partial.events() as i64;
        match fold.link.get(v).copied().flatten() {
            Some(c) => {
                counts.events_linked_by_visitor += events;
                fold.by_customer.absorb(c as usize, partial);
            }
            None => {
                counts.anonymous_events += events;
                counts.anonymous_visitors += 1;
            }
        }
    }
    match spill.as_mut() {
        Some((_, sink)) => hand_over(&mut fold, schema.session_gap_minutes, &mut **sink)?,
        None => fold.by_customer.shrink_to_fit(),
    }
    let customer_ids = match spill {
        Some(_) => Vec::new(),
        None => fold.customers.names,
    };
    for e in EventType::ALL {
        if by_type[e as usize] > 0 {
            counts
                .events_by_type
                .insert(e.name().to_string(), by_type[e as usize]);
        }
    }
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
        partials: fold.by_customer,
        customer_ids,
        rejected,
        files: stats,
        counts,
        warnings,
    })
}

/// One cell of a chunk's column, checked on its own.
#[derive(Debug, Clone, Copy)]
enum Cell<T> {
    /// Bytes that are not valid UTF-8.
    Invalid,
    /// Empty or a null marker.
    Null,
    Val(T),
}

impl<T: Copy> Cell<T> {
    fn value(&self) -> Option<T> {
        match self {
            Cell::Val(v) => Some(*v),
            _ => None,
        }
    }
}

/// A column's cells: each cell cleaned (null markers) and mapped by `f`.
fn cells<T: Send>(
    col: &TextCol,
    rows: usize,
    null_values: &[String],
    mut f: impl FnMut(&str) -> T,
) -> Vec<Cell<T>> {
    (0..rows)
        .map(|row| match col.get(row) {
            None => Cell::Null,
            Some(s) if has_replacement_char(s) => Cell::Invalid,
            Some(s) => match clean(s, null_values) {
                None => Cell::Null,
                Some(v) => Cell::Val(f(v)),
            },
        })
        .collect()
}

/// The cells of one chunk, every column checked and interned on its own (the columns in
/// parallel: the dictionaries are one per column); the row rules then run over them in order.
struct Cells {
    /// µs, or `None` when the text does not parse.
    ts: Vec<Cell<Option<i64>>>,
    /// (event, price page from the event mapping, the name is known).
    event: Vec<Cell<(EventType, Option<bool>, bool)>>,
    customer: Vec<Cell<u32>>,
    visitor: Vec<Cell<u32>>,
    session: Vec<Cell<u32>>,
    price_page: Vec<Cell<bool>>,
    product: Vec<Cell<()>>,
    category: Vec<Cell<u32>>,
}

impl Cells {
    #[allow(clippy::too_many_arguments)]
    fn of<'a>(
        fold: &mut Fold,
        rows: usize,
        text: &(dyn Fn(usize) -> &'a TextCol<'a> + Sync),
        typed_ts: Option<Vec<Option<i64>>>,
        schema: &ClicksSchema,
        names: &EventNames,
        price_pages: &[String],
    ) -> Cells {
        let nulls = &schema.null_values;
        let format = schema.timestamp_format.as_deref();
        let (customers, visitors, sessions, categories) = (
            &mut fold.customers,
            &mut fold.visitors,
            &mut fold.sessions,
            &mut fold.categories,
        );
        let ((ts, (event, price_page)), ((customer, visitor), ((session, category), product))) =
            rayon::join(
                || {
                    rayon::join(
                        || match typed_ts {
                            Some(t) => t
                                .into_iter()
                                .map(|m| m.map_or(Cell::Null, |m| Cell::Val(Some(m))))
                                .collect(),
                            None => cells(text(0), rows, nulls, |s| {
                                parse_timestamp_micros(s, format).ok()
                            }),
                        },
                        || {
                            (
                                cells(text(1), rows, nulls, |s| names.lookup(s)),
                                cells(text(5), rows, nulls, |s| is_price_page(s, price_pages)),
                            )
                        },
                    )
                },
                || {
                    rayon::join(
                        || {
                            rayon::join(
                                || {
                                    cells(text(2), rows, nulls, |s| {
                                        customers.intern(integral_id(s))
                                    })
                                },
                                || cells(text(3), rows, nulls, |s| visitors.intern(integral_id(s))),
                            )
                        },
                        || {
                            (
                                (
                                    cells(text(4), rows, nulls, |s| sessions.intern(s)),
                                    cells(text(7), rows, nulls, |s| categories.intern(s)),
                                ),
                                cells(text(6), rows, nulls, |_| ()),
                            )
                        },
                    )
                },
            );
        Cells {
            ts,
            event,
            customer,
            visitor,
            session,
            price_page,
            product,
            category,
        }
    }

    /// Whether canonical column `k`'s cell in `row` holds invalid UTF-8.
    fn invalid_utf8(&self, k: usize, row: usize) -> bool {
        fn bad<T>(c: &[Cell<T>], row: usize) -> bool {
            matches!(c[row], Cell::Invalid)
        }
        match k {
            0 => bad(&self.ts, row),
            1 => bad(&self.event, row),
            2 => bad(&self.customer, row),
            3 => bad(&self.visitor, row),
            4 => bad(&self.session, row),
            5 => bad(&self.price_page, row),
            6 => bad(&self.product, row),
            _ => bad(&self.category, row),
        }
    }
}

/// The export's event names (mapped in `[clicks.events]`, or canonical) → canonical events.
struct EventNames {
    /// Lower-case name → (event, price page when the mapping gives a page).
    known: HashMap<String, (EventType, Option<bool>), foldhash::fast::FixedState>,
}

impl EventNames {
    fn new(schema: &ClicksSchema, price_pages: &[String]) -> Self {
        let mut known: HashMap<String, (EventType, Option<bool>), foldhash::fast::FixedState> =
            HashMap::default();
        for e in EventType::ALL {
            known.insert(e.name().to_string(), (e, None));
        }
        for (name, m) in &schema.events {
            let event = EventType::parse(m.event()).unwrap_or(EventType::Other);
            let price = m.page().map(|p| is_price_page(p, price_pages));
            known.insert(name.trim().to_lowercase(), (event, price));
        }
        EventNames { known }
    }

    /// (event, price page from the mapping, known): an unknown name is `other`.
    fn lookup(&self, name: &str) -> (EventType, Option<bool>, bool) {
        let hit = self.known.get(name).or_else(|| {
            name.chars()
                .any(char::is_uppercase)
                .then(|| self.known.get(&name.to_lowercase()))
                .flatten()
        });
        match hit {
            Some(&(e, price)) => (e, price, true),
            None => (EventType::Other, None, false),
        }
    }
}

/// Whether a page type is one of the (lower-case) price pages, whatever its case.
fn is_price_page(page: &str, price_pages: &[String]) -> bool {
    price_pages.iter().any(|p| p.eq_ignore_ascii_case(page))
}

/// µs since the epoch of a date or timestamp column (any unit, naive or zoned: UTC instants).
fn typed_micros(col: &Column) -> Option<Vec<Option<i64>>> {
    match col.dtype() {
        DataType::Datetime(..) => {
            let c = col
                .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
                .ok()?;
            Some(c.datetime().ok()?.physical().iter().collect())
        }
        DataType::Date => Some(
            col.date()
                .ok()?
                .physical()
                .iter()
                .map(|d| d.map(|d| i64::from(d) * 86_400_000_000))
                .collect(),
        ),
        _ => None,
    }
}
