//! The per-call state machine of an inbound call: ring, answer inside the ring budget
//! (R6), then the call's dialplan ([`CallIvr`]: menus, queues, the survey, the silence
//! script), the agent the ACD picked rung and bridged, and the end — recording who hung
//! up first (R8).
//!
//! Pure: fed `(now, input)`, it queues actions for its driver and names its next
//! deadline. It never touches a socket, a file or the clock, so every race (CANCEL
//! against the answer, an agent answering just as the ACD withdrew the offer, BYE
//! against our BYE, a key pressed as the agent answers, shutdown at any point) is
//! tested with a simulated clock. The dialplan interpreter lives inside it: the core
//! owns the SIP side of the call (answered, acknowledged, which agent leg is up), the
//! interpreter what the caller hears and where the call goes.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::ivr::{self, AgentScript, CallIvr, IvrError, PlayId, WorkOrderWrite};

/// Settings the core needs, from `[calls]`.
#[derive(Clone, Copy, Debug)]
pub struct CallTimers {
    /// 180 Ringing lasts this long before the 200 OK (R6).
    pub ring_before_answer: Duration,
    /// The engine hangs up a call still up after this long.
    pub max_call_length: Duration,
}

/// Why the leg to an agent's phone did not connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentLegFailure {
    /// The phone answered busy or declined (486, 600, 603).
    Refused,
    /// The phone could not be reached (no registration, 404, 408, 480, 5xx, timeout).
    Unreachable,
}

/// What happened to the call, as the driver saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallInput {
    /// The caller sent CANCEL before the final answer.
    CallerCancelled,
    /// The caller sent BYE (the endpoint has already answered it `200 OK`, as RFC 3261
    /// §15.1.2 asks whatever the call's state).
    CallerHungUp,
    /// The ACK for our 200 OK arrived: the dialog is confirmed.
    Acked,
    /// The 200 OK was retransmitted for 64·T1 without an ACK (RFC 3261 §13.3.1.4).
    AckTimedOut,
    /// Our BYE to the caller got its final response, or its transaction timed out.
    ByeFinished,
    /// The engine is shutting down and the grace period is over.
    Shutdown,
    /// Media or recording could not be set up; the call cannot be served.
    MediaFailed,
    /// No RTP from the caller for the configured time: the caller vanished.
    MediaTimedOut,
    /// The caller stopped refreshing the session (RFC 4028 §10).
    SessionExpired,
    /// The prompt playing to the caller ended.
    PromptFinished,
    /// The caller pressed a key (RFC 4733, an in-band tone or SIP INFO).
    Digit(char),
    /// The caller started speaking.
    VoiceStarted,
    /// The caller went quiet.
    VoiceEnded,
    /// The ACD picked this agent for the call: ring its phone.
    AgentOffered { agent: String },
    /// The ACD took the offer back (the agent's ring timeout passed).
    OfferWithdrawn { agent: String },
    /// The agent's phone answered.
    AgentAnswered { agent: String },
    /// The agent's phone did not answer the INVITE with 2xx.
    AgentLegFailed {
        agent: String,
        failure: AgentLegFailure,
    },
    /// The agent hung up (BYE from the agent's phone).
    AgentHungUp,
    /// The call waited its queue's maximum and left the ACD for the dialplan's
    /// overflow (the agents file's `overflow = "dialplan:…"`).
    Overflowed,
    /// The transfer destination answered and is bridged.
    TransferAnswered,
    /// The transfer destination did not answer 2xx.
    TransferFailed,
    /// The transfer destination hung up.
    TransferHungUp,
}

/// Who ended the call first (R8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Caller,
    Agent,
    Hotline,
}

/// How the call ended, for the work order and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Answered, then ended; `side` hung up first.
    Completed { side: Side },
    /// The caller hung up before the answer.
    CallerAbandoned,
    /// The caller hung up while waiting in the queue.
    AbandonedInQueue,
    /// The caller hung up while an agent's phone rang.
    AbandonedWhileAgentRang,
    /// The engine shut down before it answered.
    ShutdownBeforeAnswer,
    /// Answered, but the caller's ACK never came.
    NoAck,
    /// The call could not be served (media set-up failed).
    Failed,
    /// Answered, then the caller's RTP stopped (no BYE): the hotline hung up.
    MediaTimedOut,
    /// Answered, then the caller stopped refreshing the session: the hotline hung up.
    SessionExpired,
}

/// What the driver must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallAction {
    /// Send `180 Ringing` on the INVITE.
    SendRinging,
    /// Send `200 OK` with our SDP answer, start media and recording.
    Answer,
    /// Answer the INVITE with `487 Request Terminated` (after a CANCEL).
    RejectTerminated,
    /// Answer the INVITE with `503 Service Unavailable` (shutdown before the answer).
    RejectUnavailable,
    /// Answer the INVITE with `500 Server Internal Error` (media failure before the answer).
    RejectFailed,
    /// Send BYE to the caller.
    SendBye,
    /// Stop media and finalise the recording.
    StopMedia,
    /// Play these prompts (file names) one after another to the caller, replacing what
    /// plays; report `PromptFinished` at the end.
    Play { prompts: Vec<String> },
    /// Stop what plays to the caller (no `PromptFinished` follows).
    StopPlayback,
    /// Tell the caller its place in the queue ("您前面还有 N 位"), then play `then_loop`
    /// (straight away when the caller is next in line).
    AnnouncePosition { then_loop: Option<String> },
    /// Offer the call to the ACD and write `queued` on the work order.
    Enqueue { queue: String, priority: u8 },
    /// Take the call out of its queue: the dialplan moves it on (a callback asked
    /// for, its own maximum wait).
    LeaveQueue,
    /// The ACD gave up on the call (its queue's maximum wait): count the wait.
    Overflowed,
    /// Send INVITE to the agent's registered phone.
    InviteAgent { agent: String },
    /// CANCEL the ringing INVITE to the agent.
    CancelAgent { agent: String },
    /// BYE the agent's leg (connected, or answered too late).
    ByeAgent,
    /// Bridge caller and agent media; write the agent as the work order's owner (R7).
    Bridge { agent: String },
    /// Undo the bridge: the agent's leg is gone.
    Unbridge,
    /// Tell the ACD the agent answered.
    ReportAnswered { agent: String },
    /// Tell the ACD the offer failed.
    ReportOfferFailed {
        agent: String,
        failure: AgentLegFailure,
    },
    /// Tell the ACD the caller left while waiting.
    ReportAbandoned,
    /// Tell the ACD the connected call is over (the agent goes to wrap-up).
    ReportCallEnded,
    /// R11: call this SIP URI and bridge the caller to it.
    Transfer { uri: String },
    /// End the transfer destination's leg (BYE or CANCEL).
    EndTransfer,
    /// Write what the dialplan learned on the work order (R10).
    WorkOrder(WorkOrderWrite),
    /// The call is over: write the work order's end and count it. Always the last action.
    Finish(Ending),
}

