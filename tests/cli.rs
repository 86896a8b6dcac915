//! The command line as an operator meets it: a bad config stops with file, line and
//! reason (exit 64) before anything starts; the shipped config passes.

use std::process::Command;

fn hotline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hotline"))
}

#[test]
fn the_shipped_config_checks_out() {
    let out = hotline()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["check-config", "config/hotline.toml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_bad_config_names_file_line_and_reason_and_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/hotline.toml"))
            .unwrap();
    let bad = shipped.replace("max_concurrent = 1000", "max_concurrent = \"many\"");
    let line = bad
        .lines()
        .position(|l| l.starts_with("max_concurrent"))
        .unwrap()
        + 1;
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, bad).unwrap();

    for args in [vec!["check-config"], vec!["run", "--config"]] {
        let out = hotline().args(&args).arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("{}:{line}:", path.display())),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn a_missing_config_file_exits_64_with_its_path() {
    let out = hotline()
        .args(["run", "--config", "/nonexistent/hotline.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/hotline.toml"));
}

#[test]
fn the_api_token_can_live_in_the_environment_instead_of_the_file_r12() {
    let dir = tempfile::tempdir().unwrap();
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/hotline.toml"))
            .unwrap();
    let from_env = shipped.replace(
        "token = \"demo-token-change-me-0123456789\"",
        "token_env = \"HOTLINE_TEST_API_TOKEN\"",
    );
    assert_ne!(from_env, shipped, "the shipped config's token line moved");
    let line = from_env
        .lines()
        .position(|l| l.starts_with("token_env"))
        .unwrap()
        + 1;
    let path = dir.path().join("hotline.toml");
    std::fs::write(&path, from_env).unwrap();
    let check = || {
        let mut command = hotline();
        command
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("HOTLINE_TEST_API_TOKEN")
            .arg("check-config")
            .arg(&path);
        command
    };

    let unset = check().output().unwrap();
    assert_eq!(unset.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&unset.stderr);
    assert!(
        stderr.contains(&format!("{}:{line}:", path.display()))
            && stderr.contains("HOTLINE_TEST_API_TOKEN is not set"),
        "{stderr}"
    );

    let set = check()
        .env("HOTLINE_TEST_API_TOKEN", "a-token-only-the-environment-has")
        .output()
        .unwrap();
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
}
