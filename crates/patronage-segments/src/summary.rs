//! `segment_summary`: customers, revenue and their shares per label of one dimension
//! (an RFM segment, a value tier, a score).

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::ExactSum;

/// One row of `segment_summary`.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryRow {
    pub dimension: String,
    pub segment: String,
    pub customers: i64,
    pub customer_share: f64,
    pub revenue: f64,
    pub revenue_share: f64,
}

/// The rows of one dimension before the shares: customers and revenue per label, mergeable
/// across partitions (exact sums), so a partitioned run's summary equals a single run's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryPart {
    pub dimension: String,
    /// Labels listed first, in this order (with a row even when empty).
    pub order: Vec<String>,
    /// Per label: customers and revenue.
    pub cells: BTreeMap<String, (i64, ExactSum)>,
    pub customers: i64,
    pub revenue: ExactSum,
}

/// Summarizes `labels` (null → `"no_purchase"`: every dimension summarized is null exactly for
/// customers without a purchase) weighted by `revenue`.
pub fn summarize_part(
    dimension: &str,
    labels: &[Option<&str>],
    revenue: &[f64],
    order: &[&str],
) -> SummaryPart {
    Summarizer::new(revenue).part(dimension, labels, order)
}

/// Rows per parallel piece of a summary: the pieces' exact sums merge to the same bits.
const PIECE: usize = 1 << 14;

/// Summaries of several dimensions over the same customers: the revenue total is summed once.
pub struct Summarizer<'a> {
    revenue: &'a [f64],
    total: ExactSum,
}

impl<'a> Summarizer<'a> {
    pub fn new(revenue: &'a [f64]) -> Self {
        Summarizer {
            revenue,
            total: ExactSum::of_slice(revenue),
        }
    }

    /// The summary of one dimension: `labels` has a label (or null) per customer of `revenue`.
    pub fn part(&self, dimension: &str, labels: &[Option<&str>], order: &[&str]) -> SummaryPart {
        assert_eq!(labels.len(), self.revenue.len(), "a label per customer");
        let sums = labels
            .par_chunks(PIECE)
            .zip(self.revenue.par_chunks(PIECE))
            .map(|(labels, revenue)| label_sums(labels, revenue))
            .reduce(Vec::new, |mut a, b| {
                for (label, customers, rev) in b {
                    let k = slot(&mut a, label);
                    a[k].1 += customers;
                    a[k].2.merge(&rev);
                }
                a
            });
        let mut cells: BTreeMap<String, (i64, ExactSum)> = BTreeMap::new();
        for (label, customers, rev) in sums {
            // Equal strings at different addresses took separate slots: join them here.
            let cell = cells.entry(label.to_string()).or_default();
            cell.0 += customers;
            cell.1.merge(&rev);
        }
        SummaryPart {
            dimension: dimension.to_string(),
            order: order.iter().map(|s| s.to_string()).collect(),
            cells,
            customers: labels.len() as i64,
            revenue: self.total.clone(),
        }
    }
}

/// Customers and revenue per label of a piece.
type LabelSums<'l> = Vec<(&'l str, i64, ExactSum)>;

/// The slot of `label` in `sums` (added when new). Labels repeat a handful of strings over
/// millions of customers: a short scan that compares pointers first (labels usually come from
/// one table) finds it; the labels are ordered only at the end.
fn slot<'l>(sums: &mut LabelSums<'l>, label: &'l str) -> usize {
    sums.iter()
        .position(|s| std::ptr::eq(s.0, label))
        .or_else(|| sums.iter().position(|s| s.0 == label))
        .unwrap_or_else(|| {
            sums.push((label, 0, ExactSum::default()));
            sums.len() - 1
        })
}

fn label_sums<'l>(labels: &[Option<&'l str>], revenue: &[f64]) -> LabelSums<'l> {
    let mut sums = Vec::new();
    for (label, rev) in labels.iter().zip(revenue) {
        let k = slot(&mut sums, label.unwrap_or("no_purchase"));
        sums[k].1 += 1;
        sums[k].2.add(*rev);
    }
    sums
}

