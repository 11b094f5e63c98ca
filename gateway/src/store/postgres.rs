//! PostgreSQL backend: the production store, shared by several gateway instances.
//!
//! Connections come from a deadpool pool. A batch commits in ONE transaction of about a dozen
//! set-wise statements: each binds the batch's values as arrays and expands them with `UNNEST`,
//! and the statements are pipelined, so a batch of a thousand records costs three waits for the
//! server (plus BEGIN and COMMIT), not thousands. Results are those of the SQLite store for the
//! same input (`tests/store_conformance.rs` runs the same tests on both and compares them on
//! random batches).
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
use std::sync::LazyLock;
use std::time::Duration;
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::{Error as PgError, NoTls, Row, Statement};

/// Migrations, in order: (name, SQL).
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_initial",
        include_str!("../../migrations/postgres/0001_initial.sql"),
    ),
    (
        "0002_outbox_dispatch",
        include_str!("../../migrations/postgres/0002_outbox_dispatch.sql"),
    ),
    (
        "0003_mapping_versions",
        include_str!("../../migrations/postgres/0003_mapping_versions.sql"),
    ),
    (
        "0004_case_lookups",
        include_str!("../../migrations/postgres/0004_case_lookups.sql"),
    ),
    (
        "0005_supervision_catalogue",
        include_str!("../../migrations/postgres/0005_supervision_catalogue.sql"),
    ),
];

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

    pub(crate) async fn client(&self) -> StoreResult<deadpool_postgres::Client> {
        self.pool.get().await.map_err(pool_error)
    }
}

fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => {
            let cause = std::error::Error::source(&e)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            StoreError::Pool(format!("cannot connect to PostgreSQL: {e}{cause}"))
        }
        other => StoreError::Pool(other.to_string()),
    }
}

fn corrupt_json<T: serde::de::DeserializeOwned>(v: Value) -> StoreResult<T> {
    serde_json::from_value(v).map_err(|e| StoreError::Corrupt(format!("stored JSON: {e}")))
}

fn parse_case_type(s: &str) -> StoreResult<CaseType> {
    s.parse().map_err(|_| StoreError::Corrupt(format!("case type {s:?}")))
}

fn to_i32(n: u32) -> StoreResult<i32> {
    i32::try_from(n).map_err(|_| StoreError::Conflict(format!("sequence {n} does not fit the counter")))
}

// ---------------------------------------------------------------------------------------------
// Committing a batch.
//
// The statements go in three pipelines: each pipeline's statements are sent together and run by
// the server one after the other, in the order sent, and the client waits once per pipeline:
//   1. create and lock the counters, read the existing cases, archive the raw payloads;
//   2. (after planning) store the counters, create the new cases;
//   3. case heads, versions, outbox rows, quarantine, cursors.
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

/// Archives the distinct payloads of the batch. Returns for each its id, its `times_received`
/// (equal to the count sent only when the row is new) and whether it waits in the open quarantine.
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
    RETURNING id, source_id, content_hash, times_received,
              EXISTS (SELECT 1 FROM quarantine q WHERE q.raw_id = raw_records.id AND q.status = 'open')";

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

/// One row per sink and version. No ON CONFLICT: the versions are new (the insert into
/// `case_versions` above fails otherwise), so their idempotency keys are too.
const SQL_OUTBOX_INSERT: &str = "
    INSERT INTO outbox (sink_id, case_id, version, idempotency_key, created_at)
    SELECT s.sink_id, v.case_id, v.version, v.code || ':' || v.version::text, $5
    FROM UNNEST($1::int8[], $2::int4[], $3::text[]) WITH ORDINALITY AS v(case_id, version, code, n)
    CROSS JOIN UNNEST($4::text[]) WITH ORDINALITY AS s(sink_id, m)
    ORDER BY v.n, s.m";

static SQL_QUARANTINE_INSERT: LazyLock<String> = LazyLock::new(|| {
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
});

static SQL_QUARANTINE_REPLAYED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE quarantine q
            SET violations = u.violations, rules = {RULES_OF_VIOLATIONS}, mapping_id = u.mapping_id,
                mapping_version = u.mapping_version, updated_at = $5, attempts = q.attempts + 1
         FROM UNNEST($1::int8[], $2::jsonb[], $3::text[], $4::int8[])
              AS u(id, violations, mapping_id, mapping_version)
         WHERE q.id = u.id"
    )
});

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

