//! `[reconciliation]`, `[sources.reconcile]`, `[alerts]` and `[[alert_webhooks]]`: reconciling
//! each source against what it says it holds (对账), cases left off the platform, and alerts
//! (告警) with their webhooks.

use adapters::common::secret::{Secret, SecretSource};
use adapters::http::client::{ClientSettings, CLIENT_KEYS};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `[reconciliation]`: how often sources are asked, and when a case counts as off the platform.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ReconciliationConfig {
    /// Minutes between two rounds of count queries (default 60).
    #[serde(default = "default_check_minutes")]
    pub check_minutes: u64,
    /// Earlier days asked again in each round besides today (default 1: yesterday too, so a
    /// day's last records are reconciled after midnight).
    #[serde(default = "default_days_back")]
    pub days_back: u32,
    /// A delivery neither delivered nor superseded this many hours after it was queued counts as
    /// a case off the platform (default 24).
    #[serde(default = "default_delivery_overdue")]
    pub delivery_overdue_hours: f64,
    /// An open quarantine entry (a record without a unified code) this many hours old counts as a
    /// case off the platform (default 72).
    #[serde(default = "default_quarantine_overdue")]
    pub quarantine_overdue_hours: f64,
}

fn default_check_minutes() -> u64 {
    60
}
fn default_days_back() -> u32 {
    1
}
fn default_delivery_overdue() -> f64 {
    24.0
}
fn default_quarantine_overdue() -> f64 {
    72.0
}

impl Default for ReconciliationConfig {
    fn default() -> Self {
        ReconciliationConfig {
            check_minutes: default_check_minutes(),
            days_back: default_days_back(),
            delivery_overdue_hours: default_delivery_overdue(),
            quarantine_overdue_hours: default_quarantine_overdue(),
        }
    }
}

impl ReconciliationConfig {
    /// Problems of the table: (place, message).
    pub fn check(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if self.check_minutes == 0 {
            problems.push((
                "reconciliation.check_minutes".into(),
                "应至少为 1 / must be at least 1".into(),
            ));
        }
        if self.days_back > 31 {
            problems.push((
                "reconciliation.days_back".into(),
                format!("应在 0..31 / must be 0..31, got {}", self.days_back),
            ));
        }
        for (key, v) in [
            ("delivery_overdue_hours", self.delivery_overdue_hours),
            ("quarantine_overdue_hours", self.quarantine_overdue_hours),
        ] {
            if !(v.is_finite() && v > 0.0) {
                problems.push((
                    format!("reconciliation.{key}"),
                    format!("应为正数 / must be a positive number of hours, got {v}"),
                ));
            }
        }
        problems
    }
}

/// `[sources.reconcile]`: a source's count query. The connection keys (`timeout_seconds`,
/// `auth`, `headers`, ...) of the source's `[sources.rest]` / `[sources.soap]` table are used
/// unless this table gives its own.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ReconcileSettings {
    /// The count query's URL; `{day}` is replaced with the day (`2025-03-01`), `{day_compact}`
    /// with `20250301`.
    pub url: String,
    /// `GET` (default) or `POST` (JSON body `body`, with the same placeholders).
    #[serde(default = "default_method")]
    pub method: String,
    /// POST: the JSON body template.
    pub body: Option<String>,
    /// Dotted JSON path of the count in the answer (default `total`).
    #[serde(default = "default_count_path")]
    pub count_path: String,
    /// Dotted JSON path of the list of the day's record keys (strings or numbers, or objects
    /// whose `key_field` is the key): the keys the gateway never received are named.
    pub keys_path: Option<String>,
    /// With `keys_path` listing objects: the field holding the key.
    pub key_field: Option<String>,
}

fn default_method() -> String {
    "GET".into()
}
fn default_count_path() -> String {
    "total".into()
}

/// The keys of `[sources.reconcile]` that are the reconcile table's own (the rest are
/// connection keys).
pub const RECONCILE_KEYS: &[&str] = &["url", "method", "body", "count_path", "keys_path", "key_field"];

impl ReconcileSettings {
    /// The URL (or body) for `day` (YYYY-MM-DD).
    pub fn fill(template: &str, day: &str) -> String {
        template
            .replace("{day_compact}", &day.replace('-', ""))
            .replace("{day}", day)
    }

