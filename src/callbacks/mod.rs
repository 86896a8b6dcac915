//! Callbacks (回访): follow-up calls with a due window, retries, an overdue state and
//! inbound-first blending (R7, R9, R16–R20).
//!
//! - [`core`]: the scheduler, pure and sans-IO: fed `(now, input)` with wall-clock
//!   times given by its driver (windows last days and survive restarts, so they are
//!   UTC times, not `Instant`s), it decides which task to dial with which agent, and
//!   when; its outputs are drained with [`Scheduler::poll_output`].
//! - [`store`]: the persistence seam ([`CallbackStore`]); [`sqlite`] its embedded
//!   backend beside the work orders, doing blocking file I/O off the async workers;
//!   [`postgres`] the PostgreSQL backend (network I/O, tokio).
//! - [`api`]: the HTTP layer's request and response types and their validation (pure).
//! - [`metrics`]: the callback metrics (R30), through the `metrics` facade.
//!
//! The task types below are shared by all of them. A citizen's number lives in full only
//! in the task and the store; `Debug` and `Display` of a [`PhoneNumber`] mask it (R12).

pub mod api;
pub mod core;
pub mod metrics;
pub mod postgres;
pub mod sqlite;
pub mod store;

#[doc(hidden)]
pub mod conformance;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::workorder::WorkOrderId;

pub use self::core::{AgentPool, DialOrder, NewTask, Output, Scheduler, SchedulerStats};
pub use store::{CallbackStore, CallbackStoreError, ListFilter};

/// The header on the INVITE to the agent's phone naming the callback's work order, so
/// the softphone can show it.
pub const WORK_ORDER_HEADER: &str = "X-Hotline-Work-Order";

/// Identifies a callback task; assigned by the [`Scheduler`], never reused (a restored
/// scheduler continues after the highest stored id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(pub u64);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cb-{}", self.0)
    }
}

/// Why the hotline calls back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// R17: 20–30 min after a referral, did the enterprise get in touch?
    ReferralCheck,
    /// R18: 1–2 days later, the caller's evaluation.
    Evaluation,
    /// R19: a complaint, called back at once by its owner.
    Complaint,
    /// The caller hung up while queued.
    MissedCall,
    /// Asked for by an agent or supervisor (R16's enterprise calls among them).
    Manual,
}

impl Reason {
    pub const ALL: [Reason; 5] = [
        Reason::ReferralCheck,
        Reason::Evaluation,
        Reason::Complaint,
        Reason::MissedCall,
        Reason::Manual,
    ];

    /// What the agent's softphone shows (in the display name of the callback's call).
    pub fn label(self) -> &'static str {
        match self {
            Reason::ReferralCheck => "转办回访",
            Reason::Evaluation => "满意度回访",
            Reason::Complaint => "投诉回访",
            Reason::MissedCall => "未接回拨",
            Reason::Manual => "回访",
        }
    }

    /// The snake_case name used in the API, the store and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ReferralCheck => "referral_check",
            Reason::Evaluation => "evaluation",
            Reason::Complaint => "complaint",
            Reason::MissedCall => "missed_call",
            Reason::Manual => "manual",
        }
    }
}

impl FromStr for Reason {
    type Err = CallbackError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reason::ALL
            .into_iter()
            .find(|reason| reason.as_str() == s)
            .ok_or_else(|| CallbackError::UnknownReason(s.to_owned()))
    }
}

/// When a task is due: from `earliest` to `latest` (inclusive); past `latest` and not
/// finished, it is overdue (R20).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub earliest: DateTime<Utc>,
    pub latest: DateTime<Utc>,
}

impl Window {
    /// A window; `latest` before `earliest` is refused.
    pub fn new(earliest: DateTime<Utc>, latest: DateTime<Utc>) -> Result<Window, CallbackError> {
        if latest < earliest {
            return Err(CallbackError::WindowInverted { earliest, latest });
        }
        Ok(Window { earliest, latest })
    }
}

