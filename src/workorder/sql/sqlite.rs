//! The embedded default work order store (R31): one SQLite file,
//! `work-orders.sqlite3`, in the data directory. Needs no setup. Does blocking file
//! I/O, on the store's worker thread (`workorder::sql`).
//!
//! # Durability versus speed (R10)
//! WAL journal with `synchronous=FULL`: every commit is fsynced to the WAL before the
//! caller hears `Ok`, so a work order survives a power cut or kernel crash, not just an
//! engine crash. Group commit (`workorder::sql`) keeps the fsync cost from limiting the
//! call rate.
//!
//! # Failing fast, and a file that vanishes
//! Another process holding the file (`BEGIN EXCLUSIVE` in a `sqlite3` shell, a backup
//! tool) makes a write wait at most [`BUSY_TIMEOUT`], then fail as
//! [`StoreError::Unavailable`]: the engine's store queue retries it, the call does
//! not wait. Before each group of jobs the worker checks that the path still names
//! the file it opened (same device and inode): a database deleted or replaced while
//! the engine runs is reported (every write fails, `health()` says so) instead of
//! writes going on into an unlinked file that a restart would lose. And a data
//! directory that once held a store but lost its file is refused at start-up, never
//! silently recreated empty: the marker file [`CREATED_MARKER`] remembers that a
//! store was created there.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode};

use super::{Db, DbError, Dialect, Row, SqlStore, Value};
use crate::workorder::store::{ErrorSource, StoreError, message_source};

/// The database file inside the data directory.
pub const DB_FILE_NAME: &str = "work-orders.sqlite3";

/// Written next to the database when it is first created. While it exists, a missing
/// database file is an error, not a first start: delete the marker too to start over
/// with an empty store on purpose.
pub const CREATED_MARKER: &str = "work-orders.sqlite3.created";

/// The SQLite store is the shared SQL store opened on a file.
pub type SqliteStore = SqlStore;

/// Schema version kept in `PRAGMA user_version`; bump it with a new migration step.
pub const SCHEMA_VERSION: i64 = 3;

/// The longest a write waits for another process's lock before reporting the store
/// unavailable. Short on purpose: the call path's queue retries; a call never waits.
pub const BUSY_TIMEOUT: Duration = Duration::from_millis(200);

/// Frozen: this is what version 1 databases hold; change the schema only by adding a
/// step such as [`SCHEMA_V3_STEP`].
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
/// `ADD COLUMN`s with no default, which SQLite does without rewriting the table.
const SCHEMA_V2_STEP: &str = "
ALTER TABLE work_orders ADD COLUMN queue TEXT;
ALTER TABLE work_orders ADD COLUMN queued_at TEXT;
ALTER TABLE work_orders ADD COLUMN connected_at TEXT;
CREATE INDEX work_orders_by_queued_at ON work_orders (queued_at) WHERE queued_at IS NOT NULL;
";

