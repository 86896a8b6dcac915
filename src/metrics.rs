//! Metric names, their descriptions, and the rolling 24 h connection rate (R5, R30).
//!
//! [`ConnectionRateWindow`] is pure: it is fed timestamps and never reads the clock.
//! The rest talks to the process-wide `metrics` facade; [`install_recorder`] puts the
//! Prometheus recorder behind it. The engine's HTTP server serves
//! `PrometheusHandle::render()` at `/metrics` and should call
//! `PrometheusHandle::run_upkeep()` every few seconds (or before each render) so
//! histogram samples are folded in and do not pile up.
//!
//! Names follow Prometheus conventions: `hotline_` prefix (`process_` for the
//! process's own health), base units in the name, counters end in `_total`, labels
//! low-cardinality (a reason, a transport, a queue name from the config, an agent
//! state), never a call id, a number or an agent number (R12).
//!
//! # Two answers, two numbers
//! The trunk answer (the IVR picks up within the ring budget, R6) is counted by
//! [`CALLS_ANSWERED_TOTAL`] and [`ANSWERED_WITHIN_RING_BUDGET_TOTAL`]. The connection
//! rate the hotline promises (R5) is the ACD's: calls answered by an agent over calls
//! offered to a queue, so the 24 h window and its gauges count
//! [`WorkOrderStore::call_counts_since`](crate::workorder::WorkOrderStore::call_counts_since)'s
//! notion: offered = first queued, answered = connected to an agent.
//!
//! # ACD helpers
//! The engine reports queue and agent events through small functions here
//! ([`count_queued`], [`count_connected`], [`record_queue_wait`],
//! [`set_queue_gauges`], [`set_agent_counts`], [`count_offer_result`]) so label names
//! and values are spelled in one place. Queue names must come from the config, never
//! from a request, to keep the label set bounded.

use std::time::Duration;

use chrono::{DateTime, Utc};
use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use crate::workorder::{AbandonReason, CallCountBucket, RejectReason};

pub const CALLS_OFFERED_TOTAL: &str = "hotline_calls_offered_total";
pub const CALLS_ANSWERED_TOTAL: &str = "hotline_calls_answered_total";
/// Labelled with [`REASON_LABEL`]: an [`AbandonReason`] name.
pub const CALLS_ABANDONED_TOTAL: &str = "hotline_calls_abandoned_total";
/// Labelled with [`REASON_LABEL`]: a [`RejectReason`] name.
pub const CALLS_REJECTED_TOTAL: &str = "hotline_calls_rejected_total";
pub const CALLS_ACTIVE: &str = "hotline_calls_active";
/// Browser desks (issue 13) open now.
pub const DESKS_OPEN: &str = "hotline_desks_open";
pub const ANSWER_DELAY_SECONDS: &str = "hotline_answer_delay_seconds";
pub const ANSWERED_WITHIN_RING_BUDGET_TOTAL: &str = "hotline_answered_within_ring_budget_total";
pub const RECORDINGS_WRITTEN_TOTAL: &str = "hotline_recordings_written_total";
pub const RECORDING_FAILURES_TOTAL: &str = "hotline_recording_failures_total";
pub const RECORDINGS_SYNCED_TOTAL: &str = "hotline_recordings_synced_total";
pub const RECORDING_SYNC_FAILURES_TOTAL: &str = "hotline_recording_sync_failures_total";
pub const CONNECTION_RATE_24H: &str = "hotline_connection_rate_24h";
pub const CALLS_OFFERED_24H: &str = "hotline_calls_offered_24h";
pub const CALLS_ANSWERED_24H: &str = "hotline_calls_answered_24h";
/// Labelled with [`TRANSPORT_LABEL`]: `udp` or `tcp`.
pub const SIP_MESSAGES_MALFORMED_TOTAL: &str = "hotline_sip_messages_malformed_total";
pub const RTP_PACKETS_RECEIVED_TOTAL: &str = "hotline_rtp_packets_received_total";
pub const RTP_PACKETS_SENT_TOTAL: &str = "hotline_rtp_packets_sent_total";
pub const RECORDING_FRAMES_DROPPED_TOTAL: &str = "hotline_recording_frames_dropped_total";
/// Labelled with [`TRANSPORT_LABEL`].
pub const SIP_INBOUND_DROPPED_TOTAL: &str = "hotline_sip_inbound_dropped_total";
pub const STORE_ERRORS_TOTAL: &str = "hotline_store_errors_total";
/// Labelled with [`QUEUE_LABEL`].
pub const QUEUE_DEPTH: &str = "hotline_queue_depth";
/// Labelled with [`QUEUE_LABEL`].
pub const QUEUE_OLDEST_WAIT_SECONDS: &str = "hotline_queue_oldest_wait_seconds";
/// Labelled with [`QUEUE_LABEL`]: the queue's `max_wait_seconds` from the agents file,
/// so an alert can compare [`QUEUE_OLDEST_WAIT_SECONDS`] with it.
pub const QUEUE_MAX_WAIT_SECONDS: &str = "hotline_queue_max_wait_seconds";
/// Labelled with [`QUEUE_LABEL`] and [`OUTCOME_LABEL`] (a [`QueueWaitEnd`]).
pub const QUEUE_WAIT_SECONDS: &str = "hotline_queue_wait_seconds";
/// Labelled with [`QUEUE_LABEL`].
pub const CALLS_QUEUED_TOTAL: &str = "hotline_calls_queued_total";
/// Labelled with [`QUEUE_LABEL`].
pub const CALLS_CONNECTED_TOTAL: &str = "hotline_calls_connected_total";
/// Labelled with [`STATE_LABEL`]: an [`AgentStateLabel`] name.
pub const AGENTS: &str = "hotline_agents";
/// Labelled with [`QUEUE_LABEL`] and [`RESULT_LABEL`]: an [`OfferResult`] name.
pub const AGENT_OFFERS_TOTAL: &str = "hotline_agent_offers_total";
/// Labelled with [`QUEUE_LABEL`].
pub const AGENT_NO_ANSWER_REDIRECTS_TOTAL: &str = "hotline_agent_no_answer_redirects_total";
/// Labelled with [`QUEUE_LABEL`].
pub const QUEUE_ANNOUNCEMENTS_TOTAL: &str = "hotline_queue_announcements_total";
/// New INVITEs shed at the edge with a stateless 503 (issue 12), labelled with
/// [`REASON_LABEL`]: `backlog`, `event_loop_lag` or `queue_full`.
pub const OVERLOAD_SHED_TOTAL: &str = "hotline_overload_shed_total";
/// How late the engine's event loop fires its timers, smoothed.
pub const EVENT_LOOP_LAG_SECONDS: &str = "hotline_event_loop_lag_seconds";
/// R24: survey ratings, labelled with [`AGENT_ID_LABEL`] (the agent number, `none` when
/// no agent took the call) and [`SCORE_LABEL`] (1–5).
pub const SURVEY_RATINGS_TOTAL: &str = "hotline_survey_ratings_total";
/// Labelled with [`REASON_LABEL`]: `address` or `credentials`.
pub const TRUNK_REFUSALS_TOTAL: &str = "hotline_trunk_refusals_total";
pub const STORE_BACKLOG: &str = "hotline_store_backlog";
pub const STORE_WRITES_DROPPED_TOTAL: &str = "hotline_store_writes_dropped_total";
/// The process's own health, under the names every Prometheus client library uses, so
/// stock dashboards and `process_*` queries work (published by `crate::service`).
pub const PROCESS_CPU_SECONDS_TOTAL: &str = "process_cpu_seconds_total";
pub const PROCESS_RESIDENT_MEMORY_BYTES: &str = "process_resident_memory_bytes";
pub const PROCESS_OPEN_FDS: &str = "process_open_fds";
pub const PROCESS_START_TIME_SECONDS: &str = "process_start_time_seconds";

