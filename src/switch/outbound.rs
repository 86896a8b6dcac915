//! Outbound calls (pure), started by an API command: the agent's phone is rung first;
//! when the agent answers, the destination is called; when it answers, the two legs are
//! bridged and recorded in one WAV like an inbound call (R22), the destination being
//! the customer leg (left channel). The callbacks (R17–R19) and enterprise calls (R16)
//! build on this. While the call lasts the ACD offers the agent nothing.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::legs::{LegEvent, LegId, LegRole};
use super::uac_leg::UacTarget;
use super::{Call, CallKind, CommandError, RecordingOrder, StoreWrite, Switch};
use crate::acd::CallKey;
use crate::callbacks::DialOutcome;
use crate::privacy::mask_number;
use crate::sip::TransportKind;
use crate::sip::message::Uri;
use crate::workorder::{AbandonReason, CallOutcome, Direction, HangupSide, WorkOrder, WorkOrderId};

/// How long the destination may ring before the attempt counts as not answered.
const DESTINATION_RING_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    RingingAgent,
    RingingDestination,
    Connected,
    Ending,
}

/// How one attempt's calls ended, as the outbound call tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AttemptEnd {
    /// The agent's phone did not take the call (or hung up before the citizen
    /// answered): not the citizen's doing, no attempt counted.
    AgentFailed,
    /// The citizen's leg got this final answer, with its SIP status (0: none came).
    Dialled(DialOutcome, u16),
    /// Given up for an inbound call (R9).
    Preempted,
    /// Connected, then ended.
    Talked,
}

/// A call to place: the agent's phone first, then `destination`.
pub(super) struct Placement {
    pub agent: String,
    pub destination: String,
    pub caller_id: Option<String>,
    /// What the agent's phone shows (never a full number, R12).
    pub agent_display: String,
    /// Extra headers on the INVITE to the agent's phone.
    pub agent_headers: Vec<(String, String)>,
    /// Digest credentials for the destination's challenge (the outbound trunk's).
    pub destination_login: Option<crate::config::callbacks::TrunkLogin>,
    pub callback: Option<CallbackLink>,
}

/// The callback task an outbound call is an attempt of.
#[derive(Debug)]
pub(super) struct CallbackLink {
    pub task: crate::callbacks::TaskId,
    /// The work order the callback belongs to (its outcome is noted there).
    pub work_order: WorkOrderId,
    /// Withdrawn for an inbound call (R9): not an attempt.
    pub preempted: bool,
}

/// One outbound call.
#[derive(Debug)]
pub struct OutboundCall {
    agent: String,
    agent_leg: LegId,
    destination: UacTarget,
    caller_id: String,
    dest_leg: Option<LegId>,
    phase: Phase,
    work_order: WorkOrderId,
    ring_deadline: Option<Instant>,
    agent_done: bool,
    dest_done: bool,
    first_to_leave: Option<HangupSide>,
    /// Why the call did not connect, once known (`busy`, `no_answer`, `failed`…).
    failure: Option<&'static str>,
    /// The destination answered and was bridged to the agent.
    connected: bool,
    /// The destination's final status when it refused (for the callback's outcome).
    dest_status: Option<u16>,
    callback: Option<CallbackLink>,
}

impl OutboundCall {
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.ring_deadline
    }

    pub fn work_order(&self) -> &WorkOrderId {
        &self.work_order
    }
}

/// Reads a destination: a `sip:` URI whose host is an IP address (the switch resolves
/// no names), port 5060 unless given, TCP with `;transport=tcp`.
pub(super) fn destination_target(destination: &str) -> Option<(UacTarget, String)> {
    let uri = Uri::try_from(destination).ok()?;
    let text = uri.to_string();
    let rest = text.strip_prefix("sip:")?;
    let (user, host_part) = match rest.split_once('@') {
        Some((user, host)) => (user.to_owned(), host),
        None => (String::new(), rest),
    };
    let mut params = host_part.split(';');
    let hostport = params.next()?;
    let transport = if params.any(|p| p.eq_ignore_ascii_case("transport=tcp")) {
        TransportKind::Tcp
    } else {
        TransportKind::Udp
    };
    let address = match hostport.parse::<std::net::SocketAddr>() {
        Ok(address) => address,
        Err(_) => std::net::SocketAddr::new(hostport.parse().ok()?, 5060),
    };
    Some((
        UacTarget {
            contact: uri,
            to: text.clone(),
            destination: address,
            transport,
            headers: Vec::new(),
            login: None,
        },
        user,
    ))
}

