//! What the dispatcher and the operator commands need from the store's `outbox` table, behind
//! one interface for both backends (`store/outbox_sqlite.rs`, `store/outbox_postgres.rs`).
//!
//! Claiming is the heart of it. A delivery is claimable when it is pending, due
//! (`next_attempt_at` empty or past) and no earlier version of the same case is pending for the
//! same sink: so version N+1 of a case never leaves before version N is delivered or dead. A
//! claim reserves the rows by moving `next_attempt_at` to the end of a lease; on PostgreSQL the
//! rows are picked with `FOR UPDATE SKIP LOCKED`, so several gateway instances share the work
//! without taking the same row. A dispatcher that dies mid-batch leaves its rows to be claimed
//! again when the lease ends (at-least-once).

use crate::store::StoreResult;
use adapters::sinks::Delivery;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// State of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting to be delivered (or to be retried).
    Pending,
    /// The sink has it.
    Delivered,
    /// Refused for good, or out of attempts: waits for an operator's re-drive.
    Dead,
    /// A dead delivery that a re-drive found older than a version of the same case already
    /// delivered to the sink: never sent, so that the sink keeps the newest state.
    Superseded,
    /// Settled without sending: a publicity sink's rules do not publish this version (a natural
    /// person's penalty, a routine inspection); the reason is kept as its `last_error`.
    Withheld,
}

impl DeliveryStatus {
    /// Name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Dead => "dead",
            DeliveryStatus::Superseded => "superseded",
            DeliveryStatus::Withheld => "withheld",
        }
    }

    /// Parse a stored name.
    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        match s {
            "pending" => Some(DeliveryStatus::Pending),
            "delivered" => Some(DeliveryStatus::Delivered),
            "dead" => Some(DeliveryStatus::Dead),
            "superseded" => Some(DeliveryStatus::Superseded),
            "withheld" => Some(DeliveryStatus::Withheld),
            _ => None,
        }
    }
}

/// A claimed delivery: what to send, and how many attempts it has had.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The case version to send.
    pub delivery: Delivery,
    /// Attempts made before this one.
    pub attempts: i32,
}

/// The new state of one delivery after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Settlement {
    /// Outbox row id.
    pub id: i64,
    /// New status.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: i32,
    /// When to try again (pending only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last error or refusal (the sink's answer), kept with dead deliveries.
    pub last_error: Option<String>,
    /// When delivered.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// One delivery as operators see it.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRow {
    /// Outbox row id (what `gateway deliveries redrive --id` takes).
    pub id: i64,
    /// Sink id.
    pub sink_id: String,
    /// `<unified code>:<version>`.
    pub idempotency_key: String,
    /// Version number.
    pub version: i32,
    /// pending, delivered or dead.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: i32,
    /// When it is tried next (pending).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last error or the sink's refusal.
    pub last_error: Option<String>,
    /// When the version was committed.
    pub created_at: DateTime<Utc>,
    /// When delivered.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Filter of delivery listings (newest first).
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// Only this sink.
    pub sink_id: Option<String>,
    /// Only this status.
    pub status: Option<DeliveryStatus>,
    /// Only ids below this (paging).
    pub before_id: Option<i64>,
    /// At most this many (default 100).
    pub limit: Option<i64>,
    /// Skip this many (page numbers), after `before_id`.
    pub offset: Option<i64>,
}

/// How many deliveries of a sink are in a status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryCount {
    /// Sink id.
    pub sink_id: String,
    /// Status.
    pub status: DeliveryStatus,
    /// Deliveries.
    pub count: i64,
}

/// Which dead deliveries to send again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redrive {
    /// One delivery (it must be dead).
    One(i64),
    /// Every dead delivery of a sink.
    AllDead {
        /// The sink.
        sink_id: String,
    },
}

/// The outbox, for dispatchers and operators.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Claim up to `limit` claimable deliveries of `sink_id` (see the module docs), oldest
    /// first, reserving them until `lease_until`.
    async fn claim(
        &self,
        sink_id: &str,
        limit: usize,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Vec<Claimed>>;

    /// Record the outcome of attempts claimed with the lease `lease_until`, in one transaction.
    /// Only rows still under that lease are settled (a row whose lease ran out and that another
    /// instance claimed is left to it); returns how many were.
    async fn settle(&self, settlements: &[Settlement], lease_until: DateTime<Utc>) -> StoreResult<u64>;

    /// Deliveries matching the filter, newest first.
    async fn deliveries(&self, filter: &DeliveryFilter) -> StoreResult<Vec<DeliveryRow>>;

    /// Counts per sink and status.
    async fn delivery_counts(&self) -> StoreResult<Vec<DeliveryCount>>;

    /// Make dead deliveries pending again with fresh attempts (their last error stays until the
    /// next attempt), except those older than a version of the same case already delivered to
    /// the sink: they become [`DeliveryStatus::Superseded`], so that an old state never
    /// overwrites a newer one downstream. [`Redrive::One`] of a delivery that is not dead is a
    /// conflict; of an unknown id, not found.
    async fn redrive(&self, target: &Redrive) -> StoreResult<RedriveReport>;
}

/// What a re-drive did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RedriveReport {
    /// Dead deliveries made pending again.
    pub redriven: u64,
    /// Dead deliveries left unsent because a newer version of their case was delivered.
    pub superseded: u64,
}

/// The condition, on an outbox row aliased `outbox`, that a newer version of its case was
/// delivered to its sink (the same SQL on both backends).
pub const NEWER_DELIVERED: &str = "EXISTS (SELECT 1 FROM outbox n WHERE n.sink_id = outbox.sink_id \
     AND n.case_id = outbox.case_id AND n.version > outbox.version AND n.status = 'delivered')";

/// Marks dead deliveries superseded (the same SQL on both backends; a target condition follows).
pub const SUPERSEDE: &str = "UPDATE outbox SET status = 'superseded', next_attempt_at = NULL, \
     last_error = 'superseded: a newer version of the case was delivered to this sink'";
