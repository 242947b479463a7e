//! Features: the per-customer feature table over the run's index (order features today;
//! engagement and switching costs join it as further columns) and the `customer_features` table.

use patronage_features::FeatureTable;
use serde::Serialize;

use super::ingest::Ingest;
use super::Tables;
use crate::error::EngineError;
use crate::tables;

/// The `features` manifest section.
#[derive(Debug, Serialize)]
pub(crate) struct FeaturesManifest {
    /// Customers of the index (rows of every per-customer table).
    pub customers: usize,
    /// Customers without an order on or before the as-of day.
    pub prospects: usize,
    /// Feature columns, in output order.
    pub columns: Vec<&'static str>,
}

pub(crate) struct Features {
    pub table: FeatureTable,
    pub manifest: FeaturesManifest,
    pub tables: Tables,
}

pub(crate) fn run(ingest: &Ingest) -> Result<Features, EngineError> {
    let mut table = patronage_features::compute(&ingest.orders, ingest.index.len(), ingest.as_of);
    if let Some(profiles) = &ingest.profiles {
        table.extend(patronage_features::profile_features(
            profiles,
            &ingest.index,
            ingest.as_of,
        ));
    }
    let prospects = table
        .int("frequency")?
        .iter()
        .filter(|f| f.is_none())
        .count();
    let manifest = FeaturesManifest {
        customers: table.len(),
        prospects,
        columns: table.columns().iter().map(|c| c.name).collect(),
    };
    let frame = tables::customer_frame("customer_features", &ingest.index, &table)?;
    Ok(Features {
        table,
        manifest,
        tables: vec![("customer_features", frame)],
    })
}
