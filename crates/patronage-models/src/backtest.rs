//! Holdout metrics: predicted vs actual repeat purchases (total, per calibration-frequency
//! bucket 0, 1, …, 7+), per-customer mean absolute error, the expected vs actual number of
//! customers without a purchase in the holdout, and AUCs of the model's scores for "no purchase
//! in the holdout" (Mann–Whitney, ties counted one half).

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    /// Calibration repeat purchases: "0" … "6", "7+".
    pub bucket: String,
    pub customers: i64,
    pub predicted: f64,
    pub actual: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backtest {
    pub customers: i64,
    pub predicted_total: f64,
    pub actual_total: f64,
    /// predicted_total / actual_total − 1; null when nobody bought in the holdout.
    pub total_error: Option<f64>,
    pub mae: f64,
    /// Root mean squared error of each customer's purchases.
    pub rmse: f64,
    /// AUC of 1 − p_alive against "no purchase in the holdout"; null when one class is empty.
    /// BG/NBD gives every customer without a repeat purchase p_alive = 1, so this ranking is
    /// weak wherever one-time buyers dominate; hence the two AUCs below.
    pub auc_no_purchase: Option<f64>,
    /// The same among customers with at least one repeat purchase in calibration.
    pub auc_no_purchase_repeat_customers: Option<f64>,
    /// AUC of −(expected purchases in the holdout) against "no purchase in the holdout".
    pub auc_no_purchase_by_expected: Option<f64>,
    /// AUC of 1 − p_purchase (the model's probability of no purchase in the holdout).
    pub auc_no_purchase_by_p_purchase: Option<f64>,
    /// Σ (1 − p_purchase): the customers the model expects to make no purchase in the holdout,
    /// next to how many made none: a calibration check of the probability itself.
    pub predicted_no_purchase_customers: f64,
    pub actual_no_purchase_customers: i64,
    pub buckets: Vec<Bucket>,
}

/// Per calibration buyer: repeat purchases in calibration, the model's scores, and the actual
/// purchases in the holdout.
#[derive(Debug, Clone, Default)]
pub struct Holdout {
    pub calibration_x: Vec<f64>,
    /// Expected purchases in the holdout.
    pub predicted: Vec<f64>,
    pub actual: Vec<f64>,
    pub p_alive: Vec<f64>,
    /// Probability of at least one purchase in the holdout.
    pub p_purchase: Vec<f64>,
}

pub fn evaluate(h: &Holdout) -> Backtest {
    let (calibration_x, predicted, actual, p_alive) =
        (&h.calibration_x, &h.predicted, &h.actual, &h.p_alive);
    let mut buckets: Vec<Bucket> = (0..8)
        .map(|k| Bucket {
            bucket: if k < 7 { k.to_string() } else { "7+".into() },
            customers: 0,
            predicted: 0.0,
            actual: 0.0,
        })
        .collect();
    for i in 0..calibration_x.len() {
        let b = &mut buckets[(calibration_x[i] as usize).min(7)];
        b.customers += 1;
        b.predicted += predicted[i];
        b.actual += actual[i];
    }
    let n = calibration_x.len().max(1) as f64;
    let mae = predicted
        .iter()
        .zip(actual)
        .map(|(p, a)| (p - a).abs())
        .sum::<f64>()
        / n;
    let rmse = (predicted
        .iter()
        .zip(actual)
        .map(|(p, a)| (p - a) * (p - a))
        .sum::<f64>()
        / n)
        .sqrt();
    let (predicted_total, actual_total): (f64, f64) = (predicted.iter().sum(), actual.iter().sum());
    let churned: Vec<bool> = actual.iter().map(|a| *a == 0.0).collect();
    let score: Vec<f64> = p_alive.iter().map(|p| 1.0 - p).collect();
    let repeat: Vec<usize> = (0..calibration_x.len())
        .filter(|&i| calibration_x[i] > 0.0)
        .collect();
    let repeat_score: Vec<f64> = repeat.iter().map(|&i| score[i]).collect();
    let repeat_churned: Vec<bool> = repeat.iter().map(|&i| churned[i]).collect();
    let expected_score: Vec<f64> = predicted.iter().map(|p| -p).collect();
    let no_purchase: Vec<f64> = h.p_purchase.iter().map(|p| 1.0 - p).collect();
    Backtest {
        customers: calibration_x.len() as i64,
        predicted_total,
        actual_total,
        total_error: (actual_total > 0.0).then(|| predicted_total / actual_total - 1.0),
        mae,
        rmse,
        auc_no_purchase: auc(&score, &churned),
        auc_no_purchase_repeat_customers: auc(&repeat_score, &repeat_churned),
        auc_no_purchase_by_expected: auc(&expected_score, &churned),
        auc_no_purchase_by_p_purchase: auc(&no_purchase, &churned),
        predicted_no_purchase_customers: no_purchase.iter().sum(),
        actual_no_purchase_customers: churned.iter().filter(|c| **c).count() as i64,
        buckets,
    }
}

/// Area under the ROC curve of `score` for the positive class, via average ranks.
pub fn auc(score: &[f64], positive: &[bool]) -> Option<f64> {
    let n_pos = positive.iter().filter(|p| **p).count() as f64;
    let n_neg = positive.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..score.len()).collect();
    idx.sort_by(|a, b| score[*a].total_cmp(&score[*b]));
    let mut rank_sum = 0.0;
    let mut start = 0;
    while start < idx.len() {
        let mut end = start + 1;
        while end < idx.len() && score[idx[end]] == score[idx[start]] {
            end += 1;
        }
        let avg = (start + 1 + end) as f64 / 2.0;
        rank_sum += avg * idx[start..end].iter().filter(|i| positive[**i]).count() as f64;
        start = end;
    }
    Some((rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_of_perfect_random_and_tied_scores() {
        assert_eq!(
            auc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            Some(1.0)
        );
        assert_eq!(
            auc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]),
            Some(0.0)
        );
        assert_eq!(auc(&[0.5; 4], &[false, true, false, true]), Some(0.5));
        assert_eq!(auc(&[0.5; 2], &[true, true]), None);
    }

    #[test]
    fn buckets_cap_at_seven_plus() {
        let b = evaluate(&Holdout {
            calibration_x: vec![0.0, 1.0, 9.0, 12.0],
            predicted: vec![0.5, 1.0, 3.0, 4.0],
            actual: vec![0.0, 2.0, 3.0, 5.0],
            p_alive: vec![1.0, 0.5, 0.9, 0.9],
            p_purchase: vec![0.25, 0.5, 0.75, 0.75],
        });
        assert_eq!(b.buckets[7].customers, 2);
        assert_eq!(b.buckets[7].actual, 8.0);
        assert!((b.mae - 0.625).abs() < 1e-12);
        assert_eq!(b.predicted_total, 8.5);
        assert_eq!(b.predicted_no_purchase_customers, 1.75);
        assert_eq!(b.actual_no_purchase_customers, 1);
        assert_eq!(b.auc_no_purchase_by_p_purchase, Some(1.0));
    }
}
