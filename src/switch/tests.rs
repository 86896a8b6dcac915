//! In-process tests of the switch's decisions: real SIP text in, real SIP text out, a
//! simulated clock, no sockets. What the old endpoint, driver, agents actor and feature
//! code tasks decided inside I/O tasks (ACK/BYE/CANCEL matching, admission, the
//! re-INVITE rule, 486/603, REGISTER, feature codes) is proven here in milliseconds.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};

use super::*;
use crate::media::prompt::Prompt;
use crate::sip::digest::{answer_challenge, parse_challenge};
use crate::sip::inbound::{Received, classify};
use crate::sip::message::{self, SipMessage};
use crate::workorder::{AbandonReason, CallOutcome, HangupSide};

const TRUNK: &str = "127.0.0.1:5070";
const PHONE: &str = "127.0.0.1:5071";
const DESTINATION: &str = "127.0.0.1:5080";

const AGENTS: &str = r#"
[[queues]]
name = "general"
strategy = "longest_idle"
max_wait_seconds = 600
wrap_up_seconds = 0

[[agents]]
id = "1001"
password = "demo1001"
queues = ["general"]
"#;

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// The built-in flow (greeting, queue `general`, the closing) on half-second tones, so
/// prompts take simulated time to play.
pub(super) fn test_flow() -> CallFlow {
    let names = [
        "greeting.wav",
        "queue-wait.wav",
        "hold-music.wav",
        "closing.wav",
        "position-prefix.wav",
        "position-suffix.wav",
    ];
    let prompts = names
        .into_iter()
        .map(String::from)
        .chain(ENGINE_PROMPTS.iter().map(|name| name.to_string()))
        .map(|name| Arc::new(Prompt::named(name, vec![1000; 4000])));
    let prompts = Arc::new(crate::media::prompt::PromptLibrary::from_prompts(prompts));
    let plan = crate::ivr::BuiltinFlow {
        greeting: "greeting.wav",
        hold_music: "hold-music.wav",
        queue: "general",
        announcement: Duration::from_secs(20),
    }
    .compile(|name| prompts.contains(name))
    .expect("built-in flow");
    CallFlow { plan, prompts }
}

pub(super) fn test_settings() -> SwitchSettings {
    SwitchSettings::loopback(5060)
}

/// A switch with the runtime played by the test: media ports open at once, prompts end
/// when the test says.
struct Rig {
    switch: Switch,
    now: Instant,
    sent: Vec<(SocketAddr, String)>,
    media: Vec<MediaOrder>,
    store: Vec<StoreWrite>,
    next_port: u16,
}

impl Rig {
    fn new() -> Rig {
        Rig::with(test_settings())
    }

    fn with(settings: SwitchSettings) -> Rig {
        Rig::with_flow(settings, test_flow())
    }

    fn with_flow(settings: SwitchSettings, flow: CallFlow) -> Rig {
        let agents = crate::config::agents::AgentsConfig::parse(Path::new("agents.toml"), AGENTS)
            .expect("agents");
        let now = Instant::now();
        let wall = Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap();
        let switch = Switch::new(settings, &agents, flow, 42, now, wall, &[]).expect("switch");
        Rig {
            switch,
            now,
            sent: Vec::new(),
            media: Vec::new(),
            store: Vec::new(),
            next_port: 20000,
        }
    }

    fn deliver(&mut self, from: &str, text: &str) {
        let text = text.replace('\n', "\r\n");
        match classify(text.as_bytes(), addr(from), TransportKind::Udp) {
            Received::Message(message) => self.switch.handle_inbound(self.now, *message),
            Received::Malformed(_) => panic!("test message malformed:\n{text}"),
        }
        self.drain();
    }

    /// Collects outputs; opens media ports at once, as the runtime would.
    fn drain(&mut self) {
        loop {
            let mut moved = false;
            while let Some(t) = self.switch.poll_transmit() {
                moved = true;
                self.sent.push((
                    t.destination,
                    String::from_utf8_lossy(&t.payload).into_owned(),
                ));
            }
            while let Some(w) = self.switch.poll_store() {
                moved = true;
                self.store.push(w);
            }
            while self.switch.poll_event().is_some() {
                moved = true;
            }
            let orders: Vec<MediaOrder> = std::iter::from_fn(|| self.switch.poll_media()).collect();
            for order in orders {
                moved = true;
                if let MediaOrder::Open { leg } = &order {
                    let local = SocketAddr::new("127.0.0.1".parse().unwrap(), self.next_port);
                    self.next_port += 2;
                    self.switch
                        .handle_media(self.now, *leg, MediaReport::Opened { local });
                }
                self.media.push(order);
            }
            if !moved {
                break;
            }
        }
    }

    fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        while let Some(at) = self.switch.poll_timeout() {
            if at > until {
                break;
            }
            self.now = self.now.max(at);
            self.switch.handle_timeout(self.now);
            self.drain();
        }
        self.now = until;
    }

    fn command(&mut self, command: Command) -> Reply {
        self.switch.handle_command(self.now, 1, command);
        let mut reply = None;
        loop {
            while let Some(t) = self.switch.poll_transmit() {
                self.sent.push((
                    t.destination,
                    String::from_utf8_lossy(&t.payload).into_owned(),
                ));
            }
            while let Some(event) = self.switch.poll_event() {
                if let SwitchEvent::Reply { reply: r, .. } = event {
                    reply = Some(r);
                }
            }
            let before = self.media.len() + self.store.len();
            self.drain();
            if self.media.len() + self.store.len() == before {
                break;
            }
        }
        reply.expect("a reply")
    }

    /// Messages sent since the last call, and forgets them.
    fn take_sent(&mut self) -> Vec<(SocketAddr, String)> {
        std::mem::take(&mut self.sent)
    }

    fn statuses(&mut self) -> Vec<u16> {
        self.take_sent()
            .iter()
            .filter_map(|(_, text)| status_of(text))
            .collect()
    }

    fn prompt_finished(&mut self, leg: LegId) {
        let seq = self
            .media
            .iter()
            .rev()
            .find_map(|order| match order {
                MediaOrder::Play { leg: on, seq, .. } if *on == leg => Some(*seq),
                _ => None,
            })
            .unwrap_or_default();
        self.switch
            .handle_media(self.now, leg, MediaReport::PlaybackFinished { seq });
        self.drain();
    }

    fn started_legs(&self) -> Vec<LegId> {
        self.media
            .iter()
            .filter_map(|o| match o {
                MediaOrder::Start { leg, .. } => Some(*leg),
                _ => None,
            })
            .collect()
    }
}

