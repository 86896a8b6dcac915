//! The switch core (pure): every call decision of the engine in one deterministic state
//! machine. It owns the SIP transaction layer, the dialogs, the calls and their legs,
//! the registrar and the digest authenticator, and drives the ACD; it writes work
//! orders as calls happen (R10) and keeps the rolling 24 h connection rate (R5).
//!
//! The quinn-proto shape: inputs are `handle_*` calls carrying `now` (a message from a
//! transport with its source, a timer, a media report, an API command); outputs are
//! drained with `poll_*` (transmits, the next timeout, media orders, store writes,
//! events for the API). No tokio, no socket, no clock, no file and no operating-system
//! randomness inside: tags and branches come from a seeded generator, so a simulation
//! replays a seed exactly (the simulation harness). The runtime (the tokio tasks) only moves
//! bytes and events in and out.
//!
//! A call is a set of legs. A leg is inbound (UAS: a trunk's INVITE, a feature code from
//! an agent's phone) or outbound (UAC: an agent's phone, a destination); the bridge, the
//! recording and the work order do not care which. Each leg's media endpoint is the
//! runtime's: the switch names legs, never sockets, so a WebRTC leg fits later without
//! touching the call logic.
//!
//! Files:
//! - `io`: the message types in and out.
//! - `call`: the inbound call's state machine (ring, answer, the dialplan, queue,
//!   bridge, end), with the call's dialplan interpreter (`crate::ivr`) inside.
//! - `legs`: SIP legs both ways: answering, placing, matching in-dialog requests
//!   (RFC 3261 §12.2.2), re-INVITE and UPDATE, late offer, BYE and CANCEL.
//! - `inbound`, `outbound`, `feature`: the three kinds of call, wired to their legs.
//! - `agents`: REGISTER (digest, registrar), the ACD's actions, agent commands.
//! - `callbacks`: the callback scheduler on the ACD's view (R9 inbound first), its
//!   dial orders placed as outbound calls, missed calls read from the work-order writes.

mod agents;
pub mod call;
mod callbacks;
mod feature;
mod inbound;
mod io;
mod legs;
mod outbound;
mod uac_leg;

#[cfg(test)]
mod tests;

pub use agents::passwords;
pub use io::*;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::acd::{Acd, CallKey};
use crate::config::agents::AgentsConfig;
use crate::ivr::DialplanSlot;
use crate::media::prompt::PromptLibrary;
use crate::metrics::ConnectionRateWindow;
use crate::sip::TransportKind;
use crate::sip::builder::{IdGenerator, LocalContact, ResponseBuilder};
use crate::sip::digest::DigestAuthenticator;
use crate::sip::message::{Header, Method, Request, Response};
use crate::sip::registrar::Registrar;
use crate::sip::transaction::{Reliability, TransactionEvent, TransactionKey, Transactions};
use crate::workorder::CallCountBucket;

use feature::FeatureCall;
use inbound::InboundCall;
use legs::Leg;
use outbound::OutboundCall;

/// Live facts kept for the wallboard: a day's urgent calls and complaints about the
/// hotline fit many times over; the oldest go first.
const LIVE_FACTS: usize = 200;

/// How often queue and agent gauges are published (R30).
const GAUGE_INTERVAL: Duration = Duration::from_secs(1);

/// Methods the engine answers; sent in `Allow` (RFC 3261 §20.5).
const ALLOWED_METHODS: &[Method] = &[
    Method::Invite,
    Method::Ack,
    Method::Cancel,
    Method::Bye,
    Method::Options,
    Method::Register,
    Method::Update,
    Method::Info,
];

/// Option tags the engine supports (`Supported`, and `Require` it accepts): RFC 4028
/// session timers.
const SUPPORTED_EXTENSIONS: &[&str] = &["timer"];

