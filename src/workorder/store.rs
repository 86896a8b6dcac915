//! The storage seam for work orders (R31): one trait every backend implements, and the
//! error it reports. No I/O here.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::model::{CallCountBucket, CallOutcome, HangupSide, WorkOrder, WorkOrderId};

/// Everything a work order store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be opened or created at `path` (directory, file, pragmas,
    /// schema).
    #[error("cannot open work order store at {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The store was written by a newer version of the engine: its schema version is
    /// higher than this build understands, so it is left untouched.
    #[error("work order store schema version {found} is newer than supported version {supported}")]
    UnsupportedSchema { found: i64, supported: i64 },
    /// A statement failed (I/O error, disk full, constraint other than a duplicate id).
    #[error("work order store query failed: {0}")]
    Query(#[source] rusqlite::Error),
    /// The transaction holding this operation could not be committed, so the operation
    /// did not happen. Shared because one commit covers several callers' operations.
    #[error("work order store commit failed: {0}")]
    Commit(#[source] Arc<rusqlite::Error>),
    /// `create` was given an id that is already stored.
    #[error("work order {0} already exists")]
    Duplicate(WorkOrderId),
    /// No work order has this id.
    #[error("work order {0} not found")]
    NotFound(WorkOrderId),
    /// A stored row holds a value this build cannot read back (unknown enum text,
    /// malformed time or id): the row is reported, never guessed at.
    #[error("work order {id} has a corrupt {column}: {value:?}")]
    Corrupt {
        id: String,
        column: &'static str,
        value: String,
    },
    /// The backend's worker is gone (it panicked or the store was closed), so the
    /// operation could not be carried out.
    #[error("work order store is closed")]
    Closed,
}

/// Where work orders are kept (R31). Every method persists before it returns `Ok`, so
/// what a caller has been told is written survives a crash (R10).
///
/// Backends are checked by the shared conformance suite in
/// [`super::conformance`]; a new backend should run all of it.
#[async_trait]
pub trait WorkOrderStore: Send + Sync + 'static {
    /// Writes a new order (the stub made at INVITE). A second order with the same id
    /// is [`StoreError::Duplicate`].
    async fn create(&self, order: &WorkOrder) -> Result<(), StoreError>;

    /// Records the answer time and, when recording started, the recording's path
    /// (`None` keeps any path already stored).
    async fn mark_answered(
        &self,
        id: &WorkOrderId,
        at: DateTime<Utc>,
        recording_path: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Records that the call was offered to the ACD queue `queue` at `at`.
    ///
    /// Called again when the call overflows to another queue: `queue` becomes the new
    /// one, but the first `queued_at` is kept, because the caller's wait started then
    /// and the call counts once, in that minute, in the connection rate (R5).
    async fn mark_queued(
        &self,
        id: &WorkOrderId,
        at: DateTime<Utc>,
        queue: &str,
    ) -> Result<(), StoreError>;

    /// Records that agent `agent` answered the call at `at` (R7 first contact).
    ///
    /// The first agent stays: if the order already has an owner (an earlier answer,
    /// before a transfer; or the agent a callback was made for), `agent` does **not**
    /// replace it, and the first `connected_at` is kept too. So a transfer can call
    /// this without taking the order away from the agent who answered first.
    async fn mark_connected(
        &self,
        id: &WorkOrderId,
        at: DateTime<Utc>,
        agent: &str,
    ) -> Result<(), StoreError>;

    /// Records the hang-up: when, who hung up first (R8) and how the call ended.
    async fn mark_ended(
        &self,
        id: &WorkOrderId,
        at: DateTime<Utc>,
        side: Option<HangupSide>,
        outcome: CallOutcome,
    ) -> Result<(), StoreError>;

    async fn get(&self, id: &WorkOrderId) -> Result<Option<WorkOrder>, StoreError>;

    /// At most `limit` orders, newest `offered_at` first.
    async fn list_recent(&self, limit: usize) -> Result<Vec<WorkOrder>, StoreError>;

    /// The newest order whose trunk leg has this SIP Call-ID.
    async fn find_by_call_id(&self, call_id: &str) -> Result<Option<WorkOrder>, StoreError>;

    /// The connection rate's counts (R5): inbound calls first queued at or after
    /// `since`, per UTC minute of `queued_at` (offered = queued; answered = those of
    /// them an agent answered, i.e. with a `connected_at`, in whatever minute), oldest
    /// minute first; minutes without calls are left out; calls never queued are not
    /// counted. Seeds the rolling connection-rate window after a restart (R4, R5). See
    /// [`CallCountBucket`] for why the IVR's trunk answer is not the answer counted.
    async fn call_counts_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<CallCountBucket>, StoreError>;

    /// Closes every order left open by a crash, at start-up, so none stays open for
    /// ever. All get ended at `at`, hang-up side unknown. The outcome:
    /// - connected to an agent: [`CallOutcome::Answered`] (the crash only cut the call
    ///   short; it must not count against the connection rate);
    /// - never queued but answered by the IVR: [`CallOutcome::Answered`] too;
    /// - queued but never connected, or never answered at all: `unanswered_outcome`,
    ///   normally `Abandoned { reason: EngineRestarted }`.
    ///
    /// Returns how many orders were closed.
    async fn end_unfinished(
        &self,
        at: DateTime<Utc>,
        unanswered_outcome: CallOutcome,
    ) -> Result<u64, StoreError>;
}