/// The prepared statements of a commit (cached per connection).
struct Statements {
    counters_create: Statement,
    counters_lock: Statement,
    existing_cases: Statement,
    raw_archive: Statement,
    counters_update: Statement,
    cases_insert: Statement,
    cases_update: Statement,
    versions_insert: Statement,
    outbox_insert: Statement,
    quarantine_insert: Statement,
    quarantine_replayed: Statement,
    quarantine_resolve: Statement,
    cursors_upsert: Statement,
}

impl Statements {
    async fn prepare(tx: &Transaction<'_>) -> Result<Statements, PgError> {
        let (a, b, c, d, e, f, g, h, i, j, k, l, m) = tokio::try_join!(
            tx.prepare_cached(SQL_COUNTERS_CREATE),
            tx.prepare_cached(SQL_COUNTERS_LOCK),
            tx.prepare_cached(SQL_EXISTING_CASES),
            tx.prepare_cached(SQL_RAW_ARCHIVE),
            tx.prepare_cached(SQL_COUNTERS_UPDATE),
            tx.prepare_cached(SQL_CASES_INSERT),
            tx.prepare_cached(SQL_CASES_UPDATE),
            tx.prepare_cached(SQL_VERSIONS_INSERT),
            tx.prepare_cached(SQL_OUTBOX_INSERT),
            tx.prepare_cached(&SQL_QUARANTINE_INSERT),
            tx.prepare_cached(&SQL_QUARANTINE_REPLAYED),
            tx.prepare_cached(SQL_QUARANTINE_RESOLVE),
            tx.prepare_cached(SQL_CURSORS_UPSERT),
        )?;
        Ok(Statements {
            counters_create: a,
            counters_lock: b,
            existing_cases: c,
            raw_archive: d,
            counters_update: e,
            cases_insert: f,
            cases_update: g,
            versions_insert: h,
            outbox_insert: i,
            quarantine_insert: j,
            quarantine_replayed: k,
            quarantine_resolve: l,
            cursors_upsert: m,
        })
    }
}

/// Run `stmt` unless there is nothing to write (`params` None).
async fn execute_some(
    tx: &Transaction<'_>,
    stmt: &Statement,
    params: Option<&[&(dyn ToSql + Sync)]>,
) -> Result<u64, PgError> {
    match params {
        Some(params) => tx.execute(stmt, params).await,
        None => Ok(0),
    }
}

/// Query `stmt` unless there is nothing to ask (`params` None).
async fn query_some(
    tx: &Transaction<'_>,
    stmt: &Statement,
    params: Option<&[&(dyn ToSql + Sync)]>,
) -> Result<Vec<Row>, PgError> {
    match params {
        Some(params) => tx.query(stmt, params).await,
        None => Ok(Vec::new()),
    }
}

/// `Some(params)` when there are rows to send.
fn some_if<'p, 'a>(rows: usize, params: &'p Params<'a>) -> Option<&'p [&'a (dyn ToSql + Sync)]> {
    (rows > 0).then_some(params.as_slice())
}

/// The distinct payloads of a batch: one row per (source, content hash), in order of first
/// appearance, with how often and when last it came.
struct Payloads<'a> {
    /// Index of the first record of each distinct payload.
    rows: Vec<usize>,
    /// For each record, its payload's row.
    row_of: Vec<usize>,
    /// How many records of the batch carry each payload.
    times: Vec<i32>,
    /// When the last of them was received.
    last_received: Vec<DateTime<Utc>>,
    /// (source id, content hash) -> row.
    index: HashMap<(&'a str, &'a str), usize>,
}

