//! The callback store at start-up (I/O): opened beside the work orders (the same
//! SQLite file, or the same PostgreSQL database), and its open tasks handed to the
//! switch (R20: a task that was dialing when the engine stopped is pending again).
//! Saves go through the store writer afterwards, like every work-order write.

use std::sync::Arc;
use std::time::Instant;

use tracing::{info, warn};

use crate::callbacks::postgres::PostgresCallbackStore;
use crate::callbacks::sqlite::SqliteCallbackStore;
use crate::callbacks::{CallbackStore, CallbackStoreError};
use crate::config::{Config, StoreBackend, StoreTls};
use crate::switch::Switch;

/// Opens the callback store the `[store]` section names. `None` (callbacks off, with a
/// warning) for a PostgreSQL store reached with a password or TLS, which the callback
/// store does not speak yet.
pub async fn open_store(
    config: &Config,
) -> Result<Option<Arc<dyn CallbackStore>>, CallbackStoreError> {
    match &config.store.backend {
        StoreBackend::Sqlite { data_dir } => {
            Ok(Some(Arc::new(SqliteCallbackStore::open(data_dir)?)))
        }
        StoreBackend::Postgres {
            url,
            password_env: None,
            tls: StoreTls::Disable,
        } => Ok(Some(Arc::new(PostgresCallbackStore::connect(url).await?))),
        StoreBackend::Postgres { .. } => {
            warn!(
                "callbacks are off: their PostgreSQL store needs a server without password or TLS"
            );
            Ok(None)
        }
    }
}

/// Turns the switch's callbacks on with the store's open tasks.
pub async fn restore(
    switch: &mut Switch,
    store: &dyn CallbackStore,
    config: &Config,
) -> Result<(), CallbackStoreError> {
    let open = store.open_tasks().await?;
    let highest = store.highest_id().await?;
    if config.callbacks.trunk.is_none() {
        info!("no callbacks.trunk_uri: callback tasks are kept but not dialled");
    }
    switch.enable_callbacks(Instant::now(), config.callbacks.clone(), open, highest);
    Ok(())
}
