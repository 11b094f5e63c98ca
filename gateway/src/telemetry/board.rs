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
            }
        }
    }

    /// Count a committed batch of a source.
    pub fn add_summary(&self, id: &str, summary: &Summary) {
        self.update(id, |s| s.totals.merge(summary));
    }

    /// Record an error of a source.
    pub fn set_error(&self, id: &str, message: impl Into<String>) {
        let message = message.into();
        self.update(id, |s| s.last_error = Some((Utc::now(), message)));
    }

    /// Every source's status, by id.
    pub fn snapshot(&self) -> Vec<SourceStatus> {
        self.status
            .read()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default()
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
