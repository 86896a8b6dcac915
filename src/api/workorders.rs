//! Work-order routes (R12, R14, R21, R24–R26, R28): list with filters and cursor
//! pagination, read, update fields, change status, close, notes, refer an enterprise
//! and record its evaluation, the caller's ratings, and the audit trail.
//!
//! Agents see and change their own orders, QA reads the sampled ones, supervisors do
//! everything ([`super::desk_access::may_read`]). Caller numbers are masked unless a
//! supervisor asks for them with `?unmasked=true`, and then every order shown in full
//! is written to the read-audit log first. What agents write is checked for forbidden
//! phrases (R28): hits are stored and the order flagged for QA; the text is stored as
//! written. The lifecycle rules are the store's ([`crate::workorder::lifecycle`]): a
//! refused transition is 409 `invalid_transition` and changes nothing.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Principal, Role};
use super::desk_access::{
    Desk, audit_read, changeable_file, hidden_from_agents, parse_id, readable_file, shown_number,
    unmask_allowed,
};
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use crate::workorder::{
    AuditedRead, CallRecord, CallerRating, Category, DetailsUpdate, EnterpriseEvaluation,
    ForbiddenPhraseHit, ListQuery, RatingTarget, Satisfaction, Status, WorkOrder, WorkOrderEvent,
    WorkOrderFile, WorkOrderId,
};

pub(super) fn routes() -> OpenApiRouter<Desk> {
    OpenApiRouter::new()
        .routes(routes!(list_work_orders))
        .routes(routes!(get_work_order, update_work_order))
        .routes(routes!(change_status))
        .routes(routes!(close_work_order))
        .routes(routes!(add_note))
        .routes(routes!(refer_enterprise))
        .routes(routes!(evaluate_enterprise))
        .routes(routes!(rate))
        .routes(routes!(list_events))
}

/// The most a page may hold; also the store's limit.
const MAX_PAGE: usize = 1_000;

// ---- answers ---------------------------------------------------------------------------

/// A work order as lists show it: the first call and the lifecycle.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkOrderSummary {
    pub id: String,
    /// `accepted`, `transferred`, `follow_up` or `closed` (R21).
    pub status: String,
    /// R1/R2 category, e.g. `consultation`, `complaint`; absent until set.
    pub category: Option<String>,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// Masked (`138****5678` style) unless a supervisor asked for `unmasked=true`.
    pub caller: String,
    /// Masked like `caller`: on an outbound call it is the caller's number.
    pub callee: String,
    pub offered_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub connected_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub queue: Option<String>,
    /// The owner agent's number (R7).
    pub agent: Option<String>,
    /// E.g. `answered`, `abandoned/caller_cancelled`.
    pub outcome: Option<String>,
    pub hangup_side: Option<String>,
    /// Whether the first call has a recording (`GET /work-orders/{id}/recording`).
    pub has_recording: bool,
}

impl WorkOrderSummary {
    fn of(order: &WorkOrder, unmasked: bool) -> Self {
        WorkOrderSummary {
            id: order.id.to_string(),
            status: order.status.to_string(),
            category: order.category.map(|c| c.to_string()),
            direction: order.direction.to_string(),
            caller: shown_number(&order.caller, unmasked),
            callee: shown_number(&order.callee, unmasked),
            offered_at: order.offered_at,
            answered_at: order.answered_at,
            connected_at: order.connected_at,
            ended_at: order.ended_at,
            queue: order.queue.clone(),
            agent: order.agent.clone(),
            outcome: order.outcome.map(|o| o.to_string()),
            hangup_side: order.hangup_side.map(|s| s.to_string()),
            has_recording: order.recording_path.is_some(),
        }
    }
}

/// One call of a matter (R22).
#[derive(Debug, Serialize, ToSchema)]
pub struct CallView {
    /// Its place in `calls`: `GET /work-orders/{id}/recording?call=N`.
    pub index: usize,
    /// `inbound`, `callback` or `enterprise`.
    pub kind: String,
    pub direction: String,
    pub caller: String,
    pub callee: String,
    pub offered_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    pub agent: Option<String>,
    pub has_recording: bool,
}

