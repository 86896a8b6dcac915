//! The desk API in-process (`api::desk::router` over a real SQLite store and a real
//! WAV): credentials and roles (401/403 for every route and role), masking in every
//! answer (R12), the read-audit log, Range downloads, forbidden phrases (R28), the
//! lifecycle through the API (R21), knowledge search (R13, R14), bad input, and
//! `/openapi.json` listing every route. Every test runs on both stores: SQLite, and a
//! fresh PostgreSQL database on 127.0.0.1:5432 (see `scripts/install-test-deps.sh`).

mod pg_harness;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use chrono::{DateTime, Duration, TimeZone, Utc};
use hotline::api::auth::{Authenticator, hash_token};
use hotline::api::desk;
use hotline::config::Config;
use hotline::privacy::mask_number;
use hotline::workorder::{
    CallOutcome, FollowUpKind, FollowUpTask, HangupSide, KnowledgeEntry, Provider, QaSelection,
    WorkOrder, WorkOrderId, WorkOrderStore,
};
use pg_harness::{Backend, TestDatabase};
use serde_json::Value;
use tower::ServiceExt;

on_both_backends!(
    every_route_refuses_a_missing_or_unknown_token_with_401_json_r12,
    every_route_answers_each_role_as_its_rights_say_r12,
    lists_show_each_role_its_own_orders,
    caller_numbers_are_masked_in_every_answer_r12,
    full_numbers_only_for_a_supervisor_who_asks_and_every_read_audited_r12,
    the_audit_log_is_for_supervisors_and_cannot_be_changed,
    recordings_download_whole_and_by_range_with_an_audit_entry_each_r12_r22,
    agents_texts_are_checked_for_forbidden_phrases_and_kept_as_written_r28,
    lifecycle_through_the_api_closing_rules_r21,
    bad_input_gets_a_4xx_json_error_and_nothing_is_stored,
    list_filters_and_cursor_pagination,
    knowledge_and_directory_search_in_chinese_and_a_provider_from_a_work_order_r13_r14,
    openapi_json_parses_and_lists_every_route,
);

const SUPERVISOR: &str = "demo-token-change-me-0123456789";
const AGENT_1001: &str = "demo-agent-1001-token-change-me";
const QA: &str = "demo-qa-token-change-me-0123456";
const AGENT_1002: &str = "agent-1002-token-for-the-api-tests-0123";

/// Caller numbers of the three seeded orders.
const CALLER_A: &str = "13812345678";
const CALLER_B: &str = "13987654321";
const CALLER_C: &str = "13700001111";

struct Desk {
    app: Router,
    store: Arc<dyn WorkOrderStore>,
    /// 1001's order, with a recording; not sampled.
    a: WorkOrderId,
    /// 1002's order.
    b: WorkOrderId,
    /// 1001's order sampled for QA, with a recording.
    c: WorkOrderId,
    wav: PathBuf,
    _dir: tempfile::TempDir,
    /// The PostgreSQL database, dropped after the store.
    _database: Option<TestDatabase>,
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

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 2, 30, 0)
        .single()
        .unwrap()
}

/// A real stereo 8 kHz WAV, as the recorder writes them, a second long.
fn write_wav(path: &Path) {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).expect("create WAV");
    for i in 0..8000i32 {
        writer
            .write_sample(((i * 37) % 20_000 - 10_000) as i16)
            .unwrap();
        writer.write_sample(((i * 11) % 3_000) as i16).unwrap();
    }
    writer.finalize().expect("finalize WAV");
}

async fn seed_order(
    store: &dyn WorkOrderStore,
    n: u64,
    caller: &str,
    agent: &str,
    recording: Option<&Path>,
) -> WorkOrderId {
    let at = t0() + Duration::minutes(n as i64);
    let id = WorkOrderId::from_parts(at, 0xabc000 + n);
    store
        .create(&WorkOrder::new_inbound(
            id.clone(),
            format!("call-{n}@trunk"),
            caller,
            "8890",
            at,
        ))
        .await
        .expect("create");
    let path = recording.map(|p| p.to_str().unwrap().to_owned());
    store
        .mark_answered(&id, at + Duration::seconds(2), path.as_deref())
        .await
        .expect("answer");
    store
        .mark_queued(&id, at + Duration::seconds(9), "general")
        .await
        .expect("queue");
    store
        .mark_connected(&id, at + Duration::seconds(20), agent)
        .await
        .expect("connect");
    store
        .mark_ended(
            &id,
            at + Duration::seconds(200),
            Some(HangupSide::Caller),
            CallOutcome::Answered,
        )
        .await
        .expect("end");
    id
}

