//! The work-order writer (I/O): the switch's store writes go through one bounded queue
//! to one task that applies them in order (each work order's writes in the order the
//! switch made them; different work orders' writes together, so the store commits a
//! batch at once), and call handling never waits for the store (R10 writes still
//! happen as the call happens, a few milliseconds later).
//!
//! Policy: the queue holds [`QUEUE_CAPACITY`] writes (thousands of calls' worth; a
//! call makes four or five). A write that fails is retried, in order, with backoff,
//! until it succeeds: a locked or briefly unavailable store delays the work orders, it
//! does not lose them. Writes that can never succeed (an update for an order the store
//! does not have) are logged and counted, not retried for ever. When the queue is full
//! (the store has been down long enough to fill it), new writes are dropped and counted
//! in `hotline_store_writes_dropped_total`; the backlog is exported so an alert fires
//! long before.
//!
//! QA sampling (R23) happens here too, off the call path: each `Connected` write is an
//! agent taking a call, and the [`QaSampler`] (when one is given) decides, in the order
//! the switch made the writes, whether that call is picked for review; a picked order is
//! marked with the connect, and retried with it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::callbacks::{CallbackStore, CallbackStoreError};
use crate::ivr::WorkOrderWrite;
use crate::qa::QaSampler;
use crate::switch::StoreWrite;
use crate::workorder::{
    CallerRating, Category, DetailsUpdate, QaSelection, RatingTarget, Satisfaction, StoreError,
    WorkOrderId, WorkOrderStore,
};

/// Who the audit trail names for a random QA pick (R23).
pub const QA_SAMPLER_ACTOR: &str = "qa-sampler";
/// The reason a random pick gives (the other is `forbidden phrase`, R28).
pub const QA_SAMPLE_REASON: &str = "random sample";

/// Writes waiting for the store.
pub const QUEUE_CAPACITY: usize = 65_536;
const FIRST_RETRY: Duration = Duration::from_millis(50);
const MAX_RETRY: Duration = Duration::from_secs(2);

/// The switch task's end of the writer.
#[derive(Clone)]
pub struct StoreWriter {
    queue: mpsc::Sender<StoreWrite>,
    backlog: Arc<AtomicUsize>,
}

impl StoreWriter {
    /// Starts the writer task over `store`; it ends when every `StoreWriter` is dropped
    /// and the queue is drained.
    pub fn start(store: Arc<dyn WorkOrderStore>) -> (StoreWriter, tokio::task::JoinHandle<()>) {
        StoreWriter::start_sampling(store, None)
    }

    /// As [`StoreWriter::start`], with every call an agent takes offered to `sampler`
    /// (R23).
    pub fn start_sampling(
        store: Arc<dyn WorkOrderStore>,
        sampler: Option<QaSampler>,
    ) -> (StoreWriter, tokio::task::JoinHandle<()>) {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let backlog = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(run(store, receiver, backlog.clone(), sampler, None));
        (StoreWriter { queue, backlog }, task)
    }

    /// As [`StoreWriter::start_sampling`], with the callback tasks' saves going to
    /// `callbacks`, in order with their work order's other writes (R20).
    pub fn start_with_callbacks(
        store: Arc<dyn WorkOrderStore>,
        sampler: Option<QaSampler>,
        callbacks: Option<Arc<dyn CallbackStore>>,
    ) -> (StoreWriter, tokio::task::JoinHandle<()>) {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let backlog = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(run(store, receiver, backlog.clone(), sampler, callbacks));
        (StoreWriter { queue, backlog }, task)
    }

    /// Queues a write; never waits.
    pub fn push(&self, write: StoreWrite) {
        if let StoreWrite::Ended {
            reason: Some(reason),
            id,
            ..
        } = &write
        {
            info!(work_order = %id, reason, "the engine ended the call");
        }
        match self.queue.try_send(write) {
            Ok(()) => {
                let backlog = self.backlog.fetch_add(1, Ordering::Relaxed) + 1;
                metrics::gauge!(crate::metrics::STORE_BACKLOG).set(backlog as f64);
            }
            Err(e) => {
                error!(work_order = %e.into_inner().work_order(), "store queue full; write dropped");
                metrics::counter!(crate::metrics::STORE_WRITES_DROPPED_TOTAL).increment(1);
            }
        }
    }

