//! Simulated-clock tests of the transaction layer: every timer schedule is checked to
//! the millisecond, and every scenario ends with no live transaction and no armed timer.

use super::*;
use proptest::prelude::*;

const PEER: &str = "192.0.2.10:5060";

fn peer() -> SocketAddr {
    PEER.parse().expect("test address")
}

fn key(branch: &str, method: KeyMethod) -> TransactionKey {
    TransactionKey::rfc3261(branch, method, PEER)
}

fn invite(branch: &str) -> TransactionKey {
    key(branch, KeyMethod::Invite)
}

fn other(branch: &str, name: &str) -> TransactionKey {
    key(branch, KeyMethod::Other(name.to_owned()))
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

/// The transaction layer plus a clock that only moves when a test says so.
struct Sim {
    txs: Transactions,
    start: Instant,
    now: Instant,
}

impl Sim {
    fn new() -> Self {
        let start = Instant::now();
        Sim {
            txs: Transactions::new(TimerConfig::default()),
            start,
            now: start,
        }
    }

    fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Moves the clock to `offset` after the start, firing each timer at its exact
    /// deadline; returns when each transmit happened and what it carried.
    fn advance_to(&mut self, offset: Duration) -> Vec<(Duration, Bytes)> {
        let target = self.start + offset;
        let mut sent = Vec::new();
        while let Some(deadline) = self.txs.poll_timeout() {
            if deadline > target {
                break;
            }
            self.now = self.now.max(deadline);
            self.txs.handle_timeout(self.now);
            while let Some(transmit) = self.txs.poll_transmit() {
                sent.push((self.elapsed(), transmit.payload));
            }
        }
        self.now = target;
        sent
    }

    fn request(&mut self, key: &TransactionKey, reliability: Reliability) -> RequestDisposition {
        self.txs
            .handle_request(self.now, key.clone(), false, peer(), reliability)
    }

    fn ack(&mut self, key: &TransactionKey) -> RequestDisposition {
        self.txs
            .handle_request(self.now, key.clone(), true, peer(), Reliability::Unreliable)
    }

    fn respond(&mut self, key: &TransactionKey, status: u16, payload: &'static str) {
        self.txs
            .send_response(
                self.now,
                key,
                status,
                Bytes::from_static(payload.as_bytes()),
            )
            .expect("response accepted");
    }

    fn transmits(&mut self) -> Vec<Bytes> {
        std::iter::from_fn(|| self.txs.poll_transmit())
            .map(|transmit| transmit.payload)
            .collect()
    }

    fn events(&mut self) -> Vec<TransactionEvent> {
        std::iter::from_fn(|| self.txs.poll_event()).collect()
    }

    fn assert_clean(&self) {
        assert_eq!(self.txs.len(), 0, "live transactions left");
        assert_eq!(self.txs.armed_timers(), 0, "armed timers left");
        assert_eq!(self.txs.poll_timeout(), None);
    }
}

fn offsets(sent: &[(Duration, Bytes)]) -> Vec<Duration> {
    sent.iter().map(|(at, _)| *at).collect()
}

fn terminated(key: &TransactionKey) -> TransactionEvent {
    TransactionEvent::Terminated { key: key.clone() }
}

// ---- INVITE server: 2xx (R29, RFC 3261 §13.3.1.4, RFC 6026) ----

#[test]
fn r29_invite_2xx_retransmits_on_t1_doubling_to_t2_until_ack() {
    let mut sim = Sim::new();
    let call = invite("z9hG4bK-call");
    assert_eq!(
        sim.request(&call, Reliability::Unreliable),
        RequestDisposition::New
    );
    sim.respond(&call, 200, "200 OK");
    assert_eq!(sim.transmits(), vec![Bytes::from_static(b"200 OK")]);

    let sent = sim.advance_to(ms(20_000));
    assert_eq!(
        offsets(&sent),
        [500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500].map(ms)
    );
    assert!(sent.iter().all(|(_, payload)| payload == "200 OK"));

    assert_eq!(sim.ack(&call), RequestDisposition::AckFor2xx);
    assert_eq!(
        sim.events(),
        vec![TransactionEvent::AckReceived { key: call.clone() }]
    );
    assert_eq!(sim.ack(&call), RequestDisposition::Retransmission);
    assert_eq!(sim.events(), vec![], "AckReceived is emitted once");

    assert_eq!(
        sim.advance_to(ms(31_999)),
        vec![],
        "the ACK stopped the 2xx"
    );
    assert_eq!(sim.txs.len(), 1, "Accepted absorbs ACKs until timer L");
    sim.advance_to(ms(32_000));
    assert_eq!(sim.events(), vec![terminated(&call)]);
    sim.assert_clean();
}

#[test]
fn r29_invite_2xx_without_ack_times_out_at_64_t1() {
    let mut sim = Sim::new();
    let call = invite("z9hG4bK-noack");
    sim.request(&call, Reliability::Unreliable);
    sim.respond(&call, 200, "200 OK");
    sim.transmits();

    let sent = sim.advance_to(ms(31_999));
    assert_eq!(
        offsets(&sent),
        [
            500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500
        ]
        .map(ms)
    );
    assert_eq!(sim.events(), vec![]);
    assert_eq!(sim.advance_to(ms(32_000)), vec![]);
    assert_eq!(
        sim.events(),
        vec![
            TransactionEvent::ServerTimedOut { key: call.clone() },
            terminated(&call)
        ]
    );
    sim.assert_clean();
    assert_eq!(
        sim.ack(&call),
        RequestDisposition::StrayAck,
        "a late ACK finds nothing"
    );
}

#[test]
fn r29_invite_2xx_over_tcp_is_sent_once() {
    let mut sim = Sim::new();
    let acked = invite("z9hG4bK-tcp-acked");
    let unacked = invite("z9hG4bK-tcp-unacked");
    sim.request(&acked, Reliability::Reliable);
    sim.request(&unacked, Reliability::Reliable);
    sim.respond(&acked, 200, "200 A");
    sim.respond(&unacked, 200, "200 B");
    assert_eq!(sim.transmits().len(), 2);

    sim.advance_to(secs(10));
    assert_eq!(sim.ack(&acked), RequestDisposition::AckFor2xx);
    assert_eq!(sim.advance_to(secs(40)), vec![], "TCP never retransmits");
    assert_eq!(
        sim.events(),
        vec![
            TransactionEvent::AckReceived { key: acked.clone() },
            terminated(&acked),
            TransactionEvent::ServerTimedOut {
                key: unacked.clone()
            },
            terminated(&unacked),
        ]
    );
    sim.assert_clean();
}

#[test]
fn r29_ack_with_a_new_branch_is_matched_through_the_dialog() {
    let mut sim = Sim::new();
    let call = invite("z9hG4bK-invite");
    sim.request(&call, Reliability::Unreliable);
    sim.respond(&call, 200, "200 OK");
    // §17.1.1.3: the ACK for a 2xx is its own transaction with a fresh branch.
    assert_eq!(
        sim.ack(&invite("z9hG4bK-ack")),
        RequestDisposition::StrayAck
    );
    assert_eq!(
        sim.txs.handle_2xx_ack(sim.now, &call),
        RequestDisposition::AckFor2xx
    );
    assert_eq!(
        sim.txs.handle_2xx_ack(sim.now, &call),
        RequestDisposition::Retransmission
    );
    sim.transmits();
    assert_eq!(sim.advance_to(secs(31)), vec![]);
    sim.advance_to(secs(32));
    sim.assert_clean();
}

// ---- INVITE server: 300-699 (timers G, H, I) ----

#[test]
fn r29_invite_486_retransmits_by_timer_g_until_ack_then_timer_i_ends_it() {
    let mut sim = Sim::new();
    let call = invite("z9hG4bK-busy");
    sim.request(&call, Reliability::Unreliable);
    sim.respond(&call, 486, "486 Busy");
    assert_eq!(sim.transmits().len(), 1);

    let sent = sim.advance_to(ms(8_000));
    assert_eq!(offsets(&sent), [500, 1_500, 3_500, 7_500].map(ms));
    assert!(sent.iter().all(|(_, payload)| payload == "486 Busy"));

    assert_eq!(sim.ack(&call), RequestDisposition::AckForNon2xx);
    assert_eq!(
        sim.events(),
        vec![],
        "the ACK for a non-2xx stays in the layer"
    );
    assert_eq!(
        sim.request(&call, Reliability::Unreliable),
        RequestDisposition::Retransmission
    );
    assert_eq!(sim.ack(&call), RequestDisposition::AckForNon2xx);
    assert_eq!(
        sim.transmits(),
        Vec::<Bytes>::new(),
        "Confirmed sends nothing"
    );

    assert_eq!(sim.advance_to(ms(12_999)), vec![]);
    assert_eq!(sim.txs.len(), 1);
    sim.advance_to(ms(13_000));
    assert_eq!(
        sim.events(),
        vec![terminated(&call)],
        "timer I = T4 after the ACK"
    );
    sim.assert_clean();
}

#[test]
fn r29_invite_487_without_ack_times_out_by_timer_h() {
    let mut sim = Sim::new();
    let call = invite("z9hG4bK-cancelled");
    sim.request(&call, Reliability::Unreliable);
    sim.respond(&call, 487, "487");
    sim.transmits();
    let sent = sim.advance_to(secs(32));
    assert_eq!(
        offsets(&sent),
        [
            500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500
        ]
        .map(ms)
    );
    assert_eq!(
        sim.events(),
        vec![
            TransactionEvent::ServerTimedOut { key: call.clone() },
            terminated(&call)
        ]
    );
    sim.assert_clean();
}

#[test]
fn r29_invite_non2xx_over_tcp_ends_at_the_ack() {
    let mut sim = Sim::new();
    let call = invite("z9hG4bK-tcp-busy");
    sim.request(&call, Reliability::Reliable);
    sim.respond(&call, 486, "486");
    sim.transmits();
    assert_eq!(sim.advance_to(secs(5)), vec![], "no timer G over TCP");
    assert_eq!(sim.ack(&call), RequestDisposition::AckForNon2xx);
    assert_eq!(
        sim.events(),
        vec![terminated(&call)],
        "timer I is zero over TCP"
    );
    sim.assert_clean();
}

// ---- INVITE server: retransmitted INVITEs ----

#[test]
fn r29_same_invite_twice_makes_one_call_and_resends_the_last_provisional() {
    let mut sim = Sim::new();
    let call = invite("z9hG4bK-dup");
    assert_eq!(
        sim.request(&call, Reliability::Unreliable),
        RequestDisposition::New
    );
    assert_eq!(
        sim.request(&call, Reliability::Unreliable),
        RequestDisposition::Retransmission
    );
    assert_eq!(
        sim.transmits(),
        Vec::<Bytes>::new(),
        "nothing to resend yet"
    );

    sim.respond(&call, 100, "100 Trying");
    sim.respond(&call, 180, "180 Ringing");
    assert_eq!(sim.transmits().len(), 2);
    assert_eq!(
        sim.request(&call, Reliability::Unreliable),
        RequestDisposition::Retransmission
    );
    assert_eq!(sim.transmits(), vec![Bytes::from_static(b"180 Ringing")]);
    assert_eq!(sim.txs.len(), 1);
    assert_eq!(
        sim.advance_to(secs(60)),
        vec![],
        "provisionals are not retransmitted"
    );
    assert_eq!(
        sim.txs.len(),
        1,
        "Proceeding waits for the engine's final answer"
    );
}

#[test]
fn r29_retransmitted_invite_after_2xx_resends_the_2xx_until_acked() {
    let mut sim = Sim::new();
    let call = invite("z9hG4bK-lost2xx");
    sim.request(&call, Reliability::Unreliable);
    sim.respond(&call, 180, "180");
    sim.respond(&call, 200, "200 OK");
    sim.transmits();
    assert_eq!(
        sim.request(&call, Reliability::Unreliable),
        RequestDisposition::Retransmission
    );
    assert_eq!(sim.transmits(), vec![Bytes::from_static(b"200 OK")]);
    sim.ack(&call);
    assert_eq!(
        sim.request(&call, Reliability::Unreliable),
        RequestDisposition::Retransmission
    );
    assert_eq!(sim.transmits(), Vec::<Bytes>::new());
}

#[test]
fn r29_retransmitted_invite_after_486_resends_the_486() {
    let mut sim = Sim::new();
    let call = invite("z9hG4bK-lost486");
    sim.request(&call, Reliability::Unreliable);
    sim.respond(&call, 486, "486");
    sim.transmits();
    sim.request(&call, Reliability::Unreliable);
    assert_eq!(sim.transmits(), vec![Bytes::from_static(b"486")]);
}

// ---- CANCEL (RFC 3261 §9.2) ----

#[test]
fn r29_cancel_while_proceeding_targets_the_invite() {
    let mut sim = Sim::new();
    let call = invite("z9hG4bK-ring");
    let cancel = key("z9hG4bK-ring", KeyMethod::Cancel);
    sim.request(&call, Reliability::Unreliable);
    sim.respond(&call, 180, "180");

    assert_eq!(
        sim.request(&cancel, Reliability::Unreliable),
        RequestDisposition::CancelTarget {
            invite_key: call.clone(),
            invite_final_sent: false
        }
    );
    sim.respond(&cancel, 200, "200 CANCEL");
    sim.respond(&call, 487, "487");
    sim.transmits();
    assert_eq!(
        sim.request(&cancel, Reliability::Unreliable),
        RequestDisposition::Retransmission
    );
    assert_eq!(sim.transmits(), vec![Bytes::from_static(b"200 CANCEL")]);
    assert_eq!(sim.ack(&call), RequestDisposition::AckForNon2xx);
    sim.advance_to(secs(40));
    sim.assert_clean();
}

#[test]
fn r29_cancel_after_the_2xx_leaves_the_invite_answered() {
    let mut sim = Sim::new();
    let call = invite("z9hG4bK-race");
    let cancel = key("z9hG4bK-race", KeyMethod::Cancel);
    sim.request(&call, Reliability::Unreliable);
    sim.respond(&call, 200, "200 OK");
    assert_eq!(
        sim.request(&cancel, Reliability::Unreliable),
        RequestDisposition::CancelTarget {
            invite_key: call.clone(),
            invite_final_sent: true
        }
    );
    sim.respond(&cancel, 200, "200 CANCEL");
    assert_eq!(
        sim.txs
            .send_response(sim.now, &call, 487, Bytes::from_static(b"487")),
        Err(TransactionError::FinalResponseAlreadySent {
            branch: call.branch.clone()
        })
    );
}

#[test]
fn r29_cancel_for_an_unknown_invite_gets_no_match() {
    let mut sim = Sim::new();
    let cancel = key("z9hG4bK-nothing", KeyMethod::Cancel);
    assert_eq!(
        sim.request(&cancel, Reliability::Unreliable),
        RequestDisposition::CancelNoMatch
    );
    sim.respond(&cancel, 481, "481");
    assert_eq!(sim.transmits().len(), 1);
    sim.advance_to(secs(32));
    assert_eq!(sim.events(), vec![terminated(&cancel)]);
    sim.assert_clean();
}

// ---- non-INVITE server (timer J) ----

#[test]
fn r29_non_invite_server_absorbs_retransmissions_until_timer_j() {
    let mut sim = Sim::new();
    let options = other("z9hG4bK-options", "OPTIONS");
    assert_eq!(
        sim.request(&options, Reliability::Unreliable),
        RequestDisposition::New
    );
    assert_eq!(
        sim.request(&options, Reliability::Unreliable),
        RequestDisposition::Retransmission
    );
    assert_eq!(
        sim.transmits(),
        Vec::<Bytes>::new(),
        "Trying has nothing to resend"
    );
    sim.respond(&options, 200, "200 OPTIONS");
    assert_eq!(sim.transmits().len(), 1);

    sim.advance_to(secs(10));
    assert_eq!(
        sim.request(&options, Reliability::Unreliable),
        RequestDisposition::Retransmission
    );
    assert_eq!(sim.transmits(), vec![Bytes::from_static(b"200 OPTIONS")]);
    assert_eq!(
        sim.advance_to(ms(31_999)),
        vec![],
        "finals are resent only on request"
    );
    assert_eq!(sim.txs.len(), 1);
    sim.advance_to(secs(32));
    assert_eq!(sim.events(), vec![terminated(&options)]);
    sim.assert_clean();
}

#[test]
fn r29_non_invite_server_resends_its_provisional() {
    let mut sim = Sim::new();
    let bye = other("z9hG4bK-bye-in", "BYE");
    sim.request(&bye, Reliability::Unreliable);
    sim.respond(&bye, 100, "100");
    sim.request(&bye, Reliability::Unreliable);
    assert_eq!(
        sim.transmits(),
        [b"100", b"100"].map(|b| Bytes::from_static(b))
    );
}

#[test]
fn r29_non_invite_server_over_tcp_ends_with_its_final() {
    let mut sim = Sim::new();
    let bye = other("z9hG4bK-bye-tcp", "BYE");
    sim.request(&bye, Reliability::Reliable);
    sim.respond(&bye, 200, "200");
    assert_eq!(
        sim.events(),
        vec![terminated(&bye)],
        "timer J is zero over TCP"
    );
    sim.assert_clean();
}

// ---- non-INVITE client (timers E, F, K) ----

fn send_bye(sim: &mut Sim, branch: &str, reliability: Reliability) -> TransactionKey {
    let bye = TransactionKey::rfc3261(branch, KeyMethod::Other("BYE".into()), "198.51.100.1:5060");
    sim.txs
        .send_request(
            sim.now,
            bye.clone(),
            peer(),
            reliability,
            Bytes::from_static(b"BYE"),
        )
        .expect("new client transaction");
    assert_eq!(sim.transmits(), vec![Bytes::from_static(b"BYE")]);
    bye
}

#[test]
fn r29_bye_retransmits_by_timer_e_and_times_out_by_timer_f() {
    let mut sim = Sim::new();
    let bye = send_bye(&mut sim, "z9hG4bK-bye", Reliability::Unreliable);
    let sent = sim.advance_to(ms(31_999));
    assert_eq!(
        offsets(&sent),
        [
            500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500
        ]
        .map(ms)
    );
    assert!(sent.iter().all(|(_, payload)| payload == "BYE"));
    assert_eq!(sim.events(), vec![]);
    assert_eq!(sim.advance_to(secs(32)), vec![]);
    assert_eq!(
        sim.events(),
        vec![
            TransactionEvent::ClientTimedOut { key: bye.clone() },
            terminated(&bye)
        ]
    );
    sim.assert_clean();
}

#[test]
fn r29_bye_provisional_slows_timer_e_to_t2_and_the_final_stops_it() {
    let mut sim = Sim::new();
    let bye = send_bye(&mut sim, "z9hG4bK-bye2", Reliability::Unreliable);
    assert_eq!(offsets(&sim.advance_to(ms(1_000))), [ms(500)]);

    assert!(
        sim.txs
            .handle_response(sim.now, &bye, 100, Bytes::from_static(b"100"))
    );
    // The E armed before the 100 still fires at 1.5 s; from then on every T2.
    assert_eq!(
        offsets(&sim.advance_to(ms(10_000))),
        [1_500, 5_500, 9_500].map(ms)
    );

    assert!(
        sim.txs
            .handle_response(sim.now, &bye, 200, Bytes::from_static(b"200"))
    );
    assert_eq!(
        sim.events(),
        vec![
            TransactionEvent::ClientResponse {
                key: bye.clone(),
                status: 100,
                payload: Bytes::from_static(b"100")
            },
            TransactionEvent::ClientResponse {
                key: bye.clone(),
                status: 200,
                payload: Bytes::from_static(b"200")
            },
        ]
    );
    assert!(
        sim.txs
            .handle_response(sim.now, &bye, 200, Bytes::from_static(b"200")),
        "a retransmitted final still matches"
    );
    assert_eq!(sim.events(), vec![], "and is absorbed");
    assert_eq!(sim.advance_to(ms(14_999)), vec![]);
    assert_eq!(sim.txs.len(), 1);
    sim.advance_to(ms(15_000));
    assert_eq!(sim.events(), vec![terminated(&bye)], "timer K = T4");
    sim.assert_clean();
}

#[test]
fn r29_bye_over_tcp_is_sent_once_and_ends_with_the_final() {
    let mut sim = Sim::new();
    let bye = send_bye(&mut sim, "z9hG4bK-bye-tcp", Reliability::Reliable);
    assert_eq!(sim.advance_to(secs(2)), vec![]);
    assert!(
        sim.txs
            .handle_response(sim.now, &bye, 200, Bytes::from_static(b"200"))
    );
    assert_eq!(sim.events().last(), Some(&terminated(&bye)));
    sim.assert_clean();
}

#[test]
fn r29_stray_responses_match_nothing() {
    let mut sim = Sim::new();
    let bye = send_bye(&mut sim, "z9hG4bK-mine", Reliability::Unreliable);
    let payload = Bytes::from_static(b"200");
    let stranger = other("z9hG4bK-someone-else", "BYE");
    assert!(
        !sim.txs
            .handle_response(sim.now, &stranger, 200, payload.clone())
    );
    let wrong_method = TransactionKey {
        method: KeyMethod::Cancel,
        ..bye.clone()
    };
    assert!(
        !sim.txs
            .handle_response(sim.now, &wrong_method, 200, payload.clone())
    );
    assert!(!sim.txs.handle_response(sim.now, &bye, 700, payload.clone()));
    let server = invite("z9hG4bK-server");
    sim.request(&server, Reliability::Unreliable);
    assert!(!sim.txs.handle_response(sim.now, &server, 200, payload));
    assert_eq!(sim.events(), vec![]);
}

// ---- INVITE client (timers A, B, D, M) ----

fn send_invite(sim: &mut Sim, branch: &str) -> TransactionKey {
    let call = TransactionKey::rfc3261(branch, KeyMethod::Invite, "198.51.100.1:5060");
    sim.txs
        .send_request(
            sim.now,
            call.clone(),
            peer(),
            Reliability::Unreliable,
            Bytes::from_static(b"INVITE"),
        )
        .expect("new client transaction");
    sim.transmits();
    call
}

#[test]
fn r29_invite_client_timer_a_doubles_without_cap_and_timer_b_gives_up() {
    let mut sim = Sim::new();
    let call = send_invite(&mut sim, "z9hG4bK-out");
    let sent = sim.advance_to(secs(32));
    assert_eq!(
        offsets(&sent),
        [500, 1_500, 3_500, 7_500, 15_500, 31_500].map(ms)
    );
    assert_eq!(
        sim.events(),
        vec![
            TransactionEvent::ClientTimedOut { key: call.clone() },
            terminated(&call)
        ]
    );
    sim.assert_clean();
}

#[test]
fn r29_invite_client_non2xx_is_acked_by_the_engine_and_absorbed_by_timer_d() {
    let mut sim = Sim::new();
    let call = send_invite(&mut sim, "z9hG4bK-out-busy");
    assert!(
        sim.txs
            .handle_response(sim.now, &call, 180, Bytes::from_static(b"180"))
    );
    assert_eq!(
        sim.advance_to(secs(10)),
        vec![],
        "a provisional stops timer A"
    );
    assert_eq!(
        sim.txs.send_ack(&call, Bytes::from_static(b"ACK")),
        Err(TransactionError::NotAwaitingAck {
            branch: call.branch.clone()
        })
    );
    assert!(
        sim.txs
            .handle_response(sim.now, &call, 486, Bytes::from_static(b"486"))
    );
    sim.txs
        .send_ack(&call, Bytes::from_static(b"ACK"))
        .expect("awaiting the ACK");
    assert_eq!(sim.transmits(), vec![Bytes::from_static(b"ACK")]);
    assert!(
        sim.txs
            .handle_response(sim.now, &call, 486, Bytes::from_static(b"486"))
    );
    assert_eq!(
        sim.transmits(),
        vec![Bytes::from_static(b"ACK")],
        "re-ACK a retransmitted final"
    );
    let statuses: Vec<u16> = sim
        .events()
        .into_iter()
        .filter_map(|event| match event {
            TransactionEvent::ClientResponse { status, .. } => Some(status),
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses,
        [180, 486],
        "the retransmitted 486 is not passed up"
    );
    sim.advance_to(secs(42));
    assert_eq!(sim.events(), vec![terminated(&call)]);
    sim.assert_clean();
}

#[test]
fn r29_invite_client_passes_every_2xx_up_until_timer_m() {
    let mut sim = Sim::new();
    let call = send_invite(&mut sim, "z9hG4bK-out-ok");
    for _ in 0..2 {
        assert!(
            sim.txs
                .handle_response(sim.now, &call, 200, Bytes::from_static(b"200"))
        );
    }
    let passed_up = sim
        .events()
        .iter()
        .filter(|event| matches!(event, TransactionEvent::ClientResponse { status: 200, .. }))
        .count();
    assert_eq!(passed_up, 2, "the engine re-ACKs each 2xx");
    assert_eq!(sim.advance_to(secs(32)), vec![]);
    assert_eq!(sim.events(), vec![terminated(&call)]);
    sim.assert_clean();
}

// ---- keys, errors, scale ----

#[test]
fn r29_a_branch_reused_by_another_call_is_a_new_transaction() {
    let key_for = |call_id: &str| {
        TransactionKey::for_request(
            KeyMethod::from_name("BYE"),
            Some("z9hG4bK-reused"),
            "192.0.2.10:5060",
            call_id,
            "fromtag",
            2,
            "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-reused",
        )
    };
    let mut sim = Sim::new();
    assert_eq!(
        sim.request(&key_for("call-1"), Reliability::Unreliable),
        RequestDisposition::New
    );
    sim.respond(&key_for("call-1"), 200, "200 for call 1");
    assert_eq!(
        sim.request(&key_for("call-1"), Reliability::Unreliable),
        RequestDisposition::Retransmission
    );
    assert_eq!(
        sim.request(&key_for("call-2"), Reliability::Unreliable),
        RequestDisposition::New,
        "the same branch in another call is another transaction"
    );
}

#[test]
fn r29_rfc2543_keys_match_invite_ack_and_cancel() {
    let top_via = "SIP/2.0/UDP 192.0.2.10:5060";
    let key_for = |method: &str, branch: Option<&str>| {
        TransactionKey::for_request(
            KeyMethod::from_name(method),
            branch,
            "192.0.2.10:5060",
            "call-1@host",
            "fromtag",
            1,
            top_via,
        )
    };
    let call = key_for("INVITE", Some("old-style-branch"));
    assert!(!call.is_rfc3261());
    assert_eq!(key_for("ACK", None), call);
    assert!(key_for("INVITE", Some("z9hG4bK-x")).is_rfc3261());

    let mut sim = Sim::new();
    sim.request(&call, Reliability::Unreliable);
    sim.respond(&call, 486, "486");
    assert_eq!(
        sim.ack(&key_for("ACK", None)),
        RequestDisposition::AckForNon2xx
    );
    // §9.2: a CANCEL from an RFC 2543 peer matches by the same fields as its INVITE.
    let cancel = TransactionKey {
        method: KeyMethod::Cancel,
        ..key_for("INVITE", None)
    };
    assert_eq!(
        sim.request(&cancel, Reliability::Unreliable),
        RequestDisposition::CancelTarget {
            invite_key: call,
            invite_final_sent: true
        }
    );
}

#[test]
fn r29_sent_by_host_case_does_not_split_a_transaction() {
    let upper = TransactionKey::rfc3261("z9hG4bK-a", KeyMethod::Invite, "PBX.Example.org:5060");
    let lower = TransactionKey::rfc3261("z9hG4bK-a", KeyMethod::Invite, "pbx.example.org:5060");
    assert_eq!(upper, lower);
    assert_eq!(
        KeyMethod::from(&rsipstack::sip::Method::Ack),
        KeyMethod::Invite
    );
    assert_eq!(
        KeyMethod::from(&rsipstack::sip::Method::Bye),
        KeyMethod::Other("BYE".into())
    );
}

#[test]
fn engine_misuse_is_reported_not_panicked() {
    let mut sim = Sim::new();
    let call = invite("z9hG4bK-misuse");
    let payload = Bytes::from_static(b"x");
    assert_eq!(
        sim.txs.send_response(sim.now, &call, 200, payload.clone()),
        Err(TransactionError::UnknownTransaction {
            branch: call.branch.clone()
        })
    );
    sim.request(&call, Reliability::Unreliable);
    for status in [0, 99, 700] {
        assert_eq!(
            sim.txs
                .send_response(sim.now, &call, status, payload.clone()),
            Err(TransactionError::InvalidStatus(status))
        );
    }
    let bye = send_bye(&mut sim, "z9hG4bK-twice", Reliability::Unreliable);
    assert_eq!(
        sim.txs.send_request(
            sim.now,
            bye.clone(),
            peer(),
            Reliability::Unreliable,
            payload.clone()
        ),
        Err(TransactionError::DuplicateTransaction {
            branch: bye.branch.clone()
        })
    );
    assert_eq!(
        sim.txs.send_response(sim.now, &bye, 200, payload),
        Err(TransactionError::UnknownTransaction {
            branch: bye.branch.clone()
        }),
        "a client transaction cannot be answered"
    );
}

#[test]
fn zero_t1_cannot_spin_the_timer_loop() {
    let start = Instant::now();
    let mut txs = Transactions::new(TimerConfig {
        t1: Duration::ZERO,
        t2: Duration::ZERO,
        t4: Duration::ZERO,
    });
    let bye = other("z9hG4bK-zero", "BYE");
    txs.send_request(
        start,
        bye,
        peer(),
        Reliability::Unreliable,
        Bytes::from_static(b"BYE"),
    )
    .expect("new client transaction");
    txs.handle_timeout(start + ms(1));
    assert!(
        txs.poll_timeout()
            .is_some_and(|deadline| deadline > start + ms(1))
    );
}

#[test]
fn r4_thousands_of_transactions_share_one_deadline_queue_and_all_clean_up() {
    let mut sim = Sim::new();
    for n in 0..2_000u64 {
        sim.now = sim.start + ms(n);
        let call = invite(&format!("z9hG4bK-{n}"));
        sim.request(&call, Reliability::Unreliable);
        sim.respond(&call, if n % 2 == 0 { 200 } else { 486 }, "final");
        if n % 3 == 2 {
            sim.ack(&call);
        }
    }
    assert_eq!(sim.txs.len(), 2_000);
    assert_eq!(
        sim.txs.poll_timeout(),
        Some(sim.start + ms(500)),
        "the earliest deadline is the first transaction's first retransmission"
    );
    sim.advance_to(ms(2_000 + 32_000));
    sim.assert_clean();
}

// ---- random interleavings ----

#[derive(Clone, Debug)]
enum Step {
    Request {
        branch: u8,
        method: u8,
        reliable: bool,
    },
    Ack {
        branch: u8,
    },
    Respond {
        branch: u8,
        method: u8,
        status: u16,
    },
    SendRequest {
        branch: u8,
        invite: bool,
        reliable: bool,
    },
    Response {
        branch: u8,
        invite: bool,
        status: u16,
    },
    SendAck {
        branch: u8,
    },
    Advance {
        millis: u64,
    },
}

const STATUSES: [u16; 7] = [100, 180, 200, 486, 487, 481, 700];

fn server_key(branch: u8, method: u8) -> TransactionKey {
    let method = match method {
        0 => KeyMethod::Invite,
        1 => KeyMethod::Cancel,
        _ => KeyMethod::Other("OPTIONS".into()),
    };
    key(&format!("z9hG4bK-{branch}"), method)
}

fn client_key(branch: u8, invite: bool) -> TransactionKey {
    let method = if invite {
        KeyMethod::Invite
    } else {
        KeyMethod::Other("BYE".into())
    };
    TransactionKey::rfc3261(&format!("z9hG4bK-{branch}"), method, "198.51.100.1:5060")
}

fn step() -> impl Strategy<Value = Step> {
    let status = prop::sample::select(STATUSES.to_vec());
    prop_oneof![
        (0..4u8, 0..3u8, any::<bool>()).prop_map(|(branch, method, reliable)| Step::Request {
            branch,
            method,
            reliable
        }),
        (0..4u8).prop_map(|branch| Step::Ack { branch }),
        (0..4u8, 0..3u8, status.clone()).prop_map(|(branch, method, status)| Step::Respond {
            branch,
            method,
            status
        }),
        (0..4u8, any::<bool>(), any::<bool>()).prop_map(|(branch, invite, reliable)| {
            Step::SendRequest {
                branch,
                invite,
                reliable,
            }
        }),
        (0..4u8, any::<bool>(), status).prop_map(|(branch, invite, status)| Step::Response {
            branch,
            invite,
            status
        }),
        (0..4u8).prop_map(|branch| Step::SendAck { branch }),
        (0..40_000u64).prop_map(|millis| Step::Advance { millis }),
    ]
}

fn reliability(reliable: bool) -> Reliability {
    if reliable {
        Reliability::Reliable
    } else {
        Reliability::Unreliable
    }
}

proptest! {
    #[test]
    fn r4_random_interleavings_never_panic_and_always_clean_up(steps in prop::collection::vec(step(), 0..60)) {
        let mut sim = Sim::new();
        let payload = Bytes::from_static(b"msg");
        for step in steps {
            match step {
                Step::Request { branch, method, reliable } => {
                    sim.request(&server_key(branch, method), reliability(reliable));
                }
                Step::Ack { branch } => {
                    sim.ack(&server_key(branch, 0));
                }
                Step::Respond { branch, method, status } => {
                    let _ = sim.txs.send_response(sim.now, &server_key(branch, method), status, payload.clone());
                }
                Step::SendRequest { branch, invite, reliable } => {
                    let _ = sim.txs.send_request(sim.now, client_key(branch, invite), peer(), reliability(reliable), payload.clone());
                }
                Step::Response { branch, invite, status } => {
                    sim.txs.handle_response(sim.now, &client_key(branch, invite), status, payload.clone());
                }
                Step::SendAck { branch } => {
                    let _ = sim.txs.send_ack(&client_key(branch, true), payload.clone());
                }
                Step::Advance { millis } => {
                    let target = sim.elapsed() + ms(millis);
                    sim.advance_to(target);
                    prop_assert!(sim.txs.poll_timeout().is_none_or(|deadline| deadline > sim.now));
                }
            }
            sim.transmits();
            sim.events();
            prop_assert!(sim.txs.armed_timers() <= 2 * sim.txs.len(), "no transaction runs more than two timers");
        }
        // The engine always answers what it was asked and the network always ends a
        // ringing INVITE; after that, nothing may outlive 64·T1 + T4.
        for branch in 0..4 {
            for method in 0..3 {
                let _ = sim.txs.send_response(sim.now, &server_key(branch, method), 500, payload.clone());
            }
            sim.txs.handle_response(sim.now, &client_key(branch, true), 487, payload.clone());
        }
        let quiet = sim.elapsed() + ms(32_000 + 5_000 + 1);
        sim.advance_to(quiet);
        prop_assert_eq!(sim.txs.len(), 0);
        prop_assert_eq!(sim.txs.armed_timers(), 0);
    }
}
