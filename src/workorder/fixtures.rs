//! Test data shared by the conformance suite and the unit tests of the work-order
//! modules (pure): a fixed instant and an inbound stub. Its own module, so the modules
//! it serves never import one another to reach it.

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::{WorkOrder, WorkOrderId};

/// A fixed instant with a non-zero sub-second part, so a backend that drops precision
/// is caught.
pub fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 15, 30, 12)
        .single()
        .expect("fixed test time is valid")
        + Duration::nanoseconds(123_456_789)
}

/// An inbound stub with a full (unmasked) mobile number, offered at `offered_at`.
pub fn inbound_order(n: u64, offered_at: DateTime<Utc>) -> WorkOrder {
    WorkOrder::new_inbound(
        WorkOrderId::from_parts(offered_at, n),
        format!("call-{n}@trunk.example"),
        format!("138{n:08}"),
        "8890",
        offered_at,
    )
}