pub const REASON_LABEL: &str = "reason";
/// An agent number (工号), never a name (R12).
pub const AGENT_ID_LABEL: &str = "agent";
pub const SCORE_LABEL: &str = "score";
pub const TRANSPORT_LABEL: &str = "transport";
/// The ACD queue's name from the config.
pub const QUEUE_LABEL: &str = "queue";
pub const STATE_LABEL: &str = "state";
pub const RESULT_LABEL: &str = "result";
pub const OUTCOME_LABEL: &str = "outcome";

/// Upper bounds of the answer-delay histogram, in seconds. Dense below the 10 s ring
/// budget (R6: answer on the 2nd–3rd ring, rings start 5 s apart), with two buckets
/// past it so budget overruns show how far over they went.
pub const ANSWER_DELAY_BUCKETS_SECONDS: &[f64] =
    &[0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 10.0, 15.0, 30.0];

/// Upper bounds of the queue-wait histogram, in seconds: a hotline answers most calls
/// within seconds (ring budget, R6) and tells a long wait in minutes (up to 5).
pub const QUEUE_WAIT_BUCKETS_SECONDS: &[f64] =
    &[1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0];

/// Gives a fieldless enum the snake_case text it is exported under as a label value.
macro_rules! label_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name { $($(#[$vmeta])* $variant,)+ }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The snake_case label value.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }
        }
    };
}

label_enum! {
    /// An agent state as exported by [`AGENTS`]. The ACD maps its own richer state
    /// (with entry times and pause reasons) onto these six.
    pub enum AgentStateLabel {
        LoggedOut => "logged_out",
        Available => "available",
        /// Reserved for a call and being rung.
        Ringing => "ringing",
        OnCall => "on_call",
        WrapUp => "wrap_up",
        /// Not ready, for any reason (`no_answer`, `break`, ...); the reason is not a
        /// label, so a free-text reason can never blow up the series count.
        Paused => "paused",
    }
}

label_enum! {
    /// How one offer of a call to one agent's phone ended ([`AGENT_OFFERS_TOTAL`]).
    pub enum OfferResult {
        /// The agent picked up.
        Answered => "answered",
        /// The agent ring timeout passed (R6): the call is redirected.
        NoAnswer => "no_answer",
        /// The phone declined (486 Busy Here, 603 Decline).
        Refused => "refused",
        /// The phone could not be reached (timeout, transport error, other failure).
        Unreachable => "unreachable",
        /// The caller hung up while the agent's phone rang.
        CallerGone => "caller_gone",
    }
}

