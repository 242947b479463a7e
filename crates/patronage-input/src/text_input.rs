//! The per-file part every text-validated input shares (profiles, clicks): open the file,
//! resolve each canonical column (configured name, normalized name or alias; ambiguity is an
//! error), refuse mapped Parquet columns of a type that cannot be read as text, read only the
//! mapped columns, and hand them over as text.

use std::path::Path;

use polars::prelude::*;

use crate::columns::{ambiguous, quoted, resolve_spec, ColumnSpec, Unresolved};
use crate::error::InputError;
use crate::orders::FileStats;
use crate::source::{ArrowDataType, Frame, Source};

/// One file with its mapped columns read as text.
pub(crate) struct TextFile {
    pub source: Source,
    /// Per canonical column (the index into the specs), the file's column index, if mapped.
    pub at: Vec<Option<usize>>,
    pub frame: Frame,
    /// The mapped columns cast to text, in the order of `mapped()`.
    pub text: Vec<Column>,
}

impl TextFile {
    /// (canonical index, file column index) of the mapped columns, in canonical order.
    pub fn mapped(&self) -> Vec<(usize, usize)> {
        self.at
            .iter()
            .enumerate()
            .filter_map(|(k, i)| i.map(|i| (k, i)))
            .collect()
    }

    /// The file's name for canonical column `k` (its canonical name when unmapped).
    pub fn name<'a>(&'a self, specs: &'a [ColumnSpec], k: usize) -> &'a str {
        self.at[k].map_or(specs[k].name, |i| self.source.columns[i].as_str())
    }

    /// File statistics with the format, mapping and unused columns filled in.
    pub fn stats(&self, specs: &[ColumnSpec]) -> FileStats {
        let mapped = self.mapped();
        FileStats {
            path: self.source.path.display().to_string(),
            format: self.source.format.as_str().to_string(),
            compression: self.source.compression.map(str::to_string),
            separator: self.source.separator.map(|s| char::from(s).to_string()),
            columns: mapped
                .iter()
                .map(|&(k, i)| (specs[k].name.to_string(), self.source.columns[i].clone()))
                .collect(),
            unused_columns: (0..self.source.columns.len())
                .filter(|i| !mapped.iter().any(|m| m.1 == *i))
                .map(|i| self.source.columns[i].clone())
                .collect(),
            ..Default::default()
        }
    }
}

/// Why a Parquet column cannot be read as text (a hint), or `Ok`.
pub(crate) fn text_readable(t: &ArrowDataType) -> Result<(), &'static str> {
    use ArrowDataType as A;
    match t {
        A::Dictionary(..) => Err(
            "; it is dictionary-encoded (a pandas/Arrow categorical): write it as plain strings",
        ),
        A::Float16 => Err("; write it as float32 or float64"),
        A::Struct(_) | A::Map(..) | A::List(_) | A::LargeList(_) | A::FixedSizeList(..) => {
            Err("; it is a nested column: flatten it in the export, or map another column")
        }
        A::Binary | A::LargeBinary | A::BinaryView | A::FixedSizeBinary(_) => {
            Err("; it is binary: write it as text")
        }
        A::Int128 | A::UInt128 | A::Union(_) | A::Extension(_) | A::Unknown => Err(""),
        _ => Ok(()),
    }
}

/// Opens `path` and reads the columns `specs` map (`configured` names per spec, `section` for
/// hints), as text. `expected` says what a value of this input is, for a refused type.
pub(crate) fn read_text_file(
    path: &Path,
    specs: &[ColumnSpec],
    configured: &[Option<&str>],
    section: &'static str,
    separator: Option<u8>,
    expected: &'static str,
) -> Result<TextFile, InputError> {
    let source = Source::open(path, separator)?;
    let found = &source.columns;
    let mut at = vec![None; specs.len()];
    for (k, spec) in specs.iter().enumerate() {
        match resolve_spec(spec, configured[k], section, found) {
            Ok(i) => at[k] = i,
            Err(Unresolved::Missing(hint)) => {
                return Err(InputError::ColumnNotFound {
                    path: path.to_path_buf(),
                    column: spec.name.to_string(),
                    hint,
                    found: quoted(found),
                })
            }
            Err(Unresolved::Ambiguous(names)) => {
                return Err(ambiguous(path, section, spec.name, &names))
            }
        }
    }
    let mapped: Vec<usize> = at.iter().flatten().copied().collect();
    for &i in &mapped {
        if let Some(t) = source.arrow_type(i) {
            text_readable(t).map_err(|hint| InputError::UnsupportedType {
                path: path.to_path_buf(),
                column: found[i].clone(),
                dtype: format!("{t:?}"),
                expected,
                hint,
            })?;
        }
    }
    let frame = source.read(&mapped)?;
    let text = frame
        .columns
        .iter()
        .map(|c| {
            c.cast(&DataType::String)
                .map_err(|e| InputError::Unreadable {
                    path: path.to_path_buf(),
                    format: source.format.as_str(),
                    message: e.to_string(),
                })
        })
        .collect::<Result<_, _>>()?;
    Ok(TextFile {
        source,
        at,
        frame,
        text,
    })
}
