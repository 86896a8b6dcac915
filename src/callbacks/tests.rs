//! Unit tests of the callback scheduler and the API validation, on a simulated clock.

use chrono::{DateTime, Duration as Span, TimeZone, Utc};

use super::api::{CreateCallbackRequest, ListCallbacksQuery, RescheduleRequest, parse_task_id};
use super::core::backoff;
use super::*;
use crate::config::callbacks::{CallbackReserve, CallbacksConfig};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap()
}

fn mins(n: i64) -> Span {
    Span::minutes(n)
}

fn order() -> WorkOrderId {
    WorkOrderId::from_parts(t0(), 0xabc)
}

fn number(text: &str) -> PhoneNumber {
    text.parse().expect("phone number")
}

fn new_task(reason: Reason, owner: Option<&str>) -> NewTask {
    NewTask {
        work_order: order(),
        number: number("13812345678"),
        reason,
        window: None,
        owner: owner.map(str::to_owned),
        queue: "general".into(),
    }
}

/// Agents `a1`, `a2` in `general`, `b1` in `billing`; all free, no call waiting.
fn pool() -> AgentPool {
    let mut pool = AgentPool::new();
    pool.add_agent("a1", &["general".into()], true);
    pool.add_agent("a2", &["general".into()], true);
    pool.add_agent("b1", &["billing".into()], true);
    pool
}

fn pool_with(free: &[&str], waiting: &[&str]) -> AgentPool {
    let mut pool = AgentPool::new();
    for (id, queue) in [("a1", "general"), ("a2", "general"), ("b1", "billing")] {
        pool.add_agent(id, &[queue.into()], free.contains(&id));
    }
    for queue in waiting {
        pool.set_inbound_waiting(queue);
    }
    pool
}

fn outputs(s: &mut Scheduler) -> Vec<Output> {
    std::iter::from_fn(|| s.poll_output()).collect()
}

fn dials(outputs: &[Output]) -> Vec<(TaskId, String)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Dial(order) => Some((order.task, order.agent.clone())),
            _ => None,
        })
        .collect()
}

fn saved_states(outputs: &[Output]) -> Vec<&'static str> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Save(task) => Some(task.state.as_str()),
            _ => None,
        })
        .collect()
}

fn scheduler() -> Scheduler {
    Scheduler::new(CallbacksConfig::default())
}

#[test]
fn default_windows_come_from_the_config_r17_r18_r19() {
    let mut s = scheduler();
    let referral = s
        .create(t0(), new_task(Reason::ReferralCheck, Some("a1")))
        .unwrap();
    let evaluation = s
        .create(t0(), new_task(Reason::Evaluation, Some("a1")))
        .unwrap();
    let complaint = s
        .create(t0(), new_task(Reason::Complaint, Some("a1")))
        .unwrap();
    let window = |id| s.task(id).unwrap().window;
    assert_eq!(
        window(referral),
        Window {
            earliest: t0() + mins(20),
            latest: t0() + mins(30)
        }
    );
    assert_eq!(
        window(evaluation),
        Window {
            earliest: t0() + Span::days(1),
            latest: t0() + Span::days(2)
        }
    );
    assert_eq!(
        window(complaint),
        Window {
            earliest: t0(),
            latest: t0() + mins(10)
        }
    );
    // Each creation is saved, pending.
    assert_eq!(saved_states(&outputs(&mut s)), ["pending"; 3]);
}

#[test]
fn a_task_is_not_dialled_before_its_window_opens_then_goes_to_its_owner_r7() {
    let mut s = scheduler();
    let id = s
        .create(t0(), new_task(Reason::ReferralCheck, Some("a2")))
        .unwrap();
    outputs(&mut s);
    s.handle_agents(t0() + mins(19), &pool());
    assert!(dials(&outputs(&mut s)).is_empty());
    assert_eq!(
        s.poll_timeout(),
        Some(t0() + mins(20)),
        "wakes when the window opens"
    );
    s.handle_timeout(t0() + mins(20), &pool());
    let out = outputs(&mut s);
    assert_eq!(
        dials(&out),
        [(id, "a2".to_owned())],
        "the owner, though a1 is first"
    );
    assert_eq!(saved_states(&out), ["dialing"]);
    let Some(Output::Dial(dial)) = out.iter().find(|o| matches!(o, Output::Dial(_))) else {
        unreachable!("checked above")
    };
    assert_eq!(dial.agent_display_name(), "转办回访 138******78");
    assert_eq!(dial.work_order, order());
    // Not dialled twice at once.
    s.handle_agents(t0() + mins(21), &pool());
    assert!(dials(&outputs(&mut s)).is_empty());
}

