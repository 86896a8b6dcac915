//! What goes into the switch and what comes out of it: the message types of the
//! switch core, defined here with the core rather than in the tasks that carry them.
//! Pure data.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};

use crate::acd::PauseReason;
use crate::config::agents::AgentsConfig;
pub use crate::ivr::CallFlow;
use crate::ivr::{AgentScript, WorkOrderWrite};
use crate::media::prompt::Prompt;
pub use crate::media::session::MediaParams;
use crate::media::vad::VadSettings;
use crate::sip::TransportKind;
use crate::sip::digest::Algorithm;
use crate::sip::transaction::TimerConfig;
use crate::workorder::{CallOutcome, HangupSide, WorkOrder, WorkOrderId};

/// One leg of a call: a SIP dialog with its own media stream. Unique for the switch's
/// life, never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(pub u64);

impl std::fmt::Display for LegId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "leg-{}", self.0)
    }
}

/// An API request's number, echoed in its [`SwitchEvent::Reply`].
pub type CommandId = u64;

/// Bytes for a transport to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub destination: SocketAddr,
    pub transport: TransportKind,
    pub payload: Bytes,
}

/// The call's one recording (R22): left the customer leg, right what it heard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingOrder {
    pub work_order: WorkOrderId,
    pub date: NaiveDate,
    /// Where the file goes: `<root>/<date>/<work-order-id>.wav`.
    pub path: PathBuf,
}

/// Orders for the media runtime, per leg, in the order given.
#[derive(Clone, Debug, PartialEq)]
pub enum MediaOrder {
    /// Take an RTP port for the leg; answered with [`MediaReport::Opened`] or
    /// [`MediaReport::OpenFailed`].
    Open {
        leg: LegId,
    },
    /// Start the leg's stream on its own, paced every 20 ms: prompts or silence out,
    /// the peer's audio and keys in. With `recording`, this leg is the call's customer
    /// leg: left its audio, right what it hears.
    Start {
        leg: LegId,
        params: MediaParams,
        recording: Option<RecordingOrder>,
        /// Listen to the peer for the IVR: voice activity with these settings, and
        /// in-band DTMF tones when the peer negotiated no telephone-events.
        listen: Option<VadSettings>,
    },
    /// Join `leg` (not started on its own) to the stream of `to`: each hears the other,
    /// each in its own codec; prompts on `to` stop.
    Attach {
        leg: LegId,
        to: LegId,
        params: MediaParams,
    },
    /// Take an attached leg out of the stream it joined; it stays open.
    Detach {
        leg: LegId,
    },
    /// The peer moved its RTP or changed codec (re-INVITE).
    Update {
        leg: LegId,
        params: MediaParams,
    },
    /// Hold (`a=sendonly`/`inactive` from the peer): send nothing, keep recording
    /// silence so the file keeps wall-clock time; `false` resumes.
    Hold {
        leg: LegId,
        held: bool,
    },
    /// Play from the start, replacing what plays; `seq` comes back in
    /// [`MediaReport::PlaybackFinished`], so a late report of a replaced prompt is known.
    Play {
        leg: LegId,
        prompt: Arc<Prompt>,
        seq: u64,
    },
    StopPlayback {
        leg: LegId,
    },
    /// End the leg's media: the recording (if any) is finalised; answered with
    /// [`MediaReport::Closed`].
    Close {
        leg: LegId,
    },
}

/// Counters of a leg's media, reported when it closes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MediaCounters {
    pub packets_sent: u64,
    pub packets_received: u64,
    pub frames_dropped_for_recording: u64,
}

/// What the media runtime tells the switch about a leg.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaReport {
    /// The leg's RTP port is bound at `local`.
    Opened { local: SocketAddr },
    /// No RTP port could be bound.
    OpenFailed,
    /// The prompt `seq` playing on the leg ended.
    PlaybackFinished { seq: u64 },
    /// The leg's peer pressed a key (RFC 4733, or an in-band tone).
    Dtmf(char),
    /// The peer started speaking (only on legs started with `listen`).
    VoiceStarted,
    /// The peer has gone quiet.
    VoiceEnded,
    /// No RTP from the leg's peer for the configured time, and not on hold.
    Inactive,
    /// The leg's media has stopped.
    Closed { counters: MediaCounters },
}