/// Version 2 → 3: the matter (issue 8): its fields on the order, further calls, the
/// audit trail, follow-up tasks, forbidden-phrase hits, the append-only read-audit
/// log, the purge log, and the knowledge base and service directory with trigram
/// full-text indexes for Chinese keyword search. Existing orders read back with an
/// empty matter.
const SCHEMA_V3_STEP: &str = "
ALTER TABLE work_orders ADD COLUMN matter TEXT;
ALTER TABLE work_orders ADD COLUMN answer TEXT;
ALTER TABLE work_orders ADD COLUMN handling_unit TEXT;
ALTER TABLE work_orders ADD COLUMN urgent INTEGER NOT NULL DEFAULT 0;
ALTER TABLE work_orders ADD COLUMN enterprise TEXT;
ALTER TABLE work_orders ADD COLUMN enterprise_referred_at TEXT;
ALTER TABLE work_orders ADD COLUMN enterprise_attitude TEXT;
ALTER TABLE work_orders ADD COLUMN enterprise_efficiency TEXT;
ALTER TABLE work_orders ADD COLUMN enterprise_quality TEXT;
ALTER TABLE work_orders ADD COLUMN service_rating TEXT;
ALTER TABLE work_orders ADD COLUMN unit_rating TEXT;
ALTER TABLE work_orders ADD COLUMN qa_selected_at TEXT;
ALTER TABLE work_orders ADD COLUMN qa_reason TEXT;
CREATE INDEX work_orders_by_status ON work_orders (status, offered_at);
CREATE INDEX work_orders_by_agent ON work_orders (agent, offered_at);
CREATE TABLE work_order_calls (
    work_order     TEXT NOT NULL,
    call_id        TEXT NOT NULL,
    kind           TEXT NOT NULL,
    direction      TEXT NOT NULL,
    caller         TEXT NOT NULL,
    callee         TEXT NOT NULL,
    offered_at     TEXT NOT NULL,
    answered_at    TEXT,
    ended_at       TEXT,
    hangup_side    TEXT,
    outcome        TEXT,
    outcome_reason TEXT,
    recording_path TEXT,
    agent          TEXT,
    PRIMARY KEY (work_order, call_id)
) STRICT;
CREATE TABLE work_order_events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    work_order TEXT NOT NULL,
    at         TEXT NOT NULL,
    actor      TEXT NOT NULL,
    kind       TEXT NOT NULL,
    detail     TEXT NOT NULL
) STRICT;
CREATE INDEX work_order_events_by_order ON work_order_events (work_order, seq);
CREATE TABLE follow_up_tasks (
    work_order TEXT NOT NULL,
    number     INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    due_from   TEXT NOT NULL,
    due_until  TEXT NOT NULL,
    note       TEXT NOT NULL,
    done_at    TEXT,
    PRIMARY KEY (work_order, number)
) STRICT;
CREATE INDEX follow_up_tasks_open ON follow_up_tasks (due_until) WHERE done_at IS NULL;
CREATE TABLE forbidden_phrase_hits (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    work_order TEXT NOT NULL,
    phrase     TEXT NOT NULL,
    field      TEXT NOT NULL,
    at         TEXT NOT NULL,
    actor      TEXT NOT NULL
) STRICT;
CREATE INDEX forbidden_phrase_hits_by_order ON forbidden_phrase_hits (work_order);
CREATE TABLE read_audit (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT NOT NULL,
    actor      TEXT NOT NULL,
    what       TEXT NOT NULL,
    work_order TEXT,
    target     TEXT NOT NULL
) STRICT;
CREATE INDEX read_audit_by_at ON read_audit (at);
CREATE TRIGGER read_audit_no_update BEFORE UPDATE ON read_audit
    BEGIN SELECT RAISE(ABORT, 'read_audit is append-only'); END;
CREATE TRIGGER read_audit_no_delete BEFORE DELETE ON read_audit
    BEGIN SELECT RAISE(ABORT, 'read_audit is append-only'); END;
CREATE TABLE purge_log (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT NOT NULL,
    actor      TEXT NOT NULL,
    cutoff     TEXT NOT NULL,
    orders     TEXT NOT NULL,
    recordings TEXT NOT NULL
) STRICT;
CREATE TRIGGER purge_log_no_update BEFORE UPDATE ON purge_log
    BEGIN SELECT RAISE(ABORT, 'purge_log is append-only'); END;
CREATE TRIGGER purge_log_no_delete BEFORE DELETE ON purge_log
    BEGIN SELECT RAISE(ABORT, 'purge_log is append-only'); END;
