//! The gateway's internal events: one small type per observable event, whose `emit` writes its
//! log line, bumps its metrics and updates the source board in one place, so that every way in
//! reports the same thing the same way.

use super::board::SourceBoard;
use super::metrics::Metrics;
use super::summary::Summary;
use std::sync::Arc;
use std::time::Duration;

/// Where events are reported: the running gateway's metrics registry and source board (both
/// absent in one-shot commands, where only the log line is written).
#[derive(Debug, Clone, Default)]
pub struct Telemetry {
    /// The metrics registry served on `GET /metrics`.
    pub metrics: Option<Arc<Metrics>>,
    /// The live status of every source.
    pub board: Option<Arc<SourceBoard>>,
}

impl Telemetry {
    /// Report `event`.
    pub fn emit(&self, event: impl InternalEvent) {
        event.emit(self);
    }
}

/// An observable event: logs, metrics and source board in one place.
pub trait InternalEvent {
    /// Write the log line, bump the metrics, update the board.
    fn emit(self, telemetry: &Telemetry);
}

/// A batch of one source's records committed (accepted, updated, unchanged or quarantined).
#[derive(Debug)]
pub struct BatchCommitted<'a> {
    /// The source.
    pub source: &'a str,
    /// What the batch did.
    pub summary: &'a Summary,
    /// Every violation of the batch's records: rule id and severity.
    pub rules: &'a [(String, &'static str)],
    /// How long the commit took.
    pub elapsed: Duration,
}

impl InternalEvent for BatchCommitted<'_> {
    fn emit(self, telemetry: &Telemetry) {
        let s = self.summary;
        tracing::info!(
            source = %self.source,
            received = s.received,
            accepted = s.accepted,
            updated = s.updated,
            unchanged = s.unchanged,
            stale = s.stale,
            quarantined = s.quarantined,
            elapsed_ms = self.elapsed.as_millis() as u64,
            "batch committed"
        );
        if let Some(metrics) = &telemetry.metrics {
            metrics.batch_committed(self.source, s, self.rules, self.elapsed);
        }
        if let Some(board) = &telemetry.board {
            board.add_summary(self.source, s);
        }
    }
}

/// A source's run or connection failed: a pull, an AMQP consumer, a drop-folder file. What was
/// not committed stays at the source and is taken again.
#[derive(Debug)]
pub struct SourceFailed<'a> {
    /// The source.
    pub source: &'a str,
    /// What failed, in words (`pull`, `consumer`, `file`, ...).
    pub stage: &'static str,
    /// The error, as operators read it.
    pub error: &'a str,
    /// Whether the source's run or connection failed (it is `failing` until one succeeds), or
    /// only one thing within a run that goes on (an unreadable file, a message dead-lettered):
    /// the source is then `degraded`.
    pub run_failed: bool,
    /// The circuit breaker is open until then: the source is `paused`.
    pub paused_until: Option<chrono::DateTime<chrono::Utc>>,
    /// The error only says the source is paused (the circuit breaker refused the run): the
    /// last real error stays the one operators see.
    pub only_paused: bool,
}

impl InternalEvent for SourceFailed<'_> {
    fn emit(self, telemetry: &Telemetry) {
        tracing::warn!(source = %self.source, stage = self.stage, error = %self.error,
            "source failed; what was not committed stays at the source and is taken again");
        if let Some(metrics) = &telemetry.metrics {
            metrics.source_failed(self.source);
        }
        if let Some(board) = &telemetry.board {
            if self.run_failed {
                board.run_failed(self.source, self.error, self.paused_until, self.only_paused);
            } else {
                board.set_degraded(self.source, self.error);
            }
        }
    }
}
