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

/// One file with its mapped columns read whole, as text.
pub(crate) struct TextFile {
    pub file: TextSource,
    pub frame: Frame,
    /// The mapped columns cast to text, in the order of `TextSource::mapped`.
    pub text: Vec<Column>,
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

/// A file whose canonical columns are resolved and type-checked, not yet read.
pub(crate) struct TextSource {
    pub source: Source,
    /// Per canonical column (the index into the specs), the file's column index, if mapped.
    pub at: Vec<Option<usize>>,
}

/// Rows of one range of a file, the mapped columns as read (`frame`) and as text.
pub(crate) struct TextChunk {
    pub frame: Frame,
    /// The mapped columns cast to text, in the order of `mapped()`; a column `keep_typed`
    /// names and that is a date or timestamp column stays typed (and is text-null here).
    pub text: Vec<Column>,
}

impl TextSource {
    /// Opens `path` and resolves the columns `specs` map (`configured` names per spec, `section`
    /// for hints). `expected` says what a value of this input is, for a refused type.
    pub fn open(
        path: &Path,
        specs: &[ColumnSpec],
        configured: &[Option<&str>],
        section: &'static str,
        separator: Option<u8>,
        expected: &'static str,
    ) -> Result<TextSource, InputError> {
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
        for i in at.iter().flatten() {
            if let Some(t) = source.arrow_type(*i) {
                text_readable(t).map_err(|hint| InputError::UnsupportedType {
                    path: path.to_path_buf(),
                    column: found[*i].clone(),
                    dtype: format!("{t:?}"),
                    expected,
                    hint,
                })?;
            }
        }
        Ok(TextSource { source, at })
    }

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

    /// Reads the mapped columns of the rows `range` (see [`Source::chunks`]); canonical columns
    /// in `keep_typed` stay typed when they are dates or timestamps.
    pub fn read_chunk(
        &self,
        range: (usize, usize),
        keep_typed: &[usize],
    ) -> Result<TextChunk, InputError> {
        let mapped = self.mapped();
        let projection: Vec<usize> = mapped.iter().map(|m| m.1).collect();
        let frame = self.source.read_range(&projection, range)?;
        let text = frame
            .columns
            .iter()
            .zip(&mapped)
            .map(|(c, (k, _))| {
                if keep_typed.contains(k)
                    && matches!(c.dtype(), DataType::Datetime(..) | DataType::Date)
                {
                    return Ok(Column::full_null(
                        c.name().clone(),
                        c.len(),
                        &DataType::String,
                    ));
                }
                c.cast(&DataType::String)
                    .map_err(|e| InputError::Unreadable {
                        path: self.source.path.clone(),
                        format: self.source.format.as_str(),
                        message: e.to_string(),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(TextChunk { frame, text })
    }
}

/// Opens `path` and reads the columns `specs` map whole, as text (see [`TextSource::open`]).
pub(crate) fn read_text_file(
    path: &Path,
    specs: &[ColumnSpec],
    configured: &[Option<&str>],
    section: &'static str,
    separator: Option<u8>,
    expected: &'static str,
) -> Result<TextFile, InputError> {
    let file = TextSource::open(path, specs, configured, section, separator, expected)?;
    let chunk = file.read_chunk((0, usize::MAX), &[])?;
    Ok(TextFile {
        file,
        frame: chunk.frame,
        text: chunk.text,
    })
}
