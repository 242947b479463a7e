//! BG/NBD (Fader, Hardie & Lee 2005). Each customer buys at rate λ ~ Gamma(r, α) while alive and
//! drops out after any purchase with probability p ~ Beta(a, b). Data per customer: `x` repeat
//! purchases, `t_x` time of the last purchase, `T` length of observation (same time unit).
//!
//! Log-likelihood of one customer (paper eq. 6, in logs):
//! ```text
//! ln L = lnΓ(r+x) − lnΓ(r) + r ln α + ln B(a, b+x) − ln B(a, b)
//!        + ln[ (α+T)^−(r+x) + 1{x>0} · a/(b+x−1) · (α+t_x)^−(r+x) ]
//! ```
//! `p_alive` and the conditional expected purchases follow the paper (eq. 10, 13), with the
//! ₂F₁ term evaluated in log space, as the `lifetimes` package does.
//!
//! MBG/NBD (Batislam, Denizel & Filiztekin 2007, with Wagner & Hoppe's 2008 erratum) is the
//! [`Variant::Mbg`] of the same code: the customer may also drop out at time 0, right after the
//! first purchase, so the Beta terms and the dropout odds shift by one purchase —
//! B(a, b+x+1)/B(a, b), a/(b+x), and the odds term applies to one-time buyers too:
//! ```text
//! ln L = lnΓ(r+x) − lnΓ(r) + r ln α + ln B(a, b+x+1) − ln B(a, b)
//!        + ln[ (α+T)^−(r+x) + a/(b+x) · (α+t_x)^−(r+x) ]
//! ```

use rayon::prelude::*;

use crate::fit::{
    block_sums, distinct_index, minimize, standard_errors, warm_start, warm_start_stride,
    FitDiagnostics, ModelError, Objective, Start,
};
use crate::special::{digamma, ln_abs_hyp2f1, ln_gamma};

/// Which of the two dropout processes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// BG/NBD: a customer may drop out after each repeat purchase.
    #[default]
    Bg,
    /// MBG/NBD: also right after the first purchase (at time 0).
    Mbg,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::Bg => "BG/NBD",
            Variant::Mbg => "MBG/NBD",
        }
    }

    /// The shift of the purchase count in the Beta terms: 0 for BG/NBD, 1 for MBG/NBD.
    fn delta(self) -> f64 {
        match self {
            Variant::Bg => 0.0,
            Variant::Mbg => 1.0,
        }
    }
}
/// Fewer customers than this cannot identify four parameters.
pub const MIN_CUSTOMERS: f64 = 10.0;
/// ln(1e4): a and b both above this mean the dropout Beta has collapsed onto its mean.
const HOMOGENEOUS_LN_AB: f64 = 9.21;
/// ln(1e6): r and α both above this mean the rate Gamma has collapsed onto its mean (real
/// shops fit r below 10).
const HOMOGENEOUS_LN_RATE: f64 = 13.8;

/// Distinct (x, t_x, T) triples with the number of customers sharing each.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Triples {
    pub x: Vec<f64>,
    pub t_x: Vec<f64>,
    pub t: Vec<f64>,
    pub weight: Vec<f64>,
}

impl Triples {
    /// Groups integer triples (e.g. days) into distinct rows with weights, in sorted order.
    pub fn from_integers(x: &[i64], t_x: &[i64], t: &[i64]) -> Self {
        // Day counts fit in 21 bits each: sort packed u64 keys (3× less to move than tuples).
        const BITS: u32 = 21;
        let fits = |v: &[i64]| v.iter().all(|&d| (0..1 << BITS).contains(&d));
        let mut out = Triples::default();
        let mut push = |row: (i64, i64, i64)| {
            let row = (row.0 as f64, row.1 as f64, row.2 as f64);
            match (out.x.last(), out.t_x.last(), out.t.last()) {
                (Some(&a), Some(&b), Some(&c)) if (a, b, c) == row => {
                    if let Some(w) = out.weight.last_mut() {
                        *w += 1.0;
                    }
                }
                _ => {
                    out.x.push(row.0);
                    out.t_x.push(row.1);
                    out.t.push(row.2);
                    out.weight.push(1.0);
                }
            }
        };
        if fits(x) && fits(t_x) && fits(t) {
            let mask = (1u64 << BITS) - 1;
            let mut keys: Vec<u64> = (0..x.len())
                .map(|i| (x[i] as u64) << (2 * BITS) | (t_x[i] as u64) << BITS | t[i] as u64)
                .collect();
            keys.par_sort_unstable();
            for k in keys {
                push((
                    (k >> (2 * BITS)) as i64,
                    (k >> BITS & mask) as i64,
                    (k & mask) as i64,
                ));
            }
        } else {
            let mut rows: Vec<(i64, i64, i64)> =
                (0..x.len()).map(|i| (x[i], t_x[i], t[i])).collect();
            rows.par_sort_unstable();
            rows.into_iter().for_each(push);
        }
        out
    }

