//! The desk session under simulated time, with the test as the engine: it answers the
//! desk's REGISTERs, sends the INVITE the switch sends to an agent's phone, and reads
//! what the desk sends back, in real SIP text.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::desk::protocol::{ClientMessage, EndedBy, ErrorCode, ServerMessage};
use crate::switch::{AgentAction, AgentStatus};

const ENGINE: &str = "127.0.0.1:5060";
const DESK: &str = "127.0.0.1:41000";
const ENGINE_RTP: &str = "127.0.0.1:30000";

fn settings() -> DeskSettings {
    DeskSettings {
        agent: "1001".into(),
        password: "pw1001".into(),
        local_sip: DESK.parse().unwrap(),
        registrar: ENGINE.parse().unwrap(),
        domain: "127.0.0.1".into(),
        relay_port: 41002,
        heartbeat: Duration::from_secs(5),
        rtp_timeout: Duration::from_secs(10),
        register_expires: 300,
    }
}

fn status(state: &'static str) -> Option<AgentStatus> {
    Some(AgentStatus {
        id: "1001".into(),
        state,
        reason: None,
        seconds_in_state: Some(2),
        registered: true,
        calls_taken: 0,
    })
}

/// The engine's side of a desk: the session, a clock, and what came out of it.
struct Bench {
    desk: DeskSession,
    now: Instant,
    sent: Vec<String>,
    frames: Vec<ServerMessage>,
    actions: Vec<DeskAction>,
    invite: Option<String>,
}

impl Bench {
    fn new() -> Bench {
        let now = Instant::now();
        let mut bench = Bench {
            desk: DeskSession::new(settings(), now, 7),
            now,
            sent: Vec::new(),
            frames: Vec::new(),
            actions: Vec::new(),
            invite: None,
        };
        bench.drain();
        bench
    }

    fn drain(&mut self) {
        while let Some(t) = self.desk.poll_transmit() {
            assert_eq!(t.destination, ENGINE.parse::<SocketAddr>().unwrap());
            self.sent
                .push(String::from_utf8(t.payload.to_vec()).unwrap());
        }
        while let Some(frame) = self.desk.poll_frame() {
            self.frames.push(frame);
        }
        while let Some(action) = self.desk.poll_action() {
            self.actions.push(action);
        }
    }

    fn take_sent(&mut self) -> Vec<String> {
        std::mem::take(&mut self.sent)
    }

    fn take_frames(&mut self) -> Vec<ServerMessage> {
        std::mem::take(&mut self.frames)
    }

    fn take_actions(&mut self) -> Vec<DeskAction> {
        std::mem::take(&mut self.actions)
    }

    fn engine_sends(&mut self, text: &str) {
        self.desk
            .handle_datagram(self.now, ENGINE.parse().unwrap(), text.as_bytes());
        self.drain();
    }

    fn browser(&mut self, message: ClientMessage) {
        self.desk.handle_browser(self.now, message);
        self.drain();
    }

    /// Moves the clock in steps, firing the session's timers and (unless `silent`)
    /// the browser's audio every 20 ms and a heartbeat answer every 5 s.
    fn run_for(&mut self, duration: Duration, silent: bool) {
        let end = self.now + duration;
        let mut next_beat = self.now;
        while self.now < end {
            self.now += Duration::from_millis(20);
            if !silent {
                self.desk.browser_audio(self.now);
                if self.now >= next_beat {
                    next_beat = self.now + Duration::from_secs(5);
                    self.desk.handle_browser(self.now, ClientMessage::Heartbeat);
                }
            }
            if self.desk.poll_timeout().is_some_and(|at| at <= self.now) {
                self.desk.handle_timeout(self.now);
            }
            self.drain();
        }
    }

    /// Registered (a plain 200) and welcomed as available.
    fn registered() -> Bench {
        let mut bench = Bench::new();
        let register = bench.take_sent().pop().expect("a REGISTER at once");
        assert!(
            register.starts_with("REGISTER sip:127.0.0.1 SIP/2.0"),
            "{register}"
        );
        bench.engine_sends(&respond(
            &register,
            "200 OK",
            &["Contact: <sip:1001@127.0.0.1:41000>;expires=300"],
        ));
        bench.desk.handle_status(bench.now, status("available"));
        bench.drain();
        bench
    }

