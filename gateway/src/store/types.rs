//! Plain data exchanged with the store.

use chrono::{DateTime, Utc};
use normalizer::standards::CreditCode;
use normalizer::{CaseNumber, CaseType, Violation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

/// A case's business key: (handling agency credit code, case type, agency case number), each
/// as the normaliser's type for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BusinessKey {
    /// The handling agency's unified social credit code.
    pub agency_credit_code: CreditCode,
    /// The case type.
    pub case_type: CaseType,
    /// The agency's own case number.
    pub case_number: CaseNumber,
}

impl fmt::Display for BusinessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.agency_credit_code, self.case_type, self.case_number)
    }
}

/// The operation a legacy exchange record carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// New record (`i`).
    Insert,
    /// Changed record (`u`).
    Update,
    /// Withdrawn record (`d`).
    Delete,
}

impl Operation {
    /// Read the canonical `operation` field (missing means insert).
    pub fn from_record(record: &Value) -> Operation {
        match record.get("operation").and_then(Value::as_str) {
            Some("delete") => Operation::Delete,
            Some("update") => Operation::Update,
            _ => Operation::Insert,
        }
    }
}

/// How a raw payload is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadFormat {
    /// A JSON object.
    Json,
    /// An XML element tree.
    Xml,
}

impl PayloadFormat {
    /// Name stored in the archive.
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadFormat::Json => "json",
            PayloadFormat::Xml => "xml",
        }
    }
    /// Parse a stored name.
    pub fn parse(s: &str) -> Option<PayloadFormat> {
        match s {
            "json" => Some(PayloadFormat::Json),
            "xml" => Some(PayloadFormat::Xml),
            _ => None,
        }
    }
}

/// A record that passed validation, ready to become a case version.
#[derive(Debug, Clone)]
pub struct AcceptedRecord {
    /// Business key of the case.
    pub key: BusinessKey,
    /// Year the case is numbered in.
    pub year: i32,
    /// The handling agency's region code (the code's region part).
    pub region: String,
    /// Insert, update or delete.
    pub operation: Operation,
    /// The canonical record as compact JSON text, as stored (serialised once, while preparing);
    /// empty once [compressed for the store](IncomingRecord::compress_for_store).
    pub record_json: String,
    /// The target's identifier (`/target/id_number`: credit code or ID number), for look-ups.
    pub target_id: Option<String>,
    /// SHA-256 (hex) of the canonical record's JSON text without its `operation` flag.
    pub record_hash: String,
    /// Warnings kept with the version.
    pub warnings: Vec<Violation>,
    /// When the source system last changed the record (`/source_updated_at`), if the mapping
    /// names it: a version older than the case's current one by this time is stale.
    pub source_updated_at: Option<DateTime<Utc>>,
    /// `record_json` as the store keeps it when it keeps records compressed, made while
    /// preparing (see [`Store::keeps_compressed`](crate::store::Store::keeps_compressed));
    /// `None` otherwise, and the store compresses it itself if it needs to.
    pub record_lz4: Option<Vec<u8>>,
    /// True for a department's completion of fields awaiting supplement (待补录): it carries
    /// the current version's source time and is a new version without the same-source-time
    /// warning.
    pub completion: bool,
    /// What an inspection record says for the joint-inspection index (check date, joint task).
    pub joint: Option<Box<JointFacts>>,
    /// What a penalty record says for its publicity deadline (decision date, publicity date).
    pub publicity: Option<Box<PenaltyFacts>>,
}

/// What a penalty record says for the publicity deadline, read while preparing (off the commit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PenaltyFacts {
    /// `/penalty/decision_date`.
    pub decision_date: chrono::NaiveDate,
    /// The last day it may be made public on (`None`: outside the holiday calendar).
    pub deadline: Option<chrono::NaiveDate>,
    /// `/penalty/publicity_date`, when the record gives one.
    pub publicity_date: Option<chrono::NaiveDate>,
    /// `/agency/name`.
    pub agency_name: String,
}

fn date_at(record: &Value, pointer: &str) -> Option<chrono::NaiveDate> {
    record
        .pointer(pointer)
        .and_then(Value::as_str)
        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
}

