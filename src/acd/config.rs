//! The ACD's settings and their check. Pure.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use super::{AcdError, DEFAULT_AGENT_RING_TIMEOUT};

/// How a queue picks among its available agents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// The agent available the longest (since they last became available).
    LongestIdle,
    /// The next agent after the last one offered, in config order, wrapping around.
    RoundRobin,
    /// The agent who answered the fewest calls; ties go to the longest idle.
    FewestCalls,
    /// The lowest penalty first, then the highest sum of the queue's required skill
    /// levels, then the longest idle.
    SkillsWeighted,
}

/// Where a call goes when it has waited its queue's `max_wait`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Overflow {
    /// Into another queue (the core moves it).
    Queue(String),
    /// Out of the ACD, to a dialplan step (the driver takes it there).
    Dialplan(String),
}

/// One queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    pub name: String,
    /// Skill → minimum level (1..=10) an agent needs to take this queue's calls.
    pub required_skills: BTreeMap<String, u8>,
    pub strategy: Strategy,
    /// How long a call waits before it overflows; unused without an `overflow` target.
    pub max_wait: Duration,
    pub overflow: Option<Overflow>,
    /// After-call work time before the agent is available again.
    pub wrap_up: Duration,
}

/// One agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentConfig {
    /// The agent number (工号), the only name callers ever learn (R12).
    pub id: String,
    /// Skill → level (1..=10).
    pub skills: BTreeMap<String, u8>,
    /// Queues served; an agent lacking a queue's required skills is never offered its
    /// calls.
    pub queues: Vec<String>,
    /// For [`Strategy::SkillsWeighted`]: lower is offered first.
    pub penalty: u32,
}

impl AgentConfig {
    /// True if the agent has every skill at the level `required` asks.
    pub(crate) fn meets(&self, required: &BTreeMap<String, u8>) -> bool {
        required
            .iter()
            .all(|(skill, min)| self.skills.get(skill).is_some_and(|level| level >= min))
    }

    /// The sum of the agent's levels in the `required` skills (for skills-weighted).
    pub(crate) fn skill_score(&self, required: &BTreeMap<String, u8>) -> u64 {
        required
            .keys()
            .filter_map(|skill| self.skills.get(skill))
            .map(|level| u64::from(*level))
            .sum()
    }
}

/// Everything the ACD is configured with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcdConfig {
    pub queues: Vec<QueueConfig>,
    pub agents: Vec<AgentConfig>,
    /// How long an offer rings before the call moves to the next agent (R6).
    pub agent_ring_timeout: Duration,
}

impl Default for AcdConfig {
    fn default() -> Self {
        AcdConfig {
            queues: Vec::new(),
            agents: Vec::new(),
            agent_ring_timeout: DEFAULT_AGENT_RING_TIMEOUT,
        }
    }
}

const SKILL_LEVELS: std::ops::RangeInclusive<u8> = 1..=10;

/// Checks names, references, skill levels and overflow cycles.
pub(crate) fn validate(config: &AcdConfig) -> Result<(), AcdError> {
    if config.agent_ring_timeout.is_zero() {
        return Err(AcdError::ZeroRingTimeout);
    }
    let mut overflow_of: HashMap<&str, Option<&str>> = HashMap::new();
    for queue in &config.queues {
        let target = match &queue.overflow {
            Some(Overflow::Queue(target)) => Some(target.as_str()),
            Some(Overflow::Dialplan(_)) | None => None,
        };
        if overflow_of.insert(queue.name.as_str(), target).is_some() {
            return Err(AcdError::DuplicateQueue {
                queue: queue.name.clone(),
            });
        }
        check_levels(&format!("queue {}", queue.name), &queue.required_skills)?;
    }
    for (queue, target) in &overflow_of {
        if let Some(target) = target
            && !overflow_of.contains_key(target)
        {
            return Err(AcdError::OverflowToUnknownQueue {
                queue: (*queue).to_owned(),
                target: (*target).to_owned(),
            });
        }
    }
    // Each queue has at most one queue target, so a walk longer than the number of
    // queues must have gone round a cycle.
    for queue in &config.queues {
        let mut at = queue.name.as_str();
        for _ in 0..config.queues.len() {
            match overflow_of.get(at).copied().flatten() {
                Some(next) if next == queue.name => {
                    return Err(AcdError::OverflowCycle {
                        queue: queue.name.clone(),
                    });
                }
                Some(next) => at = next,
                None => break,
            }
        }
    }
    let mut agent_ids = HashSet::new();
    for agent in &config.agents {
        if !agent_ids.insert(agent.id.as_str()) {
            return Err(AcdError::DuplicateAgent {
                agent: agent.id.clone(),
            });
        }
        if let Some(queue) = agent
            .queues
            .iter()
            .find(|queue| !overflow_of.contains_key(queue.as_str()))
        {
            return Err(AcdError::AgentInUnknownQueue {
                agent: agent.id.clone(),
                queue: queue.clone(),
            });
        }
        check_levels(&format!("agent {}", agent.id), &agent.skills)?;
    }
    Ok(())
}

fn check_levels(owner: &str, skills: &BTreeMap<String, u8>) -> Result<(), AcdError> {
    match skills
        .iter()
        .find(|(_, level)| !SKILL_LEVELS.contains(*level))
    {
        Some((skill, level)) => Err(AcdError::SkillLevelOutOfRange {
            owner: owner.to_owned(),
            skill: skill.clone(),
            level: *level,
        }),
        None => Ok(()),
    }
}
