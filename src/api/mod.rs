//! The HTTP server (I/O): `/metrics` for Prometheus (R30) and `/health` for probes,
//! open; the agent and supervisor API, behind a bearer token (R12):
//!
//! | route | what |
//! |---|---|
//! | `GET /agents` | every agent (number, state, time in state, registered) and queue |
//! | `POST /agents/{id}/login`, `…/logout`, `…/pause`, `…/resume` | change an agent's state |
//! | `POST /reload` | re-read the agents file (as SIGHUP does) |
//!
//! Answers name agents by number only, never by name, and never carry a caller number.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::runtime::Shared;
use crate::runtime::agents::{AgentRequest, AgentsError};

pub mod wallboard;

#[derive(Clone)]
struct ApiState {
    metrics: PrometheusHandle,
    shared: Arc<Shared>,
}

/// The routes, separate from serving so tests can drive them without a socket.
pub fn router(metrics: PrometheusHandle, shared: Arc<Shared>) -> Router {
    let wallboard_routes = wallboard::routes_for(shared.clone());
    let state = ApiState { metrics, shared };
    let protected = Router::new()
        .route("/agents", get(list_agents))
        .route("/agents/{id}/{action}", post(change_agent))
        .route("/reload", post(reload))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/health", get(|| async { "ok\n" }))
        .merge(protected)
        .merge(wallboard_routes)
        .with_state(state)
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

/// R12: every API that reads or changes agents needs the configured bearer token.
async fn require_token(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let expected = &state.shared.config.api.token;
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => {
            next.run(request).await
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"hotline\"")],
            "a bearer token is required\n",
        )
            .into_response(),
    }
}

/// Compares without leaking, through timing, how much of the token was right.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn list_agents(State(state): State<ApiState>) -> Response {
    match state.shared.agents.status().await {
        Some((agents, queues)) => Json(AgentsAndQueues { agents, queues }).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "stopping\n").into_response(),
    }
}

#[derive(serde::Serialize)]
struct AgentsAndQueues {
    agents: Vec<crate::runtime::agents::AgentStatus>,
    queues: Vec<crate::runtime::agents::QueueStatus>,
}

async fn change_agent(
    State(state): State<ApiState>,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    let request = match action.as_str() {
        "login" => AgentRequest::Login,
        "logout" => AgentRequest::Logout,
        "pause" => AgentRequest::Pause,
        "resume" => AgentRequest::Resume,
        _ => {
            return (
                StatusCode::NOT_FOUND,
                "actions: login, logout, pause, resume\n",
            )
                .into_response();
        }
    };
    match state.shared.agents.agent_request(&id, request).await {
        Ok(status) => Json(status).into_response(),
        Err(AgentsError::Stopped) => {
            (StatusCode::SERVICE_UNAVAILABLE, "stopping\n").into_response()
        }
        Err(e) => (StatusCode::CONFLICT, format!("{e}\n")).into_response(),
    }
}

async fn reload(State(state): State<ApiState>) -> Response {
    match crate::runtime::reload_agents(&state.shared).await {
        Ok(()) => (StatusCode::OK, "reloaded\n").into_response(),
        Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, format!("{e}\n")).into_response(),
    }
}

/// Serves until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    metrics: PrometheusHandle,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    axum::serve(listener, router(metrics, shared))
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await
}

/// Binds the HTTP listener (before anything is spawned, so a busy port stops start-up).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn token_comparison_needs_every_byte() {
        assert!(constant_time_eq(b"secret-token", b"secret-token"));
        assert!(!constant_time_eq(b"secret-tokem", b"secret-token"));
        assert!(!constant_time_eq(b"secret", b"secret-token"));
    }
}
