//! `[security]`: digest authentication policy (qop, RFC 2069 answers), throttling of
//! failed authentications, and the guard against running the shipped demo secrets on a
//! reachable address (issue 9 rows 3, 4, 13). Every key has a default, so the section
//! may be left out.
//!
//! Pure: raw and validated structs, their validation, and [`check_demo_secrets`].

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::agents::AgentsConfig;
use super::{Config, ConfigError, Validator};
use crate::sip::auth_guard::GuardSettings;

/// The API token shipped in `config/hotline.toml`: public, so never for a reachable
/// address.
pub const DEMO_API_TOKEN: &str = "demo-token-change-me-0123456789";

/// The validated `[security]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityConfig {
    /// Accept a digest answer without `qop` (RFC 2069), each nonce then good once.
    pub digest_allow_rfc2069: bool,
    /// Failed authentications from one source (or for one user) before backoff.
    pub auth_failures_before_backoff: u32,
    /// First backoff after the free failures; doubles with each further failure.
    pub auth_backoff_initial: Duration,
    /// The longest backoff: the temporary `403`.
    pub auth_backoff_max: Duration,
    /// A source or user with no failure for this long starts afresh.
    pub auth_forget_after: Duration,
    /// Start with the shipped demo secrets on a non-loopback address (a warning only).
    pub allow_demo_secrets: bool,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            digest_allow_rfc2069: false,
            auth_failures_before_backoff: 5,
            auth_backoff_initial: Duration::from_secs(1),
            auth_backoff_max: Duration::from_secs(300),
            auth_forget_after: Duration::from_secs(900),
            allow_demo_secrets: false,
        }
    }
}

impl SecurityConfig {
    /// The settings of the failed-authentication throttle.
    pub fn guard_settings(&self) -> GuardSettings {
        GuardSettings {
            failures_before_backoff: self.auth_failures_before_backoff,
            backoff_initial: self.auth_backoff_initial,
            backoff_max: self.auth_backoff_max,
            forget_after: self.auth_forget_after,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSecurity {
    #[serde(default)]
    digest_allow_rfc2069: bool,
    auth_failures_before_backoff: Option<Spanned<u64>>,
    auth_backoff_initial_ms: Option<Spanned<u64>>,
    auth_backoff_max_seconds: Option<Spanned<u64>>,
    auth_forget_after_seconds: Option<Spanned<u64>>,
    #[serde(default)]
    allow_demo_secrets: bool,
}

impl Validator<'_> {
    pub(super) fn security(&self, raw: &RawSecurity) -> Result<SecurityConfig, ConfigError> {
        let defaults = SecurityConfig::default();
        let free = match &raw.auth_failures_before_backoff {
            Some(v) => self.in_range(v, "security.auth_failures_before_backoff", 1..=1_000)? as u32,
            None => defaults.auth_failures_before_backoff,
        };
        let initial = match &raw.auth_backoff_initial_ms {
            Some(v) => Duration::from_millis(self.in_range(
                v,
                "security.auth_backoff_initial_ms",
                10..=3_600_000,
            )?),
            None => defaults.auth_backoff_initial,
        };
        let max = match &raw.auth_backoff_max_seconds {
            Some(v) => {
                let max = Duration::from_secs(self.in_range(
                    v,
                    "security.auth_backoff_max_seconds",
                    1..=86_400,
                )?);
                if max < initial {
                    return Err(self.invalid(
                        v.span(),
                        "security.auth_backoff_max_seconds",
                        "must not be below auth_backoff_initial_ms",
                    ));
                }
                max
            }
            None => defaults.auth_backoff_max.max(initial),
        };
        let forget = match &raw.auth_forget_after_seconds {
            Some(v) => Duration::from_secs(self.in_range(
                v,
                "security.auth_forget_after_seconds",
                1..=86_400,
            )?),
            None => defaults.auth_forget_after,
        };
        Ok(SecurityConfig {
            digest_allow_rfc2069: raw.digest_allow_rfc2069,
            auth_failures_before_backoff: free,
            auth_backoff_initial: initial,
            auth_backoff_max: max,
            auth_forget_after: forget,
            allow_demo_secrets: raw.allow_demo_secrets,
        })
    }
}

/// A shipped demo secret found in a config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DemoSecret {
    ApiToken,
    /// An agent whose password is the shipped `demo<id>`.
    AgentPassword {
        agent: String,
    },
}

impl std::fmt::Display for DemoSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DemoSecret::ApiToken => write!(f, "api.token is the shipped demo token"),
            DemoSecret::AgentPassword { agent } => {
                write!(f, "agent {agent} has the shipped demo password")
            }
        }
    }
}

