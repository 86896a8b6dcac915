//! `hotline`: a call-center engine for a government public-service hotline.
//!
//! # Architecture
//! Pure cores decide; thin tokio tasks do I/O (see `DESIGN.md` in the shared docs). The
//! switch core takes every call decision in one deterministic state machine, so whole
//! calls are tested in process under simulated time (`src/switch/tests.rs`).
//!
//! | module | owns | pure or I/O |
//! |---|---|---|
//! | [`config`] | the TOML config and the agents file, validated with file:line errors before any port is bound | pure (reads files) |
//! | [`capacity`] | giving back the room a burst left in long-lived maps and queues | pure |
//! | [`privacy`] | masking caller numbers for logs, metrics and listings (R12) | pure |
//! | [`qa`] | forbidden phrases in agents' texts (R28) and the daily QA sample of each agent's calls (R23) | pure |
//! | [`sip`] | SIP messages, reading what a transport delivers, TCP framing, transactions (RFC 3261 timers), dialogs, SDP, registrar, digest auth | pure |
//! | [`switch`] | every call decision: transactions, dialogs, calls as sets of legs (inbound UAS, outbound UAC), registrar and digest, driving the ACD; work-order writes as calls happen (R10); the 24 h connection rate (R5) | pure |
//! | [`acd`] | queues, agents, routing strategies, ring timeout and overflow (R6, R7, R15) | pure, driven by the switch |
//! | [`callbacks`] | follow-up calls: due windows, owner grace, retries, overdue, inbound-first preemption and their store (R7, R9, R16–R20) | pure scheduler + SQLite and PostgreSQL stores |
//! | [`media`] | G.711, RTP, RFC 4733 DTMF, prompts, one leg's stream logic | pure |
//! | [`recording`] | stereo WAV recordings that survive a crash (R22) | pure header logic + one writer task per call |
//! | [`workorder`] | the work order model and its stores (R10, R31) | trait + embedded SQLite backend |
//! | [`metrics`] | metric names and the rolling 24 h connection rate (R5, R30) | pure window + `metrics` facade |
//! | [`ivr`] | dialplans as data (compiled and validated with file:line errors, versioned for reload) and the per-call interpreter: menus, queues, survey, R27 scripts | pure core |
//! | [`runtime`] | the tokio tasks: UDP/TCP transports, the one switch task, media streams, the store writer and QA sampling, the retention job; start-up checks, reload, shutdown | I/O |
//! | [`service`] | systemd readiness (`Type=notify`) and the process's own health metrics | I/O |
//! | [`sim`] | the deterministic simulation: a seeded lossy network, a simulated clock, trunk callers and agent phones speaking real SIP text, the whole switch under invariants (issue 7) | pure (test and benchmark harness; the engine imports only its SIP user agent, `sim::ua`, for the browser desk) |
//! | [`desk`] | the agent desk in a browser (issue 13): its WebSocket protocol and each desk's session, a SIP user agent to the switch joined to the browser's WebRTC audio | pure core; the runtime runs it |
//! | [`api`] | the HTTP server: `/metrics`, `/health`, and the agent API behind a bearer token; reaches the switch by commands | I/O |
//!
//! Imports go one way: `runtime` → `api`, `switch` → `sip`, `acd`, `media`, `workorder`,
//! `metrics`, `config`. No module imports one that imports it back; `tests/module_graph.rs`
//! fails the build on a cycle.

pub mod acd;
pub mod api;
pub mod callbacks;
pub mod capacity;
pub mod config;
pub mod desk;
pub mod ivr;
pub mod media;
pub mod metrics;
pub mod privacy;
pub mod qa;
pub mod recording;
pub mod runtime;
pub mod service;
pub mod sim;
pub mod sip;
pub mod switch;
pub mod workorder;

pub use runtime::run;
