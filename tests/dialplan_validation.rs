//! The dialplan compiler as an operator meets it: each kind of mistake is named with the
//! file, the line and the reason (issue 11), `hotline check-dialplan` prints them and
//! exits 64, and the shipped `dialplans/8890.toml` checks out against the shipped agents
//! file and prompts.

use std::path::Path;
use std::process::Command;

use hotline::ivr::{DialplanError, DialplanErrorKind, compile};

const FILE: &str = "plans/test.toml";

fn queues() -> Vec<String> {
    vec!["general".to_owned(), "complaints".to_owned()]
}

fn prompts_here(file: &str) -> bool {
    [
        "greeting.wav",
        "menu.wav",
        "hold-music.wav",
        "bye.wav",
        "invalid-input.wav",
    ]
    .contains(&file)
}

/// A small valid plan; tests break one thing each.
const VALID: &str = r#"start = "welcome"

[[nodes]]
name = "welcome"
kind = "menu"
prompts = ["greeting.wav", "menu.wav"]
choices = [
  { digit = "1", next = "queue" },
  { digit = "2", next = "bye" },
]
on_timeout = "queue"

[[nodes]]
name = "queue"
kind = "queue"
queue = "general"
hold_music = "hold-music.wav"
overflow = "bye"

[[nodes]]
name = "bye"
kind = "hangup"
prompts = ["bye.wav"]
"#;

fn errors(text: &str) -> Vec<DialplanError> {
    compile(FILE, text, &queues(), prompts_here).expect_err("the plan must be refused")
}

fn line_containing(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in the plan"))
        + 1
}

/// Exactly one error, of `kind`, on `line`, whose message contains `words`, and whose
/// display starts with `FILE:LINE:`.
fn assert_one(errors: &[DialplanError], kind: DialplanErrorKind, line: usize, words: &str) {
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let e = &errors[0];
    assert_eq!((e.kind, e.line), (kind, line), "{e}");
    assert!(e.reason.contains(words), "{e}");
    assert!(
        e.to_string().starts_with(&format!("{FILE}:{line}: ")),
        "{e}"
    );
}

#[test]
fn the_base_plan_compiles() {
    let plan = compile(FILE, VALID, &queues(), prompts_here).expect("valid");
    assert_eq!(plan.nodes.len(), 3);
    assert_eq!(plan.source, FILE);
}

