//! The background joint-inspection indexer (`[joint] index = "background"`, PostgreSQL): commits
//! only queue their inspections' index facts; every instance runs this loop, and one at a time
//! (a transaction-level advisory lock) applies the queue, oldest first, in turns of
//! [`TURN`] facts. The backlog is `gateway_joint_index_backlog`.

use super::state::Runtime;
use crate::shutdown::Shutdown;
use std::time::Duration;

/// Queued facts applied per turn (one transaction).
pub const TURN: usize = 5000;

/// Pause between looks at an empty queue.
const IDLE: Duration = Duration::from_millis(500);

/// Apply the queue until shutdown; nothing to do when the index is kept at commit.
pub async fn keep_indexing(runtime: Runtime, shutdown: Shutdown) {
    if !runtime.store.joint().joint_settings().background {
        return;
    }
    let sinks = runtime.joint_sinks();
    let mut failures: u32 = 0;
    while !shutdown.is_triggered() {
        let wait = match runtime.store.joint().joint_drain(TURN, &sinks).await {
            Ok(report) if report.applied >= TURN => {
                failures = 0;
                Duration::ZERO
            }
            Ok(report) => {
                failures = 0;
                if report.applied > 0 {
                    tracing::debug!(applied = report.applied, "joint-inspection index updated");
                }
                IDLE
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let wait = Duration::from_secs(1u64 << failures.min(5));
                tracing::warn!(error = %e, wait_s = wait.as_secs(), "joint-inspection indexer failed; the queue waits");
                wait
            }
        };
        if !wait.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait() => {}
            }
        }
    }
}
