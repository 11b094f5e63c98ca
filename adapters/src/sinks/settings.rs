//! Settings of a `[[sinks]]` block: the delivery keys every kind has (batching, retries) and
//! the keys of its kind. Unknown keys are errors; secrets come from `*_env` / `*_file`.
//!
//! ```toml
//! [[sinks]]
//! id = "mq"
//! kind = "amqp"
//! url_env = "GATEWAY_AMQP_URL"   # kind keys ...
//! retry_for_hours = 24           # ... and delivery keys
//! ```

use super::amqp::{AmqpSettings, AmqpSink};
use super::delivery::{Sink, SinkError};
use super::postgres::{PostgresSettings, PostgresSink};
use super::rest::{RestSettings, RestSink};
use crate::common::settings::{from_table, SettingsProblem};
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Keys of [`DeliverySettings`], accepted in every sink block.
pub const DELIVERY_KEYS: &[&str] = &[
    "batch_size",
    "parallel_batches",
    "max_attempts",
    "retry_for_hours",
    "retry_initial_ms",
    "retry_max_ms",
    "poll_ms",
    "lease_seconds",
    "content",
    "case_types",
];

/// What a sink receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkContent {
    /// Case versions: the canonical record (the default).
    #[default]
    Cases,
    /// Public records (一公开): the 双公示 record of each penalty and the result of each 双随机
    /// inspection, made by the gateway under its `[publicity]` rules.
    Publicity,
}

/// The record types a sink may carry (`case_types`).
pub const RECORD_TYPES: &[&str] = &["inspection", "penalty", "coercion", "plan", "joint_inspection"];

/// How the dispatcher feeds a sink: batching, retries, polling. Same keys for every kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    /// Deliveries per batch (default: postgres 1000, amqp 1000, rest 100).
    pub batch_size: Option<usize>,
    /// Batches in flight at once (default 2).
    #[serde(default = "default_parallel")]
    pub parallel_batches: usize,
    /// Failed attempts (HTTP 5xx, 408, 429, timeouts, connection errors) before a delivery is
    /// dead (default none: only `retry_for_hours` ends the retries). A sink that cannot be
    /// reached at all does not use up attempts: its deliveries wait.
    pub max_attempts: Option<u32>,
    /// How long after its commit a failing delivery is still retried, in hours (default 24):
    /// a receiver that is down for an afternoon loses nothing. Answers that refuse the delivery
    /// (HTTP 4xx other than 408 and 429) make it dead at once, with the receiver's answer.
    #[serde(default = "default_retry_for_hours")]
    pub retry_for_hours: u64,
    /// Delay before the first retry, in milliseconds (default 1000); doubles each attempt.
    #[serde(default = "default_initial")]
    pub retry_initial_ms: u64,
    /// Longest delay between retries, in milliseconds (default 300000 = 5 minutes).
    #[serde(default = "default_max")]
    pub retry_max_ms: u64,
    /// Pause between looks at the outbox when there is nothing to deliver, ms (default 500).
    #[serde(default = "default_poll")]
    pub poll_ms: u64,
    /// How long a claimed delivery is reserved for one dispatcher, seconds (default 300): if
    /// the gateway dies mid-batch, another instance takes the batch over after this.
    #[serde(default = "default_lease")]
    pub lease_seconds: u64,
    /// What the sink receives: `cases` (default) or `publicity`.
    #[serde(default)]
    pub content: SinkContent,
    /// Only versions of these record types get a delivery to this sink (default: all; for a
    /// publicity sink `penalty` and `inspection`).
    pub case_types: Option<Vec<String>>,
}

fn default_parallel() -> usize {
    2
}
fn default_retry_for_hours() -> u64 {
    24
}
fn default_initial() -> u64 {
    1000
}
fn default_max() -> u64 {
    300_000
}
fn default_poll() -> u64 {
    500
}
fn default_lease() -> u64 {
    300
}

