//! Every store operation, written once over the [`Db`] seam; run on the worker thread
//! inside the job's savepoint, so a refused change leaves nothing behind.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::json;

use super::row::{RowReader, parse_time, row_id};
use super::{Db, Dialect, Value, time_text};
use crate::workorder::lifecycle::check_transition;
use crate::workorder::matter::{
    CallRecord, CallerRating, DetailsUpdate, EnterpriseEvaluation, EnterpriseReferral, FollowUp,
    FollowUpTask, ForbiddenPhraseHit, KnowledgeEntry, ListQuery, Matter, OrderPage, Provider,
    PurgeReport, QaSelection, ReadAuditEntry, WorkOrderEvent, WorkOrderFile,
};
use crate::workorder::model::{
    CallCountBucket, CallOutcome, EventKind, HangupSide, RatingTarget, Status, WorkOrder,
    WorkOrderId,
};
use crate::workorder::store::StoreError;

/// Who the call path's events are by.
const ENGINE: &str = "engine";

/// Longest free text (matter, answer, note) accepted, in characters.
const MAX_TEXT_CHARS: usize = 20_000;
/// Longest name (unit, enterprise, actor, phrase) accepted, in characters.
const MAX_NAME_CHARS: usize = 200;
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 1_000;

const ORDER_COLUMNS: &str = "id, call_id, caller, callee, direction, offered_at, answered_at, \
     ended_at, hangup_side, outcome, outcome_reason, recording_path, status, category, agent, \
     queue, queued_at, connected_at";

const MATTER_COLUMNS: &str = "matter, answer, handling_unit, urgent, enterprise, \
     enterprise_referred_at, enterprise_attitude, enterprise_efficiency, enterprise_quality, \
     service_rating, unit_rating, qa_selected_at, qa_reason";

const CALL_COLUMNS: &str = "call_id, kind, direction, caller, callee, offered_at, answered_at, \
     ended_at, hangup_side, outcome, outcome_reason, recording_path, agent";

/// The connection rate's per-minute counts (R5): calls by the minute they were first
/// queued, answered = connected to an agent. The first 16 characters of a stored time
/// are "YYYY-MM-DDTHH:MM".
pub(crate) const CONNECTION_RATE_COUNTS: &str = "SELECT substr(queued_at, 1, 16) AS minute, \
     count(*), count(connected_at) FROM work_orders WHERE direction = 'inbound' \
     AND queued_at >= ?1 GROUP BY substr(queued_at, 1, 16) ORDER BY minute";

fn read_order(row: &super::Row) -> Result<WorkOrder, StoreError> {
    let mut r = RowReader::new(row_id(row), row);
    let id = r.parse("id")?;
    let call_id = r.text("call_id")?;
    let caller = r.text("caller")?;
    let callee = r.text("callee")?;
    let direction = r.parse("direction")?;
    let offered_at = r.time("offered_at")?;
    let answered_at = r.opt_time("answered_at")?;
    let ended_at = r.opt_time("ended_at")?;
    let hangup_side = r.opt_parse("hangup_side")?;
    let outcome = read_outcome(&mut r)?;
    let recording_path = r.opt_text("recording_path")?;
    let status = r.parse("status")?;
    let category = r.opt_parse("category")?;
    let agent = r.opt_text("agent")?;
    let queue = r.opt_text("queue")?;
    let queued_at = r.opt_time("queued_at")?;
    let connected_at = r.opt_time("connected_at")?;
    Ok(WorkOrder {
        id,
        call_id,
        caller,
        callee,
        direction,
        offered_at,
        answered_at,
        ended_at,
        hangup_side,
        outcome,
        recording_path,
        status,
        category,
        agent,
        queue,
        queued_at,
        connected_at,
    })
}

fn read_outcome(r: &mut RowReader<'_>) -> Result<Option<CallOutcome>, StoreError> {
    let kind = r.opt_text("outcome")?;
    let reason = r.opt_text("outcome_reason")?;
    match kind {
        None => Ok(None),
        Some(kind) => CallOutcome::from_parts(&kind, reason.as_deref())
            .map(Some)
            .map_err(|_| StoreError::Corrupt {
                id: r.id.clone(),
                column: "outcome",
                value: format!("{kind}/{}", reason.unwrap_or_default()),
            }),
    }
}

fn read_matter(r: &mut RowReader<'_>) -> Result<Matter, StoreError> {
    let matter = r.opt_text("matter")?;
    let answer = r.opt_text("answer")?;
    let handling_unit = r.opt_text("handling_unit")?;
    let urgent = r.int("urgent")? != 0;
    let enterprise = r.opt_text("enterprise")?;
    let referred_at = r.opt_time("enterprise_referred_at")?;
    let attitude = r.opt_parse("enterprise_attitude")?;
    let efficiency = r.opt_parse("enterprise_efficiency")?;
    let quality = r.opt_parse("enterprise_quality")?;
    let service_rating = r.opt_parse("service_rating")?;
    let unit_rating = r.opt_parse("unit_rating")?;
    let qa_selected_at = r.opt_time("qa_selected_at")?;
    let qa_reason = r.opt_text("qa_reason")?;
    let referral = match (enterprise, referred_at) {
        (Some(enterprise), Some(referred_at)) => Some(EnterpriseReferral {
            enterprise,
            referred_at,
            evaluation: match (attitude, efficiency, quality) {
                (Some(attitude), Some(efficiency), Some(quality)) => Some(EnterpriseEvaluation {
                    attitude,
                    efficiency,
                    quality,
                }),
                _ => None,
            },
        }),
        _ => None,
    };
    Ok(Matter {
        matter,
        answer,
        handling_unit,
        urgent,
        referral,
        service_rating,
        unit_rating,
        qa: qa_selected_at.map(|selected_at| crate::workorder::matter::QaSelection {
            selected_at,
            reason: qa_reason.unwrap_or_default(),
        }),
    })
}

fn read_call(id: &WorkOrderId, row: &super::Row) -> Result<CallRecord, StoreError> {
    let mut r = RowReader::new(id.as_str(), row);
    let call_id = r.text("call_id")?;
    let kind = r.parse("kind")?;
    let direction = r.parse("direction")?;
    let caller = r.text("caller")?;
    let callee = r.text("callee")?;
    let offered_at = r.time("offered_at")?;
    let answered_at = r.opt_time("answered_at")?;
    let ended_at = r.opt_time("ended_at")?;
    let hangup_side = r.opt_parse("hangup_side")?;
    let outcome = read_outcome(&mut r)?;
    let recording_path = r.opt_text("recording_path")?;
    let agent = r.opt_text("agent")?;
    Ok(CallRecord {
        call_id,
        kind,
        direction,
        caller,
        callee,
        offered_at,
        answered_at,
        ended_at,
        hangup_side,
        outcome,
        recording_path,
        agent,
    })
}