/// Work-order writes, in the order the switch made them (R10: as the call happens).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreWrite {
    Create(Box<WorkOrder>),
    Answered {
        id: WorkOrderId,
        at: DateTime<Utc>,
        recording: Option<String>,
    },
    Queued {
        id: WorkOrderId,
        at: DateTime<Utc>,
        queue: String,
    },
    Connected {
        id: WorkOrderId,
        at: DateTime<Utc>,
        agent: String,
    },
    Ended {
        id: WorkOrderId,
        at: DateTime<Utc>,
        side: Option<HangupSide>,
        outcome: CallOutcome,
        /// Why the engine ended an answered call, when it did (no ACK, session timer
        /// expired, maximum length, shutdown), for the log and the work order.
        reason: Option<&'static str>,
    },
    /// A line on a work order's trail: a callback attempt's outcome on the work order
    /// the callback belongs to.
    Note {
        id: WorkOrderId,
        at: DateTime<Utc>,
        text: String,
    },
    /// A callback task as it now is (R20: tasks survive a restart); the task's own
    /// store keeps it, the number in full (R12: only there).
    Callback(Box<crate::callbacks::CallbackTask>),
    /// What the IVR learned about the matter (category, flags, a rating, keys).
    Ivr {
        id: WorkOrderId,
        at: DateTime<Utc>,
        write: WorkOrderWrite,
    },
}

impl StoreWrite {
    pub fn work_order(&self) -> &WorkOrderId {
        match self {
            StoreWrite::Create(order) => &order.id,
            StoreWrite::Answered { id, .. }
            | StoreWrite::Queued { id, .. }
            | StoreWrite::Connected { id, .. }
            | StoreWrite::Ended { id, .. }
            | StoreWrite::Ivr { id, .. }
            | StoreWrite::Note { id, .. } => id,
            StoreWrite::Callback(task) => &task.work_order,
        }
    }
}

/// On the INVITE that rings an agent: the queue the call waited in (with the work
/// order's `X-Hotline-Work-Order`), for the agent's phone or browser desk to show.
pub const OFFER_QUEUE_HEADER: &str = "X-Hotline-Queue";
/// On the INVITE that rings an agent: whole seconds the caller has waited in the ACD.
pub const OFFER_WAITED_HEADER: &str = "X-Hotline-Waited";

/// A change of an agent's state asked through the API or a feature code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentAction {
    Login,
    Logout,
    Pause,
    Resume,
}

impl AgentAction {
    pub fn from_name(name: &str) -> Option<AgentAction> {
        match name {
            "login" => Some(AgentAction::Login),
            "logout" => Some(AgentAction::Logout),
            "pause" => Some(AgentAction::Pause),
            "resume" => Some(AgentAction::Resume),
            _ => None,
        }
    }

    /// The feature code dialled from an agent's softphone for this action.
    pub fn from_feature_code(dialled: &str) -> Option<AgentAction> {
        match dialled {
            "*21" => Some(AgentAction::Login),
            "*22" => Some(AgentAction::Logout),
            "*23" => Some(AgentAction::Pause),
            "*24" => Some(AgentAction::Resume),
            _ => None,
        }
    }

    pub fn pause_reason(self) -> PauseReason {
        PauseReason::Break
    }
}

