//! Seeded synthetic order exports for tests, samples and benchmarks.
//!
//! Customers follow a BG/NBD-style process (Fader, Hardie & Lee 2005): each is born on a uniform
//! day of the window, buys on that day, then buys again after exponential gaps with a personal
//! rate λ ~ Gamma(r, α) and drops out after any repeat purchase with a personal probability
//! p ~ Beta(a, b) (so it is exactly the BG/NBD process the churn model assumes).
//! Spend per order is Gamma-Gamma (shape `p_spend`, personal scale ν ~ Gamma(q, γ)), so it is
//! heavy-tailed across customers. On top of that, the export gets the dirt real exports have:
//! cancelled and returned orders, identical duplicate rows, conflicting duplicate order ids and a
//! small share of malformed rows (bad dates, non-numeric amounts, missing customer ids).
//!
//! Deterministic: customer `i` draws from its own ChaCha8 stream `i` of the seed, so the output
//! does not depend on the number of threads.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{Duration, NaiveDate};
use polars::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution, Exp, Gamma};
use rayon::prelude::*;

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("invalid generator parameters: {0}")]
    InvalidParams(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{}: cannot write: {message}", path.display())]
    Write { path: PathBuf, message: String },
}

/// Output format of the generated files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    /// Every column as text.
    Parquet,
    /// Typed columns: `customer_id` and `order_id` Int64 (`C00000042` → 42, `O00000042-003` →
    /// 42000003), `order_ts` a timestamp, `amount` and `discount_amount` Float64; a malformed or
    /// empty cell is a null (so the same rows are rejected, as missing values).
    ParquetTyped,
}

/// Generator settings; `Default` gives a realistic two-year shop.
#[derive(Debug, Clone)]
pub struct Params {
    pub customers: usize,
    pub seed: u64,
    /// First day of the window.
    pub start: NaiveDate,
    /// Length of the window in days.
    pub days: u32,
    /// BG/NBD purchase-rate heterogeneity (per day).
    pub r: f64,
    pub alpha: f64,
    /// BG/NBD dropout heterogeneity.
    pub a: f64,
    pub b: f64,
    /// Gamma-Gamma spend parameters.
    pub p_spend: f64,
    pub q_spend: f64,
    pub gamma_spend: f64,
    pub cancelled_share: f64,
    pub returned_share: f64,
    pub duplicate_share: f64,
    pub conflicting_share: f64,
    pub malformed_share: f64,
    /// Share of customers (and of prospects and anonymous visitors) with a clickstream: 1 (the
    /// default) for a shop where everyone browses online; lower for shops with offline buyers,
    /// or to bound the clickstream of a large generated shop.
    pub click_share: f64,
    /// A month-of-year multiplier of every customer's purchase rate (January first), or none
    /// (the default: constant rates). Purchases then follow the BG/NBD process in operational
    /// time ∫ season(t) dt, so dropout still follows purchases.
    pub season: Option<[f64; 12]>,
}

/// A retail year for `generate --seasonal`: quiet January and February, a peak in November
/// and December; scaled to a mean of 1, so the yearly purchase count is unchanged.
pub fn retail_season() -> [f64; 12] {
    let raw = [
        0.7, 0.75, 0.9, 0.95, 1.0, 0.9, 0.85, 0.9, 1.0, 1.05, 1.5, 1.8,
    ];
    let mean = raw.iter().sum::<f64>() / 12.0;
    raw.map(|v| v / mean)
}

/// The day offset reached from `t` (days since `start`) after `gap` units of operational time
/// under `season`: month by month, each contributes season × its days.
fn advance(start: NaiveDate, season: &[f64; 12], mut t: f64, mut gap: f64) -> f64 {
    use chrono::Datelike;
    loop {
        let day = start + Duration::days(t.floor() as i64);
        let (y, m) = (day.year(), day.month());
        let next = if m == 12 {
            NaiveDate::from_ymd_opt(y + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(y, m + 1, 1)
        };
        let Some(next) = next else {
            return f64::INFINITY;
        };
        let month_end = (next - start).num_days() as f64;
        let rate = season[(m - 1) as usize];
        let capacity = rate * (month_end - t);
        if gap <= capacity {
            return t + gap / rate;
        }
        gap -= capacity;
        t = month_end;
    }
}

impl Default for Params {
    fn default() -> Self {
        Params {
            customers: 1000,
            seed: 42,
            start: NaiveDate::from_ymd_opt(2023, 1, 1).unwrap_or_default(),
            days: 730,
            // CDNOW-like rates (Fader–Hardie fit in days: r = 0.25, alpha = 33.5): about 60% of
            // customers buy on one day only, as in typical shops (CDNOW 51%, e-commerce 60–75%).
            r: 0.25,
            alpha: 40.0,
            a: 0.8,
            b: 2.5,
            p_spend: 6.0,
            q_spend: 3.5,
            gamma_spend: 20.0,
            cancelled_share: 0.02,
            returned_share: 0.02,
            duplicate_share: 0.005,
            conflicting_share: 0.0005,
            malformed_share: 0.001,
            click_share: 1.0,
            season: None,
        }
    }
}

/// One generated export row; text fields as they appear in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub customer_id: String,
    pub order_id: String,
    pub order_ts: String,
    pub amount: String,
    pub status: &'static str,
    /// Amount taken off the list price (empty: none).
    pub discount_amount: String,
    pub category: &'static str,
}

