//! Work orders (工单): the record of a matter from the call that opened it to its
//! closing, and the pluggable stores that keep them (R10, R21, R31).
//!
//! Pure: the model ([`WorkOrder`], its enums and [`WorkOrderId`]; the matter in
//! [`matter`]), the lifecycle rules ([`lifecycle`]), retention decisions
//! ([`retention`]), the import formats ([`import`]) and the listing/export formatters.
//! The [`WorkOrderStore`] trait is the seam every backend plugs into; both shipped
//! backends, the embedded default [`sqlite`] and production [`postgres`], are one
//! [`SqlStore`] doing blocking I/O on a thread of its own (`sql`). A work order is
//! written when the INVITE arrives and updated on the trunk answer, on entering an
//! ACD queue, on an agent's answer (who then owns it, R7) and on hang-up, so a crash
//! loses nothing already known (R10); every later change is kept as an event (R21).
//!
//! The full caller number lives only in the store; everything printed goes through
//! [`crate::privacy::mask_number`] (R12).

pub mod cli;
pub mod export;
pub mod import;
pub mod lifecycle;
mod listing;
pub mod matter;
mod model;
mod open;
pub mod postgres;
pub mod retention;
mod sql;
pub use sql::sqlite;
mod store;

#[doc(hidden)]
pub mod conformance;
#[doc(hidden)]
pub mod fixtures;

pub use listing::format_listing;
pub use matter::{
    CallRecord, CallerRating, DetailsUpdate, EnterpriseEvaluation, EnterpriseReferral, FollowUp,
    FollowUpTask, ForbiddenPhraseHit, KnowledgeEntry, ListQuery, Matter, OrderPage, Provider,
    PurgeReport, QaSelection, ReadAuditEntry, StoreHealth, WorkOrderEvent, WorkOrderFile,
};
pub use model::{
    AbandonReason, AuditedRead, CallCountBucket, CallKind, CallOutcome, Category, Direction,
    EventKind, FollowUpKind, HangupSide, InvalidWorkOrderId, ParseEnumError, RatingTarget,
    RejectReason, Satisfaction, Status, WorkOrder, WorkOrderId,
};
pub use open::{open_configured, open_shared, postgres_settings};
pub use sql::{STORE_UP_METRIC, SqlStore};
pub use store::{ErrorSource, StoreError, WorkOrderStore, message_source};
