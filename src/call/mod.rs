//! Calls: the per-call state machine ([`core`], pure) and the task that drives one call's
//! signalling, media, recording and work order ([`driver`], I/O).

pub mod agent_leg;
pub mod core;
pub mod driver;
pub mod feature;
