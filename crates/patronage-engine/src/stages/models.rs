//! The models stage: BG/NBD + Gamma-Gamma fitted on the per-customer BTYD summary (days), the
//! `churn_scores` table, and with a holdout the `backtest` table (fit at as-of − N, compare with
//! the last N days).
//!
//! A model that cannot be fitted does not stop the run: the stage reports it as failed (in the
//! manifest, with the reason) and the job publishes every other table. Without BG/NBD there is no
//! `churn_scores`; without Gamma-Gamma, `expected_spend` and `clv` are null. No score is ever
//! published unless it is finite.

use patronage_features::{purchase_days_between, Day, FeatureTable, Nullable, Orders};
use patronage_models::backtest::{evaluate, Backtest, Holdout};
use patronage_models::bgnbd::{self, BgNbd, Triples};
use patronage_models::clv::{discounted_purchases_given_alive, monthly_discount_rate};
use patronage_models::gamma_gamma;
use patronage_models::{FitDiagnostics, ModelError};
use polars::prelude::*;
use rayon::prelude::*;
use serde_json::json;
use std::collections::HashMap;

use crate::config::ModelsConfig;
use crate::error::EngineError;
use crate::tables;

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
struct Btyd<'a> {
    frequency: &'a Nullable<i64>,
    x: &'a Nullable<i64>,
    t_x: &'a Nullable<i64>,
    t: &'a Nullable<i64>,
    m: &'a Nullable<f64>,
}

