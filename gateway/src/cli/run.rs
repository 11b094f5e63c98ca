//! `gateway run`: the long-running gateway. Starts the ways in (pull schedulers, AMQP consumers,
//! drop-folder scans, the operator API with HTTP push), follows mapping activations made
//! elsewhere, and delivers the outbox to the sinks until Ctrl-C / SIGTERM, when each part
//! finishes the batch in hand. With `--once`: one pull of each pull source and one scan of each
//! drop folder, then what is due is delivered and the command ends.

use super::common::load_config;
use crate::commit::Batching;
use crate::intake::directory::scan_directory;
use crate::intake::tasks::{build_runtime, pull_each_once, start_source_tasks};
use crate::outbox::{Dispatchers, Mode};
use crate::shutdown::Shutdown;
use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// Run until stopped (or one pass with `once`).
pub async fn run(config: &Path, once: bool) -> anyhow::Result<ExitCode> {
    let resolved = load_config(config)?;
    // One `gateway run` per SQLite file: several instances need PostgreSQL.
    let _sqlite_lock = if resolved.config.store.backend == "postgres" {
        None
    } else {
        Some(lock_sqlite(
            &resolved.config.store.sqlite_path(&resolved.config.base_dir),
        )?)
    };
    let runtime = build_runtime(resolved).await?;
    let resolved = Arc::clone(&runtime.resolved);
    let outbox = Arc::clone(&runtime.outbox);
    let batching = Batching::from(&resolved.config);
    let committer = runtime.committer("directory");
    let shutdown = Shutdown::default();
    crate::shutdown::on_signals(shutdown.clone());
    let start_dispatchers = |mode| {
        let sinks = &resolved.config.sinks;
        Dispatchers::start_with_gate(
            Arc::clone(&outbox),
            sinks,
            &resolved.config.base_dir,
            &crate::outbox::publicity::PublicityContext {
                policy: &resolved.config.publicity,
                store: Arc::clone(&runtime.store),
                metrics: Some(Arc::clone(&runtime.metrics)),
            },
            mode,
            shutdown.clone(),
            runtime.attachments.as_ref().map(|a| Arc::clone(&a.gate)),
        )
    };
    // Evidence attachments: fetched into the object store alongside everything else.
    let attachment_fetcher = match (&runtime.attachments, once) {
        (Some(a), false) => Some(tokio::spawn(Arc::clone(&a.fetcher).run(shutdown.clone()))),
        _ => None,
    };
    // Continuous: deliver alongside the scans. Once: deliver what is due after the scan.
    let dispatchers = if once {
        None
    } else {
        Some(start_dispatchers(Mode::Continuous)?)
    };
    // Operator API and HTTP push (gateway/src/server): serves until the shutdown flag is raised.
    let server = if once || !resolved.config.server.serve(&resolved.config.sources) {
        None
    } else {
        Some(
            crate::server::spawn(
                Arc::new(runtime.clone()),
                &resolved.config.server.listen,
                shutdown.clone(),
            )
            .await?,
        )
    };
    let mut source_tasks = if once {
        pull_each_once(&runtime, &shutdown).await?;
        JoinSet::new()
    } else {
        let mut tasks = start_source_tasks(&runtime, &shutdown)?;
        // Another instance activating a mapping version takes effect here too.
        tasks.spawn(crate::lifecycle::watch(runtime.clone(), shutdown.clone()));
        // Reconciliation (对账) and alerts (告警): see gateway/src/oversight.
        let oversight = crate::oversight::Oversight::new(Arc::new(runtime.clone()))?;
        tasks.spawn(crate::oversight::run(Arc::new(oversight), shutdown.clone()));
        tasks
    };
    if once {
        // One scan of each drop folder (continuously, each folder is a leased job of its own).
        for source in resolved.config.sources.iter().filter(|s| s.kind == "directory") {
            let preparer = runtime.preparers.get(&source.id).context("preparer")?;
            scan_directory(
                &committer,
                source,
                &resolved.config.base_dir,
                &preparer,
                &batching,
                &shutdown,
                Duration::ZERO,
            )
            .await?;
        }
    } else {
        shutdown.wait().await;
    }
    while source_tasks.join_next().await.is_some() {}
    if !once {
        // Every leased job has ended and released its lease; one taken while the instance was
        // stopping (its acquisition in flight as the stop came) is ended here, not left to run out.
        match runtime.store.cluster().leases_release_held(&runtime.instance.id).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(leases = n, "leases still held when every job had ended were released"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot release this instance's leases at the stop; they run out by themselves")
            }
        }
    }
    if let Some(fetcher) = attachment_fetcher {
        if let Err(e) = fetcher.await {
            tracing::error!(error = %e, "the attachment fetcher failed");
        }
    } else if let Some(a) = &runtime.attachments {
        // Once: fetch what is due before delivering, so that versions whose attachments
        // arrive now can go.
        if let Err(e) = a.fetcher.drain().await {
            tracing::error!(error = %e, "attachments not fetched");
        }
    }
    let dispatchers = match dispatchers {
        Some(d) => d,
        None => start_dispatchers(Mode::Drain)?,
    };
    dispatchers.join().await;
    if let Some(server) = server {
        server.join().await;
    }
    if once {
        print_once_summary(&runtime).await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What `gateway run --once` did, printed whatever the log level: per source what this run took
/// in, per sink what the outbox holds (a JSON line last, for scripts).
async fn print_once_summary(runtime: &crate::runtime::Runtime) -> anyhow::Result<()> {
    let mut sources = Vec::new();
    for s in &runtime.resolved.config.sources {
        let status = runtime.sources.get(&s.id);
        let t = status.as_ref().map(|st| st.totals).unwrap_or_default();
        let error = status.and_then(|st| st.last_error.map(|(_, e)| e));
        println!(
            "来源 source {:<20} 收到 received {:>6}  新案件 accepted {:>6}  更新 updated {:>5}  未变 unchanged {:>5}  过时 stale {:>4}  隔离 quarantined {:>5}{}",
            s.id,
            t.received,
            t.accepted,
            t.updated,
            t.unchanged,
            t.stale,
            t.quarantined,
            error.as_deref().map(|e| format!("  最近错误 last error: {e}")).unwrap_or_default()
        );
        sources.push(serde_json::json!({
            "source": s.id, "received": t.received, "accepted": t.accepted, "updated": t.updated,
            "unchanged": t.unchanged, "stale": t.stale, "quarantined": t.quarantined, "last_error": error,
        }));
    }
    let counts = runtime.outbox.delivery_counts().await?;
    let mut sinks = Vec::new();
    for sink in &runtime.resolved.config.sinks {
        let of = |status: crate::store::DeliveryStatus| {
            counts
                .iter()
                .filter(|c| c.sink_id == sink.id && c.status == status)
                .map(|c| c.count)
                .sum::<i64>()
        };
        use crate::store::DeliveryStatus::{Dead, Delivered, Pending, Withheld};
        println!(
            "去向 sink   {:<20} 已投递 delivered {:>6}  待投递 pending {:>6}  失败 dead {:>5}  不公示 withheld {:>5}",
            sink.id,
            of(Delivered),
            of(Pending),
            of(Dead),
            of(Withheld)
        );
        sinks.push(serde_json::json!({
            "sink": sink.id, "delivered": of(Delivered), "pending": of(Pending), "dead": of(Dead), "withheld": of(Withheld),
        }));
    }
    println!("{}", serde_json::json!({"sources": sources, "sinks": sinks}));
    Ok(())
}

/// Hold the run lock of a SQLite store (`<file>.run.lock`) for as long as the returned file is
/// open; a second `gateway run` on the same file is refused at once, naming the file.
fn lock_sqlite(db: &Path) -> anyhow::Result<std::fs::File> {
    if let Some(dir) = db.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut name = db.as_os_str().to_owned();
    name.push(".run.lock");
    let path = std::path::PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "另一个 gateway run 正在使用 SQLite 存储 {}：SQLite 只支持单实例运行；多实例请使用 PostgreSQL（[store] backend = \"postgres\"）/ another `gateway run` is using the SQLite store {}: SQLite runs one instance; run several instances on PostgreSQL ([store] backend = \"postgres\")",
            db.display(),
            db.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(anyhow::Error::new(e).context(format!("cannot lock {}", path.display())))
        }
    }
}
