//! The IVR: the hotline's call flow as data (a dialplan file, `dialplans/8890.toml`),
//! compiled and validated at start-up, and a per-call interpreter that turns what the
//! caller does into what the switch should do. Requirements R2, R3, R8, R11, R15, R24,
//! R27.
//!
//! Pure, sans-IO: [`compile()`] takes the file's text and a way to ask whether a prompt
//! exists; [`CallIvr::step`] takes `now` and one [`Event`] and returns [`Action`]s, with
//! its next deadline from [`CallIvr::poll_timeout`]. No clock, socket or file inside. The
//! switch core drives it; the module imports only config-free types (`media::vad`,
//! `workorder::Category`).
//!
//! - [`plan`]: the compiled dialplan and its versions ([`DialplanSlot`]).
//! - [`compile`](mod@compile): file → plan, with file:line errors.
//! - [`interpreter`]: one call's walk through a plan.
//! - [`load_call_flow`]: the one place that reads a dialplan and its prompts from disk
//!   (start-up, SIGHUP, `POST /reload`).

pub mod compile;
pub mod interpreter;
pub mod plan;

pub use compile::compile;
pub use interpreter::{Action, AgentScript, CallIvr, Event, PlayId, WorkOrderWrite};
pub use plan::{Dialplan, DialplanSlot, NodeId, digit_prompts, position_prompts};

use std::fmt;

/// What kind of problem a dialplan has; tests and tools match on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialplanErrorKind {
    /// TOML syntax, an unknown key, a value of the wrong type.
    Syntax,
    /// A reference to a node that is not defined.
    UnknownNode,
    /// A prompt file that is not in the prompts directory.
    MissingPrompt,
    /// A node nothing leads to.
    Unreachable,
    /// Nodes that lead only to each other, never to a queue, transfer or hang-up.
    LoopWithoutExit,
    /// A queue the agents file does not define.
    UnknownQueue,
    /// One key for two choices in a menu.
    DuplicateDigit,
    /// Anything else that makes no sense (a missing field, a bad key, a bad category).
    Invalid,
}

/// One problem in a dialplan file, with where it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}:{line}: {reason}")]
pub struct DialplanError {
    pub path: String,
    pub line: usize,
    pub kind: DialplanErrorKind,
    pub reason: String,
}

