//! What the SQL backends share: the small seam each database implements ([`Db`]), the
//! worker thread that owns the connection and commits in groups, and
//! [`SqlStore`], which implements [`WorkOrderStore`] once for both SQLite and
//! PostgreSQL. Does blocking I/O, all of it on the worker thread.
//!
//! # Why a thread of its own
//! rusqlite and the `postgres` client are blocking: a query or an `fsync` can take
//! milliseconds. Run on a tokio worker it would stall every task scheduled there, SIP
//! and RTP included. So the connection lives on one std thread and async callers send
//! it jobs over a bounded channel, awaiting a oneshot reply; they never block a
//! worker. One owner also means no locking around the connection and writes in
//! arrival order.
//!
//! # Groups, savepoints and failing fast
//! The worker takes every job already queued (up to [`MAX_BATCH`]) into one
//! transaction and commits once, so under load many calls share one `fsync` (R10
//! durability without limiting the call rate). Each job runs inside a savepoint: a job
//! that fails is rolled back alone and the others go on, so a failed write never
//! leaves half of itself behind. When the database itself is unreachable (locked by
//! another process, server stopped, file vanished) every job of the group is answered
//! [`StoreError::Unavailable`] at once: the wait for a lock is bounded by the
//! backend's busy timeout (a few hundred milliseconds), never seconds, so the engine's
//! store queue, not a call, does the waiting and retrying.
//!
//! # One dialect
//! Statements are written once, with `?N` placeholders (PostgreSQL's backend rewrites
//! them to `$N`), plain `TEXT`/`INTEGER` values and `ON CONFLICT` upserts, which both
//! databases understand. Times are stored as fixed-width RFC 3339 UTC text with
//! nanoseconds: text order is time order, so indexes and range queries work on them
//! directly, and they round-trip without loss (PostgreSQL's `timestamptz` keeps only
//! microseconds). Only schema and search differ per backend.

mod logic;
mod row;
pub mod sqlite;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use super::matter::{
    CallRecord, CallerRating, DetailsUpdate, EnterpriseEvaluation, FollowUpTask,
    ForbiddenPhraseHit, KnowledgeEntry, ListQuery, OrderPage, Provider, PurgeReport, QaSelection,
    ReadAuditEntry, StoreHealth, WorkOrderEvent, WorkOrderFile,
};
use super::model::{CallCountBucket, CallOutcome, HangupSide, Status, WorkOrder, WorkOrderId};
use super::store::{ErrorSource, StoreError, WorkOrderStore};

#[cfg(test)]
pub(crate) use logic::CONNECTION_RATE_COUNTS as CONNECTION_RATE_COUNTS_SQL;
pub(crate) use row::{Row, Value, time_text};

/// Jobs taken into one transaction at most, so one commit's latency stays bounded.
const MAX_BATCH: usize = 256;

/// Jobs waiting for the worker. When full, callers wait (back-pressure).
const QUEUE_CAPACITY: usize = 1024;

/// How long [`WorkOrderStore::health`] waits for the store to answer a probe.
const HEALTH_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The name of the gauge that says whether the store works (1) or not (0).
pub const STORE_UP_METRIC: &str = "hotline_store_up";

/// Which SQL a backend speaks where the two differ (schema, search).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A backend's failure, sorted by what the store makes of it.
#[derive(Debug)]
pub(crate) enum DbError {
    /// Locked, stopped, unreachable, I/O, vanished: nothing written, try later.
    Unavailable(String, Option<ErrorSource>),
    /// The database is damaged.
    Corrupt(ErrorSource),
    /// A unique or primary key constraint.
    UniqueViolation(ErrorSource),
    /// Anything else.
    Other(ErrorSource),
}

impl From<DbError> for StoreError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(reason, source) => StoreError::Unavailable { reason, source },
            DbError::Corrupt(source) => StoreError::CorruptDatabase(source),
            DbError::UniqueViolation(source) | DbError::Other(source) => StoreError::Query(source),
        }
    }
}

