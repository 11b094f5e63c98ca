//! Store conformance: every behaviour of `store::Store`, proved with the same test body against
//! both backends (`sqlite::<behaviour>` and `postgres::<behaviour>`). PostgreSQL-only tests at the
//! end cover what only a server does: concurrent writers, concurrent migrations, rejections by
//! the database itself.
//!
//! Needs a PostgreSQL server (see `tests/common/mod.rs`); the PostgreSQL tests fail, they do not
//! skip, when it is unreachable.

mod common;
#[path = "store_conformance/joint.rs"]
mod joint;
#[path = "../../tests/support/joint.rs"]
mod joint_records;
use joint::*;

use chrono::{DateTime, Utc};
use common::{PgDatabase, TestDb};
use gateway::store::postgres::PostgresStore;
use gateway::store::*;
use normalizer::standards::case_code::CaseCode;
use normalizer::standards::CreditCode;
use normalizer::{CaseNumber, CaseType, Violation};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

const SOURCE: &str = "nanchang";
const AGENCY: &str = "11360100014523152U";
const REGION: &str = "360100";
const YEAR: i32 = 2024;
const MAPPING: &str = "nanchang-penalty";

/// Every behaviour runs once per backend: `sqlite::name` and `postgres::name`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = crate::common::TestDb::sqlite().await;
                    super::$name(db.store()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = crate::common::TestDb::postgres().await;
                    super::$name(db.store()).await;
                }
            )*
        }
    };
}

on_both_backends!(
    migrate_is_idempotent,
    new_record_gets_code_sequence_one,
    next_new_case_gets_next_sequence,
    other_counters_start_at_one,
    resending_same_record_is_unchanged,
    changed_record_is_updated_with_same_code,
    versions_keep_lineage,
    records_compressed_while_preparing_read_back_identical,
    delete_withdraws_and_keeps_code,
    delete_of_unknown_case_is_quarantined,
    same_key_twice_in_one_batch,
    redelivered_payload_changes_nothing,
    payload_repeated_in_one_batch,
    quarantine_entry_keeps_every_violation,
    quarantine_listing_filters,
    same_payload_quarantined_twice_has_one_open_entry,
    accepting_the_payload_resolves_its_entry,
    failing_replay_updates_violations_and_attempts,
    replaying_an_entry_twice_in_one_batch,
    ignore_entry_with_note,
    outbox_row_per_sink_per_version,
    outbox_rows_follow_each_sinks_case_types,
    penalty_publicity_follows_the_current_version_and_what_publicity_sinks_did,
    cursors_advance_with_the_batch,
    failing_batch_writes_nothing,
    cases_listing_pages_and_filters_by_source,
    case_by_code_normalises_and_reports_missing,
    stats_and_audit_round_trip,
    versions_follow_source_time_and_stale_records_stay_in_the_lineage,
    equal_source_times_let_the_later_arrival_win_with_a_warning,
    stale_records_within_one_batch_never_become_the_head,
    an_accepted_later_record_supersedes_open_entries_of_its_key,
    a_replay_older_by_source_time_is_kept_as_stale,
    the_rule_filter_takes_the_rule_id_literally,
    quarantine_search_finds_entries_by_case_number_target_and_key_with_exact_totals,
    a_resolved_entry_names_the_case_version_it_became,
    record_fates_tell_what_became_of_each_received_record,
    audit_search_filters_by_actor_action_family_and_subject,
    audit_entries_are_stored_with_id_numbers_masked,
    a_lease_is_held_by_one_instance_until_it_runs_out_or_is_released,
    a_commit_under_a_taken_over_lease_is_refused_and_writes_nothing,
    instances_report_their_heartbeats_and_clean_stops,
    leases_still_held_by_a_stopped_instance_are_released_at_once,
    officer_registry_loads_are_versions_per_agency_with_counts,
    officer_lists_search_page_and_keep_to_a_scope,
    catalogue_items_keep_their_scope_and_domain,
    cases_awaiting_supplement_are_listed_until_completed_re_sent_complete_or_withdrawn,
    a_completion_keeps_the_supplied_values_with_the_version_it_became,
    plan_numbers_are_those_of_plans_not_withdrawn,
    joint_pairs_by_different_agencies_within_the_window_form_transitive_groups,
    joint_a_new_version_moving_the_date_splits_the_group_and_a_withdrawal_removes_it,
    joint_declared_tasks_group_without_the_date_rule,
    joint_participants_naming_each_other_form_a_declared_group_kept_by_a_rebuild,
    joint_rebuild_finds_the_groups_the_commits_kept,
    joint_merge_dismiss_and_undo_are_audited_and_a_changed_group_is_a_candidate_again,
);

// ---------------------------------------------------------------------------------------------
// Building records.
// ---------------------------------------------------------------------------------------------

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A hand-made case record: what a source sent and what validation made of it.
#[derive(Debug, Clone)]
struct Rec {
    source: String,
    case_type: CaseType,
    year: i32,
    region: String,
    number: String,
    content: String,
    operation: Operation,
    mapping_version: i64,
    warnings: Vec<Violation>,
    replay_of: Option<i64>,
    source_time: Option<DateTime<Utc>>,
    received_at: Option<DateTime<Utc>>,
    completion: bool,
    decided: Option<&'static str>,
}

impl Rec {
    /// Penalty case `number` of the agency, 2024, region 360100, content "v1", from SOURCE.
    fn new(number: &str) -> Rec {
        Rec {
            source: SOURCE.to_string(),
            case_type: CaseType::Penalty,
            year: YEAR,
            region: REGION.to_string(),
            number: number.to_string(),
            content: "v1".to_string(),
            operation: Operation::Insert,
            mapping_version: 1,
            warnings: Vec::new(),
            replay_of: None,
            source_time: None,
            received_at: None,
            completion: false,
            decided: None,
        }
    }
    /// A penalty decided on `date` (YYYY-MM-DD).
    fn decided(mut self, date: &'static str) -> Rec {
        self.decided = Some(date);
        self
    }
    /// Accepted without `pointer`, which its source cannot supply (待补录).
    fn awaiting(mut self, pointer: &str) -> Rec {
        self.warnings.push(Violation::warning(
            pointer,
            "supplement.missing_field",
            None,
            "待补录",
            "awaiting supplement",
        ));
        self
    }
    /// A department's completion of the fields it awaited.
    fn completion(mut self) -> Rec {
        self.completion = true;
        self
    }
    /// The source's last-changed time (`source_updated_at`): minute `m` of a fixed day.
    fn at(mut self, m: i64) -> Rec {
        self.source_time = DateTime::from_timestamp(1_700_000_000 + 60 * m, 0);
        self
    }
    /// When it was received (default: now).
    fn received(mut self, at: DateTime<Utc>) -> Rec {
        self.received_at = Some(at);
        self
    }
    fn content(mut self, content: &str) -> Rec {
        self.content = content.to_string();
        self
    }
    fn source(mut self, source: &str) -> Rec {
        self.source = source.to_string();
        self
    }
    fn case_type(mut self, case_type: CaseType) -> Rec {
        self.case_type = case_type;
        self
    }
    fn year(mut self, year: i32) -> Rec {
        self.year = year;
        self
    }
    fn region(mut self, region: &str) -> Rec {
        self.region = region.to_string();
        self
    }
    fn delete(mut self) -> Rec {
        self.operation = Operation::Delete;
        self
    }
    fn mapping_version(mut self, version: i64) -> Rec {
        self.mapping_version = version;
        self
    }
    fn warning(mut self, rule: &str) -> Rec {
        self.warnings.push(Violation::warning(
            "/content",
            rule,
            Some(self.content.clone()),
            "内容可疑",
            "content looks odd",
        ));
        self
    }
    fn replay_of(mut self, entry: i64) -> Rec {
        self.replay_of = Some(entry);
        self
    }

    fn key(&self) -> BusinessKey {
        BusinessKey {
            agency_credit_code: CreditCode::parse(AGENCY).expect("valid agency code"),
            case_type: self.case_type,
            case_number: CaseNumber::parse(&self.number).expect("case number"),
        }
    }

    fn operation_name(&self) -> &'static str {
        match self.operation {
            Operation::Insert => "insert",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }

    /// The canonical record (does not depend on the source).
    fn record(&self) -> Value {
        let mut record = json!({
            "operation": self.operation_name(),
            "case_type": self.case_type.as_str(),
            "agency": {"credit_code": AGENCY, "region": self.region, "name": "南昌市市场监督管理局"},
            "case_number": self.number,
            "year": self.year,
            "content": self.content,
            "source_updated_at": self.source_time.map(|t| t.to_rfc3339()),
        });
        if let Some(date) = self.decided {
            record["penalty"] = json!({"decision_date": date});
        }
        record
    }

    /// The raw payload as the source sent it.
    fn payload(&self) -> Vec<u8> {
        json!({
            "src": self.source,
            "ajbh": self.number,
            "ajlx": self.case_type.code_prefix(),
            "nd": self.year,
            "xzqh": self.region,
            "czlx": self.operation_name(),
            "nr": self.content,
            "gxsj": self.source_time.map(|t| t.to_rfc3339()),
        })
        .to_string()
        .into_bytes()
    }

    fn incoming(&self, verdict: Verdict) -> IncomingRecord {
        let payload = self.payload();
        IncomingRecord {
            source_id: self.source.clone(),
            record_key: self.number.clone(),
            payload_hash: sha256_hex(&payload),
            payload,
            payload_format: PayloadFormat::Json,
            received_at: self.received_at.unwrap_or_else(Utc::now),
            mapping_id: MAPPING.to_string(),
            mapping_version: self.mapping_version,
            verdict,
            replay_of: self.replay_of,
            payload_lz4: None,
            payload_digest: None,
            labels: Default::default(),
        }
    }

    fn accepted(&self) -> IncomingRecord {
        let record = self.record();
        self.incoming(Verdict::Accept(AcceptedRecord {
            key: self.key(),
            year: self.year,
            region: self.region.clone(),
            operation: self.operation,
            record_hash: sha256_hex(record.to_string().as_bytes()),
            target_id: record
                .pointer("/target/id_number")
                .and_then(serde_json::Value::as_str)
                .map(str::to_string),
            record_json: record.to_string(),
            warnings: self.warnings.clone(),
            record_lz4: None,
            joint: gateway::store::joint::JointFacts::of(&record).map(Box::new),
            publicity: gateway::store::publicity::PenaltyFacts::of(&record).map(Box::new),
            source_updated_at: self.source_time,
            completion: self.completion,
        }))
    }

    fn quarantined(&self, violations: Vec<Violation>) -> IncomingRecord {
        self.incoming(Verdict::Quarantine(violations))
    }
}

fn violation(rule: &str) -> Violation {
    Violation::error(
        "/agency/credit_code",
        rule,
        Some("91360100MA3XXXXX".to_string()),
        format!("违反规则 {rule}"),
        format!("breaks rule {rule}"),
    )
}

fn batch(records: Vec<IncomingRecord>) -> CommitBatch {
    CommitBatch {
        records,
        ..CommitBatch::default()
    }
}

async fn commit(store: &dyn Store, records: Vec<IncomingRecord>) -> Vec<RecordResult> {
    store.commit_batch(&batch(records)).await.expect("commit the batch")
}

async fn commit_one(store: &dyn Store, record: IncomingRecord) -> RecordResult {
    let mut results = commit(store, vec![record]).await;
    assert_eq!(results.len(), 1);
    results.remove(0)
}

/// The code of an accepted record.
fn accepted_code(result: &RecordResult) -> String {
    match result {
        RecordResult::Accepted { code } => code.clone(),
        other => panic!("expected Accepted, got {other:?}"),
    }
}

fn quarantine_id(result: &RecordResult) -> i64 {
    match result {
        RecordResult::Quarantined { quarantine_id } => *quarantine_id,
        other => panic!("expected Quarantined, got {other:?}"),
    }
}

/// The sequence number of a well-formed unified code.
fn sequence(code: &str) -> u32 {
    CaseCode::parse(code)
        .unwrap_or_else(|e| panic!("{code} is not a well-formed unified code: {e}"))
        .sequence()
}

fn ids(entries: &[QuarantineEntry]) -> Vec<i64> {
    entries.iter().map(|e| e.id).collect()
}

async fn list(store: &dyn Store, filter: QuarantineFilter) -> Vec<i64> {
    ids(&store.quarantine_list(&filter).await.expect("list the quarantine"))
}

// ---------------------------------------------------------------------------------------------
// Behaviours, on both backends.
// ---------------------------------------------------------------------------------------------

async fn migrate_is_idempotent(store: Arc<dyn Store>) {
    assert!(["sqlite", "postgres"].contains(&store.backend()));
    // TestDb already applied everything.
    assert_eq!(store.migrate().await.unwrap(), Vec::<String>::new());
    assert_eq!(store.stats().await.unwrap(), StoreStats::default());
}

async fn new_record_gets_code_sequence_one(store: Arc<dyn Store>) {
    let rec = Rec::new("赣洪市监罚〔2024〕1号");
    let code = accepted_code(&commit_one(&*store, rec.accepted()).await);
    let parsed = CaseCode::parse(&code).expect("a well-formed unified code");
    assert_eq!(parsed.sequence(), 1);
    assert_eq!(parsed.case_type(), CaseType::Penalty);
    assert_eq!(parsed.year(), 2024);
    assert_eq!(parsed.region(), REGION);
    assert_eq!(code, parsed.to_string());

    let (case, versions) = store.case_by_code(&code).await.unwrap();
    assert_eq!(case.unified_code, code);
    assert_eq!(case.key, rec.key());
    assert_eq!((case.year, case.region.as_str()), (YEAR, REGION));
    assert_eq!(case.version, 1);
    assert!(!case.withdrawn);
    assert_eq!(case.record, rec.record());
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].version, 1);
    assert_eq!(versions[0].status, "active");
    assert_eq!(versions[0].record, rec.record());
}

async fn next_new_case_gets_next_sequence(store: Arc<dyn Store>) {
    let first = accepted_code(&commit_one(&*store, Rec::new("A-1").accepted()).await);
    let second = accepted_code(&commit_one(&*store, Rec::new("A-2").accepted()).await);
    assert_eq!((sequence(&first), sequence(&second)), (1, 2));
    let results = commit(&*store, vec![Rec::new("A-3").accepted(), Rec::new("A-4").accepted()]).await;
    let seqs: Vec<u32> = results.iter().map(|r| sequence(&accepted_code(r))).collect();
    assert_eq!(seqs, vec![3, 4]);
}

async fn other_counters_start_at_one(store: Arc<dyn Store>) {
    let base = accepted_code(&commit_one(&*store, Rec::new("A-1").accepted()).await);
    let results = commit(
        &*store,
        vec![
            Rec::new("B-1").region("360102").accepted(),
            Rec::new("C-1").case_type(CaseType::Inspection).accepted(),
            Rec::new("D-1").year(2023).accepted(),
            Rec::new("A-2").accepted(),
        ],
    )
    .await;
    let codes: Vec<String> = results.iter().map(accepted_code).collect();
    let parsed: Vec<CaseCode> = codes.iter().map(|c| CaseCode::parse(c).unwrap()).collect();
    assert_eq!(sequence(&base), 1);
    assert_eq!((parsed[0].region(), parsed[0].sequence()), ("360102", 1));
    assert_eq!((parsed[1].case_type(), parsed[1].sequence()), (CaseType::Inspection, 1));
    assert!(codes[1].starts_with("JC2024360100"), "{}", codes[1]);
    assert_eq!((parsed[2].year(), parsed[2].sequence()), (2023, 1));
    assert_eq!(parsed[3].sequence(), 2, "the first counter goes on");
    let distinct: HashSet<&String> = codes.iter().chain([&base]).collect();
    assert_eq!(distinct.len(), 5);
}

