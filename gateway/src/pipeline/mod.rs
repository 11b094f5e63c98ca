//! The pipeline: source records -> prepare (map, validate, hash) -> batch -> commit.
//!
//! - [`reader`]: turns input files (JSON, JSON lines, XML, CSV) into source records.
//! - [`prepare`]: one source record -> an [`IncomingRecord`](crate::store::IncomingRecord) with
//!   its verdict (accept with business key, or quarantine with violations).
//! - [`commit`]: commits a batch, retrying transient conflicts and isolating a record that
//!   makes its batch fail.
//! - [`ingest`]: the stages joined by bounded channels, with batching and graceful shutdown.
//! - [`replay`]: re-runs quarantined records through the current mapping.
//! - [`workers`]: the preparation threads, at a lower priority than the commit.

pub mod batch;
pub mod commit;
pub mod ingest;
pub mod prepare;
pub mod reader;
pub mod replay;
pub mod workers;

use serde::Serialize;

/// Counts of what a run did; printed as one JSON line by `gateway ingest`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Records read from the input.
    pub received: u64,
    /// New cases (a new unified code each).
    pub accepted: u64,
    /// New versions of existing cases (including withdrawals).
    pub updated: u64,
    /// Re-sent records identical to the case's current version.
    pub unchanged: u64,
    /// Records put in (or kept in) the quarantine.
    pub quarantined: u64,
}

impl Summary {
    /// Count one commit result.
    pub fn add(&mut self, result: &crate::store::RecordResult) {
        use crate::store::RecordResult::*;
        match result {
            Accepted { .. } => self.accepted += 1,
            Updated { .. } | Withdrawn { .. } => self.updated += 1,
            Unchanged { .. } => self.unchanged += 1,
            Quarantined { .. } => self.quarantined += 1,
        }
    }

    /// Add another summary's counts.
    pub fn merge(&mut self, other: &Summary) {
        self.received += other.received;
        self.accepted += other.accepted;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.quarantined += other.quarantined;
    }
}