impl PenaltyFacts {
    /// The facts of a canonical record: only penalties with a decision date have them.
    pub fn of(record: &Value) -> Option<PenaltyFacts> {
        if record.get("case_type").and_then(Value::as_str) != Some("penalty") {
            return None;
        }
        let decision_date = date_at(record, "/penalty/decision_date")?;
        Some(PenaltyFacts {
            decision_date,
            deadline: normalizer::publicity::publicity_deadline(decision_date).ok(),
            publicity_date: date_at(record, "/penalty/publicity_date"),
            agency_name: record
                .pointer("/agency/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        })
    }
}

/// What a canonical inspection record says for the index, read while preparing (off the commit).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JointFacts {
    /// `/inspection/check_date`.
    pub check_date: chrono::NaiveDate,
    /// The joint task the record declares: `/inspection/joint_task_id` (trimmed, upper case), or
    /// made of the check date and the agencies of a record naming its participants (see
    /// [`JointFacts::declared_task`]).
    pub task_id: Option<String>,
}

impl JointFacts {
    /// The facts of a canonical record: only inspections with a check date have them.
    pub fn of(record: &Value) -> Option<JointFacts> {
        if record.get("case_type").and_then(Value::as_str) != Some(CaseType::Inspection.as_str()) {
            return None;
        }
        let inspection = record.get("inspection")?;
        let check_date = inspection
            .get("check_date")
            .and_then(Value::as_str)
            .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())?;
        let participants: Vec<&str> = inspection
            .get("joint_participants")
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .filter_map(|p| p.get("credit_code").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        let task_id = JointFacts::declared_task(
            inspection.get("joint_task_id").and_then(Value::as_str),
            record
                .pointer("/agency/credit_code")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            check_date,
            &participants,
        );
        Some(JointFacts { check_date, task_id })
    }

    /// The joint task an inspection declares: its `joint_task_id` (trimmed, upper case); else,
    /// when it names participants by credit code, a task made of the check date and the set of
    /// agencies (its own and the participants'), so that the records of one joint inspection that
    /// name each other form a declared group without a task id: `~2024-03-02:A+B+C` (codes sorted).
    pub fn declared_task(
        explicit: Option<&str>,
        agency: &str,
        check_date: chrono::NaiveDate,
        participants: &[&str],
    ) -> Option<String> {
        if let Some(task) = explicit.map(|t| t.trim().to_uppercase()).filter(|t| !t.is_empty()) {
            return Some(task);
        }
        let mut agencies: Vec<String> = participants
            .iter()
            .chain(std::iter::once(&agency))
            .map(|c| c.trim().to_uppercase())
            .filter(|c| !c.is_empty())
            .collect();
        agencies.sort_unstable();
        agencies.dedup();
        (agencies.len() >= 2).then(|| format!("~{check_date}:{}", agencies.join("+")))
    }
}

/// What validation decided for one record.
// Most records are accepted: boxing the accepted record would cost an allocation per record to
// save bytes only in the rarer quarantined ones.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Commit as a case version.
    Accept(AcceptedRecord),
    /// Put in the quarantine with these violations.
    Quarantine(Vec<Violation>),
}

/// One received record on its way into the store.
#[derive(Debug, Clone)]
pub struct IncomingRecord {
    /// Source id from the configuration.
    pub source_id: String,
    /// The record's key at its source (for lineage and logs).
    pub record_key: String,
    /// The raw payload exactly as received (one record); empty once
    /// [compressed for the store](IncomingRecord::compress_for_store).
    pub payload: Vec<u8>,
    /// Encoding of the payload.
    pub payload_format: PayloadFormat,
    /// SHA-256 (hex) of the payload.
    pub payload_hash: String,
    /// When it was received.
    pub received_at: DateTime<Utc>,
    /// Mapping id and version used.
    pub mapping_id: String,
    /// Mapping version used.
    pub mapping_version: i64,
    /// The decision.
    pub verdict: Verdict,
    /// When this record is a replay of a quarantine entry: that entry's id.
    pub replay_of: Option<i64>,
    /// `payload` as the store keeps it when it keeps payloads compressed, made while preparing
    /// (see [`Store::keeps_compressed`](crate::store::Store::keeps_compressed)); `None` otherwise.
    pub payload_lz4: Option<Vec<u8>>,
    /// The payload's digest for the archive's hash chain, made while preparing (with the
    /// algorithm it was made with); `None`: the commit makes it.
    pub payload_digest: Option<(crate::crypto::chain::HashAlg, [u8; 32])>,
    /// What a clerk can search a rejected record by (empty for an accepted one: its case holds it).
    pub labels: RecordLabels,
}

impl IncomingRecord {
    /// Compress the payload and the canonical record the way a store that
    /// [keeps them compressed](crate::store::Store::keeps_compressed) writes them, so that the
    /// work is done on the preparation threads rather than in the commit. The plain forms are
    /// released (`payload` and `record_json` are left empty): such a store reads only the
    /// compressed ones, and the records queued for the commit take half the memory.
    pub fn compress_for_store(&mut self) {
        if let (Some(alg), None) = (crate::crypto::chain::prepared_digest(), self.payload_digest) {
            self.payload_digest = Some((alg, alg.digest(&self.payload)));
        }
        // A sealed payload (personal data) does not compress: the store keeps it as it is.
        if !crate::crypto::personal::is_sealed_bytes(&self.payload) {
            self.payload_lz4 = Some(super::compress::compress(&std::mem::take(&mut self.payload)));
        }
        if let Verdict::Accept(a) = &mut self.verdict {
            a.record_lz4 = Some(super::compress::compress(std::mem::take(&mut a.record_json).as_bytes()));
        }
    }
}

/// A configured sink and the record types it gets deliveries of (`case_types` of its block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkRoute {
    /// The sink's id.
    pub id: String,
    /// The record types (`penalty`, `inspection`, `coercion`, `plan`, `joint_inspection`) it
    /// carries; `None`: all.
    pub case_types: Option<Vec<String>>,
}

