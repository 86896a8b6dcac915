//! The deterministic simulation harness (issue 7): simulated trunk callers and agent
//! phones that speak real SIP text, a seeded lossy network and a simulated clock, so
//! whole calls run in one process in milliseconds and a seed replays exactly.
//!
//! Pure: no sockets, no OS clock, no OS randomness. Time is an [`Instant`] that only
//! [`Stage`] moves forward; every random choice comes from a [`SimRng`] forked from one
//! seed. The models are quinn's `Pair` test harness (two sans-IO endpoints joined by a
//! simulated link) and TigerBeetle's VOPR (a seeded whole-system simulator with
//! invariants checked as it runs).
//!
//! | module | owns |
//! |---|---|
//! | [`network`] | datagrams in flight between `127.0.0.x` addresses: loss, duplication, extra delay (reordering), reliable (TCP-like) links, and a bounded trace |
//! | [`ua`] | the SIP user agent both peers are made of: transactions (the crate's own [`Transactions`](crate::sip::transaction::Transactions)), dialogs, offer/answer, digest, RFC 4028 session timers |
//! | [`caller`] | a scripted trunk caller (UAC) and what it saw |
//! | [`phone`] | a scripted agent softphone: registration with digest, answering, refusing, feature codes |
//! | [`world`] | the whole engine: the real switch, its simulated media runtime and store, the peers, and the invariants checked after every step |
//!
//! Every peer implements [`Node`]; [`Stage`] steps a set of nodes and the network one
//! event at a time, in time order with a fixed tie-break, so the same seed gives the
//! same run. The switch adapter of the whole-engine world implements [`Node`] too.
//! The switch never imports this module.

pub mod caller;
pub mod network;
pub mod phone;
pub mod ua;
pub mod world;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use caller::{CallerScript, SimCaller};
pub use network::{Datagram, LinkConfig, Network, Trace};
pub use phone::{AnswerPolicy, PhoneScript, SimPhone};
pub use ua::{CallRecord, CallState, Direction, EndReason, Side};

use crate::sip::TransportKind;

/// Bytes a node wants on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub destination: SocketAddr,
    pub transport: TransportKind,
    pub payload: Bytes,
}

/// One participant of the simulation: a sans-IO endpoint with an address. The shape is
/// the switch's own (`handle_*` in, `poll_*` out, `now` passed in).
pub trait Node {
    /// Where the node listens; datagrams to this address are handed to it.
    fn addr(&self) -> SocketAddr;
    fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        transport: TransportKind,
        bytes: &[u8],
    );
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// The next instant [`Node::handle_timeout`] must be called; a past instant means now.
    fn poll_timeout(&self) -> Option<Instant>;
    fn handle_timeout(&mut self, now: Instant);
}

/// The simulation's one source of randomness: SplitMix64. Written out rather than taken
/// from `rand` because `rand`'s `StdRng` may change its algorithm between releases, and a
/// failing seed must replay after a dependency upgrade too.
#[derive(Clone, Debug)]
pub struct SimRng {
    state: u64,
}

impl SimRng {
    pub fn new(seed: u64) -> Self {
        SimRng { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// An independent stream for a sub-component, so adding a node or a draw in one
    /// place does not shift every other component's choices.
    pub fn fork(&mut self, label: u64) -> SimRng {
        SimRng::new(self.next_u64() ^ label.wrapping_mul(0xD6E8_FEB8_6659_FD93))
    }

    /// A uniform value in `0..bound` (0 when `bound` is 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        // Bias is below 2^-40 for the small bounds used here; exactness is not needed.
        self.next_u64() % bound
    }

    /// True with probability `p` (clamped to 0..=1).
    pub fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        // 53 random bits as a float in [0, 1).
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit < p
    }

    /// A uniform duration in `low..=high` at microsecond resolution.
    pub fn duration_between(&mut self, low: Duration, high: Duration) -> Duration {
        if high <= low {
            return low;
        }
        let span = (high - low).as_micros() as u64;
        low + Duration::from_micros(self.below(span + 1))
    }

    /// `count` random bytes as lowercase hex (tags, branches, Call-IDs).
    pub fn hex(&mut self, count: usize) -> String {
        let mut out = String::with_capacity(count * 2);
        while out.len() < count * 2 {
            out.push_str(&format!("{:016x}", self.next_u64()));
        }
        out.truncate(count * 2);
        out
    }
}

/// Why a simulation stopped making progress.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SimError {
    /// Too many events at one instant: a node keeps asking for a timeout it never clears.
    #[error("livelock: {steps} events at t={at:?} without time moving")]
    Livelock { at: Duration, steps: u64 },
}

/// Events handled at one instant before the stage calls it a livelock.
const LIVELOCK_STEPS: u64 = 100_000;

/// The simulated clock and network that a set of [`Node`]s run on. The nodes stay with
/// their owner (typed, for assertions); each call lends them as a slice, the way
/// quinn's `Pair` owns a client and a server.
#[derive(Debug)]
pub struct Stage {
    pub network: Network,
    epoch: Instant,
    now: Instant,
    steps: u64,
    steps_at_now: u64,
}

impl Stage {
    /// A stage whose clock starts at `epoch` (any `Instant`; only differences matter).
    pub fn new(epoch: Instant, network: Network) -> Self {
        Stage {
            network,
            epoch,
            now: epoch,
            steps: 0,
            steps_at_now: 0,
        }
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Simulated time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.epoch
    }

