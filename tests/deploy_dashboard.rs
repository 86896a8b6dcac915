//! The Grafana dashboard (`deploy/grafana/hotline.json`) queries only series the engine
//! exports (the metric names declared under `src/`: `src/metrics.rs`, the callbacks'
//! `src/callbacks/metrics.rs`, the store's, the transport's...), the recording rules of
//! `deploy/prometheus/hotline-rules.yml`, Prometheus's own `up`, and the `process_*`
//! series the engine publishes about itself (R30). So neither the dashboard nor the
//! rules can drift from the code.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(MANIFEST_DIR).join(path)).unwrap()
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// Every `pub const …: &str = "hotline_…"` / `"process_…"` of `src/` (the metric names:
/// each module that publishes series declares their names so); a histogram's
/// `_bucket`, `_sum` and `_count` series come with it.
fn exported() -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(&Path::new(MANIFEST_DIR).join("src"), &mut files);
    let mut names = BTreeSet::new();
    for file in files {
        for line in std::fs::read_to_string(&file).unwrap().lines() {
            let line = line.trim();
            if !(line.starts_with("pub const ") && line.contains(": &str = \"")) {
                continue;
            }
            let name = line.split('"').nth(1).unwrap();
            if name.starts_with("hotline_") || name.starts_with("process_") {
                for suffix in ["", "_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        }
    }
    names
}

fn recording_rules() -> BTreeSet<String> {
    read("deploy/prometheus/hotline-rules.yml")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- record:"))
        .map(|n| n.trim().to_owned())
        .collect()
}

fn known() -> BTreeSet<String> {
    let mut known = exported();
    known.extend(recording_rules());
    known.insert("up".to_owned());
    known
}

/// Removes every `open … close` span (nesting allowed), with what is inside.
fn strip(text: &str, open: char, close: char) -> String {
    let mut depth = 0;
    text.chars()
        .filter(|&c| {
            if c == open {
                depth += 1;
            } else if c == close && depth > 0 {
                depth -= 1;
                return false;
            }
            depth == 0
        })
        .collect()
}

const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
];

/// The metric names a PromQL expression selects: identifiers outside label matchers,
/// ranges and strings, that are not functions, keywords or grouping labels.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let no_strings = {
        let mut out = String::new();
        let mut quoted = false;
        for c in expr.chars() {
            if c == '"' {
                quoted = !quoted;
            } else if !quoted {
                out.push(c);
            }
        }
        out
    };
    let text = strip(&strip(&no_strings, '{', '}'), '[', ']');
    // Grouping label lists: `by (a, b)`, `on (job)` ... are labels, not metrics.
    let mut cleaned = String::new();
    let mut rest = text.as_str();
    while let Some(pos) = KEYWORDS[..6]
        .iter()
        .filter_map(|k| find_keyword(rest, k).map(|p| (p, k.len())))
        .min()
    {
        let (at, len) = pos;
        cleaned.push_str(&rest[..at]);
        let after = rest[at + len..].trim_start();
        rest = match after.strip_prefix('(') {
            Some(list) => &list[list.find(')').map_or(list.len(), |p| p + 1)..],
            None => after,
        };
    }
    cleaned.push_str(rest);
    let mut names = BTreeSet::new();
    let chars: Vec<char> = cleaned.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            let is_number_part =
                start > 0 && (chars[start - 1].is_ascii_digit() || chars[start - 1] == '.');
            if next != Some(&'(')
                && !KEYWORDS.contains(&word.to_ascii_lowercase().as_str())
                && !is_number_part
            {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

fn find_keyword(text: &str, keyword: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(pos) = text[from..].find(keyword) {
        let at = from + pos;
        let before = at.checked_sub(1).map(|i| bytes[i] as char);
        let after = bytes.get(at + keyword.len()).map(|b| *b as char);
        let word_char =
            |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        if !word_char(before) && !word_char(after) {
            return Some(at);
        }
        from = at + keyword.len();
    }
    None
}

fn dashboard_exprs() -> Vec<(String, String)> {
    let json: serde_json::Value = serde_json::from_str(&read("deploy/grafana/hotline.json"))
        .expect("deploy/grafana/hotline.json is JSON");
    let mut exprs = Vec::new();
    let mut panels: Vec<&serde_json::Value> = json["panels"].as_array().unwrap().iter().collect();
    while let Some(panel) = panels.pop() {
        if let Some(inner) = panel["panels"].as_array() {
            panels.extend(inner);
        }
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .expect("every target has a PromQL expr");
            exprs.push((
                panel["title"].as_str().unwrap_or("?").to_owned(),
                expr.to_owned(),
            ));
        }
    }
    exprs
}

