//! ACD micro-benchmarks (issue 4): with 1,000 agents in 50 queues and 10,000 calls
//! waiting, how long the core takes to
//! - choose an agent for a new call (the call enters a queue with free agents), and
//! - choose the next call for a freed agent (an agent's call ends; wrap-up 0).
//!
//! Layout: queues q00–q39 are busy (every agent serving them is on a call, 250 calls
//! wait in each); q40–q49 are quiet (their agents are free, nothing waits). Each agent
//! serves five queues of its group. Every measured step is undone outside the timing,
//! so the state is the same for every iteration.
//!
//! Pure CPU work: no sockets, simulated clock. Run with `cargo bench --bench acd`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use hotline::acd::{Acd, AcdAction, AcdConfig, AgentConfig, CallKey, QueueConfig, Strategy};

const AGENTS: usize = 1_000;
const QUEUES: usize = 50;
const BUSY_QUEUES: usize = 40;
const WAITING: usize = 10_000;

fn queue(i: usize) -> String {
    format!("q{i:02}")
}

fn config(strategy: Strategy) -> AcdConfig {
    let queues = (0..QUEUES)
        .map(|i| QueueConfig {
            name: queue(i),
            required_skills: BTreeMap::new(),
            strategy,
            max_wait: Duration::from_secs(3600),
            overflow: None,
            wrap_up: Duration::ZERO,
        })
        .collect();
    // 800 agents for the busy queues, 200 for the quiet ones; each serves five queues.
    let agents = (0..AGENTS)
        .map(|a| {
            let (base, span) = if a < 800 {
                (0, BUSY_QUEUES)
            } else {
                (BUSY_QUEUES, QUEUES - BUSY_QUEUES)
            };
            AgentConfig {
                id: format!("{}", 10_000 + a),
                skills: BTreeMap::new(),
                queues: (0..5).map(|k| queue(base + (a + k * 7) % span)).collect(),
                penalty: (a % 3) as u32,
            }
        })
        .collect();
    AcdConfig {
        queues,
        agents,
        agent_ring_timeout: Duration::from_secs(10),
    }
}

struct Bench {
    acd: Acd,
    now: Instant,
    next_call: CallKey,
    /// Calls connected to the busy agents.
    connected: Vec<CallKey>,
}

/// Drains actions, answering every offer at once (the phone picks up).
fn settle(acd: &mut Acd, now: Instant, connected: &mut Vec<CallKey>) {
    while let Some(action) = acd.poll_action() {
        if let AcdAction::Offer { call, agent } = action {
            acd.offer_answered(now, call, &agent)
                .expect("offer answered");
            connected.push(call);
        }
    }
}

fn setup(strategy: Strategy) -> Bench {
    let mut acd = Acd::new(config(strategy)).expect("valid config");
    let now = Instant::now();
    for a in 0..AGENTS {
        let id = format!("{}", 10_000 + a);
        acd.set_registered(now, &id, true).expect("agent");
        acd.login(now, &id).expect("agent");
    }
    settle(&mut acd, now, &mut Vec::new());
    let mut bench = Bench {
        acd,
        now,
        next_call: 1,
        connected: Vec::new(),
    };
    // First the busy agents get a call each, then 10,000 more wait in the busy queues.
    for i in 0..(800 + WAITING) {
        let call = bench.next_call;
        bench.next_call += 1;
        bench
            .acd
            .enqueue(now, call, &queue(i % BUSY_QUEUES), (i % 3) as u8)
            .expect("enqueue");
        settle(&mut bench.acd, now, &mut bench.connected);
    }
    let waiting: usize = bench.acd.queue_stats(now).iter().map(|q| q.depth).sum();
    assert_eq!(waiting, WAITING, "the busy queues hold the waiting calls");
    bench
}

fn choose_an_agent(c: &mut Criterion) {
    let mut group = c.benchmark_group("acd");
    group.measurement_time(Duration::from_secs(5));
    for (name, strategy) in [
        ("longest_idle", Strategy::LongestIdle),
        ("skills_weighted", Strategy::SkillsWeighted),
    ] {
        let mut bench = setup(strategy);
        group.bench_function(format!("choose_agent_for_new_call/{name}"), |b| {
            b.iter_custom(|iterations| {
                let mut spent = Duration::ZERO;
                for i in 0..iterations {
                    let call = bench.next_call;
                    bench.next_call += 1;
                    let target = queue(BUSY_QUEUES + (i as usize % (QUEUES - BUSY_QUEUES)));
                    let started = Instant::now();
                    bench
                        .acd
                        .enqueue(bench.now, call, &target, 0)
                        .expect("enqueue");
                    let offer = bench.acd.poll_action();
                    spent += started.elapsed();
                    assert!(matches!(offer, Some(AcdAction::Offer { .. })), "{offer:?}");
                    while bench.acd.poll_action().is_some() {}
                    // Undo: the caller leaves, the agent is free again.
                    bench.acd.abandon(bench.now, call);
                    while bench.acd.poll_action().is_some() {}
                }
                spent
            })
        });
    }
    group.finish();
}

fn choose_the_next_call(c: &mut Criterion) {
    let mut group = c.benchmark_group("acd");
    group.measurement_time(Duration::from_secs(5));
    for (name, strategy) in [
        ("longest_idle", Strategy::LongestIdle),
        ("skills_weighted", Strategy::SkillsWeighted),
    ] {
        let mut bench = setup(strategy);
        let mut cursor = 0usize;
        group.bench_function(format!("choose_next_call_for_freed_agent/{name}"), |b| {
            b.iter_custom(|iterations| {
                let mut spent = Duration::ZERO;
                for _ in 0..iterations {
                    cursor = (cursor + 1) % bench.connected.len();
                    let ending = bench.connected[cursor];
                    let started = Instant::now();
                    bench
                        .acd
                        .call_ended(bench.now, ending)
                        .expect("connected call");
                    let mut offered = None;
                    while let Some(action) = bench.acd.poll_action() {
                        if let AcdAction::Offer { call, agent } = action {
                            offered = Some((call, agent));
                            break;
                        }
                    }
                    spent += started.elapsed();
                    let (call, agent) = offered.expect("a waiting call for the freed agent");
                    while bench.acd.poll_action().is_some() {}
                    // Undo: the agent takes it, and a new caller joins the back of a
                    // busy queue so 10,000 still wait.
                    bench
                        .acd
                        .offer_answered(bench.now, call, &agent)
                        .expect("answer");
                    bench.connected[cursor] = call;
                    let newcomer = bench.next_call;
                    bench.next_call += 1;
                    bench
                        .acd
                        .enqueue(
                            bench.now,
                            newcomer,
                            &queue(newcomer as usize % BUSY_QUEUES),
                            0,
                        )
                        .expect("enqueue");
                    while bench.acd.poll_action().is_some() {}
                }
                black_box(spent)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, choose_an_agent, choose_the_next_call);
criterion_main!(benches);
