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
//! - A large CSV file is read in chunks of whole records ([`Source::chunks`]): one pass finds
//!   record boundaries (quote-aware), then each chunk's bytes are parsed with the header in
//!   front, so a stage that folds chunk by chunk never holds the whole file's frame.
//! - A panic inside the reader (a malformed file polars does not expect) becomes an
//!   [`InputError::Unreadable`] naming the file, never a crash.

use std::io::{Read, Seek};
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
    /// CSV: the chunks [`Source::chunks`] last handed out, by first record.
    csv_spans: std::sync::Mutex<Vec<CsvSpan>>,
    /// The CSV records [`Source::chunks`] counted (`None` before, or when it could not).
    csv_records: std::sync::Mutex<Option<usize>>,
}

/// Whole records of a CSV file: `records` records from record `first` (0-based, after the
/// header) in bytes `start..end` of the file. The first span starts where the header ends.
#[derive(Debug, Clone, PartialEq)]
struct CsvSpan {
    first: usize,
    records: usize,
    start: u64,
    end: u64,
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

/// Reads every page header of a Parquet file (arrow-rs; headers only, no page is decoded) and
/// checks that its value counts are possible: no more values in a page than its row group has
/// rows (the files are flat tables), and a column chunk's pages adding up to its metadata.
/// A corrupted count would otherwise reach polars' decoder, which sizes buffers by it and aborts
/// the process on an impossible allocation (found by the fuzz test) instead of failing.
fn check_parquet_pages(path: &Path) -> Result<(), String> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let file = fs_err::File::open(path).map_err(|e| e.to_string())?;
    let reader = SerializedFileReader::new(file.into_parts().0).map_err(|e| e.to_string())?;
    for g in 0..reader.num_row_groups() {
        let group = reader.get_row_group(g).map_err(|e| e.to_string())?;
        let meta = group.metadata();
        let rows = usize::try_from(meta.num_rows()).map_err(|_| "a negative row count")?;
        for c in 0..meta.num_columns() {
            let expected = meta.column(c).num_values();
            let mut pages = group.get_column_page_reader(c).map_err(|e| e.to_string())?;
            let mut values: u64 = 0;
            while let Some(page) = pages.peek_next_page().map_err(|e| e.to_string())? {
                if let Some(n) = page.num_levels {
                    if n > rows {
                        return Err(format!(
                            "a page of column {c} in row group {g} claims {n} values for {rows} rows: the file is damaged"
                        ));
                    }
                    values += n as u64;
                }
                pages.skip_next_page().map_err(|e| e.to_string())?;
            }
            if i64::try_from(values).ok() != Some(expected) {
                return Err(format!(
                    "the pages of column {c} in row group {g} hold {values} values, its metadata says {expected}: the file is damaged"
                ));
            }
        }
    }
    Ok(())
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
            csv_spans: std::sync::Mutex::new(Vec::new()),
            csv_records: std::sync::Mutex::new(None),
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
                check_parquet_pages(path).map_err(|e| unreadable(path, fmt, e))?;
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

