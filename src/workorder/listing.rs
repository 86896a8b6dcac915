//! The plain-text table printed by `hotline work-orders list`. Pure. Caller numbers
//! are masked (R12): the listing is read by staff who need to tell calls apart, not
//! to learn who called.

use chrono::{DateTime, Utc};

use super::model::WorkOrder;
use crate::privacy::mask_number;

const HEADERS: [&str; 10] = [
    "ID",
    "OFFERED (UTC)",
    "DIRECTION",
    "CALLER",
    "ANSWERED (UTC)",
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
    let rows: Vec<[String; 10]> = orders.iter().map(row).collect();
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

fn row(order: &WorkOrder) -> [String; 10] {
    [
        order.id.to_string(),
        time(order.offered_at),
        order.direction.to_string(),
        mask_number(&order.caller),
        order.answered_at.map_or_else(|| EMPTY.to_owned(), time),
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

fn push_line(out: &mut String, cells: &[String; 10], widths: &[usize; 10]) {
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
    use chrono::{Duration, TimeZone};

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
    fn empty_listing_is_just_the_header() {
        assert_eq!(format_listing(&[]).lines().count(), 1);
    }
}
