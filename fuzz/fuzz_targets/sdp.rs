//! SDP offer/answer: any offer must be negotiated or refused, never a panic; an
//! accepted offer must produce an answer.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use hotline::media::g711::Codec;
use hotline::sip::sdp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(negotiated) = sdp::negotiate(data, &[Codec::Pcmu, Codec::Pcma]) {
        let _ = sdp::answer(IpAddr::V4(Ipv4Addr::LOCALHOST), 20000, &negotiated, 1);
    }
});
