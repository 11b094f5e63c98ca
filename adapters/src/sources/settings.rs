//! Reading `[sources.rest]` / `[sources.soap]` tables: the connection keys both kinds share
//! ([`ClientSettings`]), the incremental-pull keys both share ([`WatermarkSettings`]) and the
//! kind's own keys, each part checked as far as it parses so that one mistake does not hide
//! the others. Unknown keys are errors naming the key.

use super::contract::SourceError;
use crate::common::settings::{from_table, SettingsProblem};
use crate::http::client::{ClientSettings, CLIENT_KEYS};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, Offset as _, SecondsFormat, TimeZone, Utc};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

/// Keys of [`WatermarkSettings`].
pub const WATERMARK_KEYS: &[&str] = &[
    "watermark_path",
    "watermark_format",
    "since_format",
    "overlap_seconds",
    "utc_offset",
    "initial_since",
    "max_clock_skew_seconds",
    "watermark_ordered",
];

/// Incremental pulls: which field of a record says when it last changed, and how the `since`
/// value sent to the source is written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatermarkSettings {
    /// Dotted path of the last-changed time in each record (default none: every pull is full).
    pub watermark_path: Option<String>,
    /// How that time is written: `auto` (default: RFC 3339, `%Y-%m-%d %H:%M:%S`, a date, or epoch
    /// milliseconds/seconds by length), `rfc3339`, `epoch_millis`, `epoch_seconds`, or a
    /// chrono/strftime pattern such as `%Y-%m-%d %H:%M:%S`.
    #[serde(default = "default_auto")]
    pub watermark_format: String,
    /// How `since`/`until` are written in requests (default: the watermark format, or
    /// `%Y-%m-%d %H:%M:%S` when that is `auto`).
    pub since_format: Option<String>,
    /// Seconds taken off the stored cursor, to catch records updated late (default 300).
    #[serde(default = "default_overlap")]
    pub overlap_seconds: u64,
    /// Offset of times written without one, e.g. `+08:00` (default China time).
    #[serde(default = "default_offset")]
    pub utc_offset: String,
    /// `since` of the first pull and of a full resync (default none: no `since` is sent).
    pub initial_since: Option<String>,
    /// How far a record's watermark may lie beyond the run's start before it is taken for a
    /// wrong clock (default 300): such a record is pulled, flagged, and does not move the cursor.
    #[serde(default = "default_clock_skew")]
    pub max_clock_skew_seconds: u64,
    /// The source returns records oldest change first (sorted by the watermark): the cursor then
    /// moves with every page, so a backlog longer than `max_pages` is pulled over several runs
    /// (default false: the cursor moves at the end of a run only).
    #[serde(default)]
    pub watermark_ordered: bool,
}

fn default_auto() -> String {
    "auto".into()
}
fn default_overlap() -> u64 {
    300
}
fn default_clock_skew() -> u64 {
    300
}
fn default_offset() -> String {
    "+08:00".into()
}

/// A time format of [`WatermarkSettings`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeFormat {
    /// Several common forms, recognised by shape.
    Auto,
    /// RFC 3339.
    Rfc3339,
    /// Milliseconds since 1970 (a number or digits).
    EpochMillis,
    /// Seconds since 1970.
    EpochSeconds,
    /// A chrono pattern.
    Pattern(String),
}

impl TimeFormat {
    fn parse(text: &str) -> Result<TimeFormat, String> {
        Ok(match text {
            "auto" => TimeFormat::Auto,
            "rfc3339" => TimeFormat::Rfc3339,
            "epoch_millis" => TimeFormat::EpochMillis,
            "epoch_seconds" => TimeFormat::EpochSeconds,
            p if p.contains('%') => {
                let probe = Utc::now().format(p);
                let mut s = String::new();
                if std::fmt::write(&mut s, format_args!("{probe}")).is_err() {
                    return Err(format!("无效的时间格式 / invalid time pattern {p:?}"));
                }
                TimeFormat::Pattern(p.to_string())
            }
            other => {
                return Err(format!(
                    "时间格式应为 auto、rfc3339、epoch_millis、epoch_seconds 或含 % 的格式串 / time format must be auto, rfc3339, epoch_millis, epoch_seconds or a % pattern, got {other:?}"
                ))
            }
        })
    }
}

