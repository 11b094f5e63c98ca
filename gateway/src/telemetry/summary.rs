//! What a run, a batch or a source did, counted the same way for every way in.

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
    /// Records older than their case's current version by the source's own time: kept in the
    /// lineage as stale, never the head, never delivered.
    pub stale: u64,
    /// Records put in (or kept in) the quarantine.
    pub quarantined: u64,
}

impl Summary {
    /// Add another summary's counts.
    pub fn merge(&mut self, other: &Summary) {
        self.received += other.received;
        self.accepted += other.accepted;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.stale += other.stale;
        self.quarantined += other.quarantined;
    }
}
