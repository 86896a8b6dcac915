//! Property test: random interleavings of tasks, inbound calls, agents finishing calls,
//! dial results, cancellations and time, against a small model of the ACD's agents and
//! queues. Checked after every step (R9):
//! - an agent is never handed a callback while an inbound call it could serve waits;
//! - an agent never has two calls (callback or inbound) at once;
//! - a connected callback is never preempted, cancelled or otherwise cut: it stays
//!   connected until its call ends;
//! - a preemption only ever hits an attempt that is still ringing.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration as Span, TimeZone, Utc};
use proptest::prelude::{ProptestConfig, prop, prop_oneof, proptest};
use proptest::strategy::Strategy as _;

use super::*;
use crate::config::callbacks::CallbacksConfig;

const AGENTS: [(&str, &[&str]); 4] = [
    ("a1", &["general"]),
    ("a2", &["general", "billing"]),
    ("a3", &["billing"]),
    ("a4", &["complaints"]),
];
const QUEUES: [&str; 3] = ["general", "billing", "complaints"];

#[derive(Clone, Debug)]
enum Op {
    Create {
        reason: usize,
        owner: Option<usize>,
        queue: usize,
        opens_in_min: i64,
    },
    InboundArrives(usize),
    InboundAbandons(usize),
    InboundEnds(usize),
    DialResult {
        pick: usize,
        outcome: u8,
    },
    AgentLegFails(usize),
    CallbackEnds(usize),
    Cancel(usize),
    MissedCallerGetsThrough(usize),
    /// The driver learns how a preempted attempt's CANCEL ended: 487, or a 200 OK that
    /// crossed it.
    PreemptionEnds {
        pick: usize,
        crossed: bool,
    },
    Advance(i64),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    prop_oneof![
        (0..5usize, prop::option::of(0..4usize), 0..3usize, 0..15i64).prop_map(
            |(reason, owner, queue, opens_in_min)| Op::Create {
                reason,
                owner,
                queue,
                opens_in_min
            }
        ),
        (0..3usize).prop_map(Op::InboundArrives),
        (0..3usize).prop_map(Op::InboundAbandons),
        (0..4usize).prop_map(Op::InboundEnds),
        (0..8usize, 0..4u8).prop_map(|(pick, outcome)| Op::DialResult { pick, outcome }),
        (0..8usize).prop_map(Op::AgentLegFails),
        (0..8usize).prop_map(Op::CallbackEnds),
        (0..16usize).prop_map(Op::Cancel),
        (0..16usize).prop_map(Op::MissedCallerGetsThrough),
        (0..8usize, proptest::bool::ANY)
            .prop_map(|(pick, crossed)| Op::PreemptionEnds { pick, crossed }),
        (1..600i64).prop_map(Op::Advance),
    ]
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Busy {
    Free,
    Inbound,
    Dialing(TaskId),
    /// Held while a preempted attempt's CANCEL is under way.
    Clearing(TaskId),
    Connected(TaskId),
}

/// The ACD's side, as the test drives it.
struct World {
    agents: BTreeMap<&'static str, Busy>,
    waiting: BTreeMap<&'static str, usize>,
    numbers: Vec<PhoneNumber>,
    created: Vec<TaskId>,
}

impl World {
    fn pool(&self) -> AgentPool {
        let mut pool = AgentPool::new();
        for (id, queues) in AGENTS {
            let queues: Vec<String> = queues.iter().map(|q| (*q).to_owned()).collect();
            pool.add_agent(id, &queues, self.agents[id] == Busy::Free);
        }
        for (queue, count) in &self.waiting {
            if *count > 0 {
                pool.set_inbound_waiting(queue);
            }
        }
        pool
    }

    /// A free agent takes the longest-waiting call of a queue they serve (the ACD's
    /// matching), which is what the ACD does at once.
    fn match_inbound(&mut self) {
        for (id, queues) in AGENTS {
            if self.agents[id] != Busy::Free {
                continue;
            }
            if let Some(queue) = queues.iter().find(|q| self.waiting[*q] > 0) {
                *self.waiting.get_mut(queue).unwrap() -= 1;
                self.agents.insert(id, Busy::Inbound);
            }
        }
    }

