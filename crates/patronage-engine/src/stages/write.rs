//! Write: every table and model artifact into staging (types and finiteness checked), then one
//! publish with the manifest as its commit record (see `patronage-output`).

use std::path::PathBuf;

use patronage_output::OutDir;
use rayon::prelude::*;
use serde_json::json;

use super::Tables;
use crate::error::EngineError;

/// Where the tables went: (name, path, rows) in write order, and the manifest.
pub(crate) struct Written {
    pub tables: Vec<(String, PathBuf, usize)>,
    pub manifest: PathBuf,
}

/// Stages `tables`, then publishes them with the manifest that `manifest` builds from the table
/// row counts.
pub(crate) fn run(
    out_dir: &OutDir,
    as_of: &str,
    tables: Tables,
    artifacts: &[(&str, Vec<u8>)],
    dictionary: &crate::dictionary::Dictionary,
    opts_format: patronage_output::TableFormat,
    manifest: impl FnOnce(serde_json::Value) -> serde_json::Value,
) -> Result<Written, EngineError> {
    let mut staging = out_dir.stage(as_of, opts_format)?;
    for (dir, bytes) in artifacts {
        staging.write_artifact(dir, bytes)?;
    }
    let mut rows = serde_json::Map::new();
    let staged = &staging;
    let written = write_side_by_side(tables, dictionary, |name| staged.table_path(name))?;
    for (name, height) in written {
        staging.add_written(name);
        rows.insert(name.to_string(), json!(height));
    }
    let manifest = manifest(serde_json::Value::Object(rows.clone()));
    let published = staging.publish(&manifest, crate::tables::TABLES)?;
    Ok(Written {
        tables: published
            .tables
            .into_iter()
            .map(|(name, path)| {
                let n = rows.get(&name).and_then(|v| v.as_u64()).unwrap_or(0) as usize;
                (name, path, n)
            })
            .collect(),
        manifest: published.manifest,
    })
}

/// Writes each table to `path(name)` (types and finiteness checked, described by `dictionary`),
/// the tables side by side: polars encodes a table's columns in parallel but its row groups
/// one after another. Each frame is freed once written. Returns each table's rows, in order.
pub(crate) fn write_side_by_side(
    tables: Tables,
    dictionary: &crate::dictionary::Dictionary,
    path: impl Fn(&str) -> PathBuf + Sync,
) -> Result<Vec<(&'static str, usize)>, EngineError> {
    tables
        .into_par_iter()
        .map(|(name, mut df)| {
            patronage_output::write_table_file(
                &path(name),
                name,
                &mut df,
                &dictionary.described(name),
            )?;
            Ok((name, df.height()))
        })
        .collect()
}
