//! The callback API in-process (`api::callbacks::router`): a real switch with callbacks
//! on (driven by a task the way the runtime drives it, no trunk so nothing is dialled),
//! a real SQLite work-order store, the shipped config's tokens. Roles (401, 403, an
//! agent's own tasks only), the list filters (due, overdue, owner), reschedule and
//! cancel, and bad input refused with JSON and nothing saved (R12, R16–R20).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, header};
use chrono::{Duration, SecondsFormat, Utc};
use hotline::api::SwitchClient;
use hotline::api::auth::{Authenticator, hash_token};
use hotline::config::Config;
use hotline::sim::world::{agents_config, default_flow};
use hotline::switch::{StoreWrite, Switch, SwitchEvent, SwitchSettings};
use hotline::workorder::{SqlStore, WorkOrder, WorkOrderId, WorkOrderStore};
use serde_json::Value;
use tower::ServiceExt;

const SUPERVISOR: &str = "demo-token-change-me-0123456789";
const AGENT_1001: &str = "demo-agent-1001-token-change-me";
const QA: &str = "demo-qa-token-change-me-0123456";
const AGENT_1002: &str = "agent-1002-token-for-the-callback-tests";
const NUMBER: &str = "13900002222";

struct Api {
    app: Router,
    order: WorkOrderId,
    /// Every callback save the switch made.
    saves: Arc<Mutex<usize>>,
    _dir: tempfile::TempDir,
}

fn config() -> Config {
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/hotline.toml"))
            .expect("shipped config");
    let text = format!(
        "{shipped}\n[[access.tokens]]\nname = \"test-agent-1002\"\nrole = \"agent\"\nagent = \"1002\"\nsha256 = \"{}\"\n",
        hash_token(AGENT_1002)
    );
    Config::parse(Path::new("hotline.toml"), &text).expect("test config")
}

/// The switch, owned by one task that answers commands, as the runtime's switch task
/// does.
fn serve_switch(config: &Config, saves: Arc<Mutex<usize>>) -> SwitchClient {
    let now = Instant::now();
    let mut switch = Switch::new(
        SwitchSettings::loopback(5060),
        &agents_config(2),
        default_flow(),
        1,
        now,
        Utc::now(),
        &[],
    )
    .expect("switch");
    switch.enable_callbacks(now, config.callbacks.clone(), Vec::new(), None);
    let (client, mut requests) = SwitchClient::channel(16);
    tokio::spawn(async move {
        let mut next = 1;
        while let Some(request) = requests.recv().await {
            switch.handle_command(Instant::now(), next, request.command);
            next += 1;
            while let Some(write) = switch.poll_store() {
                if matches!(write, StoreWrite::Callback(_)) {
                    *saves.lock().unwrap() += 1;
                }
            }
            while let Some(event) = switch.poll_event() {
                if let SwitchEvent::Reply { reply, .. } = event {
                    let _ = request.reply.send(reply);
                    break;
                }
            }
        }
    });
    client
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqlStore::open(&dir.path().join("data")).expect("store"));
    let at = Utc::now() - Duration::hours(1);
    let order = WorkOrderId::from_parts(at, 5);
    store
        .create(&WorkOrder::new_inbound(
            order.clone(),
            "call-5",
            "13800001111",
            "8890",
            at,
        ))
        .await
        .unwrap();
    let config = config();
    let saves = Arc::new(Mutex::new(0));
    let client = serve_switch(&config, saves.clone());
    let authenticator = Arc::new(Authenticator::from_config(&config));
    let app = hotline::api::callbacks::router(Arc::new(config), client, store, authenticator);
    Api {
        app,
        order,
        saves,
        _dir: dir,
    }
}

impl Api {
    async fn send(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if !body.is_empty() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let response = self
            .app
            .clone()
            .oneshot(request.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        assert!(!text.contains(NUMBER), "R12: no full number in {text}");
        let value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text}"));
        (status, value)
    }