    /// One row per customer, weight 1.
    pub fn from_floats(x: &[f64], t_x: &[f64], t: &[f64]) -> Self {
        Triples {
            x: x.to_vec(),
            t_x: t_x.to_vec(),
            t: t.to_vec(),
            weight: vec![1.0; x.len()],
        }
    }

    pub fn len(&self) -> usize {
        self.x.len()
    }

    /// Every `k`-th row, weights kept: a systematic sample across the sorted triples.
    pub(crate) fn every(&self, k: usize) -> Triples {
        let pick = |v: &[f64]| v.iter().step_by(k).copied().collect();
        Triples {
            x: pick(&self.x),
            t_x: pick(&self.t_x),
            t: pick(&self.t),
            weight: pick(&self.weight),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }
}

/// Where on the parameter space a fit ended.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Boundary {
    /// An interior maximum: `a`, `b` are the Beta parameters of the dropout probability.
    Interior,
    /// b/a → ∞ (dropout probability → 0): BG/NBD reduces to the NBD; every customer is alive.
    NoDropout,
    /// a, b → ∞ with a/(a+b) → p: the dropout probability is the same `p` for every customer
    /// (no heterogeneity in dropout). The likelihood, P(alive) and the expectations have finite
    /// limits, which this variant scores with.
    HomogeneousDropout { p: f64 },
}

/// Fitted BG/NBD parameters. At a [`Boundary`] other than `Interior`, `a` and `b` are NaN
/// (serialized as null).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BgNbd {
    pub r: f64,
    pub alpha: f64,
    #[serde(with = "crate::nan_as_null")]
    pub a: f64,
    #[serde(with = "crate::nan_as_null")]
    pub b: f64,
    pub boundary: Boundary,
    /// BG/NBD or MBG/NBD (absent in files written before MBG/NBD: BG/NBD).
    #[serde(default)]
    pub variant: Variant,
}

/// The likelihood's parameterization: θ = (ln r, ln α, ln a, ln b), (ln r, ln α) for the NBD, or
/// (ln r, ln α, logit p) for homogeneous dropout.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Full,
    Nbd,
    Homogeneous,
}

struct Likelihood<'a> {
    d: &'a Triples,
    total: f64,
    mode: Mode,
    /// [`Variant::delta`].
    delta: f64,
    /// Distinct values of x and, per row, the index of its x: the special functions of
    /// (r + x), (b + x) and (a + b + x) are evaluated once per distinct x, not once per row.
    distinct_x: Vec<f64>,
    x_index: Vec<u32>,
    /// Distinct values of T and t_x together (whole days in practice: a few hundred), and each
    /// row's indices into it, so ln(α + T) and ln(α + t_x) are one table lookup per row.
    distinct_t: Vec<f64>,
    t_index: Vec<u32>,
    tx_index: Vec<u32>,
}

impl<'a> Likelihood<'a> {
    fn new(d: &'a Triples, mode: Mode, variant: Variant) -> Self {
        let (distinct_x, mut x_index) = distinct_index(&[&d.x]);
        let (distinct_t, mut t_indices) = distinct_index(&[&d.t, &d.t_x]);
        let (tx_index, t_index) = (t_indices.swap_remove(1), t_indices.swap_remove(0));
        let x_index = x_index.swap_remove(0);
        Likelihood {
            d,
            total: d.weight.iter().sum(),
            mode,
            delta: variant.delta(),
            distinct_x,
            x_index,
            distinct_t,
            t_index,
            tx_index,
        }
    }
}

/// Special-function values that depend on the parameters and x only.
#[derive(Clone, Copy)]
struct XTerms {
    lg_rx: f64,
    dg_rx: f64,
    lg_bx: f64,
    dg_bx: f64,
    lg_abx: f64,
    dg_abx: f64,
    /// ln a − ln(b + x − 1 + δ), where the odds term applies (x + δ > 0).
    ln_a_bx1: f64,
}

/// Values that depend on the parameters only.
struct ParamTerms {
    r: f64,
    alpha: f64,
    a: f64,
    b: f64,
    lg_r: f64,
    dg_r: f64,
    lg_ab: f64,
    dg_ab: f64,
    lg_b: f64,
    dg_b: f64,
    ln_alpha: f64,
}

