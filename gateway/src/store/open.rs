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
            let mut target = config
                .store
                .postgres_target(&config.base_dir)
                .map_err(|e| StoreError::Pool(e.to_string()))?;
            // A session idle inside a transaction for longer than a lease (an instance paused
            // or cut off mid-commit) is ended by the server, so its locks (the lease row held
            // `FOR SHARE` by a fenced commit) cannot keep another instance from taking its jobs.
            let pg = target.config_mut();
            let options = pg.get_options().unwrap_or_default().to_string();
            if !options.contains("idle_in_transaction_session_timeout") {
                let ms = (config.cluster.lease_seconds * 1000.0).round().max(1000.0) as u64;
                pg.options(format!("{options} -c idle_in_transaction_session_timeout={ms}").trim());
            }
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
    stores.store.joint().configure_joint(super::joint::JointSettings {
        enabled: config.joint.enabled,
        window_days: config.joint.window_days,
        background: config.joint.index == crate::config::joint::IndexMode::Background
            && config.store.backend == "postgres",
    });
    stores.store.archive().configure_chain(config.archive.chain_alg());
    crate::crypto::chain::set_prepared_digest(config.archive.chain_alg());
    // Every reader of the raw archive opens sealed payloads with the configured keys.
    if let Some(keyring) = config
        .personal_data
        .keyring(&config.base_dir)
        .map_err(StoreError::Pool)?
    {
        crate::crypto::personal::register(&keyring);
    }
    for name in stores.store.migrate().await? {
        tracing::info!(migration = %name, backend = stores.store.backend(), "migration applied");
    }
    Ok(stores)
}
