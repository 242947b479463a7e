//! The canonical order columns and how an export's own column names map onto them.
//!
//! Without an explicit mapping a canonical column matches a source column whose name is equal
//! after lower-casing and dropping everything but letters and digits (`CustomerID`, `customer id`
//! and `customer_id` all match `customer_id`), or one of a few documented aliases
//! (`order_date` for `order_ts`, `order_total`/`total` for `amount`).

use std::collections::BTreeMap;

use serde::Deserialize;

/// `[orders]` section of the config.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrdersSchema {
    /// Canonical column → the export's column name.
    #[serde(default)]
    pub columns: OrderColumns,
    /// A chrono format for `order_ts` (e.g. `"%d/%m/%Y %H:%M"`); ISO-8601 and epoch are detected
    /// without it.
    pub timestamp_format: Option<String>,
    /// The export's status values → `completed`, `cancelled` or `returned`.
    #[serde(default)]
    pub status_values: BTreeMap<String, String>,
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

/// Finds the source column for `canon` among `found`. `Err` carries a "did you mean" hint.
pub(crate) fn resolve(
    canon: Canon,
    schema: &OrderColumns,
    found: &[String],
) -> Result<Option<String>, String> {
    if let Some(name) = canon.configured(schema) {
        if found.iter().any(|f| f == name) {
            return Ok(Some(name.to_string()));
        }
        return Err(format!(
            " (the config maps it to `{name}`{})",
            did_you_mean(name, found)
        ));
    }
    let want = normalize(canon.name());
    let by_name = found.iter().find(|f| normalize(f) == want).or_else(|| {
        found
            .iter()
            .find(|f| canon.aliases().contains(&normalize(f).as_str()))
    });
    match by_name {
        Some(name) => Ok(Some(name.clone())),
        None if canon.required() => Err(format!(
            "{}; map it with `[orders.columns] {} = \"...\"` in the config",
            did_you_mean(canon.name(), found),
            canon.name()
        )),
        None => Ok(None),
    }
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
        assert_eq!(
            resolve(Canon::CustomerId, &s, &found),
            Ok(Some("CustomerID".into()))
        );
        assert_eq!(
            resolve(Canon::OrderTs, &s, &found),
            Ok(Some("Order Date".into()))
        );
        assert_eq!(resolve(Canon::Amount, &s, &found), Ok(Some("Total".into())));
        assert_eq!(resolve(Canon::Status, &s, &found), Ok(None));
    }

    #[test]
    fn missing_required_column_suggests_the_closest() {
        let found = cols(&["customr_id", "order_id"]);
        let err = resolve(Canon::CustomerId, &OrderColumns::default(), &found).unwrap_err();
        assert!(err.contains("did you mean `customr_id`?"), "{err}");
    }
}
