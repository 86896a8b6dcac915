//! The harness tested on itself: a simulated caller calls a simulated phone (playing the
//! UAS) through the simulated network, clean and lossy, in simulated time only.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use super::ua::{Direction, EndReason, RefreshMethod, Side};
use super::*;
use crate::sip::digest::{AuthOutcome, Credential, DigestAuthenticator};
use crate::sip::inbound::{Inbound, Received, classify};
use crate::sip::message::make_header;

const CALLER: u8 = 2;
const PHONE: u8 = 3;

struct Duo {
    stage: Stage,
    caller: SimCaller,
    phone: SimPhone,
}

impl Duo {
    fn new(seed: u64, link: LinkConfig, caller: CallerScript, phone: PhoneScript) -> Self {
        let epoch = Instant::now();
        let mut rng = SimRng::new(seed);
        let network = Network::new(rng.fork(1), epoch, link);
        let (caller_addr, phone_addr) = (loopback(CALLER, 5060), loopback(PHONE, 5060));
        Duo {
            stage: Stage::new(epoch, network),
            caller: SimCaller::new(epoch, caller_addr, phone_addr, caller, rng.fork(2)),
            phone: SimPhone::new(epoch, phone_addr, caller_addr, phone, rng.fork(3)),
        }
    }

    fn run_for(&mut self, span: Duration) {
        let mut nodes: [&mut dyn Node; 2] = [&mut self.caller, &mut self.phone];
        if let Err(e) = self.stage.run_for(&mut nodes, span) {
            panic!("{e}\n{}", self.stage.network.trace());
        }
    }

    fn caller(&self) -> &CallRecord {
        self.caller.record().expect("the caller dialled")
    }

    fn phone_call(&self) -> &CallRecord {
        self.phone
            .received()
            .next()
            .expect("the phone got the call")
            .0
    }

    /// Both peers saw nothing wrong and every transaction and timer has run out.
    fn assert_settled(&self) {
        let trace = self.stage.network.trace();
        assert!(
            self.caller.user_agent().errors().is_empty(),
            "caller errors {:?}\n{trace}",
            self.caller.user_agent().errors()
        );
        assert!(
            self.phone.user_agent().errors().is_empty(),
            "phone errors {:?}\n{trace}",
            self.phone.user_agent().errors()
        );
        assert!(self.caller.is_settled(), "caller not settled\n{trace}");
        assert!(self.phone.is_settled(), "phone not settled\n{trace}");
    }
}

fn answering_phone(after: Duration) -> PhoneScript {
    PhoneScript::callee("1001", AnswerPolicy::After(after))
}

fn hanging_up_caller(after: Duration) -> CallerScript {
    CallerScript {
        hangup_after: Some(after),
        ..CallerScript::new("0612345678", "8890")
    }
}

#[test]
fn a_call_rings_is_answered_and_hung_up_by_the_caller() {
    let mut duo = Duo::new(
        1,
        LinkConfig::perfect(),
        hanging_up_caller(Duration::from_secs(5)),
        answering_phone(Duration::from_secs(2)),
    );
    duo.run_for(Duration::from_secs(60));
    let caller = duo.caller();
    assert_eq!(caller.provisional, vec![100, 180]);
    assert_eq!(caller.final_status, Some(200));
    let answered = caller.answered_at.expect("answered") - caller.invited_at.unwrap();
    assert!(answered >= Duration::from_secs(2) && answered < Duration::from_millis(2100));
    assert_eq!(caller.ended_by, Some(Side::Local));
    assert_eq!(caller.end_reason, Some(EndReason::Bye));
    assert_eq!(caller.bye_status, Some(200));
    assert!(caller.codec.is_some());
    let phone = duo.phone_call();
    assert_eq!(phone.final_status, Some(200));
    assert!(phone.answered_at.is_some());
    assert_eq!(phone.ended_by, Some(Side::Remote));
    assert!(phone.bye_received);
    assert_eq!(duo.stage.network.counters().lost, 0);
    duo.assert_settled();
}

