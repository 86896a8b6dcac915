//! RFC 4475 torture messages sent byte for byte to the running engine over UDP (R29):
//! each valid one is handled (answered as its method deserves, or, for a response,
//! dropped), each invalid one gets `400` or is dropped, and the engine keeps serving.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Engine, EngineOptions, RawUdpPeer};

/// RFC 4475 §3.1.1: valid messages, which a UAS must take.
const VALID: &[&str] = &[
    "wsinv",
    "intmeth",
    "esc01",
    "escnull",
    "esc02",
    "lwsdisp",
    "longreq",
    "dblreq",
    "semiuri",
    "transports",
    "mpart01",
    "unreason",
    "noreason",
];
/// RFC 4475 §3.1.2: invalid messages, which a UAS must not take.
const INVALID: &[&str] = &[
    "badinv01",
    "clerr",
    "ncl",
    "scalar02",
    "scalarlg",
    "quotbal",
    "ltgtruri",
    "lwsruri",
    "lwsstart",
    "trws",
    "escruri",
    "baddate",
    "regbadct",
    "badaspec",
    "baddn",
    "badvers",
    "mismatch01",
    "mismatch02",
    "bigcode",
];
/// RFC 4475 §3.2–3.4: syntactically fine, the transaction or application layer decides.
const APPLICATION: &[&str] = &[
    "badbranch",
    "insuf",
    "unkscm",
    "novelsc",
    "unksm2",
    "bext01",
    "invut",
    "regaut01",
    "multi01",
    "mcl01",
    "bcast",
    "zeromf",
    "cparam01",
    "cparam02",
    "regescrt",
    "sdp01",
    "inv2543",
];

fn fixtures(names: &[&str]) -> Vec<PathBuf> {
    let dir = PathBuf::from(common::MANIFEST_DIR).join("tests/fixtures/torture");
    names
        .iter()
        .map(|name| {
            let path = dir.join(format!("{name}.sip"));
            assert!(path.is_file(), "{} is missing", path.display());
            path
        })
        .collect()
}

fn status_of(message: &str) -> Option<u16> {
    message.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

/// The engine answers INVITEs only after ringing: with a long ring time no torture
/// INVITE (whose SDP names documentation addresses such as 192.0.2.x) is ever answered,
/// so no RTP leaves 127.0.0.1 during this test.
fn engine() -> Engine {
    Engine::start(EngineOptions {
        ring_before_answer_ms: 9000,
        ..EngineOptions::default()
    })
}

fn still_serving(engine: &Engine, peer: &RawUdpPeer, n: usize) {
    let local = peer.local();
    peer.send(
        format!(
            "OPTIONS sip:8890@{} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-alive-{n}\r\n\
             From: <sip:probe@127.0.0.1>;tag=alive\r\nTo: <sip:8890@127.0.0.1>\r\nCall-ID: alive-{n}\r\n\
             CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            engine.sip
        )
        .as_bytes(),
    );
    peer.expect_status(200, Duration::from_secs(3));
}

#[test]
fn valid_torture_messages_are_handled_and_the_engine_keeps_serving() {
    let mut engine = engine();
    let peer = RawUdpPeer::new(engine.sip);
    for (n, path) in fixtures(VALID).iter().enumerate() {
        let bytes = std::fs::read(path).unwrap();
        peer.send(&bytes);
        let replies = peer.receive_for(Duration::from_millis(150));
        let is_response = bytes.starts_with(b"SIP/2.0 ");
        for reply in &replies {
            let status = status_of(reply).unwrap_or(0);
            assert_ne!(status, 400, "{} is valid but got: {reply}", path.display());
            assert_ne!(status, 0, "{} got a non-response: {reply}", path.display());
        }
        if !is_response {
            assert!(
                !replies.is_empty(),
                "{} (a request) got no answer",
                path.display()
            );
        }
        still_serving(&engine, &peer, n);
    }
    assert!(engine.terminate().success());
}

#[test]
fn invalid_torture_messages_get_400_or_are_dropped_and_the_engine_keeps_serving() {
    let mut engine = engine();
    let peer = RawUdpPeer::new(engine.sip);
    for (n, path) in fixtures(INVALID).iter().enumerate() {
        let bytes = std::fs::read(path).unwrap();
        peer.send(&bytes);
        for reply in peer.receive_for(Duration::from_millis(150)) {
            // RFC 4475 names the answer for two of them: 505 for a SIP version the
            // engine does not speak (badvers), 501 for an unknown method (mismatch02).
            let expected = match path.file_stem().and_then(|s| s.to_str()) {
                Some("badvers") => 505,
                Some("mismatch02") => 501,
                _ => 400,
            };
            assert_eq!(
                status_of(&reply),
                Some(expected),
                "{} is invalid; only {expected} or silence is right, got: {reply}",
                path.display()
            );
        }
        still_serving(&engine, &peer, n);
    }
    assert_eq!(engine.metric("hotline_calls_answered_total", ""), 0.0);
    assert!(engine.terminate().success());
}

#[test]
fn transaction_and_application_layer_torture_messages_never_disturb_the_engine() {
    let mut engine = engine();
    let peer = RawUdpPeer::new(engine.sip);
    for (n, path) in fixtures(APPLICATION).iter().enumerate() {
        peer.send(&std::fs::read(path).unwrap());
        for reply in peer.receive_for(Duration::from_millis(150)) {
            assert!(status_of(&reply).is_some(), "{}: {reply}", path.display());
        }
        still_serving(&engine, &peer, n);
    }
    assert!(engine.terminate().success());
}