impl SummaryPart {
    /// Adds another partition's part of the same dimension.
    pub fn merge(&mut self, other: &SummaryPart) {
        for (label, (customers, rev)) in &other.cells {
            let cell = self.cells.entry(label.clone()).or_default();
            cell.0 += customers;
            cell.1.merge(rev);
        }
        self.customers += other.customers;
        self.revenue.merge(&other.revenue);
    }

    /// The rows: labels in `order` first, then any other label in ascending order.
    pub fn rows(&self) -> Vec<SummaryRow> {
        let total_customers = self.customers.max(1) as f64;
        let total_revenue = self.revenue.value();
        let row = |segment: &str, customers: i64, rev: f64| SummaryRow {
            dimension: self.dimension.clone(),
            segment: segment.to_string(),
            customers,
            customer_share: customers as f64 / total_customers,
            revenue: rev,
            revenue_share: if total_revenue != 0.0 {
                rev / total_revenue
            } else {
                0.0
            },
        };
        let cell = |s: &str| self.cells.get(s).map_or((0, 0.0), |(c, r)| (*c, r.value()));
        let mut rows: Vec<SummaryRow> = self
            .order
            .iter()
            .map(|s| {
                let (c, r) = cell(s);
                row(s, c, r)
            })
            .collect();
        rows.extend(
            self.cells
                .keys()
                .filter(|k| !self.order.contains(k))
                .map(|s| {
                    let (c, r) = cell(s);
                    row(s, c, r)
                }),
        );
        rows
    }
}

/// The rows of [`summarize_part`].
pub fn summarize(
    dimension: &str,
    labels: &[Option<&str>],
    revenue: &[f64],
    order: &[&str],
) -> Vec<SummaryRow> {
    summarize_part(dimension, labels, revenue, order).rows()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_sum_to_one() {
        let rows = summarize(
            "tier",
            &[Some("top"), Some("low"), None],
            &[80.0, 20.0, 0.0],
            &["top", "middle", "low"],
        );
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].revenue_share, 0.8);
        assert_eq!(rows[1].customers, 0);
        assert_eq!(rows[3].segment, "no_purchase");
        let s: f64 = rows.iter().map(|r| r.customer_share).sum();
        assert!((s - 1.0).abs() < 1e-12);
    }

    #[test]
    fn pieces_summed_in_parallel_have_the_bits_of_one_pass() {
        // Several pieces, labels from two tables (equal strings at different addresses),
        // revenue with fractions that a naive sum would round differently by grouping.
        let names = ["a", "b", "c"];
        let copies: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let n = 5 * PIECE + 123;
        let labels: Vec<Option<&str>> = (0..n)
            .map(|i| match i % 7 {
                0 => None,
                k if k % 2 == 0 => Some(names[i % 3]),
                _ => Some(copies[i % 3].as_str()),
            })
            .collect();
        let revenue: Vec<f64> = (0..n)
            .map(|i| (i as f64 * 0.37).sin() * 1e3 + if i % 1000 == 0 { 1e12 } else { 0.1 })
            .collect();
        let part = summarize_part("d", &labels, &revenue, &["a", "b", "c"]);
        // One sequential pass, one exact sum per label.
        let mut want: BTreeMap<String, (i64, ExactSum)> = BTreeMap::new();
        for (l, r) in labels.iter().zip(&revenue) {
            let cell = want
                .entry(l.unwrap_or("no_purchase").to_string())
                .or_default();
            cell.0 += 1;
            cell.1.add(*r);
        }
        assert_eq!(part.cells.len(), 4);
        for (label, (customers, rev)) in &want {
            let got = &part.cells[label];
            assert_eq!(got.0, *customers, "{label}");
            assert_eq!(got.1.value().to_bits(), rev.value().to_bits(), "{label}");
        }
        let total: ExactSum = revenue.iter().copied().collect();
        assert_eq!(part.revenue.value().to_bits(), total.value().to_bits());
        assert_eq!(part.customers, n as i64);
    }
}
