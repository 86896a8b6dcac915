//! The per-call recording writer (I/O): creates the file, then one tokio task owns
//! it, batching frames from a bounded channel and writing them together with a
//! fresh header every `header_interval`, so a killed engine leaves a playable file.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::NaiveDate;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::wav::{self, MAX_DATA_BYTES, WAV_HEADER_LEN};
use super::{RecordingConfig, RecordingError, StereoFrame};

/// Frames the channel holds before the media side starts dropping: 5 s of audio,
/// long enough to ride out a slow disk for a moment without holding much memory.
pub const FRAME_QUEUE_CAPACITY: usize = 250;

/// Audio buffered before it is written even if the header interval has not come
/// yet, so a long configured interval cannot grow the buffer without bound.
const MAX_BUFFERED_BYTES: usize = 2 * wav::BYTE_RATE as usize;

/// Recordings are R12 personal data: only the engine's user may read them.
const FILE_MODE: u32 = 0o600;
/// Group may list and read (QA staff group); nobody else.
const DIRECTORY_MODE: u32 = 0o750;

/// Creates the root of the recordings tree (and any missing parent) mode 0750, like the
/// date directories below it (R12); a root that exists already open to others is
/// closed to them (the engine's own directory: group and owner keep their access).
pub fn create_root(root: &Path) -> Result<(), RecordingError> {
    let failed = |source| RecordingError::CreateDirectory {
        path: root.to_path_buf(),
        source,
    };
    DirBuilder::new()
        .recursive(true)
        .mode(DIRECTORY_MODE)
        .create(root)
        .map_err(failed)?;
    let mode = std::fs::metadata(root)
        .map_err(failed)?
        .permissions()
        .mode();
    if mode & 0o007 != 0 {
        let closed = mode & 0o7770;
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(closed)).map_err(failed)?;
        tracing::warn!(
            path = %root.display(),
            from = format!("{:o}", mode & 0o7777),
            to = format!("{closed:o}"),
            "recordings directory was open to others; closed (R12)"
        );
    }
    Ok(())
}

/// Where the recording of `work_order_id` made on `date` lives:
/// `<root>/<YYYY-MM-DD>/<work_order_id>.wav`.
pub fn recording_path(root: &Path, date: NaiveDate, work_order_id: &str) -> PathBuf {
    root.join(date.format("%Y-%m-%d").to_string())
        .join(format!("{work_order_id}.wav"))
}

/// Whether `id` can be a file name on its own: no separators, no `..`, nothing
/// a shell or a listing would choke on. Work order ids are engine-generated, so
/// anything else is a bug upstream, not something to escape.
fn is_safe_file_stem(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// One call being recorded. Hand [`Recording::frames`] (or [`Recording::sink`])
/// to the media task, then call [`Recording::finish`] when the call ends.
///
/// Dropping a `Recording` without `finish` does not lose audio: the writer still
/// drains and finalizes the file once every sender is gone; only the summary and
/// the metrics are lost.
#[derive(Debug)]
pub struct Recording {
    path: PathBuf,
    sender: mpsc::Sender<StereoFrame>,
    dropped: Arc<AtomicU64>,
    writer: JoinHandle<Result<WriterOutcome, RecordingError>>,
}

/// What a finished recording holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSummary {
    pub path: PathBuf,
    /// Frames written to the file.
    pub frames: u64,
    /// Audio length: 20 ms per frame.
    pub duration: Duration,
    /// Bytes of audio data, not counting the 44-byte header.
    pub bytes: u64,
    /// Frames the media side dropped because the queue was full (or the writer gone).
    pub dropped_frames: u64,
}

/// The media side's handle: pushing never waits, and a frame that does not fit is
/// dropped and counted in the recording's summary (the stated full-queue policy).
#[derive(Debug, Clone)]
pub struct FrameSink {
    sender: mpsc::Sender<StereoFrame>,
    dropped: Arc<AtomicU64>,
}

