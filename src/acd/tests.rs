//! Unit tests of the ACD core with a simulated clock.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn queue(name: &str, strategy: Strategy) -> QueueConfig {
    QueueConfig {
        name: name.to_owned(),
        required_skills: BTreeMap::new(),
        strategy,
        max_wait: secs(120),
        overflow: None,
        wrap_up: Duration::ZERO,
    }
}

fn agent(id: &str, queues: &[&str]) -> AgentConfig {
    AgentConfig {
        id: id.to_owned(),
        skills: BTreeMap::new(),
        queues: queues.iter().map(|q| (*q).to_owned()).collect(),
        penalty: 0,
    }
}

fn config(queues: Vec<QueueConfig>, agents: Vec<AgentConfig>) -> AcdConfig {
    AcdConfig {
        queues,
        agents,
        agent_ring_timeout: DEFAULT_AGENT_RING_TIMEOUT,
    }
}

fn drain(acd: &mut Acd) -> Vec<AcdAction> {
    std::iter::from_fn(|| acd.poll_action()).collect()
}

/// The offers among `actions`, as `(call, agent)`.
fn offers(actions: &[AcdAction]) -> Vec<(CallKey, String)> {
    actions
        .iter()
        .filter_map(|action| match action {
            AcdAction::Offer { call, agent } => Some((*call, agent.clone())),
            _ => None,
        })
        .collect()
}

fn offer(call: CallKey, agent: &str) -> (CallKey, String) {
    (call, agent.to_owned())
}

/// Registers the agent's phone and logs them in.
fn ready(acd: &mut Acd, now: Instant, id: &str) {
    acd.set_registered(now, id, true).expect("known agent");
    acd.login(now, id).expect("known agent");
}

fn state(acd: &Acd, id: &str) -> AgentState {
    acd.agent(id).expect("known agent").state
}

/// Answers `call` by `agent` and ends it at once.
fn take_call(acd: &mut Acd, now: Instant, call: CallKey, agent: &str) {
    acd.offer_answered(now, call, agent).expect("offer rings");
    acd.call_ended(now, call).expect("connected");
}

#[test]
fn longest_idle_offers_the_agent_available_longest() {
    let t0 = Instant::now();
    let mut acd = Acd::new(config(
        vec![queue("q", Strategy::LongestIdle)],
        vec![
            agent("1001", &["q"]),
            agent("1002", &["q"]),
            agent("1003", &["q"]),
        ],
    ))
    .unwrap();
    ready(&mut acd, t0, "1002");
    ready(&mut acd, t0 + secs(1), "1001");
    ready(&mut acd, t0 + secs(2), "1003");
    drain(&mut acd);
    acd.enqueue(t0 + secs(3), 1, "q", 0).unwrap();
    assert_eq!(offers(&drain(&mut acd)), vec![offer(1, "1002")]);
    acd.enqueue(t0 + secs(3), 2, "q", 0).unwrap();
    assert_eq!(offers(&drain(&mut acd)), vec![offer(2, "1001")]);
}

#[test]
fn round_robin_rotates_in_config_order() {
    let t0 = Instant::now();
    let mut acd = Acd::new(config(
        vec![queue("q", Strategy::RoundRobin)],
        vec![
            agent("1001", &["q"]),
            agent("1002", &["q"]),
            agent("1003", &["q"]),
        ],
    ))
    .unwrap();
    // Ready in reverse order, so longest idle would start with 1003.
    for id in ["1003", "1002", "1001"] {
        ready(&mut acd, t0, id);
    }
    drain(&mut acd);
    let mut offered = Vec::new();
    for call in 1..=5 {
        acd.enqueue(t0, call, "q", 0).unwrap();
        let made = offers(&drain(&mut acd));
        assert_eq!(made.len(), 1);
        offered.push(made[0].1.clone());
        take_call(&mut acd, t0, call, &made[0].1);
    }
    assert_eq!(offered, ["1001", "1002", "1003", "1001", "1002"]);
}

#[test]
fn round_robin_skips_an_agent_who_is_busy() {
    let t0 = Instant::now();
    let mut acd = Acd::new(config(
        vec![queue("q", Strategy::RoundRobin)],
        vec![
            agent("1001", &["q"]),
            agent("1002", &["q"]),
            agent("1003", &["q"]),
        ],
    ))
    .unwrap();
    for id in ["1001", "1002", "1003"] {
        ready(&mut acd, t0, id);
    }
    acd.enqueue(t0, 1, "q", 0).unwrap();
    acd.offer_answered(t0, 1, "1001").unwrap();
    acd.enqueue(t0, 2, "q", 0).unwrap();
    acd.offer_answered(t0, 2, "1002").unwrap();
    acd.call_ended(t0, 1).unwrap();
    drain(&mut acd);
    // The cursor is after 1002: 1003 next, then round to 1001 (1002 is on a call).
    acd.enqueue(t0, 3, "q", 0).unwrap();
    acd.enqueue(t0, 4, "q", 0).unwrap();
    assert_eq!(
        offers(&drain(&mut acd)),
        vec![offer(3, "1003"), offer(4, "1001")]
    );
}

