//! Text cells read in place from polars' string chunks, and the cell-level rules every input
//! shares (invalid UTF-8 marks, integral-float identifiers).

use polars::prelude::*;

/// A column read in place from polars' chunks (no per-row copy: at 10M rows a
/// `Vec<Option<&str>>` per column would be 160 MB of freshly zeroed pages each).
pub(crate) struct ChunkCol<'a, T: PolarsDataType> {
    chunks: Vec<&'a T::Array>,
    /// First row of each chunk.
    starts: Vec<usize>,
    /// The common length of all chunks but the last, when they share one (Parquet row groups,
    /// CSV batches): then a row's chunk is a division, not a search.
    pub(crate) uniform: Option<usize>,
}

/// A string column read in place.
pub(crate) type TextCol<'a> = ChunkCol<'a, StringType>;
/// An `Int64` column read in place (integer ids, timestamps in microseconds).
pub(crate) type IntCol<'a> = ChunkCol<'a, Int64Type>;
/// A `Float64` column read in place.
pub(crate) type FloatCol<'a> = ChunkCol<'a, Float64Type>;

impl<'a, T: PolarsDataType> ChunkCol<'a, T> {
    pub(crate) fn of(ca: &'a ChunkedArray<T>) -> Self {
        let mut out = ChunkCol::absent();
        let lens: Vec<usize> = ca.chunk_lengths().collect();
        let mut start = 0;
        for (arr, len) in ca.downcast_iter().zip(&lens) {
            out.chunks.push(arr);
            out.starts.push(start);
            start += len;
        }
        out.uniform = match lens.split_last() {
            Some((_, [])) | None => None,
            Some((last, rest)) => {
                (rest[0] > 0 && rest.iter().all(|&l| l == rest[0]) && *last <= rest[0])
                    .then_some(rest[0])
            }
        };
        out
    }

    /// A column the file does not have: every cell is null.
    pub(crate) fn absent() -> Self {
        ChunkCol {
            chunks: Vec::new(),
            starts: Vec::new(),
            uniform: None,
        }
    }

    /// The chunk of `row` and the row's offset in it.
    fn locate(&self, row: usize) -> Option<(&'a T::Array, usize)> {
        let k = match (self.chunks.len(), self.uniform) {
            (0, _) => return None,
            (1, _) => 0,
            (_, Some(len)) => row / len,
            _ => self.starts.partition_point(|&s| s <= row) - 1,
        };
        Some((self.chunks[k], row - self.starts[k]))
    }
}

impl<'a> TextCol<'a> {
    /// The column as text; a column of another type reads as absent.
    pub(crate) fn new(col: &'a Column) -> Self {
        col.str()
            .map(ChunkCol::of)
            .unwrap_or_else(|_| ChunkCol::absent())
    }

    pub(crate) fn get(&self, row: usize) -> Option<&'a str> {
        let (arr, i) = self.locate(row)?;
        arr.get(i)
    }

    /// The cell's Arrow view when the cell is set and short enough to sit in its view (at most
    /// 12 bytes): then the 16 bytes are its length and its whole text, so equal keys are equal
    /// cells. `None` for a null or a longer cell.
    pub(crate) fn inline_key(&self, row: usize) -> Option<u128> {
        use polars_arrow::array::Array;
        let (arr, i) = self.locate(row)?;
        let view = *arr.views().get(i)?;
        (view.length <= polars_arrow::array::View::MAX_INLINE_SIZE && arr.is_valid(i))
            .then(|| view.as_u128())
    }
}

/// What short text cells meant, remembered by their view ([`TextCol::inline_key`]): a status
/// or category column holds a handful of values, so a row finds its cell's meaning here instead
/// of trimming, comparing and hashing the text again. Direct-mapped: a collision only costs a
/// recomputation.
pub(crate) struct ViewMemo<V> {
    slots: [(u128, V); MEMO_SLOTS],
}

