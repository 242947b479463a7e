//! Per-customer features from canonical orders: RFM, net revenue, the BTYD summary and purchase
//! rhythm (docs/design.md §3). Pure compute: takes [`Orders`] already validated by `patronage-input` and
//! keyed by a [`CustomerIndex`], and an as-of day; returns one row per customer of the index as
//! named columns in a [`FeatureTable`]. Never reads files or the clock.
//!
//! Definitions (unit = day; a *valid order* is a non-cancelled order with a purchase amount ≥ 0):
//! - `frequency`: distinct valid orders; `monetary`: their summed amount; `refunds`: refunded
//!   amounts (negative lines, and returned orders when they count as purchases);
//!   `net_revenue = monetary − refunds`.
//! - A customer of the index without any order on or before the as-of day (a *prospect*, known
//!   from another input) has null order features.
//! - `recency_days = as_of − last_order_date`, `tenure_days = as_of − first_order_date`.
//! - BTYD summary after Fader & Hardie: orders on the same day are merged into one *purchase day*;
//!   `btyd_x` = purchase days − 1 (repeat purchase days), `btyd_t_x` = last − first purchase day,
//!   `btyd_T` = as_of − first purchase day, `btyd_m` = mean spend of the repeat purchase days
//!   (null when `btyd_x = 0`). This is exactly `lifetimes.utils.summary_data_from_transaction_data`
//!   with `freq="D"`.
//! - Rhythm: mean and coefficient of variation (sample std / mean) of the gaps between purchase
//!   days; order trend `(orders_last_90d − orders_prev_90d) / (sum)`.

mod clicks;
mod partial;
mod profiles;
mod rhythm;
mod switching;
mod table;

use rayon::prelude::*;

pub use clicks::{
    day_of, engagement_features, engagement_from_partials, ClickPartial, ClickPartials, Clicks,
    EventType,
};
pub use partial::{from_micros, to_micros, Micros, OrderPartial, OrderPartials};
pub use profiles::{profile_features, Profiles};
pub use rhythm::{coefficient_of_variation, mean};
pub use switching::{
    add_switching_costs, add_switching_costs_with, switching_inputs, SwitchingRefs,
    SWITCHING_OUTPUTS,
};
pub use table::{Column, CustomerIndex, FeatureError, FeatureTable, Labels, Nullable, Values};

/// Days since 1970-01-01 (UTC calendar date).
pub type Day = i32;

/// Canonical orders: one row per accepted order (order lines already summed), columnar.
///
/// `customer` indexes `customer_ids`. The input crate builds this after validation, with its own
/// dictionary; [`Orders::reindex`] keys it by the run's [`CustomerIndex`], which is what
/// [`compute`] expects. Orders after the as-of day may be present and are ignored.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Orders {
    /// Customer dictionary; index = customer key.
    pub customer_ids: Vec<String>,
    /// Customer key of each order.
    pub customer: Vec<u32>,
    /// UTC calendar day of the order.
    pub day: Vec<Day>,
    /// Purchase amount (≥ 0) of the order's valid lines; 0 for refund-only orders.
    pub amount: Vec<f64>,
    /// Refunded amount (≥ 0): negative lines and `returned` lines.
    pub refund: Vec<f64>,
    /// True when the order has at least one valid purchase line (it counts in `frequency`).
    pub is_purchase: Vec<bool>,
    /// Discount on the order's purchase lines (`discount_amount`, ≥ 0; 0 without one), parallel
    /// to the orders when `discount_column`, else empty.
    pub discount: Vec<f64>,
    /// Whether the input had a discount column.
    pub discount_column: bool,
    /// Categories bought in each order, as CSR: the ids of order `i` are
    /// `category_ids[category_start[i]..category_start[i + 1]]` (distinct, ascending), indexes
    /// into `category_names`. All empty when the input has no category column.
    pub category_start: Vec<u32>,
    pub category_ids: Vec<u32>,
    pub category_names: Vec<String>,
}

impl Orders {
    pub fn len(&self) -> usize {
        self.customer.len()
    }

    /// Whether the input had a discount column (for an empty input: never).
    pub fn has_discounts(&self) -> bool {
        self.discount_column
    }

    /// Whether the input had a category column.
    pub fn has_categories(&self) -> bool {
        !self.category_start.is_empty()
    }

    /// The categories of order `i`.
    pub fn categories(&self, i: usize) -> &[u32] {
        if self.category_start.is_empty() {
            return &[];
        }
        &self.category_ids[self.category_start[i] as usize..self.category_start[i + 1] as usize]
    }

    /// The orders of the customers in piece `i`, where `part[k]` is the piece of
    /// `customer_ids[k]`: with their own customer dictionary (first-seen order) and every
    /// category name; orders keep their relative order.
    pub fn piece(&self, part: &[u32], i: u32) -> Orders {
        let mut o = Orders {
            discount_column: self.discount_column,
            category_start: if self.has_categories() {
                vec![0]
            } else {
                Vec::new()
            },
            category_names: self.category_names.clone(),
            ..Orders::default()
        };
        let mut key = vec![u32::MAX; self.customer_ids.len()];
        for r in 0..self.len() {
            let c = self.customer[r] as usize;
            if part[c] != i {
                continue;
            }
            if key[c] == u32::MAX {
                key[c] = o.customer_ids.len() as u32;
                o.customer_ids.push(self.customer_ids[c].clone());
            }
            o.push_from(self, r, key[c]);
        }
        o
    }