    /// Events handled so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Moves everything the nodes want to send into the network.
    pub fn flush(&mut self, nodes: &mut [&mut dyn Node]) {
        for node in nodes.iter_mut() {
            let from = node.addr();
            while let Some(transmit) = node.poll_transmit() {
                self.network.send(
                    self.now,
                    Datagram {
                        from,
                        to: transmit.destination,
                        transport: transmit.transport,
                        payload: transmit.payload,
                    },
                );
            }
        }
    }

    /// When the next event is due: a delivery or a node's timeout, whichever is first.
    pub fn next_event(&self, nodes: &[&mut dyn Node]) -> Option<Instant> {
        let timeouts = nodes.iter().filter_map(|node| node.poll_timeout());
        timeouts.chain(self.network.next_delivery()).min()
    }

    /// Like [`Stage::step`], but only for an event due by `deadline`: `Ok(false)` when
    /// none is.
    pub fn step_until(
        &mut self,
        nodes: &mut [&mut dyn Node],
        deadline: Instant,
    ) -> Result<bool, SimError> {
        self.flush(nodes);
        match self.next_event(nodes) {
            Some(at) if at <= deadline => self.step(nodes),
            _ => Ok(false),
        }
    }

    /// Handles exactly one event — the earliest delivery or node timeout, deliveries
    /// first on a tie, then nodes in slice order — and flushes what it caused. Returns
    /// `Ok(false)` when nothing is pending at all.
    pub fn step(&mut self, nodes: &mut [&mut dyn Node]) -> Result<bool, SimError> {
        self.flush(nodes);
        let delivery = self.network.next_delivery();
        let timeout = nodes
            .iter()
            .enumerate()
            .filter_map(|(index, node)| node.poll_timeout().map(|at| (at, index)))
            .min();
        let event_at = match (delivery, timeout) {
            (None, None) => return Ok(false),
            (Some(at), None) => at,
            (None, Some((at, _))) => at,
            (Some(d), Some((t, _))) => d.min(t),
        };
        self.advance_to(event_at)?;
        if delivery.is_some_and(|at| at <= event_at) {
            if let Some(datagram) = self.network.pop_due(self.now) {
                self.deliver(nodes, datagram);
            }
        } else if let Some((_, index)) = timeout {
            nodes[index].handle_timeout(self.now);
        }
        self.steps += 1;
        self.flush(nodes);
        Ok(true)
    }

    /// Runs every event due up to `deadline`, then sets the clock to `deadline`.
    pub fn run_until(
        &mut self,
        nodes: &mut [&mut dyn Node],
        deadline: Instant,
    ) -> Result<(), SimError> {
        self.flush(nodes);
        while self.next_event(nodes).is_some_and(|at| at <= deadline) {
            self.step(nodes)?;
        }
        self.advance_to(deadline.max(self.now))
    }

    /// Runs for `span` of simulated time.
    pub fn run_for(&mut self, nodes: &mut [&mut dyn Node], span: Duration) -> Result<(), SimError> {
        let deadline = self.now + span;
        self.run_until(nodes, deadline)
    }

    fn advance_to(&mut self, at: Instant) -> Result<(), SimError> {
        if at > self.now {
            self.now = at;
            self.steps_at_now = 0;
            return Ok(());
        }
        self.steps_at_now += 1;
        if self.steps_at_now > LIVELOCK_STEPS {
            return Err(SimError::Livelock {
                at: self.elapsed(),
                steps: self.steps_at_now,
            });
        }
        Ok(())
    }

    fn deliver(&mut self, nodes: &mut [&mut dyn Node], datagram: Datagram) {
        match nodes.iter_mut().find(|node| node.addr() == datagram.to) {
            Some(node) => {
                self.network.trace_delivered(self.now, &datagram);
                node.handle_datagram(
                    self.now,
                    datagram.from,
                    datagram.transport,
                    &datagram.payload,
                );
            }
            None => self.network.trace_undeliverable(self.now, &datagram),
        }
    }
}

/// Actions a script has planned, in time order (ties in planning order).
#[derive(Clone, Debug)]
pub struct Agenda<A> {
    planned: std::collections::BTreeMap<(Instant, u64), A>,
    next: u64,
}

impl<A> Default for Agenda<A> {
    fn default() -> Self {
        Agenda {
            planned: std::collections::BTreeMap::new(),
            next: 0,
        }
    }
}

impl<A> Agenda<A> {
    pub fn plan(&mut self, at: Instant, action: A) {
        self.planned.insert((at, self.next), action);
        self.next += 1;
    }

    pub fn next_at(&self) -> Option<Instant> {
        self.planned.keys().next().map(|(at, _)| *at)
    }

    /// The earliest action due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<A> {
        let (&(at, _), _) = self.planned.first_key_value()?;
        if at > now {
            return None;
        }
        self.planned.pop_first().map(|(_, action)| action)
    }

    /// Drops every planned action `which` selects.
    pub fn drop_where(&mut self, which: impl Fn(&A) -> bool) {
        self.planned.retain(|_, action| !which(action));
    }

    pub fn len(&self) -> usize {
        self.planned.len()
    }

    /// Whether every planned action satisfies `which` (true when nothing is planned).
    pub fn planned_all(&self, which: impl Fn(&A) -> bool) -> bool {
        self.planned.values().all(which)
    }

    pub fn is_empty(&self) -> bool {
        self.planned.is_empty()
    }
}

/// `127.0.0.<host>:<port>`: every simulated address lives on the loopback network.
pub fn loopback(host: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, host], port))
}
