//! Black-box: what real trunks and phones send beyond a plain call (issue 7), with SIPp
//! on 127.0.0.1 against the engine binary: hold and resume by re-INVITE, an RFC 4028
//! session refresh, a late offer, OPTIONS keep-alives and a caller from no allowed
//! trunk (R29). The scenarios are in `tests/sipp/`; each fails the SIPp run on any
//! answer other than the one the RFC asks for (a hold answered `a=sendrecv`, a missing
//! `Session-Expires`, an offer missing from the 200…).

mod common;

use std::path::Path;
use std::time::Duration;

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