async fn resending_same_record_is_unchanged(store: Arc<dyn Store>) {
    let rec = Rec::new("A-1");
    let code = accepted_code(&commit_one(&*store, rec.accepted()).await);
    let again = commit_one(&*store, rec.accepted()).await;
    assert_eq!(again, RecordResult::Unchanged { code: code.clone() });
    let (case, versions) = store.case_by_code(&code).await.unwrap();
    assert_eq!((case.version, versions.len()), (1, 1));
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.raw_records, stats.cases, stats.versions), (1, 1, 1));
}

async fn changed_record_is_updated_with_same_code(store: Arc<dyn Store>) {
    let code = accepted_code(&commit_one(&*store, Rec::new("A-1").accepted()).await);
    let v2 = Rec::new("A-1").content("v2: 罚款 5000 元");
    let result = commit_one(&*store, v2.accepted()).await;
    assert_eq!(
        result,
        RecordResult::Updated {
            code: code.clone(),
            version: 2
        }
    );
    let (case, versions) = store.case_by_code(&code).await.unwrap();
    assert_eq!(case.version, 2);
    assert_eq!(case.record, v2.record());
    assert_eq!(versions.iter().map(|v| v.version).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(versions[0].record, Rec::new("A-1").record());
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.cases, stats.versions), (1, 2));
}

async fn versions_keep_lineage(store: Arc<dyn Store>) {
    let v1 = Rec::new("A-1");
    let v2 = Rec::new("A-1")
        .content("v2")
        .mapping_version(7)
        .warning("rule.amount_unusual");
    let code = accepted_code(&commit_one(&*store, v1.accepted()).await);
    commit_one(&*store, v2.accepted()).await;
    let (_, versions) = store.case_by_code(&code).await.unwrap();
    assert_eq!(versions.len(), 2);
    assert_ne!(versions[0].raw_id, versions[1].raw_id);
    for (version, rec) in versions.iter().zip([&v1, &v2]) {
        let raw = store.raw_record(version.raw_id).await.unwrap();
        assert_eq!(
            raw.payload,
            rec.payload(),
            "version {} points at its payload",
            version.version
        );
        assert_eq!(raw.content_hash, sha256_hex(&rec.payload()));
        assert_eq!(raw.source_id, SOURCE);
        assert_eq!(raw.record_key, "A-1");
        assert_eq!(raw.format, PayloadFormat::Json);
        assert_eq!(version.mapping_id, MAPPING);
        assert_eq!(version.mapping_version, rec.mapping_version);
        assert_eq!(version.record_hash, sha256_hex(rec.record().to_string().as_bytes()));
        assert_eq!(version.warnings, rec.warnings);
    }
    assert!(matches!(store.raw_record(999_999).await, Err(StoreError::NotFound(_))));
}

async fn records_compressed_while_preparing_read_back_identical(store: Arc<dyn Store>) {
    // The pipeline compresses on its preparation threads for a store that keeps records
    // compressed; records committed without it (v1) are compressed by the store itself.
    let v1 = Rec::new("Z-1");
    let v2 = Rec::new("Z-1").content("v2");
    let code = accepted_code(&commit_one(&*store, v1.accepted()).await);
    let mut prepared = v2.accepted();
    if store.keeps_compressed() {
        prepared.compress_for_store();
        assert!(prepared.payload_lz4.is_some());
    }
    assert!(matches!(
        commit_one(&*store, prepared).await,
        RecordResult::Updated { .. }
    ));
    let (_, versions) = store.case_by_code(&code).await.unwrap();
    assert_eq!(versions.len(), 2);
    for (version, rec) in versions.iter().zip([&v1, &v2]) {
        let raw = store.raw_record(version.raw_id).await.unwrap();
        assert_eq!(raw.payload, rec.payload(), "payload of version {}", version.version);
        assert_eq!(version.record, rec.record(), "record of version {}", version.version);
    }
}

async fn delete_withdraws_and_keeps_code(store: Arc<dyn Store>) {
    let v1 = Rec::new("A-1");
    let code = accepted_code(&commit_one(&*store, v1.accepted()).await);
    let deleted = commit_one(&*store, v1.clone().delete().accepted()).await;
    assert_eq!(
        deleted,
        RecordResult::Withdrawn {
            code: code.clone(),
            version: 2
        }
    );
    let (case, versions) = store.case_by_code(&code).await.unwrap();
    assert!(case.withdrawn);
    assert_eq!(versions[1].status, "withdrawn");

    let again = commit_one(&*store, v1.clone().delete().accepted()).await;
    assert_eq!(again, RecordResult::Unchanged { code: code.clone() });
    // The old insert delivered again is a duplicate: it does not reinstate the case.
    let stale = commit_one(&*store, v1.accepted()).await;
    assert_eq!(stale, RecordResult::Unchanged { code: code.clone() });
    assert!(store.case_by_code(&code).await.unwrap().0.withdrawn);

    let v3 = Rec::new("A-1").content("v3: 重新立案");
    let reinstated = commit_one(&*store, v3.accepted()).await;
    assert_eq!(
        reinstated,
        RecordResult::Updated {
            code: code.clone(),
            version: 3
        }
    );
    let (case, versions) = store.case_by_code(&code).await.unwrap();
    assert!(!case.withdrawn);
    assert_eq!(case.version, 3);
    assert_eq!(case.record, v3.record());
    assert_eq!(versions.len(), 3);
    assert_eq!(versions[2].status, "active");
    let next = accepted_code(&commit_one(&*store, Rec::new("A-2").accepted()).await);
    assert_eq!(
        sequence(&next),
        2,
        "no code was used up by the delete and the reinstatement"
    );
}

async fn delete_of_unknown_case_is_quarantined(store: Arc<dyn Store>) {
    let result = commit_one(&*store, Rec::new("Z-9").delete().accepted()).await;
    let entry = store.quarantine_get(quarantine_id(&result)).await.unwrap();
    assert_eq!(entry.status, QuarantineStatus::Open);
    assert_eq!(entry.violations.len(), 1);
    assert_eq!(entry.violations[0].rule, "pipeline.delete_unknown_case");
    assert_eq!(entry.violations[0].pointer, "/operation");
    assert!(entry.violations[0].is_error());
    assert_eq!(store.stats().await.unwrap().cases, 0);
    let next = accepted_code(&commit_one(&*store, Rec::new("A-1").accepted()).await);
    assert_eq!(sequence(&next), 1);
}

async fn same_key_twice_in_one_batch(store: Arc<dyn Store>) {
    let v1 = Rec::new("A-1");
    let v2 = Rec::new("A-1").content("v2");
    let first = commit(&*store, vec![v1.accepted(), v2.accepted()]).await;
    let code = accepted_code(&first[0]);
    assert_eq!(sequence(&code), 1);
    let (case, versions) = store.case_by_code(&code).await.unwrap();
    assert_eq!((case.version, versions.len()), (2, 2));
    assert_eq!(case.record, v2.record());
    assert_eq!(versions[1].record, v2.record());

    // Update, then its repeat.
    let v3 = Rec::new("A-1").content("v3");
    let results = commit(&*store, vec![v3.accepted(), v3.accepted()]).await;
    assert_eq!(
        results,
        vec![
            RecordResult::Updated {
                code: code.clone(),
                version: 3
            },
            RecordResult::Unchanged { code: code.clone() },
        ]
    );
    // Withdrawal, then reinstatement.
    let v5 = Rec::new("A-1").content("v5");
    let results = commit(&*store, vec![v3.clone().delete().accepted(), v5.accepted()]).await;
    assert_eq!(
        results,
        vec![
            RecordResult::Withdrawn {
                code: code.clone(),
                version: 4
            },
            RecordResult::Updated {
                code: code.clone(),
                version: 5
            },
        ]
    );
    let (case, _) = store.case_by_code(&code).await.unwrap();
    assert!(!case.withdrawn);
    assert_eq!(case.record, v5.record());
    let next = accepted_code(&commit_one(&*store, Rec::new("A-2").accepted()).await);
    assert_eq!(sequence(&next), 2);

    // A second version of a case created in the same batch is an update (version 2), not a
    // second acceptance.
    assert_eq!(
        first[1],
        RecordResult::Updated {
            code: code.clone(),
            version: 2
        }
    );
}

/// A payload delivered again (a redelivered message, an overlapping pull) changes nothing, even
/// when a newer version came in between.
async fn redelivered_payload_changes_nothing(store: Arc<dyn Store>) {
    let v1 = Rec::new("A-1");
    let v2 = Rec::new("A-1").content("v2");
    let code = accepted_code(&commit_one(&*store, v1.accepted()).await);
    commit_one(&*store, v2.accepted()).await;
    let stale = commit_one(&*store, v1.accepted()).await;
    assert_eq!(stale, RecordResult::Unchanged { code: code.clone() });
    let (case, versions) = store.case_by_code(&code).await.unwrap();
    assert_eq!((case.version, versions.len()), (2, 2));
    assert_eq!(case.record, v2.record());
    let counted = |raw: &RawRecord| (raw.times_received, raw.last_received_at >= raw.received_at);
    let first = store.raw_record(versions[0].raw_id).await.unwrap();
    assert_eq!(counted(&first), (2, true), "the payload sent again is counted");
    assert_eq!(store.raw_record(versions[1].raw_id).await.unwrap().times_received, 1);
    commit(&*store, vec![v1.accepted(), v1.accepted()]).await;
    let again = store.raw_record(versions[0].raw_id).await.unwrap();
    assert_eq!(counted(&again), (4, true), "twice more in one batch");
    assert!(again.last_received_at >= first.last_received_at);

    // A rejected payload delivered again after it was ignored stays ignored.
    let x = Rec::new("X-1");
    let q = quarantine_id(&commit_one(&*store, x.quarantined(vec![violation("r1")])).await);
    store
        .quarantine_set_status(q, QuarantineStatus::Ignored, Some("test data"))
        .await
        .unwrap();
    let again = commit_one(&*store, x.quarantined(vec![violation("r1")])).await;
    assert_eq!(again, RecordResult::Unchanged { code: String::new() });
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.quarantine_open, stats.quarantine_total), (0, 1));
    assert_eq!(stats.raw_records, 3);
}

/// The same payload more than once in one batch: the first is processed, the repeats are
/// duplicate deliveries (unchanged), whatever their verdict.
async fn payload_repeated_in_one_batch(store: Arc<dyn Store>) {
    // Accepted twice: the second is unchanged; archived once.
    let p = Rec::new("P-1");
    let results = commit(&*store, vec![p.accepted(), p.accepted()]).await;
    let code = accepted_code(&results[0]);
    assert_eq!(results[1], RecordResult::Unchanged { code: code.clone() });
    assert_eq!(store.stats().await.unwrap().raw_records, 1);
    let (_, versions) = store.case_by_code(&code).await.unwrap();
    let raw = store.raw_record(versions[0].raw_id).await.unwrap();
    assert_eq!(raw.times_received, 2, "received twice in its first batch");

    // Accepted, then rejected: the repeat writes nothing.
    let r = Rec::new("R-1");
    let results = commit(
        &*store,
        vec![r.accepted(), r.quarantined(vec![violation("schema.required")])],
    )
    .await;
    accepted_code(&results[0]);
    assert_eq!(results[1], RecordResult::Unchanged { code: String::new() });
    assert_eq!(store.stats().await.unwrap().quarantine_total, 0);

    // Rejected several times and accepted once in between: one entry, with the first record's
    // violations; the accepted repeat resolves it (and creates no case).
    let s = Rec::new("S-1");
    let results = commit(
        &*store,
        vec![
            s.quarantined(vec![violation("a")]),
            s.quarantined(vec![violation("b")]),
            s.accepted(),
            s.quarantined(vec![violation("c")]),
        ],
    )
    .await;
    let entry = quarantine_id(&results[0]);
    assert_eq!(results[1..], vec![RecordResult::Unchanged { code: String::new() }; 3]);
    let e = store.quarantine_get(entry).await.unwrap();
    assert_eq!(e.violations, vec![violation("a")]);
    assert_eq!((e.status, e.attempts), (QuarantineStatus::Replayed, 0));

    let stats = store.stats().await.unwrap();
    assert_eq!((stats.raw_records, stats.cases, stats.versions), (3, 2, 2));
    assert_eq!((stats.quarantine_open, stats.quarantine_total), (0, 1));
}

