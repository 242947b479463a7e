//! `segment_summary`: customers, revenue and their shares per label of one dimension
//! (an RFM segment, a value tier, a score).

use std::collections::BTreeMap;

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
    // Labels repeat a handful of strings over millions of customers: find each row's accumulator
    // by a short scan that compares pointers first (labels usually come from one table), and
    // order the labels only at the end.
    let mut sums: Vec<(&str, i64, ExactSum)> = Vec::new();
    for (label, rev) in labels.iter().zip(revenue) {
        let label = label.unwrap_or("no_purchase");
        let found = sums
            .iter()
            .position(|s| std::ptr::eq(s.0, label))
            .or_else(|| sums.iter().position(|s| s.0 == label));
        let k = found.unwrap_or_else(|| {
            sums.push((label, 0, ExactSum::default()));
            sums.len() - 1
        });
        sums[k].1 += 1;
        sums[k].2.add(*rev);
    }
    let mut cells: BTreeMap<String, (i64, ExactSum)> = BTreeMap::new();
    for (label, customers, rev) in sums {
        // Equal strings at different addresses took separate slots above: join them here.
        let cell = cells.entry(label.to_string()).or_default();
        cell.0 += customers;
        cell.1.merge(&rev);
    }
    SummaryPart {
        dimension: dimension.to_string(),
        order: order.iter().map(|s| s.to_string()).collect(),
        cells,
        customers: labels.len() as i64,
        revenue: revenue.iter().copied().collect(),
    }
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
}
