//! Issue 9 row 10 over UDP, black-box: a body over `limits.max_body_bytes` gets `413`
//! (RFC 3261 §21.4.14), a NUL in the Request-URI or a header and a header line with no
//! colon get `400`; none of them reaches the call logic.

mod common;

use std::time::Duration;

use common::{Engine, EngineOptions, RawUdpPeer, wait_for_metric};

fn options(peer: &RawUdpPeer, call_id: &str, extra_header: &str, body: &str) -> String {
    let (target, local) = (peer.target, peer.local());
    format!(
        "OPTIONS sip:8890@{target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-{call_id};rport\r\n\
         From: <sip:tester@127.0.0.1>;tag=t-{call_id}\r\n\
         To: <sip:8890@{target}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Max-Forwards: 70\r\n\
         {extra_header}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn oversize_bodies_nuls_and_colonless_header_lines_are_refused_over_udp() {
    let engine = Engine::start(EngineOptions {
        extra_config: "[limits]\nmax_body_bytes = 2048\n".to_owned(),
        ..EngineOptions::default()
    });
    let peer = RawUdpPeer::new(engine.sip);
    let wait = Duration::from_secs(5);

    peer.send(options(&peer, "big-udp", "", &"a".repeat(3000)).as_bytes());
    let reply = peer.expect_status(413, wait);
    assert!(reply.contains("Call-ID: big-udp"), "{reply}");
    assert!(
        reply.starts_with("SIP/2.0 413 Request Entity Too Large\r\n"),
        "{reply}"
    );

    let nul_uri = options(&peer, "nul-uri", "", "").replacen("sip:8890@", "sip:88\u{0}90@", 1);
    peer.send(nul_uri.as_bytes());
    assert!(peer.expect_status(400, wait).contains("Call-ID: nul-uri"));

    peer.send(options(&peer, "nul-header", "Subject: a\u{0}b\r\n", "").as_bytes());
    assert!(
        peer.expect_status(400, wait)
            .contains("Call-ID: nul-header")
    );

    peer.send(options(&peer, "no-colon", "This header line has no colon\r\n", "").as_bytes());
    assert!(peer.expect_status(400, wait).contains("Call-ID: no-colon"));

    // A body at the limit is still fine: the engine answers the OPTIONS itself.
    peer.send(options(&peer, "at-limit", "", &"a".repeat(2048)).as_bytes());
    let replies = peer.receive_for(Duration::from_secs(2));
    assert!(
        replies
            .iter()
            .all(|r| !r.starts_with("SIP/2.0 413") && !r.starts_with("SIP/2.0 400")),
        "{replies:?}"
    );
    wait_for_metric(
        &engine,
        "hotline_sip_messages_malformed_total",
        "transport=\"udp\"",
        4.0,
    );
}