/// (ln L, ∂/∂r, ∂/∂α, ∂/∂a, ∂/∂b) of one row with `x` repeat purchases; `ln_t` is
/// (ln(α+T), 1/(α+T)) and `ln_tx` is (ln(α+t_x), 1/(α+t_x)), both from per-eval tables;
/// `delta` is [`Variant::delta`].
fn row_terms(
    p: &ParamTerms,
    xt: &XTerms,
    x: f64,
    ln_t: (f64, f64),
    ln_tx: (f64, f64),
    nbd: bool,
    delta: f64,
) -> [f64; 5] {
    let (r, a, b) = (p.r, p.a, p.b);
    let (ln_alpha_t, inv_alpha_t) = ln_t;
    let a1 = xt.lg_rx - p.lg_r + r * p.ln_alpha;
    let a3 = -(r + x) * ln_alpha_t;
    let d1_r = xt.dg_rx - p.dg_r + p.ln_alpha;
    let d1_alpha = r / p.alpha;
    if nbd {
        return [
            a1 + a3,
            d1_r - ln_alpha_t,
            d1_alpha - (r + x) * inv_alpha_t,
            0.0,
            0.0,
        ];
    }
    let a2 = p.lg_ab + xt.lg_bx - p.lg_b - xt.lg_abx;
    let (ln_alpha_tx, inv_alpha_tx) = ln_tx;
    let odds = x + delta > 0.0;
    let (lse, w4) = if odds {
        let a4 = xt.ln_a_bx1 - (r + x) * ln_alpha_tx;
        // ln(e^a3 + e^a4) with one exp: max + ln(1 + e^(min − max)).
        let (hi, lo) = if a3 >= a4 { (a3, a4) } else { (a4, a3) };
        let e = (lo - hi).exp();
        let w_lo = e / (1.0 + e);
        // ln(1 + e) rather than ln_1p(e): e ≤ 1, so the absolute error stays below 1e-16,
        // which is what a sum of log-likelihoods needs, at half the cost.
        (
            hi + (1.0 + e).ln(),
            if a4 >= a3 { 1.0 - w_lo } else { w_lo },
        )
    } else {
        (a3, 0.0)
    };
    let w3 = 1.0 - w4;
    let d_r = d1_r - w3 * ln_alpha_t - w4 * ln_alpha_tx;
    let d_alpha = d1_alpha - (r + x) * (w3 * inv_alpha_t + w4 * inv_alpha_tx);
    let d_a = p.dg_ab - xt.dg_abx + w4 / a;
    let d_b = p.dg_ab + xt.dg_bx
        - p.dg_b
        - xt.dg_abx
        - if odds {
            w4 / (b + x - 1.0 + delta)
        } else {
            0.0
        };
    [a1 + a2 + lse, d_r, d_alpha, d_a, d_b]
}

