//! Black-box IVR: the engine on 127.0.0.1 running a dialplan (the shipped
//! `dialplans/8890.toml`, or a small one a test writes), callers as SIPp pressing keys
//! with RFC 4733 telephone-events (sip-tester's `dtmf_2833_N.pcap`, or a capture the
//! test builds), SIP INFO or in-band tones, agents' softphones as SIPp. What the caller
//! chose is read back from the work orders, the metrics, the recording and the engine's
//! log: the menu leads to the right queue, category and priority (R1, R15, R29),
//! complaints overtake consultations, the survey stores the caller's rating of the agent
//! (R7, R8, R24), a silent caller hears the greeting and three repeats and is hung up on
//! while one who speaks is not (R2, R27), a waiting caller can ask for a callback or is
//! promised one when the queue gives up (R3), and a reload changes the flow for new
//! calls only when the new file is valid (R4).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::audio::{RtpPacket, capture, pcma_capture, silence, speech};
use common::{
    Engine, EngineOptions, MANIFEST_DIR, RunningSipp, Sipp, agent_phone, http_json,
    wait_for_metric, work_orders,
};
use hotline::media::g711::{self, Codec};
use hotline::workorder::{
    Category, HangupSide, Satisfaction, WorkOrder, WorkOrderEvent, WorkOrderFile, WorkOrderStore,
};

/// The queues the shipped dialplan sends callers to (`general`, and `complaints` for
/// complaints about the hotline itself), with agent 1001 in both and no wrap-up.
const SHIPPED_PLAN_AGENTS: &str = r#"
[[queues]]
name = "general"
strategy = "longest_idle"
max_wait_seconds = 300
wrap_up_seconds = 0

[[queues]]
name = "complaints"
strategy = "longest_idle"
max_wait_seconds = 300
wrap_up_seconds = 0

[[agents]]
id = "1001"
password = "pw1001"
queues = ["general", "complaints"]
"#;

fn shipped_dialplan() -> PathBuf {
    Path::new(MANIFEST_DIR).join("dialplans/8890.toml")
}

fn prompts_dir() -> PathBuf {
    Path::new(MANIFEST_DIR).join("dialplans/prompts")
}

/// The config lines that make the engine run `dialplan`.
fn ivr_config(dialplan: &Path) -> String {
    format!("[ivr]\ndialplan = \"{}\"\n", dialplan.display())
}

/// An engine running the shipped dialplan.
fn engine_on_shipped_plan() -> Engine {
    Engine::start(EngineOptions {
        agents_toml: SHIPPED_PLAN_AGENTS.to_owned(),
        extra_config: ivr_config(&shipped_dialplan()),
        ..EngineOptions::default()
    })
}

/// An engine on the shipped dialplan with agent 1001's phone registered and logged in,
/// handling its calls with the SIPp scenario `on_call`.
fn engine_with_agent_1001(on_call: &str) -> (Engine, RunningSipp) {
    let engine = engine_on_shipped_plan();
    let phone = agent_phone(&engine, "1001", on_call, Duration::from_secs(120));
    engine.log_in_when_registered(&["1001"]);
    (engine, phone)
}

