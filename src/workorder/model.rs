//! The work order model: ids, lifecycle and outcome enums, the order itself. Pure.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, Utc};

/// Number of random hex digits in a generated [`WorkOrderId`]. 48 bits keep the chance
/// of two orders created in the same second colliding negligible even at hundreds of
/// calls per second (a 24-bit suffix would collide about hourly at 100 calls/s).
const GENERATED_RANDOM_HEX_DIGITS: usize = 12;
/// Ids written by hand or by older code may carry a shorter or longer suffix; this
/// range keeps them safe as file names while accepting them.
const ACCEPTED_RANDOM_HEX_DIGITS: std::ops::RangeInclusive<usize> = 6..=32;
const ID_TIME_FORMAT: &str = "%Y%m%d-%H%M%S";
const ID_TIME_LEN: usize = 15;

/// Identifies one work order, e.g. `20261128-153012-7f3a9c2b41d0`: the UTC date and
/// time the call was offered, then random hex.
///
/// Unique across restarts (no counter to lose), sorts by creation time as plain text,
/// and holds only digits, `-` and lowercase hex, so it is safe as a file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkOrderId(String);

impl WorkOrderId {
    /// A fresh id for a call offered at `at`, with a random suffix from the thread RNG.
    pub fn generate(at: DateTime<Utc>) -> Self {
        Self::from_parts(at, rand::random::<u64>())
    }

