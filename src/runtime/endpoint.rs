//! The SIP endpoint (I/O driver): one task that owns the transaction layer and the
//! table of calls. It matches every message to its transaction and call, answers what
//! needs no call (OPTIONS, BYE/CANCEL for unknown calls, overload), admits new calls
//! and starts their tasks. It never awaits a call: events go to calls with `try_send`,
//! so one stuck call cannot hold up signalling for the others.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::{debug, info, warn};

use super::Shared;
use crate::call::driver::{self, CallEvent, CallSetup};
use crate::media::g711::Codec;
use crate::privacy::mask_number;
use crate::runtime::transport::Transports;
use crate::sip::dialog::UasInvite;
use crate::sip::message::{self, Header, Method, Request, RequestSummary, Response, StatusCode};
use crate::sip::sdp::{self, SdpError};
use crate::sip::transaction::{
    KeyMethod, Reliability, RequestDisposition, TimerConfig, TransactionEvent, TransactionKey,
    Transactions,
};
use crate::sip::{Inbound, TransportKind};
use crate::workorder::RejectReason;

/// Methods the engine answers; sent in `Allow` (RFC 3261 §20.5).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER";
/// Events queued per call. Policy when full: the event is dropped and logged; the
/// peer's retransmission (UDP) brings it again, and a call that cannot take 32 events
/// is stuck anyway: its maximum call length ends it.
const CALL_EVENT_QUEUE: usize = 32;
/// Requests from calls and the agents actor to the endpoint. Senders wait when it is
/// full (the endpoint never waits on them, so this cannot deadlock).
pub const COMMAND_QUEUE: usize = 1024;

/// From the engine's main task.
#[derive(Debug)]
pub enum Control {
    /// Phase one of shutdown: new INVITEs get 503.
    StopAccepting,
    /// Phase two: every call still up is hung up (BYE) or, if not yet answered, rejected.
    HangUpAll,
    /// All calls are over: stop.
    Exit,
}

/// From a call task.
#[derive(Debug)]
pub enum EndpointCommand {
    /// Send a response on the call's INVITE server transaction.
    Respond {
        key: TransactionKey,
        status: u16,
        payload: Bytes,
    },
    /// Send a request in the call's dialog (BYE) as a new client transaction.
    SendRequest {
        call_id: String,
        key: TransactionKey,
        destination: SocketAddr,
        transport: TransportKind,
        payload: Bytes,
    },
    /// ACK a 300–699 to an INVITE this call sent (RFC 3261 §17.1.1.3), through that
    /// INVITE's client transaction.
    SendAck { key: TransactionKey, payload: Bytes },
    /// Send outside any transaction: the ACK for a 2xx (RFC 3261 §13.2.2.4).
    SendDirect {
        destination: SocketAddr,
        transport: TransportKind,
        payload: Bytes,
    },
    /// In-dialog requests with this Call-ID (the leg to an agent's phone) belong to
    /// the call `owner_call_id`.
    TrackLeg {
        leg_call_id: String,
        owner_call_id: String,
    },
    /// The call is over; its entry and its legs go.
    Ended { call_id: String },
}

struct CallEntry {
    events: mpsc::Sender<CallEvent>,
    invite_key: TransactionKey,
    local_tag: String,
    /// Call-IDs of the legs this call opened to agents' phones.
    legs: Vec<String>,
}

pub struct Endpoint {
    shared: Arc<Shared>,
    transactions: Transactions,
    transports: Transports,
    calls: HashMap<String, CallEntry>,
    /// Agent legs' Call-IDs → the caller's Call-ID of the call that owns them.
    legs: HashMap<String, String>,
    /// Which call owns each INVITE server and BYE client transaction.
    owners: HashMap<TransactionKey, String>,
    accepting: bool,
    admission: Arc<Semaphore>,
    commands_tx: mpsc::Sender<EndpointCommand>,
    commands_rx: mpsc::Receiver<EndpointCommand>,
    active: watch::Sender<usize>,
}

