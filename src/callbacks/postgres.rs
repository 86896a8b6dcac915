//! The PostgreSQL callback store, for an engine whose work orders live in PostgreSQL
//! (R31): the same tables as the SQLite store, with their own schema version row.
//! Network I/O on tokio (`tokio-postgres`); the connection runs on a task of its own.
//!
//! Times are `TIMESTAMPTZ` (microsecond precision: the scheduler's times are whole
//! seconds or milliseconds, so nothing it stores is rounded).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row};

use super::store::{
    COLUMNS, CallbackStore, CallbackStoreError, ListFilter, ListQuery, OPEN_STATES,
    outcome_from_parts, outcome_parts, state_from_parts, state_parts,
};
use super::{CallbackTask, PhoneNumber, Reason, TaskId, Window};
use crate::workorder::WorkOrderId;
use crate::workorder::postgres::{PostgresSettings, TlsMode};

/// The callback tables' schema version, kept in `callback_schema`.
const SCHEMA_VERSION: i64 = 1;

/// Taken for the migration's transaction, so two engines starting together on one
/// database do not both create the tables. Any fixed number unique to this purpose.
const MIGRATION_LOCK: i64 = 8890_0020;

const SCHEMA_V1: &str = "
CREATE TABLE callback_tasks (
    id           BIGINT PRIMARY KEY,
    work_order   TEXT NOT NULL,
    number       TEXT NOT NULL,
    reason       TEXT NOT NULL,
    earliest     TIMESTAMPTZ NOT NULL,
    latest       TIMESTAMPTZ NOT NULL,
    owner        TEXT,
    queue        TEXT NOT NULL,
    attempts     INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    not_before   TIMESTAMPTZ NOT NULL,
    state        TEXT NOT NULL,
    agent        TEXT,
    last_outcome TEXT,
    last_status  INTEGER,
    preemptions  INTEGER NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX callback_tasks_open ON callback_tasks (latest)
    WHERE state IN ('pending', 'dialing', 'connected');
CREATE INDEX callback_tasks_by_owner ON callback_tasks (owner);
CREATE INDEX callback_tasks_by_work_order ON callback_tasks (work_order);
";

/// The PostgreSQL callback store.
pub struct PostgresCallbackStore {
    client: Client,
    connection: tokio::task::JoinHandle<()>,
}

impl PostgresCallbackStore {
    /// Connects with a libpq-style `conninfo` (`host=127.0.0.1 user=hotline
    /// dbname=hotline`), no password and no TLS, and brings the callback tables to the
    /// current schema.
    pub async fn connect(conninfo: &str) -> Result<Self, CallbackStoreError> {
        PostgresCallbackStore::connect_with(&PostgresSettings {
            url: conninfo.to_owned(),
            password: None,
            tls: TlsMode::Disable,
        })
        .await
    }

    /// Connects the way the work-order store does (the same URL, password and TLS:
    /// the tables live in the same database) and migrates.
    pub async fn connect_with(settings: &PostgresSettings) -> Result<Self, CallbackStoreError> {
        let (mut client, connection) = crate::workorder::postgres::connect_async(settings)
            .await
            .map_err(|e| CallbackStoreError::Connect(Box::new(e)))?;
        migrate(&mut client).await?;
        Ok(PostgresCallbackStore { client, connection })
    }
}

impl Drop for PostgresCallbackStore {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

async fn migrate(client: &mut Client) -> Result<(), CallbackStoreError> {
    let transaction = client.transaction().await.map_err(query)?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(query)?;
    transaction
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS callback_schema (
                 id      INTEGER PRIMARY KEY CHECK (id = 1),
                 version BIGINT NOT NULL
             )",
        )
        .await
        .map_err(query)?;
    let version: Option<i64> = transaction
        .query_opt("SELECT version FROM callback_schema WHERE id = 1", &[])
        .await
        .map_err(query)?
        .map(|row| row.get(0));
    match version {
        Some(found) if found > SCHEMA_VERSION => {
            return Err(CallbackStoreError::UnsupportedSchema {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        Some(_) => {}
        None => {
            transaction.batch_execute(SCHEMA_V1).await.map_err(query)?;
            transaction
                .execute(
                    "INSERT INTO callback_schema (id, version) VALUES (1, $1)",
                    &[&SCHEMA_VERSION],
                )
                .await
                .map_err(query)?;
        }
    }
    transaction.commit().await.map_err(query)
}

#[async_trait]
impl CallbackStore for PostgresCallbackStore {
    async fn save(&self, task: &CallbackTask) -> Result<(), CallbackStoreError> {
        let (outcome, status) = outcome_parts(task.last_outcome);
        let (state, agent) = state_parts(&task.state);
        let updates = COLUMNS
            .split(", ")
            .skip(1)
            .map(|column| format!("{column} = EXCLUDED.{column}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO callback_tasks ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
             $10, $11, $12, $13, $14, $15, $16, $17, $18) ON CONFLICT (id) DO UPDATE SET {updates}"
        );
        self.client
            .execute(
                &sql,
                &[
                    &(task.id.0 as i64),
                    &task.work_order.as_str(),
                    &task.number.dial_string(),
                    &task.reason.as_str(),
                    &task.window.earliest,
                    &task.window.latest,
                    &task.owner,
                    &task.queue,
                    &count(task.attempts),
                    &count(task.max_attempts),
                    &task.not_before,
                    &state,
                    &agent,
                    &outcome,
                    &status,
                    &count(task.preemptions),
                    &task.created_at,
                    &task.updated_at,
                ],
            )
            .await
            .map_err(query)?;
        Ok(())
    }

    async fn get(&self, id: TaskId) -> Result<Option<CallbackTask>, CallbackStoreError> {
        self.client
            .query_opt(
                &format!("SELECT {COLUMNS} FROM callback_tasks WHERE id = $1"),
                &[&(id.0 as i64)],
            )
            .await
            .map_err(query)?
            .map(|row| read_row(&row))
            .transpose()
    }

    async fn open_tasks(&self) -> Result<Vec<CallbackTask>, CallbackStoreError> {
        let rows = self
            .client
            .query(
                &format!("SELECT {COLUMNS} FROM callback_tasks WHERE {OPEN_STATES} ORDER BY id"),
                &[],
            )
            .await
            .map_err(query)?;
        rows.iter().map(read_row).collect()
    }

    async fn highest_id(&self) -> Result<Option<TaskId>, CallbackStoreError> {
        let row = self
            .client
            .query_one("SELECT max(id) FROM callback_tasks", &[])
            .await
            .map_err(query)?;
        let max: Option<i64> = row.try_get(0).map_err(query)?;
        Ok(max.map(|id| TaskId(id as u64)))
    }

    async fn list(
        &self,
        filter: &ListFilter,
        now: DateTime<Utc>,
    ) -> Result<Vec<CallbackTask>, CallbackStoreError> {
        let ListQuery { sql, binds_now } = filter.query(|n| format!("${n}"));
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        if binds_now {
            params.push(&now);
        }
        if let Some(owner) = &filter.owner {
            params.push(owner);
        }
        let rows = self.client.query(&sql, &params).await.map_err(query)?;
        let mut tasks = rows.iter().map(read_row).collect::<Result<Vec<_>, _>>()?;
        // The SQL narrows; the shared predicate has the last word.
        tasks.retain(|task| filter.matches(task, now));
        tasks.truncate(filter.limit);
        Ok(tasks)
    }
}

fn query(e: tokio_postgres::Error) -> CallbackStoreError {
    CallbackStoreError::Query(Box::new(e))
}

/// Counts are `INTEGER`; the scheduler's are far below `i32::MAX`.
fn count(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn read_row(row: &Row) -> Result<CallbackTask, CallbackStoreError> {
    let id: i64 = row.try_get(0).map_err(query)?;
    let corrupt =
        |column: &'static str, value: String| CallbackStoreError::Corrupt { id, column, value };
    let text =
        |idx: usize| -> Result<String, CallbackStoreError> { row.try_get(idx).map_err(query) };
    let opt_text = |idx: usize| -> Result<Option<String>, CallbackStoreError> {
        row.try_get(idx).map_err(query)
    };
    let time = |idx: usize| -> Result<DateTime<Utc>, CallbackStoreError> {
        row.try_get(idx).map_err(query)
    };
    let count = |idx: usize, column: &'static str| -> Result<u32, CallbackStoreError> {
        let value: i32 = row.try_get(idx).map_err(query)?;
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
    let state = state_from_parts(id, &text(11)?, opt_text(12)?)?;
    let status: Option<i32> = row.try_get(14).map_err(query)?;
    let last_outcome = outcome_from_parts(id, opt_text(13)?.as_deref(), status.map(i64::from))?;
    Ok(CallbackTask {
        id: TaskId(u64::try_from(id).map_err(|_| corrupt("id", id.to_string()))?),
        work_order,
        number,
        reason,
        window: Window {
            earliest: time(4)?,
            latest: time(5)?,
        },
        owner: opt_text(6)?,
        queue: text(7)?,
        attempts: count(8, "attempts")?,
        max_attempts: count(9, "max_attempts")?,
        not_before: time(10)?,
        state,
        last_outcome,
        preemptions: count(15, "preemptions")?,
        created_at: time(16)?,
        updated_at: time(17)?,
    })
}
