//! Malformed input gives an error, never a panic (issue 4, R29): the committed fuzz seed
//! corpus (`fuzz/corpus/<target>/`), the RFC 4475 torture messages and every input a
//! fuzzer ever crashed on (`tests/fixtures/fuzz-regressions/<target>/`) go through the
//! same parsers the fuzz targets drive, in the normal `cargo test`.
//!
//! Each parser returns `Ok` or `Err`; a panic fails the test and names the file.

use std::net::{IpAddr, Ipv4Addr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use bytes::BytesMut;
use hotline::config::Config;
use hotline::media::dtmf::{self, DtmfDetector};
use hotline::media::g711::Codec;
use hotline::media::rtp;
use hotline::sip::framing::{Frame, next_frame};
use hotline::sip::message::{self, SipMessage};
use hotline::sip::sdp;

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// Every file of `dirs` (relative to the repository root) that exists; directories that
/// do not exist yet (no regression found for that target) contribute nothing.
fn inputs(dirs: &[&str]) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for dir in dirs {
        let dir = Path::new(MANIFEST_DIR).join(dir);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("read corpus directory entry").path();
            if path.is_file() && path.extension().is_none_or(|e| e != "md" && e != "py") {
                let bytes = std::fs::read(&path).expect("read corpus file");
                files.push((path, bytes));
            }
        }
    }
    files.sort();
    files
}

/// Runs `check` on every input, fails with the names of those that panicked, and
/// returns how many were accepted and how many refused. `expected_at_least` guards
/// against a corpus that silently went missing.
fn assert_no_panic(
    dirs: &[&str],
    expected_at_least: usize,
    check: impl Fn(&[u8]) -> Outcome,
) -> (usize, usize) {
    let files = inputs(dirs);
    assert!(
        files.len() >= expected_at_least,
        "expected at least {expected_at_least} inputs in {dirs:?}, found {}",
        files.len()
    );
    let mut panicked = Vec::new();
    let (mut accepted, mut refused) = (0, 0);
    for (path, bytes) in &files {
        match catch_unwind(AssertUnwindSafe(|| check(bytes))) {
            Ok(Outcome::Accepted) => accepted += 1,
            Ok(Outcome::Refused) => refused += 1,
            Err(_) => panicked.push(path.display().to_string()),
        }
    }
    assert!(panicked.is_empty(), "parsers panicked on: {panicked:#?}");
    (accepted, refused)
}

/// The corpus holds valid and invalid inputs alike: a parser that refused (or accepted)
/// everything would pass the no-panic check while being useless.
fn assert_mixed((accepted, refused): (usize, usize)) {
    assert!(accepted > 0, "no input was accepted");
    assert!(refused > 0, "no input was refused");
}

/// What a parser made of one input.
enum Outcome {
    Accepted,
    Refused,
}

fn outcome<T, E>(result: Result<T, E>) -> Outcome {
    match result {
        Ok(_) => Outcome::Accepted,
        Err(_) => Outcome::Refused,
    }
}

fn check_sip_message(bytes: &[u8]) -> Outcome {
    match message::parse(bytes) {
        Ok(SipMessage::Request(request)) => {
            let _ = request.to_string();
            outcome(message::summary(&request))
        }
        Ok(SipMessage::Response(response)) => {
            let _ = response.to_string();
            outcome(message::response_summary(&response))
        }
        Err(error) => {
            assert!((400..600).contains(&error.status_code()));
            let _ = message::bad_request_from_raw(bytes, "corpus");
            Outcome::Refused
        }
    }
}

/// As the fuzz target does: the first byte says where the stream is split in two reads.
fn check_sip_framing(bytes: &[u8]) -> Outcome {
    let Some((&split, stream)) = bytes.split_first() else {
        return Outcome::Refused;
    };
    let split = usize::from(split).min(stream.len());
    let mut buf = BytesMut::new();
    let mut messages = 0;
    for chunk in [&stream[..split], &stream[split..]] {
        buf.extend_from_slice(chunk);
        loop {
            match next_frame(&mut buf) {
                Ok(Some(Frame::Message(frame))) => {
                    messages += 1;
                    let _ = check_sip_message(&frame);
                }
                Ok(Some(Frame::KeepAlive)) => {}
                Ok(None) => break,
                Err(_) => return Outcome::Refused,
            }
        }
    }
    if messages > 0 {
        Outcome::Accepted
    } else {
        Outcome::Refused
    }
}

