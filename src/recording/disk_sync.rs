//! Makes finished recordings durable in batches, off the call path (R22).
//!
//! Syncing each recording as its call ended cost a device flush and a synchronous
//! inode write per call: at a thousand calls a second, a large share of a core spent
//! in the kernel, on the engine's threads. Finished files are handed here instead, and
//! one thread syncs them together, at most once per [`SYNC_INTERVAL`]: one `syncfs` per
//! filesystem the files are on, however many there are.
//!
//! What this changes, and what it does not: a finished recording sits in the page
//! cache, not yet on the device, for up to about a second (plus the sync itself).
//! Killing the engine loses none of it, since the kernel holds the pages; only a power
//! cut or a kernel crash within that second could, as it always could for the audio
//! of a call still in progress. `syncfs` writes every dirty page of the filesystem,
//! other programs' included: recordings on a volume of their own keep that cost to
//! themselves.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The longest a finished recording waits for its sync when others keep finishing;
/// a lone one is synced at once.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);

static QUEUE: OnceLock<Option<Sender<Arc<File>>>> = OnceLock::new();

/// Queues a finished recording for the next sync. Never waits; the thread that syncs
/// is started on first use, once per process (it serves every recordings directory).
pub(super) fn make_durable(file: Arc<File>) {
    let queue = QUEUE.get_or_init(|| {
        let (sender, files) = mpsc::channel();
        match std::thread::Builder::new()
            .name("recording-sync".into())
            .spawn(move || run(files))
        {
            Ok(_) => Some(sender),
            Err(error) => {
                tracing::error!(%error, "no thread to sync recordings; each is synced as it ends");
                None
            }
        }
    });
    let unsent = match queue {
        Some(sender) => sender.send(file).err().map(|returned| returned.0),
        None => Some(file),
    };
    if let Some(file) = unsent {
        sync_one(&file);
    }
}

fn run(files: Receiver<Arc<File>>) {
    let mut last_round: Option<Instant> = None;
    while let Ok(first) = files.recv() {
        // Files that finish while the previous round's interval runs join this round.
        if let Some(last) = last_round {
            let wait = (last + SYNC_INTERVAL).saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
        }
        let mut batch = vec![first];
        batch.extend(files.try_iter());
        last_round = Some(Instant::now());
        sync_batch(&batch);
    }
}

/// One `syncfs` per filesystem among `files`.
fn sync_batch(files: &[Arc<File>]) {
    let mut synced_devices: Vec<u64> = Vec::new();
    for file in files {
        let device = match file.metadata() {
            Ok(metadata) => metadata.dev(),
            Err(error) => {
                failed(&error);
                continue;
            }
        };
        if synced_devices.contains(&device) {
            continue;
        }
        synced_devices.push(device);
        if let Err(error) = syncfs(file) {
            failed(&error);
        }
    }
    metrics::counter!(crate::metrics::RECORDINGS_SYNCED_TOTAL).increment(files.len() as u64);
}

fn sync_one(file: &File) {
    match file.sync_data() {
        Ok(()) => metrics::counter!(crate::metrics::RECORDINGS_SYNCED_TOTAL).increment(1),
        Err(error) => failed(&error),
    }
}

fn syncfs(file: &File) -> io::Result<()> {
    // SAFETY: `syncfs` only reads the descriptor, which `file` keeps open for the call.
    if unsafe { libc::syncfs(file.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn failed(error: &io::Error) {
    tracing::error!(%error, "finished recordings could not be synced to disk");
    metrics::counter!(crate::metrics::RECORDING_SYNC_FAILURES_TOTAL).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files finished one after another are synced in one round once the first
    /// round's interval has passed: the counter moves by the whole batch.
    #[test]
    fn a_batch_of_files_on_one_filesystem_is_synced_with_one_syncfs() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<Arc<File>> = (0..5)
            .map(|i| {
                let path = dir.path().join(format!("{i}.wav"));
                std::fs::write(&path, b"RIFF").unwrap();
                Arc::new(File::open(&path).unwrap())
            })
            .collect();
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || sync_batch(&files));
        let rendered = handle.render();
        assert!(
            rendered.contains("hotline_recordings_synced_total 5"),
            "{rendered}"
        );
        assert!(!rendered.contains("hotline_recording_sync_failures_total"));
    }
}