/// Where an answered call is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// The dialplan has the caller: prompts, menus, the survey; not in any queue.
    Ivr,
    /// Waiting for the ACD; the dialplan's queue node keeps the caller company.
    Queued,
    /// The agent's phone is ringing; the caller still hears hold music.
    Offering { agent: String },
    /// Bridged to the agent.
    Connected { agent: String },
    /// The transfer destination is being called; the caller hears silence.
    Transferring,
    /// Bridged to the transfer destination; the dialplan is done.
    Transferred,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// 180 sent; the 200 OK goes out at `answer_at`.
    Ringing {
        answer_at: Instant,
    },
    /// 200 OK sent at `answered_at`; media is up.
    Up {
        answered_at: Instant,
        phase: Phase,
        /// Who hung up first, once someone did (the agent, before the survey).
        first_to_leave: Option<Side>,
    },
    /// We sent BYE to the caller; waiting for its transaction to finish.
    HangingUp {
        ending: Ending,
    },
    Done,
}

/// What plays to the caller, as far as the dialplan cares.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Playing {
    Nothing,
    /// Prompts whose end the dialplan waits for.
    Once(PlayId),
    /// Hold music (after any announcement): replayed whenever it ends.
    Looping(String),
}

/// One inbound call's decisions.
#[derive(Debug)]
pub struct CallCore {
    timers: CallTimers,
    state: State,
    ivr: CallIvr,
    playing: Playing,
    /// The caller's ACK for our 200 arrived: only then is the call offered to agents,
    /// so a stranger who never acknowledges cannot ring an agent (RFC 3261 §13.3.1.4).
    acked: bool,
    /// A queue the dialplan chose before the ACK: the call joins it at the ACK.
    pending_enqueue: Option<(String, u8)>,
    offered_at: Instant,
    answered_at: Option<Instant>,
    actions: VecDeque<CallAction>,
}

impl CallCore {
    /// A new inbound call whose INVITE arrived at `now`, to run `ivr` once answered; it
    /// starts ringing at once.
    pub fn new(now: Instant, timers: CallTimers, ivr: CallIvr) -> CallCore {
        let mut core = CallCore {
            timers,
            state: State::Ringing {
                answer_at: now + timers.ring_before_answer,
            },
            ivr,
            playing: Playing::Nothing,
            offered_at: now,
            answered_at: None,
            acked: false,
            pending_enqueue: None,
            actions: VecDeque::new(),
        };
        core.actions.push_back(CallAction::SendRinging);
        core
    }

    /// When the INVITE arrived.
    pub fn offered_at(&self) -> Instant {
        self.offered_at
    }

    /// When the 200 OK went out, if it did.
    pub fn answered_at(&self) -> Option<Instant> {
        self.answered_at
    }

    /// True once `Finish` has been queued: the driver can stop after draining actions.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The dialplan node the caller is in, for logs and the API.
    pub fn ivr_node(&self) -> Option<&str> {
        self.ivr.current_node()
    }

    /// The agent the caller is bridged to, if any.
    pub fn connected_agent(&self) -> Option<&str> {
        match self.phase() {
            Some(Phase::Connected { agent }) => Some(agent),
            _ => None,
        }
    }

    /// The next action for the driver.
    pub fn poll_action(&mut self) -> Option<CallAction> {
        self.actions.pop_front()
    }

