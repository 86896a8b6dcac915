//! The matter a work order is about, beyond its first call: the fields agents fill in,
//! the further calls, follow-up tasks, quality and audit records, the knowledge base
//! and service directory entries, and the values the store reports. Pure data.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::model::{
    AuditedRead, CallKind, CallOutcome, Category, Direction, EventKind, FollowUpKind, HangupSide,
    RatingTarget, Satisfaction, Status, WorkOrder, WorkOrderId,
};

/// One call about a matter (R22): the call that opened the order, another inbound call,
/// a callback to the caller or a call to the referred enterprise, each with its
/// recording. The first call's facts live on [`WorkOrder`]; [`WorkOrderFile::calls`]
/// lists it first, built from them.
///
/// `caller` is the full number: store only (R12).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallRecord {
    /// The SIP Call-ID of the call's trunk leg; unique within an order.
    pub call_id: String,
    pub kind: CallKind,
    pub direction: Direction,
    pub caller: String,
    pub callee: String,
    pub offered_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub hangup_side: Option<HangupSide>,
    pub outcome: Option<CallOutcome>,
    pub recording_path: Option<String>,
    /// The agent on the call.
    pub agent: Option<String>,
}

impl CallRecord {
    /// The first call of `order`, as the order records it.
    pub fn first_of(order: &WorkOrder) -> Self {
        Self {
            call_id: order.call_id.clone(),
            kind: match order.direction {
                Direction::Inbound => CallKind::Inbound,
                Direction::Outbound => CallKind::Callback,
            },
            direction: order.direction,
            caller: order.caller.clone(),
            callee: order.callee.clone(),
            offered_at: order.offered_at,
            answered_at: order.answered_at,
            ended_at: order.ended_at,
            hangup_side: order.hangup_side,
            outcome: order.outcome,
            recording_path: order.recording_path.clone(),
            agent: order.agent.clone(),
        }
    }
}

/// The caller's evaluation of a referred enterprise (R25).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnterpriseEvaluation {
    pub attitude: Satisfaction,
    pub efficiency: Satisfaction,
    pub quality: Satisfaction,
}

/// The enterprise a service request was referred to (R14, R16) and, once the caller
/// gave it, their evaluation of it (R25).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnterpriseReferral {
    pub enterprise: String,
    pub referred_at: DateTime<Utc>,
    pub evaluation: Option<EnterpriseEvaluation>,
}

/// A caller's rating of the service (R24) or of the handling unit (R26).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerRating {
    pub target: RatingTarget,
    pub score: Satisfaction,
}

/// A follow-up call to make (R17–R20): due no earlier than `due_from` and no later
/// than `due_until`. The callbacks feature schedules and retries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowUpTask {
    pub kind: FollowUpKind,
    pub due_from: DateTime<Utc>,
    pub due_until: DateTime<Utc>,
    #[serde(default)]
    pub note: String,
}

/// A stored follow-up task: its number within the order, and when it was done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FollowUp {
    pub number: u32,
    pub task: FollowUpTask,
    pub done_at: Option<DateTime<Utc>>,
}

/// Why and when an order was picked for quality review (R23).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QaSelection {
    pub selected_at: DateTime<Utc>,
    /// E.g. `random sample` or `forbidden phrase`.
    pub reason: String,
}

/// A forbidden phrase (R28) found in a field an agent wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForbiddenPhraseHit {
    pub phrase: String,
    /// The field it was found in, e.g. `answer` or `note`.
    pub field: String,
}

/// The matter's own fields (R13, R14, R11, R23–R26).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Matter {
    /// What the caller asked or reported (诉求内容).
    pub matter: Option<String>,
    /// The answer given to the caller (答复内容).
    pub answer: Option<String>,
    /// The government department or public body it was transferred to (R14).
    pub handling_unit: Option<String>,
    /// Marked urgent (R11).
    pub urgent: bool,
    pub referral: Option<EnterpriseReferral>,
    /// The caller's rating of the service (R24).
    pub service_rating: Option<Satisfaction>,
    /// The caller's rating of the handling unit (R26).
    pub unit_rating: Option<Satisfaction>,
    pub qa: Option<QaSelection>,
}

/// A whole work order: the first call and lifecycle ([`WorkOrder`]), the matter, every
/// call, the follow-up tasks and the forbidden-phrase hits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkOrderFile {
    pub order: WorkOrder,
    pub matter: Matter,
    /// The first call, then attached calls by `offered_at`.
    pub calls: Vec<CallRecord>,
    pub follow_ups: Vec<FollowUp>,
    pub forbidden_hits: Vec<ForbiddenPhraseHit>,
}