label_enum! {
    /// How a caller's wait in one queue ended ([`QUEUE_WAIT_SECONDS`]).
    pub enum QueueWaitEnd {
        /// An agent answered.
        Connected => "connected",
        /// The caller hung up (in the queue or while an agent rang).
        Abandoned => "abandoned",
        /// The call moved on to its overflow target (maximum wait reached).
        Overflowed => "overflowed",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric the engine exports: name, kind, unit, help text. One table, so a
/// metric cannot be exported without a description.
const METRICS: &[(&str, Kind, Option<Unit>, &str)] = &[
    (
        CALLS_OFFERED_TOTAL,
        Kind::Counter,
        Some(Unit::Count),
        "Inbound calls offered: INVITEs that started a call.",
    ),
    (
        CALLS_ANSWERED_TOTAL,
        Kind::Counter,
        Some(Unit::Count),
        "Inbound calls answered with 200 OK.",
    ),
    (
        CALLS_ABANDONED_TOTAL,
        Kind::Counter,
        Some(Unit::Count),
        "Offered calls that ended unanswered, by reason.",
    ),
    (
        CALLS_REJECTED_TOTAL,
        Kind::Counter,
        Some(Unit::Count),
        "Calls refused with a final error response (503 overload, 488, 400, ...), by reason.",
    ),
    (
        CALLS_ACTIVE,
        Kind::Gauge,
        Some(Unit::Count),
        "Calls in progress now, ringing or connected.",
    ),
    (
        ANSWER_DELAY_SECONDS,
        Kind::Histogram,
        Some(Unit::Seconds),
        "Time from INVITE to 200 OK on the trunk leg (R6 ring budget).",
    ),
    (
        ANSWERED_WITHIN_RING_BUDGET_TOTAL,
        Kind::Counter,
        Some(Unit::Count),
        "Inbound calls answered within the configured ring budget (R6).",
    ),
    (
        RECORDINGS_WRITTEN_TOTAL,
        Kind::Counter,
        Some(Unit::Count),
        "Call recordings finalized to WAV (R22).",
    ),
    (
        RECORDING_FAILURES_TOTAL,
        Kind::Counter,
        Some(Unit::Count),
        "Call recordings that could not be started or written (R22).",
    ),
    (
        RECORDINGS_SYNCED_TOTAL,
        Kind::Counter,
        Some(Unit::Count),
        "Finished call recordings made durable on disk, in batches off the call path (R22).",
    ),
    (
        RECORDING_SYNC_FAILURES_TOTAL,
        Kind::Counter,
        Some(Unit::Count),
        "Failed attempts to sync finished call recordings to disk (R22).",
    ),
    (
        CONNECTION_RATE_24H,
        Kind::Gauge,
        None,
        "Connection rate over the rolling 24 h: calls answered by an agent over calls offered to a queue, 0..1; NaN when none were offered (R5).",
    ),
    (
        CALLS_OFFERED_24H,
        Kind::Gauge,
        Some(Unit::Count),
        "Inbound calls first offered to an ACD queue in the rolling 24 h window (R5).",
    ),
    (
        CALLS_ANSWERED_24H,
        Kind::Gauge,
        Some(Unit::Count),
        "Of the calls offered to a queue in the rolling 24 h window, those an agent answered (R5).",
    ),
    (
        SIP_MESSAGES_MALFORMED_TOTAL,
        Kind::Counter,
        Some(Unit::Count),
        "SIP messages dropped because they could not be parsed, by transport.",
    ),
    (
        RTP_PACKETS_RECEIVED_TOTAL,
        Kind::Counter,
        Some(Unit::Count),
        "RTP packets received on all call legs.",
    ),
    (
        RTP_PACKETS_SENT_TOTAL,
        Kind::Counter,
        Some(Unit::Count),
        "RTP packets sent on all call legs.",
    ),
    (
        RECORDING_FRAMES_DROPPED_TOTAL,
        Kind::Counter,
        Some(Unit::Count),
        "Audio frames dropped because a recording writer fell behind (R22).",
    ),
    (
        SIP_INBOUND_DROPPED_TOTAL,
        Kind::Counter,
        Some(Unit::Count),
        "Inbound SIP messages dropped because the engine's inbound queue was full, by transport.",
    ),
    (
        STORE_ERRORS_TOTAL,
        Kind::Counter,
        Some(Unit::Count),
        "Work order store writes that failed (R10).",
    ),
    (
        QUEUE_DEPTH,
        Kind::Gauge,
        Some(Unit::Count),
        "Calls waiting in the ACD queue now, not yet connected to an agent, by queue.",
    ),
    (
        QUEUE_OLDEST_WAIT_SECONDS,
        Kind::Gauge,
        Some(Unit::Seconds),
        "How long the longest-waiting call in the queue has waited so far, by queue; 0 when the queue is empty.",
    ),
    (
        QUEUE_MAX_WAIT_SECONDS,
        Kind::Gauge,
        Some(Unit::Seconds),
        "The longest a call may wait in the queue before it overflows (max_wait_seconds in the agents file), by queue.",
    ),
    (
        QUEUE_WAIT_SECONDS,
        Kind::Histogram,
        Some(Unit::Seconds),
        "Time calls waited in a queue until an agent answered, the caller hung up or the call overflowed, by queue and outcome.",
    ),
    (
        CALLS_QUEUED_TOTAL,
        Kind::Counter,
        Some(Unit::Count),
        "Calls offered to an ACD queue, by queue; an overflow counts again in the queue it moves to.",
    ),
    (
        CALLS_CONNECTED_TOTAL,
        Kind::Counter,
        Some(Unit::Count),
        "Queued calls answered by an agent, by the queue they were answered from (R5).",
    ),
    (
        AGENTS,
        Kind::Gauge,
        Some(Unit::Count),
        "Agents in each state now: logged_out, available, ringing, on_call, wrap_up, paused.",
    ),
    (
        AGENT_OFFERS_TOTAL,
        Kind::Counter,
        Some(Unit::Count),
        "Offers of a call to an agent's phone, by queue and how the offer ended.",
    ),
    (
        AGENT_NO_ANSWER_REDIRECTS_TOTAL,
        Kind::Counter,
        Some(Unit::Count),
        "Calls taken from an agent whose phone rang past the agent ring timeout and offered on (R6), by queue.",
    ),
    (
        QUEUE_ANNOUNCEMENTS_TOTAL,
        Kind::Counter,
        Some(Unit::Count),
        "Queue position announcements played to waiting callers, by queue.",
    ),
    (
        OVERLOAD_SHED_TOTAL,
        Kind::Counter,
        Some(Unit::Count),
        "New INVITEs answered 503 by the transport because the engine was falling behind, by reason (backlog, event_loop_lag, queue_full).",
    ),
    (
        EVENT_LOOP_LAG_SECONDS,
        Kind::Gauge,
        Some(Unit::Seconds),
        "How late the engine's event loop fires a 10 ms timer, smoothed; overload control sheds new calls above limits.overload_max_lag_ms.",
    ),
    (
        SURVEY_RATINGS_TOTAL,
        Kind::Counter,
        Some(Unit::Count),
        "Satisfaction ratings callers gave by keypad after the agent left (R24), by agent and score.",
    ),
    (
        TRUNK_REFUSALS_TOTAL,
        Kind::Counter,
        Some(Unit::Count),
        "INVITEs refused with 403 because no configured trunk allows them (R29), by reason: address or credentials.",
    ),
    (
        STORE_BACKLOG,
        Kind::Gauge,
        Some(Unit::Count),
        "Work-order writes queued and not yet applied to the store.",
    ),
    (
        STORE_WRITES_DROPPED_TOTAL,
        Kind::Counter,
        Some(Unit::Count),
        "Work-order writes dropped because the store queue was full (the store was down long enough to fill it).",
    ),
    (
        crate::workorder::STORE_UP_METRIC,
        Kind::Gauge,
        None,
        "1 while the work order store works, 0 while it is unreachable, locked, or its database file vanished.",
    ),
    (
        PROCESS_CPU_SECONDS_TOTAL,
        Kind::Counter,
        Some(Unit::Seconds),
        "CPU time the engine used, user plus system, in whole seconds.",
    ),
    (
        PROCESS_RESIDENT_MEMORY_BYTES,
        Kind::Gauge,
        Some(Unit::Bytes),
        "The engine's resident memory.",
    ),
    (
        PROCESS_OPEN_FDS,
        Kind::Gauge,
        Some(Unit::Count),
        "File descriptors the engine holds open (sockets, recordings, the store).",
    ),
    (
        DESKS_OPEN,
        Kind::Gauge,
        Some(Unit::Count),
        "Agents' browser desks open now (each registered as the agent's phone).",
    ),
    (
        PROCESS_START_TIME_SECONDS,
        Kind::Gauge,
        Some(Unit::Seconds),
        "When the engine started, in seconds since the Unix epoch.",
    ),
];

/// Describes every metric to the current recorder, so `/metrics` documents itself.
pub fn describe() {
    for &(name, kind, unit, help) in METRICS {
        match (kind, unit) {
            (Kind::Counter, Some(unit)) => describe_counter!(name, unit, help),
            (Kind::Counter, None) => describe_counter!(name, help),
            (Kind::Gauge, Some(unit)) => describe_gauge!(name, unit, help),
            (Kind::Gauge, None) => describe_gauge!(name, help),
            (Kind::Histogram, Some(unit)) => describe_histogram!(name, unit, help),
            (Kind::Histogram, None) => describe_histogram!(name, help),
        }
    }
}

/// Everything that can go wrong setting up metrics.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A global recorder is already installed in this process (a second call to
    /// [`install_recorder`], or another library got there first). The facade allows
    /// one per process.
    #[error("a global metrics recorder is already installed")]
    AlreadyInstalled,
    /// The Prometheus exporter refused its configuration (for example an empty
    /// bucket list).
    #[error("invalid Prometheus exporter configuration: {0}")]
    Build(#[from] BuildError),
}

/// The Prometheus builder with the engine's histogram buckets and no HTTP listener
/// (the engine's own HTTP server serves `/metrics`).
pub fn prometheus_builder() -> Result<PrometheusBuilder, MetricsError> {
    Ok(PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(ANSWER_DELAY_SECONDS.to_owned()),
            ANSWER_DELAY_BUCKETS_SECONDS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(QUEUE_WAIT_SECONDS.to_owned()),
            QUEUE_WAIT_BUCKETS_SECONDS,
        )?)
}

/// Builds the Prometheus recorder, installs it as the process-wide recorder and
/// describes every metric. Returns the handle whose `render()` is the `/metrics` body.
///
/// Once per process: a second call returns [`MetricsError::AlreadyInstalled`].
pub fn install_recorder() -> Result<PrometheusHandle, MetricsError> {
    let recorder = prometheus_builder()?.build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|_| MetricsError::AlreadyInstalled)?;
    describe();
    start_at_zero();
    Ok(handle)
}

