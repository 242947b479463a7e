//! One config for the whole job: a TOML file whose sections mirror the pipeline stages, merged
//! with CLI flags (flags win) and checked before any data is read. Unknown keys are errors.
//!
//! `patronage.example.toml` at the repository root lists every setting at its default.
//!
//! ```toml
//! [run]
//! orders = "exports/orders/*.csv"
//! out = "warehouse/patronage"
//! as_of = "2024-06-30"
//!
//! [orders.columns]
//! customer_id = "CustomerID"
//!
//! [segments]
//! rules = "default"          # a shipped preset name, or a path to a rule table
//!
//! [segments.value_tiers]
//! top_share = 0.2
//! ```

use std::path::{Path, PathBuf};

use patronage_features::Day;
use patronage_input::{parse_date, ClicksSchema, CustomersSchema, OrdersSchema};
use patronage_segments::{RuleTable, TierParams};
use serde::{Deserialize, Serialize};

use crate::error::EngineError;
pub use crate::stages::clusters::ClustersConfig;
pub use crate::stages::loyalty::{ControlConfig, LoyaltyConfig};
use patronage_models::customer::ModelKind;
use patronage_output::TableFormat;
use patronage_segments::StageFile;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub run: RunConfig,
    #[serde(default)]
    pub orders: OrdersSchema,
    #[serde(default)]
    pub customers: CustomersSchema,
    #[serde(default)]
    pub clicks: ClicksSchema,
    #[serde(default)]
    pub segments: SegmentsConfig,
    #[serde(default)]
    pub models: ModelsConfig,
    #[serde(default)]
    pub clusters: ClustersConfig,
    #[serde(default)]
    pub loyalty: LoyaltyConfig,
}

/// Every `patronage run` flag, settable from the config.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub orders: Option<String>,
    /// Customer profiles (optional): a file, directory or glob.
    pub customers: Option<String>,
    /// Clickstream events (optional): a file, directory or glob.
    pub clicks: Option<String>,
    pub out: Option<PathBuf>,
    pub as_of: Option<String>,
    pub holdout_days: Option<u32>,
    /// How much memory the run may take (`"6GiB"`, `"512MiB"`, or bytes): without `partitions`,
    /// the partitions are chosen to fit it; in one partition it bounds the validated order lines
    /// (past it the orders are read in passes). Default: a quarter of the machine's RAM.
    pub memory_budget: Option<String>,
    /// Customer partitions the run works through one at a time (`run --partitions N`): memory
    /// holds one partition's customers; the tables are the same. Default 1.
    pub partitions: Option<u32>,
    /// How the tables are laid out: `"parquet"` (Hive-partitioned files, the default) or
    /// `"delta"` (a Delta Lake table per table).
    pub format: Option<TableFormat>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SegmentsConfig {
    /// A shipped preset name (`default`, `simple`) or a path to a rule table (relative to the
    /// config file).
    pub rules: String,
    /// What value tiers rank: `clv` (needs the models) or `net_revenue`.
    pub value_by: ValueBasis,
    pub value_tiers: TierParams,
    /// Campaign hold-outs: `segments.control_group`.
    pub control: ControlConfig,
}

/// The per-customer value behind value tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueBasis {
    Clv,
    NetRevenue,
}

impl Default for SegmentsConfig {
    fn default() -> Self {
        SegmentsConfig {
            rules: "default".into(),
            value_by: ValueBasis::Clv,
            value_tiers: TierParams::default(),
            control: ControlConfig::default(),
        }
    }
}

/// The score behind `churn_risk`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskBasis {
    /// P(at least one purchase within `horizon_days`): ranks one-time buyers by how long ago they
    /// bought, where `p_alive` is 1 for all of them.
    PPurchase,
    /// P(alive) from BG/NBD.
    PAlive,
}

impl RiskBasis {
    /// Index of the score in a churn-score row (p_alive, p_purchase, ...).
    pub(crate) fn column(self) -> usize {
        match self {
            RiskBasis::PAlive => 0,
            RiskBasis::PPurchase => 1,
        }
    }
}