impl Objective for Likelihood<'_> {
    fn nll_grad(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        let p: Vec<f64> = theta.iter().map(|t| t.exp()).collect();
        let (r, alpha) = (p[0], p[1]);
        let nbd = self.mode == Mode::Nbd;
        let homogeneous = self.mode == Mode::Homogeneous;
        let (a, b) = match self.mode {
            Mode::Full => (p[2], p[3]),
            Mode::Nbd | Mode::Homogeneous => (1.0, 1.0),
        };
        // Homogeneous dropout (the a, b → ∞ limit with a/(a+b) = q): B(a, b+x)/B(a, b) → (1−q)^x
        // and a/(b+x−1) → q/(1−q). The Beta terms of `row_terms` are filled so that its `a2` is
        // x·ln(1−q), its x > 0 term uses ln(q/(1−q)) = θ₃, and its ∂/∂a slot (with a = 1) is
        // ∂ ln L/∂θ₃ = w4 − x·q.
        let q = if homogeneous {
            1.0 / (1.0 + (-theta[2]).exp())
        } else {
            0.0
        };
        // ln(1 − q) = −ln(1 + e^θ₃), without overflow for large θ₃.
        let ln_1mq = if homogeneous {
            let t = theta[2];
            -(t.max(0.0) + (-(t.abs())).exp().ln_1p())
        } else {
            0.0
        };
        let full = self.mode == Mode::Full;
        let pt = ParamTerms {
            r,
            alpha,
            a,
            b,
            lg_r: ln_gamma(r),
            dg_r: digamma(r),
            lg_ab: if full { ln_gamma(a + b) } else { 0.0 },
            dg_ab: if full { digamma(a + b) } else { 0.0 },
            lg_b: if full { ln_gamma(b) } else { 0.0 },
            dg_b: if full { digamma(b) } else { 0.0 },
            ln_alpha: alpha.ln(),
        };
        let delta = self.delta;
        let tables: Vec<XTerms> = self
            .distinct_x
            .iter()
            .map(|&x| {
                // The Beta terms' purchase count: x for BG/NBD, x + 1 for MBG/NBD.
                let xd = x + delta;
                XTerms {
                    lg_rx: ln_gamma(r + x),
                    dg_rx: digamma(r + x),
                    lg_bx: match self.mode {
                        Mode::Full => ln_gamma(b + xd),
                        Mode::Nbd => 0.0,
                        Mode::Homogeneous => xd * ln_1mq,
                    },
                    dg_bx: if full { digamma(b + xd) } else { 0.0 },
                    lg_abx: if full { ln_gamma(a + b + xd) } else { 0.0 },
                    dg_abx: match self.mode {
                        Mode::Full => digamma(a + b + xd),
                        Mode::Nbd => 0.0,
                        Mode::Homogeneous => xd * q,
                    },
                    ln_a_bx1: match self.mode {
                        _ if xd == 0.0 => 0.0,
                        Mode::Full => a.ln() - (b + xd - 1.0).ln(),
                        Mode::Nbd => 0.0,
                        Mode::Homogeneous => theta[2],
                    },
                }
            })
            .collect();
        let t_terms: Vec<(f64, f64)> = self
            .distinct_t
            .iter()
            .map(|t| ((alpha + t).ln(), 1.0 / (alpha + t)))
            .collect();
        let d = self.d;
        let total = block_sums(d.len(), |rows| {
            let mut acc = [0.0; 5];
            for i in rows {
                let xt = &tables[self.x_index[i] as usize];
                let terms = row_terms(
                    &pt,
                    xt,
                    d.x[i],
                    t_terms[self.t_index[i] as usize],
                    t_terms[self.tx_index[i] as usize],
                    nbd,
                    delta,
                );
                for k in 0..5 {
                    acc[k] += d.weight[i] * terms[k];
                }
            }
            acc
        });
        // Chain rule to log-parameters (θ₃ = logit q is already the variable of its slot),
        // negated for minimization.
        let n = theta.len();
        let grad = (0..n)
            .map(|k| {
                let chain = if homogeneous && k == 2 { 1.0 } else { p[k] };
                -total[k + 1] * chain
            })
            .collect();
        (-total[0], grad)
    }

    fn total_weight(&self) -> f64 {
        self.total
    }
}

/// Fits BG/NBD by maximum likelihood. Errors on data that cannot identify the model.
pub fn fit(d: &Triples) -> Result<(BgNbd, FitDiagnostics), ModelError> {
    fit_variant(d, Variant::Bg)
}

/// Fits BG/NBD or MBG/NBD by maximum likelihood.
pub fn fit_variant(d: &Triples, variant: Variant) -> Result<(BgNbd, FitDiagnostics), ModelError> {
    fit_with(d, warm_start_stride(d.len()), variant)
}