/// Digits in a phone number, after an optional `+`: short service numbers (95588) to
/// the longest international numbers (E.164 allows 15; some trunks prefix more).
const PHONE_DIGITS: std::ops::RangeInclusive<usize> = 5..=20;

/// A number to dial: an optional leading `+` and 5–20 digits. Spaces, `-`, `.` and
/// parentheses are accepted on input and dropped. Prints masked (R12); the full digits
/// come only from [`PhoneNumber::dial_string`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// The full number, for the dial string and the store only.
    pub fn dial_string(&self) -> &str {
        &self.0
    }

    /// The number masked for logs, metrics and API answers (R12).
    pub fn masked(&self) -> String {
        crate::privacy::mask_number(&self.0)
    }

    /// The national significant number: without a `+86` / `0086` country prefix, so a
    /// caller seen as `+8613812345678` on one call and `13812345678` on the next is
    /// recognised as the same subscriber.
    fn subscriber(&self) -> &str {
        let s = self.0.as_str();
        s.strip_prefix("+86")
            .or_else(|| s.strip_prefix("0086"))
            .unwrap_or(s)
    }

    /// True if both numbers reach the same subscriber.
    pub fn same_subscriber(&self, other: &PhoneNumber) -> bool {
        self.subscriber() == other.subscriber()
    }
}

impl FromStr for PhoneNumber {
    type Err = CallbackError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let invalid = || CallbackError::InvalidNumber {
            masked: crate::privacy::mask_number(input.trim()),
        };
        let cleaned: String = input
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let digits = cleaned.strip_prefix('+').unwrap_or(&cleaned);
        if !digits.bytes().all(|b| b.is_ascii_digit()) || !PHONE_DIGITS.contains(&digits.len()) {
            return Err(invalid());
        }
        Ok(PhoneNumber(cleaned))
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// How one dial of the citizen (or enterprise) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialOutcome {
    /// 200 OK: agent and citizen are bridged.
    Connected,
    /// Rang out (the driver's ring limit, 408 or 480).
    NoAnswer,
    /// 486 / 600 Busy.
    Busy,
    /// Any other final failure, with its SIP status (0 when no response came).
    Failed(u16),
}

impl DialOutcome {
    /// The low-cardinality label for `hotline_callback_attempts_total{outcome}`.
    pub fn as_str(self) -> &'static str {
        match self {
            DialOutcome::Connected => "connected",
            DialOutcome::NoAnswer => "no_answer",
            DialOutcome::Busy => "busy",
            DialOutcome::Failed(_) => "failed",
        }
    }

    /// A failure that a retry cannot mend: the number does not exist (404, 484, 604)
    /// or the callee refuses for good (603 is a decline of this call, so it is retried).
    fn is_permanent(self) -> bool {
        matches!(self, DialOutcome::Failed(404 | 410 | 484 | 604))
    }
}

/// Where a task stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// Waiting for its window, its backoff, or a free agent.
    Pending,
    /// `agent`'s phone, then the citizen's, ring for it.
    Dialing { agent: String },
    /// Agent and citizen are talking; never cut (R9).
    Connected { agent: String },
    /// Reached: the call took place.
    Done,
    /// Out of attempts, or a number that cannot be reached; see `last_outcome`.
    Failed,
    /// Taken back by a user, or a missed call whose caller got through by themselves.
    Cancelled,
}

impl TaskState {
    /// The snake_case name used in the API, the store and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Dialing { .. } => "dialing",
            TaskState::Connected { .. } => "connected",
            TaskState::Done => "done",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
        }
    }

    /// Done, failed or cancelled: nothing more will happen to the task.
    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            TaskState::Done | TaskState::Failed | TaskState::Cancelled
        )
    }
}

