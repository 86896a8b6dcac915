//! Call recordings (R22): one stereo 8 kHz 16-bit WAV per call, left = caller,
//! right = what the hotline sent. Files stay playable after a crash.
//!
//! - [`wav`] (pure): the 44-byte header, the stereo interleave, the repair decision.
//! - [`start`] / [`Recording`] (I/O): one writer task per call owning the file; the
//!   media side pushes frames into a [`FrameSink`] and never waits.
//! - `disk_sync` (I/O): finished files made durable in batches, off the call path.
//! - [`repair_directory`] (I/O): start-up repair of headers left stale by a crash.

use std::path::{Path, PathBuf};
use std::time::Duration;

mod disk_sync;
mod repair;
pub mod wav;
mod writer;

pub use disk_sync::SYNC_INTERVAL;
pub use repair::{RepairReport, RepairedFile, repair_directory};
pub use writer::{
    AudioChunk, FrameSink, MAX_QUEUED_AUDIO, Recording, RecordingSummary, create_root,
    recording_path, start,
};

/// Samples per channel in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

/// One 20 ms slice of a call: what the caller said (left) and what the hotline sent (right).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StereoFrame {
    pub left: [i16; FRAME_SAMPLES],
    pub right: [i16; FRAME_SAMPLES],
}

impl StereoFrame {
    pub const SILENCE: StereoFrame = StereoFrame {
        left: [0; FRAME_SAMPLES],
        right: [0; FRAME_SAMPLES],
    };
}

/// Where recordings go and how often their header is brought up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingConfig {
    /// Root of the `<YYYY-MM-DD>/<work-order-id>.wav` tree.
    pub root: PathBuf,
    /// How often the WAV header is rewritten to cover the audio written so far:
    /// at most this much audio is unreadable after a `kill -9` (until the start-up
    /// repair recovers it). R22 wants at most 2 s; must not be zero.
    pub header_interval: Duration,
}

impl RecordingConfig {
    pub const DEFAULT_HEADER_INTERVAL: Duration = Duration::from_secs(1);

    pub fn new(root: impl Into<PathBuf>) -> Self {
        RecordingConfig {
            root: root.into(),
            header_interval: Self::DEFAULT_HEADER_INTERVAL,
        }
    }
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig::new("recordings")
    }
}

/// Errors of the recording layer. Each names the file or directory concerned.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// The work order id cannot be a file name (empty, a separator, a leading dot,
    /// or characters outside `[A-Za-z0-9._-]`); nothing was created.
    #[error("work order id {id:?} cannot name a recording file ({path})")]
    InvalidWorkOrderId { id: String, path: PathBuf },
    /// `header_interval` is zero; the writer needs a positive cadence.
    #[error("recording header interval must be positive ({path})")]
    InvalidHeaderInterval { path: PathBuf },
    /// `start` was called outside a tokio runtime, so no writer task could run.
    #[error("recording {path} must be started inside a tokio runtime")]
    NoRuntime { path: PathBuf },
    /// The date directory could not be created.
    #[error("cannot create recording directory {path}: {source}")]
    CreateDirectory {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A recording with this path exists already; it is never overwritten.
    #[error("recording {path} already exists")]
    AlreadyExists { path: PathBuf },
    /// The file could not be created or its first header written.
    #[error("cannot create recording {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Writing audio or the header failed (disk full…). The file holds what was
    /// written before; `frames_lost` frames reached the writer but not the disk.
    #[error("writing recording {path} failed, {frames_lost} frames lost: {source}")]
    Write {
        path: PathBuf,
        frames_lost: u64,
        source: std::io::Error,
    },
    /// The call outlasted what a WAV header can describe (about 37 h); the file
    /// holds everything up to that point.
    #[error("recording {path} reached the WAV size limit, {frames_lost} frames lost")]
    TooLong { path: PathBuf, frames_lost: u64 },
    /// The writer task panicked or was cancelled before finishing the file.
    #[error("recording writer for {path} stopped: {reason}")]
    WriterTask { path: PathBuf, reason: String },
    /// Repair: a directory of the recordings tree could not be listed.
    #[error("cannot read recordings directory {path}: {source}")]
    ReadDirectory {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Repair: a file could not be read to check it.
    #[error("cannot inspect recording {path}: {source}")]
    Inspect {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Repair: the file is not a WAV file the repair understands; left untouched.
    #[error("{path} is not a repairable WAV file: {reason}")]
    NotWav { path: PathBuf, reason: &'static str },
    /// Repair: more audio than a WAV header can describe; left untouched rather
    /// than cut.
    #[error("{path} holds {data_bytes} bytes of audio, too many for a WAV header")]
    TooLargeToRepair { path: PathBuf, data_bytes: u64 },
    /// Repair: rewriting the header failed.
    #[error("cannot repair recording {path}: {source}")]
    Repair {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl RecordingError {
    /// The file or directory the error is about.
    pub fn path(&self) -> &Path {
        match self {
            RecordingError::InvalidWorkOrderId { path, .. }
            | RecordingError::InvalidHeaderInterval { path }
            | RecordingError::NoRuntime { path }
            | RecordingError::CreateDirectory { path, .. }
            | RecordingError::AlreadyExists { path }
            | RecordingError::Create { path, .. }
            | RecordingError::Write { path, .. }
            | RecordingError::TooLong { path, .. }
            | RecordingError::WriterTask { path, .. }
            | RecordingError::ReadDirectory { path, .. }
            | RecordingError::Inspect { path, .. }
            | RecordingError::NotWav { path, .. }
            | RecordingError::TooLargeToRepair { path, .. }
            | RecordingError::Repair { path, .. } => path,
        }
    }
}
