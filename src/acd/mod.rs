//! The automatic call distributor (ACD): queues, agents, routing strategies, the agent
//! ring timeout and overflow. Pure: one [`Acd`] is fed `(now, input)` by its driver (an
//! actor task in the engine), queues [`AcdAction`]s for it and names its next deadline.
//! It never touches a socket or the clock.
//!
//! # How the driver uses it
//! - Feed what happened: [`Acd::enqueue`], [`Acd::abandon`], [`Acd::offer_answered`],
//!   [`Acd::offer_failed`], [`Acd::call_ended`], agent changes ([`Acd::login`],
//!   [`Acd::logout`], [`Acd::pause`], [`Acd::resume`], [`Acd::set_registered`]) and
//!   [`Acd::reload`].
//! - After each input, drain [`Acd::poll_action`] and carry the actions out in order:
//!   `Offer` rings the agent's softphone (a second leg), `CancelOffer` CANCELs it,
//!   `Overflow` takes the call on to another queue (informational: the core has already
//!   moved it) or to a dialplan step (the call has left the ACD).
//! - Sleep until [`Acd::poll_timeout`], then call [`Acd::handle_timeout`].
//!
//! # Decisions the requirements leave open
//! - **Fairness across queues**: an agent who serves several queues takes the waiting
//!   call with the highest priority; among equal priorities the one that entered the
//!   ACD first (a global arrival sequence, so there is never a tie and the choice is
//!   deterministic). Queue order in the config plays no part.
//! - **Keeping its place**: a call whose offer failed (no answer, refusal, unreachable
//!   phone, agent gone) goes back to exactly where it was: its arrival sequence never
//!   changes, so it stays ahead of every later call of its priority.
//! - **Overflow to a queue** keeps the call's arrival sequence (its place is set by how
//!   long the caller has really waited) and its original enqueue time for wait metrics;
//!   its max wait in the new queue counts from the move. Overflow chains are allowed,
//!   cycles are refused by the config check. A queue without an overflow target has no
//!   wait limit: its `max_wait` is not used.
//! - **Max wait while an agent's phone rings**: the offer is not cut; if it fails, the
//!   call overflows instead of going back to the queue.
//! - **Refusal** (486/603 from the phone): the agent stays available for other calls,
//!   and this call is never offered to that agent again.
//! - **Unreachable phone** (408, 503, transaction timeout): the agent is logged out; the
//!   registration flag is left to the registrar, which owns it.
//! - **No answer within the ring timeout** (R6): the offer is cancelled, the agent is
//!   paused with reason `no_answer`, the call goes to the next agent.
//! - **Agents changing while busy**: logging out, pausing or un-registering while an
//!   offer rings cancels the offer; while on a call it takes effect when the call ends
//!   (a pause then skips wrap-up). An agent whose phone is not registered is never
//!   offered a call; a registration lapsing logs the agent out.
//! - **The reserve for due callbacks** (R9's one exception, off unless the driver sets
//!   [`Acd::set_callback_hold`]): an agent who finishes a call may be *held* instead of
//!   being offered the next waiting call, so the callback scheduler can claim them
//!   first. The ACD only holds and releases; whether a callback is due enough is the
//!   scheduler's call, and the switch asks it. Holding happens at the moment the agent
//!   is freed, inside the same input, because afterwards the agent would already ring
//!   for a waiting call: a mark set later by the scheduler could not win that race.
//! - **Reload** (R4) keeps every agent's state and every call. Removed agents finish the
//!   offer or call they have, then are gone. A removed queue's calls follow that queue's
//!   overflow target when it survives the reload (a queue in the new config, or a
//!   dialplan step; a call ringing an agent is then cancelled, since it is leaving the
//!   ACD); when it has calls and no surviving target, the reload is refused and nothing
//!   changes, so no call is lost. New agents start logged out and unregistered.

mod config;
mod core;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use self::core::Acd;
pub use config::{AcdConfig, AgentConfig, Overflow, QueueConfig, Strategy};

use std::time::{Duration, Instant};

/// The driver's id for a call.
pub type CallKey = u64;

/// How long an agent's phone rings before the call moves on (R6), unless configured.
pub const DEFAULT_AGENT_RING_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an agent is paused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PauseReason {
    /// Set by the core: the agent let an offer ring past the ring timeout (R6).
    NoAnswer,
    /// The agent asked for a break.
    Break,
    /// A supervisor paused the agent.
    Supervisor,
}

impl PauseReason {
    /// A low-cardinality label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            PauseReason::NoAnswer => "no_answer",
            PauseReason::Break => "break",
            PauseReason::Supervisor => "supervisor",
        }
    }
}

/// Where an agent stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentState {
    LoggedOut,
    /// Ready for a call (offered one only while the phone is registered).
    Available,
    /// An offer of `call` is ringing the agent's phone.
    Reserved {
        call: CallKey,
    },
    /// Talking on `call`.
    OnCall {
        call: CallKey,
    },
    /// After-call work until `until`, then available.
    WrapUp {
        until: Instant,
    },
    Paused {
        reason: PauseReason,
    },
}

impl AgentState {
    /// A low-cardinality label for metrics and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            AgentState::LoggedOut => "logged_out",
            AgentState::Available => "available",
            AgentState::Reserved { .. } => "reserved",
            AgentState::OnCall { .. } => "on_call",
            AgentState::WrapUp { .. } => "wrap_up",
            AgentState::Paused { .. } => "paused",
        }
    }
}

