//! Cases awaiting supplement (待补录) and the values departments supplied.
//!
//! A case whose current version lacks fields its source cannot supply (the mapping declares
//! them `supplement = true`; the version carries the warning `supplement.missing_field`) is
//! listed in `awaiting_supplement`, kept by the commit in the same transaction as the version.
//! A department completes it by hand: the completed record is committed as a new version and,
//! in the same transaction, the values are kept in `case_supplements`, from where they fill the
//! same gap in re-sent records of the case ([`normalizer::supplement::SuppliedValues`]).
//! Both backends implement [`SupplementStore`].

use super::error::StoreResult;
use super::plan::{CaseRef, Plan};
use super::types::{BusinessKey, CommitBatch, IncomingRecord, RecordResult, Verdict};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;

/// The rule of the warning a version awaiting supplement carries, one per missing field.
pub const AWAITING_RULE: &str = "supplement.missing_field";

/// Which cases awaiting supplement to list.
#[derive(Debug, Clone, Default)]
pub struct AwaitingFilter {
    /// Only this handling agency's cases (credit code).
    pub agency: Option<String>,
    /// Only cases whose current version came from one of these sources (a department's scope).
    pub source_ids: Option<Vec<String>>,
    /// Only this source.
    pub source_id: Option<String>,
    /// Only this record kind (`inspection`, `penalty`, `coercion`, `plan`).
    pub case_type: Option<String>,
    /// Only cases awaiting this field (a JSON pointer such as `/item_code`).
    pub field: Option<String>,
    /// Skip this many (page numbers).
    pub offset: Option<i64>,
    /// At most this many (default 100).
    pub limit: Option<i64>,
}

/// A case awaiting supplement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AwaitingCase {
    /// Case id.
    pub case_id: i64,
    /// Unified code.
    pub code: String,
    /// Handling agency's credit code.
    pub agency_credit_code: String,
    /// Record kind.
    pub case_type: String,
    /// The agency's case (or plan) number.
    pub case_number: String,
    /// The source that wrote its current version.
    pub source_id: String,
    /// The fields still missing (JSON pointers).
    pub fields: Vec<String>,
    /// Since when it awaits supplement (its first version lacking a field).
    pub since: DateTime<Utc>,
    /// When its current version was written.
    pub updated_at: DateTime<Utc>,
}

/// How many cases of one agency and source await supplement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AwaitingCount {
    /// Handling agency's credit code.
    pub agency_credit_code: String,
    /// Source.
    pub source_id: String,
    /// Cases awaiting supplement.
    pub cases: i64,
    /// The oldest `since` among them.
    pub oldest: DateTime<Utc>,
}

/// A value a department supplied for one field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewSupplied {
    /// The field (JSON pointer).
    pub pointer: String,
    /// Its value.
    pub value: Value,
}

/// A value a department supplied, as kept.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SuppliedRow {
    /// Row id (increasing: refresh from the last one seen).
    pub id: i64,
    /// Case id.
    pub case_id: i64,
    /// Unified code.
    pub code: String,
    /// Business key text (`credit code/case type/case number`).
    pub business_key: String,
    /// The field.
    pub pointer: String,
    /// Its value.
    pub value: Value,
    /// The version the completion became.
    pub version: i32,
    /// Who supplied it (token name).
    pub actor: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Cases awaiting supplement and supplied values, in a store.
#[async_trait]
pub trait SupplementStore: Send + Sync {
    /// A page of the cases awaiting supplement (oldest first) and how many the filter selects.
    async fn awaiting(&self, filter: &AwaitingFilter) -> StoreResult<(Vec<AwaitingCase>, i64)>;

    /// Cases awaiting supplement counted per agency and source (within `source_ids` if given).
    async fn awaiting_counts(&self, source_ids: Option<&[String]>) -> StoreResult<Vec<AwaitingCount>>;

    /// Commit a department's completion (one record, see [`completion_batch`]) and keep the
    /// supplied values with the version it becomes, in one transaction. The values are kept
    /// only when the record became a version.
    async fn commit_completion(
        &self,
        batch: &CommitBatch,
        business_key: &str,
        supplied: &[NewSupplied],
        actor: &str,
    ) -> StoreResult<RecordResult>;

    /// Supplied values with an id above `after_id`, in id order.
    async fn supplied_after(&self, after_id: i64) -> StoreResult<Vec<SuppliedRow>>;

    /// The values supplied for one case, oldest first.
    async fn supplied_for_case(&self, code: &str) -> StoreResult<Vec<SuppliedRow>>;
}

/// The awaiting-supplement row a batch writes for one case: its final state in the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AwaitingWrite<'a> {
    pub case_id: i64,
    pub code: &'a str,
    pub key: &'a BusinessKey,
    pub source_id: &'a str,
    /// JSON array of the missing fields' pointers.
    pub fields: String,
}

/// How a batch changes `awaiting_supplement`: existing cases whose new current version awaits
/// nothing (to clear), and cases whose new current version awaits fields (to write). `case_ids`
/// holds the case id of each of the plan's versions.
pub(crate) fn awaiting_changes<'a>(
    records: &'a [IncomingRecord],
    plan: &'a Plan,
    case_ids: &[i64],
) -> (Vec<i64>, Vec<AwaitingWrite<'a>>) {
    let awaits = |v: &super::plan::NewVersion| match &records[v.record_index].verdict {
        Verdict::Accept(a) => a.warnings.iter().any(|w| w.rule == AWAITING_RULE),
        Verdict::Quarantine(_) => false,
    };
    if !plan.versions.iter().any(awaits) {
        // The common batch: nothing awaits; only existing cases may leave the list.
        let mut clear: Vec<i64> = plan
            .versions
            .iter()
            .zip(case_ids)
            .filter(|(v, _)| matches!(v.case, CaseRef::Existing(_)))
            .map(|(_, id)| *id)
            .collect();
        clear.sort_unstable();
        clear.dedup();
        return (clear, Vec::new());
    }
    let mut last: HashMap<i64, usize> = HashMap::new();
    for (vi, case_id) in case_ids.iter().enumerate().take(plan.versions.len()) {
        last.insert(*case_id, vi);
    }
    let mut order: Vec<(i64, usize)> = last.into_iter().collect();
    order.sort_unstable();
    let mut clear = Vec::new();
    let mut write = Vec::new();
    for (case_id, vi) in order {
        let v = &plan.versions[vi];
        let record = &records[v.record_index];
        let Verdict::Accept(a) = &record.verdict else { continue };
        let fields: Vec<&str> = a
            .warnings
            .iter()
            .filter(|w| w.rule == AWAITING_RULE)
            .map(|w| w.pointer.as_str())
            .collect();
        if fields.is_empty() || v.withdrawn {
            if matches!(v.case, CaseRef::Existing(_)) {
                clear.push(case_id);
            }
        } else {
            write.push(AwaitingWrite {
                case_id,
                code: &v.code,
                key: &a.key,
                source_id: &record.source_id,
                fields: serde_json::to_string(&fields).unwrap_or_else(|_| "[]".into()),
            });
        }
    }
    (clear, write)
}

/// The pointers of a stored `fields` column.
pub(crate) fn fields_of(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// A department's completion as a batch of one record (no fence: it is not a scheduled job).
pub fn completion_batch(record: IncomingRecord, sinks: Vec<super::types::SinkRoute>) -> CommitBatch {
    CommitBatch {
        records: vec![record],
        cursors: Vec::new(),
        sinks,
        fence: None,
    }
}