/// [`fit_variant`], warm-started from every `stride`-th row when given.
pub(crate) fn fit_with(
    d: &Triples,
    stride: Option<usize>,
    variant: Variant,
) -> Result<(BgNbd, FitDiagnostics), ModelError> {
    #[allow(non_snake_case)]
    let MODEL = variant.name();
    let total: f64 = d.weight.iter().sum();
    let not_enough = |reason: String, hint: &str| ModelError::NotEnoughData {
        model: MODEL,
        reason,
        hint: hint.to_string(),
    };
    if total < MIN_CUSTOMERS {
        return Err(not_enough(
            format!("{total} customers with a purchase (at least {MIN_CUSTOMERS} are needed)"),
            "run on a longer history or more customers, or skip the models with --no-models (models.enabled = false)",
        ));
    }
    let repeat: f64 = d.x.iter().zip(&d.weight).map(|(x, w)| x * w).sum();
    if repeat == 0.0 {
        return Err(not_enough(
            "no customer has a repeat purchase, so the purchase rate and dropout cannot be told apart".into(),
            "wait for repeat purchases (a later --as-of), or skip the models with --no-models (models.enabled = false)",
        ));
    }
    let exposure: f64 = d.t.iter().zip(&d.weight).map(|(t, w)| t * w).sum();
    if exposure <= 0.0 {
        return Err(not_enough(
            "every customer's first purchase is on the as-of day (T = 0)".into(),
            "use a later --as-of, or skip the models with --no-models (models.enabled = false)",
        ));
    }
    let rate = repeat / exposure;
    let init = vec![0.0, (1.0 / rate).ln(), 0.0, 0.0];
    let start = match stride {
        Some(k) => warm_start(
            MODEL,
            &Likelihood::new(&d.every(k), Mode::Full, variant),
            init,
        ),
        None => Start::cold(init),
    };
    let full = Likelihood::new(d, Mode::Full, variant);
    let sol = minimize(MODEL, &full, start)?;
    let (ln_a, ln_b) = (sol.theta[2], sol.theta[3]);
    // ln b − ln a beyond ~15 means the mean dropout probability a/(a+b) is ~1e-7: the likelihood
    // is climbing towards the no-dropout boundary, where BG/NBD reduces to the NBD.
    // a and b both beyond ~1e4 means the Beta has collapsed onto its mean: every customer drops
    // out with the same probability (the likelihood keeps rising, ever more slowly, as a and b
    // grow). Either way the reduced model is fitted, and scores use its exact formulas.
    let (sol, objective, names, model, boundary) = if ln_b - ln_a > 15.0 {
        let nbd = Likelihood::new(d, Mode::Nbd, variant);
        let sol = minimize(MODEL, &nbd, Start::cold(vec![sol.theta[0], sol.theta[1]]))?;
        let m = BgNbd {
            r: sol.theta[0].exp(),
            alpha: sol.theta[1].exp(),
            a: f64::NAN,
            b: f64::NAN,
            boundary: Boundary::NoDropout,
            variant,
        };
        let note = "no_dropout: the likelihood peaks at dropout probability 0; BG/NBD reduces to the NBD (every customer alive)".to_string();
        (sol, nbd, vec!["r", "alpha"], m, Some(note))
    } else if ln_a.min(ln_b) > HOMOGENEOUS_LN_AB {
        let homogeneous = Likelihood::new(d, Mode::Homogeneous, variant);
        let start = vec![sol.theta[0], sol.theta[1], ln_a - ln_b];
        let sol = minimize(MODEL, &homogeneous, Start::cold(start))?;
        let p = 1.0 / (1.0 + (-sol.theta[2]).exp());
        let m = BgNbd {
            r: sol.theta[0].exp(),
            alpha: sol.theta[1].exp(),
            a: f64::NAN,
            b: f64::NAN,
            boundary: Boundary::HomogeneousDropout { p },
            variant,
        };
        let note = format!("homogeneous_dropout: the likelihood rises without bound in a and b (a = {:.3e}, b = {:.3e} when stopped) at a/(a+b) = {p:.4}: every customer drops out with the same probability p after a purchase; scored with that limit (parameters r, alpha, p)", ln_a.exp(), ln_b.exp());
        (sol, homogeneous, vec!["r", "alpha", "p"], m, Some(note))
    } else {
        let t = &sol.theta;
        let m = BgNbd {
            r: t[0].exp(),
            alpha: t[1].exp(),
            a: t[2].exp(),
            b: t[3].exp(),
            boundary: Boundary::Interior,
            variant,
        };
        (sol, full, vec!["r", "alpha", "a", "b"], m, None)
    };
    if sol.theta[0].min(sol.theta[1]) > HOMOGENEOUS_LN_RATE {
        // r, α → ∞ at a fixed r/α: the Gamma of purchase rates collapses onto one rate. BG/NBD
        // has no finite maximum there and its likelihood loses every digit to cancellation;
        // refuse rather than score from noise.
        let rate = (sol.theta[0] - sol.theta[1]).exp();
        return Err(not_enough(
            format!("every customer appears to buy at the same rate ({rate:.4} purchases per day): the likelihood rises without bound as r and alpha grow (r = {:.3e}, alpha = {:.3e}), a model without rate heterogeneity that BG/NBD cannot represent", sol.theta[0].exp(), sol.theta[1].exp()),
            "this happens on small or synthetic shops; check the input covers real customers, or skip the models with --no-models (models.enabled = false)",
        ));
    }
    if !sol.converged {
        let shown: Vec<f64> = names
            .iter()
            .zip(&sol.theta)
            .map(|(n, t)| {
                if *n == "p" {
                    1.0 / (1.0 + (-t).exp())
                } else {
                    t.exp()
                }
            })
            .collect();
        return Err(ModelError::NoConvergence {
            model: MODEL,
            iterations: sol.iterations,
            grad_norm: sol.grad_norm,
            params: crate::fit::describe(&names, &shown),
        });
    }
    let diag = FitDiagnostics::of_solution(
        MODEL,
        names
            .iter()
            .zip(&sol.theta)
            .map(|(n, t)| match *n {
                "p" => (*n, 1.0 / (1.0 + (-t).exp())),
                _ => (*n, t.exp()),
            })
            .collect(),
        {
            let mut se = standard_errors(&objective, &sol.theta);
            if let (Boundary::HomogeneousDropout { p }, Some(slot)) =
                (model.boundary, se.get_mut(2))
            {
                // standard_errors reports SE(e^θ); for p = logistic(θ) the delta method needs
                // p(1−p)·SE(θ) = p(1−p)·SE(e^θ)/e^θ.
                *slot = slot.map(|s| s / sol.theta[2].exp() * p * (1.0 - p));
            }
            se
        },
        &sol,
        (total, d.len()),
        boundary,
    );
    Ok((model, diag))
}

