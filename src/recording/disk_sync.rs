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

/// One `syncfs` per filesystem among `files`; counts the files whose sync succeeded.
fn sync_batch(files: &[Arc<File>]) {
    let mut synced = 0;
    for (file, sharing) in by_filesystem(files) {
        match syncfs(file) {
            Ok(()) => synced += sharing,
            Err(error) => failed(&error),
        }
    }
    metrics::counter!(crate::metrics::RECORDINGS_SYNCED_TOTAL).increment(synced);
}

/// `files` grouped by the filesystem they are on: one file of each group and how many
/// the group holds. A file whose metadata cannot be read is reported and left out.
fn by_filesystem(files: &[Arc<File>]) -> Vec<(&File, u64)> {
    let mut groups: Vec<(u64, &File, u64)> = Vec::new();
    for file in files {
        match file.metadata() {
            Ok(metadata) => match groups.iter_mut().find(|group| group.0 == metadata.dev()) {
                Some(group) => group.2 += 1,
                None => groups.push((metadata.dev(), file, 1)),
            },
            Err(error) => failed(&error),
        }
    }
    groups
        .into_iter()
        .map(|(_, file, sharing)| (file, sharing))
        .collect()
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

    fn files_in(dir: &std::path::Path, count: usize) -> Vec<Arc<File>> {
        (0..count)
            .map(|i| {
                let path = dir.join(format!("{i}.wav"));
                std::fs::write(&path, b"RIFF").unwrap();
                Arc::new(File::open(&path).unwrap())
            })
            .collect()
    }

    /// Files on one filesystem make one group, so one `syncfs`; a file on another
    /// filesystem (tmpfs, where there is one) makes a second.
    #[test]
    fn files_are_grouped_by_filesystem_for_one_syncfs_each() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = files_in(dir.path(), 5);
        let groups = by_filesystem(&files);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].1, 5);

        let shm = std::path::Path::new("/dev/shm");
        let other = tempfile::tempdir_in(shm).ok();
        if let Some(other) = &other
            && std::fs::metadata(shm).unwrap().dev() != std::fs::metadata(dir.path()).unwrap().dev()
        {
            files.extend(files_in(other.path(), 2));
            let sharing: Vec<u64> = by_filesystem(&files).iter().map(|g| g.1).collect();
            assert_eq!(sharing, [5, 2]);
        }
    }

    /// A round counts every file it synced.
    #[test]
    fn a_synced_batch_is_counted_file_by_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = files_in(dir.path(), 5);
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
