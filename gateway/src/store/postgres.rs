//! PostgreSQL backend: the production store, shared by several gateway instances.
//!
//! Connections come from a deadpool pool. A batch commits in ONE transaction of about a dozen
//! set-wise statements: each binds the batch's values as arrays and expands them with `UNNEST`,
//! so a batch of a thousand records costs a dozen round trips, not thousands.
//!
//! Concurrent writers are made safe by the code counters. A batch first locks every counter it
//! may number from (in sorted key order, so two batches cannot deadlock on them) and only then
//! reads the existing cases of its business keys. Whoever creates or changes a case of a counter
//! holds that counter's row lock until commit, so what the batch reads after the lock is final:
//! no unified code is handed out twice and none is skipped. What remains (two writers creating
//! the same business key under different counters, a deadlock on shared raw payloads) surfaces
//! as a retryable [`StoreError`] (see [`StoreError::is_retryable`]); the transaction is rolled
//! back and the caller retries the batch.

use super::plan::{plan_batch, CaseRef, CounterKey, Decision, ExistingCase, Plan};
use super::types::*;
use super::{Store, StoreError, StoreResult};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime, Transaction};
use normalizer::{CaseType, Violation};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::{NoTls, Row};

/// Migrations, in order: (name, SQL).
const MIGRATIONS: &[(&str, &str)] = &[(
    "0001_initial",
    include_str!("../../migrations/postgres/0001_initial.sql"),
)];

/// Advisory lock taken (per transaction) while migrating, so instances starting together apply
/// each migration once. The value is "ganzhi" in ASCII followed by 1.
const MIGRATION_LOCK: i64 = 0x6761_6e7a_6869_0001;

/// How long opening one connection may take before the pool gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Type alias for parameter lists.
type Params<'a> = Vec<&'a (dyn ToSql + Sync)>;

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
}

impl PostgresStore {
    /// Connect to `url` (`postgres://user@host:port/db`, or the `key=value` form) with a pool of
    /// at most `pool_size` connections. Takes one connection before returning, so a wrong URL or an
    /// unreachable server fails here, as [`StoreError::Pool`].
    pub async fn connect(url: &str, pool_size: usize) -> StoreResult<PostgresStore> {
        let config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Pool(format!("invalid PostgreSQL URL: {e}")))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        let store = PostgresStore { pool };
        drop(store.client().await?);
        Ok(store)
    }

    async fn client(&self) -> StoreResult<deadpool_postgres::Client> {
        self.pool.get().await.map_err(pool_error)
    }
}

fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => StoreError::Pool(format!("cannot connect: {e}")),
        other => StoreError::Pool(other.to_string()),
    }
}

fn corrupt_json<T: serde::de::DeserializeOwned>(v: Value) -> StoreResult<T> {
    serde_json::from_value(v).map_err(|e| StoreError::Corrupt(format!("stored JSON: {e}")))
}

fn parse_case_type(s: &str) -> StoreResult<CaseType> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("case type {s:?}")))
}

fn to_i32(n: u32) -> StoreResult<i32> {
    i32::try_from(n).map_err(|_| StoreError::Conflict(format!("sequence {n} does not fit the counter")))
}

// ---------------------------------------------------------------------------------------------
// Committing a batch.
// ---------------------------------------------------------------------------------------------

/// Rules of a violation list, derived in SQL from the jsonb violations (`u.violations`).
const RULES_OF_VIOLATIONS: &str =
    "ARRAY(SELECT e.v ->> 'rule' FROM jsonb_array_elements(u.violations) WITH ORDINALITY AS e(v, n) ORDER BY e.n)";

const SQL_COUNTERS_CREATE: &str = "
    INSERT INTO code_counters (case_type, year, region, last_seq)
    SELECT u.case_type, u.year, u.region, 0
    FROM UNNEST($1::text[], $2::int4[], $3::text[]) WITH ORDINALITY AS u(case_type, year, region, n)
    ORDER BY u.n
    ON CONFLICT (case_type, year, region) DO NOTHING";

const SQL_COUNTERS_LOCK: &str = "
    SELECT c.case_type, c.year, c.region, c.last_seq
    FROM code_counters c
    WHERE (c.case_type, c.year, c.region) IN (SELECT * FROM UNNEST($1::text[], $2::int4[], $3::text[]))
    ORDER BY c.case_type COLLATE \"C\", c.year, c.region COLLATE \"C\"
    FOR UPDATE OF c";

const SQL_EXISTING_CASES: &str = "
    SELECT k.n, c.id, c.unified_code, c.current_version, c.record_hash, c.withdrawn
    FROM UNNEST($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS k(credit_code, case_type, case_number, n)
    JOIN cases c ON c.agency_credit_code = k.credit_code AND c.case_type = k.case_type
                AND c.case_number = k.case_number";

const SQL_RAW_STATUS: &str = "
    SELECT u.n, EXISTS (SELECT 1 FROM quarantine q WHERE q.raw_id = r.id AND q.status = 'open')
    FROM UNNEST($1::text[], $2::text[]) WITH ORDINALITY AS u(source_id, content_hash, n)
    JOIN raw_records r ON r.source_id = u.source_id AND r.content_hash = u.content_hash";

const SQL_RAW_ARCHIVE: &str = "
    INSERT INTO raw_records (source_id, record_key, content_hash, format, received_at, last_received_at,
                             times_received, payload)
    SELECT u.source_id, u.record_key, u.content_hash, u.format, u.received_at, u.last_received_at,
           u.times_received, u.payload
    FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[],
                $7::int4[], $8::bytea[])
         AS u(source_id, record_key, content_hash, format, received_at, last_received_at, times_received, payload)
    ON CONFLICT (source_id, content_hash) DO UPDATE
       SET last_received_at = EXCLUDED.last_received_at,
           times_received = raw_records.times_received + EXCLUDED.times_received
    RETURNING id, source_id, content_hash";

const SQL_COUNTERS_UPDATE: &str = "
    UPDATE code_counters c SET last_seq = u.last_seq
    FROM UNNEST($1::text[], $2::int4[], $3::text[], $4::int4[]) AS u(case_type, year, region, last_seq)
    WHERE c.case_type = u.case_type AND c.year = u.year AND c.region = u.region";

