//! Features: the per-customer feature table over the run's index — order features, profile
//! columns (with `--customers`), switching costs (engagement from the clickstream joins here
//! next) — and the `customer_features` table.

use patronage_features::FeatureTable;
use serde::Serialize;

use super::ingest::Ingest;
use crate::error::EngineError;

/// The `features` manifest section.
#[derive(Debug, Serialize)]
pub(crate) struct FeaturesManifest {
    /// Customers of the index (rows of every per-customer table).
    pub customers: usize,
    /// Customers without an order on or before the as-of day.
    pub prospects: usize,
    /// Feature columns, in output order.
    pub columns: Vec<&'static str>,
    /// Per switching-cost facet, the features that fed it (empty: the facet is null).
    pub switching_cost_inputs: std::collections::BTreeMap<&'static str, Vec<&'static str>>,
}

/// The feature table (the `customer_features` frame is made from it when the tables are
/// written, after every stage that reads it).
pub(crate) struct Features {
    pub table: FeatureTable,
    pub manifest: FeaturesManifest,
}

/// `keep_orders`: a later stage reads the orders (the backtest); otherwise they are freed as
/// soon as the order features are made (a block of customers' partials at a time).
pub(crate) fn run(ingest: &mut Ingest, keep_orders: bool) -> Result<Features, EngineError> {
    let mut table = patronage_features::compute(&ingest.orders, ingest.index.len(), ingest.as_of);
    if !keep_orders {
        ingest.orders = patronage_features::Orders::default();
    }
    if let Some(profiles) = &ingest.profiles {
        table.extend(patronage_features::profile_features(
            &profiles.profiles,
            &profiles.at,
            ingest.index.len(),
        ));
    }
    if let Some(clicks) = &ingest.clicks {
        let last_order = table.date("last_order_date")?.to_vec();
        table.extend(patronage_features::engagement_from_partials(
            clicks,
            ingest.as_of,
            &last_order,
        ));
    }
    let switching_cost_inputs = patronage_features::add_switching_costs(&mut table)
        .into_iter()
        .collect();
    let prospects = table
        .int("frequency")?
        .iter()
        .filter(|f| f.is_none())
        .count();
    let manifest = FeaturesManifest {
        customers: table.len(),
        prospects,
        columns: table.columns().iter().map(|c| c.name).collect(),
        switching_cost_inputs,
    };
    Ok(Features { table, manifest })
}
