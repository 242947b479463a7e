//! `run --partitions N` on one machine (#16): the run's memory bounded by one partition's
//! customers rather than the whole base, with the tables of a one-partition run.
//!
//! 1. **Route** (one read of every input): the orders are validated and grouped in `N` passes
//!    by `order_id` hash (one order's lines always meet in one pass, so conflicting duplicates
//!    are found as in one run), and each pass's canonical orders go to their customer's
//!    partition on disk (`stable_hash(customer_id) % N`, the scale-out phases' rule). The
//!    profiles and the click partials (sessions, not events) are read whole, one input at a
//!    time, then split to disk the same way. Rejected rows, file statistics, the as-of day and
//!    the inputs' manifest sections are the whole input's, computed here once.
//! 2. The scale-out phases in this process: `partial` for each partition (its spilled inputs
//!    loaded, features, statistics), one `fit`, `score` for each partition, `publish`.
//!
//! The peak is the largest of: one order pass, the profiles, the click partials, one
//! partition's phases, the fit's merged statistics.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use patronage_features::{ClickPartials, Day, Orders, Profiles};
use patronage_input::{expand_inputs, ingest_orders_routed, InputError};
use patronage_output::OutDir;
use polars::prelude::DataFrame;
use serde::{de::DeserializeOwned, Serialize};

use std::time::Instant;

use serde_json::json;

use crate::config::RunOptions;
use crate::error::EngineError;
use crate::job::{peak_rss_mb, RunSummary};
use crate::phases::{fit, partial_from, publish_to, score_from, Partition, Source};
use crate::stages::ingest::{
    self, ClicksManifest, CustomersManifest, Ingest, OrderDays, OrdersManifest,
};
use crate::stages::{Event, Warnings};

/// What routing leaves in memory: the whole input's facts; the per-customer data is on disk.
pub(crate) struct Routed {
    dir: PathBuf,
    count: u32,
    as_of: Day,
    manifest: OrdersManifest,
    customers_manifest: Option<CustomersManifest>,
    clicks_manifest: Option<ClicksManifest>,
    rejected: DataFrame,
    /// The orders' discount and category columns were present.
    shape: (bool, bool),
}

fn spill_error(path: &Path, e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("{}: {e}", path.display()))
}

/// One partition's spill file: bincode frames, each after its length.
struct SpillWriter {
    path: PathBuf,
    file: BufWriter<std::fs::File>,
}

impl SpillWriter {
    fn create(path: PathBuf) -> std::io::Result<Self> {
        let file = BufWriter::new(fs_err::File::create(&path)?.into_parts().0);
        Ok(SpillWriter { path, file })
    }

    fn push(&mut self, value: &impl Serialize) -> std::io::Result<()> {
        let bytes = bincode::serde::encode_to_vec(value, bincode::config::standard())
            .map_err(|e| spill_error(&self.path, e))?;
        self.file.write_all(&(bytes.len() as u64).to_le_bytes())?;
        self.file.write_all(&bytes)
    }