/// One follow-up call to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallbackTask {
    pub id: TaskId,
    /// The work order the callback belongs to; its outcome goes there.
    pub work_order: WorkOrderId,
    /// Whom to call: the caller, or an enterprise (R16).
    pub number: PhoneNumber,
    pub reason: Reason,
    pub window: Window,
    /// The agent who owns the work order (R7) and gets the task first; `None` for a
    /// missed call, which any agent of `queue` may take.
    pub owner: Option<String>,
    /// Agents serving this queue may take the task once the owner's grace is over.
    pub queue: String,
    /// Citizen legs dialled so far.
    pub attempts: u32,
    pub max_attempts: u32,
    /// Not dialled before this (backoff after a failed attempt).
    pub not_before: DateTime<Utc>,
    pub state: TaskState,
    /// How the last attempt ended.
    pub last_outcome: Option<DialOutcome>,
    /// Times the attempt in progress was abandoned for an inbound call (R9).
    pub preemptions: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl CallbackTask {
    /// Past its latest time and still open (pending or dialing): R20's overdue. A
    /// connected task is being done, a finished one is over (a failed one shows as
    /// `failed`, not as overdue).
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        now > self.window.latest
            && matches!(self.state, TaskState::Pending | TaskState::Dialing { .. })
    }

    /// Pending, its window open and its backoff over: it would be dialled now if an
    /// agent were free.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.state == TaskState::Pending && now >= self.window.earliest && now >= self.not_before
    }
}

/// What the callback layer refuses. The HTTP layer maps each to a JSON 4xx (see
/// [`CallbackError::http_status`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// A due window whose latest time is before its earliest.
    #[error("the window's latest time {latest} is before its earliest time {earliest}")]
    WindowInverted {
        earliest: DateTime<Utc>,
        latest: DateTime<Utc>,
    },
    /// A time that is not RFC 3339 (`2026-12-01T15:30:00Z`).
    #[error("{field} {value:?} is not an RFC 3339 time such as 2026-12-01T15:30:00Z")]
    InvalidTime { field: &'static str, value: String },
    /// Not a phone number (shown masked, R12).
    #[error("{masked:?} is not a phone number: expected an optional + and 5 to 20 digits")]
    InvalidNumber { masked: String },
    /// Not a well-formed work order id.
    #[error("{0:?} is not a work order id")]
    InvalidWorkOrder(String),
    /// No such work order in the store.
    #[error("no work order {0}")]
    UnknownWorkOrder(WorkOrderId),
    /// A reason the API does not know.
    #[error(
        "unknown reason {0:?}: expected referral_check, evaluation, complaint, missed_call or manual"
    )]
    UnknownReason(String),
    /// An empty owner agent or queue name.
    #[error("{0} must not be empty")]
    Empty(&'static str),
    /// Not a task id (`cb-12` or `12`).
    #[error("{0:?} is not a callback id such as cb-12")]
    InvalidTaskId(String),
    /// The scheduler holds no open task with this id.
    #[error("no open callback {0}")]
    UnknownTask(TaskId),
    /// The input needs the task dialing (or, for `Connected`, just preempted).
    #[error("callback {task} is {state}, not dialing")]
    NotDialing { task: TaskId, state: &'static str },
    /// `call_ended` for a task that is not connected.
    #[error("callback {task} is {state}, not connected")]
    NotConnected { task: TaskId, state: &'static str },
    /// The task is connected: it is never cut (R9), and its window no longer matters.
    #[error("callback {task} is connected and cannot be changed")]
    Connected { task: TaskId },
}

impl CallbackError {
    /// The HTTP status the API answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            CallbackError::UnknownTask(_) => 404,
            CallbackError::NotDialing { .. }
            | CallbackError::NotConnected { .. }
            | CallbackError::Connected { .. } => 409,
            CallbackError::InvalidNumber { .. }
            | CallbackError::InvalidTime { .. }
            | CallbackError::InvalidWorkOrder(_)
            | CallbackError::InvalidTaskId(_)
            | CallbackError::UnknownReason(_)
            | CallbackError::Empty(_) => 400,
            CallbackError::WindowInverted { .. } | CallbackError::UnknownWorkOrder(_) => 422,
        }
    }
}