    fn agent_on(&self, task: TaskId) -> Option<&'static str> {
        self.agents.iter().find_map(|(id, busy)| match busy {
            Busy::Dialing(t) | Busy::Clearing(t) | Busy::Connected(t) if *t == task => Some(*id),
            _ => None,
        })
    }

    fn tasks_where(&self, want: fn(&Busy) -> Option<TaskId>) -> Vec<TaskId> {
        self.agents.values().filter_map(want).collect()
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap()
}

/// Feeds the scheduler the world's view and applies its outputs, checking each.
///
/// The scheduler is asked before the ACD matches agents who just became free to the
/// calls waiting for them (the driver may feed either first, and a call an agent
/// refused waits beside them for good), so the test sees free agents with calls waiting.
fn schedule(s: &mut Scheduler, world: &mut World, now: DateTime<Utc>) {
    let pool = world.pool();
    s.handle_agents(now, &pool);
    while let Some(output) = s.poll_output() {
        match output {
            Output::Dial(order) => {
                assert!(
                    !pool.inbound_waiting_for(&order.agent),
                    "R9: {} handed {} while an inbound call waits for them",
                    order.agent,
                    order.task
                );
                assert_eq!(
                    world.agents[order.agent.as_str()],
                    Busy::Free,
                    "{} handed {} while busy",
                    order.agent,
                    order.task
                );
                assert_eq!(
                    world.agent_on(order.task),
                    None,
                    "{} dialled while an attempt of it is still under way",
                    order.task
                );
                let id = AGENTS.iter().find(|(a, _)| *a == order.agent).unwrap().0;
                world.agents.insert(id, Busy::Dialing(order.task));
            }
            ref output @ (Output::Preempt {
                ref task,
                ref agent,
            }
            | Output::CancelDial {
                ref task,
                ref agent,
            }) => {
                let (task, agent) = (*task, agent.clone());
                let preempt = matches!(output, Output::Preempt { .. });
                assert_eq!(
                    world.agents[agent.as_str()],
                    Busy::Dialing(task),
                    "only a ringing attempt may be abandoned; {agent} on {task}"
                );
                let id = AGENTS.iter().find(|(a, _)| *a == agent).unwrap().0;
                let next = if preempt {
                    Busy::Clearing(task)
                } else {
                    Busy::Free
                };
                world.agents.insert(id, next);
            }
            Output::Save(_) => {}
        }
    }
    // The agents freed by a preemption take the waiting calls (the ACD does so at once).
    world.match_inbound();
    for (agent, busy) in &world.agents {
        if let Busy::Connected(task) = busy {
            assert_eq!(
                s.task(*task).map(|t| t.state.clone()),
                Some(TaskState::Connected {
                    agent: (*agent).to_owned()
                }),
                "a connected callback is never cut"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn inbound_first_and_connected_callbacks_are_never_cut_r9(
        ops in prop::collection::vec(op(), 1..120)
    ) {
        let mut s = Scheduler::new(CallbacksConfig::default());
        let mut world = World {
            agents: AGENTS.iter().map(|(id, _)| (*id, Busy::Free)).collect(),
            waiting: QUEUES.iter().map(|q| (*q, 0)).collect(),
            numbers: ["13800000001", "13800000002", "13800000003"]
                .iter()
                .map(|n| n.parse().unwrap())
                .collect(),
            created: Vec::new(),
        };
        let mut now = t0();
        for op in ops {
            match op {
                Op::Create { reason, owner, queue, opens_in_min } => {
                    let reason = Reason::ALL[reason];
                    let number = world.numbers[world.created.len() % world.numbers.len()].clone();
                    let work_order = WorkOrderId::from_parts(now, world.created.len() as u64);
                    let id = if reason == Reason::MissedCall {
                        s.missed_call(now, work_order, number, QUEUES[queue]).unwrap()
                    } else {
                        let earliest = now + Span::minutes(opens_in_min);
                        s.create(now, NewTask {
                            work_order,
                            number,
                            reason,
                            window: Some(Window::new(earliest, earliest + Span::minutes(10)).unwrap()),
                            owner: owner.map(|i| AGENTS[i].0.to_owned()),
                            queue: QUEUES[queue].to_owned(),
                        }).unwrap()
                    };
                    world.created.push(id);
                }
                Op::InboundArrives(queue) => {
                    *world.waiting.get_mut(QUEUES[queue]).unwrap() += 1;
                    world.match_inbound();
                }
                Op::InboundAbandons(queue) => {
                    let waiting = world.waiting.get_mut(QUEUES[queue]).unwrap();
                    *waiting = waiting.saturating_sub(1);
                }
                Op::InboundEnds(agent) => {
                    let id = AGENTS[agent].0;
                    if world.agents[id] == Busy::Inbound {
                        world.agents.insert(id, Busy::Free);
                    }
                }
                Op::DialResult { pick, outcome } => {
                    let dialing = world.tasks_where(|b| match b { Busy::Dialing(t) => Some(*t), _ => None });
                    if let Some(&task) = dialing.get(pick % dialing.len().max(1)) {
                        let outcome = [DialOutcome::Connected, DialOutcome::NoAnswer, DialOutcome::Busy, DialOutcome::Failed(503)][usize::from(outcome)];
                        s.dial_result(now, task, outcome).unwrap();
                        let agent = world.agent_on(task).unwrap();
                        let next = if outcome == DialOutcome::Connected { Busy::Connected(task) } else { Busy::Free };
                        world.agents.insert(agent, next);
                    }
                }
                Op::AgentLegFails(pick) => {
                    let dialing = world.tasks_where(|b| match b { Busy::Dialing(t) => Some(*t), _ => None });
                    if let Some(&task) = dialing.get(pick % dialing.len().max(1)) {
                        s.agent_leg_failed(now, task).unwrap();
                        world.agents.insert(world.agent_on(task).unwrap(), Busy::Free);
                    }
                }
                Op::CallbackEnds(pick) => {
                    let connected = world.tasks_where(|b| match b { Busy::Connected(t) => Some(*t), _ => None });
                    if let Some(&task) = connected.get(pick % connected.len().max(1)) {
                        s.call_ended(now, task).unwrap();
                        world.agents.insert(world.agent_on(task).unwrap(), Busy::Free);
                    }
                }
                Op::Cancel(pick) => {
                    if let Some(&task) = world.created.get(pick % world.created.len().max(1)) {
                        let connected = matches!(s.task(task).map(|t| &t.state), Some(TaskState::Connected { .. }));
                        let result = s.cancel(now, task);
                        if connected {
                            assert_eq!(result, Err(CallbackError::Connected { task }));
                        }
                    }
                }
                Op::MissedCallerGetsThrough(pick) => {
                    let number = world.numbers[pick % world.numbers.len()].clone();
                    s.inbound_connected(now, &number);
                }
                Op::PreemptionEnds { pick, crossed } => {
                    let clearing = world.tasks_where(|b| match b { Busy::Clearing(t) => Some(*t), _ => None });
                    if let Some(&task) = clearing.get(pick % clearing.len().max(1)) {
                        let agent = world.agent_on(task).unwrap();
                        if s.task(task).is_none() {
                            // Cancelled meanwhile: the driver hangs up whatever is left.
                            assert_eq!(s.preempted(now, task), Err(CallbackError::UnknownTask(task)));
                            world.agents.insert(agent, Busy::Free);
                        } else if crossed {
                            s.dial_result(now, task, DialOutcome::Connected).unwrap();
                            world.agents.insert(agent, Busy::Connected(task));
                        } else {
                            s.preempted(now, task).unwrap();
                            world.agents.insert(agent, Busy::Free);
                        }
                    }
                }
                Op::Advance(seconds) => now += Span::seconds(seconds),
            }
            schedule(&mut s, &mut world, now);
        }
    }
}
