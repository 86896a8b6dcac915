//! A simulated trunk caller (pure): one scripted call into the hotline, in real SIP text.
//!
//! The script says when to dial, with an SDP offer or without one (late offer), and what
//! to do once the call is up: hang up after a while, put the hotline on hold by
//! re-INVITE and take it off again, refresh the session (RFC 4028) or stop refreshing.
//! It may instead cancel the call at a chosen time; a 2xx that crosses the CANCEL is
//! acknowledged and hung up. Whatever the script does not do — answering the hotline's
//! BYE, re-INVITE or UPDATE — the [`UserAgent`] answers as the RFC says.
//!
//! The call's [`CallRecord`] says what the caller saw, for assertions.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::ua::{
    CallIndex, CallRecord, CallState, Direction, RefreshMethod, UaConfig, UaEvent, UserAgent,
};
use super::{Agenda, Node, SimRng, Transmit};
use crate::sip::TransportKind;

/// What a trunk caller does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerScript {
    /// The caller's number (From user).
    pub number: String,
    /// The number dialled (Request-URI user).
    pub dial: String,
    pub transport: TransportKind,
    /// When the INVITE goes out, after the caller is created.
    pub dial_after: Duration,
    /// INVITE without SDP: the offer must come in the 2xx, our answer goes in the ACK.
    pub late_offer: bool,
    /// CANCEL this long after the INVITE, if no final answer came by then.
    pub cancel_after: Option<Duration>,
    /// BYE this long after the call is answered.
    pub hangup_after: Option<Duration>,
    /// Hold (`a=sendonly`) this long after the answer.
    pub hold_after: Option<Duration>,
    /// Unhold (`a=sendrecv`) this long after the answer.
    pub unhold_after: Option<Duration>,
    /// Ask for an RFC 4028 session timer of this many seconds, as refresher.
    pub session_expires: Option<u32>,
    /// Refresh when we are the refresher; false: go silent (the hotline must hang up).
    pub refresh: bool,
    pub refresh_method: RefreshMethod,
}

impl CallerScript {
    /// A call that dials at once with an offer and waits for the hotline to hang up.
    pub fn new(number: &str, dial: &str) -> Self {
        CallerScript {
            number: number.to_string(),
            dial: dial.to_string(),
            transport: TransportKind::Udp,
            dial_after: Duration::ZERO,
            late_offer: false,
            cancel_after: None,
            hangup_after: None,
            hold_after: None,
            unhold_after: None,
            session_expires: None,
            refresh: true,
            refresh_method: RefreshMethod::Reinvite,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Dial,
    Cancel,
    Hangup,
    Hold(Direction),
}

/// One scripted trunk caller.
#[derive(Debug)]
pub struct SimCaller {
    ua: UserAgent,
    target: SocketAddr,
    script: CallerScript,
    call: Option<CallIndex>,
    agenda: Agenda<Action>,
}

impl SimCaller {
    /// A caller at `addr` that will call `target` (the hotline) as `script` says,
    /// counting from `now`.
    pub fn new(
        now: Instant,
        addr: SocketAddr,
        target: SocketAddr,
        script: CallerScript,
        rng: SimRng,
    ) -> Self {
        let mut config = UaConfig::new(addr, &script.number);
        config.transport = script.transport;
        config.session_expires = script.session_expires;
        config.refresh = script.refresh;
        config.refresh_method = script.refresh_method;
        let mut agenda = Agenda::default();
        agenda.plan(now + script.dial_after, Action::Dial);
        SimCaller {
            ua: UserAgent::new(config, rng),
            target,
            script,
            call: None,
            agenda,
        }
    }

    pub fn script(&self) -> &CallerScript {
        &self.script
    }

    /// What the call saw; `None` before the INVITE went out.
    pub fn record(&self) -> Option<&CallRecord> {
        self.call.map(|call| self.ua.record(call))
    }

    pub fn state(&self) -> Option<CallState> {
        self.call.map(|call| self.ua.state(call))
    }

    /// The call has been placed and is over.
    pub fn is_finished(&self) -> bool {
        self.state().is_some_and(CallState::is_over)
    }

    /// Finished, and every transaction and timer of the caller has run out.
    pub fn is_settled(&self) -> bool {
        self.is_finished()
            && self.ua.live_transactions() == 0
            && self.ua.armed_call_timers() == 0
            && self.agenda.is_empty()
    }

    pub fn user_agent(&self) -> &UserAgent {
        &self.ua
    }

    /// Stops (or resumes) refreshing the session from now on.
    pub fn set_refresh(&mut self, refresh: bool) {
        self.ua.set_refresh(refresh);
    }

    fn react(&mut self, now: Instant) {
        while let Some(event) = self.ua.poll_event() {
            match event {
                UaEvent::Answered { call } if Some(call) == self.call => {
                    self.agenda.drop_where(|a| *a == Action::Cancel);
                    if let Some(after) = self.script.hold_after {
                        self.agenda
                            .plan(now + after, Action::Hold(Direction::SendOnly));
                    }
                    if let Some(after) = self.script.unhold_after {
                        self.agenda
                            .plan(now + after, Action::Hold(Direction::SendRecv));
                    }
                    if let Some(after) = self.script.hangup_after {
                        self.agenda.plan(now + after, Action::Hangup);
                    }
                }
                UaEvent::Failed { .. } | UaEvent::Ended { .. } => {
                    // Nothing planned can apply to a call that is over.
                    self.agenda.drop_where(|_| true);
                }
                _ => {}
            }
        }
    }
}

impl Node for SimCaller {
    fn addr(&self) -> SocketAddr {
        self.ua.addr()
    }

    fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        transport: TransportKind,
        bytes: &[u8],
    ) {
        self.ua.handle_datagram(now, from, transport, bytes);
        self.react(now);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.ua.poll_transmit()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        [self.ua.poll_timeout(), self.agenda.next_at()]
            .into_iter()
            .flatten()
            .min()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.ua.handle_timeout(now);
        self.react(now);
        while let Some(action) = self.agenda.pop_due(now) {
            match (action, self.call) {
                (Action::Dial, None) => {
                    let call =
                        self.ua
                            .invite(now, self.target, &self.script.dial, self.script.late_offer);
                    self.call = Some(call);
                    if let Some(after) = self.script.cancel_after {
                        self.agenda.plan(now + after, Action::Cancel);
                    }
                }
                (Action::Cancel, Some(call)) => self.ua.cancel(now, call),
                (Action::Hangup, Some(call)) => self.ua.bye(now, call),
                (Action::Hold(direction), Some(call)) => self.ua.reinvite(now, call, direction),
                _ => {}
            }
            self.react(now);
        }
    }
}