fn status_of(text: &str) -> Option<u16> {
    text.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

fn parse(text: &str) -> SipMessage {
    message::parse(text.as_bytes()).expect("our own message parses")
}

fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn to_tag(text: &str) -> String {
    let to = header(text, "To").expect("To");
    to.split(";tag=").nth(1).expect("tag").trim().to_owned()
}

const SDP: &str = "v=0
o=- 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
";

fn invite(call_id: &str, from_tag: &str, branch: &str, extra: &str, body: &str) -> String {
    format!(
        "INVITE sip:8890@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP {TRUNK};branch={branch}
Max-Forwards: 70
From: <sip:13800001111@127.0.0.1>;tag={from_tag}
To: <sip:8890@127.0.0.1>
Call-ID: {call_id}
CSeq: 1 INVITE
Contact: <sip:13800001111@{TRUNK}>
{extra}Content-Type: application/sdp
Content-Length: {}

{body}",
        body.replace('\n', "\r\n").len()
    )
}

fn in_dialog(
    method: &str,
    call_id: &str,
    from_tag: &str,
    to_tag: &str,
    cseq: u32,
    branch: &str,
) -> String {
    format!(
        "{method} sip:hotline@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP {TRUNK};branch={branch}
Max-Forwards: 70
From: <sip:13800001111@127.0.0.1>;tag={from_tag}
To: <sip:8890@127.0.0.1>;tag={to_tag}
Call-ID: {call_id}
CSeq: {cseq} {method}
Content-Length: 0

"
    )
}

/// An inbound call answered and ACKed; returns our tag.
fn answered_call(rig: &mut Rig, call_id: &str) -> String {
    let branch = format!("z9hG4bK-inv-{call_id}");
    rig.deliver(TRUNK, &invite(call_id, "caller", &branch, "", SDP));
    rig.advance(Duration::from_secs(2));
    let ok = rig
        .take_sent()
        .into_iter()
        .find(|(_, t)| status_of(t) == Some(200))
        .expect("200 OK")
        .1;
    let tag = to_tag(&ok);
    rig.deliver(
        TRUNK,
        &in_dialog("ACK", call_id, "caller", &tag, 1, "z9hG4bK-ack-1"),
    );
    tag
}

#[test]
fn an_inbound_call_rings_then_is_answered_inside_the_ring_budget_r6_r10() {
    let mut rig = Rig::new();
    rig.deliver(TRUNK, &invite("c1", "caller", "z9hG4bK-1", "", SDP));
    assert_eq!(rig.statuses(), vec![100, 180]);
    assert!(
        matches!(rig.store.first(), Some(StoreWrite::Create(order)) if order.caller == "13800001111")
    );
    rig.advance(Duration::from_millis(1999));
    assert!(rig.statuses().is_empty(), "no answer before the ring time");
    rig.advance(Duration::from_millis(1));
    let sent = rig.take_sent();
    let ok = &sent
        .iter()
        .find(|(_, t)| status_of(t) == Some(200))
        .expect("200")
        .1;
    assert!(ok.contains("m=audio 20000 RTP/AVP 0"), "{ok}");
    assert!(
        header(ok, "Contact")
            .unwrap()
            .contains("sip:hotline@127.0.0.1:5060")
    );
    assert!(rig.store.iter().any(|w| matches!(
        w,
        StoreWrite::Answered {
            recording: Some(_),
            ..
        }
    )));
    assert!(matches!(
        rig.media
            .iter()
            .find(|o| matches!(o, MediaOrder::Start { .. })),
        Some(MediaOrder::Start {
            recording: Some(_),
            ..
        })
    ));
}

#[test]
fn cancel_while_ringing_gives_487_and_an_abandoned_order() {
    let mut rig = Rig::new();
    rig.deliver(TRUNK, &invite("c2", "caller", "z9hG4bK-2", "", SDP));
    rig.take_sent();
    let cancel = invite("c2", "caller", "z9hG4bK-2", "", "")
        .replace("INVITE sip", "CANCEL sip")
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    rig.deliver(TRUNK, &cancel);
    let mut statuses = rig.statuses();
    statuses.sort();
    assert_eq!(statuses, vec![200, 487]);
    assert!(rig.store.iter().any(|w| matches!(
        w,
        StoreWrite::Ended {
            outcome: CallOutcome::Abandoned {
                reason: AbandonReason::CallerCancelled
            },
            ..
        }
    )));
    assert_eq!(rig.switch.active_calls(), 0);
}

#[test]
fn in_dialog_requests_for_unknown_dialogs_get_481_rfc3261_12_2_2() {
    let mut rig = Rig::new();
    rig.deliver(
        TRUNK,
        &in_dialog("BYE", "nobody", "x", "y", 2, "z9hG4bK-b1"),
    );
    assert_eq!(rig.statuses(), vec![481]);
    // RFC 4475 wsinv: a re-INVITE for a dialog that does not exist.
    let reinvite = invite("nobody", "x", "z9hG4bK-ri", "", SDP).replace(
        "To: <sip:8890@127.0.0.1>",
        "To: <sip:8890@127.0.0.1>;tag=unknown",
    );
    rig.deliver(TRUNK, &reinvite);
    assert_eq!(rig.statuses(), vec![481]);
}

#[test]
fn a_merged_invite_gets_482_but_another_from_tag_is_a_new_call() {
    let mut rig = Rig::new();
    rig.deliver(TRUNK, &invite("same", "tag-a", "z9hG4bK-m1", "", SDP));
    rig.take_sent();
    rig.deliver(TRUNK, &invite("same", "tag-a", "z9hG4bK-m2", "", SDP));
    assert_eq!(rig.statuses(), vec![482]);
    rig.deliver(TRUNK, &invite("same", "tag-b", "z9hG4bK-m3", "", SDP));
    assert_eq!(rig.statuses(), vec![100, 180]);
    assert_eq!(rig.switch.active_calls(), 2);
}

#[test]
fn an_unsupported_require_gets_420_with_unsupported() {
    let mut rig = Rig::new();
    rig.deliver(
        TRUNK,
        &invite("r1", "c", "z9hG4bK-r1", "Require: 100rel, foo\n", SDP),
    );
    let sent = rig.take_sent();
    assert_eq!(status_of(&sent[0].1), Some(420));
    assert_eq!(header(&sent[0].1, "Unsupported"), Some("100rel, foo"));
    assert_eq!(rig.switch.active_calls(), 0);
}

#[test]
fn admission_refuses_above_the_limit_and_during_shutdown_with_retry_after() {
    let mut settings = test_settings();
    settings.max_concurrent = 1;
    let mut rig = Rig::with(settings);
    rig.deliver(TRUNK, &invite("a1", "c", "z9hG4bK-a1", "", SDP));
    rig.take_sent();
    rig.deliver(TRUNK, &invite("a2", "c", "z9hG4bK-a2", "", SDP));
    let sent = rig.take_sent();
    assert_eq!(status_of(&sent[0].1), Some(503));
    assert_eq!(header(&sent[0].1, "Retry-After"), Some("5"));
    rig.command(Command::StopAccepting);
    rig.deliver(TRUNK, &invite("a3", "c", "z9hG4bK-a3", "", SDP));
    assert_eq!(rig.statuses(), vec![503]);
}

#[test]
fn no_common_codec_gets_488_and_bad_sdp_400() {
    let mut rig = Rig::new();
    let g729 = SDP
        .replace("RTP/AVP 0 101", "RTP/AVP 18")
        .replace("a=rtpmap:0 PCMU/8000\n", "");
    rig.deliver(TRUNK, &invite("n1", "c", "z9hG4bK-n1", "", &g729));
    assert_eq!(rig.statuses(), vec![488]);
    rig.deliver(TRUNK, &invite("n2", "c", "z9hG4bK-n2", "", "garbage\n"));
    assert_eq!(rig.statuses(), vec![400]);
}

#[test]
fn options_is_answered_with_allow() {
    let mut rig = Rig::new();
    let options = in_dialog("OPTIONS", "o1", "x", "y", 1, "z9hG4bK-o1").replace(";tag=y", "");
    rig.deliver(TRUNK, &options);
    let sent = rig.take_sent();
    assert_eq!(status_of(&sent[0].1), Some(200));
    assert!(header(&sent[0].1, "Allow").unwrap().contains("INVITE"));
}

#[test]
fn the_callers_bye_ends_the_call_and_an_old_cseq_gets_500() {
    let mut rig = Rig::new();
    let tag = answered_call(&mut rig, "b1");
    rig.take_sent();
    rig.deliver(
        TRUNK,
        &in_dialog("BYE", "b1", "wrong", &tag, 2, "z9hG4bK-bw"),
    );
    assert_eq!(
        rig.statuses(),
        vec![481],
        "a From tag that is not the dialog's"
    );
    rig.deliver(
        TRUNK,
        &in_dialog("INFO", "b1", "caller", &tag, 5, "z9hG4bK-i5"),
    );
    assert_eq!(rig.statuses(), vec![200]);
    rig.deliver(
        TRUNK,
        &in_dialog("BYE", "b1", "caller", &tag, 3, "z9hG4bK-b3"),
    );
    assert_eq!(rig.statuses(), vec![500], "CSeq 3 after 5 is out of order");
    rig.deliver(
        TRUNK,
        &in_dialog("BYE", "b1", "caller", &tag, 6, "z9hG4bK-b6"),
    );
    assert_eq!(rig.statuses(), vec![200]);
    assert!(rig.store.iter().any(|w| matches!(
        w,
        StoreWrite::Ended {
            side: Some(HangupSide::Caller),
            ..
        }
    )));
    assert_eq!(rig.switch.active_calls(), 0);
}

#[test]
fn record_route_is_copied_into_responses_that_make_the_dialog_rfc3261_12_1_1() {
    let mut rig = Rig::new();
    let extra = "Record-Route: <sip:proxy1.example;lr>\nRecord-Route: <sip:proxy2.example;lr>\n";
    rig.deliver(TRUNK, &invite("rr", "c", "z9hG4bK-rr", extra, SDP));
    rig.advance(Duration::from_secs(2));
    let sent = rig.take_sent();
    for (_, text) in sent
        .iter()
        .filter(|(_, t)| matches!(status_of(t), Some(180 | 200)))
    {
        let first = text.find("proxy1.example").expect("first Record-Route");
        let second = text.find("proxy2.example").expect("second Record-Route");
        assert!(first < second, "order kept: {text}");
    }
    let trying = &sent
        .iter()
        .find(|(_, t)| status_of(t) == Some(100))
        .unwrap()
        .1;
    assert!(!trying.contains("Record-Route"), "100 makes no dialog");
}

#[test]
fn a_late_offer_gets_our_offer_in_the_200_and_media_starts_at_the_ack() {
    let mut rig = Rig::new();
    let no_sdp =
        invite("lo", "c", "z9hG4bK-lo", "", "").replace("Content-Type: application/sdp\r\n", "");
    rig.deliver(TRUNK, &no_sdp);
    rig.advance(Duration::from_secs(2));
    let ok = rig
        .take_sent()
        .into_iter()
        .find(|(_, t)| status_of(t) == Some(200))
        .unwrap()
        .1;
    assert!(ok.contains("m=audio"), "our offer: {ok}");
    assert!(rig.started_legs().is_empty(), "no media before the answer");
    let tag = to_tag(&ok);
    let ack = in_dialog("ACK", "lo", "c", &tag, 1, "z9hG4bK-lo-ack").replace(
        "Content-Length: 0\n\n",
        &format!(
            "Content-Type: application/sdp\nContent-Length: {}\n\n{SDP}",
            SDP.replace('\n', "\r\n").len()
        ),
    );
    rig.deliver(TRUNK, &ack);
    assert_eq!(rig.started_legs().len(), 1, "media starts with the answer");
}

#[test]
fn a_reinvite_is_answered_with_our_sdp_and_the_call_goes_on() {
    let mut rig = Rig::new();
    let tag = answered_call(&mut rig, "ri");
    rig.take_sent();
    let hold = SDP.replace("a=rtpmap:101", "a=sendonly\na=rtpmap:101");
    let reinvite = invite("ri", "caller", "z9hG4bK-ri2", "", &hold)
        .replace(
            "To: <sip:8890@127.0.0.1>",
            &format!("To: <sip:8890@127.0.0.1>;tag={tag}"),
        )
        .replace("CSeq: 1 INVITE", "CSeq: 2 INVITE");
    rig.deliver(TRUNK, &reinvite);
    let ok = rig
        .take_sent()
        .into_iter()
        .find(|(_, t)| status_of(t) == Some(200))
        .expect("200")
        .1;
    assert!(ok.contains("m=audio 20000"), "same port: {ok}");
    assert!(
        rig.media
            .iter()
            .any(|o| matches!(o, MediaOrder::Hold { held: true, .. })),
        "media paused"
    );
    rig.deliver(
        TRUNK,
        &in_dialog("ACK", "ri", "caller", &tag, 2, "z9hG4bK-ri2-ack"),
    );
    assert_eq!(rig.switch.active_calls(), 1);
    let unhold = invite("ri", "caller", "z9hG4bK-ri3", "", SDP)
        .replace(
            "To: <sip:8890@127.0.0.1>",
            &format!("To: <sip:8890@127.0.0.1>;tag={tag}"),
        )
        .replace("CSeq: 1 INVITE", "CSeq: 3 INVITE");
    rig.deliver(TRUNK, &unhold);
    assert!(
        rig.media
            .iter()
            .any(|o| matches!(o, MediaOrder::Hold { held: false, .. })),
        "media resumes"
    );
}

/// Registers agent 1001's phone with digest and logs the agent in.
fn register_agent(rig: &mut Rig) {
    let register = |auth: &str, cseq: u32| {
        format!(
            "REGISTER sip:127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP {PHONE};branch=z9hG4bK-reg-{cseq}
Max-Forwards: 70
From: <sip:1001@127.0.0.1>;tag=phone
To: <sip:1001@127.0.0.1>
Call-ID: reg-1001
CSeq: {cseq} REGISTER
Contact: <sip:1001@{PHONE}>
Expires: 600
{auth}Content-Length: 0

"
        )
    };
    rig.deliver(PHONE, &register("", 1));
    let challenge = rig.take_sent().pop().expect("401").1;
    assert_eq!(status_of(&challenge), Some(401));
    let value = header(&challenge, "WWW-Authenticate").expect("challenge");
    let challenge = parse_challenge(value).expect("challenge parses");
    let answer = answer_challenge(
        &challenge,
        "REGISTER",
        "sip:127.0.0.1:5060",
        "1001",
        "demo1001",
        ("c1", 1),
    )
    .unwrap();
    rig.deliver(PHONE, &register(&format!("Authorization: {answer}\n"), 2));
    assert_eq!(rig.statuses(), vec![200]);
    match rig.command(Command::Agent {
        agent: "1001".into(),
        action: AgentAction::Login,
    }) {
        Reply::Agent(Ok(status)) => assert_eq!(status.state, "available"),
        other => panic!("login: {other:?}"),
    }
}

#[test]
fn register_needs_digest_and_only_the_agents_own_number_r29() {
    let mut rig = Rig::new();
    register_agent(&mut rig);
    let (agents, _) = rig.switch.status(rig.now);
    assert!(agents.iter().any(|a| a.id == "1001" && a.registered));
}

/// A call queued and ringing agent 1001's phone; returns the INVITE sent to the phone.
fn call_ringing_the_agent(rig: &mut Rig) -> String {
    register_agent(rig);
    answered_call(rig, "q1");
    let customer = rig.started_legs()[0];
    rig.prompt_finished(customer); // greeting over: queued, offered at once
    rig.take_sent()
        .into_iter()
        .find(|(to, t)| *to == addr(PHONE) && t.starts_with("INVITE "))
        .expect("INVITE to the agent's phone")
        .1
}

fn phone_response(invite: &str, status: &str, sdp: bool) -> String {
    let via = header(invite, "Via").unwrap();
    let from = header(invite, "From").unwrap();
    let call_id = header(invite, "Call-ID").unwrap();
    let body = if sdp {
        SDP.replace("6000", "7000")
    } else {
        String::new()
    };
    format!(
        "SIP/2.0 {status}
Via: {via}
From: {from}
To: <sip:1001@127.0.0.1>;tag=phone-leg
Call-ID: {call_id}
CSeq: 1 INVITE
Contact: <sip:1001@{PHONE}>
{}Content-Length: {}

{body}",
        if sdp {
            "Content-Type: application/sdp\n"
        } else {
            ""
        },
        body.replace('\n', "\r\n").len()
    )
}

#[test]
fn an_agent_answering_is_bridged_and_owns_the_work_order_r7() {
    let mut rig = Rig::new();
    let invite = call_ringing_the_agent(&mut rig);
    let masked = crate::privacy::mask_number("13800001111");
    assert!(
        invite.contains(&masked),
        "masked caller on the phone's display (R12)"
    );
    assert!(
        !invite.contains("13800001111"),
        "never the full number (R12)"
    );
    rig.deliver(PHONE, &phone_response(&invite, "180 Ringing", false));
    rig.deliver(PHONE, &phone_response(&invite, "200 OK", true));
    let sent = rig.take_sent();
    assert!(
        sent.iter()
            .any(|(to, t)| *to == addr(PHONE) && t.starts_with("ACK ")),
        "2xx ACKed"
    );
    assert!(
        rig.media
            .iter()
            .any(|o| matches!(o, MediaOrder::Attach { .. })),
        "bridged"
    );
    assert!(
        rig.store
            .iter()
            .any(|w| matches!(w, StoreWrite::Connected { agent, .. } if agent == "1001"))
    );
    assert_eq!(rig.switch.agents_in_calls(), vec!["1001".to_owned()]);
}

#[test]
fn a_486_from_the_phone_is_acked_and_the_call_waits_on_not_offered_again() {
    let mut rig = Rig::new();
    let invite = call_ringing_the_agent(&mut rig);
    rig.deliver(PHONE, &phone_response(&invite, "486 Busy Here", false));
    let sent = rig.take_sent();
    assert!(
        sent.iter().any(|(_, t)| t.starts_with("ACK ")),
        "the failure is ACKed"
    );
    assert!(
        !sent.iter().any(|(_, t)| t.starts_with("INVITE ")),
        "refused: not offered again"
    );
    let (agents, queues) = rig.switch.status(rig.now);
    assert_eq!(
        agents[0].state, "available",
        "a refusal leaves the agent available"
    );
    assert_eq!(queues[0].depth, 1, "the caller still waits");
}

#[test]
fn a_ring_timeout_cancels_the_agents_phone_and_pauses_the_agent_r6() {
    let mut rig = Rig::new();
    let invite = call_ringing_the_agent(&mut rig);
    rig.deliver(PHONE, &phone_response(&invite, "180 Ringing", false));
    rig.advance(Duration::from_secs(10));
    let sent = rig.take_sent();
    assert!(
        sent.iter().any(|(_, t)| t.starts_with("CANCEL ")),
        "{sent:?}"
    );
    let (agents, _) = rig.switch.status(rig.now);
    assert_eq!(
        (agents[0].state, agents[0].reason),
        ("paused", Some("no_answer"))
    );
}

#[test]
fn an_answer_crossing_the_withdrawal_is_hung_up_and_not_the_owner_r7() {
    let mut rig = Rig::new();
    let invite = call_ringing_the_agent(&mut rig);
    rig.deliver(PHONE, &phone_response(&invite, "180 Ringing", false));
    rig.advance(Duration::from_secs(10)); // withdrawn: CANCEL sent
    rig.take_sent();
    rig.deliver(PHONE, &phone_response(&invite, "200 OK", true));
    let sent = rig.take_sent();
    assert!(sent.iter().any(|(_, t)| t.starts_with("ACK ")));
    assert!(
        sent.iter().any(|(_, t)| t.starts_with("BYE ")),
        "the late leg goes"
    );
    assert!(
        !rig.store
            .iter()
            .any(|w| matches!(w, StoreWrite::Connected { .. })),
        "never the owner"
    );
    assert!(
        !rig.media
            .iter()
            .any(|o| matches!(o, MediaOrder::Attach { .. }))
    );
}

#[test]
fn a_cancel_waits_for_a_provisional_response_rfc3261_9_1() {
    let mut rig = Rig::new();
    let invite = call_ringing_the_agent(&mut rig);
    rig.advance(Duration::from_secs(10)); // ring timeout before any 1xx
    assert!(
        !rig.take_sent()
            .iter()
            .any(|(_, t)| t.starts_with("CANCEL "))
    );
    rig.deliver(PHONE, &phone_response(&invite, "180 Ringing", false));
    assert!(
        rig.take_sent()
            .iter()
            .any(|(_, t)| t.starts_with("CANCEL "))
    );
}

#[test]
fn feature_codes_are_challenged_then_change_the_agents_state() {
    let mut rig = Rig::new();
    register_agent(&mut rig);
    rig.command(Command::Agent {
        agent: "1001".into(),
        action: AgentAction::Logout,
    });
    let feature = |auth: &str, cseq: u32| {
        format!(
            "INVITE sip:*21@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP {PHONE};branch=z9hG4bK-f{cseq}
Max-Forwards: 70
From: <sip:1001@127.0.0.1>;tag=ph
To: <sip:*21@127.0.0.1>
Call-ID: feature-1
CSeq: {cseq} INVITE
Contact: <sip:1001@{PHONE}>
{auth}Content-Type: application/sdp
Content-Length: {}

{}",
            SDP.replace('\n', "\r\n").len(),
            SDP
        )
    };
    rig.deliver(PHONE, &feature("", 1));
    let challenge = rig.take_sent().pop().unwrap().1;
    assert_eq!(status_of(&challenge), Some(401));
    let challenge = parse_challenge(header(&challenge, "WWW-Authenticate").unwrap()).unwrap();
    let answer = answer_challenge(
        &challenge,
        "INVITE",
        "sip:*21@127.0.0.1:5060",
        "1001",
        "demo1001",
        ("c", 1),
    )
    .unwrap();
    rig.deliver(PHONE, &feature(&format!("Authorization: {answer}\n"), 2));
    assert!(rig.statuses().contains(&200), "answered");
    let (agents, _) = rig.switch.status(rig.now);
    assert_eq!(agents[0].state, "available");
    assert!(
        rig.store.is_empty()
            || !rig
                .store
                .iter()
                .any(|w| matches!(w, StoreWrite::Create(o) if o.call_id == "feature-1")),
        "no work order"
    );
    let leg = rig.started_legs()[0];
    rig.prompt_finished(leg);
    assert!(
        rig.take_sent().iter().any(|(_, t)| t.starts_with("BYE ")),
        "the engine hangs up"
    );
}

#[test]
fn an_outbound_call_rings_the_agent_then_the_destination_and_records_r16() {
    let mut rig = Rig::new();
    register_agent(&mut rig);
    let reply = rig.command(Command::Originate {
        agent: "1001".into(),
        destination: format!("sip:13900002222@{DESTINATION}"),
        caller_id: None,
    });
    assert!(matches!(reply, Reply::Originated(Ok(_))), "{reply:?}");
    let to_agent = rig
        .take_sent()
        .into_iter()
        .find(|(to, t)| *to == addr(PHONE) && t.starts_with("INVITE "))
        .expect("agent first")
        .1;
    rig.deliver(PHONE, &phone_response(&to_agent, "200 OK", true));
    let sent = rig.take_sent();
    let to_dest = sent
        .iter()
        .find(|(to, t)| *to == addr(DESTINATION) && t.starts_with("INVITE "))
        .expect("then the destination")
        .1
        .clone();
    assert!(to_dest.starts_with("INVITE sip:13900002222@127.0.0.1:5080 SIP/2.0"));
    let answer = phone_response(&to_dest, "200 OK", true)
        .replace("<sip:1001@127.0.0.1>", "<sip:13900002222@127.0.0.1>");
    rig.deliver(DESTINATION, &answer);
    assert!(rig.media.iter().any(|o| matches!(
        o,
        MediaOrder::Start {
            recording: Some(_),
            ..
        }
    )));
    assert!(
        rig.media
            .iter()
            .any(|o| matches!(o, MediaOrder::Attach { .. }))
    );
    assert!(
        rig.store
            .iter()
            .any(|w| matches!(w, StoreWrite::Connected { agent, .. } if agent == "1001"))
    );
    let (agents, _) = rig.switch.status(rig.now);
    assert_eq!(
        agents[0].state, "on_call",
        "the ACD offers the agent nothing meanwhile"
    );
    // The destination hangs up: the agent's leg gets BYE, the order ends.
    let bye = format!(
        "BYE sip:hotline@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP {DESTINATION};branch=z9hG4bK-dest-bye
Max-Forwards: 70
From: <sip:13900002222@127.0.0.1>;tag=phone-leg
To: {}
Call-ID: {}
CSeq: 2 BYE
Content-Length: 0

",
        header(&to_dest, "From").unwrap(),
        header(&to_dest, "Call-ID").unwrap()
    );
    rig.deliver(DESTINATION, &bye);
    let sent = rig.take_sent();
    assert!(
        sent.iter()
            .any(|(to, t)| *to == addr(DESTINATION) && status_of(t) == Some(200))
    );
    let agent_bye = sent
        .iter()
        .find(|(to, t)| *to == addr(PHONE) && t.starts_with("BYE "))
        .expect("agent leg hung up")
        .1
        .clone();
    let ok = format!(
        "SIP/2.0 200 OK
Via: {}
From: {}
To: {}
Call-ID: {}
CSeq: {}
Content-Length: 0

",
        header(&agent_bye, "Via").unwrap(),
        header(&agent_bye, "From").unwrap(),
        header(&agent_bye, "To").unwrap(),
        header(&agent_bye, "Call-ID").unwrap(),
        header(&agent_bye, "CSeq").unwrap()
    );
    rig.deliver(PHONE, &ok);
    assert!(rig.store.iter().any(|w| matches!(
        w,
        StoreWrite::Ended {
            outcome: CallOutcome::Answered,
            side: Some(HangupSide::Caller),
            ..
        }
    )));
    let (agents, _) = rig.switch.status(rig.now);
    assert_eq!(agents[0].state, "available");
    assert_eq!(rig.switch.active_calls(), 0);
}

#[test]
fn a_caller_who_never_acks_is_hung_up_at_64_t1_rfc3261_13_3_1_4() {
    let mut rig = Rig::new();
    rig.deliver(TRUNK, &invite("na", "c", "z9hG4bK-na", "", SDP));
    rig.advance(Duration::from_secs(2));
    rig.take_sent();
    rig.advance(Duration::from_secs(33));
    assert!(rig.take_sent().iter().any(|(_, t)| t.starts_with("BYE ")));
    let _ = parse;
}

#[test]
fn a_caller_whose_rtp_stops_is_hung_up_and_the_order_says_why() {
    let mut rig = Rig::new();
    answered_call(&mut rig, "rtp");
    rig.take_sent();
    let customer = rig.started_legs()[0];
    rig.switch
        .handle_media(rig.now, customer, MediaReport::Inactive);
    rig.drain();
    let bye = rig
        .take_sent()
        .into_iter()
        .find(|(_, t)| t.starts_with("BYE "))
        .expect("BYE")
        .1;
    let ok = format!(
        "SIP/2.0 200 OK\nVia: {}\nFrom: {}\nTo: {}\nCall-ID: rtp\nCSeq: {}\nContent-Length: 0\n\n",
        header(&bye, "Via").unwrap(),
        header(&bye, "From").unwrap(),
        header(&bye, "To").unwrap(),
        header(&bye, "CSeq").unwrap()
    );
    rig.deliver(TRUNK, &ok);
    assert!(rig.store.iter().any(|w| matches!(
        w,
        StoreWrite::Ended {
            reason: Some("rtp_timeout"),
            side: Some(HangupSide::Hotline),
            ..
        }
    )));
    assert_eq!(rig.switch.active_calls(), 0);
    assert_eq!(rig.switch.call_timers(), 0, "no timer outlives its call");
}

#[test]
fn a_stranger_gets_403_and_a_trunk_with_credentials_is_challenged_r29() {
    let mut settings = test_settings();
    settings.trunks = crate::sip::trunk::TrunkPolicy::new(vec![crate::sip::trunk::Trunk {
        name: "carrier".into(),
        allow: vec!["10.0.0.0/8".parse().unwrap()],
        credentials: None,
    }]);
    let mut rig = Rig::with(settings.clone());
    rig.deliver(TRUNK, &invite("t1", "c", "z9hG4bK-t1", "", SDP));
    assert_eq!(rig.statuses(), vec![403]);
    assert_eq!(rig.switch.active_calls(), 0);
    assert!(rig.store.is_empty(), "no work order for a refused stranger");

    settings.trunks = crate::sip::trunk::TrunkPolicy::new(vec![crate::sip::trunk::Trunk {
        name: "carrier".into(),
        allow: vec!["10.0.0.0/8".parse().unwrap()],
        credentials: Some(crate::sip::trunk::TrunkCredentials {
            username: "carrier".into(),
            password: "secret".into(),
        }),
    }]);
    let mut rig = Rig::with(settings);
    rig.deliver(TRUNK, &invite("t2", "c", "z9hG4bK-t2", "", SDP));
    let challenge = rig.take_sent().pop().unwrap().1;
    assert_eq!(status_of(&challenge), Some(401));
    let parsed = parse_challenge(header(&challenge, "WWW-Authenticate").unwrap()).unwrap();
    let answer = answer_challenge(
        &parsed,
        "INVITE",
        "sip:8890@127.0.0.1:5060",
        "carrier",
        "secret",
        ("c", 1),
    )
    .unwrap();
    rig.deliver(
        TRUNK,
        &invite(
            "t2",
            "c",
            "z9hG4bK-t3",
            &format!("Authorization: {answer}\n"),
            SDP,
        )
        .replace("CSeq: 1 INVITE", "CSeq: 2 INVITE"),
    );
    assert_eq!(
        rig.statuses(),
        vec![100, 180],
        "the right credentials admit the trunk"
    );
    let wrong = answer.replace("response=\"", "response=\"0");
    rig.deliver(
        TRUNK,
        &invite(
            "t4",
            "c",
            "z9hG4bK-t4",
            &format!("Authorization: {wrong}\n"),
            SDP,
        ),
    );
    assert_eq!(rig.statuses(), vec![403], "wrong credentials");
}

#[test]
fn session_timers_are_negotiated_and_a_peer_that_stops_refreshing_is_hung_up_rfc4028() {
    let mut rig = Rig::new();
    // Below our Min-SE: 422 with Min-SE.
    rig.deliver(
        TRUNK,
        &invite(
            "s0",
            "c",
            "z9hG4bK-s0",
            "Supported: timer\nSession-Expires: 30\n",
            SDP,
        ),
    );
    let sent = rig.take_sent();
    assert_eq!(status_of(&sent[0].1), Some(422));
    assert_eq!(header(&sent[0].1, "Min-SE"), Some("90"));
    // 90 s, the caller refreshes.
    rig.deliver(
        TRUNK,
        &invite(
            "s1",
            "c",
            "z9hG4bK-s1",
            "Supported: timer\nSession-Expires: 90;refresher=uac\n",
            SDP,
        ),
    );
    rig.advance(Duration::from_secs(2));
    let ok = rig
        .take_sent()
        .into_iter()
        .find(|(_, t)| status_of(t) == Some(200))
        .unwrap()
        .1;
    assert_eq!(header(&ok, "Session-Expires"), Some("90;refresher=uac"));
    assert_eq!(header(&ok, "Require"), Some("timer"));
    let tag = to_tag(&ok);
    rig.deliver(
        TRUNK,
        &in_dialog("ACK", "s1", "c", &tag, 1, "z9hG4bK-s1-ack"),
    );
    // A refresh by UPDATE at 45 s restarts the timer.
    rig.advance(Duration::from_secs(45));
    let update = in_dialog("UPDATE", "s1", "c", &tag, 2, "z9hG4bK-s1-up").replace(
        "Content-Length: 0",
        "Supported: timer\nSession-Expires: 90;refresher=uac\nContent-Length: 0",
    );
    rig.deliver(TRUNK, &update);
    let ok = rig
        .take_sent()
        .into_iter()
        .find(|(_, t)| status_of(t) == Some(200))
        .expect("refresh answered")
        .1;
    assert_eq!(header(&ok, "Session-Expires"), Some("90;refresher=uac"));
    rig.advance(Duration::from_secs(59));
    assert!(
        !rig.take_sent().iter().any(|(_, t)| t.starts_with("BYE ")),
        "refreshed: still up"
    );
    // No more refreshes: BYE before the session expires (90 - 30 s after the refresh).
    rig.advance(Duration::from_secs(2));
    assert!(
        rig.take_sent().iter().any(|(_, t)| t.starts_with("BYE ")),
        "not refreshed: hung up"
    );
}

/// The agent's BYE for a leg: From the phone's tag, To ours.
fn agent_bye(invite: &str, cseq: u32) -> String {
    format!(
        "BYE sip:hotline@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP {PHONE};branch=z9hG4bK-agent-bye-{cseq}-{}
Max-Forwards: 70
From: <sip:1001@127.0.0.1>;tag=phone-leg
To: {}
Call-ID: {}
CSeq: {cseq} BYE
Content-Length: 0

",
        header(invite, "Call-ID").unwrap().len(),
        header(invite, "From").unwrap(),
        header(invite, "Call-ID").unwrap()
    )
}

#[test]
fn one_agent_takes_waiting_callers_one_after_the_other() {
    let mut rig = Rig::new();
    register_agent(&mut rig);
    answered_call(&mut rig, "w1");
    let first = rig.started_legs()[0];
    rig.prompt_finished(first);
    let invites: Vec<String> = rig
        .take_sent()
        .into_iter()
        .filter(|(to, t)| *to == addr(PHONE) && t.starts_with("INVITE "))
        .map(|(_, t)| t)
        .collect();
    answered_call(&mut rig, "w2");
    let second = rig.started_legs()[1];
    rig.prompt_finished(second);
    assert!(
        !rig.take_sent()
            .iter()
            .any(|(_, t)| t.starts_with("INVITE ")),
        "one agent, one offer at a time"
    );
    assert_eq!(invites.len(), 1);
    rig.deliver(PHONE, &phone_response(&invites[0], "200 OK", true));
    assert!(rig.take_sent().iter().any(|(_, t)| t.starts_with("ACK ")));
    rig.deliver(PHONE, &agent_bye(&invites[0], 2));
    let sent = rig.take_sent();
    assert!(
        sent.iter()
            .any(|(to, t)| *to == addr(PHONE) && status_of(t) == Some(200)),
        "{sent:?}"
    );
    let next = sent
        .iter()
        .find(|(to, t)| *to == addr(PHONE) && t.starts_with("INVITE "))
        .expect("the second caller is offered at once")
        .1
        .clone();
    rig.deliver(PHONE, &phone_response(&next, "200 OK", true));
    assert!(
        rig.take_sent().iter().any(|(_, t)| t.starts_with("ACK ")),
        "second 2xx ACKed"
    );
    rig.deliver(PHONE, &agent_bye(&next, 2));
    let sent = rig.take_sent();
    assert!(
        sent.iter()
            .any(|(to, t)| *to == addr(PHONE) && status_of(t) == Some(200)),
        "second BYE answered: {sent:?}"
    );
}

/// Issue 11: a reload installs a new dialplan for new calls; a call in progress goes on
/// with the version (and the prompts) it started with.
#[test]
fn a_reload_changes_the_dialplan_of_new_calls_only() {
    let mut rig = Rig::new();
    answered_call(&mut rig, "old");
    let old_leg = rig.started_legs()[0];
    let plays_on = |rig: &Rig, leg: LegId| -> Vec<String> {
        rig.media
            .iter()
            .filter_map(|order| match order {
                MediaOrder::Play {
                    leg: on, prompt, ..
                } if *on == leg => Some(prompt.name().to_owned()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(plays_on(&rig, old_leg), ["greeting.wav"]);

    // The new version greets with another prompt and queues at priority 5.
    let mut flow = test_flow();
    let mut prompts = (*flow.prompts).clone();
    prompts.insert(Arc::new(Prompt::named("welcome-v2.wav", vec![500; 4000])));
    flow.prompts = Arc::new(prompts);
    flow.plan = crate::ivr::BuiltinFlow {
        greeting: "welcome-v2.wav",
        hold_music: "hold-music.wav",
        queue: "general",
        announcement: Duration::from_secs(20),
    }
    .compile(|name| flow.prompts.contains(name))
    .expect("new flow");
    let agents = crate::config::agents::AgentsConfig::parse(Path::new("agents.toml"), AGENTS)
        .expect("agents");
    let reply = rig.command(Command::Reload(Box::new(Reload { agents, flow })));
    assert_eq!(reply, Reply::Reload(Ok(2)));
    assert_eq!(rig.switch.dialplan_version(), 2);

    // The call in progress finishes its greeting and queues on version 1.
    rig.prompt_finished(old_leg);
    assert_eq!(plays_on(&rig, old_leg), ["greeting.wav", "queue-wait.wav"]);

    answered_call(&mut rig, "new");
    let new_leg = *rig.started_legs().last().unwrap();
    assert_ne!(new_leg, old_leg);
    assert_eq!(plays_on(&rig, new_leg), ["welcome-v2.wav"]);
}

/// R11, R15: a call the dialplan marks urgent and a complaint about the hotline reach the
/// wallboard as they happen, the caller masked, the queue and agent filled in as the
/// call moves on.
#[test]
fn urgent_calls_reach_the_wallboard_as_they_happen_r11() {
    let mut flow = test_flow();
    flow.plan = crate::ivr::compile(
        "urgent.toml",
        r#"
start = "mark"
[[nodes]]
name = "mark"
kind = "set"
urgent = true
hotline_complaint = true
next = "queue"

[[nodes]]
name = "queue"
kind = "queue"
queue = "general"
priority = 9
prompts = ["queue-wait.wav"]
hold_music = "hold-music.wav"
overflow = "bye"

[[nodes]]
name = "bye"
kind = "hangup"
prompts = ["closing.wav"]
"#,
        &["general".to_owned()],
        |name| flow.prompts.contains(name),
    )
    .expect("plan");
    let mut rig = Rig::with_flow(test_settings(), flow);
    answered_call(&mut rig, "urgent");
    let today_since = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    let Reply::Board { live, .. } = rig.command(Command::Board { today_since }) else {
        panic!("a board");
    };
    let kinds: Vec<LiveKind> = live.iter().map(|fact| fact.kind).collect();
    assert_eq!(kinds, [LiveKind::Urgent, LiveKind::HotlineComplaint]);
    for fact in &live {
        assert_eq!(
            fact.caller,
            crate::privacy::mask_number("13800001111"),
            "R12: masked"
        );
        assert_ne!(fact.caller, "13800001111");
        assert_eq!(fact.queue.as_deref(), Some("general"));
        assert_eq!(fact.agent, None);
    }
    assert!(rig.store.iter().any(|w| matches!(
        w,
        StoreWrite::Ivr {
            write: crate::ivr::WorkOrderWrite::Urgent,
            ..
        }
    )));
    // A board asked for a later day does not show them.
    let tomorrow = today_since + chrono::Duration::days(1);
    let Reply::Board { live, .. } = rig.command(Command::Board {
        today_since: tomorrow,
    }) else {
        panic!("a board");
    };
    assert!(live.is_empty());
}

/// R20: the wallboard's callback figures come from the switch's own scheduler, with the
/// board (the same figures the callback metrics publish); none while callbacks are off.
#[test]
fn the_board_carries_the_callback_figures_once_callbacks_are_on_r20() {
    use crate::callbacks::{NewTask, Reason, SchedulerStats, Window};

    let mut rig = Rig::new();
    let today_since = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    let Reply::Board { callbacks, .. } = rig.command(Command::Board { today_since }) else {
        panic!("a board");
    };
    assert_eq!(callbacks, None, "callbacks are off: nothing made up");

    rig.switch.enable_callbacks(
        rig.now,
        crate::config::callbacks::CallbacksConfig::default(),
        Vec::new(),
        None,
    );
    // The rig's wall clock starts at 08:00.
    let hm = |h, m| Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0).unwrap();
    let windows = [
        (hm(7, 0), hm(7, 30)),  // overdue by 30 min (and due)
        (hm(7, 50), hm(9, 0)),  // due
        (hm(10, 0), hm(11, 0)), // pending, not yet due
    ];
    for (n, (earliest, latest)) in windows.into_iter().enumerate() {
        let new = NewTask {
            work_order: crate::workorder::WorkOrderId::from_parts(hm(7, 0), n as u64 + 1),
            number: "13800001111".parse().unwrap(),
            reason: Reason::Manual,
            window: Some(Window::new(earliest, latest).unwrap()),
            owner: None,
            queue: "general".into(),
        };
        let reply = rig.command(Command::Callbacks(CallbackCommand::Create(new)));
        assert!(
            matches!(&reply, Reply::Callbacks(CallbackReply::Task(task)) if task.is_ok()),
            "{reply:?}"
        );
    }
    let Reply::Board { callbacks, .. } = rig.command(Command::Board { today_since }) else {
        panic!("a board");
    };
    let expected = SchedulerStats {
        pending: 3,
        due: 2,
        overdue: 1,
        dialing: 0,
        connected: 0,
        oldest_overdue: Some(Duration::from_secs(30 * 60)),
    };
    assert_eq!(callbacks, Some(expected));

    // Ten minutes on, the same task is ten minutes later still.
    rig.advance(Duration::from_secs(10 * 60));
    let Reply::Board { callbacks, .. } = rig.command(Command::Board { today_since }) else {
        panic!("a board");
    };
    let later = callbacks.expect("callbacks are on");
    assert_eq!(later.oldest_overdue, Some(Duration::from_secs(40 * 60)));
    assert_eq!((later.due, later.overdue), (2, 1));
}
