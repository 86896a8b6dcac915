//! Callback dialing in the simulation harness (issue 10): the real switch with its
//! callback scheduler, agents' phones and a citizen behind the outbound trunk, on the
//! simulated clock and network, every invariant of `hotline::sim::world` checked after
//! each step.
//!
//! - a due callback rings the agent first (work order header, reason in the display
//!   name), then the citizen through the trunk; both are bridged and recorded (R17, R22);
//! - an inbound call that starts waiting while the citizen's phone rings preempts the
//!   attempt: the citizen's leg is CANCELled, the agent takes the inbound call, and the
//!   callback runs afterwards, not counted as an attempt (R9);
//! - a restart while the callback is dialing loses no task: it is pending again and
//!   dialled once more (R20);
//! - the reserve (off by default): through a 45 min inbound peak with a standing queue,
//!   no referral check is dialled without it and all go overdue; with one agent
//!   reserved, they are kept on time and fewer callers reach an agent (R9).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use hotline::callbacks::{
    CallbackTask, DialOutcome, NewTask, Reason, TaskId, TaskState, WORK_ORDER_HEADER, Window,
};
use hotline::config::agents::AgentsConfig;
use hotline::config::callbacks::{CallbackReserve, CallbacksConfig, OutboundTrunk, WindowOffsets};
use hotline::sim::ua::{EndReason, Side};
use hotline::sim::world::{World, WorldConfig};
use hotline::sim::{AnswerPolicy, CallerScript, PhoneScript, loopback};
use hotline::sip::TransportKind;
use hotline::switch::{CallbackCommand, CallbackReply, Command, Reply, StoreWrite};
use hotline::workorder::{CallOutcome, WorkOrderId};

const SECOND: Duration = Duration::from_secs(1);
const CITIZEN: &str = "13900002222";

fn settings() -> CallbacksConfig {
    CallbacksConfig {
        trunk: Some(OutboundTrunk {
            address: loopback(4, 8000),
            transport: TransportKind::Udp,
            credentials: None,
            caller_id: "12345".into(),
        }),
        ..CallbacksConfig::default()
    }
}

fn world_with_callbacks(seed: u64) -> (WorldConfig, World) {
    let config = WorldConfig::new(seed, 1);
    let mut world = World::new(config.clone()).expect("a valid switch");
    world.enable_callbacks(settings());
    (config, world)
}

fn run(world: &mut World, span: Duration) {
    if let Err(failure) = world.run_for(span) {
        panic!("{failure}");
    }
}

fn finish(world: &mut World) {
    if let Err(failure) = world.finish(Duration::from_secs(3600)) {
        panic!("{failure}");
    }
}

/// Agent 1001's phone: registers, logs in with `*21` a second later, answers after a
/// second.
fn agent_phone() -> PhoneScript {
    let mut script = PhoneScript::new("1001", "pw1001", "127.0.0.1");
    script.answer = AnswerPolicy::After(SECOND);
    script.dials = vec![(SECOND, "*21".to_string())];
    script
}

/// The citizen behind the trunk.
fn citizen(answer: AnswerPolicy) -> PhoneScript {
    PhoneScript {
        hangup_after: Some(20 * SECOND),
        ..PhoneScript::callee(CITIZEN, answer)
    }
}

fn parent_order() -> WorkOrderId {
    WorkOrderId::from_parts(Utc.with_ymd_and_hms(2026, 12, 1, 7, 0, 0).unwrap(), 7)
}

