//! Writes a run's tables as Hive-partitioned Parquet and publishes them as one commit (docs/design.md §6).
//!
//! Layout: `OUT/<table>/run_date=<as-of>/part-0.parquet` and `OUT/manifests/<as-of>.json`.
//! Everything temporary lives under `OUT/.patronage/`, deeper than any table glob reaches
//! (`OUT/*/*/*.parquet`, `OUT/<table>/*/*.parquet`):
//! - `lock`: an exclusive `flock` held for the whole run ([`OutDir::open`]); a second run on
//!   the same OUT stops at once with [`OutputError::Busy`] instead of interleaving.
//! - `staging/<run>/`: the run's tables and manifest, written before anything is published.
//! - `journal.json`: written (and synced) once every table is staged. It lists each staged
//!   partition with its inode, the partitions this run makes stale, and the manifest.
//! - `failed/<as-of>/`: what a run that published nothing leaves for the user to read.
//!
//! Publishing swaps each staged partition with the published one in one `renameat2(RENAME_EXCHANGE)`
//! (a plain rename when there is none yet), so a reader of a table sees the old partition or the
//! new one, never neither and never both; the old one lands in staging and is deleted at the end.
//! The manifest is renamed into place last: it is the commit record. If a step fails, the swaps
//! made so far are exchanged back (rollback) and the error is returned. If the process dies
//! mid-publish, the next [`OutDir::open`] finds the journal and completes the publish (roll
//! forward: every table was complete in staging before the journal existed), telling a swapped
//! partition from an unswapped one by its inode. Staging directories of killed runs are removed.
//!
//! With [`TableFormat::Delta`] each table is a Delta Lake table instead ([`delta`]): the same
//! staging, journal, lock and manifest, but a table's partition is published by a Delta commit
//! rather than a directory swap, and a rollback is a restoring commit.
//!
//! Not here: what the tables contain (the engine builds the frames).

mod delta;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{}: cannot write Parquet: {message}", path.display())]
    Parquet { path: PathBuf, message: String },
    #[error("table `{table}`: column `{column}` has type {dtype}, which BI tools may not read (use Int64, Float64, String, Boolean, Date or Datetime[µs])")]
    UnsupportedType {
        table: String,
        column: String,
        dtype: String,
    },
    #[error("table `{table}`: column `{column}` holds {count} non-finite value(s) (NaN or ±inf); nothing was published")]
    NonFinite {
        table: String,
        column: String,
        count: usize,
    },
    #[error("{}: another patronage run is writing here ({holder}); wait for it to finish, or use another --out", out.display())]
    Busy { out: PathBuf, holder: String },
    #[error("{}: cannot publish table `{table}`: {source}; the tables published before it were rolled back", out.display())]
    Publish {
        out: PathBuf,
        table: String,
        source: std::io::Error,
    },
    #[error("{}: unreadable publish journal {journal}: {message}; move it away to start afresh", out.display())]
    Journal {
        out: PathBuf,
        journal: String,
        message: String,
    },
    #[error("cannot serialize the manifest: {0}")]
    Manifest(#[from] serde_json::Error),
    #[error("{}: {message}; nothing was published", table.display())]
    Format { table: PathBuf, message: String },
    #[error("{}: cannot read its Delta log: {message}", table.display())]
    DeltaLog { table: PathBuf, message: String },
}

/// How a run's tables are laid out in OUT.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TableFormat {
    /// Hive-partitioned Parquet: `OUT/<table>/run_date=<as-of>/part-<k>.parquet`.
    #[default]
    Parquet,
    /// A Delta Lake table per table, partitioned by `run_date`, one commit per run.
    Delta,
}

impl TableFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            TableFormat::Parquet => "parquet",
            TableFormat::Delta => "delta",
        }
    }
}

impl std::str::FromStr for TableFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "parquet" => Ok(TableFormat::Parquet),
            "delta" => Ok(TableFormat::Delta),
            _ => Err(format!("`{s}` is not a table format (parquet or delta)")),
        }
    }
}

