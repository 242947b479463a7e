//! Maximum-likelihood driver shared by the models: BFGS (argmin, Moré–Thuente line search) on
//! log-parameters, a convergence check on the final gradient, and standard errors from the
//! inverse of a finite-difference Hessian of the analytic gradient.

use argmin::core::{
    CostFunction, Error, Executor, Gradient, IterState, OptimizationResult, State,
    TerminationReason, TerminationStatus,
};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::BFGS;
use serde::Serialize;
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("{model}: cannot fit: {reason}; {hint}")]
    NotEnoughData {
        model: &'static str,
        reason: String,
        hint: String,
    },
    #[error("{model}: the fit did not converge after {iterations} iterations (gradient norm {grad_norm:.3e} at {params}); check the input for outliers, or skip the models with --no-models (models.enabled = false)")]
    NoConvergence {
        model: &'static str,
        iterations: u64,
        grad_norm: f64,
        /// Where the fit stopped, e.g. `r = 0.24, alpha = 4.4`.
        params: String,
    },
    #[error("{model}: optimizer failed: {message}; skip the models with --no-models (models.enabled = false)")]
    Optimizer {
        model: &'static str,
        message: String,
    },
}

/// What a fit reports, recorded in the manifest. Parameters and their standard errors appear
/// there as objects keyed by name (`params.r`, `std_errors.r`), in the model's order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(into = "DiagnosticsJson")]
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
    /// When the gradient test alone did not pass: half the Newton decrement gᵀH⁻¹g/2 of the
    /// mean negative log-likelihood, the improvement a Newton step would still make. Below
    /// 1e-10 the fit has converged whatever the gradient's scale (ill-conditioned data).
    pub newton_decrement: Option<f64>,
    /// Customers (sum of weights) and distinct rows the likelihood ran over.
    pub customers: f64,
    pub unique_rows: usize,
    /// Set when the solution is on a documented boundary (e.g. BG/NBD without dropout = NBD).
    pub boundary: Option<String>,
}

