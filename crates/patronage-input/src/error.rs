//! Errors that stop a run: the file cannot be read or does not have the columns we need.
//! Row-level problems are not errors: they become [`crate::RejectedRow`]s.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{}: no such file or directory", path.display())]
    NotFound { path: PathBuf },
    #[error("`{pattern}` matched no CSV or Parquet file")]
    NoFiles { pattern: String },
    #[error("invalid glob `{pattern}`: {message}")]
    InvalidPattern { pattern: String, message: String },
    #[error("{}: the file is empty (expected a header row naming the columns)", path.display())]
    EmptyFile { path: PathBuf },
    #[error("{}: cannot read as {format}: {message}", path.display())]
    Unreadable {
        path: PathBuf,
        format: &'static str,
        message: String,
    },
    #[error("{}: required column `{column}` not found{hint}; columns found: {found}", path.display())]
    ColumnNotFound {
        path: PathBuf,
        column: String,
        hint: String,
        found: String,
    },
    #[error("{}: column `{column}` has type {dtype}, which cannot hold {expected}", path.display())]
    SchemaMismatch {
        path: PathBuf,
        column: String,
        dtype: String,
        expected: &'static str,
    },
    #[error("{}: {message}", path.display())]
    Encoding { path: PathBuf, message: String },
    #[error("{}: {found} match the {canonical} column `{column}`; map one of them with `[{section}.columns] {column} = \"...\"` in the config (or rename the other in the export)", path.display())]
    AmbiguousColumn {
        path: PathBuf,
        section: &'static str,
        column: String,
        canonical: &'static str,
        found: String,
    },
    #[error("{}: column `{column}` has type {dtype}, which Patronage does not read as {expected}{hint}", path.display())]
    UnsupportedType {
        path: PathBuf,
        column: String,
        dtype: String,
        expected: &'static str,
        hint: &'static str,
    },
    #[error("invalid [orders] config: {0}")]
    InvalidConfig(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
