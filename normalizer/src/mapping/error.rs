//! Load errors of mapping files: what is wrong, where (file, line, column), in Chinese and English.

use std::fmt;
use std::ops::Range;

/// The kind of problem that stopped a mapping file from loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MappingErrorKind {
    /// The mapping file or a code-table file could not be read.
    Io,
    /// The file is not valid TOML.
    Syntax,
    /// A key the format does not know (often a typo).
    UnknownKey,
    /// A required key is missing.
    MissingKey,
    /// A key has a value of the wrong kind or an unknown option (step, type, unit, ...).
    InvalidValue,
    /// A source path (`from`, `each`, `zip`, `when.path`, ...) is not well formed.
    InvalidPath,
    /// A `target` names no field of the canonical schemas, or does not fit the field's shape.
    InvalidTarget,
    /// A field uses a code table that is not declared under `[tables]`.
    UndeclaredTable,
    /// A code-table CSV file is missing or malformed.
    TableFile,
    /// An embedded `[[test]]` is malformed (e.g. its `input_json` is not JSON).
    InvalidTest,
    /// A code table holds a resident ID number (rule [`TABLE_PERSONAL_ID`]): a person's identifier
    /// in a lookup table, typically old 15-digit numbers mapped to 18-character ones.
    PersonalIdentifier,
}

/// Rule id of the refusal of a code table that holds a resident ID number.
pub const TABLE_PERSONAL_ID: &str = "mapping.table_personal_id";

impl MappingErrorKind {
    /// The documented rule id of this kind of load error, for the kinds that have one.
    pub fn rule_id(self) -> Option<&'static str> {
        match self {
            MappingErrorKind::PersonalIdentifier => Some(TABLE_PERSONAL_ID),
            _ => None,
        }
    }
}

/// Why a mapping file could not be loaded, with the position of the problem.
///
/// `Display` gives `file:line:column: 中文说明 / English explanation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingError {
    /// What kind of problem this is.
    pub kind: MappingErrorKind,
    /// The file the problem is in (the mapping file, or a code-table CSV).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column in characters, when known.
    pub column: Option<usize>,
    /// What is wrong, in Chinese.
    pub message_zh: String,
    /// What is wrong, in English.
    pub message_en: String,
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {} / {}", self.message_zh, self.message_en)
    }
}

impl std::error::Error for MappingError {}

/// 1-based line and character column of byte offset `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The text of the file being loaded, to turn byte spans into line and column.
#[derive(Clone, Copy)]
pub(crate) struct SourceFile<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

impl SourceFile<'_> {
    /// An error located at the start of `span`.
    pub fn error(
        &self,
        kind: MappingErrorKind,
        span: Range<usize>,
        message_zh: impl Into<String>,
        message_en: impl Into<String>,
    ) -> MappingError {
        let (line, column) = line_col(self.text, span.start);
        MappingError {
            kind,
            file: self.name.to_string(),
            line: Some(line),
            column: Some(column),
            message_zh: message_zh.into(),
            message_en: message_en.into(),
        }
    }

    /// An error located `chars` characters into the string value whose TOML span is `span`
    /// (the value's opening quote is skipped).
    pub fn error_in_string(
        &self,
        kind: MappingErrorKind,
        span: Range<usize>,
        chars: usize,
        message_zh: impl Into<String>,
        message_en: impl Into<String>,
    ) -> MappingError {
        let mut err = self.error(kind, span.clone(), message_zh, message_en);
        let quoted = self
            .text
            .get(span)
            .is_some_and(|s| s.starts_with('"') || s.starts_with('\''));
        if let Some(column) = err.column.as_mut() {
            *column += chars + usize::from(quoted);
        }
        err
    }

    /// The TOML parser's or deserialiser's error, with its message explained in Chinese.
    pub fn toml_error(&self, err: &toml::de::Error) -> MappingError {
        let message = err.message().trim().to_string();
        let (kind, zh, en) = explain_toml_message(&message);
        let (line, column) = match err.span() {
            Some(span) => {
                let (l, c) = line_col(self.text, span.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        MappingError {
            kind,
            file: self.name.to_string(),
            line,
            column,
            message_zh: zh,
            message_en: en,
        }
    }
}

/// Classify a serde/TOML message and say it in Chinese (and English).
fn explain_toml_message(message: &str) -> (MappingErrorKind, String, String) {
    let en = message.to_string();
    let quoted = |rest: &str| rest.split('`').next().unwrap_or("").to_string();
    let expected = |rest: &str| {
        rest.split_once("expected ")
            .map(|(_, e)| format!("（可用：{}）", e.trim_start_matches("one of ").replace('`', "")))
            .unwrap_or_default()
    };
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let key = quoted(rest);
        return (
            MappingErrorKind::UnknownKey,
            format!("未知的键 {key}{}", expected(rest)),
            en,
        );
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let value = quoted(rest);
        return (
            MappingErrorKind::InvalidValue,
            format!("未知的取值 {value}{}", expected(rest)),
            en,
        );
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let key = quoted(rest);
        return (MappingErrorKind::MissingKey, format!("缺少必填的键 {key}"), en);
    }
    if message.starts_with("invalid type") || message.starts_with("invalid value") {
        return (MappingErrorKind::InvalidValue, format!("取值类型不对：{message}"), en);
    }
    if message.starts_with("duplicate key") || message.contains("duplicate") {
        return (MappingErrorKind::Syntax, format!("键重复：{message}"), en);
    }
    // Our own messages from the custom deserialisers read "中文 / English".
    if let Some((zh, en)) = message.split_once(" / ") {
        if zh.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)) {
            return (MappingErrorKind::InvalidValue, zh.to_string(), en.to_string());
        }
    }
    (MappingErrorKind::Syntax, format!("TOML 格式错误：{message}"), en)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let text = "a = 1\n名称 = \"x\"\n";
        assert_eq!(line_col(text, 0), (1, 1));
        let pos = text.find('=').unwrap();
        assert_eq!(line_col(text, pos), (1, 3));
        let pos = text.find('"').unwrap();
        assert_eq!(line_col(text, pos), (2, 6));
    }
}
