//! A fresh PostgreSQL database per test on 127.0.0.1:5432 (user `postgres`, trust
//! auth), dropped afterwards. Where no PostgreSQL answers, the test FAILS with how to
//! start one: it never passes quietly.
#![allow(dead_code)] // each test binary uses its own part of the harness

use std::sync::atomic::{AtomicU32, Ordering};

use hotline::workorder::postgres::{PostgresSettings, TlsMode};

pub const SERVER: &str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5";

/// One test's database; dropped (with any connection still open) when this goes.
pub struct TestDatabase {
    pub name: String,
}

impl TestDatabase {
    /// Creates `hotline_test_<pid>_<n>_<nanos>` on the test server.
    pub fn create() -> TestDatabase {
        Self::create_on(SERVER)
    }

    /// Creates a test database on `server` (libpq key=value settings).
    pub fn create_on(server: &str) -> TestDatabase {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "hotline_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        admin(server, &format!("CREATE DATABASE {name}"));
        TestDatabase { name }
    }

    /// Settings for the store: plain TCP to the local test server.
    pub fn settings(&self) -> PostgresSettings {
        PostgresSettings {
            url: self.url(),
            password: None,
            tls: TlsMode::Disable,
        }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    /// Cuts every connection to this database, as a server restart would.
    pub fn terminate_connections(&self) {
        admin(
            SERVER,
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' \
             AND pid <> pg_backend_pid()",
                self.name
            ),
        );
    }

    /// Runs `setup`, then `query`, in this database on one connection; the first column
    /// of every row, as text.
    pub fn query_text(&self, setup: &str, query: &str) -> Vec<String> {
        let config = format!(
            "host=127.0.0.1 port=5432 user=postgres dbname={} connect_timeout=5",
            self.name
        );
        let (setup, query) = (setup.to_owned(), query.to_owned());
        let (sender, receiver) = std::sync::mpsc::channel();
        off_runtime(move || {
            let mut client = postgres::Client::connect(&config, postgres::NoTls)
                .unwrap_or_else(|e| panic!("{}", unreachable_message(&e)));
            client.batch_execute(&setup).expect("setup SQL");
            let rows = client.query(query.as_str(), &[]).expect("query");
            let texts = rows.iter().map(|row| row.get::<_, String>(0)).collect();
            let _ = sender.send(texts);
        });
        receiver.recv().expect("query result")
    }

    /// Runs SQL in this database.
    pub fn execute(&self, sql: &str) {
        let config = format!(
            "host=127.0.0.1 port=5432 user=postgres dbname={} connect_timeout=5",
            self.name
        );
        let sql = sql.to_owned();
        off_runtime(move || {
            let mut client = postgres::Client::connect(&config, postgres::NoTls)
                .unwrap_or_else(|e| panic!("{}", unreachable_message(&e)));
            client.batch_execute(&sql).expect("test SQL");
        });
    }
}

impl Drop for TestDatabase {
    /// Never panics (it may run while a failed test unwinds): a database left behind
    /// is reported instead.
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            postgres::Client::connect(SERVER, postgres::NoTls)
                .and_then(|mut client| client.batch_execute(&sql))
                .map_err(|e| e.to_string())
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}: {dropped:?}", self.name);
        }
    }
}

pub fn unreachable_message(e: &dyn std::fmt::Display) -> String {
    format!(
        "no PostgreSQL answers on 127.0.0.1:5432 as user postgres with trust auth ({e}). \
         The PostgreSQL conformance tests need one: run scripts/install-test-deps.sh \
         (it installs postgresql and starts it with trust auth on 127.0.0.1), or by hand \
         `apt-get install postgresql` then `pg_ctlcluster 15 main start`"
    )
}

/// Runs `sql` on the server's `postgres` database. The blocking client makes its own
/// runtime, so it runs on a thread outside the test's.
fn admin(server: &str, sql: &str) {
    let sql = sql.to_owned();
    let server = server.to_owned();
    off_runtime(move || {
        let mut client = postgres::Client::connect(&server, postgres::NoTls)
            .unwrap_or_else(|e| panic!("{}", unreachable_message(&e)));
        client
            .batch_execute(&sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    });
}

fn off_runtime(work: impl FnOnce() + Send + 'static) {
    if let Err(panic) = std::thread::spawn(work).join() {
        std::panic::resume_unwind(panic);
    }
}

/// The two work-order store backends a test runs against (R31).
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A store of `backend`: SQLite under `dir`, or PostgreSQL in a fresh test database,
/// which is dropped when the returned guard goes.
pub fn open_store(
    backend: Backend,
    dir: &std::path::Path,
) -> (
    std::sync::Arc<dyn hotline::workorder::WorkOrderStore>,
    Option<TestDatabase>,
) {
    use hotline::workorder::SqlStore;
    match backend {
        Backend::Sqlite => (
            std::sync::Arc::new(SqlStore::open(&dir.join("data")).expect("open SQLite store")),
            None,
        ),
        Backend::Postgres => {
            let database = TestDatabase::create();
            let store = SqlStore::connect(&database.settings())
                .unwrap_or_else(|e| panic!("{}", unreachable_message(&e)));
            (std::sync::Arc::new(store), Some(database))
        }
    }
}

/// Each listed test, once per backend: `sqlite::name` and `postgres::name`. The
/// including file brings `Backend` into scope.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Backend::Sqlite).await
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Backend::Postgres).await
            })*
        }
    };
}