async fn quarantine_entry_keeps_every_violation(store: Arc<dyn Store>) {
    let violations = vec![
        violation("uscc.check_char"),
        Violation::error("/decision_date", "schema.format", None, "日期格式错误", "bad date"),
        Violation::warning(
            "/officers/1",
            "rule.officers_distinct",
            Some("张三".into()),
            "执法人员重复",
            "same officer twice",
        ),
    ];
    let rec = Rec::new("X-1").mapping_version(3);
    let id = quarantine_id(&commit_one(&*store, rec.quarantined(violations.clone())).await);
    let entry = store.quarantine_get(id).await.unwrap();
    assert_eq!(entry.violations, violations);
    assert_eq!(entry.status, QuarantineStatus::Open);
    assert_eq!((entry.attempts, entry.note.as_deref()), (0, None));
    assert_eq!((entry.source_id.as_str(), entry.record_key.as_str()), (SOURCE, "X-1"));
    assert_eq!((entry.mapping_id.as_str(), entry.mapping_version), (MAPPING, 3));
    assert!(entry.updated_at >= entry.created_at);
    assert_eq!(store.raw_record(entry.raw_id).await.unwrap().payload, rec.payload());
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (
            stats.quarantine_open,
            stats.quarantine_total,
            stats.raw_records,
            stats.cases
        ),
        (1, 1, 1, 0)
    );
    assert!(matches!(
        store.quarantine_get(id + 1000).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn quarantine_listing_filters(store: Arc<dyn Store>) {
    let start = Utc::now() - chrono::Duration::seconds(5);
    let q1 = quarantine_id(
        &commit_one(
            &*store,
            Rec::new("Q-1")
                .source("s1")
                .quarantined(vec![violation("uscc.check_char"), violation("schema.required")]),
        )
        .await,
    );
    let q2 = quarantine_id(
        &commit_one(
            &*store,
            Rec::new("Q-2")
                .source("s2")
                .quarantined(vec![violation("schema.required")]),
        )
        .await,
    );
    let q3 = quarantine_id(
        &commit_one(
            &*store,
            Rec::new("Q-3")
                .source("s1")
                .quarantined(vec![violation("rule.date_order")]),
        )
        .await,
    );
    let f = QuarantineFilter::default;
    assert_eq!(list(&*store, f()).await, vec![q3, q2, q1], "newest first");
    let by_source = QuarantineFilter {
        source_id: Some("s1".into()),
        ..f()
    };
    assert_eq!(list(&*store, by_source).await, vec![q3, q1]);
    let by_rule = |rule: &str| QuarantineFilter {
        rule: Some(rule.into()),
        ..f()
    };
    assert_eq!(list(&*store, by_rule("schema.required")).await, vec![q2, q1]);
    assert_eq!(list(&*store, by_rule("uscc.check_char")).await, vec![q1]);
    assert_eq!(
        list(&*store, by_rule("schema")).await,
        Vec::<i64>::new(),
        "rule ids match whole"
    );
    let both = QuarantineFilter {
        source_id: Some("s1".into()),
        rule: Some("schema.required".into()),
        ..f()
    };
    assert_eq!(list(&*store, both).await, vec![q1]);

    store
        .quarantine_set_status(q2, QuarantineStatus::Ignored, Some("测试数据"))
        .await
        .unwrap();
    let by_status = |status| QuarantineFilter {
        status: Some(status),
        ..f()
    };
    assert_eq!(list(&*store, by_status(QuarantineStatus::Open)).await, vec![q3, q1]);
    assert_eq!(list(&*store, by_status(QuarantineStatus::Ignored)).await, vec![q2]);
    assert_eq!(
        list(&*store, by_status(QuarantineStatus::Replayed)).await,
        Vec::<i64>::new()
    );

    let by_id = QuarantineFilter { id: Some(q2), ..f() };
    assert_eq!(list(&*store, by_id).await, vec![q2]);
    let page = QuarantineFilter {
        before_id: Some(q3),
        ..f()
    };
    assert_eq!(list(&*store, page).await, vec![q2, q1]);
    let first = QuarantineFilter { limit: Some(1), ..f() };
    assert_eq!(list(&*store, first).await, vec![q3]);

    let later = Utc::now() + chrono::Duration::hours(1);
    let since_later = QuarantineFilter {
        since: Some(later),
        ..f()
    };
    assert_eq!(list(&*store, since_later).await, Vec::<i64>::new());
    let window = QuarantineFilter {
        since: Some(start),
        until: Some(later),
        ..f()
    };
    assert_eq!(list(&*store, window).await, vec![q3, q2, q1]);
    let until_start = QuarantineFilter {
        until: Some(start),
        ..f()
    };
    assert_eq!(list(&*store, until_start).await, Vec::<i64>::new());
}

async fn same_payload_quarantined_twice_has_one_open_entry(store: Arc<dyn Store>) {
    let x = Rec::new("X-1");
    let a = quarantine_id(&commit_one(&*store, x.quarantined(vec![violation("r1")])).await);
    // Delivered again while waiting in the quarantine: still there (the latest violations and
    // mapping kept), nothing new to report.
    let again = commit_one(&*store, x.clone().mapping_version(2).quarantined(vec![violation("r2")])).await;
    assert_eq!(again, RecordResult::Unchanged { code: String::new() });
    let entry = store.quarantine_get(a).await.unwrap();
    assert_eq!(entry.violations, vec![violation("r2")]);
    assert_eq!(entry.mapping_version, 2);
    assert_eq!(
        (entry.status, entry.attempts),
        (QuarantineStatus::Open, 0),
        "a re-sent payload is not a replay"
    );

    // Twice in one batch: one entry.
    let y = Rec::new("Y-1");
    let results = commit(
        &*store,
        vec![
            y.quarantined(vec![violation("r1")]),
            y.quarantined(vec![violation("r3")]),
        ],
    )
    .await;
    let b = quarantine_id(&results[0]);
    assert_eq!(results[1], RecordResult::Unchanged { code: String::new() });
    assert_ne!(a, b);
    assert_eq!(store.quarantine_get(b).await.unwrap().violations, vec![violation("r1")]);
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.quarantine_open, stats.quarantine_total, stats.raw_records),
        (2, 2, 2)
    );
}

async fn accepting_the_payload_resolves_its_entry(store: Arc<dyn Store>) {
    // After a mapping fix the same payload is accepted: its entry is replayed.
    let x = Rec::new("X-1");
    let a = quarantine_id(&commit_one(&*store, x.quarantined(vec![violation("mapping.unknown_code")])).await);
    accepted_code(&commit_one(&*store, x.clone().mapping_version(2).accepted()).await);
    let entry = store.quarantine_get(a).await.unwrap();
    assert_eq!(entry.status, QuarantineStatus::Replayed);
    assert_eq!(entry.attempts, 0);

    // A payload whose record turns out unchanged resolves its entry too.
    let y = Rec::new("Y-1");
    let code = accepted_code(&commit_one(&*store, y.accepted()).await);
    let other_source = y.clone().source("jiangxi-hub");
    let b = quarantine_id(&commit_one(&*store, other_source.quarantined(vec![violation("r")])).await);
    let result = commit_one(&*store, other_source.accepted()).await;
    assert_eq!(result, RecordResult::Unchanged { code });
    assert_eq!(
        store.quarantine_get(b).await.unwrap().status,
        QuarantineStatus::Replayed
    );

    let open = QuarantineFilter {
        status: Some(QuarantineStatus::Open),
        ..QuarantineFilter::default()
    };
    assert_eq!(list(&*store, open).await, Vec::<i64>::new());
    assert_eq!(store.stats().await.unwrap().quarantine_open, 0);
}

async fn failing_replay_updates_violations_and_attempts(store: Arc<dyn Store>) {
    let x = Rec::new("X-1");
    let q = quarantine_id(&commit_one(&*store, x.quarantined(vec![violation("r1")])).await);

    let replay = x.clone().mapping_version(2).replay_of(q);
    let result = commit_one(&*store, replay.quarantined(vec![violation("r2"), violation("r3")])).await;
    assert_eq!(result, RecordResult::Quarantined { quarantine_id: q });
    let entry = store.quarantine_get(q).await.unwrap();
    assert_eq!(entry.violations, vec![violation("r2"), violation("r3")]);
    assert_eq!((entry.attempts, entry.mapping_version), (1, 2));
    assert_eq!(entry.status, QuarantineStatus::Open);
    let by_rule = |rule: &str| QuarantineFilter {
        rule: Some(rule.into()),
        ..QuarantineFilter::default()
    };
    assert_eq!(list(&*store, by_rule("r1")).await, Vec::<i64>::new());
    assert_eq!(list(&*store, by_rule("r3")).await, vec![q]);

    let replay = x.clone().mapping_version(3).replay_of(q);
    accepted_code(&commit_one(&*store, replay.accepted()).await);
    let entry = store.quarantine_get(q).await.unwrap();
    assert_eq!((entry.status, entry.attempts), (QuarantineStatus::Replayed, 2));
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.quarantine_open, stats.quarantine_total, stats.raw_records),
        (0, 1, 1)
    );
}

async fn replaying_an_entry_twice_in_one_batch(store: Arc<dyn Store>) {
    let x = Rec::new("X-1");
    let q = quarantine_id(&commit_one(&*store, x.quarantined(vec![violation("r1")])).await);
    let replay = x.clone().mapping_version(2).replay_of(q);
    let results = commit(
        &*store,
        vec![replay.quarantined(vec![violation("r2")]), replay.accepted()],
    )
    .await;
    assert_eq!(results[0], RecordResult::Quarantined { quarantine_id: q });
    accepted_code(&results[1]);
    let entry = store.quarantine_get(q).await.unwrap();
    assert_eq!((entry.status, entry.attempts), (QuarantineStatus::Replayed, 2));
    assert_eq!(entry.violations, vec![violation("r2")]);

    // Two different entries replayed in one batch, one failing, one succeeding.
    let y = Rec::new("Y-1");
    let z = Rec::new("Z-1");
    let results = commit(
        &*store,
        vec![
            y.quarantined(vec![violation("r1")]),
            z.quarantined(vec![violation("r1")]),
        ],
    )
    .await;
    let (qy, qz) = (quarantine_id(&results[0]), quarantine_id(&results[1]));
    let results = commit(
        &*store,
        vec![
            y.clone().replay_of(qy).quarantined(vec![violation("r9")]),
            z.clone().replay_of(qz).accepted(),
        ],
    )
    .await;
    assert_eq!(results[0], RecordResult::Quarantined { quarantine_id: qy });
    accepted_code(&results[1]);
    let ey = store.quarantine_get(qy).await.unwrap();
    let ez = store.quarantine_get(qz).await.unwrap();
    assert_eq!((ey.status, ey.attempts), (QuarantineStatus::Open, 1));
    assert_eq!(ey.violations, vec![violation("r9")]);
    assert_eq!((ez.status, ez.attempts), (QuarantineStatus::Replayed, 1));
}

async fn ignore_entry_with_note(store: Arc<dyn Store>) {
    let x = Rec::new("X-1");
    let q = quarantine_id(&commit_one(&*store, x.quarantined(vec![violation("r1")])).await);
    store
        .quarantine_set_status(q, QuarantineStatus::Ignored, Some("非本机关案件 / not our agency"))
        .await
        .unwrap();
    let entry = store.quarantine_get(q).await.unwrap();
    assert_eq!(entry.status, QuarantineStatus::Ignored);
    assert_eq!(entry.note.as_deref(), Some("非本机关案件 / not our agency"));
    assert_eq!(store.stats().await.unwrap().quarantine_open, 0);
    assert!(matches!(
        store
            .quarantine_set_status(q + 1000, QuarantineStatus::Ignored, None)
            .await,
        Err(StoreError::NotFound(_))
    ));

    // A replay of the ignored entry that fails again reopens nothing: it stays ignored.
    let failed = commit_one(&*store, x.clone().replay_of(q).quarantined(vec![violation("r2")])).await;
    assert_eq!(failed, RecordResult::Quarantined { quarantine_id: q });
    let entry = store.quarantine_get(q).await.unwrap();
    assert_eq!((entry.status, entry.attempts), (QuarantineStatus::Ignored, 1));

    store.quarantine_update_violations(q, &[violation("r7")]).await.unwrap();
    let entry = store.quarantine_get(q).await.unwrap();
    assert_eq!((entry.violations.clone(), entry.attempts), (vec![violation("r7")], 2));
    let by_rule = QuarantineFilter {
        rule: Some("r7".into()),
        ..QuarantineFilter::default()
    };
    assert_eq!(list(&*store, by_rule).await, vec![q]);

    // Setting a status without a note keeps the note.
    store
        .quarantine_set_status(q, QuarantineStatus::Replayed, None)
        .await
        .unwrap();
    let entry = store.quarantine_get(q).await.unwrap();
    assert_eq!(entry.status, QuarantineStatus::Replayed);
    assert_eq!(entry.note.as_deref(), Some("非本机关案件 / not our agency"));
}

async fn outbox_rows_follow_each_sinks_case_types(store: Arc<dyn Store>) {
    let sinks = vec![
        gateway::store::SinkRoute::all("everything"),
        gateway::store::SinkRoute {
            id: "penalties".into(),
            case_types: Some(vec!["penalty".into()]),
        },
    ];
    let batch = CommitBatch {
        records: vec![
            Rec::new("T-1").accepted(),
            Rec::new("T-2").case_type(CaseType::Inspection).accepted(),
        ],
        cursors: Vec::new(),
        sinks,
        fence: None,
    };
    let results = store.commit_batch(&batch).await.unwrap();
    let sinks_of = |code: String| {
        let store = Arc::clone(&store);
        async move {
            let (case, _) = store.case_by_code(&code).await.unwrap();
            let rows = store.outbox_for_case(case.id).await.unwrap();
            rows.into_iter().map(|r| r.sink_id).collect::<Vec<_>>()
        }
    };
    assert_eq!(sinks_of(accepted_code(&results[0])).await, ["everything", "penalties"]);
    assert_eq!(sinks_of(accepted_code(&results[1])).await, ["everything"]);
}

