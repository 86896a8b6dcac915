//! The embedded default work order store (R31): one SQLite file,
//! `work-orders.sqlite3`, in the data directory. Needs no setup. Does blocking file
//! I/O, all of it on one dedicated thread.
//!
//! # Why a thread of its own
//! rusqlite is blocking: a query or an `fsync` can take milliseconds. Run on a tokio
//! worker it would stall every task scheduled there, SIP and RTP included. So the
//! `Connection` lives on one std thread and async callers send it jobs over a bounded
//! channel, awaiting a oneshot reply; they never block a worker. One owner also means
//! no locking around the connection and writes in arrival order.
//!
//! # Durability versus speed (R10)
//! WAL journal with `synchronous=FULL`: every commit is fsynced to the WAL before the
//! caller hears `Ok`, so a work order survives a power cut or kernel crash, not just an
//! engine crash (`NORMAL` would lose the last commits on power loss, which is exactly
//! the "crash loses what was known" R10 forbids). To keep the fsync cost from limiting
//! call rate, the worker commits in groups: it takes every job already queued (up to
//! [`MAX_BATCH`]) into one transaction, commits once, then replies to all of them.
//! Under load many calls share one fsync; an idle engine pays one per write.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};
use tokio::sync::{mpsc, oneshot};

use super::model::{CallCountBucket, CallOutcome, HangupSide, WorkOrder, WorkOrderId};
use super::store::{StoreError, WorkOrderStore};

/// The database file inside the data directory.
pub const DB_FILE_NAME: &str = "work-orders.sqlite3";

/// Schema version kept in `PRAGMA user_version`; bump it with a new migration step.
const SCHEMA_VERSION: i64 = 2;

/// Jobs taken into one transaction at most, so one commit's latency stays bounded.
const MAX_BATCH: usize = 256;

/// Jobs waiting for the worker. When full, callers wait (back-pressure): a work order
/// write is never dropped (R10).
const QUEUE_CAPACITY: usize = 1024;

/// How long to wait for another process holding the file (the `work-orders list` CLI).
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Times are stored as RFC 3339 UTC text with nanoseconds, always the same width, so
/// text order is time order: indexes and range queries work on them directly, they
/// round-trip without loss and stay readable in the `sqlite3` shell.
///
/// Frozen: this is what version 1 databases hold; change the schema only by adding a
/// step such as [`SCHEMA_V2_STEP`].
const SCHEMA_V1: &str = "
CREATE TABLE work_orders (
    id             TEXT PRIMARY KEY NOT NULL,
    call_id        TEXT NOT NULL,
    caller         TEXT NOT NULL,
    callee         TEXT NOT NULL,
    direction      TEXT NOT NULL,
    offered_at     TEXT NOT NULL,
    answered_at    TEXT,
    ended_at       TEXT,
    hangup_side    TEXT,
    outcome        TEXT,
    outcome_reason TEXT,
    recording_path TEXT,
    status         TEXT NOT NULL,
    category       TEXT,
    agent          TEXT
) STRICT;
CREATE INDEX work_orders_by_call_id ON work_orders (call_id);
CREATE INDEX work_orders_by_offered_at ON work_orders (offered_at);
CREATE INDEX work_orders_unfinished ON work_orders (id) WHERE ended_at IS NULL;
";

/// Version 1 → 2: the ACD part of a call (queue, queue entry, agent answer). Only
/// `ADD COLUMN`s with no default, which SQLite does without rewriting the table, so
/// migrating a large store is instant. Rows from version 1 read back as never queued.
const SCHEMA_V2_STEP: &str = "
ALTER TABLE work_orders ADD COLUMN queue TEXT;
ALTER TABLE work_orders ADD COLUMN queued_at TEXT;
ALTER TABLE work_orders ADD COLUMN connected_at TEXT;
CREATE INDEX work_orders_by_queued_at ON work_orders (queued_at) WHERE queued_at IS NOT NULL;
";

