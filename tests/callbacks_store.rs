//! The SQLite callback store: tasks survive a restart (R20), a task dialing when the
//! engine died is pending again and dialled once, the tables live beside the work
//! orders in their file without disturbing them, and listings filter as the API asks.

use chrono::{DateTime, Duration as Span, TimeZone, Utc};
use hotline::callbacks::sqlite::{DB_FILE_NAME, SqliteCallbackStore};
use hotline::callbacks::{
    AgentPool, CallbackStore, CallbackStoreError, CallbackTask, DialOutcome, ListFilter, NewTask,
    Output, Reason, Scheduler, TaskId, TaskState, Window,
};
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

fn pool() -> AgentPool {
    let mut pool = AgentPool::new();
    pool.add_agent("1001", &["general".into()], true);
    pool.add_agent("1002", &["general".into()], true);
    pool
}

/// Carries out the scheduler's saves, as the runtime's store writer does; returns the
/// dial orders' task ids.
async fn drain(s: &mut Scheduler, store: &SqliteCallbackStore) -> Vec<TaskId> {
    let mut dials = Vec::new();
    while let Some(output) = s.poll_output() {
        match output {
            Output::Save(task) => store.save(&task).await.expect("save"),
            Output::Dial(order) => dials.push(order.task),
            Output::Preempt { .. } | Output::CancelDial { .. } => {}
        }
    }
    dials
}

#[tokio::test]
async fn a_task_round_trips_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteCallbackStore::open(dir.path()).unwrap();
    let task = CallbackTask {
        id: TaskId(42),
        work_order: WorkOrderId::from_parts(t0(), 0xfeed),
        number: "+8613812345678".parse().unwrap(),
        reason: Reason::Evaluation,
        window: Window::new(t0(), t0() + Span::days(1)).unwrap(),
        owner: None,
        queue: "billing".into(),
        attempts: 2,
        max_attempts: 4,
        not_before: t0() + Span::nanoseconds(123_456_789),
        state: TaskState::Dialing {
            agent: "1002".into(),
        },
        last_outcome: Some(DialOutcome::Failed(503)),
        preemptions: 3,
        created_at: t0(),
        updated_at: t0() + Span::seconds(5),
    };
    store.save(&task).await.unwrap();
    assert_eq!(store.get(TaskId(42)).await.unwrap(), Some(task.clone()));
    assert_eq!(store.get(TaskId(7)).await.unwrap(), None);
    let mut done = task.clone();
    done.state = TaskState::Done;
    done.last_outcome = Some(DialOutcome::Connected);
    store.save(&done).await.unwrap();
    assert_eq!(store.get(TaskId(42)).await.unwrap(), Some(done));
    assert!(store.open_tasks().await.unwrap().is_empty());
    assert_eq!(store.highest_id().await.unwrap(), Some(TaskId(42)));
}

#[tokio::test]
async fn a_restart_loses_no_task_and_dials_a_dialing_one_once_again_r20() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteCallbackStore::open(dir.path()).unwrap();
    let mut s = Scheduler::new(CallbacksConfig::default());
    let complaint = s
        .create(
            t0(),
            new_task(Reason::Complaint, Some("1001"), "13812345678"),
        )
        .unwrap();
    let referral = s
        .create(
            t0(),
            new_task(Reason::ReferralCheck, Some("1001"), "13900000000"),
        )
        .unwrap();
    let finished = s
        .create(t0(), new_task(Reason::Manual, None, "13700000000"))
        .unwrap();
    s.cancel(t0(), finished).unwrap();
    s.handle_agents(t0(), &pool());
    assert_eq!(drain(&mut s, &store).await, [complaint]);
    assert!(matches!(
        store.get(complaint).await.unwrap().unwrap().state,
        TaskState::Dialing { .. }
    ));
    // The engine dies: the scheduler and the store's connection are gone.
    drop(s);
    drop(store);

    let store = SqliteCallbackStore::open(dir.path()).unwrap();
    let open = store.open_tasks().await.unwrap();
    assert_eq!(
        open.iter().map(|t| t.id).collect::<Vec<_>>(),
        [complaint, referral]
    );
    let later = t0() + Span::minutes(1);
    let mut s = Scheduler::restore(
        CallbacksConfig::default(),
        later,
        open,
        store.highest_id().await.unwrap(),
    );
    assert!(drain(&mut s, &store).await.is_empty());
    assert_eq!(
        store.get(complaint).await.unwrap().unwrap().state,
        TaskState::Pending,
        "dialing when the engine died: pending again, and so stored"
    );
    s.handle_agents(later, &pool());
    assert_eq!(drain(&mut s, &store).await, [complaint]);
    s.handle_agents(later, &pool());
    assert!(
        drain(&mut s, &store).await.is_empty(),
        "not dialled twice at once"
    );
    let next = s
        .create(later, new_task(Reason::Manual, None, "13600000000"))
        .unwrap();
    assert_eq!(
        next,
        TaskId(finished.0 + 1),
        "ids never repeat a stored one"
    );
    assert_eq!(
        store.get(finished).await.unwrap().unwrap().state,
        TaskState::Cancelled,
        "finished tasks stay in the store"
    );
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
    assert_eq!(user_version, 2, "the work orders' version is theirs alone");
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

#[tokio::test]
async fn listings_filter_by_due_overdue_and_owner() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteCallbackStore::open(dir.path()).unwrap();
    let mut s = Scheduler::new(CallbacksConfig::default());
    // Due at once, overdue after 10 min.
    let complaint = s
        .create(
            t0(),
            new_task(Reason::Complaint, Some("1001"), "13812345678"),
        )
        .unwrap();
    // Due after 20 min, overdue after 30.
    let referral = s
        .create(
            t0(),
            new_task(Reason::ReferralCheck, Some("1002"), "13900000000"),
        )
        .unwrap();
    // Due tomorrow.
    let evaluation = s
        .create(
            t0(),
            new_task(Reason::Evaluation, Some("1001"), "13700000000"),
        )
        .unwrap();
    drain(&mut s, &store).await;

    let ids = |tasks: Vec<CallbackTask>| tasks.into_iter().map(|t| t.id).collect::<Vec<_>>();
    let filter = |due, overdue, owner: Option<&str>| ListFilter {
        due,
        overdue,
        owner: owner.map(str::to_owned),
        limit: 10,
    };
    let now = t0() + Span::minutes(25);
    assert_eq!(
        ids(store.list(&filter(true, false, None), now).await.unwrap()),
        [complaint, referral],
        "due: the most urgent first"
    );
    assert_eq!(
        ids(store.list(&filter(false, true, None), now).await.unwrap()),
        [complaint]
    );
    assert_eq!(
        ids(store
            .list(&filter(false, false, Some("1001")), now)
            .await
            .unwrap()),
        [evaluation, complaint],
        "unfiltered: the newest first"
    );
    assert_eq!(
        ids(store
            .list(&filter(true, false, Some("1002")), now)
            .await
            .unwrap()),
        [referral]
    );
    let one = ListFilter {
        limit: 1,
        ..ListFilter::default()
    };
    assert_eq!(store.list(&one, now).await.unwrap().len(), 1);
}
