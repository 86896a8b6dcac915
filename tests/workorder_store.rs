//! Runs the shared work order store conformance suite (R10, R31) against the embedded
//! SQLite store, each check on a fresh store in its own temporary directory, plus the
//! checks only a file-backed store can have (files created, permissions, reopen).

use std::sync::Arc;

use hotline::workorder::WorkOrderStore;
use hotline::workorder::conformance;
use hotline::workorder::sqlite::{DB_FILE_NAME, SqliteStore};

fn fresh_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("data")).expect("open store");
    (dir, store)
}

#[tokio::test]
async fn create_then_get_round_trips_full_caller_number_r10() {
    let (_dir, store) = fresh_store();
    conformance::create_then_get_round_trips(&store).await;
}

#[tokio::test]
async fn duplicate_create_is_refused() {
    let (_dir, store) = fresh_store();
    conformance::duplicate_create_is_refused(&store).await;
}

#[tokio::test]
async fn answered_then_ended_r8_r10() {
    let (_dir, store) = fresh_store();
    conformance::answered_then_ended(&store).await;
}

#[tokio::test]
async fn answer_without_path_keeps_existing_path() {
    let (_dir, store) = fresh_store();
    conformance::answer_without_path_keeps_existing_path(&store).await;
}

#[tokio::test]
async fn abandon_and_reject_reasons_are_kept_r5() {
    let (_dir, store) = fresh_store();
    conformance::abandon_and_reject_reasons_are_kept(&store).await;
}

#[tokio::test]
async fn unknown_ids_are_not_found() {
    let (_dir, store) = fresh_store();
    conformance::unknown_ids_are_not_found(&store).await;
}

#[tokio::test]
async fn list_recent_is_newest_first_and_limited() {
    let (_dir, store) = fresh_store();
    conformance::list_recent_is_newest_first_and_limited(&store).await;
}

#[tokio::test]
async fn find_by_call_id() {
    let (_dir, store) = fresh_store();
    conformance::find_by_call_id(&store).await;
}

#[tokio::test]
async fn call_counts_since_buckets_by_offer_minute_r5() {
    let (_dir, store) = fresh_store();
    conformance::call_counts_since_buckets_by_offer_minute(&store).await;
}

#[tokio::test]
async fn end_unfinished_closes_open_orders_r4() {
    let (_dir, store) = fresh_store();
    conformance::end_unfinished_closes_open_orders(&store).await;
}

#[tokio::test]
async fn persists_across_close_and_reopen_r4_r10() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).expect("open");
    let written = conformance::persistence_write(&store).await;
    store.close().await.expect("close");

    let reopened = SqliteStore::open(dir.path()).expect("reopen");
    conformance::persistence_check(&reopened, &written).await;
}

#[tokio::test]
async fn persists_when_dropped_without_close_r10() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).expect("open");
    let written = conformance::persistence_write(&store).await;
    // No orderly close: every acknowledged write must already be on disk.
    drop(store);

    let reopened = SqliteStore::open(dir.path()).expect("reopen");
    conformance::persistence_check(&reopened, &written).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_from_many_tasks() {
    let (_dir, store) = fresh_store();
    let store: Arc<dyn WorkOrderStore> = Arc::new(store);
    conformance::concurrent_creates(store).await;
}

#[tokio::test]
async fn open_creates_directory_and_database_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("nested").join("data");
    let store = SqliteStore::open(&data_dir).expect("open");
    assert_eq!(store.path(), data_dir.join(DB_FILE_NAME));
    assert!(data_dir.join(DB_FILE_NAME).is_file());
}

#[cfg(unix)]
#[tokio::test]
async fn store_files_are_private_to_the_owner_r12() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let store = SqliteStore::open(&data_dir).expect("open");
    conformance::persistence_write(&store).await;
    for path in [
        data_dir.clone(),
        data_dir.join(DB_FILE_NAME),
        data_dir.join(format!("{DB_FILE_NAME}-wal")),
    ] {
        let mode = std::fs::metadata(&path)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{} is mode {mode:o}", path.display());
    }
}
