//! `GET /api/sources`, `GET /api/sources/{id}`, `POST /api/sources/{id}/pull|resync`.

use crate::server::auth::Principal;
use crate::server::error::{ApiError, ApiResult};
use crate::server::ApiQuery;
use crate::server::{audit, Shared};
use crate::store::LeaseRow;
use crate::telemetry::Summary;
use crate::telemetry::{CommandError, HealthState, RunReport, SourceCommand, SourceStatus};
use adapters::sources::{CircuitState, SourceHealth};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::Serialize;
use serde_json::json;

/// An error with its time.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorView {
    /// When.
    pub at: DateTime<Utc>,
    /// What.
    pub message: String,
}

/// Connection health of a pull source.
#[derive(Debug, Clone, Serialize)]
pub struct HealthView {
    /// `closed`, `open` or `half_open`.
    pub circuit: CircuitState,
    /// When an open circuit lets a trial request through.
    pub circuit_reopens_at: Option<DateTime<Utc>>,
    /// The last error.
    pub last_error: Option<ErrorView>,
    /// Requests sent since start.
    pub requests: u64,
    /// Requests that failed after retries.
    pub failures: u64,
    /// Requests retried.
    pub retries: u64,
}

/// What the API shows of a source.
#[derive(Debug, Clone, Serialize)]
pub struct SourceView {
    /// Source id.
    pub id: String,
    /// `file`, `directory`, `rest`, `soap`, `amqp` or `push`.
    pub kind: String,
    /// Configured input format.
    pub format: String,
    /// The system this source is an endpoint of (one `[[sources]]` block with endpoints,
    /// sharing one connection and rate limit), if any.
    pub system: Option<String>,
    /// Id of the mapping in use.
    pub mapping_id: Option<String>,
    /// Version of the mapping in use.
    pub mapping_version: Option<i64>,
    /// Whether a pull is running now.
    pub pulling: bool,
    /// When the last pull started.
    pub last_pull_started: Option<DateTime<Utc>>,
    /// When the last pull ended.
    pub last_pull_finished: Option<DateTime<Utc>>,
    /// When the next scheduled pull is due.
    pub next_pull: Option<DateTime<Utc>>,
    /// The cursor the scheduler reported.
    pub cursor: Option<String>,
    /// The cursor persisted in the store.
    pub stored_cursor: Option<String>,
    /// Seconds between the newest record's watermark and now.
    pub lag_seconds: Option<i64>,
    /// The last pull reached `max_pages` with more records and could not move its cursor.
    pub stalled: bool,
    /// Counts since the gateway started.
    pub totals: Summary,
    /// The last error.
    pub last_error: Option<ErrorView>,
    /// Connection health (pull sources).
    pub health: Option<HealthView>,
    /// Health in one word: `healthy`, `degraded`, `failing`, `paused` or `stalled`.
    pub state: HealthState,
    /// Runs (or connections) that failed one after the other, up to now.
    pub failures_in_row: u32,
    /// Since when it has been failing.
    pub failing_since: Option<DateTime<Utc>>,
    /// When a run last succeeded.
    pub last_success: Option<DateTime<Utc>>,
    /// While paused by the circuit breaker: when the next trial is allowed.
    pub paused_until: Option<DateTime<Utc>>,
    /// Why the last successful run counts as degraded.
    pub degraded_reason: Option<String>,
    /// How the last run ended.
    pub last_run: Option<RunReport>,
    /// For a scheduled job: its lease (which instance runs it). The figures above are this
    /// instance's; while another instance runs the job, they are there.
    pub lease: Option<LeaseView>,
}

/// Which instance runs a scheduled job.
#[derive(Debug, Clone, Serialize)]
pub struct LeaseView {
    /// The job (`source:<id>` for a pulled source or catalogue, `directory:<id>`).
    pub job: String,
    /// The instance holding it (or that last held it).
    pub holder: Option<String>,
    /// Its epoch.
    pub epoch: Option<i64>,
    /// Whether the lease has run out (nobody runs the job until an instance takes it).
    pub expired: bool,
    /// Whether the instance answering runs it.
    pub here: bool,
}

/// The job name of a source's scheduled work, if it has one.
fn job_of(kind: &str, id: &str) -> Option<String> {
    match kind {
        "rest" | "soap" => Some(crate::runtime::cluster::job_name("source", id)),
        "directory" => Some(crate::runtime::cluster::job_name("directory", id)),
        _ => None,
    }
}

fn health_view(h: SourceHealth) -> HealthView {
    HealthView {
        circuit: h.circuit,
        circuit_reopens_at: h.circuit_reopens_at,
        last_error: h.last_error.map(|(at, message)| ErrorView { at, message }),
        requests: h.requests,
        failures: h.failures,
        retries: h.retries,
    }
}

