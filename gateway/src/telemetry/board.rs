//! The source board: what operators see of every source while the gateway runs (kind, pulls,
//! cursor and lag, totals since start, last error, connection health), and the command channel
//! to each source's scheduler (pull now, full resync).

use super::summary::Summary;
use adapters::sources::SourceHealth;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;
use tokio::sync::mpsc;

/// An operator's request to a source's scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceCommand {
    /// Pull now from the stored cursor.
    PullNow,
    /// Pull everything again from the beginning.
    FullResync,
}

/// A source's health in one word, worst first: what the dashboard's badge, the
/// `gateway_source_health` metric and `/readyz` say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// Its last run reached `max_pages` with more records and could not move its cursor.
    Stalled,
    /// Its circuit breaker is open after repeated failures: no requests until `paused_until`.
    Paused,
    /// Its last run (or connection) failed.
    Failing,
    /// Its last run succeeded, but not cleanly (requests had to be retried, records were refused).
    Degraded,
    /// Its last run succeeded (or it has not failed since start).
    #[default]
    Healthy,
}

impl HealthState {
    /// Every state, worst first.
    pub const ALL: [HealthState; 5] = [
        HealthState::Stalled,
        HealthState::Paused,
        HealthState::Failing,
        HealthState::Degraded,
        HealthState::Healthy,
    ];

    /// The state's name.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Stalled => "stalled",
            HealthState::Paused => "paused",
            HealthState::Failing => "failing",
            HealthState::Degraded => "degraded",
            HealthState::Healthy => "healthy",
        }
    }

    /// Whether the source works (healthy or degraded).
    pub fn is_working(self) -> bool {
        matches!(self, HealthState::Healthy | HealthState::Degraded)
    }
}

/// How a source's last run (a pull, or an AMQP consumer's start) ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunReport {
    /// When it ended.
    pub at: DateTime<Utc>,
    /// Whether it succeeded.
    pub ok: bool,
    /// What it did (records), when it succeeded.
    pub summary: Option<Summary>,
    /// Why it failed, or what made it degraded.
    pub message: Option<String>,
}

/// What operators see of one source.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceStatus {
    /// Source id.
    pub id: String,
    /// `file`, `directory`, `rest`, `soap`, `amqp` or `push`.
    pub kind: String,
    /// Whether a pull is running now.
    pub pulling: bool,
    /// When the last pull started.
    pub last_pull_started: Option<DateTime<Utc>>,
    /// When the last pull ended (successfully or not).
    pub last_pull_finished: Option<DateTime<Utc>>,
    /// When the next scheduled pull is due.
    pub next_pull: Option<DateTime<Utc>>,
    /// The persisted cursor (watermark).
    pub cursor: Option<String>,
    /// Seconds between the newest record's watermark and now, when the cursor is a time.
    pub lag_seconds: Option<i64>,
    /// The last pull stopped at `max_pages` with more records at the source and could not move
    /// its cursor: the source does not advance until an operator acts.
    pub stalled: bool,
    /// Counts since the gateway started.
    pub totals: Summary,
    /// The last error, with its time.
    pub last_error: Option<(DateTime<Utc>, String)>,
    /// Connection health of pull sources (circuit breaker, requests).
    pub health: Option<SourceHealth>,
    /// Health in one word (kept up to date by every change through the board).
    pub state: HealthState,
    /// Runs (or connection attempts) that failed one after the other, up to now.
    pub failures_in_row: u32,
    /// Since when it has been failing (the first failure in a row).
    pub failing_since: Option<DateTime<Utc>>,
    /// When a run last succeeded.
    pub last_success: Option<DateTime<Utc>>,
    /// While the circuit breaker is open: when the next trial request is allowed.
    pub paused_until: Option<DateTime<Utc>>,
    /// Why the last successful run counts as degraded.
    pub degraded_reason: Option<String>,
    /// How the last run ended.
    pub last_run: Option<RunReport>,
    /// Runs ended since start (an operator's "pull now" waits for this to move).
    pub runs: u64,
    /// For a scheduled job (REST/SOAP source, catalogue, drop folder): whether this instance
    /// holds its lease and runs it (`false`: another instance does; its figures are there).
    pub runs_here: Option<bool>,
}

impl SourceStatus {
    /// Work out `state` from the other fields, at `now`.
    fn refresh_state(&mut self, now: DateTime<Utc>) {
        self.state = if self.stalled {
            HealthState::Stalled
        } else if self.paused_until.is_some_and(|until| until > now) {
            HealthState::Paused
        } else if self.failures_in_row > 0 {
            HealthState::Failing
        } else if self.degraded_reason.is_some() {
            HealthState::Degraded
        } else {
            HealthState::Healthy
        };
    }
}

/// The live status of every source and the channels to their schedulers.
#[derive(Debug, Default)]
pub struct SourceBoard {
    status: RwLock<BTreeMap<String, SourceStatus>>,
    controls: RwLock<HashMap<String, mpsc::Sender<SourceCommand>>>,
}