    /// The switch rings the desk: an INVITE with the work order, queue, wait and the
    /// masked caller, and an SDP offer.
    fn ring(&mut self, call_id: &str) {
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n",
            ENGINE_RTP.rsplit(':').next().unwrap()
        );
        let invite = format!(
            "INVITE sip:1001@127.0.0.1:41000 SIP/2.0\r\nVia: SIP/2.0/UDP {ENGINE};branch=z9hG4bK{call_id}\r\nMax-Forwards: 70\r\nFrom: \"138****5678\" <sip:hotline@127.0.0.1>;tag=sw{call_id}\r\nTo: <sip:1001@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:hotline@{ENGINE}>\r\nX-Hotline-Work-Order: WO-20261201-0001\r\nX-Hotline-Queue: general\r\nX-Hotline-Waited: 12\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        self.invite = Some(invite.clone());
        self.engine_sends(&invite);
    }

    /// The engine's ACK for the desk's 200.
    fn ack(&mut self, ok: &str) {
        let to = header(ok, "To");
        let call_id = header(ok, "Call-ID");
        let ack = format!(
            "ACK sip:1001@{DESK} SIP/2.0\r\nVia: SIP/2.0/UDP {ENGINE};branch=z9hG4bKack{call_id}\r\nMax-Forwards: 70\r\nFrom: \"138****5678\" <sip:hotline@127.0.0.1>;tag=sw{call_id}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
        );
        self.engine_sends(&ack);
    }

    /// A ringing, then answered and acknowledged call; returns the desk's 200.
    fn connected() -> (Bench, String) {
        let mut bench = Bench::registered();
        bench.ring("call-1");
        bench.take_sent();
        bench.take_frames();
        bench.browser(ClientMessage::Answer { call: "c1".into() });
        let ok = bench
            .take_sent()
            .into_iter()
            .find(|m| m.starts_with("SIP/2.0 200"))
            .expect("a 200 for the INVITE");
        bench.ack(&ok);
        (bench, ok)
    }
}

fn header(message: &str, name: &str) -> String {
    message
        .lines()
        .find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no {name} in {message}"))
}

