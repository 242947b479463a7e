//! The models stage: the customer-base model (`models.customer_model`: BG/NBD, MBG/NBD or
//! Pareto/NBD) + Gamma-Gamma fitted on the per-customer BTYD summary (days), the
//! `churn_scores` table, and with a holdout the `backtest` table (fit at as-of − N, compare with
//! the last N days).
//!
//! A model that cannot be fitted does not stop the run: the stage reports it as failed (in the
//! manifest, with the reason) and the job publishes every other table. Without the customer-base
//! model there is no `churn_scores`; without Gamma-Gamma, `expected_spend` and `clv` are null. No
//! score is ever published unless it is finite.

use patronage_features::{purchase_days_between, Day, FeatureTable, Nullable, Orders};
use patronage_models::backtest::{evaluate, Backtest, Holdout};
use patronage_models::bgnbd::Triples;
use patronage_models::clv::{discounted_purchases_given_alive, monthly_discount_rate};
use patronage_models::customer::{CustomerBase, CustomerModel, ModelKind, PairIndex};
use patronage_models::gamma_gamma;
use patronage_models::{FitDiagnostics, ModelError};
use patronage_segments::Distribution;
use polars::prelude::*;
use rayon::prelude::*;
use serde_json::json;
use std::collections::HashMap;

use crate::config::{ModelChoice, ModelsConfig, RunOptions, Seasonality};
use crate::error::EngineError;
use crate::tables;
use patronage_models::seasonal::SeasonalIndex;

/// Length of a CLV month in days, as in `lifetimes`.
const MONTH_DAYS: f64 = 30.0;

pub(crate) struct Scores {
    pub p_alive: Vec<Option<f64>>,
    pub clv: Vec<Option<f64>>,
}

/// What the models stage produced.
pub(crate) struct ModelsStage {
    /// CLV per customer for value tiers (absent when BG/NBD failed).
    pub scores: Option<Scores>,
    /// `churn_scores` (absent when BG/NBD failed), `backtest` (with a holdout).
    pub tables: super::Tables,
    pub manifest: serde_json::Value,
    /// Why a model (or the backtest) failed; the job still publishes the other tables.
    pub failure: Option<String>,
}

/// The BTYD summary columns the models read, by name.
pub(crate) struct Btyd<'a> {
    frequency: &'a Nullable<i64>,
    x: &'a Nullable<i64>,
    t_x: &'a Nullable<i64>,
    t: &'a Nullable<i64>,
    m: &'a Nullable<f64>,
}

impl<'a> Btyd<'a> {
    pub(crate) fn of(f: &'a FeatureTable) -> Result<Self, EngineError> {
        Ok(Btyd {
            frequency: f.int("frequency")?,
            x: f.int("btyd_x")?,
            t_x: f.int("btyd_t_x")?,
            t: f.int("btyd_T")?,
            m: f.float("btyd_m")?,
        })
    }

    /// Rows of customers with a purchase.
    fn buyers(&self) -> Vec<usize> {
        (0..self.frequency.len())
            .filter(|&i| self.frequency.get(i).is_some_and(|f| f > 0))
            .collect()
    }

    /// Per customer, the buyer's BTYD summary (`None` for a customer without a purchase).
    pub(crate) fn summaries(&self) -> Vec<Option<crate::protocol::Buyer>> {
        (0..self.frequency.len())
            .map(|i| {
                self.frequency
                    .get(i)
                    .is_some_and(|v| v > 0)
                    .then(|| crate::protocol::Buyer {
                        x: self.x.get(i).unwrap_or(0),
                        t_x: self.t_x.get(i).unwrap_or(0),
                        t: self.t.get(i).unwrap_or(0),
                        m: self.m.get(i),
                    })
            })
            .collect()
    }

    fn triple(&self, i: usize) -> (f64, f64, f64) {
        let get = |v: &Nullable<i64>| v.get(i).unwrap_or(0) as f64;
        (get(self.x), get(self.t_x), get(self.t))
    }
}

/// The sufficient statistics the models fit on.
pub struct ModelInputs {
    /// Distinct (btyd_x, btyd_t_x, btyd_T) triples of buyers, weighted by customer count.
    pub triples: Triples,
    /// Repeat customers with positive repeat spend: `btyd_x` and `btyd_m` (Gamma-Gamma input),
    /// ascending by (x, m).
    pub repeat_x: Vec<f64>,
    pub repeat_m: Vec<f64>,
}

/// Builds the model inputs from the per-customer features (read by name).
pub fn model_inputs(f: &FeatureTable) -> Result<ModelInputs, EngineError> {
    let mut buyers: Vec<(crate::protocol::Buyer, u64)> = Btyd::of(f)?
        .summaries()
        .into_iter()
        .flatten()
        .map(|b| (b, 1))
        .collect();
    buyers.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(ModelInputs::of_buyers(&buyers))
}

