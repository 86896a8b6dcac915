//! Black-box ACD: the engine on 127.0.0.1 with agents' softphones as SIPp instances that
//! REGISTER with digest and answer (R29), callers as SIPp with RTP (R32). Calls reach
//! agents, both sides land in the recording's channels (R22), the answering agent owns
//! the work order (R7), and who hung up first is kept (R8).

mod common;

use std::time::{Duration, Instant};

use common::{
    Engine, EngineOptions, Sipp, agent_field, agent_phone, channel_levels as levels,
    wait_for_metric, work_orders,
};
use hotline::workorder::{AbandonReason, CallOutcome, HangupSide};

fn seconds_between(a: chrono::DateTime<chrono::Utc>, b: chrono::DateTime<chrono::Utc>) -> f64 {
    (b - a).num_milliseconds() as f64 / 1000.0
}

/// Three agents, ten callers who stay until the hotline hangs up; each agent talks
/// three seconds and hangs up first (R8), the caller hears the closing and gets BYE.
#[test]
fn three_agents_take_ten_callers_and_both_sides_are_recorded() {
    let engine = Engine::start(EngineOptions::default());
    let shift = Duration::from_secs(150);
    let agents: Vec<_> = ["1001", "1002", "1003"]
        .iter()
        .map(|id| agent_phone(&engine, id, "agent_hangup_first.xml", shift))
        .collect();
    engine.log_in_when_registered(&["1001", "1002", "1003"]);

    Sipp::new("caller_until_bye.xml", engine.sip)
        .args(["-m", "10", "-l", "10", "-r", "10"])
        .run(Duration::from_secs(120))
        .assert_success_against(&engine);
    wait_for_metric(&engine, "hotline_recordings_written_total", "", 10.0);

    let orders = work_orders(&engine);
    assert_eq!(orders.len(), 10);
    let mut taken = std::collections::BTreeMap::new();
    for order in &orders {
        let agent = order.agent.clone().expect("R7: an agent owns every order");
        *taken.entry(agent).or_insert(0) += 1;
        assert_eq!(order.hangup_side, Some(HangupSide::Agent), "R8: {order:?}");
        assert_eq!(order.outcome, Some(CallOutcome::Answered));
        let answered = order.answered_at.expect("trunk answered");
        assert!(
            answered - order.offered_at < chrono::Duration::seconds(10),
            "R6"
        );
        let connected = order.connected_at.expect("an agent answered");

        // Both sides in the right channels (R22): a second into the conversation the
        // caller speaks on the left and the agent on the right.
        let path = order.recording_path.as_deref().expect("recording");
        let path = engine.dir.path().join(path);
        let at = seconds_between(answered, connected);
        let (left, right) = levels(&path, at + 0.5, at + 2.5);
        assert!(
            left > 200.0,
            "caller's speech on the left: rms {left} ({})",
            path.display()
        );
        assert!(
            right > 200.0,
            "agent's speech on the right: rms {right} ({})",
            path.display()
        );
    }
    if taken.len() != 3 {
        let (_, agents) = engine.api("GET", "/agents");
        panic!(
            "every agent took calls: {taken:?}\nagents: {agents}\n{}",
            engine.log()
        );
    }

    let metrics = engine.metrics();
    let value = |name: &str, labels: &str| common::metric_value(&metrics, name, labels);
    assert_eq!(
        value("hotline_calls_connected_total", "queue=\"general\""),
        10.0
    );
    assert_eq!(
        value("hotline_calls_queued_total", "queue=\"general\""),
        10.0
    );
    // R5: answered by an agent / offered to a queue.
    assert_eq!(value("hotline_connection_rate_24h", ""), 1.0);
    assert_eq!(value("hotline_answered_within_ring_budget_total", ""), 10.0);
    drop(agents);
}

/// R6: an agent whose phone rings past the agent ring timeout is skipped, paused
/// `no_answer`, and the call goes to the next agent; the caller notices nothing.
#[test]
fn an_agent_who_never_answers_is_redirected_and_paused_no_answer() {
    let engine = Engine::start(EngineOptions {
        agent_ring_timeout_ms: 2000,
        ..EngineOptions::default()
    });
    let shift = Duration::from_secs(150);
    let _sleepy = agent_phone(&engine, "1001", "agent_noanswer.xml", shift);
    let _awake = agent_phone(&engine, "1002", "agent_hangup_first.xml", shift);
    // 1001 logs in first, so longest-idle offers it the call first.
    engine.log_in_when_registered(&["1001", "1002"]);

    Sipp::new("caller_until_bye.xml", engine.sip)
        .args(["-m", "1"])
        .run(Duration::from_secs(60))
        .assert_success_against(&engine);
    wait_for_metric(&engine, "hotline_recordings_written_total", "", 1.0);

    let orders = work_orders(&engine);
    assert_eq!(orders[0].agent.as_deref(), Some("1002"));
    let (_, body) = engine.api("GET", "/agents");
    assert_eq!(
        agent_field(&body, "1001", "state").as_deref(),
        Some("paused"),
        "{body}"
    );
    assert_eq!(
        agent_field(&body, "1001", "reason").as_deref(),
        Some("no_answer"),
        "{body}"
    );
    assert_eq!(
        engine.metric(
            "hotline_agent_no_answer_redirects_total",
            "queue=\"general\""
        ),
        1.0
    );
}

