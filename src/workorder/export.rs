//! What the supervisors' CLI prints: one order in full (`work-orders show`) and many
//! as CSV or JSON (`work-orders export`). Pure. Caller numbers are masked
//! ([`crate::privacy::mask_number`], R12) unless the caller of these functions asks
//! for them unmasked, which the CLI allows only with an explicit flag and writes to
//! the read-audit log.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::matter::{WorkOrderEvent, WorkOrderFile};
use crate::privacy::mask_number;

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Json,
}

impl std::str::FromStr for ExportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "csv" => Ok(ExportFormat::Csv),
            "json" => Ok(ExportFormat::Json),
            other => Err(format!("unknown format {other:?}; use csv or json")),
        }
    }
}

/// Whether caller numbers are shown in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numbers {
    Masked,
    Full,
}

impl Numbers {
    fn show(self, number: &str) -> String {
        match self {
            Numbers::Masked => mask_number(number),
            Numbers::Full => number.to_owned(),
        }
    }
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn opt_time(at: Option<DateTime<Utc>>) -> String {
    at.map(time).unwrap_or_default()
}

/// One exported order: flat, so CSV and JSON carry the same columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportRow {
    pub id: String,
    pub offered_at: String,
    pub direction: String,
    pub caller: String,
    pub callee: String,
    pub status: String,
    pub category: String,
    pub agent: String,
    pub queue: String,
    pub answered_at: String,
    pub connected_at: String,
    pub ended_at: String,
    pub outcome: String,
    pub hangup_side: String,
    pub urgent: bool,
    pub matter: String,
    pub answer: String,
    pub handling_unit: String,
    pub enterprise: String,
    pub enterprise_evaluation: String,
    pub service_rating: String,
    pub unit_rating: String,
    pub calls: usize,
    pub recordings: String,
    pub open_follow_ups: usize,
    pub qa_selected: bool,
    pub forbidden_phrases: String,
}

pub fn export_row(file: &WorkOrderFile, numbers: Numbers) -> ExportRow {
    let order = &file.order;
    let matter = &file.matter;
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    ExportRow {
        id: order.id.to_string(),
        offered_at: time(order.offered_at),
        direction: order.direction.to_string(),
        caller: numbers.show(&order.caller),
        callee: order.callee.clone(),
        status: order.status.to_string(),
        category: order.category.map(|c| c.to_string()).unwrap_or_default(),
        agent: text(&order.agent),
        queue: text(&order.queue),
        answered_at: opt_time(order.answered_at),
        connected_at: opt_time(order.connected_at),
        ended_at: opt_time(order.ended_at),
        outcome: order.outcome.map(|o| o.to_string()).unwrap_or_default(),
        hangup_side: order.hangup_side.map(|s| s.to_string()).unwrap_or_default(),
        urgent: matter.urgent,
        matter: text(&matter.matter),
        answer: text(&matter.answer),
        handling_unit: text(&matter.handling_unit),
        enterprise: matter
            .referral
            .as_ref()
            .map(|r| r.enterprise.clone())
            .unwrap_or_default(),
        enterprise_evaluation: matter
            .referral
            .as_ref()
            .and_then(|r| r.evaluation)
            .map(|e| format!("{}/{}/{}", e.attitude, e.efficiency, e.quality))
            .unwrap_or_default(),
        service_rating: matter
            .service_rating
            .map(|r| r.to_string())
            .unwrap_or_default(),
        unit_rating: matter
            .unit_rating
            .map(|r| r.to_string())
            .unwrap_or_default(),
        calls: file.calls.len(),
        recordings: file
            .calls
            .iter()
            .filter_map(|c| c.recording_path.clone())
            .collect::<Vec<_>>()
            .join(";"),
        open_follow_ups: file
            .follow_ups
            .iter()
            .filter(|f| f.done_at.is_none())
            .count(),
        qa_selected: matter.qa.is_some(),
        forbidden_phrases: file
            .forbidden_hits
            .iter()
            .map(|h| h.phrase.clone())
            .collect::<Vec<_>>()
            .join(";"),
    }
}

