//! SIP (R29): messages, TCP framing, transactions with the RFC 3261 timers, dialogs,
//! SDP offer/answer (pure cores), and the UDP/TCP transport tasks (I/O).

pub mod dialog;
pub mod digest;
pub mod framing;
pub mod message;
pub mod registrar;
pub mod sdp;
pub mod transaction;
pub mod transport;
