//! The storage seam for work orders (R31): one trait every backend implements, and the
//! one backend-neutral error it reports. No I/O here.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::lifecycle::TransitionRefused;
use super::matter::{
    CallRecord, CallerRating, DetailsUpdate, EnterpriseEvaluation, FollowUpTask,
    ForbiddenPhraseHit, KnowledgeEntry, ListQuery, OrderPage, Provider, PurgeReport, QaSelection,
    ReadAuditEntry, StoreHealth, WorkOrderEvent, WorkOrderFile,
};
use super::model::{CallCountBucket, CallOutcome, HangupSide, Status, WorkOrder, WorkOrderId};

/// The cause behind a failure, whatever the backend: shared so one failed commit can
/// be reported to every caller whose write it held.
pub type ErrorSource = Arc<dyn std::error::Error + Send + Sync>;

/// An [`ErrorSource`] that is just a message.
pub fn message_source(text: impl Into<String>) -> ErrorSource {
    Arc::from(Box::<dyn std::error::Error + Send + Sync>::from(
        text.into(),
    ))
}

/// Everything a work order store can fail with, the same for every backend.
///
/// The variants say what a caller can do about it:
/// [`Unavailable`](StoreError::Unavailable) is worth retrying later (the call path's
/// queue does); [`Corrupt`](StoreError::Corrupt) and
/// [`CorruptDatabase`](StoreError::CorruptDatabase) need an operator;
/// [`NotFound`](StoreError::NotFound), [`InvalidTransition`](StoreError::InvalidTransition)
/// and [`Invalid`](StoreError::Invalid) are the caller's mistake and are never retried.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store could not be opened (directory, file, connection, pragmas, schema).
    #[error("cannot open work order store {location}: {source}")]
    Open {
        /// The file or the database (password never included).
        location: String,
        #[source]
        source: ErrorSource,
    },
    /// The store was written by a newer version of the engine: its schema version is
    /// higher than this build understands, so it is left untouched.
    #[error("work order store schema version {found} is newer than supported version {supported}")]
    UnsupportedSchema { found: i64, supported: i64 },
    /// The store cannot be reached right now: the SQLite file is locked by another
    /// process, the PostgreSQL server is stopped or unreachable, the connection broke,
    /// the disk failed, or the database file vanished. Nothing was written. Reported
    /// quickly (a bounded wait, never seconds) so the caller's queue does the waiting.
    #[error("work order store unavailable: {reason}")]
    Unavailable {
        reason: String,
        #[source]
        source: Option<ErrorSource>,
    },
    /// The database itself is damaged (not a database, malformed pages).
    #[error("work order store is corrupt: {0}")]
    CorruptDatabase(#[source] ErrorSource),
    /// A statement failed for another reason (a constraint, a bug in a query).
    #[error("work order store query failed: {0}")]
    Query(#[source] ErrorSource),
    /// `create` was given an id that is already stored with different contents.
    #[error("work order {0} already exists")]
    Duplicate(WorkOrderId),
    /// No work order has this id.
    #[error("work order {0} not found")]
    NotFound(WorkOrderId),
    /// A status change the lifecycle does not allow (R21); nothing was changed.
    #[error("work order {id}: {refused}")]
    InvalidTransition {
        id: WorkOrderId,
        refused: TransitionRefused,
    },
    /// Input the store refuses (an empty enterprise name, a rating out of range, an
    /// import record with an unknown field); nothing was stored.
    #[error("invalid input: {0}")]
    Invalid(String),
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

impl StoreError {
    /// Whether trying the same operation again later may succeed: the store was
    /// unreachable or locked, nothing was written.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. } | StoreError::Closed)
    }
}

/// Where work orders are kept (R31). Every write persists before it returns `Ok`, so
/// what a caller has been told is written survives a crash (R10).
///
/// Two groups of methods:
/// - the **call path** (`create` … `end_unfinished`), written by the engine as a call
///   happens. Each acts on the call that opened the order (the order's first call).
///   They are idempotent, because the engine's store queue retries a write whose
///   answer it did not get: repeating one with the same arguments leaves the order as
///   one write would, and `create` of an order identical to the stored one succeeds.
/// - the **matter** (everything else): the lifecycle, the fields agents fill in, the
///   audit trail, the read-audit log, the knowledge base and service directory,
///   retention. Every change to an order is kept as a [`WorkOrderEvent`] with who and
///   when (R21), in the same transaction as the change.
///
/// Backends are checked by the shared conformance suite in [`super::conformance`]; a
/// new backend should run all of it.
#[async_trait]
pub trait WorkOrderStore: Send + Sync + 'static {
    // ---- the call path -------------------------------------------------------------

    /// Writes a new order (the stub made at INVITE). Idempotent: when an order with
    /// the same id is already stored **with identical contents** (a retried create
    /// that had in fact committed) this is `Ok`; with different contents it is
    /// [`StoreError::Duplicate`] and the stored order is left untouched.
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

    /// The newest order whose first call's trunk leg has this SIP Call-ID.
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

    // ---- the matter: reading ---------------------------------------------------------

    /// The whole order: its first call and matter fields, every call attached to it
    /// (first call included, oldest first), its follow-up tasks and forbidden-phrase
    /// hits. `None` for an unknown id.
    async fn get_file(&self, id: &WorkOrderId) -> Result<Option<WorkOrderFile>, StoreError>;

    /// The audit trail of one order, oldest first (R21).
    async fn events(&self, id: &WorkOrderId) -> Result<Vec<WorkOrderEvent>, StoreError>;

    /// Orders matching `query`, newest `offered_at` first, one page at a time; the
    /// page's `next` cursor continues after its last order.
    async fn list_orders(&self, query: &ListQuery) -> Result<OrderPage, StoreError>;

    // ---- the matter: changing (each change is an event by `actor` at `at`) ----------

    /// Changes the lifecycle status (R21) after checking the transition against the
    /// order as stored ([`super::lifecycle::check_transition`]). A refused transition
    /// is [`StoreError::InvalidTransition`] with the reason, and changes nothing.
    async fn change_status(
        &self,
        id: &WorkOrderId,
        to: Status,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<WorkOrderFile, StoreError>;

    /// Sets the fields in `update` that are `Some` (matter text, answer, handling
    /// unit, category, urgent flag); one event per field that really changed. Every
    /// field is checked before any is written: one bad field stores nothing. A closed
    /// order is refused ([`StoreError::Invalid`]).
    async fn update_details(
        &self,
        id: &WorkOrderId,
        update: &DetailsUpdate,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<WorkOrderFile, StoreError>;

    /// Adds a free-text note to the audit trail.
    async fn add_note(
        &self,
        id: &WorkOrderId,
        text: &str,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Refers the matter to an enterprise (a service request, R14, R16). A new
    /// referral replaces the previous one and clears its evaluation.
    async fn refer_enterprise(
        &self,
        id: &WorkOrderId,
        enterprise: &str,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<WorkOrderFile, StoreError>;

    /// Records the caller's evaluation of the referred enterprise (R25); refused when
    /// no enterprise is referred.
    async fn evaluate_enterprise(
        &self,
        id: &WorkOrderId,
        evaluation: &EnterpriseEvaluation,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<WorkOrderFile, StoreError>;

    /// Records the caller's rating of the service (R24) or of the handling unit (R26).
    async fn rate(
        &self,
        id: &WorkOrderId,
        rating: &CallerRating,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<WorkOrderFile, StoreError>;

    /// Adds a follow-up task (a callback the callbacks feature will schedule); returns
    /// its number within the order.
    async fn add_follow_up(
        &self,
        id: &WorkOrderId,
        task: &FollowUpTask,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<u32, StoreError>;

    /// Marks follow-up task `number` done at `at`.
    async fn complete_follow_up(
        &self,
        id: &WorkOrderId,
        number: u32,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Marks the order as picked for quality review (R23). Selecting it again keeps
    /// the first selection.
    async fn select_for_qa(
        &self,
        id: &WorkOrderId,
        selection: &QaSelection,
        actor: &str,
    ) -> Result<(), StoreError>;

    /// Stores forbidden-phrase hits found in what an agent wrote (R28) and flags the
    /// order for QA (reason `forbidden phrase`) unless it is already selected. The
    /// text itself is never altered.
    async fn record_forbidden_phrases(
        &self,
        id: &WorkOrderId,
        hits: &[ForbiddenPhraseHit],
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Attaches a further call (callback, enterprise call, another inbound call about
    /// the same matter) to an existing order, or updates it when this order already
    /// has a call with the same SIP Call-ID (so it is idempotent and is also how the
    /// call's answer, end and recording are recorded as they happen).
    async fn attach_call(&self, id: &WorkOrderId, call: &CallRecord) -> Result<(), StoreError>;

    // ---- the read-audit log (R12): append-only, no update or delete exists ----------

    /// Appends who read which full number or recording, and when.
    async fn append_read_audit(&self, entry: &ReadAuditEntry) -> Result<(), StoreError>;

    /// Audit entries at or after `since`, oldest first, at most `limit`.
    async fn read_audit_log(
        &self,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<ReadAuditEntry>, StoreError>;

    // ---- knowledge base and service directory (R13, R14) ---------------------------

    /// Adds or replaces (by id) knowledge-base entries, all or none.
    async fn import_knowledge(&self, entries: &[KnowledgeEntry]) -> Result<usize, StoreError>;

    /// Entries containing every whitespace-separated keyword (Chinese text matched as
    /// substrings), title hits first, at most `limit`.
    async fn search_knowledge(
        &self,
        query: &str,
        limit: usize,
    ) -> Result<Vec<KnowledgeEntry>, StoreError>;

    /// Adds or replaces (by id) service-directory providers, all or none.
    async fn import_providers(&self, providers: &[Provider]) -> Result<usize, StoreError>;

    /// Providers containing every keyword, name hits first, at most `limit`.
    async fn search_providers(
        &self,
        query: &str,
        limit: usize,
    ) -> Result<Vec<Provider>, StoreError>;

    /// Adds a provider an agent found while handling order `id` (R14): the provider
    /// records the order it came from, and the order gets an event.
    async fn add_provider_from_work_order(
        &self,
        id: &WorkOrderId,
        provider: &Provider,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    // ---- retention and health --------------------------------------------------------

    /// Deletes every order whose first call was offered before `cutoff` (with its
    /// calls, events, tasks and hits), and records the purge in the purge log with
    /// `actor` and `at`. Returns the ids and the recording paths that belonged to them,
    /// for the caller to delete the files
    /// ([`super::retention::delete_recordings`]).
    async fn purge_older_than(
        &self,
        cutoff: DateTime<Utc>,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<PurgeReport, StoreError>;

    /// Every purge done so far, oldest first.
    async fn purge_log(&self) -> Result<Vec<PurgeReport>, StoreError>;

    /// Whether the store works right now: it answers a query within a bounded time,
    /// and (SQLite) its file is still the one opened. Also sets the
    /// `hotline_store_up` gauge.
    async fn health(&self) -> StoreHealth;

    /// Gives back the memory the store caches beyond what it uses now (SQLite keeps up
    /// to 2 MB of pages after a burst of writes). The runtime calls it every few
    /// seconds (issue 9 row 6). Default: nothing to give back.
    async fn release_memory(&self) {}
}