    /// Appends `other`'s orders, its customers and categories merged into these dictionaries
    /// (`at` maps ids already here to their key; kept up to date).
    pub fn append(&mut self, other: &Orders, at: &mut IdKeys) {
        if self.is_empty() && self.customer_ids.is_empty() {
            self.discount_column = other.discount_column;
            if other.has_categories() && self.category_start.is_empty() {
                self.category_start.push(0);
            }
        }
        let keys: Vec<u32> = other
            .customer_ids
            .iter()
            .map(|id| match at.get(id.as_str()) {
                Some(&k) => k,
                None => {
                    let k = self.customer_ids.len() as u32;
                    self.customer_ids.push(id.clone());
                    at.insert(id.clone(), k);
                    k
                }
            })
            .collect();
        let categories: Vec<u32> = other
            .category_names
            .iter()
            .map(
                |name| match self.category_names.iter().position(|n| n == name) {
                    Some(p) => p as u32,
                    None => {
                        self.category_names.push(name.clone());
                        self.category_names.len() as u32 - 1
                    }
                },
            )
            .collect();
        // Column by column (the pieces of one run share its category names in one order, so
        // their category ids usually carry over as they are).
        self.customer
            .extend(other.customer.iter().map(|&c| keys[c as usize]));
        self.day.extend_from_slice(&other.day);
        self.amount.extend_from_slice(&other.amount);
        self.refund.extend_from_slice(&other.refund);
        self.is_purchase.extend_from_slice(&other.is_purchase);
        if other.discount_column {
            self.discount.extend_from_slice(&other.discount);
        }
        if other.has_categories() {
            let base = self.category_ids.len() as u32;
            if categories.iter().enumerate().all(|(i, &c)| c as usize == i) {
                self.category_ids.extend_from_slice(&other.category_ids);
            } else {
                for r in 0..other.len() {
                    // The order's categories re-keyed to this dictionary, ascending again.
                    let from = self.category_ids.len();
                    self.category_ids.extend(
                        other
                            .categories(r)
                            .iter()
                            .map(|&id| categories[id as usize]),
                    );
                    self.category_ids[from..].sort_unstable();
                }
            }
            self.category_start
                .extend(other.category_start[1..].iter().map(|&s| base + s));
        }
    }

    /// Appends order `r` of `from` (categories with `from`'s ids) under customer key `key`.
    fn push_from(&mut self, from: &Orders, r: usize, key: u32) {
        self.customer.push(key);
        self.day.push(from.day[r]);
        self.amount.push(from.amount[r]);
        self.refund.push(from.refund[r]);
        self.is_purchase.push(from.is_purchase[r]);
        if from.discount_column {
            self.discount.push(from.discount[r]);
        }
        if from.has_categories() {
            self.category_ids.extend_from_slice(from.categories(r));
            self.category_start.push(self.category_ids.len() as u32);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.customer.is_empty()
    }

    /// Whether each customer's orders are together, customers in key order (what
    /// [`Orders::into_indexed`] leaves unless the customers' orders were already together in
    /// another order).
    pub fn grouped_by_customer(&self) -> bool {
        self.customer.par_windows(2).all(|w| w[0] <= w[1])
    }

    /// Ids of the customers with an order (of any kind) on or before `as_of`.
    pub fn customers_until(&self, as_of: Day) -> impl Iterator<Item = &str> + '_ {
        self.customer_ids
            .iter()
            .zip(self.seen_until(as_of))
            .filter(|(_, s)| *s)
            .map(|(id, _)| id.as_str())
    }

    /// Per customer of `customer_ids`, whether they have an order on or before `as_of`.
    pub fn seen_until(&self, as_of: Day) -> Vec<bool> {
        let mut seen = vec![false; self.customer_ids.len()];
        for (c, d) in self.customer.iter().zip(&self.day) {
            seen[*c as usize] |= *d <= as_of;
        }
        seen
    }

    /// The same orders keyed by `index` positions, in place (`customer_ids` emptied: `customer`
    /// is an index position); orders of customers outside the index are dropped.
    pub fn reindex(self, index: &CustomerIndex) -> Orders {
        let at = index.positions(&self.customer_ids);
        self.reindex_at(&at)
    }

    /// [`Orders::reindex`] with each customer's position given (`at[k]` for `customer_ids[k]`,
    /// e.g. from [`CustomerIndex::union`]).
    pub fn reindex_at(mut self, at: &[Option<u32>]) -> Orders {
        self.customer_ids = Vec::new();
        let key = self
            .customer
            .par_iter()
            .map(|&c| at[c as usize].unwrap_or(DROP))
            .collect();
        self.regroup(key);
        self
    }

