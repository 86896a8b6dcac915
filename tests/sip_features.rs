//! Black-box: what real trunks and phones send beyond a plain call (issue 7), with SIPp
//! on 127.0.0.1 against the engine binary: hold and resume by re-INVITE, an RFC 4028
//! session refresh, a late offer, OPTIONS keep-alives and a caller from no allowed
//! trunk (R29). The scenarios are in `tests/sipp/`; each fails the SIPp run on any
//! answer other than the one the RFC asks for (a hold answered `a=sendrecv`, a missing
//! `Session-Expires`, an offer missing from the 200…).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Engine, EngineOptions, Sipp, wait_for_metric, work_orders};
use hotline::workorder::{AbandonReason, CallOutcome, HangupSide};

/// RMS of each channel between `from` and `to` seconds of a recording, and its length.
fn levels(path: &Path, from: f64, to: f64) -> (f64, f64, f64) {
    let mut reader = hound::WavReader::open(path).expect("hound opens the recording");
    let samples: Vec<i16> = reader
        .samples::<i16>()
        .collect::<Result<_, _>>()
        .expect("every sample reads back");
    let seconds = samples.len() as f64 / 2.0 / 8000.0;
    let window = |channel: usize| {
        let first = (from * 8000.0) as usize;
        let last = ((to * 8000.0) as usize).min(samples.len() / 2);
        let sum: f64 = (first..last)
            .map(|i| f64::from(samples[i * 2 + channel]).powi(2))
            .sum();
        (sum / (last.saturating_sub(first)).max(1) as f64).sqrt()
    };
    (seconds, window(0), window(1))
}

#[test]
fn hold_and_resume_by_reinvite_pause_the_media_and_the_recording_keeps_time() {
    let engine = Engine::start(EngineOptions::default());
    Sipp::new("uac_hold.xml", engine.sip)
        .args(["-m", "1"])
        .run(Duration::from_secs(60))
        .assert_success_against(&engine);
    wait_for_metric(&engine, "hotline_recordings_written_total", "", 1.0);
    let recordings = engine.recordings();
    assert_eq!(recordings.len(), 1);
    // 2 s talking, 3 s on hold, 2 s after: the file lasts the whole call (R22).
    let (seconds, _, talking) = levels(&recordings[0], 0.2, 1.8);
    assert!(
        (6.5..=8.5).contains(&seconds),
        "the recording keeps wall-clock time through the hold: {seconds:.2} s"
    );
    assert!(
        talking > 200.0,
        "the greeting before the hold: rms {talking}"
    );
    let (_, _, held) = levels(&recordings[0], 2.6, 4.6);
    assert!(
        held < 50.0,
        "on hold the engine sends nothing, so the caller heard nothing: rms {held}"
    );
    let orders = work_orders(&engine);
    assert_ended_by_the_caller(&orders[0]);
}

/// No agent is logged in: the caller hung up during the greeting (answered) or while
/// queued; either way the caller ended it, not the engine.
fn assert_ended_by_the_caller(order: &hotline::workorder::WorkOrder) {
    assert!(
        matches!(
            order.outcome,
            Some(CallOutcome::Answered)
                | Some(CallOutcome::Abandoned {
                    reason: AbandonReason::CallerHungUpInQueue
                })
        ),
        "{:?}",
        order.outcome
    );
    assert_eq!(order.hangup_side, Some(HangupSide::Caller));
}

#[test]
fn a_session_refresh_by_update_is_answered_with_session_expires_rfc4028() {
    let engine = Engine::start(EngineOptions::default());
    Sipp::new("uac_session_refresh.xml", engine.sip)
        .args(["-m", "1"])
        .run(Duration::from_secs(120))
        .assert_success_against(&engine);
    let orders = work_orders(&engine);
    assert_eq!(orders.len(), 1);
    // Refreshed, so the caller ended it, not the session timer.
    assert_ended_by_the_caller(&orders[0]);
}

#[test]
fn a_late_offer_gets_our_offer_in_the_200_and_its_answer_in_the_ack() {
    let engine = Engine::start(EngineOptions::default());
    Sipp::new("uac_late_offer.xml", engine.sip)
        .args(["-m", "1"])
        .run(Duration::from_secs(60))
        .assert_success_against(&engine);
    wait_for_metric(&engine, "hotline_recordings_written_total", "", 1.0);
    let recordings = engine.recordings();
    assert_eq!(recordings.len(), 1);
    let (seconds, caller, hotline) = levels(&recordings[0], 0.5, 3.5);
    assert!(seconds > 3.0, "{seconds:.2} s recorded");
    assert!(
        caller > 200.0,
        "the caller's audio reached us: rms {caller}"
    );
    assert!(
        hotline > 200.0,
        "the greeting played after the ACK: rms {hotline}"
    );
}

