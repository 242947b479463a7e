//! Per-customer features from canonical orders: RFM, net revenue, the BTYD summary and purchase
//! rhythm (DESIGN §3). Pure compute: takes [`Orders`] already validated by `patronage-input` and an
//! as-of day, returns one row per customer in [`CustomerFeatures`]. Never reads files or the clock.
//!
//! Definitions (unit = day; a *valid order* is a non-cancelled order with a purchase amount ≥ 0):
//! - `frequency`: distinct valid orders; `monetary`: their summed amount; `refunds`: refunded
//!   amounts (negative lines and `returned` orders); `net_revenue = monetary − refunds`.
//! - `recency_days = as_of − last_order_date`, `tenure_days = as_of − first_order_date`.
//! - BTYD summary after Fader & Hardie: orders on the same day are merged into one *purchase day*;
//!   `btyd_x` = purchase days − 1 (repeat purchase days), `btyd_t_x` = last − first purchase day,
//!   `btyd_T` = as_of − first purchase day, `btyd_m` = mean spend of the repeat purchase days
//!   (null when `btyd_x = 0`). This is exactly `lifetimes.utils.summary_data_from_transaction_data`
//!   with `freq="D"`.
//! - Rhythm: mean and coefficient of variation (sample std / mean) of the gaps between purchase
//!   days; order trend `(orders_last_90d − orders_prev_90d) / (sum)`.

mod rhythm;

use rayon::prelude::*;

pub use rhythm::{coefficient_of_variation, mean};

/// Days since 1970-01-01 (UTC calendar date).
pub type Day = i32;

/// Canonical orders: one row per accepted order (order lines already summed), columnar.
///
/// `customer` indexes `customer_ids`. The input crate builds this after validation; orders after
/// the as-of day may be present and are ignored by [`compute`].
#[derive(Debug, Clone, Default, PartialEq)]
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
}

impl Orders {
    pub fn len(&self) -> usize {
        self.customer.len()
    }