impl ModelInputs {
    /// The inputs of buyers' summaries (any order: grouped and sorted here).
    pub(crate) fn of_buyers(buyers: &[(crate::protocol::Buyer, u64)]) -> Self {
        // Triples: the summaries are ascending, so equal (x, t_x, T) are neighbours.
        let mut triples = Triples::default();
        for (b, c) in buyers {
            let key = (b.x as f64, b.t_x as f64, b.t as f64);
            let last = (triples.x.last(), triples.t_x.last(), triples.t.last());
            match (last, triples.weight.last_mut()) {
                ((Some(&x), Some(&t_x), Some(&t)), Some(w)) if (x, t_x, t) == key => {
                    *w += *c as f64;
                }
                _ => {
                    triples.x.push(key.0);
                    triples.t_x.push(key.1);
                    triples.t.push(key.2);
                    triples.weight.push(*c as f64);
                }
            }
        }
        let mut repeat: Vec<(f64, f64)> = buyers
            .iter()
            .filter_map(|(b, c)| match b.m {
                Some(m) if b.x > 0 && m > 0.0 => Some(((b.x as f64, m), *c)),
                _ => None,
            })
            .flat_map(|(p, c)| std::iter::repeat_n(p, c as usize))
            .collect();
        repeat.par_sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let (repeat_x, repeat_m) = repeat.into_iter().unzip();
        ModelInputs {
            triples,
            repeat_x,
            repeat_m,
        }
    }
}

impl FittedModels {
    /// The `backtest` table, with a holdout that fitted.
    pub(crate) fn backtest_frame(&self) -> Option<Result<DataFrame, EngineError>> {
        let (rows, _, _) = self.backtest.as_ref()?;
        rows.as_ref().map(|r| backtest_frame(r))
    }

    /// The distributions of the buyers' p_alive and CLV as [`score_models`] gives them (`None`
    /// when it publishes no scores: BG/NBD failed, or a score is not finite).
    pub(crate) fn buyer_distributions(
        &self,
        config: &ModelsConfig,
        buyers: &[(crate::protocol::Buyer, u64)],
    ) -> Option<(Distribution, Distribution)> {
        let unique: Vec<crate::protocol::Buyer> = buyers.iter().map(|b| b.0).collect();
        let (rows, non_finite) = self.score(config, &unique)?;
        (non_finite == 0).then(|| {
            let counts = || buyers.iter().map(|b| b.1);
            rayon::join(
                || Distribution::of_counted(rows.iter().map(|r| r.0[0]).zip(counts())),
                || {
                    Distribution::of_counted(
                        rows.iter()
                            .zip(counts())
                            .filter_map(|(r, c)| r.1.map(|v| (v[1], c))),
                    )
                },
            )
        })
    }

    fn score(
        &self,
        config: &ModelsConfig,
        buyers: &[crate::protocol::Buyer],
    ) -> Option<(Vec<Scored>, usize)> {
        let history: Vec<(f64, f64, f64)> = buyers
            .iter()
            .map(|b| (b.x as f64, b.t_x as f64, b.t as f64))
            .collect();
        let m: Vec<f64> = buyers.iter().map(|b| b.m.unwrap_or(0.0)).collect();
        buyer_scores(
            config,
            &self.bg,
            &self.gg,
            self.mean_spend,
            self.horizon,
            &history,
            &m,
        )
    }

    /// The buyers' p_alive and CLV (`None` without Gamma-Gamma), as a partition scores them;
    /// empty when BG/NBD was not fitted.
    pub(crate) fn buyer_outputs(
        &self,
        config: &ModelsConfig,
        buyers: &[crate::protocol::Buyer],
    ) -> (Vec<f64>, Vec<Option<f64>>) {
        self.score(config, buyers)
            .map(|(rows, _)| rows.iter().map(|r| (r.0[0], r.1.map(|v| v[1]))).unzip())
            .unwrap_or_default()
    }
}

fn failed(e: &ModelError) -> serde_json::Value {
    json!({ "status": "failed", "error": e.to_string() })
}

/// A fit's diagnostics with `"status": "ok"` beside them.
fn fitted(diag: &FitDiagnostics) -> serde_json::Value {
    let mut v = json!(diag);
    if let Some(map) = v.as_object_mut() {
        map.insert("status".into(), json!("ok"));
    }
    v
}

/// One customer's BG/NBD predictions.
struct Prediction {
    p_alive: f64,
    p_purchase: f64,
    /// Expected purchases within the horizon.
    expected: f64,
    /// Discounted expected purchases over the CLV months (CLV per unit of margin · spend).
    discounted_purchases: f64,
}

/// Predictions for customers' (x, t_x, T). Everything but P(alive) depends on (x, T) only (the
/// series behind the expectations, see [`CustomerBase::expected_purchases_given_alive`]), so it runs
/// once per distinct (x, T) — a few thousand pairs however many customers — and each customer
/// costs one exponential.
/// `clv`: months and monthly discount rate, when CLV is wanted.
fn predict(
    bg: &CustomerModel,
    history: &[(f64, f64, f64)],
    horizon: f64,
    clv: Option<(u32, f64)>,
) -> Vec<Prediction> {
    let mut index = PairIndex::default();
    let pair_index: Vec<u32> = history.iter().map(|&(x, _, t)| index.index(x, t)).collect();
    let pairs = index.pairs;
    // Per distinct (x, T), for a customer alive at T: expected purchases, discounted purchases
    // over the CLV months, P(a purchase) — each scaled by P(alive) below.
    let given_alive: Vec<[f64; 3]> = pairs
        .par_iter()
        .map(|&(x, t)| {
            let discounted = clv.map_or(0.0, |(months, rate)| {
                discounted_purchases_given_alive(bg, months, MONTH_DAYS, rate, x, t)
            });
            [
                bg.expected_purchases_given_alive(horizon, x, t),
                discounted,
                bg.p_purchase_if_alive(horizon, x, t),
            ]
        })
        .collect();
    let divisors = bg.history_divisors(history);
    divisors
        .par_iter()
        .zip(&pair_index)
        .map(|(&divisor, &k)| {
            let p_alive = 1.0 / divisor;
            let [expected, discounted, p_purchase] = given_alive[k as usize];
            Prediction {
                p_alive,
                p_purchase: p_alive * p_purchase,
                expected: expected * p_alive,
                discounted_purchases: discounted * p_alive,
            }
        })
        .collect()
}

