//! Several instances on one store: who runs (instances and their heartbeats) and which instance
//! runs each scheduled job (leases with epochs). A commit made for a job carries its
//! [`Fence`]; the store refuses it ([`StoreError::Fenced`](super::StoreError::Fenced)) once
//! another instance holds a newer epoch. Expiry is judged by the store's clock (PostgreSQL's
//! `now()`), never by each instance's own. Both backends implement [`ClusterStore`].

use super::error::StoreResult;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::Duration;

/// The proof that an instance holds a job's lease: the job, the holder and the lease's epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fence {
    /// The job (`source:<id>` for a pulled source or catalogue, `directory:<id>`).
    pub job: String,
    /// The holding instance.
    pub holder: String,
    /// The epoch: one more at every change of holder (or re-acquisition).
    pub epoch: i64,
}

/// What an instance says of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceInfo {
    /// Its id (unique among instances on the store).
    pub id: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: i32,
    /// The gateway's version.
    pub version: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
}

/// An instance as the store knows it.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceRow {
    /// What it said of itself.
    #[serde(flatten)]
    pub info: InstanceInfo,
    /// Its last heartbeat.
    pub last_heartbeat: DateTime<Utc>,
    /// Seconds since then, by the store's clock.
    pub seconds_since_heartbeat: i64,
    /// Records it has committed since it started (as of its last heartbeat).
    pub committed: i64,
    /// When it stopped cleanly, if it did.
    pub stopped_at: Option<DateTime<Utc>>,
}

/// A job's lease.
#[derive(Debug, Clone, Serialize)]
pub struct LeaseRow {
    /// The job.
    pub job: String,
    /// Who holds (or last held) it.
    pub holder: String,
    /// Its epoch.
    pub epoch: i64,
    /// When the holder took it.
    pub acquired_at: DateTime<Utc>,
    /// When it runs out unless renewed.
    pub expires_at: DateTime<Utc>,
    /// Whether it has run out, by the store's clock.
    pub expired: bool,
}

/// Instances and leases in a store.
#[async_trait]
pub trait ClusterStore: Send + Sync {
    /// Take `job`'s lease for `holder` for `ttl` if it is free, has run out at least `grace`
    /// ago, or is `holder`'s already; the new epoch, or `None` while another instance holds it.
    async fn lease_acquire(&self, job: &str, holder: &str, ttl: Duration, grace: Duration) -> StoreResult<Option<i64>>;

    /// Extend a held lease by `ttl` from now; false when another instance has taken it since.
    async fn lease_renew(&self, fence: &Fence, ttl: Duration) -> StoreResult<bool>;

    /// Give a held lease up (it runs out now), so another instance takes the job at once.
    async fn lease_release(&self, fence: &Fence) -> StoreResult<()>;

    /// Every lease, by job.
    async fn leases(&self) -> StoreResult<Vec<LeaseRow>>;

    /// Record that `instance` is alive, with the records it has committed since it started.
    async fn instance_heartbeat(&self, instance: &InstanceInfo, committed: i64) -> StoreResult<()>;

    /// Record that the instance stopped cleanly.
    async fn instance_stopped(&self, id: &str) -> StoreResult<()>;

    /// End every lease `holder` still holds (after all its jobs have ended: a lease taken while
    /// it was stopping); answers how many.
    async fn leases_release_held(&self, holder: &str) -> StoreResult<u64>;

    /// Every instance that ran on the store, most recent heartbeat first.
    async fn instances(&self) -> StoreResult<Vec<InstanceRow>>;

    /// Forget instances whose last heartbeat is older than `age` (each restart is a new
    /// instance: the list would otherwise grow for ever); how many were forgotten.
    async fn instances_forget(&self, age: Duration) -> StoreResult<u64>;
}
