//! The callback routes (R16–R20), behind a bearer token ([`auth::authenticate`]):
//!
//! | route | what |
//! |---|---|
//! | `POST /callbacks` | a callback on a work order: `{"work_order", "number", "reason", "earliest"?, "latest"?, "owner"?, "queue"?}` |
//! | `GET /callbacks?due=true&overdue=true&owner=1001&limit=50` | open callbacks, most urgent first with `due` or `overdue` |
//! | `PATCH /callbacks/{id}` | a new window: `{"earliest", "latest"}` |
//! | `DELETE /callbacks/{id}` | cancel (a connected callback is never cut: 409) |
//!
//! Supervisors may do everything; an agent creates callbacks it owns and sees and
//! changes only its own; QA may not. Requests are validated by
//! [`crate::callbacks::api`] before the switch sees them, so a refused request stores
//! nothing; refusals are JSON like every API error. Numbers in answers are masked
//! (R12).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};

use super::SwitchClient;
use super::auth::{self, Authenticator, Principal, Role};
use super::error::{ApiError, ApiJson, ApiQuery, ErrorBody, ErrorDetail};
use crate::callbacks::api::{
    CallbackView, CreateCallbackRequest, ListCallbacksQuery, MAX_LIST_LIMIT, RescheduleRequest,
    parse_task_id,
};
use crate::callbacks::{CallbackError, ListFilter, TaskId};
use crate::config::Config;
use crate::switch::{CallbackCommand, CallbackReply, Command, Reply};
use crate::workorder::WorkOrderStore;

#[derive(Clone)]
struct CallbackApi {
    config: Arc<Config>,
    switch: SwitchClient,
    store: Arc<dyn WorkOrderStore>,
}

/// The callback routes, each behind a token.
pub fn router(
    config: Arc<Config>,
    switch: SwitchClient,
    store: Arc<dyn WorkOrderStore>,
    authenticator: Arc<Authenticator>,
) -> Router {
    let body_limit = config.access.max_body_bytes;
    Router::new()
        .route("/callbacks", get(list).post(create))
        .route("/callbacks/{id}", patch(reschedule).delete(cancel))
        .route_layer(middleware::from_fn_with_state(
            authenticator,
            auth::authenticate,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(CallbackApi {
            config,
            switch,
            store,
        })
}

/// A refused callback request, as JSON with the error's own status.
fn refused(error: &CallbackError) -> Response {
    let status =
        StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::CONFLICT => "invalid_transition",
        _ => "invalid_input",
    };
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.to_owned(),
            message: error.to_string(),
        },
    };
    (status, Json(body)).into_response()
}

fn stopping() -> Response {
    ApiError::StoreUnavailable("the engine is stopping".into()).into_response()
}

fn disabled() -> Response {
    ApiError::StoreUnavailable("callbacks are off: no callback store is open".into())
        .into_response()
}

/// The reply to a command on one task.
fn task_reply(reply: Option<Reply>, created: bool) -> Response {
    match reply {
        Some(Reply::Callbacks(CallbackReply::Task(result))) => match *result {
            Ok(view) => {
                let status = if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                (status, Json(view)).into_response()
            }
            Err(e) => refused(&e),
        },
        Some(Reply::Callbacks(CallbackReply::Disabled)) => disabled(),
        _ => stopping(),
    }
}

async fn create(
    State(api): State<CallbackApi>,
    principal: Principal,
    ApiJson(mut request): ApiJson<CreateCallbackRequest>,
) -> Response {
    if let Err(e) = principal.require(&[Role::Supervisor, Role::Agent], "create callbacks") {
        return e.into_response();
    }
    if principal.role == Role::Agent {
        let own = principal.agent.clone();
        match (&request.owner, &own) {
            (None, _) => request.owner = own,
            (Some(owner), Some(agent)) if owner.trim() == agent => {}
            _ => {
                return ApiError::forbidden("an agent creates callbacks it owns").into_response();
            }
        }
    }
    let id = match request.work_order_id() {
        Ok(id) => id,
        Err(e) => return refused(&e),
    };
    let exists = match api.store.get(&id).await {
        Ok(order) => order.is_some(),
        Err(e) => return ApiError::StoreUnavailable(e.to_string()).into_response(),
    };
    let new = match request.validate(
        chrono::Utc::now(),
        &api.config.callbacks,
        &api.config.acd.default_queue,
        |_| exists,
    ) {
        Ok(new) => new,
        Err(e) => return refused(&e),
    };
    let reply = api
        .switch
        .ask(Command::Callbacks(CallbackCommand::Create(new)))
        .await;
    task_reply(reply, true)
}

async fn list(
    State(api): State<CallbackApi>,
    principal: Principal,
    ApiQuery(query): ApiQuery<ListCallbacksQuery>,
) -> Response {
    if let Err(e) = principal.require(&[Role::Supervisor, Role::Agent], "list callbacks") {
        return e.into_response();
    }
    let mut filter = match query.to_filter() {
        Ok(filter) => filter,
        Err(e) => return refused(&e),
    };
    if principal.role == Role::Agent {
        filter.owner = principal.agent.clone();
    }
    match api.list(filter).await {
        Ok(tasks) => Json(serde_json::json!({ "callbacks": tasks })).into_response(),
        Err(response) => response,
    }
}

impl CallbackApi {
    async fn list(&self, filter: ListFilter) -> Result<Vec<CallbackView>, Response> {
        match self
            .switch
            .ask(Command::Callbacks(CallbackCommand::List(filter)))
            .await
        {
            Some(Reply::Callbacks(CallbackReply::List(tasks))) => Ok(tasks),
            Some(Reply::Callbacks(CallbackReply::Disabled)) => Err(disabled()),
            _ => Err(stopping()),
        }
    }

    /// The task id from a path, refused for an agent who does not own the task (as if it
    /// did not exist, so ids cannot be probed).
    async fn task_for(&self, principal: &Principal, text: &str) -> Result<TaskId, Response> {
        principal
            .require(&[Role::Supervisor, Role::Agent], "change callbacks")
            .map_err(IntoResponse::into_response)?;
        let id = parse_task_id(text).map_err(|e| refused(&e))?;
        if principal.role == Role::Agent {
            let own = self
                .list(ListFilter {
                    owner: principal.agent.clone(),
                    limit: MAX_LIST_LIMIT,
                    ..ListFilter::default()
                })
                .await?;
            if !own.iter().any(|view| view.id == id.to_string()) {
                return Err(refused(&CallbackError::UnknownTask(id)));
            }
        }
        Ok(id)
    }
}

async fn reschedule(
    State(api): State<CallbackApi>,
    principal: Principal,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<RescheduleRequest>,
) -> Response {
    let id = match api.task_for(&principal, &id).await {
        Ok(id) => id,
        Err(response) => return response,
    };
    let window = match request.validate() {
        Ok(window) => window,
        Err(e) => return refused(&e),
    };
    let reply = api
        .switch
        .ask(Command::Callbacks(CallbackCommand::Reschedule {
            id,
            window,
        }))
        .await;
    task_reply(reply, false)
}

async fn cancel(
    State(api): State<CallbackApi>,
    principal: Principal,
    Path(id): Path<String>,
) -> Response {
    let id = match api.task_for(&principal, &id).await {
        Ok(id) => id,
        Err(response) => return response,
    };
    let reply = api
        .switch
        .ask(Command::Callbacks(CallbackCommand::Cancel(id)))
        .await;
    task_reply(reply, false)
}
