//! Black-box crash safety of recordings (R22): a writer killed without `finish`
//! leaves a file `hound` can read, and the start-up repair recovers the rest.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use hotline::recording::wav::{FRAME_BYTES, wav_header};
use hotline::recording::{
    FRAME_SAMPLES, RecordingConfig, RecordingError, StereoFrame, repair_directory, start,
};

const HEADER_INTERVAL: Duration = Duration::from_millis(50);

fn date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 6, 1).expect("valid date")
}

/// Left: a ramp that encodes the frame index, so gaps and reordering show;
/// right: silence.
fn numbered_frame(index: usize) -> StereoFrame {
    let mut frame = StereoFrame::SILENCE;
    for (i, sample) in frame.left.iter_mut().enumerate() {
        *sample = ((index * FRAME_SAMPLES + i) % 30_000) as i16 + 1;
    }
    frame
}

fn frame_bytes(frame: &StereoFrame) -> Vec<u8> {
    frame
        .left
        .iter()
        .zip(frame.right.iter())
        .flat_map(|(l, r)| [l.to_le_bytes(), r.to_le_bytes()].concat())
        .collect()
}

/// Reads every sample hound can find and checks they are the numbered frames in order.
fn read_numbered_frames(path: &Path) -> usize {
    let mut reader = hound::WavReader::open(path).expect("hound opens the recording");
    assert_eq!(reader.spec().channels, 2);
    assert_eq!(reader.spec().sample_rate, 8000);
    assert_eq!(reader.spec().bits_per_sample, 16);
    let samples: Vec<i16> = reader
        .samples::<i16>()
        .collect::<Result<_, _>>()
        .expect("hound reads to the end of the data");
    assert_eq!(samples.len() % (2 * FRAME_SAMPLES), 0, "partial frame");
    let frames = samples.len() / (2 * FRAME_SAMPLES);
    for (index, chunk) in samples.chunks(2 * FRAME_SAMPLES).enumerate() {
        let expected = numbered_frame(index);
        for i in 0..FRAME_SAMPLES {
            assert_eq!(chunk[2 * i], expected.left[i], "left, frame {index}");
            assert_eq!(chunk[2 * i + 1], 0, "right, frame {index}");
        }
    }
    frames
}

fn data_size_in_header(path: &Path) -> u32 {
    let bytes = fs::read(path).expect("recording readable");
    u32::from_le_bytes([bytes[40], bytes[41], bytes[42], bytes[43]])
}

/// Runs a recording on its own runtime, then tears the runtime down without
/// `finish`: the writer task is dropped at its next await, buffered audio is lost
/// and no final header is written — what `kill -9` does to the engine.
fn record_then_crash(root: &Path, before_header: usize, after_header: usize) -> PathBuf {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let path = runtime.block_on(async {
        let config = RecordingConfig {
            root: root.to_path_buf(),
            header_interval: HEADER_INTERVAL,
        };
        let recording = start(&config, date(), "WO-CRASH").expect("recording starts");
        let mut sink = recording.sink();
        for index in 0..before_header {
            assert_eq!(sink.push(&numbered_frame(index)), 0);
        }
        // Wait past at least one header rewrite covering those frames.
        let expected = (before_header * FRAME_BYTES) as u32;
        let deadline = Instant::now() + Duration::from_secs(10);
        while data_size_in_header(recording.path()) < expected {
            assert!(Instant::now() < deadline, "header never rewritten");
            tokio::time::sleep(HEADER_INTERVAL / 2).await;
        }
        for index in before_header..before_header + after_header {
            assert_eq!(sink.push(&numbered_frame(index)), 0);
        }
        let path = recording.path().to_path_buf();
        drop(sink);
        // `recording` keeps a sender alive, so the writer cannot end gracefully.
        std::mem::forget(recording);
        path
    });
    // Drops the writer task; waits only for a blocking write already in flight, so
    // nothing touches the file after this returns.
    runtime.shutdown_timeout(Duration::from_secs(10));
    path
}

