//! `segment_summary`: customers, revenue and their shares per label of one dimension
//! (an RFM segment, a value tier, a score).

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

/// Summarizes `labels` (null → `"no_purchase"`: every dimension summarized is null exactly for customers without a purchase) weighted by `revenue`, rows in `order` first, then any
/// other label in ascending order. Labels in `order` with no customer still get a row (0).
pub fn summarize(
    dimension: &str,
    labels: &[Option<&str>],
    revenue: &[f64],
    order: &[&str],
) -> Vec<SummaryRow> {
    // Labels repeat a handful of strings over millions of customers: find each row's accumulator
    // by a short scan that compares pointers first (labels usually come from one table), and
    // order the labels only at the end.
    use std::collections::BTreeMap;
    let mut sums: Vec<(&str, i64, f64)> = Vec::new();
    for (label, rev) in labels.iter().zip(revenue) {
        let label = label.unwrap_or("no_purchase");
        let found = sums
            .iter()
            .position(|s| std::ptr::eq(s.0, label))
            .or_else(|| sums.iter().position(|s| s.0 == label));
        let k = found.unwrap_or_else(|| {
            sums.push((label, 0, 0.0));
            sums.len() - 1
        });
        sums[k].1 += 1;
        sums[k].2 += rev;
    }
    // Equal strings at different addresses share one slot above, so labels are unique here.
    let mut acc: BTreeMap<&str, (i64, f64)> = sums
        .into_iter()
        .map(|(label, customers, rev)| (label, (customers, rev)))
        .collect();
    let total_customers = labels.len().max(1) as f64;
    let total_revenue: f64 = revenue.iter().sum();
    let row = |segment: &str, (customers, rev): (i64, f64)| SummaryRow {
        dimension: dimension.to_string(),
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
    let mut rows: Vec<SummaryRow> = order
        .iter()
        .map(|s| row(s, acc.remove(s).unwrap_or_default()))
        .collect();
    rows.extend(acc.into_iter().map(|(s, v)| row(s, v)));
    rows
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
