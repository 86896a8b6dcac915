//! The compiled dialplan: nodes joined by indices, every name resolved, every prompt
//! checked. Pure data, shared read-only between calls (`Arc<Dialplan>`), and versioned
//! so that a reload never changes the plan under a call in progress (R4).

use std::sync::Arc;
use std::time::Duration;

use crate::media::vad::VadSettings;
use crate::workorder::Category;

/// Index of a node in [`Dialplan::nodes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub usize);

/// A prompt list entry: a WAV file in the prompts directory, or the agent's number read
/// digit by digit (`digit-N.wav`), known only once an agent has taken the call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PromptItem {
    File(String),
    AgentNumber,
}

/// The placeholder an operator writes in a prompt list for the agent's number.
pub const AGENT_NUMBER_PLACEHOLDER: &str = "$agent_number";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    /// Line of the node's `name` in its file, for messages.
    pub line: usize,
    pub kind: NodeKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// Plays its prompts, then goes on.
    Play {
        prompts: Vec<PromptItem>,
        next: NodeId,
    },
    /// Plays its prompts and waits for one key.
    Menu(Menu),
    /// Plays its prompts and collects up to `max_digits` keys.
    Collect(Collect),
    /// Puts the call in an ACD queue and keeps the caller company until an agent answers.
    Queue(QueueNode),
    /// R24: a 1–5 rating by keypad, after the agent has left.
    Survey(Survey),
    /// Writes category and flags on the work order, then goes on.
    Set(SetNode),
    /// R11: hands the call to a SIP URI (a supervisor, a department's number).
    Transfer {
        prompts: Vec<PromptItem>,
        uri: String,
        on_failure: Option<NodeId>,
    },
    /// Plays its prompts, then the engine hangs up.
    HangUp { prompts: Vec<PromptItem> },
    /// R27: the caller has not been heard: the prompt up to `repeats` times, each
    /// followed by `wait` of silence, then the goodbye, hang up, category `silent`.
    NoAnswer(NoAnswer),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Menu {
    pub prompts: Vec<PromptItem>,
    /// Key → node, in file order.
    pub choices: Vec<(char, NodeId)>,
    /// Waited after the prompts end.
    pub timeout: Duration,
    /// How many times the prompts are replayed after a timeout.
    pub timeout_retries: u32,
    /// How many times a wrong key gets the invalid prompt and the menu again.
    pub invalid_retries: u32,
    pub invalid_prompt: Option<PromptItem>,
    /// When the timeouts are used up.
    pub on_timeout: NodeId,
    /// When the wrong keys are used up.
    pub on_invalid: NodeId,
    /// When the menu times out and the caller has not been heard at all since the call
    /// began (no voice, no key): instead of `on_timeout`, without retries.
    pub on_silence: Option<NodeId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Collect {
    pub prompts: Vec<PromptItem>,
    pub max_digits: usize,
    /// A key that ends the input early (usually `#`); not part of the digits.
    pub terminator: Option<char>,
    /// Waited after the prompts and between keys.
    pub timeout: Duration,
    /// The name the digits are written under on the work order.
    pub store_as: String,
    pub next: NodeId,
    /// When no key at all came.
    pub on_timeout: NodeId,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueNode {
    pub queue: String,
    /// Higher is served first (the ACD's convention: 0 normal, 5 complaint, 9 urgent).
    pub priority: u8,
    /// Played once on entering the queue, before the hold music.
    pub prompts: Vec<PromptItem>,
    pub hold_music: String,
    /// "您前面还有 N 位" this often; `None`: never.
    pub announcement_interval: Option<Duration>,
    /// The IVR's own limit; `None`: the agents file's `max_wait_seconds` applies alone.
    pub max_wait: Option<Duration>,
    /// Where the caller goes when the wait is over (this node's `max_wait`, or the ACD's
    /// overflow to the dialplan).
    pub overflow: NodeId,
    /// A key that asks for a callback instead of waiting, and where the call goes then.
    pub callback: Option<CallbackOffer>,
    /// Where the caller goes when the agent hangs up first (R8); `None`: the engine hangs up.
    pub after_agent: Option<NodeId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallbackOffer {
    pub key: char,
    pub next: NodeId,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Survey {
    pub prompts: Vec<PromptItem>,
    pub min: u8,
    pub max: u8,
    pub timeout: Duration,
    /// How many times a wrong key or a timeout gets the prompts again.
    pub retries: u32,
    pub invalid_prompt: Option<PromptItem>,
    /// After a rating was stored.
    pub next: NodeId,
    /// When no rating came.
    pub on_timeout: NodeId,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetNode {
    pub category: Option<Category>,
    pub urgent: bool,
    /// R15: a complaint about the hotline itself, its agents or a referred enterprise.
    pub hotline_complaint: bool,
    pub callback_requested: bool,
    pub next: NodeId,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoAnswer {
    pub prompt: PromptItem,
    pub repeats: u32,
    pub wait: Duration,
    pub goodbye: PromptItem,
    /// Where the call goes when the caller is heard after all; `None`: voice is ignored.
    pub on_voice: Option<NodeId>,
}

/// The scripts an agent can start on a live call (the engine takes the caller back).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentScripts {
    /// R27 no-answer script.
    pub no_answer: Option<NodeId>,
    /// Seed §6.5.3.
    pub nuisance: Option<NodeId>,
    /// Seed §6.5.2 (R3: a closing, never a refusal).
    pub out_of_scope: Option<NodeId>,
}

/// A compiled, validated dialplan.
#[derive(Clone, Debug, PartialEq)]
pub struct Dialplan {
    /// The file it came from, as named in messages.
    pub source: String,
    /// Set by [`DialplanSlot`]: 0 until installed.
    pub version: u64,
    pub start: NodeId,
    pub nodes: Vec<Node>,
    pub scripts: AgentScripts,
    /// How the caller's audio is told apart into silence and speech.
    pub voice: VadSettings,
}

impl Dialplan {
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0]
    }

    pub fn find(&self, name: &str) -> Option<NodeId> {
        self.nodes.iter().position(|n| n.name == name).map(NodeId)
    }

    /// Every queue the plan puts calls in.
    pub fn queues(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().filter_map(|n| match &n.kind {
            NodeKind::Queue(q) => Some(q.queue.as_str()),
            _ => None,
        })
    }
}

/// The plan new calls take, with a version number that goes up on every reload. A call
/// keeps the `Arc` it started with, so a reload lets it finish on its own version.
#[derive(Clone, Debug)]
pub struct DialplanSlot {
    current: Arc<Dialplan>,
}

impl DialplanSlot {
    /// Installs the first plan as version 1.
    pub fn new(mut plan: Dialplan) -> DialplanSlot {
        plan.version = 1;
        DialplanSlot {
            current: Arc::new(plan),
        }
    }

    /// The plan for a new call.
    pub fn current(&self) -> Arc<Dialplan> {
        Arc::clone(&self.current)
    }

    /// Re-reads a dialplan file (SIGHUP, `POST /reload`): a valid file becomes the new
    /// version and its number is returned; an invalid one leaves the current plan in
    /// place and says why.
    pub fn reload(
        &mut self,
        path: &std::path::Path,
        prompts_dir: &std::path::Path,
        known_queues: &[String],
    ) -> Result<u64, super::IvrError> {
        let plan = super::load(path, prompts_dir, known_queues)?;
        Ok(self.replace(plan))
    }

    /// Installs a newly compiled plan for calls that start from now on; returns its
    /// version. Calls holding the old `Arc` are not touched.
    pub fn replace(&mut self, mut plan: Dialplan) -> u64 {
        plan.version = self.current.version + 1;
        self.current = Arc::new(plan);
        self.current.version
    }
}

/// The prompts that read a queue position: "您前面还有" N "位", N digit by digit.
pub fn position_prompts(position: usize) -> Vec<String> {
    let mut prompts = vec!["position-prefix.wav".to_owned()];
    prompts.extend(digit_prompts(&position.to_string()));
    prompts.push("position-suffix.wav".to_owned());
    prompts
}

/// `digit-N.wav` for each decimal digit of `digits` (other characters are skipped).
pub fn digit_prompts(digits: &str) -> Vec<String> {
    digits
        .chars()
        .filter(char::is_ascii_digit)
        .map(|d| format!("digit-{d}.wav"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_from_the_digit_prompts() {
        assert_eq!(
            position_prompts(12),
            [
                "position-prefix.wav",
                "digit-1.wav",
                "digit-2.wav",
                "position-suffix.wav"
            ]
        );
        assert_eq!(
            digit_prompts("10 03"),
            ["digit-1.wav", "digit-0.wav", "digit-0.wav", "digit-3.wav"]
        );
    }
}