/// sip-tester's RFC 4733 capture of one key (`"3"`, `"star"`, `"pound"`).
fn key_pcap(key: &str) -> Vec<u8> {
    let path = common::sipp_pcap_dir().join(format!("dtmf_2833_{key}.pcap"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A caller who presses `key` (RFC 4733) a second after the ACK, stays `stay` longer,
/// then hangs up.
fn caller_pressing(engine: &Engine, key: &str, stay: Duration) -> Sipp {
    Sipp::new("caller_presses_key.xml", engine.sip)
        .with_file("key.pcap", &key_pcap(key))
        .args(["-m", "1", "-d", &stay.as_millis().to_string()])
}

/// A silent line (PCMA) `seconds` long on which the caller presses `keys` at the given
/// seconds, as a phone sends them with RFC 4733 (payload type 101): each key 100 ms,
/// an event packet every 20 ms in place of the audio, the end packet sent three times.
fn line_with_keys(seconds: f64, keys: &[(f64, char)]) -> Vec<u8> {
    const KEY_FRAMES: u32 = 5;
    let frames = (seconds * 50.0) as u32;
    let mut packets = Vec::new();
    let mut frame = 0;
    while frame < frames {
        let at_micros = u64::from(frame) * 20_000;
        let timestamp = frame * 160;
        let pressed = keys
            .iter()
            .find(|(at, _)| (at * 50.0) as u32 == frame)
            .map(|(_, key)| *key);
        let Some(key) = pressed else {
            packets.push(RtpPacket {
                at_micros,
                payload_type: 8,
                marker: frame == 0,
                timestamp,
                payload: vec![0xd5; 160],
            });
            frame += 1;
            continue;
        };
        let event = match key {
            '*' => 10,
            '#' => 11,
            digit => digit.to_digit(10).expect("a keypad key") as u8,
        };
        for step in 1..=KEY_FRAMES {
            let end = step == KEY_FRAMES;
            let duration = (step * 160) as u16;
            let mut payload = vec![event, if end { 0x80 | 10 } else { 10 }];
            payload.extend(duration.to_be_bytes());
            for _ in 0..if end { 3 } else { 1 } {
                packets.push(RtpPacket {
                    at_micros: at_micros + u64::from(step - 1) * 20_000,
                    payload_type: 101,
                    marker: step == 1,
                    timestamp,
                    payload: payload.clone(),
                });
            }
        }
        frame += KEY_FRAMES;
    }
    capture(&packets)
}

/// A key as a trunk sends it in the audio: its two tones (`low`, `high` Hz) for `ms`,
/// each at -10 dBm0, in 20 ms PCMA frames.
fn key_tone(low: f64, high: f64, ms: usize) -> Vec<Vec<u8>> {
    let amplitude = 22_663.0 * 10f64.powf(-10.0 / 20.0);
    let samples: Vec<i16> = (0..ms * 8)
        .map(|n| {
            let t = n as f64 / 8000.0;
            let x = (2.0 * std::f64::consts::PI * low * t).sin()
                + (2.0 * std::f64::consts::PI * high * t).sin();
            (amplitude * x) as i16
        })
        .collect();
    samples
        .chunks(160)
        .map(|frame| {
            let mut encoded = Vec::new();
            g711::encode(Codec::Pcma, frame, &mut encoded);
            encoded
        })
        .collect()
}

/// Runs `f` against the engine's work-order store.
fn with_store<T>(
    engine: &Engine,
    f: impl AsyncFnOnce(&hotline::workorder::sqlite::SqliteStore) -> T,
) -> T {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store =
            hotline::workorder::sqlite::SqliteStore::open(&engine.data_dir()).expect("open store");
        f(&store).await
    })
}

fn order_file(engine: &Engine, order: &WorkOrder) -> WorkOrderFile {
    with_store(engine, async |store| store.get_file(&order.id).await)
        .expect("read the work order")
        .expect("the work order exists")
}

fn order_events(engine: &Engine, order: &WorkOrder) -> Vec<WorkOrderEvent> {
    with_store(engine, async |store| store.events(&order.id).await).expect("read the trail")
}

/// The one work order with this category and queue.
fn order_with<'a>(
    orders: &'a [WorkOrder],
    category: Category,
    queue: Option<&str>,
) -> &'a WorkOrder {
    let found: Vec<_> = orders
        .iter()
        .filter(|o| o.category == Some(category) && o.queue.as_deref() == queue)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one order in category {category:?} and queue {queue:?}: {orders:#?}"
    );
    found[0]
}

/// The engine's `queued` log lines (the ACD's queue and the dialplan's priority).
fn queued_lines(engine: &Engine) -> Vec<String> {
    engine
        .log()
        .lines()
        .filter(|l| l.contains(" queued"))
        .map(str::to_owned)
        .collect()
}

/// R1, R15, R29: keys pressed with RFC 4733 during the greeting choose the shipped
/// menu's entries, each reaching its queue at its priority with its category: 1 a
/// consultation (general, 0), 3 a complaint (general, 5), 4 a complaint about the
/// hotline (the supervisors' `complaints` queue, 5, noted on the order).
#[test]
fn rfc4733_keys_choose_the_menu_entry_its_queue_and_priority_r1_r15_r29() {
    let engine = engine_on_shipped_plan();
    // No agent is logged in: each caller waits in its queue, then hangs up.
    let callers: Vec<_> = ["1", "3", "4"]
        .iter()
        .map(|key| {
            caller_pressing(&engine, key, Duration::from_secs(4)).spawn(Duration::from_secs(60))
        })
        .collect();
    for caller in callers {
        caller.wait().assert_success_against(&engine);
    }
    wait_for_metric(&engine, "hotline_recordings_written_total", "", 3.0);

    let orders = work_orders(&engine);
    assert_eq!(orders.len(), 3, "{orders:#?}");
    order_with(&orders, Category::Consultation, Some("general"));
    order_with(&orders, Category::Complaint, Some("general"));
    // R15: a complaint about the hotline is filed where agents cannot read it.
    let about_hotline = order_with(&orders, Category::ServiceComplaint, Some("complaints"));
    let trail = order_events(&engine, about_hotline);
    assert!(
        trail
            .iter()
            .any(|e| e.detail.contains("complaint about the hotline itself")),
        "R15 noted on the order: {trail:#?}"
    );
    assert!(
        orders
            .iter()
            .all(|o| o.queued_at.is_some() && o.agent.is_none()),
        "all waited, none was answered: {orders:#?}"
    );

    let metrics = engine.metrics();
    let value = |name: &str, labels: &str| common::metric_value(&metrics, name, labels);
    assert_eq!(
        value("hotline_calls_queued_total", "queue=\"general\""),
        2.0
    );
    assert_eq!(
        value("hotline_calls_queued_total", "queue=\"complaints\""),
        1.0
    );

    // The priority the dialplan gave each call, as the switch handed it to the ACD.
    let lines = queued_lines(&engine);
    let count = |queue: &str, priority: u8| {
        lines
            .iter()
            .filter(|l| {
                l.contains(&format!("queue=\"{queue}\"")) || l.contains(&format!("queue={queue} "))
            })
            .filter(|l| l.contains(&format!("priority={priority}")))
            .count()
    };
    assert_eq!(
        (
            count("general", 0),
            count("general", 5),
            count("complaints", 5)
        ),
        (1, 1, 1),
        "queued lines: {lines:#?}"
    );
}

