//! Property tests: random sequences of calls, agent changes, answers, failures, time
//! and reloads, checked after every step against an independent model of what the
//! driver has been told.
//!
//! Invariants (each checked after every input and timer):
//! - no call is lost: every call the model holds is in the ACD at the stage the actions
//!   said, and every call ends answered, abandoned or overflowed to the dialplan;
//! - no call is offered to two agents at once, and no agent has two calls;
//! - an offer goes to the best waiting call the agent could take: priority, then
//!   arrival (FIFO within a priority, across the agent's queues);
//! - no starvation: no waiting call is left beside an available, registered agent who
//!   could take it and has not refused it (so it gets an offer at once).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use proptest::prelude::{Just, ProptestConfig, any, prop, prop_oneof, proptest};
use proptest::sample::Index;
use proptest::strategy::Strategy as _;

use super::*;

const AGENTS: [&str; 7] = ["a1", "a2", "a3", "a4", "a5", "a6", "a7"];

fn queue(
    name: &str,
    strategy: Strategy,
    skills: &[(&str, u8)],
    max_wait: u64,
    overflow: Option<Overflow>,
    wrap_up: u64,
) -> QueueConfig {
    QueueConfig {
        name: name.into(),
        required_skills: skills.iter().map(|(s, l)| ((*s).into(), *l)).collect(),
        strategy,
        max_wait: Duration::from_secs(max_wait),
        overflow,
        wrap_up: Duration::from_secs(wrap_up),
    }
}

fn agent(id: &str, queues: &[&str], skills: &[(&str, u8)], penalty: u32) -> AgentConfig {
    AgentConfig {
        id: id.into(),
        skills: skills.iter().map(|(s, l)| ((*s).into(), *l)).collect(),
        queues: queues.iter().map(|q| (*q).into()).collect(),
        penalty,
    }
}

/// The start-up config: four queues (overflow to a queue, to the dialplan, none), six
/// agents, one of whom lacks the skill for a queue they list.
fn config_a() -> AcdConfig {
    AcdConfig {
        queues: vec![
            queue(
                "general",
                Strategy::LongestIdle,
                &[],
                60,
                Some(Overflow::Queue("backup".into())),
                5,
            ),
            queue(
                "backup",
                Strategy::RoundRobin,
                &[],
                90,
                Some(Overflow::Dialplan("voicemail".into())),
                0,
            ),
            queue(
                "complaints",
                Strategy::SkillsWeighted,
                &[("complaint", 3)],
                40,
                None,
                10,
            ),
            queue("legal", Strategy::FewestCalls, &[], 30, None, 0),
        ],
        agents: vec![
            agent("a1", &["general", "backup"], &[], 0),
            agent("a2", &["general", "complaints"], &[("complaint", 5)], 1),
            agent("a3", &["complaints", "backup"], &[("complaint", 2)], 0),
            agent("a4", &["complaints", "legal"], &[("complaint", 7)], 2),
            agent("a5", &["legal", "general"], &[], 0),
            agent("a6", &["backup"], &[], 0),
        ],
        agent_ring_timeout: DEFAULT_AGENT_RING_TIMEOUT,
    }
}

/// The reloaded config: "general" removed (its calls follow its overflow to "backup"),
/// a6 removed, a7 added, strategies changed.
fn config_b() -> AcdConfig {
    AcdConfig {
        queues: vec![
            queue(
                "backup",
                Strategy::LongestIdle,
                &[],
                90,
                Some(Overflow::Dialplan("voicemail".into())),
                3,
            ),
            queue(
                "complaints",
                Strategy::RoundRobin,
                &[("complaint", 3)],
                40,
                None,
                0,
            ),
            queue("legal", Strategy::SkillsWeighted, &[], 30, None, 0),
        ],
        agents: vec![
            agent("a1", &["backup"], &[], 0),
            agent("a2", &["complaints"], &[("complaint", 5)], 1),
            agent("a3", &["complaints", "backup"], &[("complaint", 3)], 0),
            agent("a4", &["complaints", "legal"], &[("complaint", 7)], 2),
            agent("a5", &["legal"], &[], 0),
            agent("a7", &["backup", "legal"], &[], 1),
        ],
        agent_ring_timeout: Duration::from_secs(8),
    }
}