async fn penalty_publicity_follows_the_current_version_and_what_publicity_sinks_did(store: Arc<dyn Store>) {
    use gateway::store::publicity::{PublicityFilter, PublicityMark, PublicityStatus};
    let day = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let commit = |records: Vec<IncomingRecord>| CommitBatch {
        records,
        cursors: Vec::new(),
        sinks: Vec::new(),
        fence: None,
    };
    // 2024-03-01 is a Friday: the deadline is Tuesday 2024-03-12.
    let results = store
        .commit_batch(&commit(vec![
            Rec::new("P-1").decided("2024-03-01").accepted(),
            Rec::new("P-2").decided("2024-03-01").accepted(),
            Rec::new("I-1").case_type(CaseType::Inspection).accepted(),
        ]))
        .await
        .unwrap();
    let (p1, p2) = (accepted_code(&results[0]), accepted_code(&results[1]));
    let publicity = store.publicity();
    let status = |on: &str| {
        let on = day(on);
        async move {
            let (rows, total) = publicity.publicity(&PublicityFilter::default(), on).await.unwrap();
            assert_eq!(total, rows.len() as i64);
            rows.into_iter().map(|r| (r.code, r.status)).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        status("2024-03-12").await,
        [(p1.clone(), PublicityStatus::Due), (p2.clone(), PublicityStatus::Due)],
        "inspections have no publicity row"
    );
    assert_eq!(
        status("2024-03-13").await,
        [
            (p1.clone(), PublicityStatus::Overdue),
            (p2.clone(), PublicityStatus::Overdue)
        ]
    );
    assert_eq!(publicity.publicity_overdue(day("2024-03-13")).await.unwrap(), 2);

    // A publicity sink delivered P-1 on the evening of 11 March (UTC), 12 March in China: on time.
    // It withheld P-2.
    publicity
        .mark_publicity(&[
            PublicityMark::Published {
                code: p1.clone(),
                sink: "credit".into(),
                at: "2024-03-11T17:00:00Z".parse().unwrap(),
            },
            PublicityMark::Withheld {
                code: p2.clone(),
                reason: "自然人 / natural person".into(),
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        status("2024-03-20").await,
        [
            (p1.clone(), PublicityStatus::OnTime),
            (p2.clone(), PublicityStatus::Withheld)
        ]
    );
    assert_eq!(publicity.publicity_overdue(day("2024-03-20")).await.unwrap(), 0);
    let only_withheld = PublicityFilter {
        status: Some(PublicityStatus::Withheld),
        ..PublicityFilter::default()
    };
    let (rows, total) = publicity.publicity(&only_withheld, day("2024-03-20")).await.unwrap();
    assert_eq!(
        (total, rows[0].withheld_reason.as_deref()),
        (1, Some("自然人 / natural person"))
    );
    let by_agency = publicity
        .publicity_by_agency(&PublicityFilter::default(), day("2024-03-20"))
        .await
        .unwrap();
    assert_eq!(
        (by_agency[0].decided, by_agency[0].on_time, by_agency[0].withheld),
        (2, 1, 1)
    );

    // A new version keeps what the sink did; a withdrawal takes the penalty off the list.
    store
        .commit_batch(&commit(vec![Rec::new("P-1")
            .decided("2024-03-04")
            .content("v2")
            .accepted()]))
        .await
        .unwrap();
    let (rows, _) = publicity
        .publicity(&PublicityFilter::default(), day("2024-03-20"))
        .await
        .unwrap();
    let p1_row = rows.iter().find(|r| r.code == p1).unwrap();
    assert_eq!((p1_row.version, p1_row.status), (2, PublicityStatus::OnTime));
    assert_eq!(p1_row.published_sink.as_deref(), Some("credit"));
    store
        .commit_batch(&commit(vec![Rec::new("P-2").decided("2024-03-01").delete().accepted()]))
        .await
        .unwrap();
    assert_eq!(status("2024-03-20").await, [(p1, PublicityStatus::OnTime)]);
}

async fn outbox_row_per_sink_per_version(store: Arc<dyn Store>) {
    let sinks = vec!["amqp".to_string(), "provincial-api".to_string()];
    let with_sinks = |records: Vec<IncomingRecord>| CommitBatch {
        records,
        cursors: Vec::new(),
        sinks: sinks.iter().map(gateway::store::SinkRoute::all).collect(),
        fence: None,
    };
    let v1 = Rec::new("A-1");
    let results = store.commit_batch(&with_sinks(vec![v1.accepted()])).await.unwrap();
    let code = accepted_code(&results[0]);
    let (case, _) = store.case_by_code(&code).await.unwrap();
    let rows = store.outbox_for_case(case.id).await.unwrap();
    assert_eq!(rows.len(), 2);
    for (row, sink) in rows.iter().zip(&sinks) {
        assert_eq!(&row.sink_id, sink);
        assert_eq!((row.case_id, row.version), (case.id, 1));
        assert_eq!(row.idempotency_key, format!("{code}:1"));
        assert_eq!((row.status.as_str(), row.attempts), ("pending", 0));
    }

    // Unchanged: nothing to deliver.
    store.commit_batch(&with_sinks(vec![v1.accepted()])).await.unwrap();
    assert_eq!(store.outbox_for_case(case.id).await.unwrap().len(), 2);

    // An update and a withdrawal in one batch: one row per sink for each.
    let v2 = Rec::new("A-1").content("v2");
    store
        .commit_batch(&with_sinks(vec![v2.accepted(), v2.clone().delete().accepted()]))
        .await
        .unwrap();
    let rows = store.outbox_for_case(case.id).await.unwrap();
    let keys: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.sink_id.as_str(), r.idempotency_key.as_str()))
        .collect();
    let code_ref = &code;
    let expected: Vec<(String, String)> = (1..=3)
        .flat_map(|v| sinks.iter().map(move |s| (s.clone(), format!("{code_ref}:{v}"))))
        .collect();
    let expected: Vec<(&str, &str)> = expected.iter().map(|(s, k)| (s.as_str(), k.as_str())).collect();
    assert_eq!(keys, expected);
    assert_eq!(
        rows.iter().map(|r| r.version).collect::<Vec<_>>(),
        vec![1, 1, 2, 2, 3, 3]
    );
    assert_eq!(store.stats().await.unwrap().outbox_pending, 6);

    // No sinks configured: no rows.
    commit_one(&*store, Rec::new("A-1").content("v4").accepted()).await;
    assert_eq!(store.outbox_for_case(case.id).await.unwrap().len(), 6);
    assert_eq!(store.outbox_for_case(case.id + 1000).await.unwrap().len(), 0);
}

async fn cursors_advance_with_the_batch(store: Arc<dyn Store>) {
    assert_eq!(store.cursor(SOURCE).await.unwrap(), None);
    let b = CommitBatch {
        records: vec![Rec::new("A-1").accepted()],
        cursors: vec![(SOURCE.to_string(), "2024-06-01T00:00:00Z#17".to_string())],
        sinks: Vec::new(),
        fence: None,
    };
    store.commit_batch(&b).await.unwrap();
    assert_eq!(
        store.cursor(SOURCE).await.unwrap().as_deref(),
        Some("2024-06-01T00:00:00Z#17")
    );

    // A batch with only cursors (an empty page) advances them too.
    let b = CommitBatch {
        cursors: vec![
            (SOURCE.to_string(), "c2".to_string()),
            ("jiujiang".to_string(), "页码=3".to_string()),
        ],
        ..CommitBatch::default()
    };
    assert_eq!(store.commit_batch(&b).await.unwrap(), Vec::new());
    assert_eq!(store.cursor(SOURCE).await.unwrap().as_deref(), Some("c2"));
    assert_eq!(store.cursor("jiujiang").await.unwrap().as_deref(), Some("页码=3"));

    // The same source twice: the last cursor wins.
    let b = CommitBatch {
        cursors: vec![
            (SOURCE.to_string(), "c3".to_string()),
            (SOURCE.to_string(), "c4".to_string()),
        ],
        ..CommitBatch::default()
    };
    store.commit_batch(&b).await.unwrap();
    assert_eq!(store.cursor(SOURCE).await.unwrap().as_deref(), Some("c4"));
    assert_eq!(store.cursor("unknown").await.unwrap(), None);
}

/// A batch that cannot be planned (a record numbered in 1999: no code can be made for it) fails
/// as a whole; nothing of it is written.
async fn failing_batch_writes_nothing(store: Arc<dyn Store>) {
    let setup = CommitBatch {
        records: vec![Rec::new("A-1").accepted()],
        cursors: vec![(SOURCE.to_string(), "c0".to_string())],
        sinks: vec![gateway::store::SinkRoute::all("amqp")],
        fence: None,
    };
    let code = accepted_code(&store.commit_batch(&setup).await.unwrap()[0]);
    let before = store.stats().await.unwrap();

    let failing = CommitBatch {
        records: vec![
            Rec::new("B-1").accepted(),
            Rec::new("A-1").content("v2").accepted(),
            Rec::new("Q-1").quarantined(vec![violation("r1")]),
            Rec::new("C-1").region("360102").accepted(),
            Rec::new("BAD-1").year(1999).accepted(),
        ],
        cursors: vec![(SOURCE.to_string(), "c1".to_string())],
        sinks: vec![gateway::store::SinkRoute::all("amqp")],
        fence: None,
    };
    let err = store
        .commit_batch(&failing)
        .await
        .expect_err("the batch cannot be planned");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(!err.is_retryable());

    assert_nothing_of_the_batch_written(&*store, &before, &code).await;
}

/// After a failed batch: stats as before, the cursor and the case unchanged, and no counter used.
async fn assert_nothing_of_the_batch_written(store: &dyn Store, before: &StoreStats, code: &str) {
    assert_eq!(&store.stats().await.unwrap(), before);
    assert_eq!(store.cursor(SOURCE).await.unwrap().as_deref(), Some("c0"));
    let (case, versions) = store.case_by_code(code).await.unwrap();
    assert_eq!((case.version, versions.len()), (1, 1));
    let results = commit(
        store,
        vec![Rec::new("B-1").accepted(), Rec::new("C-1").region("360102").accepted()],
    )
    .await;
    assert_eq!(
        sequence(&accepted_code(&results[0])),
        2,
        "counter 360100 was not advanced"
    );
    assert_eq!(sequence(&accepted_code(&results[1])), 1, "counter 360102 starts at 1");
}

async fn cases_listing_pages_and_filters_by_source(store: Arc<dyn Store>) {
    let recs = [
        Rec::new("A-1").source("s1"),
        Rec::new("A-2").source("s2"),
        Rec::new("A-3").source("s1"),
        Rec::new("A-4").source("s2"),
        Rec::new("A-5").source("s1"),
    ];
    let results = commit(&*store, recs.iter().map(Rec::accepted).collect()).await;
    let codes: Vec<String> = results.iter().map(accepted_code).collect();

    let all = store.cases(&CaseFilter::default()).await.unwrap();
    assert_eq!(all.iter().map(|c| c.unified_code.clone()).collect::<Vec<_>>(), codes);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    for (case, rec) in all.iter().zip(&recs) {
        assert_eq!(case.record, rec.record());
        assert_eq!(case.key, rec.key());
        assert_eq!(case.version, 1);
        assert!(case.updated_at >= case.created_at);
    }

    let page1 = store
        .cases(&CaseFilter {
            limit: Some(2),
            ..CaseFilter::default()
        })
        .await
        .unwrap();
    let page2 = store
        .cases(&CaseFilter {
            limit: Some(2),
            after_id: Some(page1[1].id),
            ..CaseFilter::default()
        })
        .await
        .unwrap();
    let page3 = store
        .cases(&CaseFilter {
            limit: Some(2),
            after_id: Some(page2[1].id),
            ..CaseFilter::default()
        })
        .await
        .unwrap();
    let paged: Vec<i64> = page1.iter().chain(&page2).chain(&page3).map(|c| c.id).collect();
    assert_eq!(paged, all.iter().map(|c| c.id).collect::<Vec<_>>());

    let of = |source: &str| CaseFilter {
        source_id: Some(source.to_string()),
        ..CaseFilter::default()
    };
    let s2: Vec<String> = store
        .cases(&of("s2"))
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.unified_code)
        .collect();
    assert_eq!(s2, vec![codes[1].clone(), codes[3].clone()]);

    // The source is that of the latest version.
    let moved = Rec::new("A-1").source("s2").content("v2");
    commit_one(&*store, moved.accepted()).await;
    let s2 = store.cases(&of("s2")).await.unwrap();
    assert_eq!(
        s2.iter().map(|c| c.unified_code.clone()).collect::<Vec<_>>(),
        vec![codes[0].clone(), codes[1].clone(), codes[3].clone()]
    );
    assert_eq!(s2[0].record, moved.record());
    assert_eq!(s2[0].version, 2);
    assert_eq!(store.cases(&of("s1")).await.unwrap().len(), 2);
}