/// One buyer's scores: p_alive, p_purchase and expected purchases; expected spend and CLV when
/// Gamma-Gamma fitted.
type Scored = ([f64; 3], Option<[f64; 2]>);
type ScoreRow = Option<Scored>;

/// The scores of buyers with BTYD summaries `history` (x, t_x, T) and repeat spend `m` (0 for
/// none), and how many of them are not finite; `None` when BG/NBD was not fitted. A pure
/// function of each buyer's own summary, so the fit can score the whole base from its
/// statistics exactly as each partition scores its customers.
fn buyer_scores(
    config: &ModelsConfig,
    bg: &Result<CustomerModel, String>,
    gg: &Result<gamma_gamma::GammaGamma, String>,
    mean_spend: f64,
    horizon: f64,
    history: &[(f64, f64, f64)],
    m: &[f64],
) -> Option<(Vec<Scored>, usize)> {
    let bg = bg.as_ref().ok()?;
    let monthly = monthly_discount_rate(config.annual_discount_rate);
    let predicted = predict(bg, history, horizon, Some((config.clv_months, monthly)));
    let mut non_finite = 0usize;
    let rows = history
        .iter()
        .zip(m)
        .zip(&predicted)
        .map(|((&(x, _, _), &m), p)| {
            let value = gg.as_ref().ok().map(|gg| {
                let mut spend = gg.conditional_expected_spend(x, m);
                if !spend.is_finite() {
                    spend = mean_spend;
                }
                [spend, config.margin * spend * p.discounted_purchases]
            });
            let bg_part = [p.p_alive, p.p_purchase, p.expected];
            if bg_part
                .iter()
                .chain(value.iter().flatten())
                .any(|v| !v.is_finite())
            {
                non_finite += 1;
            }
            (bg_part, value)
        })
        .collect();
    Some((rows, non_finite))
}

/// `churn_risk` values, lowest risk first. Deliberately not the RFM segment names (`Lost`,
/// `At Risk`): those rank customers against each other on recency, frequency and spend, while
/// these band the model's probability of a purchase in the horizon.
pub const RISK_BANDS: [&str; 4] = ["low", "medium", "high", "very_high"];

/// The `churn_risk` band of a score (`p_purchase` or `p_alive`, per `models.risk_basis`).
fn risk_band(score: f64, c: &ModelsConfig) -> &'static str {
    if score >= c.risk_low {
        RISK_BANDS[0]
    } else if score >= c.risk_medium {
        RISK_BANDS[1]
    } else if score >= c.risk_high {
        RISK_BANDS[2]
    } else {
        RISK_BANDS[3]
    }
}

/// The models fitted on the whole customer base (from merged statistics in a partitioned run).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct FittedModels {
    /// The customer-base model's parameters, or why the fit failed.
    bg: Result<CustomerModel, String>,
    /// Which customer-base model (its manifest key).
    kind: ModelKind,
    gg: Result<gamma_gamma::GammaGamma, String>,
    /// Their manifest sections (diagnostics, or the failure).
    bg_manifest: serde_json::Value,
    gg_manifest: serde_json::Value,
    /// The repeat customers' mean spend: the expected spend when Gamma-Gamma's is not finite.
    mean_spend: f64,
    /// With a holdout: the `backtest` table's rows, its manifest section, and why it failed.
    backtest: Option<(Option<Vec<BacktestRow>>, serde_json::Value, Option<String>)>,
    /// `auto`: how the model was chosen (the manifest's `models.selection`).
    selection: Option<serde_json::Value>,
    /// The horizon the scores use, in model days: `horizon_days`, or its operational days
    /// under the seasonal index.
    horizon: f64,
    /// The manifest's `models.seasonality`.
    seasonality: serde_json::Value,
}

/// A model to backtest: the customer-base model, with or without the seasonal index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Candidate {
    kind: ModelKind,
    seasonal: bool,
}

impl Candidate {
    /// `bgnbd`, `bgnbd+seasonal`, ...
    fn id(self) -> String {
        if self.seasonal {
            format!("{}+seasonal", self.kind.id())
        } else {
            self.kind.id().to_string()
        }
    }

    /// Every model, and with seasonality on each with the index too.
    fn all(config: &ModelsConfig) -> Vec<Candidate> {
        let flags: &[bool] = match config.seasonality {
            Seasonality::Off => &[false],
            Seasonality::MonthOfYear => &[false, true],
        };
        ModelKind::ALL
            .into_iter()
            .flat_map(|kind| {
                flags
                    .iter()
                    .map(move |&seasonal| Candidate { kind, seasonal })
            })
            .collect()
    }
}

/// Buyers' first purchase days and counts from their triples' T at `end`.
fn cohorts(triples: &Triples, end: Day) -> Vec<(Day, f64)> {
    let mut by_day: HashMap<Day, f64> = HashMap::new();
    for (t, w) in triples.t.iter().zip(&triples.weight) {
        *by_day.entry(end - *t as Day).or_default() += w;
    }
    let mut out: Vec<(Day, f64)> = by_day.into_iter().collect();
    out.sort_by_key(|c| c.0);
    out
}

