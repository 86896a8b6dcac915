//! The agent desk (`/desk`) in headless Chromium against the real engine: the page
//! logs in over the desk WebSocket (docs/desk-protocol.md), sets up its one WebRTC media
//! session with a fake microphone (a WAV of speech), takes a SIPp caller's call, and
//! fills in and submits the work order over the REST API. SIPp plays the caller's
//! speech from a pcap; the engine bridges it to the browser and records both sides.
//!
//! - A full call: a break (小休) and back first; then audio flows both ways (the
//!   browser's `getStats()` counts RTP in and out; the recording's left and right
//!   channels both carry sound after the connect time, R22), the caller is masked on
//!   the desk (R12), forbidden phrases are flagged while typing (R28), the knowledge
//!   base and directory answer during the call (R13, R14), F6 holds and takes back,
//!   wrap-up ends on submit, and the API shows the order owned by the agent who
//!   answered (R7) with the fields the agent entered. A screenshot is saved under
//!   `target/desk.png` (not committed).
//! - A desk that dies while its call rings: the call goes back to the queue at its
//!   place and another agent (a SIPp phone) gets it; the desk's agent is logged out.
//! - The page itself when things go wrong: an unknown token is turned away with the
//!   reason and the protocol's close code (the socket's other refusals, frame by frame,
//!   are tests/desk_webrtc.rs's), and a blocked microphone is a visible warning.
//!
//! Needs Debian's chromium, node and `playwright-core` in tests/browser/node_modules,
//! and SIPp (scripts/install-test-deps.sh installs all of them).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{
    API_TOKEN, DEMO_AGENTS, Engine, EngineOptions, MANIFEST_DIR, Sipp, agent_field, agent_phone,
    browser_dir, channel_levels, http_request, require_browser, wait_for_metric, work_orders,
};
use hotline::api::auth::hash_token;
use serde_json::{Value, json};

const AGENT_1001: &str = "desk-test-agent-1001-token-0123456789";

/// The agent token the desk logs in with, on top of whatever else a test configures.
fn desk_token_config() -> String {
    format!(
        "[[access.tokens]]\nname = \"desk-1001\"\nrole = \"agent\"\nagent = \"1001\"\nsha256 = \"{}\"\n",
        hash_token(AGENT_1001)
    )
}

fn engine(agents_toml: &str) -> Engine {
    Engine::start(EngineOptions {
        agents_toml: agents_toml.to_owned(),
        extra_config: desk_token_config(),
        ..EngineOptions::default()
    })
}

/// The fake microphone: a committed prompt, so the agent's side is speech (the
/// browser's noise suppression would flatten a steady tone).
fn microphone() -> PathBuf {
    Path::new(MANIFEST_DIR).join("dialplans/prompts/menu.wav")
}

/// tests/browser/desk.mjs in one mode, its JSON lines read as they come.
struct DeskBrowser {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl DeskBrowser {
    fn start(mode: &str, engine: &Engine, screenshot: &Path) -> DeskBrowser {
        require_browser();
        let mut child = Command::new("node")
            .arg(browser_dir().join("desk.mjs"))
            .arg(mode)
            .arg(format!("http://{}", engine.http))
            .arg(AGENT_1001)
            .arg(microphone())
            .arg(screenshot)
            .current_dir(browser_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run node");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        DeskBrowser {
            child,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    /// The next step the script reports, which must be `event`; a failed or silent
    /// script fails the test with its own account and the engine's log.
    fn step(&mut self, event: &str, timeout: Duration, engine: &Engine) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    let Ok(value) = serde_json::from_str::<Value>(&line) else {
                        continue;
                    };
                    if value["event"] == event {
                        return value;
                    }
                }
                Err(_) => self.fail(&format!("no {event:?} step"), engine),
            }
        }
    }

    fn fail(&mut self, what: &str, engine: &Engine) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let stderr = std::mem::replace(&mut self.stderr, std::thread::spawn(String::new))
            .join()
            .unwrap_or_default();
        let log = engine.log();
        let tail = &log[log.len().saturating_sub(12_000)..];
        panic!(
            "the desk in the browser: {what}\nsteps: {:#?}\nscript stderr:\n{stderr}\nengine log (tail):\n{tail}",
            self.seen
        );
    }

    fn finish(mut self, engine: &Engine) {
        let status = self.child.wait().expect("node exits");
        if !status.success() {
            self.fail(&format!("the script exited with {status}"), engine);
        }
    }
}

