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
use utoipa_axum::router::OpenApiRouter;

use super::auth::{self, Authenticator};
use super::error::{self};
use crate::config::Config;
use crate::qa::PhraseChecker;
use crate::workorder::WorkOrderStore;

pub use super::desk_access::Desk;

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
        .merge(super::phrases::routes())
}
