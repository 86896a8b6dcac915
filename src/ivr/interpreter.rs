//! One call's walk through a dialplan: fed what the caller and the switch do
//! ([`Event`]), it says what to do next ([`Action`]). Pure and sans-IO: `now` comes
//! with every input, deadlines go out through [`CallIvr::poll_timeout`], and the call
//! keeps the plan version it started on (`Arc<Dialplan>`), whatever reloads happen.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::IvrError;
use super::plan::*;
use crate::workorder::Category;

/// Names one `Play` so that a late "finished" for a prompt already replaced is ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PlayId(pub u64);

/// What happened on the call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A keypad key, from RFC 4733, in-band tones or SIP INFO (already de-duplicated).
    Digit(char),
    /// The prompts of a `Play` (without `then_loop`) have all been played.
    PromptFinished(PlayId),
    /// The voice activity detector heard the caller start speaking.
    VoiceStarted,
    /// The caller has gone quiet.
    VoiceEnded,
    /// `now` has reached [`CallIvr::poll_timeout`].
    Timeout,
    /// An agent answered the call the IVR queued (their agent number).
    AgentJoined { agent: String },
    /// The agent hung up and the caller is still there (R8).
    AgentLeft,
    /// The agent's answer came too late (the ACD had already withdrawn the offer): the
    /// caller is back in the queue, waiting.
    AgentWithdrawn,
    /// The ACD gave up on the call (the agents file's `max_wait_seconds`, with an
    /// overflow to the dialplan); the call is no longer in the queue.
    QueueOverflowed,
    /// A `Transfer` could not be completed.
    TransferFailed,
}

/// What the switch should do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Play these files (names in the prompts directory), one after another, replacing
    /// whatever plays now; then loop `then_loop` until the next `Play` or `Stop`. Report
    /// [`Event::PromptFinished`] with `id` at the end, unless `then_loop` is set.
    Play {
        id: PlayId,
        prompts: Vec<String>,
        then_loop: Option<String>,
    },
    /// Read the call's position in `queue` ([`position_prompts`]), then loop
    /// `then_loop`. Nothing to report at the end. Skip it if the call has no position.
    AnnouncePosition {
        id: PlayId,
        queue: String,
        then_loop: Option<String>,
    },
    /// Stop playing to the caller (a key interrupted a prompt, an agent answered).
    Stop,
    /// Put the call in the ACD `queue` with `priority` (higher first).
    Enqueue { queue: String, priority: u8 },
    /// Take the call out of its queue (a callback was asked for, the IVR's wait ran out).
    LeaveQueue,
    /// R11: send the caller to this SIP URI (REFER, or a new leg bridged in); report
    /// [`Event::TransferFailed`] if that fails.
    Transfer { uri: String },
    /// Hang up the caller (the IVR ends here; `HangupSide::Hotline`).
    HangUp,
    /// Write this on the call's work order now (R10).
    WorkOrder(WorkOrderWrite),
}

/// A fact for the work order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkOrderWrite {
    /// R1/R2 category (`silent` from the no-answer script, `nuisance`, out-of-scope ones).
    Category(Category),
    /// R11: urgent; supervisors are notified.
    Urgent,
    /// R15: a complaint about the hotline, its agents or a referred enterprise.
    HotlineComplaint,
    /// The caller asked to be called back instead of waiting (`queue` they left, if any).
    CallbackRequested { queue: Option<String> },
    /// R24: the caller's rating of the agent who took the call (counted per agent), on
    /// the survey's scale `min..=max`.
    Rating {
        score: u8,
        min: u8,
        max: u8,
        agent: Option<String>,
    },
    /// Keys collected by a `collect` node, under its `store_as` name.
    Digits { name: String, digits: String },
}

/// The scripts an agent can start on a live call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentScript {
    /// R27: the caller is silent.
    NoAnswer,
    /// Seed §6.5.3: category `nuisance`.
    Nuisance,
    /// Seed §6.5.2 with the out-of-scope category the agent chose (R2, R3).
    OutOfScope(Category),
}