/// The connection rate's per-minute counts (R5): calls by the minute they were first
/// queued, answered = connected to an agent. The first 16 characters of a stored time
/// are "YYYY-MM-DDTHH:MM".
const CONNECTION_RATE_COUNTS: &str = "SELECT substr(queued_at, 1, 16) AS minute, count(*), \
     count(connected_at) FROM work_orders WHERE direction = 'inbound' AND queued_at >= ?1 \
     GROUP BY minute ORDER BY minute";

const ORDER_COLUMNS: &str = "id, call_id, caller, callee, direction, offered_at, answered_at, \
     ended_at, hangup_side, outcome, outcome_reason, recording_path, status, category, agent, \
     queue, queued_at, connected_at";

/// The embedded SQLite work order store. Cheap to share behind an `Arc`.
pub struct SqliteStore {
    jobs: mpsc::Sender<Box<dyn Job>>,
    worker_stopped: oneshot::Receiver<()>,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating on first start) `data_dir/work-orders.sqlite3`, migrating its
    /// schema, and starts the worker thread.
    ///
    /// Blocking: call it at start-up, or from `spawn_blocking`. On Unix the directory
    /// (when created here) is `0700` and the file `0600`: they hold full caller
    /// numbers (R12).
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(DB_FILE_NAME);
        let open_error = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            path: path.clone(),
            source,
        };
        create_private_dir(data_dir).map_err(|e| open_error(Box::new(e)))?;
        create_private_file(&path).map_err(|e| open_error(Box::new(e)))?;
        let mut conn = Connection::open(&path).map_err(|e| open_error(Box::new(e)))?;
        configure(&conn).map_err(|e| open_error(Box::new(e)))?;
        migrate(&mut conn).map_err(|e| match e {
            MigrateError::Sqlite(e) => open_error(Box::new(e)),
            MigrateError::TooNew(found) => StoreError::UnsupportedSchema {
                found,
                supported: SCHEMA_VERSION,
            },
        })?;

        let (jobs, queue) = mpsc::channel(QUEUE_CAPACITY);
        let (stopped_tx, worker_stopped) = oneshot::channel();
        std::thread::Builder::new()
            .name("workorder-sqlite".into())
            .spawn(move || {
                serve(conn, queue);
                // The connection is closed by now; tell `close` it may return.
                let _ = stopped_tx.send(());
            })
            .map_err(|e| open_error(Box::new(e)))?;
        Ok(Self {
            jobs,
            worker_stopped,
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Finishes every job already sent, closes the database file and waits until it
    /// is closed. Dropping the store also closes it, without the wait.
    pub async fn close(self) -> Result<(), StoreError> {
        drop(self.jobs);
        self.worker_stopped.await.map_err(|_| StoreError::Closed)
    }

    /// Sends `work` to the worker thread and awaits its result.
    async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(TypedJob {
            work,
            result: None,
            reply,
        });
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

#[async_trait]
impl WorkOrderStore for SqliteStore {
    async fn create(&self, order: &WorkOrder) -> Result<(), StoreError> {
        let order = order.clone();
        self.run(move |conn| insert(conn, &order)).await
    }

    async fn mark_answered(
        &self,
        id: &WorkOrderId,
        at: DateTime<Utc>,
        recording_path: Option<&str>,
    ) -> Result<(), StoreError> {
        let id = id.clone();
        let recording_path = recording_path.map(str::to_owned);
        self.run(move |conn| {
            let changed = conn
                .execute(
                    "UPDATE work_orders SET answered_at = ?2, \
                     recording_path = COALESCE(?3, recording_path) WHERE id = ?1",
                    params![id.as_str(), time_text(at), recording_path],
                )
                .map_err(StoreError::Query)?;
            found_or(changed, &id)
        })
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
        self.run(move |conn| {
            let changed = conn
                .execute(
                    "UPDATE work_orders SET queue = ?3, \
                     queued_at = COALESCE(queued_at, ?2) WHERE id = ?1",
                    params![id.as_str(), time_text(at), queue],
                )
                .map_err(StoreError::Query)?;
            found_or(changed, &id)
        })
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
        self.run(move |conn| {
            // COALESCE keeps the first owner and first answer time (R7).
            let changed = conn
                .execute(
                    "UPDATE work_orders SET agent = COALESCE(agent, ?3), \
                     connected_at = COALESCE(connected_at, ?2) WHERE id = ?1",
                    params![id.as_str(), time_text(at), agent],
                )
                .map_err(StoreError::Query)?;
            found_or(changed, &id)
        })
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
        self.run(move |conn| {
            let changed = conn
                .execute(
                    "UPDATE work_orders SET ended_at = ?2, hangup_side = ?3, outcome = ?4, \
                     outcome_reason = ?5 WHERE id = ?1",
                    params![
                        id.as_str(),
                        time_text(at),
                        side.map(HangupSide::as_str),
                        outcome.kind(),
                        outcome.reason()
                    ],
                )
                .map_err(StoreError::Query)?;
            found_or(changed, &id)
        })
        .await
    }

    async fn get(&self, id: &WorkOrderId) -> Result<Option<WorkOrder>, StoreError> {
        let id = id.clone();
        self.run(move |conn| {
            let sql = format!("SELECT {ORDER_COLUMNS} FROM work_orders WHERE id = ?1");
            conn.query_row(&sql, [id.as_str()], StoredRow::read)
                .optional()
                .map_err(StoreError::Query)?
                .map(StoredRow::into_order)
                .transpose()
        })
        .await
    }

    async fn list_recent(&self, limit: usize) -> Result<Vec<WorkOrder>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |conn| {
            let sql = format!(
                "SELECT {ORDER_COLUMNS} FROM work_orders \
                 ORDER BY offered_at DESC, id DESC LIMIT ?1"
            );
            let mut statement = conn.prepare_cached(&sql).map_err(StoreError::Query)?;
            let rows = statement
                .query_map([limit], StoredRow::read)
                .map_err(StoreError::Query)?;
            rows.map(|row| row.map_err(StoreError::Query)?.into_order())
                .collect()
        })
        .await
    }

    async fn find_by_call_id(&self, call_id: &str) -> Result<Option<WorkOrder>, StoreError> {
        let call_id = call_id.to_owned();
        self.run(move |conn| {
            let sql = format!(
                "SELECT {ORDER_COLUMNS} FROM work_orders WHERE call_id = ?1 \
                 ORDER BY offered_at DESC, id DESC LIMIT 1"
            );
            conn.query_row(&sql, [call_id.as_str()], StoredRow::read)
                .optional()
                .map_err(StoreError::Query)?
                .map(StoredRow::into_order)
                .transpose()
        })
        .await
    }

    async fn call_counts_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<CallCountBucket>, StoreError> {
        self.run(move |conn| {
            let mut statement = conn
                .prepare_cached(CONNECTION_RATE_COUNTS)
                .map_err(StoreError::Query)?;
            let rows = statement
                .query_map([time_text(since)], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                })
                .map_err(StoreError::Query)?;
            rows.map(|row| {
                let (minute, offered, answered) = row.map_err(StoreError::Query)?;
                let start = NaiveDateTime::parse_from_str(&minute, "%Y-%m-%dT%H:%M")
                    .map_err(|_| StoreError::Corrupt {
                        id: format!("(calls in minute {minute})"),
                        column: "queued_at",
                        value: minute.clone(),
                    })?
                    .and_utc();
                Ok(CallCountBucket {
                    minute: start,
                    offered: u64::try_from(offered).unwrap_or(0),
                    answered: u64::try_from(answered).unwrap_or(0),
                })
            })
            .collect()
        })
        .await
    }

    async fn end_unfinished(
        &self,
        at: DateTime<Utc>,
        unanswered_outcome: CallOutcome,
    ) -> Result<u64, StoreError> {
        self.run(move |conn| {
            let at = time_text(at);
            // A queued call is answered only when an agent took it; the IVR's trunk
            // answer counts only for calls that never reached a queue.
            let answered = conn
                .execute(
                    "UPDATE work_orders SET ended_at = ?1, outcome = 'answered', \
                     outcome_reason = NULL \
                     WHERE ended_at IS NULL AND (connected_at IS NOT NULL \
                     OR (queued_at IS NULL AND answered_at IS NOT NULL))",
                    [&at],
                )
                .map_err(StoreError::Query)?;
            let unanswered = conn
                .execute(
                    "UPDATE work_orders SET ended_at = ?1, outcome = ?2, outcome_reason = ?3 \
                     WHERE ended_at IS NULL",
                    params![at, unanswered_outcome.kind(), unanswered_outcome.reason()],
                )
                .map_err(StoreError::Query)?;
            Ok((answered + unanswered) as u64)
        })
        .await
    }
}