/// Product categories of generated orders.
pub const CATEGORIES: [&str; 8] = [
    "books",
    "music",
    "video",
    "games",
    "electronics",
    "home",
    "garden",
    "toys",
];

/// Counts of what was generated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Generated {
    pub customers: usize,
    pub rows: usize,
    pub expected_rejects: usize,
    pub path: PathBuf,
}

fn check(p: &Params) -> Result<(), SynthError> {
    let positive = [p.r, p.alpha, p.a, p.b, p.p_spend, p.q_spend, p.gamma_spend];
    if positive.iter().any(|v| !(v.is_finite() && *v > 0.0)) || p.days == 0 {
        return Err(SynthError::InvalidParams(
            "r, alpha, a, b, spend parameters and days must be positive".into(),
        ));
    }
    let shares = [
        p.cancelled_share,
        p.returned_share,
        p.duplicate_share,
        p.conflicting_share,
        p.malformed_share,
    ];
    if shares.iter().any(|s| !(0.0..=0.5).contains(s)) {
        return Err(SynthError::InvalidParams(
            "dirt shares must be within [0, 0.5]".into(),
        ));
    }
    if !(0.0..=1.0).contains(&p.click_share) {
        return Err(SynthError::InvalidParams(
            "the click share must be within [0, 1]".into(),
        ));
    }
    Ok(())
}

