//! The agent desk page: `GET /desk` on the engine's HTTP listener serves one
//! self-contained HTML file (Chinese labels, inline script and style). The page takes
//! calls over the desk WebSocket (`/desk/ws`, docs/desk-protocol.md) and fills in the
//! work order through the desk REST API with the agent's token, which the agent types
//! in or passes as `#token=…` in the fragment, so it never travels in a URL to the
//! server.
//!
//! The page is open: it holds no data, and every request it makes needs the token.
//! Its Content-Security-Policy lets it reach only this engine, so nothing is fetched
//! from outside at run time. No I/O beyond answering.

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;

/// The page, embedded so the binary is the whole installation.
const PAGE: &str = include_str!("desk.html");

/// Inline script and style (the page is one file), media from the microphone, and
/// connections (REST and the WebSocket) to this engine only.
const POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; media-src 'self' blob: mediastream:; \
     img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/desk", get(page))
}

async fn page() -> impl IntoResponse {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(PAGE),
    )
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn the_page_is_served_with_a_policy_that_keeps_it_on_this_engine() {
        let answer = routes::<()>()
            .oneshot(Request::get("/desk").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        let policy = answer.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(policy.contains("connect-src 'self'"), "{policy}");
        assert!(policy.starts_with("default-src 'none'"), "{policy}");
        // One file: no script, style or image comes from anywhere else.
        for outside in ["src=\"http", "href=\"http", "src=\"//", "@import"] {
            assert!(!PAGE.contains(outside), "the page names {outside}");
        }
        assert!(PAGE.contains("/desk/ws"));
    }
}