/// The shipped menu puts complaints (R1) ahead of consultations: with no agent free, a
/// consultation caller (key 1, priority 0) and then a complaint caller (key 3,
/// priority 5) wait in `general`; when the agent comes, the complaint is connected
/// first although it arrived later.
#[test]
fn a_complaint_overtakes_an_earlier_consultation_in_the_queue_r1() {
    let engine = engine_on_shipped_plan();
    let stay = Duration::from_secs(40);
    let consultation = caller_pressing(&engine, "1", stay).spawn(Duration::from_secs(90));
    wait_for_metric(
        &engine,
        "hotline_calls_queued_total",
        "queue=\"general\"",
        1.0,
    );
    let complaint = caller_pressing(&engine, "3", stay).spawn(Duration::from_secs(90));
    wait_for_metric(
        &engine,
        "hotline_calls_queued_total",
        "queue=\"general\"",
        2.0,
    );

    // The agent talks three seconds to each caller and hangs up first.
    let _phone = agent_phone(
        &engine,
        "1001",
        "agent_hangup_first.xml",
        Duration::from_secs(120),
    );
    engine.log_in_when_registered(&["1001"]);
    complaint.wait().assert_success_against(&engine);
    consultation.wait().assert_success_against(&engine);
    wait_for_metric(&engine, "hotline_recordings_written_total", "", 2.0);

    let orders = work_orders(&engine);
    let consultation = order_with(&orders, Category::Consultation, Some("general"));
    let complaint = order_with(&orders, Category::Complaint, Some("general"));
    assert!(
        complaint.queued_at > consultation.queued_at,
        "the complaint arrived second: {orders:#?}"
    );
    let (Some(first), Some(second)) = (complaint.connected_at, consultation.connected_at) else {
        panic!("the agent took both calls: {orders:#?}\n{}", engine.log());
    };
    assert!(
        first < second,
        "the complaint was connected first: {orders:#?}"
    );
    for order in [complaint, consultation] {
        assert_eq!(order.agent.as_deref(), Some("1001"));
        assert_eq!(order.hangup_side, Some(HangupSide::Agent), "R8: {order:?}");
    }
}

/// R7, R8, R24: after the agent hangs up the caller hears the survey (the closing with
/// the agent's number, then the invitation) and rates the call with a key; the rating
/// is stored on the work order with the agent's number and counted for that agent.
#[test]
fn after_the_agent_hangs_up_the_callers_rating_is_stored_r7_r8_r24() {
    let (engine, _phone) = engine_with_agent_1001("agent_hangup_first.xml");

    // Key 1 (a consultation) during the greeting; the agent answers, talks three
    // seconds and leaves; 15 s after key 1 the survey plays and the caller presses 4.
    Sipp::new("caller_rates_survey.xml", engine.sip)
        .with_file("menu-key.pcap", &key_pcap("1"))
        .with_file("rating-key.pcap", &key_pcap("4"))
        .args(["-m", "1", "-d", "15000"])
        .run(Duration::from_secs(150))
        .assert_success_against(&engine);
    wait_for_metric(&engine, "hotline_recordings_written_total", "", 1.0);

    let orders = work_orders(&engine);
    assert_eq!(orders.len(), 1, "{orders:#?}");
    let order = &orders[0];
    assert_eq!(order.agent.as_deref(), Some("1001"), "R7: {order:?}");
    assert_eq!(order.category, Some(Category::Consultation));
    assert_eq!(
        order.hangup_side,
        Some(HangupSide::Agent),
        "R8: the agent left first, the hotline ended the call after the survey: {order:?}"
    );
    let file = order_file(&engine, order);
    assert_eq!(
        file.matter.service_rating,
        Some(Satisfaction::Satisfied),
        "R24: 4 on 1–5 is satisfied"
    );
    let trail = order_events(&engine, order);
    assert!(
        trail
            .iter()
            .any(|e| e.detail.contains("survey: 4 on 1–5 for agent 1001")),
        "the keypad score and the agent on the trail: {trail:#?}"
    );
    assert_eq!(
        engine.metric("hotline_survey_ratings_total", "agent=\"1001\",score=\"4\""),
        1.0,
        "counted for the agent"
    );
}