fn customer_rows(
    p: &Params,
    i: usize,
    gamma_rate: &Gamma<f64>,
    beta: &Beta<f64>,
    nu: &Gamma<f64>,
) -> (Vec<Row>, usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    rng.set_stream(i as u64);
    let lambda: f64 = gamma_rate.sample(&mut rng);
    let dropout: f64 = beta.sample(&mut rng);
    let scale: f64 = nu.sample(&mut rng);
    let spend = Gamma::new(p.p_spend, 1.0 / scale).ok();
    let gap = Exp::new(lambda.max(1e-9)).ok();
    let customer_id = format!("C{:08}", i + 1);
    // Categories and discounts come from a stream of their own, so they never change the
    // purchase process: a favourite category and a wandering eye; a third of customers hunt
    // promotions.
    let mut side = ChaCha8Rng::seed_from_u64(p.seed ^ 0x4341_5445_474f_5259);
    side.set_stream(i as u64);
    let favourite = side.random_range(0..CATEGORIES.len());
    let wander: f64 = side.random_range(0.0..0.6);
    let promo_share = if side.random::<f64>() < 0.33 {
        0.6
    } else {
        0.1
    };
    let mut rows = Vec::new();
    let mut malformed = 0;
    let mut t = rng.random_range(0.0..f64::from(p.days));
    let mut n = 0;
    loop {
        n += 1;
        let day = p.start + Duration::days(t as i64);
        let secs = ((t.fract()) * 86_400.0) as u32;
        let ts = format!(
            "{}T{:02}:{:02}:{:02}",
            day.format("%Y-%m-%d"),
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
        let amount: f64 = spend.as_ref().map(|g| g.sample(&mut rng)).unwrap_or(10.0);
        let order_id = format!("O{:08}-{n:03}", i + 1);
        let roll: f64 = rng.random();
        let status = if roll < p.cancelled_share {
            "cancelled"
        } else if roll < p.cancelled_share + p.returned_share {
            "returned"
        } else {
            "completed"
        };
        let category = if side.random::<f64>() < wander {
            CATEGORIES[side.random_range(0..CATEGORIES.len())]
        } else {
            CATEGORIES[favourite]
        };
        let discount_amount = if side.random::<f64>() < promo_share {
            let rate = side.random_range(0.05..0.3);
            format!("{:.2}", amount * rate / (1.0 - rate))
        } else {
            String::new()
        };
        let mut row = Row {
            customer_id: customer_id.clone(),
            order_id,
            order_ts: ts,
            amount: format!("{amount:.2}"),
            status,
            discount_amount,
            category,
        };
        let dirt: f64 = rng.random();
        let mut dirt_cut = p.malformed_share;
        if dirt < dirt_cut {
            malformed += 1;
            match rng.random_range(0..3) {
                0 => row.order_ts = format!("{}-13-45", day.format("%Y")),
                1 => row.amount = "n/a".into(),
                _ => row.customer_id = String::new(),
            }
            rows.push(row);
        } else if dirt < {
            dirt_cut += p.duplicate_share;
            dirt_cut
        } {
            rows.push(row.clone());
            rows.push(row);
        } else if dirt < dirt_cut + p.conflicting_share {
            let mut other = row.clone();
            other.customer_id = format!("C{:08}", (i + 7) % p.customers.max(1) + 1);
            malformed += 2;
            rows.push(row);
            rows.push(other);
        } else {
            rows.push(row);
        }
        // BG/NBD: a customer can become inactive only after a repeat purchase, never right after
        // the first one.
        if n > 1 && rng.random::<f64>() < dropout {
            break;
        }
        let step = gap
            .as_ref()
            .map(|g| g.sample(&mut rng))
            .unwrap_or(f64::INFINITY);
        t = match &p.season {
            Some(season) if step.is_finite() => advance(p.start, season, t, step),
            _ => t + step,
        };
        if t.is_nan() || t >= f64::from(p.days) {
            break;
        }
    }
    (rows, malformed)
}

/// Generates every row in memory (customer order, then time order).
pub fn generate_rows(p: &Params) -> Result<(Vec<Row>, usize), SynthError> {
    rows_of(p, 0..p.customers)
}

/// The rows of the customers `range` (each customer draws from a stream of its own, so a range
/// gives the rows it would in the whole shop).
fn rows_of(p: &Params, range: std::ops::Range<usize>) -> Result<(Vec<Row>, usize), SynthError> {
    check(p)?;
    let invalid = |e: String| SynthError::InvalidParams(e);
    let gamma_rate = Gamma::new(p.r, 1.0 / p.alpha).map_err(|e| invalid(e.to_string()))?;
    let beta = Beta::new(p.a, p.b).map_err(|e| invalid(e.to_string()))?;
    let nu = Gamma::new(p.q_spend, 1.0 / p.gamma_spend).map_err(|e| invalid(e.to_string()))?;
    let per_customer: Vec<(Vec<Row>, usize)> = range
        .into_par_iter()
        .map(|i| customer_rows(p, i, &gamma_rate, &beta, &nu))
        .collect();
    let malformed = per_customer.iter().map(|c| c.1).sum();
    Ok((
        per_customer.into_iter().flat_map(|c| c.0).collect(),
        malformed,
    ))
}

/// Customers generated and written at a time: memory holds one block's rows, not the shop's.
const WRITE_BLOCK: usize = 100_000;

/// Writes `DIR/orders.csv` or `DIR/orders.parquet`, customers a block at a time.
pub fn write_orders(p: &Params, dir: &Path, format: Format) -> Result<Generated, SynthError> {
    check(p)?;
    fs_err::create_dir_all(dir)?;
    let path = dir.join(match format {
        Format::Csv => "orders.csv",
        Format::Parquet | Format::ParquetTyped => "orders.parquet",
    });
    let tmp = path.with_extension("tmp");
    let failed = |e: PolarsError| SynthError::Write {
        path: path.clone(),
        message: e.to_string(),
    };
    let mut csv: Option<std::io::BufWriter<fs_err::File>> = None;
    let mut parquet: Option<polars::io::parquet::write::BatchedWriter<std::fs::File>> = None;
    let (mut rows_written, mut malformed) = (0, 0);
    for start in (0..p.customers.max(1)).step_by(WRITE_BLOCK) {
        let (rows, bad) = rows_of(p, start..(start + WRITE_BLOCK).min(p.customers))?;
        rows_written += rows.len();
        malformed += bad;
        match format {
            Format::Csv => {
                let w = match &mut csv {
                    Some(w) => w,
                    None => {
                        let mut w = std::io::BufWriter::new(fs_err::File::create(&tmp)?);
                        w.write_all(
                            b"customer_id,order_id,order_ts,amount,status,discount_amount,category\n",
                        )?;
                        csv.insert(w)
                    }
                };
                let chunks: Vec<String> = rows
                    .par_chunks(65_536)
                    .map(|chunk| {
                        let mut s = String::with_capacity(chunk.len() * 64);
                        for r in chunk {
                            s.push_str(&r.customer_id);
                            s.push(',');
                            s.push_str(&r.order_id);
                            s.push(',');
                            s.push_str(&r.order_ts);
                            s.push(',');
                            s.push_str(&r.amount);
                            s.push(',');
                            s.push_str(r.status);
                            s.push(',');
                            s.push_str(&r.discount_amount);
                            s.push(',');
                            s.push_str(r.category);
                            s.push('\n');
                        }
                        s
                    })
                    .collect();
                for c in chunks {
                    w.write_all(c.as_bytes())?;
                }
            }
            Format::Parquet | Format::ParquetTyped => {
                let df = if format == Format::ParquetTyped {
                    typed_frame(&rows)
                } else {
                    text_frame(&rows)
                }
                .map_err(failed)?;
                let w = match &mut parquet {
                    Some(w) => w,
                    None => {
                        let file = fs_err::File::create(&tmp)?;
                        let w = ParquetWriter::new(file.into_parts().0)
                            .batched(df.schema())
                            .map_err(failed)?;
                        parquet.insert(w)
                    }
                };
                w.write_batch(&df).map_err(failed)?;
            }
        }
    }
    if let Some(mut w) = csv {
        w.flush()?;
    }
    if let Some(w) = parquet {
        w.finish().map_err(failed)?;
    }
    fs_err::rename(&tmp, &path)?;
    Ok(Generated {
        customers: p.customers,
        rows: rows_written,
        expected_rejects: malformed,
        path,
    })
}

/// The rows as text columns, as they would be in a CSV export.
fn text_frame(rows: &[Row]) -> PolarsResult<DataFrame> {
    let col = |name: &str, f: fn(&Row) -> &str| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<&str>>())
    };
    DataFrame::new(
        rows.len(),
        vec![
            col("customer_id", |r| &r.customer_id),
            col("order_id", |r| &r.order_id),
            col("order_ts", |r| &r.order_ts),
            col("amount", |r| &r.amount),
            col("status", |r| r.status),
            col("discount_amount", |r| &r.discount_amount),
            col("category", |r| r.category),
        ],
    )
}

