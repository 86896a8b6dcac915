//! The conformance suite every [`WorkOrderStore`] backend must pass (R10, R31),
//! written once over `&dyn WorkOrderStore` so the embedded SQLite store and the
//! PostgreSQL store run the very same checks from `tests/`.
//!
//! Each check expects a fresh, empty store and panics (it is test code) on the first
//! difference. Not part of the engine's API; public only so integration tests and
//! other backends' test crates can call it.

pub mod matter;

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::{
    AbandonReason, CallOutcome, Category, Direction, HangupSide, RejectReason, Status, StoreError,
    WorkOrder, WorkOrderId, WorkOrderStore,
};

pub use super::fixtures::{base_time, inbound_order};

/// R10: the stub written at INVITE comes back field for field, full caller number
/// included; so does an order with every optional field set.
pub async fn create_then_get_round_trips(store: &dyn WorkOrderStore) {
    let stub = inbound_order(1, base_time());
    assert_eq!(stub.caller, "13800000001");
    store.create(&stub).await.expect("create stub");
    assert_eq!(store.get(&stub.id).await.expect("get stub"), Some(stub));

    let offered = base_time() + Duration::seconds(5);
    let full = WorkOrder {
        id: WorkOrderId::from_parts(offered, 2),
        call_id: "callback-2@hotline".into(),
        caller: "8890".into(),
        callee: "+8613912345678".into(),
        direction: Direction::Outbound,
        offered_at: offered,
        answered_at: Some(offered + Duration::milliseconds(2_500)),
        ended_at: Some(offered + Duration::seconds(95)),
        hangup_side: Some(HangupSide::Agent),
        outcome: Some(CallOutcome::Answered),
        recording_path: Some("recordings/2026/11/28/x.wav".into()),
        status: Status::FollowUp,
        category: Some(Category::OutOfProvince),
        agent: Some("1024".into()),
        queue: Some("complaints".into()),
        queued_at: Some(offered + Duration::milliseconds(1_250)),
        connected_at: Some(offered + Duration::milliseconds(2_500)),
    };
    store.create(&full).await.expect("create full order");
    assert_eq!(store.get(&full.id).await.expect("get full"), Some(full));
}

/// A second create with the same id is refused and leaves the first untouched.
pub async fn duplicate_create_is_refused(store: &dyn WorkOrderStore) {
    let order = inbound_order(1, base_time());
    store.create(&order).await.expect("first create");
    let mut clash = order.clone();
    clash.caller = "13999999999".into();
    match store.create(&clash).await {
        Err(StoreError::Duplicate(id)) => assert_eq!(id, order.id),
        other => panic!("expected Duplicate, got {other:?}"),
    }
    assert_eq!(store.get(&order.id).await.expect("get"), Some(order));
}

/// R10, R8: answer then hang-up updates are each persisted as they happen.
pub async fn answered_then_ended(store: &dyn WorkOrderStore) {
    let order = inbound_order(7, base_time());
    store.create(&order).await.expect("create");

    let answered = base_time() + Duration::milliseconds(3_210);
    store
        .mark_answered(&order.id, answered, Some("recordings/a.wav"))
        .await
        .expect("mark answered");
    let after_answer = store.get(&order.id).await.expect("get").expect("exists");
    assert_eq!(after_answer.answered_at, Some(answered));
    assert_eq!(
        after_answer.recording_path.as_deref(),
        Some("recordings/a.wav")
    );
    assert_eq!(after_answer.ended_at, None);
    assert_eq!(after_answer.outcome, None);

    let ended = answered + Duration::seconds(180);
    store
        .mark_ended(
            &order.id,
            ended,
            Some(HangupSide::Caller),
            CallOutcome::Answered,
        )
        .await
        .expect("mark ended");
    let done = store.get(&order.id).await.expect("get").expect("exists");
    assert_eq!(done.answered_at, Some(answered));
    assert_eq!(done.ended_at, Some(ended));
    assert_eq!(done.hangup_side, Some(HangupSide::Caller));
    assert_eq!(done.outcome, Some(CallOutcome::Answered));
    assert_eq!(done.recording_path.as_deref(), Some("recordings/a.wav"));
    assert_eq!(done.caller, order.caller);
    assert_eq!(done.status, Status::Accepted);
}

