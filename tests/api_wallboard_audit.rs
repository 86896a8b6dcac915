//! Issue 14: "a supervisor can act: pause or log out an agent … Every action is
//! audited." On the real engine binary, each wallboard action is written to the work
//! order store's append-only audit log (who, what, which agent, when) before it is
//! carried out, refused actions included, and supervisors read it at `/audit-log`.
//! Who is the holder of the supervisor credential used: the API token, or a supervisor
//! token of `[[access.tokens]]` by its name; an agent's token may not act.

mod common;

use common::{API_TOKEN, Engine, EngineOptions, http_request};
use hotline::api::auth::hash_token;
use hotline::workorder::{AuditedRead, WorkOrderStore};

const SUPERVISOR_WANG: &str = "wallboard-test-supervisor-wang-0123456789";
const AGENT_1002: &str = "wallboard-test-agent-1002-token-0123456789";

fn engine() -> Engine {
    Engine::start(EngineOptions {
        extra_config: format!(
            "[[access.tokens]]\nname = \"supervisor-wang\"\nrole = \"supervisor\"\nsha256 = \"{}\"\n\n\
             [[access.tokens]]\nname = \"desk-1002\"\nrole = \"agent\"\nagent = \"1002\"\nsha256 = \"{}\"\n",
            hash_token(SUPERVISOR_WANG),
            hash_token(AGENT_1002)
        ),
        ..EngineOptions::default()
    })
}
use serde_json::Value;

#[test]
fn wallboard_actions_are_written_to_the_audit_log_before_they_are_done() {
    let engine = engine();
    let (status, body) = engine.api("POST", "/agents/1001/login");
    assert_eq!(status, 200, "{body}");
    for (path, token, expected) in [
        ("/wallboard/agents/1001/pause", API_TOKEN, 200),
        ("/wallboard/agents/1001/logout", SUPERVISOR_WANG, 200),
        ("/wallboard/agents/9999/pause", API_TOKEN, 409),
    ] {
        let (status, body) = http_request(engine.http, "POST", path, Some(token)).expect("answer");
        assert_eq!(status, expected, "{path}: {body}");
    }
    // An agent's token is no supervisor credential: refused, and not audited.
    let (status, body) = http_request(
        engine.http,
        "POST",
        "/wallboard/agents/1001/pause",
        Some(AGENT_1002),
    )
    .expect("answer");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("\"forbidden\""), "{body}");
    // An unknown action is no action: nothing to audit.
    let (status, _) = http_request(
        engine.http,
        "POST",
        "/wallboard/agents/1001/dance",
        Some(API_TOKEN),
    )
    .expect("answer");
    assert_eq!(status, 404);

    let (status, body) = engine.api("GET", "/audit-log");
    assert_eq!(status, 200, "{body}");
    let log: Value = serde_json::from_str(&body).expect("JSON");
    let seen: Vec<(String, String, String)> = log
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            assert!(e["at"].is_string(), "{e}");
            assert!(e["work_order"].is_null(), "{e}");
            (
                e["actor"].as_str().unwrap().to_owned(),
                e["read"].as_str().unwrap().to_owned(),
                e["target"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let entry = |who: &str, read: &str, agent: &str| {
        (who.to_owned(), read.to_owned(), format!("agent {agent}"))
    };
    assert_eq!(
        seen,
        vec![
            entry("api.token", "agent_pause", "1001"),
            entry("supervisor-wang", "agent_logout", "1001"),
            entry("api.token", "agent_pause", "9999"),
        ]
    );

    // The same entries are in the store itself, where the API cannot change them.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let stored = runtime.block_on(async {
        let store =
            hotline::workorder::sqlite::SqliteStore::open(&engine.data_dir()).expect("open store");
        store
            .read_audit_log(chrono::DateTime::UNIX_EPOCH, 100)
            .await
            .expect("audit log")
    });
    let kinds: Vec<AuditedRead> = stored.iter().map(|e| e.read).collect();
    assert_eq!(
        kinds,
        vec![
            AuditedRead::AgentPause,
            AuditedRead::AgentLogout,
            AuditedRead::AgentPause
        ]
    );
    // The agent routes' log-in above is not a wallboard action and is not in it.
    assert!(stored.iter().all(|e| e.target.starts_with("agent ")));
}