    /// Writes queued and not yet applied.
    pub fn backlog(&self) -> usize {
        self.backlog.load(Ordering::Relaxed)
    }
}

/// Writes taken from the queue at once. The store commits concurrent writes in one
/// transaction (group commit), so a batch costs about one commit, not one per write.
const MAX_BATCH: usize = 256;

async fn run(
    store: Arc<dyn WorkOrderStore>,
    mut receiver: mpsc::Receiver<StoreWrite>,
    backlog: Arc<AtomicUsize>,
    mut sampler: Option<QaSampler>,
    callbacks: Option<Arc<dyn CallbackStore>>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let taken = batch.len();
        // Each work order's writes stay in order (a create before its answer); different
        // work orders go to the store together. A batch ends before the next begins, so
        // order holds across batches too.
        let mut groups: Vec<Vec<(StoreWrite, bool)>> = Vec::new();
        let mut group_of: HashMap<WorkOrderId, usize> = HashMap::new();
        for write in batch.drain(..) {
            let picked = match (&write, sampler.as_mut()) {
                (StoreWrite::Connected { at, agent, .. }, Some(sampler)) => {
                    sampler.handle_call(*at, agent)
                }
                _ => false,
            };
            let write = (write, picked);
            let id = write.0.work_order().clone();
            match group_of.get(&id) {
                Some(&index) => groups[index].push(write),
                None => {
                    group_of.insert(id, groups.len());
                    groups.push(vec![write]);
                }
            }
        }
        futures_util::future::join_all(
            groups
                .iter()
                .map(|writes| apply_in_order(store.as_ref(), callbacks.as_deref(), writes)),
        )
        .await;
        let left = backlog
            .fetch_sub(taken, Ordering::Relaxed)
            .saturating_sub(taken);
        metrics::gauge!(crate::metrics::STORE_BACKLOG).set(left as f64);
    }
}

/// One work order's writes, in order, each retried while the store is unavailable;
/// a write flagged `true` also marks the order picked for QA (R23).
async fn apply_in_order(
    store: &dyn WorkOrderStore,
    callbacks: Option<&dyn CallbackStore>,
    writes: &[(StoreWrite, bool)],
) {
    for (write, picked) in writes {
        if let StoreWrite::Callback(task) = write {
            match callbacks {
                Some(callbacks) => save_callback(callbacks, task).await,
                None => warn!(task = %task.id, "no callback store: task not saved"),
            }
            continue;
        }
        let mut delay = FIRST_RETRY;
        loop {
            let applied = match apply(store, write).await {
                Ok(()) if *picked => select_for_qa(store, write).await,
                other => other,
            };
            match applied {
                Ok(()) => break,
                Err(e) if retryable(&e) => {
                    warn!(error = %e, work_order = %write.work_order(), "store write failed; retrying");
                    metrics::counter!(crate::metrics::STORE_ERRORS_TOTAL).increment(1);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RETRY);
                }
                Err(e) => {
                    error!(error = %e, work_order = %write.work_order(), "store write refused");
                    metrics::counter!(crate::metrics::STORE_ERRORS_TOTAL).increment(1);
                    break;
                }
            }
        }
    }
}

/// Whether trying again can help: the store was busy, unreachable or closed for a
/// moment. A duplicate of a create (an earlier attempt did commit) is success, handled
/// in [`apply`]; anything else (a refused value, a corrupt row) would fail again and
/// hold up every write behind it.
/// Marks the order of a `Connected` write as a random QA pick, at the connect time.
async fn select_for_qa(store: &dyn WorkOrderStore, write: &StoreWrite) -> Result<(), StoreError> {
    let StoreWrite::Connected { id, at, .. } = write else {
        return Ok(());
    };
    let selection = QaSelection {
        selected_at: *at,
        reason: QA_SAMPLE_REASON.to_owned(),
    };
    store.select_for_qa(id, &selection, QA_SAMPLER_ACTOR).await
}

fn retryable(error: &StoreError) -> bool {
    error.is_transient()
}

