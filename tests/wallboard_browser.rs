//! The wallboard page in headless Chromium (R5, R30): callers wait (SIPp, no agent
//! logged in); the page, opened with the supervisor token, renders the numbers the
//! event stream sent: the queue's depth and oldest wait, the connection rates, the
//! callbacks (none due or overdue yet), no urgent calls or complaints. A screenshot is
//! saved under `target/wallboard.png` (not committed).
//!
//! Needs Debian's chromium, node and `playwright-core` in tests/browser/node_modules
//! (scripts/install-test-deps.sh installs all three).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{API_TOKEN, Engine, EngineOptions, MANIFEST_DIR, Sipp, browser_dir, require_browser};
use serde_json::Value;

/// The page's "12分05秒" / "7秒" for a number of seconds.
fn seconds_text(seconds: f64) -> String {
    let s = seconds.floor() as u64;
    if s >= 60 {
        format!("{}分{:02}秒", s / 60, s % 60)
    } else {
        format!("{s}秒")
    }
}

fn percent_text(rate: &Value) -> String {
    match rate.as_f64() {
        Some(r) => format!("{:.1}%", r * 100.0),
        None => "—".to_owned(),
    }
}

#[test]
fn the_page_renders_the_numbers_the_stream_sent() {
    require_browser();
    let engine = Engine::start(EngineOptions::default());
    let _callers = Sipp::new("caller_until_bye.xml", engine.sip)
        .args(["-m", "2", "-l", "2", "-r", "10"])
        .spawn(Duration::from_secs(90));
    let screenshot = Path::new(MANIFEST_DIR).join("target/wallboard.png");
    let url = format!("http://{}/wallboard?token={API_TOKEN}", engine.http);
    let out = Command::new("node")
        .arg(browser_dir().join("wallboard.mjs"))
        .args([url.as_str(), screenshot.to_str().unwrap(), "general", "2"])
        .current_dir(browser_dir())
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "the browser run failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    let snapshot = &shown["snapshot"];
    let general = snapshot["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "general")
        .expect("the general queue in the snapshot");

    // The snapshot is what the stream sent: it has the stream's shape and the calls.
    assert_eq!(general["depth"], 2, "{snapshot:#}");
    assert_eq!(shown["queue"]["depth"], general["depth"].to_string());
    assert_eq!(
        shown["queue"]["oldest"],
        seconds_text(general["oldest_wait_seconds"].as_f64().unwrap())
    );
    assert!(
        shown["queue"]["rowClass"]
            .as_str()
            .unwrap()
            .contains(general["level"].as_str().unwrap())
    );
    let rates = &snapshot["connection_rate"];
    assert_eq!(shown["rateToday"], percent_text(&rates["today"]["rate"]));
    assert_eq!(
        shown["rate24h"],
        percent_text(&rates["rolling_24h"]["rate"])
    );
    // R20: callbacks are on (their store sits beside the work orders), none waiting.
    let callbacks = &snapshot["callbacks"];
    assert_eq!(callbacks["level"], "ok", "{snapshot:#}");
    let callbacks_text = shown["callbacks"].as_str().unwrap();
    for part in [
        format!("到期 {}", callbacks["due"]),
        format!("超期 {}", callbacks["overdue"]),
        format!("待回拨 {}", callbacks["pending"]),
        format!("正在拨打 {}", callbacks["dialing"]),
    ] {
        assert!(
            callbacks_text.contains(&part),
            "{part:?} not in {callbacks_text:?}"
        );
    }
    let panel = shown["callbacksPanel"].as_str().unwrap();
    assert!(
        !panel.contains("amber") && !panel.contains("red"),
        "{panel}"
    );
    assert_eq!(shown["urgent"], "暂无");
    assert_eq!(shown["complaints"], "暂无");
    assert_eq!(shown["link"], "实时");
    assert_eq!(shown["agents"]["1001"], "未登录");
    assert!(
        screenshot.is_file(),
        "no screenshot at {}",
        screenshot.display()
    );
}
