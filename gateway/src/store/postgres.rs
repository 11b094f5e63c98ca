//! PostgreSQL backend: the production store, shared by several gateway instances.
//!
//! Connections come from a deadpool pool. A batch commits in ONE transaction
//! ([`super::postgres_commit`]): reads are pipelined, new rows go in with binary `COPY`, updates
//! are set-wise statements over `UNNEST`ed arrays, so a batch of thousands of records costs a
//! handful of waits for the server, not thousands. Results are those of the SQLite store for the
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

use super::audit_postgres::{audit_record, insert_audit};
use super::compress;
use super::console::{self, AuditFilter, Dialect, RecordFate, RecordFilter};
use super::error::{parse_case_number, parse_case_type, parse_credit_code};
use super::postgres_commit::RULES_OF_VIOLATIONS;
use super::types::*;
use super::{Store, StoreError, StoreResult};
use adapters::common::postgres_tls::{error_chain, PostgresTarget};
use async_trait::async_trait;
use chrono::Utc;
use deadpool_postgres::{ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use normalizer::Violation;
use serde_json::Value;
use std::time::Duration;
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::Row;

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
    (
        "0006_compact_rows",
        include_str!("../../migrations/postgres/0006_compact_rows.sql"),
    ),
    (
        "0007_discriminating_index_keys",
        include_str!("../../migrations/postgres/0007_discriminating_index_keys.sql"),
    ),
    (
        "0008_raw_receipts",
        include_str!("../../migrations/postgres/0008_raw_receipts.sql"),
    ),
    (
        "0009_source_time",
        include_str!("../../migrations/postgres/0009_source_time.sql"),
    ),
    (
        "0010_console",
        include_str!("../../migrations/postgres/0010_console.sql"),
    ),
    (
        "0011_cluster",
        include_str!("../../migrations/postgres/0011_cluster.sql"),
    ),
    ("0012_joint", include_str!("../../migrations/postgres/0012_joint.sql")),
    (
        "0013_officers",
        include_str!("../../migrations/postgres/0013_officers.sql"),
    ),
    (
        "0014_plans_supplement",
        include_str!("../../migrations/postgres/0014_plans_supplement.sql"),
    ),
    (
        "0015_attachments",
        include_str!("../../migrations/postgres/0015_attachments.sql"),
    ),
    (
        "0016_reconciliation_alerts",
        include_str!("../../migrations/postgres/0016_reconciliation_alerts.sql"),
    ),
    (
        "0017_publicity",
        include_str!("../../migrations/postgres/0017_publicity.sql"),
    ),
    (
        "0018_joint_queue",
        include_str!("../../migrations/postgres/0018_joint_queue.sql"),
    ),
    (
        "0021_archive_chain",
        include_str!("../../migrations/postgres/0021_archive_chain.sql"),
    ),
];

/// Advisory lock taken (per transaction) while migrating, so instances starting together apply
/// each migration once. The value is "ganzhi" in ASCII followed by 1.
const MIGRATION_LOCK: i64 = 0x6761_6e7a_6869_0001;

/// How long opening one connection may take before the pool gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a task waits for a free pool connection before failing (as the store being down).
const POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest statement, unless the URL's `options` set `statement_timeout` (migrations lift it).
const STATEMENT_TIMEOUT_MS: u64 = 300_000;

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    pub(crate) joint: std::sync::Arc<super::joint::SettingsCell>,
    pub(crate) archive: std::sync::Arc<super::archive::ChainSettingsCell>,
}

impl PostgresStore {
    /// The rows of one console statement.
    pub(crate) async fn statement_rows(&self, statement: console::Statement) -> StoreResult<Vec<Row>> {
        let params = pg_values(statement.params);
        let refs = param_refs(&params);
        let client = self.client().await?;
        Ok(client.query(&statement.sql, &refs).await?)
    }

