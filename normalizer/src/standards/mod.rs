//! Technical-standard validators: GB 32100 credit codes, GB 11714 organisation codes, GB 11643 ID
//! numbers, GB/T 2260 region codes, the unified case code (一案一码) and working days.
//!
//! Every validator normalises its input with [`normalise::normalise_identifier`] first and reports
//! a failure as a [`StandardError`] with a stable rule id (e.g. `uscc.check_char`), the 1-based
//! character position in the normalised value when one applies, and a message in Chinese and
//! English that a clerk can act on. Check characters are never "repaired".
#![warn(missing_docs)]

pub mod case_code;
pub mod credit_code;
pub mod id_number;
pub mod normalise;
pub mod region;
pub mod working_days;

pub use case_code::{case_code_check_char, CaseCode};
pub use credit_code::{org_code_check_char, uscc_check_char, CreditCode, OrgCode};
pub use id_number::{from_legacy15, id_check_char, ResidentId};
pub use normalise::{normalise_identifier, to_halfwidth};
pub use region::{validate_region_code, HistoricalRegion, Region, RegionDataError, RegionLevel, RegionTable};
pub use working_days::{HolidayCalendar, HolidayDataError, OutOfCalendar};

use chrono::{FixedOffset, NaiveDate, Utc};

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

/// Today's date in China Standard Time (UTC+8), the calendar day the standards and deadlines refer to.
pub fn today_in_china() -> NaiveDate {
    let now = Utc::now();
    match FixedOffset::east_opt(8 * 3600) {
        Some(cst) => now.with_timezone(&cst).date_naive(),
        None => now.date_naive(),
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
