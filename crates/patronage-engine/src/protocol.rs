//! The run as three phases (scale-out, #17): every table is per customer except what a few
//! global numbers decide — the model fits, the RFM score and value tier cut points, the loyalty
//! thresholds. So:
//!
//! 1. **partial**: a partition's customers (all of them, on one machine) give their features and
//!    [`PartitionStats`]: what the global numbers need to know about them, exact and mergeable
//!    (statistics of disjoint partitions merge into those of their union, in any grouping);
//! 2. **fit**: the merged statistics give [`Fitted`]: the models, the cut points and thresholds;
//! 3. **score**: each partition's tables from its features and the fit.
//!
//! The single-node run is these phases with one partition, so a partitioned run gives the
//! same numbers: every statistic is a canonical list (ascending) or an exact distribution, and
//! everything fitted on it sums in that canonical order.

use patronage_features::{
    add_switching_costs_with, switching_inputs, FeatureTable, Nullable, SwitchingRefs, Values,
    SWITCHING_OUTPUTS,
};
use std::collections::BTreeMap;

use patronage_segments::Distribution;
use serde::{Deserialize, Serialize};

use crate::config::{RunOptions, ValueBasis};
use crate::error::EngineError;
use crate::stages::clusters::{self, ClusterSample, FittedClusters};
use crate::stages::loyalty::{LoyaltyCuts, LoyaltyStats};
use crate::stages::models::{self, FittedModels, ModelData, ModelInputs};
use crate::stages::segments::{SegmentCuts, SegmentStats};
use crate::stages::Warnings;

/// One buyer's BTYD summary in days: repeat purchase days `x`, the last one's age `t_x`, the
/// first one's `t`, and the mean repeat spend `m` (`None` without one).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct Buyer {
    pub x: i64,
    pub t_x: i64,
    pub t: i64,
    pub m: Option<f64>,
}

impl Buyer {
    /// The order of [`Buyer::cmp`] as a key: no mean spend first, then the spend's bits in
    /// `f64::total_cmp` order.
    fn key(&self) -> (i64, i64, i64, Option<i64>) {
        let m = self.m.map(|m| {
            let bits = m.to_bits() as i64;
            bits ^ (((bits >> 63) as u64) >> 1) as i64
        });
        (self.x, self.t_x, self.t, m)
    }

    pub(crate) fn cmp(&self, o: &Buyer) -> std::cmp::Ordering {
        (self.x, self.t_x, self.t)
            .cmp(&(o.x, o.t_x, o.t))
            .then_with(|| match (self.m, o.m) {
                (Some(a), Some(b)) => a.total_cmp(&b),
                (a, b) => a.is_some().cmp(&b.is_some()),
            })
    }
}

/// Buyers with counts, ascending, equal ones joined.
fn grouped(mut buyers: Vec<(Buyer, u64)>) -> Vec<(Buyer, u64)> {
    use rayon::slice::ParallelSliceMut;
    buyers.par_sort_unstable_by_key(|(b, _)| b.key());
    let mut out: Vec<(Buyer, u64)> = Vec::new();
    for (b, c) in buyers {
        match out.last_mut() {
            Some(last) if last.0.cmp(&b).is_eq() => last.1 += c,
            _ => out.push((b, c)),
        }
    }
    out
}

/// What a partition's customers tell the fit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct PartitionStats {
    pub customers: u64,
    /// The buyers' summaries, ascending, each with how many buyers share it (one-time buyers
    /// differ only by T): the models fit on them, and the fit scores them to know the base's
    /// p_alive and CLV distributions.
    pub buyers: Vec<(Buyer, u64)>,
    pub segments: SegmentStats,
    /// With loyalty stages.
    pub loyalty: Option<LoyaltyStats>,
    /// What the models need of the orders: backtests (holdout, rolling origins), repeat
    /// purchase days.
    pub model_data: ModelData,
    /// With clusters: the partition's part of the fit sample.
    pub clusters: Option<ClusterSample>,
    /// What the switching costs ranked against the base need to know about these customers.
    pub switching: SwitchingRefs,
    /// When a loyalty condition takes a percentile of a switching cost: the buyers' inputs of
    /// the switching costs, so the fit computes them against the whole base.
    pub switching_buyers: Option<SwitchingBuyers>,
}

