//! Compiling a dialplan file into a [`Dialplan`]: parse the TOML, resolve every node
//! name, check every prompt and queue, and refuse unreachable nodes and loops with no
//! exit. Pure: the caller reads the file and says which prompts exist.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::plan::*;
use super::{DialplanError, DialplanErrorKind};
use crate::config::line_of;
use crate::media::vad::VadSettings;
use crate::workorder::Category;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    start: Spanned<String>,
    #[serde(default)]
    scripts: RawScripts,
    #[serde(default)]
    voice: RawVoice,
    #[serde(default)]
    nodes: Vec<RawNode>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScripts {
    no_answer: Option<Spanned<String>>,
    nuisance: Option<Spanned<String>>,
    out_of_scope: Option<Spanned<String>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVoice {
    voice_threshold_dbfs: Option<Spanned<f32>>,
    silence_threshold_dbfs: Option<Spanned<f32>>,
    onset_ms: Option<u32>,
    hangover_ms: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChoice {
    digit: Spanned<String>,
    next: Spanned<String>,
}

/// Every field any node kind has; [`FIELDS`] says which kind takes which.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: Spanned<String>,
    kind: Spanned<String>,
    prompts: Option<Vec<Spanned<String>>>,
    next: Option<Spanned<String>>,
    // menu
    choices: Option<Vec<RawChoice>>,
    timeout_seconds: Option<Spanned<u64>>,
    timeout_retries: Option<u32>,
    invalid_retries: Option<u32>,
    invalid_prompt: Option<Spanned<String>>,
    on_timeout: Option<Spanned<String>>,
    on_invalid: Option<Spanned<String>>,
    on_silence: Option<Spanned<String>>,
    // collect
    max_digits: Option<Spanned<usize>>,
    terminator: Option<Spanned<String>>,
    store_as: Option<Spanned<String>>,
    // queue
    queue: Option<Spanned<String>>,
    priority: Option<u8>,
    hold_music: Option<Spanned<String>>,
    announcement_interval_seconds: Option<u64>,
    max_wait_seconds: Option<Spanned<u64>>,
    overflow: Option<Spanned<String>>,
    callback_key: Option<Spanned<String>>,
    callback_next: Option<Spanned<String>>,
    after_agent: Option<Spanned<String>>,
    // survey
    min: Option<u8>,
    max: Option<u8>,
    retries: Option<u32>,
    // set
    category: Option<Spanned<String>>,
    urgent: Option<bool>,
    hotline_complaint: Option<bool>,
    callback_requested: Option<bool>,
    // transfer
    uri: Option<Spanned<String>>,
    on_failure: Option<Spanned<String>>,
    // no_answer
    prompt: Option<Spanned<String>>,
    repeats: Option<u32>,
    wait_seconds: Option<u64>,
    goodbye: Option<Spanned<String>>,
    on_voice: Option<Spanned<String>>,
}

const KINDS: &[&str] = &[
    "play",
    "menu",
    "collect",
    "queue",
    "survey",
    "set",
    "transfer",
    "hangup",
    "no_answer",
];

/// The fields each kind accepts besides `name` and `kind`.
const FIELDS: &[(&str, &[&str])] = &[
    ("play", &["prompts", "next"]),
    (
        "menu",
        &[
            "prompts",
            "choices",
            "timeout_seconds",
            "timeout_retries",
            "invalid_retries",
            "invalid_prompt",
            "on_timeout",
            "on_invalid",
            "on_silence",
        ],
    ),
    (
        "collect",
        &[
            "prompts",
            "max_digits",
            "terminator",
            "timeout_seconds",
            "store_as",
            "next",
            "on_timeout",
        ],
    ),
    (
        "queue",
        &[
            "queue",
            "priority",
            "prompts",
            "hold_music",
            "announcement_interval_seconds",
            "max_wait_seconds",
            "overflow",
            "callback_key",
            "callback_next",
            "after_agent",
        ],
    ),
    (
        "survey",
        &[
            "prompts",
            "min",
            "max",
            "timeout_seconds",
            "retries",
            "invalid_prompt",
            "next",
            "on_timeout",
        ],
    ),
    (
        "set",
        &[
            "category",
            "urgent",
            "hotline_complaint",
            "callback_requested",
            "next",
        ],
    ),
    ("transfer", &["prompts", "uri", "on_failure"]),
    ("hangup", &["prompts"]),
    (
        "no_answer",
        &["prompt", "repeats", "wait_seconds", "goodbye", "on_voice"],
    ),
];

impl RawNode {
    /// The optional fields this node sets, by name.
    fn present_fields(&self) -> Vec<&'static str> {
        let mut present = Vec::new();
        macro_rules! check {
            ($($field:ident),*) => { $( if self.$field.is_some() { present.push(stringify!($field)); } )* };
        }
        check!(
            prompts,
            next,
            choices,
            timeout_seconds,
            timeout_retries,
            invalid_retries,
            invalid_prompt,
            on_timeout,
            on_invalid,
            on_silence,
            max_digits,
            terminator,
            store_as,
            queue,
            priority,
            hold_music,
            announcement_interval_seconds,
            max_wait_seconds,
            overflow,
            callback_key,
            callback_next,
            after_agent,
            min,
            max,
            retries,
            category,
            urgent,
            hotline_complaint,
            callback_requested,
            uri,
            on_failure,
            prompt,
            repeats,
            wait_seconds,
            goodbye,
            on_voice
        );
        present
    }
}

