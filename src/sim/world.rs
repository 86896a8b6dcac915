//! The whole engine in one process (pure): the real [`Switch`] on the simulated clock,
//! behind the simulated network, with trunk callers, agent phones and outbound
//! destinations around it, and a simulated media runtime answering the switch's media
//! orders. After every step the invariants of issue 7 are checked; a violation stops
//! the run and the seed's trace says what led to it.
//!
//! What stands in for the runtime here, and nothing else: [`Engine`] reads datagrams
//! with the transports' own [`classify`] and hands them to the switch, sends what the
//! switch transmits, keeps its store writes in order (the store writer's job) and plays
//! the media runtime: an opened leg gets an address, a prompt ends after its own
//! duration, a closed leg reports its counters.
//!
//! Invariants, after every step:
//! - no agent is in two calls (the switch's view: legs not yet ended). A phone may
//!   still see its last call for as long as the switch's BYE is being retransmitted
//!   when the next call rings; that is not counted.
//! - no timer outlives its call (at most one call timer per live call);
//! - work orders are written in a possible order: created first, connected at most
//!   once (R7), ended once, nothing after the end;
//! - no peer saw a protocol error in what the switch sent.
//!
//! And once the traffic is over ([`World::finish`]):
//! - no call lost: every work order the switch created has ended, and every caller the
//!   switch took in (it rang, answered, or was cancelled) has one;
//! - a work order that ends answered was answered;
//! - every transaction, leg, call timer and media stream of the switch is gone;
//! - every caller's and phone's call is over and all their transactions and timers
//!   have run out (a phone still ringing for a call the switch ended is named);
//! - what each caller saw matches its work order.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};

use super::ua::CallState;
use super::{
    Agenda, CallerScript, LinkConfig, Network, Node, PhoneScript, SimCaller, SimPhone, SimRng,
    Stage, Transmit, loopback,
};
use crate::config::agents::AgentsConfig;
use crate::ivr::{BuiltinFlow, CallFlow};
use crate::media::prompt::{Prompt, PromptLibrary};
use crate::sip::TransportKind;
use crate::sip::inbound::{Received, classify};
use crate::switch::{
    Command, CommandId, LegId, MediaCounters, MediaOrder, MediaReport, Reply, StoreWrite, Switch,
    SwitchError, SwitchEvent, SwitchSettings,
};
use crate::workorder::{CallOutcome, WorkOrderId};

/// Where the engine listens in every world.
pub const ENGINE_ADDR: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)),
    5060,
);

/// What a world is made of.
#[derive(Clone)]
pub struct WorldConfig {
    pub seed: u64,
    /// Every link's behaviour unless set otherwise on [`World::stage`].
    pub link: LinkConfig,
    pub settings: SwitchSettings,
    pub agents: AgentsConfig,
    /// The dialplan and its prompts (the built-in flow unless a test sets another).
    pub flow: CallFlow,
    /// How long the media runtime takes to report an opened or closed leg.
    pub media_latency: Duration,
}

/// The switch settings of a simulated hotline: the engine at [`ENGINE_ADDR`], RFC 3261
/// timers, a 2 s ring before the IVR answers inside a 10 s budget (R6), agents rung
/// for 10 s.
pub fn default_settings() -> SwitchSettings {
    SwitchSettings::loopback(ENGINE_ADDR.port())
}

/// Prompts of distinct lengths, each a plain tone, named like the files of
/// `dialplans/prompts`. Built once per process: a thousand seeds share them.
pub fn default_prompts() -> Arc<PromptLibrary> {
    static PROMPTS: std::sync::OnceLock<Arc<PromptLibrary>> = std::sync::OnceLock::new();
    PROMPTS.get_or_init(build_prompts).clone()
}

