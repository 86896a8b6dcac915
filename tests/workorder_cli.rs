//! The supervisors' command line on either store (R12, R31): `hotline work-orders
//! show` and `export` mask caller numbers by default, show them only with
//! `--unmasked`, and write every such read to the read-audit log; bad arguments stop
//! with exit 64 and a reason. Orders are written with the library, then read by the
//! real binary, as a supervisor would after a day of calls.

mod pg_harness;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::{Duration, Utc};
use hotline::workorder::conformance::{base_time, inbound_order};
use hotline::workorder::postgres::PostgresStore;
use hotline::workorder::sqlite::SqliteStore;
use hotline::workorder::{
    AuditedRead, CallOutcome, DetailsUpdate, HangupSide, SqlStore, WorkOrder, WorkOrderStore,
};
use pg_harness::TestDatabase;

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

fn hotline(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hotline"))
        .current_dir(MANIFEST_DIR)
        .env("USER", "supervisor-li")
        .arg("work-orders")
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run hotline")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

/// The shipped config with its `[store]` section replaced.
fn config_with_store(dir: &Path, store_section: &str) -> PathBuf {
    let shipped = std::fs::read_to_string(Path::new(MANIFEST_DIR).join("config/hotline.toml"))
        .expect("shipped config");
    let start = shipped.find("[store]").expect("store section");
    let end = shipped[start + 1..]
        .find("\n[")
        .map_or(shipped.len(), |i| start + 2 + i);
    let text = format!("{}{store_section}\n{}", &shipped[..start], &shipped[end..]);
    let path = dir.join("hotline.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// Two orders on the day of `base_time()`, one the day before; the first with a
/// matter and a finished call.
async fn write_orders(store: &SqlStore) -> Vec<WorkOrder> {
    let yesterday = inbound_order(1, base_time() - Duration::days(1));
    let first = inbound_order(2, base_time());
    let second = inbound_order(3, base_time() + Duration::hours(2));
    for order in [&yesterday, &first, &second] {
        store.create(order).await.expect("create");
    }
    store
        .mark_answered(&first.id, base_time(), Some("recordings/first.wav"))
        .await
        .expect("answer");
    store
        .mark_ended(
            &first.id,
            base_time() + Duration::minutes(3),
            Some(HangupSide::Caller),
            CallOutcome::Answered,
        )
        .await
        .expect("end");
    store
        .update_details(
            &first.id,
            &DetailsUpdate {
                matter: Some("咨询新生儿落户需要哪些材料, 是否可以网上办理".into()),
                ..DetailsUpdate::default()
            },
            "1001",
            base_time(),
        )
        .await
        .expect("matter");
    vec![yesterday, first, second]
}

async fn sqlite_setup(dir: &Path) -> (PathBuf, Vec<WorkOrder>) {
    let data = dir.join("data");
    let store = SqliteStore::open(&data).expect("open");
    let orders = write_orders(&store).await;
    store.close().await.expect("close");
    let config = config_with_store(
        dir,
        &format!(
            "[store]\nkind = \"sqlite\"\ndata_dir = \"{}\"",
            data.display()
        ),
    );
    (config, orders)
}

async fn postgres_setup(dir: &Path, db: &TestDatabase) -> (PathBuf, Vec<WorkOrder>) {
    let store = PostgresStore::connect(&db.settings()).expect("connect");
    let orders = write_orders(&store).await;
    store.close().await.expect("close");
    let config = config_with_store(
        dir,
        &format!(
            "[store]\nkind = \"postgres\"\nurl = \"{}\"\ntls = \"disable\"",
            db.url()
        ),
    );
    (config, orders)
}

async fn audit_log(open: impl FnOnce() -> SqlStore) -> Vec<hotline::workorder::ReadAuditEntry> {
    let store = open();
    let log = store
        .read_audit_log(Utc::now() - Duration::days(1), 100)
        .await
        .expect("audit log");
    store.close().await.expect("close");
    log
}

/// `show` and `export`, masked and unmasked, against whatever store `config` names.
async fn masked_by_default_and_audited_when_unmasked(
    config: &Path,
    orders: &[WorkOrder],
    open: impl Fn() -> SqlStore,
) {
    let first = &orders[1];
    let full = first.caller.as_str();
    let masked = hotline::privacy::mask_number(full);

    let shown = stdout(&hotline(config, &["show", first.id.as_str()]));
    assert!(shown.contains(&masked), "{shown}");
    assert!(
        !shown.contains(full),
        "full number shown without --unmasked: {shown}"
    );
    assert!(shown.contains("咨询新生儿落户"), "{shown}");
    assert!(shown.contains("recordings/first.wav"), "{shown}");
    assert!(shown.contains("field_updated"), "history is shown: {shown}");

    let csv_text = stdout(&hotline(
        config,
        &["export", "--since", "2026-11-28", "--format", "csv"],
    ));
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    let ids: Vec<&str> = rows.iter().map(|r| &r[0]).collect();
    assert_eq!(ids, vec![orders[1].id.as_str(), orders[2].id.as_str()]);
    assert!(!csv_text.contains(full), "{csv_text}");
    assert!(rows.iter().all(|r| r[3].contains('*')));

    let json_text = stdout(&hotline(
        config,
        &[
            "export",
            "--since",
            "2026-11-27",
            "--until",
            "2026-11-28",
            "--format",
            "json",
        ],
    ));
    let json: serde_json::Value = serde_json::from_str(&json_text).expect("JSON");
    let exported = json.as_array().expect("array");
    assert_eq!(exported.len(), 1);
    assert_eq!(exported[0]["id"], orders[0].id.as_str());
    assert!(!json_text.contains(&orders[0].caller), "{json_text}");

    assert!(
        audit_log(&open).await.is_empty(),
        "masked reads are not full-number reads"
    );

    let shown = stdout(&hotline(config, &["show", first.id.as_str(), "--unmasked"]));
    assert!(shown.contains(full), "{shown}");
    let json_text = stdout(&hotline(
        config,
        &[
            "export",
            "--since",
            "2026-11-28",
            "--format",
            "json",
            "--unmasked",
        ],
    ));
    assert!(json_text.contains(&orders[2].caller), "{json_text}");

    let log = audit_log(&open).await;
    let audited: Vec<(&str, &str)> = log
        .iter()
        .map(|e| {
            assert_eq!(e.read, AuditedRead::FullNumber);
            assert_eq!(e.actor, "cli:supervisor-li");
            (
                e.work_order.as_ref().map(|id| id.as_str()).unwrap_or(""),
                e.target.as_str(),
            )
        })
        .collect();
    assert_eq!(
        audited,
        vec![
            (first.id.as_str(), "caller (work-orders show)"),
            (orders[1].id.as_str(), "caller (work-orders export)"),
            (orders[2].id.as_str(), "caller (work-orders export)"),
        ]
    );
}

#[tokio::test]
async fn sqlite_show_and_export_mask_numbers_and_audit_unmasked_reads_r12() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, orders) = sqlite_setup(dir.path()).await;
    let data = dir.path().join("data");
    masked_by_default_and_audited_when_unmasked(&config, &orders, || {
        SqliteStore::open(&data).expect("open")
    })
    .await;
}

#[tokio::test]
async fn postgres_show_and_export_mask_numbers_and_audit_unmasked_reads_r12_r31() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = TestDatabase::create();
    let (config, orders) = postgres_setup(dir.path(), &db).await;
    let settings = db.settings();
    masked_by_default_and_audited_when_unmasked(&config, &orders, || {
        PostgresStore::connect(&settings).expect("connect")
    })
    .await;
}

