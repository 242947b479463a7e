//! Argument definitions (clap derive) and the handlers of each subcommand.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use patronage_engine::{Config, Event};

use crate::Exit;

/// Patronage: turns nightly order exports into per-customer RFM features, churn scores and
/// segments, written as Parquet tables for BI tools.
#[derive(Debug, Parser)]
#[command(
    name = "patronage",
    version,
    after_help = "Example:\n  patronage run --orders data-samples/orders.csv --customers data-samples/customers.csv --out out\n  patronage rules check default"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the nightly job for one as-of date and publish its tables.
    #[command(
        after_help = "Example:\n  patronage run --orders 'exports/orders-*.csv' --out warehouse --as-of 2024-06-30\n\nTables go to OUT/<table>/run_date=<as-of>/part-0.parquet, the manifest to OUT/manifests/<as-of>.json."
    )]
    Run(RunJobArgs),
    /// Check or list RFM segment rule tables.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Scale-out, phase 1 of 3: the statistics of one partition of the customers.
    #[command(
        after_help = "The run as partial → fit → score → publish, each phase a pure function of its inputs and\nof the work directory, for a cluster (see docs/scale-out.md):\n  for i in 0 1 2; do patronage partial --partition $i/3 --work W --orders o.csv --as-of 2024-12-31; done\n  patronage fit --partitions 3 --work W --orders o.csv --out OUT --as-of 2024-12-31\n  for i in 0 1 2; do patronage score --partition $i/3 --work W --orders o.csv --as-of 2024-12-31; done\n  patronage publish --partitions 3 --work W --orders o.csv --out OUT --as-of 2024-12-31"
    )]
    Partial(PhaseArgs),
    /// Scale-out, phase 2: merge the partitions' statistics, fit the models, cut points and
    /// clusters (reads OUT's previous cluster model).
    Fit(PhaseArgs),
    /// Scale-out, phase 3: score one partition's customers with the fit.
    Score(PhaseArgs),
    /// Scale-out, last step: publish every partition's tables as one run in OUT, atomically.
    Publish(PhaseArgs),
    /// Write the analyst's report of a run: OUT/reports/<as-of>.html (one self-contained file).
    #[command(
        after_help = "Example:\n  patronage report --out warehouse                 # the latest run\n  patronage report --out warehouse --as-of 2024-06-30"
    )]
    Report(ReportArgs),
    /// Write realistic synthetic orders (seeded) for tests and benchmarks.
    #[command(
        after_help = "Example:\n  patronage generate --customers 100000 --out /tmp/shop --format parquet"
    )]
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Orders: a CSV or Parquet file, a directory, or a quoted glob.
    #[arg(long, value_name = "PATH", help_heading = "Inputs")]
    pub orders: Option<String>,
    /// Customer profiles (optional): signup, membership tier, points, saved payment methods...
    /// A CSV or Parquet file, a directory, or a quoted glob.
    #[arg(long, value_name = "PATH", help_heading = "Inputs")]
    pub customers: Option<String>,
    /// Clickstream events (optional): page views, product views, carts, purchases... A CSV or
    /// Parquet file, a directory, or a quoted glob.
    #[arg(long, value_name = "PATH", help_heading = "Inputs")]
    pub clicks: Option<String>,
    /// TOML config: column mapping, rule tables, model settings and any of these flags.
    #[arg(long, value_name = "FILE", help_heading = "Inputs")]
    pub config: Option<PathBuf>,
    /// Output directory (created if missing).
    #[arg(long, value_name = "DIR", help_heading = "Outputs")]
    pub out: Option<PathBuf>,
    /// Table layout: Hive-partitioned Parquet (default), or a Delta Lake table per table (one
    /// commit per table per run; a rerun replaces its as-of's partition).
    #[arg(
        long = "format",
        value_enum,
        value_name = "FORMAT",
        help_heading = "Outputs"
    )]
    pub table_format: Option<TableFormatArg>,
    /// Snapshot date YYYY-MM-DD; later orders are ignored. Default: the latest valid order day
    /// (not after today).
    #[arg(long, value_name = "DATE", help_heading = "Run")]
    pub as_of: Option<String>,
    /// Backtest: fit on orders up to as-of − N days and compare predictions with the last N days.
    #[arg(long, value_name = "N", help_heading = "Run", value_parser = clap::value_parser!(u32).range(1..))]
    pub holdout_days: Option<u32>,
    /// Memory the run may take (e.g. 4GiB, 512MiB). Without --partitions, a run whose inputs
    /// would take more works through customer partitions chosen to fit; in one partition it
    /// bounds the order lines held at once (read in passes). Same tables. Default: a quarter of
    /// the RAM.
    #[arg(long, value_name = "SIZE", help_heading = "Run")]
    pub memory_budget: Option<String>,
    /// Skip the churn models (no `churn_scores`; value tiers rank net revenue).
    #[arg(long, help_heading = "Run")]
    pub no_models: bool,
    /// Number of behavioural clusters (default: chosen in clusters.k_min..k_max).
    #[arg(long, value_name = "N", help_heading = "Run")]
    pub k: Option<usize>,
    /// Skip the behavioural clusters (no `cluster_profiles`; the cluster columns are null).
    #[arg(long, help_heading = "Run")]
    pub no_clusters: bool,
    /// Skip the loyalty stages (no `loyalty_stages`; control groups are still drawn).
    #[arg(long, help_heading = "Run")]
    pub no_loyalty: bool,
    /// Clustering algorithm once k is chosen: k-means, or a Gaussian mixture (soft membership).
    #[arg(long, value_enum, help_heading = "Run")]
    pub clusterer: Option<ClustererArg>,
    /// No progress on stderr.
    #[arg(long, short, help_heading = "Display")]
    pub quiet: bool,
    /// Print the run summary as JSON on stdout.
    #[arg(long, help_heading = "Display")]
    pub json: bool,
}

