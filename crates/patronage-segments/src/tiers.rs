//! Value tiers by the 80/20 rule: the top `top_share` of customers by value are `top`, the next
//! `middle_share` are `middle`, the rest with positive value `low`, and value ≤ 0 (or unknown) is
//! `zero`. Ranking is tie-aware (average rank), so equal values always share a tier.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueTier {
    Top,
    Middle,
    Low,
    Zero,
}

impl ValueTier {
    pub const ALL: [ValueTier; 4] = [
        ValueTier::Top,
        ValueTier::Middle,
        ValueTier::Low,
        ValueTier::Zero,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ValueTier::Top => "top",
            ValueTier::Middle => "middle",
            ValueTier::Low => "low",
            ValueTier::Zero => "zero",
        }
    }
}

/// Tier cut points as shares of customers with positive value.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TierParams {
    pub top_share: f64,
    pub middle_share: f64,
}

impl Default for TierParams {
    fn default() -> Self {
        TierParams {
            top_share: 0.2,
            middle_share: 0.3,
        }
    }
}

impl TierParams {
    /// Checks that the shares are in (0, 1] and sum to at most 1.
    pub fn check(&self) -> Result<(), String> {
        let ok = |s: f64| s > 0.0 && s <= 1.0;
        if !ok(self.top_share)
            || !(0.0..=1.0).contains(&self.middle_share)
            || self.top_share + self.middle_share > 1.0
        {
            return Err(format!(
                "value tier shares must satisfy 0 < top_share ≤ 1, 0 ≤ middle_share and top_share + middle_share ≤ 1 (got {} and {})",
                self.top_share, self.middle_share
            ));
        }
        Ok(())
    }
}

pub fn value_tiers(values: &[Option<f64>], params: TierParams) -> Vec<ValueTier> {
    // Descending value (rank 1 is the most valuable customer): rank the negated values.
    let positive = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.filter(|x| *x > 0.0).map(|x| (-x, i)));
    let mut out = vec![ValueTier::Zero; values.len()];
    crate::scores::average_ranks(positive, |rank, n, rows| {
        let p = rank / n;
        let tier = if p <= params.top_share {
            ValueTier::Top
        } else if p <= params.top_share + params.middle_share {
            ValueTier::Middle
        } else {
            ValueTier::Low
        };
        for &row in rows {
            out[row as usize] = tier;
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_fifth_is_top_and_non_positive_is_zero() {
        let v: Vec<Option<f64>> = (1..=10)
            .map(|x| Some(f64::from(x)))
            .chain([Some(0.0), None, Some(-5.0)])
            .collect();
        let t = value_tiers(&v, TierParams::default());
        assert_eq!(&t[8..10], &[ValueTier::Top, ValueTier::Top]);
        assert_eq!(&t[5..8], &[ValueTier::Middle; 3]);
        assert_eq!(&t[0..5], &[ValueTier::Low; 5]);
        assert_eq!(&t[10..], &[ValueTier::Zero; 3]);
    }

    #[test]
    fn ties_share_a_tier() {
        let v = vec![Some(5.0); 10];
        let t = value_tiers(&v, TierParams::default());
        assert!(t.iter().all(|x| *x == t[0]));
    }
}
