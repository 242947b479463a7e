//! `--format delta`: every table a Delta Lake table partitioned by `run_date`, one commit per
//! table per run (docs/design.md §6).
//!
//! Layout: `OUT/<table>/_delta_log/<version>.json` (the transaction log) and the data files
//! `OUT/<table>/run_date=<as-of>/part-<k>-<run>.parquet`, written by the same Parquet writer as
//! the default layout (so every column's description travels in the files as well).
//!
//! Publishing a run's partition is one commit: `remove` actions for the partition's live files,
//! `add` actions for the new ones, a `metaData` action when the table is new or its schema
//! grows, and a `commitInfo` naming the run. The commit file is created with a hard link, which
//! fails if the version exists (put-if-absent), so a commit is atomic and a concurrent writer's
//! commit is never overwritten: on a conflict the log is read again and the commit retried.
//! Data files are moved into the table before the commit and are invisible until it lands; the
//! files a rerun replaces stay on disk, as Delta's time travel needs, until a `VACUUM`.
//!
//! Why not the `deltalake` crate (delta-rs): version 1.1 needs a TLS stack even for local
//! tables (rustls or native-tls, with reqwest, hyper and tokio), builds a second arrow and
//! parquet (59, beside our 60) and about 250 crates, to write what is, for an append of
//! files we already wrote, a few JSON lines per commit. What we write is checked by delta-rs
//! itself (Python `deltalake`), by DuckDB's `delta` extension (delta-kernel-rs) and by polars
//! in `scripts/delta-readers.sh`.
//!
//! The protocol we write and accept is reader version 1, writer version 2: no column mapping,
//! deletion vectors, constraints or generated columns. A table another writer has moved past
//! that, or given other partition columns, is refused with the reason; so is a log that starts
//! at a checkpoint (we read JSON commits only).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

pub(crate) const LOG: &str = "_delta_log";
pub(crate) const PARTITION_COLUMN: &str = "run_date";
const ENGINE: &str = concat!("patronage/", env!("CARGO_PKG_VERSION"));
/// Commits tried before a writer that keeps committing beside us is reported.
const ATTEMPTS: usize = 5;

/// What a table's log says at its latest version.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub version: Option<u64>,
    protocol: Option<(u64, u64)>,
    meta: Option<Map<String, Value>>,
    /// Live files: their path (as the log spells it) → their `add` action.
    files: BTreeMap<String, Map<String, Value>>,
    /// Runs whose commit is in the log (`commitInfo.patronageRun`).
    runs: BTreeSet<String>,
}

/// A commit this process made: what a rollback restores.
#[derive(Debug)]
pub(crate) struct Committed {
    /// The `add` actions of the files the commit removed.
    removed: Vec<Map<String, Value>>,
    /// The paths it added.
    added: Vec<String>,
}

fn is_version(name: &str) -> Option<u64> {
    let v = name.strip_suffix(".json")?;
    (v.len() == 20 && v.bytes().all(|b| b.is_ascii_digit()))
        .then(|| v.parse().ok())
        .flatten()
}

/// Whether `table` (a directory) is a Delta table.
pub(crate) fn is_table(table: &Path) -> bool {
    table.join(LOG).is_dir()
}

/// Reads the log of `table` (an empty snapshot when there is none).
pub(crate) fn snapshot(table: &Path) -> Result<Snapshot, String> {
    let log = table.join(LOG);
    let mut snap = Snapshot::default();
    let Ok(entries) = fs_err::read_dir(&log) else {
        return Ok(snap);
    };
    let mut versions = Vec::new();
    let mut checkpoint = false;
    for entry in entries {
        let name = entry.map_err(|e| e.to_string())?.file_name();
        let name = name.to_string_lossy();
        if let Some(v) = is_version(&name) {
            versions.push(v);
        } else if name.contains(".checkpoint") {
            checkpoint = true;
        }
    }
    versions.sort_unstable();
    for (i, &v) in versions.iter().enumerate() {
        if v != i as u64 {
            return Err(if checkpoint && i == 0 {
                format!(
                    "its log starts at a checkpoint (version {v}); patronage reads JSON commits only"
                )
            } else {
                format!("its log has no commit {i:020}.json")
            });
        }
    }
    for &v in &versions {
        let path = log.join(format!("{v:020}.json"));
        let text = fs_err::read_to_string(&path).map_err(|e| e.to_string())?;
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let action: Map<String, Value> = serde_json::from_str(line)
                .map_err(|e| format!("{}, line {}: {e}", path.display(), n + 1))?;
            snap.apply(action);
        }
        snap.version = Some(v);
    }
    Ok(snap)
}