fn build_prompts() -> Arc<PromptLibrary> {
    let tone = |name: &str, millis: usize| Arc::new(Prompt::named(name, vec![1000; millis * 8]));
    let mut prompts = vec![
        tone("greeting.wav", 3000),
        tone("queue-wait.wav", 4000),
        tone("hold-music.wav", 5000),
        tone("closing.wav", 2000),
        tone("agent-logged-in.wav", 1100),
        tone("agent-logged-out.wav", 1200),
        tone("agent-paused.wav", 1300),
        tone("agent-resumed.wav", 1400),
        tone("feature-failed.wav", 1500),
        tone("position-prefix.wav", 600),
        tone("position-suffix.wav", 700),
    ];
    prompts.extend((0..10).map(|digit| tone(&format!("digit-{digit}.wav"), 300)));
    Arc::new(PromptLibrary::from_prompts(prompts))
}

/// The engine's built-in flow (greeting, queue `general` with announcements every 20 s,
/// the closing) on [`default_prompts`].
pub fn default_flow() -> CallFlow {
    let prompts = default_prompts();
    let plan = BuiltinFlow {
        greeting: "greeting.wav",
        hold_music: "hold-music.wav",
        queue: "general",
        announcement: Duration::from_secs(20),
    }
    .compile(|name| prompts.contains(name))
    .expect("the built-in flow compiles on the simulated prompts");
    CallFlow { plan, prompts }
}

/// An agents file with one queue and agents `1001`, `1002`, … with password
/// `pw<id>`.
pub fn agents_config(agents: usize) -> AgentsConfig {
    let mut text = String::from(
        "[[queues]]\nname = \"general\"\nstrategy = \"longest_idle\"\nmax_wait_seconds = 600\nwrap_up_seconds = 0\n",
    );
    for index in 0..agents {
        let id = 1001 + index;
        let _ = write!(
            text,
            "\n[[agents]]\nid = \"{id}\"\npassword = \"pw{id}\"\nqueues = [\"general\"]\n"
        );
    }
    AgentsConfig::parse(std::path::Path::new("simulated-agents.toml"), &text)
        .expect("the simulated agents file is valid")
}

impl WorldConfig {
    pub fn new(seed: u64, agents: usize) -> Self {
        WorldConfig {
            seed,
            link: LinkConfig::perfect(),
            settings: default_settings(),
            agents: agents_config(agents),
            flow: default_flow(),
            media_latency: Duration::ZERO,
        }
    }
}

/// One media order as the simulated runtime saw it, for assertions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaLogEntry {
    pub at: Duration,
    pub leg: LegId,
    /// `open`, `start`, `start-recorded`, `attach`, `detach`, `update`, `hold`,
    /// `unhold`, `play:<prompt>`, `stop-playback`, `close`.
    pub what: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct MediaReportDue {
    leg: LegId,
    report: MediaReport,
    /// For PlaybackFinished: the playback it ends; stale once another replaced it.
    playback: Option<u64>,
}

/// The simulated media runtime.
#[derive(Debug, Default)]
struct SimMedia {
    agenda: Agenda<MediaReportDue>,
    /// Open legs and the playback running on each.
    open: BTreeMap<LegId, Option<u64>>,
    next_port: u16,
    next_playback: u64,
    log: Vec<MediaLogEntry>,
}

/// The switch and what the runtime around it would do, as one [`Node`].
pub struct Engine {
    pub switch: Switch,
    addr: SocketAddr,
    epoch: Instant,
    media: SimMedia,
    media_latency: Duration,
    /// Every store write, in the order the switch made them.
    pub store: Vec<StoreWrite>,
    pub replies: BTreeMap<CommandId, Reply>,
    /// The wall-clock time at `epoch`.
    wall: DateTime<Utc>,
    next_command: CommandId,
    transmits: std::collections::VecDeque<Transmit>,
}

