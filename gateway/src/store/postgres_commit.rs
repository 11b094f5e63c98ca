//! The PostgreSQL commit path: one batch of prepared records written in ONE transaction.
//!
//! Reads (counters under lock, existing cases, already archived payloads) are pipelined; the pure
//! planner ([`plan_batch`]) decides what each record becomes; new rows (raw payloads, cases,
//! versions, outbox rows) go in with binary `COPY`, with ids taken from their sequences in bulk,
//! and the few updates are set-wise `UPDATE ... FROM UNNEST` statements. The raw payload and the
//! canonical record are stored lz4-compressed ([`super::compress`]): the write rate on this
//! machine class is decided by bytes written per record (BENCHMARKS.md).

use super::compress;
use super::error::parse_case_type;
use super::plan::{
    plan_batch, resolution, resolved_note, same_source_time_warning, source_changes, superseding, CaseRef, CounterKey,
    Decision, ExistingCase, Plan,
};
use super::types::*;
use super::{StoreError, StoreResult};
use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use futures_util::SinkExt;
use normalizer::Violation;
// foldhash, not SipHash: these maps are keyed by every record of a batch (64-character content
// hashes among them) and live for one commit.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;
use std::sync::LazyLock;
use tokio_postgres::types::{IsNull, Json, ToSql, Type};
use tokio_postgres::{CopyInSink, Error as PgError, Row, Statement};

/// Type alias for parameter lists.
pub(super) type Params<'a> = Vec<&'a (dyn ToSql + Sync)>;

fn to_i32(n: u32) -> StoreResult<i32> {
    i32::try_from(n).map_err(|_| StoreError::Conflict(format!("sequence {n} does not fit the counter")))
}

// ---------------------------------------------------------------------------------------------
// Committing a batch.
//
// Three pipelines (each pipeline's statements are sent together and run by the server one after
// the other, in the order sent; the client waits once per pipeline) and four COPYs:
//   1. create and lock the counters, read the existing cases and the payloads already archived;
//   (plan the batch)
//   2. store the counters, take ids for new payloads and cases;
//   COPY the new raw payloads and the new cases;
//   3. payloads received more than once counted (`raw_receipts`), case heads, quarantine, cursors;
//   COPY the versions, then their outbox rows.
// A concurrent writer archiving the same payload between 1 and its COPY makes the COPY fail with
// a unique violation, which is retryable: the batch is run again and then finds the payload.
// ---------------------------------------------------------------------------------------------

/// Rules of a violation list, derived in SQL from the jsonb violations (`u.violations`).
pub(super) const RULES_OF_VIOLATIONS: &str =
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
    SELECT k.n, c.id, c.unified_code, c.current_version, c.record_hash, c.withdrawn, c.source_id, r.received_at,
           c.source_updated_at
    FROM UNNEST($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS k(credit_code, case_type, case_number, n)
    JOIN cases c ON c.agency_credit_code = k.credit_code AND c.case_type = k.case_type
                AND c.case_number = k.case_number
    LEFT JOIN case_versions v ON v.case_id = c.id AND v.version = c.current_version
    LEFT JOIN raw_records r ON r.id = v.raw_id";

/// The batch's payloads already archived: ordinal of the payload, raw id, and whether it waits in
/// the open quarantine.
const SQL_RAW_EXISTING: &str = "
    SELECT u.n, r.id, EXISTS (SELECT 1 FROM quarantine q WHERE q.raw_id = r.id AND q.status = 'open')
    FROM UNNEST($1::text[], $2::text[]) WITH ORDINALITY AS u(source_id, content_hash, n)
    JOIN raw_records r ON r.source_id = u.source_id AND r.content_hash = u.content_hash";

/// Payloads received more than once: when last, and how often in all. `$3` counts the first
/// receipt too, so a payload archived before this batch and seen `n` times in it gives `n + 1`,
/// which is `n` more than a count already there.
const SQL_RAW_SEEN: &str = "
    INSERT INTO raw_receipts (raw_id, last_received_at, times_received)
    SELECT * FROM UNNEST($1::int8[], $2::timestamptz[], $3::int4[])
    ON CONFLICT (raw_id) DO UPDATE
       SET last_received_at = EXCLUDED.last_received_at,
           times_received = raw_receipts.times_received + EXCLUDED.times_received - 1";

/// Ids for the new raw payloads and cases, taken from their sequences in one statement each, so
/// the rows can be written with `COPY` (which returns nothing).
const SQL_RAW_IDS: &str = "SELECT nextval('raw_records_id_seq') FROM generate_series(1, $1::int4)";
const SQL_CASE_IDS: &str = "SELECT nextval('cases_id_seq') FROM generate_series(1, $1::int4)";

const COPY_RAW: &str = "COPY raw_records (id, source_id, record_key, content_hash, format, received_at,
    payload, payload_codec, chain_seq, chain_alg, chain_hash) FROM STDIN (FORMAT binary)";
const COPY_RAW_TYPES: &[Type] = &[
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::BYTEA,
    Type::INT2,
    Type::INT8,
    Type::INT2,
    Type::BYTEA,
];

/// A new raw row's link columns: `chain_seq`, `chain_alg`, `chain_hash` (NULL without a chain).
type LinkColumns = (Option<i64>, Option<i16>, Option<Vec<u8>>);

/// The chain heads of the batch's sources: created at position 0 if missing (so there is a row to
/// lock), then locked in sorted order after the counters (every commit takes them in this order).
const SQL_HEADS_CREATE: &str = "
    INSERT INTO archive_chain_heads (source_id)
    SELECT u.source_id FROM UNNEST($1::text[]) WITH ORDINALITY AS u(source_id, n) ORDER BY u.n
    ON CONFLICT (source_id) DO NOTHING";
const SQL_HEADS_LOCK: &str = "
    SELECT h.source_id, h.seq, h.head_hash FROM archive_chain_heads h
    WHERE h.source_id = ANY($1::text[])
    ORDER BY h.source_id COLLATE \"C\"
    FOR UPDATE OF h";
const SQL_HEADS_UPDATE: &str = "
    UPDATE archive_chain_heads h SET seq = u.seq, head_hash = u.hash, updated_at = $4
    FROM UNNEST($1::text[], $2::int8[], $3::bytea[]) AS u(source_id, seq, hash)
    WHERE h.source_id = u.source_id";

const COPY_CASES: &str = "COPY cases (id, unified_code, agency_credit_code, case_type, case_number, year, region,
    current_version, record_hash, withdrawn, source_id, created_at, updated_at, source_updated_at)
    FROM STDIN (FORMAT binary)";
const COPY_CASES_TYPES: &[Type] = &[
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT4,
    Type::TEXT,
    Type::INT4,
    Type::TEXT,
    Type::BOOL,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
];

const COPY_VERSIONS: &str = "COPY case_versions (case_id, version, status, raw_id, mapping_id, mapping_version,
    record_hash, record_lz4, target_id, warnings, created_at) FROM STDIN (FORMAT binary)";
