//! The API's one error type and the extractors that turn bad input into it. Every
//! refusal is JSON with a stable machine-readable code:
//! `{"error":{"code":"forbidden","message":"…"}}`. Clients branch on `code`; `message`
//! is for people and may change.
//!
//! No I/O beyond reading the request body (through axum).

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No bearer token, or one no configuration knows (401 `unauthorized`).
    #[error("a valid bearer token is required (Authorization: Bearer <token>)")]
    Unauthorized,
    /// The token is valid but its role may not do this (403 `forbidden`).
    #[error("{0}")]
    Forbidden(String),
    /// No such work order, recording, route… (404 `not_found`). Also what an agent gets
    /// for another agent's order, so ids cannot be probed.
    #[error("{0}")]
    NotFound(String),
    /// The path exists but not with this method (405 `method_not_allowed`).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The body is not JSON (400 `malformed_json`).
    #[error("{0}")]
    MalformedJson(String),
    /// The body is JSON of the wrong shape: an unknown field, a missing one, a wrong
    /// type (422 `invalid_body`).
    #[error("{0}")]
    InvalidBody(String),
    /// The body is not declared as JSON (415 `unsupported_media_type`).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body is larger than `access.max_body_bytes` (413 `payload_too_large`).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A query string or path parameter that does not parse (400 `invalid_query`).
    #[error("{0}")]
    InvalidQuery(String),
    /// The lifecycle refuses this status change (409 `invalid_transition`).
    #[error("{0}")]
    InvalidTransition(String),
    /// The engine refuses the action in the current state of what it acts on: an agent
    /// who cannot be paused now, an agent busy for an outbound call (409 `conflict`).
    #[error("{0}")]
    Conflict(String),
    /// Values the store refuses (422 `invalid_input`).
    #[error("{0}")]
    InvalidInput(String),
    /// A `Range` outside the file (416 `range_not_satisfiable`).
    #[error("the range lies outside the {size}-byte file")]
    RangeNotSatisfiable { size: u64 },
    /// The work-order store cannot be reached now; try again (503 `store_unavailable`).
    #[error("{0}")]
    StoreUnavailable(String),
    /// The engine is stopping or at its call limit; try again later (503
    /// `unavailable`).
    #[error("{0}")]
    Unavailable(String),
    /// Something that is the engine's fault (500 `internal`); details go to the log.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::MalformedJson(_) | ApiError::InvalidQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::InvalidBody(_) | ApiError::InvalidInput(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::InvalidTransition(_) | ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::StoreUnavailable(_) | ApiError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code clients branch on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::InvalidBody(_) => "invalid_body",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::InvalidQuery(_) => "invalid_query",
            ApiError::InvalidTransition(_) => "invalid_transition",
            ApiError::Conflict(_) => "conflict",
            ApiError::InvalidInput(_) => "invalid_input",
            ApiError::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            ApiError::StoreUnavailable(_) => "store_unavailable",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// 403 for a role that may not use an endpoint.
    pub fn forbidden(what: impl std::fmt::Display) -> Self {
        ApiError::Forbidden(what.to_string())
    }
}

/// The JSON body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable: `unauthorized`, `forbidden`, `not_found`, `method_not_allowed`,
    /// `malformed_json`,
    /// `invalid_body`, `unsupported_media_type`, `payload_too_large`, `invalid_query`,
    /// `invalid_transition`, `conflict`, `invalid_input`, `range_not_satisfiable`,
    /// `store_unavailable`, `unavailable`, `internal`.
    pub code: String,
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(code = self.code(), "API error: {self}");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message: self.to_string(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        match &self {
            ApiError::Unauthorized => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"hotline\""),
                );
            }
            ApiError::RangeNotSatisfiable { size } => {
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    response.headers_mut().insert(header::CONTENT_RANGE, value);
                }
            }
            _ => {}
        }
        response
    }
}

/// `Json<T>` whose refusals are [`ApiError`]s. Pair with `#[serde(deny_unknown_fields)]`
/// on `T` so a misspelt field is refused rather than silently dropped.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let text = rejection.body_text();
    match rejection {
        JsonRejection::JsonDataError(_) => ApiError::InvalidBody(text),
        JsonRejection::JsonSyntaxError(_) => ApiError::MalformedJson(text),
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
            "the body must be JSON, with Content-Type: application/json".into(),
        ),
        JsonRejection::BytesRejection(_) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge("the body is larger than access.max_body_bytes".into())
        }
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge("the body is larger than access.max_body_bytes".into())
        }
        _ => ApiError::MalformedJson(text),
    }
}

/// `Query<T>` whose refusals are [`ApiError::InvalidQuery`].
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    ApiError::InvalidQuery(rejection.body_text())
}

/// `Path<T>` whose refusals (a segment that is not UTF-8 once decoded, or does not
/// parse as `T`) are [`ApiError::InvalidQuery`].
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(path_rejection(rejection)),
        }
    }
}

fn path_rejection(rejection: PathRejection) -> ApiError {
    ApiError::InvalidQuery(rejection.body_text())
}

/// The answer for a path no route matches: JSON like every other refusal.
pub async fn no_such_route() -> ApiError {
    ApiError::NotFound("no such route; see /openapi.json".into())
}

/// The answer for a route that exists, asked with a method it does not take.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed("this route does not take that method; see /openapi.json".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_error_is_json_with_its_code() {
        for (error, status, code) in [
            (ApiError::Unauthorized, 401, "unauthorized"),
            (ApiError::forbidden("qa may not"), 403, "forbidden"),
            (
                ApiError::InvalidTransition("x".into()),
                409,
                "invalid_transition",
            ),
            (
                ApiError::RangeNotSatisfiable { size: 9 },
                416,
                "range_not_satisfiable",
            ),
            (
                ApiError::PayloadTooLarge("big".into()),
                413,
                "payload_too_large",
            ),
            (ApiError::Conflict("paused".into()), 409, "conflict"),
            (ApiError::Unavailable("stopping".into()), 503, "unavailable"),
        ] {
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "application/json",
                "{code}"
            );
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
                .await
                .expect("body");
            let value: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
            assert_eq!(value["error"]["code"], code);
            assert!(value["error"]["message"].is_string());
        }
    }

    #[test]
    fn unauthorized_names_the_scheme_and_416_the_size() {
        let response = ApiError::Unauthorized.into_response();
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"hotline\""
        );
        let response = ApiError::RangeNotSatisfiable { size: 1234 }.into_response();
        assert_eq!(response.headers()[header::CONTENT_RANGE], "bytes */1234");
    }
}
