//! Conformance checks for the matter (issue 8): the lifecycle through the store, the
//! audit trail, further calls, the read-audit log, the knowledge base and service
//! directory with Chinese keyword search, bad input, retention and health.

use chrono::Duration;

use super::{base_time, inbound_order};
use crate::workorder::{
    AuditedRead, CallKind, CallOutcome, CallRecord, CallerRating, Category, DetailsUpdate,
    Direction, EnterpriseEvaluation, EventKind, FollowUpKind, FollowUpTask, ForbiddenPhraseHit,
    HangupSide, KnowledgeEntry, ListQuery, Provider, QaSelection, RatingTarget, ReadAuditEntry,
    Satisfaction, Status, StoreError, WorkOrder, WorkOrderId, WorkOrderStore,
};

const AGENT: &str = "1001";

async fn stored(store: &dyn WorkOrderStore, n: u64, category: Option<Category>) -> WorkOrder {
    let order = inbound_order(n, base_time() + Duration::seconds(n as i64));
    store.create(&order).await.expect("create");
    if let Some(category) = category {
        store
            .update_details(
                &order.id,
                &DetailsUpdate {
                    category: Some(category),
                    ..DetailsUpdate::default()
                },
                AGENT,
                base_time(),
            )
            .await
            .expect("categorise");
    }
    order
}

fn answer(text: &str) -> DetailsUpdate {
    DetailsUpdate {
        answer: Some(text.into()),
        ..DetailsUpdate::default()
    }
}

fn evaluation() -> EnterpriseEvaluation {
    EnterpriseEvaluation {
        attitude: Satisfaction::Satisfied,
        efficiency: Satisfaction::BasicallySatisfied,
        quality: Satisfaction::Satisfied,
    }
}

async fn status_of(store: &dyn WorkOrderStore, id: &WorkOrderId) -> Status {
    store.get(id).await.expect("get").expect("exists").status
}

