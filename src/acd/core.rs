//! The ACD state machine. Pure.
//!
//! Every decision touches only ordered indexes, never a scan of all calls or agents:
//! - per queue, the waiting calls in a `BTreeMap` keyed `(Reverse(priority), arrival)`,
//!   so the head is the next call;
//! - per queue, the agents who could take a call now in a `BTreeSet` keyed by the
//!   queue's strategy, so the first entry is the agent to offer;
//! - one `BTreeSet` of timers keyed by deadline.
//!
//! Complexities below use C = calls in the queue, A = agents in the queue, k = queues an
//! agent serves, r = refusals recorded against the call or agent in hand (normally 0).
//! After each input the core matches only what the input changed (the calls that
//! became waiting, then the agents that became available), which keeps the invariant
//! that no waiting call and available agent who could be matched are left apart.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::config::{AcdConfig, AgentConfig, Overflow, QueueConfig, Strategy, validate};
use super::{
    AcdAction, AcdError, AgentCounts, AgentState, AgentView, CallKey, CallStage, CallView,
    CancelReason, OfferFailure, PauseReason, QueueStats,
};

type QueueIdx = usize;
type AgentIdx = usize;

/// Everything the core waits for, one deadline each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// The offer of this call rang past the agent ring timeout.
    OfferTimeout(CallKey),
    /// The call waited its queue's max wait.
    MaxWait(CallKey),
    /// The agent's wrap-up is over.
    WrapUpEnd(AgentIdx),
}

/// An available agent's place in a queue's choice order: smallest first. The fields
/// mean different things per strategy (see [`rank`]); `agent` makes ranks unique.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    primary: u64,
    secondary: u64,
    tertiary: u64,
    agent: AgentIdx,
}

/// What happens to an agent when their current call ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AfterCall {
    WrapUp,
    Pause(PauseReason),
    LogOut,
}

/// An agent's tie to a queue they serve and are skilled enough for.
#[derive(Clone, Copy, Debug)]
struct Membership {
    queue: QueueIdx,
    /// The agent's place among the queue's members, in config order (round robin).
    position: u64,
    /// Sum of the agent's levels in the queue's required skills (skills-weighted).
    skill_score: u64,
}

#[derive(Debug)]
struct Agent {
    config: AgentConfig,
    state: AgentState,
    since: Option<Instant>,
    registered: bool,
    calls_taken: u64,
    after_call: AfterCall,
    /// Removed by a reload: finishes the offer or call in hand, then is dropped.
    retired: bool,
    memberships: Vec<Membership>,
    /// While the agent is in its queues' available sets: the sequence number their
    /// ranks were built with (a later number means available more recently).
    available_seq: Option<u64>,
    /// Held for a due callback (the reserve, R9): available but offered no inbound
    /// call, from the moment they finished a call until the driver either starts a
    /// callback for them (the mark stays while it lasts) or releases them.
    held_for_callback: bool,
}

impl Agent {
    fn new(config: AgentConfig) -> Agent {
        Agent {
            config,
            state: AgentState::LoggedOut,
            since: None,
            registered: false,
            calls_taken: 0,
            after_call: AfterCall::WrapUp,
            retired: false,
            memberships: Vec::new(),
            available_seq: None,
            held_for_callback: false,
        }
    }

    fn can_be_offered(&self) -> bool {
        self.can_take_outbound() && !self.held_for_callback
    }

    /// Free for a call the engine places for them (a held agent is: that is what they
    /// are held for).
    fn can_take_outbound(&self) -> bool {
        self.state == AgentState::Available && self.registered && !self.retired
    }
}

#[derive(Clone, Debug)]
enum Stage {
    Waiting,
    Ringing {
        agent: AgentIdx,
        deadline: Instant,
    },
    Connected {
        agent: AgentIdx,
        queue_name: String,
        wrap_up: Duration,
    },
}

#[derive(Debug)]
struct Call {
    /// Meaningless once connected (the stage keeps the queue's name then).
    queue: QueueIdx,
    priority: u8,
    /// Arrival order in the ACD: the tie-break within a priority, kept for life.
    arrival: u64,
    enqueued_at: Instant,
    /// When the call entered its current queue: max wait counts from here.
    queue_entered_at: Instant,
    stage: Stage,
    max_wait_deadline: Option<Instant>,
    /// Max wait passed while an offer rang: overflow here if the offer fails.
    overflow_due: Option<Overflow>,
    /// Agents who refused this call; it is never offered to them again.
    refused: Vec<AgentIdx>,
}

impl Call {
    fn order(&self) -> (Reverse<u8>, u64) {
        (Reverse(self.priority), self.arrival)
    }
}

#[derive(Debug)]
struct Queue {
    config: QueueConfig,
    /// Calls waiting for an offer, the next one first.
    waiting: BTreeMap<(Reverse<u8>, u64), CallKey>,
    /// Every unanswered call (waiting or ringing) by arrival, for the oldest wait.
    unanswered: BTreeMap<u64, CallKey>,
    ringing: usize,
    /// Agents who could be offered a call of this queue now, the one to offer first.
    available: BTreeSet<Rank>,
    /// Round robin: the member position to start looking from.
    rr_cursor: u64,
}

impl Queue {
    fn new(config: QueueConfig) -> Queue {
        Queue {
            config,
            waiting: BTreeMap::new(),
            unanswered: BTreeMap::new(),
            ringing: 0,
            available: BTreeSet::new(),
            rr_cursor: 0,
        }
    }
}

fn rank(
    strategy: Strategy,
    membership: &Membership,
    agent: &Agent,
    idx: AgentIdx,
    seq: u64,
) -> Rank {
    let (primary, secondary, tertiary) = match strategy {
        Strategy::LongestIdle => (seq, 0, 0),
        Strategy::RoundRobin => (membership.position, 0, 0),
        Strategy::FewestCalls => (agent.calls_taken, seq, 0),
        Strategy::SkillsWeighted => (
            u64::from(agent.config.penalty),
            u64::MAX - membership.skill_score,
            seq,
        ),
    };
    Rank {
        primary,
        secondary,
        tertiary,
        agent: idx,
    }
}