    pub fn is_empty(&self) -> bool {
        self.customer.is_empty()
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

/// One row per customer; `Option` columns are null for customers without a valid purchase.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerFeatures {
    /// Index of the customer in `Orders::customer_ids` (not written out).
    pub key: Vec<u32>,
    pub customer_id: Vec<String>,
    pub frequency: Vec<i64>,
    pub purchase_days: Vec<i64>,
    pub monetary: Vec<f64>,
    pub refunds: Vec<f64>,
    pub net_revenue: Vec<f64>,
    pub aov: Vec<Option<f64>>,
    pub first_order_date: Vec<Option<Day>>,
    pub last_order_date: Vec<Option<Day>>,
    pub recency_days: Vec<Option<i64>>,
    pub tenure_days: Vec<Option<i64>>,
    pub btyd_x: Vec<Option<i64>>,
    pub btyd_t_x: Vec<Option<i64>>,
    pub btyd_t: Vec<Option<i64>>,
    pub btyd_m: Vec<Option<f64>>,
    pub ipt_mean_days: Vec<Option<f64>>,
    pub ipt_cv: Vec<Option<f64>>,
    pub orders_last_90d: Vec<i64>,
    pub orders_prev_90d: Vec<i64>,
    pub order_trend: Vec<Option<f64>>,
}

impl CustomerFeatures {
    pub fn len(&self) -> usize {
        self.customer_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.customer_id.is_empty()
    }
}

/// Per-customer row computed independently of every other customer.
#[derive(Debug, Clone, Default)]
struct Row {
    frequency: i64,
    purchase_days: i64,
    monetary: f64,
    refunds: f64,
    first: Option<Day>,
    last: Option<Day>,
    btyd_m: Option<f64>,
    ipt_mean: Option<f64>,
    ipt_cv: Option<f64>,
    last_90: i64,
    prev_90: i64,
}

/// Computes features for every customer with at least one order on or before `as_of`.
///
/// Customers appear in ascending `customer_id` order, so the output does not depend on the order
/// of the input rows.
pub fn compute(orders: &Orders, as_of: Day) -> CustomerFeatures {
    // Counting sort of order indices by customer key: O(n), and orders within a customer are
    // then sorted by (day, amount) so every float sum runs in a fixed order.
    let n_customers = orders.customer_ids.len();
    let mut starts = vec![0usize; n_customers + 1];
    for (i, &c) in orders.customer.iter().enumerate() {
        if orders.day[i] <= as_of {
            starts[c as usize + 1] += 1;
        }
    }
    for k in 0..n_customers {
        starts[k + 1] += starts[k];
    }
    let mut fill = starts.clone();
    let mut by_customer = vec![0u32; starts[n_customers]];
    for (i, &c) in orders.customer.iter().enumerate() {
        if orders.day[i] <= as_of {
            by_customer[fill[c as usize]] = i as u32;
            fill[c as usize] += 1;
        }
    }

    let mut keys: Vec<u32> = (0..n_customers as u32)
        .filter(|&c| starts[c as usize + 1] > starts[c as usize])
        .collect();
    keys.par_sort_unstable_by(|a, b| {
        orders.customer_ids[*a as usize].cmp(&orders.customer_ids[*b as usize])
    });

    let rows: Vec<Row> = keys
        .par_iter()
        .map(|&c| {
            let mut idx: Vec<u32> =
                by_customer[starts[c as usize]..starts[c as usize + 1]].to_vec();
            idx.sort_unstable_by(|&a, &b| {
                let (a, b) = (a as usize, b as usize);
                orders.day[a]
                    .cmp(&orders.day[b])
                    .then(orders.amount[a].total_cmp(&orders.amount[b]))
                    .then(orders.refund[a].total_cmp(&orders.refund[b]))
            });
            customer_row(orders, &idx, as_of)
        })
        .collect();

    let mut out = CustomerFeatures::default();
    for (&c, row) in keys.iter().zip(rows) {
        out.key.push(c);
        out.customer_id
            .push(orders.customer_ids[c as usize].clone());
        out.frequency.push(row.frequency);
        out.purchase_days.push(row.purchase_days);
        out.monetary.push(row.monetary);
        out.refunds.push(row.refunds);
        out.net_revenue.push(row.monetary - row.refunds);
        out.aov
            .push((row.frequency > 0).then(|| row.monetary / row.frequency as f64));
        out.first_order_date.push(row.first);
        out.last_order_date.push(row.last);
        out.recency_days
            .push(row.last.map(|d| i64::from(as_of) - i64::from(d)));
        out.tenure_days
            .push(row.first.map(|d| i64::from(as_of) - i64::from(d)));
        out.btyd_x.push(row.first.map(|_| row.purchase_days - 1));
        out.btyd_t_x.push(
            row.first
                .zip(row.last)
                .map(|(f, l)| i64::from(l) - i64::from(f)),
        );
        out.btyd_t
            .push(row.first.map(|f| i64::from(as_of) - i64::from(f)));
        out.btyd_m.push(row.btyd_m);
        out.ipt_mean_days.push(row.ipt_mean);
        out.ipt_cv.push(row.ipt_cv);
        out.orders_last_90d.push(row.last_90);
        out.orders_prev_90d.push(row.prev_90);
        let total = row.last_90 + row.prev_90;
        out.order_trend
            .push((total > 0).then(|| (row.last_90 - row.prev_90) as f64 / total as f64));
    }
    out
}

/// Distinct purchase days per customer key in `(after, until]`: the holdout purchases of a
/// backtest, counted like `btyd_x` (same-day orders merged).
pub fn purchase_days_between(orders: &Orders, after: Day, until: Day) -> Vec<i64> {
    let mut days: Vec<(u32, Day)> = (0..orders.len())
        .filter(|&i| orders.is_purchase[i] && orders.day[i] > after && orders.day[i] <= until)
        .map(|i| (orders.customer[i], orders.day[i]))
        .collect();
    days.par_sort_unstable();
    days.dedup();
    let mut counts = vec![0i64; orders.customer_ids.len()];
    for (c, _) in days {
        counts[c as usize] += 1;
    }
    counts
}

/// `idx`: this customer's orders on or before `as_of`, sorted by day.
fn customer_row(orders: &Orders, idx: &[u32], as_of: Day) -> Row {
    let mut row = Row::default();
    // (day, spend) per purchase day, in day order.
    let mut days: Vec<(Day, f64)> = Vec::new();
    for &i in idx {
        let i = i as usize;
        row.refunds += orders.refund[i];
        if !orders.is_purchase[i] {
            continue;
        }
        let day = orders.day[i];
        row.frequency += 1;
        row.monetary += orders.amount[i];
        if as_of - day < 90 {
            row.last_90 += 1;
        } else if as_of - day < 180 {
            row.prev_90 += 1;
        }
        match days.last_mut() {
            Some((d, spend)) if *d == day => *spend += orders.amount[i],
            _ => days.push((day, orders.amount[i])),
        }
    }
    row.purchase_days = days.len() as i64;
    row.first = days.first().map(|d| d.0);
    row.last = days.last().map(|d| d.0);
    if days.len() > 1 {
        let repeat: Vec<f64> = days[1..].iter().map(|d| d.1).collect();
        row.btyd_m = mean(&repeat);
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

    #[test]
    fn btyd_summary_merges_same_day_purchases() {
        // Day 0 twice (merged), day 10, day 30; as-of 100.
        let o = orders(&[
            ("a", 0, 10.0, 0.0, true),
            ("a", 0, 5.0, 0.0, true),
            ("a", 10, 20.0, 0.0, true),
            ("a", 30, 40.0, 0.0, true),
        ]);
        let f = compute(&o, 100);
        assert_eq!(f.frequency, vec![4]);
        assert_eq!(f.btyd_x, vec![Some(2)]);
        assert_eq!(f.btyd_t_x, vec![Some(30)]);
        assert_eq!(f.btyd_t, vec![Some(100)]);
        assert_eq!(f.btyd_m, vec![Some(30.0)]);
        assert_eq!(f.recency_days, vec![Some(70)]);
        assert_eq!(f.monetary, vec![75.0]);
        assert_eq!(f.ipt_mean_days, vec![Some(15.0)]);
    }

    #[test]
    fn orders_after_as_of_are_ignored_and_refunds_reduce_net_revenue() {
        let o = orders(&[
            ("b", 5, 100.0, 0.0, true),
            ("b", 6, 0.0, 30.0, false),
            ("b", 50, 70.0, 0.0, true),
            ("c", 60, 0.0, 10.0, false),
        ]);
        let f = compute(&o, 20);
        assert_eq!(f.customer_id, vec!["b"]);
        assert_eq!(f.frequency, vec![1]);
        assert_eq!(f.net_revenue, vec![70.0]);
        assert_eq!(f.btyd_x, vec![Some(0)]);
        assert_eq!(f.btyd_m, vec![None]);

        let f = compute(&o, 60);
        assert_eq!(f.customer_id, vec!["b", "c"]);
        assert_eq!(f.frequency, vec![2, 0]);
        assert_eq!(f.recency_days, vec![Some(10), None]);
        assert_eq!(f.net_revenue, vec![140.0, -10.0]);
    }
}
