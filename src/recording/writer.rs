//! The per-call recording writer (I/O): creates the file, then one tokio task owns
//! it. The media side interleaves its frames into chunks of one header interval
//! ([`FrameSink`]); the writer writes each chunk with a fresh header as it arrives, so
//! a killed engine leaves a playable file, and it wakes once per interval per call
//! instead of once per 20 ms frame. Finished files are made durable in batches
//! ([`super::disk_sync`]), not one fsync per call.

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

use super::wav::{self, MAX_DATA_BYTES, WAV_HEADER_LEN};
use super::{RecordingConfig, RecordingError, StereoFrame};

/// Audio the writer's queue holds before the media side starts dropping: long enough
/// to ride out a slow disk for a moment without holding much memory.
pub const MAX_QUEUED_AUDIO: Duration = Duration::from_secs(5);

/// Audio a sink buffers at most before handing it over, even if the header interval
/// is longer, so a long configured interval cannot grow the buffer without bound.
const MAX_CHUNK_FRAMES: u64 = 2 * wav::BYTE_RATE as u64 / wav::FRAME_BYTES as u64;

/// Frames per chunk for `header_interval`: one interval's worth (at least one frame,
/// at most [`MAX_CHUNK_FRAMES`]), so each chunk the writer gets moves the header on.
fn frames_per_chunk(header_interval: Duration) -> u64 {
    let frames = header_interval.as_millis() / wav::FRAME_DURATION.as_millis();
    u64::try_from(frames)
        .unwrap_or(MAX_CHUNK_FRAMES)
        .clamp(1, MAX_CHUNK_FRAMES)
}

/// Chunks the queue holds: [`MAX_QUEUED_AUDIO`] of them (two at least).
fn queue_chunks(frames_per_chunk: u64) -> usize {
    let queued_frames = (MAX_QUEUED_AUDIO.as_millis() / wav::FRAME_DURATION.as_millis()) as u64;
    usize::try_from(queued_frames.div_ceil(frames_per_chunk)).map_or(2, |chunks| chunks.max(2))
}

/// Interleaved stereo audio on its way to the file: whole frames, exactly as they go
/// into the data chunk.
#[derive(Debug)]
pub struct AudioChunk {
    pub bytes: Vec<u8>,
    pub frames: u64,
}

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

/// One call being recorded. Hand [`Recording::sink`] to the media side, then call
/// [`Recording::finish`] when the call ends.
///
/// Dropping a `Recording` without `finish` does not lose audio: the writer still
/// drains and finalizes the file once every sender is gone; only the summary and
/// the metrics are lost.
#[derive(Debug)]
pub struct Recording {
    path: PathBuf,
    sender: mpsc::Sender<AudioChunk>,
    dropped: Arc<AtomicU64>,
    frames_per_chunk: u64,
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

/// The media side's end of one recording. Frames are interleaved here, straight into
/// the chunk the writer will write, and handed over one chunk (one header interval) at
/// a time: a frame is copied once, and the writer task wakes once per interval.
/// Pushing never waits: a chunk that does not fit in the queue is dropped and counted
/// in the recording's summary (the stated full-queue policy). Dropping the sink hands
/// over what it still holds.
///
/// One sink per recording: frames of two sinks would reach the file chunk by chunk,
/// out of order.
#[derive(Debug)]
pub struct FrameSink {
    sender: mpsc::Sender<AudioChunk>,
    dropped: Arc<AtomicU64>,
    chunk: Vec<u8>,
    frames: u64,
    frames_per_chunk: u64,
}

impl FrameSink {
    fn new(
        sender: mpsc::Sender<AudioChunk>,
        dropped: Arc<AtomicU64>,
        frames_per_chunk: u64,
    ) -> Self {
        FrameSink {
            sender,
            dropped,
            chunk: Vec::with_capacity(chunk_bytes(frames_per_chunk)),
            frames: 0,
            frames_per_chunk: frames_per_chunk.max(1),
        }
    }

    /// A sink over a queue of `capacity` chunks of `frames_per_chunk` frames: the
    /// receiver gets exactly what a recording's writer would.
    pub fn channel(
        capacity: usize,
        frames_per_chunk: u64,
    ) -> (FrameSink, mpsc::Receiver<AudioChunk>) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        (
            FrameSink::new(sender, Arc::new(AtomicU64::new(0)), frames_per_chunk),
            receiver,
        )
    }

    /// Adds one frame without waiting. Returns the frames this push dropped: 0, or a
    /// whole chunk (this frame with it) that the queue had no room for or that no
    /// writer takes any more.
    pub fn push(&mut self, frame: &StereoFrame) -> u64 {
        if self.buffer(frame) { self.flush() } else { 0 }
    }

