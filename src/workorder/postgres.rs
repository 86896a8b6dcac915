//! The production work order store (R31): PostgreSQL, through the `postgres` client
//! (the blocking face of `tokio-postgres`), on the store's worker thread
//! (`workorder::sql`), with the same SQL, trait and conformance suite as SQLite.
//!
//! # Connection
//! Given a URL (`postgres://hotline@db.example:5432/hotline`), the password from an
//! environment variable (never in the config file) and a TLS mode:
//! - `disable`: plain TCP (a local socket-like link, tests);
//! - `require`: encrypted, the server's certificate not checked (libpq's `require`);
//! - `verify-full`: encrypted, the certificate checked against the system's web PKI
//!   roots plus an optional CA file, and the host name matched.
//!
//! # Failing fast
//! The first connection may take [`OPEN_CONNECT_TIMEOUT`]; once running, a lost
//! connection is retried before each group of jobs with [`RECONNECT_TIMEOUT`], and a
//! row lock held by someone else is given up after `lock_timeout` of 200 ms. So a
//! stopped or unreachable server makes writes fail as
//! [`StoreError::Unavailable`] quickly, and the engine's store queue retries them.
//!
//! # Schema
//! Versioned like SQLite's (a `schema_version` table instead of `user_version`),
//! migrated at start-up in one transaction under an advisory lock so two engines
//! starting together do not race. PostgreSQL support begins at version 3, the first
//! schema with the matter, so its first step creates everything. Keyword search over
//! the knowledge base and service directory uses `pg_trgm` GIN indexes (`ILIKE`).

use std::collections::HashMap;
use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use postgres::error::SqlState;
use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, NoTls, Statement};

use super::sql::{Db, DbError, Dialect, Row, SqlStore, Value};
use super::store::{ErrorSource, StoreError, message_source};

/// The PostgreSQL store is the shared SQL store connected to a server.
pub type PostgresStore = SqlStore;

/// The schema version this build writes; steps are in `MIGRATIONS`.
pub const SCHEMA_VERSION: i64 = 3;

/// How long the first connection at start-up may take (TLS handshake to a remote
/// server included).
pub const OPEN_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a reconnection attempt may take while the engine runs: short, so calls'
/// writes fail fast and queue instead of waiting on a dead server.
pub const RECONNECT_TIMEOUT: Duration = Duration::from_millis(250);

/// Any lock wait longer than this is given up (`lock_timeout`), for the same reason.
const LOCK_TIMEOUT_MS: u64 = 200;

/// A key for `pg_advisory_xact_lock`, held while migrating.
const MIGRATION_LOCK_KEY: i64 = 8_890_000_001;

/// How the connection is encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    Require,
    /// Verify the certificate and host name; `ca_file` adds a PEM CA to the web PKI
    /// roots (a private CA).
    VerifyFull {
        ca_file: Option<std::path::PathBuf>,
    },
}

/// Where and how to connect.
#[derive(Clone)]
pub struct PostgresSettings {
    /// `postgres://user@host:port/database` or libpq `key=value` form, without the
    /// password.
    pub url: String,
    /// From the environment variable the config names.
    pub password: Option<String>,
    pub tls: TlsMode,
}

impl std::fmt::Debug for PostgresSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSettings")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("tls", &self.tls)
            .finish()
    }
}