const SQL_CASES_INSERT: &str = "
    INSERT INTO cases (unified_code, agency_credit_code, case_type, case_number, year, region,
                       current_version, record_hash, withdrawn, source_id, created_at, updated_at)
    SELECT u.code, u.credit_code, u.case_type, u.case_number, u.year, u.region,
           u.version, u.record_hash, u.withdrawn, u.source_id, $11, $11
    FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int4[], $6::text[], $7::int4[],
                $8::text[], $9::bool[], $10::text[])
         AS u(code, credit_code, case_type, case_number, year, region, version, record_hash, withdrawn, source_id)
    RETURNING id, unified_code";

const SQL_CASES_UPDATE: &str = "
    UPDATE cases c
       SET current_version = u.version, record_hash = u.record_hash, withdrawn = u.withdrawn,
           source_id = u.source_id, updated_at = $6
    FROM UNNEST($1::int8[], $2::int4[], $3::text[], $4::bool[], $5::text[])
         AS u(id, version, record_hash, withdrawn, source_id)
    WHERE c.id = u.id";

const SQL_VERSIONS_INSERT: &str = "
    INSERT INTO case_versions (case_id, version, status, raw_id, mapping_id, mapping_version,
                               record_hash, record, warnings, created_at)
    SELECT u.case_id, u.version, u.status, u.raw_id, u.mapping_id, u.mapping_version,
           u.record_hash, u.record, u.warnings, $10
    FROM UNNEST($1::int8[], $2::int4[], $3::text[], $4::int8[], $5::text[], $6::int8[], $7::text[],
                $8::jsonb[], $9::jsonb[])
         AS u(case_id, version, status, raw_id, mapping_id, mapping_version, record_hash, record, warnings)";

const SQL_OUTBOX_INSERT: &str = "
    INSERT INTO outbox (sink_id, case_id, version, idempotency_key, created_at)
    SELECT s.sink_id, v.case_id, v.version, v.code || ':' || v.version::text, $5
    FROM UNNEST($1::int8[], $2::int4[], $3::text[]) WITH ORDINALITY AS v(case_id, version, code, n)
    CROSS JOIN UNNEST($4::text[]) WITH ORDINALITY AS s(sink_id, m)
    ORDER BY v.n, s.m
    ON CONFLICT (sink_id, idempotency_key) DO NOTHING";

fn sql_quarantine_insert() -> String {
    format!(
        "INSERT INTO quarantine (raw_id, source_id, record_key, status, violations, rules, mapping_id,
                                 mapping_version, created_at, updated_at)
         SELECT u.raw_id, u.source_id, u.record_key, 'open', u.violations, {RULES_OF_VIOLATIONS},
                u.mapping_id, u.mapping_version, $7, $7
         FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::jsonb[], $5::text[], $6::int8[])
              AS u(raw_id, source_id, record_key, violations, mapping_id, mapping_version)
         ON CONFLICT (raw_id) WHERE status = 'open' DO UPDATE
            SET violations = EXCLUDED.violations, rules = EXCLUDED.rules, mapping_id = EXCLUDED.mapping_id,
                mapping_version = EXCLUDED.mapping_version, updated_at = EXCLUDED.updated_at
         RETURNING id, raw_id"
    )
}

fn sql_quarantine_replayed() -> String {
    format!(
        "UPDATE quarantine q
            SET violations = u.violations, rules = {RULES_OF_VIOLATIONS}, mapping_id = u.mapping_id,
                mapping_version = u.mapping_version, updated_at = $5, attempts = q.attempts + 1
         FROM UNNEST($1::int8[], $2::jsonb[], $3::text[], $4::int8[])
              AS u(id, violations, mapping_id, mapping_version)
         WHERE q.id = u.id"
    )
}

/// Marks entries resolved: for each (raw id, replay-of id, increment), every entry that is open
/// with that raw id or has that id becomes `replayed` and gets `attempts + increment`.
const SQL_QUARANTINE_RESOLVE: &str = "
    WITH ops AS (
        SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::int4[]) AS u(raw_id, replay_of, inc)
    ), hit AS (
        SELECT q.id, o.inc FROM ops o JOIN quarantine q ON q.raw_id = o.raw_id AND q.status = 'open'
        UNION ALL
        SELECT q.id, o.inc FROM ops o JOIN quarantine q ON q.id = o.replay_of
    )
    UPDATE quarantine q SET status = 'replayed', updated_at = $4, attempts = q.attempts + h.inc
    FROM (SELECT id, max(inc) AS inc FROM hit GROUP BY id) h
    WHERE q.id = h.id";

const SQL_CURSORS_UPSERT: &str = "
    INSERT INTO source_cursors (source_id, cursor, updated_at)
    SELECT u.source_id, u.cursor, $3 FROM UNNEST($1::text[], $2::text[]) AS u(source_id, cursor)
    ON CONFLICT (source_id) DO UPDATE SET cursor = EXCLUDED.cursor, updated_at = EXCLUDED.updated_at";

/// The head a case has after the batch: its last version's values.
struct Head<'a> {
    version: i32,
    record_hash: &'a str,
    withdrawn: bool,
    source_id: &'a str,
}

/// A new open entry (or, when the raw payload already has one, an update of it).
struct QInsert<'a> {
    raw_id: i64,
    source_id: &'a str,
    record_key: &'a str,
    violations: &'a [Violation],
    mapping_id: &'a str,
    mapping_version: i64,
}

/// A failed replay of an entry.
struct QReplay<'a> {
    id: i64,
    violations: &'a [Violation],
    mapping_id: &'a str,
    mapping_version: i64,
}

/// A payload accepted (or unchanged): its open entry, and the replayed entry, are resolved.
struct QResolve {
    raw_id: i64,
    replay_of: Option<i64>,
}

