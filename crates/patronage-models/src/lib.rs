//! Buy-till-you-die models fitted by maximum likelihood, lifetime value and backtest metrics
//! (docs/design.md §4).
//!
//! - [`bgnbd`]: BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way") on
//!   (x, t_x, T) triples, customers with identical triples weighted; `p_alive` and conditional
//!   expected purchases. If the likelihood runs to the no-dropout boundary, the model reduces to
//!   the NBD and the fit says so. `p_purchase`: probability of at least one purchase in a
//!   horizon, which (unlike `p_alive`) also ranks one-time buyers.
//!   [`bgnbd::Variant::Mbg`] is MBG/NBD (Batislam, Denizel & Filiztekin 2007): dropout also
//!   possible right after the first purchase.
//! - [`pareto_nbd`]: Pareto/NBD (Schmittlein, Morrison & Colombo 1987; the Fader–Hardie–Lee 2005
//!   likelihood): dropout at any time, not only after purchases.
//! - [`seasonal`]: a month-of-year index of purchase intensity from the calibration period,
//!   applied as operational time to the horizon's predictions.
//! - [`gamma_gamma`]: Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV"; Fader &
//!   Hardie 2013) on repeat customers; conditional expected spend per purchase.
//! - [`clv`]: discounted expected margin over a horizon, month by month (as `lifetimes` does).
//! - [`backtest`]: holdout comparisons (totals per frequency bucket, MAE, AUC).
//!
//! Pure compute on slices; time units are whatever the caller uses (days in the engine, weeks in
//! the CDNOW reference tests). Fits run BFGS (argmin) on log-parameters with analytic
//! gradients; on large inputs a fit on a systematic subsample first supplies the starting point
//! and the initial inverse Hessian, so the full-data fit takes a few near-Newton steps. Standard
//! errors come from a central-difference Hessian of the analytic gradient.

// Index loops mirror the matrix and gradient formulas they implement.
#![allow(clippy::needless_range_loop)]

pub mod backtest;
pub mod bgnbd;
pub mod clv;
pub mod customer;
mod fit;
pub mod gamma_gamma;
pub mod pareto_nbd;
pub mod seasonal;
pub mod special;

pub use fit::{FitDiagnostics, ModelError};

#[cfg(test)]
mod cdnow_reference;

/// Serde for a float that may be NaN (a parameter at a boundary): NaN as null, and back.
pub mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_nan() {
            s.serialize_none()
        } else {
            s.serialize_f64(*v)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}
