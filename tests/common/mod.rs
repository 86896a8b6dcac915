//! Black-box test harness: starts the real `hotline` binary on 127.0.0.1 with a config of
//! its own (free ports, a temporary working directory), drives it with SIPp or raw
//! sockets, and reads back what it left: WAV files, work orders, `/metrics`.
//!
//! A test that needs SIPp fails loudly when SIPp is missing: it never passes quietly.
#![allow(dead_code)] // each test binary uses its own part of the harness

pub mod audio;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

pub const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// Settings a test may change; everything else is the shipped config's.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    pub ring_before_answer_ms: u64,
    pub max_call_seconds: u64,
    pub shutdown_grace_seconds: u64,
    pub max_concurrent: u64,
    pub agent_ring_timeout_ms: u64,
    pub position_announcement_seconds: u64,
    /// The agents file; [`DEMO_AGENTS`] unless a test needs other agents or queues.
    pub agents_toml: String,
    /// Appended to the config: whole sections the harness does not write itself
    /// (`[limits]`, `[security]`).
    pub extra_config: String,
    /// `calls.rtp_timeout_seconds` (0: never).
    pub rtp_timeout_seconds: u64,
    /// The `[store]` section; SQLite under `data` when `None`.
    pub store_toml: Option<String>,
}

/// Three agents (1001–1003, password `pw<id>`) in one queue with no wrap-up, so tests
/// see an agent free again at once.
pub const DEMO_AGENTS: &str = r#"
[[queues]]
name = "general"
strategy = "longest_idle"
max_wait_seconds = 300
wrap_up_seconds = 0

[[agents]]
id = "1001"
password = "pw1001"
queues = ["general"]

[[agents]]
id = "1002"
password = "pw1002"
queues = ["general"]

[[agents]]
id = "1003"
password = "pw1003"
queues = ["general"]
"#;

/// The bearer token test engines run with.
pub const API_TOKEN: &str = "test-token-0123456789abcdef";

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            ring_before_answer_ms: 0,
            max_call_seconds: 3600,
            shutdown_grace_seconds: 2,
            max_concurrent: 100,
            agent_ring_timeout_ms: 10_000,
            position_announcement_seconds: 20,
            agents_toml: DEMO_AGENTS.to_owned(),
            extra_config: String::new(),
            rtp_timeout_seconds: 60,
            store_toml: None,
        }
    }
}

/// A running engine and the directory it works in.
pub struct Engine {
    pub dir: tempfile::TempDir,
    pub sip: SocketAddr,
    pub http: SocketAddr,
    pub config_path: PathBuf,
    child: Option<Child>,
    log_path: PathBuf,
}

/// A port free on both UDP and TCP at the moment of asking. Another process may take it
/// before the engine binds it; then the engine fails to start and the test says so.
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A distinct RTP range per engine in this process, so parallel tests never share one.
fn rtp_range() -> (u16, u16) {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let slot = NEXT.fetch_add(1, Ordering::Relaxed);
    let base = 30_000 + (std::process::id() % 20) as u16 * 1000 + (slot % 10) * 100;
    (base, base + 99)
}

impl Engine {
    pub fn start(options: EngineOptions) -> Engine {
        let dir = tempfile::tempdir().expect("temp dir");
        Engine::start_in(dir, options)
    }