    /// Re-keys the orders: order `i` gets customer `key[i]`, or is dropped when that is
    /// [`DROP`]; then, unless each customer's orders are already together, they are moved
    /// together, customers in key order (a stable counting sort: a customer's orders keep their
    /// order). Stages that walk the orders customer by customer then read memory in sequence
    /// whatever order the export had (an export in time order interleaves customers; walking it
    /// by customer cost twice the time of the features stage).
    fn regroup(&mut self, key: Vec<u32>) {
        if !key.par_iter().any(|&k| k == DROP) && in_runs(&key) {
            self.customer = key;
            return;
        }
        let (_, perm) = partial::counting_sort(&key, key_count(&key));
        fn gather<T: Copy + Send + Sync>(v: &[T], perm: &[u32]) -> Vec<T> {
            perm.par_iter().map(|&i| v[i as usize]).collect()
        }
        self.customer = gather(&key, &perm);
        drop(key);
        self.day = gather(&self.day, &perm);
        self.amount = gather(&self.amount, &perm);
        self.refund = gather(&self.refund, &perm);
        self.is_purchase = gather(&self.is_purchase, &perm);
        if self.discount_column {
            self.discount = gather(&self.discount, &perm);
        }
        if self.has_categories() {
            let mut start = Vec::with_capacity(perm.len() + 1);
            let mut ids = Vec::with_capacity(self.category_ids.len());
            start.push(0);
            for &i in &perm {
                ids.extend_from_slice(self.categories(i as usize));
                start.push(ids.len() as u32);
            }
            self.category_start = start;
            self.category_ids = ids;
        }
    }

    /// The run's index of these orders (customers with an order on or before `as_of`) and the
    /// orders keyed by it, what [`compute`] takes. Consumes the orders: the id strings move into
    /// the index, so the keyed orders' `customer_ids` is empty — their `customer` is an index
    /// position. Each customer's orders end up together (copied into index order only when
    /// they were not; see [`Orders::regroup`]).
    pub fn into_indexed(mut self, as_of: Day) -> (CustomerIndex, Orders) {
        let n = self.customer_ids.len();
        let mut seen = vec![false; n];
        for (c, d) in self.customer.iter().zip(&self.day) {
            if *d <= as_of {
                seen[*c as usize] = true;
            }
        }
        let ids = &self.customer_ids;
        // Sorted by id as text: each key carries its id's first 8 bytes (big-endian, padded
        // with zeros), which order most pairs without following the pointer to the text; equal
        // prefixes fall back to the whole ids.
        let mut keyed: Vec<(u64, u32)> = (0..n as u32)
            .into_par_iter()
            .filter(|&k| seen[k as usize])
            .map(|k| (text_prefix(&ids[k as usize]), k))
            .collect();
        keyed.par_sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| ids[a.1 as usize].cmp(&ids[b.1 as usize]))
        });
        let keys: Vec<u32> = keyed.into_iter().map(|(_, k)| k).collect();
        let mut position = vec![u32::MAX; n];
        for (p, &k) in keys.iter().enumerate() {
            position[k as usize] = p as u32;
        }
        let index_ids: Vec<String> = keys
            .iter()
            .map(|&k| std::mem::take(&mut self.customer_ids[k as usize]))
            .collect();
        self.customer_ids = Vec::new();
        let key = self
            .customer
            .par_iter()
            .map(|&c| position[c as usize])
            .collect();
        self.regroup(key);
        (CustomerIndex::from_sorted(index_ids), self)
    }

    /// Latest day with a valid purchase, if any.
    pub fn last_purchase_day(&self) -> Option<Day> {
        self.day
            .iter()
            .zip(&self.is_purchase)
            .filter(|(_, p)| **p)
            .map(|(d, _)| *d)
            .max()
    }
}

/// The first 8 bytes of `id` as a big-endian number (zero-padded): when two ids' prefixes
/// differ, they order the ids as their bytes do.
fn text_prefix(id: &str) -> u64 {
    let mut b = [0u8; 8];
    let n = id.len().min(8);
    b[..n].copy_from_slice(&id.as_bytes()[..n]);
    u64::from_be_bytes(b)
}

/// Customer ids already in an [`Orders`]' dictionary, to their key (see [`Orders::append`]).
pub type IdKeys = std::collections::HashMap<String, u32, foldhash::fast::FixedState>;

/// A key that drops an order (see [`Orders::regroup`]).
pub(crate) const DROP: u32 = u32::MAX;

/// Whether each key's orders are already together (one run per key, the runs in any order):
/// an export sorted by a customer id whose text order is not the index's (integer ids), or by
/// anything that keeps a customer's orders together. Walking such orders customer by customer
/// reads each run in sequence, so they need no copy into key order.
fn in_runs(key: &[u32]) -> bool {
    partial::runs(key, key_count(key)).is_some()
}

/// Keys below this bound every key of `key` but [`DROP`].
fn key_count(key: &[u32]) -> usize {
    key.par_iter()
        .filter(|&&k| k != DROP)
        .max()
        .map_or(0, |&m| m as usize + 1)
}

