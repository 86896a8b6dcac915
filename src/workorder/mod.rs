//! Work orders (工单): the record of one call from INVITE to hang-up, and the pluggable
//! stores that keep them (R10, R31).
//!
//! The model ([`WorkOrder`], its enums and [`WorkOrderId`]) and the listing formatter
//! are pure. The [`WorkOrderStore`] trait is the seam every backend plugs into; the
//! embedded default, [`sqlite::SqliteStore`], does blocking file I/O on a thread of
//! its own. A work order is written when the INVITE arrives and updated on the trunk
//! answer, on entering an ACD queue, on an agent's answer (who then owns it, R7) and on
//! hang-up, so a crash loses nothing already known (R10).
//!
//! The full caller number lives only in the store; everything printed goes through
//! [`crate::privacy::mask_number`] (R12).

mod listing;
mod model;
pub mod sqlite;
mod store;

#[doc(hidden)]
pub mod conformance;

pub use listing::format_listing;
pub use model::{
    AbandonReason, CallCountBucket, CallOutcome, Category, Direction, HangupSide,
    InvalidWorkOrderId, ParseEnumError, RejectReason, Status, WorkOrder, WorkOrderId,
};
pub use store::{StoreError, WorkOrderStore};
