//! Pareto/NBD (Schmittlein, Morrison & Colombo 1987) by maximum likelihood, in the form of
//! Fader, Hardie & Lee's 2005 note ("A Note on Deriving the Pareto/NBD Model and Related
//! Expressions"). While alive a customer buys at rate λ ~ Gamma(r, α); the lifetime is
//! exponential with rate μ ~ Gamma(s, β), so, unlike BG/NBD, dropout may come at any time.
//!
//! Likelihood of one customer (note eq. 18-20), with a = r + s + x:
//! ```text
//! L = Γ(r+x) α^r β^s / Γ(r) · [ (α+T)^−(r+x) (β+T)^−s + s · (J(t_x) − J(T)) ]
//! J(t) = ∫_t^∞ (α+τ)^−(r+x) (β+τ)^−(s+1) dτ
//!      = ₂F₁(a, s+1; a+1; (α−β)/(α+t)) / (a (α+t)^a)        for α ≥ β,
//!      = ₂F₁(a, r+x; a+1; (β−α)/(β+t)) / (a (β+t)^a)        for α < β.
//! ```
//! The branch keeps ₂F₁'s argument in [0, 1), where its series has positive terms (no
//! cancellation). J depends on (x, t) only: it is evaluated once per distinct (x, t_x) and
//! (x, T) pair, with its derivatives in (r, α, s, β) from the same series, so the fit has an
//! analytic gradient at the cost of a table, whatever the number of customers.
//!
//! Given alive at T, λ ~ Gamma(r+x, α+T) and μ ~ Gamma(s, β+T), which gives P(alive) (note
//! eq. 36-37), the expected purchases in (T, T+h] (eq. 41) and, new here, the probability of at
//! least one purchase in (T, T+h]: a customer alive at T makes none if the horizon ends first
//! or the lifetime does, before any purchase, so
//! P(none | alive) = E[e^−(λ+μ)h] + ∫₀ʰ E[μ e^−μu] E[e^−λu] du
//!                 = ((α+T)/(α+T+h))^(r+x) ((β+T)/(β+T+h))^s
//!                   + s (α+T)^(r+x) (β+T)^s (J(T) − J(T+h)),
//! the same J.

use crate::bgnbd::Triples;
use crate::customer::PairIndex;
use crate::fit::{
    block_sums, distinct_index, minimize, standard_errors, warm_start, warm_start_stride,
    FitDiagnostics, ModelError, Objective, Start,
};
use crate::special::{digamma, ln_gamma};
use rayon::prelude::*;

const MODEL: &str = "Pareto/NBD";
/// ln(1e6): both parameters of a Gamma beyond this mean it has collapsed onto its mean.
const COLLAPSED_LN: f64 = 13.8;
/// Where the likelihood stops being evaluated: a little past [`COLLAPSED_LN`].
const RUNAWAY_LN: f64 = COLLAPSED_LN + 0.5;
/// ln(1e4): both of the dropout Gamma's beyond this: reported as near that boundary.
const NEAR_COLLAPSE_LN: f64 = 9.21;

/// Fitted Pareto/NBD parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ParetoNbd {
    pub r: f64,
    pub alpha: f64,
    pub s: f64,
    pub beta: f64,
}

/// ln ₂F₁(a, b; a+1; z) for a > 0, b > 0, 0 ≤ z < 1, with the derivatives of that logarithm in
/// a, b and z: the direct series Σ a/(a+n) (b)ₙ zⁿ/n!, whose terms are positive. Rescaled as it
/// goes, so large (b)ₙ zⁿ/n! (large x, z near 1) do not overflow.
fn ln_hyp2f1_a1(a: f64, b: f64, z: f64) -> (f64, [f64; 3]) {
    if z == 0.0 {
        return (0.0, [0.0, 0.0, a * b / (a + 1.0)]);
    }
    // cₙ = (b)ₙ zⁿ / n!, and Σ_{k<n} 1/(b+k) for ∂cₙ/∂b.
    let (mut c, mut sb) = (1.0f64, 0.0f64);
    let (mut f, mut fa, mut fb, mut fz) = (1.0f64, 0.0f64, 0.0f64, 0.0f64);
    let mut ln_scale = 0.0f64;
    // Past this index the terms only shrink.
    let peak = ((b - 1.0) * z / (1.0 - z)).max(0.0);
    let mut n = 0.0f64;
    for _ in 0..2_000_000 {
        sb += 1.0 / (b + n);
        c *= (b + n) * z / (n + 1.0);
        n += 1.0;
        let w = a / (a + n);
        let term = w * c;
        f += term;
        fa += n / ((a + n) * (a + n)) * c;
        fb += term * sb;
        fz += term * n;
        if f > 1e250 {
            let k = 1e-250;
            c *= k;
            f *= k;
            fa *= k;
            fb *= k;
            fz *= k;
            ln_scale += 250.0 * std::f64::consts::LN_10;
        }
        if n > peak && term * (1.0 + sb) * (1.0 + n) <= 1e-17 * f {
            break;
        }
    }
    (f.ln() + ln_scale, [fa / f, fb / f, fz / (f * z)])
}

