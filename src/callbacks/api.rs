//! Request and response types of the callback API (create, list, reschedule, cancel)
//! and their validation. Pure: the HTTP layer deserialises a request, validates it
//! here, hands the result to the scheduler (through the switch's command handle), and
//! answers a [`CallbackError`] with `error.http_status()` and [`ErrorBody`]. Nothing is
//! stored for a request that fails validation.
//!
//! Numbers in answers are masked (R12); times are RFC 3339 UTC text.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::core::{NewTask, default_window};
use super::store::ListFilter;
use super::{
    CallbackError, CallbackTask, DialOutcome, PhoneNumber, Reason, TaskId, TaskState, Window,
};
use crate::config::callbacks::CallbacksConfig;
use crate::workorder::WorkOrderId;

/// The most tasks one listing returns.
pub const MAX_LIST_LIMIT: usize = 1000;

/// `POST /callbacks`: a callback on a work order. Without `earliest` and `latest` the
/// reason's default window applies; with only `latest`, the window opens now; with only
/// `earliest`, it is as long as the reason's default window.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateCallbackRequest {
    pub work_order: String,
    /// The caller's or an enterprise's number.
    pub number: String,
    /// `referral_check`, `evaluation`, `complaint`, `missed_call` or `manual`.
    pub reason: String,
    pub earliest: Option<String>,
    pub latest: Option<String>,
    /// The owner agent (R7); usually the agent asking.
    pub owner: Option<String>,
    /// Whose agents may take it after the owner's grace; the default queue if absent.
    pub queue: Option<String>,
}

impl CreateCallbackRequest {
    /// The work order id, checked for form only: look it up in the store, then pass
    /// the answer to [`CreateCallbackRequest::validate`].
    pub fn work_order_id(&self) -> Result<WorkOrderId, CallbackError> {
        self.work_order
            .trim()
            .parse()
            .map_err(|_| CallbackError::InvalidWorkOrder(self.work_order.clone()))
    }

    /// Checks everything: the work order's form and (through `work_order_exists`) its
    /// existence, the number, the reason, the window. `now` opens default windows.
    pub fn validate(
        &self,
        now: DateTime<Utc>,
        settings: &CallbacksConfig,
        default_queue: &str,
        work_order_exists: impl FnOnce(&WorkOrderId) -> bool,
    ) -> Result<NewTask, CallbackError> {
        let work_order = self.work_order_id()?;
        let number: PhoneNumber = self.number.parse()?;
        let reason: Reason = self.reason.trim().parse()?;
        let earliest = optional_time("earliest", self.earliest.as_deref())?;
        let latest = optional_time("latest", self.latest.as_deref())?;
        let window = match (earliest, latest) {
            (None, None) => None,
            (Some(earliest), Some(latest)) => Some(Window::new(earliest, latest)?),
            (None, Some(latest)) => Some(Window::new(now, latest)?),
            (Some(earliest), None) => {
                let default = default_window(settings, reason, now);
                Some(Window::new(
                    earliest,
                    earliest + (default.latest - default.earliest),
                )?)
            }
        };
        let owner = non_empty("owner", self.owner.as_deref())?;
        let queue =
            non_empty("queue", self.queue.as_deref())?.unwrap_or_else(|| default_queue.to_owned());
        if !work_order_exists(&work_order) {
            return Err(CallbackError::UnknownWorkOrder(work_order));
        }
        Ok(NewTask {
            work_order,
            number,
            reason,
            window,
            owner,
            queue,
        })
    }
}

/// `PATCH /callbacks/{id}`: a new window.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RescheduleRequest {
    pub earliest: String,
    pub latest: String,
}

impl RescheduleRequest {
    pub fn validate(&self) -> Result<Window, CallbackError> {
        Window::new(
            time("earliest", &self.earliest)?,
            time("latest", &self.latest)?,
        )
    }
}

/// `GET /callbacks?due=true&overdue=true&owner=1001&limit=50`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListCallbacksQuery {
    #[serde(default)]
    pub due: bool,
    #[serde(default)]
    pub overdue: bool,
    pub owner: Option<String>,
    pub limit: Option<usize>,
}

impl ListCallbacksQuery {
    pub fn to_filter(&self) -> Result<ListFilter, CallbackError> {
        Ok(ListFilter {
            due: self.due,
            overdue: self.overdue,
            owner: non_empty("owner", self.owner.as_deref())?,
            limit: self
                .limit
                .unwrap_or(ListFilter::default().limit)
                .min(MAX_LIST_LIMIT),
        })
    }
}

/// A task id from a path: `cb-12` or `12`.
pub fn parse_task_id(text: &str) -> Result<TaskId, CallbackError> {
    let digits = text.strip_prefix("cb-").unwrap_or(text);
    digits
        .parse::<u64>()
        .map(TaskId)
        .map_err(|_| CallbackError::InvalidTaskId(text.to_owned()))
}

/// A task as the API shows it. The number is masked (R12).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CallbackView {
    pub id: String,
    pub work_order: String,
    pub number: String,
    pub reason: &'static str,
    pub earliest: String,
    pub latest: String,
    pub owner: Option<String>,
    pub queue: String,
    pub state: &'static str,
    /// The agent dialing or talking, while the task is dialing or connected.
    pub agent: Option<String>,
    pub due: bool,
    pub overdue: bool,
    pub attempts: u32,
    pub max_attempts: u32,
    pub last_outcome: Option<&'static str>,
    /// The SIP status of the last failed attempt.
    pub last_status: Option<u16>,
    pub preemptions: u32,
}

impl CallbackView {
    pub fn new(task: &CallbackTask, now: DateTime<Utc>) -> CallbackView {
        CallbackView {
            id: task.id.to_string(),
            work_order: task.work_order.to_string(),
            number: task.number.masked(),
            reason: task.reason.as_str(),
            earliest: time_text(task.window.earliest),
            latest: time_text(task.window.latest),
            owner: task.owner.clone(),
            queue: task.queue.clone(),
            state: task.state.as_str(),
            agent: match &task.state {
                TaskState::Dialing { agent } | TaskState::Connected { agent } => {
                    Some(agent.clone())
                }
                _ => None,
            },
            due: task.is_due(now),
            overdue: task.is_overdue(now),
            attempts: task.attempts,
            max_attempts: task.max_attempts,
            last_outcome: task.last_outcome.map(DialOutcome::as_str),
            last_status: match task.last_outcome {
                Some(DialOutcome::Failed(status)) => Some(status),
                _ => None,
            },
            preemptions: task.preemptions,
        }
    }
}

/// The JSON body of a refused request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ErrorBody {
    pub error: String,
}

impl From<&CallbackError> for ErrorBody {
    fn from(e: &CallbackError) -> Self {
        ErrorBody {
            error: e.to_string(),
        }
    }
}

fn time(field: &'static str, value: &str) -> Result<DateTime<Utc>, CallbackError> {
    DateTime::parse_from_rfc3339(value.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| CallbackError::InvalidTime {
            field,
            value: value.to_owned(),
        })
}

fn optional_time(
    field: &'static str,
    value: Option<&str>,
) -> Result<Option<DateTime<Utc>>, CallbackError> {
    value.map(|v| time(field, v)).transpose()
}

fn non_empty(field: &'static str, value: Option<&str>) -> Result<Option<String>, CallbackError> {
    match value.map(str::trim) {
        None => Ok(None),
        Some("") => Err(CallbackError::Empty(field)),
        Some(v) => Ok(Some(v.to_owned())),
    }
}

fn time_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}
