//! Black-box callbacks (issue 10) on 127.0.0.1: the engine binary with its
//! `[callbacks]` outbound trunk pointing at a SIPp `uas` playing the citizen, an
//! agent's softphone as SIPp (registered with digest, answering), callbacks created
//! through the HTTP API.
//!
//! - a due callback rings the agent (with `X-Hotline-Work-Order`), then the citizen;
//!   both are bridged and recorded in one WAV, each in its channel (R17, R22);
//! - an inbound caller who starts waiting while the citizen's phone rings cancels that
//!   leg and gets the agent; the callback runs afterwards (R9);
//! - a citizen who does not answer is retried after the backoff, then the task is
//!   `failed` (R20);
//! - a caller who hangs up in the queue gets a missed-call task and is called back
//!   through the trunk once an agent is free; a callback dialing when the engine is
//!   killed runs after the restart; a trunk asking for digest credentials gets them;
//! - bad input gets a JSON 4xx and stores nothing.

mod common;

use std::time::{Duration, Instant};

use common::{
    Engine, EngineOptions, Sipp, agent_phone, channel_levels as levels, free_even_port, free_port,
    http_json, wait_for_metric, work_orders,
};
use hotline::callbacks::sqlite::SqliteCallbackStore;
use hotline::callbacks::{CallbackStore, CallbackTask, DialOutcome, TaskId, TaskState};
use hotline::workorder::{CallOutcome, Direction, WorkOrder, WorkOrderId, WorkOrderStore};

const CITIZEN: &str = "13900002222";

/// A working directory whose store already holds the work order callbacks belong to
/// (a call taken earlier, ended).
fn directory_with_a_work_order() -> (tempfile::TempDir, WorkOrderId) {
    let dir = tempfile::tempdir().unwrap();
    let at = chrono::Utc::now() - chrono::Duration::hours(1);
    let id = WorkOrderId::from_parts(at, 42);
    let order = WorkOrder::new_inbound(id.clone(), "earlier-call", "13800001111", "8890", at);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = hotline::workorder::sqlite::SqliteStore::open(&dir.path().join("data"))
            .expect("open store");
        store.create(&order).await.expect("seed work order");
        store
            .mark_ended(
                &id,
                at + chrono::Duration::minutes(3),
                None,
                CallOutcome::Answered,
            )
            .await
            .expect("end it");
    });
    (dir, id)
}

/// An engine whose callbacks dial citizens through `sip:127.0.0.1:<trunk_port>`.
fn engine_with_trunk(dir: tempfile::TempDir, trunk_port: u16, extra: &str) -> Engine {
    Engine::start_in(
        dir,
        EngineOptions {
            extra_config: format!(
                "[callbacks]\ntrunk_uri = \"sip:127.0.0.1:{trunk_port}\"\n\
                 trunk_caller_id = \"12345\"\n{extra}"
            ),
            ..EngineOptions::default()
        },
    )
}

/// The citizen: a SIPp uas on the trunk's port running `scenario` for `calls` calls.
fn citizen(engine: &Engine, port: u16, scenario: &str, calls: u32) -> common::RunningSipp {
    Sipp::new(scenario, engine.sip)
        .args(["-p", &port.to_string(), "-m", &calls.to_string()])
        .args(["-mp", &free_even_port().to_string()])
        .spawn(Duration::from_secs(120))
}

fn create_callback(engine: &Engine, work_order: &WorkOrderId) -> TaskId {
    let (status, body) = http_json(
        engine.http,
        "POST",
        "/callbacks",
        &format!(
            r#"{{"work_order":"{work_order}","number":"{CITIZEN}","reason":"manual","owner":"1001"}}"#
        ),
    );
    assert_eq!(status, 201, "{body}");
    assert!(
        !body.contains(CITIZEN),
        "the number is masked (R12): {body}"
    );
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = value["id"].as_str().unwrap();
    TaskId(id.trim_start_matches("cb-").parse().unwrap())
}