fn found_or(changed: u64, id: &WorkOrderId) -> Result<(), StoreError> {
    if changed == 0 {
        Err(StoreError::NotFound(id.clone()))
    } else {
        Ok(())
    }
}

fn invalid(reason: impl Into<String>) -> StoreError {
    StoreError::Invalid(reason.into())
}

/// Trims `value` and checks it is not empty and not longer than `max` characters.
fn checked_text(what: &str, value: &str, max: usize) -> Result<String, StoreError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(invalid(format!("{what} must not be empty")));
    }
    if trimmed.chars().count() > max {
        return Err(invalid(format!("{what} is longer than {max} characters")));
    }
    Ok(trimmed.to_owned())
}

fn event(
    db: &mut dyn Db,
    id: &WorkOrderId,
    at: DateTime<Utc>,
    actor: &str,
    kind: EventKind,
    detail: serde_json::Value,
) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO work_order_events (work_order, at, actor, kind, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        &[
            id.as_str().into(),
            at.into(),
            actor.into(),
            kind.as_str().into(),
            detail.to_string().into(),
        ],
    )?;
    Ok(())
}

fn order_values(order: &WorkOrder) -> Vec<Value> {
    vec![
        order.id.as_str().into(),
        order.call_id.as_str().into(),
        order.caller.as_str().into(),
        order.callee.as_str().into(),
        order.direction.as_str().into(),
        order.offered_at.into(),
        order.answered_at.into(),
        order.ended_at.into(),
        order.hangup_side.map(|s| s.as_str()).into(),
        order.outcome.map(CallOutcome::kind).into(),
        order.outcome.and_then(CallOutcome::reason).into(),
        order.recording_path.as_deref().into(),
        order.status.as_str().into(),
        order.category.map(|c| c.as_str()).into(),
        order.agent.as_deref().into(),
        order.queue.as_deref().into(),
        order.queued_at.into(),
        order.connected_at.into(),
    ]
}

// ---- the call path -------------------------------------------------------------------

/// Idempotent: `ON CONFLICT DO NOTHING` (no error inside the transaction, which
/// PostgreSQL would turn into an aborted transaction), then an identical stored order
/// is success and a different one is [`StoreError::Duplicate`].
pub(super) fn create(db: &mut dyn Db, order: &WorkOrder) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO work_orders ({ORDER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, \
         ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18) ON CONFLICT (id) DO NOTHING"
    );
    let inserted = db.execute(&sql, &order_values(order))?;
    if inserted == 0 {
        return match get_order(db, &order.id)? {
            Some(stored) if stored == *order => Ok(()),
            _ => Err(StoreError::Duplicate(order.id.clone())),
        };
    }
    event(
        db,
        &order.id,
        order.offered_at,
        ENGINE,
        EventKind::Created,
        json!({ "status": order.status.as_str(), "direction": order.direction.as_str() }),
    )
}

pub(super) fn mark_answered(
    db: &mut dyn Db,
    id: &WorkOrderId,
    at: DateTime<Utc>,
    recording_path: Option<&str>,
) -> Result<(), StoreError> {
    let changed = db.execute(
        "UPDATE work_orders SET answered_at = ?2, \
         recording_path = COALESCE(?3, recording_path) WHERE id = ?1",
        &[id.as_str().into(), at.into(), recording_path.into()],
    )?;
    found_or(changed, id)
}

pub(super) fn mark_queued(
    db: &mut dyn Db,
    id: &WorkOrderId,
    at: DateTime<Utc>,
    queue: &str,
) -> Result<(), StoreError> {
    let changed = db.execute(
        "UPDATE work_orders SET queue = ?3, queued_at = COALESCE(queued_at, ?2) WHERE id = ?1",
        &[id.as_str().into(), at.into(), queue.into()],
    )?;
    found_or(changed, id)
}

pub(super) fn mark_connected(
    db: &mut dyn Db,
    id: &WorkOrderId,
    at: DateTime<Utc>,
    agent: &str,
) -> Result<(), StoreError> {
    let rows = db.query(
        "SELECT agent FROM work_orders WHERE id = ?1",
        &[id.as_str().into()],
    )?;
    let Some(row) = rows.first() else {
        return Err(StoreError::NotFound(id.clone()));
    };
    let owner_before = RowReader::new(id.as_str(), row).opt_text("agent")?;
    // COALESCE keeps the first owner and first answer time (R7).
    db.execute(
        "UPDATE work_orders SET agent = COALESCE(agent, ?3), \
         connected_at = COALESCE(connected_at, ?2) WHERE id = ?1",
        &[id.as_str().into(), at.into(), agent.into()],
    )?;
    if owner_before.is_none() {
        event(
            db,
            id,
            at,
            ENGINE,
            EventKind::OwnerAssigned,
            json!({ "agent": agent }),
        )?;
    }
    Ok(())
}

pub(super) fn mark_ended(
    db: &mut dyn Db,
    id: &WorkOrderId,
    at: DateTime<Utc>,
    side: Option<HangupSide>,
    outcome: CallOutcome,
) -> Result<(), StoreError> {
    let rows = db.query(
        "SELECT ended_at FROM work_orders WHERE id = ?1",
        &[id.as_str().into()],
    )?;
    let Some(row) = rows.first() else {
        return Err(StoreError::NotFound(id.clone()));
    };
    let ended_before = RowReader::new(id.as_str(), row).opt_text("ended_at")?;
    db.execute(
        "UPDATE work_orders SET ended_at = ?2, hangup_side = ?3, outcome = ?4, \
         outcome_reason = ?5 WHERE id = ?1",
        &[
            id.as_str().into(),
            at.into(),
            side.map(HangupSide::as_str).into(),
            outcome.kind().into(),
            outcome.reason().into(),
        ],
    )?;
    if ended_before.is_none() {
        event(
            db,
            id,
            at,
            ENGINE,
            EventKind::CallEnded,
            json!({ "outcome": outcome.to_string(), "hangup_side": side.map(HangupSide::as_str) }),
        )?;
    }
    Ok(())
}

pub(super) fn get_order(
    db: &mut dyn Db,
    id: &WorkOrderId,
) -> Result<Option<WorkOrder>, StoreError> {
    let sql = format!("SELECT {ORDER_COLUMNS} FROM work_orders WHERE id = ?1");
    db.query(&sql, &[id.as_str().into()])?
        .first()
        .map(read_order)
        .transpose()
}