/// The seam each SQL database implements. Blocking; used only on the worker thread.
pub(crate) trait Db: Send {
    fn dialect(&self) -> Dialect;
    /// Runs one statement; returns the rows it changed.
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError>;
    /// Runs one query; returns its rows.
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError>;
    /// Runs statements without parameters (transaction control, savepoints).
    fn batch(&mut self, sql: &str) -> Result<(), DbError>;
    /// Called before each group of jobs: fails when the store is not the one opened
    /// (the SQLite file vanished) and reconnects a lost connection when it can.
    fn ensure_ready(&mut self) -> Result<(), DbError>;
    /// The statement that starts a transaction for a group of jobs; `writes` when
    /// any of them may write.
    fn begin_statement(&self, writes: bool) -> &'static str {
        let _ = writes;
        "BEGIN"
    }
    /// Gives back the memory of pages the connection caches but is not using; they
    /// are read again when next needed. Default: the database keeps no such cache.
    fn release_memory(&mut self) {}
}

/// How a job ended, as far as its group is concerned.
enum JobEnd {
    Done,
    /// The job failed on its own (not found, invalid, a constraint): roll it back.
    Failed,
    /// The database went away: the group cannot commit.
    DatabaseLost(StoreError),
}

/// One request for the worker thread, type-erased so all requests share a queue.
trait Job: Send {
    /// Whether the job may write (a read-only group need not take the write lock).
    fn writes(&self) -> bool;
    fn run(&mut self, db: &mut dyn Db) -> JobEnd;
    /// Replies to the caller: with the kept result, or with `failure` when the group
    /// did not commit.
    fn finish(self: Box<Self>, failure: Option<StoreError>);
}