    fn saves(&self) -> usize {
        *self.saves.lock().unwrap()
    }

    async fn create(&self, token: &str, extra: &str) -> (u16, Value) {
        let body = format!(
            r#"{{"work_order":"{}","number":"{NUMBER}","reason":"referral_check"{extra}}}"#,
            self.order
        );
        self.send(Method::POST, "/callbacks", Some(token), &body)
            .await
    }

    async fn ids(&self, token: &str, query: &str) -> Vec<String> {
        let (status, body) = self
            .send(Method::GET, &format!("/callbacks{query}"), Some(token), "")
            .await;
        assert_eq!(status, 200, "{body}");
        body["callbacks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|task| task["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn time(at: chrono::DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn window(from_hours: i64, to_hours: i64) -> String {
    let now = Utc::now();
    format!(
        r#","earliest":"{}","latest":"{}""#,
        time(now + Duration::hours(from_hours)),
        time(now + Duration::hours(to_hours))
    )
}

/// A reschedule body: the window alone.
fn window_body(from_hours: i64, to_hours: i64) -> String {
    format!("{{{}}}", &window(from_hours, to_hours)[1..])
}

#[tokio::test]
async fn tokens_and_roles_decide_who_may_create_see_and_change_callbacks_r12() {
    let api = api().await;
    let (status, body) = api.send(Method::GET, "/callbacks", None, "").await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = api.create(QA, "").await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = api.create(AGENT_1001, r#","owner":"1002""#).await;
    assert_eq!(status, 403, "an agent creates only its own: {body}");

    let (status, mine) = api.create(AGENT_1001, "").await;
    assert_eq!(status, 201, "{mine}");
    assert_eq!(mine["owner"], "1001", "the agent owns what it creates (R7)");
    assert_eq!(mine["reason"], "referral_check");
    assert_eq!(mine["state"], "pending");
    let (status, theirs) = api.create(SUPERVISOR, r#","owner":"1002""#).await;
    assert_eq!(status, 201, "{theirs}");
    let (mine, theirs) = (
        mine["id"].as_str().unwrap().to_owned(),
        theirs["id"].as_str().unwrap().to_owned(),
    );

    assert_eq!(api.ids(AGENT_1001, "").await, vec![mine.clone()]);
    assert_eq!(api.ids(AGENT_1002, "").await, vec![theirs.clone()]);
    assert_eq!(
        api.ids(SUPERVISOR, "").await,
        vec![theirs.clone(), mine.clone()]
    );

    // Another agent's task is not there for 1002, whatever it tries.
    let (status, _) = api
        .send(
            Method::DELETE,
            &format!("/callbacks/{mine}"),
            Some(AGENT_1002),
            "",
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = api
        .send(
            Method::PATCH,
            &format!("/callbacks/{mine}"),
            Some(AGENT_1002),
            &window_body(1, 2),
        )
        .await;
    assert_eq!(status, 404);
    let (status, cancelled) = api
        .send(
            Method::DELETE,
            &format!("/callbacks/{mine}"),
            Some(AGENT_1001),
            "",
        )
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    assert_eq!(api.ids(SUPERVISOR, "").await, vec![theirs]);
}

#[tokio::test]
async fn lists_filter_by_due_overdue_and_owner_and_reschedule_and_cancel_work_r20() {
    let api = api().await;
    let (_, late) = api
        .create(
            SUPERVISOR,
            &format!("{},\"owner\":\"1001\"", window(-3, -1)),
        )
        .await;
    let (_, later) = api
        .create(
            SUPERVISOR,
            &format!("{},\"owner\":\"1002\"", window(24, 48)),
        )
        .await;
    let (late, later) = (
        late["id"].as_str().unwrap().to_owned(),
        later["id"].as_str().unwrap().to_owned(),
    );
    assert_eq!(api.ids(SUPERVISOR, "?due=true").await, vec![late.clone()]);
    assert_eq!(
        api.ids(SUPERVISOR, "?overdue=true").await,
        vec![late.clone()]
    );
    assert_eq!(
        api.ids(SUPERVISOR, "?owner=1002").await,
        vec![later.clone()]
    );
    assert_eq!(
        api.ids(SUPERVISOR, "?overdue=true&owner=1002").await,
        Vec::<String>::new()
    );

    // A new window: no longer overdue, not yet due.
    let (status, moved) = api
        .send(
            Method::PATCH,
            &format!("/callbacks/{late}"),
            Some(SUPERVISOR),
            &window_body(1, 2),
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["overdue"], false);
    assert_eq!(
        api.ids(SUPERVISOR, "?overdue=true").await,
        Vec::<String>::new()
    );

    let (status, body) = api
        .send(
            Method::DELETE,
            &format!("/callbacks/{later}"),
            Some(SUPERVISOR),
            "",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = api
        .send(
            Method::DELETE,
            &format!("/callbacks/{later}"),
            Some(SUPERVISOR),
            "",
        )
        .await;
    assert_eq!(status, 404, "already cancelled: {body}");
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(api.ids(SUPERVISOR, "").await, vec![late]);
}

#[tokio::test]
async fn bad_input_gets_a_json_4xx_and_nothing_is_saved() {
    let api = api().await;
    let (_, task) = api.create(SUPERVISOR, &window(1, 2)).await;
    let id = task["id"].as_str().unwrap().to_owned();
    let saved = api.saves();
    let unknown = WorkOrderId::from_parts(Utc::now(), 99);
    for (method, uri, body, status) in [
        (
            Method::POST,
            "/callbacks".to_owned(),
            format!(
                r#"{{"work_order":"{}","number":"{NUMBER}","reason":"manual"{}}}"#,
                api.order,
                window(2, 1)
            ),
            422,
        ),
        (
            Method::POST,
            "/callbacks".to_owned(),
            format!(r#"{{"work_order":"{unknown}","number":"{NUMBER}","reason":"manual"}}"#),
            422,
        ),
        (
            Method::POST,
            "/callbacks".to_owned(),
            format!(
                r#"{{"work_order":"{}","number":"12-ab","reason":"manual"}}"#,
                api.order
            ),
            400,
        ),
        (
            Method::POST,
            "/callbacks".to_owned(),
            format!(
                r#"{{"work_order":"{}","number":"{NUMBER}","reason":"someday"}}"#,
                api.order
            ),
            400,
        ),
        (
            Method::POST,
            "/callbacks".to_owned(),
            format!(r#"{{"work_order":"not-an-id","number":"{NUMBER}","reason":"manual"}}"#),
            400,
        ),
        (
            Method::POST,
            "/callbacks".to_owned(),
            format!(
                r#"{{"work_order":"{}","number":"{NUMBER}","reason":"manual","earliest":"tomorrow"}}"#,
                api.order
            ),
            400,
        ),
        (
            Method::PATCH,
            format!("/callbacks/{id}"),
            window_body(2, 1),
            422,
        ),
        (
            Method::PATCH,
            "/callbacks/cb-99".to_owned(),
            window_body(1, 2),
            404,
        ),
        (
            Method::DELETE,
            "/callbacks/nine".to_owned(),
            String::new(),
            400,
        ),
        (
            Method::GET,
            "/callbacks?limit=many".to_owned(),
            String::new(),
            400,
        ),
    ] {
        let (got, answer) = api
            .send(method.clone(), &uri, Some(SUPERVISOR), &body)
            .await;
        assert_eq!(got, status, "{method} {uri} {body}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{answer}"
        );
    }
    assert_eq!(api.saves(), saved, "nothing saved for refused requests");
    let (_, listed) = api
        .send(Method::GET, "/callbacks", Some(SUPERVISOR), "")
        .await;
    let tasks = listed["callbacks"].as_array().unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(
        tasks[0]["latest"], task["latest"],
        "the window is unchanged"
    );
}