impl Engine {
    fn new(config: &WorldConfig, now: Instant) -> Result<Engine, SwitchError> {
        let wall = Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).single();
        let wall: DateTime<Utc> = wall.unwrap_or_default();
        Engine::started(config, config.seed, now, wall)
    }

    fn started(
        config: &WorldConfig,
        seed: u64,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Result<Engine, SwitchError> {
        let switch = Switch::new(
            config.settings.clone(),
            &config.agents,
            config.flow.clone(),
            seed,
            now,
            wall,
            &[],
        )?;
        Ok(Engine {
            switch,
            addr: ENGINE_ADDR,
            epoch: now,
            media: SimMedia {
                next_port: 20_000,
                ..SimMedia::default()
            },
            media_latency: config.media_latency,
            store: Vec::new(),
            replies: BTreeMap::new(),
            wall,
            next_command: 1,
            transmits: Default::default(),
        })
    }

    /// The switch's wall-clock time at `now`.
    fn switch_wall(&self, now: Instant) -> DateTime<Utc> {
        self.wall
            + chrono::Duration::from_std(now.saturating_duration_since(self.epoch))
                .unwrap_or_default()
    }

    /// Media orders so far, in order.
    pub fn media_log(&self) -> &[MediaLogEntry] {
        &self.media.log
    }

    /// Legs whose media is open (not yet closed).
    pub fn open_media_legs(&self) -> usize {
        self.media.open.len()
    }

    /// Gives the switch a command at `now`; the reply is in [`Engine::replies`].
    pub fn command(&mut self, now: Instant, command: Command) -> CommandId {
        let id = self.next_command;
        self.next_command += 1;
        self.switch.handle_command(now, id, command);
        self.drain(now);
        id
    }

    fn drain(&mut self, now: Instant) {
        loop {
            let mut moved = false;
            while let Some(transmit) = self.switch.poll_transmit() {
                moved = true;
                self.transmits.push_back(Transmit {
                    destination: transmit.destination,
                    transport: transmit.transport,
                    payload: transmit.payload,
                });
            }
            while let Some(write) = self.switch.poll_store() {
                moved = true;
                self.store.push(write);
            }
            while let Some(event) = self.switch.poll_event() {
                moved = true;
                if let SwitchEvent::Reply { id, reply } = event {
                    self.replies.insert(id, reply);
                }
            }
            while let Some(order) = self.switch.poll_media() {
                moved = true;
                self.media_order(now, order);
            }
            if !moved {
                break;
            }
        }
    }

    fn media_order(&mut self, now: Instant, order: MediaOrder) {
        let at = now.saturating_duration_since(self.epoch);
        let (leg, what) = match &order {
            MediaOrder::Open { leg } => (*leg, "open".to_string()),
            MediaOrder::Start { leg, recording, .. } => (
                *leg,
                if recording.is_some() {
                    "start-recorded".to_string()
                } else {
                    "start".to_string()
                },
            ),
            MediaOrder::Attach { leg, to, .. } => (*leg, format!("attach:{to}")),
            MediaOrder::Detach { leg } => (*leg, "detach".to_string()),
            MediaOrder::Update { leg, .. } => (*leg, "update".to_string()),
            MediaOrder::Hold { leg, held } => {
                (*leg, if *held { "hold" } else { "unhold" }.to_string())
            }
            MediaOrder::Play { leg, prompt, .. } => (*leg, format!("play:{}", prompt_name(prompt))),
            MediaOrder::StopPlayback { leg } => (*leg, "stop-playback".to_string()),
            MediaOrder::Close { leg } => (*leg, "close".to_string()),
        };
        self.media.log.push(MediaLogEntry { at, leg, what });
        let latency = self.media_latency;
        match order {
            MediaOrder::Open { leg } => {
                let local = loopback(1, self.media.next_port);
                self.media.next_port = self.media.next_port.wrapping_add(2).max(20_000);
                self.media.open.insert(leg, None);
                self.media.agenda.plan(
                    now + latency,
                    MediaReportDue {
                        leg,
                        report: MediaReport::Opened { local },
                        playback: None,
                    },
                );
            }
            MediaOrder::Play { leg, prompt, seq } => {
                let playback = self.media.next_playback;
                self.media.next_playback += 1;
                self.media.open.insert(leg, Some(playback));
                self.media.agenda.plan(
                    now + prompt.duration(),
                    MediaReportDue {
                        leg,
                        report: MediaReport::PlaybackFinished { seq },
                        playback: Some(playback),
                    },
                );
            }
            MediaOrder::StopPlayback { leg } => {
                if let Some(playing) = self.media.open.get_mut(&leg) {
                    *playing = None;
                }
            }
            MediaOrder::Attach { to, .. } => {
                // Prompts on the stream joined stop.
                if let Some(playing) = self.media.open.get_mut(&to) {
                    *playing = None;
                }
            }
            MediaOrder::Close { leg } => {
                self.media.open.remove(&leg);
                self.media.agenda.plan(
                    now + latency,
                    MediaReportDue {
                        leg,
                        report: MediaReport::Closed {
                            counters: MediaCounters::default(),
                        },
                        playback: None,
                    },
                );
            }
            MediaOrder::Start { .. }
            | MediaOrder::Detach { .. }
            | MediaOrder::Update { .. }
            | MediaOrder::Hold { .. } => {}
        }
    }
}

