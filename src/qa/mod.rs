//! Quality assurance, as pure cores (no clock, no I/O, randomness only from a seed):
//! - [`phrases`]: finds the service standard's forbidden phrases (R28) in what agents
//!   write on work orders, without ever changing the text;
//! - [`sampling`]: picks a configured share of each agent's calls per day for review
//!   (R23).
//!
//! The API and the call path feed them; the work-order store keeps what they decide.

pub mod phrases;
pub mod sampling;

pub use phrases::{PhraseChecker, PhraseHit};
pub use sampling::QaSampler;