async fn desk(backend: Backend) -> Desk {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, database) = pg_harness::open_store(backend, dir.path());
    let wav = dir.path().join("recording.wav");
    write_wav(&wav);
    let a = seed_order(store.as_ref(), 1, CALLER_A, "1001", Some(&wav)).await;
    let b = seed_order(store.as_ref(), 2, CALLER_B, "1002", Some(&wav)).await;
    let c = seed_order(store.as_ref(), 3, CALLER_C, "1001", Some(&wav)).await;
    store
        .select_for_qa(
            &c,
            &QaSelection {
                selected_at: t0() + Duration::hours(1),
                reason: "random sample".into(),
            },
            "qa-sampler",
        )
        .await
        .expect("sample");
    store
        .import_knowledge(&[
            KnowledgeEntry {
                id: "kb-heating".into(),
                title: "冬季供暖收费标准".into(),
                body: "居民供暖费按建筑面积计收，每平方米每采暖期二十八元。".into(),
                tags: vec!["供暖".into()],
            },
            KnowledgeEntry {
                id: "kb-passport".into(),
                title: "护照办理".into(),
                body: "携带身份证到出入境接待大厅办理，十个工作日取证。".into(),
                tags: vec![],
            },
        ])
        .await
        .expect("knowledge");
    store
        .import_providers(&[Provider {
            id: "p-locksmith".into(),
            name: "营口市开锁服务中心".into(),
            services: "开锁 换锁 修锁".into(),
            area: "站前区".into(),
            phone: "04172800000".into(),
            address: String::new(),
            tags: vec![],
            added_from: None,
        }])
        .await
        .expect("providers");
    let config = config();
    let app = desk::router(
        &config,
        store.clone(),
        Arc::new(Authenticator::from_config(&config)),
    );
    Desk {
        app,
        store,
        a,
        b,
        c,
        wav,
        _dir: dir,
        _database: database,
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}), status {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The stable error code of a refusal, checking it is the JSON error shape.
    fn error_code(&self) -> String {
        let json = self.json();
        assert!(
            json["error"]["message"].is_string(),
            "error without message: {json}"
        );
        json["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code: {json}"))
            .to_owned()
    }
}

impl Desk {
    async fn send(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let request = request
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
            .expect("request");
        let response = self.app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), 10 << 20)
            .await
            .expect("body");
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, uri: &str, token: &str) -> Answer {
        self.send(Method::GET, uri, Some(token), None, &[]).await
    }

    async fn post(&self, uri: &str, token: &str, body: &str) -> Answer {
        self.send(Method::POST, uri, Some(token), Some(body), &[])
            .await
    }

    async fn patch(&self, uri: &str, token: &str, body: &str) -> Answer {
        self.send(Method::PATCH, uri, Some(token), Some(body), &[])
            .await
    }

    async fn audit_entries(&self) -> Vec<Value> {
        let answer = self.get("/audit-log", SUPERVISOR).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        answer.json().as_array().expect("array").clone()
    }

    async fn events(&self, id: &WorkOrderId) -> usize {
        self.store.events(id).await.expect("events").len()
    }
}

