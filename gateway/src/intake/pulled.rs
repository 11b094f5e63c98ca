//! What the pulls of reference data (the supervision-item catalogue, the officer registry) share:
//! reading a field of a pulled record by its dotted path, and a record refused with its reason.

use serde_json::Value;

/// A pulled reference record (a catalogue item, an officer) that is not usable, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedItem {
    /// Where it was found.
    pub position: String,
    /// Why it was refused (Chinese and English).
    pub reason: String,
}

/// The trimmed text (or number) at a dotted `path` of a pulled record; `None` when absent or blank.
pub(crate) fn text_at(record: &Value, path: &str) -> Option<String> {
    let mut cur = record;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        cur = cur.get(seg)?;
    }
    match cur {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
