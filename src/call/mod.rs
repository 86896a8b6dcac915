//! Calls: the per-call state machine ([`core`], pure), the leg to an agent's phone
//! ([`agent_leg`], pure message building), the task that drives one call's signalling,
//! media, recording and work order ([`driver`], I/O), and agents' feature-code calls
//! ([`feature`], I/O).

pub mod agent_leg;
pub mod core;
pub mod driver;
pub mod feature;