/// Every desk route, as (method, path template, body for a write).
fn routes(id: &WorkOrderId) -> Vec<(Method, String, Option<&'static str>)> {
    vec![
        (Method::GET, "/work-orders".into(), None),
        (Method::GET, format!("/work-orders/{id}"), None),
        (
            Method::PATCH,
            format!("/work-orders/{id}"),
            Some(r#"{"handling_unit":"市供热办"}"#),
        ),
        (
            Method::POST,
            format!("/work-orders/{id}/status"),
            Some(r#"{"status":"follow_up"}"#),
        ),
        (Method::POST, format!("/work-orders/{id}/close"), None),
        (
            Method::POST,
            format!("/work-orders/{id}/notes"),
            Some(r#"{"text":"已电话联系"}"#),
        ),
        (
            Method::POST,
            format!("/work-orders/{id}/referral"),
            Some(r#"{"enterprise":"营口市开锁服务中心"}"#),
        ),
        (
            Method::POST,
            format!("/work-orders/{id}/enterprise-evaluation"),
            Some(r#"{"attitude":"satisfied","efficiency":"satisfied","quality":"satisfied"}"#),
        ),
        (
            Method::POST,
            format!("/work-orders/{id}/ratings"),
            Some(r#"{"target":"service","score":"satisfied"}"#),
        ),
        (Method::GET, format!("/work-orders/{id}/events"), None),
        (Method::GET, format!("/work-orders/{id}/recording"), None),
        (
            Method::POST,
            format!("/work-orders/{id}/providers"),
            Some(r#"{"name":"站前区家电维修部","services":"家电维修"}"#),
        ),
        (Method::GET, "/knowledge?q=供暖".into(), None),
        (Method::GET, "/directory?q=开锁".into(), None),
        (Method::GET, "/audit-log".into(), None),
        (
            Method::POST,
            "/forbidden-phrases/check".into(),
            Some(r#"{"text":"这个不行"}"#),
        ),
    ]
}

fn uri(path: &str) -> String {
    // Chinese query text, percent-encoded as a client would send it.
    path.bytes()
        .map(|b| {
            if b.is_ascii() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn every_route_refuses_a_missing_or_unknown_token_with_401_json_r12(backend: Backend) {
    let desk = desk(backend).await;
    let before = desk.events(&desk.a).await;
    for (method, path, body) in routes(&desk.a) {
        for token in [None, Some("not-a-token"), Some(&*hash_token(SUPERVISOR))] {
            let answer = desk
                .send(method.clone(), &uri(&path), token, body, &[])
                .await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method} {path}");
            assert_eq!(answer.error_code(), "unauthorized", "{method} {path}");
            assert_eq!(
                answer.headers[header::WWW_AUTHENTICATE],
                "Bearer realm=\"hotline\""
            );
        }
    }
    assert_eq!(desk.events(&desk.a).await, before, "nothing changed");
    assert!(desk.audit_entries().await.is_empty());
}

/// Which role may do what: 403 (JSON, `forbidden`) for every route a role may not use.
async fn every_route_answers_each_role_as_its_rights_say_r12(backend: Backend) {
    // A fresh desk per role, so one role's writes do not change what the next sees.
    for (token, role) in [
        (AGENT_1001, "agent 1001"),
        (AGENT_1002, "agent 1002"),
        (QA, "qa"),
        (SUPERVISOR, "supervisor"),
    ] {
        let desk = desk(backend).await;
        // Order A belongs to 1001 and is not sampled; C belongs to 1001 and is.
        for (target, id) in [("A", &desk.a), ("C", &desk.c)] {
            for (method, path, body) in routes(id) {
                let answer = desk
                    .send(method.clone(), &uri(&path), Some(token), body, &[])
                    .await;
                let is_order_route = path.starts_with("/work-orders/");
                let is_write = method != Method::GET;
                let forbidden = match role {
                    "supervisor" => false,
                    "qa" => path == "/audit-log" || (is_order_route && (is_write || target == "A")),
                    "agent 1002" => path == "/audit-log" || is_order_route,
                    _ => path == "/audit-log",
                };
                if forbidden {
                    assert_eq!(
                        answer.status,
                        StatusCode::FORBIDDEN,
                        "{role} {method} {path} on {target}: {}",
                        answer.text()
                    );
                    assert_eq!(answer.error_code(), "forbidden");
                } else {
                    // Allowed: not refused for rights (a lifecycle rule may still
                    // refuse a transition).
                    assert!(
                        ![StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&answer.status),
                        "{role} {method} {path} on {target}: {} {}",
                        answer.status,
                        answer.text()
                    );
                }
            }
        }
    }
}

async fn lists_show_each_role_its_own_orders(backend: Backend) {
    let desk = desk(backend).await;
    let ids = |answer: Answer| -> Vec<String> {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        answer.json()["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = ids(desk.get("/work-orders", SUPERVISOR).await);
    assert_eq!(all.len(), 3);
    let mine = ids(desk.get("/work-orders", AGENT_1001).await);
    assert_eq!(mine, [desk.c.to_string(), desk.a.to_string()]);
    assert_eq!(
        ids(desk.get("/work-orders?agent=1001", AGENT_1001).await).len(),
        2
    );
    let refused = desk.get("/work-orders?agent=1002", AGENT_1001).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        ids(desk.get("/work-orders", QA).await),
        [desk.c.to_string()]
    );
    assert_eq!(
        ids(desk.get("/work-orders", AGENT_1002).await),
        [desk.b.to_string()]
    );
}

async fn caller_numbers_are_masked_in_every_answer_r12(backend: Backend) {
    let desk = desk(backend).await;
    for token in [SUPERVISOR, AGENT_1001, QA] {
        for id in [&desk.a, &desk.c] {
            for (method, path, body) in routes(id) {
                if path.ends_with("/recording") {
                    continue;
                }
                let answer = desk
                    .send(method.clone(), &uri(&path), Some(token), body, &[])
                    .await;
                let text = answer.text();
                for full in [CALLER_A, CALLER_B, CALLER_C] {
                    assert!(!text.contains(full), "{method} {path} leaks {full}: {text}");
                }
            }
        }
    }
    let detail = desk
        .get(&format!("/work-orders/{}", desk.a), AGENT_1001)
        .await
        .json();
    assert_eq!(detail["order"]["caller"], mask_number(CALLER_A));
    assert_eq!(detail["calls"][0]["caller"], mask_number(CALLER_A));
    let list = desk.get("/work-orders", SUPERVISOR).await.json();
    assert!(
        list["orders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["caller"] == mask_number(CALLER_B))
    );
    // Masked reads are not audited: nothing full was read.
    assert!(desk.audit_entries().await.is_empty());
}

async fn full_numbers_only_for_a_supervisor_who_asks_and_every_read_audited_r12(backend: Backend) {
    let desk = desk(backend).await;
    for token in [AGENT_1001, QA] {
        let answer = desk
            .get(&format!("/work-orders/{}?unmasked=true", desk.c), token)
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
        assert_eq!(answer.error_code(), "forbidden");
        let answer = desk.get("/work-orders?unmasked=true", token).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
    }
    assert!(desk.audit_entries().await.is_empty());

    let before = Utc::now();
    let detail = desk
        .get(
            &format!("/work-orders/{}?unmasked=true", desk.a),
            SUPERVISOR,
        )
        .await
        .json();
    assert_eq!(detail["order"]["caller"], CALLER_A);
    assert_eq!(detail["calls"][0]["caller"], CALLER_A);
    let entries = desk.audit_entries().await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert_eq!(entry["actor"], "api.token");
    assert_eq!(entry["read"], "full_number");
    assert_eq!(entry["work_order"], desk.a.to_string());
    let at: DateTime<Utc> = entry["at"].as_str().unwrap().parse().unwrap();
    assert!(at >= before - Duration::seconds(1) && at <= Utc::now());

    let list = desk
        .get("/work-orders?unmasked=true", SUPERVISOR)
        .await
        .json();
    assert!(list.to_string().contains(CALLER_B));
    let entries = desk.audit_entries().await;
    assert_eq!(entries.len(), 4, "one more per order shown in full");
}

async fn the_audit_log_is_for_supervisors_and_cannot_be_changed(backend: Backend) {
    let desk = desk(backend).await;
    desk.get(&format!("/work-orders/{}/recording", desk.a), AGENT_1001)
        .await;
    for token in [AGENT_1001, QA] {
        let answer = desk.get("/audit-log", token).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
    }
    for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        let answer = desk
            .send(
                method.clone(),
                "/audit-log",
                Some(SUPERVISOR),
                Some("{}"),
                &[],
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method}: {}",
            answer.text()
        );
        assert_eq!(answer.error_code(), "method_not_allowed");
    }
    assert_eq!(desk.audit_entries().await.len(), 1);
}

async fn recordings_download_whole_and_by_range_with_an_audit_entry_each_r12_r22(backend: Backend) {
    let desk = desk(backend).await;
    let file = std::fs::read(&desk.wav).expect("WAV");
    let size = file.len();
    let url = format!("/work-orders/{}/recording", desk.a);

    let whole = desk.get(&url, AGENT_1001).await;
    assert_eq!(whole.status, StatusCode::OK);
    assert_eq!(whole.headers[header::ACCEPT_RANGES], "bytes");
    assert_eq!(whole.headers[header::CONTENT_TYPE], "audio/wav");
    assert_eq!(whole.body.as_ref(), file.as_slice());
    let reader = hound::WavReader::new(std::io::Cursor::new(whole.body.to_vec())).expect("WAV");
    assert_eq!(reader.spec().channels, 2);

    for (range, first, last) in [
        ("bytes=0-99".to_owned(), 0, 99),
        ("bytes=44-1043".to_owned(), 44, 1043),
        (format!("bytes={}-", size - 10), size - 10, size - 1),
        ("bytes=-300".to_owned(), size - 300, size - 1),
        (format!("bytes=100-{}", size + 5000), 100, size - 1),
    ] {
        let part = desk
            .send(
                Method::GET,
                &url,
                Some(SUPERVISOR),
                None,
                &[("range", &range)],
            )
            .await;
        assert_eq!(part.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(part.body.as_ref(), &file[first..=last], "{range}");
        assert_eq!(
            part.headers[header::CONTENT_RANGE],
            format!("bytes {first}-{last}/{size}").as_str()
        );
        assert_eq!(
            part.headers[header::CONTENT_LENGTH],
            (last - first + 1).to_string().as_str()
        );
        assert_eq!(part.headers[header::ACCEPT_RANGES], "bytes");
    }

    let beyond = desk
        .send(
            Method::GET,
            &url,
            Some(SUPERVISOR),
            None,
            &[("range", &format!("bytes={size}-"))],
        )
        .await;
    assert_eq!(beyond.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(beyond.error_code(), "range_not_satisfiable");
    assert_eq!(
        beyond.headers[header::CONTENT_RANGE],
        format!("bytes */{size}").as_str()
    );
    let several = desk
        .send(
            Method::GET,
            &url,
            Some(SUPERVISOR),
            None,
            &[("range", "bytes=0-1,5-6")],
        )
        .await;
    assert_eq!(several.status, StatusCode::OK, "several ranges: whole file");
    assert_eq!(several.body.len(), size);

    // QA: only the sampled order's recording.
    let qa = desk
        .get(&format!("/work-orders/{}/recording", desk.c), QA)
        .await;
    assert_eq!(qa.status, StatusCode::OK);
    assert_eq!(desk.get(&url, QA).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        desk.get(&url, AGENT_1002).await.status,
        StatusCode::FORBIDDEN
    );
    let missing_call = desk.get(&format!("{url}?call=5"), SUPERVISOR).await;
    assert_eq!(missing_call.status, StatusCode::NOT_FOUND);
    assert_eq!(missing_call.error_code(), "not_found");

    // One audit entry per download served: 1 whole + 5 ranges + several + QA's;
    // none for the refusals and the 416.
    let entries = desk.audit_entries().await;
    assert_eq!(entries.len(), 8, "{entries:?}");
    assert!(entries.iter().all(|e| e["read"] == "recording"));
    assert_eq!(entries[0]["actor"], "demo-agent-1001");
    assert_eq!(entries[0]["target"], desk.wav.to_str().unwrap());
    assert_eq!(entries[7]["actor"], "demo-qa");
    assert_eq!(entries[7]["work_order"], desk.c.to_string());
}

async fn agents_texts_are_checked_for_forbidden_phrases_and_kept_as_written_r28(backend: Backend) {
    let desk = desk(backend).await;
    let answer_text = "这个不行，我也不知道。";
    let changed = desk
        .patch(
            &format!("/work-orders/{}", desk.a),
            AGENT_1001,
            &serde_json::json!({ "answer": answer_text, "matter": "咨询供暖费" }).to_string(),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text());
    let json = changed.json();
    let found: Vec<&str> = json["forbidden_phrases_found"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["phrase"].as_str().unwrap())
        .collect();
    assert_eq!(found, ["不行", "不知道"]);
    assert_eq!(
        json["work_order"]["answer"], answer_text,
        "text not altered"
    );
    assert_eq!(json["work_order"]["qa"]["reason"], "forbidden phrase");

    let note = desk
        .post(
            &format!("/work-orders/{}/notes", desk.a),
            AGENT_1001,
            r#"{"text":"已告知：爱找谁找谁"}"#,
        )
        .await;
    assert_eq!(note.status, StatusCode::CREATED, "{}", note.text());
    assert_eq!(note.json()["forbidden_phrases_found"][0]["field"], "note");

    let detail = desk
        .get(&format!("/work-orders/{}", desk.a), SUPERVISOR)
        .await
        .json();
    let stored: Vec<(String, String)> = detail["forbidden_phrases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["phrase"].as_str().unwrap().to_owned(),
                h["field"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(stored.contains(&("不行".into(), "answer".into())));
    assert!(stored.contains(&("爱找谁找谁".into(), "note".into())));
    // Flagged for QA: QA can now read the order.
    assert_eq!(
        desk.get(&format!("/work-orders/{}", desk.a), QA)
            .await
            .status,
        StatusCode::OK
    );

    // A clean text raises nothing; a supervisor quoting an agent is not flagged.
    let clean = desk
        .patch(
            &format!("/work-orders/{}", desk.b),
            AGENT_1002,
            r#"{"answer":"您好，已为您登记，三个工作日内回复。"}"#,
        )
        .await;
    assert_eq!(
        clean.json()["forbidden_phrases_found"],
        serde_json::json!([])
    );
    let quoted = desk
        .post(
            &format!("/work-orders/{}/notes", desk.b),
            SUPERVISOR,
            r#"{"text":"坐席曾说“不行”，已批评教育"}"#,
        )
        .await;
    assert_eq!(
        quoted.json()["forbidden_phrases_found"],
        serde_json::json!([])
    );
    assert!(quoted.json()["work_order"]["qa"].is_null());
}

async fn lifecycle_through_the_api_closing_rules_r21(backend: Backend) {
    let desk = desk(backend).await;
    let order = format!("/work-orders/{}", desk.a);
    // A consultation answered at once closes on the spot.
    let answer = desk
        .patch(
            &order,
            AGENT_1001,
            r#"{"category":"consultation","answer":"每平方米二十八元"}"#,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let closed = desk.post(&format!("{order}/close"), AGENT_1001, "").await;
    assert_eq!(closed.status, StatusCode::OK, "{}", closed.text());
    assert_eq!(closed.json()["work_order"]["order"]["status"], "closed");
    // A closed order is final.
    let again = desk
        .post(
            &format!("{order}/status"),
            AGENT_1001,
            r#"{"status":"follow_up"}"#,
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.error_code(), "invalid_transition");

    // A service request closes only after the enterprise evaluation.
    let order = format!("/work-orders/{}", desk.b);
    desk.patch(
        &order,
        AGENT_1002,
        r#"{"category":"help","answer":"已联系开锁公司上门"}"#,
    )
    .await;
    let referred = desk
        .post(
            &format!("{order}/referral"),
            AGENT_1002,
            r#"{"enterprise":"营口市开锁服务中心"}"#,
        )
        .await;
    assert_eq!(referred.status, StatusCode::OK, "{}", referred.text());
    let moved = desk
        .post(
            &format!("{order}/status"),
            AGENT_1002,
            r#"{"status":"transferred"}"#,
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text());
    let events_before = desk.events(&desk.b).await;
    let early = desk.post(&format!("{order}/close"), AGENT_1002, "").await;
    assert_eq!(early.status, StatusCode::CONFLICT);
    assert_eq!(early.error_code(), "invalid_transition");
    assert!(early.text().contains("evaluation"), "{}", early.text());
    assert_eq!(desk.events(&desk.b).await, events_before, "nothing stored");
    let evaluated = desk
        .post(
            &format!("{order}/enterprise-evaluation"),
            AGENT_1002,
            r#"{"attitude":"satisfied","efficiency":"basically_satisfied","quality":"satisfied"}"#,
        )
        .await;
    assert_eq!(evaluated.status, StatusCode::OK, "{}", evaluated.text());
    let closed = desk.post(&format!("{order}/close"), AGENT_1002, "").await;
    assert_eq!(closed.status, StatusCode::OK, "{}", closed.text());

    // The audit trail shows who did what.
    let events = desk
        .get(&format!("{order}/events"), SUPERVISOR)
        .await
        .json();
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"enterprise_referred"), "{kinds:?}");
    assert!(kinds.contains(&"status_changed"), "{kinds:?}");
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "status_changed" && e["actor"] == "1002")
    );
}

async fn bad_input_gets_a_4xx_json_error_and_nothing_is_stored(backend: Backend) {
    let desk = desk(backend).await;
    let order = format!("/work-orders/{}", desk.a);
    let before = desk.events(&desk.a).await;
    let oversize = format!(r#"{{"matter":"{}"}}"#, "长".repeat(40_000));
    for (method, path, body, status, code) in [
        (
            Method::PATCH,
            order.clone(),
            r#"{"matter": "#.to_owned(),
            400,
            "malformed_json",
        ),
        (
            Method::PATCH,
            order.clone(),
            "not json".to_owned(),
            400,
            "malformed_json",
        ),
        (
            Method::PATCH,
            order.clone(),
            r#"{"matter":"供暖","colour":"red"}"#.to_owned(),
            422,
            "invalid_body",
        ),
        (
            Method::PATCH,
            order.clone(),
            r#"{"urgent":"yes"}"#.to_owned(),
            422,
            "invalid_body",
        ),
        (
            Method::PATCH,
            order.clone(),
            "{}".to_owned(),
            422,
            "invalid_input",
        ),
        (
            Method::PATCH,
            order.clone(),
            oversize,
            413,
            "payload_too_large",
        ),
        (
            Method::POST,
            format!("{order}/status"),
            r#"{"status":"reopened"}"#.to_owned(),
            422,
            "invalid_body",
        ),
        (
            Method::POST,
            format!("{order}/status"),
            r#"{"status":"accepted"}"#.to_owned(),
            409,
            "invalid_transition",
        ),
        (
            Method::POST,
            format!("{order}/status"),
            r#"{"status":"transferred"}"#.to_owned(),
            409,
            "invalid_transition",
        ),
        (
            Method::POST,
            format!("{order}/notes"),
            r#"{"text":"x","extra":1}"#.to_owned(),
            422,
            "invalid_body",
        ),
        (
            Method::POST,
            format!("{order}/notes"),
            r#"{"text":"  "}"#.to_owned(),
            422,
            "invalid_input",
        ),
    ] {
        let answer = desk
            .send(method.clone(), &path, Some(AGENT_1001), Some(&body), &[])
            .await;
        assert_eq!(
            answer.status.as_u16(),
            status,
            "{method} {path}: {}",
            answer.text()
        );
        assert_eq!(answer.error_code(), code, "{method} {path}");
    }
    // Not declared as JSON.
    let request = desk
        .send(
            Method::PATCH,
            &order,
            Some(AGENT_1001),
            None,
            &[("content-type", "text/plain")],
        )
        .await;
    assert_eq!(request.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(request.error_code(), "unsupported_media_type");
    // Bad query strings and ids.
    for (path, status, code) in [
        ("/work-orders?status=lost", 400, "invalid_query"),
        ("/work-orders?limit=0", 400, "invalid_query"),
        ("/work-orders?colour=red", 400, "invalid_query"),
        ("/work-orders?from=yesterday", 400, "invalid_query"),
        ("/work-orders/not-an-id", 404, "not_found"),
        (
            "/work-orders/20261128-023000-000000000001",
            404,
            "not_found",
        ),
        ("/knowledge?q=", 400, "invalid_query"),
        ("/no-such-route", 404, "not_found"),
    ] {
        let answer = desk.get(path, SUPERVISOR).await;
        assert_eq!(answer.status.as_u16(), status, "{path}: {}", answer.text());
        assert_eq!(answer.error_code(), code, "{path}");
    }
    assert_eq!(desk.events(&desk.a).await, before, "nothing stored");
    let detail = desk.get(&order, SUPERVISOR).await.json();
    assert!(detail["matter"].is_null() && detail["answer"].is_null());
    assert_eq!(detail["order"]["status"], "accepted");
}

async fn list_filters_and_cursor_pagination(backend: Backend) {
    let desk = desk(backend).await;
    for n in 10..17 {
        seed_order(desk.store.as_ref(), n, "13600000000", "1002", None).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let url = match &cursor {
            None => "/work-orders?agent=1002&limit=3".to_owned(),
            Some(c) => format!("/work-orders?agent=1002&limit=3&cursor={c}"),
        };
        let page = desk.get(&url, SUPERVISOR).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let json = page.json();
        let orders = json["orders"].as_array().unwrap();
        assert!(orders.len() <= 3);
        seen.extend(orders.iter().map(|o| o["id"].as_str().unwrap().to_owned()));
        pages += 1;
        match json["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 8, "7 new orders and B");
    assert!(pages >= 3);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(seen, sorted, "newest first, no repeats");

    let from = (t0() + Duration::minutes(12)).to_rfc3339();
    let until = (t0() + Duration::minutes(15)).to_rfc3339();
    let window = desk
        .get(
            &format!(
                "/work-orders?from={}&until={}",
                from.replace('+', "%2B"),
                until.replace('+', "%2B")
            ),
            SUPERVISOR,
        )
        .await;
    assert_eq!(window.status, StatusCode::OK, "{}", window.text());
    assert_eq!(window.json()["orders"].as_array().unwrap().len(), 3);

    desk.patch(
        &format!("/work-orders/{}", desk.a),
        SUPERVISOR,
        r#"{"category":"complaint"}"#,
    )
    .await;
    let complaints = desk
        .get("/work-orders?category=complaint", SUPERVISOR)
        .await
        .json();
    assert_eq!(complaints["orders"][0]["id"], desk.a.to_string());
    assert_eq!(complaints["orders"].as_array().unwrap().len(), 1);
    let closed = desk
        .get("/work-orders?status=closed", SUPERVISOR)
        .await
        .json();
    assert!(closed["orders"].as_array().unwrap().is_empty());
    let overdue = desk.get("/work-orders?overdue=true", SUPERVISOR).await;
    assert_eq!(overdue.status, StatusCode::OK);
    assert!(overdue.json()["orders"].as_array().unwrap().is_empty());
    // A callback due within an hour of the call, never made: B is overdue (R20).
    desk.store
        .add_follow_up(
            &desk.b,
            &FollowUpTask {
                kind: FollowUpKind::ConfirmContact,
                due_from: t0() + Duration::minutes(20),
                due_until: t0() + Duration::minutes(30),
                note: String::new(),
            },
            "1002",
            t0() + Duration::minutes(5),
        )
        .await
        .expect("follow-up");
    let overdue = desk
        .get("/work-orders?overdue=true", SUPERVISOR)
        .await
        .json();
    let ids: Vec<&str> = overdue["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [desk.b.as_str()]);
    let detail = desk
        .get(&format!("/work-orders/{}", desk.b), AGENT_1002)
        .await
        .json();
    assert_eq!(detail["overdue"], true);
    assert_eq!(detail["follow_ups"][0]["kind"], "confirm_contact");
}

async fn knowledge_and_directory_search_in_chinese_and_a_provider_from_a_work_order_r13_r14(
    backend: Backend,
) {
    let desk = desk(backend).await;
    for token in [AGENT_1001, QA, SUPERVISOR] {
        let hits = desk.get(&uri("/knowledge?q=供暖"), token).await;
        assert_eq!(hits.status, StatusCode::OK, "{}", hits.text());
        let hits = hits.json();
        assert_eq!(hits.as_array().unwrap().len(), 1);
        assert_eq!(hits[0]["id"], "kb-heating");
    }
    let none = desk.get(&uri("/knowledge?q=社保"), AGENT_1001).await.json();
    assert!(none.as_array().unwrap().is_empty());
    let locksmith = desk.get(&uri("/directory?q=开锁"), AGENT_1001).await.json();
    assert_eq!(locksmith[0]["id"], "p-locksmith");

    let added = desk
        .post(
            &format!("/work-orders/{}/providers", desk.a),
            AGENT_1001,
            r#"{"name":"站前区家电维修部","services":"冰箱 洗衣机 维修","area":"站前区","phone":"04172811111"}"#,
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text());
    assert_eq!(added.json()["added_from"], desk.a.to_string());
    let found = desk.get(&uri("/directory?q=洗衣机"), QA).await.json();
    assert_eq!(found[0]["name"], "站前区家电维修部");
    assert_eq!(found[0]["added_from"], desk.a.to_string());
    let refused = desk
        .post(
            &format!("/work-orders/{}/providers", desk.b),
            AGENT_1001,
            r#"{"name":"x","services":"y"}"#,
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

async fn openapi_json_parses_and_lists_every_route(backend: Backend) {
    let desk = desk(backend).await;
    let answer = desk
        .send(Method::GET, "/openapi.json", None, None, &[])
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let document = answer.json();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let paths = document["paths"].as_object().expect("paths");
    let mut listed: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "post", "patch", "put", "delete"].contains(&k.as_str()))
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    listed.sort();
    let placeholder = WorkOrderId::from_parts(t0(), 1);
    let mut expected: Vec<(String, String)> = routes(&placeholder)
        .into_iter()
        .map(|(method, path, _)| {
            let path = path
                .split('?')
                .next()
                .unwrap()
                .replace(placeholder.as_str(), "{id}");
            (method.to_string(), path)
        })
        .collect();
    expected.sort();
    assert_eq!(listed, expected);
    // Each operation documents its refusals as JSON errors.
    for (method, path) in &listed {
        let operation = &paths[path][method.to_lowercase()];
        assert!(
            operation["responses"]["401"].is_object(),
            "{method} {path} lacks 401"
        );
    }
}