/// Why an offer is withdrawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelReason {
    /// The phone rang past the agent ring timeout (R6).
    NoAnswer,
    /// The caller hung up.
    CallerGone,
    /// The agent logged out, paused or un-registered while the phone rang.
    AgentLeft,
    /// A reload removed the call's queue and sent its calls to a dialplan step.
    QueueRemoved,
}

/// How the driver saw an offer fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OfferFailure {
    /// The phone declined (486 Busy Here, 603 Decline): the agent stays available, but
    /// this call is not offered to them again.
    Refused,
    /// The phone is gone (408, 503, transaction timeout): the agent is logged out.
    Unreachable,
}

/// What the driver must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcdAction {
    /// Ring `agent`'s softphone for `call`. Answer with [`Acd::offer_answered`] or
    /// [`Acd::offer_failed`].
    Offer { call: CallKey, agent: String },
    /// Withdraw the offer: CANCEL the INVITE to the agent's phone. A 200 OK that
    /// crosses the CANCEL is refused by [`Acd::offer_answered`]; hang that leg up.
    CancelOffer {
        call: CallKey,
        agent: String,
        reason: CancelReason,
    },
    /// The call reached its queue's overflow. For a queue target the core has moved it
    /// already (announce it if you like); for a dialplan step it has left the ACD and the
    /// driver takes it to that step.
    Overflow { call: CallKey, target: Overflow },
    /// `agent` answered `call` and owns its work order (R7).
    Connected { call: CallKey, agent: String },
    /// An agent's state changed, for metrics and logs.
    AgentStateChanged { agent: String, state: AgentState },
}

/// Where a call stands inside the ACD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallStage {
    /// Waiting; `position` 1 is the next call of its queue.
    Waiting { position: usize },
    /// An offer rings `agent`'s phone.
    Ringing { agent: String },
    /// Answered by `agent`.
    Connected { agent: String },
}

/// A call, as the queries see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallView {
    pub queue: String,
    pub priority: u8,
    /// When the call first entered the ACD (overflow keeps it).
    pub enqueued_at: Instant,
    pub stage: CallStage,
}

/// An agent, as the queries see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentView {
    pub id: String,
    pub state: AgentState,
    /// When the agent entered `state`; `None` if it never changed since start-up.
    pub since: Option<Instant>,
    pub registered: bool,
    /// Calls answered since start-up (kept across reloads).
    pub calls_taken: u64,
    /// Queues the agent serves and is skilled enough for.
    pub queues: Vec<String>,
    /// False once a reload removed the agent: it finishes its call, then is gone.
    pub configured: bool,
}

/// One queue's figures for metrics (R30) and announcements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueStats {
    pub name: String,
    /// Calls not yet answered: waiting plus ringing an agent.
    pub depth: usize,
    /// Of those, calls whose offer rings an agent now.
    pub ringing: usize,
    /// How long the longest-waiting unanswered call has waited.
    pub oldest_wait: Option<Duration>,
    /// Agents who could be offered a call of this queue right now.
    pub agents_available: usize,
}

/// How many agents are in each state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentCounts {
    pub logged_out: usize,
    pub available: usize,
    pub reserved: usize,
    pub on_call: usize,
    pub wrap_up: usize,
    pub paused: usize,
}

/// What the ACD refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AcdError {
    /// Two agents have the same agent number.
    #[error("agent {agent} is configured twice")]
    DuplicateAgent { agent: String },
    /// Two queues have the same name.
    #[error("queue {queue} is configured twice")]
    DuplicateQueue { queue: String },
    /// An agent serves a queue that is not configured.
    #[error("agent {agent} serves queue {queue}, which is not configured")]
    AgentInUnknownQueue { agent: String, queue: String },
    /// A queue overflows to a queue that is not configured.
    #[error("queue {queue} overflows to queue {target}, which is not configured")]
    OverflowToUnknownQueue { queue: String, target: String },
    /// Following overflow targets from this queue comes back to it.
    #[error("queue {queue} overflows in a cycle back to itself")]
    OverflowCycle { queue: String },
    /// A skill level (of an agent, or a queue's minimum) is outside 1..=10.
    #[error("skill {skill} of {owner} has level {level}; levels go from 1 to 10")]
    SkillLevelOutOfRange {
        owner: String,
        skill: String,
        level: u8,
    },
    /// The agent ring timeout is zero.
    #[error("the agent ring timeout must be longer than zero")]
    ZeroRingTimeout,
    /// A reload removes a queue that has calls, and its overflow target does not survive.
    #[error("queue {queue} still has calls and its overflow target is not in the new config")]
    RemovedQueueHasCalls { queue: String },
    /// No configured agent has this number.
    #[error("no agent {agent}")]
    UnknownAgent { agent: String },
    /// No configured queue has this name.
    #[error("no queue {queue}")]
    UnknownQueue { queue: String },
    /// The ACD does not hold this call.
    #[error("no call {call}")]
    UnknownCall { call: CallKey },
    /// The call is in the ACD already.
    #[error("call {call} is queued already")]
    DuplicateCall { call: CallKey },
    /// The call is not being offered to this agent (the offer was cancelled or never made).
    #[error("call {call} is not being offered to agent {agent}")]
    NoSuchOffer { call: CallKey, agent: String },
    /// The agent must log in first.
    #[error("agent {agent} is logged out")]
    NotLoggedIn { agent: String },
    /// The agent cannot take a call now (not available, or the phone not registered).
    #[error("agent {agent} is not available for a call ({state})")]
    NotAvailable { agent: String, state: &'static str },
}