#[test]
fn fewest_calls_offers_the_agent_with_fewest_answered_calls() {
    let t0 = Instant::now();
    let mut acd = Acd::new(config(
        vec![queue("q", Strategy::FewestCalls)],
        vec![
            agent("1001", &["q"]),
            agent("1002", &["q"]),
            agent("1003", &["q"]),
        ],
    ))
    .unwrap();
    ready(&mut acd, t0, "1001");
    ready(&mut acd, t0, "1002");
    // 1001 takes two calls, 1002 one.
    for (call, id) in [(1, "1001"), (2, "1002"), (3, "1001")] {
        acd.enqueue(t0, call, "q", 0).unwrap();
        let made = offers(&drain(&mut acd));
        assert_eq!(made, vec![offer(call, id)], "call {call}");
        take_call(&mut acd, t0, call, id);
    }
    // 1003 arrives last (least idle) but has taken no call.
    ready(&mut acd, t0 + secs(5), "1003");
    drain(&mut acd);
    acd.enqueue(t0 + secs(6), 4, "q", 0).unwrap();
    assert_eq!(offers(&drain(&mut acd)), vec![offer(4, "1003")]);
    assert_eq!(acd.agent("1001").unwrap().calls_taken, 2);
}

#[test]
fn skills_weighted_prefers_low_penalty_then_high_skill_and_requires_the_skill() {
    let t0 = Instant::now();
    let mut legal = queue("legal", Strategy::SkillsWeighted);
    legal.required_skills.insert("law".into(), 3);
    let with = |id: &str, level: Option<u8>, penalty: u32| {
        let mut a = agent(id, &["legal"]);
        if let Some(level) = level {
            a.skills.insert("law".into(), level);
        }
        a.penalty = penalty;
        a
    };
    let mut acd = Acd::new(config(
        vec![legal],
        vec![
            with("1001", Some(10), 1), // the most skilled, but penalised
            with("1002", Some(4), 0),
            with("1003", Some(7), 0),
            with("1004", Some(2), 0), // below the minimum
            with("1005", None, 0),    // lacks the skill
        ],
    ))
    .unwrap();
    for id in ["1004", "1005", "1002", "1001", "1003"] {
        ready(&mut acd, t0, id);
    }
    drain(&mut acd);
    let mut offered = Vec::new();
    for call in 1..=5 {
        acd.enqueue(t0, call, "legal", 0).unwrap();
        offered.extend(offers(&drain(&mut acd)).into_iter().map(|(_, a)| a));
    }
    assert_eq!(offered, ["1003", "1002", "1001"]);
    assert_eq!(acd.position(4), Some(1));
    assert_eq!(acd.agent("1004").unwrap().queues, Vec::<String>::new());
}

#[test]
fn urgent_calls_jump_ahead_and_equal_priorities_stay_fifo() {
    let t0 = Instant::now();
    let mut acd = Acd::new(config(
        vec![queue("q", Strategy::LongestIdle)],
        vec![agent("1001", &["q"])],
    ))
    .unwrap();
    acd.enqueue(t0, 1, "q", 0).unwrap();
    acd.enqueue(t0 + secs(1), 2, "q", 0).unwrap();
    acd.enqueue(t0 + secs(2), 3, "q", 5).unwrap();
    acd.enqueue(t0 + secs(3), 4, "q", 9).unwrap();
    acd.enqueue(t0 + secs(4), 5, "q", 0).unwrap();
    let positions: Vec<_> = (1..=5).map(|c| acd.position(c).unwrap()).collect();
    assert_eq!(positions, [3, 4, 2, 1, 5]);
    ready(&mut acd, t0 + secs(5), "1001");
    let mut order = Vec::new();
    for _ in 0..5 {
        let made = offers(&drain(&mut acd));
        assert_eq!(made.len(), 1);
        order.push(made[0].0);
        take_call(&mut acd, t0 + secs(6), made[0].0, "1001");
    }
    assert_eq!(order, [4, 3, 1, 2, 5]);
}

#[test]
fn wrap_up_then_available_takes_the_next_waiting_call() {
    let t0 = Instant::now();
    let mut q = queue("q", Strategy::LongestIdle);
    q.wrap_up = secs(30);
    let mut acd = Acd::new(config(vec![q], vec![agent("1001", &["q"])])).unwrap();
    ready(&mut acd, t0, "1001");
    acd.enqueue(t0, 1, "q", 0).unwrap();
    acd.offer_answered(t0 + secs(2), 1, "1001").unwrap();
    acd.enqueue(t0 + secs(10), 2, "q", 0).unwrap();
    drain(&mut acd);
    acd.call_ended(t0 + secs(60), 1).unwrap();
    assert_eq!(
        state(&acd, "1001"),
        AgentState::WrapUp {
            until: t0 + secs(90)
        }
    );
    assert!(offers(&drain(&mut acd)).is_empty());
    assert_eq!(acd.poll_timeout(), Some(t0 + secs(90)));
    acd.handle_timeout(t0 + secs(89));
    assert!(drain(&mut acd).is_empty());
    acd.handle_timeout(t0 + secs(90));
    assert_eq!(offers(&drain(&mut acd)), vec![offer(2, "1001")]);
    assert_eq!(state(&acd, "1001"), AgentState::Reserved { call: 2 });
}

