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
    /// The body holds more records than one push may carry.
    #[error("more than {0} records in one push")]
    TooManyRecords(usize),
    /// The body is not text in the character set it names.
    #[error("the body is not valid {charset} at byte {offset}")]
    Undecodable {
        /// The character set named by the `Content-Type`.
        charset: &'static str,
        /// Offset of the first byte that is not valid in it.
        offset: usize,
    },
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

/// What one push may carry.
#[derive(Debug, Clone, Copy)]
pub struct PushLimits {
    /// Most records (more: [`PushError::TooManyRecords`], nothing taken).
    pub max_records: usize,
    /// Longest JSON line held while reading (see [`read_bytes`]).
    pub max_line_bytes: usize,
}

/// `bytes` decoded from `encoding` exactly: the first byte that is not valid in it is an error
/// naming its offset (nothing is replaced by U+FFFD).
fn decode_exactly(bytes: &[u8], encoding: &'static encoding_rs::Encoding) -> Result<String, PushError> {
    let undecodable = |offset: usize| PushError::Undecodable {
        charset: encoding.name(),
        offset,
    };
    if encoding == encoding_rs::UTF_8 {
        return std::str::from_utf8(bytes)
            .map(str::to_string)
            .map_err(|e| undecodable(e.valid_up_to()));
    }
    let mut decoder = encoding.new_decoder_without_bom_handling();
    let mut out = String::with_capacity(
        decoder
            .max_utf8_buffer_length_without_replacement(bytes.len())
            .unwrap_or(bytes.len() * 3),
    );
    let (result, read) = decoder.decode_to_string_without_replacement(bytes, &mut out, true);
    match result {
        encoding_rs::DecoderResult::InputEmpty => Ok(out),
        encoding_rs::DecoderResult::Malformed(bad, after) => {
            Err(undecodable(read.saturating_sub(usize::from(bad) + usize::from(after))))
        }
        encoding_rs::DecoderResult::OutputFull => Err(undecodable(read)),
    }
}

/// The records of a pushed body. Text formats are decoded to UTF-8 by `charset` when given,
/// exactly (an undecodable byte refuses the body, naming its offset); XML decodes itself (its
/// prolog, else `charset`); XML records are picked by `xml_records`. Reading stops, and the body
/// is refused, past `limits.max_records` records.
pub fn read_body(
    bytes: &[u8],
    format: InputFormat,
    xml_records: Option<&str>,
    charset: Option<&'static encoding_rs::Encoding>,
    limits: PushLimits,
) -> Result<Vec<ReadItem>, PushError> {
    let decoded;
    let text: &[u8] = match (format, charset) {
        (InputFormat::Xml, _) | (_, None) => bytes,
        (_, Some(encoding)) => {
            decoded = decode_exactly(bytes, encoding)?;
            decoded.as_bytes()
        }
    };
    let mut items: Vec<ReadItem> = Vec::new();
    let mut too_many = false;
    read_bytes(
        text,
        "push",
        format,
        xml_records,
        charset,
        limits.max_line_bytes,
        |item| {
            if items.len() >= limits.max_records {
                too_many = true;
                return false;
            }
            items.push(item);
            true
        },
    )
    .map_err(|e| match e {
        ReadError::Malformed { message, .. } => PushError::Malformed(message),
        ReadError::Io { source, .. } => PushError::Unreadable(source.to_string()),
    })?;
    if too_many {
        return Err(PushError::TooManyRecords(limits.max_records));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: PushLimits = PushLimits {
        max_records: 3,
        max_line_bytes: 1 << 20,
    };

    #[test]
    fn a_body_with_more_records_than_allowed_is_refused_whole() {
        let body = "{}\n{}\n{}\n{}\n";
        let e = read_body(body.as_bytes(), InputFormat::JsonLines, None, None, LIMITS).unwrap_err();
        assert!(matches!(e, PushError::TooManyRecords(3)), "{e}");
        let ok = read_body(b"{}\n{}\n{}\n", InputFormat::JsonLines, None, None, LIMITS).unwrap();
        assert_eq!(ok.len(), 3);
    }

    #[test]
    fn an_undecodable_byte_refuses_the_body_naming_its_offset() {
        let mut gbk = encoding_rs::GBK.encode("{\"a\":\"案件\"}").0.into_owned();
        let good = read_body(&gbk, InputFormat::Json, None, Some(encoding_rs::GBK), LIMITS).unwrap();
        assert_eq!(good.len(), 1);
        gbk.insert(3, 0xFF);
        let e = read_body(&gbk, InputFormat::Json, None, Some(encoding_rs::GBK), LIMITS).unwrap_err();
        assert!(matches!(e, PushError::Undecodable { offset: 3, .. }), "{e}");
        let e = read_body(
            b"{\"a\":\"\xff\"}",
            InputFormat::Json,
            None,
            Some(encoding_rs::UTF_8),
            LIMITS,
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                PushError::Undecodable {
                    offset: 6,
                    charset: "UTF-8"
                }
            ),
            "{e}"
        );
    }
}
