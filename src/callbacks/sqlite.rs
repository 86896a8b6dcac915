//! The embedded callback store: tables of their own in the work orders' SQLite file
//! (`work-orders.sqlite3` in the data directory), on a connection of their own.
//! Blocking file I/O, always run on tokio's blocking pool, never on a worker.
//!
//! The work orders keep their schema version in `PRAGMA user_version`; the callback
//! tables keep theirs in a row of `callback_schema`, so either schema migrates without
//! the other. Same pragmas as the work orders: WAL with `synchronous=FULL`, so a saved
//! task survives a power cut, and a busy timeout for the other connection's writes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::store::{
    COLUMNS, CallbackStore, CallbackStoreError, ListFilter, ListQuery, OPEN_STATES,
    outcome_from_parts, outcome_parts, state_from_parts, state_parts,
};
use super::{CallbackTask, PhoneNumber, Reason, TaskId, Window};
use crate::workorder::WorkOrderId;
use crate::workorder::sqlite::{create_private_dir, create_private_file};

/// The work orders' database file in the data directory, which these tables share
/// (the same name as `workorder::sqlite::DB_FILE_NAME`; a test keeps them equal).
pub const DB_FILE_NAME: &str = "work-orders.sqlite3";

/// The callback tables' schema version, kept in `callback_schema`.
const SCHEMA_VERSION: i64 = 1;

const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Times are RFC 3339 UTC text with nanoseconds, fixed width, so text order is time
/// order (as in the work orders' table).
const SCHEMA_V1: &str = "
CREATE TABLE callback_tasks (
    id           INTEGER PRIMARY KEY NOT NULL,
    work_order   TEXT NOT NULL,
    number       TEXT NOT NULL,
    reason       TEXT NOT NULL,
    earliest     TEXT NOT NULL,
    latest       TEXT NOT NULL,
    owner        TEXT,
    queue        TEXT NOT NULL,
    attempts     INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    not_before   TEXT NOT NULL,
    state        TEXT NOT NULL,
    agent        TEXT,
    last_outcome TEXT,
    last_status  INTEGER,
    preemptions  INTEGER NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
) STRICT;
CREATE INDEX callback_tasks_open ON callback_tasks (latest)
    WHERE state IN ('pending', 'dialing', 'connected');
CREATE INDEX callback_tasks_by_owner ON callback_tasks (owner);
CREATE INDEX callback_tasks_by_work_order ON callback_tasks (work_order);
";

/// The SQLite callback store. Cheap to share behind an `Arc`.
pub struct SqliteCallbackStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl SqliteCallbackStore {
    /// Opens `data_dir/work-orders.sqlite3` (creating the directory `0700` and the file
    /// `0600` when missing: they hold full numbers, R12) and brings the callback tables
    /// to the current schema. Blocking: call at start-up or from `spawn_blocking`.
    pub fn open(data_dir: &Path) -> Result<Self, CallbackStoreError> {
        let path = data_dir.join(DB_FILE_NAME);
        let open_error =
            |source: Box<dyn std::error::Error + Send + Sync>| CallbackStoreError::Open {
                path: path.clone(),
                source,
            };
        create_private_dir(data_dir).map_err(|e| open_error(Box::new(e)))?;
        create_private_file(&path).map_err(|e| open_error(Box::new(e)))?;
        let mut conn = Connection::open(&path).map_err(|e| open_error(Box::new(e)))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .and_then(|()| conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(())))
            .and_then(|()| conn.pragma_update(None, "synchronous", "FULL"))
            .map_err(|e| open_error(Box::new(e)))?;
        migrate(&mut conn).map_err(|e| match e {
            MigrateError::Sqlite(e) => open_error(Box::new(e)),
            MigrateError::TooNew(found) => CallbackStoreError::UnsupportedSchema {
                found,
                supported: SCHEMA_VERSION,
            },
        })?;
        Ok(SqliteCallbackStore {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn run<T, F>(&self, work: F) -> Result<T, CallbackStoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, CallbackStoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let conn = conn.lock().map_err(|_| CallbackStoreError::Closed)?;
            work(&conn)
        })
        .await
        .map_err(|_| CallbackStoreError::Closed)?
    }
}

#[async_trait]
impl CallbackStore for SqliteCallbackStore {
    async fn save(&self, task: &CallbackTask) -> Result<(), CallbackStoreError> {
        let task = task.clone();
        self.run(move |conn| {
            let (outcome, status) = outcome_parts(task.last_outcome);
            let (state, agent) = state_parts(&task.state);
            conn.execute(
                &format!(
                    "INSERT OR REPLACE INTO callback_tasks ({COLUMNS}) VALUES \
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
                ),
                params![
                    task.id.0 as i64,
                    task.work_order.as_str(),
                    task.number.dial_string(),
                    task.reason.as_str(),
                    time_text(task.window.earliest),
                    time_text(task.window.latest),
                    task.owner,
                    task.queue,
                    i64::from(task.attempts),
                    i64::from(task.max_attempts),
                    time_text(task.not_before),
                    state,
                    agent,
                    outcome,
                    status,
                    i64::from(task.preemptions),
                    time_text(task.created_at),
                    time_text(task.updated_at),
                ],
            )
            .map_err(query)?;
            Ok(())
        })
        .await
    }

    async fn get(&self, id: TaskId) -> Result<Option<CallbackTask>, CallbackStoreError> {
        self.run(move |conn| {
            let row = conn
                .query_row(
                    &format!("SELECT {COLUMNS} FROM callback_tasks WHERE id = ?1"),
                    [id.0 as i64],
                    |row| Ok(read_row(row)),
                )
                .optional()
                .map_err(query)?;
            row.transpose()
        })
        .await
    }