/// Per-customer row computed independently of every other customer.
#[derive(Debug, Clone, Default)]
struct Row {
    frequency: i64,
    purchase_days: i64,
    monetary: f64,
    /// monetary − refunds, subtracted in exact micro-units.
    net_revenue: f64,
    discounted: u32,
    discount_rate_nanos: i64,
    categories_bought: i64,
    refunds: f64,
    first: Option<Day>,
    last: Option<Day>,
    btyd_m: Option<f64>,
    ipt_mean: Option<f64>,
    ipt_cv: Option<f64>,
    last_90: i64,
    prev_90: i64,
}

/// Order features for every one of the `customers` of the index (`orders` keyed by it, see
/// [`Orders::into_indexed`]), in index order, so the output does not depend on the order of the
/// input rows: the [`OrderPartials`] of all orders, finished — a block of customers at a time, so
/// the partials of every customer never exist at once (the same table as
/// `features(&OrderPartials::from_orders(..))`).
pub fn compute(orders: &Orders, customers: usize, as_of: Day) -> FeatureTable {
    let by = partial::ByCustomer::of(orders, customers);
    let inputs = InputColumns {
        has_discounts: orders.has_discounts(),
        has_categories: orders.has_categories(),
    };
    in_blocks(customers, as_of, inputs, |block| {
        block
            .into_par_iter()
            .map_init(OrderPartial::default, |p, c| {
                by.partial_into(orders, c, as_of, p);
                (!p.is_empty()).then(|| customer_row(p, as_of))
            })
            .collect()
    })
}

/// Finishes merged partials into the order features at `as_of` (the partials must hold no order
/// after it).
pub fn features(partials: &OrderPartials, as_of: Day) -> FeatureTable {
    let inputs = InputColumns {
        has_discounts: partials.has_discounts,
        has_categories: partials.has_categories,
    };
    in_blocks(partials.parts.len(), as_of, inputs, |block| {
        partials.parts[block]
            .par_iter()
            .map(|p| (!p.is_empty()).then(|| customer_row(p, as_of)))
            .collect()
    })
}

/// Which optional order columns the input had: without one, the features that need it are
/// null, not 0.
#[derive(Debug, Clone, Copy)]
struct InputColumns {
    has_discounts: bool,
    has_categories: bool,
}

/// The feature table of `n` customers, whose rows `rows` gives a block at a time: each block's
/// rows are computed, turned into columns and freed, so the per-customer rows (≈ 150 bytes
/// each) never exist for every customer at once.
fn in_blocks(
    n: usize,
    as_of: Day,
    inputs: InputColumns,
    rows: impl Fn(std::ops::Range<usize>) -> Vec<Option<Row>>,
) -> FeatureTable {
    const BLOCK: usize = 1 << 16;
    let mut table: Option<FeatureTable> = None;
    for start in (0..n).step_by(BLOCK) {
        let t = block_table(&rows(start..n.min(start + BLOCK)), as_of, inputs);
        match &mut table {
            Some(all) => all.append_rows(t, n),
            None => table = Some(t),
        }
    }
    table.unwrap_or_else(|| block_table(&[], as_of, inputs))
}

/// The order features of some customers' rows.
fn block_table(rows: &[Option<Row>], as_of: Day, inputs: InputColumns) -> FeatureTable {
    let mut t = feature_table(rows, as_of);
    // Promotion sensitivity and category breadth: null, not 0, when the input lacks the column.
    let ratio = |num: &(dyn Fn(&Row) -> f64 + Sync)| -> Nullable<f64> {
        rows.par_iter()
            .map(|r| {
                r.as_ref()
                    .filter(|r| r.frequency > 0)
                    .map(|r| num(r) / r.frequency as f64)
            })
            .collect()
    };
    t.push(
        "discounted_order_share",
        "share of purchase orders with a discount (discount_amount > 0); null without a discount column",
        Values::Float(if inputs.has_discounts {
            ratio(&|r| f64::from(r.discounted))
        } else {
            Nullable::nulls(rows.len())
        }),
    );
    t.push(
        "mean_discount_rate",
        "mean over purchase orders of discount / (amount + discount), undiscounted orders 0; null without a discount column",
        Values::Float(if inputs.has_discounts {
            ratio(&|r| r.discount_rate_nanos as f64 / 1e9)
        } else {
            Nullable::nulls(rows.len())
        }),
    );
    t.push(
        "categories_bought",
        "distinct categories of the purchased order lines (count); null without a category column",
        Values::Int(if inputs.has_categories {
            rows.par_iter()
                .map(|r| r.as_ref().map(|r| r.categories_bought))
                .collect()
        } else {
            Nullable::nulls(rows.len())
        }),
    );
    t
}

