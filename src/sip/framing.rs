//! SIP message framing on stream transports (TCP), kept apart from parsing.
//!
//! Pure: [`next_frame`] looks at the bytes read so far and either cuts one whole
//! message off the front, reports a keep-alive, or says "incomplete, read more"
//! (`Ok(None)`). It never parses the message beyond finding the end of the headers and
//! the Content-Length, which on a stream is mandatory (RFC 3261 §18.3).

use bytes::{Buf, Bytes, BytesMut};

use super::message::find_header_end;

/// Largest header section accepted on a stream: a peer that sends more without a
/// blank line is broken or hostile, and waiting longer would only grow the buffer.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Largest body accepted on a stream by default (`limits.max_body_bytes`); SDP offers
/// are a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The limits a stream is framed under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLimits {
    /// Larger bodies are [`FrameError::BodyTooLarge`].
    pub max_body_bytes: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        FrameLimits {
            max_body_bytes: MAX_BODY_BYTES,
        }
    }
}

/// Why a stream can no longer be framed. Every variant is fatal for the connection:
/// once framing is lost nothing after it can be trusted, so the transport closes it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// No end of headers within [`MAX_HEADER_BYTES`].
    #[error("SIP header section longer than {MAX_HEADER_BYTES} bytes")]
    HeaderTooLong,
    /// A message on a stream without Content-Length cannot be delimited (RFC 3261 §18.3).
    #[error("SIP message on a stream without Content-Length")]
    MissingContentLength,
    /// Content-Length present but not a non-negative decimal number, or given twice
    /// with different values.
    #[error("bad Content-Length: {0}")]
    BadContentLength(String),
    /// Content-Length larger than [`FrameLimits::max_body_bytes`].
    #[error("SIP body of {size} bytes exceeds the {limit}-byte limit")]
    BodyTooLarge { size: usize, limit: usize },
}

impl FrameError {
    /// The response that tells the peer why its connection is being closed:
    /// `413` for a body over the limit (RFC 3261 §21.4.14), `400` otherwise.
    pub fn status_code(&self) -> u16 {
        match self {
            FrameError::BodyTooLarge { .. } => 413,
            _ => 400,
        }
    }
}

/// One unit cut from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A whole SIP message: headers, blank line and exactly Content-Length body bytes.
    Message(Bytes),
    /// An RFC 5626 §3.5.1 keep-alive "ping" (CRLF CRLF); the transport answers with a
    /// single CRLF "pong".
    KeepAlive,
}

/// Cuts the next frame off `buf`, or returns `Ok(None)` when more bytes are needed.
///
/// Leading CRLFs between messages are consumed: a double CRLF is reported as
/// [`Frame::KeepAlive`], a lone CRLF (a pong, or padding) is skipped silently.
pub fn next_frame(buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
    next_frame_with(buf, FrameLimits::default())
}

/// [`next_frame`] under configured limits.
pub fn next_frame_with(
    buf: &mut BytesMut,
    limits: FrameLimits,
) -> Result<Option<Frame>, FrameError> {
    loop {
        if buf.starts_with(b"\r\n\r\n") {
            buf.advance(4);
            return Ok(Some(Frame::KeepAlive));
        }
        if buf.starts_with(b"\r\n") {
            // Could be the start of a ping; wait until we can tell.
            if buf.len() < 4 && b"\r\n\r\n".starts_with(&buf[..]) {
                return Ok(None);
            }
            buf.advance(2);
            continue;
        }
        if buf.starts_with(b"\n") {
            buf.advance(1);
            continue;
        }
        if buf.is_empty() || buf == &b"\r"[..] {
            return Ok(None);
        }
        break;
    }

    let Some((header_end, body_start)) = find_header_end(buf) else {
        if buf.len() > MAX_HEADER_BYTES {
            return Err(FrameError::HeaderTooLong);
        }
        return Ok(None);
    };
    if header_end > MAX_HEADER_BYTES {
        return Err(FrameError::HeaderTooLong);
    }
    let body_len = content_length(&buf[..header_end])?;
    if body_len > limits.max_body_bytes {
        return Err(FrameError::BodyTooLarge {
            size: body_len,
            limit: limits.max_body_bytes,
        });
    }
    let total = body_start + body_len;
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some(Frame::Message(buf.split_to(total).freeze())))
}

