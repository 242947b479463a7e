//! Per-customer features as named, typed columns over one shared [`CustomerIndex`].
//!
//! Every per-customer table of a run has one row per customer of the index, in index order
//! (ascending `customer_id`), so a row position *is* the customer key: stages that add columns
//! (order features, engagement, switching costs, scores, clusters, stages) align by it, and a
//! stage that needs a feature asks for it by name ([`FeatureTable::f64`], ...), never by a
//! struct field or a column position. The column list of a table is its data contract: name,
//! type, description (the data dictionary reads it) and values, in output order.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::Day;

/// The customers of a run: the sorted union of the `customer_id`s every input names (orders,
/// and later clicks and profiles). A customer without an order is a *prospect*: present, with
/// null order features.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerIndex {
    ids: Vec<String>,
}

impl CustomerIndex {
    /// The index of the distinct ids in `ids` (any order, duplicates allowed).
    pub fn new(ids: impl IntoIterator<Item = String>) -> Self {
        let mut ids: Vec<String> = ids.into_iter().collect();
        ids.par_sort_unstable();
        ids.dedup();
        CustomerIndex { ids }
    }

    /// The index of the union of several id lists, each without repeats, where `keep[i]` says
    /// whether a list's `i`-th id joins; with, per list, each id's position (`None` for the ids
    /// that do not join). One sort per list and one merge, no hash map; the ids move into the
    /// index (the lists are consumed).
    pub fn union(
        mut lists: Vec<(Vec<String>, Vec<bool>)>,
    ) -> (CustomerIndex, Vec<Vec<Option<u32>>>) {
        let sorted: Vec<Vec<u32>> = lists
            .iter()
            .map(|(ids, keep)| {
                // (text, position) pairs sort without a second indirection per comparison.
                let mut pairs: Vec<(&str, u32)> = ids
                    .iter()
                    .zip(keep)
                    .enumerate()
                    .filter(|(_, (_, k))| **k)
                    .map(|(i, (id, _))| (id.as_str(), i as u32))
                    .collect();
                pairs.par_sort_unstable();
                debug_assert!(pairs.windows(2).all(|w| w[0].0 != w[1].0));
                pairs.into_iter().map(|p| p.1).collect()
            })
            .collect();
        let mut at: Vec<Vec<Option<u32>>> =
            lists.iter().map(|(ids, _)| vec![None; ids.len()]).collect();
        let mut heads = vec![0usize; lists.len()];
        let mut ids = Vec::with_capacity(sorted.iter().map(Vec::len).max().unwrap_or(0));
        loop {
            let head = |l: usize, heads: &[usize]| sorted[l].get(heads[l]).map(|&i| i as usize);
            // The list whose head is the smallest id (the first such list).
            let mut best: Option<(usize, usize)> = None;
            for l in 0..lists.len() {
                if let Some(i) = head(l, &heads) {
                    if best.is_none_or(|(b, bi)| lists[l].0[i] < lists[b].0[bi]) {
                        best = Some((l, i));
                    }
                }
            }
            let Some((b, bi)) = best else { break };
            let position = ids.len() as u32;
            for l in b + 1..lists.len() {
                if let Some(i) = head(l, &heads) {
                    if lists[l].0[i] == lists[b].0[bi] {
                        at[l][i] = Some(position);
                        heads[l] += 1;
                    }
                }
            }
            at[b][bi] = Some(position);
            heads[b] += 1;
            ids.push(std::mem::take(&mut lists[b].0[bi]));
        }
        (CustomerIndex { ids }, at)
    }

    /// An index from ids already sorted ascending and unique.
    pub fn from_sorted(ids: Vec<String>) -> Self {
        debug_assert!(ids.windows(2).all(|w| w[0] < w[1]));
        CustomerIndex { ids }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The ids in index order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// The position of `id`, if it is a customer of the index.
    pub fn position(&self, id: &str) -> Option<u32> {
        self.ids
            .binary_search_by(|probe| probe.as_str().cmp(id))
            .ok()
            .map(|p| p as u32)
    }

    /// Positions of a dictionary of ids (e.g. an input's customer dictionary): `None` for ids
    /// that are not customers of the index. One hash map instead of a binary search per id.
    pub fn positions(&self, dictionary: &[String]) -> Vec<Option<u32>> {
        let at: HashMap<&str, u32> = self
            .ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i as u32))
            .collect();
        dictionary
            .iter()
            .map(|id| at.get(id.as_str()).copied())
            .collect()
    }
}

