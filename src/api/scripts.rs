//! `POST /calls/script`: an agent hands the caller they are talking to to one of the
//! dialplan's scripts (R27's no-answer script, the nuisance warning of seed §6.5.3, the
//! out-of-scope closing of §6.5.2 with the category the agent chose, R2/R3). The engine
//! takes the caller back from the agent; the script plays, writes its category and
//! hangs up. An agent acts on their own call only; a supervisor names the agent.

use axum::Router;
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, middleware};
use std::sync::Arc;

use super::SwitchClient;
use super::auth::{self, Authenticator, Principal, Role};
use super::error::{ApiError, ApiJson};
use crate::ivr::AgentScript;
use crate::switch::{Command, CommandError, Reply};
use crate::workorder::Category;

/// What the agent asks for.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptRequest {
    /// `no_answer`, `nuisance` or `out_of_scope`.
    pub script: String,
    /// For `out_of_scope`: one of R2's out-of-scope categories.
    #[serde(default)]
    pub category: Option<Category>,
    /// The agent whose caller it is; an agent's own token implies it.
    #[serde(default)]
    pub agent: Option<String>,
}

pub fn routes(switch: SwitchClient, authenticator: Arc<Authenticator>) -> Router {
    Router::new()
        .route("/calls/script", post(start_script))
        .layer(middleware::from_fn_with_state(
            authenticator,
            auth::authenticate,
        ))
        .with_state(switch)
}

/// Reads the request into the script and the agent whose call it is.
pub fn parse(
    principal: &Principal,
    request: ScriptRequest,
) -> Result<(String, AgentScript), ApiError> {
    principal.require(&[Role::Agent, Role::Supervisor], "start a script on a call")?;
    let script = match (request.script.as_str(), request.category) {
        ("no_answer", None) => AgentScript::NoAnswer,
        ("nuisance", None) => AgentScript::Nuisance,
        ("out_of_scope", Some(category)) => AgentScript::OutOfScope(category),
        ("out_of_scope", None) => {
            return Err(ApiError::InvalidInput(
                "out_of_scope needs the out-of-scope category (R2): emergency, civil_dispute, \
                 legal_process, military or out_of_province"
                    .into(),
            ));
        }
        ("no_answer" | "nuisance", Some(_)) => {
            return Err(ApiError::InvalidInput(format!(
                "{} sets its own category; leave category out",
                request.script
            )));
        }
        (other, _) => {
            return Err(ApiError::InvalidInput(format!(
                "no script {other:?}: use no_answer, nuisance or out_of_scope"
            )));
        }
    };
    let agent = match (principal.role, &principal.agent, request.agent) {
        (Role::Agent, Some(own), None) => own.clone(),
        (Role::Agent, Some(own), Some(named)) if *own == named => named,
        (Role::Agent, _, _) => {
            return Err(ApiError::forbidden(
                "an agent may start a script on their own call only",
            ));
        }
        (_, _, Some(named)) => named,
        (_, _, None) => {
            return Err(ApiError::InvalidInput(
                "name the agent whose call it is (\"agent\")".into(),
            ));
        }
    };
    Ok((agent, script))
}

async fn start_script(
    State(switch): State<SwitchClient>,
    Extension(principal): Extension<Principal>,
    ApiJson(request): ApiJson<ScriptRequest>,
) -> Response {
    let (agent, script) = match parse(&principal, request) {
        Ok(parsed) => parsed,
        Err(e) => return e.into_response(),
    };
    match switch
        .ask(Command::AgentScript {
            agent: agent.clone(),
            script,
        })
        .await
    {
        Some(Reply::Script(Ok(()))) => {
            tracing::info!(agent, actor = %principal.actor(), ?script, "script started on a call");
            Json(serde_json::json!({ "agent": agent, "started": true })).into_response()
        }
        Some(Reply::Script(Err(CommandError::NoCall(agent)))) => {
            ApiError::NotFound(format!("agent {agent} is not connected to a caller"))
                .into_response()
        }
        Some(Reply::Script(Err(e))) => ApiError::InvalidInput(e.to_string()).into_response(),
        _ => ApiError::Unavailable("the engine is stopping".into()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: &str) -> Principal {
        Principal {
            name: format!("agent-{id}"),
            role: Role::Agent,
            agent: Some(id.into()),
        }
    }

    fn request(script: &str, category: Option<Category>, agent: Option<&str>) -> ScriptRequest {
        ScriptRequest {
            script: script.into(),
            category,
            agent: agent.map(str::to_owned),
        }
    }

    #[test]
    fn an_agent_starts_scripts_on_their_own_call_only_r27() {
        let me = agent("1001");
        assert_eq!(
            parse(&me, request("no_answer", None, None)).unwrap(),
            ("1001".into(), AgentScript::NoAnswer)
        );
        assert_eq!(
            parse(
                &me,
                request("out_of_scope", Some(Category::Emergency), Some("1001"))
            )
            .unwrap(),
            ("1001".into(), AgentScript::OutOfScope(Category::Emergency))
        );
        let other = parse(&me, request("nuisance", None, Some("1002"))).unwrap_err();
        assert_eq!(other.status(), axum::http::StatusCode::FORBIDDEN);
    }

    #[test]
    fn bad_requests_are_clear_4xx() {
        let me = agent("1001");
        for bad in [
            request("out_of_scope", None, None),
            request("nuisance", Some(Category::Military), None),
            request("sing", None, None),
        ] {
            let error = parse(&me, bad).unwrap_err();
            assert_eq!(error.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        }
        let supervisor = Principal {
            name: "duty".into(),
            role: Role::Supervisor,
            agent: None,
        };
        assert!(parse(&supervisor, request("nuisance", None, None)).is_err());
        assert_eq!(
            parse(&supervisor, request("nuisance", None, Some("1003"))).unwrap(),
            ("1003".into(), AgentScript::Nuisance)
        );
        let qa = Principal {
            name: "qa".into(),
            role: Role::Qa,
            agent: None,
        };
        assert!(parse(&qa, request("nuisance", None, Some("1003"))).is_err());
    }
}