/// The task as the callback store has it, once `done` says it is settled (up to 60 s).
fn stored_task(engine: &Engine, id: TaskId, done: impl Fn(&CallbackTask) -> bool) -> CallbackTask {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let task = runtime.block_on(async {
            let store = SqliteCallbackStore::open(&engine.data_dir()).expect("open");
            store.get(id).await.expect("read")
        });
        match task {
            Some(task) if done(&task) => return task,
            other if Instant::now() >= deadline => {
                panic!("task {id} never settled: {other:?}\n{}", engine.log())
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn outbound_orders(engine: &Engine) -> Vec<WorkOrder> {
    work_orders(engine)
        .into_iter()
        .filter(|o| o.direction == Direction::Outbound)
        .collect()
}

#[test]
fn a_due_callback_connects_agent_and_citizen_and_records_both_channels_r17_r22() {
    let (dir, parent) = directory_with_a_work_order();
    let trunk = free_port();
    let engine = engine_with_trunk(dir, trunk, "");
    let citizen = citizen(&engine, trunk, "citizen_answer.xml", 1);
    let _agent = agent_phone(
        &engine,
        "1001",
        "agent_callback.xml",
        Duration::from_secs(90),
    );
    engine.log_in_when_registered(&["1001"]);

    // Bad input first: each refused with JSON, nothing stored.
    for (body, status, words) in [
        (
            format!(
                r#"{{"work_order":"{parent}","number":"{CITIZEN}","reason":"manual","earliest":"2026-12-01T10:00:00Z","latest":"2026-12-01T09:00:00Z"}}"#
            ),
            422,
            "before its earliest",
        ),
        (
            format!(
                r#"{{"work_order":"{}","number":"{CITIZEN}","reason":"manual"}}"#,
                WorkOrderId::from_parts(chrono::Utc::now(), 7)
            ),
            422,
            "no work order",
        ),
        (
            format!(r#"{{"work_order":"{parent}","number":"call me","reason":"manual"}}"#),
            400,
            "not a phone number",
        ),
    ] {
        let (got, answer) = http_json(engine.http, "POST", "/callbacks", &body);
        assert_eq!(got, status, "{body}: {answer}");
        let value: serde_json::Value = serde_json::from_str(&answer).expect("JSON");
        let message = value["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(words), "{answer}");
    }
    let (status, listing) = http_json(engine.http, "GET", "/callbacks", "");
    assert_eq!(status, 200);
    assert_eq!(listing, r#"{"callbacks":[]}"#, "nothing stored");

    let task = create_callback(&engine, &parent);
    citizen.wait().assert_success_against(&engine);
    wait_for_metric(&engine, "hotline_recordings_written_total", "", 1.0);

    let done = stored_task(&engine, task, |t| t.state.is_finished());
    assert_eq!(done.state, TaskState::Done, "{done:?}");
    assert_eq!(done.attempts, 1);
    assert_eq!(done.last_outcome, Some(DialOutcome::Connected));

    let orders = outbound_orders(&engine);
    assert_eq!(orders.len(), 1, "{orders:?}");
    let call = &orders[0];
    assert_eq!(call.agent.as_deref(), Some("1001"));
    assert_eq!(call.outcome, Some(CallOutcome::Answered));
    let path = engine
        .dir
        .path()
        .join(call.recording_path.as_deref().expect("recorded"));
    let (left, right) = levels(&path, 0.5, 3.0);
    assert!(left > 200.0, "the citizen on the left: rms {left}");
    assert!(right > 200.0, "the agent on the right: rms {right}");

    // The outcome is on the work order the callback belongs to.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let events = runtime.block_on(async {
        let store = hotline::workorder::sqlite::SqliteStore::open(&engine.data_dir()).unwrap();
        store.events(&parent).await.unwrap()
    });
    let trail = format!("{events:?}");
    assert!(trail.contains(&format!("callback {task}")), "{trail}");
    assert!(trail.contains("connected"), "{trail}");
    assert!(
        !engine.log().contains(CITIZEN),
        "R12: the log masks the number"
    );
    wait_for_metric(
        &engine,
        "hotline_callback_attempts_total",
        "outcome=\"connected\"",
        1.0,
    );
}

#[test]
fn an_inbound_caller_waiting_while_the_citizen_rings_cancels_that_leg_and_gets_the_agent_r9() {
    let (dir, parent) = directory_with_a_work_order();
    let trunk = free_port();
    let engine = engine_with_trunk(dir, trunk, "");
    let citizen = citizen(&engine, trunk, "citizen_cancel_or_answer.xml", 2);
    let _agent = agent_phone(
        &engine,
        "1001",
        "agent_answer.xml",
        Duration::from_secs(120),
    );
    engine.log_in_when_registered(&["1001"]);

    let task = create_callback(&engine, &parent);
    // The agent answers at once; the citizen's phone then rings for 15 s.
    stored_task(&engine, task, |t| {
        matches!(t.state, TaskState::Dialing { .. })
    });
    std::thread::sleep(Duration::from_secs(2));
    Sipp::new("caller_hangs_up.xml", engine.sip)
        .args(["-m", "1"])
        .run(Duration::from_secs(90))
        .assert_success_against(&engine);
    citizen.wait().assert_success_against(&engine);

    let done = stored_task(&engine, task, |t| t.state.is_finished());
    assert_eq!(done.state, TaskState::Done, "{done:?}");
    assert_eq!(done.preemptions, 1, "{done:?}");
    assert_eq!(done.attempts, 1, "the withdrawn attempt is not counted");

    let orders = work_orders(&engine);
    let inbound = orders
        .iter()
        .find(|o| o.direction == Direction::Inbound && o.caller.starts_with("1370000"))
        .expect("the inbound caller's work order");
    assert_eq!(inbound.agent.as_deref(), Some("1001"), "{inbound:?}");
    let inbound_connected = inbound.connected_at.expect("the agent took the call");
    let mut attempts: Vec<&WorkOrder> = orders
        .iter()
        .filter(|o| o.direction == Direction::Outbound)
        .collect();
    attempts.sort_by_key(|o| o.offered_at);
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_ne!(attempts[0].outcome, Some(CallOutcome::Answered));
    assert!(attempts[0].ended_at.unwrap() <= inbound_connected);
    assert_eq!(attempts[1].outcome, Some(CallOutcome::Answered));
    assert!(
        attempts[1].offered_at >= inbound_connected,
        "the callback ran later"
    );
    wait_for_metric(&engine, "hotline_callback_preemptions_total", "", 1.0);
}

#[test]
fn a_citizen_who_does_not_answer_is_retried_then_the_task_fails_r20() {
    let (dir, parent) = directory_with_a_work_order();
    let trunk = free_port();
    let engine = engine_with_trunk(dir, trunk, "max_attempts = 2\nbackoff_first_seconds = 1\n");
    let citizen = citizen(&engine, trunk, "citizen_no_answer.xml", 2);
    let _agent = agent_phone(&engine, "1001", "agent_answer.xml", Duration::from_secs(90));
    engine.log_in_when_registered(&["1001"]);

    let task = create_callback(&engine, &parent);
    citizen.wait().assert_success_against(&engine);
    let failed = stored_task(&engine, task, |t| t.state.is_finished());
    assert_eq!(failed.state, TaskState::Failed, "{failed:?}");
    assert_eq!(failed.attempts, 2);
    assert_eq!(failed.last_outcome, Some(DialOutcome::NoAnswer));
    wait_for_metric(
        &engine,
        "hotline_callback_attempts_total",
        "outcome=\"no_answer\"",
        2.0,
    );
}

#[test]
fn a_trunk_that_asks_for_digest_credentials_gets_them_and_the_callback_connects() {
    let (dir, parent) = directory_with_a_work_order();
    let trunk = free_port();
    let engine = engine_with_trunk(
        dir,
        trunk,
        "trunk_username = \"hotline\"\ntrunk_password = \"trunk-secret\"\n",
    );
    // The trunk answers the first INVITE 401, checks the credentials of the second
    // (403 if wrong) and then the citizen answers.
    let citizen = citizen(&engine, trunk, "citizen_digest.xml", 1);
    let _agent = agent_phone(&engine, "1001", "agent_answer.xml", Duration::from_secs(60));
    engine.log_in_when_registered(&["1001"]);

    let task = create_callback(&engine, &parent);
    citizen.wait().assert_success_against(&engine);
    let done = stored_task(&engine, task, |t| t.state.is_finished());
    assert_eq!(
        done.state,
        TaskState::Done,
        "the trunk took the credentials: {done:?}"
    );
    assert_eq!(done.last_outcome, Some(DialOutcome::Connected));
    assert!(
        !engine.log().contains("trunk-secret"),
        "no password in the log"
    );
}

#[test]
fn a_callback_dialing_when_the_engine_is_killed_is_pending_after_the_restart_and_runs_r20() {
    let (dir, parent) = directory_with_a_work_order();
    let trunk = free_port();
    let mut engine = engine_with_trunk(dir, trunk, "");
    // The citizen's phone rings for 15 s: the engine dies meanwhile.
    let ringing = citizen(&engine, trunk, "citizen_cancel_or_answer.xml", 1);
    let agent = agent_phone(&engine, "1001", "agent_answer.xml", Duration::from_secs(60));
    engine.log_in_when_registered(&["1001"]);
    let task = create_callback(&engine, &parent);
    stored_task(&engine, task, |t| {
        matches!(t.state, TaskState::Dialing { .. })
    });
    std::thread::sleep(Duration::from_secs(1));
    engine.kill9();
    drop(ringing);
    drop(agent);

    let engine = engine_with_trunk(engine.into_dir(), trunk, "");
    let (status, listing) = http_json(engine.http, "GET", "/callbacks", "");
    assert_eq!(status, 200);
    let listing: serde_json::Value = serde_json::from_str(&listing).unwrap();
    let restored = &listing["callbacks"][0];
    assert_eq!(restored["id"], task.to_string(), "{listing}");
    assert_eq!(
        restored["state"], "pending",
        "dialing before the crash: {listing}"
    );

    let citizen = citizen(&engine, trunk, "citizen_answer.xml", 1);
    let _agent = agent_phone(&engine, "1001", "agent_answer.xml", Duration::from_secs(60));
    engine.log_in_when_registered(&["1001"]);
    citizen.wait().assert_success_against(&engine);
    let done = stored_task(&engine, task, |t| t.state.is_finished());
    assert_eq!(done.state, TaskState::Done, "{done:?}");
    assert_eq!(done.attempts, 1, "the attempt the crash cut is not counted");
}

#[test]
fn a_caller_who_hangs_up_in_the_queue_is_called_back_through_the_trunk() {
    let (dir, _) = directory_with_a_work_order();
    let trunk = free_port();
    let engine = engine_with_trunk(dir, trunk, "");
    // Nobody is logged in: the caller waits in the queue and hangs up after 20 s.
    let _agent = agent_phone(&engine, "1001", "agent_answer.xml", Duration::from_secs(90));
    engine.wait_until_registered("1001");
    Sipp::new("caller_hangs_up.xml", engine.sip)
        .args(["-m", "1"])
        .run(Duration::from_secs(60))
        .assert_success_against(&engine);

    let (status, listing) = http_json(engine.http, "GET", "/callbacks", "");
    assert_eq!(status, 200);
    let value: serde_json::Value = serde_json::from_str(&listing).unwrap();
    let task = &value["callbacks"][0];
    assert_eq!(task["reason"], "missed_call", "{listing}");
    assert_eq!(task["owner"], serde_json::Value::Null);
    assert!(!listing.contains("13700001"), "masked (R12): {listing}");
    let id = TaskId(
        task["id"]
            .as_str()
            .unwrap()
            .trim_start_matches("cb-")
            .parse()
            .unwrap(),
    );

    // The agent logs in: the caller is called back through the trunk.
    let citizen = citizen(&engine, trunk, "citizen_answer.xml", 1);
    engine.log_in_when_registered(&["1001"]);
    citizen.wait().assert_success_against(&engine);
    let done = stored_task(&engine, id, |t| t.state.is_finished());
    assert_eq!(done.state, TaskState::Done, "{done:?}");
    assert_eq!(done.number.dial_string(), "13700001");
}
