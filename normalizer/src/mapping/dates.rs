//! Dates and times in every layout legacy systems use, read as Asia/Shanghai (UTC+8, no DST
//! since 1991): `2021-01-22`, `2021/1/22`, `2021.1.22`, `20210122`, `2021年1月22日`,
//! `2021-01-22 08:30:00`, `2021-01-22T08:30:00`, with `Z` or an offset, epoch milliseconds
//! (13 digits) and epoch seconds (10 digits).

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike};
use std::borrow::Cow;

/// Seconds east of UTC of Asia/Shanghai.
const SHANGHAI_SECS: i32 = 8 * 3600;

fn shanghai() -> FixedOffset {
    FixedOffset::east_opt(SHANGHAI_SECS).expect("UTC+8 is a valid offset")
}

/// A local date-time in Asia/Shanghai.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LocalTime(pub NaiveDateTime);

impl LocalTime {
    /// `YYYY-MM-DD`.
    pub fn date_string(&self) -> String {
        let mut s = String::with_capacity(25);
        self.push_date(&mut s);
        s
    }

    fn push_date(&self, s: &mut String) {
        let d = self.0.date();
        push_padded(s, d.year().max(0) as u32, 4);
        s.push('-');
        push_padded(s, d.month(), 2);
        s.push('-');
        push_padded(s, d.day(), 2);
    }

    /// RFC 3339 with `+08:00`; milliseconds only when not zero.
    pub fn datetime_string(&self) -> String {
        let t = self.0;
        let mut s = String::with_capacity(29);
        self.push_date(&mut s);
        s.push('T');
        push_padded(&mut s, t.hour(), 2);
        s.push(':');
        push_padded(&mut s, t.minute(), 2);
        s.push(':');
        push_padded(&mut s, t.second(), 2);
        let ms = t.nanosecond() / 1_000_000;
        if ms != 0 {
            s.push('.');
            push_padded(&mut s, ms, 3);
        }
        s.push_str("+08:00");
        s
    }
}

/// Append `n` in decimal, zero-padded to `width` digits.
fn push_padded(s: &mut String, n: u32, width: usize) {
    let mut buf = [b'0'; 10];
    let mut i = buf.len();
    let mut n = n;
    while n > 0 && i > 0 {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    let start = i.min(buf.len() - width);
    s.extend(buf[start..].iter().map(|&b| char::from(b)));
}

fn from_epoch(secs: i64, nanos: u32) -> Option<LocalTime> {
    let utc = DateTime::from_timestamp(secs, nanos)?;
    Some(LocalTime(utc.with_timezone(&shanghai()).naive_local()))
}

fn with_offset(local: NaiveDateTime, offset_secs: i32) -> Option<LocalTime> {
    let off = FixedOffset::east_opt(offset_secs)?;
    let dt = off.from_local_datetime(&local).single()?;
    Some(LocalTime(dt.with_timezone(&shanghai()).naive_local()))
}

/// A compiled custom date format (`format = "%d/%m/%Y"`).
#[derive(Debug, Clone)]
pub(crate) struct DateFormat(Box<str>);

impl DateFormat {
    /// Check a strftime format at load time.
    pub fn compile(fmt: &str) -> Result<DateFormat, String> {
        if fmt.is_empty() {
            return Err("empty format".into());
        }
        if StrftimeItems::new(fmt).any(|i| matches!(i, Item::Error)) {
            return Err(format!("invalid strftime format {fmt:?}"));
        }
        Ok(DateFormat(fmt.into()))
    }

    fn parse(&self, s: &str) -> Option<LocalTime> {
        let fmt = &*self.0;
        if let Ok(dt) = DateTime::parse_from_str(s, fmt) {
            return Some(LocalTime(dt.with_timezone(&shanghai()).naive_local()));
        }
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(LocalTime(dt));
        }
        NaiveDate::parse_from_str(s, fmt)
            .ok()
            .map(|d| LocalTime(d.and_time(NaiveTime::MIN)))
    }
}

