//! Committing records that arrive in batches from a connection rather than from a file: a
//! page of a pull, a group of AMQP messages, the body of an HTTP push. Each batch is prepared
//! on the preparation threads and committed in one transaction together with the source cursor it
//! carries (isolating a record the store refuses), and the caller learns what became of each
//! record, in order, before it acknowledges anything to the source.

use super::commit::commit_isolating;
use super::prepare::Preparer;
use super::reader::{ReadItem, SourceRecord, UnreadableRecord};
use super::workers::spawn_prepare;
use crate::server::metrics::BatchTally;
use crate::store::{CommitBatch, IncomingRecord, RecordResult, Store, StoreError};
use adapters::sources::SourceItem;
use normalizer::Violation;
use serde::Serialize;
use std::time::Instant;

/// What became of one record of a batch, for answers to pushes and for logs.
#[derive(Debug, Clone, Serialize)]
pub struct RecordOutcome {
    /// The record's key at its source (or its position).
    pub record_key: String,
    /// Accepted, updated, unchanged, withdrawn or quarantined.
    #[serde(flatten)]
    pub result: RecordResult,
    /// Why it was quarantined (empty otherwise), or the warnings it was accepted with.
    pub violations: Vec<Violation>,
}

/// The counts of a committed batch of `received` records with these outcomes.
pub fn summarize(received: u64, outcomes: &[RecordOutcome]) -> super::Summary {
    let mut summary = super::Summary {
        received,
        ..super::Summary::default()
    };
    for o in outcomes {
        summary.add(&o.result);
    }
    summary
}

/// Convert an adapter's item into the pipeline's.
pub fn read_item(item: SourceItem) -> ReadItem {
    match item {
        Ok(r) => Ok(SourceRecord::parsed(r.value, r.payload, r.position)),
        Err(u) => Err(UnreadableRecord {
            payload: u.payload,
            position: u.position,
            message: u.message,
        }),
    }
}

/// Prepare `items` (map, validate) and commit them with `cursor` (source id, value) in one
/// transaction. On error nothing of the batch is committed and the cursor is not advanced.
pub async fn prepare_and_commit(
    store: &dyn Store,
    preparer: &Preparer,
    items: Vec<ReadItem>,
    cursor: Option<String>,
    sinks: &[String],
) -> Result<Vec<RecordOutcome>, StoreError> {
    let prepared = prepare_parallel(preparer, items, store.keeps_compressed()).await?;
    commit_prepared(store, preparer, prepared, cursor, sinks).await
}

/// Prepare `items` on the preparation threads, split over the machine's cores, keeping their order;
/// `compress`: for a store that [keeps records compressed](Store::keeps_compressed).
pub async fn prepare_parallel(
    preparer: &Preparer,
    items: Vec<ReadItem>,
    compress: bool,
) -> Result<Vec<IncomingRecord>, StoreError> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let per_part = items.len().div_ceil(cores).max(64);
    let mut parts = Vec::new();
    let mut items = items.into_iter();
    loop {
        let part: Vec<ReadItem> = items.by_ref().take(per_part).collect();
        if part.is_empty() {
            break;
        }
        let p = preparer.clone();
        let handle = spawn_prepare(move || p.prepare_chunk(part, compress))
            .map_err(|e| StoreError::Task(format!("prepare: {e}")))?;
        parts.push(handle);
    }
    let mut prepared = Vec::new();
    for part in parts {
        prepared.extend(
            part.join()
                .await
                .map_err(|e| StoreError::Task(format!("prepare: {e}")))?,
        );
    }
    Ok(prepared)
}

/// Commit prepared records with `cursor` in one transaction (isolating a record the store
/// refuses) and say what became of each.
pub async fn commit_prepared(
    store: &dyn Store,
    preparer: &Preparer,
    prepared: Vec<IncomingRecord>,
    cursor: Option<String>,
    sinks: &[String],
) -> Result<Vec<RecordOutcome>, StoreError> {
    let details: Vec<(String, Vec<Violation>)> = prepared
        .iter()
        .map(|r| {
            let violations = match &r.verdict {
                crate::store::Verdict::Accept(a) => a.warnings.clone(),
                crate::store::Verdict::Quarantine(v) => v.clone(),
            };
            (r.record_key.clone(), violations)
        })
        .collect();
    let tally = preparer.metrics.as_ref().map(|_| BatchTally::of(&prepared));
    let batch = CommitBatch {
        records: prepared,
        cursors: cursor
            .map(|c| vec![(preparer.source_id.clone(), c)])
            .unwrap_or_default(),
        sinks: sinks.to_vec(),
    };
    let started = Instant::now();
    let results = commit_isolating(store, batch).await?;
    if let (Some(metrics), Some(tally)) = (&preparer.metrics, &tally) {
        metrics.batch_committed(tally, &results, started.elapsed());
    }
    Ok(details
        .into_iter()
        .zip(results)
        .map(|((record_key, violations), result)| RecordOutcome {
            record_key,
            result,
            violations,
        })
        .collect())
}