impl<'a> Payloads<'a> {
    fn of(records: &'a [IncomingRecord]) -> Payloads<'a> {
        let mut p = Payloads {
            rows: Vec::new(),
            row_of: Vec::with_capacity(records.len()),
            times: Vec::new(),
            last_received: Vec::new(),
            index: HashMap::new(),
        };
        for (i, r) in records.iter().enumerate() {
            match p.index.get(&(r.source_id.as_str(), r.payload_hash.as_str())) {
                Some(&row) => {
                    p.times[row] += 1;
                    p.last_received[row] = r.received_at;
                    p.row_of.push(row);
                }
                None => {
                    p.index.insert((&r.source_id, &r.payload_hash), p.rows.len());
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

/// The head a case has after the batch: its last version's values.
struct Head<'a> {
    version: i32,
    record_hash: &'a str,
    withdrawn: bool,
    source_id: &'a str,
}

fn accepted_of(record: &IncomingRecord) -> StoreResult<&AcceptedRecord> {
    match &record.verdict {
        Verdict::Accept(a) => Ok(a),
        Verdict::Quarantine(_) => Err(StoreError::Task("plan wrote a version for a rejected record".into())),
    }
}

/// The heads of the cases the batch creates (in `plan.new_cases` order) and changes (by id).
#[allow(clippy::type_complexity)]
fn heads<'a>(records: &'a [IncomingRecord], plan: &Plan) -> StoreResult<(Vec<Head<'a>>, BTreeMap<i64, Head<'a>>)> {
    let mut new_heads: Vec<Option<Head<'a>>> = plan.new_cases.iter().map(|_| None).collect();
    let mut existing_heads: BTreeMap<i64, Head<'a>> = BTreeMap::new();
    for v in &plan.versions {
        let record = &records[v.record_index];
        let head = Head {
            version: v.version,
            record_hash: &accepted_of(record)?.record_hash,
            withdrawn: v.withdrawn,
            source_id: &record.source_id,
        };
        match v.case {
            CaseRef::New(i) => new_heads[i] = Some(head),
            CaseRef::Existing(id) => {
                existing_heads.insert(id, head);
            }
        }
    }
    let new_heads = new_heads
        .into_iter()
        .map(|h| h.ok_or_else(|| StoreError::Task("new case without a version".into())))
        .collect::<StoreResult<_>>()?;
    Ok((new_heads, existing_heads))
}

async fn commit_in(tx: &Transaction<'_>, batch: &CommitBatch) -> StoreResult<Vec<RecordResult>> {
    let now = Utc::now();
    let records = &batch.records;
    let st = Statements::prepare(tx).await?;

    // ---- Pipeline 1: counters locked (in sorted order, created at 0 if missing, so there is a
    // row to lock), then existing cases read under the locks, then raw payloads archived.
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
    let ctr_types: Vec<&str> = counter_set.iter().map(|c| c.0).collect();
    let ctr_years: Vec<i32> = counter_set.iter().map(|c| c.1).collect();
    let ctr_regions: Vec<&str> = counter_set.iter().map(|c| c.2).collect();
    let counter_params: Params<'_> = vec![&ctr_types, &ctr_years, &ctr_regions];

    let key_credit: Vec<&str> = keys.iter().map(|k| k.agency_credit_code.as_str()).collect();
    let key_types: Vec<&str> = keys.iter().map(|k| k.case_type.as_str()).collect();
    let key_numbers: Vec<&str> = keys.iter().map(|k| k.case_number.as_str()).collect();
    let key_params: Params<'_> = vec![&key_credit, &key_types, &key_numbers];

    let payloads = Payloads::of(records);
    let first =
        |f: fn(&IncomingRecord) -> &str| -> Vec<&str> { payloads.rows.iter().map(|&i| f(&records[i])).collect() };
    let raw_sources = first(|r| &r.source_id);
    let raw_keys = first(|r| &r.record_key);
    let raw_hashes = first(|r| &r.payload_hash);
    let raw_formats = first(|r| r.payload_format.as_str());
    let raw_received: Vec<DateTime<Utc>> = payloads.rows.iter().map(|&i| records[i].received_at).collect();
    let raw_bytes: Vec<&[u8]> = payloads.rows.iter().map(|&i| records[i].payload.as_slice()).collect();
    let raw_params: Params<'_> = vec![
        &raw_sources,
        &raw_keys,
        &raw_hashes,
        &raw_formats,
        &raw_received,
        &payloads.last_received,
        &payloads.times,
        &raw_bytes,
    ];

    let (_, counter_rows, case_rows, raw_rows) = tokio::try_join!(
        biased;
        execute_some(tx, &st.counters_create, some_if(ctr_types.len(), &counter_params)),
        query_some(tx, &st.counters_lock, some_if(ctr_types.len(), &counter_params)),
        query_some(tx, &st.existing_cases, some_if(keys.len(), &key_params)),
        query_some(tx, &st.raw_archive, some_if(payloads.rows.len(), &raw_params)),
    )?;

    let mut counters: HashMap<CounterKey, u32> = HashMap::new();
    for row in counter_rows {
        let case_type: &str = row.try_get(0)?;
        let last: i32 = row.try_get(3)?;
        let key = CounterKey {
            case_type: parse_case_type(case_type)?,
            year: row.try_get(1)?,
            region: row.try_get(2)?,
        };
        let last = u32::try_from(last).map_err(|_| StoreError::Corrupt(format!("counter {key:?} at {last}")))?;
        counters.insert(key, last);
    }
    let mut existing: HashMap<BusinessKey, ExistingCase> = HashMap::new();
    for row in case_rows {
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
    // Payloads archived before this batch are duplicate deliveries unless they wait in the open
    // quarantine.
    let mut row_ids: Vec<Option<i64>> = vec![None; payloads.rows.len()];
    let mut open_before: Vec<bool> = vec![false; payloads.rows.len()];
    let mut delivered: HashSet<(String, String)> = HashSet::new();
    for row in raw_rows {
        let source: &str = row.try_get(1)?;
        let hash: &str = row.try_get(2)?;
        let times: i32 = row.try_get(3)?;
        let open: bool = row.try_get(4)?;
        let p = *payloads
            .index
            .get(&(source, hash))
            .ok_or_else(|| StoreError::Corrupt(format!("unexpected raw record {source}/{hash}")))?;
        row_ids[p] = Some(row.try_get(0)?);
        if open {
            open_before[p] = true;
        } else if times != payloads.times[p] {
            delivered.insert((source.to_string(), hash.to_string()));
        }
    }
    let raw_ids: Vec<i64> = payloads
        .row_of
        .iter()
        .map(|&p| row_ids[p].ok_or_else(|| StoreError::Task("a raw payload was not archived".into())))
        .collect::<StoreResult<_>>()?;

    // ---- Decide.
    let plan =
        plan_batch(records, &existing, &counters, &delivered).map_err(|e| StoreError::Conflict(e.to_string()))?;
    let (new_heads, existing_heads) = heads(records, &plan)?;

    // ---- Pipeline 2: counters stored, new cases created (with their final head).
    let cu_types: Vec<&str> = plan.counters.iter().map(|(k, _)| k.case_type.as_str()).collect();
    let cu_years: Vec<i32> = plan.counters.iter().map(|(k, _)| k.year).collect();
    let cu_regions: Vec<&str> = plan.counters.iter().map(|(k, _)| k.region.as_str()).collect();
    let cu_last: Vec<i32> = plan
        .counters
        .iter()
        .map(|(_, n)| to_i32(*n))
        .collect::<StoreResult<_>>()?;
    let counters_update: Params<'_> = vec![&cu_types, &cu_years, &cu_regions, &cu_last];

    let nc = &plan.new_cases;
    let nc_codes: Vec<&str> = nc.iter().map(|c| c.code.as_str()).collect();
    let nc_credit: Vec<&str> = nc.iter().map(|c| c.key.agency_credit_code.as_str()).collect();
    let nc_types: Vec<&str> = nc.iter().map(|c| c.key.case_type.as_str()).collect();
    let nc_numbers: Vec<&str> = nc.iter().map(|c| c.key.case_number.as_str()).collect();
    let nc_years: Vec<i32> = nc.iter().map(|c| c.year).collect();
    let nc_regions: Vec<&str> = nc.iter().map(|c| c.region.as_str()).collect();
    let nc_versions: Vec<i32> = new_heads.iter().map(|h| h.version).collect();
    let nc_hashes: Vec<&str> = new_heads.iter().map(|h| h.record_hash).collect();
    let nc_withdrawn: Vec<bool> = new_heads.iter().map(|h| h.withdrawn).collect();
    let nc_sources: Vec<&str> = new_heads.iter().map(|h| h.source_id).collect();
    let cases_insert: Params<'_> = vec![
        &nc_codes,
        &nc_credit,
        &nc_types,
        &nc_numbers,
        &nc_years,
        &nc_regions,
        &nc_versions,
        &nc_hashes,
        &nc_withdrawn,
        &nc_sources,
        &now,
    ];
    let (_, created_cases) = tokio::try_join!(
        biased;
        execute_some(tx, &st.counters_update, some_if(plan.counters.len(), &counters_update)),
        query_some(tx, &st.cases_insert, some_if(nc.len(), &cases_insert)),
    )?;
    let mut id_by_code: HashMap<&str, i64> = HashMap::with_capacity(created_cases.len());
    for row in &created_cases {
        id_by_code.insert(row.try_get(1)?, row.try_get(0)?);
    }
    let new_case_ids: Vec<i64> = nc
        .iter()
        .map(|c| {
            id_by_code
                .get(c.code.as_str())
                .copied()
                .ok_or_else(|| StoreError::Task(format!("case {} was not created", c.code)))
        })
        .collect::<StoreResult<_>>()?;

    // ---- Pipeline 3: case heads, versions, outbox, quarantine, cursors.
    let eh_ids: Vec<i64> = existing_heads.keys().copied().collect();
    let eh_versions: Vec<i32> = existing_heads.values().map(|h| h.version).collect();
    let eh_hashes: Vec<&str> = existing_heads.values().map(|h| h.record_hash).collect();
    let eh_withdrawn: Vec<bool> = existing_heads.values().map(|h| h.withdrawn).collect();
    let eh_sources: Vec<&str> = existing_heads.values().map(|h| h.source_id).collect();
    let cases_update: Params<'_> = vec![&eh_ids, &eh_versions, &eh_hashes, &eh_withdrawn, &eh_sources, &now];

    let vs = &plan.versions;
    let v_case_ids: Vec<i64> = vs
        .iter()
        .map(|v| match v.case {
            CaseRef::Existing(id) => id,
            CaseRef::New(i) => new_case_ids[i],
        })
        .collect();
    let v_numbers: Vec<i32> = vs.iter().map(|v| v.version).collect();
    let v_statuses: Vec<&str> = vs
        .iter()
        .map(|v| if v.withdrawn { "withdrawn" } else { "active" })
        .collect();
    let v_raw_ids: Vec<i64> = vs.iter().map(|v| raw_ids[v.record_index]).collect();
    let v_mapping_ids: Vec<&str> = vs.iter().map(|v| records[v.record_index].mapping_id.as_str()).collect();
    let v_mapping_versions: Vec<i64> = vs.iter().map(|v| records[v.record_index].mapping_version).collect();
    let v_codes: Vec<&str> = vs.iter().map(|v| v.code.as_str()).collect();
    let mut v_hashes: Vec<&str> = Vec::with_capacity(vs.len());
    let mut v_records: Vec<Json<&Value>> = Vec::with_capacity(vs.len());
    let mut v_warnings: Vec<Json<&[Violation]>> = Vec::with_capacity(vs.len());
    for v in vs {
        let a = accepted_of(&records[v.record_index])?;
        v_hashes.push(&a.record_hash);
        v_records.push(Json(&a.record));
        v_warnings.push(Json(a.warnings.as_slice()));
    }
    let versions_insert: Params<'_> = vec![
        &v_case_ids,
        &v_numbers,
        &v_statuses,
        &v_raw_ids,
        &v_mapping_ids,
        &v_mapping_versions,
        &v_hashes,
        &v_records,
        &v_warnings,
        &now,
    ];
    let outbox_insert: Params<'_> = vec![&v_case_ids, &v_numbers, &v_codes, &batch.sinks, &now];
    let outbox_rows = if batch.sinks.is_empty() { 0 } else { vs.len() };

    let q = QuarantineWrites::of(batch, &plan, &raw_ids);
    let q_insert = QInsertParams::of(&q.inserts);
    let q_replayed = QReplayParams::of(&q.replays);
    let q_resolve = QResolveParams::of(&q.resolves);
    let q_insert_params = q_insert.params(&now);
    let q_replayed_params = q_replayed.params(&now);
    let q_resolve_params = q_resolve.params(&now);

    let mut last_cursor: BTreeMap<&str, &str> = BTreeMap::new();
    for (source, cursor) in &batch.cursors {
        last_cursor.insert(source, cursor);
    }
    let cursor_sources: Vec<&str> = last_cursor.keys().copied().collect();
    let cursor_values: Vec<&str> = last_cursor.values().copied().collect();
    let cursors_upsert: Params<'_> = vec![&cursor_sources, &cursor_values, &now];

    let (_, _, _, created_entries, _, _, _) = tokio::try_join!(
        biased;
        execute_some(tx, &st.cases_update, some_if(existing_heads.len(), &cases_update)),
        execute_some(tx, &st.versions_insert, some_if(vs.len(), &versions_insert)),
        execute_some(tx, &st.outbox_insert, some_if(outbox_rows, &outbox_insert)),
        query_some(tx, &st.quarantine_insert, some_if(q.inserts.len(), &q_insert_params)),
        execute_some(tx, &st.quarantine_replayed, some_if(q.replays.len(), &q_replayed_params)),
        execute_some(tx, &st.quarantine_resolve, some_if(q.resolves.len(), &q_resolve_params)),
        execute_some(tx, &st.cursors_upsert, some_if(cursor_sources.len(), &cursors_upsert)),
    )?;

    let mut entry_ids = q.ids.clone();
    let mut entry_by_raw: HashMap<i64, i64> = HashMap::with_capacity(created_entries.len());
    for row in &created_entries {
        entry_by_raw.insert(row.try_get(1)?, row.try_get(0)?);
    }
    for &i in &q.insert_members {
        entry_ids[i] = entry_by_raw.get(&raw_ids[i]).copied();
    }
    // The rare groups that must be written record by record, in record order.
    for &i in &q.slow {
        let record = &records[i];
        match (q.kinds[i], record.replay_of) {
            (QKind::Insert, _) => {
                let one = QInsertParams::of(std::slice::from_ref(&q.insert_of(i)));
                let rows = tx.query(&st.quarantine_insert, &one.params(&now)).await?;
                for row in rows {
                    entry_ids[i] = Some(row.try_get(0)?);
                }
            }
            (QKind::Replay, Some(id)) => {
                let one = QReplayParams::of(std::slice::from_ref(&q.replay_of(i, id)));
                tx.execute(&st.quarantine_replayed, &one.params(&now)).await?;
                entry_ids[i] = Some(id);
            }
            (QKind::Nothing, _) => {}
            (_, replay_of) => {
                let op = QResolve {
                    raw_id: raw_ids[i],
                    replay_of,
                };
                let one = QResolveParams::of(std::slice::from_ref(&op));
                tx.execute(&st.quarantine_resolve, &one.params(&now)).await?;
            }
        }
    }

    // ---- Results, in record order.
    let mut results = Vec::with_capacity(records.len());
    for (i, decision) in plan.decisions.iter().enumerate() {
        results.push(match decision {
            // Re-sent while waiting in the quarantine: still there, nothing new.
            Decision::Quarantine(_) if records[i].replay_of.is_none() && open_before[payloads.row_of[i]] => {
                RecordResult::Unchanged { code: String::new() }
            }
            Decision::Quarantine(_) => RecordResult::Quarantined {
                quarantine_id: entry_ids[i]
                    .ok_or_else(|| StoreError::Task(format!("record {i} got no quarantine entry")))?,
            },
            Decision::Unchanged { code } => RecordResult::Unchanged { code: code.clone() },
            Decision::Version(vi) => plan.version_result(*vi),
        });
    }
    Ok(results)
}

// ---- Quarantine writes.

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

/// The quarantine writes of a batch.
///
/// Records are grouped by raw payload (groups touch different entries, so their order does not
/// matter). A group is written set-wise, with the same result as record-by-record writes in
/// record order, when it is one record, or when it has no replays and its quarantinings come
/// before its resolutions (a payload repeated within a batch: only its first record can be
/// quarantined, the repeats are duplicate deliveries). Any other group (rare: an entry replayed
/// twice in one batch, a replay next to a fresh delivery of its payload) is written record by
/// record, in record order, with the same statements given one row each.
struct QuarantineWrites<'a> {
    records: &'a [IncomingRecord],
    plan: &'a Plan,
    raw_ids: &'a [i64],
    kinds: Vec<QKind>,
    inserts: Vec<QInsert<'a>>,
    /// Records whose entry id comes from `inserts`.
    insert_members: Vec<usize>,
    replays: Vec<QReplay<'a>>,
    resolves: Vec<QResolve>,
    /// Records to write one by one, in record order.
    slow: Vec<usize>,
    /// Entry id per record, known so far (replays).
    ids: Vec<Option<i64>>,
}

impl<'a> QuarantineWrites<'a> {
    fn of(batch: &'a CommitBatch, plan: &'a Plan, raw_ids: &'a [i64]) -> QuarantineWrites<'a> {
        let records = batch.records.as_slice();
        let kinds: Vec<QKind> = records
            .iter()
            .zip(&plan.decisions)
            .map(|(r, d)| match (d, r.replay_of, &r.verdict) {
                (Decision::Quarantine(_), Some(_), _) => QKind::Replay,
                (Decision::Quarantine(_), None, _) => QKind::Insert,
                (Decision::Unchanged { .. }, _, Verdict::Quarantine(_)) => QKind::Nothing,
                _ => QKind::Resolve,
            })
            .collect();
        let mut w = QuarantineWrites {
            records,
            plan,
            raw_ids,
            kinds,
            inserts: Vec::new(),
            insert_members: Vec::new(),
            replays: Vec::new(),
            resolves: Vec::new(),
            slow: Vec::new(),
            ids: vec![None; records.len()],
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
            if w.kinds[i] == QKind::Nothing {
                continue;
            }
            let g = *group_of.entry(*raw).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[g].push(i);
        }

        for members in &groups {
            let replays_unique = members.iter().all(|&i| match records[i].replay_of {
                Some(q) => replay_count[&q] == 1,
                None => true,
            });
            let no_replays = members.iter().all(|&i| records[i].replay_of.is_none());
            let inserts_first = members
                .windows(2)
                .all(|p| !(w.kinds[p[0]] == QKind::Resolve && w.kinds[p[1]] == QKind::Insert));
            if !(replays_unique && (members.len() == 1 || (no_replays && inserts_first))) {
                w.slow.extend_from_slice(members);
                continue;
            }
            let first = members[0];
            if members.len() == 1 {
                match (w.kinds[first], records[first].replay_of) {
                    (QKind::Insert, _) => {
                        w.inserts.push(w.insert_of(first));
                        w.insert_members.push(first);
                    }
                    (QKind::Replay, Some(q)) => {
                        w.replays.push(w.replay_of(first, q));
                        w.ids[first] = Some(q);
                    }
                    (QKind::Nothing, _) => {}
                    (_, replay_of) => w.resolves.push(QResolve {
                        raw_id: raw_ids[first],
                        replay_of,
                    }),
                }
                continue;
            }
            // Quarantinings then resolutions of one payload, no replays: the entry is created by
            // the first quarantining and updated by the others; the first resolution resolves it.
            let quarantined: Vec<usize> = members
                .iter()
                .copied()
                .filter(|&i| w.kinds[i] == QKind::Insert)
                .collect();
            if let (Some(&f), Some(&l)) = (quarantined.first(), quarantined.last()) {
                let last = w.insert_of(l);
                w.inserts.push(QInsert {
                    violations: last.violations,
                    mapping_id: last.mapping_id,
                    mapping_version: last.mapping_version,
                    ..w.insert_of(f)
                });
                w.insert_members.extend_from_slice(&quarantined);
            }
            if members.iter().any(|&i| w.kinds[i] == QKind::Resolve) {
                w.resolves.push(QResolve {
                    raw_id: raw_ids[first],
                    replay_of: None,
                });
            }
        }
        w.slow.sort_unstable();
        w
    }

    fn violations(&self, i: usize) -> &'a [Violation] {
        match &self.plan.decisions[i] {
            Decision::Quarantine(v) => v.as_slice(),
            _ => &[],
        }
    }

