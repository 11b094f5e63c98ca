//! `gateway run`: the long-running gateway. Polls every `directory` source (a drop folder
//! that legacy systems export files into): each file is ingested through the pipeline and,
//! only after its records are committed, moved to `processed/`. A file that cannot be read
//! at all goes to `failed/` with a `.error` note beside it. A file that is still being written
//! (modified in the last two seconds, or named `*.tmp` / `*.part` / `.*`) waits for the next scan.
//! Alongside, the outbox dispatchers deliver committed versions to every configured sink; on
//! Ctrl-C / SIGTERM they finish the batch in hand. With `--once`, what is due is delivered after
//! the scan and the command ends.

use super::data::{load_config, shutdown_on_signals};
use crate::config::SourceConfig;
use crate::outbox::{Dispatchers, Mode};
use crate::pipeline::ingest::{ingest_files, BatchSettings, IngestError, IngestJob, Shutdown};
use crate::pipeline::prepare::Preparer;
use crate::runtime::Runtime;
use crate::sources::amqp::run_consumer;
use crate::sources::pull::{pull_into, pull_once, run_scheduler, PageTarget};
use crate::sources::schedule::Schedule;
use crate::store::Store;
use adapters::sources::amqp::AmqpSourceSettings;
use adapters::sources::PullMode;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::task::JoinSet;

