//! Ingest: read and validate every input, fix the as-of day, and build the run's one
//! [`CustomerIndex`] (today the customers with an order on or before the as-of day; clicks and
//! profiles join it here). Everything after this stage is keyed by index position.
//!
//! Stops the run (exit 1) with an explanation in the user's terms when there is nothing to score,
//! leaving the rejected rows in `OUT/.patronage/failed/<as-of>/`.

use patronage_features::{ClickPartials, CustomerIndex, Day, Orders, Profiles};
use patronage_input::{
    expand_inputs, format_day, ingest_clicks, ingest_customers, ingest_orders, ClickCounts,
    FileStats, Ingested, IngestedClicks, IngestedCustomers,
};
use patronage_output::OutDir;
use polars::prelude::Column;
use serde::Serialize;

use super::{Tables, Warnings};
use crate::config::{AsOfChoice, RunOptions};
use crate::error::EngineError;
use crate::tables;

/// A latest purchase this many days before the as-of date draws a warning.
const STALE_DAYS: Day = 90;

/// The `inputs.orders` manifest section.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct OrdersManifest {
    pub spec: String,
    pub files: Vec<FileStats>,
    pub rows_read: i64,
    pub rows_accepted: i64,
    pub rows_rejected: i64,
    pub rejected_by_reason: std::collections::BTreeMap<String, i64>,
    pub duplicates_collapsed: i64,
    pub cancelled_lines: i64,
    pub returned_lines: i64,
    pub returned_counts_as_purchase: bool,
    pub null_values: Vec<String>,
    pub orders: usize,
    pub purchase_orders: usize,
    pub non_purchase_orders: usize,
    pub orders_after_as_of_ignored: usize,
    /// Passes over the orders the memory budget asked for (1: one pass).
    pub read_passes: usize,
    /// Whether the orders came in `order_id` order and were grouped as they were read (one pass
    /// whose validated lines never outgrew a chunk); otherwise every line was held and sorted.
    pub read_in_order: bool,
    /// The memory budget for validated order lines, in bytes (`null`: none).
    pub memory_budget_bytes: Option<u64>,
}

/// The `inputs.customers` manifest section.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CustomersManifest {
    pub spec: String,
    pub files: Vec<FileStats>,
    pub rows_read: i64,
    pub rows_accepted: i64,
    pub rows_rejected: i64,
    /// Profiles accepted (one per customer id).
    pub profiles: usize,
    /// Profile columns the input had; the others are null for everyone.
    pub columns_present: Vec<String>,
    /// Customers of the index with a profile but no order on or before the as-of day.
    pub prospects: usize,
}

/// The `inputs.clicks` manifest section.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ClicksManifest {
    pub spec: String,
    pub files: Vec<FileStats>,
    pub rows_read: i64,
    pub rows_accepted: i64,
    pub rows_rejected: i64,
    pub session_gap_minutes: u32,
    #[serde(flatten)]
    pub counts: ClickCounts,
}

/// Validated profiles and where each one sits in the index.
pub(crate) struct ProfileRows {
    pub profiles: Profiles,
    /// Per profile, its index position (`None`: signed up after the as-of day).
    pub at: Vec<Option<u32>>,
}

/// What ingest hands on.
pub(crate) struct Ingest {
    pub as_of: Day,
    pub index: CustomerIndex,
    /// The index's ids as the `customer_id` column every per-customer table starts with, made
    /// once (tables share its buffers).
    pub ids: Column,
    /// Orders keyed by `index` positions.
    pub orders: Orders,
    /// Customer profiles, when given.
    pub profiles: Option<ProfileRows>,
    /// Click partials keyed by `index` positions, when clicks are given.
    pub clicks: Option<ClickPartials>,
    pub manifest: OrdersManifest,
    pub customers_manifest: Option<CustomersManifest>,
    pub clicks_manifest: Option<ClicksManifest>,
    /// `rejected`.
    pub tables: Tables,
}

/// How many customers of an index of `n` have an order in keyed `orders`.
fn customers_with_orders(orders: &Orders, n: usize) -> usize {
    let mut has = vec![false; n];
    for &c in &orders.customer {
        has[c as usize] = true;
    }
    has.iter().filter(|h| **h).count()
}

