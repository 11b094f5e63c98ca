//! The supervision-item catalogue on SQLite.

use super::catalogue::{CatalogueItem, CatalogueStore};
use super::error::StoreResult;
use super::sqlite::SqliteStore;
use async_trait::async_trait;
use rusqlite::params;

#[async_trait]
impl CatalogueStore for SqliteStore {
    async fn catalogue_commit(
        &self,
        source_id: &str,
        items: &[CatalogueItem],
        cursor: Option<&str>,
        fence: Option<&super::cluster::Fence>,
    ) -> StoreResult<u64> {
        let items = items.to_vec();
        let source = source_id.to_string();
        let cursor = cursor.map(str::to_string);
        let fence = fence.cloned();
        self.with_conn(move |conn| {
            let now = super::sqlite::now();
            let tx = conn.transaction()?;
            if let Some(fence) = &fence {
                super::sqlite::check_fence(&tx, fence)?;
            }
            let mut written = 0u64;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO supervision_catalogue (year, item_code, name, parent_code, active, source_id, updated_at, scope, domain)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (year, item_code) DO UPDATE SET name = excluded.name,
                        parent_code = excluded.parent_code, active = excluded.active,
                        scope = excluded.scope, domain = excluded.domain,
                        source_id = excluded.source_id, updated_at = excluded.updated_at",
                )?;
                for i in &items {
                    written += stmt.execute(params![
                        i.year,
                        i.item_code,
                        i.name,
                        i.parent_code,
                        i.active,
                        source,
                        now,
                        i.scope,
                        i.domain
                    ])?
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
                "SELECT year, item_code, name, parent_code, active, scope, domain FROM supervision_catalogue
                 ORDER BY year, item_code",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(CatalogueItem {
                    year: r.get(0)?,
                    item_code: r.get(1)?,
                    name: r.get(2)?,
                    parent_code: r.get(3)?,
                    active: r.get(4)?,
                    scope: r.get(5)?,
                    domain: r.get(6)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}
