//! Customer lifetime value: expected discounted margin over a horizon, summed month by month —
//! `Σₖ margin · spend · (E[N(k·L)] − E[N((k−1)·L)]) / (1+d)ᵏ` for k = 1..months, with `L` the
//! month length in model time units and `d` the monthly discount rate. This is
//! `lifetimes.utils._customer_lifetime_value` with `freq="D"` and L = 30 days.

use crate::customer::CustomerBase;

/// Monthly rate equivalent to a yearly discount rate.
pub fn monthly_discount_rate(annual: f64) -> f64 {
    (1.0 + annual).powf(1.0 / 12.0) - 1.0
}

/// CLV of one customer; `spend` is the expected spend per purchase.
#[allow(clippy::too_many_arguments)]
pub fn clv<M: CustomerBase + ?Sized>(
    model: &M,
    spend: f64,
    margin: f64,
    months: u32,
    month_length: f64,
    monthly_rate: f64,
    x: f64,
    t_x: f64,
    t: f64,
) -> f64 {
    margin
        * spend
        * discounted_purchases_given_alive(model, months, month_length, monthly_rate, x, t)
        / model.history_divisor(x, t_x, t)
}

/// `Σₖ (E_alive[N(k·L)] − E_alive[N((k−1)·L)]) / (1+d)ᵏ`: the discounted expected purchases of a
/// customer alive at T, which depend on (x, T) only. Divided by
/// [`CustomerBase::history_divisor`] and times margin · spend it is the CLV, so scoring many customers
/// needs this once per distinct (x, T).
pub fn discounted_purchases_given_alive<M: CustomerBase + ?Sized>(
    model: &M,
    months: u32,
    month_length: f64,
    monthly_rate: f64,
    x: f64,
    t: f64,
) -> f64 {
    let mut value = 0.0;
    let mut previous = 0.0;
    for k in 1..=months {
        let expected = model.expected_purchases_given_alive(f64::from(k) * month_length, x, t);
        value += (expected - previous) / (1.0 + monthly_rate).powi(k as i32);
        previous = expected;
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgnbd::BgNbd;

    #[test]
    fn undiscounted_clv_is_spend_times_expected_purchases() {
        let m = BgNbd {
            r: 0.24,
            alpha: 4.4,
            a: 0.79,
            b: 2.4,
            boundary: crate::bgnbd::Boundary::Interior,
            variant: crate::bgnbd::Variant::Bg,
        };
        let v = clv(&m, 20.0, 1.0, 12, 4.0, 0.0, 2.0, 30.0, 39.0);
        let e = m.conditional_expected_purchases(48.0, 2.0, 30.0, 39.0);
        assert!((v - 20.0 * e).abs() < 1e-9);
        assert!(clv(&m, 20.0, 1.0, 12, 4.0, 0.01, 2.0, 30.0, 39.0) < v);
        assert!((monthly_discount_rate(0.1) - 0.007_974_140_428).abs() < 1e-9);
        // Factored form = the month-by-month sum of conditional expectations.
        let (x, t_x, t, d) = (3.0, 20.0, 39.0, 0.01);
        let mut direct = 0.0;
        for k in 1..=12 {
            let step = |k: i32| m.conditional_expected_purchases(f64::from(k) * 4.0, x, t_x, t);
            direct += 20.0 * (step(k) - step(k - 1)) / (1.0f64 + d).powi(k);
        }
        let factored = clv(&m, 20.0, 1.0, 12, 4.0, d, x, t_x, t);
        assert!(
            (factored / direct - 1.0).abs() < 1e-12,
            "{factored} vs {direct}"
        );
    }
}