/// What one record does to the quarantine.
#[derive(Clone, Copy, PartialEq, Eq)]
enum QKind {
    /// Quarantined: open an entry (or update the payload's open one).
    Insert,
    /// A replay failed again: update the replayed entry.
    Replay,
    /// Accepted or unchanged: resolve the payload's open entry and the replayed one.
    Resolve,
    /// A rejected duplicate delivery: nothing.
    Nothing,
}

async fn commit_in(tx: &Transaction<'_>, batch: &CommitBatch) -> StoreResult<Vec<RecordResult>> {
    let now = Utc::now();
    let records = &batch.records;

    // 1. Lock the code counters the batch may number from, in sorted order. A counter row is
    //    created (at 0) first if missing, so there is a row to lock.
    let mut counter_set: BTreeSet<(&'static str, i32, &str)> = BTreeSet::new();
    let mut keys: Vec<&BusinessKey> = Vec::new();
    {
        let mut seen: HashSet<&BusinessKey> = HashSet::new();
        for r in records {
            if let Verdict::Accept(a) = &r.verdict {
                counter_set.insert((a.key.case_type.as_str(), a.year, a.region.as_str()));
                if seen.insert(&a.key) {
                    keys.push(&a.key);
                }
            }
        }
    }
    let mut counters: HashMap<CounterKey, u32> = HashMap::new();
    if !counter_set.is_empty() {
        let types: Vec<&str> = counter_set.iter().map(|c| c.0).collect();
        let years: Vec<i32> = counter_set.iter().map(|c| c.1).collect();
        let regions: Vec<&str> = counter_set.iter().map(|c| c.2).collect();
        let create = tx.prepare_cached(SQL_COUNTERS_CREATE).await?;
        tx.execute(&create, &[&types, &years, &regions]).await?;
        let lock = tx.prepare_cached(SQL_COUNTERS_LOCK).await?;
        for row in tx.query(&lock, &[&types, &years, &regions]).await? {
            let case_type: String = row.try_get(0)?;
            let last: i32 = row.try_get(3)?;
            let key = CounterKey {
                case_type: parse_case_type(&case_type)?,
                year: row.try_get(1)?,
                region: row.try_get(2)?,
            };
            let last = u32::try_from(last)
                .map_err(|_| StoreError::Corrupt(format!("counter {key:?} at {last}")))?;
            counters.insert(key, last);
        }
    }

    // 2. After the locks: the existing cases of the batch's business keys.
    let mut existing: HashMap<BusinessKey, ExistingCase> = HashMap::new();
    if !keys.is_empty() {
        let credit: Vec<&str> = keys.iter().map(|k| k.agency_credit_code.as_str()).collect();
        let types: Vec<&str> = keys.iter().map(|k| k.case_type.as_str()).collect();
        let numbers: Vec<&str> = keys.iter().map(|k| k.case_number.as_str()).collect();
        let stmt = tx.prepare_cached(SQL_EXISTING_CASES).await?;
        for row in tx.query(&stmt, &[&credit, &types, &numbers]).await? {
            let n: i64 = row.try_get(0)?;
            let key = usize::try_from(n - 1)
                .ok()
                .and_then(|i| keys.get(i))
                .ok_or_else(|| StoreError::Corrupt(format!("key ordinal {n}")))?;
            existing.insert(
                (*key).clone(),
                ExistingCase {
                    case_id: row.try_get(1)?,
                    code: row.try_get(2)?,
                    version: row.try_get(3)?,
                    record_hash: row.try_get(4)?,
                    withdrawn: row.try_get(5)?,
                },
            );
        }
    }

    // 3. Which payloads were delivered before: archived and not waiting in the open quarantine
    //    (a duplicate delivery changes nothing), or waiting there.
    let payloads = Payloads::of(records);
    let mut delivered: HashSet<(String, String)> = HashSet::new();
    let mut open_before: Vec<bool> = vec![false; payloads.rows.len()];
    if !payloads.rows.is_empty() {
        let sources: Vec<&str> = payloads.rows.iter().map(|&i| records[i].source_id.as_str()).collect();
        let hashes: Vec<&str> = payloads.rows.iter().map(|&i| records[i].payload_hash.as_str()).collect();
        let stmt = tx.prepare_cached(SQL_RAW_STATUS).await?;
        for row in tx.query(&stmt, &[&sources, &hashes]).await? {
            let n: i64 = row.try_get(0)?;
            let open: bool = row.try_get(1)?;
            let p = usize::try_from(n - 1)
                .ok()
                .filter(|&p| p < payloads.rows.len())
                .ok_or_else(|| StoreError::Corrupt(format!("payload ordinal {n}")))?;
            if open {
                open_before[p] = true;
            } else {
                let r = &records[payloads.rows[p]];
                delivered.insert((r.source_id.clone(), r.payload_hash.clone()));
            }
        }
    }

    // 4. Decide.
    let plan = plan_batch(records, &existing, &counters, &delivered)
        .map_err(|e| StoreError::Conflict(e.to_string()))?;

    // 5. Raw archive.
    let raw_ids = archive_raw(tx, records, &payloads).await?;

    // 6. Counters, cases, versions, outbox.
    write_counters(tx, &plan).await?;
    write_cases_and_versions(tx, batch, &plan, &raw_ids, now).await?;

    // 7. Quarantine, and the entries this batch resolves.
    let quarantine_ids = write_quarantine(tx, batch, &plan, &raw_ids, now).await?;

    // 8. Cursors (the last value per source wins).
    if !batch.cursors.is_empty() {
        let mut last: BTreeMap<&str, &str> = BTreeMap::new();
        for (source, cursor) in &batch.cursors {
            last.insert(source, cursor);
        }
        let sources: Vec<&str> = last.keys().copied().collect();
        let cursors: Vec<&str> = last.values().copied().collect();
        let stmt = tx.prepare_cached(SQL_CURSORS_UPSERT).await?;
        tx.execute(&stmt, &[&sources, &cursors, &now]).await?;
    }

    // 9. Results, in record order.
    let mut results = Vec::with_capacity(records.len());
    for (i, decision) in plan.decisions.iter().enumerate() {
        results.push(match decision {
            // Re-sent while waiting in the quarantine: still there, nothing new.
            Decision::Quarantine(_) if records[i].replay_of.is_none() && open_before[payloads.row_of[i]] => {
                RecordResult::Unchanged { code: String::new() }
            }
            Decision::Quarantine(_) => RecordResult::Quarantined {
                quarantine_id: quarantine_ids[i]
                    .ok_or_else(|| StoreError::Task(format!("record {i} got no quarantine entry")))?,
            },
            Decision::Unchanged { code } => RecordResult::Unchanged { code: code.clone() },
            Decision::Version(vi) => plan.version_result(*vi),
        });
    }
    Ok(results)
}

/// The distinct payloads of a batch: one row per (source, content hash), in order of first
/// appearance, with how often and when last it came.
struct Payloads {
    /// Index of the first record of each distinct payload.
    rows: Vec<usize>,
    /// For each record, its payload's row.
    row_of: Vec<usize>,
    /// How many records of the batch carry each payload.
    times: Vec<i32>,
    /// When the last of them was received.
    last_received: Vec<DateTime<Utc>>,
}

impl Payloads {
    fn of(records: &[IncomingRecord]) -> Payloads {
        let mut row_by_payload: HashMap<(&str, &str), usize> = HashMap::new();
        let mut p = Payloads {
            rows: Vec::new(),
            row_of: Vec::with_capacity(records.len()),
            times: Vec::new(),
            last_received: Vec::new(),
        };
        for (i, r) in records.iter().enumerate() {
            match row_by_payload.get(&(r.source_id.as_str(), r.payload_hash.as_str())) {
                Some(&row) => {
                    p.times[row] += 1;
                    p.last_received[row] = r.received_at;
                    p.row_of.push(row);
                }
                None => {
                    row_by_payload.insert((&r.source_id, &r.payload_hash), p.rows.len());
                    p.row_of.push(p.rows.len());
                    p.rows.push(i);
                    p.times.push(1);
                    p.last_received.push(r.received_at);
                }
            }
        }
        p
    }
}

/// Archive every payload once per (source, content hash); returns the raw id of each record.
/// Duplicates within the batch are sent once (ON CONFLICT DO UPDATE cannot touch a row twice in
/// one statement) with their count, so `times_received` and `last_received_at` end up as if
/// they had been archived one by one.
async fn archive_raw(tx: &Transaction<'_>, records: &[IncomingRecord], payloads: &Payloads) -> StoreResult<Vec<i64>> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let rows = &payloads.rows;
    let sources: Vec<&str> = rows.iter().map(|&i| records[i].source_id.as_str()).collect();
    let record_keys: Vec<&str> = rows.iter().map(|&i| records[i].record_key.as_str()).collect();
    let hashes: Vec<&str> = rows.iter().map(|&i| records[i].payload_hash.as_str()).collect();
    let formats: Vec<&str> = rows.iter().map(|&i| records[i].payload_format.as_str()).collect();
    let received: Vec<DateTime<Utc>> = rows.iter().map(|&i| records[i].received_at).collect();
    let payload_bytes: Vec<&[u8]> = rows.iter().map(|&i| records[i].payload.as_slice()).collect();
    let stmt = tx.prepare_cached(SQL_RAW_ARCHIVE).await?;
    let params: Params<'_> = vec![
        &sources,
        &record_keys,
        &hashes,
        &formats,
        &received,
        &payloads.last_received,
        &payloads.times,
        &payload_bytes,
    ];
    let returned = tx.query(&stmt, &params).await?;
    let mut id_by_payload: HashMap<(String, String), i64> = HashMap::with_capacity(returned.len());
    for row in returned {
        id_by_payload.insert((row.try_get(1)?, row.try_get(2)?), row.try_get(0)?);
    }
    let row_ids: Vec<i64> = rows
        .iter()
        .map(|&i| {
            let r = &records[i];
            id_by_payload
                .get(&(r.source_id.clone(), r.payload_hash.clone()))
                .copied()
                .ok_or_else(|| StoreError::Task(format!("raw record {} was not archived", r.record_key)))
        })
        .collect::<StoreResult<_>>()?;
    Ok(payloads.row_of.iter().map(|&row| row_ids[row]).collect())
}

