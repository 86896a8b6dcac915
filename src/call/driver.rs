//! The task that drives one inbound call (I/O): it feeds the [`CallCore`] what the
//! endpoint, the ACD and the media task report, and carries out its actions: responses
//! and BYE through the endpoint, the leg to the agent's phone (B2BUA), RTP and the
//! recording through the media task, and the work order, written as the call happens
//! (R10), through the store.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tracing::{Instrument, debug, error, info, info_span, warn};

use super::agent_leg::{AgentLeg, AgentTarget, LocalSide};
use super::core::{AgentLegFailure, CallAction, CallCore, CallInput, CallTimers, Ending, Side};
use crate::media::prompt::Prompt;
use crate::media::session::{self, MediaCommand, MediaEvent, MediaHandle, MediaParams};
use crate::metrics::QueueWaitEnd;
use crate::privacy::mask_number;
use crate::recording::Recording;
use crate::runtime::Shared;
use crate::runtime::agents::{CallKey, CallReport};
use crate::runtime::endpoint::EndpointCommand;
use crate::sip::TransportKind;
use crate::sip::dialog::{Dialog, UasInvite, ViaParams};
use crate::sip::message::{self, Header, Request, RequestSummary, SipMessage, StatusCode};
use crate::sip::sdp::{self, Negotiated};
use crate::sip::transaction::{KeyMethod, TransactionKey};
use crate::workorder::{AbandonReason, CallOutcome, HangupSide, WorkOrder, WorkOrderId};

/// What the endpoint and the ACD tell a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallEvent {
    Cancelled,
    CallerHungUp,
    Acked,
    AckTimedOut,
    Shutdown,
    /// A response to a request this call sent (its BYE, or the agent leg's INVITE,
    /// CANCEL or BYE).
    Response {
        key: TransactionKey,
        status: u16,
        payload: Bytes,
    },
    /// A request this call sent got no final response in time.
    RequestTimedOut {
        key: TransactionKey,
    },
    /// The agent's phone sent BYE.
    AgentHungUp,
    /// The ACD picked an agent; its phone is registered at `target`.
    AgentOffered {
        agent: String,
        target: AgentTarget,
    },
    /// The ACD withdrew the offer (the agent's ring timeout passed).
    OfferWithdrawn {
        agent: String,
    },
    /// The call waited its queue's maximum and goes to a dialplan step.
    Overflowed {
        step: String,
    },
}

/// Everything the endpoint learned and allocated for a new call.
pub struct CallSetup {
    pub invite: Request,
    pub summary: RequestSummary,
    pub invite_key: TransactionKey,
    /// The dialog's parts of the INVITE, read by the endpoint (which refuses an INVITE
    /// whose From, To or Contact cannot make a dialog).
    pub dialog: UasInvite,
    pub source: SocketAddr,
    pub transport: TransportKind,
    pub local_tag: String,
    pub negotiated: Negotiated,
    /// Bound by the endpoint so a call without a port is refused before it rings; the
    /// media task takes it at the answer.
    pub rtp_socket: Option<tokio::net::UdpSocket>,
    pub local_rtp: SocketAddr,
    /// Held for the call's life: the admission slot.
    pub permit: OwnedSemaphorePermit,
    /// The call's own event queue, handed to the ACD when the call is queued.
    pub events: mpsc::Sender<CallEvent>,
}

/// Runs one call to its end, then tells the endpoint.
pub async fn run(
    shared: Arc<Shared>,
    setup: CallSetup,
    endpoint: mpsc::Sender<EndpointCommand>,
    events: mpsc::Receiver<CallEvent>,
) {
    let call_id = setup.summary.call_id.clone();
    let offered_at = Utc::now();
    let work_order = WorkOrderId::generate(offered_at);
    let caller = setup.summary.from_user.clone().unwrap_or_default();
    let span = info_span!(
        "call",
        call_id = %call_id,
        work_order = %work_order,
        direction = "inbound",
        caller = %mask_number(&caller),
    );
    let call = Call::new(
        shared,
        setup,
        endpoint.clone(),
        work_order,
        caller,
        offered_at,
    );
    call.drive(events).instrument(span).await;
    let _ = endpoint.send(EndpointCommand::Ended { call_id }).await;
}