async fn view(state: &Shared, status: SourceStatus, leases: &[LeaseRow]) -> ApiResult<SourceView> {
    let lease = status.runs_here.and_then(|here| {
        let job = job_of(&status.kind, &status.id)?;
        let row = leases.iter().find(|l| l.job == job);
        Some(LeaseView {
            holder: row.map(|l| l.holder.clone()),
            epoch: row.map(|l| l.epoch),
            expired: row.is_none_or(|l| l.expired),
            here,
            job,
        })
    });
    let config = state.runtime.resolved.config.source(&status.id).map(|(_, c)| c);
    let preparer = state.runtime.preparers.get(&status.id);
    let stored_cursor = state.runtime.store.cursor(&status.id).await?;
    Ok(SourceView {
        format: config.map(|c| c.format.clone()).unwrap_or_default(),
        system: config.and_then(|c| c.system_id()).map(str::to_string),
        mapping_id: preparer.as_ref().map(|p| p.mapping.id().to_string()),
        mapping_version: preparer.as_ref().map(|p| p.mapping.version()),
        id: status.id,
        kind: status.kind,
        pulling: status.pulling,
        last_pull_started: status.last_pull_started,
        last_pull_finished: status.last_pull_finished,
        next_pull: status.next_pull,
        cursor: status.cursor,
        stored_cursor,
        lag_seconds: status.lag_seconds,
        stalled: status.stalled,
        totals: status.totals,
        last_error: status.last_error.map(|(at, message)| ErrorView { at, message }),
        health: status.health.map(health_view),
        state: status.state,
        failures_in_row: status.failures_in_row,
        failing_since: status.failing_since,
        last_success: status.last_success,
        paused_until: status.paused_until,
        degraded_reason: status.degraded_reason,
        last_run: status.last_run,
        lease,
    })
}

fn unknown(id: &str) -> ApiError {
    ApiError::not_found(format!("未知来源 {id:?}"), format!("unknown source {id:?}"))
}

/// `GET /api/sources`: every source with its status.
pub async fn list(State(state): State<Shared>) -> ApiResult<Json<serde_json::Value>> {
    let leases = state.runtime.store.cluster().leases().await?;
    let mut items = Vec::new();
    for status in state.runtime.sources.snapshot() {
        items.push(view(&state, status, &leases).await?);
    }
    Ok(Json(json!({ "items": items })))
}

/// `GET /api/sources/{id}`.
pub async fn get(State(state): State<Shared>, Path(id): Path<String>) -> ApiResult<Json<SourceView>> {
    let status = state.runtime.sources.get(&id).ok_or_else(|| unknown(&id))?;
    let leases = state.runtime.store.cluster().leases().await?;
    Ok(Json(view(&state, status, &leases).await?))
}

/// `?wait=SECONDS` of the pull and resync routes.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    /// Wait up to this many seconds (at most 120) for the run to end, and answer how it ended.
    pub wait: Option<u64>,
}

async fn command(
    state: &Shared,
    principal: &Principal,
    id: &str,
    command: SourceCommand,
    wait: Option<u64>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let status = state.runtime.sources.get(id);
    if let Some(status) = status.as_ref().filter(|s| s.runs_here == Some(false)) {
        // Another instance runs this job: say which, so the operator asks that one.
        let job = job_of(&status.kind, id).unwrap_or_default();
        let holder = state
            .runtime
            .store
            .cluster()
            .leases()
            .await?
            .into_iter()
            .find(|l| l.job == job && !l.expired)
            .map(|l| l.holder);
        let holder_text = holder.clone().unwrap_or_else(|| "（暂无 / none yet）".into());
        return Err(ApiError::conflict(
            "runs_elsewhere",
            format!("来源 {id:?} 由实例 {holder_text} 运行；请向该实例发出此命令"),
            format!("source {id:?} runs on instance {holder_text}; send the command to that instance"),
        ));
    }
    let runs_before = status.map(|s| s.runs).unwrap_or(0);
    state.runtime.sources.command(id, command).map_err(|e| match e {
        CommandError::UnknownSource(_) => unknown(id),
        CommandError::NotPulled(_) => ApiError::conflict(
            "not_pulled",
            format!("来源 {id:?} 不是拉取型来源"),
            format!("source {id:?} is not pulled on a schedule"),
        ),
        CommandError::NotRunning(_) => ApiError::conflict(
            "not_running",
            format!("来源 {id:?} 的调度器未运行"),
            format!("the scheduler of source {id:?} is not running"),
        ),
    })?;
    let name = match command {
        SourceCommand::PullNow => "source.pull",
        SourceCommand::FullResync => "source.resync",
    };
    audit(state, principal, name, format!("source:{id}"), json!({})).await;
    let Some(seconds) = wait.filter(|s| *s > 0) else {
        return Ok((StatusCode::ACCEPTED, Json(json!({ "source": id, "command": command }))));
    };
    // Wait for the scheduler to end a run after this command, and say how it ended.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(seconds.min(120));
    loop {
        if let Some(status) = state
            .runtime
            .sources
            .get(id)
            .filter(|s| s.runs > runs_before && !s.pulling)
        {
            return Ok((
                StatusCode::OK,
                Json(json!({
                    "source": id,
                    "command": command,
                    "finished": true,
                    "state": status.state,
                    "last_run": status.last_run,
                    "last_error": status.last_error.map(|(at, message)| ErrorView { at, message }),
                    "paused_until": status.paused_until,
                })),
            ));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "source": id, "command": command, "finished": false })),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// `POST /api/sources/{id}/pull[?wait=SECONDS]`: pull now from the stored cursor (202; with
/// `wait`, 200 and how the run ended once it has; 409 when the source is not pulled or its
/// scheduler is not running).
pub async fn pull(
    State(state): State<Shared>,
    principal: Principal,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<WaitQuery>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    command(&state, &principal, &id, SourceCommand::PullNow, q.wait).await
}

/// `POST /api/sources/{id}/resync[?wait=SECONDS]`: pull everything again from the beginning.
pub async fn resync(
    State(state): State<Shared>,
    principal: Principal,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<WaitQuery>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    command(&state, &principal, &id, SourceCommand::FullResync, q.wait).await
}
