//! Maximum-likelihood driver shared by the models: L-BFGS (argmin, Moré–Thuente line search) on
//! log-parameters, a convergence check on the final gradient, and standard errors from the
//! inverse of a finite-difference Hessian of the analytic gradient.

use argmin::core::{CostFunction, Executor, Gradient, State, TerminationReason, TerminationStatus};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("{model}: cannot fit: {reason}; {hint}")]
    NotEnoughData {
        model: &'static str,
        reason: String,
        hint: String,
    },
    #[error("{model}: the fit did not converge after {iterations} iterations (gradient norm {grad_norm:.3e}); check the input for outliers or fewer, larger units of time")]
    NoConvergence {
        model: &'static str,
        iterations: u64,
        grad_norm: f64,
    },
    #[error("{model}: optimizer failed: {message}")]
    Optimizer {
        model: &'static str,
        message: String,
    },
}

/// What a fit reports, recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FitDiagnostics {
    pub model: &'static str,
    /// Parameter names and maximum-likelihood values.
    pub params: Vec<(&'static str, f64)>,
    /// Asymptotic standard errors (delta method from log-space); null when the Hessian is singular.
    pub std_errors: Vec<Option<f64>>,
    pub log_likelihood: f64,
    pub iterations: u64,
    pub converged: bool,
    pub termination: String,
    /// Max-abs gradient of the mean negative log-likelihood in log-parameters at the solution.
    pub grad_norm: f64,
    /// Customers (sum of weights) and distinct rows the likelihood ran over.
    pub customers: f64,
    pub unique_rows: usize,
    /// Set when the solution is on a documented boundary (e.g. BG/NBD without dropout = NBD).
    pub boundary: Option<String>,
}

impl FitDiagnostics {
    pub fn param(&self, name: &str) -> f64 {
        self.params
            .iter()
            .find(|p| p.0 == name)
            .map(|p| p.1)
            .unwrap_or(f64::NAN)
    }
}

/// A weighted negative log-likelihood over log-parameters θ.
pub(crate) trait Objective: Sync {
    /// Total weighted negative log-likelihood and its gradient in θ.
    fn nll_grad(&self, theta: &[f64]) -> (f64, Vec<f64>);
    fn total_weight(&self) -> f64;
}

/// The objective scaled to a mean, with the last evaluation cached: argmin asks for the cost and
/// the gradient at the same point separately, and one likelihood pass yields both.
struct Scaled<'a, O: Objective> {
    objective: &'a O,
    last: std::sync::Mutex<Option<Evaluation>>,
}

/// θ, the mean negative log-likelihood there, and its gradient.
type Evaluation = (Vec<f64>, f64, Vec<f64>);

impl<'a, O: Objective> Scaled<'a, O> {
    fn new(objective: &'a O) -> Self {
        Scaled {
            objective,
            last: std::sync::Mutex::new(None),
        }
    }

    fn eval(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        if let Ok(guard) = self.last.lock() {
            if let Some((t, v, g)) = guard.as_ref() {
                if t.as_slice() == theta {
                    return (*v, g.clone());
                }
            }
        }
        let (v, g) = self.objective.nll_grad(theta);
        let w = self.objective.total_weight();
        let v = if v.is_finite() { v / w } else { f64::INFINITY };
        let g: Vec<f64> = g.into_iter().map(|x| x / w).collect();
        if let Ok(mut guard) = self.last.lock() {
            *guard = Some((theta.to_vec(), v, g.clone()));
        }
        (v, g)
    }
}

impl<O: Objective> CostFunction for Scaled<'_, O> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, theta: &Vec<f64>) -> Result<f64, argmin::core::Error> {
        Ok(self.eval(theta).0)
    }
}

impl<O: Objective> Gradient for Scaled<'_, O> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, theta: &Vec<f64>) -> Result<Vec<f64>, argmin::core::Error> {
        Ok(self.eval(theta).1)
    }
}

pub(crate) struct Solution {
    pub theta: Vec<f64>,
    pub nll: f64,
    pub iterations: u64,
    pub termination: String,
    pub grad_norm: f64,
    pub converged: bool,
}

const GRAD_TOL: f64 = 1e-7;