/// R2's out-of-scope categories: the ones the out-of-scope closing may set.
pub const OUT_OF_SCOPE: &[Category] = &[
    Category::Emergency,
    Category::CivilDispute,
    Category::LegalProcess,
    Category::Military,
    Category::OutOfProvince,
];

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    NotStarted,
    Play {
        node: NodeId,
        play: PlayId,
    },
    Menu {
        node: NodeId,
        play: Option<PlayId>,
        timeouts_left: u32,
        invalid_left: u32,
    },
    Collect {
        node: NodeId,
        play: Option<PlayId>,
        digits: String,
    },
    Queue {
        node: NodeId,
        agent: Option<String>,
    },
    Survey {
        node: NodeId,
        play: Option<PlayId>,
        retries_left: u32,
    },
    NoAnswer {
        node: NodeId,
        play: Option<PlayId>,
        played: u32,
        goodbye: bool,
        /// Started by an agent: the agent judged the caller silent, noise must not undo it.
        ignore_voice: bool,
    },
    Transfer {
        node: NodeId,
        play: Option<PlayId>,
    },
    HangingUp {
        play: PlayId,
    },
    Done,
}

/// All of a call's deadlines, one slot each (quinn's timer table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    /// A menu, collect or survey waiting for a key; the no-answer script's pause.
    Input = 0,
    /// The next queue position announcement.
    Announcement = 1,
    /// The queue node's own `max_wait_seconds`.
    MaxWait = 2,
}

const TIMERS: [Timer; 3] = [Timer::Input, Timer::Announcement, Timer::MaxWait];

/// One call's IVR.
#[derive(Clone, Debug)]
pub struct CallIvr {
    plan: Arc<Dialplan>,
    state: State,
    timers: [Option<Instant>; 3],
    next_play: u64,
    /// The caller has spoken or pressed a key since the call began.
    heard: bool,
    /// The agent who took the call, for the survey and the agent number prompt.
    agent: Option<String>,
}

impl CallIvr {
    /// A call's IVR on `plan` (from [`DialplanSlot::current`]); nothing happens until
    /// [`CallIvr::start`].
    pub fn new(plan: Arc<Dialplan>) -> CallIvr {
        CallIvr {
            plan,
            state: State::NotStarted,
            timers: [None; 3],
            next_play: 0,
            heard: false,
            agent: None,
        }
    }