impl Endpoint {
    pub fn new(
        shared: Arc<Shared>,
        transports: Transports,
        active: watch::Sender<usize>,
        commands_tx: mpsc::Sender<EndpointCommand>,
        commands_rx: mpsc::Receiver<EndpointCommand>,
    ) -> Endpoint {
        let sip = &shared.config.sip;
        let transactions = Transactions::new(TimerConfig {
            t1: sip.t1,
            t2: sip.t2,
            t4: sip.t4,
        });
        Endpoint {
            admission: Arc::new(Semaphore::new(shared.config.calls.max_concurrent)),
            shared,
            transactions,
            transports,
            calls: HashMap::new(),
            legs: HashMap::new(),
            owners: HashMap::new(),
            accepting: true,
            commands_tx,
            commands_rx,
            active,
        }
    }

    /// The endpoint's loop: inbound messages, call commands, control and timers.
    pub async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Inbound>,
        mut control: mpsc::Receiver<Control>,
    ) {
        loop {
            let deadline = self.transactions.poll_timeout();
            let timer = async move {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                Some(ctl) = control.recv() => match ctl {
                    Control::StopAccepting => self.accepting = false,
                    Control::HangUpAll => self.broadcast(CallEvent::Shutdown),
                    Control::Exit => break,
                },
                Some(cmd) = self.commands_rx.recv() => self.handle_command(Instant::now(), cmd),
                Some(msg) = inbound.recv() => self.handle_inbound(Instant::now(), msg),
                _ = timer => self.transactions.handle_timeout(Instant::now()),
            }
            self.flush();
        }
    }

    fn broadcast(&mut self, event: CallEvent) {
        for entry in self.calls.values() {
            let _ = entry.events.try_send(event.clone());
        }
    }

    /// Sends what the transaction layer queued and routes its events to calls.
    fn flush(&mut self) {
        while let Some(transmit) = self.transactions.poll_transmit() {
            let transport = match transmit.reliability {
                Reliability::Unreliable => TransportKind::Udp,
                Reliability::Reliable => TransportKind::Tcp,
            };
            if let Err(e) = self
                .transports
                .send(transmit.destination, transport, &transmit.payload)
            {
                debug!(error = %e, "SIP send failed");
            }
        }
        while let Some(event) = self.transactions.poll_event() {
            match event {
                TransactionEvent::AckReceived { key } => self.notify_owner(&key, CallEvent::Acked),
                TransactionEvent::ServerTimedOut { key } => {
                    self.notify_owner(&key, CallEvent::AckTimedOut)
                }
                TransactionEvent::ClientResponse {
                    key,
                    status,
                    payload,
                } => self.notify_owner(
                    &key.clone(),
                    CallEvent::Response {
                        key,
                        status,
                        payload,
                    },
                ),
                TransactionEvent::ClientTimedOut { key } => {
                    self.notify_owner(&key.clone(), CallEvent::RequestTimedOut { key })
                }
                TransactionEvent::Terminated { key } => {
                    self.owners.remove(&key);
                }
            }
        }
    }

    fn notify_owner(&self, key: &TransactionKey, event: CallEvent) {
        if let Some(entry) = self.owners.get(key).and_then(|id| self.calls.get(id))
            && entry.events.try_send(event).is_err()
        {
            warn!("call event queue full; event dropped");
        }
    }

    fn handle_command(&mut self, now: Instant, command: EndpointCommand) {
        match command {
            EndpointCommand::Respond {
                key,
                status,
                payload,
            } => {
                if let Err(e) = self.transactions.send_response(now, &key, status, payload) {
                    debug!(error = %e, status, "response not sent");
                }
            }
            EndpointCommand::SendRequest {
                call_id,
                key,
                destination,
                transport,
                payload,
            } => {
                let reliability = reliability(transport);
                match self.transactions.send_request(
                    now,
                    key.clone(),
                    destination,
                    reliability,
                    payload,
                ) {
                    Ok(()) => {
                        self.owners.insert(key, call_id);
                    }
                    Err(e) => {
                        warn!(error = %e, "request not sent");
                        if let Some(entry) = self.calls.get(&call_id) {
                            let _ = entry.events.try_send(CallEvent::RequestTimedOut { key });
                        }
                    }
                }
            }
            EndpointCommand::SendAck { key, payload } => {
                if let Err(e) = self.transactions.send_ack(&key, payload) {
                    debug!(error = %e, "ACK not sent");
                }
            }
            EndpointCommand::SendDirect {
                destination,
                transport,
                payload,
            } => {
                if let Err(e) = self.transports.send(destination, transport, &payload) {
                    debug!(error = %e, "ACK not sent");
                }
            }
            EndpointCommand::TrackLeg {
                leg_call_id,
                owner_call_id,
            } => {
                if let Some(entry) = self.calls.get_mut(&owner_call_id) {
                    entry.legs.push(leg_call_id.clone());
                    self.legs.insert(leg_call_id, owner_call_id);
                }
            }
            EndpointCommand::Ended { call_id } => {
                if let Some(entry) = self.calls.remove(&call_id) {
                    for leg in entry.legs {
                        self.legs.remove(&leg);
                    }
                }
                self.active.send_replace(self.calls.len());
                metrics::gauge!("hotline_calls_active").set(self.calls.len() as f64);
            }
        }
    }

    fn handle_inbound(&mut self, now: Instant, inbound: Inbound) {
        match inbound {
            Inbound::Request {
                request,
                summary,
                source,
                transport,
            } => self.handle_request(now, request, summary, source, transport),
            Inbound::Response {
                response, summary, ..
            } => {
                let key = TransactionKey::rfc3261(
                    &summary.top_via_branch,
                    KeyMethod::from(&summary.cseq_method),
                    &summary.top_via_sent_by,
                );
                let status = u16::from(response.status_code.clone());
                if !self.transactions.handle_response(
                    now,
                    &key,
                    status,
                    Bytes::from(response.to_string()),
                ) {
                    debug!(status, "stray response dropped");
                }
            }
        }
    }

    fn handle_request(
        &mut self,
        now: Instant,
        request: Request,
        summary: RequestSummary,
        source: SocketAddr,
        transport: TransportKind,
    ) {
        let key = TransactionKey::for_request(
            KeyMethod::from(&summary.method),
            Some(summary.top_via_branch.as_str()).filter(|b| !b.is_empty()),
            &summary.top_via_sent_by,
            &summary.call_id,
            summary.from_tag.as_deref().unwrap_or(""),
            summary.cseq,
            &summary.top_via_sent_by,
        );
        let is_ack = summary.method == Method::Ack;
        match self.transactions.handle_request(
            now,
            key.clone(),
            is_ack,
            source,
            reliability(transport),
        ) {
            RequestDisposition::Retransmission
            | RequestDisposition::AckForNon2xx
            | RequestDisposition::AckFor2xx => {}
            RequestDisposition::StrayAck => {
                // The ACK for a 2xx is its own transaction (RFC 3261 §17.1.1.3): match
                // it to the call's dialog by Call-ID and our tag.
                if let Some(entry) = self.calls.get(&summary.call_id)
                    && summary.to_tag.as_deref() == Some(entry.local_tag.as_str())
                {
                    let invite_key = entry.invite_key.clone();
                    self.transactions.handle_2xx_ack(now, &invite_key);
                }
            }
            RequestDisposition::CancelTarget {
                invite_key,
                invite_final_sent,
            } => {
                self.respond(now, &key, &request, StatusCode::OK, None, vec![]);
                if !invite_final_sent
                    && let Some(entry) = self
                        .owners
                        .get(&invite_key)
                        .and_then(|id| self.calls.get(id))
                {
                    let _ = entry.events.try_send(CallEvent::Cancelled);
                }
            }
            RequestDisposition::CancelNoMatch => {
                self.respond(
                    now,
                    &key,
                    &request,
                    StatusCode::CallTransactionDoesNotExist,
                    None,
                    vec![],
                );
            }
            RequestDisposition::New => match summary.method {
                Method::Invite if summary.to_tag.is_none() => {
                    self.new_call(now, key, request, summary, source, transport)
                }
                // A re-INVITE (hold, session refresh) is not supported yet; the call
                // goes on with its current session (RFC 3261 §14.2).
                Method::Invite => self.respond(
                    now,
                    &key,
                    &request,
                    StatusCode::NotAcceptableHere,
                    None,
                    vec![],
                ),
                Method::Bye => {
                    let from_caller = self
                        .calls
                        .get(&summary.call_id)
                        .filter(|e| summary.to_tag.as_deref() == Some(e.local_tag.as_str()))
                        .map(|e| (e, CallEvent::CallerHungUp));
                    let from_agent = || {
                        self.legs
                            .get(&summary.call_id)
                            .and_then(|owner| self.calls.get(owner))
                            .map(|e| (e, CallEvent::AgentHungUp))
                    };
                    match from_caller.or_else(from_agent) {
                        Some((entry, event)) => {
                            let _ = entry.events.try_send(event);
                            self.respond(now, &key, &request, StatusCode::OK, None, vec![]);
                        }
                        None => self.respond(
                            now,
                            &key,
                            &request,
                            StatusCode::CallTransactionDoesNotExist,
                            None,
                            vec![],
                        ),
                    }
                }
                Method::Register => {
                    if !self
                        .shared
                        .agents
                        .try_register(request, key, source, transport)
                    {
                        warn!("agents service busy; REGISTER dropped");
                    }
                }
                Method::Options => self.respond(
                    now,
                    &key,
                    &request,
                    StatusCode::OK,
                    None,
                    vec![
                        Header::Allow(message::Allow::new(ALLOW)),
                        Header::Accept(message::Accept::new("application/sdp")),
                    ],
                ),
                _ => self.respond(
                    now,
                    &key,
                    &request,
                    StatusCode::MethodNotAllowed,
                    None,
                    vec![Header::Allow(message::Allow::new(ALLOW))],
                ),
            },
        }
    }

    fn respond(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        request: &Request,
        status: StatusCode,
        to_tag: Option<&str>,
        headers: Vec<Header>,
    ) {
        let code = u16::from(status.clone());
        let response: Response = message::build_response(request, status, to_tag, headers, None);
        if let Err(e) =
            self.transactions
                .send_response(now, key, code, Bytes::from(response.to_string()))
        {
            debug!(error = %e, code, "response not sent");
        }
    }

    /// Refuses a new INVITE before any call state exists and counts why. `detail`
    /// goes into a `Warning` header (RFC 3261 §20.43) so the trunk's engineer can tell
    /// which offer was unacceptable.
    fn refuse(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        request: &Request,
        reason: RejectReason,
        detail: &str,
    ) {
        crate::metrics::count_rejected(reason);
        let status = StatusCode::from(reason.status_code());
        let mut headers = vec![];
        if reason.status_code() == 503 {
            let retry = self.shared.config.calls.retry_after.as_secs().to_string();
            headers.push(Header::RetryAfter(message::RetryAfter::new(retry)));
        }
        if !detail.is_empty() {
            headers.push(Header::Warning(message::Warning::new(format!(
                "399 hotline \"{detail}\""
            ))));
        }
        let tag = message::new_tag();
        self.respond(now, key, request, status, Some(&tag), headers);
    }

    fn new_call(
        &mut self,
        now: Instant,
        key: TransactionKey,
        request: Request,
        summary: RequestSummary,
        source: SocketAddr,
        transport: TransportKind,
    ) {
        if !self.accepting {
            return self.refuse(now, &key, &request, RejectReason::ShuttingDown, "");
        }
        // Same Call-ID, new transaction, no To tag: a merged or forked request
        // (RFC 3261 §8.2.2.2), never a second call.
        if self.calls.contains_key(&summary.call_id) {
            let tag = message::new_tag();
            return self.respond(
                now,
                &key,
                &request,
                StatusCode::LoopDetected,
                Some(&tag),
                vec![],
            );
        }
        let Ok(permit) = self.admission.clone().try_acquire_owned() else {
            return self.refuse(now, &key, &request, RejectReason::Overloaded, "");
        };
        let dialog = match UasInvite::from_request(
            &request,
            &summary.call_id,
            summary.from_tag.as_deref(),
            summary.cseq,
            source,
            transport.into(),
        ) {
            Ok(d) => d,
            Err(e) => {
                debug!(error = %e, "INVITE cannot make a dialog");
                return self.refuse(
                    now,
                    &key,
                    &request,
                    RejectReason::BadRequest,
                    "unusable From, To or Contact",
                );
            }
        };
        let negotiated = match sdp::negotiate(request.body(), &[Codec::Pcmu, Codec::Pcma]) {
            Ok(n) => n,
            Err(SdpError::Malformed(_)) if request.body().is_empty() => {
                return self.refuse(
                    now,
                    &key,
                    &request,
                    RejectReason::NotAcceptableHere,
                    "an SDP offer in the INVITE is required",
                );
            }
            Err(SdpError::Malformed(_)) => {
                return self.refuse(
                    now,
                    &key,
                    &request,
                    RejectReason::BadRequest,
                    "malformed SDP",
                );
            }
            Err(_) => {
                return self.refuse(
                    now,
                    &key,
                    &request,
                    RejectReason::NotAcceptableHere,
                    "no common codec: PCMU or PCMA",
                );
            }
        };
        let (rtp_socket, local_rtp) = match self.shared.ports.bind() {
            Ok(s) => match s.local_addr() {
                Ok(addr) => (s, addr),
                Err(e) => {
                    warn!(error = %e, "RTP socket without an address");
                    return self.refuse(now, &key, &request, RejectReason::Overloaded, "");
                }
            },
            Err(e) => {
                warn!(error = %e, "no RTP port for a new call");
                return self.refuse(now, &key, &request, RejectReason::Overloaded, "");
            }
        };
        self.respond(now, &key, &request, StatusCode::Trying, None, vec![]);

        let local_tag = message::new_tag();
        let (events_tx, events_rx) = mpsc::channel(CALL_EVENT_QUEUE);
        let call_events = events_tx.clone();
        info!(
            caller = %mask_number(summary.from_user.as_deref().unwrap_or("")),
            transport = transport.label(),
            "incoming call"
        );
        self.owners.insert(key.clone(), summary.call_id.clone());
        self.calls.insert(
            summary.call_id.clone(),
            CallEntry {
                events: events_tx,
                invite_key: key.clone(),
                local_tag: local_tag.clone(),
                legs: Vec::new(),
            },
        );
        self.active.send_replace(self.calls.len());
        metrics::gauge!("hotline_calls_active").set(self.calls.len() as f64);
        let setup = CallSetup {
            invite: request,
            summary,
            invite_key: key,
            dialog,
            source,
            transport,
            local_tag,
            negotiated,
            rtp_socket: Some(rtp_socket),
            local_rtp,
            permit,
            events: call_events,
        };
        let feature = setup
            .summary
            .request_uri_user
            .as_deref()
            .and_then(crate::call::feature::feature_code);
        match feature {
            Some(request) => tokio::spawn(crate::call::feature::run(
                self.shared.clone(),
                setup,
                request,
                self.commands_tx.clone(),
                events_rx,
            )),
            None => tokio::spawn(driver::run(
                self.shared.clone(),
                setup,
                self.commands_tx.clone(),
                events_rx,
            )),
        };
    }
}

fn reliability(transport: TransportKind) -> Reliability {
    if transport.is_reliable() {
        Reliability::Reliable
    } else {
        Reliability::Unreliable
    }
}