#[test]
fn after_the_owner_grace_any_agent_of_the_queue_may_take_it_r7() {
    let mut s = scheduler();
    let id = s
        .create(t0(), new_task(Reason::Complaint, Some("a1")))
        .unwrap();
    outputs(&mut s);
    // The owner is busy; a2 serves the queue, b1 does not.
    let busy_owner = pool_with(&["a2", "b1"], &[]);
    s.handle_agents(t0() + mins(4), &busy_owner);
    assert!(
        dials(&outputs(&mut s)).is_empty(),
        "within the 5 min grace only a1 may"
    );
    assert_eq!(
        s.poll_timeout(),
        Some(t0() + mins(5)),
        "wakes when the grace ends"
    );
    s.handle_timeout(t0() + mins(5), &busy_owner);
    assert_eq!(dials(&outputs(&mut s)), [(id, "a2".to_owned())]);

    // An agent outside the task's queue never gets it.
    let mut s = scheduler();
    s.create(t0(), new_task(Reason::Complaint, Some("a1")))
        .unwrap();
    s.handle_agents(t0() + mins(60), &pool_with(&["b1"], &[]));
    assert!(dials(&outputs(&mut s)).is_empty());
}

#[test]
fn a_missed_call_has_no_owner_and_goes_to_any_agent_of_its_queue_at_once() {
    let mut s = scheduler();
    let id = s
        .missed_call(t0(), order(), number("13812345678"), "general")
        .unwrap();
    let again = s
        .missed_call(t0(), order(), number("+86 138-1234-5678"), "general")
        .unwrap();
    assert_eq!(id, again, "one open missed-call task per number");
    assert_eq!(s.task(id).unwrap().owner, None);
    outputs(&mut s);
    s.handle_agents(t0(), &pool_with(&["a2"], &[]));
    assert_eq!(dials(&outputs(&mut s)), [(id, "a2".to_owned())]);
}

#[test]
fn a_missed_call_is_cancelled_when_the_same_number_calls_in_and_is_connected() {
    let mut s = scheduler();
    let mine = s
        .missed_call(t0(), order(), number("13812345678"), "general")
        .unwrap();
    let other = s
        .missed_call(t0(), order(), number("13900000000"), "general")
        .unwrap();
    let referral = s
        .create(t0(), new_task(Reason::ReferralCheck, Some("a1")))
        .unwrap();
    outputs(&mut s);
    let cancelled = s.inbound_connected(t0() + mins(1), &number("+8613812345678"));
    assert_eq!(cancelled, [mine]);
    assert_eq!(saved_states(&outputs(&mut s)), ["cancelled"]);
    assert!(s.task(mine).is_none(), "finished tasks leave the scheduler");
    assert!(s.task(other).is_some());
    assert!(
        s.task(referral).is_some(),
        "only missed-call tasks cancel by themselves"
    );

    // While its attempt rings, the legs are cancelled too.
    let mut s = scheduler();
    let id = s
        .missed_call(t0(), order(), number("13812345678"), "general")
        .unwrap();
    s.handle_agents(t0(), &pool());
    outputs(&mut s);
    s.inbound_connected(t0() + mins(1), &number("13812345678"));
    let out = outputs(&mut s);
    assert!(
        out.contains(&Output::CancelDial {
            task: id,
            agent: "a1".into()
        }),
        "{out:?}"
    );
}