/// The index of `model` fitted on `triples` at `end`, or why there is none.
fn seasonal_index(
    model: &CustomerModel,
    triples: &Triples,
    repeat_days: &[(Day, u64)],
    end: Day,
) -> Result<SeasonalIndex, String> {
    SeasonalIndex::estimate(model, &cohorts(triples, end), repeat_days, end)
}

/// How a backtest without a seasonal index (where one was asked for) begins its error.
const SEASONAL_UNAVAILABLE: &str = "seasonal index: ";

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

fn index_json(index: &SeasonalIndex) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> = MONTHS
        .iter()
        .zip(index.month)
        .map(|(m, v)| (m.to_string(), json!(v)))
        .collect();
    serde_json::Value::Object(map)
}

/// One row of `backtest`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct BacktestRow {
    /// The candidate model (`bgnbd`, ...), whether with the seasonal index, and whether it is
    /// the one scored in `churn_scores`.
    pub customer_model: String,
    pub seasonal: bool,
    pub chosen: bool,
    pub calibration_repeat_purchases: String,
    pub customers: i64,
    pub predicted_purchases: f64,
    pub actual_purchases: f64,
}

/// Fits the customer-base model and Gamma-Gamma on `inputs`, and with backtest statistics runs
/// the backtest of every candidate model. With `auto`, the model is the one with the lowest
/// mean error over the rolling `origins` (see [`select`]).
pub(crate) fn fit_models(
    config: &ModelsConfig,
    inputs: &ModelInputs,
    data: &ModelData,
    as_of: Day,
) -> Result<FittedModels, EngineError> {
    let (backtest_stats, origins) = (data.holdout.as_ref(), data.origins.as_slice());
    let repeat_days = data.repeat_days.as_slice();
    let horizon = f64::from(config.horizon_days);
    let seasonal_wanted = config.seasonality == Seasonality::MonthOfYear;
    let (chosen, selection) = match config.customer_model.fixed() {
        Some(kind) => (
            Candidate {
                kind,
                seasonal: seasonal_wanted,
            },
            None,
        ),
        None => {
            let (chosen, why) = select(&Candidate::all(config), origins, horizon, repeat_days);
            (chosen, Some(why))
        }
    };
    let kind = chosen.kind;
    let (bg, gg) = rayon::join(
        || CustomerModel::fit(kind, &inputs.triples),
        || gamma_gamma::fit(&inputs.repeat_x, &inputs.repeat_m),
    );
    let bg_manifest = match &bg {
        Ok((_, diag)) => fitted(diag),
        Err(e) => failed(e),
    };
    // The seasonal index of the fitted model at the as-of date, when wanted and estimable.
    let (score_horizon, seasonality) = match (&bg, seasonal_wanted) {
        (_, false) => (
            horizon,
            json!({ "status": "off", "reason": "models.seasonality = \"off\"" }),
        ),
        (Err(_), true) => (
            horizon,
            json!({ "status": "off", "reason": "the customer-base model was not fitted" }),
        ),
        (Ok(_), true) if !chosen.seasonal => (
            horizon,
            json!({ "status": "off", "reason": "auto chose the model without the index (see models.selection)" }),
        ),
        (Ok((m, _)), true) => match seasonal_index(m, &inputs.triples, repeat_days, as_of) {
            Ok(index) => {
                let operational = index.operational_days(as_of, config.horizon_days);
                (
                    operational,
                    json!({ "status": "on", "index": index_json(&index), "calendar_horizon_days": config.horizon_days, "operational_horizon_days": operational }),
                )
            }
            Err(reason) => (horizon, json!({ "status": "off", "reason": reason })),
        },
    };
    let gg_manifest = match &gg {
        Ok((_, diag)) => fitted(diag),
        Err(e) => failed(e),
    };
    let bg = bg.map(|(m, _)| m).map_err(|e| e.to_string());
    let gg = gg
        .map(|(m, _)| m)
        .map_err(|e| format!("{e} (expected_spend and clv are null)"));
    let mean_spend = inputs.repeat_m.iter().sum::<f64>() / inputs.repeat_m.len().max(1) as f64;
    let backtest = match backtest_stats {
        Some(stats) => {
            let n = stats.holdout_days;
            // Every candidate on the same holdout, the chosen one first.
            let mut kinds = vec![chosen];
            kinds.extend(Candidate::all(config).into_iter().filter(|k| *k != chosen));
            let runs: Vec<_> = kinds
                .par_iter()
                .map(|&k| (k, backtest(k, stats, f64::from(n), repeat_days)))
                .collect();
            let mut rows = Vec::new();
            let mut candidates = serde_json::Map::new();
            let chosen_candidate = chosen;
            let mut chosen_result = None;
            for (k, run) in runs {
                let entry = match run? {
                    Ok((mut r, result, diag)) => {
                        for row in &mut r {
                            row.chosen = k == chosen_candidate;
                        }
                        rows.extend(r);
                        let entry = json!({ "status": "ok", "params": json!(&diag)["params"], "log_likelihood": diag.log_likelihood, "result": result });
                        if k == chosen_candidate {
                            chosen_result = Some(Ok((result, diag)));
                        }
                        entry
                    }
                    Err(e) => {
                        if k == chosen_candidate {
                            chosen_result = Some(Err(e.clone()));
                        }
                        json!({ "status": "failed", "error": e })
                    }
                };
                candidates.insert(k.id(), entry);
            }
            let calibration_end = patronage_input::format_day(stats.calibration_end);
            Some(match chosen_result {
                Some(Ok((result, diag))) => (
                    Some(rows),
                    json!({ "status": "ok", "holdout_days": n, "calibration_end": calibration_end, "customer_model": chosen.id(), "fit": diag, "result": result, "candidates": candidates }),
                    None,
                ),
                Some(Err(e)) => (
                    None,
                    json!({ "status": "failed", "holdout_days": n, "customer_model": chosen.id(), "error": e, "candidates": candidates }),
                    Some(format!("backtest: {e}")),
                ),
                None => (
                    None,
                    json!({ "status": "failed", "holdout_days": n }),
                    Some("backtest: no model ran".into()),
                ),
            })
        }
        None => None,
    };
    Ok(FittedModels {
        bg,
        kind,
        gg,
        bg_manifest,
        gg_manifest,
        mean_spend,
        backtest,
        selection,
        horizon: score_horizon,
        seasonality,
    })
}

