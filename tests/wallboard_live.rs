//! Black-box wallboard (R5, R12, R30): the engine on 127.0.0.1, callers as SIPp with no
//! agent logged in, so calls wait. The wallboard's event stream shows the queue's depth
//! and oldest wait, a supervisor pauses and logs out an agent from the board, the
//! stream and the agent's history show it, and the action is audited.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{API_TOKEN, Engine, EngineOptions, Sipp};
use serde_json::Value;

/// A raw HTTP/1.1 request with extra headers: (status, headers, body).
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}

/// An open board: every `snapshot` event's JSON, as it arrives.
struct Stream {
    events: mpsc::Receiver<Value>,
    raw: mpsc::Receiver<String>,
}

impl Stream {
    fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Stream {
        let mut stream = TcpStream::connect(addr).expect("connect");
        let mut head =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        let (tx, events) = mpsc::channel();
        let (raw_tx, raw) = mpsc::channel();
        std::thread::spawn(move || {
            let reader = BufReader::new(stream);
            let mut event = String::new();
            for line in reader.lines() {
                let Ok(line) = line else { return };
                let _ = raw_tx.send(line.clone());
                if let Some(kind) = line.strip_prefix("event:") {
                    event = kind.trim().to_owned();
                } else if let Some(data) = line.strip_prefix("data:") {
                    // Chunked transfer: a chunk-size line may precede; only data lines count.
                    if event == "snapshot"
                        && let Ok(value) = serde_json::from_str::<Value>(data.trim())
                        && tx.send(value).is_err()
                    {
                        return;
                    }
                }
            }
        });
        Stream { events, raw }
    }

    /// The first snapshot for which `wanted` holds, within `limit`.
    fn until(&self, limit: Duration, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        let mut last = Value::Null;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.events.recv_timeout(left) {
                Ok(snapshot) if wanted(&snapshot) => return snapshot,
                Ok(snapshot) => last = snapshot,
                Err(_) => break,
            }
        }
        panic!("the wallboard never showed {what}; last snapshot: {last:#}");
    }

    fn raw_text(&self) -> String {
        self.raw.try_iter().collect::<Vec<_>>().join("\n")
    }
}

fn queue<'a>(snapshot: &'a Value, name: &str) -> &'a Value {
    snapshot["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == name)
        .unwrap_or(&Value::Null)
}