    /// Starts an engine in an existing working directory (a restart after a crash).
    pub fn start_in(dir: tempfile::TempDir, options: EngineOptions) -> Engine {
        let sip_port = free_port();
        let http_port = free_port();
        let (rtp_min, rtp_max) = rtp_range();
        let prompts = Path::new(MANIFEST_DIR).join("dialplans/prompts");
        let config = format!(
            r#"
[sip]
listen_udp = "127.0.0.1:{sip_port}"
listen_tcp = "127.0.0.1:{sip_port}"
advertised_ip = "127.0.0.1"

[http]
listen = "127.0.0.1:{http_port}"

[media]
rtp_ip = "127.0.0.1"
rtp_port_min = {rtp_min}
rtp_port_max = {rtp_max}

[calls]
max_concurrent = {max_concurrent}
ring_before_answer_ms = {ring}
ring_budget_ms = 10000
max_call_seconds = {max_call}
shutdown_grace_seconds = {grace}
retry_after_seconds = 5
rtp_timeout_seconds = {rtp_timeout}

[prompts]
dir = "{prompts}"
greeting = "greeting.wav"

[recordings]
dir = "recordings"
header_interval_ms = 500

{store}

[log]
filter = "info,hotline=debug"

[acd]
agents_file = "agents.toml"
default_queue = "general"
agent_ring_timeout_ms = {ring_timeout}
hold_music = "hold-music.wav"
position_announcement_seconds = {announce}

[api]
token = "{API_TOKEN}"

[registrar]
realm = "hotline"
min_expires_seconds = 10
max_expires_seconds = 3600
default_expires_seconds = 600
nonce_lifetime_seconds = 300
digest_algorithms = ["MD5", "SHA-256"]
{extra}
"#,
            extra = options.extra_config,
            rtp_timeout = options.rtp_timeout_seconds,
            store = options
                .store_toml
                .as_deref()
                .unwrap_or("[store]\nkind = \"sqlite\"\ndata_dir = \"data\""),
            ring_timeout = options.agent_ring_timeout_ms,
            announce = options.position_announcement_seconds,
            max_concurrent = options.max_concurrent.min(49),
            ring = options.ring_before_answer_ms,
            max_call = options.max_call_seconds,
            grace = options.shutdown_grace_seconds,
            prompts = prompts.display(),
        );
        let config_path = dir.path().join("hotline.toml");
        std::fs::write(&config_path, config).expect("write config");
        std::fs::write(dir.path().join("agents.toml"), &options.agents_toml).expect("write agents");
        let log_path = dir.path().join("engine.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_hotline"))
            .args(["run", "--config"])
            .arg(&config_path)
            .current_dir(dir.path())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start hotline");
        let mut engine = Engine {
            dir,
            sip: SocketAddr::from(([127, 0, 0, 1], sip_port)),
            http: SocketAddr::from(([127, 0, 0, 1], http_port)),
            config_path,
            child: Some(child),
            log_path,
        };
        engine.wait_ready();
        engine
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("hotline exited at start ({status}):\n{}", self.log());
            }
            if http_get(self.http, "/health").is_some_and(|b| b.contains("ok")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("hotline did not become ready:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn metrics(&self) -> String {
        http_get(self.http, "/metrics").expect("GET /metrics")
    }

    /// The value of one sample in `/metrics`: `name` with exactly these labels
    /// (`""` for none), or 0 when the engine has not emitted it yet.
    pub fn metric(&self, name: &str, labels: &str) -> f64 {
        metric_value(&self.metrics(), name, labels)
    }

    /// SIGTERM, then wait for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        signal(child.id(), "TERM");
        wait_timeout(&mut child, Duration::from_secs(60)).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("hotline did not stop on SIGTERM:\n{}", self.log())
        })
    }

    /// Waits for an exit the test caused itself (a SIGTERM already sent).
    pub fn terminate_wait(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        wait_timeout(&mut child, Duration::from_secs(60)).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("hotline did not stop:\n{}", self.log())
        })
    }

    /// SIGKILL: the crash a recording must survive.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        signal(child.id(), "KILL");
        let _ = child.wait();
    }

    /// Stops the engine and hands back its working directory for a restart.
    pub fn into_dir(mut self) -> tempfile::TempDir {
        if self.child.is_some() {
            self.terminate();
        }
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    pub fn recordings(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let root = self.dir.path().join("recordings");
        for day in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            for file in std::fs::read_dir(day.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if file.path().extension().is_some_and(|e| e == "wav") {
                    found.push(file.path());
                }
            }
        }
        found.sort();
        found
    }

    /// `hotline work-orders list` against this engine's store.
    pub fn work_orders_listing(&self) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_hotline"))
            .args(["work-orders", "list", "--limit", "100", "--config"])
            .arg(&self.config_path)
            .current_dir(self.dir.path())
            .output()
            .expect("run work-orders list");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// An API request with the test token: (status, body).
    pub fn api(&self, method: &str, path: &str) -> (u16, String) {
        http_request(self.http, method, path, Some(API_TOKEN)).expect("API answers")
    }

    /// Logs agents in through the API once their phones are registered.
    pub fn log_in_when_registered(&self, agents: &[&str]) {
        for agent in agents {
            self.wait_until_registered(agent);
            let (status, body) = self.api("POST", &format!("/agents/{agent}/login"));
            assert_eq!(status, 200, "login {agent}: {body}");
            // Distinct idle times, so longest-idle order is the login order.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to 20 s for the agent's phone to be registered.
    pub fn wait_until_registered(&self, agent: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, body) = self.api("GET", "/agents");
            if agent_field(&body, agent, "registered").as_deref() == Some("true") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "agent {agent} never registered: {body}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One field of one agent in the `GET /agents` JSON, as raw text.
pub fn agent_field(body: &str, agent: &str, field: &str) -> Option<String> {
    let start = body.find(&format!("\"id\":\"{agent}\""))?;
    let object = &body[start..];
    let object = &object[..object.find('}').unwrap_or(object.len())];
    let key = format!("\"{field}\":");
    let value = &object[object.find(&key)? + key.len()..];
    let end = value.find([',', '}']).unwrap_or(value.len());
    Some(value[..end].trim_matches('"').to_owned())
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Waits up to 20 s until `metric` reaches `value`: the engine finishes a call's
/// recording and work order just after the BYE is answered.
pub fn wait_for_metric(engine: &Engine, metric: &str, labels: &str, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = engine.metric(metric, labels);
        if now >= value {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{metric}{{{labels}}} is {now}, expected {value}\n{}",
            engine.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every work order the engine wrote, newest first, read from its store. The engine
/// writes work orders through a queue a few milliseconds behind the calls (metrics are
/// counted at once), so this waits, up to 5 s, until every order it finds has ended.
pub fn work_orders(engine: &Engine) -> Vec<hotline::workorder::WorkOrder> {
    use hotline::workorder::WorkOrderStore;
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let orders = runtime.block_on(async {
            let store = hotline::workorder::sqlite::SqliteStore::open(&engine.data_dir())
                .expect("open store");
            store.list_recent(1000).await.expect("list work orders")
        });
        if orders.iter().all(|o| o.ended_at.is_some()) || Instant::now() >= deadline {
            return orders;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// RMS of each channel (caller left, agent right) over `[from, to)` seconds of a
/// stereo recording.
pub fn channel_levels(path: &Path, from: f64, to: f64) -> (f64, f64) {
    let mut reader = hound::WavReader::open(path).expect("hound opens the recording");
    assert_eq!(reader.spec().channels, 2);
    let samples: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap()).collect();
    let (start, end) = ((from * 8000.0) as usize * 2, (to * 8000.0) as usize * 2);
    let window = &samples[start.min(samples.len())..end.min(samples.len())];
    let rms = |channel: usize| {
        let values: Vec<f64> = window
            .iter()
            .skip(channel)
            .step_by(2)
            .map(|v| f64::from(*v))
            .collect();
        (values.iter().map(|v| v * v).sum::<f64>() / values.len().max(1) as f64).sqrt()
    };
    (rms(0), rms(1))
}

/// A minimal HTTP/1.0 GET: the body, or `None` when nothing answers.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    http_request(addr, "GET", path, None).map(|(_, body)| body)
}

/// A JSON request with the test API token: (status, body).
pub fn http_json(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    http_json_as(addr, method, path, body, API_TOKEN)
}

/// A JSON request with `token` as the bearer: (status, body).
pub fn http_json_as(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    token: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the API");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send the request");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}

/// A minimal HTTP/1.0 request: (status, body), or `None` when nothing answers.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    head.starts_with("HTTP/1.")
        .then(|| (status, body.to_owned()))
}

pub fn metric_value(text: &str, name: &str, labels: &str) -> f64 {
    let wanted = if labels.is_empty() {
        name.to_owned()
    } else {
        format!("{name}{{{labels}}}")
    };
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            (series == wanted).then(|| value.parse::<f64>().ok())?
        })
        .unwrap_or(0.0)
}

/// The SIPp binary, or a loud failure telling how to install it.
pub fn sipp_path() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("sipp"))
            .find(|p| p.is_file())
    });
    found.expect(
        "SIPp is not installed: run scripts/install-test-deps.sh (Debian package sip-tester)",
    )
}