/// What the API (or the runtime) asks of the switch.
#[derive(Clone, Debug)]
pub enum Command {
    Agent {
        agent: String,
        action: AgentAction,
    },
    /// Every agent and queue.
    Status,
    /// What the wallboard shows: every agent and queue, and the connection rate's
    /// counts since `today_since` (local midnight) and over the rolling 24 h (R5).
    Board {
        today_since: DateTime<Utc>,
    },
    /// Apply a re-read agents file and call flow (R4: calls and agents' states are
    /// kept; calls in progress finish on the dialplan version they started with).
    Reload(Box<Reload>),
    /// An agent hands their caller to one of the dialplan's scripts (R27's no-answer
    /// script, the nuisance warning, the out-of-scope closing): the engine takes the
    /// caller back from the agent.
    AgentScript {
        agent: String,
        script: AgentScript,
    },
    /// Call `destination` for `agent`: the agent's phone first, then the destination,
    /// bridged and recorded like an inbound call (R16–R19 build on this).
    Originate {
        agent: String,
        destination: String,
        /// The number the destination's display shows.
        caller_id: Option<String>,
    },
    /// Create, list, reschedule or cancel callbacks (R17–R20).
    Callbacks(CallbackCommand),
    /// Shutdown, first phase: new INVITEs get `503`.
    StopAccepting,
    /// Shutdown, second phase: every call is hung up (BYE).
    HangUpAll,
    /// Shutdown, last phase: calls still ending are finished now, their work orders
    /// closed, without waiting for their peers.
    Abandon,
}

/// What the API asks of the callbacks.
#[derive(Clone, Debug)]
pub enum CallbackCommand {
    /// A validated new task (the API checked the work order exists).
    Create(crate::callbacks::NewTask),
    /// Open tasks passing the filter, most urgent first.
    List(crate::callbacks::ListFilter),
    Reschedule {
        id: crate::callbacks::TaskId,
        window: crate::callbacks::Window,
    },
    Cancel(crate::callbacks::TaskId),
}

/// The answer to a [`CallbackCommand`].
#[derive(Clone, Debug, PartialEq)]
pub enum CallbackReply {
    Task(Box<Result<crate::callbacks::api::CallbackView, crate::callbacks::CallbackError>>),
    List(Vec<crate::callbacks::api::CallbackView>),
    /// The engine runs without callbacks (no store was opened for them).
    Disabled,
}

/// An agent as the API shows it: the agent number, never a name (R12).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AgentStatus {
    pub id: String,
    pub state: &'static str,
    /// Why paused, if paused.
    pub reason: Option<&'static str>,
    /// Seconds in the current state.
    pub seconds_in_state: Option<u64>,
    pub registered: bool,
    pub calls_taken: u64,
}

/// A queue as the API shows it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct QueueStatus {
    pub name: String,
    pub depth: usize,
    pub ringing: usize,
    pub oldest_wait_seconds: Option<f64>,
    pub agents_available: usize,
}

/// Why a command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Acd(#[from] crate::acd::AcdError),
    /// The agent's phone is not registered, so it cannot be called.
    #[error("agent {0} has no registered phone")]
    NotRegistered(String),
    /// The agent is not available for a call now.
    #[error("agent {agent} is {state}, not available")]
    AgentBusy { agent: String, state: &'static str },
    /// The destination is not a SIP URI the engine can reach.
    #[error("destination {0:?} is not a sip: URI with a numeric host")]
    BadDestination(String),
    /// The engine is shutting down.
    #[error("the engine is shutting down")]
    ShuttingDown,
    /// The engine is at its call limit.
    #[error("the engine is at its call limit")]
    Overloaded,
    /// The agent is not talking to a caller of the hotline.
    #[error("agent {0} is not connected to a caller")]
    NoCall(String),
    /// The dialplan cannot run the script asked for.
    #[error("{0}")]
    Script(String),
}

/// The answer to a command.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    Agent(Result<AgentStatus, CommandError>),
    Status {
        agents: Vec<AgentStatus>,
        queues: Vec<QueueStatus>,
    },
    Board {
        agents: Vec<AgentStatus>,
        queues: Vec<QueueStatus>,
        /// (offered, answered) since local midnight.
        today: (u64, u64),
        /// (offered, answered) over the rolling 24 h.
        rolling_24h: (u64, u64),
        /// Urgent calls and complaints about the hotline since local midnight, oldest
        /// first.
        live: Vec<LiveFact>,
        /// The callback scheduler's figures now, the same the callback metrics publish
        /// (R20); `None` while callbacks are off (no callback store).
        callbacks: Option<crate::callbacks::SchedulerStats>,
    },
    /// The dialplan version new calls take now.
    Reload(Result<u64, CommandError>),
    Script(Result<(), CommandError>),
    /// The work order of the call placed.
    Originated(Result<WorkOrderId, CommandError>),
    Callbacks(CallbackReply),
    Done,
}

