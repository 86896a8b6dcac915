//! The HTTP server (I/O): `/metrics` for Prometheus (R30) and `/health` for probes,
//! open; the agent and supervisor API, behind a bearer token (R12):
//!
//! | route | what |
//! |---|---|
//! | `GET /agents` | every agent (number, state, time in state, registered) and queue |
//! | `POST /agents/{id}/login`, `…/logout`, `…/pause`, `…/resume` | change an agent's state |
//! | `POST /calls` | place an outbound call: `{"agent": "1001", "destination": "sip:…"}` |
//! | `POST /reload` | re-read the agents file (as SIGHUP does) |
//!
//! Answers name agents by number only, never by name, and never carry a caller number.
//! Handlers reach the switch only through [`SwitchClient`]: a command and its reply.
//!
//! Callbacks (create, list, reschedule, cancel) are [`callbacks`]. The browser desk's
//! WebSocket, `GET /desk/ws`, is [`desk_ws`].
//!
//! The agent routes need a supervisor token ([`auth`]). The desk API (work orders,
//! recordings, knowledge base, read-audit log, `/openapi.json`) is [`desk`].

pub mod audit;
pub mod auth;
pub mod callbacks;
pub mod desk;
pub mod desk_access;
pub mod desk_page;
pub mod desk_ws;
pub mod error;
pub mod knowledge;
pub mod openapi;
pub mod phrases;
pub mod range;
pub mod recordings;
pub mod workorders;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::Config;
use crate::switch::{AgentAction, Command, CommandError, Reply};
use crate::workorder::WorkOrderStore;

/// A command for the switch and where its reply goes.
pub struct SwitchRequest {
    pub command: Command,
    pub reply: oneshot::Sender<Reply>,
}

/// The API's (and the runtime's) way to the switch task.
#[derive(Clone)]
pub struct SwitchClient {
    requests: mpsc::Sender<SwitchRequest>,
}

impl SwitchClient {
    /// A client and the receiving end the switch task reads. Policy when full: callers
    /// wait (they are HTTP handlers and signal handlers, never the call path).
    pub fn channel(capacity: usize) -> (SwitchClient, mpsc::Receiver<SwitchRequest>) {
        let (requests, receiver) = mpsc::channel(capacity);
        (SwitchClient { requests }, receiver)
    }

    /// Sends a command and waits for its reply; `None` once the switch has stopped.
    pub async fn ask(&self, command: Command) -> Option<Reply> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(SwitchRequest { command, reply })
            .await
            .ok()?;
        answer.await.ok()
    }

    /// Re-reads the agents file and the dialplan and hands them to the switch (R4): a
    /// bad file changes nothing and says why. Returns the dialplan version new calls take.
    pub async fn reload(&self, config: &Config) -> Result<u64, String> {
        let agents = config.load_agents().map_err(|e| e.to_string())?;
        let flow = crate::ivr::load_call_flow(config, &agents, crate::switch::ENGINE_PROMPTS)
            .map_err(|e| e.to_string())?;
        let reload = crate::switch::Reload { agents, flow };
        match self.ask(Command::Reload(Box::new(reload))).await {
            Some(Reply::Reload(Ok(version))) => Ok(version),
            Some(Reply::Reload(Err(e))) => Err(e.to_string()),
            _ => Err("the engine is stopping".to_owned()),
        }
    }
}

pub mod scripts;
pub mod wallboard;

#[derive(Clone)]
struct ApiState {
    metrics: PrometheusHandle,
    config: Arc<Config>,
    switch: SwitchClient,
    store: Arc<dyn WorkOrderStore>,
}

/// The routes, separate from serving so tests can drive them without a socket.
pub fn router(
    metrics: PrometheusHandle,
    config: Arc<Config>,
    switch: SwitchClient,
    store: Arc<dyn WorkOrderStore>,
    desks: crate::desk::Desks,
) -> Router {
    let authenticator = Arc::new(auth::Authenticator::from_config(&config));
    let desk_socket = desk_ws::routes(authenticator.clone(), desks);
    let desk = desk::router(&config, store.clone(), authenticator.clone());
    let wallboard_routes = wallboard::routes(
        wallboard::start(config.clone(), switch.clone()).with_audit(store.clone()),
    );
    let callback_routes = callbacks::router(
        config.clone(),
        switch.clone(),
        store.clone(),
        authenticator.clone(),
    );
    let script_routes = scripts::routes(switch.clone(), authenticator.clone());
    let state = ApiState {
        metrics,
        config,
        switch,
        store,
    };
    let protected = Router::new()
        .route("/agents", get(list_agents))
        .route("/agents/{id}/{action}", post(change_agent))
        .route("/calls", post(originate))
        .route("/reload", post(reload))
        .route_layer(middleware::from_fn_with_state(
            authenticator,
            auth::require_supervisor,
        ));
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/health", get(health))
        .merge(protected)
        .merge(wallboard_routes)
        .with_state(state)
        .merge(callback_routes)
        .merge(script_routes)
        .merge(desk_page::routes())
        .merge(desk)
        .merge(desk_socket)
        // Every route, not only the desk's, answers a wrong method in JSON.
        .method_not_allowed_fallback(error::method_not_allowed)
}

