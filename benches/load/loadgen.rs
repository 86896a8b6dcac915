//! `loadgen`: holds N concurrent calls with G.711 RTP both ways against a SIP UAS, for
//! `benches/load/concurrency.sh` (issue 4). Not part of the engine.
//!
//! Why not SIPp: its `play_pcap_audio` starts one thread per call and replays a fixed
//! capture (SIPp's g711a.pcap is 8 s), and SIPp counts none of the RTP it receives.
//! This generator sends a paced 20 ms stream for the whole hold time from one task per
//! call, and counts what the engine sends back, so loss and lateness are measured at
//! both ends.
//!
//! One UDP socket carries the signalling of every call (a dispatcher task routes
//! responses by Call-ID); each call has its own RTP socket. Calls start at
//! `--rate` per second, are held `--hold-secs` from their 200 OK, then hung up with BYE.
//! Progress goes to stdout as `event=…` lines the script waits for; the final summary
//! is one `key=value` line, and `--calls-csv` writes one line per call.
//!
//! ```text
//! cargo run --release --example loadgen -- --target 127.0.0.1:5060 --calls 100 \
//!     --hold-secs 20 --rate 50 --calls-csv /tmp/calls.csv
//! ```

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hotline::media::g711::{self, Codec};
use hotline::media::rtp::{self, RtpSender};
use hotline::recording::FRAME_SAMPLES;
use hotline::sip::sdp;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{MissedTickBehavior, sleep, timeout};

const FRAME: Duration = Duration::from_millis(20);
/// An engine packet arriving this long after the previous one counts as late: one
/// frame of jitter is normal, two frames is an audible gap.
const LATE_GAP: Duration = Duration::from_millis(40);
/// RFC 3261 T1 and the number of INVITE/BYE retransmissions before giving up (Timer B:
/// 64 × T1 would be 32 s; a load test wants to know sooner).
const T1: Duration = Duration::from_millis(500);
const MAX_RETRANSMISSIONS: u32 = 5;

#[derive(Debug, Clone)]
struct Options {
    target: SocketAddr,
    local_ip: std::net::IpAddr,
    calls: usize,
    hold: Duration,
    rate: f64,
    codec: Codec,
    calls_csv: Option<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: loadgen --target IP:PORT --calls N --hold-secs S [--rate CPS] \
         [--local-ip IP] [--codec pcma|pcmu] [--calls-csv FILE]"
    );
    std::process::exit(64);
}

fn parse_options() -> Options {
    let mut options = Options {
        target: SocketAddr::from(([127, 0, 0, 1], 5060)),
        local_ip: [127, 0, 0, 1].into(),
        calls: 10,
        hold: Duration::from_secs(10),
        rate: 50.0,
        codec: Codec::Pcma,
        calls_csv: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--target" => options.target = value().parse().unwrap_or_else(|_| usage()),
            "--local-ip" => options.local_ip = value().parse().unwrap_or_else(|_| usage()),
            "--calls" => options.calls = value().parse().unwrap_or_else(|_| usage()),
            "--hold-secs" => {
                options.hold = Duration::from_secs_f64(value().parse().unwrap_or_else(|_| usage()))
            }
            "--rate" => options.rate = value().parse().unwrap_or_else(|_| usage()),
            "--codec" => {
                options.codec = match value().as_str() {
                    "pcma" => Codec::Pcma,
                    "pcmu" => Codec::Pcmu,
                    _ => usage(),
                }
            }
            "--calls-csv" => options.calls_csv = Some(value()),
            _ => usage(),
        }
    }
    if options.calls == 0 || options.rate <= 0.0 {
        usage();
    }
    options
}

/// A SIP message as far as the generator cares.
#[derive(Debug)]
struct Incoming {
    status: Option<u16>,
    call_id: String,
    cseq_method: String,
    to: String,
    body: Vec<u8>,
    raw: String,
}

fn header<'a>(head: &'a str, long: &str, compact: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        let name = name.trim();
        (name.eq_ignore_ascii_case(long) || name.eq_ignore_ascii_case(compact))
            .then(|| value.trim())
    })
}

fn parse_incoming(datagram: &[u8]) -> Option<Incoming> {
    let text = String::from_utf8_lossy(datagram).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let start = head.lines().next()?;
    let status = start
        .strip_prefix("SIP/2.0 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    Some(Incoming {
        status,
        call_id: header(head, "Call-ID", "i")?.to_string(),
        cseq_method: header(head, "CSeq", "CSeq")?
            .split_whitespace()
            .nth(1)?
            .to_string(),
        to: header(head, "To", "t")?.to_string(),
        body: body.as_bytes().to_vec(),
        raw: text,
    })
}

