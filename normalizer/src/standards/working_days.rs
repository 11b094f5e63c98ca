//! Working days (工作日) in mainland China from the State Council holiday schedules, 2019-2026, and the
//! archiving deadline "15 working days after closure" (15个工作日内立卷、归档).
//!
//! A working day is Monday-Friday and not an official holiday, or a weekend day that is an official
//! make-up working day (调休上班). Periods are counted from the day after the start date (《民法典》
//! 第二百零一条), and dates outside the data are reported as [`OutOfCalendar`], never guessed.

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use std::sync::OnceLock;

const HOLIDAYS_CSV: &str = include_str!("../../data/cn-holidays.csv");

/// Working days an agency has to file and archive a closed case.
pub const ARCHIVE_WORKING_DAYS: u32 = 15;

/// A date (or a computation reaching a date) outside the years covered by the holiday data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "日期 {date} 超出节假日数据范围 {first}—{last}，无法计算工作日 / date {date} is outside the holiday calendar {first}..={last}; working days cannot be computed"
)]
pub struct OutOfCalendar {
    /// The first date that was needed but is not covered.
    pub date: NaiveDate,
    /// First covered date.
    pub first: NaiveDate,
    /// Last covered date.
    pub last: NaiveDate,
}

/// A row of the holiday data that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("节假日数据第{line}行格式错误 / holiday data line {line} is malformed: {reason}")]
pub struct HolidayDataError {
    /// 1-based line number in the CSV text.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// Official holidays and make-up working days for a range of whole years, with O(1) look-ups.
#[derive(Debug)]
pub struct HolidayCalendar {
    first: NaiveDate,
    last: NaiveDate,
    /// `cumulative[i]` = working days in `first ..= first + i days`.
    cumulative: Vec<u32>,
}

fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

impl HolidayCalendar {
    /// The calendar compiled into the binary (`data/cn-holidays.csv`, 2019-01-01..=2026-12-31).
    ///
    /// # Panics
    /// Only if the embedded data is malformed, which the crate's tests rule out for the shipped file.
    pub fn embedded() -> &'static HolidayCalendar {
        static CALENDAR: OnceLock<HolidayCalendar> = OnceLock::new();
        CALENDAR.get_or_init(|| {
            let (first, last) = match (
                NaiveDate::from_ymd_opt(2019, 1, 1),
                NaiveDate::from_ymd_opt(2026, 12, 31),
            ) {
                (Some(first), Some(last)) => (first, last),
                _ => panic!("invalid embedded calendar range"),
            };
            match HolidayCalendar::parse(HOLIDAYS_CSV, first, last) {
                Ok(calendar) => calendar,
                Err(e) => panic!("embedded holiday data is malformed: {e}"),
            }
        })
    }

    /// Build a calendar covering `first..=last` from CSV text `date,kind` (header line first; `kind` is
    /// `holiday` or `workday`). A `workday` must fall on a weekend; dates must lie in the range.
    pub fn parse(csv: &str, first: NaiveDate, last: NaiveDate) -> Result<HolidayCalendar, HolidayDataError> {
        let bad = |line: usize, reason: String| HolidayDataError { line, reason };
        let days = usize::try_from((last - first).num_days() + 1)
            .map_err(|_| bad(0, format!("empty range {first}..={last}")))?;
        let mut working: Vec<bool> = (0..days)
            .map(|i| !is_weekend(first + Duration::days(i as i64)))
            .collect();
        for (i, text) in csv.lines().enumerate().skip(1) {
            let line = i + 1;
            let text = text.trim_end_matches('\r');
            if text.is_empty() {
                continue;
            }
            let Some((date, kind)) = text.split_once(',') else {
                return Err(bad(line, format!("expected date,kind, found {text:?}")));
            };
            let date = NaiveDate::parse_from_str(date, "%Y-%m-%d")
                .map_err(|e| bad(line, format!("bad date {date:?}: {e}")))?;
            let slot = usize::try_from((date - first).num_days())
                .ok()
                .and_then(|i| working.get_mut(i))
                .ok_or_else(|| bad(line, format!("date {date} is outside {first}..={last}")))?;
            *slot = match kind {
                "holiday" => false,
                "workday" if is_weekend(date) => true,
                "workday" => return Err(bad(line, format!("make-up workday {date} is not a weekend day"))),
                other => return Err(bad(line, format!("unknown kind {other:?}"))),
            };
        }
        let mut cumulative = Vec::with_capacity(days);
        let mut count = 0u32;
        for w in working {
            count += u32::from(w);
            cumulative.push(count);
        }
        Ok(HolidayCalendar {
            first,
            last,
            cumulative,
        })
    }

    /// First covered date.
    pub fn first_date(&self) -> NaiveDate {
        self.first
    }

    /// Last covered date.
    pub fn last_date(&self) -> NaiveDate {
        self.last
    }

    /// True when the data covers `date`.
    pub fn covers(&self, date: NaiveDate) -> bool {
        self.first <= date && date <= self.last
    }

    fn out(&self, date: NaiveDate) -> OutOfCalendar {
        OutOfCalendar {
            date,
            first: self.first,
            last: self.last,
        }
    }

    /// Index of a covered date.
    fn index(&self, date: NaiveDate) -> Result<usize, OutOfCalendar> {
        if !self.covers(date) {
            return Err(self.out(date));
        }
        usize::try_from((date - self.first).num_days()).map_err(|_| self.out(date))
    }

    /// Working days in `first ..= date` for a covered `date`.
    fn count_to(&self, index: usize) -> u32 {
        self.cumulative.get(index).copied().unwrap_or(0)
    }

    /// True when `date` is a working day: Mon-Fri and not an official holiday, or an official make-up working day.
    pub fn is_working_day(&self, date: NaiveDate) -> Result<bool, OutOfCalendar> {
        let i = self.index(date)?;
        let before = if i == 0 { 0 } else { self.count_to(i - 1) };
        Ok(self.count_to(i) > before)
    }

    /// The `n`-th working day after `start`, counting from the day after `start` (`start` itself never
    /// counts, whether or not it is a working day); `n = 0` gives `start`. Errors when `start` or the
    /// result is outside the data.
    pub fn add_working_days(&self, start: NaiveDate, n: u32) -> Result<NaiveDate, OutOfCalendar> {
        let i = self.index(start)?;
        if n == 0 {
            return Ok(start);
        }
        let target = self.count_to(i).saturating_add(n);
        let j = self.cumulative.partition_point(|&c| c < target);
        if j >= self.cumulative.len() {
            return Err(self.out(self.last + Duration::days(1)));
        }
        Ok(self.first + Duration::days(j as i64))
    }

    /// The archiving deadline for a case closed on `closed`: the 15th working day after it (the deadline
    /// day itself is on time).
    pub fn archive_deadline(&self, closed: NaiveDate) -> Result<NaiveDate, OutOfCalendar> {
        self.add_working_days(closed, ARCHIVE_WORKING_DAYS)
    }

    /// Working days strictly after `from` up to and including `to` (0 when `to <= from`).
    pub fn working_days_between(&self, from: NaiveDate, to: NaiveDate) -> Result<u32, OutOfCalendar> {
        let i = self.index(from)?;
        let j = self.index(to)?;
        Ok(self.count_to(j).saturating_sub(self.count_to(i)))
    }
}