fn sum_files(files: &[FileStats], field: fn(&FileStats) -> i64) -> i64 {
    files.iter().map(field).sum()
}

/// Orders counted by (day, is purchase): everything the as-of choice, the checks and the
/// manifest need from the orders, whether they were held whole or streamed to partitions.
#[derive(Debug, Clone, Default)]
pub(crate) struct OrderDays {
    counts: std::collections::BTreeMap<(Day, bool), usize>,
}

impl OrderDays {
    /// Counts `orders` in: per day of their range (a few thousand days) in parallel, then into
    /// the map, so ten million orders cost two dense passes, not ten million tree lookups.
    pub fn add(&mut self, orders: &Orders) {
        use rayon::prelude::*;
        let (Some(&lo), Some(&hi)) = (orders.day.par_iter().min(), orders.day.par_iter().max())
        else {
            return;
        };
        let width = (hi - lo) as usize + 1;
        if width > 1 << 16 {
            // Dates spread over centuries: a dense count would be mostly empty.
            for (d, p) in orders.day.iter().zip(&orders.is_purchase) {
                *self.counts.entry((*d, *p)).or_default() += 1;
            }
            return;
        }
        let slot = |d: Day, p: bool| (d - lo) as usize * 2 + usize::from(p);
        let dense = orders
            .day
            .par_chunks(1 << 16)
            .zip(orders.is_purchase.par_chunks(1 << 16))
            .fold(
                || vec![0usize; width * 2],
                |mut counts, (days, purchase)| {
                    for (&d, &p) in days.iter().zip(purchase) {
                        counts[slot(d, p)] += 1;
                    }
                    counts
                },
            )
            .reduce(
                || vec![0usize; width * 2],
                |mut a, b| {
                    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                    a
                },
            );
        for (k, n) in dense.into_iter().enumerate().filter(|(_, n)| *n > 0) {
            let key = (lo + (k / 2) as Day, k % 2 == 1);
            *self.counts.entry(key).or_default() += n;
        }
    }

    fn of(orders: &Orders) -> Self {
        let mut days = OrderDays::default();
        days.add(orders);
        days
    }

    fn purchase_days(&self) -> impl DoubleEndedIterator<Item = Day> + '_ {
        self.counts.keys().filter(|(_, p)| *p).map(|(d, _)| *d)
    }

    /// The latest purchase day on or before `not_after`.
    fn last_purchase(&self, not_after: Day) -> Option<Day> {
        self.purchase_days().rev().find(|d| *d <= not_after)
    }

    fn first_purchase(&self) -> Option<Day> {
        self.purchase_days().next()
    }

    fn count(&self, f: impl Fn(Day, bool) -> bool) -> usize {
        self.counts
            .iter()
            .filter(|((d, p), _)| f(*d, *p))
            .map(|(_, n)| n)
            .sum()
    }
}

pub(crate) fn run(
    opts: &RunOptions,
    out_dir: &OutDir,
    warnings: &mut Warnings,
) -> Result<Ingest, EngineError> {
    let files = expand_inputs(&opts.orders)?;
    let mut ingested = ingest_orders(&files, &opts.schema, opts.memory_budget)?;
    let days = OrderDays::of(&ingested.orders);
    let (as_of, manifest) = check_orders(opts, out_dir, &ingested, &days, warnings)?;
    let (customers, clicks) = read_others(opts, as_of, warnings)?;
    let rejected = rejected_table(&ingested, customers.as_ref(), clicks.as_ref())?;
    let orders = std::mem::take(&mut ingested.orders);
    let customers_manifest = customers.as_ref().map(|c| customers_manifest(opts, c));
    let clicks_manifest = clicks.as_ref().map(|c| clicks_manifest(opts, c));
    Ok(assemble(
        as_of,
        orders,
        customers.map(|c| c.profiles),
        clicks.map(|c| (c.customer_ids, c.partials)),
        manifest,
        customers_manifest,
        clicks_manifest,
        vec![("rejected", rejected)],
    ))
}

