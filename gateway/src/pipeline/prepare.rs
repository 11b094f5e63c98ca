//! One source record -> an [`IncomingRecord`]: map and validate it, hash the payload and the
//! canonical record, and derive the business key, numbering year and region.

use super::reader::{ReadItem, SourceRecord};
use crate::store::{AcceptedRecord, BusinessKey, IncomingRecord, Operation, PayloadFormat, Verdict};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use normalizer::mapping::Mapping;
use normalizer::{CaseType, Normalizer, Violation};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Everything needed to prepare one source's records.
#[derive(Debug, Clone)]
pub struct Preparer {
    /// Source id.
    pub source_id: String,
    /// The source's mapping.
    pub mapping: Arc<Mapping>,
    /// Schema and rule validation.
    pub normalizer: Arc<Normalizer>,
    /// Path in the source record of its key at the source.
    pub record_key_path: Option<String>,
    /// Where the commits of this source's records are counted: the running gateway's metrics
    /// (`None` in one-shot commands).
    pub metrics: Option<Arc<crate::server::metrics::Metrics>>,
}

/// SHA-256 as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Where each case type's numbering year is read from, in order of preference.
fn year_fields(case_type: CaseType) -> &'static [&'static str] {
    match case_type {
        CaseType::Inspection => &["/inspection/check_date"],
        CaseType::Penalty => &["/penalty/filing_date", "/penalty/decision_date"],
        CaseType::Coercion => &["/coercion/start_date"],
    }
}

/// The year a case is numbered in: the year of its first action (inspection date, penalty
/// filing or decision date, coercion start), else the current year in China.
pub fn numbering_year(record: &Value, case_type: CaseType) -> i32 {
    year_fields(case_type)
        .iter()
        .filter_map(|p| record.pointer(p).and_then(Value::as_str))
        .find_map(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        .map(|d| d.year())
        .unwrap_or_else(|| normalizer::standards::today_in_china().year())
}

/// Hash identifying a version's content: the canonical record without its `operation` flag
/// (an "update" identical to what is stored is unchanged), marked for withdrawals.
pub fn record_hash(record: &Value, operation: Operation) -> String {
    let mut hasher = Sha256::new();
    if operation == Operation::Delete {
        hasher.update(b"withdrawn:");
    }
    match record {
        Value::Object(map) if map.contains_key("operation") => {
            let mut copy = map.clone();
            copy.remove("operation");
            hasher.update(serde_json::to_vec(&copy).unwrap_or_default());
        }
        other => hasher.update(serde_json::to_vec(other).unwrap_or_default()),
    }
    hex::encode(hasher.finalize())
}

fn key_text(value: &Value, path: &str) -> Option<String> {
    let mut cur = value;
    for seg in path.split('.') {
        cur = cur.get(seg)?;
    }
    match cur {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Preparer {
    /// Prepare one item from a reader.
    pub fn prepare(&self, item: ReadItem, received_at: DateTime<Utc>) -> IncomingRecord {
        match item {
            Ok(record) => self.prepare_record(record, received_at, None),
            Err(unreadable) => IncomingRecord {
                source_id: self.source_id.clone(),
                record_key: unreadable.position.clone(),
                payload_hash: sha256_hex(&unreadable.payload),
                payload: unreadable.payload,
                payload_format: PayloadFormat::Json,
                received_at,
                mapping_id: self.mapping.id().to_string(),
                mapping_version: self.mapping.version(),
                verdict: Verdict::Quarantine(vec![Violation::error(
                    "",
                    "input.unreadable",
                    None,
                    format!("记录无法解析（{}）：{}", unreadable.position, unreadable.message),
                    format!(
                        "record cannot be parsed ({}): {}",
                        unreadable.position, unreadable.message
                    ),
                )]),
                replay_of: None,
            },
        }
    }

    /// Prepare one parsed source record; `replay_of` names the quarantine entry being replayed.
    pub fn prepare_record(
        &self,
        record: SourceRecord,
        received_at: DateTime<Utc>,
        replay_of: Option<i64>,
    ) -> IncomingRecord {
        let outcome = self.normalizer.normalize(&self.mapping, &record.value);
        let accepted = outcome.is_accepted();
        let canonical = outcome.record;
        let key = self.business_key(&canonical);
        let record_key = self
            .record_key_path
            .as_deref()
            .and_then(|p| key_text(&record.value, p))
            .or_else(|| key.as_ref().map(ToString::to_string))
            .unwrap_or_else(|| record.position.clone());
        let verdict = match (accepted, key) {
            (true, Some(key)) => {
                let operation = Operation::from_record(&canonical);
                let year = numbering_year(&canonical, key.case_type);
                let region = canonical
                    .pointer("/agency/region_code")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                Verdict::Accept(AcceptedRecord {
                    record_hash: record_hash(&canonical, operation),
                    key,
                    year,
                    region,
                    operation,
                    record: canonical,
                    warnings: outcome.violations,
                })
            }
            (true, None) => Verdict::Quarantine(vec![Violation::error(
                "",
                "pipeline.no_business_key",
                None,
                "记录缺少业务主键（执法部门统一社会信用代码、案件类型、部门案件编号）",
                "record lacks its business key (agency credit code, case type, case number)",
            )]),
            (false, _) => Verdict::Quarantine(outcome.violations),
        };
        IncomingRecord {
            source_id: self.source_id.clone(),
            record_key,
            payload_hash: sha256_hex(&record.payload),
            payload: record.payload,
            payload_format: PayloadFormat::Json,
            received_at,
            mapping_id: self.mapping.id().to_string(),
            mapping_version: self.mapping.version(),
            verdict,
            replay_of,
        }
    }

    fn business_key(&self, canonical: &Value) -> Option<BusinessKey> {
        let case_type: CaseType = canonical.get("case_type")?.as_str()?.parse().ok()?;
        let agency_credit_code = canonical.pointer("/agency/credit_code")?.as_str()?.to_string();
        let case_number = canonical.get("case_number")?.as_str()?.trim().to_string();
        if agency_credit_code.is_empty() || case_number.is_empty() {
            return None;
        }
        Some(BusinessKey {
            agency_credit_code,
            case_type,
            case_number,
        })
    }
}
