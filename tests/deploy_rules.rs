//! The Prometheus rules shipped in `deploy/prometheus/` (R5, R6, R20, R22, R30):
//! `promtool check rules` accepts them, `promtool test rules` runs their unit tests, and
//! every alert has a test case where it fires and one where it stays quiet.
//!
//! promtool comes with the Debian package `prometheus` (scripts/install-test-deps.sh).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

fn rules_dir() -> PathBuf {
    Path::new(MANIFEST_DIR).join("deploy/prometheus")
}

fn promtool() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("promtool"))
            .find(|p| p.is_file())
    });
    found.expect(
        "promtool is not installed: run scripts/install-test-deps.sh (Debian package prometheus)",
    )
}

fn run_promtool(args: &[&str]) -> String {
    let out = Command::new(promtool())
        .args(args)
        .current_dir(rules_dir())
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// The `alert:` names of the rules file.
fn alerts() -> BTreeSet<String> {
    let text = std::fs::read_to_string(rules_dir().join("hotline-rules.yml")).unwrap();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(|name| name.trim().to_owned())
        .collect()
}

#[test]
fn promtool_accepts_the_rules_r30() {
    let text = run_promtool(&["check", "rules", "hotline-rules.yml"]);
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn the_rules_pass_their_unit_tests_r5_r6_r20_r22() {
    let text = run_promtool(&["test", "rules", "hotline-rules.test.yml"]);
    assert!(text.contains("SUCCESS"), "{text}");
}

/// Each `alertname:` case of the test file, with whether it expects the alert to fire.
fn alert_cases() -> Vec<(String, bool)> {
    let text = std::fs::read_to_string(rules_dir().join("hotline-rules.test.yml")).unwrap();
    let mut cases = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("alertname:") {
            current = Some(name.trim().to_owned());
        } else if let Some(expected) = line.strip_prefix("exp_alerts:") {
            let name = current.take().expect("exp_alerts follows an alertname");
            cases.push((name, expected.trim() != "[]"));
        }
    }
    cases
}

#[test]
fn every_alert_is_tested_firing_and_quiet() {
    let alerts = alerts();
    assert!(alerts.len() >= 9, "{alerts:?}");
    let cases = alert_cases();
    for alert in &alerts {
        assert!(
            cases.iter().any(|(name, fires)| name == alert && *fires),
            "no test case where {alert} fires"
        );
        assert!(
            cases.iter().any(|(name, fires)| name == alert && !*fires),
            "no test case where {alert} stays quiet"
        );
    }
    for (name, _) in &cases {
        assert!(
            alerts.contains(name),
            "the tests name an unknown alert {name}"
        );
    }
}

#[test]
fn the_issue_alerts_are_all_there() {
    let alerts = alerts();
    for wanted in [
        "HotlineConnectionRateBelow95",
        "HotlineConnectionRateBelow96",
        "HotlineRingBudgetMissed",
        "HotlineQueueWaitOverMaximum",
        "HotlineNoAgentAvailable",
        "HotlineCallbacksOverdue",
        "HotlineRecordingFailures",
        "HotlineEngineDown",
        "HotlineStoreDown",
    ] {
        assert!(alerts.contains(wanted), "{wanted} missing from {alerts:?}");
    }
}
