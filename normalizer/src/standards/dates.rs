//! Calendar dates as the standards and deadlines use them: today's date in China, and the
//! canonical `YYYY-MM-DD` form (RFC 3339 full-date) that canonical records write dates in.

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};

/// Today's date in China Standard Time (UTC+8), the calendar day the standards and deadlines refer to.
pub fn today_in_china() -> NaiveDate {
    let now = Utc::now();
    match FixedOffset::east_opt(8 * 3600) {
        Some(cst) => now.with_timezone(&cst).date_naive(),
        None => now.date_naive(),
    }
}

/// A time as operators read it: China time to the second, with its offset
/// (`2026-12-05 23:02:04+08:00`).
pub fn china_time_text(t: &DateTime<Utc>) -> String {
    match FixedOffset::east_opt(8 * 3600) {
        Some(china) => t.with_timezone(&china).format("%Y-%m-%d %H:%M:%S%:z").to_string(),
        None => t.to_rfc3339(),
    }
}

/// True when `text` is a real calendar day written as `YYYY-MM-DD` (four-digit year, two-digit
/// month and day, ASCII digits, nothing around them): the form of every date in a canonical
/// record. The mapping's date reader reads such text and writes it back unchanged.
pub(crate) fn is_canonical_date(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let mut n = [0u32; 8];
    for (slot, &c) in n.iter_mut().zip(b[..4].iter().chain(&b[5..7]).chain(&b[8..])) {
        if !c.is_ascii_digit() {
            return false;
        }
        *slot = u32::from(c - b'0');
    }
    let year = n[0] * 1000 + n[1] * 100 + n[2] * 10 + n[3];
    NaiveDate::from_ymd_opt(year as i32, n[4] * 10 + n[5], n[6] * 10 + n[7]).is_some()
}

/// `YYYY-MM-DD` as `NaiveDate::parse_from_str(s, "%Y-%m-%d")` reads it; the common canonical
/// form is decoded directly, anything else goes through chrono.
pub fn parse_iso_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        let digit = |i: usize| b[i].is_ascii_digit().then(|| u32::from(b[i] - b'0'));
        if let (Some(y0), Some(y1), Some(y2), Some(y3), Some(m0), Some(m1), Some(d0), Some(d1)) = (
            digit(0),
            digit(1),
            digit(2),
            digit(3),
            digit(5),
            digit(6),
            digit(8),
            digit(9),
        ) {
            let year = (((y0 * 10 + y1) * 10 + y2) * 10 + y3) as i32;
            return NaiveDate::from_ymd_opt(year, m0 * 10 + m1, d0 * 10 + d1);
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_dates_are_real_days_in_yyyy_mm_dd() {
        for s in ["2021-01-22", "0000-01-01", "2024-02-29", "9999-12-31"] {
            assert!(is_canonical_date(s), "{s}");
        }
        for s in [
            "2021-02-30",
            "2023-02-29",
            "2021-1-22",
            "2021/01/22",
            "２０２１-01-22",
            " 2021-01-22",
            "2021-00-10",
        ] {
            assert!(!is_canonical_date(s), "{s}");
        }
    }
}