    /// A console page and the count of everything its filter selects, in one round trip each.
    pub(crate) async fn page_and_count(
        &self,
        page: console::Statement,
        count: console::Statement,
    ) -> StoreResult<(Vec<Row>, i64)> {
        let (page_params, count_params) = (pg_values(page.params), pg_values(count.params));
        let (page_refs, count_refs) = (param_refs(&page_params), param_refs(&count_params));
        let client = self.client().await?;
        let (rows, total) = tokio::try_join!(
            client.query(&page.sql, &page_refs),
            client.query_one(&count.sql, &count_refs),
        )?;
        Ok((rows, total.try_get(0)?))
    }

    /// Connect to `url` (`postgres://user@host:port/db`, or the `key=value` form) with a pool of
    /// at most `pool_size` connections, TLS as the URL's `sslmode` says (default `prefer`; a CA
    /// file for `verify-ca` / `verify-full` given as `sslrootcert` in the URL). Takes one
    /// connection before returning, so a wrong URL, an unusable CA file, an unreachable server or
    /// a refused certificate fails here, as [`StoreError::Pool`].
    pub async fn connect(url: &str, pool_size: usize) -> StoreResult<PostgresStore> {
        let target = PostgresTarget::parse(url, None).map_err(|e| StoreError::Pool(e.to_string()))?;
        PostgresStore::connect_to(&target, pool_size).await
    }

    /// Like [`PostgresStore::connect`], for a connection string already read (with the store's
    /// `ssl_root_cert` setting, see [`crate::config::StoreConfig::postgres_target`]).
    pub async fn connect_to(target: &PostgresTarget, pool_size: usize) -> StoreResult<PostgresStore> {
        let mut target = target.clone();
        let config = target.config_mut();
        let options = config.get_options().unwrap_or_default().to_string();
        if !options.contains("statement_timeout") {
            config.options(format!("{options} -c statement_timeout={STATEMENT_TIMEOUT_MS}").trim());
        }
        let manager = target
            .manager(ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            })
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(CONNECT_TIMEOUT))
            .wait_timeout(Some(POOL_WAIT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        let store = PostgresStore {
            pool,
            joint: std::sync::Arc::default(),
            archive: std::sync::Arc::default(),
        };
        let tls = store.session_tls().await?;
        tracing::info!(
            sslmode = %target.ssl_mode(),
            tls = tls.as_deref().unwrap_or("off"),
            "PostgreSQL store connected"
        );
        Ok(store)
    }

    /// The value of a run-time setting in the store's sessions (`SHOW name`), for diagnostics:
    /// e.g. `statement_timeout` or `ssl` as the store's connections see them.
    pub async fn session_setting(&self, name: &str) -> StoreResult<String> {
        let client = self.client().await?;
        let row = client.query_one("SELECT current_setting($1)", &[&name]).await?;
        Ok(row.try_get(0)?)
    }

    /// The TLS protocol of a pooled session as the server reports it (`TLSv1.3`), `None` when
    /// the session is not encrypted (`sslmode=disable`, or `prefer` with a server without TLS).
    pub async fn session_tls(&self) -> StoreResult<Option<String>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT coalesce(version, 'TLS') FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl",
                &[],
            )
            .await?;
        Ok(row.map(|r| r.try_get::<_, Option<String>>(0)).transpose()?.flatten())
    }

    pub(crate) async fn client(&self) -> StoreResult<deadpool_postgres::Client> {
        self.pool.get().await.map_err(pool_error)
    }
}

fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => StoreError::Pool(format!("cannot connect to PostgreSQL: {}", error_chain(&e))),
        other => StoreError::Pool(other.to_string()),
    }
}