impl<'a> Btyd<'a> {
    fn of(f: &'a FeatureTable) -> Result<Self, EngineError> {
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
    let b = Btyd::of(f)?;
    let idx = b.buyers();
    let pick = |v: &Nullable<i64>| {
        idx.iter()
            .map(|&i| v.get(i).unwrap_or(0))
            .collect::<Vec<i64>>()
    };
    let triples = Triples::from_integers(&pick(b.x), &pick(b.t_x), &pick(b.t));
    let mut repeat: Vec<(f64, f64)> = idx
        .iter()
        .filter_map(|&i| match (b.x.get(i), b.m.get(i)) {
            (Some(x), Some(m)) if x > 0 && m > 0.0 => Some((x as f64, m)),
            _ => None,
        })
        .collect();
    // In a canonical order (not the customers'), so that the likelihood sums and the mean
    // spend have the same bits however the customers were partitioned.
    repeat.par_sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let (repeat_x, repeat_m) = repeat.into_iter().unzip();
    Ok(ModelInputs {
        triples,
        repeat_x,
        repeat_m,
    })
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
/// ₂F₁ series behind the expectations, see [`BgNbd::expected_purchases_given_alive`]), so it runs
/// once per distinct (x, T) — a few thousand pairs however many customers — and each customer
/// costs one exponential.
/// `clv`: months and monthly discount rate, when CLV is wanted.
fn predict(
    bg: &BgNbd,
    history: &[(f64, f64, f64)],
    horizon: f64,
    clv: Option<(u32, f64)>,
) -> Vec<Prediction> {
    let mut slot: HashMap<(u64, u64), usize> = HashMap::new();
    let mut pairs: Vec<(f64, f64)> = Vec::new();
    let pair_index: Vec<usize> = history
        .iter()
        .map(|&(x, _, t)| {
            *slot.entry((x.to_bits(), t.to_bits())).or_insert_with(|| {
                pairs.push((x, t));
                pairs.len() - 1
            })
        })
        .collect();
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
    history
        .par_iter()
        .zip(&pair_index)
        .map(|(&(x, t_x, t), &k)| {
            let p_alive = bg.p_alive(x, t_x, t);
            let [expected, discounted, p_purchase] = given_alive[k];
            Prediction {
                p_alive,
                p_purchase: p_alive * p_purchase,
                expected: expected * p_alive,
                discounted_purchases: discounted * p_alive,
            }
        })
        .collect()
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

/// Fits the models on `f` and scores every buyer. Model failures are reported in the returned
/// stage, never as an `Err` (which is kept for internal errors).
pub(crate) fn run_models(
    config: &ModelsConfig,
    orders: &Orders,
    ids: &Column,
    f: &FeatureTable,
    as_of: Day,
    holdout_days: Option<u32>,
) -> Result<ModelsStage, EngineError> {
    let inputs = model_inputs(f)?;
    let btyd = Btyd::of(f)?;
    let mut failures: Vec<String> = Vec::new();
    let bg = bgnbd::fit(&inputs.triples);
    let gg = gamma_gamma::fit(&inputs.repeat_x, &inputs.repeat_m);
    let mean_spend = inputs.repeat_m.iter().sum::<f64>() / inputs.repeat_m.len().max(1) as f64;
    let bg_manifest = match &bg {
        Ok((_, diag)) => fitted(diag),
        Err(e) => {
            failures.push(e.to_string());
            failed(e)
        }
    };
    let gg_manifest = match &gg {
        Ok((_, diag)) => fitted(diag),
        Err(e) => {
            failures.push(format!("{e} (expected_spend and clv are null)"));
            failed(e)
        }
    };
    let horizon = f64::from(config.horizon_days);
    let monthly = monthly_discount_rate(config.annual_discount_rate);
    let mut scores = None;
    let mut tables: super::Tables = Vec::new();
    let mut bands = serde_json::Map::new();
    if let Ok((bg, _)) = &bg {
        let buyer_idx = btyd.buyers();
        let history: Vec<(f64, f64, f64)> = buyer_idx.iter().map(|&i| btyd.triple(i)).collect();
        let predicted = predict(bg, &history, horizon, Some((config.clv_months, monthly)));
        // Per customer: p_alive, p_purchase, expected purchases; then expected spend and CLV
        // when Gamma-Gamma fitted.
        type Row = Option<([f64; 3], Option<[f64; 2]>)>;
        let mut rows: Vec<Row> = vec![None; f.len()];
        let mut non_finite = 0usize;
        for ((&i, &(x, _, _)), p) in buyer_idx.iter().zip(&history).zip(&predicted) {
            let value = gg.as_ref().ok().map(|(gg, _)| {
                let mut spend = gg.conditional_expected_spend(x, btyd.m.get(i).unwrap_or(0.0));
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
            rows[i] = Some((bg_part, value));
        }
        if non_finite > 0 {
            failures.push(format!(
                "BG/NBD: the fitted model gives non-finite scores for {non_finite} customers, so none are published; skip the models with --no-models (models.enabled = false)"
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

    let backtest_manifest = match holdout_days {
        Some(n) => match backtest(orders, ids.len(), as_of, n, f64::from(n))? {
            Ok((frame, result, diag)) => {
                tables.push(("backtest", frame));
                json!({ "status": "ok", "holdout_days": n, "calibration_end": patronage_input::format_day(as_of - n as i32), "fit": diag, "result": result })
            }
            Err(e) => {
                failures.push(format!("backtest: {e}"));
                json!({ "status": "failed", "holdout_days": n, "error": e.to_string() })
            }
        },
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
        "clv": { "months": config.clv_months, "month_days": MONTH_DAYS, "annual_discount_rate": config.annual_discount_rate, "monthly_discount_rate": monthly, "margin": config.margin },
        "churn_risk": { "basis": config.risk_basis, "cut_points": { "low": config.risk_low, "medium": config.risk_medium, "high": config.risk_high }, "bands": RISK_BANDS },
        "churn_risk_customers": bands,
        "bgnbd": bg_manifest,
        "gamma_gamma": gg_manifest,
        "backtest": backtest_manifest,
    });
    Ok(ModelsStage {
        scores,
        tables,
        manifest,
        failure: (!failures.is_empty()).then(|| failures.join("; ")),
    })
}

/// Fits at `as_of − n` and predicts the next `n` days for every calibration buyer. The inner
/// `Err` is a model that could not be fitted on the calibration period.
#[allow(clippy::type_complexity)]
fn backtest(
    orders: &Orders,
    customers: usize,
    as_of: Day,
    n: u32,
    horizon: f64,
) -> Result<Result<(DataFrame, Backtest, FitDiagnostics), ModelError>, EngineError> {
    let calibration_end = as_of - n as i32;
    // Same index (rows = customers), features as of the calibration end: customers who had not
    // bought by then have no purchase there and are left out.
    let cal = patronage_features::compute(orders, customers, calibration_end);
    let inputs = model_inputs(&cal)?;
    let cal_btyd = Btyd::of(&cal)?;
    let (bg, bg_diag) = match bgnbd::fit(&inputs.triples) {
        Ok(fit) => fit,
        Err(e) => return Ok(Err(e)),
    };
    let actual_by_key = purchase_days_between(orders, customers, calibration_end, as_of);
    let idx = cal_btyd.buyers();
    let history: Vec<(f64, f64, f64)> = idx.iter().map(|&i| cal_btyd.triple(i)).collect();
    let predicted = predict(&bg, &history, horizon, None);
    let per: Vec<[f64; 5]> = idx
        .iter()
        .zip(&history)
        .zip(&predicted)
        .map(|((&i, &(x, _, _)), p)| {
            [
                x,
                p.expected,
                actual_by_key[i] as f64,
                p.p_alive,
                p.p_purchase,
            ]
        })
        .collect();
    let pick = |k: usize| -> Vec<f64> { per.iter().map(|r| r[k]).collect() };
    let result = evaluate(&Holdout {
        calibration_x: pick(0),
        predicted: pick(1),
        actual: pick(2),
        p_alive: pick(3),
        p_purchase: pick(4),
    });
    let mut buckets: Vec<&str> = result.buckets.iter().map(|b| b.bucket.as_str()).collect();
    buckets.push("all");
    let mut customers: Vec<i64> = result.buckets.iter().map(|b| b.customers).collect();
    customers.push(result.customers);
    let mut predicted: Vec<f64> = result.buckets.iter().map(|b| b.predicted).collect();
    predicted.push(result.predicted_total);
    let mut actual: Vec<f64> = result.buckets.iter().map(|b| b.actual).collect();
    actual.push(result.actual_total);
    let frame = tables::frame(
        "backtest",
        vec![
            Column::new("calibration_repeat_purchases".into(), buckets),
            Column::new("customers".into(), customers),
            Column::new("predicted_purchases".into(), predicted),
            Column::new("actual_purchases".into(), actual),
        ],
    )?;
    Ok(Ok((frame, result, bg_diag)))
}