/// The summary metrics of a backtest, for the manifest.
fn metrics(b: &Backtest) -> serde_json::Value {
    json!({
        "customers": b.customers,
        "predicted_total": b.predicted_total,
        "actual_total": b.actual_total,
        "total_error": b.total_error,
        "mae": b.mae,
        "rmse": b.rmse,
        "auc_no_purchase_by_p_purchase": b.auc_no_purchase_by_p_purchase,
        "auc_no_purchase_by_expected": b.auc_no_purchase_by_expected,
    })
}

/// `auto`: fits every candidate at each rolling origin (calibration up to the origin, the next
/// `horizon` days held out) and chooses the lowest mean RMSE of each customer's purchases over
/// the origins; a candidate that fails at any origin is out. RMSE, not MAE: the scores are
/// expectations, which squared error rewards and absolute error does not (MAE is least at the
/// median, 0 for most customers, so it prefers predictions biased low: on a seasonal shop it
/// rejects the index that cuts the holdout's total error from −34% to −5%). An origin with less history
/// before it than its window (the oldest buyer's T below the horizon) or fewer than 100
/// buyers is skipped: a model fitted on days of data says nothing about the choice. Ties and a
/// field with no survivor fall to the order of [`ModelKind::ALL`] (BG/NBD first). Returns the
/// choice and the manifest's account of it.
fn select(
    candidates_to_try: &[Candidate],
    all_origins: &[BacktestStats],
    horizon: f64,
    repeat_days: &[(Day, u64)],
) -> (Candidate, serde_json::Value) {
    let usable = |o: &BacktestStats| {
        let history = o.rows.iter().map(|r| r[2]).max().unwrap_or(0) as f64;
        history >= horizon && o.rows.len() >= 100
    };
    let origins: Vec<BacktestStats> = all_origins.iter().filter(|o| usable(o)).cloned().collect();
    let origins = origins.as_slice();
    let evaluated: Vec<(Candidate, Vec<Result<Backtest, String>>)> = candidates_to_try
        .par_iter()
        .map(|&kind| {
            let per: Vec<Result<Backtest, String>> = origins
                .iter()
                .map(|stats| match backtest(kind, stats, horizon, repeat_days) {
                    Ok(Ok((_, result, _))) => Ok(result),
                    Ok(Err(e)) => Err(e),
                    Err(e) => Err(e.to_string()),
                })
                .collect();
            (kind, per)
        })
        .collect();
    // A candidate whose fit fails at a used origin is out. An origin where only the seasonal
    // index is unavailable (too little history before it) does not count against the seasonal
    // candidates: all candidates in the running are compared on the same origins, those where
    // every one of them ran; with none in common, those that could not run everywhere drop out.
    let not_applicable = |r: &Result<Backtest, String>| {
        r.as_ref()
            .err()
            .is_some_and(|e| e.starts_with(SEASONAL_UNAVAILABLE))
    };
    let mut running: Vec<usize> = (0..evaluated.len())
        .filter(|&i| {
            evaluated[i]
                .1
                .iter()
                .all(|r| r.is_ok() || not_applicable(r))
        })
        .collect();
    let common = |set: &[usize]| -> Vec<usize> {
        (0..origins.len())
            .filter(|&k| set.iter().all(|&i| evaluated[i].1[k].is_ok()))
            .collect()
    };
    let mut compared = common(&running);
    if compared.is_empty() {
        running.retain(|&i| evaluated[i].1.iter().all(Result::is_ok));
        compared = common(&running);
    }
    if compared.is_empty() {
        running.clear();
    }
    let mut candidates = serde_json::Map::new();
    let mut scored: Vec<(Candidate, f64)> = Vec::new();
    for (i, (kind, per)) in evaluated.iter().enumerate() {
        let eligible = running.contains(&i);
        let mean = |f: &dyn Fn(&Backtest) -> f64| {
            compared
                .iter()
                .filter_map(|&k| per[k].as_ref().ok())
                .map(f)
                .sum::<f64>()
                / compared.len().max(1) as f64
        };
        let mean_rmse = mean(&|b| b.rmse);
        if eligible && mean_rmse.is_finite() {
            scored.push((*kind, mean_rmse));
        }
        candidates.insert(
            kind.id(),
            json!({
                "eligible": eligible,
                "mean_rmse": eligible.then_some(mean_rmse),
                "mean_mae": eligible.then(|| mean(&|b| b.mae)),
                "mean_total_error": eligible.then(|| mean(&|b| b.total_error.unwrap_or(0.0))),
                "origins": per.iter().map(|r| match r {
                    Ok(b) => metrics(b),
                    Err(e) => json!({ "error": e }),
                }).collect::<Vec<_>>(),
            }),
        );
    }
    let best = scored.iter().min_by(|a, b| a.1.total_cmp(&b.1)).copied();
    let (chosen, why) = match best {
        Some((kind, rmse)) => {
            let others: Vec<String> = scored
                .iter()
                .filter(|s| s.0 != kind)
                .map(|s| format!("{} {:.4}", s.0.id(), s.1))
                .collect();
            (
                kind,
                format!(
                    "{} has the lowest mean RMSE over the {} compared: {rmse:.4} (others: {})",
                    kind.id(),
                    match compared.len() {
                        1 => "1 origin".to_string(),
                        n => format!("{n} origins"),
                    },
                    if others.is_empty() {
                        "none could be fitted at every origin".into()
                    } else {
                        others.join(", ")
                    }
                ),
            )
        }
        None => (
            Candidate {
                kind: ModelKind::Bgnbd,
                seasonal: false,
            },
            "no candidate could be fitted at every origin: BG/NBD, the default".to_string(),
        ),
    };
    let compared_ends: Vec<Day> = compared
        .iter()
        .map(|&k| origins[k].calibration_end)
        .collect();
    let origin_list: Vec<serde_json::Value> = all_origins
        .iter()
        .map(|o| {
            json!({
                "calibration_end": patronage_input::format_day(o.calibration_end),
                "window_end": patronage_input::format_day(o.calibration_end + o.holdout_days as i32),
                "customers": o.rows.len(),
                "history_days": o.rows.iter().map(|r| r[2]).max().unwrap_or(0),
                "used": usable(o),
                "compared": compared_ends.contains(&o.calibration_end),
            })
        })
        .collect();
    (
        chosen,
        json!({
            "rule": format!("lowest mean root mean squared error of each customer's purchases in the {horizon} days after each rolling origin inside the calibration period ({} of {} usable: at least {horizon} days of history and 100 buyers before it); a model that cannot be fitted at every usable origin is not eligible; the rest are compared on the origins where all of them ran (a seasonal index needs a year and a half of history before its origin)", origins.len(), all_origins.len()),
            "origins": origin_list,
            "candidates": candidates,
            "chosen": chosen.id(),
            "customer_model": chosen.kind.id(),
            "seasonal": chosen.seasonal,
            "why": why,
        }),
    )
}

