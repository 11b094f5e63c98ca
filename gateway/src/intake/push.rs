//! HTTP push (`POST /api/ingest/{source}`, served by the operator server): a department's system
//! sends a body of records; they are read, prepared and committed through the committer before
//! the answer, which says what became of each record, in order. Nothing of a body that fails
//! here is taken.

use crate::commit::RecordOutcome;
use crate::prepare::reader::{read_bytes, ReadError};
use crate::prepare::{prepare_parallel, InputFormat, PrepareError, ReadItem};
use crate::runtime::Runtime;
use crate::store::StoreError;
use crate::telemetry::Summary;

/// Why a pushed body was not taken (nothing of it was committed).
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The body is not in the format it claims.
    #[error("malformed body: {0}")]
    Malformed(String),
    /// The body could not be read.
    #[error("cannot read the body: {0}")]
    Unreadable(String),
    /// The body holds no records.
    #[error("the body holds no records")]
    NoRecords,
    /// The source has no mapping loaded.
    #[error("source {0:?} has no mapping loaded")]
    NoMapping(String),
    /// The records could not be prepared.
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The records of a pushed body. Text formats are decoded to UTF-8 by `charset` when given;
/// XML decodes itself (its prolog, else `charset`); XML records are picked by `xml_records`.
pub fn read_body(
    bytes: &[u8],
    format: InputFormat,
    xml_records: Option<&str>,
    charset: Option<&'static encoding_rs::Encoding>,
) -> Result<Vec<ReadItem>, PushError> {
    let decoded;
    let text: &[u8] = match (format, charset) {
        (InputFormat::Xml, _) | (_, None) => bytes,
        (_, Some(encoding)) => {
            decoded = encoding.decode(bytes).0.into_owned();
            decoded.as_bytes()
        }
    };
    let mut items: Vec<ReadItem> = Vec::new();
    read_bytes(text, "push", format, xml_records, charset, |item| {
        items.push(item);
        true
    })
    .map_err(|e| match e {
        ReadError::Malformed { message, .. } => PushError::Malformed(message),
        ReadError::Io { source, .. } => PushError::Unreadable(source.to_string()),
    })?;
    if items.is_empty() {
        return Err(PushError::NoRecords);
    }
    Ok(items)
}

/// Prepare `items` with the source's current mapping and commit them through the runtime's
/// committer; what became of each record, and the counts.
pub async fn commit_push(
    runtime: &Runtime,
    source_id: &str,
    items: Vec<ReadItem>,
) -> Result<(Vec<RecordOutcome>, Summary), PushError> {
    let preparer = runtime
        .preparers
        .get(source_id)
        .ok_or_else(|| PushError::NoMapping(source_id.to_string()))?;
    let committer = runtime.committer("push");
    let prepared = prepare_parallel(&preparer, items, committer.keeps_compressed()).await?;
    Ok(committer.commit_with_outcomes(prepared, None).await?)
}