/// The automatic call distributor: all queues, agents and calls of the engine.
#[derive(Debug)]
pub struct Acd {
    ring_timeout: Duration,
    queues: Vec<Queue>,
    queue_index: HashMap<String, QueueIdx>,
    /// Slots are never reused, so an index held in a call's refusals stays unambiguous.
    agents: Vec<Option<Agent>>,
    agent_index: HashMap<String, AgentIdx>,
    calls: HashMap<CallKey, Call>,
    timers: BTreeSet<(Instant, Timer)>,
    actions: VecDeque<AcdAction>,
    next_arrival: u64,
    next_available_seq: u64,
    /// Calls that became waiting and agents that became available during the current
    /// input, matched at its end.
    fresh_calls: Vec<CallKey>,
    fresh_agents: Vec<AgentIdx>,
    /// The reserve for due callbacks: at most this many agents held at a time (0: the
    /// reserve is off, every freed agent is offered the next inbound call at once).
    callback_hold_limit: usize,
    /// Agents held for a callback ([`Agent::held_for_callback`]).
    held_for_callback: BTreeSet<AgentIdx>,
}

impl Acd {
    /// An ACD with every agent logged out and unregistered and no call.
    pub fn new(config: AcdConfig) -> Result<Acd, AcdError> {
        validate(&config)?;
        let mut acd = Acd {
            ring_timeout: config.agent_ring_timeout,
            queues: Vec::new(),
            queue_index: HashMap::new(),
            agents: Vec::new(),
            agent_index: HashMap::new(),
            calls: HashMap::new(),
            timers: BTreeSet::new(),
            actions: VecDeque::new(),
            next_arrival: 0,
            next_available_seq: 0,
            fresh_calls: Vec::new(),
            fresh_agents: Vec::new(),
            callback_hold_limit: 0,
            held_for_callback: BTreeSet::new(),
        };
        acd.install_queues(config.queues);
        for agent_config in config.agents {
            acd.agent_index
                .insert(agent_config.id.clone(), acd.agents.len());
            acd.agents.push(Some(Agent::new(agent_config)));
        }
        acd.rebuild_memberships();
        Ok(acd)
    }

    // ----- inputs: calls -------------------------------------------------------------

    /// A call enters `queue` with `priority` (higher first: 0 normal, 5 complaint, 9
    /// urgent). The best available agent is offered it at once.
    /// O(log C + A_skipped + r): the first eligible agent of the queue's order.
    pub fn enqueue(
        &mut self,
        now: Instant,
        call: CallKey,
        queue: &str,
        priority: u8,
    ) -> Result<(), AcdError> {
        if self.calls.contains_key(&call) {
            return Err(AcdError::DuplicateCall { call });
        }
        let queue_idx = *self
            .queue_index
            .get(queue)
            .ok_or_else(|| AcdError::UnknownQueue {
                queue: queue.to_owned(),
            })?;
        let arrival = self.next_arrival;
        self.next_arrival += 1;
        self.calls.insert(
            call,
            Call {
                queue: queue_idx,
                priority,
                arrival,
                enqueued_at: now,
                queue_entered_at: now,
                stage: Stage::Waiting,
                max_wait_deadline: None,
                overflow_due: None,
                refused: Vec::new(),
            },
        );
        self.attach_waiting(call);
        self.match_fresh(now);
        Ok(())
    }

    /// The caller hung up before an agent answered. A ringing offer is cancelled and its
    /// agent is available again (not paused). Returns how long the caller waited since
    /// first entering the ACD, or `None` for an unknown call. A call already answered is
    /// ended as by [`Acd::call_ended`] and gives `None`: it was not abandoned.
    /// O(log C + k·log A) plus matching the freed agent.
    pub fn abandon(&mut self, now: Instant, call: CallKey) -> Option<Duration> {
        let entry = self.calls.get(&call)?;
        let waited = now.saturating_duration_since(entry.enqueued_at);
        match entry.stage {
            Stage::Waiting => {
                self.remove_call(call);
            }
            Stage::Ringing { agent, .. } => {
                self.push_cancel(call, agent, CancelReason::CallerGone);
                self.remove_call(call);
                self.agent_after_offer(now, agent, AgentState::Available);
            }
            Stage::Connected { .. } => {
                self.end_connected(now, call);
                self.match_fresh(now);
                return None;
            }
        }
        self.match_fresh(now);
        Some(waited)
    }

    /// `agent` answered the offer of `call`: the agent owns its work order (R7). Fails
    /// with `NoSuchOffer` if the offer was cancelled meanwhile (the driver then hangs
    /// the agent's leg up). O(log C + log timers).
    pub fn offer_answered(
        &mut self,
        now: Instant,
        call: CallKey,
        agent: &str,
    ) -> Result<(), AcdError> {
        let agent_idx = self.ringing_agent(call, agent)?;
        let Some(entry) = self.calls.get(&call) else {
            return Err(AcdError::UnknownCall { call });
        };
        let queue_idx = entry.queue;
        self.detach(call);
        let queue = &self.queues[queue_idx].config;
        let stage = Stage::Connected {
            agent: agent_idx,
            queue_name: queue.name.clone(),
            wrap_up: queue.wrap_up,
        };
        if let Some(entry) = self.calls.get_mut(&call) {
            entry.stage = stage;
            entry.overflow_due = None;
        }
        if let Some(agent_entry) = self.agent_mut(agent_idx) {
            agent_entry.calls_taken += 1;
        }
        self.actions.push_back(AcdAction::Connected {
            call,
            agent: agent.to_owned(),
        });
        self.set_state(now, agent_idx, AgentState::OnCall { call });
        self.match_fresh(now);
        Ok(())
    }

    /// The offer of `call` to `agent` failed at the phone. The call goes back to its
    /// place (or overflows if its max wait passed meanwhile) and moves on to the next
    /// agent. `Refused`: the agent stays available, but never gets this call again.
    /// `Unreachable`: the agent is logged out.
    /// O(log C + k·log A) plus matching the call and the agent.
    pub fn offer_failed(
        &mut self,
        now: Instant,
        call: CallKey,
        agent: &str,
        why: OfferFailure,
    ) -> Result<(), AcdError> {
        let agent_idx = self.ringing_agent(call, agent)?;
        let next_state = match why {
            OfferFailure::Refused => {
                if let Some(entry) = self.calls.get_mut(&call) {
                    entry.refused.push(agent_idx);
                }
                AgentState::Available
            }
            OfferFailure::Unreachable => AgentState::LoggedOut,
        };
        self.return_to_queue(now, call);
        self.agent_after_offer(now, agent_idx, next_state);
        self.match_fresh(now);
        Ok(())
    }