impl Switch {
    /// Places an outbound call for `agent` to `destination`.
    pub(super) fn originate(
        &mut self,
        now: Instant,
        agent: &str,
        destination: &str,
        caller_id: Option<String>,
    ) -> Result<WorkOrderId, CommandError> {
        let number = destination_target(destination)
            .map(|(_, number)| number)
            .unwrap_or_default();
        self.place_outbound(
            now,
            Placement {
                agent: agent.to_owned(),
                destination: destination.to_owned(),
                caller_id,
                agent_display: mask_number(&number),
                agent_headers: Vec::new(),
                destination_login: None,
                callback: None,
            },
        )
        .map(|(_, id)| id)
    }

    /// Places an outbound call: the agent's phone rings first. Returns the call and
    /// its work order.
    pub(super) fn place_outbound(
        &mut self,
        now: Instant,
        placement: Placement,
    ) -> Result<(CallKey, WorkOrderId), CommandError> {
        let Placement {
            agent,
            destination,
            caller_id,
            agent_display,
            agent_headers,
            destination_login,
            callback,
        } = placement;
        let agent = agent.as_str();
        if !self.accepting {
            return Err(CommandError::ShuttingDown);
        }
        if self.calls.len() >= self.settings.max_concurrent {
            return Err(CommandError::Overloaded);
        }
        let (mut target, number) = destination_target(&destination)
            .ok_or_else(|| CommandError::BadDestination(destination.clone()))?;
        target.login = destination_login;
        let mut agent_target = self
            .agent_target(agent)
            .ok_or_else(|| CommandError::NotRegistered(agent.to_owned()))?;
        agent_target.headers = agent_headers;
        let call = self.new_call_key();
        self.acd.outbound_started(now, agent, call)?;
        let wall = self.wall(now);
        let work_order = WorkOrderId::from_parts(wall, self.ids.next_u64());
        let mut order = WorkOrder::new_inbound(
            work_order.clone(),
            String::new(),
            number.clone(),
            agent.to_owned(),
            wall,
        );
        order.direction = Direction::Outbound;
        self.store.push_back(StoreWrite::Create(Box::new(order)));
        info!(
            agent,
            destination = %mask_number(&number),
            work_order = %work_order,
            "outbound call: ringing the agent first"
        );
        let agent_leg = self.open_uac_leg(
            call,
            LegRole::Agent(agent.to_owned()),
            agent_target,
            agent_display,
        );
        self.calls.insert(
            call,
            Call {
                kind: CallKind::Outbound(Box::new(OutboundCall {
                    agent: agent.to_owned(),
                    agent_leg,
                    destination: target,
                    caller_id: caller_id.unwrap_or_else(|| "hotline".to_owned()),
                    dest_leg: None,
                    phase: Phase::RingingAgent,
                    work_order: work_order.clone(),
                    ring_deadline: Some(now + self.settings.agent_ring_timeout),
                    agent_done: false,
                    dest_done: false,
                    first_to_leave: None,
                    failure: None,
                    connected: false,
                    dest_status: None,
                    callback,
                })),
                legs: vec![agent_leg],
                armed: None,
            },
        );
        self.rearm(call);
        Ok((call, work_order))
    }

    /// An inbound call waits for this callback's agent (R9): the ringing legs are
    /// withdrawn and the agent freed; the attempt does not count. A connected call is
    /// never cut.
    pub(super) fn outbound_preempt(&mut self, now: Instant, call: CallKey) {
        let Some(out) = self.outbound(call) else {
            return;
        };
        if out.connected {
            return;
        }
        if let Some(link) = out.callback.as_mut() {
            link.preempted = true;
        }
        out.failure.get_or_insert("preempted_by_inbound_call");
        self.outbound_hang_up(now, call, HangupSide::Hotline);
    }

    /// The callback was cancelled while dialing: its legs are withdrawn and nothing is
    /// reported (the task is over).
    pub(super) fn outbound_drop_callback(&mut self, now: Instant, call: CallKey) {
        let Some(out) = self.outbound(call) else {
            return;
        };
        if out.connected {
            return;
        }
        out.callback = None;
        out.failure.get_or_insert("callback_cancelled");
        self.outbound_hang_up(now, call, HangupSide::Hotline);
    }

    fn outbound(&mut self, call: CallKey) -> Option<&mut OutboundCall> {
        match self.calls.get_mut(&call).map(|c| &mut c.kind) {
            Some(CallKind::Outbound(outbound)) => Some(outbound),
            _ => None,
        }
    }