/// The orders as CSV with a header row, or as a JSON array.
pub fn export(files: &[WorkOrderFile], format: ExportFormat, numbers: Numbers) -> String {
    let rows: Vec<ExportRow> = files.iter().map(|f| export_row(f, numbers)).collect();
    match format {
        ExportFormat::Json => {
            let mut text = serde_json::to_string_pretty(&rows)
                .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
            text.push('\n');
            text
        }
        ExportFormat::Csv => {
            let mut writer = csv::WriterBuilder::new()
                .has_headers(true)
                .from_writer(Vec::new());
            let mut failure = None;
            if rows.is_empty() {
                // No row to take the header from: write it from an empty row's names.
                failure = writer.write_record(EXPORT_COLUMNS).err();
            }
            for row in &rows {
                if let Err(e) = writer.serialize(row) {
                    failure = Some(e);
                    break;
                }
            }
            match (failure, writer.into_inner()) {
                (None, Ok(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
                (Some(e), _) => format!("error: {e}\n"),
                (None, Err(e)) => format!("error: {e}\n"),
            }
        }
    }
}

/// The CSV header, in [`ExportRow`]'s field order.
pub const EXPORT_COLUMNS: [&str; 27] = [
    "id",
    "offered_at",
    "direction",
    "caller",
    "callee",
    "status",
    "category",
    "agent",
    "queue",
    "answered_at",
    "connected_at",
    "ended_at",
    "outcome",
    "hangup_side",
    "urgent",
    "matter",
    "answer",
    "handling_unit",
    "enterprise",
    "enterprise_evaluation",
    "service_rating",
    "unit_rating",
    "calls",
    "recordings",
    "open_follow_ups",
    "qa_selected",
    "forbidden_phrases",
];

/// One order in full, for a terminal: fields, calls, follow-ups and its audit trail.
pub fn format_file(file: &WorkOrderFile, events: &[WorkOrderEvent], numbers: Numbers) -> String {
    let row = export_row(file, numbers);
    let mut out = String::new();
    let fields: [(&str, &str); 21] = [
        ("id", &row.id),
        ("status", &row.status),
        ("category", &row.category),
        ("offered", &row.offered_at),
        ("direction", &row.direction),
        ("caller", &row.caller),
        ("callee", &row.callee),
        ("owner agent", &row.agent),
        ("queue", &row.queue),
        ("outcome", &row.outcome),
        ("hung up", &row.hangup_side),
        ("urgent", if row.urgent { "yes" } else { "no" }),
        ("matter", &row.matter),
        ("answer", &row.answer),
        ("handling unit", &row.handling_unit),
        ("enterprise", &row.enterprise),
        ("evaluation", &row.enterprise_evaluation),
        ("service rating", &row.service_rating),
        ("unit rating", &row.unit_rating),
        ("qa", if row.qa_selected { "selected" } else { "-" }),
        ("forbidden", &row.forbidden_phrases),
    ];
    for (name, value) in fields {
        let value = if value.is_empty() { "-" } else { value };
        let _ = writeln!(out, "{name:>15}: {value}");
    }
    let _ = writeln!(out, "\ncalls:");
    for call in &file.calls {
        let _ = writeln!(
            out,
            "  {} {} {} from {} at {} ended {} {} recording {}",
            call.kind,
            call.direction,
            call.call_id,
            numbers.show(&call.caller),
            time(call.offered_at),
            opt_time(call.ended_at),
            call.outcome.map(|o| o.to_string()).unwrap_or_default(),
            call.recording_path.as_deref().unwrap_or("-"),
        );
    }
    if !file.follow_ups.is_empty() {
        let _ = writeln!(out, "\nfollow-ups:");
        for f in &file.follow_ups {
            let _ = writeln!(
                out,
                "  #{} {} due {} .. {} {}",
                f.number,
                f.task.kind,
                time(f.task.due_from),
                time(f.task.due_until),
                f.done_at
                    .map_or("open".to_owned(), |d| format!("done {}", time(d))),
            );
        }
    }
    let _ = writeln!(out, "\nhistory:");
    for event in events {
        let _ = writeln!(
            out,
            "  {} {} {} {}",
            time(event.at),
            event.actor,
            event.kind,
            event.detail
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workorder::fixtures::{base_time, inbound_order};
    use crate::workorder::matter::{CallRecord, Matter};

    fn file() -> WorkOrderFile {
        let order = inbound_order(5, base_time());
        WorkOrderFile {
            calls: vec![CallRecord::first_of(&order)],
            order,
            matter: Matter {
                matter: Some("咨询社保卡补办, 逗号\"引号\"".into()),
                ..Matter::default()
            },
            follow_ups: Vec::new(),
            forbidden_hits: Vec::new(),
        }
    }

    #[test]
    fn exports_mask_the_caller_unless_asked_r12() {
        let files = [file()];
        for format in [ExportFormat::Csv, ExportFormat::Json] {
            let masked = export(&files, format, Numbers::Masked);
            assert!(!masked.contains("13800000005"), "{masked}");
            assert!(masked.contains("138******05"), "{masked}");
            let full = export(&files, format, Numbers::Full);
            assert!(full.contains("13800000005"), "{full}");
        }
        assert!(!format_file(&files[0], &[], Numbers::Masked).contains("13800000005"));
    }

    #[test]
    fn csv_quotes_chinese_text_with_commas_and_has_the_header() {
        let csv_text = export(&[file()], ExportFormat::Csv, Numbers::Masked);
        let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
        let headers: Vec<String> = reader
            .headers()
            .expect("header")
            .iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(headers, EXPORT_COLUMNS.map(str::to_owned).to_vec());
        let record = reader.records().next().expect("row").expect("valid");
        assert_eq!(&record[15], "咨询社保卡补办, 逗号\"引号\"");
        let empty = export(&[], ExportFormat::Csv, Numbers::Masked);
        assert_eq!(empty.lines().count(), 1);
    }
}