/// The agent side of the call while it exists.
struct AgentSide {
    leg: AgentLeg,
    socket: Arc<tokio::net::UdpSocket>,
    /// The phone's SDP answer, once it answered.
    negotiated: Option<Negotiated>,
    /// The BYE we sent it, so its response is recognised.
    bye_key: Option<TransactionKey>,
}

struct Call {
    shared: Arc<Shared>,
    setup: CallSetup,
    endpoint: mpsc::Sender<EndpointCommand>,
    work_order: WorkOrderId,
    caller: String,
    /// Wall-clock time of the INVITE, for the work order.
    offered_at: DateTime<Utc>,
    /// The key the ACD knows this call by.
    call_key: CallKey,
    /// When the call entered the queue: the wait starts here, and the 24 h window counts
    /// the call in this minute (R5).
    queued_at: Option<(Instant, DateTime<Utc>)>,
    core: CallCore,
    dialog: Dialog,
    bye_key: Option<TransactionKey>,
    media: Option<MediaHandle>,
    recording: Option<Recording>,
    /// Where the agent the ACD offered is registered, until the core rings it.
    offered_target: Option<(String, AgentTarget)>,
    agent: Option<AgentSide>,
}

impl Call {
    fn new(
        shared: Arc<Shared>,
        setup: CallSetup,
        endpoint: mpsc::Sender<EndpointCommand>,
        work_order: WorkOrderId,
        caller: String,
        offered_at: DateTime<Utc>,
    ) -> Call {
        let timers = CallTimers {
            ring_before_answer: shared.config.calls.ring_before_answer,
            max_call_length: shared.config.calls.max_call_length,
            position_announcement_interval: shared.config.acd.position_announcement_interval,
        };
        let dialog = Dialog::new_uas(setup.dialog.clone(), &setup.local_tag);
        Call {
            core: CallCore::new(Instant::now(), timers),
            call_key: shared.next_call_key(),
            shared,
            setup,
            endpoint,
            work_order,
            caller,
            offered_at,
            queued_at: None,
            dialog,
            bye_key: None,
            media: None,
            recording: None,
            offered_target: None,
            agent: None,
        }
    }

