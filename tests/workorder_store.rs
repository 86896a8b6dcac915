//! Runs the shared work order store conformance suite (R10, R21, R31) against BOTH
//! backends: the embedded SQLite store (each check on a fresh store in its own
//! temporary directory) and PostgreSQL (each check in a fresh database on
//! 127.0.0.1:5432, dropped after; without a server those tests fail, saying how to
//! start one). Then the checks only one backend can have: files, permissions, the v1
//! migration, a vanished or locked file; a cut PostgreSQL connection.

mod pg_harness;

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use hotline::workorder::conformance;
use hotline::workorder::postgres::PostgresStore;
use hotline::workorder::sqlite::{CREATED_MARKER, DB_FILE_NAME, SqliteStore};
use hotline::workorder::{
    AbandonReason, CallOutcome, HangupSide, StoreError, WorkOrderId, WorkOrderStore,
};
use pg_harness::TestDatabase;

fn fresh_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("data")).expect("open store");
    (dir, store)
}

fn fresh_postgres() -> (TestDatabase, PostgresStore) {
    let db = TestDatabase::create();
    let store = PostgresStore::connect(&db.settings()).expect("connect to the test database");
    (db, store)
}

/// One test per backend for each conformance check.
macro_rules! conformance {
    ($($name:ident => $check:path;)+) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let (_dir, store) = fresh_store();
                    $check(&store).await;
                }
            )+
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let (_db, store) = fresh_postgres();
                    $check(&store).await;
                    store.close().await.expect("close");
                }
            )+
        }
    };
}

conformance! {
    create_then_get_round_trips_full_caller_number_r10 => conformance::create_then_get_round_trips;
    duplicate_create_is_refused => conformance::duplicate_create_is_refused;
    answered_then_ended_r8_r10 => conformance::answered_then_ended;
    answer_without_path_keeps_existing_path => conformance::answer_without_path_keeps_existing_path;
    abandon_and_reject_reasons_are_kept_r5 => conformance::abandon_and_reject_reasons_are_kept;
    unknown_ids_are_not_found => conformance::unknown_ids_are_not_found;
    list_recent_is_newest_first_and_limited => conformance::list_recent_is_newest_first_and_limited;
    find_by_call_id => conformance::find_by_call_id;
    call_counts_since_buckets_by_queue_minute_r5 => conformance::call_counts_since_buckets_by_queue_minute;
    queued_then_connected_r7 => conformance::queued_then_connected;
    first_agent_keeps_the_order_r7 => conformance::first_agent_keeps_the_order;
    overflow_keeps_the_first_queue_time_r5 => conformance::overflow_keeps_the_first_queue_time;
    abandoned_in_queue_keeps_the_wait => conformance::abandoned_in_queue_keeps_the_wait;
    end_unfinished_closes_open_orders_r4 => conformance::end_unfinished_closes_open_orders;
    a_retried_create_is_idempotent => conformance::matter::a_retried_create_is_idempotent;
    invalid_transitions_are_refused_and_change_nothing_r21 => conformance::matter::invalid_transitions_are_refused_and_change_nothing;
    closing_rules_r21_r25 => conformance::matter::closing_rules;
    matter_fields_round_trip_with_their_events_r11_r14_r23_r28 => conformance::matter::matter_fields_round_trip_with_their_events;
    further_calls_attach_to_an_order_r16_r22 => conformance::matter::further_calls_attach_to_an_order;
    list_orders_filters_and_pages => conformance::matter::list_orders_filters_and_pages;
    read_audit_log_appends_r12 => conformance::matter::read_audit_log_appends;
    supervisor_actions_are_in_the_audit_log => conformance::matter::supervisor_actions_are_in_the_audit_log;
    listing_leaves_out_hidden_categories_r15 => conformance::matter::listing_leaves_out_hidden_categories;
    knowledge_search_in_chinese_r13 => conformance::matter::knowledge_search_in_chinese;
    provider_directory_in_chinese_r13_r14 => conformance::matter::provider_directory_in_chinese;
    bad_input_is_refused_and_nothing_is_stored => conformance::matter::bad_input_is_refused_and_nothing_is_stored;
    purge_removes_old_orders_and_is_logged => conformance::matter::purge_removes_old_orders_and_is_logged;
    a_working_store_is_healthy => conformance::matter::a_working_store_is_healthy;
    end_unfinished_ends_attached_calls_r4 => conformance::matter::end_unfinished_ends_attached_calls;
}