const SCHEMA_V3: &str = "
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE TABLE work_orders (
    id             TEXT PRIMARY KEY NOT NULL,
    call_id        TEXT NOT NULL,
    caller         TEXT NOT NULL,
    callee         TEXT NOT NULL,
    direction      TEXT NOT NULL,
    offered_at     TEXT NOT NULL,
    answered_at    TEXT,
    ended_at       TEXT,
    hangup_side    TEXT,
    outcome        TEXT,
    outcome_reason TEXT,
    recording_path TEXT,
    status         TEXT NOT NULL,
    category       TEXT,
    agent          TEXT,
    queue          TEXT,
    queued_at      TEXT,
    connected_at   TEXT,
    matter         TEXT,
    answer         TEXT,
    handling_unit  TEXT,
    urgent         BIGINT NOT NULL DEFAULT 0,
    enterprise     TEXT,
    enterprise_referred_at TEXT,
    enterprise_attitude    TEXT,
    enterprise_efficiency  TEXT,
    enterprise_quality     TEXT,
    service_rating TEXT,
    unit_rating    TEXT,
    qa_selected_at TEXT,
    qa_reason      TEXT
);
CREATE INDEX work_orders_by_call_id ON work_orders (call_id);
CREATE INDEX work_orders_by_offered_at ON work_orders (offered_at);
CREATE INDEX work_orders_unfinished ON work_orders (id) WHERE ended_at IS NULL;
CREATE INDEX work_orders_by_queued_at ON work_orders (queued_at) WHERE queued_at IS NOT NULL;
CREATE INDEX work_orders_by_status ON work_orders (status, offered_at);
CREATE INDEX work_orders_by_agent ON work_orders (agent, offered_at);
CREATE TABLE work_order_calls (
    work_order     TEXT NOT NULL,
    call_id        TEXT NOT NULL,
    kind           TEXT NOT NULL,
    direction      TEXT NOT NULL,
    caller         TEXT NOT NULL,
    callee         TEXT NOT NULL,
    offered_at     TEXT NOT NULL,
    answered_at    TEXT,
    ended_at       TEXT,
    hangup_side    TEXT,
    outcome        TEXT,
    outcome_reason TEXT,
    recording_path TEXT,
    agent          TEXT,
    PRIMARY KEY (work_order, call_id)
);
CREATE TABLE work_order_events (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    work_order TEXT NOT NULL,
    at         TEXT NOT NULL,
    actor      TEXT NOT NULL,
    kind       TEXT NOT NULL,
    detail     TEXT NOT NULL
);
CREATE INDEX work_order_events_by_order ON work_order_events (work_order, seq);
CREATE TABLE follow_up_tasks (
    work_order TEXT NOT NULL,
    number     BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    due_from   TEXT NOT NULL,
    due_until  TEXT NOT NULL,
    note       TEXT NOT NULL,
    done_at    TEXT,
    PRIMARY KEY (work_order, number)
);
CREATE INDEX follow_up_tasks_open ON follow_up_tasks (due_until) WHERE done_at IS NULL;
CREATE TABLE forbidden_phrase_hits (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    work_order TEXT NOT NULL,
    phrase     TEXT NOT NULL,
    field      TEXT NOT NULL,
    at         TEXT NOT NULL,
    actor      TEXT NOT NULL
);
CREATE INDEX forbidden_phrase_hits_by_order ON forbidden_phrase_hits (work_order);
CREATE FUNCTION hotline_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END
$$;
CREATE TABLE read_audit (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         TEXT NOT NULL,
    actor      TEXT NOT NULL,
    what       TEXT NOT NULL,
    work_order TEXT,
    target     TEXT NOT NULL
);
CREATE INDEX read_audit_by_at ON read_audit (at);
CREATE TRIGGER read_audit_append_only BEFORE UPDATE OR DELETE ON read_audit
    FOR EACH ROW EXECUTE FUNCTION hotline_append_only();
CREATE TRIGGER read_audit_no_truncate BEFORE TRUNCATE ON read_audit
    FOR EACH STATEMENT EXECUTE FUNCTION hotline_append_only();
CREATE TABLE purge_log (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         TEXT NOT NULL,
    actor      TEXT NOT NULL,
    cutoff     TEXT NOT NULL,
    orders     TEXT NOT NULL,
    recordings TEXT NOT NULL
);
CREATE TRIGGER purge_log_append_only BEFORE UPDATE OR DELETE ON purge_log
    FOR EACH ROW EXECUTE FUNCTION hotline_append_only();