    fn finish(mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Every frame of a spill file, in order.
fn read_frames<T: DeserializeOwned>(path: &Path) -> std::io::Result<Vec<T>> {
    let mut file = BufReader::new(fs_err::File::open(path)?.into_parts().0);
    let mut frames = Vec::new();
    let mut len = [0u8; 8];
    loop {
        match file.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(frames),
            Err(e) => return Err(e),
        }
        let mut bytes = vec![0u8; u64::from_le_bytes(len) as usize];
        file.read_exact(&mut bytes)?;
        let (value, _) = bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
            .map_err(|e| spill_error(path, e))?;
        frames.push(value);
    }
}

fn spill_path(dir: &Path, input: &str, i: u32) -> PathBuf {
    dir.join(format!("{input}-{i}.bin"))
}

/// Per id, its partition of `n`.
fn partitions_of(ids: &[String], n: u32) -> Vec<u32> {
    ids.iter().map(|id| Partition::of(id, n)).collect()
}

/// Writes one frame per partition: `pieces[i]` to `<input>-<i>.bin`.
fn spill_each<T: Serialize>(dir: &Path, input: &str, pieces: &[T]) -> std::io::Result<()> {
    for (i, piece) in pieces.iter().enumerate() {
        let mut w = SpillWriter::create(spill_path(dir, input, i as u32))?;
        w.push(piece)?;
        w.finish()?;
    }
    Ok(())
}

/// Step 1: every input read once, its per-customer data split into `n` partitions under `dir`.
pub(crate) fn route(
    opts: &RunOptions,
    out_dir: &OutDir,
    n: u32,
    dir: &Path,
    warnings: &mut Warnings,
) -> Result<Routed, EngineError> {
    let files = expand_inputs(&opts.orders)?;
    let mut writers: Vec<SpillWriter> = (0..n)
        .map(|i| SpillWriter::create(spill_path(dir, "orders", i)))
        .collect::<Result<_, _>>()
        .map_err(InputError::from)?;
    let mut days = OrderDays::default();
    // Whether the orders have a discount and a category column (a partition without orders
    // still has their columns).
    let mut shape = (false, false);
    let ingested = ingest_orders_routed(
        &files,
        &opts.schema,
        opts.memory_budget,
        n as usize,
        &mut |pass: Orders| {
            days.add(&pass);
            shape = (pass.discount_column, pass.has_categories());
            let parts = partitions_of(&pass.customer_ids, n);
            for (w, piece) in writers.iter_mut().zip(pass.split(&parts, n as usize)) {
                if !piece.is_empty() {
                    w.push(&piece)?;
                }
            }
            Ok(())
        },
    )?;
    for w in writers {
        w.finish().map_err(InputError::from)?;
    }
    let (as_of, manifest) = ingest::check_orders(opts, out_dir, &ingested, &days, warnings)?;

    // The profiles, then the clickstream, each read whole and split before the next is read.
    let mut customers = ingest::read_customers(opts, warnings)?;
    let customers_manifest = customers
        .as_ref()
        .map(|c| ingest::customers_manifest(opts, c));
    if let Some(c) = customers.as_mut() {
        let parts = partitions_of(&c.profiles.customer_ids, n);
        let pieces: Vec<Profiles> = (0..n)
            .map(|i| {
                let rows: Vec<usize> = (0..parts.len()).filter(|&r| parts[r] == i).collect();
                c.profiles.select(&rows)
            })
            .collect();
        c.profiles = Profiles::default();
        spill_each(dir, "profiles", &pieces).map_err(InputError::from)?;
    }
    let mut clicks = ingest::read_clicks(opts, as_of, warnings)?;
    let clicks_manifest = clicks.as_ref().map(|c| ingest::clicks_manifest(opts, c));
    if let Some(c) = clicks.as_mut() {
        let parts = partitions_of(&c.customer_ids, n);
        let pieces: Vec<(Vec<String>, ClickPartials)> = (0..n)
            .map(|i| {
                let keys: Vec<usize> = (0..parts.len()).filter(|&k| parts[k] == i).collect();
                let ids = keys.iter().map(|&k| c.customer_ids[k].clone()).collect();
                (ids, c.partials.take_keys(&keys))
            })
            .collect();
        c.customer_ids = Vec::new();
        spill_each(dir, "clicks", &pieces).map_err(InputError::from)?;
    }
    let rejected = ingest::rejected_table(&ingested, customers.as_ref(), clicks.as_ref())?;
    Ok(Routed {
        dir: dir.to_path_buf(),
        count: n,
        as_of,
        manifest,
        customers_manifest,
        clicks_manifest,
        rejected,
        shape,
    })
}

impl Routed {
    /// Partition `i`'s ingest from its spilled inputs: its customers only, keyed by its own
    /// index; the inputs' manifest sections are the whole input's (but `prospects`, the
    /// partition's), and partition 0 carries the run's rejected rows.
    pub(crate) fn load(&self, i: u32) -> Result<Ingest, EngineError> {
        debug_assert!(i < self.count);
        let read = |input: &str| spill_path(&self.dir, input, i);
        let mut orders = Orders {
            discount_column: self.shape.0,
            category_start: if self.shape.1 { vec![0] } else { Vec::new() },
            ..Orders::default()
        };
        let mut at = std::collections::HashMap::new();
        for piece in read_frames::<Orders>(&read("orders")).map_err(InputError::from)? {
            orders.append(&piece, &mut at);
        }
        drop(at);
        let profiles = match self.customers_manifest {
            Some(_) => read_frames::<Profiles>(&read("profiles"))
                .map_err(InputError::from)?
                .pop(),
            None => None,
        };
        let clicks = match self.clicks_manifest {
            Some(_) => read_frames::<(Vec<String>, ClickPartials)>(&read("clicks"))
                .map_err(InputError::from)?
                .pop(),
            None => None,
        };
        let rejected = if i == 0 {
            self.rejected.clone()
        } else {
            self.rejected.clear()
        };
        Ok(ingest::assemble(
            self.as_of,
            orders,
            profiles,
            clicks,
            self.manifest.clone(),
            self.customers_manifest.clone(),
            self.clicks_manifest.clone(),
            vec![("rejected", rejected)],
        ))
    }
}

/// `run` with `opts.partitions` partitions: route, then the phases one partition at a time in
/// this process, then one atomic publish (OUT is locked throughout).
pub(crate) fn run_partitioned(
    opts: &RunOptions,
    report: &dyn Fn(Event),
) -> Result<RunSummary, EngineError> {
    let n = opts.partitions;
    let mut warnings = Warnings::new(report);
    let (out_dir, repaired) = OutDir::open(&opts.out)?;
    for note in repaired {
        warnings.warn(note);
    }
    let scratch = out_dir.scratch("partitions")?;
    let (inputs, work) = (scratch.join("inputs"), scratch.join("work"));
    fs_err::create_dir_all(&inputs).map_err(InputError::from)?;

    // Per step: the time (summed over partitions) and the process's peak memory at its end.
    let mut timings = serde_json::Map::new();
    let mut peaks = serde_json::Map::new();
    let mut step = |name: &str, started: Instant| {
        let ms = started.elapsed().as_secs_f64() * 1e3;
        let total = timings.get(name).and_then(|v| v.as_f64()).unwrap_or(0.0);
        timings.insert(name.into(), json!(((total + ms) * 10.0).round() / 10.0));
        if let Some(mb) = peak_rss_mb() {
            peaks.insert(name.into(), json!(mb));
        }
    };
    let t = Instant::now();
    report(Event::Phase("route"));
    let routed = route(opts, &out_dir, n, &inputs, &mut warnings)?;
    step("route", t);

    // The phases' own warnings are told once, by the publish (it gathers them).
    let quiet = |e: Event| {
        if !matches!(e, Event::Warning(_)) {
            report(e)
        }
    };
    let partitions = || {
        Partition::all(n).map(|p| Partition {
            prepartitioned: true,
            ..p
        })
    };
    for p in partitions() {
        let t = Instant::now();
        report(Event::Phase(&format!("partial {}/{n}", p.index + 1)));
        partial_from(opts, p, &work, Source::Routed(&routed), &quiet)?;
        step("partial", t);
    }
    let t = Instant::now();
    report(Event::Phase("fit"));
    fit(opts, n, &work, &quiet)?;
    step("fit", t);
    for p in partitions() {
        let t = Instant::now();
        report(Event::Phase(&format!("score {}/{n}", p.index + 1)));
        score_from(opts, p, &work, Source::Routed(&routed), &quiet)?;
        step("score", t);
    }
    drop(routed);
    report(Event::Phase("publish"));
    let extra = serde_json::Map::from_iter([
        ("timings_ms".to_string(), json!(timings)),
        ("peak_memory_mb".to_string(), json!(peaks)),
    ]);
    let summary = publish_to(opts, &out_dir, n, &work, warnings, Some(extra))?;
    // Best effort: a leftover is removed by the next partitioned run on this OUT.
    let _ = fs_err::remove_dir_all(&scratch);
    Ok(summary)
}