/// The orders' warnings and checks: the as-of day (given, or the latest purchase) and the
/// orders' manifest section; stops the run when there is nothing to score.
pub(crate) fn check_orders(
    opts: &RunOptions,
    out_dir: &OutDir,
    ingested: &Ingested,
    days: &OrderDays,
    warnings: &mut Warnings,
) -> Result<(Day, OrdersManifest), EngineError> {
    for w in &ingested.warnings {
        warnings.warn(w.clone());
    }
    for f in &ingested.files {
        if f.rows_read > 0 && f.rows_accepted == 0 {
            warnings.warn(format!(
                "{}: every one of its {} rows was rejected",
                f.path, f.rows_read
            ));
        }
    }
    let no_data = |as_of: Option<Day>, label: Day| -> EngineError {
        let mut explanation = explain_no_data(ingested, days, as_of);
        if !ingested.rejected.is_empty() {
            let written = tables::rejected(&[("orders", &ingested.rejected)]).and_then(|mut df| {
                Ok(out_dir.write_failed(&format_day(label), "rejected.parquet", &mut df)?)
            });
            if let Ok(path) = written {
                explanation.push_str(&format!("; the rejected rows are in {}", path.display()));
            }
        }
        EngineError::NoData {
            as_of: as_of.map_or_else(|| "(latest order)".to_string(), format_day),
            explanation,
        }
    };
    let as_of = match opts.as_of {
        AsOfChoice::Fixed(day) => day,
        AsOfChoice::LatestOrder { not_after } => days
            .last_purchase(not_after)
            .ok_or_else(|| no_data(None, not_after))?,
    };
    let as_of_text = format_day(as_of);
    let Some(last) = days.last_purchase(as_of) else {
        return Err(no_data(Some(as_of), as_of));
    };
    if as_of > opts.today {
        warnings.warn(format!(
            "the as-of date {as_of_text} is in the future (today is {}): recency and churn scores are measured from it",
            format_day(opts.today)
        ));
    }
    let gap = as_of - last;
    if gap > STALE_DAYS {
        warnings.warn(format!(
            "the latest purchase ({}) is {gap} days before the as-of date {as_of_text}: is the export complete, or the as-of date right?",
            format_day(last)
        ));
    }
    if let Some(n) = opts.holdout_days {
        let first = days
            .first_purchase()
            .filter(|d| *d <= as_of)
            .unwrap_or(as_of);
        let longest = as_of - first - 1;
        if !opts.models.enabled {
            warnings.warn(format!(
                "--holdout-days {n} has no effect with the models off (--no-models)"
            ));
        } else if i64::from(n) > i64::from(longest) {
            return Err(EngineError::InvalidOptions(format!(
                "--holdout-days {n} would end the calibration period on {}, but the first purchase is on {}: nothing would be left to fit on; use at most {} days",
                format_day(as_of - n as i32),
                format_day(first),
                longest.max(0)
            )));
        }
    }

    let rows_read = sum_files(&ingested.files, |f| f.rows_read);
    let rows_rejected = sum_files(&ingested.files, |f| f.rows_rejected);
    let mut rejected_by_reason = std::collections::BTreeMap::<String, i64>::new();
    for f in &ingested.files {
        for (k, v) in &f.rejected_by_reason {
            *rejected_by_reason.entry(k.clone()).or_default() += v;
        }
    }
    let manifest = OrdersManifest {
        spec: opts.orders.clone(),
        rows_read,
        rows_accepted: rows_read - rows_rejected,
        rows_rejected,
        rejected_by_reason,
        duplicates_collapsed: sum_files(&ingested.files, |f| f.duplicates_collapsed),
        cancelled_lines: sum_files(&ingested.files, |f| f.cancelled_lines),
        returned_lines: sum_files(&ingested.files, |f| f.returned_lines),
        returned_counts_as_purchase: opts.schema.returned_counts_as_purchase,
        null_values: opts.schema.null_values.clone(),
        orders: days.count(|_, _| true),
        purchase_orders: days.count(|_, p| p),
        non_purchase_orders: days.count(|_, p| !p),
        orders_after_as_of_ignored: days.count(|d, _| d > as_of),
        read_passes: ingested.passes,
        read_in_order: ingested.streamed,
        memory_budget_bytes: opts.memory_budget,
        files: ingested.files.clone(),
    };
    Ok((as_of, manifest))
}