impl CallView {
    fn of(index: usize, call: &CallRecord, unmasked: bool) -> Self {
        CallView {
            index,
            kind: call.kind.to_string(),
            direction: call.direction.to_string(),
            caller: shown_number(&call.caller, unmasked),
            callee: shown_number(&call.callee, unmasked),
            offered_at: call.offered_at,
            answered_at: call.answered_at,
            ended_at: call.ended_at,
            outcome: call.outcome.map(|o| o.to_string()),
            agent: call.agent.clone(),
            has_recording: call.recording_path.is_some(),
        }
    }
}

/// The referred enterprise and the caller's evaluation of it (R14, R25).
#[derive(Debug, Serialize, ToSchema)]
pub struct ReferralView {
    pub enterprise: String,
    pub referred_at: DateTime<Utc>,
    /// `{attitude, efficiency, quality}`, each `satisfied`, `basically_satisfied` or
    /// `dissatisfied`; absent until the caller evaluated.
    pub evaluation: Option<EvaluationBody>,
}

/// A follow-up call due on the order (R17–R20).
#[derive(Debug, Serialize, ToSchema)]
pub struct FollowUpView {
    pub number: u32,
    pub kind: String,
    pub due_from: DateTime<Utc>,
    pub due_until: DateTime<Utc>,
    pub note: String,
    pub done_at: Option<DateTime<Utc>>,
}

/// A forbidden phrase found in a field an agent wrote (R28).
#[derive(Debug, Serialize, ToSchema)]
pub struct PhraseHitView {
    pub phrase: String,
    /// `matter`, `answer` or `note`.
    pub field: String,
}

/// Why the order is in QA review (R23).
#[derive(Debug, Serialize, ToSchema)]
pub struct QaView {
    pub selected_at: DateTime<Utc>,
    /// `random sample` or `forbidden phrase`.
    pub reason: String,
}

/// A whole work order: the first call, the matter, every call, follow-ups and the
/// forbidden-phrase hits.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkOrderDetail {
    pub order: WorkOrderSummary,
    /// What the caller asked or reported (诉求).
    pub matter: Option<String>,
    /// The answer given (答复).
    pub answer: Option<String>,
    /// Where it was transferred (R14).
    pub handling_unit: Option<String>,
    /// R11.
    pub urgent: bool,
    pub referral: Option<ReferralView>,
    /// The caller's rating of the service (R24).
    pub service_rating: Option<String>,
    /// The caller's rating of the handling unit (R26).
    pub unit_rating: Option<String>,
    pub qa: Option<QaView>,
    /// An open follow-up is past its latest time (R20).
    pub overdue: bool,
    pub calls: Vec<CallView>,
    pub follow_ups: Vec<FollowUpView>,
    pub forbidden_phrases: Vec<PhraseHitView>,
}

impl WorkOrderDetail {
    fn of(file: &WorkOrderFile, unmasked: bool, now: DateTime<Utc>) -> Self {
        let matter = &file.matter;
        WorkOrderDetail {
            order: WorkOrderSummary::of(&file.order, unmasked),
            matter: matter.matter.clone(),
            answer: matter.answer.clone(),
            handling_unit: matter.handling_unit.clone(),
            urgent: matter.urgent,
            referral: matter.referral.as_ref().map(|r| ReferralView {
                enterprise: r.enterprise.clone(),
                referred_at: r.referred_at,
                evaluation: r.evaluation.map(EvaluationBody::from),
            }),
            service_rating: matter.service_rating.map(|s| s.to_string()),
            unit_rating: matter.unit_rating.map(|s| s.to_string()),
            qa: matter.qa.as_ref().map(|q| QaView {
                selected_at: q.selected_at,
                reason: q.reason.clone(),
            }),
            overdue: file.is_overdue(now),
            calls: file
                .calls
                .iter()
                .enumerate()
                .map(|(i, c)| CallView::of(i, c, unmasked))
                .collect(),
            follow_ups: file
                .follow_ups
                .iter()
                .map(|f| FollowUpView {
                    number: f.number,
                    kind: f.task.kind.to_string(),
                    due_from: f.task.due_from,
                    due_until: f.task.due_until,
                    note: f.task.note.clone(),
                    done_at: f.done_at,
                })
                .collect(),
            forbidden_phrases: file
                .forbidden_hits
                .iter()
                .map(|h| PhraseHitView {
                    phrase: h.phrase.clone(),
                    field: h.field.clone(),
                })
                .collect(),
        }
    }
}