/// Files of a drop folder ready to be ingested, oldest name first.
pub fn ready_files(dir: &Path, settle: Duration) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let meta = entry.metadata()?;
        if !meta.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with(".tmp") || name.ends_with(".part") || name.ends_with(".error") {
            continue;
        }
        let settled = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_none_or(|age| age >= settle);
        if settled {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn move_into(file: &Path, folder: &str) -> std::io::Result<PathBuf> {
    let dir = file.parent().unwrap_or_else(|| Path::new(".")).join(folder);
    std::fs::create_dir_all(&dir)?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut target = dir.join(&name);
    if target.exists() {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f");
        target = dir.join(format!("{stamp}-{name}"));
    }
    std::fs::rename(file, &target)?;
    Ok(target)
}

/// Ingest every ready file of one directory source once.
pub async fn scan_directory(
    store: &Arc<dyn Store>,
    source: &SourceConfig,
    base_dir: &Path,
    preparer: &Preparer,
    settings: &BatchSettings,
    shutdown: &Shutdown,
    settle: Duration,
) -> anyhow::Result<()> {
    let Some(dir) = &source.directory else { return Ok(()) };
    let dir = if dir.is_absolute() {
        dir.clone()
    } else {
        base_dir.join(dir)
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let format = super::normalize::input_format(Some(&source.format), None)?;
    for file in ready_files(&dir, settle)? {
        if shutdown.is_triggered() {
            break;
        }
        let span = tracing::info_span!("file", source = %source.id, file = %file.display());
        let _guard = span.enter();
        let job = IngestJob {
            preparer: preparer.clone(),
            files: vec![file.clone()],
            format,
            xml_records: source.xml_records.clone(),
        };
        let result = ingest_files(Arc::clone(store), job, settings.clone(), shutdown.clone(), None).await;
        match result {
            Ok(_) if shutdown.is_triggered() => {
                tracing::info!("stopped mid-file; the file stays for the next run (re-sent records are unchanged)");
            }
            Ok(summary) => {
                let moved = move_into(&file, "processed")?;
                tracing::info!(?summary, moved = %moved.display(), "file ingested");
            }
            Err(IngestError::Read(e)) => {
                let moved = move_into(&file, "failed")?;
                let note = moved.with_extension("error");
                std::fs::write(&note, e.to_string())?;
                tracing::error!(error = %e, moved = %moved.display(), "file cannot be read; moved to failed/");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The shared runtime of a loaded configuration: store, each source's active mapping version
/// (see [`crate::lifecycle`]), the source board, and the stored supervision-item catalogue.
pub async fn build_runtime(resolved: crate::config::Resolved) -> anyhow::Result<Runtime> {
    let runtime = crate::lifecycle::open_runtime(resolved).await?;
    for c in &runtime.resolved.config.catalogues {
        runtime.sources.register(&c.id, &c.kind);
    }
    // A catalogue pulled earlier is in force from the start.
    let items = crate::sources::catalogue::refresh_normalizer(&runtime).await?;
    if items > 0 {
        tracing::info!(items, "supervision-item catalogue in force");
    }
    Ok(runtime)
}

/// Start the tasks that take records by themselves: AMQP consumers and pull schedulers.
pub fn start_source_tasks(runtime: &Runtime, shutdown: &Shutdown) -> anyhow::Result<JoinSet<()>> {
    let mut tasks = JoinSet::new();
    let base = runtime.resolved.config.base_dir.clone();
    for source in &runtime.resolved.config.sources {
        match source.kind.as_str() {
            "amqp" => {
                let table = source.amqp.clone().unwrap_or_default();
                let settings = AmqpSourceSettings::from_table(&table)
                    .map_err(|p| anyhow::anyhow!("sources {:?} amqp.{}: {}", source.id, p.key, p.message))?;
                tasks.spawn(run_consumer(
                    runtime.clone(),
                    source.id.clone(),
                    settings,
                    base.clone(),
                    shutdown.clone(),
                ));
            }
            "rest" | "soap" => {
                let table = source.pull_table().unwrap_or_default();
                let pull = adapters::sources::build(&source.id, &source.kind, &table, &base)
                    .map_err(|e| anyhow::anyhow!("sources {:?}: {e}", source.id))?;
                let schedule = Schedule::from_config(source.cron.as_deref(), source.poll_seconds)
                    .map_err(|e| anyhow::anyhow!("sources {:?}: {e}", source.id))?;
                let (tx, rx) = tokio::sync::mpsc::channel(4);
                runtime.sources.attach_control(&source.id, tx);
                tasks.spawn(run_scheduler(
                    runtime.clone(),
                    source.id.clone(),
                    pull,
                    schedule,
                    PageTarget::Cases,
                    rx,
                    shutdown.clone(),
                ));
            }
            _ => {}
        }
    }
    for catalogue in &runtime.resolved.config.catalogues {
        let pull = adapters::sources::build(&catalogue.id, &catalogue.kind, &catalogue.adapter_table(), &base)
            .map_err(|e| anyhow::anyhow!("catalogues {:?}: {e}", catalogue.id))?;
        let schedule = Schedule::from_config(catalogue.cron.as_deref(), catalogue.poll_seconds)
            .map_err(|e| anyhow::anyhow!("catalogues {:?}: {e}", catalogue.id))?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        runtime.sources.attach_control(&catalogue.id, tx);
        tasks.spawn(run_scheduler(
            runtime.clone(),
            catalogue.id.clone(),
            pull,
            schedule,
            PageTarget::Catalogue(catalogue.fields.clone()),
            rx,
            shutdown.clone(),
        ));
    }
    Ok(tasks)
}

/// Run until stopped (or one pass with `once`).
pub async fn run(config: &Path, once: bool) -> anyhow::Result<ExitCode> {
    let resolved = load_config(config)?;
    let runtime = build_runtime(resolved).await?;
    let resolved = Arc::clone(&runtime.resolved);
    let store = Arc::clone(&runtime.store);
    let outbox = Arc::clone(&runtime.outbox);
    let settings = BatchSettings::from(&resolved.config);
    let shutdown = Shutdown::default();
    shutdown_on_signals(shutdown.clone());
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
                &store,
                source,
                &resolved.config.base_dir,
                &preparer,
                &settings,
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

/// `--once`: one incremental pull of every catalogue and REST/SOAP source (AMQP sources are not
/// consumed).
async fn pull_each_once(runtime: &Runtime, shutdown: &Shutdown) -> anyhow::Result<()> {
    let base = runtime.resolved.config.base_dir.clone();
    // The catalogue first: cases pulled next are checked against it.
    for catalogue in &runtime.resolved.config.catalogues {
        let pull = adapters::sources::build(&catalogue.id, &catalogue.kind, &catalogue.adapter_table(), &base)
            .map_err(|e| anyhow::anyhow!("catalogues {:?}: {e}", catalogue.id))?;
        let target = PageTarget::Catalogue(catalogue.fields.clone());
        let summary = pull_into(runtime, &catalogue.id, &pull, PullMode::Incremental, shutdown, &target)
            .await
            .with_context(|| format!("pull of catalogue {:?}", catalogue.id))?;
        tracing::info!(catalogue = %catalogue.id, ?summary, "catalogue pulled once");
    }
    for source in &runtime.resolved.config.sources {
        let Some(table) = source.pull_table() else { continue };
        let pull = adapters::sources::build(&source.id, &source.kind, &table, &base)
            .map_err(|e| anyhow::anyhow!("sources {:?}: {e}", source.id))?;
        let summary = pull_once(runtime, &source.id, &pull, PullMode::Incremental, shutdown)
            .await
            .with_context(|| format!("pull of source {:?}", source.id))?;
        tracing::info!(source = %source.id, ?summary, "pulled once");
    }
    Ok(())
}
