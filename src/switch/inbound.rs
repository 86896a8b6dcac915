//! Inbound calls (pure): admission of a trunk's INVITE, then the [`CallCore`]'s actions
//! carried out on the call's legs — the customer's leg (UAS), the agent's phone (UAC)
//! and a transfer destination (UAC), the ACD, the media orders (the dialplan's prompts
//! from the call's own prompt library) and the work order, written as the call happens
//! (R10).

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::call::{AgentLegFailure, CallAction, CallCore, CallInput, CallTimers, Ending, Side};
use super::legs::{LegEvent, LegId, LegRole};
use super::uac_leg::UacTarget;
use super::{Call, CallKind, RecordingOrder, SUPPORTED_EXTENSIONS, StoreWrite, Switch};
use crate::acd::CallKey;
use crate::ivr::{CallIvr, WorkOrderWrite};
use crate::media::prompt::PromptLibrary;
use crate::media::vad::VadSettings;
use crate::metrics::{OfferResult, QueueWaitEnd};
use crate::privacy::mask_number;
use crate::sip::TransportKind;
use crate::sip::message::{self, Header, Request, RequestSummary};
use crate::sip::session_timer;
use crate::sip::transaction::TransactionKey;
use crate::sip::trunk::Admission;
use crate::workorder::{
    AbandonReason, CallOutcome, HangupSide, RejectReason, WorkOrder, WorkOrderId,
};

/// An inbound call: the state machine and what the switch keeps beside it.
#[derive(Debug)]
pub struct InboundCall {
    core: CallCore,
    customer: LegId,
    /// The leg to the agent being rung or talked to.
    agent_leg: Option<LegId>,
    /// Where the offered agent's phone is registered, until the core rings it.
    offered_target: Option<(String, UacTarget)>,
    /// The leg to a transfer destination (R11), while it rings or is bridged.
    transfer_leg: Option<LegId>,
    /// The prompts of the dialplan version the call started on.
    prompts: Arc<PromptLibrary>,
    /// How that version tells the caller's speech from silence.
    voice: VadSettings,
    work_order: WorkOrderId,
    /// When the call entered the queue: the wait starts here, and the 24 h window
    /// counts the call in this minute (R5).
    queued_at: Option<(Instant, DateTime<Utc>)>,
    /// The answer is due but the RTP port is not open yet.
    answer_pending: bool,
}

impl InboundCall {
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    pub fn work_order(&self) -> &WorkOrderId {
        &self.work_order
    }

    /// The agent the caller talks to now, if any.
    pub fn connected_agent(&self) -> Option<&str> {
        self.core.connected_agent()
    }

    /// Where the agent the ACD offered the call to is registered, until it is rung.
    pub fn set_offered_target(&mut self, agent: String, target: UacTarget) {
        self.offered_target = Some((agent, target));
    }
}