async fn event_kinds(store: &dyn WorkOrderStore, id: &WorkOrderId) -> Vec<EventKind> {
    store
        .events(id)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

/// A retried `create` (its first answer lost, though it committed) succeeds; the
/// order and its history are as after one create (call-path idempotence).
pub async fn a_retried_create_is_idempotent(store: &dyn WorkOrderStore) {
    let order = inbound_order(1, base_time());
    store.create(&order).await.expect("create");
    store.create(&order).await.expect("retried create");
    assert_eq!(
        store.get(&order.id).await.expect("get"),
        Some(order.clone())
    );
    assert_eq!(
        event_kinds(store, &order.id).await,
        vec![EventKind::Created]
    );
    // The other call-path writes, repeated, leave the order and history as once.
    let at = base_time() + Duration::seconds(3);
    for _ in 0..2 {
        store
            .mark_connected(&order.id, at, AGENT)
            .await
            .expect("connect");
        store
            .mark_ended(
                &order.id,
                at,
                Some(HangupSide::Caller),
                CallOutcome::Answered,
            )
            .await
            .expect("end");
    }
    assert_eq!(
        event_kinds(store, &order.id).await,
        vec![
            EventKind::Created,
            EventKind::OwnerAssigned,
            EventKind::CallEnded
        ]
    );
}

/// R21: every transition the lifecycle refuses is refused by the store with its
/// reason, and changes neither the status nor the audit trail.
pub async fn invalid_transitions_are_refused_and_change_nothing(store: &dyn WorkOrderStore) {
    let order = stored(store, 1, Some(Category::Complaint)).await;
    let id = &order.id;
    let refused = |to: Status| async move {
        let before = store.events(id).await.expect("events").len();
        let status = status_of(store, id).await;
        match store.change_status(id, to, AGENT, base_time()).await {
            Err(StoreError::InvalidTransition { id: got, refused }) => {
                assert_eq!(&got, id);
                assert!(!refused.to_string().is_empty());
            }
            other => panic!("{status} -> {to}: expected InvalidTransition, got {other:?}"),
        }
        assert_eq!(status_of(store, id).await, status, "status kept");
        assert_eq!(
            store.events(id).await.expect("events").len(),
            before,
            "no event"
        );
    };
    // accepted: to itself; to transferred with nowhere to go; closing a complaint on
    // the spot (no answer yet, then with one).
    refused(Status::Accepted).await;
    refused(Status::Transferred).await;
    refused(Status::Closed).await;
    store
        .update_details(id, &answer("已受理,将转交承办单位"), AGENT, base_time())
        .await
        .expect("answer");
    refused(Status::Closed).await;

    store
        .change_status(id, Status::FollowUp, AGENT, base_time())
        .await
        .expect("accepted -> follow_up");
    refused(Status::FollowUp).await;
    refused(Status::Accepted).await;
    store
        .update_details(
            id,
            &DetailsUpdate {
                handling_unit: Some("市市场监督管理局".into()),
                ..DetailsUpdate::default()
            },
            AGENT,
            base_time(),
        )
        .await
        .expect("unit");
    store
        .change_status(id, Status::Transferred, AGENT, base_time())
        .await
        .expect("follow_up -> transferred");
    refused(Status::Accepted).await;
    refused(Status::Transferred).await;
    store
        .change_status(id, Status::Closed, "supervisor", base_time())
        .await
        .expect("transferred -> closed");
    for to in Status::ALL {
        refused(*to).await;
    }
    // A closed order takes no more field changes either.
    match store
        .update_details(id, &answer("改"), AGENT, base_time())
        .await
    {
        Err(StoreError::Invalid(_)) => {}
        other => panic!("expected Invalid for a closed order, got {other:?}"),
    }
    let changes: Vec<_> = store
        .events(id)
        .await
        .expect("events")
        .into_iter()
        .filter(|e| e.kind == EventKind::StatusChanged)
        .map(|e| (e.actor, e.detail))
        .collect();
    assert_eq!(changes.len(), 3);
    assert_eq!(changes[2].0, "supervisor");
    assert!(
        changes[2].1.contains("\"to\":\"closed\""),
        "{}",
        changes[2].1
    );
}

/// R21: a consultation answered at once closes on the spot; a service request (with a
/// referred enterprise) closes only after the enterprise evaluation (R25).
pub async fn closing_rules(store: &dyn WorkOrderStore) {
    let consultation = stored(store, 1, Some(Category::Consultation)).await;
    store
        .update_details(
            &consultation.id,
            &answer("社保卡补办请携带身份证到社保经办网点。"),
            AGENT,
            base_time(),
        )
        .await
        .expect("answer");
    let closed = store
        .change_status(&consultation.id, Status::Closed, AGENT, base_time())
        .await
        .expect("consultation closes on the spot");
    assert_eq!(closed.order.status, Status::Closed);

    let request = stored(store, 2, Some(Category::Help)).await;
    let id = &request.id;
    store
        .refer_enterprise(id, "平安开锁服务部", AGENT, base_time())
        .await
        .expect("refer");
    store
        .change_status(id, Status::Transferred, AGENT, base_time())
        .await
        .expect("transferred to the enterprise");
    store
        .update_details(id, &answer("已联系开锁师傅上门"), AGENT, base_time())
        .await
        .expect("answer");
    match store
        .change_status(id, Status::Closed, AGENT, base_time())
        .await
    {
        Err(StoreError::InvalidTransition { refused, .. }) => {
            assert!(refused.to_string().contains("evaluation"), "{refused}");
        }
        other => panic!("expected the enterprise evaluation to be required, got {other:?}"),
    }
    let evaluated = store
        .evaluate_enterprise(id, &evaluation(), AGENT, base_time())
        .await
        .expect("evaluate");
    assert_eq!(
        evaluated.matter.referral.expect("referral").evaluation,
        Some(evaluation())
    );
    store
        .change_status(id, Status::Closed, AGENT, base_time())
        .await
        .expect("closes after the evaluation");
}

/// R11, R13, R14, R23–R26, R28: the matter's fields round-trip, and each change is
/// an event with who and when.
pub async fn matter_fields_round_trip_with_their_events(store: &dyn WorkOrderStore) {
    let order = stored(store, 1, None).await;
    let id = &order.id;
    let at = base_time() + Duration::minutes(2);
    let update = DetailsUpdate {
        matter: Some("小区楼下餐馆油烟扰民,多次反映未解决".into()),
        answer: Some("已记录,转交区生态环境局处理".into()),
        handling_unit: Some("区生态环境局".into()),
        category: Some(Category::Complaint),
        urgent: Some(true),
    };
    let file = store
        .update_details(id, &update, AGENT, at)
        .await
        .expect("update");
    assert_eq!(file.matter.matter, update.matter);
    assert_eq!(file.matter.answer, update.answer);
    assert_eq!(file.matter.handling_unit, update.handling_unit);
    assert!(file.matter.urgent);
    assert_eq!(file.order.category, Some(Category::Complaint));
    // The same update again changes nothing, so adds no event.
    store
        .update_details(id, &update, AGENT, at)
        .await
        .expect("same update");

    store
        .rate(
            id,
            &CallerRating {
                target: RatingTarget::Service,
                score: Satisfaction::Satisfied,
            },
            "ivr",
            at,
        )
        .await
        .expect("rate service");
    store
        .rate(
            id,
            &CallerRating {
                target: RatingTarget::HandlingUnit,
                score: Satisfaction::Dissatisfied,
            },
            "ivr",
            at,
        )
        .await
        .expect("rate unit");
    let task = FollowUpTask {
        kind: FollowUpKind::ConfirmContact,
        due_from: at + Duration::minutes(20),
        due_until: at + Duration::minutes(30),
        note: "确认承办单位是否已联系".into(),
    };
    assert_eq!(
        store
            .add_follow_up(id, &task, AGENT, at)
            .await
            .expect("task"),
        1
    );
    assert_eq!(
        store
            .add_follow_up(id, &task, AGENT, at)
            .await
            .expect("task"),
        2
    );
    store
        .complete_follow_up(id, 1, AGENT, at + Duration::minutes(25))
        .await
        .expect("done");
    store
        .add_note(id, "来电人情绪激动,注意回访语气", "supervisor", at)
        .await
        .expect("note");
    store
        .record_forbidden_phrases(
            id,
            &[ForbiddenPhraseHit {
                phrase: "不知道".into(),
                field: "answer".into(),
            }],
            AGENT,
            at,
        )
        .await
        .expect("hits");
    let first_selection = QaSelection {
        selected_at: at + Duration::hours(1),
        reason: "random sample".into(),
    };
    store
        .select_for_qa(id, &first_selection, "qa-sampler")
        .await
        .expect("qa");

    let file = store.get_file(id).await.expect("file").expect("exists");
    assert_eq!(file.matter.service_rating, Some(Satisfaction::Satisfied));
    assert_eq!(file.matter.unit_rating, Some(Satisfaction::Dissatisfied));
    assert_eq!(file.follow_ups.len(), 2);
    assert_eq!(file.follow_ups[0].task, task);
    assert_eq!(file.follow_ups[0].done_at, Some(at + Duration::minutes(25)));
    assert_eq!(file.follow_ups[1].done_at, None);
    assert!(file.is_overdue(at + Duration::minutes(31)));
    assert!(!file.is_overdue(at + Duration::minutes(29)));
    assert_eq!(file.forbidden_hits.len(), 1);
    // The forbidden phrase flagged it for QA first (R28); that selection is kept.
    let qa = file.matter.qa.expect("selected");
    assert_eq!(qa.reason, "forbidden phrase");
    assert_eq!(qa.selected_at, at);

    let events = store.events(id).await.expect("events");
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![
            EventKind::Created,
            EventKind::FieldUpdated,
            EventKind::FieldUpdated,
            EventKind::FieldUpdated,
            EventKind::FieldUpdated,
            EventKind::FieldUpdated,
            EventKind::Rated,
            EventKind::Rated,
            EventKind::FollowUpAdded,
            EventKind::FollowUpAdded,
            EventKind::FollowUpDone,
            EventKind::Note,
            EventKind::ForbiddenPhrases,
            EventKind::QaSelected,
        ]
    );
    let note = &events[11];
    assert_eq!((note.actor.as_str(), note.at), ("supervisor", at));
    assert!(note.detail.contains("来电人情绪激动"), "{}", note.detail);
    // No event ever holds the caller's full number (R12).
    assert!(events.iter().all(|e| !e.detail.contains(&order.caller)));
}