/// Values with nulls as two plain vectors: the values (the type's default where null) and
/// which rows hold one. Half the bytes of `Vec<Option<f64>>` (16 bytes a row), and the layout of
/// an Arrow array, so the output frame takes the values without a copy.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Nullable<T> {
    values: Vec<T>,
    valid: Vec<bool>,
}

impl<T: Copy + Default> Nullable<T> {
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Row `i`'s value; `None` when null.
    pub fn get(&self, i: usize) -> Option<T> {
        self.valid[i].then(|| self.values[i])
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = Option<T>> + '_ {
        self.values
            .iter()
            .zip(&self.valid)
            .map(|(v, ok)| ok.then_some(*v))
    }

    pub fn to_vec(&self) -> Vec<Option<T>> {
        self.iter().collect()
    }

    /// The values (default where null) and the validity, e.g. for an Arrow array.
    pub fn into_parts(self) -> (Vec<T>, Vec<bool>) {
        (self.values, self.valid)
    }

    /// Appends one row.
    pub fn push(&mut self, v: Option<T>) {
        let (value, valid) = split(v);
        self.values.push(value);
        self.valid.push(valid);
    }

    /// Appends the rows of `other`.
    pub fn append(&mut self, other: Nullable<T>) {
        self.values.extend(other.values);
        self.valid.extend(other.valid);
    }

    pub fn reserve(&mut self, additional: usize) {
        self.values.reserve_exact(additional);
        self.valid.reserve_exact(additional);
    }

    /// Rows `rows` (positions), in that order.
    pub fn select(&self, rows: &[usize]) -> Self {
        Nullable {
            values: rows.iter().map(|&r| self.values[r]).collect(),
            valid: rows.iter().map(|&r| self.valid[r]).collect(),
        }
    }

    /// Rows `0..n`, every one null.
    pub fn nulls(n: usize) -> Self {
        Nullable {
            values: vec![T::default(); n],
            valid: vec![false; n],
        }
    }
}

impl<T: Copy + Default> From<Vec<Option<T>>> for Nullable<T> {
    fn from(v: Vec<Option<T>>) -> Self {
        v.into_iter().collect()
    }
}

/// A cell as (value, valid): the default where null.
fn split<T: Default>(o: Option<T>) -> (T, bool) {
    let valid = o.is_some();
    (o.unwrap_or_default(), valid)
}

impl<T: Copy + Default> FromIterator<Option<T>> for Nullable<T> {
    fn from_iter<I: IntoIterator<Item = Option<T>>>(iter: I) -> Self {
        let (values, valid) = iter.into_iter().map(split).unzip();
        Nullable { values, valid }
    }
}

impl<T: Copy + Default + Send> FromParallelIterator<Option<T>> for Nullable<T> {
    fn from_par_iter<I: IntoParallelIterator<Item = Option<T>>>(iter: I) -> Self {
        let (values, valid) = iter.into_par_iter().map(split).unzip();
        Nullable { values, valid }
    }
}

/// Text values as codes into their distinct names (a dictionary column): a `u32` per row
/// instead of a string per row. Names keep their first-seen order.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Labels {
    names: Vec<String>,
    codes: Nullable<u32>,
}

impl Labels {
    /// Labels from distinct `names` and per-row codes into them.
    ///
    /// # Panics
    /// When a code is not a position in `names` (a bug in the caller).
    pub fn new(names: Vec<String>, codes: Nullable<u32>) -> Self {
        assert!(
            codes.iter().flatten().all(|c| (c as usize) < names.len()),
            "a label code outside its names"
        );
        Labels { names, codes }
    }

