//! `run --partitions N` on one machine (#16): the run's memory bounded by one partition's
//! customers rather than the whole base, with the tables of a one-partition run.
//!
//! 1. **Route** (one read of every input): the orders are validated and grouped, in passes by
//!    `order_id` hash when the memory budget asks for them (one order's lines always meet in one
//!    pass, so conflicting duplicates are found as in one run), and each pass's canonical orders
//!    go to their customer's partition on disk (`stable_hash(customer_id) % N`, the scale-out phases' rule). The
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

use patronage_features::{ClickPartial, ClickPartials, Day, Orders, Profiles};
use patronage_input::{
    expand_inputs, ingest_clicks_routed, ingest_orders_routed, InputError, Piece,
};
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
    session_gap_minutes: u32,
}

/// Memory the click partials take per event folded (measured: 14 GB for 298M events), which
/// sizes how many events are folded before their partials go to disk.
const CLICK_BYTES: u64 = 48;

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
    let mut frames = Vec::new();
    for_each_frame(path, |frame| frames.push(frame))?;
    Ok(frames)
}

/// Each frame of a spill file, in order, handed to `f` as soon as it is decoded.
fn for_each_frame<T: DeserializeOwned>(path: &Path, mut f: impl FnMut(T)) -> std::io::Result<()> {
    let mut file = BufReader::new(fs_err::File::open(path)?.into_parts().0);
    let mut len = [0u8; 8];
    let mut bytes = Vec::new();
    loop {
        match file.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        bytes.resize(u64::from_le_bytes(len) as usize, 0);
        file.read_exact(&mut bytes)?;
        let (value, _) = bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
            .map_err(|e| spill_error(path, e))?;
        f(value);
    }
}

fn spill_path(dir: &Path, input: &str, i: u32) -> PathBuf {
    dir.join(format!("{input}-{i}.bin"))
}

/// Per id, its partition of `n`.
fn partitions_of(ids: &[String], n: u32) -> Vec<u32> {
    ids.iter().map(|id| Partition::of(id, n)).collect()
}

/// One input's spill files, one per partition (`<input>-<i>.bin`).
struct Spill(Vec<SpillWriter>);

impl Spill {
    fn create(dir: &Path, input: &str, n: u32) -> std::io::Result<Self> {
        (0..n)
            .map(|i| SpillWriter::create(spill_path(dir, input, i)))
            .collect::<Result<_, _>>()
            .map(Spill)
    }

    /// Appends `piece` to partition `i`'s file (nothing when `empty`).
    fn push(&mut self, i: usize, piece: &impl Serialize, empty: bool) -> std::io::Result<()> {
        if empty {
            return Ok(());
        }
        self.0[i].push(piece)
    }

    fn finish(self) -> std::io::Result<()> {
        self.0.into_iter().try_for_each(SpillWriter::finish)
    }

    /// Empties every partition's file.
    fn truncate(&mut self) -> std::io::Result<()> {
        for w in &mut self.0 {
            *w = SpillWriter::create(w.path.clone())?;
        }
        Ok(())
    }
}