/// The 200 OK for a request the engine sent us (its BYE at `max_call_seconds`).
fn ok_for(request: &Incoming) -> Option<String> {
    let head = request.raw.split("\r\n\r\n").next()?;
    let mut response = String::from("SIP/2.0 200 OK\r\n");
    for line in head.lines().skip(1) {
        let name = line.split(':').next().unwrap_or("").trim();
        if ["via", "v", "from", "f", "to", "t", "call-id", "i", "cseq"]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h))
        {
            response.push_str(line);
            response.push_str("\r\n");
        }
    }
    response.push_str("Content-Length: 0\r\n\r\n");
    Some(response)
}

/// What one call measured.
#[derive(Debug, Default, Clone)]
struct CallResult {
    answered: bool,
    failure: Option<String>,
    invite_to_200: Option<Duration>,
    /// From the 200 OK to sending BYE (or receiving the engine's BYE).
    held: Duration,
    rtp_sent: u64,
    rtp_received: u64,
    rtp_late: u64,
    max_gap: Duration,
    hung_up_by_engine: bool,
}

struct Shared {
    options: Options,
    sip: UdpSocket,
    local_sip: SocketAddr,
    routes: Mutex<HashMap<String, mpsc::UnboundedSender<Incoming>>>,
    answered: AtomicUsize,
    ended: AtomicUsize,
    /// A 20 ms payload of a 440 Hz tone: audible in the recording's left channel.
    payload: Vec<u8>,
}

fn event(name: &str, started: Instant) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "event={name} t={:.3}", started.elapsed().as_secs_f64());
    let _ = out.flush();
}

async fn dispatch(shared: Arc<Shared>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((len, from)) = shared.sip.recv_from(&mut buf).await else {
            continue;
        };
        let Some(message) = parse_incoming(&buf[..len]) else {
            continue;
        };
        if message.status.is_none() {
            // A request from the engine (BYE at max_call_seconds): answer it here so a
            // retransmission is answered even after the call task has gone.
            if let Some(ok) = ok_for(&message) {
                let _ = shared.sip.send_to(ok.as_bytes(), from).await;
            }
        }
        let route = shared
            .routes
            .lock()
            .expect("routes lock")
            .get(&message.call_id)
            .cloned();
        if let Some(route) = route {
            let _ = route.send(message);
        }
    }
}

fn sdp_offer(ip: std::net::IpAddr, port: u16, codec: Codec) -> String {
    let pt = codec.payload_type();
    let name = codec.encoding_name();
    format!(
        "v=0\r\no=loadgen 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {pt} 101\r\na=rtpmap:{pt} {name}/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\n"
    )
}

struct Dialog {
    call_id: String,
    from_tag: String,
    to: String,
    number: usize,
}

impl Dialog {
    fn request(&self, shared: &Shared, method: &str, cseq: u32, body: &str) -> String {
        let target = shared.options.target;
        let local = shared.local_sip;
        let branch = format!("z9hG4bK-lg-{}-{cseq}-{method}", self.number);
        let content_type = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        format!(
            "{method} sip:8890@{target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:1390{number:07}@{ip}>;tag={tag}\r\n\
             To: {to}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:1390{number:07}@{local}>\r\n\
             {content_type}Content-Length: {len}\r\n\r\n{body}",
            number = self.number,
            ip = local.ip(),
            tag = self.from_tag,
            to = self.to,
            call_id = self.call_id,
            len = body.len(),
        )
    }
}

/// Sends `request` and retransmits it (doubling from T1) until `accept` takes a final
/// response, which is returned.
async fn transact(
    shared: &Shared,
    request: &str,
    inbox: &mut mpsc::UnboundedReceiver<Incoming>,
    method: &str,
) -> Result<Incoming, String> {
    let mut interval = T1;
    for _ in 0..=MAX_RETRANSMISSIONS {
        shared
            .sip
            .send_to(request.as_bytes(), shared.options.target)
            .await
            .map_err(|e| format!("send {method}: {e}"))?;
        let deadline = tokio::time::Instant::now() + interval;
        loop {
            match tokio::time::timeout_at(deadline, inbox.recv()).await {
                Err(_) => break,
                Ok(None) => return Err("dispatcher gone".into()),
                Ok(Some(message)) => match message.status {
                    Some(status) if status >= 200 && message.cseq_method == method => {
                        return Ok(message);
                    }
                    _ => {
                        // A provisional response stops retransmissions of an INVITE.
                        if method == "INVITE" && message.status.is_some() {
                            return wait_final(inbox, method).await;
                        }
                    }
                },
            }
        }
        interval = (interval * 2).min(Duration::from_secs(4));
    }
    Err(format!("{method}: no final response"))
}