CREATE TABLE knowledge (
    id          TEXT PRIMARY KEY NOT NULL,
    title       TEXT NOT NULL,
    body        TEXT NOT NULL,
    tags        TEXT NOT NULL,
    search_text TEXT NOT NULL
);
CREATE INDEX knowledge_search ON knowledge USING gin (search_text gin_trgm_ops);
CREATE TABLE providers (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    services    TEXT NOT NULL,
    area        TEXT NOT NULL,
    phone       TEXT NOT NULL,
    address     TEXT NOT NULL,
    tags        TEXT NOT NULL,
    added_from  TEXT,
    search_text TEXT NOT NULL
);
CREATE INDEX providers_search ON providers USING gin (search_text gin_trgm_ops);
";

/// Schema steps: (version reached, SQL).
const MIGRATIONS: &[(i64, &str)] = &[(3, SCHEMA_V3)];

impl SqlStore {
    /// Connects to PostgreSQL, migrates its schema and starts the worker thread.
    ///
    /// Blocking (up to [`OPEN_CONNECT_TIMEOUT`] and the migration): call it at
    /// start-up. The connection is made on the worker thread, so this may be called
    /// from inside a tokio runtime.
    pub fn connect(settings: &PostgresSettings) -> Result<Self, StoreError> {
        let config = client_config(settings)?;
        let location = describe(&config);
        let config = postgres::Config::from(config);
        let tls = settings.tls.clone();
        let open_location = location.clone();
        SqlStore::start_with(
            "postgres",
            location,
            None,
            move || -> Result<Box<dyn Db>, StoreError> {
                let mut db = PgDb {
                    config,
                    tls: Connector::new(&tls).map_err(|source| StoreError::Open {
                        location: open_location.clone(),
                        source,
                    })?,
                    client: None,
                    statements: HashMap::new(),
                    location: open_location.clone(),
                };
                db.connect(OPEN_CONNECT_TIMEOUT)
                    .map_err(|e| open_failure(&open_location, e))?;
                db.migrate()?;
                Ok(Box::new(db))
            },
        )
    }
}

fn open_failure(location: &str, e: DbError) -> StoreError {
    match StoreError::from(e) {
        StoreError::Unavailable { reason, source } => StoreError::Open {
            location: location.to_owned(),
            source: source.unwrap_or_else(|| message_source(reason)),
        },
        other => other,
    }
}

/// An asynchronous client (tokio-postgres) with the store's own settings: the password,
/// TLS as configured, the timeouts. For the callback store, which lives beside the work
/// orders in the same database. Its connection runs on a task the caller owns.
pub async fn connect_async(
    settings: &PostgresSettings,
) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), StoreError> {
    let config = client_config(settings)?;
    let location = describe(&config);
    let failed = |e: tokio_postgres::Error| StoreError::Open {
        location: location.clone(),
        source: Arc::new(e),
    };
    let tls = Connector::new(&settings.tls).map_err(|source| StoreError::Open {
        location: location.clone(),
        source,
    })?;
    let report = |e: tokio_postgres::Error| {
        tracing::warn!(error = %e, "PostgreSQL connection lost");
    };
    match tls {
        Connector::Plain => {
            let (client, connection) = config.connect(NoTls).await.map_err(failed)?;
            let task = tokio::spawn(async move { connection.await.unwrap_or_else(report) });
            Ok((client, task))
        }
        Connector::Tls(tls) => {
            let (client, connection) = config.connect(tls).await.map_err(failed)?;
            let task = tokio::spawn(async move { connection.await.unwrap_or_else(report) });
            Ok((client, task))
        }
    }
}

fn client_config(settings: &PostgresSettings) -> Result<tokio_postgres::Config, StoreError> {
    let mut config: tokio_postgres::Config =
        settings
            .url
            .parse()
            .map_err(|e: tokio_postgres::Error| StoreError::Open {
                location: "PostgreSQL URL".into(),
                source: Arc::new(e),
            })?;
    if let Some(password) = &settings.password {
        config.password(password);
    }
    config.ssl_mode(match settings.tls {
        TlsMode::Disable => tokio_postgres::config::SslMode::Disable,
        TlsMode::Require | TlsMode::VerifyFull { .. } => tokio_postgres::config::SslMode::Require,
    });
    config.application_name("hotline");
    config.options(format!("-c lock_timeout={LOCK_TIMEOUT_MS}"));
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(10));
    #[cfg(target_os = "linux")]
    config.tcp_user_timeout(Duration::from_secs(5));
    Ok(config)
}

