//! The error every validator reports, and how a value is quoted in its messages.

/// Why a value fails a technical standard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{rule}: {message_zh} / {message_en}")]
pub struct StandardError {
    /// Stable dotted rule id, e.g. `uscc.check_char`.
    pub rule: &'static str,
    /// 1-based character position in the normalised value, when one applies.
    pub position: Option<usize>,
    /// Message in Chinese.
    pub message_zh: String,
    /// Message in English.
    pub message_en: String,
}

impl StandardError {
    /// A new error for `rule`, optionally at a 1-based `position`.
    pub fn new(
        rule: &'static str,
        position: Option<usize>,
        message_zh: impl Into<String>,
        message_en: impl Into<String>,
    ) -> Self {
        StandardError {
            rule,
            position,
            message_zh: message_zh.into(),
            message_en: message_en.into(),
        }
    }

    /// This error as an error-level [`crate::Violation`] of the field at `pointer` holding `value`.
    pub fn to_violation(&self, pointer: &str, value: &str) -> crate::Violation {
        crate::Violation::error(
            pointer,
            self.rule,
            Some(value.to_string()),
            self.message_zh.clone(),
            self.message_en.clone(),
        )
    }
}

/// Longest value quoted verbatim in a message; longer values are cut and end in `…`.
const SHOWN_MAX_CHARS: usize = 40;

/// `value` as quoted in messages: cut to a readable length so that garbage input cannot flood a report.
pub(crate) fn shown(value: &str) -> String {
    match value.char_indices().nth(SHOWN_MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_string(),
    }
}
