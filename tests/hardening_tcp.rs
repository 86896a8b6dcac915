//! Issue 9 rows 1 and 10 over TCP, black-box against the engine binary on 127.0.0.1:
//! slow-byte (slowloris) and silent connections are closed within the message timeout,
//! an idle one within the idle timeout, one source cannot take more than its share, and
//! framing errors (RFC 4475 `clerr`, an oversize body, no Content-Length) are answered
//! and the connection closed — never a wait for ever.
//!
//! Timeouts are short in these engines' config; every wait is bounded, and the bounds
//! are generous multiples of the timeouts (no wall-clock speed is asserted).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{Engine, EngineOptions, wait_for_metric};

const LIMITS: &str = r#"
[limits]
tcp_message_timeout_ms = 500
tcp_idle_timeout_seconds = 2
tcp_max_connections_per_source = 8
max_body_bytes = 4096
"#;

fn engine() -> Engine {
    Engine::start(EngineOptions {
        extra_config: LIMITS.to_owned(),
        ..EngineOptions::default()
    })
}

fn connect(target: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&target, Duration::from_secs(2)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    stream
}

/// Whether the engine has closed `stream` (a read sees end of file or a reset). Reads
/// and keeps whatever the engine sent before closing.
fn closed_by_engine(stream: &mut TcpStream, received: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// Everything the engine sends until it closes the connection, or panics after `bound`.
fn read_until_closed(stream: &mut TcpStream, bound: Duration) -> String {
    let deadline = Instant::now() + bound;
    let mut received = Vec::new();
    while !closed_by_engine(stream, &mut received) {
        assert!(
            Instant::now() < deadline,
            "connection still open after {bound:?}; received {:?}",
            String::from_utf8_lossy(&received)
        );
    }
    String::from_utf8_lossy(&received).into_owned()
}

fn options_request(target: SocketAddr, local: SocketAddr, call_id: &str, body: &str) -> String {
    format!(
        "OPTIONS sip:8890@{target} SIP/2.0\r\n\
         Via: SIP/2.0/TCP {local};branch=z9hG4bK-{call_id}\r\n\
         From: <sip:tester@127.0.0.1>;tag=t-{call_id}\r\n\
         To: <sip:8890@{target}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn slow_byte_and_silent_connections_are_closed_within_the_message_timeout() {
    let engine = engine();
    let wire = options_request(engine.sip, engine.sip, "slowloris", "");
    let mut trickling: Vec<TcpStream> = (0..5).map(|_| connect(engine.sip)).collect();
    let mut silent = connect(engine.sip);
    let mut open: Vec<bool> = vec![true; trickling.len()];
    let started = Instant::now();
    // One byte every 100 ms on each: the message would take seconds to finish.
    for byte in wire.as_bytes().iter().cycle() {
        for (stream, still_open) in trickling.iter_mut().zip(open.iter_mut()) {
            if *still_open
                && (stream.write_all(&[*byte]).is_err()
                    || closed_by_engine(stream, &mut Vec::new()))
            {
                *still_open = false;
            }
        }
        if open.iter().all(|o| !o) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "slow-byte connections still open after 20 s (timeout 0.5 s): {open:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    read_until_closed(&mut silent, Duration::from_secs(10));
    wait_for_metric(
        &engine,
        "hotline_tcp_connections_closed_total",
        "reason=\"message_timeout\"",
        6.0,
    );
}

#[test]
fn a_connection_that_spoke_then_went_quiet_is_closed_by_the_idle_timeout() {
    let engine = engine();
    let mut stream = connect(engine.sip);
    let local = stream.local_addr().unwrap();
    stream
        .write_all(options_request(engine.sip, local, "idle-1", "").as_bytes())
        .unwrap();
    let received = read_until_closed(&mut stream, Duration::from_secs(15));
    assert!(received.starts_with("SIP/2.0 "), "{received:?}");
    wait_for_metric(
        &engine,
        "hotline_tcp_connections_closed_total",
        "reason=\"idle_timeout\"",
        1.0,
    );
}

#[test]
fn one_source_cannot_hold_more_than_its_share_of_connections() {
    let engine = engine();
    let held: Vec<TcpStream> = (0..8).map(|_| connect(engine.sip)).collect();
    // Let the engine accept all eight before the ninth arrives.
    wait_for_metric(&engine, "hotline_tcp_connections", "", 8.0);
    let mut ninth = connect(engine.sip);
    let received = read_until_closed(&mut ninth, Duration::from_secs(5));
    assert!(received.is_empty(), "{received:?}");
    wait_for_metric(
        &engine,
        "hotline_tcp_connections_closed_total",
        "reason=\"source_limit\"",
        1.0,
    );
    drop(held);
}

#[test]
fn rfc4475_clerr_over_tcp_is_answered_then_closed() {
    let engine = engine();
    let mut stream = connect(engine.sip);
    let local = stream.local_addr().unwrap();
    // Content-Length promises more than ever comes (RFC 4475 §3.1.2.8 `clerr`).
    let wire = options_request(engine.sip, local, "clerr", "v=0\r\n")
        .replace("Content-Length: 5", "Content-Length: 999");
    stream.write_all(wire.as_bytes()).unwrap();
    let received = read_until_closed(&mut stream, Duration::from_secs(10));
    assert!(received.starts_with("SIP/2.0 400 "), "{received:?}");
    assert!(received.contains("Call-ID: clerr"), "{received:?}");
}

#[test]
fn an_oversize_body_over_tcp_gets_413_then_the_connection_closes() {
    let engine = engine();
    let mut stream = connect(engine.sip);
    let local = stream.local_addr().unwrap();
    let body = "a".repeat(1_048_576);
    let wire = options_request(engine.sip, local, "big-tcp", &body);
    // Only the headers: the engine must answer from the Content-Length alone.
    let headers_end = wire.find("\r\n\r\n").unwrap() + 4;
    stream.write_all(&wire.as_bytes()[..headers_end]).unwrap();
    let received = read_until_closed(&mut stream, Duration::from_secs(10));
    assert!(
        received.starts_with("SIP/2.0 413 Request Entity Too Large\r\n"),
        "{received:?}"
    );
}

#[test]
fn a_message_without_content_length_over_tcp_gets_400_then_the_connection_closes() {
    let engine = engine();
    let mut stream = connect(engine.sip);
    let local = stream.local_addr().unwrap();
    let wire =
        options_request(engine.sip, local, "no-length", "").replace("Content-Length: 0\r\n", "");
    stream.write_all(wire.as_bytes()).unwrap();
    let received = read_until_closed(&mut stream, Duration::from_secs(10));
    assert!(received.starts_with("SIP/2.0 400 "), "{received:?}");
    wait_for_metric(
        &engine,
        "hotline_tcp_connections_closed_total",
        "reason=\"framing_error\"",
        1.0,
    );
}
