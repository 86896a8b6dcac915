//! Metric names, their descriptions, and the rolling 24 h connection rate (R5, R30).
//!
//! [`ConnectionRateWindow`] is pure: it is fed timestamps and never reads the clock.
//! The rest talks to the process-wide `metrics` facade; [`install_recorder`] puts the
//! Prometheus recorder behind it. The engine's HTTP server serves
//! `PrometheusHandle::render()` at `/metrics` and should call
//! `PrometheusHandle::run_upkeep()` every few seconds (or before each render) so
//! histogram samples are folded in and do not pile up.
//!
//! Names follow Prometheus conventions: `hotline_` prefix, base units in the name,
//! counters end in `_total`, labels low-cardinality (a reason, a transport), never a
//! call id or a number (R12).

use chrono::{DateTime, Utc};
use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use crate::workorder::{AbandonReason, CallCountBucket, RejectReason};

pub const CALLS_OFFERED_TOTAL: &str = "hotline_calls_offered_total";
pub const CALLS_ANSWERED_TOTAL: &str = "hotline_calls_answered_total";
/// Labelled with [`REASON_LABEL`]: an [`AbandonReason`] name.
pub const CALLS_ABANDONED_TOTAL: &str = "hotline_calls_abandoned_total";
/// Labelled with [`REASON_LABEL`]: a [`RejectReason`] name.
pub const CALLS_REJECTED_TOTAL: &str = "hotline_calls_rejected_total";
pub const CALLS_ACTIVE: &str = "hotline_calls_active";
pub const ANSWER_DELAY_SECONDS: &str = "hotline_answer_delay_seconds";
pub const ANSWERED_WITHIN_RING_BUDGET_TOTAL: &str = "hotline_answered_within_ring_budget_total";
pub const RECORDINGS_WRITTEN_TOTAL: &str = "hotline_recordings_written_total";
pub const RECORDING_FAILURES_TOTAL: &str = "hotline_recording_failures_total";
pub const CONNECTION_RATE_24H: &str = "hotline_connection_rate_24h";
pub const CALLS_OFFERED_24H: &str = "hotline_calls_offered_24h";
pub const CALLS_ANSWERED_24H: &str = "hotline_calls_answered_24h";
/// Labelled with [`TRANSPORT_LABEL`]: `udp` or `tcp`.
pub const SIP_MESSAGES_MALFORMED_TOTAL: &str = "hotline_sip_messages_malformed_total";
pub const RTP_PACKETS_RECEIVED_TOTAL: &str = "hotline_rtp_packets_received_total";
pub const RTP_PACKETS_SENT_TOTAL: &str = "hotline_rtp_packets_sent_total";
pub const RECORDING_FRAMES_DROPPED_TOTAL: &str = "hotline_recording_frames_dropped_total";

pub const REASON_LABEL: &str = "reason";
pub const TRANSPORT_LABEL: &str = "transport";

/// Upper bounds of the answer-delay histogram, in seconds. Dense below the 10 s ring
/// budget (R6: answer on the 2nd–3rd ring, rings start 5 s apart), with two buckets
/// past it so budget overruns show how far over they went.
pub const ANSWER_DELAY_BUCKETS_SECONDS: &[f64] =
    &[0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 10.0, 15.0, 30.0];

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
        CONNECTION_RATE_24H,
        Kind::Gauge,
        None,
        "Answered over offered inbound calls in the rolling 24 h window, 0..1; NaN when none were offered (R5).",
    ),
    (
        CALLS_OFFERED_24H,
        Kind::Gauge,
        Some(Unit::Count),
        "Inbound calls offered in the rolling 24 h window (R5).",
    ),
    (
        CALLS_ANSWERED_24H,
        Kind::Gauge,
        Some(Unit::Count),
        "Inbound calls offered in the rolling 24 h window that were answered (R5).",
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
    Ok(PrometheusBuilder::new().set_buckets_for_metric(
        Matcher::Full(ANSWER_DELAY_SECONDS.to_owned()),
        ANSWER_DELAY_BUCKETS_SECONDS,
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
    Ok(handle)
}

/// Counts an unanswered call under its reason's snake_case name.
pub fn count_abandoned(reason: AbandonReason) {
    counter!(CALLS_ABANDONED_TOTAL, REASON_LABEL => reason.as_str()).increment(1);
}

/// Counts a refused call under its reason's snake_case name.
pub fn count_rejected(reason: RejectReason) {
    counter!(CALLS_REJECTED_TOTAL, REASON_LABEL => reason.as_str()).increment(1);
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
/// # The window
/// At `now`, the window is `now`'s minute and the 1439 minutes before it: a call is
/// counted from its minute until the start of the same minute the next day, so for
/// between 23 h 59 min and 24 h. Querying with a `now` more than 24 h after the last
/// call finds nothing, however long the engine sat idle.
///
/// # Answers count in the minute of the offer
/// The rate is "of the calls offered in the last 24 h, how many were answered". So an
/// answer is recorded with its call's *offer* time and lands in the offer's bucket:
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

    /// Counts an inbound call offered (INVITE received) at `offered_at`.
    pub fn record_offered(&mut self, offered_at: DateTime<Utc>) {
        if let Some(slot) = self.slot_for(unix_minute(offered_at)) {
            slot.offered = slot.offered.saturating_add(1);
        }
    }

    /// Counts the answer of a call offered at `offered_at` — the *offer* time, not the
    /// answer time (see the type's docs). Dropped when that offer is not in the window.
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use metrics::histogram;
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
            assert!(name.starts_with("hotline_"), "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
            assert_eq!(kind == Kind::Counter, name.ends_with("_total"), "{name}");
            if unit == Some(Unit::Seconds) {
                assert!(name.ends_with("_seconds"), "{name}");
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
