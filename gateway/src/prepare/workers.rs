//! The threads that prepare records (map, validate, hash, compress): one per core, shared by every
//! source of the process, at a lower scheduling priority than the rest of the gateway.
//!
//! Preparation is CPU work that can run ahead of the commit (the stages are joined by bounded
//! queues), while a commit is a chain of steps of which the database's part runs in another
//! process on the same cores. At equal priority the preparers took the database backend's core
//! during every commit and lengthened the chain that decides the ingest rate; at a higher `nice`
//! value they use the time the commit leaves (see BENCHMARKS.md). `pipeline.prepare_nice`
//! sets the value (0: the same priority as the rest); on systems other than Linux it has no effect.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::oneshot;

/// The `nice` value the preparation threads set when they start (see [`set_prepare_nice`]).
static PREPARE_NICE: AtomicI32 = AtomicI32::new(crate::config::DEFAULT_PREPARE_NICE);

static POOL: OnceLock<Pool> = OnceLock::new();

type Job = Box<dyn FnOnce() + Send>;

struct Pool {
    jobs: Mutex<Sender<Job>>,
}

/// Why a preparation job gave no result.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The job panicked (a defect); its records were not committed and stay at their source.
    #[error("a preparation thread failed: {0}")]
    Panicked(String),
    /// No preparation thread could be started.
    #[error("no preparation thread could be started: {0}")]
    Spawn(String),
}

/// Set the `nice` value of the preparation threads; takes effect for threads started afterwards,
/// so call it before the first record is prepared (the binary does, from the configuration).
pub fn set_prepare_nice(nice: i32) {
    PREPARE_NICE.store(nice, Ordering::Relaxed);
}

/// A job handed to a preparation thread: its result, once done.
#[derive(Debug)]
pub struct PrepareHandle<R> {
    result: oneshot::Receiver<Result<R, String>>,
}

impl<R> PrepareHandle<R> {
    /// Wait (asynchronously) for the job's result.
    pub async fn join(self) -> Result<R, WorkerError> {
        match self.result.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(message)) => Err(WorkerError::Panicked(message)),
            Err(_) => Err(WorkerError::Panicked("the job was dropped".into())),
        }
    }
}

/// Start `job` on a preparation thread now (jobs run in the order started, one per thread).
pub fn spawn_prepare<R, F>(job: F) -> Result<PrepareHandle<R>, WorkerError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let pool = pool()?;
    let (tx, rx) = oneshot::channel();
    let job: Job = Box::new(move || {
        let outcome = catch_unwind(AssertUnwindSafe(job)).map_err(|panic| panic_text(panic.as_ref()));
        // The caller may have stopped waiting (shutdown); the result is then not needed.
        let _ = tx.send(outcome);
    });
    pool.jobs
        .lock()
        .map_err(|_| WorkerError::Spawn("job queue poisoned".into()))?
        .send(job)
        .map_err(|_| WorkerError::Spawn("preparation threads stopped".into()))?;
    Ok(PrepareHandle { result: rx })
}

fn pool() -> Result<&'static Pool, WorkerError> {
    if let Some(pool) = POOL.get() {
        return Ok(pool);
    }
    let (tx, rx) = channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut started = 0;
    let mut last_error = None;
    for i in 0..threads {
        let rx = Arc::clone(&rx);
        match std::thread::Builder::new()
            .name(format!("prepare-{i}"))
            .spawn(move || work(&rx))
        {
            Ok(_) => started += 1,
            Err(e) => last_error = Some(e.to_string()),
        }
    }
    if started == 0 {
        return Err(WorkerError::Spawn(last_error.unwrap_or_default()));
    }
    // Two callers racing here each start threads; the losing pool's threads end when its sender
    // is dropped below.
    Ok(POOL.get_or_init(|| Pool { jobs: Mutex::new(tx) }))
}

fn work(jobs: &Mutex<Receiver<Job>>) {
    lower_priority(PREPARE_NICE.load(Ordering::Relaxed));
    loop {
        let next = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match next {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

/// Lower the calling thread's scheduling priority to `nice` (Linux: priorities are per thread).
#[cfg(target_os = "linux")]
fn lower_priority(nice: i32) {
    if nice <= 0 {
        return;
    }
    // SAFETY: gettid and setpriority have no memory-safety preconditions; a failure (e.g. a
    // sandbox refusing it) leaves the thread at its priority, which only costs speed.
    let failed = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) != 0
    };
    if failed {
        tracing::debug!(nice, "could not lower the preparation thread's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority(_nice: i32) {}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn job_result_comes_back_to_the_caller() {
        let sum = spawn_prepare(|| (1..=100u32).sum::<u32>())
            .unwrap()
            .join()
            .await
            .unwrap();
        assert_eq!(sum, 5050);
    }

    #[tokio::test]
    async fn panicking_job_is_an_error_and_the_pool_keeps_working() {
        let failed = spawn_prepare(|| -> u32 { panic!("broken mapping step") })
            .unwrap()
            .join()
            .await;
        match failed {
            Err(WorkerError::Panicked(message)) => assert!(message.contains("broken mapping step")),
            other => panic!("expected a panic error, got {other:?}"),
        }
        assert_eq!(spawn_prepare(|| 7).unwrap().join().await.unwrap(), 7);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn lowered_priority_is_the_threads_own() {
        let nice_of_this_thread = || {
            // SAFETY: see lower_priority.
            unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
        };
        let before = nice_of_this_thread();
        let inside = std::thread::spawn(move || {
            lower_priority(before + 3);
            nice_of_this_thread()
        })
        .join()
        .unwrap();
        assert_eq!(inside, before + 3);
        assert_eq!(nice_of_this_thread(), before);
    }
}
