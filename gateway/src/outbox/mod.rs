//! Onward delivery: the outbox dispatcher, its retry timing, and the outbox's interface to the
//! store.
//!
//! Every committed case version has one outbox row per configured sink (written by the commit,
//! in the same transaction). The [`dispatcher`] delivers them at least once, in order per case
//! and sink, with retries and dead deliveries an operator can re-drive
//! (`gateway deliveries list|redrive`). The idempotency key `<unified code>:<version>` travels
//! with every delivery so receivers can drop repeats.

pub mod dispatcher;
pub mod retry;
pub mod store;

pub use dispatcher::{DispatchError, Dispatchers, Mode};
pub use store::{
    Claimed, DeliveryCount, DeliveryFilter, DeliveryRow, DeliveryStatus, OutboxStore, Redrive, Settlement,
};

use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError, StoreResult};
use std::sync::Arc;

/// Open the configured store (applying pending migrations, like [`crate::store::open`]) and
/// return it both as the [`Store`] and as the [`OutboxStore`], sharing one connection pool.
pub async fn open(config: &crate::config::Config) -> StoreResult<(Arc<dyn Store>, Arc<dyn OutboxStore>)> {
    let (store, outbox): (Arc<dyn Store>, Arc<dyn OutboxStore>) = match config.store.backend.as_str() {
        "postgres" => {
            let url = config.store.postgres_url(&config.base_dir).map_err(StoreError::Pool)?;
            let pg = Arc::new(PostgresStore::connect(&url, config.store.pool_size).await?);
            (pg.clone(), pg)
        }
        _ => {
            let sqlite = Arc::new(SqliteStore::open(&config.store.sqlite_path(&config.base_dir))?);
            (sqlite.clone(), sqlite)
        }
    };
    for name in store.migrate().await? {
        tracing::info!(migration = %name, backend = store.backend(), "migration applied");
    }
    Ok((store, outbox))
}