impl SinkRoute {
    /// A sink carrying every record type.
    pub fn all(id: impl Into<String>) -> SinkRoute {
        SinkRoute {
            id: id.into(),
            case_types: None,
        }
    }

    /// Whether versions of `case_type` get a delivery to this sink.
    pub fn carries(&self, case_type: &str) -> bool {
        self.case_types
            .as_ref()
            .is_none_or(|types| types.iter().any(|t| t == case_type))
    }
}

/// The ids of the sinks among `routes` that carry `case_type`.
pub fn sinks_carrying(routes: &[SinkRoute], case_type: &str) -> Vec<String> {
    routes
        .iter()
        .filter(|r| r.carries(case_type))
        .map(|r| r.id.clone())
        .collect()
}

/// A batch to commit in one transaction.
#[derive(Debug, Clone, Default)]
pub struct CommitBatch {
    /// The records, in arrival order.
    pub records: Vec<IncomingRecord>,
    /// Source cursors to advance with the batch: (source id, cursor).
    pub cursors: Vec<(String, String)>,
    /// Configured sinks: each new version gets one outbox row per sink that carries its type.
    pub sinks: Vec<SinkRoute>,
    /// For a scheduled job's batch: the lease it is committed under; the batch is refused
    /// ([`StoreError::Fenced`](super::StoreError::Fenced)) when another instance holds a newer one.
    pub fence: Option<super::cluster::Fence>,
}

/// What became of one record of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum RecordResult {
    /// A new case with a newly allocated unified code.
    Accepted {
        /// The unified case code.
        code: String,
    },
    /// A new version of an existing case.
    Updated {
        /// The unified case code.
        code: String,
        /// The new version number.
        version: i32,
    },
    /// Same content as the case's current version: nothing written.
    Unchanged {
        /// The unified case code (empty when an unchanged quarantined record).
        code: String,
    },
    /// A delete: the case got a withdrawn version.
    Withdrawn {
        /// The unified case code.
        code: String,
        /// The withdrawn version number.
        version: i32,
    },
    /// Older than the case's current version by the source's own time (`source_updated_at`):
    /// archived and kept in the case's lineage as stale; never the head, never delivered.
    Stale {
        /// The unified case code.
        code: String,
        /// The case's current version, which is newer.
        version: i32,
    },
    /// Put in the quarantine (or already there, open).
    Quarantined {
        /// The quarantine entry id.
        quarantine_id: i64,
    },
}

/// Status of a quarantine entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuarantineStatus {
    /// Waiting for a fix.
    Open,
    /// Replayed and accepted.
    Replayed,
    /// Ignored by an operator, with a reason.
    Ignored,
    /// A later record of the same source and record key was accepted: no work left (the note
    /// names the case version). Can still be replayed; a replay never regresses the case.
    Superseded,
}