/// A matter spans several calls (R16–R19, R22): callbacks and enterprise calls are
/// attached with their recordings, updated as they happen, listed after the first.
pub async fn further_calls_attach_to_an_order(store: &dyn WorkOrderStore) {
    let order = stored(store, 1, None).await;
    let id = &order.id;
    let offered = base_time() + Duration::minutes(25);
    let mut callback = CallRecord {
        call_id: "callback-1@hotline".into(),
        kind: CallKind::Callback,
        direction: Direction::Outbound,
        caller: "8890".into(),
        callee: order.caller.clone(),
        offered_at: offered,
        answered_at: None,
        ended_at: None,
        hangup_side: None,
        outcome: None,
        recording_path: None,
        agent: Some(AGENT.into()),
    };
    store.attach_call(id, &callback).await.expect("attach");
    callback.answered_at = Some(offered + Duration::seconds(6));
    callback.ended_at = Some(offered + Duration::seconds(90));
    callback.outcome = Some(CallOutcome::Answered);
    callback.hangup_side = Some(HangupSide::Caller);
    callback.recording_path = Some("recordings/cb.wav".into());
    store.attach_call(id, &callback).await.expect("update");
    let enterprise = CallRecord {
        call_id: "enterprise-1@hotline".into(),
        kind: CallKind::Enterprise,
        callee: "0000-8890001".into(),
        offered_at: base_time() + Duration::minutes(2),
        recording_path: Some("recordings/ent.wav".into()),
        ..callback.clone()
    };
    store
        .attach_call(id, &enterprise)
        .await
        .expect("enterprise");

    let file = store.get_file(id).await.expect("file").expect("exists");
    assert_eq!(file.calls.len(), 3);
    assert_eq!(file.calls[0], CallRecord::first_of(&order));
    assert_eq!(file.calls[1], enterprise);
    assert_eq!(file.calls[2], callback);
    let attached = event_kinds(store, id)
        .await
        .into_iter()
        .filter(|k| *k == EventKind::CallAttached)
        .count();
    assert_eq!(attached, 2, "an update is not a second attachment");

    let missing = WorkOrderId::from_parts(base_time(), 0xdead);
    assert!(matches!(
        store.attach_call(&missing, &callback).await,
        Err(StoreError::NotFound(_))
    ));
    let mut first_again = callback.clone();
    first_again.call_id = order.call_id.clone();
    assert!(matches!(
        store.attach_call(id, &first_again).await,
        Err(StoreError::Invalid(_))
    ));
}

