//! A receipt for one raw record: its payload, payload hash, link and position, the first signed
//! checkpoint covering it, and the links from it to that checkpoint's head, so that anyone can
//! recompute the chain to the signed head and verify the signature with standard tools (the
//! procedure is in `docs/archive.md`).

use super::verify::check_row;
use crate::crypto::chain::{hash_of_bytes, time_text, HashAlg, GENESIS};
use crate::crypto::keys::SM2_USER_ID;
use crate::store::archive::{ArchiveStore, ChainRow, StoredCheckpoint};
use crate::store::StoreError;
use base64::Engine as _;
use serde::Serialize;

/// First field of every receipt (its format and version).
pub const RECEIPT_FORMAT: &str = "ganzhi-archive-receipt/1";

/// Links read per query while collecting the path to the head.
const PAGE: i64 = 1000;

/// Why no receipt can be given.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    /// No raw record has the id.
    #[error("原始记录 {0} 不存在 / no raw record {0}")]
    NotFound(i64),
    /// The record was archived before the chain began.
    #[error(
        "原始记录 {0} 早于哈希链归档，无回执 / raw record {0} was archived before the hash chain began: no receipt"
    )]
    Unchained(i64),
    /// The chain is broken between the record and the checkpoint.
    #[error("哈希链在第 {seq} 环断开（原始记录 {raw_id}）/ the chain is broken at link {seq} (raw record {raw_id}): run `gateway archive verify`")]
    Broken {
        /// The broken position.
        seq: i64,
        /// Its raw row.
        raw_id: i64,
    },
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One link as a receipt gives it: everything its canonical text holds.
#[derive(Debug, Clone, Serialize)]
pub struct ReceiptLink {
    /// Position.
    pub seq: i64,
    /// Raw row.
    pub raw_id: i64,
    /// `sm3` or `sha256`.
    pub alg: &'static str,
    /// As written in the link text.
    pub received_at: String,
    /// Digest of the payload (hex).
    pub payload_hash: String,
    /// The previous link's hash (hex).
    pub previous_hash: String,
    /// This link's hash (hex).
    pub link_hash: String,
}

/// The checkpoint a receipt cites.
#[derive(Debug, Clone, Serialize)]
pub struct ReceiptCheckpoint {
    /// Its id.
    pub id: i64,
    /// `sm2` or `ed25519`.
    pub algorithm: String,
    /// SM2 user id the signature was made with (GM/T 0009 default).
    pub sm2_user_id: Option<&'static str>,
    /// The signer's public key (PEM).
    pub public_key: String,
    /// The exact text signed.
    pub statement: String,
    /// The signature (hex; SM2: DER, Ed25519: 64 bytes).
    pub signature: String,
    /// The head of the record's source it states.
    pub head_seq: i64,
    /// Its hash (hex).
    pub head_hash: String,
}

/// A receipt for one raw record.
#[derive(Debug, Clone, Serialize)]
pub struct Receipt {
    /// Always [`RECEIPT_FORMAT`].
    pub format: &'static str,
    /// The raw record.
    pub raw_id: i64,
    /// Its source.
    pub source_id: String,
    /// The payload as archived (base64).
    pub payload_base64: String,
    /// The record's own link.
    pub link: ReceiptLink,
    /// The links after it up to the checkpoint's head (empty when no checkpoint covers it yet).
    pub following: Vec<ReceiptLink>,
    /// The first checkpoint covering the record, if any yet.
    pub checkpoint: Option<ReceiptCheckpoint>,
    /// Where the verification procedure is written down.
    pub procedure: &'static str,
}

fn receipt_link(row: &ChainRow, prev: &[u8; 32]) -> ReceiptLink {
    let alg = HashAlg::of_code(row.alg_code).unwrap_or_default();
    let digest = row.payload.as_ref().map(|p| alg.digest(p)).unwrap_or([0; 32]);
    ReceiptLink {
        seq: row.seq,
        raw_id: row.raw_id,
        alg: alg.name(),
        received_at: time_text(&row.received_at),
        payload_hash: hex::encode(digest),
        previous_hash: hex::encode(prev),
        link_hash: hex::encode(&row.hash),
    }
}

/// The previous link's stored hash ([`GENESIS`] before the first).
async fn previous_hash(store: &dyn ArchiveStore, row: &ChainRow) -> Result<[u8; 32], ReceiptError> {
    if row.seq <= 1 {
        return Ok(GENESIS);
    }
    let prev = store
        .chain_rows(&row.source_id, row.seq - 2, 1)
        .await?
        .into_iter()
        .next()
        .filter(|p| p.seq == row.seq - 1)
        .ok_or(ReceiptError::Broken {
            seq: row.seq - 1,
            raw_id: row.raw_id,
        })?;
    Ok(hash_of_bytes(&prev.hash).unwrap_or(GENESIS))
}

/// Build the receipt of raw record `raw_id`; every link on its path is re-checked first.
pub async fn receipt(store: &dyn ArchiveStore, raw_id: i64) -> Result<Receipt, ReceiptError> {
    let row = match store.chain_row_of_raw(raw_id).await? {
        None => return Err(ReceiptError::NotFound(raw_id)),
        Some(None) => return Err(ReceiptError::Unchained(raw_id)),
        Some(Some(row)) => row,
    };
    let broken = |r: &ChainRow| ReceiptError::Broken {
        seq: r.seq,
        raw_id: r.raw_id,
    };
    let mut prev = previous_hash(store, &row).await?;
    check_row(&row, &prev).map_err(|_| broken(&row))?;
    let link = receipt_link(&row, &prev);
    prev = hash_of_bytes(&row.hash).unwrap_or(GENESIS);
    let payload = row.payload.clone().unwrap_or_default();
    let covering: Option<StoredCheckpoint> = store.checkpoint_covering(&row.source_id, row.seq).await?;
    let mut following = Vec::new();
    let mut checkpoint = None;
    if let Some(c) = covering {
        let head = super::Statement::parse(&c.statement)
            .and_then(|s| s.heads.into_iter().find(|h| h.source_id == row.source_id))
            .ok_or(ReceiptError::Broken {
                seq: row.seq,
                raw_id: row.raw_id,
            })?;
        let mut after = row.seq;
        while after < head.seq {
            let rows = store
                .chain_rows(&row.source_id, after, PAGE.min(head.seq - after))
                .await?;
            if rows.is_empty() {
                return Err(ReceiptError::Broken {
                    seq: after + 1,
                    raw_id: row.raw_id,
                });
            }
            for r in &rows {
                if r.seq != after + 1 {
                    return Err(broken(r));
                }
                check_row(r, &prev).map_err(|_| broken(r))?;
                following.push(receipt_link(r, &prev));
                prev = hash_of_bytes(&r.hash).unwrap_or(GENESIS);
                after = r.seq;
            }
        }
        if hex::encode(prev) != head.hash {
            return Err(ReceiptError::Broken {
                seq: head.seq,
                raw_id: row.raw_id,
            });
        }
        checkpoint = Some(ReceiptCheckpoint {
            id: c.id,
            sm2_user_id: (c.algorithm == "sm2").then_some(SM2_USER_ID),
            algorithm: c.algorithm,
            public_key: c.public_key,
            statement: c.statement,
            signature: c.signature,
            head_seq: head.seq,
            head_hash: head.hash,
        });
    }
    Ok(Receipt {
        format: RECEIPT_FORMAT,
        raw_id,
        source_id: row.source_id.clone(),
        payload_base64: base64::engine::general_purpose::STANDARD.encode(payload),
        link,
        following,
        checkpoint,
        procedure: "docs/archive.md#verifying-a-receipt",
    })
}