    fn insert_of(&self, i: usize) -> QInsert<'a> {
        let r = &self.records[i];
        QInsert {
            raw_id: self.raw_ids[i],
            source_id: &r.source_id,
            record_key: &r.record_key,
            violations: self.violations(i),
            mapping_id: &r.mapping_id,
            mapping_version: r.mapping_version,
        }
    }

    fn replay_of(&self, i: usize, id: i64) -> QReplay<'a> {
        let r = &self.records[i];
        QReplay {
            id,
            violations: self.violations(i),
            mapping_id: &r.mapping_id,
            mapping_version: r.mapping_version,
        }
    }
}

/// Parameter arrays of [`SQL_QUARANTINE_INSERT`].
struct QInsertParams<'a> {
    raw_ids: Vec<i64>,
    sources: Vec<&'a str>,
    keys: Vec<&'a str>,
    violations: Vec<Json<&'a [Violation]>>,
    mapping_ids: Vec<&'a str>,
    mapping_versions: Vec<i64>,
}

impl<'a> QInsertParams<'a> {
    fn of(rows: &[QInsert<'a>]) -> Self {
        QInsertParams {
            raw_ids: rows.iter().map(|r| r.raw_id).collect(),
            sources: rows.iter().map(|r| r.source_id).collect(),
            keys: rows.iter().map(|r| r.record_key).collect(),
            violations: rows.iter().map(|r| Json(r.violations)).collect(),
            mapping_ids: rows.iter().map(|r| r.mapping_id).collect(),
            mapping_versions: rows.iter().map(|r| r.mapping_version).collect(),
        }
    }
    fn params<'s>(&'s self, now: &'s DateTime<Utc>) -> Params<'s> {
        vec![
            &self.raw_ids,
            &self.sources,
            &self.keys,
            &self.violations,
            &self.mapping_ids,
            &self.mapping_versions,
            now,
        ]
    }
}

/// Parameter arrays of [`SQL_QUARANTINE_REPLAYED`].
struct QReplayParams<'a> {
    ids: Vec<i64>,
    violations: Vec<Json<&'a [Violation]>>,
    mapping_ids: Vec<&'a str>,
    mapping_versions: Vec<i64>,
}