/// What the models need of the orders beyond the buyers' summaries, mergeable across
/// partitions.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ModelData {
    /// With `--holdout-days`.
    pub holdout: Option<BacktestStats>,
    /// With `customer_model = "auto"`: one per rolling origin.
    pub origins: Vec<BacktestStats>,
    /// With `seasonality = "month_of_year"`: repeat purchase days per day up to the as-of.
    pub repeat_days: Vec<(Day, u64)>,
}

impl ModelData {
    /// The union of the partitions'.
    pub fn merge(parts: Vec<ModelData>) -> ModelData {
        let mut holdouts = Vec::new();
        let mut origins: Vec<Vec<BacktestStats>> = Vec::new();
        let mut days: Vec<(Day, u64)> = Vec::new();
        for p in parts {
            holdouts.extend(p.holdout);
            origins.push(p.origins);
            days.extend(p.repeat_days);
        }
        let count = origins.iter().map(Vec::len).max().unwrap_or(0);
        let merged_origins = (0..count)
            .filter_map(|k| {
                BacktestStats::merge(
                    origins
                        .iter_mut()
                        .filter_map(|p| (k < p.len()).then(|| std::mem::take(&mut p[k])))
                        .collect(),
                )
            })
            .collect();
        days.sort_unstable();
        let mut repeat_days: Vec<(Day, u64)> = Vec::new();
        for (d, n) in days {
            match repeat_days.last_mut() {
                Some(last) if last.0 == d => last.1 += n,
                _ => repeat_days.push((d, n)),
            }
        }
        ModelData {
            holdout: BacktestStats::merge(holdouts),
            origins: merged_origins,
            repeat_days,
        }
    }
}

/// What the models need of a partition's orders ([`ModelData`]): the holdout's backtest
/// statistics (with `--holdout-days`); with `customer_model = "auto"`, one per rolling origin:
/// windows of `horizon_days` ending at the calibration end (as-of, or the holdout's start),
/// then one horizon earlier, and so on; with seasonality, the repeat purchase days per day.
pub(crate) fn model_data(
    opts: &RunOptions,
    orders: &Orders,
    customers: usize,
    as_of: Day,
    keep: Option<&[bool]>,
) -> ModelData {
    if !opts.models.enabled {
        return ModelData::default();
    }
    let holdout = opts
        .holdout_days
        .map(|n| BacktestStats::of(orders, customers, as_of, n, keep));
    let origins = match opts.models.customer_model {
        ModelChoice::Auto => {
            let end = as_of - opts.holdout_days.unwrap_or(0) as i32;
            let h = opts.models.horizon_days;
            (0..opts.models.selection_origins)
                .map(|k| BacktestStats::of(orders, customers, end - (k * h) as i32, h, keep))
                .collect()
        }
        _ => Vec::new(),
    };
    let repeat_days = match opts.models.seasonality {
        Seasonality::MonthOfYear => patronage_features::repeat_purchase_days(orders, as_of, keep),
        Seasonality::Off => Vec::new(),
    };
    ModelData {
        holdout,
        origins,
        repeat_days,
    }
}