/// Why the switch could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    #[error("agents: {0}")]
    Acd(#[from] crate::acd::AcdError),
    /// The registrar's limits are inconsistent (the config check should have caught it).
    #[error("registrar: {0}")]
    Registrar(#[from] crate::sip::registrar::RegistrarError),
}

/// One call and its legs.
#[derive(Debug)]
struct Call {
    kind: CallKind,
    legs: Vec<legs::LegId>,
    /// The deadline this call has in the timer set, if any.
    armed: Option<Instant>,
}

#[derive(Debug)]
enum CallKind {
    Inbound(Box<InboundCall>),
    Outbound(Box<OutboundCall>),
    Feature(Box<FeatureCall>),
}

/// Which flow a call is, without borrowing it: the switch dispatches on this and then
/// calls the flow's own method, which needs `&mut self`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Inbound,
    Outbound,
    Feature,
}

/// What a request we sent was for, to route its responses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientRequest {
    Invite,
    Cancel,
    Bye,
}

/// The whole switch.
pub struct Switch {
    settings: SwitchSettings,
    /// The dialplan new calls take (a call keeps the version it started on).
    plan: DialplanSlot,
    /// The prompts of the current dialplan version, and the engine's own.
    prompts: std::sync::Arc<PromptLibrary>,
    /// `now` at construction and the wall-clock time then: work orders and digest
    /// nonces get wall-clock times derived from `now`, never read from the system.
    epoch: (Instant, DateTime<Utc>),
    ids: IdGenerator,
    transactions: Transactions,
    registrar: Registrar,
    digest: DigestAuthenticator,
    /// Throttles repeated failed authentication per source and per user.
    auth_guard: crate::sip::auth_guard::AuthGuard,
    passwords: HashMap<String, String>,
    acd: Acd,
    window: ConnectionRateWindow,
    accepting: bool,
    next_leg: u64,
    next_call: CallKey,
    legs: BTreeMap<legs::LegId, Leg>,
    calls: BTreeMap<CallKey, Call>,
    /// In-dialog requests find their leg by Call-ID and our tag.
    dialogs: HashMap<(String, String), legs::LegId>,
    /// INVITE server transactions (initial and re-INVITEs) by key: CANCEL and ACK.
    server_invites: HashMap<TransactionKey, legs::LegId>,
    /// Inbound INVITEs by Call-ID and From tag: a second INVITE of the same dialog with
    /// no To tag and a new branch is a merged request (RFC 3261 §8.2.2.2).
    inbound_dialogs: HashMap<(String, String), legs::LegId>,
    /// Requests we sent, by client transaction key.
    clients: HashMap<TransactionKey, (legs::LegId, ClientRequest)>,
    /// The response being handled, parsed once by the transport: the transaction layer
    /// passes it up by key.
    pending_response: Option<(TransactionKey, Response)>,
    timers: BTreeSet<(Instant, CallKey)>,
    gauges_at: Instant,
    transmits: VecDeque<Transmit>,
    media: VecDeque<MediaOrder>,
    store: VecDeque<StoreWrite>,
    events: VecDeque<SwitchEvent>,
    active_reported: usize,
    /// Urgent calls and complaints about the hotline, for the wallboard (R11, R15).
    live: VecDeque<LiveFact>,
    /// Callbacks (R17–R20), once [`Switch::enable_callbacks`] turned them on.
    callbacks: Option<Box<callbacks::CallbackDesk>>,
}

impl std::fmt::Debug for Switch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Switch")
            .field("calls", &self.calls.len())
            .field("legs", &self.legs.len())
            .field("transactions", &self.transactions.len())
            .finish_non_exhaustive()
    }
}

