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
//! With `--agents N` it also plays the agents' phones (issue 12, bridged calls): N
//! agents `FIRST`…`FIRST+N-1` register with digest (password `PREFIX` + number), are
//! logged in through the API, answer the call the ACD offers them at once, and send and
//! count RTP on that leg too; the engine hangs them up when their caller hangs up. The
//! phones are the crate's own simulated user agent ([`hotline::sim::ua`]: registration,
//! digest, answering, BYE) driven over real sockets. Every leg counts what it receives
//! from the engine by RTP sequence number, so a packet the engine never sent (or sent
//! and the kernel dropped) shows as lost.
//!
//! ```text
//! cargo run --release --example loadgen -- --target 127.0.0.1:5060 --calls 100 \
//!     --hold-secs 20 --rate 50 --calls-csv /tmp/calls.csv
//! cargo run --release --example loadgen -- --target 127.0.0.1:5060 --calls 100 \
//!     --hold-secs 30 --rate 50 --agents 100 --agent-first 5000 \
//!     --agent-password-prefix bench --api 127.0.0.1:9090 --api-token TOKEN
//! ```

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hotline::media::g711::{self, Codec};
use hotline::media::rtp::{self, RtpPacket, RtpSender};
use hotline::recording::FRAME_SAMPLES;
use hotline::sim::SimRng;
use hotline::sim::ua::{Credentials, UaConfig, UaEvent, UserAgent};
use hotline::sip::{TransportKind, sdp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};
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
    /// Agents' phones to play (0: callers only, waiting in queue).
    agents: usize,
    agent_first: u64,
    agent_password_prefix: String,
    /// The engine's HTTP API, where agents are logged in.
    api: SocketAddr,
    api_token: String,
    agents_csv: Option<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: loadgen --target IP:PORT --calls N --hold-secs S [--rate CPS] \
         [--local-ip IP] [--codec pcma|pcmu] [--calls-csv FILE] [--agents N \
         --agent-first ID --agent-password-prefix P --api IP:PORT --api-token T \
         [--agents-csv FILE]]"
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
        agents: 0,
        agent_first: 5000,
        agent_password_prefix: String::new(),
        api: SocketAddr::from(([127, 0, 0, 1], 9090)),
        api_token: String::new(),
        agents_csv: None,
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
            "--agents" => options.agents = value().parse().unwrap_or_else(|_| usage()),
            "--agent-first" => options.agent_first = value().parse().unwrap_or_else(|_| usage()),
            "--agent-password-prefix" => options.agent_password_prefix = value(),
            "--api" => options.api = value().parse().unwrap_or_else(|_| usage()),
            "--api-token" => options.api_token = value(),
            "--agents-csv" => options.agents_csv = Some(value()),
            _ => usage(),
        }
    }
    if options.calls == 0
        || options.rate <= 0.0
        || (options.agents > 0 && options.api_token.is_empty())
    {
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

/// The RTP one leg receives from the engine: how many, how late, and how many the
/// sequence numbers say are missing (RFC 3550 §A.3, per SSRC).
#[derive(Debug, Default, Clone)]
struct RtpIn {
    received: u64,
    late: u64,
    max_gap: Duration,
    last_arrival: Option<Instant>,
    streams: HashMap<u32, SeqRange>,
}

#[derive(Debug, Clone, Copy)]
struct SeqRange {
    first: i64,
    highest: i64,
    last: i64,
    packets: u64,
}

impl RtpIn {
    fn on_packet(&mut self, now: Instant, packet: &RtpPacket) {
        if let Some(previous) = self.last_arrival {
            let gap = now - previous;
            self.max_gap = self.max_gap.max(gap);
            if gap > LATE_GAP {
                self.late += 1;
            }
        }
        self.last_arrival = Some(now);
        self.received += 1;
        let seq = i64::from(packet.sequence);
        self.streams
            .entry(packet.ssrc)
            .and_modify(|range| {
                // Extended sequence number: the 16-bit distance from the last one, signed,
                // so a wrap or a reordered packet lands on the right side.
                let delta = i64::from((packet.sequence as i64 - range.last) as u16 as i16);
                let extended = range.last + delta;
                range.last = extended;
                range.highest = range.highest.max(extended);
                range.first = range.first.min(extended);
                range.packets += 1;
            })
            .or_insert(SeqRange {
                first: seq,
                highest: seq,
                last: seq,
                packets: 1,
            });
    }

    /// Packets missing between the first and the highest sequence number of each stream.
    fn lost(&self) -> u64 {
        self.streams
            .values()
            .map(|r| ((r.highest - r.first + 1) as u64).saturating_sub(r.packets))
            .sum()
    }
}

/// What one call (a caller's, or an agent's leg) measured.
#[derive(Debug, Default, Clone)]
struct CallResult {
    answered: bool,
    failure: Option<String>,
    invite_to_200: Option<Duration>,
    /// From the 200 OK to sending BYE (or receiving the engine's BYE); for an agent,
    /// from the ACK of its 200 to the engine's BYE.
    held: Duration,
    rtp_sent: u64,
    rtp: RtpIn,
    hung_up_by_engine: bool,
    /// Agents: packets sent after the last one the engine sent this leg, i.e. after
    /// the engine had stopped this call's media and before its BYE arrived.
    tail_sent: u64,
}

struct Shared {
    options: Options,
    sip: UdpSocket,
    local_sip: SocketAddr,
    routes: Mutex<HashMap<String, mpsc::UnboundedSender<Incoming>>>,
    answered: AtomicUsize,
    ended: AtomicUsize,
    /// Agents registered and logged in, and agents whose call is up (ACK received).
    agents_ready: AtomicUsize,
    agents_bridged: AtomicUsize,
    agents_ended: AtomicUsize,
    /// Callers whose INVITE failed: no agent will be offered their call.
    callers_refused: AtomicUsize,
    all_bridged: std::sync::atomic::AtomicBool,
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
            shared.callers_refused.fetch_add(1, Ordering::SeqCst);
            check_all_bridged(&shared, started);
            return finish(&shared, &dialog, result);
        }
        Err(e) => {
            result.failure = Some(e);
            shared.callers_refused.fetch_add(1, Ordering::SeqCst);
            check_all_bridged(&shared, started);
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
                    && let Ok(packet) = rtp::parse(&datagram[..len])
                {
                    result.rtp.on_packet(Instant::now(), &packet);
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

/// The `key=value` figures of a set of legs, keys prefixed (`""` for callers,
/// `"agent_"` for agents).
fn leg_figures(prefix: &str, legs: &[CallResult]) -> String {
    let answered: Vec<&CallResult> = legs.iter().filter(|r| r.answered).collect();
    let sum = |f: &dyn Fn(&CallResult) -> u64| answered.iter().map(|r| f(r)).sum::<u64>();
    let expected_from_engine: u64 = answered
        .iter()
        .map(|r| (r.held.as_millis() / FRAME.as_millis()) as u64)
        .sum();
    let max_gap = answered
        .iter()
        .map(|r| r.rtp.max_gap)
        .max()
        .unwrap_or_default();
    let held: Vec<f64> = answered.iter().map(|r| r.held.as_secs_f64()).collect();
    let held_min = held.iter().copied().fold(f64::INFINITY, f64::min);
    let held_max = held.iter().copied().fold(0.0, f64::max);
    format!(
        "{prefix}rtp_sent={} {prefix}rtp_received={} {prefix}rtp_expected_from_engine={} \
         {prefix}rtp_lost_from_engine={} {prefix}rtp_late_from_engine={} \
         {prefix}max_gap_ms={:.1} {prefix}held_min_s={:.3} {prefix}held_max_s={:.3}",
        sum(&|r| r.rtp_sent),
        sum(&|r| r.rtp.received),
        expected_from_engine,
        sum(&|r| r.rtp.lost()),
        sum(&|r| r.rtp.late),
        max_gap.as_secs_f64() * 1000.0,
        held_min,
        held_max,
    )
}

fn write_csv(path: &str, legs: &[CallResult]) {
    let mut csv = String::from(
        "leg,answered,invite_200_ms,held_s,rtp_sent,rtp_received,rtp_lost,rtp_late,tail_sent,failure\n",
    );
    for (number, r) in legs.iter().enumerate() {
        csv.push_str(&format!(
            "{number},{},{},{:.3},{},{},{},{},{},{}\n",
            r.answered,
            r.invite_to_200
                .map(|d| format!("{:.3}", d.as_secs_f64() * 1000.0))
                .unwrap_or_default(),
            r.held.as_secs_f64(),
            r.rtp_sent,
            r.rtp.received,
            r.rtp.lost(),
            r.rtp.late,
            r.tail_sent,
            r.failure.as_deref().unwrap_or("").replace(',', ";"),
        ));
    }
    if let Err(e) = std::fs::write(path, csv) {
        eprintln!("cannot write {path}: {e}");
    }
}

fn main() {
    let options = parse_options();
    // One thread: the generator is pinned to its own core by the script, and one
    // thread per core is what tokio would choose there anyway.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (results, agents) = runtime.block_on(run(options.clone()));

    let answered = results.iter().filter(|r| r.answered).count();
    let failed = results.iter().filter(|r| r.failure.is_some()).count();
    let mut latencies: Vec<Duration> = results.iter().filter_map(|r| r.invite_to_200).collect();
    latencies.sort();
    let mut line = format!(
        "summary calls={} answered={} failed={} invite_200_p50_ms={:.2} invite_200_p99_ms={:.2} \
         invite_200_max_ms={:.2} {}",
        results.len(),
        answered,
        failed,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
        leg_figures("", &results),
    );
    let agents_failed = agents.iter().filter(|r| r.failure.is_some()).count();
    if !agents.is_empty() {
        line.push_str(&format!(
            " agents={} agents_answered={} agents_failed={} agent_tail_sent={} {}",
            agents.len(),
            agents.iter().filter(|r| r.answered).count(),
            agents_failed,
            agents.iter().map(|r| r.tail_sent).sum::<u64>(),
            leg_figures("agent_", &agents),
        ));
    }
    println!("{line}");
    for failure in results
        .iter()
        .chain(&agents)
        .filter_map(|r| r.failure.as_ref())
        .take(5)
    {
        eprintln!("failure: {failure}");
    }
    if let Some(path) = &options.calls_csv {
        write_csv(path, &results);
    }
    if let Some(path) = &options.agents_csv {
        write_csv(path, &agents);
    }
    if failed > 0 || agents_failed > 0 {
        std::process::exit(1);
    }
}

async fn run(options: Options) -> (Vec<CallResult>, Vec<CallResult>) {
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
        agents_ready: AtomicUsize::new(0),
        agents_bridged: AtomicUsize::new(0),
        agents_ended: AtomicUsize::new(0),
        callers_refused: AtomicUsize::new(0),
        all_bridged: std::sync::atomic::AtomicBool::new(false),
        payload,
    });
    tokio::spawn(dispatch(Arc::clone(&shared)));
    let started = Instant::now();
    event("start", started);

    // The agents first: every phone registered and logged in before the first caller,
    // so no caller waits for an agent who is still starting.
    let (stop_agents, stop) = watch::channel(false);
    let mut agents = Vec::with_capacity(options.agents);
    for index in 0..options.agents {
        agents.push(tokio::spawn(run_agent(
            Arc::clone(&shared),
            index,
            stop.clone(),
            started,
        )));
        // REGISTER, its challenge and the login spread over a second or so, not one burst.
        sleep(Duration::from_millis(2)).await;
    }
    if options.agents > 0 {
        let deadline = Instant::now() + Duration::from_secs(60);
        while shared.agents_ready.load(Ordering::SeqCst) < options.agents
            && Instant::now() < deadline
            && !agents.iter().all(|a| a.is_finished())
        {
            sleep(Duration::from_millis(50)).await;
        }
        if shared.agents_ready.load(Ordering::SeqCst) == options.agents {
            event("agents_ready", started);
        } else {
            event("agents_not_ready", started);
        }
    }

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
    // The engine's BYEs to the agents follow the callers' BYEs: let them land.
    let linger = Instant::now() + Duration::from_secs(10);
    while shared.agents_ended.load(Ordering::SeqCst) < shared.agents_bridged.load(Ordering::SeqCst)
        && Instant::now() < linger
    {
        sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_agents.send(true);
    let mut agent_results = Vec::with_capacity(agents.len());
    for agent in agents {
        agent_results.push(agent.await.unwrap_or_else(|e| CallResult {
            failure: Some(format!("agent task: {e}")),
            ..CallResult::default()
        }));
    }
    event("done", started);
    (results, agent_results)
}

/// `event=all_bridged` once every call that will be bridged is: every agent answered,
/// but for callers the engine refused (a 503 when it sheds load), whose agents wait in
/// vain. The script samples CPU from there.
fn check_all_bridged(shared: &Shared, started: Instant) {
    let agents = shared.options.agents;
    if agents == 0 {
        return;
    }
    let refused = shared.callers_refused.load(Ordering::SeqCst);
    let bridged = shared.agents_bridged.load(Ordering::SeqCst);
    if bridged + refused.min(agents) >= agents && !shared.all_bridged.swap(true, Ordering::SeqCst) {
        event("all_bridged", started);
    }
}

/// Logs an agent in through the engine's API (`POST /agents/{id}/login`), over a plain
/// HTTP/1.1 connection: the generator needs nothing more of HTTP.
async fn login(options: &Options, agent: &str) -> Result<(), String> {
    let exchange = async {
        let mut stream = TcpStream::connect(options.api)
            .await
            .map_err(|e| format!("connect to the API: {e}"))?;
        let request = format!(
            "POST /agents/{agent}/login HTTP/1.1\r\nHost: {api}\r\n\
             Authorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            api = options.api,
            token = options.api_token,
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("send login: {e}"))?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("read login answer: {e}"))?;
        let text = String::from_utf8_lossy(&response);
        let status = text.split_whitespace().nth(1).unwrap_or("");
        if status.starts_with('2') {
            Ok(())
        } else {
            Err(format!(
                "login refused: {}",
                text.lines().next().unwrap_or("no answer")
            ))
        }
    };
    timeout(Duration::from_secs(10), exchange)
        .await
        .unwrap_or_else(|_| Err("login: no answer in 10 s".into()))
}

/// One agent's phone: registers, is logged in, answers the call it is offered and
/// streams RTP on it until the engine hangs it up, then idles until `stop`.
async fn run_agent(
    shared: Arc<Shared>,
    index: usize,
    mut stop: watch::Receiver<bool>,
    started: Instant,
) -> CallResult {
    let options = &shared.options;
    let mut result = CallResult::default();
    let agent = (options.agent_first + index as u64).to_string();
    let (sip, rtp_socket) = match (
        UdpSocket::bind((options.local_ip, 0)).await,
        UdpSocket::bind((options.local_ip, 0)).await,
    ) {
        (Ok(sip), Ok(rtp_socket)) => (sip, rtp_socket),
        (Err(e), _) | (_, Err(e)) => {
            result.failure = Some(format!("agent {agent}: bind: {e}"));
            return result;
        }
    };
    let (Ok(local_sip), Ok(local_rtp)) = (sip.local_addr(), rtp_socket.local_addr()) else {
        result.failure = Some(format!("agent {agent}: no local address"));
        return result;
    };
    let mut config = UaConfig::new(local_sip, &agent);
    config.domain = options.target.ip().to_string();
    config.credentials = Some(Credentials {
        username: agent.clone(),
        password: format!("{}{agent}", options.agent_password_prefix),
    });
    config.media_port = Some(local_rtp.port());
    config.codecs = vec![options.codec];
    let mut ua = UserAgent::new(config, SimRng::new(0x10AD_0000 + index as u64));
    ua.register(
        Instant::now(),
        options.target,
        &options.target.ip().to_string(),
        3600,
    );

    let mut logged_in = false;
    let mut remote: Option<SocketAddr> = None;
    let mut media_on = false;
    let mut answered_at: Option<Instant> = None;
    let mut sent_since_heard = 0u64;
    let mut sender = RtpSender::new(
        0x8000_0000 | index as u32,
        options.codec.payload_type(),
        0,
        0,
    );
    let mut pacing = tokio::time::interval(FRAME);
    pacing.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut buf = vec![0u8; 65_536];
    let mut datagram = vec![0u8; 2048];
    loop {
        while let Some(transmit) = ua.poll_transmit() {
            let _ = sip.send_to(&transmit.payload, transmit.destination).await;
        }
        while let Some(ua_event) = ua.poll_event() {
            let now = Instant::now();
            match ua_event {
                UaEvent::Registered { .. } if !logged_in => match login(options, &agent).await {
                    Ok(()) => {
                        logged_in = true;
                        shared.agents_ready.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => result.failure = Some(format!("agent {agent}: {e}")),
                },
                UaEvent::RegisterFailed { status } => {
                    result.failure = Some(format!("agent {agent}: REGISTER answered {status}"));
                }
                UaEvent::Incoming { call } => {
                    if result.answered || remote.is_some() {
                        // One call per agent in this bench: a second offer is a finding.
                        result.failure = Some(format!("agent {agent}: offered a second call"));
                        ua.reject(now, call, 486);
                        continue;
                    }
                    let offer = ua
                        .incoming_invite(call)
                        .map(|invite| invite.body.clone())
                        .unwrap_or_default();
                    match sdp::negotiate(&offer, &[options.codec]) {
                        Ok(negotiated) => {
                            remote = Some(negotiated.remote_rtp);
                            ua.answer(now, call);
                        }
                        Err(e) => {
                            result.failure = Some(format!("agent {agent}: offer: {e}"));
                            ua.reject(now, call, 488);
                        }
                    }
                }
                UaEvent::Answered { .. } => {
                    result.answered = true;
                    media_on = true;
                    answered_at = Some(now);
                    pacing.reset_immediately();
                    shared.agents_bridged.fetch_add(1, Ordering::SeqCst);
                    check_all_bridged(&shared, started);
                }
                UaEvent::Ended { by, .. } => {
                    media_on = false;
                    result.held = answered_at.map(|at| now - at).unwrap_or_default();
                    result.hung_up_by_engine = by == hotline::sim::ua::Side::Remote;
                    result.tail_sent = sent_since_heard;
                    shared.agents_ended.fetch_add(1, Ordering::SeqCst);
                }
                UaEvent::Failed { status, .. } => {
                    result.failure =
                        Some(format!("agent {agent}: call ended unanswered ({status})"));
                    remote = None;
                }
                _ => {}
            }
        }
        let wake = ua
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            _ = pacing.tick(), if media_on => {
                if let Some(remote) = remote {
                    let packet = sender.packet(&shared.payload, FRAME_SAMPLES as u32, result.rtp_sent == 0);
                    if rtp_socket.send_to(&packet, remote).await.is_ok() {
                        result.rtp_sent += 1;
                        sent_since_heard += 1;
                    }
                }
            }
            received = rtp_socket.recv_from(&mut datagram) => {
                if let Ok((len, _)) = received
                    && let Ok(packet) = rtp::parse(&datagram[..len])
                {
                    result.rtp.on_packet(Instant::now(), &packet);
                    sent_since_heard = 0;
                }
            }
            received = sip.recv_from(&mut buf) => {
                if let Ok((len, from)) = received {
                    ua.handle_datagram(Instant::now(), from, TransportKind::Udp, &buf[..len]);
                }
            }
            _ = tokio::time::sleep_until(wake) => ua.handle_timeout(Instant::now()),
        }
    }
    if !logged_in && result.failure.is_none() {
        result.failure = Some(format!("agent {agent}: never registered and logged in"));
    } else if !result.answered && result.failure.is_none() {
        result.failure = Some(format!("agent {agent}: no call was bridged to it"));
    }
    result
}
