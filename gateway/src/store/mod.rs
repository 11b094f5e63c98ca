//! The store: raw archive, cases and their versions, code counters, quarantine, outbox,
//! source cursors and the audit log. One interface, two backends: an embedded SQLite file
//! (the default) and PostgreSQL (production, several gateway instances).
//!
//! A batch of records is committed in ONE transaction by [`Store::commit_batch`]: the backend
//! reads what it needs (existing cases, counters) under the right locks, the pure planner in
//! [`plan`] decides what each record becomes, and the backend writes the plan set-wise.

pub mod catalogue;
mod compress;
pub mod mappings_postgres;
pub mod mappings_sqlite;
pub mod outbox_postgres;
pub mod outbox_sqlite;
pub mod plan;
pub mod postgres;
mod postgres_commit;
pub mod sqlite;
pub mod types;

pub use types::*;

use async_trait::async_trait;

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed.
    #[error("PostgreSQL: {}", postgres_detail(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// No PostgreSQL connection could be taken from the pool.
    #[error("PostgreSQL pool: {0}")]
    Pool(String),
    /// A stored value could not be decoded.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The thing asked for does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The request is not allowed in the current state.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A background task failed.
    #[error("store task failed: {0}")]
    Task(String),
}

/// A PostgreSQL error with the server's message, detail and constraint (tokio-postgres alone
/// shows "db error"), so an operator or clerk sees why the database refused.
fn postgres_detail(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = format!("{}: {}", db.severity(), db.message());
            if let Some(detail) = db.detail() {
                text.push_str(&format!(" ({detail})"));
            }
            if let Some(constraint) = db.constraint() {
                text.push_str(&format!(" [constraint {constraint}]"));
            }
            text
        }
        None => e.to_string(),
    }
}

impl StoreError {
    /// True when retrying the same transaction may succeed (serialization failure, deadlock,
    /// unique violation caused by a concurrent writer).
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Postgres(e) => matches!(
                e.code().map(|c| c.code()),
                Some("40001") | Some("40P01") | Some("23505")
            ),
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ),
            _ => false,
        }
    }
}

/// Result alias of the store layer.
pub type StoreResult<T> = Result<T, StoreError>;

/// Everything the gateway keeps, behind one interface for both backends.
#[async_trait]
pub trait Store: Send + Sync {
    /// Which backend this is (`sqlite` or `postgres`).
    fn backend(&self) -> &'static str;

    /// Whether this store keeps payloads and canonical records compressed: the pipeline then
    /// compresses them while preparing ([`IncomingRecord::compress_for_store`]), off the commit.
    fn keeps_compressed(&self) -> bool {
        false
    }

    /// The supervision-item catalogue kept by this store.
    fn catalogue(&self) -> &dyn catalogue::CatalogueStore;

    /// Apply pending schema migrations; returns the names of those applied now.
    async fn migrate(&self) -> StoreResult<Vec<String>>;

    /// Commit a batch of normalised records in one transaction (see the module docs).
    /// On error nothing of the batch is written.
    async fn commit_batch(&self, batch: &CommitBatch) -> StoreResult<Vec<RecordResult>>;

    /// The source's persisted cursor (watermark), if any.
    async fn cursor(&self, source_id: &str) -> StoreResult<Option<String>>;

    /// One raw archived payload.
    async fn raw_record(&self, id: i64) -> StoreResult<RawRecord>;

    /// Quarantine entries matching the filter, newest first.
    async fn quarantine_list(&self, filter: &QuarantineFilter) -> StoreResult<Vec<QuarantineEntry>>;

    /// One quarantine entry.
    async fn quarantine_get(&self, id: i64) -> StoreResult<QuarantineEntry>;

    /// Mark a quarantine entry ignored (with a reason) or replayed.
    async fn quarantine_set_status(&self, id: i64, status: QuarantineStatus, note: Option<&str>) -> StoreResult<()>;

    /// Record that a replay of an entry failed again, with the violations it has now.
    async fn quarantine_update_violations(&self, id: i64, violations: &[normalizer::Violation]) -> StoreResult<()>;

    /// Cases matching the filter, in id order, from `after_id` on, at most `limit`.
    async fn cases(&self, filter: &CaseFilter) -> StoreResult<Vec<CaseRow>>;

    /// One case by unified code, with all its versions.
    async fn case_by_code(&self, code: &str) -> StoreResult<(CaseRow, Vec<CaseVersionRow>)>;

    /// The unified code of the case with this business key, if any.
    async fn case_code_by_key(&self, key: &BusinessKey) -> StoreResult<Option<String>>;

    /// Cases whose target identifier (`/target/id_number`: credit code or ID number) is
    /// `id_number` in any version: (case id, unified code) in id order, after `after_id`, at
    /// most `limit`.
    async fn case_codes_by_target(
        &self,
        id_number: &str,
        after_id: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<(i64, String)>>;

    /// Outbox rows for a case version set (for lineage and tests).
    async fn outbox_for_case(&self, case_id: i64) -> StoreResult<Vec<OutboxRow>>;

    /// Counts of cases, versions, quarantine entries and raw records (for summaries and tests).
    async fn stats(&self) -> StoreResult<StoreStats>;

    /// Append an entry to the audit log.
    async fn audit(&self, entry: &AuditEntry) -> StoreResult<()>;

    /// The newest audit entries first.
    async fn audit_log(&self, limit: i64) -> StoreResult<Vec<AuditRecord>>;
}

/// Open the store a configuration names and apply pending migrations.
pub async fn open(config: &crate::config::Config) -> StoreResult<std::sync::Arc<dyn Store>> {
    crate::outbox::open(config).await.map(|(store, _outbox)| store)
}
