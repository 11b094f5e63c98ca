//! What a sink is given and what it answers: [`Delivery`] (one case version), [`Outcome`] (what
//! became of it), the [`Sink`] trait every kind implements, and why a sink could not be built.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::time::Duration;

/// One case version to deliver.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The outbox row this delivery settles.
    pub outbox_id: i64,
    /// `<unified code>:<version>`: receivers drop repeats by it.
    pub idempotency_key: String,
    /// The unified case code (一案一码).
    pub unified_code: String,
    /// The case version (1, 2, ...).
    pub version: i32,
    /// `inspection`, `penalty`, `coercion` or `plan`.
    pub case_type: String,
    /// The year the case is numbered in.
    pub year: i32,
    /// The handling agency's GB/T 2260 region code.
    pub region: String,
    /// True when this version withdraws the case.
    pub withdrawn: bool,
    /// When the version was committed by the gateway.
    pub committed_at: DateTime<Utc>,
    /// The canonical record of this version.
    pub record: Value,
}

impl Delivery {
    /// The AMQP routing key: `<case type>.<region>`, e.g. `penalty.360102`.
    pub fn routing_key(&self) -> String {
        format!("{}.{}", self.case_type, self.region)
    }
}

/// What became of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The sink has it (committed, confirmed, or answered 2xx).
    Delivered,
    /// The sink answered but did not take it; trying again later may succeed (5xx, 408, 429,
    /// a broker nack, an unroutable message). Counts as an attempt.
    Failed {
        /// What the sink said.
        error: String,
        /// The sink asked not to retry before this long (HTTP `Retry-After`).
        retry_after: Option<Duration>,
    },
    /// The sink refused it for good (HTTP 4xx, a record the database cannot store): the
    /// delivery is dead, with this answer kept for the operator.
    Rejected {
        /// What the sink said.
        error: String,
    },
    /// The sink could not be reached (or the delivery's fate is unknown because the
    /// connection broke): not an attempt against this delivery; it is offered again once the
    /// sink is back.
    Deferred {
        /// Why.
        reason: String,
    },
}

impl Outcome {
    /// A [`Outcome::Failed`] without `Retry-After`.
    pub fn failed(error: impl Into<String>) -> Outcome {
        Outcome::Failed {
            error: error.into(),
            retry_after: None,
        }
    }

    /// A [`Outcome::Deferred`].
    pub fn deferred(reason: impl Into<String>) -> Outcome {
        Outcome::Deferred { reason: reason.into() }
    }
}

/// Why a sink could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The settings are not usable (checked again when the sink is built).
    #[error("去向配置错误 / sink settings: {0}")]
    Settings(String),
    /// A client could not be created.
    #[error("去向客户端无法创建 / cannot create the sink's client: {0}")]
    Client(String),
}

/// A delivery target.
#[async_trait]
pub trait Sink: Send + Sync {
    /// `postgres`, `amqp` or `rest`.
    fn kind(&self) -> &'static str;

    /// Deliver a batch. Returns exactly one outcome per delivery, in the same order. Never
    /// delivers two versions of one case out of order: the dispatcher puts at most one version
    /// of a case in a batch.
    async fn deliver(&self, batch: &[Delivery]) -> Vec<Outcome>;

    /// Release connections (called once when the dispatcher stops).
    async fn close(&self) {}
}
