//! SIP transactions (RFC 3261 §17, with the RFC 6026 "Accepted" states): the four
//! transaction state machines, their retransmissions and the RFC 3261 timers.
//!
//! Pure and sans-IO: the engine parses messages, computes each message's
//! [`TransactionKey`] and hands in the opaque bytes to send; this layer decides what to
//! (re)transmit and when. Inputs are `handle_*`/`send_*` calls carrying `now`; outputs
//! are drained with [`Transactions::poll_transmit`] and [`Transactions::poll_event`],
//! and [`Transactions::poll_timeout`] tells when to call
//! [`Transactions::handle_timeout`] next. It never reads the clock.
//!
//! One deviation from RFC 3261, following RFC 6026 and §13.3.1.4: the INVITE server
//! transaction owns the retransmission of its 2xx until the ACK arrives, so the engine
//! does not run its own 2xx timer.

mod timer;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use timer::TimerKind;
use timer::{TimerQueue, TimerTable, TxId};

/// The RFC 3261 timer base values (§17, table 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerConfig {
    /// Round-trip estimate: first retransmission interval and 64·T1 transaction timeout.
    pub t1: Duration,
    /// Cap on the retransmission interval of non-INVITE requests and INVITE responses.
    pub t2: Duration,
    /// How long a message may linger in the network: absorb window after completion.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// A zero T1 would make retransmission timers re-arm at the instant they fire and
    /// spin `handle_timeout`; the floor keeps every retransmission interval positive.
    fn sanitized(self) -> Self {
        let t1 = self.t1.max(Duration::from_millis(1));
        TimerConfig {
            t1,
            t2: self.t2.max(t1),
            t4: self.t4,
        }
    }

    fn timeout_64_t1(&self) -> Duration {
        self.t1 * 64
    }
}

/// Whether the transport retransmits for us. Over a reliable transport (TCP) the
/// transaction sends nothing twice and the absorb timers D, I, J and K are zero (§17).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reliability {
    /// UDP: this layer retransmits.
    Unreliable,
    /// TCP: the transport delivers or fails; no retransmissions.
    Reliable,
}

/// The method part of a transaction key. ACK shares the INVITE's key (an ACK for a
/// non-2xx belongs to the INVITE server transaction); CANCEL has a transaction of its
/// own with the INVITE's branch (§9.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyMethod {
    /// INVITE, and ACK.
    Invite,
    /// CANCEL.
    Cancel,
    /// Any other method, by its name (methods are case-sensitive, RFC 3261 §7.1).
    Other(String),
}

impl KeyMethod {
    /// The key method of a request or CSeq method name; `"ACK"` maps to [`KeyMethod::Invite`].
    pub fn from_name(name: &str) -> Self {
        match name {
            "INVITE" | "ACK" => KeyMethod::Invite,
            "CANCEL" => KeyMethod::Cancel,
            other => KeyMethod::Other(other.to_owned()),
        }
    }
}

impl From<&rsipstack::sip::Method> for KeyMethod {
    fn from(method: &rsipstack::sip::Method) -> Self {
        KeyMethod::from_name(&method.to_string())
    }
}

/// Identifies one transaction (RFC 3261 §17.1.3 for clients, §17.2.3 for servers).
/// The engine computes it from the message; the constructors cover both cases.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TransactionKey {
    /// The top Via branch, or for RFC 2543 peers a synthetic value built by
    /// [`TransactionKey::rfc2543`] that can never equal a real branch.
    pub branch: String,
    /// INVITE/ACK, CANCEL or another method.
    pub method: KeyMethod,
    /// The top Via sent-by (host lower-cased), or for RFC 2543 peers the whole top Via.
    pub sent_by: String,
    /// The Call-ID, in keys of requests we receive. RFC 3261 §17.2.3 matches on the
    /// branch and sent-by alone, trusting peers to make branches unique; some reuse one
    /// across calls (SIPp's out-of-call scenarios send every BYE with the same branch),
    /// and a request of another call must then be a new transaction, not the
    /// retransmission of an old one answered with that call's response. Empty in keys of
    /// our own requests, whose branches are unique.
    pub call_id: String,
}

