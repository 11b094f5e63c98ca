//! A violation: one reason a record is rejected (error) or flagged (warning), in terms a clerk can act on.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Whether a violation rejects the record or only flags it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The record is rejected and quarantined.
    Error,
    /// The record is kept, with the warning attached.
    Warning,
}

/// One broken rule, naming the field (JSON pointer), the rule id and the offending value,
/// with a message in Chinese and English.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// JSON pointer of the field in the canonical record (e.g. `/agency/credit_code`).
    pub pointer: String,
    /// Stable rule id (e.g. `uscc.check_char`, `schema.required`, `rule.officers_distinct`).
    pub rule: String,
    /// Error rejects the record; warning keeps it, flagged.
    pub severity: Severity,
    /// The offending value as text, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Message in Chinese.
    pub message_zh: String,
    /// Message in English.
    pub message_en: String,
}

/// `key` as one reference token of a JSON pointer (RFC 6901: `~` as `~0`, `/` as `~1`).
pub fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

impl Violation {
    /// An error-level violation.
    pub fn error(
        pointer: impl Into<String>,
        rule: impl Into<String>,
        value: Option<String>,
        message_zh: impl Into<String>,
        message_en: impl Into<String>,
    ) -> Self {
        Violation {
            pointer: pointer.into(),
            rule: rule.into(),
            severity: Severity::Error,
            value,
            message_zh: message_zh.into(),
            message_en: message_en.into(),
        }
    }

    /// A warning-level violation.
    pub fn warning(
        pointer: impl Into<String>,
        rule: impl Into<String>,
        value: Option<String>,
        message_zh: impl Into<String>,
        message_en: impl Into<String>,
    ) -> Self {
        Violation {
            severity: Severity::Warning,
            ..Violation::error(pointer, rule, value, message_zh, message_en)
        }
    }

    /// True when this violation rejects the record.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{level} [{}] {}: {} / {}",
            self.rule, self.pointer, self.message_zh, self.message_en
        )?;
        if let Some(v) = &self.value {
            write!(f, " (value: {v:?})")?;
        }
        Ok(())
    }
}