/// [`ln_hyp2f1_a1`] by Euler's transformation, ₂F₁(a, b; a+1; z) = (1−z)^(1−b) ·
/// Σ (a+1−b)ₙ/(a+1)ₙ zⁿ: for large b (the α < β branch, b = r + x) the direct terms climb to a
/// peak near n ≈ b·z/(1−z) before they fall, while these (a + 1 − b = s + 1 there) fall at once.
fn ln_hyp2f1_a1_euler(a: f64, b: f64, z: f64) -> (f64, [f64; 3]) {
    if z == 0.0 {
        return (0.0, [0.0, 0.0, a * b / (a + 1.0)]);
    }
    let (c, d) = (a + 1.0 - b, a + 1.0);
    // gₙ = (c)ₙ zⁿ / (d)ₙ, with Σ_{k<n} 1/(c+k) and Σ_{k<n} 1/(d+k) for its derivatives.
    let (mut g, mut sc, mut sd) = (1.0f64, 0.0f64, 0.0f64);
    let (mut sum, mut dc, mut dd, mut dz) = (1.0f64, 0.0f64, 0.0f64, 0.0f64);
    let mut n = 0.0f64;
    for _ in 0..2_000_000 {
        sc += 1.0 / (c + n);
        sd += 1.0 / (d + n);
        g *= (c + n) * z / (d + n);
        n += 1.0;
        sum += g;
        dc += g * sc;
        dd += g * sd;
        dz += g * n;
        if g.abs() * (1.0 + sc.abs() + sd + n) <= 1e-17 * sum && (c + n) * z < d + n {
            break;
        }
    }
    let ln_1mz = (-z).ln_1p();
    let (dc, dd, dz) = (dc / sum, -dd / sum, dz / (sum * z));
    // ln F = (1−b) ln(1−z) + ln G(c = a+1−b, d = a+1; z).
    (
        (1.0 - b) * ln_1mz + sum.ln(),
        [dc + dd, -ln_1mz - dc, -(1.0 - b) / (1.0 - z) + dz],
    )
}

/// ln J(x, t) and its gradient in (r, α, s, β) by double-exponential (exp-sinh) quadrature of
/// the integral itself: τ = t + L·exp(π/2·sinh θ), θ on a fine grid, with L the integrand's
/// decay length. For the arguments where the series would need thousands of terms: ₂F₁'s z
/// near 1 (one of α, β far above the other plus t) or a huge s (a dropout Gamma collapsing onto
/// its mean), as fits at short calibration periods can reach.
fn ln_tail_quadrature(m: &ParetoNbd, x: f64, t: f64) -> (f64, [f64; 4]) {
    const H: f64 = 1.0 / 32.0;
    const STEPS: i32 = 4 * 32;
    let ParetoNbd { r, alpha, s, beta } = *m;
    let (p, q) = (r + x, s + 1.0);
    let scale = 1.0 / (p / (alpha + t) + q / (beta + t));
    let half_pi = std::f64::consts::FRAC_PI_2;
    let mut nodes: Vec<(f64, [f64; 4])> = Vec::with_capacity(2 * STEPS as usize + 1);
    for k in -STEPS..=STEPS {
        let theta = f64::from(k) * H;
        let e = half_pi * theta.sinh();
        let u = scale * e.exp();
        // ln of the weight L·(π/2)·cosh θ·e^(π/2 sinh θ)·H and of the integrand at t + u.
        let ln_w = scale.ln() + (half_pi * theta.cosh()).ln() + e + H.ln();
        let (at, bt) = (alpha + t + u, beta + t + u);
        let ln_f = -p * at.ln() - q * bt.ln();
        nodes.push((ln_w + ln_f, [-at.ln(), -p / at, -bt.ln(), -q / bt]));
    }
    let top = nodes.iter().map(|n| n.0).fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    let mut d = [0.0; 4];
    for (ln_v, dv) in &nodes {
        let v = (ln_v - top).exp();
        sum += v;
        for k in 0..4 {
            d[k] += v * dv[k];
        }
    }
    (top + sum.ln(), d.map(|v| v / sum))
}