/// Listing with filters and cursor pagination visits every match once, newest first.
pub async fn list_orders_filters_and_pages(store: &dyn WorkOrderStore) {
    let mut ids = Vec::new();
    for n in 1..=7 {
        let category = if n % 2 == 0 {
            Category::Complaint
        } else {
            Category::Consultation
        };
        let order = stored(store, n, Some(category)).await;
        store
            .mark_connected(&order.id, base_time() + Duration::minutes(1), AGENT)
            .await
            .expect("connect");
        ids.push(order.id);
    }
    let mut seen = Vec::new();
    let mut query = ListQuery {
        category: Some(Category::Consultation),
        limit: 2,
        ..ListQuery::default()
    };
    loop {
        let page = store.list_orders(&query).await.expect("page");
        assert!(page.orders.len() <= 2);
        seen.extend(page.orders.into_iter().map(|o| o.id));
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    let mut expected: Vec<WorkOrderId> = ids.iter().step_by(2).cloned().collect();
    expected.reverse();
    assert_eq!(seen, expected);

    let complaints = ListQuery {
        category: Some(Category::Complaint),
        agent: Some(AGENT.into()),
        status: Some(Status::Accepted),
        ..ListQuery::default()
    };
    assert_eq!(
        store
            .list_orders(&complaints)
            .await
            .expect("list")
            .orders
            .len(),
        3
    );
    let window = ListQuery {
        offered_from: Some(base_time() + Duration::seconds(2)),
        offered_until: Some(base_time() + Duration::seconds(4)),
        ..ListQuery::default()
    };
    let in_window = store.list_orders(&window).await.expect("list").orders;
    assert_eq!(in_window.len(), 2);
    // Overdue: an open follow-up past its window.
    let task = FollowUpTask {
        kind: FollowUpKind::AskEvaluation,
        due_from: base_time(),
        due_until: base_time() + Duration::days(1),
        note: String::new(),
    };
    store
        .add_follow_up(&ids[3], &task, AGENT, base_time())
        .await
        .expect("task");
    let overdue = ListQuery {
        overdue_at: Some(base_time() + Duration::days(2)),
        ..ListQuery::default()
    };
    let late = store.list_orders(&overdue).await.expect("list").orders;
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].id, ids[3]);
    assert!(matches!(
        store
            .list_orders(&ListQuery {
                after: Some("not-a-cursor".into()),
                ..ListQuery::default()
            })
            .await,
        Err(StoreError::Invalid(_))
    ));
}

