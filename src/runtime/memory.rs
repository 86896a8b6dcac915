//! Giving freed memory back to the system after a flood (issue 9 row 6), I/O.
//!
//! glibc's allocator keeps freed memory in its per-thread arenas: after a flood of
//! INVITEs (each a transaction, a parsed message, a 503 retransmitted until timer H)
//! the engine's resident size stays at the flood's peak although the memory is free,
//! and each later flood, landing on other worker threads' arenas, raises it further.
//! `malloc_trim(0)` returns the free pages of every arena; it walks the heap, so it
//! runs on the blocking pool, every [`TRIM_INTERVAL`]. Other allocators (musl) return
//! memory themselves; there this task does nothing.
//!
//! Trimming alone is not enough: glibc raises its mmap threshold to the size of any
//! large block freed (up to 32 MiB) and its trim threshold to twice that, and
//! `malloc_trim` never shrinks the top of a thread's arena, only `free` does, above the
//! trim threshold. After floods had freed large blocks, a worker's arena held 21 MB of
//! which 1.6 MB was in use, and the engine's resident size kept climbing.
//! [`tune_allocator`] pins both thresholds at glibc's own starting values, so they no
//! longer climb.
//!
//! Nor does it touch memory still in use: the work order store's SQLite page cache
//! fills (2 MB) during a flood of work orders and stays full until the connection
//! closes. Each round first empties it ([`WorkOrderStore::release_memory`]), then trims,
//! so what the store freed goes back in the same round.
//!
//! And memory that only a scrape frees: the Prometheus recorder keeps every histogram
//! sample until it is folded in, which `/metrics` does before it renders. With nobody
//! scraping (no Prometheus yet, or it is down) samples piled up with every call; each
//! round folds them in too.

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;

use crate::workorder::WorkOrderStore;

/// How often free memory is handed back: short next to a flood's aftermath (timer H,
/// 32 s), long next to the cost of a trim (milliseconds for a heap of this size).
pub const TRIM_INTERVAL: Duration = Duration::from_secs(10);

/// Blocks at least this large get their own mapping, given back when freed; the free
/// top of an arena above this is given back too. glibc's starting value for both,
/// held there (see the module's documentation).
pub const ALLOCATOR_THRESHOLD: usize = 128 * 1024;

/// Pins glibc's mmap and trim thresholds at [`ALLOCATOR_THRESHOLD`]. Call it at
/// start-up, before the runtime's threads allocate. Does nothing on other allocators.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tune_allocator() {
    let threshold = ALLOCATOR_THRESHOLD as libc::c_int;
    // SAFETY: mallopt takes plain integers and only changes the allocator's settings,
    // under its own lock. A refused setting (0) leaves glibc's default, which works.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, threshold);
        libc::mallopt(libc::M_TRIM_THRESHOLD, threshold);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune_allocator() {}

/// Every [`TRIM_INTERVAL`] until `stop` turns true: empties the work order store's
/// page cache, then trims the allocator, so what the store freed goes back in the same
/// round.
pub async fn return_freed_memory(
    store: Arc<dyn WorkOrderStore>,
    metrics: PrometheusHandle,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(TRIM_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let round = async {
            ticker.tick().await;
            // A store stuck on a lock must not hold up the trimming for long.
            let _ = tokio::time::timeout(TRIM_INTERVAL, store.release_memory()).await;
            metrics.run_upkeep();
            let _ = tokio::task::spawn_blocking(trim).await;
        };
        // Stop is heard mid-round too: a store busy with a flood's writes must not hold
        // up shutdown for a round.
        tokio::select! {
            _ = round => {}
            // The guard wait_for returns is not Send: drop it inside.
            _ = async { let _ = stop.wait_for(|stopped| *stopped).await; } => return,
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim takes no pointers and only rearranges the allocator's own
    // free lists under its locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_task_trims_until_told_to_stop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn WorkOrderStore> =
            Arc::new(crate::workorder::SqlStore::open(dir.path()).expect("open"));
        let (stop_tx, stop_rx) = watch::channel(false);
        let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
            .build_recorder()
            .handle();
        let task = tokio::spawn(return_freed_memory(store, metrics, stop_rx));
        tokio::time::sleep(TRIM_INTERVAL * 3).await;
        assert!(!task.is_finished());
        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("stops when told")
            .unwrap();
    }
}