/// A softphone that un-registers mid-shift logs its agent out: no call is sent to it.
#[test]
fn an_agent_whose_phone_unregisters_is_logged_out_and_gets_no_calls() {
    let engine = Engine::start(EngineOptions::default());
    // 1001's phone registers, stays 3 s, then un-registers (Expires: 0).
    let leaving = agent_phone(
        &engine,
        "1001",
        "agent_hangup_first.xml",
        Duration::from_secs(3),
    );
    let _staying = agent_phone(
        &engine,
        "1002",
        "agent_hangup_first.xml",
        Duration::from_secs(150),
    );
    engine.log_in_when_registered(&["1001", "1002"]);
    leaving.wait().assert_success();
    let (_, body) = engine.api("GET", "/agents");
    assert_eq!(
        agent_field(&body, "1001", "state").as_deref(),
        Some("logged_out"),
        "{body}"
    );
    assert_eq!(
        agent_field(&body, "1001", "registered").as_deref(),
        Some("false")
    );

    Sipp::new("caller_until_bye.xml", engine.sip)
        .args(["-m", "2", "-l", "1"])
        .run(Duration::from_secs(90))
        .assert_success_against(&engine);
    let orders = work_orders(&engine);
    assert_eq!(orders.len(), 2);
    assert!(
        orders.iter().all(|o| o.agent.as_deref() == Some("1002")),
        "{orders:?}"
    );
}

