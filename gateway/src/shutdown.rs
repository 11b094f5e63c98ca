//! Stopping cleanly: one flag that every stage and task of a run watches. A stop asked for (Ctrl-C,
//! SIGTERM, the end of a one-shot run) lets each stage commit what it has taken, then end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A flag that asks every stage to stop after committing what it has; tasks can also wait for it.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(Arc<ShutdownInner>);

#[derive(Debug, Default)]
struct ShutdownInner {
    flag: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Shutdown {
    /// Ask the run to stop.
    pub fn trigger(&self) {
        self.0.flag.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }
    /// Whether a stop was asked for.
    pub fn is_triggered(&self) -> bool {
        self.0.flag.load(Ordering::SeqCst)
    }
    /// A flag of its own that is also raised when this one is (a job stopped alone, e.g. when
    /// its lease is lost, or with everything).
    pub fn child(&self) -> Shutdown {
        let child = Shutdown::default();
        let (parent, raised) = (self.clone(), child.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = parent.wait() => raised.trigger(),
                _ = raised.wait() => {}
            }
        });
        child
    }

    /// Wait until a stop is asked for.
    pub async fn wait(&self) {
        loop {
            // Registered before the check, so a trigger in between is not missed.
            let notified = self.0.notify.notified();
            if self.is_triggered() {
                return;
            }
            notified.await;
        }
    }
}

/// Trigger `shutdown` on Ctrl-C or SIGTERM.
pub fn on_signals(shutdown: Shutdown) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    let _ = tokio::signal::ctrl_c().await;
                    shutdown.trigger();
                    return;
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("正在停止：提交已读取的记录 / stopping: committing the records already read");
        shutdown.trigger();
    });
}