async fn wait_final(
    inbox: &mut mpsc::UnboundedReceiver<Incoming>,
    method: &str,
) -> Result<Incoming, String> {
    let limit = Duration::from_secs(32);
    timeout(limit, async {
        while let Some(message) = inbox.recv().await {
            if message.status.is_some_and(|s| s >= 200) && message.cseq_method == method {
                return Ok(message);
            }
        }
        Err("dispatcher gone".to_string())
    })
    .await
    .unwrap_or_else(|_| Err(format!("{method}: no final response after provisional")))
}

async fn run_call(shared: Arc<Shared>, number: usize, started: Instant) -> CallResult {
    let mut result = CallResult::default();
    let options = &shared.options;
    let rtp_socket = match UdpSocket::bind((options.local_ip, 0)).await {
        Ok(socket) => socket,
        Err(e) => {
            result.failure = Some(format!("bind RTP: {e}"));
            return result;
        }
    };
    let rtp_port = rtp_socket.local_addr().map(|a| a.port()).unwrap_or(0);
    let mut dialog = Dialog {
        call_id: format!("lg-{number}-{}@{}", std::process::id(), options.local_ip),
        from_tag: format!("lg{number}"),
        to: format!("<sip:8890@{}>", options.target),
        number,
    };
    let (route_tx, mut inbox) = mpsc::unbounded_channel();
    shared
        .routes
        .lock()
        .expect("routes lock")
        .insert(dialog.call_id.clone(), route_tx);

    let offer = sdp_offer(options.local_ip, rtp_port, options.codec);
    let invite = dialog.request(&shared, "INVITE", 1, &offer);
    let invited = Instant::now();
    let outcome = transact(&shared, &invite, &mut inbox, "INVITE").await;
    let response = match outcome {
        Ok(response) if response.status == Some(200) => response,
        Ok(response) => {
            result.failure = Some(format!("INVITE answered {:?}", response.status));
            // A non-2xx final response still needs its ACK (RFC 3261 §17.1.1.3).
            dialog.to = response.to.clone();
            let ack = dialog.request(&shared, "ACK", 1, "");
            let _ = shared.sip.send_to(ack.as_bytes(), options.target).await;
            return finish(&shared, &dialog, result);
        }
        Err(e) => {
            result.failure = Some(e);
            return finish(&shared, &dialog, result);
        }
    };
    result.invite_to_200 = Some(invited.elapsed());
    result.answered = true;
    dialog.to = response.to.clone();
    let ack = dialog.request(&shared, "ACK", 1, "");
    let _ = shared.sip.send_to(ack.as_bytes(), options.target).await;
    if shared.answered.fetch_add(1, Ordering::SeqCst) + 1 == options.calls {
        event("all_answered", started);
    }
    let remote = match sdp::negotiate(&response.body, &[options.codec]) {
        Ok(negotiated) => negotiated.remote_rtp,
        Err(e) => {
            result.failure = Some(format!("SDP answer: {e}"));
            return finish(&shared, &dialog, result);
        }
    };

    let answered_at = Instant::now();
    let mut sender = RtpSender::new(number as u32, options.codec.payload_type(), 0, 0);
    let mut pacing = tokio::time::interval(FRAME);
    pacing.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let hold_end = tokio::time::sleep(options.hold);
    tokio::pin!(hold_end);
    let mut datagram = vec![0u8; 2048];
    let mut last_arrival: Option<Instant> = None;
    loop {
        tokio::select! {
            biased;
            _ = &mut hold_end => break,
            _ = pacing.tick() => {
                let packet = sender.packet(&shared.payload, FRAME_SAMPLES as u32, result.rtp_sent == 0);
                if rtp_socket.send_to(&packet, remote).await.is_ok() {
                    result.rtp_sent += 1;
                }
            }
            received = rtp_socket.recv_from(&mut datagram) => {
                if let Ok((len, _)) = received
                    && rtp::parse(&datagram[..len]).is_ok()
                {
                    let now = Instant::now();
                    if let Some(previous) = last_arrival {
                        let gap = now - previous;
                        result.max_gap = result.max_gap.max(gap);
                        if gap > LATE_GAP {
                            result.rtp_late += 1;
                        }
                    }
                    last_arrival = Some(now);
                    result.rtp_received += 1;
                }
            }
            message = inbox.recv() => {
                if let Some(message) = message
                    && message.status.is_none()
                    && message.raw.starts_with("BYE ")
                {
                    result.hung_up_by_engine = true;
                    break;
                }
            }
        }
    }
    result.held = answered_at.elapsed();
    if shared.ended.fetch_add(1, Ordering::SeqCst) == 0 {
        event("first_hangup", started);
    }
    if !result.hung_up_by_engine {
        let bye = dialog.request(&shared, "BYE", 2, "");
        match transact(&shared, &bye, &mut inbox, "BYE").await {
            Ok(response) if response.status == Some(200) => {}
            Ok(response) => result.failure = Some(format!("BYE answered {:?}", response.status)),
            Err(e) => result.failure = Some(e),
        }
    }
    finish(&shared, &dialog, result)
}

