//! The supervision-item catalogue on PostgreSQL.

use super::catalogue::{CatalogueItem, CatalogueStore};
use super::error::StoreResult;
use super::postgres::PostgresStore;
use async_trait::async_trait;
use chrono::Utc;

#[async_trait]
impl CatalogueStore for PostgresStore {
    async fn catalogue_commit(
        &self,
        source_id: &str,
        items: &[CatalogueItem],
        cursor: Option<&str>,
        fence: Option<&super::cluster::Fence>,
    ) -> StoreResult<u64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if let Some(fence) = fence {
            super::postgres_commit::check_fence(&tx, fence).await?;
        }
        let years: Vec<i32> = items.iter().map(|i| i.year).collect();
        let codes: Vec<&str> = items.iter().map(|i| i.item_code.as_str()).collect();
        let names: Vec<&str> = items.iter().map(|i| i.name.as_str()).collect();
        let parents: Vec<Option<&str>> = items.iter().map(|i| i.parent_code.as_deref()).collect();
        let active: Vec<bool> = items.iter().map(|i| i.active).collect();
        let scopes: Vec<Option<&str>> = items.iter().map(|i| i.scope.as_deref()).collect();
        let domains: Vec<Option<&str>> = items.iter().map(|i| i.domain.as_deref()).collect();
        let now = Utc::now();
        let written = tx
            .execute(
                "INSERT INTO supervision_catalogue (year, item_code, name, parent_code, active, source_id, updated_at, scope, domain)
                 SELECT y, c, n, p, a, $6, $7, sc, d
                 FROM unnest($1::int4[], $2::text[], $3::text[], $4::text[], $5::bool[], $8::text[], $9::text[])
                     AS t(y, c, n, p, a, sc, d)
                 ON CONFLICT (year, item_code) DO UPDATE SET name = excluded.name,
                    parent_code = excluded.parent_code, active = excluded.active,
                    scope = excluded.scope, domain = excluded.domain,
                    source_id = excluded.source_id, updated_at = excluded.updated_at",
                &[&years, &codes, &names, &parents, &active, &source_id, &now, &scopes, &domains],
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
                "SELECT year, item_code, name, parent_code, active, scope, domain FROM supervision_catalogue
                 ORDER BY year, item_code",
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
                scope: r.get(5),
                domain: r.get(6),
            })
            .collect())
    }
}