/// ln J(x, t) and its gradient in (r, α, s, β) (see the module docs): ₂F₁'s series where it
/// converges in a few hundred terms, else [`ln_tail_quadrature`].
fn ln_tail(m: &ParetoNbd, x: f64, t: f64) -> (f64, [f64; 4]) {
    let ParetoNbd { r, alpha, s, beta } = *m;
    let a = r + s + x;
    let z = (alpha - beta).abs() / (alpha.max(beta) + t);
    // The direct series' terms peak near n = s·z/(1−z) (α ≥ β); both series shrink like zⁿ.
    let slow = z > 0.9 || (alpha >= beta && s * z / (1.0 - z) > 1000.0);
    if slow {
        return ln_tail_quadrature(m, x, t);
    }
    if alpha >= beta {
        let (m_t, z) = (alpha + t, (alpha - beta) / (alpha + t));
        let (ln_f, [da, db, dz]) = ln_hyp2f1_a1(a, s + 1.0, z);
        let d_a = da - m_t.ln() - 1.0 / a;
        (
            ln_f - a * m_t.ln() - a.ln(),
            [
                d_a,
                -a / m_t + dz * (beta + t) / (m_t * m_t),
                d_a + db,
                -dz / m_t,
            ],
        )
    } else {
        let (m_t, z) = (beta + t, (beta - alpha) / (beta + t));
        let (ln_f, [da, db, dz]) = ln_hyp2f1_a1_euler(a, r + x, z);
        let d_a = da - m_t.ln() - 1.0 / a;
        (
            ln_f - a * m_t.ln() - a.ln(),
            [
                d_a + db,
                -dz / m_t,
                d_a,
                -a / m_t + dz * (alpha + t) / (m_t * m_t),
            ],
        )
    }
}

/// Rows of (x, t_x, T) triples with the (x, t) pairs whose J they need, and the distinct x
/// and T for the per-x and per-T terms.
struct Likelihood<'a> {
    d: &'a Triples,
    total: f64,
    /// Distinct (x, t) pairs, and each row's pair for (x, t_x) and for (x, T).
    pairs: Vec<(f64, f64)>,
    pair_tx: Vec<u32>,
    pair_t: Vec<u32>,
    distinct_x: Vec<f64>,
    x_index: Vec<u32>,
    distinct_t: Vec<f64>,
    t_index: Vec<u32>,
}

impl<'a> Likelihood<'a> {
    fn new(d: &'a Triples) -> Self {
        let (distinct_x, mut x_index) = distinct_index(&[&d.x]);
        let (distinct_t, mut t_index) = distinct_index(&[&d.t]);
        let mut index = PairIndex::default();
        let pair_tx: Vec<u32> = (0..d.len())
            .map(|i| index.index(d.x[i], d.t_x[i]))
            .collect();
        let pair_t: Vec<u32> = (0..d.len()).map(|i| index.index(d.x[i], d.t[i])).collect();
        Likelihood {
            d,
            total: d.weight.iter().sum(),
            pairs: index.pairs,
            pair_tx,
            pair_t,
            distinct_x,
            x_index: x_index.swap_remove(0),
            distinct_t,
            t_index: t_index.swap_remove(0),
        }
    }
}

fn params(theta: &[f64]) -> ParetoNbd {
    ParetoNbd {
        r: theta[0].exp(),
        alpha: theta[1].exp(),
        s: theta[2].exp(),
        beta: theta[3].exp(),
    }
}