/// One request for the worker thread, type-erased so all requests share a queue.
trait Job: Send {
    /// Does the work inside the current transaction and keeps the result for
    /// [`Job::finish`]. Returns `true` when the database itself failed, which means
    /// the transaction may be gone and the batch must be retried job by job.
    fn run(&mut self, conn: &Connection) -> bool;

    /// Replies to the caller: with the kept result, or with the commit's failure.
    fn finish(self: Box<Self>, commit_failure: Option<&Arc<rusqlite::Error>>);
}

struct TypedJob<T, F> {
    work: F,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for TypedJob<T, F>
where
    T: Send + 'static,
    F: FnMut(&Connection) -> Result<T, StoreError> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let result = (self.work)(conn);
        let database_failed = matches!(result, Err(StoreError::Query(_)));
        self.result = Some(result);
        database_failed
    }

    fn finish(self: Box<Self>, commit_failure: Option<&Arc<rusqlite::Error>>) {
        let result = match (commit_failure, self.result) {
            (Some(failure), _) => Err(StoreError::Commit(Arc::clone(failure))),
            (None, Some(result)) => result,
            // Unreachable by construction (finish always follows run); answer
            // honestly rather than panic on the store thread.
            (None, None) => Err(StoreError::Closed),
        };
        // The caller may have stopped waiting (task cancelled); the work is done
        // either way, so there is no one else to tell.
        let _ = self.reply.send(result);
    }
}