/// Compiles a dialplan. `source` names the file in messages; `known_queues` are the
/// agents file's queues; `prompt_exists` says whether a prompt file (a name relative to
/// the prompts directory) is there. Every problem found is returned, in file order.
pub fn compile(
    source: &str,
    text: &str,
    known_queues: &[String],
    prompt_exists: impl Fn(&str) -> bool,
) -> Result<Dialplan, Vec<DialplanError>> {
    let raw: RawPlan = toml::from_str(text).map_err(|e| {
        vec![DialplanError {
            path: source.to_owned(),
            line: e.span().map(|s| line_of(text, s.start)).unwrap_or(1),
            kind: DialplanErrorKind::Syntax,
            reason: e.message().trim().to_owned(),
        }]
    })?;
    let mut c = Compiler {
        source,
        text,
        errors: Vec::new(),
        names: HashMap::new(),
        prompt_exists: &prompt_exists,
        checked_prompts: HashSet::new(),
    };
    c.compile(raw, known_queues)
}

struct Compiler<'a> {
    source: &'a str,
    text: &'a str,
    errors: Vec<DialplanError>,
    names: HashMap<String, NodeId>,
    prompt_exists: &'a dyn Fn(&str) -> bool,
    checked_prompts: HashSet<String>,
}

/// Marks a reference the compiler could not resolve; never reaches a compiled plan
/// because any error stops compilation.
const UNRESOLVED: NodeId = NodeId(usize::MAX);

