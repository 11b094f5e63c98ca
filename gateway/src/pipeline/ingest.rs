//! The stages of a run, joined by bounded channels (back-pressure all the way to the reader):
//!
//! ```text
//! reader thread --chunks--> prepare (preparation threads) --records--> committer (batches: size or time)
//! ```
//!
//! Nothing is acknowledged before its batch is committed; on shutdown the reader stops, the
//! records already read are committed, and the run ends.

use super::commit::commit_isolating;
use super::prepare::Preparer;
use super::reader::{read_file, InputFormat, ReadError, ReadItem};
use super::workers::spawn_prepare;
use super::Summary;
use crate::server::metrics::{BatchTally, Metrics};
use crate::store::{CommitBatch, IncomingRecord, RecordResult, Store, StoreError};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

/// Records per chunk handed from the reader to the preparer.
const CHUNK: usize = 256;

/// Batching settings.
#[derive(Debug, Clone)]
pub struct BatchSettings {
    /// Records per commit.
    pub batch_size: usize,
    /// Longest wait before a partial batch is committed.
    pub batch_wait: Duration,
    /// Chunks/batches queued between stages.
    pub channel_capacity: usize,
    /// Sink ids: one outbox row per sink per new version.
    pub sinks: Vec<String>,
}

impl From<&crate::config::Config> for BatchSettings {
    fn from(c: &crate::config::Config) -> Self {
        BatchSettings {
            batch_size: c.pipeline.batch_size,
            batch_wait: Duration::from_millis(c.pipeline.batch_wait_ms),
            channel_capacity: c.pipeline.channel_capacity,
            sinks: c.sink_ids(),
        }
    }
}

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

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// An input could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The store failed; records not committed stay at their source.
    #[error("存储失败，未提交的记录仍在来源处 / store failed, uncommitted records remain at their source: {0}")]
    Store(#[from] StoreError),
    /// A stage stopped unexpectedly.
    #[error("pipeline stage failed: {0}")]
    Stage(String),
}

/// Called after each commit with the batch's results (progress bars, metrics).
pub type OnCommit = Arc<dyn Fn(&[RecordResult]) + Send + Sync>;

/// What to ingest: files of one source.
#[derive(Debug, Clone)]
pub struct IngestJob {
    /// Prepares the source's records.
    pub preparer: Preparer,
    /// The input files, read in order.
    pub files: Vec<PathBuf>,
    /// Their format.
    pub format: InputFormat,
    /// XML: element path of the records.
    pub xml_records: Option<String>,
}

