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

pub use inbound::{Inbound, TransportKind};