#[test]
fn answered_call_names_its_owner_r7() {
    let t0 = Instant::now();
    let mut acd = Acd::new(config(
        vec![queue("q", Strategy::LongestIdle)],
        vec![agent("1001", &["q"])],
    ))
    .unwrap();
    ready(&mut acd, t0, "1001");
    acd.enqueue(t0, 7, "q", 0).unwrap();
    assert_eq!(acd.owner(7), None);
    drain(&mut acd);
    acd.offer_answered(t0 + secs(3), 7, "1001").unwrap();
    assert_eq!(acd.owner(7), Some("1001"));
    assert!(drain(&mut acd).contains(&AcdAction::Connected {
        call: 7,
        agent: "1001".into()
    }));
    assert_eq!(state(&acd, "1001"), AgentState::OnCall { call: 7 });
    // A second answer of the same offer is refused: the offer is over.
    assert_eq!(
        acd.offer_answered(t0 + secs(3), 7, "1001"),
        Err(AcdError::NoSuchOffer {
            call: 7,
            agent: "1001".into()
        })
    );
}

#[test]
fn no_answer_pauses_the_agent_and_redirects_keeping_the_call_s_place_r6() {
    let t0 = Instant::now();
    let mut acd = Acd::new(config(
        vec![queue("q", Strategy::LongestIdle)],
        vec![agent("1001", &["q"]), agent("1002", &["q"])],
    ))
    .unwrap();
    ready(&mut acd, t0, "1001");
    acd.enqueue(t0, 1, "q", 0).unwrap();
    acd.enqueue(t0 + secs(1), 2, "q", 0).unwrap();
    assert_eq!(offers(&drain(&mut acd)), vec![offer(1, "1001")]);
    assert_eq!(acd.poll_timeout(), Some(t0 + DEFAULT_AGENT_RING_TIMEOUT));
    acd.handle_timeout(t0 + DEFAULT_AGENT_RING_TIMEOUT);
    let actions = drain(&mut acd);
    assert!(actions.contains(&AcdAction::CancelOffer {
        call: 1,
        agent: "1001".into(),
        reason: CancelReason::NoAnswer
    }));
    assert_eq!(
        state(&acd, "1001"),
        AgentState::Paused {
            reason: PauseReason::NoAnswer
        }
    );
    // Back at the head of its priority, ahead of the later call.
    assert_eq!(acd.position(1), Some(1));
    assert_eq!(acd.position(2), Some(2));
    ready(&mut acd, t0 + secs(11), "1002");
    assert_eq!(offers(&drain(&mut acd)), vec![offer(1, "1002")]);
    // The paused agent gets calls again once resumed.
    acd.resume(t0 + secs(12), "1001").unwrap();
    assert_eq!(offers(&drain(&mut acd)), vec![offer(2, "1001")]);
}

#[test]
fn refusal_keeps_the_agent_available_but_never_reoffers_that_call() {
    let t0 = Instant::now();
    let mut acd = Acd::new(config(
        vec![queue("q", Strategy::LongestIdle)],
        vec![agent("1001", &["q"]), agent("1002", &["q"])],
    ))
    .unwrap();
    ready(&mut acd, t0, "1001");
    ready(&mut acd, t0 + secs(1), "1002");
    acd.enqueue(t0 + secs(2), 1, "q", 0).unwrap();
    assert_eq!(offers(&drain(&mut acd)), vec![offer(1, "1001")]);
    acd.offer_failed(t0 + secs(3), 1, "1001", OfferFailure::Refused)
        .unwrap();
    assert_eq!(offers(&drain(&mut acd)), vec![offer(1, "1002")]);
    assert_eq!(state(&acd, "1001"), AgentState::Available);
    // 1002 lets it ring out: the call is back, 1001 is free but refused it.
    acd.handle_timeout(t0 + secs(13));
    assert!(offers(&drain(&mut acd)).is_empty());
    assert_eq!(acd.position(1), Some(1));
    // Another call does go to 1001.
    acd.enqueue(t0 + secs(14), 2, "q", 0).unwrap();
    assert_eq!(offers(&drain(&mut acd)), vec![offer(2, "1001")]);
}

#[test]
fn unreachable_phone_logs_the_agent_out_and_moves_on() {
    let t0 = Instant::now();
    let mut acd = Acd::new(config(
        vec![queue("q", Strategy::LongestIdle)],
        vec![agent("1001", &["q"]), agent("1002", &["q"])],
    ))
    .unwrap();
    ready(&mut acd, t0, "1001");
    ready(&mut acd, t0 + secs(1), "1002");
    acd.enqueue(t0 + secs(2), 1, "q", 0).unwrap();
    drain(&mut acd);
    acd.offer_failed(t0 + secs(3), 1, "1001", OfferFailure::Unreachable)
        .unwrap();
    assert_eq!(offers(&drain(&mut acd)), vec![offer(1, "1002")]);
    assert_eq!(state(&acd, "1001"), AgentState::LoggedOut);
}