/// The profiles and the clickstream, when given (their warnings told).
pub(crate) fn read_others(
    opts: &RunOptions,
    as_of: Day,
    warnings: &mut Warnings,
) -> Result<(Option<IngestedCustomers>, Option<IngestedClicks>), EngineError> {
    Ok((
        read_customers(opts, warnings)?,
        read_clicks(opts, as_of, warnings)?,
    ))
}

/// The profiles, when given (their warnings told).
pub(crate) fn read_customers(
    opts: &RunOptions,
    warnings: &mut Warnings,
) -> Result<Option<IngestedCustomers>, EngineError> {
    let Some(spec) = &opts.customers else {
        return Ok(None);
    };
    let c = ingest_customers(&expand_inputs(spec)?, &opts.customers_schema)?;
    for w in &c.warnings {
        warnings.warn(w.clone());
    }
    Ok(Some(c))
}

/// The clickstream's partials, when given (its warnings told).
pub(crate) fn read_clicks(
    opts: &RunOptions,
    as_of: Day,
    warnings: &mut Warnings,
) -> Result<Option<IngestedClicks>, EngineError> {
    let Some(spec) = &opts.clicks else {
        return Ok(None);
    };
    let c = ingest_clicks(&expand_inputs(spec)?, &opts.clicks_schema, as_of)?;
    for w in &c.warnings {
        warnings.warn(w.clone());
    }
    Ok(Some(c))
}

/// `rejected`: every input's refused rows.
pub(crate) fn rejected_table(
    orders: &Ingested,
    customers: Option<&IngestedCustomers>,
    clicks: Option<&IngestedClicks>,
) -> Result<polars::prelude::DataFrame, EngineError> {
    let mut rejected = vec![("orders", orders.rejected.as_slice())];
    if let Some(c) = customers {
        rejected.push(("customers", c.rejected.as_slice()));
    }
    if let Some(c) = clicks {
        rejected.push(("clicks", c.rejected.as_slice()));
    }
    tables::rejected(&rejected)
}

/// The `inputs.clicks` section.
pub(crate) fn clicks_manifest(opts: &RunOptions, c: &IngestedClicks) -> ClicksManifest {
    let rows_read = sum_files(&c.files, |f| f.rows_read);
    let rows_rejected = sum_files(&c.files, |f| f.rows_rejected);
    ClicksManifest {
        spec: opts.clicks.clone().unwrap_or_default(),
        files: c.files.clone(),
        rows_read,
        rows_accepted: rows_read - rows_rejected,
        rows_rejected,
        session_gap_minutes: opts.clicks_schema.session_gap_minutes,
        counts: c.counts.clone(),
    }
}

/// The `inputs.customers` section; `prospects` is filled in by [`assemble`].
pub(crate) fn customers_manifest(opts: &RunOptions, c: &IngestedCustomers) -> CustomersManifest {
    let rows_read = sum_files(&c.files, |f| f.rows_read);
    let rows_rejected = sum_files(&c.files, |f| f.rows_rejected);
    CustomersManifest {
        spec: opts.customers.clone().unwrap_or_default(),
        files: c.files.clone(),
        rows_read,
        rows_accepted: rows_read - rows_rejected,
        rows_rejected,
        profiles: c.profiles.len(),
        columns_present: c.profiles.columns_present.clone(),
        prospects: 0,
    }
}

