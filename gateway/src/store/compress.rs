//! lz4 compression of the PostgreSQL store's payload and record columns: a size-prefixed lz4
//! block (`lz4_flex`), written by the commit path and read back by every reader.

use super::{StoreError, StoreResult};
use std::borrow::Cow;

/// `raw_records.payload_codec` of a payload stored as it came.
pub(crate) const CODEC_PLAIN: i16 = 0;
/// `raw_records.payload_codec` of a payload stored as a size-prefixed lz4 block.
pub(crate) const CODEC_LZ4: i16 = 1;

/// Largest decompressed size accepted (a corrupt size prefix must not allocate without bound).
const MAX_DECOMPRESSED: usize = 512 * 1024 * 1024;

/// Compress `bytes` into a size-prefixed lz4 block.
pub(crate) fn compress(bytes: &[u8]) -> Vec<u8> {
    lz4_flex::block::compress_prepend_size(bytes)
}

/// The stored form of `plain`: the block compressed while preparing when there is one, else
/// compressed now.
pub(crate) fn stored<'a>(compressed: Option<&'a [u8]>, plain: &[u8]) -> Cow<'a, [u8]> {
    match compressed {
        Some(block) => Cow::Borrowed(block),
        None => Cow::Owned(compress(plain)),
    }
}

/// Decompress a size-prefixed lz4 block written by [`compress`].
pub(crate) fn decompress(block: &[u8]) -> StoreResult<Vec<u8>> {
    let (size, _) =
        lz4_flex::block::uncompressed_size(block).map_err(|e| StoreError::Corrupt(format!("lz4 block: {e}")))?;
    if size > MAX_DECOMPRESSED {
        return Err(StoreError::Corrupt(format!("lz4 block claims {size} bytes")));
    }
    lz4_flex::block::decompress_size_prepended(block).map_err(|e| StoreError::Corrupt(format!("lz4 block: {e}")))
}

/// A stored payload as it came, by its codec; one sealed as personal data
/// ([`crate::crypto::personal`]) opened with this process's keys.
pub(crate) fn payload_of(stored: Vec<u8>, codec: i16) -> StoreResult<Vec<u8>> {
    let payload = match codec {
        CODEC_PLAIN => stored,
        CODEC_LZ4 => decompress(&stored)?,
        other => return Err(StoreError::Corrupt(format!("payload codec {other}"))),
    };
    if !crate::crypto::personal::is_sealed_bytes(&payload) {
        return Ok(payload);
    }
    crate::crypto::personal::open_payload(&payload)
        .map(|p| p.into_owned())
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A version's canonical record from its two columns: the compressed JSON text (new rows) or the
/// jsonb value (rows written before migration 0006).
pub(crate) fn record_of(jsonb: Option<serde_json::Value>, lz4: Option<Vec<u8>>) -> StoreResult<serde_json::Value> {
    match (lz4, jsonb) {
        (Some(block), _) => serde_json::from_slice(&decompress(&block)?)
            .map_err(|e| StoreError::Corrupt(format!("stored canonical record: {e}"))),
        (None, Some(value)) => Ok(value),
        (None, None) => Err(StoreError::Corrupt("a case version without its record".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_payload_reads_back_identical() {
        let text = "{\"ajbh\":\"洪市监罚〔2024〕1号\",\"dsr\":\"南昌市某某有限公司\"}".repeat(20);
        let block = compress(text.as_bytes());
        assert!(block.len() < text.len() / 2);
        assert_eq!(payload_of(block, CODEC_LZ4).ok(), Some(text.as_bytes().to_vec()));
        assert_eq!(payload_of(b"plain".to_vec(), CODEC_PLAIN).ok(), Some(b"plain".to_vec()));
    }

    #[test]
    fn corrupt_blocks_and_codecs_are_errors_not_panics() {
        assert!(decompress(&[0xff, 0xff, 0xff, 0x7f, 1, 2, 3]).is_err());
        assert!(decompress(&[10, 0, 0, 0, 0xf0]).is_err());
        assert!(payload_of(Vec::new(), 7).is_err());
        assert!(record_of(None, None).is_err());
        assert!(record_of(None, Some(compress(b"not json"))).is_err());
    }
}
