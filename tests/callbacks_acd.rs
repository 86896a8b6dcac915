//! The callback scheduler and the real ACD core together, on a simulated clock, with
//! this test playing the switch between them: phones answer, calls end, callers lose
//! patience. An agent is held out of inbound distribution (here a supervisor pause; the
//! engine holds a freed agent with `Acd::set_callback_hold` instead, measured through
//! the switch in `tests/callbacks_simulation.rs`) while their phone rings for a callback
//! or they talk on one, and given back when the callback ends or is preempted.
//!
//! A three-hour inbound peak, heavier than the agents can carry, with referral checks
//! (R17) coming due throughout. Without the reserve, inbound comes first (R9): no
//! callback is handed to an agent an inbound call waits for, so the follow-ups go
//! overdue. With a reserve of one agent for callbacks within 10 min of their latest
//! time, fewer go overdue, at a cost the supervisor can see: a lower connection rate.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use hotline::acd::{
    Acd, AcdAction, AcdConfig, AgentConfig, CallKey, PauseReason, QueueConfig, Strategy,
};
use hotline::callbacks::{
    AgentPool, DialOrder, DialOutcome, NewTask, Output, Reason, Scheduler, TaskId,
};
use hotline::config::callbacks::{CallbackReserve, CallbacksConfig};
use hotline::workorder::WorkOrderId;

const AGENTS: [&str; 6] = ["1001", "1002", "1003", "1004", "1005", "1006"];
const PEAK: Duration = Duration::from_secs(3 * 3600);
/// After the peak, calm: the overdue callbacks are worked off.
const CALM: Duration = Duration::from_secs(3600);
const MEAN_INBOUND_GAP_SECONDS: u64 = 40;
const INBOUND_TALK: Duration = Duration::from_secs(300);
const PATIENCE: Duration = Duration::from_secs(120);
const REFERRAL_EVERY: Duration = Duration::from_secs(360);
const AGENT_ANSWERS_AFTER: Duration = Duration::from_secs(2);
const CITIZEN_ANSWERS_AFTER: Duration = Duration::from_secs(20);
const CALLBACK_TALK: Duration = Duration::from_secs(180);

/// A small deterministic generator, so both runs see the same callers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Exponential gap with the given mean, at least 1 s.
    fn gap(&mut self, mean: u64) -> Duration {
        let uniform = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        Duration::from_secs_f64((-(1.0 - uniform).ln() * mean as f64).max(1.0))
    }
}

#[derive(Debug, Default, PartialEq)]
struct Figures {
    inbound_offered: u64,
    inbound_answered: u64,
    callbacks_created: u64,
    callbacks_connected: u64,
    /// Tasks that were overdue at some moment of the peak.
    overdue_during_peak: u64,
    /// Overdue tasks at the end of the peak.
    overdue_at_peak_end: usize,
    preemptions: u64,
}

impl Figures {
    fn connection_rate(&self) -> f64 {
        self.inbound_answered as f64 / self.inbound_offered as f64
    }
}

enum CallbackStage {
    AgentRinging { answers_at: Instant },
    CitizenRinging { answers_at: Instant },
    Talking { ends_at: Instant },
}

struct Sim {
    t0: Instant,
    wall0: DateTime<Utc>,
    acd: Acd,
    scheduler: Scheduler,
    /// Inbound calls: when the caller gives up if still unanswered.
    waiting: BTreeMap<CallKey, Instant>,
    talking: BTreeMap<CallKey, (String, Instant)>,
    callbacks: BTreeMap<TaskId, (String, CallbackStage)>,
    figures: Figures,
    overdue_seen: std::collections::BTreeSet<TaskId>,
}

impl Sim {
    fn new(reserve: Option<CallbackReserve>) -> Sim {
        let t0 = Instant::now();
        let acd = Acd::new(AcdConfig {
            queues: vec![QueueConfig {
                name: "general".into(),
                required_skills: Default::default(),
                strategy: Strategy::LongestIdle,
                max_wait: Duration::from_secs(3600),
                overflow: None,
                wrap_up: Duration::ZERO,
            }],
            agents: AGENTS
                .iter()
                .map(|id| AgentConfig {
                    id: (*id).into(),
                    skills: Default::default(),
                    queues: vec!["general".into()],
                    penalty: 0,
                })
                .collect(),
            agent_ring_timeout: Duration::from_secs(10),
        })
        .unwrap();
        let settings = CallbacksConfig {
            reserve,
            ..CallbacksConfig::default()
        };
        let mut sim = Sim {
            t0,
            wall0: Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap(),
            acd,
            scheduler: Scheduler::new(settings),
            waiting: BTreeMap::new(),
            talking: BTreeMap::new(),
            callbacks: BTreeMap::new(),
            figures: Figures::default(),
            overdue_seen: Default::default(),
        };
        for id in AGENTS {
            sim.acd.set_registered(t0, id, true).unwrap();
            sim.acd.login(t0, id).unwrap();
        }
        sim.acd_actions(t0);
        sim
    }