/// Name → value pairs written as a JSON object, in their order.
#[derive(Debug, Clone)]
struct Named<T>(Vec<(&'static str, T)>);

impl<T: Serialize> Serialize for Named<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// [`FitDiagnostics`] as the manifest shows it.
#[derive(Serialize)]
struct DiagnosticsJson {
    model: &'static str,
    params: Named<f64>,
    std_errors: Named<Option<f64>>,
    log_likelihood: f64,
    iterations: u64,
    converged: bool,
    termination: String,
    grad_norm: f64,
    newton_decrement: Option<f64>,
    customers: f64,
    unique_rows: usize,
    boundary: Option<String>,
}

impl From<FitDiagnostics> for DiagnosticsJson {
    fn from(d: FitDiagnostics) -> Self {
        let std_errors = d
            .params
            .iter()
            .zip(d.std_errors)
            .map(|(p, se)| (p.0, se))
            .collect();
        DiagnosticsJson {
            model: d.model,
            params: Named(d.params),
            std_errors: Named(std_errors),
            log_likelihood: d.log_likelihood,
            iterations: d.iterations,
            converged: d.converged,
            termination: d.termination,
            grad_norm: d.grad_norm,
            newton_decrement: d.newton_decrement,
            customers: d.customers,
            unique_rows: d.unique_rows,
            boundary: d.boundary,
        }
    }
}

impl FitDiagnostics {
    /// The diagnostics of a fit that ended at `sol` over `customers` (weights) in `unique_rows`.
    pub(crate) fn of_solution(
        model: &'static str,
        params: Vec<(&'static str, f64)>,
        std_errors: Vec<Option<f64>>,
        sol: &Solution,
        (customers, unique_rows): (f64, usize),
        boundary: Option<String>,
    ) -> Self {
        FitDiagnostics {
            model,
            params,
            std_errors,
            log_likelihood: -sol.nll,
            iterations: sol.iterations,
            converged: sol.converged,
            termination: sol.termination.clone(),
            grad_norm: sol.grad_norm,
            newton_decrement: sol.newton_decrement,
            customers,
            unique_rows,
            boundary,
        }
    }

    pub fn param(&self, name: &str) -> f64 {
        self.params
            .iter()
            .find(|p| p.0 == name)
            .map(|p| p.1)
            .unwrap_or(f64::NAN)
    }
}

/// `name = value` pairs for messages.
pub(crate) fn describe(names: &[&str], values: &[f64]) -> String {
    names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n} = {v:.4e}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A weighted negative log-likelihood over log-parameters θ.
pub(crate) trait Objective: Sync {
    /// Total weighted negative log-likelihood and its gradient in θ.
    fn nll_grad(&self, theta: &[f64]) -> (f64, Vec<f64>);
    fn total_weight(&self) -> f64;
}

/// The objective scaled to a mean, with the last evaluation cached: argmin asks for the cost and
/// the gradient at the same point separately, and one likelihood pass yields both. It also keeps
/// the best point evaluated, which survives a solver run that ends in an error.
struct Scaled<'a, O: Objective> {
    objective: &'a O,
    last: Mutex<Option<Evaluation>>,
    best: &'a Mutex<Option<(f64, Vec<f64>)>>,
}

/// θ, the mean negative log-likelihood there, and its gradient.
type Evaluation = (Vec<f64>, f64, Vec<f64>);

impl<'a, O: Objective> Scaled<'a, O> {
    fn new(objective: &'a O, best: &'a Mutex<Option<(f64, Vec<f64>)>>) -> Self {
        Scaled {
            objective,
            last: Mutex::new(None),
            best,
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
        if let Ok(mut best) = self.best.lock() {
            if v.is_finite() && best.as_ref().is_none_or(|b| v < b.0) {
                *best = Some((v, theta.to_vec()));
            }
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
    /// Gradient of the total NLL at `theta`.
    pub gradient: Vec<f64>,
    pub iterations: u64,
    pub termination: String,
    pub grad_norm: f64,
    pub newton_decrement: Option<f64>,
    pub converged: bool,
}

/// Convergence: the max-abs gradient of the mean NLL below this...
const CONVERGED_GRAD: f64 = 1e-5;
/// ...or, for a gradient up to [`LOOSE_GRAD`], a remaining Newton improvement of the mean NLL
/// below this: a scale-free test that ill-conditioned fits (nearly constant spend, say) pass
/// where the absolute gradient test stalls at 1e-5 or so.
const CONVERGED_DECREMENT: f64 = 1e-10;
const LOOSE_GRAD: f64 = 1e-2;

const GRAD_TOL: f64 = 1e-7;

/// Rows in the warm-start subsample.
const SAMPLE_ROWS: usize = 25_000;

/// For large data, the stride of a systematic subsample (every k-th row) of about
/// [`SAMPLE_ROWS`] rows. Fitting it first lands close to the optimum for a fraction of a
/// full pass per iteration; the full-data fit then starts there and only polishes, under the same
/// convergence test, so the result is the full-data maximum either way.
pub(crate) fn warm_start_stride(rows: usize) -> Option<usize> {
    (rows >= 4 * SAMPLE_ROWS).then_some(rows / SAMPLE_ROWS)
}

/// Where a full-data fit starts: parameters and, from a subsample fit, the inverse Hessian of the
/// mean negative log-likelihood there.
pub(crate) struct Start {
    pub theta: Vec<f64>,
    pub inv_hessian: Option<Vec<Vec<f64>>>,
}

impl Start {
    pub fn cold(theta: Vec<f64>) -> Self {
        Start {
            theta,
            inv_hessian: None,
        }
    }
}

/// Fits a subsample objective and returns its optimum with the inverse of its (mean) Hessian:
/// BFGS seeded with that curvature takes near-Newton steps on the full data from the first
/// iteration. Falls back to `init` if the subsample fit fails (the full fit then decides).
pub(crate) fn warm_start<O: Objective>(model: &'static str, sample: &O, init: Vec<f64>) -> Start {
    let Ok(sol) = minimize(model, sample, Start::cold(init.clone())) else {
        return Start::cold(init);
    };
    let w = sample.total_weight();
    let mean_hessian: Vec<Vec<f64>> = hessian(sample, &sol.theta, Some(&sol.gradient))
        .into_iter()
        .map(|row| row.into_iter().map(|v| v / w).collect())
        .collect();
    let inv_hessian = invert(mean_hessian).filter(|inv| {
        (0..inv.len()).all(|i| inv[i][i] > 0.0 && inv[i].iter().all(|v| v.is_finite()))
    });
    Start {
        theta: sol.theta,
        inv_hessian,
    }
}

/// The solver state of a BFGS run on `Vec<f64>` parameters.
type BfgsState = IterState<Vec<f64>, Vec<f64>, (), Vec<Vec<f64>>, (), f64>;

/// Iterations and why a solver run stopped.
fn outcome<P, S>(result: Result<OptimizationResult<P, S, BfgsState>, Error>) -> (u64, String) {
    match result {
        Ok(res) => {
            let state = res.state();
            let termination = match state.get_termination_status() {
                TerminationStatus::Terminated(TerminationReason::SolverConverged) => {
                    "converged".into()
                }
                TerminationStatus::Terminated(r) => r.text().to_string(),
                TerminationStatus::NotTerminated => "not terminated".into(),
            };
            (state.get_iter(), termination)
        }
        // A failed line search near the optimum is common and harmless: the caller decides
        // from the gradient at the best point.
        Err(e) => (0, e.to_string()),
    }
}

pub(crate) fn minimize<O: Objective>(
    model: &'static str,
    objective: &O,
    start: Start,
) -> Result<Solution, ModelError> {
    let optimizer_error = |e: Error| ModelError::Optimizer {
        model,
        message: e.to_string(),
    };
    let mut theta = start.theta;
    let mut inv_hessian = start.inv_hessian;
    let mut iterations = 0;
    let mut termination = String::new();
    let mut final_eval = (f64::INFINITY, Vec::new());
    let best = Mutex::new(None);
    // BFGS (a full 3×3 or 4×4 inverse-Hessian estimate costs nothing here) from the subsample's
    // curvature when there is one, else from the identity; a restart from the best point clears
    // that memory when a line search stalls.
    for _ in 0..3 {
        let h0 = inv_hessian.take().unwrap_or_else(|| identity(theta.len()));
        let solver = BFGS::new(MoreThuenteLineSearch::new())
            .with_tolerance_grad(GRAD_TOL)
            .and_then(|s| s.with_tolerance_cost(1e-15))
            .map_err(optimizer_error)?;
        let (iters, why) = outcome(
            Executor::new(Scaled::new(objective, &best), solver)
                .configure(|state| state.param(theta.clone()).inv_hessian(h0).max_iters(1000))
                .run(),
        );
        iterations += iters;
        termination = why;
        // The lowest point evaluated: argmin's best, or where a run that failed (e.g. a BFGS
        // update that lost positive definiteness near the optimum) had got to.
        if let Some((_, t)) = best.lock().ok().and_then(|b| b.clone()) {
            theta = t;
        }
        // One likelihood pass at the best point serves the restart check and the result.
        final_eval = objective.nll_grad(&theta);
        if grad_norm(objective, &final_eval.1) < CONVERGED_GRAD {
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
    let newton_decrement = (CONVERGED_GRAD..LOOSE_GRAD)
        .contains(&g)
        .then(|| newton_decrement(objective, &theta, &gradient))
        .flatten();
    let converged = g < CONVERGED_GRAD || newton_decrement.is_some_and(|d| d < CONVERGED_DECREMENT);
    Ok(Solution {
        theta,
        nll,
        gradient,
        iterations,
        termination,
        grad_norm: g,
        newton_decrement,
        converged,
    })
}

/// gᵀH⁻¹g/2 for the mean NLL at θ (total-NLL gradient `g`); `None` when the Hessian is not
/// positive definite there (not a minimum).
fn newton_decrement<O: Objective>(objective: &O, theta: &[f64], g: &[f64]) -> Option<f64> {
    let inv = invert(hessian(objective, theta, None))?;
    let k = theta.len();
    if (0..k).any(|i| inv[i][i] <= 0.0) {
        return None;
    }
    let mut quad = 0.0;
    for i in 0..k {
        for j in 0..k {
            quad += g[i] * inv[i][j] * g[j];
        }
    }
    let d = 0.5 * quad / objective.total_weight();
    (d.is_finite() && d >= 0.0).then_some(d)
}

/// Max-abs gradient of the mean NLL, from the total-NLL gradient `g`.
fn grad_norm<O: Objective>(objective: &O, g: &[f64]) -> f64 {
    let w = objective.total_weight();
    g.iter().map(|v| (v / w).abs()).fold(0.0, f64::max)
}

/// Hessian of the total NLL in θ from differences of the analytic gradient. With the gradient
/// `g0` at θ given, forward differences (one likelihood pass per parameter, for the warm start's
/// curvature estimate); without, central differences (two passes per parameter, for the
/// reported standard errors: the Gamma-Gamma fit is ill-conditioned enough that forward
/// differences move its standard errors in the fifth digit).
fn hessian<O: Objective>(objective: &O, theta: &[f64], g0: Option<&[f64]>) -> Vec<Vec<f64>> {
    let k = theta.len();
    let mut hess = vec![vec![0.0; k]; k];
    let shifted = |j: usize, h: f64| {
        let mut t = theta.to_vec();
        t[j] += h;
        objective.nll_grad(&t).1
    };
    for j in 0..k {
        // Step sizes near the optimal ε^(1/2) (forward) and ε^(1/3) (central).
        let (up, down, span) = match g0 {
            Some(g0) => (shifted(j, 1e-7), g0.to_vec(), 1e-7),
            None => (shifted(j, 5e-6), shifted(j, -5e-6), 1e-5),
        };
        for i in 0..k {
            hess[i][j] = (up[i] - down[i]) / span;
        }
    }
    for i in 0..k {
        for j in 0..i {
            let m = 0.5 * (hess[i][j] + hess[j][i]);
            hess[i][j] = m;
            hess[j][i] = m;
        }
    }
    hess
}

/// Standard errors of exp(θ) from the inverse Hessian of the total NLL in θ (delta method).
pub(crate) fn standard_errors<O: Objective>(objective: &O, theta: &[f64]) -> Vec<Option<f64>> {
    let k = theta.len();
    match invert(hessian(objective, theta, None)) {
        Some(cov) => (0..k)
            .map(|i| (cov[i][i] > 0.0).then(|| theta[i].exp() * cov[i][i].sqrt()))
            .collect(),
        None => vec![None; k],
    }
}

/// The distinct values (ascending) across `columns` and, per column, each row's index into them:
/// the likelihoods evaluate parameter-dependent functions once per distinct value (a few hundred
/// day counts) instead of once per row. Whole non-negative numbers (days, counts) take a dense
/// lookup; anything else sorts.
pub(crate) fn distinct_index(columns: &[&[f64]]) -> (Vec<f64>, Vec<Vec<u32>>) {
    const DENSE_MAX: f64 = (1 << 22) as f64;
    let whole = columns.iter().all(|c| {
        c.iter()
            .all(|&v| (0.0..DENSE_MAX).contains(&v) && v.fract() == 0.0)
    });
    if whole {
        let max = columns
            .iter()
            .flat_map(|c| c.iter())
            .fold(0.0, |m: f64, &v| m.max(v)) as usize;
        let mut slot = vec![u32::MAX; max + 1];
        for c in columns {
            for &v in c.iter() {
                slot[v as usize] = 0;
            }
        }
        let mut distinct = Vec::new();
        for (v, s) in slot.iter_mut().enumerate() {
            if *s == 0 {
                *s = distinct.len() as u32;
                distinct.push(v as f64);
            }
        }
        let index = columns
            .iter()
            .map(|c| c.iter().map(|&v| slot[v as usize]).collect())
            .collect();
        return (distinct, index);
    }
    let mut distinct: Vec<f64> = columns.iter().flat_map(|c| c.iter().copied()).collect();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    let index = columns
        .iter()
        .map(|c| {
            c.iter()
                .map(|v| distinct.partition_point(|d| d < v) as u32)
                .collect()
        })
        .collect();
    (distinct, index)
}

/// Rows per block of a likelihood sum.
const BLOCK: usize = 4096;

/// Sums `K` per-row quantities over `0..n`: fixed blocks run in parallel, then add up in block
/// order, so a fit is bit-for-bit the same on any number of threads.
pub(crate) fn block_sums<const K: usize>(
    n: usize,
    block: impl Fn(std::ops::Range<usize>) -> [f64; K] + Sync,
) -> [f64; K] {
    use rayon::prelude::*;
    let parts: Vec<[f64; K]> = (0..n.div_ceil(BLOCK))
        .into_par_iter()
        .map(|b| block(b * BLOCK..n.min((b + 1) * BLOCK)))
        .collect();
    let mut total = [0.0; K];
    for part in parts {
        for k in 0..K {
            total[k] += part[k];
        }
    }
    total
}

fn identity(n: usize) -> Vec<Vec<f64>> {
    (0..n)
        .map(|i| (0..n).map(|j| f64::from(u8::from(i == j))).collect())
        .collect()
}

/// Gauss–Jordan inversion with partial pivoting; `None` when singular.
fn invert(mut a: Vec<Vec<f64>>) -> Option<Vec<Vec<f64>>> {
    let n = a.len();
    let mut inv = identity(n);
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
    fn distinct_values_index_both_ways() {
        // Whole days take the dense path, fractional weeks the sorted one: same contract.
        for (a, b) in [
            (vec![5.0, 0.0, 5.0, 12.0], vec![3.0, 12.0]),
            (vec![5.5, 0.25, 5.5, 12.0], vec![3.0, 12.0]),
        ] {
            let (distinct, index) = distinct_index(&[&a, &b]);
            let mut want: Vec<f64> = a.iter().chain(&b).copied().collect();
            want.sort_by(f64::total_cmp);
            want.dedup();
            assert_eq!(distinct, want);
            for (col, idx) in [&a, &b].iter().zip(&index) {
                let back: Vec<f64> = idx.iter().map(|&i| distinct[i as usize]).collect();
                assert_eq!(&back, *col);
            }
        }
    }

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
