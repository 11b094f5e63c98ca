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
mod dates;
mod error;
pub mod id_number;
pub mod normalise;
pub mod region;
pub mod working_days;

pub use case_code::{case_code_check_char, CaseCode};
pub use credit_code::{org_code_check_char, uscc_check_char, CreditCode, OrgCode};
pub(crate) use dates::is_canonical_date;
pub use dates::{china_time_text, parse_iso_date, today_in_china};
pub(crate) use error::shown;
pub use error::StandardError;
pub use id_number::{
    find_identifiers, from_legacy15, id_check_char, identifier_kind, mask_id, mask_identifiers, FoundIdentifier,
    IdentifierKind, ResidentId,
};
pub use normalise::{normalise_identifier, to_halfwidth};
pub use region::{validate_region_code, HistoricalRegion, Region, RegionDataError, RegionLevel, RegionTable};
pub use working_days::{HolidayCalendar, HolidayDataError, OutOfCalendar};
