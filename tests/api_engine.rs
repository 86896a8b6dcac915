//! The API on the real engine binary (R12): roles on the agent routes, the desk API
//! over the engine's own store with a real SIPp call, `/openapi.json` without a token,
//! and `hotline hash-token`. SIPp is needed: run `scripts/install-test-deps.sh`.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{API_TOKEN, Engine, EngineOptions, Sipp, http_request, wait_for_metric};
use hotline::api::auth::hash_token;
use serde_json::Value;

const AGENT_TOKEN: &str = "engine-test-agent-1001-token-0123456789";
const QA_TOKEN: &str = "engine-test-qa-token-0123456789abcdef";

fn engine(ring_before_answer_ms: u64) -> Engine {
    Engine::start(EngineOptions {
        ring_before_answer_ms,
        extra_config: format!(
            "[[access.tokens]]\nname = \"desk-1001\"\nrole = \"agent\"\nagent = \"1001\"\nsha256 = \"{}\"\n\n\
             [[access.tokens]]\nname = \"qa-desk\"\nrole = \"qa\"\nsha256 = \"{}\"\n",
            hash_token(AGENT_TOKEN),
            hash_token(QA_TOKEN)
        ),
        ..EngineOptions::default()
    })
}

fn request(engine: &Engine, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    http_request(engine.http, method, path, token).expect("the API answers")
}

fn error_code(body: &str) -> String {
    let json: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    json["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code: {body}"))
        .to_owned()
}

#[test]
fn agent_routes_need_a_supervisor_token_and_refuse_in_json_r12() {
    let engine = engine(0);
    for (method, path) in [
        ("GET", "/agents"),
        ("POST", "/agents/1001/pause"),
        ("POST", "/reload"),
    ] {
        let (status, body) = request(&engine, method, path, None);
        assert_eq!(status, 401, "{method} {path}: {body}");
        assert_eq!(error_code(&body), "unauthorized");
        let (status, body) = request(&engine, method, path, Some("wrong-token"));
        assert_eq!(status, 401, "{method} {path}: {body}");
        for token in [AGENT_TOKEN, QA_TOKEN] {
            let (status, body) = request(&engine, method, path, Some(token));
            assert_eq!(status, 403, "{method} {path}: {body}");
            assert_eq!(error_code(&body), "forbidden");
        }
    }
    // The single api.token of older configs is a supervisor token.
    let (status, body) = request(&engine, "GET", "/agents", Some(API_TOKEN));
    assert_eq!(status, 200, "{body}");
    let (status, body) = request(&engine, "POST", "/reload", Some(API_TOKEN));
    assert_eq!(status, 200, "{body}");
    // Open routes stay open.
    assert_eq!(request(&engine, "GET", "/health", None).0, 200);
    let (status, body) = request(&engine, "GET", "/openapi.json", None);
    assert_eq!(status, 200);
    let document: Value = serde_json::from_str(&body).expect("openapi.json parses");
    assert!(
        document["paths"]["/work-orders"]["get"].is_object(),
        "{body}"
    );
}

#[test]
fn a_real_calls_work_order_is_served_masked_and_full_reads_are_audited_r12() {
    let engine = engine(3000);
    Sipp::new("uac_cancel.xml", engine.sip)
        .args(["-m", "1"])
        .run(Duration::from_secs(30))
        .assert_success();
    wait_for_metric(
        &engine,
        "hotline_calls_abandoned_total",
        "reason=\"caller_cancelled\"",
        1.0,
    );
    // uac_cancel.xml calls from 1380000<call number>.
    let full = "13800001";
    let (status, body) = request(&engine, "GET", "/work-orders", Some(API_TOKEN));
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains(full), "{body}");
    let list: Value = serde_json::from_str(&body).unwrap();
    let order = &list["orders"][0];
    assert_eq!(order["caller"], hotline::privacy::mask_number(full));
    let id = order["id"].as_str().expect("id").to_owned();

    let (status, body) = request(
        &engine,
        "GET",
        &format!("/work-orders/{id}"),
        Some(QA_TOKEN),
    );
    assert_eq!(status, 403, "QA reads sampled orders only: {body}");
    let (status, body) = request(
        &engine,
        "GET",
        &format!("/work-orders/{id}?unmasked=true"),
        Some(AGENT_TOKEN),
    );
    assert_eq!(status, 403, "{body}");
    let (status, body) = request(&engine, "GET", "/audit-log", Some(API_TOKEN));
    assert_eq!((status, body.as_str()), (200, "[]"));

    let (status, body) = request(
        &engine,
        "GET",
        &format!("/work-orders/{id}?unmasked=true"),
        Some(API_TOKEN),
    );
    assert_eq!(status, 200, "{body}");
    let detail: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(detail["order"]["caller"], full);
    let (_, body) = request(&engine, "GET", "/audit-log", Some(API_TOKEN));
    let entries: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(entries.as_array().unwrap().len(), 1, "{body}");
    assert_eq!(entries[0]["actor"], "api.token");
    assert_eq!(entries[0]["read"], "full_number");
    assert_eq!(entries[0]["work_order"], id.as_str());
    // The engine's log never carries the full number (R12).
    assert!(!engine.log().contains(full));
}

#[test]
fn hash_token_prints_the_sha256_of_stdin_and_refuses_short_tokens() {
    let run = |input: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hotline"))
            .arg("hash-token")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run hotline hash-token");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().expect("hash-token output")
    };
    let out = run(&format!("{AGENT_TOKEN}\n"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        hash_token(AGENT_TOKEN)
    );
    let out = run("short\n");
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 32"));
}
