//! The plain-text table printed by `hotline work-orders list`. Pure. Caller numbers
//! are masked (R12): the listing is read by staff who need to tell calls apart, not
//! to learn who called. Agents appear by agent number (工号) only, which is all the
//! model holds.

use chrono::{DateTime, Duration, Utc};

use super::model::WorkOrder;
use crate::privacy::mask_number;

const COLUMNS: usize = 13;

const HEADERS: [&str; COLUMNS] = [
    "ID",
    "OFFERED (UTC)",
    "DIRECTION",
    "CALLER",
    "ANSWERED (UTC)",
    "QUEUE",
    "WAIT",
    "AGENT",
    "ENDED (UTC)",
    "HUNG UP",
    "OUTCOME",
    "STATUS",
    "RECORDING",
];

/// Shown for a field not known (yet).
const EMPTY: &str = "-";

/// One line per order under a header line, columns padded to their widest cell.
pub fn format_listing(orders: &[WorkOrder]) -> String {
    let rows: Vec<[String; COLUMNS]> = orders.iter().map(row).collect();
    let mut widths = HEADERS.map(|h| h.chars().count());
    for cells in &rows {
        for (width, cell) in widths.iter_mut().zip(cells) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    push_line(&mut out, &HEADERS.map(str::to_owned), &widths);
    for cells in &rows {
        push_line(&mut out, cells, &widths);
    }
    out
}

fn row(order: &WorkOrder) -> [String; COLUMNS] {
    [
        order.id.to_string(),
        time(order.offered_at),
        order.direction.to_string(),
        mask_number(&order.caller),
        order.answered_at.map_or_else(|| EMPTY.to_owned(), time),
        order.queue.clone().unwrap_or_else(|| EMPTY.to_owned()),
        order.wait().map_or_else(|| EMPTY.to_owned(), wait),
        order.agent.clone().unwrap_or_else(|| EMPTY.to_owned()),
        order.ended_at.map_or_else(|| EMPTY.to_owned(), time),
        order
            .hangup_side
            .map_or_else(|| EMPTY.to_owned(), |side| side.to_string()),
        order
            .outcome
            .map_or_else(|| EMPTY.to_owned(), |outcome| outcome.to_string()),
        order.status.to_string(),
        order
            .recording_path
            .clone()
            .unwrap_or_else(|| EMPTY.to_owned()),
    ]
}

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A queue wait in whole seconds, `47s` or `2m05s`: short, and sortable by eye.
fn wait(duration: Duration) -> String {
    let seconds = duration.num_seconds().max(0);
    if seconds < 60 {
        format!("{seconds}s")
    } else {
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    }
}

fn push_line(out: &mut String, cells: &[String; COLUMNS], widths: &[usize; COLUMNS]) {
    let mut line = String::new();
    for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
        if i > 0 {
            line.push_str("  ");
        }
        line.push_str(cell);
        let pad = width.saturating_sub(cell.chars().count());
        line.extend(std::iter::repeat_n(' ', pad));
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workorder::{AbandonReason, CallOutcome, HangupSide, WorkOrder, WorkOrderId};
    use chrono::TimeZone;

    fn sample() -> Vec<WorkOrder> {
        let offered = Utc
            .with_ymd_and_hms(2026, 11, 28, 15, 30, 12)
            .single()
            .expect("valid time");
        let mut answered = WorkOrder::new_inbound(
            WorkOrderId::from_parts(offered, 0xabc),
            "c1@trunk",
            "13812345678",
            "8890",
            offered,
        );
        answered.answered_at = Some(offered + Duration::seconds(3));
        answered.ended_at = Some(offered + Duration::seconds(93));
        answered.hangup_side = Some(HangupSide::Caller);
        answered.outcome = Some(CallOutcome::Answered);
        answered.recording_path = Some("recordings/20261128-153012-000000000abc.wav".into());
        answered.queue = Some("complaints".into());
        answered.queued_at = Some(offered + Duration::seconds(9));
        answered.connected_at = Some(offered + Duration::seconds(134));
        answered.agent = Some("1002".into());
        let mut cancelled = WorkOrder::new_inbound(
            WorkOrderId::from_parts(offered, 0xdef),
            "c2@trunk",
            "02412345678",
            "8890",
            offered + Duration::seconds(30),
        );
        cancelled.ended_at = Some(offered + Duration::seconds(35));
        cancelled.outcome = Some(CallOutcome::Abandoned {
            reason: AbandonReason::CallerCancelled,
        });
        vec![answered, cancelled]
    }

    #[test]
    fn listing_masks_caller_numbers_r12() {
        let listing = format_listing(&sample());
        assert!(!listing.contains("13812345678"), "{listing}");
        assert!(!listing.contains("02412345678"), "{listing}");
        assert!(listing.contains("138******78"), "{listing}");
        assert!(listing.contains("024******78"), "{listing}");
    }

    #[test]
    fn listing_shows_times_outcomes_and_recording() {
        let listing = format_listing(&sample());
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("ID"));
        assert!(lines[0].contains("RECORDING"));
        let first = lines[1];
        for expected in [
            "20261128-153012-000000000abc",
            "2026-11-28 15:30:12",
            "inbound",
            "2026-11-28 15:30:15",
            "2026-11-28 15:31:45",
            "caller",
            "answered",
            "accepted",
            "complaints",
            "2m05s",
            "1002",
            "recordings/20261128-153012-000000000abc.wav",
        ] {
            assert!(
                first.contains(expected),
                "missing {expected:?} in {first:?}"
            );
        }
        assert!(lines[2].contains("abandoned/caller_cancelled"));
        assert!(
            lines[2].contains(" - "),
            "unknown fields shown as '-': {:?}",
            lines[2]
        );
    }

    #[test]
    fn listing_columns_line_up() {
        let listing = format_listing(&sample());
        let status_columns: Vec<usize> = listing
            .lines()
            .map(|line| {
                line.find("STATUS")
                    .or_else(|| line.find("accepted"))
                    .expect("status column")
            })
            .collect();
        assert!(status_columns.windows(2).all(|w| w[0] == w[1]), "{listing}");
    }

    #[test]
    fn abandoned_in_queue_shows_its_wait_and_no_agent() {
        let mut orders = sample();
        let abandoned = &mut orders[1];
        abandoned.queue = Some("general".into());
        abandoned.queued_at = Some(abandoned.offered_at + Duration::seconds(1));
        abandoned.outcome = Some(CallOutcome::Abandoned {
            reason: AbandonReason::CallerHungUpInQueue,
        });
        let listing = format_listing(&orders);
        let line = listing.lines().nth(2).expect("second order");
        assert!(line.contains("general"), "{line}");
        assert!(line.contains(" 4s "), "{line}");
        assert!(line.contains("abandoned/caller_hung_up_in_queue"), "{line}");
        let header = listing.lines().next().expect("header");
        let agent_column = header.find("AGENT").expect("agent column");
        assert_eq!(&line[agent_column..agent_column + 2], "- ", "{listing}");
    }

    #[test]
    fn waits_are_whole_seconds_then_minutes() {
        assert_eq!(wait(Duration::milliseconds(900)), "0s");
        assert_eq!(wait(Duration::seconds(59)), "59s");
        assert_eq!(wait(Duration::seconds(60)), "1m00s");
        assert_eq!(wait(Duration::seconds(3_725)), "62m05s");
        assert_eq!(wait(Duration::seconds(-3)), "0s");
    }

    #[test]
    fn empty_listing_is_just_the_header() {
        assert_eq!(format_listing(&[]).lines().count(), 1);
    }
}
