//! A simulated agent softphone (pure), in real SIP text.
//!
//! It registers with digest (answering the 401 with
//! [`answer_challenge`](crate::sip::digest::answer_challenge), `qop=auth`), refreshes
//! its binding at half the granted expiry, and may un-register at a chosen time. Calls
//! to it ring (180) and are then answered with 200 and SDP after a chosen delay, never
//! answered (ringing until cancelled), or refused with 486/603; CANCEL is honoured with
//! 200 and 487. An answered call is hung up after a chosen time, or waits for the BYE.
//! It can also dial: feature codes such as `*21` (log in), with digest on the INVITE.
//!
//! A phone without registration plays any plain UAS: the destination of an outbound
//! call through a trunk, or the callee of a caller in the harness's own tests.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::ua::{
    CallIndex, CallRecord, CallState, Credentials, RegistrationRecord, Role, UaConfig, UaEvent,
    UserAgent,
};
use super::{Agenda, Node, SimRng, Transmit};
use crate::sip::TransportKind;

/// How the phone treats a call to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerPolicy {
    /// Ring, then answer with 200 and SDP after this delay.
    After(Duration),
    /// Ring until the call is cancelled.
    Never,
    /// Ring, then refuse with `status` (486 busy, 603 decline) after `after`.
    Refuse { status: u16, after: Duration },
}

/// Registration of the phone's address-of-record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterScript {
    /// The registrar's domain (Request-URI and the AOR's host).
    pub domain: String,
    /// Expiry asked for, in seconds.
    pub expires: u32,
    /// When the first REGISTER goes out, after the phone is created.
    pub register_after: Duration,
    /// Remove the binding (REGISTER with expires 0) this long after the phone is created.
    pub unregister_after: Option<Duration>,
}

/// What an agent's phone does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhoneScript {
    /// The extension: From/Contact user and digest username.
    pub user: String,
    pub password: String,
    pub transport: TransportKind,
    pub register: Option<RegisterScript>,
    pub answer: AnswerPolicy,
    /// BYE this long after a call to the phone is answered (ACK received).
    pub hangup_after: Option<Duration>,
    /// Numbers to dial (feature codes), each this long after the phone is created.
    pub dials: Vec<(Duration, String)>,
    /// BYE this long after a call the phone dialled is answered.
    pub dial_hangup_after: Option<Duration>,
}

impl PhoneScript {
    /// A phone that registers at once for an hour and answers after one second.
    pub fn new(user: &str, password: &str, domain: &str) -> Self {
        PhoneScript {
            user: user.to_string(),
            password: password.to_string(),
            transport: TransportKind::Udp,
            register: Some(RegisterScript {
                domain: domain.to_string(),
                expires: 3600,
                register_after: Duration::ZERO,
                unregister_after: None,
            }),
            answer: AnswerPolicy::After(Duration::from_secs(1)),
            hangup_after: None,
            dials: Vec::new(),
            dial_hangup_after: None,
        }
    }