/// R12: reads of full numbers and recordings are appended to the read-audit log and
/// read back in order.
pub async fn read_audit_log_appends(store: &dyn WorkOrderStore) {
    let order = stored(store, 1, None).await;
    for (i, read) in [AuditedRead::FullNumber, AuditedRead::Recording]
        .into_iter()
        .enumerate()
    {
        store
            .append_read_audit(&ReadAuditEntry {
                at: base_time() + Duration::seconds(i as i64),
                actor: "supervisor-wang".into(),
                read,
                work_order: Some(order.id.clone()),
                target: if read == AuditedRead::Recording {
                    "recordings/a.wav".into()
                } else {
                    "caller".into()
                },
            })
            .await
            .expect("append");
    }
    let log = store
        .read_audit_log(base_time(), 10)
        .await
        .expect("read log");
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].read, AuditedRead::FullNumber);
    assert_eq!(log[1].target, "recordings/a.wav");
    assert_eq!(
        store
            .read_audit_log(base_time() + Duration::seconds(1), 10)
            .await
            .expect("since")
            .len(),
        1
    );
}

/// Issue 14: a supervisor's actions on agents go into the same append-only audit log
/// as reads, with who, what and when, and come back in order.
pub async fn supervisor_actions_are_in_the_audit_log(store: &dyn WorkOrderStore) {
    for (i, (action, agent)) in [
        (AuditedRead::AgentPause, "1001"),
        (AuditedRead::AgentLogout, "1002"),
    ]
    .into_iter()
    .enumerate()
    {
        store
            .append_read_audit(&ReadAuditEntry {
                at: base_time() + Duration::seconds(i as i64),
                actor: "supervisor-li".into(),
                read: action,
                work_order: None,
                target: format!("agent {agent}"),
            })
            .await
            .expect("append");
    }
    let log = store.read_audit_log(base_time(), 10).await.expect("log");
    let seen: Vec<(AuditedRead, &str, &str, Option<&WorkOrderId>)> = log
        .iter()
        .map(|e| {
            (
                e.read,
                e.actor.as_str(),
                e.target.as_str(),
                e.work_order.as_ref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (AuditedRead::AgentPause, "supervisor-li", "agent 1001", None),
            (
                AuditedRead::AgentLogout,
                "supervisor-li",
                "agent 1002",
                None
            ),
        ]
    );
    assert_eq!(log[1].at, base_time() + Duration::seconds(1));
}

/// R15: a listing can leave out the categories agents may not see, keeping orders
/// that have no category yet, and pages still fill up past the hidden ones.
pub async fn listing_leaves_out_hidden_categories(store: &dyn WorkOrderStore) {
    let mut visible = Vec::new();
    for n in 1..=6 {
        let category = match n % 3 {
            0 => Some(Category::ServiceComplaint),
            1 => Some(Category::Complaint),
            _ => None,
        };
        let order = stored(store, n, category).await;
        store
            .mark_connected(&order.id, base_time() + Duration::minutes(1), AGENT)
            .await
            .expect("connect");
        if category != Some(Category::ServiceComplaint) {
            visible.push(order.id);
        }
    }
    visible.reverse();
    let mut query = ListQuery {
        agent: Some(AGENT.into()),
        exclude_categories: Category::HIDDEN_FROM_AGENTS.to_vec(),
        limit: 3,
        ..ListQuery::default()
    };
    let first = store.list_orders(&query).await.expect("page 1");
    assert_eq!(first.orders.len(), 3, "a page fills up past hidden orders");
    query.after = first.next.clone();
    let second = store.list_orders(&query).await.expect("page 2");
    let seen: Vec<WorkOrderId> = first
        .orders
        .iter()
        .chain(&second.orders)
        .map(|o| o.id.clone())
        .collect();
    assert_eq!(seen, visible);
    assert!(second.next.is_none());
    let everything = ListQuery {
        agent: Some(AGENT.into()),
        ..ListQuery::default()
    };
    assert_eq!(
        store
            .list_orders(&everything)
            .await
            .expect("all")
            .orders
            .len(),
        6
    );
}

fn shipped_knowledge() -> Vec<KnowledgeEntry> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/knowledge.json");
    crate::workorder::import::read_knowledge(&path).expect("shipped knowledge base")
}