    /// Problems of the table (`place` is its place, e.g. `sources[2].reconcile`).
    pub fn check(&self, place: &str) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let probe = ReconcileSettings::fill(&self.url, "2025-01-01");
        match reqwest::Url::parse(&probe) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            Ok(u) => problems.push((
                format!("{place}.url"),
                format!("应为 http(s) 地址 / must be http or https, got {}:", u.scheme()),
            )),
            Err(e) => problems.push((format!("{place}.url"), format!("无效的 URL / invalid URL: {e}"))),
        }
        if !matches!(self.method.as_str(), "GET" | "POST") {
            problems.push((
                format!("{place}.method"),
                format!("应为 GET 或 POST / must be GET or POST, got {:?}", self.method),
            ));
        }
        if let Some(body) = &self.body {
            if serde_json::from_str::<serde_json::Value>(&ReconcileSettings::fill(body, "2025-01-01")).is_err() {
                problems.push((
                    format!("{place}.body"),
                    "填入日期后应为 JSON / must be JSON once the day is filled in".into(),
                ));
            }
        }
        if self.count_path.is_empty() {
            problems.push((format!("{place}.count_path"), "不能为空 / must not be empty".into()));
        }
        if self.key_field.is_some() && self.keys_path.is_none() {
            problems.push((format!("{place}.key_field"), "需要 keys_path / needs keys_path".into()));
        }
        problems
    }
}

/// A source's `[sources.reconcile]` table read: its own keys, and the connection keys of the
/// source's `rest` / `soap` table (`kind_table`) with those the reconcile table gives instead.
pub fn reconcile_parts(
    reconcile: &toml::Table,
    kind_table: Option<&toml::Table>,
    place: &str,
    base: &Path,
) -> Result<(ReconcileSettings, ClientSettings), Vec<(String, String)>> {
    let mut own = toml::Table::new();
    let mut client = toml::Table::new();
    if let Some(kind) = kind_table {
        for key in CLIENT_KEYS {
            if let Some(v) = kind.get(*key) {
                client.insert((*key).to_string(), v.clone());
            }
        }
    }
    for (k, v) in reconcile {
        if CLIENT_KEYS.contains(&k.as_str()) {
            client.insert(k.clone(), v.clone());
        } else {
            own.insert(k.clone(), v.clone());
        }
    }
    let mut problems = Vec::new();
    let settings = toml::Value::Table(own)
        .try_into::<ReconcileSettings>()
        .map_err(|e| {
            problems.push((
                place.to_string(),
                format!(
                    "{} (keys: {}; connection keys: {})",
                    e.message(),
                    RECONCILE_KEYS.join(", "),
                    CLIENT_KEYS.join(", ")
                ),
            ))
        })
        .ok();
    let client = toml::Value::Table(client)
        .try_into::<ClientSettings>()
        .map_err(|e| problems.push((place.to_string(), e.message().to_string())))
        .ok();
    if let Some(s) = &settings {
        problems.extend(s.check(place));
    }
    if let Some(c) = &client {
        problems.extend(c.check(base).into_iter().map(|p| {
            let key = if p.key.is_empty() {
                place.to_string()
            } else {
                format!("{place}.{}", p.key)
            };
            (key, p.message)
        }));
    }
    match (settings, client) {
        (Some(s), Some(c)) if problems.is_empty() => Ok((s, c)),
        _ => Err(problems),
    }
}