/// Column types every BI tool we target reads: no unsigned, no nanoseconds, no nested types.
fn check_types(table: &str, df: &DataFrame) -> Result<(), OutputError> {
    for col in df.columns() {
        let ok = matches!(
            col.dtype(),
            DataType::Int64
                | DataType::Float64
                | DataType::String
                | DataType::Boolean
                | DataType::Date
                | DataType::Datetime(TimeUnit::Microseconds, _)
        );
        if !ok {
            return Err(OutputError::UnsupportedType {
                table: table.to_string(),
                column: col.name().to_string(),
                dtype: col.dtype().to_string(),
            });
        }
        if let Ok(values) = col.f64() {
            let count = values
                .iter()
                .filter(|v| v.is_some_and(|v| !v.is_finite()))
                .count();
            if count > 0 {
                return Err(OutputError::NonFinite {
                    table: table.to_string(),
                    column: col.name().to_string(),
                    count,
                });
            }
        }
    }
    Ok(())
}

/// Writes one frame to a Parquet file, creating parent directories. Snappy: every BI reader
/// (DuckDB, Spark, pyarrow, Power BI, Tableau) decodes it, and it writes several times faster
/// than zstd on wide per-customer tables.
pub fn write_parquet(path: &Path, df: &mut DataFrame) -> Result<(), OutputError> {
    write_parquet_described(path, df, &Described::none())
}

/// A column's description, by its name.
pub type DescribeColumn<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// What a table's file says about itself: each column's description and file-level keys.
pub struct Described<'a> {
    pub columns: DescribeColumn<'a>,
    pub file: Vec<(String, String)>,
}

impl Described<'_> {
    pub fn none() -> Described<'static> {
        Described {
            columns: Box::new(|_| None),
            file: Vec::new(),
        }
    }
}

/// [`write_parquet`] with each column's description stored in the file's Arrow schema as the
/// field's `description` metadata (pyarrow's `schema.field(c).metadata`, Spark and pandas read
/// it) and `described.file` as file-level key-value metadata. The Arrow schema is the one
/// polars writes, plus that metadata.
pub fn write_parquet_described(
    path: &Path,
    df: &mut DataFrame,
    described: &Described<'_>,
) -> Result<(), OutputError> {
    let describe = &described.columns;
    if let Some(parent) = path.parent() {
        fs_err::create_dir_all(parent)?;
    }
    let mut schema = df.schema().to_arrow(CompatLevel::newest());
    let mut any_described = false;
    for (name, field) in schema.iter_mut() {
        if let Some(d) = describe(name.as_str()) {
            let metadata: polars_arrow::datatypes::Metadata =
                [("description".into(), d.into())].into_iter().collect();
            field.metadata = Some(std::sync::Arc::new(metadata));
            any_described = true;
        }
    }
    let key_value = (any_described || !described.file.is_empty()).then(|| {
        let kv = polars_parquet::write::schema_to_metadata_key(&schema);
        let mut pairs = vec![(kv.key, kv.value.unwrap_or_default())];
        pairs.extend(described.file.iter().cloned());
        KeyValueMetadata::from_static(pairs)
    });
    let file = fs_err::File::create(path)?;
    ParquetWriter::new(file.into_parts().0)
        .with_compression(ParquetCompression::Snappy)
        .with_key_value_metadata(key_value)
        .finish(df)
        .map_err(|e| OutputError::Parquet {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(())
}

/// Test hook: `PATRONAGE_FAIL_AT=<point>` aborts the process at that point of a publish, as a
/// SIGKILL would (no destructor runs). Points: `journal` (journal written, nothing swapped),
/// `swap:<table>` (that table swapped), `manifest` (manifest in place, journal not yet removed).
fn fail_point(point: &str) {
    if std::env::var("PATRONAGE_FAIL_AT").is_ok_and(|v| v == point) {
        std::process::abort();
    }
}

const CONTROL: &str = ".patronage";

/// The output directory of a run, locked for the run's lifetime.
pub struct OutDir {
    out: PathBuf,
    control: PathBuf,
    _lock: std::fs::File,
}

/// A journal entry: one staged partition.
#[derive(Debug, Serialize, Deserialize)]
struct JournalTable {
    table: String,
    /// Inode of the staged (new) partition directory.
    inode: u64,
    /// Delta: the staged partition's files, committed as `<name without .parquet>-<run>.parquet`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    parts: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    run_date: String,
    /// Staging directory name under `.patronage/staging/`.
    staging: String,
    tables: Vec<JournalTable>,
    /// Tables whose partition for this run date is removed (this run does not write them).
    stale: Vec<String>,
    /// Model artifacts, swapped in like partitions: `table` is the path under OUT.
    #[serde(default)]
    artifacts: Vec<JournalTable>,
    #[serde(default)]
    format: TableFormat,
}

/// Staged artifacts live under this directory of a staging area.
const ARTIFACTS: &str = "artifacts";

fn partition(root: &Path, table: &str, run_date: &str) -> PathBuf {
    root.join(table).join(format!("run_date={run_date}"))
}

/// Swaps two paths atomically (both must exist).
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).map_err(std::io::Error::from)
    }
    #[cfg(not(target_os = "linux"))]
    {
        // No atomic exchange: a short window in which `b` is missing.
        let tmp = a.with_extension("exchange");
        fs_err::rename(b, &tmp)?;
        fs_err::rename(a, b)?;
        fs_err::rename(&tmp, a)
    }
}