#[test]
fn a_no_answer_is_retried_with_backoff_then_the_task_fails_r20() {
    let mut s = scheduler();
    let id = s
        .create(t0(), new_task(Reason::Complaint, Some("a1")))
        .unwrap();
    let mut now = t0();
    for (attempt, wait) in [(1, mins(2)), (2, mins(4))] {
        s.handle_agents(now, &pool());
        assert_eq!(
            dials(&outputs(&mut s)),
            [(id, "a1".to_owned())],
            "attempt {attempt}"
        );
        s.dial_result(now, id, DialOutcome::NoAnswer).unwrap();
        let task = s.task(id).unwrap();
        assert_eq!((task.attempts, &task.state), (attempt, &TaskState::Pending));
        assert_eq!(task.not_before, now + wait);
        s.handle_agents(now + wait - Span::seconds(1), &pool());
        assert!(
            dials(&outputs(&mut s)).is_empty(),
            "no dial inside the backoff"
        );
        assert_eq!(s.poll_timeout(), Some(now + wait));
        now += wait;
    }
    s.handle_agents(now, &pool());
    outputs(&mut s);
    s.dial_result(now, id, DialOutcome::Busy).unwrap();
    let out = outputs(&mut s);
    let Some(Output::Save(last)) = out.last() else {
        panic!("{out:?}")
    };
    assert_eq!(last.state, TaskState::Failed);
    assert_eq!(
        (last.attempts, last.last_outcome),
        (3, Some(DialOutcome::Busy))
    );
    assert!(s.task(id).is_none());
    let counters = s.counters();
    assert_eq!((counters.no_answer, counters.busy), (2, 1));
}

#[test]
fn backoff_doubles_up_to_its_maximum() {
    let settings = (
        std::time::Duration::from_secs(120),
        std::time::Duration::from_secs(600),
    );
    let waits: Vec<u64> = (1..=5).map(|n| backoff(settings, n).as_secs()).collect();
    assert_eq!(waits, [120, 240, 480, 600, 600]);
}

#[test]
fn a_number_that_does_not_exist_fails_at_once() {
    let mut s = scheduler();
    let id = s
        .create(t0(), new_task(Reason::Complaint, Some("a1")))
        .unwrap();
    s.handle_agents(t0(), &pool());
    s.dial_result(t0(), id, DialOutcome::Failed(404)).unwrap();
    let out = outputs(&mut s);
    let Some(Output::Save(last)) = out.last() else {
        panic!("{out:?}")
    };
    assert_eq!((last.state.clone(), last.attempts), (TaskState::Failed, 1));
    assert_eq!(last.last_outcome, Some(DialOutcome::Failed(404)));
}

#[test]
fn a_task_past_its_latest_time_is_overdue_until_connected_r20() {
    let mut s = scheduler();
    let id = s
        .create(t0(), new_task(Reason::Complaint, Some("a1")))
        .unwrap();
    let late = t0() + mins(25);
    let stats = s.stats(late);
    assert_eq!((stats.pending, stats.due, stats.overdue), (1, 1, 1));
    assert_eq!(
        stats.oldest_overdue,
        Some(std::time::Duration::from_secs(15 * 60))
    );
    assert!(s.task(id).unwrap().is_overdue(late));
    assert!(
        !s.task(id).unwrap().is_overdue(t0() + mins(10)),
        "latest itself is on time"
    );
    // Still dialled, late.
    s.handle_agents(late, &pool());
    assert_eq!(dials(&outputs(&mut s)).len(), 1);
    assert_eq!(s.stats(late).overdue, 1, "dialing is not done");
    s.dial_result(late, id, DialOutcome::Connected).unwrap();
    let stats = s.stats(late);
    assert_eq!(
        (stats.overdue, stats.connected, stats.oldest_overdue),
        (0, 1, None)
    );
    s.call_ended(late + mins(3), id).unwrap();
    assert_eq!(saved_states(&outputs(&mut s)).last(), Some(&"done"));
    assert_eq!(s.stats(late), SchedulerStats::default());
}

#[test]
fn no_callback_starts_while_an_inbound_call_waits_for_the_agent_r9() {
    let mut s = scheduler();
    let id = s
        .create(t0(), new_task(Reason::Complaint, Some("a1")))
        .unwrap();
    // a1 is free, but a call waits in general.
    s.handle_agents(t0(), &pool_with(&["a1", "a2", "b1"], &["general"]));
    assert!(dials(&outputs(&mut s)).is_empty());
    // A call waiting in another queue does not hold a1 back.
    s.handle_agents(t0(), &pool_with(&["a1", "a2", "b1"], &["billing"]));
    assert_eq!(dials(&outputs(&mut s)), [(id, "a1".to_owned())]);
}