/// Buyers' switching-cost inputs: the features (those the table has) as columns, a row per
/// buyer. Only distributions of the switching costs computed from them reach the fit, so the
/// rows' order does not matter; the fit reads them one partition at a time (they grow with
/// the buyers), never merged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct SwitchingBuyers {
    pub features: Vec<String>,
    pub columns: Vec<Nullable<f64>>,
}

impl SwitchingBuyers {
    /// The switching-cost inputs of the customers with a BTYD summary (the buyers).
    fn of(f: &FeatureTable, per_customer: &[Option<Buyer>]) -> Self {
        let columns: Vec<(String, Vec<Option<f64>>)> = switching_inputs()
            .filter_map(|name| {
                let values = match f.column(name).ok()?.values {
                    Values::Bool(ref v) => v
                        .iter()
                        .map(|b| b.map(|b| f64::from(u8::from(b))))
                        .collect(),
                    _ => f.numeric(name).ok()?,
                };
                Some((name.to_string(), values))
            })
            .collect();
        let buyers: Vec<usize> = (0..f.len())
            .filter(|&i| per_customer[i].is_some())
            .collect();
        SwitchingBuyers {
            features: columns.iter().map(|c| c.0.clone()).collect(),
            columns: columns
                .iter()
                .map(|c| buyers.iter().map(|&i| c.1[i]).collect())
                .collect(),
        }
    }
}

/// Calls its argument with each partition's [`SwitchingBuyers`], one at a time.
pub(crate) type SwitchingSource<'a> = &'a mut dyn FnMut(
    &mut dyn FnMut(SwitchingBuyers) -> Result<(), EngineError>,
) -> Result<(), EngineError>;

/// Whether a loyalty condition takes a percentile of a switching-cost column.
fn percentile_of_switching(opts: &RunOptions) -> bool {
    opts.stages.as_ref().is_some_and(|(file, _)| {
        file.stages.iter().flat_map(|s| &s.conditions).any(|c| {
            c.value.is_none()
                && c.percentile.is_some()
                && SWITCHING_OUTPUTS.contains(&c.feature.as_str())
        })
    })
}

impl PartitionStats {
    /// The statistics of the customers of `f` (`backtest`: theirs, made from their orders).
    pub fn of(
        opts: &RunOptions,
        f: &FeatureTable,
        ids: &[String],
        partitions: u32,
        model_data: ModelData,
    ) -> Result<Self, EngineError> {
        // The sample, the switching buyers and the grouped summaries on one side, the segment,
        // loyalty and switching statistics on the other: independent reads of the table.
        let (buyers_side, others) = rayon::join(
            || -> Result<_, EngineError> {
                let per_customer = crate::stages::models::Btyd::of(f)?.summaries();
                let clusters = if opts.clusters.enabled {
                    Some(ClusterSample::of(
                        &opts.clusters,
                        f,
                        ids,
                        &per_customer,
                        partitions,
                    )?)
                } else {
                    None
                };
                let switching_buyers =
                    percentile_of_switching(opts).then(|| SwitchingBuyers::of(f, &per_customer));
                let buyers = grouped(per_customer.into_iter().flatten().map(|b| (b, 1)).collect());
                Ok((clusters, switching_buyers, buyers))
            },
            || -> Result<_, EngineError> {
                let segments = SegmentStats::of(f)?;
                let loyalty = match &opts.stages {
                    Some((file, _)) => Some(LoyaltyStats::of(file, f)?),
                    None => None,
                };
                Ok((segments, loyalty, SwitchingRefs::of(f)))
            },
        );
        let (clusters, switching_buyers, buyers) = buyers_side?;
        let (segments, loyalty, switching) = others?;
        Ok(PartitionStats {
            customers: f.len() as u64,
            buyers,
            segments,
            loyalty,
            model_data,
            clusters,
            switching,
            switching_buyers,
        })
    }