/// A generated id as the integer a typed export holds: `C00000042` → 42, `O00000042-3` →
/// 42000003; `None` for a malformed id. Room for a million orders per customer: the heaviest
/// buyers of a 100M-row shop pass a thousand, and `customer × 1000 + n` gave them the next
/// customers' order ids (and broke the file's `order_id` order).
fn integer_id(s: &str, prefix: char) -> Option<i64> {
    let digits = s.strip_prefix(prefix)?;
    match digits.split_once('-') {
        Some((a, b)) => Some(a.parse::<i64>().ok()? * 1_000_000 + b.parse::<i64>().ok()?),
        None => digits.parse().ok(),
    }
}

/// A customer id cell of the profiles and clicks beside orders of `format`: the integer of a
/// typed export (so every input names a customer the same way), else as generated.
fn customer_cell(id: &str, format: Format) -> String {
    match (format, integer_id(id, 'C')) {
        (Format::ParquetTyped, Some(n)) => n.to_string(),
        _ => id.to_string(),
    }
}

/// The rows as typed columns (see [`Format::ParquetTyped`]).
fn typed_frame(rows: &[Row]) -> PolarsResult<DataFrame> {
    let id = integer_id;
    let micros = |s: &str| -> Option<i64> {
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
            .ok()
            .map(|t| t.and_utc().timestamp_micros())
    };
    let number = |s: &str| s.parse::<f64>().ok();
    let ts = Column::new(
        "order_ts".into(),
        rows.par_iter()
            .map(|r| micros(&r.order_ts))
            .collect::<Vec<_>>(),
    )
    .cast(&DataType::Datetime(TimeUnit::Microseconds, None))?;
    DataFrame::new(
        rows.len(),
        vec![
            Column::new(
                "customer_id".into(),
                rows.par_iter()
                    .map(|r| id(&r.customer_id, 'C'))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "order_id".into(),
                rows.par_iter()
                    .map(|r| id(&r.order_id, 'O'))
                    .collect::<Vec<_>>(),
            ),
            ts,
            Column::new(
                "amount".into(),
                rows.par_iter()
                    .map(|r| number(&r.amount))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "status".into(),
                rows.iter().map(|r| r.status).collect::<Vec<_>>(),
            ),
            Column::new(
                "discount_amount".into(),
                rows.par_iter()
                    .map(|r| number(&r.discount_amount))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "category".into(),
                rows.iter().map(|r| r.category).collect::<Vec<_>>(),
            ),
        ],
    )
}

/// The day (offset from `p.start`) of customer `i`'s first order: the first draws of its stream,
/// replayed (see [`customer_rows`]).
fn first_order_offset(
    p: &Params,
    i: usize,
    gamma_rate: &Gamma<f64>,
    beta: &Beta<f64>,
    nu: &Gamma<f64>,
) -> (f64, f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    rng.set_stream(i as u64);
    let lambda: f64 = gamma_rate.sample(&mut rng);
    let _dropout: f64 = beta.sample(&mut rng);
    let _scale: f64 = nu.sample(&mut rng);
    (rng.random_range(0.0..f64::from(p.days)), lambda)
}

/// One generated profile row (CSV cells; empty = null).
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileRow {
    pub cells: [String; 9],
}

/// Header of the generated customers file (an export's own names, so the column mapping and
/// aliases are exercised: `signup_date` → `signup_ts`, `tier` → `membership_tier`, `points` →
/// `points_balance`).
pub const PROFILE_HEADER: &str = "customer_id,signup_date,tier,points,subscription_active,saved_payment_methods,saved_addresses,email_opt_in,referrals";

/// Profiles for every generated customer (signed up up to 60 days before the first order;
/// faster buyers hold higher tiers, more points and more saved details) and, for a fifth as many
/// again, prospects: profiles without any order. Seeded apart from the orders, so adding
/// profiles never changes the orders.
pub fn generate_profiles(p: &Params) -> Result<Vec<ProfileRow>, SynthError> {
    check(p)?;
    let invalid = |e: String| SynthError::InvalidParams(e);
    let gamma_rate = Gamma::new(p.r, 1.0 / p.alpha).map_err(|e| invalid(e.to_string()))?;
    let beta = Beta::new(p.a, p.b).map_err(|e| invalid(e.to_string()))?;
    let nu = Gamma::new(p.q_spend, 1.0 / p.gamma_spend).map_err(|e| invalid(e.to_string()))?;
    let mean_rate = p.r / p.alpha;
    let prospects = p.customers / 5;
    let rows = (0..p.customers + prospects)
        .into_par_iter()
        .map(|i| {
            let mut rng = ChaCha8Rng::seed_from_u64(p.seed ^ 0x5052_4f46_494c_4553);
            rng.set_stream(i as u64);
            let (id, signup, rate) = if i < p.customers {
                let (first, lambda) = first_order_offset(p, i, &gamma_rate, &beta, &nu);
                let lead = rng.random_range(0.0..60.0);
                (format!("C{:08}", i + 1), first - lead, lambda)
            } else {
                let day = rng.random_range(0.0..f64::from(p.days));
                (format!("P{:08}", i + 1 - p.customers), day, 0.0)
            };
            let signup = p.start + Duration::days(signup.floor() as i64);
            let level = if rate > 2.0 * mean_rate {
                2
            } else if rate > mean_rate {
                1
            } else {
                0
            };
            let tier = ["bronze", "silver", "gold"][level];
            let u = |rng: &mut ChaCha8Rng| rng.random::<f64>();
            let points = (u(&mut rng) * 500.0 * (1.0 + 4.0 * level as f64)).floor();
            let flag = |b: bool| if b { "true" } else { "false" }.to_string();
            let subscription = flag(u(&mut rng) < 0.05 + 0.2 * level as f64);
            let payments = ((u(&mut rng) * (1.5 + level as f64)).floor() as i64).to_string();
            // Some exports leave saved addresses empty.
            let addresses = if u(&mut rng) < 0.1 {
                String::new()
            } else {
                ((u(&mut rng) * 3.0).floor() as i64).to_string()
            };
            let opt_in = flag(u(&mut rng) < 0.6);
            let referrals = ((u(&mut rng).powi(3) * 4.0).floor() as i64).to_string();
            ProfileRow {
                cells: [
                    id,
                    signup.format("%Y-%m-%d").to_string(),
                    tier.to_string(),
                    format!("{points:.0}"),
                    subscription,
                    payments,
                    addresses,
                    opt_in,
                    referrals,
                ],
            }
        })
        .collect();
    Ok(rows)
}