/// Answering without a recording path keeps one already stored.
pub async fn answer_without_path_keeps_existing_path(store: &dyn WorkOrderStore) {
    let mut order = inbound_order(8, base_time());
    order.recording_path = Some("recordings/early.wav".into());
    store.create(&order).await.expect("create");
    store
        .mark_answered(&order.id, base_time() + Duration::seconds(1), None)
        .await
        .expect("mark answered");
    let stored = store.get(&order.id).await.expect("get").expect("exists");
    assert_eq!(
        stored.recording_path.as_deref(),
        Some("recordings/early.wav")
    );
}

/// Abandoned and rejected outcomes keep their reason.
pub async fn abandon_and_reject_reasons_are_kept(store: &dyn WorkOrderStore) {
    let cancelled = inbound_order(1, base_time());
    let refused = inbound_order(2, base_time());
    store.create(&cancelled).await.expect("create");
    store.create(&refused).await.expect("create");
    let end = base_time() + Duration::seconds(4);
    let cancel = CallOutcome::Abandoned {
        reason: AbandonReason::CallerCancelled,
    };
    let reject = CallOutcome::Rejected {
        reason: RejectReason::NotAcceptableHere,
    };
    store
        .mark_ended(&cancelled.id, end, Some(HangupSide::Caller), cancel)
        .await
        .expect("end cancelled");
    store
        .mark_ended(&refused.id, end, Some(HangupSide::Hotline), reject)
        .await
        .expect("end rejected");
    let get = |id: WorkOrderId| async move { store.get(&id).await.expect("get").expect("exists") };
    assert_eq!(get(cancelled.id).await.outcome, Some(cancel));
    assert_eq!(get(refused.id).await.outcome, Some(reject));
}

/// Unknown ids: `get` finds nothing, updates fail with `NotFound`.
pub async fn unknown_ids_are_not_found(store: &dyn WorkOrderStore) {
    let missing = WorkOrderId::from_parts(base_time(), 0xdead);
    assert_eq!(store.get(&missing).await.expect("get"), None);
    match store.mark_answered(&missing, base_time(), None).await {
        Err(StoreError::NotFound(id)) => assert_eq!(id, missing),
        other => panic!("expected NotFound from mark_answered, got {other:?}"),
    }
    let outcome = CallOutcome::Abandoned {
        reason: AbandonReason::Failed,
    };
    match store.mark_ended(&missing, base_time(), None, outcome).await {
        Err(StoreError::NotFound(id)) => assert_eq!(id, missing),
        other => panic!("expected NotFound from mark_ended, got {other:?}"),
    }
    match store.mark_queued(&missing, base_time(), "general").await {
        Err(StoreError::NotFound(id)) => assert_eq!(id, missing),
        other => panic!("expected NotFound from mark_queued, got {other:?}"),
    }
    match store.mark_connected(&missing, base_time(), "1001").await {
        Err(StoreError::NotFound(id)) => assert_eq!(id, missing),
        other => panic!("expected NotFound from mark_connected, got {other:?}"),
    }
}

/// `list_recent` is newest offer first and honours the limit, whatever the insert order.
pub async fn list_recent_is_newest_first_and_limited(store: &dyn WorkOrderStore) {
    assert!(store.list_recent(10).await.expect("list empty").is_empty());
    // Inserted out of time order on purpose.
    for n in [3_u64, 0, 4, 1, 2] {
        let offered = base_time() + Duration::seconds(n as i64 * 60);
        store
            .create(&inbound_order(n, offered))
            .await
            .expect("create");
    }
    let listed = store.list_recent(3).await.expect("list");
    let callers: Vec<&str> = listed.iter().map(|o| o.caller.as_str()).collect();
    assert_eq!(callers, ["13800000004", "13800000003", "13800000002"]);
    assert_eq!(store.list_recent(100).await.expect("list all").len(), 5);
    assert!(store.list_recent(0).await.expect("list none").is_empty());
}

