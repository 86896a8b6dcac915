//! Retention: work orders and their recordings are kept for a configured period, then
//! purged (the purge itself goes into the store's purge log). [`RetentionPolicy`]
//! decides what is due and is pure; [`delete_recordings`] does the file I/O after the
//! store's [`purge_older_than`](super::WorkOrderStore::purge_older_than). The engine
//! runs [`run_purge`] every `[store] purge_interval_minutes` (`runtime::retention`).
//!
//! Age is the first call's `offered_at`, whatever the status: the period is a legal
//! keeping period, and an order nobody closed must not be kept for ever because of it.

use std::path::Path;

use chrono::{DateTime, Duration, Utc};

use super::model::WorkOrderId;

/// How long work orders and recordings are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub keep_for: Duration,
}

impl RetentionPolicy {
    /// Orders offered before this instant are due at `now`.
    pub fn cutoff(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - self.keep_for
    }

    /// Whether an order whose first call was offered at `offered_at` is due at `now`.
    pub fn is_due(&self, now: DateTime<Utc>, offered_at: DateTime<Utc>) -> bool {
        offered_at < self.cutoff(now)
    }

    /// The ids among `orders` (id, first call offered at) that are due at `now`.
    pub fn due<'a>(
        &self,
        now: DateTime<Utc>,
        orders: impl IntoIterator<Item = (&'a WorkOrderId, DateTime<Utc>)>,
    ) -> Vec<WorkOrderId> {
        orders
            .into_iter()
            .filter(|(_, offered_at)| self.is_due(now, *offered_at))
            .map(|(id, _)| id.clone())
            .collect()
    }
}

/// What [`delete_recordings`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeletedRecordings {
    pub deleted: usize,
    /// Already gone (deleted earlier, or never written).
    pub missing: usize,
    /// Could not be deleted: path and reason.
    pub failed: Vec<(String, String)>,
}

/// Deletes the recordings a purge reported. Relative paths resolve against `base`
/// (the engine's working directory, where `recordings.dir` is relative to).
pub fn delete_recordings(base: &Path, paths: &[String]) -> DeletedRecordings {
    let mut report = DeletedRecordings::default();
    for path in paths {
        match std::fs::remove_file(base.join(path)) {
            Ok(()) => report.deleted += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => report.missing += 1,
            Err(e) => report.failed.push((path.clone(), e.to_string())),
        }
    }
    report
}

/// The whole retention job, as the runtime schedules it: purge the
/// orders due at `now` under `policy` (audited in the store's purge log as `actor`),
/// then delete their recordings off the async workers. Recordings that could not be
/// deleted are reported, not retried: the next run finds no order for them, so the
/// caller should log [`DeletedRecordings::failed`].
pub async fn run_purge(
    store: &dyn super::WorkOrderStore,
    policy: RetentionPolicy,
    now: DateTime<Utc>,
    actor: &str,
    recordings_base: std::path::PathBuf,
) -> Result<(super::PurgeReport, DeletedRecordings), super::StoreError> {
    let report = store
        .purge_older_than(policy.cutoff(now), actor, now)
        .await?;
    let paths = report.recordings.clone();
    let deleted = tokio::task::spawn_blocking(move || delete_recordings(&recordings_base, &paths))
        .await
        .unwrap_or_else(|e| DeletedRecordings {
            failed: vec![("(all)".into(), e.to_string())],
            ..DeletedRecordings::default()
        });
    Ok((report, deleted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workorder::fixtures::base_time;

    #[test]
    fn orders_older_than_the_period_are_due_and_no_others() {
        let policy = RetentionPolicy {
            keep_for: Duration::days(365),
        };
        let now = base_time();
        let old = WorkOrderId::from_parts(now - Duration::days(366), 1);
        let edge = WorkOrderId::from_parts(now - Duration::days(365), 2);
        let young = WorkOrderId::from_parts(now - Duration::days(10), 3);
        let orders = [
            (&old, now - Duration::days(366)),
            (&edge, now - Duration::days(365)),
            (&young, now - Duration::days(10)),
        ];
        assert_eq!(policy.due(now, orders), vec![old]);
        assert_eq!(policy.cutoff(now), now - Duration::days(365));
    }

    #[tokio::test]
    async fn the_retention_job_purges_due_orders_and_their_recordings() {
        use crate::workorder::WorkOrderStore;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::workorder::SqlStore::open(&dir.path().join("data")).expect("open");
        let now = base_time();
        let old = crate::workorder::fixtures::inbound_order(1, now - Duration::days(40));
        let young = crate::workorder::fixtures::inbound_order(2, now - Duration::days(2));
        for order in [&old, &young] {
            store.create(order).await.expect("create");
        }
        std::fs::create_dir_all(dir.path().join("recordings")).expect("dir");
        std::fs::write(dir.path().join("recordings/old.wav"), b"RIFF").expect("wav");
        store
            .mark_answered(&old.id, now, Some("recordings/old.wav"))
            .await
            .expect("answer");
        let policy = RetentionPolicy {
            keep_for: Duration::days(30),
        };
        let (report, deleted) = run_purge(&store, policy, now, "retention", dir.path().into())
            .await
            .expect("purge");
        assert_eq!(report.orders, vec![old.id.clone()]);
        assert_eq!(deleted.deleted, 1);
        assert!(!dir.path().join("recordings/old.wav").exists());
        assert!(store.get(&young.id).await.expect("get").is_some());
        assert_eq!(store.purge_log().await.expect("log"), vec![report]);
    }

    #[test]
    fn deleting_recordings_counts_what_was_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.wav"), b"RIFF").expect("write");
        let report = delete_recordings(dir.path(), &["a.wav".into(), "gone.wav".into()]);
        assert_eq!(report.deleted, 1);
        assert_eq!(report.missing, 1);
        assert!(report.failed.is_empty());
        assert!(!dir.path().join("a.wav").exists());
    }
}