/// [`WatermarkSettings`], checked.
#[derive(Debug, Clone)]
pub struct Watermark {
    /// Dotted path in a record, when pulls are incremental.
    pub path: Option<String>,
    /// Format of the record's field.
    pub format: TimeFormat,
    /// Format of `since`/`until` in requests.
    pub since_format: TimeFormat,
    /// Overlap taken off the stored cursor.
    pub overlap: chrono::Duration,
    /// Offset of naive times.
    pub offset: FixedOffset,
    /// `since` of first pulls and full resyncs.
    pub initial_since: Option<DateTime<Utc>>,
    /// How far beyond the run's start a watermark may lie and still move the cursor.
    pub max_clock_skew: chrono::Duration,
    /// The source returns records sorted by the watermark: the cursor moves with every page.
    pub ordered: bool,
}

impl WatermarkSettings {
    /// Check; problems name their keys.
    pub fn resolve(&self) -> Result<Watermark, Vec<SettingsProblem>> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, message: String| {
            problems.push(SettingsProblem {
                key: key.into(),
                message,
            })
        };
        let format = TimeFormat::parse(&self.watermark_format).unwrap_or_else(|m| {
            problem("watermark_format", m);
            TimeFormat::Auto
        });
        let since_format = match &self.since_format {
            Some(f) => TimeFormat::parse(f).unwrap_or_else(|m| {
                problem("since_format", m);
                TimeFormat::Auto
            }),
            None if format == TimeFormat::Auto => TimeFormat::Pattern("%Y-%m-%d %H:%M:%S".into()),
            None => format.clone(),
        };
        if since_format == TimeFormat::Auto {
            problem(
                "since_format",
                "since_format 不能为 auto / since_format cannot be auto: name the form the source expects".into(),
            );
        }
        let offset = self.utc_offset.parse::<FixedOffset>().unwrap_or_else(|e| {
            problem(
                "utc_offset",
                format!("应形如 +08:00 / must look like +08:00, got {:?}: {e}", self.utc_offset),
            );
            FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix())
        });
        if self.max_clock_skew_seconds > 366 * 86_400 {
            problem("max_clock_skew_seconds", "应不超过一年 / must be at most a year".into());
        }
        if self.overlap_seconds > 366 * 86_400 {
            problem("overlap_seconds", "应不超过一年 / must be at most a year".into());
        }
        if matches!(&self.watermark_path, Some(p) if p.trim().is_empty()) {
            problem("watermark_path", "不能为空 / must not be empty".into());
        }
        let initial_since = match &self.initial_since {
            Some(text) => match parse_time(&Value::String(text.clone()), &TimeFormat::Auto, offset) {
                Some(t) => Some(t),
                None => {
                    problem(
                        "initial_since",
                        format!("无法识别的时间 / unreadable time {text:?} (e.g. \"2024-01-01 00:00:00\")"),
                    );
                    None
                }
            },
            None => None,
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Watermark {
            path: self.watermark_path.clone(),
            format,
            since_format,
            overlap: chrono::Duration::seconds(self.overlap_seconds as i64),
            offset,
            initial_since,
            max_clock_skew: chrono::Duration::seconds(self.max_clock_skew_seconds as i64),
            ordered: self.watermark_ordered,
        })
    }
}