async fn case_by_code_normalises_and_reports_missing(store: Arc<dyn Store>) {
    let code = accepted_code(&commit_one(&*store, Rec::new("A-1").accepted()).await);
    let sloppy = format!(" {}-{} ", &code[..6], &code[6..]).to_lowercase();
    let (case, _) = store.case_by_code(&sloppy).await.unwrap();
    assert_eq!(case.unified_code, code);
    let missing = CaseCode::new(CaseType::Penalty, 2024, REGION, 99).unwrap().to_string();
    assert!(matches!(
        store.case_by_code(&missing).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn stats_and_audit_round_trip(store: Arc<dyn Store>) {
    let b = CommitBatch {
        records: vec![
            Rec::new("A-1").accepted(),
            Rec::new("A-1").content("v2").accepted(),
            Rec::new("B-1").accepted(),
            Rec::new("Q-1").quarantined(vec![violation("r1")]),
            Rec::new("Z-1").delete().accepted(),
        ],
        cursors: Vec::new(),
        sinks: vec![gateway::store::SinkRoute::all("amqp")],
        fence: None,
    };
    store.commit_batch(&b).await.unwrap();
    assert_eq!(
        store.stats().await.unwrap(),
        StoreStats {
            raw_records: 5,
            cases: 2,
            versions: 3,
            quarantine_open: 2,
            quarantine_total: 2,
            outbox_pending: 3,
        }
    );

    let start = Utc::now() - chrono::Duration::seconds(5);
    let entries = [
        AuditEntry {
            actor: "system".into(),
            action: "migrate".into(),
            subject: "store".into(),
            detail: json!({"applied": ["0001_initial"]}),
        },
        AuditEntry {
            actor: "cli:zhang".into(),
            action: "quarantine.ignore".into(),
            subject: "quarantine:1".into(),
            detail: json!({"note": "重复报送", "count": 1}),
        },
        AuditEntry {
            actor: "token:ops".into(),
            action: "replay".into(),
            subject: "source:nanchang".into(),
            detail: Value::Null,
        },
    ];
    for e in &entries {
        store.audit(e).await.unwrap();
    }
    let log = store.audit_log(10).await.unwrap();
    assert_eq!(log.len(), 3);
    for (record, entry) in log.iter().zip(entries.iter().rev()) {
        assert_eq!(
            (&record.actor, &record.action, &record.subject, &record.detail),
            (&entry.actor, &entry.action, &entry.subject, &entry.detail)
        );
        assert!(record.at >= start && record.at <= Utc::now() + chrono::Duration::seconds(5));
    }
    assert!(log.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let newest: Vec<i64> = store.audit_log(2).await.unwrap().iter().map(|r| r.id).collect();
    assert_eq!(newest, vec![log[0].id, log[1].id]);
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL only.
// ---------------------------------------------------------------------------------------------

/// A text PostgreSQL refuses (NUL byte) fails the batch midway, after the counters were
/// locked and created; nothing of the batch remains.
#[tokio::test]
async fn postgres_rejected_batch_writes_nothing() {
    let db = TestDb::postgres().await;
    let store = db.store();
    let setup = CommitBatch {
        records: vec![Rec::new("A-1").accepted()],
        cursors: vec![(SOURCE.to_string(), "c0".to_string())],
        sinks: vec![gateway::store::SinkRoute::all("amqp")],
        fence: None,
    };
    let code = accepted_code(&store.commit_batch(&setup).await.unwrap()[0]);
    let before = store.stats().await.unwrap();

    let mut bad = Rec::new("D-1").accepted();
    bad.record_key = "D-1\0".to_string();
    let failing = CommitBatch {
        records: vec![
            Rec::new("B-1").accepted(),
            Rec::new("A-1").content("v2").accepted(),
            Rec::new("Q-1").quarantined(vec![violation("r1")]),
            Rec::new("C-1").region("360102").accepted(),
            bad,
        ],
        cursors: vec![(SOURCE.to_string(), "c1".to_string())],
        sinks: vec![gateway::store::SinkRoute::all("amqp")],
        fence: None,
    };
    let err = store
        .commit_batch(&failing)
        .await
        .expect_err("PostgreSQL rejects NUL in text");
    assert!(matches!(err, StoreError::Postgres(_)), "{err:?}");
    assert!(!err.is_retryable());

    assert_nothing_of_the_batch_written(&*store, &before, &code).await;
}

/// `[joint] index = "background"`: a commit only queues its inspections' index facts; the
/// indexer's turns apply them (the same groups as at commit), one instance at a time, and a
/// withdrawal queued later takes its inspection out again.
#[tokio::test]
async fn postgres_background_joint_index_applies_queued_facts_in_turns() {
    use gateway::store::joint::{GroupKind, JointSettings};
    use joint_records::{commit, groups, insp, AGENCY_A, AGENCY_B, AGENCY_C, TARGET};
    let db = TestDb::postgres().await;
    let store = db.store();
    store.joint().configure_joint(JointSettings {
        background: true,
        ..JointSettings::default()
    });
    let codes = commit(
        &*store,
        vec![
            insp("BG-1", AGENCY_A, TARGET, 1),
            insp("BG-2", AGENCY_B, TARGET, 3),
            insp("BG-3", AGENCY_C, TARGET, 4),
        ],
    )
    .await;
    assert!(groups(&*store).await.is_empty(), "nothing applied at commit");
    assert_eq!(store.joint().joint_backlog().await.unwrap(), 3);
    // While another instance's turn holds the indexer's lock, this one's does nothing.
    let (mut other, connection) = tokio_postgres::connect(db.pg_url().unwrap(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let turn = other.transaction().await.unwrap();
    turn.query_one("SELECT pg_try_advisory_xact_lock(19023, 256)", &[])
        .await
        .unwrap();
    let blocked = store.joint().joint_drain(10, &[]).await.unwrap();
    assert_eq!((blocked.applied, blocked.ran), (0, false));
    turn.rollback().await.unwrap();
    let first = store.joint().joint_drain(2, &[]).await.unwrap();
    assert_eq!((first.applied, first.ran), (2, true));
    let second = store.joint().joint_drain(10, &[]).await.unwrap();
    assert_eq!((second.applied, second.ran), (1, true));
    assert_eq!(store.joint().joint_backlog().await.unwrap(), 0);
    let found = groups(&*store).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].kind, GroupKind::Similar);
    assert_eq!(found[0].members.len(), 3);
    commit(&*store, vec![insp("BG-3", AGENCY_C, TARGET, 4).delete()]).await;
    assert_eq!(groups(&*store).await[0].members.len(), 3, "not applied yet");
    store.joint().joint_drain(10, &[]).await.unwrap();
    let found = groups(&*store).await;
    assert_eq!(found[0].members.len(), 2, "{found:?}");
    assert!(!found[0].cases().contains(&codes[2]));
    // A rebuild reads every committed inspection and empties the queue.
    commit(&*store, vec![insp("BG-4", AGENCY_C, TARGET, 5)]).await;
    store.joint().joint_rebuild().await.unwrap();
    assert_eq!(store.joint().joint_backlog().await.unwrap(), 0);
    assert_eq!(groups(&*store).await[0].members.len(), 3);
}

#[tokio::test]
async fn postgres_unreachable_server_is_a_pool_error() {
    let result = PostgresStore::connect("postgres://postgres@127.0.0.1:1/postgres", 2).await;
    assert!(matches!(result, Err(StoreError::Pool(_))), "{:?}", result.err());
    let result = PostgresStore::connect("postgres://host:notaport/db", 2).await;
    assert!(matches!(result, Err(StoreError::Pool(_))), "{:?}", result.err());
}

/// Gateway instances starting together migrate once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_migrations_apply_once() {
    let database = PgDatabase::create().await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = database.url.clone();
        tasks.push(tokio::spawn(async move {
            let store = PostgresStore::connect(&url, 1).await.expect("connect");
            store.migrate().await.expect("migrate")
        }));
    }
    let mut applied = Vec::new();
    for t in tasks {
        applied.extend(t.await.unwrap());
    }
    // Which instance applies which migration varies; each is applied by exactly one.
    applied.sort();
    assert_eq!(
        applied,
        [
            "0001_initial",
            "0002_outbox_dispatch",
            "0003_mapping_versions",
            "0004_case_lookups",
            "0005_supervision_catalogue",
            "0006_compact_rows",
            "0007_discriminating_index_keys",
            "0008_raw_receipts",
            "0009_source_time",
            "0010_console",
            "0011_cluster",
            "0012_joint",
            "0013_officers",
            "0014_plans_supplement",
            "0015_attachments",
            "0016_reconciliation_alerts",
            "0017_publicity",
            "0018_joint_queue",
            "0021_archive_chain"
        ],
        "each migration applied once"
    );
}

/// Four writers, each committing 50 batches of 20 new cases of the same counter plus 5 business
/// keys shared by all writers: every code of the counter is used exactly once (1..=N, no gap, no
/// duplicate) and every business key has exactly one case.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_writers_allocate_gapless_unique_codes() {
    const TASKS: usize = 4;
    const BATCHES: usize = 50;
    const OWN: usize = 20;
    const SHARED: usize = 5;
    let db = TestDb::postgres_with_pool(8).await;
    let store = db.store();

    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut retries = 0u32;
            for b in 0..BATCHES {
                let mut records: Vec<IncomingRecord> = (0..OWN)
                    .map(|i| Rec::new(&format!("T{t}-B{b}-{i}")).accepted())
                    .collect();
                // Shared keys, in a different position in each writer's batch; each writer sends
                // its own content, so every writer adds one version.
                let shared: Vec<IncomingRecord> = (0..SHARED)
                    .map(|j| {
                        Rec::new(&format!("S-B{b}-{j}"))
                            .content(&format!("from writer {t}"))
                            .accepted()
                    })
                    .collect();
                let at = (t * 4) % (OWN + 1);
                records.splice(at..at, shared);
                let batch = CommitBatch {
                    records,
                    cursors: vec![(format!("writer-{t}"), b.to_string())],
                    sinks: vec![gateway::store::SinkRoute::all("amqp")],
                    fence: None,
                };
                let (results, attempts) =
                    commit_with_retries(store.as_ref(), &batch, &format!("writer {t}, batch {b}")).await;
                assert_eq!(results.len(), OWN + SHARED);
                retries += attempts;
            }
            retries
        }));
    }
    let mut retries = 0;
    for task in tasks {
        retries += task.await.expect("writer task");
    }
    eprintln!("concurrent writers: {retries} retries");

    let mut cases: Vec<CaseRow> = Vec::new();
    loop {
        let page = store
            .cases(&CaseFilter {
                after_id: cases.last().map(|c| c.id),
                limit: Some(1000),
                ..CaseFilter::default()
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        cases.extend(page);
    }
    let n = TASKS * BATCHES * OWN + BATCHES * SHARED;
    assert_eq!(cases.len(), n);
    let mut sequences: Vec<u32> = cases
        .iter()
        .map(|c| {
            let code = CaseCode::parse(&c.unified_code).unwrap();
            assert_eq!(
                (code.case_type(), code.year(), code.region()),
                (CaseType::Penalty, 2024, REGION)
            );
            code.sequence()
        })
        .collect();
    sequences.sort_unstable();
    let expected: Vec<u32> = (1..=u32::try_from(n).unwrap()).collect();
    assert_eq!(sequences, expected, "codes 1..=N, each once");

    let mut by_key: HashMap<&BusinessKey, &CaseRow> = HashMap::new();
    for c in &cases {
        assert!(by_key.insert(&c.key, c).is_none(), "two cases for {}", c.key);
    }
    for b in 0..BATCHES {
        for j in 0..SHARED {
            let key = Rec::new(&format!("S-B{b}-{j}")).key();
            assert_eq!(
                by_key[&key].version, TASKS as i32,
                "every writer added a version of {key}"
            );
        }
    }
    let versions = TASKS * BATCHES * (OWN + SHARED);
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.cases, stats.versions), (n as i64, versions as i64));
    assert_eq!(stats.outbox_pending, versions as i64);
    for t in 0..TASKS {
        let cursor = store.cursor(&format!("writer-{t}")).await.unwrap();
        assert_eq!(cursor, Some((BATCHES - 1).to_string()));
    }
}

/// Writers numbering from different counters (the same business keys arrive with a different
/// year from different writers) collide on the business key: the loser gets a retryable error,
/// retries, and finds the case. Every counter stays gapless and every key has one case.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_writers_on_different_counters_retry_and_stay_gapless() {
    const TASKS: usize = 4;
    const BATCHES: usize = 30;
    const OWN: usize = 10;
    const SHARED: usize = 5;
    let db = TestDb::postgres_with_pool(8).await;
    let store = db.store();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let year = if t % 2 == 0 { 2024 } else { 2023 };
            let mut retries = 0u32;
            for b in 0..BATCHES {
                let mut records: Vec<IncomingRecord> = (0..OWN)
                    .map(|i| Rec::new(&format!("T{t}-B{b}-{i}")).year(year).accepted())
                    .collect();
                // Shared keys in opposite orders in alternate writers, to provoke deadlocks too.
                let mut shared: Vec<IncomingRecord> = (0..SHARED)
                    .map(|j| {
                        Rec::new(&format!("S-B{b}-{j}"))
                            .year(year)
                            .content(&format!("from writer {t}"))
                            .accepted()
                    })
                    .collect();
                if t % 2 == 1 {
                    shared.reverse();
                }
                records.extend(shared);
                let batch = batch(records);
                let mut attempt = 0u32;
                loop {
                    match store.commit_batch(&batch).await {
                        Ok(_) => break,
                        Err(e) if e.is_retryable() && attempt < 100 => {
                            attempt += 1;
                            retries += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(u64::from(attempt))).await;
                        }
                        Err(e) => panic!("writer {t}, batch {b}, attempt {attempt}: {e}"),
                    }
                }
            }
            retries
        }));
    }
    let mut retries = 0;
    for task in tasks {
        retries += task.await.expect("writer task");
    }
    eprintln!("writers on two counters: {retries} retries");

    let cases = store
        .cases(&CaseFilter {
            limit: Some(100_000),
            ..CaseFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(cases.len(), TASKS * BATCHES * OWN + BATCHES * SHARED);
    let mut by_counter: HashMap<u16, Vec<u32>> = HashMap::new();
    for c in &cases {
        let code = CaseCode::parse(&c.unified_code).unwrap();
        assert_eq!(i32::from(code.year()), c.year);
        by_counter.entry(code.year()).or_default().push(code.sequence());
    }
    for (year, mut seqs) in by_counter {
        seqs.sort_unstable();
        let expected: Vec<u32> = (1..=u32::try_from(seqs.len()).unwrap()).collect();
        assert_eq!(seqs, expected, "counter of {year} is gapless");
    }
    let keys: HashSet<&BusinessKey> = cases.iter().map(|c| &c.key).collect();
    assert_eq!(keys.len(), cases.len());
    for c in cases.iter().filter(|c| c.key.case_number.as_str().starts_with("S-")) {
        assert_eq!(c.version, TASKS as i32, "every writer added a version of {}", c.key);
    }
}

// ---------------------------------------------------------------------------------------------
// Both backends side by side: the same random batches give the same results and the same state.
// ---------------------------------------------------------------------------------------------

/// xorshift64*: deterministic, dependency-free randomness for the differential test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// Quarantine entries seen so far: canonical number -> (SQLite id, PostgreSQL id, the payload's record).
#[derive(Default)]
struct Entries {
    ids: Vec<(i64, i64, Rec)>,
}

impl Entries {
    fn canonical(&self, backend: usize, id: i64) -> Option<usize> {
        self.ids
            .iter()
            .position(|e| if backend == 0 { e.0 == id } else { e.1 == id })
    }
}

fn canonical_result(result: &RecordResult, entries: &Entries, backend: usize) -> RecordResult {
    match result {
        RecordResult::Quarantined { quarantine_id } => RecordResult::Quarantined {
            quarantine_id: entries.canonical(backend, *quarantine_id).map_or(-1, |n| n as i64),
        },
        other => other.clone(),
    }
}

/// Everything observable, with backend-specific ids replaced by canonical ones.
async fn canonical_state(store: &dyn Store, entries: &Entries, backend: usize) -> Value {
    let mut cases = Vec::new();
    for c in store
        .cases(&CaseFilter {
            limit: Some(10_000),
            ..CaseFilter::default()
        })
        .await
        .unwrap()
    {
        let (_, versions) = store.case_by_code(&c.unified_code).await.unwrap();
        let mut vs = Vec::new();
        for v in versions {
            let raw = store.raw_record(v.raw_id).await.unwrap();
            vs.push(json!([
                v.version,
                v.status,
                raw.content_hash,
                raw.times_received,
                v.mapping_version,
                v.record_hash,
                v.record,
                v.warnings
            ]));
        }
        let outbox: Vec<Value> = store
            .outbox_for_case(c.id)
            .await
            .unwrap()
            .into_iter()
            .map(|o| json!([o.sink_id, o.version, o.idempotency_key, o.status]))
            .collect();
        cases.push(json!([
            c.unified_code,
            c.key,
            c.version,
            c.withdrawn,
            c.record,
            vs,
            outbox
        ]));
    }
    let mut quarantine = Vec::new();
    let all = QuarantineFilter {
        limit: Some(10_000),
        ..QuarantineFilter::default()
    };
    for e in store.quarantine_list(&all).await.unwrap() {
        let raw = store.raw_record(e.raw_id).await.unwrap();
        quarantine.push(json!([
            entries.canonical(backend, e.id),
            e.status,
            e.violations,
            e.attempts,
            e.mapping_version,
            e.note,
            e.record_key,
            raw.content_hash,
            raw.times_received
        ]));
    }
    json!({
        "stats": store.stats().await.unwrap(),
        "cases": cases,
        "quarantine": quarantine,
        "cursor": store.cursor(SOURCE).await.unwrap(),
    })
}

/// Random batches over a few business keys: inserts, updates, deletes (also of unknown cases),
/// with and without source times (stale records, equal times), rejections, re-deliveries with the same or another verdict, replays (failing or not) and
/// ignored entries. Both backends must report the same for every record and end in the same state.
#[tokio::test]
async fn postgres_and_sqlite_agree_on_random_batches() {
    for seed in [1u64, 7, 2024, 31337, 4242] {
        let sqlite = TestDb::sqlite().await;
        let postgres = TestDb::postgres().await;
        let stores = [sqlite.store(), postgres.store()];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed);
        let mut entries = Entries::default();
        let mut sent: Vec<Rec> = Vec::new();
        for step in 0..100 {
            // One batch, the same for both backends except for replayed entry ids.
            let mut records: [Vec<IncomingRecord>; 2] = [Vec::new(), Vec::new()];
            for _ in 0..1 + rng.below(8) {
                let verdict_accept = rng.chance(70);
                let violations = vec![violation(["r1", "r2", "r3"][rng.below(3)])];
                let rec = if !sent.is_empty() && rng.chance(20) {
                    sent[rng.below(sent.len())].clone()
                } else {
                    let mut rec = Rec::new(&format!("K-{}", rng.below(6)))
                        .content(["v1", "v2", "v3"][rng.below(3)])
                        .region(["360100", "360102"][rng.below(2)])
                        .mapping_version(1 + rng.below(3) as i64);
                    if rng.chance(20) {
                        rec = rec.delete();
                    }
                    if rng.chance(10) {
                        rec = rec.warning("rule.w");
                    }
                    if rng.chance(50) {
                        rec = rec.at(rng.below(5) as i64);
                    }
                    rec
                };
                let replay = if !entries.ids.is_empty() && rng.chance(15) {
                    Some(rng.below(entries.ids.len()))
                } else {
                    None
                };
                for (backend, out) in records.iter_mut().enumerate() {
                    let r = match replay {
                        Some(n) => {
                            let (a, b, rec) = &entries.ids[n];
                            rec.clone().replay_of(if backend == 0 { *a } else { *b })
                        }
                        None => rec.clone(),
                    };
                    out.push(if verdict_accept {
                        r.accepted()
                    } else {
                        r.quarantined(violations.clone())
                    });
                }
                sent.push(rec);
            }
            let sinks = ["amqp".to_string()];
            let cursors = vec![(SOURCE.to_string(), format!("step-{step}"))];
            let mut results = Vec::new();
            for (backend, store) in stores.iter().enumerate() {
                let b = CommitBatch {
                    records: records[backend].clone(),
                    cursors: cursors.clone(),
                    sinks: sinks.iter().map(gateway::store::SinkRoute::all).collect(),
                    fence: None,
                };
                results.push(
                    store
                        .commit_batch(&b)
                        .await
                        .unwrap_or_else(|e| panic!("seed {seed} step {step} on {}: {e}", store.backend())),
                );
            }
            // New entries: numbered in order of first report, with the payload's record.
            for (i, (a, b)) in results[0].iter().zip(&results[1]).enumerate() {
                if let (
                    RecordResult::Quarantined { quarantine_id: qa },
                    RecordResult::Quarantined { quarantine_id: qb },
                ) = (a, b)
                {
                    if entries.canonical(0, *qa).is_none() && entries.canonical(1, *qb).is_none() {
                        let rec = sent[sent.len() - records[0].len() + i].clone();
                        let rec = Rec { replay_of: None, ..rec };
                        entries.ids.push((*qa, *qb, rec));
                    }
                }
            }
            let canonical: Vec<Vec<RecordResult>> = results
                .iter()
                .enumerate()
                .map(|(backend, rs)| rs.iter().map(|r| canonical_result(r, &entries, backend)).collect())
                .collect();
            assert_eq!(canonical[0], canonical[1], "seed {seed} step {step}: results differ");

            // Now and then an operator ignores an entry.
            if !entries.ids.is_empty() && rng.chance(10) {
                let n = rng.below(entries.ids.len());
                let (a, b, _) = &entries.ids[n];
                stores[0]
                    .quarantine_set_status(*a, QuarantineStatus::Ignored, Some("ignored"))
                    .await
                    .unwrap();
                stores[1]
                    .quarantine_set_status(*b, QuarantineStatus::Ignored, Some("ignored"))
                    .await
                    .unwrap();
            }
        }
        let state_sqlite = canonical_state(&*stores[0], &entries, 0).await;
        let state_postgres = canonical_state(&*stores[1], &entries, 1).await;
        assert_eq!(state_sqlite, state_postgres, "seed {seed}: final states differ");
        let stats = stores[0].stats().await.unwrap();
        eprintln!("seed {seed}: {stats:?}, {} entries", entries.ids.len());
    }
}

