//! The supervision-item catalogue (监管事项目录清单) by year, as pulled from the 互联网+监管
//! system: kept in the store so every gateway instance enforces "清单之外无检查" against the same
//! list, and so it survives restarts. Both backends implement [`CatalogueStore`].

use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::StoreResult;
use async_trait::async_trait;
use chrono::Utc;
use normalizer::rules::Catalogue;
use rusqlite::params;
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
}

/// Build the normaliser's catalogue from stored items (active ones only).
pub fn to_catalogue(items: &[CatalogueItem], base: Option<&Catalogue>) -> Catalogue {
    let mut catalogue = base.cloned().unwrap_or_default();
    for item in items.iter().filter(|i| i.active) {
        catalogue.insert(item.year, &item.item_code);
    }
    catalogue
}

/// The catalogue in a store.
#[async_trait]
pub trait CatalogueStore: Send + Sync {
    /// Upsert items (by year and code) and, in the same transaction, the source's cursor.
    async fn catalogue_commit(
        &self,
        source_id: &str,
        items: &[CatalogueItem],
        cursor: Option<&str>,
    ) -> StoreResult<u64>;

    /// Every stored item, by year and code.
    async fn catalogue_items(&self) -> StoreResult<Vec<CatalogueItem>>;
}

#[async_trait]
impl CatalogueStore for SqliteStore {
    async fn catalogue_commit(
        &self,
        source_id: &str,
        items: &[CatalogueItem],
        cursor: Option<&str>,
    ) -> StoreResult<u64> {
        let items = items.to_vec();
        let source = source_id.to_string();
        let cursor = cursor.map(str::to_string);
        self.with_conn(move |conn| {
            let now = super::sqlite::now();
            let tx = conn.transaction()?;
            let mut written = 0u64;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO supervision_catalogue (year, item_code, name, parent_code, active, source_id, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (year, item_code) DO UPDATE SET name = excluded.name,
                        parent_code = excluded.parent_code, active = excluded.active,
                        source_id = excluded.source_id, updated_at = excluded.updated_at",
                )?;
                for i in &items {
                    written += stmt.execute(params![i.year, i.item_code, i.name, i.parent_code, i.active, source, now])?
                        as u64;
                }
                if let Some(c) = &cursor {
                    tx.execute(
                        "INSERT INTO source_cursors (source_id, cursor, updated_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT (source_id) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
                        params![source, c, now],
                    )?;
                }
            }
            tx.commit()?;
            Ok(written)
        })
        .await
    }

    async fn catalogue_items(&self) -> StoreResult<Vec<CatalogueItem>> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT year, item_code, name, parent_code, active FROM supervision_catalogue ORDER BY year, item_code",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(CatalogueItem {
                    year: r.get(0)?,
                    item_code: r.get(1)?,
                    name: r.get(2)?,
                    parent_code: r.get(3)?,
                    active: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

#[async_trait]
impl CatalogueStore for PostgresStore {
    async fn catalogue_commit(
        &self,
        source_id: &str,
        items: &[CatalogueItem],
        cursor: Option<&str>,
    ) -> StoreResult<u64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let years: Vec<i32> = items.iter().map(|i| i.year).collect();
        let codes: Vec<&str> = items.iter().map(|i| i.item_code.as_str()).collect();
        let names: Vec<&str> = items.iter().map(|i| i.name.as_str()).collect();
        let parents: Vec<Option<&str>> = items.iter().map(|i| i.parent_code.as_deref()).collect();
        let active: Vec<bool> = items.iter().map(|i| i.active).collect();
        let now = Utc::now();
        let written = tx
            .execute(
                "INSERT INTO supervision_catalogue (year, item_code, name, parent_code, active, source_id, updated_at)
                 SELECT y, c, n, p, a, $6, $7 FROM unnest($1::int4[], $2::text[], $3::text[], $4::text[], $5::bool[])
                     AS t(y, c, n, p, a)
                 ON CONFLICT (year, item_code) DO UPDATE SET name = excluded.name,
                    parent_code = excluded.parent_code, active = excluded.active,
                    source_id = excluded.source_id, updated_at = excluded.updated_at",
                &[&years, &codes, &names, &parents, &active, &source_id, &now],
            )
            .await?;
        if let Some(c) = cursor {
            tx.execute(
                "INSERT INTO source_cursors (source_id, cursor, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (source_id) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
                &[&source_id, &c, &now],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(written)
    }

    async fn catalogue_items(&self) -> StoreResult<Vec<CatalogueItem>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT year, item_code, name, parent_code, active FROM supervision_catalogue ORDER BY year, item_code",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| CatalogueItem {
                year: r.get(0),
                item_code: r.get(1),
                name: r.get(2),
                parent_code: r.get(3),
                active: r.get(4),
            })
            .collect())
    }
}
