//! Calendar dates as the standards and deadlines use them.

use chrono::{FixedOffset, NaiveDate, Utc};

/// Today's date in China Standard Time (UTC+8), the calendar day the standards and deadlines refer to.
pub fn today_in_china() -> NaiveDate {
    let now = Utc::now();
    match FixedOffset::east_opt(8 * 3600) {
        Some(cst) => now.with_timezone(&cst).date_naive(),
        None => now.date_naive(),
    }
}