async fn write_counters(tx: &Transaction<'_>, plan: &Plan) -> StoreResult<()> {
    if plan.counters.is_empty() {
        return Ok(());
    }
    let types: Vec<&str> = plan.counters.iter().map(|(k, _)| k.case_type.as_str()).collect();
    let years: Vec<i32> = plan.counters.iter().map(|(k, _)| k.year).collect();
    let regions: Vec<&str> = plan.counters.iter().map(|(k, _)| k.region.as_str()).collect();
    let last: Vec<i32> = plan.counters.iter().map(|(_, n)| to_i32(*n)).collect::<StoreResult<_>>()?;
    let stmt = tx.prepare_cached(SQL_COUNTERS_UPDATE).await?;
    tx.execute(&stmt, &[&types, &years, &regions, &last]).await?;
    Ok(())
}

/// New cases (inserted with their final head), heads of existing cases, versions and outbox rows.
async fn write_cases_and_versions(
    tx: &Transaction<'_>,
    batch: &CommitBatch,
    plan: &Plan,
    raw_ids: &[i64],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    if plan.versions.is_empty() {
        return Ok(());
    }
    let records = &batch.records;
    let accepted = |i: usize| match &records[i].verdict {
        Verdict::Accept(a) => Ok(a),
        Verdict::Quarantine(_) => Err(StoreError::Task("plan wrote a version for a rejected record".into())),
    };

    // The head of every case touched: its last version in the batch.
    let mut new_heads: Vec<Option<Head<'_>>> = plan.new_cases.iter().map(|_| None).collect();
    let mut existing_heads: BTreeMap<i64, Head<'_>> = BTreeMap::new();
    for v in &plan.versions {
        let head = Head {
            version: v.version,
            record_hash: &accepted(v.record_index)?.record_hash,
            withdrawn: v.withdrawn,
            source_id: &records[v.record_index].source_id,
        };
        match v.case {
            CaseRef::New(i) => new_heads[i] = Some(head),
            CaseRef::Existing(id) => {
                existing_heads.insert(id, head);
            }
        }
    }

    let mut new_case_ids: Vec<i64> = Vec::with_capacity(plan.new_cases.len());
    if !plan.new_cases.is_empty() {
        let heads: Vec<&Head<'_>> = new_heads
            .iter()
            .map(|h| h.as_ref().ok_or_else(|| StoreError::Task("new case without a version".into())))
            .collect::<StoreResult<_>>()?;
        let c = &plan.new_cases;
        let codes: Vec<&str> = c.iter().map(|c| c.code.as_str()).collect();
        let credit: Vec<&str> = c.iter().map(|c| c.key.agency_credit_code.as_str()).collect();
        let types: Vec<&str> = c.iter().map(|c| c.key.case_type.as_str()).collect();
        let numbers: Vec<&str> = c.iter().map(|c| c.key.case_number.as_str()).collect();
        let years: Vec<i32> = c.iter().map(|c| c.year).collect();
        let regions: Vec<&str> = c.iter().map(|c| c.region.as_str()).collect();
        let versions: Vec<i32> = heads.iter().map(|h| h.version).collect();
        let hashes: Vec<&str> = heads.iter().map(|h| h.record_hash).collect();
        let withdrawn: Vec<bool> = heads.iter().map(|h| h.withdrawn).collect();
        let sources: Vec<&str> = heads.iter().map(|h| h.source_id).collect();
        let stmt = tx.prepare_cached(SQL_CASES_INSERT).await?;
        let rows = tx
            .query(
                &stmt,
                &[&codes, &credit, &types, &numbers, &years, &regions, &versions, &hashes, &withdrawn, &sources, &now],
            )
            .await?;
        let mut by_code: HashMap<String, i64> = HashMap::with_capacity(rows.len());
        for row in rows {
            by_code.insert(row.try_get(1)?, row.try_get(0)?);
        }
        for c in &plan.new_cases {
            new_case_ids.push(
                *by_code
                    .get(&c.code)
                    .ok_or_else(|| StoreError::Task(format!("case {} was not created", c.code)))?,
            );
        }
    }

    if !existing_heads.is_empty() {
        let ids: Vec<i64> = existing_heads.keys().copied().collect();
        let versions: Vec<i32> = existing_heads.values().map(|h| h.version).collect();
        let hashes: Vec<&str> = existing_heads.values().map(|h| h.record_hash).collect();
        let withdrawn: Vec<bool> = existing_heads.values().map(|h| h.withdrawn).collect();
        let sources: Vec<&str> = existing_heads.values().map(|h| h.source_id).collect();
        let stmt = tx.prepare_cached(SQL_CASES_UPDATE).await?;
        tx.execute(&stmt, &[&ids, &versions, &hashes, &withdrawn, &sources, &now])
            .await?;
    }

    let case_id = |c: CaseRef| match c {
        CaseRef::Existing(id) => id,
        CaseRef::New(i) => new_case_ids[i],
    };
    let vs = &plan.versions;
    let case_ids: Vec<i64> = vs.iter().map(|v| case_id(v.case)).collect();
    let numbers: Vec<i32> = vs.iter().map(|v| v.version).collect();
    let statuses: Vec<&str> = vs
        .iter()
        .map(|v| if v.withdrawn { "withdrawn" } else { "active" })
        .collect();
    let raws: Vec<i64> = vs.iter().map(|v| raw_ids[v.record_index]).collect();
    let mapping_ids: Vec<&str> = vs.iter().map(|v| records[v.record_index].mapping_id.as_str()).collect();
    let mapping_versions: Vec<i64> = vs.iter().map(|v| records[v.record_index].mapping_version).collect();
    let mut hashes: Vec<&str> = Vec::with_capacity(vs.len());
    let mut bodies: Vec<Json<&Value>> = Vec::with_capacity(vs.len());
    let mut warnings: Vec<Json<&[Violation]>> = Vec::with_capacity(vs.len());
    for v in vs {
        let a = accepted(v.record_index)?;
        hashes.push(&a.record_hash);
        bodies.push(Json(&a.record));
        warnings.push(Json(a.warnings.as_slice()));
    }
    let stmt = tx.prepare_cached(SQL_VERSIONS_INSERT).await?;
    let params: Params<'_> = vec![
        &case_ids,
        &numbers,
        &statuses,
        &raws,
        &mapping_ids,
        &mapping_versions,
        &hashes,
        &bodies,
        &warnings,
        &now,
    ];
    tx.execute(&stmt, &params).await?;

    if !batch.sinks.is_empty() {
        let codes: Vec<&str> = vs.iter().map(|v| v.code.as_str()).collect();
        let stmt = tx.prepare_cached(SQL_OUTBOX_INSERT).await?;
        tx.execute(&stmt, &[&case_ids, &numbers, &codes, &batch.sinks, &now])
            .await?;
    }
    Ok(())
}