fn shipped_providers() -> Vec<Provider> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/providers.csv");
    crate::workorder::import::read_providers(&path).expect("shipped directory")
}

fn ids_of<T>(items: &[T], id: impl Fn(&T) -> &str) -> Vec<String> {
    items.iter().map(|i| id(i).to_owned()).collect()
}

/// R13: the knowledge base answers Chinese keywords, two-character words included,
/// with every keyword required and title hits first.
pub async fn knowledge_search_in_chinese(store: &dyn WorkOrderStore) {
    let entries = shipped_knowledge();
    assert_eq!(
        store.import_knowledge(&entries).await.expect("import"),
        entries.len()
    );
    let search = |q: &'static str| async move {
        let found = store.search_knowledge(q, 50).await.expect("search");
        ids_of(&found, |e| &e.id)
    };
    let card = search("社保卡").await;
    assert_eq!(
        card.first().map(String::as_str),
        Some("kb-shebao-card-reissue")
    );
    // Two characters: shorter than a trigram, still found.
    let insurance = search("医保").await;
    assert_eq!(insurance.len(), 2, "{insurance:?}");
    let lost = search("补办").await;
    assert!(lost.contains(&"kb-id-card-lost".to_owned()), "{lost:?}");
    assert!(
        lost.contains(&"kb-shebao-card-reissue".to_owned()),
        "{lost:?}"
    );
    // Every keyword must match.
    assert_eq!(
        search("身份证 临时").await,
        vec!["kb-id-card-lost".to_owned()]
    );
    // A body-only word is found too, a word nowhere is not.
    assert!(
        search("95598")
            .await
            .contains(&"kb-power-outage".to_owned())
    );
    assert!(search("火星移民").await.is_empty());
    assert!(matches!(
        store.search_knowledge("  ", 10).await,
        Err(StoreError::Invalid(_))
    ));
    // Re-importing an id replaces the entry, in the index too.
    let mut changed = entries[0].clone();
    changed.title = "社会保障卡挂失与补领".into();
    changed.body = "请先挂失再补领。".into();
    store
        .import_knowledge(std::slice::from_ref(&changed))
        .await
        .expect("replace");
    let found = store.search_knowledge("补领", 10).await.expect("search");
    assert_eq!(found.first(), Some(&changed), "the title hit first");
    assert!(!search("7个工作日").await.contains(&entries[0].id));
}