#[tokio::test]
async fn persists_across_close_and_reopen_r4_r10() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).expect("open");
    let written = conformance::persistence_write(&store).await;
    store.close().await.expect("close");

    let reopened = SqliteStore::open(dir.path()).expect("reopen");
    conformance::persistence_check(&reopened, &written).await;
}

#[tokio::test]
async fn persists_when_dropped_without_close_r10() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).expect("open");
    let written = conformance::persistence_write(&store).await;
    // No orderly close: every acknowledged write must already be on disk.
    drop(store);

    let reopened = SqliteStore::open(dir.path()).expect("reopen");
    conformance::persistence_check(&reopened, &written).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_from_many_tasks() {
    let (_dir, store) = fresh_store();
    let store: Arc<dyn WorkOrderStore> = Arc::new(store);
    conformance::concurrent_creates(store).await;
}

#[tokio::test]
async fn open_creates_directory_and_database_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("nested").join("data");
    let store = SqliteStore::open(&data_dir).expect("open");
    assert_eq!(store.path(), data_dir.join(DB_FILE_NAME));
    assert!(data_dir.join(DB_FILE_NAME).is_file());
}

#[cfg(unix)]
#[tokio::test]
async fn store_files_are_private_to_the_owner_r12() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let store = SqliteStore::open(&data_dir).expect("open");
    conformance::persistence_write(&store).await;
    for path in [
        data_dir.clone(),
        data_dir.join(DB_FILE_NAME),
        data_dir.join(format!("{DB_FILE_NAME}-wal")),
    ] {
        let mode = std::fs::metadata(&path)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{} is mode {mode:o}", path.display());
    }
}

/// The schema exactly as version 1 of the engine created it. Kept here as literal
/// text, not taken from the library, so a change to the shipped migrations cannot
/// quietly change what this test calls "an old database".
const V1_SCHEMA_AS_SHIPPED: &str = "
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
    agent          TEXT
) STRICT;
CREATE INDEX work_orders_by_call_id ON work_orders (call_id);
CREATE INDEX work_orders_by_offered_at ON work_orders (offered_at);
CREATE INDEX work_orders_unfinished ON work_orders (id) WHERE ended_at IS NULL;
PRAGMA user_version = 1;
";

