//! The whole engine under simulation (issue 7): the real switch core, simulated trunk
//! callers and agent phones speaking real SIP text, a seeded network that loses,
//! duplicates and reorders, and a simulated clock. Each flow runs in milliseconds; the
//! invariants (no call lost, no agent with two calls, every transaction ends, no timer
//! outlives its call, work orders written in a possible order) are checked after
//! every step by `hotline::sim::world`.
//!
//! `random_flows_hold_every_invariant` runs 1,000 seeds (or `SIM_SEEDS`). A failing
//! seed prints itself with its trace; `SIM_SEED=<n> cargo test --test simulation`
//! replays exactly that seed.

use std::time::Duration;

use hotline::sim::ua::{Direction, EndReason, Side};
use hotline::sim::world::{World, WorldConfig, seed_from_env};
use hotline::sim::{AnswerPolicy, CallerScript, LinkConfig, PhoneScript, SimRng, loopback};
use hotline::switch::{Command, Reply};
use hotline::workorder::CallOutcome;

const SECOND: Duration = Duration::from_secs(1);

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn world(seed: u64, agents: usize) -> World {
    World::new(WorldConfig::new(seed, agents)).expect("a valid switch")
}

fn lossy_world(seed: u64, agents: usize, loss: f64) -> World {
    let mut config = WorldConfig::new(seed, agents);
    config.link = LinkConfig::lossy(loss);
    World::new(config).expect("a valid switch")
}

/// Agent `id`'s phone: registers with digest at once, logs in with `*21` a second
/// later, and treats calls as `answer` says.
fn agent(id: u32, answer: AnswerPolicy) -> PhoneScript {
    let mut script = PhoneScript::new(&id.to_string(), &format!("pw{id}"), "127.0.0.1");
    script.answer = answer;
    script.dials = vec![(SECOND, "*21".to_string())];
    script
}

