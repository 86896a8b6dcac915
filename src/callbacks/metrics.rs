//! The callback metrics (R30), through the process-wide `metrics` facade. The runtime
//! calls [`describe`] once after installing the recorder and [`publish`] after each
//! batch of scheduler inputs (or before each scrape). Labels are low-cardinality: an
//! attempt's outcome; never a task, a number or an agent (R12).

use chrono::{DateTime, Utc};
use metrics::{Unit, counter, describe_counter, describe_gauge, gauge};

use super::DialOutcome;
use super::core::Scheduler;

pub const CALLBACKS_PENDING: &str = "hotline_callbacks_pending";
pub const CALLBACKS_DUE: &str = "hotline_callbacks_due";
pub const CALLBACKS_OVERDUE: &str = "hotline_callbacks_overdue";
pub const CALLBACKS_DIALING: &str = "hotline_callbacks_dialing";
/// Labelled with [`OUTCOME_LABEL`]: a [`DialOutcome`] name.
pub const CALLBACK_ATTEMPTS_TOTAL: &str = "hotline_callback_attempts_total";
pub const CALLBACK_PREEMPTIONS_TOTAL: &str = "hotline_callback_preemptions_total";
pub const CALLBACK_OLDEST_OVERDUE_SECONDS: &str = "hotline_callback_oldest_overdue_seconds";

pub const OUTCOME_LABEL: &str = "outcome";

/// Every outcome label value, so each series exists from the first scrape.
const OUTCOMES: [DialOutcome; 4] = [
    DialOutcome::Connected,
    DialOutcome::NoAnswer,
    DialOutcome::Busy,
    DialOutcome::Failed(0),
];

/// Describes every callback metric to the current recorder, so `/metrics` documents
/// them.
pub fn describe() {
    describe_gauge!(
        CALLBACKS_PENDING,
        Unit::Count,
        "Callback tasks waiting to be dialled: before their window, in backoff, or due (R20)."
    );
    describe_gauge!(
        CALLBACKS_DUE,
        Unit::Count,
        "Pending callback tasks whose window is open and backoff over: dialled as soon as an agent is free and no inbound call waits for them (R9, R20)."
    );
    describe_gauge!(
        CALLBACKS_OVERDUE,
        Unit::Count,
        "Callback tasks past their latest time and not yet connected or finished (R20)."
    );
    describe_gauge!(
        CALLBACKS_DIALING,
        Unit::Count,
        "Callback tasks ringing the agent or the citizen now."
    );
    describe_counter!(
        CALLBACK_ATTEMPTS_TOTAL,
        Unit::Count,
        "Callback dial attempts of the citizen's leg, by outcome: connected, no_answer, busy, failed."
    );
    describe_counter!(
        CALLBACK_PREEMPTIONS_TOTAL,
        Unit::Count,
        "Ringing callback attempts abandoned because an inbound call started waiting for their agent (R9); not counted as attempts."
    );
    describe_gauge!(
        CALLBACK_OLDEST_OVERDUE_SECONDS,
        Unit::Seconds,
        "How long the longest-overdue callback task is past its latest time; 0 when none is overdue (R20)."
    );
}

/// Sets the gauges from the scheduler's state at `now` and the counters to its totals
/// since start-up (a restart resets them, which Prometheus' `increase()` handles).
pub fn publish(scheduler: &Scheduler, now: DateTime<Utc>) {
    let stats = scheduler.stats(now);
    gauge!(CALLBACKS_PENDING).set(stats.pending as f64);
    gauge!(CALLBACKS_DUE).set(stats.due as f64);
    gauge!(CALLBACKS_OVERDUE).set(stats.overdue as f64);
    gauge!(CALLBACKS_DIALING).set(stats.dialing as f64);
    gauge!(CALLBACK_OLDEST_OVERDUE_SECONDS)
        .set(stats.oldest_overdue.map_or(0.0, |age| age.as_secs_f64()));
    let counters = scheduler.counters();
    for outcome in OUTCOMES {
        let total = match outcome {
            DialOutcome::Connected => counters.connected,
            DialOutcome::NoAnswer => counters.no_answer,
            DialOutcome::Busy => counters.busy,
            DialOutcome::Failed(_) => counters.failed,
        };
        counter!(CALLBACK_ATTEMPTS_TOTAL, OUTCOME_LABEL => outcome.as_str()).absolute(total);
    }
    counter!(CALLBACK_PREEMPTIONS_TOTAL).absolute(counters.preemptions);
}

#[cfg(test)]
mod tests {
    use chrono::{Duration as Span, TimeZone, Utc};

    use super::*;
    use crate::callbacks::{AgentPool, NewTask, Reason, TaskId};
    use crate::config::callbacks::CallbacksConfig;
    use crate::workorder::WorkOrderId;

    #[test]
    fn the_scheduler_figures_render_with_help_and_masked_nothing_r30() {
        let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap();
        let mut s = Scheduler::new(CallbacksConfig::default());
        let task = |reason, number: &str, queue: &str| NewTask {
            work_order: WorkOrderId::from_parts(t0, 1),
            number: number.parse().unwrap(),
            reason,
            window: None,
            owner: Some("1001".into()),
            queue: queue.into(),
        };
        // Overdue by 20 min at the scrape: a complaint (latest 10 min) no agent here serves.
        s.create(t0, task(Reason::Complaint, "13812345678", "billing"))
            .unwrap();
        // Pending, not yet due.
        s.create(t0, task(Reason::Evaluation, "13900000000", "general"))
            .unwrap();
        // Dialing, after a no-answer and a preemption.
        let mut pool = AgentPool::new();
        pool.add_agent("1002", &["general".into()], true);
        let dialled = s
            .create(t0, task(Reason::Manual, "13700000000", "general"))
            .unwrap();
        let at = t0 + Span::minutes(6);
        s.handle_agents(at, &pool);
        assert!(
            s.task(dialled)
                .is_some_and(|t| t.state.as_str() == "dialing")
        );
        s.dial_result(at, dialled, DialOutcome::NoAnswer).unwrap();
        let retry = at + Span::minutes(2);
        s.handle_agents(retry, &pool);
        let mut waiting = pool.clone();
        waiting.set_inbound_waiting("general");
        s.handle_agents(retry, &waiting);
        s.preempted(retry, dialled).unwrap();
        s.handle_agents(retry, &pool);
        assert_eq!(s.task(TaskId(3)).unwrap().preemptions, 1);

        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe();
            publish(&s, t0 + Span::minutes(30));
        });
        let rendered = handle.render();
        for line in [
            "# HELP hotline_callbacks_overdue Callback tasks past their latest time",
            "# TYPE hotline_callback_attempts_total counter",
            "hotline_callbacks_pending 2",
            "hotline_callbacks_due 1",
            "hotline_callbacks_overdue 1",
            "hotline_callbacks_dialing 1",
            "hotline_callback_oldest_overdue_seconds 1200",
            "hotline_callback_attempts_total{outcome=\"no_answer\"} 1",
            "hotline_callback_attempts_total{outcome=\"connected\"} 0",
            "hotline_callback_preemptions_total 1",
        ] {
            assert!(rendered.contains(line), "no {line:?} in\n{rendered}");
        }
        for number in ["13812345678", "13900000000", "13700000000"] {
            assert!(!rendered.contains(number), "R12");
        }
    }
}