/// Probes: `ok` while the engine and its work-order store work; `503` with the store's
/// problem when it does not (a locked, unreachable or vanished store), as JSON like
/// every other refusal (code `store_unavailable`).
async fn health(State(state): State<ApiState>) -> Response {
    let store = state.store.health().await;
    if store.up {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        let problem = store.problem.unwrap_or_else(|| "unavailable".to_owned());
        error::ApiError::StoreUnavailable(format!(
            "work order store ({}) failing: {problem}",
            store.backend
        ))
        .into_response()
    }
}

async fn render_metrics(State(state): State<ApiState>) -> impl IntoResponse {
    // Histograms are summarised lazily; a scrape every few seconds keeps them bounded.
    state.metrics.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// The switch is gone: the engine is stopping.
fn stopping() -> Response {
    error::ApiError::Unavailable("the engine is stopping".into()).into_response()
}

/// A refusal from the switch as the API's JSON error: a bad destination is 422, a
/// stopping or full engine 503, anything else (an unknown agent included, as the agent
/// routes have always answered) 409 `conflict`.
fn command_refused(e: CommandError) -> Response {
    let message = e.to_string();
    match e {
        CommandError::BadDestination(_) => error::ApiError::InvalidInput(message),
        CommandError::ShuttingDown | CommandError::Overloaded => {
            error::ApiError::Unavailable(message)
        }
        _ => error::ApiError::Conflict(message),
    }
    .into_response()
}

async fn list_agents(State(state): State<ApiState>) -> Response {
    match state.switch.ask(Command::Status).await {
        Some(Reply::Status { agents, queues }) => {
            Json(serde_json::json!({ "agents": agents, "queues": queues })).into_response()
        }
        _ => stopping(),
    }
}

async fn change_agent(
    State(state): State<ApiState>,
    error::ApiPath((id, action)): error::ApiPath<(String, String)>,
) -> Response {
    let Some(action) = AgentAction::from_name(&action) else {
        return error::ApiError::NotFound(format!(
            "no agent action {action:?}; actions: login, logout, pause, resume"
        ))
        .into_response();
    };
    match state.switch.ask(Command::Agent { agent: id, action }).await {
        Some(Reply::Agent(Ok(status))) => Json(status).into_response(),
        Some(Reply::Agent(Err(e))) => command_refused(e),
        _ => stopping(),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct OriginateRequest {
    agent: String,
    destination: String,
    #[serde(default)]
    caller_id: Option<String>,
}

async fn originate(
    State(state): State<ApiState>,
    error::ApiJson(request): error::ApiJson<OriginateRequest>,
) -> Response {
    let command = Command::Originate {
        agent: request.agent,
        destination: request.destination,
        caller_id: request.caller_id,
    };
    match state.switch.ask(command).await {
        Some(Reply::Originated(Ok(work_order))) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "work_order": work_order.as_str() })),
        )
            .into_response(),
        Some(Reply::Originated(Err(e))) => command_refused(e),
        _ => stopping(),
    }
}

async fn reload(State(state): State<ApiState>) -> Response {
    match state.switch.reload(&state.config).await {
        Ok(version) => (
            StatusCode::OK,
            format!("reloaded; dialplan version {version}\n"),
        )
            .into_response(),
        Err(e) => error::ApiError::InvalidInput(e).into_response(),
    }
}

/// Serves until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    metrics: PrometheusHandle,
    config: Arc<Config>,
    switch: SwitchClient,
    store: Arc<dyn WorkOrderStore>,
    desks: crate::desk::Desks,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    axum::serve(listener, router(metrics, config, switch, store, desks))
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await
}

/// Binds the HTTP listener (before anything is spawned, so a busy port stops start-up).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
