//! The simulated SIP user agent (pure) that trunk callers and agent phones are made of.
//!
//! It writes real SIP text (RFC 3261) by hand — deliberately not through the engine's
//! builder, so the simulation is a second, independent reading of the RFC — and reads
//! what it receives through the crate's own [`classify`], so the peers parse exactly
//! what the engine's transports would. Retransmissions and timers are the crate's
//! [`Transactions`]: the peers do not re-implement them.
//!
//! It owns: client and server transactions, dialogs (tags, CSeq both ways, remote
//! target), offer/answer (early and late offer, hold by `a=sendonly`), CANCEL, BYE, the
//! RFC 4028 session timer on both sides (refreshing by re-INVITE or UPDATE, or hanging
//! up when the other side stops), digest answers (RFC 7616 `qop=auth`) for REGISTER and
//! INVITE, and registration. What to do when — answer, hang up, hold — is the
//! script's: [`crate::sim::caller`] and [`crate::sim::phone`] call the methods here and
//! read the [`UaEvent`]s.
//!
//! Every call keeps a [`CallRecord`] of what it saw, for assertions.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{SimRng, Transmit};
use crate::media::g711::Codec;
use crate::sip::TransportKind;
use crate::sip::digest::{answer_challenge, parse_challenge};
use crate::sip::inbound::{Inbound, Received, classify};
use crate::sip::message::{self, Header, Request, Response, make_header};
use crate::sip::sdp;
use crate::sip::transaction::{
    KeyMethod, Reliability, RequestDisposition, TimerConfig, TransactionEvent, TransactionKey,
    Transactions,
};

/// Index of a call in its [`UserAgent`], stable for the agent's life.
pub type CallIndex = usize;

/// Digest credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// How a refresher refreshes the session (RFC 4028 §9 allows either).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshMethod {
    Reinvite,
    Update,
}

/// What every call of one agent shares.
#[derive(Clone, Debug)]
pub struct UaConfig {
    pub addr: SocketAddr,
    pub transport: TransportKind,
    /// User part of our From and Contact.
    pub user: String,
    /// Host part of our From URI.
    pub domain: String,
    pub credentials: Option<Credentials>,
    pub timers: TimerConfig,
    /// Ask for an RFC 4028 session timer of this many seconds on our INVITEs.
    pub session_expires: Option<u32>,
    /// When we are the refresher: refresh (true), or go silent so the other side must
    /// hang up (false).
    pub refresh: bool,
    pub refresh_method: RefreshMethod,
    /// The RTP port every call's SDP names: a real socket (the browser desk's relay).
    /// `None` in the simulation, which carries no media: made-up ports per call.
    pub media_port: Option<u16>,
    /// Codecs we answer with, in our order of preference among the offer's.
    pub codecs: Vec<Codec>,
}

impl UaConfig {
    pub fn new(addr: SocketAddr, user: &str) -> Self {
        UaConfig {
            addr,
            transport: TransportKind::Udp,
            user: user.to_string(),
            domain: addr.ip().to_string(),
            credentials: None,
            timers: TimerConfig::default(),
            session_expires: None,
            refresh: true,
            refresh_method: RefreshMethod::Reinvite,
            media_port: None,
            codecs: vec![Codec::Pcmu, Codec::Pcma],
        }
    }
}

/// Which end of the dialog we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Uac,
    Uas,
}

/// Who did something: this agent or the other side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Local,
    Remote,
}

/// SDP media direction (RFC 3264 §6.1, §8.4 for hold).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction an answer gives to an offer with this one.
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            other => other,
        }
    }

    /// The direction an SDP body states (session or media level; sendrecv when silent).
    pub fn of_sdp(body: &[u8]) -> Direction {
        let text = String::from_utf8_lossy(body);
        let mut direction = Direction::SendRecv;
        for line in text.lines() {
            direction = match line.trim() {
                "a=sendonly" => Direction::SendOnly,
                "a=recvonly" => Direction::RecvOnly,
                "a=inactive" => Direction::Inactive,
                "a=sendrecv" => Direction::SendRecv,
                _ => continue,
            };
        }
        direction
    }
}

/// Where a call is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallState {
    /// UAC: INVITE sent, nothing back. UAS: INVITE received, not yet answered.
    Calling,
    /// A provisional response with a tag: early dialog.
    Early,
    /// UAS: 2xx sent, waiting for the ACK.
    Answered,
    Confirmed,
    /// Ended before it was answered (a final error, CANCEL, timeout).
    Failed,
    /// Ended after it was answered.
    Ended,
}

impl CallState {
    pub fn is_over(self) -> bool {
        matches!(self, CallState::Failed | CallState::Ended)
    }
}

/// Why a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// A BYE, sent or received (see [`CallRecord::ended_by`]).
    Bye,
    /// CANCEL before the final answer.
    Cancelled,
    /// A 300–699 final response.
    Rejected(u16),
    /// No final response to our INVITE (timer B).
    Timeout,
    /// The other side stopped refreshing the session (RFC 4028 §10): we sent BYE.
    SessionExpired,
    /// Our 2xx was never acknowledged (timer L): we sent BYE.
    NoAck,
}

/// What one call saw, for assertions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallRecord {
    pub role: Option<Role>,
    pub call_id: String,
    /// Provisional statuses, in arrival order, as the transaction passed them up (a
    /// duplicated or late 1xx is passed up again, as RFC 3261 §17.1.1.2 says).
    pub provisional: Vec<u16>,
    /// The INVITE's final status (sent as UAS, received as UAC).
    pub final_status: Option<u16>,
    pub invited_at: Option<Instant>,
    /// UAC: the 2xx arrived. UAS: the ACK arrived.
    pub answered_at: Option<Instant>,
    pub ended_at: Option<Instant>,
    pub ended_by: Option<Side>,
    pub end_reason: Option<EndReason>,
    pub bye_sent: bool,
    pub bye_received: bool,
    /// Final status of our BYE (None: none sent, or it timed out).
    pub bye_status: Option<u16>,
    pub cancel_sent: bool,
    pub cancel_status: Option<u16>,
    /// Directions we offered in re-INVITEs and the final status each got.
    pub reinvites_sent: Vec<(Direction, u16)>,
    /// Directions in the answers to our re-INVITE offers.
    pub answer_directions: Vec<Direction>,
    /// Directions offered to us in re-INVITEs (a hold from the other side).
    pub reinvites_received: Vec<Direction>,
    pub refreshes_sent: u32,
    pub refreshes_received: u32,
    /// The session timer the dialog agreed, and who refreshes.
    pub session: Option<(Duration, Side)>,
    /// INVITEs retried with credentials after a 401/407.
    pub auth_retries: u32,
    /// The codec the offer/answer settled on.
    pub codec: Option<Codec>,
    /// UAS: the INVITE as it arrived (its headers, for assertions).
    pub invite_text: Option<String>,
}

/// What the agent tells its script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UaEvent {
    /// A new INVITE arrived (100 Trying is already sent): ring, answer or refuse it.
    Incoming {
        call: CallIndex,
    },
    Provisional {
        call: CallIndex,
        status: u16,
    },
    /// UAC: a 2xx arrived and was acknowledged. UAS: the ACK for our 2xx arrived.
    Answered {
        call: CallIndex,
    },
    /// The call ended before it was answered.
    Failed {
        call: CallIndex,
        status: u16,
    },
    /// The call ended after it was answered.
    Ended {
        call: CallIndex,
        by: Side,
    },
    Registered {
        expires: Duration,
    },
    Unregistered,
    RegisterFailed {
        status: u16,
    },
}

/// Registration state of the agent's address-of-record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistrationRecord {
    pub registered: bool,
    /// Expiry the registrar granted on the last success.
    pub granted: Option<Duration>,
    pub successes: u32,
    pub challenges: u32,
    pub failures: Vec<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Purpose {
    Invite,
    Reinvite { direction: Direction, refresh: bool },
    Update,
    Bye,
    Cancel,
    Info,
    Register { expires: u32 },
}