/// A referral check owned by 1001, due since before the world's clock starts.
fn create_task(world: &mut World) -> TaskId {
    let earliest = Utc.with_ymd_and_hms(2026, 12, 1, 7, 30, 0).unwrap();
    let reply = world.command(Command::Callbacks(CallbackCommand::Create(NewTask {
        work_order: parent_order(),
        number: CITIZEN.parse().unwrap(),
        reason: Reason::ReferralCheck,
        window: Some(Window::new(earliest, earliest + chrono::Duration::hours(2)).unwrap()),
        owner: Some("1001".into()),
        queue: "general".into(),
    })));
    match reply {
        Some(Reply::Callbacks(CallbackReply::Task(task))) if task.is_ok() => {
            let view = (*task).unwrap();
            assert!(!view.number.contains(CITIZEN), "masked in answers (R12)");
            view.id
                .trim_start_matches("cb-")
                .parse()
                .map(TaskId)
                .unwrap()
        }
        other => panic!("create: {other:?}"),
    }
}

fn saved(world: &World, task: TaskId) -> CallbackTask {
    world
        .saved_callbacks()
        .get(&task)
        .cloned()
        .expect("the task was saved")
}

#[test]
fn a_due_callback_rings_the_agent_then_the_citizen_bridged_and_recorded_r17_r22() {
    let (_, mut world) = world_with_callbacks(31);
    world.add_phone(agent_phone());
    let citizen = world.add_phone_at(loopback(4, 8000), citizen(AnswerPolicy::After(3 * SECOND)));
    run(&mut world, 5 * SECOND);
    let task = create_task(&mut world);
    finish(&mut world);

    let (agent_call, _) = world.phones[0].received().next().expect("the agent first");
    let invite = agent_call.invite_text.clone().unwrap_or_default();
    assert!(
        invite.contains(&format!("{WORK_ORDER_HEADER}: {}", parent_order())),
        "{invite}"
    );
    assert!(invite.contains(Reason::ReferralCheck.label()), "{invite}");
    assert!(
        !invite.contains(CITIZEN),
        "no full number to the agent (R12)"
    );
    let (citizen_call, _) = world.phones[citizen]
        .received()
        .next()
        .expect("then the citizen");
    assert!(agent_call.answered_at.unwrap() <= citizen_call.invited_at.unwrap());
    assert_eq!(citizen_call.final_status, Some(200));
    let citizen_invite = citizen_call.invite_text.clone().unwrap_or_default();
    assert!(
        citizen_invite.starts_with(&format!("INVITE sip:{CITIZEN}@127.0.0.4:8000 ")),
        "{citizen_invite}"
    );
    assert!(
        citizen_invite.contains("P-Asserted-Identity: <sip:12345@127.0.0.1>"),
        "the trunk's caller-id: {citizen_invite}"
    );

    let done = saved(&world, task);
    assert_eq!(done.state, TaskState::Done, "{done:?}");
    assert_eq!(done.attempts, 1);
    assert_eq!(done.last_outcome, Some(DialOutcome::Connected));
    let attempt = world
        .orders()
        .iter()
        .find(|(_, order)| order.connected == ["1001"])
        .map(|(id, order)| (id.clone(), order.clone()))
        .expect("the attempt's own work order");
    assert_eq!(attempt.1.outcome, Some(CallOutcome::Answered));
    assert!(
        world
            .engine
            .media_log()
            .iter()
            .any(|entry| entry.what == "start-recorded"),
        "recorded like an inbound call (R22)"
    );
    let notes = world.notes(&parent_order());
    assert!(
        notes
            .iter()
            .any(|n| n.contains("connected") && n.contains(attempt.0.as_str())),
        "{notes:?}"
    );
}