/// R13, R14: the service directory answers Chinese keywords, and an agent adds a
/// provider found while handling an order.
pub async fn provider_directory_in_chinese(store: &dyn WorkOrderStore) {
    let providers = shipped_providers();
    store.import_providers(&providers).await.expect("import");
    let locks = store.search_providers("开锁", 10).await.expect("search");
    assert_eq!(
        ids_of(&locks, |p| &p.id),
        vec!["p-lock-01".to_owned(), "p-lock-02".to_owned()]
    );
    let west_locks = store
        .search_providers("开锁 城西区", 10)
        .await
        .expect("search");
    assert_eq!(ids_of(&west_locks, |p| &p.id), vec!["p-lock-02".to_owned()]);

    let order = stored(store, 1, Some(Category::Help)).await;
    let new = Provider {
        id: "p-piano-01".into(),
        name: "琴韵钢琴调律工作室".into(),
        services: "钢琴调音 钢琴维修".into(),
        area: "城南区".into(),
        phone: "0000-8890099".into(),
        address: String::new(),
        tags: vec!["钢琴".into()],
        added_from: None,
    };
    store
        .add_provider_from_work_order(&order.id, &new, AGENT, base_time())
        .await
        .expect("add provider");
    let found = store
        .search_providers("钢琴调音", 10)
        .await
        .expect("search");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].added_from, Some(order.id.clone()));
    assert!(
        event_kinds(store, &order.id)
            .await
            .contains(&EventKind::ProviderAdded)
    );
}