/// Every `expr:` of the rules file, a block scalar (`expr: |`) joined into one line.
fn rule_exprs() -> Vec<String> {
    let text = read("deploy/prometheus/hotline-rules.yml");
    let lines: Vec<&str> = text.lines().collect();
    let mut exprs = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if let Some(value) = line.trim().strip_prefix("expr:") {
            let value = value.trim();
            if value == "|" {
                let indent = line.len() - line.trim_start().len();
                let mut block = String::new();
                i += 1;
                while i < lines.len()
                    && (lines[i].trim().is_empty()
                        || lines[i].len() - lines[i].trim_start().len() > indent)
                {
                    block.push_str(lines[i].trim());
                    block.push(' ');
                    i += 1;
                }
                exprs.push(block);
                continue;
            }
            exprs.push(value.to_owned());
        }
        i += 1;
    }
    exprs
}

#[test]
fn metric_names_are_read_out_of_promql() {
    let names = metric_names(
        r#"sum by (job, le) (rate(hotline_answer_delay_seconds_bucket{job="$job",le!="+Inf"}[5m])) > on (job) group_left hotline:x:y * 60 and up{job="a"} == 0"#,
    );
    let expected: BTreeSet<String> = ["hotline_answer_delay_seconds_bucket", "hotline:x:y", "up"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(names, expected);
    assert!(
        metric_names("histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))")
            .contains("x_bucket")
    );
    assert_eq!(metric_names("1e3 * 2").len(), 0);
}

#[test]
fn every_dashboard_query_names_a_known_series_r30() {
    let known = known();
    let exprs = dashboard_exprs();
    assert!(exprs.len() >= 20, "{} queries", exprs.len());
    for (title, expr) in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "panel {title:?}: no series in {expr}");
        for name in names {
            assert!(
                known.contains(&name),
                "panel {title:?} queries {name}, which neither the engine (src/) nor the recording rules define: {expr}"
            );
        }
    }
}

#[test]
fn every_rule_names_a_known_series_r30() {
    let known = known();
    let exprs = rule_exprs();
    assert!(exprs.len() >= 20, "{exprs:?}");
    for expr in &exprs {
        for name in metric_names(expr) {
            assert!(
                known.contains(&name),
                "the rules query unknown {name}: {expr}"
            );
        }
    }
}

/// The names the dashboard and the rules rely on are found where the code declares
/// them, the callbacks' (R20) and the store's among them.
#[test]
fn the_exported_series_are_read_from_every_module_that_publishes_some() {
    let exported = exported();
    for name in [
        "hotline_calls_offered_total",
        "hotline_answer_delay_seconds_bucket",
        "hotline_callbacks_due",
        "hotline_callbacks_overdue",
        "hotline_callback_oldest_overdue_seconds",
        "hotline_store_up",
    ] {
        assert!(exported.contains(name), "{name} not found under src/");
    }
}

#[test]
fn the_issue_panels_are_all_there() {
    let exprs: Vec<String> = dashboard_exprs().into_iter().map(|(_, e)| e).collect();
    let uses = |name: &str| exprs.iter().any(|e| metric_names(e).contains(name));
    for name in [
        "hotline_connection_rate_24h",
        "hotline:calls_offered:rate5m",
        "hotline:calls_answered:rate5m",
        "hotline:calls_abandoned:rate5m",
        "hotline:answer_delay_seconds:p99_5m",
        "hotline_queue_depth",
        "hotline_queue_oldest_wait_seconds",
        "hotline_agents",
        "hotline_agent_offers_total",
        "hotline_agent_no_answer_redirects_total",
        "hotline_callbacks_due",
        "hotline_callbacks_overdue",
        "hotline_recording_failures_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "hotline:calls_shed:rate5m",
    ] {
        assert!(uses(name), "no panel shows {name}");
    }
}

#[test]
fn the_provisioning_file_points_at_the_installed_dashboard() {
    let provisioning = read("deploy/grafana/provisioning/hotline-dashboards.yml");
    assert!(provisioning.contains("path: /usr/share/hotline/grafana"));
}