#[test]
fn an_inbound_call_waiting_while_the_citizen_rings_preempts_the_callback_r9() {
    let (_, mut world) = world_with_callbacks(32);
    world.add_phone(agent_phone());
    let citizen = world.add_phone_at(loopback(4, 8000), citizen(AnswerPolicy::After(40 * SECOND)));
    run(&mut world, 5 * SECOND);
    let task = create_task(&mut world);
    run(&mut world, 5 * SECOND);
    assert!(
        matches!(saved(&world, task).state, TaskState::Dialing { .. }),
        "the citizen rings"
    );
    assert_eq!(world.phones[citizen].received().count(), 1);

    let caller = world.add_caller(CallerScript {
        hangup_after: Some(60 * SECOND),
        ..CallerScript::new("13800001111", "8890")
    });
    finish(&mut world);

    let mut citizen_calls = world.phones[citizen].received();
    let (first, _) = citizen_calls.next().expect("the first attempt");
    assert_eq!(first.final_status, Some(487), "CANCELled: {first:?}");
    assert_eq!(first.end_reason, Some(EndReason::Cancelled));
    let order = world
        .order_of_caller(caller)
        .expect("the caller's work order");
    assert_eq!(order.connected, ["1001"], "the agent took the inbound call");
    let (second, _) = citizen_calls.next().expect("the callback ran later");
    assert_eq!(second.final_status, Some(200));
    let first_end = first.ended_at.unwrap();
    assert!(second.invited_at.unwrap() > first_end);

    let done = saved(&world, task);
    assert_eq!(done.state, TaskState::Done, "{done:?}");
    assert_eq!(done.preemptions, 1);
    assert_eq!(done.attempts, 1, "the preempted attempt is not counted");
    let record = world.callers[caller].record().unwrap();
    assert_eq!(record.final_status, Some(200));
    assert_eq!(record.ended_by, Some(Side::Local));
}

#[test]
fn a_restart_while_dialing_loses_no_task_and_dials_it_again_r20() {
    let (config, mut world) = world_with_callbacks(33);
    world.add_phone(PhoneScript {
        hangup_after: Some(30 * SECOND),
        ..agent_phone()
    });
    let citizen = world.add_phone_at(loopback(4, 8000), citizen(AnswerPolicy::After(8 * SECOND)));
    run(&mut world, 5 * SECOND);
    let task = create_task(&mut world);
    // Another task, not yet due, must survive too.
    let later = Utc.with_ymd_and_hms(2026, 12, 2, 9, 0, 0).unwrap();
    let reply = world.command(Command::Callbacks(CallbackCommand::Create(NewTask {
        work_order: parent_order(),
        number: "13700003333".parse().unwrap(),
        reason: Reason::Evaluation,
        window: Some(Window::new(later, later + chrono::Duration::hours(24)).unwrap()),
        owner: None,
        queue: "general".into(),
    })));
    assert!(matches!(
        reply,
        Some(Reply::Callbacks(CallbackReply::Task(t))) if t.is_ok()
    ));
    run(&mut world, 4 * SECOND);
    assert!(matches!(
        saved(&world, task).state,
        TaskState::Dialing { .. }
    ));

    world.restart(&config, Some(settings())).expect("restarts");
    let restored: Vec<TaskId> = world
        .engine
        .switch
        .callback_scheduler()
        .unwrap()
        .tasks()
        .map(|t| t.id)
        .collect();
    assert_eq!(restored, vec![task, TaskId(task.0 + 1)], "no task lost");
    assert_eq!(saved(&world, task).state, TaskState::Pending);

    // The agent's phone registers with the new engine and logs in again.
    world.add_phone(agent_phone());
    finish(&mut world);
    let done = saved(&world, task);
    assert_eq!(done.state, TaskState::Done, "{done:?}");
    assert_eq!(
        done.attempts, 1,
        "the attempt the restart cut is not counted"
    );
    let answered = world.phones[citizen]
        .received()
        .filter(|(call, _)| call.final_status == Some(200))
        .count();
    assert!(answered >= 1, "the citizen was reached after the restart");
    let pending = saved(&world, TaskId(task.0 + 1));
    assert_eq!(pending.state, TaskState::Pending);
}

