//! Segments from per-customer features (docs/design.md §5): tie-aware RFM scores, named RFM segments from
//! a rule table that is data, value tiers by the 80/20 rule, and the per-segment summary.
//!
//! Pure compute on slices: nothing here reads files (rule tables arrive as TOML text) or the clock.
//! Loyalty stages (Oliver 1999) from a stage file that is data, the Dick & Basu and Reinartz &
//! Kumar cross-checks and control-group assignment live in `loyalty.rs`; clusters (linfa) have
//! a crate of their own.

mod distribution;
mod exact;
mod loyalty;
mod rules;
mod scores;
mod summary;
mod tiers;

pub use distribution::{Distribution, ScoreCuts, TierCuts};
pub use exact::ExactSum;
pub use loyalty::{
    assign_stages, assign_stages_with, dick_basu, fnv1a64, in_control, percentile_stats,
    reinartz_kumar, stable_hash, ConditionOutcome, Op, StageCheck, StageFile, Stages,
    INSUFFICIENT_HISTORY, PROSPECT as STAGE_PROSPECT, STAGE_PRESETS,
};
pub use rules::{CellCheck, Rule, RuleError, RuleTable, ScoreRange, PRESETS};
pub use scores::{occupancy, score_quintiles, Direction};
pub use summary::{summarize, summarize_part, Summarizer, SummaryPart, SummaryRow};
pub use tiers::{value_tiers, TierParams, ValueTier};
