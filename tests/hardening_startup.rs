//! Issue 9 rows 2, 11 and 13 at start-up, black-box: the open-file limit is checked
//! against what the config allows (refused with the numbers when even the hard limit is
//! too low), `recordings/` is created closed to others (R12), and the shipped demo
//! secrets are refused on a non-loopback address unless `--allow-demo-secrets` says so
//! (`check-config` and `run`, exit 64 with the reason).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use common::{Engine, EngineOptions, MANIFEST_DIR};

fn hotline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hotline"))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The shipped config with SIP on every interface, in a file of its own; paths in it
/// resolve against the repository root, where the commands run.
fn shipped_config_listening_publicly(dir: &Path) -> std::path::PathBuf {
    let shipped = std::fs::read_to_string(Path::new(MANIFEST_DIR).join("config/hotline.toml"))
        .expect("shipped config");
    let public = shipped.replace(
        "listen_udp = \"127.0.0.1:5060\"",
        "listen_udp = \"0.0.0.0:5060\"",
    );
    assert_ne!(public, shipped);
    let path = dir.join("public.toml");
    std::fs::write(&path, public).unwrap();
    path
}

#[test]
fn demo_secrets_on_a_public_address_are_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let config = shipped_config_listening_publicly(dir.path());

    let check = hotline()
        .current_dir(MANIFEST_DIR)
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(64), "{}", text(&check));
    let said = text(&check);
    assert!(said.contains("0.0.0.0:5060"), "{said}");
    assert!(
        said.contains("api.token is the shipped demo token"),
        "{said}"
    );
    assert!(
        said.contains("agent 1001 has the shipped demo password"),
        "{said}"
    );
    assert!(said.contains("--allow-demo-secrets"), "{said}");

    // `run` refuses the same way, before binding anything.
    let run = hotline()
        .current_dir(MANIFEST_DIR)
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(64), "{}", text(&run));
    assert!(
        text(&run).contains("shipped demo secrets"),
        "{}",
        text(&run)
    );

    // With the flag: accepted, with a loud warning.
    let allowed = hotline()
        .current_dir(MANIFEST_DIR)
        .args(["check-config", "--allow-demo-secrets"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(allowed.status.success(), "{}", text(&allowed));
    assert!(
        text(&allowed).contains("WARNING: DEMO SECRETS IN USE"),
        "{}",
        text(&allowed)
    );

    // The shipped config itself (loopback only) passes quietly.
    let shipped = hotline()
        .current_dir(MANIFEST_DIR)
        .args(["check-config", "config/hotline.toml"])
        .output()
        .unwrap();
    assert!(shipped.status.success(), "{}", text(&shipped));
    assert!(!text(&shipped).contains("WARNING"), "{}", text(&shipped));
}

#[test]
fn the_recordings_directory_is_created_closed_to_others_r12() {
    let engine = Engine::start(EngineOptions::default());
    let mode = std::fs::metadata(engine.dir.path().join("recordings"))
        .expect("recordings/ created at start")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o750, "recordings/ is {mode:o}");
}

#[test]
fn an_open_file_limit_too_low_for_the_config_stops_start_up_with_the_numbers() {
    let mut engine = Engine::start(EngineOptions::default());
    assert!(engine.log().contains("open-file limit"), "{}", engine.log());
    engine.terminate();
    // The same config (1,024 TCP connections, 49 calls) under a hard limit of 256.
    let output = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 256 && exec \"$0\" run --config \"$1\"")
        .arg(env!("CARGO_BIN_EXE_hotline"))
        .arg(&engine.config_path)
        .current_dir(engine.dir.path())
        .output()
        .unwrap();
    let said = text(&output);
    assert!(!output.status.success(), "{said}");
    assert!(said.contains("RLIMIT_NOFILE"), "{said}");
    assert!(said.contains("is 256"), "{said}");
    assert!(said.contains("1024 TCP connections"), "{said}");
    assert!(said.contains("98 RTP sockets"), "{said}");
}
