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

/// Reads and compiles a dialplan file, with prompts looked up in `prompts_dir`. The one
/// function here that touches the file system; the runtime calls it at start-up and on
/// reload.
pub fn load(
    path: &std::path::Path,
    prompts_dir: &std::path::Path,
    known_queues: &[String],
) -> Result<Dialplan, IvrError> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| IvrError::Read {
        path: source.clone(),
        source: e,
    })?;
    compile(&source, &text, known_queues, |file| {
        prompts_dir.join(file).is_file()
    })
    .map_err(IvrError::Invalid)
}