impl Switch {
    /// A new INVITE outside any dialog: refused, a feature code, or a call.
    pub(super) fn on_new_invite(
        &mut self,
        now: Instant,
        key: TransactionKey,
        request: Request,
        summary: RequestSummary,
        source: std::net::SocketAddr,
        transport: TransportKind,
    ) {
        if !self.accepting {
            return self.refuse(now, &key, &request, RejectReason::ShuttingDown, "");
        }
        // Same Call-ID and From tag as a call we have, no To tag, a new branch: a merged
        // request (RFC 3261 §8.2.2.2), never a second call. Another From tag is a new call.
        if let Some(from_tag) = &summary.from_tag
            && self
                .inbound_dialogs
                .contains_key(&(summary.call_id.clone(), from_tag.clone()))
        {
            let tag = self.ids.tag();
            return self.respond(now, &key, &request, 482, Some(&tag), vec![], None);
        }
        let unsupported = crate::sip::extensions::check_request(&request, SUPPORTED_EXTENSIONS);
        if !unsupported.is_empty() {
            let tag = self.ids.tag();
            let headers = vec![crate::sip::builder::unsupported(&unsupported)];
            return self.respond(now, &key, &request, 420, Some(&tag), headers, None);
        }
        let session = match session_timer::parse(&request.headers) {
            Ok(headers) => session_timer::negotiate_uas(&headers, &self.settings.session_timers),
            Err(e) => {
                tracing::debug!(error = %e, "bad session-timer headers");
                return self.refuse(
                    now,
                    &key,
                    &request,
                    RejectReason::BadRequest,
                    "bad session timer",
                );
            }
        };
        if matches!(session, session_timer::Decision::Reject422 { .. }) {
            let tag = self.ids.tag();
            let headers = session.response_headers();
            return self.respond(now, &key, &request, 422, Some(&tag), headers, None);
        }
        let mut offer = match Self::read_invite(&request, &summary, source, transport) {
            Ok(offer) => offer,
            Err((reason, detail)) => return self.refuse(now, &key, &request, reason, detail),
        };
        offer.session = session;
        if self.calls.len() >= self.settings.max_concurrent {
            return self.refuse(now, &key, &request, RejectReason::Overloaded, "");
        }
        if let Some(action) = summary
            .request_uri_user
            .as_deref()
            .and_then(super::AgentAction::from_feature_code)
        {
            // Agents' phones authenticate as agents (digest), not as trunks.
            return self
                .start_feature_call(now, key, request, summary, offer, source, transport, action);
        }
        // R29: trunks are allowed by address or by digest credentials.
        let at = self.system_time(now);
        match self
            .settings
            .trunks
            .admit(at, source.ip(), &request, &self.digest)
        {
            Admission::Allowed { .. } => {}
            Admission::Challenge { stale } => {
                let tag = self.ids.tag();
                let headers = self
                    .digest
                    .challenges(at, stale)
                    .into_iter()
                    .map(crate::sip::builder::www_authenticate)
                    .collect();
                return self.respond(now, &key, &request, 401, Some(&tag), headers, None);
            }
            Admission::Forbidden { reason } => {
                metrics::counter!(crate::metrics::TRUNK_REFUSALS_TOTAL, crate::metrics::REASON_LABEL => reason.as_str())
                    .increment(1);
                info!(source = %source.ip(), reason = reason.as_str(), "INVITE from no allowed trunk refused");
                return self.refuse(now, &key, &request, RejectReason::Forbidden, "");
            }
        }
        let call = self.new_call_key();
        let wall = self.wall(now);
        let work_order = WorkOrderId::from_parts(wall, self.ids.next_u64());
        let caller = summary.from_user.clone().unwrap_or_default();
        let callee = summary.request_uri_user.clone().unwrap_or_default();
        info!(
            caller = %mask_number(&caller),
            transport = transport.label(),
            work_order = %work_order,
            "incoming call"
        );
        let order = WorkOrder::new_inbound(
            work_order.clone(),
            summary.call_id.clone(),
            caller,
            callee,
            wall,
        );
        self.store.push_back(StoreWrite::Create(Box::new(order)));
        metrics::counter!(crate::metrics::CALLS_OFFERED_TOTAL).increment(1);
        let customer = self.open_uas_leg(
            now,
            call,
            LegRole::Customer,
            key,
            request,
            &summary,
            offer,
            source,
            transport,
        );
        let timers = CallTimers {
            ring_before_answer: self.settings.ring_before_answer,
            max_call_length: self.settings.max_call_length,
        };
        let plan = self.plan.current();
        let voice = plan.voice;
        let ivr = CallIvr::new(plan);
        self.calls.insert(
            call,
            Call {
                kind: CallKind::Inbound(Box::new(InboundCall {
                    core: CallCore::new(now, timers, ivr),
                    customer,
                    agent_leg: None,
                    offered_target: None,
                    transfer_leg: None,
                    prompts: Arc::clone(&self.prompts),
                    voice,
                    work_order,
                    queued_at: None,
                    answer_pending: false,
                })),
                legs: vec![customer],
                armed: None,
            },
        );
        self.run_inbound(now, call);
    }

    fn inbound(&mut self, call: CallKey) -> Option<&mut InboundCall> {
        match self.calls.get_mut(&call).map(|c| &mut c.kind) {
            Some(CallKind::Inbound(inbound)) => Some(inbound),
            _ => None,
        }
    }

    /// Feeds the call core one input and carries out what it decides.
    pub(super) fn inbound_input(&mut self, now: Instant, call: CallKey, input: CallInput) {
        if let Some(inbound) = self.inbound(call) {
            inbound.core.handle_input(now, input);
        }
        self.run_inbound(now, call);
    }