/// One page of orders.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkOrderPage {
    pub orders: Vec<WorkOrderSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The order after a change, and the forbidden phrases found in what was just
/// written (R28; empty when none, or when the writer is not an agent).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangedWorkOrder {
    /// The order as it now stands; `null` when an agent's change handed it to
    /// supervisors (see `handed_to_supervisors`).
    pub work_order: Option<WorkOrderDetail>,
    /// `true` when an agent filed the order as a complaint about the hotline or its
    /// agents (`service_complaint`, R15): the change is stored, and from now on only
    /// supervisors (and QA, when sampled) read the order.
    pub handed_to_supervisors: bool,
    pub forbidden_phrases_found: Vec<PhraseHitView>,
}

/// One entry of an order's audit trail (R21).
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub at: DateTime<Utc>,
    pub actor: String,
    /// E.g. `status_changed`, `field_updated`, `note`.
    pub kind: String,
    /// The change, as a JSON object.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl EventView {
    fn of(event: &WorkOrderEvent) -> Self {
        EventView {
            at: event.at,
            actor: event.actor.clone(),
            kind: event.kind.to_string(),
            detail: serde_json::from_str(&event.detail)
                .unwrap_or_else(|_| serde_json::Value::String(event.detail.clone())),
        }
    }
}

// ---- requests --------------------------------------------------------------------------

/// Filters for the list; all optional.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `accepted`, `transferred`, `follow_up` or `closed`.
    #[param(value_type = Option<String>)]
    pub status: Option<Status>,
    /// An R1/R2 category, e.g. `complaint`. Agents never get `service_complaint`
    /// orders (R15), and asking for them is 403.
    #[param(value_type = Option<String>)]
    pub category: Option<Category>,
    /// Owner agent number. An agent may only give their own.
    pub agent: Option<String>,
    /// First call offered at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// First call offered before (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// `true`: only orders with a follow-up past its latest time (R20).
    pub overdue: Option<bool>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1–1000 (default 50).
    pub limit: Option<usize>,
    /// Supervisors only: full caller numbers (each read is audited, R12).
    pub unmasked: Option<bool>,
}

/// `?unmasked=true` for supervisors.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReadParams {
    /// Supervisors only: full caller numbers (the read is audited, R12).
    pub unmasked: Option<bool>,
}

/// Fields to change; at least one. Absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DetailsRequest {
    /// What the caller asked or reported (checked for forbidden phrases, R28).
    pub matter: Option<String>,
    /// The answer given (checked for forbidden phrases, R28).
    pub answer: Option<String>,
    /// The unit the matter is transferred to (R14).
    pub handling_unit: Option<String>,
    /// An R1/R2 category, e.g. `consultation`.
    #[schema(value_type = Option<String>)]
    pub category: Option<Category>,
    /// R11.
    pub urgent: Option<bool>,
}

/// The status to move to (R21).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    /// `transferred`, `follow_up` or `closed`.
    #[schema(value_type = String, example = "follow_up")]
    pub status: Status,
}

/// A note for the audit trail.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    /// Checked for forbidden phrases (R28), stored as written.
    pub text: String,
}

/// The enterprise a service request is referred to (R14, R16).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReferralRequest {
    pub enterprise: String,
}

/// The caller's evaluation of the referred enterprise (R25): each `satisfied`,
/// `basically_satisfied` or `dissatisfied`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluationBody {
    #[schema(value_type = String, example = "satisfied")]
    pub attitude: Satisfaction,
    #[schema(value_type = String, example = "satisfied")]
    pub efficiency: Satisfaction,
    #[schema(value_type = String, example = "basically_satisfied")]
    pub quality: Satisfaction,
}

impl From<EnterpriseEvaluation> for EvaluationBody {
    fn from(e: EnterpriseEvaluation) -> Self {
        EvaluationBody {
            attitude: e.attitude,
            efficiency: e.efficiency,
            quality: e.quality,
        }
    }
}

/// The caller's rating of the service (R24) or of the handling unit (R26).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RatingRequest {
    /// `service` or `handling_unit`.
    #[schema(value_type = String, example = "service")]
    pub target: RatingTarget,
    /// `satisfied`, `basically_satisfied` or `dissatisfied`.
    #[schema(value_type = String, example = "satisfied")]
    pub score: Satisfaction,
}