/// Read text as a Shanghai local date-time (see the module docs for the layouts).
pub(crate) fn parse_text(text: &str, format: Option<&DateFormat>) -> Option<LocalTime> {
    let half: Cow<'_, str> = super::convert::halfwidth(text);
    let s = super::convert::trim(&half);
    if let Some(f) = format {
        return f.parse(s);
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return parse_digits(s);
    }
    parse_layout(s)
}

fn num(s: &str) -> Option<u32> {
    s.parse().ok()
}

/// All-digit forms: `YYYYMMDD`, `YYYYMMDDhhmm`, `YYYYMMDDhhmmss`, epoch seconds (10) and
/// milliseconds (13).
fn parse_digits(s: &str) -> Option<LocalTime> {
    match s.len() {
        8 | 12 | 14 => {
            let date = NaiveDate::from_ymd_opt(num(&s[0..4])? as i32, num(&s[4..6])?, num(&s[6..8])?)?;
            let (h, m, sec) = match s.len() {
                8 => (0, 0, 0),
                12 => (num(&s[8..10])?, num(&s[10..12])?, 0),
                _ => (num(&s[8..10])?, num(&s[10..12])?, num(&s[12..14])?),
            };
            Some(LocalTime(date.and_hms_opt(h, m, sec)?))
        }
        10 => from_epoch(s.parse().ok()?, 0),
        13 => {
            let ms: i64 = s.parse().ok()?;
            from_epoch(ms.div_euclid(1000), (ms.rem_euclid(1000) as u32) * 1_000_000)
        }
        _ => None,
    }
}

/// A tiny cursor over the text.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn digits(&mut self, min: usize, max: usize) -> Option<u32> {
        let rest = &self.s[self.pos..];
        let n = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if n < min || n > max {
            return None;
        }
        self.pos += n;
        rest[..n].parse().ok()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.s[self.pos..].starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    fn done(&self) -> bool {
        self.pos == self.s.len()
    }
}

