//! Evidence attachments on SQLite (see [`super::attachments`]).

use super::attachments::{
    AttachmentCounts, AttachmentRow, AttachmentStore, FetchFailure, NewAttachment, ObjectRow, ROW_COLUMNS,
};
use super::error::StoreResult;
use super::sqlite::{now, parse_time, time, SqliteStore};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

type RawRow = (AttachmentRow, String, String, Option<String>);

fn raw_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((
        AttachmentRow {
            id: r.get(0)?,
            code: r.get(1)?,
            version: r.get(2)?,
            position: r.get(3)?,
            source_id: r.get(4)?,
            kind: r.get(5)?,
            title: r.get(6)?,
            file_name: r.get(7)?,
            media_type: r.get(8)?,
            captured_at: r.get(9)?,
            duration_seconds: r.get(10)?,
            origin: r.get(11)?,
            origin_ref: r.get(12)?,
            optional: r.get::<_, i64>(13)? != 0,
            status: r.get(14)?,
            attempts: r.get(15)?,
            last_error: r.get(16)?,
            next_try_at: DateTime::<Utc>::MIN_UTC,
            sha256: r.get(18)?,
            bytes: r.get(19)?,
            created_at: DateTime::<Utc>::MIN_UTC,
            stored_at: None,
        },
        r.get(17)?,
        r.get(20)?,
        r.get(21)?,
    ))
}

fn rows(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> StoreResult<Vec<AttachmentRow>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let raw = stmt.query_map(params, raw_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
    raw.into_iter()
        .map(|(mut row, next, created, stored)| {
            row.next_try_at = parse_time(&next)?;
            row.created_at = parse_time(&created)?;
            row.stored_at = stored.as_deref().map(parse_time).transpose()?;
            Ok(row)
        })
        .collect()
}

#[async_trait]
impl AttachmentStore for SqliteStore {
    async fn enqueue_attachments(&self, new: &[NewAttachment]) -> StoreResult<u64> {
        let new = new.to_vec();
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let at = now();
            let mut added = 0u64;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO case_attachments (unified_code, version, position, source_id, kind, title, \
                     file_name, media_type, captured_at, duration_seconds, origin, origin_ref, optional, status, \
                     attempts, next_try_at, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 'pending', 0, ?14, ?14) \
                     ON CONFLICT (unified_code, version, position) DO NOTHING",
                )?;
                for a in &new {
                    added += stmt.execute(params![
                        a.code,
                        a.version,
                        a.position,
                        a.source_id,
                        a.kind,
                        a.title,
                        a.file_name,
                        a.media_type,
                        a.captured_at,
                        a.duration_seconds,
                        a.origin,
                        a.origin_ref,
                        a.optional as i64,
                        at,
                    ])? as u64;
                }
            }
            tx.commit()?;
            Ok(added)
        })
        .await
    }

    async fn claim_attachments(
        &self,
        limit: usize,
        now_at: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Vec<AttachmentRow>> {
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let due = rows(
                &tx,
                &format!(
                    "SELECT {ROW_COLUMNS} FROM case_attachments WHERE status = 'pending' AND next_try_at <= ?1 \
                     ORDER BY next_try_at, id LIMIT ?2"
                ),
                params![time(now_at), limit as i64],
            )?;
            let lease = time(lease_until);
            {
                let mut stmt =
                    tx.prepare_cached("UPDATE case_attachments SET next_try_at = ?1, lease_until = ?1 WHERE id = ?2")?;
                for r in &due {
                    stmt.execute(params![lease, r.id])?;
                }
            }
            tx.commit()?;
            Ok(due
                .into_iter()
                .map(|mut r| {
                    r.next_try_at = lease_until;
                    r
                })
                .collect())
        })
        .await
    }

    async fn attachment_stored(&self, id: i64, object: &ObjectRow, lease_until: DateTime<Utc>) -> StoreResult<bool> {
        let object = object.clone();
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let at = now();
            let updated = tx.execute(
                "UPDATE case_attachments SET status = 'stored', sha256 = ?1, bytes = ?2, media_type = ?3, \
                 last_error = NULL, stored_at = ?4, attempts = attempts + 1, lease_until = NULL \
                 WHERE id = ?5 AND status = 'pending' AND next_try_at = ?6",
                params![
                    object.sha256,
                    object.bytes,
                    object.media_type,
                    at,
                    id,
                    time(lease_until)
                ],
            )?;
            if updated > 0 {
                tx.execute(
                    "INSERT INTO attachment_objects (sha256, bytes, media_type, storage_key, first_seen) \
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (sha256) DO NOTHING",
                    params![
                        object.sha256,
                        object.bytes,
                        object.media_type,
                        object.storage_key,
                        time(object.first_seen)
                    ],
                )?;
            }
            tx.commit()?;
            Ok(updated > 0)
        })
        .await
    }

    async fn attachment_not_stored(&self, failure: &FetchFailure, lease_until: DateTime<Utc>) -> StoreResult<bool> {
        let f = failure.clone();
        self.with_conn(move |conn| {
            let updated = conn.execute(
                "UPDATE case_attachments SET status = ?1, attempts = ?2, last_error = ?3, next_try_at = ?4, \
                 lease_until = NULL WHERE id = ?5 AND status = 'pending' AND next_try_at = ?6",
                params![
                    f.status,
                    f.attempts,
                    f.error,
                    time(f.next_try_at),
                    f.id,
                    time(lease_until)
                ],
            )?;
            Ok(updated > 0)
        })
        .await
    }

    async fn attachments_of_case(&self, code: &str) -> StoreResult<Vec<AttachmentRow>> {
        let code = code.to_string();
        self.with_conn(move |conn| {
            rows(
                conn,
                &format!(
                    "SELECT {ROW_COLUMNS} FROM case_attachments WHERE unified_code = ?1 ORDER BY version, position"
                ),
                params![code],
            )
        })
        .await
    }

    async fn attachment_object(&self, sha256: &str) -> StoreResult<Option<ObjectRow>> {
        let sha256 = sha256.to_string();
        self.with_conn(move |conn| {
            let raw = conn
                .query_row(
                    "SELECT sha256, bytes, media_type, storage_key, first_seen FROM attachment_objects WHERE sha256 = ?1",
                    params![sha256],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, String>(4)?,
                        ))
                    },
                )
                .optional()?;
            raw.map(|(sha256, bytes, media_type, storage_key, first)| {
                Ok(ObjectRow {
                    sha256,
                    bytes,
                    media_type,
                    storage_key,
                    first_seen: parse_time(&first)?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn attachment_sources(&self, sha256: &str) -> StoreResult<Vec<String>> {
        let sha256 = sha256.to_string();
        self.with_conn(move |conn| {
            let mut stmt =
                conn.prepare_cached("SELECT DISTINCT source_id FROM case_attachments WHERE sha256 = ?1 ORDER BY 1")?;
            let out = stmt
                .query_map(params![sha256], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(out)
        })
        .await
    }

    async fn attachment_counts(&self) -> StoreResult<AttachmentCounts> {
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached("SELECT status, count(*) FROM case_attachments GROUP BY status")?;
            let raw = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(super::attachments::counts(raw))
        })
        .await
    }

    async fn retry_attachments(&self, code: &str, now_at: DateTime<Utc>) -> StoreResult<u64> {
        let code = code.to_string();
        self.with_conn(move |conn| {
            let n = conn.execute(
                "UPDATE case_attachments SET status = 'pending', attempts = 0, next_try_at = ?1 \
                 WHERE unified_code = ?2 AND status = 'failed'",
                params![time(now_at), code],
            )?;
            Ok(n as u64)
        })
        .await
    }
}