#[derive(Debug)]
struct ClientTx {
    call: Option<CallIndex>,
    purpose: Purpose,
    /// The ACK we sent for a 2xx, sent again for each retransmitted 2xx.
    ack: Option<Bytes>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CallTimer {
    Refresh,
    Expire,
    RetryReinvite(Direction),
}

#[derive(Debug)]
struct Call {
    role: Role,
    state: CallState,
    call_id: String,
    local_tag: String,
    remote_tag: Option<String>,
    /// name-addr without tag.
    local_uri: String,
    remote_uri: String,
    request_uri: String,
    peer: SocketAddr,
    remote_target: SocketAddr,
    remote_target_uri: String,
    local_cseq: u32,
    remote_cseq: u32,
    /// UAC: our INVITE client transaction; UAS: the INVITE server transaction.
    invite_key: Option<TransactionKey>,
    invite_cseq: u32,
    invite_branch: String,
    invite_request: Option<Request>,
    /// UAS: the INVITE as it arrived, for the headers the script's answer depends on.
    invite_raw: String,
    invite_extra: Vec<String>,
    cancel_wanted: bool,
    late_offer: bool,
    direction: Direction,
    sdp_version: u64,
    media_port: u16,
    /// Our outgoing re-INVITE or UPDATE.
    reinvite_pending: Option<TransactionKey>,
    /// An incoming re-INVITE we answered 2xx, waiting for its ACK.
    reinvite_server: Option<TransactionKey>,
    session: Option<(Duration, Side)>,
    /// The Min-SE a 422 asked for, once we retried with it.
    session_retry: Option<u32>,
    timers: Vec<(Instant, u64)>,
    record: CallRecord,
}

#[derive(Debug)]
struct Registration {
    registrar: SocketAddr,
    domain: String,
    call_id: String,
    tag: String,
    cseq: u32,
    challenges_in_a_row: u32,
}

/// One simulated SIP user agent.
#[derive(Debug)]
pub struct UserAgent {
    config: UaConfig,
    rng: SimRng,
    transactions: Transactions,
    calls: Vec<Call>,
    by_dialog: BTreeMap<(String, String), CallIndex>,
    server_invites: HashMap<TransactionKey, CallIndex>,
    client: HashMap<TransactionKey, ClientTx>,
    timers: BTreeMap<(Instant, u64), (CallIndex, CallTimer)>,
    next_timer: u64,
    registration: Option<Registration>,
    registration_record: RegistrationRecord,
    transmits: VecDeque<Transmit>,
    events: VecDeque<UaEvent>,
    errors: Vec<String>,
}

/// Seconds the RFC 4028 expiry check leaves before the session's end (§10).
fn expiry_margin(interval: Duration) -> Duration {
    (interval / 3).min(Duration::from_secs(32))
}

impl UserAgent {
    pub fn new(config: UaConfig, rng: SimRng) -> Self {
        let transactions = Transactions::new(config.timers);
        UserAgent {
            config,
            rng,
            transactions,
            calls: Vec::new(),
            by_dialog: BTreeMap::new(),
            server_invites: HashMap::new(),
            client: HashMap::new(),
            timers: BTreeMap::new(),
            next_timer: 0,
            registration: None,
            registration_record: RegistrationRecord::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            errors: Vec::new(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.config.addr
    }

    pub fn config(&self) -> &UaConfig {
        &self.config
    }

    /// Switches refreshing on or off for calls from now on (and running ones).
    pub fn set_refresh(&mut self, refresh: bool) {
        self.config.refresh = refresh;
    }

    pub fn record(&self, call: CallIndex) -> &CallRecord {
        &self.calls[call].record
    }

    pub fn state(&self, call: CallIndex) -> CallState {
        self.calls[call].state
    }

    pub fn calls(&self) -> impl Iterator<Item = (CallIndex, &CallRecord, CallState)> {
        self.calls
            .iter()
            .enumerate()
            .map(|(index, call)| (index, &call.record, call.state))
    }

    pub fn registration(&self) -> &RegistrationRecord {
        &self.registration_record
    }

    /// Live transactions (server and client): zero once everything has settled.
    pub fn live_transactions(&self) -> usize {
        self.transactions.len()
    }

    /// Armed call timers (session refresh or expiry, glare retries).
    pub fn armed_call_timers(&self) -> usize {
        self.timers.len()
    }

    /// Protocol violations this agent saw in what it received (or misuse by its script).
    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<UaEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let call_timer = self.timers.keys().next().map(|(at, _)| *at);
        [self.transactions.poll_timeout(), call_timer]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.transactions.handle_timeout(now);
        self.drain_transactions(now);
        while let Some((&slot, _)) = self.timers.first_key_value() {
            if slot.0 > now {
                break;
            }
            let Some((call, timer)) = self.timers.remove(&slot) else {
                break;
            };
            self.calls[call].timers.retain(|s| *s != slot);
            self.fire_call_timer(now, call, timer);
        }
    }

    // ---- actions a script takes ---------------------------------------------------

    /// Starts a call: INVITE to `request_user@target`, with an SDP offer unless
    /// `late_offer` (then the offer comes in the 2xx and our answer in the ACK).
    pub fn invite(
        &mut self,
        now: Instant,
        target: SocketAddr,
        request_user: &str,
        late_offer: bool,
    ) -> CallIndex {
        let index = self.calls.len();
        let call_id = format!("{}@{}", self.rng.hex(12), self.config.addr.ip());
        let local_tag = self.rng.hex(6);
        let request_uri = format!("sip:{request_user}@{target}");
        let local_uri = format!("<sip:{}@{}>", self.config.user, self.config.domain);
        let remote_uri = format!("<{request_uri}>");
        let call = Call {
            role: Role::Uac,
            state: CallState::Calling,
            call_id: call_id.clone(),
            local_tag: local_tag.clone(),
            remote_tag: None,
            local_uri,
            remote_uri,
            request_uri: request_uri.clone(),
            peer: target,
            remote_target: target,
            remote_target_uri: request_uri,
            local_cseq: 0,
            remote_cseq: 0,
            invite_key: None,
            invite_cseq: 0,
            invite_branch: String::new(),
            invite_request: None,
            invite_raw: String::new(),
            invite_extra: Vec::new(),
            cancel_wanted: false,
            late_offer,
            direction: Direction::SendRecv,
            sdp_version: 1,
            media_port: self.media_port(index),
            reinvite_pending: None,
            reinvite_server: None,
            session: None,
            session_retry: None,
            timers: Vec::new(),
            record: CallRecord {
                role: Some(Role::Uac),
                call_id: call_id.clone(),
                invited_at: Some(now),
                ..CallRecord::default()
            },
        };
        self.calls.push(call);
        self.by_dialog.insert((call_id, local_tag), index);
        self.send_invite(now, index);
        index
    }

    /// 180 Ringing (with our tag: an early dialog).
    pub fn ring(&mut self, now: Instant, call: CallIndex) {
        if self.calls[call].state != CallState::Calling {
            return;
        }
        self.calls[call].state = CallState::Early;
        self.respond_invite(now, call, 180, Vec::new(), None);
    }

    /// 200 with our answer (or our offer, when the INVITE had none).
    pub fn answer(&mut self, now: Instant, call: CallIndex) {
        if !matches!(
            self.calls[call].state,
            CallState::Calling | CallState::Early
        ) {
            return;
        }
        let Some(request) = self.calls[call].invite_request.clone() else {
            return;
        };
        let body = if request.body.is_empty() {
            Some(self.offer_sdp(call))
        } else {
            match self.answer_sdp(call, &request.body) {
                Some(body) => Some(body),
                None => {
                    self.reject(now, call, 488);
                    return;
                }
            }
        };
        let mut extra = vec![self.contact_header_text()];
        let head = self.calls[call].invite_raw.clone();
        if let Some(header) = self.accept_session_timer(now, call, &head) {
            extra.extend(header);
        }
        self.calls[call].state = CallState::Answered;
        self.calls[call].record.final_status = Some(200);
        self.respond_invite(now, call, 200, extra, body);
    }

    /// A 300–699 final response to the INVITE.
    pub fn reject(&mut self, now: Instant, call: CallIndex, status: u16) {
        if !matches!(
            self.calls[call].state,
            CallState::Calling | CallState::Early
        ) {
            return;
        }
        self.calls[call].record.final_status = Some(status);
        self.respond_invite(now, call, status, Vec::new(), None);
        self.end(
            now,
            call,
            CallState::Failed,
            EndReason::Rejected(status),
            Side::Local,
        );
        self.events.push_back(UaEvent::Failed { call, status });
    }

    /// Hangs up a confirmed call with BYE.
    pub fn bye(&mut self, now: Instant, call: CallIndex) {
        if !matches!(
            self.calls[call].state,
            CallState::Confirmed | CallState::Answered
        ) {
            return;
        }
        self.send_in_dialog(now, call, "BYE", Purpose::Bye, Vec::new(), None);
        self.calls[call].record.bye_sent = true;
        self.end(now, call, CallState::Ended, EndReason::Bye, Side::Local);
        self.events.push_back(UaEvent::Ended {
            call,
            by: Side::Local,
        });
    }

    /// Cancels our INVITE: at once if a provisional response has arrived, else as
    /// soon as one does (RFC 3261 §9.1). A 2xx that crosses the CANCEL is acknowledged
    /// and the call hung up with BYE.
    pub fn cancel(&mut self, now: Instant, call: CallIndex) {
        let c = &mut self.calls[call];
        if c.role != Role::Uac || !matches!(c.state, CallState::Calling | CallState::Early) {
            return;
        }
        c.cancel_wanted = true;
        if !c.record.provisional.is_empty() {
            self.send_cancel(now, call);
        }
    }

    /// The INVITE that started a call to us, as it arrived (its headers and offer).
    pub fn incoming_invite(&self, call: CallIndex) -> Option<&Request> {
        let c = self.calls.get(call)?;
        (c.role == Role::Uas).then_some(c.invite_request.as_ref()?)
    }

    /// An INFO in a confirmed dialog (RFC 6086), e.g. a DTMF digit as
    /// `application/dtmf-relay`.
    pub fn info(&mut self, now: Instant, call: CallIndex, content_type: &str, body: String) {
        if !matches!(
            self.calls[call].state,
            CallState::Confirmed | CallState::Answered
        ) {
            return;
        }
        let extra = vec![format!("Content-Type: {content_type}")];
        self.send_in_dialog(now, call, "INFO", Purpose::Info, extra, Some(body));
    }

    /// A re-INVITE offering `direction` (hold: `SendOnly`; unhold: `SendRecv`).
    pub fn reinvite(&mut self, now: Instant, call: CallIndex, direction: Direction) {
        self.send_reinvite(now, call, direction, false);
    }

    /// Starts (or refreshes) registration at `registrar` for `expires` seconds; 0
    /// removes the binding.
    pub fn register(&mut self, now: Instant, registrar: SocketAddr, domain: &str, expires: u32) {
        if self.registration.is_none() {
            self.registration = Some(Registration {
                registrar,
                domain: domain.to_string(),
                call_id: format!("{}@{}", self.rng.hex(12), self.config.addr.ip()),
                tag: self.rng.hex(6),
                cseq: 0,
                challenges_in_a_row: 0,
            });
        }
        self.send_register(now, expires, None);
    }

    // ---- input --------------------------------------------------------------------

    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        transport: TransportKind,
        bytes: &[u8],
    ) {
        match classify(bytes, from, transport) {
            Received::Malformed(answer) => {
                self.errors.push(format!(
                    "unparseable message from {from}: {}",
                    first_line(bytes)
                ));
                if let Some(answer) = answer {
                    self.transmits.push_back(Transmit {
                        destination: from,
                        transport,
                        payload: Bytes::from(answer),
                    });
                }
            }
            Received::Message(inbound) => match *inbound {
                Inbound::Request {
                    request,
                    summary,
                    source,
                    transport,
                } => {
                    let method = summary.method.to_string();
                    let key = TransactionKey::for_request(
                        KeyMethod::from_name(&method),
                        Some(&summary.top_via_branch),
                        &summary.top_via_sent_by,
                        &summary.call_id,
                        summary.from_tag.as_deref().unwrap_or(""),
                        summary.cseq,
                        "",
                    );
                    let reliability = reliability(transport);
                    let disposition = self.transactions.handle_request(
                        now,
                        key.clone(),
                        method == "ACK",
                        source,
                        reliability,
                    );
                    let raw = String::from_utf8_lossy(bytes).into_owned();
                    self.handle_request(now, disposition, key, request, &raw, source);
                }
                Inbound::Response {
                    summary, response, ..
                } => {
                    let key = TransactionKey::rfc3261(
                        &summary.top_via_branch,
                        KeyMethod::from_name(&summary.cseq_method.to_string()),
                        &summary.top_via_sent_by,
                    );
                    let payload = Bytes::copy_from_slice(bytes);
                    if !self
                        .transactions
                        .handle_response(now, &key, summary.status, payload)
                    {
                        // A 2xx after its transaction ended still needs its ACK.
                        if (200..300).contains(&summary.status) {
                            self.resend_ack_for_stray_2xx(&summary.call_id, &response);
                        }
                    }
                }
            },
        }
        self.drain_transactions(now);
    }