    /// The file's records (data rows, blank lines included), when known: from the Parquet
    /// metadata, or counted by [`Source::chunks`] for CSV.
    pub fn records(&self) -> Option<usize> {
        match &self.parquet_meta {
            Some(meta) => Some(meta.num_rows),
            None => *self.csv_records.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Row ranges `(first row, rows)` to read the file by, each at least `rows` long where the
    /// file allows: Parquet row groups joined up to `rows`; CSV records `rows` at a time (one
    /// range when the file holds fewer, or cannot be scanned: the read then reports why).
    pub fn chunks(&self, rows: usize) -> Vec<(usize, usize)> {
        let Some(meta) = &self.parquet_meta else {
            let counted = self.csv_spans(rows.max(1));
            *self.csv_records.lock().unwrap_or_else(|e| e.into_inner()) = counted
                .as_ref()
                .ok()
                .map(|spans| spans.iter().map(|s| s.records).sum());
            let spans = match counted {
                Ok(spans) if spans.len() > 1 => spans,
                _ => Vec::new(),
            };
            let ranges = spans.iter().map(|s| (s.first, s.records)).collect();
            let single = spans.is_empty();
            *self.csv_spans.lock().unwrap_or_else(|e| e.into_inner()) = spans;
            return if single {
                vec![(0, usize::MAX)]
            } else {
                ranges
            };
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

    /// Cuts the CSV data into spans of `rows` records (the last may be shorter): records end at a
    /// line break outside quotes, numbered as polars numbers rows (a blank line is a record).
    fn csv_spans(&self, rows: usize) -> Result<Vec<CsvSpan>, InputError> {
        let mut reader: Box<dyn Read + '_> = match &self.bytes {
            Some(b) => Box::new(&b[..]),
            None => Box::new(std::io::BufReader::with_capacity(
                1 << 20,
                fs_err::File::open(&self.path)?,
            )),
        };
        let mut spans = Vec::new();
        let (mut pos, mut start, mut first, mut records) = (0u64, None::<u64>, 0usize, 0usize);
        let mut quoted = false;
        let mut pending = false; // bytes after the last line break
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            // Only quotes and line breaks matter; the BOM holds neither.
            for i in memchr::memchr2_iter(b'"', b'\n', &buf[..n]) {
                let (at, b) = (pos + i as u64, buf[i]);
                match b {
                    b'"' => quoted = !quoted,
                    b'\n' if !quoted => match start {
                        None => start = Some(at + 1), // the end of the header
                        Some(from) => {
                            records += 1;
                            if records == rows {
                                spans.push(CsvSpan {
                                    first,
                                    records,
                                    start: from,
                                    end: at + 1,
                                });
                                start = Some(at + 1);
                                first += records;
                                records = 0;
                            }
                        }
                    },
                    _ => {}
                }
            }
            pending = buf[n - 1] != b'\n';
            pos += n as u64;
        }
        if let Some(from) = start {
            if from < pos {
                spans.push(CsvSpan {
                    first,
                    records: records + usize::from(pending),
                    start: from,
                    end: pos,
                });
            }
        }
        Ok(spans)
    }

    /// The header line (with its line break) and the bytes of `span`, as one CSV document.
    fn csv_span_bytes(&self, header_end: u64, span: &CsvSpan) -> Result<Vec<u8>, InputError> {
        let (h, len) = (header_end as usize, (span.end - span.start) as usize);
        let mut out = Vec::with_capacity(h - self.bom + len);
        match &self.bytes {
            Some(b) => {
                out.extend_from_slice(&b[self.bom..h]);
                out.extend_from_slice(&b[span.start as usize..span.end as usize]);
            }
            None => {
                let mut f = fs_err::File::open(&self.path)?;
                f.seek(std::io::SeekFrom::Start(self.bom as u64))?;
                out.resize(h - self.bom, 0);
                f.read_exact(&mut out)?;
                f.seek(std::io::SeekFrom::Start(span.start))?;
                out.resize(h - self.bom + len, 0);
                f.read_exact(&mut out[h - self.bom..])?;
            }
        }
        Ok(out)
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
        let span = match self.format {
            InputFormat::Csv if range != (0, usize::MAX) => {
                let spans = self.csv_spans.lock().unwrap_or_else(|e| e.into_inner());
                let found = spans
                    .iter()
                    .find(|s| s.first == range.0)
                    .map(|s| (spans[0].start, s.clone()));
                drop(spans);
                match found {
                    Some((header_end, span)) => {
                        Some(Arc::new(self.csv_span_bytes(header_end, &span)?))
                    }
                    None => {
                        return Err(unreadable(
                            &self.path,
                            self.format,
                            format!("no chunk starts at record {} (a bug)", range.0),
                        ))
                    }
                }
            }
            _ => None,
        };
        let (df, ragged_rows, blank_rows) =
            guarded(&self.path, self.format, || match self.format {
                InputFormat::Parquet => self
                    .read_parquet(&sorted, range)
                    .map(|df| (df, Vec::new(), Vec::new())),
                InputFormat::Csv => self.read_csv(&sorted, span.clone()),
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
    /// `chunk`: one span's bytes with the header in front (else the whole file is read).
    fn read_csv(
        &self,
        sorted: &[usize],
        chunk: Option<Arc<Vec<u8>>>,
    ) -> Result<(DataFrame, Vec<usize>, Vec<usize>), InputError> {
        let scan = || -> Result<Records, InputError> {
            let (bytes, from) = match (&chunk, &self.bytes) {
                (Some(c), _) => (c.clone(), 0),
                (None, Some(b)) => (b.clone(), self.bom),
                (None, None) => (Arc::new(fs_err::read(&self.path)?), self.bom),
            };
            Ok(scan_records(
                &bytes[from..],
                self.separator.unwrap_or(b','),
                self.columns.len(),
            ))
        };
        let (df, records) = match self.csv_frame(sorted, false, chunk.as_deref()) {
            Ok(df) => (df, None),
            Err(e) if e.to_string().contains("more fields") => {
                // Read with the long records cut to the header's width: their cells are never
                // used, the caller rejects those rows.
                let records = scan()?;
                let df = self
                    .csv_frame(sorted, true, chunk.as_deref())
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

    fn csv_frame(
        &self,
        sorted: &[usize],
        truncate_ragged: bool,
        chunk: Option<&Vec<u8>>,
    ) -> PolarsResult<DataFrame> {
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
        if let Some(c) = chunk {
            return options
                .into_reader_with_file_handle(std::io::Cursor::new(c.as_slice()))
                .finish();
        }
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

    /// Every cell, ragged and blank record of a read: by chunks of `rows` records, or whole.
    fn read_all(
        source: &Source,
        rows: Option<usize>,
    ) -> (Vec<Vec<Option<String>>>, Vec<usize>, Vec<usize>) {
        let ranges = rows.map_or(vec![(0, usize::MAX)], |r| source.chunks(r));
        let (mut cells, mut ragged, mut blank) = (Vec::new(), Vec::new(), Vec::new());
        for range in ranges {
            let frame = source.read_range(&[0, 1], range).unwrap();
            for row in 0..frame.height {
                cells.push(
                    frame
                        .columns
                        .iter()
                        .map(|c| c.str().unwrap().get(row).map(str::to_string))
                        .collect(),
                );
            }
            let first = if range.1 == usize::MAX { 0 } else { range.0 };
            ragged.extend(frame.ragged_rows.iter().map(|r| r + first));
            blank.extend(frame.blank_rows.iter().map(|r| r + first));
        }
        (cells, ragged, blank)
    }

    #[test]
    fn csv_chunks_are_whole_records_and_read_like_the_whole_file() {
        // Quoted line breaks and separators, a blank line, a long record, CRLF, a BOM and no
        // final line break.
        let csv = "\u{feff}a,b\n1,2\n\"x\ny\",\"3,4\"\r\n\n5,6,7\n8,9\n10,\n11,12";
        for gz in [false, true] {
            let path = std::env::temp_dir().join(format!(
                "patronage-input-{}-chunks-{gz}.csv",
                std::process::id()
            ));
            if gz {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                std::io::Write::write_all(&mut e, csv.as_bytes()).unwrap();
                fs_err::write(&path, e.finish().unwrap()).unwrap();
            } else {
                fs_err::write(&path, csv).unwrap();
            }
            let source = Source::open(&path, None).unwrap();
            let whole = read_all(&source, None);
            assert_eq!(whole.0.len(), 7, "{whole:?}");
            assert_eq!((whole.1.clone(), whole.2.clone()), (vec![3], vec![2]));
            for rows in [1, 2, 3, 5, 100] {
                if rows < 7 {
                    assert!(source.chunks(rows).len() > 1, "{rows}");
                }
                assert_eq!(read_all(&source, Some(rows)), whole, "chunks of {rows}");
            }
        }
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