impl TransactionKey {
    /// The RFC 3261 branch prefix that promises a globally unique branch.
    pub const MAGIC_COOKIE: &'static str = "z9hG4bK";

    /// Key of a request whose top Via branch carries the magic cookie, or of a response
    /// to a request we sent (our branch and our sent-by).
    pub fn rfc3261(branch: &str, method: KeyMethod, sent_by: &str) -> Self {
        TransactionKey {
            branch: branch.to_owned(),
            method,
            sent_by: sent_by.to_ascii_lowercase(),
            call_id: String::new(),
        }
    }

    /// Key of a request from an RFC 2543 peer, whose branch is not unique: the
    /// transaction is the Call-ID, From tag, CSeq number and top Via together
    /// (§17.2.3). The To tag is left out so an ACK still matches its INVITE.
    pub fn rfc2543(
        call_id: &str,
        from_tag: &str,
        cseq_number: u32,
        top_via: &str,
        method: KeyMethod,
    ) -> Self {
        // Spaces cannot occur in a Via branch token, so this never collides with rfc3261 keys.
        TransactionKey {
            branch: format!("rfc2543 {call_id} {from_tag} {cseq_number}"),
            method,
            sent_by: top_via.trim().to_owned(),
            call_id: String::new(),
        }
    }

    /// Picks [`TransactionKey::rfc3261`] when `branch` has the magic cookie and
    /// [`TransactionKey::rfc2543`] otherwise.
    pub fn for_request(
        method: KeyMethod,
        branch: Option<&str>,
        sent_by: &str,
        call_id: &str,
        from_tag: &str,
        cseq_number: u32,
        top_via: &str,
    ) -> Self {
        match branch {
            Some(branch) if branch.starts_with(Self::MAGIC_COOKIE) => TransactionKey {
                call_id: call_id.to_owned(),
                ..Self::rfc3261(branch, method, sent_by)
            },
            _ => Self::rfc2543(call_id, from_tag, cseq_number, top_via, method),
        }
    }

    /// Whether the key came from a magic-cookie branch.
    pub fn is_rfc3261(&self) -> bool {
        self.branch.starts_with(Self::MAGIC_COOKIE)
    }

    fn with_method(&self, method: KeyMethod) -> Self {
        TransactionKey {
            branch: self.branch.clone(),
            method,
            sent_by: self.sent_by.clone(),
            call_id: self.call_id.clone(),
        }
    }
}

/// Bytes to put on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub destination: SocketAddr,
    pub reliability: Reliability,
    pub payload: Bytes,
}

/// What the engine (the transaction user) must learn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransactionEvent {
    /// A final response never got its ACK: timer H for a 300–699, or timer L for a 2xx,
    /// in which case the engine must end the dialog with a BYE (§13.3.1.4).
    ServerTimedOut { key: TransactionKey },
    /// The ACK for our 2xx arrived (once per INVITE): the dialog is confirmed.
    AckReceived { key: TransactionKey },
    /// A response to a request we sent, retransmissions excluded (except 2xx to an
    /// INVITE, which the engine must ACK again).
    ClientResponse {
        key: TransactionKey,
        status: u16,
        payload: Bytes,
    },
    /// Timer B or F: no final response to a request we sent.
    ClientTimedOut { key: TransactionKey },
    /// The transaction is gone; its key is free.
    Terminated { key: TransactionKey },
}

/// What an incoming request is to the transaction layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestDisposition {
    /// A new server transaction exists: pass the request to the engine, which must
    /// answer it with [`Transactions::send_response`].
    New,
    /// A retransmission, absorbed; the last response may have been queued again.
    Retransmission,
    /// The ACK for our 300–699 final: absorbed by the INVITE server transaction.
    AckForNon2xx,
    /// The first ACK for our 2xx; [`TransactionEvent::AckReceived`] was queued too.
    AckFor2xx,
    /// An ACK that matches no transaction. An ACK for a 2xx normally carries a fresh
    /// branch (§17.1.1.3): the engine matches it to its dialog and reports it with
    /// [`Transactions::handle_2xx_ack`]. ACKs are never answered.
    StrayAck,
    /// A new CANCEL whose INVITE server transaction is alive. The engine answers the
    /// CANCEL 200; if `invite_final_sent` is false it also answers the INVITE 487,
    /// otherwise the INVITE already has its final response and stays as it is.
    CancelTarget {
        invite_key: TransactionKey,
        invite_final_sent: bool,
    },
    /// A new CANCEL that matches no INVITE: the engine answers it 481.
    CancelNoMatch,
}

