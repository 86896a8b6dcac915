//! The per-call state machine of an inbound call: ring, answer inside the ring budget,
//! play the greeting, stay up until someone hangs up. Pure: fed `(now, input)`, it
//! queues actions for its driver and names its next deadline. It never touches a
//! socket, a file or the clock, so every race (CANCEL against the answer, BYE against
//! our BYE, shutdown while ringing) is tested with a simulated clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Settings the core needs, from `[calls]`.
#[derive(Clone, Copy, Debug)]
pub struct CallTimers {
    /// 180 Ringing lasts this long before the 200 OK (R6).
    pub ring_before_answer: Duration,
    /// The engine hangs up a call still up after this long.
    pub max_call_length: Duration,
}

/// What happened to the call, as the driver saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// Our BYE got its final response, or its transaction timed out: either way the
    /// dialog is over.
    ByeFinished,
    /// The engine is shutting down and the grace period is over.
    Shutdown,
    /// Media or recording could not be set up; the call cannot be served.
    MediaFailed,
}

/// Who ended the call first (R8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Caller,
    Hotline,
}

/// How the call ended, for the work order and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Answered, then ended by `side`.
    Completed { side: Side },
    /// The caller hung up before the answer.
    CallerAbandoned,
    /// The engine shut down before it answered.
    ShutdownBeforeAnswer,
    /// Answered, but the caller's ACK never came.
    NoAck,
    /// The call could not be served (media set-up failed).
    Failed,
}

/// What the driver must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallAction {
    /// Send `180 Ringing` on the INVITE.
    SendRinging,
    /// Send `200 OK` with our SDP answer, start media and recording, play the greeting.
    Answer,
    /// Answer the INVITE with `487 Request Terminated` (after a CANCEL).
    RejectTerminated,
    /// Answer the INVITE with `503 Service Unavailable` (shutdown before the answer).
    RejectUnavailable,
    /// Answer the INVITE with `500 Server Internal Error` (media failure before the answer).
    RejectFailed,
    /// Send BYE in the dialog.
    SendBye,
    /// Stop media and finalise the recording.
    StopMedia,
    /// The call is over: write the work order's end and count it. Always the last action.
    Finish(Ending),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// 180 sent; the 200 OK goes out at `answer_at`.
    Ringing {
        answer_at: Instant,
    },
    /// 200 OK sent at `answered_at`; media is up; `acked` once the ACK arrived.
    Up {
        answered_at: Instant,
        acked: bool,
    },
    /// We sent BYE; waiting for its transaction to finish.
    HangingUp {
        ending: Ending,
    },
    Done,
}

/// One inbound call's decisions.
#[derive(Debug)]
pub struct CallCore {
    timers: CallTimers,
    state: State,
    offered_at: Instant,
    actions: VecDeque<CallAction>,
}