/// The shipped demo secrets `config` and `agents` still use.
pub fn demo_secrets_in_use(config: &Config, agents: &AgentsConfig) -> Vec<DemoSecret> {
    let mut found = Vec::new();
    if config.api.token == DEMO_API_TOKEN {
        found.push(DemoSecret::ApiToken);
    }
    for agent in &agents.agents {
        if agent.password == format!("demo{}", agent.id) {
            found.push(DemoSecret::AgentPassword {
                agent: agent.id.clone(),
            });
        }
    }
    found
}

/// The listening addresses (SIP and HTTP) that are not loopback: a wildcard counts, as
/// it listens on every interface.
pub fn reachable_listen_addresses(config: &Config) -> Vec<SocketAddr> {
    [
        config.sip.listen_udp,
        config.sip.listen_tcp,
        Some(config.http.listen),
    ]
    .into_iter()
    .flatten()
    .filter(|addr| !addr.ip().is_loopback())
    .collect()
}

/// Start-up's verdict on demo secrets: `Ok` with the warnings to log loudly (empty when
/// no demo secret is reachable), or the error that stops start-up (exit 64) when a demo
/// secret would be used on a non-loopback address and neither `--allow-demo-secrets`
/// (`allow_flag`) nor `security.allow_demo_secrets` allows it.
pub fn check_demo_secrets(
    config: &Config,
    agents: &AgentsConfig,
    allow_flag: bool,
) -> Result<Vec<String>, ConfigError> {
    let secrets = demo_secrets_in_use(config, agents);
    let reachable = reachable_listen_addresses(config);
    if secrets.is_empty() || reachable.is_empty() {
        return Ok(Vec::new());
    }
    let secrets_text = secrets
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    let addresses = reachable
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if allow_flag || config.security.allow_demo_secrets {
        return Ok(vec![format!(
            "DEMO SECRETS IN USE ON A REACHABLE ADDRESS ({addresses}): {secrets_text}. \
             Anyone who has read the README can register as an agent or read caller data. \
             Change them before taking real calls."
        )]);
    }
    Err(ConfigError::Invalid {
        path: config.source.clone(),
        line: 1,
        key: "security.allow_demo_secrets",
        reason: format!(
            "refusing to listen on {addresses} with the shipped demo secrets ({secrets_text}); \
             change them, listen on 127.0.0.1 only, or start with --allow-demo-secrets"
        ),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const SHIPPED: &str = include_str!("../../config/hotline.toml");
    const SHIPPED_AGENTS: &str = include_str!("../../config/agents.toml");

    fn config(text: &str) -> Config {
        Config::parse(Path::new("t.toml"), text).expect("valid config")
    }

    fn agents() -> AgentsConfig {
        AgentsConfig::parse(Path::new("agents.toml"), SHIPPED_AGENTS).expect("valid agents")
    }

    fn public(text: &str) -> String {
        text.replace(
            "listen_udp = \"127.0.0.1:5060\"",
            "listen_udp = \"0.0.0.0:5060\"",
        )
    }

    #[test]
    fn shipped_secrets_are_found() {
        let found = demo_secrets_in_use(&config(SHIPPED), &agents());
        assert_eq!(found.len(), 4, "{found:?}");
        assert_eq!(found[0], DemoSecret::ApiToken);
    }

    #[test]
    fn demo_secrets_on_loopback_are_fine() {
        assert_eq!(
            check_demo_secrets(&config(SHIPPED), &agents(), false).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn demo_secrets_on_a_reachable_address_are_refused_with_the_reason() {
        let err = check_demo_secrets(&config(&public(SHIPPED)), &agents(), false).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("0.0.0.0:5060"), "{text}");
        assert!(text.contains("api.token"), "{text}");
        assert!(text.contains("--allow-demo-secrets"), "{text}");
    }

    #[test]
    fn the_flag_or_the_key_turns_the_refusal_into_a_warning() {
        let warnings = check_demo_secrets(&config(&public(SHIPPED)), &agents(), true).unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("DEMO SECRETS"), "{warnings:?}");
        let keyed =
            public(SHIPPED).replacen("allow_demo_secrets = false", "allow_demo_secrets = true", 1);
        assert_eq!(
            check_demo_secrets(&config(&keyed), &agents(), false)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn changed_secrets_are_not_flagged() {
        let text = public(SHIPPED).replace(DEMO_API_TOKEN, "a-real-token-0123456789abcdef");
        let changed = AgentsConfig::parse(
            Path::new("agents.toml"),
            &SHIPPED_AGENTS.replace("\"demo100", "\"Xq7-100"),
        )
        .expect("valid agents");
        assert!(demo_secrets_in_use(&config(&text), &changed).is_empty());
        assert!(
            check_demo_secrets(&config(&text), &changed, false)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn backoff_values_are_validated() {
        let text = SHIPPED.replacen(
            "auth_backoff_max_seconds = 300",
            "auth_backoff_max_seconds = 0",
            1,
        );
        let err = Config::parse(Path::new("t.toml"), &text).unwrap_err();
        assert!(
            err.to_string()
                .contains("security.auth_backoff_max_seconds"),
            "{err}"
        );
    }
}
