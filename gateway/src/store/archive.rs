//! The evidence side of the raw archive: each source's hash chain (its head, its links), the
//! signed checkpoints and what each witness was sent. The links themselves are written by the
//! commit (`raw_records.chain_seq`, `chain_alg`, `chain_hash`, under the lock of the source's
//! row in `archive_chain_heads`); see `crate::archive` and `docs/archive.md`. Both backends
//! implement [`ArchiveStore`].

use super::error::StoreResult;
use crate::crypto::chain::HashAlg;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::atomic::{AtomicU8, Ordering};

/// How commits keep the chain (`[archive]`), changeable once the store is open.
#[derive(Debug, Default)]
pub struct ChainSettingsCell {
    /// 0: no chain; otherwise the [`HashAlg::code`].
    code: AtomicU8,
}

impl ChainSettingsCell {
    /// The algorithm new links are hashed with, or `None` when commits keep no chain.
    pub fn get(&self) -> Option<HashAlg> {
        HashAlg::of_code(i16::from(self.code.load(Ordering::Relaxed)))
    }

    /// Set the algorithm (`None`: commits keep no chain).
    pub fn set(&self, alg: Option<HashAlg>) {
        let code = alg.map(|a| a.code() as u8).unwrap_or(0);
        self.code.store(code, Ordering::Relaxed);
    }
}

/// A source's chain head: its last link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainHead {
    /// The source.
    pub source_id: String,
    /// The last link's position (0: no link yet).
    pub seq: i64,
    /// The last link's hash (hex).
    pub hash: String,
}

/// One link as stored, with its payload as it came (decompressed).
#[derive(Debug, Clone)]
pub struct ChainRow {
    /// The source.
    pub source_id: String,
    /// The position in the source's chain.
    pub seq: i64,
    /// The raw row.
    pub raw_id: i64,
    /// `raw_records.chain_alg`.
    pub alg_code: i16,
    /// When received.
    pub received_at: DateTime<Utc>,
    /// The stored payload (decompressed), or why it cannot be read.
    pub payload: Result<Vec<u8>, String>,
    /// The stored link hash.
    pub hash: Vec<u8>,
}

/// A checkpoint to store: the signed statement and what verifies it.
#[derive(Debug, Clone)]
pub struct NewCheckpoint {
    /// When it was signed.
    pub signed_at: DateTime<Utc>,
    /// The signing instance.
    pub instance: String,
    /// `sm2` or `ed25519`.
    pub algorithm: String,
    /// The signer's public key (SubjectPublicKeyInfo PEM).
    pub public_key: String,
    /// The signed statement text.
    pub statement: String,
    /// The signature (SM2: DER; Ed25519: 64 bytes).
    pub signature: Vec<u8>,
    /// The heads it states (also in the statement), for finding the checkpoint covering a link.
    pub heads: Vec<ChainHead>,
}

/// A stored checkpoint (also as a witness holds it: the JSON a witness receives).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// Its id.
    pub id: i64,
    /// When it was signed.
    pub signed_at: DateTime<Utc>,
    /// The signing instance.
    pub instance: String,
    /// `sm2` or `ed25519`.
    pub algorithm: String,
    /// The signer's public key (SubjectPublicKeyInfo PEM).
    pub public_key: String,
    /// The signed statement text.
    pub statement: String,
    /// The signature (hex; SM2: DER, Ed25519: 64 bytes).
    pub signature: String,
}

/// What a witness has been sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WitnessState {
    /// The last checkpoint it acknowledged (0: none).
    pub delivered_through: i64,
    /// Failed attempts since the last success.
    pub failures: i32,
    /// The last failure's message.
    pub last_error: Option<String>,
}

/// The evidence side of the raw archive (see the module docs).
#[async_trait]
pub trait ArchiveStore: Send + Sync {
    /// The algorithm commits hash new links with (`None`: no chain is kept).
    fn chain_settings(&self) -> Option<HashAlg>;
    /// Set it (from `[archive]`).
    fn configure_chain(&self, alg: Option<HashAlg>);

    /// Every source's chain head, by source id.
    async fn chain_heads(&self) -> StoreResult<Vec<ChainHead>>;
    /// Links of `source_id` after position `after_seq`, in order, at most `limit`.
    async fn chain_rows(&self, source_id: &str, after_seq: i64, limit: i64) -> StoreResult<Vec<ChainRow>>;
    /// The first position of `source_id` received at or after `from`.
    async fn chain_seq_from(&self, source_id: &str, from: DateTime<Utc>) -> StoreResult<Option<i64>>;
    /// The link of raw row `raw_id` (`None`: no such row; `Some` with no link: archived before the chain).
    async fn chain_row_of_raw(&self, raw_id: i64) -> StoreResult<Option<Option<ChainRow>>>;
    /// Raw rows of `source_id` archived without a link (before the chain began).
    async fn unchained_count(&self, source_id: &str) -> StoreResult<i64>;

    /// Store a checkpoint; answers its id.
    async fn checkpoint_insert(&self, checkpoint: &NewCheckpoint) -> StoreResult<i64>;
    /// Checkpoints after id `after_id`, oldest first, at most `limit`.
    async fn checkpoints(&self, after_id: i64, limit: i64) -> StoreResult<Vec<StoredCheckpoint>>;
    /// The latest checkpoint.
    async fn checkpoint_latest(&self) -> StoreResult<Option<StoredCheckpoint>>;
    /// The first checkpoint whose head of `source_id` is at or past `seq`.
    async fn checkpoint_covering(&self, source_id: &str, seq: i64) -> StoreResult<Option<StoredCheckpoint>>;

    /// What witness `name` has been sent.
    async fn witness_state(&self, name: &str) -> StoreResult<WitnessState>;
    /// Record an attempt to send to witness `name`: delivered through `delivered_through`, and
    /// the error if it failed (which counts one more failure).
    async fn witness_record(&self, name: &str, delivered_through: i64, error: Option<&str>) -> StoreResult<()>;
}

/// The digest (`alg`) of a record's payload as archived: made while preparing when it was made
/// with `alg`, else now (from the compressed block when the plain payload was released).
pub(crate) fn payload_digest(alg: HashAlg, record: &super::IncomingRecord) -> StoreResult<[u8; 32]> {
    match (record.payload_digest, &record.payload_lz4) {
        (Some((made_with, digest)), _) if made_with == alg => Ok(digest),
        (_, Some(block)) => Ok(alg.digest(&super::compress::payload_of(block.clone(), super::compress::CODEC_LZ4)?)),
        _ => Ok(alg.digest(&super::compress::payload_of(
            record.payload.clone(),
            super::compress::CODEC_PLAIN,
        )?)),
    }
}