    /// A UAS that does not register and answers as `answer` says.
    pub fn callee(user: &str, answer: AnswerPolicy) -> Self {
        PhoneScript {
            register: None,
            answer,
            ..PhoneScript::new(user, "", "")
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Action {
    Register,
    Refresh,
    Unregister,
    Answer(CallIndex),
    Refuse(CallIndex, u16),
    Hangup(CallIndex),
    Dial(String),
}

/// One scripted agent phone.
#[derive(Debug)]
pub struct SimPhone {
    ua: UserAgent,
    registrar: SocketAddr,
    script: PhoneScript,
    agenda: Agenda<Action>,
    /// Set once the script has un-registered: no more refreshes.
    unregistered: bool,
    dialled: Vec<CallIndex>,
}

impl SimPhone {
    /// A phone at `addr` whose registrar (and feature-code server) is `registrar`,
    /// counting the script's times from `now`.
    pub fn new(
        now: Instant,
        addr: SocketAddr,
        registrar: SocketAddr,
        script: PhoneScript,
        rng: SimRng,
    ) -> Self {
        let mut config = UaConfig::new(addr, &script.user);
        config.transport = script.transport;
        if let Some(register) = &script.register {
            config.domain = register.domain.clone();
        }
        config.credentials = Some(Credentials {
            username: script.user.clone(),
            password: script.password.clone(),
        });
        let mut agenda = Agenda::default();
        if let Some(register) = &script.register {
            agenda.plan(now + register.register_after, Action::Register);
            if let Some(after) = register.unregister_after {
                agenda.plan(now + after, Action::Unregister);
            }
        }
        for (after, number) in &script.dials {
            agenda.plan(now + *after, Action::Dial(number.clone()));
        }
        SimPhone {
            ua: UserAgent::new(config, rng),
            registrar,
            script,
            agenda,
            unregistered: false,
            dialled: Vec::new(),
        }
    }

    pub fn script(&self) -> &PhoneScript {
        &self.script
    }

    pub fn registration(&self) -> &RegistrationRecord {
        self.ua.registration()
    }

    /// Calls the phone received, in arrival order.
    pub fn received(&self) -> impl Iterator<Item = (&CallRecord, CallState)> {
        self.ua
            .calls()
            .filter(|(_, record, _)| record.role == Some(Role::Uas))
            .map(|(_, record, state)| (record, state))
    }

    /// Calls the phone dialled (feature codes), in order.
    pub fn dialled(&self) -> impl Iterator<Item = (&CallRecord, CallState)> {
        self.dialled
            .iter()
            .map(|&call| (self.ua.record(call), self.ua.state(call)))
    }

    /// Calls that are neither over nor refused: at most one for a well-behaved switch.
    pub fn active_calls(&self) -> usize {
        self.ua
            .calls()
            .filter(|(_, _, state)| !state.is_over())
            .count()
    }

    /// Every call over, every transaction and timer run out, nothing more planned but
    /// registration refreshes.
    pub fn is_settled(&self) -> bool {
        self.is_idle() && self.ua.live_transactions() == 0 && self.ua.armed_call_timers() == 0
    }

    /// No call up and nothing planned but registration refreshes.
    pub fn is_idle(&self) -> bool {
        self.active_calls() == 0
            && self
                .agenda
                .planned_all(|action| matches!(action, Action::Refresh))
    }

    pub fn user_agent(&self) -> &UserAgent {
        &self.ua
    }

    fn react(&mut self, now: Instant) {
        while let Some(event) = self.ua.poll_event() {
            match event {
                UaEvent::Incoming { call } => {
                    self.ua.ring(now, call);
                    match self.script.answer {
                        AnswerPolicy::After(delay) => {
                            self.agenda.plan(now + delay, Action::Answer(call))
                        }
                        AnswerPolicy::Never => {}
                        AnswerPolicy::Refuse { status, after } => {
                            self.agenda.plan(now + after, Action::Refuse(call, status))
                        }
                    }
                }
                UaEvent::Answered { call } => {
                    let after = if self.dialled.contains(&call) {
                        self.script.dial_hangup_after
                    } else {
                        self.script.hangup_after
                    };
                    if let Some(after) = after {
                        self.agenda.plan(now + after, Action::Hangup(call));
                    }
                }
                UaEvent::Failed { call, .. } | UaEvent::Ended { call, .. } => {
                    self.agenda.drop_where(|action| {
                        matches!(action, Action::Answer(c) | Action::Refuse(c, _) | Action::Hangup(c) if *c == call)
                    });
                }
                UaEvent::Registered { expires } => {
                    self.agenda.drop_where(|action| *action == Action::Refresh);
                    if !self.unregistered {
                        self.agenda.plan(now + expires / 2, Action::Refresh);
                    }
                }
                UaEvent::Unregistered | UaEvent::RegisterFailed { .. } => {
                    self.agenda.drop_where(|action| *action == Action::Refresh);
                }
                UaEvent::Provisional { .. } => {}
            }
        }
    }

    fn expires(&self) -> u32 {
        self.script.register.as_ref().map_or(0, |r| r.expires)
    }

    fn domain(&self) -> String {
        self.script
            .register
            .as_ref()
            .map_or_else(|| self.registrar.ip().to_string(), |r| r.domain.clone())
    }
}

impl Node for SimPhone {
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
            match action {
                Action::Register | Action::Refresh if !self.unregistered => {
                    let (domain, expires) = (self.domain(), self.expires());
                    self.ua.register(now, self.registrar, &domain, expires);
                }
                Action::Register | Action::Refresh => {}
                Action::Unregister => {
                    self.unregistered = true;
                    self.agenda.drop_where(|action| *action == Action::Refresh);
                    let domain = self.domain();
                    self.ua.register(now, self.registrar, &domain, 0);
                }
                Action::Answer(call) => self.ua.answer(now, call),
                Action::Refuse(call, status) => self.ua.reject(now, call, status),
                Action::Hangup(call) => self.ua.bye(now, call),
                Action::Dial(number) => {
                    let call = self.ua.invite(now, self.registrar, &number, false);
                    self.dialled.push(call);
                }
            }
            self.react(now);
        }
    }
}