impl Objective for Likelihood<'_> {
    fn nll_grad(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        // Past the collapse of a Gamma the fit is refused anyway (see `fit_with`); walking on
        // towards infinity costs a quadrature per pair per step, so the search stops there.
        if theta[0].min(theta[1]) > RUNAWAY_LN || theta[2].min(theta[3]) > RUNAWAY_LN {
            return (f64::INFINITY, vec![0.0; 4]);
        }
        let m = params(theta);
        let ParetoNbd { r, alpha, s, beta } = m;
        let (ln_alpha, ln_beta, ln_s) = (alpha.ln(), beta.ln(), s.ln());
        let (lg_r, dg_r) = (ln_gamma(r), digamma(r));
        let tails: Vec<(f64, [f64; 4])> = self
            .pairs
            .par_iter()
            .map(|&(x, t)| ln_tail(&m, x, t))
            .collect();
        // Per x: ln C = lnΓ(r+x) − lnΓ(r) + r ln α + s ln β and ∂/∂r.
        let per_x: Vec<(f64, f64)> = self
            .distinct_x
            .iter()
            .map(|&x| {
                (
                    ln_gamma(r + x) - lg_r + r * ln_alpha + s * ln_beta,
                    digamma(r + x) - dg_r + ln_alpha,
                )
            })
            .collect();
        // Per T: ln(α+T), ln(β+T).
        let per_t: Vec<(f64, f64)> = self
            .distinct_t
            .iter()
            .map(|&t| ((alpha + t).ln(), (beta + t).ln()))
            .collect();
        let d = self.d;
        let total = block_sums(d.len(), |rows| {
            let mut acc = [0.0; 5];
            for i in rows {
                let x = d.x[i];
                let t = d.t[i];
                let (ln_c, dc_r) = per_x[self.x_index[i] as usize];
                let (ln_at, ln_bt) = per_t[self.t_index[i] as usize];
                let ln_e = -(r + x) * ln_at - s * ln_bt;
                let d_e = [-ln_at, -(r + x) / (alpha + t), -ln_bt, -s / (beta + t)];
                let (ln_j1, d_j1) = tails[self.pair_tx[i] as usize];
                let (ln_j2, d_j2) = tails[self.pair_t[i] as usize];
                let top = ln_e.max(ln_s + ln_j1);
                let e = (ln_e - top).exp();
                let j1 = (ln_s + ln_j1 - top).exp();
                // t_x = T: the same pair, so j1 − j2 is exactly 0.
                let j2 = if self.pair_tx[i] == self.pair_t[i] {
                    j1
                } else {
                    (ln_s + ln_j2 - top).exp()
                };
                let den = e + j1 - j2;
                let (we, w1, w2) = (e / den, j1 / den, j2 / den);
                let w = d.weight[i];
                acc[0] += w * (ln_c + top + den.ln());
                let d_c = [dc_r, r / alpha, ln_beta, s / beta];
                for k in 0..4 {
                    let mut g = d_c[k] + we * d_e[k] + w1 * d_j1[k] - w2 * d_j2[k];
                    if k == 2 {
                        g += (w1 - w2) / s;
                    }
                    acc[k + 1] += w * g;
                }
            }
            acc
        });
        let p = [r, alpha, s, beta];
        let grad = (0..4).map(|k| -total[k + 1] * p[k]).collect();
        (-total[0], grad)
    }

    fn total_weight(&self) -> f64 {
        self.total
    }
}

/// Fits Pareto/NBD by maximum likelihood. Errors on data that cannot identify the model, and
/// at a boundary the model cannot score from (a Gamma collapsed onto one rate).
pub fn fit(d: &Triples) -> Result<(ParetoNbd, FitDiagnostics), ModelError> {
    fit_with(d, warm_start_stride(d.len()))
}