/// Whether the run needs [`ModelData`] (so its orders are kept for it).
pub(crate) fn backtests_needed(opts: &RunOptions) -> bool {
    opts.models.enabled
        && (opts.holdout_days.is_some()
            || opts.models.customer_model == ModelChoice::Auto
            || opts.models.seasonality == Seasonality::MonthOfYear)
}

/// Scores every buyer of `f` with the fitted models: `churn_scores`, and the fit's own tables
/// and manifest sections.
pub(crate) fn score_models(
    config: &ModelsConfig,
    models: FittedModels,
    ids: &Column,
    f: &FeatureTable,
) -> Result<ModelsStage, EngineError> {
    let btyd = Btyd::of(f)?;
    let mut failures: Vec<String> = Vec::new();
    let FittedModels {
        bg,
        kind,
        gg,
        bg_manifest,
        gg_manifest,
        mean_spend,
        backtest,
        selection,
        horizon,
        seasonality,
    } = models;
    failures.extend(bg.as_ref().err().cloned());
    failures.extend(gg.as_ref().err().cloned());
    let monthly = monthly_discount_rate(config.annual_discount_rate);
    let mut scores = None;
    let mut tables: super::Tables = Vec::new();
    let mut bands = serde_json::Map::new();
    let buyer_idx = btyd.buyers();
    let history: Vec<(f64, f64, f64)> = buyer_idx.iter().map(|&i| btyd.triple(i)).collect();
    let m: Vec<f64> = buyer_idx
        .iter()
        .map(|&i| btyd.m.get(i).unwrap_or(0.0))
        .collect();
    let scored = buyer_scores(config, &bg, &gg, mean_spend, horizon, &history, &m);
    if let Some((buyer_rows, non_finite)) = scored {
        let mut rows: Vec<ScoreRow> = vec![None; f.len()];
        for (&i, r) in buyer_idx.iter().zip(buyer_rows) {
            rows[i] = Some(r);
        }
        if non_finite > 0 {
            failures.push(format!(
                "{}: the fitted model gives non-finite scores for {non_finite} customers, so none are published; skip the models with --no-models (models.enabled = false)",
                kind.name()
            ));
        } else {
            let col = |k: usize| -> Vec<Option<f64>> {
                rows.iter()
                    .map(|r| {
                        r.and_then(|(b, v)| {
                            if k < 3 {
                                Some(b[k])
                            } else {
                                v.map(|v| v[k - 3])
                            }
                        })
                    })
                    .collect()
            };
            let clv_values = col(4);
            let risk: Vec<Option<&str>> = rows
                .iter()
                .map(|r| r.map(|(b, _)| risk_band(b[config.risk_basis.column()], config)))
                .collect();
            for name in RISK_BANDS {
                let n = risk.iter().filter(|b| **b == Some(name)).count();
                bands.insert(name.into(), json!(n));
            }
            let frame = tables::frame(
                "churn_scores",
                vec![
                    ids.clone(),
                    Column::new("p_alive".into(), col(0)),
                    Column::new("p_purchase".into(), col(1)),
                    Column::new("expected_purchases".into(), col(2)),
                    Column::new("expected_spend".into(), col(3)),
                    Column::new("clv".into(), &clv_values),
                    Column::new("churn_risk".into(), &risk),
                ],
            )?;
            tables.push(("churn_scores", frame));
            scores = Some(Scores {
                p_alive: col(0),
                clv: clv_values,
            });
        }
    }

    let backtest_manifest = match backtest {
        Some((rows, manifest, failure)) => {
            if let Some(rows) = rows {
                tables.push(("backtest", backtest_frame(&rows)?));
            }
            failures.extend(failure);
            manifest
        }
        None => serde_json::Value::Null,
    };
    let status = if failures.is_empty() {
        "ok"
    } else if scores.is_some() {
        "partial"
    } else {
        "failed"
    };
    let manifest = json!({
        "enabled": true,
        "status": status,
        "failures": failures,
        "time_unit": "day",
        "horizon_days": config.horizon_days,
        "seasonality": seasonality,
        "clv": { "months": config.clv_months, "month_days": MONTH_DAYS, "annual_discount_rate": config.annual_discount_rate, "monthly_discount_rate": monthly, "margin": config.margin },
        "churn_risk": { "basis": config.risk_basis, "cut_points": { "low": config.risk_low, "medium": config.risk_medium, "high": config.risk_high }, "bands": RISK_BANDS },
        "churn_risk_customers": bands,
        "customer_model": kind.id(),
        kind.id(): bg_manifest,
        "gamma_gamma": gg_manifest,
        "backtest": backtest_manifest,
        "selection": selection,
    });
    Ok(ModelsStage {
        scores,
        tables,
        manifest,
        failure: (!failures.is_empty()).then(|| failures.join("; ")),
    })
}

/// What the backtest needs of each customer, mergeable across partitions: per customer who had
/// bought by the calibration end (`as_of − n`), the BTYD summary (x, t_x, T) there and the
/// purchase days in the holdout, in ascending order (so any partitioning gives the same list).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct BacktestStats {
    pub holdout_days: u32,
    pub calibration_end: Day,
    pub rows: Vec<[i64; 4]>,
}

