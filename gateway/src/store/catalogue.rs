//! The supervision-item catalogue (监管事项目录清单) by year, as pulled from the 互联网+监管
//! system: kept in the store so every gateway instance enforces "清单之外无检查" against the same
//! list, and so it survives restarts. Both backends implement [`CatalogueStore`].

use super::error::StoreResult;
use async_trait::async_trait;
use normalizer::catalogue::CatalogueEntry;
use normalizer::rules::Catalogue;
use serde::Serialize;

/// One catalogue item of one year.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogueItem {
    /// The catalogue year.
    pub year: i32,
    /// 监管事项目录编码: 14 digits.
    pub item_code: String,
    /// Item name.
    pub name: String,
    /// The main item (主项) of a sub-item (子项).
    pub parent_code: Option<String>,
    /// False when the source marks the item withdrawn: it no longer admits inspections.
    pub active: bool,
    /// Who the item applies to: an agency's credit code or a region-code prefix (all when absent).
    pub scope: Option<String>,
    /// 领域, e.g. 食品药品 (for the domains exempt from the random-inspection model).
    pub domain: Option<String>,
}

/// Build the normaliser's catalogue from stored items (active ones only).
pub fn to_catalogue(items: &[CatalogueItem], base: Option<&Catalogue>) -> Catalogue {
    let mut catalogue = base.cloned().unwrap_or_default();
    for item in items.iter().filter(|i| i.active) {
        catalogue.insert_entry(
            item.year,
            CatalogueEntry {
                code: item.item_code.clone(),
                name: item.name.clone(),
                scope: item.scope.clone(),
                domain: item.domain.clone(),
            },
        );
    }
    catalogue
}

/// The catalogue in a store.
#[async_trait]
pub trait CatalogueStore: Send + Sync {
    /// Upsert items (by year and code) and, in the same transaction, the source's cursor;
    /// refused when `fence` is given and no longer holds the job's lease.
    async fn catalogue_commit(
        &self,
        source_id: &str,
        items: &[CatalogueItem],
        cursor: Option<&str>,
        fence: Option<&super::cluster::Fence>,
    ) -> StoreResult<u64>;

    /// Every stored item, by year and code.
    async fn catalogue_items(&self) -> StoreResult<Vec<CatalogueItem>>;
}
