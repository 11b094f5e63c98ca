//! Code tables: legacy codes to canonical values, from a CSV file beside the mapping
//! (`source,target[,note]`) or written inline, with a policy for codes the table lacks.

use super::error::{MappingError, MappingErrorKind, TABLE_PERSONAL_ID};
use crate::standards::id_number::{find_identifiers, identifier_kind, mask_id, IdentifierKind};
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

/// Read a `source,target[,note]` CSV code table `table`. `display` is the file name used in errors.
pub(crate) fn read_csv(path: &Path, display: &str, table: &str) -> Result<(Entries, Vec<u8>), MappingError> {
    let bytes = std::fs::read(path).map_err(|e| MappingError {
        kind: MappingErrorKind::TableFile,
        file: display.to_string(),
        line: None,
        column: None,
        message_zh: format!("无法读取代码表文件 {}：{e}", path.display()),
        message_en: format!("cannot read code table file {}: {e}", path.display()),
    })?;
    let entries = parse_csv(&bytes, display, table)?;
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

/// Parse the CSV bytes of code table `table` (UTF-8, optional BOM, header `source,target[,note]`).
/// A row holding a resident ID number is refused ([`personal_id_in_row`]).
pub(crate) fn parse_csv(bytes: &[u8], display: &str, table: &str) -> Result<Entries, MappingError> {
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
        if let Some(found) = personal_id_in_row(source, target) {
            let (zh, en) = found.messages(table, &format!("第 {line} 行"), &format!("line {line}"));
            return Err(MappingError {
                kind: MappingErrorKind::PersonalIdentifier,
                file: display.to_string(),
                line: Some(line as usize),
                column: None,
                message_zh: zh,
                message_en: en,
            });
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

/// A resident ID number found in a code-table row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PersonalIdInRow {
    /// `source` or `target`: the column holding the number.
    pub column: &'static str,
    /// The number as [`mask_id`] shows it.
    pub masked: String,
    /// True when the row maps a 15-digit number to an 18-character one (or back).
    pub legacy_lookup: bool,
}

impl PersonalIdInRow {
    /// The refusal in Chinese and English, naming the table, the row (`row_zh` / `row_en`), the
    /// masked number, the rule id and the fix.
    pub fn messages(&self, table: &str, row_zh: &str, row_en: &str) -> (String, String) {
        let PersonalIdInRow {
            column,
            masked,
            legacy_lookup,
        } = self;
        let (what_zh, what_en) = if *legacy_lookup {
            (
                "是15位旧身份证号码，本行把它对照为18位号码",
                "is a 15-digit first-generation ID number that this row maps to an 18-character one",
            )
        } else {
            ("是公民身份号码（GB 11643）", "is a resident ID number (GB 11643)")
        };
        (
            format!(
                "代码表 {table} {row_zh} {column} 列的值 {masked} {what_zh}；代码表、映射版本和审计记录中不得存放个人身份号码。\
                 请删除这样的行，在身份证号码字段的 steps 中加入 id_number_18（自动把15位旧号码转为18位并计算校验码），不要用代码表对照号码（规则 {TABLE_PERSONAL_ID}）"
            ),
            format!(
                "code table {table}, {row_en}: the {column} value {masked} {what_en}; a person's identifier must not be kept in a code table, a stored mapping version or the audit log. \
                 Remove such rows and add the step `id_number_18` to the ID number field's `steps` (it converts 15-digit numbers to the 18-character form and computes the check character) instead of looking numbers up in a table (rule {TABLE_PERSONAL_ID})"
            ),
        )
    }
}

/// True for 18 characters shaped like an ID number (17 digits and a digit or `X`), check
/// character not considered: the other side of a 15 → 18 lookup row, typos included.
fn shaped_like_id18(value: &str) -> bool {
    let code = crate::standards::normalise_identifier(value);
    let b = code.as_bytes();
    b.len() == 18
        && b[..17].iter().all(u8::is_ascii_digit)
        && b.get(17).is_some_and(|c| c.is_ascii_digit() || *c == b'X')
}

/// The resident ID number a code-table row holds, if any: an 18-character number with a valid
/// check character and birth date anywhere in the source or the target, or a 15-digit number
/// with a valid `YYMMDD` birth date that the row maps to (or from) an 18-character number.
/// Credit codes, 15-digit business registration numbers on their own, phone numbers and dates
/// are not identifiers.
pub(crate) fn personal_id_in_row(source: &str, target: &str) -> Option<PersonalIdInRow> {
    let legacy =
        |this: &str, other: &str| identifier_kind(this) == Some(IdentifierKind::Legacy15) && shaped_like_id18(other);
    for (column, this, other) in [("source", source, target), ("target", target, source)] {
        if legacy(this, other) {
            return Some(PersonalIdInRow {
                column,
                masked: mask_id(this.trim()),
                legacy_lookup: true,
            });
        }
    }
    for (column, value) in [("source", source), ("target", target)] {
        if let Some(f) = find_identifiers(value)
            .into_iter()
            .find(|f| f.kind == IdentifierKind::Resident18)
        {
            return Some(PersonalIdInRow {
                column,
                masked: mask_id(value.get(f.range).unwrap_or_default()),
                legacy_lookup: false,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_bom_notes_and_blank_lines() {
        let t = parse_csv(
            "\u{FEFF}source,target,note\n罚款,fine,罚款\n 警告 , warning\n\n".as_bytes(),
            "t.csv",
            "t",
        )
        .unwrap();
        assert_eq!(t.get("罚款").map(|s| &**s), Some("fine"));
        assert_eq!(t.get("警告").map(|s| &**s), Some("warning"));
    }

    #[test]
    fn malformed_csv_names_the_line() {
        let err = parse_csv(b"source,target\na,b\na,c\n", "t.csv", "t").unwrap_err();
        assert_eq!(err.line, Some(3));
        let err = parse_csv(b"code,value\na,b\n", "t.csv", "t").unwrap_err();
        assert_eq!(err.line, Some(1));
        let err = parse_csv(b"source,target\na,b,c,d\n", "t.csv", "t").unwrap_err();
        assert_eq!(err.line, Some(2));
    }
}

#[cfg(test)]
mod personal_id_tests {
    use super::*;

    #[test]
    fn a_legacy_lookup_table_is_refused_naming_table_line_and_masked_number() {
        let csv = "source,target,note\n360426910101007,360426199101010071,旧证号\n";
        let err = parse_csv(csv.as_bytes(), "ids.csv", "old_ids").unwrap_err();
        assert_eq!(err.kind, MappingErrorKind::PersonalIdentifier);
        assert_eq!((err.file.as_str(), err.line), ("ids.csv", Some(2)));
        let text = err.to_string();
        for part in [
            "old_ids",
            "3604*******1007",
            "id_number_18",
            "mapping.table_personal_id",
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
        assert!(!text.contains("360426910101007"), "{text}");
        assert!(!text.contains("360426199101010071"), "{text}");
    }

    #[test]
    fn an_18_character_id_in_either_column_is_refused() {
        let row = personal_id_in_row("张三", "36010219850315202X");
        assert_eq!(
            row,
            Some(PersonalIdInRow {
                column: "target",
                masked: "3601**********202X".into(),
                legacy_lookup: false
            })
        );
        let row = personal_id_in_row("36010219850315202x", "person_a");
        assert_eq!(
            row.map(|r| (r.column, r.masked)),
            Some(("source", "3601**********202x".into()))
        );
    }

    #[test]
    fn credit_codes_registration_numbers_phones_and_dates_are_not_identifiers() {
        for (source, target) in [
            ("91360102MA35G7K86A", "company_a"),
            ("360100210012345", "registration"),
            ("360426910101007", "legacy_registration_shape"),
            ("13907910000", "mobile"),
            ("0791-86123456", "landline"),
            ("20210122", "2021-01-22"),
            ("360102198503152021", "bad_check_char"),
        ] {
            assert_eq!(personal_id_in_row(source, target), None, "{source},{target}");
        }
    }
}