fn corrupt_json<T: serde::de::DeserializeOwned>(v: Value) -> StoreResult<T> {
    serde_json::from_value(v).map_err(|e| StoreError::Corrupt(format!("stored JSON: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Reading.
// ---------------------------------------------------------------------------------------------

/// Owned query parameters, built up with their SQL.
type OwnedParams = Vec<Box<dyn ToSql + Sync + Send>>;

/// `values` as the borrowed parameters a query takes.
fn param_refs(values: &OwnedParams) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v.as_ref() as &(dyn ToSql + Sync)).collect()
}

/// The console's statement parameters as PostgreSQL values.
fn pg_values(params: Vec<console::Param>) -> OwnedParams {
    params
        .into_iter()
        .map(|p| -> Box<dyn ToSql + Sync + Send> {
            match p {
                console::Param::Text(t) => Box::new(t),
                console::Param::Int(i) => Box::new(i),
                console::Param::Time(t) => Box::new(t),
                console::Param::TextList(list) => Box::new(list),
            }
        })
        .collect()
}

/// The WHERE clause of a quarantine filter (`paging`: with `before_id`), numbered parameters
/// from `$1`, and its values. Only the filters given appear, so each can use its index.
fn quarantine_conditions(f: &QuarantineFilter, paging: bool) -> (String, OwnedParams) {
    let mut conditions: Vec<String> = vec!["TRUE".into()];
    let mut values: OwnedParams = Vec::new();
    fn add(
        conditions: &mut Vec<String>,
        values: &mut OwnedParams,
        condition: &str,
        value: Box<dyn ToSql + Sync + Send>,
    ) {
        values.push(value);
        conditions.push(condition.replace('?', &format!("${}", values.len())));
    }
    if let Some(v) = &f.source_id {
        add(&mut conditions, &mut values, "source_id = ?::text", Box::new(v.clone()));
    }
    if let Some(v) = &f.sources {
        add(
            &mut conditions,
            &mut values,
            "source_id = ANY(?::text[])",
            Box::new(v.clone()),
        );
    }
    if let Some(v) = &f.rule {
        add(
            &mut conditions,
            &mut values,
            "rules @> ARRAY[?::text]",
            Box::new(v.clone()),
        );
    }
    if let Some(v) = f.status {
        add(
            &mut conditions,
            &mut values,
            "status = ?::text",
            Box::new(v.as_str().to_string()),
        );
    }
    if let Some(v) = f.id {
        add(&mut conditions, &mut values, "id = ?::int8", Box::new(v));
    }
    if let Some(v) = f.since {
        add(
            &mut conditions,
            &mut values,
            "created_at >= ?::timestamptz",
            Box::new(v),
        );
    }
    if let Some(v) = f.until {
        add(&mut conditions, &mut values, "created_at < ?::timestamptz", Box::new(v));
    }
    if let (Some(v), true) = (f.before_id, paging) {
        add(&mut conditions, &mut values, "id < ?::int8", Box::new(v));
    }
    if let Some(q) = f.search.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        let id = normalizer::standards::normalise::normalise_identifier(q);
        let pattern = format!("%{}%", q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
        values.push(Box::new(q.to_string()));
        let n = values.len();
        values.push(Box::new(super::types::stored_forms(&id)));
        values.push(Box::new(pattern));
        conditions.push(format!(
            "(record_key = ${n}::text OR case_number = ${n}::text OR target_id = ANY(${}::text[]) OR target_name LIKE ${}::text)",
            n + 1,
            n + 2
        ));
    }
    (conditions.join(" AND "), values)
}

const QUARANTINE_COLUMNS: &str = "id, raw_id, source_id, record_key, status, violations, mapping_id, \
     mapping_version, created_at, updated_at, attempts, note, case_number, target_name, target_id, resolved_code, \
     resolved_version";

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
        labels: RecordLabels {
            case_number: r.try_get(12)?,
            target_name: r.try_get(13)?,
            target_id: r.try_get(14)?,
        },
        resolution: match r.try_get::<_, Option<String>>(15)? {
            Some(code) => Some(Resolution {
                code,
                version: r.try_get(16)?,
            }),
            None => None,
        },
    })
}

/// Columns read by [`raw_record_from_row`].
pub(crate) const RAW_COLUMNS: &str = "r.id, r.source_id, r.record_key, r.content_hash, r.format, r.received_at, \
     r.payload, r.payload_codec, COALESCE(x.last_received_at, r.received_at), COALESCE(x.times_received, 1)";