/// One callback task's save, retried while the store is unavailable (R20: a task the
/// scheduler made must survive a restart).
async fn save_callback(callbacks: &dyn CallbackStore, task: &crate::callbacks::CallbackTask) {
    let mut delay = FIRST_RETRY;
    loop {
        match callbacks.save(task).await {
            Ok(()) => return,
            Err(e @ (CallbackStoreError::Query(_) | CallbackStoreError::Connect(_))) => {
                warn!(error = %e, task = %task.id, "callback save failed; retrying");
                metrics::counter!(crate::metrics::STORE_ERRORS_TOTAL).increment(1);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY);
            }
            Err(e) => {
                error!(error = %e, task = %task.id, "callback save refused");
                metrics::counter!(crate::metrics::STORE_ERRORS_TOTAL).increment(1);
                return;
            }
        }
    }
}

async fn apply(store: &dyn WorkOrderStore, write: &StoreWrite) -> Result<(), StoreError> {
    match write {
        StoreWrite::Note { id, at, text } => store.add_note(id, text, "engine", *at).await,
        // Saved by `save_callback`, never here.
        StoreWrite::Callback(_) => Ok(()),
        StoreWrite::Create(order) => match store.create(order).await {
            Err(StoreError::Duplicate(_)) => Ok(()),
            other => other,
        },
        StoreWrite::Answered { id, at, recording } => {
            store.mark_answered(id, *at, recording.as_deref()).await
        }
        StoreWrite::Queued { id, at, queue } => store.mark_queued(id, *at, queue).await,
        StoreWrite::Connected { id, at, agent } => store.mark_connected(id, *at, agent).await,
        StoreWrite::Ended {
            id,
            at,
            side,
            outcome,
            reason,
        } => {
            store.mark_ended(id, *at, *side, *outcome).await?;
            // Why the engine ended the call (no ACK, session timer, RTP silence,
            // shutdown…) goes on the work order's trail, where a supervisor reads it.
            match reason {
                Some(reason) => {
                    let note = format!("call ended by the engine: {reason}");
                    store.add_note(id, &note, "engine", *at).await
                }
                None => Ok(()),
            }
        }
        StoreWrite::Ivr { id, at, write } => apply_ivr_fact(store, id, *at, write).await,
    }
}