/// Unlabelled series exist from the start, at zero: the first scrape after a (re)start
/// already has them, so `increase()` and alerts have a first sample to count from.
/// Labelled series appear with their first event.
fn start_at_zero() {
    for name in [
        CALLS_OFFERED_TOTAL,
        CALLS_ANSWERED_TOTAL,
        ANSWERED_WITHIN_RING_BUDGET_TOTAL,
        RECORDINGS_WRITTEN_TOTAL,
        RECORDING_FAILURES_TOTAL,
        RECORDINGS_SYNCED_TOTAL,
        RECORDING_SYNC_FAILURES_TOTAL,
        RTP_PACKETS_RECEIVED_TOTAL,
        RTP_PACKETS_SENT_TOTAL,
        RECORDING_FRAMES_DROPPED_TOTAL,
        STORE_ERRORS_TOTAL,
        STORE_WRITES_DROPPED_TOTAL,
    ] {
        counter!(name).increment(0);
    }
    gauge!(CALLS_ACTIVE).set(0.0);
    gauge!(DESKS_OPEN).set(0.0);
}

/// Counts an unanswered call under its reason's snake_case name.
pub fn count_abandoned(reason: AbandonReason) {
    counter!(CALLS_ABANDONED_TOTAL, REASON_LABEL => reason.as_str()).increment(1);
}

/// Counts a refused call under its reason's snake_case name.
pub fn count_rejected(reason: RejectReason) {
    counter!(CALLS_REJECTED_TOTAL, REASON_LABEL => reason.as_str()).increment(1);
}

/// Counts a position announcement played to a caller waiting in `queue`.
pub fn count_announcement(queue: &str) {
    counter!(QUEUE_ANNOUNCEMENTS_TOTAL, QUEUE_LABEL => queue.to_owned()).increment(1);
}

/// Counts a survey rating (R24) for the agent who took the call.
pub fn count_survey_rating(agent: Option<&str>, score: u8) {
    counter!(
        SURVEY_RATINGS_TOTAL,
        AGENT_ID_LABEL => agent.unwrap_or("none").to_owned(),
        SCORE_LABEL => score.to_string()
    )
    .increment(1);
}

/// Counts a call offered to `queue` (first entry or an overflow into it).
pub fn count_queued(queue: &str) {
    counter!(CALLS_QUEUED_TOTAL, QUEUE_LABEL => queue.to_owned()).increment(1);
}

/// Counts a call an agent answered from `queue` after waiting `wait` there, and
/// records that wait in the histogram as [`QueueWaitEnd::Connected`].
pub fn count_connected(queue: &str, wait: Duration) {
    counter!(CALLS_CONNECTED_TOTAL, QUEUE_LABEL => queue.to_owned()).increment(1);
    record_queue_wait(queue, wait, QueueWaitEnd::Connected);
}

/// Records how long a call waited in `queue` and how the wait ended. For
/// [`QueueWaitEnd::Connected`] prefer [`count_connected`], which counts the call too;
/// an abandon is also counted by [`count_abandoned`] with its reason.
pub fn record_queue_wait(queue: &str, wait: Duration, end: QueueWaitEnd) {
    histogram!(
        QUEUE_WAIT_SECONDS,
        QUEUE_LABEL => queue.to_owned(),
        OUTCOME_LABEL => end.as_str()
    )
    .record(wait.as_secs_f64());
}

/// Sets `queue`'s depth and the wait of its longest-waiting call (`None`, an empty
/// queue, reads 0).
pub fn set_queue_gauges(queue: &str, depth: usize, oldest_wait: Option<Duration>) {
    gauge!(QUEUE_DEPTH, QUEUE_LABEL => queue.to_owned()).set(depth as f64);
    gauge!(QUEUE_OLDEST_WAIT_SECONDS, QUEUE_LABEL => queue.to_owned())
        .set(oldest_wait.map_or(0.0, |wait| wait.as_secs_f64()));
}

/// Sets `queue`'s maximum wait ([`QUEUE_MAX_WAIT_SECONDS`]); publish it with the
/// queue gauges, so a queue added or changed by a reload is compared with its new limit.
pub fn set_queue_max_wait(queue: &str, max_wait: Duration) {
    gauge!(QUEUE_MAX_WAIT_SECONDS, QUEUE_LABEL => queue.to_owned()).set(max_wait.as_secs_f64());
}

/// The process's own health ([`PROCESS_CPU_SECONDS_TOTAL`] and the rest), as read from
/// the operating system by the caller.
pub fn set_process_metrics(cpu_seconds: u64, resident_bytes: u64, open_fds: u64) {
    counter!(PROCESS_CPU_SECONDS_TOTAL).absolute(cpu_seconds);
    gauge!(PROCESS_RESIDENT_MEMORY_BYTES).set(resident_bytes as f64);
    gauge!(PROCESS_OPEN_FDS).set(open_fds as f64);
}

/// When the process started ([`PROCESS_START_TIME_SECONDS`]).
pub fn set_process_start_time(started: DateTime<Utc>) {
    gauge!(PROCESS_START_TIME_SECONDS).set(started.timestamp_millis() as f64 / 1000.0);
}

/// Sets the agent gauge for every state: the counts given (summed when a state is
/// given twice) and 0 for the states not given, so a state that empties never keeps
/// a stale count.
pub fn set_agent_counts(counts: &[(AgentStateLabel, usize)]) {
    for &state in AgentStateLabel::ALL {
        let count: usize = counts
            .iter()
            .filter(|(given, _)| *given == state)
            .map(|&(_, count)| count)
            .sum();
        gauge!(AGENTS, STATE_LABEL => state.as_str()).set(count as f64);
    }
}

/// Counts how one offer of a call from `queue` to an agent's phone ended. A
/// [`OfferResult::NoAnswer`] is by definition a redirect on no answer (R6: the call
/// goes on to the next agent), so it is counted in
/// [`AGENT_NO_ANSWER_REDIRECTS_TOTAL`] too.
pub fn count_offer_result(queue: &str, result: OfferResult) {
    counter!(
        AGENT_OFFERS_TOTAL,
        QUEUE_LABEL => queue.to_owned(),
        RESULT_LABEL => result.as_str()
    )
    .increment(1);
    if result == OfferResult::NoAnswer {
        counter!(AGENT_NO_ANSWER_REDIRECTS_TOTAL, QUEUE_LABEL => queue.to_owned()).increment(1);
    }
}

/// Sets the three rolling 24 h gauges from `window` as of `now` (R5, R30).
///
/// With nothing offered the rate is NaN, not 1 or 0: it is undefined, and an alert
/// such as `hotline_connection_rate_24h < 0.95` stays quiet on NaN, while the
/// offered gauge at 0 says why.
pub fn publish_connection_rate(window: &ConnectionRateWindow, now: DateTime<Utc>) {
    let (offered, answered) = window.counts(now);
    gauge!(CALLS_OFFERED_24H).set(offered as f64);
    gauge!(CALLS_ANSWERED_24H).set(answered as f64);
    gauge!(CONNECTION_RATE_24H).set(rate_of(offered, answered).unwrap_or(f64::NAN));
}

/// Minutes in the window: one bucket each.
const WINDOW_MINUTES: i64 = 24 * 60;

