//! The one committer: every way in (files, drop folders, REST/SOAP pulls, AMQP, HTTP push,
//! replay) hands it prepared records, and it commits them in one transaction (with the cursor
//! they carry), isolates a record the store refuses, counts what became of each record, logs
//! the batch and reports it to the metrics and the source board through one event. What
//! differs per way in (acknowledging messages, answering a push, the progress bar) is done by
//! the caller with what [`Committer::commit`] returns.

use super::isolate::commit_isolating;
use crate::store::oversight::{self, Receipt};
use crate::store::Operation;
use crate::store::{CommitBatch, Fence, IncomingRecord, RecordResult, Store, StoreError, Verdict};
use crate::telemetry::{BatchCommitted, Summary, Telemetry};
use normalizer::plans::KnownPlans;
use normalizer::{CaseType, Severity, Violation};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

impl Summary {
    /// Count one commit result.
    pub fn add(&mut self, result: &RecordResult) {
        use RecordResult::*;
        match result {
            Accepted { .. } => self.accepted += 1,
            Updated { .. } | Withdrawn { .. } => self.updated += 1,
            Unchanged { .. } => self.unchanged += 1,
            Stale { .. } => self.stale += 1,
            Quarantined { .. } => self.quarantined += 1,
        }
    }

    /// The counts of `results`, each one a received record.
    pub fn of_results(results: &[RecordResult]) -> Summary {
        let mut summary = Summary {
            received: results.len() as u64,
            ..Summary::default()
        };
        for r in results {
            summary.add(r);
        }
        summary
    }
}

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

/// What a commit did: each record's result, in order, and the counts.
#[derive(Debug, Clone, Default)]
pub struct Committed {
    /// One result per record, in the order given.
    pub results: Vec<RecordResult>,
    /// The counts of the results.
    pub summary: Summary,
}

/// Commits prepared records of any way in; cheap to clone (one per task).
#[derive(Clone)]
pub struct Committer {
    store: Arc<dyn Store>,
    sinks: Arc<[crate::store::SinkRoute]>,
    telemetry: Telemetry,
    /// Which way in this committer serves (`files`, `directory`, `pull`, `amqp`, `push`,
    /// `replay`): a field of every batch's log span.
    way: &'static str,
    batches: Arc<AtomicU64>,
    /// For a scheduled job: the lease every batch is committed under.
    fence: Option<Fence>,
    /// The plans `rule.plan_unknown` checks against: a committed plan is known at once.
    known_plans: Option<Arc<KnownPlans>>,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer")
            .field("backend", &self.store.backend())
            .field("sinks", &self.sinks)
            .field("way", &self.way)
            .finish()
    }
}

/// The counts and violated rules of one source's records within a batch.
struct SourceTally {
    source: String,
    summary: Summary,
    rules: Vec<(String, &'static str)>,
}

fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// The plans among `records` (accepted, not withdrawals): record index and plan number.
fn plan_numbers(records: &[IncomingRecord], wanted: bool) -> Vec<(usize, String)> {
    if !wanted {
        return Vec::new();
    }
    records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match &r.verdict {
            Verdict::Accept(a) if a.key.case_type == CaseType::Plan && a.operation != Operation::Delete => {
                Some((i, a.key.case_number.as_str().to_string()))
            }
            _ => None,
        })
        .collect()
}

fn violations_of(record: &IncomingRecord) -> &[Violation] {
    match &record.verdict {
        Verdict::Accept(a) => &a.warnings,
        Verdict::Quarantine(v) => v,
    }
}

impl Committer {
    /// A committer writing to `store`, with one outbox row per sink of `sinks` for every new
    /// version, reporting to `telemetry`.
    pub fn new(store: Arc<dyn Store>, sinks: Vec<crate::store::SinkRoute>, telemetry: Telemetry) -> Committer {
        Committer {
            store,
            sinks: sinks.into(),
            telemetry,
            way: "files",
            batches: Arc::new(AtomicU64::new(0)),
            fence: None,
            known_plans: None,
        }
    }

    /// The same committer, adding the numbers of the plans it commits to `known`.
    pub fn with_known_plans(self, known: Option<Arc<KnownPlans>>) -> Committer {
        Committer {
            known_plans: known,
            ..self
        }
    }