    fn wall(&self, now: Instant) -> DateTime<Utc> {
        self.wall0 + chrono::Duration::from_std(now - self.t0).unwrap()
    }

    /// Phones answer offers at once (auto-answer), so a call is waiting or talking.
    fn acd_actions(&mut self, now: Instant) {
        while let Some(action) = self.acd.poll_action() {
            if let AcdAction::Offer { call, agent } = action {
                self.acd.offer_answered(now, call, &agent).unwrap();
                self.waiting.remove(&call);
                self.figures.inbound_answered += 1;
                self.talking.insert(call, (agent, now + INBOUND_TALK));
            }
        }
    }

    fn pool(&self, now: Instant) -> AgentPool {
        AgentPool::from_acd(&self.acd, now)
    }

    /// The switch's side of a dial order: hold the agent out of inbound distribution
    /// and ring their phone.
    fn start_callback(&mut self, now: Instant, order: DialOrder, already_held: bool) {
        assert!(
            order.via_reserve || !self.pool(now).inbound_waiting_for(&order.agent),
            "R9: {} handed a callback while an inbound call waits",
            order.agent
        );
        if !already_held {
            self.acd
                .pause(now, &order.agent, PauseReason::Supervisor)
                .unwrap();
        }
        self.callbacks.insert(
            order.task,
            (
                order.agent,
                CallbackStage::AgentRinging {
                    answers_at: now + AGENT_ANSWERS_AFTER,
                },
            ),
        );
    }

    fn release_agent(&mut self, now: Instant, agent: &str) {
        self.acd.resume(now, agent).unwrap();
        self.acd_actions(now);
    }

    fn schedule(&mut self, now: Instant) {
        let wall = self.wall(now);
        let pool = self.pool(now);
        self.scheduler.handle_agents(wall, &pool);
        while let Some(output) = self.scheduler.poll_output() {
            match output {
                Output::Dial(order) => self.start_callback(now, order, false),
                Output::Preempt { task, agent } => {
                    let (_, stage) = self.callbacks.remove(&task).unwrap();
                    assert!(
                        !matches!(stage, CallbackStage::Talking { .. }),
                        "a connected callback is never cut"
                    );
                    self.figures.preemptions += 1;
                    // The CANCEL is answered 487 at once here: the legs are gone.
                    self.scheduler.preempted(wall, task).unwrap();
                    self.release_agent(now, &agent);
                }
                Output::CancelDial { task, agent } => {
                    self.callbacks.remove(&task);
                    self.release_agent(now, &agent);
                }
                Output::Save(_) => {}
            }
        }
    }

    fn step(&mut self, now: Instant) {
        let wall = self.wall(now);
        // Callers out of patience hang up.
        let gone: Vec<CallKey> = self
            .waiting
            .iter()
            .filter(|(_, gives_up)| **gives_up <= now)
            .map(|(call, _)| *call)
            .collect();
        for call in gone {
            self.waiting.remove(&call);
            self.acd.abandon(now, call);
        }
        self.acd_actions(now);

        // Inbound calls end; the reserve may claim the agent before the ACD does.
        let ended: Vec<(CallKey, String)> = self
            .talking
            .iter()
            .filter(|(_, (_, ends))| *ends <= now)
            .map(|(call, (agent, _))| (*call, agent.clone()))
            .collect();
        for (call, agent) in ended {
            self.talking.remove(&call);
            let pool = self.pool(now);
            let claimed = self.scheduler.claim_freed_agent(wall, &agent, &pool);
            if claimed.is_some() {
                // Paused while on the call: the pause starts when it ends, so the ACD
                // does not hand the agent the next waiting call.
                self.acd
                    .pause(now, &agent, PauseReason::Supervisor)
                    .unwrap();
            }
            self.acd.call_ended(now, call).unwrap();
            self.acd_actions(now);
            if let Some(order) = claimed {
                self.start_callback(now, order, true);
            }
        }

        // Callback legs progress.
        let tasks: Vec<TaskId> = self.callbacks.keys().copied().collect();
        for task in tasks {
            let (agent, stage) = self.callbacks.get(&task).unwrap();
            let agent = agent.clone();
            match *stage {
                CallbackStage::AgentRinging { answers_at } if answers_at <= now => {
                    self.callbacks.get_mut(&task).unwrap().1 = CallbackStage::CitizenRinging {
                        answers_at: now + CITIZEN_ANSWERS_AFTER,
                    };
                }
                CallbackStage::CitizenRinging { answers_at } if answers_at <= now => {
                    self.scheduler
                        .dial_result(wall, task, DialOutcome::Connected)
                        .unwrap();
                    self.figures.callbacks_connected += 1;
                    self.callbacks.get_mut(&task).unwrap().1 = CallbackStage::Talking {
                        ends_at: now + CALLBACK_TALK,
                    };
                }
                CallbackStage::Talking { ends_at } if ends_at <= now => {
                    self.scheduler.call_ended(wall, task).unwrap();
                    self.callbacks.remove(&task);
                    self.release_agent(now, &agent);
                }
                _ => {}
            }
        }
        self.schedule(now);
    }

