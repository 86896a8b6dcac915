//! The IVR's ears on real recordings: SIPp's own pcaps (Debian's sip-tester, installed by
//! `scripts/install-test-deps.sh`). Its G.711 speech sample must count as a caller
//! speaking (so a caller who talks is never taken for silent, R27) and must never be
//! taken for a key; its RFC 4733 pcaps give one digit each; in-band tones survive G.711.

mod common;

use std::path::Path;

use hotline::media::dtmf::{self, DtmfDetector, InbandDtmfDetector};
use hotline::media::g711::{self, Codec};
use hotline::media::vad::{VadEvent, VadSettings, VoiceActivityDetector};

/// The RTP packets of a pcap (Ethernet, IPv4, UDP): (payload type, timestamp, payload).
fn rtp_packets(path: &Path) -> Vec<(u8, u32, Vec<u8>)> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let little = match data[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] => false,
        _ => panic!("{}: not a pcap file", path.display()),
    };
    let u32_at = |b: &[u8]| {
        let bytes = [b[0], b[1], b[2], b[3]];
        if little {
            u32::from_le_bytes(bytes)
        } else {
            u32::from_be_bytes(bytes)
        }
    };
    assert_eq!(u32_at(&data[20..24]), 1, "Ethernet link type");
    let mut packets = Vec::new();
    let mut offset = 24;
    while offset + 16 <= data.len() {
        let captured = u32_at(&data[offset + 8..]) as usize;
        let frame = &data[offset + 16..offset + 16 + captured];
        offset += 16 + captured;
        let ip = &frame[14..];
        let ip_header = usize::from(ip[0] & 0x0f) * 4;
        if ip[9] != 17 {
            continue;
        }
        let rtp = &ip[ip_header + 8..];
        let csrcs = usize::from(rtp[0] & 0x0f);
        let header = 12 + 4 * csrcs;
        let payload_type = rtp[1] & 0x7f;
        let timestamp = u32::from_be_bytes([rtp[4], rtp[5], rtp[6], rtp[7]]);
        packets.push((payload_type, timestamp, rtp[header..].to_vec()));
    }
    packets
}

fn speech_sample() -> Vec<i16> {
    let path = common::sipp_pcap_dir().join("g711a.pcap");
    let mut samples = Vec::new();
    for (payload_type, _, payload) in rtp_packets(&path) {
        assert_eq!(payload_type, 8, "PCMA");
        g711::decode(Codec::Pcma, &payload, &mut samples);
    }
    assert!(samples.len() > 8000 * 3, "seconds of speech");
    samples
}

#[test]
fn sipps_speech_sample_is_a_caller_speaking_r27() {
    let mut vad = VoiceActivityDetector::new(VadSettings::default());
    let mut started_at = None;
    for (i, frame) in speech_sample().chunks(160).enumerate() {
        if vad.push_frame(frame) == Some(VadEvent::VoiceStarted) && started_at.is_none() {
            started_at = Some(i * 20);
        }
    }
    let ms = started_at.expect("the speech sample is heard as speech");
    assert!(ms < 1500, "heard within 1.5 s, at {ms} ms");
}

#[test]
fn sipps_speech_sample_is_never_taken_for_a_key() {
    let speech = speech_sample();
    let mut detector = InbandDtmfDetector::default();
    let keys: String = speech
        .chunks(160)
        .flat_map(|frame| detector.push_samples(frame))
        .collect();
    assert_eq!(keys, "", "talk-off: speech must not make digits");
}

#[test]
fn sipps_rfc4733_pcaps_give_one_digit_each() {
    let dir = common::sipp_pcap_dir();
    for (name, key) in [
        ("0", '0'),
        ("1", '1'),
        ("5", '5'),
        ("9", '9'),
        ("star", '*'),
        ("pound", '#'),
    ] {
        let path = dir.join(format!("dtmf_2833_{name}.pcap"));
        let mut detector = DtmfDetector::new();
        let mut keys = String::new();
        for (payload_type, timestamp, payload) in rtp_packets(&path) {
            if payload_type == 0 || payload_type == 8 {
                continue;
            }
            let event = dtmf::parse(&payload).expect("telephone-event payload");
            keys.extend(detector.on_event(timestamp, &event));
        }
        assert_eq!(keys, key.to_string(), "{}", path.display());
    }
}

/// A key's two tones, `ms` long, each at -10 dBm0.
fn key_tone(low: f64, high: f64, ms: usize) -> Vec<i16> {
    let amplitude = 22_663.0 * 10f64.powf(-10.0 / 20.0);
    (0..ms * 8)
        .map(|n| {
            let t = n as f64 / 8000.0;
            let x = (2.0 * std::f64::consts::PI * low * t).sin()
                + (2.0 * std::f64::consts::PI * high * t).sin();
            (amplitude * x) as i16
        })
        .collect()
}

#[test]
fn in_band_tones_survive_g711_and_are_found_over_quieter_speech() {
    // "8890" then "#" as a trunk would send it in the audio, through each codec.
    let mut tones = Vec::new();
    for (low, high) in [
        (852.0, 1336.0),
        (852.0, 1336.0),
        (852.0, 1477.0),
        (941.0, 1336.0),
        (941.0, 1477.0),
    ] {
        tones.extend(key_tone(low, high, 80));
        tones.extend(vec![0; 8 * 80]);
    }
    for codec in [Codec::Pcmu, Codec::Pcma] {
        let mut encoded = Vec::new();
        g711::encode(codec, &tones, &mut encoded);
        let mut decoded = Vec::new();
        g711::decode(codec, &encoded, &mut decoded);
        let mut detector = InbandDtmfDetector::default();
        let keys: String = decoded
            .chunks(160)
            .flat_map(|f| detector.push_samples(f))
            .collect();
        assert_eq!(keys, "8890#", "{codec:?}");
    }

    // The caller keeps talking, 12 dB below the tones, while pressing 5.
    let speech = speech_sample();
    let press = key_tone(770.0, 1336.0, 100);
    let start = 8000; // one second in, mid-sentence
    let mixed: Vec<i16> = speech
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let tone = i
                .checked_sub(start)
                .and_then(|j| press.get(j))
                .copied()
                .unwrap_or(0);
            (f64::from(s) / 4.0 + f64::from(tone)) as i16
        })
        .collect();
    let mut detector = InbandDtmfDetector::default();
    let keys: String = mixed
        .chunks(160)
        .flat_map(|f| detector.push_samples(f))
        .collect();
    assert_eq!(keys, "5");
}
