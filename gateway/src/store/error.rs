//! Why a store operation failed, and which failures a retry may cure.

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
    /// The job's lease was taken over by another instance (or released): nothing of the batch
    /// was written, and this instance must stop the job.
    #[error(
        "租约已失效，本批未写入 / the lease is no longer held, nothing of the batch was written: job {job} epoch {epoch} of {holder}"
    )]
    Fenced {
        /// The job.
        job: String,
        /// This instance.
        holder: String,
        /// The epoch it held.
        epoch: i64,
    },
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

/// A case type as stored (`inspection`, `penalty`, `coercion`, `plan`); anything else is corrupt data.
pub fn parse_case_type(s: &str) -> StoreResult<normalizer::CaseType> {
    s.parse().map_err(|_| StoreError::Corrupt(format!("case type {s:?}")))
}

/// A handling agency's credit code as stored (valid when it was committed); anything else is
/// corrupt data.
pub fn parse_credit_code(s: &str) -> StoreResult<normalizer::standards::CreditCode> {
    normalizer::standards::CreditCode::from_normalised(s)
        .ok_or_else(|| StoreError::Corrupt(format!("agency credit code {s:?}")))
}

/// A case number as stored (never blank when it was committed); anything else is corrupt data.
pub fn parse_case_number(s: &str) -> StoreResult<normalizer::CaseNumber> {
    normalizer::CaseNumber::parse(s).ok_or_else(|| StoreError::Corrupt(format!("case number {s:?}")))
}

/// Run a store write of bookkeeping that follows a committed batch (daily counts, publication
/// marks) up to `tries` times, waiting 200 ms, then twice as long, between them: a short store
/// outage must not cost it. Answers the last error when every try failed.
pub async fn retried<T, F, Fut>(tries: u32, mut write: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StoreResult<T>>,
{
    let mut wait = std::time::Duration::from_millis(200);
    let mut left = tries.max(1);
    loop {
        match write().await {
            Ok(v) => return Ok(v),
            Err(e) if left <= 1 => return Err(e),
            Err(_) => {
                left -= 1;
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
}