impl Switch {
    /// A switch with every agent logged out. `seed` drives tags, branches and Call-IDs;
    /// `wall_clock` is the wall-clock time at `now`. `history` seeds the 24 h
    /// connection-rate window from the store (a restart does not reset R5).
    pub fn new(
        settings: SwitchSettings,
        agents: &AgentsConfig,
        flow: CallFlow,
        seed: u64,
        now: Instant,
        wall_clock: DateTime<Utc>,
        history: &[CallCountBucket],
    ) -> Result<Switch, SwitchError> {
        let acd = Acd::new(agents::acd_config(agents, settings.agent_ring_timeout))?;
        let registrar = Registrar::new(
            settings.default_expires,
            settings.min_expires,
            settings.max_expires,
        )?;
        let digest = DigestAuthenticator::new(
            settings.realm.clone(),
            settings.digest_secret,
            settings.nonce_lifetime,
        )
        .with_offered_algorithms(settings.digest_algorithms.clone())
        .with_rfc2069_allowed(settings.digest_allow_rfc2069);
        let mut window = ConnectionRateWindow::new();
        window.seed(history);
        Ok(Switch {
            transactions: Transactions::new(settings.timers),
            passwords: agents::passwords(agents),
            auth_guard: crate::sip::auth_guard::AuthGuard::new(settings.auth_guard),
            plan: DialplanSlot::new(flow.plan),
            prompts: flow.prompts,
            epoch: (now, wall_clock),
            ids: IdGenerator::new(seed),
            registrar,
            digest,
            acd,
            window,
            accepting: true,
            next_leg: 1,
            next_call: 1,
            legs: BTreeMap::new(),
            calls: BTreeMap::new(),
            dialogs: HashMap::new(),
            server_invites: HashMap::new(),
            inbound_dialogs: HashMap::new(),
            clients: HashMap::new(),
            pending_response: None,
            timers: BTreeSet::new(),
            gauges_at: now,
            transmits: VecDeque::new(),
            media: VecDeque::new(),
            store: VecDeque::new(),
            events: VecDeque::new(),
            active_reported: 0,
            live: VecDeque::new(),
            callbacks: None,
            settings,
        })
    }

    // ----- inputs ----------------------------------------------------------------

    /// A message a transport read and validated.
    pub fn handle_inbound(&mut self, now: Instant, inbound: crate::sip::Inbound) {
        match inbound {
            crate::sip::Inbound::Request {
                request,
                summary,
                source,
                transport,
            } => self.on_request(now, request, summary, source, transport),
            crate::sip::Inbound::Response {
                response, summary, ..
            } => self.on_response(now, response, summary),
        }
        self.settle(now);
    }