#[test]
fn an_unknown_node_is_named_where_it_is_referenced() {
    let text = VALID.replace(
        r#"{ digit = "2", next = "bye" }"#,
        r#"{ digit = "2", next = "by" }"#,
    );
    let line = line_containing(&text, r#"next = "by" }"#);
    let errors = errors(&text);
    assert_one(
        &errors,
        DialplanErrorKind::UnknownNode,
        line,
        "no node named \"by\"",
    );
}

#[test]
fn a_missing_prompt_file_is_an_error_not_a_silent_call() {
    let text = VALID.replace("bye.wav", "goodbye.wav");
    let line = line_containing(&text, "goodbye.wav");
    let errors = errors(&text);
    assert_one(
        &errors,
        DialplanErrorKind::MissingPrompt,
        line,
        "prompt file \"goodbye.wav\" does not exist",
    );
}

#[test]
fn an_unreachable_node_is_named_at_its_definition() {
    let text = format!("{VALID}\n[[nodes]]\nname = \"orphan\"\nkind = \"hangup\"\n");
    let line = line_containing(&text, "name = \"orphan\"");
    let errors = errors(&text);
    assert_one(
        &errors,
        DialplanErrorKind::Unreachable,
        line,
        "\"orphan\" is unreachable",
    );
}

#[test]
fn a_loop_with_no_exit_is_refused() {
    // welcome's choices and timeout all lead into ping ⇄ pong, which never reach a
    // queue, transfer or hang-up.
    let text = r#"start = "welcome"

[[nodes]]
name = "welcome"
kind = "menu"
prompts = ["menu.wav"]
choices = [{ digit = "1", next = "ping" }]
on_timeout = "ping"

[[nodes]]
name = "ping"
kind = "play"
prompts = ["greeting.wav"]
next = "pong"

[[nodes]]
name = "pong"
kind = "set"
category = "consultation"
next = "ping"
"#;
    let line = line_containing(text, "name = \"ping\"");
    let errors = errors(text);
    assert_one(
        &errors,
        DialplanErrorKind::LoopWithoutExit,
        line,
        "ping → pong → ping",
    );
}

#[test]
fn a_loop_through_a_menu_with_an_exit_is_fine() {
    // "Press 9 to hear the menu again" loops, but key 1 leads out.
    let text = VALID.replace(
        r#"{ digit = "2", next = "bye" },"#,
        r#"{ digit = "2", next = "bye" },
  { digit = "9", next = "again" },"#,
    ) + "\n[[nodes]]\nname = \"again\"\nkind = \"play\"\nprompts = [\"menu.wav\"]\nnext = \"welcome\"\n";
    compile(FILE, &text, &queues(), prompts_here).expect("a loop with an exit is allowed");
}

#[test]
fn a_queue_missing_from_the_agents_file_is_refused() {
    let text = VALID.replace(r#"queue = "general""#, r#"queue = "genral""#);
    let line = line_containing(&text, r#"queue = "genral""#);
    let errors = errors(&text);
    assert_one(
        &errors,
        DialplanErrorKind::UnknownQueue,
        line,
        "queue \"genral\" is not in the agents file",
    );
}

#[test]
fn a_digit_used_twice_in_one_menu_is_refused_at_the_second_use() {
    let text = VALID.replace(
        r#"{ digit = "2", next = "bye" }"#,
        r#"{ digit = "1", next = "bye" }"#,
    );
    let first = line_containing(&text, r#"{ digit = "1", next = "queue" }"#);
    let line = line_containing(&text, r#"{ digit = "1", next = "bye" }"#);
    let errors = errors(&text);
    assert_one(
        &errors,
        DialplanErrorKind::DuplicateDigit,
        line,
        &format!("digit 1 is used twice (first on line {first})"),
    );
}

#[test]
fn syntax_errors_unknown_kinds_and_stray_fields_name_their_line() {
    let text = VALID.replace("kind = \"hangup\"", "kind = \"hangup\nprompts = []");
    let errors = errors(&text);
    assert_eq!(errors[0].kind, DialplanErrorKind::Syntax, "{errors:?}");

    let text = VALID.replace("kind = \"hangup\"", "kind = \"hang_up\"");
    let line = line_containing(&text, "hang_up");
    assert_one(
        &errors_of(&text),
        DialplanErrorKind::Invalid,
        line,
        "unknown node kind",
    );

    let text = VALID.replace("kind = \"hangup\"", "kind = \"hangup\"\nnext = \"queue\"");
    let line = line_containing(&text, "name = \"bye\"");
    assert_one(
        &errors_of(&text),
        DialplanErrorKind::Invalid,
        line,
        "a hangup node has no `next`",
    );
}

#[test]
fn a_menu_that_gives_no_time_to_press_a_key_is_refused() {
    let text = VALID.replace(
        "on_timeout = \"queue\"",
        "on_timeout = \"queue\"\ntimeout_seconds = 0",
    );
    let line = line_containing(&text, "timeout_seconds = 0");
    assert_one(
        &errors(&text),
        DialplanErrorKind::Invalid,
        line,
        "timeout_seconds: at least 1",
    );
}

fn errors_of(text: &str) -> Vec<DialplanError> {
    errors(text)
}

#[test]
fn every_problem_is_reported_at_once_in_file_order() {
    let text = VALID
        .replace("bye.wav", "gone.wav")
        .replace(r#"queue = "general""#, r#"queue = "nowhere""#)
        + "\n[[nodes]]\nname = \"orphan\"\nkind = \"hangup\"\n";
    let errors = errors(&text);
    let kinds: Vec<_> = errors.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![
            DialplanErrorKind::UnknownQueue,
            DialplanErrorKind::MissingPrompt,
            DialplanErrorKind::Unreachable
        ],
        "{errors:#?}"
    );
    assert!(errors[0].line < errors[1].line && errors[1].line < errors[2].line);

    // A start that names no node is one error, not every node unreachable.
    let text = VALID.replace(r#"start = "welcome""#, r#"start = "welcom""#);
    assert_one(
        &errors_of(&text),
        DialplanErrorKind::UnknownNode,
        1,
        "start: no node named",
    );
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn hotline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hotline"))
}

#[test]
fn the_shipped_dialplan_checks_out_against_the_shipped_agents_and_prompts() {
    let out = hotline()
        .current_dir(repo())
        .args([
            "check-dialplan",
            "dialplans/8890.toml",
            "--agents",
            "config/agents.toml",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("dialplans/8890.toml: ok"));
}

#[test]
fn check_dialplan_prints_file_line_reason_and_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(repo().join("dialplans/8890.toml")).unwrap();
    let bad = shipped.replace(r#"queue = "complaints""#, r#"queue = "supervisors""#);
    let line = line_containing(&bad, r#"queue = "supervisors""#);
    let path = dir.path().join("8890.toml");
    std::fs::write(&path, bad).unwrap();

    let out = hotline()
        .current_dir(repo())
        .arg("check-dialplan")
        .arg(&path)
        .args([
            "--agents",
            "config/agents.toml",
            "--prompts",
            "dialplans/prompts",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:{line}: queue \"supervisors\" is not in the agents file",
            path.display()
        )),
        "{stderr}"
    );

    // Without --prompts the prompts are looked for beside the file: none there.
    let out = hotline()
        .current_dir(repo())
        .arg("check-dialplan")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"greeting.wav\" does not exist"));
}

/// A bad dialplan stops start-up before any port is bound, with the file, line and
/// reason, and the exit code of the checks (64).
#[test]
fn the_engine_refuses_to_start_on_a_bad_dialplan() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(repo().join("dialplans/8890.toml")).unwrap();
    let bad = shipped.replace(r#"next = "complaint-queue""#, r#"next = "complaint-queu""#);
    let line = line_containing(&bad, r#"next = "complaint-queu""#);
    let dialplan = dir.path().join("8890.toml");
    std::fs::write(&dialplan, bad).unwrap();
    let config = std::fs::read_to_string(repo().join("config/hotline.toml"))
        .unwrap()
        .replace(
            r#"dialplan = "dialplans/8890.toml""#,
            &format!("dialplan = {:?}", dialplan.display().to_string()),
        )
        .replace("127.0.0.1:5060", "127.0.0.1:1")
        .replace("127.0.0.1:9090", "127.0.0.1:2")
        .replace(
            r#"dir = "recordings""#,
            &format!("dir = {:?}", dir.path().join("rec")),
        )
        .replace(
            r#"data_dir = "data""#,
            &format!("data_dir = {:?}", dir.path().join("data")),
        );
    let config_path = dir.path().join("hotline.toml");
    std::fs::write(&config_path, config).unwrap();
    let out = hotline()
        .current_dir(repo())
        .args(["run", "--config"])
        .arg(&config_path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:{line}: next: no node named \"complaint-queu\"",
            dialplan.display()
        )),
        "{stderr}"
    );
}

#[test]
fn a_broken_reference_inside_a_loop_is_one_error_not_a_false_loop() {
    let text = r#"start = "a"

[[nodes]]
name = "a"
kind = "play"
prompts = ["menu.wav"]
next = "b"

[[nodes]]
name = "b"
kind = "menu"
choices = [{ digit = "1", next = "a" }]
on_timeout = "nowhere"
"#;
    let line = line_containing(text, "\"nowhere\"");
    assert_one(
        &errors(text),
        DialplanErrorKind::UnknownNode,
        line,
        "on_timeout: no node named \"nowhere\"",
    );
}