fn naive_in(offset: FixedOffset, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    offset
        .from_local_datetime(&naive)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

fn from_epoch(n: i64, millis: bool) -> Option<DateTime<Utc>> {
    if millis {
        DateTime::from_timestamp_millis(n)
    } else {
        DateTime::from_timestamp(n, 0)
    }
}

/// A record's time in `format`; naive times are in `offset`. `None` when unreadable.
pub fn parse_time(value: &Value, format: &TimeFormat, offset: FixedOffset) -> Option<DateTime<Utc>> {
    let text = match value {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        // An XML element with attributes keeps its text under `#text`.
        Value::Object(m) => m.get("#text")?.as_str()?.trim().to_string(),
        _ => return None,
    };
    match format {
        TimeFormat::Rfc3339 => DateTime::parse_from_rfc3339(&text).ok().map(|t| t.with_timezone(&Utc)),
        TimeFormat::EpochMillis => from_epoch(text.parse().ok()?, true),
        TimeFormat::EpochSeconds => from_epoch(text.parse().ok()?, false),
        TimeFormat::Pattern(p) => {
            if let Ok(t) = DateTime::parse_from_str(&text, p) {
                return Some(t.with_timezone(&Utc));
            }
            if let Ok(n) = NaiveDateTime::parse_from_str(&text, p) {
                return naive_in(offset, n);
            }
            let d = NaiveDate::parse_from_str(&text, p).ok()?;
            naive_in(offset, d.and_hms_opt(0, 0, 0)?)
        }
        TimeFormat::Auto => {
            if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
                return match text.len() {
                    13 => from_epoch(text.parse().ok()?, true),
                    10 => from_epoch(text.parse().ok()?, false),
                    14 => naive_in(offset, NaiveDateTime::parse_from_str(&text, "%Y%m%d%H%M%S").ok()?),
                    8 => naive_in(
                        offset,
                        NaiveDate::parse_from_str(&text, "%Y%m%d").ok()?.and_hms_opt(0, 0, 0)?,
                    ),
                    _ => None,
                };
            }
            if let Ok(t) = DateTime::parse_from_rfc3339(&text) {
                return Some(t.with_timezone(&Utc));
            }
            for p in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y/%m/%d %H:%M:%S%.f"] {
                if let Ok(n) = NaiveDateTime::parse_from_str(&text, p) {
                    return naive_in(offset, n);
                }
            }
            for p in ["%Y-%m-%d", "%Y/%m/%d"] {
                if let Ok(d) = NaiveDate::parse_from_str(&text, p) {
                    return naive_in(offset, d.and_hms_opt(0, 0, 0)?);
                }
            }
            None
        }
    }
}

/// A time written as the source expects it (`format` is never `Auto` here).
pub fn format_time(t: DateTime<Utc>, format: &TimeFormat, offset: FixedOffset) -> String {
    let local = t.with_timezone(&offset);
    match format {
        TimeFormat::EpochMillis => t.timestamp_millis().to_string(),
        TimeFormat::EpochSeconds => t.timestamp().to_string(),
        TimeFormat::Rfc3339 | TimeFormat::Auto => local.to_rfc3339_opts(SecondsFormat::Secs, true),
        TimeFormat::Pattern(p) => local.format(p).to_string(),
    }
}

/// The cursor's stable text form: RFC 3339 in UTC with milliseconds.
pub fn cursor_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A stored cursor read back (its own form, or any form [`TimeFormat::Auto`] reads).
pub fn parse_cursor(text: &str, offset: FixedOffset) -> Option<DateTime<Utc>> {
    parse_time(&Value::String(text.to_string()), &TimeFormat::Auto, offset)
}

/// Where an incremental run stands: where it started and the newest change seen.
#[derive(Debug, Clone)]
pub struct Progress {
    /// The stored cursor (kept when nothing newer is seen).
    pub previous: Option<DateTime<Utc>>,
    /// The newest watermark seen in this run.
    pub newest: Option<DateTime<Utc>>,
    /// `since` sent to the source in this run.
    pub since: Option<DateTime<Utc>>,
    /// `until` sent to the source: when the run started.
    pub until: DateTime<Utc>,
    /// Records whose watermark could not be read.
    pub unreadable: u64,
    /// Records whose watermark lay beyond `until` plus the allowed clock skew (they did not
    /// move the cursor).
    pub in_future: u64,
    /// A record's watermark was older than one seen before it in this run: the source does not
    /// return records in watermark order after all.
    pub out_of_order: bool,
}