// ---- handlers --------------------------------------------------------------------------

/// List work orders, newest first, one page at a time.
///
/// Agents get their own orders only, QA the orders sampled for review (R23).
#[utoipa::path(
    get, path = "/work-orders", tag = "work orders",
    params(ListParams),
    responses(
        (status = 200, body = WorkOrderPage),
        (status = 400, description = "a filter that does not parse", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "an agent listing another agent's orders, or unmasked numbers for a role other than supervisor", body = ErrorBody),
    ),
)]
async fn list_work_orders(
    State(desk): State<Desk>,
    principal: Principal,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<WorkOrderPage>, ApiError> {
    let unmasked = unmask_allowed(&principal, params.unmasked == Some(true))?;
    let limit = params.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::InvalidQuery(format!(
            "limit {limit} is outside 1..={MAX_PAGE}"
        )));
    }
    let mut query = ListQuery {
        status: params.status,
        category: params.category,
        agent: params.agent,
        offered_from: params.from,
        offered_until: params.until,
        overdue_at: (params.overdue == Some(true)).then(Utc::now),
        qa_selected: None,
        after: params.cursor,
        limit,
        exclude_categories: Vec::new(),
    };
    match principal.role {
        Role::Supervisor => {}
        Role::Agent => {
            let me = principal.agent.clone();
            if query.agent.is_some() && query.agent != me {
                return Err(ApiError::forbidden(
                    "an agent lists only their own work orders",
                ));
            }
            if !Category::is_visible_to_agents(query.category) {
                return Err(ApiError::forbidden(
                    "complaints about the hotline or its agents are for supervisors only (R15)",
                ));
            }
            query.agent = me;
            query.exclude_categories = Category::HIDDEN_FROM_AGENTS.to_vec();
        }
        Role::Qa => query.qa_selected = Some(true),
    }
    let page = desk.store.list_orders(&query).await?;
    if unmasked {
        for order in &page.orders {
            audit_read(&desk, &principal, AuditedRead::FullNumber, order, "caller").await?;
        }
    }
    Ok(Json(WorkOrderPage {
        orders: page
            .orders
            .iter()
            .map(|o| WorkOrderSummary::of(o, unmasked))
            .collect(),
        next_cursor: page.next,
    }))
}

/// Read one work order in full.
#[utoipa::path(
    get, path = "/work-orders/{id}", tag = "work orders",
    params(("id" = String, Path, description = "work order id"), ReadParams),
    responses(
        (status = 200, body = WorkOrderDetail),
        (status = 401, body = ErrorBody),
        (status = 403, description = "not this role's order, or unmasked numbers for a role other than supervisor", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
)]
async fn get_work_order(
    State(desk): State<Desk>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<ReadParams>,
) -> Result<Json<WorkOrderDetail>, ApiError> {
    let unmasked = unmask_allowed(&principal, params.unmasked == Some(true))?;
    let id = parse_id(&id)?;
    let file = readable_file(&desk, &principal, &id).await?;
    if unmasked {
        audit_read(
            &desk,
            &principal,
            AuditedRead::FullNumber,
            &file.order,
            "caller",
        )
        .await?;
    }
    Ok(Json(WorkOrderDetail::of(&file, unmasked, Utc::now())))
}

/// Change the matter's fields (matter, answer, handling unit, category, urgent).
///
/// Agents' texts are checked for forbidden phrases (R28): hits are stored and the
/// order flagged for QA; the text is stored exactly as written.
#[utoipa::path(
    patch, path = "/work-orders/{id}", tag = "work orders",
    params(("id" = String, Path, description = "work order id")),
    request_body = DetailsRequest,
    responses(
        (status = 200, body = ChangedWorkOrder),
        (status = 400, description = "malformed JSON", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, description = "unknown field, wrong type, no field, or a value the store refuses", body = ErrorBody),
    ),
)]
async fn update_work_order(
    State(desk): State<Desk>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<DetailsRequest>,
) -> Result<Json<ChangedWorkOrder>, ApiError> {
    let id = parse_id(&id)?;
    changeable_file(&desk, &principal, &id).await?;
    let update = DetailsUpdate {
        matter: request.matter,
        answer: request.answer,
        handling_unit: request.handling_unit,
        category: request.category,
        urgent: request.urgent,
    };
    if update == DetailsUpdate::default() {
        return Err(ApiError::InvalidInput(
            "name at least one field to change".into(),
        ));
    }
    let now = Utc::now();
    desk.store
        .update_details(&id, &update, &principal.actor(), now)
        .await?;
    let mut texts = Vec::new();
    if let Some(matter) = &update.matter {
        texts.push(("matter", matter.as_str()));
    }
    if let Some(answer) = &update.answer {
        texts.push(("answer", answer.as_str()));
    }
    let found = check_phrases(&desk, &principal, &id, &texts).await?;
    changed(&desk, &principal, &id, found).await
}

