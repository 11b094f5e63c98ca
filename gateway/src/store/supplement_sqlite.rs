//! Cases awaiting supplement and supplied values on SQLite.

use super::console::{self, Dialect};
use super::error::{StoreError, StoreResult};
use super::sqlite::{commit_in, now, parse_time, sql_values, SqliteStore};
use super::supplement::{
    fields_of, AwaitingCase, AwaitingCount, AwaitingFilter, NewSupplied, SupplementStore, SuppliedRow,
};
use super::types::{CommitBatch, RecordResult};
use async_trait::async_trait;
use rusqlite::{params, params_from_iter, Connection, TransactionBehavior};

const SUPPLIED_COLUMNS: &str = "id, case_id, unified_code, business_key, pointer, value, version, actor, created_at";

fn awaiting_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(AwaitingCase, String, String)> {
    let fields: String = r.get(6)?;
    Ok((
        AwaitingCase {
            case_id: r.get(0)?,
            code: r.get(1)?,
            agency_credit_code: r.get(2)?,
            case_type: r.get(3)?,
            case_number: r.get(4)?,
            source_id: r.get(5)?,
            fields: fields_of(&fields),
            since: chrono::DateTime::<chrono::Utc>::MIN_UTC,
            updated_at: chrono::DateTime::<chrono::Utc>::MIN_UTC,
        },
        r.get(7)?,
        r.get(8)?,
    ))
}

fn supplied_rows(conn: &Connection, sql: &str, param: &dyn rusqlite::ToSql) -> StoreResult<Vec<SuppliedRow>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let raw = stmt
        .query_map([param], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, i32>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, String>(8)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    raw.into_iter()
        .map(
            |(id, case_id, code, business_key, pointer, value, version, actor, at)| {
                Ok(SuppliedRow {
                    id,
                    case_id,
                    code,
                    business_key,
                    pointer,
                    value: serde_json::from_str(&value)
                        .map_err(|e| StoreError::Corrupt(format!("supplied value {value:?}: {e}")))?,
                    version,
                    actor,
                    created_at: parse_time(&at)?,
                })
            },
        )
        .collect()
}

#[async_trait]
impl SupplementStore for SqliteStore {
    async fn awaiting(&self, filter: &AwaitingFilter) -> StoreResult<(Vec<AwaitingCase>, i64)> {
        let page = console::awaiting_page(filter, Dialect::Sqlite);
        let count = console::awaiting_count(filter, Dialect::Sqlite);
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare(&page.sql)?;
            let raw = stmt
                .query_map(params_from_iter(sql_values(page.params)), awaiting_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut items = Vec::with_capacity(raw.len());
            for (mut case, since, updated) in raw {
                case.since = parse_time(&since)?;
                case.updated_at = parse_time(&updated)?;
                items.push(case);
            }
            let total = conn.query_row(&count.sql, params_from_iter(sql_values(count.params)), |r| r.get(0))?;
            Ok((items, total))
        })
        .await
    }

    async fn awaiting_counts(&self, source_ids: Option<&[String]>) -> StoreResult<Vec<AwaitingCount>> {
        let statement = console::awaiting_counts(source_ids, Dialect::Sqlite);
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare(&statement.sql)?;
            let raw = stmt
                .query_map(params_from_iter(sql_values(statement.params)), |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            raw.into_iter()
                .map(|(agency_credit_code, source_id, cases, oldest)| {
                    Ok(AwaitingCount {
                        agency_credit_code,
                        source_id,
                        cases,
                        oldest: parse_time(&oldest)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn commit_completion(
        &self,
        batch: &CommitBatch,
        business_key: &str,
        supplied: &[NewSupplied],
        actor: &str,
    ) -> StoreResult<RecordResult> {
        let batch = batch.clone();
        let business_key = business_key.to_string();
        let supplied = supplied.to_vec();
        let actor = actor.to_string();
        let joint = self.joint.get();
        let chain = self.archive.get();
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut results = commit_in(&tx, &batch, &joint, chain)?;
            let result = results
                .pop()
                .ok_or_else(|| StoreError::Task("a completion batch gave no result".into()))?;
            if let RecordResult::Updated { code, version } = &result {
                let now = now();
                let mut insert = tx.prepare_cached(
                    "INSERT INTO case_supplements (case_id, unified_code, business_key, pointer, value, version, actor,
                                                   created_at)
                     SELECT c.id, c.unified_code, ?2, ?3, ?4, ?5, ?6, ?7 FROM cases c WHERE c.unified_code = ?1",
                )?;
                for s in &supplied {
                    let value = serde_json::to_string(&s.value).map_err(|e| StoreError::Task(e.to_string()))?;
                    insert.execute(params![code, business_key, s.pointer, value, version, actor, now])?;
                }
            }
            tx.commit()?;
            Ok(result)
        })
        .await
    }

    async fn supplied_after(&self, after_id: i64) -> StoreResult<Vec<SuppliedRow>> {
        self.with_conn(move |conn| {
            supplied_rows(
                conn,
                &format!("SELECT {SUPPLIED_COLUMNS} FROM case_supplements WHERE id > ?1 ORDER BY id"),
                &after_id,
            )
        })
        .await
    }

    async fn supplied_for_case(&self, code: &str) -> StoreResult<Vec<SuppliedRow>> {
        let code = code.to_string();
        self.with_conn(move |conn| {
            supplied_rows(
                conn,
                &format!("SELECT {SUPPLIED_COLUMNS} FROM case_supplements WHERE unified_code = ?1 ORDER BY id"),
                &code,
            )
        })
        .await
    }
}