    pub(super) fn outbound_leg_event(
        &mut self,
        now: Instant,
        call: CallKey,
        leg: LegId,
        event: LegEvent,
    ) {
        let Some(out) = self.outbound(call) else {
            return;
        };
        if leg == out.agent_leg {
            match event {
                LegEvent::Answered if out.phase == Phase::RingingAgent => {
                    out.phase = Phase::RingingDestination;
                    out.ring_deadline = Some(now + DESTINATION_RING_TIMEOUT);
                    let (mut target, caller_id) = (out.destination.clone(), out.caller_id.clone());
                    // The number the destination sees, for trunks that take it from
                    // the asserted identity rather than the display name.
                    target.headers.push((
                        "P-Asserted-Identity".to_owned(),
                        format!("<sip:{caller_id}@{}>", self.settings.advertised_ip),
                    ));
                    let dest = self.open_uac_leg(call, LegRole::Customer, target, caller_id);
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.legs.push(dest);
                    }
                    if let Some(out) = self.outbound(call) {
                        out.dest_leg = Some(dest);
                    }
                }
                LegEvent::Answered => self.hang_up_leg(now, leg),
                LegEvent::Failed { status } => {
                    out.agent_done = true;
                    out.failure
                        .get_or_insert(if status == 486 || status == 603 {
                            "agent_refused"
                        } else {
                            "agent_unreachable"
                        });
                    self.outbound_hang_up(now, call, HangupSide::Agent);
                }
                LegEvent::HungUp => {
                    out.agent_done = true;
                    self.outbound_hang_up(now, call, HangupSide::Agent);
                }
                LegEvent::ByeFinished => out.agent_done = true,
                _ => {}
            }
        } else if Some(leg) == out.dest_leg {
            match event {
                LegEvent::Answered if out.phase == Phase::RingingDestination => {
                    out.phase = Phase::Connected;
                    out.ring_deadline = None;
                    out.connected = true;
                    let (agent, agent_leg, id) =
                        (out.agent.clone(), out.agent_leg, out.work_order.clone());
                    let task = out.callback.as_ref().map(|link| link.task);
                    self.connect_outbound(now, leg, agent_leg, agent, id);
                    if let Some(task) = task {
                        self.callback_connected(now, task);
                    }
                }
                LegEvent::Answered => self.hang_up_leg(now, leg),
                LegEvent::Failed { status } => {
                    out.dest_done = true;
                    out.dest_status.get_or_insert(status);
                    out.failure.get_or_insert(match status {
                        486 | 600 | 603 => "busy",
                        408 | 480 | 487 => "no_answer",
                        _ => "failed",
                    });
                    info!(status, "the destination did not take the call");
                    self.outbound_hang_up(now, call, HangupSide::Caller);
                }
                LegEvent::HungUp => {
                    out.dest_done = true;
                    self.outbound_hang_up(now, call, HangupSide::Caller);
                }
                LegEvent::MediaInactive | LegEvent::SessionExpired => {
                    out.failure.get_or_insert("rtp_timeout");
                    self.outbound_hang_up(now, call, HangupSide::Hotline);
                }
                LegEvent::ByeFinished => out.dest_done = true,
                _ => {}
            }
        }
        self.outbound_maybe_finish(now, call);
    }

    fn connect_outbound(
        &mut self,
        now: Instant,
        dest: LegId,
        agent_leg: LegId,
        agent: String,
        id: WorkOrderId,
    ) {
        let wall = self.wall(now);
        let date = wall.date_naive();
        let recording = RecordingOrder {
            path: crate::recording::recording_path(
                &self.settings.recordings_root,
                date,
                id.as_str(),
            ),
            work_order: id.clone(),
            date,
        };
        let path = recording.path.display().to_string();
        if !self.start_media(dest, Some(recording)) || !self.attach_media(agent_leg, dest) {
            warn!("outbound call media unusable; hanging up");
        }
        self.store.push_back(StoreWrite::Answered {
            id: id.clone(),
            at: wall,
            recording: Some(path),
        });
        self.store.push_back(StoreWrite::Connected {
            id,
            at: wall,
            agent,
        });
        info!("outbound call connected");
    }

    pub(super) fn outbound_timeout(&mut self, now: Instant, call: CallKey) {
        let Some(out) = self.outbound(call) else {
            return;
        };
        if out.ring_deadline.is_none_or(|at| at > now) {
            return;
        }
        out.ring_deadline = None;
        match out.phase {
            Phase::RingingAgent => {
                out.failure.get_or_insert("agent_no_answer");
                self.outbound_hang_up(now, call, HangupSide::Hotline);
            }
            Phase::RingingDestination => {
                out.failure.get_or_insert("no_answer");
                self.outbound_hang_up(now, call, HangupSide::Hotline);
            }
            Phase::Connected | Phase::Ending => {}
        }
        self.outbound_maybe_finish(now, call);
    }

    /// Ends both legs: BYE where connected, CANCEL where ringing.
    pub(super) fn outbound_hang_up(&mut self, now: Instant, call: CallKey, side: HangupSide) {
        let Some(out) = self.outbound(call) else {
            return;
        };
        out.phase = Phase::Ending;
        out.ring_deadline = None;
        out.first_to_leave.get_or_insert(side);
        let legs = [
            (out.agent_leg, out.agent_done),
            (
                out.dest_leg.unwrap_or(out.agent_leg),
                out.dest_done || out.dest_leg.is_none(),
            ),
        ];
        for (index, (leg, done)) in legs.into_iter().enumerate() {
            if done {
                continue;
            }
            let connected = self.legs.get(&leg).is_some_and(|l| l.is_connected());
            if connected {
                self.hang_up_leg(now, leg);
            } else {
                // A ringing leg is withdrawn; its 487 is not waited for.
                self.cancel_leg(now, leg);
                self.close_media(leg);
                if let Some(out) = self.outbound(call) {
                    if index == 0 {
                        out.agent_done = true;
                    } else {
                        out.dest_done = true;
                    }
                }
            }
        }
        self.outbound_maybe_finish(now, call);
    }

    fn outbound_maybe_finish(&mut self, now: Instant, call: CallKey) {
        let Some(out) = self.outbound(call) else {
            return;
        };
        let dest_done = out.dest_done || out.dest_leg.is_none();
        if out.phase == Phase::Ending && out.agent_done && dest_done {
            self.finish_outbound(now, call);
        }
    }

    fn finish_outbound(&mut self, now: Instant, call: CallKey) {
        let Some(out) = self.outbound(call) else {
            return;
        };
        let connected = out.connected;
        let failure = if connected {
            // Why the engine ended a connected call, if it did (rtp_timeout).
            out.failure
        } else {
            // Nothing answered: say why, the agent's hang-up included.
            Some(out.failure.unwrap_or("agent_hung_up"))
        };
        let attempt = out.callback.take().map(|link| {
            let end = if connected {
                AttemptEnd::Talked
            } else if link.preempted {
                AttemptEnd::Preempted
            } else if out.dest_leg.is_none() || failure == Some("agent_hung_up") {
                AttemptEnd::AgentFailed
            } else {
                let status = out.dest_status.unwrap_or(0);
                let outcome = match failure {
                    Some("busy") => DialOutcome::Busy,
                    Some("no_answer") => DialOutcome::NoAnswer,
                    _ => DialOutcome::Failed(status),
                };
                AttemptEnd::Dialled(outcome, status)
            };
            (link.task, link.work_order, end)
        });
        let (id, agent, side) = (
            out.work_order.clone(),
            out.agent.clone(),
            out.first_to_leave,
        );
        let outcome = if connected {
            CallOutcome::Answered
        } else {
            CallOutcome::Abandoned {
                reason: AbandonReason::Failed,
            }
        };
        let at = self.wall(now);
        self.store.push_back(StoreWrite::Ended {
            id: id.clone(),
            at,
            side,
            outcome,
            reason: failure,
        });
        if let Err(e) = self.acd.outbound_ended(now, &agent, call) {
            tracing::debug!(error = %e, "outbound end refused by the ACD");
        }
        info!(agent, ?failure, "outbound call ended");
        self.remove_call(now, call);
        if let Some((task, parent, end)) = attempt {
            self.callback_attempt_ended(now, task, end, Some((&parent, &id)));
        }
    }

    pub(super) fn outbound_abandon(&mut self, now: Instant, call: CallKey) {
        if let Some(out) = self.outbound(call) {
            out.phase = Phase::Ending;
            out.first_to_leave.get_or_insert(HangupSide::Hotline);
        }
        self.finish_outbound(now, call);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_need_a_numeric_host() {
        let (target, user) = destination_target("sip:13800001111@127.0.0.1:5080").unwrap();
        assert_eq!(user, "13800001111");
        assert_eq!(
            target.destination,
            "127.0.0.1:5080".parse::<std::net::SocketAddr>().unwrap()
        );
        assert_eq!(target.transport, TransportKind::Udp);
        let (target, _) = destination_target("sip:1@127.0.0.1;transport=tcp").unwrap();
        assert_eq!(target.destination.port(), 5060);
        assert_eq!(target.transport, TransportKind::Tcp);
        assert!(destination_target("sip:1@example.com").is_none());
        assert!(destination_target("not a uri").is_none());
    }
}