    /// The id for `at` with the low 48 bits of `random` as suffix; deterministic, for
    /// callers that bring their own randomness (tests, simulations).
    pub fn from_parts(at: DateTime<Utc>, random: u64) -> Self {
        let mask = (1u64 << (4 * GENERATED_RANDOM_HEX_DIGITS)) - 1;
        Self(format!(
            "{}-{:0width$x}",
            at.format(ID_TIME_FORMAT),
            random & mask,
            width = GENERATED_RANDOM_HEX_DIGITS
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkOrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for WorkOrderId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for WorkOrderId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A string that is not a well-formed [`WorkOrderId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid work order id {0:?}: expected YYYYMMDD-HHMMSS-<6 to 32 lowercase hex digits>")]
pub struct InvalidWorkOrderId(pub String);

impl FromStr for WorkOrderId {
    type Err = InvalidWorkOrderId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidWorkOrderId(s.to_owned());
        // Checked byte-wise before slicing so multi-byte input can never split a char.
        if !s.is_ascii() || s.len() < ID_TIME_LEN + 1 {
            return Err(invalid());
        }
        let (time, rest) = s.split_at(ID_TIME_LEN);
        let suffix = rest.strip_prefix('-').ok_or_else(invalid)?;
        let time_is_digits = time.bytes().enumerate().all(|(i, b)| {
            if i == 8 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
        if !time_is_digits || NaiveDateTime::parse_from_str(time, ID_TIME_FORMAT).is_err() {
            return Err(invalid());
        }
        let suffix_is_hex = suffix
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !suffix_is_hex || !ACCEPTED_RANDOM_HEX_DIGITS.contains(&suffix.len()) {
            return Err(invalid());
        }
        Ok(Self(s.to_owned()))
    }
}

/// A stored enum text that names no known variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct ParseEnumError {
    pub kind: &'static str,
    pub value: String,
}

/// Gives a fieldless enum its snake_case storage name, `Display` and `FromStr`, so the
/// text in the store, in metric labels and in listings is one and the same.
macro_rules! text_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident as $kind:literal { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name { $($(#[$vmeta])* $variant,)+ }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The snake_case name used in storage, metric labels and listings.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseEnumError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(ParseEnumError { kind: $kind, value: s.to_owned() }),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

text_enum! {
    /// Who started the call: a caller dialling in, or the hotline calling out
    /// (callbacks R17–R19, enterprise calls R16).
    pub enum Direction as "direction" {
        Inbound => "inbound",
        Outbound => "outbound",
    }
}

text_enum! {
    /// Where the matter stands in its lifecycle (R21):
    /// `accepted` → (`transferred`) → (`follow_up`) → `closed`.
    pub enum Status as "status" {
        Accepted => "accepted",
        Transferred => "transferred",
        FollowUp => "follow_up",
        Closed => "closed",
    }
}

text_enum! {
    /// What the matter is about: in scope (R1) or out of scope (R2), plus calls where
    /// nobody spoke and nuisance calls. `complaint` is a caller's livelihood problem
    /// (R1); `service_complaint` is a complaint against the hotline, its agents or a
    /// referred enterprise (R15), which only supervisors and QA see.
    pub enum Category as "category" {
        Consultation => "consultation",
        Complaint => "complaint",
        ServiceComplaint => "service_complaint",
        Report => "report",
        Help => "help",
        Suggestion => "suggestion",
        Emergency => "emergency",
        CivilDispute => "civil_dispute",
        LegalProcess => "legal_process",
        Military => "military",
        OutOfProvince => "out_of_province",
        Silent => "silent",
        Nuisance => "nuisance",
    }
}

text_enum! {
    /// Which side hung up first (R8): agents should hang up after the caller.
    pub enum HangupSide as "hangup side" {
        /// The caller (or the far end of an outbound call).
        Caller => "caller",
        /// The engine itself: IVR closing, silent-call script, shutdown.
        Hotline => "hotline",
        /// The agent's leg.
        Agent => "agent",
    }
}

text_enum! {
    /// Why an offered call ended without being answered. Each one counts against the
    /// connection rate (R5) and is exported as the `reason` label.
    pub enum AbandonReason as "abandon reason" {
        /// CANCEL before the engine answered.
        CallerCancelled => "caller_cancelled",
        /// Answered by the IVR, then the caller hung up while waiting for an agent.
        CallerHungUpInQueue => "caller_hung_up_in_queue",
        /// The caller hung up while an agent's phone was ringing for the call: the
        /// ACD had found an agent, who had not picked up yet.
        CallerHungUpWhileAgentRang => "caller_hung_up_while_agent_rang",
        /// No final answer could be given within the ring budget (R6).
        RingBudgetExceeded => "ring_budget_exceeded",
        /// The engine was draining for shutdown and the call could not be served.
        Shutdown => "shutdown",
        /// Call processing failed (media, signalling or store error).
        Failed => "failed",
        /// The engine stopped (crash, kill) while the call was open; found unfinished
        /// at the next start by [`super::WorkOrderStore::end_unfinished`].
        EngineRestarted => "engine_restarted",
    }
}

text_enum! {
    /// Why the engine refused a call with a final error response.
    pub enum RejectReason as "reject reason" {
        /// `503 Service Unavailable` + `Retry-After`: no capacity permit left.
        Overloaded => "overloaded",
        /// `503` while draining for shutdown.
        ShuttingDown => "shutting_down",
        /// `488 Not Acceptable Here`: no common codec in the SDP offer.
        NotAcceptableHere => "not_acceptable_here",
        /// `400 Bad Request`: the INVITE was malformed.
        BadRequest => "bad_request",
        /// `403 Forbidden`: the source is not an allowed trunk.
        Forbidden => "forbidden",
    }
}

impl Category {
    /// The categories kept from agents (R15): an agent must not read complaints about
    /// the hotline or its agents, their colleagues' or their own. Supervisors own them.
    pub const HIDDEN_FROM_AGENTS: &'static [Category] = &[Category::ServiceComplaint];

    /// Whether an agent may see an order of this category (R15).
    pub fn is_visible_to_agents(category: Option<Category>) -> bool {
        category.is_none_or(|c| !Category::HIDDEN_FROM_AGENTS.contains(&c))
    }

    /// Whether the hotline handles the matter itself (R1); out-of-scope matters (R2),
    /// silent and nuisance calls get a closing script and promise no result (R3).
    pub fn is_in_scope(self) -> bool {
        matches!(
            self,
            Category::Consultation
                | Category::Complaint
                | Category::ServiceComplaint
                | Category::Report
                | Category::Help
                | Category::Suggestion
        )
    }
}

text_enum! {
    /// Which call of a matter this is (R22: all are recorded): the call that opened
    /// the order or another inbound call about it, a callback to the caller (R17–R19),
    /// or a call to the referred enterprise (R16).
    pub enum CallKind as "call kind" {
        Inbound => "inbound",
        Callback => "callback",
        Enterprise => "enterprise",
    }
}

text_enum! {
    /// A caller's keypad evaluation (R24–R26): 1 satisfied, 2 basically satisfied,
    /// 3 dissatisfied.
    pub enum Satisfaction as "satisfaction" {
        Satisfied => "satisfied",
        BasicallySatisfied => "basically_satisfied",
        Dissatisfied => "dissatisfied",
    }
}

impl Satisfaction {
    /// A keypad rating on a survey's scale `min..=max` (the best is `max`), in the
    /// standard's three levels: the top third satisfied, the middle basically
    /// satisfied, the bottom dissatisfied (1–5: 4–5, 3, 1–2).
    pub fn from_scale(score: u8, min: u8, max: u8) -> Satisfaction {
        let (low, high) = (min.min(max), max.max(min));
        let span = f32::from((high - low).max(1));
        let position = f32::from(score.clamp(low, high) - low) / span;
        if position >= 2.0 / 3.0 {
            Satisfaction::Satisfied
        } else if position >= 1.0 / 3.0 {
            Satisfaction::BasicallySatisfied
        } else {
            Satisfaction::Dissatisfied
        }
    }

    /// The keypad digit the survey asks for; any other key is no answer.
    pub fn from_keypad(digit: char) -> Option<Self> {
        match digit {
            '1' => Some(Satisfaction::Satisfied),
            '2' => Some(Satisfaction::BasicallySatisfied),
            '3' => Some(Satisfaction::Dissatisfied),
            _ => None,
        }
    }
}

text_enum! {
    /// What a caller's rating is about: the hotline's service (R24) or the handling
    /// unit the matter went to (R26).
    pub enum RatingTarget as "rating target" {
        Service => "service",
        HandlingUnit => "handling_unit",
    }
}

text_enum! {
    /// Why a follow-up call is due (R17–R19); the callbacks feature schedules them.
    pub enum FollowUpKind as "follow-up kind" {
        /// 20–30 min after a referral: did the enterprise get in touch (R17)?
        ConfirmContact => "confirm_contact",
        /// 1–2 days later: the caller's evaluation (R18).
        AskEvaluation => "ask_evaluation",
        /// A complaint's immediate callback by its owner (R19).
        ComplaintCallback => "complaint_callback",
        Other => "other",
    }
}

text_enum! {
    /// What kind of change an audit-trail event records (R21).
    pub enum EventKind as "event kind" {
        Created => "created",
        OwnerAssigned => "owner_assigned",
        CallEnded => "call_ended",
        CallAttached => "call_attached",
        StatusChanged => "status_changed",
        FieldUpdated => "field_updated",
        Note => "note",
        EnterpriseReferred => "enterprise_referred",
        EnterpriseEvaluated => "enterprise_evaluated",
        Rated => "rated",
        FollowUpAdded => "follow_up_added",
        FollowUpDone => "follow_up_done",
        QaSelected => "qa_selected",
        ForbiddenPhrases => "forbidden_phrases",
        ProviderAdded => "provider_added",
    }
}

text_enum! {
    /// What an audit-log entry records: a read of a full number or a recording (R12),
    /// or a supervisor's action on an agent from the wallboard (issue 14: "every
    /// action is audited"; the target is the agent).
    pub enum AuditedRead as "audited read" {
        FullNumber => "full_number",
        Recording => "recording",
        AgentPause => "agent_pause",
        AgentLogout => "agent_logout",
    }
}

impl RejectReason {
    /// The SIP status code the engine answers with.
    pub fn status_code(self) -> u16 {
        match self {
            RejectReason::Overloaded | RejectReason::ShuttingDown => 503,
            RejectReason::NotAcceptableHere => 488,
            RejectReason::BadRequest => 400,
            RejectReason::Forbidden => 403,
        }
    }
}

/// How an offered call ended. Stored as two snake_case texts: the kind
/// (`answered`, `abandoned`, `rejected`) and, for the latter two, the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    Answered,
    Abandoned { reason: AbandonReason },
    Rejected { reason: RejectReason },
}

impl CallOutcome {
    /// `answered`, `abandoned` or `rejected`.
    pub fn kind(self) -> &'static str {
        match self {
            CallOutcome::Answered => "answered",
            CallOutcome::Abandoned { .. } => "abandoned",
            CallOutcome::Rejected { .. } => "rejected",
        }
    }

    /// The reason's snake_case name; `None` for answered calls.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            CallOutcome::Answered => None,
            CallOutcome::Abandoned { reason } => Some(reason.as_str()),
            CallOutcome::Rejected { reason } => Some(reason.as_str()),
        }
    }

    /// Rebuilds an outcome from its stored kind and reason.
    pub fn from_parts(kind: &str, reason: Option<&str>) -> Result<Self, ParseEnumError> {
        let unknown = || ParseEnumError {
            kind: "call outcome",
            value: match reason {
                Some(r) => format!("{kind}/{r}"),
                None => kind.to_owned(),
            },
        };
        match (kind, reason) {
            ("answered", None) => Ok(CallOutcome::Answered),
            ("abandoned", Some(r)) => Ok(CallOutcome::Abandoned { reason: r.parse()? }),
            ("rejected", Some(r)) => Ok(CallOutcome::Rejected { reason: r.parse()? }),
            _ => Err(unknown()),
        }
    }
}

/// Serialised as its display text, e.g. `abandoned/caller_cancelled`.
impl serde::Serialize for CallOutcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl fmt::Display for CallOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason() {
            Some(reason) => write!(f, "{}/{}", self.kind(), reason),
            None => f.write_str(self.kind()),
        }
    }
}

/// The record of one call (R10). Written at INVITE, updated at answer and hang-up.
///
/// `caller` is the full number: it must only ever reach the store. Do not log it or
/// put it in an API answer without masking (R12).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WorkOrder {
    pub id: WorkOrderId,
    /// The SIP Call-ID of the trunk leg, to find the order again from signalling.
    pub call_id: String,
    pub caller: String,
    pub callee: String,
    pub direction: Direction,
    /// When the INVITE arrived (or, outbound, when it was sent).
    pub offered_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub hangup_side: Option<HangupSide>,
    pub outcome: Option<CallOutcome>,
    pub recording_path: Option<String>,
    pub status: Status,
    pub category: Option<Category>,
    /// The agent number (工号) of the agent who owns the matter (R7): the first agent
    /// who answered the call. A later transfer does not change it.
    pub agent: Option<String>,
    /// The ACD queue the call is in, or was connected from. After an overflow it is
    /// the queue the call moved to.
    pub queue: Option<String>,
    /// When the call was first offered to an ACD queue: the caller's wait starts here
    /// and the connection rate counts the call in this minute (R5).
    pub queued_at: Option<DateTime<Utc>>,
    /// When an agent first answered (R7). `answered_at` stays the trunk answer, which
    /// the IVR gives before the call is queued (R6).
    pub connected_at: Option<DateTime<Utc>>,
}

impl WorkOrder {
    /// The stub written the moment an INVITE arrives: accepted, nothing else known.
    pub fn new_inbound(
        id: WorkOrderId,
        call_id: impl Into<String>,
        caller: impl Into<String>,
        callee: impl Into<String>,
        offered_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            call_id: call_id.into(),
            caller: caller.into(),
            callee: callee.into(),
            direction: Direction::Inbound,
            offered_at,
            answered_at: None,
            ended_at: None,
            hangup_side: None,
            outcome: None,
            recording_path: None,
            status: Status::Accepted,
            category: None,
            agent: None,
            queue: None,
            queued_at: None,
            connected_at: None,
        }
    }

    /// How long the caller waited in the ACD: from [`Self::queued_at`] until an agent
    /// answered or, for a call never connected, until it ended (the wait an abandoned
    /// call is recorded with). `None` while still waiting or when never queued.
    /// Derived, not stored, so it cannot disagree with the times it comes from; never
    /// negative even if the clock stepped back between the two writes.
    pub fn wait(&self) -> Option<chrono::Duration> {
        let queued = self.queued_at?;
        let until = self.connected_at.or(self.ended_at)?;
        Some((until - queued).max(chrono::Duration::zero()))
    }
}

/// The connection rate's counts (R5) for one UTC minute: inbound calls *offered to an
/// ACD queue* in that minute, and how many of those an agent answered.
///
/// These are the two numbers the hotline promises ("answered by an agent / offered to
/// a queue"), so the rolling 24 h window is built from them. The trunk answer given by
/// the IVR is a different, easier number: it is counted by
/// `hotline_calls_answered_total` only. Calls never queued (cancelled while the trunk
/// rang, ended in the IVR) do not count here at all.
///
/// Both counts belong to the minute of [`WorkOrder::queued_at`], even when the agent
/// answered in a later minute (the metrics module's `ConnectionRateWindow` says why).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallCountBucket {
    /// The start of the minute (seconds and below are zero).
    pub minute: DateTime<Utc>,
    /// Inbound calls first queued in this minute.
    pub offered: u64,
    /// Of those, the calls an agent answered (connected), whenever that happened.
    pub answered: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .expect("valid test time")
    }

    #[test]
    fn id_has_time_prefix_and_hex_suffix_and_round_trips() {
        let id = WorkOrderId::from_parts(at(2026, 11, 28, 15, 30, 12), 0x7f3a_9c2b_41d0);
        assert_eq!(id.to_string(), "20261128-153012-7f3a9c2b41d0");
        assert_eq!(id.as_str().parse::<WorkOrderId>(), Ok(id));
    }

    #[test]
    fn id_suffix_is_zero_padded_and_truncated_to_48_bits() {
        let id = WorkOrderId::from_parts(at(2026, 1, 2, 3, 4, 5), u64::MAX);
        assert_eq!(id.as_str(), "20260102-030405-ffffffffffff");
        let id = WorkOrderId::from_parts(at(2026, 1, 2, 3, 4, 5), 1);
        assert_eq!(id.as_str(), "20260102-030405-000000000001");
    }

    #[test]
    fn ids_sort_by_time_as_text() {
        let early = WorkOrderId::from_parts(at(2026, 11, 28, 15, 30, 12), u64::MAX);
        let late = WorkOrderId::from_parts(at(2026, 11, 28, 15, 30, 13), 0);
        assert!(early.as_str() < late.as_str());
        assert!(early < late);
    }

    #[test]
    fn generated_ids_differ() {
        let now = at(2026, 11, 28, 15, 30, 12);
        let ids: std::collections::HashSet<_> =
            (0..1000).map(|_| WorkOrderId::generate(now)).collect();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn parses_short_example_suffix() {
        assert!("20261128-153012-7f3a9c".parse::<WorkOrderId>().is_ok());
    }

    #[test]
    fn rejects_malformed_ids_without_panicking() {
        for bad in [
            "",
            "2026",
            "20261128-153012",
            "20261128-153012-",
            "20261128-153012-7F3A9C",
            "20261128-153012-7f3a9",
            "20261128-153012-7f3a9c/../x",
            "20261328-153012-7f3a9c",
            "20261128-256012-7f3a9c",
            "20261128_153012-7f3a9c",
            "2026112８-153012-7f3a9c",
            "../../../etc/passwd-7f3a9c",
            "20261128-153012-7f3a9c7f3a9c7f3a9c7f3a9c7f3a9c7f3a9c",
        ] {
            assert!(bad.parse::<WorkOrderId>().is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn enum_texts_round_trip_and_are_snake_case() {
        for c in Category::ALL {
            assert_eq!(c.as_str().parse::<Category>(), Ok(*c));
            assert!(
                c.as_str()
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch == '_')
            );
        }
        for r in AbandonReason::ALL {
            assert_eq!(r.as_str().parse::<AbandonReason>(), Ok(*r));
        }
        for r in RejectReason::ALL {
            assert_eq!(r.as_str().parse::<RejectReason>(), Ok(*r));
        }
        assert_eq!(Category::CivilDispute.as_str(), "civil_dispute");
        assert_eq!(Status::FollowUp.as_str(), "follow_up");
        assert!("Complaint".parse::<Category>().is_err());
    }

    #[test]
    fn outcome_round_trips_through_its_stored_parts() {
        let mut outcomes = vec![CallOutcome::Answered];
        outcomes.extend(
            AbandonReason::ALL
                .iter()
                .map(|&reason| CallOutcome::Abandoned { reason }),
        );
        outcomes.extend(
            RejectReason::ALL
                .iter()
                .map(|&reason| CallOutcome::Rejected { reason }),
        );
        for o in outcomes {
            assert_eq!(CallOutcome::from_parts(o.kind(), o.reason()), Ok(o));
        }
        assert!(CallOutcome::from_parts("answered", Some("failed")).is_err());
        assert!(CallOutcome::from_parts("abandoned", None).is_err());
        assert!(CallOutcome::from_parts("abandoned", Some("bored")).is_err());
    }

    #[test]
    fn reject_reasons_map_to_sip_status_codes() {
        assert_eq!(RejectReason::Overloaded.status_code(), 503);
        assert_eq!(RejectReason::NotAcceptableHere.status_code(), 488);
        assert_eq!(RejectReason::BadRequest.status_code(), 400);
    }

    #[test]
    fn new_inbound_is_an_accepted_stub() {
        let now = at(2026, 11, 28, 15, 30, 12);
        let order = WorkOrder::new_inbound(
            WorkOrderId::from_parts(now, 1),
            "abc@host",
            "13812345678",
            "8890",
            now,
        );
        assert_eq!(order.status, Status::Accepted);
        assert_eq!(order.direction, Direction::Inbound);
        assert_eq!(order.caller, "13812345678");
        assert!(order.answered_at.is_none() && order.ended_at.is_none());
        assert!(order.outcome.is_none() && order.category.is_none());
        assert!(order.queue.is_none() && order.queued_at.is_none());
        assert!(order.connected_at.is_none() && order.agent.is_none());
        assert_eq!(order.wait(), None);
    }

    fn queued_order(queued_at: DateTime<Utc>) -> WorkOrder {
        let mut order = WorkOrder::new_inbound(
            WorkOrderId::from_parts(queued_at, 1),
            "abc@host",
            "13812345678",
            "8890",
            queued_at - chrono::Duration::seconds(8),
        );
        order.queue = Some("general".into());
        order.queued_at = Some(queued_at);
        order
    }

    #[test]
    fn wait_runs_from_queue_to_agent_answer_r7() {
        let queued = at(2026, 11, 28, 15, 30, 12);
        let mut order = queued_order(queued);
        assert_eq!(order.wait(), None, "still waiting");
        order.connected_at = Some(queued + chrono::Duration::seconds(42));
        order.ended_at = Some(queued + chrono::Duration::seconds(300));
        assert_eq!(order.wait(), Some(chrono::Duration::seconds(42)));
    }

    #[test]
    fn abandoned_call_waits_until_it_ended() {
        let queued = at(2026, 11, 28, 15, 30, 12);
        let mut order = queued_order(queued);
        order.ended_at = Some(queued + chrono::Duration::seconds(75));
        assert_eq!(order.wait(), Some(chrono::Duration::seconds(75)));
    }

    #[test]
    fn wait_is_never_negative_and_needs_a_queue() {
        let queued = at(2026, 11, 28, 15, 30, 12);
        let mut order = queued_order(queued);
        order.connected_at = Some(queued - chrono::Duration::seconds(1));
        assert_eq!(order.wait(), Some(chrono::Duration::zero()));
        order.queued_at = None;
        assert_eq!(order.wait(), None);
    }
}
