//! The canonical order columns and how an export's own column names map onto them.
//!
//! Without an explicit mapping a canonical column matches a source column whose name is equal
//! after lower-casing and dropping everything but letters and digits (`CustomerID`, `customer id`
//! and `customer_id` all match `customer_id`), or one of a few documented aliases
//! (`order_date` for `order_ts`, `order_total`/`total` for `amount`).

use std::collections::BTreeMap;

use serde::Deserialize;

/// `[orders]` section of the config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrdersSchema {
    /// Canonical column → the export's column name.
    #[serde(default)]
    pub columns: OrderColumns,
    /// A chrono format for `order_ts` (e.g. `"%d/%m/%Y %H:%M"`); ISO-8601, compact `YYYYMMDD`
    /// and epoch numbers are detected without it.
    pub timestamp_format: Option<String>,
    /// The export's status values → `completed`, `cancelled` or `returned`.
    #[serde(default)]
    pub status_values: BTreeMap<String, String>,
    /// CSV separator (one character); detected from the header line when unset.
    pub separator: Option<String>,
    /// Cell values that mean "no value" (compared after trimming; an empty cell always does).
    #[serde(default = "default_null_values")]
    pub null_values: Vec<String>,
    /// Whether a `returned` order counts as a purchase (in `frequency`, the BTYD summary and
    /// `monetary`, with its amount also in `refunds`). Either way it nets to zero revenue.
    #[serde(default)]
    pub returned_counts_as_purchase: bool,
}

/// Null markers written by common tools: SQL dumps (`NULL`, `\N` from MySQL/Hive), Python
/// (`None`, `nan`), R and spreadsheets (`NA`, `N/A`).
pub fn default_null_values() -> Vec<String> {
    ["NULL", "null", "\\N", "None", "NA", "N/A", "nan", "NaN"]
        .map(String::from)
        .to_vec()
}

impl Default for OrdersSchema {
    fn default() -> Self {
        OrdersSchema {
            columns: OrderColumns::default(),
            timestamp_format: None,
            status_values: BTreeMap::new(),
            separator: None,
            null_values: default_null_values(),
            returned_counts_as_purchase: false,
        }
    }
}

impl OrdersSchema {
    /// The configured CSV separator as a byte.
    pub fn separator_byte(&self) -> Result<Option<u8>, String> {
        separator_byte("orders", self.separator.as_deref())
    }
}

/// A configured CSV separator (`<section>.separator`) as a byte: one ASCII character or "tab".
pub(crate) fn separator_byte(section: &str, separator: Option<&str>) -> Result<Option<u8>, String> {
    match separator {
        None => Ok(None),
        Some("\\t") | Some("tab") => Ok(Some(b'\t')),
        Some(s) if s.len() == 1 && s.is_ascii() && s != "\"" => Ok(Some(s.as_bytes()[0])),
        Some(s) => Err(format!(
            "{section}.separator must be one ASCII character (or \"tab\"), got {s:?}"
        )),
    }
}

/// Source column names for each canonical column; `None` means "find it by name".
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderColumns {
    pub customer_id: Option<String>,
    pub order_id: Option<String>,
    pub order_ts: Option<String>,
    pub amount: Option<String>,
    pub status: Option<String>,
    pub discount_amount: Option<String>,
    pub category: Option<String>,
    pub product_id: Option<String>,
    pub quantity: Option<String>,
    pub channel: Option<String>,
}

/// Canonical column identifiers, in output order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Canon {
    CustomerId,
    OrderId,
    OrderTs,
    Amount,
    Status,
    DiscountAmount,
    Category,
    ProductId,
    Quantity,
    Channel,
}