    /// An agent starts a dialplan script on this call (see [`Switch::agent_script`]).
    pub(super) fn inbound_script(
        &mut self,
        now: Instant,
        call: CallKey,
        script: crate::ivr::AgentScript,
    ) -> Result<(), crate::ivr::IvrError> {
        if let Some(inbound) = self.inbound(call) {
            inbound.core.start_script(now, script)?;
        }
        self.run_inbound(now, call);
        Ok(())
    }

    pub(super) fn inbound_timeout(&mut self, now: Instant, call: CallKey) {
        if let Some(inbound) = self.inbound(call) {
            inbound.core.handle_timeout(now);
        }
        self.run_inbound(now, call);
    }

    fn run_inbound(&mut self, now: Instant, call: CallKey) {
        while let Some(action) = self.inbound(call).and_then(|c| c.core.poll_action()) {
            self.perform(now, call, action);
        }
        self.rearm(call);
    }

    pub(super) fn inbound_leg_event(
        &mut self,
        now: Instant,
        call: CallKey,
        leg: LegId,
        event: LegEvent,
    ) {
        let Some(inbound) = self.inbound(call) else {
            return;
        };
        let (customer, agent_leg, transfer_leg, answer_pending) = (
            inbound.customer,
            inbound.agent_leg,
            inbound.transfer_leg,
            inbound.answer_pending,
        );
        if leg == customer {
            let input = match event {
                LegEvent::MediaReady => {
                    if answer_pending {
                        if let Some(inbound) = self.inbound(call) {
                            inbound.answer_pending = false;
                        }
                        self.answer(now, call);
                    }
                    return;
                }
                LegEvent::Cancelled => CallInput::CallerCancelled,
                LegEvent::Acked => {
                    // A late offer's answer came in the ACK: the stream can start now.
                    let recording = self.recording_order(call);
                    let voice = self.inbound(call).map(|c| c.voice);
                    if !self.start_media_listening(customer, recording, voice) {
                        return self.inbound_input(now, call, CallInput::MediaFailed);
                    }
                    CallInput::Acked
                }
                LegEvent::AckTimedOut => CallInput::AckTimedOut,
                LegEvent::HungUp => CallInput::CallerHungUp,
                LegEvent::ByeFinished => CallInput::ByeFinished,
                LegEvent::PromptFinished => CallInput::PromptFinished,
                LegEvent::MediaFailed => CallInput::MediaFailed,
                LegEvent::MediaInactive => {
                    warn!("no RTP from the caller: ending the call");
                    CallInput::MediaTimedOut
                }
                LegEvent::SessionExpired => CallInput::SessionExpired,
                LegEvent::Dtmf(digit) => CallInput::Digit(digit),
                LegEvent::VoiceStarted => CallInput::VoiceStarted,
                LegEvent::VoiceEnded => CallInput::VoiceEnded,
                LegEvent::Answered | LegEvent::Failed { .. } => return,
            };
            return self.inbound_input(now, call, input);
        }
        if Some(leg) == transfer_leg {
            let input = match event {
                LegEvent::Answered => {
                    if !self.attach_media(leg, customer) {
                        warn!("transfer destination's media unusable");
                    }
                    CallInput::TransferAnswered
                }
                LegEvent::Failed { status } => {
                    self.close_media(leg);
                    info!(status, "transfer destination did not take the call");
                    if let Some(inbound) = self.inbound(call) {
                        inbound.transfer_leg = None;
                    }
                    CallInput::TransferFailed
                }
                LegEvent::HungUp => {
                    self.detach_media(leg);
                    self.close_media(leg);
                    CallInput::TransferHungUp
                }
                LegEvent::ByeFinished => {
                    self.close_media(leg);
                    return;
                }
                _ => return,
            };
            return self.inbound_input(now, call, input);
        }
        if Some(leg) != agent_leg {
            // A leg to an earlier agent, ending on its own.
            if matches!(event, LegEvent::Answered) {
                self.hang_up_leg(now, leg);
            }
            return;
        }
        let agent = self
            .legs
            .get(&leg)
            .and_then(|l| l.agent().map(str::to_owned))
            .unwrap_or_default();
        let input = match event {
            LegEvent::Answered => CallInput::AgentAnswered { agent },
            LegEvent::Failed { status } => {
                self.close_media(leg);
                info!(agent, status, "agent's phone did not take the call");
                CallInput::AgentLegFailed {
                    agent,
                    failure: offer_failure(status),
                }
            }
            LegEvent::HungUp => {
                self.close_media(leg);
                CallInput::AgentHungUp
            }
            LegEvent::ByeFinished => {
                self.close_media(leg);
                return;
            }
            _ => return,
        };
        self.inbound_input(now, call, input);
    }