/// Writes `DIR/customers.csv` (profiles consistent with the generated orders, plus prospects),
/// customer ids as the orders of `format` hold them.
pub fn write_profiles(p: &Params, dir: &Path, format: Format) -> Result<Generated, SynthError> {
    let rows = generate_profiles(p)?;
    fs_err::create_dir_all(dir)?;
    let path = dir.join("customers.csv");
    let tmp = path.with_extension("tmp");
    let mut w = std::io::BufWriter::new(fs_err::File::create(&tmp)?);
    writeln!(w, "{PROFILE_HEADER}")?;
    for r in &rows {
        let mut cells = r.cells.clone();
        if let Some(id) = cells.first_mut() {
            *id = customer_cell(id, format);
        }
        writeln!(w, "{}", cells.join(","))?;
    }
    w.flush()?;
    drop(w);
    fs_err::rename(&tmp, &path)?;
    Ok(Generated {
        customers: rows.len(),
        rows: rows.len(),
        expected_rejects: 0,
        path,
    })
}

/// Header of the generated clickstream.
pub const CLICK_HEADER: &str = "event_ts,customer_id,visitor_id,event_type,page_type,category";

/// One generated click event: the cells of [`CLICK_HEADER`], as a CSV export holds them.
pub type ClickEvent = [String; 6];

/// A clickstream consistent with the orders of `rows` (generated with the same `p`): every
/// order is the purchase at the end of a session of product views, a cart and a checkout; on
/// top, browsing sessions that bounce, that view three or more products and buy nothing, or
/// that leave on the shipping page after a cart. A third of customers browse anonymously (a
/// visitor id only) before their first order and are linked by it afterwards; prospects browse
/// too; a tenth as many purely anonymous visitors bounce. Seeded apart from the orders.
pub fn generate_clicks(p: &Params, rows: &[Row]) -> Vec<ClickEvent> {
    let mut out = Vec::new();
    for_each_click(p, rows, |e| out.push(e));
    out
}

/// [`generate_clicks`], handing each event to `emit` as it is made.
pub fn for_each_click(p: &Params, rows: &[Row], mut emit: impl FnMut(ClickEvent)) {
    let (events, _) = customer_clicks(p, rows, 0, None);
    events.into_iter().for_each(&mut emit);
    visitor_clicks(p, &mut emit);
}

fn parse_ts(ts: &str) -> Option<chrono::NaiveDateTime> {
    chrono::NaiveDateTime::parse_from_str(ts, "%Y-%m-%dT%H:%M:%S").ok()
}

fn click(
    ts: chrono::NaiveDateTime,
    c: &str,
    v: &str,
    e: &str,
    page: &str,
    cat: &str,
) -> ClickEvent {
    [
        ts.format("%Y-%m-%dT%H:%M:%S").to_string(),
        c.to_string(),
        v.to_string(),
        e.to_string(),
        page.to_string(),
        cat.to_string(),
    ]
}

/// A browsing session without a purchase, starting at `start`: a bounce, three to six product
/// views, or a cart left on the shipping page.
fn browse(
    rng: &mut ChaCha8Rng,
    start: chrono::NaiveDateTime,
    c: &str,
    v: &str,
    emit: &mut dyn FnMut(ClickEvent),
) {
    let cat = CATEGORIES[rng.random_range(0..CATEGORIES.len())];
    let kind: f64 = rng.random();
    let step = |k: i64| start + Duration::seconds(90 * k);
    if kind < 0.4 {
        emit(click(start, c, v, "page_view", "home", ""));
    } else if kind < 0.7 {
        for k in 0..rng.random_range(3..7) {
            emit(click(step(k), c, v, "product_view", "product", cat));
        }
    } else {
        emit(click(step(0), c, v, "product_view", "product", cat));
        emit(click(step(1), c, v, "add_to_cart", "cart", cat));
        emit(click(step(2), c, v, "page_view", "shipping", ""));
    }
}

/// Whether customer number `n` (0-based) browses the shop online at all: every one at the
/// default `click_share` of 1, else a seeded draw of its own.
fn clicks_online(p: &Params, n: usize) -> bool {
    if p.click_share >= 1.0 {
        return true;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed ^ 0x434c_4943_4b53_0003);
    rng.set_stream(n as u64);
    rng.random::<f64>() < p.click_share
}