#[test]
fn a_ringing_callback_yields_to_an_inbound_call_without_counting_an_attempt_r9() {
    let mut s = scheduler();
    let id = s
        .create(t0(), new_task(Reason::Complaint, Some("a1")))
        .unwrap();
    s.handle_agents(t0(), &pool());
    outputs(&mut s);
    // An inbound call starts waiting in general while the citizen's phone rings.
    let waiting = pool_with(&[], &["general"]);
    s.handle_agents(t0() + mins(1), &waiting);
    let out = outputs(&mut s);
    assert!(
        out.contains(&Output::Preempt {
            task: id,
            agent: "a1".into()
        }),
        "{out:?}"
    );
    let task = s.task(id).unwrap();
    assert_eq!(
        (&task.state, task.attempts, task.preemptions),
        (&TaskState::Pending, 0, 1)
    );
    assert_eq!(s.counters().preemptions, 1);
    // Not dialled again until the driver reports the legs gone.
    s.handle_agents(t0() + mins(1), &pool());
    assert!(dials(&outputs(&mut s)).is_empty());
    s.preempted(t0() + mins(1), id).unwrap();
    assert_eq!(s.counters().preemptions, 1, "counted once");
    // The agent took the inbound call; when it is over the callback runs.
    s.handle_agents(t0() + mins(2), &waiting);
    assert!(dials(&outputs(&mut s)).is_empty());
    s.handle_agents(t0() + mins(5), &pool());
    assert_eq!(dials(&outputs(&mut s)), [(id, "a1".to_owned())]);
}

#[test]
fn a_200_ok_crossing_the_preemption_keeps_the_call_connected_r9() {
    let mut s = scheduler();
    let id = s
        .create(t0(), new_task(Reason::Complaint, Some("a1")))
        .unwrap();
    s.handle_agents(t0(), &pool());
    s.handle_agents(t0(), &pool_with(&[], &["general"]));
    s.dial_result(t0(), id, DialOutcome::Connected).unwrap();
    assert_eq!(
        s.task(id).unwrap().state,
        TaskState::Connected { agent: "a1".into() }
    );
    // A 487 for the cancelled leg only ends the preemption: no attempt is counted.
    let mut s = scheduler();
    let id = s
        .create(t0(), new_task(Reason::Complaint, Some("a1")))
        .unwrap();
    s.handle_agents(t0(), &pool());
    s.handle_agents(t0(), &pool_with(&[], &["general"]));
    s.dial_result(t0(), id, DialOutcome::Failed(487)).unwrap();
    let task = s.task(id).unwrap();
    assert_eq!((&task.state, task.attempts), (&TaskState::Pending, 0));
    s.handle_agents(t0(), &pool());
    assert_eq!(dials(&outputs(&mut s)).last(), Some(&(id, "a1".to_owned())));
    // After the driver's own preemption, a late no-answer is refused.
    let mut s = scheduler();
    let id = s
        .create(t0(), new_task(Reason::Complaint, Some("a1")))
        .unwrap();
    s.handle_agents(t0(), &pool());
    s.preempted(t0(), id).unwrap();
    assert!(matches!(
        s.dial_result(t0(), id, DialOutcome::NoAnswer),
        Err(CallbackError::NotDialing { .. })
    ));
    assert_eq!(s.task(id).unwrap().attempts, 0);
}

#[test]
fn a_connected_callback_is_never_cut_r9() {
    let mut s = scheduler();
    let id = s
        .create(t0(), new_task(Reason::Complaint, Some("a1")))
        .unwrap();
    s.handle_agents(t0(), &pool());
    s.dial_result(t0(), id, DialOutcome::Connected).unwrap();
    outputs(&mut s);
    s.handle_agents(t0() + mins(1), &pool_with(&[], &["general"]));
    let out = outputs(&mut s);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(
        s.cancel(t0(), id),
        Err(CallbackError::Connected { task: id })
    );
    let window = Window::new(t0(), t0() + mins(5)).unwrap();
    assert_eq!(
        s.reschedule(t0(), id, window),
        Err(CallbackError::Connected { task: id })
    );
}