/// The quarantine writes of a batch; returns the entry id of every quarantined record.
///
/// Records are grouped by raw payload (groups touch different entries, so their order does not
/// matter). A group is written set-wise, with the same result as record-by-record writes in
/// record order, when it is one record, or when it has no replays and its quarantinings come
/// before its resolutions (a payload repeated within a batch: only its first record can be
/// quarantined, the repeats are duplicate deliveries). Any other group (rare: an entry replayed
/// twice in one batch, a replay next to a fresh delivery of its payload) is written record by
/// record, in record order, with the same statements given one row each.
async fn write_quarantine(
    tx: &Transaction<'_>,
    batch: &CommitBatch,
    plan: &Plan,
    raw_ids: &[i64],
    now: DateTime<Utc>,
) -> StoreResult<Vec<Option<i64>>> {
    let records = &batch.records;
    let mut ids: Vec<Option<i64>> = vec![None; records.len()];
    let kind = |i: usize| match (&plan.decisions[i], records[i].replay_of, &records[i].verdict) {
        (Decision::Quarantine(_), Some(_), _) => QKind::Replay,
        (Decision::Quarantine(_), None, _) => QKind::Insert,
        (Decision::Unchanged { .. }, _, Verdict::Quarantine(_)) => QKind::Nothing,
        _ => QKind::Resolve,
    };
    let violations = |i: usize| match &plan.decisions[i] {
        Decision::Quarantine(v) => v.as_slice(),
        _ => &[],
    };
    let q_insert = |i: usize| QInsert {
        raw_id: raw_ids[i],
        source_id: &records[i].source_id,
        record_key: &records[i].record_key,
        violations: violations(i),
        mapping_id: &records[i].mapping_id,
        mapping_version: records[i].mapping_version,
    };
    let q_replay = |i: usize, id: i64| QReplay {
        id,
        violations: violations(i),
        mapping_id: &records[i].mapping_id,
        mapping_version: records[i].mapping_version,
    };

    let mut replay_count: HashMap<i64, usize> = HashMap::new();
    for r in records {
        if let Some(q) = r.replay_of {
            *replay_count.entry(q).or_default() += 1;
        }
    }
    let mut group_of: HashMap<i64, usize> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, raw) in raw_ids.iter().enumerate() {
        if kind(i) == QKind::Nothing {
            continue;
        }
        let g = *group_of.entry(*raw).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(i);
    }

    let mut inserts: Vec<QInsert<'_>> = Vec::new();
    let mut replays: Vec<QReplay<'_>> = Vec::new();
    let mut resolves: Vec<QResolve> = Vec::new();
    let mut slow: Vec<usize> = Vec::new();
    let mut is_slow: Vec<bool> = vec![false; records.len()];
    for members in &groups {
        let replays_unique = members
            .iter()
            .all(|&i| records[i].replay_of.map_or(true, |q| replay_count[&q] == 1));
        let inserts_first = members.iter().all(|&i| records[i].replay_of.is_none())
            && members
                .windows(2)
                .all(|w| !(kind(w[0]) == QKind::Resolve && kind(w[1]) == QKind::Insert));
        if !(replays_unique && (members.len() == 1 || inserts_first)) {
            slow.extend_from_slice(members);
            for &i in members {
                is_slow[i] = true;
            }
            continue;
        }
        let first = members[0];
        if members.len() == 1 {
            match (kind(first), records[first].replay_of) {
                (QKind::Insert, _) => inserts.push(q_insert(first)),
                (QKind::Replay, Some(q)) => {
                    replays.push(q_replay(first, q));
                    ids[first] = Some(q);
                }
                (QKind::Nothing, _) => {}
                (_, replay_of) => resolves.push(QResolve {
                    raw_id: raw_ids[first],
                    replay_of,
                }),
            }
            continue;
        }
        // Quarantinings then resolutions of one payload, no replays: the entry is created by the
        // first quarantining and updated by the others; the first resolution resolves it.
        let quarantined: Vec<usize> = members.iter().copied().filter(|&i| kind(i) == QKind::Insert).collect();
        if let (Some(&f), Some(&l)) = (quarantined.first(), quarantined.last()) {
            inserts.push(QInsert {
                violations: violations(l),
                mapping_id: &records[l].mapping_id,
                mapping_version: records[l].mapping_version,
                ..q_insert(f)
            });
        }
        if members.iter().any(|&i| kind(i) == QKind::Resolve) {
            resolves.push(QResolve {
                raw_id: raw_ids[first],
                replay_of: None,
            });
        }
    }

    let created = quarantine_insert(tx, &inserts, now).await?;
    for (i, id) in ids.iter_mut().enumerate() {
        if kind(i) == QKind::Insert && !is_slow[i] {
            *id = created.get(&raw_ids[i]).copied();
        }
    }
    quarantine_replayed(tx, &replays, now).await?;
    quarantine_resolve(tx, &resolves, now).await?;

    slow.sort_unstable();
    for i in slow {
        match (kind(i), records[i].replay_of) {
            (QKind::Insert, _) => {
                let created = quarantine_insert(tx, &[q_insert(i)], now).await?;
                ids[i] = created.get(&raw_ids[i]).copied();
            }
            (QKind::Replay, Some(q)) => {
                quarantine_replayed(tx, &[q_replay(i, q)], now).await?;
                ids[i] = Some(q);
            }
            (QKind::Nothing, _) => {}
            (_, replay_of) => {
                let op = QResolve {
                    raw_id: raw_ids[i],
                    replay_of,
                };
                quarantine_resolve(tx, &[op], now).await?;
            }
        }
    }
    Ok(ids)
}

