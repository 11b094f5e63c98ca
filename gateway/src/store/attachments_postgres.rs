//! Evidence attachments on PostgreSQL (see [`super::attachments`]).

use super::attachments::{
    AttachmentCounts, AttachmentRow, AttachmentStore, FetchFailure, NewAttachment, ObjectRow, ROW_COLUMNS,
};
use super::error::StoreResult;
use super::postgres::PostgresStore;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::Row;

fn from_row(r: &Row) -> StoreResult<AttachmentRow> {
    Ok(AttachmentRow {
        id: r.try_get(0)?,
        code: r.try_get(1)?,
        version: r.try_get(2)?,
        position: r.try_get(3)?,
        source_id: r.try_get(4)?,
        kind: r.try_get(5)?,
        title: r.try_get(6)?,
        file_name: r.try_get(7)?,
        media_type: r.try_get(8)?,
        captured_at: r.try_get(9)?,
        duration_seconds: r.try_get(10)?,
        origin: r.try_get(11)?,
        origin_ref: r.try_get(12)?,
        optional: r.try_get(13)?,
        status: r.try_get(14)?,
        attempts: r.try_get(15)?,
        last_error: r.try_get(16)?,
        next_try_at: r.try_get(17)?,
        sha256: r.try_get(18)?,
        bytes: r.try_get(19)?,
        created_at: r.try_get(20)?,
        stored_at: r.try_get(21)?,
    })
}

#[async_trait]
impl AttachmentStore for PostgresStore {
    async fn enqueue_attachments(&self, new: &[NewAttachment]) -> StoreResult<u64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let stmt = tx
            .prepare_cached(
                "INSERT INTO case_attachments (unified_code, version, position, source_id, kind, title, \
                 file_name, media_type, captured_at, duration_seconds, origin, origin_ref, optional, status, \
                 attempts, next_try_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'pending', 0, $14, $14) \
                 ON CONFLICT (unified_code, version, position) DO NOTHING",
            )
            .await?;
        let at = Utc::now();
        let mut added = 0;
        for a in new {
            added += tx
                .execute(
                    &stmt,
                    &[
                        &a.code,
                        &a.version,
                        &a.position,
                        &a.source_id,
                        &a.kind,
                        &a.title,
                        &a.file_name,
                        &a.media_type,
                        &a.captured_at,
                        &a.duration_seconds,
                        &a.origin,
                        &a.origin_ref,
                        &a.optional,
                        &at,
                    ],
                )
                .await?;
        }
        tx.commit().await?;
        Ok(added)
    }

    async fn claim_attachments(
        &self,
        limit: usize,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Vec<AttachmentRow>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "UPDATE case_attachments SET next_try_at = $2, lease_until = $2 WHERE id IN (\
                     SELECT id FROM case_attachments WHERE status = 'pending' AND next_try_at <= $1 \
                     ORDER BY next_try_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING {ROW_COLUMNS}"
                ),
                &[&now, &lease_until, &(limit as i64)],
            )
            .await?;
        let mut out = rows.iter().map(from_row).collect::<StoreResult<Vec<_>>>()?;
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    async fn attachment_stored(&self, id: i64, object: &ObjectRow, lease_until: DateTime<Utc>) -> StoreResult<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let updated = tx
            .execute(
                "UPDATE case_attachments SET status = 'stored', sha256 = $1, bytes = $2, media_type = $3, \
                 last_error = NULL, stored_at = $4, attempts = attempts + 1, lease_until = NULL \
                 WHERE id = $5 AND status = 'pending' AND next_try_at = $6",
                &[
                    &object.sha256,
                    &object.bytes,
                    &object.media_type,
                    &Utc::now(),
                    &id,
                    &lease_until,
                ],
            )
            .await?;
        if updated > 0 {
            tx.execute(
                "INSERT INTO attachment_objects (sha256, bytes, media_type, storage_key, first_seen) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sha256) DO NOTHING",
                &[
                    &object.sha256,
                    &object.bytes,
                    &object.media_type,
                    &object.storage_key,
                    &object.first_seen,
                ],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(updated > 0)
    }

    async fn attachment_not_stored(&self, f: &FetchFailure, lease_until: DateTime<Utc>) -> StoreResult<bool> {
        let client = self.client().await?;
        let updated = client
            .execute(
                "UPDATE case_attachments SET status = $1, attempts = $2, last_error = $3, next_try_at = $4, \
                 lease_until = NULL WHERE id = $5 AND status = 'pending' AND next_try_at = $6",
                &[&f.status, &f.attempts, &f.error, &f.next_try_at, &f.id, &lease_until],
            )
            .await?;
        Ok(updated > 0)
    }

    async fn attachments_of_case(&self, code: &str) -> StoreResult<Vec<AttachmentRow>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {ROW_COLUMNS} FROM case_attachments WHERE unified_code = $1 ORDER BY version, position"
                ),
                &[&code],
            )
            .await?;
        rows.iter().map(from_row).collect()
    }

    async fn attachment_object(&self, sha256: &str) -> StoreResult<Option<ObjectRow>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT sha256, bytes, media_type, storage_key, first_seen FROM attachment_objects WHERE sha256 = $1",
                &[&sha256],
            )
            .await?;
        row.map(|r| {
            Ok(ObjectRow {
                sha256: r.try_get(0)?,
                bytes: r.try_get(1)?,
                media_type: r.try_get(2)?,
                storage_key: r.try_get(3)?,
                first_seen: r.try_get(4)?,
            })
        })
        .transpose()
    }

    async fn attachment_sources(&self, sha256: &str) -> StoreResult<Vec<String>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT DISTINCT source_id FROM case_attachments WHERE sha256 = $1 ORDER BY 1",
                &[&sha256],
            )
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    async fn attachment_counts(&self) -> StoreResult<AttachmentCounts> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT status, count(*) FROM case_attachments GROUP BY status", &[])
            .await?;
        let raw = rows
            .iter()
            .map(|r| Ok((r.try_get::<_, String>(0)?, r.try_get::<_, i64>(1)?)))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(super::attachments::counts(raw))
    }

    async fn retry_attachments(&self, code: &str, now: DateTime<Utc>) -> StoreResult<u64> {
        let client = self.client().await?;
        Ok(client
            .execute(
                "UPDATE case_attachments SET status = 'pending', attempts = 0, next_try_at = $1 \
                 WHERE unified_code = $2 AND status = 'failed'",
                &[&now, &code],
            )
            .await?)
    }
}
