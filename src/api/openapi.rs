//! `/openapi.json`: the API described from the code. Each desk route carries its own
//! `#[utoipa::path]` and is registered through [`super::desk::openapi_router`], which
//! yields the router and the document together; this module adds what is common
//! (title, version, the bearer scheme). Pure.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{self, OpenApi as Document};
use utoipa::{Modify, OpenApi};

use super::error::{ErrorBody, ErrorDetail};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hotline desk API",
        description = "Work orders, recordings, knowledge base and service directory for agents, supervisors and QA. Every route needs `Authorization: Bearer <token>`; errors are JSON `{\"error\":{\"code\",\"message\"}}`. Caller numbers are masked unless a supervisor asks for `unmasked=true`."
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth),
)]
struct DeskDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, document: &mut openapi::OpenApi) {
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        document.security = Some(vec![SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

/// The document the routes are added to.
pub fn base_document() -> Document {
    let mut document = DeskDoc::openapi();
    document.info.version = env!("CARGO_PKG_VERSION").to_owned();
    document
}