/// Insert open entries (one per raw id); returns raw id -> entry id.
async fn quarantine_insert(
    tx: &Transaction<'_>,
    rows: &[QInsert<'_>],
    now: DateTime<Utc>,
) -> StoreResult<HashMap<i64, i64>> {
    if rows.is_empty() {
        return Ok(HashMap::new());
    }
    let raw: Vec<i64> = rows.iter().map(|r| r.raw_id).collect();
    let sources: Vec<&str> = rows.iter().map(|r| r.source_id).collect();
    let keys: Vec<&str> = rows.iter().map(|r| r.record_key).collect();
    let violations: Vec<Json<&[Violation]>> = rows.iter().map(|r| Json(r.violations)).collect();
    let mapping_ids: Vec<&str> = rows.iter().map(|r| r.mapping_id).collect();
    let mapping_versions: Vec<i64> = rows.iter().map(|r| r.mapping_version).collect();
    let stmt = tx.prepare_cached(&sql_quarantine_insert()).await?;
    let returned = tx
        .query(&stmt, &[&raw, &sources, &keys, &violations, &mapping_ids, &mapping_versions, &now])
        .await?;
    let mut out = HashMap::with_capacity(returned.len());
    for row in returned {
        out.insert(row.try_get(1)?, row.try_get(0)?);
    }
    Ok(out)
}

async fn quarantine_replayed(tx: &Transaction<'_>, rows: &[QReplay<'_>], now: DateTime<Utc>) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let violations: Vec<Json<&[Violation]>> = rows.iter().map(|r| Json(r.violations)).collect();
    let mapping_ids: Vec<&str> = rows.iter().map(|r| r.mapping_id).collect();
    let mapping_versions: Vec<i64> = rows.iter().map(|r| r.mapping_version).collect();
    let stmt = tx.prepare_cached(&sql_quarantine_replayed()).await?;
    tx.execute(&stmt, &[&ids, &violations, &mapping_ids, &mapping_versions, &now])
        .await?;
    Ok(())
}