/// A prompt as the trace names it: its file name without `.wav` (`agent-` dropped from
/// the feature confirmations), `position-<n>` for a position announcement.
fn prompt_name(prompt: &Prompt) -> String {
    let parts: Vec<&str> = prompt
        .name()
        .split('+')
        .map(|part| part.trim_end_matches(".wav"))
        .collect();
    if parts.first() == Some(&"position-prefix") {
        let number: String = parts
            .iter()
            .filter_map(|part| part.strip_prefix("digit-"))
            .collect();
        return format!("position-{number}");
    }
    match parts.as_slice() {
        [] | [""] => "other".to_string(),
        [single] => single.strip_prefix("agent-").unwrap_or(single).to_string(),
        several => several.join("+"),
    }
}

impl Node for Engine {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        transport: TransportKind,
        bytes: &[u8],
    ) {
        match classify(bytes, from, transport) {
            Received::Message(inbound) => self.switch.handle_inbound(now, *inbound),
            Received::Malformed(Some(answer)) => self.transmits.push_back(Transmit {
                destination: from,
                transport,
                payload: answer.into(),
            }),
            Received::Malformed(None) => {}
        }
        self.drain(now);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        [self.switch.poll_timeout(), self.media.agenda.next_at()]
            .into_iter()
            .flatten()
            .min()
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.switch.poll_timeout().is_some_and(|at| at <= now) {
            self.switch.handle_timeout(now);
            self.drain(now);
        }
        while let Some(due) = self.media.agenda.pop_due(now) {
            if let Some(playback) = due.playback {
                match self.media.open.get_mut(&due.leg) {
                    Some(playing) if *playing == Some(playback) => *playing = None,
                    // Replaced, stopped or closed: that playback never finishes.
                    _ => continue,
                }
            }
            self.switch.handle_media(now, due.leg, due.report);
            self.drain(now);
        }
    }
}

fn saved_callbacks(
    store: &[StoreWrite],
) -> BTreeMap<crate::callbacks::TaskId, crate::callbacks::CallbackTask> {
    let mut tasks = BTreeMap::new();
    for write in store {
        if let StoreWrite::Callback(task) = write {
            tasks.insert(task.id, (**task).clone());
        }
    }
    tasks
}

/// What the store writes say about one work order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderHistory {
    pub call_id: String,
    pub caller: String,
    pub answered: bool,
    pub queued: Vec<String>,
    /// Agents connected, in order (R7: at most one).
    pub connected: Vec<String>,
    pub outcome: Option<CallOutcome>,
    pub reason: Option<&'static str>,
    pub ends: usize,
}

/// Why a run failed: the invariant and the seed's trace.
#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    pub at: Duration,
    pub violations: Vec<String>,
    pub report: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "simulation seed {} failed at t={:.3}s (replay: SIM_SEED={} cargo test --test simulation)",
            self.seed,
            self.at.as_secs_f64(),
            self.seed
        )?;
        for violation in &self.violations {
            writeln!(f, "  violated: {violation}")?;
        }
        write!(f, "{}", self.report)
    }
}

/// The engine and its peers on one simulated network and clock.
pub struct World {
    pub seed: u64,
    pub stage: Stage,
    pub engine: Engine,
    pub callers: Vec<SimCaller>,
    /// Agents' phones and outbound destinations.
    pub phones: Vec<SimPhone>,
    rng: SimRng,
    /// Store writes already checked.
    checked_writes: usize,
    orders: BTreeMap<WorkOrderId, OrderHistory>,
    violations: Vec<String>,
}