const COPY_VERSIONS_TYPES: &[Type] = &[
    Type::INT8,
    Type::INT4,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::BYTEA,
    Type::TEXT,
    Type::JSONB,
    Type::TIMESTAMPTZ,
];

/// One row per sink and version, in version order then sink order. The versions are new, so
/// their idempotency keys (unified code and version) are too.
const COPY_OUTBOX: &str =
    "COPY outbox (sink_id, case_id, version, idempotency_key, created_at) FROM STDIN (FORMAT binary)";
const COPY_OUTBOX_TYPES: &[Type] = &[Type::TEXT, Type::INT8, Type::INT4, Type::TEXT, Type::TIMESTAMPTZ];

/// The joint-inspection index rows of a batch's new cases (see `joint_postgres.rs`).
const COPY_JOINT_MEMBERS: &str =
    "COPY joint_members (case_id, target_id, agency, source_id, check_date, task_id, group_id)
     FROM STDIN (FORMAT binary)";
const COPY_JOINT_MEMBERS_TYPES: &[Type] = &[
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::DATE,
    Type::TEXT,
    Type::INT8,
];

/// The publicity rows of a batch's new penalty cases (see `store/publicity.rs`).
const COPY_PUBLICITY: &str =
    "COPY penalty_publicity (case_id, unified_code, agency_credit_code, agency_name, source_id,
                                  version, decision_date, deadline, publicity_date, updated_at)
     FROM STDIN (FORMAT binary)";
const COPY_PUBLICITY_TYPES: &[Type] = &[
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT4,
    Type::DATE,
    Type::DATE,
    Type::DATE,
    Type::TIMESTAMPTZ,
];

/// A batch's inspections' index facts, queued for the background indexer.
const COPY_JOINT_QUEUE: &str =
    "COPY joint_queue (case_id, removed, target_id, agency, source_id, check_date, task_id, queued_at)
     FROM STDIN (FORMAT binary)";
const COPY_JOINT_QUEUE_TYPES: &[Type] = &[
    Type::INT8,
    Type::BOOL,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::DATE,
    Type::TEXT,
    Type::TIMESTAMPTZ,
];

const SQL_COUNTERS_UPDATE: &str = "
    UPDATE code_counters c SET last_seq = u.last_seq
    FROM UNNEST($1::text[], $2::int4[], $3::text[], $4::int4[]) AS u(case_type, year, region, last_seq)
    WHERE c.case_type = u.case_type AND c.year = u.year AND c.region = u.region";

const SQL_CASES_UPDATE: &str = "
    UPDATE cases c
       SET current_version = u.version, record_hash = u.record_hash, withdrawn = u.withdrawn,
           source_id = u.source_id, source_updated_at = u.source_updated_at, updated_at = $6
    FROM UNNEST($1::int8[], $2::int4[], $3::text[], $4::bool[], $5::text[], $7::timestamptz[])
         AS u(id, version, record_hash, withdrawn, source_id, source_updated_at)
    WHERE c.id = u.id";

static SQL_QUARANTINE_INSERT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO quarantine (raw_id, source_id, record_key, status, violations, rules, mapping_id,
                                 mapping_version, created_at, updated_at, case_number, target_name, target_id)
         SELECT u.raw_id, u.source_id, u.record_key, 'open', u.violations, {RULES_OF_VIOLATIONS},
                u.mapping_id, u.mapping_version, $7, $7, u.case_number, u.target_name, u.target_id
         FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::jsonb[], $5::text[], $6::int8[],
                     $8::text[], $9::text[], $10::text[])
              AS u(raw_id, source_id, record_key, violations, mapping_id, mapping_version,
                   case_number, target_name, target_id)
         ON CONFLICT (raw_id) WHERE status = 'open' DO UPDATE
            SET violations = EXCLUDED.violations, rules = EXCLUDED.rules, mapping_id = EXCLUDED.mapping_id,
                mapping_version = EXCLUDED.mapping_version, updated_at = EXCLUDED.updated_at,
                case_number = EXCLUDED.case_number, target_name = EXCLUDED.target_name,
                target_id = EXCLUDED.target_id
         RETURNING id, raw_id"
    )
});

static SQL_QUARANTINE_REPLAYED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE quarantine q
            SET violations = u.violations, rules = {RULES_OF_VIOLATIONS}, mapping_id = u.mapping_id,
                mapping_version = u.mapping_version, updated_at = $5, attempts = q.attempts + 1,
                case_number = COALESCE(u.case_number, q.case_number),
                target_name = COALESCE(u.target_name, q.target_name),
                target_id = COALESCE(u.target_id, q.target_id)
         FROM UNNEST($1::int8[], $2::jsonb[], $3::text[], $4::int8[], $6::text[], $7::text[], $8::text[])
              AS u(id, violations, mapping_id, mapping_version, case_number, target_name, target_id)
         WHERE q.id = u.id"
    )
});

/// Marks entries resolved: for each (raw id, replay-of id, increment), every entry that is open
/// with that raw id or has that id becomes `replayed` and gets `attempts + increment`.
const SQL_QUARANTINE_RESOLVE: &str = "
    WITH ops AS (
        SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::int4[], $5::text[], $6::text[], $7::int4[],
                             $8::text[], $9::int8[])
                 AS u(raw_id, replay_of, inc, note, code, version, mapping_id, mapping_version)
    ), hit AS (
        SELECT q.id, o.inc, o.note, o.code, o.version, o.mapping_id, o.mapping_version
        FROM ops o JOIN quarantine q ON q.raw_id = o.raw_id AND q.status = 'open'
        UNION ALL
        SELECT q.id, o.inc, o.note, o.code, o.version, o.mapping_id, o.mapping_version
        FROM ops o JOIN quarantine q ON q.id = o.replay_of
    )
    UPDATE quarantine q SET status = 'replayed', updated_at = $4, attempts = q.attempts + h.inc,
                            note = COALESCE(h.note, q.note), resolved_code = COALESCE(h.code, q.resolved_code),
                            resolved_version = COALESCE(h.version, q.resolved_version),
                            mapping_id = h.mapping_id, mapping_version = h.mapping_version
    FROM (SELECT id, max(inc) AS inc, max(note) AS note, max(code) AS code, max(version) AS version,
                 max(mapping_id) AS mapping_id, max(mapping_version) AS mapping_version
          FROM hit GROUP BY id) h
    WHERE q.id = h.id";