/// `[alerts]`: the rules and their thresholds. A threshold of 0 turns its rule off.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Whether alerts are evaluated at all (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Seconds between evaluations (default 30).
    #[serde(default = "default_evaluate_seconds")]
    pub evaluate_seconds: u64,
    /// A firing alert is sent again after this many minutes (default 240; 0: never).
    #[serde(default = "default_repeat_minutes")]
    pub repeat_minutes: u64,
    /// `source_failing`: a source whose runs (or connection) have failed for this many minutes
    /// (default 10).
    #[serde(default = "default_failing_minutes")]
    pub source_failing_minutes: f64,
    /// `source_stalled`: a pulled source without a successful pull for this many minutes, or
    /// stopped at `max_pages` (default 120).
    #[serde(default = "default_stalled_minutes")]
    pub source_stalled_minutes: f64,
    /// `quarantine_rate`: a source whose records in the window were quarantined at this rate or
    /// more, percent (default 20).
    #[serde(default = "default_quarantine_percent")]
    pub quarantine_rate_percent: f64,
    /// The quarantine rate's window, minutes (default 60).
    #[serde(default = "default_window_minutes")]
    pub quarantine_window_minutes: u64,
    /// Fewer records than this in the window are no rate (default 20).
    #[serde(default = "default_min_records")]
    pub quarantine_min_records: i64,
    /// `dead_deliveries`: a sink with at least this many dead deliveries (default 1).
    #[serde(default = "default_dead")]
    pub dead_deliveries: i64,
    /// `reconciliation_gap`: a source and day whose reconciliation shows a gap (default true).
    #[serde(default = "default_true")]
    pub reconciliation_gap: bool,
    /// `off_platform`: a department with cases off the platform (default true).
    #[serde(default = "default_true")]
    pub off_platform: bool,
    /// `certificate_expiring`: a certificate (the API's TLS certificate, CA files, these
    /// `certificates`) expiring within this many days (default 14).
    #[serde(default = "default_expiry_days")]
    pub expiry_days: i64,
    /// More PEM certificate files to watch (relative to the configuration file).
    #[serde(default)]
    pub certificates: Vec<PathBuf>,
}

fn default_true() -> bool {
    true
}
fn default_evaluate_seconds() -> u64 {
    30
}
fn default_repeat_minutes() -> u64 {
    240
}
fn default_failing_minutes() -> f64 {
    10.0
}
fn default_stalled_minutes() -> f64 {
    120.0
}
fn default_quarantine_percent() -> f64 {
    20.0
}
fn default_window_minutes() -> u64 {
    60
}
fn default_min_records() -> i64 {
    20
}
fn default_dead() -> i64 {
    1
}
fn default_expiry_days() -> i64 {
    14
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            enabled: true,
            evaluate_seconds: default_evaluate_seconds(),
            repeat_minutes: default_repeat_minutes(),
            source_failing_minutes: default_failing_minutes(),
            source_stalled_minutes: default_stalled_minutes(),
            quarantine_rate_percent: default_quarantine_percent(),
            quarantine_window_minutes: default_window_minutes(),
            quarantine_min_records: default_min_records(),
            dead_deliveries: default_dead(),
            reconciliation_gap: true,
            off_platform: true,
            expiry_days: default_expiry_days(),
            certificates: Vec::new(),
        }
    }
}

impl AlertsConfig {
    /// Problems of the table: (place, message).
    pub fn check(&self, base: &Path) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if self.evaluate_seconds == 0 {
            problems.push((
                "alerts.evaluate_seconds".into(),
                "应至少为 1 / must be at least 1".into(),
            ));
        }
        for (key, v) in [
            ("source_failing_minutes", self.source_failing_minutes),
            ("source_stalled_minutes", self.source_stalled_minutes),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                problems.push((
                    format!("alerts.{key}"),
                    format!("应为非负的分钟数 / must be a number of minutes, 0 or more, got {v}"),
                ));
            }
        }
        if !(self.quarantine_rate_percent.is_finite() && (0.0..=100.0).contains(&self.quarantine_rate_percent)) {
            problems.push((
                "alerts.quarantine_rate_percent".into(),
                format!(
                    "应在 0..100 / must be 0..100 (percent), got {}",
                    self.quarantine_rate_percent
                ),
            ));
        }
        if self.quarantine_window_minutes == 0 {
            problems.push((
                "alerts.quarantine_window_minutes".into(),
                "应至少为 1 / must be at least 1".into(),
            ));
        }
        for (key, v) in [
            ("quarantine_min_records", self.quarantine_min_records),
            ("dead_deliveries", self.dead_deliveries),
            ("expiry_days", self.expiry_days),
        ] {
            if v < 0 {
                problems.push((
                    format!("alerts.{key}"),
                    format!("不能为负 / must not be negative, got {v}"),
                ));
            }
        }
        for (i, p) in self.certificates.iter().enumerate() {
            let full = if p.is_absolute() { p.clone() } else { base.join(p) };
            if let Err(e) = std::fs::metadata(&full) {
                problems.push((
                    format!("alerts.certificates[{i}]"),
                    format!("无法读取 / cannot read {}: {e}", full.display()),
                ));
            }
        }
        problems
    }
}

