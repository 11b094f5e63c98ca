//! Embedded SQLite backend: the default store, a single file, no server needed.
//! One connection behind a mutex; every call runs on tokio's blocking pool.

use super::console::{self, AuditFilter, Dialect, RecordFate, RecordFilter};
use super::error::{parse_case_number, parse_case_type, parse_credit_code};
use super::plan::{
    counter_key, plan_batch, resolution, resolved_note, same_source_time_warning, source_changes, superseding, CaseRef,
    CounterKey, Decision, ExistingCase, Plan,
};
use super::types::*;
use super::{Store, StoreError, StoreResult};
use crate::crypto::chain::HashAlg;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use normalizer::Violation;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Migrations, in order: (name, SQL).
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_initial", include_str!("../../migrations/sqlite/0001_initial.sql")),
    (
        "0002_outbox_dispatch",
        include_str!("../../migrations/sqlite/0002_outbox_dispatch.sql"),
    ),
    (
        "0003_mapping_versions",
        include_str!("../../migrations/sqlite/0003_mapping_versions.sql"),
    ),
    (
        "0004_case_lookups",
        include_str!("../../migrations/sqlite/0004_case_lookups.sql"),
    ),
    (
        "0005_supervision_catalogue",
        include_str!("../../migrations/sqlite/0005_supervision_catalogue.sql"),
    ),
    (
        "0006_source_time",
        include_str!("../../migrations/sqlite/0006_source_time.sql"),
    ),
    ("0007_console", include_str!("../../migrations/sqlite/0007_console.sql")),
    ("0008_cluster", include_str!("../../migrations/sqlite/0008_cluster.sql")),
    ("0009_joint", include_str!("../../migrations/sqlite/0009_joint.sql")),
    (
        "0010_officers",
        include_str!("../../migrations/sqlite/0010_officers.sql"),
    ),
    (
        "0011_plans_supplement",
        include_str!("../../migrations/sqlite/0011_plans_supplement.sql"),
    ),
    (
        "0012_attachments",
        include_str!("../../migrations/sqlite/0012_attachments.sql"),
    ),
    (
        "0013_reconciliation_alerts",
        include_str!("../../migrations/sqlite/0013_reconciliation_alerts.sql"),
    ),
    (
        "0014_publicity",
        include_str!("../../migrations/sqlite/0014_publicity.sql"),
    ),
    (
        "0017_archive_chain",
        include_str!("../../migrations/sqlite/0017_archive_chain.sql"),
    ),
];

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    pub(crate) joint: Arc<super::joint::SettingsCell>,
    pub(crate) archive: Arc<super::archive::ChainSettingsCell>,
}

impl SqliteStore {
    /// Open (or create) the database file.
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError::Task(format!("cannot create {}: {e}", dir.display())))?;
            }
        }
        let conn = Connection::open(path)?;
        Self::configure(conn)
    }

    /// An in-memory database (tests).
    pub fn in_memory() -> StoreResult<SqliteStore> {
        Self::configure(Connection::open_in_memory()?)
    }

    fn configure(conn: Connection) -> StoreResult<SqliteStore> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            joint: Arc::default(),
            archive: Arc::default(),
        })
    }

    pub(crate) async fn with_conn<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| StoreError::Task("SQLite connection mutex poisoned".into()))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

/// A timestamp as the SQLite store writes it: RFC 3339 in UTC with microseconds, so that text
/// order is time order.
pub(crate) fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The current time as [`time`] writes it.
pub(crate) fn now() -> String {
    time(Utc::now())
}

/// Read a timestamp written by [`time`].
pub(crate) fn parse_time(s: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("timestamp {s:?}: {e}")))
}

fn parse_json<T: serde::de::DeserializeOwned>(s: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("stored JSON: {e}")))
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(format!("JSON: {e}")))
}

/// `|rule1|rule2|`: lets `instr` find entries by rule id, literally (no LIKE wildcards).
fn rules_text(violations: &[Violation]) -> String {
    let mut s = String::from("|");
    for v in violations {
        s.push_str(&v.rule);
        s.push('|');
    }
    s
}

/// Parameters of the statement resolving a payload's open entry and the entry it replays (with
/// the note of what the record became).
fn resolve_params<'a>(
    raw_id: i64,
    record: &'a IncomingRecord,
    now: &'a String,
    plan: &Plan,
    index: usize,
) -> impl rusqlite::Params + 'a {
    let resolution = resolution(plan, index);
    (
        raw_id,
        now,
        i32::from(record.replay_of.is_some()),
        record.replay_of.unwrap_or(-1),
        resolved_note(plan, index),
        resolution.as_ref().map(|r| r.code.clone()),
        resolution.and_then(|r| r.version),
        &record.mapping_id,
        record.mapping_version,
    )
}

fn commit_sync(
    conn: &mut Connection,
    batch: &CommitBatch,
    joint: &super::joint::JointSettings,
    chain: Option<HashAlg>,
) -> StoreResult<Vec<RecordResult>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let results = commit_in(&tx, batch, joint, chain)?;
    tx.commit()?;
    Ok(results)
}

