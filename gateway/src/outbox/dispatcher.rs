//! The dispatcher: per configured sink, `parallel_batches` workers that claim batches from the
//! outbox, hand them to the sink and record what became of each delivery.
//!
//! - Delivered: `delivered`, with the time.
//! - Failed (the sink answered but did not take it): one attempt used; retried after an
//!   exponential backoff with jitter (at least the sink's `Retry-After`); dead once
//!   `retry_for_hours` (or `max_attempts`, when set) are used up, with the last answer kept.
//! - Rejected (refused for good, e.g. HTTP 4xx): dead at once, with the answer kept.
//! - Deferred (the sink could not be reached): no attempt used; the delivery waits.
//! - Withheld (a publicity sink's rules do not publish it): settled without sending, with the
//!   reason (see [`super::publicity`]).
//!
//! A batch that delivered nothing pauses the whole sink (backoff with jitter, growing with each
//! such batch, reset by the first success), so a sink that is down for an hour costs a probe
//! now and then, not a storm of retries, and its deliveries do not run out of attempts.

use super::retry::{jitter, Backoff};
use crate::config::SinkConfig;
use crate::shutdown::Shutdown;
use crate::store::StoreError;
use crate::store::{Claimed, DeliveryStatus, OutboxStore, Settlement};
use adapters::sinks::settings::DeliverySettings;
use adapters::sinks::{Delivery, Outcome, Sink, SinkSettings};
use chrono::{DateTime, SubsecRound, Utc};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tracing::Instrument;

/// Why dispatching could not start.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// A sink's settings are unusable or its client cannot be created.
    #[error("去向 {sink} / sink {sink}: {message}")]
    Sink {
        /// The sink id.
        sink: String,
        /// What is wrong.
        message: String,
    },
}

/// How long the dispatchers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Until shutdown.
    Continuous,
    /// Until nothing is due (or a sink cannot be reached): `gateway run --once`.
    Drain,
}

/// What one batch came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Deliveries delivered.
    pub delivered: usize,
    /// Failed attempts that will be retried.
    pub retried: usize,
    /// Deliveries that became dead.
    pub dead: usize,
    /// Deliveries deferred (sink not reachable).
    pub deferred: usize,
    /// Deliveries a publicity sink's rules withheld.
    pub withheld: usize,
}

/// What a worker's round found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// Nothing was due.
    Idle,
    /// A batch was handled.
    Batch(BatchReport),
}

/// Inputs of [`settle`] shared by a batch.
#[derive(Debug, Clone, Copy)]
pub struct SettleContext {
    /// When the attempt ended.
    pub now: DateTime<Utc>,
    /// Failed attempts before a delivery is dead, when bounded.
    pub max_attempts: Option<u32>,
    /// How long after its commit a failing delivery is still retried.
    pub retry_for: chrono::Duration,
    /// Backoff of one delivery's retries.
    pub backoff: Backoff,
    /// How long the sink pauses after this batch (deferred deliveries wait as long).
    pub pause: Duration,
}

fn at(now: DateTime<Utc>, wait: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX)
}

