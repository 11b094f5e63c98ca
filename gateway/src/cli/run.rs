//! `gateway run`: the long-running gateway. Polls every `directory` source (a drop folder
//! that legacy systems export files into): each file is ingested through the pipeline and,
//! only after its records are committed, moved to `processed/`. A file that cannot be read
//! at all goes to `failed/` with a `.error` note beside it. A file that is still being written
//! (modified in the last two seconds, or named `*.tmp` / `*.part` / `.*`) waits for the next scan.
//! Alongside, the outbox dispatchers deliver committed versions to every configured sink; on
//! Ctrl-C / SIGTERM they finish the batch in hand. With `--once`, what is due is delivered after
//! the scan and the command ends.

use super::data::{load_config, preparers, shutdown_on_signals};
use crate::config::SourceConfig;
use crate::outbox::{Dispatchers, Mode};
use crate::pipeline::ingest::{ingest_files, BatchSettings, IngestError, IngestJob, Shutdown};
use crate::pipeline::prepare::Preparer;
use crate::runtime::Runtime;
use crate::store::Store;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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

/// Run until stopped (or one pass with `once`).
pub async fn run(config: &Path, once: bool) -> anyhow::Result<ExitCode> {
    let resolved = Arc::new(load_config(config)?);
    let (store, outbox) = crate::outbox::open(&resolved.config).await?;
    let runtime = Arc::new(Runtime::new(
        Arc::clone(&resolved),
        Arc::clone(&store),
        Arc::clone(&outbox),
        preparers(&resolved)?,
    ));
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
        Some(crate::server::spawn(Arc::clone(&runtime), &resolved.config.server.listen, shutdown.clone()).await?)
    };
    let settle = if once { Duration::ZERO } else { Duration::from_secs(2) };
    let directory_sources: Vec<&SourceConfig> = resolved
        .config
        .sources
        .iter()
        .filter(|s| s.kind == "directory")
        .collect();
    let push_sources = resolved.config.sources.iter().any(|s| s.kind == "push");
    if directory_sources.is_empty() && resolved.config.sinks.is_empty() && !push_sources {
        eprintln!("没有 directory 类型的来源；file 来源请用 gateway ingest / no directory sources configured; use `gateway ingest` for file sources");
    }
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
        let deadline = tokio::time::Instant::now() + Duration::from_secs(poll);
        while tokio::time::Instant::now() < deadline && !shutdown.is_triggered() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if shutdown.is_triggered() {
            break;
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
    Ok(ExitCode::SUCCESS)
}