/// The raw archive with its receipt counts, for [`RAW_COLUMNS`] (`r` and `x`).
pub(crate) const RAW_TABLES: &str = "raw_records r LEFT JOIN raw_receipts x ON x.raw_id = r.id";

/// A raw record from the columns [`RAW_COLUMNS`], its payload as it came.
pub(crate) fn raw_record_from_row(r: &Row) -> StoreResult<RawRecord> {
    let format: String = r.try_get(4)?;
    Ok(RawRecord {
        id: r.try_get(0)?,
        source_id: r.try_get(1)?,
        record_key: r.try_get(2)?,
        content_hash: r.try_get(3)?,
        format: PayloadFormat::parse(&format)
            .ok_or_else(|| StoreError::Corrupt(format!("payload format {format:?}")))?,
        received_at: r.try_get(5)?,
        payload: compress::payload_of(r.try_get(6)?, r.try_get(7)?)?,
        last_received_at: r.try_get(8)?,
        times_received: r.try_get(9)?,
    })
}

const CASE_COLUMNS: &str = "c.id, c.unified_code, c.agency_credit_code, c.case_type, c.case_number, c.year, \
     c.region, c.current_version, c.withdrawn, c.created_at, c.updated_at, v.record, v.record_lz4";

fn case_from_row(r: &Row) -> StoreResult<CaseRow> {
    let case_type: String = r.try_get(3)?;
    Ok(CaseRow {
        id: r.try_get(0)?,
        unified_code: r.try_get(1)?,
        key: BusinessKey {
            agency_credit_code: parse_credit_code(r.try_get(2)?)?,
            case_type: parse_case_type(&case_type)?,
            case_number: parse_case_number(r.try_get(4)?)?,
        },
        year: r.try_get(5)?,
        region: r.try_get(6)?,
        version: r.try_get(7)?,
        withdrawn: r.try_get(8)?,
        created_at: r.try_get(9)?,
        updated_at: r.try_get(10)?,
        record: compress::record_of(r.try_get(11)?, r.try_get(12)?)?,
    })
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn keeps_compressed(&self) -> bool {
        true
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
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT case_number FROM cases WHERE case_type = 'plan' AND NOT withdrawn",
                &[],
            )
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    fn joint(&self) -> &dyn super::joint::JointStore {
        self
    }

    async fn migrate(&self) -> StoreResult<Vec<String>> {
        let mut client = self.client().await?;
        let mut applied = Vec::new();
        for &(name, sql) in MIGRATIONS {
            let tx = client.transaction().await?;
            // A migration may rewrite a large table: no statement limit for it.
            tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
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
        let results = super::postgres_commit::commit_in(&tx, batch, &self.joint.get(), self.archive.get()).await?;
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
            .prepare_cached(&format!("SELECT {RAW_COLUMNS} FROM {RAW_TABLES} WHERE r.id = $1"))
            .await?;
        let row = client
            .query_opt(&stmt, &[&id])
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("raw record {id}")))?;
        raw_record_from_row(&row)
    }

    async fn quarantine_list(&self, filter: &QuarantineFilter) -> StoreResult<Vec<QuarantineEntry>> {
        // Only the filters given appear in the SQL, so each can use its index
        // (the rule filter `rules @> ARRAY[rule]` uses the GIN index on `rules`).
        let (conditions, mut values) = quarantine_conditions(filter, true);
        values.push(Box::new(filter.limit.unwrap_or(100)));
        values.push(Box::new(filter.offset.unwrap_or(0).max(0)));
        let sql = format!(
            "SELECT {QUARANTINE_COLUMNS} FROM quarantine WHERE {conditions} ORDER BY id DESC LIMIT ${} OFFSET ${}",
            values.len() - 1,
            values.len()
        );
        let client = self.client().await?;
        let stmt = client.prepare_cached(&sql).await?;
        let rows = client.query(&stmt, &param_refs(&values)).await?;
        rows.iter().map(quarantine_from_row).collect()
    }

    async fn quarantine_count(&self, filter: &QuarantineFilter) -> StoreResult<i64> {
        let (conditions, values) = quarantine_conditions(filter, false);
        let sql = format!("SELECT count(*) FROM quarantine WHERE {conditions}");
        let client = self.client().await?;
        let stmt = client.prepare_cached(&sql).await?;
        Ok(client.query_one(&stmt, &param_refs(&values)).await?.try_get(0)?)
    }

    async fn quarantine_ignore_matching(&self, filter: &QuarantineFilter, reason: &str) -> StoreResult<u64> {
        let filter = QuarantineFilter {
            status: Some(QuarantineStatus::Open),
            ..filter.clone()
        };
        let (conditions, mut values) = quarantine_conditions(&filter, false);
        values.push(Box::new(reason.to_string()));
        values.push(Box::new(Utc::now()));
        let sql = format!(
            "UPDATE quarantine SET status = 'ignored', note = ${}, updated_at = ${} WHERE {conditions}",
            values.len() - 1,
            values.len()
        );
        let client = self.client().await?;
        Ok(client.execute(&sql, &param_refs(&values)).await?)
    }

    async fn quarantine_counts(&self, status: QuarantineStatus) -> StoreResult<QuarantineCounts> {
        let client = self.client().await?;
        let status = status.as_str();
        let by_source = client
            .prepare_cached(
                "SELECT source_id, count(*) FROM quarantine WHERE status = $1 GROUP BY source_id ORDER BY 1",
            )
            .await?;
        let by_rule = client
            .prepare_cached(
                "SELECT q.source_id, r.rule, count(*)
                 FROM quarantine q CROSS JOIN LATERAL (SELECT DISTINCT x FROM unnest(q.rules) AS x) AS r(rule)
                 WHERE q.status = $1 GROUP BY 1, 2 ORDER BY 1, 2",
            )
            .await?;
        let params: [&(dyn ToSql + Sync); 1] = [&status];
        let (sources, rules) = tokio::try_join!(client.query(&by_source, &params), client.query(&by_rule, &params))?;
        Ok(QuarantineCounts {
            by_source: sources
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<StoreResult<_>>()?,
            by_rule: rules
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
                .collect::<StoreResult<_>>()?,
        })
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
        let offset = filter.offset.unwrap_or(0).max(0);
        let order = if filter.newest_first { "c.id DESC" } else { "c.id" };
        let rows = match &filter.source_id {
            Some(source) => {
                let sql = format!(
                    "SELECT {CASE_COLUMNS} FROM cases c
                     JOIN case_versions v ON v.case_id = c.id AND v.version = c.current_version
                     WHERE c.source_id = $1 AND c.id > $2 ORDER BY {order} LIMIT $3 OFFSET $4"
                );
                let stmt = client.prepare_cached(&sql).await?;
                client.query(&stmt, &[source, &after, &limit, &offset]).await?
            }
            None => {
                let sql = format!(
                    "SELECT {CASE_COLUMNS} FROM cases c
                     JOIN case_versions v ON v.case_id = c.id AND v.version = c.current_version
                     WHERE c.id > $1 ORDER BY {order} LIMIT $2 OFFSET $3"
                );
                let stmt = client.prepare_cached(&sql).await?;
                client.query(&stmt, &[&after, &limit, &offset]).await?
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
                "SELECT v.version, v.status, v.raw_id, v.mapping_id, v.mapping_version, v.record_hash, v.record,
                        v.warnings, v.created_at, v.record_lz4, r.source_id, 0 AS kind
                 FROM case_versions v JOIN raw_records r ON r.id = v.raw_id
                 WHERE v.case_id = $1
                 UNION ALL
                 SELECT s.head_version, 'stale', s.raw_id, s.mapping_id, s.mapping_version, s.record_hash, NULL::jsonb,
                        s.warnings, s.created_at, s.record_lz4, r.source_id, s.id AS kind
                 FROM stale_versions s JOIN raw_records r ON r.id = s.raw_id
                 WHERE s.case_id = $1
                 ORDER BY 1, 12",
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
                record: compress::record_of(r.try_get(6)?, r.try_get(9)?)?,
                warnings: corrupt_json(r.try_get(7)?)?,
                created_at: r.try_get(8)?,
                source_id: r.try_get(10)?,
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
                &[
                    &key.agency_credit_code.as_str(),
                    &key.case_type.as_str(),
                    &key.case_number.as_str(),
                ],
            )
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    async fn case_codes_by_number(
        &self,
        number: &str,
        after_id: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<(i64, String)>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT id, unified_code FROM cases WHERE case_number = $1 AND id > $2 ORDER BY id LIMIT $3",
            )
            .await?;
        let rows = client.query(&stmt, &[&number, &after_id.unwrap_or(0), &limit]).await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
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
                                WHERE target_id = $1)
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

    async fn audit_search(&self, filter: &AuditFilter) -> StoreResult<(Vec<AuditRecord>, i64)> {
        let page = console::audit_page(filter, Dialect::Postgres);
        let count = console::audit_count(filter, Dialect::Postgres);
        let (rows, total) = self.page_and_count(page, count).await?;
        let items = rows.iter().map(audit_record).collect::<Result<_, _>>()?;
        Ok((items, total))
    }

    async fn record_fates(&self, filter: &RecordFilter) -> StoreResult<(Vec<RecordFate>, i64)> {
        let page = console::records_page(filter, Dialect::Postgres);
        let count = console::records_count(filter, Dialect::Postgres);
        let (rows, total) = self.page_and_count(page, count).await?;
        let mut heads = Vec::with_capacity(rows.len());
        for r in &rows {
            heads.push(console::RawHead {
                raw_id: r.try_get(0)?,
                source_id: r.try_get(1)?,
                record_key: r.try_get(2)?,
                received_at: r.try_get(3)?,
            });
        }
        let ids: Vec<i64> = heads.iter().map(|h| h.raw_id).collect();
        let ids_param: [&(dyn ToSql + Sync); 1] = [&ids];
        let client = self.client().await?;
        let (versions, stale, entries) = tokio::try_join!(
            client.query(
                "SELECT v.raw_id, c.unified_code, v.version, c.case_number
                 FROM case_versions v JOIN cases c ON c.id = v.case_id WHERE v.raw_id = ANY($1::int8[])",
                &ids_param,
            ),
            client.query(
                "SELECT s.raw_id, c.unified_code, s.head_version
                 FROM stale_versions s JOIN cases c ON c.id = s.case_id WHERE s.raw_id = ANY($1::int8[])",
                &ids_param,
            ),
            client.query(
                "SELECT raw_id, id, status, ARRAY(SELECT DISTINCT unnest(rules)), case_number
                 FROM quarantine WHERE raw_id = ANY($1::int8[])",
                &ids_param,
            ),
        )?;
        let mut lookups = console::FateLookups::default();
        for r in &versions {
            lookups
                .versions
                .push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?));
        }
        for r in &stale {
            lookups.stale.push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?));
        }
        for r in &entries {
            let status: String = r.try_get(2)?;
            let status = QuarantineStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("quarantine status {status:?}")))?;
            lookups.entries.push(console::EntryFact {
                raw_id: r.try_get(0)?,
                id: r.try_get(1)?,
                status,
                rules: r.try_get(3)?,
                case_number: r.try_get(4)?,
            });
        }
        Ok((console::fates(heads, &lookups), total))
    }

    async fn case_count(&self, filter: &CaseFilter) -> StoreResult<i64> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT count(*) FROM cases WHERE ($1::text IS NULL OR source_id = $1::text)",
                &[&filter.source_id],
            )
            .await?;
        Ok(row.try_get(0)?)
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
