//! Cases awaiting supplement and supplied values on PostgreSQL.

use super::console::{self, Dialect};
use super::error::{StoreError, StoreResult};
use super::postgres::PostgresStore;
use super::supplement::{
    fields_of, AwaitingCase, AwaitingCount, AwaitingFilter, NewSupplied, SupplementStore, SuppliedRow,
};
use super::types::{CommitBatch, RecordResult};
use async_trait::async_trait;
use chrono::Utc;
use tokio_postgres::Row;

const SUPPLIED_COLUMNS: &str = "id, case_id, unified_code, business_key, pointer, value, version, actor, created_at";

fn awaiting_from_row(r: &Row) -> StoreResult<AwaitingCase> {
    let fields: String = r.try_get(6)?;
    Ok(AwaitingCase {
        case_id: r.try_get(0)?,
        code: r.try_get(1)?,
        agency_credit_code: r.try_get(2)?,
        case_type: r.try_get(3)?,
        case_number: r.try_get(4)?,
        source_id: r.try_get(5)?,
        fields: fields_of(&fields),
        since: r.try_get(7)?,
        updated_at: r.try_get(8)?,
    })
}

fn supplied_from_row(r: &Row) -> StoreResult<SuppliedRow> {
    let value: String = r.try_get(5)?;
    Ok(SuppliedRow {
        id: r.try_get(0)?,
        case_id: r.try_get(1)?,
        code: r.try_get(2)?,
        business_key: r.try_get(3)?,
        pointer: r.try_get(4)?,
        value: serde_json::from_str(&value)
            .map_err(|e| StoreError::Corrupt(format!("supplied value {value:?}: {e}")))?,
        version: r.try_get(6)?,
        actor: r.try_get(7)?,
        created_at: r.try_get(8)?,
    })
}

#[async_trait]
impl SupplementStore for PostgresStore {
    async fn awaiting(&self, filter: &AwaitingFilter) -> StoreResult<(Vec<AwaitingCase>, i64)> {
        let (rows, total) = self
            .page_and_count(
                console::awaiting_page(filter, Dialect::Postgres),
                console::awaiting_count(filter, Dialect::Postgres),
            )
            .await?;
        let items = rows.iter().map(awaiting_from_row).collect::<StoreResult<_>>()?;
        Ok((items, total))
    }

    async fn awaiting_counts(&self, source_ids: Option<&[String]>) -> StoreResult<Vec<AwaitingCount>> {
        let rows = self
            .statement_rows(console::awaiting_counts(source_ids, Dialect::Postgres))
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AwaitingCount {
                    agency_credit_code: r.try_get(0)?,
                    source_id: r.try_get(1)?,
                    cases: r.try_get(2)?,
                    oldest: r.try_get(3)?,
                })
            })
            .collect()
    }

    async fn commit_completion(
        &self,
        batch: &CommitBatch,
        business_key: &str,
        supplied: &[NewSupplied],
        actor: &str,
    ) -> StoreResult<RecordResult> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut results = super::postgres_commit::commit_in(&tx, batch, &self.joint.get(), self.archive.get()).await?;
        let result = results
            .pop()
            .ok_or_else(|| StoreError::Task("a completion batch gave no result".into()))?;
        if let RecordResult::Updated { code, version } = &result {
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO case_supplements (case_id, unified_code, business_key, pointer, value, version, actor,
                                                   created_at)
                     SELECT c.id, c.unified_code, $2, $3, $4, $5, $6, $7 FROM cases c WHERE c.unified_code = $1",
                )
                .await?;
            let now = Utc::now();
            for s in supplied {
                let value = serde_json::to_string(&s.value).map_err(|e| StoreError::Task(e.to_string()))?;
                tx.execute(&stmt, &[code, &business_key, &s.pointer, &value, version, &actor, &now])
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(result)
    }

    async fn supplied_after(&self, after_id: i64) -> StoreResult<Vec<SuppliedRow>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {SUPPLIED_COLUMNS} FROM case_supplements WHERE id > $1 ORDER BY id"),
                &[&after_id],
            )
            .await?;
        rows.iter().map(supplied_from_row).collect()
    }

    async fn supplied_for_case(&self, code: &str) -> StoreResult<Vec<SuppliedRow>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {SUPPLIED_COLUMNS} FROM case_supplements WHERE unified_code = $1 ORDER BY id"),
                &[&code],
            )
            .await?;
        rows.iter().map(supplied_from_row).collect()
    }
}