impl World {
    pub fn new(config: WorldConfig) -> Result<World, SwitchError> {
        let epoch = Instant::now();
        let mut rng = SimRng::new(config.seed);
        let network = Network::new(rng.fork(1), epoch, config.link);
        let engine = Engine::new(&config, epoch)?;
        Ok(World {
            seed: config.seed,
            stage: Stage::new(epoch, network),
            engine,
            callers: Vec::new(),
            phones: Vec::new(),
            rng,
            checked_writes: 0,
            orders: BTreeMap::new(),
            violations: Vec::new(),
        })
    }

    pub fn now(&self) -> Instant {
        self.stage.now()
    }

    /// A trunk caller at `127.0.0.3:<7000+n>` calling the engine; its script's times
    /// count from now.
    pub fn add_caller(&mut self, script: CallerScript) -> usize {
        let index = self.callers.len();
        let addr = loopback(3, 7000 + index as u16);
        let rng = self.rng.fork(0x100 + index as u64);
        self.callers
            .push(SimCaller::new(self.now(), addr, ENGINE_ADDR, script, rng));
        index
    }

    /// An agent's phone at `127.0.0.2:<6000+n>` whose registrar is the engine.
    pub fn add_phone(&mut self, script: PhoneScript) -> usize {
        let index = self.phones.len();
        let addr = loopback(2, 6000 + index as u16);
        let rng = self.rng.fork(0x10_000 + index as u64);
        self.phones
            .push(SimPhone::new(self.now(), addr, ENGINE_ADDR, script, rng));
        index
    }

    /// A phone at a chosen address (an outbound destination behind a trunk).
    pub fn add_phone_at(&mut self, addr: SocketAddr, script: PhoneScript) -> usize {
        let index = self.phones.len();
        let rng = self.rng.fork(0x10_000 + index as u64);
        self.phones
            .push(SimPhone::new(self.now(), addr, ENGINE_ADDR, script, rng));
        index
    }

    /// Gives the switch a command now and returns its reply.
    pub fn command(&mut self, command: Command) -> Option<Reply> {
        let now = self.now();
        let id = self.engine.command(now, command);
        self.engine.replies.remove(&id)
    }

    /// Runs `span` of simulated time, checking the invariants after every step.
    pub fn run_for(&mut self, span: Duration) -> Result<(), Box<Failure>> {
        let deadline = self.now() + span;
        loop {
            let mut nodes = nodes(&mut self.engine, &mut self.callers, &mut self.phones);
            let stepped = self.stage.step_until(&mut nodes, deadline);
            drop(nodes);
            match stepped {
                Ok(true) => {}
                Ok(false) => break,
                Err(error) => self.violations.push(error.to_string()),
            }
            self.check_step();
            if !self.violations.is_empty() {
                return Err(self.failure());
            }
        }
        let deadline = deadline.max(self.stage.now());
        let mut nodes = nodes(&mut self.engine, &mut self.callers, &mut self.phones);
        // Nothing is due before the deadline: this only moves the clock.
        let _ = self.stage.run_until(&mut nodes, deadline);
        Ok(())
    }

    /// Lets every call finish (up to `limit` of simulated time, with every timer of
    /// RFC 3261 run out), then checks the end-of-run invariants.
    pub fn finish(&mut self, limit: Duration) -> Result<(), Box<Failure>> {
        let deadline = self.now() + limit;
        while self.now() < deadline {
            self.run_for(Duration::from_secs(30))?;
            if self.is_quiet() {
                break;
            }
        }
        // Absorb timers (64·T1 and T4) run out after the last message.
        self.run_for(Duration::from_secs(40))?;
        self.check_final();
        if self.violations.is_empty() {
            Ok(())
        } else {
            Err(self.failure())
        }
    }

