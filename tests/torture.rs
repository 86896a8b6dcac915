//! RFC 4475 torture messages sent byte for byte to the running engine over UDP (R29):
//! each valid one is handled (answered as its method deserves, or, for a response,
//! dropped), each invalid one gets `400` or is dropped, and the engine keeps serving.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Engine, EngineOptions, RawUdpPeer};

/// The torture messages, split by the fixtures' README: `valid/` and `invalid/`.
fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(common::MANIFEST_DIR)
        .join("tests/fixtures/torture")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sip"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
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
    for (n, path) in fixtures("valid").iter().enumerate() {
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
    for (n, path) in fixtures("invalid").iter().enumerate() {
        let bytes = std::fs::read(path).unwrap();
        peer.send(&bytes);
        for reply in peer.receive_for(Duration::from_millis(150)) {
            assert_eq!(
                status_of(&reply),
                Some(400),
                "{} is invalid; only 400 or silence is right, got: {reply}",
                path.display()
            );
        }
        still_serving(&engine, &peer, n);
    }
    assert_eq!(engine.metric("hotline_calls_answered_total", ""), 0.0);
    assert!(engine.terminate().success());
}
