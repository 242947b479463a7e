//! The nightly job: one checked [`Config`], the pipeline stages in order (ingest → features →
//! models → segments → output) and the run manifest. The `patronage` binary is a thin CLI over
//! [`run`]; examples and benchmarks call it the same way.
//!
//! Invariant: only the as-of date defines time. Nothing here reads the clock; the CLI may pass a
//! bound for the default as-of.

mod config;
mod dictionary;
mod error;
mod job;
mod local;
mod phases;
mod plan;
mod protocol;
mod stages;
mod tables;

pub use config::{
    load_rules, AsOfChoice, Config, Flags, ModelsConfig, RunConfig, RunOptions, SegmentsConfig,
    ValueBasis,
};
pub use error::EngineError;
pub use job::{run, RunSummary};
pub use patronage_clusters::Clusterer;
pub use patronage_output::TableFormat;
pub use phases::{fit, partial, publish, score, Partition};
pub use stages::loyalty::{load_stage_file, KNOWN_FEATURES};
pub use stages::models::RISK_BANDS;
pub use stages::models::{model_inputs, ModelInputs};
pub use stages::segments::NO_PURCHASE;
pub use stages::{Event, Stage};
pub use tables::TABLES;

/// Engine version recorded in every manifest.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs `op` on polars' thread pool, so that polars' parallel work (Parquet decoding and
/// encoding, casts) and the engine's own (rayon) share one set of worker threads. On their own
/// they are two pools, each as large as the machine: while a chunk is decoded ahead and the
/// previous one parsed, four threads compete for two cores and an idle pool's threads spin. At
/// 10M order rows the whole job took 4.80 → 4.48 s with integer ids and 6.07 → 5.79 s with
/// text ids (medians of 4 interleaved pairs), with less system time. The CLI runs every
/// command through this, and so do the benchmarks.
pub fn on_polars_pool<R: Send>(op: impl FnOnce() -> R + Send) -> R {
    polars_core::runtime::THREAD_POOL.install(op)
}