    fn handle_request(
        &mut self,
        now: Instant,
        disposition: RequestDisposition,
        key: TransactionKey,
        request: Request,
        raw: &str,
        source: SocketAddr,
    ) {
        match disposition {
            RequestDisposition::New => self.handle_new_request(now, key, request, raw, source),
            RequestDisposition::Retransmission | RequestDisposition::AckForNon2xx => {}
            RequestDisposition::AckFor2xx => {
                // Our peers always send a 2xx ACK with a fresh branch; tolerate reuse.
                if let Some(&call) = self.server_invites.get(&key) {
                    let of_invite = self.calls[call].invite_key.as_ref() == Some(&key);
                    self.acknowledged(now, call, &request.body, of_invite);
                }
            }
            RequestDisposition::StrayAck => self.handle_stray_ack(now, &request, raw),
            RequestDisposition::CancelTarget {
                invite_key,
                invite_final_sent,
            } => {
                self.respond_plain(now, &key, &request, 200, Vec::new());
                if !invite_final_sent && let Some(&call) = self.server_invites.get(&invite_key) {
                    self.calls[call].record.final_status = Some(487);
                    self.respond_invite(now, call, 487, Vec::new(), None);
                    self.end(
                        now,
                        call,
                        CallState::Failed,
                        EndReason::Cancelled,
                        Side::Remote,
                    );
                    self.events.push_back(UaEvent::Failed { call, status: 487 });
                }
            }
            RequestDisposition::CancelNoMatch => {
                self.respond_plain(now, &key, &request, 481, Vec::new())
            }
        }
    }

    fn handle_new_request(
        &mut self,
        now: Instant,
        key: TransactionKey,
        request: Request,
        raw: &str,
        source: SocketAddr,
    ) {
        let method = request.method.to_string();
        let to_tag = tag_of(header(raw, "To").as_deref().unwrap_or(""));
        let call_id = header(raw, "Call-ID").unwrap_or_default();
        let Some(to_tag) = to_tag else {
            match method.as_str() {
                "INVITE" => self.new_incoming_call(now, key, request, raw, source),
                "OPTIONS" => {
                    let extra =
                        vec!["Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE".to_string()];
                    self.respond_plain(now, &key, &request, 200, extra)
                }
                _ => self.respond_plain(now, &key, &request, 405, Vec::new()),
            }
            return;
        };
        let Some(&call) = self.by_dialog.get(&(call_id, to_tag)) else {
            self.respond_plain(now, &key, &request, 481, Vec::new());
            return;
        };
        let cseq = cseq_number(raw);
        if cseq <= self.calls[call].remote_cseq && self.calls[call].remote_cseq != 0 {
            self.errors.push(format!(
                "{method} with CSeq {cseq} not above {} in call {}",
                self.calls[call].remote_cseq, self.calls[call].call_id
            ));
            self.respond_plain(now, &key, &request, 500, Vec::new());
            return;
        }
        self.calls[call].remote_cseq = cseq;
        match method.as_str() {
            "BYE" => {
                self.respond_plain(now, &key, &request, 200, Vec::new());
                self.calls[call].record.bye_received = true;
                if !self.calls[call].state.is_over() {
                    self.end(now, call, CallState::Ended, EndReason::Bye, Side::Remote);
                    self.events.push_back(UaEvent::Ended {
                        call,
                        by: Side::Remote,
                    });
                }
            }
            "INVITE" if self.calls[call].state.is_over() => {
                self.respond_plain(now, &key, &request, 481, Vec::new())
            }
            "INVITE" if self.calls[call].reinvite_pending.is_some() => {
                // Glare (RFC 3261 §14.2).
                self.respond_plain(now, &key, &request, 491, Vec::new())
            }
            "INVITE" => self.incoming_reinvite(now, call, key, request, raw),
            "UPDATE" => {
                let mut extra = Vec::new();
                if let Some(header) = self.accept_session_timer(now, call, raw) {
                    extra.extend(header);
                    self.calls[call].record.refreshes_received += 1;
                }
                extra.push(self.contact_header_text());
                self.respond_plain(now, &key, &request, 200, extra);
            }
            "OPTIONS" | "INFO" => self.respond_plain(now, &key, &request, 200, Vec::new()),
            _ => self.respond_plain(now, &key, &request, 405, Vec::new()),
        }
    }