impl Snapshot {
    fn apply(&mut self, action: Map<String, Value>) {
        for (kind, body) in action {
            let Value::Object(body) = body else { continue };
            let path = || body.get("path").and_then(Value::as_str).map(str::to_string);
            match kind.as_str() {
                "protocol" => {
                    let get = |k: &str| body.get(k).and_then(Value::as_u64).unwrap_or(0);
                    self.protocol = Some((get("minReaderVersion"), get("minWriterVersion")));
                }
                "metaData" => self.meta = Some(body),
                "add" => {
                    if let Some(p) = path() {
                        self.files.insert(p, body);
                    }
                }
                "remove" => {
                    if let Some(p) = path() {
                        self.files.remove(&p);
                    }
                }
                "commitInfo" => {
                    if let Some(run) = body.get("patronageRun").and_then(Value::as_str) {
                        self.runs.insert(run.to_string());
                    }
                }
                _ => {}
            }
        }
    }

    /// The live files of the `run_date` partition, as the log spells their paths.
    fn partition<'a>(
        &'a self,
        run_date: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a Map<String, Value>)> + 'a {
        self.files.iter().filter(move |(_, add)| {
            add.get("partitionValues")
                .and_then(|p| p.get(PARTITION_COLUMN))
                .and_then(Value::as_str)
                == Some(run_date)
        })
    }

    /// Why this process must not write the table, if it must not.
    pub(crate) fn refuse(&self) -> Option<String> {
        if let Some((reader, writer)) = self.protocol {
            if reader > 1 || writer > 2 {
                return Some(format!(
                    "its protocol asks for reader version {reader} and writer version {writer}; \
                     patronage writes reader version 1, writer version 2 (no column mapping, \
                     deletion vectors, constraints or generated columns)"
                ));
            }
        }
        let columns = self
            .meta
            .as_ref()
            .and_then(|m| m.get("partitionColumns"))
            .cloned();
        match columns {
            None => None,
            Some(c) if c == json!([PARTITION_COLUMN]) => None,
            Some(c) => Some(format!(
                "it is partitioned by {c}, not by [\"{PARTITION_COLUMN}\"]"
            )),
        }
    }
}

/// Decodes a log path (a relative URI) to a file path under the table.
fn decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' {
            if let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|&b| hex(b)),
                bytes.get(i + 2).and_then(|&b| hex(b)),
            ) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The live data files of `table`'s `run_date` partition, sorted by path.
pub(crate) fn live_files(table: &Path, run_date: &str) -> Result<Vec<PathBuf>, String> {
    let snap = snapshot(table)?;
    let mut files: Vec<PathBuf> = snap
        .partition(run_date)
        .map(|(p, _)| table.join(decode(p)))
        .collect();
    files.sort();
    Ok(files)
}

/// One column of a Delta schema.
#[derive(Debug, Clone, PartialEq)]
struct Field {
    name: String,
    kind: String,
    comment: Option<String>,
}

impl Field {
    fn to_json(&self) -> Value {
        let metadata = match &self.comment {
            Some(c) => json!({ "comment": c }),
            None => json!({}),
        };
        json!({ "name": self.name, "type": self.kind, "nullable": true, "metadata": metadata })
    }
}