pub(crate) fn sync_dir(dir: &Path) {
    // Best effort: a directory fsync makes the renames in it durable.
    if let Ok(d) = fs_err::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn inode(p: &Path) -> Option<u64> {
    fs_err::symlink_metadata(p).ok().map(|m| m.ino())
}

impl OutDir {
    /// Creates OUT if needed, takes its lock, completes an interrupted publish and removes what
    /// killed runs left behind. Returns the notes of what it repaired (for the user).
    pub fn open(out: &Path) -> Result<(OutDir, Vec<String>), OutputError> {
        let control = out.join(CONTROL);
        fs_err::create_dir_all(control.join("staging"))?;
        let lock_path = control.join("lock");
        let mut lock = fs_err::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)?
            .into_parts()
            .0;
        use rustix::fs::{flock, FlockOperation};
        if flock(&lock, FlockOperation::NonBlockingLockExclusive).is_err() {
            let holder = fs_err::read_to_string(&lock_path)
                .ok()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| "holder unknown".into());
            return Err(OutputError::Busy {
                out: out.to_path_buf(),
                holder: holder.trim().to_string(),
            });
        }
        {
            use std::io::{Seek, Write};
            let _ = lock.set_len(0);
            let _ = lock.rewind();
            let _ = write!(lock, "pid {}", std::process::id());
        }
        let dir = OutDir {
            out: out.to_path_buf(),
            control,
            _lock: lock,
        };
        let notes = dir.recover()?;
        Ok((dir, notes))
    }

    pub fn path(&self) -> &Path {
        &self.out
    }

    fn journal_path(&self) -> PathBuf {
        self.control.join("journal.json")
    }

    fn staging_root(&self) -> PathBuf {
        self.control.join("staging")
    }

    fn recover(&self) -> Result<Vec<String>, OutputError> {
        let mut notes = Vec::new();
        let journal_path = self.journal_path();
        if journal_path.exists() {
            let bad = |message: String| OutputError::Journal {
                out: self.out.clone(),
                journal: journal_path.display().to_string(),
                message,
            };
            let text = fs_err::read_to_string(&journal_path)?;
            let journal: Journal = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
            self.apply(&journal, &mut Vec::new())
                .map_err(|(table, e)| bad(format!("table `{table}`: {e}")))?;
            notes.push(format!(
                "completed the publish of run date {} that an earlier run left unfinished",
                journal.run_date
            ));
        }
        // Staging areas of runs that died before publishing: we hold the lock, so none is live.
        for entry in fs_err::read_dir(self.staging_root())? {
            fs_err::remove_dir_all(entry?.path())?;
        }
        // Leftovers of earlier versions, which staged inside OUT and under each table.
        for entry in fs_err::read_dir(&self.out)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.starts_with(".staging-") && path.is_dir() {
                fs_err::remove_dir_all(&path)?;
                notes.push(format!("removed an abandoned staging directory {name}"));
            } else if path.is_dir() && !name.starts_with('.') {
                for sub in fs_err::read_dir(&path)? {
                    let sub = sub?;
                    if sub.file_name().to_string_lossy().starts_with(".replaced-") {
                        fs_err::remove_dir_all(sub.path())?;
                        notes.push(format!(
                            "removed {}, left by an interrupted publish of an earlier version",
                            sub.path().display()
                        ));
                    }
                }
            }
        }
        Ok(notes)
    }

    /// Rolls a journal forward: swaps every staged partition not yet swapped, removes stale
    /// partitions, moves the manifest into place, removes the journal and the staging area.
    /// Idempotent, so a crash at any point of it is completed by the next run. Delta commits
    /// made are pushed to `commits` (for a rollback).
    fn apply(
        &self,
        j: &Journal,
        commits: &mut Vec<(String, delta::Committed)>,
    ) -> Result<(), (String, std::io::Error)> {
        let staging = self.staging_root().join(&j.staging);
        if j.format == TableFormat::Delta {
            self.apply_delta(j, &staging, commits)?;
        }
        for t in j.tables.iter().filter(|_| j.format == TableFormat::Parquet) {
            let at = |e: std::io::Error| (t.table.clone(), e);
            let staged = partition(&staging, &t.table, &j.run_date);
            let target = partition(&self.out, &t.table, &j.run_date);
            if inode(&target) == Some(t.inode) {
                continue; // swapped before the interruption
            }
            if inode(&staged) != Some(t.inode) {
                return Err(at(std::io::Error::other(
                    "neither the published nor the staged partition is the one this run wrote",
                )));
            }
            fs_err::create_dir_all(self.out.join(&t.table)).map_err(at)?;
            if target.exists() {
                exchange(&staged, &target).map_err(at)?;
            } else {
                fs_err::rename(&staged, &target).map_err(at)?;
            }
            sync_dir(&self.out.join(&t.table));
            fail_point(&format!("swap:{}", t.table));
        }
        for a in &j.artifacts {
            let at = |e: std::io::Error| (a.table.clone(), e);
            let staged = staging.join(ARTIFACTS).join(&a.table);
            let target = self.out.join(&a.table);
            if inode(&target) == Some(a.inode) {
                continue;
            }
            if inode(&staged) != Some(a.inode) {
                return Err(at(std::io::Error::other(
                    "neither the published nor the staged artifact is the one this run wrote",
                )));
            }
            let parent = target.parent().unwrap_or(&self.out);
            fs_err::create_dir_all(parent).map_err(at)?;
            if target.exists() {
                exchange(&staged, &target).map_err(at)?;
            } else {
                fs_err::rename(&staged, &target).map_err(at)?;
            }
            sync_dir(parent);
            fail_point(&format!("artifact:{}", a.table));
        }
        for table in j.stale.iter().filter(|_| j.format == TableFormat::Parquet) {
            let at = |e: std::io::Error| (table.clone(), e);
            let target = partition(&self.out, table, &j.run_date);
            if target.exists() {
                let trash = staging.join(".stale").join(table);
                fs_err::create_dir_all(&trash).map_err(at)?;
                fs_err::rename(&target, trash.join("partition")).map_err(at)?;
            }
        }
        let staged_manifest = staging.join("manifest.json");
        let manifests = self.out.join("manifests");
        let at = |e: std::io::Error| ("manifest".to_string(), e);
        if staged_manifest.exists() {
            fs_err::create_dir_all(&manifests).map_err(at)?;
            fs_err::rename(
                &staged_manifest,
                manifests.join(format!("{}.json", j.run_date)),
            )
            .map_err(at)?;
            sync_dir(&manifests);
        }
        fail_point("manifest");
        fs_err::remove_file(self.journal_path()).map_err(at)?;
        sync_dir(&self.control);
        fs_err::remove_dir_all(&staging).map_err(at)?;
        Ok(())
    }

    /// [`OutDir::apply`]'s tables for a Delta run: each table's commit (a stale table's
    /// partition removed by one), skipped when the log already holds this run's.
    fn apply_delta(
        &self,
        j: &Journal,
        staging: &Path,
        commits: &mut Vec<(String, delta::Committed)>,
    ) -> Result<(), (String, std::io::Error)> {
        let written = j.tables.iter().map(|t| (&t.table, t.parts.as_slice()));
        let stale = j.stale.iter().map(|t| (t, &[][..]));
        for (table, parts) in written.chain(stale) {
            let staged = partition(staging, table, &j.run_date);
            let parts: Vec<(PathBuf, String)> = parts
                .iter()
                .map(|name| {
                    let stem = name.strip_suffix(".parquet").unwrap_or(name);
                    (staged.join(name), format!("{stem}-{}.parquet", j.staging))
                })
                .collect();
            let dir = self.out.join(table);
            if parts.is_empty() && !delta::is_table(&dir) {
                continue;
            }
            match delta::replace_partition(&dir, &j.run_date, &j.staging, &parts) {
                Ok(Some(done)) => commits.push((table.clone(), done)),
                Ok(None) => {}
                Err(message) => return Err((table.clone(), std::io::Error::other(message))),
            }
            fail_point(&format!("swap:{table}"));
        }
        Ok(())
    }

    /// Checks, before anything is published, that every table this run touches is in
    /// `format` (or new) and, for Delta, one patronage may write.
    fn check_format(&self, tables: &[&str], format: TableFormat) -> Result<(), OutputError> {
        for table in tables {
            let dir = self.out.join(table);
            if !dir.is_dir() {
                continue; // new, or not a table at all: the publish reports it
            }
            let is_delta = delta::is_table(&dir);
            let has_partitions = fs_err::read_dir(&dir)?
                .any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("run_date=")));
            let message = match format {
                TableFormat::Parquet if is_delta => Some(
                    "it is a Delta table; run with --format delta, or use another --out".into(),
                ),
                TableFormat::Delta if !is_delta && has_partitions => Some(
                    "it holds Parquet partitions, not a Delta table; run with --format parquet,                      or use another --out"
                        .into(),
                ),
                TableFormat::Delta if is_delta => delta::snapshot(&dir)
                    .map_err(|message| OutputError::DeltaLog {
                        table: dir.clone(),
                        message,
                    })?
                    .refuse()
                    .map(|why| format!("patronage cannot write this Delta table: {why}")),
                _ => None,
            };
            if let Some(message) = message {
                return Err(OutputError::Format {
                    table: dir,
                    message,
                });
            }
        }
        Ok(())
    }

    /// Starts writing a run's tables for `run_date`, to be published in `format`.
    pub fn stage(&self, run_date: &str, format: TableFormat) -> Result<Staging<'_>, OutputError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("{run_date}-{}-{nanos}", std::process::id());
        let dir = self.staging_root().join(&name);
        fs_err::create_dir_all(&dir)?;
        Ok(Staging {
            out: self,
            run_date: run_date.to_string(),
            name,
            dir,
            tables: Vec::new(),
            artifacts: Vec::new(),
            published: false,
            format,
        })
    }

    /// An empty private directory `OUT/.patronage/<name>/` for a run's scratch files (e.g. a
    /// partitioned run's routed inputs), emptied if a killed run left one; only the lock
    /// holder uses it.
    pub fn scratch(&self, name: &str) -> Result<PathBuf, OutputError> {
        let dir = self.control.join(name);
        if dir.exists() {
            fs_err::remove_dir_all(&dir)?;
        }
        fs_err::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// Writes what a run that publishes nothing leaves for the user (e.g. its rejected rows) to
    /// `OUT/.patronage/failed/<run_date>/<file>`, replacing an earlier failure's; returns the path.
    pub fn write_failed(
        &self,
        run_date: &str,
        file: &str,
        df: &mut DataFrame,
    ) -> Result<PathBuf, OutputError> {
        let path = self.control.join("failed").join(run_date).join(file);
        write_parquet(&path, df)?;
        Ok(path)
    }
}