    /// The statistics of the union of the partitions' customers (but the switching buyers,
    /// which the fit reads partition by partition: see [`SwitchingSource`]).
    #[cfg(test)]
    pub fn merge(parts: Vec<PartitionStats>, fit_rows: usize) -> Result<Self, EngineError> {
        let mut merger = StatsMerger::default();
        for p in parts {
            merger.add(p);
        }
        merger.finish(fit_rows)
    }
}

/// Partitions' statistics folded in one at a time: memory holds the union so far and the
/// partition being added, not every partition at once.
#[derive(Default)]
pub(crate) struct StatsMerger {
    merged: Option<PartitionStats>,
    samples: Vec<ClusterSample>,
    model_data: Vec<ModelData>,
}

impl StatsMerger {
    /// Folds in a partition's statistics; returns its switching buyers (not merged).
    pub fn add(&mut self, mut p: PartitionStats) -> Option<SwitchingBuyers> {
        self.samples.extend(p.clusters.take());
        self.model_data.push(std::mem::take(&mut p.model_data));
        let switching_buyers = p.switching_buyers.take();
        self.merged = Some(match self.merged.take() {
            None => PartitionStats {
                buyers: grouped(p.buyers),
                ..p
            },
            Some(m) => {
                let loyalty = match (m.loyalty, p.loyalty) {
                    (Some(a), Some(b)) => Some(LoyaltyStats::merge(&[a, b])),
                    _ => None,
                };
                let mut buyers = m.buyers;
                buyers.extend(p.buyers);
                PartitionStats {
                    customers: m.customers + p.customers,
                    buyers: grouped(buyers),
                    segments: SegmentStats::merge(&[m.segments, p.segments]),
                    loyalty,
                    model_data: ModelData::default(),
                    clusters: None,
                    switching: SwitchingRefs::merge(&[m.switching, p.switching]),
                    switching_buyers: None,
                }
            }
        });
        switching_buyers
    }

    /// The union of every partition added.
    pub fn finish(self, fit_rows: usize) -> Result<PartitionStats, EngineError> {
        let mut merged = self.merged.unwrap_or_default();
        merged.model_data = ModelData::merge(self.model_data);
        merged.clusters = if self.samples.is_empty() {
            None
        } else {
            Some(ClusterSample::merge(self.samples, fit_rows)?)
        };
        Ok(merged)
    }
}

/// What the fit decides for every partition.
#[derive(Serialize, Deserialize)]
pub(crate) struct Fitted {
    /// With models.
    pub models: Option<FittedModels>,
    pub segments: SegmentCuts,
    /// With loyalty stages.
    pub loyalty: Option<LoyaltyCuts>,
    /// With clusters: the clustering, or why there is none this run.
    pub clusters: Option<Result<FittedClusters, String>>,
    /// The base's references for the switching costs.
    pub switching: SwitchingRefs,
}