/// [`fit`], warm-started from every `stride`-th row when given.
pub(crate) fn fit_with(
    d: &Triples,
    stride: Option<usize>,
) -> Result<(ParetoNbd, FitDiagnostics), ModelError> {
    let not_enough = |reason: String, hint: &str| ModelError::NotEnoughData {
        model: MODEL,
        reason,
        hint: hint.to_string(),
    };
    let total: f64 = d.weight.iter().sum();
    if total < crate::bgnbd::MIN_CUSTOMERS {
        return Err(not_enough(
            format!(
                "{total} customers with a purchase (at least {} are needed)",
                crate::bgnbd::MIN_CUSTOMERS
            ),
            "run on a longer history or more customers",
        ));
    }
    let repeat: f64 = d.x.iter().zip(&d.weight).map(|(x, w)| x * w).sum();
    let exposure: f64 = d.t.iter().zip(&d.weight).map(|(t, w)| t * w).sum();
    if repeat == 0.0 || exposure <= 0.0 {
        return Err(not_enough(
            "no customer has a repeat purchase, or every first purchase is on the as-of day".into(),
            "wait for repeat purchases (a later --as-of)",
        ));
    }
    // Start: one purchase per mean exposure, lifetimes of about the mean T.
    let mean_t = exposure / total;
    let init = vec![0.0, (exposure / repeat).ln(), 0.0, mean_t.max(1.0).ln()];
    let start = match stride {
        Some(k) => warm_start(MODEL, &Likelihood::new(&d.every(k)), init),
        None => Start::cold(init),
    };
    let objective = Likelihood::new(d);
    let sol = minimize(MODEL, &objective, start)?;
    let m = params(&sol.theta);
    let names = ["r", "alpha", "s", "beta"];
    for (pair, what) in [((0, 1), "purchase rates"), ((2, 3), "dropout rates")] {
        if sol.theta[pair.0].min(sol.theta[pair.1]) > COLLAPSED_LN {
            return Err(not_enough(
                format!(
                    "the likelihood rises without bound as {} and {} grow ({}): every customer appears to have the same {what}, which Pareto/NBD cannot represent",
                    names[pair.0],
                    names[pair.1],
                    crate::fit::describe(&names, &[m.r, m.alpha, m.s, m.beta])
                ),
                "use BG/NBD, or check the input covers real customers",
            ));
        }
    }
    if !sol.converged {
        return Err(ModelError::NoConvergence {
            model: MODEL,
            iterations: sol.iterations,
            grad_norm: sol.grad_norm,
            params: crate::fit::describe(&names, &[m.r, m.alpha, m.s, m.beta]),
        });
    }
    let diag = FitDiagnostics::of_solution(
        MODEL,
        names.iter().copied().zip([m.r, m.alpha, m.s, m.beta]).collect(),
        standard_errors(&objective, &sol.theta),
        &sol,
        (total, d.len()),
        (sol.theta[2].min(sol.theta[3]) > NEAR_COLLAPSE_LN).then(|| {
            format!(
                "homogeneous_dropout: s and beta grow together (s = {:.3e}, beta = {:.3e}, s/beta = {:.4e} per time unit): the lifetimes' rate is nearly the same for every customer; scored at the fitted point, where the predictions have settled",
                m.s,
                m.beta,
                m.s / m.beta
            )
        }),
    );
    Ok((m, diag))
}

/// −expm1(k·l)/k, and its limit −l as k → 0 (l = ln of a ratio below 1).
fn expm1_ratio(k: f64, l: f64) -> f64 {
    if (k * l).abs() < 1e-10 {
        -l * (1.0 + 0.5 * k * l)
    } else {
        -(k * l).exp_m1() / k
    }
}

impl ParetoNbd {
    /// Log-likelihood of data under these parameters.
    pub fn log_likelihood(&self, d: &Triples) -> f64 {
        let theta = [self.r.ln(), self.alpha.ln(), self.s.ln(), self.beta.ln()];
        -Likelihood::new(d).nll_grad(&theta).0
    }

    /// 1 / P(alive at T | x, t_x, T) = 1 + s (J(t_x) − J(T)) (α+T)^(r+x) (β+T)^s.
    pub fn history_divisor(&self, x: f64, t_x: f64, t: f64) -> f64 {
        if t_x >= t {
            return 1.0;
        }
        self.divisor_of(x, t, ln_tail(self, x, t_x).0, ln_tail(self, x, t).0)
    }

    /// The divisor from ln J(x, t_x) and ln J(x, T).
    fn divisor_of(&self, x: f64, t: f64, ln_j1: f64, ln_j2: f64) -> f64 {
        let ln_k =
            self.s.ln() + (self.r + x) * (self.alpha + t).ln() + self.s * (self.beta + t).ln();
        1.0 + (ln_k + ln_j1).exp() - (ln_k + ln_j2).exp()
    }