fn caller(number: &str) -> CallerScript {
    CallerScript::new(number, "8890")
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

fn agent_state(world: &mut World, id: &str) -> (&'static str, Option<&'static str>) {
    match world.command(Command::Status) {
        Some(Reply::Status { agents, .. }) => agents
            .iter()
            .find(|a| a.id == id)
            .map(|a| (a.state, a.reason))
            .expect("the agent is configured"),
        other => panic!("status: {other:?}"),
    }
}

/// Agents registered and logged in by feature code, then the callers.
fn logged_in(world: &mut World, phones: &[PhoneScript]) {
    for phone in phones {
        world.add_phone(phone.clone());
    }
    run(world, 5 * SECOND);
    for phone in phones {
        assert_eq!(
            agent_state(world, &phone.user).0,
            "available",
            "agent {} logged in by *21\n{}",
            phone.user,
            world.report()
        );
    }
}

#[test]
fn an_inbound_call_is_answered_inside_the_ring_budget_and_connected_r6() {
    let mut world = world(1, 1);
    logged_in(&mut world, &[agent(1001, AnswerPolicy::After(2 * SECOND))]);
    let c = world.add_caller(CallerScript {
        hangup_after: Some(30 * SECOND),
        ..caller("13800001111")
    });
    finish(&mut world);
    let record = world.callers[c].record().unwrap().clone();
    let answered = record.answered_at.unwrap() - record.invited_at.unwrap();
    assert!(answered <= 10 * SECOND, "answered after {answered:?} (R6)");
    assert_eq!(record.ended_by, Some(Side::Local));
    let order = world.order_of_caller(c).expect("a work order (R10)");
    assert!(order.answered);
    assert_eq!(order.connected, vec!["1001".to_string()]);
    assert_eq!(order.outcome, Some(CallOutcome::Answered));
    let (agent_call, _) = world.phones[0]
        .received()
        .next()
        .expect("the agent was rung");
    assert_eq!(agent_call.final_status, Some(200));
    assert_eq!(agent_call.ended_by, Some(Side::Remote));
}

#[test]
fn waiting_callers_hear_their_position_at_every_interval() {
    let mut world = world(2, 1);
    let mut busy = agent(1001, AnswerPolicy::After(SECOND));
    busy.hangup_after = Some(Duration::from_secs(90));
    logged_in(&mut world, &[busy]);
    for (index, number) in ["13800000001", "13800000002", "13800000003"]
        .into_iter()
        .enumerate()
    {
        world.add_caller(CallerScript {
            dial_after: Duration::from_secs(5 * index as u64),
            hangup_after: Some(Duration::from_secs(200)),
            ..caller(number)
        });
    }
    finish(&mut world);
    // Customer legs are started recorded in the order the callers were answered.
    let log = world.engine.media_log().to_vec();
    let customer_legs: Vec<_> = log
        .iter()
        .filter(|e| e.what == "start-recorded")
        .map(|e| e.leg)
        .collect();
    assert_eq!(customer_legs.len(), 3, "{}", world.report());
    let positions = |leg| {
        log.iter()
            .filter(|e| e.leg == leg && e.what.starts_with("play:position"))
            .map(|e| (e.at, e.what.clone()))
            .collect::<Vec<_>>()
    };
    // The third caller waits behind the second while the agent talks to the first.
    let third = positions(customer_legs[2]);
    assert!(
        third.len() >= 3,
        "the last caller waits long: {third:?}\n{}",
        world.report()
    );
    for pair in third.windows(2) {
        assert!(
            pair[1].0 - pair[0].0 >= Duration::from_secs(20),
            "{third:?}"
        );
    }
    assert_eq!(
        third[0].1,
        "play:position-1",
        "one caller ahead\n{}",
        world.report()
    );
    for c in 0..3 {
        let order = world.order_of_caller(c).expect("work order");
        assert_eq!(
            order.connected,
            vec!["1001".to_string()],
            "caller {c} served in turn"
        );
    }
}

#[test]
fn a_ring_timeout_moves_the_call_to_the_next_agent_r6() {
    let mut world = world(3, 2);
    let sleepy = agent(1001, AnswerPolicy::Never);
    let mut awake = agent(1002, AnswerPolicy::After(2 * SECOND));
    awake.dials = vec![(2 * SECOND, "*21".to_string())]; // idle for less time
    logged_in(&mut world, &[sleepy, awake]);
    let c = world.add_caller(CallerScript {
        hangup_after: Some(20 * SECOND),
        ..caller("13800001111")
    });
    finish(&mut world);
    let order = world.order_of_caller(c).unwrap();
    assert_eq!(
        order.connected,
        vec!["1002".to_string()],
        "{}",
        world.report()
    );
    let (rung, _) = world.phones[0].received().next().expect("1001 rang first");
    assert_eq!(
        rung.final_status,
        Some(487),
        "cancelled at the ring timeout"
    );
    let rang_for = rung.ended_at.unwrap() - rung.invited_at.unwrap();
    assert!(
        rang_for >= 10 * SECOND && rang_for < 11 * SECOND,
        "{rang_for:?}"
    );
    assert_eq!(
        agent_state(&mut world, "1001"),
        ("paused", Some("no_answer"))
    );
}

#[test]
fn a_cancel_crossing_the_200_is_acknowledged_and_hung_up_once() {
    // Probe when the 200 reaches the caller, then replay the seed with a CANCEL that
    // leaves half a millisecond before it arrives.
    let probe = {
        let mut world = world(4, 0);
        let c = world.add_caller(caller("13800001111"));
        run(&mut world, 5 * SECOND);
        let record = world.callers[c].record().unwrap();
        record.answered_at.expect("the IVR answers") - record.invited_at.unwrap()
    };
    let mut world = world(4, 0);
    let c = world.add_caller(CallerScript {
        cancel_after: Some(probe - secs(0.0005)),
        ..caller("13800001111")
    });
    finish(&mut world);
    let record = world.callers[c].record().unwrap();
    assert!(record.cancel_sent);
    assert_eq!(
        record.cancel_status,
        Some(200),
        "the INVITE transaction was alive"
    );
    assert_eq!(record.final_status, Some(200), "the 200 had left");
    assert_eq!(record.ended_by, Some(Side::Local), "ACK then BYE");
    let order = world.order_of_caller(c).unwrap();
    assert!(order.answered);
    assert_eq!(order.ends, 1);
}

/// A caller whose BYE crosses the switch's: the agent hangs up at 20 s and the
/// caller's BYE leaves half a millisecond before the switch's reaches it. Returns the
/// world after the run and the caller.
fn bye_crossing_bye() -> (World, usize) {
    let agent_hangs_up = || {
        let mut phone = agent(1001, AnswerPolicy::After(SECOND));
        phone.hangup_after = Some(20 * SECOND);
        phone
    };
    let probe = {
        let mut world = world(5, 1);
        logged_in(&mut world, &[agent_hangs_up()]);
        let c = world.add_caller(caller("13800001111"));
        finish(&mut world);
        let record = world.callers[c].record().unwrap();
        assert_eq!(record.ended_by, Some(Side::Remote), "{}", world.report());
        record.ended_at.unwrap() - record.answered_at.unwrap()
    };
    let mut world = world(5, 1);
    logged_in(&mut world, &[agent_hangs_up()]);
    let c = world.add_caller(CallerScript {
        hangup_after: Some(probe - secs(0.0005)),
        ..caller("13800001111")
    });
    finish(&mut world);
    (world, c)
}

#[test]
fn a_bye_crossing_a_bye_ends_the_call_once() {
    let (world, c) = bye_crossing_bye();
    let record = world.callers[c].record().unwrap();
    assert!(
        record.bye_sent && record.bye_received,
        "crossed: {record:?}"
    );
    assert!(record.bye_status.is_some(), "our BYE got a final response");
    let order = world.order_of_caller(c).unwrap();
    assert_eq!(
        (order.ends, order.outcome),
        (1, Some(CallOutcome::Answered))
    );
}

#[test]
fn a_bye_crossing_a_bye_is_answered_200_or_481_rfc3261_15_1_2() {
    let (world, c) = bye_crossing_bye();
    let record = world.callers[c].record().unwrap();
    // A UA answers BYE 2xx; one that already forgot the dialog says 481. A 5xx leaves
    // the peer guessing.
    assert!(
        matches!(record.bye_status, Some(200 | 481)),
        "the crossing BYE got {:?}\n{}",
        record.bye_status,
        world.report()
    );
}

#[test]
fn an_answer_crossing_the_withdrawal_is_hung_up_and_not_the_owner_r7() {
    let setup = |answer| {
        let mut world = world(6, 2);
        let first = agent(1001, answer);
        let mut second = agent(1002, AnswerPolicy::After(2 * SECOND));
        second.dials = vec![(2 * SECOND, "*21".to_string())];
        logged_in(&mut world, &[first, second]);
        let c = world.add_caller(CallerScript {
            hangup_after: Some(60 * SECOND),
            ..caller("13800001111")
        });
        (world, c)
    };
    // When does the CANCEL of the ring timeout reach agent 1001's phone?
    let cancel_arrives = {
        let (mut world, _) = setup(AnswerPolicy::Never);
        finish(&mut world);
        let (rung, _) = world.phones[0].received().next().unwrap();
        assert_eq!(rung.final_status, Some(487));
        rung.ended_at.unwrap() - rung.invited_at.unwrap()
    };
    // Answer half a millisecond before it arrives: the 200 and the CANCEL cross.
    let (mut world, c) = setup(AnswerPolicy::After(cancel_arrives - secs(0.0005)));
    finish(&mut world);
    let (late, _) = world.phones[0].received().next().unwrap();
    assert_eq!(late.final_status, Some(200), "the phone did answer");
    assert_eq!(late.ended_by, Some(Side::Remote), "and was hung up");
    let order = world.order_of_caller(c).unwrap();
    assert_eq!(
        order.connected,
        vec!["1002".to_string()],
        "the late answer is not the owner, and the call is connected once (R7)"
    );
}

#[test]
fn a_phone_that_unregisters_while_it_rings_loses_the_call_to_the_next_agent() {
    let mut world = world(7, 2);
    let mut leaving = agent(1001, AnswerPolicy::Never);
    if let Some(register) = &mut leaving.register {
        register.unregister_after = Some(Duration::from_secs(14));
    }
    let mut staying = agent(1002, AnswerPolicy::After(2 * SECOND));
    staying.dials = vec![(2 * SECOND, "*21".to_string())];
    logged_in(&mut world, &[leaving, staying]);
    let c = world.add_caller(CallerScript {
        hangup_after: Some(30 * SECOND),
        ..caller("13800001111")
    });
    finish(&mut world);
    assert!(!world.phones[0].registration().registered);
    let (rung, _) = world.phones[0].received().next().expect("1001 was rung");
    assert!(rung.answered_at.is_none());
    let order = world.order_of_caller(c).unwrap();
    assert_eq!(
        order.connected,
        vec!["1002".to_string()],
        "{}",
        world.report()
    );
}

/// A caller that puts the hotline on hold at 10 s, takes it off at 20 s and hangs up
/// at 30 s.
fn hold_and_unhold() -> (World, usize) {
    let mut world = world(8, 1);
    logged_in(&mut world, &[agent(1001, AnswerPolicy::After(SECOND))]);
    let c = world.add_caller(CallerScript {
        hold_after: Some(10 * SECOND),
        unhold_after: Some(20 * SECOND),
        hangup_after: Some(30 * SECOND),
        ..caller("13800001111")
    });
    finish(&mut world);
    (world, c)
}

#[test]
fn hold_and_unhold_by_re_invite_pause_and_resume_the_media() {
    let (world, c) = hold_and_unhold();
    let record = world.callers[c].record().unwrap();
    assert_eq!(
        record.reinvites_sent,
        vec![(Direction::SendOnly, 200), (Direction::SendRecv, 200)]
    );
    let holds: Vec<_> = world
        .engine
        .media_log()
        .iter()
        .filter(|e| e.what == "hold" || e.what == "unhold")
        .map(|e| e.what.as_str())
        .collect();
    assert_eq!(holds, vec!["hold", "unhold"], "{}", world.report());
    assert_eq!(
        record.ended_by,
        Some(Side::Local),
        "the call went on after the hold"
    );
    assert_eq!(
        world.order_of_caller(c).unwrap().outcome,
        Some(CallOutcome::Answered)
    );
}

#[test]
fn a_hold_offer_is_answered_recvonly_rfc3264_6_1() {
    let (world, c) = hold_and_unhold();
    let record = world.callers[c].record().unwrap();
    assert_eq!(
        record.answer_directions,
        vec![Direction::RecvOnly, Direction::SendRecv],
        "{}",
        world.report()
    );
}

#[test]
fn a_refreshed_session_lasts_and_a_silent_peer_is_hung_up_with_the_reason() {
    let mut world = world(9, 1);
    logged_in(&mut world, &[agent(1001, AnswerPolicy::After(SECOND))]);
    let refreshing = world.add_caller(CallerScript {
        session_expires: Some(90),
        hangup_after: Some(Duration::from_secs(300)),
        ..caller("13800000001")
    });
    finish(&mut world);
    let record = world.callers[refreshing].record().unwrap();
    assert!(
        record.session.is_some(),
        "the switch agreed a session timer: {record:?}"
    );
    assert!(record.refreshes_sent >= 3, "{record:?}");
    assert_eq!(
        record.ended_by,
        Some(Side::Local),
        "the refreshes kept it up"
    );

    let mut world = self::world(10, 1);
    logged_in(&mut world, &[agent(1001, AnswerPolicy::After(SECOND))]);
    let silent = world.add_caller(CallerScript {
        session_expires: Some(90),
        refresh: false,
        hangup_after: Some(Duration::from_secs(600)),
        ..caller("13800000002")
    });
    finish(&mut world);
    let record = world.callers[silent].record().unwrap();
    assert_eq!(record.ended_by, Some(Side::Remote), "{}", world.report());
    let lasted = record.ended_at.unwrap() - record.answered_at.unwrap();
    assert!(
        lasted <= Duration::from_secs(90),
        "hung up before the session ran out"
    );
    let order = world.order_of_caller(silent).unwrap();
    assert!(order.reason.is_some(), "the work order says why: {order:?}");
}

#[test]
fn an_outbound_call_from_the_api_rings_the_agent_then_the_destination_r16() {
    let mut world = world(11, 1);
    logged_in(&mut world, &[agent(1001, AnswerPolicy::After(SECOND))]);
    let destination = world.add_phone_at(
        loopback(4, 8000),
        PhoneScript {
            hangup_after: Some(20 * SECOND),
            ..PhoneScript::callee("13900002222", AnswerPolicy::After(3 * SECOND))
        },
    );
    let reply = world.command(Command::Originate {
        agent: "1001".into(),
        destination: "sip:13900002222@127.0.0.4:8000".into(),
        caller_id: None,
    });
    let Some(Reply::Originated(Ok(id))) = reply else {
        panic!("originate: {reply:?}");
    };
    finish(&mut world);
    let (agent_leg, _) = world.phones[0].received().next().expect("the agent first");
    let (far_end, _) = world.phones[destination]
        .received()
        .next()
        .expect("then the destination");
    assert!(agent_leg.answered_at.unwrap() <= far_end.invited_at.unwrap());
    assert_eq!(far_end.ended_by, Some(Side::Local));
    let order = &world.orders()[&id];
    assert_eq!(order.connected, vec!["1001".to_string()]);
    assert_eq!(order.outcome, Some(CallOutcome::Answered));
}

#[test]
fn calls_survive_20_percent_loss_duplication_and_reordering() {
    let mut world = lossy_world(12, 3, 0.2);
    let phones: Vec<_> = (1001..=1003)
        .map(|id| {
            let mut phone = agent(id, AnswerPolicy::After(2 * SECOND));
            phone.hangup_after = Some(40 * SECOND);
            phone
        })
        .collect();
    for phone in &phones {
        world.add_phone(phone.clone());
    }
    run(&mut world, 20 * SECOND);
    for index in 0..6u64 {
        world.add_caller(CallerScript {
            dial_after: Duration::from_secs(10 * index),
            ..caller(&format!("1380000000{index}"))
        });
    }
    finish(&mut world);
    let counters = world.stage.network.counters();
    assert!(
        counters.lost > 20 && counters.duplicated > 20,
        "{counters:?}"
    );
    for c in 0..6 {
        let record = world.callers[c].record().unwrap();
        assert_eq!(
            record.final_status,
            Some(200),
            "caller {c}\n{}",
            world.report()
        );
        let order = world.order_of_caller(c).unwrap();
        assert_eq!(order.connected.len(), 1, "caller {c} reached an agent");
        assert_eq!(order.ends, 1);
    }
}

// ---- random flows ------------------------------------------------------------------

/// A world drawn from `seed`: a few agents with random habits, a few callers with
/// random scripts, a clean or a lossy network.
/// An outbound call the API places during a random run: when, for which agent, and
/// the destination's phone.
struct Originate {
    at: Duration,
    agent: String,
    destination: String,
}

fn random_world(seed: u64) -> (World, Option<Originate>) {
    let mut rng = SimRng::new(seed ^ 0x5EED);
    let agents = 1 + rng.below(3) as usize;
    let mut config = WorldConfig::new(seed, agents);
    config.link = match rng.below(3) {
        0 => LinkConfig::perfect(),
        1 => LinkConfig::lossy(0.05),
        _ => LinkConfig::lossy(0.2),
    };
    let mut world = World::new(config).expect("a valid switch");
    for index in 0..agents {
        let answer = match rng.below(5) {
            0 => AnswerPolicy::Never,
            1 => AnswerPolicy::Refuse {
                status: if rng.chance(0.5) { 486 } else { 603 },
                after: rng.duration_between(Duration::ZERO, 5 * SECOND),
            },
            _ => AnswerPolicy::After(rng.duration_between(Duration::ZERO, 12 * SECOND)),
        };
        let mut phone = agent(1001 + index as u32, answer);
        phone.dials = vec![(rng.duration_between(SECOND, 5 * SECOND), "*21".into())];
        if rng.chance(0.2) {
            phone.transport = hotline::sip::TransportKind::Tcp;
        }
        if rng.chance(0.5) {
            phone.hangup_after = Some(rng.duration_between(SECOND, 60 * SECOND));
        }
        if rng.chance(0.15)
            && let Some(register) = &mut phone.register
        {
            register.unregister_after = Some(rng.duration_between(10 * SECOND, 120 * SECOND));
        }
        world.add_phone(phone);
    }
    let callers = 1 + rng.below(4);
    for index in 0..callers {
        let mut script = caller(&format!("1390000{index:04}"));
        script.dial_after = rng.duration_between(5 * SECOND, 60 * SECOND);
        script.late_offer = rng.chance(0.2);
        if rng.chance(0.2) {
            script.transport = hotline::sip::TransportKind::Tcp;
        }
        if rng.chance(0.2) {
            script.cancel_after = Some(rng.duration_between(Duration::ZERO, 5 * SECOND));
        }
        // Every call ends by the script (or by an agent), well inside the maximum
        // call length.
        script.hangup_after = Some(rng.duration_between(SECOND, 120 * SECOND));
        if rng.chance(0.2) {
            script.hold_after = Some(rng.duration_between(SECOND, 30 * SECOND));
            script.unhold_after = Some(rng.duration_between(SECOND, 60 * SECOND));
        }
        if rng.chance(0.2) {
            script.session_expires = Some(90 + rng.below(60) as u32);
            script.refresh = rng.chance(0.7);
        }
        world.add_caller(script);
    }
    // Now and then an agent also calls out (R16): a destination behind a trunk.
    let originate = rng.chance(0.25).then(|| {
        let answer = if rng.chance(0.8) {
            AnswerPolicy::After(rng.duration_between(Duration::ZERO, 8 * SECOND))
        } else {
            AnswerPolicy::Refuse {
                status: 486,
                after: SECOND,
            }
        };
        let destination = PhoneScript {
            hangup_after: Some(rng.duration_between(SECOND, 60 * SECOND)),
            ..PhoneScript::callee("13900002222", answer)
        };
        world.add_phone_at(loopback(4, 8000), destination);
        Originate {
            at: rng.duration_between(6 * SECOND, 90 * SECOND),
            agent: format!("{}", 1001 + rng.below(agents as u64)),
            destination: "sip:13900002222@127.0.0.4:8000".into(),
        }
    });
    (world, originate)
}

fn run_seed(seed: u64) -> Result<(), String> {
    let (mut world, originate) = random_world(seed);
    if let Some(originate) = originate {
        world
            .run_for(originate.at)
            .map_err(|failure| failure.to_string())?;
        // The agent may be busy, paused or logged out: any reply is fine, the
        // invariants are what is checked.
        let reply = world.command(Command::Originate {
            agent: originate.agent,
            destination: originate.destination,
            caller_id: None,
        });
        if !matches!(reply, Some(Reply::Originated(_))) {
            return Err(format!("seed {seed}: originate answered {reply:?}"));
        }
    }
    world
        .finish(Duration::from_secs(3600))
        .map_err(|failure| failure.to_string())?;
    for (index, caller) in world.callers.iter().enumerate() {
        let record = caller
            .record()
            .ok_or(format!("seed {seed}: caller {index} never dialled"))?;
        if record.end_reason.is_none() {
            return Err(format!(
                "seed {seed}: caller {index} has no end\n{}",
                world.report()
            ));
        }
        if record.end_reason == Some(EndReason::Timeout) {
            return Err(format!(
                "seed {seed}: caller {index} got no answer at all\n{}",
                world.report()
            ));
        }
    }
    Ok(())
}

fn seeds() -> Vec<u64> {
    match seed_from_env() {
        Some(seed) => vec![seed],
        None => {
            let count = std::env::var("SIM_SEEDS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000u64);
            (0..count).collect()
        }
    }
}

#[test]
fn random_flows_hold_every_invariant() {
    for seed in seeds() {
        if let Err(failure) = run_seed(seed) {
            panic!("{failure}\nreplay: SIM_SEED={seed} cargo test --test simulation random_flows");
        }
    }
}

#[test]
fn callers_and_phones_over_tcp_are_served_without_retransmissions() {
    let mut world = lossy_world(13, 1, 0.3);
    let mut phone = agent(1001, AnswerPolicy::After(SECOND));
    phone.transport = hotline::sip::TransportKind::Tcp;
    logged_in(&mut world, &[phone]);
    let c = world.add_caller(CallerScript {
        transport: hotline::sip::TransportKind::Tcp,
        hangup_after: Some(20 * SECOND),
        ..caller("13800001111")
    });
    finish(&mut world);
    let record = world.callers[c].record().unwrap();
    assert_eq!(record.final_status, Some(200), "{}", world.report());
    assert_eq!(
        world.order_of_caller(c).unwrap().connected,
        vec!["1001".to_string()]
    );
    let counters = world.stage.network.counters();
    assert_eq!(
        (counters.lost, counters.duplicated),
        (0, 0),
        "TCP loses nothing"
    );
}

#[test]
fn a_call_cut_at_the_maximum_length_frees_its_agent_only_once_the_leg_has_ended() {
    let mut config = WorldConfig::new(14, 1);
    config.settings.max_call_length = Duration::from_secs(60);
    let mut world = World::new(config).expect("a valid switch");
    logged_in(&mut world, &[agent(1001, AnswerPolicy::After(SECOND))]);
    for index in 0..2u64 {
        world.add_caller(CallerScript {
            dial_after: Duration::from_secs(5 * index),
            ..caller(&format!("1380000000{index}"))
        });
    }
    // The invariants (no agent in two calls) are checked after every step.
    finish(&mut world);
    for c in 0..2 {
        assert_eq!(
            world.order_of_caller(c).unwrap().connected,
            vec!["1001".to_string()]
        );
    }
}

#[test]
fn a_caller_hanging_up_before_the_agents_phone_answers_anything_still_cancels_it_rfc3261_9_1() {
    // The switch's INVITE takes 300 ms to reach the agent's phone.
    let setup = |hangup_after: Option<Duration>| {
        let mut world = world(15, 1);
        let phone = world.add_phone(agent(1001, AnswerPolicy::Never));
        let phone_addr = hotline::sim::Node::addr(&world.phones[phone]);
        let mut slow = LinkConfig::perfect();
        slow.latency = Duration::from_millis(300);
        world
            .stage
            .network
            .set_directed_link(hotline::sim::world::ENGINE_ADDR, phone_addr, slow);
        run(&mut world, 5 * SECOND);
        let c = world.add_caller(CallerScript {
            hangup_after,
            ..caller("13800001111")
        });
        (world, c)
    };
    let invite_sent_after_answer = {
        let (mut world, c) = setup(None);
        run(&mut world, 60 * SECOND);
        let answered = world.callers[c].record().unwrap().answered_at.unwrap();
        let (rung, _) = world.phones[0]
            .received()
            .next()
            .expect("the agent is rung");
        rung.invited_at.unwrap() - Duration::from_millis(300) - answered
    };
    // The caller's BYE reaches the switch 51 ms after its INVITE left for the phone,
    // long before the phone's 180 comes back.
    let (mut world, _) = setup(Some(invite_sent_after_answer + Duration::from_millis(50)));
    finish(&mut world);
    let (rung, _) = world.phones[0]
        .received()
        .next()
        .expect("the agent was rung");
    assert_eq!(rung.final_status, Some(487), "cancelled once it rang");
}

#[test]
fn an_outbound_call_the_agent_gives_up_on_is_not_answered_r16() {
    let mut world = world(16, 1);
    let mut impatient = agent(1001, AnswerPolicy::After(SECOND));
    impatient.hangup_after = Some(5 * SECOND);
    logged_in(&mut world, &[impatient]);
    world.add_phone_at(
        loopback(4, 8000),
        PhoneScript::callee("13900002222", AnswerPolicy::Never),
    );
    let reply = world.command(Command::Originate {
        agent: "1001".into(),
        destination: "sip:13900002222@127.0.0.4:8000".into(),
        caller_id: None,
    });
    let Some(Reply::Originated(Ok(id))) = reply else {
        panic!("originate: {reply:?}");
    };
    // The invariants include: an order that ends answered was answered.
    finish(&mut world);
    let order = &world.orders()[&id];
    assert!(!order.answered);
    assert_ne!(order.outcome, Some(CallOutcome::Answered));
}