    fn note_overdue(&mut self, now: Instant) {
        let wall = self.wall(now);
        for task in self.scheduler.tasks() {
            if task.is_overdue(wall) {
                self.overdue_seen.insert(task.id);
            }
        }
    }
}

fn run(reserve: Option<CallbackReserve>) -> Figures {
    let mut sim = Sim::new(reserve);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let t0 = sim.t0;
    let mut next_inbound = t0 + rng.gap(MEAN_INBOUND_GAP_SECONDS);
    let mut next_referral = t0 + REFERRAL_EVERY;
    let mut call: CallKey = 0;
    let mut now = t0;
    while now < t0 + PEAK + CALM {
        let in_peak = now < t0 + PEAK;
        while in_peak && next_inbound <= now {
            call += 1;
            sim.figures.inbound_offered += 1;
            sim.waiting.insert(call, now + PATIENCE);
            sim.acd.enqueue(now, call, "general", 0).unwrap();
            sim.acd_actions(now);
            next_inbound += rng.gap(MEAN_INBOUND_GAP_SECONDS);
        }
        if in_peak && next_referral <= now {
            let owner = AGENTS[(rng.next() % AGENTS.len() as u64) as usize];
            let wall = sim.wall(now);
            sim.scheduler
                .create(
                    wall,
                    NewTask {
                        work_order: WorkOrderId::from_parts(wall, call),
                        number: format!("1380000{:04}", sim.figures.callbacks_created)
                            .parse()
                            .unwrap(),
                        reason: Reason::ReferralCheck,
                        window: None,
                        owner: Some(owner.into()),
                        queue: "general".into(),
                    },
                )
                .unwrap();
            sim.figures.callbacks_created += 1;
            next_referral += REFERRAL_EVERY;
        }
        sim.step(now);
        if in_peak {
            sim.note_overdue(now);
        }
        if now == t0 + PEAK {
            sim.figures.overdue_at_peak_end = sim.scheduler.stats(sim.wall(now)).overdue;
        }
        now += Duration::from_secs(1);
    }
    sim.figures.overdue_during_peak = sim.overdue_seen.len() as u64;
    // Nothing is lost: after the calm hour every referral check has been made.
    assert_eq!(
        sim.figures.callbacks_connected, sim.figures.callbacks_created,
        "every callback connects once the peak is over"
    );
    sim.figures
}

#[test]
fn the_reserve_trades_connection_rate_for_fewer_overdue_callbacks_r9_r20() {
    let inbound_first = run(None);
    let reserve = run(Some(CallbackReserve {
        agents: 1,
        within: Duration::from_secs(600),
    }));
    eprintln!(
        "inbound first: {inbound_first:?}, rate {:.3}",
        inbound_first.connection_rate()
    );
    eprintln!(
        "reserve 1 agent / 10 min: {reserve:?}, rate {:.3}",
        reserve.connection_rate()
    );

    // Same callers and callbacks in both runs; the peak is more than the agents carry.
    assert_eq!(inbound_first.inbound_offered, reserve.inbound_offered);
    assert_eq!(inbound_first.callbacks_created, reserve.callbacks_created);
    assert!(inbound_first.connection_rate() < 0.95, "{inbound_first:?}");

    // Inbound first: the peak leaves follow-ups overdue.
    assert!(
        inbound_first.overdue_during_peak * 2 > inbound_first.callbacks_created,
        "most referral checks go overdue in the peak without the reserve: {inbound_first:?}"
    );
    // The reserve keeps most of them on time...
    assert!(
        reserve.overdue_during_peak * 2 < inbound_first.overdue_during_peak,
        "the reserve at least halves overdue callbacks: {reserve:?} vs {inbound_first:?}"
    );
    assert!(reserve.overdue_at_peak_end <= inbound_first.overdue_at_peak_end);
    // ...and inbound callers pay for it.
    assert!(
        reserve.connection_rate() < inbound_first.connection_rate(),
        "the reserve costs connection rate: {:.3} vs {:.3}",
        reserve.connection_rate(),
        inbound_first.connection_rate()
    );
}