fn delta_type(dt: &arrow::datatypes::DataType) -> Option<&'static str> {
    use arrow::datatypes::{DataType as A, TimeUnit};
    Some(match dt {
        A::Int64 => "long",
        A::Float64 => "double",
        A::Utf8 | A::LargeUtf8 | A::Utf8View => "string",
        A::Boolean => "boolean",
        A::Date32 => "date",
        A::Timestamp(TimeUnit::Microsecond, Some(_)) => "timestamp",
        _ => return None,
    })
}

/// Civil date of a day number (days since 1970-01-01), `YYYY-MM-DD`.
fn civil(days: i32) -> String {
    (chrono::NaiveDate::default() + chrono::Duration::days(i64::from(days)))
        .format("%Y-%m-%d")
        .to_string()
}

/// A data file's columns (with their descriptions) and its Delta statistics (`numRecords`,
/// and `nullCount`, `minValues`, `maxValues` where the Parquet footer has them).
fn describe_file(path: &Path) -> Result<(Vec<Field>, Value), String> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::file::statistics::Statistics;
    let at = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let file = fs_err::File::open(path).map_err(|e| at(&e))?;
    let reader = SerializedFileReader::new(file.into_parts().0).map_err(|e| at(&e))?;
    let meta = reader.metadata();
    let file_meta = meta.file_metadata();
    let schema = parquet::arrow::parquet_to_arrow_schema(
        file_meta.schema_descr(),
        file_meta.key_value_metadata(),
    )
    .map_err(|e| at(&e))?;
    let mut fields = Vec::new();
    for f in schema.fields() {
        let kind = delta_type(f.data_type()).ok_or_else(|| {
            at(&format!(
                "column `{}` has type {}, which patronage does not write to Delta",
                f.name(),
                f.data_type()
            ))
        })?;
        fields.push(Field {
            name: f.name().clone(),
            kind: kind.to_string(),
            comment: f.metadata().get("description").cloned(),
        });
    }
    let (mut nulls, mut mins, mut maxs) = (Map::new(), Map::new(), Map::new());
    for (i, field) in fields.iter().enumerate() {
        let mut null_count = Some(0u64);
        let mut range: Option<(Value, Value)> = None;
        let mut ranged = true;
        for rg in meta.row_groups() {
            let stats = rg.column(i).statistics();
            null_count = match (null_count, stats.and_then(Statistics::null_count_opt)) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            };
            let pair = match stats {
                Some(Statistics::Int64(s)) => s
                    .min_opt()
                    .zip(s.max_opt())
                    .map(|(a, b)| (json!(a), json!(b))),
                Some(Statistics::Double(s)) => s
                    .min_opt()
                    .zip(s.max_opt())
                    .filter(|(a, b)| a.is_finite() && b.is_finite())
                    .map(|(a, b)| (json!(a), json!(b))),
                Some(Statistics::Int32(s)) if field.kind == "date" => s
                    .min_opt()
                    .zip(s.max_opt())
                    .map(|(a, b)| (json!(*a), json!(*b))),
                _ => None,
            };
            let rows = rg.num_rows();
            match pair {
                Some((lo, hi)) => {
                    range = Some(match range {
                        None => (lo, hi),
                        Some((a, b)) => {
                            let num = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
                            (
                                if num(&lo) < num(&a) { lo } else { a },
                                if num(&hi) > num(&b) { hi } else { b },
                            )
                        }
                    })
                }
                // A row group of nulls only has no range; any other gap leaves the column
                // without one.
                None if rows > 0
                    && stats.and_then(Statistics::null_count_opt) != Some(rows as u64) =>
                {
                    ranged = false
                }
                None => {}
            }
        }
        if let Some(n) = null_count {
            nulls.insert(field.name.clone(), json!(n));
        }
        if let (true, Some((lo, hi))) = (ranged, range) {
            let show = |v: Value| match (field.kind.as_str(), v.as_i64()) {
                ("date", Some(d)) => json!(civil(d as i32)),
                _ => v,
            };
            mins.insert(field.name.clone(), show(lo));
            maxs.insert(field.name.clone(), show(hi));
        }
    }
    let stats = json!({
        "numRecords": file_meta.num_rows(),
        "minValues": mins,
        "maxValues": maxs,
        "nullCount": nulls,
    });
    Ok((fields, stats))
}