impl Compiler<'_> {
    fn error(&mut self, span: Range<usize>, kind: DialplanErrorKind, reason: String) {
        self.errors.push(DialplanError {
            path: self.source.to_owned(),
            line: line_of(self.text, span.start),
            kind,
            reason,
        });
    }

    fn line(&self, span: Range<usize>) -> usize {
        line_of(self.text, span.start)
    }

    fn node_ref(&mut self, field: &str, name: &Spanned<String>) -> NodeId {
        match self.names.get(name.get_ref().as_str()) {
            Some(&id) => id,
            None => {
                self.error(
                    name.span(),
                    DialplanErrorKind::UnknownNode,
                    format!("{field}: no node named {:?}", name.get_ref()),
                );
                UNRESOLVED
            }
        }
    }

    fn opt_ref(&mut self, field: &str, name: &Option<Spanned<String>>) -> Option<NodeId> {
        name.as_ref().map(|n| self.node_ref(field, n))
    }

    fn required<'v, T>(
        &mut self,
        node: &RawNode,
        field: &str,
        value: &'v Option<T>,
    ) -> Option<&'v T> {
        if value.is_none() {
            self.error(
                node.name.span(),
                DialplanErrorKind::Invalid,
                format!(
                    "node {:?} ({}) needs `{field}`",
                    node.name.get_ref(),
                    node.kind.get_ref()
                ),
            );
        }
        value.as_ref()
    }

    fn required_ref(
        &mut self,
        node: &RawNode,
        field: &str,
        name: &Option<Spanned<String>>,
    ) -> NodeId {
        match self.required(node, field, name) {
            Some(n) => self.node_ref(field, n),
            None => UNRESOLVED,
        }
    }

    fn prompt(&mut self, name: &Spanned<String>) -> PromptItem {
        let file = name.get_ref().trim();
        if file == AGENT_NUMBER_PLACEHOLDER {
            for d in 0..10 {
                let digit = format!("digit-{d}.wav");
                self.check_prompt_file(&digit, name.span(), " (to read the agent number)");
            }
            return PromptItem::AgentNumber;
        }
        self.check_prompt_file(file, name.span(), "");
        PromptItem::File(file.to_owned())
    }

    fn check_prompt_file(&mut self, file: &str, span: Range<usize>, why: &str) {
        let bad_name = file.is_empty()
            || file.contains("..")
            || file.starts_with('/')
            || !file.ends_with(".wav");
        if bad_name {
            self.error(
                span,
                DialplanErrorKind::Invalid,
                format!(
                    "prompt {file:?}: name a .wav file inside the prompts directory, or {AGENT_NUMBER_PLACEHOLDER}"
                ),
            );
            return;
        }
        // One message per missing file and line is enough.
        let key = format!("{file}@{}", self.line(span.clone()));
        if !(self.prompt_exists)(file) && self.checked_prompts.insert(key) {
            self.error(
                span,
                DialplanErrorKind::MissingPrompt,
                format!("prompt file {file:?} does not exist{why}"),
            );
        }
    }

    fn prompts(&mut self, list: &Option<Vec<Spanned<String>>>) -> Vec<PromptItem> {
        list.iter().flatten().map(|p| self.prompt(p)).collect()
    }

    fn key(&mut self, value: &Spanned<String>, field: &str) -> char {
        let mut chars = value.get_ref().chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) if c.is_ascii_digit() || c == '*' || c == '#' => c,
            _ => {
                self.error(
                    value.span(),
                    DialplanErrorKind::Invalid,
                    format!(
                        "{field}: {:?} is not one keypad key (0-9, * or #)",
                        value.get_ref()
                    ),
                );
                '?'
            }
        }
    }

    fn compile(
        &mut self,
        raw: RawPlan,
        known_queues: &[String],
    ) -> Result<Dialplan, Vec<DialplanError>> {
        // Names first, so that references may point forward.
        for (i, node) in raw.nodes.iter().enumerate() {
            let name = node.name.get_ref().trim().to_owned();
            if name.is_empty() {
                self.error(
                    node.name.span(),
                    DialplanErrorKind::Invalid,
                    "a node needs a name".into(),
                );
            } else if let Some(&NodeId(first)) = self.names.get(&name) {
                let first_line = self.line(raw.nodes[first].name.span());
                self.error(
                    node.name.span(),
                    DialplanErrorKind::Invalid,
                    format!("node {name:?} is defined twice (first on line {first_line})"),
                );
            } else {
                self.names.insert(name, NodeId(i));
            }
        }

        let start = self.node_ref("start", &raw.start);
        let scripts = AgentScripts {
            no_answer: self.opt_ref("scripts.no_answer", &raw.scripts.no_answer),
            nuisance: self.opt_ref("scripts.nuisance", &raw.scripts.nuisance),
            out_of_scope: self.opt_ref("scripts.out_of_scope", &raw.scripts.out_of_scope),
        };
        let voice = self.voice(&raw.voice);

        let mut nodes = Vec::with_capacity(raw.nodes.len());
        for node in &raw.nodes {
            let kind = self.node_kind(node, known_queues);
            nodes.push(Node {
                name: node.name.get_ref().trim().to_owned(),
                line: self.line(node.name.span()),
                kind,
            });
        }

        // The graph is checked even when other errors were found, so one run reports
        // everything; references that did not resolve are left out of it.
        {
            let mut entries = vec![start];
            entries.extend(
                [scripts.no_answer, scripts.nuisance, scripts.out_of_scope]
                    .into_iter()
                    .flatten(),
            );
            self.check_graph(&nodes, &entries);
        }
        if !self.errors.is_empty() {
            self.errors.sort_by_key(|e| e.line);
            return Err(std::mem::take(&mut self.errors));
        }
        Ok(Dialplan {
            source: self.source.to_owned(),
            version: 0,
            start,
            nodes,
            scripts,
            voice,
        })
    }

    fn voice(&mut self, raw: &RawVoice) -> VadSettings {
        let defaults = VadSettings::default();
        let settings = VadSettings {
            voice_threshold_dbfs: raw
                .voice_threshold_dbfs
                .as_ref()
                .map_or(defaults.voice_threshold_dbfs, |v| *v.get_ref()),
            silence_threshold_dbfs: raw
                .silence_threshold_dbfs
                .as_ref()
                .map_or(defaults.silence_threshold_dbfs, |v| *v.get_ref()),
            onset_ms: raw.onset_ms.unwrap_or(defaults.onset_ms),
            hangover_ms: raw.hangover_ms.unwrap_or(defaults.hangover_ms),
        };
        for (value, key) in [
            (&raw.voice_threshold_dbfs, "voice.voice_threshold_dbfs"),
            (&raw.silence_threshold_dbfs, "voice.silence_threshold_dbfs"),
        ] {
            if let Some(v) = value
                && !(-96.0..=0.0).contains(v.get_ref())
            {
                self.error(
                    v.span(),
                    DialplanErrorKind::Invalid,
                    format!("{key}: {} is not between -96 and 0 dBFS", v.get_ref()),
                );
            }
        }
        if settings.silence_threshold_dbfs > settings.voice_threshold_dbfs {
            let span = raw
                .silence_threshold_dbfs
                .as_ref()
                .or(raw.voice_threshold_dbfs.as_ref())
                .map_or(0..0, |v| v.span());
            self.error(
                span,
                DialplanErrorKind::Invalid,
                "voice.silence_threshold_dbfs must not be above voice.voice_threshold_dbfs".into(),
            );
        }
        settings
    }

    fn node_kind(&mut self, node: &RawNode, known_queues: &[String]) -> NodeKind {
        let kind = node.kind.get_ref().as_str();
        let Some((_, allowed)) = FIELDS.iter().find(|(k, _)| *k == kind) else {
            self.error(
                node.kind.span(),
                DialplanErrorKind::Invalid,
                format!("unknown node kind {kind:?}; one of {}", KINDS.join(", ")),
            );
            return NodeKind::HangUp { prompts: vec![] };
        };
        for field in node.present_fields() {
            if !allowed.contains(&field) {
                self.error(
                    node.name.span(),
                    DialplanErrorKind::Invalid,
                    format!(
                        "node {:?}: a {kind} node has no `{field}` (it takes {})",
                        node.name.get_ref(),
                        allowed.join(", ")
                    ),
                );
            }
        }
        if let Some(t) = node.timeout_seconds.as_ref().filter(|t| *t.get_ref() == 0) {
            self.error(
                t.span(),
                DialplanErrorKind::Invalid,
                "timeout_seconds: at least 1 (the caller needs time to press a key)".into(),
            );
        }
        if node.wait_seconds == Some(0) {
            self.error(
                node.name.span(),
                DialplanErrorKind::Invalid,
                format!(
                    "node {:?}: wait_seconds must be at least 1",
                    node.name.get_ref()
                ),
            );
        }
        let seconds = |s: &Option<Spanned<u64>>, default: u64| {
            Duration::from_secs(s.as_ref().map_or(default, |v| *v.get_ref()))
        };
        match kind {
            "play" => NodeKind::Play {
                prompts: self.prompts(&node.prompts),
                next: self.required_ref(node, "next", &node.next),
            },
            "menu" => {
                let prompts = self.prompts(&node.prompts);
                let mut choices = Vec::new();
                let mut seen: BTreeMap<char, usize> = BTreeMap::new();
                for choice in node.choices.iter().flatten() {
                    let key = self.key(&choice.digit, "choices.digit");
                    let line = self.line(choice.digit.span());
                    if let Some(first) = seen.get(&key) {
                        self.error(
                            choice.digit.span(),
                            DialplanErrorKind::DuplicateDigit,
                            format!(
                                "menu {:?}: digit {key} is used twice (first on line {first})",
                                node.name.get_ref()
                            ),
                        );
                    } else {
                        seen.insert(key, line);
                    }
                    let next = self.node_ref("choices.next", &choice.next);
                    choices.push((key, next));
                }
                if choices.is_empty() {
                    self.error(
                        node.name.span(),
                        DialplanErrorKind::Invalid,
                        format!("menu {:?} has no choices", node.name.get_ref()),
                    );
                }
                let on_timeout = self.required_ref(node, "on_timeout", &node.on_timeout);
                let on_invalid = self
                    .opt_ref("on_invalid", &node.on_invalid)
                    .unwrap_or(on_timeout);
                NodeKind::Menu(Menu {
                    prompts,
                    choices,
                    timeout: seconds(&node.timeout_seconds, 5),
                    timeout_retries: node.timeout_retries.unwrap_or(0),
                    invalid_retries: node.invalid_retries.unwrap_or(2),
                    invalid_prompt: node.invalid_prompt.as_ref().map(|p| self.prompt(p)),
                    on_timeout,
                    on_invalid,
                    on_silence: self.opt_ref("on_silence", &node.on_silence),
                })
            }
            "collect" => {
                let max_digits = match self.required(node, "max_digits", &node.max_digits) {
                    Some(m) if (1..=32).contains(m.get_ref()) => *m.get_ref(),
                    Some(m) => {
                        self.error(
                            m.span(),
                            DialplanErrorKind::Invalid,
                            "max_digits: between 1 and 32".into(),
                        );
                        1
                    }
                    None => 1,
                };
                let terminator = node.terminator.as_ref().map(|t| self.key(t, "terminator"));
                let store_as = self
                    .required(node, "store_as", &node.store_as)
                    .map(|s| s.get_ref().clone())
                    .unwrap_or_default();
                let next = self.required_ref(node, "next", &node.next);
                NodeKind::Collect(Collect {
                    prompts: self.prompts(&node.prompts),
                    max_digits,
                    terminator,
                    timeout: seconds(&node.timeout_seconds, 5),
                    store_as,
                    next,
                    on_timeout: self.opt_ref("on_timeout", &node.on_timeout).unwrap_or(next),
                })
            }
            "queue" => {
                let queue = match self.required(node, "queue", &node.queue) {
                    Some(q) => {
                        if !known_queues.iter().any(|k| k == q.get_ref()) {
                            self.error(
                                q.span(),
                                DialplanErrorKind::UnknownQueue,
                                format!(
                                    "queue {:?} is not in the agents file (its queues: {})",
                                    q.get_ref(),
                                    known_queues.join(", ")
                                ),
                            );
                        }
                        q.get_ref().clone()
                    }
                    None => String::new(),
                };
                let hold_music = match self.required(node, "hold_music", &node.hold_music) {
                    Some(h) => match self.prompt(h) {
                        PromptItem::File(f) => f,
                        PromptItem::AgentNumber => {
                            self.error(
                                h.span(),
                                DialplanErrorKind::Invalid,
                                "hold_music must be a file".into(),
                            );
                            String::new()
                        }
                    },
                    None => String::new(),
                };
                let announcement_interval = node
                    .announcement_interval_seconds
                    .filter(|&s| s > 0)
                    .map(Duration::from_secs);
                if announcement_interval.is_some() {
                    let span = node.name.span();
                    for file in ["position-prefix.wav", "position-suffix.wav"]
                        .into_iter()
                        .map(str::to_owned)
                        .chain((0..10).map(|d| format!("digit-{d}.wav")))
                    {
                        self.check_prompt_file(
                            &file,
                            span.clone(),
                            " (for position announcements)",
                        );
                    }
                }
                let max_wait = match &node.max_wait_seconds {
                    Some(s) if *s.get_ref() == 0 => {
                        self.error(
                            s.span(),
                            DialplanErrorKind::Invalid,
                            "max_wait_seconds: at least 1".into(),
                        );
                        None
                    }
                    other => other.as_ref().map(|s| Duration::from_secs(*s.get_ref())),
                };
                let callback = match (&node.callback_key, &node.callback_next) {
                    (Some(key), Some(next)) => Some(CallbackOffer {
                        key: self.key(key, "callback_key"),
                        next: self.node_ref("callback_next", next),
                    }),
                    (None, None) => None,
                    _ => {
                        self.error(
                            node.name.span(),
                            DialplanErrorKind::Invalid,
                            format!(
                                "queue node {:?}: give both callback_key and callback_next, or neither",
                                node.name.get_ref()
                            ),
                        );
                        None
                    }
                };
                NodeKind::Queue(QueueNode {
                    queue,
                    priority: node.priority.unwrap_or(0),
                    prompts: self.prompts(&node.prompts),
                    hold_music,
                    announcement_interval,
                    max_wait,
                    overflow: self.required_ref(node, "overflow", &node.overflow),
                    callback,
                    after_agent: self.opt_ref("after_agent", &node.after_agent),
                })
            }
            "survey" => {
                let (min, max) = (node.min.unwrap_or(1), node.max.unwrap_or(5));
                if !(min <= max && max <= 9) {
                    self.error(
                        node.name.span(),
                        DialplanErrorKind::Invalid,
                        format!("survey {:?}: min ≤ max ≤ 9 (one key)", node.name.get_ref()),
                    );
                }
                let next = self.required_ref(node, "next", &node.next);
                NodeKind::Survey(Survey {
                    prompts: self.prompts(&node.prompts),
                    min,
                    max,
                    timeout: seconds(&node.timeout_seconds, 8),
                    retries: node.retries.unwrap_or(1),
                    invalid_prompt: node.invalid_prompt.as_ref().map(|p| self.prompt(p)),
                    next,
                    on_timeout: self.opt_ref("on_timeout", &node.on_timeout).unwrap_or(next),
                })
            }
            "set" => {
                let category =
                    node.category
                        .as_ref()
                        .and_then(|c| match c.get_ref().parse::<Category>() {
                            Ok(category) => Some(category),
                            Err(_) => {
                                let all: Vec<&str> =
                                    Category::ALL.iter().map(|c| c.as_str()).collect();
                                self.error(
                                    c.span(),
                                    DialplanErrorKind::Invalid,
                                    format!(
                                        "unknown category {:?}; one of {}",
                                        c.get_ref(),
                                        all.join(", ")
                                    ),
                                );
                                None
                            }
                        });
                NodeKind::Set(SetNode {
                    category,
                    urgent: node.urgent.unwrap_or(false),
                    hotline_complaint: node.hotline_complaint.unwrap_or(false),
                    callback_requested: node.callback_requested.unwrap_or(false),
                    next: self.required_ref(node, "next", &node.next),
                })
            }
            "transfer" => {
                let uri = match self.required(node, "uri", &node.uri) {
                    Some(u) => {
                        let text = u.get_ref().trim();
                        if !(text.starts_with("sip:") || text.starts_with("sips:"))
                            || text.len() < 6
                        {
                            self.error(
                                u.span(),
                                DialplanErrorKind::Invalid,
                                format!("uri {text:?}: a SIP URI, such as sip:12345@10.0.0.1"),
                            );
                        }
                        text.to_owned()
                    }
                    None => String::new(),
                };
                NodeKind::Transfer {
                    prompts: self.prompts(&node.prompts),
                    uri,
                    on_failure: self.opt_ref("on_failure", &node.on_failure),
                }
            }
            "hangup" => NodeKind::HangUp {
                prompts: self.prompts(&node.prompts),
            },
            "no_answer" => {
                let prompt = match self.required(node, "prompt", &node.prompt) {
                    Some(p) => self.prompt(p),
                    None => PromptItem::File(String::new()),
                };
                let goodbye = match self.required(node, "goodbye", &node.goodbye) {
                    Some(p) => self.prompt(p),
                    None => PromptItem::File(String::new()),
                };
                NodeKind::NoAnswer(NoAnswer {
                    prompt,
                    repeats: node.repeats.unwrap_or(3),
                    wait: Duration::from_secs(node.wait_seconds.unwrap_or(5)),
                    goodbye,
                    on_voice: self.opt_ref("on_voice", &node.on_voice),
                })
            }
            _ => unreachable!("kinds are listed in FIELDS"),
        }
    }

    /// Unreachable nodes, and loops the call could never leave.
    fn check_graph(&mut self, nodes: &[Node], entries: &[NodeId]) {
        let all_edges: Vec<Vec<NodeId>> = nodes.iter().map(|n| successors(&n.kind)).collect();
        let resolved = |id: &NodeId| id.0 < nodes.len();
        let edges: Vec<Vec<NodeId>> = all_edges
            .iter()
            .map(|e| e.iter().copied().filter(resolved).collect())
            .collect();
        let mut reachable = vec![false; nodes.len()];
        let mut stack: Vec<NodeId> = entries.iter().copied().filter(resolved).collect();
        while let Some(NodeId(i)) = stack.pop() {
            if !std::mem::replace(&mut reachable[i], true) {
                stack.extend(edges[i].iter().copied());
            }
        }
        let entries_resolved = entries.iter().all(resolved);
        for (i, node) in nodes.iter().enumerate() {
            if entries_resolved && !reachable[i] {
                self.errors.push(DialplanError {
                    path: self.source.to_owned(),
                    line: node.line,
                    kind: DialplanErrorKind::Unreachable,
                    reason: format!(
                        "node {:?} is unreachable: neither `start`, a script, nor another node leads to it",
                        node.name
                    ),
                });
            }
        }

        // A node "can exit" if some path from it reaches a node where the call leaves the
        // IVR or waits on someone: hang-up, transfer, queue, no-answer (always ends).
        // A node with a broken reference already has its error; it is not judged here.
        let mut can_exit: Vec<bool> = nodes
            .iter()
            .zip(&all_edges)
            .map(|(n, e)| is_exit(&n.kind) || !e.iter().all(resolved))
            .collect();
        loop {
            let mut changed = false;
            for i in 0..nodes.len() {
                if !can_exit[i] && edges[i].iter().any(|s| can_exit[s.0]) {
                    can_exit[i] = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        // Every node without an exit leads into a cycle of such nodes; report each cycle
        // once, at its first node in the file.
        let mut reported = vec![false; nodes.len()];
        for i in 0..nodes.len() {
            if can_exit[i] || reported[i] || !reachable[i] {
                continue;
            }
            // Walk until a node repeats: that is the cycle.
            let mut path = vec![i];
            let mut at = i;
            let cycle = loop {
                at = edges[at][0].0;
                if let Some(pos) = path.iter().position(|&p| p == at) {
                    break path[pos..].to_vec();
                }
                path.push(at);
            };
            for &p in &path {
                reported[p] = true;
            }
            let first = *cycle
                .iter()
                .min_by_key(|&&c| nodes[c].line)
                .expect("a cycle");
            let mut names: Vec<&str> = cycle.iter().map(|&c| nodes[c].name.as_str()).collect();
            names.push(nodes[cycle[0]].name.as_str());
            self.errors.push(DialplanError {
                path: self.source.to_owned(),
                line: nodes[first].line,
                kind: DialplanErrorKind::LoopWithoutExit,
                reason: format!(
                    "loop with no exit: {} (no path from it reaches a queue, transfer, hangup or no_answer node)",
                    names.join(" → ")
                ),
            });
        }
    }
}

fn is_exit(kind: &NodeKind) -> bool {
    matches!(
        kind,
        NodeKind::HangUp { .. }
            | NodeKind::Transfer { .. }
            | NodeKind::Queue(_)
            | NodeKind::NoAnswer(_)
    )
}

/// Every node a node can lead to.
fn successors(kind: &NodeKind) -> Vec<NodeId> {
    match kind {
        NodeKind::Play { next, .. } => vec![*next],
        NodeKind::Menu(m) => {
            let mut s: Vec<NodeId> = m.choices.iter().map(|(_, n)| *n).collect();
            s.extend([m.on_timeout, m.on_invalid]);
            s.extend(m.on_silence);
            s
        }
        NodeKind::Collect(c) => vec![c.next, c.on_timeout],
        NodeKind::Queue(q) => {
            let mut s = vec![q.overflow];
            s.extend(q.callback.as_ref().map(|c| c.next));
            s.extend(q.after_agent);
            s
        }
        NodeKind::Survey(s) => vec![s.next, s.on_timeout],
        NodeKind::Set(s) => vec![s.next],
        NodeKind::Transfer { on_failure, .. } => on_failure.iter().copied().collect(),
        NodeKind::HangUp { .. } => vec![],
        NodeKind::NoAnswer(n) => n.on_voice.iter().copied().collect(),
    }
}