    async fn open_tasks(&self) -> Result<Vec<CallbackTask>, CallbackStoreError> {
        self.run(|conn| {
            select(
                conn,
                &format!("SELECT {COLUMNS} FROM callback_tasks WHERE {OPEN_STATES} ORDER BY id"),
                &[],
            )
        })
        .await
    }

    async fn highest_id(&self) -> Result<Option<TaskId>, CallbackStoreError> {
        self.run(|conn| {
            let max: Option<i64> = conn
                .query_row("SELECT max(id) FROM callback_tasks", [], |row| row.get(0))
                .map_err(query)?;
            Ok(max.map(|id| TaskId(id as u64)))
        })
        .await
    }

    async fn list(
        &self,
        filter: &ListFilter,
        now: DateTime<Utc>,
    ) -> Result<Vec<CallbackTask>, CallbackStoreError> {
        let filter = filter.clone();
        self.run(move |conn| {
            let ListQuery { sql, binds_now } = filter.query(|n| format!("?{n}"));
            let now_text = time_text(now);
            let mut params: Vec<&dyn rusqlite::ToSql> = Vec::new();
            if binds_now {
                params.push(&now_text);
            }
            if let Some(owner) = &filter.owner {
                params.push(owner);
            }
            // The SQL narrows; the shared predicate has the last word.
            let mut tasks = select(conn, &sql, &params)?;
            tasks.retain(|task| filter.matches(task, now));
            tasks.truncate(filter.limit);
            Ok(tasks)
        })
        .await
    }
}

fn query(e: rusqlite::Error) -> CallbackStoreError {
    CallbackStoreError::Query(Box::new(e))
}

fn select(
    conn: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
) -> Result<Vec<CallbackTask>, CallbackStoreError> {
    let mut statement = conn.prepare(sql).map_err(query)?;
    let rows = statement
        .query_map(params, |row| Ok(read_row(row)))
        .map_err(query)?;
    let mut tasks = Vec::new();
    for row in rows {
        tasks.push(row.map_err(query)??);
    }
    Ok(tasks)
}

fn read_row(row: &Row<'_>) -> Result<CallbackTask, CallbackStoreError> {
    let id: i64 = row.get(0).map_err(query)?;
    let text = |idx: usize| -> Result<String, CallbackStoreError> { row.get(idx).map_err(query) };
    let opt_text =
        |idx: usize| -> Result<Option<String>, CallbackStoreError> { row.get(idx).map_err(query) };
    let int = |idx: usize| -> Result<i64, CallbackStoreError> { row.get(idx).map_err(query) };
    let corrupt =
        |column: &'static str, value: String| CallbackStoreError::Corrupt { id, column, value };
    let time = |idx: usize, column: &'static str| -> Result<DateTime<Utc>, CallbackStoreError> {
        let value = text(idx)?;
        DateTime::parse_from_rfc3339(&value)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| corrupt(column, value))
    };
    let count = |idx: usize, column: &'static str| -> Result<u32, CallbackStoreError> {
        let value = int(idx)?;
        u32::try_from(value).map_err(|_| corrupt(column, value.to_string()))
    };

    let work_order = text(1)?;
    let work_order: WorkOrderId = work_order
        .parse()
        .map_err(|_| corrupt("work_order", work_order))?;
    let number = text(2)?;
    let number: PhoneNumber = number
        .parse()
        .map_err(|_| corrupt("number", crate::privacy::mask_number(&number)))?;
    let reason = text(3)?;
    let reason: Reason = reason.parse().map_err(|_| corrupt("reason", reason))?;
    let window = Window {
        earliest: time(4, "earliest")?,
        latest: time(5, "latest")?,
    };
    let state = state_from_parts(id, &text(11)?, opt_text(12)?)?;
    let status: Option<i64> = row.get(14).map_err(query)?;
    let last_outcome = outcome_from_parts(id, opt_text(13)?.as_deref(), status)?;
    Ok(CallbackTask {
        id: TaskId(u64::try_from(id).map_err(|_| corrupt("id", id.to_string()))?),
        work_order,
        number,
        reason,
        window,
        owner: opt_text(6)?,
        queue: text(7)?,
        attempts: count(8, "attempts")?,
        max_attempts: count(9, "max_attempts")?,
        not_before: time(10, "not_before")?,
        state,
        last_outcome,
        preemptions: count(15, "preemptions")?,
        created_at: time(16, "created_at")?,
        updated_at: time(17, "updated_at")?,
    })
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

/// Creates the callback tables on first use, or checks their version, in one
/// `IMMEDIATE` transaction so two processes opening the file at once do not both
/// create them.
fn migrate(conn: &mut Connection) -> Result<(), MigrateError> {
    let transaction = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    transaction.execute_batch(
        "CREATE TABLE IF NOT EXISTS callback_schema (
             id      INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
             version INTEGER NOT NULL
         ) STRICT;",
    )?;
    let version: Option<i64> = transaction
        .query_row(
            "SELECT version FROM callback_schema WHERE id = 1",
            [],
            |row| row.get(0),
        )
        .optional()?;
    match version {
        Some(found) if found > SCHEMA_VERSION => return Err(MigrateError::TooNew(found)),
        Some(_) => {}
        None => {
            transaction.execute_batch(SCHEMA_V1)?;
            transaction.execute(
                "INSERT INTO callback_schema (id, version) VALUES (1, ?1)",
                [SCHEMA_VERSION],
            )?;
        }
    }
    transaction.commit()?;
    Ok(())
}

fn time_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Nanos, true)
}