/// Misuse of the transaction layer by the engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    /// No live transaction has this key (it never existed, or it has terminated).
    #[error("no live transaction for branch {branch}")]
    UnknownTransaction { branch: String },
    /// The transaction already sent or received its final response.
    #[error("transaction {branch} already has its final response")]
    FinalResponseAlreadySent { branch: String },
    /// A status code outside 100–699.
    #[error("status code {0} is outside 100-699")]
    InvalidStatus(u16),
    /// A client transaction with this key is already running.
    #[error("a client transaction with branch {branch} already exists")]
    DuplicateTransaction { branch: String },
    /// The transaction is not an INVITE client transaction that received a 300–699.
    #[error("transaction {branch} is not waiting for an ACK to a non-2xx")]
    NotAwaitingAck { branch: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InviteServerState {
    Proceeding,
    /// RFC 6026: the 2xx was sent; `acked` once its ACK arrived.
    Accepted {
        acked: bool,
    },
    Completed,
    Confirmed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NonInviteState {
    Trying,
    Proceeding,
    Completed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InviteClientState {
    Calling,
    Proceeding,
    /// RFC 6026: a 2xx arrived; retransmitted 2xx still reach the engine.
    Accepted,
    Completed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Machine {
    InviteServer(InviteServerState),
    NonInviteServer(NonInviteState),
    InviteClient(InviteClientState),
    NonInviteClient(NonInviteState),
}

impl Machine {
    fn is_server(self) -> bool {
        matches!(self, Machine::InviteServer(_) | Machine::NonInviteServer(_))
    }
}

#[derive(Debug)]
struct Transaction {
    key: TransactionKey,
    machine: Machine,
    peer: SocketAddr,
    reliability: Reliability,
    /// Server: the last response sent. Client: the request.
    last_sent: Option<Bytes>,
    /// INVITE client: the ACK the engine built for a 300–699.
    ack: Option<Bytes>,
    /// Current interval of the retransmission timer that is running (A, E, G or 2xx).
    retransmit_interval: Duration,
    timers: TimerTable,
}

impl Transaction {
    fn transmit(&self) -> Option<Transmit> {
        self.last_sent.as_ref().map(|payload| Transmit {
            destination: self.peer,
            reliability: self.reliability,
            payload: payload.clone(),
        })
    }
}

/// All SIP transactions of the engine: server and client, INVITE and non-INVITE.
#[derive(Debug)]
pub struct Transactions {
    config: TimerConfig,
    transactions: HashMap<TxId, Transaction>,
    servers: HashMap<TransactionKey, TxId>,
    clients: HashMap<TransactionKey, TxId>,
    timers: TimerQueue,
    next_id: TxId,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TransactionEvent>,
}

impl Transactions {
    pub fn new(config: TimerConfig) -> Self {
        Transactions {
            config: config.sanitized(),
            transactions: HashMap::new(),
            servers: HashMap::new(),
            clients: HashMap::new(),
            timers: TimerQueue::default(),
            next_id: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Live transactions, server and client.
    pub fn len(&self) -> usize {
        self.transactions.len()
    }

    /// Gives back the room a burst of transactions left (see [`crate::capacity`]).
    pub fn shrink_idle(&mut self) {
        use crate::capacity::ShrinkIdle;
        self.transactions.shrink_idle();
        self.servers.shrink_idle();
        self.clients.shrink_idle();
        self.transmits.shrink_idle();
        self.events.shrink_idle();
    }

    pub fn is_empty(&self) -> bool {
        self.transactions.is_empty()
    }

    /// Matches an incoming request to a server transaction (§17.2.3), creating one for a
    /// new request. `key.method` says INVITE, CANCEL or other; `is_ack` marks an ACK,
    /// whose key carries [`KeyMethod::Invite`] like its INVITE.
    pub fn handle_request(
        &mut self,
        now: Instant,
        key: TransactionKey,
        is_ack: bool,
        source: SocketAddr,
        reliability: Reliability,
    ) -> RequestDisposition {
        if is_ack {
            let key = key.with_method(KeyMethod::Invite);
            return match self.servers.get(&key) {
                Some(&id) => self.handle_ack(now, id),
                None => RequestDisposition::StrayAck,
            };
        }
        if let Some(&id) = self.servers.get(&key) {
            self.handle_retransmitted_request(id);
            return RequestDisposition::Retransmission;
        }

        let machine = match key.method {
            KeyMethod::Invite => Machine::InviteServer(InviteServerState::Proceeding),
            KeyMethod::Cancel | KeyMethod::Other(_) => {
                Machine::NonInviteServer(NonInviteState::Trying)
            }
        };
        let is_cancel = key.method == KeyMethod::Cancel;
        self.insert(key.clone(), machine, source, reliability, None);
        if !is_cancel {
            return RequestDisposition::New;
        }
        let invite_key = key.with_method(KeyMethod::Invite);
        match self
            .servers
            .get(&invite_key)
            .and_then(|id| self.transactions.get(id))
        {
            Some(invite) => RequestDisposition::CancelTarget {
                invite_final_sent: invite.machine
                    != Machine::InviteServer(InviteServerState::Proceeding),
                invite_key,
            },
            None => RequestDisposition::CancelNoMatch,
        }
    }

    /// Reports an ACK for a 2xx that the engine matched to the dialog of `invite_key`
    /// because its branch was new (see [`RequestDisposition::StrayAck`]).
    pub fn handle_2xx_ack(
        &mut self,
        now: Instant,
        invite_key: &TransactionKey,
    ) -> RequestDisposition {
        match self.servers.get(invite_key) {
            Some(&id) => self.handle_ack(now, id),
            None => RequestDisposition::StrayAck,
        }
    }

    /// Sends a response on a server transaction, to the address the request came from.
    pub fn send_response(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        status: u16,
        payload: Bytes,
    ) -> Result<(), TransactionError> {
        if !(100..=699).contains(&status) {
            return Err(TransactionError::InvalidStatus(status));
        }
        let id = *self
            .servers
            .get(key)
            .ok_or_else(|| TransactionError::UnknownTransaction {
                branch: key.branch.clone(),
            })?;
        let config = self.config;
        let Some(tx) = self.transactions.get_mut(&id) else {
            return Err(TransactionError::UnknownTransaction {
                branch: key.branch.clone(),
            });
        };
        let unreliable = tx.reliability == Reliability::Unreliable;
        let already_final = || TransactionError::FinalResponseAlreadySent {
            branch: key.branch.clone(),
        };
        let mut terminate = false;
        match tx.machine {
            Machine::InviteServer(InviteServerState::Proceeding) => {
                tx.last_sent = Some(payload);
                tx.retransmit_interval = config.t1;
                match status {
                    100..=199 => {}
                    200..=299 => {
                        tx.machine =
                            Machine::InviteServer(InviteServerState::Accepted { acked: false });
                        if unreliable {
                            let at = now + config.t1;
                            self.timers
                                .arm(&mut tx.timers, id, TimerKind::Retransmit2xx, at);
                        }
                        let at = now + config.timeout_64_t1();
                        self.timers.arm(&mut tx.timers, id, TimerKind::L, at);
                    }
                    _ => {
                        tx.machine = Machine::InviteServer(InviteServerState::Completed);
                        if unreliable {
                            self.timers
                                .arm(&mut tx.timers, id, TimerKind::G, now + config.t1);
                        }
                        let at = now + config.timeout_64_t1();
                        self.timers.arm(&mut tx.timers, id, TimerKind::H, at);
                    }
                }
            }
            Machine::NonInviteServer(NonInviteState::Trying | NonInviteState::Proceeding) => {
                tx.last_sent = Some(payload);
                if status < 200 {
                    tx.machine = Machine::NonInviteServer(NonInviteState::Proceeding);
                } else {
                    tx.machine = Machine::NonInviteServer(NonInviteState::Completed);
                    if unreliable {
                        let at = now + config.timeout_64_t1();
                        self.timers.arm(&mut tx.timers, id, TimerKind::J, at);
                    } else {
                        terminate = true;
                    }
                }
            }
            Machine::InviteServer(_) | Machine::NonInviteServer(_) => {
                return Err(already_final());
            }
            Machine::InviteClient(_) | Machine::NonInviteClient(_) => {
                return Err(TransactionError::UnknownTransaction {
                    branch: key.branch.clone(),
                });
            }
        }
        self.transmits.extend(tx.transmit());
        if terminate {
            self.remove(id);
        }
        Ok(())
    }

    /// Starts a client transaction and sends its request. `key.method` selects the INVITE
    /// or non-INVITE machine. An ACK is never a transaction: the engine sends the ACK
    /// for a 2xx itself, and hands the ACK for a 300–699 to [`Transactions::send_ack`].
    pub fn send_request(
        &mut self,
        now: Instant,
        key: TransactionKey,
        destination: SocketAddr,
        reliability: Reliability,
        payload: Bytes,
    ) -> Result<(), TransactionError> {
        if self.clients.contains_key(&key) {
            return Err(TransactionError::DuplicateTransaction { branch: key.branch });
        }
        let config = self.config;
        let (machine, retransmit_timer, timeout_timer) = match key.method {
            KeyMethod::Invite => (
                Machine::InviteClient(InviteClientState::Calling),
                TimerKind::A,
                TimerKind::B,
            ),
            KeyMethod::Cancel | KeyMethod::Other(_) => (
                Machine::NonInviteClient(NonInviteState::Trying),
                TimerKind::E,
                TimerKind::F,
            ),
        };
        let id = self.insert(key, machine, destination, reliability, Some(payload));
        let Some(tx) = self.transactions.get_mut(&id) else {
            return Ok(());
        };
        if reliability == Reliability::Unreliable {
            self.timers
                .arm(&mut tx.timers, id, retransmit_timer, now + config.t1);
        }
        let at = now + config.timeout_64_t1();
        self.timers.arm(&mut tx.timers, id, timeout_timer, at);
        self.transmits.extend(tx.transmit());
        Ok(())
    }

    /// Matches a response to a client transaction (§17.1.3: our branch, CSeq method and
    /// sent-by). Returns false for a stray response, which the engine drops.
    pub fn handle_response(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        status: u16,
        payload: Bytes,
    ) -> bool {
        let Some(&id) = self.clients.get(key) else {
            return false;
        };
        if !(100..=699).contains(&status) {
            return false;
        }
        let config = self.config;
        let Some(tx) = self.transactions.get_mut(&id) else {
            return false;
        };
        let unreliable = tx.reliability == Reliability::Unreliable;
        let mut pass_up = true;
        let mut terminate = false;
        match tx.machine {
            Machine::NonInviteClient(NonInviteState::Trying | NonInviteState::Proceeding) => {
                if status < 200 {
                    tx.machine = Machine::NonInviteClient(NonInviteState::Proceeding);
                } else {
                    tx.machine = Machine::NonInviteClient(NonInviteState::Completed);
                    self.timers.stop_all(&mut tx.timers);
                    if unreliable {
                        self.timers
                            .arm(&mut tx.timers, id, TimerKind::K, now + config.t4);
                    } else {
                        terminate = true;
                    }
                }
            }
            Machine::NonInviteClient(NonInviteState::Completed) => pass_up = false,
            Machine::InviteClient(InviteClientState::Calling | InviteClientState::Proceeding) => {
                self.timers.stop(&mut tx.timers, TimerKind::A);
                self.timers.stop(&mut tx.timers, TimerKind::B);
                let at = now + config.timeout_64_t1();
                match status {
                    100..=199 => {
                        tx.machine = Machine::InviteClient(InviteClientState::Proceeding);
                    }
                    200..=299 => {
                        tx.machine = Machine::InviteClient(InviteClientState::Accepted);
                        self.timers.arm(&mut tx.timers, id, TimerKind::M, at);
                    }
                    _ => {
                        tx.machine = Machine::InviteClient(InviteClientState::Completed);
                        // Over TCP timer D is zero once the ACK is sent; until the engine
                        // hands the ACK over, this bounds the transaction's life.
                        self.timers.arm(&mut tx.timers, id, TimerKind::D, at);
                    }
                }
            }
            Machine::InviteClient(InviteClientState::Accepted) => {
                pass_up = (200..300).contains(&status)
            }
            Machine::InviteClient(InviteClientState::Completed) => {
                pass_up = false;
                if status >= 300
                    && let Some(ack) = &tx.ack
                {
                    self.transmits.push_back(Transmit {
                        destination: tx.peer,
                        reliability: tx.reliability,
                        payload: ack.clone(),
                    });
                }
            }
            Machine::InviteServer(_) | Machine::NonInviteServer(_) => return false,
        }
        if pass_up {
            self.events.push_back(TransactionEvent::ClientResponse {
                key: key.clone(),
                status,
                payload,
            });
        }
        if terminate {
            self.remove(id);
        }
        true
    }

    /// Sends the ACK the engine built for a 300–699 final to our INVITE (§17.1.1.3); it
    /// is sent again for every retransmission of that final.
    pub fn send_ack(
        &mut self,
        key: &TransactionKey,
        payload: Bytes,
    ) -> Result<(), TransactionError> {
        let not_awaiting = || TransactionError::NotAwaitingAck {
            branch: key.branch.clone(),
        };
        let id = *self.clients.get(key).ok_or_else(not_awaiting)?;
        let tx = self.transactions.get_mut(&id).ok_or_else(not_awaiting)?;
        if tx.machine != Machine::InviteClient(InviteClientState::Completed) {
            return Err(not_awaiting());
        }
        self.transmits.push_back(Transmit {
            destination: tx.peer,
            reliability: tx.reliability,
            payload: payload.clone(),
        });
        tx.ack = Some(payload);
        if tx.reliability == Reliability::Reliable {
            self.remove(id);
        }
        Ok(())
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<TransactionEvent> {
        self.events.pop_front()
    }

    /// The earliest deadline of any armed timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((id, kind)) = self.timers.pop_due(now) {
            if let Some(tx) = self.transactions.get_mut(&id) {
                tx.timers.fired(kind);
            }
            self.fire(now, id, kind);
        }
    }

    fn fire(&mut self, now: Instant, id: TxId, kind: TimerKind) {
        let config = self.config;
        let Some(tx) = self.transactions.get_mut(&id) else {
            return;
        };
        let retransmit_again = |tx: &mut Transaction, next_interval: Duration| {
            tx.retransmit_interval = next_interval;
            (tx.transmit(), now + next_interval)
        };
        let doubled = tx.retransmit_interval * 2;
        let doubled_capped = doubled.min(config.t2);
        let rearm = match (kind, tx.machine) {
            (TimerKind::A, Machine::InviteClient(InviteClientState::Calling)) => {
                Some(retransmit_again(tx, doubled))
            }
            (TimerKind::E, Machine::NonInviteClient(NonInviteState::Trying)) => {
                Some(retransmit_again(tx, doubled_capped))
            }
            // §17.1.2.2: once a provisional arrived, retransmit every T2.
            (TimerKind::E, Machine::NonInviteClient(NonInviteState::Proceeding)) => {
                Some(retransmit_again(tx, config.t2))
            }
            (TimerKind::G, Machine::InviteServer(InviteServerState::Completed))
            | (
                TimerKind::Retransmit2xx,
                Machine::InviteServer(InviteServerState::Accepted { acked: false }),
            ) => Some(retransmit_again(tx, doubled_capped)),
            (TimerKind::B | TimerKind::F, _) => {
                let key = tx.key.clone();
                self.events
                    .push_back(TransactionEvent::ClientTimedOut { key });
                None
            }
            (TimerKind::H, _)
            | (TimerKind::L, Machine::InviteServer(InviteServerState::Accepted { acked: false })) =>
            {
                let key = tx.key.clone();
                self.events
                    .push_back(TransactionEvent::ServerTimedOut { key });
                None
            }
            _ => None,
        };
        match rearm {
            Some((transmit, next_deadline)) => {
                self.transmits.extend(transmit);
                self.timers.arm(&mut tx.timers, id, kind, next_deadline);
            }
            // Every timer that does not retransmit ends its transaction.
            None => self.remove(id),
        }
    }

    fn handle_ack(&mut self, now: Instant, id: TxId) -> RequestDisposition {
        let config = self.config;
        let Some(tx) = self.transactions.get_mut(&id) else {
            return RequestDisposition::StrayAck;
        };
        match tx.machine {
            Machine::InviteServer(InviteServerState::Accepted { acked: false }) => {
                tx.machine = Machine::InviteServer(InviteServerState::Accepted { acked: true });
                self.timers.stop(&mut tx.timers, TimerKind::Retransmit2xx);
                self.events.push_back(TransactionEvent::AckReceived {
                    key: tx.key.clone(),
                });
                RequestDisposition::AckFor2xx
            }
            Machine::InviteServer(InviteServerState::Accepted { acked: true }) => {
                RequestDisposition::Retransmission
            }
            Machine::InviteServer(InviteServerState::Completed) => {
                tx.machine = Machine::InviteServer(InviteServerState::Confirmed);
                self.timers.stop_all(&mut tx.timers);
                if tx.reliability == Reliability::Unreliable {
                    self.timers
                        .arm(&mut tx.timers, id, TimerKind::I, now + config.t4);
                } else {
                    self.remove(id);
                }
                RequestDisposition::AckForNon2xx
            }
            Machine::InviteServer(InviteServerState::Confirmed) => RequestDisposition::AckForNon2xx,
            Machine::InviteServer(InviteServerState::Proceeding)
            | Machine::NonInviteServer(_)
            | Machine::InviteClient(_)
            | Machine::NonInviteClient(_) => RequestDisposition::StrayAck,
        }
    }

    fn handle_retransmitted_request(&mut self, id: TxId) {
        let Some(tx) = self.transactions.get(&id) else {
            return;
        };
        let resend = match tx.machine {
            Machine::InviteServer(
                InviteServerState::Proceeding
                | InviteServerState::Accepted { acked: false }
                | InviteServerState::Completed,
            )
            | Machine::NonInviteServer(NonInviteState::Proceeding | NonInviteState::Completed) => {
                tx.transmit()
            }
            _ => None,
        };
        self.transmits.extend(resend);
    }

    fn insert(
        &mut self,
        key: TransactionKey,
        machine: Machine,
        peer: SocketAddr,
        reliability: Reliability,
        last_sent: Option<Bytes>,
    ) -> TxId {
        let id = self.next_id;
        self.next_id += 1;
        let index = if machine.is_server() {
            &mut self.servers
        } else {
            &mut self.clients
        };
        index.insert(key.clone(), id);
        self.transactions.insert(
            id,
            Transaction {
                key,
                machine,
                peer,
                reliability,
                last_sent,
                ack: None,
                retransmit_interval: self.config.t1,
                timers: TimerTable::default(),
            },
        );
        id
    }

    fn remove(&mut self, id: TxId) {
        let Some(mut tx) = self.transactions.remove(&id) else {
            return;
        };
        self.timers.stop_all(&mut tx.timers);
        let index = if tx.machine.is_server() {
            &mut self.servers
        } else {
            &mut self.clients
        };
        index.remove(&tx.key);
        self.events
            .push_back(TransactionEvent::Terminated { key: tx.key });
    }

    /// Armed timers across all transactions; lets tests prove nothing is left behind.
    #[cfg(test)]
    fn armed_timers(&self) -> usize {
        self.timers.len()
    }
}
