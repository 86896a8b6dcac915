//! The agents and queues file (`config/agents.toml`): who takes calls, with which
//! skills, in which queues, and how each queue distributes its calls. Kept apart from
//! the main config so it can be reloaded while the engine runs (SIGHUP or
//! `POST /reload`): a new agent starts work without a restart (R4).
//!
//! Pure apart from reading the one file; errors name the file, line and reason.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, line_of};

/// How a queue picks among its available agents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrategyName {
    LongestIdle,
    RoundRobin,
    FewestCalls,
    SkillsWeighted,
}

/// Where a call goes when it has waited a queue's maximum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OverflowTarget {
    /// Another queue (it keeps its original wait).
    Queue(String),
    /// A dialplan step (the callback offer, once the IVR lands).
    Dialplan(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueSpec {
    pub name: String,
    /// Skill name → minimum level (1–10) an agent needs to take this queue's calls.
    pub required_skills: BTreeMap<String, u8>,
    pub strategy: StrategyName,
    pub max_wait: Duration,
    pub overflow: Option<OverflowTarget>,
    pub wrap_up: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentSpec {
    /// The agent number (工号): the only thing a caller ever learns (R12), and the
    /// SIP user name the agent's softphone registers with.
    pub id: String,
    /// The softphone's digest password.
    pub password: String,
    pub skills: BTreeMap<String, u8>,
    pub queues: Vec<String>,
    /// Added to the agent's score in skills-weighted queues: higher is picked later.
    pub penalty: u32,
}

/// The validated agents file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentsConfig {
    pub source: PathBuf,
    pub queues: Vec<QueueSpec>,
    pub agents: Vec<AgentSpec>,
}

impl AgentsConfig {
    pub fn load(path: &Path) -> Result<AgentsConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        AgentsConfig::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<AgentsConfig, ConfigError> {
        let raw: RawAgentsFile = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            line: e.span().map(|s| line_of(text, s.start)).unwrap_or(1),
            reason: e.message().trim().to_owned(),
        })?;
        let invalid = |span: std::ops::Range<usize>, key: &'static str, reason: String| {
            ConfigError::Invalid {
                path: path.to_owned(),
                line: line_of(text, span.start),
                key,
                reason,
            }
        };

        let mut queues = Vec::new();
        let mut queue_names = HashSet::new();
        for q in &raw.queues {
            let name = q.name.get_ref().trim().to_owned();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(invalid(
                    q.name.span(),
                    "queues.name",
                    format!(
                        "{name:?}: use letters, digits, '-' and '_' (it becomes a metric label)"
                    ),
                ));
            }
            if !queue_names.insert(name.clone()) {
                return Err(invalid(
                    q.name.span(),
                    "queues.name",
                    format!("queue {name:?} is defined twice"),
                ));
            }
            let strategy = match q.strategy.get_ref().as_str() {
                "longest_idle" => StrategyName::LongestIdle,
                "round_robin" => StrategyName::RoundRobin,
                "fewest_calls" => StrategyName::FewestCalls,
                "skills_weighted" => StrategyName::SkillsWeighted,
                other => {
                    return Err(invalid(
                        q.strategy.span(),
                        "queues.strategy",
                        format!(
                            "unknown strategy {other:?}; one of longest_idle, round_robin, fewest_calls, skills_weighted"
                        ),
                    ));
                }
            };
            let overflow = match &q.overflow {
                None => None,
                Some(target) => Some(match target.get_ref().split_once(':') {
                    Some(("queue", name)) if !name.is_empty() => {
                        OverflowTarget::Queue(name.to_owned())
                    }
                    Some(("dialplan", step)) if !step.is_empty() => {
                        OverflowTarget::Dialplan(step.to_owned())
                    }
                    _ => {
                        return Err(invalid(
                            target.span(),
                            "queues.overflow",
                            format!(
                                "{:?}: write \"queue:<name>\" or \"dialplan:<step>\"",
                                target.get_ref()
                            ),
                        ));
                    }
                }),
            };
            let required_skills =
                skill_levels(&q.required_skills, "queues.required_skills", &invalid)?;
            if *q.max_wait_seconds.get_ref() == 0 {
                return Err(invalid(
                    q.max_wait_seconds.span(),
                    "queues.max_wait_seconds",
                    "must be at least 1".into(),
                ));
            }
            queues.push(QueueSpec {
                name,
                required_skills,
                strategy,
                max_wait: Duration::from_secs(*q.max_wait_seconds.get_ref()),
                overflow,
                wrap_up: Duration::from_secs(*q.wrap_up_seconds.get_ref()),
            });
        }
        for (q, raw_q) in queues.iter().zip(&raw.queues) {
            if let Some(OverflowTarget::Queue(target)) = &q.overflow {
                if !queue_names.contains(target) {
                    let span = raw_q.overflow.as_ref().map(|o| o.span()).unwrap_or(0..0);
                    return Err(invalid(
                        span,
                        "queues.overflow",
                        format!("no queue named {target:?}"),
                    ));
                }
                if target == &q.name {
                    let span = raw_q.overflow.as_ref().map(|o| o.span()).unwrap_or(0..0);
                    return Err(invalid(
                        span,
                        "queues.overflow",
                        "a queue cannot overflow into itself".into(),
                    ));
                }
            }
        }

        let mut agents = Vec::new();
        let mut agent_ids = HashSet::new();
        for a in &raw.agents {
            let id = a.id.get_ref().trim().to_owned();
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
                return Err(invalid(
                    a.id.span(),
                    "agents.id",
                    format!("{id:?}: an agent number is digits only (工号)"),
                ));
            }
            if !agent_ids.insert(id.clone()) {
                return Err(invalid(
                    a.id.span(),
                    "agents.id",
                    format!("agent {id} is defined twice"),
                ));
            }
            if a.password.get_ref().is_empty() {
                return Err(invalid(
                    a.password.span(),
                    "agents.password",
                    "must not be empty".into(),
                ));
            }
            let mut agent_queues = Vec::new();
            for q in a.queues.get_ref() {
                if !queue_names.contains(q) {
                    return Err(invalid(
                        a.queues.span(),
                        "agents.queues",
                        format!("no queue named {q:?}"),
                    ));
                }
                agent_queues.push(q.clone());
            }
            agents.push(AgentSpec {
                id,
                password: a.password.get_ref().clone(),
                skills: skill_levels(&a.skills, "agents.skills", &invalid)?,
                queues: agent_queues,
                penalty: a.penalty,
            });
        }
        Ok(AgentsConfig {
            source: path.to_owned(),
            queues,
            agents,
        })
    }

    pub fn queue(&self, name: &str) -> Option<&QueueSpec> {
        self.queues.iter().find(|q| q.name == name)
    }

    pub fn agent(&self, id: &str) -> Option<&AgentSpec> {
        self.agents.iter().find(|a| a.id == id)
    }
}