/// R24 with a wrong key first: 9 is not on the 1–5 scale and is not stored (the survey
/// replays its question); the 2 pressed after it is stored (dissatisfied) and counted
/// for the agent. Keys from a phone's RFC 4733 stream: 1 at the menu, then 9 and 2
/// while the survey plays (it starts once the agent has talked three seconds).
#[test]
fn a_wrong_key_in_the_survey_is_not_stored_and_the_next_rating_is_r24() {
    let (engine, _phone) = engine_with_agent_1001("agent_hangup_first.xml");
    Sipp::new("caller_keys_until_bye.xml", engine.sip)
        .with_file(
            "keys.pcap",
            &line_with_keys(60.0, &[(1.0, '1'), (16.0, '9'), (19.0, '2')]),
        )
        .args(["-m", "1"])
        .run(Duration::from_secs(150))
        .assert_success_against(&engine);
    wait_for_metric(&engine, "hotline_recordings_written_total", "", 1.0);

    let orders = work_orders(&engine);
    assert_eq!(orders.len(), 1, "{orders:#?}");
    let order = &orders[0];
    assert_eq!(order.agent.as_deref(), Some("1001"), "{order:?}");
    assert_eq!(
        order_file(&engine, order).matter.service_rating,
        Some(Satisfaction::Dissatisfied),
        "2 on 1–5"
    );
    let trail = order_events(&engine, order);
    let ratings: Vec<_> = trail
        .iter()
        .filter(|e| e.detail.contains("survey:"))
        .map(|e| e.detail.clone())
        .collect();
    assert_eq!(
        ratings.len(),
        1,
        "one rating, not the wrong key: {trail:#?}"
    );
    assert!(
        ratings[0].contains("survey: 2 on 1–5 for agent 1001"),
        "{ratings:?}"
    );
    let metrics = engine.metrics();
    assert_eq!(
        common::metric_value(
            &metrics,
            "hotline_survey_ratings_total",
            "agent=\"1001\",score=\"2\""
        ),
        1.0
    );
    assert_eq!(
        common::metric_value(
            &metrics,
            "hotline_survey_ratings_total",
            "agent=\"1001\",score=\"9\""
        ),
        0.0
    );
}

/// While waiting, the shipped queue offers a callback on key 1: the caller who chose
/// a consultation with 1 and presses 1 again leaves the queue, hears that the hotline
/// will call back, and is hung up on; the request is on the work order. The same key
/// twice (two presses, two RFC 4733 events) counts twice.
#[test]
fn a_caller_waiting_in_the_queue_asks_for_a_callback_with_a_key() {
    let engine = engine_on_shipped_plan();
    Sipp::new("caller_keys_until_bye.xml", engine.sip)
        .with_file(
            "keys.pcap",
            &line_with_keys(60.0, &[(1.0, '1'), (5.0, '1')]),
        )
        .args(["-m", "1"])
        .run(Duration::from_secs(120))
        .assert_success_against(&engine);
    wait_for_metric(&engine, "hotline_recordings_written_total", "", 1.0);

    let orders = work_orders(&engine);
    assert_eq!(orders.len(), 1, "{orders:#?}");
    let order = &orders[0];
    assert_eq!(order.category, Some(Category::Consultation), "{order:?}");
    assert_eq!(order.queue.as_deref(), Some("general"), "{order:?}");
    assert_eq!(order.agent, None, "{order:?}");
    assert_eq!(order.hangup_side, Some(HangupSide::Hotline), "{order:?}");
    let trail = order_events(&engine, order);
    assert!(
        trail.iter().any(|e| e
            .detail
            .contains("asked to be called back instead of waiting in general")),
        "{trail:#?}"
    );
}

/// When the queue's maximum wait passes with no agent (the agents file's overflow to
/// the dialplan), the shipped plan promises a callback (R3: not cut off): the request
/// goes on the work order and the hotline hangs up after saying so.
#[test]
fn a_caller_who_waited_the_queues_maximum_is_promised_a_callback_r3() {
    let engine = Engine::start(EngineOptions {
        agents_toml: SHIPPED_PLAN_AGENTS.replacen(
            "max_wait_seconds = 300",
            "max_wait_seconds = 3\noverflow = \"dialplan:callback-after-overflow\"",
            1,
        ),
        extra_config: ivr_config(&shipped_dialplan()),
        ..EngineOptions::default()
    });
    Sipp::new("caller_keys_until_bye.xml", engine.sip)
        .with_file("keys.pcap", &line_with_keys(60.0, &[(1.0, '1')]))
        .args(["-m", "1"])
        .run(Duration::from_secs(120))
        .assert_success_against(&engine);
    wait_for_metric(&engine, "hotline_recordings_written_total", "", 1.0);

    let orders = work_orders(&engine);
    assert_eq!(orders.len(), 1, "{orders:#?}");
    let order = &orders[0];
    assert_eq!(order.queue.as_deref(), Some("general"), "{order:?}");
    assert_eq!(order.hangup_side, Some(HangupSide::Hotline), "{order:?}");
    let trail = order_events(&engine, order);
    assert!(
        trail
            .iter()
            .any(|e| e.detail.contains("the caller is to be called back")),
        "{trail:#?}"
    );
}