/// Fits the models, cuts and clusters on the (merged) statistics of the whole customer base
/// (`as_of`, `warnings`: the clusters read the previous run's model).
pub(crate) fn fit(
    opts: &RunOptions,
    stats: &PartitionStats,
    switching_buyers: SwitchingSource<'_>,
    as_of: &str,
    warnings: &mut Warnings,
) -> Result<Fitted, EngineError> {
    let models = if opts.models.enabled {
        let inputs = ModelInputs::of_buyers(&stats.buyers);
        let day = patronage_input::parse_date(as_of).ok_or_else(|| EngineError::Internal {
            table: "models".into(),
            message: format!("as-of `{as_of}` is not a date"),
        })?;
        Some(models::fit_models(
            &opts.models,
            &inputs,
            &stats.model_data,
            day,
        )?)
    } else {
        None
    };
    // The base's p_alive and CLV, as the partitions will score them.
    let outputs: Option<(Distribution, Distribution)> = models
        .as_ref()
        .and_then(|m| m.buyer_distributions(&opts.models, &stats.buyers));
    let clv = match opts.value_by {
        ValueBasis::Clv => outputs.as_ref().map(|o| &o.1),
        ValueBasis::NetRevenue => None,
    };
    let segments = SegmentCuts::fit(&stats.segments, opts.value_tiers, clv);
    let loyalty = match (&opts.stages, &stats.loyalty) {
        (Some((file, _)), Some(l)) => {
            let mut l = l.clone();
            // The switching costs of every buyer against the whole base, a partition at a
            // time, into their distributions.
            if percentile_of_switching(opts) {
                let mut outputs: BTreeMap<&str, Distribution> = BTreeMap::new();
                switching_buyers(&mut |inputs: SwitchingBuyers| {
                    let rows = inputs.columns.first().map_or(0, Nullable::len);
                    let mut t = FeatureTable::new(rows);
                    for (name, column) in inputs.features.iter().zip(inputs.columns) {
                        if let Some(name) = switching_inputs().find(|n| n == name) {
                            t.push(name, "", Values::Float(column));
                        }
                    }
                    add_switching_costs_with(&mut t, &stats.switching);
                    for name in SWITCHING_OUTPUTS {
                        if let Ok(v) = t.numeric(name) {
                            let part = Distribution::of_present(&v);
                            let d = outputs.entry(name).or_default();
                            *d = Distribution::merge(&[std::mem::take(d), part]);
                        }
                    }
                    Ok(())
                })?;
                for (name, d) in outputs {
                    l.percentiles.insert(name.to_string(), d);
                }
            }
            Some(LoyaltyCuts::fit(
                file,
                &l,
                outputs.as_ref().map(|(p, c)| (p, c)),
            ))
        }
        _ => None,
    };
    let clusters = match &stats.clusters {
        Some(sample) => {
            let scorer = |buyers: &[Buyer]| match &models {
                Some(m) => m.buyer_outputs(&opts.models, buyers),
                None => (Vec::new(), Vec::new()),
            };
            let scored = outputs.is_some();
            Some(clusters::fit(
                &opts.clusters,
                sample,
                scored.then_some(&scorer as clusters::SampleScorer),
                &opts.out,
                as_of,
                warnings,
            )?)
        }
        None => None,
    };
    Ok(Fitted {
        models,
        segments,
        loyalty,
        clusters,
        switching: stats.switching.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Flags};
    use crate::stages::{self, Warnings};

    /// The bundled sample (orders, profiles, clicks): its run options and feature table.
    fn sample() -> (RunOptions, FeatureTable, Vec<String>) {
        let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data-samples");
        let out = std::env::temp_dir().join(format!("patronage-protocol-{}", std::process::id()));
        let path = |f: &str| Some(data.join(f).display().to_string());
        let opts = Config::default()
            .into_options(
                None,
                Flags {
                    orders: path("orders.csv"),
                    customers: path("customers.csv"),
                    clicks: path("clicks.csv"),
                    out: Some(out.clone()),
                    as_of: Some("2024-12-30".into()),
                    ..Flags::default()
                },
                0,
            )
            .expect("options");
        let (out_dir, _) = patronage_output::OutDir::open(&out).expect("out dir");
        let report = |_: stages::Event| {};
        let mut warnings = Warnings::new(&report);
        let mut ingest = stages::ingest::run(&opts, &out_dir, &mut warnings).expect("ingest");
        let features = stages::features::run(&mut ingest, false).expect("features");
        let ids = ingest.index.ids().to_vec();
        drop(out_dir);
        fs_err::remove_dir_all(&out).expect("clean up");
        (opts, features.table, ids)
    }

    #[test]
    fn buyer_keys_order_as_the_comparison() {
        let spends = [
            None,
            Some(-3.5),
            Some(-0.0),
            Some(0.0),
            Some(1e-300),
            Some(42.25),
            Some(f64::INFINITY),
        ];
        let mut buyers = Vec::new();
        for x in [0, 1, 3] {
            for t in [10, 400] {
                for m in spends {
                    buyers.push(Buyer {
                        x,
                        t_x: x * 2,
                        t,
                        m,
                    });
                }
            }
        }
        for a in &buyers {
            for b in &buyers {
                assert_eq!(a.key().cmp(&b.key()), a.cmp(b), "{a:?} {b:?}");
            }
        }
    }

    /// The statistics of customers split into partitions by the hash of their id, merged, are
    /// the statistics of all of them: so is everything the fit decides from them.
    #[test]
    fn partitions_merge_into_the_whole_bases_statistics_and_fit() {
        let (opts, table, ids) = sample();
        assert!(opts.stages.is_some(), "the sample runs loyalty stages");
        let mut whole =
            PartitionStats::of(&opts, &table, &ids, 1, ModelData::default()).expect("stats");
        let whole_switching = whole.switching_buyers.take().expect("switching buyers");
        let fit_rows = 150;
        let whole = PartitionStats {
            clusters: whole.clusters.map(|c| {
                crate::stages::clusters::ClusterSample::merge(vec![c], fit_rows).expect("one")
            }),
            ..whole
        };
        assert_eq!(
            whole.clusters.as_ref().map(|c| c.rows.len()),
            Some(fit_rows)
        );
        let buyers: u64 = whole.buyers.iter().map(|b| b.1).sum();
        assert!(
            buyers > 400 && whole.buyers.len() < buyers as usize,
            "one-time buyers group"
        );
        let report = |_: stages::Event| {};
        let fit_with = |stats: &PartitionStats, switching: Vec<SwitchingBuyers>| {
            let mut switching = switching.into_iter();
            fit(
                &opts,
                stats,
                &mut |visit| switching.try_for_each(&mut *visit),
                "2024-12-30",
                &mut Warnings::new(&report),
            )
            .expect("fit")
        };
        let whole_fit = fit_with(&whole, vec![whole_switching]);
        for n in [1u64, 3, 8] {
            let mut parts: Vec<PartitionStats> = (0..n)
                .map(|i| {
                    let rows: Vec<usize> = (0..ids.len())
                        .filter(|&r| patronage_segments::stable_hash(ids[r].as_bytes()) % n == i)
                        .collect();
                    let part_ids: Vec<String> = rows.iter().map(|&r| ids[r].clone()).collect();
                    PartitionStats::of(
                        &opts,
                        &table.select(&rows),
                        &part_ids,
                        n as u32,
                        ModelData::default(),
                    )
                    .expect("stats")
                })
                .collect();
            assert!(parts.iter().all(|p| p.customers > 0));
            let switching: Vec<SwitchingBuyers> = parts
                .iter_mut()
                .map(|p| p.switching_buyers.take().expect("switching buyers"))
                .collect();
            let merged = PartitionStats::merge(parts, fit_rows).expect("merge");
            assert_eq!(merged, whole, "{n} partitions");
            // The switching costs' percentiles, from the buyers read a partition at a time.
            let fitted = fit_with(&merged, switching);
            assert_eq!(
                format!("{:?}", fitted.loyalty),
                format!("{:?}", whole_fit.loyalty),
                "{n} partitions"
            );
        }
        let fitted = whole_fit;
        let loyalty = fitted.loyalty.expect("loyalty thresholds");
        // The shipped stage file's percentile conditions resolve on the sample.
        assert!(
            loyalty.percentiles.iter().all(|p| p.2.is_some()),
            "{loyalty:?}"
        );
        assert!(fitted.models.is_some());
        let clusters = fitted
            .clusters
            .expect("clusters enabled")
            .expect("clusters fitted");
        assert_eq!(
            clusters.manifest["fit_rows"], fit_rows,
            "every sampled buyer is clustered"
        );
    }
}
