//! Media micro-benchmarks: G.711 µ-law and A-law over one 20 ms frame (160 samples)
//! and RTP packet parse/build, the work every call does 50 times a second each way.
//!
//! Pure CPU work. Run with `cargo bench --bench media`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hotline::media::g711::{self, Codec};
use hotline::media::rtp::{self, RtpSender};
use hotline::recording::FRAME_SAMPLES;

/// A 20 ms frame of something speech-like: a 440 Hz tone at moderate level, so both
/// the segment search of the encoders and the decode tables see varied values.
fn speech_like_frame() -> Vec<i16> {
    (0..FRAME_SAMPLES)
        .map(|i| {
            let phase = i as f64 * 440.0 * std::f64::consts::TAU / 8000.0;
            (phase.sin() * 12_000.0) as i16
        })
        .collect()
}

fn g711_benches(c: &mut Criterion) {
    let samples = speech_like_frame();
    let mut group = c.benchmark_group("g711");
    group.throughput(Throughput::Elements(FRAME_SAMPLES as u64));
    for (name, codec) in [("ulaw", Codec::Pcmu), ("alaw", Codec::Pcma)] {
        let mut encoded = Vec::with_capacity(FRAME_SAMPLES);
        group.bench_function(format!("{name}/encode_20ms"), |b| {
            b.iter(|| {
                encoded.clear();
                g711::encode(codec, black_box(&samples), &mut encoded);
            })
        });
        let mut payload = Vec::new();
        g711::encode(codec, &samples, &mut payload);
        let mut decoded = Vec::with_capacity(FRAME_SAMPLES);
        group.bench_function(format!("{name}/decode_20ms"), |b| {
            b.iter(|| {
                decoded.clear();
                g711::decode(codec, black_box(&payload), &mut decoded);
            })
        });
    }
    group.finish();
}

fn rtp_benches(c: &mut Criterion) {
    let payload = [0xd5u8; FRAME_SAMPLES];
    let mut sender = RtpSender::new(0x1234_5678, 8, 1000, 160_000);
    let mut group = c.benchmark_group("rtp");
    group.throughput(Throughput::Elements(1));
    group.bench_function("build_20ms_pcma", |b| {
        b.iter(|| sender.packet(black_box(&payload), FRAME_SAMPLES as u32, false))
    });
    let datagram = sender.packet(&payload, FRAME_SAMPLES as u32, false);
    group.bench_function("parse_20ms_pcma", |b| {
        b.iter(|| rtp::parse(black_box(&datagram)))
    });
    group.finish();
}

fn quick() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! { name = benches; config = quick(); targets = g711_benches, rtp_benches }
criterion_main!(benches);
