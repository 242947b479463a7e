//! Finding input files (a file, a directory or a glob), looking at one (format, encoding,
//! compression, separator, column names and types) and reading only the columns a stage maps.
//!
//! - The format comes from the first bytes (`PAR1`), not the file name; gzip (`1f 8b`) is
//!   decompressed in memory first, so `orders.csv.gz` reads like `orders.csv`.
//! - CSV is read with every column as text, so that validation sees the raw cell and can say
//!   exactly what was wrong with it; bytes that are not UTF-8 are replaced (lossy) and the rows
//!   that contain them are rejected downstream. A UTF-16/32 file (byte-order mark, or NUL bytes
//!   in its first kilobytes) is refused with a re-export hint; a UTF-8 byte-order mark is skipped.
//! - The CSV separator is configured, `\t` for `.tsv`, or detected from the header line (the most
//!   frequent of `,` `;` `\t` `|` outside quotes).
//! - A CSV record with more fields than the header is not read into the frame's columns: it is
//!   reported in [`Frame::ragged_rows`] for the caller to reject, and the rest of the file reads.
//!   Blank lines are records to polars (every cell null); they are reported in
//!   [`Frame::blank_rows`] for the caller to skip.
//! - Parquet columns are projected before decoding: a decimal, map or struct column that no stage
//!   maps is never touched. The caller checks the type of each mapped column
//!   ([`Source::arrow_type`]) before asking for it.
//! - A panic inside the reader (a malformed file polars does not expect) becomes an
//!   [`InputError::Unreadable`] naming the file, never a crash.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use polars::io::mmap::MmapBytesReader;
use polars::io::parquet::metadata::FileMetadataRef;
use polars::prelude::*;

use crate::error::InputError;

pub use polars::prelude::ArrowDataType;

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
    let name = p
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    [".csv", ".parquet", ".pq", ".tsv", ".txt"]
        .iter()
        .any(|ext| name.ends_with(ext))
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

/// One input file, looked at but not yet read.
pub struct Source {
    pub path: PathBuf,
    pub format: InputFormat,
    /// `Some("gzip")` when the file was decompressed.
    pub compression: Option<&'static str>,
    /// The CSV separator used.
    pub separator: Option<u8>,
    /// Column names in file order.
    pub columns: Vec<String>,
    /// Parquet: each column's Arrow type.
    arrow_types: Vec<ArrowDataType>,
    /// Parquet: the footer, read once (row-group sizes for chunked reads).
    parquet_meta: Option<FileMetadataRef>,
    /// The decompressed bytes, for a compressed file.
    bytes: Option<Arc<Vec<u8>>>,
    /// Offset of the CSV data after a UTF-8 byte-order mark.
    bom: usize,
}

/// The columns read from a file.
pub struct Frame {
    /// The projected columns, in the order asked for.
    pub columns: Vec<Column>,
    pub height: usize,
    /// 0-based records (not counting the header) with more fields than the header; their cells
    /// are not in `columns` and the caller rejects them.
    pub ragged_rows: Vec<usize>,
    /// 0-based records that are blank lines (sorted); the caller skips them.
    pub blank_rows: Vec<usize>,
}

fn unreadable(path: &Path, format: InputFormat, message: impl Into<String>) -> InputError {
    InputError::Unreadable {
        path: path.to_path_buf(),
        format: format.as_str(),
        message: message.into(),
    }
}

/// Runs a reader call, turning a panic inside it into an error that names the file.
fn guarded<T>(
    path: &Path,
    format: InputFormat,
    f: impl FnOnce() -> Result<T, InputError>,
) -> Result<T, InputError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown failure".into());
            Err(unreadable(
                path,
                format,
                format!("the reader failed on this file ({what}); is it complete and valid?"),
            ))
        }
    }
}