    /// [`Self::history_divisor`] of many customers, with J once per distinct (x, t): scoring a
    /// base costs a table of tails, not two series per customer.
    pub fn history_divisors(&self, rows: &[(f64, f64, f64)]) -> Vec<f64> {
        let mut index = PairIndex::default();
        let at: Vec<(u32, u32)> = rows
            .iter()
            .map(|&(x, t_x, t)| (index.index(x, t_x), index.index(x, t)))
            .collect();
        let tails: Vec<f64> = index
            .pairs
            .par_iter()
            .map(|&(x, t)| ln_tail(self, x, t).0)
            .collect();
        rows.par_iter()
            .zip(&at)
            .map(|(&(x, t_x, t), &(a, b))| {
                if t_x >= t {
                    1.0
                } else {
                    self.divisor_of(x, t, tails[a as usize], tails[b as usize])
                }
            })
            .collect()
    }

    /// P(alive at T | x, t_x, T) (note eq. 36-37).
    pub fn p_alive(&self, x: f64, t_x: f64, t: f64) -> f64 {
        1.0 / self.history_divisor(x, t_x, t)
    }

    /// Expected purchases in (T, T+h] of a customer alive at T (note eq. 41 without P(alive)):
    /// (r+x)(β+T) / ((α+T)(s−1)) · [1 − ((β+T)/(β+T+h))^(s−1)].
    pub fn expected_purchases_given_alive(&self, h: f64, x: f64, t: f64) -> f64 {
        let l = ((self.beta + t) / (self.beta + t + h)).ln();
        (self.r + x) * (self.beta + t) / (self.alpha + t) * expm1_ratio(self.s - 1.0, l)
    }

    /// E[purchases in (T, T+h] | x, t_x, T].
    pub fn conditional_expected_purchases(&self, h: f64, x: f64, t_x: f64, t: f64) -> f64 {
        self.expected_purchases_given_alive(h, x, t) / self.history_divisor(x, t_x, t)
    }

    /// P(at least one purchase in (T, T+h]) of a customer alive at T (see the module docs).
    pub fn p_purchase_if_alive(&self, h: f64, x: f64, t: f64) -> f64 {
        if h <= 0.0 {
            return 0.0;
        }
        let (r, alpha, s, beta) = (self.r, self.alpha, self.s, self.beta);
        let both = (r + x) * (-h / (alpha + t + h)).ln_1p() + s * (-h / (beta + t + h)).ln_1p();
        let ln_k = s.ln() + (r + x) * (alpha + t).ln() + s * (beta + t).ln();
        let (j_t, _) = ln_tail(self, x, t);
        let (j_th, _) = ln_tail(self, x, t + h);
        // J(T) − J(T+h) = J(T)(1 − e^(ln J(T+h) − ln J(T))).
        let ended = (ln_k + j_t).exp() * -(j_th - j_t).exp_m1();
        (1.0 - both.exp() - ended).clamp(0.0, 1.0)
    }