/// `host:port/database` for messages: never the password.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("postgresql://{host}:{port}/{db}")
}

enum Connector {
    Plain,
    Tls(tokio_postgres_rustls::MakeRustlsConnect),
}

impl Connector {
    fn new(mode: &TlsMode) -> Result<Self, ErrorSource> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| -> ErrorSource { Arc::new(e) })?;
        let config = match mode {
            TlsMode::Disable => return Ok(Connector::Plain),
            TlsMode::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
                .with_no_client_auth(),
            TlsMode::VerifyFull { ca_file } => {
                let mut roots = rustls::RootCertStore::empty();
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                if let Some(path) = ca_file {
                    use rustls::pki_types::pem::PemObject;
                    let certs = rustls::pki_types::CertificateDer::pem_file_iter(path).map_err(
                        |e| -> ErrorSource {
                            message_source(format!("CA file {}: {e}", path.display()))
                        },
                    )?;
                    for cert in certs {
                        let cert = cert.map_err(|e| -> ErrorSource {
                            message_source(format!("CA file {}: {e}", path.display()))
                        })?;
                        roots
                            .add(cert)
                            .map_err(|e| -> ErrorSource { Arc::new(e) })?;
                    }
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
        };
        Ok(Connector::Tls(
            tokio_postgres_rustls::MakeRustlsConnect::new(config),
        ))
    }
}

/// `sslmode=require`: the link is encrypted and the handshake's signatures checked,
/// but the certificate's identity is not (use `verify-full` for that).
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The PostgreSQL side of the [`Db`] seam: one connection, re-made when lost.
struct PgDb {
    config: postgres::Config,
    tls: Connector,
    client: Option<Client>,
    /// Prepared statements by SQL text (after placeholder rewriting).
    statements: HashMap<String, Statement>,
    location: String,
}

impl PgDb {
    fn connect(&mut self, timeout: Duration) -> Result<(), DbError> {
        self.client = None;
        self.statements.clear();
        let mut config = self.config.clone();
        config.connect_timeout(timeout);
        let connected = match &self.tls {
            Connector::Plain => config.connect(NoTls),
            Connector::Tls(tls) => config.connect(tls.clone()),
        };
        match connected {
            Ok(client) => {
                self.client = Some(client);
                Ok(())
            }
            Err(e) => Err(DbError::Unavailable(
                format!("cannot connect to {}: {e}", self.location),
                Some(Arc::new(e)),
            )),
        }
    }

    fn client(&mut self) -> Result<&mut Client, DbError> {
        self.client.as_mut().ok_or_else(|| {
            DbError::Unavailable(format!("not connected to {}", self.location), None)
        })
    }

    /// Classifies `e`, and forgets a connection that is gone.
    fn failed(&mut self, e: postgres::Error) -> DbError {
        let error = classify(e, &self.location);
        if matches!(error, DbError::Unavailable(..))
            && self.client.as_ref().is_none_or(|c| c.is_closed())
        {
            self.client = None;
            self.statements.clear();
        }
        error
    }