/// `patronage run`: the run's arguments and how many customer partitions it works through.
#[derive(Debug, Args)]
pub struct RunJobArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Work through the customers in N partitions, one at a time: memory holds one partition's
    /// customers (about 1/N of the base) plus one pass over the orders; the tables are the same.
    /// The inputs are read once and routed to OUT/.patronage/partitions/ (removed after).
    #[arg(long, value_name = "N", help_heading = "Run", value_parser = clap::value_parser!(u32).range(1..))]
    pub partitions: Option<u32>,
    /// Also write the analyst's report, OUT/reports/<as-of>.html, once the run is published.
    #[arg(long, help_heading = "Outputs")]
    pub report: bool,
}

/// `patronage report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The output directory of the runs.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The run date to report on (default: the latest run in OUT).
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<String>,
}

/// A scale-out phase: the run's arguments, the work directory, and the partition.
#[derive(Debug, Args)]
pub struct PhaseArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Work directory the phases exchange their files in (shared by every partition).
    #[arg(long, value_name = "DIR", help_heading = "Scale-out")]
    pub work: PathBuf,
    /// This partition, i/n: the customers whose id hashes to i of n (partial, score).
    #[arg(long, value_name = "I/N", help_heading = "Scale-out")]
    pub partition: Option<patronage_engine::Partition>,
    /// The number of partitions (fit, publish).
    #[arg(long, value_name = "N", help_heading = "Scale-out")]
    pub partitions: Option<u32>,
    /// The inputs hold only this partition's rows, routed by stable_hash(customer_id) mod n
    /// (partial, score): every customer they name is kept, every rejected row reported.
    #[arg(long, help_heading = "Scale-out")]
    pub prepartitioned: bool,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Prove a rule table matches all 125 (R,F,M) cells and has no unreachable rule.
    Check {
        /// A shipped preset name or a path to a TOML rule table.
        table: String,
    },
    /// List the shipped presets.
    List,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ClustererArg {
    Kmeans,
    Gmm,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TableFormatArg {
    Parquet,
    Delta,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Csv,
    /// Every column as text, as many exports are.
    Parquet,
    /// Typed columns: integer customer and order ids, a timestamp, float amounts (a malformed
    /// cell becomes a null).
    ParquetTyped,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Number of customers.
    #[arg(long, default_value_t = 1000)]
    pub customers: usize,
    /// Output directory; writes orders.csv or orders.parquet, customers.csv (profiles) and
    /// clicks.csv or clicks.parquet (the clickstream, in the orders' format).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Random seed: the same seed gives the same files.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, value_enum, default_value_t = FormatArg::Csv)]
    pub format: FormatArg,
    /// First day of the generated window (YYYY-MM-DD).
    #[arg(long, default_value = "2023-01-01")]
    pub start: String,
    /// Length of the window in days.
    #[arg(long, default_value_t = 730)]
    pub days: u32,
    /// Share of malformed rows (bad dates, non-numeric amounts, missing ids).
    #[arg(long, default_value_t = 0.001)]
    pub malformed_share: f64,
    /// Mean purchases per customer per year while active (BG/NBD λ averaged over customers;
    /// default 2.28, CDNOW-like). Raise it, with a lower --dropout, for shops with more orders
    /// per customer.
    #[arg(long, value_name = "PER_YEAR")]
    pub purchase_rate: Option<f64>,
    /// Mean chance that a customer becomes inactive after a purchase (BG/NBD p averaged over
    /// customers; default 0.24).
    #[arg(long, value_name = "SHARE")]
    pub dropout: Option<f64>,
    /// Write no clickstream (about 5 events per order row: the largest file by far).
    #[arg(long)]
    pub no_clicks: bool,
    /// Seasonal purchase rates: a retail year (January ×0.68 … December ×1.76 of the mean
    /// rate), for testing seasonality adjustments against a known pattern.
    #[arg(long)]
    pub seasonal: bool,
    /// Share of customers (and prospects, anonymous visitors) that browse online: a clickstream
    /// of about that share of the full one.
    #[arg(long, value_name = "SHARE", default_value_t = 1.0)]
    pub click_share: f64,
}

fn today() -> i32 {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0);
    days as i32
}