/// `models.customer_model`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelChoice {
    #[default]
    Bgnbd,
    Mbgnbd,
    ParetoNbd,
    /// Chosen by a rolling-origin backtest inside the calibration period.
    Auto,
}

impl ModelChoice {
    /// The model, unless it is to be chosen.
    pub fn fixed(self) -> Option<ModelKind> {
        match self {
            ModelChoice::Bgnbd => Some(ModelKind::Bgnbd),
            ModelChoice::Mbgnbd => Some(ModelKind::Mbgnbd),
            ModelChoice::ParetoNbd => Some(ModelKind::ParetoNbd),
            ModelChoice::Auto => None,
        }
    }
}

/// `models.seasonality`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Seasonality {
    #[default]
    Off,
    MonthOfYear,
}

/// Model settings (docs/design.md §4).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Fit the customer-base model + Gamma-Gamma and write `churn_scores` (and `backtest` with a
    /// holdout).
    pub enabled: bool,
    /// The customer-base model: `"bgnbd"` (default), `"mbgnbd"`, `"pareto_nbd"`, or `"auto"`:
    /// the one with the lowest mean error over rolling origins inside the calibration period.
    pub customer_model: ModelChoice,
    /// `auto`: the rolling origins, each `horizon_days` before the next (the last one ends at
    /// the as-of date, or at the holdout's start).
    pub selection_origins: u32,
    /// `"month_of_year"`: adjust `expected_purchases` and `p_purchase` by a month-of-year index
    /// of purchase intensity estimated from the calibration period (needs a year and a half of
    /// history; off otherwise, and said so). Default `"off"`.
    pub seasonality: Seasonality,
    /// Horizon of `expected_purchases`, in days.
    pub horizon_days: u32,
    /// CLV horizon in months (30-day months).
    pub clv_months: u32,
    /// Yearly discount rate for CLV.
    pub annual_discount_rate: f64,
    /// Margin applied to expected spend in CLV.
    pub margin: f64,
    /// The score `churn_risk` bands: `p_purchase` (probability of a purchase within the horizon)
    /// or `p_alive`.
    pub risk_basis: RiskBasis,
    /// Cut points on that score for `churn_risk`: at or above `low` → low risk, at or above
    /// `medium` → medium, at or above `high` → high, below → lost.
    pub risk_low: f64,
    pub risk_medium: f64,
    pub risk_high: f64,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            enabled: true,
            customer_model: ModelChoice::Bgnbd,
            selection_origins: 3,
            seasonality: Seasonality::Off,
            horizon_days: 90,
            clv_months: 12,
            annual_discount_rate: 0.10,
            margin: 1.0,
            risk_basis: RiskBasis::PPurchase,
            // For p_purchase over the 90-day default horizon; for p_alive, 0.7 / 0.4 / 0.15 read
            // well.
            risk_low: 0.5,
            risk_medium: 0.2,
            risk_high: 0.05,
        }
    }
}

impl ModelsConfig {
    fn check(&self) -> Result<(), String> {
        if self.horizon_days == 0 || self.clv_months == 0 {
            return Err("models.horizon_days and models.clv_months must be positive".into());
        }
        if !(0.0..10.0).contains(&self.annual_discount_rate) {
            return Err(format!(
                "models.annual_discount_rate must be in [0, 10), got {}",
                self.annual_discount_rate
            ));
        }
        if !(1..=12).contains(&self.selection_origins) {
            return Err(format!(
                "models.selection_origins must be in 1..=12, got {}",
                self.selection_origins
            ));
        }
        if !(self.margin.is_finite() && self.margin >= 0.0) {
            return Err(format!("models.margin must be ≥ 0, got {}", self.margin));
        }
        let (l, m, h) = (self.risk_low, self.risk_medium, self.risk_high);
        if !(0.0 <= h && h <= m && m <= l && l <= 1.0) {
            return Err(format!("churn risk cut points must satisfy 0 ≤ risk_high ≤ risk_medium ≤ risk_low ≤ 1 (got {h}, {m}, {l})"));
        }
        Ok(())
    }
}