impl<'a> QReplayParams<'a> {
    fn of(rows: &[QReplay<'a>]) -> Self {
        QReplayParams {
            ids: rows.iter().map(|r| r.id).collect(),
            violations: rows.iter().map(|r| Json(r.violations)).collect(),
            mapping_ids: rows.iter().map(|r| r.mapping_id).collect(),
            mapping_versions: rows.iter().map(|r| r.mapping_version).collect(),
        }
    }
    fn params<'s>(&'s self, now: &'s DateTime<Utc>) -> Params<'s> {
        vec![
            &self.ids,
            &self.violations,
            &self.mapping_ids,
            &self.mapping_versions,
            now,
        ]
    }
}

/// Parameter arrays of [`SQL_QUARANTINE_RESOLVE`].
struct QResolveParams {
    raw_ids: Vec<i64>,
    replay_of: Vec<Option<i64>>,
    increments: Vec<i32>,
}

impl QResolveParams {
    fn of(rows: &[QResolve]) -> Self {
        QResolveParams {
            raw_ids: rows.iter().map(|r| r.raw_id).collect(),
            replay_of: rows.iter().map(|r| r.replay_of).collect(),
            increments: rows.iter().map(|r| i32::from(r.replay_of.is_some())).collect(),
        }
    }
    fn params<'s>(&'s self, now: &'s DateTime<Utc>) -> Params<'s> {
        vec![&self.raw_ids, &self.replay_of, &self.increments, now]
    }
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