    fn statement(&mut self, sql: &str) -> Result<Statement, DbError> {
        let sql = dollar_placeholders(sql);
        if let Some(statement) = self.statements.get(&sql) {
            return Ok(statement.clone());
        }
        let prepared = self.client()?.prepare(&sql);
        let statement = prepared.map_err(|e| self.failed(e))?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let location = self.location.clone();
        let open_error = |e: postgres::Error| StoreError::Open {
            location: location.clone(),
            source: Arc::new(e),
        };
        let client = self.client().map_err(|e| open_failure(&location, e))?;
        let mut transaction = client.transaction().map_err(open_error)?;
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
            .map_err(open_error)?;
        transaction
            .batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            .map_err(open_error)?;
        let row = transaction
            .query_one("SELECT COALESCE(max(version), 0) FROM schema_version", &[])
            .map_err(open_error)?;
        let version: i64 = row.get(0);
        if version > SCHEMA_VERSION {
            return Err(StoreError::UnsupportedSchema {
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        for (target, sql) in MIGRATIONS {
            if version < *target {
                transaction.batch_execute(sql).map_err(open_error)?;
                transaction
                    .execute(
                        "INSERT INTO schema_version (version) VALUES ($1)",
                        &[target],
                    )
                    .map_err(open_error)?;
            }
        }
        transaction.commit().map_err(open_error)
    }
}

/// `?N` (the shared dialect) to `$N`. The shared SQL has no `?` inside literals.
fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

fn classify(e: postgres::Error, location: &str) -> DbError {
    let state = e.code().cloned();
    let is_io = e
        .source()
        .is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some());
    let closed = e.is_closed();
    let source: ErrorSource = Arc::new(e);
    match state {
        Some(state) if state == SqlState::UNIQUE_VIOLATION => DbError::UniqueViolation(source),
        Some(state) if state == SqlState::DATA_CORRUPTED || state == SqlState::INDEX_CORRUPTED => {
            DbError::Corrupt(source)
        }
        Some(state)
            if state.code().starts_with("08")
                || state.code().starts_with("53")
                || state.code().starts_with("57")
                || state == SqlState::LOCK_NOT_AVAILABLE
                || state == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            DbError::Unavailable(format!("{location}: {source}"), Some(source))
        }
        Some(_) => DbError::Other(source),
        None if closed || is_io => {
            DbError::Unavailable(format!("{location}: {source}"), Some(source))
        }
        None => DbError::Other(source),
    }
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                _ => i.to_sql(ty, out),
            },
            Value::Text(t) => t.as_str().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(match *ty {
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => Value::Int(i16::from_sql(ty, raw)?.into()),
            Type::BOOL => Value::Int(bool::from_sql(ty, raw)?.into()),
            _ => Value::Text(<&str>::from_sql(ty, raw)?.to_owned()),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(Value::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

fn params(values: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

impl Db for PgDb {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&mut self, sql: &str, values: &[Value]) -> Result<u64, DbError> {
        let statement = self.statement(sql)?;
        let result = self.client()?.execute(&statement, &params(values));
        result.map_err(|e| self.failed(e))
    }

    fn query(&mut self, sql: &str, values: &[Value]) -> Result<Vec<Row>, DbError> {
        let statement = self.statement(sql)?;
        let result = self.client()?.query(&statement, &params(values));
        let rows = result.map_err(|e| self.failed(e))?;
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| {
                        row.try_get::<_, Value>(i)
                            .map_err(|e| DbError::Other(Arc::new(e)))
                    })
                    .collect()
            })
            .collect()
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        let result = self.client()?.batch_execute(sql);
        result.map_err(|e| self.failed(e))
    }

    fn ensure_ready(&mut self) -> Result<(), DbError> {
        match &self.client {
            Some(client) if !client.is_closed() => Ok(()),
            _ => self.connect(RECONNECT_TIMEOUT),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars() {
        assert_eq!(
            dollar_placeholders("SELECT a FROM t WHERE b = ?1 AND c IN (?12, ?2) AND d = '?'"),
            "SELECT a FROM t WHERE b = $1 AND c IN ($12, $2) AND d = '?'"
        );
    }

    #[test]
    fn the_location_never_holds_the_password() {
        let settings = PostgresSettings {
            url: "postgres://hotline:secret@db.example:6432/orders".into(),
            password: Some("other-secret".into()),
            tls: TlsMode::Disable,
        };
        let config = client_config(&settings).expect("config");
        let location = describe(&config);
        assert_eq!(location, "postgresql://db.example:6432/orders");
        assert!(!format!("{settings:?}").contains("other-secret"));
    }

    #[test]
    fn tls_modes_build_a_connector() {
        for mode in [
            TlsMode::Disable,
            TlsMode::Require,
            TlsMode::VerifyFull { ca_file: None },
        ] {
            assert!(Connector::new(&mode).is_ok(), "{mode:?}");
        }
        let missing = TlsMode::VerifyFull {
            ca_file: Some("/nonexistent/ca.pem".into()),
        };
        assert!(Connector::new(&missing).is_err());
    }
}