struct TypedJob<T, F> {
    work: F,
    writes: bool,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for TypedJob<T, F>
where
    T: Send + 'static,
    F: FnMut(&mut dyn Db) -> Result<T, StoreError> + Send + 'static,
{
    fn writes(&self) -> bool {
        self.writes
    }

    fn run(&mut self, db: &mut dyn Db) -> JobEnd {
        let result = (self.work)(db);
        let end = match &result {
            Ok(_) => JobEnd::Done,
            Err(e @ (StoreError::Unavailable { .. } | StoreError::CorruptDatabase(_))) => {
                JobEnd::DatabaseLost(e.clone())
            }
            Err(_) => JobEnd::Failed,
        };
        self.result = Some(result);
        end
    }

    fn finish(self: Box<Self>, failure: Option<StoreError>) {
        let result = match (failure, self.result) {
            (Some(failure), _) => Err(failure),
            (None, Some(result)) => result,
            // Unreachable by construction (finish follows run); answer honestly
            // rather than panic on the store thread.
            (None, None) => Err(StoreError::Closed),
        };
        // The caller may have stopped waiting (task cancelled); nobody else to tell.
        let _ = self.reply.send(result);
    }
}

/// Write commits start at least this far apart. Under load the writes that arrive in
/// the meantime join the next group, so the store makes at most 200 fsyncs a second
/// however many calls there are, instead of one per group of whatever happened to be
/// queued (at 1,000 calls/s, most of a core in the kernel). When writes are rare the
/// previous commit is long past and nothing waits. The price is latency, off the call
/// path: a write is committed at most this much later (R10: still as the call
/// happens); what a crash of the engine can lose is unchanged, the writes not yet
/// committed, which the engine's store queue holds either way.
const MIN_WRITE_COMMIT_INTERVAL: Duration = Duration::from_millis(5);

/// The worker thread's loop: runs until every handle is dropped.
fn serve(mut db: Box<dyn Db>, mut queue: mpsc::Receiver<Box<dyn Job>>, up: Arc<AtomicBool>) {
    let mut last_write_commit: Option<Instant> = None;
    while let Some(first) = queue.blocking_recv() {
        if first.writes()
            && let Some(wait) = last_write_commit
                .map(|last| {
                    (last + MIN_WRITE_COMMIT_INTERVAL).saturating_duration_since(Instant::now())
                })
                .filter(|wait| !wait.is_zero())
        {
            std::thread::sleep(wait);
        }
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if batch.iter().any(|job| job.writes()) {
            last_write_commit = Some(Instant::now());
        }
        let working = run_batch(db.as_mut(), batch);
        set_up(&up, working);
    }
}

fn set_up(up: &AtomicBool, working: bool) {
    up.store(working, Ordering::Relaxed);
    metrics::gauge!(STORE_UP_METRIC).set(if working { 1.0 } else { 0.0 });
}

/// Runs a group of jobs in one transaction with one commit, each in a savepoint.
/// Returns whether the database worked (false: unreachable, locked, vanished).
fn run_batch(db: &mut dyn Db, batch: Vec<Box<dyn Job>>) -> bool {
    let fail_all = |batch: Vec<Box<dyn Job>>, error: StoreError| {
        for job in batch {
            job.finish(Some(error.clone()));
        }
    };
    if let Err(e) = db.ensure_ready() {
        fail_all(batch, e.into());
        return false;
    }
    let writes = batch.iter().any(|job| job.writes());
    let begin = db.begin_statement(writes);
    if let Err(e) = db.batch(begin) {
        fail_all(batch, e.into());
        return false;
    }
    let mut ran = Vec::with_capacity(batch.len());
    let mut lost = None;
    for mut job in batch {
        if lost.is_some() {
            ran.push(job);
            continue;
        }
        if let Err(e) = db.batch("SAVEPOINT job") {
            lost = Some(StoreError::from(e));
            ran.push(job);
            continue;
        }
        match job.run(db) {
            JobEnd::Done => {
                if let Err(e) = db.batch("RELEASE SAVEPOINT job") {
                    lost = Some(e.into());
                }
            }
            JobEnd::Failed => {
                if let Err(e) = db.batch("ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job") {
                    lost = Some(e.into());
                }
            }
            JobEnd::DatabaseLost(e) => lost = Some(e),
        }
        ran.push(job);
    }
    if let Some(error) = lost {
        // Best effort: the connection may be gone, which rolls back too.
        let _ = db.batch("ROLLBACK");
        let working = !matches!(error, StoreError::Unavailable { .. });
        fail_all(ran, error);
        return working;
    }
    match db.batch("COMMIT") {
        Ok(()) => {
            for job in ran {
                job.finish(None);
            }
            true
        }
        Err(e) => {
            let _ = db.batch("ROLLBACK");
            let error = StoreError::from(e);
            let working = !matches!(error, StoreError::Unavailable { .. });
            fail_all(ran, error);
            working
        }
    }
}

/// A work order store over a SQL database: the embedded SQLite file
/// ([`super::sqlite`]) or PostgreSQL ([`super::postgres`]). Cheap to share behind an
/// `Arc`.
pub struct SqlStore {
    jobs: mpsc::Sender<Box<dyn Job>>,
    worker_stopped: oneshot::Receiver<()>,
    backend: &'static str,
    /// The file or database, for messages (never a password).
    location: String,
    up: Arc<AtomicBool>,
    path: Option<std::path::PathBuf>,
}

impl SqlStore {
    /// Starts the worker thread owning `db`, already migrated.
    pub(crate) fn start(
        db: Box<dyn Db>,
        backend: &'static str,
        location: String,
        path: Option<std::path::PathBuf>,
    ) -> Result<Self, StoreError> {
        Self::start_with(backend, location, path, move || Ok(db))
    }