#[test]
fn an_unregistered_agent_is_never_offered_a_call() {
    let t0 = Instant::now();
    let mut acd = Acd::new(config(
        vec![queue("q", Strategy::LongestIdle)],
        vec![agent("1001", &["q"])],
    ))
    .unwrap();
    acd.login(t0, "1001").unwrap();
    acd.enqueue(t0, 1, "q", 0).unwrap();
    assert!(offers(&drain(&mut acd)).is_empty());
    assert_eq!(acd.queue_stats(t0)[0].agents_available, 0);
    acd.set_registered(t0 + secs(1), "1001", true).unwrap();
    assert_eq!(offers(&drain(&mut acd)), vec![offer(1, "1001")]);
    // The registration lapses while the phone rings: offer cancelled, agent out.
    acd.set_registered(t0 + secs(2), "1001", false).unwrap();
    assert!(drain(&mut acd).contains(&AcdAction::CancelOffer {
        call: 1,
        agent: "1001".into(),
        reason: CancelReason::AgentLeft
    }));
    assert_eq!(state(&acd, "1001"), AgentState::LoggedOut);
    assert_eq!(acd.position(1), Some(1));
}

#[test]
fn abandon_while_queued_returns_the_wait() {
    let t0 = Instant::now();
    let mut acd = Acd::new(config(
        vec![queue("q", Strategy::LongestIdle)],
        vec![agent("1001", &["q"])],
    ))
    .unwrap();
    acd.enqueue(t0, 1, "q", 0).unwrap();
    acd.enqueue(t0, 2, "q", 0).unwrap();
    assert!(acd.inbound_waiting());
    assert_eq!(acd.abandon(t0 + secs(42), 1), Some(secs(42)));
    assert_eq!(acd.position(2), Some(1));
    assert_eq!(acd.abandon(t0 + secs(43), 1), None);
    assert_eq!(acd.queue_stats(t0 + secs(50))[0].depth, 1);
    // A driver reporting the end of a call never answered: the same as an abandon.
    acd.call_ended(t0 + secs(51), 2).unwrap();
    assert_eq!(acd.call(2), None);
    assert!(!acd.inbound_waiting());
}

#[test]
fn abandon_while_ringing_cancels_and_frees_the_agent() {
    let t0 = Instant::now();
    let mut acd = Acd::new(config(
        vec![queue("q", Strategy::LongestIdle)],
        vec![agent("1001", &["q"])],
    ))
    .unwrap();
    ready(&mut acd, t0, "1001");
    acd.enqueue(t0, 1, "q", 0).unwrap();
    acd.enqueue(t0 + secs(1), 2, "q", 0).unwrap();
    drain(&mut acd);
    assert_eq!(acd.abandon(t0 + secs(4), 1), Some(secs(4)));
    let actions = drain(&mut acd);
    assert!(actions.contains(&AcdAction::CancelOffer {
        call: 1,
        agent: "1001".into(),
        reason: CancelReason::CallerGone
    }));
    // Freed, not paused: it takes the next call at once.
    assert_eq!(offers(&actions), vec![offer(2, "1001")]);
    // The cancelled offer's timer no longer fires.
    acd.handle_timeout(t0 + secs(10));
    assert_eq!(state(&acd, "1001"), AgentState::Reserved { call: 2 });
}

fn overflow_config(target: Overflow) -> AcdConfig {
    let mut first = queue("first", Strategy::LongestIdle);
    first.max_wait = secs(30);
    first.overflow = Some(target);
    config(
        vec![first, queue("second", Strategy::LongestIdle)],
        vec![agent("1001", &["first"]), agent("2001", &["second"])],
    )
}

#[test]
fn max_wait_overflows_to_another_queue_keeping_the_enqueue_time() {
    let t0 = Instant::now();
    let mut acd = Acd::new(overflow_config(Overflow::Queue("second".into()))).unwrap();
    acd.enqueue(t0, 1, "second", 0).unwrap();
    acd.enqueue(t0 + secs(5), 2, "first", 0).unwrap();
    assert_eq!(acd.poll_timeout(), Some(t0 + secs(35)));
    acd.handle_timeout(t0 + secs(35));
    assert_eq!(
        drain(&mut acd),
        vec![AcdAction::Overflow {
            call: 2,
            target: Overflow::Queue("second".into())
        }]
    );
    let view = acd.call(2).unwrap();
    assert_eq!(view.queue, "second");
    assert_eq!(view.enqueued_at, t0 + secs(5));
    // It arrived after call 1, so it stays behind it.
    assert_eq!(acd.position(2), Some(2));
    assert_eq!(
        acd.queue_stats(t0 + secs(35))[1].oldest_wait,
        Some(secs(35))
    );
    ready(&mut acd, t0 + secs(36), "2001");
    assert_eq!(offers(&drain(&mut acd)), vec![offer(1, "2001")]);
}

