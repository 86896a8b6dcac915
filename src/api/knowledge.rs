//! The knowledge base and service directory while a call is on (R13, R14): keyword
//! search in Chinese text for every role, and an agent adding a provider they found
//! while handling a work order. Search itself is the store's (trigram matching on
//! both backends). I/O only through the store.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Principal;
use super::desk_access::{Desk, changeable_file, parse_id};
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use crate::workorder::{KnowledgeEntry, Provider};

pub(super) fn routes() -> OpenApiRouter<Desk> {
    OpenApiRouter::new()
        .routes(routes!(search_knowledge))
        .routes(routes!(search_directory))
        .routes(routes!(add_provider))
}

const MAX_RESULTS: usize = 100;

/// A keyword search.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Keywords, separated by spaces; an entry must contain all of them (e.g.
    /// `供暖 补贴`).
    pub q: String,
    /// At most this many results, 1–100 (default 20).
    pub limit: Option<usize>,
}

impl SearchParams {
    fn checked(&self) -> Result<(&str, usize), ApiError> {
        let q = self.q.trim();
        if q.is_empty() {
            return Err(ApiError::InvalidQuery(
                "q needs at least one keyword".into(),
            ));
        }
        let limit = self.limit.unwrap_or(20);
        if !(1..=MAX_RESULTS).contains(&limit) {
            return Err(ApiError::InvalidQuery(format!(
                "limit {limit} is outside 1..={MAX_RESULTS}"
            )));
        }
        Ok((q, limit))
    }
}

/// A knowledge-base entry: policy and public information agents answer from.
#[derive(Debug, Serialize, ToSchema)]
pub struct KnowledgeView {
    pub id: String,
    pub title: String,
    pub body: String,
    pub tags: Vec<String>,
}

impl From<KnowledgeEntry> for KnowledgeView {
    fn from(e: KnowledgeEntry) -> Self {
        KnowledgeView {
            id: e.id,
            title: e.title,
            body: e.body,
            tags: e.tags,
        }
    }
}

/// A service provider: who can do what, where (R13, R14).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderView {
    pub id: String,
    pub name: String,
    pub services: String,
    pub area: String,
    /// The provider's own (business) number.
    pub phone: String,
    pub address: String,
    pub tags: Vec<String>,
    /// The work order whose handling found it (R14).
    pub added_from: Option<String>,
}

impl From<Provider> for ProviderView {
    fn from(p: Provider) -> Self {
        ProviderView {
            id: p.id,
            name: p.name,
            services: p.services,
            area: p.area,
            phone: p.phone,
            address: p.address,
            tags: p.tags,
            added_from: p.added_from.map(|id| id.to_string()),
        }
    }
}

/// A provider an agent found while handling a work order (R14).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProvider {
    pub name: String,
    /// What they do, in the words a caller would use.
    pub services: String,
    #[serde(default)]
    pub area: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Search the knowledge base (R13).
#[utoipa::path(
    get, path = "/knowledge", tag = "knowledge",
    params(SearchParams),
    responses(
        (status = 200, body = Vec<KnowledgeView>),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
    ),
)]
async fn search_knowledge(
    State(desk): State<Desk>,
    _principal: Principal,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<Vec<KnowledgeView>>, ApiError> {
    let (q, limit) = params.checked()?;
    let entries = desk.store.search_knowledge(q, limit).await?;
    Ok(Json(entries.into_iter().map(KnowledgeView::from).collect()))
}

/// Search the service directory (R13, R14).
#[utoipa::path(
    get, path = "/directory", tag = "knowledge",
    params(SearchParams),
    responses(
        (status = 200, body = Vec<ProviderView>),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
    ),
)]
async fn search_directory(
    State(desk): State<Desk>,
    _principal: Principal,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<Vec<ProviderView>>, ApiError> {
    let (q, limit) = params.checked()?;
    let providers = desk.store.search_providers(q, limit).await?;
    Ok(Json(
        providers.into_iter().map(ProviderView::from).collect(),
    ))
}

/// Add a provider found while handling this work order to the directory (R14).
#[utoipa::path(
    post, path = "/work-orders/{id}/providers", tag = "knowledge",
    params(("id" = String, Path, description = "work order id")),
    request_body = NewProvider,
    responses(
        (status = 201, body = ProviderView),
        (status = 401, body = ErrorBody),
        (status = 403, description = "QA, or another agent's order", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
)]
async fn add_provider(
    State(desk): State<Desk>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<NewProvider>,
) -> Result<(StatusCode, Json<ProviderView>), ApiError> {
    let id = parse_id(&id)?;
    changeable_file(&desk, &principal, &id).await?;
    if request.name.trim().is_empty() || request.services.trim().is_empty() {
        return Err(ApiError::InvalidInput(
            "a provider needs a name and its services".into(),
        ));
    }
    let provider = Provider {
        id: format!("{id}-{:08x}", rand::random::<u32>()),
        name: request.name,
        services: request.services,
        area: request.area,
        phone: request.phone,
        address: request.address,
        tags: request.tags,
        added_from: Some(id.clone()),
    };
    desk.store
        .add_provider_from_work_order(&id, &provider, &principal.actor(), Utc::now())
        .await?;
    Ok((StatusCode::CREATED, Json(ProviderView::from(provider))))
}