    /// Starts the worker thread and makes its connection there with `connect` (a
    /// client that must not be made or dropped inside a tokio runtime), waiting for
    /// it to succeed or fail.
    pub(crate) fn start_with<C>(
        backend: &'static str,
        location: String,
        path: Option<std::path::PathBuf>,
        connect: C,
    ) -> Result<Self, StoreError>
    where
        C: FnOnce() -> Result<Box<dyn Db>, StoreError> + Send + 'static,
    {
        let (jobs, queue) = mpsc::channel(QUEUE_CAPACITY);
        let (stopped_tx, worker_stopped) = oneshot::channel();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let up = Arc::new(AtomicBool::new(true));
        let worker_up = Arc::clone(&up);
        std::thread::Builder::new()
            .name(format!("workorder-{backend}"))
            .spawn(move || {
                match connect() {
                    Ok(db) => {
                        let _ = ready_tx.send(Ok(()));
                        serve(db, queue, worker_up);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
                // The connection is closed by now; tell `close` it may return.
                let _ = stopped_tx.send(());
            })
            .map_err(|e| StoreError::Open {
                location: location.clone(),
                source: Arc::new(e),
            })?;
        ready.recv().map_err(|_| StoreError::Closed)??;
        set_up(&up, true);
        Ok(Self {
            jobs,
            worker_stopped,
            backend,
            location,
            up,
            path,
        })
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// The file or database, for messages (no password in it).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The SQLite database file; an empty path for PostgreSQL.
    pub fn path(&self) -> &std::path::Path {
        self.path.as_deref().unwrap_or(std::path::Path::new(""))
    }

    /// Finishes every job already sent, closes the connection and waits until it is
    /// closed. Dropping the store also closes it, without the wait.
    pub async fn close(self) -> Result<(), StoreError> {
        drop(self.jobs);
        self.worker_stopped.await.map_err(|_| StoreError::Closed)
    }

    /// Sends `work`, which may write, to the worker thread and awaits its result.
    async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&mut dyn Db) -> Result<T, StoreError> + Send + 'static,
    {
        self.send(work, true).await
    }

    /// Sends `work`, which only reads, to the worker thread and awaits its result.
    /// On SQLite a group of reads does not take the write lock, so a reading process
    /// (the CLI) never holds up the engine's writes.
    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&mut dyn Db) -> Result<T, StoreError> + Send + 'static,
    {
        self.send(work, false).await
    }

    async fn send<T, F>(&self, work: F, writes: bool) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&mut dyn Db) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(TypedJob {
            work,
            writes,
            result: None,
            reply,
        });
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

#[async_trait]
impl WorkOrderStore for SqlStore {
    async fn create(&self, order: &WorkOrder) -> Result<(), StoreError> {
        let order = order.clone();
        self.run(move |db| logic::create(db, &order)).await
    }

    async fn mark_answered(
        &self,
        id: &WorkOrderId,
        at: DateTime<Utc>,
        recording_path: Option<&str>,
    ) -> Result<(), StoreError> {
        let id = id.clone();
        let path = recording_path.map(str::to_owned);
        self.run(move |db| logic::mark_answered(db, &id, at, path.as_deref()))
            .await
    }

    async fn mark_queued(
        &self,
        id: &WorkOrderId,
        at: DateTime<Utc>,
        queue: &str,
    ) -> Result<(), StoreError> {
        let id = id.clone();
        let queue = queue.to_owned();
        self.run(move |db| logic::mark_queued(db, &id, at, &queue))
            .await
    }

    async fn mark_connected(
        &self,
        id: &WorkOrderId,
        at: DateTime<Utc>,
        agent: &str,
    ) -> Result<(), StoreError> {
        let id = id.clone();
        let agent = agent.to_owned();
        self.run(move |db| logic::mark_connected(db, &id, at, &agent))
            .await
    }

    async fn mark_ended(
        &self,
        id: &WorkOrderId,
        at: DateTime<Utc>,
        side: Option<HangupSide>,
        outcome: CallOutcome,
    ) -> Result<(), StoreError> {
        let id = id.clone();
        self.run(move |db| logic::mark_ended(db, &id, at, side, outcome))
            .await
    }

    async fn get(&self, id: &WorkOrderId) -> Result<Option<WorkOrder>, StoreError> {
        let id = id.clone();
        self.read(move |db| logic::get_order(db, &id)).await
    }