/// Slots of a [`ViewMemo`] (a power of two: a slot is the top bits of a hash).
const MEMO_SLOTS: usize = 64;

impl<V: Copy> ViewMemo<V> {
    /// An empty memo (`filler` is never returned: no inline view is all ones, its length would
    /// be 2³² − 1).
    pub(crate) fn new(filler: V) -> Self {
        ViewMemo {
            slots: [(u128::MAX, filler); MEMO_SLOTS],
        }
    }

    #[inline]
    fn slot(key: u128) -> usize {
        let h = (key as u64 ^ (key >> 64) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (h >> (64 - MEMO_SLOTS.trailing_zeros())) as usize
    }

    #[inline]
    pub(crate) fn get(&self, key: u128) -> Option<V> {
        let (k, v) = self.slots[Self::slot(key)];
        (k == key).then_some(v)
    }

    #[inline]
    pub(crate) fn put(&mut self, key: u128, value: V) {
        self.slots[Self::slot(key)] = (key, value);
    }

    /// The meaning of the cell with `key` (when it has one), from the memo or from `compute`
    /// (remembered when it succeeds).
    #[inline]
    pub(crate) fn or_compute<E>(
        &mut self,
        key: Option<u128>,
        compute: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        if let Some(v) = key.and_then(|k| self.get(k)) {
            return Ok(v);
        }
        let v = compute()?;
        if let Some(k) = key {
            self.put(k, v);
        }
        Ok(v)
    }
}

macro_rules! numeric_get {
    ($($t:ty),*) => {$(
        impl ChunkCol<'_, $t> {
            pub(crate) fn get(&self, row: usize) -> Option<<$t as PolarsNumericType>::Native> {
                let (arr, i) = self.locate(row)?;
                arr.get(i)
            }
        }
    )*};
}
numeric_get!(Int32Type, Int64Type, Float64Type);

/// An identifier: a canonical integer (no sign but `-`, no leading zero; what an integer
/// column holds) as its value, anything else as text. Text `"42"` and the integer 42 are the
/// same key, `"042"` another; integer keys compare and hash as integers, without text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Key<'a> {
    Int(i64),
    Text(&'a str),
}

impl<'a> Key<'a> {
    /// The key of a cleaned text cell (`42.0` is `42`, see [`integral_id`]).
    pub(crate) fn of_text(s: &'a str) -> Self {
        let s = integral_id(s);
        let digits = s.strip_prefix('-').unwrap_or(s).as_bytes();
        let canonical = !digits.is_empty()
            && digits.len() <= 19
            && digits.iter().all(u8::is_ascii_digit)
            && (digits[0] != b'0' || (digits.len() == 1 && s.len() == 1));
        match canonical.then(|| s.parse::<i64>().ok()).flatten() {
            Some(v) => Key::Int(v),
            None => Key::Text(s),
        }
    }
}

impl std::fmt::Display for Key<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Int(v) => write!(f, "{v}"),
            Key::Text(s) => f.write_str(s),
        }
    }
}

