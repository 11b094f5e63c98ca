//! `gateway run`: the long-running gateway. Starts the ways in (pull schedulers, AMQP consumers,
//! drop-folder scans, the operator API with HTTP push), follows mapping activations made
//! elsewhere, and delivers the outbox to the sinks until Ctrl-C / SIGTERM, when each part
//! finishes the batch in hand. With `--once`: one pull of each pull source and one scan of each
//! drop folder, then what is due is delivered and the command ends.

use super::common::load_config;
use crate::commit::Batching;
use crate::config::SourceConfig;
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
    let runtime = build_runtime(resolved).await?;
    let resolved = Arc::clone(&runtime.resolved);
    let outbox = Arc::clone(&runtime.outbox);
    let batching = Batching::from(&resolved.config);
    let committer = runtime.committer("directory");
    let shutdown = Shutdown::default();
    crate::shutdown::on_signals(shutdown.clone());
    let start_dispatchers = |mode| {
        let sinks = &resolved.config.sinks;
        Dispatchers::start(
            Arc::clone(&outbox),
            sinks,
            &resolved.config.base_dir,
            mode,
            shutdown.clone(),
        )
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
        tasks
    };
    let settle = if once { Duration::ZERO } else { Duration::from_secs(2) };
    let directory_sources: Vec<&SourceConfig> = resolved
        .config
        .sources
        .iter()
        .filter(|s| s.kind == "directory")
        .collect();
    let poll = directory_sources
        .iter()
        .map(|s| s.poll_seconds)
        .min()
        .unwrap_or(10)
        .max(1);
    loop {
        for source in &directory_sources {
            let preparer = runtime.preparers.get(&source.id).context("preparer")?;
            scan_directory(
                &committer,
                source,
                &resolved.config.base_dir,
                &preparer,
                &batching,
                &shutdown,
                settle,
            )
            .await?;
        }
        if once || shutdown.is_triggered() {
            break;
        }
        tokio::select! {
            _ = shutdown.wait() => break,
            _ = tokio::time::sleep(Duration::from_secs(poll)) => {}
        }
    }
    while source_tasks.join_next().await.is_some() {}
    let dispatchers = match dispatchers {
        Some(d) => d,
        None => start_dispatchers(Mode::Drain)?,
    };
    dispatchers.join().await;
    if let Some(server) = server {
        server.join().await;
    }
    Ok(ExitCode::SUCCESS)
}