fn spinner(quiet: bool) -> ProgressBar {
    let target = if quiet || !std::io::stderr().is_terminal() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let bar = ProgressBar::with_draw_target(None, target);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// The run options of `args` (config file, then flags).
fn options(args: RunArgs) -> anyhow::Result<patronage_engine::RunOptions> {
    options_with(args, None)
}

/// [`options`] with `--partitions` (`run` only).
fn options_with(
    args: RunArgs,
    partitions: Option<u32>,
) -> anyhow::Result<patronage_engine::RunOptions> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if args.no_models {
        config.models.enabled = false;
    }
    if args.no_clusters {
        config.clusters.enabled = false;
    }
    if args.no_loyalty {
        config.loyalty.enabled = false;
    }
    if let Some(c) = args.clusterer {
        config.clusters.clusterer = match c {
            ClustererArg::Kmeans => patronage_engine::Clusterer::Kmeans,
            ClustererArg::Gmm => patronage_engine::Clusterer::Gmm,
        };
    }
    let flags = patronage_engine::Flags {
        orders: args.orders,
        customers: args.customers,
        clicks: args.clicks,
        out: args.out,
        as_of: args.as_of,
        holdout_days: args.holdout_days,
        memory_budget: args.memory_budget,
        k: args.k,
        partitions,
        format: args.table_format.map(|f| match f {
            TableFormatArg::Parquet => patronage_engine::TableFormat::Parquet,
            TableFormatArg::Delta => patronage_engine::TableFormat::Delta,
        }),
    };
    Ok(config.into_options(args.config.as_deref(), flags, today())?)
}