/// A response to `request`, as a registrar or UAS would build it.
fn respond(request: &str, status: &str, extra: &[&str]) -> String {
    let mut text = format!("SIP/2.0 {status}\r\n");
    for name in ["Via", "From"] {
        text.push_str(&format!("{name}: {}\r\n", header(request, name)));
    }
    text.push_str(&format!("To: {};tag=engine\r\n", header(request, "To")));
    for name in ["Call-ID", "CSeq"] {
        text.push_str(&format!("{name}: {}\r\n", header(request, name)));
    }
    for line in extra {
        text.push_str(line);
        text.push_str("\r\n");
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    text
}

#[test]
fn the_desk_registers_at_once_and_welcomes_with_the_switchs_view_of_the_agent() {
    let mut bench = Bench::registered();
    let frames = bench.take_frames();
    assert_eq!(
        frames,
        vec![ServerMessage::Welcome {
            version: 1,
            agent: "1001".into(),
            heartbeat_seconds: 5,
            state: StateView {
                state: "available".into(),
                seconds: 2,
                reason: None,
            },
        }]
    );
    // The binding is refreshed at half the granted expiry.
    bench.run_for(Duration::from_secs(151), false);
    let mut registers: Vec<_> = bench
        .take_sent()
        .into_iter()
        .filter(|m| m.starts_with("REGISTER"))
        .collect();
    // Unanswered here, so UDP retransmits it (same CSeq): one refresh, not two.
    registers.dedup_by_key(|m| header(m, "CSeq"));
    assert_eq!(registers.len(), 1, "one refresh in 151 s");
    assert_eq!(header(&registers[0], "Expires"), "300");
}

#[test]
fn the_registrars_challenge_is_answered_with_the_agents_password() {
    let mut bench = Bench::new();
    let register = bench.take_sent().pop().unwrap();
    bench.engine_sends(&respond(
        &register,
        "401 Unauthorized",
        &[r#"WWW-Authenticate: Digest realm="hotline", nonce="abc123", qop="auth", algorithm=MD5"#],
    ));
    let again = bench.take_sent().pop().expect("REGISTER with credentials");
    let authorization = header(&again, "Authorization");
    assert!(
        authorization.contains(r#"username="1001""#),
        "{authorization}"
    );
    assert!(
        authorization.contains(r#"nonce="abc123""#),
        "{authorization}"
    );
    assert!(authorization.contains("qop=auth"), "{authorization}");
}

#[test]
fn a_refused_registration_is_a_fatal_error_and_the_socket_closes() {
    let mut bench = Bench::new();
    let register = bench.take_sent().pop().unwrap();
    bench.engine_sends(&respond(&register, "403 Forbidden", &[]));
    let frames = bench.take_frames();
    assert!(
        matches!(
            &frames[0],
            ServerMessage::Error {
                code: ErrorCode::RegistrationFailed,
                fatal: true,
                ..
            }
        ),
        "{frames:?}"
    );
    assert!(
        bench
            .take_actions()
            .contains(&DeskAction::Close { code: 4503 })
    );
}

#[test]
fn a_ringing_call_shows_its_work_order_queue_wait_and_only_a_masked_number_r12() {
    let mut bench = Bench::registered();
    bench.take_frames();
    bench.ring("call-1");
    let sent = bench.take_sent();
    assert!(
        sent.iter().any(|m| m.starts_with("SIP/2.0 180")),
        "{sent:?}"
    );
    assert_eq!(
        bench.take_frames(),
        vec![ServerMessage::Offered {
            call: "c1".into(),
            work_order: Some("WO-20261201-0001".into()),
            queue: Some("general".into()),
            waited_seconds: Some(12),
            caller: "138****5678".into(),
        }]
    );
    // The switch says the agent is reserved for the call: the desk shows ringing.
    bench.desk.handle_status(bench.now, status("reserved"));
    bench.drain();
    assert!(matches!(&bench.take_frames()[..], [ServerMessage::State(s)] if s.state == "ringing"));
}

#[test]
fn answering_sends_pcmu_at_the_relay_and_relays_to_the_engines_rtp() {
    let (mut bench, ok) = Bench::connected();
    assert!(ok.contains("m=audio 41002 RTP/AVP 0"), "{ok}");
    assert!(
        !ok.contains("PCMA"),
        "PCMU only, so the relay copies payloads: {ok}"
    );
    assert!(ok.contains("c=IN IP4 127.0.0.1"), "{ok}");
    assert!(
        bench
            .take_actions()
            .contains(&DeskAction::Relay(Some(ENGINE_RTP.parse().unwrap())))
    );
    assert_eq!(
        bench.take_frames(),
        vec![ServerMessage::Connected {
            call: "c1".into(),
            work_order: Some("WO-20261201-0001".into()),
        }]
    );
}

#[test]
fn hanging_up_a_connected_call_sends_bye_and_tells_the_desk() {
    let (mut bench, _) = Bench::connected();
    bench.take_frames();
    bench.take_actions();
    bench.browser(ClientMessage::Hangup { call: "c1".into() });
    assert!(bench.take_sent().iter().any(|m| m.starts_with("BYE ")));
    assert!(bench.take_actions().contains(&DeskAction::Relay(None)));
    assert_eq!(
        bench.take_frames(),
        vec![ServerMessage::Ended {
            call: "c1".into(),
            work_order: Some("WO-20261201-0001".into()),
            by: EndedBy::Agent,
        }]
    );
}

#[test]
fn the_callers_bye_ends_the_call_on_the_desk() {
    let (mut bench, ok) = Bench::connected();
    bench.take_frames();
    let call_id = header(&ok, "Call-ID");
    let to = header(&ok, "To");
    bench.engine_sends(&format!(
        "BYE sip:1001@{DESK} SIP/2.0\r\nVia: SIP/2.0/UDP {ENGINE};branch=z9hG4bKbye1\r\nMax-Forwards: 70\r\nFrom: \"138****5678\" <sip:hotline@127.0.0.1>;tag=sw{call_id}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    ));
    assert!(
        bench
            .take_sent()
            .iter()
            .any(|m| m.starts_with("SIP/2.0 200"))
    );
    assert!(matches!(
        &bench.take_frames()[..],
        [ServerMessage::Ended {
            by: EndedBy::Caller,
            ..
        }]
    ));
}

#[test]
fn declining_a_ringing_call_refuses_it_with_603_so_the_acd_moves_it_on() {
    let mut bench = Bench::registered();
    bench.ring("call-1");
    bench.take_sent();
    bench.take_frames();
    bench.browser(ClientMessage::Hangup { call: "c1".into() });
    assert!(
        bench
            .take_sent()
            .iter()
            .any(|m| m.starts_with("SIP/2.0 603"))
    );
    assert!(matches!(
        &bench.take_frames()[..],
        [ServerMessage::OfferWithdrawn { reason, .. }] if reason == "declined"
    ));
}

#[test]
fn a_second_call_while_one_rings_is_refused_busy() {
    let mut bench = Bench::registered();
    bench.ring("call-1");
    bench.take_sent();
    bench.ring("call-2");
    assert!(
        bench
            .take_sent()
            .iter()
            .any(|m| m.starts_with("SIP/2.0 486"))
    );
}

#[test]
fn a_desk_closed_while_a_call_rings_refuses_it_with_480_unregisters_and_logs_out() {
    let mut bench = Bench::registered();
    bench.ring("call-1");
    bench.take_sent();
    bench.take_actions();
    bench.desk.handle_browser_gone(bench.now, "socket closed");
    bench.drain();
    let sent = bench.take_sent();
    assert!(
        sent.iter().any(|m| m.starts_with("SIP/2.0 480")),
        "{sent:?}"
    );
    let unregister = sent
        .iter()
        .find(|m| m.starts_with("REGISTER"))
        .expect("an un-REGISTER");
    assert_eq!(header(unregister, "Expires"), "0");
    let actions = bench.take_actions();
    assert!(
        actions.contains(&DeskAction::Agent(AgentAction::Logout)),
        "{actions:?}"
    );
    assert!(
        !actions.iter().any(|a| matches!(a, DeskAction::Note { .. })),
        "nothing to note on a call the agent never took"
    );
    assert_eq!(bench.desk.lost(), Some("socket closed"));
    assert!(
        !bench.desk.is_finished(bench.now),
        "the 480 still needs its ACK"
    );
}

#[test]
fn a_browser_silent_during_a_call_ends_it_and_the_work_order_says_why() {
    let (mut bench, _) = Bench::connected();
    bench.take_actions();
    bench.take_frames();
    bench.take_sent();
    // Heartbeats keep coming (the page is alive) but no audio: a dead microphone path.
    let mut waited = Duration::ZERO;
    while bench.desk.lost().is_none() && waited < Duration::from_secs(30) {
        bench.now += Duration::from_secs(1);
        waited += Duration::from_secs(1);
        bench
            .desk
            .handle_browser(bench.now, ClientMessage::Heartbeat);
        bench.desk.handle_timeout(bench.now);
        bench.drain();
    }
    assert_eq!(waited, Duration::from_secs(10), "rtp_timeout is 10 s");
    assert!(bench.take_sent().iter().any(|m| m.starts_with("BYE ")));
    let actions = bench.take_actions();
    assert!(
        actions.iter().any(|a| matches!(a, DeskAction::Note { work_order, text }
            if work_order == "WO-20261201-0001" && text.contains("no audio from the browser for 10 s"))),
        "{actions:?}"
    );
    assert!(actions.contains(&DeskAction::Close { code: 4408 }));
    let frames = bench.take_frames();
    assert!(
        frames.iter().any(|f| matches!(
            f,
            ServerMessage::Ended {
                by: EndedBy::DeskLost,
                ..
            }
        )),
        "{frames:?}"
    );
}

#[test]
fn three_missed_heartbeats_lose_the_desk() {
    let mut bench = Bench::registered();
    bench.take_actions();
    bench.run_for(Duration::from_secs(14), true);
    assert!(
        bench.desk.lost().is_none(),
        "two beats missed is not yet dead"
    );
    bench.run_for(Duration::from_secs(2), true);
    assert!(bench.desk.lost().unwrap().contains("3 heartbeats missed"));
    assert!(
        bench
            .take_actions()
            .contains(&DeskAction::Close { code: 4408 })
    );
}

#[test]
fn a_heartbeat_every_interval_carries_the_state() {
    let mut bench = Bench::registered();
    bench.take_frames();
    bench.run_for(Duration::from_secs(5), false);
    let frames = bench.take_frames();
    assert!(frames.contains(&ServerMessage::Heartbeat), "{frames:?}");
    assert!(frames.iter().any(|f| matches!(f, ServerMessage::State(_))));
    assert!(bench.take_actions().contains(&DeskAction::QueryStatus));
}

#[test]
fn the_media_check_passes_when_the_browsers_audio_arrives_and_fails_when_it_does_not() {
    let mut bench = Bench::registered();
    bench.browser(ClientMessage::Offer { sdp: "v=0".into() });
    assert!(
        bench
            .take_actions()
            .contains(&DeskAction::AnswerOffer("v=0".into()))
    );
    bench
        .desk
        .offer_answered(bench.now, Ok("v=0 answer".into()));
    bench.drain();
    bench.take_frames();
    bench.run_for(Duration::from_millis(400), false);
    assert!(
        bench.take_frames().iter().any(
            |f| matches!(f, ServerMessage::MediaCheck { ok: true, packets } if *packets >= 10)
        )
    );

    let mut silent = Bench::registered();
    silent.browser(ClientMessage::Offer { sdp: "v=0".into() });
    silent
        .desk
        .offer_answered(silent.now, Ok("v=0 answer".into()));
    silent.drain();
    silent.take_frames();
    for _ in 0..9 {
        silent.now += Duration::from_secs(1);
        silent
            .desk
            .handle_browser(silent.now, ClientMessage::Heartbeat);
        silent.desk.handle_timeout(silent.now);
        silent.drain();
    }
    assert!(silent.take_frames().contains(&ServerMessage::MediaCheck {
        ok: false,
        packets: 0
    }));
    // A second offer is refused: one media session per desk.
    silent.browser(ClientMessage::Offer { sdp: "v=0".into() });
    assert!(matches!(
        &silent.take_frames()[..],
        [ServerMessage::Error {
            code: ErrorCode::NotNow,
            fatal: false,
            ..
        }]
    ));
}

#[test]
fn wrap_up_ends_on_submit_only_while_in_wrap_up() {
    let mut bench = Bench::registered();
    bench.take_actions();
    bench.browser(ClientMessage::WrapupDone {
        work_order: "WO-1".into(),
    });
    assert!(bench.take_actions().is_empty(), "available: nothing to end");
    bench.desk.handle_status(bench.now, status("wrap_up"));
    bench.browser(ClientMessage::WrapupDone {
        work_order: "WO-1".into(),
    });
    assert_eq!(
        bench.take_actions(),
        vec![DeskAction::Agent(AgentAction::Resume)]
    );
}

#[test]
fn commands_about_a_call_that_is_not_there_are_refused_but_the_desk_goes_on() {
    let mut bench = Bench::registered();
    bench.take_frames();
    bench.browser(ClientMessage::Answer { call: "c9".into() });
    bench.browser(ClientMessage::Hold {
        call: "c9".into(),
        held: true,
    });
    bench.browser(ClientMessage::Dtmf {
        call: "c9".into(),
        digit: 'x',
    });
    let frames = bench.take_frames();
    assert_eq!(frames.len(), 3, "{frames:?}");
    assert!(frames.iter().all(|f| matches!(
        f,
        ServerMessage::Error {
            code: ErrorCode::NotNow,
            fatal: false,
            ..
        }
    )));
    assert!(bench.desk.lost().is_none());
}

#[test]
fn hold_and_digits_go_to_the_engine_in_the_dialog() {
    let (mut bench, _) = Bench::connected();
    bench.take_sent();
    bench.take_frames();
    bench.browser(ClientMessage::Hold {
        call: "c1".into(),
        held: true,
    });
    let sent = bench.take_sent();
    let reinvite = sent
        .iter()
        .find(|m| m.starts_with("INVITE "))
        .expect("a re-INVITE");
    assert!(reinvite.contains("a=sendonly"), "{reinvite}");
    assert_eq!(
        bench.take_frames(),
        vec![ServerMessage::Held {
            call: "c1".into(),
            held: true
        }]
    );
    bench.browser(ClientMessage::Dtmf {
        call: "c1".into(),
        digit: '5',
    });
    let info = bench
        .take_sent()
        .into_iter()
        .find(|m| m.starts_with("INFO "))
        .expect("an INFO");
    assert_eq!(header(&info, "Content-Type"), "application/dtmf-relay");
    assert!(info.contains("Signal=5"), "{info}");
}

#[test]
fn an_agent_the_switch_does_not_know_is_refused() {
    let mut bench = Bench::new();
    bench.desk.handle_status(bench.now, None);
    bench.drain();
    assert!(matches!(
        &bench.take_frames()[..],
        [ServerMessage::Error {
            code: ErrorCode::Unauthenticated,
            fatal: true,
            ..
        }]
    ));
    assert!(
        bench
            .take_actions()
            .contains(&DeskAction::Close { code: 4401 })
    );
}
