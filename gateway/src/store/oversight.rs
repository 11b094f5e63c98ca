//! What supervision needs kept (对账与告警): each source's records counted per calendar day,
//! what each source said it holds, cases left off the platform, and alerts with their webhook
//! messages. Both backends implement [`OversightStore`].
//!
//! - Daily counts are added when a batch is committed ([`tally`]); an add is one atomic
//!   statement, so several instances counting the same source and day never lose a count.
//! - An alert is one `firing` row per (rule, subject) at a time, kept unique by the store: the
//!   instance whose insert wins queues the messages; a reminder is queued by the one conditional
//!   update that moves `last_notified_at`; the resolved message by the one update that ends it.
//!   Restarts and other instances therefore never send a message twice.

use super::error::StoreResult;
use super::types::{IncomingRecord, RecordResult};
use async_trait::async_trait;
use chrono::{DateTime, FixedOffset, Offset as _, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// China time (UTC+8), the calendar days are counted in.
pub fn china() -> FixedOffset {
    // 8 hours is always a valid offset; UTC is never used.
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix())
}

/// The calendar day (YYYY-MM-DD, China time) of an instant.
pub fn day_of(t: DateTime<Utc>) -> String {
    t.with_timezone(&china()).format("%Y-%m-%d").to_string()
}

/// The most missing keys kept per source and day.
pub const MAX_MISSING_KEYS: usize = 1000;

/// What became of one source's records on one day, as counted at commit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DayTally {
    /// The source.
    pub source_id: String,
    /// YYYY-MM-DD, China time.
    pub day: String,
    /// Records that reached the commit (replays not included).
    pub received: i64,
    /// New cases, new versions and withdrawals.
    pub accepted: i64,
    /// Same content as the case's current version.
    pub unchanged: i64,
    /// Older than the case's current version by the source's time.
    pub stale: i64,
    /// Put in the quarantine.
    pub quarantined: i64,
    /// Quarantined records replayed and accepted.
    pub replayed: i64,
}

/// What the daily counts need of a record of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The source.
    pub source_id: String,
    /// When it was received.
    pub received_at: DateTime<Utc>,
    /// Whether it is a replay of a quarantined record.
    pub replay: bool,
}

impl Receipt {
    /// The receipt of a record about to be committed.
    pub fn of(record: &IncomingRecord) -> Receipt {
        Receipt {
            source_id: record.source_id.clone(),
            received_at: record.received_at,
            replay: record.replay_of.is_some(),
        }
    }
}

/// The day tallies of a committed batch: one per (source, day of receipt).
pub fn tally(records: &[Receipt], results: &[RecordResult]) -> Vec<DayTally> {
    let mut by: BTreeMap<(String, String), DayTally> = BTreeMap::new();
    for (record, result) in records.iter().zip(results) {
        let day = day_of(record.received_at);
        let t = by
            .entry((record.source_id.clone(), day.clone()))
            .or_insert_with(|| DayTally {
                source_id: record.source_id.clone(),
                day,
                ..DayTally::default()
            });
        let accepted = matches!(
            result,
            RecordResult::Accepted { .. } | RecordResult::Updated { .. } | RecordResult::Withdrawn { .. }
        );
        if record.replay {
            if accepted {
                t.replayed += 1;
            }
            continue;
        }
        t.received += 1;
        match result {
            _ if accepted => t.accepted += 1,
            RecordResult::Unchanged { .. } => t.unchanged += 1,
            RecordResult::Stale { .. } => t.stale += 1,
            _ => t.quarantined += 1,
        }
    }
    by.into_values().collect()
}

/// Records received and quarantined of one source in one minute (for the quarantine rate).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MinuteTally {
    /// The source.
    pub source_id: String,
    /// `YYYY-MM-DDTHH:MM`, UTC.
    pub minute: String,
    /// Records received (replays not counted).
    pub received: i64,
    /// Of those, quarantined.
    pub quarantined: i64,
}

/// The minute (`YYYY-MM-DDTHH:MM`, UTC) of an instant.
pub fn minute_of(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M").to_string()
}

