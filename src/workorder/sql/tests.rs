//! The worker's group commit: savepoints keep one job's failure to itself, and a lost
//! database fails the whole group at once.

use super::sqlite::SqliteDb;
use super::*;
use crate::workorder::fixtures::{base_time, inbound_order};

type Answer<T> = oneshot::Receiver<Result<T, StoreError>>;

fn job<T, F>(work: F) -> (Box<dyn Job>, Answer<T>)
where
    T: Send + 'static,
    F: FnMut(&mut dyn Db) -> Result<T, StoreError> + Send + 'static,
{
    let (reply, answer) = oneshot::channel();
    let job = Box::new(TypedJob {
        work,
        writes: true,
        result: None,
        reply,
    });
    (job, answer)
}

fn create_job(n: u64, caller: &str) -> (Box<dyn Job>, Answer<()>) {
    let mut order = inbound_order(n, base_time());
    order.caller = caller.to_owned();
    job(move |db| logic::create(db, &order))
}

fn row_count(db: &mut SqliteDb) -> usize {
    db.query("SELECT id FROM work_orders", &[])
        .expect("count")
        .len()
}

#[test]
fn a_group_of_jobs_commits_together_and_each_gets_its_answer() {
    let mut db = SqliteDb::memory();
    let (first, first_answer) = create_job(1, "13800000001");
    let (retry, retry_answer) = create_job(1, "13800000001");
    let (clash, clash_answer) = create_job(1, "13999999999");
    let (second, second_answer) = create_job(2, "13800000002");
    assert!(run_batch(&mut db, vec![first, retry, clash, second]));
    assert!(matches!(first_answer.blocking_recv(), Ok(Ok(()))));
    // A retried create of the identical order succeeds (idempotent call path).
    assert!(matches!(retry_answer.blocking_recv(), Ok(Ok(()))));
    assert!(matches!(
        clash_answer.blocking_recv(),
        Ok(Err(StoreError::Duplicate(_)))
    ));
    assert!(matches!(second_answer.blocking_recv(), Ok(Ok(()))));
    assert_eq!(row_count(&mut db), 2);
}

#[test]
fn a_failing_job_is_rolled_back_alone_and_the_others_commit() {
    let mut db = SqliteDb::memory();
    let (first, first_answer) = create_job(1, "13800000001");
    let (failing, failing_answer) = job(|db: &mut dyn Db| -> Result<(), StoreError> {
        // Writes, then fails: its write must not survive.
        logic::create(db, &inbound_order(9, base_time()))?;
        db.execute("INSERT INTO no_such_table VALUES (1)", &[])?;
        Ok(())
    });
    let (second, second_answer) = create_job(2, "13800000002");
    assert!(run_batch(&mut db, vec![first, failing, second]));
    assert!(matches!(first_answer.blocking_recv(), Ok(Ok(()))));
    assert!(matches!(
        failing_answer.blocking_recv(),
        Ok(Err(StoreError::Query(_)))
    ));
    assert!(matches!(second_answer.blocking_recv(), Ok(Ok(()))));
    assert_eq!(row_count(&mut db), 2);
}

#[test]
fn a_lost_database_fails_every_job_of_the_group_and_keeps_nothing() {
    let mut db = SqliteDb::memory();
    let (first, first_answer) = create_job(1, "13800000001");
    let (losing, losing_answer) = job(|_: &mut dyn Db| -> Result<(), StoreError> {
        Err(StoreError::Unavailable {
            reason: "server stopped".into(),
            source: None,
        })
    });
    assert!(!run_batch(&mut db, vec![first, losing]));
    for answer in [first_answer, losing_answer] {
        match answer.blocking_recv() {
            Ok(Err(e)) => assert!(e.is_transient(), "{e}"),
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
    assert_eq!(row_count(&mut db), 0);
}