pub fn run(args: RunJobArgs) -> anyhow::Result<Exit> {
    let (quiet, json, report) = (args.run.quiet, args.run.json, args.report);
    let opts = options_with(args.run, args.partitions)?;
    let summary = with_progress(quiet, |report| patronage_engine::run(&opts, report))?;
    let exit = print_summary(&summary, json)?;
    if report {
        let path = patronage_report::write(&opts.out, Some(&summary.as_of))?;
        if !json {
            writeln!(
                std::io::stdout().lock(),
                "{:<20}{:>13}  {}",
                "report",
                "",
                path.display()
            )?;
        }
    }
    Ok(exit)
}

/// `patronage report`: prints the report's path.
pub fn report(args: ReportArgs) -> anyhow::Result<Exit> {
    let path = patronage_report::write(&args.out, args.as_of.as_deref())?;
    writeln!(std::io::stdout().lock(), "{}", path.display())?;
    Ok(Exit::Ok)
}

/// Runs `f` with a spinner on stderr that shows the stage, and warnings printed as they come.
fn with_progress<T>(
    quiet: bool,
    f: impl FnOnce(&dyn Fn(Event)) -> Result<T, patronage_engine::EngineError>,
) -> anyhow::Result<T> {
    let bar = spinner(quiet);
    let phase = std::cell::RefCell::new(String::new());
    let result = f(&|event: Event| match event {
        Event::Stage(stage) => bar.set_message(format!("{}{}", phase.borrow(), stage.as_str())),
        Event::Phase(p) => {
            *phase.borrow_mut() = format!("{p}: ");
            bar.set_message(p.to_string());
        }
        // Warnings always reach stderr (even with --quiet): they say something may be wrong.
        Event::Warning(w) => bar.suspend(|| {
            let _ = writeln!(std::io::stderr(), "warning: {w}");
        }),
    });
    bar.finish_and_clear();
    Ok(result?)
}

/// A scale-out phase (`partial`, `fit`, `score`, `publish`).
pub fn phase(name: &str, args: PhaseArgs) -> anyhow::Result<Exit> {
    let (quiet, json) = (args.run.quiet, args.run.json);
    let opts = options(args.run)?;
    let partition = || {
        args.partition
            .map(|p| patronage_engine::Partition {
                prepartitioned: args.prepartitioned,
                ..p
            })
            .ok_or_else(|| anyhow::anyhow!("`patronage {name}` needs --partition I/N"))
    };
    let partitions = || {
        args.partitions
            .filter(|n| *n > 0)
            .ok_or_else(|| anyhow::anyhow!("`patronage {name}` needs --partitions N (N ≥ 1)"))
    };
    let work = &args.work;
    let written = match name {
        "partial" => {
            let p = partition()?;
            with_progress(quiet, |r| patronage_engine::partial(&opts, p, work, r))?
        }
        "fit" => {
            let n = partitions()?;
            with_progress(quiet, |r| patronage_engine::fit(&opts, n, work, r))?
        }
        "score" => {
            let p = partition()?;
            with_progress(quiet, |r| patronage_engine::score(&opts, p, work, r))?
        }
        _ => {
            let n = partitions()?;
            let summary = with_progress(quiet, |r| patronage_engine::publish(&opts, n, work, r))?;
            return print_summary(&summary, json);
        }
    };
    writeln!(std::io::stdout().lock(), "{}", written.display())?;
    Ok(Exit::Ok)
}