CREATE TABLE knowledge (
    id    TEXT PRIMARY KEY NOT NULL,
    title TEXT NOT NULL,
    body  TEXT NOT NULL,
    tags  TEXT NOT NULL
) STRICT;
CREATE VIRTUAL TABLE knowledge_search USING fts5(id UNINDEXED, text, tokenize = 'trigram');
CREATE TABLE providers (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    services   TEXT NOT NULL,
    area       TEXT NOT NULL,
    phone      TEXT NOT NULL,
    address    TEXT NOT NULL,
    tags       TEXT NOT NULL,
    added_from TEXT
) STRICT;
CREATE VIRTUAL TABLE providers_search USING fts5(id UNINDEXED, text, tokenize = 'trigram');
";

impl SqlStore {
    /// Opens (creating on first start) `data_dir/work-orders.sqlite3`, migrating its
    /// schema, and starts the worker thread.
    ///
    /// Blocking: call it at start-up, or from `spawn_blocking`. On Unix the directory
    /// (when created here) is `0700` and the file `0600`: they hold full caller
    /// numbers (R12). Refuses a data directory whose database vanished (see
    /// [`CREATED_MARKER`]).
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(DB_FILE_NAME);
        let location = path.display().to_string();
        let open_error = |source: ErrorSource| StoreError::Open {
            location: location.clone(),
            source,
        };
        create_private_dir(data_dir).map_err(|e| open_error(Arc::new(e)))?;
        let marker = data_dir.join(CREATED_MARKER);
        if !path.exists() && marker.exists() {
            return Err(open_error(message_source(format!(
                "the database file is missing but {} says a store was created here: it \
                     vanished (restore it from a backup; to start over with an empty store on \
                     purpose, delete the marker file too)",
                marker.display()
            ))));
        }
        create_private_file(&path).map_err(|e| open_error(Arc::new(e)))?;
        let mut conn = Connection::open(&path).map_err(|e| open_error(Arc::new(e)))?;
        configure(&conn).map_err(|e| open_error(Arc::new(e)))?;
        migrate(&mut conn).map_err(|e| match e {
            MigrateError::Sqlite(e) => open_error(Arc::new(e)),
            MigrateError::TooNew(found) => StoreError::UnsupportedSchema {
                found,
                supported: SCHEMA_VERSION,
            },
        })?;
        create_private_file(&marker).map_err(|e| open_error(Arc::new(e)))?;
        let identity = file_identity(&path).map_err(|e| open_error(Arc::new(e)))?;
        let db = SqliteDb {
            conn,
            path: path.clone(),
            identity,
        };
        SqlStore::start(Box::new(db), "sqlite", location, Some(path))
    }
}

/// The SQLite side of the [`Db`] seam.
pub(crate) struct SqliteDb {
    conn: Connection,
    path: PathBuf,
    identity: FileIdentity,
}

impl SqliteDb {
    /// An in-memory database at the current schema, for unit tests of the shared SQL.
    #[cfg(test)]
    pub(crate) fn memory() -> Self {
        let mut conn = Connection::open_in_memory().expect("in-memory database");
        if migrate(&mut conn).is_err() {
            panic!("migration of an empty database failed");
        }
        Self {
            conn,
            path: PathBuf::new(),
            identity: FileIdentity::default(),
        }
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
        })
    }
}

fn read_value(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        // The schema holds no reals or blobs; shown as text so a corrupt row is
        // reported with what it holds.
        ValueRef::Real(r) => Value::Text(r.to_string()),
        ValueRef::Blob(b) => Value::Text(format!("<{} byte blob>", b.len())),
    }
}

fn classify(e: rusqlite::Error) -> DbError {
    let code = e.sqlite_error().map(|s| (s.code, s.extended_code));
    let source: ErrorSource = Arc::new(e);
    match code {
        Some((ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked, _)) => DbError::Unavailable(
            format!(
                "the database file is locked by another process (waited {} ms)",
                BUSY_TIMEOUT.as_millis()
            ),
            Some(source),
        ),
        Some((ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase, _)) => DbError::Corrupt(source),
        Some((
            ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::CannotOpen
            | ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied
            | ErrorCode::FileLockingProtocolFailed,
            _,
        )) => DbError::Unavailable(source.to_string(), Some(source)),
        Some((ErrorCode::ConstraintViolation, extended))
            if extended == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                || extended == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            DbError::UniqueViolation(source)
        }
        _ => DbError::Other(source),
    }
}

