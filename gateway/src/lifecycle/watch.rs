//! Following activations made elsewhere: several gateway instances share one PostgreSQL store,
//! and an operator activates a version through one of them (or through the CLI). Every instance
//! polls the active version of each source and swaps its running mapping when the store's
//! active version differs from the one it runs.

use super::error::{load_stored, LifecycleError};
use crate::runtime::Runtime;
use crate::shutdown::Shutdown;
use std::sync::Arc;
use std::time::Duration;

/// How often [`watch`] looks at the store.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(5);

/// How often a sleeping watcher checks for shutdown.
const SHUTDOWN_CHECK: Duration = Duration::from_millis(200);

/// Look once: swap the running mapping of every source whose active stored version is not the
/// one it runs (by version and fingerprint). Returns the (source, version) pairs swapped. A
/// stored version that does not load is logged as an error and the source keeps its mapping.
pub async fn sync_active(runtime: &Runtime) -> Result<Vec<(String, i64)>, LifecycleError> {
    let mut swapped = Vec::new();
    for active in runtime.mappings.active_mappings().await? {
        let Some(preparer) = runtime.preparers.get(&active.source_id) else {
            continue; // a source no longer configured here
        };
        if preparer.mapping.version() == active.version && preparer.mapping.fingerprint() == active.fingerprint {
            continue;
        }
        let Some(stored) = runtime
            .mappings
            .mapping_version(&active.source_id, active.version)
            .await?
        else {
            continue; // changed again in between: the next look sees it
        };
        let mapping = match load_stored(&stored) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(source = %active.source_id, version = active.version, error = %e,
                    "the active mapping version does not load; the running mapping stays");
                continue;
            }
        };
        if runtime.preparers.replace_mapping(&active.source_id, Arc::new(mapping)) {
            tracing::info!(
                source = %active.source_id,
                version = active.version,
                previous_version = preparer.mapping.version(),
                "mapping version activated in the store picked up; it maps the next batch"
            );
            swapped.push((active.source_id.clone(), active.version));
        }
    }
    Ok(swapped)
}

/// Poll the store every [`WATCH_INTERVAL`] until `shutdown` (see [`sync_active`]). Meant to be
/// spawned by `gateway run`: `tokio::spawn(lifecycle::watch(runtime.clone(), shutdown.clone()))`.
pub async fn watch(runtime: Runtime, shutdown: Shutdown) {
    watch_every(runtime, shutdown, WATCH_INTERVAL).await;
}

/// [`watch`] with another interval (tests, tuning).
pub async fn watch_every(runtime: Runtime, shutdown: Shutdown, every: Duration) {
    while !shutdown.is_triggered() {
        if let Err(e) = sync_active(&runtime).await {
            tracing::warn!(error = %e, "cannot check the active mapping versions; trying again later");
        }
        let deadline = tokio::time::Instant::now() + every;
        while !shutdown.is_triggered() {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                break;
            }
            tokio::time::sleep(SHUTDOWN_CHECK.min(deadline - now)).await;
        }
    }
}