impl Canon {
    pub(crate) const ALL: [Canon; 10] = [
        Canon::CustomerId,
        Canon::OrderId,
        Canon::OrderTs,
        Canon::Amount,
        Canon::Status,
        Canon::DiscountAmount,
        Canon::Category,
        Canon::ProductId,
        Canon::Quantity,
        Canon::Channel,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Canon::CustomerId => "customer_id",
            Canon::OrderId => "order_id",
            Canon::OrderTs => "order_ts",
            Canon::Amount => "amount",
            Canon::Status => "status",
            Canon::DiscountAmount => "discount_amount",
            Canon::Category => "category",
            Canon::ProductId => "product_id",
            Canon::Quantity => "quantity",
            Canon::Channel => "channel",
        }
    }

    pub(crate) fn required(self) -> bool {
        matches!(
            self,
            Canon::CustomerId | Canon::OrderId | Canon::OrderTs | Canon::Amount
        )
    }

    fn aliases(self) -> &'static [&'static str] {
        match self {
            Canon::OrderTs => &["orderdate", "ordertime", "ordertimestamp"],
            Canon::Amount => &["ordertotal", "total", "orderamount"],
            Canon::Status => &["orderstatus"],
            _ => &[],
        }
    }

    pub(crate) fn configured(self, c: &OrderColumns) -> Option<&str> {
        match self {
            Canon::CustomerId => c.customer_id.as_deref(),
            Canon::OrderId => c.order_id.as_deref(),
            Canon::OrderTs => c.order_ts.as_deref(),
            Canon::Amount => c.amount.as_deref(),
            Canon::Status => c.status.as_deref(),
            Canon::DiscountAmount => c.discount_amount.as_deref(),
            Canon::Category => c.category.as_deref(),
            Canon::ProductId => c.product_id.as_deref(),
            Canon::Quantity => c.quantity.as_deref(),
            Canon::Channel => c.channel.as_deref(),
        }
    }
}

pub(crate) fn normalize(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Why a canonical column could not be mapped.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Unresolved {
    /// Not found; carries a "did you mean" / "map it with" hint.
    Missing(String),
    /// Several source columns match; carries their names.
    Ambiguous(Vec<String>),
}

/// Finds the source column for `canon` among `found` (the file's header, duplicates included)
/// and returns its index. A configured name must occur exactly once; without configuration,
/// exactly one column may match by normalized name or alias, else the mapping is ambiguous.
pub(crate) fn resolve(
    canon: Canon,
    schema: &OrderColumns,
    found: &[String],
) -> Result<Option<usize>, Unresolved> {
    let spec = ColumnSpec {
        name: canon.name(),
        required: canon.required(),
        aliases: canon.aliases(),
    };
    resolve_spec(&spec, canon.configured(schema), "orders", found)
}

/// A canonical column of an input: its name, whether the input needs it, and the normalized
/// aliases it is also found by.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ColumnSpec {
    pub name: &'static str,
    pub required: bool,
    pub aliases: &'static [&'static str],
}

/// Finds the source column for `spec` among `found` (the file's header, duplicates included)
/// and returns its index. A configured name must occur exactly once; without configuration,
/// exactly one column may match by normalized name or alias, else the mapping is ambiguous.
/// `section` is the config section the hint names (`orders`, `customers`).
pub(crate) fn resolve_spec(
    spec: &ColumnSpec,
    configured: Option<&str>,
    section: &str,
    found: &[String],
) -> Result<Option<usize>, Unresolved> {
    let matches = |pred: &dyn Fn(&str) -> bool| -> Vec<usize> {
        (0..found.len()).filter(|&i| pred(&found[i])).collect()
    };
    if let Some(name) = configured {
        let hits = matches(&|f| f == name);
        return match hits.as_slice() {
            [one] => Ok(Some(*one)),
            [] => Err(Unresolved::Missing(format!(
                " (the config maps it to `{name}`{})",
                did_you_mean(name, found)
            ))),
            _ => Err(Unresolved::Ambiguous(
                hits.iter().map(|&i| found[i].clone()).collect(),
            )),
        };
    }
    let want = normalize(spec.name);
    let hits = matches(&|f| {
        let n = normalize(f);
        n == want || spec.aliases.contains(&n.as_str())
    });
    match hits.as_slice() {
        [one] => Ok(Some(*one)),
        [] if spec.required => Err(Unresolved::Missing(format!(
            "{}; map it with `[{section}.columns] {} = \"...\"` in the config",
            did_you_mean(spec.name, found),
            spec.name
        ))),
        [] => Ok(None),
        _ => Err(Unresolved::Ambiguous(
            hits.iter().map(|&i| found[i].clone()).collect(),
        )),
    }
}