    /// The call was answered and its media is up: enter the plan's `start` node.
    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == State::NotStarted {
            self.enter(now, self.plan.start, &mut out);
        }
        out
    }

    /// The version of the plan this call runs on.
    pub fn plan_version(&self) -> u64 {
        self.plan.version
    }

    /// The node the call is in, by name (for logs and the API).
    pub fn current_node(&self) -> Option<&str> {
        let node = match &self.state {
            State::Play { node, .. }
            | State::Menu { node, .. }
            | State::Collect { node, .. }
            | State::Queue { node, .. }
            | State::Survey { node, .. }
            | State::NoAnswer { node, .. }
            | State::Transfer { node, .. } => *node,
            State::NotStarted | State::HangingUp { .. } | State::Done => return None,
        };
        Some(&self.plan.node(node).name)
    }

    /// The IVR has nothing more to do: it hung up, or the call was transferred.
    pub fn is_finished(&self) -> bool {
        self.state == State::Done
    }

    /// When to call `step(now, Event::Timeout)` next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.iter().flatten().min().copied()
    }

    /// Feeds one event; returns what to do, in order.
    pub fn step(&mut self, now: Instant, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Digit(key) => {
                self.heard = true;
                self.on_digit(now, key, &mut out);
            }
            Event::PromptFinished(id) => self.on_prompt_finished(now, id, &mut out),
            Event::VoiceStarted => {
                self.heard = true;
                self.on_voice(now, &mut out);
            }
            Event::VoiceEnded => {}
            Event::Timeout => {
                for timer in TIMERS {
                    if self.timers[timer as usize].is_some_and(|at| at <= now) {
                        self.timers[timer as usize] = None;
                        self.on_timer(now, timer, &mut out);
                    }
                }
            }
            Event::AgentJoined { agent } => {
                self.agent = Some(agent.clone());
                if let State::Queue { agent: slot, .. } = &mut self.state {
                    *slot = Some(agent);
                    self.timers = [None; 3];
                    out.push(Action::Stop);
                }
            }
            Event::AgentLeft => {
                if let State::Queue {
                    node,
                    agent: Some(_),
                } = self.state
                {
                    match self.queue_node(node).after_agent {
                        Some(next) => self.enter(now, next, &mut out),
                        None => self.hang_up(&mut out),
                    }
                }
            }
            Event::AgentWithdrawn => {
                if let State::Queue {
                    node,
                    agent: agent @ Some(_),
                } = &mut self.state
                {
                    *agent = None;
                    self.agent = None;
                    let node = *node;
                    let queue = self.queue_node(node).clone();
                    let id = self.new_play_id();
                    out.push(Action::Play {
                        id,
                        prompts: Vec::new(),
                        then_loop: Some(queue.hold_music),
                    });
                    if let Some(every) = queue.announcement_interval {
                        self.arm(Timer::Announcement, now + every);
                    }
                }
            }
            Event::QueueOverflowed => {
                if let State::Queue { node, agent: None } = self.state {
                    self.timers = [None; 3];
                    let overflow = self.queue_node(node).overflow;
                    self.enter(now, overflow, &mut out);
                }
            }
            Event::TransferFailed => {
                if let State::Transfer { node, .. } = self.state {
                    match &self.plan.node(node).kind {
                        NodeKind::Transfer {
                            on_failure: Some(next),
                            ..
                        } => {
                            let next = *next;
                            self.enter(now, next, &mut out);
                        }
                        _ => self.hang_up(&mut out),
                    }
                }
            }
        }
        out
    }

    /// An agent starts a script on the live call; the switch takes the caller back from
    /// the agent and carries out the actions.
    pub fn start_script(
        &mut self,
        now: Instant,
        script: AgentScript,
    ) -> Result<Vec<Action>, IvrError> {
        if self.state == State::Done {
            return Err(IvrError::Finished);
        }
        let scripts = &self.plan.scripts;
        let (node, category, name) = match script {
            AgentScript::NoAnswer => (scripts.no_answer, None, "no_answer"),
            AgentScript::Nuisance => (scripts.nuisance, Some(Category::Nuisance), "nuisance"),
            AgentScript::OutOfScope(category) => {
                if !OUT_OF_SCOPE.contains(&category) {
                    return Err(IvrError::NotOutOfScope(category));
                }
                (scripts.out_of_scope, Some(category), "out_of_scope")
            }
        };
        let node = node.ok_or(IvrError::NoSuchScript(name))?;
        let mut out = vec![Action::Stop];
        if let State::Queue { agent: None, .. } = self.state {
            out.push(Action::LeaveQueue);
        }
        self.timers = [None; 3];
        if let Some(category) = category {
            out.push(Action::WorkOrder(WorkOrderWrite::Category(category)));
        }
        self.enter(now, node, &mut out);
        if let State::NoAnswer { ignore_voice, .. } = &mut self.state {
            *ignore_voice = true;
        }
        Ok(out)
    }

    // ----- transitions -----------------------------------------------------------------

    fn enter(&mut self, now: Instant, first: NodeId, out: &mut Vec<Action>) {
        self.timers = [None; 3];
        let plan = Arc::clone(&self.plan);
        let mut id = first;
        // `set` nodes chain without waiting; the compiler refuses loops of them, and the
        // bound keeps a bug from spinning forever.
        for _ in 0..=plan.nodes.len() {
            match &plan.node(id).kind {
                NodeKind::Set(set) => {
                    let writes = [
                        set.category.map(WorkOrderWrite::Category),
                        set.urgent.then_some(WorkOrderWrite::Urgent),
                        set.hotline_complaint
                            .then_some(WorkOrderWrite::HotlineComplaint),
                        set.callback_requested
                            .then_some(WorkOrderWrite::CallbackRequested { queue: None }),
                    ];
                    out.extend(writes.into_iter().flatten().map(Action::WorkOrder));
                    id = set.next;
                }
                NodeKind::Play { prompts, next } => match self.play(prompts, None, out) {
                    Some(play) => {
                        self.state = State::Play { node: id, play };
                        return;
                    }
                    None => id = *next,
                },
                NodeKind::Menu(menu) => {
                    let play = self.play(&menu.prompts, None, out);
                    self.state = State::Menu {
                        node: id,
                        play,
                        timeouts_left: menu.timeout_retries,
                        invalid_left: menu.invalid_retries,
                    };
                    if play.is_none() {
                        self.arm(Timer::Input, now + menu.timeout);
                    }
                    return;
                }
                NodeKind::Collect(collect) => {
                    let play = self.play(&collect.prompts, None, out);
                    self.state = State::Collect {
                        node: id,
                        play,
                        digits: String::new(),
                    };
                    if play.is_none() {
                        self.arm(Timer::Input, now + collect.timeout);
                    }
                    return;
                }
                NodeKind::Queue(queue) => {
                    out.push(Action::Enqueue {
                        queue: queue.queue.clone(),
                        priority: queue.priority,
                    });
                    let id_play = self.new_play_id();
                    out.push(Action::Play {
                        id: id_play,
                        prompts: self.resolve(&queue.prompts),
                        then_loop: Some(queue.hold_music.clone()),
                    });
                    if let Some(every) = queue.announcement_interval {
                        self.arm(Timer::Announcement, now + every);
                    }
                    if let Some(max) = queue.max_wait {
                        self.arm(Timer::MaxWait, now + max);
                    }
                    self.state = State::Queue {
                        node: id,
                        agent: None,
                    };
                    return;
                }
                NodeKind::Survey(survey) => {
                    let play = self.play(&survey.prompts, None, out);
                    self.state = State::Survey {
                        node: id,
                        play,
                        retries_left: survey.retries,
                    };
                    if play.is_none() {
                        self.arm(Timer::Input, now + survey.timeout);
                    }
                    return;
                }
                NodeKind::Transfer { prompts, uri, .. } => {
                    let play = self.play(prompts, None, out);
                    self.state = State::Transfer { node: id, play };
                    if play.is_none() {
                        out.push(Action::Transfer { uri: uri.clone() });
                    }
                    return;
                }
                NodeKind::HangUp { prompts } => {
                    match self.play(prompts, None, out) {
                        Some(play) => self.state = State::HangingUp { play },
                        None => self.hang_up(out),
                    }
                    return;
                }
                NodeKind::NoAnswer(script) => {
                    let play = self.play(std::slice::from_ref(&script.prompt), None, out);
                    self.state = State::NoAnswer {
                        node: id,
                        play,
                        played: 1,
                        goodbye: false,
                        ignore_voice: false,
                    };
                    if play.is_none() {
                        self.arm(Timer::Input, now + script.wait);
                    }
                    return;
                }
            }
        }
        self.hang_up(out);
    }

    fn on_digit(&mut self, now: Instant, key: char, out: &mut Vec<Action>) {
        let plan = Arc::clone(&self.plan);
        match &mut self.state {
            State::Menu {
                node,
                play,
                invalid_left,
                ..
            } => {
                let NodeKind::Menu(menu) = &plan.node(*node).kind else {
                    return;
                };
                if play.take().is_some() {
                    out.push(Action::Stop);
                }
                self.timers[Timer::Input as usize] = None;
                if let Some(&(_, next)) = menu.choices.iter().find(|(k, _)| *k == key) {
                    self.enter(now, next, out);
                } else if *invalid_left > 0 {
                    *invalid_left -= 1;
                    let retry: Vec<PromptItem> = menu
                        .invalid_prompt
                        .iter()
                        .chain(&menu.prompts)
                        .cloned()
                        .collect();
                    let replay = self.play(&retry, None, out);
                    self.replaying(now, replay, menu.timeout);
                } else {
                    self.enter(now, menu.on_invalid, out);
                }
            }
            State::Collect {
                node, play, digits, ..
            } => {
                let NodeKind::Collect(collect) = &plan.node(*node).kind else {
                    return;
                };
                if play.take().is_some() {
                    out.push(Action::Stop);
                }
                if Some(key) == collect.terminator {
                    let digits = std::mem::take(digits);
                    self.finish_collect(now, collect, digits, out);
                    return;
                }
                digits.push(key);
                if digits.len() >= collect.max_digits {
                    let digits = std::mem::take(digits);
                    self.finish_collect(now, collect, digits, out);
                } else {
                    self.arm(Timer::Input, now + collect.timeout);
                }
            }
            State::Queue { node, agent: None } => {
                let NodeKind::Queue(queue) = &plan.node(*node).kind else {
                    return;
                };
                if let Some(offer) = queue.callback.as_ref().filter(|o| o.key == key) {
                    out.push(Action::LeaveQueue);
                    out.push(Action::WorkOrder(WorkOrderWrite::CallbackRequested {
                        queue: Some(queue.queue.clone()),
                    }));
                    self.enter(now, offer.next, out);
                }
            }
            State::Survey {
                node,
                play,
                retries_left,
            } => {
                let NodeKind::Survey(survey) = &plan.node(*node).kind else {
                    return;
                };
                if play.take().is_some() {
                    out.push(Action::Stop);
                }
                self.timers[Timer::Input as usize] = None;
                let score = key.to_digit(10).map(|d| d as u8);
                if let Some(score) = score.filter(|s| (survey.min..=survey.max).contains(s)) {
                    out.push(Action::WorkOrder(WorkOrderWrite::Rating {
                        score,
                        min: survey.min,
                        max: survey.max,
                        agent: self.agent.clone(),
                    }));
                    self.enter(now, survey.next, out);
                } else if *retries_left > 0 {
                    *retries_left -= 1;
                    let retry: Vec<PromptItem> = survey
                        .invalid_prompt
                        .iter()
                        .chain(&survey.prompts)
                        .cloned()
                        .collect();
                    let replay = self.play(&retry, None, out);
                    self.replaying(now, replay, survey.timeout);
                } else {
                    self.enter(now, survey.on_timeout, out);
                }
            }
            // A key is a sign of life too.
            State::NoAnswer { .. } => self.on_voice(now, out),
            _ => {}
        }
    }

    fn on_voice(&mut self, now: Instant, out: &mut Vec<Action>) {
        if let State::NoAnswer {
            node,
            goodbye: false,
            ignore_voice: false,
            ..
        } = self.state
            && let NodeKind::NoAnswer(NoAnswer {
                on_voice: Some(next),
                ..
            }) = self.plan.node(node).kind
        {
            out.push(Action::Stop);
            self.enter(now, next, out);
        }
    }

    fn on_prompt_finished(&mut self, now: Instant, id: PlayId, out: &mut Vec<Action>) {
        let plan = Arc::clone(&self.plan);
        match &mut self.state {
            State::Play { node, play } if *play == id => {
                if let NodeKind::Play { next, .. } = plan.node(*node).kind {
                    self.enter(now, next, out);
                }
            }
            State::Menu { node, play, .. } if *play == Some(id) => {
                *play = None;
                if let NodeKind::Menu(menu) = &plan.node(*node).kind {
                    self.arm(Timer::Input, now + menu.timeout);
                }
            }
            State::Collect { node, play, .. } if *play == Some(id) => {
                *play = None;
                if let NodeKind::Collect(collect) = &plan.node(*node).kind {
                    self.arm(Timer::Input, now + collect.timeout);
                }
            }
            State::Survey { node, play, .. } if *play == Some(id) => {
                *play = None;
                if let NodeKind::Survey(survey) = &plan.node(*node).kind {
                    self.arm(Timer::Input, now + survey.timeout);
                }
            }
            State::NoAnswer {
                node,
                play,
                goodbye,
                ..
            } if *play == Some(id) => {
                *play = None;
                if *goodbye {
                    self.hang_up(out);
                } else if let NodeKind::NoAnswer(script) = &plan.node(*node).kind {
                    self.arm(Timer::Input, now + script.wait);
                }
            }
            State::Transfer { node, play } if *play == Some(id) => {
                *play = None;
                if let NodeKind::Transfer { uri, .. } = &plan.node(*node).kind {
                    out.push(Action::Transfer { uri: uri.clone() });
                }
            }
            State::HangingUp { play } if *play == id => self.hang_up(out),
            _ => {}
        }
    }

    fn on_timer(&mut self, now: Instant, timer: Timer, out: &mut Vec<Action>) {
        let plan = Arc::clone(&self.plan);
        match (&mut self.state, timer) {
            (
                State::Menu {
                    node,
                    timeouts_left,
                    ..
                },
                Timer::Input,
            ) => {
                let NodeKind::Menu(menu) = &plan.node(*node).kind else {
                    return;
                };
                if let (false, Some(silent)) = (self.heard, menu.on_silence) {
                    self.enter(now, silent, out);
                } else if *timeouts_left > 0 {
                    *timeouts_left -= 1;
                    let replay = self.play(&menu.prompts, None, out);
                    self.replaying(now, replay, menu.timeout);
                } else {
                    self.enter(now, menu.on_timeout, out);
                }
            }
            (State::Collect { node, digits, .. }, Timer::Input) => {
                let NodeKind::Collect(collect) = &plan.node(*node).kind else {
                    return;
                };
                let digits = std::mem::take(digits);
                self.finish_collect(now, collect, digits, out);
            }
            (
                State::Survey {
                    node, retries_left, ..
                },
                Timer::Input,
            ) => {
                let NodeKind::Survey(survey) = &plan.node(*node).kind else {
                    return;
                };
                if *retries_left > 0 {
                    *retries_left -= 1;
                    let replay = self.play(&survey.prompts, None, out);
                    self.replaying(now, replay, survey.timeout);
                } else {
                    self.enter(now, survey.on_timeout, out);
                }
            }
            (
                State::NoAnswer {
                    node,
                    played,
                    ignore_voice,
                    ..
                },
                Timer::Input,
            ) => {
                let (node, played, ignore_voice) = (*node, *played, *ignore_voice);
                let NodeKind::NoAnswer(script) = &plan.node(node).kind else {
                    return;
                };
                let goodbye = played >= script.repeats;
                let prompt = if goodbye {
                    out.push(Action::WorkOrder(WorkOrderWrite::Category(
                        Category::Silent,
                    )));
                    &script.goodbye
                } else {
                    &script.prompt
                };
                let play = self.play(std::slice::from_ref(prompt), None, out);
                self.state = State::NoAnswer {
                    node,
                    play,
                    played: if goodbye { played } else { played + 1 },
                    goodbye,
                    ignore_voice,
                };
                match (play, goodbye) {
                    (Some(_), _) => {}
                    (None, true) => self.hang_up(out),
                    (None, false) => self.arm(Timer::Input, now + script.wait),
                }
            }
            (State::Queue { node, agent: None }, Timer::Announcement) => {
                let NodeKind::Queue(queue) = &plan.node(*node).kind else {
                    return;
                };
                let id = self.new_play_id();
                out.push(Action::AnnouncePosition {
                    id,
                    queue: queue.queue.clone(),
                    then_loop: Some(queue.hold_music.clone()),
                });
                if let Some(every) = queue.announcement_interval {
                    self.arm(Timer::Announcement, now + every);
                }
            }
            (State::Queue { node, agent: None }, Timer::MaxWait) => {
                let node = *node;
                let overflow = self.queue_node(node).overflow;
                out.push(Action::LeaveQueue);
                self.enter(now, overflow, out);
            }
            _ => {}
        }
    }

    fn finish_collect(
        &mut self,
        now: Instant,
        collect: &Collect,
        digits: String,
        out: &mut Vec<Action>,
    ) {
        if digits.is_empty() {
            self.enter(now, collect.on_timeout, out);
        } else {
            out.push(Action::WorkOrder(WorkOrderWrite::Digits {
                name: collect.store_as.clone(),
                digits,
            }));
            self.enter(now, collect.next, out);
        }
    }

    // ----- helpers ---------------------------------------------------------------------

    fn queue_node(&self, node: NodeId) -> &QueueNode {
        match &self.plan.node(node).kind {
            NodeKind::Queue(q) => q,
            other => unreachable!("queue state on a {other:?} node"),
        }
    }

    fn hang_up(&mut self, out: &mut Vec<Action>) {
        self.timers = [None; 3];
        self.state = State::Done;
        out.push(Action::HangUp);
    }

    fn arm(&mut self, timer: Timer, at: Instant) {
        self.timers[timer as usize] = Some(at);
    }

    /// After a replay in an input state: the new play, or the input timer at once when
    /// there is nothing to play.
    fn replaying(&mut self, now: Instant, replay: Option<PlayId>, timeout: Duration) {
        match &mut self.state {
            State::Menu { play, .. } | State::Survey { play, .. } => *play = replay,
            _ => {}
        }
        if replay.is_none() {
            self.arm(Timer::Input, now + timeout);
        }
    }

    fn new_play_id(&mut self) -> PlayId {
        self.next_play += 1;
        PlayId(self.next_play)
    }

    /// Plays `prompts` if there is anything to play; `None` when the list is empty (an
    /// agent number prompt before any agent, say).
    fn play(
        &mut self,
        prompts: &[PromptItem],
        then_loop: Option<String>,
        out: &mut Vec<Action>,
    ) -> Option<PlayId> {
        let files = self.resolve(prompts);
        if files.is_empty() && then_loop.is_none() {
            return None;
        }
        let id = self.new_play_id();
        out.push(Action::Play {
            id,
            prompts: files,
            then_loop,
        });
        Some(id)
    }

    fn resolve(&self, prompts: &[PromptItem]) -> Vec<String> {
        prompts
            .iter()
            .flat_map(|p| match p {
                PromptItem::File(f) => vec![f.clone()],
                PromptItem::AgentNumber => {
                    self.agent.as_deref().map(digit_prompts).unwrap_or_default()
                }
            })
            .collect()
    }
}