impl BgNbd {
    /// Log-likelihood of data under these parameters.
    pub fn log_likelihood(&self, d: &Triples) -> f64 {
        let (mode, theta) = match self.boundary {
            Boundary::NoDropout => (Mode::Nbd, vec![self.r.ln(), self.alpha.ln()]),
            Boundary::HomogeneousDropout { p } => (
                Mode::Homogeneous,
                vec![self.r.ln(), self.alpha.ln(), (p / (1.0 - p)).ln()],
            ),
            Boundary::Interior => (
                Mode::Full,
                vec![self.r.ln(), self.alpha.ln(), self.a.ln(), self.b.ln()],
            ),
        };
        -Likelihood::new(d, mode, self.variant).nll_grad(&theta).0
    }

    /// P(alive at T | x, t_x, T) (paper eq. 13) = 1 / [`Self::history_divisor`]; 1 for
    /// customers without a repeat purchase.
    pub fn p_alive(&self, x: f64, t_x: f64, t: f64) -> f64 {
        1.0 / self.history_divisor(x, t_x, t)
    }

    /// P(at least one purchase in (T, T+h] | x, t_x, T). A customer who is alive at T keeps
    /// buying at rate λ until the next purchase (dropout only follows a purchase), and given alive
    /// λ is Gamma(r + x, α + T) a posteriori, so
    /// P(no purchase) = 1 − P(alive) + P(alive) · ((α+T)/(α+T+h))^(r+x), and this is
    /// P(alive) · [`Self::p_purchase_if_alive`]. Unlike `p_alive`, it separates one-time buyers:
    /// the longer ago their only purchase, the lower it is.
    pub fn p_purchase(&self, h: f64, x: f64, t_x: f64, t: f64) -> f64 {
        self.p_alive(x, t_x, t) * self.p_purchase_if_alive(h, x, t)
    }

    /// P(at least one purchase in (T, T+h]) of a customer known to be alive at T:
    /// 1 − ((α+T)/(α+T+h))^(r+x), which depends on (x, T, h) only.
    pub fn p_purchase_if_alive(&self, h: f64, x: f64, t: f64) -> f64 {
        -((self.r + x) * (-h / (self.alpha + t + h)).ln_1p()).exp_m1()
    }

    /// E[purchases in (T, T+h] | x, t_x, T] (paper eq. 10). It factors as
    /// [`Self::expected_purchases_given_alive`]`(h, x, T)` / [`Self::history_divisor`]`(x, t_x, T)`:
    /// the ₂F₁ series depends on (x, T, h) only, so callers scoring many customers can evaluate it
    /// once per distinct (x, T).
    pub fn conditional_expected_purchases(&self, h: f64, x: f64, t_x: f64, t: f64) -> f64 {
        self.expected_purchases_given_alive(h, x, t) / self.history_divisor(x, t_x, t)
    }

    /// The (x, T, h) part of the conditional expectation (paper eq. 10 without its denominator):
    /// expected purchases in (T, T+h] of a customer known to be alive at T.
    pub fn expected_purchases_given_alive(&self, h: f64, x: f64, t: f64) -> f64 {
        let (r, alpha, a, b) = (self.r, self.alpha, self.a, self.b);
        match self.boundary {
            Boundary::NoDropout => return (r + x) / (alpha + t) * h,
            // The a, b → ∞ limit of eq. 10: ₂F₁(r+x, b+x; a+b+x−1; z) → (1 − (1−p)z)^−(r+x), so
            // E = [1 − ((α+T)/(α+T+p·h))^(r+x)] / p.
            Boundary::HomogeneousDropout { p } => {
                return -((r + x) * (-p * h / (alpha + t + p * h)).ln_1p()).exp_m1() / p;
            }
            Boundary::Interior => {}
        }
        let xd = x + self.variant.delta();
        let hyp_a = r + x;
        let hyp_b = b + xd;
        let hyp_c = a + b + xd - 1.0;
        let z = h / (alpha + t + h);
        // ₂F₁ is negative for some young-shop fits (c < 0 when x = 0 and a + b < 1): then the
        // bracket is 1 + |…| rather than 1 − ….
        let (ln_hyp, negative) = ln_abs_hyp2f1(hyp_a, hyp_b, hyp_c, z);
        let first = (a + b + xd - 1.0) / (a - 1.0);
        let ln_term = ln_hyp + (r + x) * (-h / (alpha + t + h)).ln_1p();
        let second = if negative {
            1.0 + ln_term.exp()
        } else {
            -ln_term.exp_m1()
        };
        first * second
    }