#[test]
fn killed_writer_leaves_playable_file_and_repair_recovers_all_data_r22() {
    let root = tempfile::tempdir().expect("temp dir");
    let path = record_then_crash(root.path(), 100, 20);

    // Playable as it was left: at least what the last header rewrite covered.
    let playable = read_numbered_frames(&path);
    assert!(
        playable >= 100,
        "only {playable} frames readable after the crash"
    );

    // The crash can also land between writing a batch and rewriting the header:
    // audio on disk that the header does not cover yet, ending in a torn sample.
    let unheaded = 30;
    let mut file = OpenOptions::new().append(true).open(&path).expect("open");
    for index in playable..playable + unheaded {
        file.write_all(&frame_bytes(&numbered_frame(index)))
            .expect("append");
    }
    file.write_all(&[0x12, 0x34, 0x56])
        .expect("append torn sample");
    drop(file);
    assert_eq!(read_numbered_frames(&path), playable, "header is stale");

    let report = repair_directory(root.path()).expect("repair runs");

    assert_eq!(report.files_checked, 1);
    assert_eq!(report.files_repaired(), 1);
    assert!(report.unrepaired.is_empty(), "{:?}", report.unrepaired);
    assert_eq!(report.repaired[0].path, path);
    assert_eq!(report.repaired[0].truncated_bytes, 3);
    assert_eq!(read_numbered_frames(&path), playable + unheaded);
    assert_eq!(
        fs::metadata(&path).expect("metadata").len(),
        (44 + (playable + unheaded) * FRAME_BYTES) as u64
    );
}

#[test]
fn header_saying_zero_bytes_is_repaired_to_cover_the_audio_r22() {
    let root = tempfile::tempdir().expect("temp dir");
    let day = root.path().join("2025-06-01");
    fs::create_dir(&day).expect("mkdir");
    let path = day.join("WO-ZERO.wav");
    let mut bytes = wav_header(0).to_vec();
    for index in 0..12 {
        bytes.extend(frame_bytes(&numbered_frame(index)));
    }
    fs::write(&path, &bytes).expect("write");
    assert_eq!(read_numbered_frames(&path), 0);

    let report = repair_directory(root.path()).expect("repair runs");

    assert_eq!((report.files_checked, report.files_repaired()), (1, 1));
    assert_eq!(report.repaired[0].data_bytes, (12 * FRAME_BYTES) as u64);
    assert_eq!(read_numbered_frames(&path), 12);
}

#[test]
fn non_wav_file_is_reported_and_left_untouched() {
    let root = tempfile::tempdir().expect("temp dir");
    let day = root.path().join("2025-06-01");
    fs::create_dir(&day).expect("mkdir");
    let path = day.join("WO-BOGUS.wav");
    let content = b"this was never audio, but it must survive the repair".to_vec();
    fs::write(&path, &content).expect("write");

    let report = repair_directory(root.path()).expect("repair runs");

    assert_eq!((report.files_checked, report.files_repaired()), (1, 0));
    assert_eq!(report.unrepaired.len(), 1);
    let error = &report.unrepaired[0];
    assert!(matches!(error, RecordingError::NotWav { .. }), "{error}");
    assert_eq!(error.path(), path);
    assert_eq!(fs::read(&path).expect("read"), content);
}

#[test]
fn finished_recording_needs_no_repair() {
    let root = tempfile::tempdir().expect("temp dir");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let summary = runtime.block_on(async {
        let recording = start(&RecordingConfig::new(root.path()), date(), "WO-OK").expect("start");
        let mut sink = recording.sink();
        for index in 0..50 {
            assert_eq!(sink.push(&numbered_frame(index)), 0);
        }
        drop(sink);
        recording.finish().await.expect("finish")
    });
    assert_eq!(summary.duration, Duration::from_secs(1));

    let report = repair_directory(root.path()).expect("repair runs");

    assert_eq!((report.files_checked, report.files_repaired()), (1, 0));
    assert_eq!(read_numbered_frames(&summary.path), 50);
}