    /// The engine stops and starts again (a crash, a deploy): a new switch on the same
    /// config, its wall clock going on from the old one's, with what the runtime does
    /// at start: unfinished work orders closed (`engine_restarted`) and, with
    /// `callbacks`, the callback tasks the store kept restored (R20). Peers keep
    /// whatever state they had; agents' phones must register again.
    pub fn restart(
        &mut self,
        config: &WorldConfig,
        callbacks: Option<crate::config::callbacks::CallbacksConfig>,
    ) -> Result<(), SwitchError> {
        let now = self.now();
        self.read_new_writes();
        let wall = self.engine.switch_wall(now);
        let mut store = std::mem::take(&mut self.engine.store);
        for (id, order) in &self.orders {
            if order.ends == 0 {
                store.push(StoreWrite::Ended {
                    id: id.clone(),
                    at: wall,
                    side: None,
                    outcome: CallOutcome::Abandoned {
                        reason: crate::workorder::AbandonReason::EngineRestarted,
                    },
                    reason: Some("engine_restarted"),
                });
            }
        }
        let saved = saved_callbacks(&store);
        let mut engine = Engine::started(config, self.rng.next_u64(), now, wall)?;
        engine.store = store;
        if let Some(settings) = callbacks {
            let highest = saved.keys().next_back().copied();
            let open = saved
                .into_values()
                .filter(|task| !task.state.is_finished())
                .collect();
            engine.switch.enable_callbacks(now, settings, open, highest);
            engine.drain(now);
        }
        self.engine = engine;
        Ok(())
    }

    /// Turns the switch's callbacks on, with no task yet.
    pub fn enable_callbacks(&mut self, settings: crate::config::callbacks::CallbacksConfig) {
        let now = self.now();
        self.engine
            .switch
            .enable_callbacks(now, settings, Vec::new(), None);
        self.engine.drain(now);
    }

    /// The callback tasks as the store writes left them: the last save of each.
    pub fn saved_callbacks(
        &self,
    ) -> BTreeMap<crate::callbacks::TaskId, crate::callbacks::CallbackTask> {
        saved_callbacks(&self.engine.store)
    }

    /// The notes written on a work order, in order.
    pub fn notes(&self, id: &WorkOrderId) -> Vec<String> {
        self.engine
            .store
            .iter()
            .filter_map(|write| match write {
                StoreWrite::Note { id: on, text, .. } if on == id => Some(text.clone()),
                _ => None,
            })
            .collect()
    }

    /// Every caller's call is over and the switch has no call left.
    pub fn is_quiet(&self) -> bool {
        self.callers.iter().all(SimCaller::is_finished)
            && self.phones.iter().all(SimPhone::is_idle)
            && self.engine.switch.active_calls() == 0
    }

    /// The work orders as the store writes tell them.
    pub fn orders(&self) -> &BTreeMap<WorkOrderId, OrderHistory> {
        &self.orders
    }

    /// The work order of a trunk caller's call, found by its Call-ID.
    pub fn order_of_caller(&self, caller: usize) -> Option<&OrderHistory> {
        let call_id = &self.callers[caller].record()?.call_id;
        self.orders.values().find(|o| &o.call_id == call_id)
    }

