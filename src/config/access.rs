//! `[access]`: who may use the HTTP API, and how much they may send (R12).
//!
//! Each `[[access.tokens]]` entry is a bearer token's SHA-256 hash with the role it
//! grants. The older single `api.token` is not part of this section: it stays valid as
//! a supervisor token, so existing scripts keep working. Pure (validation only).

use std::collections::HashSet;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Validator};

/// What a credential may do in the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// An agent (坐席): its own work orders and calls only.
    Agent,
    /// A supervisor (班长): everything, escalations and complaints included (R15), the
    /// read-audit log, and full caller numbers on explicit request.
    Supervisor,
    /// Quality assurance (质检): the sampled work orders and their recordings (R23).
    Qa,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
            Role::Qa => "qa",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One configured credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSpec {
    /// Who holds it, as written in the read-audit log (never the token itself).
    pub name: String,
    pub role: Role,
    /// For [`Role::Agent`]: the agent number (工号) whose work orders it may see.
    pub agent: Option<String>,
    /// SHA-256 of the token, 32 bytes.
    pub sha256: [u8; 32],
}

/// The validated `[access]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessConfig {
    pub tokens: Vec<TokenSpec>,
    /// Requests with a larger body are refused with 413 before they are parsed.
    pub max_body_bytes: usize,
}

/// Default body limit: a work order's texts are a few kilobytes; 64 KiB leaves room
/// and still stops a client from making the engine buffer megabytes.
const DEFAULT_MAX_BODY_BYTES: u64 = 64 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccess {
    #[serde(default)]
    tokens: Vec<RawToken>,
    #[serde(default = "default_max_body_bytes")]
    max_body_bytes: Spanned<u64>,
}

impl Default for RawAccess {
    fn default() -> Self {
        RawAccess {
            tokens: Vec::new(),
            max_body_bytes: default_max_body_bytes(),
        }
    }
}

fn default_max_body_bytes() -> Spanned<u64> {
    Spanned::new(0..0, DEFAULT_MAX_BODY_BYTES)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: Spanned<String>,
    role: Spanned<String>,
    agent: Option<Spanned<String>>,
    sha256: Spanned<String>,
}