impl Progress {
    /// Start a run from the stored `cursor`. A full resync starts from `initial_since`.
    pub fn start(watermark: &Watermark, cursor: Option<&str>, full: bool) -> Result<Progress, SourceError> {
        let previous = match cursor {
            Some(c) if watermark.path.is_some() => Some(parse_cursor(c, watermark.offset).ok_or_else(|| {
                SourceError::Settings(format!(
                    "保存的游标无法识别 / the stored cursor {c:?} is not a time: run a full resync"
                ))
            })?),
            _ => None,
        };
        let until = Utc::now();
        // A cursor stored beyond now (by a version that let a wrong clock move it) would skip
        // every change until then: the run starts over from `initial_since` instead.
        let previous = match previous {
            Some(p) if p > until + watermark.max_clock_skew => {
                tracing::warn!(cursor = %cursor_text(p),
                    "the stored cursor lies in the future: this run pulls from initial_since again");
                None
            }
            p => p,
        };
        let since = match (full, previous) {
            (false, Some(p)) => Some(p - watermark.overlap),
            _ => watermark.initial_since,
        };
        Ok(Progress {
            previous,
            newest: None,
            since,
            until,
            unreadable: 0,
            in_future: 0,
            out_of_order: false,
        })
    }

    /// Note a record's watermark value. A watermark beyond the run's start plus the allowed
    /// clock skew (a wrong clock at the source, a mistyped date) does not move the cursor: its
    /// time is returned, for the record to be flagged.
    pub fn see(
        &mut self,
        watermark: &Watermark,
        record: &Value,
        lookup: impl Fn(&Value, &str) -> Option<Value>,
    ) -> Option<DateTime<Utc>> {
        let path = watermark.path.as_ref()?;
        match lookup(record, path).and_then(|v| parse_time(&v, &watermark.format, watermark.offset)) {
            Some(t) if t > self.until + watermark.max_clock_skew => {
                self.in_future += 1;
                return Some(t);
            }
            Some(t) => {
                if self.newest.is_some_and(|n| t < n) {
                    self.out_of_order = true;
                }
                self.newest = Some(self.newest.map_or(t, |n| n.max(t)));
            }
            None => self.unreadable += 1,
        }
        None
    }

    /// The cursor to persist after a page that is not the run's last: the cursor so far when
    /// the source returns records in watermark order (every record up to it has been seen, the
    /// overlap of the next run catches those of the same time), else none.
    pub fn page_cursor(&self, watermark: &Watermark) -> Option<String> {
        (watermark.ordered && !self.out_of_order)
            .then(|| self.cursor())
            .flatten()
    }

    /// Whether this run may end at `max_pages` without failing: its cursor has moved with every
    /// page, so the next run continues where this one stopped.
    pub fn resumable(&self, watermark: &Watermark) -> bool {
        watermark.ordered && !self.out_of_order && self.newest.is_some()
    }

    /// The cursor to persist at the end of the run: the newest of the stored cursor and the
    /// watermarks seen, in its stable form; `None` for sources without a watermark.
    pub fn cursor(&self) -> Option<String> {
        match (self.previous, self.newest) {
            (Some(p), Some(n)) => Some(cursor_text(p.max(n))),
            (p, n) => p.or(n).map(cursor_text),
        }
    }
}

/// A kind table split into its three parts, each parsed as far as it goes.
pub struct Parts<T> {
    /// Connection keys.
    pub client: Result<ClientSettings, SettingsProblem>,
    /// Incremental-pull keys.
    pub watermark: Result<WatermarkSettings, SettingsProblem>,
    /// The kind's own keys.
    pub own: Result<T, SettingsProblem>,
}