    /// The call is over. An answered call's agent goes to wrap-up (then available), or
    /// to what they asked for meanwhile (logout, pause). A call not yet answered is
    /// treated as abandoned. O(log timers + k·log A) plus matching the freed agent.
    pub fn call_ended(&mut self, now: Instant, call: CallKey) -> Result<(), AcdError> {
        let entry = self
            .calls
            .get(&call)
            .ok_or(AcdError::UnknownCall { call })?;
        if matches!(entry.stage, Stage::Connected { .. }) {
            self.end_connected(now, call);
            self.match_fresh(now);
        } else {
            self.abandon(now, call);
        }
        Ok(())
    }

    /// `agent` takes an outbound call `call` the engine places for them (callbacks and
    /// enterprise calls, R16–R19): they must be available with a registered phone; they
    /// are offered nothing until [`Acd::outbound_ended`]. `call` is the driver's key and
    /// never waits in a queue. O(k·log A).
    pub fn outbound_started(
        &mut self,
        now: Instant,
        agent: &str,
        call: CallKey,
    ) -> Result<(), AcdError> {
        let idx = self.configured_agent(agent)?;
        let Some(entry) = self.agent_ref(idx) else {
            return Err(unknown_agent(agent));
        };
        if !entry.can_take_outbound() {
            return Err(AcdError::NotAvailable {
                agent: agent.to_owned(),
                state: entry.state.as_str(),
            });
        }
        self.set_state(now, idx, AgentState::OnCall { call });
        Ok(())
    }

    /// The outbound call `call` of `agent` is over: they are available again, or do what
    /// they asked for meanwhile (logout, pause). No wrap-up: it belongs to a queue's
    /// calls. O(k·(log A + log C + r)).
    pub fn outbound_ended(
        &mut self,
        now: Instant,
        agent: &str,
        call: CallKey,
    ) -> Result<(), AcdError> {
        let idx = *self
            .agent_index
            .get(agent)
            .ok_or_else(|| unknown_agent(agent))?;
        let Some(entry) = self.agent_mut(idx) else {
            return Err(unknown_agent(agent));
        };
        if entry.state != (AgentState::OnCall { call }) {
            return Err(AcdError::UnknownCall { call });
        }
        if entry.retired {
            self.drop_agent(now, idx);
            return Ok(());
        }
        let next = match std::mem::replace(&mut entry.after_call, AfterCall::WrapUp) {
            AfterCall::LogOut => AgentState::LoggedOut,
            AfterCall::Pause(reason) => AgentState::Paused { reason },
            AfterCall::WrapUp => AgentState::Available,
        };
        self.set_state(now, idx, next);
        self.match_fresh(now);
        Ok(())
    }

    // ----- inputs: agents ------------------------------------------------------------

    /// The agent logs in and is available (offered calls once their phone is
    /// registered). Logging in while already in takes back a pending logout.
    /// O(k·(log A + log C + r)).
    pub fn login(&mut self, now: Instant, agent: &str) -> Result<(), AcdError> {
        let idx = self.configured_agent(agent)?;
        let Some(entry) = self.agent_mut(idx) else {
            return Err(unknown_agent(agent));
        };
        match entry.state {
            AgentState::LoggedOut => self.set_state(now, idx, AgentState::Available),
            AgentState::OnCall { .. } if entry.after_call == AfterCall::LogOut => {
                entry.after_call = AfterCall::WrapUp;
            }
            _ => {}
        }
        self.match_fresh(now);
        Ok(())
    }

    /// The agent logs out. A ringing offer is cancelled and the call moves on; on a
    /// call, the logout happens when it ends. O(k·log A) plus matching the call.
    pub fn logout(&mut self, now: Instant, agent: &str) -> Result<(), AcdError> {
        let idx = self.configured_agent(agent)?;
        self.leave(now, idx, AgentState::LoggedOut, AfterCall::LogOut);
        self.match_fresh(now);
        Ok(())
    }

    /// The agent stops taking calls for `reason`. A ringing offer is cancelled and the
    /// call moves on; on a call, the pause starts when it ends (skipping wrap-up).
    /// O(k·log A) plus matching the call.
    pub fn pause(
        &mut self,
        now: Instant,
        agent: &str,
        reason: PauseReason,
    ) -> Result<(), AcdError> {
        let idx = self.configured_agent(agent)?;
        if self.agent_ref(idx).map(|a| a.state) == Some(AgentState::LoggedOut) {
            return Err(AcdError::NotLoggedIn {
                agent: agent.to_owned(),
            });
        }
        self.leave(
            now,
            idx,
            AgentState::Paused { reason },
            AfterCall::Pause(reason),
        );
        self.match_fresh(now);
        Ok(())
    }

    /// A paused agent, or one in wrap-up, is available again; on a call, a pending pause
    /// is dropped. O(k·(log A + log C + r)).
    pub fn resume(&mut self, now: Instant, agent: &str) -> Result<(), AcdError> {
        let idx = self.configured_agent(agent)?;
        let Some(entry) = self.agent_mut(idx) else {
            return Err(unknown_agent(agent));
        };
        match entry.state {
            AgentState::LoggedOut => {
                return Err(AcdError::NotLoggedIn {
                    agent: agent.to_owned(),
                });
            }
            AgentState::Paused { .. } | AgentState::WrapUp { .. } => {
                self.set_state(now, idx, AgentState::Available);
            }
            AgentState::OnCall { .. } => {
                if let AfterCall::Pause(_) = entry.after_call {
                    entry.after_call = AfterCall::WrapUp;
                }
            }
            AgentState::Available | AgentState::Reserved { .. } => {}
        }
        self.match_fresh(now);
        Ok(())
    }

    /// The agent's softphone registered (`true`) or un-registered / lapsed (`false`).
    /// Losing the registration logs the agent out (a ringing offer is cancelled; on a
    /// call, at its end). Registering makes an available agent offerable.
    /// O(k·(log A + log C + r)).
    pub fn set_registered(
        &mut self,
        now: Instant,
        agent: &str,
        registered: bool,
    ) -> Result<(), AcdError> {
        let idx = self.configured_agent(agent)?;
        let Some(entry) = self.agent_mut(idx) else {
            return Err(unknown_agent(agent));
        };
        entry.registered = registered;
        if registered {
            self.sync_available(idx);
        } else {
            self.leave(now, idx, AgentState::LoggedOut, AfterCall::LogOut);
        }
        self.match_fresh(now);
        Ok(())
    }