/// The events of the customers that `rows` name with a valid timestamp, in id order, the `k`-th
/// of them drawing from stream `first + k`; with `keep`, only customers whose number (0-based)
/// lies in it. Also returns how many customers drew a stream, so that a shop written in blocks
/// of customers gives the events of the whole shop at once.
fn customer_clicks(
    p: &Params,
    rows: &[Row],
    first: usize,
    keep: Option<std::ops::Range<usize>>,
) -> (Vec<ClickEvent>, usize) {
    let mut by_customer: std::collections::BTreeMap<&str, Vec<&Row>> = Default::default();
    for r in rows {
        let kept = keep.as_ref().is_none_or(|k| {
            integer_id(&r.customer_id, 'C').is_some_and(|n| k.contains(&(n as usize - 1)))
        });
        if kept && !r.customer_id.is_empty() && parse_ts(&r.order_ts).is_some() {
            by_customer.entry(&r.customer_id).or_default().push(r);
        }
    }
    let window_end = (p.start + Duration::days(i64::from(p.days)))
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default();
    let customers: Vec<(&str, Vec<&Row>)> = by_customer.into_iter().collect();
    let per_customer: Vec<Vec<ClickEvent>> = customers
        .par_iter()
        .enumerate()
        .map(|(k, (customer, orders))| {
            let mut out = Vec::new();
            let n = integer_id(customer, 'C').map_or(0, |n| n as usize - 1);
            if clicks_online(p, n) {
                one_customer(p, first + k, customer, orders, window_end, &mut |e| {
                    out.push(e)
                });
            }
            out
        })
        .collect();
    (
        per_customer.into_iter().flatten().collect(),
        customers.len(),
    )
}

/// The events of one customer with orders (stream `i`).
fn one_customer(
    p: &Params,
    i: usize,
    customer: &str,
    orders: &[&Row],
    window_end: chrono::NaiveDateTime,
    emit: &mut dyn FnMut(ClickEvent),
) {
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed ^ 0x434c_4943_4b53_0001);
    rng.set_stream(i as u64);
    let anonymous_first = rng.random::<f64>() < 0.33;
    let visitor = if anonymous_first {
        format!("V{i:08}")
    } else {
        String::new()
    };
    let Some(first) = orders.iter().filter_map(|r| parse_ts(&r.order_ts)).min() else {
        return;
    };
    for r in orders {
        let Some(t) = parse_ts(&r.order_ts) else {
            continue;
        };
        if r.status == "cancelled" {
            continue;
        }
        let views = rng.random_range(1..4);
        let begin = t - Duration::minutes(3 * views + 6);
        for k in 0..views {
            emit(click(
                begin + Duration::minutes(3 * k),
                customer,
                &visitor,
                "product_view",
                "product",
                r.category,
            ));
        }
        emit(click(
            t - Duration::minutes(4),
            customer,
            &visitor,
            "add_to_cart",
            "cart",
            r.category,
        ));
        emit(click(
            t - Duration::minutes(2),
            customer,
            &visitor,
            "checkout",
            "checkout",
            "",
        ));
        emit(click(
            t, customer, &visitor, "purchase", "checkout", r.category,
        ));
    }
    if anonymous_first {
        // Browsing before the first order, under the visitor id only.
        let before = first - Duration::hours(rng.random_range(2..200));
        browse(&mut rng, before, "", &visitor, emit);
    }
    for _ in 0..rng.random_range(0..4) {
        let span = (window_end - first).num_minutes().max(1);
        let at = first + Duration::minutes(rng.random_range(0..span));
        browse(&mut rng, at, customer, &visitor, emit);
    }
}

/// The events of prospects (a fifth as many as customers, browsing with a customer id and no
/// order) and of purely anonymous visitors (a tenth as many), scaled by `click_share`.
fn visitor_clicks(p: &Params, emit: &mut dyn FnMut(ClickEvent)) {
    let scaled = |n: usize| {
        if p.click_share >= 1.0 {
            n
        } else {
            (n as f64 * p.click_share) as usize
        }
    };
    let start = p.start.and_hms_opt(0, 0, 0).unwrap_or_default();
    let minutes = i64::from(p.days) * 1440;
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed ^ 0x434c_4943_4b53_0002);
    for k in 0..scaled(p.customers / 5) {
        let id = format!("P{:08}", k + 1);
        for _ in 0..rng.random_range(1..4) {
            let at = start + Duration::minutes(rng.random_range(0..minutes));
            browse(&mut rng, at, &id, "", emit);
        }
    }
    for k in 0..scaled(p.customers / 10) {
        let at = start + Duration::minutes(rng.random_range(0..minutes));
        emit(click(at, "", &format!("A{k:08}"), "page_view", "home", ""));
    }
}

/// Events written at a time to the Parquet clickstream.
const CLICK_BATCH: usize = 1 << 20;

/// Where generated events go: `clicks.csv`, or `clicks.parquet` beside Parquet orders (text
/// columns, the timestamp typed beside typed orders; an empty cell is a null). Customer ids stay
/// text even beside typed orders: prospects' ids (`P…`) are not integers.
enum ClickSink {
    Csv(std::io::BufWriter<fs_err::File>),
    Parquet {
        writer: Option<Box<polars::io::parquet::write::BatchedWriter<std::fs::File>>>,
        file: Option<std::fs::File>,
        pending: Vec<ClickEvent>,
        typed: bool,
    },
}