async fn quarantine_resolve(tx: &Transaction<'_>, rows: &[QResolve], now: DateTime<Utc>) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let raw: Vec<i64> = rows.iter().map(|r| r.raw_id).collect();
    let replay_of: Vec<Option<i64>> = rows.iter().map(|r| r.replay_of).collect();
    let inc: Vec<i32> = rows.iter().map(|r| i32::from(r.replay_of.is_some())).collect();
    let stmt = tx.prepare_cached(SQL_QUARANTINE_RESOLVE).await?;
    tx.execute(&stmt, &[&raw, &replay_of, &inc, &now]).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reading.
// ---------------------------------------------------------------------------------------------

const QUARANTINE_COLUMNS: &str = "id, raw_id, source_id, record_key, status, violations, mapping_id, \
     mapping_version, created_at, updated_at, attempts, note";

fn quarantine_from_row(r: &Row) -> StoreResult<QuarantineEntry> {
    let status: String = r.try_get(4)?;
    Ok(QuarantineEntry {
        id: r.try_get(0)?,
        raw_id: r.try_get(1)?,
        source_id: r.try_get(2)?,
        record_key: r.try_get(3)?,
        status: QuarantineStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("quarantine status {status:?}")))?,
        violations: corrupt_json(r.try_get(5)?)?,
        mapping_id: r.try_get(6)?,
        mapping_version: r.try_get(7)?,
        created_at: r.try_get(8)?,
        updated_at: r.try_get(9)?,
        attempts: r.try_get(10)?,
        note: r.try_get(11)?,
    })
}

const CASE_COLUMNS: &str = "c.id, c.unified_code, c.agency_credit_code, c.case_type, c.case_number, c.year, \
     c.region, c.current_version, c.withdrawn, c.created_at, c.updated_at, v.record";

