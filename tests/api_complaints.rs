//! R15: complaints against the hotline, its agents or a referred enterprise
//! (category `service_complaint`) are for supervisors. An agent credential neither lists
//! nor reads them, nor their audit trail or recording, even on the agent's own orders;
//! supervisors see them all and QA sees the sampled ones. An agent who files an order
//! as such a complaint hands it over. The desk API in-process over a real store, on
//! both backends (SQLite, and a fresh PostgreSQL database on 127.0.0.1:5432).

mod pg_harness;

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, header};
use chrono::{DateTime, Duration, TimeZone, Utc};
use hotline::api::auth::Authenticator;
use hotline::api::desk;
use hotline::config::Config;
use hotline::workorder::{
    Category, DetailsUpdate, QaSelection, WorkOrder, WorkOrderId, WorkOrderStore,
};
use pg_harness::{Backend, TestDatabase};
use serde_json::Value;
use tower::ServiceExt;

const SUPERVISOR: &str = "demo-token-change-me-0123456789";
const AGENT_1001: &str = "demo-agent-1001-token-change-me";
const QA: &str = "demo-qa-token-change-me-0123456";

on_both_backends!(
    agents_neither_list_nor_read_complaints_about_the_hotline_r15,
    supervisors_see_every_complaint_and_qa_the_sampled_ones_r15,
    an_agent_who_files_a_complaint_hands_it_over_r15,
);

struct Desk {
    app: Router,
    store: Arc<dyn WorkOrderStore>,
    /// 1001's call, filed as a complaint about the hotline, with a recording.
    complaint: WorkOrderId,
    /// 1001's call, a complaint about the hotline, sampled for QA.
    sampled_complaint: WorkOrderId,
    /// 1001's call, a citizen's livelihood complaint (R1): agents see it.
    livelihood: WorkOrderId,
    /// 1001's call, not yet categorised.
    uncategorised: WorkOrderId,
    _dir: tempfile::TempDir,
    _database: Option<TestDatabase>,
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 2, 30, 0)
        .single()
        .unwrap()
}

async fn seed(
    store: &dyn WorkOrderStore,
    n: u64,
    category: Option<Category>,
    recording: Option<&str>,
) -> WorkOrderId {
    let at = t0() + Duration::minutes(n as i64);
    let id = WorkOrderId::from_parts(at, 0xc0000 + n);
    store
        .create(&WorkOrder::new_inbound(
            id.clone(),
            format!("call-{n}@trunk"),
            format!("1391234{n:04}"),
            "8890",
            at,
        ))
        .await
        .expect("create");
    store
        .mark_answered(&id, at + Duration::seconds(1), recording)
        .await
        .expect("answer");
    store
        .mark_connected(&id, at + Duration::seconds(10), "1001")
        .await
        .expect("connect");
    if let Some(category) = category {
        let update = DetailsUpdate {
            category: Some(category),
            matter: Some("来电人反映坐席态度生硬".into()),
            ..DetailsUpdate::default()
        };
        store
            .update_details(&id, &update, "1001", at + Duration::seconds(60))
            .await
            .expect("categorise");
    }
    id
}

async fn desk(backend: Backend) -> Desk {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, database) = pg_harness::open_store(backend, dir.path());
    let wav = dir.path().join("complaint.wav");
    std::fs::write(&wav, b"RIFF\0\0\0\0WAVE").expect("recording");
    let s = store.as_ref();
    let complaint = seed(
        s,
        1,
        Some(Category::ServiceComplaint),
        Some(wav.to_str().unwrap()),
    )
    .await;
    let sampled_complaint = seed(s, 2, Some(Category::ServiceComplaint), None).await;
    let livelihood = seed(s, 3, Some(Category::Complaint), None).await;
    let uncategorised = seed(s, 4, None, None).await;
    store
        .select_for_qa(
            &sampled_complaint,
            &QaSelection {
                selected_at: t0() + Duration::hours(1),
                reason: "random sample".into(),
            },
            "qa-sampler",
        )
        .await
        .expect("sample");
    let config = Config::parse(
        Path::new("hotline.toml"),
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/hotline.toml"))
            .expect("shipped config"),
    )
    .expect("shipped config parses");
    let app = desk::router(
        &config,
        store.clone(),
        Arc::new(Authenticator::from_config(&config)),
    );
    Desk {
        app,
        store,
        complaint,
        sampled_complaint,
        livelihood,
        uncategorised,
        _dir: dir,
        _database: database,
    }
}

impl Desk {
    async fn send(
        &self,
        method: Method,
        uri: &str,
        token: &str,
        body: Option<&str>,
    ) -> (u16, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
            .expect("request");
        let response = self.app.clone().oneshot(request).await.expect("infallible");
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, json)
    }

    async fn get(&self, uri: &str, token: &str) -> (u16, Value) {
        self.send(Method::GET, uri, token, None).await
    }

    /// The ids a listing shows, in order.
    async fn listed(&self, uri: &str, token: &str) -> Vec<String> {
        let (status, json) = self.get(uri, token).await;
        assert_eq!(status, 200, "{uri}: {json}");
        json["orders"]
            .as_array()
            .expect("orders")
            .iter()
            .map(|o| o["id"].as_str().expect("id").to_owned())
            .collect()
    }
}

fn ids(list: &[&WorkOrderId]) -> Vec<String> {
    list.iter().map(|id| id.to_string()).collect()
}

