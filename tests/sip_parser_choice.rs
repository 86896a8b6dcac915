//! Evidence for the SIP parser choice (see `docs/sip-parser-choice.md`).
//!
//! Runs `rsip` 0.4 and `rsipstack::sip` 0.7 over the RFC 4475 torture corpus and over
//! the cases the design issue named, and asserts what each parser does today, so an
//! upgrade that changes behaviour fails here and the decision gets revisited.

use std::path::PathBuf;

/// What one parser made of one input, reduced to what the engine cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    parsed: bool,
    call_id: Option<String>,
    via_headers: usize,
    body_len: usize,
}

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/torture")
        .join(format!("{name}.sip"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn with_rsip(bytes: &[u8]) -> Outcome {
    use rsip::prelude::*;
    match rsip::SipMessage::try_from(bytes) {
        Err(_) => Outcome {
            parsed: false,
            call_id: None,
            via_headers: 0,
            body_len: 0,
        },
        Ok(message) => Outcome {
            parsed: true,
            call_id: message.call_id_header().ok().map(|h| h.value().to_string()),
            via_headers: message
                .headers()
                .iter()
                .filter(|h| matches!(h, rsip::Header::Via(_)))
                .count(),
            body_len: message.body().len(),
        },
    }
}

fn with_rsipstack(bytes: &[u8]) -> Outcome {
    use rsipstack::sip::prelude::*;
    match rsipstack::sip::SipMessage::try_from(bytes) {
        Err(_) => Outcome {
            parsed: false,
            call_id: None,
            via_headers: 0,
            body_len: 0,
        },
        Ok(message) => {
            let body_len = match &message {
                rsipstack::sip::SipMessage::Request(r) => r.body.len(),
                rsipstack::sip::SipMessage::Response(r) => r.body.len(),
            };
            Outcome {
                parsed: true,
                call_id: message.call_id_header().ok().map(|h| h.value().to_string()),
                via_headers: message
                    .headers()
                    .iter()
                    .filter(|h| matches!(h, rsipstack::sip::Header::Via(_)))
                    .count(),
                body_len,
            }
        }
    }
}

/// `(fixture, rsip parses, rsipstack parses)` as observed with rsip 0.4.0 and
/// rsipstack 0.7.14. "Parses" is message-level only: the facade's `summary` adds the
/// semantic checks, so an invalid message that parses here is not thereby accepted.
const CORPUS_PARSES: &[(&str, bool, bool)] = &[
    // RFC 4475 3.1.1: valid, every parser should accept.
    ("wsinv", false, true),
    ("intmeth", false, false),
    ("esc01", false, true),
    ("escnull", true, true),
    ("esc02", false, false),
    ("lwsdisp", true, true),
    ("longreq", false, true),
    ("dblreq", true, true),
    ("semiuri", false, true),
    ("transports", true, true),
    ("mpart01", true, true),
    ("unreason", true, true),
    ("noreason", true, true),
    // RFC 4475 3.1.2: invalid; rejecting is right, accepting leaves it to the facade.
    ("badinv01", true, true),
    ("clerr", true, true),
    ("ncl", true, true),
    ("scalar02", false, true),
    ("scalarlg", true, true),
    ("quotbal", true, true),
    ("ltgtruri", true, true),
    ("lwsruri", false, false),
    ("lwsstart", false, false),
    ("trws", false, true),
    ("escruri", false, true),
    ("baddate", true, true),
    ("regbadct", true, true),
    ("badaspec", true, true),
    ("baddn", true, true),
    ("badvers", false, true),
    ("mismatch01", true, true),
    ("mismatch02", false, false),
    ("bigcode", false, false),
    // RFC 4475 3.2-3.4: syntactically valid, the torture is above the parser.
    ("badbranch", true, true),
    ("insuf", true, true),
    ("unkscm", false, true),
    ("novelsc", true, true),
    ("unksm2", true, true),
    ("bext01", true, true),
    ("invut", true, true),
    ("regaut01", true, true),
    ("multi01", true, true),
    ("mcl01", true, true),
    ("bcast", true, true),
    ("zeromf", true, true),
    ("cparam01", true, true),
    ("cparam02", true, true),
    ("regescrt", true, true),
    ("sdp01", true, true),
    ("inv2543", true, true),
];

#[test]
fn torture_corpus_outcomes_per_parser_are_as_documented() {
    for (name, rsip_parses, rsipstack_parses) in CORPUS_PARSES {
        let bytes = fixture(name);
        assert_eq!(with_rsip(&bytes).parsed, *rsip_parses, "rsip on {name}");
        assert_eq!(
            with_rsipstack(&bytes).parsed,
            *rsipstack_parses,
            "rsipstack on {name}"
        );
    }
}

#[test]
fn valid_torture_messages_rsipstack_parses_11_of_13_rsip_7() {
    let valid = &CORPUS_PARSES[..13];
    let rsip = valid.iter().filter(|(_, r, _)| *r).count();
    let stack = valid.iter().filter(|(_, _, s)| *s).count();
    assert_eq!((rsip, stack), (7, 11));
}

#[test]
fn content_length_is_honoured_only_by_rsipstack() {
    // dblreq: a REGISTER with Content-Length 0 followed by INVITE-looking noise.
    let dblreq = fixture("dblreq");
    let rsip = with_rsip(&dblreq);
    assert_eq!(
        (rsip.body_len, rsip.call_id),
        (445, None),
        "rsip swallows the noise as body"
    );
    let stack = with_rsipstack(&dblreq);
    assert_eq!(stack.body_len, 0);
    assert_eq!(
        stack.call_id.as_deref(),
        Some("dblreq.0ha0isndaksdj99sdfafnl3lk233412")
    );
    // mcl01 has two Content-Length values (13 then 5): rsipstack takes the last.
    assert_eq!(with_rsip(&fixture("mcl01")).body_len, 65);
    assert_eq!(with_rsipstack(&fixture("mcl01")).body_len, 5);
    // Without Content-Length (RFC 2543 style, legal on UDP) rsipstack drops the body;
    // the facade restores it from the datagram.
    assert_eq!(with_rsip(&fixture("inv2543")).body_len, 105);
    assert_eq!(with_rsipstack(&fixture("inv2543")).body_len, 0);
}

fn crlf(text: &str) -> Vec<u8> {
    text.replace('\n', "\r\n").into_bytes()
}

const PLAIN_INVITE: &str = "INVITE sip:12345@hotline.example SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds
Max-Forwards: 70
From: <sip:13800138000@trunk.example>;tag=1928301774
To: <sip:12345@hotline.example>
Call-ID: a84b4c76e66710
CSeq: 314159 INVITE
Content-Length: 0

";

fn special_cases() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("plain", crlf(PLAIN_INVITE)),
        ("compact", crlf("INVITE sip:12345@hotline.example SIP/2.0
v: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds
f: <sip:13800138000@trunk.example>;tag=1928301774
t: <sip:12345@hotline.example>
i: a84b4c76e66710
CSeq: 314159 INVITE
l: 0

")),
        ("lf_only", PLAIN_INVITE.as_bytes().to_vec()),
        ("folded", crlf("INVITE sip:12345@hotline.example SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060
 ;branch=z9hG4bK776asdhds
From: <sip:13800138000@trunk.example>
  ;tag=1928301774
To: <sip:12345@hotline.example>
Call-ID: a84b4c76e66710
CSeq: 314159 INVITE
Content-Length: 0

")),
        ("trailing_junk", {
            let mut bytes = crlf(&PLAIN_INVITE.replace("Content-Length: 0", "Content-Length: 4"));
            bytes.extend_from_slice(b"abcdJUNK-AFTER-BODY");
            bytes
        }),
        ("comma_via", crlf(&PLAIN_INVITE.replace(
            "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds",
            "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds, SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKother",
        ))),
        ("tel_uri", crlf(&PLAIN_INVITE.replace("INVITE sip:12345@hotline.example", "INVITE tel:12345"))),
        ("ipv6_via", crlf(&PLAIN_INVITE.replace("192.0.2.10:5060", "[2001:db8::10]:5060"))),
    ]
}

/// `(case, rsip outcome, rsipstack outcome)` as `(parsed, call id found, Via headers, body length)`.
type Row = (bool, bool, usize, usize);
const CASES: &[(&str, Row, Row)] = &[
    ("plain", (true, true, 1, 0), (true, true, 1, 0)),
    // rsip keeps `i:`/`v:`/`f:`/`t:` as unknown headers: the message "parses" but has
    // no Call-ID or Via, so every summary would fail.
    ("compact", (true, false, 0, 0), (true, true, 1, 0)),
    // Neither accepts LF-only line endings; the facade normalises them first.
    ("lf_only", (false, false, 0, 0), (false, false, 0, 0)),
    ("folded", (false, false, 0, 0), (true, true, 1, 0)),
    // rsip ignores Content-Length and takes everything after the blank line.
    ("trailing_junk", (true, true, 1, 19), (true, true, 1, 4)),
    // Both keep a comma-joined Via as one header; the facade splits it.
    ("comma_via", (true, true, 1, 0), (true, true, 1, 0)),
    ("tel_uri", (true, true, 1, 0), (true, true, 1, 0)),
    ("ipv6_via", (true, true, 1, 0), (true, true, 1, 0)),
];

fn row(outcome: Outcome) -> Row {
    (
        outcome.parsed,
        outcome.call_id.is_some(),
        outcome.via_headers,
        outcome.body_len,
    )
}

#[test]
fn issue_cases_per_parser_are_as_documented() {
    let cases = special_cases();
    assert_eq!(cases.len(), CASES.len());
    for ((name, bytes), (expected_name, rsip, stack)) in cases.iter().zip(CASES) {
        assert_eq!(name, expected_name);
        assert_eq!(row(with_rsip(bytes)), *rsip, "rsip on {name}");
        assert_eq!(row(with_rsipstack(bytes)), *stack, "rsipstack on {name}");
    }
}

#[test]
fn typed_via_handles_ipv6_sent_by_in_rsipstack() {
    use rsipstack::sip::prelude::*;
    let bytes = &special_cases()[7].1;
    let message = rsipstack::sip::SipMessage::try_from(bytes.as_slice()).expect("parses");
    let via = message
        .top_via_header()
        .expect("via")
        .typed()
        .expect("typed via");
    assert_eq!(via.sent_by().to_string(), "[2001:db8::10]:5060");
}

#[test]
fn rsipstack_rejects_extension_methods() {
    // RFC 3261 allows any token as a method; rsipstack's Method enum is closed, so a
    // request like esc02 (`RE%47IST%45R`) fails to parse instead of getting a 501.
    let esc02 = fixture("esc02");
    assert!(rsipstack::sip::SipMessage::try_from(esc02.as_slice()).is_err());
}