/// What the dialplan learned, in the store's terms; the actor on the trail is `ivr`.
async fn apply_ivr_fact(
    store: &dyn WorkOrderStore,
    id: &WorkOrderId,
    at: chrono::DateTime<chrono::Utc>,
    write: &WorkOrderWrite,
) -> Result<(), StoreError> {
    const ACTOR: &str = "ivr";
    let details = |update: DetailsUpdate| async move {
        store.update_details(id, &update, ACTOR, at).await.map(drop)
    };
    match write {
        WorkOrderWrite::Category(category) => {
            details(DetailsUpdate {
                category: Some(*category),
                ..DetailsUpdate::default()
            })
            .await
        }
        WorkOrderWrite::Urgent => {
            details(DetailsUpdate {
                urgent: Some(true),
                ..DetailsUpdate::default()
            })
            .await
        }
        WorkOrderWrite::HotlineComplaint => {
            // R15: filed under the category agents never read, so supervisors own it.
            details(DetailsUpdate {
                category: Some(Category::ServiceComplaint),
                ..DetailsUpdate::default()
            })
            .await?;
            let note = "complaint about the hotline itself (R15)";
            store.add_note(id, note, ACTOR, at).await
        }
        WorkOrderWrite::CallbackRequested { queue } => {
            let note = match queue {
                Some(queue) => {
                    format!("the caller asked to be called back instead of waiting in {queue}")
                }
                None => "the caller is to be called back".to_owned(),
            };
            store.add_note(id, &note, ACTOR, at).await
        }
        WorkOrderWrite::Rating {
            score,
            min,
            max,
            agent,
        } => {
            // R24: the standard's level on the order, and the keypad score exactly.
            let note = format!(
                "survey: {score} on {min}–{max} for agent {}",
                agent.as_deref().unwrap_or("none")
            );
            let rating = CallerRating {
                target: RatingTarget::Service,
                score: Satisfaction::from_scale(*score, *min, *max),
            };
            store.rate(id, &rating, ACTOR, at).await?;
            store.add_note(id, &note, ACTOR, at).await
        }
        WorkOrderWrite::Digits { name, digits } => {
            store
                .add_note(id, &format!("{name}: {digits}"), ACTOR, at)
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration as Span;

    use super::*;
    use crate::workorder::SqlStore;
    use crate::workorder::fixtures::{base_time, inbound_order};

    /// Pushes `calls` calls, each created then connected to `agent` a minute apart, and
    /// waits until the writer has applied them all.
    async fn run_calls(
        store: Arc<dyn WorkOrderStore>,
        sampler: Option<QaSampler>,
        agents: &[&str],
        calls: u64,
    ) -> Vec<(WorkOrderId, String)> {
        let (writer, task) = StoreWriter::start_sampling(store, sampler);
        let mut made = Vec::new();
        for n in 0..calls {
            let at = base_time() + Span::minutes(n as i64);
            let order = inbound_order(n + 1, at);
            let agent = agents[n as usize % agents.len()].to_owned();
            made.push((order.id.clone(), agent.clone()));
            writer.push(StoreWrite::Create(Box::new(order.clone())));
            writer.push(StoreWrite::Connected {
                id: order.id,
                at: at + Span::seconds(5),
                agent,
            });
        }
        drop(writer);
        task.await.expect("writer");
        made
    }

    #[tokio::test]
    async fn connected_calls_are_sampled_for_qa_at_the_configured_share_r23() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn WorkOrderStore> =
            Arc::new(SqlStore::open(&dir.path().join("data")).expect("open"));
        // 25 %: each agent's calls of the day are cut into blocks of four, one picked
        // in each, so 40 calls of each of two agents give exactly 10 picks each.
        // The day runs on UTC here so that the 80 minutes stay within one day.
        let sampler = QaSampler::new(2_500, 0, 7);
        let made = run_calls(store.clone(), Some(sampler), &["1001", "1002"], 80).await;
        let mut picked_per_agent: HashMap<String, usize> = HashMap::new();
        for (id, agent) in &made {
            let file = store.get_file(id).await.expect("read").expect("stored");
            assert_eq!(file.order.agent.as_deref(), Some(agent.as_str()));
            if let Some(qa) = &file.matter.qa {
                assert_eq!(qa.reason, QA_SAMPLE_REASON);
                assert_eq!(Some(qa.selected_at), file.order.connected_at);
                let events = store.events(id).await.expect("events");
                assert!(
                    events.iter().any(|e| e.actor == QA_SAMPLER_ACTOR),
                    "the pick is on the audit trail: {events:?}"
                );
                *picked_per_agent.entry(agent.clone()).or_default() += 1;
            }
        }
        assert_eq!(
            picked_per_agent.get("1001"),
            Some(&10),
            "{picked_per_agent:?}"
        );
        assert_eq!(
            picked_per_agent.get("1002"),
            Some(&10),
            "{picked_per_agent:?}"
        );
    }

    #[tokio::test]
    async fn a_complaint_about_the_hotline_is_filed_where_agents_cannot_read_it_r15() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn WorkOrderStore> =
            Arc::new(SqlStore::open(&dir.path().join("data")).expect("open"));
        let order = inbound_order(1, base_time());
        let (writer, task) = StoreWriter::start(store.clone());
        writer.push(StoreWrite::Create(Box::new(order.clone())));
        for write in [
            WorkOrderWrite::Category(Category::Complaint),
            WorkOrderWrite::HotlineComplaint,
        ] {
            writer.push(StoreWrite::Ivr {
                id: order.id.clone(),
                at: base_time() + Span::seconds(3),
                write,
            });
        }
        drop(writer);
        task.await.expect("writer");
        let file = store
            .get_file(&order.id)
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(file.order.category, Some(Category::ServiceComplaint));
        assert!(!Category::is_visible_to_agents(file.order.category));
    }

    #[tokio::test]
    async fn without_a_sampler_no_call_is_picked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn WorkOrderStore> =
            Arc::new(SqlStore::open(&dir.path().join("data")).expect("open"));
        let made = run_calls(store.clone(), None, &["1001"], 10).await;
        for (id, _) in &made {
            let file = store.get_file(id).await.expect("read").expect("stored");
            assert!(file.order.connected_at.is_some());
            assert!(file.matter.qa.is_none());
        }
    }
}