fn check_sdp(bytes: &[u8]) -> Outcome {
    match sdp::negotiate(bytes, &[Codec::Pcmu, Codec::Pcma]) {
        Ok(negotiated) => {
            let answer = sdp::answer(IpAddr::V4(Ipv4Addr::LOCALHOST), 20000, &negotiated, 1);
            assert!(answer.starts_with("v=0"), "answer is SDP: {answer}");
            Outcome::Accepted
        }
        Err(_) => Outcome::Refused,
    }
}

fn check_dtmf(bytes: &[u8]) -> Outcome {
    let mut detector = DtmfDetector::new();
    let mut any = Outcome::Refused;
    for (index, payload) in bytes.chunks(4).enumerate() {
        if let Ok(event) = dtmf::parse(payload) {
            let _ = event.digit();
            let _ = detector.on_event(index as u32 * 160, &event);
            any = Outcome::Accepted;
        }
    }
    any
}

fn check_config(bytes: &[u8]) -> Outcome {
    match std::str::from_utf8(bytes) {
        Ok(text) => outcome(Config::parse(Path::new("corpus.toml"), text)),
        Err(_) => Outcome::Refused,
    }
}

#[test]
fn sip_parser_never_panics_on_torture_corpus_and_regressions_r29() {
    assert_mixed(assert_no_panic(
        &[
            "tests/fixtures/torture",
            "fuzz/corpus/sip_message",
            "tests/fixtures/fuzz-regressions/sip_message",
        ],
        40,
        check_sip_message,
    ));
}

#[test]
fn tcp_framing_never_panics_on_corpus_and_regressions() {
    assert_mixed(assert_no_panic(
        &[
            "fuzz/corpus/sip_framing",
            "tests/fixtures/fuzz-regressions/sip_framing",
        ],
        4,
        check_sip_framing,
    ));
}

#[test]
fn sdp_negotiation_never_panics_on_corpus_and_regressions() {
    assert_mixed(assert_no_panic(
        &["fuzz/corpus/sdp", "tests/fixtures/fuzz-regressions/sdp"],
        6,
        check_sdp,
    ));
}

#[test]
fn rtp_parser_never_panics_on_corpus_and_regressions() {
    assert_mixed(assert_no_panic(
        &["fuzz/corpus/rtp", "tests/fixtures/fuzz-regressions/rtp"],
        8,
        |bytes| outcome(rtp::parse(bytes)),
    ));
}

#[test]
fn telephone_event_parser_never_panics_on_corpus_and_regressions() {
    assert_mixed(assert_no_panic(
        &["fuzz/corpus/dtmf", "tests/fixtures/fuzz-regressions/dtmf"],
        5,
        check_dtmf,
    ));
}

#[test]
fn config_loader_never_panics_on_corpus_and_regressions() {
    assert_mixed(assert_no_panic(
        &[
            "fuzz/corpus/config",
            "tests/fixtures/fuzz-regressions/config",
        ],
        5,
        check_config,
    ));
}

/// Every corpus is fed to every parser too: a parser must not panic on input meant for
/// another (an RTP packet arriving on the SIP port, SIP text in an SDP body…).
#[test]
fn every_parser_survives_every_corpus() {
    let dirs = [
        "tests/fixtures/torture",
        "fuzz/corpus/sip_message",
        "fuzz/corpus/sip_framing",
        "fuzz/corpus/sdp",
        "fuzz/corpus/rtp",
        "fuzz/corpus/dtmf",
        "fuzz/corpus/config",
    ];
    let checks: [fn(&[u8]) -> Outcome; 6] = [
        check_sip_message,
        check_sip_framing,
        check_sdp,
        |bytes| outcome(rtp::parse(bytes)),
        check_dtmf,
        check_config,
    ];
    for check in checks {
        let _ = assert_no_panic(&dirs, 70, check);
    }
}
