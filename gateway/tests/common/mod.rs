//! Database setup for integration tests: a fresh, migrated store per test, on either backend.
//!
//! - SQLite: a file in a temporary directory, removed with it.
//! - PostgreSQL: a new database `gw_test_<pid>_<counter>_<nanos>` created through the server at
//!   `GATEWAY_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`), dropped when
//!   the [`TestDb`] is dropped (best effort). An unreachable server fails the test: CI starts one.
#![allow(dead_code)]

use adapters::common::postgres_tls::PostgresTarget;
use gateway::store::postgres::PostgresStore;
use gateway::store::sqlite::SqliteStore;
use gateway::store::Store;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The server used when `GATEWAY_TEST_PG_URL` is not set.
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Connections in a test store's pool unless a test asks for more.
pub const DEFAULT_POOL_SIZE: usize = 4;

/// The URL of the PostgreSQL server (and maintenance database) tests create databases through.
pub fn pg_base_url() -> String {
    std::env::var("GATEWAY_TEST_PG_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_PG_URL.to_string())
}

/// `base` with its database replaced by `dbname`; works for `postgres://` URLs and for the
/// `key=value` form.
pub fn pg_url_with_database(base: &str, dbname: &str) -> String {
    let Some(scheme_end) = base.find("://") else {
        // key=value form: a later key overrides an earlier one.
        return format!("{base} dbname={dbname}");
    };
    let (without_query, query) = match base.find('?') {
        Some(q) => (&base[..q], &base[q..]),
        None => (base, ""),
    };
    let authority_start = scheme_end + 3;
    let authority_end = without_query[authority_start..]
        .find('/')
        .map_or(without_query.len(), |i| authority_start + i);
    format!("{}/{dbname}{query}", &without_query[..authority_end])
}

/// A migrated store that lives as long as this value; its database is removed on drop.
pub struct TestDb {
    store: Arc<dyn Store>,
    guard: Guard,
}

enum Guard {
    Sqlite(tempfile::TempDir),
    Postgres(PgDatabase),
}

impl TestDb {
    /// A fresh SQLite store in a temporary directory.
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let store = SqliteStore::open(&dir.path().join("gateway.db")).expect("open the SQLite store");
        let db = TestDb {
            store: Arc::new(store),
            guard: Guard::Sqlite(dir),
        };
        db.migrate_fresh().await;
        db
    }

    /// A fresh PostgreSQL store (new database) with the default pool size.
    pub async fn postgres() -> TestDb {
        TestDb::postgres_with_pool(DEFAULT_POOL_SIZE).await
    }

    /// A fresh PostgreSQL store (new database) with `pool_size` connections.
    pub async fn postgres_with_pool(pool_size: usize) -> TestDb {
        let database = PgDatabase::create().await;
        let store = PostgresStore::connect(&database.url, pool_size)
            .await
            .unwrap_or_else(|e| panic!("connect to the test database {}: {e}", database.name));
        let db = TestDb {
            store: Arc::new(store),
            guard: Guard::Postgres(database),
        };
        db.migrate_fresh().await;
        db
    }

    async fn migrate_fresh(&self) {
        let applied = self.store.migrate().await.expect("migrate a fresh store");
        assert!(
            applied.iter().any(|m| m == "0001_initial"),
            "a fresh store applies 0001_initial, got {applied:?}"
        );
    }

    /// The store under test.
    pub fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }

    /// The PostgreSQL URL of this test's database (None for SQLite).
    pub fn pg_url(&self) -> Option<&str> {
        match &self.guard {
            Guard::Postgres(db) => Some(&db.url),
            Guard::Sqlite(_) => None,
        }
    }
}

/// A PostgreSQL database created for one test.
pub struct PgDatabase {
    /// The database's name.
    pub name: String,
    /// URL of the database.
    pub url: String,
    admin_url: String,
}

impl PgDatabase {
    /// Create a new, empty database; panics with a clear message when the server is unreachable.
    pub async fn create() -> PgDatabase {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let admin_url = pg_base_url();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "gw_test_{}_{}_{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let client = admin_client(&admin_url).await;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name} on {admin_url}: {e}"));
        let url = pg_url_with_database(&admin_url, &name);
        PgDatabase { name, url, admin_url }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // Drop may run inside the test's runtime, which cannot be blocked on: use a thread with
        // its own runtime. Best effort: a leftover database only costs disk space.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async move {
                if let Ok(client) = pg_client(&admin_url).await {
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// One connection to `url`, TLS as its `sslmode` says (the gateway's own connector), its
/// connection task spawned.
pub async fn pg_client(url: &str) -> Result<tokio_postgres::Client, String> {
    PostgresTarget::parse(url, None)
        .map_err(|e| e.to_string())?
        .connect()
        .await
}

/// A connection to the maintenance database; panics when the server is unreachable.
pub async fn admin_client(admin_url: &str) -> tokio_postgres::Client {
    match pg_client(admin_url).await {
        Ok(client) => client,
        Err(e) => panic!(
            "PostgreSQL is not reachable at {admin_url}: {e}.\n\
             The store tests need a server: start it (e.g. `pg_ctlcluster --skip-systemctl-redirect \
             $(ls /etc/postgresql) main start`) or set GATEWAY_TEST_PG_URL to a server's URL."
        ),
    }
}