    /// The recording of an inbound call: the customer's leg, by work order (R22).
    fn recording_order(&self, call: CallKey) -> Option<RecordingOrder> {
        let CallKind::Inbound(inbound) = &self.calls.get(&call)?.kind else {
            return None;
        };
        let date = inbound
            .queued_at
            .map(|(_, wall)| wall)
            .unwrap_or_else(|| {
                self.wall(
                    inbound
                        .core
                        .answered_at()
                        .unwrap_or(inbound.core.offered_at()),
                )
            })
            .date_naive();
        let id = inbound.work_order.clone();
        Some(RecordingOrder {
            path: crate::recording::recording_path(
                &self.settings.recordings_root,
                date,
                id.as_str(),
            ),
            work_order: id,
            date,
        })
    }

    fn answer(&mut self, now: Instant, call: CallKey) {
        let Some(inbound) = self.inbound(call) else {
            return;
        };
        let customer = inbound.customer;
        if !self.uas_answer(now, customer) {
            if let Some(inbound) = self.inbound(call) {
                inbound.answer_pending = true;
            }
            return;
        }
        let recording = self.recording_order(call);
        let path = recording.as_ref().map(|r| r.path.display().to_string());
        let voice = self.inbound(call).map(|c| c.voice);
        // With a late offer the stream starts at the ACK, which carries the answer.
        self.start_media_listening(customer, recording, voice);
        let Some(inbound) = self.inbound(call) else {
            return;
        };
        let delay = inbound.core.answered_at().unwrap_or(now) - inbound.core.offered_at();
        let id = inbound.work_order.clone();
        metrics::counter!(crate::metrics::CALLS_ANSWERED_TOTAL).increment(1);
        metrics::histogram!(crate::metrics::ANSWER_DELAY_SECONDS).record(delay.as_secs_f64());
        if delay <= self.settings.ring_budget {
            metrics::counter!(crate::metrics::ANSWERED_WITHIN_RING_BUDGET_TOTAL).increment(1);
        }
        let at = self.wall(now);
        self.store.push_back(StoreWrite::Answered {
            id,
            at,
            recording: path,
        });
        info!(delay_ms = delay.as_millis() as u64, "answered");
    }

    fn queue_of(&self, call: CallKey) -> String {
        self.acd
            .call(call)
            .map(|view| view.queue)
            .unwrap_or_else(|| self.settings.default_queue.clone())
    }