/// The order features as named columns: the `customer_features` contract, in output order.
/// Adding an order feature is a field of [`Row`], its computation, and one line here.
fn feature_table(rows: &[Option<Row>], as_of: Day) -> FeatureTable {
    // One parallel pass over the rows per column: a column is one line below.
    let col = |f: &(dyn Fn(&Row) -> Option<i64> + Sync)| -> Nullable<i64> {
        rows.par_iter().map(|r| r.as_ref().and_then(f)).collect()
    };
    let flt = |f: &(dyn Fn(&Row) -> Option<f64> + Sync)| -> Nullable<f64> {
        rows.par_iter().map(|r| r.as_ref().and_then(f)).collect()
    };
    let day = |f: &(dyn Fn(&Row) -> Option<Day> + Sync)| -> Nullable<Day> {
        rows.par_iter().map(|r| r.as_ref().and_then(f)).collect()
    };
    let since = |d: Option<Day>| d.map(|d| i64::from(as_of) - i64::from(d));
    let mut t = FeatureTable::new(rows.len());
    use Values::{Date, Float, Int};
    t.push(
        "frequency",
        "distinct valid orders on or before the as-of day (count)",
        Int(col(&|r| Some(r.frequency))),
    );
    t.push(
        "purchase_days",
        "distinct days with a valid order (count)",
        Int(col(&|r| Some(r.purchase_days))),
    );
    t.push(
        "monetary",
        "sum of valid order amounts (currency)",
        Float(flt(&|r| Some(r.monetary))),
    );
    t.push(
        "refunds",
        "refunded amounts: negative lines, and returned orders that count as purchases (currency)",
        Float(flt(&|r| Some(r.refunds))),
    );
    t.push(
        "net_revenue",
        "monetary − refunds (currency)",
        Float(flt(&|r| Some(r.net_revenue))),
    );
    t.push(
        "aov",
        "average order value, monetary / frequency (currency); null without a purchase",
        Float(flt(&|r| {
            (r.frequency > 0).then(|| r.monetary / r.frequency as f64)
        })),
    );
    t.push(
        "first_order_date",
        "first purchase day (date)",
        Date(day(&|r| r.first)),
    );
    t.push(
        "last_order_date",
        "last purchase day (date)",
        Date(day(&|r| r.last)),
    );
    t.push(
        "recency_days",
        "as-of day − last purchase day (days)",
        Int(col(&|r| since(r.last))),
    );
    t.push(
        "tenure_days",
        "as-of day − first purchase day (days)",
        Int(col(&|r| since(r.first))),
    );
    t.push(
        "btyd_x",
        "repeat purchase days: purchase days − 1 (count)",
        Int(col(&|r| r.first.map(|_| r.purchase_days - 1))),
    );
    t.push(
        "btyd_t_x",
        "last − first purchase day (days)",
        Int(col(&|r| {
            r.first
                .zip(r.last)
                .map(|(f, l)| i64::from(l) - i64::from(f))
        })),
    );
    t.push(
        "btyd_T",
        "as-of day − first purchase day (days)",
        Int(col(&|r| since(r.first))),
    );
    t.push(
        "btyd_m",
        "mean spend of the repeat purchase days (currency); null when btyd_x = 0",
        Float(flt(&|r| r.btyd_m)),
    );
    t.push(
        "ipt_mean_days",
        "mean gap between purchase days (days)",
        Float(flt(&|r| r.ipt_mean)),
    );
    t.push(
        "ipt_cv",
        "coefficient of variation of the gaps between purchase days",
        Float(flt(&|r| r.ipt_cv)),
    );
    t.push(
        "orders_last_90d",
        "valid orders in the 90 days up to the as-of day (count)",
        Int(col(&|r| Some(r.last_90))),
    );
    t.push(
        "orders_prev_90d",
        "valid orders in the 90 days before those (count)",
        Int(col(&|r| Some(r.prev_90))),
    );
    t.push(
        "order_trend",
        "(orders_last_90d − orders_prev_90d) / their sum, in [−1, 1]; null when both are 0",
        Float(flt(&|r| {
            let total = r.last_90 + r.prev_90;
            (total > 0).then(|| (r.last_90 - r.prev_90) as f64 / total as f64)
        })),
    );
    t
}

/// Distinct purchase days per customer key in `(after, until]`: the holdout purchases of a
/// backtest, counted like `btyd_x` (same-day orders merged).
pub fn purchase_days_between(
    orders: &Orders,
    customers: usize,
    after: Day,
    until: Day,
) -> Vec<i64> {
    let mut days: Vec<(u32, Day)> = (0..orders.len())
        .filter(|&i| orders.is_purchase[i] && orders.day[i] > after && orders.day[i] <= until)
        .map(|i| (orders.customer[i], orders.day[i]))
        .collect();
    days.par_sort_unstable();
    days.dedup();
    let mut counts = vec![0i64; customers];
    for (c, _) in days {
        counts[c as usize] += 1;
    }
    counts
}

