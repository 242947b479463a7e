//! Seasonality: a month-of-year index of purchase intensity, estimated from the calibration
//! period, that turns a horizon in calendar days into operational days.
//!
//! The customer-base models assume each customer's purchase rate is constant in time. With a
//! seasonal multiplier s(month) on every rate, the process is the same model in operational time
//! Λ(t) = ∫ s, so a horizon of h calendar days after day D counts as Λ = Σ_{d=D+1}^{D+h}
//! s(month(d)) model days: `expected_purchases` and `p_purchase` are the model's at that
//! horizon. This is exact for BG/NBD and MBG/NBD, where dropout follows purchases (and so runs
//! in operational time too); for Pareto/NBD, whose lifetimes run in calendar time, it is an
//! approximation. CLV (12 months) is left as it is: over a year the index averages about 1.
//!
//! Estimate: per calendar month of the calibration period, the repeat purchase days the buyers
//! made (A) against what the fitted model expects of them (E: each buyer's unconditional
//! expected repeat purchases between the month's first and last day, from their first purchase
//! day); per month of the year, s = ΣA/ΣE, divided by the period's overall ΣA/ΣE so the index
//! keeps the model's level. Needs a year and a half of history ([`MIN_HISTORY_DAYS`]): every
//! month of the year seen at least once, most twice.

use chrono::{Datelike, NaiveDate};

use crate::customer::CustomerBase;

/// Days since 1970-01-01.
pub type Day = i32;

/// History (first purchase to calibration end) the estimate needs.
pub const MIN_HISTORY_DAYS: i32 = 548;

/// s(month) for January … December.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeasonalIndex {
    pub month: [f64; 12],
}

fn date(day: Day) -> NaiveDate {
    NaiveDate::default() + chrono::Duration::days(i64::from(day))
}

/// The month of the year (0 = January) of a day.
fn month_of(day: Day) -> usize {
    date(day).month0() as usize
}

/// The first day of the month after the one holding `day`.
fn next_month(day: Day) -> Day {
    let d = date(day);
    let (y, m) = if d.month() == 12 {
        (d.year() + 1, 1)
    } else {
        (d.year(), d.month() + 1)
    };
    let first = NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(d);
    (first - NaiveDate::default()).num_days() as Day
}

impl SeasonalIndex {
    /// Estimates the index for `model` fitted on buyers whose first purchase days and counts
    /// are `cohorts`, from `repeat_days` (repeat purchase days per day, ascending; days after
    /// `end` are ignored) up to the calibration end `end`. Errors with the reason when the
    /// history is too short or holds no repeat purchase.
    pub fn estimate<M: CustomerBase + ?Sized>(
        model: &M,
        cohorts: &[(Day, f64)],
        repeat_days: &[(Day, u64)],
        end: Day,
    ) -> Result<SeasonalIndex, String> {
        let first = cohorts.iter().map(|c| c.0).min().ok_or("no buyers")?;
        let history = end - first;
        if history < MIN_HISTORY_DAYS {
            return Err(format!(
                "{history} days of history before {}, fewer than the {MIN_HISTORY_DAYS} (a year and a half) a month-of-year index needs",
                date(end)
            ));
        }
        // Unconditional expected repeat purchases by t days after the first purchase.
        let divisor = model.history_divisor(0.0, 0.0, 0.0);
        let unconditional: Vec<f64> = (0..=history)
            .map(|t| {
                if t == 0 {
                    0.0
                } else {
                    model.expected_purchases_given_alive(f64::from(t), 0.0, 0.0) / divisor
                }
            })
            .collect();
        let by = |t: Day| unconditional[t.clamp(0, history) as usize];
        let (mut actual, mut expected) = ([0.0f64; 12], [0.0f64; 12]);
        // Months of the calibration period: days [start, stop].
        let mut start = first + 1;
        while start <= end {
            let stop = (next_month(start) - 1).min(end);
            let m = month_of(start);
            expected[m] += cohorts
                .iter()
                .map(|&(f, w)| w * (by(stop - f) - by(start - 1 - f)))
                .sum::<f64>();
            start = stop + 1;
        }
        for &(d, n) in repeat_days {
            if d > first && d <= end {
                actual[month_of(d)] += n as f64;
            }
        }
        let (total_a, total_e) = (actual.iter().sum::<f64>(), expected.iter().sum::<f64>());
        if total_a <= 0.0 || total_e <= 0.0 {
            return Err("no repeat purchase in the calibration period".into());
        }
        let level = total_a / total_e;
        let mut month = [1.0; 12];
        for m in 0..12 {
            if expected[m] > 0.0 {
                month[m] = actual[m] / expected[m] / level;
            }
        }
        Ok(SeasonalIndex { month })
    }

    /// Operational days of the `days` calendar days after `from`: Σ s(month(d)).
    pub fn operational_days(&self, from: Day, days: u32) -> f64 {
        (1..=days as Day)
            .map(|k| self.month[month_of(from + k)])
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgnbd::{BgNbd, Boundary, Variant};

    #[test]
    fn a_flat_season_gives_calendar_days_and_months_are_calendar_months() {
        let flat = SeasonalIndex { month: [1.0; 12] };
        assert_eq!(flat.operational_days(0, 90), 90.0);
        // 1970-01-01 is day 0; 1970-02-01 day 31; 1970-12-31 day 364.
        assert_eq!((month_of(0), month_of(31), month_of(364)), (0, 1, 11));
        assert_eq!(
            (next_month(0), next_month(45), next_month(364)),
            (31, 59, 365)
        );
        let mut december = [1.0; 12];
        december[11] = 2.0;
        // The 31 days after 1970-11-30 (day 333) are December's.
        assert_eq!(
            SeasonalIndex { month: december }.operational_days(333, 31),
            62.0
        );
    }

    /// Purchases that follow the model's own expectation month by month give a flat index;
    /// short histories are refused with the reason.
    #[test]
    fn the_models_own_expectation_is_not_seasonal() {
        let m = BgNbd {
            r: 0.25,
            alpha: 40.0,
            a: 0.8,
            b: 2.5,
            boundary: Boundary::Interior,
            variant: Variant::Bg,
        };
        let cohorts: Vec<(Day, f64)> = (0..200).map(|d| (d, 10.0)).collect();
        let end = 900;
        let e = |t: Day| {
            if t <= 0 {
                0.0
            } else {
                m.expected_purchases_given_alive(f64::from(t), 0.0, 0.0)
            }
        };
        // Expected repeat purchases per day, as counts (scaled up so rounding is negligible).
        let repeat: Vec<(Day, u64)> = (1..=end)
            .map(|d| {
                let v: f64 = cohorts
                    .iter()
                    .map(|&(f, w)| w * (e(d - f) - e(d - 1 - f)))
                    .sum();
                (d, (v * 1e6).round() as u64)
            })
            .collect();
        let index = SeasonalIndex::estimate(&m, &cohorts, &repeat, end).unwrap();
        for s in index.month {
            assert!((s - 1.0).abs() < 1e-3, "{index:?}");
        }
        let short = SeasonalIndex::estimate(&m, &cohorts, &repeat, 400).unwrap_err();
        assert!(short.contains("a year and a half"), "{short}");
    }
}
