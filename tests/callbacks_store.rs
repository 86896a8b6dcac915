//! The SQLite callback store: tasks survive a restart (R20), a task dialing when the
//! engine died is pending again and dialled once, the tables live beside the work
//! orders in their file without disturbing them, and listings filter as the API asks.

use chrono::{DateTime, TimeZone, Utc};
use hotline::callbacks::conformance::{self, drain};
use hotline::callbacks::sqlite::{DB_FILE_NAME, SqliteCallbackStore};
use hotline::callbacks::{CallbackStore, CallbackStoreError, NewTask, Reason, Scheduler};
use hotline::config::callbacks::CallbacksConfig;
use hotline::workorder::WorkOrderId;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap()
}

fn new_task(reason: Reason, owner: Option<&str>, number: &str) -> NewTask {
    NewTask {
        work_order: WorkOrderId::from_parts(t0(), 0x5eed),
        number: number.parse().unwrap(),
        reason,
        window: None,
        owner: owner.map(str::to_owned),
        queue: "general".into(),
    }
}

#[tokio::test]
async fn a_task_round_trips_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteCallbackStore::open(dir.path()).unwrap();
    conformance::a_task_round_trips_every_field(&store).await;
}

#[tokio::test]
async fn a_restart_loses_no_task_and_dials_a_dialing_one_once_again_r20() {
    let dir = tempfile::tempdir().unwrap();
    let before = SqliteCallbackStore::open(dir.path()).unwrap();
    // The engine dies after the first part: the second handle is a fresh open of the
    // same file, as after a restart.
    let after = SqliteCallbackStore::open(dir.path()).unwrap();
    conformance::a_restart_loses_no_task_and_dials_a_dialing_one_once(&before, &after).await;
}

#[tokio::test]
async fn listings_filter_by_due_overdue_and_owner() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteCallbackStore::open(dir.path()).unwrap();
    conformance::listings_filter_by_due_overdue_and_owner(&store).await;
}

#[tokio::test]
async fn the_tables_live_beside_the_work_orders_with_their_own_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let orders = hotline::workorder::sqlite::SqliteStore::open(dir.path()).unwrap();
    let callbacks = SqliteCallbackStore::open(dir.path()).unwrap();
    assert_eq!(callbacks.path(), orders.path());
    let mut s = Scheduler::new(CallbacksConfig::default());
    s.create(
        t0(),
        new_task(Reason::Complaint, Some("1001"), "13812345678"),
    )
    .unwrap();
    drain(&mut s, &callbacks).await;
    orders.close().await.unwrap();
    // The work order store reopens over a file that has the callback tables too.
    let orders = hotline::workorder::sqlite::SqliteStore::open(dir.path()).unwrap();
    orders.close().await.unwrap();

    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE_NAME)).unwrap();
    let user_version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(
        user_version,
        hotline::workorder::sqlite::SCHEMA_VERSION,
        "the work orders' version is theirs alone"
    );
    let version: i64 = conn
        .query_row("SELECT version FROM callback_schema", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(DB_FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "full numbers inside (R12)");
    }
}

#[tokio::test]
async fn a_newer_schema_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteCallbackStore::open(dir.path()).unwrap());
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE_NAME)).unwrap();
    conn.execute("UPDATE callback_schema SET version = 99", [])
        .unwrap();
    drop(conn);
    match SqliteCallbackStore::open(dir.path()) {
        Err(CallbackStoreError::UnsupportedSchema { found, supported }) => {
            assert_eq!((found, supported), (99, 1));
        }
        Err(other) => panic!("expected UnsupportedSchema, got {other}"),
        Ok(_) => panic!("expected UnsupportedSchema, the store opened"),
    }
}

#[tokio::test]
async fn a_corrupt_row_is_reported_not_guessed() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteCallbackStore::open(dir.path()).unwrap();
    let mut s = Scheduler::new(CallbacksConfig::default());
    let id = s
        .create(
            t0(),
            new_task(Reason::Complaint, Some("1001"), "13812345678"),
        )
        .unwrap();
    drain(&mut s, &store).await;
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE_NAME)).unwrap();
    conn.execute("UPDATE callback_tasks SET reason = 'survey'", [])
        .unwrap();
    let err = store.get(id).await.unwrap_err();
    assert!(
        matches!(
            err,
            CallbackStoreError::Corrupt {
                column: "reason",
                ..
            }
        ),
        "{err}"
    );
}