/// The minute tallies of a batch's day tallies' records: one per (source, minute of receipt).
pub fn tally_minutes(records: &[Receipt], results: &[RecordResult]) -> Vec<MinuteTally> {
    let mut by: BTreeMap<(String, String), MinuteTally> = BTreeMap::new();
    for (record, result) in records.iter().zip(results) {
        if record.replay {
            continue;
        }
        let minute = minute_of(record.received_at);
        let t = by
            .entry((record.source_id.clone(), minute.clone()))
            .or_insert_with(|| MinuteTally {
                source_id: record.source_id.clone(),
                minute,
                ..MinuteTally::default()
            });
        t.received += 1;
        if matches!(result, RecordResult::Quarantined { .. }) {
            t.quarantined += 1;
        }
    }
    by.into_values().collect()
}

/// What a source said it holds for a day (its count query), and which keys the gateway lacks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Claim {
    /// The source.
    pub source_id: String,
    /// YYYY-MM-DD.
    pub day: String,
    /// The count it answered (`None`: the check failed, see `error`).
    pub claimed: Option<i64>,
    /// Whether it listed its keys (then `missing_keys` is meaningful).
    pub keys_listed: bool,
    /// How many listed keys the gateway never received.
    pub missing_count: i64,
    /// Those keys (at most [`MAX_MISSING_KEYS`]).
    pub missing_keys: Vec<String>,
    /// When it was asked.
    pub checked_at: DateTime<Utc>,
    /// Why the check failed.
    pub error: Option<String>,
}

/// Deliveries not settled, per source and day the case version was accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Undelivered {
    /// The source of the case.
    pub source_id: String,
    /// YYYY-MM-DD the delivery was queued (the version accepted), China time.
    pub day: String,
    /// Pending deliveries.
    pub pending: i64,
    /// Dead deliveries (an operator must re-drive them).
    pub dead: i64,
}

/// A delivery not settled after the threshold: a case not on the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverdueDelivery {
    /// The outbox row.
    pub delivery_id: i64,
    /// The handling agency (department), by credit code.
    pub agency: String,
    /// The sink.
    pub sink_id: String,
    /// Unified code.
    pub unified_code: String,
    /// The case version.
    pub version: i32,
    /// `pending` or `dead`.
    pub status: String,
    /// Attempts so far.
    pub attempts: i32,
    /// The last error.
    pub last_error: Option<String>,
    /// When it was queued.
    pub since: DateTime<Utc>,
}

/// A quarantined record without a unified code older than the threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverdueQuarantine {
    /// The entry id.
    pub quarantine_id: i64,
    /// The source.
    pub source_id: String,
    /// The record's key at the source.
    pub record_key: String,
    /// The case number the mapping could read.
    pub case_number: Option<String>,
    /// The rules it broke.
    pub rules: Vec<String>,
    /// When it was quarantined.
    pub since: DateTime<Utc>,
}

/// Counts of cases off the platform, per group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverdueCount {
    /// The agency (deliveries) or source (quarantine).
    pub key: String,
    /// How many.
    pub count: i64,
    /// The oldest's time.
    pub oldest: DateTime<Utc>,
}

/// An alert as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertRow {
    /// Id.
    pub id: i64,
    /// The rule (`source_failing`, `quarantine_rate`, ...).
    pub rule: String,
    /// What it is about (a source id, a sink id, a file ...).
    pub subject: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// `warning` or `critical`.
    pub severity: String,
    /// What is wrong, in Chinese.
    pub summary_zh: String,
    /// What is wrong, in English.
    pub summary_en: String,
    /// The measured value.
    pub value: String,
    /// Since when.
    pub started_at: DateTime<Utc>,
    /// Last evaluation that saw it.
    pub last_seen_at: DateTime<Utc>,
    /// When it ended.
    pub resolved_at: Option<DateTime<Utc>>,
    /// When a message was last queued for it.
    pub last_notified_at: DateTime<Utc>,
}

/// An alert to raise (or keep raised).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlert {
    /// The rule.
    pub rule: String,
    /// The subject.
    pub subject: String,
    /// `warning` or `critical`.
    pub severity: String,
    /// Chinese text.
    pub summary_zh: String,
    /// English text.
    pub summary_en: String,
    /// The measured value.
    pub value: String,
}

/// What raising an alert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raised {
    /// It was not firing: it fires now and its messages are queued.
    New(i64),
    /// It was firing and a reminder is due: queued.
    Reminded(i64),
    /// It was firing already.
    Kept(i64),
}