/// The order of a SIP dialog is found again from its Call-ID.
pub async fn find_by_call_id(store: &dyn WorkOrderStore) {
    let first = inbound_order(1, base_time());
    let second = inbound_order(2, base_time() + Duration::seconds(1));
    store.create(&first).await.expect("create");
    store.create(&second).await.expect("create");
    assert_eq!(
        store
            .find_by_call_id("call-2@trunk.example")
            .await
            .expect("find"),
        Some(second)
    );
    assert_eq!(
        store.find_by_call_id("nobody@nowhere").await.expect("find"),
        None
    );
}

/// R7: queue entry, then an agent's answer, are each persisted as they happen, and
/// the wait is derived from them.
pub async fn queued_then_connected(store: &dyn WorkOrderStore) {
    let order = inbound_order(7, base_time());
    store.create(&order).await.expect("create");
    let answered = base_time() + Duration::seconds(2);
    store
        .mark_answered(&order.id, answered, Some("recordings/q.wav"))
        .await
        .expect("trunk answer");

    let queued = answered + Duration::milliseconds(6_500);
    store
        .mark_queued(&order.id, queued, "general")
        .await
        .expect("mark queued");
    let waiting = store.get(&order.id).await.expect("get").expect("exists");
    assert_eq!(waiting.queue.as_deref(), Some("general"));
    assert_eq!(waiting.queued_at, Some(queued));
    assert_eq!(waiting.connected_at, None);
    assert_eq!(waiting.agent, None);
    assert_eq!(waiting.wait(), None, "still waiting");

    let connected = queued + Duration::milliseconds(17_250);
    store
        .mark_connected(&order.id, connected, "1001")
        .await
        .expect("mark connected");
    let talking = store.get(&order.id).await.expect("get").expect("exists");
    assert_eq!(talking.agent.as_deref(), Some("1001"));
    assert_eq!(talking.connected_at, Some(connected));
    assert_eq!(
        talking.answered_at,
        Some(answered),
        "trunk answer unchanged"
    );
    assert_eq!(talking.wait(), Some(Duration::milliseconds(17_250)));
    assert_eq!(talking.recording_path.as_deref(), Some("recordings/q.wav"));
    assert_eq!(talking.caller, order.caller);
}

/// R7 first contact: a second `mark_connected` (a transfer) keeps the first agent
/// and the first answer time; an owner set at creation (a callback) is kept too.
pub async fn first_agent_keeps_the_order(store: &dyn WorkOrderStore) {
    let order = inbound_order(1, base_time());
    store.create(&order).await.expect("create");
    let first = base_time() + Duration::seconds(20);
    store
        .mark_connected(&order.id, first, "1001")
        .await
        .expect("first agent");
    store
        .mark_connected(&order.id, first + Duration::seconds(90), "1002")
        .await
        .expect("transfer");
    let stored = store.get(&order.id).await.expect("get").expect("exists");
    assert_eq!(stored.agent.as_deref(), Some("1001"));
    assert_eq!(stored.connected_at, Some(first));

    let mut callback = inbound_order(2, base_time());
    callback.direction = Direction::Outbound;
    callback.agent = Some("1003".into());
    store.create(&callback).await.expect("create callback");
    store
        .mark_connected(&callback.id, first, "1002")
        .await
        .expect("connected");
    let stored = store.get(&callback.id).await.expect("get").expect("exists");
    assert_eq!(stored.agent.as_deref(), Some("1003"));
    assert_eq!(stored.connected_at, Some(first));
}

