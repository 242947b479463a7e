//! Criterion benchmarks on generated data (sizes in the group names):
//! - `ingest_rfm`: read + validate a Parquet export, then per-customer RFM/BTYD features;
//! - `fit_models`: BG/NBD + Gamma-Gamma maximum likelihood on a customer summary;
//! - `nightly_run`: the whole job as `patronage run` does it (ingest, features, models with
//!   per-customer scores and CLV, segments, Parquet out), on the ingest size;
//! - `sessionize`: read + validate + stitch a generated clickstream CSV, then sessions and the
//!   engagement columns (`PATRONAGE_BENCH_CLICK_CUSTOMERS`, default 100,000 customers ≈ 1.7M
//!   events).
//!
//! Sizes: `PATRONAGE_BENCH_CUSTOMERS` (default 250,000 customers ≈ 1M orders) for ingest, and
//! `PATRONAGE_BENCH_FIT_CUSTOMERS` (default 1,000,000) for the model fit. The peer races (DuckDB,
//! Python polars, lifetimes) are scripts in `scripts/` that run both sides in one go.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use patronage_input::{ingest_orders, OrdersSchema};
use patronage_models::bgnbd;
use patronage_models::gamma_gamma;

/// The allocator the binary runs with (src/main.rs), so that benches measure what runs at night.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A benchmark group of 10 samples over `seconds`: each iteration runs for seconds, not micros.
fn slow_group<'c>(
    c: &'c mut Criterion,
    name: String,
    seconds: u64,
) -> criterion::BenchmarkGroup<'c, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(seconds));
    group
}

fn generated(customers: usize, dir: &std::path::Path) -> std::path::PathBuf {
    let params = patronage_synth::Params {
        customers,
        seed: 1,
        ..Default::default()
    };
    patronage_synth::write_orders(&params, dir, patronage_synth::Format::Parquet)
        .expect("generate")
        .path
}

fn ingest_rfm(c: &mut Criterion) {
    let customers = env_usize("PATRONAGE_BENCH_CUSTOMERS", 250_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = generated(customers, dir.path());
    let schema = OrdersSchema::default();
    let as_of = patronage_input::parse_date("2024-12-31").expect("date");
    let rows = ingest_orders(std::slice::from_ref(&path), &schema, None)
        .expect("ingest")
        .files[0]
        .rows_read;
    let mut group = slow_group(
        c,
        format!("ingest_rfm/{customers}_customers_{rows}_rows"),
        20,
    );
    group.bench_function("ingest+features", |b| {
        b.iter(|| {
            let ingested =
                ingest_orders(std::slice::from_ref(&path), &schema, None).expect("ingest");
            let (index, orders) = ingested.orders.into_indexed(as_of);
            black_box(patronage_features::compute(&orders, index.len(), as_of))
        })
    });
    group.finish();
}

/// The order features of a generated shop of `customers` at 2024-12-31.
fn generated_features(customers: usize) -> patronage_features::FeatureTable {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = generated(customers, dir.path());
    let ingested = ingest_orders(&[path], &OrdersSchema::default(), None).expect("ingest");
    let as_of = patronage_input::parse_date("2024-12-31").expect("date");
    let (index, orders) = ingested.orders.into_indexed(as_of);
    patronage_features::compute(&orders, index.len(), as_of)
}

fn fit_models(c: &mut Criterion) {
    let f = generated_features(env_usize("PATRONAGE_BENCH_FIT_CUSTOMERS", 1_000_000));
    let buyers = f
        .int("frequency")
        .expect("frequency")
        .iter()
        .filter(|n| n.is_some_and(|n| n > 0))
        .count();
    let mut group = slow_group(c, format!("fit_models/{buyers}_customers"), 20);
    group.bench_function("bgnbd(group triples)+gamma_gamma", |b| {
        b.iter(|| {
            let inputs = patronage_engine::model_inputs(&f).expect("btyd columns");
            let bg = bgnbd::fit(&inputs.triples).expect("bgnbd");
            let gg = gamma_gamma::fit(&inputs.repeat_x, &inputs.repeat_m).expect("gg");
            black_box((bg, gg))
        })
    });
    group.finish();
}

fn nightly_run(c: &mut Criterion) {
    let customers = env_usize("PATRONAGE_BENCH_CUSTOMERS", 250_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = generated(customers, dir.path());
    let out = dir.path().join("out");
    let opts = patronage_engine::Config::default()
        .into_options(
            None,
            patronage_engine::Flags {
                orders: Some(path.display().to_string()),
                out: Some(out),
                as_of: Some("2024-12-31".into()),
                ..Default::default()
            },
            patronage_input::parse_date("2024-12-31").expect("date"),
        )
        .expect("options");
    let mut group = slow_group(c, format!("nightly_run/{customers}_customers"), 30);
    group.bench_function("run", |b| {
        // On polars' pool, as the CLI runs it.
        b.iter(|| {
            black_box(
                patronage_engine::on_polars_pool(|| patronage_engine::run(&opts, &|_| {}))
                    .expect("run"),
            )
        })
    });
    group.finish();
}

fn sessionize(c: &mut Criterion) {
    let customers = env_usize("PATRONAGE_BENCH_CLICK_CUSTOMERS", 100_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let params = patronage_synth::Params {
        customers,
        seed: 1,
        ..Default::default()
    };
    let generated =
        patronage_synth::write_clicks(&params, dir.path(), patronage_synth::Format::Csv)
            .expect("generate");
    let (path, events) = (generated.path, generated.rows);
    let schema = patronage_input::ClicksSchema::default();
    let as_of = patronage_input::parse_date("2024-12-31").expect("date");
    let mut group = slow_group(c, format!("sessionize/{events}_events"), 20);
    group.bench_function("ingest+engagement", |b| {
        b.iter(|| {
            let clicks =
                patronage_input::ingest_clicks(std::slice::from_ref(&path), &schema, as_of)
                    .expect("clicks");
            let n = clicks.customer_ids.len();
            black_box(patronage_features::engagement_from_partials(
                &clicks
                    .partials
                    .rekey(&(0..n as u32).map(Some).collect::<Vec<_>>(), n),
                as_of,
                &vec![None; n],
            ))
        })
    });
    group.finish();
}

/// k chosen in 3–8 on the 20,000-row sample, the chosen k refitted, the fit on every customer
/// and 5 bootstrap refits: the clusters stage without its tables.
fn clusters(c: &mut Criterion) {
    let f = generated_features(env_usize("PATRONAGE_BENCH_CLUSTER_CUSTOMERS", 1_000_000));
    let columns: Vec<(String, Vec<Option<f64>>)> = [
        "recency_days",
        "frequency",
        "monetary",
        "aov",
        "tenure_days",
    ]
    .iter()
    .map(|n| (n.to_string(), f.numeric(n).expect("feature")))
    .collect();
    let eligible: Vec<bool> = f
        .int("frequency")
        .expect("frequency")
        .iter()
        .map(|n| n.is_some_and(|n| n > 0))
        .collect();
    let n = eligible.iter().filter(|e| **e).count();
    let config = patronage_clusters::Config::default();
    let mut group = slow_group(c, format!("clusters/{n}_customers"), 10);
    group.bench_function("select_k+fit+bootstrap", |b| {
        b.iter(|| {
            black_box(
                patronage_clusters::cluster(
                    &columns,
                    &eligible,
                    &eligible,
                    &config,
                    None,
                    "2024-12-31",
                    "bench",
                )
                .expect("clusters"),
            )
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    ingest_rfm,
    fit_models,
    nightly_run,
    sessionize,
    clusters
);
criterion_main!(benches);