#[test]
fn max_wait_overflows_to_a_dialplan_step_and_the_call_leaves() {
    let t0 = Instant::now();
    let mut acd = Acd::new(overflow_config(Overflow::Dialplan("callback_offer".into()))).unwrap();
    acd.enqueue(t0, 1, "first", 0).unwrap();
    acd.handle_timeout(t0 + secs(29));
    assert!(drain(&mut acd).is_empty());
    acd.handle_timeout(t0 + secs(30));
    assert_eq!(
        drain(&mut acd),
        vec![AcdAction::Overflow {
            call: 1,
            target: Overflow::Dialplan("callback_offer".into())
        }]
    );
    assert_eq!(acd.call(1), None);
    assert_eq!(acd.poll_timeout(), None);
}

#[test]
fn max_wait_during_a_ring_waits_for_the_offer_to_fail() {
    let t0 = Instant::now();
    let mut acd = Acd::new(overflow_config(Overflow::Dialplan("voicemail".into()))).unwrap();
    acd.enqueue(t0, 1, "first", 0).unwrap();
    ready(&mut acd, t0 + secs(25), "1001");
    assert_eq!(offers(&drain(&mut acd)), vec![offer(1, "1001")]);
    acd.handle_timeout(t0 + secs(30));
    assert!(drain(&mut acd).is_empty(), "the ringing offer is not cut");
    acd.handle_timeout(t0 + secs(35));
    let actions = drain(&mut acd);
    assert!(actions.contains(&AcdAction::Overflow {
        call: 1,
        target: Overflow::Dialplan("voicemail".into())
    }));
    assert_eq!(acd.call(1), None);
}

#[test]
fn an_agent_in_two_queues_takes_priority_then_the_earliest_arrival() {
    let t0 = Instant::now();
    let mut acd = Acd::new(config(
        vec![
            queue("general", Strategy::LongestIdle),
            queue("complaints", Strategy::LongestIdle),
        ],
        vec![agent("1001", &["general", "complaints"])],
    ))
    .unwrap();
    acd.enqueue(t0, 1, "general", 0).unwrap();
    acd.enqueue(t0 + secs(1), 2, "complaints", 0).unwrap();
    acd.enqueue(t0 + secs(2), 3, "general", 0).unwrap();
    acd.enqueue(t0 + secs(3), 4, "complaints", 5).unwrap();
    acd.enqueue(t0 + secs(4), 5, "complaints", 0).unwrap();
    ready(&mut acd, t0 + secs(5), "1001");
    let mut order = Vec::new();
    for _ in 0..5 {
        let made = offers(&drain(&mut acd));
        assert_eq!(made.len(), 1);
        order.push(made[0].0);
        take_call(&mut acd, t0 + secs(6), made[0].0, "1001");
    }
    // Priority 5 first, then arrival order across both queues.
    assert_eq!(order, [4, 1, 2, 3, 5]);
}

#[test]
fn logout_or_pause_while_ringing_cancels_and_while_on_call_waits_for_the_end() {
    let t0 = Instant::now();
    let mut q = queue("q", Strategy::LongestIdle);
    q.wrap_up = secs(20);
    let mut acd = Acd::new(config(
        vec![q],
        vec![agent("1001", &["q"]), agent("1002", &["q"])],
    ))
    .unwrap();
    ready(&mut acd, t0, "1001");
    acd.enqueue(t0, 1, "q", 0).unwrap();
    drain(&mut acd);
    acd.logout(t0 + secs(1), "1001").unwrap();
    assert!(drain(&mut acd).contains(&AcdAction::CancelOffer {
        call: 1,
        agent: "1001".into(),
        reason: CancelReason::AgentLeft
    }));
    ready(&mut acd, t0 + secs(2), "1002");
    acd.offer_answered(t0 + secs(3), 1, "1002").unwrap();
    acd.pause(t0 + secs(4), "1002", PauseReason::Break).unwrap();
    assert_eq!(state(&acd, "1002"), AgentState::OnCall { call: 1 });
    acd.call_ended(t0 + secs(5), 1).unwrap();
    assert_eq!(
        state(&acd, "1002"),
        AgentState::Paused {
            reason: PauseReason::Break
        }
    );
    assert_eq!(
        acd.pause(t0, "1001", PauseReason::Break),
        Err(AcdError::NotLoggedIn {
            agent: "1001".into()
        })
    );
}