#[test]
fn a_caller_who_hangs_up_in_the_queue_gets_a_missed_call_task_cancelled_when_they_get_through() {
    let (_, mut world) = world_with_callbacks(34);
    // The only agent logs in 40 s from now: until then callers wait.
    world.add_phone(PhoneScript {
        dials: vec![(40 * SECOND, "*21".to_string())],
        hangup_after: Some(5 * SECOND),
        ..agent_phone()
    });
    world.add_phone_at(loopback(4, 8000), citizen(AnswerPolicy::Never));
    let first = world.add_caller(CallerScript {
        hangup_after: Some(12 * SECOND),
        ..CallerScript::new("13800001111", "8890")
    });
    run(&mut world, 20 * SECOND);
    let order = world
        .order_of_caller(first)
        .expect("the first call's order");
    assert!(
        matches!(order.outcome, Some(CallOutcome::Abandoned { .. })),
        "{order:?}"
    );
    let tasks = world.saved_callbacks();
    let (&missed, task) = tasks.iter().next().expect("a missed-call task");
    assert_eq!(task.reason, Reason::MissedCall);
    assert_eq!(task.queue, "general");
    assert_eq!(task.owner, None, "any agent of the queue may call back");
    assert_eq!(task.number.dial_string(), "13800001111");
    assert_eq!(task.state, TaskState::Pending);

    // The same caller (with the country prefix this time) calls again and is
    // connected when the agent logs in: the missed-call task cancels itself.
    let second = world.add_caller(CallerScript {
        hangup_after: Some(60 * SECOND),
        ..CallerScript::new("+8613800001111", "8890")
    });
    finish(&mut world);
    let order = world
        .order_of_caller(second)
        .expect("the second call's order");
    assert_eq!(order.connected, ["1001"]);
    let task = saved(&world, missed);
    assert_eq!(task.state, TaskState::Cancelled, "{task:?}");
    assert_eq!(
        task.attempts, 0,
        "never dialled: the caller came first (R9)"
    );
    assert_eq!(world.phones[1].received().count(), 0);
}

#[test]
fn a_connected_callback_is_never_cut_for_an_inbound_call_r9() {
    let (_, mut world) = world_with_callbacks(35);
    world.add_phone(agent_phone());
    let citizen = world.add_phone_at(loopback(4, 8000), citizen(AnswerPolicy::After(SECOND)));
    run(&mut world, 5 * SECOND);
    let task = create_task(&mut world);
    run(&mut world, 5 * SECOND);
    assert!(
        matches!(saved(&world, task).state, TaskState::Connected { .. }),
        "agent and citizen talk"
    );
    let caller = world.add_caller(CallerScript {
        hangup_after: Some(60 * SECOND),
        ..CallerScript::new("13800001111", "8890")
    });
    finish(&mut world);

    let (talk, _) = world.phones[citizen]
        .received()
        .next()
        .expect("the callback");
    assert_eq!(
        talk.ended_by,
        Some(Side::Local),
        "the citizen hung up, not the engine"
    );
    let done = saved(&world, task);
    assert_eq!(done.state, TaskState::Done);
    assert_eq!(done.preemptions, 0);
    let order = world.order_of_caller(caller).expect("the caller's order");
    assert_eq!(
        order.connected,
        ["1001"],
        "the agent took the caller afterwards"
    );
    let record = world.callers[caller].record().unwrap();
    assert!(record.answered_at.is_some());
}

#[test]
fn an_agent_who_refuses_a_callback_is_not_rung_again_at_once_and_no_attempt_counts() {
    let (_, mut world) = world_with_callbacks(36);
    world.add_phone(PhoneScript {
        answer: AnswerPolicy::Refuse {
            status: 486,
            after: SECOND,
        },
        ..agent_phone()
    });
    world.add_phone_at(loopback(4, 8000), citizen(AnswerPolicy::After(SECOND)));
    run(&mut world, 5 * SECOND);
    let task = create_task(&mut world);
    run(&mut world, 20 * SECOND);
    assert_eq!(world.phones[0].received().count(), 1, "one ring in 20 s");
    let pending = saved(&world, task);
    assert_eq!(pending.state, TaskState::Pending);
    assert_eq!(pending.attempts, 0, "the citizen was never dialled");
    run(&mut world, 20 * SECOND);
    assert_eq!(
        world.phones[0].received().count(),
        2,
        "rung again after the pause"
    );
    assert_eq!(world.phones[1].received().count(), 0);
}