/// R4: a store written by version 1 (before the ACD) opens, migrates to the current
/// version in place, keeps every order, and its old orders take the new queue fields.
#[tokio::test]
async fn a_version_1_store_opens_and_migrates_r4() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(DB_FILE_NAME);
    {
        let conn = rusqlite::Connection::open(&path).expect("create v1 file");
        conn.execute_batch(V1_SCHEMA_AS_SHIPPED).expect("v1 schema");
        conn.execute_batch(
            "INSERT INTO work_orders (id, call_id, caller, callee, direction, offered_at, \
               answered_at, ended_at, hangup_side, outcome, outcome_reason, recording_path, \
               status, category, agent) VALUES \
             ('20261128-153012-000000000001', 'old-1@trunk', '13800000001', '8890', 'inbound', \
              '2026-11-28T15:30:12.123456789Z', '2026-11-28T15:30:14.000000000Z', \
              '2026-11-28T15:32:00.000000000Z', 'caller', 'answered', NULL, 'recordings/o.wav', \
              'accepted', NULL, NULL), \
             ('20261128-153100-000000000002', 'old-2@trunk', '13800000002', '8890', 'inbound', \
              '2026-11-28T15:31:00.000000000Z', NULL, NULL, NULL, NULL, NULL, NULL, \
              'accepted', NULL, NULL);",
        )
        .expect("v1 rows");
    }

    let store = SqliteStore::open(dir.path()).expect("open and migrate a v1 store");
    let old: WorkOrderId = "20261128-153012-000000000001".parse().expect("id");
    let order = store.get(&old).await.expect("get").expect("kept");
    let offered = Utc
        .with_ymd_and_hms(2026, 11, 28, 15, 30, 12)
        .single()
        .expect("valid")
        + Duration::nanoseconds(123_456_789);
    assert_eq!(order.offered_at, offered);
    assert_eq!(order.caller, "13800000001");
    assert_eq!(order.outcome, Some(CallOutcome::Answered));
    assert_eq!(order.hangup_side, Some(HangupSide::Caller));
    assert_eq!(order.recording_path.as_deref(), Some("recordings/o.wav"));
    assert_eq!(
        (order.queue, order.queued_at, order.connected_at),
        (None, None, None)
    );

    // The open v1 order takes the new writes like any other.
    let open: WorkOrderId = "20261128-153100-000000000002".parse().expect("id");
    let queued = offered + Duration::seconds(60);
    store
        .mark_queued(&open, queued, "general")
        .await
        .expect("queue");
    store
        .mark_connected(&open, queued + Duration::seconds(9), "1001")
        .await
        .expect("connect");
    let migrated = store.get(&open).await.expect("get").expect("kept");
    assert_eq!(migrated.agent.as_deref(), Some("1001"));
    assert_eq!(migrated.wait(), Some(Duration::seconds(9)));
    assert_eq!(store.list_recent(10).await.expect("list").len(), 2);
    store.close().await.expect("close");

    let conn = rusqlite::Connection::open(&path).expect("raw open");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .expect("user_version");
    // Migrated forward through every step (v2: the ACD; v3: the matter, issue 8).
    assert_eq!(version, hotline::workorder::sqlite::SCHEMA_VERSION);
    assert_eq!(version, 3);
    // Opening again finds nothing left to migrate.
    drop(conn);
    let reopened = SqliteStore::open(dir.path()).expect("reopen");
    assert_eq!(reopened.get(&open).await.expect("get"), Some(migrated));
}

/// R4: an order from a v1 store left open by a crash (answered by the IVR, never
/// queued: the walking skeleton's calls) closes as answered after the migration.
#[tokio::test]
async fn open_v1_orders_close_after_migration_r4() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let conn =
            rusqlite::Connection::open(dir.path().join(DB_FILE_NAME)).expect("create v1 file");
        conn.execute_batch(V1_SCHEMA_AS_SHIPPED).expect("v1 schema");
        conn.execute_batch(
            "INSERT INTO work_orders (id, call_id, caller, callee, direction, offered_at, \
               answered_at, status) VALUES \
             ('20261128-153012-000000000001', 'old-1@trunk', '13800000001', '8890', 'inbound', \
              '2026-11-28T15:30:12.000000000Z', '2026-11-28T15:30:14.000000000Z', 'accepted'), \
             ('20261128-153013-000000000002', 'old-2@trunk', '13800000002', '8890', 'inbound', \
              '2026-11-28T15:30:13.000000000Z', NULL, 'accepted');",
        )
        .expect("v1 rows");
    }
    let store = SqliteStore::open(dir.path()).expect("open");
    let restart = Utc::now();
    let restarted = CallOutcome::Abandoned {
        reason: AbandonReason::EngineRestarted,
    };
    assert_eq!(
        store
            .end_unfinished(restart, restarted)
            .await
            .expect("close"),
        2
    );
    let orders = store.list_recent(10).await.expect("list");
    assert_eq!(orders[0].outcome, Some(restarted));
    assert_eq!(orders[1].outcome, Some(CallOutcome::Answered));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_from_many_tasks_postgres() {
    let (_db, store) = fresh_postgres();
    let store: Arc<dyn WorkOrderStore> = Arc::new(store);
    conformance::concurrent_creates(store).await;
}