    async fn list_recent(&self, limit: usize) -> Result<Vec<WorkOrder>, StoreError> {
        self.read(move |db| logic::list_recent(db, limit)).await
    }

    async fn find_by_call_id(&self, call_id: &str) -> Result<Option<WorkOrder>, StoreError> {
        let call_id = call_id.to_owned();
        self.read(move |db| logic::find_by_call_id(db, &call_id))
            .await
    }

    async fn call_counts_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<CallCountBucket>, StoreError> {
        self.read(move |db| logic::call_counts_since(db, since))
            .await
    }

    async fn end_unfinished(
        &self,
        at: DateTime<Utc>,
        unanswered_outcome: CallOutcome,
    ) -> Result<u64, StoreError> {
        self.run(move |db| logic::end_unfinished(db, at, unanswered_outcome))
            .await
    }

    async fn get_file(&self, id: &WorkOrderId) -> Result<Option<WorkOrderFile>, StoreError> {
        let id = id.clone();
        self.read(move |db| logic::get_file(db, &id)).await
    }

    async fn events(&self, id: &WorkOrderId) -> Result<Vec<WorkOrderEvent>, StoreError> {
        let id = id.clone();
        self.read(move |db| logic::events(db, &id)).await
    }

    async fn list_orders(&self, query: &ListQuery) -> Result<OrderPage, StoreError> {
        let query = query.clone();
        self.read(move |db| logic::list_orders(db, &query)).await
    }