/// A third config: "backup" removed (its calls leave for the dialplan, ringing offers
/// are cancelled), so "general" now overflows to the dialplan.
fn config_c() -> AcdConfig {
    let mut config = config_a();
    config.queues.retain(|q| q.name != "backup");
    config.queues[0].overflow = Some(Overflow::Dialplan("voicemail".into()));
    for agent in &mut config.agents {
        agent.queues.retain(|q| q != "backup");
    }
    config.agents[5].queues.push("general".into());
    config
}

/// A fourth config: "legal" (no overflow) removed: refused while it has calls.
fn config_d() -> AcdConfig {
    let mut config = config_a();
    config.queues.retain(|q| q.name != "legal");
    for agent in &mut config.agents {
        agent.queues.retain(|q| q != "legal");
    }
    config
}

/// Reloads go round these configs.
fn configs() -> [AcdConfig; 4] {
    [config_a(), config_b(), config_c(), config_d()]
}

#[derive(Clone, Debug)]
enum Op {
    Enqueue {
        queue: Index,
        priority: Index,
    },
    Abandon(Index),
    Login(Index),
    Logout(Index),
    Pause(Index),
    Resume(Index),
    Register(Index, bool),
    Answer(Index),
    Fail(Index, bool),
    End(Index),
    Advance(u64),
    Reload,
    /// The reserve for due callbacks: hold up to this many agents as they finish a call.
    Hold(usize),
    /// A held agent gets no callback after all.
    Release(Index),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<Index>(), any::<Index>()).prop_map(|(queue, priority)| Op::Enqueue { queue, priority }),
        1 => any::<Index>().prop_map(Op::Abandon),
        2 => any::<Index>().prop_map(Op::Login),
        1 => any::<Index>().prop_map(Op::Logout),
        1 => any::<Index>().prop_map(Op::Pause),
        2 => any::<Index>().prop_map(Op::Resume),
        2 => (any::<Index>(), prop::bool::weighted(0.8)).prop_map(|(a, r)| Op::Register(a, r)),
        3 => any::<Index>().prop_map(Op::Answer),
        1 => (any::<Index>(), any::<bool>()).prop_map(|(c, r)| Op::Fail(c, r)),
        2 => any::<Index>().prop_map(Op::End),
        3 => (0u64..45).prop_map(Op::Advance),
        1 => Just(Op::Reload),
        1 => (0usize..3).prop_map(Op::Hold),
        1 => any::<Index>().prop_map(Op::Release),
    ]
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Status {
    Waiting,
    Ringing(String),
    Connected(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Answered,
    Abandoned,
    OverflowedOut,
}

#[derive(Clone, Debug)]
struct ModelCall {
    queue: String,
    priority: u8,
    arrival: u64,
    status: Status,
    refused: BTreeSet<String>,
}

/// Priority first, then arrival: the order calls are served in.
type CallOrder = (Reverse<u8>, u64);

impl ModelCall {
    fn order(&self) -> CallOrder {
        (Reverse(self.priority), self.arrival)
    }
}

/// What the driver knows, built from its inputs and the actions it was given.
struct Model {
    acd: Acd,
    config: AcdConfig,
    now: Instant,
    live: BTreeMap<CallKey, ModelCall>,
    finished: BTreeMap<CallKey, Outcome>,
    next_key: CallKey,
    next_arrival: u64,
    /// The reserve's limit last set.
    hold_limit: usize,
}

impl Model {
    fn new() -> Model {
        Model {
            acd: Acd::new(config_a()).expect("valid config"),
            config: config_a(),
            now: Instant::now(),
            live: BTreeMap::new(),
            finished: BTreeMap::new(),
            next_key: 1,
            next_arrival: 0,
            hold_limit: 0,
        }
    }

    /// Whether `agent` (in the current config) may take calls of `queue`.
    fn eligible(&self, agent: &str, queue: &str) -> bool {
        let Some(agent) = self.config.agents.iter().find(|a| a.id == agent) else {
            return false;
        };
        let Some(queue) = self.config.queues.iter().find(|q| q.name == queue) else {
            return false;
        };
        agent.queues.contains(&queue.name) && agent.meets(&queue.required_skills)
    }

    fn busy(&self, agent: &str) -> bool {
        self.live.values().any(
            |call| matches!(&call.status, Status::Ringing(a) | Status::Connected(a) if a == agent),
        )
    }

    fn keys_where(&self, wanted: impl Fn(&Status) -> bool) -> Vec<CallKey> {
        self.live
            .iter()
            .filter(|(_, call)| wanted(&call.status))
            .map(|(key, _)| *key)
            .collect()
    }

    fn finish(&mut self, key: CallKey, outcome: Outcome) {
        assert!(
            self.live.remove(&key).is_some(),
            "call {key} finished twice"
        );
        self.finished.insert(key, outcome);
    }

    fn apply(&mut self, op: &Op) {
        let now = self.now;
        match op {
            Op::Enqueue { queue, priority } => {
                let queue = self.config.queues[queue.index(self.config.queues.len())]
                    .name
                    .clone();
                let priority = [0, 5, 9][priority.index(3)];
                let key = self.next_key;
                self.next_key += 1;
                self.acd
                    .enqueue(now, key, &queue, priority)
                    .expect("enqueue");
                self.live.insert(
                    key,
                    ModelCall {
                        queue,
                        priority,
                        arrival: self.next_arrival,
                        status: Status::Waiting,
                        refused: BTreeSet::new(),
                    },
                );
                self.next_arrival += 1;
            }
            Op::Abandon(pick) => {
                let keys = self.keys_where(|_| true);
                if keys.is_empty() {
                    return;
                }
                let key = keys[pick.index(keys.len())];
                let connected = matches!(self.live[&key].status, Status::Connected(_));
                let waited = self.acd.abandon(now, key);
                assert_eq!(waited.is_some(), !connected);
                let outcome = if connected {
                    Outcome::Answered
                } else {
                    Outcome::Abandoned
                };
                self.finish(key, outcome);
            }
            Op::Login(a) => {
                let _ = self.acd.login(now, AGENTS[a.index(AGENTS.len())]);
            }
            Op::Logout(a) => {
                let _ = self.acd.logout(now, AGENTS[a.index(AGENTS.len())]);
            }
            Op::Pause(a) => {
                let _ = self
                    .acd
                    .pause(now, AGENTS[a.index(AGENTS.len())], PauseReason::Break);
            }
            Op::Resume(a) => {
                let _ = self.acd.resume(now, AGENTS[a.index(AGENTS.len())]);
            }
            Op::Register(a, registered) => {
                let _ = self
                    .acd
                    .set_registered(now, AGENTS[a.index(AGENTS.len())], *registered);
            }
            Op::Answer(pick) => {
                let keys = self.keys_where(|s| matches!(s, Status::Ringing(_)));
                if keys.is_empty() {
                    return;
                }
                self.answer(keys[pick.index(keys.len())]);
            }
            Op::Fail(pick, refused) => {
                let keys = self.keys_where(|s| matches!(s, Status::Ringing(_)));
                if keys.is_empty() {
                    return;
                }
                let key = keys[pick.index(keys.len())];
                let call = self.live.get_mut(&key).expect("live");
                let Status::Ringing(agent) = call.status.clone() else {
                    unreachable!("picked among ringing calls");
                };
                call.status = Status::Waiting;
                let why = if *refused {
                    call.refused.insert(agent.clone());
                    OfferFailure::Refused
                } else {
                    OfferFailure::Unreachable
                };
                self.acd.offer_failed(now, key, &agent, why).expect("fail");
            }
            Op::End(pick) => {
                let keys = self.keys_where(|s| matches!(s, Status::Connected(_)));
                if keys.is_empty() {
                    return;
                }
                let key = keys[pick.index(keys.len())];
                self.finish(key, Outcome::Answered);
                self.acd.call_ended(now, key).expect("end");
            }
            Op::Advance(secs) => {
                self.advance(Duration::from_secs(*secs));
                return;
            }
            Op::Hold(limit) => {
                self.hold_limit = *limit;
                self.acd.set_callback_hold(now, *limit);
            }
            Op::Release(a) => {
                let _ = self.acd.release_held(now, AGENTS[a.index(AGENTS.len())]);
            }
            Op::Reload => {
                let configs = configs();
                let at = configs.iter().position(|c| *c == self.config).unwrap_or(0);
                let next = configs[(at + 1) % configs.len()].clone();
                let previous = std::mem::replace(&mut self.config, next.clone());
                match self.acd.reload(now, next) {
                    Ok(()) => {}
                    Err(AcdError::RemovedQueueHasCalls { queue }) => {
                        assert!(self.live.values().any(|c| c.queue == queue));
                        self.config = previous;
                    }
                    Err(other) => panic!("reload refused: {other}"),
                }
            }
        }
        self.take_actions();
        self.check();
    }

    fn answer(&mut self, key: CallKey) {
        let Status::Ringing(agent) = self.live[&key].status.clone() else {
            panic!("call {key} is not ringing");
        };
        self.acd
            .offer_answered(self.now, key, &agent)
            .expect("answer");
        self.live.get_mut(&key).expect("live").status = Status::Connected(agent);
    }

    /// Moves the clock on, firing each timer at its own deadline.
    fn advance(&mut self, by: Duration) {
        let target = self.now + by;
        while let Some(deadline) = self.acd.poll_timeout() {
            if deadline > target {
                break;
            }
            self.now = self.now.max(deadline);
            self.acd.handle_timeout(self.now);
            self.take_actions();
            self.check();
        }
        self.now = target;
    }

    fn take_actions(&mut self) {
        while let Some(action) = self.acd.poll_action() {
            match action {
                AcdAction::Offer { call, agent } => self.check_offer(call, agent),
                AcdAction::CancelOffer { call, agent, .. } => {
                    if let Some(entry) = self.live.get_mut(&call) {
                        assert_eq!(
                            entry.status,
                            Status::Ringing(agent),
                            "cancel of call {call}"
                        );
                        entry.status = Status::Waiting;
                    } else {
                        assert_eq!(self.finished.get(&call), Some(&Outcome::Abandoned));
                    }
                }
                AcdAction::Overflow { call, target } => {
                    let entry = self.live.get_mut(&call).expect("overflow of a live call");
                    match target {
                        Overflow::Queue(queue) => entry.queue = queue,
                        Overflow::Dialplan(_) => {
                            assert_eq!(entry.status, Status::Waiting, "leaving while ringing");
                            self.finish(call, Outcome::OverflowedOut);
                        }
                    }
                }
                AcdAction::Connected { call, agent } => {
                    assert_eq!(self.live[&call].status, Status::Connected(agent));
                }
                AcdAction::AgentStateChanged { .. } => {}
            }
        }
    }

    fn check_offer(&mut self, key: CallKey, agent: String) {
        let call = self.live.get(&key).expect("offer of a live call");
        assert_eq!(call.status, Status::Waiting, "call {key} offered twice");
        assert!(!self.busy(&agent), "agent {agent} given a second call");
        assert!(
            self.eligible(&agent, &call.queue),
            "{agent} not in {}",
            call.queue
        );
        assert!(!call.refused.contains(&agent), "re-offered to a refuser");
        for (other_key, other) in &self.live {
            if *other_key != key
                && other.status == Status::Waiting
                && self.eligible(&agent, &other.queue)
                && !other.refused.contains(&agent)
            {
                assert!(
                    call.order() < other.order(),
                    "call {key} offered to {agent} ahead of better call {other_key}"
                );
            }
        }
        self.live.get_mut(&key).expect("live").status = Status::Ringing(agent);
    }

    fn check(&self) {
        // Every live call is in the ACD as the model says; nothing else is.
        assert_eq!(self.acd.call_keys().count(), self.live.len());
        // Per queue: each waiting call's order and the position the ACD gives it.
        let mut positions: BTreeMap<&str, Vec<(CallOrder, usize)>> = BTreeMap::new();
        for (key, call) in &self.live {
            let view = self.acd.call(*key).expect("live call in the ACD");
            assert_eq!(view.queue, call.queue, "queue of call {key}");
            match (&call.status, &view.stage) {
                (Status::Waiting, CallStage::Waiting { position }) => positions
                    .entry(call.queue.as_str())
                    .or_default()
                    .push((call.order(), *position)),
                (Status::Ringing(a), CallStage::Ringing { agent })
                | (Status::Connected(a), CallStage::Connected { agent }) => assert_eq!(a, agent),
                (model, acd) => panic!("call {key}: model {model:?}, ACD {acd:?}"),
            }
        }
        // Positions are 1..n in priority-then-arrival order (FIFO within a priority).
        for waiting in positions.values_mut() {
            waiting.sort();
            for (i, (_, position)) in waiting.iter().enumerate() {
                assert_eq!(*position, i + 1);
            }
        }
        for key in self.finished.keys() {
            assert_eq!(self.acd.call(*key), None);
        }
        // Agents: at most one call each, and the ACD agrees which.
        for id in AGENTS {
            let held: Vec<CallKey> = self
                .live
                .iter()
                .filter(|(_, c)| matches!(&c.status, Status::Ringing(a) | Status::Connected(a) if a == id))
                .map(|(k, _)| *k)
                .collect();
            assert!(held.len() <= 1, "agent {id} holds {held:?}");
            let state = self.acd.agent(id).map(|v| v.state);
            match (held.first(), state) {
                (Some(key), Some(AgentState::Reserved { call } | AgentState::OnCall { call })) => {
                    assert_eq!(*key, call)
                }
                (None, Some(AgentState::Reserved { .. } | AgentState::OnCall { .. })) => {
                    panic!("agent {id} busy with a call the model does not know")
                }
                (Some(key), other) => panic!("agent {id} holds {key} but is {other:?}"),
                (None, _) => {}
            }
        }
        // The reserve: never more held than its limit (no outbound call here, so a held
        // agent is always free), and a held agent has no inbound call.
        let held = self.acd.held_for_callback();
        assert!(
            held.len() <= self.hold_limit,
            "{held:?} held, limit {}",
            self.hold_limit
        );
        assert_eq!(self.acd.held_count(), held.len());
        for id in &held {
            assert!(!self.busy(id), "held agent {id} has an inbound call");
        }
        // No starvation: no waiting call beside an agent who could take it now (a held
        // agent is kept from them on purpose, until released).
        for (key, call) in &self.live {
            if call.status != Status::Waiting {
                continue;
            }
            for agent in &self.config.agents {
                let Some(view) = self.acd.agent(&agent.id) else {
                    continue;
                };
                if held.contains(&agent.id) {
                    continue;
                }
                let free =
                    view.state == AgentState::Available && view.registered && view.configured;
                assert!(
                    !(free
                        && self.eligible(&agent.id, &call.queue)
                        && !call.refused.contains(&agent.id)),
                    "call {key} waits in {} while {} is free",
                    call.queue,
                    agent.id
                );
            }
        }
    }

    /// Every agent comes in and answers everything; time runs on. Afterwards every call
    /// has ended, except ones every eligible agent refused in a queue without overflow.
    fn drain(&mut self) {
        self.hold_limit = 0;
        self.acd.set_callback_hold(self.now, 0);
        self.take_actions();
        self.check();
        for _ in 0..40 {
            for agent in self.config.agents.clone() {
                let _ = self.acd.set_registered(self.now, &agent.id, true);
                let _ = self.acd.login(self.now, &agent.id);
                let _ = self.acd.resume(self.now, &agent.id);
                self.take_actions();
                self.check();
            }
            for key in self.keys_where(|s| matches!(s, Status::Connected(_))) {
                self.finish(key, Outcome::Answered);
                self.acd.call_ended(self.now, key).expect("end");
                self.take_actions();
                self.check();
            }
            for key in self.keys_where(|s| matches!(s, Status::Ringing(_))) {
                self.answer(key);
                self.take_actions();
                self.check();
            }
            if self.live.is_empty() {
                break;
            }
            self.advance(Duration::from_secs(30));
        }
        for (key, call) in self.live.clone() {
            assert_eq!(call.status, Status::Waiting, "call {key} stuck");
            let takers: Vec<&str> = self
                .config
                .agents
                .iter()
                .map(|a| a.id.as_str())
                .filter(|a| self.eligible(a, &call.queue) && !call.refused.contains(*a))
                .collect();
            assert!(takers.is_empty(), "call {key} never reached {takers:?}");
            assert!(self.acd.abandon(self.now, key).is_some());
            self.finish(key, Outcome::Abandoned);
        }
        assert_eq!(self.acd.call_keys().count(), 0);
        assert_eq!(
            self.finished.len() as u64,
            self.next_key - 1,
            "a call was lost"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn acd_invariants_hold_over_random_event_sequences(ops in prop::collection::vec(op(), 1..80)) {
        let mut model = Model::new();
        for op in &ops {
            model.apply(op);
        }
        model.drain();
    }
}