fn case_from_row(r: &Row) -> StoreResult<CaseRow> {
    let case_type: String = r.try_get(3)?;
    Ok(CaseRow {
        id: r.try_get(0)?,
        unified_code: r.try_get(1)?,
        key: BusinessKey {
            agency_credit_code: r.try_get(2)?,
            case_type: parse_case_type(&case_type)?,
            case_number: r.try_get(4)?,
        },
        year: r.try_get(5)?,
        region: r.try_get(6)?,
        version: r.try_get(7)?,
        withdrawn: r.try_get(8)?,
        created_at: r.try_get(9)?,
        updated_at: r.try_get(10)?,
        record: r.try_get(11)?,
    })
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> StoreResult<Vec<String>> {
        let mut client = self.client().await?;
        let mut applied = Vec::new();
        for &(name, sql) in MIGRATIONS {
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)",
            )
            .await?;
            let done = tx
                .query_opt("SELECT 1 FROM schema_migrations WHERE name = $1", &[&name])
                .await?;
            if done.is_none() {
                tx.batch_execute(sql).await?;
                tx.execute(
                    "INSERT INTO schema_migrations (name, applied_at) VALUES ($1, $2)",
                    &[&name, &Utc::now()],
                )
                .await?;
                applied.push(name.to_string());
            }
            tx.commit().await?;
        }
        Ok(applied)
    }

    async fn commit_batch(&self, batch: &CommitBatch) -> StoreResult<Vec<RecordResult>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // On error the transaction is dropped, which rolls it back.
        let results = commit_in(&tx, batch).await?;
        tx.commit().await?;
        Ok(results)
    }

    async fn cursor(&self, source_id: &str) -> StoreResult<Option<String>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT cursor FROM source_cursors WHERE source_id = $1")
            .await?;
        let row = client.query_opt(&stmt, &[&source_id]).await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    async fn raw_record(&self, id: i64) -> StoreResult<RawRecord> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT id, source_id, record_key, content_hash, format, received_at, payload
                 FROM raw_records WHERE id = $1",
            )
            .await?;
        let row = client
            .query_opt(&stmt, &[&id])
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("raw record {id}")))?;
        let format: String = row.try_get(4)?;
        Ok(RawRecord {
            id: row.try_get(0)?,
            source_id: row.try_get(1)?,
            record_key: row.try_get(2)?,
            content_hash: row.try_get(3)?,
            format: PayloadFormat::parse(&format)
                .ok_or_else(|| StoreError::Corrupt(format!("payload format {format:?}")))?,
            received_at: row.try_get(5)?,
            payload: row.try_get(6)?,
        })
    }

    async fn quarantine_list(&self, filter: &QuarantineFilter) -> StoreResult<Vec<QuarantineEntry>> {
        // Only the filters given appear in the SQL, so each can use its index
        // (the rule filter `rules @> ARRAY[rule]` uses the GIN index on `rules`).
        let status = filter.status.map(QuarantineStatus::as_str);
        let limit = filter.limit.unwrap_or(100);
        let mut conditions: Vec<(&str, &(dyn ToSql + Sync))> = Vec::new();
        if let Some(v) = &filter.source_id {
            conditions.push(("source_id = ?::text", v));
        }
        if let Some(v) = &filter.rule {
            conditions.push(("rules @> ARRAY[?::text]", v));
        }
        if let Some(v) = &status {
            conditions.push(("status = ?::text", v));
        }
        if let Some(v) = &filter.id {
            conditions.push(("id = ?::int8", v));
        }
        if let Some(v) = &filter.since {
            conditions.push(("created_at >= ?::timestamptz", v));
        }
        if let Some(v) = &filter.until {
            conditions.push(("created_at < ?::timestamptz", v));
        }
        if let Some(v) = &filter.before_id {
            conditions.push(("id < ?::int8", v));
        }
        let mut sql = format!("SELECT {QUARANTINE_COLUMNS} FROM quarantine WHERE TRUE");
        let mut params: Params<'_> = Vec::with_capacity(conditions.len() + 1);
        for (condition, value) in conditions {
            params.push(value);
            sql.push_str(" AND ");
            sql.push_str(&condition.replace('?', &format!("${}", params.len())));
        }
        params.push(&limit);
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", params.len()));
        let client = self.client().await?;
        let stmt = client.prepare_cached(&sql).await?;
        let rows = client.query(&stmt, &params).await?;
        rows.iter().map(quarantine_from_row).collect()
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
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE quarantine SET status = $2, note = COALESCE($3, note), updated_at = $4 WHERE id = $1",
            )
            .await?;
        let n = client
            .execute(&stmt, &[&id, &status.as_str(), &note, &Utc::now()])
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("quarantine entry {id}")));
        }
        Ok(())
    }

    async fn quarantine_update_violations(&self, id: i64, violations: &[Violation]) -> StoreResult<()> {
        let client = self.client().await?;
        let sql = format!(
            "UPDATE quarantine q SET violations = u.violations, rules = {RULES_OF_VIOLATIONS},
                    updated_at = $3, attempts = q.attempts + 1
             FROM (SELECT $2::jsonb AS violations) u WHERE q.id = $1"
        );
        let stmt = client.prepare_cached(&sql).await?;
        client
            .execute(&stmt, &[&id, &Json(violations), &Utc::now()])
            .await?;
        Ok(())
    }

    async fn cases(&self, filter: &CaseFilter) -> StoreResult<Vec<CaseRow>> {
        let client = self.client().await?;
        let after = filter.after_id.unwrap_or(0);
        let limit = filter.limit.unwrap_or(1000);
        let rows = match &filter.source_id {
            Some(source) => {
                let sql = format!(
                    "SELECT {CASE_COLUMNS} FROM cases c
                     JOIN case_versions v ON v.case_id = c.id AND v.version = c.current_version
                     WHERE c.source_id = $1 AND c.id > $2 ORDER BY c.id LIMIT $3"
                );
                let stmt = client.prepare_cached(&sql).await?;
                client.query(&stmt, &[source, &after, &limit]).await?
            }
            None => {
                let sql = format!(
                    "SELECT {CASE_COLUMNS} FROM cases c
                     JOIN case_versions v ON v.case_id = c.id AND v.version = c.current_version
                     WHERE c.id > $1 ORDER BY c.id LIMIT $2"
                );
                let stmt = client.prepare_cached(&sql).await?;
                client.query(&stmt, &[&after, &limit]).await?
            }
        };
        rows.iter().map(case_from_row).collect()
    }

    async fn case_by_code(&self, code: &str) -> StoreResult<(CaseRow, Vec<CaseVersionRow>)> {
        let code = normalizer::standards::normalise::normalise_identifier(code);
        let client = self.client().await?;
        let sql = format!(
            "SELECT {CASE_COLUMNS} FROM cases c
             JOIN case_versions v ON v.case_id = c.id AND v.version = c.current_version
             WHERE c.unified_code = $1"
        );
        let stmt = client.prepare_cached(&sql).await?;
        let row = client
            .query_opt(&stmt, &[&code])
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("case {code}")))?;
        let case = case_from_row(&row)?;
        let stmt = client
            .prepare_cached(
                "SELECT version, status, raw_id, mapping_id, mapping_version, record_hash, record, warnings, created_at
                 FROM case_versions WHERE case_id = $1 ORDER BY version",
            )
            .await?;
        let mut versions = Vec::new();
        for r in client.query(&stmt, &[&case.id]).await? {
            versions.push(CaseVersionRow {
                version: r.try_get(0)?,
                status: r.try_get(1)?,
                raw_id: r.try_get(2)?,
                mapping_id: r.try_get(3)?,
                mapping_version: r.try_get(4)?,
                record_hash: r.try_get(5)?,
                record: r.try_get(6)?,
                warnings: corrupt_json(r.try_get(7)?)?,
                created_at: r.try_get(8)?,
            });
        }
        Ok((case, versions))
    }

    async fn outbox_for_case(&self, case_id: i64) -> StoreResult<Vec<OutboxRow>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT id, sink_id, case_id, version, idempotency_key, status, attempts FROM outbox
                 WHERE case_id = $1 ORDER BY id",
            )
            .await?;
        let rows = client.query(&stmt, &[&case_id]).await?;
        rows.iter()
            .map(|r| {
                Ok(OutboxRow {
                    id: r.try_get(0)?,
                    sink_id: r.try_get(1)?,
                    case_id: r.try_get(2)?,
                    version: r.try_get(3)?,
                    idempotency_key: r.try_get(4)?,
                    status: r.try_get(5)?,
                    attempts: r.try_get(6)?,
                })
            })
            .collect()
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        let client = self.client().await?;
        let r = client
            .query_one(
                "SELECT (SELECT count(*) FROM raw_records), (SELECT count(*) FROM cases),
                        (SELECT count(*) FROM case_versions),
                        (SELECT count(*) FROM quarantine WHERE status = 'open'),
                        (SELECT count(*) FROM quarantine),
                        (SELECT count(*) FROM outbox WHERE status = 'pending')",
                &[],
            )
            .await?;
        Ok(StoreStats {
            raw_records: r.try_get(0)?,
            cases: r.try_get(1)?,
            versions: r.try_get(2)?,
            quarantine_open: r.try_get(3)?,
            quarantine_total: r.try_get(4)?,
            outbox_pending: r.try_get(5)?,
        })
    }

    async fn audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("INSERT INTO audit_log (at, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5)")
            .await?;
        client
            .execute(&stmt, &[&Utc::now(), &entry.actor, &entry.action, &entry.subject, &entry.detail])
            .await?;
        Ok(())
    }

    async fn audit_log(&self, limit: i64) -> StoreResult<Vec<AuditRecord>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT id, at, actor, action, subject, detail FROM audit_log ORDER BY id DESC LIMIT $1")
            .await?;
        let rows = client.query(&stmt, &[&limit]).await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRecord {
                    id: r.try_get(0)?,
                    at: r.try_get(1)?,
                    actor: r.try_get(2)?,
                    action: r.try_get(3)?,
                    subject: r.try_get(4)?,
                    detail: r.try_get(5)?,
                })
            })
            .collect()
    }
}