#[test]
fn calls_complete_and_every_transaction_ends_under_20_percent_loss_duplication_and_reordering() {
    let (mut retransmitted, mut lost_or_duplicated) = (0, 0);
    for seed in 0..200 {
        let mut duo = Duo::new(
            seed,
            LinkConfig::lossy(0.2),
            hanging_up_caller(Duration::from_secs(5)),
            answering_phone(Duration::from_secs(1)),
        );
        duo.run_for(Duration::from_secs(120));
        let trace = duo.stage.network.trace().to_string();
        let caller = duo.caller();
        assert_eq!(caller.final_status, Some(200), "seed {seed}\n{trace}");
        assert_eq!(
            caller.end_reason,
            Some(EndReason::Bye),
            "seed {seed}\n{trace}"
        );
        // Retransmissions and duplicates were absorbed: one call, one 180 reported.
        assert_eq!(duo.phone.received().count(), 1, "seed {seed}\n{trace}");
        assert!(caller.provisional.iter().all(|s| [100, 180].contains(s)));
        let phone = duo.phone_call();
        assert_eq!(phone.ended_by, Some(Side::Remote), "seed {seed}\n{trace}");
        duo.assert_settled();
        let counters = duo.stage.network.counters();
        lost_or_duplicated += counters.lost + counters.duplicated;
        retransmitted += counters.sent;
    }
    // 200 clean calls take 7 datagrams each; loss made the peers retransmit.
    assert!(
        lost_or_duplicated > 200,
        "{lost_or_duplicated} lost or duplicated"
    );
    assert!(retransmitted > 200 * 7, "{retransmitted} datagrams");
}

#[test]
fn a_reliable_link_delivers_in_order_and_loses_nothing() {
    let mut link = LinkConfig::lossy(0.5);
    link.reliable = true;
    for seed in 0..20 {
        let mut duo = Duo::new(
            seed,
            link,
            hanging_up_caller(Duration::from_secs(3)),
            answering_phone(Duration::from_secs(1)),
        );
        duo.run_for(Duration::from_secs(60));
        let counters = duo.stage.network.counters();
        assert_eq!((counters.lost, counters.duplicated), (0, 0));
        // Exactly the clean exchange: INVITE 100 180 200 ACK BYE 200.
        assert_eq!(
            counters.sent,
            7,
            "seed {seed}\n{}",
            duo.stage.network.trace()
        );
        duo.assert_settled();
    }
}

