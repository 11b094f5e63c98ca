//! The archive's chains, checkpoints and witnesses on SQLite (see [`super::archive`]).

use super::archive::{ArchiveStore, ChainHead, ChainRow, NewCheckpoint, StoredCheckpoint, WitnessState};
use super::compress;
use super::error::StoreResult;
use super::sqlite::{now, parse_time, time, SqliteStore};
use crate::crypto::chain::HashAlg;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row};

const CHAIN_COLUMNS: &str = "r.source_id, r.chain_seq, r.id, r.chain_alg, r.received_at, r.payload, r.chain_hash";

fn chain_row(r: &Row<'_>) -> StoreResult<ChainRow> {
    let received: String = r.get(4)?;
    Ok(ChainRow {
        source_id: r.get(0)?,
        seq: r.get(1)?,
        raw_id: r.get(2)?,
        alg_code: r.get(3)?,
        received_at: parse_time(&received)?,
        payload: compress::payload_of(r.get(5)?, compress::CODEC_PLAIN).map_err(|e| e.to_string()),
        hash: r.get(6)?,
    })
}

const CHECKPOINT_COLUMNS: &str = "c.id, c.signed_at, c.instance, c.algorithm, c.public_key, c.statement, c.signature";

fn checkpoint(r: &Row<'_>) -> StoreResult<StoredCheckpoint> {
    let signed_at: String = r.get(1)?;
    let signature: Vec<u8> = r.get(6)?;
    Ok(StoredCheckpoint {
        id: r.get(0)?,
        signed_at: parse_time(&signed_at)?,
        instance: r.get(2)?,
        algorithm: r.get(3)?,
        public_key: r.get(4)?,
        statement: r.get(5)?,
        signature: hex::encode(signature),
    })
}

#[async_trait]
impl ArchiveStore for SqliteStore {
    fn chain_settings(&self) -> Option<HashAlg> {
        self.archive.get()
    }

    fn configure_chain(&self, alg: Option<HashAlg>) {
        self.archive.set(alg);
    }

    async fn chain_heads(&self) -> StoreResult<Vec<ChainHead>> {
        self.with_conn(|conn| {
            let mut stmt =
                conn.prepare("SELECT source_id, seq, head_hash FROM archive_chain_heads ORDER BY source_id")?;
            let rows = stmt.query_map([], |r| {
                let hash: Vec<u8> = r.get(2)?;
                Ok(ChainHead {
                    source_id: r.get(0)?,
                    seq: r.get(1)?,
                    hash: hex::encode(hash),
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn chain_rows(&self, source_id: &str, after_seq: i64, limit: i64) -> StoreResult<Vec<ChainRow>> {
        let source_id = source_id.to_string();
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {CHAIN_COLUMNS} FROM raw_records r
                 WHERE r.source_id = ?1 AND r.chain_seq > ?2 ORDER BY r.chain_seq LIMIT ?3"
            ))?;
            let mut rows = stmt.query(params![source_id, after_seq, limit])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(chain_row(r)?);
            }
            Ok(out)
        })
        .await
    }

    async fn chain_seq_from(&self, source_id: &str, from: DateTime<Utc>) -> StoreResult<Option<i64>> {
        let source_id = source_id.to_string();
        self.with_conn(move |conn| {
            Ok(conn.query_row(
                "SELECT min(chain_seq) FROM raw_records WHERE source_id = ?1 AND chain_seq IS NOT NULL AND received_at >= ?2",
                params![source_id, time(from)],
                |r| r.get(0),
            )?)
        })
        .await
    }

    async fn chain_row_of_raw(&self, raw_id: i64) -> StoreResult<Option<Option<ChainRow>>> {
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare(&format!("SELECT {CHAIN_COLUMNS} FROM raw_records r WHERE r.id = ?1"))?;
            let mut rows = stmt.query([raw_id])?;
            match rows.next()? {
                None => Ok(None),
                Some(r) => {
                    let seq: Option<i64> = r.get(1)?;
                    Ok(Some(match seq {
                        Some(_) => Some(chain_row(r)?),
                        None => None,
                    }))
                }
            }
        })
        .await
    }

