//! Readiness under systemd (`Type=notify`): the engine sends `READY=1` to
//! `$NOTIFY_SOCKET` once its ports are bound, and it answers on them from then on.
//! Its own test binary: the variable is set for the engine this one test starts.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use common::{Engine, EngineOptions, http_get};

#[test]
fn the_engine_notifies_systemd_when_its_ports_are_bound() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // SAFETY: the only test of this binary; nothing else reads the environment now.
    unsafe { std::env::set_var("NOTIFY_SOCKET", &path) };
    let engine = Engine::start(EngineOptions::default());
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("READY=1 from the engine");
    let message = String::from_utf8_lossy(&buf[..n]);
    assert!(message.lines().any(|l| l == "READY=1"), "{message}");
    assert_eq!(http_get(engine.http, "/health").as_deref(), Some("ok\n"));
}