/// The new state of delivery `id`, of a version committed at `committed_at`, which had `before`
/// attempts, after `outcome`.
pub fn settle(
    id: i64,
    before: i32,
    committed_at: DateTime<Utc>,
    outcome: &Outcome,
    ctx: &SettleContext,
    random: f64,
) -> Settlement {
    let attempts = before.saturating_add(1);
    let dead = |error: &str| Settlement {
        id,
        status: DeliveryStatus::Dead,
        attempts,
        next_attempt_at: None,
        last_error: Some(error.to_string()),
        delivered_at: None,
    };
    match outcome {
        Outcome::Delivered => Settlement {
            id,
            status: DeliveryStatus::Delivered,
            attempts,
            next_attempt_at: None,
            last_error: None,
            delivered_at: Some(ctx.now),
        },
        Outcome::Rejected { error } => dead(error),
        Outcome::Failed { error, .. }
            if ctx
                .max_attempts
                .is_some_and(|max| u32::try_from(attempts).unwrap_or(u32::MAX) >= max) =>
        {
            dead(&format!("{error} (after {attempts} attempts)"))
        }
        Outcome::Failed { error, .. } if ctx.now - committed_at > ctx.retry_for => dead(&format!(
            "{error} (after {attempts} attempts over {} hours)",
            ctx.retry_for.num_hours()
        )),
        Outcome::Failed { error, retry_after } => {
            let failures = u32::try_from(attempts).unwrap_or(u32::MAX);
            let wait = ctx.backoff.delay(failures, *retry_after, random);
            Settlement {
                id,
                status: DeliveryStatus::Pending,
                attempts,
                next_attempt_at: Some(at(ctx.now, wait)),
                last_error: Some(error.clone()),
                delivered_at: None,
            }
        }
        Outcome::Deferred { reason } => Settlement {
            id,
            status: DeliveryStatus::Pending,
            attempts: before,
            next_attempt_at: Some(at(ctx.now, ctx.pause)),
            last_error: Some(format!("deferred: {reason}")),
            delivered_at: None,
        },
    }
}

/// Consecutive batches that delivered nothing, and until when the sink rests.
#[derive(Debug, Default)]
struct Pause {
    failures: u32,
    until: Option<tokio::time::Instant>,
}

/// One sink and its share of the outbox.
pub struct SinkRunner {
    sink_id: String,
    sink: Arc<dyn Sink>,
    outbox: Arc<dyn OutboxStore>,
    delivery: DeliverySettings,
    batch_size: usize,
    pause: Mutex<Pause>,
    publicity: Option<super::publicity::PublicityOutput>,
    /// Holds versions whose required attachments are not stored yet (证据附件).
    gate: Option<Arc<crate::attachments::gate::DeliveryGate>>,
}

impl SinkRunner {
    /// A runner for `sink`.
    pub fn new(
        sink_id: &str,
        sink: Arc<dyn Sink>,
        outbox: Arc<dyn OutboxStore>,
        delivery: DeliverySettings,
        batch_size: usize,
    ) -> SinkRunner {
        SinkRunner {
            sink_id: sink_id.to_string(),
            sink,
            outbox,
            delivery,
            batch_size,
            pause: Mutex::new(Pause::default()),
            publicity: None,
            gate: None,
        }
    }

    /// The same runner, holding versions until their required attachments are stored.
    pub fn with_gate(mut self, gate: Option<Arc<crate::attachments::gate::DeliveryGate>>) -> SinkRunner {
        self.gate = gate;
        self
    }

    /// This runner feeds a publicity sink: deliveries become public records first.
    pub fn with_publicity(mut self, publicity: super::publicity::PublicityOutput) -> SinkRunner {
        self.publicity = Some(publicity);
        self
    }

    /// Hand the batch to the sink, as public records for a publicity sink: returns one outcome
    /// per delivery, or `None` for one withheld (with the reason in the second list).
    async fn send(&self, deliveries: &[Delivery], bound: Duration) -> (Vec<Outcome>, Vec<Option<String>>) {
        let n = deliveries.len();
        let Some(publicity) = &self.publicity else {
            return (self.send_bounded(deliveries, bound).await, vec![None; n]);
        };
        let mut outcomes: Vec<Option<Outcome>> = vec![None; n];
        let mut withheld: Vec<Option<String>> = vec![None; n];
        let mut to_send = Vec::with_capacity(n);
        let mut sent_index = Vec::with_capacity(n);
        for (i, d) in deliveries.iter().enumerate() {
            match publicity.prepare(d) {
                super::publicity::Prepared::Send(public) => {
                    to_send.push(public);
                    sent_index.push(i);
                }
                super::publicity::Prepared::Withhold(reason) => {
                    tracing::info!(sink = %self.sink_id, key = %d.idempotency_key, %reason, "withheld from publicity");
                    withheld[i] = Some(reason);
                }
                super::publicity::Prepared::Refuse(error) => {
                    outcomes[i] = Some(Outcome::Rejected { error });
                }
            }
        }
        if !to_send.is_empty() {
            let sent = self.send_bounded(&to_send, bound).await;
            for (i, o) in sent_index.into_iter().zip(sent) {
                outcomes[i] = Some(o);
            }
        }
        // A withheld delivery has no outcome of the sink's; its placeholder is never read as one
        // (its settlement is `withheld`, and the pause looks at sent deliveries only).
        let outcomes = outcomes.into_iter().map(|o| o.unwrap_or(Outcome::Delivered)).collect();
        (outcomes, withheld)
    }

