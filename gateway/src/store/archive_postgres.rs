//! The archive's chains, checkpoints and witnesses on PostgreSQL (see [`super::archive`]).

use super::archive::{ArchiveStore, ChainHead, ChainRow, NewCheckpoint, StoredCheckpoint, WitnessState};
use super::compress;
use super::error::StoreResult;
use super::postgres::PostgresStore;
use crate::crypto::chain::HashAlg;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::Row;

const CHAIN_COLUMNS: &str =
    "r.source_id, r.chain_seq, r.id, r.chain_alg, r.received_at, r.payload, r.payload_codec, r.chain_hash";

fn chain_row(r: &Row) -> StoreResult<ChainRow> {
    let stored: Vec<u8> = r.try_get(5)?;
    let codec: i16 = r.try_get(6)?;
    Ok(ChainRow {
        source_id: r.try_get(0)?,
        seq: r.try_get(1)?,
        raw_id: r.try_get(2)?,
        alg_code: r.try_get(3)?,
        received_at: r.try_get(4)?,
        payload: compress::payload_of(stored, codec).map_err(|e| e.to_string()),
        hash: r.try_get(7)?,
    })
}

const CHECKPOINT_COLUMNS: &str = "c.id, c.signed_at, c.instance, c.algorithm, c.public_key, c.statement, c.signature";

fn checkpoint(r: &Row) -> StoreResult<StoredCheckpoint> {
    let signature: Vec<u8> = r.try_get(6)?;
    Ok(StoredCheckpoint {
        id: r.try_get(0)?,
        signed_at: r.try_get(1)?,
        instance: r.try_get(2)?,
        algorithm: r.try_get(3)?,
        public_key: r.try_get(4)?,
        statement: r.try_get(5)?,
        signature: hex::encode(signature),
    })
}

#[async_trait]
impl ArchiveStore for PostgresStore {
    fn chain_settings(&self) -> Option<HashAlg> {
        self.archive.get()
    }

    fn configure_chain(&self, alg: Option<HashAlg>) {
        self.archive.set(alg);
    }

    async fn chain_heads(&self) -> StoreResult<Vec<ChainHead>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT source_id, seq, head_hash FROM archive_chain_heads ORDER BY source_id COLLATE \"C\"",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let hash: Vec<u8> = r.try_get(2)?;
                Ok(ChainHead {
                    source_id: r.try_get(0)?,
                    seq: r.try_get(1)?,
                    hash: hex::encode(hash),
                })
            })
            .collect()
    }

    async fn chain_rows(&self, source_id: &str, after_seq: i64, limit: i64) -> StoreResult<Vec<ChainRow>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {CHAIN_COLUMNS} FROM raw_records r
                 WHERE r.source_id = $1 AND r.chain_seq > $2 ORDER BY r.chain_seq LIMIT $3"
            ))
            .await?;
        let rows = client.query(&stmt, &[&source_id, &after_seq, &limit]).await?;
        rows.iter().map(chain_row).collect()
    }

    async fn chain_seq_from(&self, source_id: &str, from: DateTime<Utc>) -> StoreResult<Option<i64>> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT min(chain_seq) FROM raw_records WHERE source_id = $1 AND chain_seq IS NOT NULL AND received_at >= $2",
                &[&source_id, &from],
            )
            .await?;
        Ok(row.try_get(0)?)
    }

    async fn chain_row_of_raw(&self, raw_id: i64) -> StoreResult<Option<Option<ChainRow>>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {CHAIN_COLUMNS} FROM raw_records r WHERE r.id = $1"),
                &[&raw_id],
            )
            .await?;
        match row {
            None => Ok(None),
            Some(r) => {
                let seq: Option<i64> = r.try_get(1)?;
                Ok(Some(match seq {
                    Some(_) => Some(chain_row(&r)?),
                    None => None,
                }))
            }
        }
    }

    async fn unchained_count(&self, source_id: &str) -> StoreResult<i64> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT count(*) FROM raw_records WHERE source_id = $1 AND chain_seq IS NULL",
                &[&source_id],
            )
            .await?;
        Ok(row.try_get(0)?)
    }

    async fn checkpoint_insert(&self, c: &NewCheckpoint) -> StoreResult<i64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_one(
                "INSERT INTO archive_checkpoints (signed_at, instance, algorithm, public_key, statement, signature)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[
                    &c.signed_at,
                    &c.instance,
                    &c.algorithm,
                    &c.public_key,
                    &c.statement,
                    &c.signature,
                ],
            )
            .await?;
        let id: i64 = row.try_get(0)?;
        let sources: Vec<&str> = c.heads.iter().map(|h| h.source_id.as_str()).collect();
        let seqs: Vec<i64> = c.heads.iter().map(|h| h.seq).collect();
        tx.execute(
            "INSERT INTO archive_checkpoint_heads (checkpoint_id, source_id, seq)
             SELECT $1, u.source_id, u.seq FROM UNNEST($2::text[], $3::int8[]) AS u(source_id, seq)",
            &[&id, &sources, &seqs],
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn checkpoints(&self, after_id: i64, limit: i64) -> StoreResult<Vec<StoredCheckpoint>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {CHECKPOINT_COLUMNS} FROM archive_checkpoints c WHERE c.id > $1 ORDER BY c.id LIMIT $2"
                ),
                &[&after_id, &limit],
            )
            .await?;
        rows.iter().map(checkpoint).collect()
    }

    async fn checkpoint_latest(&self) -> StoreResult<Option<StoredCheckpoint>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {CHECKPOINT_COLUMNS} FROM archive_checkpoints c ORDER BY c.id DESC LIMIT 1"),
                &[],
            )
            .await?;
        row.as_ref().map(checkpoint).transpose()
    }

    async fn checkpoint_covering(&self, source_id: &str, seq: i64) -> StoreResult<Option<StoredCheckpoint>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT {CHECKPOINT_COLUMNS} FROM archive_checkpoints c
                     WHERE c.id = (SELECT min(h.checkpoint_id) FROM archive_checkpoint_heads h
                                   WHERE h.source_id = $1 AND h.seq >= $2)"
                ),
                &[&source_id, &seq],
            )
            .await?;
        row.as_ref().map(checkpoint).transpose()
    }

    async fn witness_state(&self, name: &str) -> StoreResult<WitnessState> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT delivered_through, failures, last_error FROM archive_witnesses WHERE name = $1",
                &[&name],
            )
            .await?;
        Ok(match row {
            Some(r) => WitnessState {
                delivered_through: r.try_get(0)?,
                failures: r.try_get(1)?,
                last_error: r.try_get(2)?,
            },
            None => WitnessState::default(),
        })
    }

    async fn witness_record(&self, name: &str, delivered_through: i64, error: Option<&str>) -> StoreResult<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO archive_witnesses (name, delivered_through, failures, last_error, updated_at)
                 VALUES ($1, $2, CASE WHEN $3::text IS NULL THEN 0 ELSE 1 END, $3, now())
                 ON CONFLICT (name) DO UPDATE
                    SET delivered_through = GREATEST(archive_witnesses.delivered_through, EXCLUDED.delivered_through),
                        failures = CASE WHEN $3::text IS NULL THEN 0 ELSE archive_witnesses.failures + 1 END,
                        last_error = COALESCE($3, archive_witnesses.last_error),
                        updated_at = now()",
                &[&name, &delivered_through, &error],
            )
            .await?;
        Ok(())
    }
}
