//! Issue 9 rows 3 and 4, black-box over UDP on 127.0.0.1 (R29): a captured REGISTER
//! replayed from another address earns a fresh challenge, never a binding; an RFC 2069
//! answer (no qop) is refused by default; wrong passwords are throttled per source and
//! per user (then even the right password gets `403` with `Retry-After`), counted in
//! metrics, and each failure leaves a security log line fail2ban can read.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::{Engine, EngineOptions, RawUdpPeer, wait_for_metric};
use hotline::sip::digest::{answer_challenge, parse_challenge};

const WAIT: Duration = Duration::from_secs(5);

/// A peer on another loopback address (all of 127/8 is local on Linux).
fn peer_at(ip: &str, target: SocketAddr) -> RawUdpPeer {
    let socket = UdpSocket::bind((ip, 0)).expect("bind a loopback address");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    RawUdpPeer { socket, target }
}

fn register(peer: &RawUdpPeer, user: &str, cseq: u32, authorization: Option<&str>) -> String {
    let (target, local) = (peer.target, peer.local());
    let auth = authorization
        .map(|value| format!("Authorization: {value}\r\n"))
        .unwrap_or_default();
    format!(
        "REGISTER sip:{target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-reg-{user}-{cseq}-{};rport\r\n\
         From: <sip:{user}@127.0.0.1>;tag=reg-{user}\r\n\
         To: <sip:{user}@127.0.0.1>\r\n\
         Call-ID: reg-{user}-{}@127.0.0.1\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:{user}@{local}>\r\n\
         Expires: 600\r\n\
         Max-Forwards: 70\r\n\
         {auth}\
         Content-Length: 0\r\n\r\n",
        local.port(),
        local.port()
    )
}

/// The first `WWW-Authenticate` value of a `401`.
fn challenge_of(response: &str) -> String {
    response
        .lines()
        .find_map(|l| l.strip_prefix("WWW-Authenticate: "))
        .expect("WWW-Authenticate")
        .trim()
        .to_owned()
}

fn answer(challenge: &str, target: SocketAddr, user: &str, password: &str, nc: u32) -> String {
    let challenge = parse_challenge(challenge).expect("challenge parses");
    answer_challenge(
        &challenge,
        "REGISTER",
        &format!("sip:{target}"),
        user,
        password,
        ("0a4f113b", nc),
    )
    .expect("answer")
}

/// REGISTER without credentials, then the `401`'s challenge.
fn challenge_for(peer: &RawUdpPeer, user: &str, cseq: u32) -> String {
    peer.send(register(peer, user, cseq, None).as_bytes());
    challenge_of(&peer.expect_status(401, WAIT))
}

#[test]
fn a_captured_register_replayed_from_another_address_gets_a_fresh_challenge() {
    let engine = Engine::start(EngineOptions::default());
    let phone = RawUdpPeer::new(engine.sip);
    let challenge = challenge_for(&phone, "1001", 1);
    assert!(challenge.contains("qop=\"auth\""), "{challenge}");
    let authorization = answer(&challenge, engine.sip, "1001", "pw1001", 1);
    phone.send(register(&phone, "1001", 2, Some(&authorization)).as_bytes());
    phone.expect_status(200, WAIT);

    // The thief replays the same credentials, and then with the next nonce-count, from
    // another port: a fresh (stale) challenge each time, never 200.
    let thief = RawUdpPeer::new(engine.sip);
    for (cseq, nc) in [(3, 1), (4, 2)] {
        let replayed = answer(&challenge, engine.sip, "1001", "pw1001", nc);
        thief.send(register(&thief, "1001", cseq, Some(&replayed)).as_bytes());
        let response = thief.expect_status(401, WAIT);
        assert!(challenge_of(&response).contains("stale=true"), "{response}");
    }

    // An RFC 2069 answer (no qop) is refused where the config does not allow it.
    let fresh = challenge_for(&thief, "1002", 5);
    let rfc2069 = parse_challenge(&fresh).map(|mut c| {
        c.qop.clear();
        answer_challenge(
            &c,
            "REGISTER",
            &format!("sip:{}", engine.sip),
            "1002",
            "pw1002",
            ("x", 1),
        )
        .unwrap()
    });
    thief.send(register(&thief, "1002", 6, Some(&rfc2069.unwrap())).as_bytes());
    thief.expect_status(401, WAIT);
    wait_for_metric(
        &engine,
        "hotline_auth_failures_total",
        "reason=\"qop_required\"",
        1.0,
    );
    assert!(
        engine
            .log()
            .contains("security: auth_failed source=127.0.0.1 user=1002 reason=qop_required"),
        "{}",
        engine.log()
    );
}

#[test]
fn wrong_passwords_are_throttled_per_source_and_per_user_with_a_security_log_line() {
    let engine = Engine::start(EngineOptions {
        // Three free failures, then a backoff far longer than the test.
        extra_config:
            "[security]\nauth_failures_before_backoff = 3\nauth_backoff_initial_ms = 60000\n"
                .to_owned(),
        ..EngineOptions::default()
    });
    let guesser = peer_at("127.0.0.2", engine.sip);
    let challenge = challenge_for(&guesser, "1001", 1);
    for (cseq, guess) in (2..).zip(["a", "b", "c", "d"]) {
        let wrong = answer(&challenge, engine.sip, "1001", guess, cseq);
        guesser.send(register(&guesser, "1001", cseq, Some(&wrong)).as_bytes());
        guesser.expect_status(401, WAIT);
    }
    // The right password now: refused unverified, with when to come back.
    let right = answer(&challenge, engine.sip, "1001", "pw1001", 10);
    guesser.send(register(&guesser, "1001", 10, Some(&right)).as_bytes());
    let refused = guesser.expect_status(403, WAIT);
    assert!(refused.contains("Retry-After: "), "{refused}");

    // The source is shut out for every user…
    let other_user = answer(&challenge, engine.sip, "1002", "pw1002", 11);
    guesser.send(register(&guesser, "1002", 11, Some(&other_user)).as_bytes());
    guesser.expect_status(403, WAIT);
    // …and the user from every source, while others go on as before.
    let elsewhere = peer_at("127.0.0.3", engine.sip);
    let fresh = challenge_for(&elsewhere, "1001", 1);
    let right = answer(&fresh, engine.sip, "1001", "pw1001", 1);
    elsewhere.send(register(&elsewhere, "1001", 2, Some(&right)).as_bytes());
    elsewhere.expect_status(403, WAIT);
    let fresh = challenge_for(&elsewhere, "1003", 3);
    let right = answer(&fresh, engine.sip, "1003", "pw1003", 1);
    elsewhere.send(register(&elsewhere, "1003", 4, Some(&right)).as_bytes());
    elsewhere.expect_status(200, WAIT);

    wait_for_metric(
        &engine,
        "hotline_auth_failures_total",
        "reason=\"wrong_password\"",
        4.0,
    );
    wait_for_metric(
        &engine,
        "hotline_auth_throttled_total",
        "scope=\"source\"",
        2.0,
    );
    wait_for_metric(
        &engine,
        "hotline_auth_throttled_total",
        "scope=\"user\"",
        1.0,
    );
    let log = engine.log();
    assert_eq!(
        log.matches("security: auth_failed source=127.0.0.2 user=1001 reason=wrong_password")
            .count(),
        4,
        "{log}"
    );
    assert!(
        log.contains("security: auth_throttled source=127.0.0.2 user=1001"),
        "{log}"
    );
}