    // ----- inputs: the reserve for due callbacks --------------------------------------

    /// The reserve for due callbacks (R9, off with 0): from now on an agent who finishes
    /// a call (it ends with no wrap-up, the wrap-up ends, or an outbound call ends) while
    /// fewer than `limit` agents are held is held for a callback instead of being
    /// offered the next waiting call: available, but out of inbound distribution. The
    /// driver then starts a callback for them ([`Acd::outbound_started`]; they stay held
    /// until [`Acd::outbound_ended`]) or gives them back ([`Acd::release_held`]).
    /// Lowering the limit gives back held agents not yet on a call.
    /// O(held · k·(log A + log C + r)).
    pub fn set_callback_hold(&mut self, now: Instant, limit: usize) {
        self.callback_hold_limit = limit;
        if self.held_for_callback.len() <= limit {
            return;
        }
        let idle: Vec<AgentIdx> = self
            .held_for_callback
            .iter()
            .copied()
            .filter(|&idx| self.agent_ref(idx).map(|a| a.state) == Some(AgentState::Available))
            .collect();
        let excess = self.held_for_callback.len() - limit;
        for idx in idle.into_iter().take(excess) {
            self.unhold(idx);
        }
        self.match_fresh(now);
    }

    /// A held agent no callback was started for is offered inbound calls again (at once
    /// the best waiting one). Nothing happens for an agent not held, or held and already
    /// on their callback (they are released when it ends). O(k·(log A + log C + r)).
    pub fn release_held(&mut self, now: Instant, agent: &str) -> Result<(), AcdError> {
        let idx = *self
            .agent_index
            .get(agent)
            .ok_or_else(|| unknown_agent(agent))?;
        if self.agent_ref(idx).map(|a| a.state) == Some(AgentState::Available) {
            self.unhold(idx);
            self.match_fresh(now);
        }
        Ok(())
    }

    /// Agents held for a callback and not yet on it: the driver owes each of them a
    /// callback or a release. O(held).
    pub fn held_for_callback(&self) -> Vec<String> {
        self.held_for_callback
            .iter()
            .filter_map(|&idx| self.agent_ref(idx))
            .filter(|agent| agent.state == AgentState::Available)
            .map(|agent| agent.config.id.clone())
            .collect()
    }

    /// Agents held for a callback, on it or not (never more than the limit). O(1).
    pub fn held_count(&self) -> usize {
        self.held_for_callback.len()
    }

    // ----- timers --------------------------------------------------------------------

    /// Gives back the room a burst of calls left in the call table (see
    /// [`crate::capacity`]).
    pub fn shrink_idle(&mut self) {
        use crate::capacity::ShrinkIdle;
        self.calls.shrink_idle();
        self.actions.shrink_idle();
    }

    /// The next action for the driver.
    pub fn poll_action(&mut self) -> Option<AcdAction> {
        self.actions.pop_front()
    }