/// Repeat purchase days per calendar day up to `until`: every customer's distinct purchase
/// days but their first, counted by day, ascending (days without one are absent). `keep`: the
/// customers (index positions) to count; all without one. What a seasonal index compares the
/// models' expected repeat purchases with; partitions' counts add up.
pub fn repeat_purchase_days(orders: &Orders, until: Day, keep: Option<&[bool]>) -> Vec<(Day, u64)> {
    let mut days: Vec<(u32, Day)> = (0..orders.len())
        .filter(|&i| {
            orders.is_purchase[i]
                && orders.day[i] <= until
                && keep.is_none_or(|k| k[orders.customer[i] as usize])
        })
        .map(|i| (orders.customer[i], orders.day[i]))
        .collect();
    days.par_sort_unstable();
    days.dedup();
    let mut repeat: Vec<Day> = days
        .iter()
        .enumerate()
        .filter(|&(k, d)| k > 0 && days[k - 1].0 == d.0)
        .map(|(_, d)| d.1)
        .collect();
    repeat.par_sort_unstable();
    let mut out: Vec<(Day, u64)> = Vec::new();
    for d in repeat {
        match out.last_mut() {
            Some(last) if last.0 == d => last.1 += 1,
            _ => out.push((d, 1)),
        }
    }
    out
}