    async fn drive(mut self, mut events: mpsc::Receiver<CallEvent>) {
        // R10: the work order exists from the moment the INVITE is taken. A store
        // failure does not refuse the call (R3): it is logged and counted.
        let order = WorkOrder::new_inbound(
            self.work_order.clone(),
            self.setup.summary.call_id.clone(),
            self.caller.clone(),
            self.setup
                .summary
                .request_uri_user
                .clone()
                .unwrap_or_default(),
            self.offered_at,
        );
        if let Err(e) = self.shared.store.create(&order).await {
            store_failed("work order not written", &e);
        }
        metrics::counter!("hotline_calls_offered_total").increment(1);

        loop {
            while let Some(action) = self.core.poll_action() {
                self.perform(action).await;
            }
            if self.core.is_done() {
                break;
            }
            let deadline = self.core.poll_timeout();
            let timer = async move {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            let media_event = async {
                match self.media.as_mut() {
                    Some(m) => m.events.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = events.recv() => match event {
                    Some(event) => self.on_event(event).await,
                    // The endpoint is gone only when the engine stops: end the call.
                    None => self.core.handle_input(Instant::now(), CallInput::Shutdown),
                },
                _ = timer => self.core.handle_timeout(Instant::now()),
                event = media_event => match event {
                    Some(MediaEvent::PlaybackFinished) => {
                        self.core.handle_input(Instant::now(), CallInput::PromptFinished)
                    }
                    // Keys belong to the IVR menus, which come next.
                    Some(MediaEvent::Dtmf(digit)) => debug!(%digit, "key pressed"),
                    None => {
                        // The media task is gone while the call is up: it cannot be
                        // served any more, so the hotline hangs up rather than leave
                        // the caller in silence.
                        error!("media task ended unexpectedly");
                        self.media = None;
                        self.core.handle_input(Instant::now(), CallInput::MediaFailed);
                    }
                },
            }
        }
    }

    async fn on_event(&mut self, event: CallEvent) {
        let now = Instant::now();
        let input = match event {
            CallEvent::Cancelled => CallInput::CallerCancelled,
            CallEvent::CallerHungUp => CallInput::CallerHungUp,
            CallEvent::Acked => CallInput::Acked,
            CallEvent::AckTimedOut => CallInput::AckTimedOut,
            CallEvent::Shutdown => CallInput::Shutdown,
            CallEvent::AgentHungUp => {
                if let Some(side) = self.agent.as_mut() {
                    side.leg.ended_by_agent();
                }
                CallInput::AgentHungUp
            }
            CallEvent::AgentOffered { agent, target } => {
                self.offered_target = Some((agent.clone(), target));
                CallInput::AgentOffered { agent }
            }
            CallEvent::OfferWithdrawn { agent } => CallInput::OfferWithdrawn { agent },
            CallEvent::Overflowed { step } => CallInput::Overflowed { step },
            CallEvent::Response {
                key,
                status,
                payload,
            } => match self.on_response(&key, status, &payload).await {
                Some(input) => input,
                None => return,
            },
            CallEvent::RequestTimedOut { key } => {
                if Some(&key) == self.bye_key.as_ref() {
                    CallInput::ByeFinished
                } else if self.is_agent_invite(&key) {
                    let agent = self
                        .agent
                        .as_ref()
                        .map(|a| a.leg.agent.clone())
                        .unwrap_or_default();
                    CallInput::AgentLegFailed {
                        agent,
                        failure: AgentLegFailure::Unreachable,
                    }
                } else {
                    return;
                }
            }
        };
        self.core.handle_input(now, input);
    }

    fn is_agent_invite(&self, key: &TransactionKey) -> bool {
        self.agent
            .as_ref()
            .is_some_and(|a| &a.leg.invite_key == key)
    }

    /// Turns a response into what the core needs to know, sending the ACKs the agent
    /// leg owes on the way.
    async fn on_response(
        &mut self,
        key: &TransactionKey,
        status: u16,
        payload: &Bytes,
    ) -> Option<CallInput> {
        if Some(key) == self.bye_key.as_ref() {
            return (status >= 200).then_some(CallInput::ByeFinished);
        }
        if !self.is_agent_invite(key) || status < 200 {
            return None;
        }
        let response = match message::parse(payload) {
            Ok(SipMessage::Response(r)) => r,
            _ => return None,
        };
        let side = self.agent.as_mut()?;
        let agent = side.leg.agent.clone();
        if (200..300).contains(&status) {
            if let Some(ack) = side.leg.ack_again() {
                // A retransmitted 2xx: our ACK was lost (RFC 3261 §13.2.2.4).
                self.send_direct(ack).await;
                return None;
            }
            return match side.leg.answered(&response) {
                Ok((negotiated, ack)) => {
                    side.negotiated = Some(negotiated);
                    self.send_direct(ack).await;
                    Some(CallInput::AgentAnswered { agent })
                }
                Err(e) => {
                    warn!(error = %e, agent, "agent's answer unusable");
                    Some(CallInput::AgentLegFailed {
                        agent,
                        failure: AgentLegFailure::Unreachable,
                    })
                }
            };
        }
        let was_ringing = side.leg.is_ringing();
        let ack = side.leg.ack_for_failure(&response);
        let _ = self
            .endpoint
            .send(EndpointCommand::SendAck {
                key: key.clone(),
                payload: ack,
            })
            .await;
        // 487 answers our own CANCEL: the core already moved on.
        if !was_ringing || status == 487 {
            return None;
        }
        let failure = match status {
            486 | 600 | 603 => AgentLegFailure::Refused,
            _ => AgentLegFailure::Unreachable,
        };
        info!(agent, status, "agent's phone did not take the call");
        Some(CallInput::AgentLegFailed { agent, failure })
    }

    async fn perform(&mut self, action: CallAction) {
        match action {
            CallAction::SendRinging => self.respond(StatusCode::Ringing, vec![], None).await,
            CallAction::Answer => self.answer().await,
            CallAction::RejectTerminated => {
                self.respond(StatusCode::RequestTerminated, vec![], None)
                    .await
            }
            CallAction::RejectUnavailable => {
                let retry = self.shared.config.calls.retry_after.as_secs().to_string();
                let headers = vec![Header::RetryAfter(message::RetryAfter::new(retry))];
                self.respond(StatusCode::ServiceUnavailable, headers, None)
                    .await
            }
            CallAction::RejectFailed => {
                self.respond(StatusCode::ServerInternalError, vec![], None)
                    .await
            }
            CallAction::SendBye => self.send_bye().await,
            CallAction::StopMedia => self.stop_media().await,
            CallAction::Enqueue => self.enqueue().await,
            CallAction::PlayQueueWelcome => {
                let prompt = self.shared.prompts.queue_wait.clone();
                self.play(prompt).await
            }
            CallAction::PlayHoldMusic => {
                let prompt = self.shared.prompts.hold_music.clone();
                self.play(prompt).await
            }
            CallAction::AnnouncePosition => self.announce_position().await,
            CallAction::InviteAgent { agent } => self.invite_agent(agent).await,
            CallAction::CancelAgent { .. } => self.cancel_agent().await,
            CallAction::ByeAgent => self.bye_agent().await,
            CallAction::Bridge { agent } => self.bridge(agent).await,
            CallAction::Unbridge => {
                if let Some(media) = &self.media {
                    let _ = media.commands.send(MediaCommand::DetachAgent).await;
                }
            }
            CallAction::ReportAnswered { agent } => {
                self.report(CallReport::Answered { agent }).await
            }
            CallAction::ReportOfferFailed { agent, failure } => {
                self.report(CallReport::OfferFailed { agent, failure })
                    .await
            }
            CallAction::ReportAbandoned => {
                if let Some(wait) = self.wait() {
                    crate::metrics::record_queue_wait(self.queue(), wait, QueueWaitEnd::Abandoned);
                }
                self.report(CallReport::Abandoned).await
            }
            CallAction::ReportCallEnded => self.report(CallReport::Ended).await,
            CallAction::PlayClosing => {
                let prompt = self.shared.prompts.closing.clone();
                self.play(prompt).await
            }
            CallAction::PlayStep { step } => self.play_step(&step).await,
            CallAction::Finish(ending) => self.finish(ending).await,
        }
    }

    fn queue(&self) -> &str {
        &self.shared.config.acd.default_queue
    }

    fn contact(&self) -> Header {
        let ip = self.shared.config.sip.advertised_ip;
        let port = self.local_port(self.setup.transport);
        let transport = match self.setup.transport {
            TransportKind::Udp => "",
            TransportKind::Tcp => ";transport=tcp",
        };
        Header::Contact(message::Contact::new(format!(
            "<sip:hotline@{ip}:{port}{transport}>"
        )))
    }

    fn local_port(&self, transport: TransportKind) -> u16 {
        self.shared.local_port(transport)
    }

    async fn respond(&self, status: StatusCode, mut headers: Vec<Header>, sdp: Option<String>) {
        let code = u16::from(status.clone());
        if (101..300).contains(&code) {
            headers.push(self.contact());
        }
        let body = sdp.map(|s| ("application/sdp", s.into_bytes()));
        let response = message::build_response(
            &self.setup.invite,
            status,
            Some(&self.setup.local_tag),
            headers,
            body,
        );
        let _ = self
            .endpoint
            .send(EndpointCommand::Respond {
                key: self.setup.invite_key.clone(),
                status: code,
                payload: Bytes::from(response.to_string()),
            })
            .await;
    }

    async fn play(&self, prompt: Arc<Prompt>) {
        if let Some(media) = &self.media {
            let _ = media.commands.send(MediaCommand::Play(prompt)).await;
        }
    }

    async fn answer(&mut self) {
        let date = Utc::now().date_naive();
        let recording = match crate::recording::start(
            &self.shared.recordings,
            date,
            self.work_order.as_str(),
        ) {
            Ok(r) => Some(r),
            Err(e) => {
                // The call is still answered (R3); `start` counted the failure (R30).
                error!(error = %e, "recording could not start");
                None
            }
        };
        let Some(socket) = self.setup.rtp_socket.take() else {
            // Answer runs once per call; a second would be a core bug, not a network event.
            error!("answer without an RTP socket");
            return;
        };
        let params = MediaParams {
            remote: self.setup.negotiated.remote_rtp,
            codec: self.setup.negotiated.codec,
            telephone_event_pt: self.setup.negotiated.remote_telephone_event_pt,
            ssrc: rand::random(),
        };
        let media = session::spawn(socket, params, recording.as_ref().map(|r| r.frames()));
        let _ = media
            .commands
            .send(MediaCommand::Play(self.shared.prompts.greeting.clone()))
            .await;
        self.media = Some(media);

        let answer_sdp = sdp::answer(
            self.shared.config.sip.advertised_ip,
            self.setup.local_rtp.port(),
            &self.setup.negotiated,
            rand::random::<u32>() as u64,
        );
        self.respond(StatusCode::OK, vec![], Some(answer_sdp)).await;

        let delay = self.core.answered_at().unwrap_or_else(Instant::now) - self.core.offered_at();
        metrics::counter!("hotline_calls_answered_total").increment(1);
        metrics::histogram!("hotline_answer_delay_seconds").record(delay.as_secs_f64());
        if delay <= self.shared.config.calls.ring_budget {
            metrics::counter!("hotline_answered_within_ring_budget_total").increment(1);
        }
        let path = recording.as_ref().map(|r| r.path().display().to_string());
        if let Err(e) = self
            .shared
            .store
            .mark_answered(&self.work_order, Utc::now(), path.as_deref())
            .await
        {
            store_failed("work order answer not written", &e);
        }
        self.recording = recording;
        info!(delay_ms = delay.as_millis() as u64, "answered");
    }

    async fn enqueue(&mut self) {
        let queue = self.queue().to_owned();
        let now = Utc::now();
        self.queued_at = Some((Instant::now(), now));
        crate::metrics::count_queued(&queue);
        self.shared.record_offered(now);
        if let Err(e) = self
            .shared
            .store
            .mark_queued(&self.work_order, now, &queue)
            .await
        {
            store_failed("work order queue not written", &e);
        }
        self.shared
            .agents
            .enqueue(self.call_key, queue.clone(), 0, self.setup.events.clone())
            .await;
        info!(queue, "queued");
    }

    async fn report(&self, report: CallReport) {
        self.shared.agents.report(self.call_key, report).await;
    }

    /// How long the call has waited since it was queued.
    fn wait(&self) -> Option<std::time::Duration> {
        self.queued_at.map(|(queued, _)| queued.elapsed())
    }

    async fn announce_position(&mut self) {
        let Some(position) = self.shared.agents.position(self.call_key).await else {
            return;
        };
        // "您前面还有 N 位": N callers ahead; the next in line hears no count.
        let ahead = position.saturating_sub(1);
        if ahead == 0 {
            return;
        }
        let prompt = self.shared.prompts.position(ahead);
        crate::metrics::count_announcement(self.queue());
        self.play(prompt).await;
    }

    async fn invite_agent(&mut self, agent: String) {
        let opened = match self.offered_target.take() {
            Some((offered, target)) if offered == agent => self.open_agent_leg(&agent, target),
            _ => Err("the offer came without a registered target".to_owned()),
        };
        let (leg, socket) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                warn!(agent, error = %e, "cannot ring the agent's phone");
                return self.core.handle_input(
                    Instant::now(),
                    CallInput::AgentLegFailed {
                        agent,
                        failure: AgentLegFailure::Unreachable,
                    },
                );
            }
        };
        let _ = self
            .endpoint
            .send(EndpointCommand::TrackLeg {
                leg_call_id: leg.call_id.clone(),
                owner_call_id: self.setup.summary.call_id.clone(),
            })
            .await;
        let (key, invite) = (leg.invite_key.clone(), leg.invite_bytes());
        self.agent = Some(AgentSide {
            leg,
            socket: Arc::new(socket),
            negotiated: None,
            bye_key: None,
        });
        info!(agent, "ringing the agent");
        self.send_to_agent(key, invite).await;
    }

