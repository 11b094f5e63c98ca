//! What the readers yield: one source record before mapping, or an unreadable record kept
//! with its bytes for the quarantine.

use serde_json::Value;

/// One record read from a source, before mapping.
#[derive(Debug, Clone)]
pub struct SourceRecord {
    /// The record as the mapping engine reads it; `None` for a JSON line not parsed yet (its
    /// text is `payload`; [`SourceRecord::parse`] parses it).
    pub value: Option<Value>,
    /// Raw bytes for the archive (the JSON line as received; for XML and CSV the record's tree as JSON).
    pub payload: Vec<u8>,
    /// Where it was found, e.g. `records.jsonl:17`.
    pub position: String,
}

/// A record that could not even be parsed: it is quarantined with its raw bytes.
#[derive(Debug, Clone)]
pub struct UnreadableRecord {
    /// Raw bytes as found (only the first [`KEPT_PREFIX_BYTES`] when `truncated`).
    pub payload: Vec<u8>,
    /// Where.
    pub position: String,
    /// Parser message.
    pub message: String,
    /// Set when the record was larger than the limit and `payload` is only its beginning.
    pub truncated: Option<Truncated>,
    /// The quarantine rule, when more precise than `input.unreadable`: `input.undecodable`
    /// (bytes not valid in the input's encoding) or `input.cell` (a spreadsheet cell that
    /// cannot be passed on exactly). Such records stay quarantined when replayed.
    pub rule: Option<&'static str>,
}

/// A record holding bytes that are not valid in its input's encoding.
pub const RULE_UNDECODABLE: &str = "input.undecodable";

/// What is known of a record too large to keep: its size and the SHA-256 of all of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncated {
    /// Its whole size, in bytes.
    pub bytes: u64,
    /// SHA-256 (hex) of all of it.
    pub sha256: String,
}

/// How much of a record over the size limit is kept for the quarantine (64 KiB).
pub const KEPT_PREFIX_BYTES: usize = 64 * 1024;

/// What a reader yields per record.
pub type ReadItem = Result<SourceRecord, UnreadableRecord>;

impl SourceRecord {
    /// A record parsed already.
    pub fn parsed(value: Value, payload: Vec<u8>, position: String) -> SourceRecord {
        SourceRecord {
            value: Some(value),
            payload,
            position,
        }
    }

    /// A JSON text to be parsed by [`SourceRecord::parse`] where it is mapped.
    pub fn unparsed_json(payload: Vec<u8>, position: String) -> SourceRecord {
        SourceRecord {
            value: None,
            payload,
            position,
        }
    }

    /// The record with its value, parsed from the payload if it was not yet; a payload that is
    /// not a JSON object makes it unreadable (quarantined with its bytes).
    pub fn parse(self) -> Result<ParsedRecord, UnreadableRecord> {
        let value = match self.value {
            Some(value) => value,
            None => match parse_json_object(&self.payload) {
                Ok(value) => value,
                Err(message) => {
                    return Err(UnreadableRecord {
                        payload: self.payload,
                        position: self.position,
                        message,
                        truncated: None,
                        rule: None,
                    })
                }
            },
        };
        Ok(ParsedRecord {
            value,
            payload: self.payload,
            position: self.position,
        })
    }
}

/// A record whose value is parsed: what the mapping engine reads.
#[derive(Debug, Clone)]
pub struct ParsedRecord {
    /// The record as the mapping engine reads it.
    pub value: Value,
    /// Raw bytes for the archive.
    pub payload: Vec<u8>,
    /// Where it was found.
    pub position: String,
}

/// A JSON object from its text, or why it is not one (in Chinese and English).
fn parse_json_object(bytes: &[u8]) -> Result<Value, String> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(value) if value.is_object() => Ok(value),
        Ok(_) => Err(NOT_AN_OBJECT.into()),
        Err(e) => Err(format!("JSON 解析失败 / invalid JSON: {e}")),
    }
}

/// Why a JSON value that is not an object is not a record.
pub(crate) const NOT_AN_OBJECT: &str = "不是JSON对象 / not a JSON object";

/// Parse a JSON line read unparsed; other items pass as they are.
pub fn parse_item(item: ReadItem) -> Result<ParsedRecord, UnreadableRecord> {
    item.and_then(SourceRecord::parse)
}