/// Bad input is refused with a reason, and nothing of it is stored.
pub async fn bad_input_is_refused_and_nothing_is_stored(store: &dyn WorkOrderStore) {
    let order = stored(store, 1, None).await;
    let id = &order.id;
    let events_before = store.events(id).await.expect("events");
    let empty_matter = DetailsUpdate {
        matter: Some("   ".into()),
        answer: Some("有效的答复".into()),
        ..DetailsUpdate::default()
    };
    assert!(matches!(
        store
            .update_details(id, &empty_matter, AGENT, base_time())
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store
            .evaluate_enterprise(id, &evaluation(), AGENT, base_time())
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.refer_enterprise(id, "", AGENT, base_time()).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store
            .rate(
                id,
                &CallerRating {
                    target: RatingTarget::HandlingUnit,
                    score: Satisfaction::Satisfied,
                },
                AGENT,
                base_time(),
            )
            .await,
        Err(StoreError::Invalid(_))
    ));
    let backwards = FollowUpTask {
        kind: FollowUpKind::Other,
        due_from: base_time() + Duration::hours(2),
        due_until: base_time(),
        note: String::new(),
    };
    assert!(matches!(
        store
            .add_follow_up(id, &backwards, AGENT, base_time())
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.add_note(id, "note", " ", base_time()).await,
        Err(StoreError::Invalid(_))
    ));
    let file = store.get_file(id).await.expect("file").expect("exists");
    assert_eq!(file.matter.answer, None, "the valid half was not stored");
    assert!(file.follow_ups.is_empty());
    assert_eq!(store.events(id).await.expect("events"), events_before);

    // One bad entry refuses the whole import.
    let mut entries = shipped_knowledge();
    entries[5].title = String::new();
    assert!(matches!(
        store.import_knowledge(&entries).await,
        Err(StoreError::Invalid(_))
    ));
    let mut twice = shipped_knowledge();
    twice.push(twice[0].clone());
    assert!(matches!(
        store.import_knowledge(&twice).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(
        store
            .search_knowledge("社保", 10)
            .await
            .expect("search")
            .is_empty()
    );
    let unknown = WorkOrderId::from_parts(base_time(), 0xbeef);
    assert!(matches!(
        store
            .change_status(&unknown, Status::Closed, AGENT, base_time())
            .await,
        Err(StoreError::NotFound(_))
    ));
}

/// Retention: orders older than the cutoff go with their calls and history, their
/// recordings are reported for deletion, younger ones stay, and the purge is logged.
pub async fn purge_removes_old_orders_and_is_logged(store: &dyn WorkOrderStore) {
    let old = stored(store, 1, None).await;
    store
        .mark_answered(&old.id, base_time(), Some("recordings/old.wav"))
        .await
        .expect("answer");
    let callback = CallRecord {
        call_id: "cb-old@hotline".into(),
        kind: CallKind::Callback,
        direction: Direction::Outbound,
        caller: "8890".into(),
        callee: old.caller.clone(),
        offered_at: base_time() + Duration::hours(1),
        answered_at: None,
        ended_at: None,
        hangup_side: None,
        outcome: None,
        recording_path: Some("recordings/old-cb.wav".into()),
        agent: None,
    };
    store.attach_call(&old.id, &callback).await.expect("attach");
    let young = inbound_order(2, base_time() + Duration::days(400));
    store.create(&young).await.expect("create");

    let now = base_time() + Duration::days(400);
    let cutoff = now - Duration::days(365);
    let report = store
        .purge_older_than(cutoff, "retention", now)
        .await
        .expect("purge");
    assert_eq!(report.orders, vec![old.id.clone()]);
    assert_eq!(
        report.recordings,
        vec![
            "recordings/old.wav".to_owned(),
            "recordings/old-cb.wav".to_owned()
        ]
    );
    assert_eq!(store.get(&old.id).await.expect("get"), None);
    assert!(store.events(&old.id).await.expect("events").is_empty());
    assert!(store.get(&young.id).await.expect("get").is_some());
    let log = store.purge_log().await.expect("log");
    assert_eq!(log, vec![report]);
    assert_eq!(log[0].actor, "retention");
    // Nothing left to purge: an empty purge is logged too.
    let again = store
        .purge_older_than(cutoff, "retention", now)
        .await
        .expect("purge");
    assert!(again.orders.is_empty());
    assert_eq!(store.purge_log().await.expect("log").len(), 2);
}

/// A working store reports itself up.
pub async fn a_working_store_is_healthy(store: &dyn WorkOrderStore) {
    let health = store.health().await;
    assert!(health.up, "{health:?}");
    assert_eq!(health.problem, None);
}

/// R4: crash recovery also ends the further calls left open.
pub async fn end_unfinished_ends_attached_calls(store: &dyn WorkOrderStore) {
    let order = stored(store, 1, None).await;
    let mut answered = CallRecord {
        call_id: "cb-a@hotline".into(),
        kind: CallKind::Callback,
        direction: Direction::Outbound,
        caller: "8890".into(),
        callee: order.caller.clone(),
        offered_at: base_time(),
        answered_at: Some(base_time() + Duration::seconds(5)),
        ended_at: None,
        hangup_side: None,
        outcome: None,
        recording_path: None,
        agent: Some(AGENT.into()),
    };
    store
        .attach_call(&order.id, &answered)
        .await
        .expect("attach");
    let mut ringing = answered.clone();
    ringing.call_id = "cb-b@hotline".into();
    ringing.answered_at = None;
    store
        .attach_call(&order.id, &ringing)
        .await
        .expect("attach");
    let restart = base_time() + Duration::hours(1);
    let restarted = CallOutcome::Abandoned {
        reason: crate::workorder::AbandonReason::EngineRestarted,
    };
    store
        .end_unfinished(restart, restarted)
        .await
        .expect("end unfinished");
    let file = store
        .get_file(&order.id)
        .await
        .expect("file")
        .expect("exists");
    answered.ended_at = Some(restart);
    answered.outcome = Some(CallOutcome::Answered);
    ringing.ended_at = Some(restart);
    ringing.outcome = Some(restarted);
    assert_eq!(file.calls[1..], [answered, ringing]);
}