impl Db for SqliteDb {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let mut statement = self.conn.prepare_cached(sql).map_err(classify)?;
        let changed = statement
            .execute(rusqlite::params_from_iter(params))
            .map_err(classify)?;
        Ok(changed as u64)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let mut statement = self.conn.prepare_cached(sql).map_err(classify)?;
        let columns = statement.column_count();
        let mut rows = statement
            .query(rusqlite::params_from_iter(params))
            .map_err(classify)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(classify)? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                values.push(read_value(row.get_ref(i).map_err(classify)?));
            }
            out.push(values);
        }
        Ok(out)
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        self.conn.execute_batch(sql).map_err(classify)
    }

    fn ensure_ready(&mut self) -> Result<(), DbError> {
        if self.path.as_os_str().is_empty() {
            return Ok(()); // in-memory (tests)
        }
        match file_identity(&self.path) {
            Ok(now) if now == self.identity => Ok(()),
            Ok(_) => Err(DbError::Unavailable(
                format!(
                    "the database file {} was replaced while the engine ran; restart to use \
                     the new file",
                    self.path.display()
                ),
                None,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(DbError::Unavailable(
                format!(
                    "the database file {} vanished while the engine ran; nothing more is \
                     written to it (restore it from a backup and restart; it is never \
                     recreated empty)",
                    self.path.display()
                ),
                None,
            )),
            Err(e) => Err(DbError::Unavailable(
                format!(
                    "cannot check the database file {}: {e}",
                    self.path.display()
                ),
                Some(Arc::new(e)),
            )),
        }
    }

    /// A group that may write takes the write lock at once, so a locked file fails
    /// within the busy timeout before any job runs. A group of reads does not: in WAL
    /// mode it reads a snapshot beside any writer, and holds no writer up.
    fn begin_statement(&self, writes: bool) -> &'static str {
        if writes { "BEGIN IMMEDIATE" } else { "BEGIN" }
    }

    fn release_memory(&mut self) {
        release_page_cache(&self.conn);
    }
}

/// Frees the pages of the connection's cache that no statement holds: after a burst of
/// work orders the cache stays full (`cache_size`, 2 MB by default) until the
/// connection closes. The pages come back from the file (the OS's cache) when needed.
fn release_page_cache(conn: &Connection) {
    // Failing leaves the cache as it is: bounded, only not given back.
    let _ = conn.release_memory();
}

/// Which file a path names: device and inode on Unix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct FileIdentity {
    device: u64,
    inode: u64,
}

#[cfg(unix)]
fn file_identity(path: &Path) -> std::io::Result<FileIdentity> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    Ok(FileIdentity {
        device: meta.dev(),
        inode: meta.ino(),
    })
}

#[cfg(not(unix))]
fn file_identity(path: &Path) -> std::io::Result<FileIdentity> {
    std::fs::metadata(path).map(|_| FileIdentity::default())
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
    let steps: [(i64, &str); 3] = [(1, SCHEMA_V1), (2, SCHEMA_V2_STEP), (3, SCHEMA_V3_STEP)];
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

/// Creates the directory (and its parents) readable by the engine's user only (R12);
/// the callback store keeps its database beside the work orders' and uses this too.
#[cfg(unix)]
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Creates the (empty) file with owner-only permissions if it does not exist; SQLite
/// gives its `-wal` and `-shm` files the database's permissions.
#[cfg(unix)]
pub(crate) fn create_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map(drop)
}