fn finish(shared: &Shared, dialog: &Dialog, result: CallResult) -> CallResult {
    shared
        .routes
        .lock()
        .expect("routes lock")
        .remove(&dialog.call_id);
    result
}

fn percentile(sorted: &[Duration], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1000.0
}

fn main() {
    let options = parse_options();
    // One thread: the generator is pinned to its own core by the script, and one
    // thread per core is what tokio would choose there anyway.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let results = runtime.block_on(run(options.clone()));

    let answered: Vec<&CallResult> = results.iter().filter(|r| r.answered).collect();
    let failed = results.iter().filter(|r| r.failure.is_some()).count();
    let mut latencies: Vec<Duration> = results.iter().filter_map(|r| r.invite_to_200).collect();
    latencies.sort();
    let sum = |f: fn(&CallResult) -> u64| answered.iter().map(|r| f(r)).sum::<u64>();
    let expected_from_engine: u64 = answered
        .iter()
        .map(|r| (r.held.as_millis() / FRAME.as_millis()) as u64)
        .sum();
    let max_gap = answered.iter().map(|r| r.max_gap).max().unwrap_or_default();
    let held: Vec<f64> = answered.iter().map(|r| r.held.as_secs_f64()).collect();
    let held_min = held.iter().copied().fold(f64::INFINITY, f64::min);
    let held_max = held.iter().copied().fold(0.0, f64::max);
    println!(
        "summary calls={} answered={} failed={} invite_200_p50_ms={:.2} invite_200_p99_ms={:.2} \
         invite_200_max_ms={:.2} rtp_sent={} rtp_received={} rtp_expected_from_engine={} \
         rtp_late_from_engine={} max_gap_ms={:.1} held_min_s={:.3} held_max_s={:.3}",
        results.len(),
        answered.len(),
        failed,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
        sum(|r| r.rtp_sent),
        sum(|r| r.rtp_received),
        expected_from_engine,
        sum(|r| r.rtp_late),
        max_gap.as_secs_f64() * 1000.0,
        held_min,
        held_max,
    );
    for failure in results.iter().filter_map(|r| r.failure.as_ref()).take(5) {
        eprintln!("failure: {failure}");
    }
    if let Some(path) = &options.calls_csv {
        let mut csv = String::from(
            "call,answered,invite_200_ms,held_s,rtp_sent,rtp_received,rtp_late,failure\n",
        );
        for (number, r) in results.iter().enumerate() {
            csv.push_str(&format!(
                "{number},{},{},{:.3},{},{},{},{}\n",
                r.answered,
                r.invite_to_200
                    .map(|d| format!("{:.3}", d.as_secs_f64() * 1000.0))
                    .unwrap_or_default(),
                r.held.as_secs_f64(),
                r.rtp_sent,
                r.rtp_received,
                r.rtp_late,
                r.failure.as_deref().unwrap_or("").replace(',', ";"),
            ));
        }
        if let Err(e) = std::fs::write(path, csv) {
            eprintln!("cannot write {path}: {e}");
        }
    }
    if failed > 0 {
        std::process::exit(1);
    }
}

async fn run(options: Options) -> Vec<CallResult> {
    let sip = UdpSocket::bind((options.local_ip, 0))
        .await
        .expect("bind the SIP socket");
    let local_sip = sip.local_addr().expect("local SIP address");
    let tone: Vec<i16> = (0..FRAME_SAMPLES)
        .map(|i| ((i as f64 * 440.0 * std::f64::consts::TAU / 8000.0).sin() * 8000.0) as i16)
        .collect();
    let mut payload = Vec::new();
    g711::encode(options.codec, &tone, &mut payload);
    let shared = Arc::new(Shared {
        options: options.clone(),
        sip,
        local_sip,
        routes: Mutex::new(HashMap::new()),
        answered: AtomicUsize::new(0),
        ended: AtomicUsize::new(0),
        payload,
    });
    tokio::spawn(dispatch(Arc::clone(&shared)));
    let started = Instant::now();
    event("start", started);
    let spacing = Duration::from_secs_f64(1.0 / options.rate);
    let mut calls = Vec::with_capacity(options.calls);
    for number in 0..options.calls {
        calls.push(tokio::spawn(run_call(Arc::clone(&shared), number, started)));
        sleep(spacing).await;
    }
    let mut results = Vec::with_capacity(calls.len());
    for call in calls {
        results.push(call.await.unwrap_or_else(|e| CallResult {
            failure: Some(format!("call task: {e}")),
            ..CallResult::default()
        }));
    }
    event("done", started);
    results
}