/// Move the order along its lifecycle (R21); the store checks the transition.
#[utoipa::path(
    post, path = "/work-orders/{id}/status", tag = "work orders",
    params(("id" = String, Path, description = "work order id")),
    request_body = StatusRequest,
    responses(
        (status = 200, body = ChangedWorkOrder),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "the lifecycle refuses this change; the reason is in the message", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
)]
async fn change_status(
    State(desk): State<Desk>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<StatusRequest>,
) -> Result<Json<ChangedWorkOrder>, ApiError> {
    let id = parse_id(&id)?;
    changeable_file(&desk, &principal, &id).await?;
    desk.store
        .change_status(&id, request.status, &principal.actor(), Utc::now())
        .await?;
    changed(&desk, &principal, &id, Vec::new()).await
}

/// Close the order (R21): a service request only after the enterprise evaluation, a
/// consultation answered at once on the spot.
#[utoipa::path(
    post, path = "/work-orders/{id}/close", tag = "work orders",
    params(("id" = String, Path, description = "work order id")),
    responses(
        (status = 200, body = ChangedWorkOrder),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "a closing rule refuses it; the reason is in the message", body = ErrorBody),
    ),
)]
async fn close_work_order(
    State(desk): State<Desk>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ChangedWorkOrder>, ApiError> {
    let id = parse_id(&id)?;
    changeable_file(&desk, &principal, &id).await?;
    desk.store
        .change_status(&id, Status::Closed, &principal.actor(), Utc::now())
        .await?;
    changed(&desk, &principal, &id, Vec::new()).await
}

/// Add a note to the audit trail (checked for forbidden phrases, R28).
#[utoipa::path(
    post, path = "/work-orders/{id}/notes", tag = "work orders",
    params(("id" = String, Path, description = "work order id")),
    request_body = NoteRequest,
    responses(
        (status = 201, body = ChangedWorkOrder),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
)]
async fn add_note(
    State(desk): State<Desk>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<NoteRequest>,
) -> Result<(StatusCode, Json<ChangedWorkOrder>), ApiError> {
    let id = parse_id(&id)?;
    changeable_file(&desk, &principal, &id).await?;
    if request.text.trim().is_empty() {
        return Err(ApiError::InvalidInput("a note needs text".into()));
    }
    desk.store
        .add_note(&id, &request.text, &principal.actor(), Utc::now())
        .await?;
    let found = check_phrases(&desk, &principal, &id, &[("note", &request.text)]).await?;
    let answer = changed(&desk, &principal, &id, found).await?;
    Ok((StatusCode::CREATED, answer))
}

/// Refer the matter to an enterprise (a service request, R14, R16).
#[utoipa::path(
    post, path = "/work-orders/{id}/referral", tag = "work orders",
    params(("id" = String, Path, description = "work order id")),
    request_body = ReferralRequest,
    responses(
        (status = 200, body = ChangedWorkOrder),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
)]
async fn refer_enterprise(
    State(desk): State<Desk>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<ReferralRequest>,
) -> Result<Json<ChangedWorkOrder>, ApiError> {
    let id = parse_id(&id)?;
    changeable_file(&desk, &principal, &id).await?;
    desk.store
        .refer_enterprise(&id, &request.enterprise, &principal.actor(), Utc::now())
        .await?;
    changed(&desk, &principal, &id, Vec::new()).await
}

