//! Recording micro-benchmarks: appending one 20 ms stereo frame.
//!
//! `interleave` is the pure part (two channels of 160 samples into 640 bytes of WAV
//! data). `writer` is the whole path a call's media task uses: the bounded channel,
//! the writer task's batching, its periodic header rewrite and the final sync, per
//! frame, with the file on tmpfs (`/dev/shm` when it exists) so disk latency does not
//! drown the engine's own cost. Run with `cargo bench --bench recording`.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hotline::recording::wav::{self, FRAME_BYTES};
use hotline::recording::{self, FRAME_SAMPLES, RecordingConfig, StereoFrame};

fn speech_like_stereo_frame() -> StereoFrame {
    let mut frame = StereoFrame::SILENCE;
    for i in 0..FRAME_SAMPLES {
        frame.left[i] = ((i as i32 * 397) % 20_000 - 10_000) as i16;
        frame.right[i] = ((i as i32 * 211) % 16_000 - 8_000) as i16;
    }
    frame
}

fn interleave_bench(c: &mut Criterion) {
    let frame = speech_like_stereo_frame();
    let mut out = Vec::with_capacity(FRAME_BYTES);
    let mut group = c.benchmark_group("recording");
    group.throughput(Throughput::Elements(1));
    group.bench_function("interleave_20ms_stereo", |b| {
        b.iter(|| {
            out.clear();
            wav::interleave(black_box(&frame), &mut out);
        })
    });
    group.finish();
}

/// Where the writer bench puts its files: tmpfs when available.
fn scratch_root() -> tempfile::TempDir {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).expect("temp dir in /dev/shm")
    } else {
        tempfile::tempdir().expect("temp dir")
    }
}

fn writer_bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let root = scratch_root();
    let config = RecordingConfig::new(root.path());
    let date = NaiveDate::from_ymd_opt(2026, 1, 1).expect("valid date");
    let frame = speech_like_stereo_frame();
    let mut file_number = 0u64;
    let mut group = c.benchmark_group("recording");
    group.throughput(Throughput::Elements(1));
    // One recording per sample: start, `iters` frames through the sink (waiting
    // when the queue is full, as a fast producer would), finish. File creation and the final
    // sync are amortised over the frames, as they are over a call's 50 frames/s.
    group.bench_function("writer_append_20ms_stereo_tmpfs", |b| {
        b.iter_custom(|iters| {
            file_number += 1;
            let id = format!("bench-{file_number}");
            runtime.block_on(async {
                let recording =
                    recording::start(&config, date, &id).expect("start bench recording");
                let mut sink = recording.sink();
                let started = Instant::now();
                for _ in 0..iters {
                    assert!(sink.push_waiting(&frame).await, "writer takes frames");
                }
                drop(sink);
                recording.finish().await.expect("finish bench recording");
                let elapsed = started.elapsed();
                let _ = std::fs::remove_file(recording::recording_path(&config.root, date, &id));
                elapsed
            })
        })
    });
    group.finish();
}

fn quick() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! { name = benches; config = quick(); targets = interleave_bench, writer_bench }
criterion_main!(benches);