/// Writes `piece(i)` to `<input>-<i>.bin` for every partition, one piece in memory at a time.
fn spill_each<T: Serialize>(
    dir: &Path,
    input: &str,
    n: u32,
    mut piece: impl FnMut(u32) -> T,
) -> std::io::Result<()> {
    let mut spill = Spill::create(dir, input, n)?;
    for i in 0..n {
        spill.push(i as usize, &piece(i), false)?;
    }
    spill.finish()
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
    let mut spill = Spill::create(dir, "orders", n).map_err(InputError::from)?;
    let mut days = OrderDays::default();
    // Whether the orders have a discount and a category column (a partition without orders
    // still has their columns).
    let mut shape = (false, false);
    let ingested = ingest_orders_routed(
        &files,
        &opts.schema,
        opts.memory_budget,
        1,
        &mut |piece: Piece| {
            let pass = match piece {
                Piece::Orders(pass) => pass,
                Piece::Restart => {
                    // Read again in passes: what was spilled goes.
                    spill.truncate()?;
                    days = OrderDays::default();
                    return Ok(());
                }
            };
            days.add(&pass);
            shape = (pass.discount_column, pass.has_categories());
            let parts = partitions_of(&pass.customer_ids, n);
            // A piece at a time: memory holds the pass and one piece.
            for i in 0..n as usize {
                let piece = pass.piece(&parts, i as u32);
                spill.push(i, &piece, piece.is_empty())?;
            }
            Ok(())
        },
    )?;
    spill.finish().map_err(InputError::from)?;
    let (as_of, manifest) = ingest::check_orders(opts, out_dir, &ingested, &days, warnings)?;

    // The profiles, then the clickstream, each read whole and split before the next is read.
    let mut customers = ingest::read_customers(opts, warnings)?;
    let customers_manifest = customers
        .as_ref()
        .map(|c| ingest::customers_manifest(opts, c));
    if let Some(c) = customers.as_mut() {
        let parts = partitions_of(&c.profiles.customer_ids, n);
        let profiles = std::mem::take(&mut c.profiles);
        spill_each(dir, "profiles", n, |i| {
            let rows: Vec<usize> = (0..parts.len()).filter(|&r| parts[r] == i).collect();
            profiles.select(&rows)
        })
        .map_err(InputError::from)?;
    }
    // The click partials go to their partitions as they are folded: memory holds about
    // `CLICK_BYTES` per event for a budget's worth of events, not the whole clickstream's.
    let clicks = match &opts.clicks {
        Some(spec) => {
            let mut spill = Spill::create(dir, "clicks", n).map_err(InputError::from)?;
            let flush_events = opts
                .memory_budget
                .map_or(usize::MAX, |b| (b / 2 / CLICK_BYTES) as usize);
            let c = ingest_clicks_routed(
                &expand_inputs(spec)?,
                &opts.clicks_schema,
                as_of,
                flush_events,
                &mut |pieces: Vec<(String, ClickPartial)>| {
                    let mut split: Vec<Vec<(String, ClickPartial)>> = vec![Vec::new(); n as usize];
                    for (id, p) in pieces {
                        split[Partition::of(&id, n) as usize].push((id, p));
                    }
                    for (i, piece) in split.iter().enumerate() {
                        spill.push(i, piece, piece.is_empty())?;
                    }
                    Ok(())
                },
            )?;
            spill.finish().map_err(InputError::from)?;
            for w in &c.warnings {
                warnings.warn(w.clone());
            }
            Some(c)
        }
        None => None,
    };
    let clicks_manifest = clicks.as_ref().map(|c| ingest::clicks_manifest(opts, c));
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
        session_gap_minutes: opts.clicks_schema.session_gap_minutes,
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
        // A piece at a time: decoded, appended, let go.
        let mut at = patronage_features::IdKeys::default();
        for_each_frame(&read("orders"), |piece: Orders| {
            orders.append(&piece, &mut at)
        })
        .map_err(InputError::from)?;
        drop(at);
        let profiles = match self.customers_manifest {
            Some(_) => read_frames::<Profiles>(&read("profiles"))
                .map_err(InputError::from)?
                .pop(),
            None => None,
        };
        let clicks = match self.clicks_manifest {
            Some(_) => {
                // The partition's customers' pieces, merged per customer.
                let mut ids: Vec<String> = Vec::new();
                let mut at = std::collections::HashMap::new();
                let mut partials = ClickPartials::new(self.session_gap_minutes);
                for piece in read_frames::<Vec<(String, ClickPartial)>>(&read("clicks"))
                    .map_err(InputError::from)?
                {
                    for (id, p) in piece {
                        let k = *at.entry(id).or_insert_with_key(|id| {
                            ids.push(id.clone());
                            ids.len() - 1
                        });
                        partials.absorb(k, p);
                    }
                }
                Some((ids, partials))
            }
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
/// this process, then one atomic publish (OUT is locked throughout). `note`: why the run is
/// partitioned, when it chose to be (a warning, in the manifest too).
pub(crate) fn run_partitioned(
    opts: &RunOptions,
    report: &dyn Fn(Event),
    note: Option<String>,
) -> Result<RunSummary, EngineError> {
    let n = opts.partitions;
    let mut warnings = Warnings::new(report);
    if let Some(note) = note {
        warnings.warn(note);
    }
    let (out_dir, repaired) = OutDir::open(&opts.out)?;
    for note in repaired {
        warnings.warn(note);
    }
    let scratch = Scratch(out_dir.scratch("partitions")?);
    let (inputs, work) = (scratch.0.join("inputs"), scratch.0.join("work"));
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
    publish_to(opts, &out_dir, n, &work, warnings, Some(extra))
}

/// The routed inputs and the phases' files, removed when the run ends, whether it published or
/// failed (best effort: a killed run's are removed by the next partitioned run on this OUT).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs_err::remove_dir_all(&self.0);
    }
}
