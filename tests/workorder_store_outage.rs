//! Issue 8, "a store outage is survived": while calls run, the work-order store goes
//! away for about 20 s, and calls do not notice. Every call is still answered inside
//! the ring budget, counted by the engine's own metrics (the answer delay is measured
//! from the INVITE), not by the test's clock; and once the store is back, every work
//! order is complete, because the store writer (`runtime::store`) keeps the writes in
//! order and retries them (R10, R31).
//!
//! - SQLite: another connection holds `BEGIN EXCLUSIVE` on the database file.
//! - PostgreSQL (a fresh database on 127.0.0.1:5432, never the shared server itself):
//!   the engine's backend is terminated with `pg_terminate_backend` and the database
//!   refuses new connections for the same time.
//!
//! SIPp callers and agents on 127.0.0.1; run `scripts/install-test-deps.sh` first.

mod common;
mod pg_harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Engine, EngineOptions, Sipp, agent_phone, metric_value};
use hotline::workorder::{CallOutcome, SqlStore, WorkOrder, WorkOrderStore};
use pg_harness::TestDatabase;

/// Calls placed while the store is away.
const CALLS: u64 = 6;
/// How long the store is away.
const OUTAGE: Duration = Duration::from_secs(20);
const AGENTS: [&str; 3] = ["1001", "1002", "1003"];

/// Starts the agents' phones and logs them in.
fn staff(engine: &Engine) -> Vec<common::RunningSipp> {
    let phones = AGENTS
        .iter()
        .map(|id| {
            agent_phone(
                engine,
                id,
                "agent_hangup_first.xml",
                Duration::from_secs(120),
            )
        })
        .collect();
    engine.log_in_when_registered(&AGENTS);
    phones
}

/// The callers, one a second, each staying until the agent hangs up.
fn callers(engine: &Engine) -> common::RunningSipp {
    Sipp::new("caller_until_bye.xml", engine.sip)
        .args(["-m", &CALLS.to_string(), "-l", "6", "-r", "1"])
        .spawn(Duration::from_secs(120))
}

/// What the engine's metrics say about the calls, and the store's trouble.
fn assert_calls_answered_in_the_ring_budget(engine: &Engine) {
    let metrics = engine.metrics();
    let value = |name: &str| metric_value(&metrics, name, "");
    let sum = |name: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let calls = CALLS as f64;
    assert_eq!(sum("hotline_calls_offered_total"), calls, "{metrics}");
    assert_eq!(
        sum("hotline_answered_within_ring_budget_total"),
        calls,
        "every call answered inside the ring budget during the outage (R6)\n{metrics}"
    );
    assert_eq!(
        sum("hotline_calls_connected_total"),
        calls,
        "every call reached an agent\n{metrics}"
    );
    assert_eq!(
        value("hotline_store_writes_dropped_total"),
        0.0,
        "no write was dropped"
    );
    assert!(
        value("hotline_store_errors_total") > 0.0,
        "the store really failed during the run, or this test proves nothing\n{metrics}"
    );
}

