//! Batching a stream of prepared records: a batch is committed when it is full, when its oldest
//! record has waited long enough, or at the end of the input.

use super::committer::Committer;
use crate::store::{IncomingRecord, RecordResult, StoreError};
use crate::telemetry::Summary;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Batching settings (`[pipeline]` of the configuration).
#[derive(Debug, Clone)]
pub struct Batching {
    /// Records per commit.
    pub batch_size: usize,
    /// Longest wait before a partial batch is committed.
    pub batch_wait: Duration,
    /// Chunks/batches queued between stages.
    pub channel_capacity: usize,
}

impl From<&crate::config::Config> for Batching {
    fn from(c: &crate::config::Config) -> Self {
        Batching {
            batch_size: c.pipeline.batch_size,
            batch_wait: Duration::from_millis(c.pipeline.batch_wait_ms),
            channel_capacity: c.pipeline.channel_capacity,
        }
    }
}

/// Called after each commit with the batch's results (progress bars).
pub type OnCommit = Arc<dyn Fn(&[RecordResult]) + Send + Sync>;

impl Committer {
    /// Commit a stream of prepared chunks in batches (see [`Batching`]) until the stream ends;
    /// the counts of everything committed.
    pub async fn commit_stream(
        &self,
        mut rx: mpsc::Receiver<Vec<IncomingRecord>>,
        batching: &Batching,
        on_commit: Option<OnCommit>,
    ) -> Result<Summary, StoreError> {
        let mut summary = Summary::default();
        let mut pending: Vec<IncomingRecord> = Vec::with_capacity(batching.batch_size);
        let mut timer = BatchTimer::new(batching.batch_size, batching.batch_wait);
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
                let full = pending.len() >= batching.batch_size;
                let take = pending.len().min(batching.batch_size);
                let records: Vec<IncomingRecord> = pending.drain(..take).collect();
                let committed = self.commit(records, None).await?;
                summary.merge(&committed.summary);
                if let Some(cb) = &on_commit {
                    cb(&committed.results);
                }
                timer.committed(full, pending.len(), Instant::now());
            }
            if input_done {
                break;
            }
        }
        Ok(summary)
    }
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
