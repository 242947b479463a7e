//! The customer-base models behind one interface: BG/NBD, MBG/NBD and Pareto/NBD, each fitted
//! on the same weighted (x, t_x, T) triples and scored with the same four quantities.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::bgnbd::{self, BgNbd, Triples, Variant};
use crate::pareto_nbd::{self, ParetoNbd};
use crate::{FitDiagnostics, ModelError};

/// Which customer-base model (`[models] customer_model`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    #[default]
    Bgnbd,
    Mbgnbd,
    ParetoNbd,
}

impl ModelKind {
    pub const ALL: [ModelKind; 3] = [ModelKind::Bgnbd, ModelKind::Mbgnbd, ModelKind::ParetoNbd];

    /// The config value and manifest key: `bgnbd`, `mbgnbd`, `pareto_nbd`.
    pub fn id(self) -> &'static str {
        match self {
            ModelKind::Bgnbd => "bgnbd",
            ModelKind::Mbgnbd => "mbgnbd",
            ModelKind::ParetoNbd => "pareto_nbd",
        }
    }

    /// The name people write: `BG/NBD`, `MBG/NBD`, `Pareto/NBD`.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Bgnbd => "BG/NBD",
            ModelKind::Mbgnbd => "MBG/NBD",
            ModelKind::ParetoNbd => "Pareto/NBD",
        }
    }
}

/// Distinct (x, t) pairs in order of first sight, and each one's index: scorers and likelihoods
/// evaluate what depends on a pair once, however many customers share it.
#[derive(Debug, Default)]
pub struct PairIndex {
    pub pairs: Vec<(f64, f64)>,
    slot: HashMap<(u64, u64), u32>,
}

impl PairIndex {
    /// The index of (x, t), added if new.
    pub fn index(&mut self, x: f64, t: f64) -> u32 {
        let pairs = &mut self.pairs;
        *self
            .slot
            .entry((x.to_bits(), t.to_bits()))
            .or_insert_with(|| {
                pairs.push((x, t));
                (pairs.len() - 1) as u32
            })
    }
}

/// What scoring needs of a customer-base model. Everything but P(alive) depends on (x, T) only,
/// so scorers evaluate it once per distinct (x, T) and divide by [`Self::history_divisor`].
pub trait CustomerBase: Sync {
    /// 1 / P(alive at T | x, t_x, T).
    fn history_divisor(&self, x: f64, t_x: f64, t: f64) -> f64;
    /// Expected purchases in (T, T+h] of a customer alive at T.
    fn expected_purchases_given_alive(&self, h: f64, x: f64, t: f64) -> f64;
    /// P(at least one purchase in (T, T+h]) of a customer alive at T.
    fn p_purchase_if_alive(&self, h: f64, x: f64, t: f64) -> f64;

    fn p_alive(&self, x: f64, t_x: f64, t: f64) -> f64 {
        1.0 / self.history_divisor(x, t_x, t)
    }

    /// [`Self::history_divisor`] of many customers (x, t_x, T); a model whose divisor shares
    /// work between customers computes that once.
    fn history_divisors(&self, rows: &[(f64, f64, f64)]) -> Vec<f64> {
        rows.par_iter()
            .map(|&(x, t_x, t)| self.history_divisor(x, t_x, t))
            .collect()
    }
}

impl CustomerBase for BgNbd {
    fn history_divisor(&self, x: f64, t_x: f64, t: f64) -> f64 {
        BgNbd::history_divisor(self, x, t_x, t)
    }
    fn expected_purchases_given_alive(&self, h: f64, x: f64, t: f64) -> f64 {
        BgNbd::expected_purchases_given_alive(self, h, x, t)
    }
    fn p_purchase_if_alive(&self, h: f64, x: f64, t: f64) -> f64 {
        BgNbd::p_purchase_if_alive(self, h, x, t)
    }
}

impl CustomerBase for ParetoNbd {
    fn history_divisor(&self, x: f64, t_x: f64, t: f64) -> f64 {
        ParetoNbd::history_divisor(self, x, t_x, t)
    }
    fn history_divisors(&self, rows: &[(f64, f64, f64)]) -> Vec<f64> {
        ParetoNbd::history_divisors(self, rows)
    }
    fn expected_purchases_given_alive(&self, h: f64, x: f64, t: f64) -> f64 {
        ParetoNbd::expected_purchases_given_alive(self, h, x, t)
    }
    fn p_purchase_if_alive(&self, h: f64, x: f64, t: f64) -> f64 {
        ParetoNbd::p_purchase_if_alive(self, h, x, t)
    }
}

/// A fitted customer-base model.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum CustomerModel {
    /// BG/NBD or MBG/NBD ([`BgNbd::variant`]).
    BetaGeometric(BgNbd),
    ParetoNbd(ParetoNbd),
}

impl CustomerModel {
    /// Fits `kind` by maximum likelihood.
    pub fn fit(kind: ModelKind, d: &Triples) -> Result<(Self, FitDiagnostics), ModelError> {
        match kind {
            ModelKind::Bgnbd => bgnbd::fit_variant(d, Variant::Bg)
                .map(|(m, diag)| (CustomerModel::BetaGeometric(m), diag)),
            ModelKind::Mbgnbd => bgnbd::fit_variant(d, Variant::Mbg)
                .map(|(m, diag)| (CustomerModel::BetaGeometric(m), diag)),
            ModelKind::ParetoNbd => {
                pareto_nbd::fit(d).map(|(m, diag)| (CustomerModel::ParetoNbd(m), diag))
            }
        }
    }

    pub fn kind(&self) -> ModelKind {
        match self {
            CustomerModel::BetaGeometric(m) => match m.variant {
                Variant::Bg => ModelKind::Bgnbd,
                Variant::Mbg => ModelKind::Mbgnbd,
            },
            CustomerModel::ParetoNbd(_) => ModelKind::ParetoNbd,
        }
    }

    fn base(&self) -> &dyn CustomerBase {
        match self {
            CustomerModel::BetaGeometric(m) => m,
            CustomerModel::ParetoNbd(m) => m,
        }
    }
}

impl CustomerBase for CustomerModel {
    fn history_divisor(&self, x: f64, t_x: f64, t: f64) -> f64 {
        self.base().history_divisor(x, t_x, t)
    }
    fn history_divisors(&self, rows: &[(f64, f64, f64)]) -> Vec<f64> {
        self.base().history_divisors(rows)
    }
    fn expected_purchases_given_alive(&self, h: f64, x: f64, t: f64) -> f64 {
        self.base().expected_purchases_given_alive(h, x, t)
    }
    fn p_purchase_if_alive(&self, h: f64, x: f64, t: f64) -> f64 {
        self.base().p_purchase_if_alive(h, x, t)
    }
}