impl Drop for DeskBrowser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn import_directory(engine: &Engine) {
    for (command, file) in [
        ("import-knowledge", "config/knowledge.json"),
        ("import-providers", "config/providers.csv"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_hotline"))
            .args(["work-orders", command])
            .arg(Path::new(MANIFEST_DIR).join(file))
            .arg("--config")
            .arg(&engine.config_path)
            .current_dir(engine.dir.path())
            .output()
            .expect("run the import");
        assert!(
            out.status.success(),
            "{command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn api_json(engine: &Engine, path: &str, token: &str) -> (u16, Value) {
    let (status, body) =
        http_request(engine.http, "GET", path, Some(token)).expect("the API answers");
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// R7, R12, R13, R22, R28: one call from ringing to the submitted work order.
#[test]
fn a_call_taken_on_the_desk_is_heard_both_ways_recorded_and_its_work_order_submitted() {
    // Wrap-up long enough that only the submit can end it within the test.
    let agents = DEMO_AGENTS.replace("wrap_up_seconds = 0", "wrap_up_seconds = 300");
    let engine = engine(&agents);
    import_directory(&engine);
    let screenshot = Path::new(MANIFEST_DIR).join("target/desk.png");
    let _ = std::fs::remove_file(&screenshot);
    let mut desk = DeskBrowser::start("call", &engine, &screenshot);

    let available = desk.step("available", Duration::from_secs(60), &engine);
    assert_eq!(available["agent"], "1001");
    assert_eq!(available["stateShown"], "空闲");
    assert_eq!(available["mediaCheck"]["ok"], true, "{available:#}");
    assert!(
        available["mediaCheck"]["packets"].as_u64() > Some(0),
        "{available:#}"
    );
    assert!(
        !available["addressBar"].as_str().unwrap().contains("token"),
        "the token leaves the address bar: {available}"
    );
    assert_eq!(available["warnings"], json!({}), "no warning at login");
    // A break with its reason, and back, before the first call.
    let paused = &available["paused"];
    assert_eq!(paused["state"], "小休", "{available:#}");
    assert_eq!(paused["reason"], "（休息）");
    assert_eq!(paused["engine"]["reason"], "break");
    let (_, agents_now) = engine.api("GET", "/agents");
    assert_eq!(
        agent_field(&agents_now, "1001", "state").as_deref(),
        Some("available"),
        "{agents_now}"
    );

    // The caller speaks (SIPp's A-law sample, over and over) until the hotline hangs up.
    let caller = Sipp::new("caller_until_bye.xml", engine.sip)
        .args(["-m", "1"])
        .spawn(Duration::from_secs(150));

    let offered = desk.step("offered", Duration::from_secs(60), &engine);
    let call = &offered["offered"];
    assert_eq!(call["queue"], "general");
    let shown_caller = call["caller"].as_str().unwrap();
    assert!(
        shown_caller.contains('*') && !shown_caller.contains("13700001"),
        "R12: the desk shows the caller masked: {offered:#}"
    );
    assert_eq!(offered["shown"]["caller"], shown_caller);
    assert_eq!(offered["shown"]["queue"], "general");
    assert_eq!(offered["shown"]["state"], "振铃");
    assert_eq!(offered["ringing"], true);
    assert_eq!(offered["answerEnabled"], true);
    assert!(offered["answerLabel"].as_str().unwrap().contains("F2"));
    assert!(offered["hangupLabel"].as_str().unwrap().contains("F4"));
    let work_order = call["work_order"].as_str().unwrap().to_owned();

    let done = desk.step("done", Duration::from_secs(120), &engine);
    desk.finish(&engine);
    caller.wait().assert_success_against(&engine);
    wait_for_metric(&engine, "hotline_recordings_written_total", "", 1.0);

    // Audio both ways, as the browser counts it.
    let count = |key: &str| done[key].as_u64().unwrap();
    assert!(
        count("inboundLater") > count("inboundAtConnect"),
        "the browser receives the caller's RTP: {done:#}"
    );
    assert!(
        count("outboundLater") > count("outboundAtConnect"),
        "the browser sends the agent's RTP: {done:#}"
    );
    assert_eq!(done["connected"]["work_order"], work_order.as_str());
    assert_eq!(done["stateOnCall"], "通话中");
    assert_eq!(
        done["warningsOnCall"],
        json!({}),
        "no audio warning while the caller speaks"
    );
    // R28: flagged while typing, cleared once reworded.
    assert_eq!(done["flagged"]["hits"][0]["phrase"], "不知道", "{done:#}");
    assert!(
        done["flagged"]["shown"]
            .as_str()
            .unwrap()
            .contains("不知道")
    );
    // R13, R14: the knowledge base and the directory answered during the call.
    assert!(
        done["knowledgeShown"].as_str().unwrap().contains("社保卡"),
        "{done:#}"
    );
    let provider = done["provider"].as_str().unwrap();
    assert_eq!(done["referralField"], provider);
    // Held and taken back with F6.
    assert_eq!(done["held"], json!([true, false]), "{done:#}");
    assert_eq!(done["holdShown"]["status"], "保持中");
    assert!(
        done["holdShown"]["button"]
            .as_str()
            .unwrap()
            .contains("取回")
    );
    // Hung up with F4, wrap-up, and wrap-up ended by the submit.
    assert_eq!(done["ended"]["by"], "agent", "{done:#}");
    assert_eq!(done["wrapUpShown"], "话后整理");
    let states: Vec<&str> = done["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let wrap_up = states
        .iter()
        .position(|s| *s == "wrap_up")
        .expect("wrap-up");
    assert_eq!(states.last(), Some(&"available"), "{states:?}");
    assert!(wrap_up < states.len() - 1, "{states:?}");
    let sent = done["sent"].as_array().unwrap();
    assert!(
        sent.contains(&json!({"type": "wrapup_done", "work_order": work_order})),
        "{sent:?}"
    );
    assert!(sent.contains(&json!({"type": "hangup", "call": call["call"]})));
    assert!(done["note"].as_str().unwrap().contains("工单已提交"));
    assert!(
        done["todayRow"].as_str().unwrap().contains(shown_caller),
        "the agent's own calls today list it: {done:#}"
    );
    // The page reached nothing but the engine.
    assert_eq!(
        done["requested"],
        json!([
            format!("http://{}", engine.http),
            format!("ws://{}", engine.http)
        ]),
        "{done:#}"
    );
    assert!(
        screenshot.is_file(),
        "no screenshot at {}",
        screenshot.display()
    );

    // R22: after the connect time, the caller on the left and the agent (the browser's
    // microphone) on the right.
    let orders = work_orders(&engine);
    let order = orders
        .iter()
        .find(|o| o.id.as_str() == work_order)
        .expect("the offered order in the store");
    let answered = order.answered_at.expect("the trunk was answered");
    let connected = order.connected_at.expect("the desk answered");
    let at = (connected - answered).num_milliseconds() as f64 / 1000.0;
    let path = engine
        .dir
        .path()
        .join(order.recording_path.as_deref().expect("recording"));
    let (left, right) = channel_levels(&path, at + 0.5, at + 2.5);
    eprintln!(
        "browser RTP in {} -> {}, out {} -> {}; recording after connect: left rms {left:.0}, right rms {right:.0}",
        count("inboundAtConnect"),
        count("inboundLater"),
        count("outboundAtConnect"),
        count("outboundLater")
    );
    assert!(
        left > 200.0,
        "caller's speech on the left after connect: rms {left} ({})",
        path.display()
    );
    assert!(
        right > 200.0,
        "the desk's microphone on the right after connect: rms {right} ({})",
        path.display()
    );

    // R7: the API shows the order owned by the agent, with what the agent entered.
    let (status, detail) = api_json(&engine, &format!("/work-orders/{work_order}"), API_TOKEN);
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["order"]["agent"], "1001", "{detail:#}");
    assert_eq!(detail["order"]["category"], "help");
    assert_eq!(detail["matter"], "家门钥匙丢失，需要上门开锁");
    assert_eq!(detail["answer"], "已转介开锁服务企业，企业将尽快与您联系");
    assert_eq!(detail["urgent"], true);
    assert_eq!(detail["referral"]["enterprise"], provider);
    assert_eq!(
        detail["forbidden_phrases"],
        json!([]),
        "the saved text is clean"
    );
    let (status, own) = api_json(&engine, &format!("/work-orders/{work_order}"), AGENT_1001);
    assert_eq!(status, 200, "the agent reads their own order: {own}");
}

/// A desk closed while its call rings is a phone that un-registered: the call goes
/// back to the queue at its place (ahead of a caller who came later), the desk's agent
/// is logged out, and another agent's phone takes both calls in order.
#[test]
fn a_desk_closed_while_its_call_rings_puts_the_call_back_and_another_agent_takes_it() {
    let engine = engine(DEMO_AGENTS);
    // agent_phone starts SIPp again if its port was taken the moment it started.
    let _phone = agent_phone(
        &engine,
        "1002",
        "agent_hangup_first.xml",
        Duration::from_secs(150),
    );
    engine.wait_until_registered("1002");
    let screenshot = engine.dir.path().join("unused.png");
    let mut desk = DeskBrowser::start("kill", &engine, &screenshot);
    desk.step("available", Duration::from_secs(60), &engine);

    // Two callers a second apart: the first rings on the desk, the second waits.
    let callers = Sipp::new("caller_until_bye.xml", engine.sip)
        .args(["-m", "2", "-l", "2", "-r", "1"])
        .spawn(Duration::from_secs(150));
    let offered = desk.step("offered", Duration::from_secs(60), &engine);
    let first = offered["offered"]["work_order"]
        .as_str()
        .unwrap()
        .to_owned();
    desk.step("closed", Duration::from_secs(30), &engine);
    desk.finish(&engine);

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = engine.api("GET", "/agents");
        if agent_field(&body, "1001", "state").as_deref() == Some("logged_out") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dead desk's agent is still {:?}: {body}\n{}",
            agent_field(&body, "1001", "state"),
            engine.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    engine.log_in_when_registered(&["1002"]);
    callers.wait().assert_success_against(&engine);
    wait_for_metric(&engine, "hotline_recordings_written_total", "", 2.0);

    let orders = work_orders(&engine);
    assert_eq!(orders.len(), 2, "{orders:?}");
    for order in &orders {
        assert_eq!(order.agent.as_deref(), Some("1002"), "{order:?}");
        assert!(order.connected_at.is_some(), "no call lost: {order:?}");
    }
    let connected = |id: &str| {
        orders
            .iter()
            .find(|o| o.id.as_str() == id)
            .and_then(|o| o.connected_at)
            .expect("the desk's call reached 1002")
    };
    let second = orders
        .iter()
        .find(|o| o.id.as_str() != first)
        .expect("the second caller's order");
    assert!(
        connected(&first) < second.connected_at.unwrap(),
        "the call the desk dropped kept its place ahead of the later caller"
    );
}

/// Audio that stops arriving during a call is a visible warning within seconds, and
/// the warning goes when audio comes back. The engine is frozen for a few seconds
/// (SIGSTOP, then SIGCONT) mid-call: nothing reaches the browser while it is.
#[test]
fn audio_that_stops_during_a_call_is_a_visible_warning() {
    let engine = engine(DEMO_AGENTS);
    let screenshot = engine.dir.path().join("unused.png");
    let mut desk = DeskBrowser::start("audio-stops", &engine, &screenshot);
    desk.step("available", Duration::from_secs(60), &engine);
    let caller = Sipp::new("caller_until_bye.xml", engine.sip)
        .args(["-m", "1"])
        .spawn(Duration::from_secs(150));
    let talking = desk.step("talking", Duration::from_secs(60), &engine);
    assert_eq!(
        talking["warnings"],
        json!({}),
        "no warning while audio flows"
    );

    let signal = |name: &str| {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(engine.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name}");
    };
    signal("STOP");
    let warned = desk.step("warned", Duration::from_secs(30), &engine);
    signal("CONT");
    assert_eq!(warned["visible"], true, "{warned:#}");
    assert!(
        warned["warning"].as_str().unwrap().contains("听不到来电方"),
        "{warned:#}"
    );
    let cleared = desk.step("cleared", Duration::from_secs(30), &engine);
    assert_eq!(
        cleared["call"]["ended"],
        Value::Null,
        "the call outlives a few seconds without audio: {cleared:#}\n{}",
        engine.log()
    );
    assert_eq!(cleared["warnings"], json!({}), "{cleared:#}");
    desk.step("done", Duration::from_secs(30), &engine);
    desk.finish(&engine);
    caller.wait().assert_success_against(&engine);
}

/// The page's own refusal: an unknown token is turned away with the reason in Chinese,
/// and the login form stays.
#[test]
fn the_page_turns_an_unknown_token_away_and_says_why() {
    let engine = engine(DEMO_AGENTS);
    let screenshot = engine.dir.path().join("unused.png");
    let mut desk = DeskBrowser::start("login-refused", &engine, &screenshot);
    let done = desk.step("done", Duration::from_secs(60), &engine);
    desk.finish(&engine);
    assert_eq!(done["title"], "坐席工作台");
    assert_eq!(done["loginVisible"], true);
    assert_eq!(done["deskHidden"], true);
    assert_eq!(done["closed"]["code"], 4401, "{done:#}");
    assert_eq!(done["errors"][0]["code"], "unauthenticated", "{done:#}");
    assert!(!done["note"].as_str().unwrap().is_empty(), "{done:#}");
    // The engine carries on.
    let (status, body) = engine.api("GET", "/health");
    assert_eq!((status, body.trim()), (200, "ok"));
}

/// A microphone the agent refused is shown at once, before any call, with the way out;
/// the desk sends no media offer it could not keep.
#[test]
fn a_blocked_microphone_is_a_visible_warning_at_login() {
    let engine = engine(DEMO_AGENTS);
    let screenshot = engine.dir.path().join("unused.png");
    let mut desk = DeskBrowser::start("mic-blocked", &engine, &screenshot);
    let done = desk.step("done", Duration::from_secs(60), &engine);
    desk.finish(&engine);
    assert_eq!(done["micError"], "NotAllowedError", "{done:#}");
    assert_eq!(done["warningVisible"], true);
    assert!(
        done["warning"].as_str().unwrap().contains("麦克风"),
        "{done:#}"
    );
    assert_eq!(done["mediaCheckShown"], "无法使用麦克风");
    assert_eq!(done["retryVisible"], true);
    assert_eq!(done["sent"], json!(["hello"]), "{done:#}");
}