    /// When [`CallCore::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Ringing { answer_at } => Some(*answer_at),
            State::Up { answered_at, .. } => {
                let end = *answered_at + self.timers.max_call_length;
                Some(self.ivr.poll_timeout().map_or(end, |at| at.min(end)))
            }
            State::HangingUp { .. } | State::Done => None,
        }
    }

    /// Fires what is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &self.state {
            State::Ringing { answer_at } if now >= *answer_at => {
                self.answered_at = Some(now);
                self.state = State::Up {
                    answered_at: now,
                    phase: Phase::Ivr,
                    first_to_leave: None,
                };
                self.actions.push_back(CallAction::Answer);
                let actions = self.ivr.start(now);
                self.run_ivr(actions);
            }
            State::Up { answered_at, .. } if now >= *answered_at + self.timers.max_call_length => {
                self.leave_agent();
                self.hang_up(Ending::Completed {
                    side: Side::Hotline,
                });
            }
            State::Up { .. } if self.ivr.poll_timeout().is_some_and(|at| at <= now) => {
                let actions = self.ivr.step(now, ivr::Event::Timeout);
                self.run_ivr(actions);
            }
            _ => {}
        }
    }

    /// Feeds one thing that happened.
    pub fn handle_input(&mut self, now: Instant, input: CallInput) {
        match (&self.state, input) {
            (State::Done, _) => {}
            (State::Ringing { .. }, CallInput::CallerCancelled) => {
                self.actions.push_back(CallAction::RejectTerminated);
                self.finish(Ending::CallerAbandoned);
            }
            (State::Ringing { .. }, CallInput::Shutdown) => {
                self.actions.push_back(CallAction::RejectUnavailable);
                self.finish(Ending::ShutdownBeforeAnswer);
            }
            (State::Ringing { .. }, CallInput::MediaFailed) => {
                self.actions.push_back(CallAction::RejectFailed);
                self.finish(Ending::Failed);
            }
            // A CANCEL that crosses our 200 OK changes nothing (RFC 3261 §9.2): the
            // caller will ACK and then BYE.
            (_, CallInput::CallerCancelled) => {}
            (State::Ringing { .. }, _) => {}
            (State::Up { .. }, input) => self.handle_up(now, input),
            // The caller's BYE crossed ours: the call was already ending.
            (State::HangingUp { ending }, CallInput::CallerHungUp | CallInput::ByeFinished) => {
                let ending = *ending;
                self.finish(ending)
            }
            // An agent answering while we hang up the caller must not stay connected.
            (State::HangingUp { .. }, CallInput::AgentAnswered { .. }) => {
                self.actions.push_back(CallAction::ByeAgent)
            }
            (State::HangingUp { .. }, CallInput::TransferAnswered) => {
                self.actions.push_back(CallAction::EndTransfer)
            }
            (State::HangingUp { .. }, _) => {}
        }
    }

    /// An agent hands the caller to one of the dialplan's scripts: the agent's leg goes,
    /// the script plays. Refused, changing nothing, when the dialplan has no such script
    /// or the call is not connected to an agent.
    pub fn start_script(&mut self, now: Instant, script: AgentScript) -> Result<(), IvrError> {
        if self.connected_agent().is_none() {
            return Err(IvrError::Finished);
        }
        let actions = self.ivr.start_script(now, script)?;
        self.actions.push_back(CallAction::Unbridge);
        self.actions.push_back(CallAction::ByeAgent);
        self.actions.push_back(CallAction::ReportCallEnded);
        self.set_phase(Phase::Ivr);
        self.run_ivr(actions);
        Ok(())
    }

    fn phase(&self) -> Option<&Phase> {
        match &self.state {
            State::Up { phase, .. } => Some(phase),
            _ => None,
        }
    }

    fn set_phase(&mut self, new_phase: Phase) {
        if let State::Up { phase, .. } = &mut self.state {
            *phase = new_phase;
        }
    }

    fn handle_up(&mut self, now: Instant, input: CallInput) {
        let phase = self.phase().cloned().unwrap_or(Phase::Ivr);
        match (phase, input) {
            (_, CallInput::Acked) => {
                self.acked = true;
                if let Some((queue, priority)) = self.pending_enqueue.take() {
                    self.enqueue(queue, priority);
                }
            }
            (_, CallInput::ByeFinished) => {}
            (_, CallInput::AckTimedOut) => {
                self.leave_agent();
                self.hang_up(Ending::NoAck)
            }
            (_, CallInput::Shutdown) => {
                self.leave_agent();
                self.hang_up(Ending::Completed {
                    side: Side::Hotline,
                })
            }
            (_, CallInput::MediaFailed) => {
                self.leave_agent();
                self.hang_up(Ending::Failed)
            }
            (_, CallInput::MediaTimedOut) => {
                self.leave_agent();
                self.hang_up(Ending::MediaTimedOut)
            }
            (_, CallInput::SessionExpired) => {
                self.leave_agent();
                self.hang_up(Ending::SessionExpired)
            }
            (phase, CallInput::CallerHungUp) => {
                self.leave_agent();
                self.actions.push_back(CallAction::StopMedia);
                let ending = match (phase, self.first_to_leave()) {
                    (Phase::Queued, _) => Ending::AbandonedInQueue,
                    (Phase::Offering { .. }, _) => Ending::AbandonedWhileAgentRang,
                    (_, Some(side)) => Ending::Completed { side },
                    (_, None) => Ending::Completed { side: Side::Caller },
                };
                self.finish(ending);
            }
            (_, CallInput::PromptFinished) => {
                match std::mem::replace(&mut self.playing, Playing::Nothing) {
                    Playing::Once(id) => {
                        let actions = self.ivr.step(now, ivr::Event::PromptFinished(id));
                        self.run_ivr(actions);
                    }
                    Playing::Looping(music) => {
                        self.actions.push_back(CallAction::Play {
                            prompts: vec![music.clone()],
                        });
                        self.playing = Playing::Looping(music);
                    }
                    Playing::Nothing => {}
                }
            }
            // Keys and voice belong to the dialplan while no one else talks to the caller.
            (Phase::Connected { .. } | Phase::Transferred, CallInput::Digit(_))
            | (Phase::Connected { .. } | Phase::Transferred, CallInput::VoiceStarted)
            | (Phase::Connected { .. } | Phase::Transferred, CallInput::VoiceEnded) => {}
            (_, CallInput::Digit(key)) => {
                let actions = self.ivr.step(now, ivr::Event::Digit(key));
                self.run_ivr(actions);
            }
            (_, CallInput::VoiceStarted) => {
                let actions = self.ivr.step(now, ivr::Event::VoiceStarted);
                self.run_ivr(actions);
            }
            (_, CallInput::VoiceEnded) => {
                let actions = self.ivr.step(now, ivr::Event::VoiceEnded);
                self.run_ivr(actions);
            }
            (Phase::Queued, CallInput::AgentOffered { agent }) => {
                self.actions.push_back(CallAction::InviteAgent {
                    agent: agent.clone(),
                });
                self.set_phase(Phase::Offering { agent });
            }
            (Phase::Offering { agent }, CallInput::OfferWithdrawn { agent: withdrawn })
                if agent == withdrawn =>
            {
                self.actions.push_back(CallAction::CancelAgent { agent });
                self.set_phase(Phase::Queued);
            }
            (Phase::Offering { agent }, CallInput::AgentAnswered { agent: answered })
                if agent == answered =>
            {
                self.actions.push_back(CallAction::Bridge {
                    agent: agent.clone(),
                });
                self.actions.push_back(CallAction::ReportAnswered {
                    agent: agent.clone(),
                });
                self.set_phase(Phase::Connected {
                    agent: agent.clone(),
                });
                let actions = self.ivr.step(now, ivr::Event::AgentJoined { agent });
                self.run_ivr(actions);
            }
            // The agent answered just as the ACD withdrew the offer (ring timeout, agent
            // logged out): the ACD has put the call back in the queue and freed or
            // paused the agent, so the leg goes and the caller waits on.
            (Phase::Connected { agent }, CallInput::OfferWithdrawn { agent: withdrawn })
                if agent == withdrawn =>
            {
                self.actions.push_back(CallAction::Unbridge);
                self.actions.push_back(CallAction::ByeAgent);
                self.set_phase(Phase::Queued);
                let actions = self.ivr.step(now, ivr::Event::AgentWithdrawn);
                self.run_ivr(actions);
            }
            // Answered after the offer was withdrawn, or a stray leg: end that leg.
            (_, CallInput::AgentAnswered { .. }) => self.actions.push_back(CallAction::ByeAgent),
            (
                Phase::Offering { agent },
                CallInput::AgentLegFailed {
                    agent: failed,
                    failure,
                },
            ) if agent == failed => {
                self.actions
                    .push_back(CallAction::ReportOfferFailed { agent, failure });
                self.set_phase(Phase::Queued);
            }
            (Phase::Connected { .. }, CallInput::AgentHungUp) => {
                // R8: the agent hangs up after the caller except in special cases; when
                // the agent leaves first the caller is not cut off: the dialplan goes on
                // (the survey, the closing).
                self.actions.push_back(CallAction::Unbridge);
                self.actions.push_back(CallAction::ReportCallEnded);
                self.set_first_to_leave(Side::Agent);
                self.set_phase(Phase::Ivr);
                let actions = self.ivr.step(now, ivr::Event::AgentLeft);
                self.run_ivr(actions);
            }
            (Phase::Queued, CallInput::Overflowed) => {
                self.actions.push_back(CallAction::Overflowed);
                self.set_phase(Phase::Ivr);
                let actions = self.ivr.step(now, ivr::Event::QueueOverflowed);
                self.run_ivr(actions);
            }
            (Phase::Transferring, CallInput::TransferAnswered) => {
                self.set_phase(Phase::Transferred);
            }
            (Phase::Transferring, CallInput::TransferFailed) => {
                self.set_phase(Phase::Ivr);
                let actions = self.ivr.step(now, ivr::Event::TransferFailed);
                self.run_ivr(actions);
            }
            (Phase::Transferred, CallInput::TransferHungUp) => {
                // The destination the dialplan sent the caller to ended the call.
                self.set_first_to_leave(Side::Agent);
                self.hang_up(Ending::Completed { side: Side::Agent });
            }
            (_, CallInput::TransferAnswered) => self.actions.push_back(CallAction::EndTransfer),
            (_, _) => {}
        }
    }

    /// Carries out what the dialplan decided, in order.
    fn run_ivr(&mut self, actions: Vec<ivr::Action>) {
        for action in actions {
            if !matches!(self.state, State::Up { .. }) {
                // The call is ending: only what the dialplan learned still matters.
                if let ivr::Action::WorkOrder(write) = action {
                    self.actions.push_back(CallAction::WorkOrder(write));
                }
                continue;
            }
            match action {
                ivr::Action::Play {
                    id,
                    prompts,
                    then_loop,
                } => {
                    let prompts = match (prompts.is_empty(), &then_loop) {
                        (true, Some(music)) => vec![music.clone()],
                        _ => prompts,
                    };
                    self.playing = match then_loop {
                        Some(music) => Playing::Looping(music),
                        None => Playing::Once(id),
                    };
                    self.actions.push_back(CallAction::Play { prompts });
                }
                ivr::Action::AnnouncePosition { then_loop, .. } => {
                    self.playing = match &then_loop {
                        Some(music) => Playing::Looping(music.clone()),
                        None => Playing::Nothing,
                    };
                    self.actions
                        .push_back(CallAction::AnnouncePosition { then_loop });
                }
                ivr::Action::Stop => {
                    self.playing = Playing::Nothing;
                    self.actions.push_back(CallAction::StopPlayback);
                }
                ivr::Action::Enqueue { queue, priority } => {
                    if self.acked {
                        self.enqueue(queue, priority);
                    } else {
                        self.pending_enqueue = Some((queue, priority));
                    }
                }
                ivr::Action::LeaveQueue => self.leave_queue(),
                ivr::Action::Transfer { uri } => {
                    self.leave_queue();
                    self.actions.push_back(CallAction::Transfer { uri });
                    self.set_phase(Phase::Transferring);
                }
                ivr::Action::HangUp => {
                    self.leave_agent();
                    let side = self.first_to_leave().unwrap_or(Side::Hotline);
                    self.hang_up(Ending::Completed { side });
                }
                ivr::Action::WorkOrder(write) => {
                    self.actions.push_back(CallAction::WorkOrder(write))
                }
            }
        }
    }

    fn enqueue(&mut self, queue: String, priority: u8) {
        self.actions
            .push_back(CallAction::Enqueue { queue, priority });
        self.set_phase(Phase::Queued);
    }

    /// The dialplan takes the call out of its queue (a callback asked for, its own
    /// maximum wait, a transfer).
    fn leave_queue(&mut self) {
        self.pending_enqueue = None;
        match self.phase().cloned() {
            Some(Phase::Queued) => self.actions.push_back(CallAction::LeaveQueue),
            Some(Phase::Offering { agent }) => {
                self.actions.push_back(CallAction::CancelAgent { agent });
                self.actions.push_back(CallAction::LeaveQueue);
            }
            _ => return,
        }
        self.set_phase(Phase::Ivr);
    }

    fn first_to_leave(&self) -> Option<Side> {
        match &self.state {
            State::Up { first_to_leave, .. } => *first_to_leave,
            _ => None,
        }
    }

    fn set_first_to_leave(&mut self, side: Side) {
        if let State::Up { first_to_leave, .. } = &mut self.state {
            first_to_leave.get_or_insert(side);
        }
    }

    /// Ends whatever the agent side is doing before the caller's leg goes.
    fn leave_agent(&mut self) {
        match self.phase().cloned() {
            Some(Phase::Queued) => self.actions.push_back(CallAction::ReportAbandoned),
            Some(Phase::Offering { agent }) => {
                self.actions.push_back(CallAction::CancelAgent { agent });
                self.actions.push_back(CallAction::ReportAbandoned);
            }
            Some(Phase::Connected { .. }) => {
                self.actions.push_back(CallAction::ByeAgent);
                self.actions.push_back(CallAction::ReportCallEnded);
            }
            Some(Phase::Transferring | Phase::Transferred) => {
                self.actions.push_back(CallAction::EndTransfer)
            }
            Some(Phase::Ivr) | None => {}
        }
    }

    fn hang_up(&mut self, ending: Ending) {
        self.actions.push_back(CallAction::SendBye);
        self.actions.push_back(CallAction::StopMedia);
        self.state = State::HangingUp { ending };
    }

    fn finish(&mut self, ending: Ending) {
        self.actions.push_back(CallAction::Finish(ending));
        self.state = State::Done;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMERS: CallTimers = CallTimers {
        ring_before_answer: Duration::from_secs(2),
        max_call_length: Duration::from_secs(600),
    };

    /// The built-in flow: greeting, queue `general` (announcements every 20 s), the
    /// closing after the agent or on overflow.
    fn ivr() -> CallIvr {
        let plan = crate::ivr::BuiltinFlow {
            greeting: "greeting.wav",
            hold_music: "hold-music.wav",
            queue: "general",
            announcement: Duration::from_secs(20),
        }
        .compile(|_| true)
        .expect("built-in flow");
        CallIvr::new(std::sync::Arc::new(plan))
    }

    fn play(prompts: &[&str]) -> CallAction {
        CallAction::Play {
            prompts: prompts.iter().map(|p| p.to_string()).collect(),
        }
    }

    fn enqueue() -> CallAction {
        CallAction::Enqueue {
            queue: "general".into(),
            priority: 0,
        }
    }

    fn hold_music() -> CallAction {
        play(&["hold-music.wav"])
    }

    fn drain(core: &mut CallCore) -> Vec<CallAction> {
        std::iter::from_fn(|| core.poll_action()).collect()
    }

    /// Runs the core's own deadlines until `until`, as the driver's sleep would.
    fn advance(core: &mut CallCore, now: &mut Instant, until: Instant) {
        while let Some(deadline) = core.poll_timeout() {
            if deadline > until {
                break;
            }
            *now = deadline;
            core.handle_timeout(*now);
        }
        *now = until;
    }

    fn agent(id: &str) -> String {
        id.to_owned()
    }

    /// A call answered and past its greeting, waiting in the queue.
    fn queued() -> (CallCore, Instant) {
        let start = Instant::now();
        let mut now = start;
        let mut core = CallCore::new(now, TIMERS, ivr());
        advance(&mut core, &mut now, start + Duration::from_secs(2));
        core.handle_input(now, CallInput::Acked);
        core.handle_input(now, CallInput::PromptFinished);
        drain(&mut core);
        (core, now)
    }

    /// A call bridged to agent 1001.
    fn connected() -> (CallCore, Instant) {
        answered_by_1001(queued())
    }

    /// A queued call offered to agent 1001, who answers.
    fn answered_by_1001((mut core, now): (CallCore, Instant)) -> (CallCore, Instant) {
        core.handle_input(
            now,
            CallInput::AgentOffered {
                agent: agent("1001"),
            },
        );
        core.handle_input(
            now,
            CallInput::AgentAnswered {
                agent: agent("1001"),
            },
        );
        drain(&mut core);
        (core, now)
    }

    #[test]
    fn rings_then_answers_inside_the_ring_budget_r6() {
        let start = Instant::now();
        let mut now = start;
        let mut core = CallCore::new(now, TIMERS, ivr());
        assert_eq!(drain(&mut core), vec![CallAction::SendRinging]);
        advance(&mut core, &mut now, start + Duration::from_millis(1999));
        assert!(drain(&mut core).is_empty(), "no answer before the 2nd ring");
        advance(&mut core, &mut now, start + Duration::from_secs(2));
        assert_eq!(
            drain(&mut core),
            vec![CallAction::Answer, play(&["greeting.wav"])]
        );
        assert_eq!(core.answered_at(), Some(start + Duration::from_secs(2)));
    }

    #[test]
    fn zero_ring_time_answers_on_the_first_timeout() {
        let now = Instant::now();
        let mut core = CallCore::new(
            now,
            CallTimers {
                ring_before_answer: Duration::ZERO,
                ..TIMERS
            },
            ivr(),
        );
        assert_eq!(core.poll_timeout(), Some(now));
        core.handle_timeout(now);
        assert_eq!(
            drain(&mut core),
            vec![
                CallAction::SendRinging,
                CallAction::Answer,
                play(&["greeting.wav"])
            ]
        );
    }

    #[test]
    fn cancel_while_ringing_gives_487_and_an_abandoned_call() {
        let now = Instant::now();
        let mut core = CallCore::new(now, TIMERS, ivr());
        drain(&mut core);
        core.handle_input(now + Duration::from_secs(1), CallInput::CallerCancelled);
        assert_eq!(
            drain(&mut core),
            vec![
                CallAction::RejectTerminated,
                CallAction::Finish(Ending::CallerAbandoned)
            ]
        );
        assert!(core.is_done());
        assert_eq!(core.poll_timeout(), None, "no answer after a CANCEL");
    }

    #[test]
    fn cancel_crossing_the_200_is_ignored_and_the_call_goes_on() {
        let start = Instant::now();
        let mut now = start;
        let mut core = CallCore::new(now, TIMERS, ivr());
        advance(&mut core, &mut now, start + Duration::from_secs(2));
        drain(&mut core);
        core.handle_input(now, CallInput::CallerCancelled);
        assert!(drain(&mut core).is_empty());
        core.handle_input(now, CallInput::Acked);
        core.handle_input(now + Duration::from_secs(1), CallInput::CallerHungUp);
        assert_eq!(
            drain(&mut core),
            vec![
                CallAction::StopMedia,
                CallAction::Finish(Ending::Completed { side: Side::Caller })
            ]
        );
    }

    #[test]
    fn the_call_is_queued_only_after_the_callers_ack() {
        let start = Instant::now();
        let mut now = start;
        let mut core = CallCore::new(now, TIMERS, ivr());
        advance(&mut core, &mut now, start + Duration::from_secs(2));
        drain(&mut core);
        core.handle_input(now, CallInput::PromptFinished);
        assert_eq!(
            drain(&mut core),
            vec![play(&["queue-wait.wav"])],
            "the caller hears the queue, but no agent is rung for an unacknowledged answer"
        );
        core.handle_input(now, CallInput::Acked);
        assert_eq!(drain(&mut core), vec![enqueue()]);
    }

    #[test]
    fn greeting_then_queue_with_hold_music() {
        let start = Instant::now();
        let mut now = start;
        let mut core = CallCore::new(now, TIMERS, ivr());
        advance(&mut core, &mut now, start + Duration::from_secs(2));
        drain(&mut core);
        core.handle_input(now, CallInput::Acked);
        core.handle_input(now, CallInput::PromptFinished);
        assert_eq!(drain(&mut core), vec![enqueue(), play(&["queue-wait.wav"])]);
        core.handle_input(now, CallInput::PromptFinished);
        assert_eq!(drain(&mut core), vec![hold_music()]);
    }

    #[test]
    fn a_waiting_caller_hears_its_position_every_interval() {
        let (mut core, mut now) = queued();
        let start = now;
        advance(&mut core, &mut now, start + Duration::from_secs(19));
        assert!(drain(&mut core).is_empty());
        advance(&mut core, &mut now, start + Duration::from_secs(20));
        assert_eq!(
            drain(&mut core),
            vec![CallAction::AnnouncePosition {
                then_loop: Some("hold-music.wav".into())
            }]
        );
        advance(&mut core, &mut now, start + Duration::from_secs(40));
        assert_eq!(
            drain(&mut core),
            vec![CallAction::AnnouncePosition {
                then_loop: Some("hold-music.wav".into())
            }]
        );
    }

    #[test]
    fn an_offer_rings_the_agent_and_an_answer_bridges_and_names_the_owner_r7() {
        let (mut core, now) = queued();
        core.handle_input(
            now,
            CallInput::AgentOffered {
                agent: agent("1002"),
            },
        );
        assert_eq!(
            drain(&mut core),
            vec![CallAction::InviteAgent {
                agent: agent("1002")
            }]
        );
        core.handle_input(
            now,
            CallInput::AgentAnswered {
                agent: agent("1002"),
            },
        );
        assert_eq!(
            drain(&mut core),
            vec![
                CallAction::Bridge {
                    agent: agent("1002")
                },
                CallAction::ReportAnswered {
                    agent: agent("1002")
                },
                CallAction::StopPlayback
            ]
        );
        let mut later = now;
        advance(&mut core, &mut later, now + Duration::from_secs(60));
        assert!(
            drain(&mut core).is_empty(),
            "no announcements once connected"
        );
    }

    #[test]
    fn a_withdrawn_offer_cancels_the_agent_leg_and_the_caller_waits_on_r6() {
        let (mut core, now) = queued();
        core.handle_input(
            now,
            CallInput::AgentOffered {
                agent: agent("1001"),
            },
        );
        drain(&mut core);
        core.handle_input(
            now,
            CallInput::OfferWithdrawn {
                agent: agent("1001"),
            },
        );
        assert_eq!(
            drain(&mut core),
            vec![CallAction::CancelAgent {
                agent: agent("1001")
            }]
        );
        // The ACD redirects to the next agent; the caller noticed nothing.
        core.handle_input(
            now,
            CallInput::AgentOffered {
                agent: agent("1002"),
            },
        );
        assert_eq!(
            drain(&mut core),
            vec![CallAction::InviteAgent {
                agent: agent("1002")
            }]
        );
    }

    #[test]
    fn an_agent_answering_after_the_withdrawal_is_hung_up() {
        let (mut core, now) = queued();
        core.handle_input(
            now,
            CallInput::AgentOffered {
                agent: agent("1001"),
            },
        );
        core.handle_input(
            now,
            CallInput::OfferWithdrawn {
                agent: agent("1001"),
            },
        );
        drain(&mut core);
        core.handle_input(
            now,
            CallInput::AgentAnswered {
                agent: agent("1001"),
            },
        );
        assert_eq!(drain(&mut core), vec![CallAction::ByeAgent]);
    }

    #[test]
    fn a_withdrawal_crossing_the_answer_hangs_up_the_agent_and_the_caller_waits_on() {
        let (mut core, now) = connected();
        core.handle_input(
            now,
            CallInput::OfferWithdrawn {
                agent: agent("1001"),
            },
        );
        assert_eq!(
            drain(&mut core),
            vec![CallAction::Unbridge, CallAction::ByeAgent, hold_music()]
        );
        core.handle_input(
            now,
            CallInput::AgentOffered {
                agent: agent("1002"),
            },
        );
        assert_eq!(
            drain(&mut core),
            vec![CallAction::InviteAgent {
                agent: agent("1002")
            }]
        );
    }

    #[test]
    fn a_refusing_phone_is_reported_and_the_caller_waits_on() {
        let (mut core, now) = queued();
        core.handle_input(
            now,
            CallInput::AgentOffered {
                agent: agent("1001"),
            },
        );
        drain(&mut core);
        core.handle_input(
            now,
            CallInput::AgentLegFailed {
                agent: agent("1001"),
                failure: AgentLegFailure::Refused,
            },
        );
        assert_eq!(
            drain(&mut core),
            vec![CallAction::ReportOfferFailed {
                agent: agent("1001"),
                failure: AgentLegFailure::Refused
            }]
        );
        core.handle_input(now, CallInput::PromptFinished);
        assert_eq!(drain(&mut core), vec![hold_music()]);
    }

    #[test]
    fn caller_hanging_up_while_queued_is_abandoned_in_queue() {
        let (mut core, now) = queued();
        core.handle_input(now, CallInput::CallerHungUp);
        assert_eq!(
            drain(&mut core),
            vec![
                CallAction::ReportAbandoned,
                CallAction::StopMedia,
                CallAction::Finish(Ending::AbandonedInQueue)
            ]
        );
    }

    #[test]
    fn caller_hanging_up_while_an_agent_rings_cancels_the_agent_leg() {
        let (mut core, now) = queued();
        core.handle_input(
            now,
            CallInput::AgentOffered {
                agent: agent("1003"),
            },
        );
        drain(&mut core);
        core.handle_input(now, CallInput::CallerHungUp);
        assert_eq!(
            drain(&mut core),
            vec![
                CallAction::CancelAgent {
                    agent: agent("1003")
                },
                CallAction::ReportAbandoned,
                CallAction::StopMedia,
                CallAction::Finish(Ending::AbandonedWhileAgentRang)
            ]
        );
    }

    #[test]
    fn caller_hanging_up_first_ends_the_agent_leg_r8() {
        let (mut core, now) = connected();
        core.handle_input(now, CallInput::CallerHungUp);
        assert_eq!(
            drain(&mut core),
            vec![
                CallAction::ByeAgent,
                CallAction::ReportCallEnded,
                CallAction::StopMedia,
                CallAction::Finish(Ending::Completed { side: Side::Caller })
            ]
        );
    }

    #[test]
    fn agent_hanging_up_first_plays_the_closing_then_hangs_up_r8() {
        let (mut core, now) = connected();
        core.handle_input(now, CallInput::AgentHungUp);
        assert_eq!(
            drain(&mut core),
            vec![
                CallAction::Unbridge,
                CallAction::ReportCallEnded,
                play(&["closing.wav"])
            ]
        );
        core.handle_input(now, CallInput::PromptFinished);
        assert_eq!(
            drain(&mut core),
            vec![CallAction::SendBye, CallAction::StopMedia]
        );
        core.handle_input(now, CallInput::ByeFinished);
        assert_eq!(
            drain(&mut core),
            vec![CallAction::Finish(Ending::Completed { side: Side::Agent })]
        );
    }

    #[test]
    fn caller_leaving_during_the_closing_still_records_the_agent_first_r8() {
        let (mut core, now) = connected();
        core.handle_input(now, CallInput::AgentHungUp);
        drain(&mut core);
        core.handle_input(now, CallInput::CallerHungUp);
        assert_eq!(
            drain(&mut core),
            vec![
                CallAction::StopMedia,
                CallAction::Finish(Ending::Completed { side: Side::Agent })
            ]
        );
    }

    #[test]
    fn overflow_goes_to_the_dialplan_and_the_hotline_hangs_up_after_its_prompt() {
        let (mut core, now) = queued();
        core.handle_input(now, CallInput::Overflowed);
        assert_eq!(
            drain(&mut core),
            vec![CallAction::Overflowed, play(&["closing.wav"])]
        );
        core.handle_input(now, CallInput::PromptFinished);
        core.handle_input(now, CallInput::ByeFinished);
        assert_eq!(
            drain(&mut core),
            vec![
                CallAction::SendBye,
                CallAction::StopMedia,
                CallAction::Finish(Ending::Completed {
                    side: Side::Hotline
                })
            ]
        );
    }

    #[test]
    fn max_call_length_makes_the_hotline_hang_up_both_legs_r8() {
        let (mut core, mut now) = connected();
        let start = now;
        advance(&mut core, &mut now, start + Duration::from_secs(600));
        assert_eq!(
            drain(&mut core),
            vec![
                CallAction::ByeAgent,
                CallAction::ReportCallEnded,
                CallAction::SendBye,
                CallAction::StopMedia
            ]
        );
        core.handle_input(now, CallInput::ByeFinished);
        assert_eq!(
            drain(&mut core),
            vec![CallAction::Finish(Ending::Completed {
                side: Side::Hotline
            })]
        );
    }

    #[test]
    fn shutdown_while_ringing_rejects_with_503() {
        let now = Instant::now();
        let mut core = CallCore::new(now, TIMERS, ivr());
        drain(&mut core);
        core.handle_input(now, CallInput::Shutdown);
        assert_eq!(
            drain(&mut core),
            vec![
                CallAction::RejectUnavailable,
                CallAction::Finish(Ending::ShutdownBeforeAnswer)
            ]
        );
    }

    #[test]
    fn shutdown_while_queued_leaves_the_queue_and_hangs_up() {
        let (mut core, now) = queued();
        core.handle_input(now, CallInput::Shutdown);
        assert_eq!(
            drain(&mut core),
            vec![
                CallAction::ReportAbandoned,
                CallAction::SendBye,
                CallAction::StopMedia
            ]
        );
    }

    #[test]
    fn missing_ack_ends_the_call_with_bye() {
        let start = Instant::now();
        let mut now = start;
        let mut core = CallCore::new(now, TIMERS, ivr());
        advance(&mut core, &mut now, start + Duration::from_secs(2));
        drain(&mut core);
        core.handle_input(now + Duration::from_secs(32), CallInput::AckTimedOut);
        core.handle_input(now + Duration::from_secs(32), CallInput::ByeFinished);
        assert_eq!(
            drain(&mut core),
            vec![
                CallAction::SendBye,
                CallAction::StopMedia,
                CallAction::Finish(Ending::NoAck)
            ]
        );
    }

    #[test]
    fn an_agent_answering_while_the_caller_is_hung_up_gets_a_bye() {
        let (mut core, now) = queued();
        core.handle_input(
            now,
            CallInput::AgentOffered {
                agent: agent("1001"),
            },
        );
        core.handle_input(now, CallInput::Shutdown);
        drain(&mut core);
        core.handle_input(
            now,
            CallInput::AgentAnswered {
                agent: agent("1001"),
            },
        );
        assert_eq!(drain(&mut core), vec![CallAction::ByeAgent]);
    }

    /// A dialplan with a menu (1: consultation, 3: complaint at priority 5, 9: a
    /// transfer), the survey after the agent, and the three agent scripts.
    const MENU_PLAN: &str = r#"
start = "welcome"
[scripts]
no_answer = "silent"
nuisance = "nuisance"
out_of_scope = "out-of-scope"

[[nodes]]
name = "welcome"
kind = "menu"
prompts = ["menu.wav"]
choices = [
  { digit = "1", next = "consultation" },
  { digit = "3", next = "complaint" },
  { digit = "9", next = "supervisor" },
]
timeout_seconds = 4
timeout_retries = 0
invalid_retries = 1
on_timeout = "queue"
on_invalid = "queue"

[[nodes]]
name = "consultation"
kind = "set"
category = "consultation"
next = "queue"

[[nodes]]
name = "complaint"
kind = "set"
category = "complaint"
next = "complaint-queue"

[[nodes]]
name = "queue"
kind = "queue"
queue = "general"
priority = 0
prompts = ["queue-wait.wav"]
hold_music = "hold-music.wav"
overflow = "goodbye"
after_agent = "survey"

[[nodes]]
name = "complaint-queue"
kind = "queue"
queue = "general"
priority = 5
prompts = ["queue-wait.wav"]
hold_music = "hold-music.wav"
overflow = "goodbye"
after_agent = "survey"

[[nodes]]
name = "survey"
kind = "survey"
prompts = ["survey-rate.wav"]
min = 1
max = 5
timeout_seconds = 5
retries = 0
next = "goodbye"
on_timeout = "goodbye"

[[nodes]]
name = "supervisor"
kind = "transfer"
uri = "sip:2000@127.0.0.1:5090"
on_failure = "queue"

[[nodes]]
name = "goodbye"
kind = "hangup"
prompts = ["goodbye.wav"]

[[nodes]]
name = "silent"
kind = "no_answer"
prompt = "no-input.wav"
repeats = 3
wait_seconds = 5
goodbye = "no-input-goodbye.wav"

[[nodes]]
name = "nuisance"
kind = "hangup"
prompts = ["nuisance-warning.wav"]

[[nodes]]
name = "out-of-scope"
kind = "hangup"
prompts = ["out-of-scope.wav"]
"#;

    fn menu_call() -> (CallCore, Instant) {
        let plan = crate::ivr::compile("menu.toml", MENU_PLAN, &["general".into()], |_| true)
            .expect("test plan compiles");
        let start = Instant::now();
        let mut now = start;
        let mut core = CallCore::new(now, TIMERS, CallIvr::new(std::sync::Arc::new(plan)));
        advance(&mut core, &mut now, start + Duration::from_secs(2));
        core.handle_input(now, CallInput::Acked);
        assert_eq!(
            drain(&mut core),
            vec![
                CallAction::SendRinging,
                CallAction::Answer,
                play(&["menu.wav"])
            ]
        );
        (core, now)
    }

    /// A menu call that chose consultation (key 1) and was answered by agent 1001.
    fn consultation_with_1001() -> (CallCore, Instant) {
        let (mut core, now) = menu_call();
        core.handle_input(now, CallInput::Digit('1'));
        answered_by_1001((core, now))
    }

    fn category(category: crate::workorder::Category) -> CallAction {
        CallAction::WorkOrder(WorkOrderWrite::Category(category))
    }

    #[test]
    fn a_key_chooses_the_queue_and_its_priority_r2_r15() {
        let (mut core, now) = menu_call();
        core.handle_input(now, CallInput::Digit('3'));
        assert_eq!(
            drain(&mut core),
            vec![
                CallAction::StopPlayback,
                category(crate::workorder::Category::Complaint),
                CallAction::Enqueue {
                    queue: "general".into(),
                    priority: 5
                },
                play(&["queue-wait.wav"]),
            ]
        );
        // The hold music loops after the queue prompt, for as long as the caller waits.
        core.handle_input(now, CallInput::PromptFinished);
        core.handle_input(now, CallInput::PromptFinished);
        assert_eq!(drain(&mut core), vec![hold_music(), hold_music()]);
    }

    #[test]
    fn the_survey_after_the_agent_leaves_stores_the_rating_r8_r24() {
        let (mut core, now) = consultation_with_1001();
        // Keys pressed while talking to the agent are not the dialplan's.
        core.handle_input(now, CallInput::Digit('4'));
        assert!(drain(&mut core).is_empty());
        core.handle_input(now, CallInput::AgentHungUp);
        assert_eq!(
            drain(&mut core),
            vec![
                CallAction::Unbridge,
                CallAction::ReportCallEnded,
                play(&["survey-rate.wav"])
            ]
        );
        core.handle_input(now, CallInput::Digit('4'));
        assert_eq!(
            drain(&mut core),
            vec![
                CallAction::StopPlayback,
                CallAction::WorkOrder(WorkOrderWrite::Rating {
                    score: 4,
                    min: 1,
                    max: 5,
                    agent: Some("1001".into())
                }),
                play(&["goodbye.wav"]),
            ]
        );
        core.handle_input(now, CallInput::PromptFinished);
        core.handle_input(now, CallInput::ByeFinished);
        assert_eq!(
            drain(&mut core),
            vec![
                CallAction::SendBye,
                CallAction::StopMedia,
                CallAction::Finish(Ending::Completed { side: Side::Agent })
            ]
        );
    }

    #[test]
    fn an_agent_hands_a_silent_caller_to_the_no_answer_script_r27() {
        let (mut core, mut now) = consultation_with_1001();
        core.start_script(now, AgentScript::NoAnswer)
            .expect("script starts");
        assert_eq!(
            drain(&mut core),
            vec![
                CallAction::Unbridge,
                CallAction::ByeAgent,
                CallAction::ReportCallEnded,
                CallAction::StopPlayback,
                play(&["no-input.wav"]),
            ]
        );
        // Three times the prompt and a pause, then the goodbye and category `silent`.
        for _ in 0..3 {
            core.handle_input(now, CallInput::PromptFinished);
            let until = now + Duration::from_secs(5);
            advance(&mut core, &mut now, until);
        }
        let actions = drain(&mut core);
        assert_eq!(
            actions
                .iter()
                .filter(|a| **a == play(&["no-input.wav"]))
                .count(),
            2,
            "{actions:?}"
        );
        assert!(
            actions.contains(&category(crate::workorder::Category::Silent)),
            "{actions:?}"
        );
        assert_eq!(actions.last(), Some(&play(&["no-input-goodbye.wav"])));
        core.handle_input(now, CallInput::PromptFinished);
        assert_eq!(
            drain(&mut core),
            vec![CallAction::SendBye, CallAction::StopMedia]
        );
        // Not on a call: refused, nothing changes.
        let (mut idle, now) = menu_call();
        assert!(idle.start_script(now, AgentScript::Nuisance).is_err());
        assert!(drain(&mut idle).is_empty());
    }

    #[test]
    fn a_failed_transfer_goes_to_on_failure_and_an_answered_one_is_bridged_r11() {
        let (mut core, now) = menu_call();
        core.handle_input(now, CallInput::Digit('9'));
        assert_eq!(
            drain(&mut core),
            vec![
                CallAction::StopPlayback,
                CallAction::Transfer {
                    uri: "sip:2000@127.0.0.1:5090".into()
                }
            ]
        );
        core.handle_input(now, CallInput::TransferFailed);
        assert_eq!(drain(&mut core), vec![enqueue(), play(&["queue-wait.wav"])]);

        let (mut core, now) = menu_call();
        core.handle_input(now, CallInput::Digit('9'));
        core.handle_input(now, CallInput::TransferAnswered);
        drain(&mut core);
        core.handle_input(now, CallInput::Digit('1'));
        assert!(
            drain(&mut core).is_empty(),
            "the dialplan is done with the call"
        );
        core.handle_input(now, CallInput::CallerHungUp);
        assert_eq!(
            drain(&mut core),
            vec![
                CallAction::EndTransfer,
                CallAction::StopMedia,
                CallAction::Finish(Ending::Completed { side: Side::Caller })
            ]
        );
    }

    #[test]
    fn every_input_sequence_finishes_exactly_once_and_never_leaves_an_agent_leg() {
        use proptest::prelude::*;
        let input = prop_oneof![
            Just(CallInput::CallerCancelled),
            Just(CallInput::CallerHungUp),
            Just(CallInput::Acked),
            Just(CallInput::AckTimedOut),
            Just(CallInput::ByeFinished),
            Just(CallInput::Shutdown),
            Just(CallInput::MediaFailed),
            Just(CallInput::MediaTimedOut),
            Just(CallInput::SessionExpired),
            Just(CallInput::PromptFinished),
            Just(CallInput::AgentOffered {
                agent: "1001".into()
            }),
            Just(CallInput::OfferWithdrawn {
                agent: "1001".into()
            }),
            Just(CallInput::AgentAnswered {
                agent: "1001".into()
            }),
            Just(CallInput::AgentLegFailed {
                agent: "1001".into(),
                failure: AgentLegFailure::Refused
            }),
            Just(CallInput::AgentHungUp),
            Just(CallInput::Overflowed),
            Just(CallInput::Digit('1')),
            Just(CallInput::VoiceStarted),
        ];
        let steps = prop::collection::vec(prop::option::of(input), 0..30);
        proptest!(|(seq in steps)| {
            let mut now = Instant::now();
            let mut core = CallCore::new(now, TIMERS, ivr());
            let mut finishes = 0;
            // Agent legs opened (INVITE) minus those closed (CANCEL, failure, BYE).
            let mut open_agent_legs: i32 = 0;
            let mut connected_agent = false;
            let tail = [Some(CallInput::Shutdown), Some(CallInput::ByeFinished)];
            for step in seq.into_iter().chain(tail) {
                now += Duration::from_millis(700);
                // Agent events only make sense for a leg the core opened.
                let step = match step {
                    Some(CallInput::AgentAnswered { .. } | CallInput::AgentLegFailed { .. })
                        if open_agent_legs == 0 => None,
                    Some(CallInput::AgentHungUp) if !connected_agent => None,
                    other => other,
                };
                if matches!(step, Some(CallInput::AgentLegFailed { .. })) {
                    open_agent_legs -= 1;
                }
                if matches!(step, Some(CallInput::AgentHungUp)) {
                    open_agent_legs -= 1;
                    connected_agent = false;
                }
                match step {
                    Some(input) => core.handle_input(now, input),
                    None => {
                        let until = now + Duration::from_secs(3);
                        advance(&mut core, &mut now, until);
                    }
                }
                while let Some(action) = core.poll_action() {
                    match action {
                        CallAction::Finish(_) => finishes += 1,
                        CallAction::InviteAgent { .. } => open_agent_legs += 1,
                        CallAction::CancelAgent { .. } => open_agent_legs -= 1,
                        CallAction::Bridge { .. } => connected_agent = true,
                        CallAction::ByeAgent => {
                            open_agent_legs -= 1;
                            connected_agent = false;
                        }
                        _ => {}
                    }
                }
            }
            prop_assert_eq!(finishes, 1);
            prop_assert!(core.is_done());
            prop_assert!(open_agent_legs <= 0, "an agent leg was left open");
        });
    }
}