pub(crate) fn minimize<O: Objective>(
    model: &'static str,
    objective: &O,
    init: Vec<f64>,
) -> Result<Solution, ModelError> {
    let mut theta = init;
    let mut iterations = 0;
    let mut termination = String::new();
    // A restart from the best point clears L-BFGS's curvature memory when a line search stalls.
    let mut final_eval = (f64::INFINITY, Vec::new());
    for _ in 0..3 {
        let solver = LBFGS::new(MoreThuenteLineSearch::new(), 10)
            .with_tolerance_grad(GRAD_TOL)
            .and_then(|s| s.with_tolerance_cost(1e-15))
            .map_err(|e| ModelError::Optimizer {
                model,
                message: e.to_string(),
            })?;
        let result = Executor::new(Scaled::new(objective), solver)
            .configure(|state| state.param(theta.clone()).max_iters(1000))
            .run();
        match result {
            Ok(res) => {
                let state = res.state();
                iterations += state.get_iter();
                if let Some(best) = state.get_best_param() {
                    theta = best.clone();
                }
                termination = match state.get_termination_status() {
                    TerminationStatus::Terminated(TerminationReason::SolverConverged) => {
                        "converged".into()
                    }
                    TerminationStatus::Terminated(r) => r.text().to_string(),
                    TerminationStatus::NotTerminated => "not terminated".into(),
                };
            }
            // A failed line search near the optimum is common and harmless: the check below
            // decides from the gradient at the best point.
            Err(e) => termination = e.to_string(),
        }
        // One likelihood pass at the best point serves the restart check and the result.
        final_eval = objective.nll_grad(&theta);
        if grad_norm(objective, &final_eval.1) < 1e-5 {
            break;
        }
    }
    let (nll, gradient) = final_eval;
    let g = grad_norm(objective, &gradient);
    if !nll.is_finite() || theta.iter().any(|t| !t.is_finite()) {
        return Err(ModelError::Optimizer {
            model,
            message: format!("non-finite likelihood at θ = {theta:?}"),
        });
    }
    Ok(Solution {
        theta,
        nll,
        iterations,
        termination,
        grad_norm: g,
        converged: g < 1e-5,
    })
}

/// Max-abs gradient of the mean NLL, from the total-NLL gradient `g`.
fn grad_norm<O: Objective>(objective: &O, g: &[f64]) -> f64 {
    let w = objective.total_weight();
    g.iter().map(|v| (v / w).abs()).fold(0.0, f64::max)
}

/// Standard errors of exp(θ) from the inverse Hessian of the total NLL in θ (delta method).
pub(crate) fn standard_errors<O: Objective>(objective: &O, theta: &[f64]) -> Vec<Option<f64>> {
    let k = theta.len();
    let h = 1e-5;
    let mut hess = vec![vec![0.0; k]; k];
    for j in 0..k {
        let mut up = theta.to_vec();
        let mut down = theta.to_vec();
        up[j] += h;
        down[j] -= h;
        let (_, gu) = objective.nll_grad(&up);
        let (_, gd) = objective.nll_grad(&down);
        for i in 0..k {
            hess[i][j] = (gu[i] - gd[i]) / (2.0 * h);
        }
    }
    for i in 0..k {
        for j in 0..i {
            let m = 0.5 * (hess[i][j] + hess[j][i]);
            hess[i][j] = m;
            hess[j][i] = m;
        }
    }
    match invert(hess) {
        Some(cov) => (0..k)
            .map(|i| (cov[i][i] > 0.0).then(|| theta[i].exp() * cov[i][i].sqrt()))
            .collect(),
        None => vec![None; k],
    }
}

/// Gauss–Jordan inversion with partial pivoting; `None` when singular.
fn invert(mut a: Vec<Vec<f64>>) -> Option<Vec<Vec<f64>>> {
    let n = a.len();
    let mut inv: Vec<Vec<f64>> = (0..n)
        .map(|i| (0..n).map(|j| f64::from(u8::from(i == j))).collect())
        .collect();
    for col in 0..n {
        let pivot = (col..n).max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))?;
        if a[pivot][col].abs() < 1e-300 || !a[pivot][col].is_finite() {
            return None;
        }
        a.swap(col, pivot);
        inv.swap(col, pivot);
        let p = a[col][col];
        for j in 0..n {
            a[col][j] /= p;
            inv[col][j] /= p;
        }
        for row in 0..n {
            if row != col {
                let f = a[row][col];
                for j in 0..n {
                    a[row][j] -= f * a[col][j];
                    inv[row][j] -= f * inv[col][j];
                }
            }
        }
    }
    Some(inv)
}

/// Test helper: the analytic gradient of `objective` equals central finite differences at θ.
#[cfg(test)]
pub(crate) fn assert_gradient_matches<O: Objective>(objective: &O, theta: &[f64], label: &str) {
    let (_, g) = objective.nll_grad(theta);
    for k in 0..theta.len() {
        let h = 1e-6;
        let mut up = theta.to_vec();
        let mut dn = theta.to_vec();
        up[k] += h;
        dn[k] -= h;
        let num = (objective.nll_grad(&up).0 - objective.nll_grad(&dn).0) / (2.0 * h);
        assert!(
            (num - g[k]).abs() < 1e-6 * (1.0 + num.abs()),
            "{label} k={k}: numeric {num} vs analytic {}",
            g[k]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_of_a_known_matrix() {
        let inv = invert(vec![vec![4.0, 7.0], vec![2.0, 6.0]]).unwrap();
        let want = [[0.6, -0.7], [-0.2, 0.4]];
        for i in 0..2 {
            for j in 0..2 {
                assert!((inv[i][j] - want[i][j]).abs() < 1e-12);
            }
        }
        assert!(invert(vec![vec![1.0, 2.0], vec![2.0, 4.0]]).is_none());
    }
}