#[tokio::test]
async fn bad_arguments_exit_64_with_a_reason_and_unknown_orders_fail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, _) = sqlite_setup(dir.path()).await;
    for (args, needle) in [
        (vec!["show", "not-an-id"], "invalid work order id"),
        (vec!["export", "--since", "yesterday"], "--since"),
        (
            vec!["export", "--since", "2026-11-28", "--format", "xml"],
            "--format",
        ),
    ] {
        let out = hotline(&config, &args);
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    let missing = "20261128-153012-00000000dead";
    let out = hotline(&config, &["show", missing]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}

#[tokio::test]
async fn the_shipped_knowledge_base_and_directory_import_from_the_cli_r13() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, _) = sqlite_setup(dir.path()).await;
    let out = stdout(&hotline(
        &config,
        &["import-knowledge", "config/knowledge.json"],
    ));
    assert!(out.contains("entries imported"), "{out}");
    let out = stdout(&hotline(
        &config,
        &["import-providers", "config/providers.csv"],
    ));
    assert!(out.contains("providers imported"), "{out}");
    let store = SqliteStore::open(&dir.path().join("data")).expect("open");
    let found = store.search_providers("家政", 10).await.expect("search");
    assert!(found.len() >= 2, "{found:?}");
    store.close().await.expect("close");

    // A bad file: refused with its line, nothing imported.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "id,title,body,colour\nx,标题,正文,red\n").expect("write");
    let out = hotline(&config, &["import-knowledge", bad.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.csv:1:"), "{stderr}");
}