    /// The trace of the network with the media orders and work-order writes, for a
    /// failing seed's printout.
    pub fn report(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "--- network trace (tail) ---\n{}",
            self.stage.network.trace()
        );
        let _ = writeln!(out, "--- media orders ---");
        for entry in self.engine.media_log().iter().rev().take(200).rev() {
            let _ = writeln!(
                out,
                "{:>10.3}s  {}  {}",
                entry.at.as_secs_f64(),
                entry.leg,
                entry.what
            );
        }
        let _ = writeln!(out, "--- work orders ---");
        for (id, order) in &self.orders {
            let _ = writeln!(
                out,
                "{id}: answered={} queued={:?} connected={:?} outcome={:?} reason={:?}",
                order.answered, order.queued, order.connected, order.outcome, order.reason
            );
        }
        let _ = writeln!(out, "--- peers ---");
        for (index, caller) in self.callers.iter().enumerate() {
            let described = caller
                .record()
                .map(|record| describe(record, self.stage.epoch()))
                .unwrap_or_else(|| "not dialled yet".to_string());
            let _ = writeln!(out, "caller {index}: {:?} {described}", caller.state());
        }
        for (index, phone) in self.phones.iter().enumerate() {
            let _ = writeln!(
                out,
                "phone {index} ({}): {:?}; calls {:?}",
                phone.script().user,
                phone.registration(),
                phone
                    .received()
                    .map(|(r, s)| (s, r.final_status, r.end_reason))
                    .collect::<Vec<_>>()
            );
        }
        let _ = writeln!(
            out,
            "switch: calls={} legs={} transactions={} call timers={} media legs open={}",
            self.engine.switch.active_calls(),
            self.engine.switch.legs(),
            self.engine.switch.transactions(),
            self.engine.switch.call_timers(),
            self.engine.open_media_legs()
        );
        out
    }

    fn failure(&self) -> Box<Failure> {
        Box::new(Failure {
            seed: self.seed,
            at: self.stage.elapsed(),
            violations: self.violations.clone(),
            report: self.report(),
        })
    }

    /// The invariants that hold at every instant.
    fn check_step(&mut self) {
        self.read_new_writes();
        let switch = &self.engine.switch;
        let mut agents = switch.agents_in_calls();
        agents.sort();
        for pair in agents.windows(2) {
            if pair[0] == pair[1] {
                self.violations
                    .push(format!("agent {} is in two calls", pair[0]));
            }
        }
        if switch.call_timers() > switch.active_calls() {
            self.violations.push(format!(
                "{} call timers for {} calls: a timer outlived its call",
                switch.call_timers(),
                switch.active_calls()
            ));
        }
        let peers = self
            .callers
            .iter()
            .map(|c| {
                // R12: a caller's number is never printed in full.
                let number = crate::privacy::mask_number(&c.script().number);
                ("caller", number, c.user_agent())
            })
            .chain(
                self.phones
                    .iter()
                    .map(|p| ("phone", p.script().user.clone(), p.user_agent())),
            );
        for (kind, name, ua) in peers {
            if let Some(error) = ua.errors().first() {
                self.violations
                    .push(format!("{kind} {name} saw a protocol error: {error}"));
            }
        }
    }

    fn read_new_writes(&mut self) {
        let writes = &self.engine.store[self.checked_writes..];
        self.checked_writes = self.engine.store.len();
        for write in writes {
            // Notes and callback saves may concern any work order, ended ones too.
            if matches!(write, StoreWrite::Note { .. } | StoreWrite::Callback(_)) {
                continue;
            }
            let id = write.work_order().clone();
            if let StoreWrite::Create(order) = write {
                if self.orders.contains_key(&id) {
                    self.violations
                        .push(format!("work order {id} created twice"));
                }
                self.orders.insert(
                    id,
                    OrderHistory {
                        call_id: order.call_id.clone(),
                        caller: order.caller.clone(),
                        ..OrderHistory::default()
                    },
                );
                continue;
            }
            let Some(order) = self.orders.get_mut(&id) else {
                self.violations
                    .push(format!("work order {id} written before it was created"));
                continue;
            };
            if order.ends > 0 {
                self.violations
                    .push(format!("work order {id} written after it ended: {write:?}"));
            }
            match write {
                StoreWrite::Create(_) | StoreWrite::Note { .. } | StoreWrite::Callback(_) => {}
                StoreWrite::Answered { .. } => order.answered = true,
                StoreWrite::Queued { queue, .. } => order.queued.push(queue.clone()),
                StoreWrite::Connected { agent, .. } => {
                    order.connected.push(agent.clone());
                    if order.connected.len() > 1 {
                        self.violations.push(format!(
                            "work order {id} connected {} times (R7: once): {:?}",
                            order.connected.len(),
                            order.connected
                        ));
                    }
                }
                StoreWrite::Ended {
                    outcome, reason, ..
                } => {
                    order.ends += 1;
                    order.outcome = Some(*outcome);
                    order.reason = *reason;
                }
                StoreWrite::Ivr { .. } => {}
            }
        }
    }

    /// The invariants of a finished run.
    fn check_final(&mut self) {
        self.read_new_writes();
        for (id, order) in &self.orders {
            if order.ends == 0 {
                self.violations
                    .push(format!("call lost: work order {id} never ended"));
            }
            if order.outcome == Some(CallOutcome::Answered) && !order.answered {
                self.violations
                    .push(format!("work order {id} answered without an answer write"));
            }
        }
        let switch = &self.engine.switch;
        let left = [
            ("calls", switch.active_calls()),
            ("legs", switch.legs()),
            ("transactions", switch.transactions()),
            ("call timers", switch.call_timers()),
            ("open media legs", self.engine.open_media_legs()),
        ];
        for (what, count) in left {
            if count > 0 {
                self.violations
                    .push(format!("{count} {what} left in the switch after the run"));
            }
        }
        for (index, caller) in self.callers.iter().enumerate() {
            let Some(record) = caller.record() else {
                continue;
            };
            if !caller.is_settled() {
                self.violations
                    .push(format!("caller {index} not settled: {:?}", caller.state()));
            }
            let order = self.orders.values().find(|o| o.call_id == record.call_id);
            // The switch took the call in (it rang, answered or was cancelled while
            // ringing): R10 wants a work order for it, with an outcome.
            let accepted = record.provisional.contains(&180)
                || matches!(record.final_status, Some(200..=299 | 487));
            if accepted && order.is_none_or(|o| o.outcome.is_none()) {
                self.violations.push(format!(
                    "call lost: caller {index} reached the switch but has no finished work order"
                ));
            }
            match (record.final_status, order) {
                (Some(200..=299), None) => self
                    .violations
                    .push(format!("caller {index} was answered but has no work order")),
                (Some(200..=299), Some(order)) if !order.answered => self.violations.push(format!(
                    "caller {index} was answered; its work order says not"
                )),
                (Some(status), Some(order)) if status >= 300 && order.answered => {
                    self.violations.push(format!(
                        "caller {index} got {status}; its work order says answered"
                    ))
                }
                _ => {}
            }
        }
        for phone in &self.phones {
            let ringing = phone
                .received()
                .any(|(_, state)| matches!(state, CallState::Calling | CallState::Early));
            if ringing && switch.active_calls() == 0 {
                self.violations.push(format!(
                    "phone {} still rings for a call the switch has ended (never cancelled)",
                    phone.script().user
                ));
            } else if !phone.is_settled() {
                self.violations
                    .push(format!("phone {} not settled", phone.script().user));
            }
        }
    }
}

