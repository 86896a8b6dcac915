//! `hotline`: a call-center engine for a government public-service hotline.
//!
//! # Architecture
//! Pure cores decide; thin tokio drivers do I/O (see `DESIGN.md` in the shared docs).
//!
//! | module | owns | pure or I/O |
//! |---|---|---|
//! | [`config`] | the TOML config and the agents file, validated with file:line errors before any port is bound | pure (reads files) |
//! | [`privacy`] | masking caller numbers for logs, metrics and listings (R12) | pure |
//! | [`sip`] | SIP messages, TCP framing, transactions (RFC 3261 timers), dialogs, SDP, registrar, digest auth | pure cores + UDP/TCP transport tasks |
//! | [`media`] | G.711, RTP, RFC 4733 DTMF, prompts, the per-call RTP task and its bridge to an agent | pure codecs + one task per call |
//! | [`recording`] | stereo WAV recordings that survive a crash (R22) | one writer task per call |
//! | [`workorder`] | the work order model and its stores (R10, R31) | trait + embedded SQLite backend |
//! | [`metrics`] | metric names and the rolling 24 h connection rate (R5, R30) | pure window + `metrics` facade |
//! | [`acd`] | queues, agents, routing strategies, ring timeout and overflow (R6, R7, R15) | pure core |
//! | [`call`] | the per-call state machine, the leg to the agent's phone (B2BUA), feature codes, and the driver task | pure cores + one task per call |
//! | [`engine`] | wires transports, the SIP endpoint, the agents actor (ACD + registrar), calls, store and metrics; admission, reload and shutdown | I/O |
//! | [`sim`] | the deterministic simulation: a seeded lossy network, a simulated clock, trunk callers and agent phones speaking real SIP text (issue 7) | pure (test and benchmark harness; the engine never imports it) |
//! | [`api`] | the HTTP server: `/metrics`, `/health`, and the agent API behind a bearer token | I/O |

pub mod acd;
pub mod api;
pub mod config;
pub mod media;
pub mod metrics;
pub mod privacy;
pub mod recording;
pub mod runtime;
pub mod sim;
pub mod sip;
pub mod switch;
pub mod workorder;

pub use runtime::run;