/// Records older than their case's head by source time, kept for the lineage (rare: written
/// with one statement, prepared only when a batch has some).
const SQL_STALE_INSERT: &str = "
    INSERT INTO stale_versions (case_id, head_version, raw_id, mapping_id, mapping_version, record_hash,
                                record_lz4, source_updated_at, warnings, created_at)
    SELECT u.case_id, u.head_version, u.raw_id, u.mapping_id, u.mapping_version, u.record_hash, u.record_lz4,
           u.source_updated_at, u.warnings, $10
    FROM UNNEST($1::int8[], $2::int4[], $3::int8[], $4::text[], $5::int8[], $6::text[], $7::bytea[],
                $8::timestamptz[], $9::jsonb[])
         AS u(case_id, head_version, raw_id, mapping_id, mapping_version, record_hash, record_lz4,
              source_updated_at, warnings)";

/// Open entries of records (source, record key) that got a later accepted version become
/// `superseded`, with a note naming the version (run after every other quarantine write).
const SQL_QUARANTINE_SUPERSEDE: &str = "
    UPDATE quarantine q SET status = 'superseded', note = u.note, updated_at = $4
    FROM UNNEST($1::text[], $2::text[], $3::text[]) AS u(source_id, record_key, note)
    WHERE q.status = 'open' AND q.source_id = u.source_id AND q.record_key = u.record_key";

const SQL_CURSORS_UPSERT: &str = "
    INSERT INTO source_cursors (source_id, cursor, updated_at)
    SELECT u.source_id, u.cursor, $3 FROM UNNEST($1::text[], $2::text[]) AS u(source_id, cursor)
    ON CONFLICT (source_id) DO UPDATE SET cursor = EXCLUDED.cursor, updated_at = EXCLUDED.updated_at";

/// The prepared statements of a commit (cached per connection).
struct Statements {
    counters_create: Statement,
    counters_lock: Statement,
    existing_cases: Statement,
    raw_existing: Statement,
    raw_seen: Statement,
    raw_ids: Statement,
    case_ids: Statement,
    counters_update: Statement,
    cases_update: Statement,
    quarantine_insert: Statement,
    quarantine_replayed: Statement,
    quarantine_resolve: Statement,
    cursors_upsert: Statement,
    copy_raw: Statement,
    copy_cases: Statement,
    copy_versions: Statement,
    copy_outbox: Statement,
}