impl DeliverySettings {
    /// Delay before the first retry.
    pub fn retry_initial(&self) -> Duration {
        Duration::from_millis(self.retry_initial_ms)
    }
    /// Longest delay between retries.
    pub fn retry_max(&self) -> Duration {
        Duration::from_millis(self.retry_max_ms)
    }
    /// Pause when idle.
    pub fn poll(&self) -> Duration {
        Duration::from_millis(self.poll_ms)
    }
    /// Reservation of a claimed delivery.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_seconds)
    }

    /// The record types this sink gets deliveries of, or `None` for all.
    pub fn carried_types(&self) -> Option<Vec<String>> {
        match (&self.case_types, self.content) {
            (Some(types), _) => Some(types.clone()),
            (None, SinkContent::Publicity) => Some(vec!["penalty".into(), "inspection".into()]),
            (None, SinkContent::Cases) => None,
        }
    }

    fn check(&self) -> Vec<SettingsProblem> {
        let mut problems = Vec::new();
        if matches!(self.batch_size, Some(n) if n == 0 || n > 10_000) {
            problems.push(SettingsProblem::new("batch_size", "应在 1..10000 / must be 1..10000"));
        }
        if self.parallel_batches == 0 || self.parallel_batches > 16 {
            problems.push(SettingsProblem::new("parallel_batches", "应在 1..16 / must be 1..16"));
        }
        if self.max_attempts == Some(0) {
            problems.push(SettingsProblem::new("max_attempts", "应至少为 1 / must be at least 1"));
        }
        if self.retry_for_hours == 0 || self.retry_for_hours > 24 * 366 {
            problems.push(SettingsProblem::new(
                "retry_for_hours",
                "应在 1..8784（一年）/ must be 1..8784 (a year)",
            ));
        }
        if self.retry_initial_ms == 0 || self.retry_max_ms < self.retry_initial_ms {
            problems.push(SettingsProblem::new(
                "retry_max_ms",
                "需 0 < retry_initial_ms ≤ retry_max_ms / need 0 < retry_initial_ms <= retry_max_ms",
            ));
        }
        if self.poll_ms == 0 {
            problems.push(SettingsProblem::new("poll_ms", "应至少为 1 / must be at least 1"));
        }
        if let Some(types) = &self.case_types {
            if types.is_empty() {
                problems.push(SettingsProblem::new(
                    "case_types",
                    "不能为空；不设置则接收全部类型 / must not be empty (leave it out for every type)",
                ));
            }
            for t in types {
                let allowed: &[&str] = match self.content {
                    SinkContent::Cases => RECORD_TYPES,
                    SinkContent::Publicity => &["penalty", "inspection"],
                };
                if !allowed.contains(&t.as_str()) {
                    problems.push(SettingsProblem::new(
                        "case_types",
                        format!(
                            "未知或不可公示的记录类型 / unknown record type (or not public) {t:?}: one of {}",
                            allowed.join(", ")
                        ),
                    ));
                }
            }
        }
        if self.lease_seconds < 10 {
            problems.push(SettingsProblem::new(
                "lease_seconds",
                "应至少为 10 / must be at least 10",
            ));
        }
        problems
    }
}

/// The kind-specific settings.
#[derive(Debug, Clone)]
pub enum KindSettings {
    /// `kind = "postgres"`.
    Postgres(PostgresSettings),
    /// `kind = "amqp"`.
    Amqp(AmqpSettings),
    /// `kind = "rest"` (boxed: much the largest).
    Rest(Box<RestSettings>),
}

/// A sink block's settings, parsed.
#[derive(Debug, Clone)]
pub struct SinkSettings {
    /// Batching, retries, polling.
    pub delivery: DeliverySettings,
    /// The kind's own keys.
    pub kind: KindSettings,
}

fn parse_parts(
    kind: &str,
    settings: &toml::Table,
) -> (
    Result<DeliverySettings, SettingsProblem>,
    Result<KindSettings, SettingsProblem>,
) {
    let mut own = settings.clone();
    let mut common = toml::Table::new();
    for key in DELIVERY_KEYS {
        if let Some(v) = own.remove(*key) {
            common.insert((*key).to_string(), v);
        }
    }
    let hint = format!("delivery keys: {}", DELIVERY_KEYS.join(", "));
    let delivery = from_table::<DeliverySettings>(common, &hint);
    let kind = match kind {
        "postgres" => from_table(own, &hint).map(KindSettings::Postgres),
        "amqp" => from_table(own, &hint).map(KindSettings::Amqp),
        "rest" => from_table(own, &hint).map(|s| KindSettings::Rest(Box::new(s))),
        other => Err(SettingsProblem::new(
            "",
            format!("未知去向类型 / unknown sink kind {other:?}: postgres, amqp or rest"),
        )),
    };
    (delivery, kind)
}

fn check_kind(kind: &KindSettings, base: &Path) -> Vec<SettingsProblem> {
    match kind {
        KindSettings::Postgres(s) => s.check(base),
        KindSettings::Amqp(s) => s.check(base),
        KindSettings::Rest(s) => s.check(base),
    }
}

impl SinkSettings {
    /// Parse the settings of a sink of `kind` (syntax and types; see [`SinkSettings::check`]).
    pub fn parse(kind: &str, settings: &toml::Table) -> Result<SinkSettings, Vec<SettingsProblem>> {
        match parse_parts(kind, settings) {
            (Ok(delivery), Ok(kind)) => Ok(SinkSettings { delivery, kind }),
            (d, k) => Err(d.err().into_iter().chain(k.err()).collect()),
        }
    }

    /// Everything that can be checked without connecting: values in range, secrets readable,
    /// templates valid. `base` is the configuration file's directory.
    pub fn check(&self, base: &Path) -> Vec<SettingsProblem> {
        let mut problems = self.delivery.check();
        problems.extend(check_kind(&self.kind, base));
        problems
    }