/// R8: the caller hanging up first ends the agent's leg too, and is recorded as such.
#[test]
fn the_caller_hanging_up_first_ends_the_agent_leg() {
    let engine = Engine::start(EngineOptions::default());
    let _phone = agent_phone(
        &engine,
        "1001",
        "agent_answer.xml",
        Duration::from_secs(150),
    );
    engine.log_in_when_registered(&["1001"]);
    // Greeting (about 7 s), queue, agent: the caller hangs up 12 s after the answer.
    Sipp::new("uac_pcap.xml", engine.sip)
        .args(["-m", "1", "-d", "12000"])
        .run(Duration::from_secs(60))
        .assert_success_against(&engine);
    wait_for_metric(&engine, "hotline_recordings_written_total", "", 1.0);
    let orders = work_orders(&engine);
    assert_eq!(orders[0].hangup_side, Some(HangupSide::Caller));
    assert_eq!(orders[0].agent.as_deref(), Some("1001"));
    // The agent is back after wrap-up (0 s in the test agents file).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = engine.api("GET", "/agents");
        if agent_field(&body, "1001", "state").as_deref() == Some("available") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "agent not available again: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A caller who hangs up while queued: the work order says abandoned, with the wait.
#[test]
fn a_caller_abandoning_in_the_queue_is_recorded_with_its_wait() {
    let engine = Engine::start(EngineOptions::default());
    // No agent is logged in: the call waits after the greeting until the caller leaves.
    Sipp::new("uac_pcap.xml", engine.sip)
        .args(["-m", "1", "-d", "10000"])
        .run(Duration::from_secs(60))
        .assert_success_against(&engine);
    wait_for_metric(
        &engine,
        "hotline_calls_abandoned_total",
        "reason=\"caller_hung_up_in_queue\"",
        1.0,
    );
    let orders = work_orders(&engine);
    assert_eq!(
        orders[0].outcome,
        Some(CallOutcome::Abandoned {
            reason: AbandonReason::CallerHungUpInQueue
        })
    );
    assert_eq!(orders[0].queue.as_deref(), Some("general"));
    let wait = orders[0].wait().expect("queued, then ended");
    assert!(wait > chrono::Duration::seconds(1), "{wait}");
    assert_eq!(
        engine.metric("hotline_connection_rate_24h", ""),
        0.0,
        "R5: one offered, none answered"
    );
}

/// More callers than agents: the trunk is still answered within the ring budget (R6),
/// waiting callers hear hold music and their position, and all reach the agent.
#[test]
fn more_callers_than_agents_hear_hold_and_their_position_within_the_ring_budget() {
    let engine = Engine::start(EngineOptions {
        position_announcement_seconds: 5,
        ..EngineOptions::default()
    });
    let _phone = agent_phone(
        &engine,
        "1001",
        "agent_hangup_first.xml",
        Duration::from_secs(120),
    );
    engine.log_in_when_registered(&["1001"]);
    Sipp::new("caller_until_bye.xml", engine.sip)
        .args(["-m", "4", "-l", "4", "-r", "10"])
        .run(Duration::from_secs(120))
        .assert_success_against(&engine);
    wait_for_metric(&engine, "hotline_recordings_written_total", "", 4.0);

    let metrics = engine.metrics();
    let value = |name: &str, labels: &str| common::metric_value(&metrics, name, labels);
    assert_eq!(value("hotline_answered_within_ring_budget_total", ""), 4.0);
    assert_eq!(
        value("hotline_calls_connected_total", "queue=\"general\""),
        4.0
    );
    // The last caller waits behind two others when its first announcement is due.
    assert!(
        value("hotline_queue_announcements_total", "queue=\"general\"") >= 1.0,
        "a caller with others ahead heard its position"
    );
    let orders = work_orders(&engine);
    let longest = orders.iter().filter_map(|o| o.wait()).max().expect("waits");
    assert!(
        longest > chrono::Duration::seconds(5),
        "someone waited: {longest}"
    );
}

/// R12: the agent API needs the bearer token.
#[test]
fn the_agent_api_needs_the_token() {
    let engine = Engine::start(EngineOptions::default());
    let (status, _) = common::http_request(engine.http, "GET", "/agents", None).unwrap();
    assert_eq!(status, 401);
    let (status, _) = common::http_request(
        engine.http,
        "POST",
        "/agents/1001/login",
        Some("wrong-token"),
    )
    .unwrap();
    assert_eq!(status, 401);
    let (status, body) = engine.api("GET", "/agents");
    assert_eq!(status, 200);
    assert_eq!(
        agent_field(&body, "1001", "state").as_deref(),
        Some("logged_out")
    );
    let (status, _) = engine.api("POST", "/agents/9999/login");
    assert_eq!(status, 409, "an unknown agent is refused");
}

/// R4: a new agents file is applied without a restart.
#[test]
fn reloading_the_agents_file_adds_an_agent_without_a_restart() {
    let engine = Engine::start(EngineOptions::default());
    let path = engine.dir.path().join("agents.toml");
    let mut agents = std::fs::read_to_string(&path).unwrap();
    agents.push_str("\n[[agents]]\nid = \"1004\"\npassword = \"pw1004\"\nqueues = [\"general\"]\n");
    std::fs::write(&path, agents).unwrap();
    let (status, body) = engine.api("POST", "/reload");
    assert_eq!(status, 200, "{body}");
    let (_, body) = engine.api("GET", "/agents");
    assert!(body.contains("\"id\":\"1004\""), "{body}");

    std::fs::write(&path, "[[agents]]\nid = \"x\"\n").unwrap();
    let (status, body) = engine.api("POST", "/reload");
    assert_eq!(status, 422, "a bad file is refused with its reason: {body}");
    assert!(body.contains("agents.toml"), "{body}");
    let (_, body) = engine.api("GET", "/agents");
    assert!(
        body.contains("\"id\":\"1004\""),
        "the old agents stay: {body}"
    );
}

/// Feature codes from the softphone change the agent's state: `*21` logs in, `*23`
/// pauses, `*24` resumes, `*22` logs out; each is challenged with digest.
#[test]
fn feature_codes_from_the_softphone_change_the_agents_state() {
    let engine = Engine::start(EngineOptions::default());
    let _phone = agent_phone(
        &engine,
        "1002",
        "agent_answer.xml",
        Duration::from_secs(150),
    );
    engine.wait_until_registered("1002");
    for (code, state) in [
        ("*21", "available"),
        ("*23", "paused"),
        ("*24", "available"),
        ("*22", "logged_out"),
    ] {
        Sipp::new("agent_feature.xml", engine.sip)
            .args([
                "-m", "1", "-s", code, "-key", "agent", "1002", "-au", "1002", "-ap", "pw1002",
            ])
            .run(Duration::from_secs(30))
            .assert_success_against(&engine);
        let (_, body) = engine.api("GET", "/agents");
        assert_eq!(
            agent_field(&body, "1002", "state").as_deref(),
            Some(state),
            "after {code}: {body}"
        );
    }
    // A wrong password changes nothing and never gets the call answered.
    let wrong = Sipp::new("agent_feature.xml", engine.sip)
        .args([
            "-m", "1", "-s", "*21", "-key", "agent", "1002", "-au", "1002", "-ap", "wrong",
        ])
        .run(Duration::from_secs(10));
    assert!(!wrong.status.success(), "a wrong password is not accepted");
    let (_, body) = engine.api("GET", "/agents");
    assert_eq!(
        agent_field(&body, "1002", "state").as_deref(),
        Some("logged_out")
    );
    assert_eq!(
        engine.metric("hotline_calls_offered_total", ""),
        0.0,
        "feature codes are not citizens' calls"
    );
}