/// An identifier column: integers kept as integers, anything else as text.
pub(crate) enum IdCol<'a> {
    Int(IntCol<'a>),
    Text(TextCol<'a>),
}

impl<'a> IdCol<'a> {
    /// `col` as read: an `Int64` column as integers, otherwise text (absent when neither).
    pub(crate) fn new(col: &'a Column) -> Self {
        match col.i64() {
            Ok(ca) => IdCol::Int(ChunkCol::of(ca)),
            Err(_) => IdCol::Text(TextCol::new(col)),
        }
    }

    /// A column the file does not have: every cell is null.
    pub(crate) fn absent() -> Self {
        IdCol::Text(TextCol::absent())
    }

    /// The cell of a text column (to check before keying it); `None` in an integer column.
    pub(crate) fn text(&self, row: usize) -> Option<&'a str> {
        match self {
            IdCol::Text(c) => c.get(row),
            IdCol::Int(_) => None,
        }
    }

    /// The raw cell, as the file holds it (for rejected rows).
    pub(crate) fn raw(&self, row: usize) -> Option<String> {
        match self {
            IdCol::Int(c) => c.get(row).map(|v| v.to_string()),
            IdCol::Text(c) => c.get(row).map(str::to_string),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_integer_text_is_the_integer_key() {
        assert_eq!(Key::of_text("42"), Key::Int(42));
        assert_eq!(Key::of_text("42.00"), Key::Int(42));
        assert_eq!(Key::of_text("-7"), Key::Int(-7));
        assert_eq!(Key::of_text("0"), Key::Int(0));
        assert_eq!(Key::of_text("-9223372036854775808"), Key::Int(i64::MIN));
        // Not what an integer column would print: kept as text, so a distinct key.
        for s in [
            "042",
            "-0",
            "+42",
            "4 2",
            "9223372036854775808",
            "1e3",
            "A42",
            "",
        ] {
            assert_eq!(Key::of_text(s), Key::Text(s), "{s}");
        }
        // Every key prints as the text it came from.
        for s in ["42", "-7", "042", "x"] {
            assert_eq!(Key::of_text(s).to_string(), s);
        }
    }

    #[test]
    fn short_cells_are_keyed_by_their_views_and_remembered_when_they_succeed() {
        let cells = [
            Some("completed"),
            Some("completed"),
            Some(" completed"),
            None,
            Some("longer than twelve bytes"),
            Some(""),
            Some("bogus"),
        ];
        let col = Column::new("s".into(), cells);
        let t = TextCol::new(&col);
        let key = |r| t.inline_key(r);
        assert!(key(0).is_some() && key(0) == key(1));
        assert_ne!(key(0), key(2));
        assert_eq!((key(3), key(4)), (None, None));
        assert!(key(5).is_some() && key(5) != key(0));
        // A success is computed once per distinct short cell; a failure every time.
        let mut memo = ViewMemo::new(0usize);
        let mut calls = 0;
        let mut meaning = |r: usize| {
            memo.or_compute(key(r), || {
                calls += 1;
                match cells[r] {
                    Some("bogus") => Err(()),
                    c => Ok(c.map_or(0, str::len)),
                }
            })
        };
        let got: Vec<_> = [0, 1, 6, 6, 2, 4, 4, 3]
            .iter()
            .map(|&r| meaning(r))
            .collect();
        assert_eq!(
            got,
            [
                Ok(9),
                Ok(9),
                Err(()),
                Err(()),
                Ok(10),
                Ok(24),
                Ok(24),
                Ok(0)
            ]
        );
        assert_eq!(calls, 7, "only the repeated `completed` came from the memo");
        // More distinct cells than slots: colliding cells recompute, never mix up.
        let many: Vec<String> = (0..1000).map(|i| format!("c{i}")).collect();
        let col = Column::new("m".into(), many.clone());
        let t = TextCol::new(&col);
        let mut memo = ViewMemo::new(usize::MAX);
        for _ in 0..2 {
            for (r, s) in many.iter().enumerate() {
                let got = memo.or_compute(t.inline_key(r), || Ok::<_, ()>(r));
                assert_eq!(got, Ok(r), "{s}");
            }
        }
    }

    #[test]
    fn integer_id_columns_are_read_as_integers_and_others_as_text() {
        let ints = Column::new("id".into(), [Some(5i64), None, Some(-3)]);
        let IdCol::Int(c) = IdCol::new(&ints) else {
            panic!("an Int64 column is read as integers")
        };
        assert_eq!((c.get(0), c.get(1), c.get(2)), (Some(5), None, Some(-3)));
        let text = Column::new("id".into(), ["a", "b"]);
        assert!(matches!(IdCol::new(&text), IdCol::Text(_)));
        assert_eq!(IdCol::new(&ints).raw(2).as_deref(), Some("-3"));
    }
}
