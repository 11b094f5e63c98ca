//! Several gateway instances on one store: this instance's identity and heartbeat, and the
//! lease runner that lets a scheduled job (a REST/SOAP source, a catalogue, a drop folder) run
//! on one instance at a time. The job runs while its lease is held and renewed; it is stopped
//! when the lease is lost (renewal refused, or the store unreachable for longer than the lease),
//! and every commit it makes carries the lease's [`Fence`], so a paused or partitioned old
//! holder's late commit is refused by the store. A clean stop releases the lease at once.

pub use super::instance::{this_instance, Share};
use super::Runtime;
use crate::config::ClusterConfig;
use crate::shutdown::Shutdown;
use crate::store::{Fence, InstanceInfo, Store};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The lease timings of a deployment (`[cluster]`).
#[derive(Debug, Clone, Copy)]
pub struct LeaseTimings {
    /// How long a lease lasts without renewal.
    pub lease: Duration,
    /// How often a held lease is renewed.
    pub renew: Duration,
    /// How often a free job is tried.
    pub acquire: Duration,
    /// How often the instance heartbeats.
    pub heartbeat: Duration,
}

impl LeaseTimings {
    /// The timings configured.
    pub fn from_config(c: &ClusterConfig) -> LeaseTimings {
        let secs = |s: f64| Duration::from_secs_f64(s.clamp(0.1, 3600.0));
        LeaseTimings {
            lease: secs(c.lease_seconds),
            renew: secs(c.renew_seconds),
            acquire: secs(c.acquire_seconds),
            heartbeat: secs(c.heartbeat_seconds),
        }
    }
}

/// A held lease as its job sees it: the fence its commits carry, and whether it may still act
/// (by this process's clock: the last renewal sent, plus the lease, minus a safety margin).
/// A job checks [`JobLease::valid`] before each request to its source, so an instance that was
/// paused past its lease (and whose job another instance may run now) sends nothing more
/// before it learns it lost the lease.
#[derive(Debug, Clone)]
pub struct JobLease {
    /// What the job's commits carry.
    pub fence: Fence,
    valid_until: Arc<std::sync::Mutex<Instant>>,
}

impl JobLease {
    /// A lease taken (or renewed) by a request sent at `sent`, lasting `lease`.
    pub fn new(fence: Fence, sent: Instant, lease: Duration) -> JobLease {
        JobLease {
            fence,
            valid_until: Arc::new(std::sync::Mutex::new(sent + safe(lease))),
        }
    }

    /// A lease that is always valid (a job that runs without one, e.g. in tests).
    pub fn unbounded(fence: Fence) -> JobLease {
        JobLease::new(fence, Instant::now(), Duration::from_secs(100 * 365 * 86400))
    }

    /// Whether the job may still act on its lease now.
    pub fn valid(&self) -> bool {
        self.valid_until.lock().map(|t| Instant::now() < *t).unwrap_or(false)
    }

    fn renewed(&self, sent: Instant, lease: Duration) {
        if let Ok(mut t) = self.valid_until.lock() {
            *t = sent + safe(lease);
        }
    }

    fn end(&self) {
        if let Ok(mut t) = self.valid_until.lock() {
            *t = Instant::now();
        }
    }
}

/// The part of a lease a holder acts on: 80 % of it (clocks of instances run at slightly
/// different speeds; a renewal's answer may come late).
fn safe(lease: Duration) -> Duration {
    lease.mul_f64(0.8)
}

/// The job name of a scheduled pull source, catalogue or drop folder.
pub fn job_name(kind: &str, id: &str) -> String {
    format!("{kind}:{id}")
}

/// Why a job's run under its lease ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The gateway is stopping.
    Shutdown,
    /// Another instance took the lease, or it could not be renewed in time.
    Lost,
    /// The job returned by itself.
    Returned,
    /// Given back for an instance with fewer jobs.
    GivenBack,
}

/// Run `job` whenever this instance holds `job_name`'s lease, until `shutdown`. The job gets
/// the lease's fence and a stop flag raised when the lease is lost or the gateway stops; it
/// should commit what it has and return. The runner then releases the lease (on a clean stop)
/// or leaves it to the instance that took it.
pub async fn run_under_lease<F, Fut>(
    runtime: Runtime,
    instance: Arc<InstanceInfo>,
    job_name: String,
    timings: LeaseTimings,
    shutdown: Shutdown,
    mut job: F,
) where
    F: FnMut(JobLease, Shutdown) -> Fut,
    Fut: Future<Output = ()>,
{
    let store: Arc<dyn Store> = Arc::clone(&runtime.store);
    let share = Arc::clone(&runtime.share);
    loop {
        let Some(lease) = acquire(&store, &share, &instance.id, &job_name, timings, &shutdown).await else {
            return;
        };
        let fence = lease.fence.clone();
        share.took();
        tracing::info!(job = %job_name, epoch = fence.epoch, instance = %instance.id, "lease taken: the job runs here");
        runtime.metrics.lease_held(&job_name, true);
        let stop = shutdown.child();
        let running = job(lease.clone(), stop.clone());
        let ended = hold(&store, &share, &lease, timings, &shutdown, &stop, running).await;
        runtime.metrics.lease_held(&job_name, false);
        match ended {
            Ended::Lost => {
                tracing::warn!(job = %job_name, epoch = fence.epoch, "lease lost: the job stopped here");
            }
            Ended::Shutdown | Ended::Returned | Ended::GivenBack => {
                if let Err(e) = store.cluster().lease_release(&fence).await {
                    tracing::warn!(job = %job_name, error = %e, "could not release the lease; it runs out by itself");
                }
                if ended == Ended::GivenBack {
                    tracing::info!(job = %job_name, "lease given back: an instance with fewer jobs takes it");
                }
            }
        }
        share.ended(ended == Ended::GivenBack);
        if ended == Ended::Shutdown || shutdown.is_triggered() {
            return;
        }
        // Give the others a turn before trying again (a job that returned by itself, or a lease
        // taken over, is not taken back at once).
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(timings.lease) => {}
        }
    }
}