    pub fn len(&self) -> usize {
        self.codes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    /// The distinct names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Per row, the position of its name in [`Labels::names`].
    pub fn codes(&self) -> &Nullable<u32> {
        &self.codes
    }

    /// Row `i`'s text; `None` when null.
    pub fn get(&self, i: usize) -> Option<&str> {
        self.codes.get(i).map(|c| self.names[c as usize].as_str())
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = Option<&str>> + '_ {
        self.codes
            .iter()
            .map(|c| c.map(|c| self.names[c as usize].as_str()))
    }

    /// Rows `rows` (positions), in that order, with every name (codes unchanged).
    pub fn select(&self, rows: &[usize]) -> Labels {
        Labels {
            names: self.names.clone(),
            codes: self.codes.select(rows),
        }
    }

    /// Appends the rows of `other`, its names merged into these.
    pub fn append(&mut self, other: Labels) {
        let to: Vec<u32> = other
            .names
            .into_iter()
            .map(|name| match self.names.iter().position(|n| *n == name) {
                Some(p) => p as u32,
                None => {
                    self.names.push(name);
                    self.names.len() as u32 - 1
                }
            })
            .collect();
        self.codes.append(
            other
                .codes
                .iter()
                .map(|c| c.map(|c| to[c as usize]))
                .collect(),
        );
    }
}

impl<'a> FromIterator<Option<&'a str>> for Labels {
    fn from_iter<I: IntoIterator<Item = Option<&'a str>>>(iter: I) -> Self {
        let mut at: HashMap<&'a str, u32, foldhash::fast::FixedState> = HashMap::default();
        let mut names = Vec::new();
        let codes = iter
            .into_iter()
            .map(|s| {
                s.map(|s| {
                    *at.entry(s).or_insert_with(|| {
                        names.push(s.to_string());
                        names.len() as u32 - 1
                    })
                })
            })
            .collect();
        Labels { names, codes }
    }
}

/// The values of one column; a null is an absent value.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Int(Nullable<i64>),
    Float(Nullable<f64>),
    /// Days since 1970-01-01.
    Date(Nullable<Day>),
    Text(Labels),
    Bool(Nullable<bool>),
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::Int(v) => v.len(),
            Values::Float(v) => v.len(),
            Values::Date(v) => v.len(),
            Values::Text(v) => v.len(),
            Values::Bool(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the rows of `other`, a column of the same type.
    ///
    /// # Panics
    /// When the types differ (a bug in the code that builds the table).
    pub fn append(&mut self, other: Values) {
        match (self, other) {
            (Values::Int(a), Values::Int(b)) => a.append(b),
            (Values::Float(a), Values::Float(b)) => a.append(b),
            (Values::Date(a), Values::Date(b)) => a.append(b),
            (Values::Text(a), Values::Text(b)) => a.append(b),
            (Values::Bool(a), Values::Bool(b)) => a.append(b),
            (a, b) => panic!(
                "appending {} values to a {} column",
                b.type_name(),
                a.type_name()
            ),
        }
    }

    pub fn reserve(&mut self, additional: usize) {
        match self {
            Values::Int(v) => v.reserve(additional),
            Values::Float(v) => v.reserve(additional),
            Values::Date(v) => v.reserve(additional),
            Values::Text(v) => v.codes.reserve(additional),
            Values::Bool(v) => v.reserve(additional),
        }
    }

    /// The values at `rows`, in that order.
    pub fn select(&self, rows: &[usize]) -> Values {
        fn pick<T: Copy + Default>(v: &Nullable<T>, rows: &[usize]) -> Nullable<T> {
            rows.iter().map(|&r| v.get(r)).collect()
        }
        match self {
            Values::Int(v) => Values::Int(pick(v, rows)),
            Values::Float(v) => Values::Float(pick(v, rows)),
            Values::Date(v) => Values::Date(pick(v, rows)),
            Values::Text(v) => Values::Text(rows.iter().map(|&r| v.get(r)).collect()),
            Values::Bool(v) => Values::Bool(pick(v, rows)),
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Values::Int(_) => "integer",
            Values::Float(_) => "float",
            Values::Date(_) => "date",
            Values::Text(_) => "text",
            Values::Bool(_) => "boolean",
        }
    }
}