    fn new_incoming_call(
        &mut self,
        now: Instant,
        key: TransactionKey,
        request: Request,
        raw: &str,
        source: SocketAddr,
    ) {
        let index = self.calls.len();
        let call_id = header(raw, "Call-ID").unwrap_or_default();
        let local_tag = self.rng.hex(6);
        let from = header(raw, "From").unwrap_or_default();
        let to = header(raw, "To").unwrap_or_default();
        let contact_uri = header(raw, "Contact")
            .map(|value| uri_of(&value))
            .unwrap_or_default();
        let remote_target = addr_of_uri(&contact_uri).unwrap_or(source);
        let mut call = Call {
            role: Role::Uas,
            state: CallState::Calling,
            call_id: call_id.clone(),
            local_tag: local_tag.clone(),
            remote_tag: tag_of(&from),
            local_uri: strip_tag(&to),
            remote_uri: strip_tag(&from),
            request_uri: request.uri.to_string(),
            peer: source,
            remote_target,
            remote_target_uri: contact_uri,
            local_cseq: 0,
            remote_cseq: cseq_number(raw),
            invite_key: Some(key.clone()),
            invite_cseq: cseq_number(raw),
            invite_branch: key.branch.clone(),
            invite_request: Some(request),
            invite_raw: raw.to_string(),
            invite_extra: Vec::new(),
            cancel_wanted: false,
            late_offer: false,
            direction: Direction::SendRecv,
            sdp_version: 1,
            media_port: self.media_port(index),
            reinvite_pending: None,
            reinvite_server: None,
            session: None,
            session_retry: None,
            timers: Vec::new(),
            record: CallRecord {
                role: Some(Role::Uas),
                call_id: call_id.clone(),
                invited_at: Some(now),
                invite_text: Some(raw.to_string()),
                ..CallRecord::default()
            },
        };
        call.late_offer = call
            .invite_request
            .as_ref()
            .is_some_and(|r| r.body.is_empty());
        self.calls.push(call);
        self.by_dialog.insert((call_id, local_tag), index);
        self.server_invites.insert(key, index);
        self.respond_invite(now, index, 100, Vec::new(), None);
        self.events.push_back(UaEvent::Incoming { call: index });
    }

    fn incoming_reinvite(
        &mut self,
        now: Instant,
        call: CallIndex,
        key: TransactionKey,
        request: Request,
        raw: &str,
    ) {
        let mut extra = vec![self.contact_header_text()];
        if let Some(header) = self.accept_session_timer(now, call, raw) {
            extra.extend(header);
            self.calls[call].record.refreshes_received += 1;
        }
        let body = if request.body.is_empty() {
            self.offer_sdp(call)
        } else {
            let offered = Direction::of_sdp(&request.body);
            self.calls[call].record.reinvites_received.push(offered);
            match self.answer_sdp(call, &request.body) {
                Some(body) => body,
                None => {
                    self.respond_plain(now, &key, &request, 488, Vec::new());
                    return;
                }
            }
        };
        self.calls[call].reinvite_server = Some(key.clone());
        self.server_invites.insert(key.clone(), call);
        let headers: Vec<_> = extra
            .iter()
            .filter_map(|line| line.split_once(": "))
            .map(|(name, value)| make_header(name, value.to_string()))
            .collect();
        let tag = self.calls[call].local_tag.clone();
        let response = build_response(
            &request,
            200,
            Some(&tag),
            headers,
            Some(("application/sdp", body.into_bytes())),
        );
        self.send_response(now, &key, 200, response.to_string());
    }

    fn handle_stray_ack(&mut self, now: Instant, request: &Request, raw: &str) {
        let call_id = header(raw, "Call-ID").unwrap_or_default();
        let Some(to_tag) = tag_of(header(raw, "To").as_deref().unwrap_or("")) else {
            return;
        };
        let Some(&call) = self.by_dialog.get(&(call_id, to_tag)) else {
            return;
        };
        let cseq = cseq_number(raw);
        let c = &self.calls[call];
        let of_invite = c.invite_cseq == cseq;
        let server = if of_invite {
            c.invite_key.clone()
        } else {
            c.reinvite_server.clone()
        };
        let Some(server) = server else {
            return;
        };
        if self.transactions.handle_2xx_ack(now, &server) == RequestDisposition::AckFor2xx {
            self.acknowledged(now, call, &request.body, of_invite);
        }
    }

    /// The ACK for a 2xx we sent: the INVITE's (the call is now answered) or a
    /// re-INVITE's.
    fn acknowledged(&mut self, now: Instant, call: CallIndex, body: &[u8], of_invite: bool) {
        let c = &mut self.calls[call];
        if !body.is_empty() {
            c.record.codec = codec_of(body).or(c.record.codec);
        }
        if !of_invite {
            c.reinvite_server = None;
            return;
        }
        // An ACK overtaken by the BYE still proves the answer arrived.
        c.record.answered_at.get_or_insert(now);
        if c.state == CallState::Answered {
            c.state = CallState::Confirmed;
            self.events.push_back(UaEvent::Answered { call });
        }
    }

    fn drain_transactions(&mut self, now: Instant) {
        while let Some(event) = self.transactions.poll_transmit() {
            self.transmits.push_back(Transmit {
                destination: event.destination,
                transport: self.config.transport,
                payload: event.payload,
            });
        }
        while let Some(event) = self.transactions.poll_event() {
            match event {
                TransactionEvent::ClientResponse {
                    key,
                    status,
                    payload,
                } => self.client_response(now, key, status, &payload),
                TransactionEvent::ClientTimedOut { key } => self.client_timed_out(now, &key),
                TransactionEvent::ServerTimedOut { key } => {
                    if let Some(&call) = self.server_invites.get(&key)
                        && self.calls[call].state == CallState::Answered
                    {
                        // §13.3.1.4: a 2xx never acknowledged ends the dialog with BYE.
                        self.send_in_dialog(now, call, "BYE", Purpose::Bye, Vec::new(), None);
                        self.calls[call].record.bye_sent = true;
                        self.end(now, call, CallState::Ended, EndReason::NoAck, Side::Local);
                        self.events.push_back(UaEvent::Ended {
                            call,
                            by: Side::Local,
                        });
                    }
                }
                TransactionEvent::AckReceived { .. } => {}
                TransactionEvent::Terminated { key } => {
                    self.client.remove(&key);
                    self.server_invites.remove(&key);
                }
            }
            while let Some(event) = self.transactions.poll_transmit() {
                self.transmits.push_back(Transmit {
                    destination: event.destination,
                    transport: self.config.transport,
                    payload: event.payload,
                });
            }
        }
    }

    fn client_response(&mut self, now: Instant, key: TransactionKey, status: u16, payload: &[u8]) {
        let Some(tx) = self.client.get(&key) else {
            return;
        };
        let (call, purpose) = (tx.call, tx.purpose.clone());
        if let Some(ack) = tx.ack.clone() {
            // A retransmitted 2xx: acknowledge it again (§13.2.2.4).
            if (200..300).contains(&status) {
                self.push_transmit(call.map(|c| self.calls[c].remote_target), ack);
            }
            return;
        }
        let raw = String::from_utf8_lossy(payload).into_owned();
        match (purpose, call) {
            (Purpose::Invite, Some(call)) => self.invite_response(now, call, &key, status, &raw),
            (Purpose::Reinvite { direction, refresh }, Some(call)) => {
                self.reinvite_response(now, call, &key, status, &raw, direction, refresh)
            }
            (Purpose::Update, Some(call)) if status >= 200 => {
                self.calls[call].reinvite_pending = None;
                if (200..300).contains(&status) {
                    self.session_from_response(now, call, &raw);
                } else {
                    self.errors
                        .push(format!("UPDATE refresh refused with {status}"));
                }
            }
            (Purpose::Bye, Some(call)) if status >= 200 => {
                self.calls[call].record.bye_status = Some(status);
            }
            (Purpose::Cancel, Some(call)) if status >= 200 => {
                self.calls[call].record.cancel_status = Some(status);
            }
            (Purpose::Register { expires }, _) if status >= 200 => {
                self.register_response(now, status, &raw, expires)
            }
            _ => {}
        }
    }