impl QuarantineStatus {
    /// Name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            QuarantineStatus::Open => "open",
            QuarantineStatus::Replayed => "replayed",
            QuarantineStatus::Ignored => "ignored",
            QuarantineStatus::Superseded => "superseded",
        }
    }
    /// Parse a stored name.
    pub fn parse(s: &str) -> Option<QuarantineStatus> {
        match s {
            "open" => Some(QuarantineStatus::Open),
            "replayed" => Some(QuarantineStatus::Replayed),
            "ignored" => Some(QuarantineStatus::Ignored),
            "superseded" => Some(QuarantineStatus::Superseded),
            _ => None,
        }
    }
}

/// A quarantined record with every violation.
#[derive(Debug, Clone, Serialize)]
pub struct QuarantineEntry {
    /// Entry id.
    pub id: i64,
    /// Raw archive id of the payload.
    pub raw_id: i64,
    /// Source id.
    pub source_id: String,
    /// Record key at the source.
    pub record_key: String,
    /// Status.
    pub status: QuarantineStatus,
    /// Every violation found the last time it was processed.
    pub violations: Vec<Violation>,
    /// Mapping id used the last time.
    pub mapping_id: String,
    /// Mapping version used the last time.
    pub mapping_version: i64,
    /// When first quarantined.
    pub created_at: DateTime<Utc>,
    /// When last changed.
    pub updated_at: DateTime<Utc>,
    /// How many times it was replayed.
    pub attempts: i32,
    /// Operator's note (e.g. why ignored).
    pub note: Option<String>,
    /// What the mapping could read from the rejected record (case number, target), for search.
    pub labels: RecordLabels,
    /// For a resolved entry: the case version its record became (or, if stale, lost to).
    pub resolution: Option<Resolution>,
}

/// What a clerk searches a rejected record by, as far as the mapping could read it: the
/// agency's case number and the target's name and identifier (credit code or ID number,
/// normalised). Each is `None` when the record does not give it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordLabels {
    /// `/case_number`.
    pub case_number: Option<String>,
    /// `/target/name`.
    pub target_name: Option<String>,
    /// `/target/id_number`, normalised (upper case, no spaces or hyphens).
    pub target_id: Option<String>,
}

impl RecordLabels {
    /// The labels of a (possibly incomplete) canonical record.
    pub fn of(record: &serde_json::Value) -> RecordLabels {
        let text = |pointer: &str| {
            record
                .pointer(pointer)
                .and_then(serde_json::Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                // A NUL cannot be stored (PostgreSQL text); the record itself is kept as received.
                .map(|s| s.chars().filter(|c| *c != '\0').take(200).collect::<String>())
        };
        RecordLabels {
            case_number: text("/case_number"),
            target_name: text("/target/name"),
            target_id: text("/target/id_number").map(|s| normalizer::standards::normalise::normalise_identifier(&s)),
        }
    }
}

/// The forms a person's identifier may be kept in: sealed under each configured key when
/// `[personal_data]` keys are configured (equal values seal equal), and as it is.
pub fn stored_forms(id: &str) -> Vec<String> {
    let mut forms = vec![id.to_string()];
    if let Some(keys) = crate::crypto::personal::registered() {
        forms.extend(keys.sealed_forms(id));
    }
    forms
}

/// Where a resolved quarantine entry's record went: the case and the version it became (for a
/// stale record, the newer version it lost to; for a record the same as the case's current
/// version, no version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolution {
    /// The unified case code.
    pub code: String,
    /// The version.
    pub version: Option<i32>,
}

/// How many quarantine entries of one status there are, per source and per (source, rule), as
/// the store counts them (exact; an entry with several violations of one rule counts once for it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QuarantineCounts {
    /// (source id, entries), by source id.
    pub by_source: Vec<(String, i64)>,
    /// (source id, rule id, entries with a violation of that rule), by source then rule.
    pub by_rule: Vec<(String, String, i64)>,
}

