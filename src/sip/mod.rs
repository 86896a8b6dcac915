//! SIP (R29): messages, TCP framing, transactions with the RFC 3261 timers, dialogs,
//! SDP offer/answer, and reading what a transport delivers. All pure: the sockets are
//! the runtime's.

pub mod auth_guard;
pub mod dialog;
pub mod digest;
pub mod framing;
pub mod inbound;
pub mod message;
pub mod registrar;
pub mod sdp;
pub mod transaction;

pub use inbound::{Inbound, TransportKind};