impl ClickSink {
    fn write(&mut self, events: Vec<ClickEvent>, path: &Path) -> Result<(), SynthError> {
        match self {
            ClickSink::Csv(w) => {
                for e in events {
                    writeln!(w, "{}", e.join(","))?;
                }
                Ok(())
            }
            ClickSink::Parquet { pending, .. } => {
                pending.extend(events);
                if pending.len() >= CLICK_BATCH {
                    self.flush(path)?;
                }
                Ok(())
            }
        }
    }

    fn flush(&mut self, path: &Path) -> Result<(), SynthError> {
        let ClickSink::Parquet {
            writer,
            file,
            pending,
            typed,
        } = self
        else {
            return Ok(());
        };
        if pending.is_empty() && writer.is_some() {
            return Ok(());
        }
        let failed = |e: PolarsError| SynthError::Write {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let df = click_frame(pending, *typed).map_err(failed)?;
        pending.clear();
        if writer.is_none() {
            let f = file.take().ok_or_else(|| SynthError::Write {
                path: path.to_path_buf(),
                message: "the clickstream was already finished".into(),
            })?;
            *writer = Some(Box::new(
                ParquetWriter::new(f).batched(df.schema()).map_err(failed)?,
            ));
        }
        if let Some(w) = writer {
            // Row groups of at most CLICK_BATCH events, as exports usually come (a reader
            // decodes a row group whole).
            let mut df = df;
            df.rechunk_mut();
            let mut offset = 0;
            while offset < df.height() {
                w.write_batch(&df.slice(offset as i64, CLICK_BATCH))
                    .map_err(failed)?;
                offset += CLICK_BATCH;
            }
        }
        Ok(())
    }

    fn finish(mut self, path: &Path) -> Result<(), SynthError> {
        self.flush(path)?;
        match self {
            ClickSink::Csv(mut w) => w.flush()?,
            ClickSink::Parquet { writer, .. } => {
                if let Some(w) = writer {
                    w.finish().map_err(|e| SynthError::Write {
                        path: path.to_path_buf(),
                        message: e.to_string(),
                    })?;
                }
            }
        }
        Ok(())
    }
}

/// Events as a frame of the clickstream's columns.
fn click_frame(events: &[ClickEvent], typed: bool) -> PolarsResult<DataFrame> {
    let text = |k: usize| {
        events
            .iter()
            .map(|e| (!e[k].is_empty()).then_some(e[k].as_str()))
            .collect::<Vec<_>>()
    };
    let names = CLICK_HEADER.split(',').collect::<Vec<_>>();
    let mut columns: Vec<Column> = (0..6)
        .map(|k| Column::new(names[k].into(), text(k)))
        .collect();
    if typed {
        columns[0] = Column::new(
            names[0].into(),
            events
                .par_iter()
                .map(|e| parse_ts(&e[0]).map(|t| t.and_utc().timestamp_micros()))
                .collect::<Vec<_>>(),
        )
        .cast(&DataType::Datetime(TimeUnit::Microseconds, None))?;
    }
    DataFrame::new(events.len(), columns)
}

/// Writes the clickstream (see [`generate_clicks`]): `DIR/clicks.csv` beside CSV orders,
/// `DIR/clicks.parquet` beside Parquet ones, customer ids as the orders of `format` hold them.
/// Customers are generated a block at a time (with the few rows of neighbouring customers that
/// name them), so memory holds one block's orders and events, never the shop's.
pub fn write_clicks(p: &Params, dir: &Path, format: Format) -> Result<Generated, SynthError> {
    write_clicks_in_blocks(p, dir, format, WRITE_BLOCK)
}

/// [`write_clicks`], `block` customers at a time.
fn write_clicks_in_blocks(
    p: &Params,
    dir: &Path,
    format: Format,
    block: usize,
) -> Result<Generated, SynthError> {
    check(p)?;
    fs_err::create_dir_all(dir)?;
    let path = dir.join(match format {
        Format::Csv => "clicks.csv",
        Format::Parquet | Format::ParquetTyped => "clicks.parquet",
    });
    let tmp = path.with_extension("tmp");
    let mut sink = match format {
        Format::Csv => {
            let mut w = std::io::BufWriter::new(fs_err::File::create(&tmp)?);
            writeln!(w, "{CLICK_HEADER}")?;
            ClickSink::Csv(w)
        }
        Format::Parquet | Format::ParquetTyped => ClickSink::Parquet {
            writer: None,
            file: Some(fs_err::File::create(&tmp)?.into_parts().0),
            pending: Vec::new(),
            typed: format == Format::ParquetTyped,
        },
    };
    let cell = |mut e: ClickEvent| {
        if !e[1].is_empty() {
            e[1] = customer_cell(&e[1], format);
        }
        e
    };
    let n = p.customers;
    let (mut events, mut drawn) = (0usize, 0usize);
    for start in (0..n.max(1)).step_by(block.max(1)) {
        let end = (start + block.max(1)).min(n);
        // A conflicting duplicate of customer j's order names customer (j + 7) mod n: the rows
        // of the seven customers before the block (and, for the first block, of the last seven)
        // may name the block's customers.
        let rows = if n <= block.max(1) + 7 {
            rows_of(p, 0..n)?.0
        } else {
            let mut rows = rows_of(p, start.saturating_sub(7)..end)?.0;
            if start < 7 {
                rows.extend(rows_of(p, n - (7 - start)..n)?.0);
            }
            rows
        };
        let (block, customers) = customer_clicks(p, &rows, drawn, Some(start..end));
        drawn += customers;
        events += block.len();
        sink.write(block.into_iter().map(cell).collect(), &tmp)?;
    }
    let mut rest = Vec::new();
    visitor_clicks(p, &mut |e| rest.push(cell(e)));
    events += rest.len();
    sink.write(rest, &tmp)?;
    sink.finish(&tmp)?;
    fs_err::rename(&tmp, &path)?;
    Ok(Generated {
        customers: p.customers,
        rows: events,
        expected_rejects: 0,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_order_ids_stay_apart_and_in_order_past_a_thousand_orders() {
        assert_eq!(integer_id("C00000042", 'C'), Some(42));
        assert_eq!(integer_id("O00000042-003", 'O'), Some(42_000_003));
        let heavy = integer_id("O00000042-1198", 'O').unwrap();
        let next = integer_id("O00000043-001", 'O').unwrap();
        assert!(heavy < next);
        assert_eq!(integer_id("O0000004x-001", 'O'), None);
    }

    #[test]
    fn operational_time_walks_the_months() {
        let start = NaiveDate::from_ymd_opt(2023, 1, 1).unwrap();
        let flat = [1.0; 12];
        assert!((advance(start, &flat, 3.25, 100.0) - 103.25).abs() < 1e-9);
        let mut slow_january = [1.0; 12];
        slow_january[0] = 0.5;
        // January holds 15.5 units: 10 end inside it, 20 run 4.5 days into February.
        assert!((advance(start, &slow_january, 0.0, 10.0) - 20.0).abs() < 1e-9);
        assert!((advance(start, &slow_january, 0.0, 20.0) - 35.5).abs() < 1e-9);
        let season = retail_season();
        assert!((season.iter().sum::<f64>() / 12.0 - 1.0).abs() < 1e-12);
    }

    #[test]
    fn same_seed_same_rows_other_seed_other_rows() {
        let p = Params {
            customers: 200,
            ..Params::default()
        };
        let a = generate_rows(&p).unwrap();
        let b = generate_rows(&p).unwrap();
        assert_eq!(a, b);
        let c = generate_rows(&Params { seed: 7, ..p }).unwrap();
        assert_ne!(a.0, c.0);
        // Every customer buys at least once; repeat buying happens.
        assert!(a.0.len() > 200);
    }

    /// Like a real shop, most customers buy on one day only (CDNOW 51%, e-commerce 60–75%).
    #[test]
    fn most_customers_buy_once() {
        let p = Params {
            customers: 4000,
            malformed_share: 0.0,
            ..Params::default()
        };
        let (rows, _) = generate_rows(&p).unwrap();
        let mut days: std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>> =
            Default::default();
        for r in &rows {
            days.entry(&r.customer_id)
                .or_default()
                .insert(&r.order_ts[..10]);
        }
        let once = days.values().filter(|d| d.len() == 1).count() as f64 / days.len() as f64;
        assert!((0.5..0.75).contains(&once), "one-time buyers {once}");
    }

    /// A clickstream written a few customers at a time is the one of the whole shop at once,
    /// conflicting duplicates (rows naming a customer of another block) included; a click share
    /// keeps about that share of it.
    #[test]
    fn clicks_written_in_blocks_are_the_whole_shops() {
        let p = Params {
            customers: 400,
            conflicting_share: 0.05,
            ..Params::default()
        };
        let (rows, _) = generate_rows(&p).unwrap();
        let whole: Vec<String> = generate_clicks(&p, &rows)
            .iter()
            .map(|e| e.join(","))
            .collect();
        let dir = std::env::temp_dir().join(format!("patronage-synth-{}", std::process::id()));
        let written = write_clicks_in_blocks(&p, &dir, Format::Csv, 30).unwrap();
        let text = fs_err::read_to_string(&written.path).unwrap();
        let lines: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(lines.len(), whole.len());
        assert!(lines.iter().zip(&whole).all(|(a, b)| a == b));
        let half = write_clicks_in_blocks(
            &Params {
                click_share: 0.5,
                ..p
            },
            &dir,
            Format::Csv,
            30,
        )
        .unwrap();
        let share = half.rows as f64 / written.rows as f64;
        assert!((0.4..0.6).contains(&share), "{share}");
        fs_err::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn profiles_sign_up_before_the_first_order_and_add_prospects() {
        let p = Params {
            customers: 300,
            malformed_share: 0.0,
            conflicting_share: 0.0,
            ..Params::default()
        };
        let (rows, _) = generate_rows(&p).unwrap();
        let profiles = generate_profiles(&p).unwrap();
        assert_eq!(profiles.len(), 360);
        assert_eq!(profiles, generate_profiles(&p).unwrap());
        for prof in &profiles[..300] {
            let first = rows
                .iter()
                .filter(|r| r.customer_id == prof.cells[0])
                .map(|r| &r.order_ts[..10])
                .min()
                .unwrap();
            assert!(
                prof.cells[1].as_str() <= first,
                "{:?} first order {first}",
                prof.cells
            );
        }
        assert!(profiles[300..].iter().all(|r| r.cells[0].starts_with('P')));
        let tiers: std::collections::BTreeSet<&str> =
            profiles.iter().map(|r| r.cells[2].as_str()).collect();
        assert_eq!(tiers.len(), 3, "{tiers:?}");
    }
}