impl WorkOrderFile {
    /// Whether a follow-up task is still open past its `due_until` at `now` (R20).
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        self.follow_ups
            .iter()
            .any(|f| f.done_at.is_none() && f.task.due_until < now)
    }
}

/// The fields an agent changes on an order; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetailsUpdate {
    #[serde(default)]
    pub matter: Option<String>,
    #[serde(default)]
    pub answer: Option<String>,
    #[serde(default)]
    pub handling_unit: Option<String>,
    #[serde(default)]
    pub category: Option<Category>,
    #[serde(default)]
    pub urgent: Option<bool>,
}

/// One entry of an order's audit trail (R21): what changed, who did it, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkOrderEvent {
    pub at: DateTime<Utc>,
    /// An agent number, a supervisor's or QA token name, or `engine`.
    pub actor: String,
    pub kind: EventKind,
    /// The change as a small JSON object, e.g. `{"from":"accepted","to":"closed"}`.
    pub detail: String,
}

/// Filters for [`super::WorkOrderStore::list_orders`]; `None` does not filter.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListQuery {
    pub status: Option<Status>,
    pub category: Option<Category>,
    /// Owner agent (R7).
    pub agent: Option<String>,
    /// First call offered at or after.
    pub offered_from: Option<DateTime<Utc>>,
    /// First call offered before.
    pub offered_until: Option<DateTime<Utc>>,
    /// Only orders with an open follow-up task whose `due_until` is before this time.
    pub overdue_at: Option<DateTime<Utc>>,
    /// Only orders picked (or not picked) for QA.
    pub qa_selected: Option<bool>,
    /// Leaves out orders of these categories (what an agent may not see, R15); orders
    /// without a category stay in.
    pub exclude_categories: Vec<Category>,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
    /// Page size; 0 means the default of 50. At most 1,000.
    pub limit: usize,
}

/// One page of [`super::WorkOrderStore::list_orders`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderPage {
    pub orders: Vec<WorkOrder>,
    /// Pass as [`ListQuery::after`] for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// A read of a full caller number or a recording (R12).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadAuditEntry {
    pub at: DateTime<Utc>,
    /// Who read it (token name, supervisor, `cli:<user>`).
    pub actor: String,
    pub read: AuditedRead,
    pub work_order: Option<WorkOrderId>,
    /// What exactly: the recording's path, or which number (`caller`, `export`).
    pub target: String,
}

/// A knowledge-base entry (R13): policy and public information agents answer from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnowledgeEntry {
    pub id: String,
    pub title: String,
    pub body: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A service-directory provider (R13, R14): who can do what, where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub id: String,
    pub name: String,
    /// What they do, in the words a caller would use.
    pub services: String,
    #[serde(default)]
    pub area: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The work order whose handling found this provider (R14), if any.
    #[serde(default)]
    pub added_from: Option<WorkOrderId>,
}

/// What a retention purge removed, and who ran it when (kept in the purge log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub cutoff: DateTime<Utc>,
    pub orders: Vec<WorkOrderId>,
    /// The recordings of every call of those orders, for the caller to delete.
    pub recordings: Vec<String>,
}

/// What [`super::WorkOrderStore::health`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreHealth {
    pub up: bool,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// Why it is down (no secrets in it).
    pub problem: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_refuse_unknown_fields_and_bad_enum_values() {
        let ok: DetailsUpdate =
            serde_json::from_str(r#"{"answer":"已答复","category":"consultation","urgent":true}"#)
                .expect("valid update");
        assert_eq!(ok.category, Some(Category::Consultation));
        for bad in [
            r#"{"answer":"x","colour":"red"}"#,
            r#"{"category":"gossip"}"#,
            r#"{"urgent":"yes"}"#,
        ] {
            assert!(serde_json::from_str::<DetailsUpdate>(bad).is_err(), "{bad}");
        }
        assert!(
            serde_json::from_str::<EnterpriseEvaluation>(
                r#"{"attitude":"satisfied","efficiency":"satisfied","quality":"great"}"#
            )
            .is_err()
        );
        assert!(
            serde_json::from_str::<FollowUpTask>(
                r#"{"kind":"other","due_from":"2026-11-28T00:00:00Z","due_until":"2026-11-28T01:00:00Z","extra":1}"#
            )
            .is_err()
        );
    }

    #[test]
    fn keypad_digits_map_to_satisfaction_r24() {
        assert_eq!(
            Satisfaction::from_keypad('1'),
            Some(Satisfaction::Satisfied)
        );
        assert_eq!(
            Satisfaction::from_keypad('3'),
            Some(Satisfaction::Dissatisfied)
        );
        assert_eq!(Satisfaction::from_keypad('9'), None);
    }
}