#[cfg(not(unix))]
pub(crate) fn create_private_file(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workorder::WorkOrderStore;
    use crate::workorder::model::WorkOrderId;

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
        let db = SqliteDb::memory();
        let plan: Vec<String> = db
            .conn
            .prepare(&format!(
                "EXPLAIN QUERY PLAN {}",
                crate::workorder::sql::CONNECTION_RATE_COUNTS_SQL
            ))
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

    /// R13: keyword search hands the LIKE to the FTS5 trigram index (`:L` in the
    /// plan), Chinese keywords included, instead of scanning the entries.
    #[test]
    fn keyword_search_goes_through_the_trigram_index() {
        let db = SqliteDb::memory();
        let plan: Vec<String> = db
            .conn
            .prepare(
                "EXPLAIN QUERY PLAN SELECT id FROM knowledge WHERE id IN \
                 (SELECT id FROM knowledge_search WHERE text LIKE ?1)",
            )
            .expect("explain")
            .query_map(["%社保卡%"], |row| row.get::<_, String>(3))
            .expect("plan")
            .collect::<Result<_, _>>()
            .expect("plan rows");
        assert!(
            plan.iter()
                .any(|step| step.contains("knowledge_search VIRTUAL TABLE INDEX 0:L")),
            "{plan:?}"
        );
    }

    #[test]
    fn the_read_audit_log_refuses_updates_and_deletes_r12() {
        let db = SqliteDb::memory();
        db.conn
            .execute(
                "INSERT INTO read_audit (at, actor, what, target) VALUES ('t', 'a', 'recording', 'x')",
                [],
            )
            .expect("append");
        assert!(
            db.conn
                .execute("UPDATE read_audit SET actor = 'b'", [])
                .is_err()
        );
        assert!(db.conn.execute("DELETE FROM read_audit", []).is_err());
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

    /// Bytes the connection's page cache holds now.
    fn cache_used(conn: &Connection) -> i32 {
        let (mut current, mut highest) = (0, 0);
        // SAFETY: the handle is the live connection's; the two out-pointers are ours.
        let code = unsafe {
            rusqlite::ffi::sqlite3_db_status(
                conn.handle(),
                rusqlite::ffi::SQLITE_DBSTATUS_CACHE_USED,
                &mut current,
                &mut highest,
                0,
            )
        };
        assert_eq!(code, rusqlite::ffi::SQLITE_OK);
        current
    }

    /// Issue 9 row 6: a burst of writes leaves the page cache full; releasing it gives
    /// most of it back, and the data stays readable.
    #[test]
    fn a_burst_of_writes_leaves_a_page_cache_that_release_gives_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = Connection::open(dir.path().join(DB_FILE_NAME)).expect("open");
        configure(&conn).expect("configure");
        conn.execute_batch("CREATE TABLE burst (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
            .expect("table");
        let body = "x".repeat(200);
        conn.execute_batch("BEGIN").expect("begin");
        for id in 0..5_000 {
            conn.execute("INSERT INTO burst VALUES (?1, ?2)", (id, &body))
                .expect("insert");
        }
        conn.execute_batch("COMMIT").expect("commit");
        let full = cache_used(&conn);
        assert!(full > 500_000, "cache after the burst: {full} bytes");
        release_page_cache(&conn);
        let released = cache_used(&conn);
        assert!(released < full / 10, "{full} → {released} bytes");
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM burst", [], |row| row.get(0))
            .expect("count");
        assert_eq!(rows, 5_000);
    }

    #[tokio::test]
    async fn open_fails_with_the_path_when_the_directory_is_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let not_a_dir = dir.path().join("plain-file");
        std::fs::write(&not_a_dir, b"x").expect("write");
        match SqliteStore::open(&not_a_dir) {
            Err(StoreError::Open { location, .. }) => {
                assert!(location.starts_with(&not_a_dir.display().to_string()))
            }
            Err(other) => panic!("expected Open, got {other:?}"),
            Ok(_) => panic!("opened a store inside a file"),
        }
    }
}
