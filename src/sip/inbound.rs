//! What arrives from a transport, read and validated (pure): the transport a message
//! came by, a parsed message with its summary and source, or the error answer to send
//! for bytes that are not a usable SIP message. The transport tasks and the simulated
//! network of the tests read bytes through the same [`classify`].

use std::net::SocketAddr;

use tracing::debug;

use super::message::{self, Request, RequestSummary, Response, ResponseSummary, SipMessage};

/// Which transport a message came in on or goes out by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransportKind {
    Udp,
    Tcp,
}

impl TransportKind {
    /// The Via transport token.
    pub fn via_token(self) -> &'static str {
        match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
        }
    }

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            TransportKind::Udp => "udp",
            TransportKind::Tcp => "tcp",
        }
    }

    /// Whether the transport retransmits for us (RFC 3261 §17: timers differ).
    pub fn is_reliable(self) -> bool {
        self == TransportKind::Tcp
    }
}

impl From<TransportKind> for rsipstack::sip::Transport {
    fn from(kind: TransportKind) -> Self {
        match kind {
            TransportKind::Udp => rsipstack::sip::Transport::Udp,
            TransportKind::Tcp => rsipstack::sip::Transport::Tcp,
        }
    }
}

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

pub fn classify(bytes: &[u8], source: SocketAddr, transport: TransportKind) -> Received {
    let parsed = match message::parse(bytes) {
        Ok(m) => m,
        Err(e) => {
            debug!(%source, error = %e, "unparseable SIP message");
            return Received::Malformed(message::error_response_from_raw(
                bytes,
                e.status_code(),
                &e.to_string(),
            ));
        }
    };
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
                Received::Malformed(message::error_response(&request, &e))
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