#[test]
fn options_keep_alives_are_answered_200() {
    let engine = Engine::start(EngineOptions::default());
    Sipp::new("uac_options.xml", engine.sip)
        .args(["-m", "3", "-r", "10"])
        .run(Duration::from_secs(30))
        .assert_success_against(&engine);
    assert_eq!(engine.metric("hotline_calls_offered_total", ""), 0.0);
}

#[test]
fn a_caller_from_no_allowed_trunk_gets_403_and_no_work_order_r29() {
    let engine = Engine::start(EngineOptions {
        extra_config: "[[trunks]]\nname = \"carrier\"\nallow = [\"127.0.0.2/32\"]\n".into(),
        ..EngineOptions::default()
    });
    Sipp::new("uac_forbidden.xml", engine.sip)
        .args(["-m", "2", "-r", "10"])
        .run(Duration::from_secs(30))
        .assert_success_against(&engine);
    wait_for_metric(
        &engine,
        "hotline_calls_rejected_total",
        "reason=\"forbidden\"",
        2.0,
    );
    assert_eq!(
        engine.metric("hotline_trunk_refusals_total", "reason=\"address\""),
        2.0
    );
    assert!(
        work_orders(&engine).is_empty(),
        "strangers leave no work order"
    );
    assert_eq!(engine.metric("hotline_calls_offered_total", ""), 0.0);
}

/// Kamailio, the record-routing proxy carriers and SBCs put in front of a hotline.
fn kamailio() -> std::path::PathBuf {
    let path = std::path::PathBuf::from("/usr/sbin/kamailio");
    assert!(
        path.is_file(),
        "kamailio is missing: run scripts/install-test-deps.sh"
    );
    path
}

/// A trunk behind a record-routing proxy (RFC 3261 §12.1.1): the engine copies the
/// proxy's Record-Route into its 180 and 200, so the caller's ACK, re-INVITEs and BYE
/// follow the proxy and reach the call. Without it every such call would end after
/// 64·T1 as "never acknowledged".
#[test]
fn a_call_behind_a_record_routing_proxy_keeps_its_dialog_rfc3261_12_1_1() {
    let kamailio = kamailio();
    let engine = Engine::start(EngineOptions::default());
    let proxy_port = common::free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kamailio.cfg");
    std::fs::write(
        &config,
        format!(
            r#"#!KAMAILIO
debug=2
log_stderror=yes
children=1
listen=udp:127.0.0.1:{proxy_port}
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "maxfwd.so"
loadmodule "siputils.so"
loadmodule "pv.so"
loadmodule "textops.so"
request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (has_totag()) {{
        if (loose_route()) {{ t_relay(); exit; }}
        if (is_method("ACK") && t_check_trans()) {{ t_relay(); exit; }}
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (is_method("CANCEL")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
    record_route();
    $du = "sip:127.0.0.1:{engine_port}";
    t_relay();
}}
"#,
            engine_port = engine.sip.port()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("kamailio.log")).unwrap();
    let mut proxy = std::process::Command::new(kamailio)
        .args(["-DD", "-E", "-m", "64", "-M", "8", "-f"])
        .arg(&config)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("kamailio starts");
    std::thread::sleep(Duration::from_millis(1500));
    let proxy_addr: std::net::SocketAddr = ([127, 0, 0, 1], proxy_port).into();
    let result = Sipp::new("uac_hold.xml", proxy_addr)
        .args(["-m", "1"])
        .run(Duration::from_secs(60));
    // SIGTERM: Kamailio's main process stops its worker processes, then exits; a
    // SIGKILL would leave the workers running after the test.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &proxy.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while matches!(proxy.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = proxy.kill();
    let _ = proxy.wait();
    if !result.status.success() {
        eprintln!(
            "kamailio log:\n{}",
            std::fs::read_to_string(dir.path().join("kamailio.log")).unwrap_or_default()
        );
    }
    result.assert_success_against(&engine);
    let orders = work_orders(&engine);
    assert_eq!(orders.len(), 1);
    assert_ended_by_the_caller(&orders[0]);
    assert!(
        !engine.log().contains("never acknowledged"),
        "the ACK came through the proxy"
    );
}