    /// 1 + 1{x>0} · a/(b+x−1) · ((α+T)/(α+t_x))^(r+x) = 1 / P(alive): the per-customer
    /// denominator of paper eq. 10, its second term evaluated in logs (as `lifetimes` does).
    /// With homogeneous dropout a/(b+x−1) is p/(1−p). MBG/NBD: a/(b+x), for every x.
    pub fn history_divisor(&self, x: f64, t_x: f64, t: f64) -> f64 {
        let xd = x + self.variant.delta();
        let odds = match self.boundary {
            _ if xd == 0.0 => return 1.0,
            Boundary::NoDropout => return 1.0,
            Boundary::HomogeneousDropout { p } => p / (1.0 - p),
            Boundary::Interior => self.a / (self.b + xd - 1.0),
        };
        let (r, alpha) = (self.r, self.alpha);
        let log_term = (r + x) * ((t - t_x) / (alpha + t_x)).ln_1p() + odds.ln();
        1.0 + log_term.exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A young shop's fit (a + b < 1) makes ₂F₁'s c negative for customers without a repeat
    /// purchase, and ₂F₁ itself negative at short T: the expectation must still be finite and
    /// right. References: the closed form with SciPy's `hyp2f1` (no logarithm); `lifetimes`
    /// 0.11.3 gives NaN at T = 10 and 50 (it takes the log of the negative ₂F₁) and
    /// 0.1598375251891496 at T = 90, where ₂F₁ is positive.
    #[test]
    fn expectations_stay_finite_when_the_hypergeometric_is_negative() {
        let m = BgNbd {
            r: 0.258_747_491_347_088_5,
            alpha: 39.245_667_559_014_805,
            a: 0.299_832_576_101_234_37,
            b: 0.568_900_581_231_147_8,
            boundary: Boundary::Interior,
            variant: Variant::Bg,
        };
        for (t, want) in [
            (0.0, 0.447_078_497_114_869_2),
            (10.0, 0.370_346_154_825_019_65),
            (50.0, 0.222_336_467_283_634_8),
            (90.0, 0.159_837_525_189_149_6),
        ] {
            let got = m.conditional_expected_purchases(90.0, 0.0, 0.0, t);
            assert!((got / want - 1.0).abs() < 1e-10, "T = {t}: {got} vs {want}");
        }
    }

    #[test]
    fn analytic_gradient_matches_finite_differences() {
        let d = Triples::from_floats(
            &[0.0, 2.0, 7.0, 1.0],
            &[0.0, 30.4, 35.0, 2.0],
            &[38.9, 38.9, 36.0, 20.0],
        );
        for variant in [Variant::Bg, Variant::Mbg] {
            for (mode, theta) in [
                (Mode::Full, vec![-1.2, 1.4, -0.2, 0.9]),
                (Mode::Nbd, vec![-1.2, 1.4]),
                (Mode::Homogeneous, vec![-1.2, 1.4, -1.3]),
            ] {
                let l = Likelihood::new(&d, mode, variant);
                crate::fit::assert_gradient_matches(&l, &theta, &format!("{variant:?} {mode:?}"));
            }
        }
    }

    #[test]
    fn integer_triples_are_grouped_with_weights() {
        let t = Triples::from_integers(&[1, 0, 1, 0], &[5, 0, 5, 0], &[10, 10, 10, 3]);
        assert_eq!(t.x, vec![0.0, 0.0, 1.0]);
        assert_eq!(t.t, vec![3.0, 10.0, 10.0]);
        assert_eq!(t.weight, vec![1.0, 1.0, 2.0]);
    }

    #[test]
    fn degenerate_inputs_are_clear_errors() {
        let none_repeat = Triples::from_integers(&[0; 20], &[0; 20], &[30; 20]);
        let err = fit(&none_repeat).unwrap_err().to_string();
        assert!(err.contains("no customer has a repeat purchase"), "{err}");
        let single = Triples::from_integers(&[3], &[20], &[30]);
        assert!(fit(&single).unwrap_err().to_string().contains("at least"));
        let same_day = Triples::from_integers(&[0; 20], &[0; 20], &[0; 20]);
        assert!(fit(&same_day).is_err());
    }

    #[test]
    fn everybody_active_reaches_the_nbd_boundary() {
        // Poisson buyers who never drop out: regular purchases right up to T.
        let mut x = Vec::new();
        let mut tx = Vec::new();
        let mut t = Vec::new();
        for i in 0..200i64 {
            let k = 2 + i % 9;
            x.push(k);
            tx.push(100 - (i % 3));
            t.push(100);
        }
        let (m, diag) = fit(&Triples::from_integers(&x, &tx, &t)).unwrap();
        assert!(diag.converged);
        if m.boundary == Boundary::NoDropout {
            assert!(diag.boundary.is_some());
            assert_eq!(m.p_alive(3.0, 50.0, 100.0), 1.0);
        } else {
            assert!(m.a / (m.a + m.b) < 0.05, "{m:?}");
        }
        assert!(m
            .conditional_expected_purchases(30.0, 5.0, 99.0, 100.0)
            .is_finite());
    }

    /// The homogeneous-dropout formulas are the a, b → ∞ limits of the general ones.
    #[test]
    fn homogeneous_dropout_is_the_limit_of_large_a_and_b() {
        let p = 0.3;
        let limit = BgNbd {
            r: 0.8,
            alpha: 20.0,
            a: f64::NAN,
            b: f64::NAN,
            boundary: Boundary::HomogeneousDropout { p },
            variant: Variant::Bg,
        };
        let scale = 1e8;
        let near = BgNbd {
            a: p * scale,
            b: (1.0 - p) * scale,
            boundary: Boundary::Interior,
            ..limit
        };
        let d = Triples::from_floats(
            &[0.0, 2.0, 7.0, 1.0],
            &[0.0, 30.0, 35.0, 2.0],
            &[40.0, 40.0, 36.0, 20.0],
        );
        let rel = |x: f64, y: f64| ((x - y) / y).abs();
        assert!(rel(near.log_likelihood(&d), limit.log_likelihood(&d)) < 1e-6);
        for (x, t_x, t) in [(0.0, 0.0, 40.0), (2.0, 30.0, 40.0), (7.0, 35.0, 36.0)] {
            assert!(
                rel(
                    near.history_divisor(x, t_x, t),
                    limit.history_divisor(x, t_x, t)
                ) < 1e-6
            );
            let (e_near, e_limit) = (
                near.expected_purchases_given_alive(90.0, x, t),
                limit.expected_purchases_given_alive(90.0, x, t),
            );
            assert!(e_limit.is_finite() && e_limit > 0.0);
            assert!(rel(e_near, e_limit) < 1e-6, "{e_near} vs {e_limit}");
        }
    }

    /// Customers who all drop out with the same probability: whatever point the fit lands on,
    /// every score is finite, and at the boundary it is reported and p is recovered.
    #[test]
    fn homogeneous_dropout_data_scores_finitely() {
        // xorshift64*: a fixed, dependency-free stream.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut uniform = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            ((state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let (mut xs, mut txs, mut ts) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..3000 {
            // Every customer buys at the same rate 0.05/day and drops out with p = 0.3.
            let lambda = 0.05;
            let t_end = (100.0 + 265.0 * uniform()).floor();
            let (mut t, mut x, mut t_x) = (0.0f64, 0i64, 0.0f64);
            loop {
                t += -uniform().ln() / lambda;
                if t > t_end {
                    break;
                }
                x += 1;
                t_x = t.floor();
                if uniform() < 0.3 {
                    break;
                }
            }
            xs.push(x);
            txs.push(t_x as i64);
            ts.push(t_end as i64);
        }
        let d = Triples::from_integers(&xs, &txs, &ts);
        let (m, diag) = fit(&d).unwrap();
        for (x, t_x, t) in
            d.x.iter()
                .zip(&d.t_x)
                .zip(&d.t)
                .map(|((a, b), c)| (*a, *b, *c))
        {
            let e = m.conditional_expected_purchases(90.0, x, t_x, t);
            let pa = m.p_alive(x, t_x, t);
            assert!(
                e.is_finite() && e >= 0.0 && (0.0..=1.0).contains(&pa),
                "{m:?} {x} {t_x} {t}"
            );
        }
        if let Boundary::HomogeneousDropout { p } = m.boundary {
            assert!((p - 0.3).abs() < 0.05, "p = {p}");
            assert!(diag
                .boundary
                .as_deref()
                .is_some_and(|b| b.starts_with("homogeneous_dropout")));
            assert!(
                diag.std_errors
                    .iter()
                    .all(|s| s.is_some_and(f64::is_finite)),
                "{diag:?}"
            );
        }
    }
}