    async fn change_status(
        &self,
        id: &WorkOrderId,
        to: Status,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<WorkOrderFile, StoreError> {
        let id = id.clone();
        let actor = actor.to_owned();
        self.run(move |db| logic::change_status(db, &id, to, &actor, at))
            .await
    }

    async fn update_details(
        &self,
        id: &WorkOrderId,
        update: &DetailsUpdate,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<WorkOrderFile, StoreError> {
        let id = id.clone();
        let update = update.clone();
        let actor = actor.to_owned();
        self.run(move |db| logic::update_details(db, &id, &update, &actor, at))
            .await
    }

    async fn add_note(
        &self,
        id: &WorkOrderId,
        text: &str,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let id = id.clone();
        let text = text.to_owned();
        let actor = actor.to_owned();
        self.run(move |db| logic::add_note(db, &id, &text, &actor, at))
            .await
    }

    async fn refer_enterprise(
        &self,
        id: &WorkOrderId,
        enterprise: &str,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<WorkOrderFile, StoreError> {
        let id = id.clone();
        let enterprise = enterprise.to_owned();
        let actor = actor.to_owned();
        self.run(move |db| logic::refer_enterprise(db, &id, &enterprise, &actor, at))
            .await
    }

    async fn evaluate_enterprise(
        &self,
        id: &WorkOrderId,
        evaluation: &EnterpriseEvaluation,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<WorkOrderFile, StoreError> {
        let id = id.clone();
        let evaluation = *evaluation;
        let actor = actor.to_owned();
        self.run(move |db| logic::evaluate_enterprise(db, &id, &evaluation, &actor, at))
            .await
    }

    async fn rate(
        &self,
        id: &WorkOrderId,
        rating: &CallerRating,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<WorkOrderFile, StoreError> {
        let id = id.clone();
        let rating = *rating;
        let actor = actor.to_owned();
        self.run(move |db| logic::rate(db, &id, &rating, &actor, at))
            .await
    }

    async fn add_follow_up(
        &self,
        id: &WorkOrderId,
        task: &FollowUpTask,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<u32, StoreError> {
        let id = id.clone();
        let task = task.clone();
        let actor = actor.to_owned();
        self.run(move |db| logic::add_follow_up(db, &id, &task, &actor, at))
            .await
    }

    async fn complete_follow_up(
        &self,
        id: &WorkOrderId,
        number: u32,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let id = id.clone();
        let actor = actor.to_owned();
        self.run(move |db| logic::complete_follow_up(db, &id, number, &actor, at))
            .await
    }

    async fn select_for_qa(
        &self,
        id: &WorkOrderId,
        selection: &QaSelection,
        actor: &str,
    ) -> Result<(), StoreError> {
        let id = id.clone();
        let selection = selection.clone();
        let actor = actor.to_owned();
        self.run(move |db| logic::select_for_qa(db, &id, &selection, &actor))
            .await
    }

    async fn record_forbidden_phrases(
        &self,
        id: &WorkOrderId,
        hits: &[ForbiddenPhraseHit],
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let id = id.clone();
        let hits = hits.to_vec();
        let actor = actor.to_owned();
        self.run(move |db| logic::record_forbidden_phrases(db, &id, &hits, &actor, at))
            .await
    }

    async fn attach_call(&self, id: &WorkOrderId, call: &CallRecord) -> Result<(), StoreError> {
        let id = id.clone();
        let call = call.clone();
        self.run(move |db| logic::attach_call(db, &id, &call)).await
    }

    async fn append_read_audit(&self, entry: &ReadAuditEntry) -> Result<(), StoreError> {
        let entry = entry.clone();
        self.run(move |db| logic::append_read_audit(db, &entry))
            .await
    }

    async fn read_audit_log(
        &self,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<ReadAuditEntry>, StoreError> {
        self.read(move |db| logic::read_audit_log(db, since, limit))
            .await
    }

    async fn import_knowledge(&self, entries: &[KnowledgeEntry]) -> Result<usize, StoreError> {
        let entries = entries.to_vec();
        self.run(move |db| logic::import_knowledge(db, &entries))
            .await
    }

    async fn search_knowledge(
        &self,
        query: &str,
        limit: usize,
    ) -> Result<Vec<KnowledgeEntry>, StoreError> {
        let query = query.to_owned();
        self.read(move |db| logic::search_knowledge(db, &query, limit))
            .await
    }

    async fn import_providers(&self, providers: &[Provider]) -> Result<usize, StoreError> {
        let providers = providers.to_vec();
        self.run(move |db| logic::import_providers(db, &providers))
            .await
    }

    async fn search_providers(
        &self,
        query: &str,
        limit: usize,
    ) -> Result<Vec<Provider>, StoreError> {
        let query = query.to_owned();
        self.read(move |db| logic::search_providers(db, &query, limit))
            .await
    }

    async fn add_provider_from_work_order(
        &self,
        id: &WorkOrderId,
        provider: &Provider,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let id = id.clone();
        let provider = provider.clone();
        let actor = actor.to_owned();
        self.run(move |db| logic::add_provider_from_work_order(db, &id, &provider, &actor, at))
            .await
    }

    async fn purge_older_than(
        &self,
        cutoff: DateTime<Utc>,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<PurgeReport, StoreError> {
        let actor = actor.to_owned();
        self.run(move |db| logic::purge_older_than(db, cutoff, &actor, at))
            .await
    }

    async fn purge_log(&self) -> Result<Vec<PurgeReport>, StoreError> {
        self.read(logic::purge_log).await
    }

    async fn release_memory(&self) {
        // A read job: it takes no lock, and waits behind the writes queued before it.
        let _ = self
            .read(|db| {
                db.release_memory();
                Ok(())
            })
            .await;
    }

    async fn health(&self) -> StoreHealth {
        // A write job: on SQLite it takes the write lock, so a locked file shows.
        let probe = self.run(|db| {
            db.query("SELECT 1", &[])?;
            Ok(())
        });
        let problem = match tokio::time::timeout(HEALTH_PROBE_TIMEOUT, probe).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!(
                "the store did not answer within {} ms",
                HEALTH_PROBE_TIMEOUT.as_millis()
            )),
        };
        let up = problem.is_none();
        if !up {
            // The worker sets it after each group; a probe stuck in the queue is news.
            set_up(&self.up, false);
        }
        StoreHealth {
            up,
            backend: self.backend,
            problem,
        }
    }
}

#[cfg(test)]
mod tests;