/// `Y-M-D`, `Y/M/D`, `Y.M.D`, `Y年M月D日` with an optional time (`h:m[:s[.f]]` or `h时m分[s秒]`,
/// after a space or `T`) and an optional zone (`Z`, `+08:00`, `+0800`, `+08`).
fn parse_layout(s: &str) -> Option<LocalTime> {
    let mut c = Cursor { s, pos: 0 };
    let year = c.digits(4, 4)?;
    let sep = c.peek()?;
    if !matches!(sep, '-' | '/' | '.' | '年') {
        return None;
    }
    c.eat(sep);
    let month = c.digits(1, 2)?;
    let chinese = sep == '年';
    if !c.eat(if chinese { '月' } else { sep }) {
        return None;
    }
    let day = c.digits(1, 2)?;
    if chinese && !c.eat('日') {
        c.eat('号');
    }
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)?;
    if c.done() {
        return Some(LocalTime(date.and_time(NaiveTime::MIN)));
    }
    // Separator between date and time.
    let had_t = c.eat('T');
    if !had_t {
        let before = c.pos;
        while c.eat(' ') {}
        if c.pos == before && !chinese {
            return None;
        }
    }
    let hour = c.digits(1, 2)?;
    let (minute, second, nanos) = if c.eat(':') {
        let minute = c.digits(2, 2)?;
        let (second, nanos) = if c.eat(':') {
            let second = c.digits(2, 2)?;
            let nanos = if c.eat('.') || c.eat(',') {
                let start = c.pos;
                c.digits(1, 9)?;
                let frac = &s[start..c.pos];
                let scaled: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
                scaled.parse().ok()?
            } else {
                0
            };
            (second, nanos)
        } else {
            (0, 0)
        };
        (minute, second, nanos)
    } else if c.eat('时') || c.eat('点') {
        let minute = if c.done() { 0 } else { c.digits(1, 2)? };
        if minute != 0 || !c.done() {
            c.eat('分');
        }
        let second = if c.done() {
            0
        } else {
            let s = c.digits(1, 2)?;
            c.eat('秒');
            s
        };
        (minute, second, 0)
    } else {
        return None;
    };
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    let local = date.and_time(time);
    while c.eat(' ') {}
    if c.done() {
        return Some(LocalTime(local));
    }
    if c.eat('Z') || c.eat('z') {
        return if c.done() { with_offset(local, 0) } else { None };
    }
    let sign = match c.peek()? {
        '+' => 1,
        '-' => -1,
        _ => return None,
    };
    c.pos += 1;
    let rest = c.rest();
    let (oh, om) = match rest.len() {
        2 => (num(rest)?, 0),
        4 if rest.bytes().all(|b| b.is_ascii_digit()) => (num(&rest[..2])?, num(&rest[2..])?),
        5 if rest.as_bytes()[2] == b':' => (num(&rest[..2])?, num(&rest[3..])?),
        _ => return None,
    };
    if oh > 14 || om > 59 {
        return None;
    }
    with_offset(local, sign * (oh * 3600 + om * 60) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standards::is_canonical_date;

    fn date(s: &str) -> Option<String> {
        parse_text(s, None).map(|t| t.date_string())
    }

    fn datetime(s: &str) -> Option<String> {
        parse_text(s, None).map(|t| t.datetime_string())
    }

    #[test]
    fn layouts() {
        for s in [
            "2021-01-22",
            "2021/1/22",
            "2021.1.22",
            "20210122",
            "2021年1月22日",
            "2021年01月22号",
            "２０２１－０１－２２",
        ] {
            assert_eq!(date(s).as_deref(), Some("2021-01-22"), "{s}");
        }
        assert_eq!(
            datetime("2021-01-22 08:30:00").as_deref(),
            Some("2021-01-22T08:30:00+08:00")
        );
        assert_eq!(
            datetime("2021-01-22T08:30").as_deref(),
            Some("2021-01-22T08:30:00+08:00")
        );
        assert_eq!(
            datetime("2021-01-22 08:30:00.0").as_deref(),
            Some("2021-01-22T08:30:00+08:00")
        );
        assert_eq!(
            datetime("2021-01-21T16:30:00Z").as_deref(),
            Some("2021-01-22T00:30:00+08:00")
        );
        assert_eq!(
            datetime("2021-01-22T08:30:00+0800").as_deref(),
            Some("2021-01-22T08:30:00+08:00")
        );
        assert_eq!(
            datetime("2021年1月22日 8时30分").as_deref(),
            Some("2021-01-22T08:30:00+08:00")
        );
        assert_eq!(datetime("20210122083000").as_deref(), Some("2021-01-22T08:30:00+08:00"));
        assert_eq!(datetime("1611275400000").as_deref(), Some("2021-01-22T08:30:00+08:00"));
        assert_eq!(datetime("1611275400").as_deref(), Some("2021-01-22T08:30:00+08:00"));
        assert_eq!(
            datetime("1611275400123").as_deref(),
            Some("2021-01-22T08:30:00.123+08:00")
        );
    }

    #[test]
    fn canonical_dates_read_back_unchanged() {
        for s in ["2021-01-22", "0000-01-01", "2024-02-29", "9999-12-31"] {
            assert!(is_canonical_date(s), "{s}");
            assert_eq!(date(s).as_deref(), Some(s));
        }
    }

    #[test]
    fn nonsense_is_rejected() {
        for s in [
            "",
            "2021-13-01",
            "2021-02-30",
            "2021-1/22",
            "21-01-22",
            "2021-01-22x",
            "2021-01-22 25:00",
            "123",
            "2021年1月",
            "2021-01-22T08:30:00+25:00",
        ] {
            assert_eq!(date(s), None, "{s}");
        }
    }

    #[test]
    fn custom_format() {
        let f = DateFormat::compile("%d/%m/%Y").unwrap();
        assert_eq!(
            parse_text("22/01/2021", Some(&f)).map(|t| t.date_string()).as_deref(),
            Some("2021-01-22")
        );
        assert!(DateFormat::compile("%Q").is_err());
    }
}
