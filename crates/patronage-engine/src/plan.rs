//! How many customer partitions a `run` works through when neither `--partitions` nor
//! `run.partitions` says: as many as it takes (a power of two, at most [`MAX_PARTITIONS`]) for
//! the memory a single pass would need, estimated from the inputs' sizes before anything is
//! read, to fit in half of `--memory-budget` (default a quarter of the RAM); the routing's
//! buffers then get a quarter of it. So the budget reads as the whole process's, roughly: at
//! 10M order rows, 1 GiB gives 4 partitions and a 0.9 GiB peak.
//!
//! The estimate is per input row, from measured peaks of whole runs: about 180 bytes per order
//! row (10M string-id order rows with 1M profiles peaked at 1.68 GiB; 100M with 10.3M profiles
//! and 298M click events at 18.9 GiB), 200 per profile and 5 per click event (the clickstream is
//! folded per customer as it is read). Rows come from the Parquet footers, or for CSV from the
//! file's size over the mean length of its first lines (gzip: the compressed size times
//! [`GZIP_RATIO`]). It errs towards partitioning: a partitioned run gives the same tables.

use std::io::Read;
use std::path::Path;

use crate::config::RunOptions;

/// Bytes of peak memory per input row of one pass (see the module docs).
const ORDER_ROW_BYTES: u64 = 180;
const PROFILE_ROW_BYTES: u64 = 200;
const CLICK_ROW_BYTES: u64 = 5;
/// Assumed expansion of gzip-compressed CSV.
const GZIP_RATIO: u64 = 5;
pub(crate) const MAX_PARTITIONS: u32 = 64;

/// Rows of an input (a file, directory or glob) as estimated before reading it; 0 when it
/// cannot be listed (the run reports that itself).
fn estimated_rows(spec: &str) -> u64 {
    let Ok(files) = patronage_input::expand_inputs(spec) else {
        return 0;
    };
    files.iter().map(|f| file_rows(f).unwrap_or(0)).sum()
}

fn file_rows(path: &Path) -> Option<u64> {
    let mut file = fs_err::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let mut head = vec![0u8; 64 * 1024];
    let n = file.read(&mut head).ok()?;
    head.truncate(n);
    if head.starts_with(b"PAR1") {
        let source = patronage_input::Source::open(path, None).ok()?;
        return source.records().map(|r| r as u64);
    }
    let (sample, bytes) = if head.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        let _ = flate2::read::MultiGzDecoder::new(&head[..]).read_to_end(&mut out);
        (out, len.saturating_mul(GZIP_RATIO))
    } else {
        (head, len)
    };
    let lines = sample.iter().filter(|&&b| b == b'\n').count() as u64;
    let per_row = (sample.len() as u64 / lines.max(1)).max(1);
    Some(bytes / per_row)
}

/// Peak memory a single pass over the inputs would take, estimated.
pub(crate) fn single_pass_bytes(opts: &RunOptions) -> u64 {
    let rows = |spec: &Option<String>| spec.as_deref().map_or(0, estimated_rows);
    estimated_rows(&opts.orders) * ORDER_ROW_BYTES
        + rows(&opts.customers) * PROFILE_ROW_BYTES
        + rows(&opts.clicks) * CLICK_ROW_BYTES
}

/// The partitions that bring `bytes` within `budget`: 1 when it fits, else the next power of
/// two of bytes / budget, at most [`MAX_PARTITIONS`].
pub(crate) fn partitions_for(bytes: u64, budget: u64) -> u32 {
    if bytes <= budget || budget == 0 {
        return 1;
    }
    let need = bytes.div_ceil(budget);
    (need.next_power_of_two().min(u64::from(MAX_PARTITIONS))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_powers_of_two_within_bounds() {
        assert_eq!(partitions_for(10, 100), 1);
        assert_eq!(partitions_for(100, 100), 1);
        assert_eq!(partitions_for(101, 100), 2);
        assert_eq!(partitions_for(500, 100), 8);
        assert_eq!(partitions_for(u64::MAX / 2, 1), MAX_PARTITIONS);
        assert_eq!(partitions_for(5, 0), 1);
    }

    #[test]
    fn csv_rows_are_estimated_from_the_first_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.csv");
        let line = "C00000001,O00000001-001,2024-01-05T10:00:00,12.50,completed\n";
        fs_err::write(&path, line.repeat(10_000)).unwrap();
        let rows = file_rows(&path).unwrap();
        assert!((9_900..=10_100).contains(&rows), "{rows}");
    }
}