/// Content-Length of a header section (long or compact `l` form, any case, with
/// whitespace around the colon and value). Folded continuation lines are ignored:
/// Content-Length is never folded in practice and the value must be one token.
fn content_length(headers: &[u8]) -> Result<usize, FrameError> {
    let mut found: Option<usize> = None;
    // Skip the start line.
    for line in headers.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let value = line[colon + 1..].trim_ascii();
        let text = String::from_utf8_lossy(value).into_owned();
        if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
            return Err(FrameError::BadContentLength(text));
        }
        let length: usize = text
            .parse()
            .map_err(|_| FrameError::BadContentLength(text.clone()))?;
        if found.is_some_and(|previous| previous != length) {
            return Err(FrameError::BadContentLength(format!(
                "conflicting values {} and {length}",
                found.unwrap_or_default()
            )));
        }
        found = Some(length);
    }
    found.ok_or(FrameError::MissingContentLength)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn message(body: &str) -> Vec<u8> {
        format!(
            "INVITE sip:12345@hotline.example SIP/2.0\r\n\
             Via: SIP/2.0/TCP 192.0.2.10;branch=z9hG4bK1\r\n\
             Call-ID: frame-{}\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len(),
            body.len()
        )
        .into_bytes()
    }

    fn drain(buf: &mut BytesMut) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(frame) = next_frame(buf).expect("valid stream") {
            frames.push(frame);
        }
        frames
    }

    #[test]
    fn one_message_fed_a_byte_at_a_time_is_framed_once_complete_r29() {
        let wire = message("v=0\r\n");
        let mut buf = BytesMut::new();
        for (i, byte) in wire.iter().enumerate() {
            buf.extend_from_slice(&[*byte]);
            let frame = next_frame(&mut buf).expect("no error");
            if i + 1 < wire.len() {
                assert_eq!(frame, None, "framed too early at byte {i}");
            } else {
                assert_eq!(frame, Some(Frame::Message(Bytes::from(wire.clone()))));
            }
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn two_pipelined_messages_come_out_in_order() {
        let (first, second) = (message("a"), message("bb"));
        let mut buf = BytesMut::from(&[first.clone(), second.clone()].concat()[..]);
        assert_eq!(
            drain(&mut buf),
            vec![Frame::Message(first.into()), Frame::Message(second.into())]
        );
    }

    #[test]
    fn a_partial_second_message_stays_buffered() {
        let (first, second) = (message(""), message("body"));
        let mut buf = BytesMut::from(&first[..]);
        buf.extend_from_slice(&second[..30]);
        assert_eq!(drain(&mut buf), vec![Frame::Message(first.into())]);
        assert_eq!(&buf[..], &second[..30]);
        buf.extend_from_slice(&second[30..]);
        assert_eq!(drain(&mut buf), vec![Frame::Message(second.into())]);
    }

    #[test]
    fn a_body_split_across_reads_waits_for_all_of_it() {
        let wire = message("0123456789");
        let split = wire.len() - 4;
        let mut buf = BytesMut::from(&wire[..split]);
        assert_eq!(next_frame(&mut buf), Ok(None));
        buf.extend_from_slice(&wire[split..]);
        assert_eq!(next_frame(&mut buf), Ok(Some(Frame::Message(wire.into()))));
    }

    #[test]
    fn double_crlf_is_a_keep_alive_and_single_crlf_is_skipped() {
        let wire = message("");
        let mut buf = BytesMut::from(&b"\r\n\r\n"[..]);
        buf.extend_from_slice(b"\r\n");
        buf.extend_from_slice(&wire);
        assert_eq!(
            drain(&mut buf),
            vec![Frame::KeepAlive, Frame::Message(wire.into())]
        );
        let mut half_ping = BytesMut::from(&b"\r\n\r"[..]);
        assert_eq!(next_frame(&mut half_ping), Ok(None));
        half_ping.extend_from_slice(b"\n");
        assert_eq!(next_frame(&mut half_ping), Ok(Some(Frame::KeepAlive)));
    }

    #[test]
    fn lf_only_header_end_and_compact_length_are_accepted() {
        let wire = b"OPTIONS sip:a@b SIP/2.0\nCall-ID: x\nL :  3 \n\nabc".to_vec();
        let mut buf = BytesMut::from(&wire[..]);
        assert_eq!(next_frame(&mut buf), Ok(Some(Frame::Message(wire.into()))));
    }

    #[test]
    fn missing_or_invalid_content_length_is_an_error() {
        let cases: [(&[u8], FrameError); 4] = [
            (
                b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n",
                FrameError::MissingContentLength,
            ),
            (
                b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n",
                FrameError::BadContentLength("-999".into()),
            ),
            (
                b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: five\r\n\r\n",
                FrameError::BadContentLength("five".into()),
            ),
            (
                b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 13\r\nl: 5\r\n\r\n",
                FrameError::BadContentLength("conflicting values 13 and 5".into()),
            ),
        ];
        for (wire, expected) in cases {
            assert_eq!(next_frame(&mut BytesMut::from(wire)), Err(expected));
        }
    }

    #[test]
    fn oversize_headers_and_bodies_are_refused() {
        let mut endless = BytesMut::from(&b"INVITE sip:a@b SIP/2.0\r\n"[..]);
        while endless.len() <= MAX_HEADER_BYTES {
            endless.extend_from_slice(b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert_eq!(next_frame(&mut endless), Err(FrameError::HeaderTooLong));

        let huge = format!(
            "INVITE sip:a@b SIP/2.0\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY_BYTES + 1
        );
        assert_eq!(
            next_frame(&mut BytesMut::from(huge.as_bytes())),
            Err(FrameError::BodyTooLarge {
                size: MAX_BODY_BYTES + 1,
                limit: MAX_BODY_BYTES
            })
        );
        let small = FrameLimits {
            max_body_bytes: 1_024,
        };
        let error = next_frame_with(&mut BytesMut::from(&message(&"x".repeat(1_025))[..]), small)
            .unwrap_err();
        assert_eq!(error.status_code(), 413);
        assert_eq!(
            next_frame_with(&mut BytesMut::from(&message(&"x".repeat(1_024))[..]), small)
                .map(|frame| frame.is_some()),
            Ok(true)
        );
    }

    proptest! {
        #[test]
        fn any_split_of_a_stream_yields_the_same_frames(
            bodies in proptest::collection::vec("[a-z0-9 ]{0,40}", 1..5),
            pings in proptest::collection::vec(any::<bool>(), 5),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let mut wire = Vec::new();
            let mut expected = Vec::new();
            for (body, ping) in bodies.iter().zip(pings) {
                if ping {
                    wire.extend_from_slice(b"\r\n\r\n");
                    expected.push(Frame::KeepAlive);
                }
                let one = message(body);
                wire.extend_from_slice(&one);
                expected.push(Frame::Message(one.into()));
            }
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
            points.push(0);
            points.push(wire.len());
            points.sort_unstable();
            points.dedup();

            let mut buf = BytesMut::new();
            let mut frames = Vec::new();
            for window in points.windows(2) {
                buf.extend_from_slice(&wire[window[0]..window[1]]);
                frames.extend(drain(&mut buf));
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(frames, expected);
        }
    }
}
