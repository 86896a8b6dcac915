//! Media: G.711 codecs, RTP packets, RFC 4733 DTMF, prompts (pure), and the per-call
//! RTP task that paces audio out every 20 ms and feeds the recording (I/O).

pub mod dtmf;
pub mod g711;
pub mod prompt;
pub mod rtp;
pub mod session;
pub mod vad;