    /// An RTP port and the INVITE for the agent's phone.
    fn open_agent_leg(
        &self,
        agent: &str,
        target: AgentTarget,
    ) -> Result<(AgentLeg, tokio::net::UdpSocket), String> {
        let socket = self.shared.ports.bind().map_err(|e| e.to_string())?;
        let port = socket.local_addr().map_err(|e| e.to_string())?.port();
        let local = LocalSide {
            ip: self.shared.config.sip.advertised_ip,
            port: self.local_port(target.transport),
        };
        let display = mask_number(&self.caller);
        let leg = AgentLeg::new(agent, target, local, port, &display).map_err(|e| e.to_string())?;
        Ok((leg, socket))
    }

    async fn cancel_agent(&mut self) {
        let Some(side) = self.agent.as_mut() else {
            return;
        };
        if let Some((key, payload)) = side.leg.cancel() {
            self.send_to_agent(key, payload).await;
        }
    }

    /// Sends a request on the agent's leg as a new client transaction.
    async fn send_to_agent(&self, key: TransactionKey, payload: Bytes) {
        let Some(side) = &self.agent else {
            return;
        };
        let _ = self
            .endpoint
            .send(EndpointCommand::SendRequest {
                call_id: self.setup.summary.call_id.clone(),
                key,
                destination: side.leg.target.destination,
                transport: side.leg.target.transport,
                payload,
            })
            .await;
    }

