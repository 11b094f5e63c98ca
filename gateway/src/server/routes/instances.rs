//! `GET /api/instances`: the gateway instances on this store, each with its heartbeat, the
//! jobs it holds and the records it has committed; an instance silent for three heartbeats
//! without a clean stop is shown as gone.

use crate::server::error::ApiResult;
use crate::server::Shared;
use crate::store::{InstanceRow, LeaseRow};
use axum::extract::State;
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

/// An instance as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceView {
    /// What the store knows of it.
    #[serde(flatten)]
    pub row: InstanceRow,
    /// `alive`, `gone` (silent for three heartbeats without a clean stop) or `stopped`.
    pub state: &'static str,
    /// The jobs whose unexpired leases it holds.
    pub jobs: Vec<String>,
    /// Whether it is the instance answering.
    pub this: bool,
}

/// The state of an instance: `stopped` after a clean stop, `gone` when silent for three
/// heartbeats, else `alive`.
pub fn instance_state(row: &InstanceRow, heartbeat_seconds: f64) -> &'static str {
    if row.stopped_at.is_some() {
        "stopped"
    } else if row.seconds_since_heartbeat as f64 > 3.0 * heartbeat_seconds {
        "gone"
    } else {
        "alive"
    }
}

/// Every instance with its state and jobs, and every lease.
pub async fn views(state: &Shared) -> ApiResult<(Vec<InstanceView>, Vec<LeaseRow>)> {
    let cluster = state.runtime.store.cluster();
    let (rows, leases) = tokio::try_join!(cluster.instances(), cluster.leases())?;
    let heartbeat = state.runtime.resolved.config.cluster.heartbeat_seconds;
    let views = rows
        .into_iter()
        .map(|row| InstanceView {
            state: instance_state(&row, heartbeat),
            jobs: leases
                .iter()
                .filter(|l| l.holder == row.info.id && !l.expired)
                .map(|l| l.job.clone())
                .collect(),
            this: row.info.id == state.runtime.instance.id,
            row,
        })
        .collect();
    Ok((views, leases))
}

/// `GET /api/instances`.
pub async fn list(State(state): State<Shared>) -> ApiResult<Json<Value>> {
    let (items, leases) = views(&state).await?;
    Ok(Json(json!({
        "this": state.runtime.instance.id,
        "items": items,
        "leases": leases,
    })))
}
