//! Supervision in `gateway run`: the evaluation loops, the webhook sender and the count
//! queries, under their leases (see the module docs of [`super`]).

use super::context::Oversight;
use super::{alerts, reconcile, webhooks};
use crate::runtime::cluster::{run_under_lease, LeaseTimings};
use crate::shutdown::Shutdown;
use std::sync::Arc;
use std::time::Duration;

/// Run supervision until `shutdown` (see the module docs).
pub async fn run(oversight: Arc<Oversight>, shutdown: Shutdown) {
    let runtime = Arc::clone(&oversight.runtime);
    let config = &runtime.resolved.config;
    let timings = LeaseTimings::from_config(&config.cluster);
    let evaluate = Duration::from_secs(config.alerts.evaluate_seconds.max(1));
    let mut tasks = tokio::task::JoinSet::new();
    if config.alerts.enabled {
        let local = Arc::clone(&oversight);
        let stop = shutdown.clone();
        tasks.spawn(async move {
            loop {
                if let Err(e) = alerts::evaluate(&local, alerts::Scope::Local).await {
                    tracing::warn!(error = %e, "alert evaluation (this instance's rules) failed");
                }
                tokio::select! {
                    _ = stop.wait() => return,
                    _ = tokio::time::sleep(evaluate) => {}
                }
            }
        });
        let leased = Arc::clone(&oversight);
        tasks.spawn(run_under_lease(
            (*runtime).clone(),
            Arc::clone(&runtime.instance),
            "oversight:alerts".to_string(),
            timings,
            shutdown.clone(),
            move |lease, stop| {
                let o = Arc::clone(&leased);
                async move {
                    let mut last_evaluation: Option<std::time::Instant> = None;
                    while lease.valid() && !stop.is_triggered() {
                        if last_evaluation.is_none_or(|t| t.elapsed() >= evaluate) {
                            last_evaluation = Some(std::time::Instant::now());
                            if let Err(e) = alerts::evaluate(&o, alerts::Scope::Store).await {
                                tracing::warn!(error = %e, "alert evaluation (store rules) failed");
                            }
                        }
                        if let Err(e) = webhooks::send_due(&o).await {
                            tracing::warn!(error = %e, "sending alert messages failed");
                        }
                        tokio::select! {
                            _ = stop.wait() => return,
                            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                        }
                    }
                }
            },
        ));
    }
    if !oversight.jobs.is_empty() {
        let every = Duration::from_secs(config.reconciliation.check_minutes.max(1) * 60);
        let o = Arc::clone(&oversight);
        tasks.spawn(run_under_lease(
            (*runtime).clone(),
            Arc::clone(&runtime.instance),
            "oversight:reconcile".to_string(),
            timings,
            shutdown.clone(),
            move |lease, stop| {
                let o = Arc::clone(&o);
                async move {
                    while lease.valid() && !stop.is_triggered() {
                        reconcile::round(&o).await;
                        tokio::select! {
                            _ = stop.wait() => return,
                            _ = tokio::time::sleep(every) => {}
                        }
                    }
                }
            },
        ));
    }
    while tasks.join_next().await.is_some() {}
}