/// Four writers commit the very same batch at the same moment, once with records to accept
/// (serialised by the code counters' locks) and once with records to quarantine (no counter: the
/// writers race on the raw archive's unique index, and the losers retry). Each payload is archived
/// once, each accepted record is one case with one version, each rejected one is one open entry,
/// and per record exactly one writer gets `Accepted` or `Quarantined`, the others `Unchanged`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_writers_racing_on_identical_payloads_archive_each_once() {
    const RECORDS: usize = 50;
    let db = TestDb::postgres_with_pool(8).await;
    let store = db.store();
    let accepted: Vec<IncomingRecord> = (0..RECORDS).map(|i| Rec::new(&format!("A-{i}")).accepted()).collect();
    let firsts = commit_racing(&store, accepted).await;
    assert!(
        firsts.iter().all(|r| matches!(r, RecordResult::Accepted { .. })),
        "{firsts:?}"
    );
    let rejected: Vec<IncomingRecord> = (0..RECORDS)
        .map(|i| Rec::new(&format!("Q-{i}")).quarantined(vec![violation("schema.required")]))
        .collect();
    let firsts = commit_racing(&store, rejected).await;
    assert!(
        firsts.iter().all(|r| matches!(r, RecordResult::Quarantined { .. })),
        "{firsts:?}"
    );
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.raw_records, stats.cases, stats.versions, stats.quarantine_total),
        (2 * RECORDS as i64, RECORDS as i64, RECORDS as i64, RECORDS as i64)
    );
}

/// Commit `batch`, retrying what is retryable (up to 100 times); the results and the retries.
async fn commit_with_retries(store: &dyn Store, batch: &CommitBatch, who: &str) -> (Vec<RecordResult>, u32) {
    let mut attempt = 0u32;
    loop {
        match store.commit_batch(batch).await {
            Ok(results) => return (results, attempt),
            Err(e) if e.is_retryable() && attempt < 100 => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(u64::from(attempt))).await;
            }
            Err(e) => panic!("{who}, attempt {attempt}: {e}"),
        }
    }
}