impl Statements {
    async fn prepare(tx: &Transaction<'_>) -> Result<Statements, PgError> {
        let (
            counters_create,
            counters_lock,
            existing_cases,
            raw_existing,
            raw_seen,
            raw_ids,
            case_ids,
            counters_update,
            cases_update,
            quarantine_insert,
            quarantine_replayed,
            quarantine_resolve,
            cursors_upsert,
            copy_raw,
            copy_cases,
            copy_versions,
            copy_outbox,
        ) = tokio::try_join!(
            tx.prepare_cached(SQL_COUNTERS_CREATE),
            tx.prepare_cached(SQL_COUNTERS_LOCK),
            tx.prepare_cached(SQL_EXISTING_CASES),
            tx.prepare_cached(SQL_RAW_EXISTING),
            tx.prepare_cached(SQL_RAW_SEEN),
            tx.prepare_cached(SQL_RAW_IDS),
            tx.prepare_cached(SQL_CASE_IDS),
            tx.prepare_cached(SQL_COUNTERS_UPDATE),
            tx.prepare_cached(SQL_CASES_UPDATE),
            tx.prepare_cached(&SQL_QUARANTINE_INSERT),
            tx.prepare_cached(&SQL_QUARANTINE_REPLAYED),
            tx.prepare_cached(SQL_QUARANTINE_RESOLVE),
            tx.prepare_cached(SQL_CURSORS_UPSERT),
            tx.prepare_cached(COPY_RAW),
            tx.prepare_cached(COPY_CASES),
            tx.prepare_cached(COPY_VERSIONS),
            tx.prepare_cached(COPY_OUTBOX),
        )?;
        Ok(Statements {
            counters_create,
            counters_lock,
            existing_cases,
            raw_existing,
            raw_seen,
            raw_ids,
            case_ids,
            counters_update,
            cases_update,
            quarantine_insert,
            quarantine_replayed,
            quarantine_resolve,
            cursors_upsert,
            copy_raw,
            copy_cases,
            copy_versions,
            copy_outbox,
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
    source_updated_at: Option<DateTime<Utc>>,
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
        let accepted = accepted_of(record)?;
        let head = Head {
            version: v.version,
            record_hash: &accepted.record_hash,
            withdrawn: v.withdrawn,
            source_id: &record.source_id,
            source_updated_at: accepted.source_updated_at,
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

/// The position named by a 1-based SQL ordinal (`WITH ORDINALITY`) in a list of `len` items.
fn ordinal(n: i64, len: usize) -> StoreResult<usize> {
    usize::try_from(n - 1)
        .ok()
        .filter(|&i| i < len)
        .ok_or_else(|| StoreError::Corrupt(format!("ordinal {n} of {len}")))
}

/// A row count as an SQL `int4` parameter.
fn count_param(n: usize) -> StoreResult<i32> {
    i32::try_from(n).map_err(|_| StoreError::Task(format!("batch of {n} rows is too large")))
}

/// The ids a sequence handed out, sorted; exactly `expected` of them.
fn ids_of(rows: &[Row], expected: usize, what: &str) -> StoreResult<Vec<i64>> {
    let mut ids = rows.iter().map(|r| r.try_get(0)).collect::<Result<Vec<i64>, _>>()?;
    if ids.len() != expected {
        return Err(StoreError::Task(format!(
            "asked for {expected} {what} ids, got {}",
            ids.len()
        )));
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Bytes of encoded rows sent to the server at a time.
const COPY_CHUNK: usize = 1 << 20;

/// The rows of one binary `COPY ... FROM STDIN`, encoded here and sent in chunks of about
/// [`COPY_CHUNK`] bytes. (tokio-postgres's `BinaryCopyInWriter` hands every 4 KiB to the connection
/// through a one-slot channel: two task switches for every two rows of these tables.)
struct CopyWriter {
    sink: Pin<Box<CopyInSink<Bytes>>>,
    types: &'static [Type],
    buf: BytesMut,
}

impl CopyWriter {
    /// Start copying with `stmt`, whose columns have `types`.
    async fn start(tx: &Transaction<'_>, stmt: &Statement, types: &'static [Type]) -> StoreResult<CopyWriter> {
        let sink = tx.copy_in::<_, Bytes>(stmt).await?;
        let mut buf = BytesMut::with_capacity(COPY_CHUNK + 64 * 1024);
        buf.put_slice(b"PGCOPY\n\xff\r\n\0");
        buf.put_i32(0); // flags
        buf.put_i32(0); // header extension length
        Ok(CopyWriter {
            sink: Box::pin(sink),
            types,
            buf,
        })
    }

    /// Add one row (one value per column, in the statement's column order).
    async fn row(&mut self, values: &[&(dyn ToSql + Sync)]) -> StoreResult<()> {
        let columns = i16::try_from(values.len())
            .ok()
            .filter(|_| values.len() == self.types.len())
            .ok_or_else(|| {
                StoreError::Task(format!(
                    "COPY row of {} values for {} columns",
                    values.len(),
                    self.types.len()
                ))
            })?;
        self.buf.put_i16(columns);
        for (i, (value, ty)) in values.iter().zip(self.types).enumerate() {
            let at = self.buf.len();
            self.buf.put_i32(0);
            let len = match value
                .to_sql_checked(ty, &mut self.buf)
                .map_err(|e| StoreError::Task(format!("COPY column {i} ({ty}): {e}")))?
            {
                IsNull::Yes => -1,
                IsNull::No => i32::try_from(self.buf.len() - at - 4)
                    .map_err(|_| StoreError::Task(format!("COPY column {i}: value too large")))?,
            };
            self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
        if self.buf.len() >= COPY_CHUNK {
            let chunk = self.buf.split().freeze();
            self.sink.send(chunk).await?;
        }
        Ok(())
    }

    /// Send the rest and end the copy.
    async fn finish(mut self) -> StoreResult<u64> {
        self.buf.put_i16(-1);
        let chunk = self.buf.split().freeze();
        self.sink.send(chunk).await?;
        Ok(self.sink.as_mut().finish().await?)
    }
}

pub(super) async fn commit_in(
    tx: &Transaction<'_>,
    batch: &CommitBatch,
    joint: &super::joint::JointSettings,
    chain: Option<crate::crypto::chain::HashAlg>,
) -> StoreResult<Vec<RecordResult>> {
    if let Some(fence) = &batch.fence {
        check_fence(tx, fence).await?;
    }
    let now = Utc::now();
    let records = &batch.records;
    let st = Statements::prepare(tx).await?;

    // ---- Pipeline 1: counters locked (in sorted order, created at 0 if missing, so there is a
    // row to lock), then existing cases read under the locks, and the payloads already archived.
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
    let raw_sources: Vec<&str> = payloads.rows.iter().map(|&i| records[i].source_id.as_str()).collect();
    let raw_hashes: Vec<&str> = payloads
        .rows
        .iter()
        .map(|&i| records[i].payload_hash.as_str())
        .collect();
    let raw_params: Params<'_> = vec![&raw_sources, &raw_hashes];

    // The chain heads of the batch's sources, when commits keep the chain.
    let chain_sources: Vec<&str> = match chain {
        Some(_) => raw_sources
            .iter()
            .copied()
            .collect::<BTreeSet<&str>>()
            .into_iter()
            .collect(),
        None => Vec::new(),
    };
    let chain_params: Params<'_> = vec![&chain_sources];
    let (heads_create, heads_lock) = if chain_sources.is_empty() {
        (None, None)
    } else {
        let (c, l) = tokio::try_join!(tx.prepare_cached(SQL_HEADS_CREATE), tx.prepare_cached(SQL_HEADS_LOCK))?;
        (Some(c), Some(l))
    };

    let (_, counter_rows, _, head_rows, case_rows, raw_rows) = tokio::try_join!(
        biased;
        execute_some(tx, &st.counters_create, some_if(ctr_types.len(), &counter_params)),
        query_some(tx, &st.counters_lock, some_if(ctr_types.len(), &counter_params)),
        async {
            match &heads_create {
                Some(stmt) => execute_some(tx, stmt, Some(&chain_params)).await,
                None => Ok(0),
            }
        },
        async {
            match &heads_lock {
                Some(stmt) => query_some(tx, stmt, Some(&chain_params)).await,
                None => Ok(Vec::new()),
            }
        },
        query_some(tx, &st.existing_cases, some_if(keys.len(), &key_params)),
        query_some(tx, &st.raw_existing, some_if(payloads.rows.len(), &raw_params)),
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
        let key = keys[ordinal(row.try_get(0)?, keys.len())?];
        existing.insert(
            (*key).clone(),
            ExistingCase {
                case_id: row.try_get(1)?,
                code: row.try_get(2)?,
                version: row.try_get(3)?,
                record_hash: row.try_get(4)?,
                withdrawn: row.try_get(5)?,
                source_id: row.try_get(6)?,
                head_received_at: row.try_get(7)?,
                head_source_time: row.try_get(8)?,
            },
        );
    }
    // Payloads archived before this batch are duplicate deliveries unless they wait in the open
    // quarantine.
    let mut row_ids: Vec<Option<i64>> = vec![None; payloads.rows.len()];
    let mut open_before: Vec<bool> = vec![false; payloads.rows.len()];
    let mut delivered: HashSet<(String, String)> = HashSet::new();
    for row in raw_rows {
        let p = ordinal(row.try_get(0)?, payloads.rows.len())?;
        row_ids[p] = Some(row.try_get(1)?);
        if row.try_get(2)? {
            open_before[p] = true;
        } else {
            delivered.insert((raw_sources[p].to_string(), raw_hashes[p].to_string()));
        }
    }
    let seen_again: Vec<usize> = (0..payloads.rows.len()).filter(|&p| row_ids[p].is_some()).collect();
    let new_payloads: Vec<usize> = (0..payloads.rows.len()).filter(|&p| row_ids[p].is_none()).collect();

    // ---- Decide.
    let plan =
        plan_batch(records, &existing, &counters, &delivered).map_err(|e| StoreError::Conflict(e.to_string()))?;
    for change in source_changes(&plan, records, &existing) {
        super::audit_postgres::insert_audit(tx, &change.audit_entry(), now).await?;
    }
    let (new_heads, existing_heads) = heads(records, &plan)?;
    let nc = &plan.new_cases;

    // ---- Pipeline 2: counters stored, payloads received again counted, ids for the new rows.
    let cu_types: Vec<&str> = plan.counters.iter().map(|(k, _)| k.case_type.as_str()).collect();
    let cu_years: Vec<i32> = plan.counters.iter().map(|(k, _)| k.year).collect();
    let cu_regions: Vec<&str> = plan.counters.iter().map(|(k, _)| k.region.as_str()).collect();
    let cu_last: Vec<i32> = plan
        .counters
        .iter()
        .map(|(_, n)| to_i32(*n))
        .collect::<StoreResult<_>>()?;
    let counters_update: Params<'_> = vec![&cu_types, &cu_years, &cu_regions, &cu_last];

    let new_raw_count = count_param(new_payloads.len())?;
    let new_case_count = count_param(nc.len())?;
    let raw_count: Params<'_> = vec![&new_raw_count];
    let case_count: Params<'_> = vec![&new_case_count];
    let (_, raw_id_rows, case_id_rows) = tokio::try_join!(
        biased;
        execute_some(tx, &st.counters_update, some_if(plan.counters.len(), &counters_update)),
        query_some(tx, &st.raw_ids, some_if(new_payloads.len(), &raw_count)),
        query_some(tx, &st.case_ids, some_if(nc.len(), &case_count)),
    )?;
    let raw_new_ids = ids_of(&raw_id_rows, new_payloads.len(), "raw record")?;
    for (&p, &id) in new_payloads.iter().zip(&raw_new_ids) {
        row_ids[p] = Some(id);
    }
    let raw_ids: Vec<i64> = payloads
        .row_of
        .iter()
        .map(|&p| row_ids[p].ok_or_else(|| StoreError::Task("a raw payload got no id".into())))
        .collect::<StoreResult<_>>()?;
    let new_case_ids = ids_of(&case_id_rows, nc.len(), "case")?;

    // ---- The new payloads' links: each new raw row is the next link of its source's chain.
    let mut links: Vec<LinkColumns> = vec![(None, None, None); new_payloads.len()];
    let mut head_updates: BTreeMap<&str, (i64, [u8; 32])> = BTreeMap::new();
    if let Some(alg) = chain {
        let mut heads: HashMap<String, (i64, [u8; 32])> = HashMap::new();
        for row in &head_rows {
            let source: String = row.try_get(0)?;
            let bytes: Vec<u8> = row.try_get(2)?;
            let hash = crate::crypto::chain::hash_of_bytes(&bytes)
                .ok_or_else(|| StoreError::Corrupt(format!("chain head of {source}: {} bytes", bytes.len())))?;
            heads.insert(source, (row.try_get(1)?, hash));
        }
        for (slot, (&p, &id)) in links.iter_mut().zip(new_payloads.iter().zip(&raw_new_ids)) {
            let r = &records[payloads.rows[p]];
            let head = heads
                .get_mut(r.source_id.as_str())
                .ok_or_else(|| StoreError::Task(format!("no chain head locked for source {}", r.source_id)))?;
            let link = crate::crypto::chain::Link {
                alg,
                source_id: &r.source_id,
                seq: head.0 + 1,
                raw_id: id,
                received_at: r.received_at,
                payload_digest: super::archive::payload_digest(alg, r)?,
                prev: head.1,
            };
            let hash = link.hash();
            *head = (link.seq, hash);
            head_updates.insert(r.source_id.as_str(), (link.seq, hash));
            *slot = (Some(link.seq), Some(alg.code()), Some(hash.to_vec()));
        }
    }

    // ---- New payloads and cases, with COPY.
    let mut writer = CopyWriter::start(tx, &st.copy_raw, COPY_RAW_TYPES).await?;
    for ((&p, id), link) in new_payloads.iter().zip(&raw_new_ids).zip(&links) {
        let r = &records[payloads.rows[p]];
        let stored = compress::stored(r.payload_lz4.as_deref(), &r.payload);
        let payload: &[u8] = &stored;
        let format = r.payload_format.as_str();
        let row: [&(dyn ToSql + Sync); 11] = [
            id,
            &r.source_id,
            &r.record_key,
            &r.payload_hash,
            &format,
            &r.received_at,
            &payload,
            &compress::CODEC_LZ4,
            &link.0,
            &link.1,
            &link.2,
        ];
        writer.row(&row).await?;
    }
    writer.finish().await?;

    let mut writer = CopyWriter::start(tx, &st.copy_cases, COPY_CASES_TYPES).await?;
    for ((c, h), id) in nc.iter().zip(&new_heads).zip(&new_case_ids) {
        let case_type = c.key.case_type.as_str();
        let credit_code = c.key.agency_credit_code.as_str();
        let case_number = c.key.case_number.as_str();
        let row: [&(dyn ToSql + Sync); 14] = [
            id,
            &c.code,
            &credit_code,
            &case_type,
            &case_number,
            &c.year,
            &c.region,
            &h.version,
            &h.record_hash,
            &h.withdrawn,
            &h.source_id,
            &now,
            &now,
            &h.source_updated_at,
        ];
        writer.row(&row).await?;
    }
    writer.finish().await?;

    // ---- Pipeline 3: case heads, quarantine, cursors.
    let eh_ids: Vec<i64> = existing_heads.keys().copied().collect();
    let eh_versions: Vec<i32> = existing_heads.values().map(|h| h.version).collect();
    let eh_hashes: Vec<&str> = existing_heads.values().map(|h| h.record_hash).collect();
    let eh_withdrawn: Vec<bool> = existing_heads.values().map(|h| h.withdrawn).collect();
    let eh_sources: Vec<&str> = existing_heads.values().map(|h| h.source_id).collect();
    let eh_source_times: Vec<Option<DateTime<Utc>>> = existing_heads.values().map(|h| h.source_updated_at).collect();
    let cases_update: Params<'_> = vec![
        &eh_ids,
        &eh_versions,
        &eh_hashes,
        &eh_withdrawn,
        &eh_sources,
        &now,
        &eh_source_times,
    ];

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

    // Payloads archived before and received again, and new ones received more than once.
    let mut receipt_ids: Vec<i64> = Vec::new();
    let mut receipt_last: Vec<DateTime<Utc>> = Vec::new();
    let mut receipt_times: Vec<i32> = Vec::new();
    for (p, id) in row_ids.iter().enumerate() {
        // `seen_again` holds payload rows in increasing order.
        let times = if seen_again.binary_search(&p).is_ok() {
            payloads.times[p] + 1
        } else if payloads.times[p] > 1 {
            payloads.times[p]
        } else {
            continue;
        };
        receipt_ids.push(id.ok_or_else(|| StoreError::Task("a raw payload got no id".into()))?);
        receipt_last.push(payloads.last_received[p]);
        receipt_times.push(times);
    }
    let raw_seen: Params<'_> = vec![&receipt_ids, &receipt_last, &receipt_times];
    let hu_sources: Vec<&str> = head_updates.keys().copied().collect();
    let hu_seqs: Vec<i64> = head_updates.values().map(|h| h.0).collect();
    let hu_hashes: Vec<&[u8]> = head_updates.values().map(|h| h.1.as_slice()).collect();
    let heads_update: Params<'_> = vec![&hu_sources, &hu_seqs, &hu_hashes, &now];
    let heads_update_stmt = if hu_sources.is_empty() {
        None
    } else {
        Some(tx.prepare_cached(SQL_HEADS_UPDATE).await?)
    };

    let (_, _, _, created_entries, _, _, _) = tokio::try_join!(
        biased;
        async {
            match &heads_update_stmt {
                Some(stmt) => execute_some(tx, stmt, Some(&heads_update)).await,
                None => Ok(0),
            }
        },
        execute_some(tx, &st.raw_seen, some_if(receipt_ids.len(), &raw_seen)),
        execute_some(tx, &st.cases_update, some_if(existing_heads.len(), &cases_update)),
        query_some(tx, &st.quarantine_insert, some_if(q.inserts.len(), &q_insert_params)),
        execute_some(tx, &st.quarantine_replayed, some_if(q.replays.len(), &q_replayed_params)),
        execute_some(tx, &st.quarantine_resolve, some_if(q.resolves.len(), &q_resolve_params)),
        execute_some(tx, &st.cursors_upsert, some_if(cursor_sources.len(), &cursors_upsert)),
    )?;

    // ---- Versions and their outbox rows, with COPY.
    let vs = &plan.versions;
    let v_case_ids: Vec<i64> = vs
        .iter()
        .map(|v| match v.case {
            CaseRef::Existing(id) => id,
            CaseRef::New(i) => new_case_ids[i],
        })
        .collect();
    let mut writer = CopyWriter::start(tx, &st.copy_versions, COPY_VERSIONS_TYPES).await?;
    for (v, case_id) in vs.iter().zip(&v_case_ids) {
        let record = &records[v.record_index];
        let a = accepted_of(record)?;
        let status = if v.withdrawn { "withdrawn" } else { "active" };
        let stored = compress::stored(a.record_lz4.as_deref(), a.record_json.as_bytes());
        let compressed: &[u8] = &stored;
        let with_order_warning: Vec<Violation>;
        let warnings = if v.same_source_time {
            with_order_warning = a
                .warnings
                .iter()
                .cloned()
                .chain([same_source_time_warning(&v.code, v.version)])
                .collect();
            Json(with_order_warning.as_slice())
        } else {
            Json(a.warnings.as_slice())
        };
        let row: [&(dyn ToSql + Sync); 11] = [
            case_id,
            &v.version,
            &status,
            &raw_ids[v.record_index],
            &record.mapping_id,
            &record.mapping_version,
            &a.record_hash,
            &compressed,
            &a.target_id,
            &warnings,
            &now,
        ];
        writer.row(&row).await?;
    }
    writer.finish().await?;

    if !batch.sinks.is_empty() && !vs.is_empty() {
        let mut writer = CopyWriter::start(tx, &st.copy_outbox, COPY_OUTBOX_TYPES).await?;
        for (v, case_id) in vs.iter().zip(&v_case_ids) {
            let key = format!("{}:{}", v.code, v.version);
            let case_type = accepted_of(&records[v.record_index])?.key.case_type.as_str();
            for sink in batch.sinks.iter().filter(|s| s.carries(case_type)) {
                let row: [&(dyn ToSql + Sync); 5] = [&sink.id, case_id, &v.version, &key, &now];
                writer.row(&row).await?;
            }
        }
        writer.finish().await?;
    }

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
                    note: resolved_note(&plan, i),
                    resolution: resolution(&plan, i),
                    mapping_id: record.mapping_id.clone(),
                    mapping_version: record.mapping_version,
                };
                let one = QResolveParams::of(std::slice::from_ref(&op));
                tx.execute(&st.quarantine_resolve, &one.params(&now)).await?;
            }
        }
    }

    if !plan.stale.is_empty() {
        write_stale(tx, records, &plan, &raw_ids, &new_case_ids, now).await?;
    }
    let (clear, awaiting) = super::supplement::awaiting_changes(records, &plan, &v_case_ids);
    write_awaiting(tx, &clear, &awaiting, now).await?;
    let (withdrawn_penalties, publicity) = super::publicity::publicity_changes(records, &plan, &v_case_ids);
    write_publicity(tx, &withdrawn_penalties, &publicity, now).await?;
    if joint.enabled {
        // The joint-inspection index, in the same transaction (see store/joint.rs).
        let versions: Vec<(usize, i64, bool)> = vs
            .iter()
            .zip(&v_case_ids)
            .map(|(v, id)| (v.record_index, *id, v.withdrawn))
            .collect();
        let changes = super::joint::changes_of(records, &versions);
        if joint.background && !changes.is_empty() {
            // The indexer applies them (`joint_drain`): the commit only appends them.
            let stmt = tx.prepare_cached(COPY_JOINT_QUEUE).await?;
            let mut writer = CopyWriter::start(tx, &stmt, COPY_JOINT_QUEUE_TYPES).await?;
            let none_text: Option<&str> = None;
            let none_date: Option<chrono::NaiveDate> = None;
            for c in &changes {
                match c {
                    super::joint::MemberChange::Upsert(m) => {
                        let row: [&(dyn ToSql + Sync); 8] = [
                            &m.case_id,
                            &false,
                            &m.target_id,
                            &m.agency,
                            &m.source_id,
                            &m.check_date,
                            &m.task_id,
                            &now,
                        ];
                        writer.row(&row).await?;
                    }
                    super::joint::MemberChange::Remove(id) => {
                        let row: [&(dyn ToSql + Sync); 8] = [
                            id, &true, &none_text, &none_text, &none_text, &none_date, &none_text, &now,
                        ];
                        writer.row(&row).await?;
                    }
                }
            }
            writer.finish().await?;
        } else if !changes.is_empty() {
            let mut existing: Vec<i64> = vs
                .iter()
                .filter_map(|v| match v.case {
                    CaseRef::Existing(id) => Some(id),
                    CaseRef::New(_) => None,
                })
                .collect();
            existing.sort_unstable();
            existing.dedup();
            // New cases' index rows by COPY (none can be there yet); the rest set-wise in `apply`.
            let fresh: Vec<&super::joint::Member> = changes
                .iter()
                .filter_map(|c| match c {
                    super::joint::MemberChange::Upsert(m) if existing.binary_search(&m.case_id).is_err() => Some(m),
                    _ => None,
                })
                .collect();
            if !fresh.is_empty() {
                let stmt = tx.prepare_cached(COPY_JOINT_MEMBERS).await?;
                let mut writer = CopyWriter::start(tx, &stmt, COPY_JOINT_MEMBERS_TYPES).await?;
                for m in &fresh {
                    let row: [&(dyn ToSql + Sync); 7] = [
                        &m.case_id,
                        &m.target_id,
                        &m.agency,
                        &m.source_id,
                        &m.check_date,
                        &m.task_id,
                        &m.group_id,
                    ];
                    writer.row(&row).await?;
                }
                writer.finish().await?;
            }
            let sinks = super::types::sinks_carrying(&batch.sinks, super::joint::JOINT_RECORD_TYPE);
            super::joint_postgres::apply(tx, &changes, &existing, joint, &sinks, now).await?;
        }
    }
    let supersede = superseding(&plan, records);
    if !supersede.is_empty() {
        let sources: Vec<&str> = supersede.iter().map(|s| s.source_id).collect();
        let keys: Vec<&str> = supersede.iter().map(|s| s.record_key).collect();
        let notes: Vec<&str> = supersede.iter().map(|s| s.note.as_str()).collect();
        let stmt = tx.prepare_cached(SQL_QUARANTINE_SUPERSEDE).await?;
        tx.execute(&stmt, &[&sources, &keys, &notes, &now]).await?;
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
            Decision::Stale(si) => plan.stale_result(*si),
        });
    }
    Ok(results)
}

/// Cases whose new current version no longer awaits supplement.
const SQL_AWAITING_CLEAR: &str = "DELETE FROM awaiting_supplement WHERE case_id = ANY($1::int8[])";

/// Cases whose new current version awaits supplement: listed, keeping since when.
const SQL_AWAITING_SET: &str = "
    INSERT INTO awaiting_supplement (case_id, unified_code, agency_credit_code, case_type, case_number,
                                     source_id, fields, since, updated_at)
    SELECT u.case_id, u.code, u.agency, u.case_type, u.number, u.source, u.fields, $8, $8
    FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
         AS u(case_id, code, agency, case_type, number, source, fields)
    ON CONFLICT (case_id) DO UPDATE
       SET fields = EXCLUDED.fields, source_id = EXCLUDED.source_id, updated_at = EXCLUDED.updated_at";

/// Keep `awaiting_supplement` in step with the batch's new versions.
async fn write_awaiting(
    tx: &Transaction<'_>,
    clear: &[i64],
    awaiting: &[super::supplement::AwaitingWrite<'_>],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    if !clear.is_empty() {
        let stmt = tx.prepare_cached(SQL_AWAITING_CLEAR).await?;
        tx.execute(&stmt, &[&clear]).await?;
    }
    if !awaiting.is_empty() {
        let ids: Vec<i64> = awaiting.iter().map(|a| a.case_id).collect();
        let codes: Vec<&str> = awaiting.iter().map(|a| a.code).collect();
        let agencies: Vec<&str> = awaiting.iter().map(|a| a.key.agency_credit_code.as_str()).collect();
        let types: Vec<&str> = awaiting.iter().map(|a| a.key.case_type.as_str()).collect();
        let numbers: Vec<&str> = awaiting.iter().map(|a| a.key.case_number.as_str()).collect();
        let sources: Vec<&str> = awaiting.iter().map(|a| a.source_id).collect();
        let fields: Vec<&str> = awaiting.iter().map(|a| a.fields.as_str()).collect();
        let stmt = tx.prepare_cached(SQL_AWAITING_SET).await?;
        tx.execute(
            &stmt,
            &[&ids, &codes, &agencies, &types, &numbers, &sources, &fields, &now],
        )
        .await?;
    }
    Ok(())
}

/// Keep the batch's stale records (older than their case's head by source time) for the lineage.
async fn write_stale(
    tx: &Transaction<'_>,
    records: &[IncomingRecord],
    plan: &Plan,
    raw_ids: &[i64],
    new_case_ids: &[i64],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let mut case_ids = Vec::with_capacity(plan.stale.len());
    let mut head_versions = Vec::with_capacity(plan.stale.len());
    let mut stale_raw_ids = Vec::with_capacity(plan.stale.len());
    let mut mapping_ids = Vec::with_capacity(plan.stale.len());
    let mut mapping_versions = Vec::with_capacity(plan.stale.len());
    let mut hashes = Vec::with_capacity(plan.stale.len());
    let mut stored_records: Vec<Vec<u8>> = Vec::with_capacity(plan.stale.len());
    let mut source_times = Vec::with_capacity(plan.stale.len());
    let mut warnings = Vec::with_capacity(plan.stale.len());
    for s in &plan.stale {
        let record = &records[s.record_index];
        let a = accepted_of(record)?;
        case_ids.push(match s.case {
            CaseRef::Existing(id) => id,
            CaseRef::New(i) => new_case_ids[i],
        });
        head_versions.push(s.head_version);
        stale_raw_ids.push(raw_ids[s.record_index]);
        mapping_ids.push(record.mapping_id.as_str());
        mapping_versions.push(record.mapping_version);
        hashes.push(a.record_hash.as_str());
        stored_records.push(compress::stored(a.record_lz4.as_deref(), a.record_json.as_bytes()).into_owned());
        source_times.push(a.source_updated_at);
        warnings.push(Json(a.warnings.as_slice()));
    }
    let stmt = tx.prepare_cached(SQL_STALE_INSERT).await?;
    tx.execute(
        &stmt,
        &[
            &case_ids,
            &head_versions,
            &stale_raw_ids,
            &mapping_ids,
            &mapping_versions,
            &hashes,
            &stored_records,
            &source_times,
            &warnings,
            &now,
        ],
    )
    .await?;
    Ok(())
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
    labels: &'a RecordLabels,
}

/// A failed replay of an entry.
struct QReplay<'a> {
    id: i64,
    violations: &'a [Violation],
    mapping_id: &'a str,
    mapping_version: i64,
    labels: &'a RecordLabels,
}