/// Waits until the writer's backlog is empty and every order has ended; then checks
/// each order is complete.
async fn assert_every_order_complete(engine: &Engine, store: &dyn WorkOrderStore) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let orders: Vec<WorkOrder> = loop {
        let backlog = engine.metric("hotline_store_backlog", "");
        let orders = store.list_recent(100).await.unwrap_or_default();
        if backlog == 0.0
            && orders.len() as u64 == CALLS
            && orders.iter().all(|o| o.ended_at.is_some())
        {
            break orders;
        }
        assert!(
            Instant::now() < deadline,
            "the writer did not catch up: backlog {backlog}, orders {orders:#?}\n{}",
            engine.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for order in &orders {
        let what = format!("{order:#?}");
        assert!(order.answered_at.is_some(), "trunk answer lost: {what}");
        assert!(order.queued_at.is_some(), "queueing lost: {what}");
        assert!(order.connected_at.is_some(), "agent's answer lost: {what}");
        assert!(
            order.agent.as_deref().is_some_and(|a| AGENTS.contains(&a)),
            "owner lost (R7): {what}"
        );
        assert_eq!(order.outcome, Some(CallOutcome::Answered), "{what}");
        let recording = order.recording_path.as_deref().expect("recording path");
        assert!(
            engine.dir.path().join(recording).is_file(),
            "the recording has its work order and the order its recording: {what}"
        );
    }
}

#[test]
fn sqlite_locked_for_20_s_while_calls_ring_delays_no_call_and_loses_no_work_order() {
    let engine = Engine::start(EngineOptions::default());
    let phones = staff(&engine);

    let database = engine
        .data_dir()
        .join(hotline::workorder::sqlite::DB_FILE_NAME);
    let locker = rusqlite::Connection::open(&database).expect("open the database");
    locker
        .execute_batch("BEGIN EXCLUSIVE")
        .expect("lock the database");
    let outage_over = Arc::new(AtomicBool::new(false));
    let health = std::thread::spawn({
        let (http, over) = (engine.http, outage_over.clone());
        move || EngineHealth { http }.saw_failure(&over)
    });

    let callers = callers(&engine);
    std::thread::sleep(OUTAGE);
    locker.execute_batch("COMMIT").expect("unlock");
    outage_over.store(true, Ordering::SeqCst);
    assert!(
        health.join().expect("health poller"),
        "/health never reported the locked store"
    );
    callers.wait().assert_success_against(&engine);

    assert_calls_answered_in_the_ring_budget(&engine);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = SqlStore::open(&engine.data_dir()).expect("open the store");
        assert_every_order_complete(&engine, &store).await;
    });
    drop(phones);
}

#[test]
fn postgres_cut_off_for_20_s_while_calls_ring_delays_no_call_and_loses_no_work_order() {
    let database = TestDatabase::create();
    let engine = Engine::start(EngineOptions {
        store_toml: Some(format!(
            "[store]\nkind = \"postgres\"\nurl = \"{}\"\ntls = \"disable\"",
            database.url()
        )),
        ..EngineOptions::default()
    });
    let phones = staff(&engine);

    // The database refuses new connections, then the engine's backend is cut.
    admin(&format!(
        "ALTER DATABASE {} ALLOW_CONNECTIONS false",
        database.name
    ));
    database.terminate_connections();
    let outage_over = Arc::new(AtomicBool::new(false));
    let health = std::thread::spawn({
        let (http, over) = (engine.http, outage_over.clone());
        move || EngineHealth { http }.saw_failure(&over)
    });

    let callers = callers(&engine);
    std::thread::sleep(OUTAGE);
    admin(&format!(
        "ALTER DATABASE {} ALLOW_CONNECTIONS true",
        database.name
    ));
    outage_over.store(true, Ordering::SeqCst);
    assert!(
        health.join().expect("health poller"),
        "/health never reported the unreachable store"
    );
    callers.wait().assert_success_against(&engine);

    assert_calls_answered_in_the_ring_budget(&engine);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = SqlStore::connect(&database.settings())
            .unwrap_or_else(|e| panic!("{}", pg_harness::unreachable_message(&e)));
        assert_every_order_complete(&engine, &store).await;
    });
    drop(phones);
}

/// The `/health` poller, apart from the engine so it can run on its own thread.
struct EngineHealth {
    http: std::net::SocketAddr,
}

impl EngineHealth {
    fn saw_failure(&self, over: &AtomicBool) -> bool {
        let mut failing = false;
        while !over.load(Ordering::SeqCst) {
            if let Some((status, body)) = common::http_request(self.http, "GET", "/health", None)
                && status == 503
            {
                let json: serde_json::Value = serde_json::from_str(&body)
                    .unwrap_or_else(|e| panic!("/health's 503 is not JSON ({e}): {body}"));
                assert_eq!(json["error"]["code"], "store_unavailable", "{body}");
                let message = json["error"]["message"].as_str().unwrap_or_default();
                assert!(message.contains("work order store"), "{body}");
                failing = true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        failing
    }
}

/// Runs `sql` on the test server's `postgres` database (never stopping the server).
fn admin(sql: &str) {
    let sql = sql.to_owned();
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(pg_harness::SERVER, postgres::NoTls)
            .unwrap_or_else(|e| panic!("{}", pg_harness::unreachable_message(&e)));
        client.batch_execute(&sql).expect("admin SQL");
    })
    .join()
    .expect("admin thread");
}
