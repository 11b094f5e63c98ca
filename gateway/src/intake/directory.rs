//! Drop folders (`kind = "directory"`): legacy systems export files into a folder; each file
//! is ingested through the committer and, only after its records are committed, moved to
//! `processed/`. A file that cannot be read at all goes to `failed/` with a `.error` note beside
//! it. A file that is still being written (modified in the last two seconds, or named `*.tmp` /
//! `*.part` / `.*`) waits for the next scan. A file's format is its extension's when that names
//! one (`.csv`, `.xlsx`, `.jsonl`, ...), else the source's `format`; text is decoded by the
//! source's `encoding` (default: detected per file).

use super::files::{ingest_files, IngestError, IngestJob};
use crate::commit::{Batching, Committer};
use crate::config::SourceConfig;
use crate::prepare::{InputFormat, Preparer};
use crate::shutdown::Shutdown;
use crate::telemetry::SourceFailed;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Why a scan of a drop folder stopped.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The folder or a file in it could not be read, moved or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A file's records could not be committed; the file stays for the next scan.
    #[error(transparent)]
    Ingest(IngestError),
}

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
    committer: &Committer,
    source: &SourceConfig,
    base_dir: &Path,
    preparer: &Preparer,
    batching: &Batching,
    shutdown: &Shutdown,
    settle: Duration,
) -> Result<(), DirectoryError> {
    let Some(dir) = &source.directory else { return Ok(()) };
    let dir = if dir.is_absolute() {
        dir.clone()
    } else {
        base_dir.join(dir)
    };
    std::fs::create_dir_all(&dir).map_err(|e| DirectoryError::Io {
        path: dir.display().to_string(),
        source: e,
    })?;
    let format = InputFormat::parse(&source.format).unwrap_or(InputFormat::JsonLines);
    // Checked with the configuration; defaults if it was not.
    let settings = crate::prepare::ReadSettings::of_source(source).unwrap_or_default();
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| DirectoryError::Io { path, source }
    };
    for file in ready_files(&dir, settle).map_err(io(&dir))? {
        if shutdown.is_triggered() {
            break;
        }
        let span = tracing::info_span!("file", source = %source.id, file = %file.display());
        let _guard = span.enter();
        let job = IngestJob {
            preparer: preparer.clone(),
            files: vec![file.clone()],
            format,
            by_extension: true,
            xml_records: source.xml_records.clone(),
            settings: settings.clone(),
        };
        let result = ingest_files(committer, job, batching, shutdown.clone(), None).await;
        match result {
            Ok(_) if shutdown.is_triggered() => {
                tracing::info!("stopped mid-file; the file stays for the next run (re-sent records are unchanged)");
            }
            Ok(summary) => {
                let moved = move_into(&file, "processed").map_err(io(&file))?;
                tracing::info!(?summary, moved = %moved.display(), "file ingested");
            }
            Err(IngestError::Read(e)) => {
                let moved = move_into(&file, "failed").map_err(io(&file))?;
                let note = moved.with_extension("error");
                std::fs::write(&note, e.to_string()).map_err(io(&note))?;
                tracing::error!(error = %e, moved = %moved.display(), "file cannot be read; moved to failed/");
                committer.telemetry().emit(SourceFailed {
                    source: &source.id,
                    stage: "file",
                    error: &format!("{}: {e}", moved.display()),
                    run_failed: false,
                    paused_until: None,
                    only_paused: false,
                });
            }
            Err(e) => return Err(DirectoryError::Ingest(e)),
        }
    }
    Ok(())
}