#[test]
fn an_agent_whose_phone_fails_does_not_cost_an_attempt() {
    let mut s = scheduler();
    let id = s
        .create(t0(), new_task(Reason::Complaint, Some("a1")))
        .unwrap();
    s.handle_agents(t0(), &pool());
    s.agent_leg_failed(t0(), id).unwrap();
    let task = s.task(id).unwrap();
    assert_eq!((&task.state, task.attempts), (&TaskState::Pending, 0));
}

#[test]
fn any_task_can_change_its_own_window() {
    let mut s = scheduler();
    let id = s
        .create(t0(), new_task(Reason::Evaluation, Some("a1")))
        .unwrap();
    let window = Window::new(t0() + mins(5), t0() + mins(15)).unwrap();
    s.reschedule(t0(), id, window).unwrap();
    assert_eq!(s.task(id).unwrap().window, window);
    s.handle_agents(t0() + mins(5), &pool());
    assert_eq!(dials(&outputs(&mut s)), [(id, "a1".to_owned())]);
    // An inverted window is refused and changes nothing.
    let inverted = Window {
        earliest: t0() + mins(9),
        latest: t0() + mins(8),
    };
    assert!(matches!(
        s.reschedule(t0(), id, inverted),
        Err(CallbackError::WindowInverted { .. })
    ));
    assert_eq!(s.task(id).unwrap().window, window);
}

#[test]
fn cancelling_a_dialing_task_cancels_its_legs() {
    let mut s = scheduler();
    let id = s
        .create(t0(), new_task(Reason::Complaint, Some("a1")))
        .unwrap();
    s.handle_agents(t0(), &pool());
    outputs(&mut s);
    s.cancel(t0(), id).unwrap();
    let out = outputs(&mut s);
    assert_eq!(
        out[0],
        Output::CancelDial {
            task: id,
            agent: "a1".into()
        }
    );
    assert_eq!(saved_states(&out), ["cancelled"]);
    assert_eq!(s.cancel(t0(), id), Err(CallbackError::UnknownTask(id)));
}

#[test]
fn a_restart_makes_a_dialing_task_pending_again_and_dials_it_once() {
    let mut s = scheduler();
    let dialing = s
        .create(t0(), new_task(Reason::Complaint, Some("a1")))
        .unwrap();
    let connected = s
        .create(t0(), new_task(Reason::Complaint, Some("a2")))
        .unwrap();
    let waiting = s
        .create(t0(), new_task(Reason::Evaluation, Some("a1")))
        .unwrap();
    s.handle_agents(t0(), &pool());
    s.dial_result(t0(), connected, DialOutcome::Connected)
        .unwrap();
    let stored: Vec<CallbackTask> = s.tasks().cloned().collect();
    assert!(matches!(stored[0].state, TaskState::Dialing { .. }));

    let later = t0() + mins(1);
    let mut s = Scheduler::restore(CallbacksConfig::default(), later, stored, Some(TaskId(7)));
    let out = outputs(&mut s);
    assert_eq!(saved_states(&out), ["pending", "done"]);
    assert_eq!(s.task(dialing).unwrap().state, TaskState::Pending);
    assert!(
        s.task(connected).is_none(),
        "a connected call was reached: done"
    );
    assert!(s.task(waiting).is_some());
    s.handle_agents(later, &pool());
    assert_eq!(dials(&outputs(&mut s)), [(dialing, "a1".to_owned())]);
    s.handle_agents(later, &pool());
    assert!(
        dials(&outputs(&mut s)).is_empty(),
        "never dialled twice at once"
    );
    let next = s.create(later, new_task(Reason::Manual, None)).unwrap();
    assert_eq!(next, TaskId(8), "ids continue after the highest stored");
}

