//! The conformance suite every [`CallbackStore`] backend must pass (R20), written once
//! over `&dyn CallbackStore` so the SQLite and PostgreSQL stores run the very same
//! checks from `tests/`.
//!
//! Each check expects a fresh, empty store and panics (it is test code) on the first
//! difference. Not part of the engine's API; public only for the test crates.

use chrono::{DateTime, Duration as Span, TimeZone, Utc};

use super::{
    AgentPool, CallbackStore, CallbackTask, DialOutcome, ListFilter, NewTask, Output, Reason,
    Scheduler, TaskId, TaskState, Window,
};
use crate::config::callbacks::CallbacksConfig;
use crate::workorder::WorkOrderId;

/// A fixed time with a sub-second part, so a backend that drops precision is caught.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0)
        .single()
        .expect("fixed test time is valid")
        + Span::microseconds(123_456)
}

fn new_task(reason: Reason, owner: Option<&str>, number: &str) -> NewTask {
    NewTask {
        work_order: WorkOrderId::from_parts(t0(), 0x5eed),
        number: number.parse().expect("test number"),
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
pub async fn drain(s: &mut Scheduler, store: &dyn CallbackStore) -> Vec<TaskId> {
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

/// A task comes back field for field (full number, sub-second times, a failure's SIP
/// status, the dialing agent); a second save replaces it.
pub async fn a_task_round_trips_every_field(store: &dyn CallbackStore) {
    let task = CallbackTask {
        id: TaskId(42),
        work_order: WorkOrderId::from_parts(t0(), 0xfeed),
        number: "+8613812345678".parse().expect("number"),
        reason: Reason::Evaluation,
        window: Window::new(t0(), t0() + Span::days(1)).expect("window"),
        owner: None,
        queue: "billing".into(),
        attempts: 2,
        max_attempts: 4,
        not_before: t0() + Span::microseconds(5),
        state: TaskState::Dialing {
            agent: "1002".into(),
        },
        last_outcome: Some(DialOutcome::Failed(503)),
        preemptions: 3,
        created_at: t0(),
        updated_at: t0() + Span::seconds(5),
    };
    store.save(&task).await.expect("save");
    assert_eq!(
        store.get(TaskId(42)).await.expect("get"),
        Some(task.clone())
    );
    assert_eq!(store.get(TaskId(7)).await.expect("get"), None);
    assert_eq!(
        store.open_tasks().await.expect("open"),
        std::slice::from_ref(&task)
    );
    let mut done = task.clone();
    done.state = TaskState::Done;
    done.owner = Some("1001".into());
    done.last_outcome = Some(DialOutcome::Connected);
    store.save(&done).await.expect("save again");
    assert_eq!(store.get(TaskId(42)).await.expect("get"), Some(done));
    assert!(store.open_tasks().await.expect("open").is_empty());
    assert_eq!(store.highest_id().await.expect("highest"), Some(TaskId(42)));
}

/// R20: tasks survive a restart. `before` and `after` are two handles on the same
/// storage (the second opened after the first engine "died"). A task dialing when the
/// engine died is pending again, so stored, and dialled exactly once more; finished
/// tasks stay in the store and ids never repeat.
pub async fn a_restart_loses_no_task_and_dials_a_dialing_one_once(
    before: &dyn CallbackStore,
    after: &dyn CallbackStore,
) {
    let mut s = Scheduler::new(CallbacksConfig::default());
    let complaint = s
        .create(
            t0(),
            new_task(Reason::Complaint, Some("1001"), "13812345678"),
        )
        .expect("create");
    let referral = s
        .create(
            t0(),
            new_task(Reason::ReferralCheck, Some("1001"), "13900000000"),
        )
        .expect("create");
    let finished = s
        .create(t0(), new_task(Reason::Manual, None, "13700000000"))
        .expect("create");
    s.cancel(t0(), finished).expect("cancel");
    s.handle_agents(t0(), &pool());
    assert_eq!(drain(&mut s, before).await, [complaint]);
    assert!(matches!(
        before
            .get(complaint)
            .await
            .expect("get")
            .expect("stored")
            .state,
        TaskState::Dialing { .. }
    ));
    drop(s);

    let open = after.open_tasks().await.expect("open tasks");
    assert_eq!(
        open.iter().map(|t| t.id).collect::<Vec<_>>(),
        [complaint, referral]
    );
    let later = t0() + Span::minutes(1);
    let highest = after.highest_id().await.expect("highest id");
    let mut s = Scheduler::restore(CallbacksConfig::default(), later, open, highest);
    assert!(drain(&mut s, after).await.is_empty());
    assert_eq!(
        after
            .get(complaint)
            .await
            .expect("get")
            .expect("stored")
            .state,
        TaskState::Pending,
        "dialing when the engine died: pending again, and so stored"
    );
    s.handle_agents(later, &pool());
    assert_eq!(drain(&mut s, after).await, [complaint]);
    s.handle_agents(later, &pool());
    assert!(
        drain(&mut s, after).await.is_empty(),
        "not dialled twice at once"
    );
    let next = s
        .create(later, new_task(Reason::Manual, None, "13600000000"))
        .expect("create");
    assert_eq!(
        next,
        TaskId(finished.0 + 1),
        "ids never repeat a stored one"
    );
    assert_eq!(
        after
            .get(finished)
            .await
            .expect("get")
            .expect("stored")
            .state,
        TaskState::Cancelled,
        "finished tasks stay in the store"
    );
}

/// The API's listings: due and overdue most urgent first, otherwise newest first;
/// filters combine; the limit holds.
pub async fn listings_filter_by_due_overdue_and_owner(store: &dyn CallbackStore) {
    let mut s = Scheduler::new(CallbacksConfig::default());
    // Due at once, overdue after 10 min.
    let complaint = s
        .create(
            t0(),
            new_task(Reason::Complaint, Some("1001"), "13812345678"),
        )
        .expect("create");
    // Due after 20 min, overdue after 30.
    let referral = s
        .create(
            t0(),
            new_task(Reason::ReferralCheck, Some("1002"), "13900000000"),
        )
        .expect("create");
    // Due tomorrow.
    let evaluation = s
        .create(
            t0(),
            new_task(Reason::Evaluation, Some("1001"), "13700000000"),
        )
        .expect("create");
    drain(&mut s, store).await;

    let ids = |tasks: Vec<CallbackTask>| tasks.into_iter().map(|t| t.id).collect::<Vec<_>>();
    let filter = |due, overdue, owner: Option<&str>| ListFilter {
        due,
        overdue,
        owner: owner.map(str::to_owned),
        limit: 10,
    };
    let now = t0() + Span::minutes(25);
    let list = |f: ListFilter| async move { ids(store.list(&f, now).await.expect("list")) };
    assert_eq!(
        list(filter(true, false, None)).await,
        [complaint, referral],
        "due: the most urgent first"
    );
    assert_eq!(list(filter(false, true, None)).await, [complaint]);
    assert_eq!(
        list(filter(false, false, Some("1001"))).await,
        [evaluation, complaint],
        "unfiltered: the newest first"
    );
    assert_eq!(list(filter(true, false, Some("1002"))).await, [referral]);
    assert!(list(filter(true, true, Some("1002"))).await.is_empty());
    let one = ListFilter {
        limit: 1,
        ..ListFilter::default()
    };
    assert_eq!(list(one).await.len(), 1);
}