/// One customer's features from their partial.
fn customer_row(p: &OrderPartial, as_of: Day) -> Row {
    let days = &p.days;
    let mut row = Row {
        discounted: p.discounted,
        discount_rate_nanos: p.discount_rate_nanos,
        categories_bought: p.categories.len() as i64,
        refunds: from_micros(p.refunds),
        purchase_days: days.len() as i64,
        first: days.first().map(|d| d.0),
        last: days.last().map(|d| d.0),
        ..Row::default()
    };
    let mut spend: Micros = 0;
    for &(day, micros, orders) in days {
        row.frequency += i64::from(orders);
        spend += micros;
        if as_of - day < 90 {
            row.last_90 += i64::from(orders);
        } else if as_of - day < 180 {
            row.prev_90 += i64::from(orders);
        }
    }
    row.monetary = from_micros(spend);
    row.net_revenue = from_micros(spend - p.refunds);
    if days.len() > 1 {
        let repeat: Micros = days[1..].iter().map(|d| d.1).sum();
        row.btyd_m = Some(from_micros(repeat) / (days.len() - 1) as f64);
        let gaps: Vec<f64> = days
            .windows(2)
            .map(|w| f64::from(w[1].0 - w[0].0))
            .collect();
        row.ipt_mean = mean(&gaps);
        row.ipt_cv = coefficient_of_variation(&gaps);
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Ids whose prefixes differ are ordered by them as by their text (short ids, ids that
        /// are prefixes of others, zero bytes, multi-byte characters).
        #[test]
        fn text_prefixes_order_ids_as_their_text(a in "[0-9a\\x00é]{0,10}", b in "[0-9a\\x00é]{0,10}") {
            let (pa, pb) = (text_prefix(&a), text_prefix(&b));
            if pa != pb {
                prop_assert_eq!(pa.cmp(&pb), a.cmp(&b));
            }
        }
    }

    fn orders(rows: &[(&str, Day, f64, f64, bool)]) -> Orders {
        let mut ids: Vec<String> = rows.iter().map(|r| r.0.to_string()).collect();
        ids.sort();
        ids.dedup();
        let mut o = Orders {
            customer_ids: ids.clone(),
            ..Default::default()
        };
        for r in rows {
            o.customer
                .push(ids.iter().position(|c| c == r.0).unwrap_or_default() as u32);
            o.day.push(r.1);
            o.amount.push(r.2);
            o.refund.push(r.3);
            o.is_purchase.push(r.4);
        }
        o
    }

    fn ints(t: &FeatureTable, name: &str) -> Vec<Option<i64>> {
        t.int(name).unwrap().to_vec()
    }

    fn floats(t: &FeatureTable, name: &str) -> Vec<Option<f64>> {
        t.float(name).unwrap().to_vec()
    }

    #[test]
    fn keyed_orders_are_grouped_by_customer_in_index_order() {
        // Customers interleaved, as an export in time order has them; categories move with
        // their orders.
        let mut o = orders(&[
            ("c", 1, 1.0, 0.0, true),
            ("a", 2, 2.0, 0.0, true),
            ("c", 3, 3.0, 0.0, true),
            ("b", 4, 4.0, 0.0, true),
            ("a", 5, 5.0, 0.0, true),
        ]);
        o.category_names = vec!["x".into(), "y".into()];
        o.category_start = vec![0, 1, 1, 3, 3, 4];
        o.category_ids = vec![0, 0, 1, 1];
        let (index, keyed) = o.clone().into_indexed(10);
        assert_eq!(index.ids(), ["a", "b", "c"]);
        assert_eq!(keyed.customer, [0, 0, 1, 2, 2]);
        assert_eq!(keyed.day, [2, 5, 4, 1, 3]);
        assert_eq!(keyed.amount, [2.0, 5.0, 4.0, 1.0, 3.0]);
        let cats: Vec<&[u32]> = (0..5).map(|i| keyed.categories(i)).collect();
        assert_eq!(cats, [&[][..], &[1], &[], &[0], &[0, 1]]);
        assert_eq!(o.reindex(&index), keyed);
    }

    #[test]
    fn appended_pieces_merge_customers_and_categories() {
        // Piece a: customers x, y; categories named [b, a]. Piece b: customers y, z; [a, c].
        let piece = |ids: &[&str], names: &[&str], rows: &[(u32, &[u32])]| {
            let mut o = Orders {
                customer_ids: ids.iter().map(|s| s.to_string()).collect(),
                category_names: names.iter().map(|s| s.to_string()).collect(),
                category_start: vec![0],
                discount_column: true,
                ..Default::default()
            };
            for (k, (c, cats)) in rows.iter().enumerate() {
                o.customer.push(*c);
                o.day.push(k as Day);
                o.amount.push(10.0 + k as f64);
                o.refund.push(0.0);
                o.is_purchase.push(true);
                o.discount.push(k as f64);
                o.category_ids.extend_from_slice(cats);
                o.category_start.push(o.category_ids.len() as u32);
            }
            o
        };
        let a = piece(&["x", "y"], &["b", "a"], &[(0, &[0, 1]), (1, &[1])]);
        let b = piece(&["y", "z"], &["a", "c"], &[(0, &[0, 1]), (1, &[])]);
        let mut all = Orders::default();
        let mut at = IdKeys::default();
        all.append(&a, &mut at);
        all.append(&b, &mut at);
        assert_eq!(all.customer_ids, ["x", "y", "z"]);
        assert_eq!(all.customer, [0, 1, 1, 2]);
        assert_eq!(all.category_names, ["b", "a", "c"]);
        let names = |i: usize| -> Vec<&str> {
            all.categories(i)
                .iter()
                .map(|&c| all.category_names[c as usize].as_str())
                .collect()
        };
        assert_eq!(
            (names(0), names(1), names(2), names(3)),
            (vec!["b", "a"], vec!["a"], vec!["a", "c"], vec![])
        );
        // Ids ascending within each order.
        assert!((0..4).all(|i| all.categories(i).windows(2).all(|w| w[0] < w[1])));
        assert_eq!(all.day, [0, 1, 0, 1]);
        assert_eq!(all.discount, [0.0, 1.0, 0.0, 1.0]);
        assert_eq!(all.amount, [10.0, 11.0, 10.0, 11.0]);
    }

    #[test]
    fn orders_together_in_another_order_stay_in_place() {
        assert!(in_runs(&[2, 2, 0, 1, 1]));
        assert!(!in_runs(&[2, 0, 2]));
        assert!(in_runs(&[]));
        // Integer-like ids exported in numeric order: their index (text) order differs.
        let rows = [
            ("9", 1, 5.0, 0.0, true),
            ("9", 2, 6.0, 0.0, true),
            ("10", 1, 7.0, 0.0, true),
            ("10", 3, 1.0, 0.5, false),
            ("11", 2, 2.0, 0.0, true),
        ];
        let (index, runs) = orders(&rows).into_indexed(10);
        assert_eq!(index.ids(), ["10", "11", "9"]);
        assert_eq!(runs.customer, [2, 2, 0, 0, 1]);
        assert!(!runs.grouped_by_customer());
        // The same rows in index order: moved nowhere either, and the same features.
        let sorted = [rows[2], rows[3], rows[4], rows[0], rows[1]];
        let (_, grouped) = orders(&sorted).into_indexed(10);
        assert!(grouped.grouped_by_customer());
        assert_eq!(compute(&runs, 3, 10), compute(&grouped, 3, 10));
        // Interleaved customers are copied into index order.
        let mixed = [rows[0], rows[2], rows[1], rows[3], rows[4]];
        let (_, copied) = orders(&mixed).into_indexed(10);
        assert_eq!(copied.customer, [0, 0, 1, 2, 2]);
        assert_eq!(compute(&copied, 3, 10), compute(&grouped, 3, 10));
    }

    #[test]
    fn features_built_in_blocks_equal_one_pass_over_every_customer() {
        // More customers than a block, with nulls (prospects) and every kind of order.
        let n = 150_000usize;
        let mut o = Orders {
            customer_ids: (0..n).map(|i| format!("{i:06}")).collect(),
            discount_column: true,
            ..Default::default()
        };
        for c in 0..n {
            for k in 0..(c % 4) {
                o.customer.push(c as u32);
                o.day.push((c * 7 + k * 31) as Day % 400);
                o.amount.push((c % 97) as f64 + k as f64);
                o.refund.push(if k == 2 { 3.5 } else { 0.0 });
                o.is_purchase.push(k != 2);
                o.discount.push((k % 2) as f64);
            }
        }
        let partials = OrderPartials::from_orders(&o, n, 400);
        let rows: Vec<Option<Row>> = partials
            .parts
            .iter()
            .map(|p| (!p.is_empty()).then(|| customer_row(p, 400)))
            .collect();
        let blocks = features(&partials, 400);
        assert_eq!(blocks.len(), n);
        let inputs = InputColumns {
            has_discounts: true,
            has_categories: false,
        };
        assert_eq!(blocks, block_table(&rows, 400, inputs));
        // Partials made a block at a time from the orders: the same table.
        assert_eq!(compute(&o, n, 400), blocks);
        // And from orders in another order: customers' runs reversed (read as runs), and
        // customers interleaved, by day (found by the counting sort).
        let shuffle = |perm: &[usize]| {
            let mut shuffled = o.clone();
            shuffled.customer = perm.iter().map(|&i| o.customer[i]).collect();
            shuffled.day = perm.iter().map(|&i| o.day[i]).collect();
            shuffled.amount = perm.iter().map(|&i| o.amount[i]).collect();
            shuffled.refund = perm.iter().map(|&i| o.refund[i]).collect();
            shuffled.is_purchase = perm.iter().map(|&i| o.is_purchase[i]).collect();
            shuffled.discount = perm.iter().map(|&i| o.discount[i]).collect();
            assert!(!shuffled.grouped_by_customer());
            shuffled
        };
        let reversed = shuffle(&(0..o.customer.len()).rev().collect::<Vec<_>>());
        assert!(matches!(
            partial::ByCustomer::of(&reversed, n),
            partial::ByCustomer::Runs(_)
        ));
        assert_eq!(compute(&reversed, n, 400), blocks);
        let mut by_day: Vec<usize> = (0..o.customer.len()).collect();
        by_day.sort_by_key(|&i| (o.day[i], i));
        let interleaved = shuffle(&by_day);
        assert!(matches!(
            partial::ByCustomer::of(&interleaved, n),
            partial::ByCustomer::Sorted { .. }
        ));
        assert_eq!(compute(&interleaved, n, 400), blocks);
        assert_eq!(blocks.int("frequency").unwrap().get(4), None);
        assert_eq!(blocks.int("frequency").unwrap().get(149_999), Some(2));
    }

    #[test]
    fn btyd_summary_merges_same_day_purchases() {
        // Day 0 twice (merged), day 10, day 30; as-of 100.
        let o = orders(&[
            ("a", 0, 10.0, 0.0, true),
            ("a", 0, 5.0, 0.0, true),
            ("a", 10, 20.0, 0.0, true),
            ("a", 30, 40.0, 0.0, true),
        ]);
        let f = compute(&o, 1, 100);
        assert_eq!(ints(&f, "frequency"), vec![Some(4)]);
        assert_eq!(ints(&f, "btyd_x"), vec![Some(2)]);
        assert_eq!(ints(&f, "btyd_t_x"), vec![Some(30)]);
        assert_eq!(ints(&f, "btyd_T"), vec![Some(100)]);
        assert_eq!(floats(&f, "btyd_m"), vec![Some(30.0)]);
        assert_eq!(ints(&f, "recency_days"), vec![Some(70)]);
        assert_eq!(floats(&f, "monetary"), vec![Some(75.0)]);
        assert_eq!(floats(&f, "ipt_mean_days"), vec![Some(15.0)]);
    }

    #[test]
    fn orders_after_as_of_are_ignored_and_refunds_reduce_net_revenue() {
        let o = orders(&[
            ("b", 5, 100.0, 0.0, true),
            ("b", 6, 0.0, 30.0, false),
            ("b", 50, 70.0, 0.0, true),
            ("c", 60, 0.0, 10.0, false),
        ]);
        let index = CustomerIndex::new(o.customers_until(20).map(String::from));
        assert_eq!(index.ids(), ["b"]);
        let (consumed, keyed) = o.clone().into_indexed(20);
        assert_eq!(consumed, index);
        assert_eq!(keyed.customer, vec![0, 0, 0]);
        assert_eq!(
            compute(&keyed, 1, 20),
            compute(&o.clone().reindex(&index), 1, 20)
        );
        let f = compute(&o.clone().reindex(&index), index.len(), 20);
        assert_eq!(ints(&f, "frequency"), vec![Some(1)]);
        assert_eq!(floats(&f, "net_revenue"), vec![Some(70.0)]);
        assert_eq!(ints(&f, "btyd_x"), vec![Some(0)]);
        assert_eq!(floats(&f, "btyd_m"), vec![None]);

        let index = CustomerIndex::new(o.customers_until(60).map(String::from));
        let f = compute(&o.clone().reindex(&index), index.len(), 60);
        assert_eq!(index.ids(), ["b", "c"]);
        assert_eq!(ints(&f, "frequency"), vec![Some(2), Some(0)]);
        assert_eq!(ints(&f, "recency_days"), vec![Some(10), None]);
        assert_eq!(floats(&f, "net_revenue"), vec![Some(140.0), Some(-10.0)]);
    }

    #[test]
    fn a_prospect_has_null_order_features() {
        let o = orders(&[("b", 5, 100.0, 0.0, true)]);
        let index = CustomerIndex::new(["a", "b"].map(String::from));
        let f = compute(&o.clone().reindex(&index), index.len(), 10);
        assert_eq!(ints(&f, "frequency"), vec![None, Some(1)]);
        assert_eq!(floats(&f, "monetary"), vec![None, Some(100.0)]);
    }
}
