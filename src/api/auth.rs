//! Who is calling the API, and what their role lets them do (R12).
//!
//! Bearer tokens come from config: each `[[access.tokens]]` entry is the SHA-256 of a
//! token with a role ([`Role`]), and the older single `api.token` is a supervisor
//! token. A request's token is hashed and compared with every configured hash in
//! constant time, all of them every time, so neither the time taken nor an early exit
//! tells how close a guess was. The token itself is never kept or logged.
//!
//! [`authenticate`] is the middleware: no or unknown token is 401; it leaves the
//! [`Principal`] in the request for handlers, which check roles (403). Pure apart from
//! being an axum middleware.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Config;
pub use crate::config::access::Role;

use super::error::ApiError;

/// The holder of a valid token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The token's name from config, as the audit log and audit trail show it.
    pub name: String,
    pub role: Role,
    /// For agents, their agent number (工号).
    pub agent: Option<String>,
}

impl Principal {
    /// 403 unless the role is one of `roles`.
    pub fn require(&self, roles: &[Role], what: &str) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "the {} role may not {what}",
                self.role
            )))
        }
    }

    /// Who did it, for audit trails: an agent by agent number (as the order names its
    /// owner), others by their token's name.
    pub fn actor(&self) -> String {
        match (&self.role, &self.agent) {
            (Role::Agent, Some(agent)) => agent.clone(),
            _ => self.name.clone(),
        }
    }
}

/// The configured tokens, as hashes.
#[derive(Debug)]
pub struct Authenticator {
    tokens: Vec<([u8; 32], Principal)>,
}

/// The name the legacy `api.token` is known by in audit records.
pub const LEGACY_TOKEN_NAME: &str = "api.token";

impl Authenticator {
    /// Every `[[access.tokens]]` entry, and `api.token` as a supervisor.
    pub fn from_config(config: &Config) -> Self {
        let mut tokens: Vec<([u8; 32], Principal)> = config
            .access
            .tokens
            .iter()
            .map(|t| {
                (
                    t.sha256,
                    Principal {
                        name: t.name.clone(),
                        role: t.role,
                        agent: t.agent.clone(),
                    },
                )
            })
            .collect();
        tokens.push((
            sha256(&config.api.token),
            Principal {
                name: LEGACY_TOKEN_NAME.to_owned(),
                role: Role::Supervisor,
                agent: None,
            },
        ));
        Authenticator { tokens }
    }

    /// The holder of `token`, if any configured hash matches. Compares with every
    /// hash, in constant time each, whatever it finds.
    pub fn authenticate(&self, token: &str) -> Option<&Principal> {
        let presented = sha256(token);
        let mut found = None;
        for (hash, principal) in &self.tokens {
            if bool::from(hash.ct_eq(&presented)) {
                found = Some(principal);
            }
        }
        found
    }
}

fn sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The SHA-256 of `token` as 64 lowercase hex digits, as `[[access.tokens]] sha256`
/// wants it (`hotline hash-token`). Surrounding whitespace, such as the newline
/// `echo` adds, is not part of the token.
pub fn hash_token(token: &str) -> String {
    sha256(token.trim())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The bearer token of a request, if it carries one.
fn bearer(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Middleware: 401 without a known token; otherwise the [`Principal`] goes into the
/// request's extensions and the request on.
pub async fn authenticate(
    State(auth): State<Arc<Authenticator>>,
    mut request: Request,
    next: Next,
) -> Response {
    let principal = bearer(&request).and_then(|token| auth.authenticate(token).cloned());
    match principal {
        Some(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        None => ApiError::Unauthorized.into_response(),
    }
}

/// Middleware for supervisor-only routes (the agent and reload routes): 401 without a
/// known token, 403 for any other role.
pub async fn require_supervisor(
    State(auth): State<Arc<Authenticator>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(principal) = bearer(&request).and_then(|token| auth.authenticate(token)) else {
        return ApiError::Unauthorized.into_response();
    };
    match principal.require(
        &[Role::Supervisor],
        "manage agents or reload the agents file",
    ) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or(ApiError::Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const SHIPPED: &str = include_str!("../../config/hotline.toml");

    fn shipped() -> Authenticator {
        Authenticator::from_config(
            &Config::parse(Path::new("hotline.toml"), SHIPPED).expect("shipped config"),
        )
    }

    #[test]
    fn hash_is_sha256_hex_of_the_trimmed_token() {
        // FIPS 180-2 test vector for "abc".
        assert_eq!(
            hash_token("abc\n"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn shipped_demo_tokens_have_their_roles() {
        let auth = shipped();
        let agent = auth
            .authenticate("demo-agent-1001-token-change-me")
            .expect("agent token");
        assert_eq!(agent.role, Role::Agent);
        assert_eq!(agent.agent.as_deref(), Some("1001"));
        assert_eq!(agent.actor(), "1001");
        let qa = auth
            .authenticate("demo-qa-token-change-me-0123456")
            .expect("qa token");
        assert_eq!(qa.role, Role::Qa);
        assert_eq!(qa.actor(), "demo-qa");
    }

    #[test]
    fn legacy_api_token_is_a_supervisor() {
        let auth = shipped();
        let supervisor = auth
            .authenticate("demo-token-change-me-0123456789")
            .expect("api.token");
        assert_eq!(supervisor.role, Role::Supervisor);
        assert_eq!(supervisor.name, LEGACY_TOKEN_NAME);
    }

    #[test]
    fn near_misses_are_refused() {
        let auth = shipped();
        for wrong in [
            "",
            "demo-token-change-me-012345678",
            "demo-token-change-me-01234567890",
            "Demo-token-change-me-0123456789",
            "28ab84f2b929fa1845d45ad8f9fb426e15cc466fb4761df6bf4cc06da9dfd4a2",
        ] {
            assert!(auth.authenticate(wrong).is_none(), "{wrong:?}");
        }
    }

    #[test]
    fn roles_are_checked() {
        let qa = Principal {
            name: "q".into(),
            role: Role::Qa,
            agent: None,
        };
        assert!(qa.require(&[Role::Qa, Role::Supervisor], "read").is_ok());
        let err = qa
            .require(&[Role::Supervisor], "read the audit log")
            .unwrap_err();
        assert_eq!(err.code(), "forbidden");
        assert!(err.to_string().contains("qa"), "{err}");
    }
}