    /// Deliveries per batch (the kind's default unless set).
    pub fn batch_size(&self) -> usize {
        self.delivery.batch_size.unwrap_or(match &self.kind {
            KindSettings::Postgres(_) | KindSettings::Amqp(_) => 1000,
            KindSettings::Rest(_) => 100,
        })
    }

    /// Build the sink (no connection is made before the first delivery).
    pub fn build(&self, sink_id: &str, base: &Path) -> Result<Arc<dyn Sink>, SinkError> {
        Ok(match &self.kind {
            KindSettings::Postgres(s) => Arc::new(PostgresSink::new(
                sink_id,
                s,
                base,
                self.delivery.content == SinkContent::Publicity,
            )?),
            KindSettings::Amqp(s) => Arc::new(AmqpSink::new(sink_id, s, base)?),
            KindSettings::Rest(s) => Arc::new(RestSink::new(sink_id, s, base)?),
        })
    }
}

/// The validation hook of `gateway config check`: every problem of a sink block's settings
/// (an unknown `kind` gives none here: the configuration reports it itself).
pub fn check_settings(kind: &str, settings: &toml::Table, base: &Path) -> Vec<SettingsProblem> {
    if !matches!(kind, "postgres" | "amqp" | "rest") {
        return Vec::new();
    }
    // Each part is checked as far as it parses, so that one mistake does not hide the others.
    let (delivery, kind) = parse_parts(kind, settings);
    let mut problems = match delivery {
        Ok(d) => d.check(),
        Err(p) => vec![p],
    };
    match kind {
        Ok(k) => problems.extend(check_kind(&k, base)),
        Err(p) => problems.push(p),
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    #[test]
    fn unknown_key_is_reported_with_its_name() {
        let problems = check_settings("postgres", &table("urll = \"x\"\nschema = \"p\""), Path::new("/"));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "urll");
        assert!(problems[0].message.contains("unknown field"), "{}", problems[0]);
    }

    #[test]
    fn delivery_keys_are_accepted_by_every_kind_and_checked() {
        let t = table("url = \"amqp://127.0.0.1\"\nmax_attempts = 0\nbatch_size = 20");
        let problems = check_settings("amqp", &t, Path::new("/"));
        assert_eq!(
            problems.iter().map(|p| p.key.as_str()).collect::<Vec<_>>(),
            ["max_attempts"]
        );
        let parsed = SinkSettings::parse("amqp", &table("url = \"amqp://h\"\nbatch_size = 20")).unwrap();
        assert_eq!(parsed.batch_size(), 20);
        assert_eq!(parsed.delivery.max_attempts, None);
        assert_eq!(parsed.delivery.retry_for_hours, 24);
    }

    #[test]
    fn wrong_types_in_both_parts_are_all_reported_with_their_keys() {
        let t = table("url = 5\nmax_attempts = \"many\"");
        let problems = check_settings("rest", &t, Path::new("/"));
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["max_attempts", "url"], "{problems:?}");
        let t = table("url = \"http://h\"\nauth = { kind = \"bearer\", token = 7 }");
        let problems = check_settings("rest", &t, Path::new("/"));
        assert_eq!(problems[0].key, "auth.token", "{problems:?}");
    }

    #[test]
    fn a_bad_delivery_key_does_not_hide_the_kinds_problems() {
        let t = table("exchange_type = \"fan\"\nbatch_size = \"x\"");
        let keys: Vec<String> = check_settings("amqp", &t, Path::new("/"))
            .into_iter()
            .map(|p| p.key)
            .collect();
        assert_eq!(keys, ["batch_size", "url", "exchange_type"]);
    }

    #[test]
    fn case_types_and_content_are_checked_and_publicity_defaults_to_penalties_and_inspections() {
        let t = table("url = \"amqp://h\"\ncontent = \"publicity\"");
        let parsed = SinkSettings::parse("amqp", &t).unwrap();
        assert_eq!(parsed.delivery.content, SinkContent::Publicity);
        assert_eq!(
            parsed.delivery.carried_types(),
            Some(vec!["penalty".to_string(), "inspection".to_string()])
        );
        let t = table("url = \"amqp://h\"\ncontent = \"publicity\"\ncase_types = [\"coercion\"]");
        let problems = check_settings("amqp", &t, Path::new("/"));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "case_types");
        assert!(problems[0].message.contains("coercion"), "{}", problems[0]);
        let t = table("url = \"amqp://h\"\ncase_types = [\"penalty\", \"plan\"]");
        assert!(check_settings("amqp", &t, Path::new("/")).is_empty());
        let parsed = SinkSettings::parse("amqp", &table("url = \"amqp://h\"")).unwrap();
        assert_eq!(parsed.delivery.carried_types(), None);
        let t = table("url = \"amqp://h\"\ncontent = \"public\"");
        assert_eq!(check_settings("amqp", &t, Path::new("/"))[0].key, "content");
    }

    #[test]
    fn unknown_kind_is_left_to_the_configuration() {
        assert!(check_settings("ftp", &table("x = 1"), Path::new("/")).is_empty());
    }
}