/// Quotes column names for a message: `` `a`, `b` ``.
pub(crate) fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The error for a canonical column that is ambiguous in a file.
pub(crate) fn ambiguous(
    path: &std::path::Path,
    section: &'static str,
    column: &str,
    names: &[String],
) -> crate::InputError {
    crate::InputError::AmbiguousColumn {
        path: path.to_path_buf(),
        section,
        column: column.to_string(),
        canonical: section,
        found: format!("{} columns ({})", names.len(), quoted(names)),
    }
}

/// The canonical column an unmapped source column looks like (its normalized name contains the
/// canonical name, e.g. `OrderStatus` → `status`), for a "did you mean to map" hint.
pub(crate) fn looks_like(name: &str) -> Option<Canon> {
    let n = normalize(name);
    // The whole canonical name first (`OrderStatus` → status), then its stem (`Customer Email`
    // → customer_id).
    Canon::ALL
        .into_iter()
        .find(|c| n.contains(&normalize(c.name())))
        .or_else(|| {
            Canon::ALL.into_iter().find(|c| {
                let want = normalize(c.name());
                let stem = want.trim_end_matches("id").trim_end_matches("ts");
                stem.len() >= 5 && stem.len() < want.len() && n.contains(stem)
            })
        })
}

fn did_you_mean(name: &str, found: &[String]) -> String {
    let target = normalize(name);
    found
        .iter()
        .map(|f| (edit_distance(&target, &normalize(f)), f))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, f)| format!(", did you mean `{f}`?"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_match_after_normalization_and_aliases() {
        let found = cols(&["CustomerID", "Order Date", "Total"]);
        let s = OrderColumns::default();
        assert_eq!(resolve(Canon::CustomerId, &s, &found), Ok(Some(0)));
        assert_eq!(resolve(Canon::OrderTs, &s, &found), Ok(Some(1)));
        assert_eq!(resolve(Canon::Amount, &s, &found), Ok(Some(2)));
        assert_eq!(resolve(Canon::Status, &s, &found), Ok(None));
    }

    #[test]
    fn missing_required_column_suggests_the_closest() {
        let found = cols(&["customr_id", "order_id"]);
        let err = resolve(Canon::CustomerId, &OrderColumns::default(), &found).unwrap_err();
        assert!(
            matches!(&err, Unresolved::Missing(h) if h.contains("did you mean `customr_id`?")),
            "{err:?}"
        );
    }

    #[test]
    fn two_candidates_are_ambiguous_unless_configured() {
        let found = cols(&["Customer ID", "customer_id", "amount", "amount"]);
        let s = OrderColumns::default();
        assert_eq!(
            resolve(Canon::CustomerId, &s, &found),
            Err(Unresolved::Ambiguous(vec![
                "Customer ID".into(),
                "customer_id".into()
            ]))
        );
        assert!(matches!(
            resolve(Canon::Amount, &s, &found),
            Err(Unresolved::Ambiguous(_))
        ));
        let configured = OrderColumns {
            customer_id: Some("customer_id".into()),
            ..Default::default()
        };
        assert_eq!(resolve(Canon::CustomerId, &configured, &found), Ok(Some(1)));
        assert_eq!(looks_like("OrderStatus"), Some(Canon::Status));
        assert_eq!(looks_like("Customer Email"), Some(Canon::CustomerId));
        assert_eq!(looks_like("weight_kg"), None);
    }

    #[test]
    fn separator_errors_name_their_section() {
        assert_eq!(separator_byte("clicks", Some("tab")), Ok(Some(b'\t')));
        let err = separator_byte("customers", Some(";;")).unwrap_err();
        assert!(err.starts_with("customers.separator"), "{err}");
    }
}