    /// Hands what is buffered to the writer now, without waiting; returns the frames
    /// dropped (as [`FrameSink::push`]).
    pub fn flush(&mut self) -> u64 {
        let Some(chunk) = self.take_chunk() else {
            return 0;
        };
        match self.sender.try_send(chunk) {
            Ok(()) => 0,
            Err(TrySendError::Full(chunk) | TrySendError::Closed(chunk)) => {
                self.dropped.fetch_add(chunk.frames, Ordering::Relaxed);
                // The next chunk reuses the buffer the writer never got.
                self.chunk = chunk.bytes;
                self.chunk.clear();
                chunk.frames
            }
        }
    }

    /// As [`FrameSink::push`], but waits for room instead of dropping: for producers
    /// that may wait (a benchmark, an import), never the media path. False when the
    /// writer is gone.
    pub async fn push_waiting(&mut self, frame: &StereoFrame) -> bool {
        if !self.buffer(frame) {
            return true;
        }
        match self.take_chunk() {
            Some(chunk) => self.sender.send(chunk).await.is_ok(),
            None => true,
        }
    }

    /// Whether no writer takes this recording's audio any more (it failed to start
    /// or ended early): pushes only count drops from then on.
    pub fn writer_gone(&self) -> bool {
        self.sender.is_closed()
    }

    /// Frames dropped so far by this recording.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Adds `frame` to the chunk; true when the chunk is full and due to go.
    fn buffer(&mut self, frame: &StereoFrame) -> bool {
        wav::interleave(frame, &mut self.chunk);
        self.frames += 1;
        self.frames >= self.frames_per_chunk
    }

    fn take_chunk(&mut self) -> Option<AudioChunk> {
        if self.frames == 0 {
            return None;
        }
        let bytes = std::mem::replace(
            &mut self.chunk,
            Vec::with_capacity(chunk_bytes(self.frames_per_chunk)),
        );
        Some(AudioChunk {
            bytes,
            frames: std::mem::take(&mut self.frames),
        })
    }
}

impl Drop for FrameSink {
    fn drop(&mut self) {
        self.flush();
    }
}

fn chunk_bytes(frames: u64) -> usize {
    usize::try_from(frames).unwrap_or(1) * wav::FRAME_BYTES
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

    let frames_per_chunk = frames_per_chunk(config.header_interval);
    let (sender, receiver) = mpsc::channel(queue_chunks(frames_per_chunk));
    let writer = Writer {
        path: path.clone(),
        file: Arc::new(file),
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
        frames_per_chunk,
        writer,
    })
}

impl Recording {
    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The media side's sink (one per recording): it never waits, and counts what it
    /// drops into this recording's [`RecordingSummary::dropped_frames`].
    pub fn sink(&self) -> FrameSink {
        FrameSink::new(
            self.sender.clone(),
            Arc::clone(&self.dropped),
            self.frames_per_chunk,
        )
    }