/// Split and parse a kind table.
pub fn split<T: DeserializeOwned>(table: &toml::Table) -> Parts<T> {
    let mut own = table.clone();
    let mut client = toml::Table::new();
    let mut watermark = toml::Table::new();
    for key in CLIENT_KEYS {
        if let Some(v) = own.remove(*key) {
            client.insert((*key).to_string(), v);
        }
    }
    for key in WATERMARK_KEYS {
        if let Some(v) = own.remove(*key) {
            watermark.insert((*key).to_string(), v);
        }
    }
    let hint = format!(
        "connection keys: {}; incremental keys: {}",
        CLIENT_KEYS.join(", "),
        WATERMARK_KEYS.join(", ")
    );
    Parts {
        client: from_table(client, ""),
        watermark: from_table(watermark, ""),
        own: from_table(own, &hint),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cst() -> FixedOffset {
        FixedOffset::east_opt(8 * 3600).unwrap()
    }

    #[test]
    fn record_times_are_read_in_every_supported_form() {
        let expected = Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap();
        let pattern = TimeFormat::Pattern("%Y-%m-%d %H:%M:%S".into());
        assert_eq!(
            parse_time(&json!("2024-05-01 08:00:00"), &pattern, cst()),
            Some(expected)
        );
        assert_eq!(
            parse_time(&json!("2024-05-01T08:00:00+08:00"), &TimeFormat::Rfc3339, cst()),
            Some(expected)
        );
        let millis = expected.timestamp_millis();
        assert_eq!(
            parse_time(&json!(millis), &TimeFormat::EpochMillis, cst()),
            Some(expected)
        );
        for auto in [
            json!("2024-05-01 08:00:00"),
            json!("2024-05-01T00:00:00Z"),
            json!(millis),
            json!(millis.to_string()),
            json!("20240501080000"),
            json!({"@tz": "cst", "#text": "2024-05-01 08:00:00.000"}),
        ] {
            assert_eq!(parse_time(&auto, &TimeFormat::Auto, cst()), Some(expected), "{auto}");
        }
        assert_eq!(parse_time(&json!("yesterday"), &TimeFormat::Auto, cst()), None);
        assert_eq!(parse_time(&json!(null), &TimeFormat::Auto, cst()), None);
    }

    #[test]
    fn since_is_written_as_the_source_expects_and_the_cursor_is_stable() {
        let t = Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap();
        assert_eq!(
            format_time(t, &TimeFormat::Pattern("%Y-%m-%d %H:%M:%S".into()), cst()),
            "2024-05-01 08:00:00"
        );
        assert_eq!(format_time(t, &TimeFormat::Rfc3339, cst()), "2024-05-01T08:00:00+08:00");
        assert_eq!(format_time(t, &TimeFormat::EpochMillis, cst()), "1714521600000");
        assert_eq!(cursor_text(t), "2024-05-01T00:00:00.000Z");
        assert_eq!(parse_cursor("2024-05-01T00:00:00.000Z", cst()), Some(t));
    }

    #[test]
    fn a_watermark_beyond_now_plus_the_skew_is_flagged_and_never_moves_the_cursor() {
        let settings: WatermarkSettings =
            toml::from_str("watermark_path = \"gxsj\"\nmax_clock_skew_seconds = 60").unwrap();
        let w = settings.resolve().unwrap();
        let mut p = Progress::start(&w, Some("2024-05-01T00:00:00.000Z"), false).unwrap();
        let lookup = |v: &Value, path: &str| crate::common::json_path::json_at(v, path).cloned();
        let future = p.see(&w, &json!({"gxsj": "2099-01-01 00:00:00"}), lookup);
        assert_eq!(future.map(cursor_text).as_deref(), Some("2098-12-31T16:00:00.000Z"));
        let soon = (p.until + chrono::Duration::seconds(30)).with_timezone(&cst());
        assert_eq!(
            p.see(
                &w,
                &json!({"gxsj": soon.format("%Y-%m-%d %H:%M:%S").to_string()}),
                lookup
            ),
            None,
            "within the allowed skew"
        );
        assert_eq!(p.in_future, 1);
        let cursor = p.cursor().expect("cursor");
        assert!(
            cursor.as_str() <= cursor_text(p.until + w.max_clock_skew).as_str(),
            "{cursor}"
        );
        // A stored cursor in the future (left by an earlier version) is not trusted.
        let again = Progress::start(&w, Some("2099-01-01T00:00:00.000Z"), false).unwrap();
        assert_eq!(again.previous, None);
        assert_eq!(again.since, w.initial_since);
    }

    #[test]
    fn an_ordered_source_hands_out_a_cursor_with_every_page_until_it_goes_back_in_time() {
        let ordered: WatermarkSettings = toml::from_str("watermark_path = \"gxsj\"\nwatermark_ordered = true").unwrap();
        let w = ordered.resolve().unwrap();
        let lookup = |v: &Value, path: &str| crate::common::json_path::json_at(v, path).cloned();
        let mut p = Progress::start(&w, None, false).unwrap();
        assert!(!p.resumable(&w), "nothing seen yet");
        p.see(&w, &json!({"gxsj": "2024-05-01 08:00:00"}), lookup);
        assert_eq!(p.page_cursor(&w).as_deref(), Some("2024-05-01T00:00:00.000Z"));
        assert!(p.resumable(&w));
        p.see(&w, &json!({"gxsj": "2024-05-01 07:00:00"}), lookup);
        assert!(p.out_of_order);
        assert_eq!(
            p.page_cursor(&w),
            None,
            "out of order: the cursor waits for the end of the run"
        );
        assert!(!p.resumable(&w));
        let unordered = WatermarkSettings {
            watermark_ordered: false,
            ..ordered
        }
        .resolve()
        .unwrap();
        let mut p = Progress::start(&unordered, None, false).unwrap();
        p.see(&unordered, &json!({"gxsj": "2024-05-01 08:00:00"}), lookup);
        assert_eq!(p.page_cursor(&unordered), None);
    }

    #[test]
    fn progress_keeps_the_newest_of_cursor_and_records_and_applies_the_overlap() {
        let settings: WatermarkSettings = toml::from_str("watermark_path = \"gxsj\"\noverlap_seconds = 60").unwrap();
        let w = settings.resolve().unwrap();
        let mut p = Progress::start(&w, Some("2024-05-01T00:00:00.000Z"), false).unwrap();
        assert_eq!(p.since.map(cursor_text).as_deref(), Some("2024-04-30T23:59:00.000Z"));
        let lookup = |v: &Value, path: &str| crate::common::json_path::json_at(v, path).cloned();
        p.see(&w, &json!({"gxsj": "2024-05-01 07:59:30"}), lookup);
        assert_eq!(
            p.cursor().as_deref(),
            Some("2024-05-01T00:00:00.000Z"),
            "never moves back"
        );
        p.see(&w, &json!({"gxsj": "2024-05-02 08:00:00"}), lookup);
        p.see(&w, &json!({"gxsj": "bad"}), lookup);
        assert_eq!(p.cursor().as_deref(), Some("2024-05-02T00:00:00.000Z"));
        assert_eq!(p.unreadable, 1);
        let full = Progress::start(&w, Some("2024-05-01T00:00:00.000Z"), true).unwrap();
        assert_eq!(full.since, None);
        assert!(Progress::start(&w, Some("garbage"), false).is_err());
        let none = WatermarkSettings {
            watermark_path: None,
            ..settings
        };
        let p = Progress::start(&none.resolve().unwrap(), Some("x"), false).unwrap();
        assert_eq!(p.cursor(), None);
    }

    #[test]
    fn watermark_problems_name_their_keys() {
        let s: WatermarkSettings =
            toml::from_str("watermark_format = \"unix\"\nutc_offset = \"CST\"\ninitial_since = \"soon\"").unwrap();
        let keys: Vec<String> = s.resolve().unwrap_err().into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["watermark_format", "utc_offset", "initial_since"]);
        let s: WatermarkSettings = toml::from_str("since_format = \"auto\"").unwrap();
        assert_eq!(s.resolve().unwrap_err()[0].key, "since_format");
    }
}
