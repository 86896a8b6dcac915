//! The retention job's schedule (I/O): every `[store] purge_interval_minutes` the
//! engine purges the work orders and recordings older than `[store] retention_days`
//! ([`crate::workorder::retention::run_purge`]; each purge goes into the store's purge
//! log, so the job is itself audited). The decisions are the pure
//! [`RetentionPolicy`]'s; this task only waits, asks and logs.
//!
//! The log says what went (how many orders, from which ids to which, how many
//! recordings) and never a caller number (R12): ids and recording paths carry none. A
//! store that is down skips a run; the next run catches up, since the cutoff is
//! recomputed each time.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::workorder::WorkOrderStore;
use crate::workorder::retention::{RetentionPolicy, run_purge};

/// Who the purge log names as the purger.
pub const RETENTION_ACTOR: &str = "retention";

/// Purges every `interval` (the first run one interval after start, so start-up is not
/// slowed), until `stop` turns true. With no retention period configured
/// (`retention_days = 0`) it returns at once.
pub async fn run(
    store: Arc<dyn WorkOrderStore>,
    keep_for: Option<chrono::Duration>,
    interval: Duration,
    recordings_base: PathBuf,
    mut stop: watch::Receiver<bool>,
) {
    let Some(keep_for) = keep_for else {
        info!("retention: no retention period configured; work orders are kept");
        return;
    };
    let policy = RetentionPolicy { keep_for };
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        purge_once(store.as_ref(), policy, recordings_base.clone()).await;
    }
}

/// One run of the job, logged.
pub async fn purge_once(
    store: &dyn WorkOrderStore,
    policy: RetentionPolicy,
    recordings_base: PathBuf,
) {
    let now = Utc::now();
    match run_purge(store, policy, now, RETENTION_ACTOR, recordings_base).await {
        Ok((report, deleted)) => {
            if report.orders.is_empty() && report.recordings.is_empty() {
                info!(cutoff = %policy.cutoff(now), "retention: nothing to purge");
            } else {
                info!(
                    cutoff = %policy.cutoff(now),
                    orders = report.orders.len(),
                    first = %report.orders.first().map(|id| id.to_string()).unwrap_or_default(),
                    last = %report.orders.last().map(|id| id.to_string()).unwrap_or_default(),
                    recordings_deleted = deleted.deleted,
                    recordings_already_gone = deleted.missing,
                    "retention: purged work orders and their recordings"
                );
            }
            for (path, reason) in &deleted.failed {
                warn!(path, reason, "retention: a recording could not be deleted");
            }
        }
        Err(e) => warn!(error = %e, "retention: purge failed; the next run tries again"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workorder::SqlStore;
    use crate::workorder::fixtures::inbound_order;

    #[tokio::test]
    async fn the_job_purges_on_its_schedule_and_stops_when_told() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn WorkOrderStore> =
            Arc::new(SqlStore::open(&dir.path().join("data")).expect("open"));
        let now = Utc::now();
        let old = inbound_order(1, now - chrono::Duration::days(40));
        let young = inbound_order(2, now - chrono::Duration::days(1));
        for order in [&old, &young] {
            store.create(order).await.expect("create");
        }
        std::fs::create_dir_all(dir.path().join("recordings")).expect("dir");
        std::fs::write(dir.path().join("recordings/old.wav"), b"RIFF").expect("wav");
        store
            .mark_answered(&old.id, old.offered_at, Some("recordings/old.wav"))
            .await
            .expect("answer");

        let (stop_tx, stop_rx) = watch::channel(false);
        let job = tokio::spawn(run(
            store.clone(),
            Some(chrono::Duration::days(30)),
            Duration::from_millis(20),
            dir.path().into(),
            stop_rx,
        ));
        // Wait for the first scheduled run: logged in the store, then the recording
        // deleted (the files go after the store's purge).
        let wav = dir.path().join("recordings/old.wav");
        let mut polls = 0;
        let log = loop {
            let log = store.purge_log().await.expect("purge log");
            if !log.is_empty() && !wav.exists() {
                break log;
            }
            polls += 1;
            assert!(polls < 3_000, "no purge ran: log {log:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(log[0].orders, vec![old.id.clone()]);
        assert_eq!(log[0].actor, RETENTION_ACTOR);
        assert!(store.get(&old.id).await.expect("get").is_none());
        assert!(store.get(&young.id).await.expect("get").is_some());

        stop_tx.send_replace(true);
        job.await.expect("the job stops when told");
    }

    #[tokio::test]
    async fn without_a_retention_period_nothing_is_purged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn WorkOrderStore> =
            Arc::new(SqlStore::open(&dir.path().join("data")).expect("open"));
        let old = inbound_order(1, Utc::now() - chrono::Duration::days(4000));
        store.create(&old).await.expect("create");
        let (_stop_tx, stop_rx) = watch::channel(false);
        run(
            store.clone(),
            None,
            Duration::from_millis(1),
            dir.path().into(),
            stop_rx,
        )
        .await;
        assert!(store.get(&old.id).await.expect("get").is_some());
        assert!(store.purge_log().await.expect("log").is_empty());
    }
}
