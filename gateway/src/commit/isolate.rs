//! Committing a batch robustly: transient conflicts (concurrent writers) are retried; when a
//! batch fails because of one record, the batch is split until that record is found, and it
//! is quarantined with the store's error instead of failing everyone else's records.

use crate::store::{CommitBatch, RecordResult, Store, StoreError, Verdict};
use normalizer::Violation;
use std::time::Duration;

/// Attempts for a batch that fails with a retryable error.
const RETRIES: u32 = 8;

async fn commit_retrying(store: &dyn Store, batch: &CommitBatch) -> Result<Vec<RecordResult>, StoreError> {
    let mut attempt = 0;
    loop {
        match store.commit_batch(batch).await {
            Err(e) if e.is_retryable() && attempt < RETRIES => {
                attempt += 1;
                let backoff = 10u64 << attempt.min(6);
                tracing::debug!(attempt, error = %e, "transient store conflict, retrying batch");
                tokio::time::sleep(Duration::from_millis(backoff)).await;
            }
            other => return other,
        }
    }
}

/// Commit `batch`; on a non-transient failure isolate the failing record(s) by bisection.
/// Errors only when the store itself is unusable (then nothing more was committed than what
/// the returned error's caller saw, and the records stay at their source).
pub async fn commit_isolating(store: &dyn Store, batch: CommitBatch) -> Result<Vec<RecordResult>, StoreError> {
    match commit_retrying(store, &batch).await {
        Ok(results) => Ok(results),
        Err(e) if is_store_down(&e) => Err(e),
        Err(e) if batch.records.len() <= 1 => {
            let Some(record) = batch.records.first() else {
                return Err(e);
            };
            if matches!(record.verdict, Verdict::Quarantine(ref v) if v.iter().any(|v| v.rule == "store.write_failed"))
            {
                return Err(e);
            }
            tracing::warn!(source = %record.source_id, record_key = %record.record_key, error = %e,
                "record could not be written; quarantining it");
            let mut single = batch.clone();
            single.records[0].verdict = Verdict::Quarantine(vec![Violation::error(
                "",
                "store.write_failed",
                None,
                format!("数据库拒绝写入该记录：{e}"),
                format!("the database refused this record: {e}"),
            )]);
            Box::pin(commit_isolating(store, single)).await
        }
        Err(e) => {
            tracing::warn!(records = batch.records.len(), error = %e, "batch failed; splitting it to isolate the bad record");
            let mid = batch.records.len() / 2;
            let mut left = batch.clone();
            let right_records = left.records.split_off(mid);
            let right = CommitBatch {
                records: right_records,
                cursors: batch.cursors.clone(),
                sinks: batch.sinks.clone(),
                fence: batch.fence.clone(),
            };
            left.cursors.clear();
            let mut results = Box::pin(commit_isolating(store, left)).await?;
            results.extend(Box::pin(commit_isolating(store, right)).await?);
            Ok(results)
        }
    }
}

/// Errors that no splitting can cure: the store is unreachable or broken, or the job lost its lease.
pub fn is_store_down(e: &StoreError) -> bool {
    match e {
        StoreError::Pool(_) | StoreError::Task(_) | StoreError::Fenced { .. } => true,
        StoreError::Postgres(pg) => pg.is_closed() || pg.code().is_none(),
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => matches!(
            f.code,
            rusqlite::ErrorCode::CannotOpen
                | rusqlite::ErrorCode::DiskFull
                | rusqlite::ErrorCode::ReadOnly
                | rusqlite::ErrorCode::SystemIoFailure
                | rusqlite::ErrorCode::DatabaseCorrupt
                | rusqlite::ErrorCode::DatabaseBusy
                | rusqlite::ErrorCode::DatabaseLocked
        ),
        _ => false,
    }
}