    fn invite_response(
        &mut self,
        now: Instant,
        call: CallIndex,
        key: &TransactionKey,
        status: u16,
        raw: &str,
    ) {
        let to_tag = tag_of(header(raw, "To").as_deref().unwrap_or(""));
        match status {
            100..=199 => {
                let c = &mut self.calls[call];
                if c.state.is_over() {
                    return;
                }
                c.record.provisional.push(status);
                if let Some(tag) = to_tag
                    && status > 100
                {
                    c.remote_tag = Some(tag);
                    c.state = CallState::Early;
                }
                self.events.push_back(UaEvent::Provisional { call, status });
                if self.calls[call].cancel_wanted && !self.calls[call].record.cancel_sent {
                    self.send_cancel(now, call);
                }
            }
            200..=299 if self.calls[call].state.is_over() => {
                // The other side's BYE overtook its own 2xx (lost and retransmitted):
                // the 2xx still needs its ACK, but the call stays over.
                self.calls[call].remote_tag = to_tag;
                let ack = self.build_ack_2xx(call, self.calls[call].invite_cseq, None);
                if let Some(tx) = self.client.get_mut(key) {
                    tx.ack = Some(ack.clone());
                }
                let target = self.calls[call].remote_target;
                self.push_transmit(Some(target), ack);
            }
            200..=299 => {
                let c = &mut self.calls[call];
                c.remote_tag = to_tag;
                if let Some(contact) = header(raw, "Contact") {
                    let uri = uri_of(&contact);
                    if let Some(addr) = addr_of_uri(&uri) {
                        c.remote_target = addr;
                        c.remote_target_uri = uri;
                    }
                }
                c.record.final_status = Some(status);
                let body = body_of(raw).as_bytes().to_vec();
                let ack_body = if c.late_offer {
                    if body.is_empty() {
                        self.errors
                            .push("late-offer INVITE answered without an offer".into());
                        None
                    } else {
                        self.answer_sdp(call, &body)
                    }
                } else {
                    if !body.is_empty() {
                        self.calls[call].record.codec = codec_of(&body);
                    } else {
                        self.errors.push("2xx to an offer carries no answer".into());
                    }
                    None
                };
                let ack = self.build_ack_2xx(call, self.calls[call].invite_cseq, ack_body);
                if let Some(tx) = self.client.get_mut(key) {
                    tx.ack = Some(ack.clone());
                }
                let target = self.calls[call].remote_target;
                self.push_transmit(Some(target), ack);
                self.calls[call].state = CallState::Confirmed;
                self.calls[call].record.answered_at = Some(now);
                self.session_from_response(now, call, raw);
                self.events.push_back(UaEvent::Answered { call });
                if self.calls[call].cancel_wanted {
                    // The 2xx crossed our CANCEL: the call is up, so hang it up.
                    self.bye(now, call);
                }
            }
            // RFC 4028 §6: the interval asked for is below the other side's Min-SE.
            422 if self.calls[call].session_retry.is_none() => {
                self.ack_non_2xx(call, key, raw);
                let min_se = header(raw, "Min-SE").and_then(|v| {
                    v.split(';')
                        .next()
                        .and_then(|n| n.trim().parse::<u32>().ok())
                });
                match min_se {
                    Some(seconds) => {
                        self.calls[call].session_retry = Some(seconds);
                        self.send_invite(now, call);
                    }
                    None => self.invite_failed(now, call, status),
                }
            }
            401 | 407 if self.calls[call].record.auth_retries == 0 => {
                self.ack_non_2xx(call, key, raw);
                let field = if status == 401 {
                    "WWW-Authenticate"
                } else {
                    "Proxy-Authenticate"
                };
                let answer_name = if status == 401 {
                    "Authorization"
                } else {
                    "Proxy-Authorization"
                };
                let uri = self.calls[call].request_uri.clone();
                match self.digest_answer(raw, field, "INVITE", &uri) {
                    Some(authorization) => {
                        let c = &mut self.calls[call];
                        c.record.auth_retries += 1;
                        c.invite_extra = vec![format!("{answer_name}: {authorization}")];
                        self.send_invite(now, call);
                    }
                    None => self.invite_failed(now, call, status),
                }
            }
            _ => {
                self.ack_non_2xx(call, key, raw);
                self.invite_failed(now, call, status);
            }
        }
    }

    fn invite_failed(&mut self, now: Instant, call: CallIndex, status: u16) {
        if self.calls[call].state.is_over() {
            return;
        }
        self.calls[call].record.final_status = Some(status);
        let reason = if status == 487 && self.calls[call].cancel_wanted {
            EndReason::Cancelled
        } else {
            EndReason::Rejected(status)
        };
        self.end(now, call, CallState::Failed, reason, Side::Remote);
        self.events.push_back(UaEvent::Failed { call, status });
    }

    #[allow(clippy::too_many_arguments)]
    fn reinvite_response(
        &mut self,
        now: Instant,
        call: CallIndex,
        key: &TransactionKey,
        status: u16,
        raw: &str,
        direction: Direction,
        refresh: bool,
    ) {
        if status < 200 {
            return;
        }
        self.calls[call].reinvite_pending = None;
        if !refresh {
            self.calls[call]
                .record
                .reinvites_sent
                .push((direction, status));
        }
        let cseq = cseq_number(raw);
        if (200..300).contains(&status) {
            let body = body_of(raw).as_bytes().to_vec();
            if !refresh {
                self.calls[call]
                    .record
                    .answer_directions
                    .push(Direction::of_sdp(&body));
            }
            let ack = self.build_ack_2xx(call, cseq, None);
            if let Some(tx) = self.client.get_mut(key) {
                tx.ack = Some(ack.clone());
            }
            let target = self.calls[call].remote_target;
            self.push_transmit(Some(target), ack);
            self.session_from_response(now, call, raw);
            return;
        }
        self.ack_non_2xx(call, key, raw);
        match status {
            491 => {
                // §14.1: the Call-ID's owner waits 2.1–4 s, the other side 0–2 s.
                let (low, high) = if self.calls[call].role == Role::Uac {
                    (Duration::from_millis(2100), Duration::from_secs(4))
                } else {
                    (Duration::ZERO, Duration::from_secs(2))
                };
                let wait = self.rng.duration_between(low, high);
                let timer = if refresh {
                    CallTimer::Refresh
                } else {
                    CallTimer::RetryReinvite(direction)
                };
                self.arm(call, now + wait, timer);
            }
            // §12.2.1.2: 408 or 481 ends the dialog.
            408 | 481 => self.bye(now, call),
            _ => {}
        }
    }

    fn client_timed_out(&mut self, now: Instant, key: &TransactionKey) {
        let Some(tx) = self.client.get(key) else {
            return;
        };
        let (call, purpose) = (tx.call, tx.purpose.clone());
        match (purpose, call) {
            (Purpose::Invite, Some(call)) => {
                if self.calls[call].state.is_over() {
                    return;
                }
                self.calls[call].record.final_status = Some(408);
                self.end(
                    now,
                    call,
                    CallState::Failed,
                    EndReason::Timeout,
                    Side::Local,
                );
                self.events.push_back(UaEvent::Failed { call, status: 408 });
            }
            (Purpose::Reinvite { .. } | Purpose::Update, Some(call)) => {
                self.calls[call].reinvite_pending = None;
                if !self.calls[call].state.is_over() {
                    self.bye(now, call);
                }
            }
            (Purpose::Register { .. }, _) => {
                self.registration_record.failures.push(408);
                self.events
                    .push_back(UaEvent::RegisterFailed { status: 408 });
            }
            _ => {}
        }
    }

    fn register_response(&mut self, now: Instant, status: u16, raw: &str, expires: u32) {
        match status {
            200..=299 => {
                if let Some(registration) = &mut self.registration {
                    registration.challenges_in_a_row = 0;
                }
                let record = &mut self.registration_record;
                record.successes += 1;
                if expires == 0 {
                    record.registered = false;
                    record.granted = None;
                    self.events.push_back(UaEvent::Unregistered);
                    return;
                }
                let granted =
                    granted_expires(raw, &self.config.addr.to_string()).unwrap_or(expires);
                record.registered = true;
                record.granted = Some(Duration::from_secs(granted.into()));
                self.events.push_back(UaEvent::Registered {
                    expires: Duration::from_secs(granted.into()),
                });
            }
            401 | 407 => {
                self.registration_record.challenges += 1;
                let Some(registration) = &mut self.registration else {
                    return;
                };
                registration.challenges_in_a_row += 1;
                if registration.challenges_in_a_row > 2 {
                    self.registration_record.failures.push(status);
                    self.events.push_back(UaEvent::RegisterFailed { status });
                    return;
                }
                let uri = format!("sip:{}", registration.domain);
                let (field, answer_name) = if status == 401 {
                    ("WWW-Authenticate", "Authorization")
                } else {
                    ("Proxy-Authenticate", "Proxy-Authorization")
                };
                match self.digest_answer(raw, field, "REGISTER", &uri) {
                    Some(answer) => {
                        self.send_register(now, expires, Some(format!("{answer_name}: {answer}")))
                    }
                    None => {
                        self.registration_record.failures.push(status);
                        self.events.push_back(UaEvent::RegisterFailed { status });
                    }
                }
            }
            _ => {
                self.registration_record.failures.push(status);
                self.events.push_back(UaEvent::RegisterFailed { status });
            }
        }
    }

    fn digest_answer(&mut self, raw: &str, field: &str, method: &str, uri: &str) -> Option<String> {
        let credentials = self.config.credentials.clone()?;
        let cnonce = self.rng.hex(8);
        headers(raw, field).into_iter().find_map(|value| {
            let challenge = parse_challenge(&value).ok()?;
            answer_challenge(
                &challenge,
                method,
                uri,
                &credentials.username,
                &credentials.password,
                (&cnonce, 1),
            )
            .ok()
        })
    }

