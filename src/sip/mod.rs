//! SIP (R29): messages, TCP framing, transactions with the RFC 3261 timers, dialogs,
//! SDP offer/answer, and reading what a transport delivers. All pure: the sockets are
//! the runtime's.

pub mod auth_guard;
pub mod builder;
pub mod dialog;
pub mod digest;
pub mod extensions;
pub mod framing;
pub mod inbound;
pub mod info;
pub mod message;
pub mod registrar;
pub mod sdp;
pub mod session_timer;
pub mod transaction;
pub mod trunk;

pub use inbound::Inbound;

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