/// Read the job's files, normalise every record, commit in batches.
pub async fn ingest_files(
    store: Arc<dyn Store>,
    job: IngestJob,
    settings: BatchSettings,
    shutdown: Shutdown,
    on_commit: Option<OnCommit>,
) -> Result<Summary, IngestError> {
    let IngestJob {
        preparer,
        files,
        format,
        xml_records,
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
    let (chunk_tx, chunk_rx) = mpsc::channel::<Vec<ReadItem>>(settings.channel_capacity);
    let stop = shutdown.clone();
    let reader = std::thread::spawn(move || -> Result<u64, ReadError> {
        let mut received = 0u64;
        for file in &files {
            let mut chunk = Vec::with_capacity(CHUNK);
            let mut closed = false;
            read_file(file, format, xml_records.as_deref(), |item| {
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

    let summary = run_stages(store, preparer, chunk_rx, settings, on_commit).await;
    let received = reader
        .join()
        .map_err(|_| IngestError::Stage("reader thread panicked".into()))??;
    let mut summary = summary?;
    summary.received = received;
    Ok(summary)
}

/// The prepare and commit stages for any producer of read items.
pub async fn run_stages(
    store: Arc<dyn Store>,
    preparer: Preparer,
    mut chunks: mpsc::Receiver<Vec<ReadItem>>,
    settings: BatchSettings,
    on_commit: Option<OnCommit>,
) -> Result<Summary, IngestError> {
    // Room for one whole batch of prepared chunks, so the next batch is prepared while the
    // previous one commits (a smaller queue stalls the preparers during every commit).
    let prepared_capacity = settings.channel_capacity.max(settings.batch_size.div_ceil(CHUNK) + 1);
    let (prepared_tx, prepared_rx) = mpsc::channel::<Vec<IncomingRecord>>(prepared_capacity);
    let metrics = preparer.metrics.clone();
    let compress = store.keeps_compressed();
    let prepare_stage = tokio::spawn(async move {
        // Chunks are prepared on up to one preparation thread per core, and forwarded in order
        // (a later version of a case must stay after an earlier one).
        let parallel = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let mut inflight = std::collections::VecDeque::new();
        let mut input_open = true;
        loop {
            while input_open && inflight.len() < parallel {
                let next = if inflight.is_empty() {
                    chunks.recv().await
                } else {
                    match chunks.try_recv() {
                        Ok(chunk) => Some(chunk),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => None,
                    }
                };
                let Some(chunk) = next else {
                    input_open = false;
                    break;
                };
                let p = preparer.clone();
                let handle = spawn_prepare(move || p.prepare_chunk(chunk, compress))
                    .map_err(|e| IngestError::Stage(format!("prepare: {e}")))?;
                inflight.push_back(handle);
            }
            let Some(handle) = inflight.pop_front() else { break };
            let prepared = handle
                .join()
                .await
                .map_err(|e| IngestError::Stage(format!("prepare: {e}")))?;
            if prepared_tx.send(prepared).await.is_err() {
                break;
            }
        }
        Ok::<(), IngestError>(())
    });
    let committed = commit_stage(store, prepared_rx, settings, on_commit, metrics).await;
    prepare_stage
        .await
        .map_err(|e| IngestError::Stage(format!("prepare: {e}")))??;
    committed
}

async fn commit_stage(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Vec<IncomingRecord>>,
    settings: BatchSettings,
    on_commit: Option<OnCommit>,
    metrics: Option<Arc<Metrics>>,
) -> Result<Summary, IngestError> {
    let mut summary = Summary::default();
    let mut pending: Vec<IncomingRecord> = Vec::with_capacity(settings.batch_size);
    let mut timer = BatchTimer::new(settings.batch_size, settings.batch_wait);
    let mut batch_no = 0u64;
    loop {
        let next = match timer.deadline {
            Some(d) => tokio::select! {
                r = rx.recv() => r.map(Some),
                _ = tokio::time::sleep_until(d) => Some(None),
            },
            None => rx.recv().await.map(Some),
        };
        let input_done = match next {
            Some(Some(records)) => {
                timer.arrived(pending.len(), Instant::now());
                pending.extend(records);
                false
            }
            Some(None) => false,
            None => true,
        };
        while timer.should_commit(pending.len(), input_done, Instant::now()) {
            let full = pending.len() >= settings.batch_size;
            let take = pending.len().min(settings.batch_size);
            let records: Vec<IncomingRecord> = pending.drain(..take).collect();
            batch_no += 1;
            let source = records.first().map(|r| r.source_id.clone()).unwrap_or_default();
            let span = tracing::info_span!("batch", source = %source, batch = batch_no, records = records.len());
            let record_keys: Vec<String> = if tracing::enabled!(tracing::Level::DEBUG) {
                records.iter().map(|r| r.record_key.clone()).collect()
            } else {
                Vec::new()
            };
            let tally = metrics.as_ref().map(|_| BatchTally::of(&records));
            let batch = CommitBatch {
                records,
                cursors: Vec::new(),
                sinks: settings.sinks.clone(),
            };
            let started = Instant::now();
            let results = commit_isolating(store.as_ref(), batch).instrument(span.clone()).await?;
            if let (Some(metrics), Some(tally)) = (&metrics, &tally) {
                metrics.batch_committed(tally, &results, started.elapsed());
            }
            for r in &results {
                summary.add(r);
            }
            span.in_scope(|| {
                for (key, result) in record_keys.iter().zip(&results) {
                    tracing::debug!(record_key = %key, ?result, "record committed");
                }
                tracing::info!(committed = results.len(), "batch committed");
            });
            if let Some(cb) = &on_commit {
                cb(&results);
            }
            timer.committed(full, pending.len(), Instant::now());
        }
        if input_done {
            break;
        }
    }
    Ok(summary)
}

/// When the committer commits: when a batch is full, or when the oldest pending record has
/// waited `wait`, or at the end of the input.
#[derive(Debug)]
struct BatchTimer {
    batch_size: usize,
    wait: Duration,
    /// When the pending records are due; `None` while nothing is pending.
    deadline: Option<Instant>,
}

impl BatchTimer {
    fn new(batch_size: usize, wait: Duration) -> Self {
        BatchTimer {
            batch_size,
            wait,
            deadline: None,
        }
    }

    /// Records arrived while `pending` were already waiting.
    fn arrived(&mut self, pending: usize, now: Instant) {
        if pending == 0 {
            self.deadline = Some(now + self.wait);
        }
    }

    /// Whether `pending` records should be committed now.
    fn should_commit(&self, pending: usize, input_done: bool, now: Instant) -> bool {
        let due = self.deadline.is_some_and(|d| now >= d);
        pending >= self.batch_size || ((due || input_done) && pending > 0)
    }

    /// A batch was committed (`full`: of `batch_size` records), leaving `remaining` pending.
    /// The remainder of a full batch starts its own wait: committing it at once, because the wait
    /// that began before the (long) commit has passed, would double the number of commits.
    fn committed(&mut self, full: bool, remaining: usize, now: Instant) {
        if remaining == 0 {
            self.deadline = None;
        } else if full {
            self.deadline = Some(now + self.wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_millis(50);

    #[test]
    fn partial_batch_is_committed_when_its_wait_has_passed() {
        let start = Instant::now();
        let mut timer = BatchTimer::new(100, WAIT);
        timer.arrived(0, start);
        assert!(!timer.should_commit(30, false, start + Duration::from_millis(49)));
        assert!(timer.should_commit(30, false, start + WAIT));
    }

    #[test]
    fn remainder_of_full_batch_waits_afresh_after_a_long_commit() {
        let start = Instant::now();
        let mut timer = BatchTimer::new(100, WAIT);
        timer.arrived(0, start);
        assert!(timer.should_commit(130, false, start));
        let after_commit = start + Duration::from_millis(400);
        timer.committed(true, 30, after_commit);
        assert!(!timer.should_commit(30, false, after_commit));
        assert!(timer.should_commit(100, false, after_commit));
        assert!(timer.should_commit(30, false, after_commit + WAIT));
    }

    #[test]
    fn a_partial_commit_keeps_no_deadline_and_end_of_input_commits_the_rest() {
        let start = Instant::now();
        let mut timer = BatchTimer::new(100, WAIT);
        timer.arrived(0, start);
        timer.committed(false, 0, start + WAIT);
        assert_eq!(timer.deadline, None);
        assert!(!timer.should_commit(0, true, start + WAIT));
        timer.arrived(0, start + WAIT);
        assert!(timer.should_commit(1, true, start + WAIT));
    }
}