    async fn unchained_count(&self, source_id: &str) -> StoreResult<i64> {
        let source_id = source_id.to_string();
        self.with_conn(move |conn| {
            Ok(conn.query_row(
                "SELECT count(*) FROM raw_records WHERE source_id = ?1 AND chain_seq IS NULL",
                [source_id],
                |r| r.get(0),
            )?)
        })
        .await
    }

    async fn checkpoint_insert(&self, c: &NewCheckpoint) -> StoreResult<i64> {
        let c = c.clone();
        self.with_conn(move |conn| {
            let tx = conn.transaction()?;
            let id: i64 = tx.query_row(
                "INSERT INTO archive_checkpoints (signed_at, instance, algorithm, public_key, statement, signature)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
                params![
                    time(c.signed_at),
                    c.instance,
                    c.algorithm,
                    c.public_key,
                    c.statement,
                    c.signature
                ],
                |r| r.get(0),
            )?;
            {
                let mut insert = tx.prepare(
                    "INSERT INTO archive_checkpoint_heads (checkpoint_id, source_id, seq) VALUES (?1, ?2, ?3)",
                )?;
                for h in &c.heads {
                    insert.execute(params![id, h.source_id, h.seq])?;
                }
            }
            tx.commit()?;
            Ok(id)
        })
        .await
    }

    async fn checkpoints(&self, after_id: i64, limit: i64) -> StoreResult<Vec<StoredCheckpoint>> {
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {CHECKPOINT_COLUMNS} FROM archive_checkpoints c WHERE c.id > ?1 ORDER BY c.id LIMIT ?2"
            ))?;
            let mut rows = stmt.query(params![after_id, limit])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(checkpoint(r)?);
            }
            Ok(out)
        })
        .await
    }

    async fn checkpoint_latest(&self) -> StoreResult<Option<StoredCheckpoint>> {
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {CHECKPOINT_COLUMNS} FROM archive_checkpoints c ORDER BY c.id DESC LIMIT 1"
            ))?;
            let mut rows = stmt.query([])?;
            rows.next()?.map(checkpoint).transpose()
        })
        .await
    }

    async fn checkpoint_covering(&self, source_id: &str, seq: i64) -> StoreResult<Option<StoredCheckpoint>> {
        let source_id = source_id.to_string();
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {CHECKPOINT_COLUMNS} FROM archive_checkpoints c
                 WHERE c.id = (SELECT min(h.checkpoint_id) FROM archive_checkpoint_heads h
                               WHERE h.source_id = ?1 AND h.seq >= ?2)"
            ))?;
            let mut rows = stmt.query(params![source_id, seq])?;
            rows.next()?.map(checkpoint).transpose()
        })
        .await
    }

    async fn witness_state(&self, name: &str) -> StoreResult<WitnessState> {
        let name = name.to_string();
        self.with_conn(move |conn| {
            let state = conn
                .query_row(
                    "SELECT delivered_through, failures, last_error FROM archive_witnesses WHERE name = ?1",
                    [name],
                    |r| {
                        Ok(WitnessState {
                            delivered_through: r.get(0)?,
                            failures: r.get(1)?,
                            last_error: r.get(2)?,
                        })
                    },
                )
                .optional()?;
            Ok(state.unwrap_or_default())
        })
        .await
    }

    async fn witness_record(&self, name: &str, delivered_through: i64, error: Option<&str>) -> StoreResult<()> {
        let name = name.to_string();
        let error = error.map(str::to_string);
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT INTO archive_witnesses (name, delivered_through, failures, last_error, updated_at)
                 VALUES (?1, ?2, CASE WHEN ?3 IS NULL THEN 0 ELSE 1 END, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE
                    SET delivered_through = max(archive_witnesses.delivered_through, excluded.delivered_through),
                        failures = CASE WHEN ?3 IS NULL THEN 0 ELSE archive_witnesses.failures + 1 END,
                        last_error = COALESCE(?3, archive_witnesses.last_error),
                        updated_at = ?4",
                params![name, delivered_through, error, now()],
            )?;
            Ok(())
        })
        .await
    }
}