/// Why a command could not be sent to a source.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    /// No such source.
    #[error("未知来源 / unknown source {0:?}")]
    UnknownSource(String),
    /// The source is not pulled on a schedule (file, directory, amqp or push).
    #[error("来源 {0:?} 不支持拉取 / source {0:?} is not pulled")]
    NotPulled(String),
    /// Its scheduler is not running (e.g. `gateway ingest`, or shutting down).
    #[error("来源 {0:?} 的调度器未运行 / the scheduler of {0:?} is not running")]
    NotRunning(String),
}

impl SourceBoard {
    /// Register a source with its kind.
    pub fn register(&self, id: &str, kind: &str) {
        if let Ok(mut s) = self.status.write() {
            s.entry(id.to_string()).or_insert_with(|| SourceStatus {
                id: id.to_string(),
                kind: kind.to_string(),
                ..SourceStatus::default()
            });
        }
    }

    /// Attach the command channel of a source's scheduler.
    pub fn attach_control(&self, id: &str, tx: mpsc::Sender<SourceCommand>) {
        if let Ok(mut c) = self.controls.write() {
            c.insert(id.to_string(), tx);
        }
    }

    /// Change a source's status.
    pub fn update(&self, id: &str, change: impl FnOnce(&mut SourceStatus)) {
        if let Ok(mut s) = self.status.write() {
            if let Some(status) = s.get_mut(id) {
                change(status);
                status.refresh_state(Utc::now());
            }
        }
    }

    /// A run (or a consumer's start) succeeded: the failures in a row end; `degraded` says why it
    /// was not clean, if it was not.
    pub fn run_succeeded(&self, id: &str, summary: Option<Summary>, degraded: Option<String>) {
        let now = Utc::now();
        self.update(id, |s| {
            s.failures_in_row = 0;
            s.failing_since = None;
            s.paused_until = None;
            s.last_success = Some(now);
            s.last_run = Some(RunReport {
                at: now,
                ok: true,
                summary,
                message: degraded.clone(),
            });
            s.degraded_reason = degraded;
            s.runs += 1;
        });
    }

    /// A run (or a connection) failed with `message`. `paused_until`: the circuit breaker is open
    /// until then. An error that only says the source is paused (`only_paused`) does not replace
    /// the last real error, which stays the one operators see (`last_error`), with the pause
    /// beside it.
    pub fn run_failed(&self, id: &str, message: &str, paused_until: Option<DateTime<Utc>>, only_paused: bool) {
        let now = Utc::now();
        self.update(id, |s| {
            s.failures_in_row = s.failures_in_row.saturating_add(1);
            s.failing_since.get_or_insert(now);
            s.paused_until = paused_until;
            if !only_paused || s.last_error.is_none() {
                s.last_error = Some((now, message.to_string()));
            }
            let shown = match (&s.last_error, only_paused) {
                (Some((_, real)), true) => format!("{message}; {real}"),
                _ => message.to_string(),
            };
            s.last_run = Some(RunReport {
                at: now,
                ok: false,
                summary: None,
                message: Some(shown),
            });
            s.runs += 1;
        });
    }

    /// Count a committed batch of a source.
    pub fn add_summary(&self, id: &str, summary: &Summary) {
        self.update(id, |s| s.totals.merge(summary));
    }

    /// Record an error of a source that does not stop it (a refused catalogue item, an
    /// unreadable file, a dead-lettered message): it shows as `degraded` until a run succeeds
    /// cleanly.
    pub fn set_degraded(&self, id: &str, message: impl Into<String>) {
        let message = message.into();
        self.update(id, |s| {
            s.last_error = Some((Utc::now(), message.clone()));
            s.degraded_reason = Some(message);
        });
    }

    /// Every source's status, by id.
    pub fn snapshot(&self) -> Vec<SourceStatus> {
        self.status
            .read()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Records committed on this instance since it started, every source together (accepted,
    /// updated, unchanged, stale or quarantined).
    pub fn committed_total(&self) -> i64 {
        self.snapshot()
            .iter()
            .map(|s| s.totals.accepted + s.totals.updated + s.totals.unchanged + s.totals.stale + s.totals.quarantined)
            .sum::<u64>()
            .try_into()
            .unwrap_or(i64::MAX)
    }

    /// One source's status.
    pub fn get(&self, id: &str) -> Option<SourceStatus> {
        self.status.read().ok()?.get(id).cloned()
    }

    /// Ask a source's scheduler to pull now or resync.
    pub fn command(&self, id: &str, command: SourceCommand) -> Result<(), CommandError> {
        let kind = self
            .get(id)
            .map(|s| s.kind)
            .ok_or_else(|| CommandError::UnknownSource(id.to_string()))?;
        if !matches!(kind.as_str(), "rest" | "soap" | "directory") {
            return Err(CommandError::NotPulled(id.to_string()));
        }
        let tx = self
            .controls
            .read()
            .ok()
            .and_then(|c| c.get(id).cloned())
            .ok_or_else(|| CommandError::NotRunning(id.to_string()))?;
        tx.try_send(command).or_else(|e| match e {
            // A command already queued will run the pull anyway.
            mpsc::error::TrySendError::Full(_) => Ok(()),
            mpsc::error::TrySendError::Closed(_) => Err(CommandError::NotRunning(id.to_string())),
        })
    }
}
