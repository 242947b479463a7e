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
    // Tables written side by side (polars encodes a table's columns in parallel, but a
    // table's row groups one after another); each frame is freed once written.
    let staged = &staging;
    let written: Vec<(&str, usize)> = tables
        .into_par_iter()
        .map(|(name, mut df)| -> Result<(&str, usize), EngineError> {
            patronage_output::write_table_file(
                &staged.table_path(name),
                name,
                &mut df,
                &dictionary.described(name),
            )?;
            Ok((name, df.height()))
        })
        .collect::<Result<_, _>>()?;
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