/// R24 on a trunk without telephone-events: the rating is an in-band tone too. The
/// caller chooses 1 with its tones, talks to the agent (sip-tester's speech sample, which
/// must not be taken for a key), and after the agent has left presses 5 in the audio.
#[test]
fn an_in_band_rating_after_the_agent_leaves_is_stored_r24() {
    let (engine, _phone) = engine_with_agent_1001("agent_hangup_first.xml");
    let mut audio = silence(1.0);
    audio.extend(key_tone(697.0, 1209.0, 100)); // 1
    audio.extend(speech());
    audio.extend(silence(8.0));
    audio.extend(key_tone(770.0, 1336.0, 100)); // 5
    audio.extend(silence(40.0));
    Sipp::new("caller_audio_until_bye.xml", engine.sip)
        .with_file("audio.pcap", &pcma_capture(&audio))
        .args(["-m", "1"])
        .run(Duration::from_secs(150))
        .assert_success_against(&engine);
    wait_for_metric(&engine, "hotline_recordings_written_total", "", 1.0);

    let orders = work_orders(&engine);
    assert_eq!(orders.len(), 1, "{orders:#?}");
    let order = &orders[0];
    assert_eq!(order.category, Some(Category::Consultation), "{order:?}");
    assert_eq!(order.agent.as_deref(), Some("1001"), "{order:?}");
    assert_eq!(
        order_file(&engine, order).matter.service_rating,
        Some(Satisfaction::Satisfied),
        "5 on 1–5"
    );
    assert_eq!(
        engine.metric("hotline_survey_ratings_total", "agent=\"1001\",score=\"5\""),
        1.0
    );
}

/// One channel of a stereo recording, as samples.
fn channel(path: &Path, channel: usize) -> Vec<i16> {
    let mut reader = hound::WavReader::open(path).expect("hound opens the recording");
    assert_eq!(reader.spec().channels, 2);
    assert_eq!(reader.spec().sample_rate, 8000);
    reader
        .samples::<i16>()
        .map(|s| s.expect("sample"))
        .skip(channel)
        .step_by(2)
        .collect()
}

fn wav_seconds(path: &Path) -> f64 {
    let reader = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    f64::from(reader.duration()) / f64::from(reader.spec().sample_rate)
}

/// The stretches of sound in `samples` (8 kHz), as (start, length) in seconds: 100 ms
/// windows above `rms`, with quiet gaps shorter than `bridge` seconds closed.
fn sound_stretches(samples: &[i16], rms: f64, bridge: f64) -> Vec<(f64, f64)> {
    const WINDOW: usize = 800;
    let loud: Vec<bool> = samples
        .chunks(WINDOW)
        .map(|w| {
            let energy = w.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
            (energy / w.len() as f64).sqrt() > rms
        })
        .collect();
    let mut stretches: Vec<(f64, f64)> = Vec::new();
    for (i, _) in loud.iter().enumerate().filter(|(_, l)| **l) {
        let at = i as f64 * 0.1;
        match stretches.last_mut() {
            Some((start, length)) if at - (*start + *length) < bridge => {
                *length = at + 0.1 - *start
            }
            _ => stretches.push((at, 0.1)),
        }
    }
    stretches
}

/// What the shipped dialplan does with a caller who says nothing, in seconds, read
/// from the file and the prompts' lengths.
struct SilentCallerScript {
    /// The welcome menu's prompts (the greeting, then the menu).
    greeting: f64,
    /// The menu's wait for a key after its prompts.
    menu_timeout: f64,
    repeats: usize,
    /// "您好,请问有什么可以帮您?"
    repeat: f64,
    /// The wait after each repeat.
    wait: f64,
    goodbye: f64,
}