fn agent_state(snapshot: &Value, id: &str) -> String {
    snapshot["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .map(|a| a["state"].as_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn seconds(at: &Value) -> f64 {
    let at = chrono::DateTime::parse_from_rfc3339(at.as_str().unwrap()).unwrap();
    at.timestamp_millis() as f64 / 1000.0
}

#[test]
fn waiting_calls_show_on_the_board_and_a_supervisor_pauses_and_logs_out_an_agent() {
    let mut engine = Engine::start(EngineOptions::default());
    let bearer = format!("Bearer {API_TOKEN}");

    // R12: no credential, no board.
    let (status, _, _) = request(engine.http, "GET", "/wallboard/events", &[]);
    assert_eq!(status, 401);
    let (status, _, _) = request(engine.http, "GET", "/wallboard?token=wrong", &[]);
    assert_eq!(status, 401);
    // The page, opened once with the token, trades it for a cookie.
    let (status, head, page) = request(
        engine.http,
        "GET",
        &format!("/wallboard?token={API_TOKEN}"),
        &[],
    );
    assert_eq!(status, 200, "{head}");
    assert!(
        page.contains("热线运行大屏") && page.contains("EventSource"),
        "{page}"
    );
    let cookie = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .expect("a cookie for the stream")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(head.to_ascii_lowercase().contains("httponly"), "{head}");

    // Two boards: one with the cookie (as the page's EventSource), one with the header.
    let board = Stream::open(engine.http, "/wallboard/events", &[("Cookie", &cookie)]);
    let second = Stream::open(
        engine.http,
        "/wallboard/events",
        &[("Authorization", &bearer)],
    );
    let idle = board.until(Duration::from_secs(10), "the general queue", |s| {
        !queue(s, "general").is_null()
    });
    assert_eq!(queue(&idle, "general")["depth"], 0);
    // R20: callbacks are on (their store sits beside the work orders); none yet.
    let callbacks = &idle["callbacks"];
    assert_eq!(callbacks["pending"], 0, "{idle}");
    assert_eq!(callbacks["due"], 0, "{idle}");
    assert_eq!(callbacks["overdue"], 0, "{idle}");
    assert_eq!(callbacks["level"], "ok", "{idle}");

    // Two callers, no agent logged in: both wait.
    let callers = Sipp::new("caller_until_bye.xml", engine.sip)
        .args(["-m", "2", "-l", "2", "-r", "10"])
        .spawn(Duration::from_secs(90));
    let waiting = board.until(Duration::from_secs(30), "two calls waiting 3 s", |s| {
        let q = queue(s, "general");
        q["depth"] == 2 && q["oldest_wait_seconds"].as_f64().is_some_and(|w| w >= 3.0)
    });
    let general = queue(&waiting, "general");
    assert_eq!(general["agents_available"], 0);
    assert_eq!(
        general["level"], "red",
        "calls wait with nobody to take them: {general}"
    );
    assert_eq!(general["max_wait_seconds"], 300.0);
    // A third caller hangs up in the queue 20 s after the IVR answered: the engine
    // makes a missed-call callback of it, due at once, checked at the end.
    let missed = Sipp::new("caller_hangs_up.xml", engine.sip)
        .args(["-m", "1"])
        .spawn(Duration::from_secs(90));

    // At most one snapshot a second, and the same snapshots on every board.
    let a = board.until(Duration::from_secs(5), "a snapshot", |_| true);
    let b = board.until(Duration::from_secs(5), "the next snapshot", |_| true);
    assert!(
        seconds(&b["at"]) - seconds(&a["at"]) >= 0.9,
        "{} then {}",
        a["at"],
        b["at"]
    );
    let on_second = second.until(
        Duration::from_secs(5),
        "the same snapshot on the second board",
        |s| s["at"] == b["at"],
    );
    assert_eq!(on_second["queues"], b["queues"]);

    // A supervisor acts on agent 1001 from the board.
    let (status, body) = engine.api("POST", "/agents/1001/login");
    assert_eq!(status, 200, "{body}");
    board.until(Duration::from_secs(10), "1001 logged in", |s| {
        agent_state(s, "1001") == "available"
    });
    let (status, _, body) = request(
        engine.http,
        "POST",
        "/wallboard/agents/1001/pause",
        &[("Cookie", &cookie)],
    );
    assert_eq!(status, 200, "{body}");
    board.until(Duration::from_secs(10), "1001 paused", |s| {
        agent_state(s, "1001") == "paused"
    });
    let paused = board.until(
        Duration::from_secs(5),
        "1001 counted paused in general",
        |s| queue(s, "general")["agents_paused"] == 1,
    );
    assert_eq!(agent_state(&paused, "1001"), "paused");
    let (status, _, body) = request(
        engine.http,
        "POST",
        "/wallboard/agents/1001/logout",
        &[("Authorization", &bearer)],
    );
    assert_eq!(status, 200, "{body}");
    board.until(Duration::from_secs(10), "1001 logged out", |s| {
        agent_state(s, "1001") == "logged_out"
    });
    // Refused actions say why and change nothing.
    let (status, _, _) = request(
        engine.http,
        "POST",
        "/wallboard/agents/9999/pause",
        &[("Cookie", &cookie)],
    );
    assert_eq!(status, 409);
    let (status, _, _) = request(engine.http, "POST", "/wallboard/agents/1002/pause", &[]);
    assert_eq!(status, 401);

    // Today's history of 1001, oldest first, the supervisor's changes marked.
    let (status, _, body) = request(
        engine.http,
        "GET",
        "/wallboard/agents/1001/history",
        &[("Cookie", &cookie)],
    );
    assert_eq!(status, 200, "{body}");
    let history: Value = serde_json::from_str(&body).unwrap();
    let changes: Vec<(String, String)> = history["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["state"].as_str().unwrap().to_owned(),
                c["by"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let states: Vec<&str> = changes.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        states,
        ["logged_out", "available", "paused", "logged_out"],
        "{body}"
    );
    assert_eq!(changes[2].1, "supervisor");
    assert_eq!(changes[3].1, "supervisor");

    // Every action is audited; no caller number reaches the board (R12).
    let log = engine.log();
    let audited: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("hotline::audit"))
        .collect();
    assert!(
        audited
            .iter()
            .any(|l| l.contains("action=\"pause\"") || l.contains("action=pause"))
            && audited.iter().any(|l| l.contains("logout"))
            && audited
                .iter()
                .any(|l| l.contains("9999") && l.contains("refused")),
        "audit lines: {audited:#?}"
    );
    // R20: the caller who hung up in the queue is a callback due now (amber: no trunk
    // here, so nobody dials it), counted, never named.
    let due = board.until(Duration::from_secs(40), "a missed-call callback due", |s| {
        s["callbacks"]["due"] == 1
    });
    let callbacks = &due["callbacks"];
    assert_eq!(callbacks["pending"], 1, "{due}");
    assert_eq!(callbacks["overdue"], 0, "{due}");
    assert_eq!(callbacks["level"], "amber", "{due}");
    let raw = board.raw_text();
    assert!(!raw.contains("1370000"), "a caller number on the board");

    // Open boards do not hold the engine up: it drains and exits on SIGTERM.
    let status = engine.terminate();
    assert!(status.success(), "{status}\n{}", engine.log());
    drop((board, second, callers, missed));
}
