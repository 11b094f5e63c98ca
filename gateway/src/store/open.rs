//! Opening the configured store: the one place a backend is chosen, its pool built and its
//! migrations applied. The store is returned as its three interfaces, sharing one pool.

use super::mappings::MappingStore;
use super::outbox::OutboxStore;
use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::{Store, StoreError, StoreResult};
use std::sync::Arc;

/// A store opened as all three of its interfaces, sharing one connection pool.
#[derive(Clone)]
pub struct Stores {
    /// Cases, quarantine, raw archive, audit.
    pub store: Arc<dyn Store>,
    /// Deliveries.
    pub outbox: Arc<dyn OutboxStore>,
    /// Mapping versions.
    pub mappings: Arc<dyn MappingStore>,
}

/// Open the configured store and apply pending migrations (the one way a store is opened).
pub async fn open(config: &crate::config::Config) -> StoreResult<Stores> {
    let stores = match config.store.backend.as_str() {
        "postgres" => {
            let target = config
                .store
                .postgres_target(&config.base_dir)
                .map_err(|e| StoreError::Pool(e.to_string()))?;
            let pg = Arc::new(PostgresStore::connect_to(&target, config.store.pool_size).await?);
            Stores {
                store: pg.clone(),
                outbox: pg.clone(),
                mappings: pg,
            }
        }
        _ => {
            let sqlite = Arc::new(SqliteStore::open(&config.store.sqlite_path(&config.base_dir))?);
            Stores {
                store: sqlite.clone(),
                outbox: sqlite.clone(),
                mappings: sqlite,
            }
        }
    };
    for name in stores.store.migrate().await? {
        tracing::info!(migration = %name, backend = stores.store.backend(), "migration applied");
    }
    Ok(stores)
}
