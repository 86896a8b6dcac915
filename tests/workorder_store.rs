//! Runs the shared work order store conformance suite (R10, R31) against the embedded
//! SQLite store, each check on a fresh store in its own temporary directory, plus the
//! checks only a file-backed store can have (files created, permissions, reopen).

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use hotline::workorder::conformance;
use hotline::workorder::sqlite::{DB_FILE_NAME, SqliteStore};
use hotline::workorder::{AbandonReason, CallOutcome, HangupSide, WorkOrderId, WorkOrderStore};

fn fresh_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("data")).expect("open store");
    (dir, store)
}

#[tokio::test]
async fn create_then_get_round_trips_full_caller_number_r10() {
    let (_dir, store) = fresh_store();
    conformance::create_then_get_round_trips(&store).await;
}

#[tokio::test]
async fn duplicate_create_is_refused() {
    let (_dir, store) = fresh_store();
    conformance::duplicate_create_is_refused(&store).await;
}

#[tokio::test]
async fn answered_then_ended_r8_r10() {
    let (_dir, store) = fresh_store();
    conformance::answered_then_ended(&store).await;
}

#[tokio::test]
async fn answer_without_path_keeps_existing_path() {
    let (_dir, store) = fresh_store();
    conformance::answer_without_path_keeps_existing_path(&store).await;
}

#[tokio::test]
async fn abandon_and_reject_reasons_are_kept_r5() {
    let (_dir, store) = fresh_store();
    conformance::abandon_and_reject_reasons_are_kept(&store).await;
}

#[tokio::test]
async fn unknown_ids_are_not_found() {
    let (_dir, store) = fresh_store();
    conformance::unknown_ids_are_not_found(&store).await;
}

#[tokio::test]
async fn list_recent_is_newest_first_and_limited() {
    let (_dir, store) = fresh_store();
    conformance::list_recent_is_newest_first_and_limited(&store).await;
}

#[tokio::test]
async fn find_by_call_id() {
    let (_dir, store) = fresh_store();
    conformance::find_by_call_id(&store).await;
}

#[tokio::test]
async fn call_counts_since_buckets_by_queue_minute_r5() {
    let (_dir, store) = fresh_store();
    conformance::call_counts_since_buckets_by_queue_minute(&store).await;
}

#[tokio::test]
async fn queued_then_connected_r7() {
    let (_dir, store) = fresh_store();
    conformance::queued_then_connected(&store).await;
}

#[tokio::test]
async fn first_agent_keeps_the_order_r7() {
    let (_dir, store) = fresh_store();
    conformance::first_agent_keeps_the_order(&store).await;
}

#[tokio::test]
async fn overflow_keeps_the_first_queue_time_r5() {
    let (_dir, store) = fresh_store();
    conformance::overflow_keeps_the_first_queue_time(&store).await;
}

#[tokio::test]
async fn abandoned_in_queue_keeps_the_wait() {
    let (_dir, store) = fresh_store();
    conformance::abandoned_in_queue_keeps_the_wait(&store).await;
}

#[tokio::test]
async fn end_unfinished_closes_open_orders_r4() {
    let (_dir, store) = fresh_store();
    conformance::end_unfinished_closes_open_orders(&store).await;
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