/// An overflow to another queue moves the call's queue but keeps its first queue
/// time: the wait and the connection rate run from the first entry (R5).
pub async fn overflow_keeps_the_first_queue_time(store: &dyn WorkOrderStore) {
    let order = inbound_order(1, base_time());
    store.create(&order).await.expect("create");
    let queued = base_time() + Duration::seconds(8);
    store
        .mark_queued(&order.id, queued, "general")
        .await
        .expect("queued");
    store
        .mark_queued(&order.id, queued + Duration::seconds(120), "overflow")
        .await
        .expect("overflowed");
    store
        .mark_connected(&order.id, queued + Duration::seconds(130), "1002")
        .await
        .expect("connected");
    let stored = store.get(&order.id).await.expect("get").expect("exists");
    assert_eq!(stored.queue.as_deref(), Some("overflow"));
    assert_eq!(stored.queued_at, Some(queued));
    assert_eq!(stored.wait(), Some(Duration::seconds(130)));
}

/// A caller who hangs up in the queue leaves an abandoned order with its wait.
pub async fn abandoned_in_queue_keeps_the_wait(store: &dyn WorkOrderStore) {
    let order = inbound_order(1, base_time());
    store.create(&order).await.expect("create");
    let queued = base_time() + Duration::seconds(8);
    store
        .mark_answered(&order.id, base_time() + Duration::seconds(2), None)
        .await
        .expect("trunk answer");
    store
        .mark_queued(&order.id, queued, "general")
        .await
        .expect("queued");
    let gone = CallOutcome::Abandoned {
        reason: AbandonReason::CallerHungUpInQueue,
    };
    store
        .mark_ended(
            &order.id,
            queued + Duration::seconds(47),
            Some(HangupSide::Caller),
            gone,
        )
        .await
        .expect("ended");
    let stored = store.get(&order.id).await.expect("get").expect("exists");
    assert_eq!(stored.outcome, Some(gone));
    assert_eq!(stored.agent, None);
    assert_eq!(stored.connected_at, None);
    assert_eq!(stored.wait(), Some(Duration::seconds(47)));
}

/// R5: the connection rate's per-minute counts are inbound calls by the minute they
/// were first queued, and those of them an agent answered; the IVR's trunk answer is
/// not an answer here, and calls never queued, outbound calls and calls queued
/// before `since` are left out.
pub async fn call_counts_since_buckets_by_queue_minute(store: &dyn WorkOrderStore) {
    let minute = Utc
        .with_ymd_and_hms(2026, 11, 28, 15, 30, 0)
        .single()
        .expect("valid time");
    // (n, queued at, connected to an agent)
    let queued_calls = [
        (1_u64, minute - Duration::seconds(1), true), // before `since`
        (2, minute, true),
        (3, minute + Duration::seconds(59), false),
        (4, minute + Duration::seconds(20), true),
        (5, minute + Duration::seconds(180), false),
        (6, minute + Duration::seconds(181), true),
    ];
    for (n, queued, connect) in queued_calls {
        // Offered (INVITE) in an earlier minute: the queue minute is what counts.
        let order = inbound_order(n, queued - Duration::seconds(65));
        store.create(&order).await.expect("create");
        store
            .mark_answered(&order.id, queued - Duration::seconds(10), None)
            .await
            .expect("trunk answer");
        store
            .mark_queued(&order.id, queued, "general")
            .await
            .expect("queue");
        if connect {
            // Connected in a later minute: still counted in the queue's minute.
            store
                .mark_connected(&order.id, queued + Duration::seconds(70), "1001")
                .await
                .expect("connect");
        }
    }
    // Answered by the IVR and ended there, never queued: not offered to an agent.
    let ivr_only = inbound_order(7, minute + Duration::seconds(5));
    store.create(&ivr_only).await.expect("create");
    store
        .mark_answered(&ivr_only.id, minute + Duration::seconds(7), None)
        .await
        .expect("trunk answer");
    let mut outbound = inbound_order(9, minute + Duration::seconds(5));
    outbound.direction = Direction::Outbound;
    store.create(&outbound).await.expect("create outbound");
    store
        .mark_queued(&outbound.id, minute + Duration::seconds(6), "callbacks")
        .await
        .expect("queue outbound");

    let buckets = store.call_counts_since(minute).await.expect("counts");
    let got: Vec<(DateTime<Utc>, u64, u64)> = buckets
        .iter()
        .map(|b| (b.minute, b.offered, b.answered))
        .collect();
    assert_eq!(
        got,
        [(minute, 3, 2), (minute + Duration::minutes(3), 2, 1),]
    );
    assert!(
        store
            .call_counts_since(minute + Duration::hours(1))
            .await
            .expect("counts")
            .is_empty()
    );
}