/// A webhook message of an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotificationRow {
    /// Id.
    pub id: i64,
    /// The alert.
    pub alert_id: i64,
    /// The webhook.
    pub webhook_id: String,
    /// `firing`, `repeat` or `resolved`.
    pub event: String,
    /// `pending`, `sent` or `dead`.
    pub status: String,
    /// Attempts so far.
    pub attempts: i32,
    /// When the next attempt is due.
    pub next_attempt_at: DateTime<Utc>,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When it was sent.
    pub sent_at: Option<DateTime<Utc>>,
}

/// How a send attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Delivered.
    Sent,
    /// Failed; try again at the time given.
    Retry(DateTime<Utc>, String),
    /// Failed for good.
    Dead(String),
}

/// Reconciliation, cases off the platform and alerts, kept by the store.
#[async_trait]
pub trait OversightStore: Send + Sync {
    /// Add a committed batch's tallies to the daily and per-minute counts (atomically).
    async fn add_tallies(&self, tallies: &[DayTally], minutes: &[MinuteTally]) -> StoreResult<()>;

    /// The daily counts of days `from..=to` (YYYY-MM-DD), of one source or all.
    async fn day_counts(&self, source: Option<&str>, from: &str, to: &str) -> StoreResult<Vec<DayTally>>;

    /// Keep what a source said about a day (replacing what it said before).
    async fn put_claim(&self, claim: &Claim) -> StoreResult<()>;

    /// The claims of days `from..=to`, of one source or all.
    async fn claims(&self, source: Option<&str>, from: &str, to: &str) -> StoreResult<Vec<Claim>>;

    /// Which of `keys` the gateway never received from `source` (in the order given).
    async fn keys_never_received(&self, source: &str, keys: &[String]) -> StoreResult<Vec<String>>;

    /// Unsettled deliveries per source and day queued, for days `from..=to`.
    async fn undelivered(&self, source: Option<&str>, from: &str, to: &str) -> StoreResult<Vec<Undelivered>>;

    /// Deliveries pending or dead since before `before`: counts per agency, and at most `limit`
    /// of them, oldest first.
    async fn overdue_deliveries(
        &self,
        before: DateTime<Utc>,
        agency: Option<&str>,
        limit: i64,
    ) -> StoreResult<(Vec<OverdueCount>, Vec<OverdueDelivery>)>;

    /// Open quarantine entries since before `before`: counts per source, and at most `limit` of
    /// them, oldest first (of `sources` when given).
    async fn overdue_quarantine(
        &self,
        before: DateTime<Utc>,
        sources: Option<&[String]>,
        limit: i64,
    ) -> StoreResult<(Vec<OverdueCount>, Vec<OverdueQuarantine>)>;

    /// Records received and quarantined per source since `since` (for the quarantine rate,
    /// by minute), replays not counted: (source, received, quarantined). Forgets the minutes
    /// older than two days.
    async fn recent_intake(&self, since: DateTime<Utc>) -> StoreResult<Vec<(String, i64, i64)>>;

    /// Dead deliveries per sink.
    async fn dead_deliveries(&self) -> StoreResult<Vec<(String, i64)>>;

    /// Raise `alert` (or keep it raised): a new firing alert queues a `firing` message for each
    /// of `webhooks`; a firing one whose last message is older than `repeat` queues a `repeat`.
    async fn alert_raise(&self, alert: &NewAlert, webhooks: &[String], repeat: Option<Duration>)
        -> StoreResult<Raised>;

    /// End the firing alert of (`rule`, `subject`), queueing a `resolved` message for each of
    /// `webhooks`; `None` when it was not firing.
    async fn alert_resolve(&self, rule: &str, subject: &str, webhooks: &[String]) -> StoreResult<Option<i64>>;

    /// The firing alerts, oldest first.
    async fn alerts_firing(&self) -> StoreResult<Vec<AlertRow>>;

    /// The latest `limit` alerts (firing or resolved), newest first.
    async fn alerts_recent(&self, limit: i64) -> StoreResult<Vec<AlertRow>>;

    /// One alert.
    async fn alert(&self, id: i64) -> StoreResult<Option<AlertRow>>;

    /// Pending messages due at `now`, oldest first, at most `limit`.
    async fn notifications_due(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<NotificationRow>>;

    /// Record how sending a message ended.
    async fn notification_settle(&self, id: i64, outcome: &SendOutcome) -> StoreResult<()>;

    /// The latest `limit` messages, newest first (of one alert when given).
    async fn notifications_recent(&self, alert_id: Option<i64>, limit: i64) -> StoreResult<Vec<NotificationRow>>;
}