/// Parses 64 hex digits (either case) into the 32 bytes of a SHA-256 digest.
pub fn parse_sha256_hex(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

pub(super) fn validate(v: &Validator<'_>, raw: &RawAccess) -> Result<AccessConfig, ConfigError> {
    let max_body_bytes = v.in_range(
        &raw.max_body_bytes,
        "access.max_body_bytes",
        1024..=16 * 1024 * 1024,
    )?;
    let mut names = HashSet::new();
    let mut hashes = HashSet::new();
    let mut tokens = Vec::with_capacity(raw.tokens.len());
    for token in &raw.tokens {
        let name = token.name.get_ref().trim();
        if name.is_empty() || !names.insert(name.to_owned()) {
            return Err(v.invalid(
                token.name.span(),
                "access.tokens.name",
                format!("{name:?} must be non-empty and unique: the audit log names holders by it"),
            ));
        }
        let role = match token.role.get_ref().as_str() {
            "agent" => Role::Agent,
            "supervisor" => Role::Supervisor,
            "qa" => Role::Qa,
            other => {
                return Err(v.invalid(
                    token.role.span(),
                    "access.tokens.role",
                    format!("unknown role {other:?}; agent, supervisor or qa"),
                ));
            }
        };
        let agent = match (&token.agent, role) {
            (Some(agent), Role::Agent) if !agent.get_ref().trim().is_empty() => {
                Some(agent.get_ref().trim().to_owned())
            }
            (None, Role::Agent) => {
                return Err(v.invalid(
                    token.role.span(),
                    "access.tokens.agent",
                    "an agent token needs the agent number it belongs to",
                ));
            }
            (Some(agent), Role::Agent) => {
                return Err(v.invalid(agent.span(), "access.tokens.agent", "must not be empty"));
            }
            (Some(agent), _) => {
                return Err(v.invalid(
                    agent.span(),
                    "access.tokens.agent",
                    "only agent tokens belong to an agent number",
                ));
            }
            (None, _) => None,
        };
        let Some(sha256) = parse_sha256_hex(token.sha256.get_ref()) else {
            return Err(v.invalid(
                token.sha256.span(),
                "access.tokens.sha256",
                "must be 64 hex digits: make one with `hotline hash-token`",
            ));
        };
        if !hashes.insert(sha256) {
            return Err(v.invalid(
                token.sha256.span(),
                "access.tokens.sha256",
                "the same token is configured twice",
            ));
        }
        tokens.push(TokenSpec {
            name: name.to_owned(),
            role,
            agent,
            sha256,
        });
    }
    Ok(AccessConfig {
        tokens,
        max_body_bytes: max_body_bytes as usize,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, ConfigError};

    use super::*;

    const SHIPPED: &str = include_str!("../../config/hotline.toml");
    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn with_access(section: &str) -> Result<Config, ConfigError> {
        let text = format!("{}\n{section}", strip_access(SHIPPED));
        Config::parse(Path::new("test.toml"), &text)
    }

    /// The shipped file without its `[access]` section, so a test can write its own.
    fn strip_access(text: &str) -> String {
        let mut out = String::new();
        let mut skipping = false;
        for line in text.lines() {
            if line.starts_with('[') {
                skipping = line.starts_with("[access") || line.starts_with("[[access");
            }
            if !skipping {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    #[test]
    fn shipped_config_has_demo_tokens_for_each_role() {
        let cfg = Config::parse(Path::new("hotline.toml"), SHIPPED).expect("shipped config");
        let roles: HashSet<Role> = cfg.access.tokens.iter().map(|t| t.role).collect();
        assert!(roles.contains(&Role::Agent) && roles.contains(&Role::Qa));
        assert_eq!(cfg.access.max_body_bytes, 65_536);
    }

    #[test]
    fn section_is_optional() {
        let cfg = with_access("").expect("config without [access]");
        assert!(cfg.access.tokens.is_empty());
        assert_eq!(cfg.access.max_body_bytes, DEFAULT_MAX_BODY_BYTES as usize);
    }

    #[test]
    fn agent_token_needs_its_agent_number() {
        let err = with_access(&format!(
            "[[access.tokens]]\nname = \"a\"\nrole = \"agent\"\nsha256 = \"{HASH}\"\n"
        ))
        .unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    key: "access.tokens.agent",
                    ..
                }
            ),
            "{err}"
        );
        let ok = with_access(&format!(
            "[[access.tokens]]\nname = \"a\"\nrole = \"agent\"\nagent = \"1001\"\nsha256 = \"{HASH}\"\n"
        ))
        .expect("agent token");
        assert_eq!(ok.access.tokens[0].agent.as_deref(), Some("1001"));
        assert_eq!(ok.access.tokens[0].sha256[0], 0x9f);
    }

    #[test]
    fn bad_hash_and_role_name_their_line() {
        let section = "[[access.tokens]]\nname = \"q\"\nrole = \"qa\"\nsha256 = \"abc\"\n";
        let err = with_access(section).unwrap_err();
        let ConfigError::Invalid { line, key, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(*key, "access.tokens.sha256");
        let text = format!("{}\n{section}", strip_access(SHIPPED));
        let expected = text
            .lines()
            .position(|l| l.starts_with("sha256 = \"abc\""))
            .unwrap()
            + 1;
        assert_eq!(*line, expected);
        let err = with_access(&format!(
            "[[access.tokens]]\nname = \"q\"\nrole = \"admin\"\nsha256 = \"{HASH}\"\n"
        ))
        .unwrap_err();
        assert!(err.to_string().contains("unknown role"), "{err}");
    }

    #[test]
    fn duplicate_tokens_and_names_are_refused() {
        let twice = format!(
            "[[access.tokens]]\nname = \"q1\"\nrole = \"qa\"\nsha256 = \"{HASH}\"\n\
             [[access.tokens]]\nname = \"q2\"\nrole = \"qa\"\nsha256 = \"{}\"\n",
            HASH.to_uppercase()
        );
        assert!(with_access(&twice).is_err());
        let same_name = format!(
            "[[access.tokens]]\nname = \"q\"\nrole = \"qa\"\nsha256 = \"{HASH}\"\n\
             [[access.tokens]]\nname = \"q\"\nrole = \"supervisor\"\nsha256 = \"{}\"\n",
            "0".repeat(64)
        );
        assert!(with_access(&same_name).is_err());
    }

    #[test]
    fn sha256_hex_parses_both_cases_only_at_full_length() {
        assert_eq!(
            parse_sha256_hex(HASH),
            parse_sha256_hex(&HASH.to_uppercase())
        );
        assert!(parse_sha256_hex(&HASH[1..]).is_none());
        assert!(parse_sha256_hex(&format!("{}zz", &HASH[2..])).is_none());
    }
}