/// How the as-of date is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOfChoice {
    /// A given day.
    Fixed(Day),
    /// The day of the latest valid order that is not after `not_after` (the CLI passes today,
    /// so a mistyped far-future date cannot become the snapshot).
    LatestOrder { not_after: Day },
}

impl AsOfChoice {
    /// How the as-of day was chosen, as the manifest's `as_of_source` says it.
    pub fn source(&self) -> &'static str {
        match self {
            AsOfChoice::Fixed(_) => "given",
            AsOfChoice::LatestOrder { .. } => "latest_valid_order",
        }
    }
}

/// The checked options of one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub orders: String,
    /// Customer profiles, when given.
    pub customers: Option<String>,
    pub customers_schema: CustomersSchema,
    /// Clickstream events, when given.
    pub clicks: Option<String>,
    pub clicks_schema: ClicksSchema,
    pub out: PathBuf,
    pub as_of: AsOfChoice,
    pub holdout_days: Option<u32>,
    /// Bytes the validated order lines may take at once (`None`: no bound).
    pub memory_budget: Option<u64>,
    /// Customer partitions worked through one at a time in this process (1: the whole base
    /// at once).
    pub partitions: u32,
    /// Neither `--partitions` nor `run.partitions` was given: the run chooses them from the
    /// inputs' size and the memory budget.
    pub partitions_auto: bool,
    /// How the tables are laid out in `out`.
    pub format: TableFormat,
    pub schema: OrdersSchema,
    pub rules: RuleTable,
    pub rules_source: String,
    pub value_tiers: TierParams,
    pub value_by: ValueBasis,
    pub models: ModelsConfig,
    pub clusters: ClustersConfig,
    /// Loyalty stages (`None`: disabled) and where the stage file came from.
    pub stages: Option<(StageFile, String)>,
    pub control: ControlConfig,
    pub config_path: Option<PathBuf>,
    /// Today's date as the caller sees it, only to warn about an as-of in the future.
    pub today: Day,
}

/// The `patronage run` flags that a config can also set; a flag wins over the config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Flags {
    pub orders: Option<String>,
    pub customers: Option<String>,
    pub clicks: Option<String>,
    pub out: Option<PathBuf>,
    pub as_of: Option<String>,
    pub holdout_days: Option<u32>,
    /// `--memory-budget`.
    pub memory_budget: Option<String>,
    /// `--k`: the number of clusters, forced.
    pub k: Option<usize>,
    /// `--partitions`.
    pub partitions: Option<u32>,
    /// `--format`.
    pub format: Option<TableFormat>,
}