#[test]
fn the_reserve_takes_a_freed_agent_for_an_urgent_callback_only() {
    let mut settings = CallbacksConfig::default();
    let mut s = Scheduler::new(settings.clone());
    s.create(t0(), new_task(Reason::Complaint, Some("a1")))
        .unwrap();
    let peak = pool_with(&[], &["general"]);
    assert_eq!(
        s.claim_freed_agent(t0(), "a1", &peak),
        None,
        "off by default"
    );

    settings.reserve = Some(CallbackReserve {
        agents: 1,
        within: std::time::Duration::from_secs(300),
    });
    let mut s = Scheduler::new(settings);
    let urgent = s
        .create(t0(), new_task(Reason::Complaint, Some("a1")))
        .unwrap();
    let second = s
        .create(t0(), new_task(Reason::Complaint, Some("a2")))
        .unwrap();
    assert_eq!(
        s.claim_freed_agent(t0(), "a1", &peak),
        None,
        "10 min left: not urgent yet"
    );
    let order = s
        .claim_freed_agent(t0() + mins(5), "a1", &peak)
        .expect("claimed");
    assert_eq!((order.task, order.via_reserve), (urgent, true));
    assert_eq!(
        s.claim_freed_agent(t0() + mins(5), "a2", &peak),
        None,
        "one reserve slot"
    );
    // Not preempted: the reserve holds the agent on purpose.
    s.handle_agents(t0() + mins(6), &peak);
    assert!(
        !outputs(&mut s)
            .iter()
            .any(|o| matches!(o, Output::Preempt { .. }))
    );
    s.dial_result(t0() + mins(6), urgent, DialOutcome::Connected)
        .unwrap();
    s.call_ended(t0() + mins(8), urgent).unwrap();
    let order = s
        .claim_freed_agent(t0() + mins(8), "a2", &peak)
        .expect("slot free again");
    assert_eq!(order.task, second);
}

#[test]
fn the_reserve_is_wanted_only_while_a_task_is_within_its_reach() {
    let s = scheduler();
    assert_eq!(s.reserve_wanted(t0()), 0, "off by default");

    let mut s = Scheduler::new(CallbacksConfig {
        reserve: Some(CallbackReserve {
            agents: 2,
            within: std::time::Duration::from_secs(300),
        }),
        ..CallbacksConfig::default()
    });
    assert_eq!(s.reserve_wanted(t0()), 0, "no task");
    let task = s
        .create(t0(), new_task(Reason::Complaint, Some("a1")))
        .unwrap();
    assert_eq!(
        s.reserve_wanted(t0()),
        0,
        "10 min left: not within 5 min yet"
    );
    assert_eq!(s.poll_timeout(), Some(t0() + mins(5)), "when it will be");
    assert_eq!(s.reserve_wanted(t0() + mins(5)), 2);
    assert_eq!(
        s.reserve_wanted(t0() + mins(30)),
        2,
        "overdue: still wanted"
    );
    let peak = pool_with(&[], &["general"]);
    s.claim_freed_agent(t0() + mins(6), "a1", &peak)
        .expect("claimed");
    assert_eq!(
        s.reserve_wanted(t0() + mins(6)),
        0,
        "nothing left to claim: nobody is kept from inbound calls"
    );
    s.dial_result(t0() + mins(7), task, DialOutcome::NoAnswer)
        .unwrap();
    assert_eq!(s.reserve_wanted(t0() + mins(7)), 0, "backing off");
    assert_eq!(s.reserve_wanted(t0() + mins(9)), 2, "due again");
}

#[test]
fn numbers_are_validated_and_never_print_in_full_r12() {
    let n = number(" +86 (138) 1234-5678 ");
    assert_eq!(n.dial_string(), "+8613812345678");
    assert_eq!(format!("{n}"), "+86*********78");
    assert!(!format!("{n:?}").contains("12345678"));
    for bad in [
        "",
        "abc",
        "1234",
        "138123456789012345678",
        "+",
        "13812345678x",
        "1+3812345",
    ] {
        let err = bad.parse::<PhoneNumber>().unwrap_err();
        assert!(
            matches!(err, CallbackError::InvalidNumber { .. }),
            "{bad:?}"
        );
    }
    let err = "13812345678x"
        .parse::<PhoneNumber>()
        .unwrap_err()
        .to_string();
    assert!(!err.contains("12345678"), "{err}");
}