/// The data files of `table`'s `run_date` partition in OUT, in either layout (for a Delta
/// table, the files its log holds live); `None` when there are none.
pub fn partition_files(
    out: &Path,
    table: &str,
    run_date: &str,
) -> Result<Option<Vec<PathBuf>>, OutputError> {
    let dir = out.join(table);
    let files = if delta::is_table(&dir) {
        delta::live_files(&dir, run_date).map_err(|message| OutputError::DeltaLog {
            table: dir.clone(),
            message,
        })?
    } else {
        let Ok(entries) = fs_err::read_dir(partition(out, table, run_date)) else {
            return Ok(None);
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
            .collect();
        files.sort();
        files
    };
    Ok((!files.is_empty()).then_some(files))
}

/// Writes one table's file outside a run (a partition's part of it, for a later publish),
/// with the checks [`Staging::write_table`] makes.
pub fn write_table_file(
    path: &Path,
    table: &str,
    df: &mut DataFrame,
    described: &Described<'_>,
) -> Result<(), OutputError> {
    check_types(table, df)?;
    write_parquet_described(path, df, described)
}

/// A run being written; nothing is visible to readers until [`Staging::publish`].
pub struct Staging<'o> {
    out: &'o OutDir,
    run_date: String,
    name: String,
    dir: PathBuf,
    tables: Vec<String>,
    /// Artifacts written, as paths under OUT.
    artifacts: Vec<String>,
    published: bool,
    format: TableFormat,
}