fn limit_value(limit: usize) -> Value {
    Value::Int(i64::try_from(limit).unwrap_or(i64::MAX))
}

pub(super) fn list_recent(db: &mut dyn Db, limit: usize) -> Result<Vec<WorkOrder>, StoreError> {
    let sql = format!(
        "SELECT {ORDER_COLUMNS} FROM work_orders ORDER BY offered_at DESC, id DESC LIMIT ?1"
    );
    db.query(&sql, &[limit_value(limit)])?
        .iter()
        .map(read_order)
        .collect()
}

pub(super) fn find_by_call_id(
    db: &mut dyn Db,
    call_id: &str,
) -> Result<Option<WorkOrder>, StoreError> {
    let sql = format!(
        "SELECT {ORDER_COLUMNS} FROM work_orders WHERE call_id = ?1 \
         ORDER BY offered_at DESC, id DESC LIMIT 1"
    );
    db.query(&sql, &[call_id.into()])?
        .first()
        .map(read_order)
        .transpose()
}

pub(super) fn call_counts_since(
    db: &mut dyn Db,
    since: DateTime<Utc>,
) -> Result<Vec<CallCountBucket>, StoreError> {
    db.query(CONNECTION_RATE_COUNTS, &[since.into()])?
        .iter()
        .map(|row| {
            let mut r = RowReader::new("(connection rate counts)", row);
            let minute = r.text("queued_at")?;
            let offered = r.int("count")?;
            let answered = r.int("count")?;
            let start = NaiveDateTime::parse_from_str(&minute, "%Y-%m-%dT%H:%M")
                .map_err(|_| StoreError::Corrupt {
                    id: format!("(calls in minute {minute})"),
                    column: "queued_at",
                    value: minute.clone(),
                })?
                .and_utc();
            Ok(CallCountBucket {
                minute: start,
                offered: u64::try_from(offered).unwrap_or(0),
                answered: u64::try_from(answered).unwrap_or(0),
            })
        })
        .collect()
}

pub(super) fn end_unfinished(
    db: &mut dyn Db,
    at: DateTime<Utc>,
    unanswered: CallOutcome,
) -> Result<u64, StoreError> {
    let at_value: Value = at.into();
    // A queued call is answered only when an agent took it; the IVR's trunk answer
    // counts only for calls that never reached a queue.
    let answered = db.execute(
        "UPDATE work_orders SET ended_at = ?1, outcome = 'answered', outcome_reason = NULL \
         WHERE ended_at IS NULL AND (connected_at IS NOT NULL \
         OR (queued_at IS NULL AND answered_at IS NOT NULL))",
        std::slice::from_ref(&at_value),
    )?;
    let unanswered_count = db.execute(
        "UPDATE work_orders SET ended_at = ?1, outcome = ?2, outcome_reason = ?3 \
         WHERE ended_at IS NULL",
        &[
            at_value.clone(),
            unanswered.kind().into(),
            unanswered.reason().into(),
        ],
    )?;
    // Further calls of a matter left open by the crash end the same way.
    db.execute(
        "UPDATE work_order_calls SET ended_at = ?1, outcome = 'answered', outcome_reason = NULL \
         WHERE ended_at IS NULL AND answered_at IS NOT NULL",
        std::slice::from_ref(&at_value),
    )?;
    db.execute(
        "UPDATE work_order_calls SET ended_at = ?1, outcome = ?2, outcome_reason = ?3 \
         WHERE ended_at IS NULL",
        &[
            at_value,
            unanswered.kind().into(),
            unanswered.reason().into(),
        ],
    )?;
    Ok(answered + unanswered_count)
}

// ---- the matter: reading --------------------------------------------------------------

pub(super) fn get_file(
    db: &mut dyn Db,
    id: &WorkOrderId,
) -> Result<Option<WorkOrderFile>, StoreError> {
    let sql = format!("SELECT {ORDER_COLUMNS}, {MATTER_COLUMNS} FROM work_orders WHERE id = ?1");
    let rows = db.query(&sql, &[id.as_str().into()])?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let order = read_order(row)?;
    let matter_values: super::Row = row.iter().skip(18).cloned().collect();
    let matter = read_matter(&mut RowReader::new(id.as_str(), &matter_values))?;

    let mut calls = vec![CallRecord::first_of(&order)];
    let sql = format!(
        "SELECT {CALL_COLUMNS} FROM work_order_calls WHERE work_order = ?1 \
         ORDER BY offered_at, call_id"
    );
    for row in db.query(&sql, &[id.as_str().into()])? {
        calls.push(read_call(id, &row)?);
    }

    let mut follow_ups = Vec::new();
    for row in db.query(
        "SELECT number, kind, due_from, due_until, note, done_at FROM follow_up_tasks \
         WHERE work_order = ?1 ORDER BY number",
        &[id.as_str().into()],
    )? {
        let mut r = RowReader::new(id.as_str(), &row);
        let number = r.int("number")?;
        follow_ups.push(FollowUp {
            number: u32::try_from(number).map_err(|_| StoreError::Corrupt {
                id: id.to_string(),
                column: "number",
                value: number.to_string(),
            })?,
            task: FollowUpTask {
                kind: r.parse("kind")?,
                due_from: r.time("due_from")?,
                due_until: r.time("due_until")?,
                note: r.text("note")?,
            },
            done_at: r.opt_time("done_at")?,
        });
    }

    let mut forbidden_hits = Vec::new();
    for row in db.query(
        "SELECT phrase, field FROM forbidden_phrase_hits WHERE work_order = ?1 ORDER BY seq",
        &[id.as_str().into()],
    )? {
        let mut r = RowReader::new(id.as_str(), &row);
        forbidden_hits.push(ForbiddenPhraseHit {
            phrase: r.text("phrase")?,
            field: r.text("field")?,
        });
    }
    Ok(Some(WorkOrderFile {
        order,
        matter,
        calls,
        follow_ups,
        forbidden_hits,
    }))
}

fn require_file(db: &mut dyn Db, id: &WorkOrderId) -> Result<WorkOrderFile, StoreError> {
    get_file(db, id)?.ok_or_else(|| StoreError::NotFound(id.clone()))
}

fn require_open(db: &mut dyn Db, id: &WorkOrderId) -> Result<WorkOrderFile, StoreError> {
    let file = require_file(db, id)?;
    if file.order.status == Status::Closed {
        return Err(invalid(format!(
            "work order {id} is closed; a closed order is final (R21)"
        )));
    }
    Ok(file)
}