/// Four writers commit `records` together, retrying what is retryable; per record, the one
/// result that is not `Unchanged` (asserting there is exactly one).
async fn commit_racing(store: &Arc<dyn Store>, records: Vec<IncomingRecord>) -> Vec<RecordResult> {
    const TASKS: usize = 4;
    let n = records.len();
    let batch = Arc::new(CommitBatch {
        records,
        cursors: Vec::new(),
        sinks: vec![gateway::store::SinkRoute::all("amqp")],
        fence: None,
    });
    let start = Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (store, batch, start) = (Arc::clone(store), Arc::clone(&batch), Arc::clone(&start));
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            commit_with_retries(store.as_ref(), &batch, &format!("writer {t}"))
                .await
                .0
        }));
    }
    let mut firsts: Vec<Vec<RecordResult>> = vec![Vec::new(); n];
    for task in tasks {
        let results = task.await.expect("writer task");
        assert_eq!(results.len(), n);
        for (i, r) in results.into_iter().enumerate() {
            if !matches!(r, RecordResult::Unchanged { .. }) {
                firsts[i].push(r);
            }
        }
    }
    firsts
        .into_iter()
        .enumerate()
        .map(|(i, mut f)| {
            assert_eq!(f.len(), 1, "record {i}: {f:?}");
            f.remove(0)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Versions ordered by the source's own time.
// ---------------------------------------------------------------------------------------------

/// Commit with one sink, so that every new version gets an outbox row.
async fn commit_to_sink(store: &dyn Store, records: Vec<IncomingRecord>) -> Vec<RecordResult> {
    let batch = CommitBatch {
        records,
        cursors: Vec::new(),
        sinks: vec![gateway::store::SinkRoute::all("platform")],
        fence: None,
    };
    store.commit_batch(&batch).await.expect("commit the batch")
}

/// (version, status, content) of every lineage row of a case.
async fn lineage(store: &dyn Store, code: &str) -> Vec<(i32, String, String)> {
    let (_, versions) = store.case_by_code(code).await.expect("case");
    versions
        .into_iter()
        .map(|v| {
            let content = v.record["content"].as_str().unwrap_or_default().to_string();
            (v.version, v.status, content)
        })
        .collect()
}

fn row(version: i32, status: &str, content: &str) -> (i32, String, String) {
    (version, status.to_string(), content.to_string())
}

async fn versions_follow_source_time_and_stale_records_stay_in_the_lineage(store: Arc<dyn Store>) {
    let v2 = Rec::new("T-1").content("v2").at(20);
    let code = accepted_code(&commit_to_sink(&*store, vec![v2.accepted()]).await[0]);
    // v1 arrives after v2 but is older at the source.
    let v1 = Rec::new("T-1").content("v1").at(10);
    let stale = commit_to_sink(&*store, vec![v1.accepted()]).await;
    assert_eq!(
        stale,
        vec![RecordResult::Stale {
            code: code.clone(),
            version: 1
        }]
    );
    let (case, _) = store.case_by_code(&code).await.unwrap();
    assert_eq!((case.version, case.record["content"].as_str()), (1, Some("v2")));
    assert_eq!(
        lineage(&*store, &code).await,
        vec![row(1, "active", "v2"), row(1, "stale", "v1")]
    );
    // Sent again, the stale payload is a duplicate: no second lineage row.
    assert_eq!(
        commit_to_sink(&*store, vec![v1.accepted()]).await,
        vec![RecordResult::Unchanged { code: code.clone() }]
    );
    // A withdrawal older than the head is stale too: the case stays in force.
    let old_delete = Rec::new("T-1").content("v2").at(15).delete();
    assert!(matches!(
        commit_to_sink(&*store, vec![old_delete.accepted()]).await[0],
        RecordResult::Stale { version: 1, .. }
    ));
    assert!(!store.case_by_code(&code).await.unwrap().0.withdrawn);
    // A newer one becomes version 2; only versions are delivered.
    let v3 = Rec::new("T-1").content("v3").at(30);
    assert_eq!(
        commit_to_sink(&*store, vec![v3.accepted()]).await,
        vec![RecordResult::Updated {
            code: code.clone(),
            version: 2
        }]
    );
    let (case, _) = store.case_by_code(&code).await.unwrap();
    let deliveries: Vec<i32> = store
        .outbox_for_case(case.id)
        .await
        .unwrap()
        .iter()
        .map(|o| o.version)
        .collect();
    assert_eq!(deliveries, vec![1, 2], "no stale record is delivered");
    assert_eq!(
        lineage(&*store, &code).await,
        vec![
            row(1, "active", "v2"),
            row(1, "stale", "v1"),
            row(1, "stale", "v2"),
            row(2, "active", "v3"),
        ]
    );
    // Without a source time, arrival order decides, as before.
    let untimed = Rec::new("T-1").content("v4 untimed");
    assert!(matches!(
        commit_one(&*store, untimed.accepted()).await,
        RecordResult::Updated { version: 3, .. }
    ));
}

async fn equal_source_times_let_the_later_arrival_win_with_a_warning(store: Arc<dyn Store>) {
    let a = Rec::new("T-2").content("first").at(20);
    let code = accepted_code(&commit_one(&*store, a.accepted()).await);
    let b = Rec::new("T-2").content("second").at(20);
    assert_eq!(
        commit_one(&*store, b.accepted()).await,
        RecordResult::Updated {
            code: code.clone(),
            version: 2
        }
    );
    let (_, versions) = store.case_by_code(&code).await.unwrap();
    let rules: Vec<&str> = versions[1].warnings.iter().map(|w| w.rule.as_str()).collect();
    assert_eq!(rules, ["version.same_source_time"]);
    assert!(versions[0].warnings.is_empty());
}

async fn stale_records_within_one_batch_never_become_the_head(store: Arc<dyn Store>) {
    let results = commit_to_sink(
        &*store,
        vec![
            Rec::new("T-3").content("v2").at(20).accepted(),
            Rec::new("T-3").content("v1").at(10).accepted(),
            Rec::new("T-4").content("only").at(5).accepted(),
        ],
    )
    .await;
    let code = accepted_code(&results[0]);
    assert_eq!(
        results[1],
        RecordResult::Stale {
            code: code.clone(),
            version: 1
        }
    );
    assert!(matches!(results[2], RecordResult::Accepted { .. }));
    assert_eq!(
        lineage(&*store, &code).await,
        vec![row(1, "active", "v2"), row(1, "stale", "v1")]
    );
    let (case, _) = store.case_by_code(&code).await.unwrap();
    assert_eq!(store.outbox_for_case(case.id).await.unwrap().len(), 1);
}

async fn an_accepted_later_record_supersedes_open_entries_of_its_key(store: Arc<dyn Store>) {
    let first = quarantine_id(
        &commit_one(
            &*store,
            Rec::new("S-1")
                .content("v1 bad")
                .quarantined(vec![violation("uscc.checksum")]),
        )
        .await,
    );
    let other = quarantine_id(
        &commit_one(
            &*store,
            Rec::new("S-2")
                .content("bad")
                .quarantined(vec![violation("uscc.checksum")]),
        )
        .await,
    );
    let code = accepted_code(&commit_one(&*store, Rec::new("S-1").content("v2").accepted()).await);
    let entry = store.quarantine_get(first).await.unwrap();
    assert_eq!(entry.status, QuarantineStatus::Superseded);
    let note = entry.note.unwrap_or_default();
    assert!(note.contains(&code) && note.contains("version 1"), "{note}");
    assert_eq!(
        store.quarantine_get(other).await.unwrap().status,
        QuarantineStatus::Open
    );
    let superseded = list(
        &*store,
        QuarantineFilter {
            status: Some(QuarantineStatus::Superseded),
            ..QuarantineFilter::default()
        },
    )
    .await;
    assert_eq!(superseded, vec![first]);
    // In one batch: a record quarantined after the accepted one of its key is newer, and stays open.
    let results = commit(
        &*store,
        vec![
            Rec::new("S-3").content("ok").accepted(),
            Rec::new("S-3")
                .content("later, bad")
                .quarantined(vec![violation("uscc.checksum")]),
        ],
    )
    .await;
    let later = quarantine_id(&results[1]);
    assert_eq!(
        store.quarantine_get(later).await.unwrap().status,
        QuarantineStatus::Open
    );
}

async fn a_replay_older_by_source_time_is_kept_as_stale(store: Arc<dyn Store>) {
    let entry = quarantine_id(
        &commit_one(
            &*store,
            Rec::new("R-1")
                .content("v1")
                .at(10)
                .quarantined(vec![violation("uscc.checksum")]),
        )
        .await,
    );
    let code = accepted_code(&commit_one(&*store, Rec::new("R-1").content("v2").at(20).accepted()).await);
    // The mapping is fixed and the entry replayed: older at the source, it is kept as stale and
    // the entry is done.
    let replay = Rec::new("R-1").content("v1").at(10).replay_of(entry);
    assert_eq!(
        commit_one(&*store, replay.accepted()).await,
        RecordResult::Stale {
            code: code.clone(),
            version: 1
        }
    );
    let replayed = store.quarantine_get(entry).await.unwrap();
    assert_eq!(replayed.status, QuarantineStatus::Replayed);
    let note = replayed.note.unwrap_or_default();
    assert!(
        note.contains(&code) && note.contains("stale"),
        "the entry says where the record went: {note}"
    );
    let (case, _) = store.case_by_code(&code).await.unwrap();
    assert_eq!(case.record["content"], "v2");
    // Newer at the source, a replayed entry wins even though it arrived before the head.
    let newer = quarantine_id(
        &commit_one(
            &*store,
            Rec::new("R-2")
                .content("v9")
                .at(90)
                .quarantined(vec![violation("uscc.checksum")]),
        )
        .await,
    );
    let code2 = accepted_code(
        &commit_one(
            &*store,
            Rec::new("R-2")
                .content("v5")
                .at(50)
                .received(Utc::now() + chrono::Duration::minutes(1))
                .accepted(),
        )
        .await,
    );
    let replay = Rec::new("R-2")
        .content("v9")
        .at(90)
        .replay_of(newer)
        .received(Utc::now() - chrono::Duration::minutes(1));
    assert_eq!(
        commit_one(&*store, replay.accepted()).await,
        RecordResult::Updated {
            code: code2.clone(),
            version: 2
        }
    );
    let note = store.quarantine_get(newer).await.unwrap().note.unwrap_or_default();
    assert!(note.contains(&format!("became version 2 of case {code2}")), "{note}");
}

/// A rule filter is a rule id, not a pattern: `%` and `_` match nothing on either backend.
async fn the_rule_filter_takes_the_rule_id_literally(store: Arc<dyn Store>) {
    let entry =
        quarantine_id(&commit_one(&*store, Rec::new("L-1").quarantined(vec![violation("uscc.check_char")])).await);
    let by = |rule: &str| QuarantineFilter {
        rule: Some(rule.to_string()),
        ..QuarantineFilter::default()
    };
    assert_eq!(list(&*store, by("uscc.check_char")).await, vec![entry]);
    for pattern in ["%", "_", "uscc%", "uscc_check_char", "uscc.check", "%check_char"] {
        assert_eq!(
            list(&*store, by(pattern)).await,
            Vec::<i64>::new(),
            "rule filter {pattern:?}"
        );
    }
}

/// Statements of the store are limited (5 minutes) unless the URL's `options` say otherwise.
#[tokio::test]
async fn postgres_statements_are_limited_unless_the_url_sets_the_limit() {
    let database = PgDatabase::create().await;
    let store = PostgresStore::connect(&database.url, 1).await.expect("connect");
    assert_eq!(
        store.session_setting("statement_timeout").await.expect("setting"),
        "5min"
    );
    let own = if database.url.contains('?') {
        format!("{}&options=-c%20statement_timeout%3D1234", database.url)
    } else {
        format!("{}?options=-c%20statement_timeout%3D1234", database.url)
    };
    let store = PostgresStore::connect(&own, 1).await.expect("connect");
    assert_eq!(
        store.session_setting("statement_timeout").await.expect("setting"),
        "1234ms"
    );
}

// ---------------------------------------------------------------------------------------------
// The operator console's reads.
// ---------------------------------------------------------------------------------------------

/// A rejected record with the labels the mapping could read from it.
fn labelled(rec: &Rec, number: Option<&str>, name: Option<&str>, id: Option<&str>) -> IncomingRecord {
    let mut r = rec.quarantined(vec![violation("gb11643.checksum")]);
    r.labels = RecordLabels {
        case_number: number.map(str::to_string),
        target_name: name.map(str::to_string),
        target_id: id.map(str::to_string),
    };
    r
}

async fn quarantine_search_finds_entries_by_case_number_target_and_key_with_exact_totals(store: Arc<dyn Store>) {
    let a = quarantine_id(
        &commit_one(
            &*store,
            labelled(
                &Rec::new("KEY-A"),
                Some("赣洪市监罚〔2024〕7号"),
                Some("南昌某某食品有限公司"),
                Some("91360100MA35X0001K"),
            ),
        )
        .await,
    );
    let b = quarantine_id(
        &commit_one(
            &*store,
            labelled(
                &Rec::new("KEY-B").source("jiangxi-hub"),
                Some("B-2"),
                Some("九江某某商行"),
                Some("360102199001011234"),
            ),
        )
        .await,
    );
    let c = quarantine_id(&commit_one(&*store, labelled(&Rec::new("KEY-C"), None, None, None)).await);
    let search = |q: &str| QuarantineFilter {
        search: Some(q.into()),
        ..QuarantineFilter::default()
    };
    assert_eq!(
        list(&*store, search("赣洪市监罚〔2024〕7号")).await,
        vec![a],
        "by case number"
    );
    assert_eq!(
        list(&*store, search("某某")).await,
        vec![b, a],
        "by part of the target's name"
    );
    assert_eq!(
        list(&*store, search("360102199001011234")).await,
        vec![b],
        "by ID number"
    );
    assert_eq!(list(&*store, search("KEY-C")).await, vec![c], "by record key");
    assert_eq!(list(&*store, search("no such thing")).await, Vec::<i64>::new());
    let entry = store.quarantine_get(a).await.unwrap();
    assert_eq!(entry.labels.target_name.as_deref(), Some("南昌某某食品有限公司"));

    // Totals ignore paging; offset pages newest first; a department's sources.
    assert_eq!(store.quarantine_count(&search("某某")).await.unwrap(), 2);
    let paged = QuarantineFilter {
        limit: Some(1),
        offset: Some(1),
        ..QuarantineFilter::default()
    };
    assert_eq!(list(&*store, paged.clone()).await, vec![b]);
    assert_eq!(store.quarantine_count(&paged).await.unwrap(), 3);
    let own = QuarantineFilter {
        sources: Some(vec![SOURCE.to_string()]),
        ..QuarantineFilter::default()
    };
    assert_eq!(list(&*store, own.clone()).await, vec![c, a]);
    assert_eq!(store.quarantine_count(&own).await.unwrap(), 2);

    // Ignoring what a filter selects touches open entries of that filter only.
    let ignored = store
        .quarantine_ignore_matching(&search("某某"), "重复报送 / sent twice")
        .await
        .unwrap();
    assert_eq!(ignored, 2);
    let entry = store.quarantine_get(b).await.unwrap();
    assert_eq!(
        (entry.status, entry.note.as_deref()),
        (QuarantineStatus::Ignored, Some("重复报送 / sent twice"))
    );
    assert_eq!(store.quarantine_get(c).await.unwrap().status, QuarantineStatus::Open);
    assert_eq!(
        store
            .quarantine_ignore_matching(&search("某某"), "again")
            .await
            .unwrap(),
        0
    );
}

async fn a_resolved_entry_names_the_case_version_it_became(store: Arc<dyn Store>) {
    let x = Rec::new("X-1");
    let q = quarantine_id(&commit_one(&*store, labelled(&x, Some("X-1"), None, None)).await);
    assert_eq!(store.quarantine_get(q).await.unwrap().resolution, None);
    let code = accepted_code(&commit_one(&*store, x.clone().mapping_version(2).replay_of(q).accepted()).await);
    let entry = store.quarantine_get(q).await.unwrap();
    assert_eq!(entry.resolution, Some(Resolution { code, version: Some(1) }));
    assert_eq!(entry.labels.case_number.as_deref(), Some("X-1"), "the labels stay");
    assert_eq!(
        entry.mapping_version, 2,
        "the entry names the mapping version that accepted it"
    );
}

async fn record_fates_tell_what_became_of_each_received_record(store: Arc<dyn Store>) {
    let code = accepted_code(&commit_one(&*store, Rec::new("A-1").accepted()).await);
    let q = quarantine_id(&commit_one(&*store, labelled(&Rec::new("Q-1"), Some("Q-1"), None, None)).await);
    let ignored = quarantine_id(&commit_one(&*store, Rec::new("I-1").quarantined(vec![violation("r")])).await);
    store
        .quarantine_set_status(ignored, QuarantineStatus::Ignored, Some("test"))
        .await
        .unwrap();
    commit_one(&*store, Rec::new("O-1").source("jiangxi-hub").accepted()).await;

    let (items, total) = store
        .record_fates(&RecordFilter {
            source_id: Some(SOURCE.into()),
            ..RecordFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(total, 3);
    let fates: Vec<(String, Outcome, Option<String>, Option<i64>)> = items
        .iter()
        .map(|f| (f.record_key.clone(), f.outcome, f.code.clone(), f.quarantine_id))
        .collect();
    assert_eq!(
        fates,
        vec![
            ("I-1".to_string(), Outcome::Ignored, None, Some(ignored)),
            ("Q-1".to_string(), Outcome::Quarantined, None, Some(q)),
            ("A-1".to_string(), Outcome::Accepted, Some(code.clone()), None),
        ]
    );
    assert_eq!(items[1].rules, vec!["gb11643.checksum".to_string()]);
    assert_eq!(items[1].case_number.as_deref(), Some("Q-1"));
    assert_eq!(items[2].version, Some(1));

    let only = |outcome| RecordFilter {
        sources: Some(vec![SOURCE.into()]),
        outcome: Some(outcome),
        ..RecordFilter::default()
    };
    let (items, total) = store.record_fates(&only(Outcome::Quarantined)).await.unwrap();
    assert_eq!((items.len(), total), (1, 1));
    assert_eq!(items[0].record_key, "Q-1");
    let (items, total) = store.record_fates(&only(Outcome::Accepted)).await.unwrap();
    assert_eq!((items[0].code.as_deref(), total), (Some(code.as_str()), 1));
    let (_, total) = store.record_fates(&RecordFilter::default()).await.unwrap();
    assert_eq!(total, 4, "every source");
}

async fn audit_search_filters_by_actor_action_family_and_subject(store: Arc<dyn Store>) {
    for (actor, action, subject) in [
        ("ops", "quarantine.ignore", "quarantine:1"),
        ("ops", "quarantine.replay", "source:nanchang"),
        ("owner", "mapping.activate", "mapping:nanchang"),
        ("owner", "mapping.upload", "mapping:nanchang"),
    ] {
        store
            .audit(&AuditEntry {
                actor: actor.into(),
                action: action.into(),
                subject: subject.into(),
                detail: json!({}),
            })
            .await
            .unwrap();
    }
    let search = |f: AuditFilter| {
        let store = Arc::clone(&store);
        async move {
            let (items, total) = store.audit_search(&f).await.unwrap();
            (items.into_iter().map(|e| e.action).collect::<Vec<_>>(), total)
        }
    };
    let (actions, total) = search(AuditFilter {
        action: Some("mapping".into()),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(
        (actions, total),
        (vec!["mapping.upload".to_string(), "mapping.activate".to_string()], 2)
    );
    let (actions, _) = search(AuditFilter {
        actor: Some("ops".into()),
        subject: Some("quarantine:".into()),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(actions, vec!["quarantine.ignore".to_string()]);
    let (actions, total) = search(AuditFilter {
        limit: Some(1),
        offset: Some(1),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!((actions, total), (vec!["mapping.activate".to_string()], 4));
}

async fn audit_entries_are_stored_with_id_numbers_masked(store: Arc<dyn Store>) {
    // A person's ID number (18 characters, and a 15-digit first-generation one) in the subject,
    // in nested strings and in an object key; an agency credit code and a plain number beside.
    store
        .audit(&AuditEntry {
            actor: "owner".into(),
            action: "mapping.activate".into(),
            subject: "person:36010219850315202X".into(),
            detail: json!({
                "diff": ["+input = { xdrzjhm = \"36010219850315202X\" }", "+old = \"360426910101007\""],
                "by_id": { "360426199101010071": { "agency": AGENCY, "count": 3 } },
            }),
        })
        .await
        .unwrap();
    let log = store.audit_log(10).await.unwrap();
    let entry = log
        .iter()
        .find(|e| e.action == "mapping.activate")
        .expect("entry stored");
    let (items, _) = store.audit_search(&AuditFilter::default()).await.unwrap();
    for stored in [
        serde_json::to_string(entry).unwrap(),
        serde_json::to_string(&items).unwrap(),
    ] {
        for full in ["36010219850315202X", "360426910101007", "360426199101010071"] {
            assert!(!stored.contains(full), "{full} stored in {stored}");
        }
    }
    assert_eq!(entry.subject, "person:3601**********202X");
    assert_eq!(
        entry.detail,
        json!({
            "diff": ["+input = { xdrzjhm = \"3601**********202X\" }", "+old = \"3604*******1007\""],
            "by_id": { "3604**********0071": { "agency": AGENCY, "count": 3 } },
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Several instances: leases, fencing, heartbeats.
// ---------------------------------------------------------------------------------------------

const SHORT: std::time::Duration = std::time::Duration::from_millis(300);
const LONG: std::time::Duration = std::time::Duration::from_secs(60);

async fn a_lease_is_held_by_one_instance_until_it_runs_out_or_is_released(store: Arc<dyn Store>) {
    let c = store.cluster();
    let first = c
        .lease_acquire("source:nanchang", "a", SHORT, std::time::Duration::ZERO)
        .await
        .unwrap()
        .expect("free: taken");
    assert_eq!(first, 1);
    assert_eq!(
        c.lease_acquire("source:nanchang", "b", LONG, std::time::Duration::ZERO)
            .await
            .unwrap(),
        None,
        "held by a"
    );
    assert_eq!(
        c.lease_acquire("source:other", "b", LONG, std::time::Duration::ZERO)
            .await
            .unwrap(),
        Some(1),
        "another job is free"
    );
    let fence_a = Fence {
        job: "source:nanchang".into(),
        holder: "a".into(),
        epoch: first,
    };
    assert!(c.lease_renew(&fence_a, SHORT).await.unwrap());
    // Not renewed: it runs out, and b takes it with a newer epoch; a can no longer renew.
    tokio::time::sleep(SHORT * 2).await;
    let taken = c
        .lease_acquire("source:nanchang", "b", LONG, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(taken, Some(2));
    assert!(!c.lease_renew(&fence_a, LONG).await.unwrap(), "a lost it");
    let leases = c.leases().await.unwrap();
    let row = leases.iter().find(|l| l.job == "source:nanchang").expect("lease");
    assert_eq!((row.holder.as_str(), row.epoch, row.expired), ("b", 2, false));
    // Released: taken at once by the next instance.
    let fence_b = Fence {
        job: "source:nanchang".into(),
        holder: "b".into(),
        epoch: 2,
    };
    c.lease_release(&fence_b).await.unwrap();
    assert_eq!(
        c.lease_acquire("source:nanchang", "c", LONG, std::time::Duration::ZERO)
            .await
            .unwrap(),
        Some(3)
    );
}

async fn a_commit_under_a_taken_over_lease_is_refused_and_writes_nothing(store: Arc<dyn Store>) {
    let c = store.cluster();
    let epoch = c
        .lease_acquire("source:nanchang", "a", SHORT, std::time::Duration::ZERO)
        .await
        .unwrap()
        .expect("taken");
    let fence = Fence {
        job: "source:nanchang".into(),
        holder: "a".into(),
        epoch,
    };
    let fenced = |records: Vec<IncomingRecord>, cursor: &str| CommitBatch {
        records,
        cursors: vec![(SOURCE.to_string(), cursor.to_string())],
        sinks: Vec::new(),
        fence: Some(fence.clone()),
    };
    store
        .commit_batch(&fenced(vec![Rec::new("F-1").accepted()], "2024-06-01T00:00:00Z"))
        .await
        .expect("the holder commits");
    // a pauses past its lease; b takes the job over.
    tokio::time::sleep(SHORT * 2).await;
    assert_eq!(
        c.lease_acquire("source:nanchang", "b", LONG, std::time::Duration::ZERO)
            .await
            .unwrap(),
        Some(epoch + 1)
    );
    let before = store.stats().await.unwrap();
    let late = store
        .commit_batch(&fenced(vec![Rec::new("F-2").accepted()], "2024-01-01T00:00:00Z"))
        .await;
    assert!(
        matches!(&late, Err(StoreError::Fenced { job, epoch: e, .. }) if job == "source:nanchang" && *e == epoch),
        "{late:?}"
    );
    let after = store.stats().await.unwrap();
    assert_eq!(before.cases, after.cases, "nothing of the late batch was written");
    assert_eq!(
        store.cursor(SOURCE).await.unwrap().as_deref(),
        Some("2024-06-01T00:00:00Z"),
        "the old holder cannot move the cursor back"
    );
    let late_catalogue = store
        .catalogue()
        .catalogue_commit("cat", &[], Some("x"), Some(&fence))
        .await;
    assert!(
        matches!(late_catalogue, Err(StoreError::Fenced { .. })),
        "{late_catalogue:?}"
    );
}

async fn leases_still_held_by_a_stopped_instance_are_released_at_once(store: Arc<dyn Store>) {
    let c = store.cluster();
    let zero = std::time::Duration::ZERO;
    assert!(c.lease_acquire("job:a", "gw-1", LONG, zero).await.unwrap().is_some());
    assert!(c.lease_acquire("job:b", "gw-1", LONG, zero).await.unwrap().is_some());
    assert!(c.lease_acquire("job:c", "gw-2", LONG, zero).await.unwrap().is_some());
    assert_eq!(c.leases_release_held("gw-1").await.unwrap(), 2);
    assert!(
        c.lease_acquire("job:a", "gw-2", LONG, zero).await.unwrap().is_some(),
        "another instance takes a released job at once"
    );
    assert!(
        c.lease_acquire("job:c", "gw-3", LONG, zero).await.unwrap().is_none(),
        "another holder's lease is left alone"
    );
    assert_eq!(c.leases_release_held("gw-1").await.unwrap(), 0);
}

async fn instances_report_their_heartbeats_and_clean_stops(store: Arc<dyn Store>) {
    let c = store.cluster();
    let info = |id: &str| InstanceInfo {
        id: id.into(),
        host: "gw-host".into(),
        pid: 42,
        version: "0.1.0".into(),
        started_at: Utc::now(),
    };
    c.instance_heartbeat(&info("a"), 10).await.unwrap();
    c.instance_heartbeat(&info("b"), 0).await.unwrap();
    c.instance_heartbeat(&info("a"), 25).await.unwrap();
    c.instance_stopped("b").await.unwrap();
    let rows = c.instances().await.unwrap();
    assert_eq!(rows.len(), 2);
    let a = rows.iter().find(|r| r.info.id == "a").expect("a");
    assert_eq!((a.committed, a.stopped_at.is_none()), (25, true));
    assert!(a.seconds_since_heartbeat <= 1);
    let b = rows.iter().find(|r| r.info.id == "b").expect("b");
    assert!(b.stopped_at.is_some());
    // Instances silent for long are forgotten; the recent ones stay.
    assert_eq!(
        c.instances_forget(std::time::Duration::from_secs(3600)).await.unwrap(),
        0
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    c.instance_heartbeat(&info("a"), 30).await.unwrap();
    assert_eq!(c.instances_forget(std::time::Duration::from_secs(1)).await.unwrap(), 1);
    let left: Vec<String> = c.instances().await.unwrap().into_iter().map(|r| r.info.id).collect();
    assert_eq!(left, vec!["a".to_string()]);
}

// ---------------------------------------------------------------------------------------------
// The officer registry (执法人员名录) and the catalogue's scopes and domains.
// ---------------------------------------------------------------------------------------------

const JIUJIANG: &str = "11360400014587316A";

fn officer(agency: &str, cert: &str, name: &str) -> normalizer::officers::Officer {
    normalizer::officers::Officer {
        name: name.into(),
        cert_no: cert.into(),
        agency_credit_code: agency.into(),
        valid_from: chrono::NaiveDate::from_ymd_opt(2023, 1, 1),
        valid_to: None,
        status: normalizer::officers::OfficerStatus::Active,
    }
}

async fn officer_registry_loads_are_versions_per_agency_with_counts(store: Arc<dyn Store>) {
    use gateway::store::officers::RegistryLoad;
    let registry = store.officers();
    assert_eq!(registry.officers_stamp().await.unwrap(), None);
    let first = RegistryLoad::grouped(
        "standards-wang",
        "2024.csv",
        vec![
            officer(AGENCY, "JX0001", "张三"),
            officer(AGENCY, "JX0002", "李四"),
            officer(JIUJIANG, "JJ0001", "王五"),
        ],
        None,
    );
    let v = registry.officers_load(&first).await.unwrap();
    assert_eq!(v.len(), 2, "one version per agency of the load");
    let nanchang = v.iter().find(|v| v.agency_credit_code == AGENCY).unwrap();
    assert_eq!(
        (
            nanchang.version,
            nanchang.officers,
            nanchang.added,
            nanchang.removed,
            nanchang.changed
        ),
        (1, 2, 2, 0, 0)
    );
    assert_eq!(
        (nanchang.loaded_by.as_str(), nanchang.origin.as_str()),
        ("standards-wang", "2024.csv")
    );
    let stamp = registry.officers_stamp().await.unwrap();
    assert!(stamp.is_some());

    // The second load of 南昌 replaces its list: one kept, one changed (suspended), one gone, one new.
    let mut suspended = officer(AGENCY, "JX0002", "李四");
    suspended.status = normalizer::officers::OfficerStatus::Suspended;
    suspended.valid_to = chrono::NaiveDate::from_ymd_opt(2025, 12, 31);
    let second = RegistryLoad::grouped(
        "cli:ops",
        "2025.csv",
        vec![suspended.clone(), officer(AGENCY, "JX0003", "赵六")],
        None,
    );
    let v = registry.officers_load(&second).await.unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(
        (v[0].version, v[0].officers, v[0].added, v[0].removed, v[0].changed),
        (2, 2, 1, 1, 1)
    );
    assert!(
        registry.officers_stamp().await.unwrap() > stamp,
        "a load moves the stamp"
    );

    let (all, agencies) = registry.officers_all().await.unwrap();
    assert_eq!(agencies, [AGENCY.to_string(), JIUJIANG.to_string()]);
    let nanchang: Vec<_> = all.iter().filter(|o| o.agency_credit_code == AGENCY).collect();
    assert_eq!(nanchang.len(), 2);
    assert_eq!(nanchang[0].to_officer(), suspended, "dates and status read back");
    assert_eq!(nanchang[0].version, 2);

    // An empty list empties the agency, which stays loaded (as a version with nobody).
    let empty = RegistryLoad::grouped("admin-li", "api", Vec::new(), Some(JIUJIANG));
    let v = registry.officers_load(&empty).await.unwrap();
    assert_eq!((v[0].officers, v[0].removed), (0, 1));
    let (all, agencies) = registry.officers_all().await.unwrap();
    assert_eq!(agencies.len(), 2);
    assert!(all.iter().all(|o| o.agency_credit_code == AGENCY));

    let (versions, total) = registry.officer_versions(None, None, 0, 10).await.unwrap();
    assert_eq!(total, 4);
    assert_eq!(versions[0].agency_credit_code, JIUJIANG, "newest first");
    assert_eq!(versions[0].version, 2);
    let (versions, total) = registry.officer_versions(Some(AGENCY), None, 1, 10).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].version, 1, "the offset skips the newest");
}

async fn officer_lists_search_page_and_keep_to_a_scope(store: Arc<dyn Store>) {
    use gateway::store::officers::{OfficerFilter, RegistryLoad};
    let registry = store.officers();
    let load = RegistryLoad::grouped(
        "admin-li",
        "api",
        vec![
            officer(AGENCY, "JX0001", "张三"),
            officer(AGENCY, "JX0002", "张小明"),
            officer(AGENCY, "JX0003", "李四"),
            officer(JIUJIANG, "JJ0001", "张九"),
        ],
        None,
    );
    registry.officers_load(&load).await.unwrap();
    let list = |filter: OfficerFilter| async move { registry.officers_list(&filter).await.unwrap() };
    let (items, total) = list(OfficerFilter {
        limit: 2,
        ..OfficerFilter::default()
    })
    .await;
    assert_eq!(total, 4);
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].cert_no, "JX0001", "by agency, then certificate");
    let (items, total) = list(OfficerFilter {
        q: Some("张".into()),
        limit: 10,
        ..OfficerFilter::default()
    })
    .await;
    assert_eq!(total, 3);
    assert_eq!(items.len(), 3);
    let (items, _) = list(OfficerFilter {
        q: Some("jx0003".into()),
        limit: 10,
        ..OfficerFilter::default()
    })
    .await;
    assert_eq!(items.len(), 1, "a certificate number is found in any case");
    let (_, total) = list(OfficerFilter {
        agency: Some(JIUJIANG.into()),
        limit: 10,
        ..OfficerFilter::default()
    })
    .await;
    assert_eq!(total, 1);
    let (items, total) = list(OfficerFilter {
        scope: Some((vec![AGENCY.into()], Vec::new())),
        limit: 10,
        offset: 2,
        ..OfficerFilter::default()
    })
    .await;
    assert_eq!((total, items.len()), (3, 1), "a scope of codes");
    let (items, total) = list(OfficerFilter {
        scope: Some((Vec::new(), vec!["3604".into()])),
        limit: 10,
        ..OfficerFilter::default()
    })
    .await;
    assert_eq!(
        (total, items[0].cert_no.as_str()),
        (1, "JJ0001"),
        "a scope of region prefixes"
    );
    let (_, total) = list(OfficerFilter {
        scope: Some((Vec::new(), Vec::new())),
        limit: 10,
        ..OfficerFilter::default()
    })
    .await;
    assert_eq!(total, 0, "an empty scope shows nothing");
    let scope = (Vec::new(), vec!["3604".to_string()]);
    let (versions, total) = registry.officer_versions(None, Some(&scope), 0, 10).await.unwrap();
    assert_eq!((total, versions[0].agency_credit_code.as_str()), (1, JIUJIANG));
}

async fn catalogue_items_keep_their_scope_and_domain(store: Arc<dyn Store>) {
    use gateway::store::catalogue::CatalogueItem;
    let items = vec![
        CatalogueItem {
            year: 2024,
            item_code: "36010000100013".into(),
            name: "食品经营监督检查".into(),
            parent_code: None,
            active: true,
            scope: Some("3601".into()),
            domain: Some("食品药品".into()),
        },
        CatalogueItem {
            year: 2024,
            item_code: "36010000100012".into(),
            name: "价格监督检查".into(),
            parent_code: None,
            active: true,
            scope: None,
            domain: None,
        },
    ];
    store
        .catalogue()
        .catalogue_commit("cat", &items, None, None)
        .await
        .unwrap();
    let mut stored = store.catalogue().catalogue_items().await.unwrap();
    stored.sort_by(|a, b| b.item_code.cmp(&a.item_code));
    assert_eq!(stored, items);
}

// ---------------------------------------------------------------------------------------------
// Awaiting supplement (待补录) and plans.
// ---------------------------------------------------------------------------------------------

async fn awaiting_numbers(store: &dyn Store, filter: AwaitingFilter) -> (Vec<String>, i64) {
    let (items, total) = store.supplements().awaiting(&filter).await.expect("awaiting list");
    (items.into_iter().map(|c| c.case_number).collect(), total)
}

async fn cases_awaiting_supplement_are_listed_until_completed_re_sent_complete_or_withdrawn(store: Arc<dyn Store>) {
    let s1 = Rec::new("S-1").at(1).awaiting("/item_code").awaiting("/case_source");
    let s2 = Rec::new("S-2").source("other-source").awaiting("/item_code");
    let s4 = Rec::new("S-4").awaiting("/item_code");
    commit(
        &*store,
        vec![s1.accepted(), s2.accepted(), Rec::new("S-3").accepted(), s4.accepted()],
    )
    .await;
    let (numbers, total) = awaiting_numbers(&*store, AwaitingFilter::default()).await;
    assert_eq!(
        (numbers, total),
        (vec!["S-1".to_string(), "S-2".into(), "S-4".into()], 3)
    );
    let (items, _) = store
        .supplements()
        .awaiting(&AwaitingFilter::default())
        .await
        .expect("list");
    assert_eq!(items[0].fields, vec!["/item_code".to_string(), "/case_source".into()]);
    assert_eq!(items[0].agency_credit_code, AGENCY);
    assert_eq!(items[0].case_type, "penalty");
    let by_field = AwaitingFilter {
        field: Some("/case_source".into()),
        ..AwaitingFilter::default()
    };
    assert_eq!(awaiting_numbers(&*store, by_field).await, (vec!["S-1".to_string()], 1));
    let scoped = AwaitingFilter {
        source_ids: Some(vec!["other-source".into()]),
        ..AwaitingFilter::default()
    };
    assert_eq!(awaiting_numbers(&*store, scoped).await, (vec!["S-2".to_string()], 1));
    let paged = AwaitingFilter {
        offset: Some(1),
        limit: Some(1),
        ..AwaitingFilter::default()
    };
    assert_eq!(awaiting_numbers(&*store, paged).await, (vec!["S-2".to_string()], 3));
    let counts = store.supplements().awaiting_counts(None).await.expect("counts");
    let mut per_source: Vec<(String, i64)> = counts.iter().map(|c| (c.source_id.clone(), c.cases)).collect();
    per_source.sort();
    assert_eq!(
        per_source,
        vec![("nanchang".to_string(), 2), ("other-source".to_string(), 1)]
    );
    let scoped_counts = store
        .supplements()
        .awaiting_counts(Some(&["other-source".to_string()]))
        .await
        .expect("counts");
    assert_eq!(scoped_counts.len(), 1);

    // The source sends S-2 complete, S-4 is withdrawn, S-1 still awaits one field.
    commit(
        &*store,
        vec![
            Rec::new("S-2").source("other-source").content("v2").accepted(),
            Rec::new("S-4").delete().accepted(),
            Rec::new("S-1").at(2).content("v2").awaiting("/case_source").accepted(),
        ],
    )
    .await;
    let (items, total) = store
        .supplements()
        .awaiting(&AwaitingFilter::default())
        .await
        .expect("list");
    assert_eq!(total, 1);
    assert_eq!(items[0].case_number, "S-1");
    assert_eq!(items[0].fields, vec!["/case_source".to_string()]);
    assert!(
        items[0].updated_at >= items[0].since,
        "since is kept from the first version"
    );
}

async fn a_completion_keeps_the_supplied_values_with_the_version_it_became(store: Arc<dyn Store>) {
    let first = Rec::new("S-1").at(1).awaiting("/item_code");
    let code = match commit_one(&*store, first.accepted()).await {
        RecordResult::Accepted { code } => code,
        other => panic!("{other:?}"),
    };
    let supplied = vec![NewSupplied {
        pointer: "/item_code".into(),
        value: json!("36000000000001"),
    }];
    let key = format!("{AGENCY}/penalty/S-1");
    // The completion carries the same source time as the version it completes.
    let completed = Rec::new("S-1").at(1).content("v1 completed").completion();
    let result = store
        .supplements()
        .commit_completion(
            &completion_batch(completed.accepted(), vec![]),
            &key,
            &supplied,
            "dept-a",
        )
        .await
        .expect("completion");
    assert_eq!(
        result,
        RecordResult::Updated {
            code: code.clone(),
            version: 2
        }
    );
    let (_, versions) = store.case_by_code(&code).await.expect("case");
    assert!(
        versions[1]
            .warnings
            .iter()
            .all(|w| w.rule != "version.same_source_time"),
        "{:?}",
        versions[1].warnings
    );
    let rows = store.supplements().supplied_after(0).await.expect("supplied");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (
            rows[0].business_key.as_str(),
            rows[0].pointer.as_str(),
            rows[0].version,
            rows[0].actor.as_str()
        ),
        (key.as_str(), "/item_code", 2, "dept-a")
    );
    assert_eq!(rows[0].value, json!("36000000000001"));
    assert_eq!(rows[0].code, code);
    assert!(store
        .supplements()
        .supplied_after(rows[0].id)
        .await
        .expect("none after")
        .is_empty());
    assert_eq!(
        store.supplements().supplied_for_case(&code).await.expect("case rows"),
        rows
    );
    assert_eq!(awaiting_numbers(&*store, AwaitingFilter::default()).await.1, 0);

    // A completion that changes nothing is not a version: no value is kept.
    let again = store
        .supplements()
        .commit_completion(
            &completion_batch(completed.accepted(), vec![]),
            &key,
            &supplied,
            "dept-a",
        )
        .await
        .expect("repeat");
    assert!(matches!(again, RecordResult::Unchanged { .. }), "{again:?}");
    assert_eq!(
        store.supplements().supplied_for_case(&code).await.expect("rows").len(),
        1
    );
}

async fn plan_numbers_are_those_of_plans_not_withdrawn(store: Arc<dyn Store>) {
    commit(
        &*store,
        vec![
            Rec::new("赣某厅〔2026〕1号").case_type(CaseType::Plan).accepted(),
            Rec::new("JH-2").case_type(CaseType::Plan).accepted(),
            Rec::new("JH-3").accepted(),
        ],
    )
    .await;
    commit(
        &*store,
        vec![Rec::new("JH-2").case_type(CaseType::Plan).delete().accepted()],
    )
    .await;
    let mut numbers = store.plan_numbers().await.expect("plan numbers");
    numbers.sort();
    assert_eq!(numbers, vec!["赣某厅〔2026〕1号".to_string()]);
}