/// Where Debian's sip-tester keeps its RTP pcaps.
pub fn sipp_pcap_dir() -> PathBuf {
    let dir = std::env::var_os("HOTLINE_SIPP_PCAPS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/sip-tester"));
    assert!(
        dir.join("g711a.pcap").is_file(),
        "{}/g711a.pcap is missing: run scripts/install-test-deps.sh",
        dir.display()
    );
    dir
}

/// One SIPp run against an engine.
pub struct Sipp {
    command: Command,
    workdir: tempfile::TempDir,
}

impl Sipp {
    /// `scenario` is a file under tests/sipp/. SIPp runs in a folder where `pcap/` is
    /// the sip-tester pcap directory, so scenarios name `pcap/g711a.pcap` as SIPp's own do.
    pub fn new(scenario: &str, target: SocketAddr) -> Sipp {
        let workdir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(sipp_pcap_dir(), workdir.path().join("pcap")).unwrap();
        let mut command = Command::new(sipp_path());
        command
            .current_dir(workdir.path())
            .arg(target.to_string())
            .arg("-sf")
            .arg(Path::new(MANIFEST_DIR).join("tests/sipp").join(scenario))
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", "0"])
            .args(["-nostdin", "-trace_err", "-timeout_error"])
            .stdin(Stdio::null());
        Sipp { command, workdir }
    }