/// Prints what a run published (a table per line, or JSON).
fn print_summary(summary: &patronage_engine::RunSummary, json: bool) -> anyhow::Result<Exit> {
    let args_json = json;
    let mut out = std::io::stdout().lock();
    if args_json {
        let tables: Vec<serde_json::Value> = summary
            .tables
            .iter()
            .map(
                |(name, path, rows)| serde_json::json!({"table": name, "rows": rows, "path": path}),
            )
            .collect();
        let json = serde_json::json!({
            "as_of": summary.as_of,
            "customers": summary.customers,
            "rows_read": summary.rows_read,
            "rows_rejected": summary.rows_rejected,
            "prospects": summary.prospects,
            "profile_rows": summary.profile_rows.map(|(read, rejected)| serde_json::json!({"read": read, "rejected": rejected})),
            "click_rows": summary.click_rows.map(|(read, rejected)| serde_json::json!({"read": read, "rejected": rejected})),
            "tables": tables,
            "manifest": summary.manifest,
            "warnings": summary.warnings,
            "models_failed": summary.models_failed,
        });
        writeln!(out, "{json}")?;
    } else {
        let mut profiles = String::new();
        if let Some((read, rejected)) = summary.profile_rows {
            profiles.push_str(&format!(", {read} profile rows ({rejected} rejected)"));
        }
        if let Some((read, rejected)) = summary.click_rows {
            profiles.push_str(&format!(", {read} click events ({rejected} rejected)"));
        }
        if summary.profile_rows.is_some() || summary.click_rows.is_some() {
            profiles.push_str(&format!(
                "; {} prospects without an order",
                summary.prospects
            ));
        }
        writeln!(
            out,
            "as-of {}: {} customers from {} order rows ({} rejected){profiles}",
            summary.as_of, summary.customers, summary.rows_read, summary.rows_rejected
        )?;
        for (name, path, rows) in &summary.tables {
            writeln!(out, "{name:<18} {rows:>9} rows  {}", path.display())?;
        }
        writeln!(
            out,
            "{:<18} {:>9}       {}",
            "manifest",
            "",
            summary.manifest.display()
        )?;
    }
    if let Some(why) = &summary.models_failed {
        writeln!(
            std::io::stderr(),
            "error: models failed (exit code 4; the other tables were published): {why}"
        )?;
        return Ok(Exit::ModelsFailed);
    }
    Ok(Exit::Ok)
}

/// Whether `spec` names a loyalty stage file (a shipped stage preset, or TOML with `[[stage]]`).
// Only a peek: a read error is dropped here (the real load reports it with the path).
#[allow(clippy::disallowed_methods)]
fn is_stage_file(spec: &str) -> bool {
    patronage_segments::STAGE_PRESETS
        .iter()
        .any(|p| p.0 == spec)
        || std::fs::read_to_string(spec).is_ok_and(|t| t.contains("[[stage]]"))
}

/// `rules check` of a stage file: unknown features, contradictory thresholds, unreachable stages.
fn stage_check(spec: &str) -> anyhow::Result<Exit> {
    let (file, source) = patronage_engine::load_stage_file(spec, std::path::Path::new(""))?;
    let check = file.check(patronage_engine::KNOWN_FEATURES);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{source}: {} stages", file.stages.len())?;
    for stage in &file.stages {
        writeln!(
            out,
            "  {:<12} {} conditions, at least {} evidence",
            stage.name,
            stage.conditions.len(),
            stage.min_evidence
        )?;
    }
    if check.is_ok() {
        writeln!(
            out,
            "ok: every feature known, no contradiction, every stage reachable"
        )?;
        return Ok(Exit::Ok);
    }
    for (what, list) in [
        ("unknown feature", &check.unknown_features),
        ("contradictory thresholds", &check.contradictions),
        ("unreachable stage", &check.unreachable),
        ("problem", &check.problems),
    ] {
        for item in list {
            writeln!(out, "{what}: {item}")?;
        }
    }
    anyhow::bail!("{source}: stage file check failed")
}