    /// The sink's answer for `deliveries`, or deferred ones when it does not answer within `bound`.
    async fn send_bounded(&self, deliveries: &[Delivery], bound: Duration) -> Vec<Outcome> {
        let mut outcomes = match tokio::time::timeout(bound, self.sink.deliver(deliveries)).await {
            Ok(outcomes) => outcomes,
            Err(_) => {
                tracing::warn!(sink = %self.sink_id, seconds = bound.as_secs(),
                    "the sink did not finish the batch within its lease; the deliveries wait for the next attempt");
                vec![Outcome::deferred("the sink did not finish within the lease"); deliveries.len()]
            }
        };
        if outcomes.len() != deliveries.len() {
            tracing::error!(
                got = outcomes.len(),
                "the sink answered for a different number of deliveries"
            );
            outcomes.resize(deliveries.len(), Outcome::deferred("no outcome from the sink"));
        }
        outcomes
    }

    fn backoff(&self) -> Backoff {
        Backoff {
            initial: self.delivery.retry_initial(),
            max: self.delivery.retry_max(),
        }
    }

    fn pause_state(&self) -> std::sync::MutexGuard<'_, Pause> {
        self.pause.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How long the sink still rests, if it does.
    fn paused_for(&self) -> Option<Duration> {
        let until = self.pause_state().until?;
        let now = tokio::time::Instant::now();
        (until > now).then(|| until - now)
    }