fn parse_fields(schema_string: &str) -> Result<Vec<Value>, String> {
    let schema: Value = serde_json::from_str(schema_string)
        .map_err(|e| format!("its schemaString is not JSON: {e}"))?;
    schema
        .get("fields")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| "its schemaString has no fields".to_string())
}

/// The table's schema after this commit: the existing columns in their order (descriptions
/// refreshed), then the new file's columns the table lacks. A column whose type changed is
/// refused. `None` when nothing changes.
fn merge_schema(existing: Option<&str>, new: &[Field]) -> Result<Option<String>, String> {
    let run_date = Field {
        name: PARTITION_COLUMN.into(),
        kind: "date".into(),
        comment: Some("The run's as-of date: the table's partition.".into()),
    };
    let Some(existing) = existing else {
        let mut fields: Vec<Value> = new.iter().map(Field::to_json).collect();
        fields.push(run_date.to_json());
        return Ok(Some(
            json!({ "type": "struct", "fields": fields }).to_string(),
        ));
    };
    let mut fields = parse_fields(existing)?;
    for f in fields.iter_mut() {
        let name = f.get("name").and_then(Value::as_str).unwrap_or_default();
        if let Some(n) = new.iter().find(|n| n.name == name) {
            let kind = f.get("type").cloned().unwrap_or(Value::Null);
            if kind != json!(n.kind) {
                return Err(format!(
                    "column `{name}` is {kind} in the table and {} in this run; \
                     Delta does not change a column's type in place",
                    n.kind
                ));
            }
            *f = n.to_json();
        }
    }
    for n in new {
        if !fields.iter().any(|f| f.get("name") == Some(&json!(n.name))) {
            fields.push(n.to_json());
        }
    }
    let merged = json!({ "type": "struct", "fields": fields });
    let before: Value = serde_json::from_str(existing).unwrap_or(Value::Null);
    Ok((merged != before).then(|| merged.to_string()))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A table id: Delta asks for a GUID; 128 bits from the clock, the process and the path.
fn table_id(table: &Path) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut bits = [0u64; 2];
    for (i, b) in bits.iter_mut().enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.write_u32(std::process::id());
        h.write_usize(i);
        h.write(table.as_os_str().as_encoded_bytes());
        *b = h.finish();
    }
    let hex = format!("{:016x}{:016x}", bits[0], bits[1]);
    format!(
        "{}-{}-4{}-8{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

enum CommitError {
    /// Another writer committed this version first.
    Conflict,
    Io(std::io::Error),
}

/// Writes commit `version` if nobody has (put-if-absent by a hard link).
fn write_commit(table: &Path, version: u64, actions: &[Value]) -> Result<(), CommitError> {
    use std::io::Write;
    let log = table.join(LOG);
    fs_err::create_dir_all(&log).map_err(CommitError::Io)?;
    let tmp = log.join(format!(".{version:020}.json.{}.tmp", std::process::id()));
    let body: String = actions.iter().map(|a| format!("{a}\n")).collect();
    {
        let mut f = fs_err::File::create(&tmp).map_err(CommitError::Io)?;
        f.write_all(body.as_bytes()).map_err(CommitError::Io)?;
        f.sync_all().map_err(CommitError::Io)?;
    }
    let target = log.join(format!("{version:020}.json"));
    let linked = std::fs::hard_link(&tmp, &target);
    let _ = fs_err::remove_file(&tmp);
    match linked {
        Ok(()) => {
            crate::sync_dir(&log);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(CommitError::Conflict),
        Err(e) => Err(CommitError::Io(e)),
    }
}

/// Commits what `build` makes of the latest snapshot, retrying on a concurrent commit. `build`
/// returns `None` when there is nothing to commit (e.g. the run's commit is already in).
fn commit_with<T>(
    table: &Path,
    mut build: impl FnMut(&Snapshot) -> Result<Option<(Vec<Value>, T)>, String>,
) -> Result<Option<T>, String> {
    for _ in 0..ATTEMPTS {
        let snap = snapshot(table)?;
        let Some((actions, done)) = build(&snap)? else {
            return Ok(None);
        };
        let version = snap.version.map_or(0, |v| v + 1);
        match write_commit(table, version, &actions) {
            Ok(()) => return Ok(Some(done)),
            Err(CommitError::Conflict) => continue,
            Err(CommitError::Io(e)) => return Err(e.to_string()),
        }
    }
    Err(format!(
        "another writer committed to it {ATTEMPTS} times while this run tried to"
    ))
}

fn commit_info(operation: &str, run: &str, parameters: Value) -> Value {
    json!({ "commitInfo": {
        "timestamp": now_ms(),
        "operation": operation,
        "operationParameters": parameters,
        "engineInfo": ENGINE,
        "clientVersion": ENGINE,
        "patronageRun": run,
    }})
}

fn remove_action(path: &str, add: &Map<String, Value>, at: u64) -> Value {
    let mut remove = Map::new();
    remove.insert("path".into(), json!(path));
    remove.insert("deletionTimestamp".into(), json!(at));
    remove.insert("dataChange".into(), json!(true));
    remove.insert("extendedFileMetadata".into(), json!(true));
    for key in ["partitionValues", "size"] {
        if let Some(v) = add.get(key) {
            remove.insert(key.into(), v.clone());
        }
    }
    json!({ "remove": remove })
}

/// Publishes `parts` (staged file, its name in the partition) as the `run_date` partition of
/// the Delta table `table`, replacing the partition's live files, in one commit that names
/// `run`. Idempotent: when the log already holds `run`'s commit, nothing happens (a publish
/// rolled forward after a crash). An empty `parts` removes the partition (a table this run
/// did not write). Returns what the commit did, for a rollback.
pub(crate) fn replace_partition(
    table: &Path,
    run_date: &str,
    run: &str,
    parts: &[(PathBuf, String)],
) -> Result<Option<Committed>, String> {
    let first = snapshot(table)?;
    if first.runs.contains(run) {
        return Ok(None);
    }
    if let Some(why) = first.refuse() {
        return Err(why);
    }
    // Move the files in: invisible to readers until the commit names them.
    let mut adds = Vec::new();
    let mut fields: Option<Vec<Field>> = None;
    for (staged, name) in parts {
        let rel = format!("{PARTITION_COLUMN}={run_date}/{name}");
        let target = table.join(&rel);
        if staged.exists() {
            fs_err::create_dir_all(target.parent().unwrap_or(table)).map_err(|e| e.to_string())?;
            fs_err::rename(staged, &target).map_err(|e| e.to_string())?;
        } else if !target.exists() {
            return Err(format!(
                "neither the staged nor the moved file {name} is there"
            ));
        }
        let (f, stats) = describe_file(&target)?;
        if fields.is_none() {
            fields = Some(f);
        }
        let size = fs_err::metadata(&target).map_err(|e| e.to_string())?.len();
        adds.push((rel, size, stats));
    }
    if parts.is_empty() && first.version.is_none() {
        return Ok(None);
    }
    commit_with(table, |snap| {
        if snap.runs.contains(run) {
            return Ok(None);
        }
        if let Some(why) = snap.refuse() {
            return Err(why);
        }
        let at = now_ms();
        let removed: Vec<(String, Map<String, Value>)> = snap
            .partition(run_date)
            .map(|(p, a)| (p.clone(), a.clone()))
            .collect();
        if adds.is_empty() && removed.is_empty() {
            return Ok(None);
        }
        let predicate = format!("{PARTITION_COLUMN} = '{run_date}'");
        let mut actions = vec![commit_info(
            "WRITE",
            run,
            json!({
                "mode": "Overwrite",
                "partitionBy": format!("[\"{PARTITION_COLUMN}\"]"),
                "predicate": predicate,
            }),
        )];
        let existing = snap
            .meta
            .as_ref()
            .and_then(|m| m.get("schemaString"))
            .and_then(Value::as_str);
        let schema = match &fields {
            Some(f) => merge_schema(existing, f)?,
            None => None,
        };
        if snap.version.is_none() {
            actions.push(json!({ "protocol": { "minReaderVersion": 1, "minWriterVersion": 2 } }));
        }
        if let Some(schema) = schema {
            let mut meta = snap.meta.clone().unwrap_or_else(|| {
                let mut m = Map::new();
                m.insert("id".into(), json!(table_id(table)));
                m.insert(
                    "format".into(),
                    json!({ "provider": "parquet", "options": {} }),
                );
                m.insert("partitionColumns".into(), json!([PARTITION_COLUMN]));
                m.insert("configuration".into(), json!({}));
                m.insert("createdTime".into(), json!(at));
                m
            });
            meta.insert("schemaString".into(), json!(schema));
            actions.push(json!({ "metaData": meta }));
        }
        for (path, add) in &removed {
            actions.push(remove_action(path, add, at));
        }
        for (rel, size, stats) in &adds {
            actions.push(json!({ "add": {
                "path": rel,
                "partitionValues": { PARTITION_COLUMN: run_date },
                "size": size,
                "modificationTime": at,
                "dataChange": true,
                "stats": stats.to_string(),
            }}));
        }
        Ok(Some((
            actions,
            Committed {
                removed: removed.into_iter().map(|(_, a)| a).collect(),
                added: adds.iter().map(|a| a.0.clone()).collect(),
            },
        )))
    })
}

/// Undoes `done` with a new commit (Delta's RESTORE): removes the files it added, adds back
/// the files it removed.
pub(crate) fn restore(table: &Path, run: &str, done: &Committed) -> Result<(), String> {
    let undo = format!("{run}:rollback");
    commit_with(table, |snap| {
        if snap.runs.contains(&undo) {
            return Ok(None);
        }
        let at = now_ms();
        let mut actions = vec![commit_info(
            "RESTORE",
            &undo,
            json!({ "reason": "the run's publish failed" }),
        )];
        for path in &done.added {
            if let Some(add) = snap.files.get(path) {
                actions.push(remove_action(path, add, at));
            }
        }
        for add in &done.removed {
            let mut add = add.clone();
            add.insert("dataChange".into(), json!(true));
            actions.push(json!({ "add": add }));
        }
        Ok(Some((actions, ())))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_and_log_paths() {
        assert_eq!(civil(0), "1970-01-01");
        assert_eq!(civil(19_722), "2023-12-31");
        assert_eq!(civil(-1), "1969-12-31");
        assert_eq!(civil(11_016), "2000-02-29");
        assert_eq!(
            decode("run_date=2024-01-01/a%20b.parquet"),
            "run_date=2024-01-01/a b.parquet"
        );
        assert_eq!(decode("100%"), "100%");
        assert_eq!(is_version("00000000000000000007.json"), Some(7));
        assert_eq!(is_version("00000000000000000007.checkpoint.parquet"), None);
    }

    #[test]
    fn schemas_grow_and_refuse_type_changes() {
        let f = |name: &str, kind: &str| Field {
            name: name.into(),
            kind: kind.into(),
            comment: None,
        };
        let first = merge_schema(None, &[f("a", "long")]).unwrap().unwrap();
        assert!(first.contains("\"run_date\""));
        assert_eq!(merge_schema(Some(&first), &[f("a", "long")]).unwrap(), None);
        let grown = merge_schema(Some(&first), &[f("b", "double")])
            .unwrap()
            .unwrap();
        let names: Vec<String> = parse_fields(&grown)
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["a", "run_date", "b"]);
        let err = merge_schema(Some(&first), &[f("a", "string")]).unwrap_err();
        assert!(err.contains("column `a`"), "{err}");
    }
}
