//! Feature codes dialled from an agent's softphone (pure): `*21` log in, `*22` log out,
//! `*23` pause, `*24` resume. The INVITE is challenged with digest like a REGISTER (the
//! credentials name the agent); the action is applied, the call answered, a short
//! confirmation played, and the engine hangs up. No work order, no recording: it is
//! not a citizen's call.

use std::time::Instant;

use tracing::{info, warn};

use super::agents::Authenticated;
use super::legs::{InviteOffer, LegEvent, LegId, LegRole};
use super::{AgentAction, Call, CallKind, Switch};
use crate::acd::CallKey;
use crate::sip::TransportKind;
use crate::sip::message::{self, Request, RequestSummary};
use crate::sip::transaction::TransactionKey;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the RTP port, then answering.
    Answering,
    /// The confirmation plays.
    Confirming,
    /// We sent BYE.
    HangingUp,
}

#[derive(Debug)]
pub struct FeatureCall {
    leg: LegId,
    confirmation: std::sync::Arc<crate::media::prompt::Prompt>,
    phase: Phase,
    /// The confirmation is cut short then.
    deadline: Option<Instant>,
}

impl FeatureCall {
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }
}

impl Switch {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_feature_call(
        &mut self,
        now: Instant,
        key: TransactionKey,
        request: Request,
        summary: RequestSummary,
        offer: InviteOffer,
        source: std::net::SocketAddr,
        transport: TransportKind,
        action: AgentAction,
    ) {
        if let Some(headers) = self.throttled(now, source, &request) {
            let tag = self.ids.tag();
            return self.respond(now, &key, &request, 403, Some(&tag), headers, None);
        }
        let agent = match self.authenticate(now, source, &request) {
            Authenticated::Agent(agent) => agent,
            Authenticated::Challenge(challenges) => {
                let tag = self.ids.tag();
                let headers = challenges
                    .into_iter()
                    .map(|c| message::make_header("WWW-Authenticate", c))
                    .collect();
                return self.respond(now, &key, &request, 401, Some(&tag), headers, None);
            }
        };
        let succeeded = match self.agent_action(now, &agent, action) {
            Ok(_) => {
                info!(agent, ?action, "feature code");
                true
            }
            Err(e) => {
                warn!(agent, ?action, error = %e, "feature code refused");
                false
            }
        };
        let confirmation = self
            .prompts
            .sequence(&[action.confirmation_prompt(succeeded).to_owned()]);
        let call = self.new_call_key();
        let leg = self.open_uas_leg(
            now,
            call,
            LegRole::Feature,
            key,
            request,
            &summary,
            offer,
            source,
            transport,
        );
        self.calls.insert(
            call,
            Call {
                kind: CallKind::Feature(Box::new(FeatureCall {
                    leg,
                    confirmation,
                    phase: Phase::Answering,
                    deadline: None,
                })),
                legs: vec![leg],
                armed: None,
            },
        );
    }

    fn feature(&mut self, call: CallKey) -> Option<&mut FeatureCall> {
        match self.calls.get_mut(&call).map(|c| &mut c.kind) {
            Some(CallKind::Feature(feature)) => Some(feature),
            _ => None,
        }
    }

    pub(super) fn feature_leg_event(
        &mut self,
        now: Instant,
        call: CallKey,
        leg: LegId,
        event: LegEvent,
    ) {
        let Some(feature) = self.feature(call) else {
            return;
        };
        let phase = feature.phase;
        let prompt = feature.confirmation.clone();
        match event {
            LegEvent::MediaReady if phase == Phase::Answering && self.uas_answer(now, leg) => {
                self.start_media(leg, None);
                self.play(leg, prompt);
                let limit = self.settings.feature_prompt_limit;
                if let Some(feature) = self.feature(call) {
                    feature.phase = Phase::Confirming;
                    feature.deadline = Some(now + limit);
                }
            }
            LegEvent::Acked => {
                // Late offer: the answer came in the ACK.
                self.start_media(leg, None);
            }
            LegEvent::PromptFinished if phase == Phase::Confirming => self.feature_bye(now, call),
            LegEvent::AckTimedOut | LegEvent::MediaFailed => self.feature_bye(now, call),
            LegEvent::Cancelled => {
                self.uas_respond(now, leg, 487, vec![], None);
                self.feature_finish(now, call);
            }
            LegEvent::HungUp | LegEvent::ByeFinished => self.feature_finish(now, call),
            _ => {}
        }
    }

    fn feature_bye(&mut self, now: Instant, call: CallKey) {
        let Some(feature) = self.feature(call) else {
            return;
        };
        feature.phase = Phase::HangingUp;
        feature.deadline = None;
        let leg = feature.leg;
        self.close_media(leg);
        self.hang_up_leg(now, leg);
    }

    pub(super) fn feature_timeout(&mut self, now: Instant, call: CallKey) {
        let due = self
            .feature(call)
            .is_some_and(|f| f.deadline.is_some_and(|at| at <= now));
        if due {
            self.feature_bye(now, call);
        }
    }

    pub(super) fn feature_finish(&mut self, now: Instant, call: CallKey) {
        self.remove_call(now, call);
    }
}