/// Wait until the lease is ours (`None` on shutdown). Above its fair share, this instance takes
/// only a job nobody has taken for two acquire intervals after its lease ran out.
async fn acquire(
    store: &Arc<dyn Store>,
    share: &Share,
    holder: &str,
    job: &str,
    timings: LeaseTimings,
    shutdown: &Shutdown,
) -> Option<JobLease> {
    loop {
        if shutdown.is_triggered() {
            return None;
        }
        let sent = Instant::now();
        let grace = if share.below_fair() {
            Duration::ZERO
        } else {
            timings.acquire * 2
        };
        match store.cluster().lease_acquire(job, holder, timings.lease, grace).await {
            Ok(Some(epoch)) => {
                let fence = Fence {
                    job: job.to_string(),
                    holder: holder.to_string(),
                    epoch,
                };
                return Some(JobLease::new(fence, sent, timings.lease));
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(job, error = %e, "cannot try the job's lease"),
        }
        tokio::select! {
            _ = shutdown.wait() => return None,
            _ = tokio::time::sleep(timings.acquire) => {}
        }
    }
}

/// Keep the lease renewed while `running` runs; stop it when the lease is lost or on shutdown.
async fn hold<Fut: Future<Output = ()>>(
    store: &Arc<dyn Store>,
    share: &Share,
    lease: &JobLease,
    timings: LeaseTimings,
    shutdown: &Shutdown,
    stop: &Shutdown,
    running: Fut,
) -> Ended {
    tokio::pin!(running);
    let fence = &lease.fence;
    let mut renewed = Instant::now();
    let ended = loop {
        tokio::select! {
            _ = &mut running => return Ended::Returned,
            _ = shutdown.wait() => break Ended::Shutdown,
            _ = tokio::time::sleep(timings.renew) => {
                let sent = Instant::now();
                match store.cluster().lease_renew(fence, timings.lease).await {
                    Ok(true) => {
                        renewed = sent;
                        lease.renewed(sent, timings.lease);
                        if share.should_give_back() {
                            break Ended::GivenBack;
                        }
                    }
                    Ok(false) => break Ended::Lost,
                    // The store cannot say: the lease is ours only while it cannot have run out.
                    Err(e) => {
                        tracing::warn!(job = %fence.job, error = %e, "cannot renew the lease");
                        if renewed.elapsed() + timings.renew >= timings.lease {
                            break Ended::Lost;
                        }
                    }
                }
            }
        }
    };
    if ended == Ended::Lost {
        lease.end();
    }
    stop.trigger();
    running.await;
    ended
}

/// How long an instance that stopped heartbeating stays listed.
pub const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Write this instance's heartbeat (with the records it has committed) until `shutdown`, then
/// mark it stopped.
pub async fn heartbeat(runtime: Runtime, instance: Arc<InstanceInfo>, timings: LeaseTimings, shutdown: Shutdown) {
    let gone_after = (timings.heartbeat * 3).as_secs_f64();
    // Instances silent for a day are forgotten (a restart is a new instance).
    match runtime.store.cluster().instances_forget(FORGET_AFTER).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(instances = n, "instances silent for a day forgotten"),
        Err(e) => tracing::warn!(error = %e, "cannot forget old instances"),
    }
    loop {
        let committed = runtime.sources.committed_total();
        if let Err(e) = runtime.store.cluster().instance_heartbeat(&instance, committed).await {
            tracing::warn!(error = %e, "cannot write the instance's heartbeat");
        }
        match runtime.store.cluster().instances().await {
            Ok(rows) => runtime.share.set_alive(
                rows.iter()
                    .filter(|r| r.stopped_at.is_none() && (r.seconds_since_heartbeat as f64) <= gone_after)
                    .count(),
            ),
            Err(e) => tracing::warn!(error = %e, "cannot count the instances alive"),
        }
        tokio::select! {
            _ = shutdown.wait() => break,
            _ = tokio::time::sleep(timings.heartbeat) => {}
        }
    }
    let committed = runtime.sources.committed_total();
    let _ = runtime.store.cluster().instance_heartbeat(&instance, committed).await;
    if let Err(e) = runtime.store.cluster().instance_stopped(&instance.id).await {
        tracing::warn!(error = %e, "cannot mark the instance stopped");
    }
}