// ----- the reserve for due callbacks (R9's exception, off by default) ----------------

const PEAK_AGENTS: [&str; 3] = ["1001", "1002", "1003"];
/// Callers arrive every 30 s for 45 min; each agent talks 3 min: twice what the agents
/// can carry, so a queue stands all through the peak.
const PEAK_CALLERS: u32 = 90;
const PEAK_GAP: Duration = Duration::from_secs(30);
const PEAK_TALK: Duration = Duration::from_secs(180);
/// A caller waits at most 2 min in the queue (then the closing, and the hotline hangs
/// up): the callers who never reach an agent.
const PEAK_MAX_WAIT_SECONDS: u64 = 120;
/// Referral checks due from 5 min into the peak, their latest times 12, 17, … 37 min.
const PEAK_TASKS: u32 = 6;

#[derive(Debug)]
struct PeakFigures {
    callers: usize,
    /// Callers who reached an agent.
    connected: usize,
    /// Referral checks whose latest time came in the peak and that were not connected
    /// by then.
    overdue: usize,
    /// Callbacks connected in the peak.
    callbacks_connected: usize,
    /// The most referral checks dialing or connected at one moment of the peak.
    callbacks_at_once: usize,
}

impl PeakFigures {
    fn connection_rate(&self) -> f64 {
        self.connected as f64 / self.callers as f64
    }
}