impl FrameSink {
    /// Queues `frame` for the writer without waiting. Returns `false` when the frame
    /// was dropped because the queue is full or the writer is gone.
    pub fn push(&self, frame: StereoFrame) -> bool {
        match self.sender.try_send(frame) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Closed(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Frames dropped so far by every sink of this recording.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Creates the date directory and the file (mode 0600 from the first byte on),
/// writes an empty header and spawns the writer task. Must be called inside a
/// tokio runtime. The file must not exist yet: an earlier recording is never
/// overwritten.
pub fn start(
    config: &RecordingConfig,
    date: NaiveDate,
    work_order_id: &str,
) -> Result<Recording, RecordingError> {
    let result = start_inner(config, date, work_order_id);
    if result.is_err() {
        metrics::counter!("hotline_recording_failures_total").increment(1);
    }
    result
}

fn start_inner(
    config: &RecordingConfig,
    date: NaiveDate,
    work_order_id: &str,
) -> Result<Recording, RecordingError> {
    let path = recording_path(&config.root, date, work_order_id);
    if !is_safe_file_stem(work_order_id) {
        return Err(RecordingError::InvalidWorkOrderId {
            id: work_order_id.to_owned(),
            path,
        });
    }
    if config.header_interval.is_zero() {
        return Err(RecordingError::InvalidHeaderInterval { path });
    }
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| RecordingError::NoRuntime { path: path.clone() })?;

    // Creating a directory and a 44-byte file is a few syscalls, done once per call
    // by the call task (never the media task), so it runs inline rather than paying
    // a blocking-pool hop before the first frame.
    let directory = path.parent().unwrap_or(&config.root);
    DirBuilder::new()
        .recursive(true)
        .mode(DIRECTORY_MODE)
        .create(directory)
        .map_err(|source| RecordingError::CreateDirectory {
            path: directory.to_path_buf(),
            source,
        })?;
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(&path)
        .map_err(|source| match source.kind() {
            io::ErrorKind::AlreadyExists => RecordingError::AlreadyExists { path: path.clone() },
            _ => RecordingError::Create {
                path: path.clone(),
                source,
            },
        })?;
    if let Err(source) = file.write_all_at(&wav::wav_header(0), 0) {
        // A file without its header (the disk full at the first byte) is no recording
        // and would count as an unplayable one: it goes.
        drop(file);
        let _ = std::fs::remove_file(&path);
        return Err(RecordingError::Create { path, source });
    }

    let (sender, receiver) = mpsc::channel(FRAME_QUEUE_CAPACITY);
    let writer = Writer {
        path: path.clone(),
        file: Arc::new(file),
        header_interval: config.header_interval,
        data_bytes: 0,
        frames_written: 0,
        frames_lost: 0,
        failure: None,
    };
    let writer = runtime.spawn(writer.run(receiver));
    tracing::debug!(path = %path.display(), "recording started");
    Ok(Recording {
        path,
        sender,
        dropped: Arc::new(AtomicU64::new(0)),
        writer,
    })
}

impl Recording {
    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A sender for the media task. Push with `try_send` only; on `Full` drop the
    /// frame (and count it: [`Recording::sink`] does both).
    pub fn frames(&self) -> mpsc::Sender<StereoFrame> {
        self.sender.clone()
    }

    /// A sender that never waits and counts what it drops into this recording's
    /// [`RecordingSummary::dropped_frames`].
    pub fn sink(&self) -> FrameSink {
        FrameSink {
            sender: self.sender.clone(),
            dropped: Arc::clone(&self.dropped),
        }
    }

    /// Waits until every sender is dropped and the queue is drained, writes the final
    /// header and syncs the file to disk. Counts the outcome in
    /// `hotline_recordings_written_total` or `hotline_recording_failures_total`.
    pub async fn finish(self) -> Result<RecordingSummary, RecordingError> {
        let Recording {
            path,
            sender,
            dropped,
            writer,
        } = self;
        drop(sender);
        let result = match writer.await {
            Ok(Ok(outcome)) => Ok(RecordingSummary {
                path,
                frames: outcome.frames,
                duration: wav::frames_duration(outcome.frames),
                bytes: outcome.data_bytes,
                dropped_frames: dropped.load(Ordering::Relaxed),
            }),
            Ok(Err(error)) => Err(error),
            Err(join_error) => Err(RecordingError::WriterTask {
                path,
                reason: join_error.to_string(),
            }),
        };
        match &result {
            Ok(summary) => {
                metrics::counter!("hotline_recordings_written_total").increment(1);
                tracing::debug!(
                    path = %summary.path.display(),
                    frames = summary.frames,
                    dropped = summary.dropped_frames,
                    "recording finished"
                );
            }
            Err(error) => {
                metrics::counter!("hotline_recording_failures_total").increment(1);
                tracing::warn!(%error, "recording failed");
            }
        }
        result
    }
}

#[derive(Debug)]
struct WriterOutcome {
    frames: u64,
    data_bytes: u64,
}

/// Why the writer stopped writing; it keeps draining the channel after that so
/// the media side never notices.
#[derive(Debug)]
enum WriteFailure {
    Io(io::Error),
    TooLong,
}

struct Writer {
    path: PathBuf,
    file: Arc<File>,
    header_interval: Duration,
    /// Audio bytes on disk and described by the header.
    data_bytes: u32,
    frames_written: u64,
    /// Frames received but not on disk because writing had failed.
    frames_lost: u64,
    failure: Option<WriteFailure>,
}

impl Writer {
    async fn run(
        mut self,
        mut receiver: mpsc::Receiver<StereoFrame>,
    ) -> Result<WriterOutcome, RecordingError> {
        let mut ticker =
            tokio::time::interval_at(Instant::now() + self.header_interval, self.header_interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut buffer: Vec<u8> = Vec::with_capacity(MAX_BUFFERED_BYTES);
        let mut buffered_frames: u64 = 0;

        loop {
            tokio::select! {
                // The header cadence is the crash-safety promise: check it first.
                biased;
                _ = ticker.tick() => {
                    buffer = self.write_batch(buffer, buffered_frames).await;
                    buffered_frames = 0;
                }
                frame = receiver.recv() => {
                    let Some(frame) = frame else { break };
                    if self.failure.is_some() {
                        // Keep draining so the media side never sees a full queue
                        // because of a dead disk.
                        self.frames_lost += 1;
                        continue;
                    }
                    wav::interleave(&frame, &mut buffer);
                    buffered_frames += 1;
                    if buffer.len() >= MAX_BUFFERED_BYTES {
                        buffer = self.write_batch(buffer, buffered_frames).await;
                        buffered_frames = 0;
                    }
                }
            }
        }

        self.write_batch(buffer, buffered_frames).await;
        self.sync_to_disk().await;
        // Frames that reached the writer but not the disk (disk full, size limit) are
        // dropped frames as much as those the media side could not queue: the metric
        // counts both, so it says what the "frames lost" log line says.
        if self.frames_lost > 0 {
            metrics::counter!(crate::metrics::RECORDING_FRAMES_DROPPED_TOTAL)
                .increment(self.frames_lost);
        }
        match self.failure.take() {
            None => Ok(WriterOutcome {
                frames: self.frames_written,
                data_bytes: u64::from(self.data_bytes),
            }),
            Some(WriteFailure::Io(source)) => Err(RecordingError::Write {
                path: self.path,
                frames_lost: self.frames_lost,
                source,
            }),
            Some(WriteFailure::TooLong) => Err(RecordingError::TooLong {
                path: self.path,
                frames_lost: self.frames_lost,
            }),
        }
    }

    /// Appends `buffer` and rewrites the header; returns the emptied buffer for reuse.
    ///
    /// The writes go through `spawn_blocking`: a disk that stalls (full, NFS,
    /// journal flush) would otherwise park a tokio worker and with it the media tasks
    /// of other calls. `tokio::fs::File` would hop to the blocking pool per call and
    /// buffer behind our back; one explicit hop per batch, with positional writes
    /// for data and header, is cheaper and leaves the file position out of it.
    ///
    /// No fsync here: a killed process leaves its written pages in the page cache,
    /// which is what R22 asks for; syncing every second per call would cost the disk
    /// more than the recordings themselves. `finish` syncs once.
    async fn write_batch(&mut self, mut buffer: Vec<u8>, frames: u64) -> Vec<u8> {
        if self.failure.is_some() {
            self.frames_lost += frames;
            buffer.clear();
            return buffer;
        }
        if buffer.is_empty() {
            return buffer;
        }
        let Some(new_data_bytes) = u32::try_from(buffer.len())
            .ok()
            .and_then(|len| self.data_bytes.checked_add(len))
            .filter(|total| *total <= MAX_DATA_BYTES)
        else {
            self.failure = Some(WriteFailure::TooLong);
            self.frames_lost += frames;
            buffer.clear();
            return buffer;
        };
        let file = Arc::clone(&self.file);
        let data_offset = WAV_HEADER_LEN as u64 + u64::from(self.data_bytes);
        let outcome = tokio::task::spawn_blocking(move || {
            let result = file
                .write_all_at(&buffer, data_offset)
                .and_then(|()| file.write_all_at(&wav::wav_header(new_data_bytes), 0));
            if result.is_err() {
                describe_data_on_disk(&file);
            }
            (buffer, result)
        })
        .await;
        match outcome {
            Ok((mut buffer, Ok(()))) => {
                self.data_bytes = new_data_bytes;
                self.frames_written += frames;
                buffer.clear();
                buffer
            }
            Ok((mut buffer, Err(error))) => {
                tracing::warn!(path = %self.path.display(), %error, "recording write failed");
                self.failure = Some(WriteFailure::Io(error));
                self.frames_lost += frames;
                buffer.clear();
                buffer
            }
            Err(join_error) => {
                self.failure = Some(WriteFailure::Io(io::Error::other(join_error.to_string())));
                self.frames_lost += frames;
                Vec::with_capacity(MAX_BUFFERED_BYTES)
            }
        }
    }

    async fn sync_to_disk(&mut self) {
        let file = Arc::clone(&self.file);
        let synced = tokio::task::spawn_blocking(move || file.sync_data())
            .await
            .unwrap_or_else(|join_error| Err(io::Error::other(join_error.to_string())));
        if let Err(error) = synced
            && self.failure.is_none()
        {
            self.failure = Some(WriteFailure::Io(error));
        }
    }
}

/// After a failed write part of the batch may be on disk. Best effort, since the
/// disk just failed: make the header describe the whole sample frames that are
/// there, so the file stays playable; a restart's repair fixes what this misses.
fn describe_data_on_disk(file: &File) {
    let Ok(metadata) = file.metadata() else {
        return;
    };
    let on_disk = metadata.len().saturating_sub(WAV_HEADER_LEN as u64);
    let whole_frames = on_disk - on_disk % u64::from(wav::BLOCK_ALIGN);
    let data_bytes = u32::try_from(whole_frames)
        .unwrap_or(MAX_DATA_BYTES)
        .min(MAX_DATA_BYTES);
    let _ = file.write_all_at(&wav::wav_header(data_bytes), 0);
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::recording::FRAME_SAMPLES;
    use crate::recording::wav::FRAME_BYTES;

    fn date() -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 3, 7).expect("valid date")
    }

    fn config(root: &Path, header_interval: Duration) -> RecordingConfig {
        RecordingConfig {
            root: root.to_path_buf(),
            header_interval,
        }
    }

    /// Left: a 400 Hz tone continuing across frames; right: silence.
    fn tone_frame(index: usize) -> StereoFrame {
        let mut frame = StereoFrame::SILENCE;
        for (i, sample) in frame.left.iter_mut().enumerate() {
            let t = (index * FRAME_SAMPLES + i) as f64 / f64::from(wav::SAMPLE_RATE_HZ);
            *sample = (8000.0 * (2.0 * std::f64::consts::PI * 400.0 * t).sin()) as i16;
        }
        frame
    }

    #[test]
    fn path_is_root_date_work_order_wav() {
        assert_eq!(
            recording_path(Path::new("/var/rec"), date(), "WO-42"),
            PathBuf::from("/var/rec/2025-03-07/WO-42.wav")
        );
    }

    #[test]
    fn work_order_ids_that_could_escape_the_directory_are_refused() {
        for id in ["", "..", "../x", "a/b", ".hidden", "a\0b", "a b", "名字"] {
            assert!(!is_safe_file_stem(id), "{id:?} accepted");
        }
        for id in ["WO-2025-000042", "3f2a_b.c", "7"] {
            assert!(is_safe_file_stem(id), "{id:?} refused");
        }
    }

    #[tokio::test]
    async fn file_is_created_0600_in_a_private_date_directory_r12() {
        let root = tempfile::tempdir().unwrap();
        let recording =
            start(&config(root.path(), Duration::from_secs(1)), date(), "WO-1").unwrap();
        assert_eq!(recording.path(), root.path().join("2025-03-07/WO-1.wav"));

        let file_mode = fs_mode(recording.path());
        let dir_mode = fs_mode(&root.path().join("2025-03-07"));
        assert_eq!(file_mode, 0o600);
        assert_eq!(
            dir_mode & 0o007,
            0,
            "date directory open to others: {dir_mode:o}"
        );
        assert_eq!(dir_mode & 0o700, 0o700);

        let summary = recording.finish().await.unwrap();
        assert_eq!(summary.frames, 0);
        assert_eq!(std::fs::read(&summary.path).unwrap(), wav::wav_header(0));
        assert_eq!(fs_mode(&summary.path), 0o600);
    }

    #[test]
    fn the_root_is_created_0750_and_an_open_one_is_closed_to_others_r12() {
        let parent = tempfile::tempdir().unwrap();
        let root = parent.path().join("deep").join("recordings");
        create_root(&root).unwrap();
        assert_eq!(fs_mode(&root), 0o750);
        assert_eq!(fs_mode(root.parent().unwrap()), 0o750);

        let open = parent.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_root(&open).unwrap();
        assert_eq!(fs_mode(&open), 0o750);
        // Idempotent, and a stricter root is left as the operator made it.
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o700)).unwrap();
        create_root(&open).unwrap();
        assert_eq!(fs_mode(&open), 0o700);
    }

    fn fs_mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn existing_recording_is_never_overwritten() {
        let root = tempfile::tempdir().unwrap();
        let config = config(root.path(), Duration::from_secs(1));
        let first = start(&config, date(), "WO-1").unwrap();
        let second = start(&config, date(), "WO-1");
        assert!(matches!(second, Err(RecordingError::AlreadyExists { .. })));
        first.finish().await.unwrap();
    }

    #[tokio::test]
    async fn bad_inputs_are_errors_not_panics() {
        let root = tempfile::tempdir().unwrap();
        let bad_id = start(&config(root.path(), Duration::from_secs(1)), date(), "../x");
        assert!(matches!(
            bad_id,
            Err(RecordingError::InvalidWorkOrderId { .. })
        ));
        let zero = start(&config(root.path(), Duration::ZERO), date(), "WO-1");
        assert!(matches!(
            zero,
            Err(RecordingError::InvalidHeaderInterval { .. })
        ));
        assert!(!root.path().join("2025-03-07").exists());
    }

    #[test]
    fn start_outside_a_runtime_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let result = start(&config(root.path(), Duration::from_secs(1)), date(), "WO-1");
        assert!(matches!(result, Err(RecordingError::NoRuntime { .. })));
    }

    #[tokio::test]
    async fn five_seconds_of_frames_read_back_with_hound_r22() {
        let root = tempfile::tempdir().unwrap();
        let recording =
            start(&config(root.path(), Duration::from_secs(1)), date(), "WO-5").unwrap();
        let sink = recording.sink();
        for index in 0..250 {
            assert!(sink.push(tone_frame(index)));
        }
        drop(sink);
        let summary = recording.finish().await.unwrap();

        assert_eq!(summary.frames, 250);
        assert_eq!(summary.duration, Duration::from_secs(5));
        assert_eq!(summary.bytes, 250 * FRAME_BYTES as u64);
        assert_eq!(summary.dropped_frames, 0);

        let mut reader = hound::WavReader::open(&summary.path).unwrap();
        let spec = reader.spec();
        assert_eq!(spec.channels, 2);
        assert_eq!(spec.sample_rate, 8000);
        assert_eq!(spec.bits_per_sample, 16);
        assert_eq!(spec.sample_format, hound::SampleFormat::Int);
        assert_eq!(reader.duration(), 250 * FRAME_SAMPLES as u32);
        let samples: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap()).collect();
        let expected: Vec<i16> = (0..250)
            .flat_map(|index| {
                let frame = tone_frame(index);
                (0..FRAME_SAMPLES)
                    .flat_map(move |i| [frame.left[i], frame.right[i]])
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(samples, expected);
        assert!(samples.iter().step_by(2).any(|left| *left != 0));
        assert!(samples.iter().skip(1).step_by(2).all(|right| *right == 0));
    }

    #[tokio::test]
    async fn full_queue_drops_and_counts_without_waiting() {
        let root = tempfile::tempdir().unwrap();
        let recording =
            start(&config(root.path(), Duration::from_secs(1)), date(), "WO-9").unwrap();
        let sink = recording.sink();
        // On this single-threaded runtime the writer cannot run until we yield, so
        // the queue fills; push is a plain fn and returns at once either way.
        let accepted = (0..FRAME_QUEUE_CAPACITY + 40)
            .filter(|index| sink.push(tone_frame(*index)))
            .count();
        assert_eq!(accepted, FRAME_QUEUE_CAPACITY);
        assert_eq!(sink.dropped_frames(), 40);
        assert!(matches!(
            recording.frames().try_send(StereoFrame::SILENCE),
            Err(TrySendError::Full(_))
        ));
        drop(sink);

        let summary = recording.finish().await.unwrap();
        assert_eq!(summary.frames, FRAME_QUEUE_CAPACITY as u64);
        assert_eq!(summary.dropped_frames, 40);
    }

    #[tokio::test]
    async fn header_is_rewritten_while_the_call_goes_on_r22() {
        let root = tempfile::tempdir().unwrap();
        let recording = start(
            &config(root.path(), Duration::from_millis(20)),
            date(),
            "WO-7",
        )
        .unwrap();
        let sender = recording.frames();
        for index in 0..10 {
            sender.try_send(tone_frame(index)).unwrap();
        }
        let expected = 10 * FRAME_BYTES as u32;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let bytes = std::fs::read(recording.path()).unwrap();
            if bytes[..WAV_HEADER_LEN] == wav::wav_header(expected) {
                assert_eq!(bytes.len(), WAV_HEADER_LEN + expected as usize);
                break;
            }
            assert!(Instant::now() < deadline, "header never covered the frames");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(sender);
        assert_eq!(recording.finish().await.unwrap().frames, 10);
    }

    #[tokio::test]
    async fn write_failure_is_reported_and_the_queue_keeps_draining() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("read-only.wav");
        std::fs::write(&path, wav::wav_header(0)).unwrap();
        // A file opened read-only fails every write, like a full disk does.
        let file = File::open(&path).unwrap();
        let writer = Writer {
            path: path.clone(),
            file: Arc::new(file),
            header_interval: Duration::from_millis(10),
            data_bytes: 0,
            frames_written: 0,
            frames_lost: 0,
            failure: None,
        };
        let (sender, receiver) = mpsc::channel(4);
        let task = tokio::spawn(writer.run(receiver));
        // Far more frames than the queue holds: the writer must keep consuming.
        for index in 0..40 {
            sender.send(tone_frame(index)).await.unwrap();
        }
        drop(sender);

        let error = task.await.unwrap().unwrap_err();
        let RecordingError::Write {
            path: error_path,
            frames_lost,
            ..
        } = &error
        else {
            panic!("expected a write error, got {error}");
        };
        assert_eq!(error_path, &path);
        assert_eq!(*frames_lost, 40);
        assert_eq!(std::fs::read(&path).unwrap(), wav::wav_header(0));
    }

    /// Issue 9 row 9: frames a full disk swallowed show in
    /// `hotline_recording_frames_dropped_total`, not only in the log line.
    #[test]
    fn frames_lost_to_a_failing_disk_are_counted_in_the_metric() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("full-disk.wav");
        std::fs::write(&path, wav::wav_header(0)).unwrap();
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let error = metrics::with_local_recorder(&recorder, || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let writer = Writer {
                    path: path.clone(),
                    // Read-only: every write fails, as on a full disk.
                    file: Arc::new(File::open(&path).unwrap()),
                    header_interval: Duration::from_millis(10),
                    data_bytes: 0,
                    frames_written: 0,
                    frames_lost: 0,
                    failure: None,
                };
                let (sender, receiver) = mpsc::channel(300);
                for index in 0..201 {
                    sender.try_send(tone_frame(index)).unwrap();
                }
                drop(sender);
                writer.run(receiver).await.unwrap_err()
            })
        });
        assert!(error.to_string().contains("201 frames lost"), "{error}");
        let rendered = handle.render();
        let line = rendered
            .lines()
            .find(|l| l.starts_with("hotline_recording_frames_dropped_total"))
            .unwrap_or_else(|| panic!("metric missing:\n{rendered}"));
        assert_eq!(line.split_whitespace().last(), Some("201"), "{line}");
    }
}
