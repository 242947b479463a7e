//! Text cells read in place from polars' string chunks, and the cell-level rules every input
//! shares (invalid UTF-8 marks, integral-float identifiers).

use polars::prelude::*;

/// A string column read in place from polars' chunks (no per-row copy: at 10M rows a
/// `Vec<Option<&str>>` per column would be 160 MB of freshly zeroed pages each).
pub(crate) struct TextCol<'a> {
    chunks: Vec<&'a <StringType as PolarsDataType>::Array>,
    /// First row of each chunk.
    starts: Vec<usize>,
    /// The common length of all chunks but the last, when they share one (Parquet row groups,
    /// CSV batches): then a row's chunk is a division, not a search.
    pub(crate) uniform: Option<usize>,
}

impl<'a> TextCol<'a> {
    pub(crate) fn new(col: &'a Column) -> Self {
        let mut out = TextCol::absent();
        if let Ok(ca) = col.str() {
            let mut start = 0;
            for arr in ca.downcast_iter() {
                out.chunks.push(arr);
                out.starts.push(start);
                start += arr.len();
            }
            let lens: Vec<usize> = out.chunks.iter().map(|a| a.len()).collect();
            out.uniform = match lens.split_last() {
                Some((_, [])) | None => None,
                Some((last, rest)) => {
                    (rest[0] > 0 && rest.iter().all(|&l| l == rest[0]) && *last <= rest[0])
                        .then_some(rest[0])
                }
            };
        }
        out
    }

    /// A column the file does not have: every cell is null.
    pub(crate) fn absent() -> Self {
        TextCol {
            chunks: Vec::new(),
            starts: Vec::new(),
            uniform: None,
        }
    }

    pub(crate) fn get(&self, row: usize) -> Option<&'a str> {
        let k = match (self.chunks.len(), self.uniform) {
            (0, _) => return None,
            (1, _) => 0,
            (_, Some(len)) => row / len,
            _ => self.starts.partition_point(|&s| s <= row) - 1,
        };
        self.chunks[k].get(row - self.starts[k])
    }
}

/// Whether a cell holds U+FFFD, which the lossy UTF-8 reader put where bytes were invalid. Its
/// encoding starts with 0xEF, so a memchr for that byte rules almost every cell out.
pub(crate) fn has_replacement_char(s: &str) -> bool {
    s.as_bytes().contains(&0xEF) && s.contains(char::REPLACEMENT_CHARACTER)
}

/// `42.0`, `42.00` → `42`: an integral number written as a float is the integer id (pandas
/// writes float ids whenever an id column had a null). Anything else is kept as it is.
pub(crate) fn integral_id(s: &str) -> &str {
    let Some(dot) = s.find('.') else { return s };
    let (int, frac) = (&s[..dot], &s[dot + 1..]);
    let digits = int.strip_prefix('-').unwrap_or(int);
    if !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !frac.is_empty()
        && frac.bytes().all(|b| b == b'0')
    {
        int
    } else {
        s
    }
}

/// A cell trimmed; `None` when empty or one of the `null_values` markers.
pub(crate) fn clean<'a>(raw: &'a str, null_values: &[String]) -> Option<&'a str> {
    let s = raw.trim();
    (!s.is_empty() && !null_values.iter().any(|n| n == s)).then_some(s)
}

/// Strings interned as they are read: one allocation per distinct value, a `u32` per row.
#[derive(Default)]
pub(crate) struct Dict {
    key: std::collections::HashMap<String, u32, foldhash::fast::FixedState>,
    pub names: Vec<String>,
}

impl Dict {
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(k) = self.key.get(s) {
            return *k;
        }
        let k = self.names.len() as u32;
        self.key.insert(s.to_string(), k);
        self.names.push(s.to_string());
        k
    }
}