    fn fire_call_timer(&mut self, now: Instant, call: CallIndex, timer: CallTimer) {
        if self.calls[call].state.is_over() {
            return;
        }
        match timer {
            CallTimer::Refresh => {
                if !self.config.refresh {
                    return;
                }
                if self.calls[call].reinvite_pending.is_some() {
                    // A re-INVITE is in flight; its 2xx refreshes the session.
                    return;
                }
                self.calls[call].record.refreshes_sent += 1;
                match self.config.refresh_method {
                    RefreshMethod::Reinvite => {
                        let direction = self.calls[call].direction;
                        self.send_reinvite(now, call, direction, true);
                    }
                    RefreshMethod::Update => {
                        let extra = self.session_request_headers(call);
                        let key =
                            self.send_in_dialog(now, call, "UPDATE", Purpose::Update, extra, None);
                        self.calls[call].reinvite_pending = key;
                    }
                }
            }
            CallTimer::Expire => {
                self.send_in_dialog(now, call, "BYE", Purpose::Bye, Vec::new(), None);
                self.calls[call].record.bye_sent = true;
                self.end(
                    now,
                    call,
                    CallState::Ended,
                    EndReason::SessionExpired,
                    Side::Local,
                );
                self.events.push_back(UaEvent::Ended {
                    call,
                    by: Side::Local,
                });
            }
            CallTimer::RetryReinvite(direction) => self.send_reinvite(now, call, direction, false),
        }
    }

    // ---- session timer (RFC 4028) --------------------------------------------------

    /// The Session-Expires (and Require) of our 2xx to a request that asked for a
    /// session timer; re-arms the timer. `None` when the request asked for none.
    fn accept_session_timer(
        &mut self,
        now: Instant,
        call: CallIndex,
        raw: &str,
    ) -> Option<Vec<String>> {
        let value = header(raw, "Session-Expires")?;
        let (seconds, refresher) = parse_session_expires(&value)?;
        let refresher = refresher.unwrap_or_else(|| "uac".to_string());
        let side = if refresher == "uas" {
            Side::Local
        } else {
            Side::Remote
        };
        let interval = Duration::from_secs(seconds.into());
        self.set_session(now, call, interval, side);
        Some(vec![
            format!("Session-Expires: {seconds};refresher={refresher}"),
            "Require: timer".to_string(),
        ])
    }

    /// Reads the Session-Expires of a 2xx to our INVITE, re-INVITE or UPDATE.
    fn session_from_response(&mut self, now: Instant, call: CallIndex, raw: &str) {
        let Some((seconds, refresher)) =
            header(raw, "Session-Expires").and_then(|v| parse_session_expires(&v))
        else {
            if let Some((interval, side)) = self.calls[call].session {
                // No Session-Expires in a refresh's 2xx: keep the one agreed (§9).
                self.set_session(now, call, interval, side);
            }
            return;
        };
        let side = if refresher.as_deref() == Some("uas") {
            Side::Remote
        } else {
            Side::Local
        };
        self.set_session(now, call, Duration::from_secs(seconds.into()), side);
    }

    fn set_session(&mut self, now: Instant, call: CallIndex, interval: Duration, refresher: Side) {
        let c = &mut self.calls[call];
        if c.state.is_over() {
            // A 2xx to a re-INVITE that crossed our BYE: no timer outlives its call.
            return;
        }
        c.session = Some((interval, refresher));
        c.record.session = Some((interval, refresher));
        self.disarm(call, |t| {
            matches!(t, CallTimer::Refresh | CallTimer::Expire)
        });
        match refresher {
            Side::Local => self.arm(call, now + interval / 2, CallTimer::Refresh),
            Side::Remote => self.arm(
                call,
                now + interval - expiry_margin(interval),
                CallTimer::Expire,
            ),
        }
    }

    fn session_request_headers(&self, call: CallIndex) -> Vec<String> {
        let mut extra = vec!["Supported: timer".to_string()];
        if let Some((interval, _)) = self.calls[call].session {
            extra.push(format!(
                "Session-Expires: {};refresher=uac",
                interval.as_secs()
            ));
        }
        extra
    }

    fn arm(&mut self, call: CallIndex, at: Instant, timer: CallTimer) {
        let slot = (at, self.next_timer);
        self.next_timer += 1;
        self.timers.insert(slot, (call, timer));
        self.calls[call].timers.push(slot);
    }

    fn disarm(&mut self, call: CallIndex, which: impl Fn(CallTimer) -> bool) {
        let slots = std::mem::take(&mut self.calls[call].timers);
        let mut kept = Vec::new();
        for slot in slots {
            match self.timers.get(&slot) {
                Some(&(_, timer)) if which(timer) => {
                    self.timers.remove(&slot);
                }
                Some(_) => kept.push(slot),
                None => {}
            }
        }
        self.calls[call].timers = kept;
    }

    fn end(
        &mut self,
        now: Instant,
        call: CallIndex,
        state: CallState,
        reason: EndReason,
        by: Side,
    ) {
        self.disarm(call, |_| true);
        let c = &mut self.calls[call];
        c.state = state;
        c.record.ended_at = Some(now);
        c.record.ended_by = Some(by);
        c.record.end_reason = Some(reason);
    }

    // ---- building and sending -------------------------------------------------------

    fn send_invite(&mut self, now: Instant, call: CallIndex) {
        let branch = self.new_branch();
        let body = if self.calls[call].late_offer {
            None
        } else {
            Some(self.offer_sdp(call))
        };
        let mut extra = vec![self.contact_header_text()];
        extra.push("Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE".to_string());
        if let Some(seconds) = self.config.session_expires {
            let seconds = self.calls[call]
                .session_retry
                .map_or(seconds, |min| min.max(seconds));
            extra.push("Supported: timer".to_string());
            extra.push(format!("Session-Expires: {seconds};refresher=uac"));
            if let Some(min) = self.calls[call].session_retry {
                extra.push(format!("Min-SE: {min}"));
            }
        }
        extra.extend(self.calls[call].invite_extra.clone());
        let c = &mut self.calls[call];
        c.local_cseq += 1;
        c.invite_cseq = c.local_cseq;
        c.invite_branch = branch.clone();
        let cseq = c.invite_cseq;
        let text = self.render_request(call, "INVITE", None, &branch, cseq, extra, body);
        let key = self.client_key(&branch, "INVITE");
        self.calls[call].invite_key = Some(key.clone());
        let target = self.calls[call].peer;
        self.start_client(now, key, call, Purpose::Invite, target, text);
    }

    fn send_cancel(&mut self, now: Instant, call: CallIndex) {
        let c = &self.calls[call];
        let branch = c.invite_branch.clone();
        let cseq = c.invite_cseq;
        // §9.1: same Request-URI, Call-ID, From, To (no tag), CSeq number and Via branch.
        let mut text = format!(
            "CANCEL {} SIP/2.0\r\n{}From: {};tag={}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} CANCEL\r\nMax-Forwards: 70\r\n",
            c.request_uri,
            self.via(&branch),
            c.local_uri,
            c.local_tag,
            c.remote_uri,
            c.call_id,
        );
        text.push_str("Content-Length: 0\r\n\r\n");
        self.calls[call].record.cancel_sent = true;
        let key = self.client_key(&branch, "CANCEL");
        let target = self.calls[call].peer;
        self.start_client(now, key, call, Purpose::Cancel, target, text);
    }

    fn send_reinvite(
        &mut self,
        now: Instant,
        call: CallIndex,
        direction: Direction,
        refresh: bool,
    ) {
        let c = &self.calls[call];
        if c.state != CallState::Confirmed || c.reinvite_pending.is_some() {
            if !refresh && !c.state.is_over() {
                // Busy with another re-INVITE: try again shortly.
                self.arm(
                    call,
                    now + Duration::from_millis(500),
                    CallTimer::RetryReinvite(direction),
                );
            }
            return;
        }
        if direction != c.direction {
            self.calls[call].sdp_version += 1;
            self.calls[call].direction = direction;
        }
        let body = self.offer_sdp(call);
        let mut extra = self.session_request_headers(call);
        extra.push(self.contact_header_text());
        let key = self.send_in_dialog(
            now,
            call,
            "INVITE",
            Purpose::Reinvite { direction, refresh },
            extra,
            Some(body),
        );
        self.calls[call].reinvite_pending = key;
    }

    /// A request inside the dialog (§12.2.1.1), to the remote target.
    fn send_in_dialog(
        &mut self,
        now: Instant,
        call: CallIndex,
        method: &str,
        purpose: Purpose,
        extra: Vec<String>,
        body: Option<String>,
    ) -> Option<TransactionKey> {
        let branch = self.new_branch();
        self.calls[call].local_cseq += 1;
        let cseq = self.calls[call].local_cseq;
        let uri = self.calls[call].remote_target_uri.clone();
        let text = self.render_request(call, method, Some(&uri), &branch, cseq, extra, body);
        let key = self.client_key(&branch, method);
        let target = self.calls[call].remote_target;
        self.start_client(now, key.clone(), call, purpose, target, text);
        Some(key)
    }

