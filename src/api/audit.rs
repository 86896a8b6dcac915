//! The audit log (R12), for supervisors: who read which full caller number or
//! recording, and when, and which supervisor actions were taken on agents from the
//! wallboard (issue 14). Read-only: the API has no route that changes or deletes an
//! entry, and the store offers none. I/O only through the store.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Principal, Role};
use super::desk_access::Desk;
use super::error::{ApiError, ApiQuery, ErrorBody};
use crate::workorder::ReadAuditEntry;

pub(super) fn routes() -> OpenApiRouter<Desk> {
    OpenApiRouter::new().routes(routes!(read_audit_log))
}

const MAX_ENTRIES: usize = 10_000;

/// Which entries.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Entries at or after this time (RFC 3339); default: all.
    pub since: Option<DateTime<Utc>>,
    /// At most this many, 1–10000 (default 1000).
    pub limit: Option<usize>,
}

/// One read of a full number or a recording.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryView {
    pub at: DateTime<Utc>,
    /// The token's name from config (`api.token` for the legacy token).
    pub actor: String,
    /// `full_number` or `recording`; for a wallboard action on an agent, `agent_pause`
    /// or `agent_logout`.
    pub read: String,
    pub work_order: Option<String>,
    /// What exactly: `caller`, the recording's path, or `agent 1001`.
    pub target: String,
}

impl From<ReadAuditEntry> for AuditEntryView {
    fn from(e: ReadAuditEntry) -> Self {
        AuditEntryView {
            at: e.at,
            actor: e.actor,
            read: e.read.to_string(),
            work_order: e.work_order.map(|id| id.to_string()),
            target: e.target,
        }
    }
}

/// The read-audit log, oldest first (supervisors only).
#[utoipa::path(
    get, path = "/audit-log", tag = "audit",
    params(AuditParams),
    responses(
        (status = 200, body = Vec<AuditEntryView>),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "agents and QA", body = ErrorBody),
    ),
)]
async fn read_audit_log(
    State(desk): State<Desk>,
    principal: Principal,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Json<Vec<AuditEntryView>>, ApiError> {
    principal.require(&[Role::Supervisor], "read the audit log")?;
    let limit = params.limit.unwrap_or(1_000);
    if !(1..=MAX_ENTRIES).contains(&limit) {
        return Err(ApiError::InvalidQuery(format!(
            "limit {limit} is outside 1..={MAX_ENTRIES}"
        )));
    }
    let since = params.since.unwrap_or(DateTime::<Utc>::MIN_UTC);
    let entries = desk.store.read_audit_log(since, limit).await?;
    Ok(Json(
        entries.into_iter().map(AuditEntryView::from).collect(),
    ))
}