    fn perform(&mut self, now: Instant, call: CallKey, action: CallAction) {
        let Some(inbound) = self.inbound(call) else {
            return;
        };
        let (customer, agent_leg, queued_at) =
            (inbound.customer, inbound.agent_leg, inbound.queued_at);
        match action {
            CallAction::SendRinging => self.uas_respond(now, customer, 180, vec![], None),
            CallAction::Answer => self.answer(now, call),
            CallAction::RejectTerminated => self.uas_respond(now, customer, 487, vec![], None),
            CallAction::RejectUnavailable => {
                let retry = self.settings.retry_after.as_secs().to_string();
                let headers = vec![Header::RetryAfter(message::RetryAfter::new(retry))];
                self.uas_respond(now, customer, 503, headers, None)
            }
            CallAction::RejectFailed => self.uas_respond(now, customer, 500, vec![], None),
            CallAction::SendBye => self.hang_up_leg(now, customer),
            CallAction::StopMedia => {
                let legs = self
                    .calls
                    .get(&call)
                    .map(|c| c.legs.clone())
                    .unwrap_or_default();
                for leg in legs {
                    self.close_media(leg);
                }
            }
            CallAction::Enqueue { queue, priority } => {
                let wall = self.wall(now);
                let Some(inbound) = self.inbound(call) else {
                    return;
                };
                inbound.queued_at = Some((now, wall));
                let id = inbound.work_order.clone();
                crate::metrics::count_queued(&queue);
                self.window.record_offered(wall);
                self.store.push_back(StoreWrite::Queued {
                    id: id.clone(),
                    at: wall,
                    queue: queue.clone(),
                });
                if let Err(e) = self.acd.enqueue(now, call, &queue, priority) {
                    warn!(error = %e, queue, "call not queued");
                }
                self.update_live(&id, |fact| fact.queue = Some(queue.clone()));
                info!(queue, priority, "queued");
            }
            CallAction::Play { prompts } => {
                let prompt = self.call_prompts(call).sequence(&prompts);
                self.play(customer, prompt);
            }
            CallAction::StopPlayback => self.stop_playback(customer),
            CallAction::AnnouncePosition { then_loop } => {
                // "您前面还有 N 位": N callers ahead; the next in line hears no count.
                let ahead = self.acd.position(call).unwrap_or(0).saturating_sub(1);
                let mut prompts = Vec::new();
                if ahead > 0 {
                    crate::metrics::count_announcement(&self.queue_of(call));
                    prompts = crate::ivr::position_prompts(ahead);
                }
                prompts.extend(then_loop);
                if !prompts.is_empty() {
                    let prompt = self.call_prompts(call).sequence(&prompts);
                    self.play(customer, prompt);
                }
            }
            CallAction::LeaveQueue => {
                let queue = self.queue_of(call);
                if let Some(wait) = self.acd.abandon(now, call) {
                    crate::metrics::record_queue_wait(&queue, wait, QueueWaitEnd::Overflowed);
                }
                info!(queue, "left the queue for the dialplan");
            }
            CallAction::Overflowed => {
                if let Some((queued, _)) = queued_at {
                    let queue = self.queue_of(call);
                    crate::metrics::record_queue_wait(
                        &queue,
                        now.saturating_duration_since(queued),
                        QueueWaitEnd::Overflowed,
                    );
                }
            }
            CallAction::InviteAgent { agent } => self.invite_agent(now, call, agent),
            CallAction::CancelAgent { .. } => {
                if let Some(leg) = agent_leg {
                    self.cancel_leg(now, leg);
                    self.close_media(leg);
                }
            }
            CallAction::ByeAgent => {
                if let Some(leg) = self.inbound(call).and_then(|c| c.agent_leg.take()) {
                    self.detach_media(leg);
                    self.hang_up_leg(now, leg);
                }
            }
            CallAction::Bridge { agent } => self.bridge(now, call, agent),
            CallAction::Unbridge => {
                if let Some(leg) = agent_leg {
                    self.detach_media(leg);
                }
            }
            CallAction::ReportAnswered { agent } => {
                if let Err(e) = self.acd.offer_answered(now, call, &agent) {
                    // The core and the ACD move together here, so this is a bug, not a
                    // race; the agent's leg goes and the caller keeps waiting.
                    warn!(error = %e, agent, "answer refused by the ACD");
                }
            }
            CallAction::ReportOfferFailed { agent, failure } => {
                let queue = self.queue_of(call);
                let (result, why) = match failure {
                    AgentLegFailure::Refused => {
                        (OfferResult::Refused, crate::acd::OfferFailure::Refused)
                    }
                    AgentLegFailure::Unreachable => (
                        OfferResult::Unreachable,
                        crate::acd::OfferFailure::Unreachable,
                    ),
                };
                crate::metrics::count_offer_result(&queue, result);
                if let Some(inbound) = self.inbound(call) {
                    inbound.agent_leg = None;
                }
                if let Err(e) = self.acd.offer_failed(now, call, &agent, why) {
                    tracing::debug!(error = %e, "offer failure refused by the ACD");
                }
            }
            CallAction::ReportAbandoned => {
                let queue = self.queue_of(call);
                if let Some(wait) = self.acd.abandon(now, call) {
                    crate::metrics::record_queue_wait(&queue, wait, QueueWaitEnd::Abandoned);
                }
            }
            CallAction::ReportCallEnded => {
                if let Err(e) = self.acd.call_ended(now, call) {
                    tracing::debug!(error = %e, "call end refused by the ACD");
                }
            }
            CallAction::Transfer { uri } => self.transfer(now, call, &uri),
            CallAction::EndTransfer => {
                if let Some(leg) = self.inbound(call).and_then(|c| c.transfer_leg.take()) {
                    self.detach_media(leg);
                    if self.legs.get(&leg).is_some_and(|l| l.is_still_inviting()) {
                        self.cancel_leg(now, leg);
                    } else {
                        self.hang_up_leg(now, leg);
                    }
                    self.close_media(leg);
                }
            }
            CallAction::WorkOrder(write) => self.write_ivr_fact(now, call, write),
            CallAction::Finish(ending) => self.finish_inbound(now, call, ending),
        }
    }