fn shipped_silent_caller_script() -> SilentCallerScript {
    let plan: toml::Value = toml::from_str(&std::fs::read_to_string(shipped_dialplan()).unwrap())
        .expect("the shipped dialplan is TOML");
    let node = |name: &str| {
        plan["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("node {name} in the shipped dialplan"))
            .clone()
    };
    let (welcome, script) = (node("welcome"), node("silent-caller"));
    assert_eq!(welcome["on_silence"].as_str(), Some("silent-caller"));
    let seconds = |file: &toml::Value| wav_seconds(&prompts_dir().join(file.as_str().unwrap()));
    SilentCallerScript {
        greeting: welcome["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .map(seconds)
            .sum(),
        menu_timeout: welcome["timeout_seconds"].as_integer().unwrap() as f64,
        repeats: script["repeats"].as_integer().unwrap() as usize,
        repeat: seconds(&script["prompt"]),
        wait: script["wait_seconds"].as_integer().unwrap() as f64,
        goodbye: seconds(&script["goodbye"]),
    }
}

/// R27 (and R2's `silent`) with the shipped dialplan: a caller who neither speaks nor presses a key hears
/// the greeting and menu, then "您好,请问有什么可以帮您?" three times with the script's
/// pause after each, then the goodbye; the hotline hangs up (the caller's scenario
/// fails without the BYE) and the work order's category is `silent`.
#[test]
fn a_silent_caller_hears_the_greeting_three_repeats_and_the_goodbye_r2_r27() {
    let SilentCallerScript {
        greeting,
        menu_timeout,
        repeats,
        repeat,
        wait,
        goodbye,
    } = shipped_silent_caller_script();
    assert_eq!(repeats, 3, "R27: three times");

    let engine = engine_on_shipped_plan();
    let expected = greeting + menu_timeout + repeats as f64 * (repeat + wait) + goodbye;
    Sipp::new("caller_silent.xml", engine.sip)
        .with_file("silence.pcap", &pcma_capture(&silence(expected + 60.0)))
        .args(["-m", "1"])
        .run(Duration::from_secs(240))
        .assert_success_against(&engine);
    wait_for_metric(&engine, "hotline_recordings_written_total", "", 1.0);

    let orders = work_orders(&engine);
    assert_eq!(orders.len(), 1, "{orders:#?}");
    let order = &orders[0];
    assert_eq!(order.category, Some(Category::Silent), "{order:?}");
    assert_eq!(order.hangup_side, Some(HangupSide::Hotline), "{order:?}");
    assert_eq!(
        order.queue, None,
        "a silent caller is not queued: {order:?}"
    );

    let path = engine
        .dir
        .path()
        .join(order.recording_path.as_deref().expect("recorded"));
    let caller = channel(&path, 0);
    let hotline = channel(&path, 1);
    assert!(
        sound_stretches(&caller, 100.0, 1.0).is_empty(),
        "the caller's channel is silent"
    );
    // The right channel is what the caller heard: sound where the prompts play, quiet
    // where the script waits for the caller.
    let heard = sound_stretches(&hotline, 100.0, 1.0);
    let mut want = vec![greeting];
    want.extend(std::iter::repeat_n(repeat, repeats));
    want.push(goodbye);
    let lengths: Vec<f64> = heard.iter().map(|(_, length)| *length).collect();
    assert_eq!(
        heard.len(),
        want.len(),
        "greeting, {repeats} repeats and the goodbye, nothing more: heard {heard:?}, want lengths {want:?}"
    );
    for (got, want) in lengths.iter().zip(&want) {
        assert!(
            (got - want).abs() < 0.6,
            "a prompt's stretch is {got:.1} s, its file {want:.1} s: heard {heard:?}"
        );
    }
    for pair in heard.windows(2) {
        let gap = pair[1].0 - (pair[0].0 + pair[0].1);
        assert!(
            gap > menu_timeout.min(wait) - 0.6,
            "the script waits for the caller between prompts: heard {heard:?}"
        );
    }
    let total = hotline.len() as f64 / 8000.0;
    assert!(
        total > expected - 1.0,
        "the recording ({total:.1} s) holds the whole script ({expected:.1} s)"
    );
}

/// R27: a caller who talks but presses no key is not taken for silent. The speech
/// (sip-tester's sample, on a trunk without telephone-events, so the in-band key
/// detector hears it too) is neither a key nor silence: when the menu times out the
/// call goes to the queue, not to the no-answer script.
#[test]
fn a_caller_who_speaks_without_pressing_a_key_is_queued_not_taken_for_silent_r27() {
    let script = shipped_silent_caller_script();
    let engine = engine_on_shipped_plan();
    let mut audio = silence(1.0);
    audio.extend(speech());
    let stay = script.greeting + script.menu_timeout + 5.0;
    Sipp::new("caller_plays_audio.xml", engine.sip)
        .with_file("audio.pcap", &pcma_capture(&audio))
        .args(["-m", "1", "-d", &((stay * 1000.0) as u64).to_string()])
        .run(Duration::from_secs(120))
        .assert_success_against(&engine);
    wait_for_metric(&engine, "hotline_recordings_written_total", "", 1.0);

    let orders = work_orders(&engine);
    assert_eq!(orders.len(), 1, "{orders:#?}");
    assert_eq!(
        orders[0].queue.as_deref(),
        Some("general"),
        "{:?}",
        orders[0]
    );
    assert_eq!(
        orders[0].category, None,
        "no key, no category: {:?}",
        orders[0]
    );
    assert_eq!(
        engine.metric("hotline_calls_queued_total", "queue=\"general\""),
        1.0
    );
}

/// R27: a caller silent through the greeting who speaks during the no-answer
/// script's first pause is taken to the queue (`on_voice`): no more repeats, no
/// goodbye, no `silent` category.
#[test]
fn a_caller_who_speaks_during_the_no_answer_script_goes_to_the_queue_r27() {
    let script = shipped_silent_caller_script();
    let engine = engine_on_shipped_plan();
    // Silent until the middle of the pause after the first "您好,请问有什么可以帮您?".
    let speaks_at = script.greeting + script.menu_timeout + script.repeat + script.wait / 2.0;
    let mut audio = silence(speaks_at);
    audio.extend(speech());
    Sipp::new("caller_plays_audio.xml", engine.sip)
        .with_file("audio.pcap", &pcma_capture(&audio))
        .args([
            "-m",
            "1",
            "-d",
            &(((speaks_at + 12.0) * 1000.0) as u64).to_string(),
        ])
        .run(Duration::from_secs(120))
        .assert_success_against(&engine);
    wait_for_metric(&engine, "hotline_recordings_written_total", "", 1.0);

    let orders = work_orders(&engine);
    assert_eq!(orders.len(), 1, "{orders:#?}");
    let order = &orders[0];
    assert_eq!(order.queue.as_deref(), Some("general"), "{order:?}");
    assert_ne!(order.category, Some(Category::Silent), "{order:?}");
    assert_eq!(
        order.hangup_side,
        Some(HangupSide::Caller),
        "the caller, not the script, ended the call: {order:?}"
    );
}

/// R29's fallback for trunks without telephone-events: the key's tones in the audio
/// (3: 697 Hz + 1477 Hz, 100 ms) choose the menu entry: a complaint, in `general`.
#[test]
fn an_in_band_key_tone_chooses_the_menu_entry_r1_r29() {
    let engine = engine_on_shipped_plan();
    let mut audio = silence(1.0);
    audio.extend(key_tone(697.0, 1477.0, 100));
    audio.extend(silence(2.0));
    Sipp::new("caller_plays_audio.xml", engine.sip)
        .with_file("audio.pcap", &pcma_capture(&audio))
        .args(["-m", "1", "-d", "4000"])
        .run(Duration::from_secs(60))
        .assert_success_against(&engine);
    wait_for_metric(&engine, "hotline_recordings_written_total", "", 1.0);

    let orders = work_orders(&engine);
    assert_eq!(orders.len(), 1, "{orders:#?}");
    assert_eq!(
        orders[0].category,
        Some(Category::Complaint),
        "{:?}",
        orders[0]
    );
    assert_eq!(
        orders[0].queue.as_deref(),
        Some("general"),
        "{:?}",
        orders[0]
    );
}

/// The dialplan of the reload test: key 3 tags the call `category`, anything else
/// (or nothing) goes straight to the queue. The menu waits long, so a key pressed
/// late still counts.
fn reload_plan(category: &str) -> String {
    format!(
        r#"start = "welcome"

[[nodes]]
name = "welcome"
kind = "menu"
prompts = ["greeting.wav"]
choices = [{{ digit = "3", next = "tag" }}]
timeout_seconds = 30
timeout_retries = 0
invalid_retries = 0
on_timeout = "queue"
on_invalid = "queue"

[[nodes]]
name = "tag"
kind = "set"
category = "{category}"
next = "queue"

[[nodes]]
name = "queue"
kind = "queue"
queue = "general"
priority = 0
hold_music = "hold-music.wav"
overflow = "bye"
after_agent = "bye"

[[nodes]]
name = "bye"
kind = "hangup"
prompts = ["closing.wav"]
"#
    )
}

/// R4: `POST /reload` (and SIGHUP) with a changed dialplan, no restart: new calls take the new version, a call in
/// progress finishes on the one it started with; a reload with an invalid file is
/// refused (422, with file:line: reason) and the old version stays.
#[test]
fn reloading_the_dialplan_changes_new_calls_and_an_invalid_file_keeps_the_old_one_r4() {
    let dir = tempfile::tempdir().unwrap();
    let dialplan = dir.path().join("dialplan.toml");
    std::fs::write(&dialplan, reload_plan("complaint")).unwrap();
    let engine = Engine::start_in(
        dir,
        EngineOptions {
            extra_config: ivr_config(&dialplan),
            ..EngineOptions::default()
        },
    );
    // A call in progress when the reload happens: it started on the first version and
    // presses 3 (SIP INFO) only 8 s after the ACK, after the reload.
    let early = Sipp::new("caller_info_key.xml", engine.sip)
        .args(["-m", "1", "-key", "digit", "3", "-d", "8000"])
        .spawn(Duration::from_secs(60));
    wait_for_metric(&engine, "hotline_calls_offered_total", "", 1.0);

    std::fs::write(&dialplan, reload_plan("report")).unwrap();
    let (status, body) = engine.api("POST", "/reload");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("dialplan version"), "{body}");
    early.wait().assert_success_against(&engine);

    caller_pressing(&engine, "3", Duration::from_secs(2))
        .run(Duration::from_secs(60))
        .assert_success_against(&engine);

    // An unknown node: refused with where and why; the running version stays.
    let broken = reload_plan("report").replace("next = \"tag\"", "next = \"nowhere\"");
    std::fs::write(&dialplan, &broken).unwrap();
    let (status, body) = engine.api("POST", "/reload");
    assert_eq!(status, 422, "{body}");
    let line = broken
        .lines()
        .position(|l| l.contains("nowhere"))
        .expect("the broken line")
        + 1;
    assert!(
        body.contains(&format!("{}:{line}:", dialplan.display())) && body.contains("nowhere"),
        "file:line: reason in {body}"
    );
    caller_pressing(&engine, "3", Duration::from_secs(2))
        .run(Duration::from_secs(60))
        .assert_success_against(&engine);

    // SIGHUP reloads the same way.
    std::fs::write(&dialplan, reload_plan("suggestion")).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &engine.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !engine.log().contains("reloaded (SIGHUP)") {
        assert!(
            std::time::Instant::now() < deadline,
            "no reload after SIGHUP:\n{}",
            engine.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    caller_pressing(&engine, "3", Duration::from_secs(2))
        .run(Duration::from_secs(60))
        .assert_success_against(&engine);
    wait_for_metric(&engine, "hotline_recordings_written_total", "", 4.0);

    let mut by_time = work_orders(&engine);
    assert_eq!(by_time.len(), 4, "{by_time:#?}");
    by_time.sort_by_key(|o| o.offered_at);
    assert!(
        by_time
            .iter()
            .all(|o| o.queue.as_deref() == Some("general")),
        "every call went on to the queue: {by_time:#?}"
    );
    let categories: Vec<_> = by_time.iter().map(|o| o.category).collect();
    assert_eq!(
        categories,
        [
            Some(Category::Complaint),
            Some(Category::Report),
            Some(Category::Report),
            Some(Category::Suggestion)
        ],
        "the call in progress kept its version; the next took the new one; the broken file changed nothing; SIGHUP reloaded"
    );
}

/// A phone that sends its keys as SIP INFO (`application/dtmf-relay`, `Signal=3`)
/// chooses the menu entry too: a complaint, in `general`.
#[test]
fn a_sip_info_key_chooses_the_menu_entry_r1() {
    let engine = engine_on_shipped_plan();
    Sipp::new("caller_info_key.xml", engine.sip)
        .args(["-m", "1", "-key", "digit", "3", "-d", "1000"])
        .run(Duration::from_secs(60))
        .assert_success_against(&engine);
    wait_for_metric(&engine, "hotline_recordings_written_total", "", 1.0);
    let orders = work_orders(&engine);
    assert_eq!(orders.len(), 1, "{orders:#?}");
    assert_eq!(
        orders[0].category,
        Some(Category::Complaint),
        "{:?}",
        orders[0]
    );
    assert_eq!(orders[0].queue.as_deref(), Some("general"));
    assert_eq!(
        engine.metric("hotline_calls_queued_total", "queue=\"general\""),
        1.0
    );
}

/// R27 and seed §6.5.3: an agent hands the caller they are talking to to the nuisance
/// script through the API. The engine takes the caller back (BYE to the agent's phone),
/// plays the warning and hangs up; the work order says `nuisance`, taken by the agent,
/// ended by the hotline. With no call any more, the same request is a JSON 404.
#[test]
fn an_agent_hands_a_caller_to_the_nuisance_script_through_the_api_r27() {
    let (engine, _phone) = engine_with_agent_1001("agent_answer.xml");
    let caller = Sipp::new("caller_keys_until_bye.xml", engine.sip)
        .with_file("keys.pcap", &line_with_keys(90.0, &[(1.0, '1')]))
        .args(["-m", "1"])
        .spawn(Duration::from_secs(150));
    wait_for_metric(
        &engine,
        "hotline_calls_connected_total",
        "queue=\"general\"",
        1.0,
    );
    let request = r#"{"script": "nuisance", "agent": "1001"}"#;
    let (status, body) = http_json(engine.http, "POST", "/calls/script", request);
    assert_eq!(status, 200, "{body}");
    // The caller's scenario ends only with the engine's BYE, after the warning.
    caller.wait().assert_success_against(&engine);
    wait_for_metric(&engine, "hotline_recordings_written_total", "", 1.0);
    let orders = work_orders(&engine);
    assert_eq!(orders.len(), 1, "{orders:#?}");
    let order = &orders[0];
    assert_eq!(order.category, Some(Category::Nuisance), "{order:?}");
    assert_eq!(order.agent.as_deref(), Some("1001"), "R7: {order:?}");
    assert_eq!(order.hangup_side, Some(HangupSide::Hotline), "{order:?}");

    let (status, body) = http_json(engine.http, "POST", "/calls/script", request);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("not connected to a caller"), "{body}");
}
