//! What arrives from a transport, read and validated (pure): the transport a message
//! came by, a parsed message with its summary and source, or the error answer to send
//! for bytes that are not a usable SIP message. The transport tasks and the simulated
//! network of the tests read bytes through the same [`classify`].

use std::net::SocketAddr;

use tracing::debug;

use super::TransportKind;
use super::message::{self, Request, RequestSummary, Response, ResponseSummary, SipMessage};

/// A well-formed message handed to the endpoint.
// Requests are the common case; boxing them would cost an allocation per message for
// the sake of the rarer, smaller responses.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Inbound {
    Request {
        request: Request,
        summary: RequestSummary,
        source: SocketAddr,
        transport: TransportKind,
    },
    Response {
        response: Response,
        summary: ResponseSummary,
        source: SocketAddr,
        transport: TransportKind,
    },
}

/// What to do with bytes that arrived: pass a message on, or answer/drop garbage.
pub enum Received {
    Message(Box<Inbound>),
    /// Malformed; `Some` is the `400` to send back.
    Malformed(Option<Vec<u8>>),
}

/// What [`classify_with`] accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InboundLimits {
    /// Larger bodies (declared or present) are answered `413`.
    pub max_body_bytes: usize,
}

impl Default for InboundLimits {
    fn default() -> Self {
        InboundLimits {
            max_body_bytes: super::framing::MAX_BODY_BYTES,
        }
    }
}

/// [`classify_with`] under the default limits.
pub fn classify(bytes: &[u8], source: SocketAddr, transport: TransportKind) -> Received {
    classify_with(bytes, source, transport, InboundLimits::default())
}

/// Reads one datagram or framed message: a message to hand on, or the answer for bytes
/// that are not one (`413` for a body over `limits`, `400`/`416`/`501`/`505` as
/// [`message::SipError::status_code`] says).
pub fn classify_with(
    bytes: &[u8],
    source: SocketAddr,
    transport: TransportKind,
    limits: InboundLimits,
) -> Received {
    let parsed = match message::parse(bytes) {
        Ok(m) => m,
        Err(message::SipError::BodyLength { declared, .. }) if declared > limits.max_body_bytes => {
            return too_large(bytes, source, declared, limits);
        }
        Err(e) => {
            debug!(%source, error = %e, "unparseable SIP message");
            return Received::Malformed(message::error_response_from_raw(
                bytes,
                e.status_code(),
                &e.to_string(),
            ));
        }
    };
    let body_len = match &parsed {
        SipMessage::Request(request) => request.body.len(),
        SipMessage::Response(response) => response.body.len(),
    };
    if body_len > limits.max_body_bytes {
        return too_large(bytes, source, body_len, limits);
    }
    match parsed {
        SipMessage::Request(mut request) => match message::summary(&request) {
            Ok(summary) => {
                // Responses copy the Via, so the peer learns the address it was seen at.
                let _ = message::via_received_rport(&mut request, source);
                Received::Message(Box::new(Inbound::Request {
                    request,
                    summary,
                    source,
                    transport,
                }))
            }
            Err(e) => {
                debug!(%source, error = %e, "invalid SIP request");
                Received::Malformed(super::builder::error_response(&request, &e))
            }
        },
        SipMessage::Response(response) => match message::response_summary(&response) {
            Ok(summary) => Received::Message(Box::new(Inbound::Response {
                response,
                summary,
                source,
                transport,
            })),
            // A response is never answered (RFC 3261 §18.1.2): drop it.
            Err(e) => {
                debug!(%source, error = %e, "invalid SIP response dropped");
                Received::Malformed(None)
            }
        },
    }
}

fn too_large(bytes: &[u8], source: SocketAddr, size: usize, limits: InboundLimits) -> Received {
    let error = message::SipError::BodyTooLarge {
        size,
        limit: limits.max_body_bytes,
    };
    debug!(%source, %error, "SIP body too large");
    Received::Malformed(message::error_response_from_raw(
        bytes,
        error.status_code(),
        "Request Entity Too Large",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "192.0.2.10:5060";

    fn request(extra_header: &str, body: &str) -> Vec<u8> {
        format!(
            "OPTIONS sip:8890@hotline.example SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKlimits\r\n\
             From: <sip:a@example>;tag=1\r\n\
             To: <sip:8890@hotline.example>\r\n\
             Call-ID: limits-1\r\n\
             CSeq: 1 OPTIONS\r\n\
             Max-Forwards: 70\r\n\
             {extra_header}\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn answer(bytes: &[u8], limits: InboundLimits) -> Option<u16> {
        match classify_with(bytes, SOURCE.parse().unwrap(), TransportKind::Udp, limits) {
            Received::Message(_) => None,
            Received::Malformed(reply) => {
                let reply = String::from_utf8(reply.expect("an answer")).unwrap();
                Some(reply[8..11].parse().unwrap())
            }
        }
    }

    #[test]
    fn a_body_over_the_limit_gets_413_and_one_at_it_passes() {
        let limits = InboundLimits {
            max_body_bytes: 1_024,
        };
        assert_eq!(answer(&request("", &"x".repeat(1_025)), limits), Some(413));
        assert_eq!(answer(&request("", &"x".repeat(1_024)), limits), None);
    }

    #[test]
    fn a_declared_length_over_the_limit_gets_413_even_when_the_body_is_cut() {
        let limits = InboundLimits {
            max_body_bytes: 1_024,
        };
        let cut = String::from_utf8(request("", "abc"))
            .unwrap()
            .replace("Content-Length: 3", "Content-Length: 1000000");
        assert_eq!(answer(cut.as_bytes(), limits), Some(413));
    }

    #[test]
    fn nul_in_the_request_uri_or_a_header_and_a_line_without_colon_get_400() {
        let limits = InboundLimits::default();
        let nul_uri = String::from_utf8(request("", ""))
            .unwrap()
            .replace("sip:8890@", "sip:88\u{0}90@");
        assert_eq!(answer(nul_uri.as_bytes(), limits), Some(400));
        assert_eq!(
            answer(&request("Subject: a\u{0}b\r\n", ""), limits),
            Some(400)
        );
        assert_eq!(
            answer(&request("This line has no colon\r\n", ""), limits),
            Some(400)
        );
        assert_eq!(answer(&request("Subject: fine\r\n", ""), limits), None);
    }
}