#[tokio::test]
async fn persists_across_close_and_reconnect_postgres_r4_r10() {
    let db = TestDatabase::create();
    let store = PostgresStore::connect(&db.settings()).expect("connect");
    let written = conformance::persistence_write(&store).await;
    store.close().await.expect("close");
    // Connecting again migrates nothing and finds everything.
    let reconnected = PostgresStore::connect(&db.settings()).expect("reconnect");
    conformance::persistence_check(&reconnected, &written).await;
    reconnected.close().await.expect("close");
}

#[tokio::test]
async fn postgres_refuses_a_schema_newer_than_it_knows() {
    let db = TestDatabase::create();
    PostgresStore::connect(&db.settings())
        .expect("migrate")
        .close()
        .await
        .expect("close");
    db.execute("INSERT INTO schema_version (version) VALUES (99)");
    match PostgresStore::connect(&db.settings()) {
        Err(StoreError::UnsupportedSchema { found, .. }) => assert_eq!(found, 99),
        Err(other) => panic!("expected UnsupportedSchema, got {other}"),
        Ok(_) => panic!("opened a newer schema"),
    }
}

/// A PostgreSQL outage (every connection cut, as a server restart does) fails the
/// write in flight as `Unavailable` (transient: the engine's queue retries it), the
/// health check notices, and the next write reconnects; nothing written is lost.
#[tokio::test]
async fn a_cut_postgres_connection_fails_fast_and_reconnects() {
    let (db, store) = fresh_postgres();
    let first = conformance::inbound_order(1, conformance::base_time());
    store.create(&first).await.expect("create");
    db.terminate_connections();
    let second = conformance::inbound_order(2, conformance::base_time());
    let mut failures = 0;
    loop {
        match store.create(&second).await {
            Ok(()) => break,
            Err(e) => {
                assert!(e.is_transient(), "a cut connection is transient: {e}");
                failures += 1;
                assert!(failures < 3, "did not reconnect: {e}");
            }
        }
    }
    assert!(store.health().await.up);
    assert_eq!(store.list_recent(10).await.expect("list").len(), 2);
    store.close().await.expect("close");
}

#[tokio::test]
async fn an_unreachable_postgres_is_an_open_error_naming_the_server_not_the_password() {
    let settings = hotline::workorder::postgres::PostgresSettings {
        // Port 1 on loopback: nothing listens there.
        url: "postgres://hotline@127.0.0.1:1/hotline".into(),
        password: Some("s3cret-pw".into()),
        tls: hotline::workorder::postgres::TlsMode::Disable,
    };
    match PostgresStore::connect(&settings) {
        Err(e @ StoreError::Open { .. }) => {
            let text = e.to_string();
            assert!(text.contains("127.0.0.1:1"), "{text}");
            assert!(!text.contains("s3cret-pw"), "{text}");
        }
        Err(other) => panic!("expected Open, got {other}"),
        Ok(_) => panic!("connected to nothing"),
    }
}