/// A payload accepted (or unchanged): its open entry, and the replayed entry, are resolved.
struct QResolve {
    raw_id: i64,
    replay_of: Option<i64>,
    /// What the record became ([`resolved_note`]).
    note: Option<String>,
    /// The case version it became ([`resolution`]).
    resolution: Option<Resolution>,
    /// The mapping the resolving record was accepted with.
    mapping_id: String,
    /// Its version.
    mapping_version: i64,
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
                        note: resolved_note(plan, first),
                        resolution: resolution(plan, first),
                        mapping_id: records[first].mapping_id.clone(),
                        mapping_version: records[first].mapping_version,
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
            if let Some(&resolving) = members.iter().find(|&&i| w.kinds[i] == QKind::Resolve) {
                w.resolves.push(QResolve {
                    raw_id: raw_ids[first],
                    replay_of: None,
                    note: resolved_note(plan, resolving),
                    resolution: resolution(plan, resolving),
                    mapping_id: records[resolving].mapping_id.clone(),
                    mapping_version: records[resolving].mapping_version,
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
            labels: &r.labels,
        }
    }

    fn replay_of(&self, i: usize, id: i64) -> QReplay<'a> {
        let r = &self.records[i];
        QReplay {
            id,
            violations: self.violations(i),
            mapping_id: &r.mapping_id,
            mapping_version: r.mapping_version,
            labels: &r.labels,
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
    labels: LabelParams<'a>,
}

/// The label columns of quarantine writes, as parameter arrays.
struct LabelParams<'a> {
    case_numbers: Vec<Option<&'a str>>,
    target_names: Vec<Option<&'a str>>,
    target_ids: Vec<Option<&'a str>>,
}

impl<'a> LabelParams<'a> {
    fn of(labels: impl Iterator<Item = &'a RecordLabels> + Clone) -> Self {
        LabelParams {
            case_numbers: labels.clone().map(|l| l.case_number.as_deref()).collect(),
            target_names: labels.clone().map(|l| l.target_name.as_deref()).collect(),
            target_ids: labels.map(|l| l.target_id.as_deref()).collect(),
        }
    }
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
            labels: LabelParams::of(rows.iter().map(|r| r.labels)),
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
            &self.labels.case_numbers,
            &self.labels.target_names,
            &self.labels.target_ids,
        ]
    }
}