/// Something a supervisor must see as it happens (R11, R15): the dialplan marked a call
/// urgent, or a complaint about the hotline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveFact {
    pub at: DateTime<Utc>,
    pub kind: LiveKind,
    pub work_order: WorkOrderId,
    /// The queue the call waits in, once it does.
    pub queue: Option<String>,
    /// Masked (R12).
    pub caller: String,
    /// The agent who took the call, once one did.
    pub agent: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveKind {
    Urgent,
    HotlineComplaint,
}

/// News from the switch for the runtime and the API.
#[derive(Clone, Debug, PartialEq)]
pub enum SwitchEvent {
    Reply {
        id: CommandId,
        reply: Reply,
    },
    /// Calls in progress (admitted and not yet finished).
    ActiveCalls(usize),
}

/// A reload: both files, already read and checked.
#[derive(Clone, Debug)]
pub struct Reload {
    pub agents: AgentsConfig,
    pub flow: CallFlow,
}

/// Prompts the engine plays outside any dialplan (feature-code confirmations) or
/// builds announcements from: a prompts directory must have them.
pub const ENGINE_PROMPTS: &[&str] = &[
    AGENT_LOGGED_IN,
    AGENT_LOGGED_OUT,
    AGENT_PAUSED,
    AGENT_RESUMED,
    FEATURE_FAILED,
    "position-prefix.wav",
    "position-suffix.wav",
    "digit-0.wav",
    "digit-1.wav",
    "digit-2.wav",
    "digit-3.wav",
    "digit-4.wav",
    "digit-5.wav",
    "digit-6.wav",
    "digit-7.wav",
    "digit-8.wav",
    "digit-9.wav",
];

const AGENT_LOGGED_IN: &str = "agent-logged-in.wav";
const AGENT_LOGGED_OUT: &str = "agent-logged-out.wav";
const AGENT_PAUSED: &str = "agent-paused.wav";
const AGENT_RESUMED: &str = "agent-resumed.wav";
const FEATURE_FAILED: &str = "feature-failed.wav";

impl AgentAction {
    /// The prompt a feature code confirms with.
    pub fn confirmation_prompt(self, succeeded: bool) -> &'static str {
        match (succeeded, self) {
            (false, _) => FEATURE_FAILED,
            (true, AgentAction::Login) => AGENT_LOGGED_IN,
            (true, AgentAction::Logout) => AGENT_LOGGED_OUT,
            (true, AgentAction::Pause) => AGENT_PAUSED,
            (true, AgentAction::Resume) => AGENT_RESUMED,
        }
    }
}

/// The settings the switch decides with, taken from the config.
#[derive(Clone, Debug)]
pub struct SwitchSettings {
    /// The address written into Via, Contact and SDP.
    pub advertised_ip: IpAddr,
    /// Our SIP port per transport (Via, Contact).
    pub udp_port: Option<u16>,
    pub tcp_port: Option<u16>,
    pub timers: TimerConfig,
    pub max_concurrent: usize,
    pub ring_before_answer: Duration,
    pub ring_budget: Duration,
    pub max_call_length: Duration,
    pub retry_after: Duration,
    pub default_queue: String,
    pub agent_ring_timeout: Duration,
    pub realm: String,
    pub min_expires: Duration,
    pub max_expires: Duration,
    pub default_expires: Duration,
    pub nonce_lifetime: Duration,
    pub digest_algorithms: Vec<Algorithm>,
    /// Seals digest nonces; from the operating system's generator at start.
    pub digest_secret: [u8; 32],
    /// Where recordings go (`<root>/<date>/<id>.wav`).
    pub recordings_root: PathBuf,
    /// A feature-code confirmation that has not finished by then is cut short.
    pub feature_prompt_limit: Duration,
    /// RFC 4028 session timers: our Min-SE and the interval we ask for.
    pub session_timers: crate::sip::session_timer::SessionTimerConfig,
    /// Who may send calls in (R29).
    pub trunks: crate::sip::trunk::TrunkPolicy,
    /// RFC 2069 (no-qop) digest answers accepted, each nonce once (`[security]`).
    pub digest_allow_rfc2069: bool,
    /// The failed-authentication throttle (`[security]`).
    pub auth_guard: crate::sip::auth_guard::GuardSettings,
}

