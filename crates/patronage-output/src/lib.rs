//! Writes a run's tables as Hive-partitioned Parquet and publishes them atomically (DESIGN §6).
//!
//! Layout: `OUT/<table>/run_date=<as-of>/part-0.parquet` and `OUT/manifests/<as-of>.json`.
//! Every table is first written under `OUT/.staging-<as-of>-<pid>/`; only when all are complete
//! does [`Staging::publish`] rename each partition into place (replacing a previous run of the same
//! as-of) and then the manifest. A run that fails or is killed before publishing leaves earlier
//! outputs untouched; a dropped, unpublished staging directory is removed.
//!
//! Not here: what the tables contain (the engine builds the frames).

use std::path::{Path, PathBuf};

use polars::prelude::*;

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
    #[error("cannot serialize the manifest: {0}")]
    Manifest(#[from] serde_json::Error),
}

/// A run being written; nothing is visible to readers until [`Staging::publish`].
pub struct Staging {
    out: PathBuf,
    run_date: String,
    dir: PathBuf,
    tables: Vec<String>,
    published: bool,
}

/// What a publish put where.
#[derive(Debug, Clone)]
pub struct Published {
    pub tables: Vec<(String, PathBuf)>,
    pub manifest: PathBuf,
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
    }
    Ok(())
}

/// Writes one frame to a Parquet file, creating parent directories. Snappy: every BI reader
/// (DuckDB, Spark, pyarrow, Power BI, Tableau) decodes it, and it writes several times faster
/// than zstd on wide per-customer tables.
pub fn write_parquet(path: &Path, df: &mut DataFrame) -> Result<(), OutputError> {
    if let Some(parent) = path.parent() {
        fs_err::create_dir_all(parent)?;
    }
    let file = fs_err::File::create(path)?;
    ParquetWriter::new(file.into_parts().0)
        .with_compression(ParquetCompression::Snappy)
        .finish(df)
        .map_err(|e| OutputError::Parquet {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(())
}

impl Staging {
    /// Creates `OUT/.staging-<run_date>-<pid>/`.
    pub fn new(out: &Path, run_date: &str) -> Result<Self, OutputError> {
        let dir = out.join(format!(".staging-{run_date}-{}", std::process::id()));
        if dir.exists() {
            fs_err::remove_dir_all(&dir)?;
        }
        fs_err::create_dir_all(&dir)?;
        Ok(Staging {
            out: out.to_path_buf(),
            run_date: run_date.to_string(),
            dir,
            tables: Vec::new(),
            published: false,
        })
    }

    fn partition(&self, root: &Path, table: &str) -> PathBuf {
        root.join(table).join(format!("run_date={}", self.run_date))
    }

    /// Writes `table` into staging; checks its column types first.
    pub fn write_table(&mut self, table: &str, df: &mut DataFrame) -> Result<(), OutputError> {
        check_types(table, df)?;
        write_parquet(&self.partition(&self.dir, table).join("part-0.parquet"), df)?;
        self.tables.push(table.to_string());
        Ok(())
    }

    /// Writes the manifest, renames every staged partition into place, removes this run date's
    /// partition of any table in `known_tables` that this run did not write (so a rerun never
    /// leaves a stale table beside fresh ones), then moves the manifest into place.
    pub fn publish(
        mut self,
        manifest: &serde_json::Value,
        known_tables: &[&str],
    ) -> Result<Published, OutputError> {
        let staged_manifest = self.dir.join("manifest.json");
        fs_err::write(&staged_manifest, serde_json::to_vec_pretty(manifest)?)?;
        let mut tables = Vec::new();
        for table in &self.tables {
            let staged = self.partition(&self.dir, table);
            let target = self.partition(&self.out, table);
            fs_err::create_dir_all(self.out.join(table))?;
            let old = self.out.join(table).join(format!(
                ".replaced-run_date={}-{}",
                self.run_date,
                std::process::id()
            ));
            if target.exists() {
                fs_err::rename(&target, &old)?;
            }
            fs_err::rename(&staged, &target)?;
            if old.exists() {
                fs_err::remove_dir_all(&old)?;
            }
            tables.push((table.clone(), target.join("part-0.parquet")));
        }
        for table in known_tables {
            if !self.tables.iter().any(|t| t == table) {
                let stale = self.partition(&self.out, table);
                if stale.exists() {
                    fs_err::remove_dir_all(&stale)?;
                }
            }
        }
        let manifests = self.out.join("manifests");
        fs_err::create_dir_all(&manifests)?;
        let manifest_path = manifests.join(format!("{}.json", self.run_date));
        fs_err::rename(&staged_manifest, &manifest_path)?;
        fs_err::remove_dir_all(&self.dir)?;
        self.published = true;
        Ok(Published {
            tables,
            manifest: manifest_path,
        })
    }
}

impl Drop for Staging {
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

    #[test]
    fn unpublished_staging_leaves_no_trace_and_publish_replaces() {
        let tmp =
            std::env::temp_dir().join(format!("patronage-output-test-{}", std::process::id()));
        let _ = fs_err::remove_dir_all(&tmp);
        {
            let mut s = Staging::new(&tmp, "2024-01-01").unwrap();
            s.write_table("t", &mut frame(1)).unwrap();
        }
        assert!(!tmp.join("t").exists());
        assert_eq!(fs_err::read_dir(&tmp).unwrap().count(), 0);

        for v in [1, 2] {
            let mut s = Staging::new(&tmp, "2024-01-01").unwrap();
            s.write_table("t", &mut frame(v)).unwrap();
            let p = s.publish(&serde_json::json!({"v": v}), &["t"]).unwrap();
            assert_eq!(p.tables.len(), 1);
        }
        let entries: Vec<_> = fs_err::read_dir(tmp.join("t")).unwrap().collect();
        assert_eq!(entries.len(), 1);
        let m = fs_err::read_to_string(tmp.join("manifests/2024-01-01.json")).unwrap();
        assert!(m.contains("\"v\": 2"));
        let _ = fs_err::remove_dir_all(&tmp);
    }

    #[test]
    fn unsigned_columns_are_refused() {
        let mut df = DataFrame::new(1, vec![Column::new("x".into(), vec![1u32])]).unwrap();
        let tmp = std::env::temp_dir().join(format!("patronage-output-u32-{}", std::process::id()));
        let mut s = Staging::new(&tmp, "2024-01-01").unwrap();
        assert!(matches!(
            s.write_table("t", &mut df),
            Err(OutputError::UnsupportedType { .. })
        ));
        drop(s);
        let _ = fs_err::remove_dir_all(&tmp);
    }
}