    /// The same committer, naming `way` (`files`, `directory`, `pull`, `amqp`, `push`, `replay`)
    /// in its batches' logs.
    pub fn for_way(&self, way: &'static str) -> Committer {
        Committer { way, ..self.clone() }
    }

    /// The same committer for a scheduled job: each batch is refused ([`StoreError::Fenced`],
    /// nothing written) once `fence` no longer holds the job's lease.
    pub fn with_fence(&self, fence: Option<Fence>) -> Committer {
        Committer { fence, ..self.clone() }
    }

    /// The store committed to.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Where batches are reported.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Whether records should be compressed while preparing (see [`Store::keeps_compressed`]).
    pub fn keeps_compressed(&self) -> bool {
        self.store.keeps_compressed()
    }

    /// Commit `records` in one transaction, with `cursor` (source id, value) when given; a
    /// record the store refuses is isolated and quarantined (`store.write_failed`). Counts,
    /// logs (one span per batch; each record's key and result at debug level) and reports the
    /// batch per source to the metrics and the source board. On error nothing of the batch was
    /// committed and the cursor did not move.
    pub async fn commit(
        &self,
        records: Vec<IncomingRecord>,
        cursor: Option<(String, String)>,
    ) -> Result<Committed, StoreError> {
        let batch_no = self.batches.fetch_add(1, Ordering::Relaxed) + 1;
        let first_source = records.first().map(|r| r.source_id.clone()).unwrap_or_default();
        let span = tracing::info_span!("batch", source = %first_source, way = self.way, batch = batch_no,
            records = records.len());
        let record_keys: Vec<String> = if tracing::enabled!(tracing::Level::DEBUG) {
            records.iter().map(|r| r.record_key.clone()).collect()
        } else {
            Vec::new()
        };
        let (mut tallies, tally_of_record) = tally(&records);
        let plans = plan_numbers(&records, self.known_plans.is_some());
        let attachments = attachment_records(&records);
        let receipts: Vec<Receipt> = records.iter().map(Receipt::of).collect();
        let records = seal_plain_payloads(records)?;
        let batch = CommitBatch {
            records,
            cursors: cursor.into_iter().collect(),
            sinks: self.sinks.to_vec(),
            fence: self.fence.clone(),
        };
        let started = Instant::now();
        let results = commit_isolating(self.store.as_ref(), batch)
            .instrument(span.clone())
            .await?;
        let elapsed = started.elapsed();
        // The daily counts of reconciliation (对账): after the batch, in a statement of their
        // own (an atomic add), retried briefly; a failure costs the count, never the batch, and is
        // counted (`gateway_bookkeeping_failures_total{kind="reconciliation_counts"}`).
        let day_tallies = oversight::tally(&receipts, &results);
        let minute_tallies = oversight::tally_minutes(&receipts, &results);
        let added =
            crate::store::retried(3, || self.store.oversight().add_tallies(&day_tallies, &minute_tallies)).await;
        if let Err(e) = added {
            tracing::error!(error = %e, "could not add the batch to the daily reconciliation counts");
            if let Some(m) = &self.telemetry.metrics {
                m.bookkeeping_failed("reconciliation_counts");
            }
        }
        if let Some(known) = &self.known_plans {
            let committed = plans.into_iter().filter(|(i, _)| {
                matches!(
                    results.get(*i),
                    Some(RecordResult::Accepted { .. } | RecordResult::Updated { .. })
                )
            });
            known.insert_all(committed.map(|(_, number)| number));
        }
        list_attachments(self.store.as_ref(), attachments, &results)
            .instrument(span.clone())
            .await;
        let summary = Summary::of_results(&results);
        span.in_scope(|| {
            for (key, result) in record_keys.iter().zip(&results) {
                tracing::debug!(record_key = %key, ?result, "record committed");
            }
            if let [only] = tallies.as_mut_slice() {
                only.summary = summary;
            } else {
                for (index, result) in tally_of_record.iter().zip(&results) {
                    let counts = &mut tallies[*index].summary;
                    counts.received += 1;
                    counts.add(result);
                }
            }
            for t in &tallies {
                self.telemetry.emit(BatchCommitted {
                    source: &t.source,
                    summary: &t.summary,
                    rules: &t.rules,
                    elapsed,
                });
            }
        });
        Ok(Committed { results, summary })
    }