/// The worker thread's loop: runs until every `SqliteStore` handle is dropped.
fn serve(mut conn: Connection, mut queue: mpsc::Receiver<Box<dyn Job>>) {
    while let Some(first) = queue.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&mut conn, batch);
    }
}

/// Runs a group of jobs in one transaction with one commit (one fsync). If the
/// database fails part-way, SQLite may have rolled the transaction back, so the
/// group is undone and every job is retried alone to get its own honest answer.
fn run_batch(conn: &mut Connection, mut batch: Vec<Box<dyn Job>>) {
    if batch.len() == 1 {
        batch.into_iter().for_each(|job| run_alone(conn, job));
        return;
    }
    let database_failed = match conn.transaction() {
        Ok(transaction) => {
            let failed = batch.iter_mut().any(|job| job.run(&transaction));
            if failed {
                // Dropping the transaction rolls it back.
                true
            } else {
                match transaction.commit() {
                    Ok(()) => {
                        batch.into_iter().for_each(|job| job.finish(None));
                        return;
                    }
                    Err(_) => true,
                }
            }
        }
        Err(_) => true,
    };
    if database_failed {
        batch.into_iter().for_each(|job| run_alone(conn, job));
    }
}

fn run_alone(conn: &mut Connection, mut job: Box<dyn Job>) {
    match conn.transaction() {
        Ok(transaction) => {
            job.run(&transaction);
            match transaction.commit() {
                Ok(()) => job.finish(None),
                Err(e) => job.finish(Some(&Arc::new(e))),
            }
        }
        Err(e) => job.finish(Some(&Arc::new(e))),
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // journal_mode answers with the mode in force; WAL cannot be refused on a local
    // file, so the answer is not checked.
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}

enum MigrateError {
    Sqlite(rusqlite::Error),
    TooNew(i64),
}

impl From<rusqlite::Error> for MigrateError {
    fn from(e: rusqlite::Error) -> Self {
        MigrateError::Sqlite(e)
    }
}

/// Brings the schema to [`SCHEMA_VERSION`], one transaction per step, so a crash
/// mid-migration leaves the previous version intact.
fn migrate(conn: &mut Connection) -> Result<(), MigrateError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(MigrateError::TooNew(version));
    }
    let steps: [(i64, &str); 2] = [(1, SCHEMA_V1), (2, SCHEMA_V2_STEP)];
    for (target, sql) in steps {
        if version < target {
            let transaction = conn.transaction()?;
            transaction.execute_batch(sql)?;
            transaction.pragma_update(None, "user_version", target)?;
            transaction.commit()?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Creates the (empty) database file with owner-only permissions before SQLite opens
/// it; SQLite gives its `-wal` and `-shm` files the same permissions.
#[cfg(unix)]
fn create_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map(drop)
}

#[cfg(not(unix))]
fn create_private_file(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

fn time_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn found_or(changed: usize, id: &WorkOrderId) -> Result<(), StoreError> {
    if changed == 0 {
        Err(StoreError::NotFound(id.clone()))
    } else {
        Ok(())
    }
}

fn insert(conn: &Connection, order: &WorkOrder) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO work_orders ({ORDER_COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
    );
    let outcome = order.outcome;
    let result = conn.execute(
        &sql,
        params![
            order.id.as_str(),
            order.call_id,
            order.caller,
            order.callee,
            order.direction.as_str(),
            time_text(order.offered_at),
            order.answered_at.map(time_text),
            order.ended_at.map(time_text),
            order.hangup_side.map(|side| side.as_str()),
            outcome.map(CallOutcome::kind),
            outcome.and_then(CallOutcome::reason),
            order.recording_path,
            order.status.as_str(),
            order.category.map(|category| category.as_str()),
            order.agent,
            order.queue,
            order.queued_at.map(time_text),
            order.connected_at.map(time_text),
        ],
    );
    match result {
        Ok(_) => Ok(()),
        Err(e)
            if e.sqlite_error().map(|e| e.extended_code)
                == Some(rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY) =>
        {
            Err(StoreError::Duplicate(order.id.clone()))
        }
        Err(e) => Err(StoreError::Query(e)),
    }
}

/// A row as stored: all text, checked only when turned into a [`WorkOrder`] so a bad
/// value becomes [`StoreError::Corrupt`] naming the row and column.
struct StoredRow {
    id: String,
    call_id: String,
    caller: String,
    callee: String,
    direction: String,
    offered_at: String,
    answered_at: Option<String>,
    ended_at: Option<String>,
    hangup_side: Option<String>,
    outcome: Option<String>,
    outcome_reason: Option<String>,
    recording_path: Option<String>,
    status: String,
    category: Option<String>,
    agent: Option<String>,
    queue: Option<String>,
    queued_at: Option<String>,
    connected_at: Option<String>,
}

impl StoredRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            call_id: row.get(1)?,
            caller: row.get(2)?,
            callee: row.get(3)?,
            direction: row.get(4)?,
            offered_at: row.get(5)?,
            answered_at: row.get(6)?,
            ended_at: row.get(7)?,
            hangup_side: row.get(8)?,
            outcome: row.get(9)?,
            outcome_reason: row.get(10)?,
            recording_path: row.get(11)?,
            status: row.get(12)?,
            category: row.get(13)?,
            agent: row.get(14)?,
            queue: row.get(15)?,
            queued_at: row.get(16)?,
            connected_at: row.get(17)?,
        })
    }

    fn into_order(self) -> Result<WorkOrder, StoreError> {
        let row_id = self.id.clone();
        let corrupt = |column: &'static str, value: &str| StoreError::Corrupt {
            id: row_id.clone(),
            column,
            value: value.to_owned(),
        };
        let time = |column: &'static str, value: &str| {
            DateTime::parse_from_rfc3339(value)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| corrupt(column, value))
        };
        let optional_time =
            |column: &'static str, value: Option<&str>| value.map(|v| time(column, v)).transpose();
        fn parse<T: std::str::FromStr>(value: &str) -> Option<T> {
            value.parse().ok()
        }
        let outcome = match self.outcome.as_deref() {
            None => None,
            Some(kind) => Some(
                CallOutcome::from_parts(kind, self.outcome_reason.as_deref()).map_err(|_| {
                    corrupt(
                        "outcome",
                        &format!("{kind}/{}", self.outcome_reason.as_deref().unwrap_or("")),
                    )
                })?,
            ),
        };
        Ok(WorkOrder {
            id: parse(&self.id).ok_or_else(|| corrupt("id", &self.id))?,
            direction: parse(&self.direction)
                .ok_or_else(|| corrupt("direction", &self.direction))?,
            offered_at: time("offered_at", &self.offered_at)?,
            answered_at: optional_time("answered_at", self.answered_at.as_deref())?,
            ended_at: optional_time("ended_at", self.ended_at.as_deref())?,
            queued_at: optional_time("queued_at", self.queued_at.as_deref())?,
            connected_at: optional_time("connected_at", self.connected_at.as_deref())?,
            hangup_side: match self.hangup_side.as_deref() {
                None => None,
                Some(v) => Some(parse(v).ok_or_else(|| corrupt("hangup_side", v))?),
            },
            outcome,
            status: parse(&self.status).ok_or_else(|| corrupt("status", &self.status))?,
            category: match self.category.as_deref() {
                None => None,
                Some(v) => Some(parse(v).ok_or_else(|| corrupt("category", v))?),
            },
            call_id: self.call_id,
            caller: self.caller,
            callee: self.callee,
            recording_path: self.recording_path,
            agent: self.agent,
            queue: self.queue,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn stored_times_sort_as_text_in_time_order() {
        let base = Utc
            .with_ymd_and_hms(2026, 11, 28, 15, 30, 12)
            .single()
            .expect("valid time");
        let times = [
            base,
            base + chrono::Duration::nanoseconds(1),
            base + chrono::Duration::milliseconds(999),
            base + chrono::Duration::seconds(1),
        ];
        for pair in times.windows(2) {
            assert!(time_text(pair[0]) < time_text(pair[1]));
            assert_eq!(time_text(pair[0]).len(), time_text(pair[1]).len());
        }
        assert_eq!(&time_text(base)[..16], "2026-11-28T15:30");
    }

    fn memory_connection() -> Connection {
        let mut conn = Connection::open_in_memory().expect("in-memory database");
        if migrate(&mut conn).is_err() {
            panic!("migration of an empty database failed");
        }
        conn
    }

    type Answer<T> = oneshot::Receiver<Result<T, StoreError>>;

    fn job<T, F>(work: F) -> (Box<dyn Job>, Answer<T>)
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(TypedJob {
            work,
            result: None,
            reply,
        });
        (job, answer)
    }

    fn create_job(n: u64) -> (Box<dyn Job>, Answer<()>) {
        let order = crate::workorder::conformance::inbound_order(
            n,
            crate::workorder::conformance::base_time(),
        );
        job(move |conn| insert(conn, &order))
    }

    fn row_count(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM work_orders", [], |row| row.get(0))
            .expect("count")
    }

    #[test]
    fn a_group_of_jobs_commits_together_and_each_gets_its_answer() {
        let mut conn = memory_connection();
        let (first, first_answer) = create_job(1);
        let (duplicate, duplicate_answer) = create_job(1);
        let (second, second_answer) = create_job(2);
        run_batch(&mut conn, vec![first, duplicate, second]);
        assert!(matches!(first_answer.blocking_recv(), Ok(Ok(()))));
        assert!(matches!(
            duplicate_answer.blocking_recv(),
            Ok(Err(StoreError::Duplicate(_)))
        ));
        assert!(matches!(second_answer.blocking_recv(), Ok(Ok(()))));
        assert_eq!(row_count(&conn), 2);
    }

    #[test]
    fn a_database_failure_in_a_group_retries_the_others_alone() {
        let mut conn = memory_connection();
        let (first, first_answer) = create_job(1);
        let (failing, failing_answer) = job(|_: &Connection| -> Result<(), StoreError> {
            Err(StoreError::Query(rusqlite::Error::InvalidQuery))
        });
        let (second, second_answer) = create_job(2);
        run_batch(&mut conn, vec![first, failing, second]);
        assert!(matches!(first_answer.blocking_recv(), Ok(Ok(()))));
        assert!(matches!(
            failing_answer.blocking_recv(),
            Ok(Err(StoreError::Query(_)))
        ));
        assert!(matches!(second_answer.blocking_recv(), Ok(Ok(()))));
        assert_eq!(row_count(&conn), 2);
    }

    #[tokio::test]
    async fn database_is_in_wal_mode_at_the_current_schema_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path()).expect("open");
        let path = store.path().to_owned();
        store.close().await.expect("close");
        let conn = Connection::open(&path).expect("raw open");
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .expect("journal_mode");
        assert_eq!(mode, "wal");
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .expect("user_version");
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[test]
    fn connection_rate_counts_use_the_queue_time_index() {
        let conn = memory_connection();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {CONNECTION_RATE_COUNTS}"))
            .expect("explain")
            .query_map(["2026-11-28T00:00"], |row| row.get::<_, String>(3))
            .expect("plan")
            .collect::<Result<_, _>>()
            .expect("plan rows");
        assert!(
            plan.iter()
                .any(|step| step.contains("work_orders_by_queued_at")),
            "{plan:?}"
        );
    }

    #[tokio::test]
    async fn corrupt_rows_are_reported_not_guessed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path()).expect("open");
        let path = store.path().to_owned();
        store.close().await.expect("close");
        let conn = Connection::open(&path).expect("raw open");
        conn.execute(
            "INSERT INTO work_orders (id, call_id, caller, callee, direction, offered_at, status) \
             VALUES ('20261128-153012-000000000001', 'c', '1', '2', 'sideways', \
             '2026-11-28T15:30:12.000000000Z', 'accepted')",
            [],
        )
        .expect("raw insert");
        drop(conn);
        let store = SqliteStore::open(dir.path()).expect("reopen");
        let id: WorkOrderId = "20261128-153012-000000000001".parse().expect("id");
        match store.get(&id).await {
            Err(StoreError::Corrupt { column, value, .. }) => {
                assert_eq!(column, "direction");
                assert_eq!(value, "sideways");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn refuses_a_schema_newer_than_it_knows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = Connection::open(dir.path().join(DB_FILE_NAME)).expect("raw open");
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("set version");
        drop(conn);
        match SqliteStore::open(dir.path()) {
            Err(StoreError::UnsupportedSchema { found, supported }) => {
                assert_eq!(found, SCHEMA_VERSION + 1);
                assert_eq!(supported, SCHEMA_VERSION);
            }
            Err(other) => panic!("expected UnsupportedSchema, got {other:?}"),
            Ok(_) => panic!("opened a store with a newer schema"),
        }
    }

    #[tokio::test]
    async fn open_fails_with_the_path_when_the_directory_is_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let not_a_dir = dir.path().join("plain-file");
        std::fs::write(&not_a_dir, b"x").expect("write");
        match SqliteStore::open(&not_a_dir) {
            Err(StoreError::Open { path, .. }) => assert!(path.starts_with(&not_a_dir)),
            Err(other) => panic!("expected Open, got {other:?}"),
            Ok(_) => panic!("opened a store inside a file"),
        }
    }
}