    /// When [`Acd::handle_timeout`] must next be called. O(log timers).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(deadline, _)| *deadline)
    }

    /// Fires every timer due at `now`, in deadline order, matching after each.
    /// O(log timers) per timer plus what each one changes (like the inputs above).
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(deadline, timer)) = self.timers.first() {
            if deadline > now {
                break;
            }
            self.timers.remove(&(deadline, timer));
            match timer {
                Timer::OfferTimeout(call) => self.offer_timed_out(now, call),
                Timer::MaxWait(call) => self.max_wait_passed(now, call),
                Timer::WrapUpEnd(agent) => {
                    if matches!(self.agent_ref(agent).map(|a| a.state), Some(AgentState::WrapUp { until }) if until == deadline)
                    {
                        self.set_state(now, agent, AgentState::Available);
                    }
                }
            }
            self.match_fresh(now);
        }
    }

    // ----- reload --------------------------------------------------------------------

    /// Applies a new config (R4): every agent keeps their state, every call its place.
    /// Removed agents finish what they have, then are gone; new agents start logged out.
    /// A removed queue's calls follow its overflow target if that survives; if it does
    /// not and the queue has calls, the reload is refused and nothing changes.
    /// O(all calls + all agents · k): a reload rebuilds every index.
    pub fn reload(&mut self, now: Instant, config: AcdConfig) -> Result<(), AcdError> {
        validate(&config)?;
        let new_names: HashMap<&str, QueueIdx> = config
            .queues
            .iter()
            .enumerate()
            .map(|(idx, queue)| (queue.name.as_str(), idx))
            .collect();
        let mut evacuate_to_dialplan: Vec<(QueueIdx, Overflow)> = Vec::new();
        let mut rehome: HashMap<QueueIdx, String> = HashMap::new();
        for (idx, queue) in self.queues.iter().enumerate() {
            if new_names.contains_key(queue.config.name.as_str()) || queue.unanswered.is_empty() {
                continue;
            }
            match &queue.config.overflow {
                Some(Overflow::Queue(target)) if new_names.contains_key(target.as_str()) => {
                    rehome.insert(idx, target.clone());
                }
                Some(target @ Overflow::Dialplan(_)) => {
                    evacuate_to_dialplan.push((idx, target.clone()));
                }
                _ => {
                    return Err(AcdError::RemovedQueueHasCalls {
                        queue: queue.config.name.clone(),
                    });
                }
            }
        }
        // Nothing can fail from here on.
        for (queue_idx, target) in evacuate_to_dialplan {
            let calls: Vec<CallKey> = self.queues[queue_idx]
                .unanswered
                .values()
                .copied()
                .collect();
            for call in calls {
                if let Some(entry) = self.calls.get_mut(&call)
                    && let Stage::Ringing { agent, .. } = entry.stage
                {
                    entry.overflow_due = None;
                    self.push_cancel(call, agent, CancelReason::QueueRemoved);
                    self.return_to_queue(now, call);
                    self.agent_after_offer(now, agent, AgentState::Available);
                }
                self.overflow(now, call, target.clone());
            }
        }

        self.ring_timeout = config.agent_ring_timeout;
        let old_queues = std::mem::take(&mut self.queues);
        let old_names: Vec<String> = old_queues.iter().map(|q| q.config.name.clone()).collect();
        self.install_queues(config.queues);
        for old in &old_queues {
            if let Some(&idx) = self.queue_index.get(&old.config.name) {
                self.queues[idx].rr_cursor = old.rr_cursor;
            }
        }

        // Agents: keep, retire or drop; add the new ones.
        let mut configured: HashMap<String, AgentConfig> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        for agent_config in config.agents {
            order.push(agent_config.id.clone());
            configured.insert(agent_config.id.clone(), agent_config);
        }
        let previous_seq: Vec<Option<u64>> = self
            .agents
            .iter()
            .map(|agent| agent.as_ref().and_then(|a| a.available_seq))
            .collect();
        for idx in 0..self.agents.len() {
            let Some(agent) = self.agents[idx].as_mut() else {
                continue;
            };
            agent.available_seq = None;
            match configured.remove(&agent.config.id) {
                Some(agent_config) => {
                    agent.config = agent_config;
                    agent.retired = false;
                }
                None => {
                    agent.retired = true;
                    if !matches!(
                        agent.state,
                        AgentState::Reserved { .. } | AgentState::OnCall { .. }
                    ) {
                        self.drop_agent(now, idx);
                    }
                }
            }
        }
        for id in &order {
            if let Some(agent_config) = configured.remove(id) {
                self.agent_index.insert(id.clone(), self.agents.len());
                self.agents.push(Some(Agent::new(agent_config)));
            }
        }
        self.rebuild_memberships();

        // Calls: re-attach to the new queues, recomputing max wait deadlines.
        let max_waits: Vec<(Instant, Timer)> = self
            .timers
            .iter()
            .filter(|(_, timer)| matches!(timer, Timer::MaxWait(_)))
            .copied()
            .collect();
        for timer in max_waits {
            self.timers.remove(&timer);
        }
        let mut unanswered: Vec<(u64, CallKey)> = Vec::new();
        for (key, call) in self.calls.iter_mut() {
            call.max_wait_deadline = None;
            if matches!(call.stage, Stage::Connected { .. }) {
                continue;
            }
            let old_name = &old_names[call.queue];
            let new_idx = match self.queue_index.get(old_name) {
                Some(&idx) => idx,
                None => {
                    let target = rehome
                        .get(&call.queue)
                        .and_then(|t| self.queue_index.get(t));
                    let Some(&idx) = target else {
                        continue;
                    };
                    call.queue_entered_at = now;
                    let target_name = self.queues[idx].config.name.clone();
                    self.actions.push_back(AcdAction::Overflow {
                        call: *key,
                        target: Overflow::Queue(target_name),
                    });
                    idx
                }
            };
            call.queue = new_idx;
            if let Some(Overflow::Queue(target)) = &call.overflow_due
                && !self.queue_index.contains_key(target)
            {
                call.overflow_due = None;
            }
            unanswered.push((call.arrival, *key));
        }
        unanswered.sort_unstable();
        for (_, key) in unanswered {
            let ringing = matches!(
                self.calls.get(&key).map(|c| &c.stage),
                Some(Stage::Ringing { .. })
            );
            if ringing {
                self.attach_ringing(key);
            } else {
                self.attach_waiting(key);
            }
        }

        // Available agents go back into the new queues' sets, keeping their idle order.
        for idx in 0..self.agents.len() {
            match previous_seq.get(idx).copied().flatten() {
                Some(seq) if self.agent_ref(idx).is_some_and(Agent::can_be_offered) => {
                    self.insert_available(idx, seq);
                }
                _ => self.sync_available(idx),
            }
        }
        self.match_fresh(now);
        Ok(())
    }

    // ----- queries -------------------------------------------------------------------

    /// A waiting call's place in its queue, 1 = next ("您前面还有 N 位" with N =
    /// position − 1). `None` if the call is not waiting (unknown, ringing or answered).
    /// O(position).
    pub fn position(&self, call: CallKey) -> Option<usize> {
        let entry = self.calls.get(&call)?;
        if !matches!(entry.stage, Stage::Waiting) {
            return None;
        }
        let queue = self.queues.get(entry.queue)?;
        Some(queue.waiting.range(..entry.order()).count() + 1)
    }

    /// The agent who answered the call and owns its work order (R7), while it lasts.
    pub fn owner(&self, call: CallKey) -> Option<&str> {
        match self.calls.get(&call)?.stage {
            Stage::Connected { agent, .. } => self.agent_ref(agent).map(|a| a.config.id.as_str()),
            _ => None,
        }
    }

    /// One call's queue, priority and stage. O(position) while waiting, else O(1).
    pub fn call(&self, call: CallKey) -> Option<CallView> {
        let entry = self.calls.get(&call)?;
        let agent_id = |idx: AgentIdx| {
            self.agent_ref(idx)
                .map(|a| a.config.id.clone())
                .unwrap_or_default()
        };
        let (queue, stage) = match &entry.stage {
            Stage::Waiting => (
                self.queues[entry.queue].config.name.clone(),
                CallStage::Waiting {
                    position: self.position(call).unwrap_or(0),
                },
            ),
            Stage::Ringing { agent, .. } => (
                self.queues[entry.queue].config.name.clone(),
                CallStage::Ringing {
                    agent: agent_id(*agent),
                },
            ),
            Stage::Connected {
                agent, queue_name, ..
            } => (
                queue_name.clone(),
                CallStage::Connected {
                    agent: agent_id(*agent),
                },
            ),
        };
        Some(CallView {
            queue,
            priority: entry.priority,
            enqueued_at: entry.enqueued_at,
            stage,
        })
    }

    /// True while any call waits for an agent (R9: no callback starts then).
    /// O(queues).
    pub fn inbound_waiting(&self) -> bool {
        self.queues.iter().any(|queue| !queue.waiting.is_empty())
    }

    /// Every queue's depth and oldest wait, in config order. O(queues).
    pub fn queue_stats(&self, now: Instant) -> Vec<QueueStats> {
        self.queues
            .iter()
            .map(|queue| QueueStats {
                name: queue.config.name.clone(),
                depth: queue.unanswered.len(),
                ringing: queue.ringing,
                oldest_wait: queue
                    .unanswered
                    .values()
                    .next()
                    .and_then(|key| self.calls.get(key))
                    .map(|call| now.saturating_duration_since(call.enqueued_at)),
                agents_available: queue.available.len(),
            })
            .collect()
    }

    /// How many agents are in each state. O(agents).
    pub fn agent_counts(&self) -> AgentCounts {
        let mut counts = AgentCounts::default();
        for agent in self.agents.iter().flatten() {
            let count = match agent.state {
                AgentState::LoggedOut => &mut counts.logged_out,
                AgentState::Available => &mut counts.available,
                AgentState::Reserved { .. } => &mut counts.reserved,
                AgentState::OnCall { .. } => &mut counts.on_call,
                AgentState::WrapUp { .. } => &mut counts.wrap_up,
                AgentState::Paused { .. } => &mut counts.paused,
            };
            *count += 1;
        }
        counts
    }

    /// One agent's state and figures. O(k).
    pub fn agent(&self, id: &str) -> Option<AgentView> {
        let agent = self.agent_ref(*self.agent_index.get(id)?)?;
        Some(AgentView {
            id: agent.config.id.clone(),
            state: agent.state,
            since: agent.since,
            registered: agent.registered,
            calls_taken: agent.calls_taken,
            queues: agent
                .memberships
                .iter()
                .map(|m| self.queues[m.queue].config.name.clone())
                .collect(),
            configured: !agent.retired,
        })
    }

    /// Every agent number the ACD knows, including removed agents finishing a call.
    pub fn agent_ids(&self) -> impl Iterator<Item = &str> {
        self.agents.iter().flatten().map(|a| a.config.id.as_str())
    }

    /// Every call the ACD holds (waiting, ringing or answered).
    pub fn call_keys(&self) -> impl Iterator<Item = CallKey> + '_ {
        self.calls.keys().copied()
    }

    // ----- agent state ---------------------------------------------------------------

    fn agent_ref(&self, idx: AgentIdx) -> Option<&Agent> {
        self.agents.get(idx).and_then(Option::as_ref)
    }

    fn agent_mut(&mut self, idx: AgentIdx) -> Option<&mut Agent> {
        self.agents.get_mut(idx).and_then(Option::as_mut)
    }

    /// An agent the current config has (not one a reload removed).
    fn configured_agent(&self, id: &str) -> Result<AgentIdx, AcdError> {
        self.agent_index
            .get(id)
            .copied()
            .filter(|&idx| self.agent_ref(idx).is_some_and(|a| !a.retired))
            .ok_or_else(|| unknown_agent(id))
    }

    /// The agent an offer of `call` rings, checked against the driver's `agent`.
    fn ringing_agent(&self, call: CallKey, agent: &str) -> Result<AgentIdx, AcdError> {
        let entry = self
            .calls
            .get(&call)
            .ok_or(AcdError::UnknownCall { call })?;
        match entry.stage {
            Stage::Ringing { agent: idx, .. }
                if self.agent_ref(idx).is_some_and(|a| a.config.id == agent) =>
            {
                Ok(idx)
            }
            _ => Err(AcdError::NoSuchOffer {
                call,
                agent: agent.to_owned(),
            }),
        }
    }

    /// Moves an agent to `state`: timestamps it, tells the driver, keeps the wrap-up
    /// timer and the available sets in step. O(k·log A + log timers).
    fn set_state(&mut self, now: Instant, idx: AgentIdx, state: AgentState) {
        let Some(agent) = self.agent_mut(idx) else {
            return;
        };
        let old = std::mem::replace(&mut agent.state, state);
        agent.since = Some(now);
        let id = agent.config.id.clone();
        self.mark_for_callback(idx, old, state);
        if let AgentState::WrapUp { until } = old {
            self.timers.remove(&(until, Timer::WrapUpEnd(idx)));
        }
        if let AgentState::WrapUp { until } = state {
            self.timers.insert((until, Timer::WrapUpEnd(idx)));
        }
        self.actions
            .push_back(AcdAction::AgentStateChanged { agent: id, state });
        self.sync_available(idx);
    }

    /// Keeps the reserve's mark in step with a change of state from `old` to `new`: an
    /// agent finishing a call is held while the limit allows; one starting a call keeps
    /// their mark (a held agent only starts a callback); any other change drops it.
    fn mark_for_callback(&mut self, idx: AgentIdx, old: AgentState, new: AgentState) {
        let finished_a_call = matches!(old, AgentState::OnCall { .. } | AgentState::WrapUp { .. })
            && new == AgentState::Available;
        let hold = match new {
            AgentState::OnCall { .. } => self.held_for_callback.contains(&idx),
            _ if finished_a_call => {
                self.held_for_callback.remove(&idx);
                self.held_for_callback.len() < self.callback_hold_limit
            }
            _ => false,
        };
        if hold {
            self.held_for_callback.insert(idx);
        } else {
            self.held_for_callback.remove(&idx);
        }
        if let Some(agent) = self.agent_mut(idx) {
            agent.held_for_callback = hold;
        }
    }

    /// Drops the reserve's mark: the agent goes (back) into their queues' available sets.
    fn unhold(&mut self, idx: AgentIdx) {
        self.held_for_callback.remove(&idx);
        if let Some(agent) = self.agent_mut(idx) {
            agent.held_for_callback = false;
        }
        self.sync_available(idx);
    }

    /// Puts the agent into, or takes them out of, their queues' available sets to match
    /// whether they can be offered a call. O(k·log A).
    fn sync_available(&mut self, idx: AgentIdx) {
        let Some(agent) = self.agents.get(idx).and_then(Option::as_ref) else {
            return;
        };
        match (agent.can_be_offered(), agent.available_seq) {
            (true, None) => {
                let seq = self.next_available_seq;
                self.next_available_seq += 1;
                self.insert_available(idx, seq);
            }
            (false, Some(seq)) => {
                for membership in &agent.memberships {
                    let queue = &mut self.queues[membership.queue];
                    queue.available.remove(&rank(
                        queue.config.strategy,
                        membership,
                        agent,
                        idx,
                        seq,
                    ));
                }
                if let Some(agent) = self.agent_mut(idx) {
                    agent.available_seq = None;
                }
            }
            _ => {}
        }
    }

    /// Puts the agent into their queues' available sets, ranked with `seq` (their
    /// place in the longest-idle order). O(k·log A).
    fn insert_available(&mut self, idx: AgentIdx, seq: u64) {
        let Some(agent) = self.agents.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        agent.available_seq = Some(seq);
        for membership in &agent.memberships {
            let queue = &mut self.queues[membership.queue];
            queue
                .available
                .insert(rank(queue.config.strategy, membership, agent, idx, seq));
        }
        self.fresh_agents.push(idx);
    }

    /// The agent leaves the state in which they take calls: at once, or after their call.
    fn leave(&mut self, now: Instant, idx: AgentIdx, state: AgentState, after_call: AfterCall) {
        let Some(agent) = self.agent_mut(idx) else {
            return;
        };
        match agent.state {
            AgentState::LoggedOut => {}
            AgentState::OnCall { .. } => agent.after_call = after_call,
            AgentState::Reserved { call } => {
                self.push_cancel(call, idx, CancelReason::AgentLeft);
                self.return_to_queue(now, call);
                self.set_state(now, idx, state);
            }
            AgentState::Available | AgentState::WrapUp { .. } | AgentState::Paused { .. } => {
                self.set_state(now, idx, state);
            }
        }
    }

    /// Where an agent goes once an offer is over without an answer.
    fn agent_after_offer(&mut self, now: Instant, idx: AgentIdx, state: AgentState) {
        if self.agent_ref(idx).is_some_and(|a| a.retired) {
            self.drop_agent(now, idx);
        } else {
            self.set_state(now, idx, state);
        }
    }

    /// Removes an agent a reload took out of the config, now that they are free.
    fn drop_agent(&mut self, now: Instant, idx: AgentIdx) {
        if self
            .agent_ref(idx)
            .is_some_and(|a| a.state != AgentState::LoggedOut)
        {
            self.set_state(now, idx, AgentState::LoggedOut);
        }
        let Some(agent) = self.agents.get_mut(idx).and_then(Option::take) else {
            return;
        };
        if self.agent_index.get(&agent.config.id) == Some(&idx) {
            self.agent_index.remove(&agent.config.id);
        }
    }

    /// Recomputes every agent's queue memberships from the config (skills and queues).
    fn rebuild_memberships(&mut self) {
        let mut next_position = vec![0u64; self.queues.len()];
        for agent in self.agents.iter_mut().flatten() {
            agent.memberships.clear();
            if agent.retired {
                continue;
            }
            let mut seen: Vec<QueueIdx> = Vec::new();
            for name in &agent.config.queues {
                let Some(&queue_idx) = self.queue_index.get(name) else {
                    continue;
                };
                let required = &self.queues[queue_idx].config.required_skills;
                if seen.contains(&queue_idx) || !agent.config.meets(required) {
                    continue;
                }
                seen.push(queue_idx);
                agent.memberships.push(Membership {
                    queue: queue_idx,
                    position: next_position[queue_idx],
                    skill_score: agent.config.skill_score(required),
                });
                next_position[queue_idx] += 1;
            }
        }
    }

    fn install_queues(&mut self, queues: Vec<QueueConfig>) {
        self.queue_index = queues
            .iter()
            .enumerate()
            .map(|(idx, queue)| (queue.name.clone(), idx))
            .collect();
        self.queues = queues.into_iter().map(Queue::new).collect();
    }

    // ----- call state ----------------------------------------------------------------

    /// Puts a waiting call into its queue's indexes and arms its max wait.
    /// O(log C + log timers).
    fn attach_waiting(&mut self, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.stage = Stage::Waiting;
        let queue = &mut self.queues[call.queue];
        queue.waiting.insert(call.order(), key);
        queue.unanswered.insert(call.arrival, key);
        if queue.config.overflow.is_some() {
            let deadline = call.queue_entered_at + queue.config.max_wait;
            call.max_wait_deadline = Some(deadline);
            self.timers.insert((deadline, Timer::MaxWait(key)));
        }
        self.fresh_calls.push(key);
    }

    /// Puts a ringing call into its queue's indexes (used by reload).
    fn attach_ringing(&mut self, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let queue = &mut self.queues[call.queue];
        queue.unanswered.insert(call.arrival, key);
        queue.ringing += 1;
        if queue.config.overflow.is_some() && call.overflow_due.is_none() {
            let deadline = call.queue_entered_at + queue.config.max_wait;
            call.max_wait_deadline = Some(deadline);
            self.timers.insert((deadline, Timer::MaxWait(key)));
        }
    }

    /// Takes a call out of its queue's indexes and disarms its timers. O(log C).
    fn detach(&mut self, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if let Some(deadline) = call.max_wait_deadline.take() {
            self.timers.remove(&(deadline, Timer::MaxWait(key)));
        }
        let queue = &mut self.queues[call.queue];
        match call.stage {
            Stage::Waiting => {
                queue.waiting.remove(&call.order());
                queue.unanswered.remove(&call.arrival);
            }
            Stage::Ringing { deadline, .. } => {
                self.timers.remove(&(deadline, Timer::OfferTimeout(key)));
                queue.ringing = queue.ringing.saturating_sub(1);
                queue.unanswered.remove(&call.arrival);
            }
            Stage::Connected { .. } => {}
        }
    }

    fn remove_call(&mut self, key: CallKey) {
        self.detach(key);
        self.calls.remove(&key);
    }

    /// Rings `agent` for a waiting call. O(log C + k·log A).
    fn offer(&mut self, now: Instant, key: CallKey, agent: AgentIdx) {
        let Some(agent_id) = self.agent_ref(agent).map(|a| a.config.id.clone()) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let queue = &mut self.queues[call.queue];
        queue.waiting.remove(&call.order());
        queue.ringing += 1;
        let deadline = now + self.ring_timeout;
        call.stage = Stage::Ringing { agent, deadline };
        self.timers.insert((deadline, Timer::OfferTimeout(key)));
        if queue.config.strategy == Strategy::RoundRobin
            && let Some(membership) = self
                .agents
                .get(agent)
                .and_then(Option::as_ref)
                .and_then(|a| a.memberships.iter().find(|m| m.queue == call.queue))
        {
            queue.rr_cursor = membership.position + 1;
        }
        self.actions.push_back(AcdAction::Offer {
            call: key,
            agent: agent_id,
        });
        self.set_state(now, agent, AgentState::Reserved { call: key });
    }

    fn push_cancel(&mut self, call: CallKey, agent: AgentIdx, reason: CancelReason) {
        let agent = self
            .agent_ref(agent)
            .map(|a| a.config.id.clone())
            .unwrap_or_default();
        self.actions.push_back(AcdAction::CancelOffer {
            call,
            agent,
            reason,
        });
    }

    /// A ringing call whose offer is over goes back to its place, or overflows if its
    /// max wait passed while it rang. The agent is the caller's business.
    fn return_to_queue(&mut self, now: Instant, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Stage::Ringing { deadline, .. } = call.stage else {
            return;
        };
        self.timers.remove(&(deadline, Timer::OfferTimeout(key)));
        call.stage = Stage::Waiting;
        let overflow_due = call.overflow_due.take();
        let queue = &mut self.queues[call.queue];
        queue.ringing = queue.ringing.saturating_sub(1);
        queue.waiting.insert(call.order(), key);
        self.fresh_calls.push(key);
        if let Some(target) = overflow_due {
            self.overflow(now, key, target);
        }
    }

    /// A waiting call leaves for `target`: another queue (same arrival, max wait counted
    /// afresh) or a dialplan step (out of the ACD). O(log C).
    fn overflow(&mut self, now: Instant, key: CallKey, target: Overflow) {
        let target_queue = match &target {
            Overflow::Queue(name) => match self.queue_index.get(name) {
                Some(&idx) => Some(idx),
                // The config check rules this out; keep the call rather than lose it.
                None => return,
            },
            Overflow::Dialplan(_) => None,
        };
        self.actions
            .push_back(AcdAction::Overflow { call: key, target });
        match target_queue {
            None => self.remove_call(key),
            Some(queue_idx) => {
                self.detach(key);
                if let Some(call) = self.calls.get_mut(&key) {
                    call.queue = queue_idx;
                    call.queue_entered_at = now;
                }
                self.attach_waiting(key);
            }
        }
    }

    fn offer_timed_out(&mut self, now: Instant, key: CallKey) {
        let Some(Stage::Ringing { agent, .. }) = self.calls.get(&key).map(|c| c.stage.clone())
        else {
            return;
        };
        self.push_cancel(key, agent, CancelReason::NoAnswer);
        self.return_to_queue(now, key);
        // R6: an agent who lets the phone ring out is set not-ready.
        self.agent_after_offer(
            now,
            agent,
            AgentState::Paused {
                reason: PauseReason::NoAnswer,
            },
        );
    }

    fn max_wait_passed(&mut self, now: Instant, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.max_wait_deadline = None;
        let Some(target) = self.queues[call.queue].config.overflow.clone() else {
            return;
        };
        match call.stage {
            Stage::Waiting => self.overflow(now, key, target),
            Stage::Ringing { .. } => call.overflow_due = Some(target),
            Stage::Connected { .. } => {}
        }
    }

    /// An answered call is over: its agent moves on. O(k·log A + log timers).
    fn end_connected(&mut self, now: Instant, key: CallKey) {
        let Some(Call {
            stage: Stage::Connected { agent, wrap_up, .. },
            ..
        }) = self.calls.remove(&key)
        else {
            return;
        };
        let Some(entry) = self.agent_mut(agent) else {
            return;
        };
        if entry.retired {
            self.drop_agent(now, agent);
            return;
        }
        let after_call = std::mem::replace(&mut entry.after_call, AfterCall::WrapUp);
        let next = match after_call {
            AfterCall::LogOut => AgentState::LoggedOut,
            AfterCall::Pause(reason) => AgentState::Paused { reason },
            AfterCall::WrapUp if wrap_up.is_zero() => AgentState::Available,
            AfterCall::WrapUp => AgentState::WrapUp {
                until: now + wrap_up,
            },
        };
        self.set_state(now, agent, next);
    }

    // ----- matching ------------------------------------------------------------------

    /// Matches what the current input changed: first the calls that became waiting (best
    /// first, each to its queue's best agent), then the agents that became available
    /// (each to the best call across their queues).
    fn match_fresh(&mut self, now: Instant) {
        let mut calls = std::mem::take(&mut self.fresh_calls);
        calls.retain(|key| matches!(self.calls.get(key).map(|c| &c.stage), Some(Stage::Waiting)));
        calls.sort_unstable_by_key(|key| self.calls.get(key).map(Call::order));
        calls.dedup();
        for key in calls {
            if let Some(agent) = self.best_agent_for(key) {
                self.offer(now, key, agent);
            }
        }
        let agents = std::mem::take(&mut self.fresh_agents);
        for idx in agents {
            if let Some(key) = self.best_call_for(idx) {
                self.offer(now, key, idx);
            }
        }
        self.fresh_calls.clear();
        self.fresh_agents.clear();
    }

    /// The first agent in the call's queue order who has not refused it.
    /// O(log A + r): refused agents are skipped one by one.
    fn best_agent_for(&self, key: CallKey) -> Option<AgentIdx> {
        let call = self.calls.get(&key)?;
        if !matches!(call.stage, Stage::Waiting) {
            return None;
        }
        let queue = &self.queues[call.queue];
        let not_refused = |rank: &&Rank| !call.refused.contains(&rank.agent);
        if queue.config.strategy == Strategy::RoundRobin {
            let start = Rank {
                primary: queue.rr_cursor,
                secondary: 0,
                tertiary: 0,
                agent: 0,
            };
            queue
                .available
                .range(start..)
                .chain(queue.available.range(..start))
                .find(not_refused)
                .map(|rank| rank.agent)
        } else {
            queue
                .available
                .iter()
                .find(not_refused)
                .map(|rank| rank.agent)
        }
    }

    /// The call this agent should take: across their queues, the highest priority, then
    /// the earliest arrival, skipping calls they refused. O(k·(log C + r)).
    fn best_call_for(&self, idx: AgentIdx) -> Option<CallKey> {
        let agent = self.agent_ref(idx)?;
        if !agent.can_be_offered() {
            return None;
        }
        agent
            .memberships
            .iter()
            .filter_map(|membership| {
                self.queues[membership.queue]
                    .waiting
                    .iter()
                    .find(|(_, key)| {
                        self.calls
                            .get(key)
                            .is_some_and(|call| !call.refused.contains(&idx))
                    })
                    .map(|(order, key)| (*order, *key))
            })
            .min()
            .map(|(_, key)| key)
    }
}

fn unknown_agent(id: &str) -> AcdError {
    AcdError::UnknownAgent {
        agent: id.to_owned(),
    }
}