/// The rules an alert can come from.
pub const ALERT_RULES: &[&str] = &[
    "source_failing",
    "source_stalled",
    "quarantine_rate",
    "dead_deliveries",
    "reconciliation_gap",
    "off_platform",
    "certificate_expiring",
];

/// `[[alert_webhooks]]`: where alert messages go.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct AlertWebhookConfig {
    /// Unique id (in the store and the API).
    pub id: String,
    /// `generic` (JSON), `dingtalk` (钉钉群机器人) or `wecom` (企业微信群机器人).
    pub kind: String,
    /// The URL inline (robot URLs carry their access token: prefer `url_env` / `url_file`).
    pub url: Option<String>,
    /// Environment variable holding the URL.
    pub url_env: Option<String>,
    /// File holding the URL.
    pub url_file: Option<PathBuf>,
    /// dingtalk: the robot's signing secret (加签), inline.
    pub secret: Option<String>,
    /// dingtalk: environment variable holding the signing secret.
    pub secret_env: Option<String>,
    /// dingtalk: file holding the signing secret.
    pub secret_file: Option<PathBuf>,
    /// Only these rules (default: every rule).
    #[serde(default)]
    pub rules: Vec<String>,
    /// Seconds a request may take (default 10).
    #[serde(default = "default_webhook_timeout")]
    pub timeout_seconds: f64,
    /// Attempts before a message is given up as dead (default 10); waits double from 5 s up to
    /// 10 minutes.
    #[serde(default = "default_webhook_attempts")]
    pub max_attempts: i32,
}

impl std::fmt::Debug for AlertWebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertWebhookConfig")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

fn default_webhook_timeout() -> f64 {
    10.0
}
fn default_webhook_attempts() -> i32 {
    10
}

/// A webhook with its secrets read.
#[derive(Debug, Clone)]
pub struct AlertWebhook {
    /// Id.
    pub id: String,
    /// `generic`, `dingtalk` or `wecom`.
    pub kind: String,
    /// The URL.
    pub url: Secret,
    /// dingtalk: the signing secret.
    pub secret: Option<Secret>,
    /// Only these rules (empty: all).
    pub rules: Vec<String>,
    /// Request timeout.
    pub timeout: std::time::Duration,
    /// Attempts before dead.
    pub max_attempts: i32,
}

impl AlertWebhook {
    /// Whether alerts of `rule` go to this webhook.
    pub fn takes(&self, rule: &str) -> bool {
        self.rules.is_empty() || self.rules.iter().any(|r| r == rule)
    }
}