    fn send_register(&mut self, now: Instant, expires: u32, authorization: Option<String>) {
        let branch = self.new_branch();
        let via = self.via(&branch);
        let contact = self.contact_uri();
        let user = self.config.user.clone();
        let Some(registration) = &mut self.registration else {
            return;
        };
        registration.cseq += 1;
        let mut text = format!(
            "REGISTER sip:{domain} SIP/2.0\r\n{via}Max-Forwards: 70\r\nFrom: <sip:{user}@{domain}>;tag={tag}\r\nTo: <sip:{user}@{domain}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nContact: <{contact}>;expires={expires}\r\nExpires: {expires}\r\nUser-Agent: hotline-sim\r\n",
            domain = registration.domain,
            tag = registration.tag,
            call_id = registration.call_id,
            cseq = registration.cseq,
        );
        if let Some(authorization) = authorization {
            text.push_str(&authorization);
            text.push_str("\r\n");
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        let registrar = registration.registrar;
        let key = self.client_key(&branch, "REGISTER");
        self.client.insert(
            key.clone(),
            ClientTx {
                call: None,
                purpose: Purpose::Register { expires },
                ack: None,
            },
        );
        let reliability = reliability(self.config.transport);
        if let Err(e) =
            self.transactions
                .send_request(now, key, registrar, reliability, Bytes::from(text))
        {
            self.errors.push(format!("REGISTER not sent: {e}"));
        }
        self.drain_transactions(now);
    }

    fn start_client(
        &mut self,
        now: Instant,
        key: TransactionKey,
        call: CallIndex,
        purpose: Purpose,
        target: SocketAddr,
        text: String,
    ) {
        self.client.insert(
            key.clone(),
            ClientTx {
                call: Some(call),
                purpose,
                ack: None,
            },
        );
        let reliability = reliability(self.config.transport);
        if let Err(e) =
            self.transactions
                .send_request(now, key, target, reliability, Bytes::from(text))
        {
            self.errors.push(format!("request not sent: {e}"));
        }
        self.drain_transactions(now);
    }

    /// The ACK for a 2xx: a new transaction-less request with a fresh branch, the
    /// INVITE's CSeq number, to the remote target (§13.2.2.4).
    fn build_ack_2xx(&mut self, call: CallIndex, cseq: u32, body: Option<String>) -> Bytes {
        let branch = self.new_branch();
        let uri = self.calls[call].remote_target_uri.clone();
        Bytes::from(self.render_request(call, "ACK", Some(&uri), &branch, cseq, Vec::new(), body))
    }

    /// The ACK for a 300–699: same branch as the INVITE, the response's To (§17.1.1.3);
    /// the transaction sends it again for each retransmitted final.
    fn ack_non_2xx(&mut self, call: CallIndex, key: &TransactionKey, raw: &str) {
        let c = &self.calls[call];
        let to = header(raw, "To").unwrap_or_else(|| c.remote_uri.clone());
        let cseq = cseq_number(raw);
        let text = format!(
            "ACK {} SIP/2.0\r\n{}Max-Forwards: 70\r\nFrom: {};tag={}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n",
            c.request_uri,
            self.via(&key.branch),
            c.local_uri,
            c.local_tag,
            c.call_id,
        );
        if let Err(e) = self.transactions.send_ack(key, Bytes::from(text)) {
            self.errors.push(format!("ACK not sent: {e}"));
        }
    }

    fn resend_ack_for_stray_2xx(&mut self, call_id: &str, _response: &message::Response) {
        // Find the ACK we sent for this call's INVITE among live client records; once the
        // INVITE transaction is gone (64·T1 after its 2xx) a late 2xx is dropped.
        let target = self
            .calls
            .iter()
            .find(|c| c.call_id == call_id)
            .map(|c| c.remote_target);
        let ack = self
            .client
            .values()
            .filter(|tx| tx.call.is_some_and(|c| self.calls[c].call_id == call_id))
            .find_map(|tx| tx.ack.clone());
        if let Some(ack) = ack {
            self.push_transmit(target, ack);
        }
    }

    fn push_transmit(&mut self, destination: Option<SocketAddr>, payload: Bytes) {
        if let Some(destination) = destination {
            self.transmits.push_back(Transmit {
                destination,
                transport: self.config.transport,
                payload,
            });
        }
    }

    /// Responds on the INVITE server transaction of `call`.
    fn respond_invite(
        &mut self,
        now: Instant,
        call: CallIndex,
        status: u16,
        extra: Vec<String>,
        body: Option<String>,
    ) {
        let c = &self.calls[call];
        let (Some(key), Some(request)) = (c.invite_key.clone(), c.invite_request.as_ref()) else {
            return;
        };
        let tag = (status > 100).then(|| c.local_tag.clone());
        let mut headers: Vec<_> = extra
            .iter()
            .filter_map(|line| line.split_once(": "))
            .map(|(name, value)| make_header(name, value.to_string()))
            .collect();
        if status > 100 && status < 300 && !extra.iter().any(|l| l.starts_with("Contact:")) {
            headers.push(make_header("Contact", format!("<{}>", self.contact_uri())));
        }
        let response = build_response(
            request,
            status,
            tag.as_deref(),
            headers,
            body.map(|b| ("application/sdp", b.into_bytes())),
        );
        self.send_response(now, &key, status, response.to_string());
    }

    /// A response without a body to any request.
    fn respond_plain(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        request: &Request,
        status: u16,
        extra: Vec<String>,
    ) {
        let tag = self.rng.hex(6);
        let headers: Vec<_> = extra
            .iter()
            .filter_map(|line| line.split_once(": "))
            .map(|(name, value)| make_header(name, value.to_string()))
            .collect();
        let response = build_response(request, status, Some(&tag), headers, None);
        self.send_response(now, key, status, response.to_string());
    }

    fn send_response(&mut self, now: Instant, key: &TransactionKey, status: u16, text: String) {
        if let Err(e) = self
            .transactions
            .send_response(now, key, status, Bytes::from(text))
        {
            self.errors.push(format!("{status} not sent: {e}"));
        }
        self.drain_transactions(now);
    }

    #[allow(clippy::too_many_arguments)]
    fn render_request(
        &self,
        call: CallIndex,
        method: &str,
        request_uri: Option<&str>,
        branch: &str,
        cseq: u32,
        extra: Vec<String>,
        body: Option<String>,
    ) -> String {
        let c = &self.calls[call];
        let request_uri = request_uri.unwrap_or(&c.request_uri);
        let to = match &c.remote_tag {
            Some(tag) => format!("{};tag={tag}", c.remote_uri),
            None => c.remote_uri.clone(),
        };
        let cseq_method = if method == "ACK" { "ACK" } else { method };
        let mut text = format!(
            "{method} {request_uri} SIP/2.0\r\n{}Max-Forwards: 70\r\nFrom: {};tag={}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {cseq} {cseq_method}\r\nUser-Agent: hotline-sim\r\n",
            self.via(branch),
            c.local_uri,
            c.local_tag,
            c.call_id,
        );
        let typed = extra
            .iter()
            .any(|line| line.to_ascii_lowercase().starts_with("content-type:"));
        for line in extra {
            text.push_str(&line);
            text.push_str("\r\n");
        }
        match body {
            Some(body) => {
                if !typed {
                    text.push_str("Content-Type: application/sdp\r\n");
                }
                text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
            }
            None => text.push_str("Content-Length: 0\r\n\r\n"),
        }
        text
    }

    fn via(&self, branch: &str) -> String {
        format!(
            "Via: SIP/2.0/{} {};branch={branch};rport\r\n",
            self.config.transport.via_token(),
            self.config.addr
        )
    }

    fn contact_uri(&self) -> String {
        let transport = match self.config.transport {
            TransportKind::Udp => "",
            TransportKind::Tcp => ";transport=tcp",
        };
        format!("sip:{}@{}{transport}", self.config.user, self.config.addr)
    }

    fn contact_header_text(&self) -> String {
        format!("Contact: <{}>", self.contact_uri())
    }

    fn client_key(&self, branch: &str, method: &str) -> TransactionKey {
        TransactionKey::rfc3261(
            branch,
            KeyMethod::from_name(method),
            &self.config.addr.to_string(),
        )
    }

    fn new_branch(&mut self) -> String {
        format!("{}{}", TransactionKey::MAGIC_COOKIE, self.rng.hex(10))
    }

    fn media_port(&self, index: CallIndex) -> u16 {
        if let Some(port) = self.config.media_port {
            return port;
        }
        40_000u16.wrapping_add(((index % 10_000) * 2) as u16)
    }

    fn offer_sdp(&self, call: CallIndex) -> String {
        let c = &self.calls[call];
        let ip = self.config.addr.ip();
        format!(
            "v=0\r\no=- {session} {version} IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na={direction}\r\n",
            session = session_id(&c.call_id),
            version = c.sdp_version,
            port = c.media_port,
            direction = c.direction.attribute(),
        )
    }

    /// Our answer to `offer`, or `None` when nothing in it is acceptable (488).
    fn answer_sdp(&mut self, call: CallIndex, offer: &[u8]) -> Option<String> {
        let negotiated = match sdp::negotiate(offer, &self.config.codecs) {
            Ok(negotiated) => negotiated,
            Err(e) => {
                self.errors.push(format!("unacceptable offer: {e}"));
                return None;
            }
        };
        let direction = Direction::of_sdp(offer).answer();
        let c = &mut self.calls[call];
        if direction != c.direction {
            c.sdp_version += 1;
            c.direction = direction;
        }
        c.record.codec = Some(negotiated.codec);
        let ip: IpAddr = self.config.addr.ip();
        let pt = negotiated.codec.payload_type();
        let (events_fmt, events_lines) = match negotiated.remote_telephone_event_pt {
            Some(event_pt) => (
                format!(" {event_pt}"),
                format!("a=rtpmap:{event_pt} telephone-event/8000\r\na=fmtp:{event_pt} 0-16\r\n"),
            ),
            None => (String::new(), String::new()),
        };
        Some(format!(
            "v=0\r\no=- {session} {version} IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {pt}{events_fmt}\r\na=rtpmap:{pt} {name}/8000\r\n{events_lines}a=ptime:20\r\na={direction}\r\n",
            session = session_id(&c.call_id),
            version = c.sdp_version,
            port = c.media_port,
            name = negotiated.codec.encoding_name(),
            direction = direction.attribute(),
        ))
    }
}

fn reliability(transport: TransportKind) -> Reliability {
    if transport.is_reliable() {
        Reliability::Reliable
    } else {
        Reliability::Unreliable
    }
}

fn session_id(call_id: &str) -> u64 {
    call_id.bytes().fold(1_000u64, |acc, b| {
        acc.wrapping_mul(31).wrapping_add(u64::from(b))
    }) % 1_000_000_000
}

fn codec_of(body: &[u8]) -> Option<Codec> {
    sdp::negotiate(body, &[Codec::Pcmu, Codec::Pcma])
        .ok()
        .map(|n| n.codec)
}

fn first_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]);
    text.lines().next().unwrap_or("").to_string()
}