impl BacktestStats {
    /// `keep`: the customers (index positions) of this partition; all without one.
    pub fn of(
        orders: &Orders,
        customers: usize,
        as_of: Day,
        n: u32,
        keep: Option<&[bool]>,
    ) -> Self {
        let calibration_end = as_of - n as i32;
        // Same index (rows = customers), features as of the calibration end: customers who had
        // not bought by then have no purchase there and are left out.
        let cal = patronage_features::compute(orders, customers, calibration_end);
        let actual = purchase_days_between(orders, customers, calibration_end, as_of);
        let mut rows: Vec<[i64; 4]> = match Btyd::of(&cal) {
            Ok(b) => b
                .buyers()
                .into_iter()
                .filter(|&i| keep.is_none_or(|k| k[i]))
                .map(|i| {
                    let get = |v: &Nullable<i64>| v.get(i).unwrap_or(0);
                    [get(b.x), get(b.t_x), get(b.t), actual[i]]
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        rows.par_sort_unstable();
        BacktestStats {
            holdout_days: n,
            calibration_end,
            rows,
        }
    }

    /// The statistics of the union of the partitions' customers.
    #[allow(dead_code)]
    pub fn merge(parts: Vec<BacktestStats>) -> Option<Self> {
        let first = parts.first()?;
        let (holdout_days, calibration_end) = (first.holdout_days, first.calibration_end);
        let mut rows: Vec<[i64; 4]> = parts.into_iter().flat_map(|p| p.rows).collect();
        rows.par_sort_unstable();
        Some(BacktestStats {
            holdout_days,
            calibration_end,
            rows,
        })
    }
}

/// The `backtest` table.
fn backtest_frame(rows: &[BacktestRow]) -> Result<DataFrame, EngineError> {
    tables::frame(
        "backtest",
        vec![
            Column::new(
                "customer_model".into(),
                rows.iter()
                    .map(|r| r.customer_model.as_str())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "seasonal".into(),
                rows.iter().map(|r| r.seasonal).collect::<Vec<_>>(),
            ),
            Column::new(
                "chosen".into(),
                rows.iter().map(|r| r.chosen).collect::<Vec<_>>(),
            ),
            Column::new(
                "calibration_repeat_purchases".into(),
                rows.iter()
                    .map(|r| r.calibration_repeat_purchases.as_str())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "customers".into(),
                rows.iter().map(|r| r.customers).collect::<Vec<_>>(),
            ),
            Column::new(
                "predicted_purchases".into(),
                rows.iter()
                    .map(|r| r.predicted_purchases)
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "actual_purchases".into(),
                rows.iter().map(|r| r.actual_purchases).collect::<Vec<_>>(),
            ),
        ],
    )
}

/// Fits at the calibration end and predicts the next `horizon` days for every calibration
/// buyer. The inner `Err` is a model that could not be fitted on the calibration period.
#[allow(clippy::type_complexity)]
fn backtest(
    candidate: Candidate,
    stats: &BacktestStats,
    horizon: f64,
    repeat_days: &[(Day, u64)],
) -> Result<Result<(Vec<BacktestRow>, Backtest, FitDiagnostics), String>, EngineError> {
    let col = |k: usize| stats.rows.iter().map(|r| r[k]).collect::<Vec<i64>>();
    let triples = Triples::from_integers(&col(0), &col(1), &col(2));
    let (bg, bg_diag) = match CustomerModel::fit(candidate.kind, &triples) {
        Ok(fit) => fit,
        Err(e) => return Ok(Err(e.to_string())),
    };
    // With the index estimated on the calibration period alone, the holdout's operational days.
    let horizon = if candidate.seasonal {
        match seasonal_index(&bg, &triples, repeat_days, stats.calibration_end) {
            Ok(index) => index.operational_days(stats.calibration_end, horizon as u32),
            Err(reason) => return Ok(Err(format!("{SEASONAL_UNAVAILABLE}{reason}"))),
        }
    } else {
        horizon
    };
    let kind = candidate.kind;
    let history: Vec<(f64, f64, f64)> = stats
        .rows
        .iter()
        .map(|r| (r[0] as f64, r[1] as f64, r[2] as f64))
        .collect();
    let predicted = predict(&bg, &history, horizon, None);
    let per: Vec<[f64; 5]> = stats
        .rows
        .iter()
        .zip(&history)
        .zip(&predicted)
        .map(|((r, &(x, _, _)), p)| [x, p.expected, r[3] as f64, p.p_alive, p.p_purchase])
        .collect();
    let pick = |k: usize| -> Vec<f64> { per.iter().map(|r| r[k]).collect() };
    let result = evaluate(&Holdout {
        calibration_x: pick(0),
        predicted: pick(1),
        actual: pick(2),
        p_alive: pick(3),
        p_purchase: pick(4),
    });
    let mut rows: Vec<BacktestRow> = result
        .buckets
        .iter()
        .map(|b| BacktestRow {
            customer_model: kind.id().into(),
            seasonal: candidate.seasonal,
            chosen: true,
            calibration_repeat_purchases: b.bucket.clone(),
            customers: b.customers,
            predicted_purchases: b.predicted,
            actual_purchases: b.actual,
        })
        .collect();
    rows.push(BacktestRow {
        customer_model: kind.id().into(),
        seasonal: candidate.seasonal,
        chosen: true,
        calibration_repeat_purchases: "all".into(),
        customers: result.customers,
        predicted_purchases: result.predicted_total,
        actual_purchases: result.actual_total,
    });
    Ok(Ok((rows, result, bg_diag)))
}