impl Config {
    /// Parses a config file; errors name the file and the offending key.
    pub fn from_file(path: &Path) -> Result<Self, EngineError> {
        let text = fs_err::read_to_string(path).map_err(|e| EngineError::InvalidConfig {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| EngineError::InvalidConfig {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Merges CLI flags over the config and checks everything, loading the rule table.
    pub fn into_options(
        self,
        config_path: Option<&Path>,
        flags: Flags,
        today: Day,
    ) -> Result<RunOptions, EngineError> {
        let Flags {
            orders,
            customers,
            clicks,
            out,
            as_of,
            holdout_days,
            memory_budget,
            k,
            partitions,
            format,
        } = flags;
        let where_ = config_path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "options".into());
        let bad = |message: String| EngineError::InvalidConfig {
            path: where_.clone(),
            message,
        };
        let orders = orders.or(self.run.orders).ok_or_else(|| {
            EngineError::Usage(
                "no orders input: pass --orders PATH or set run.orders in the config".into(),
            )
        })?;
        let out = out.or(self.run.out).ok_or_else(|| {
            EngineError::Usage(
                "no output directory: pass --out DIR or set run.out in the config".into(),
            )
        })?;
        let parse_as_of = |text: &str| {
            parse_date(text)
                .ok_or_else(|| format!("as-of `{text}` is not a date (expected YYYY-MM-DD)"))
        };
        let as_of = match (as_of, self.run.as_of) {
            (Some(flag), _) => AsOfChoice::Fixed(parse_as_of(&flag).map_err(EngineError::Usage)?),
            (None, Some(text)) => {
                AsOfChoice::Fixed(parse_as_of(&text).map_err(|m| bad(format!("run.as_of: {m}")))?)
            }
            (None, None) => AsOfChoice::LatestOrder { not_after: today },
        };
        let memory_budget = match (memory_budget, &self.run.memory_budget) {
            (Some(flag), _) => Some(
                parse_size(&flag)
                    .map_err(|m| EngineError::Usage(format!("--memory-budget: {m}")))?,
            ),
            (None, Some(text)) => {
                Some(parse_size(text).map_err(|m| bad(format!("run.memory_budget: {m}")))?)
            }
            (None, None) => total_memory().map(|bytes| bytes / 4),
        };
        let partitions_auto = partitions.is_none() && self.run.partitions.is_none();
        let partitions = match (partitions, self.run.partitions) {
            (Some(0), _) => {
                return Err(EngineError::Usage("--partitions must be at least 1".into()))
            }
            (Some(n), _) => n,
            (None, Some(0)) => return Err(bad("run.partitions must be at least 1".into())),
            (None, n) => n.unwrap_or(1),
        };
        if holdout_days == Some(0) {
            return Err(EngineError::Usage(
                "--holdout-days must be at least 1".into(),
            ));
        }
        if self.run.holdout_days == Some(0) {
            return Err(bad(
                "run.holdout_days must be at least 1 (leave it out for no backtest)".into(),
            ));
        }
        patronage_input::check_schema(&self.orders).map_err(bad)?;
        let base = config_path.and_then(Path::parent).unwrap_or(Path::new(""));
        self.clicks.check().map_err(bad)?;
        // A path in the config resolves against the config file; a flag against the cwd.
        let from_config = |c: &String| {
            if Path::new(c).is_absolute() || c.contains(['*', '?']) {
                c.clone()
            } else {
                base.join(c).display().to_string()
            }
        };
        let customers = customers.or_else(|| self.run.customers.as_ref().map(from_config));
        let clicks = clicks.or_else(|| self.run.clicks.as_ref().map(from_config));
        self.segments.value_tiers.check().map_err(bad)?;
        self.models.check().map_err(bad)?;
        let mut clusters = self.clusters;
        if k.is_some() {
            clusters.k = k;
        }
        clusters.check().map_err(|m| match k {
            Some(_) => EngineError::Usage(m),
            None => bad(m),
        })?;
        self.segments.control.check().map_err(bad)?;
        let stages = if self.loyalty.enabled {
            let (file, source) =
                crate::stages::loyalty::load_stage_file(&self.loyalty.rules, base)?;
            let check = file.check(crate::stages::loyalty::KNOWN_FEATURES);
            if !check.is_ok() {
                return Err(bad(format!(
                    "stage file {source} is not usable: {check:?}; run `patronage rules check {}`",
                    self.loyalty.rules
                )));
            }
            Some((file, source))
        } else {
            None
        };
        let (rules, rules_source) = load_rules(&self.segments.rules, base)?;
        let check = rules.check();
        if !check.is_ok() {
            return Err(bad(format!(
                "rule table {rules_source} is not usable: {} unmatched cell(s), unreachable rule(s): [{}]; run `patronage rules check` for details",
                check.unmatched.len(),
                check.unreachable.join(", ")
            )));
        }
        Ok(RunOptions {
            orders,
            customers,
            customers_schema: self.customers,
            clicks,
            clicks_schema: self.clicks,
            out,
            as_of,
            holdout_days: holdout_days.or(self.run.holdout_days),
            memory_budget,
            partitions,
            partitions_auto,
            format: format.or(self.run.format).unwrap_or_default(),
            schema: self.orders,
            rules,
            rules_source,
            value_tiers: self.segments.value_tiers,
            value_by: self.segments.value_by,
            models: self.models,
            clusters,
            stages,
            control: self.segments.control,
            config_path: config_path.map(Path::to_path_buf),
            today,
        })
    }
}

/// A size: a number of bytes, or a number with a unit (`KB`, `MB`, `GB`, `TB` in powers of 1000,
/// `KiB`, `MiB`, `GiB`, `TiB` in powers of 1024; case-insensitive). Zero is refused.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = (&t[..split], t[split..].trim());
    let scale: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024f64.powi(2),
        "gib" => 1024f64.powi(3),
        "tib" => 1024f64.powi(4),
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}` (use e.g. 512MiB or 8GiB)"
            ))
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size (use e.g. 512MiB or 8GiB)"))?;
    let bytes = value * scale;
    if !(1.0..1.8e19).contains(&bytes) {
        return Err(format!("`{text}` must be at least one byte"));
    }
    Ok(bytes as u64)
}

/// The machine's RAM in bytes (`MemTotal`; `None` off Linux).
fn total_memory() -> Option<u64> {
    let info = fs_err::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A preset name, or a path to a TOML rule table (relative paths against `base`).
pub fn load_rules(spec: &str, base: &Path) -> Result<(RuleTable, String), EngineError> {
    if patronage_segments::PRESETS.iter().any(|p| p.0 == spec) {
        return Ok((RuleTable::preset(spec)?, format!("preset:{spec}")));
    }
    let path = if Path::new(spec).is_absolute() {
        PathBuf::from(spec)
    } else {
        base.join(spec)
    };
    let text = fs_err::read_to_string(&path).map_err(|e| EngineError::InvalidConfig {
        path: path.display().to_string(),
        message: format!(
            "cannot read rule table ({e}); shipped presets: {}",
            patronage_segments::PRESETS
                .iter()
                .map(|p| p.0)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })?;
    let source = path.display().to_string();
    Ok((RuleTable::from_toml(&text, &source)?, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped reference config documents every setting at its default.
    #[test]
    fn example_config_is_the_defaults() {
        let text = include_str!("../../../patronage.example.toml");
        let config: Config = toml::from_str(text).unwrap();
        assert_eq!(config, Config::default());
        for key in [
            "holdout_days",
            "timestamp_format",
            "discount_amount",
            "status_values",
            "value_by",
            "middle_share",
            "annual_discount_rate",
            "risk_basis",
            "risk_high",
            "separator",
            "null_values",
            "returned_counts_as_purchase",
            "customer_model",
            "seasonality",
            "format",
        ] {
            assert!(
                text.contains(key),
                "patronage.example.toml does not mention {key}"
            );
        }
    }

    #[test]
    fn sizes_read_with_their_units() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("8 GiB"), Ok(8 << 30));
        assert_eq!(parse_size("1.5gb"), Ok(1_500_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        for bad in ["", "0", "-1GiB", "8 bananas", "GiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_keys_are_errors_and_flags_win() {
        assert!(toml::from_str::<Config>("[run]\norderz = 'x'").is_err());
        assert!(toml::from_str::<Config>("[orders.columns]\ncustomer = 'x'").is_err());
        let c: Config = toml::from_str("[run]\norders = 'a.csv'\nout = 'o'\nas_of = '2024-01-31'\n[orders.columns]\ncustomer_id = 'CustomerID'").unwrap();
        assert_eq!(c.orders.columns.customer_id.as_deref(), Some("CustomerID"));
        let o = c
            .into_options(
                None,
                Flags {
                    orders: Some("b.csv".into()),
                    ..Flags::default()
                },
                0,
            )
            .unwrap();
        assert_eq!(o.orders, "b.csv");
        assert_eq!(
            o.as_of,
            AsOfChoice::Fixed(parse_date("2024-01-31").unwrap())
        );
    }

    fn flags(orders: &str, out: &str, as_of: Option<&str>) -> Flags {
        Flags {
            orders: Some(orders.into()),
            out: Some(out.into()),
            as_of: as_of.map(String::from),
            ..Flags::default()
        }
    }

    #[test]
    fn bad_values_are_caught_before_reading_data() {
        let c: Config = toml::from_str("[segments.value_tiers]\ntop_share = 1.5").unwrap();
        assert!(c.into_options(None, flags("a", "o", None), 0).is_err());
        let c = Config::default();
        assert!(c
            .into_options(None, flags("a", "o", Some("2024-02-30")), 0)
            .is_err());
    }
}