/// What a publish put where.
#[derive(Debug, Clone)]
pub struct Published {
    pub tables: Vec<(String, PathBuf)>,
    pub manifest: PathBuf,
}

impl Staging<'_> {
    /// Stages a model artifact published as `OUT/<dir>/<run date>.json` (atomically, with the
    /// tables: a failed publish leaves the previous one).
    pub fn write_artifact(&mut self, dir: &str, bytes: &[u8]) -> Result<(), OutputError> {
        let rel = format!("{dir}/{}.json", self.run_date);
        let path = self.dir.join(ARTIFACTS).join(&rel);
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent)?;
        }
        fs_err::write(&path, bytes)?;
        self.artifacts.push(rel);
        Ok(())
    }

    /// Writes `table` into staging; checks its column types and that every float is finite.
    pub fn write_table(
        &mut self,
        table: &str,
        df: &mut DataFrame,
        described: &Described<'_>,
    ) -> Result<(), OutputError> {
        check_types(table, df)?;
        write_parquet_described(
            &partition(&self.dir, table, &self.run_date).join("part-0.parquet"),
            df,
            described,
        )?;
        self.tables.push(table.to_string());
        Ok(())
    }

    /// Where [`Staging::write_table`] puts `table`'s file: a caller writing several tables at
    /// once writes each there with [`write_table_file`], then stages it with
    /// [`Staging::add_written`].
    pub fn table_path(&self, table: &str) -> PathBuf {
        partition(&self.dir, table, &self.run_date).join("part-0.parquet")
    }

    /// Stages `table`, written to [`Staging::table_path`].
    pub fn add_written(&mut self, table: &str) {
        if !self.tables.iter().any(|t| t == table) {
            self.tables.push(table.to_string());
        }
    }

    /// Stages part `k` of `table` (`part-<k>.parquet`) from a file [`write_table_file`] wrote:
    /// a partitioned run's table is its partitions' parts.
    pub fn copy_table_part(
        &mut self,
        table: &str,
        k: usize,
        from: &Path,
    ) -> Result<(), OutputError> {
        let dir = partition(&self.dir, table, &self.run_date);
        fs_err::create_dir_all(&dir)?;
        fs_err::copy(from, dir.join(format!("part-{k}.parquet")))?;
        if !self.tables.iter().any(|t| t == table) {
            self.tables.push(table.to_string());
        }
        Ok(())
    }

    /// Publishes the staged tables and then the manifest (see the module docs). This run date's
    /// partition of any table in `known_tables` that this run did not write is removed, so a
    /// rerun never leaves a stale table beside fresh ones.
    pub fn publish(
        mut self,
        manifest: &serde_json::Value,
        known_tables: &[&str],
    ) -> Result<Published, OutputError> {
        fs_err::write(
            self.dir.join("manifest.json"),
            serde_json::to_vec_pretty(manifest)?,
        )?;
        let touched: Vec<&str> = self
            .tables
            .iter()
            .map(String::as_str)
            .chain(known_tables.iter().copied())
            .collect();
        self.out.check_format(&touched, self.format)?;
        let mut tables = Vec::new();
        for table in &self.tables {
            let staged = partition(&self.dir, table, &self.run_date);
            let mut parts = Vec::new();
            if self.format == TableFormat::Delta {
                for entry in fs_err::read_dir(&staged)? {
                    parts.push(entry?.file_name().to_string_lossy().into_owned());
                }
                parts.sort();
            }
            tables.push(JournalTable {
                table: table.clone(),
                inode: inode(&staged).ok_or_else(|| {
                    std::io::Error::other(format!("{} vanished", staged.display()))
                })?,
                parts,
            });
        }
        let mut artifacts = Vec::new();
        for rel in &self.artifacts {
            let staged = self.dir.join(ARTIFACTS).join(rel);
            artifacts.push(JournalTable {
                table: rel.clone(),
                inode: inode(&staged).ok_or_else(|| {
                    std::io::Error::other(format!("{} vanished", staged.display()))
                })?,
                parts: Vec::new(),
            });
        }
        let journal = Journal {
            artifacts,
            run_date: self.run_date.clone(),
            staging: self.name.clone(),
            tables,
            stale: known_tables
                .iter()
                .filter(|t| !self.tables.iter().any(|w| w == *t))
                .map(|t| t.to_string())
                .collect(),
            format: self.format,
        };
        let journal_path = self.out.journal_path();
        let tmp = self.out.control.join("journal.json.tmp");
        {
            use std::io::Write;
            let mut f = fs_err::File::create(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(&journal)?)?;
            f.sync_all()?;
        }
        fs_err::rename(&tmp, &journal_path)?;
        sync_dir(&self.out.control);
        fail_point("journal");
        let mut commits = Vec::new();
        if let Err((table, source)) = self.out.apply(&journal, &mut commits) {
            self.rollback(&journal, &commits);
            return Err(OutputError::Publish {
                out: self.out.out.clone(),
                table,
                source,
            });
        }
        self.published = true;
        Ok(Published {
            tables: self
                .tables
                .iter()
                .map(|t| {
                    let path = match self.format {
                        TableFormat::Parquet => {
                            partition(&self.out.out, t, &self.run_date).join("part-0.parquet")
                        }
                        TableFormat::Delta => self.out.out.join(t),
                    };
                    (t.clone(), path)
                })
                .collect(),
            manifest: self
                .out
                .out
                .join("manifests")
                .join(format!("{}.json", self.run_date)),
        })
    }

    /// Undoes a failed [`OutDir::apply`]: swaps back the partitions it swapped, restores stale
    /// partitions it moved, removes the journal. Best effort: the error that caused it is what
    /// the user sees. Delta commits are undone by restoring commits.
    fn rollback(&self, j: &Journal, commits: &[(String, delta::Committed)]) {
        for (table, done) in commits.iter().rev() {
            let _ = delta::restore(&self.out.out.join(table), &j.staging, done);
        }
        for t in j.tables.iter().filter(|_| j.format == TableFormat::Parquet) {
            let staged = partition(&self.dir, &t.table, &j.run_date);
            let target = partition(&self.out.out, &t.table, &j.run_date);
            if inode(&target) == Some(t.inode) {
                if staged.exists() {
                    let _ = exchange(&staged, &target);
                } else {
                    let _ = fs_err::rename(&target, &staged);
                }
            }
        }
        for a in &j.artifacts {
            let staged = self.dir.join(ARTIFACTS).join(&a.table);
            let target = self.out.out.join(&a.table);
            if inode(&target) == Some(a.inode) {
                if staged.exists() {
                    let _ = exchange(&staged, &target);
                } else {
                    let _ = fs_err::rename(&target, &staged);
                }
            }
        }
        for table in j.stale.iter().filter(|_| j.format == TableFormat::Parquet) {
            let moved = self.dir.join(".stale").join(table).join("partition");
            if moved.exists() {
                let _ = fs_err::rename(&moved, partition(&self.out.out, table, &j.run_date));
            }
        }
        let _ = fs_err::remove_file(self.out.journal_path());
    }
}

