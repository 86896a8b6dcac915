//! The callback store at start-up (I/O): opened beside the work orders (the same
//! SQLite file, or the same PostgreSQL database), and its open tasks handed to the
//! switch (R20: a task that was dialing when the engine stopped is pending again).
//! Saves go through the store writer afterwards, like every work-order write.

use std::sync::Arc;
use std::time::Instant;

use tracing::info;

use crate::callbacks::postgres::PostgresCallbackStore;
use crate::callbacks::sqlite::SqliteCallbackStore;
use crate::callbacks::{CallbackStore, CallbackStoreError};
use crate::config::{Config, StoreBackend};
use crate::switch::Switch;

/// Opens the callback store the `[store]` section names, beside the work orders: the
/// same SQLite directory, or the same PostgreSQL database reached the same way (URL,
/// password from `store.password_env`, TLS).
pub async fn open_store(config: &Config) -> Result<Arc<dyn CallbackStore>, CallbackStoreError> {
    match &config.store.backend {
        StoreBackend::Sqlite { data_dir } => Ok(Arc::new(SqliteCallbackStore::open(data_dir)?)),
        StoreBackend::Postgres {
            url,
            password_env,
            tls,
        } => {
            let settings = crate::workorder::postgres_settings(url, password_env.as_deref(), tls)
                .map_err(|e| CallbackStoreError::Connect(Box::new(e)))?;
            Ok(Arc::new(
                PostgresCallbackStore::connect_with(&settings).await?,
            ))
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