impl CallCore {
    /// A new inbound call whose INVITE arrived at `now`; it starts ringing at once.
    pub fn new(now: Instant, timers: CallTimers) -> CallCore {
        let mut core = CallCore {
            timers,
            state: State::Ringing {
                answer_at: now + timers.ring_before_answer,
            },
            offered_at: now,
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
        match self.state {
            State::Up { answered_at, .. } => Some(answered_at),
            _ => None,
        }
    }

    /// True once `Finish` has been queued: the driver can stop after draining actions.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The next action for the driver.
    pub fn poll_action(&mut self) -> Option<CallAction> {
        self.actions.pop_front()
    }

    /// When [`CallCore::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Ringing { answer_at } => Some(answer_at),
            State::Up { answered_at, .. } => Some(answered_at + self.timers.max_call_length),
            State::HangingUp { .. } | State::Done => None,
        }
    }

    /// Fires what is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Ringing { answer_at } if now >= answer_at => {
                self.state = State::Up {
                    answered_at: now,
                    acked: false,
                };
                self.actions.push_back(CallAction::Answer);
            }
            State::Up { answered_at, .. } if now >= answered_at + self.timers.max_call_length => {
                self.hang_up(Ending::Completed {
                    side: Side::Hotline,
                });
            }
            _ => {}
        }
    }

    /// Feeds one thing that happened.
    pub fn handle_input(&mut self, _now: Instant, input: CallInput) {
        match (self.state, input) {
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
            (State::Up { answered_at, .. }, CallInput::Acked) => {
                self.state = State::Up {
                    answered_at,
                    acked: true,
                };
            }
            (State::Up { .. }, CallInput::CallerHungUp) => {
                self.actions.push_back(CallAction::StopMedia);
                self.finish(Ending::Completed { side: Side::Caller });
            }
            (State::Up { .. }, CallInput::AckTimedOut) => self.hang_up(Ending::NoAck),
            (State::Up { .. }, CallInput::Shutdown) => self.hang_up(Ending::Completed {
                side: Side::Hotline,
            }),
            (State::Up { .. }, CallInput::MediaFailed) => self.hang_up(Ending::Failed),
            (State::Up { .. }, CallInput::ByeFinished) => {}
            // The caller's BYE crossed ours: the call was already ending.
            (State::HangingUp { ending }, CallInput::CallerHungUp) => self.finish(ending),
            (State::HangingUp { ending }, CallInput::ByeFinished) => self.finish(ending),
            (State::HangingUp { .. }, _) => {}
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
        max_call_length: Duration::from_secs(60),
    };

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

    #[test]
    fn rings_then_answers_inside_the_ring_budget_r6() {
        let start = Instant::now();
        let mut now = start;
        let mut core = CallCore::new(now, TIMERS);
        assert_eq!(drain(&mut core), vec![CallAction::SendRinging]);
        advance(&mut core, &mut now, start + Duration::from_millis(1999));
        assert!(drain(&mut core).is_empty(), "no answer before the 2nd ring");
        advance(&mut core, &mut now, start + Duration::from_secs(2));
        assert_eq!(drain(&mut core), vec![CallAction::Answer]);
        assert_eq!(core.answered_at(), Some(start + Duration::from_secs(2)));
        assert!(core.answered_at().unwrap() - core.offered_at() < Duration::from_secs(10));
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
        );
        assert_eq!(core.poll_timeout(), Some(now));
        core.handle_timeout(now);
        assert_eq!(
            drain(&mut core),
            vec![CallAction::SendRinging, CallAction::Answer]
        );
    }

    #[test]
    fn cancel_while_ringing_gives_487_and_an_abandoned_call() {
        let now = Instant::now();
        let mut core = CallCore::new(now, TIMERS);
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
        let mut core = CallCore::new(now, TIMERS);
        advance(&mut core, &mut now, start + Duration::from_secs(2));
        drain(&mut core);
        core.handle_input(now, CallInput::CallerCancelled);
        assert!(drain(&mut core).is_empty());
        core.handle_input(now, CallInput::Acked);
        core.handle_input(now + Duration::from_secs(5), CallInput::CallerHungUp);
        assert_eq!(
            drain(&mut core),
            vec![
                CallAction::StopMedia,
                CallAction::Finish(Ending::Completed { side: Side::Caller })
            ]
        );
    }

    #[test]
    fn caller_hangup_is_recorded_as_the_caller_side_r8() {
        let start = Instant::now();
        let mut now = start;
        let mut core = CallCore::new(now, TIMERS);
        advance(&mut core, &mut now, start + Duration::from_secs(3));
        core.handle_input(now, CallInput::Acked);
        drain(&mut core);
        core.handle_input(now, CallInput::CallerHungUp);
        assert_eq!(
            drain(&mut core).last(),
            Some(&CallAction::Finish(Ending::Completed {
                side: Side::Caller
            }))
        );
    }

    #[test]
    fn max_call_length_makes_the_hotline_hang_up_r8() {
        let start = Instant::now();
        let mut now = start;
        let mut core = CallCore::new(now, TIMERS);
        advance(&mut core, &mut now, start + Duration::from_secs(2));
        core.handle_input(now, CallInput::Acked);
        drain(&mut core);
        advance(&mut core, &mut now, start + Duration::from_secs(62));
        assert_eq!(
            drain(&mut core),
            vec![CallAction::SendBye, CallAction::StopMedia]
        );
        assert_eq!(core.poll_timeout(), None);
        core.handle_input(now, CallInput::ByeFinished);
        assert_eq!(
            drain(&mut core),
            vec![CallAction::Finish(Ending::Completed {
                side: Side::Hotline
            })]
        );
    }

    #[test]
    fn bye_crossing_our_bye_is_answered_and_the_call_ends_once() {
        let start = Instant::now();
        let mut now = start;
        let mut core = CallCore::new(now, TIMERS);
        advance(&mut core, &mut now, start + Duration::from_secs(2));
        drain(&mut core);
        core.handle_input(now, CallInput::Shutdown);
        assert_eq!(
            drain(&mut core),
            vec![CallAction::SendBye, CallAction::StopMedia]
        );
        core.handle_input(now, CallInput::CallerHungUp);
        core.handle_input(now, CallInput::ByeFinished);
        assert_eq!(
            drain(&mut core),
            vec![CallAction::Finish(Ending::Completed {
                side: Side::Hotline
            })]
        );
    }

    #[test]
    fn missing_ack_ends_the_call_with_bye() {
        let start = Instant::now();
        let mut now = start;
        let mut core = CallCore::new(now, TIMERS);
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
    fn shutdown_while_ringing_rejects_with_503() {
        let now = Instant::now();
        let mut core = CallCore::new(now, TIMERS);
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
    fn nothing_happens_after_the_call_is_done() {
        let now = Instant::now();
        let mut core = CallCore::new(now, TIMERS);
        core.handle_input(now, CallInput::CallerCancelled);
        drain(&mut core);
        for input in [
            CallInput::CallerHungUp,
            CallInput::Acked,
            CallInput::Shutdown,
            CallInput::ByeFinished,
        ] {
            core.handle_input(now, input);
        }
        core.handle_timeout(now + Duration::from_secs(3600));
        assert!(drain(&mut core).is_empty());
    }

    #[test]
    fn every_input_sequence_finishes_exactly_once() {
        use proptest::prelude::*;
        let inputs = prop::collection::vec(
            prop_oneof![
                Just(CallInput::CallerCancelled),
                Just(CallInput::CallerHungUp),
                Just(CallInput::Acked),
                Just(CallInput::AckTimedOut),
                Just(CallInput::ByeFinished),
                Just(CallInput::Shutdown),
                Just(CallInput::MediaFailed),
            ]
            .prop_map(Some)
            .boxed()
            .prop_union(Just(None).boxed()),
            0..20,
        );
        proptest!(|(seq in inputs)| {
            let start = Instant::now();
            let mut now = start;
            let mut core = CallCore::new(now, TIMERS);
            let mut finishes = 0;
            for step in seq.into_iter().chain([Some(CallInput::Shutdown), Some(CallInput::ByeFinished)]) {
                now += Duration::from_millis(700);
                match step {
                    Some(input) => core.handle_input(now, input),
                    None => {
                        let until = now + Duration::from_secs(3);
                        advance(&mut core, &mut now, until)
                    }
                }
                while let Some(action) = core.poll_action() {
                    if matches!(action, CallAction::Finish(_)) {
                        finishes += 1;
                    }
                }
            }
            prop_assert_eq!(finishes, 1);
            prop_assert!(core.is_done());
        });
    }
}
