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

/// The values of one column; `None` is a null.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    /// Days since 1970-01-01.
    Date(Vec<Option<Day>>),
    Text(Vec<Option<String>>),
    Bool(Vec<Option<bool>>),
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

    pub fn int(&self, name: &str) -> Result<&[Option<i64>], FeatureError> {
        match &self.column(name)?.values {
            Values::Int(v) => Ok(v),
            other => Err(self.wrong(name, "integer", other)),
        }
    }

    pub fn float(&self, name: &str) -> Result<&[Option<f64>], FeatureError> {
        match &self.column(name)?.values {
            Values::Float(v) => Ok(v),
            other => Err(self.wrong(name, "float", other)),
        }
    }

    pub fn date(&self, name: &str) -> Result<&[Option<Day>], FeatureError> {
        match &self.column(name)?.values {
            Values::Date(v) => Ok(v),
            other => Err(self.wrong(name, "date", other)),
        }
    }

    /// Any numeric column as floats (integers and dates converted): what clusters and rule
    /// conditions read.
    pub fn numeric(&self, name: &str) -> Result<Vec<Option<f64>>, FeatureError> {
        Ok(match &self.column(name)?.values {
            Values::Float(v) => v.clone(),
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
    fn columns_are_asked_for_by_name_and_type() {
        let mut t = FeatureTable::new(2);
        t.push("frequency", "orders", Values::Int(vec![Some(3), None]));
        t.push("aov", "money", Values::Float(vec![Some(2.5), None]));
        assert_eq!(t.int("frequency").unwrap(), [Some(3), None]);
        assert_eq!(t.numeric("frequency").unwrap(), [Some(3.0), None]);
        assert!(matches!(
            t.float("frequency"),
            Err(FeatureError::WrongType { .. })
        ));
        let err = t.float("monetary").unwrap_err().to_string();
        assert!(err.contains("available: frequency, aov"), "{err}");
    }
}