#[test]
fn reload_keeps_agents_and_calls_and_retires_removed_agents_after_their_call_r4() {
    let t0 = Instant::now();
    let old = config(
        vec![queue("q", Strategy::LongestIdle)],
        vec![agent("1001", &["q"]), agent("1002", &["q"])],
    );
    let mut acd = Acd::new(old).unwrap();
    ready(&mut acd, t0, "1001");
    ready(&mut acd, t0, "1002");
    acd.enqueue(t0, 1, "q", 0).unwrap();
    acd.offer_answered(t0, 1, "1001").unwrap();
    acd.pause(t0, "1002", PauseReason::Break).unwrap();
    acd.enqueue(t0 + secs(1), 2, "q", 0).unwrap();
    acd.enqueue(t0 + secs(2), 3, "q", 9).unwrap();
    drain(&mut acd);

    // 1001 is removed, 1003 added, a second queue appears.
    let new = config(
        vec![
            queue("q", Strategy::RoundRobin),
            queue("complaints", Strategy::LongestIdle),
        ],
        vec![agent("1002", &["q"]), agent("1003", &["q", "complaints"])],
    );
    acd.reload(t0 + secs(3), new).unwrap();
    assert_eq!(state(&acd, "1001"), AgentState::OnCall { call: 1 });
    assert!(!acd.agent("1001").unwrap().configured);
    assert_eq!(
        state(&acd, "1002"),
        AgentState::Paused {
            reason: PauseReason::Break
        }
    );
    assert_eq!(state(&acd, "1003"), AgentState::LoggedOut);
    assert_eq!((acd.position(3), acd.position(2)), (Some(1), Some(2)));
    assert_eq!(acd.owner(1), Some("1001"));
    // A removed agent cannot log in again, and is gone once the call ends.
    assert!(acd.login(t0, "1001").is_err());
    acd.call_ended(t0 + secs(4), 1).unwrap();
    assert_eq!(acd.agent("1001"), None);
    assert!(offers(&drain(&mut acd)).is_empty());
    ready(&mut acd, t0 + secs(5), "1003");
    assert_eq!(offers(&drain(&mut acd)), vec![offer(3, "1003")]);
}

#[test]
fn reload_moves_a_removed_queue_s_calls_to_its_overflow_or_is_refused() {
    let t0 = Instant::now();
    let mut old = overflow_config(Overflow::Queue("second".into()));
    old.queues.push(queue("orphan", Strategy::LongestIdle));
    let mut acd = Acd::new(old.clone()).unwrap();
    acd.enqueue(t0, 1, "first", 0).unwrap();
    acd.enqueue(t0, 2, "orphan", 0).unwrap();

    // Without "orphan", whose calls have nowhere to go: refused, nothing changed.
    let mut without_orphan = old.clone();
    without_orphan.queues.retain(|q| q.name != "orphan");
    without_orphan.queues.retain(|q| q.name != "first");
    without_orphan.agents = vec![agent("2001", &["second"])];
    assert_eq!(
        acd.reload(t0 + secs(1), without_orphan.clone()),
        Err(AcdError::RemovedQueueHasCalls {
            queue: "orphan".into()
        })
    );
    assert_eq!(acd.call(2).unwrap().queue, "orphan");
    assert_eq!(acd.call(1).unwrap().queue, "first");

    // Once the orphan call is gone, "first" is removed and its call follows its overflow.
    acd.abandon(t0 + secs(2), 2);
    drain(&mut acd);
    acd.reload(t0 + secs(3), without_orphan).unwrap();
    assert_eq!(
        drain(&mut acd),
        vec![AcdAction::Overflow {
            call: 1,
            target: Overflow::Queue("second".into())
        }]
    );
    assert_eq!(acd.call(1).unwrap().queue, "second");
    assert_eq!(acd.call(1).unwrap().enqueued_at, t0);
}

#[test]
fn reload_with_a_bad_config_changes_nothing() {
    let t0 = Instant::now();
    let mut acd = Acd::new(config(
        vec![queue("q", Strategy::LongestIdle)],
        vec![agent("1001", &["q"])],
    ))
    .unwrap();
    ready(&mut acd, t0, "1001");
    let bad = config(vec![], vec![agent("1001", &["q"])]);
    assert!(matches!(
        acd.reload(t0, bad),
        Err(AcdError::AgentInUnknownQueue { .. })
    ));
    assert_eq!(state(&acd, "1001"), AgentState::Available);
    assert_eq!(acd.queue_stats(t0)[0].agents_available, 1);
}