impl Source {
    /// Opens `path` and reads its header (CSV) or schema (Parquet). `separator` overrides the
    /// CSV separator detection.
    pub fn open(path: &Path, separator: Option<u8>) -> Result<Self, InputError> {
        let mut file = fs_err::File::open(path)?;
        let len = file.metadata()?.len();
        if len == 0 {
            return Err(InputError::EmptyFile {
                path: path.to_path_buf(),
            });
        }
        let mut head = Vec::with_capacity(4);
        (&mut file).take(4).read_to_end(&mut head)?;
        let mut compression = None;
        let mut bytes = None;
        if head.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(fs_err::File::open(path)?)
                .read_to_end(&mut out)
                .map_err(|e| {
                    unreadable(
                        path,
                        InputFormat::Csv,
                        format!("cannot decompress gzip: {e}"),
                    )
                })?;
            head = out.iter().take(4).copied().collect();
            compression = Some("gzip");
            bytes = Some(Arc::new(out));
        }
        let mut source = Source {
            path: path.to_path_buf(),
            format: InputFormat::Csv,
            compression,
            separator: None,
            columns: Vec::new(),
            arrow_types: Vec::new(),
            parquet_meta: None,
            bytes,
            bom: 0,
        };
        if head == b"PAR1" {
            source.format = InputFormat::Parquet;
            let fmt = source.format;
            let (schema, meta) = guarded(path, fmt, || {
                let mut reader = source.parquet_reader()?;
                let schema = reader
                    .schema()
                    .map_err(|e| unreadable(path, fmt, e.to_string()))?;
                let meta = reader
                    .get_metadata()
                    .map_err(|e| unreadable(path, fmt, e.to_string()))?
                    .clone();
                Ok((schema, meta))
            })?;
            source.parquet_meta = Some(meta);
            for (name, field) in schema.iter() {
                source.columns.push(name.to_string());
                source.arrow_types.push(field.dtype().clone());
            }
            return Ok(source);
        }
        source.read_csv_header(separator)?;
        Ok(source)
    }

    fn parquet_reader(&self) -> Result<ParquetReader<Box<dyn MmapBytesReader>>, InputError> {
        let reader: Box<dyn MmapBytesReader> = match &self.bytes {
            Some(b) => Box::new(std::io::Cursor::new(b.as_slice().to_vec())),
            None => Box::new(fs_err::File::open(&self.path)?.into_parts().0),
        };
        Ok(ParquetReader::new(reader))
    }

    /// The first bytes of a CSV file: the decompressed buffer, or up to 1 MiB read from disk.
    fn csv_head(&self) -> Result<Vec<u8>, InputError> {
        Ok(match &self.bytes {
            Some(b) => b[..b.len().min(1 << 20)].to_vec(),
            None => {
                let mut out = Vec::new();
                fs_err::File::open(&self.path)?
                    .take(1 << 20)
                    .read_to_end(&mut out)?;
                out
            }
        })
    }

    fn read_csv_header(&mut self, separator: Option<u8>) -> Result<(), InputError> {
        let head = self.csv_head()?;
        let encoding_error = |what: &str| InputError::Encoding {
            path: self.path.clone(),
            message: format!("{what}; re-export it as UTF-8 (e.g. `iconv -f UTF-16 -t UTF-8`)"),
        };
        if head.starts_with(&[0xff, 0xfe]) || head.starts_with(&[0xfe, 0xff]) {
            return Err(encoding_error(
                "the file is UTF-16 or UTF-32 encoded (it starts with a byte-order mark)",
            ));
        }
        if head[..head.len().min(4096)].contains(&0) {
            return Err(encoding_error(
                "the file holds NUL bytes, as UTF-16 text or binary data does; a CSV file must be UTF-8 text",
            ));
        }
        if head.starts_with(&[0xef, 0xbb, 0xbf]) {
            self.bom = 3;
        }
        let body = &head[self.bom..];
        if body.iter().all(|b| b.is_ascii_whitespace()) {
            return Err(InputError::EmptyFile {
                path: self.path.clone(),
            });
        }
        let line = header_line(body);
        let is_tsv = self.path.extension().is_some_and(|e| {
            e.eq_ignore_ascii_case("tsv")
                || (e.eq_ignore_ascii_case("gz")
                    && self
                        .path
                        .to_string_lossy()
                        .to_ascii_lowercase()
                        .ends_with(".tsv.gz"))
        });
        let sep = separator.unwrap_or_else(|| {
            if is_tsv {
                b'\t'
            } else {
                detect_separator(line)
            }
        });
        self.separator = Some(sep);
        self.columns = split_record(line, sep)
            .into_iter()
            .map(|c| String::from_utf8_lossy(&c).into_owned())
            .collect();
        Ok(())
    }

    /// The Arrow type of column `index` (Parquet only).
    pub fn arrow_type(&self, index: usize) -> Option<&ArrowDataType> {
        self.arrow_types.get(index)
    }

    /// Row ranges `(first row, rows)` to read the file by, each at least `rows` long where the
    /// file allows: Parquet row groups joined up to `rows`; a CSV file is one range.
    pub fn chunks(&self, rows: usize) -> Vec<(usize, usize)> {
        let Some(meta) = &self.parquet_meta else {
            return vec![(0, usize::MAX)];
        };
        let mut out: Vec<(usize, usize)> = Vec::new();
        let mut start = 0;
        for rg in &meta.row_groups {
            let n = rg.num_rows();
            match out.last_mut() {
                Some(last) if last.1 < rows => last.1 += n,
                _ => out.push((start, n)),
            }
            start += n;
        }
        if out.is_empty() {
            out.push((0, 0));
        }
        out
    }

    /// Reads the columns at `projection` (indices into [`Source::columns`], each at most once).
    pub fn read(&self, projection: &[usize]) -> Result<Frame, InputError> {
        self.read_range(projection, (0, usize::MAX))
    }

    /// [`Source::read`] of the rows `range` = (first row, rows) of a Parquet file (a range of
    /// [`Source::chunks`]); a CSV file is read whole.
    pub fn read_range(
        &self,
        projection: &[usize],
        range: (usize, usize),
    ) -> Result<Frame, InputError> {
        let mut sorted: Vec<usize> = projection.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let (df, ragged_rows, blank_rows) =
            guarded(&self.path, self.format, || match self.format {
                InputFormat::Parquet => self
                    .read_parquet(&sorted, range)
                    .map(|df| (df, Vec::new(), Vec::new())),
                InputFormat::Csv => self.read_csv(&sorted),
            })?;
        // Projected columns come back in file order; hand them out in the order asked for.
        let columns = projection
            .iter()
            .map(|i| {
                let k = sorted.partition_point(|s| s < i);
                df.columns()[k].clone()
            })
            .collect();
        Ok(Frame {
            columns,
            height: df.height(),
            ragged_rows,
            blank_rows,
        })
    }

    fn read_parquet(
        &self,
        sorted: &[usize],
        range: (usize, usize),
    ) -> Result<DataFrame, InputError> {
        let mut reader = self.parquet_reader()?;
        if let Some(meta) = &self.parquet_meta {
            reader.set_metadata(meta.clone());
        }
        let slice = (range != (0, usize::MAX)).then_some(range);
        reader
            .with_projection(Some(sorted.to_vec()))
            .with_slice(slice)
            .finish()
            .map_err(|e| unreadable(&self.path, self.format, e.to_string()))
    }

    /// Reads the projected CSV columns; the raw bytes are scanned (quote-aware) only when a
    /// record is too long (polars refuses the file) or a row has no value in any projected column
    /// (a blank line, or a row of empty cells).
    fn read_csv(
        &self,
        sorted: &[usize],
    ) -> Result<(DataFrame, Vec<usize>, Vec<usize>), InputError> {
        let scan = || -> Result<Records, InputError> {
            let bytes = match &self.bytes {
                Some(b) => b.clone(),
                None => Arc::new(fs_err::read(&self.path)?),
            };
            Ok(scan_records(
                &bytes[self.bom..],
                self.separator.unwrap_or(b','),
                self.columns.len(),
            ))
        };
        let (df, records) = match self.csv_frame(sorted, false) {
            Ok(df) => (df, None),
            Err(e) if e.to_string().contains("more fields") => {
                // Read with the long records cut to the header's width: their cells are never
                // used, the caller rejects those rows.
                let records = scan()?;
                let df = self
                    .csv_frame(sorted, true)
                    .map_err(|e| unreadable(&self.path, self.format, e.to_string()))?;
                (df, Some(records))
            }
            Err(e) => return Err(unreadable(&self.path, self.format, e.to_string())),
        };
        let may_have_blank = df.columns().first().is_some_and(|c| c.null_count() > 0);
        let records = match records {
            Some(r) => r,
            None if may_have_blank => scan()?,
            None => Records::default(),
        };
        Ok((df, records.ragged, records.blank))
    }

    fn csv_frame(&self, sorted: &[usize], truncate_ragged: bool) -> PolarsResult<DataFrame> {
        let separator = self.separator.unwrap_or(b',');
        let options = CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .with_projection(Some(Arc::new(sorted.to_vec())))
            .map_parse_options(|o| {
                o.with_separator(separator)
                    .with_encoding(CsvEncoding::LossyUtf8)
                    .with_missing_is_null(true)
                    .with_truncate_ragged_lines(truncate_ragged)
            });
        match &self.bytes {
            Some(b) => options
                .into_reader_with_file_handle(std::io::Cursor::new(
                    b.as_slice()[self.bom..].to_vec(),
                ))
                .finish(),
            None => options
                .try_into_reader_with_file_path(Some(self.path.clone()))?
                .finish(),
        }
    }
}

