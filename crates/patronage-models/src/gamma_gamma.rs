//! Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV"; Fader & Hardie 2013, "The
//! Gamma-Gamma Model of Monetary Value"). A customer's spend per purchase is Gamma(p, ν) with
//! ν ~ Gamma(q, γ) across customers; fitted on repeat customers from `x` (repeat purchases) and
//! `m` (their mean spend, > 0):
//! ```text
//! ln L = lnΓ(px+q) − lnΓ(px) − lnΓ(q) + q ln γ + (px−1) ln m + px ln x − (px+q) ln(xm+γ)
//! ```
//! Conditional expected spend: E[M | x, m] = p(γ + x·m) / (px + q − 1).

use rayon::prelude::*;

use crate::fit::{minimize, standard_errors, FitDiagnostics, ModelError, Objective};
use crate::special::{digamma, ln_gamma};

const MODEL: &str = "Gamma-Gamma";
pub const MIN_CUSTOMERS: usize = 10;
const BLOCK: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GammaGamma {
    pub p: f64,
    pub q: f64,
    pub gamma: f64,
    /// Set when every repeat customer has the same mean spend: then that spend is the prediction.
    pub constant_spend: Option<f64>,
}

struct Likelihood<'a> {
    x: &'a [f64],
    m: &'a [f64],
    ln_x: Vec<f64>,
    ln_m: Vec<f64>,
    /// Distinct x and each row's index into it: Γ and ψ of px and px + q once per distinct x.
    distinct_x: Vec<f64>,
    x_index: Vec<u32>,
}

impl<'a> Likelihood<'a> {
    fn new(x: &'a [f64], m: &'a [f64]) -> Self {
        let mut distinct_x = x.to_vec();
        distinct_x.sort_by(f64::total_cmp);
        distinct_x.dedup();
        Likelihood {
            x,
            m,
            ln_x: x.iter().map(|v| v.ln()).collect(),
            ln_m: m.iter().map(|v| v.ln()).collect(),
            x_index: x
                .iter()
                .map(|v| distinct_x.partition_point(|d| d < v) as u32)
                .collect(),
            distinct_x,
        }
    }
}

impl Objective for Likelihood<'_> {
    fn nll_grad(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        let (p, q, g) = (theta[0].exp(), theta[1].exp(), theta[2].exp());
        let (lq, psi_q, ln_g) = (ln_gamma(q), digamma(q), g.ln());
        // (lnΓ(px+q) − lnΓ(px), ψ(px+q), ψ(px+q) − ψ(px)) per distinct x.
        let tables: Vec<[f64; 3]> = self
            .distinct_x
            .iter()
            .map(|&x| {
                let px = p * x;
                let psi_pxq = digamma(px + q);
                [
                    ln_gamma(px + q) - ln_gamma(px),
                    psi_pxq,
                    psi_pxq - digamma(px),
                ]
            })
            .collect();
        let blocks: Vec<[f64; 4]> = (0..self.x.len())
            .collect::<Vec<_>>()
            .par_chunks(BLOCK)
            .map(|rows| {
                let mut acc = [0.0; 4];
                for &i in rows {
                    let (x, m) = (self.x[i], self.m[i]);
                    let [lg, psi_pxq, dpsi] = tables[self.x_index[i] as usize];
                    let px = p * x;
                    let ln_xm_g = (x * m + g).ln();
                    acc[0] += lg - lq + q * ln_g + (px - 1.0) * self.ln_m[i] + px * self.ln_x[i]
                        - (px + q) * ln_xm_g;
                    acc[1] += x * (dpsi + self.ln_m[i] + self.ln_x[i] - ln_xm_g);
                    acc[2] += psi_pxq - psi_q + ln_g - ln_xm_g;
                    acc[3] += q / g - (px + q) / (x * m + g);
                }
                acc
            })
            .collect();
        let mut t = [0.0; 4];
        for b in blocks {
            for k in 0..4 {
                t[k] += b[k];
            }
        }
        (-t[0], vec![-t[1] * p, -t[2] * q, -t[3] * g])
    }

    fn total_weight(&self) -> f64 {
        self.x.len() as f64
    }
}

