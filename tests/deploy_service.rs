//! Running as a service: the systemd unit passes `systemd-analyze verify`, keeps the
//! sandbox the issue asks for, its `systemd-analyze security` exposure is the one the
//! README states, it waits longer than the drain; the production config is valid.
//!
//! systemd-analyze comes with the Debian package `systemd` (scripts/install-test-deps.sh).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::MANIFEST_DIR;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(MANIFEST_DIR).join(path)).unwrap()
}

fn systemd_analyze() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("systemd-analyze"))
            .find(|p| p.is_file())
    });
    found.expect(
        "systemd-analyze is not installed: run scripts/install-test-deps.sh (Debian package systemd)",
    )
}

/// The unit with its binary pointed at the one cargo built (verify checks it exists).
fn unit_for_this_build() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let unit = read("deploy/systemd/hotline.service")
        .replace("/usr/bin/hotline", env!("CARGO_BIN_EXE_hotline"));
    let path = dir.path().join("hotline.service");
    std::fs::write(&path, unit).unwrap();
    (dir, path)
}

/// `Key=value` lines of the unit.
fn directive(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
        .collect()
}

fn seconds(value: &str) -> u64 {
    value.trim_end_matches('s').parse().unwrap()
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let (_dir, unit) = unit_for_this_build();
    let out = Command::new(systemd_analyze())
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("run systemd-analyze");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.trim().is_empty(),
        "verify: {text}"
    );
}

#[test]
fn the_exposure_score_is_the_one_the_readme_states() {
    let (_dir, unit) = unit_for_this_build();
    let out = Command::new(systemd_analyze())
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("run systemd-analyze security");
    let text = String::from_utf8_lossy(&out.stdout);
    let score = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for hotline.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    let value: f64 = score.parse().unwrap();
    assert!(
        value <= 2.0,
        "exposure {value}: the sandbox got weaker\n{text}"
    );
    let readme = read("README.md");
    assert!(
        readme.contains(&format!("exposure level **{score}**")),
        "README.md must state the exposure level **{score}**"
    );
}

#[test]
fn the_unit_sandboxes_the_engine_and_notifies_readiness() {
    let unit = read("deploy/systemd/hotline.service");
    for (key, value) in [
        ("Type", "notify"),
        ("User", "hotline"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("StateDirectory", "hotline"),
        ("LogsDirectory", "hotline"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
    ] {
        assert_eq!(directive(&unit, key), [value], "{key}");
    }
    // Writable paths come only from StateDirectory/LogsDirectory.
    assert!(directive(&unit, "ReadWritePaths").is_empty());
}

#[test]
fn the_unit_waits_longer_than_the_drain() {
    let unit = read("deploy/systemd/hotline.service");
    let stop = seconds(&directive(&unit, "TimeoutStopSec")[0]);
    let config = read("deploy/config/hotline.production.toml");
    let value = |key: &str| -> u64 {
        config
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("{key} in the production config"))
            .parse()
            .unwrap()
    };
    let grace = value("shutdown_grace_seconds");
    // After the grace, BYEs take at most 64·T1, then recordings are finished.
    let bye_bound = 64 * value("t1_ms") / 1000 + 2;
    assert!(
        stop > grace + bye_bound,
        "TimeoutStopSec={stop}s must exceed the grace {grace}s plus the BYEs {bye_bound}s"
    );
}

#[test]
fn the_production_config_is_valid_and_listens_on_every_address() {
    let dir = tempfile::tempdir().unwrap();
    let agents = dir.path().join("agents.toml");
    std::fs::write(
        &agents,
        read("deploy/config/agents.production.example.toml"),
    )
    .unwrap();
    let config = read("deploy/config/hotline.production.toml");
    assert!(config.contains("listen_udp = \"0.0.0.0:5060\""));
    assert!(config.contains("advertised_ip = "));
    assert!(
        !config.contains(
            &read("config/hotline.toml")
                .lines()
                .find(|l| l.starts_with("token = "))
                .unwrap()
                .to_owned()
        )
    );
    let config = config.replace("/etc/hotline/agents.toml", agents.to_str().unwrap());
    let path = dir.path().join("hotline.toml");
    std::fs::write(&path, &config).unwrap();
    let out = check_config(&path);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The PostgreSQL store the comments describe for production is a valid config too.
    let on_postgres = config.replace(
        "kind = \"sqlite\"\ndata_dir = \"/var/lib/hotline/data\"",
        "kind = \"postgres\"\nurl = \"postgres://hotline@db.example.gov.cn:5432/hotline\"\n\
         password_env = \"HOTLINE_PG_PASSWORD\"\ntls = \"verify-full\"",
    );
    assert_ne!(
        on_postgres, config,
        "the production config names its SQLite lines"
    );
    std::fs::write(&path, &on_postgres).unwrap();
    let out = check_config(&path);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The packaged dialplan (`/etc/hotline/dialplan.toml`, from dialplans/8890.toml)
    // fits the packaged agents file and prompts.
    assert!(config.contains("dialplan = \"/etc/hotline/dialplan.toml\""));
    let out = Command::new(env!("CARGO_BIN_EXE_hotline"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["check-dialplan", "dialplans/8890.toml", "--agents"])
        .arg(&agents)
        .args(["--prompts", "dialplans/prompts"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// R12: the unit hands the engine the API token as a systemd credential, and the
/// production config's documented `token_file` line reads exactly that credential: the
/// config, so switched, passes `check-config` with a 0600 token file in its place and
/// is refused with a group-readable one.
#[cfg(unix)]
#[test]
fn the_api_token_reaches_the_engine_as_a_0600_credential() {
    use std::os::unix::fs::PermissionsExt;

    let unit = read("deploy/systemd/hotline.service");
    assert_eq!(
        directive(&unit, "LoadCredential"),
        ["api-token:/etc/hotline/api-token"]
    );
    let postinst = read("deploy/debian/postinst");
    assert!(postinst.contains("chmod 0600 /etc/hotline/api-token"));
    assert!(read("deploy/debian/postrm").contains("rm -f /etc/hotline/api-token"));

    let credential = "/run/credentials/hotline.service/api-token";
    let config = read("deploy/config/hotline.production.toml");
    let documented = format!("#   token_file = \"{credential}\"");
    assert!(
        config.contains(&documented),
        "the config documents token_file"
    );

    let dir = tempfile::tempdir().unwrap();
    let agents = dir.path().join("agents.toml");
    std::fs::write(
        &agents,
        read("deploy/config/agents.production.example.toml"),
    )
    .unwrap();
    let token = dir.path().join("api-token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef\n").unwrap();
    let token_line = config
        .lines()
        .find(|l| l.starts_with("token = "))
        .expect("the token line");
    let switched = config
        .replace(token_line, &format!("token_file = \"{}\"", token.display()))
        .replace("/etc/hotline/agents.toml", agents.to_str().unwrap());
    let path = dir.path().join("hotline.toml");
    std::fs::write(&path, switched).unwrap();
    for (mode, accepted) in [(0o400, true), (0o600, true), (0o640, false)] {
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = check_config(&path);
        assert_eq!(
            out.status.success(),
            accepted,
            "mode {mode:o}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `hotline check-config PATH`, as an operator runs it before a restart or reload.
fn check_config(path: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hotline"))
        .arg("check-config")
        .arg(path)
        .output()
        .unwrap()
}
