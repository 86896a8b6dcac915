//! Every refusal of every API route is JSON with a stable code, a message for people
//! and the right status (R12; issue 8: "errors are always JSON with a stable error
//! code"): the agent routes (`/agents`, `/calls`, `/reload`), the wallboard's stream and
//! actions, the desk's path parameters, and a wrong method or path anywhere. A refused
//! request stores nothing.
//! Runs the real engine binary on 127.0.0.1; no SIP peer is needed.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{API_TOKEN, Engine, EngineOptions};
use serde_json::Value;

/// An answer: status, head (lower-cased), body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP answer");
    Answer {
        status: head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status"),
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

const BEARER: &str = "Bearer test-token-0123456789abcdef";
const JSON: (&str, &str) = ("Content-Type", "application/json");

/// Asserts a JSON error with `status` and `code` and a non-empty message.
fn assert_json_error(answer: &Answer, status: u16, code: &str, what: &str) {
    assert_eq!(answer.status, status, "{what}: {}", answer.body);
    assert!(
        answer.head.contains("content-type: application/json"),
        "{what}: not declared JSON:\n{}",
        answer.head
    );
    let value: Value = serde_json::from_str(&answer.body)
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {:?}", answer.body));
    assert_eq!(value["error"]["code"], code, "{what}: {}", answer.body);
    let message = value["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.trim().is_empty(), "{what}: no message");
}

#[test]
fn agent_route_refusals_are_json_with_the_right_status_r12() {
    assert_eq!(BEARER, format!("Bearer {API_TOKEN}"));
    let engine = Engine::start(EngineOptions::default());
    let auth = ("Authorization", BEARER);
    let http = engine.http;

    let answer = send(http, "POST", "/agents/1001/dance", &[auth], "");
    assert_json_error(&answer, 404, "not_found", "unknown agent action");
    assert!(answer.body.contains("login, logout, pause, resume"));

    let answer = send(http, "POST", "/agents/9999/login", &[auth], "");
    assert_json_error(&answer, 409, "conflict", "unknown agent");
    assert!(answer.body.contains("9999"), "{}", answer.body);

    // 1001 is logged out: pausing is refused in the agent's state.
    let answer = send(http, "POST", "/agents/1001/pause", &[auth], "");
    assert_json_error(&answer, 409, "conflict", "pause a logged-out agent");

    for (method, path) in [("GET", "/calls"), ("DELETE", "/agents"), ("GET", "/reload")] {
        let answer = send(http, method, path, &[auth], "");
        assert_json_error(
            &answer,
            405,
            "method_not_allowed",
            &format!("{method} {path}"),
        );
    }
    let answer = send(http, "GET", "/agents/1001/nothing/here", &[auth], "");
    assert_json_error(&answer, 404, "not_found", "no such route");
    // A path segment that is not UTF-8 once decoded.
    let answer = send(http, "POST", "/agents/%FF/login", &[auth], "");
    assert_json_error(&answer, 400, "invalid_query", "agent id not UTF-8");

    // Bad bodies for an outbound call: each refused before the switch sees them.
    let good = r#"{"agent":"1001","destination":"sip:4000@127.0.0.1:5999"}"#;
    let answer = send(http, "POST", "/calls", &[auth], good);
    assert_json_error(&answer, 415, "unsupported_media_type", "no content type");
    let answer = send(http, "POST", "/calls", &[auth, JSON], "{\"agent\":");
    assert_json_error(&answer, 400, "malformed_json", "truncated JSON");
    let answer = send(
        http,
        "POST",
        "/calls",
        &[auth, JSON],
        r#"{"agent":"1001","destination":"sip:4000@127.0.0.1","colour":"red"}"#,
    );
    assert_json_error(&answer, 422, "invalid_body", "unknown field");
    assert!(answer.body.contains("colour"), "{}", answer.body);
    let answer = send(http, "POST", "/calls", &[auth, JSON], r#"{"agent":"1001"}"#);
    assert_json_error(&answer, 422, "invalid_body", "missing destination");
    let answer = send(
        http,
        "POST",
        "/calls",
        &[auth, JSON],
        r#"{"agent":"1001","destination":"mailto:someone"}"#,
    );
    assert_json_error(&answer, 422, "invalid_input", "not a sip: URI");
    // A well-formed call for an agent whose phone is not registered.
    let answer = send(http, "POST", "/calls", &[auth, JSON], good);
    assert_json_error(&answer, 409, "conflict", "agent without a phone");
    assert!(
        common::work_orders(&engine).is_empty(),
        "a refused call left a work order"
    );

    // A broken agents file: refused with the file's problem, the old one stays.
    std::fs::write(engine.dir.path().join("agents.toml"), "[[agents]\nid = 1").unwrap();
    let answer = send(http, "POST", "/reload", &[auth], "");
    assert_json_error(&answer, 422, "invalid_input", "broken agents file");
    assert!(answer.body.contains("agents.toml"), "{}", answer.body);
    let answer = send(http, "GET", "/agents", &[auth], "");
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.contains("\"1001\""), "{}", answer.body);
}

#[test]
fn wallboard_refusals_are_json_too_r12() {
    let engine = Engine::start(EngineOptions::default());
    let http = engine.http;
    let auth = ("Authorization", BEARER);

    let answer = send(http, "GET", "/wallboard/events", &[], "");
    assert_json_error(&answer, 401, "unauthorized", "stream without credential");
    assert!(
        answer.head.contains("www-authenticate: bearer"),
        "{}",
        answer.head
    );
    let answer = send(http, "POST", "/wallboard/agents/1001/pause", &[], "");
    assert_json_error(&answer, 401, "unauthorized", "action without credential");

    let answer = send(http, "POST", "/wallboard/agents/1001/dance", &[auth], "");
    assert_json_error(&answer, 404, "not_found", "unknown wallboard action");
    let answer = send(http, "POST", "/wallboard/agents/9999/pause", &[auth], "");
    assert_json_error(&answer, 409, "conflict", "unknown agent");
    let answer = send(http, "DELETE", "/wallboard/agents/1001/pause", &[auth], "");
    assert_json_error(&answer, 405, "method_not_allowed", "wrong method");
    let answer = send(http, "POST", "/wallboard/agents/%FF/pause", &[auth], "");
    assert_json_error(&answer, 400, "invalid_query", "agent id not UTF-8");
    let answer = send(http, "GET", "/wallboard/agents/%FF/history", &[auth], "");
    assert_json_error(&answer, 400, "invalid_query", "agent id not UTF-8");

    // The page itself still answers a browser with its login form.
    let answer = send(http, "GET", "/wallboard", &[], "");
    assert_eq!(answer.status, 401);
    assert!(answer.head.contains("text/html"), "{}", answer.head);
}

#[test]
fn desk_path_parameters_that_do_not_decode_are_refused_in_json() {
    let engine = Engine::start(EngineOptions::default());
    let auth = ("Authorization", BEARER);
    for (method, path) in [
        ("GET", "/work-orders/%FF"),
        ("GET", "/work-orders/%FF/events"),
        ("GET", "/work-orders/%FF/recording"),
        ("POST", "/work-orders/%FF/close"),
    ] {
        let answer = send(engine.http, method, path, &[auth], "");
        assert_json_error(&answer, 400, "invalid_query", &format!("{method} {path}"));
    }
}
