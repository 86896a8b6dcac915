//! The PostgreSQL callback store runs the shared conformance suite (R20, R31) against a
//! real server on 127.0.0.1:5432 (user `postgres`, trust auth, as
//! `scripts/install-test-deps.sh` sets it up). Each test creates a fresh database with
//! a unique name and drops it afterwards, even when the test fails. Without a server
//! the tests fail, naming the script; they never pass quietly.

use hotline::callbacks::postgres::PostgresCallbackStore;
use hotline::callbacks::{CallbackStoreError, conformance};
use tokio_postgres::NoTls;

const SERVER: &str = "host=127.0.0.1 port=5432 user=postgres";

/// A database that exists for one test.
struct TestDatabase {
    name: String,
}

impl TestDatabase {
    async fn create(test: &str) -> TestDatabase {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("hotline_cb_{test}_{}_{nanos}", std::process::id());
        admin(&format!("CREATE DATABASE {name}")).await;
        TestDatabase { name }
    }

    fn conninfo(&self) -> String {
        format!("{SERVER} dbname={}", self.name)
    }

    async fn store(&self) -> PostgresCallbackStore {
        PostgresCallbackStore::connect(&self.conninfo())
            .await
            .expect("connect the callback store")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // A runtime of its own: the test's runtime may be shutting down.
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(admin(&sql));
        })
        .join()
        .expect("drop the test database");
    }
}

/// Runs one statement on the server's `postgres` database.
async fn admin(sql: &str) {
    let (client, connection) =
        match tokio_postgres::connect(&format!("{SERVER} dbname=postgres"), NoTls).await {
            Ok(pair) => pair,
            Err(e) => panic!(
                "PostgreSQL is not reachable on 127.0.0.1:5432 as user postgres ({e}); \
             run scripts/install-test-deps.sh to install and start it"
            ),
        };
    let connection = tokio::spawn(connection);
    client.batch_execute(sql).await.expect(sql);
    drop(client);
    let _ = connection.await;
}

#[tokio::test]
async fn a_task_round_trips_every_field() {
    let db = TestDatabase::create("round_trip").await;
    conformance::a_task_round_trips_every_field(&db.store().await).await;
}

#[tokio::test]
async fn a_restart_loses_no_task_and_dials_a_dialing_one_once_again_r20() {
    let db = TestDatabase::create("restart").await;
    let before = db.store().await;
    let after = db.store().await;
    conformance::a_restart_loses_no_task_and_dials_a_dialing_one_once(&before, &after).await;
}

#[tokio::test]
async fn listings_filter_by_due_overdue_and_owner() {
    let db = TestDatabase::create("listings").await;
    conformance::listings_filter_by_due_overdue_and_owner(&db.store().await).await;
}

#[tokio::test]
async fn a_newer_schema_is_refused_and_left_alone() {
    let db = TestDatabase::create("schema").await;
    drop(db.store().await);
    let (client, connection) = tokio_postgres::connect(&db.conninfo(), NoTls)
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    client
        .batch_execute("UPDATE callback_schema SET version = 99")
        .await
        .unwrap();
    match PostgresCallbackStore::connect(&db.conninfo()).await {
        Err(CallbackStoreError::UnsupportedSchema { found, supported }) => {
            assert_eq!((found, supported), (99, 1));
        }
        Err(other) => panic!("expected UnsupportedSchema, got {other}"),
        Ok(_) => panic!("expected UnsupportedSchema, the store opened"),
    }
    let version: i64 = client
        .query_one("SELECT version FROM callback_schema", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, 99, "left alone");
    drop(client);
    let _ = connection.await;
}

#[tokio::test]
async fn no_server_is_a_clear_error() {
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let result =
        PostgresCallbackStore::connect(&format!("host=127.0.0.1 port={port} user=postgres")).await;
    match result {
        Err(e @ CallbackStoreError::Connect(_)) => {
            assert!(
                e.to_string()
                    .starts_with("cannot connect to the callback store"),
                "{e}"
            );
        }
        Err(other) => panic!("expected Connect, got {other}"),
        Ok(_) => panic!("connected to a port nothing listens on"),
    }
}

/// The callback store reaches PostgreSQL the way the work-order store does: with the
/// password `store.password_env` gives and TLS (R31). The test server trusts local
/// connections, so the password is accepted unseen; the link must be encrypted, which
/// needs the server's `ssl = on` (Debian's default, with its snakeoil certificate).
#[tokio::test]
async fn the_store_connects_with_a_password_over_tls() {
    use hotline::workorder::postgres::{PostgresSettings, TlsMode};
    let db = TestDatabase::create("tls").await;
    let settings = PostgresSettings {
        url: db.conninfo(),
        password: Some("unused-under-trust".into()),
        tls: TlsMode::Require,
    };
    let store = PostgresCallbackStore::connect_with(&settings)
        .await
        .unwrap_or_else(|e| {
            panic!("connect over TLS ({e}); the server on 127.0.0.1:5432 needs ssl = on")
        });
    conformance::a_task_round_trips_every_field(&store).await;
    let (client, connection) = tokio_postgres::connect(&db.conninfo(), NoTls)
        .await
        .expect("connect to look");
    let connection = tokio::spawn(connection);
    let encrypted: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE ssl AND datname = current_database()",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0);
    assert_eq!(encrypted, 1, "the callback store's connection is encrypted");
    drop(client);
    let _ = connection.await;
}
