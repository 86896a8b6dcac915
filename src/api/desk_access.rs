//! Who may read and change which work order, and the desk's shared state: the rules
//! every desk route applies (R12: agents see their own orders, QA the sampled ones,
//! supervisors everything; every full-number read and download audited first).

use std::sync::Arc;

use chrono::Utc;

use super::auth::{Principal, Role};
use super::error::ApiError;
use crate::privacy::mask_number;
use crate::qa::PhraseChecker;
use crate::workorder::{
    AuditedRead, Category, ReadAuditEntry, StoreError, WorkOrder, WorkOrderFile, WorkOrderId,
    WorkOrderStore,
};

/// What every desk handler shares.
#[derive(Clone)]
pub struct Desk {
    pub store: Arc<dyn WorkOrderStore>,
    pub phrases: Arc<PhraseChecker>,
}

/// The desk routes, authenticated, plus the open `/openapi.json` that describes them.
/// Whether `principal` may read `file` (R12, R15, R23):
/// - a supervisor reads every order;
/// - an agent, the orders they own (R7) and those with a call they took, except
///   complaints about the hotline or its agents (R15: [`Category::HIDDEN_FROM_AGENTS`]);
/// - QA, the orders picked for review, complaints included.
pub fn may_read(principal: &Principal, file: &WorkOrderFile) -> bool {
    match principal.role {
        Role::Supervisor => true,
        Role::Agent => is_agents_own(principal, file) && !hidden_from_agents(file),
        Role::Qa => file.matter.qa.is_some(),
    }
}

/// A complaint about the hotline, its agents or a referred enterprise (R15): for
/// supervisors (and QA when sampled), never for agents.
pub fn hidden_from_agents(file: &WorkOrderFile) -> bool {
    !Category::is_visible_to_agents(file.order.category)
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
            _ if hidden_from_agents(&file) => {
                "complaints about the hotline or its agents are for supervisors only (R15)"
            }
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