/// One named column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: &'static str,
    /// What the column means, with its unit (shown in the data dictionary).
    pub description: &'static str,
    pub values: Values,
}

/// A feature asked for by name that the table does not hold, or holds with another type.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FeatureError {
    #[error("no feature `{name}`; available: {available}")]
    Missing { name: String, available: String },
    #[error("feature `{name}` is {actual}, not {expected}")]
    WrongType {
        name: String,
        expected: &'static str,
        actual: &'static str,
    },
}

/// Named per-customer columns, one row per customer of the index.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeatureTable {
    rows: usize,
    columns: Vec<Column>,
}

impl FeatureTable {
    /// An empty table for `rows` customers.
    pub fn new(rows: usize) -> Self {
        FeatureTable {
            rows,
            columns: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The columns, by value (to convert them one at a time, freeing each as it goes).
    pub fn into_columns(self) -> Vec<Column> {
        self.columns
    }

    /// Appends a column. Panics on a wrong length or a repeated name: both are bugs in the code
    /// that builds the table, not data errors.
    pub fn push(&mut self, name: &'static str, description: &'static str, values: Values) {
        assert_eq!(values.len(), self.rows, "feature `{name}`: wrong length");
        assert!(
            self.columns.iter().all(|c| c.name != name),
            "feature `{name}` pushed twice"
        );
        self.columns.push(Column {
            name,
            description,
            values,
        });
    }

    /// Appends the rows of `other`, a table of the same columns (e.g. the next block of
    /// customers), reserving room for `expected` rows in all.
    ///
    /// # Panics
    /// When the columns differ (a bug in the code that builds the tables).
    pub fn append_rows(&mut self, other: FeatureTable, expected: usize) {
        assert_eq!(self.columns.len(), other.columns.len(), "different columns");
        let more = expected.saturating_sub(self.rows);
        self.rows += other.rows;
        for (a, b) in self.columns.iter_mut().zip(other.columns) {
            assert_eq!(a.name, b.name, "different columns");
            if more > 0 {
                a.values.reserve(more);
            }
            a.values.append(b.values);
        }
    }

    /// The table of the customers at `rows` (a partition of the customers), in that order.
    pub fn select(&self, rows: &[usize]) -> FeatureTable {
        FeatureTable {
            rows: rows.len(),
            columns: self
                .columns
                .iter()
                .map(|c| Column {
                    name: c.name,
                    description: c.description,
                    values: c.values.select(rows),
                })
                .collect(),
        }
    }

    /// Replaces the column `name` in place, or appends it.
    pub fn set(&mut self, name: &'static str, description: &'static str, values: Values) {
        assert_eq!(values.len(), self.rows, "feature `{name}`: wrong length");
        match self.columns.iter_mut().find(|c| c.name == name) {
            Some(c) => {
                c.description = description;
                c.values = values;
            }
            None => self.push(name, description, values),
        }
    }

    /// Appends every column of `other` (same rows).
    pub fn extend(&mut self, other: FeatureTable) {
        for c in other.columns {
            self.push(c.name, c.description, c.values);
        }
    }

    pub fn column(&self, name: &str) -> Result<&Column, FeatureError> {
        self.columns
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| FeatureError::Missing {
                name: name.to_string(),
                available: self
                    .columns
                    .iter()
                    .map(|c| c.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    pub fn has(&self, name: &str) -> bool {
        self.columns.iter().any(|c| c.name == name)
    }

    fn wrong(&self, name: &str, expected: &'static str, actual: &Values) -> FeatureError {
        FeatureError::WrongType {
            name: name.to_string(),
            expected,
            actual: actual.type_name(),
        }
    }

    pub fn int(&self, name: &str) -> Result<&Nullable<i64>, FeatureError> {
        match &self.column(name)?.values {
            Values::Int(v) => Ok(v),
            other => Err(self.wrong(name, "integer", other)),
        }
    }

    pub fn float(&self, name: &str) -> Result<&Nullable<f64>, FeatureError> {
        match &self.column(name)?.values {
            Values::Float(v) => Ok(v),
            other => Err(self.wrong(name, "float", other)),
        }
    }

    pub fn date(&self, name: &str) -> Result<&Nullable<Day>, FeatureError> {
        match &self.column(name)?.values {
            Values::Date(v) => Ok(v),
            other => Err(self.wrong(name, "date", other)),
        }
    }

    /// Any numeric column as floats (integers and dates converted): what clusters and rule
    /// conditions read.
    pub fn numeric(&self, name: &str) -> Result<Vec<Option<f64>>, FeatureError> {
        Ok(match &self.column(name)?.values {
            Values::Float(v) => v.to_vec(),
            Values::Int(v) => v.iter().map(|x| x.map(|x| x as f64)).collect(),
            Values::Date(v) => v.iter().map(|x| x.map(f64::from)).collect(),
            Values::Bool(v) => v
                .iter()
                .map(|x| x.map(|b| f64::from(u8::from(b))))
                .collect(),
            other => return Err(self.wrong(name, "numeric", other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_sorted_unique_and_finds_positions() {
        let idx = CustomerIndex::new(["b", "a", "c", "a"].map(String::from));
        assert_eq!(idx.ids(), ["a", "b", "c"]);
        assert_eq!(idx.position("c"), Some(2));
        assert_eq!(idx.position("z"), None);
        let dict = ["c", "x", "a"].map(String::from);
        assert_eq!(idx.positions(&dict), [Some(2), None, Some(0)]);
    }

    #[test]
    fn a_union_of_id_lists_is_the_index_of_the_kept_ids_with_their_positions() {
        let list = |ids: &[&str], keep: &[bool]| {
            (
                ids.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                keep.to_vec(),
            )
        };
        let lists = vec![
            list(&["b", "d", "a", "x"], &[true, true, true, false]),
            list(&["d", "c", "10", "2"], &[true, false, true, true]),
            list(&[], &[]),
            list(&["a", "e"], &[true, true]),
        ];
        let expected_ids = ["10", "2", "a", "b", "d", "e"];
        let reference = CustomerIndex::new(expected_ids.map(String::from));
        let expected_at: Vec<Vec<Option<u32>>> = lists
            .iter()
            .map(|(ids, keep)| {
                reference
                    .positions(ids)
                    .into_iter()
                    .zip(keep)
                    .map(|(p, k)| p.filter(|_| *k))
                    .collect()
            })
            .collect();
        let (index, at) = CustomerIndex::union(lists);
        assert_eq!(index.ids(), expected_ids);
        assert_eq!(at, expected_at);
        assert_eq!(at[1], [Some(4), None, Some(0), Some(1)]);
    }

    #[test]
    fn labels_keep_distinct_names_and_merge_on_append() {
        let mut a: Labels = [Some("gold"), None, Some("silver"), Some("gold")]
            .into_iter()
            .collect();
        assert_eq!(a.names(), ["gold", "silver"]);
        let b: Labels = [Some("bronze"), Some("silver")].into_iter().collect();
        a.append(b);
        assert_eq!(
            a.iter().collect::<Vec<_>>(),
            [
                Some("gold"),
                None,
                Some("silver"),
                Some("gold"),
                Some("bronze"),
                Some("silver")
            ]
        );
        assert_eq!(a.names(), ["gold", "silver", "bronze"]);
    }

    #[test]
    fn columns_are_asked_for_by_name_and_type() {
        let mut t = FeatureTable::new(2);
        t.push(
            "frequency",
            "orders",
            Values::Int(vec![Some(3), None].into()),
        );
        t.push("aov", "money", Values::Float(vec![Some(2.5), None].into()));
        assert_eq!(t.int("frequency").unwrap().to_vec(), [Some(3), None]);
        assert_eq!(t.float("aov").unwrap().get(0), Some(2.5));
        assert_eq!(t.float("aov").unwrap().get(1), None);
        assert_eq!(t.numeric("frequency").unwrap(), [Some(3.0), None]);
        assert!(matches!(
            t.float("frequency"),
            Err(FeatureError::WrongType { .. })
        ));
        let err = t.float("monetary").unwrap_err().to_string();
        assert!(err.contains("available: frequency, aov"), "{err}");
    }
}
