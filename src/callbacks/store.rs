//! The persistence seam for callback tasks (R20): one trait every backend implements,
//! and the error it reports. No I/O here.

use std::path::PathBuf;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{CallbackTask, DialOutcome, TaskId, TaskState};

/// Everything a callback store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CallbackStoreError {
    /// The store could not be opened at `path` (file, pragmas, schema).
    #[error("cannot open callback store at {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The database server could not be reached or refused the login.
    #[error("cannot connect to the callback store: {0}")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The callback tables were written by a newer engine; they are left untouched.
    #[error("callback store schema version {found} is newer than supported version {supported}")]
    UnsupportedSchema { found: i64, supported: i64 },
    /// A statement failed (I/O error, disk full, lost connection).
    #[error("callback store query failed: {0}")]
    Query(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A stored row holds a value this build cannot read back; reported, never guessed.
    #[error("callback {id} has a corrupt {column}: {value:?}")]
    Corrupt {
        id: i64,
        column: &'static str,
        value: String,
    },
    /// The backend is closed or its worker is gone.
    #[error("callback store is closed")]
    Closed,
}

/// Which tasks a listing wants. Filters combine (all must hold).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListFilter {
    /// Only tasks due now: pending, window open, backoff over.
    pub due: bool,
    /// Only overdue tasks: past their latest time and still open.
    pub overdue: bool,
    /// Only tasks owned by this agent.
    pub owner: Option<String>,
    /// At most this many tasks.
    pub limit: usize,
}

impl Default for ListFilter {
    fn default() -> Self {
        ListFilter {
            due: false,
            overdue: false,
            owner: None,
            limit: 100,
        }
    }
}

/// The columns every SQL backend stores and selects, in the order its row reader takes
/// them.
pub(super) const COLUMNS: &str = "id, work_order, number, reason, earliest, latest, owner, \
     queue, attempts, max_attempts, not_before, state, agent, last_outcome, last_status, \
     preemptions, created_at, updated_at";

/// The states a task can still be acted on in.
pub(super) const OPEN_STATES: &str = "state IN ('pending', 'dialing', 'connected')";

/// A [`ListFilter`] as SQL. Its parameters, in order: the current time when `binds_now`,
/// then the filter's owner if it has one.
pub(super) struct ListQuery {
    pub sql: String,
    pub binds_now: bool,
}

impl ListFilter {
    /// The SQL that narrows this filter, with the backend's placeholder for the `n`th
    /// parameter (`$n`, `?n`). Urgent lists come soonest deadline first, others newest
    /// first; the caller still applies [`ListFilter::matches`] and the limit.
    pub(super) fn query(&self, placeholder: fn(usize) -> String) -> ListQuery {
        let urgent = self.due || self.overdue;
        let now = placeholder(1);
        let mut sql = format!("SELECT {COLUMNS} FROM callback_tasks WHERE 1 = 1");
        if urgent {
            sql.push_str(&format!(" AND {OPEN_STATES}"));
        }
        if self.overdue {
            sql.push_str(&format!(" AND latest < {now}"));
        }
        if self.due {
            sql.push_str(&format!(" AND earliest <= {now} AND not_before <= {now}"));
        }
        if self.owner.is_some() {
            let owner = placeholder(if urgent { 2 } else { 1 });
            sql.push_str(&format!(" AND owner = {owner}"));
        }
        sql.push_str(if urgent {
            " ORDER BY latest, id"
        } else {
            " ORDER BY id DESC"
        });
        ListQuery {
            sql,
            binds_now: urgent,
        }
    }

    /// True if `task` passes the due, overdue and owner filters at `now`.
    pub fn matches(&self, task: &CallbackTask, now: DateTime<Utc>) -> bool {
        (!self.due || task.is_due(now))
            && (!self.overdue || task.is_overdue(now))
            && self
                .owner
                .as_deref()
                .is_none_or(|owner| task.owner.as_deref() == Some(owner))
    }
}

/// Where callback tasks are kept. Every method persists before it returns `Ok`, so a
/// task the scheduler was told is saved survives a crash.
#[async_trait]
pub trait CallbackStore: Send + Sync + 'static {
    /// Writes the task as it now is (inserted, or replacing the stored one).
    async fn save(&self, task: &CallbackTask) -> Result<(), CallbackStoreError>;

    async fn get(&self, id: TaskId) -> Result<Option<CallbackTask>, CallbackStoreError>;

    /// Every task not finished (pending, dialing, connected), by id: what
    /// [`super::Scheduler::restore`] takes after a restart.
    async fn open_tasks(&self) -> Result<Vec<CallbackTask>, CallbackStoreError>;

    /// The highest id ever stored, so new ids never repeat one.
    async fn highest_id(&self) -> Result<Option<TaskId>, CallbackStoreError>;

    /// Tasks passing `filter` at `now`: with `due` or `overdue`, the most urgent first
    /// (earliest latest time); otherwise the newest first.
    async fn list(
        &self,
        filter: &ListFilter,
        now: DateTime<Utc>,
    ) -> Result<Vec<CallbackTask>, CallbackStoreError>;
}

/// How a backend stores a task's state: its name, and the agent while dialing or
/// connected.
pub(crate) fn state_parts(state: &TaskState) -> (&'static str, Option<&str>) {
    match state {
        TaskState::Dialing { agent } | TaskState::Connected { agent } => {
            (state.as_str(), Some(agent.as_str()))
        }
        other => (other.as_str(), None),
    }
}

/// Reads back what [`state_parts`] stored; `id` names a corrupt row.
pub(crate) fn state_from_parts(
    id: i64,
    state: &str,
    agent: Option<String>,
) -> Result<TaskState, CallbackStoreError> {
    Ok(match (state, agent) {
        ("pending", _) => TaskState::Pending,
        ("dialing", Some(agent)) => TaskState::Dialing { agent },
        ("connected", Some(agent)) => TaskState::Connected { agent },
        ("done", _) => TaskState::Done,
        ("failed", _) => TaskState::Failed,
        ("cancelled", _) => TaskState::Cancelled,
        _ => {
            return Err(CallbackStoreError::Corrupt {
                id,
                column: "state",
                value: state.to_owned(),
            });
        }
    })
}

/// How a backend stores the last outcome: its name, and the SIP status of a failure.
pub(crate) fn outcome_parts(outcome: Option<DialOutcome>) -> (Option<&'static str>, Option<i32>) {
    match outcome {
        None => (None, None),
        Some(DialOutcome::Failed(status)) => (Some("failed"), Some(i32::from(status))),
        Some(other) => (Some(other.as_str()), None),
    }
}

/// Reads back what [`outcome_parts`] stored; `id` names a corrupt row.
pub(crate) fn outcome_from_parts(
    id: i64,
    outcome: Option<&str>,
    status: Option<i64>,
) -> Result<Option<DialOutcome>, CallbackStoreError> {
    let corrupt =
        |column: &'static str, value: String| CallbackStoreError::Corrupt { id, column, value };
    Ok(match (outcome, status) {
        (None, _) => None,
        (Some("connected"), _) => Some(DialOutcome::Connected),
        (Some("no_answer"), _) => Some(DialOutcome::NoAnswer),
        (Some("busy"), _) => Some(DialOutcome::Busy),
        (Some("failed"), Some(status)) => Some(DialOutcome::Failed(
            u16::try_from(status).map_err(|_| corrupt("last_status", status.to_string()))?,
        )),
        (Some(other), _) => return Err(corrupt("last_outcome", other.to_owned())),
    })
}
