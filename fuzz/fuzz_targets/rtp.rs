//! RTP: any datagram on a media port must parse or be refused, never a panic.
#![no_main]

use hotline::media::rtp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rtp::parse(data);
});