/// R4, R10: after a crash, every order left open is closed at start-up: connected to
/// an agent, or answered by the IVR and never queued, as answered; queued but never
/// connected, or never answered, with the given outcome; closed ones are not touched.
pub async fn end_unfinished_closes_open_orders(store: &dyn WorkOrderStore) {
    let ivr_answered = inbound_order(1, base_time());
    let ringing = inbound_order(2, base_time());
    let finished = inbound_order(3, base_time());
    let waiting = inbound_order(4, base_time());
    let connected = inbound_order(5, base_time());
    for order in [&ivr_answered, &ringing, &finished, &waiting, &connected] {
        store.create(order).await.expect("create");
    }
    let answer_time = base_time() + Duration::seconds(2);
    for order in [&ivr_answered, &waiting, &connected] {
        store
            .mark_answered(&order.id, answer_time, None)
            .await
            .expect("answer");
    }
    let queue_time = base_time() + Duration::seconds(9);
    for order in [&waiting, &connected] {
        store
            .mark_queued(&order.id, queue_time, "general")
            .await
            .expect("queue");
    }
    store
        .mark_connected(&connected.id, queue_time + Duration::seconds(5), "1001")
        .await
        .expect("connect");
    let finished_end = base_time() + Duration::seconds(3);
    let finished_outcome = CallOutcome::Abandoned {
        reason: AbandonReason::CallerCancelled,
    };
    store
        .mark_ended(
            &finished.id,
            finished_end,
            Some(HangupSide::Caller),
            finished_outcome,
        )
        .await
        .expect("end");

    let restart = base_time() + Duration::minutes(10);
    let restarted = CallOutcome::Abandoned {
        reason: AbandonReason::EngineRestarted,
    };
    assert_eq!(
        store
            .end_unfinished(restart, restarted)
            .await
            .expect("end unfinished"),
        4
    );
    let get = |id: WorkOrderId| async move { store.get(&id).await.expect("get").expect("exists") };
    for (order, expected) in [
        (ivr_answered, CallOutcome::Answered),
        (ringing, restarted),
        (waiting, restarted),
        (connected, CallOutcome::Answered),
    ] {
        let stored = get(order.id.clone()).await;
        assert_eq!(stored.ended_at, Some(restart), "{}", order.id);
        assert_eq!(stored.outcome, Some(expected), "{}", order.id);
        assert_eq!(stored.hangup_side, None, "{}", order.id);
    }
    let finished = get(finished.id).await;
    assert_eq!(finished.ended_at, Some(finished_end));
    assert_eq!(finished.outcome, Some(finished_outcome));

    assert_eq!(
        store
            .end_unfinished(restart, restarted)
            .await
            .expect("second run"),
        0
    );
}

/// What [`persistence_write`] stored, for [`persistence_check`] after the reopen.
pub struct PersistedOrders(Vec<WorkOrder>);