/// The same peak, seed and tasks, with or without a reserve.
fn peak(reserve: Option<CallbackReserve>) -> PeakFigures {
    let mut settings = settings();
    settings.reserve = reserve;
    // Callers who give up get a missed-call task; give it a day, out of the reserve's
    // reach, so only the referral checks below compete for it.
    settings.missed_call = WindowOffsets {
        earliest: Duration::ZERO,
        latest: Duration::from_secs(24 * 3600),
    };
    let mut config = WorldConfig::new(41, PEAK_AGENTS.len());
    let mut agents = format!(
        "[[queues]]\nname = \"general\"\nstrategy = \"longest_idle\"\nmax_wait_seconds = {PEAK_MAX_WAIT_SECONDS}\noverflow = \"dialplan:closing\"\nwrap_up_seconds = 0\n"
    );
    for id in PEAK_AGENTS {
        agents.push_str(&format!(
            "\n[[agents]]\nid = \"{id}\"\npassword = \"pw{id}\"\nqueues = [\"general\"]\n"
        ));
    }
    config.agents = AgentsConfig::parse(Path::new("peak-agents.toml"), &agents).expect("agents");
    let mut world = World::new(config).expect("a valid switch");
    world.enable_callbacks(settings);
    for id in PEAK_AGENTS {
        let mut script = PhoneScript::new(id, &format!("pw{id}"), "127.0.0.1");
        script.answer = AnswerPolicy::After(SECOND);
        script.hangup_after = Some(PEAK_TALK);
        script.dials = vec![(SECOND, "*21".to_string())];
        world.add_phone(script);
    }
    world.add_phone_at(
        loopback(4, 8000),
        PhoneScript {
            hangup_after: Some(60 * SECOND),
            ..PhoneScript::callee(CITIZEN, AnswerPolicy::After(5 * SECOND))
        },
    );
    run(&mut world, 5 * SECOND);
    let start = Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 5).unwrap();
    let mut tasks = Vec::new();
    for n in 0..PEAK_TASKS {
        let earliest = start + chrono::Duration::minutes(5);
        let latest = start + chrono::Duration::minutes(12 + 5 * i64::from(n));
        let reply = world.command(Command::Callbacks(CallbackCommand::Create(NewTask {
            work_order: parent_order(),
            number: CITIZEN.parse().unwrap(),
            reason: Reason::ReferralCheck,
            window: Some(Window::new(earliest, latest).unwrap()),
            owner: None,
            queue: "general".into(),
        })));
        match reply {
            Some(Reply::Callbacks(CallbackReply::Task(task))) if task.is_ok() => {
                let id = (*task).unwrap().id;
                tasks.push(TaskId(id.trim_start_matches("cb-").parse().unwrap()));
            }
            other => panic!("create: {other:?}"),
        }
    }
    let callers: Vec<usize> = (0..PEAK_CALLERS)
        .map(|n| {
            world.add_caller(CallerScript {
                dial_after: PEAK_GAP * n,
                hangup_after: Some(Duration::from_secs(1800)),
                ..CallerScript::new("13800001111", "8890")
            })
        })
        .collect();
    let peak_end = start + chrono::Duration::minutes(45);
    run(&mut world, PEAK_GAP * PEAK_CALLERS);

    // When each referral check connected, and how many had an agent at once, from
    // their saves in order.
    let mut connected_at = BTreeMap::new();
    let mut with_agent = BTreeMap::new();
    let mut callbacks_at_once = 0;
    for write in &world.engine.store {
        let StoreWrite::Callback(task) = write else {
            continue;
        };
        if !tasks.contains(&task.id) {
            continue;
        }
        if matches!(task.state, TaskState::Connected { .. }) {
            connected_at.entry(task.id).or_insert(task.updated_at);
        }
        let busy = matches!(
            task.state,
            TaskState::Dialing { .. } | TaskState::Connected { .. }
        );
        with_agent.insert(task.id, busy);
        callbacks_at_once = callbacks_at_once.max(with_agent.values().filter(|b| **b).count());
    }
    let saved = world.saved_callbacks();
    let overdue = tasks
        .iter()
        .filter(|id| {
            let latest = saved[id].window.latest;
            latest <= peak_end && connected_at.get(id).is_none_or(|at| *at > latest)
        })
        .count();
    finish(&mut world);
    let connected = callers
        .iter()
        .filter(|&&caller| {
            world
                .order_of_caller(caller)
                .is_some_and(|order| !order.connected.is_empty())
        })
        .count();
    PeakFigures {
        callers: callers.len(),
        connected,
        overdue,
        callbacks_connected: connected_at.len(),
        callbacks_at_once,
    }
}

#[test]
fn the_reserve_keeps_referral_checks_on_time_through_an_inbound_peak_at_a_cost_r9() {
    let inbound_first = peak(None);
    let reserved = peak(Some(CallbackReserve {
        agents: 1,
        within: Duration::from_secs(600),
    }));
    println!(
        "inbound first: {inbound_first:?}, rate {:.3}; reserve 1 agent / 10 min: {reserved:?}, rate {:.3}",
        inbound_first.connection_rate(),
        reserved.connection_rate()
    );
    assert_eq!(
        inbound_first.overdue, PEAK_TASKS as usize,
        "off by default: a standing queue makes every follow-up overdue (R9)"
    );
    assert_eq!(inbound_first.callbacks_connected, 0);
    assert!(
        reserved.overdue < inbound_first.overdue / 2,
        "the reserve keeps most referral checks on time: {reserved:?}"
    );
    assert_eq!(
        reserved.callbacks_at_once, 1,
        "never more than the reserve's one agent"
    );
    let two = peak(Some(CallbackReserve {
        agents: 2,
        within: Duration::from_secs(600),
    }));
    println!(
        "reserve 2 agents / 10 min: {two:?}, rate {:.3}",
        two.connection_rate()
    );
    assert!(two.callbacks_at_once <= 2, "never more than two: {two:?}");
    assert!(two.overdue <= reserved.overdue);
    assert!(
        reserved.connection_rate() < inbound_first.connection_rate(),
        "and inbound callers pay for it: {reserved:?} vs {inbound_first:?}"
    );
}