/// The header line: bytes up to the first line break outside quotes, without `\r`.
fn header_line(body: &[u8]) -> &[u8] {
    let mut quoted = false;
    let mut end = body.len();
    for (i, &b) in body.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    let line = &body[..end];
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The most frequent of `,` `;` `\t` `|` outside quotes in the header; `,` when none occurs.
fn detect_separator(header: &[u8]) -> u8 {
    let mut counts = [0usize; 4];
    let candidates = [b',', b';', b'\t', b'|'];
    let mut quoted = false;
    for &b in header {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted {
            if let Some(k) = candidates.iter().position(|&c| c == b) {
                counts[k] += 1;
            }
        }
    }
    let best = (0..4).max_by_key(|&k| (counts[k], std::cmp::Reverse(k)));
    match best {
        Some(k) if counts[k] > 0 => candidates[k],
        _ => b',',
    }
}

/// Splits one CSV record into fields (RFC 4180 quotes, `""` inside quotes is one `"`).
fn split_record(line: &[u8], sep: u8) -> Vec<Vec<u8>> {
    let mut fields = vec![Vec::new()];
    let mut quoted = false;
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        let field = fields.last_mut().expect("fields is never empty");
        if quoted {
            if b == b'"' {
                if line.get(i + 1) == Some(&b'"') {
                    field.push(b'"');
                    i += 1;
                } else {
                    quoted = false;
                }
            } else {
                field.push(b);
            }
        } else if b == b'"' {
            quoted = true;
        } else if b == sep {
            fields.push(Vec::new());
        } else {
            field.push(b);
        }
        i += 1;
    }
    fields
}