    async fn bye_agent(&mut self) {
        let Some(side) = self.agent.as_mut() else {
            return;
        };
        if let Some((key, payload)) = side.leg.bye() {
            side.bye_key = Some(key.clone());
            self.send_to_agent(key, payload).await;
        }
    }

    async fn bridge(&mut self, agent: String) {
        if let Some(wait) = self.wait() {
            crate::metrics::count_connected(self.queue(), wait);
        }
        let Some(side) = self.agent.as_ref() else {
            return;
        };
        let Some(negotiated) = side.negotiated.clone() else {
            return;
        };
        if let Some(media) = &self.media {
            let _ = media
                .commands
                .send(MediaCommand::AttachAgent {
                    socket: side.socket.clone(),
                    params: MediaParams {
                        remote: negotiated.remote_rtp,
                        codec: negotiated.codec,
                        telephone_event_pt: negotiated.remote_telephone_event_pt,
                        ssrc: rand::random(),
                    },
                })
                .await;
        }
        if let Some((_, queued_at)) = self.queued_at {
            self.shared.record_answered(queued_at);
        }
        // R7: first contact — the agent who answers owns the work order.
        if let Err(e) = self
            .shared
            .store
            .mark_connected(&self.work_order, Utc::now(), &agent)
            .await
        {
            store_failed("work order owner not written", &e);
        }
        info!(agent, "connected to the agent");
    }