/// Filter for quarantine listings.
#[derive(Debug, Clone, Default)]
pub struct QuarantineFilter {
    /// Only this source.
    pub source_id: Option<String>,
    /// Only entries with a violation of this rule id.
    pub rule: Option<String>,
    /// Only this status.
    pub status: Option<QuarantineStatus>,
    /// Only this entry.
    pub id: Option<i64>,
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Created before.
    pub until: Option<DateTime<Utc>>,
    /// Only ids below this (paging, newest first).
    pub before_id: Option<i64>,
    /// At most this many (default 100).
    pub limit: Option<i64>,
    /// Skip this many (page numbers), after `before_id`.
    pub offset: Option<i64>,
    /// Only these sources (a department's scope); `None` for every source.
    pub sources: Option<Vec<String>>,
    /// Free search: the record key, the case number or the target's identifier (exact), or
    /// the target's name (contains).
    pub search: Option<String>,
}

/// A raw archived payload.
#[derive(Debug, Clone, Serialize)]
pub struct RawRecord {
    /// Archive id.
    pub id: i64,
    /// Source id.
    pub source_id: String,
    /// Record key at the source.
    pub record_key: String,
    /// SHA-256 (hex) of the payload.
    pub content_hash: String,
    /// Encoding.
    pub format: PayloadFormat,
    /// First received.
    pub received_at: DateTime<Utc>,
    /// The payload bytes.
    #[serde(skip)]
    pub payload: Vec<u8>,
    /// When the same payload (same source and content hash) was last received.
    pub last_received_at: DateTime<Utc>,
    /// How often it was received, the first time included.
    pub times_received: i32,
}

/// A case (current state).
#[derive(Debug, Clone, Serialize)]
pub struct CaseRow {
    /// Case id.
    pub id: i64,
    /// Unified case code (一案一码).
    pub unified_code: String,
    /// Business key.
    pub key: BusinessKey,
    /// Numbering year.
    pub year: i32,
    /// Numbering region.
    pub region: String,
    /// Current version number.
    pub version: i32,
    /// Whether the current version is a withdrawal.
    pub withdrawn: bool,
    /// When the code was assigned.
    pub created_at: DateTime<Utc>,
    /// When the case last changed.
    pub updated_at: DateTime<Utc>,
    /// The current canonical record.
    pub record: Value,
}

/// One version of a case, with its lineage.
#[derive(Debug, Clone, Serialize)]
pub struct CaseVersionRow {
    /// Version number (1, 2, ...); for a stale record, the newer version that was the case's
    /// head when it arrived (it is listed after that version).
    pub version: i32,
    /// `active`, `withdrawn`, or `stale`: a record older than the case's head by the source's
    /// own time (`source_updated_at`), kept for the lineage, never the head, never delivered.
    pub status: String,
    /// Raw archive id it came from.
    pub raw_id: i64,
    /// The source that sent it (a change of source between versions is also in the audit log,
    /// `case.source_changed`).
    pub source_id: String,
    /// Mapping id it was mapped with.
    pub mapping_id: String,
    /// Mapping version it was mapped with.
    pub mapping_version: i64,
    /// SHA-256 of the canonical record.
    pub record_hash: String,
    /// The canonical record.
    pub record: Value,
    /// Warnings kept with it.
    pub warnings: Vec<Violation>,
    /// When written.
    pub created_at: DateTime<Utc>,
}

/// Filter for case listings.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    /// Only cases whose latest version came from this source.
    pub source_id: Option<String>,
    /// Only cases with id greater than this (paging).
    pub after_id: Option<i64>,
    /// At most this many (default 1000).
    pub limit: Option<i64>,
    /// Skip this many (page numbers).
    pub offset: Option<i64>,
    /// Newest cases first (the console's list) instead of id order (exports, paging by `after_id`).
    pub newest_first: bool,
}

/// One outbox delivery row.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxRow {
    /// Row id.
    pub id: i64,
    /// Sink id.
    pub sink_id: String,
    /// Case id.
    pub case_id: i64,
    /// Version number delivered.
    pub version: i32,
    /// Idempotency key: unified code + ":" + version.
    pub idempotency_key: String,
    /// pending, delivered or dead.
    pub status: String,
    /// Attempts made.
    pub attempts: i32,
}

/// Counts over the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    /// Raw archive rows.
    pub raw_records: i64,
    /// Cases.
    pub cases: i64,
    /// Case versions.
    pub versions: i64,
    /// Open quarantine entries.
    pub quarantine_open: i64,
    /// All quarantine entries.
    pub quarantine_total: i64,
    /// Outbox rows pending.
    pub outbox_pending: i64,
}