    /// P(at least one purchase in (T, T+h] | x, t_x, T).
    pub fn p_purchase(&self, h: f64, x: f64, t_x: f64, t: f64) -> f64 {
        self.p_purchase_if_alive(h, x, t) / self.history_divisor(x, t_x, t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The series against SciPy's `hyp2f1` (1.17.1): ₂F₁(a, b; a+1; z).
    #[test]
    fn the_series_matches_scipy() {
        for (a, b, z, want) in [
            (1.1593, 1.6062, 0.1, 1.094_688_276_454_656),
            (25.1593, 1.6062, 0.5, 2.873_502_897_418_272_4),
            (3.5, 40.553, 0.3, 340_625.611_992_496_36),
            (0.7, 0.4, 0.95, 1.361_280_661_971_948_2),
        ] {
            let (got, d) = ln_hyp2f1_a1(a, b, z);
            assert!(
                (got.exp() / want - 1.0).abs() < 1e-12,
                "{a} {b} {z}: {} vs {want}",
                got.exp()
            );
            let (euler, d_euler) = ln_hyp2f1_a1_euler(a, b, z);
            assert!(
                (euler - got).abs() < 1e-12,
                "Euler {a} {b} {z}: {euler} vs {got}"
            );
            for k in 0..3 {
                assert!(
                    (d[k] - d_euler[k]).abs() < 1e-9 * (1.0 + d[k].abs()),
                    "{k}: {d:?} vs {d_euler:?}"
                );
            }
        }
    }

    /// The quadrature agrees with the series where both work, values and derivatives.
    #[test]
    fn quadrature_matches_the_series() {
        for (m, x, t) in [
            (
                ParetoNbd {
                    r: 0.55,
                    alpha: 10.6,
                    s: 0.61,
                    beta: 11.7,
                },
                3.0,
                20.0,
            ),
            (
                ParetoNbd {
                    r: 0.6,
                    alpha: 95.0,
                    s: 0.3,
                    beta: 43.0,
                },
                12.0,
                0.0,
            ),
            (
                ParetoNbd {
                    r: 0.6,
                    alpha: 30.0,
                    s: 2.5,
                    beta: 300.0,
                },
                40.0,
                5.0,
            ),
            (
                ParetoNbd {
                    r: 1.6,
                    alpha: 3.0,
                    s: 0.8,
                    beta: 40.0,
                },
                0.0,
                1.0,
            ),
        ] {
            let (series, ds) = ln_tail(&m, x, t);
            let (quad, dq) = ln_tail_quadrature(&m, x, t);
            assert!(
                (series - quad).abs() < 1e-11,
                "{m:?} {x} {t}: {series} vs {quad}"
            );
            for k in 0..4 {
                assert!(
                    (ds[k] - dq[k]).abs() < 1e-9 * (1.0 + ds[k].abs()),
                    "{m:?}: {ds:?} vs {dq:?}"
                );
            }
        }
        // Where the series would crawl (z = 0.99998, a ≈ 48,000): finite, and fast.
        let m = ParetoNbd {
            r: 0.52,
            alpha: 1.4,
            s: 48_064.0,
            beta: 5.2e6,
        };
        let (v, d) = ln_tail(&m, 1.0, 91.0);
        assert!(v.is_finite() && d.iter().all(|d| d.is_finite()));
    }

    #[test]
    fn analytic_gradient_matches_finite_differences() {
        let d = Triples::from_floats(
            &[0.0, 2.0, 7.0, 1.0, 0.0, 30.0],
            &[0.0, 30.4, 35.0, 2.0, 0.0, 38.0],
            &[38.9, 38.9, 36.0, 20.0, 3.0, 39.0],
        );
        let l = Likelihood::new(&d);
        // α > β, α < β, and nearly equal (z near 0 in both branches).
        for theta in [
            vec![-0.6, 2.3, -0.5, 1.2],
            vec![-0.6, 1.2, -0.5, 2.9],
            vec![0.3, 2.0, 0.2, 2.0 + 1e-9],
        ] {
            crate::fit::assert_gradient_matches(&l, &theta, &format!("{theta:?}"));
        }
    }

    /// P(a purchase in the horizon | alive) against a direct simulation-free check: the
    /// integral over the lifetime evaluated by brute-force quadrature.
    #[test]
    fn purchase_probability_matches_quadrature() {
        let m = ParetoNbd {
            r: 0.55,
            alpha: 10.6,
            s: 0.61,
            beta: 11.7,
        };
        let (x, t, h) = (2.0, 30.0, 13.0);
        let (at, bt) = (m.alpha + t, m.beta + t);
        let no_buy_alive = |u: f64| (at / (at + u)).powf(m.r + x);
        let death_density = |u: f64| m.s / (bt + u) * (bt / (bt + u)).powf(m.s);
        let steps = 200_000;
        let du = h / steps as f64;
        let integral: f64 = (0..steps)
            .map(|k| {
                let u = (k as f64 + 0.5) * du;
                death_density(u) * no_buy_alive(u) * du
            })
            .sum();
        let none = no_buy_alive(h) * (bt / (bt + h)).powf(m.s) + integral;
        let got = m.p_purchase_if_alive(h, x, t);
        assert!((got - (1.0 - none)).abs() < 1e-9, "{got} vs {}", 1.0 - none);
    }
}
