//! TCP framing: a stream delivered in two reads (split where the first byte says) must
//! be cut into messages, keep-alives or an error, never a panic; each message cut is
//! then parsed.
#![no_main]

use bytes::BytesMut;
use hotline::sip::framing::{Frame, next_frame};
use hotline::sip::message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else {
        return;
    };
    let split = usize::from(split).min(stream.len());
    let mut buf = BytesMut::new();
    for chunk in [&stream[..split], &stream[split..]] {
        buf.extend_from_slice(chunk);
        loop {
            match next_frame(&mut buf) {
                Ok(Some(Frame::Message(bytes))) => {
                    let _ = message::parse(&bytes);
                }
                Ok(Some(Frame::KeepAlive)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