/// Record the caller's evaluation of the referred enterprise (R25).
#[utoipa::path(
    post, path = "/work-orders/{id}/enterprise-evaluation", tag = "work orders",
    params(("id" = String, Path, description = "work order id")),
    request_body = EvaluationBody,
    responses(
        (status = 200, body = ChangedWorkOrder),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "no enterprise referred, or a bad value", body = ErrorBody),
    ),
)]
async fn evaluate_enterprise(
    State(desk): State<Desk>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<EvaluationBody>,
) -> Result<Json<ChangedWorkOrder>, ApiError> {
    let id = parse_id(&id)?;
    changeable_file(&desk, &principal, &id).await?;
    let evaluation = EnterpriseEvaluation {
        attitude: request.attitude,
        efficiency: request.efficiency,
        quality: request.quality,
    };
    desk.store
        .evaluate_enterprise(&id, &evaluation, &principal.actor(), Utc::now())
        .await?;
    changed(&desk, &principal, &id, Vec::new()).await
}

/// Record the caller's rating of the service (R24) or of the handling unit (R26).
#[utoipa::path(
    post, path = "/work-orders/{id}/ratings", tag = "work orders",
    params(("id" = String, Path, description = "work order id")),
    request_body = RatingRequest,
    responses(
        (status = 200, body = ChangedWorkOrder),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
)]
async fn rate(
    State(desk): State<Desk>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<RatingRequest>,
) -> Result<Json<ChangedWorkOrder>, ApiError> {
    let id = parse_id(&id)?;
    changeable_file(&desk, &principal, &id).await?;
    let rating = CallerRating {
        target: request.target,
        score: request.score,
    };
    desk.store
        .rate(&id, &rating, &principal.actor(), Utc::now())
        .await?;
    changed(&desk, &principal, &id, Vec::new()).await
}

/// The order's audit trail, oldest first (R21): every change, who made it and when.
#[utoipa::path(
    get, path = "/work-orders/{id}/events", tag = "work orders",
    params(("id" = String, Path, description = "work order id")),
    responses(
        (status = 200, body = Vec<EventView>),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
)]
async fn list_events(
    State(desk): State<Desk>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<EventView>>, ApiError> {
    let id = parse_id(&id)?;
    readable_file(&desk, &principal, &id).await?;
    let events = desk.store.events(&id).await?;
    Ok(Json(events.iter().map(EventView::of).collect()))
}

/// Checks what an agent just wrote (R28). Hits are stored with the order, which the
/// store then flags for QA. Supervisors' texts are not checked: they quote agents.
async fn check_phrases(
    desk: &Desk,
    principal: &Principal,
    id: &WorkOrderId,
    texts: &[(&str, &str)],
) -> Result<Vec<PhraseHitView>, ApiError> {
    if principal.role != Role::Agent {
        return Ok(Vec::new());
    }
    let hits: Vec<ForbiddenPhraseHit> = texts
        .iter()
        .flat_map(|(field, text)| {
            desk.phrases
                .check(text)
                .into_iter()
                .map(|hit| ForbiddenPhraseHit {
                    phrase: hit.phrase,
                    field: (*field).to_owned(),
                })
        })
        .collect();
    if hits.is_empty() {
        return Ok(Vec::new());
    }
    desk.store
        .record_forbidden_phrases(id, &hits, &principal.actor(), Utc::now())
        .await?;
    Ok(hits
        .into_iter()
        .map(|h| PhraseHitView {
            phrase: h.phrase,
            field: h.field,
        })
        .collect())
}

/// The order as it now stands, masked, with the phrases just found.
async fn changed(
    desk: &Desk,
    principal: &Principal,
    id: &WorkOrderId,
    found: Vec<PhraseHitView>,
) -> Result<Json<ChangedWorkOrder>, ApiError> {
    let file = desk
        .store
        .get_file(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no work order {id}")))?;
    // An agent who has just filed the order as a complaint about the hotline (R15)
    // hands it over: the change stands, the order is no longer theirs to read.
    if principal.role == Role::Agent && hidden_from_agents(&file) {
        return Ok(Json(ChangedWorkOrder {
            work_order: None,
            handed_to_supervisors: true,
            forbidden_phrases_found: found,
        }));
    }
    let file = readable_file(desk, principal, id).await?;
    Ok(Json(ChangedWorkOrder {
        work_order: Some(WorkOrderDetail::of(&file, false, Utc::now())),
        handed_to_supervisors: false,
        forbidden_phrases_found: found,
    }))
}
