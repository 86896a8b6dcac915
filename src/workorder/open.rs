//! Opening the store the config names (`[store]`, R31). Reads the PostgreSQL password
//! from the environment variable the config names, then connects or opens the file.

use std::sync::Arc;

use super::postgres::{PostgresSettings, TlsMode};
use super::sql::SqlStore;
use super::store::{StoreError, WorkOrderStore, message_source};
use crate::config::{StoreBackend, StoreConfig, StoreTls};

/// Opens (SQLite) or connects to (PostgreSQL) the configured store and migrates it.
/// Blocking, for start-up and the CLI; safe inside a tokio runtime.
pub fn open_configured(config: &StoreConfig) -> Result<SqlStore, StoreError> {
    match &config.backend {
        StoreBackend::Sqlite { data_dir } => SqlStore::open(data_dir),
        StoreBackend::Postgres {
            url,
            password_env,
            tls,
        } => SqlStore::connect(&postgres_settings(url, password_env.as_deref(), tls)?),
    }
}

/// The PostgreSQL settings `[store]` names, the password read from its environment
/// variable: for the work-order store and the callback store beside it.
pub fn postgres_settings(
    url: &str,
    password_env: Option<&str>,
    tls: &StoreTls,
) -> Result<PostgresSettings, StoreError> {
    let password = match password_env {
        None => None,
        Some(name) => Some(std::env::var(name).map_err(|_| StoreError::Open {
            location: url.to_owned(),
            source: message_source(format!(
                "the environment variable {name} (store.password_env) is not set"
            )),
        })?),
    };
    Ok(PostgresSettings {
        url: url.to_owned(),
        password,
        tls: match tls {
            StoreTls::Disable => TlsMode::Disable,
            StoreTls::Require => TlsMode::Require,
            StoreTls::VerifyFull { ca_file } => TlsMode::VerifyFull {
                ca_file: ca_file.clone(),
            },
        },
    })
}

/// [`open_configured`], shared as the trait object the engine holds.
pub fn open_shared(config: &StoreConfig) -> Result<Arc<dyn WorkOrderStore>, StoreError> {
    Ok(Arc::new(open_configured(config)?))
}
