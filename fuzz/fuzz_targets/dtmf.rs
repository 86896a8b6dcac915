//! RFC 4733 telephone-event payloads: parse or refuse, never a panic; a parsed event
//! goes through the key detector as the media task would feed it.
#![no_main]

use hotline::media::dtmf::{self, DtmfDetector};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut detector = DtmfDetector::new();
    for (index, payload) in data.chunks(4).enumerate() {
        if let Ok(event) = dtmf::parse(payload) {
            let _ = event.digit();
            let _ = detector.on_event(index as u32 * 160, &event);
        }
    }
});
