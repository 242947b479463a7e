//! Segments from per-customer features (DESIGN §5): tie-aware RFM scores, named RFM segments from
//! a rule table that is data, value tiers by the 80/20 rule, and the per-segment summary.
//!
//! Pure compute on slices: nothing here reads files (rule tables arrive as TOML text) or the clock.
//! Not here: clusters (linfa) and loyalty stages, which will sit beside these modules.

mod rules;
mod scores;
mod summary;
mod tiers;

pub use rules::{CellCheck, Rule, RuleError, RuleTable, ScoreRange, PRESETS};
pub use scores::{occupancy, score_quintiles, Direction};
pub use summary::{summarize, SummaryRow};
pub use tiers::{value_tiers, TierParams, ValueTier};