/// An audit entry to append.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// Who (token name, `cli:<user>`, `system`).
    pub actor: String,
    /// What (e.g. `replay`, `quarantine.ignore`, `migrate`).
    pub action: String,
    /// On what (e.g. `quarantine:12`, `source:nanchang`).
    pub subject: String,
    /// Details.
    pub detail: Value,
}

impl AuditEntry {
    /// The entry as the store keeps it: every resident ID number (GB 11643, 18 or 15 digits, as
    /// [`normalizer::standards::find_identifiers`] finds them) in `subject` and anywhere in
    /// `detail` (strings and object keys, at any depth; e.g. the diff of a mapping version whose
    /// test input names a person) masked to its first 4 and last 4 characters. Borrowed when it
    /// holds none. Every way an audit entry is written goes through this.
    pub fn masked(&self) -> Cow<'_, AuditEntry> {
        let subject = normalizer::standards::mask_identifiers(&self.subject);
        if matches!(subject, Cow::Borrowed(_)) && !value_holds_identifier(&self.detail) {
            return Cow::Borrowed(self);
        }
        let mut detail = self.detail.clone();
        mask_value(&mut detail);
        Cow::Owned(AuditEntry {
            actor: self.actor.clone(),
            action: self.action.clone(),
            subject: subject.into_owned(),
            detail,
        })
    }
}

/// True when a string or object key anywhere in `v` holds a resident ID number.
fn value_holds_identifier(v: &Value) -> bool {
    let holds = |s: &str| !normalizer::standards::find_identifiers(s).is_empty();
    match v {
        Value::String(s) => holds(s),
        Value::Array(items) => items.iter().any(value_holds_identifier),
        Value::Object(map) => map.iter().any(|(k, v)| holds(k) || value_holds_identifier(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Mask every resident ID number in the strings and object keys of `v`, in place.
fn mask_value(v: &mut Value) {
    match v {
        Value::String(s) => {
            if let Cow::Owned(masked) = normalizer::standards::mask_identifiers(s) {
                *s = masked;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_value),
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (k, mut item) in entries {
                mask_value(&mut item);
                map.insert(normalizer::standards::mask_identifiers(&k).into_owned(), item);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// A stored audit entry.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    /// Id.
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub subject: String,
    /// Details.
    pub detail: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAYLOAD: &[u8] = b"{\"ajbh\":\"NCSJ-CF-2024-000001\"}";

    #[test]
    fn compressed_for_store_reads_back_as_payload_and_record() {
        let one = r#"{"case_number":"洪市监罚〔2024〕1号","case_type":"penalty"}"#;
        let record_json = format!("[{}]", [one; 10].join(","));
        let mut record = IncomingRecord {
            source_id: "s".into(),
            record_key: "k".into(),
            payload: PAYLOAD.to_vec(),
            payload_format: PayloadFormat::Json,
            payload_hash: "h".into(),
            received_at: Utc::now(),
            mapping_id: "m".into(),
            mapping_version: 1,
            verdict: Verdict::Accept(AcceptedRecord {
                key: BusinessKey {
                    agency_credit_code: CreditCode::parse("11360100014523152U").expect("valid code"),
                    case_type: CaseType::Penalty,
                    case_number: CaseNumber::parse("1").expect("case number"),
                },
                year: 2024,
                region: "360100".into(),
                operation: Operation::Insert,
                record_json: record_json.clone(),
                record_lz4: None,
                joint: None,
                publicity: None,
                target_id: None,
                record_hash: "r".into(),
                warnings: Vec::new(),
                source_updated_at: None,
                completion: false,
            }),
            replay_of: None,
            payload_lz4: None,
            payload_digest: None,
            labels: Default::default(),
        };
        record.compress_for_store();
        let payload = super::super::compress::payload_of(record.payload_lz4.clone().unwrap_or_default(), 1);
        assert_eq!(payload.ok().as_deref(), Some(PAYLOAD));
        assert!(record.payload.is_empty(), "the plain payload is released");
        let Verdict::Accept(a) = &record.verdict else {
            panic!("accepted record expected")
        };
        let stored = super::super::compress::record_of(None, a.record_lz4.clone()).ok();
        let expected: Value = serde_json::from_str(&record_json).unwrap();
        assert_eq!(stored, Some(expected));
    }
}
