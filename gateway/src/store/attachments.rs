//! What the store keeps of evidence attachments (证据附件), behind one interface for both
//! backends (`attachments_sqlite.rs`, `attachments_postgres.rs`): the stored objects (one row per
//! SHA-256) and each case version's attachments with their origin and fetch state.
//!
//! A fetcher claims due `pending` rows by moving `next_try_at` to the end of a lease (on
//! PostgreSQL with `FOR UPDATE SKIP LOCKED`, so instances sharing the store never take the same
//! row); it settles a row only while it still holds that lease. A fetcher that dies leaves its
//! rows due again when the lease ends.

use crate::store::StoreResult;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// An attachment of a committed case version, to fetch and store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAttachment {
    /// The unified case code.
    pub code: String,
    /// The case version.
    pub version: i32,
    /// Index in the record's `attachments`.
    pub position: i32,
    /// The source the record came from (whose connection fetches a URL).
    pub source_id: String,
    /// document | video | audio | image | other.
    pub kind: String,
    /// 附件名称.
    pub title: Option<String>,
    /// File name.
    pub file_name: Option<String>,
    /// Media type as the source declares it.
    pub media_type: Option<String>,
    /// When it was captured (as the source gives it).
    pub captured_at: Option<String>,
    /// Audio and video: duration in seconds, when the source gives it.
    pub duration_seconds: Option<f64>,
    /// `url`, `inline` or `file`.
    pub origin: String,
    /// The URL, the file path, or `record` (inline content in the case version's record).
    pub origin_ref: String,
    /// An optional attachment does not hold the case's delivery.
    pub optional: bool,
}

/// An attachment of a case version as the store keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct AttachmentRow {
    /// Row id.
    pub id: i64,
    /// The unified case code.
    #[serde(rename = "unified_code")]
    pub code: String,
    /// The case version.
    pub version: i32,
    /// Index in the record's `attachments`.
    pub position: i32,
    /// The source the record came from.
    pub source_id: String,
    /// document | video | audio | image | other.
    pub kind: String,
    /// 附件名称.
    pub title: Option<String>,
    /// File name.
    pub file_name: Option<String>,
    /// Media type (the stored object's once stored).
    pub media_type: Option<String>,
    /// When it was captured.
    pub captured_at: Option<String>,
    /// Duration in seconds (audio, video).
    pub duration_seconds: Option<f64>,
    /// `url`, `inline` or `file`.
    pub origin: String,
    /// The URL, the file path, or `record`.
    pub origin_ref: String,
    /// Does not hold delivery.
    pub optional: bool,
    /// pending | stored | failed | refused.
    pub status: String,
    /// Fetches tried.
    pub attempts: i32,
    /// The last fetch's error, or why it was refused.
    pub last_error: Option<String>,
    /// When it is fetched next (pending).
    pub next_try_at: DateTime<Utc>,
    /// SHA-256 of the content (stored).
    pub sha256: Option<String>,
    /// Size in bytes (stored).
    pub bytes: Option<i64>,
    /// When it was listed.
    pub created_at: DateTime<Utc>,
    /// When it was stored.
    pub stored_at: Option<DateTime<Utc>>,
}

/// One stored object (file content), kept once per SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectRow {
    /// SHA-256 (hex) of the content.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: i64,
    /// Media type.
    pub media_type: String,
    /// Key in the object store (`sha256/<hash>`).
    pub storage_key: String,
    /// When it was first stored.
    pub first_seen: DateTime<Utc>,
}

/// How many attachments are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AttachmentCounts {
    /// Waiting to be fetched (or retried).
    pub pending: i64,
    /// Stored.
    pub stored: i64,
    /// Out of attempts.
    pub failed: i64,
    /// Over a limit or of a media type not allowed.
    pub refused: i64,
}

/// The end of one fetch that did not store the attachment.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchFailure {
    /// The row.
    pub id: i64,
    /// `pending` (retried at `next_try_at`), `failed` or `refused`.
    pub status: &'static str,
    /// Fetches tried so far.
    pub attempts: i32,
    /// What went wrong.
    pub error: String,
    /// When to try again.
    pub next_try_at: DateTime<Utc>,
}

/// Attachments in the store.
#[async_trait]
pub trait AttachmentStore: Send + Sync {
    /// List attachments to fetch; rows already listed (same code, version, position) are left
    /// as they are. Answers how many were new.
    async fn enqueue_attachments(&self, rows: &[NewAttachment]) -> StoreResult<u64>;

    /// Claim at most `limit` due pending attachments until `lease_until`.
    async fn claim_attachments(
        &self,
        limit: usize,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Vec<AttachmentRow>>;

    /// Record that attachment `id` (claimed until `lease_until`) is stored as `object` (the
    /// object's row is written unless one for its SHA-256 is there). False when the lease was
    /// lost (another fetcher has the row).
    async fn attachment_stored(&self, id: i64, object: &ObjectRow, lease_until: DateTime<Utc>) -> StoreResult<bool>;

    /// Record a fetch that did not store the attachment (claimed until `lease_until`).
    async fn attachment_not_stored(&self, failure: &FetchFailure, lease_until: DateTime<Utc>) -> StoreResult<bool>;

    /// Every attachment of every version of a case, by version and position.
    async fn attachments_of_case(&self, code: &str) -> StoreResult<Vec<AttachmentRow>>;

    /// The stored object of a SHA-256, if any.
    async fn attachment_object(&self, sha256: &str) -> StoreResult<Option<ObjectRow>>;

    /// The sources of the case attachments with this SHA-256 (who may download it).
    async fn attachment_sources(&self, sha256: &str) -> StoreResult<Vec<String>>;

    /// How many attachments are in each state.
    async fn attachment_counts(&self) -> StoreResult<AttachmentCounts>;

    /// Make a case's failed attachments pending again, due now, with their attempts reset;
    /// answers how many.
    async fn retry_attachments(&self, code: &str, now: DateTime<Utc>) -> StoreResult<u64>;
}

/// The columns every query of `case_attachments` reads, in [`AttachmentRow`]'s order.
pub(crate) const ROW_COLUMNS: &str = "id, unified_code, version, position, source_id, kind, title, file_name, \
     media_type, captured_at, duration_seconds, origin, origin_ref, optional, status, attempts, last_error, \
     next_try_at, sha256, bytes, created_at, stored_at";

/// The counts of `(status, count)` rows.
pub(crate) fn counts(raw: Vec<(String, i64)>) -> AttachmentCounts {
    let mut c = AttachmentCounts::default();
    for (status, n) in raw {
        match status.as_str() {
            "pending" => c.pending += n,
            "stored" => c.stored += n,
            "failed" => c.failed += n,
            _ => c.refused += n,
        }
    }
    c
}

/// The canonical record of an accepted record when it names attachments (read from its
/// compressed form when the plain one was released), for listing them after the commit.
pub fn record_with_attachments(accepted: &super::types::AcceptedRecord) -> Option<serde_json::Value> {
    let text: std::borrow::Cow<'_, str> = match &accepted.record_lz4 {
        Some(lz4) if accepted.record_json.is_empty() => {
            std::borrow::Cow::Owned(String::from_utf8(super::compress::decompress(lz4).ok()?).ok()?)
        }
        _ => std::borrow::Cow::Borrowed(accepted.record_json.as_str()),
    };
    if !text.contains("\"attachments\"") {
        return None;
    }
    serde_json::from_str::<serde_json::Value>(&text).ok().filter(|v| {
        v.get("attachments")
            .and_then(serde_json::Value::as_array)
            .is_some_and(|a| !a.is_empty())
    })
}
