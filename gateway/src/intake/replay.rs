//! Replay: run quarantined records again through their source's CURRENT mapping. An entry that
//! now passes becomes a case version and is marked `replayed`; one that still fails keeps its
//! place in the quarantine with its new violations.

use crate::commit::Committer;
use crate::prepare::reader::{ParsedRecord, SourceRecord, Truncated, UnreadableRecord};
use crate::prepare::record::STILL_UNREADABLE_RULES;
use crate::prepare::Preparer;
use crate::store::{PayloadFormat, QuarantineFilter, QuarantineStatus, StoreError};
use crate::telemetry::Summary;
use chrono::Utc;
use std::collections::HashMap;

/// Which entries to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplaySelection {
    /// One entry.
    pub id: Option<i64>,
    /// All open entries of a source.
    pub source_id: Option<String>,
    /// All open entries with a violation of this rule.
    pub rule: Option<String>,
    /// Only entries of these sources (a department's scope).
    pub sources: Option<Vec<String>>,
    /// Only entries found by this search (record key, case number, target; see
    /// [`QuarantineFilter::search`]).
    pub search: Option<String>,
    /// Only entries created at or after.
    pub since: Option<chrono::DateTime<Utc>>,
    /// Only entries created before.
    pub until: Option<chrono::DateTime<Utc>>,
}

impl ReplaySelection {
    /// The open entries this selection replays, as a quarantine filter (no paging).
    pub fn filter(&self) -> QuarantineFilter {
        QuarantineFilter {
            id: self.id,
            source_id: self.source_id.clone(),
            rule: self.rule.clone(),
            status: self.id.is_none().then_some(QuarantineStatus::Open),
            sources: self.sources.clone(),
            search: self.search.clone(),
            since: self.since,
            until: self.until,
            ..Default::default()
        }
    }
}

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An entry belongs to a source that is no longer configured.
    #[error(
        "隔离记录 {id} 的来源 {source_id} 未在配置中 / quarantine entry {id}: source {source_id} is not configured"
    )]
    UnknownSource {
        /// Entry id.
        id: i64,
        /// Its source.
        source_id: String,
    },
    /// The entry is neither open nor superseded (already replayed, or ignored).
    #[error("隔离记录 {0} 不是待处理状态 / quarantine entry {0} is not open")]
    NotOpen(i64),
}

/// Replay the selected open entries through `committer`; `preparers` maps source id to its
/// current preparer. One entry chosen by id may also be `superseded` (a later record of its key
/// was accepted): the commit's ordering rules keep its replay from regressing the case.
pub async fn replay(
    committer: &Committer,
    preparers: &HashMap<String, Preparer>,
    selection: &ReplaySelection,
) -> Result<Summary, ReplayError> {
    let store = committer.store().as_ref();
    let mut summary = Summary::default();
    let mut before_id = None;
    if let Some(id) = selection.id {
        let status = store.quarantine_get(id).await?.status;
        if !matches!(status, QuarantineStatus::Open | QuarantineStatus::Superseded) {
            return Err(ReplayError::NotOpen(id));
        }
    }
    loop {
        let filter = QuarantineFilter {
            before_id,
            limit: Some(500),
            ..selection.filter()
        };
        let entries = store.quarantine_list(&filter).await?;
        if entries.is_empty() {
            break;
        }
        before_id = entries.last().map(|e| e.id);
        let mut records = Vec::with_capacity(entries.len());
        for entry in &entries {
            let preparer = preparers
                .get(&entry.source_id)
                .ok_or_else(|| ReplayError::UnknownSource {
                    id: entry.id,
                    source_id: entry.source_id.clone(),
                })?;
            let raw = store.raw_record(entry.raw_id).await?;
            // A record over the size limit was archived as its beginning only: it stays what it
            // was (identified by the SHA-256 of the whole, as when it arrived).
            if let Some(too_large) = entry.violations.iter().find(|v| v.rule == "input.too_large") {
                let truncated = Truncated {
                    bytes: too_large.value.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0),
                    sha256: raw.content_hash.clone(),
                };
                let mut incoming = preparer.too_large(raw.payload, raw.record_key, Some(truncated), raw.received_at);
                incoming.replay_of = Some(entry.id);
                records.push(incoming);
                continue;
            }
            // An unreadable record stays unreadable (see `Preparer::still_unreadable`).
            let unreadable = |v: &normalizer::Violation| STILL_UNREADABLE_RULES.contains(&v.rule.as_str());
            if raw.format == PayloadFormat::Json && entry.violations.iter().any(unreadable) {
                let mut incoming =
                    preparer.still_unreadable(raw.payload, raw.record_key, entry.violations.clone(), raw.received_at);
                incoming.replay_of = Some(entry.id);
                records.push(incoming);
                continue;
            }
            let parsed = match raw.format {
                PayloadFormat::Json => SourceRecord::unparsed_json(raw.payload, raw.record_key).parse(),
                PayloadFormat::Xml => match normalizer::xml_tree::parse_xml(&raw.payload, &Default::default()) {
                    Ok(value) => Ok(ParsedRecord {
                        value,
                        payload: raw.payload,
                        position: raw.record_key,
                    }),
                    Err(e) => Err(UnreadableRecord {
                        payload: raw.payload,
                        position: raw.record_key,
                        message: e.to_string(),
                        truncated: None,
                        rule: None,
                    }),
                },
            };
            let mut incoming = match parsed {
                Ok(record) => preparer.prepare_record(record, raw.received_at, Some(entry.id)),
                Err(unreadable) => preparer.prepare(Err(unreadable), Utc::now()),
            };
            incoming.replay_of = Some(entry.id);
            incoming.received_at = raw.received_at;
            records.push(incoming);
        }
        let committed = committer.commit(records, None).await?;
        summary.merge(&committed.summary);
        if selection.id.is_some() {
            break;
        }
    }
    Ok(summary)
}
