//! The desk API: what agents, supervisors and QA use while they work (R12–R15, R21,
//! R23–R26, R28). This module assembles it: the shared state, the rules about who may
//! see which order, masking, the read-audit hook, and the router (every route
//! documented in `/openapi.json`, all behind [`auth::authenticate`] and a body limit).
//! The routes themselves are in [`super::workorders`], [`super::recordings`],
//! [`super::knowledge`] and [`super::audit`]. I/O only through the work-order store.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::get;
use chrono::Utc;
use utoipa_axum::router::OpenApiRouter;

use super::auth::{self, Authenticator, Principal, Role};
use super::error::{self, ApiError};
use crate::config::Config;
use crate::privacy::mask_number;
use crate::qa::PhraseChecker;
use crate::workorder::{
    AuditedRead, ReadAuditEntry, StoreError, WorkOrder, WorkOrderFile, WorkOrderId, WorkOrderStore,
};

/// What every desk handler shares.
#[derive(Clone)]
pub struct Desk {
    pub store: Arc<dyn WorkOrderStore>,
    pub phrases: Arc<PhraseChecker>,
}

/// The desk routes, authenticated, plus the open `/openapi.json` that describes them.
pub fn router(
    config: &Config,
    store: Arc<dyn WorkOrderStore>,
    authenticator: Arc<Authenticator>,
) -> Router {
    let desk = Desk {
        store,
        phrases: Arc::new(PhraseChecker::new(&config.qa.forbidden_phrases)),
    };
    let (routes, document) = openapi_router().split_for_parts();
    let document = Arc::new(document);
    routes
        .layer(middleware::from_fn_with_state(
            authenticator,
            auth::authenticate,
        ))
        .layer(DefaultBodyLimit::max(config.access.max_body_bytes))
        .with_state(desk)
        .route(
            "/openapi.json",
            get(move || {
                let document = Arc::clone(&document);
                async move { Json(document.as_ref().clone()) }
            }),
        )
        .fallback(error::no_such_route)
        .method_not_allowed_fallback(error::method_not_allowed)
}

/// Every desk route with its OpenAPI description: the one list both the router and
/// `/openapi.json` are made from, so they cannot disagree.
pub fn openapi_router() -> OpenApiRouter<Desk> {
    OpenApiRouter::with_openapi(super::openapi::base_document())
        .merge(super::workorders::routes())
        .merge(super::recordings::routes())
        .merge(super::knowledge::routes())
        .merge(super::audit::routes())
}

/// Whether `principal` may read `file` (R12, R15, R23):
/// - a supervisor reads every order;
/// - an agent, the orders they own (R7) and those with a call they took;
/// - QA, the orders picked for review.
pub fn may_read(principal: &Principal, file: &WorkOrderFile) -> bool {
    match principal.role {
        Role::Supervisor => true,
        Role::Agent => is_agents_own(principal, file),
        Role::Qa => file.matter.qa.is_some(),
    }
}

/// Whether `principal` may change `file`: supervisors any order, agents their own;
/// QA reviews and does not write.
pub fn may_change(principal: &Principal, file: &WorkOrderFile) -> bool {
    match principal.role {
        Role::Supervisor => true,
        Role::Agent => is_agents_own(principal, file),
        Role::Qa => false,
    }
}

fn is_agents_own(principal: &Principal, file: &WorkOrderFile) -> bool {
    let Some(me) = principal.agent.as_deref() else {
        return false;
    };
    file.order.agent.as_deref() == Some(me)
        || file.calls.iter().any(|c| c.agent.as_deref() == Some(me))
}

/// Loads an order `principal` may read: 404 if there is none, 403 if it is not theirs.
pub async fn readable_file(
    desk: &Desk,
    principal: &Principal,
    id: &WorkOrderId,
) -> Result<WorkOrderFile, ApiError> {
    let file = desk
        .store
        .get_file(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no work order {id}")))?;
    if !may_read(principal, &file) {
        return Err(ApiError::forbidden(match principal.role {
            Role::Qa => "QA reads only the work orders sampled for review (R23)",
            _ => "an agent reads only their own work orders (R12)",
        }));
    }
    Ok(file)
}

/// Loads an order `principal` may change: as [`readable_file`], and 403 for QA or
/// another agent's order.
pub async fn changeable_file(
    desk: &Desk,
    principal: &Principal,
    id: &WorkOrderId,
) -> Result<WorkOrderFile, ApiError> {
    principal.require(&[Role::Agent, Role::Supervisor], "change work orders")?;
    let file = readable_file(desk, principal, id).await?;
    if !may_change(principal, &file) {
        return Err(ApiError::forbidden(
            "an agent changes only their own work orders",
        ));
    }
    Ok(file)
}

/// Parses a work-order id from a path: 404 for anything that cannot be one.
pub fn parse_id(text: &str) -> Result<WorkOrderId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::NotFound(format!("no work order {text:?}")))
}

/// Whether full numbers go into this answer: only a supervisor who asks explicitly
/// (`?unmasked=true`); anyone else asking is refused (R12).
pub fn unmask_allowed(principal: &Principal, asked: bool) -> Result<bool, ApiError> {
    if !asked {
        return Ok(false);
    }
    principal.require(&[Role::Supervisor], "see full caller numbers")?;
    Ok(true)
}

/// A number as the answer may show it.
pub fn shown_number(number: &str, unmasked: bool) -> String {
    if unmasked {
        number.to_owned()
    } else {
        mask_number(number)
    }
}

/// Writes a read-audit entry (R12) before the read is answered: if it cannot be
/// written, the read is refused (503), so no full number or recording leaves
/// unrecorded.
pub async fn audit_read(
    desk: &Desk,
    principal: &Principal,
    read: AuditedRead,
    order: &WorkOrder,
    target: &str,
) -> Result<(), ApiError> {
    let entry = ReadAuditEntry {
        at: Utc::now(),
        actor: principal.name.clone(),
        read,
        work_order: Some(order.id.clone()),
        target: target.to_owned(),
    };
    desk.store.append_read_audit(&entry).await?;
    Ok(())
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(id) => ApiError::NotFound(format!("no work order {id}")),
            StoreError::InvalidTransition { id, refused } => {
                ApiError::InvalidTransition(format!("work order {id}: {refused}"))
            }
            StoreError::Invalid(reason) => ApiError::InvalidInput(reason),
            StoreError::Duplicate(id) => {
                ApiError::InvalidInput(format!("work order {id} already exists"))
            }
            e if e.is_transient() => ApiError::StoreUnavailable(e.to_string()),
            e => ApiError::Internal(e.to_string()),
        }
    }
}
