//! Finding input files (a file, a directory or a glob) and reading one into a polars frame.
//!
//! CSV is read with every column as text, so that validation sees the raw cell and can say exactly
//! what was wrong with it; bytes that are not UTF-8 are replaced (lossy) and the rows that contain
//! them are rejected downstream. Parquet keeps its types. The format comes from the first bytes
//! (`PAR1`), not the file name.

use std::io::Read;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::error::InputError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    Csv,
    Parquet,
}

impl InputFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            InputFormat::Csv => "csv",
            InputFormat::Parquet => "parquet",
        }
    }
}

fn is_data_file(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("csv" | "parquet" | "pq" | "tsv" | "txt")
    )
}

/// Expands a path argument into a sorted list of files.
pub fn expand_inputs(spec: &str) -> Result<Vec<PathBuf>, InputError> {
    let path = Path::new(spec);
    let mut files = if spec.contains(['*', '?', '[']) {
        let paths = glob::glob(spec).map_err(|e| InputError::InvalidPattern {
            pattern: spec.to_string(),
            message: e.to_string(),
        })?;
        let mut out = Vec::new();
        for p in paths {
            let p = p.map_err(|e| InputError::Io(e.into()))?;
            if p.is_file() {
                out.push(p);
            }
        }
        out
    } else if path.is_dir() {
        let mut out = Vec::new();
        for entry in fs_err::read_dir(path)? {
            let p = entry?.path();
            if p.is_file() && is_data_file(&p) {
                out.push(p);
            }
        }
        out
    } else if path.is_file() {
        vec![path.to_path_buf()]
    } else {
        return Err(InputError::NotFound {
            path: path.to_path_buf(),
        });
    };
    files.sort();
    if files.is_empty() {
        return Err(InputError::NoFiles {
            pattern: spec.to_string(),
        });
    }
    Ok(files)
}

fn sniff(path: &Path) -> Result<(InputFormat, u64), InputError> {
    let mut file = fs_err::File::open(path)?;
    let len = file.metadata()?.len();
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic)?;
    let format = if n == 4 && &magic == b"PAR1" {
        InputFormat::Parquet
    } else {
        InputFormat::Csv
    };
    Ok((format, len))
}

/// Reads a whole file. CSV columns come back as `String`; Parquet keeps its schema.
pub fn read_frame(path: &Path) -> Result<(DataFrame, InputFormat), InputError> {
    let (format, len) = sniff(path)?;
    if len == 0 {
        return Err(InputError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    let unreadable = |e: PolarsError| InputError::Unreadable {
        path: path.to_path_buf(),
        format: format.as_str(),
        message: e.to_string(),
    };
    let df = match format {
        InputFormat::Parquet => {
            let file = fs_err::File::open(path)?.into_parts().0;
            ParquetReader::new(file).finish().map_err(unreadable)?
        }
        InputFormat::Csv => {
            let separator = if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("tsv"))
            {
                b'\t'
            } else {
                b','
            };
            CsvReadOptions::default()
                .with_has_header(true)
                .with_infer_schema_length(Some(0))
                .map_parse_options(|o| {
                    o.with_separator(separator)
                        .with_encoding(CsvEncoding::LossyUtf8)
                        .with_missing_is_null(true)
                })
                .try_into_reader_with_file_path(Some(path.to_path_buf()))
                .map_err(unreadable)?
                .finish()
                .map_err(unreadable)?
        }
    };
    Ok((df, format))
}