    /// Waits until every sink is dropped and the queue is drained, and the final
    /// header is written; the file is then in the page cache, and on the disk within
    /// about a second ([`super::disk_sync`]). Counts the outcome in
    /// `hotline_recordings_written_total` or `hotline_recording_failures_total`.
    pub async fn finish(self) -> Result<RecordingSummary, RecordingError> {
        let Recording {
            path,
            sender,
            dropped,
            writer,
            ..
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
        mut receiver: mpsc::Receiver<AudioChunk>,
    ) -> Result<WriterOutcome, RecordingError> {
        while let Some(chunk) = receiver.recv().await {
            if self.failure.is_some() {
                // Keep draining so the media side never sees a full queue because of
                // a dead disk.
                self.frames_lost += chunk.frames;
                continue;
            }
            self.write_chunk(chunk).await;
        }
        if self.failure.is_none() {
            super::disk_sync::make_durable(Arc::clone(&self.file));
        }
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

    /// Appends `chunk` and rewrites the header.
    ///
    /// The writes go through `spawn_blocking`: a disk that stalls (full, NFS,
    /// journal flush) would otherwise park a tokio worker and with it the media of
    /// other calls. `tokio::fs::File` would hop to the blocking pool per call and
    /// buffer behind our back; one explicit hop per chunk, with positional writes
    /// for data and header, is cheaper and leaves the file position out of it.
    ///
    /// No fsync here: a killed process leaves its written pages in the page cache,
    /// which is what R22 asks for; the finished file is synced with others in a batch.
    async fn write_chunk(&mut self, chunk: AudioChunk) {
        let AudioChunk { bytes, frames } = chunk;
        if bytes.is_empty() {
            return;
        }
        let Some(new_data_bytes) = u32::try_from(bytes.len())
            .ok()
            .and_then(|len| self.data_bytes.checked_add(len))
            .filter(|total| *total <= MAX_DATA_BYTES)
        else {
            self.failure = Some(WriteFailure::TooLong);
            self.frames_lost += frames;
            return;
        };
        let file = Arc::clone(&self.file);
        let data_offset = WAV_HEADER_LEN as u64 + u64::from(self.data_bytes);
        let outcome = tokio::task::spawn_blocking(move || {
            let result = file
                .write_all_at(&bytes, data_offset)
                .and_then(|()| file.write_all_at(&wav::wav_header(new_data_bytes), 0));
            if result.is_err() {
                describe_data_on_disk(&file);
            }
            result
        })
        .await
        .unwrap_or_else(|join_error| Err(io::Error::other(join_error.to_string())));
        match outcome {
            Ok(()) => {
                self.data_bytes = new_data_bytes;
                self.frames_written += frames;
            }
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error, "recording write failed");
                self.failure = Some(WriteFailure::Io(error));
                self.frames_lost += frames;
            }
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
    use tokio::time::Instant;

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
        let mut sink = recording.sink();
        for index in 0..250 {
            assert_eq!(sink.push(&tone_frame(index)), 0);
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

    /// The sink hands over one header interval at a time and, when dropped, the
    /// partial chunk it still holds: no frame stays behind (R22).
    #[tokio::test]
    async fn sink_hands_over_whole_intervals_and_the_rest_when_dropped() {
        assert_eq!(frames_per_chunk(Duration::from_secs(1)), 50);
        assert_eq!(frames_per_chunk(Duration::from_millis(5)), 1);
        assert_eq!(frames_per_chunk(Duration::from_secs(60)), MAX_CHUNK_FRAMES);
        let (mut sink, mut receiver) = FrameSink::channel(8, 50);
        for index in 0..120 {
            assert_eq!(sink.push(&tone_frame(index)), 0);
        }
        drop(sink);
        let mut chunks = Vec::new();
        while let Some(chunk) = receiver.recv().await {
            assert_eq!(chunk.bytes.len(), chunk.frames as usize * FRAME_BYTES);
            chunks.push(chunk.frames);
        }
        assert_eq!(chunks, [50, 50, 20]);
    }

    #[tokio::test]
    async fn full_queue_drops_and_counts_without_waiting() {
        let root = tempfile::tempdir().unwrap();
        let recording =
            start(&config(root.path(), Duration::from_secs(1)), date(), "WO-9").unwrap();
        let mut sink = recording.sink();
        // On this single-threaded runtime the writer cannot run until we yield, so
        // the queue fills (5 s of 1 s chunks); push is a plain fn and returns at once
        // either way, dropping a whole chunk when it has no room.
        let queued = MAX_QUEUED_AUDIO.as_millis() as usize / 20;
        let dropped: u64 = (0..queued + 40)
            .map(|index| sink.push(&tone_frame(index)))
            .sum();
        // The 40 frames after the full queue sit in the sink, not yet handed over.
        assert_eq!(dropped, 0);
        let more: u64 = (0..10).map(|index| sink.push(&tone_frame(index))).sum();
        assert_eq!(
            more, 50,
            "the sixth chunk found no room and was dropped whole"
        );
        assert_eq!(sink.dropped_frames(), 50);
        drop(sink);

        let summary = recording.finish().await.unwrap();
        assert_eq!(summary.frames, queued as u64);
        assert_eq!(summary.dropped_frames, 50);
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
        let mut sink = recording.sink();
        for index in 0..10 {
            assert_eq!(sink.push(&tone_frame(index)), 0);
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
        drop(sink);
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
            data_bytes: 0,
            frames_written: 0,
            frames_lost: 0,
            failure: None,
        };
        let (mut sink, receiver) = FrameSink::channel(4, 1);
        let task = tokio::spawn(writer.run(receiver));
        // Far more frames than the queue holds: the writer must keep consuming.
        for index in 0..40 {
            assert!(sink.push_waiting(&tone_frame(index)).await);
        }
        drop(sink);

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
                    data_bytes: 0,
                    frames_written: 0,
                    frames_lost: 0,
                    failure: None,
                };
                let (mut sink, receiver) = FrameSink::channel(300, 1);
                for index in 0..201 {
                    assert_eq!(sink.push(&tone_frame(index)), 0);
                }
                drop(sink);
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
