//! Recording downloads (R12, R22, R23): the WAV of one call of a work order, streamed
//! from disk, with single HTTP ranges so a player can seek (`206`, `416`,
//! `Accept-Ranges: bytes`).
//!
//! Who may: a supervisor, the agent whose order it is, and QA for orders sampled for
//! review ([`super::desk_access::may_read`]). Every download is written to the read-audit log
//! before the first byte is sent; if it cannot be written, nothing is sent. I/O: reads
//! the file in chunks, never whole into memory.

use std::io::SeekFrom;
use std::path::PathBuf;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Principal;
use super::desk_access::{Desk, audit_read, parse_id, readable_file};
use super::error::{ApiError, ApiPath, ApiQuery, ErrorBody};
use super::range::ByteRange;
use crate::workorder::AuditedRead;

pub(super) fn routes() -> OpenApiRouter<Desk> {
    OpenApiRouter::new().routes(routes!(download_recording))
}

/// Which call's recording.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecordingParams {
    /// The call's `index` in the order's `calls` (0, the call that opened the order,
    /// by default).
    pub call: Option<usize>,
}

/// Download a call's recording (stereo WAV: left the caller, right the hotline).
///
/// Honours a single `Range: bytes=…` (206 with `Content-Range`; 416 when it starts
/// past the end); other range forms get the whole file.
#[utoipa::path(
    get, path = "/work-orders/{id}/recording", tag = "recordings",
    params(("id" = String, Path, description = "work order id"), RecordingParams),
    responses(
        (status = 200, description = "the whole WAV", content_type = "audio/wav"),
        (status = 206, description = "the requested bytes", content_type = "audio/wav"),
        (status = 401, body = ErrorBody),
        (status = 403, description = "not this role's order", body = ErrorBody),
        (status = 404, description = "no such order, call or recording", body = ErrorBody),
        (status = 416, body = ErrorBody),
        (status = 503, description = "the read could not be audited", body = ErrorBody),
    ),
)]
async fn download_recording(
    State(desk): State<Desk>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<RecordingParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let file = readable_file(&desk, &principal, &id).await?;
    let index = params.call.unwrap_or(0);
    let call = file
        .calls
        .get(index)
        .ok_or_else(|| ApiError::NotFound(format!("work order {id} has no call {index}")))?;
    let path = call
        .recording_path
        .as_deref()
        .ok_or_else(|| ApiError::NotFound(format!("call {index} of {id} has no recording")))?;
    let mut wav = match tokio::fs::File::open(PathBuf::from(path)).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::NotFound(format!(
                "the recording of call {index} of {id} is gone (purged?)"
            )));
        }
        Err(e) => return Err(ApiError::Internal(format!("cannot open a recording: {e}"))),
    };
    let size = wav
        .metadata()
        .await
        .map_err(|e| ApiError::Internal(format!("cannot read a recording's size: {e}")))?
        .len();
    let range = ByteRange::parse(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        size,
    );
    let (status, first, length) = match range {
        ByteRange::Whole => (StatusCode::OK, 0, size),
        ByteRange::Part { first, last } => (StatusCode::PARTIAL_CONTENT, first, last - first + 1),
        ByteRange::Unsatisfiable => return Err(ApiError::RangeNotSatisfiable { size }),
    };
    audit_read(&desk, &principal, AuditedRead::Recording, &file.order, path).await?;
    if first > 0 {
        wav.seek(SeekFrom::Start(first))
            .await
            .map_err(|e| ApiError::Internal(format!("cannot seek in a recording: {e}")))?;
    }
    let body = Body::from_stream(ReaderStream::new(wav.take(length)));
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    // A recording is personal data (R12): no shared cache may keep it.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let ByteRange::Part { first, last } = range
        && let Ok(value) = HeaderValue::from_str(&format!("bytes {first}-{last}/{size}"))
    {
        h.insert(header::CONTENT_RANGE, value);
    }
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{id}-{index}.wav\""))
    {
        h.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}