#[derive(Debug, Clone, Copy)]
struct MinuteCount {
    /// Minutes since the Unix epoch this slot counts; `i64::MIN` when never used.
    minute: i64,
    offered: u64,
    answered: u64,
}

const UNUSED: MinuteCount = MinuteCount {
    minute: i64::MIN,
    offered: 0,
    answered: 0,
};

/// Offered and answered inbound calls over the rolling 24 hours, in one-minute
/// buckets (a ring of 1440), for the connection rate (R5). Pure: every time is passed
/// in, the clock is never read.
///
/// "Offered" and "answered" are the connection rate's, as the store counts them
/// ([`CallCountBucket`]): offered = first offered to an ACD queue, answered =
/// connected to an agent. So the engine calls [`Self::record_offered`] with the
/// call's first queue time when the call enters a queue, and [`Self::record_answered`]
/// with that same queue time when an agent answers.
///
/// # The window
/// At `now`, the window is `now`'s minute and the 1439 minutes before it: a call is
/// counted from its minute until the start of the same minute the next day, so for
/// between 23 h 59 min and 24 h. Querying with a `now` more than 24 h after the last
/// call finds nothing, however long the engine sat idle.
///
/// # Answers count in the minute of the offer
/// The rate is "of the calls offered in the last 24 h, how many were answered". So an
/// answer is recorded with its call's *offer* (first queue) time and lands in the
/// offer's bucket:
/// offer and answer enter and leave the window together and answered never exceeds
/// offered. A call offered 23 h 59 min 59 s ago and answered since counts as one
/// offered, one answered, and both drop out together a second (at most a minute)
/// later. If a call's offer has already left the window when its answer comes, the
/// answer is dropped too. This is also how the store counts
/// ([`crate::workorder::WorkOrderStore::call_counts_since`]), so seeding after a
/// restart gives the same numbers as having recorded live.
///
/// # Out of order
/// Times may arrive in any order within the window. A bucket is reused only for a
/// minute exactly 24 h (or a multiple) later, so a time older than the newest one
/// seen by 24 h or more is dropped: it could never be counted again anyway, as long
/// as `now` does not run backwards.
#[derive(Debug, Clone)]
pub struct ConnectionRateWindow {
    slots: Vec<MinuteCount>,
}

impl Default for ConnectionRateWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ConnectionRateWindow {
    pub fn new() -> Self {
        Self {
            slots: vec![UNUSED; WINDOW_MINUTES as usize],
        }
    }

    /// Adds counts read back from the store after a restart (R4). Buckets older than
    /// 24 h before the newest one seen are ignored; seeding adds to what is there.
    pub fn seed(&mut self, buckets: &[CallCountBucket]) {
        for bucket in buckets {
            if let Some(slot) = self.slot_for(unix_minute(bucket.minute)) {
                slot.offered = slot.offered.saturating_add(bucket.offered);
                slot.answered = slot.answered.saturating_add(bucket.answered);
            }
        }
    }

    /// Counts an inbound call offered to a queue at `offered_at` (its first queue time;
    /// an overflow to another queue is not a new offer).
    pub fn record_offered(&mut self, offered_at: DateTime<Utc>) {
        if let Some(slot) = self.slot_for(unix_minute(offered_at)) {
            slot.offered = slot.offered.saturating_add(1);
        }
    }

    /// Counts an agent's answer of a call offered at `offered_at` — the *offer* (first
    /// queue) time, not the answer time (see the type's docs). Dropped when that offer is not in the window.
    pub fn record_answered(&mut self, offered_at: DateTime<Utc>) {
        let minute = unix_minute(offered_at);
        let slot = &mut self.slots[slot_index(minute)];
        if slot.minute == minute && slot.answered < slot.offered {
            slot.answered += 1;
        }
    }

    /// Calls offered in the window ending at `now`.
    pub fn offered(&self, now: DateTime<Utc>) -> u64 {
        self.counts(now).0
    }

    /// Calls offered in the window ending at `now` that were answered.
    pub fn answered(&self, now: DateTime<Utc>) -> u64 {
        self.counts(now).1
    }

    /// Answered over offered, 0..=1; `None` when nothing was offered in the window.
    pub fn rate(&self, now: DateTime<Utc>) -> Option<f64> {
        let (offered, answered) = self.counts(now);
        rate_of(offered, answered)
    }

    /// `(offered, answered)` in the window ending at `now`, in one pass.
    pub fn counts(&self, now: DateTime<Utc>) -> (u64, u64) {
        let newest = unix_minute(now);
        let oldest = newest.saturating_sub(WINDOW_MINUTES - 1);
        self.slots
            .iter()
            .filter(|slot| (oldest..=newest).contains(&slot.minute))
            .fold((0u64, 0u64), |(offered, answered), slot| {
                (
                    offered.saturating_add(slot.offered),
                    answered.saturating_add(slot.answered),
                )
            })
    }

    /// `(offered, answered)` of the calls offered from `since` (rounded down to its
    /// minute) up to `now`, within the window: "today" for the wallboard, with `since`
    /// the local midnight. A `since` more than 24 h back counts the whole window.
    pub fn counts_since(&self, now: DateTime<Utc>, since: DateTime<Utc>) -> (u64, u64) {
        let newest = unix_minute(now);
        let oldest = newest
            .saturating_sub(WINDOW_MINUTES - 1)
            .max(unix_minute(since));
        self.slots
            .iter()
            .filter(|slot| (oldest..=newest).contains(&slot.minute))
            .fold((0u64, 0u64), |(offered, answered), slot| {
                (
                    offered.saturating_add(slot.offered),
                    answered.saturating_add(slot.answered),
                )
            })
    }

    /// The bucket for `minute`, reset if it still holds a minute 24 h or more older;
    /// `None` if it already holds a minute 24 h or more newer.
    fn slot_for(&mut self, minute: i64) -> Option<&mut MinuteCount> {
        let slot = &mut self.slots[slot_index(minute)];
        if slot.minute < minute {
            *slot = MinuteCount {
                minute,
                offered: 0,
                answered: 0,
            };
        }
        (slot.minute == minute).then_some(slot)
    }
}

fn unix_minute(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(60)
}

fn slot_index(minute: i64) -> usize {
    // rem_euclid of a positive modulus is in 0..WINDOW_MINUTES, so the cast is exact.
    minute.rem_euclid(WINDOW_MINUTES) as usize
}

fn rate_of(offered: u64, answered: u64) -> Option<f64> {
    (offered > 0).then(|| (answered as f64 / offered as f64).min(1.0))
}

/// A browser desk opened.
pub fn desk_opened() {
    gauge!(DESKS_OPEN).increment(1.0);
}

