//! When a pull source is pulled: every N seconds, or by a cron expression in China time.

use chrono::{DateTime, FixedOffset, Utc};
use std::str::FromStr;
use std::time::Duration;

/// A pull schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// A fixed pause between the end of one pull and the start of the next.
    Every(Duration),
    /// Cron fields `sec min hour day month weekday [year]`, evaluated in China time (UTC+8).
    Cron(Box<cron::Schedule>),
}

/// China Standard Time, the zone cron expressions are read in.
fn china() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero offset is valid"))
}

impl Schedule {
    /// Parse a source block's `cron` (if given) or use `poll_seconds`.
    pub fn from_config(cron: Option<&str>, poll_seconds: u64) -> Result<Schedule, String> {
        match cron {
            Some(expr) => cron::Schedule::from_str(expr)
                .map(|s| Schedule::Cron(Box::new(s)))
                .map_err(|e| {
                    format!(
                        "cron 表达式无效（秒 分 时 日 月 周）/ invalid cron expression {expr:?} \
                         (fields: sec min hour day month weekday): {e}"
                    )
                }),
            None if poll_seconds == 0 => Err("poll_seconds 应至少为 1 / poll_seconds must be at least 1".to_string()),
            None => Ok(Schedule::Every(Duration::from_secs(poll_seconds))),
        }
    }

    /// When the next pull is due, counted from `now` (the end of the previous pull).
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every(d) => chrono::Duration::from_std(*d).ok().map(|d| now + d),
            Schedule::Cron(s) => s
                .after(&now.with_timezone(&china()))
                .next()
                .map(|t| t.with_timezone(&Utc)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn interval_schedule_is_due_poll_seconds_after_the_last_pull() {
        let s = Schedule::from_config(None, 300).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 1, 0, 0).unwrap();
        assert_eq!(s.next_after(now), Some(now + chrono::Duration::seconds(300)));
    }

    #[test]
    fn cron_schedule_is_read_in_china_time() {
        // 02:30 every day in Beijing is 18:30 UTC the day before.
        let s = Schedule::from_config(Some("0 30 2 * * *"), 10).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap();
        assert_eq!(
            s.next_after(now),
            Some(Utc.with_ymd_and_hms(2026, 11, 27, 18, 30, 0).unwrap())
        );
    }

    #[test]
    fn bad_cron_expression_is_refused_with_the_field_order() {
        let e = Schedule::from_config(Some("every five minutes"), 10).unwrap_err();
        assert!(e.contains("sec min hour"), "{e}");
        assert!(Schedule::from_config(None, 0).is_err());
    }
}