fn skill_levels(
    raw: &BTreeMap<String, Spanned<u64>>,
    key: &'static str,
    invalid: &impl Fn(std::ops::Range<usize>, &'static str, String) -> ConfigError,
) -> Result<BTreeMap<String, u8>, ConfigError> {
    raw.iter()
        .map(|(skill, level)| match u8::try_from(*level.get_ref()) {
            Ok(l @ 1..=10) => Ok((skill.clone(), l)),
            _ => Err(invalid(
                level.span(),
                key,
                format!(
                    "skill {skill:?}: level {} is outside 1..=10",
                    level.get_ref()
                ),
            )),
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgentsFile {
    #[serde(default)]
    queues: Vec<RawQueue>,
    #[serde(default)]
    agents: Vec<RawAgent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueue {
    name: Spanned<String>,
    #[serde(default)]
    required_skills: BTreeMap<String, Spanned<u64>>,
    strategy: Spanned<String>,
    max_wait_seconds: Spanned<u64>,
    overflow: Option<Spanned<String>>,
    wrap_up_seconds: Spanned<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    id: Spanned<String>,
    password: Spanned<String>,
    #[serde(default)]
    skills: BTreeMap<String, Spanned<u64>>,
    queues: Spanned<Vec<String>>,
    #[serde(default)]
    penalty: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../config/agents.toml");

    fn parse(text: &str) -> Result<AgentsConfig, ConfigError> {
        AgentsConfig::parse(Path::new("agents.toml"), text)
    }

    #[test]
    fn shipped_agents_are_three_demo_agents_in_two_queues() {
        let cfg = parse(SHIPPED).expect("shipped agents file");
        let ids: Vec<&str> = cfg.agents.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["1001", "1002", "1003"]);
        assert_eq!(cfg.queues.len(), 2);
        assert!(cfg.agents.iter().all(|a| !a.password.is_empty()));
    }

    #[test]
    fn an_agent_in_an_unknown_queue_is_refused_at_its_line() {
        let text = SHIPPED.replacen("queues = [\"general\"]", "queues = [\"genral\"]", 1);
        let line = text.lines().position(|l| l.contains("\"genral\"")).unwrap() + 1;
        let err = parse(&text).unwrap_err();
        assert!(
            matches!(err, ConfigError::Invalid { line: l, key: "agents.queues", .. } if l == line),
            "{err}"
        );
    }

    #[test]
    fn duplicate_agent_numbers_are_refused() {
        let text = SHIPPED.replace("id = \"1002\"", "id = \"1001\"");
        let err = parse(&text).unwrap_err();
        assert!(err.to_string().contains("defined twice"), "{err}");
    }

    #[test]
    fn bad_strategy_overflow_and_skill_levels_are_refused() {
        for (from, to, key) in [
            (
                "strategy = \"longest_idle\"",
                "strategy = \"random\"",
                "queues.strategy",
            ),
            (
                "overflow = \"queue:complaints\"",
                "overflow = \"queue:nowhere\"",
                "queues.overflow",
            ),
            (
                "overflow = \"queue:complaints\"",
                "overflow = \"elsewhere\"",
                "queues.overflow",
            ),
            (
                "complaints = 3 }",
                "complaints = 11 }",
                "queues.required_skills",
            ),
        ] {
            let text = SHIPPED.replacen(from, to, 1);
            assert_ne!(text, SHIPPED, "{from} is in the shipped file");
            let err = parse(&text).unwrap_err();
            assert!(
                matches!(err, ConfigError::Invalid { key: k, .. } if k == key),
                "{to}: {err}"
            );
        }
    }
}