    async fn play_step(&mut self, step: &str) {
        if let Some(wait) = self.wait() {
            crate::metrics::record_queue_wait(self.queue(), wait, QueueWaitEnd::Overflowed);
        }
        // Steps are named after their prompt until the IVR dialplans land.
        let path = self.shared.config.prompt_path(&format!("{step}.wav"));
        let prompt = match tokio::task::spawn_blocking(move || Prompt::load(path)).await {
            Ok(Ok(prompt)) => Arc::new(prompt),
            Ok(Err(e)) => {
                warn!(step, error = %e, "overflow step has no prompt; playing the closing");
                self.shared.prompts.closing.clone()
            }
            Err(e) => {
                error!(error = %e, "prompt loader failed");
                self.shared.prompts.closing.clone()
            }
        };
        self.play(prompt).await;
    }

    async fn send_direct(&self, payload: Bytes) {
        if let Some(side) = &self.agent {
            let _ = self
                .endpoint
                .send(EndpointCommand::SendDirect {
                    destination: side.leg.target.destination,
                    transport: side.leg.target.transport,
                    payload,
                })
                .await;
        }
    }

    async fn send_bye(&mut self) {
        let sip = &self.shared.config.sip;
        let branch = message::new_branch();
        let via_host = sip.advertised_ip.to_string();
        let port = self.local_port(self.setup.transport);
        let bye = self.dialog.build_bye(&ViaParams {
            host: &via_host,
            port,
            transport: self.setup.transport.into(),
            branch: &branch,
        });
        let sent_by = format!("{via_host}:{port}");
        let key = TransactionKey::rfc3261(&branch, KeyMethod::from_name("BYE"), &sent_by);
        self.bye_key = Some(key.clone());
        let _ = self
            .endpoint
            .send(EndpointCommand::SendRequest {
                call_id: self.setup.summary.call_id.clone(),
                key,
                destination: self.setup.source,
                transport: self.setup.transport,
                payload: Bytes::from(bye.to_string()),
            })
            .await;
    }