/// R4, R10, first half: writes an open, an answered and an ended (queued and
/// connected) order. Close the
/// store afterwards (as a restart would) and call [`persistence_check`] on a reopened
/// one.
pub async fn persistence_write(store: &dyn WorkOrderStore) -> PersistedOrders {
    let open = inbound_order(1, base_time());
    let mut answered = inbound_order(2, base_time() + Duration::seconds(1));
    let mut ended = inbound_order(3, base_time() + Duration::seconds(2));
    for order in [&open, &answered, &ended] {
        store.create(order).await.expect("create");
    }
    let at = base_time() + Duration::seconds(5);
    for order in [&mut answered, &mut ended] {
        store
            .mark_answered(&order.id, at, Some("recordings/r.wav"))
            .await
            .expect("answer");
        order.answered_at = Some(at);
        order.recording_path = Some("recordings/r.wav".into());
    }
    let queued = at + Duration::seconds(4);
    store
        .mark_queued(&ended.id, queued, "general")
        .await
        .expect("queue");
    let connected = queued + Duration::seconds(11);
    store
        .mark_connected(&ended.id, connected, "1002")
        .await
        .expect("connect");
    ended.queue = Some("general".into());
    ended.queued_at = Some(queued);
    ended.connected_at = Some(connected);
    ended.agent = Some("1002".into());
    let end = at + Duration::seconds(60);
    store
        .mark_ended(
            &ended.id,
            end,
            Some(HangupSide::Agent),
            CallOutcome::Answered,
        )
        .await
        .expect("end");
    ended.ended_at = Some(end);
    ended.hangup_side = Some(HangupSide::Agent);
    ended.outcome = Some(CallOutcome::Answered);
    PersistedOrders(vec![ended, answered, open])
}

/// R4, R10, second half: everything written before the restart is there, unchanged.
pub async fn persistence_check(store: &dyn WorkOrderStore, before: &PersistedOrders) {
    assert_eq!(store.list_recent(10).await.expect("list"), before.0);
}

/// Many tasks creating, answering and ending orders at once lose nothing and mix
/// nothing up.
pub async fn concurrent_creates(store: Arc<dyn WorkOrderStore>) {
    const TASKS: u64 = 64;
    const ORDERS_PER_TASK: u64 = 8;
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            for i in 0..ORDERS_PER_TASK {
                let n = task * ORDERS_PER_TASK + i;
                let offered = base_time() + Duration::milliseconds(n as i64);
                let order = inbound_order(n, offered);
                store.create(&order).await.expect("create");
                store
                    .mark_answered(&order.id, offered + Duration::seconds(1), None)
                    .await
                    .expect("answer");
                store
                    .mark_queued(
                        &order.id,
                        offered + Duration::milliseconds(1_200),
                        "general",
                    )
                    .await
                    .expect("queue");
                store
                    .mark_connected(
                        &order.id,
                        offered + Duration::milliseconds(1_500),
                        &n.to_string(),
                    )
                    .await
                    .expect("connect");
                store
                    .mark_ended(
                        &order.id,
                        offered + Duration::seconds(2),
                        Some(HangupSide::Caller),
                        CallOutcome::Answered,
                    )
                    .await
                    .expect("end");
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("task did not panic");
    }
    let all = store.list_recent(10_000).await.expect("list");
    assert_eq!(all.len() as u64, TASKS * ORDERS_PER_TASK);
    let ids: HashSet<&WorkOrderId> = all.iter().map(|o| &o.id).collect();
    assert_eq!(ids.len(), all.len());
    for order in &all {
        assert_eq!(
            order.offered_at + Duration::seconds(2),
            order.ended_at.expect("ended")
        );
        assert_eq!(order.outcome, Some(CallOutcome::Answered));
        let n: u64 = order.caller[3..].parse().expect("numeric caller");
        assert_eq!(order.id, WorkOrderId::from_parts(order.offered_at, n));
        assert_eq!(
            order.agent,
            Some(n.to_string()),
            "each order keeps its own agent"
        );
        assert_eq!(order.wait(), Some(Duration::milliseconds(300)));
    }
}