#[test]
fn config_check_refuses_bad_references_levels_and_cycles() {
    let dup_agent = config(
        vec![queue("q", Strategy::LongestIdle)],
        vec![agent("1001", &["q"]), agent("1001", &["q"])],
    );
    assert!(matches!(
        Acd::new(dup_agent),
        Err(AcdError::DuplicateAgent { .. })
    ));
    let dup_queue = config(
        vec![
            queue("q", Strategy::LongestIdle),
            queue("q", Strategy::RoundRobin),
        ],
        vec![],
    );
    assert!(matches!(
        Acd::new(dup_queue),
        Err(AcdError::DuplicateQueue { .. })
    ));
    let unknown = config(vec![], vec![agent("1001", &["nowhere"])]);
    assert!(matches!(
        Acd::new(unknown),
        Err(AcdError::AgentInUnknownQueue { .. })
    ));
    let mut to_nowhere = queue("q", Strategy::LongestIdle);
    to_nowhere.overflow = Some(Overflow::Queue("nowhere".into()));
    assert!(matches!(
        Acd::new(config(vec![to_nowhere], vec![])),
        Err(AcdError::OverflowToUnknownQueue { .. })
    ));
    let cycle = |from: &str, to: &str| {
        let mut q = queue(from, Strategy::LongestIdle);
        q.overflow = Some(Overflow::Queue(to.into()));
        q
    };
    let mut end = queue("d", Strategy::LongestIdle);
    end.overflow = Some(Overflow::Dialplan("voicemail".into()));
    assert!(matches!(
        Acd::new(config(
            vec![cycle("a", "b"), cycle("b", "c"), cycle("c", "b")],
            vec![]
        )),
        Err(AcdError::OverflowCycle { .. })
    ));
    assert!(matches!(
        Acd::new(config(vec![cycle("a", "a")], vec![])),
        Err(AcdError::OverflowCycle { .. })
    ));
    assert!(Acd::new(config(vec![cycle("a", "b"), cycle("b", "d"), end], vec![])).is_ok());
    let mut unskilled = agent("1001", &[]);
    unskilled.skills.insert("law".into(), 11);
    assert!(matches!(
        Acd::new(config(vec![], vec![unskilled])),
        Err(AcdError::SkillLevelOutOfRange { level: 11, .. })
    ));
    let mut zero = queue("q", Strategy::LongestIdle);
    zero.required_skills.insert("law".into(), 0);
    assert!(matches!(
        Acd::new(config(vec![zero], vec![])),
        Err(AcdError::SkillLevelOutOfRange { level: 0, .. })
    ));
    let mut instant = config(vec![], vec![]);
    instant.agent_ring_timeout = Duration::ZERO;
    assert_eq!(Acd::new(instant).err(), Some(AcdError::ZeroRingTimeout));
}

#[test]
fn inputs_about_unknown_things_are_errors_not_panics() {
    let t0 = Instant::now();
    let mut acd = Acd::new(config(
        vec![queue("q", Strategy::LongestIdle)],
        vec![agent("1001", &["q"])],
    ))
    .unwrap();
    assert!(matches!(
        acd.enqueue(t0, 1, "nowhere", 0),
        Err(AcdError::UnknownQueue { .. })
    ));
    acd.enqueue(t0, 1, "q", 0).unwrap();
    assert_eq!(
        acd.enqueue(t0, 1, "q", 0),
        Err(AcdError::DuplicateCall { call: 1 })
    );
    assert!(matches!(
        acd.login(t0, "9999"),
        Err(AcdError::UnknownAgent { .. })
    ));
    assert_eq!(
        acd.call_ended(t0, 99),
        Err(AcdError::UnknownCall { call: 99 })
    );
    assert!(matches!(
        acd.offer_failed(t0, 1, "1001", OfferFailure::Refused),
        Err(AcdError::NoSuchOffer { .. })
    ));
}

#[test]
fn stats_and_counts_for_metrics_r30() {
    let t0 = Instant::now();
    let mut acd = Acd::new(config(
        vec![queue("q", Strategy::LongestIdle)],
        vec![
            agent("1001", &["q"]),
            agent("1002", &["q"]),
            agent("1003", &["q"]),
        ],
    ))
    .unwrap();
    ready(&mut acd, t0, "1001");
    ready(&mut acd, t0, "1002");
    acd.pause(t0, "1002", PauseReason::Break).unwrap();
    acd.enqueue(t0, 1, "q", 0).unwrap();
    acd.enqueue(t0 + secs(10), 2, "q", 0).unwrap();
    let stats = &acd.queue_stats(t0 + secs(15))[0];
    assert_eq!(
        stats,
        &QueueStats {
            name: "q".into(),
            depth: 2,
            ringing: 1,
            oldest_wait: Some(secs(15)),
            agents_available: 0,
        }
    );
    assert_eq!(
        acd.agent_counts(),
        AgentCounts {
            logged_out: 1,
            reserved: 1,
            paused: 1,
            ..AgentCounts::default()
        }
    );
    assert_eq!(
        acd.call(2).unwrap().stage,
        CallStage::Waiting { position: 1 }
    );
    assert_eq!(
        acd.call(1).unwrap().stage,
        CallStage::Ringing {
            agent: "1001".into()
        }
    );
}

// ----- the reserve for due callbacks (R9's exception) ---------------------------------

/// Two agents of `q` with no wrap-up, both on inbound calls 1 and 2, and call 3 waiting.
fn both_busy_and_one_waiting(t0: Instant, limit: usize) -> Acd {
    let mut acd = Acd::new(config(
        vec![queue("q", Strategy::LongestIdle)],
        vec![agent("1001", &["q"]), agent("1002", &["q"])],
    ))
    .unwrap();
    ready(&mut acd, t0, "1001");
    ready(&mut acd, t0, "1002");
    acd.set_callback_hold(t0, limit);
    acd.enqueue(t0, 1, "q", 0).unwrap();
    acd.enqueue(t0, 2, "q", 0).unwrap();
    acd.offer_answered(t0, 1, "1001").unwrap();
    acd.offer_answered(t0, 2, "1002").unwrap();
    acd.enqueue(t0 + secs(1), 3, "q", 0).unwrap();
    drain(&mut acd);
    acd
}

