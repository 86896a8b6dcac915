//! R23 on the real engine: every call an agent takes is offered to the QA sampler, off
//! the call path, and a picked call's work order is marked for review (`random
//! sample`, by `qa-sampler`) once the call is connected; QA then reads it. With
//! `[qa] sample_percent = 100` every connected call is picked, with 0 none. The share
//! itself is tested on the sampler and the store writer (`runtime::store`). SIPp
//! agents and callers on 127.0.0.1.

mod common;

use std::time::Duration;

use common::{Engine, EngineOptions, Sipp, agent_phone, wait_for_metric, work_orders};
use hotline::api::auth::hash_token;
use hotline::workorder::{SqlStore, WorkOrderStore};

const QA_TOKEN: &str = "qa-sampling-test-qa-token-0123456789";

fn engine(percent: f64) -> Engine {
    Engine::start(EngineOptions {
        extra_config: format!(
            "[qa]\nsample_percent = {percent:.1}\n\n\
             [[access.tokens]]\nname = \"qa-desk\"\nrole = \"qa\"\nsha256 = \"{}\"\n",
            hash_token(QA_TOKEN)
        ),
        ..EngineOptions::default()
    })
}

/// Three calls to three agents; the engine's work orders once they ended.
fn three_calls(engine: &Engine) -> Vec<hotline::workorder::WorkOrder> {
    let agents = ["1001", "1002", "1003"];
    let phones: Vec<_> = agents
        .iter()
        .map(|id| {
            agent_phone(
                engine,
                id,
                "agent_hangup_first.xml",
                Duration::from_secs(60),
            )
        })
        .collect();
    engine.log_in_when_registered(&agents);
    Sipp::new("caller_until_bye.xml", engine.sip)
        .args(["-m", "3", "-l", "3", "-r", "3"])
        .run(Duration::from_secs(60))
        .assert_success_against(engine);
    wait_for_metric(
        engine,
        "hotline_calls_connected_total",
        "queue=\"general\"",
        3.0,
    );
    wait_for_metric(engine, "hotline_recordings_written_total", "", 3.0);
    drop(phones);
    let orders = work_orders(engine);
    assert_eq!(orders.len(), 3, "{orders:#?}");
    orders
}

#[test]
fn every_connected_call_is_sampled_at_100_percent_and_qa_reads_it_r23() {
    let engine = engine(100.0);
    let orders = three_calls(&engine);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store = SqlStore::open(&engine.data_dir()).expect("open the store");
    for order in &orders {
        let file = runtime
            .block_on(store.get_file(&order.id))
            .expect("read")
            .expect("stored");
        let qa = file
            .matter
            .qa
            .as_ref()
            .unwrap_or_else(|| panic!("not picked: {file:#?}\n{}", engine.log()));
        assert_eq!(qa.reason, "random sample");
        assert_eq!(Some(qa.selected_at), file.order.connected_at);
        let events = runtime.block_on(store.events(&order.id)).expect("events");
        assert!(
            events.iter().any(|e| e.actor == "qa-sampler"),
            "{events:#?}"
        );
        let (status, body) = common::http_request(
            engine.http,
            "GET",
            &format!("/work-orders/{}", order.id),
            Some(QA_TOKEN),
        )
        .expect("answer");
        assert_eq!(status, 200, "QA reads the sampled order: {body}");
    }
}

#[test]
fn no_call_is_sampled_at_0_percent_r23() {
    let engine = engine(0.0);
    let orders = three_calls(&engine);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store = SqlStore::open(&engine.data_dir()).expect("open the store");
    for order in &orders {
        assert!(order.connected_at.is_some(), "{order:#?}");
        let file = runtime
            .block_on(store.get_file(&order.id))
            .expect("read")
            .expect("stored");
        assert!(file.matter.qa.is_none(), "{file:#?}");
    }
}
