//! Forbidden phrases while typing (R28): `POST /forbidden-phrases/check` tells the desk
//! page which configured phrases a draft text contains, so the agent sees them before
//! submitting. It uses the same [`crate::qa::PhraseChecker`] as the work-order routes,
//! so the page flags exactly what the store will record on save. Nothing is stored
//! here: a draft is not the record; the hits that count are the ones
//! `PATCH /work-orders/{id}` finds. Any role may ask. No I/O.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Principal;
use super::desk_access::Desk;
use super::error::{ApiError, ApiJson, ErrorBody};
use crate::qa::PhraseChecker;

pub(super) fn routes() -> OpenApiRouter<Desk> {
    OpenApiRouter::new().routes(routes!(check_text))
}

/// A draft to check.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// The text as typed so far.
    pub text: String,
}

/// One forbidden phrase found in the draft.
#[derive(Debug, Serialize, ToSchema)]
pub struct DraftHit {
    /// The phrase as configured (`qa.forbidden_phrases`).
    pub phrase: String,
    /// Where it starts, in characters (not bytes) from the start of the text.
    pub char_offset: usize,
    /// How many characters of the text it covers (whitespace inside it included).
    pub char_length: usize,
}

/// Every occurrence, ordered by position; empty when the draft is clean.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckAnswer {
    pub hits: Vec<DraftHit>,
}

/// Check a draft for forbidden phrases (R28) without storing anything.
#[utoipa::path(
    post, path = "/forbidden-phrases/check", tag = "work orders",
    request_body = CheckRequest,
    responses(
        (status = 200, body = CheckAnswer),
        (status = 400, description = "malformed JSON", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, description = "no `text`, or an unknown field", body = ErrorBody),
    ),
)]
async fn check_text(
    State(desk): State<Desk>,
    _principal: Principal,
    ApiJson(request): ApiJson<CheckRequest>,
) -> Result<Json<CheckAnswer>, ApiError> {
    Ok(Json(CheckAnswer {
        hits: hits(&desk.phrases, &request.text),
    }))
}

/// The checker's hits with the span each covers in the original text, so the page can
/// mark "不 行" as a whole even though the checker ignored the space.
fn hits(checker: &PhraseChecker, text: &str) -> Vec<DraftHit> {
    let chars: Vec<char> = text.chars().collect();
    checker
        .check(text)
        .into_iter()
        .map(|hit| {
            let wanted = hit.phrase.chars().filter(|c| !c.is_whitespace()).count();
            let mut seen = 0;
            let mut length = 0;
            for c in &chars[hit.char_offset..] {
                if seen == wanted {
                    break;
                }
                length += 1;
                if !c.is_whitespace() {
                    seen += 1;
                }
            }
            DraftHit {
                phrase: hit.phrase,
                char_offset: hit.char_offset,
                char_length: length,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checker() -> PhraseChecker {
        PhraseChecker::new(["不行", "不知道"])
    }

    #[test]
    fn a_hit_covers_the_phrase_with_the_whitespace_inside_it_r28() {
        let found = hits(&checker(), "这个不 行，我不知道");
        let spans: Vec<_> = found
            .iter()
            .map(|h| (h.phrase.as_str(), h.char_offset, h.char_length))
            .collect();
        assert_eq!(spans, [("不行", 2, 3), ("不知道", 7, 3)]);
        assert!(hits(&checker(), "您好，已记录").is_empty());
    }
}