fn assert_r15_refusal(status: u16, json: &Value, what: &str) {
    assert_eq!(status, 403, "{what}: {json}");
    assert_eq!(json["error"]["code"], "forbidden", "{what}: {json}");
    let message = json["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("R15"), "{what}: {message}");
}

async fn agents_neither_list_nor_read_complaints_about_the_hotline_r15(backend: Backend) {
    let desk = desk(backend).await;
    // All four are 1001's calls; the two complaints about the hotline are left out, on
    // every page, and the livelihood complaint (R1) is not.
    assert_eq!(
        desk.listed("/work-orders", AGENT_1001).await,
        ids(&[&desk.uncategorised, &desk.livelihood])
    );
    let first = desk.get("/work-orders?limit=1", AGENT_1001).await.1;
    let cursor = first["next_cursor"].as_str().expect("a second page");
    assert_eq!(
        desk.listed(&format!("/work-orders?limit=1&cursor={cursor}"), AGENT_1001)
            .await,
        ids(&[&desk.livelihood])
    );
    let (status, json) = desk
        .get("/work-orders?category=service_complaint", AGENT_1001)
        .await;
    assert_r15_refusal(status, &json, "asking for complaints by category");

    for id in [&desk.complaint, &desk.sampled_complaint] {
        for path in [
            format!("/work-orders/{id}"),
            format!("/work-orders/{id}/events"),
            format!("/work-orders/{id}/recording"),
        ] {
            let (status, json) = desk.get(&path, AGENT_1001).await;
            assert_r15_refusal(status, &json, &path);
        }
        let (status, json) = desk
            .send(
                Method::PATCH,
                &format!("/work-orders/{id}"),
                AGENT_1001,
                Some(r#"{"answer":"已处理"}"#),
            )
            .await;
        assert_r15_refusal(status, &json, "changing a complaint");
        let (status, json) = desk
            .send(
                Method::POST,
                &format!("/work-orders/{id}/notes"),
                AGENT_1001,
                Some(r#"{"text":"我看一下"}"#),
            )
            .await;
        assert_r15_refusal(status, &json, "noting on a complaint");
    }
    // Nothing the agent tried was stored.
    let file = desk
        .store
        .get_file(&desk.complaint)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(file.matter.answer, None);
    // Their other orders read as before.
    for id in [&desk.livelihood, &desk.uncategorised] {
        let (status, json) = desk.get(&format!("/work-orders/{id}"), AGENT_1001).await;
        assert_eq!(status, 200, "{json}");
    }
}

async fn supervisors_see_every_complaint_and_qa_the_sampled_ones_r15(backend: Backend) {
    let desk = desk(backend).await;
    assert_eq!(
        desk.listed("/work-orders", SUPERVISOR).await,
        ids(&[
            &desk.uncategorised,
            &desk.livelihood,
            &desk.sampled_complaint,
            &desk.complaint
        ])
    );
    assert_eq!(
        desk.listed("/work-orders?category=service_complaint", SUPERVISOR)
            .await,
        ids(&[&desk.sampled_complaint, &desk.complaint])
    );
    let (status, json) = desk
        .get(&format!("/work-orders/{}", desk.complaint), SUPERVISOR)
        .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["order"]["category"], "service_complaint");

    assert_eq!(
        desk.listed("/work-orders", QA).await,
        ids(&[&desk.sampled_complaint])
    );
    let (status, json) = desk
        .get(&format!("/work-orders/{}", desk.sampled_complaint), QA)
        .await;
    assert_eq!(status, 200, "{json}");
    let (status, json) = desk
        .get(&format!("/work-orders/{}", desk.complaint), QA)
        .await;
    assert_eq!(status, 403, "QA reads only sampled orders: {json}");
}

async fn an_agent_who_files_a_complaint_hands_it_over_r15(backend: Backend) {
    let desk = desk(backend).await;
    let path = format!("/work-orders/{}", desk.uncategorised);
    let (status, json) = desk
        .send(
            Method::PATCH,
            &path,
            AGENT_1001,
            Some(r#"{"category":"service_complaint","matter":"来电人投诉某坐席服务态度"}"#),
        )
        .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["handed_to_supervisors"], true, "{json}");
    assert!(json["work_order"].is_null(), "{json}");

    let (status, json) = desk.get(&path, AGENT_1001).await;
    assert_r15_refusal(status, &json, "the handed-over order");
    assert_eq!(
        desk.listed("/work-orders", AGENT_1001).await,
        ids(&[&desk.livelihood])
    );

    let (status, json) = desk.get(&path, SUPERVISOR).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["order"]["category"], "service_complaint");
    assert_eq!(json["matter"], "来电人投诉某坐席服务态度");
    let (_, events) = desk.get(&format!("{path}/events"), SUPERVISOR).await;
    assert!(
        events
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e["actor"] == "1001"
                && e["detail"]["field"] == "category"
                && e["detail"]["value"] == "service_complaint"),
        "the filing is on the trail: {events}"
    );

    // A change that keeps the order visible answers with the order, as before.
    let (status, json) = desk
        .send(
            Method::PATCH,
            &format!("/work-orders/{}", desk.livelihood),
            AGENT_1001,
            Some(r#"{"answer":"已转交供水公司"}"#),
        )
        .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["handed_to_supervisors"], false);
    assert_eq!(json["work_order"]["answer"], "已转交供水公司");
}