/// The database file deleted while the engine runs: writes fail (never go on into the
/// unlinked file), health says down and why, and a restart refuses to recreate it
/// empty.
#[tokio::test]
async fn a_vanished_database_file_is_noticed_and_never_recreated_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).expect("open");
    let order = conformance::inbound_order(1, conformance::base_time());
    store.create(&order).await.expect("create");
    assert!(store.health().await.up);

    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.path().join(format!("{DB_FILE_NAME}{suffix}")));
    }
    let health = store.health().await;
    assert!(!health.up);
    let problem = health.problem.expect("a reason");
    assert!(problem.contains("vanished"), "{problem}");
    match store
        .mark_answered(&order.id, conformance::base_time(), None)
        .await
    {
        Err(e @ StoreError::Unavailable { .. }) => {
            assert!(e.to_string().contains("vanished"), "{e}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    store.close().await.expect("close");
    assert!(!dir.path().join(DB_FILE_NAME).exists());

    match SqliteStore::open(dir.path()) {
        Err(e @ StoreError::Open { .. }) => assert!(e.to_string().contains("vanished"), "{e}"),
        Err(other) => panic!("expected Open, got {other}"),
        Ok(_) => panic!("recreated a vanished store empty"),
    }
    assert!(
        !dir.path().join(DB_FILE_NAME).exists(),
        "no empty file was made"
    );
    // Starting over on purpose: remove the marker too.
    std::fs::remove_file(dir.path().join(CREATED_MARKER)).expect("remove marker");
    let fresh = SqliteStore::open(dir.path()).expect("a deliberate fresh start");
    assert!(fresh.list_recent(10).await.expect("list").is_empty());
}

/// Another process holding the file (`BEGIN EXCLUSIVE`): a write fails with
/// `Unavailable` after the short busy timeout instead of waiting for the lock, reads go
/// on, health says down, and once the lock goes the same write succeeds.
#[tokio::test]
async fn a_locked_database_fails_fast_and_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).expect("open");
    let order = conformance::inbound_order(1, conformance::base_time());
    let earlier = conformance::inbound_order(2, conformance::base_time());
    store
        .create(&earlier)
        .await
        .expect("create before the lock");
    let locker = rusqlite::Connection::open(dir.path().join(DB_FILE_NAME)).expect("open");
    locker.execute_batch("BEGIN EXCLUSIVE").expect("lock");
    // Reads take no write lock: they go on (so a reading process, such as the CLI,
    // never holds up the engine's writes either).
    assert_eq!(
        store.get(&earlier.id).await.expect("read while locked"),
        Some(earlier.clone())
    );

    // The lock is still held when the answer comes: the write did not wait for it.
    match store.create(&order).await {
        Err(e @ StoreError::Unavailable { .. }) => {
            assert!(e.is_transient());
            assert!(e.to_string().contains("locked"), "{e}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // The wait is bounded by a short busy timeout (the old one was 5 s).
    assert!(hotline::workorder::sqlite::BUSY_TIMEOUT <= std::time::Duration::from_millis(250));
    assert!(!store.health().await.up);

    locker.execute_batch("COMMIT").expect("unlock");
    store.create(&order).await.expect("the retried write");
    assert!(store.health().await.up);
    assert_eq!(store.get(&order.id).await.expect("get"), Some(order));
}

/// Where no PostgreSQL answers, the PostgreSQL tests fail (never pass quietly) with a
/// message saying how to get one.
#[test]
fn without_postgres_the_tests_fail_saying_how_to_start_one() {
    // Port 1 on loopback: nothing listens there.
    let nowhere = "host=127.0.0.1 port=1 user=postgres dbname=postgres connect_timeout=2";
    let failed = std::panic::catch_unwind(|| TestDatabase::create_on(nowhere));
    let panic = match failed {
        Err(panic) => panic,
        Ok(_) => panic!("created a database on a port where nothing listens"),
    };
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    for needle in [
        "scripts/install-test-deps.sh",
        "apt-get install postgresql",
        "pg_ctlcluster 15 main start",
    ] {
        assert!(message.contains(needle), "{message}");
    }
}

/// R13 on PostgreSQL: the `pg_trgm` GIN index answers a Chinese keyword (the planner is
/// told not to scan the table, which it would prefer on a few dozen rows).
#[tokio::test]
async fn postgres_keyword_search_can_use_the_trigram_index() {
    let (db, store) = fresh_postgres();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/knowledge.json");
    let entries = hotline::workorder::import::read_knowledge(&path).expect("knowledge");
    store.import_knowledge(&entries).await.expect("import");
    store.close().await.expect("close");
    let plan = db.query_text(
        "SET enable_seqscan = off",
        "EXPLAIN SELECT id FROM knowledge WHERE search_text ILIKE '%社保卡%'",
    );
    assert!(
        plan.iter().any(|line| line.contains("knowledge_search")),
        "{plan:#?}"
    );
}