/// Parameter arrays of [`SQL_QUARANTINE_REPLAYED`].
struct QReplayParams<'a> {
    ids: Vec<i64>,
    violations: Vec<Json<&'a [Violation]>>,
    mapping_ids: Vec<&'a str>,
    mapping_versions: Vec<i64>,
    labels: LabelParams<'a>,
}

impl<'a> QReplayParams<'a> {
    fn of(rows: &[QReplay<'a>]) -> Self {
        QReplayParams {
            ids: rows.iter().map(|r| r.id).collect(),
            violations: rows.iter().map(|r| Json(r.violations)).collect(),
            mapping_ids: rows.iter().map(|r| r.mapping_id).collect(),
            mapping_versions: rows.iter().map(|r| r.mapping_version).collect(),
            labels: LabelParams::of(rows.iter().map(|r| r.labels)),
        }
    }
    fn params<'s>(&'s self, now: &'s DateTime<Utc>) -> Params<'s> {
        vec![
            &self.ids,
            &self.violations,
            &self.mapping_ids,
            &self.mapping_versions,
            now,
            &self.labels.case_numbers,
            &self.labels.target_names,
            &self.labels.target_ids,
        ]
    }
}

/// Parameter arrays of [`SQL_QUARANTINE_RESOLVE`].
struct QResolveParams {
    raw_ids: Vec<i64>,
    replay_of: Vec<Option<i64>>,
    increments: Vec<i32>,
    notes: Vec<Option<String>>,
    codes: Vec<Option<String>>,
    versions: Vec<Option<i32>>,
    mapping_ids: Vec<String>,
    mapping_versions: Vec<i64>,
}

impl QResolveParams {
    fn of(rows: &[QResolve]) -> Self {
        QResolveParams {
            raw_ids: rows.iter().map(|r| r.raw_id).collect(),
            replay_of: rows.iter().map(|r| r.replay_of).collect(),
            increments: rows.iter().map(|r| i32::from(r.replay_of.is_some())).collect(),
            notes: rows.iter().map(|r| r.note.clone()).collect(),
            codes: rows
                .iter()
                .map(|r| r.resolution.as_ref().map(|x| x.code.clone()))
                .collect(),
            versions: rows
                .iter()
                .map(|r| r.resolution.as_ref().and_then(|x| x.version))
                .collect(),
            mapping_ids: rows.iter().map(|r| r.mapping_id.clone()).collect(),
            mapping_versions: rows.iter().map(|r| r.mapping_version).collect(),
        }
    }
    fn params<'s>(&'s self, now: &'s DateTime<Utc>) -> Params<'s> {
        vec![
            &self.raw_ids,
            &self.replay_of,
            &self.increments,
            now,
            &self.notes,
            &self.codes,
            &self.versions,
            &self.mapping_ids,
            &self.mapping_versions,
        ]
    }
}

/// Refuse the transaction's commit unless `fence` still holds its job's lease; the lease row
/// stays locked until the transaction ends, so no takeover can slip in before the commit.
pub(crate) async fn check_fence(tx: &Transaction<'_>, fence: &super::cluster::Fence) -> StoreResult<()> {
    let row = tx
        .query_opt(
            "SELECT 1 FROM job_leases WHERE job = $1 AND holder = $2 AND epoch = $3 FOR SHARE",
            &[&fence.job, &fence.holder, &fence.epoch],
        )
        .await?;
    match row {
        Some(_) => Ok(()),
        None => Err(StoreError::Fenced {
            job: fence.job.clone(),
            holder: fence.holder.clone(),
            epoch: fence.epoch,
        }),
    }
}

/// Keep `penalty_publicity` in step with a batch's new versions (in the commit's transaction).
async fn write_publicity(
    tx: &Transaction<'_>,
    withdrawn: &[i64],
    writes: &[super::publicity::PublicityWrite<'_>],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    if !withdrawn.is_empty() {
        let stmt = tx
            .prepare_cached("UPDATE penalty_publicity SET withdrawn = TRUE, updated_at = $2 WHERE case_id = ANY($1)")
            .await?;
        tx.execute(&stmt, &[&withdrawn, &now]).await?;
    }
    if writes.is_empty() {
        return Ok(());
    }
    // New cases' rows by COPY (none can be there yet); the others' set-wise.
    let (fresh, existing): (Vec<_>, Vec<_>) = writes.iter().partition(|w| w.new);
    if !fresh.is_empty() {
        let stmt = tx.prepare_cached(COPY_PUBLICITY).await?;
        let mut writer = CopyWriter::start(tx, &stmt, COPY_PUBLICITY_TYPES).await?;
        for w in &fresh {
            let row: [&(dyn ToSql + Sync); 10] = [
                &w.case_id,
                &w.code,
                &w.agency_credit_code,
                &w.facts.agency_name,
                &w.source_id,
                &w.version,
                &w.facts.decision_date,
                &w.facts.deadline,
                &w.facts.publicity_date,
                &now,
            ];
            writer.row(&row).await?;
        }
        writer.finish().await?;
    }
    if existing.is_empty() {
        return Ok(());
    }
    let writes = existing;
    let ids: Vec<i64> = writes.iter().map(|w| w.case_id).collect();
    let codes: Vec<&str> = writes.iter().map(|w| w.code).collect();
    let agencies: Vec<&str> = writes.iter().map(|w| w.agency_credit_code).collect();
    let names: Vec<&str> = writes.iter().map(|w| w.facts.agency_name.as_str()).collect();
    let sources: Vec<&str> = writes.iter().map(|w| w.source_id).collect();
    let versions: Vec<i32> = writes.iter().map(|w| w.version).collect();
    let decided: Vec<chrono::NaiveDate> = writes.iter().map(|w| w.facts.decision_date).collect();
    let deadlines: Vec<Option<chrono::NaiveDate>> = writes.iter().map(|w| w.facts.deadline).collect();
    let publicity: Vec<Option<chrono::NaiveDate>> = writes.iter().map(|w| w.facts.publicity_date).collect();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO penalty_publicity (case_id, unified_code, agency_credit_code, agency_name, source_id, version,
                                            decision_date, deadline, publicity_date, withdrawn, updated_at)
             SELECT u.case_id, u.code, u.agency, u.name, u.source, u.version, u.decided, u.deadline, u.publicity,
                    FALSE, $10
             FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int4[], $7::date[],
                         $8::date[], $9::date[])
                  AS u(case_id, code, agency, name, source, version, decided, deadline, publicity)
             ON CONFLICT (case_id) DO UPDATE
                SET agency_name = EXCLUDED.agency_name, source_id = EXCLUDED.source_id, version = EXCLUDED.version,
                    decision_date = EXCLUDED.decision_date, deadline = EXCLUDED.deadline,
                    publicity_date = EXCLUDED.publicity_date, withdrawn = FALSE, updated_at = EXCLUDED.updated_at",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &ids, &codes, &agencies, &names, &sources, &versions, &decided, &deadlines, &publicity, &now,
        ],
    )
    .await?;
    Ok(())
}