#[test]
fn tcp_peers_send_nothing_twice_even_over_a_lossy_link() {
    let mut caller = hanging_up_caller(Duration::from_secs(3));
    caller.transport = TransportKind::Tcp;
    let mut phone = answering_phone(Duration::from_secs(1));
    phone.transport = TransportKind::Tcp;
    let mut duo = Duo::new(4, LinkConfig::lossy(0.5), caller, phone);
    duo.run_for(Duration::from_secs(60));
    assert_eq!(duo.stage.network.counters().sent, 7);
    assert_eq!(duo.caller().end_reason, Some(EndReason::Bye));
    let trace = duo.stage.network.trace().to_string();
    assert!(!trace.contains("Lost"), "{trace}");
    duo.assert_settled();
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let run = |seed| {
        let mut duo = Duo::new(
            seed,
            LinkConfig::lossy(0.2),
            hanging_up_caller(Duration::from_secs(5)),
            answering_phone(Duration::from_secs(1)),
        );
        duo.run_for(Duration::from_secs(60));
        duo.stage.network.trace().to_string()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

#[test]
fn a_cancel_before_the_answer_ends_the_call_with_487() {
    let caller = CallerScript {
        cancel_after: Some(Duration::from_secs(3)),
        ..CallerScript::new("0612345678", "8890")
    };
    let mut duo = Duo::new(
        2,
        LinkConfig::perfect(),
        caller,
        PhoneScript::callee("1001", AnswerPolicy::Never),
    );
    duo.run_for(Duration::from_secs(60));
    let caller = duo.caller();
    assert!(caller.cancel_sent);
    assert_eq!(caller.cancel_status, Some(200));
    assert_eq!(caller.final_status, Some(487));
    assert_eq!(caller.end_reason, Some(EndReason::Cancelled));
    assert_eq!(caller.answered_at, None);
    let phone = duo.phone_call();
    assert_eq!(phone.final_status, Some(487));
    assert_eq!(phone.end_reason, Some(EndReason::Cancelled));
    duo.assert_settled();
}

#[test]
fn a_cancel_crossing_the_200_is_acknowledged_and_hung_up() {
    // INVITE arrives at 1 ms, the phone answers 2 s later, the 200 arrives at 2.002 s;
    // the CANCEL leaves at 2.0015 s and reaches the phone after its 200 went out.
    let caller = CallerScript {
        cancel_after: Some(Duration::from_micros(2_001_500)),
        ..CallerScript::new("0612345678", "8890")
    };
    let mut duo = Duo::new(
        3,
        LinkConfig::perfect(),
        caller,
        answering_phone(Duration::from_secs(2)),
    );
    duo.run_for(Duration::from_secs(60));
    let caller = duo.caller();
    assert!(caller.cancel_sent);
    assert_eq!(caller.cancel_status, Some(200), "the INVITE was alive");
    assert_eq!(caller.final_status, Some(200), "the 200 won");
    assert_eq!(caller.ended_by, Some(Side::Local));
    assert_eq!(caller.bye_status, Some(200));
    let phone = duo.phone_call();
    assert_eq!(phone.final_status, Some(200));
    assert_eq!(phone.ended_by, Some(Side::Remote));
    duo.assert_settled();
}

#[test]
fn a_bye_crossing_a_bye_ends_the_call_on_both_sides() {
    // The phone's answer clock starts at the ACK, 1 ms after the caller's.
    let mut phone = answering_phone(Duration::from_secs(1));
    phone.hangup_after = Some(Duration::from_millis(4_999));
    let mut duo = Duo::new(
        5,
        LinkConfig::perfect(),
        hanging_up_caller(Duration::from_secs(5)),
        phone,
    );
    duo.run_for(Duration::from_secs(60));
    for record in [duo.caller(), duo.phone_call()] {
        assert!(record.bye_sent && record.bye_received, "{record:?}");
        assert_eq!(record.ended_by, Some(Side::Local));
        assert_eq!(record.bye_status, Some(200));
    }
    duo.assert_settled();
}

#[test]
fn a_refusal_is_acknowledged_and_recorded() {
    for status in [486, 603] {
        let mut duo = Duo::new(
            6,
            LinkConfig::perfect(),
            CallerScript::new("0612345678", "8890"),
            PhoneScript::callee(
                "1001",
                AnswerPolicy::Refuse {
                    status,
                    after: Duration::from_secs(1),
                },
            ),
        );
        duo.run_for(Duration::from_secs(60));
        assert_eq!(duo.caller().final_status, Some(status));
        assert_eq!(duo.caller().end_reason, Some(EndReason::Rejected(status)));
        assert_eq!(duo.phone_call().final_status, Some(status));
        duo.assert_settled();
    }
}

#[test]
fn a_late_offer_gets_the_offer_in_the_200_and_answers_in_the_ack() {
    let caller = CallerScript {
        late_offer: true,
        ..hanging_up_caller(Duration::from_secs(3))
    };
    let mut duo = Duo::new(
        7,
        LinkConfig::perfect(),
        caller,
        answering_phone(Duration::from_secs(1)),
    );
    duo.run_for(Duration::from_secs(60));
    assert!(duo.caller().codec.is_some());
    assert!(
        duo.phone_call().codec.is_some(),
        "the ACK carried the answer"
    );
    let trace = duo.stage.network.trace().to_string();
    assert!(trace.contains("INVITE"), "{trace}");
    duo.assert_settled();
}

#[test]
fn hold_and_unhold_by_re_invite_are_answered_with_the_mirrored_direction() {
    let caller = CallerScript {
        hold_after: Some(Duration::from_secs(2)),
        unhold_after: Some(Duration::from_secs(4)),
        ..hanging_up_caller(Duration::from_secs(6))
    };
    let mut duo = Duo::new(
        8,
        LinkConfig::lossy(0.1),
        caller,
        answering_phone(Duration::from_secs(1)),
    );
    duo.run_for(Duration::from_secs(90));
    let caller = duo.caller();
    assert_eq!(
        caller.reinvites_sent,
        vec![(Direction::SendOnly, 200), (Direction::SendRecv, 200)]
    );
    assert_eq!(
        caller.answer_directions,
        vec![Direction::RecvOnly, Direction::SendRecv]
    );
    assert_eq!(
        duo.phone_call().reinvites_received,
        vec![Direction::SendOnly, Direction::SendRecv]
    );
    duo.assert_settled();
}

#[test]
fn a_refreshing_caller_keeps_the_session_and_a_silent_one_is_hung_up() {
    for method in [RefreshMethod::Reinvite, RefreshMethod::Update] {
        let caller = CallerScript {
            session_expires: Some(90),
            refresh_method: method,
            ..hanging_up_caller(Duration::from_secs(200))
        };
        let mut duo = Duo::new(
            9,
            LinkConfig::perfect(),
            caller,
            answering_phone(Duration::from_secs(1)),
        );
        duo.run_for(Duration::from_secs(300));
        let caller = duo.caller();
        assert_eq!(caller.session, Some((Duration::from_secs(90), Side::Local)));
        assert_eq!(
            caller.refreshes_sent, 4,
            "every 45 s for 200 s ({method:?})"
        );
        assert_eq!(caller.end_reason, Some(EndReason::Bye));
        assert_eq!(caller.ended_by, Some(Side::Local));
        assert_eq!(duo.phone_call().refreshes_received, 4);
        duo.assert_settled();
    }

    let caller = CallerScript {
        session_expires: Some(90),
        refresh: false,
        ..hanging_up_caller(Duration::from_secs(200))
    };
    let mut duo = Duo::new(
        10,
        LinkConfig::perfect(),
        caller,
        answering_phone(Duration::from_secs(1)),
    );
    duo.run_for(Duration::from_secs(300));
    let caller = duo.caller();
    assert_eq!(caller.refreshes_sent, 0);
    assert_eq!(caller.ended_by, Some(Side::Remote));
    let phone = duo.phone_call();
    assert_eq!(phone.end_reason, Some(EndReason::SessionExpired));
    // RFC 4028 §10: BYE at 90 s less a third, counted from the 200 (the ACK came 2 ms
    // later).
    let lasted = phone.ended_at.unwrap() - phone.answered_at.unwrap();
    assert_eq!(lasted, Duration::from_millis(59_998));
    duo.assert_settled();
}

#[test]
fn an_unanswered_invite_times_out_after_64_t1() {
    let mut duo = Duo::new(
        11,
        LinkConfig::perfect(),
        CallerScript::new("0612345678", "8890"),
        answering_phone(Duration::from_secs(1)),
    );
    // Nobody listens at the phone's address: the caller calls into the void.
    let (caller_addr, void) = (duo.caller.addr(), loopback(9, 5060));
    duo.caller = SimCaller::new(
        duo.stage.now(),
        caller_addr,
        void,
        CallerScript::new("0612345678", "8890"),
        SimRng::new(11),
    );
    duo.run_for(Duration::from_secs(60));
    let caller = duo.caller();
    assert_eq!(caller.final_status, Some(408));
    assert_eq!(caller.end_reason, Some(EndReason::Timeout));
    // Timer A: INVITE at 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s.
    assert_eq!(duo.stage.network.counters().undeliverable, 7);
    assert!(duo.caller.is_settled());
}

// ---- registration against the crate's own digest authenticator --------------------

/// A registrar built from the crate's [`DigestAuthenticator`]: 401 without credentials,
/// 200 with the granted expiry when they verify, 403 otherwise. Enough to prove the
/// phone's digest answers; the switch's registrar replaces it in the whole-engine world.
struct DigestRegistrar {
    addr: SocketAddr,
    authenticator: DigestAuthenticator,
    passwords: HashMap<String, String>,
    max_expires: u32,
    out: Vec<Transmit>,
    registered: HashMap<String, u32>,
    invites_authenticated: Vec<String>,
}

impl DigestRegistrar {
    fn new(addr: SocketAddr) -> Self {
        DigestRegistrar {
            addr,
            authenticator: DigestAuthenticator::new(
                "hotline.example",
                [7; 32],
                Duration::from_secs(300),
            ),
            passwords: HashMap::from([("1001".to_string(), "s3cret".to_string())]),
            max_expires: 600,
            out: Vec::new(),
            registered: HashMap::new(),
            invites_authenticated: Vec::new(),
        }
    }
}

impl Node for DigestRegistrar {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn handle_datagram(
        &mut self,
        _now: Instant,
        from: SocketAddr,
        transport: TransportKind,
        bytes: &[u8],
    ) {
        let Received::Message(inbound) = classify(bytes, from, transport) else {
            panic!("the phone sent garbage");
        };
        let Inbound::Request {
            request, summary, ..
        } = *inbound
        else {
            return;
        };
        let method = summary.method.to_string();
        if method == "ACK" {
            return;
        }
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let passwords = self.passwords.clone();
        let outcome = self.authenticator.verify_request(wall, &request, |user| {
            passwords.get(user).cloned().map(Credential::Password)
        });
        let raw = String::from_utf8_lossy(bytes).into_owned();
        let (status, headers) = match outcome {
            AuthOutcome::Authenticated { username } if method == "REGISTER" => {
                let asked: u32 = super::ua::header(&raw, "Expires")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(3600);
                let granted = asked.min(self.max_expires);
                self.registered.insert(username, granted);
                let contact = summary.contact.clone().unwrap_or_default();
                (
                    200,
                    vec![make_header(
                        "Contact",
                        format!("<{contact}>;expires={granted}"),
                    )],
                )
            }
            AuthOutcome::Authenticated { username } => {
                self.invites_authenticated.push(username);
                (603, vec![])
            }
            AuthOutcome::Missing | AuthOutcome::Stale => (
                401,
                self.authenticator
                    .challenges(wall, false)
                    .into_iter()
                    .map(|c| make_header("WWW-Authenticate", c))
                    .collect(),
            ),
            AuthOutcome::Invalid(_) => (403, vec![]),
        };
        let response = super::ua::build_response(&request, status, Some("reg"), headers, None);
        self.out.push(Transmit {
            destination: from,
            transport,
            payload: Bytes::from(response.to_string()),
        });
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        (!self.out.is_empty()).then(|| self.out.remove(0))
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn handle_timeout(&mut self, _now: Instant) {}
}

#[test]
fn a_phone_registers_with_digest_refreshes_and_unregisters() {
    let epoch = Instant::now();
    let mut rng = SimRng::new(12);
    let mut stage = Stage::new(
        epoch,
        Network::new(rng.fork(1), epoch, LinkConfig::lossy(0.2)),
    );
    let mut registrar = DigestRegistrar::new(loopback(1, 5060));
    let mut script = PhoneScript::new("1001", "s3cret", "hotline.example");
    if let Some(register) = &mut script.register {
        register.unregister_after = Some(Duration::from_secs(1000));
    }
    script.dials = vec![(Duration::from_secs(10), "*21".to_string())];
    let mut phone = SimPhone::new(
        epoch,
        loopback(PHONE, 5060),
        registrar.addr,
        script,
        rng.fork(2),
    );
    {
        let mut nodes: [&mut dyn Node; 2] = [&mut registrar, &mut phone];
        stage.run_for(&mut nodes, Duration::from_secs(100)).unwrap();
    }
    let trace = stage.network.trace().to_string();
    assert!(phone.registration().registered, "{trace}");
    assert_eq!(phone.registration().granted, Some(Duration::from_secs(600)));
    assert_eq!(registrar.registered.get("1001"), Some(&600));
    // The feature code went out with digest on the INVITE, after one challenge.
    assert_eq!(registrar.invites_authenticated, vec!["1001".to_string()]);
    let (dialled, _) = phone.dialled().next().expect("dialled *21");
    assert_eq!(dialled.auth_retries, 1);
    assert_eq!(dialled.final_status, Some(603));
    {
        let mut nodes: [&mut dyn Node; 2] = [&mut registrar, &mut phone];
        stage
            .run_for(&mut nodes, Duration::from_secs(1000))
            .unwrap();
    }
    // Refreshed at 300, 600 and 900 s, then removed at 1000 s.
    assert!(!phone.registration().registered);
    assert!(
        phone.registration().successes >= 5,
        "{:?}",
        phone.registration()
    );
    assert!(phone.registration().failures.is_empty());
    assert!(phone.is_settled());
    assert!(
        phone.user_agent().errors().is_empty(),
        "{:?}",
        phone.user_agent().errors()
    );
}

// ---- the network on its own ---------------------------------------------------------

fn datagram(n: u32) -> Datagram {
    Datagram {
        from: loopback(CALLER, 5060),
        to: loopback(PHONE, 5060),
        transport: TransportKind::Udp,
        payload: Bytes::from(format!(
            "OPTIONS sip:x SIP/2.0\r\nCSeq: {n} OPTIONS\r\n\r\n"
        )),
    }
}

fn cseq_of(datagram: &Datagram) -> u32 {
    let text = String::from_utf8_lossy(&datagram.payload).into_owned();
    super::ua::header(&text, "CSeq")
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap()
}

fn deliver_all(network: &mut Network) -> Vec<u32> {
    let mut delivered = Vec::new();
    while let Some(at) = network.next_delivery() {
        delivered.extend(network.pop_due(at).map(|d| cseq_of(&d)));
    }
    delivered
}

#[test]
fn a_lossy_link_loses_duplicates_and_reorders_about_as_configured() {
    let epoch = Instant::now();
    let mut network = Network::new(SimRng::new(1), epoch, LinkConfig::lossy(0.2));
    for n in 0..10_000 {
        network.send(epoch + Duration::from_millis(u64::from(n)), datagram(n));
    }
    let delivered = deliver_all(&mut network);
    let counters = network.counters();
    assert!(
        (1_800..2_200).contains(&counters.duplicated),
        "{counters:?}"
    );
    // Each of ~12,000 copies is lost with probability 0.2.
    assert!((2_100..2_700).contains(&counters.lost), "{counters:?}");
    assert_eq!(
        delivered.len() as u64,
        10_000 + counters.duplicated - counters.lost
    );
    let overtaken = delivered.windows(2).filter(|w| w[1] < w[0]).count();
    assert!(overtaken > 100, "extra delay reorders: {overtaken}");
}

#[test]
fn equal_delivery_times_keep_the_send_order() {
    let epoch = Instant::now();
    let mut network = Network::new(SimRng::new(2), epoch, LinkConfig::perfect());
    for n in 0..50 {
        network.send(epoch, datagram(n));
    }
    assert_eq!(deliver_all(&mut network), (0..50).collect::<Vec<_>>());
}

#[test]
fn a_reliable_link_never_reorders_even_with_a_shorter_latency_later() {
    let epoch = Instant::now();
    let mut network = Network::new(SimRng::new(3), epoch, LinkConfig::perfect());
    let (a, b) = (loopback(CALLER, 5060), loopback(PHONE, 5060));
    let mut slow = LinkConfig::reliable();
    slow.latency = Duration::from_millis(100);
    network.set_link(a, b, slow);
    network.send(epoch, datagram(1));
    network.set_link(a, b, LinkConfig::reliable());
    network.send(epoch + Duration::from_millis(1), datagram(2));
    assert_eq!(deliver_all(&mut network), vec![1, 2]);
}

#[test]
fn the_trace_keeps_only_its_tail_and_counts_what_it_dropped() {
    let mut trace = Trace::new(3);
    for n in 0..10u64 {
        trace.note(Duration::from_secs(n), format!("note {n}"));
    }
    let text = trace.to_string();
    assert!(
        text.contains("note 9") && !text.contains("note 6"),
        "{text}"
    );
    assert_eq!(trace.forgotten(), 7);
    let epoch = Instant::now();
    let mut network = Network::new(SimRng::new(4), epoch, LinkConfig::perfect());
    for n in 0..(network::DEFAULT_TRACE_CAPACITY as u32) {
        network.send(epoch, datagram(n));
    }
    assert_eq!(
        network.trace().entries().count(),
        network::DEFAULT_TRACE_CAPACITY
    );
    assert_eq!(network.trace().forgotten(), 0);
    network.send(epoch, datagram(0));
    assert_eq!(
        network.trace().entries().count(),
        network::DEFAULT_TRACE_CAPACITY
    );
    assert_eq!(network.trace().forgotten(), 1);
}

#[test]
fn a_caller_number_is_not_printed_in_full_in_the_trace_r12() {
    let epoch = Instant::now();
    let mut network = Network::new(SimRng::new(5), epoch, LinkConfig::perfect());
    let mut invite = datagram(1);
    invite.payload =
        Bytes::from_static(b"INVITE sip:13800001111@127.0.0.1 SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n");
    network.send(epoch, invite);
    assert!(!network.trace().to_string().contains("13800001111"));
}