impl AlertWebhookConfig {
    /// The webhook with its secrets read, or the problems (place `alert_webhooks[i]`).
    pub fn resolve(&self, place: &str, base: &Path) -> Result<AlertWebhook, Vec<(String, String)>> {
        let mut problems = Vec::new();
        if !matches!(self.kind.as_str(), "generic" | "dingtalk" | "wecom") {
            problems.push((
                format!("{place}.kind"),
                format!(
                    "未知类型 / unknown kind {:?}: use \"generic\", \"dingtalk\" or \"wecom\"",
                    self.kind
                ),
            ));
        }
        let url = match SecretSource::url(&self.url, &self.url_env, &self.url_file).require(base) {
            Ok(u) => {
                match reqwest::Url::parse(u.expose()) {
                    Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
                    _ => problems.push((
                        format!("{place}.url"),
                        "应为 http(s) 地址 / must be an http or https URL".into(),
                    )),
                }
                Some(u)
            }
            Err(e) => {
                problems.push((format!("{place}.url"), e));
                None
            }
        };
        let secret = SecretSource {
            name: "secret",
            inline: self.secret.as_deref(),
            env: self.secret_env.as_deref(),
            file: self.secret_file.as_deref(),
        }
        .resolve(base)
        .unwrap_or_else(|e| {
            problems.push((format!("{place}.secret"), e));
            None
        });
        if secret.is_some() && self.kind != "dingtalk" {
            problems.push((
                format!("{place}.secret"),
                "只有 dingtalk 使用加签密钥 / only dingtalk robots take a signing secret".into(),
            ));
        }
        for r in &self.rules {
            if !ALERT_RULES.contains(&r.as_str()) {
                problems.push((
                    format!("{place}.rules"),
                    format!("未知规则 / unknown rule {r:?}; known: {}", ALERT_RULES.join(", ")),
                ));
            }
        }
        if !(self.timeout_seconds.is_finite() && self.timeout_seconds > 0.0 && self.timeout_seconds <= 300.0) {
            problems.push((
                format!("{place}.timeout_seconds"),
                format!("应在 0..300 秒 / must be 0..300 seconds, got {}", self.timeout_seconds),
            ));
        }
        if self.max_attempts < 1 {
            problems.push((
                format!("{place}.max_attempts"),
                format!("应至少为 1 / must be at least 1, got {}", self.max_attempts),
            ));
        }
        match (url, problems.is_empty()) {
            (Some(url), true) => Ok(AlertWebhook {
                id: self.id.clone(),
                kind: self.kind.clone(),
                url,
                secret,
                rules: self.rules.clone(),
                timeout: std::time::Duration::from_secs_f64(self.timeout_seconds),
                max_attempts: self.max_attempts,
            }),
            _ => Err(problems),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_of_an_unknown_kind_and_rule_is_named_with_its_place() {
        let w = AlertWebhookConfig {
            id: "x".into(),
            kind: "slack".into(),
            url: Some("https://oapi.dingtalk.com/robot/send?access_token=t".into()),
            url_env: None,
            url_file: None,
            secret: None,
            secret_env: None,
            secret_file: None,
            rules: vec!["nope".into()],
            timeout_seconds: 10.0,
            max_attempts: 3,
        };
        let problems = w.resolve("alert_webhooks[0]", Path::new(".")).unwrap_err();
        assert!(problems
            .iter()
            .any(|(p, m)| p == "alert_webhooks[0].kind" && m.contains("slack")));
        assert!(problems
            .iter()
            .any(|(p, m)| p == "alert_webhooks[0].rules" && m.contains("nope")));
    }

    #[test]
    fn a_count_query_with_an_unknown_key_or_a_bad_url_is_named_with_its_place() {
        let table: toml::Table = toml::from_str("url = \"ftp://h/count\"\ncount_pth = \"total\"\n").unwrap();
        let problems = reconcile_parts(&table, None, "sources[1].reconcile", Path::new(".")).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|(p, m)| p == "sources[1].reconcile" && m.contains("count_pth")),
            "{problems:?}"
        );
        let table: toml::Table = toml::from_str("url = \"ftp://h/count\"\n").unwrap();
        let problems = reconcile_parts(&table, None, "sources[1].reconcile", Path::new(".")).unwrap_err();
        assert_eq!(problems[0].0, "sources[1].reconcile.url", "{problems:?}");
        // The source's connection keys are used, the reconcile table's own win.
        let kind: toml::Table =
            toml::from_str("url = \"http://h/list\"\ntimeout_seconds = 7.0\nmax_attempts = 2\n").unwrap();
        let table: toml::Table = toml::from_str("url = \"http://h/count?d={day}\"\nmax_attempts = 9\n").unwrap();
        let (settings, client) = reconcile_parts(&table, Some(&kind), "r", Path::new(".")).unwrap();
        assert_eq!((client.timeout_seconds, client.max_attempts), (7.0, 9));
        assert_eq!(settings.count_path, "total");
    }

    #[test]
    fn the_day_placeholders_are_filled() {
        assert_eq!(
            ReconcileSettings::fill("http://h/c?d={day}&c={day_compact}", "2025-03-01"),
            "http://h/c?d=2025-03-01&c=20250301"
        );
    }

    #[test]
    fn a_negative_threshold_and_a_rate_above_100_are_refused() {
        let a = AlertsConfig {
            quarantine_rate_percent: 150.0,
            dead_deliveries: -1,
            ..AlertsConfig::default()
        };
        let places: Vec<String> = a.check(Path::new(".")).into_iter().map(|(p, _)| p).collect();
        assert_eq!(places, ["alerts.quarantine_rate_percent", "alerts.dead_deliveries"]);
    }
}