/// Data records (after the header) by 0-based index, as polars numbers them.
#[derive(Debug, Default, PartialEq)]
struct Records {
    /// Records with more than the header's fields.
    ragged: Vec<usize>,
    /// Blank lines (nothing but an optional `\r`).
    blank: Vec<usize>,
}

/// Finds long records and blank lines. Records end at a line break outside quotes; a blank line
/// is a record (polars reads it as a row of nulls); a final line break ends the last record.
fn scan_records(bytes: &[u8], sep: u8, width: usize) -> Records {
    let mut out = Records::default();
    let mut quoted = false;
    let mut fields = 1;
    let mut empty = true;
    let mut record: Option<usize> = None; // None while in the header
    let mut end_record = |fields: usize, empty: bool, record: &mut Option<usize>| match record {
        None => *record = Some(0),
        Some(r) => {
            if empty {
                out.blank.push(*r);
            } else if fields > width {
                out.ragged.push(*r);
            }
            *r += 1;
        }
    };
    for &b in bytes {
        if quoted {
            if b == b'"' {
                quoted = false;
            }
            continue;
        }
        match b {
            b'"' => {
                quoted = true;
                empty = false;
            }
            b'\n' => {
                end_record(fields, empty, &mut record);
                fields = 1;
                empty = true;
            }
            b'\r' => {}
            _ if b == sep => {
                fields += 1;
                empty = false;
            }
            _ => empty = false,
        }
    }
    if !empty {
        end_record(fields, empty, &mut record);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_are_detected_outside_quotes() {
        assert_eq!(detect_separator(b"a,b,c"), b',');
        assert_eq!(detect_separator(b"a;b;\"c,d\""), b';');
        assert_eq!(detect_separator(b"a\tb"), b'\t');
        assert_eq!(detect_separator(b"single"), b',');
    }

    #[test]
    fn header_fields_are_unquoted() {
        let got = split_record(b"\"Customer ID\",amount,\"a\"\"b\"", b',');
        assert_eq!(
            got,
            vec![
                b"Customer ID".to_vec(),
                b"amount".to_vec(),
                b"a\"b".to_vec()
            ]
        );
        assert_eq!(header_line(b"a,b\r\n1,2\n"), b"a,b");
        assert_eq!(header_line(b"\"a\nb\",c\n1,2"), b"\"a\nb\",c");
    }

    #[test]
    fn long_records_and_blank_lines_are_found_by_record_number() {
        let csv = b"a,b\n1,2\n\n3,4,5\n\"x,\ny\",2\r\n\r\n6,7,8,9\n";
        assert_eq!(
            scan_records(csv, b',', 2),
            Records {
                ragged: vec![2, 5],
                blank: vec![1, 4]
            }
        );
    }
}