/// The run's (or a partition's) customer index from the inputs read, everything keyed by it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn assemble(
    as_of: Day,
    orders: Orders,
    mut profiles: Option<Profiles>,
    mut clicks: Option<(Vec<String>, ClickPartials)>,
    manifest: OrdersManifest,
    mut customers_manifest: Option<CustomersManifest>,
    clicks_manifest: Option<ClicksManifest>,
    tables: Tables,
) -> Ingest {
    let (index, keyed, mut profile_at, mut click_at) = if profiles.is_none() && clicks.is_none() {
        let (index, keyed) = orders.into_indexed(as_of);
        (index, keyed, None, None)
    } else {
        // The index is the union of the customers every input names on the as-of day: each
        // input's ids sorted, then merged, with every id's position on the way. The ids move
        // into the index; nothing reads an input's own id list afterwards.
        let mut orders = orders;
        let seen = orders.seen_until(as_of);
        let mut lists = vec![(std::mem::take(&mut orders.customer_ids), seen)];
        if let Some(p) = profiles.as_mut() {
            let on = p.exists_on(as_of);
            lists.push((std::mem::take(&mut p.customer_ids), on));
        }
        if let Some((ids, partials)) = clicks.as_mut() {
            let has = (0..ids.len())
                .map(|k| partials.get(k).is_some_and(|p| !p.is_empty()))
                .collect();
            lists.push((std::mem::take(ids), has));
        }
        let (index, mut at) = CustomerIndex::union(lists);
        let click_at = clicks.is_some().then(|| at.pop().unwrap_or_default());
        let profile_at = profiles.is_some().then(|| at.pop().unwrap_or_default());
        let keyed = orders.reindex_at(&at.pop().unwrap_or_default());
        (index, keyed, profile_at, click_at)
    };
    let clicks = clicks
        .map(|(_, partials)| partials.rekey(&click_at.take().unwrap_or_default(), index.len()));
    if let Some(c) = customers_manifest.as_mut() {
        c.prospects = index.len() - customers_with_orders(&keyed, index.len());
    }
    let profiles = profiles.map(|profiles| ProfileRows {
        at: profile_at.take().unwrap_or_default(),
        profiles,
    });
    let ids = Column::new("customer_id".into(), index.ids());
    Ingest {
        as_of,
        ids,
        index,
        orders: keyed,
        profiles,
        clicks,
        manifest,
        customers_manifest,
        clicks_manifest,
        tables,
    }
}

/// Why a run found nothing to score, in the user's terms: which file, which column, an example
/// value, and what to do.
fn explain_no_data(ingested: &Ingested, days: &OrderDays, as_of: Option<Day>) -> String {
    let rows_read = sum_files(&ingested.files, |f| f.rows_read);
    let rows_rejected = sum_files(&ingested.files, |f| f.rows_rejected);
    let files = ingested
        .files
        .iter()
        .map(|f| f.path.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if rows_read == 0 {
        return format!("{files}: no data rows (the input has a header or schema but no rows)");
    }
    if rows_rejected == rows_read {
        let mut by_reason: std::collections::BTreeMap<&str, i64> = Default::default();
        for r in &ingested.rejected {
            *by_reason.entry(r.reason.as_str()).or_default() += 1;
        }
        let (top, _) = by_reason
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(k, n)| (*k, *n))
            .unwrap_or(("", 0));
        let counts = by_reason
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ");
        let example = ingested
            .rejected
            .iter()
            .find(|r| r.reason.as_str() == top)
            .map(|r| {
                format!(
                    "; e.g. {} row {}, column `{}`: {}",
                    r.source_file, r.row, r.column, r.message
                )
            })
            .unwrap_or_default();
        return format!("every one of the {rows_read} rows was rejected ({counts}){example}");
    }
    let purchases = days.count(|_, p| p);
    if purchases == 0 {
        let cancelled = sum_files(&ingested.files, |f| f.cancelled_lines);
        let returned = sum_files(&ingested.files, |f| f.returned_lines);
        return format!(
            "{} of {rows_read} rows were accepted, but no order is a purchase ({cancelled} cancelled lines, {returned} returned lines, {} refund-only or returned orders); check the status mapping ([orders.status_values]) and the sign of amounts",
            rows_read - rows_rejected,
            days.count(|_, _| true)
        );
    }
    match (as_of, days.first_purchase()) {
        (Some(as_of), Some(first)) if first > as_of => format!(
            "all {purchases} purchases are after it (the first on {}); pass a later --as-of",
            format_day(first)
        ),
        _ => format!("{purchases} purchases were read, none on or before it; pass a later --as-of"),
    }
}