pub(super) fn events(db: &mut dyn Db, id: &WorkOrderId) -> Result<Vec<WorkOrderEvent>, StoreError> {
    db.query(
        "SELECT at, actor, kind, detail FROM work_order_events WHERE work_order = ?1 \
         ORDER BY seq",
        &[id.as_str().into()],
    )?
    .iter()
    .map(|row| {
        let mut r = RowReader::new(id.as_str(), row);
        Ok(WorkOrderEvent {
            at: r.time("at")?,
            actor: r.text("actor")?,
            kind: r.parse("kind")?,
            detail: r.text("detail")?,
        })
    })
    .collect()
}

/// The page cursor: the last order's `offered_at` text and id, joined by `~`.
fn parse_cursor(cursor: &str) -> Result<(String, String), StoreError> {
    let bad = || invalid(format!("{cursor:?} is not a cursor returned by a listing"));
    let (time, id) = cursor.split_once('~').ok_or_else(bad)?;
    parse_time(time).ok_or_else(bad)?;
    id.parse::<WorkOrderId>().map_err(|_| bad())?;
    Ok((time.to_owned(), id.to_owned()))
}

pub(super) fn list_orders(db: &mut dyn Db, query: &ListQuery) -> Result<OrderPage, StoreError> {
    let limit = match query.limit {
        0 => DEFAULT_PAGE,
        n if n > MAX_PAGE => {
            return Err(invalid(format!("a page holds at most {MAX_PAGE} orders")));
        }
        n => n,
    };
    let mut conditions: Vec<String> = Vec::new();
    let mut params: Vec<Value> = Vec::new();
    let bind = |params: &mut Vec<Value>, value: Value| {
        params.push(value);
        format!("?{}", params.len())
    };
    if let Some(status) = query.status {
        let p = bind(&mut params, status.as_str().into());
        conditions.push(format!("status = {p}"));
    }
    if let Some(category) = query.category {
        let p = bind(&mut params, category.as_str().into());
        conditions.push(format!("category = {p}"));
    }
    if let Some(agent) = &query.agent {
        let p = bind(&mut params, agent.as_str().into());
        conditions.push(format!("agent = {p}"));
    }
    if !query.exclude_categories.is_empty() {
        let excluded: Vec<String> = query
            .exclude_categories
            .iter()
            .map(|c| bind(&mut params, c.as_str().into()))
            .collect();
        // `NOT IN` alone would also drop orders with no category yet (NULL).
        conditions.push(format!(
            "(category IS NULL OR category NOT IN ({}))",
            excluded.join(", ")
        ));
    }
    if let Some(from) = query.offered_from {
        let p = bind(&mut params, from.into());
        conditions.push(format!("offered_at >= {p}"));
    }
    if let Some(until) = query.offered_until {
        let p = bind(&mut params, until.into());
        conditions.push(format!("offered_at < {p}"));
    }
    if let Some(at) = query.overdue_at {
        let p = bind(&mut params, at.into());
        conditions.push(format!(
            "EXISTS (SELECT 1 FROM follow_up_tasks t WHERE t.work_order = work_orders.id \
             AND t.done_at IS NULL AND t.due_until < {p})"
        ));
    }
    match query.qa_selected {
        Some(true) => conditions.push("qa_selected_at IS NOT NULL".into()),
        Some(false) => conditions.push("qa_selected_at IS NULL".into()),
        None => {}
    }
    if let Some(cursor) = &query.after {
        let (time, id) = parse_cursor(cursor)?;
        let t = bind(&mut params, time.into());
        let i = bind(&mut params, id.into());
        conditions.push(format!(
            "(offered_at < {t} OR (offered_at = {t} AND id < {i}))"
        ));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let l = bind(&mut params, limit_value(limit + 1));
    let sql = format!(
        "SELECT {ORDER_COLUMNS} FROM work_orders {filter} ORDER BY offered_at DESC, id DESC \
         LIMIT {l}"
    );
    let mut orders = db
        .query(&sql, &params)?
        .iter()
        .map(read_order)
        .collect::<Result<Vec<_>, _>>()?;
    let next = if orders.len() > limit {
        orders.truncate(limit);
        orders
            .last()
            .map(|o| format!("{}~{}", time_text(o.offered_at), o.id))
    } else {
        None
    };
    Ok(OrderPage { orders, next })
}

// ---- the matter: changing -------------------------------------------------------------

pub(super) fn change_status(
    db: &mut dyn Db,
    id: &WorkOrderId,
    to: Status,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<WorkOrderFile, StoreError> {
    let actor = checked_text("actor", actor, MAX_NAME_CHARS)?;
    let file = require_file(db, id)?;
    check_transition(&file, to).map_err(|refused| StoreError::InvalidTransition {
        id: id.clone(),
        refused,
    })?;
    db.execute(
        "UPDATE work_orders SET status = ?2 WHERE id = ?1",
        &[id.as_str().into(), to.as_str().into()],
    )?;
    event(
        db,
        id,
        at,
        &actor,
        EventKind::StatusChanged,
        json!({ "from": file.order.status.as_str(), "to": to.as_str() }),
    )?;
    require_file(db, id)
}

pub(super) fn update_details(
    db: &mut dyn Db,
    id: &WorkOrderId,
    update: &DetailsUpdate,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<WorkOrderFile, StoreError> {
    let actor = checked_text("actor", actor, MAX_NAME_CHARS)?;
    let file = require_open(db, id)?;
    // Everything is checked before anything is written.
    let matter = update
        .matter
        .as_deref()
        .map(|t| checked_text("matter", t, MAX_TEXT_CHARS))
        .transpose()?;
    let answer = update
        .answer
        .as_deref()
        .map(|t| checked_text("answer", t, MAX_TEXT_CHARS))
        .transpose()?;
    let unit = update
        .handling_unit
        .as_deref()
        .map(|t| checked_text("handling_unit", t, MAX_NAME_CHARS))
        .transpose()?;
    let mut changes: Vec<(&'static str, Value, serde_json::Value)> = Vec::new();
    if let Some(matter) = matter.filter(|m| file.matter.matter.as_ref() != Some(m)) {
        changes.push(("matter", matter.clone().into(), json!(matter)));
    }
    if let Some(answer) = answer.filter(|a| file.matter.answer.as_ref() != Some(a)) {
        changes.push(("answer", answer.clone().into(), json!(answer)));
    }
    if let Some(unit) = unit.filter(|u| file.matter.handling_unit.as_ref() != Some(u)) {
        changes.push(("handling_unit", unit.clone().into(), json!(unit)));
    }
    if let Some(category) = update.category.filter(|c| file.order.category != Some(*c)) {
        changes.push((
            "category",
            category.as_str().into(),
            json!(category.as_str()),
        ));
    }
    if let Some(urgent) = update.urgent.filter(|u| file.matter.urgent != *u) {
        changes.push(("urgent", urgent.into(), json!(urgent)));
    }
    for (column, value, shown) in changes {
        // `column` comes from the fixed list above, never from input.
        db.execute(
            &format!("UPDATE work_orders SET {column} = ?2 WHERE id = ?1"),
            &[id.as_str().into(), value],
        )?;
        event(
            db,
            id,
            at,
            &actor,
            EventKind::FieldUpdated,
            json!({ "field": column, "value": shown }),
        )?;
    }
    require_file(db, id)
}

pub(super) fn add_note(
    db: &mut dyn Db,
    id: &WorkOrderId,
    text: &str,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let actor = checked_text("actor", actor, MAX_NAME_CHARS)?;
    let text = checked_text("note", text, MAX_TEXT_CHARS)?;
    require_file(db, id)?;
    event(db, id, at, &actor, EventKind::Note, json!({ "text": text }))
}

pub(super) fn refer_enterprise(
    db: &mut dyn Db,
    id: &WorkOrderId,
    enterprise: &str,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<WorkOrderFile, StoreError> {
    let actor = checked_text("actor", actor, MAX_NAME_CHARS)?;
    let enterprise = checked_text("enterprise", enterprise, MAX_NAME_CHARS)?;
    require_open(db, id)?;
    db.execute(
        "UPDATE work_orders SET enterprise = ?2, enterprise_referred_at = ?3, \
         enterprise_attitude = NULL, enterprise_efficiency = NULL, enterprise_quality = NULL \
         WHERE id = ?1",
        &[id.as_str().into(), enterprise.as_str().into(), at.into()],
    )?;
    event(
        db,
        id,
        at,
        &actor,
        EventKind::EnterpriseReferred,
        json!({ "enterprise": enterprise }),
    )?;
    require_file(db, id)
}

pub(super) fn evaluate_enterprise(
    db: &mut dyn Db,
    id: &WorkOrderId,
    evaluation: &EnterpriseEvaluation,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<WorkOrderFile, StoreError> {
    let actor = checked_text("actor", actor, MAX_NAME_CHARS)?;
    let file = require_open(db, id)?;
    if file.matter.referral.is_none() {
        return Err(invalid(format!(
            "work order {id} has no referred enterprise to evaluate (R25)"
        )));
    }
    db.execute(
        "UPDATE work_orders SET enterprise_attitude = ?2, enterprise_efficiency = ?3, \
         enterprise_quality = ?4 WHERE id = ?1",
        &[
            id.as_str().into(),
            evaluation.attitude.as_str().into(),
            evaluation.efficiency.as_str().into(),
            evaluation.quality.as_str().into(),
        ],
    )?;
    event(
        db,
        id,
        at,
        &actor,
        EventKind::EnterpriseEvaluated,
        json!({
            "attitude": evaluation.attitude.as_str(),
            "efficiency": evaluation.efficiency.as_str(),
            "quality": evaluation.quality.as_str(),
        }),
    )?;
    require_file(db, id)
}

pub(super) fn rate(
    db: &mut dyn Db,
    id: &WorkOrderId,
    rating: &CallerRating,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<WorkOrderFile, StoreError> {
    let actor = checked_text("actor", actor, MAX_NAME_CHARS)?;
    let file = require_file(db, id)?;
    let column = match rating.target {
        RatingTarget::Service => "service_rating",
        RatingTarget::HandlingUnit => {
            if file.matter.handling_unit.is_none() {
                return Err(invalid(format!(
                    "work order {id} has no handling unit to rate (R26)"
                )));
            }
            "unit_rating"
        }
    };
    db.execute(
        &format!("UPDATE work_orders SET {column} = ?2 WHERE id = ?1"),
        &[id.as_str().into(), rating.score.as_str().into()],
    )?;
    event(
        db,
        id,
        at,
        &actor,
        EventKind::Rated,
        json!({ "target": rating.target.as_str(), "score": rating.score.as_str() }),
    )?;
    require_file(db, id)
}

pub(super) fn add_follow_up(
    db: &mut dyn Db,
    id: &WorkOrderId,
    task: &FollowUpTask,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<u32, StoreError> {
    let actor = checked_text("actor", actor, MAX_NAME_CHARS)?;
    if task.due_until < task.due_from {
        return Err(invalid(
            "a follow-up task's due_until is before its due_from",
        ));
    }
    if task.note.chars().count() > MAX_TEXT_CHARS {
        return Err(invalid(format!(
            "note is longer than {MAX_TEXT_CHARS} characters"
        )));
    }
    let file = require_open(db, id)?;
    let number = file.follow_ups.iter().map(|f| f.number).max().unwrap_or(0) + 1;
    db.execute(
        "INSERT INTO follow_up_tasks (work_order, number, kind, due_from, due_until, note) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        &[
            id.as_str().into(),
            i64::from(number).into(),
            task.kind.as_str().into(),
            task.due_from.into(),
            task.due_until.into(),
            task.note.as_str().into(),
        ],
    )?;
    event(
        db,
        id,
        at,
        &actor,
        EventKind::FollowUpAdded,
        json!({
            "number": number,
            "kind": task.kind.as_str(),
            "due_from": time_text(task.due_from),
            "due_until": time_text(task.due_until),
        }),
    )?;
    Ok(number)
}

pub(super) fn complete_follow_up(
    db: &mut dyn Db,
    id: &WorkOrderId,
    number: u32,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let actor = checked_text("actor", actor, MAX_NAME_CHARS)?;
    require_file(db, id)?;
    let changed = db.execute(
        "UPDATE follow_up_tasks SET done_at = ?3 WHERE work_order = ?1 AND number = ?2 \
         AND done_at IS NULL",
        &[id.as_str().into(), i64::from(number).into(), at.into()],
    )?;
    if changed == 0 {
        return Err(invalid(format!(
            "work order {id} has no open follow-up task {number}"
        )));
    }
    event(
        db,
        id,
        at,
        &actor,
        EventKind::FollowUpDone,
        json!({ "number": number }),
    )
}

pub(super) fn select_for_qa(
    db: &mut dyn Db,
    id: &WorkOrderId,
    selection: &QaSelection,
    actor: &str,
) -> Result<(), StoreError> {
    let actor = checked_text("actor", actor, MAX_NAME_CHARS)?;
    let reason = checked_text("reason", &selection.reason, MAX_NAME_CHARS)?;
    let file = require_file(db, id)?;
    if file.matter.qa.is_some() {
        return Ok(());
    }
    db.execute(
        "UPDATE work_orders SET qa_selected_at = ?2, qa_reason = ?3 WHERE id = ?1",
        &[
            id.as_str().into(),
            selection.selected_at.into(),
            reason.as_str().into(),
        ],
    )?;
    event(
        db,
        id,
        selection.selected_at,
        &actor,
        EventKind::QaSelected,
        json!({ "reason": reason }),
    )
}

/// The hits are stored, and the order is flagged for QA (R28) unless already picked.
pub(super) fn record_forbidden_phrases(
    db: &mut dyn Db,
    id: &WorkOrderId,
    hits: &[ForbiddenPhraseHit],
    actor: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let actor = checked_text("actor", actor, MAX_NAME_CHARS)?;
    if hits.is_empty() {
        return Ok(());
    }
    let mut checked = Vec::with_capacity(hits.len());
    for hit in hits {
        checked.push((
            checked_text("phrase", &hit.phrase, MAX_NAME_CHARS)?,
            checked_text("field", &hit.field, MAX_NAME_CHARS)?,
        ));
    }
    require_file(db, id)?;
    for (phrase, field) in &checked {
        db.execute(
            "INSERT INTO forbidden_phrase_hits (work_order, phrase, field, at, actor) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            &[
                id.as_str().into(),
                phrase.as_str().into(),
                field.as_str().into(),
                at.into(),
                actor.as_str().into(),
            ],
        )?;
    }
    let shown: Vec<_> = checked
        .iter()
        .map(|(phrase, field)| json!({ "phrase": phrase, "field": field }))
        .collect();
    event(
        db,
        id,
        at,
        &actor,
        EventKind::ForbiddenPhrases,
        json!({ "hits": shown }),
    )?;
    select_for_qa(
        db,
        id,
        &QaSelection {
            selected_at: at,
            reason: "forbidden phrase".into(),
        },
        &actor,
    )
}

pub(super) fn attach_call(
    db: &mut dyn Db,
    id: &WorkOrderId,
    call: &CallRecord,
) -> Result<(), StoreError> {
    let call_id = checked_text("call_id", &call.call_id, 1_000)?;
    let order = get_order(db, id)?.ok_or_else(|| StoreError::NotFound(id.clone()))?;
    if order.call_id == call_id {
        return Err(invalid(format!(
            "call {call_id} is the call that opened work order {id}; it is recorded through \
             the call-path methods"
        )));
    }
    let existing = db.query(
        "SELECT 1 FROM work_order_calls WHERE work_order = ?1 AND call_id = ?2",
        &[id.as_str().into(), call_id.as_str().into()],
    )?;
    let sql = format!(
        "INSERT INTO work_order_calls (work_order, {CALL_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, \
         ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) ON CONFLICT (work_order, call_id) DO UPDATE SET \
         kind = excluded.kind, direction = excluded.direction, caller = excluded.caller, \
         callee = excluded.callee, offered_at = excluded.offered_at, \
         answered_at = excluded.answered_at, ended_at = excluded.ended_at, \
         hangup_side = excluded.hangup_side, outcome = excluded.outcome, \
         outcome_reason = excluded.outcome_reason, recording_path = excluded.recording_path, \
         agent = excluded.agent"
    );
    db.execute(
        &sql,
        &[
            id.as_str().into(),
            call_id.as_str().into(),
            call.kind.as_str().into(),
            call.direction.as_str().into(),
            call.caller.as_str().into(),
            call.callee.as_str().into(),
            call.offered_at.into(),
            call.answered_at.into(),
            call.ended_at.into(),
            call.hangup_side.map(|s| s.as_str()).into(),
            call.outcome.map(CallOutcome::kind).into(),
            call.outcome.and_then(CallOutcome::reason).into(),
            call.recording_path.as_deref().into(),
            call.agent.as_deref().into(),
        ],
    )?;
    if existing.is_empty() {
        event(
            db,
            id,
            call.offered_at,
            call.agent.as_deref().unwrap_or(ENGINE),
            EventKind::CallAttached,
            json!({ "call_id": call_id, "kind": call.kind.as_str() }),
        )?;
    }
    Ok(())
}

// ---- the read-audit log ---------------------------------------------------------------

pub(super) fn append_read_audit(db: &mut dyn Db, entry: &ReadAuditEntry) -> Result<(), StoreError> {
    let actor = checked_text("actor", &entry.actor, MAX_NAME_CHARS)?;
    let target = checked_text("target", &entry.target, 1_000)?;
    db.execute(
        "INSERT INTO read_audit (at, actor, what, work_order, target) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        &[
            entry.at.into(),
            actor.into(),
            entry.read.as_str().into(),
            entry.work_order.as_ref().map(WorkOrderId::as_str).into(),
            target.into(),
        ],
    )?;
    Ok(())
}

pub(super) fn read_audit_log(
    db: &mut dyn Db,
    since: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<ReadAuditEntry>, StoreError> {
    db.query(
        "SELECT at, actor, what, work_order, target FROM read_audit WHERE at >= ?1 \
         ORDER BY seq LIMIT ?2",
        &[since.into(), limit_value(limit)],
    )?
    .iter()
    .map(|row| {
        let mut r = RowReader::new("(read audit)", row);
        Ok(ReadAuditEntry {
            at: r.time("at")?,
            actor: r.text("actor")?,
            read: r.parse("what")?,
            work_order: r.opt_parse("work_order")?,
            target: r.text("target")?,
        })
    })
    .collect()
}

// ---- knowledge base and service directory ---------------------------------------------

fn tags_text(tags: &[String]) -> String {
    serde_json::Value::from(tags.to_vec()).to_string()
}

fn read_tags(id: &str, text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|_| StoreError::Corrupt {
        id: id.to_owned(),
        column: "tags",
        value: text.to_owned(),
    })
}

fn check_unique_ids<'a>(what: &str, ids: impl Iterator<Item = &'a str>) -> Result<(), StoreError> {
    let mut seen = std::collections::HashSet::new();
    for id in ids {
        if !seen.insert(id) {
            return Err(invalid(format!("{what} id {id:?} appears twice")));
        }
    }
    Ok(())
}

fn check_knowledge(entry: &KnowledgeEntry) -> Result<(), StoreError> {
    checked_text("knowledge entry id", &entry.id, MAX_NAME_CHARS)?;
    checked_text(
        &format!("knowledge entry {:?} title", entry.id),
        &entry.title,
        MAX_NAME_CHARS,
    )?;
    checked_text(
        &format!("knowledge entry {:?} body", entry.id),
        &entry.body,
        MAX_TEXT_CHARS,
    )?;
    Ok(())
}

/// The text the keyword search looks in.
fn knowledge_search_text(entry: &KnowledgeEntry) -> String {
    format!("{}\n{}\n{}", entry.title, entry.body, entry.tags.join(" "))
}

pub(super) fn import_knowledge(
    db: &mut dyn Db,
    entries: &[KnowledgeEntry],
) -> Result<usize, StoreError> {
    for entry in entries {
        check_knowledge(entry)?;
    }
    check_unique_ids("knowledge entry", entries.iter().map(|e| e.id.as_str()))?;
    for entry in entries {
        upsert_knowledge(db, entry)?;
    }
    Ok(entries.len())
}

fn upsert_knowledge(db: &mut dyn Db, entry: &KnowledgeEntry) -> Result<(), StoreError> {
    let id = entry.id.trim();
    let search = knowledge_search_text(entry);
    match db.dialect() {
        Dialect::Sqlite => {
            db.execute(
                "INSERT INTO knowledge (id, title, body, tags) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (id) DO UPDATE SET title = excluded.title, body = excluded.body, \
                 tags = excluded.tags",
                &[
                    id.into(),
                    entry.title.as_str().into(),
                    entry.body.as_str().into(),
                    tags_text(&entry.tags).into(),
                ],
            )?;
            db.execute("DELETE FROM knowledge_search WHERE id = ?1", &[id.into()])?;
            db.execute(
                "INSERT INTO knowledge_search (id, text) VALUES (?1, ?2)",
                &[id.into(), search.into()],
            )?;
        }
        Dialect::Postgres => {
            db.execute(
                "INSERT INTO knowledge (id, title, body, tags, search_text) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO UPDATE SET \
                 title = excluded.title, body = excluded.body, tags = excluded.tags, \
                 search_text = excluded.search_text",
                &[
                    id.into(),
                    entry.title.as_str().into(),
                    entry.body.as_str().into(),
                    tags_text(&entry.tags).into(),
                    search.into(),
                ],
            )?;
        }
    }
    Ok(())
}

/// The keywords of a search, each as a `%keyword%` pattern. `%` and `_` are dropped
/// from keywords (they would be wildcards); an empty query is refused.
fn keyword_patterns(query: &str) -> Result<Vec<String>, StoreError> {
    let patterns: Vec<String> = query
        .split_whitespace()
        .map(|k| k.replace(['%', '_'], ""))
        .filter(|k| !k.is_empty())
        .take(8)
        .map(|k| format!("%{k}%"))
        .collect();
    if patterns.is_empty() {
        return Err(invalid("the search has no keyword"));
    }
    Ok(patterns)
}

/// `SELECT <columns> FROM <table>` rows whose search text holds every keyword, the
/// ones with the first keyword in `title_column` first.
fn keyword_search(
    db: &mut dyn Db,
    table: &str,
    columns: &str,
    title_column: &str,
    query: &str,
    limit: usize,
) -> Result<Vec<super::Row>, StoreError> {
    let patterns = keyword_patterns(query)?;
    let first_keyword = patterns[0].trim_matches('%').to_owned();
    let mut params: Vec<Value> = Vec::new();
    let mut conditions = Vec::new();
    let dialect = db.dialect();
    for pattern in patterns {
        params.push(pattern.into());
        let p = params.len();
        conditions.push(match dialect {
            // The trigram FTS5 table answers LIKE from its index (keywords of three
            // characters or more; shorter ones scan it).
            Dialect::Sqlite => format!("text LIKE ?{p}"),
            // pg_trgm's GIN index answers ILIKE.
            Dialect::Postgres => format!("search_text ILIKE ?{p}"),
        });
    }
    params.push(first_keyword.into());
    let k = params.len();
    params.push(limit_value(limit));
    let l = params.len();
    let sql = match dialect {
        Dialect::Sqlite => format!(
            "SELECT {columns} FROM {table} WHERE id IN (SELECT id FROM {table}_search WHERE {}) \
             ORDER BY instr({title_column}, ?{k}) > 0 DESC, id LIMIT ?{l}",
            conditions.join(" AND ")
        ),
        Dialect::Postgres => format!(
            "SELECT {columns} FROM {table} WHERE {} \
             ORDER BY strpos({title_column}, ?{k}) > 0 DESC, id LIMIT ?{l}",
            conditions.join(" AND ")
        ),
    };
    Ok(db.query(&sql, &params)?)
}

pub(super) fn search_knowledge(
    db: &mut dyn Db,
    query: &str,
    limit: usize,
) -> Result<Vec<KnowledgeEntry>, StoreError> {
    keyword_search(
        db,
        "knowledge",
        "id, title, body, tags",
        "title",
        query,
        limit,
    )?
    .iter()
    .map(|row| {
        let mut r = RowReader::new(row_id(row), row);
        let id = r.text("id")?;
        let title = r.text("title")?;
        let body = r.text("body")?;
        let tags = read_tags(&id, &r.text("tags")?)?;
        Ok(KnowledgeEntry {
            id,
            title,
            body,
            tags,
        })
    })
    .collect()
}

fn check_provider(provider: &Provider) -> Result<(), StoreError> {
    checked_text("provider id", &provider.id, MAX_NAME_CHARS)?;
    checked_text(
        &format!("provider {:?} name", provider.id),
        &provider.name,
        MAX_NAME_CHARS,
    )?;
    checked_text(
        &format!("provider {:?} services", provider.id),
        &provider.services,
        MAX_TEXT_CHARS,
    )?;
    Ok(())
}

fn provider_search_text(p: &Provider) -> String {
    format!(
        "{}\n{}\n{}\n{}\n{}",
        p.name,
        p.services,
        p.area,
        p.address,
        p.tags.join(" ")
    )
}

const PROVIDER_COLUMNS: &str = "id, name, services, area, phone, address, tags, added_from";

fn upsert_provider(db: &mut dyn Db, p: &Provider) -> Result<(), StoreError> {
    let id = p.id.trim();
    let mut values: Vec<Value> = vec![
        id.into(),
        p.name.trim().into(),
        p.services.as_str().into(),
        p.area.as_str().into(),
        p.phone.as_str().into(),
        p.address.as_str().into(),
        tags_text(&p.tags).into(),
        p.added_from.as_ref().map(WorkOrderId::as_str).into(),
    ];
    let updates = "name = excluded.name, services = excluded.services, area = excluded.area, \
         phone = excluded.phone, address = excluded.address, tags = excluded.tags, \
         added_from = excluded.added_from";
    match db.dialect() {
        Dialect::Sqlite => {
            db.execute(
                &format!(
                    "INSERT INTO providers ({PROVIDER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, \
                     ?7, ?8) ON CONFLICT (id) DO UPDATE SET {updates}"
                ),
                &values,
            )?;
            db.execute("DELETE FROM providers_search WHERE id = ?1", &[id.into()])?;
            db.execute(
                "INSERT INTO providers_search (id, text) VALUES (?1, ?2)",
                &[id.into(), provider_search_text(p).into()],
            )?;
        }
        Dialect::Postgres => {
            values.push(provider_search_text(p).into());
            db.execute(
                &format!(
                    "INSERT INTO providers ({PROVIDER_COLUMNS}, search_text) VALUES (?1, ?2, ?3, \
                     ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (id) DO UPDATE SET {updates}, \
                     search_text = excluded.search_text"
                ),
                &values,
            )?;
        }
    }
    Ok(())
}

pub(super) fn import_providers(
    db: &mut dyn Db,
    providers: &[Provider],
) -> Result<usize, StoreError> {
    for provider in providers {
        check_provider(provider)?;
    }
    check_unique_ids("provider", providers.iter().map(|p| p.id.as_str()))?;
    for provider in providers {
        upsert_provider(db, provider)?;
    }
    Ok(providers.len())
}

pub(super) fn search_providers(
    db: &mut dyn Db,
    query: &str,
    limit: usize,
) -> Result<Vec<Provider>, StoreError> {
    keyword_search(db, "providers", PROVIDER_COLUMNS, "name", query, limit)?
        .iter()
        .map(|row| {
            let mut r = RowReader::new(row_id(row), row);
            let id = r.text("id")?;
            let name = r.text("name")?;
            let services = r.text("services")?;
            let area = r.text("area")?;
            let phone = r.text("phone")?;
            let address = r.text("address")?;
            let tags = read_tags(&id, &r.text("tags")?)?;
            let added_from = r.opt_parse("added_from")?;
            Ok(Provider {
                id,
                name,
                services,
                area,
                phone,
                address,
                tags,
                added_from,
            })
        })
        .collect()
}

pub(super) fn add_provider_from_work_order(
    db: &mut dyn Db,
    id: &WorkOrderId,
    provider: &Provider,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let actor = checked_text("actor", actor, MAX_NAME_CHARS)?;
    check_provider(provider)?;
    require_file(db, id)?;
    let mut provider = provider.clone();
    provider.added_from = Some(id.clone());
    upsert_provider(db, &provider)?;
    event(
        db,
        id,
        at,
        &actor,
        EventKind::ProviderAdded,
        json!({ "provider": provider.id.trim(), "name": provider.name.trim() }),
    )
}

// ---- retention -------------------------------------------------------------------------

pub(super) fn purge_older_than(
    db: &mut dyn Db,
    cutoff: DateTime<Utc>,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<PurgeReport, StoreError> {
    let actor = checked_text("actor", actor, MAX_NAME_CHARS)?;
    let cutoff_value: Value = cutoff.into();
    let due = std::slice::from_ref(&cutoff_value);
    let mut orders = Vec::new();
    let mut recordings = Vec::new();
    for row in db.query(
        "SELECT id, recording_path FROM work_orders WHERE offered_at < ?1 ORDER BY id",
        due,
    )? {
        let mut r = RowReader::new(row_id(&row), &row);
        orders.push(r.parse::<WorkOrderId>("id")?);
        recordings.extend(r.opt_text("recording_path")?);
    }
    for row in db.query(
        "SELECT recording_path FROM work_order_calls WHERE recording_path IS NOT NULL \
         AND work_order IN (SELECT id FROM work_orders WHERE offered_at < ?1) \
         ORDER BY work_order, call_id",
        due,
    )? {
        recordings.extend(RowReader::new("(purge)", &row).opt_text("recording_path")?);
    }
    for table in [
        "work_order_calls",
        "work_order_events",
        "follow_up_tasks",
        "forbidden_phrase_hits",
    ] {
        db.execute(
            &format!(
                "DELETE FROM {table} WHERE work_order IN \
                 (SELECT id FROM work_orders WHERE offered_at < ?1)"
            ),
            due,
        )?;
    }
    db.execute(
        "UPDATE providers SET added_from = NULL WHERE added_from IN \
         (SELECT id FROM work_orders WHERE offered_at < ?1)",
        due,
    )?;
    db.execute("DELETE FROM work_orders WHERE offered_at < ?1", due)?;
    let ids: Vec<&str> = orders.iter().map(WorkOrderId::as_str).collect();
    db.execute(
        "INSERT INTO purge_log (at, actor, cutoff, orders, recordings) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        &[
            at.into(),
            actor.as_str().into(),
            cutoff_value.clone(),
            json!(ids).to_string().into(),
            json!(recordings).to_string().into(),
        ],
    )?;
    Ok(PurgeReport {
        at,
        actor,
        cutoff,
        orders,
        recordings,
    })
}

pub(super) fn purge_log(db: &mut dyn Db) -> Result<Vec<PurgeReport>, StoreError> {
    db.query(
        "SELECT at, actor, cutoff, orders, recordings FROM purge_log ORDER BY seq",
        &[],
    )?
    .iter()
    .map(|row| {
        let mut r = RowReader::new("(purge log)", row);
        let at = r.time("at")?;
        let actor = r.text("actor")?;
        let cutoff = r.time("cutoff")?;
        let orders_text = r.text("orders")?;
        let recordings_text = r.text("recordings")?;
        let corrupt = |column: &'static str, value: &str| StoreError::Corrupt {
            id: "(purge log)".into(),
            column,
            value: value.to_owned(),
        };
        let ids: Vec<String> =
            serde_json::from_str(&orders_text).map_err(|_| corrupt("orders", &orders_text))?;
        let orders = ids
            .iter()
            .map(|id| id.parse().map_err(|_| corrupt("orders", id)))
            .collect::<Result<_, _>>()?;
        let recordings = serde_json::from_str(&recordings_text)
            .map_err(|_| corrupt("recordings", &recordings_text))?;
        Ok(PurgeReport {
            at,
            actor,
            cutoff,
            orders,
            recordings,
        })
    })
    .collect()
}