    /// [`Committer::commit`], saying for each record its key and violations as well.
    pub async fn commit_with_outcomes(
        &self,
        records: Vec<IncomingRecord>,
        cursor: Option<(String, String)>,
    ) -> Result<(Vec<RecordOutcome>, Summary), StoreError> {
        let details: Vec<(String, Vec<Violation>)> = records
            .iter()
            .map(|r| (r.record_key.clone(), violations_of(r).to_vec()))
            .collect();
        let committed = self.commit(records, cursor).await?;
        let outcomes = details
            .into_iter()
            .zip(committed.results)
            .map(|((record_key, violations), result)| RecordOutcome {
                record_key,
                result,
                violations,
            })
            .collect();
        Ok((outcomes, committed.summary))
    }
}

/// The records of a batch that name attachments: (index, source id, canonical record).
fn attachment_records(records: &[IncomingRecord]) -> Vec<(usize, String, serde_json::Value)> {
    records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match &r.verdict {
            Verdict::Accept(a) => {
                crate::store::attachments::record_with_attachments(a).map(|record| (i, r.source_id.clone(), record))
            }
            Verdict::Quarantine(_) => None,
        })
        .collect()
}

/// List the attachments of the versions the batch committed, for the fetcher (证据附件). A
/// failure is logged, not fatal: the dispatcher lists a version's attachments itself when it
/// finds none listed.
async fn list_attachments(
    store: &dyn Store,
    records: Vec<(usize, String, serde_json::Value)>,
    results: &[RecordResult],
) {
    let mut rows = Vec::new();
    for (i, source, record) in records {
        let (code, version) = match results.get(i) {
            Some(RecordResult::Accepted { code }) => (code, 1),
            Some(RecordResult::Updated { code, version }) => (code, *version),
            _ => continue,
        };
        rows.extend(crate::attachments::listed(code, version, &source, &record));
    }
    if rows.is_empty() {
        return;
    }
    match store.attachments().enqueue_attachments(&rows).await {
        Ok(n) => tracing::debug!(attachments = n, "attachments listed for fetching"),
        Err(e) => tracing::warn!(error = %e, "attachments not listed now; the dispatcher lists them"),
    }
}

/// The sources of a batch (in order of first appearance) with their violated rules, and which
/// of them each record belongs to; the counts are filled in after the commit.
fn tally(records: &[IncomingRecord]) -> (Vec<SourceTally>, Vec<usize>) {
    let mut tallies: Vec<SourceTally> = Vec::with_capacity(1);
    let mut tally_of_record = Vec::with_capacity(records.len());
    for r in records {
        let index = match tallies.iter().position(|t| t.source == r.source_id) {
            Some(i) => i,
            None => {
                tallies.push(SourceTally {
                    source: r.source_id.clone(),
                    summary: Summary::default(),
                    rules: Vec::new(),
                });
                tallies.len() - 1
            }
        };
        tally_of_record.push(index);
        for v in violations_of(r) {
            tallies[index].rules.push((v.rule.clone(), severity_name(v.severity)));
        }
    }
    (tallies, tally_of_record)
}

/// With `[personal_data]` keys, every payload reaches the archive sealed: those the preparer
/// sealed with the record, and those it kept as they came (unreadable, too large) sealed here,
/// their chain digest made from the clear bytes first.
fn seal_plain_payloads(mut records: Vec<IncomingRecord>) -> Result<Vec<IncomingRecord>, StoreError> {
    let Some(keys) = crate::crypto::personal::registered() else {
        return Ok(records);
    };
    let chain = crate::crypto::chain::prepared_digest();
    for r in &mut records {
        let plain = match r.payload_lz4.take() {
            Some(block) => crate::store::decompressed(&block)?,
            None => std::mem::take(&mut r.payload),
        };
        if crate::crypto::personal::is_sealed_bytes(&plain) {
            r.payload = plain;
            continue;
        }
        if let (Some(alg), None) = (chain, r.payload_digest) {
            r.payload_digest = Some((alg, alg.digest(&plain)));
        }
        r.payload = keys.seal_bytes(&plain);
    }
    Ok(records)
}
