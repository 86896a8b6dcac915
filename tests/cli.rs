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

/// R12, issue 14: the API token can come from a file only its owner may read, as
/// systemd's `LoadCredential=` hands it over; a file its group or others may read is
/// refused before anything starts, naming the config line, the file and its mode.
#[cfg(unix)]
#[test]
fn the_api_token_can_live_in_a_0600_file_and_a_readable_one_is_refused_r12() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let token_path = dir.path().join("api-token");
    std::fs::write(&token_path, "a-token-only-the-credential-file-has\n").unwrap();
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/hotline.toml"))
            .unwrap();
    let from_file = shipped.replace(
        "token = \"demo-token-change-me-0123456789\"",
        &format!("token_file = \"{}\"", token_path.display()),
    );
    assert_ne!(from_file, shipped, "the shipped config's token line moved");
    let line = from_file
        .lines()
        .position(|l| l.starts_with("token_file"))
        .unwrap()
        + 1;
    let path = dir.path().join("hotline.toml");
    std::fs::write(&path, &from_file).unwrap();
    let check = |config: &std::path::Path| {
        hotline()
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("check-config")
            .arg(config)
            .output()
            .unwrap()
    };
    let chmod = |mode| {
        std::fs::set_permissions(&token_path, std::fs::Permissions::from_mode(mode)).unwrap()
    };

    chmod(0o600);
    let ok = check(&path);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    for mode in [0o644, 0o640] {
        chmod(mode);
        let refused = check(&path);
        assert_eq!(refused.status.code(), Some(64), "mode {mode:o}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            stderr.contains(&format!("{}:{line}: api.token_file", path.display()))
                && stderr.contains(&token_path.display().to_string())
                && stderr.contains(&format!("mode {mode:04o}")),
            "{stderr}"
        );
    }

    // One of the three ways, not two.
    chmod(0o600);
    let both = from_file.replace(
        "token_file",
        "token = \"demo-token-change-me-0123456789\"\ntoken_file",
    );
    let both_path = dir.path().join("both.toml");
    std::fs::write(&both_path, both).unwrap();
    let refused = check(&both_path);
    assert_eq!(refused.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("give one of api.token"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