    /// The caller's number as the customer leg's INVITE shows it, masked (R12): what
    /// agents' phones, transfer destinations and the wallboard see.
    fn masked_caller(&self, customer: LegId) -> String {
        self.legs
            .get(&customer)
            .and_then(|l| l.caller_number())
            .map(|n| mask_number(&n))
            .unwrap_or_default()
    }

    /// The prompt library of the dialplan version the call started on.
    fn call_prompts(&self, call: CallKey) -> Arc<PromptLibrary> {
        match self.calls.get(&call).map(|c| &c.kind) {
            Some(CallKind::Inbound(inbound)) => Arc::clone(&inbound.prompts),
            _ => Arc::clone(&self.prompts),
        }
    }

    /// What the dialplan learned goes on the work order as the call happens (R10); a
    /// survey rating is also counted per agent (R24).
    fn write_ivr_fact(&mut self, now: Instant, call: CallKey, write: WorkOrderWrite) {
        let Some(inbound) = self.inbound(call) else {
            return;
        };
        let (id, customer) = (inbound.work_order.clone(), inbound.customer);
        let live = match &write {
            WorkOrderWrite::Urgent => Some(super::LiveKind::Urgent),
            WorkOrderWrite::HotlineComplaint => Some(super::LiveKind::HotlineComplaint),
            _ => None,
        };
        if let Some(kind) = live {
            let caller = self.masked_caller(customer);
            let at = self.wall(now);
            self.record_live(super::LiveFact {
                at,
                kind,
                work_order: id.clone(),
                queue: self.acd.call(call).map(|view| view.queue),
                caller,
                agent: None,
            });
        }
        match &write {
            WorkOrderWrite::Rating { score, agent, .. } => {
                crate::metrics::count_survey_rating(agent.as_deref(), *score);
                info!(
                    score,
                    agent = agent.as_deref().unwrap_or("-"),
                    "survey rating"
                );
            }
            WorkOrderWrite::Urgent => warn!(work_order = %id, "urgent call (R11)"),
            WorkOrderWrite::Category(category) => info!(%category, "category from the dialplan"),
            _ => {}
        }
        let at = self.wall(now);
        self.store.push_back(StoreWrite::Ivr { id, at, write });
    }

    /// R11: the dialplan sends the caller to a SIP URI: a new leg to it, bridged when it
    /// answers. A URI the engine cannot reach fails at once, and the dialplan's
    /// `on_failure` takes over.
    fn transfer(&mut self, now: Instant, call: CallKey, uri: &str) {
        let Some((target, number)) = super::outbound::destination_target(uri) else {
            warn!(
                uri,
                "transfer destination is not a sip: URI with a numeric host"
            );
            return self.inbound_input(now, call, CallInput::TransferFailed);
        };
        let Some(customer) = self.inbound(call).map(|c| c.customer) else {
            return;
        };
        let display = self.masked_caller(customer);
        let leg = self.open_uac_leg(call, LegRole::Transfer, target, display);
        if let Some(c) = self.calls.get_mut(&call) {
            c.legs.push(leg);
        }
        if let Some(inbound) = self.inbound(call) {
            inbound.transfer_leg = Some(leg);
        }
        info!(destination = %mask_number(&number), "transferring the caller (R11)");
    }

    /// Rings the agent the ACD offered the call to: a new leg to the phone's binding.
    fn invite_agent(&mut self, now: Instant, call: CallKey, agent: String) {
        let Some(inbound) = self.inbound(call) else {
            return;
        };
        let target = match inbound.offered_target.take() {
            Some((offered, target)) if offered == agent => target,
            _ => {
                warn!(agent, "the offer came without a registered target");
                return self.inbound_input(
                    now,
                    call,
                    CallInput::AgentLegFailed {
                        agent,
                        failure: AgentLegFailure::Unreachable,
                    },
                );
            }
        };
        let customer = inbound.customer;
        let display = self.masked_caller(customer);
        let leg = self.open_uac_leg(call, LegRole::Agent(agent.clone()), target, display);
        if let Some(c) = self.calls.get_mut(&call) {
            c.legs.push(leg);
        }
        if let Some(inbound) = self.inbound(call) {
            inbound.agent_leg = Some(leg);
        }
        info!(agent, "ringing the agent");
        let _ = now;
    }