pub fn rules_check(spec: &str) -> anyhow::Result<Exit> {
    if is_stage_file(spec) {
        return stage_check(spec);
    }
    let (table, source) = patronage_engine::load_rules(spec, std::path::Path::new(""))?;
    let check = table.check();
    let mut out = std::io::stdout().lock();
    writeln!(out, "{source}: {} rules", table.rules.len())?;
    for (id, cells) in &check.cells_per_rule {
        writeln!(out, "  {id:<24} {cells:>3} cells")?;
    }
    if check.is_ok() {
        writeln!(
            out,
            "ok: all 125 (R,F,M) cells matched, every rule reachable"
        )?;
        return Ok(Exit::Ok);
    }
    for (r, f, m) in &check.unmatched {
        writeln!(out, "unmatched cell R={r} F={f} M={m}")?;
    }
    for id in &check.unreachable {
        writeln!(
            out,
            "unreachable rule `{id}`: earlier rules match all its cells"
        )?;
    }
    anyhow::bail!(
        "{source}: rule table check failed ({} unmatched cells, {} unreachable rules)",
        check.unmatched.len(),
        check.unreachable.len()
    )
}

pub fn rules_list() -> anyhow::Result<Exit> {
    let mut out = std::io::stdout().lock();
    for (name, _) in patronage_segments::PRESETS {
        let t = patronage_segments::RuleTable::preset(name)?;
        writeln!(out, "{name:<10} {}", t.description)?;
    }
    for (name, _) in patronage_segments::STAGE_PRESETS {
        if let Some(f) = patronage_segments::StageFile::preset(name) {
            writeln!(out, "{name:<10} (loyalty stages) {}", f.description)?;
        }
    }
    Ok(Exit::Ok)
}

pub fn generate(args: GenerateArgs) -> anyhow::Result<Exit> {
    let start = chrono::NaiveDate::parse_from_str(&args.start, "%Y-%m-%d").with_context(|| {
        format!(
            "--start `{}` is not a date (expected YYYY-MM-DD)",
            args.start
        )
    })?;
    let mut params = patronage_synth::Params {
        customers: args.customers,
        seed: args.seed,
        start,
        days: args.days,
        malformed_share: args.malformed_share,
        ..Default::default()
    };
    if let Some(rate) = args.purchase_rate {
        anyhow::ensure!(
            rate > 0.0 && rate.is_finite(),
            "--purchase-rate must be a positive number of purchases per year"
        );
        // The mean of λ ~ Gamma(r, α) is r / α per day.
        params.alpha = params.r * 365.0 / rate;
    }
    if let Some(p) = args.dropout {
        anyhow::ensure!(
            p > 0.0 && p < 1.0,
            "--dropout must be a share strictly between 0 and 1"
        );
        // The mean of p ~ Beta(a, b) is a / (a + b).
        params.b = params.a * (1.0 - p) / p;
    }
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.click_share),
        "--click-share must be a share within [0, 1]"
    );
    params.click_share = args.click_share;
    if args.seasonal {
        params.season = Some(patronage_synth::retail_season());
    }
    let format = match args.format {
        FormatArg::Csv => patronage_synth::Format::Csv,
        FormatArg::Parquet => patronage_synth::Format::Parquet,
        FormatArg::ParquetTyped => patronage_synth::Format::ParquetTyped,
    };
    let g = patronage_synth::write_orders(&params, &args.out, format)?;
    let profiles = patronage_synth::write_profiles(&params, &args.out, format)?;
    let clicks = if args.no_clicks {
        None
    } else {
        Some(patronage_synth::write_clicks(&params, &args.out, format)?)
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} rows for {} customers ({} expected rejects) -> {}",
        g.rows,
        g.customers,
        g.expected_rejects,
        g.path.display()
    )?;
    writeln!(
        out,
        "{} profiles ({} prospects without orders) -> {}",
        profiles.rows,
        profiles.rows - g.customers,
        profiles.path.display()
    )?;
    if let Some(clicks) = clicks {
        writeln!(
            out,
            "{} click events -> {}",
            clicks.rows,
            clicks.path.display()
        )?;
    }
    Ok(Exit::Ok)
}