impl Drop for Staging<'_> {
    fn drop(&mut self) {
        if !self.published {
            // Best effort: a failed run must not leave a half-written staging area behind.
            let _ = fs_err::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(v: i64) -> DataFrame {
        DataFrame::new(1, vec![Column::new("x".into(), vec![v])]).unwrap()
    }

    fn visible(out: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs_err::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn unpublished_staging_leaves_no_trace_and_publish_replaces() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path();
        {
            let (dir, _) = OutDir::open(out).unwrap();
            let mut s = dir.stage("2024-01-01", TableFormat::Parquet).unwrap();
            s.write_table("t", &mut frame(1), &Described::none())
                .unwrap();
        }
        assert!(visible(out).is_empty());
        assert_eq!(
            fs_err::read_dir(out.join(".patronage/staging"))
                .unwrap()
                .count(),
            0
        );

        for v in [1, 2] {
            let (dir, _) = OutDir::open(out).unwrap();
            let mut s = dir.stage("2024-01-01", TableFormat::Parquet).unwrap();
            s.write_table("t", &mut frame(v), &Described::none())
                .unwrap();
            let p = s.publish(&serde_json::json!({"v": v}), &["t"]).unwrap();
            assert_eq!(p.tables.len(), 1);
        }
        let entries: Vec<_> = fs_err::read_dir(out.join("t")).unwrap().collect();
        assert_eq!(entries.len(), 1);
        let m = fs_err::read_to_string(out.join("manifests/2024-01-01.json")).unwrap();
        assert!(m.contains("\"v\": 2"));
        assert!(!out.join(".patronage/journal.json").exists());
    }

    #[test]
    fn a_second_run_on_the_same_out_is_refused_while_the_first_holds_it() {
        let tmp = tempfile::tempdir().unwrap();
        let (_first, _) = OutDir::open(tmp.path()).unwrap();
        let second = OutDir::open(tmp.path());
        assert!(matches!(second, Err(OutputError::Busy { .. })));
    }

    #[test]
    fn a_failed_swap_rolls_back_the_tables_already_swapped() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path();
        let publish = |v: i64| {
            let (dir, _) = OutDir::open(out).unwrap();
            let mut s = dir.stage("2024-01-01", TableFormat::Parquet).unwrap();
            s.write_table("a", &mut frame(v), &Described::none())
                .unwrap();
            s.write_table("b", &mut frame(v), &Described::none())
                .unwrap();
            s.publish(&serde_json::json!({"v": v}), &["a", "b"])
                .map(|_| ())
        };
        publish(1).unwrap();
        let old_a = inode(&partition(out, "a", "2024-01-01"));
        // Table `b`'s directory becomes a file: its swap fails after `a` was swapped.
        fs_err::remove_dir_all(out.join("b")).unwrap();
        fs_err::write(out.join("b"), b"not a directory").unwrap();
        let err = publish(2).unwrap_err();
        assert!(
            matches!(err, OutputError::Publish { ref table, .. } if table == "b"),
            "{err}"
        );
        assert_eq!(inode(&partition(out, "a", "2024-01-01")), old_a);
        let m = fs_err::read_to_string(out.join("manifests/2024-01-01.json")).unwrap();
        assert!(m.contains("\"v\": 1"), "the old manifest stays: {m}");
        assert!(!out.join(".patronage/journal.json").exists());
    }

    #[test]
    fn a_failed_delta_publish_restores_the_tables_already_committed() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path();
        let publish = |v: i64| {
            let (dir, _) = OutDir::open(out).unwrap();
            let mut s = dir.stage("2024-01-01", TableFormat::Delta).unwrap();
            for t in ["a", "b"] {
                s.write_table(t, &mut frame(v), &Described::none()).unwrap();
            }
            s.publish(&serde_json::json!({"v": v}), &["a", "b"])
                .map(|_| ())
        };
        publish(1).unwrap();
        let first = partition_files(out, "a", "2024-01-01").unwrap().unwrap();
        assert_eq!(first.len(), 1);
        // Table `b` becomes a file: its commit fails after `a` committed.
        fs_err::remove_dir_all(out.join("b")).unwrap();
        fs_err::write(out.join("b"), b"not a table").unwrap();
        let err = publish(2).unwrap_err();
        assert!(
            matches!(err, OutputError::Publish { ref table, .. } if table == "b"),
            "{err}"
        );
        // `a`: created, the failed run's commit, the restoring commit; the first file live.
        let log = fs_err::read_dir(out.join("a/_delta_log")).unwrap().count();
        assert_eq!(log, 3);
        assert_eq!(
            partition_files(out, "a", "2024-01-01").unwrap().unwrap(),
            first
        );
        let m = fs_err::read_to_string(out.join("manifests/2024-01-01.json")).unwrap();
        assert!(m.contains("\"v\": 1"), "the old manifest stays: {m}");
    }

    #[test]
    fn unsigned_and_non_finite_columns_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, _) = OutDir::open(tmp.path()).unwrap();
        let mut s = dir.stage("2024-01-01", TableFormat::Parquet).unwrap();
        let mut df = DataFrame::new(1, vec![Column::new("x".into(), vec![1u32])]).unwrap();
        assert!(matches!(
            s.write_table("t", &mut df, &Described::none()),
            Err(OutputError::UnsupportedType { .. })
        ));
        let mut df = DataFrame::new(
            2,
            vec![Column::new("x".into(), vec![Some(1.0), Some(f64::NAN)])],
        )
        .unwrap();
        assert!(matches!(
            s.write_table("t", &mut df, &Described::none()),
            Err(OutputError::NonFinite { count: 1, .. })
        ));
    }
}
