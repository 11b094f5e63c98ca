//! Files of one source (`gateway ingest`, and each file of a drop folder): the stages joined by
//! bounded channels, with back-pressure all the way to the reader:
//!
//! ```text
//! reader thread --chunks--> prepare (preparation threads) --records--> committer (batches: size or time)
//! ```
//!
//! Nothing is acknowledged before its batch is committed; on shutdown the reader stops, the
//! records already read are committed, and the run ends.

use crate::commit::{Batching, Committer, OnCommit};
use crate::prepare::reader::{read_file, InputFormat, ReadError, ReadItem, ReadSettings};
use crate::prepare::{prepare_in_order, PrepareError, Preparer};
use crate::shutdown::Shutdown;
use crate::store::StoreError;
use crate::telemetry::Summary;
use std::path::PathBuf;
use tokio::sync::mpsc;

/// Records per chunk handed from the reader to the preparer.
pub const CHUNK: usize = 256;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// An input could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The store failed; records not committed stay at their source.
    #[error("存储失败，未提交的记录仍在来源处 / store failed, uncommitted records remain at their source: {0}")]
    Store(#[from] StoreError),
    /// Records could not be prepared.
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    /// A stage stopped unexpectedly.
    #[error("pipeline stage failed: {0}")]
    Stage(String),
}

/// What to ingest: files of one source.
#[derive(Debug, Clone)]
pub struct IngestJob {
    /// Prepares the source's records.
    pub preparer: Preparer,
    /// The input files, read in order.
    pub files: Vec<PathBuf>,
    /// Their format (see `by_extension`).
    pub format: InputFormat,
    /// Take each file's format from its extension when that names one (`.csv`, `.xlsx`, ...),
    /// else `format`.
    pub by_extension: bool,
    /// XML: element path of the records.
    pub xml_records: Option<String>,
    /// Encoding of text files, sheets and header row of spreadsheets.
    pub settings: ReadSettings,
}

/// Read the job's files, normalise every record, commit in batches through `committer`.
pub async fn ingest_files(
    committer: &Committer,
    job: IngestJob,
    batching: &Batching,
    shutdown: Shutdown,
    on_commit: Option<OnCommit>,
) -> Result<Summary, IngestError> {
    let IngestJob {
        preparer,
        files,
        format,
        by_extension,
        xml_records,
        settings,
    } = job;
    for f in &files {
        if let Err(source) = std::fs::metadata(f) {
            return Err(ReadError::Io {
                path: f.display().to_string(),
                source,
            }
            .into());
        }
    }
    let max_line = usize::try_from(preparer.limits.max_record_bytes).unwrap_or(usize::MAX);
    let (chunk_tx, chunk_rx) = mpsc::channel::<Vec<ReadItem>>(batching.channel_capacity);
    let stop = shutdown.clone();
    let reader = std::thread::spawn(move || -> Result<u64, ReadError> {
        let mut received = 0u64;
        for file in &files {
            let mut chunk = Vec::with_capacity(CHUNK);
            let mut closed = false;
            let format = match by_extension {
                true => InputFormat::from_extension(file).unwrap_or(format),
                false => format,
            };
            read_file(file, format, xml_records.as_deref(), &settings, max_line, |item| {
                if stop.is_triggered() {
                    return false;
                }
                received += 1;
                chunk.push(item);
                if chunk.len() >= CHUNK {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                    if chunk_tx.blocking_send(full).is_err() {
                        closed = true;
                        return false;
                    }
                }
                true
            })?;
            if !chunk.is_empty() && !closed && chunk_tx.blocking_send(chunk).is_err() {
                break;
            }
            if stop.is_triggered() || closed {
                break;
            }
        }
        Ok(received)
    });

    let summary = prepare_and_commit(committer, preparer, chunk_rx, batching, on_commit).await;
    let received = reader
        .join()
        .map_err(|_| IngestError::Stage("reader thread panicked".into()))??;
    let mut summary = summary?;
    summary.received = received;
    Ok(summary)
}

/// The prepare and commit stages for any producer of read chunks.
pub async fn prepare_and_commit(
    committer: &Committer,
    preparer: Preparer,
    chunks: mpsc::Receiver<Vec<ReadItem>>,
    batching: &Batching,
    on_commit: Option<OnCommit>,
) -> Result<Summary, IngestError> {
    // Room for one whole batch of prepared chunks, so the next batch is prepared while the
    // previous one commits (a smaller queue stalls the preparers during every commit).
    let capacity = batching.channel_capacity.max(batching.batch_size.div_ceil(CHUNK) + 1);
    let (prepared, preparing) = prepare_in_order(preparer, chunks, capacity, committer.keeps_compressed());
    let committed = committer.commit_stream(prepared, batching, on_commit).await;
    preparing
        .await
        .map_err(|e| IngestError::Stage(format!("prepare: {e}")))??;
    Ok(committed?)
}