impl SwitchSettings {
    pub fn from_config(config: &crate::config::Config, digest_secret: [u8; 32]) -> SwitchSettings {
        SwitchSettings {
            advertised_ip: config.sip.advertised_ip,
            udp_port: config.sip.listen_udp.map(|a| a.port()),
            tcp_port: config.sip.listen_tcp.map(|a| a.port()),
            timers: TimerConfig {
                t1: config.sip.t1,
                t2: config.sip.t2,
                t4: config.sip.t4,
            },
            max_concurrent: config.calls.max_concurrent,
            ring_before_answer: config.calls.ring_before_answer,
            ring_budget: config.calls.ring_budget,
            max_call_length: config.calls.max_call_length,
            retry_after: config.calls.retry_after,
            default_queue: config.acd.default_queue.clone(),
            agent_ring_timeout: config.acd.agent_ring_timeout,
            realm: config.registrar.realm.clone(),
            min_expires: config.registrar.min_expires,
            max_expires: config.registrar.max_expires,
            default_expires: config.registrar.default_expires,
            nonce_lifetime: config.registrar.nonce_lifetime,
            digest_algorithms: config.registrar.digest_algorithms.clone(),
            digest_secret,
            recordings_root: config.recordings.dir.clone(),
            feature_prompt_limit: Duration::from_secs(10),
            session_timers: crate::sip::session_timer::SessionTimerConfig::default(),
            trunks: crate::sip::trunk::TrunkPolicy::new(config.trunks.clone()),
            digest_allow_rfc2069: config.security.digest_allow_rfc2069,
            auth_guard: config.security.guard_settings(),
        }
    }

    /// The engine's defaults on a loopback address (`127.0.0.1:port`), every caller on
    /// 127.0.0.0/8 admitted as a trunk: the settings the switch's own tests and the
    /// simulation run with. RFC 3261 timers, a 2 s ring before the IVR answers inside a
    /// 10 s budget (R6), agents rung for 10 s, queue `general`.
    pub fn loopback(port: u16) -> SwitchSettings {
        SwitchSettings {
            advertised_ip: IpAddr::from([127, 0, 0, 1]),
            udp_port: Some(port),
            tcp_port: Some(port),
            timers: TimerConfig::default(),
            max_concurrent: 100,
            ring_before_answer: Duration::from_secs(2),
            ring_budget: Duration::from_secs(10),
            max_call_length: Duration::from_secs(3600),
            retry_after: Duration::from_secs(5),
            default_queue: "general".into(),
            agent_ring_timeout: Duration::from_secs(10),
            realm: "hotline".into(),
            min_expires: Duration::from_secs(60),
            max_expires: Duration::from_secs(3600),
            default_expires: Duration::from_secs(600),
            nonce_lifetime: Duration::from_secs(300),
            digest_algorithms: vec![Algorithm::Md5],
            digest_secret: [7; 32],
            recordings_root: "recordings".into(),
            feature_prompt_limit: Duration::from_secs(10),
            session_timers: Default::default(),
            trunks: crate::sip::trunk::TrunkPolicy::new(vec![crate::sip::trunk::Trunk {
                name: "loopback".into(),
                allow: vec![crate::sip::trunk::Cidr::loopback_v4()],
                credentials: None,
            }]),
            digest_allow_rfc2069: false,
            auth_guard: crate::config::security::SecurityConfig::default().guard_settings(),
        }
    }

    /// Our SIP port for a transport (5060 when we do not listen on it).
    pub fn local_port(&self, transport: TransportKind) -> u16 {
        match transport {
            TransportKind::Udp => self.udp_port,
            TransportKind::Tcp => self.tcp_port,
        }
        .unwrap_or(5060)
    }
}