/// Fits on repeat customers: `x > 0` and `m > 0` (rows outside that are the caller's to drop).
pub fn fit(x: &[f64], m: &[f64]) -> Result<(GammaGamma, FitDiagnostics), ModelError> {
    if x.len() < MIN_CUSTOMERS {
        return Err(ModelError::NotEnoughData {
            model: MODEL,
            reason: format!("{} repeat customers with positive spend (at least {MIN_CUSTOMERS} are needed)", x.len()),
            hint: "run on a longer history, or skip the models with --no-models (models.enabled = false)".into(),
        });
    }
    let mean_m = m.iter().sum::<f64>() / m.len() as f64;
    let base = |params: Vec<(&'static str, f64)>| FitDiagnostics {
        model: MODEL,
        std_errors: vec![None; params.len()],
        params,
        log_likelihood: f64::NAN,
        iterations: 0,
        converged: true,
        termination: String::new(),
        grad_norm: 0.0,
        customers: x.len() as f64,
        unique_rows: x.len(),
        boundary: None,
    };
    if m.iter().all(|v| (v - m[0]).abs() <= 1e-12 * m[0].abs()) {
        let mut diag = base(vec![]);
        diag.boundary = Some(format!("constant_spend: every repeat customer spends {mean_m} per purchase; that is the prediction"));
        return Ok((
            GammaGamma {
                p: f64::NAN,
                q: f64::NAN,
                gamma: f64::NAN,
                constant_spend: Some(mean_m),
            },
            diag,
        ));
    }
    let l = Likelihood::new(x, m);
    let sol = minimize(MODEL, &l, vec![0.0, 1.0f64.ln(), mean_m.ln()])?;
    if !sol.converged {
        return Err(ModelError::NoConvergence {
            model: MODEL,
            iterations: sol.iterations,
            grad_norm: sol.grad_norm,
        });
    }
    let (p, q, g) = (sol.theta[0].exp(), sol.theta[1].exp(), sol.theta[2].exp());
    let mut diag = base(vec![("p", p), ("q", q), ("gamma", g)]);
    diag.std_errors = standard_errors(&l, &sol.theta);
    diag.log_likelihood = -sol.nll;
    diag.iterations = sol.iterations;
    diag.termination = sol.termination;
    diag.grad_norm = sol.grad_norm;
    if q <= 1.0 {
        diag.boundary = Some(format!("q = {q:.3} ≤ 1: the population mean spend is infinite; customers without repeat purchases get the sample mean {mean_m:.2}"));
    }
    Ok((
        GammaGamma {
            p,
            q,
            gamma: g,
            constant_spend: None,
        },
        diag,
    ))
}

impl GammaGamma {
    /// Expected spend per purchase given `x` repeat purchases with mean spend `m`
    /// (population mean for `x = 0`).
    pub fn conditional_expected_spend(&self, x: f64, m: f64) -> f64 {
        if let Some(c) = self.constant_spend {
            return c;
        }
        let m = if x > 0.0 { m } else { 0.0 };
        let denom = self.p * x + self.q - 1.0;
        if denom <= 0.0 {
            return f64::NAN;
        }
        self.p * (self.gamma + x * m) / denom
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analytic_gradient_matches_finite_differences() {
        let x = [1.0, 3.0, 7.0, 2.0];
        let m = [12.0, 30.5, 8.25, 100.0];
        let l = Likelihood::new(&x, &m);
        let theta = vec![1.5, 1.2, 2.5];
        crate::fit::assert_gradient_matches(&l, &theta, "gamma-gamma");
    }

    #[test]
    fn constant_spend_is_a_documented_boundary() {
        let x = vec![1.0; 20];
        let m = vec![25.0; 20];
        let (gg, diag) = fit(&x, &m).unwrap();
        assert!(diag.boundary.is_some());
        assert_eq!(gg.conditional_expected_spend(3.0, 25.0), 25.0);
    }
}