#[test]
fn with_no_hold_a_freed_agent_takes_the_waiting_call_at_once() {
    let t0 = Instant::now();
    let mut acd = both_busy_and_one_waiting(t0, 0);
    acd.call_ended(t0 + secs(60), 1).unwrap();
    assert_eq!(offers(&drain(&mut acd)), vec![offer(3, "1001")]);
    assert!(acd.held_for_callback().is_empty());
    assert_eq!(acd.held_count(), 0);
}

#[test]
fn a_held_agent_is_offered_no_inbound_call_until_released_r9() {
    let t0 = Instant::now();
    let mut acd = both_busy_and_one_waiting(t0, 1);
    acd.call_ended(t0 + secs(60), 1).unwrap();
    assert!(
        offers(&drain(&mut acd)).is_empty(),
        "held, not offered call 3"
    );
    assert_eq!(state(&acd, "1001"), AgentState::Available);
    assert_eq!(acd.held_for_callback(), vec!["1001".to_owned()]);
    let stats = &acd.queue_stats(t0 + secs(60))[0];
    assert_eq!((stats.depth, stats.agents_available), (1, 0));

    // No callback for them after all: the waiting call is offered at once.
    acd.release_held(t0 + secs(60), "1001").unwrap();
    assert_eq!(offers(&drain(&mut acd)), vec![offer(3, "1001")]);
    assert!(acd.held_for_callback().is_empty());
    assert_eq!(acd.held_count(), 0);
}

#[test]
fn never_more_agents_held_than_the_limit() {
    let t0 = Instant::now();
    let mut acd = both_busy_and_one_waiting(t0, 1);
    acd.call_ended(t0 + secs(60), 1).unwrap();
    acd.call_ended(t0 + secs(61), 2).unwrap();
    assert_eq!(
        offers(&drain(&mut acd)),
        vec![offer(3, "1002")],
        "the second agent freed finds the reserve full"
    );
    assert_eq!(acd.held_for_callback(), vec!["1001".to_owned()]);
    assert_eq!(acd.held_count(), 1);
}

#[test]
fn a_held_agent_keeps_the_mark_on_the_callback_and_is_freed_by_its_end() {
    let t0 = Instant::now();
    let mut acd = both_busy_and_one_waiting(t0, 1);
    acd.call_ended(t0 + secs(60), 1).unwrap();
    drain(&mut acd);
    acd.outbound_started(t0 + secs(60), "1001", 900).unwrap();
    assert_eq!(state(&acd, "1001"), AgentState::OnCall { call: 900 });
    assert!(acd.held_for_callback().is_empty(), "no release owed");
    assert_eq!(acd.held_count(), 1, "the callback keeps its reserve slot");
    acd.call_ended(t0 + secs(70), 2).unwrap();
    assert_eq!(
        offers(&drain(&mut acd)),
        vec![offer(3, "1002")],
        "the slot is taken: the next agent freed goes to inbound"
    );

    // The callback ends with the reserve now off: 1001 is offered inbound calls again.
    acd.set_callback_hold(t0 + secs(80), 0);
    acd.enqueue(t0 + secs(90), 4, "q", 0).unwrap();
    acd.outbound_ended(t0 + secs(200), "1001", 900).unwrap();
    assert_eq!(offers(&drain(&mut acd)), vec![offer(4, "1001")]);
    assert_eq!(acd.held_count(), 0);
}

#[test]
fn the_end_of_wrap_up_holds_and_lowering_the_limit_releases() {
    let t0 = Instant::now();
    let mut q = queue("q", Strategy::LongestIdle);
    q.wrap_up = secs(30);
    let mut acd = Acd::new(config(vec![q], vec![agent("1001", &["q"])])).unwrap();
    ready(&mut acd, t0, "1001");
    acd.set_callback_hold(t0, 2);
    acd.enqueue(t0, 1, "q", 0).unwrap();
    acd.offer_answered(t0, 1, "1001").unwrap();
    acd.enqueue(t0 + secs(5), 2, "q", 0).unwrap();
    drain(&mut acd);
    acd.call_ended(t0 + secs(60), 1).unwrap();
    assert!(acd.held_for_callback().is_empty(), "wrap-up first");
    acd.handle_timeout(t0 + secs(90));
    assert!(offers(&drain(&mut acd)).is_empty());
    assert_eq!(acd.held_for_callback(), vec!["1001".to_owned()]);
    acd.set_callback_hold(t0 + secs(91), 0);
    assert_eq!(offers(&drain(&mut acd)), vec![offer(2, "1001")]);
}

#[test]
fn a_held_agent_who_pauses_loses_the_mark_and_an_agent_logging_in_is_not_held() {
    let t0 = Instant::now();
    let mut acd = both_busy_and_one_waiting(t0, 2);
    acd.call_ended(t0 + secs(60), 1).unwrap();
    acd.pause(t0 + secs(61), "1001", PauseReason::Break)
        .unwrap();
    assert_eq!(acd.held_count(), 0);
    acd.resume(t0 + secs(62), "1001").unwrap();
    assert_eq!(
        offers(&drain(&mut acd)),
        vec![offer(3, "1001")],
        "only finishing a call holds an agent"
    );
}