/// Make raw row `raw_id` (just inserted for `record`) the next link of its source's chain:
/// `heads` holds the heads this transaction has moved (read from the store on first use).
fn link_new_row(
    tx: &rusqlite::Transaction<'_>,
    heads: &mut HashMap<String, (i64, [u8; 32])>,
    alg: HashAlg,
    record: &IncomingRecord,
    raw_id: i64,
) -> StoreResult<()> {
    let head = match heads.get_mut(&record.source_id) {
        Some(head) => head,
        None => {
            let stored: Option<(i64, Vec<u8>)> = tx
                .prepare_cached("SELECT seq, head_hash FROM archive_chain_heads WHERE source_id = ?1")?
                .query_row([&record.source_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let head = match stored {
                Some((seq, bytes)) => (
                    seq,
                    crate::crypto::chain::hash_of_bytes(&bytes).ok_or_else(|| {
                        StoreError::Corrupt(format!("chain head of {}: {} bytes", record.source_id, bytes.len()))
                    })?,
                ),
                None => (0, crate::crypto::chain::GENESIS),
            };
            heads.entry(record.source_id.clone()).or_insert(head)
        }
    };
    let link = crate::crypto::chain::Link {
        alg,
        source_id: &record.source_id,
        seq: head.0 + 1,
        raw_id,
        received_at: record.received_at,
        payload_digest: super::archive::payload_digest(alg, record)?,
        prev: head.1,
    };
    let hash = link.hash();
    tx.prepare_cached("UPDATE raw_records SET chain_seq = ?1, chain_alg = ?2, chain_hash = ?3 WHERE id = ?4")?
        .execute(params![link.seq, alg.code(), hash.as_slice(), raw_id])?;
    *head = (link.seq, hash);
    Ok(())
}

/// Commit a batch within the transaction `tx` (see [`Store::commit_batch`]); the caller commits.
pub(crate) fn commit_in(
    tx: &rusqlite::Transaction<'_>,
    batch: &CommitBatch,
    joint: &super::joint::JointSettings,
    chain: Option<HashAlg>,
) -> StoreResult<Vec<RecordResult>> {
    if let Some(fence) = &batch.fence {
        check_fence(tx, fence)?;
    }
    let now = now();

    // 1. What the store holds for the batch's keys and counters.
    let mut existing: HashMap<BusinessKey, ExistingCase> = HashMap::new();
    let mut counters: HashMap<CounterKey, u32> = HashMap::new();
    {
        let mut find_case = tx.prepare_cached(
            "SELECT c.id, c.unified_code, c.current_version, c.record_hash, c.withdrawn, c.source_id, r.received_at,
                    c.source_updated_at
             FROM cases c
             LEFT JOIN case_versions v ON v.case_id = c.id AND v.version = c.current_version
             LEFT JOIN raw_records r ON r.id = v.raw_id
             WHERE c.agency_credit_code = ?1 AND c.case_type = ?2 AND c.case_number = ?3",
        )?;
        let mut find_counter =
            tx.prepare_cached("SELECT last_seq FROM code_counters WHERE case_type = ?1 AND year = ?2 AND region = ?3")?;
        for record in &batch.records {
            if let Verdict::Accept(a) = &record.verdict {
                if !existing.contains_key(&a.key) {
                    let found = find_case
                        .query_row(
                            params![
                                a.key.agency_credit_code.as_str(),
                                a.key.case_type.as_str(),
                                a.key.case_number.as_str()
                            ],
                            |r| {
                                Ok(ExistingCase {
                                    case_id: r.get(0)?,
                                    code: r.get(1)?,
                                    version: r.get(2)?,
                                    record_hash: r.get(3)?,
                                    withdrawn: r.get(4)?,
                                    source_id: r.get(5)?,
                                    head_received_at: r
                                        .get::<_, Option<String>>(6)?
                                        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                                        .map(|t| t.with_timezone(&Utc)),
                                    head_source_time: r
                                        .get::<_, Option<String>>(7)?
                                        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                                        .map(|t| t.with_timezone(&Utc)),
                                })
                            },
                        )
                        .optional()?;
                    if let Some(found) = found {
                        existing.insert(a.key.clone(), found);
                    }
                }
                if let std::collections::hash_map::Entry::Vacant(slot) =
                    counters.entry(counter_key(&a.key, a.year, &a.region))
                {
                    let counter = slot.key();
                    let last: Option<u32> = find_counter
                        .query_row(params![counter.case_type.as_str(), counter.year, counter.region], |r| {
                            r.get(0)
                        })
                        .optional()?;
                    slot.insert(last.unwrap_or(0));
                }
            }
        }
    }

    let mut delivered: HashSet<(String, String)> = HashSet::new();
    let mut open_before: HashSet<(String, String)> = HashSet::new();
    // Payloads archived already (before this batch, or earlier in it): they make no new link.
    let mut archived: HashSet<(String, String)> = HashSet::new();
    {
        let mut find_raw = tx.prepare_cached(
            "SELECT r.id, EXISTS (SELECT 1 FROM quarantine q WHERE q.raw_id = r.id AND q.status = 'open')
             FROM raw_records r WHERE r.source_id = ?1 AND r.content_hash = ?2",
        )?;
        for record in &batch.records {
            let found: Option<(i64, bool)> = find_raw
                .query_row(params![record.source_id, record.payload_hash], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            if found.is_some() {
                archived.insert((record.source_id.clone(), record.payload_hash.clone()));
            }
            match found {
                Some((_, false)) => {
                    delivered.insert((record.source_id.clone(), record.payload_hash.clone()));
                }
                Some((_, true)) => {
                    open_before.insert((record.source_id.clone(), record.payload_hash.clone()));
                }
                None => {}
            }
        }
    }

    // 2. Decide.
    let plan = plan_batch(&batch.records, &existing, &counters, &delivered)
        .map_err(|e| StoreError::Conflict(e.to_string()))?;
    for change in source_changes(&plan, &batch.records, &existing) {
        insert_audit(tx, &change.audit_entry(), &now)?;
    }

    // 3. Raw archive; each new payload is the next link of its source's chain (SQLite has one
    // writer at a time: the immediate transaction is the chain's lock).
    let mut raw_ids = Vec::with_capacity(batch.records.len());
    {
        let mut insert_raw = tx.prepare_cached(
            "INSERT INTO raw_records (source_id, record_key, content_hash, format, received_at, last_received_at, payload)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)
             ON CONFLICT (source_id, content_hash) DO UPDATE
                SET last_received_at = excluded.last_received_at, times_received = times_received + 1
             RETURNING id",
        )?;
        let mut heads: HashMap<String, (i64, [u8; 32])> = HashMap::new();
        for r in &batch.records {
            let received = r.received_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            let id: i64 = insert_raw.query_row(
                params![
                    r.source_id,
                    r.record_key,
                    r.payload_hash,
                    r.payload_format.as_str(),
                    received,
                    r.payload
                ],
                |row| row.get(0),
            )?;
            raw_ids.push(id);
            if let Some(alg) = chain {
                if archived.insert((r.source_id.clone(), r.payload_hash.clone())) {
                    link_new_row(tx, &mut heads, alg, r, id)?;
                }
            }
        }
        let mut update_head = tx.prepare_cached(
            "INSERT INTO archive_chain_heads (source_id, seq, head_hash, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (source_id) DO UPDATE
                SET seq = excluded.seq, head_hash = excluded.head_hash, updated_at = excluded.updated_at",
        )?;
        for (source, (seq, hash)) in &heads {
            update_head.execute(params![source, seq, hash.as_slice(), now])?;
        }
    }

    // 4. Counters and new cases.
    {
        let mut upsert_counter = tx.prepare_cached(
            "INSERT INTO code_counters (case_type, year, region, last_seq) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (case_type, year, region) DO UPDATE SET last_seq = excluded.last_seq",
        )?;
        for (key, last) in &plan.counters {
            upsert_counter.execute(params![key.case_type.as_str(), key.year, key.region, last])?;
        }
    }
    let mut new_case_ids = Vec::with_capacity(plan.new_cases.len());
    {
        let mut insert_case = tx.prepare_cached(
            "INSERT INTO cases (unified_code, agency_credit_code, case_type, case_number, year, region,
                                current_version, record_hash, withdrawn, source_id, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, '', 0, ?7, ?8, ?8) RETURNING id",
        )?;
        for c in &plan.new_cases {
            let source = &batch.records[c.record_index].source_id;
            let id: i64 = insert_case.query_row(
                params![
                    c.code,
                    c.key.agency_credit_code.as_str(),
                    c.key.case_type.as_str(),
                    c.key.case_number.as_str(),
                    c.year,
                    c.region,
                    source,
                    now
                ],
                |r| r.get(0),
            )?;
            new_case_ids.push(id);
        }
    }

    // 5. Versions, case heads and outbox rows.
    {
        let mut insert_version = tx.prepare_cached(
            "INSERT INTO case_versions (case_id, version, status, raw_id, mapping_id, mapping_version,
                                        record_hash, record, warnings, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        let mut update_case = tx.prepare_cached(
            "UPDATE cases SET current_version = ?2, record_hash = ?3, withdrawn = ?4, source_id = ?5, updated_at = ?6,
                              source_updated_at = ?7
             WHERE id = ?1",
        )?;
        let mut insert_outbox = tx.prepare_cached(
            "INSERT INTO outbox (sink_id, case_id, version, idempotency_key, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (sink_id, idempotency_key) DO NOTHING",
        )?;
        for v in &plan.versions {
            let record = &batch.records[v.record_index];
            let Verdict::Accept(a) = &record.verdict else {
                return Err(StoreError::Task("plan wrote a version for a rejected record".into()));
            };
            let case_id = match v.case {
                CaseRef::Existing(id) => id,
                CaseRef::New(i) => new_case_ids[i],
            };
            let status = if v.withdrawn { "withdrawn" } else { "active" };
            let warnings = if v.same_source_time {
                let mut w = a.warnings.clone();
                w.push(same_source_time_warning(&v.code, v.version));
                to_json(&w)?
            } else {
                to_json(&a.warnings)?
            };
            insert_version.execute(params![
                case_id,
                v.version,
                status,
                raw_ids[v.record_index],
                record.mapping_id,
                record.mapping_version,
                a.record_hash,
                a.record_json,
                warnings,
                now
            ])?;
            update_case.execute(params![
                case_id,
                v.version,
                a.record_hash,
                v.withdrawn,
                record.source_id,
                now,
                a.source_updated_at.map(time)
            ])?;
            for sink in batch.sinks.iter().filter(|s| s.carries(a.key.case_type.as_str())) {
                let key = format!("{}:{}", v.code, v.version);
                insert_outbox.execute(params![sink.id, case_id, v.version, key, now])?;
            }
        }
    }

    // Stale records (older than their case's head by source time), kept for the lineage.
    if !plan.stale.is_empty() {
        let mut insert_stale = tx.prepare_cached(
            "INSERT INTO stale_versions (case_id, head_version, raw_id, mapping_id, mapping_version, record_hash,
                                         record, source_updated_at, warnings, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for st in &plan.stale {
            let record = &batch.records[st.record_index];
            let Verdict::Accept(a) = &record.verdict else {
                return Err(StoreError::Task("plan kept a rejected record as stale".into()));
            };
            let case_id = match st.case {
                CaseRef::Existing(id) => id,
                CaseRef::New(i) => new_case_ids[i],
            };
            insert_stale.execute(params![
                case_id,
                st.head_version,
                raw_ids[st.record_index],
                record.mapping_id,
                record.mapping_version,
                a.record_hash,
                a.record_json,
                a.source_updated_at.map(time),
                to_json(&a.warnings)?,
                now
            ])?;
        }
    }

    // Cases awaiting supplement, in step with the new versions.
    {
        let case_ids: Vec<i64> = plan
            .versions
            .iter()
            .map(|v| match v.case {
                CaseRef::Existing(id) => id,
                CaseRef::New(i) => new_case_ids[i],
            })
            .collect();
        let (withdrawn_penalties, publicity) = super::publicity::publicity_changes(&batch.records, &plan, &case_ids);
        write_publicity(tx, &withdrawn_penalties, &publicity, &now)?;
        let (clear, awaiting) = super::supplement::awaiting_changes(&batch.records, &plan, &case_ids);
        if !clear.is_empty() {
            let mut delete = tx.prepare_cached("DELETE FROM awaiting_supplement WHERE case_id = ?1")?;
            for id in &clear {
                delete.execute([id])?;
            }
        }
        if !awaiting.is_empty() {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO awaiting_supplement (case_id, unified_code, agency_credit_code, case_type, case_number,
                                                  source_id, fields, since, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
                 ON CONFLICT (case_id) DO UPDATE
                    SET fields = excluded.fields, source_id = excluded.source_id, updated_at = excluded.updated_at",
            )?;
            for a in &awaiting {
                upsert.execute(params![
                    a.case_id,
                    a.code,
                    a.key.agency_credit_code.as_str(),
                    a.key.case_type.as_str(),
                    a.key.case_number.as_str(),
                    a.source_id,
                    a.fields,
                    now
                ])?;
            }
        }
    }

    // 6. Quarantine, and entries resolved by this batch.
    let mut results = Vec::with_capacity(batch.records.len());
    {
        let mut insert_q = tx.prepare_cached(
            "INSERT INTO quarantine (raw_id, source_id, record_key, status, violations, rules, mapping_id,
                                     mapping_version, created_at, updated_at, case_number, target_name, target_id)
             VALUES (?1, ?2, ?3, 'open', ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10, ?11)
             ON CONFLICT (raw_id) WHERE status = 'open' DO UPDATE
                SET violations = excluded.violations, rules = excluded.rules, mapping_id = excluded.mapping_id,
                    mapping_version = excluded.mapping_version, updated_at = excluded.updated_at,
                    case_number = excluded.case_number, target_name = excluded.target_name,
                    target_id = excluded.target_id
             RETURNING id",
        )?;
        let mut update_replayed_q = tx.prepare_cached(
            "UPDATE quarantine SET violations = ?2, rules = ?3, mapping_id = ?4, mapping_version = ?5,
                    updated_at = ?6, attempts = attempts + 1, case_number = COALESCE(?7, case_number),
                    target_name = COALESCE(?8, target_name), target_id = COALESCE(?9, target_id)
             WHERE id = ?1",
        )?;
        let mut resolve_q = tx.prepare_cached(
            "UPDATE quarantine SET status = 'replayed', updated_at = ?2, attempts = attempts + ?3,
                                   note = COALESCE(?5, note), resolved_code = COALESCE(?6, resolved_code),
                                   resolved_version = COALESCE(?7, resolved_version),
                                   mapping_id = ?8, mapping_version = ?9
             WHERE (raw_id = ?1 AND status = 'open') OR id = ?4",
        )?;
        for (i, decision) in plan.decisions.iter().enumerate() {
            let record = &batch.records[i];
            let result = match decision {
                Decision::Quarantine(violations) => {
                    let vjson = to_json(violations)?;
                    let rules = rules_text(violations);
                    let id = match record.replay_of {
                        Some(qid) => {
                            update_replayed_q.execute(params![
                                qid,
                                vjson,
                                rules,
                                record.mapping_id,
                                record.mapping_version,
                                now,
                                record.labels.case_number,
                                record.labels.target_name,
                                record.labels.target_id
                            ])?;
                            qid
                        }
                        None => insert_q.query_row(
                            params![
                                raw_ids[i],
                                record.source_id,
                                record.record_key,
                                vjson,
                                rules,
                                record.mapping_id,
                                record.mapping_version,
                                now,
                                record.labels.case_number,
                                record.labels.target_name,
                                record.labels.target_id
                            ],
                            |r| r.get(0),
                        )?,
                    };
                    if record.replay_of.is_none()
                        && open_before.contains(&(record.source_id.clone(), record.payload_hash.clone()))
                    {
                        // Re-sent while waiting in the quarantine: still there, nothing new.
                        RecordResult::Unchanged { code: String::new() }
                    } else {
                        RecordResult::Quarantined { quarantine_id: id }
                    }
                }
                Decision::Unchanged { code } => {
                    if matches!(record.verdict, Verdict::Accept(_)) {
                        resolve_q.execute(resolve_params(raw_ids[i], record, &now, &plan, i))?;
                    }
                    RecordResult::Unchanged { code: code.clone() }
                }
                Decision::Version(vi) => {
                    resolve_q.execute(resolve_params(raw_ids[i], record, &now, &plan, i))?;
                    plan.version_result(*vi)
                }
                Decision::Stale(si) => {
                    resolve_q.execute(resolve_params(raw_ids[i], record, &now, &plan, i))?;
                    plan.stale_result(*si)
                }
            };
            results.push(result);
        }
        let mut supersede = tx.prepare_cached(
            "UPDATE quarantine SET status = 'superseded', note = ?3, updated_at = ?4
             WHERE status = 'open' AND source_id = ?1 AND record_key = ?2",
        )?;
        for s in superseding(&plan, &batch.records) {
            supersede.execute(params![s.source_id, s.record_key, s.note, now])?;
        }
    }

    // The joint-inspection index, in the same transaction (see store/joint.rs).
    if joint.enabled {
        let versions: Vec<(usize, i64, bool)> = plan
            .versions
            .iter()
            .map(|v| {
                let id = match v.case {
                    CaseRef::Existing(id) => id,
                    CaseRef::New(i) => new_case_ids[i],
                };
                (v.record_index, id, v.withdrawn)
            })
            .collect();
        let changes = super::joint::changes_of(&batch.records, &versions);
        if !changes.is_empty() {
            let sinks = super::types::sinks_carrying(&batch.sinks, super::joint::JOINT_RECORD_TYPE);
            super::joint_sqlite::apply(tx, &changes, joint, &sinks, &now)?;
        }
    }

    // 7. Cursors.
    {
        let mut upsert_cursor = tx.prepare_cached(
            "INSERT INTO source_cursors (source_id, cursor, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (source_id) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
        )?;
        for (source, cursor) in &batch.cursors {
            upsert_cursor.execute(params![source, cursor, now])?;
        }
    }
    Ok(results)
}

fn quarantine_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(QuarantineEntryRaw,)> {
    Ok((QuarantineEntryRaw {
        id: r.get(0)?,
        raw_id: r.get(1)?,
        source_id: r.get(2)?,
        record_key: r.get(3)?,
        status: r.get(4)?,
        violations: r.get(5)?,
        mapping_id: r.get(6)?,
        mapping_version: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
        attempts: r.get(10)?,
        note: r.get(11)?,
        labels: RecordLabels {
            case_number: r.get(12)?,
            target_name: r.get(13)?,
            target_id: r.get(14)?,
        },
        resolved_code: r.get(15)?,
        resolved_version: r.get(16)?,
    },))
}

struct QuarantineEntryRaw {
    id: i64,
    raw_id: i64,
    source_id: String,
    record_key: String,
    status: String,
    violations: String,
    mapping_id: String,
    mapping_version: i64,
    created_at: String,
    updated_at: String,
    attempts: i32,
    note: Option<String>,
    labels: RecordLabels,
    resolved_code: Option<String>,
    resolved_version: Option<i32>,
}

impl QuarantineEntryRaw {
    fn decode(self) -> StoreResult<QuarantineEntry> {
        Ok(QuarantineEntry {
            id: self.id,
            raw_id: self.raw_id,
            source_id: self.source_id,
            record_key: self.record_key,
            status: QuarantineStatus::parse(&self.status)
                .ok_or_else(|| StoreError::Corrupt(format!("quarantine status {:?}", self.status)))?,
            violations: parse_json(&self.violations)?,
            mapping_id: self.mapping_id,
            mapping_version: self.mapping_version,
            created_at: parse_time(&self.created_at)?,
            updated_at: parse_time(&self.updated_at)?,
            attempts: self.attempts,
            note: self.note,
            labels: self.labels,
            resolution: self.resolved_code.map(|code| Resolution {
                code,
                version: self.resolved_version,
            }),
        })
    }
}

/// The WHERE clause of a quarantine filter (`paging`: with `before_id`), numbered parameters
/// from `?1`, and its values.
fn quarantine_conditions(f: &QuarantineFilter, paging: bool) -> (String, Vec<SqlValue>) {
    let mut conditions: Vec<String> = vec!["1".into()];
    let mut values: Vec<SqlValue> = Vec::new();
    let mut add = |condition: &str, value: SqlValue, values: &mut Vec<SqlValue>| {
        values.push(value);
        conditions.push(condition.replace('?', &format!("?{}", values.len())));
    };
    let text = |s: &str| SqlValue::Text(s.to_string());
    let stamp = |t: &DateTime<Utc>| SqlValue::Text(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
    if let Some(v) = &f.source_id {
        add("source_id = ?", text(v), &mut values);
    }
    if let Some(sources) = &f.sources {
        let list = serde_json::to_string(sources).unwrap_or_else(|_| "[]".into());
        add(
            "source_id IN (SELECT value FROM json_each(?))",
            SqlValue::Text(list),
            &mut values,
        );
    }
    if let Some(v) = &f.rule {
        add("instr(rules, '|' || ? || '|') > 0", text(v), &mut values);
    }
    if let Some(v) = f.status {
        add("status = ?", text(v.as_str()), &mut values);
    }
    if let Some(v) = f.id {
        add("id = ?", SqlValue::Integer(v), &mut values);
    }
    if let Some(v) = &f.since {
        add("created_at >= ?", stamp(v), &mut values);
    }
    if let Some(v) = &f.until {
        add("created_at < ?", stamp(v), &mut values);
    }
    if let (Some(v), true) = (f.before_id, paging) {
        add("id < ?", SqlValue::Integer(v), &mut values);
    }
    if let Some(q) = f.search.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        let id = normalizer::standards::normalise::normalise_identifier(q);
        values.push(text(q));
        let n = values.len();
        let mut forms = Vec::new();
        for form in super::types::stored_forms(&id) {
            values.push(SqlValue::Text(form));
            forms.push(format!("?{}", values.len()));
        }
        conditions.push(format!(
            "(record_key = ?{n} OR case_number = ?{n} OR target_id IN ({}) OR instr(target_name, ?{n}) > 0)",
            forms.join(", ")
        ));
    }
    (conditions.join(" AND "), values)
}

const QUARANTINE_COLUMNS: &str = "id, raw_id, source_id, record_key, status, violations, mapping_id, mapping_version, created_at, updated_at, attempts, note, case_number, target_name, target_id, resolved_code, resolved_version";

const CASE_COLUMNS: &str = "c.id, c.unified_code, c.agency_credit_code, c.case_type, c.case_number, c.year, c.region,
     c.current_version, c.withdrawn, c.created_at, c.updated_at, v.record";

/// A case row as read from SQLite, before decoding.
struct CaseRowRaw {
    id: i64,
    unified_code: String,
    agency_credit_code: String,
    case_type: String,
    case_number: String,
    year: i32,
    region: String,
    version: i32,
    withdrawn: bool,
    created_at: String,
    updated_at: String,
    record: String,
}

fn case_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CaseRowRaw> {
    Ok(CaseRowRaw {
        id: r.get(0)?,
        unified_code: r.get(1)?,
        agency_credit_code: r.get(2)?,
        case_type: r.get(3)?,
        case_number: r.get(4)?,
        year: r.get(5)?,
        region: r.get(6)?,
        version: r.get(7)?,
        withdrawn: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
        record: r.get(11)?,
    })
}

fn decode_case(t: CaseRowRaw) -> StoreResult<CaseRow> {
    Ok(CaseRow {
        id: t.id,
        unified_code: t.unified_code,
        key: BusinessKey {
            agency_credit_code: parse_credit_code(&t.agency_credit_code)?,
            case_type: parse_case_type(&t.case_type)?,
            case_number: parse_case_number(&t.case_number)?,
        },
        year: t.year,
        region: t.region,
        version: t.version,
        withdrawn: t.withdrawn,
        created_at: parse_time(&t.created_at)?,
        updated_at: parse_time(&t.updated_at)?,
        record: parse_json(&t.record)?,
    })
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn catalogue(&self) -> &dyn super::catalogue::CatalogueStore {
        self
    }

    fn officers(&self) -> &dyn super::officers::OfficerStore {
        self
    }

    fn cluster(&self) -> &dyn super::cluster::ClusterStore {
        self
    }

    fn supplements(&self) -> &dyn super::supplement::SupplementStore {
        self
    }

    fn publicity(&self) -> &dyn super::publicity::PublicityStore {
        self
    }

    fn archive(&self) -> &dyn super::archive::ArchiveStore {
        self
    }

    fn sealed(&self) -> &dyn super::sealed::SealedStore {
        self
    }

    fn attachments(&self) -> &dyn super::attachments::AttachmentStore {
        self
    }

    fn oversight(&self) -> &dyn super::oversight::OversightStore {
        self
    }

    async fn plan_numbers(&self) -> StoreResult<Vec<String>> {
        self.with_conn(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT case_number FROM cases WHERE case_type = 'plan' AND NOT withdrawn")?;
            let numbers = stmt
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(numbers)
        })
        .await
    }

    fn joint(&self) -> &dyn super::joint::JointStore {
        self
    }

    async fn migrate(&self) -> StoreResult<Vec<String>> {
        self.with_conn(|conn| {
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)",
            )?;
            let mut applied = Vec::new();
            for (name, sql) in MIGRATIONS {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let done: Option<String> = tx
                    .query_row("SELECT name FROM schema_migrations WHERE name = ?1", [name], |r| {
                        r.get(0)
                    })
                    .optional()?;
                if done.is_none() {
                    tx.execute_batch(sql)?;
                    tx.execute(
                        "INSERT INTO schema_migrations (name, applied_at) VALUES (?1, ?2)",
                        params![name, now()],
                    )?;
                    applied.push(name.to_string());
                }
                tx.commit()?;
            }
            Ok(applied)
        })
        .await
    }

    async fn commit_batch(&self, batch: &CommitBatch) -> StoreResult<Vec<RecordResult>> {
        let joint = self.joint.get();
        let chain = self.archive.get();
        // On a multi-threaded runtime, commit on this worker (block_in_place) without copying
        // the batch; otherwise copy it onto the blocking pool.
        if tokio::runtime::Handle::current().runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
            return tokio::task::block_in_place(|| {
                let mut conn = self
                    .conn
                    .lock()
                    .map_err(|_| StoreError::Task("SQLite connection mutex poisoned".into()))?;
                commit_sync(&mut conn, batch, &joint, chain)
            });
        }
        let batch = batch.clone();
        self.with_conn(move |conn| commit_sync(conn, &batch, &joint, chain))
            .await
    }

    async fn cursor(&self, source_id: &str) -> StoreResult<Option<String>> {
        let source_id = source_id.to_string();
        self.with_conn(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT cursor FROM source_cursors WHERE source_id = ?1",
                    [source_id],
                    |r| r.get(0),
                )
                .optional()?)
        })
        .await
    }

    async fn raw_record(&self, id: i64) -> StoreResult<RawRecord> {
        self.with_conn(move |conn| {
            let row = conn
                .query_row(
                    "SELECT id, source_id, record_key, content_hash, format, received_at, payload, last_received_at, times_received
                 FROM raw_records WHERE id = ?1",
                    [id],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, String>(4)?,
                            r.get::<_, String>(5)?,
                            r.get::<_, Vec<u8>>(6)?,
                            r.get::<_, String>(7)?,
                            r.get::<_, i32>(8)?,
                        ))
                    },
                )
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("raw record {id}")))?;
            Ok(RawRecord {
                id: row.0,
                source_id: row.1,
                record_key: row.2,
                content_hash: row.3,
                format: PayloadFormat::parse(&row.4)
                    .ok_or_else(|| StoreError::Corrupt(format!("payload format {:?}", row.4)))?,
                received_at: parse_time(&row.5)?,
                payload: super::compress::payload_of(row.6, super::compress::CODEC_PLAIN)?,
                last_received_at: parse_time(&row.7)?,
                times_received: row.8,
            })
        })
        .await
    }

    async fn quarantine_list(&self, filter: &QuarantineFilter) -> StoreResult<Vec<QuarantineEntry>> {
        let f = filter.clone();
        self.with_conn(move |conn| {
            let (conditions, mut values) = quarantine_conditions(&f, true);
            values.push(SqlValue::Integer(f.limit.unwrap_or(100)));
            values.push(SqlValue::Integer(f.offset.unwrap_or(0).max(0)));
            let sql = format!(
                "SELECT {QUARANTINE_COLUMNS} FROM quarantine WHERE {conditions} ORDER BY id DESC LIMIT ?{} OFFSET ?{}",
                values.len() - 1,
                values.len()
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(values), quarantine_from_row)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(row?.0.decode()?);
            }
            Ok(out)
        })
        .await
    }

    async fn quarantine_count(&self, filter: &QuarantineFilter) -> StoreResult<i64> {
        let f = filter.clone();
        self.with_conn(move |conn| {
            let (conditions, values) = quarantine_conditions(&f, false);
            let sql = format!("SELECT count(*) FROM quarantine WHERE {conditions}");
            let mut stmt = conn.prepare_cached(&sql)?;
            Ok(stmt.query_row(rusqlite::params_from_iter(values), |r| r.get(0))?)
        })
        .await
    }

    async fn quarantine_ignore_matching(&self, filter: &QuarantineFilter, reason: &str) -> StoreResult<u64> {
        let f = QuarantineFilter {
            status: Some(QuarantineStatus::Open),
            ..filter.clone()
        };
        let reason = reason.to_string();
        self.with_conn(move |conn| {
            let (conditions, mut values) = quarantine_conditions(&f, false);
            values.push(SqlValue::Text(reason));
            values.push(SqlValue::Text(time(Utc::now())));
            let sql = format!(
                "UPDATE quarantine SET status = 'ignored', note = ?{}, updated_at = ?{} WHERE {conditions}",
                values.len() - 1,
                values.len()
            );
            let changed = conn.execute(&sql, rusqlite::params_from_iter(values))?;
            Ok(changed as u64)
        })
        .await
    }

    async fn quarantine_counts(&self, status: QuarantineStatus) -> StoreResult<QuarantineCounts> {
        self.with_conn(move |conn| {
            let mut by_source: BTreeMap<String, i64> = BTreeMap::new();
            let mut by_rule: BTreeMap<(String, String), i64> = BTreeMap::new();
            let mut stmt = conn.prepare_cached("SELECT source_id, rules FROM quarantine WHERE status = ?1")?;
            let mut rows = stmt.query([status.as_str()])?;
            while let Some(row) = rows.next()? {
                let source: String = row.get(0)?;
                let rules: String = row.get(1)?;
                let mut seen: Vec<&str> = Vec::new();
                for rule in rules.split('|').filter(|r| !r.is_empty()) {
                    if !seen.contains(&rule) {
                        seen.push(rule);
                        *by_rule.entry((source.clone(), rule.to_string())).or_default() += 1;
                    }
                }
                *by_source.entry(source).or_default() += 1;
            }
            Ok(QuarantineCounts {
                by_source: by_source.into_iter().collect(),
                by_rule: by_rule.into_iter().map(|((s, r), n)| (s, r, n)).collect(),
            })
        })
        .await
    }

    async fn quarantine_get(&self, id: i64) -> StoreResult<QuarantineEntry> {
        let filter = QuarantineFilter {
            id: Some(id),
            limit: Some(1),
            ..Default::default()
        };
        self.quarantine_list(&filter)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::NotFound(format!("quarantine entry {id}")))
    }

    async fn quarantine_set_status(&self, id: i64, status: QuarantineStatus, note: Option<&str>) -> StoreResult<()> {
        let note = note.map(str::to_string);
        self.with_conn(move |conn| {
            let n = conn.execute(
                "UPDATE quarantine SET status = ?2, note = COALESCE(?3, note), updated_at = ?4 WHERE id = ?1",
                params![id, status.as_str(), note, now()],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("quarantine entry {id}")));
            }
            Ok(())
        })
        .await
    }

    async fn quarantine_update_violations(&self, id: i64, violations: &[Violation]) -> StoreResult<()> {
        let vjson = to_json(&violations)?;
        let rules = rules_text(violations);
        self.with_conn(move |conn| {
            conn.execute(
                "UPDATE quarantine SET violations = ?2, rules = ?3, updated_at = ?4, attempts = attempts + 1 WHERE id = ?1",
                params![id, vjson, rules, now()],
            )?;
            Ok(())
        })
        .await
    }

    async fn cases(&self, filter: &CaseFilter) -> StoreResult<Vec<CaseRow>> {
        let f = filter.clone();
        self.with_conn(move |conn| {
            let order = if f.newest_first { "c.id DESC" } else { "c.id" };
            let sql = format!(
                "SELECT {CASE_COLUMNS} FROM cases c
                 JOIN case_versions v ON v.case_id = c.id AND v.version = c.current_version
                 WHERE (?1 IS NULL OR c.source_id = ?1) AND c.id > ?2
                 ORDER BY {order} LIMIT ?3 OFFSET ?4"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(
                params![
                    f.source_id,
                    f.after_id.unwrap_or(0),
                    f.limit.unwrap_or(1000),
                    f.offset.unwrap_or(0).max(0)
                ],
                case_from_row,
            )?;
            let mut out = Vec::new();
            for row in rows {
                out.push(decode_case(row?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn case_by_code(&self, code: &str) -> StoreResult<(CaseRow, Vec<CaseVersionRow>)> {
        let code = normalizer::standards::normalise::normalise_identifier(code);
        self.with_conn(move |conn| {
            let sql = format!(
                "SELECT {CASE_COLUMNS} FROM cases c
                 JOIN case_versions v ON v.case_id = c.id AND v.version = c.current_version
                 WHERE c.unified_code = ?1"
            );
            let case = conn
                .query_row(&sql, [&code], case_from_row)
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("case {code}")))?;
            let case = decode_case(case)?;
            let mut stmt = conn.prepare_cached(
                "SELECT v.version, v.status, v.raw_id, v.mapping_id, v.mapping_version, v.record_hash, v.record,
                        v.warnings, v.created_at, r.source_id, 0 AS kind
                 FROM case_versions v JOIN raw_records r ON r.id = v.raw_id
                 WHERE v.case_id = ?1
                 UNION ALL
                 SELECT s.head_version, 'stale', s.raw_id, s.mapping_id, s.mapping_version, s.record_hash, s.record,
                        s.warnings, s.created_at, r.source_id, s.id AS kind
                 FROM stale_versions s JOIN raw_records r ON r.id = s.raw_id
                 WHERE s.case_id = ?1
                 ORDER BY 1, 11",
            )?;
            let rows = stmt.query_map([case.id], |r| {
                Ok((
                    r.get::<_, i32>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, String>(8)?,
                    r.get::<_, String>(9)?,
                ))
            })?;
            let mut versions = Vec::new();
            for row in rows {
                let r = row?;
                versions.push(CaseVersionRow {
                    version: r.0,
                    status: r.1,
                    raw_id: r.2,
                    mapping_id: r.3,
                    mapping_version: r.4,
                    record_hash: r.5,
                    record: parse_json(&r.6)?,
                    warnings: parse_json(&r.7)?,
                    created_at: parse_time(&r.8)?,
                    source_id: r.9,
                });
            }
            Ok((case, versions))
        })
        .await
    }

    async fn case_code_by_key(&self, key: &BusinessKey) -> StoreResult<Option<String>> {
        let key = key.clone();
        self.with_conn(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT unified_code FROM cases
                     WHERE agency_credit_code = ?1 AND case_type = ?2 AND case_number = ?3",
                    params![
                        key.agency_credit_code.as_str(),
                        key.case_type.as_str(),
                        key.case_number.as_str()
                    ],
                    |r| r.get(0),
                )
                .optional()?)
        })
        .await
    }

    async fn case_codes_by_number(
        &self,
        number: &str,
        after_id: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<(i64, String)>> {
        let number = number.to_string();
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, unified_code FROM cases WHERE case_number = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![number, after_id.unwrap_or(0), limit], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn case_codes_by_target(
        &self,
        id_number: &str,
        after_id: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<(i64, String)>> {
        let id_number = id_number.to_string();
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT c.id, c.unified_code FROM cases c
                 WHERE c.id IN (SELECT case_id FROM case_versions
                                WHERE json_extract(record, '$.target.id_number') = ?1)
                   AND c.id > ?2
                 ORDER BY c.id LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![id_number, after_id.unwrap_or(0), limit], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn outbox_for_case(&self, case_id: i64) -> StoreResult<Vec<OutboxRow>> {
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, sink_id, case_id, version, idempotency_key, status, attempts FROM outbox
                 WHERE case_id = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([case_id], |r| {
                Ok(OutboxRow {
                    id: r.get(0)?,
                    sink_id: r.get(1)?,
                    case_id: r.get(2)?,
                    version: r.get(3)?,
                    idempotency_key: r.get(4)?,
                    status: r.get(5)?,
                    attempts: r.get(6)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        self.with_conn(|conn| {
            Ok(conn.query_row(
                "SELECT (SELECT count(*) FROM raw_records), (SELECT count(*) FROM cases),
                        (SELECT count(*) FROM case_versions),
                        (SELECT count(*) FROM quarantine WHERE status = 'open'),
                        (SELECT count(*) FROM quarantine),
                        (SELECT count(*) FROM outbox WHERE status = 'pending')",
                [],
                |r| {
                    Ok(StoreStats {
                        raw_records: r.get(0)?,
                        cases: r.get(1)?,
                        versions: r.get(2)?,
                        quarantine_open: r.get(3)?,
                        quarantine_total: r.get(4)?,
                        outbox_pending: r.get(5)?,
                    })
                },
            )?)
        })
        .await
    }

    async fn audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        let e = entry.clone();
        self.with_conn(move |conn| insert_audit(conn, &e, &now())).await
    }

    async fn audit_search(&self, filter: &AuditFilter) -> StoreResult<(Vec<AuditRecord>, i64)> {
        let page = console::audit_page(filter, Dialect::Sqlite);
        let count = console::audit_count(filter, Dialect::Sqlite);
        self.with_conn(move |conn| {
            let items = query_audit(conn, &page.sql, rusqlite::params_from_iter(sql_values(page.params)))?;
            let total = conn.query_row(&count.sql, rusqlite::params_from_iter(sql_values(count.params)), |r| {
                r.get(0)
            })?;
            Ok((items, total))
        })
        .await
    }

    async fn record_fates(&self, filter: &RecordFilter) -> StoreResult<(Vec<RecordFate>, i64)> {
        let page = console::records_page(filter, Dialect::Sqlite);
        let count = console::records_count(filter, Dialect::Sqlite);
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare_cached(&page.sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(sql_values(page.params)), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?;
            let mut heads = Vec::new();
            for row in rows {
                let (raw_id, source_id, record_key, received_at) = row?;
                heads.push(console::RawHead {
                    raw_id,
                    source_id,
                    record_key,
                    received_at: parse_time(&received_at)?,
                });
            }
            let ids = serde_json::to_string(&heads.iter().map(|h| h.raw_id).collect::<Vec<_>>())
                .map_err(|e| StoreError::Task(e.to_string()))?;
            let mut lookups = console::FateLookups::default();
            let mut stmt = conn.prepare_cached(
                "SELECT v.raw_id, c.unified_code, v.version, c.case_number
                 FROM case_versions v JOIN cases c ON c.id = v.case_id
                 WHERE v.raw_id IN (SELECT value FROM json_each(?1))",
            )?;
            for row in stmt.query_map([&ids], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))? {
                lookups.versions.push(row?);
            }
            let mut stmt = conn.prepare_cached(
                "SELECT s.raw_id, c.unified_code, s.head_version
                 FROM stale_versions s JOIN cases c ON c.id = s.case_id
                 WHERE s.raw_id IN (SELECT value FROM json_each(?1))",
            )?;
            for row in stmt.query_map([&ids], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))? {
                lookups.stale.push(row?);
            }
            let mut stmt = conn.prepare_cached(
                "SELECT raw_id, id, status, rules, case_number FROM quarantine
                 WHERE raw_id IN (SELECT value FROM json_each(?1))",
            )?;
            let rows = stmt.query_map([&ids], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            })?;
            for row in rows {
                let (raw_id, id, status, rules, number) = row?;
                let status = QuarantineStatus::parse(&status)
                    .ok_or_else(|| StoreError::Corrupt(format!("quarantine status {status:?}")))?;
                let mut list: Vec<String> = Vec::new();
                for rule in rules.split('|').filter(|r| !r.is_empty()) {
                    if !list.iter().any(|r| r == rule) {
                        list.push(rule.to_string());
                    }
                }
                lookups.entries.push(console::EntryFact {
                    raw_id,
                    id,
                    status,
                    rules: list,
                    case_number: number,
                });
            }
            let total = conn.query_row(&count.sql, rusqlite::params_from_iter(sql_values(count.params)), |r| {
                r.get(0)
            })?;
            Ok((console::fates(heads, &lookups), total))
        })
        .await
    }

    async fn case_count(&self, filter: &CaseFilter) -> StoreResult<i64> {
        let source = filter.source_id.clone();
        self.with_conn(move |conn| {
            Ok(conn.query_row(
                "SELECT count(*) FROM cases WHERE (?1 IS NULL OR source_id = ?1)",
                [source],
                |r| r.get(0),
            )?)
        })
        .await
    }

    async fn audit_log(&self, limit: i64) -> StoreResult<Vec<AuditRecord>> {
        self.with_conn(move |conn| {
            query_audit(
                conn,
                "SELECT id, at, actor, action, subject, detail FROM audit_log ORDER BY id DESC LIMIT ?1",
                [limit],
            )
        })
        .await
    }
}

/// The console's statement parameters as SQLite values (times as stored: RFC 3339 text).
pub(crate) fn sql_values(params: Vec<console::Param>) -> Vec<SqlValue> {
    params
        .into_iter()
        .map(|p| match p {
            console::Param::Text(t) => SqlValue::Text(t),
            console::Param::Int(i) => SqlValue::Integer(i),
            console::Param::Time(t) => SqlValue::Text(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            console::Param::TextList(list) => {
                SqlValue::Text(serde_json::to_string(&list).unwrap_or_else(|_| "[]".into()))
            }
        })
        .collect()
}

/// Append an audit entry at `now` (text from [`time`]) on `conn`, inside the caller's transaction,
/// identifiers masked ([`AuditEntry::masked`]).
pub(crate) fn insert_audit(conn: &Connection, entry: &AuditEntry, now: &str) -> StoreResult<()> {
    let entry = entry.masked();
    conn.execute(
        "INSERT INTO audit_log (at, actor, action, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![now, entry.actor, entry.action, entry.subject, to_json(&entry.detail)?],
    )?;
    Ok(())
}

/// Audit entries selected by `sql`, whose columns are `id, at, actor, action, subject, detail`.
pub(crate) fn query_audit(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> StoreResult<Vec<AuditRecord>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let r = row?;
        out.push(AuditRecord {
            id: r.0,
            at: parse_time(&r.1)?,
            actor: r.2,
            action: r.3,
            subject: r.4,
            detail: parse_json(&r.5)?,
        });
    }
    Ok(out)
}

/// Refuse the transaction's commit unless `fence` still holds its job's lease.
pub(crate) fn check_fence(conn: &Connection, fence: &super::cluster::Fence) -> StoreResult<()> {
    let held = conn
        .query_row(
            "SELECT 1 FROM job_leases WHERE job = ?1 AND holder = ?2 AND epoch = ?3",
            params![fence.job, fence.holder, fence.epoch],
            |_| Ok(()),
        )
        .optional()?;
    match held {
        Some(()) => Ok(()),
        None => Err(StoreError::Fenced {
            job: fence.job.clone(),
            holder: fence.holder.clone(),
            epoch: fence.epoch,
        }),
    }
}

/// Keep `penalty_publicity` in step with a batch's new versions (in the commit's transaction).
fn write_publicity(
    conn: &Connection,
    withdrawn: &[i64],
    writes: &[super::publicity::PublicityWrite<'_>],
    now: &str,
) -> StoreResult<()> {
    if !withdrawn.is_empty() {
        let mut stmt =
            conn.prepare_cached("UPDATE penalty_publicity SET withdrawn = 1, updated_at = ?2 WHERE case_id = ?1")?;
        for id in withdrawn {
            stmt.execute(params![id, now])?;
        }
    }
    if writes.is_empty() {
        return Ok(());
    }
    let mut upsert = conn.prepare_cached(
        "INSERT INTO penalty_publicity (case_id, unified_code, agency_credit_code, agency_name, source_id, version,
                                        decision_date, deadline, publicity_date, withdrawn, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10)
         ON CONFLICT (case_id) DO UPDATE
            SET agency_name = excluded.agency_name, source_id = excluded.source_id, version = excluded.version,
                decision_date = excluded.decision_date, deadline = excluded.deadline,
                publicity_date = excluded.publicity_date, withdrawn = 0, updated_at = excluded.updated_at",
    )?;
    for w in writes {
        upsert.execute(params![
            w.case_id,
            w.code,
            w.agency_credit_code,
            w.facts.agency_name,
            w.source_id,
            w.version,
            w.facts.decision_date.to_string(),
            w.facts.deadline.map(|d| d.to_string()),
            w.facts.publicity_date.map(|d| d.to_string()),
            now
        ])?;
    }
    Ok(())
}