    /// Update the pause after a batch; returns the pause now in force. A batch that delivered
    /// something ends the pause; one that delivered nothing lengthens it.
    fn after_batch(&self, outcomes: &[Outcome]) -> Duration {
        let mut pause = self.pause_state();
        if outcomes.contains(&Outcome::Delivered) {
            pause.failures = 0;
            pause.until = None;
            return Duration::ZERO;
        }
        pause.failures = pause.failures.saturating_add(1);
        let retry_after = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Failed { retry_after, .. } => *retry_after,
                _ => None,
            })
            .max();
        let wait = self.backoff().delay(pause.failures, retry_after, jitter());
        pause.until = Some(tokio::time::Instant::now() + wait);
        wait
    }

    /// Claim a batch, deliver it, record the outcomes.
    async fn round(&self) -> Result<Round, StoreError> {
        let now = Utc::now();
        let started = std::time::Instant::now();
        // Milliseconds: the lease is compared with what the store kept when settling.
        let lease_until = at(now, self.delivery.lease()).trunc_subsecs(3);
        let claimed = self
            .outbox
            .claim(&self.sink_id, self.batch_size, now, lease_until)
            .await?;
        if claimed.is_empty() {
            return Ok(Round::Idle);
        }
        let span =
            tracing::info_span!("delivery_batch", sink = %self.sink_id, kind = self.sink.kind(), size = claimed.len());
        let claim_ms = started.elapsed().as_millis() as u64;
        self.deliver(claimed, claim_ms, lease_until)
            .instrument(span)
            .await
            .map(Round::Batch)
    }

    async fn deliver(
        &self,
        claimed: Vec<Claimed>,
        claim_ms: u64,
        lease_until: DateTime<Utc>,
    ) -> Result<BatchReport, StoreError> {
        // Versions waiting for their attachments stay pending (no attempt used, no pause).
        let (claimed, held) = match &self.gate {
            Some(gate) => gate.split(claimed, Utc::now()).await,
            None => (claimed, Vec::new()),
        };
        if !held.is_empty() {
            self.settle_with_retries(&held, lease_until).await?;
            tracing::debug!(sink = %self.sink_id, held = held.len(), "deliveries wait for their attachments");
        }
        if claimed.is_empty() {
            return Ok(BatchReport {
                deferred: held.len(),
                ..BatchReport::default()
            });
        }
        let (mut deliveries, attempts): (Vec<Delivery>, Vec<i32>) =
            claimed.into_iter().map(|c| (c.delivery, c.attempts)).unzip();
        let started = std::time::Instant::now();
        // The sink's work is bounded by the lease (less a margin for settling): past it another
        // instance may take the batch over, and this one's outcomes would no longer count.
        let lease = self.delivery.lease();
        let bound = lease.saturating_sub((lease / 10).max(Duration::from_secs(1)));
        // Sealed personal data is opened for the sink; a version that does not open (a key this
        // instance lacks) fails its attempt with the reason, never reaching the sink sealed.
        let unopened: Vec<Option<String>> = deliveries
            .iter_mut()
            .map(|d| {
                crate::crypto::personal::open_json_registered(&mut d.record)
                    .err()
                    .map(|e| e.to_string())
            })
            .collect();
        let (outcomes, withheld) = if unopened.iter().all(Option::is_none) {
            self.send(&deliveries, bound).await
        } else {
            let sendable: Vec<Delivery> = deliveries
                .iter()
                .zip(&unopened)
                .filter(|(_, e)| e.is_none())
                .map(|(d, _)| d.clone())
                .collect();
            let (sent, sent_withheld) = self.send(&sendable, bound).await;
            let (mut sent, mut sent_withheld) = (sent.into_iter(), sent_withheld.into_iter());
            let mut outcomes = Vec::with_capacity(deliveries.len());
            let mut withheld = Vec::with_capacity(deliveries.len());
            for error in &unopened {
                match error {
                    Some(error) => {
                        outcomes.push(Outcome::Failed {
                            error: error.clone(),
                            retry_after: None,
                        });
                        withheld.push(None);
                    }
                    None => {
                        outcomes.push(sent.next().unwrap_or_else(|| Outcome::deferred("not sent")));
                        withheld.push(sent_withheld.next().flatten());
                    }
                }
            }
            (outcomes, withheld)
        };
        let sink_ms = started.elapsed().as_millis() as u64;
        // The sink's health is judged by what it was given: withheld deliveries were never sent
        // (a batch withheld entirely did not try the sink: no pause).
        let sent: Vec<Outcome> = outcomes
            .iter()
            .zip(&withheld)
            .filter(|(_, w)| w.is_none())
            .map(|(o, _)| o.clone())
            .collect();
        let pause = if sent.is_empty() {
            Duration::ZERO
        } else {
            self.after_batch(&sent)
        };
        let ctx = SettleContext {
            now: Utc::now(),
            max_attempts: self.delivery.max_attempts,
            retry_for: chrono::Duration::hours(i64::try_from(self.delivery.retry_for_hours).unwrap_or(24)),
            backoff: self.backoff(),
            pause,
        };
        let settlements: Vec<Settlement> = deliveries
            .iter()
            .zip(&attempts)
            .zip(&outcomes)
            .zip(&withheld)
            .map(|(((d, before), o), withheld)| match withheld {
                Some(reason) => Settlement {
                    id: d.outbox_id,
                    status: DeliveryStatus::Withheld,
                    attempts: *before,
                    next_attempt_at: None,
                    last_error: Some(reason.clone()),
                    delivered_at: None,
                },
                None => settle(d.outbox_id, *before, d.committed_at, o, &ctx, jitter()),
            })
            .collect();
        let mut report = BatchReport::default();
        for ((s, d), before) in settlements.iter().zip(&deliveries).zip(&attempts) {
            match s.status {
                DeliveryStatus::Delivered => report.delivered += 1,
                DeliveryStatus::Dead => {
                    report.dead += 1;
                    let error = s.last_error.as_deref().unwrap_or_default();
                    tracing::warn!(key = %d.idempotency_key, attempts = s.attempts, error, "delivery is dead");
                }
                DeliveryStatus::Pending if s.attempts > *before => report.retried += 1,
                DeliveryStatus::Pending => report.deferred += 1,
                // Settling never supersedes; only a re-drive does.
                DeliveryStatus::Superseded => {}
                DeliveryStatus::Withheld => report.withheld += 1,
            }
        }
        let settled = self.settle_with_retries(&settlements, lease_until).await?;
        if let Some(publicity) = &self.publicity {
            let marks = settlements
                .iter()
                .zip(&deliveries)
                .filter(|(_, d)| d.case_type == "penalty" && !d.withdrawn)
                .filter_map(|(s, d)| match (s.status, s.delivered_at) {
                    (DeliveryStatus::Delivered, Some(at)) => Some(crate::store::publicity::PublicityMark::Published {
                        code: d.unified_code.clone(),
                        sink: publicity.sink_id().to_string(),
                        at,
                    }),
                    (DeliveryStatus::Withheld, _) => Some(crate::store::publicity::PublicityMark::Withheld {
                        code: d.unified_code.clone(),
                        reason: s.last_error.clone().unwrap_or_default(),
                    }),
                    _ => None,
                })
                .collect();
            publicity.note(marks).await;
        }
        if settled < settlements.len() as u64 {
            tracing::warn!(sink = %self.sink_id, lost = settlements.len() as u64 - settled,
                "the lease ran out before the outcomes were recorded; another instance has those deliveries");
        }
        let settle_ms = started.elapsed().as_millis() as u64 - sink_ms;
        if report.delivered + report.withheld == settlements.len() {
            tracing::debug!(
                delivered = report.delivered,
                claim_ms,
                sink_ms,
                settle_ms,
                "batch delivered"
            );
        } else {
            let first_error = outcomes.iter().find_map(|o| match o {
                Outcome::Failed { error, .. } | Outcome::Rejected { error } => Some(error.as_str()),
                Outcome::Deferred { reason } => Some(reason.as_str()),
                Outcome::Delivered => None,
            });
            tracing::warn!(
                delivered = report.delivered,
                retried = report.retried,
                dead = report.dead,
                deferred = report.deferred,
                pause_ms = pause.as_millis() as u64,
                first_error = first_error.unwrap_or_default(),
                claim_ms,
                sink_ms,
                settle_ms,
                "batch not fully delivered"
            );
        }
        Ok(report)
    }

    /// The sink has acted: recording it must not be lost to a short store outage. If the store
    /// stays away, the lease runs out and the batch is delivered again (at-least-once).
    async fn settle_with_retries(
        &self,
        settlements: &[Settlement],
        lease_until: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut wait = Duration::from_millis(200);
        let mut tries = 0;
        loop {
            match self.outbox.settle(settlements, lease_until).await {
                Ok(settled) => return Ok(settled),
                Err(e) if tries < 8 => {
                    tracing::warn!(error = %e, "cannot record delivery outcomes yet; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(10));
                    tries += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A worker: rounds until shutdown (or, draining, until nothing is due).
    async fn work(self: Arc<Self>, mode: Mode, shutdown: Shutdown) {
        let mut store_failures = 0u32;
        while !shutdown.is_triggered() {
            if let Some(wait) = self.paused_for() {
                if mode == Mode::Drain {
                    break;
                }
                sleep_unless_stopped(wait, &shutdown).await;
                continue;
            }
            match self.round().await {
                Ok(Round::Batch(_)) => store_failures = 0,
                Ok(Round::Idle) => {
                    store_failures = 0;
                    if mode == Mode::Drain {
                        break;
                    }
                    sleep_unless_stopped(self.delivery.poll(), &shutdown).await;
                }
                Err(e) => {
                    store_failures = store_failures.saturating_add(1);
                    let wait = Backoff {
                        initial: Duration::from_secs(1),
                        max: Duration::from_secs(30),
                    }
                    .delay(store_failures, None, jitter());
                    tracing::error!(sink = %self.sink_id, error = %e, wait_ms = wait.as_millis() as u64, "outbox not readable");
                    if mode == Mode::Drain {
                        break;
                    }
                    sleep_unless_stopped(wait, &shutdown).await;
                }
            }
        }
    }
}

async fn sleep_unless_stopped(wait: Duration, shutdown: &Shutdown) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline || shutdown.is_triggered() {
            return;
        }
        tokio::time::sleep((deadline - now).min(Duration::from_millis(100))).await;
    }
}

/// The running dispatchers of every configured sink.
pub struct Dispatchers {
    workers: Vec<JoinHandle<()>>,
    sinks: Vec<Arc<dyn Sink>>,
}

impl Dispatchers {
    /// Build every configured sink and start its workers. `base_dir` is the configuration
    /// file's directory (for `*_file` settings); `publicity` what publicity sinks share.
    pub fn start(
        outbox: Arc<dyn OutboxStore>,
        sinks: &[SinkConfig],
        base_dir: &Path,
        publicity: &super::publicity::PublicityContext<'_>,
        mode: Mode,
        shutdown: Shutdown,
    ) -> Result<Dispatchers, DispatchError> {
        Dispatchers::start_with_gate(outbox, sinks, base_dir, publicity, mode, shutdown, None)
    }

    /// [`Dispatchers::start`], holding each case version until its required attachments are
    /// stored (see [`crate::attachments::gate`]).
    pub fn start_with_gate(
        outbox: Arc<dyn OutboxStore>,
        sinks: &[SinkConfig],
        base_dir: &Path,
        publicity: &super::publicity::PublicityContext<'_>,
        mode: Mode,
        shutdown: Shutdown,
        gate: Option<Arc<crate::attachments::gate::DeliveryGate>>,
    ) -> Result<Dispatchers, DispatchError> {
        let mut runners = Vec::new();
        for s in sinks {
            let fail = |message: String| DispatchError::Sink {
                sink: s.id.clone(),
                message,
            };
            let settings = SinkSettings::parse(&s.kind, &s.settings)
                .map_err(|problems| fail(problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")))?;
            let sink = settings.build(&s.id, base_dir).map_err(|e| fail(e.to_string()))?;
            let runner = SinkRunner::new(
                &s.id,
                sink,
                Arc::clone(&outbox),
                settings.delivery.clone(),
                settings.batch_size(),
            )
            .with_gate(gate.clone());
            let runner = if settings.delivery.content == adapters::sinks::settings::SinkContent::Publicity {
                runner.with_publicity(super::publicity::PublicityOutput::new(&s.id, &s.kind, publicity))
            } else {
                runner
            };
            runners.push((Arc::new(runner), settings.delivery.parallel_batches));
        }
        let mut workers = Vec::new();
        let mut built = Vec::new();
        for (runner, parallel) in runners {
            tracing::info!(sink = %runner.sink_id, kind = runner.sink.kind(), batch_size = runner.batch_size, parallel, "dispatcher started");
            built.push(Arc::clone(&runner.sink));
            for _ in 0..parallel.max(1) {
                workers.push(tokio::spawn(Arc::clone(&runner).work(mode, shutdown.clone())));
            }
        }
        Ok(Dispatchers { workers, sinks: built })
    }

    /// Wait for every worker to end (after shutdown, or when drained), then close the sinks.
    pub async fn join(self) {
        for w in self.workers {
            if let Err(e) = w.await {
                tracing::error!(error = %e, "a dispatcher worker failed");
            }
        }
        for s in self.sinks {
            s.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> SettleContext {
        SettleContext {
            now: DateTime::UNIX_EPOCH,
            max_attempts: Some(3),
            retry_for: chrono::Duration::hours(24),
            backoff: Backoff {
                initial: Duration::from_secs(10),
                max: Duration::from_secs(100),
            },
            pause: Duration::from_secs(7),
        }
    }

    #[test]
    fn delivered_records_the_time_and_clears_the_error() {
        let s = settle(1, 1, DateTime::UNIX_EPOCH, &Outcome::Delivered, &ctx(), 0.0);
        assert_eq!(
            (s.status, s.attempts, s.delivered_at, s.last_error),
            (DeliveryStatus::Delivered, 2, Some(DateTime::UNIX_EPOCH), None)
        );
    }

    #[test]
    fn failed_attempt_is_retried_later_until_attempts_run_out() {
        let s = settle(
            1,
            0,
            DateTime::UNIX_EPOCH,
            &Outcome::failed("HTTP 503: busy"),
            &ctx(),
            0.0,
        );
        assert_eq!(s.status, DeliveryStatus::Pending);
        assert_eq!(s.attempts, 1);
        assert_eq!(
            s.next_attempt_at,
            Some(DateTime::UNIX_EPOCH + chrono::Duration::seconds(5))
        );
        let s = settle(
            1,
            1,
            DateTime::UNIX_EPOCH,
            &Outcome::failed("HTTP 503: busy"),
            &ctx(),
            1.0,
        );
        assert_eq!(
            s.next_attempt_at,
            Some(DateTime::UNIX_EPOCH + chrono::Duration::seconds(20))
        );
        let s = settle(
            1,
            2,
            DateTime::UNIX_EPOCH,
            &Outcome::failed("HTTP 503: busy"),
            &ctx(),
            0.0,
        );
        assert_eq!(s.status, DeliveryStatus::Dead);
        assert_eq!(s.last_error.as_deref(), Some("HTTP 503: busy (after 3 attempts)"));
    }

    #[test]
    fn retry_after_delays_the_next_attempt() {
        let o = Outcome::Failed {
            error: "HTTP 429".into(),
            retry_after: Some(Duration::from_secs(60)),
        };
        let s = settle(1, 0, DateTime::UNIX_EPOCH, &o, &ctx(), 0.0);
        assert_eq!(
            s.next_attempt_at,
            Some(DateTime::UNIX_EPOCH + chrono::Duration::seconds(60))
        );
    }

    #[test]
    fn a_receiver_down_for_thirty_minutes_is_retried_and_nothing_goes_dead_within_the_budget() {
        let unbounded = SettleContext {
            max_attempts: None,
            ..ctx()
        };
        let committed = DateTime::UNIX_EPOCH - chrono::Duration::minutes(30);
        // A 503 every few seconds for half an hour: far more than the old 10 attempts.
        let s = settle(1, 400, committed, &Outcome::failed("HTTP 503: busy"), &unbounded, 0.0);
        assert_eq!(s.status, DeliveryStatus::Pending, "{s:?}");
        assert!(s.next_attempt_at.is_some());
        // A day later the budget is used up.
        let long_ago = DateTime::UNIX_EPOCH - chrono::Duration::hours(25);
        let s = settle(1, 400, long_ago, &Outcome::failed("HTTP 503: busy"), &unbounded, 0.0);
        assert_eq!(s.status, DeliveryStatus::Dead);
        assert!(
            s.last_error.as_deref().is_some_and(|e| e.contains("over 24 hours")),
            "{:?}",
            s.last_error
        );
        // A 4xx refusal is dead at once, whatever the budget.
        let s = settle(
            1,
            0,
            committed,
            &Outcome::Rejected {
                error: "HTTP 400: bad".into(),
            },
            &unbounded,
            0.0,
        );
        assert_eq!(s.status, DeliveryStatus::Dead);
    }

    #[test]
    fn rejected_is_dead_at_once_with_the_answer() {
        let s = settle(
            1,
            0,
            DateTime::UNIX_EPOCH,
            &Outcome::Rejected {
                error: "HTTP 422: 缺少字段".into(),
            },
            &ctx(),
            0.0,
        );
        assert_eq!((s.status, s.attempts), (DeliveryStatus::Dead, 1));
        assert_eq!(s.last_error.as_deref(), Some("HTTP 422: 缺少字段"));
    }

    #[test]
    fn deferred_uses_no_attempt_and_waits_for_the_pause() {
        let s = settle(
            1,
            2,
            DateTime::UNIX_EPOCH,
            &Outcome::deferred("connection refused"),
            &ctx(),
            0.0,
        );
        assert_eq!((s.status, s.attempts), (DeliveryStatus::Pending, 2));
        assert_eq!(
            s.next_attempt_at,
            Some(DateTime::UNIX_EPOCH + chrono::Duration::seconds(7))
        );
        assert_eq!(s.last_error.as_deref(), Some("deferred: connection refused"));
    }
}