    /// Puts a file in SIPp's folder, for a scenario that names it relative to that
    /// folder (a pcap the test chose or made, like `key.pcap`).
    pub fn with_file(self, name: &str, contents: &[u8]) -> Sipp {
        std::fs::write(self.workdir.path().join(name), contents).expect("file for SIPp");
        self
    }

    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Sipp {
        self.command.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Sipp
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.command.args(args);
        self
    }

    /// Runs SIPp to the end (bounded by `timeout`) and returns its output; the
    /// error log SIPp wrote is appended to stderr for the assertion message.
    pub fn run(self, timeout: Duration) -> SippResult {
        self.spawn(timeout).wait()
    }

    /// Starts SIPp in the background (an agent's phone on shift, a caller running
    /// while the test does other things); SIPp stops itself after `timeout`.
    pub fn spawn(mut self, timeout: Duration) -> RunningSipp {
        let child = self
            .command
            .arg("-timeout")
            .arg(format!("{}s", timeout.as_secs()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sipp");
        RunningSipp {
            child: Some(child),
            workdir: self.workdir,
        }
    }
}

/// A SIPp process the test started and will wait for.
pub struct RunningSipp {
    child: Option<Child>,
    workdir: tempfile::TempDir,
}

impl RunningSipp {
    /// True when SIPp ended within `wait` (it could not start).
    pub fn exited_within(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let child = self.child.as_mut().expect("running");
        loop {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait(mut self) -> SippResult {
        let child = self.child.take().expect("running");
        let output: Output = child.wait_with_output().expect("sipp output");
        let mut errors = String::new();
        for entry in std::fs::read_dir(self.workdir.path()).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with("_errors.log") {
                errors.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        SippResult {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            errors,
        }
    }
}

impl Drop for RunningSipp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An agent's softphone on shift for `shift`: registers as `id` (password `pw<id>`,
/// as in [`DEMO_AGENTS`]) and answers calls with the out-of-call scenario `on_call`.
///
/// SIPp's media port is picked free a moment before SIPp binds it; on a busy machine
/// another test's process may take it first, and then SIPp exits at once. Such a phone
/// is started again on another port.
pub fn agent_phone(engine: &Engine, id: &str, on_call: &str, shift: Duration) -> RunningSipp {
    let ooc = Path::new(MANIFEST_DIR).join("tests/sipp").join(on_call);
    for _ in 0..5 {
        let mut phone = Sipp::new("agent_stay.xml", engine.sip)
            .arg("-oocsf")
            .arg(&ooc)
            .args(["-s", id, "-ap", &format!("pw{id}"), "-m", "1"])
            .args(["-d", &shift.as_millis().to_string()])
            .args(["-mp", &free_even_port().to_string()])
            .spawn(shift + Duration::from_secs(30));
        if !phone.exited_within(Duration::from_millis(500)) {
            return phone;
        }
    }
    panic!("agent {id}'s SIPp phone exited at start five times (its ports taken?)");
}

/// An even UDP port free at the moment of asking (SIPp's media port).
///
/// SIPp's `[auto_media_port]` adds up to 9,998 to `-mp` from call to call, so the
/// base stays below 55,000: above it an agent's SDP answer could name a port past
/// 65,535, which the engine rightly refuses (488) and then logs that agent out.
pub fn free_even_port() -> u16 {
    loop {
        let port = free_port();
        if port.is_multiple_of(2) && port < 55_000 {
            return port;
        }
    }
}

pub struct SippResult {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub errors: String,
}

impl SippResult {
    /// Like [`SippResult::assert_success`], with the tail of the engine's log in the
    /// message: a call that did not go as scripted is explained by what the engine did.
    pub fn assert_success_against(&self, engine: &Engine) {
        if !self.status.success() {
            let log = engine.log();
            eprintln!("engine log (tail):\n{}", tail(&log, 12_000));
        }
        self.assert_success();
    }

    pub fn assert_success(&self) {
        assert!(
            self.status.success(),
            "sipp failed ({}):\nstderr: {}\nerrors: {}\nstdout tail: {}",
            self.status,
            self.stderr,
            self.errors,
            tail(&self.stdout, 3000)
        );
    }
}

fn tail(s: &str, n: usize) -> &str {
    let start = s.len().saturating_sub(n);
    let start = (start..s.len())
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(s.len());
    &s[start..]
}

/// A raw SIP peer on UDP for hand-made messages.
pub struct RawUdpPeer {
    pub socket: UdpSocket,
    pub target: SocketAddr,
}

impl RawUdpPeer {
    pub fn new(target: SocketAddr) -> RawUdpPeer {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        RawUdpPeer { socket, target }
    }

    pub fn local(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    pub fn send(&self, bytes: &[u8]) {
        self.socket.send_to(bytes, self.target).unwrap();
    }

    /// Every message received within `wait`.
    pub fn receive_for(&self, wait: Duration) -> Vec<String> {
        let deadline = Instant::now() + wait;
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        while Instant::now() < deadline {
            if let Ok((n, _)) = self.socket.recv_from(&mut buf) {
                got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        got
    }

    /// Waits for a response with this status code (skipping others) for up to `wait`.
    pub fn expect_status(&self, code: u16, wait: Duration) -> String {
        let deadline = Instant::now() + wait;
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 65536];
        while Instant::now() < deadline {
            if let Ok((n, _)) = self.socket.recv_from(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if text.starts_with(&format!("SIP/2.0 {code} ")) {
                    return text;
                }
                seen.push(text.lines().next().unwrap_or("").to_owned());
            }
        }
        panic!("no {code} within {wait:?}; saw {seen:?}");
    }
}

/// A hand-made INVITE with an SDP offer of PCMU from `peer`'s address.
pub fn invite(
    peer: SocketAddr,
    target: SocketAddr,
    call_id: &str,
    branch: &str,
    caller: &str,
) -> String {
    let sdp = format!(
        "v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        peer.port() + 2
    );
    format!(
        "INVITE sip:8890@{target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {peer};branch={branch};rport\r\n\
         From: <sip:{caller}@127.0.0.1>;tag=raw-{call_id}\r\n\
         To: <sip:8890@{target}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:{caller}@{peer}>\r\n\
         Max-Forwards: 70\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// The To tag the engine put on a response.
pub fn to_tag(response: &str) -> String {
    response
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("to:") || l.starts_with("t:"))
        .and_then(|l| l.split(";tag=").nth(1))
        .map(|t| t.split([';', ' ', '\r']).next().unwrap_or("").to_owned())
        .expect("To tag")
}

/// ACK and BYE for a call answered by the engine.
pub fn ack_and_bye(peer: &RawUdpPeer, call_id: &str, caller: &str, tag: &str) {
    ack(peer, call_id, caller, tag);
    peer.send(in_dialog(peer, "BYE", 2, call_id, caller, tag).as_bytes());
}

/// The ACK for the 200 OK of a call placed with [`invite`] from `peer`.
pub fn ack(peer: &RawUdpPeer, call_id: &str, caller: &str, tag: &str) {
    peer.send(in_dialog(peer, "ACK", 1, call_id, caller, tag).as_bytes());
}

/// A request inside the dialog of a call placed with [`invite`].
fn in_dialog(
    peer: &RawUdpPeer,
    method: &str,
    cseq: u32,
    call_id: &str,
    caller: &str,
    tag: &str,
) -> String {
    let target = peer.target;
    let local = peer.local();
    let branch = format!("z9hG4bK-{}-{call_id}", method.to_ascii_lowercase());
    format!(
        "{method} sip:8890@{target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
         From: <sip:{caller}@127.0.0.1>;tag=raw-{call_id}\r\n\
         To: <sip:8890@{target}>;tag={tag}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// A response to a request the engine sent (its BYE): the request's Via, From, To,
/// Call-ID and CSeq copied, as RFC 3261 §8.2.6 asks.
pub fn response_to(request: &str, code: u16, reason: &str) -> String {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for line in request.lines() {
        let lower = line.to_ascii_lowercase();
        if [
            "via:", "from:", "to:", "call-id:", "cseq:", "v:", "f:", "t:", "i:",
        ]
        .iter()
        .any(|h| lower.starts_with(h))
        {
            out.push_str(line.trim_end());
            out.push_str("\r\n");
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

/// Where the browser tests' node scripts and their `node_modules` live.
pub fn browser_dir() -> PathBuf {
    Path::new(MANIFEST_DIR).join("tests/browser")
}

/// node, chromium and playwright-core, or a loud failure naming the install script.
pub fn require_browser() {
    let on_path = |name: &str| {
        std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(name).is_file()))
    };
    assert!(
        on_path("node"),
        "node is not installed: run scripts/install-test-deps.sh"
    );
    let chromium = std::env::var("HOTLINE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).is_file(),
        "{chromium} is missing: run scripts/install-test-deps.sh (Debian package chromium)"
    );
    assert!(
        browser_dir().join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing in tests/browser: run scripts/install-test-deps.sh"
    );
}