    fn catalogue(&self) -> &dyn super::catalogue::CatalogueStore {
        self
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
        client.execute(&stmt, &[&id, &Json(violations), &Utc::now()]).await?;
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

    async fn case_code_by_key(&self, key: &BusinessKey) -> StoreResult<Option<String>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT unified_code FROM cases
                 WHERE agency_credit_code = $1 AND case_type = $2 AND case_number = $3",
            )
            .await?;
        let row = client
            .query_opt(
                &stmt,
                &[&key.agency_credit_code, &key.case_type.as_str(), &key.case_number],
            )
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    async fn case_codes_by_target(
        &self,
        id_number: &str,
        after_id: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<(i64, String)>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT c.id, c.unified_code FROM cases c
                 WHERE c.id IN (SELECT case_id FROM case_versions
                                WHERE record -> 'target' ->> 'id_number' = $1)
                   AND c.id > $2
                 ORDER BY c.id LIMIT $3",
            )
            .await?;
        let rows = client
            .query(&stmt, &[&id_number, &after_id.unwrap_or(0), &limit])
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
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
        insert_audit(&client, entry, Utc::now()).await
    }

    async fn audit_log(&self, limit: i64) -> StoreResult<Vec<AuditRecord>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT id, at, actor, action, subject, detail FROM audit_log ORDER BY id DESC LIMIT $1")
            .await?;
        let rows = client.query(&stmt, &[&limit]).await?;
        Ok(rows.iter().map(audit_record).collect::<Result<_, _>>()?)
    }
}

/// Append an audit entry at `now`, on a client or inside the caller's transaction.
pub(crate) async fn insert_audit(
    client: &impl deadpool_postgres::GenericClient,
    entry: &AuditEntry,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let stmt = client
        .prepare_cached("INSERT INTO audit_log (at, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5)")
        .await?;
    client
        .execute(
            &stmt,
            &[&now, &entry.actor, &entry.action, &entry.subject, &entry.detail],
        )
        .await?;
    Ok(())
}

/// An audit entry from a row of `id, at, actor, action, subject, detail`.
pub(crate) fn audit_record(r: &Row) -> Result<AuditRecord, PgError> {
    Ok(AuditRecord {
        id: r.try_get(0)?,
        at: r.try_get(1)?,
        actor: r.try_get(2)?,
        action: r.try_get(3)?,
        subject: r.try_get(4)?,
        detail: r.try_get(5)?,
    })
}
