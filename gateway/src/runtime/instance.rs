//! This process among the gateway instances on one store: its identity, and its share of the
//! scheduled jobs (see [`super::cluster`] for the leases themselves).

use crate::store::InstanceInfo;

/// This process as an instance: the configured id, or host name, process id and a random suffix.
pub fn this_instance(configured: Option<&str>) -> InstanceInfo {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    let pid = std::process::id();
    let id = match configured {
        Some(id) => id.to_string(),
        None => {
            let mut suffix = [0u8; 3];
            let suffix = match getrandom::fill(&mut suffix) {
                Ok(()) => hex::encode(suffix),
                Err(_) => format!("{:06x}", chrono::Utc::now().timestamp_subsec_micros()),
            };
            format!("{host}-{pid}-{suffix}")
        }
    };
    InstanceInfo {
        id,
        host,
        pid: i32::try_from(pid).unwrap_or(i32::MAX),
        version: env!("CARGO_PKG_VERSION").to_string(),
        started_at: chrono::Utc::now(),
    }
}

/// How this instance shares the jobs with the others: it takes a free job at once only while
/// it holds fewer than its fair share (the jobs divided by the instances alive, rounded up);
/// above it, it takes a job only when nobody else has for a while (no job is left without a
/// runner), and it gives one job back at a time, so that instances started later get work.
#[derive(Debug)]
pub struct Share {
    total_jobs: usize,
    held: std::sync::atomic::AtomicUsize,
    alive: std::sync::atomic::AtomicUsize,
    releasing: std::sync::atomic::AtomicBool,
}

impl Share {
    /// The share of an instance among `total_jobs` jobs (every instance runs the same
    /// configuration, so each counts the same jobs).
    pub fn new(total_jobs: usize) -> Share {
        Share {
            total_jobs,
            held: Default::default(),
            alive: std::sync::atomic::AtomicUsize::new(1),
            releasing: Default::default(),
        }
    }

    /// Record how many instances are alive (this one included).
    pub fn set_alive(&self, alive: usize) {
        self.alive.store(alive.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// The jobs this instance holds now.
    pub fn held(&self) -> usize {
        self.held.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn fair(&self) -> usize {
        let alive = self.alive.load(std::sync::atomic::Ordering::Relaxed).max(1);
        self.total_jobs.div_ceil(alive).max(1)
    }

    /// Whether this instance holds fewer jobs than its fair share.
    pub fn below_fair(&self) -> bool {
        self.held() < self.fair()
    }

    /// Whether this instance should give one job back now (only one job does at a time; the
    /// job that does reports it with [`Share::ended`]).
    pub fn should_give_back(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.held() > self.fair()
            && self
                .releasing
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    /// A job was taken.
    pub fn took(&self) {
        self.held.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// A job ended here; `given_back`: it was the one giving back.
    pub fn ended(&self, given_back: bool) {
        self.held.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if given_back {
            self.releasing.store(false, std::sync::atomic::Ordering::Release);
        }
    }
}
