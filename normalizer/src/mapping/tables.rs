//! Code tables: legacy codes to canonical values, from a CSV file beside the mapping
//! (`source,target[,note]`) or written inline, with a policy for codes the table lacks.

use super::error::{MappingError, MappingErrorKind};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::Path;

/// What to do with a value the code table does not list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmapped {
    /// Error-level violation `mapping.unmapped_code`; the value is left out.
    Error,
    /// Warning-level violation `mapping.unmapped_code`; the source value is kept as is.
    WarnKeep,
    /// Treated as empty: left out without a violation.
    Null,
    /// Replaced by this canonical value, without a violation.
    Default(String),
}

/// Codes and their canonical values.
pub(crate) type Entries = HashMap<Box<str>, Box<str>, BuildHasherDefault<CodeHasher>>;

/// The hash of the code tables: the multiply-rotate hash of rustc (FxHash), several times
/// cheaper than the default SipHash on the short codes looked up for every record. Resistance
/// to chosen collisions is not needed: a table's keys come from the mapping, not from records.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CodeHasher(u64);

impl CodeHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for CodeHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A loaded code table.
#[derive(Debug, Clone)]
pub(crate) struct CodeTable {
    pub name: Box<str>,
    pub entries: Entries,
    pub unmapped: Unmapped,
}

impl CodeTable {
    /// The canonical value of `code`.
    pub fn get(&self, code: &str) -> Option<&str> {
        self.entries.get(code).map(|v| &**v)
    }
}

/// Read a `source,target[,note]` CSV code table. `display` is the name used in errors.
pub(crate) fn read_csv(path: &Path, display: &str) -> Result<(Entries, Vec<u8>), MappingError> {
    let bytes = std::fs::read(path).map_err(|e| MappingError {
        kind: MappingErrorKind::TableFile,
        file: display.to_string(),
        line: None,
        column: None,
        message_zh: format!("无法读取代码表文件 {}：{e}", path.display()),
        message_en: format!("cannot read code table file {}: {e}", path.display()),
    })?;
    let entries = parse_csv(&bytes, display)?;
    Ok((entries, bytes))
}

fn csv_error(display: &str, line: Option<u64>, zh: String, en: String) -> MappingError {
    MappingError {
        kind: MappingErrorKind::TableFile,
        file: display.to_string(),
        line: line.map(|l| l as usize),
        column: None,
        message_zh: zh,
        message_en: en,
    }
}

/// Parse code-table CSV bytes (UTF-8, optional BOM, header `source,target[,note]`).
pub(crate) fn parse_csv(bytes: &[u8], display: &str) -> Result<Entries, MappingError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if let Err(e) = std::str::from_utf8(bytes) {
        let line = bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
        return Err(csv_error(
            display,
            Some(line as u64),
            "代码表不是 UTF-8 编码（请另存为 UTF-8）".into(),
            "the code table is not UTF-8 (save it as UTF-8)".into(),
        ));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|e| {
            csv_error(
                display,
                Some(1),
                format!("代码表表头无法读取：{e}"),
                format!("cannot read the header: {e}"),
            )
        })?
        .clone();
    let names: Vec<&str> = headers.iter().map(str::trim).collect();
    if !(names == ["source", "target"] || names == ["source", "target", "note"]) {
        return Err(csv_error(
            display,
            Some(1),
            format!(
                "代码表第一行应为 source,target 或 source,target,note，实际为 {}",
                names.join(",")
            ),
            format!(
                "the first line must be `source,target` or `source,target,note`, found `{}`",
                names.join(",")
            ),
        ));
    }
    let mut entries = Entries::default();
    let mut lines = HashMap::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map(|p| p.line());
            csv_error(
                display,
                line,
                format!("代码表格式错误：{e}"),
                format!("malformed code table: {e}"),
            )
        })?;
        let line = record.position().map_or(0, |p| p.line());
        if record.len() == 1 && record.get(0).is_some_and(|s| s.trim().is_empty()) {
            continue; // blank line
        }
        if record.len() < 2 || record.len() > 3 {
            return Err(csv_error(
                display,
                Some(line),
                format!("应有 2 或 3 列（source,target[,note]），实际 {} 列", record.len()),
                format!("expected 2 or 3 columns (source,target[,note]), found {}", record.len()),
            ));
        }
        let source = record.get(0).unwrap_or("").trim();
        let target = record.get(1).unwrap_or("").trim();
        if source.is_empty() || target.is_empty() {
            return Err(csv_error(
                display,
                Some(line),
                "source 和 target 都不能为空".into(),
                "source and target must not be empty".into(),
            ));
        }
        if let Some(first) = lines.insert(source.to_string(), line) {
            return Err(csv_error(
                display,
                Some(line),
                format!("代码 {source:?} 重复（第 {first} 行已出现）"),
                format!("code {source:?} is listed twice (first on line {first})"),
            ));
        }
        entries.insert(Box::from(source), Box::from(target));
    }
    if entries.is_empty() {
        return Err(csv_error(
            display,
            Some(1),
            "代码表没有任何代码".into(),
            "the code table lists no codes".into(),
        ));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_bom_notes_and_blank_lines() {
        let t = parse_csv(
            "\u{FEFF}source,target,note\n罚款,fine,罚款\n 警告 , warning\n\n".as_bytes(),
            "t.csv",
        )
        .unwrap();
        assert_eq!(t.get("罚款").map(|s| &**s), Some("fine"));
        assert_eq!(t.get("警告").map(|s| &**s), Some("warning"));
    }

    #[test]
    fn malformed_csv_names_the_line() {
        let err = parse_csv(b"source,target\na,b\na,c\n", "t.csv").unwrap_err();
        assert_eq!(err.line, Some(3));
        let err = parse_csv(b"code,value\na,b\n", "t.csv").unwrap_err();
        assert_eq!(err.line, Some(1));
        let err = parse_csv(b"source,target\na,b,c,d\n", "t.csv").unwrap_err();
        assert_eq!(err.line, Some(2));
    }
}