/// A browser desk closed.
pub fn desk_closed() {
    gauge!(DESKS_OPEN).decrement(1.0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 30)
            .single()
            .expect("valid time")
    }

    fn offer_and_maybe_answer(window: &mut ConnectionRateWindow, at: DateTime<Utc>, answer: bool) {
        window.record_offered(at);
        if answer {
            window.record_answered(at);
        }
    }

    #[test]
    fn counts_since_midnight_take_only_the_calls_of_today() {
        let mut window = ConnectionRateWindow::new();
        let midnight = Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).unwrap();
        offer_and_maybe_answer(&mut window, midnight - Duration::minutes(1), true);
        offer_and_maybe_answer(&mut window, midnight, true);
        offer_and_maybe_answer(&mut window, t0(), false);
        assert_eq!(window.counts_since(t0(), midnight), (2, 1));
        assert_eq!(window.counts(t0()), (3, 2));
        // More than a day back counts the whole window, no more.
        let long_ago = midnight - Duration::days(3);
        assert_eq!(window.counts_since(t0(), long_ago), window.counts(t0()));
    }

    #[test]
    fn empty_window_has_no_rate_r5() {
        let window = ConnectionRateWindow::new();
        assert_eq!(window.rate(t0()), None);
        assert_eq!(window.counts(t0()), (0, 0));
    }

    #[test]
    fn calls_expire_after_24_hours_r5() {
        let mut window = ConnectionRateWindow::new();
        offer_and_maybe_answer(&mut window, t0(), true);
        assert_eq!(window.counts(t0() + Duration::hours(12)), (1, 1));
        assert_eq!(window.counts(t0() + Duration::hours(25)), (0, 0));
        assert_eq!(window.rate(t0() + Duration::hours(25)), None);
    }

    #[test]
    fn exact_boundary_is_the_same_minute_next_day_r5() {
        // Offered 12:00:30: counted through 11:59:59 next day, gone at 12:00:00.
        let mut window = ConnectionRateWindow::new();
        offer_and_maybe_answer(&mut window, t0(), false);
        let next_day_same_minute = t0() + Duration::hours(24) - Duration::seconds(30);
        assert_eq!(
            window.offered(next_day_same_minute - Duration::seconds(1)),
            1
        );
        assert_eq!(window.offered(next_day_same_minute), 0);
    }

    #[test]
    fn rate_over_many_minutes_r5() {
        let mut window = ConnectionRateWindow::new();
        // 20 calls a minute for 10 hours; one in 20 unanswered: 95 %.
        for minute in 0..600 {
            for call in 0..20 {
                let at = t0() + Duration::minutes(minute) + Duration::seconds(call * 2);
                offer_and_maybe_answer(&mut window, at, call != 0);
            }
        }
        let now = t0() + Duration::minutes(600);
        assert_eq!(window.counts(now), (12_000, 11_400));
        let rate = window.rate(now).expect("calls offered");
        assert!((rate - 0.95).abs() < 1e-12, "{rate}");
    }

    #[test]
    fn old_minutes_roll_out_while_new_ones_come_in_r5() {
        let mut window = ConnectionRateWindow::new();
        // One unanswered call an hour for 30 hours, all others answered.
        for hour in 0..30 {
            offer_and_maybe_answer(&mut window, t0() + Duration::hours(hour), hour >= 3);
        }
        let now = t0() + Duration::hours(29) + Duration::minutes(1);
        // Hours 6..=29 are in the window (24 calls), all answered.
        assert_eq!(window.counts(now), (24, 24));
        assert_eq!(window.rate(now), Some(1.0));
    }

    #[test]
    fn seeding_equals_recording_r4() {
        let mut recorded = ConnectionRateWindow::new();
        let mut buckets: Vec<CallCountBucket> = Vec::new();
        for i in 0..500_i64 {
            let at = t0() + Duration::seconds(i * 97);
            let answer = i % 7 != 0;
            offer_and_maybe_answer(&mut recorded, at, answer);
            let minute = DateTime::from_timestamp(unix_minute(at) * 60, 0).expect("in range");
            match buckets.last_mut() {
                Some(bucket) if bucket.minute == minute => {
                    bucket.offered += 1;
                    bucket.answered += u64::from(answer);
                }
                _ => buckets.push(CallCountBucket {
                    minute,
                    offered: 1,
                    answered: u64::from(answer),
                }),
            }
        }
        let mut seeded = ConnectionRateWindow::new();
        seeded.seed(&buckets);
        for hours in [0, 6, 13, 20, 30, 40] {
            let now = t0() + Duration::hours(hours);
            assert_eq!(seeded.counts(now), recorded.counts(now), "at +{hours} h");
        }
        // Live recording carries on from the seed.
        let later = t0() + Duration::hours(14);
        seeded.record_offered(later);
        recorded.record_offered(later);
        assert_eq!(seeded.counts(later), recorded.counts(later));
    }

    #[test]
    fn out_of_order_times_within_the_window_all_count_r5() {
        let mut window = ConnectionRateWindow::new();
        let times = [10, 3, 23, 0, 17, 5].map(|h| t0() + Duration::hours(h));
        for at in times {
            offer_and_maybe_answer(&mut window, at, true);
        }
        // A late offer from 23 h before the newest, then its answer.
        window.record_offered(t0());
        window.record_answered(t0());
        let now = t0() + Duration::hours(23) + Duration::minutes(30);
        assert_eq!(window.counts(now), (7, 7));
    }

    #[test]
    fn times_24_hours_older_than_the_newest_are_dropped() {
        let mut window = ConnectionRateWindow::new();
        let newest = t0() + Duration::hours(30);
        window.record_offered(newest);
        // Same ring slot as `newest`, a day earlier: must not wipe it.
        window.record_offered(newest - Duration::hours(24));
        window.record_answered(newest - Duration::hours(24));
        assert_eq!(window.counts(newest), (1, 0));
    }

    #[test]
    fn a_long_idle_spell_clears_everything_r4() {
        let mut window = ConnectionRateWindow::new();
        for minute in 0..WINDOW_MINUTES {
            offer_and_maybe_answer(&mut window, t0() + Duration::minutes(minute), true);
        }
        assert_eq!(
            window.offered(t0() + Duration::minutes(WINDOW_MINUTES - 1)),
            1440
        );
        let much_later = t0() + Duration::days(365);
        assert_eq!(window.counts(much_later), (0, 0));
        offer_and_maybe_answer(&mut window, much_later, false);
        assert_eq!(window.counts(much_later), (1, 0));
        assert_eq!(window.rate(much_later), Some(0.0));
    }

    #[test]
    fn answer_of_a_call_offered_almost_24_hours_ago_counts_until_its_offer_expires_r5() {
        let mut window = ConnectionRateWindow::new();
        let offered = t0();
        window.record_offered(offered);
        // A second call in the same minute, never answered in time.
        window.record_offered(offered + Duration::seconds(10));
        // Answered 23:59:59 after the offer, but still within the offer's window.
        let almost_a_day = offered + Duration::hours(24) - Duration::seconds(31);
        window.record_offered(almost_a_day);
        window.record_answered(offered);
        assert_eq!(window.counts(almost_a_day), (3, 1));
        // A minute later both the offer and its answer have left together.
        assert_eq!(window.counts(almost_a_day + Duration::minutes(1)), (1, 0));
        // An answer arriving after its offer left the window is dropped with it.
        window.record_offered(offered + Duration::hours(25));
        window.record_answered(offered);
        assert_eq!(window.counts(offered + Duration::hours(25)), (2, 0));
    }

    #[test]
    fn answers_never_exceed_offers() {
        let mut window = ConnectionRateWindow::new();
        window.record_answered(t0());
        window.record_offered(t0());
        window.record_answered(t0());
        window.record_answered(t0());
        assert_eq!(window.counts(t0()), (1, 1));
    }

    proptest! {
        /// The ring agrees with a plain list of calls filtered by minute, whatever the
        /// order the calls arrive in, as long as `now` is not before the newest call.
        #[test]
        fn window_matches_a_brute_force_count(
            calls in proptest::collection::vec((0i64..3 * 86_400, any::<bool>()), 0..200),
            extra in 0i64..2 * 86_400,
        ) {
            let mut window = ConnectionRateWindow::new();
            for &(second, answer) in &calls {
                offer_and_maybe_answer(&mut window, t0() + Duration::seconds(second), answer);
            }
            let newest = calls.iter().map(|&(s, _)| s).max().unwrap_or(0);
            let now = t0() + Duration::seconds(newest + extra);
            let now_minute = unix_minute(now);
            let in_window: Vec<bool> = calls
                .iter()
                .filter(|&&(s, _)| {
                    now_minute - unix_minute(t0() + Duration::seconds(s)) < WINDOW_MINUTES
                })
                .map(|&(_, answer)| answer)
                .collect();
            let expected = (
                in_window.len() as u64,
                in_window.iter().filter(|&&a| a).count() as u64,
            );
            prop_assert_eq!(window.counts(now), expected);
        }
    }

    fn render_with_local_recorder(record: impl FnOnce()) -> String {
        let recorder = prometheus_builder()
            .expect("valid builder")
            .build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe();
            record();
        });
        handle.render()
    }

    #[test]
    fn every_metric_renders_with_its_help_line_r30() {
        let rendered = render_with_local_recorder(|| {
            for &(name, kind, _, _) in METRICS {
                match kind {
                    Kind::Counter => counter!(name).increment(1),
                    Kind::Gauge => gauge!(name).set(1.0),
                    Kind::Histogram => histogram!(name).record(1.0),
                }
            }
        });
        for &(name, kind, _, help) in METRICS {
            assert!(
                rendered.contains(&format!("# HELP {name} {help}")),
                "no HELP for {name} in\n{rendered}"
            );
            let type_name = match kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            assert!(
                rendered.contains(&format!("# TYPE {name} {type_name}")),
                "wrong TYPE for {name} in\n{rendered}"
            );
        }
    }

    #[test]
    fn names_follow_prometheus_conventions_r30() {
        for &(name, kind, unit, _) in METRICS {
            // process_* are the standard names of a process's own health.
            assert!(
                name.starts_with("hotline_") || name.starts_with("process_"),
                "{name}"
            );
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
            assert_eq!(kind == Kind::Counter, name.ends_with("_total"), "{name}");
            if unit == Some(Unit::Seconds) {
                assert!(
                    name.ends_with("_seconds") || name.ends_with("_seconds_total"),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn answer_delay_histogram_uses_ring_budget_buckets_r6() {
        let rendered = render_with_local_recorder(|| {
            histogram!(ANSWER_DELAY_SECONDS).record(2.4);
            histogram!(ANSWER_DELAY_SECONDS).record(12.0);
        });
        assert!(
            rendered.contains("hotline_answer_delay_seconds_bucket{le=\"3\"} 1"),
            "{rendered}"
        );
        assert!(
            rendered.contains("hotline_answer_delay_seconds_bucket{le=\"10\"} 1"),
            "{rendered}"
        );
        assert!(
            rendered.contains("hotline_answer_delay_seconds_bucket{le=\"15\"} 2"),
            "{rendered}"
        );
        assert!(
            rendered.contains("hotline_answer_delay_seconds_count 2"),
            "{rendered}"
        );
    }

    #[test]
    fn reasons_are_snake_case_labels_r5() {
        let rendered = render_with_local_recorder(|| {
            count_abandoned(AbandonReason::CallerCancelled);
            count_abandoned(AbandonReason::CallerCancelled);
            count_rejected(RejectReason::Overloaded);
        });
        assert!(
            rendered.contains("hotline_calls_abandoned_total{reason=\"caller_cancelled\"} 2"),
            "{rendered}"
        );
        assert!(
            rendered.contains("hotline_calls_rejected_total{reason=\"overloaded\"} 1"),
            "{rendered}"
        );
    }

    #[test]
    fn publishes_the_24_hour_gauges_r5_r30() {
        let mut window = ConnectionRateWindow::new();
        for i in 0..4 {
            offer_and_maybe_answer(&mut window, t0() + Duration::seconds(i), i != 0);
        }
        let rendered = render_with_local_recorder(|| publish_connection_rate(&window, t0()));
        assert!(
            rendered.contains("hotline_calls_offered_24h 4"),
            "{rendered}"
        );
        assert!(
            rendered.contains("hotline_calls_answered_24h 3"),
            "{rendered}"
        );
        assert!(
            rendered.contains("hotline_connection_rate_24h 0.75"),
            "{rendered}"
        );
    }

    #[test]
    fn rate_is_nan_when_nothing_was_offered() {
        let window = ConnectionRateWindow::new();
        let rendered = render_with_local_recorder(|| publish_connection_rate(&window, t0()));
        assert!(
            rendered.contains("hotline_connection_rate_24h NaN"),
            "{rendered}"
        );
        assert!(
            rendered.contains("hotline_calls_offered_24h 0"),
            "{rendered}"
        );
    }

    /// The value of the series `name{labels}` in a rendered scrape, if present.
    fn series_value(rendered: &str, name: &str, labels: &str) -> Option<f64> {
        let wanted = if labels.is_empty() {
            name.to_owned()
        } else {
            format!("{name}{{{labels}}}")
        };
        rendered
            .lines()
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                (series == wanted).then(|| value.parse().ok())?
            })
    }

    #[test]
    fn queue_gauges_carry_the_queue_label_r30() {
        let rendered = render_with_local_recorder(|| {
            set_queue_gauges("general", 3, Some(std::time::Duration::from_millis(42_500)));
            set_queue_gauges("complaints", 0, None);
        });
        for (name, labels, value) in [
            (QUEUE_DEPTH, "queue=\"general\"", 3.0),
            (QUEUE_OLDEST_WAIT_SECONDS, "queue=\"general\"", 42.5),
            (QUEUE_DEPTH, "queue=\"complaints\"", 0.0),
            (QUEUE_OLDEST_WAIT_SECONDS, "queue=\"complaints\"", 0.0),
        ] {
            assert_eq!(
                series_value(&rendered, name, labels),
                Some(value),
                "{name}{{{labels}}} in\n{rendered}"
            );
        }
        assert!(rendered.contains("# HELP hotline_queue_depth Calls waiting"));
        assert!(rendered.contains("# TYPE hotline_queue_oldest_wait_seconds gauge"));
    }

    #[test]
    fn queue_waits_use_hotline_buckets_by_queue_and_outcome_r30() {
        let rendered = render_with_local_recorder(|| {
            count_connected("general", std::time::Duration::from_millis(4_200));
            count_connected("general", std::time::Duration::from_secs(45));
            record_queue_wait(
                "general",
                std::time::Duration::from_secs(400),
                QueueWaitEnd::Abandoned,
            );
            record_queue_wait(
                "general",
                std::time::Duration::from_secs(120),
                QueueWaitEnd::Overflowed,
            );
        });
        let bucket = |outcome: &str, le: &str| {
            series_value(
                &rendered,
                "hotline_queue_wait_seconds_bucket",
                &format!("queue=\"general\",outcome=\"{outcome}\",le=\"{le}\""),
            )
        };
        assert_eq!(bucket("connected", "2"), Some(0.0), "{rendered}");
        assert_eq!(bucket("connected", "5"), Some(1.0), "{rendered}");
        assert_eq!(bucket("connected", "30"), Some(1.0), "{rendered}");
        assert_eq!(bucket("connected", "60"), Some(2.0), "{rendered}");
        assert_eq!(bucket("abandoned", "300"), Some(0.0), "{rendered}");
        assert_eq!(bucket("abandoned", "+Inf"), Some(1.0), "{rendered}");
        assert_eq!(bucket("overflowed", "120"), Some(1.0), "{rendered}");
        let les: Vec<&str> = rendered
            .lines()
            .filter(|line| {
                line.starts_with("hotline_queue_wait_seconds_bucket")
                    && line.contains("outcome=\"connected\"")
            })
            .filter_map(|line| line.split("le=\"").nth(1)?.split('"').next())
            .collect();
        assert_eq!(
            les,
            ["1", "2", "5", "10", "20", "30", "60", "120", "300", "+Inf"]
        );
        assert_eq!(
            series_value(&rendered, CALLS_CONNECTED_TOTAL, "queue=\"general\""),
            Some(2.0),
            "{rendered}"
        );
    }

    #[test]
    fn agent_counts_cover_every_state_and_reset_emptied_ones_r30() {
        let rendered = render_with_local_recorder(|| {
            set_agent_counts(&[
                (AgentStateLabel::Available, 2),
                (AgentStateLabel::OnCall, 1),
                (AgentStateLabel::Paused, 4),
            ]);
            // Later: the paused agents came back; two entries for one state add up.
            set_agent_counts(&[
                (AgentStateLabel::Available, 5),
                (AgentStateLabel::OnCall, 1),
                (AgentStateLabel::OnCall, 1),
            ]);
        });
        for (state, value) in [
            ("logged_out", 0.0),
            ("available", 5.0),
            ("ringing", 0.0),
            ("on_call", 2.0),
            ("wrap_up", 0.0),
            ("paused", 0.0),
        ] {
            assert_eq!(
                series_value(&rendered, AGENTS, &format!("state=\"{state}\"")),
                Some(value),
                "{state} in\n{rendered}"
            );
        }
    }

    #[test]
    fn offer_results_count_and_no_answer_is_a_redirect_r6_r30() {
        let rendered = render_with_local_recorder(|| {
            count_queued("general");
            count_offer_result("general", OfferResult::NoAnswer);
            count_offer_result("general", OfferResult::Refused);
            count_offer_result("general", OfferResult::NoAnswer);
            count_offer_result("general", OfferResult::Answered);
            count_offer_result("complaints", OfferResult::CallerGone);
        });
        let offers = |queue: &str, result: &str| {
            series_value(
                &rendered,
                AGENT_OFFERS_TOTAL,
                &format!("queue=\"{queue}\",result=\"{result}\""),
            )
        };
        assert_eq!(offers("general", "no_answer"), Some(2.0), "{rendered}");
        assert_eq!(offers("general", "refused"), Some(1.0), "{rendered}");
        assert_eq!(offers("general", "answered"), Some(1.0), "{rendered}");
        assert_eq!(offers("complaints", "caller_gone"), Some(1.0), "{rendered}");
        assert_eq!(
            series_value(
                &rendered,
                AGENT_NO_ANSWER_REDIRECTS_TOTAL,
                "queue=\"general\""
            ),
            Some(2.0),
            "{rendered}"
        );
        assert_eq!(
            series_value(
                &rendered,
                AGENT_NO_ANSWER_REDIRECTS_TOTAL,
                "queue=\"complaints\""
            ),
            None,
            "a caller gone is no redirect: {rendered}"
        );
        assert_eq!(
            series_value(&rendered, CALLS_QUEUED_TOTAL, "queue=\"general\""),
            Some(1.0)
        );
    }

    #[test]
    fn abandons_in_queue_and_while_an_agent_rang_have_their_own_reasons_r5() {
        let rendered = render_with_local_recorder(|| {
            count_abandoned(AbandonReason::CallerHungUpInQueue);
            count_abandoned(AbandonReason::CallerHungUpWhileAgentRang);
        });
        for reason in ["caller_hung_up_in_queue", "caller_hung_up_while_agent_rang"] {
            assert_eq!(
                series_value(
                    &rendered,
                    CALLS_ABANDONED_TOTAL,
                    &format!("reason=\"{reason}\"")
                ),
                Some(1.0),
                "{reason} in\n{rendered}"
            );
        }
    }

    /// R12, R30: whatever the helpers are fed, the only label names are the
    /// low-cardinality ones; never an agent, a caller or a call.
    #[test]
    fn helpers_only_use_low_cardinality_labels_r12() {
        let rendered = render_with_local_recorder(|| {
            count_queued("general");
            count_connected("general", std::time::Duration::from_secs(3));
            record_queue_wait(
                "general",
                std::time::Duration::from_secs(9),
                QueueWaitEnd::Abandoned,
            );
            set_queue_gauges("general", 1, Some(std::time::Duration::from_secs(2)));
            set_agent_counts(&[(AgentStateLabel::Ringing, 1)]);
            for &result in OfferResult::ALL {
                count_offer_result("general", result);
            }
            for &reason in AbandonReason::ALL {
                count_abandoned(reason);
            }
            for &reason in RejectReason::ALL {
                count_rejected(reason);
            }
        });
        let allowed = ["queue", "state", "reason", "result", "outcome", "le"];
        let mut labelled_series = 0;
        for line in rendered.lines().filter(|l| !l.starts_with('#')) {
            let Some((_, labels)) = line.split_once('{') else {
                continue;
            };
            labelled_series += 1;
            let labels = labels.split('}').next().unwrap_or("");
            for pair in labels.split(',') {
                let key = pair.split('=').next().unwrap_or("");
                assert!(allowed.contains(&key), "label {key:?} in {line}");
            }
        }
        assert!(labelled_series > 20, "too few series checked:\n{rendered}");
    }

    #[test]
    fn label_values_are_snake_case() {
        let names = AgentStateLabel::ALL
            .iter()
            .map(|s| s.as_str())
            .chain(OfferResult::ALL.iter().map(|r| r.as_str()))
            .chain(QueueWaitEnd::ALL.iter().map(|e| e.as_str()));
        for name in names {
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
        }
        assert_eq!(AgentStateLabel::ALL.len(), 6);
        assert_eq!(OfferResult::ALL.len(), 5);
    }

    #[test]
    fn second_install_is_an_error_not_a_panic() {
        // Another test in this process may have installed first; either way the
        // second attempt must be refused.
        let first = install_recorder();
        assert!(matches!(first, Ok(_) | Err(MetricsError::AlreadyInstalled)));
        assert!(matches!(
            install_recorder(),
            Err(MetricsError::AlreadyInstalled)
        ));
    }
}
