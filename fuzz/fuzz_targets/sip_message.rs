//! The SIP message parser and the checks a UAS runs on every request (RFC 3261 §8.2):
//! any bytes must give a message or an error, never a panic.
#![no_main]

use hotline::sip::message::{self, SipMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match message::parse(data) {
        Ok(SipMessage::Request(request)) => {
            if let Ok(summary) = message::summary(&request) {
                let _ = summary.key();
            }
            let _ = request.to_string();
        }
        Ok(SipMessage::Response(response)) => {
            let _ = message::response_summary(&response);
            let _ = response.to_string();
        }
        Err(error) => {
            let _ = error.status_code();
            let _ = message::bad_request_from_raw(data, "fuzz");
        }
    }
});