    /// Fires everything due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.transactions.handle_timeout(now);
        self.registrar.handle_timeout(now);
        self.acd.handle_timeout(now);
        while let Some(&(at, key)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, key));
            if let Some(call) = self.calls.get_mut(&key) {
                call.armed = None;
            }
            self.call_timeout(now, key);
        }
        if now >= self.gauges_at {
            self.publish_gauges(now);
            self.shrink_idle();
            self.gauges_at = now + GAUGE_INTERVAL;
        }
        self.settle(now);
    }

    /// What the media runtime reports about a leg.
    pub fn handle_media(&mut self, now: Instant, leg: legs::LegId, report: MediaReport) {
        self.on_media(now, leg, report);
        self.settle(now);
    }

    /// An API or runtime command; answered with [`SwitchEvent::Reply`].
    pub fn handle_command(&mut self, now: Instant, id: CommandId, command: Command) {
        let reply = self.on_command(now, command);
        self.events.push_back(SwitchEvent::Reply { id, reply });
        self.settle(now);
    }

    // ----- outputs ---------------------------------------------------------------

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_media(&mut self) -> Option<MediaOrder> {
        self.media.pop_front()
    }

    pub fn poll_store(&mut self) -> Option<StoreWrite> {
        let write = self.store.pop_front();
        if write.is_some() {
            self.callbacks_store_taken();
        }
        write
    }

    pub fn poll_event(&mut self) -> Option<SwitchEvent> {
        self.events.pop_front()
    }

    /// When [`Switch::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.transactions.poll_timeout(),
            self.registrar.poll_timeout(),
            self.acd.poll_timeout(),
            self.timers.first().map(|(at, _)| *at),
            Some(self.gauges_at),
            self.callbacks_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ----- views, for the API, the simulation's invariants and tests ---------------

    /// Calls in progress.
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    /// Live SIP transactions.
    pub fn transactions(&self) -> usize {
        self.transactions.len()
    }

    /// Legs that exist now.
    pub fn legs(&self) -> usize {
        self.legs.len()
    }

    /// Timers armed for calls (each live call has at most one).
    pub fn call_timers(&self) -> usize {
        self.timers.len()
    }

    /// The agents whose phones a call of this switch is connected to or ringing, one
    /// entry per leg: an agent listed twice has two calls.
    pub fn agents_in_calls(&self) -> Vec<String> {
        self.legs
            .values()
            .filter(|leg| self.calls.contains_key(&leg.call))
            .filter(|leg| !leg.is_ended() && !leg.is_hanging_up())
            .filter_map(|leg| leg.agent().map(str::to_owned))
            .collect()
    }

    /// Every agent and queue, as the API shows them.
    pub fn status(&self, now: Instant) -> (Vec<AgentStatus>, Vec<QueueStatus>) {
        self.agents_status(now)
    }

    /// The rolling 24 h connection rate's counts (offered, answered) at `now` (R5).
    pub fn connection_rate_counts(&self, now: Instant) -> (u64, u64) {
        self.window.counts(self.wall(now))
    }

    // ----- internals shared by the submodules -----------------------------------

    /// Wall-clock time at `now`.
    fn wall(&self, now: Instant) -> DateTime<Utc> {
        let (epoch, wall) = self.epoch;
        match now.checked_duration_since(epoch) {
            Some(elapsed) => wall + chrono::Duration::from_std(elapsed).unwrap_or_default(),
            None => wall - chrono::Duration::from_std(epoch - now).unwrap_or_default(),
        }
    }

    /// System time at `now`, for digest nonces.
    fn system_time(&self, now: Instant) -> SystemTime {
        SystemTime::from(self.wall(now))
    }

    /// Our side of the signalling on `transport`, for Via and Contact.
    fn local(&self, transport: TransportKind) -> LocalContact {
        LocalContact {
            ip: self.settings.advertised_ip,
            port: self.settings.local_port(transport),
            transport,
        }
    }

    fn new_leg_id(&mut self) -> legs::LegId {
        let id = legs::LegId(self.next_leg);
        self.next_leg += 1;
        id
    }

    fn new_call_key(&mut self) -> CallKey {
        let key = self.next_call;
        self.next_call += 1;
        key
    }

    fn reliability(transport: TransportKind) -> Reliability {
        if transport.is_reliable() {
            Reliability::Reliable
        } else {
            Reliability::Unreliable
        }
    }

    /// Answers a request on its server transaction.
    #[allow(clippy::too_many_arguments)]
    fn respond(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        request: &Request,
        status: u16,
        to_tag: Option<&str>,
        headers: Vec<Header>,
        body: Option<(&str, Vec<u8>)>,
    ) {
        let mut builder = ResponseBuilder::to(request, status);
        if let Some(tag) = to_tag {
            builder = builder.to_tag(tag);
        }
        for header in headers {
            builder = builder.header(header);
        }
        if let Some((content_type, bytes)) = body {
            builder = builder.body(content_type, bytes);
        }
        let response = builder.build();
        if let Err(e) =
            self.transactions
                .send_response(now, key, status, Bytes::from(response.to_string()))
        {
            tracing::debug!(error = %e, status, "response not sent");
        }
    }

    /// Sends a request as a new client transaction owned by `leg`.
    #[allow(clippy::too_many_arguments)]
    fn send_request(
        &mut self,
        now: Instant,
        leg: legs::LegId,
        purpose: ClientRequest,
        key: TransactionKey,
        destination: SocketAddr,
        transport: TransportKind,
        payload: Bytes,
    ) {
        match self.transactions.send_request(
            now,
            key.clone(),
            destination,
            Self::reliability(transport),
            payload,
        ) {
            Ok(()) => {
                self.clients.insert(key, (leg, purpose));
            }
            Err(e) => {
                tracing::warn!(error = %e, "request not sent");
                self.client_timed_out(now, leg, purpose);
            }
        }
    }

    /// Sends bytes outside any transaction (the ACK for a 2xx, RFC 3261 §13.2.2.4).
    fn transmit(&mut self, destination: SocketAddr, transport: TransportKind, payload: Bytes) {
        self.transmits.push_back(Transmit {
            destination,
            transport,
            payload,
        });
    }

    /// Plays out everything the cores queued until nothing moves: transaction events,
    /// registrar changes and ACD actions feed the calls, whose actions may feed the ACD.
    fn settle(&mut self, now: Instant) {
        loop {
            let mut moved = false;
            while let Some(transmit) = self.transactions.poll_transmit() {
                moved = true;
                let transport = if transmit.reliability == Reliability::Reliable {
                    TransportKind::Tcp
                } else {
                    TransportKind::Udp
                };
                self.transmit(transmit.destination, transport, transmit.payload);
            }
            while let Some(event) = self.transactions.poll_event() {
                moved = true;
                self.on_transaction_event(now, event);
            }
            while let Some(event) = self.registrar.poll_event() {
                moved = true;
                self.on_registrar_event(now, event);
            }
            while let Some(action) = self.acd.poll_action() {
                moved = true;
                self.on_acd_action(now, action);
            }
            if self.callbacks_settle(now) {
                moved = true;
            }
            if !moved {
                break;
            }
        }
        if self.calls.len() != self.active_reported {
            self.active_reported = self.calls.len();
            metrics::gauge!(crate::metrics::CALLS_ACTIVE).set(self.calls.len() as f64);
            self.events
                .push_back(SwitchEvent::ActiveCalls(self.calls.len()));
        }
    }

    fn on_transaction_event(&mut self, now: Instant, event: TransactionEvent) {
        match event {
            TransactionEvent::AckReceived { key } => {
                if let Some(&leg) = self.server_invites.get(&key) {
                    self.leg_acked(now, leg);
                }
            }
            TransactionEvent::ServerTimedOut { key } => {
                if let Some(&leg) = self.server_invites.get(&key) {
                    self.leg_ack_timed_out(now, leg);
                }
            }
            TransactionEvent::ClientResponse { key, status, .. } => {
                let response = match self.pending_response.take() {
                    Some((pending, response)) if pending == key => Some(response),
                    other => {
                        self.pending_response = other;
                        None
                    }
                };
                if let (Some(&(leg, purpose)), Some(response)) = (self.clients.get(&key), response)
                {
                    self.client_response(now, leg, purpose, &key, status, &response);
                }
            }
            TransactionEvent::ClientTimedOut { key } => {
                if let Some(&(leg, purpose)) = self.clients.get(&key) {
                    self.client_timed_out(now, leg, purpose);
                }
            }
            TransactionEvent::Terminated { key } => {
                self.clients.remove(&key);
                self.server_invites.remove(&key);
            }
        }
    }

    /// Re-arms a call's timer after anything that may have moved its deadline.
    fn rearm(&mut self, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let deadline = match &call.kind {
            CallKind::Inbound(c) => c.poll_timeout(),
            CallKind::Outbound(c) => c.poll_timeout(),
            CallKind::Feature(c) => c.poll_timeout(),
        };
        let legs_deadline = call
            .legs
            .iter()
            .filter_map(|id| self.legs.get(id))
            .filter_map(Leg::poll_timeout)
            .min();
        let deadline = [deadline, legs_deadline].into_iter().flatten().min();
        if call.armed == deadline {
            return;
        }
        if let Some(old) = call.armed.take() {
            self.timers.remove(&(old, key));
        }
        if let Some(at) = deadline {
            self.timers.insert((at, key));
            call.armed = Some(at);
        }
    }

    fn call_timeout(&mut self, now: Instant, key: CallKey) {
        let legs: Vec<legs::LegId> = self
            .calls
            .get(&key)
            .map(|c| c.legs.clone())
            .unwrap_or_default();
        for leg in legs {
            self.leg_timeout(now, leg);
        }
        match self.flow(key) {
            Some(Flow::Inbound) => self.inbound_timeout(now, key),
            Some(Flow::Outbound) => self.outbound_timeout(now, key),
            Some(Flow::Feature) => self.feature_timeout(now, key),
            None => return,
        }
        self.rearm(key);
    }

    /// Removes a finished call, its legs' indexes and its timer. A placed leg still
    /// waiting for the answer to its INVITE stays, withdrawn and on its own, until that
    /// answer (or its timeout) comes: its CANCEL, its 487's ACK or the BYE for a 2xx
    /// that crossed are still owed (RFC 3261 §9.1, §17.1.1.3).
    fn remove_call(&mut self, now: Instant, key: CallKey) {
        let Some(call) = self.calls.remove(&key) else {
            return;
        };
        if let Some(at) = call.armed {
            self.timers.remove(&(at, key));
        }
        for leg in call.legs {
            if self.legs.get(&leg).is_some_and(Leg::is_still_inviting) {
                self.close_media(leg);
                self.cancel_leg(now, leg);
            } else {
                self.forget_leg(leg);
            }
        }
    }

    /// Gives back the room a burst (a flood of INVITEs) left in the switch's tables, so
    /// the engine's memory returns close to where it was (issue 9, row 6).
    fn shrink_idle(&mut self) {
        use crate::capacity::ShrinkIdle;
        self.dialogs.shrink_idle();
        self.server_invites.shrink_idle();
        self.inbound_dialogs.shrink_idle();
        self.clients.shrink_idle();
        self.transmits.shrink_idle();
        self.media.shrink_idle();
        self.store.shrink_idle();
        self.events.shrink_idle();
        self.transactions.shrink_idle();
        self.acd.shrink_idle();
    }

    fn publish_gauges(&mut self, now: Instant) {
        for stats in self.acd.queue_stats(now) {
            crate::metrics::set_queue_gauges(&stats.name, stats.depth, stats.oldest_wait);
        }
        let counts = self.acd.agent_counts();
        use crate::metrics::AgentStateLabel as L;
        crate::metrics::set_agent_counts(&[
            (L::LoggedOut, counts.logged_out),
            (L::Available, counts.available),
            (L::Ringing, counts.reserved),
            (L::OnCall, counts.on_call),
            (L::WrapUp, counts.wrap_up),
            (L::Paused, counts.paused),
        ]);
        crate::metrics::publish_connection_rate(&self.window, self.wall(now));
        self.callbacks_publish(now);
    }

    fn on_command(&mut self, now: Instant, command: Command) -> Reply {
        match command {
            Command::Agent { agent, action } => {
                Reply::Agent(self.agent_action(now, &agent, action))
            }
            Command::Status => {
                let (agents, queues) = self.agents_status(now);
                Reply::Status { agents, queues }
            }
            Command::Board { today_since } => {
                let (agents, queues) = self.agents_status(now);
                let wall = self.wall(now);
                Reply::Board {
                    agents,
                    queues,
                    today: self.window.counts_since(wall, today_since),
                    rolling_24h: self.window.counts(wall),
                    live: self
                        .live
                        .iter()
                        .filter(|fact| fact.at >= today_since)
                        .cloned()
                        .collect(),
                    callbacks: self.callback_scheduler().map(|s| s.stats(wall)),
                }
            }
            Command::Reload(reload) => Reply::Reload(self.reload(now, *reload)),
            Command::AgentScript { agent, script } => {
                Reply::Script(self.agent_script(now, &agent, script))
            }
            Command::Originate {
                agent,
                destination,
                caller_id,
            } => Reply::Originated(self.originate(now, &agent, &destination, caller_id)),
            Command::Callbacks(command) => Reply::Callbacks(self.callbacks_command(now, command)),
            Command::StopAccepting => {
                self.accepting = false;
                Reply::Done
            }
            Command::HangUpAll => {
                self.accepting = false;
                let keys: Vec<CallKey> = self.calls.keys().copied().collect();
                for key in keys {
                    self.shutdown_call(now, key);
                }
                Reply::Done
            }
            Command::Abandon => {
                let keys: Vec<CallKey> = self.calls.keys().copied().collect();
                for key in keys {
                    self.abandon_call(now, key);
                }
                Reply::Done
            }
        }
    }

    /// Keeps a fact for the wallboard (bounded: the oldest goes first).
    fn record_live(&mut self, fact: LiveFact) {
        if self.live.len() == LIVE_FACTS {
            self.live.pop_front();
        }
        self.live.push_back(fact);
    }

    /// Completes the wallboard's facts about a work order as its call moves on.
    fn update_live(
        &mut self,
        work_order: &crate::workorder::WorkOrderId,
        f: impl Fn(&mut LiveFact),
    ) {
        self.live
            .iter_mut()
            .filter(|fact| fact.work_order == *work_order)
            .for_each(f);
    }

    /// The dialplan version new calls take.
    pub fn dialplan_version(&self) -> u64 {
        self.plan.current().version
    }

    /// Applies both re-read files: the agents file first (it may refuse), then the call
    /// flow, so a refused reload changes nothing.
    fn reload(&mut self, now: Instant, reload: Reload) -> Result<u64, CommandError> {
        self.reload_agents(now, &reload.agents)?;
        self.prompts = reload.flow.prompts;
        let version = self.plan.replace(reload.flow.plan);
        tracing::info!(version, "dialplan reloaded; calls in progress keep theirs");
        Ok(version)
    }

    /// An agent hands the caller they are connected to to a dialplan script.
    fn agent_script(
        &mut self,
        now: Instant,
        agent: &str,
        script: crate::ivr::AgentScript,
    ) -> Result<(), CommandError> {
        let key = self
            .calls
            .iter()
            .find_map(|(key, call)| match &call.kind {
                CallKind::Inbound(inbound) if inbound.connected_agent() == Some(agent) => {
                    Some(*key)
                }
                _ => None,
            })
            .ok_or_else(|| CommandError::NoCall(agent.to_owned()))?;
        self.inbound_script(now, key, script)
            .map_err(|e| CommandError::Script(e.to_string()))?;
        self.settle(now);
        Ok(())
    }

    fn flow(&self, key: CallKey) -> Option<Flow> {
        self.calls.get(&key).map(|call| match call.kind {
            CallKind::Inbound(_) => Flow::Inbound,
            CallKind::Outbound(_) => Flow::Outbound,
            CallKind::Feature(_) => Flow::Feature,
        })
    }

    fn shutdown_call(&mut self, now: Instant, key: CallKey) {
        match self.flow(key) {
            Some(Flow::Inbound) => self.inbound_input(now, key, call::CallInput::Shutdown),
            Some(Flow::Outbound) => {
                self.outbound_hang_up(now, key, crate::workorder::HangupSide::Hotline)
            }
            Some(Flow::Feature) => self.feature_finish(now, key),
            None => {}
        }
    }

    /// Ends a call at once, without waiting for its peers (the last phase of shutdown).
    fn abandon_call(&mut self, now: Instant, key: CallKey) {
        match self.flow(key) {
            Some(Flow::Inbound) => self.inbound_abandon(now, key),
            Some(Flow::Outbound) => self.outbound_abandon(now, key),
            Some(Flow::Feature) => self.feature_finish(now, key),
            None => {}
        }
    }
}