/// Errors of the IVR layer at run time.
#[derive(Debug, thiserror::Error)]
pub enum IvrError {
    /// The dialplan file did not compile; every problem is listed.
    #[error("{}", ErrorList(.0))]
    Invalid(Vec<DialplanError>),
    /// The dialplan file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// An agent asked for a script the dialplan does not define.
    #[error("the dialplan defines no {0} script")]
    NoSuchScript(&'static str),
    /// The out-of-scope closing needs one of R2's out-of-scope categories.
    #[error("{0} is not an out-of-scope category (R2)")]
    NotOutOfScope(crate::workorder::Category),
    /// The call's IVR has already ended (hung up or transferred).
    #[error("the call has left the IVR")]
    Finished,
    /// A prompt in the prompts directory is not a usable WAV.
    #[error("{0}")]
    Prompt(#[from] crate::media::rtp::MediaError),
    /// Prompts the engine plays itself are not in the prompts directory.
    #[error("{dir}: missing prompts: {}", .missing.join(", "))]
    MissingPrompts { dir: String, missing: Vec<String> },
}

/// The call flow new calls take: the dialplan and the prompts directory it plays from,
/// loaded at start and on reload, and replaced together.
#[derive(Clone, Debug)]
pub struct CallFlow {
    pub plan: Dialplan,
    pub prompts: std::sync::Arc<crate::media::prompt::PromptLibrary>,
}

/// Reads the prompts directory and the configured dialplan (or builds the built-in
/// flow) and checks them against each other and the agents file's queues. `required`
/// are prompts the engine plays outside any dialplan. Nothing is replaced here: the
/// caller installs the result, so a bad file leaves the running flow alone.
pub fn load_call_flow(
    config: &crate::config::Config,
    agents: &crate::config::agents::AgentsConfig,
    required: &[&str],
) -> Result<CallFlow, IvrError> {
    let library = crate::media::prompt::PromptLibrary::load_dir(&config.prompts.dir)?;
    let missing = library.missing(required.iter().copied());
    if !missing.is_empty() {
        return Err(IvrError::MissingPrompts {
            dir: config.prompts.dir.display().to_string(),
            missing: missing.into_iter().map(str::to_owned).collect(),
        });
    }
    let exists = |file: &str| library.contains(file);
    let plan = match &config.ivr.dialplan {
        Some(path) => {
            let queues: Vec<String> = agents.queues.iter().map(|q| q.name.clone()).collect();
            read_and_compile(path, &queues, exists)?
        }
        None => BuiltinFlow {
            greeting: &config.prompts.greeting.to_string_lossy(),
            hold_music: &config.acd.hold_music.to_string_lossy(),
            queue: &config.acd.default_queue,
            announcement: config.acd.position_announcement_interval,
        }
        .compile(exists)?,
    };
    Ok(CallFlow {
        plan,
        prompts: std::sync::Arc::new(library),
    })
}

struct ErrorList<'a>(&'a [DialplanError]);

impl fmt::Display for ErrorList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// What a hotline without a dialplan file does (the engine's embedded default): the
/// greeting, then `queue` with the queue-wait prompt, `hold_music` and the caller's
/// position every `announcement` (none when zero); the closing when the agent hangs up
/// first (R8), and the closing too when the queue gives up on the call.
pub struct BuiltinFlow<'a> {
    pub greeting: &'a str,
    pub hold_music: &'a str,
    pub queue: &'a str,
    pub announcement: std::time::Duration,
}

impl BuiltinFlow<'_> {
    /// The flow as a dialplan, compiled like a file so that it is checked the same way
    /// (a missing prompt is the same error).
    pub fn compile(&self, prompt_exists: impl Fn(&str) -> bool) -> Result<Dialplan, IvrError> {
        let quote = |text: &str| toml::Value::String(text.to_owned()).to_string();
        let announcement = match self.announcement.as_secs() {
            0 => String::new(),
            seconds => format!("announcement_interval_seconds = {seconds}"),
        };
        let text = format!(
            r#"start = "greeting"

[[nodes]]
name = "greeting"
kind = "play"
prompts = [{greeting}]
next = "queue"

[[nodes]]
name = "queue"
kind = "queue"
queue = {queue}
priority = 0
prompts = ["queue-wait.wav"]
hold_music = {hold_music}
{announcement}
overflow = "closing"
after_agent = "closing"

[[nodes]]
name = "closing"
kind = "hangup"
prompts = ["closing.wav"]
"#,
            greeting = quote(self.greeting),
            queue = quote(self.queue),
            hold_music = quote(self.hold_music),
        );
        compile(
            BUILTIN_SOURCE,
            &text,
            &[self.queue.to_owned()],
            prompt_exists,
        )
        .map_err(IvrError::Invalid)
    }
}

/// How the embedded flow is named in messages.
pub const BUILTIN_SOURCE: &str = "(built-in call flow)";

/// Reads and compiles a dialplan file, with prompts looked up in `prompts_dir`
/// (`hotline check-dialplan`).
pub fn load(
    path: &std::path::Path,
    prompts_dir: &std::path::Path,
    known_queues: &[String],
) -> Result<Dialplan, IvrError> {
    read_and_compile(path, known_queues, |file| prompts_dir.join(file).is_file())
}

fn read_and_compile(
    path: &std::path::Path,
    known_queues: &[String],
    prompt_exists: impl Fn(&str) -> bool,
) -> Result<Dialplan, IvrError> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| IvrError::Read {
        path: source.clone(),
        source: e,
    })?;
    compile(&source, &text, known_queues, prompt_exists).map_err(IvrError::Invalid)
}