/// A call record with its instants as seconds since the start of the run, so two runs
/// of one seed print the same.
fn describe(record: &super::CallRecord, epoch: Instant) -> String {
    let at = |instant: Option<Instant>| {
        instant.map_or("-".to_string(), |i| {
            format!("{:.3}s", i.saturating_duration_since(epoch).as_secs_f64())
        })
    };
    format!(
        "call {} invited {} answered {} ended {} by {:?} ({:?}); provisional {:?} final {:?}; bye sent {} received {} status {:?}; cancel sent {} status {:?}; re-INVITEs {:?} answers {:?}; session {:?}, refreshes sent {} received {}",
        record.call_id.chars().take(8).collect::<String>(),
        at(record.invited_at),
        at(record.answered_at),
        at(record.ended_at),
        record.ended_by,
        record.end_reason,
        record.provisional,
        record.final_status,
        record.bye_sent,
        record.bye_received,
        record.bye_status,
        record.cancel_sent,
        record.cancel_status,
        record.reinvites_sent,
        record.answer_directions,
        record.session,
        record.refreshes_sent,
        record.refreshes_received,
    )
}

/// Every node of a world, the engine first, as the stage steps them.
fn nodes<'a>(
    engine: &'a mut Engine,
    callers: &'a mut [SimCaller],
    phones: &'a mut [SimPhone],
) -> Vec<&'a mut dyn Node> {
    let mut nodes: Vec<&'a mut dyn Node> = Vec::with_capacity(1 + callers.len() + phones.len());
    nodes.push(engine);
    nodes.extend(callers.iter_mut().map(|c| c as &mut dyn Node));
    nodes.extend(phones.iter_mut().map(|p| p as &mut dyn Node));
    nodes
}

/// The seed to run: `SIM_SEED` when set (replaying one seed), else `default`.
pub fn seed_from_env() -> Option<u64> {
    std::env::var("SIM_SEED")
        .ok()
        .and_then(|v| v.trim().parse().ok())
}