// ---- reading raw SIP text --------------------------------------------------------
//
// The crate's parser has already accepted the message (classify); these read the few
// header values the peers need from the text itself, compact forms included.

fn canonical(name: &str) -> String {
    let name = name.trim();
    let long = match name.to_ascii_lowercase().as_str() {
        "i" => "call-id",
        "m" => "contact",
        "f" => "from",
        "t" => "to",
        "v" => "via",
        "x" => "session-expires",
        "k" => "supported",
        "c" => "content-type",
        "l" => "content-length",
        other => return other.to_string(),
    };
    long.to_string()
}

fn head_of(raw: &str) -> &str {
    let end = raw
        .find("\r\n\r\n")
        .or_else(|| raw.find("\n\n"))
        .unwrap_or(raw.len());
    &raw[..end]
}

/// The body of a message (after the first empty line).
pub(crate) fn body_of(raw: &str) -> &str {
    if let Some(at) = raw.find("\r\n\r\n") {
        return &raw[at + 4..];
    }
    raw.find("\n\n").map_or("", |at| &raw[at + 2..])
}

/// Every value of header `name` (case-insensitive, compact forms too, folded lines
/// joined), in order.
pub(crate) fn headers(raw: &str, name: &str) -> Vec<String> {
    let wanted = canonical(name);
    let mut lines: Vec<String> = Vec::new();
    for line in head_of(raw).lines().skip(1) {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = lines.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
            continue;
        }
        lines.push(line.trim_end().to_string());
    }
    lines
        .into_iter()
        .filter_map(|line| {
            let (n, value) = line.split_once(':')?;
            (canonical(n) == wanted).then(|| value.trim().to_string())
        })
        .collect()
}

/// The first value of header `name`.
pub(crate) fn header(raw: &str, name: &str) -> Option<String> {
    headers(raw, name).into_iter().next()
}

fn cseq_number(raw: &str) -> u32 {
    header(raw, "CSeq")
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// The `tag` parameter of a From/To value.
fn tag_of(value: &str) -> Option<String> {
    let params = match value.rfind('>') {
        Some(at) => &value[at + 1..],
        None => value.split_once(';').map_or("", |(_, p)| p),
    };
    params.split(';').find_map(|param| {
        let (name, tag) = param.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("tag")
            .then(|| tag.trim().to_string())
    })
}

/// A From/To value without its `tag` parameter.
fn strip_tag(value: &str) -> String {
    let (addr, params) = match value.rfind('>') {
        Some(at) => (&value[..=at], &value[at + 1..]),
        None => match value.split_once(';') {
            Some((addr, params)) => (addr, params),
            None => (value, ""),
        },
    };
    let kept: Vec<&str> = params
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty() && !p.to_ascii_lowercase().starts_with("tag="))
        .collect();
    let mut out = addr.trim().to_string();
    for param in kept {
        out.push(';');
        out.push_str(param);
    }
    out
}

/// The URI of a name-addr or addr-spec (`<sip:a@b;transport=tcp>` → `sip:a@b;transport=tcp`).
fn uri_of(value: &str) -> String {
    let first = value.split(',').next().unwrap_or(value);
    match (first.find('<'), first.find('>')) {
        (Some(open), Some(close)) if close > open => first[open + 1..close].to_string(),
        _ => first.split(';').next().unwrap_or(first).trim().to_string(),
    }
}

/// The socket address of a `sip:` URI's host and port (5060 when absent).
fn addr_of_uri(uri: &str) -> Option<SocketAddr> {
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))?;
    let host_port = rest.rsplit('@').next()?;
    let host_port = host_port.split([';', '?', '>']).next().unwrap_or(host_port);
    host_port
        .parse()
        .ok()
        .or_else(|| format!("{host_port}:5060").parse().ok())
}

/// `90;refresher=uac` → (90, Some("uac")).
fn parse_session_expires(value: &str) -> Option<(u32, Option<String>)> {
    let mut parts = value.split(';');
    let seconds = parts.next()?.trim().parse().ok()?;
    let refresher = parts.find_map(|param| {
        let (name, value) = param.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("refresher")
            .then(|| value.trim().to_ascii_lowercase())
    });
    Some((seconds, refresher))
}

/// The expiry a REGISTER 2xx granted our contact: its `expires` parameter, else the
/// Expires header.
fn granted_expires(raw: &str, our_host_port: &str) -> Option<u32> {
    let from_contact = headers(raw, "Contact")
        .into_iter()
        .flat_map(|value| value.split(',').map(str::to_string).collect::<Vec<_>>())
        .filter(|contact| contact.contains(our_host_port))
        .find_map(|contact| {
            contact.split(';').find_map(|param| {
                let (name, value) = param.trim().split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("expires")
                    .then(|| value.trim().parse().ok())?
            })
        });
    from_contact.or_else(|| header(raw, "Expires").and_then(|v| v.trim().parse().ok()))
}

/// A response through the crate's one typed builder (the peers write their requests by
/// hand, as a phone would; their responses follow RFC 3261 §8.2.6 like the engine's).
pub(super) fn build_response(
    request: &Request,
    status: u16,
    to_tag: Option<&str>,
    headers: Vec<Header>,
    body: Option<(&str, Vec<u8>)>,
) -> Response {
    let mut builder = crate::sip::builder::ResponseBuilder::to(request, status);
    if let Some(tag) = to_tag {
        builder = builder.to_tag(tag);
    }
    for header in headers {
        builder = builder.header(header);
    }
    if let Some((content_type, bytes)) = body {
        builder = builder.body(content_type, bytes);
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_header_reading_handles_compact_forms_and_tags() {
        let raw = "SIP/2.0 200 OK\r\nv: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\nt: <sip:a@127.0.0.1>;tag=abc\r\nx: 120;refresher=uas\r\nm: <sip:b@127.0.0.2:5070;transport=tcp>;expires=60\r\n\r\nbody";
        assert_eq!(tag_of(&header(raw, "To").unwrap()).as_deref(), Some("abc"));
        assert_eq!(strip_tag(&header(raw, "To").unwrap()), "<sip:a@127.0.0.1>");
        assert_eq!(
            parse_session_expires(&header(raw, "Session-Expires").unwrap()),
            Some((120, Some("uas".into())))
        );
        let contact = uri_of(&header(raw, "Contact").unwrap());
        assert_eq!(contact, "sip:b@127.0.0.2:5070;transport=tcp");
        assert_eq!(
            addr_of_uri(&contact),
            Some("127.0.0.2:5070".parse().unwrap())
        );
        assert_eq!(granted_expires(raw, "127.0.0.2:5070"), Some(60));
        assert_eq!(body_of(raw), "body");
    }

    #[test]
    fn answer_directions_mirror_the_offer() {
        assert_eq!(Direction::SendOnly.answer(), Direction::RecvOnly);
        assert_eq!(Direction::Inactive.answer(), Direction::Inactive);
        assert_eq!(
            Direction::of_sdp(b"v=0\r\nm=audio 1 RTP/AVP 0\r\na=sendonly\r\n"),
            Direction::SendOnly
        );
    }
}