    async fn stop_media(&mut self) {
        if let Some(media) = self.media.take() {
            let stats = media.stop().await;
            metrics::counter!("hotline_rtp_packets_sent_total").increment(stats.packets_sent);
            metrics::counter!("hotline_rtp_packets_received_total")
                .increment(stats.packets_received);
            metrics::counter!("hotline_recording_frames_dropped_total")
                .increment(stats.frames_dropped_for_recording);
        }
        if let Some(recording) = self.recording.take() {
            match recording.finish().await {
                Ok(summary) => info!(
                    path = %summary.path.display(),
                    seconds = summary.duration.as_secs_f64(),
                    "recording finished"
                ),
                Err(e) => error!(error = %e, "recording failed"),
            }
        }
    }

    async fn finish(&mut self, ending: Ending) {
        // Media may still run if the call ended before StopMedia (e.g. no ACK).
        self.stop_media().await;
        let (side, outcome) = match ending {
            Ending::Completed { side } => (
                Some(match side {
                    Side::Caller => HangupSide::Caller,
                    Side::Agent => HangupSide::Agent,
                    Side::Hotline => HangupSide::Hotline,
                }),
                CallOutcome::Answered,
            ),
            Ending::CallerAbandoned => (
                Some(HangupSide::Caller),
                abandoned(AbandonReason::CallerCancelled),
            ),
            Ending::AbandonedInQueue => (
                Some(HangupSide::Caller),
                abandoned(AbandonReason::CallerHungUpInQueue),
            ),
            Ending::AbandonedWhileAgentRang => (
                Some(HangupSide::Caller),
                abandoned(AbandonReason::CallerHungUpWhileAgentRang),
            ),
            Ending::ShutdownBeforeAnswer => (
                Some(HangupSide::Hotline),
                abandoned(AbandonReason::Shutdown),
            ),
            Ending::NoAck => (Some(HangupSide::Hotline), CallOutcome::Answered),
            Ending::Failed => (Some(HangupSide::Hotline), abandoned(AbandonReason::Failed)),
        };
        if let CallOutcome::Abandoned { reason } = outcome {
            crate::metrics::count_abandoned(reason);
        }
        if let Err(e) = self
            .shared
            .store
            .mark_ended(&self.work_order, Utc::now(), side, outcome)
            .await
        {
            store_failed("work order end not written", &e);
        }
        if ending == Ending::NoAck {
            warn!("caller never acknowledged the answer");
        }
        info!(?ending, "call ended");
    }
}

fn abandoned(reason: AbandonReason) -> CallOutcome {
    CallOutcome::Abandoned { reason }
}

fn store_failed(what: &str, error: &crate::workorder::StoreError) {
    error!(error = %error, "{what}");
    metrics::counter!("hotline_store_errors_total").increment(1);
}