    fn bridge(&mut self, now: Instant, call: CallKey, agent: String) {
        let Some(inbound) = self.inbound(call) else {
            return;
        };
        let (customer, agent_leg) = (inbound.customer, inbound.agent_leg);
        let id = inbound.work_order.clone();
        let queued_at = inbound.queued_at;
        let queue = self.queue_of(call);
        if let Some((queued, wall)) = queued_at {
            crate::metrics::count_connected(&queue, now.saturating_duration_since(queued));
            self.window.record_answered(wall);
        }
        if let Some(leg) = agent_leg
            && !self.attach_media(leg, customer)
        {
            warn!(agent, "agent's media unusable");
        }
        self.update_live(&id, |fact| fact.agent = Some(agent.clone()));
        // R7: first contact — the agent who answers owns the work order.
        let at = self.wall(now);
        self.store.push_back(StoreWrite::Connected {
            id,
            at,
            agent: agent.clone(),
        });
        info!(agent, "connected to the agent");
    }

    fn finish_inbound(&mut self, now: Instant, call: CallKey, ending: Ending) {
        let Some(inbound) = self.inbound(call) else {
            return;
        };
        let id = inbound.work_order.clone();
        let (side, outcome, reason) = match ending {
            Ending::Completed { side } => (
                Some(match side {
                    Side::Caller => HangupSide::Caller,
                    Side::Agent => HangupSide::Agent,
                    Side::Hotline => HangupSide::Hotline,
                }),
                CallOutcome::Answered,
                None,
            ),
            Ending::CallerAbandoned => (
                Some(HangupSide::Caller),
                abandoned(AbandonReason::CallerCancelled),
                None,
            ),
            Ending::AbandonedInQueue => (
                Some(HangupSide::Caller),
                abandoned(AbandonReason::CallerHungUpInQueue),
                None,
            ),
            Ending::AbandonedWhileAgentRang => (
                Some(HangupSide::Caller),
                abandoned(AbandonReason::CallerHungUpWhileAgentRang),
                None,
            ),
            Ending::ShutdownBeforeAnswer => (
                Some(HangupSide::Hotline),
                abandoned(AbandonReason::Shutdown),
                Some("shutdown"),
            ),
            Ending::NoAck => (
                Some(HangupSide::Hotline),
                CallOutcome::Answered,
                Some("never_acknowledged"),
            ),
            Ending::Failed => (
                Some(HangupSide::Hotline),
                abandoned(AbandonReason::Failed),
                Some("failed"),
            ),
            Ending::MediaTimedOut => (
                Some(HangupSide::Hotline),
                CallOutcome::Answered,
                Some("rtp_timeout"),
            ),
            Ending::SessionExpired => (
                Some(HangupSide::Hotline),
                CallOutcome::Answered,
                Some("session_expired"),
            ),
        };
        if let CallOutcome::Abandoned { reason } = outcome {
            crate::metrics::count_abandoned(reason);
        }
        if ending == Ending::NoAck {
            warn!("caller never acknowledged the answer");
        }
        let at = self.wall(now);
        self.store.push_back(StoreWrite::Ended {
            id,
            at,
            side,
            outcome,
            reason,
        });
        info!(?ending, "call ended");
        self.remove_call(now, call);
    }

    /// Ends an inbound call at once (last phase of shutdown): its work order closes as
    /// the call stands.
    pub(super) fn inbound_abandon(&mut self, now: Instant, call: CallKey) {
        let Some(inbound) = self.inbound(call) else {
            return;
        };
        let answered = inbound.core.answered_at().is_some();
        let ending = if answered {
            Ending::Completed {
                side: Side::Hotline,
            }
        } else {
            Ending::ShutdownBeforeAnswer
        };
        if self.acd.call(call).is_some() {
            let _ = self.acd.call_ended(now, call);
        }
        self.finish_inbound(now, call, ending);
    }
}

fn abandoned(reason: AbandonReason) -> CallOutcome {
    CallOutcome::Abandoned { reason }
}

/// 486, 600 and 603 refuse the call (the agent stays available); anything else means
/// the phone cannot take calls.
pub(super) fn offer_failure(status: u16) -> AgentLegFailure {
    match status {
        486 | 600 | 603 => AgentLegFailure::Refused,
        _ => AgentLegFailure::Unreachable,
    }
}