fn create_request(
    earliest: Option<&str>,
    latest: Option<&str>,
    number: &str,
) -> CreateCallbackRequest {
    CreateCallbackRequest {
        work_order: order().to_string(),
        number: number.into(),
        reason: "referral_check".into(),
        earliest: earliest.map(str::to_owned),
        latest: latest.map(str::to_owned),
        owner: Some("1001".into()),
        queue: None,
    }
}

#[test]
fn the_api_refuses_bad_input_with_clear_typed_errors() {
    let settings = CallbacksConfig::default();
    let exists = |_: &WorkOrderId| true;
    let ok = create_request(None, None, "13812345678")
        .validate(t0(), &settings, "general", exists)
        .unwrap();
    assert_eq!((ok.window, ok.queue.as_str()), (None, "general"));

    let inverted = create_request(
        Some("2026-12-01T10:00:00Z"),
        Some("2026-12-01T09:00:00Z"),
        "13812345678",
    )
    .validate(t0(), &settings, "general", exists)
    .unwrap_err();
    assert!(matches!(inverted, CallbackError::WindowInverted { .. }));
    assert_eq!(inverted.http_status(), 422);

    let unknown = create_request(None, None, "13812345678")
        .validate(t0(), &settings, "general", |_| false)
        .unwrap_err();
    assert_eq!(unknown, CallbackError::UnknownWorkOrder(order()));
    assert_eq!(unknown.http_status(), 422);

    let not_a_number = create_request(None, None, "call me maybe")
        .validate(t0(), &settings, "general", exists)
        .unwrap_err();
    assert!(matches!(not_a_number, CallbackError::InvalidNumber { .. }));
    assert_eq!(not_a_number.http_status(), 400);

    let bad_time = create_request(Some("tomorrow"), None, "13812345678")
        .validate(t0(), &settings, "general", exists)
        .unwrap_err();
    assert!(bad_time.to_string().contains("earliest"), "{bad_time}");

    let mut bad_reason = create_request(None, None, "13812345678");
    bad_reason.reason = "survey".into();
    assert!(matches!(
        bad_reason.validate(t0(), &settings, "general", exists),
        Err(CallbackError::UnknownReason(_))
    ));

    let body: super::api::ErrorBody = (&inverted).into();
    assert!(body.error.contains("before its earliest"), "{}", body.error);
}

#[test]
fn the_api_fills_a_half_given_window() {
    let settings = CallbacksConfig::default();
    let only_earliest = create_request(Some("2026-12-01T09:00:00Z"), None, "13812345678")
        .validate(t0(), &settings, "general", |_| true)
        .unwrap();
    let start = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
    assert_eq!(
        only_earliest.window,
        Some(Window {
            earliest: start,
            latest: start + mins(10)
        })
    );
    let only_latest = create_request(None, Some("2026-12-01T09:00:00Z"), "13812345678")
        .validate(t0(), &settings, "general", |_| true)
        .unwrap();
    assert_eq!(
        only_latest.window,
        Some(Window {
            earliest: t0(),
            latest: start
        })
    );
}

#[test]
fn reschedule_list_and_ids_parse() {
    let request = RescheduleRequest {
        earliest: "2026-12-01T09:00:00Z".into(),
        latest: "2026-12-01T08:59:00Z".into(),
    };
    assert!(matches!(
        request.validate(),
        Err(CallbackError::WindowInverted { .. })
    ));
    let query = ListCallbacksQuery {
        due: true,
        overdue: false,
        owner: Some("1001".into()),
        limit: Some(5000),
    };
    let filter = query.to_filter().unwrap();
    assert_eq!(
        (filter.due, filter.owner.as_deref(), filter.limit),
        (true, Some("1001"), 1000)
    );
    assert_eq!(parse_task_id("cb-12"), Ok(TaskId(12)));
    assert_eq!(parse_task_id("12"), Ok(TaskId(12)));
    assert!(matches!(
        parse_task_id("cb-x"),
        Err(CallbackError::InvalidTaskId(_))
    ));
}

#[test]
fn the_shared_file_name_is_the_work_orders_file() {
    assert_eq!(
        super::sqlite::DB_FILE_NAME,
        crate::workorder::sqlite::DB_FILE_NAME
    );
}
