//! The simulated network (pure): datagrams in flight between simulated addresses,
//! delivered in time order. Each directed link has a latency and, unless it is
//! reliable, a probability of losing a datagram, of duplicating it and of delaying it
//! by an extra random amount — the delay is what reorders. Every draw comes from the
//! network's own seeded [`SimRng`], and equal delivery times are broken by send order,
//! so a seed gives the same deliveries every run.
//!
//! A reliable (TCP-like) link, and any datagram sent with [`TransportKind::Tcp`], is
//! delivered in order and never lost or duplicated.
//!
//! Everything that happens is written to a bounded [`Trace`], which a failing seed
//! prints.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::SimRng;
use crate::sip::TransportKind;

/// One datagram (or, over a reliable link, one framed message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub transport: TransportKind,
    pub payload: Bytes,
}

/// How one direction of a link behaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkConfig {
    /// Every datagram's base one-way delay.
    pub latency: Duration,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a datagram arrives twice (each copy with its own delay).
    pub duplicate: f64,
    /// Probability that a datagram is held back by an extra delay.
    pub delay: f64,
    /// The extra delay is uniform in `0..=max_extra_delay`.
    pub max_extra_delay: Duration,
    /// In order, no loss, no duplication, no extra delay.
    pub reliable: bool,
}

impl LinkConfig {
    /// A clean LAN link: 1 ms, nothing lost.
    pub fn perfect() -> Self {
        LinkConfig {
            latency: Duration::from_millis(1),
            loss: 0.0,
            duplicate: 0.0,
            delay: 0.0,
            max_extra_delay: Duration::ZERO,
            reliable: false,
        }
    }

    /// A bad link: `rate` of the datagrams lost, `rate` duplicated and `rate` delayed by
    /// up to 300 ms (enough to overtake a retransmission at T1 = 500 ms).
    pub fn lossy(rate: f64) -> Self {
        LinkConfig {
            latency: Duration::from_millis(5),
            loss: rate,
            duplicate: rate,
            delay: rate,
            max_extra_delay: Duration::from_millis(300),
            reliable: false,
        }
    }

    /// A TCP-like link: in order, nothing lost.
    pub fn reliable() -> Self {
        LinkConfig {
            reliable: true,
            ..LinkConfig::perfect()
        }
    }
}

/// What happened to a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceKind {
    Sent,
    Lost,
    Duplicated,
    Delivered,
    /// Nobody listens at the destination.
    Undeliverable,
}

/// One line of the trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEntry {
    /// Simulated time since the network was created.
    pub at: Duration,
    pub kind: TraceKind,
    pub from: SocketAddr,
    pub to: SocketAddr,
    /// The start line and CSeq of the message, or a note's text.
    pub summary: String,
}

/// The last `capacity` things that happened, for a failing seed's printout. Older
/// entries are dropped (and counted) so a long run cannot grow it without bound.
#[derive(Clone, Debug)]
pub struct Trace {
    entries: VecDeque<TraceEntry>,
    notes: VecDeque<(Duration, String)>,
    capacity: usize,
    forgotten: u64,
}

impl Trace {
    pub fn new(capacity: usize) -> Self {
        Trace {
            entries: VecDeque::new(),
            notes: VecDeque::new(),
            capacity: capacity.max(1),
            forgotten: 0,
        }
    }

    pub fn entries(&self) -> impl Iterator<Item = &TraceEntry> {
        self.entries.iter()
    }

    /// Entries dropped to keep the trace bounded.
    pub fn forgotten(&self) -> u64 {
        self.forgotten
    }

    fn push(&mut self, entry: TraceEntry) {
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
            self.forgotten += 1;
        }
        self.entries.push_back(entry);
    }

    /// A free-form line (a scripted action, an invariant checked), kept apart from the
    /// datagrams and bounded the same way.
    pub fn note(&mut self, at: Duration, text: impl Into<String>) {
        if self.notes.len() == self.capacity {
            self.notes.pop_front();
            self.forgotten += 1;
        }
        self.notes.push_back((at, text.into()));
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.forgotten > 0 {
            writeln!(f, "({} earlier trace lines dropped)", self.forgotten)?;
        }
        let mut notes = self.notes.iter().peekable();
        for entry in &self.entries {
            while let Some((at, text)) = notes.next_if(|(at, _)| *at <= entry.at) {
                writeln!(f, "{:>10.3}s  note  {text}", at.as_secs_f64())?;
            }
            writeln!(
                f,
                "{:>10.3}s  {:<13} {} -> {}  {}",
                entry.at.as_secs_f64(),
                format!("{:?}", entry.kind),
                entry.from,
                entry.to,
                entry.summary
            )?;
        }
        for (at, text) in notes {
            writeln!(f, "{:>10.3}s  note  {text}", at.as_secs_f64())?;
        }
        Ok(())
    }
}

/// Datagrams in flight, keyed by delivery time and send order.
#[derive(Debug)]
pub struct Network {
    rng: SimRng,
    epoch: Instant,
    default_link: LinkConfig,
    links: BTreeMap<(SocketAddr, SocketAddr), LinkConfig>,
    in_flight: BTreeMap<(Instant, u64), Datagram>,
    next_sequence: u64,
    /// Latest delivery time per reliable link, so a reliable link never reorders.
    reliable_tail: BTreeMap<(SocketAddr, SocketAddr), Instant>,
    trace: Trace,
    counters: NetworkCounters,
}

/// Totals over the whole run (the trace keeps only the tail).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetworkCounters {
    pub sent: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub delivered: u64,
    pub undeliverable: u64,
}

/// Trace lines kept by default: enough for the last few calls of a failing seed.
pub const DEFAULT_TRACE_CAPACITY: usize = 4000;

impl Network {
    pub fn new(rng: SimRng, epoch: Instant, default_link: LinkConfig) -> Self {
        Network {
            rng,
            epoch,
            default_link,
            links: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            next_sequence: 0,
            reliable_tail: BTreeMap::new(),
            trace: Trace::new(DEFAULT_TRACE_CAPACITY),
            counters: NetworkCounters::default(),
        }
    }

    /// Sets the behaviour of the link from `a` to `b` and of the one back.
    pub fn set_link(&mut self, a: SocketAddr, b: SocketAddr, config: LinkConfig) {
        self.links.insert((a, b), config);
        self.links.insert((b, a), config);
    }

    /// Sets the behaviour of one direction only.
    pub fn set_directed_link(&mut self, from: SocketAddr, to: SocketAddr, config: LinkConfig) {
        self.links.insert((from, to), config);
    }

    pub fn set_default_link(&mut self, config: LinkConfig) {
        self.default_link = config;
    }

    pub fn link(&self, from: SocketAddr, to: SocketAddr) -> LinkConfig {
        self.links
            .get(&(from, to))
            .copied()
            .unwrap_or(self.default_link)
    }

    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    pub fn trace_mut(&mut self) -> &mut Trace {
        &mut self.trace
    }

    pub fn counters(&self) -> NetworkCounters {
        self.counters
    }

    /// Datagrams sent and not yet delivered or lost.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Puts a datagram on the wire at `now`.
    pub fn send(&mut self, now: Instant, datagram: Datagram) {
        let link = self.link(datagram.from, datagram.to);
        self.counters.sent += 1;
        self.record(now, TraceKind::Sent, &datagram);
        let reliable = link.reliable || datagram.transport == TransportKind::Tcp;
        if reliable {
            let key = (datagram.from, datagram.to);
            let tail = self.reliable_tail.get(&key).copied().unwrap_or(now);
            let at = (now + link.latency).max(tail);
            self.reliable_tail.insert(key, at);
            self.enqueue(at, datagram);
            return;
        }
        let copies = if self.rng.chance(link.duplicate) {
            self.counters.duplicated += 1;
            self.record(now, TraceKind::Duplicated, &datagram);
            2
        } else {
            1
        };
        for _ in 0..copies {
            if self.rng.chance(link.loss) {
                self.counters.lost += 1;
                self.record(now, TraceKind::Lost, &datagram);
                continue;
            }
            let extra = if self.rng.chance(link.delay) {
                self.rng
                    .duration_between(Duration::ZERO, link.max_extra_delay)
            } else {
                Duration::ZERO
            };
            self.enqueue(now + link.latency + extra, datagram.clone());
        }
    }

    /// When the next datagram arrives.
    pub fn next_delivery(&self) -> Option<Instant> {
        self.in_flight.keys().next().map(|(at, _)| *at)
    }

    /// The earliest datagram due at `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<Datagram> {
        let (&(at, _), _) = self.in_flight.first_key_value()?;
        if at > now {
            return None;
        }
        self.in_flight.pop_first().map(|(_, datagram)| datagram)
    }

    pub(super) fn trace_delivered(&mut self, now: Instant, datagram: &Datagram) {
        self.counters.delivered += 1;
        self.record(now, TraceKind::Delivered, datagram);
    }

    pub(super) fn trace_undeliverable(&mut self, now: Instant, datagram: &Datagram) {
        self.counters.undeliverable += 1;
        self.record(now, TraceKind::Undeliverable, datagram);
    }

    /// A free-form line in the trace at `now`.
    pub fn note(&mut self, now: Instant, text: impl Into<String>) {
        let at = now.saturating_duration_since(self.epoch);
        self.trace.note(at, text);
    }

    fn enqueue(&mut self, at: Instant, datagram: Datagram) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.in_flight.insert((at, sequence), datagram);
    }

    fn record(&mut self, now: Instant, kind: TraceKind, datagram: &Datagram) {
        self.trace.push(TraceEntry {
            at: now.saturating_duration_since(self.epoch),
            kind,
            from: datagram.from,
            to: datagram.to,
            summary: summarize(&datagram.payload),
        });
    }
}

/// The start line and the CSeq of a SIP message: enough to follow a call in a trace
/// without printing caller numbers in full.
fn summarize(payload: &[u8]) -> String {
    let text = String::from_utf8_lossy(&payload[..payload.len().min(2048)]);
    let mut lines = text.lines();
    let start = lines.next().unwrap_or("").trim();
    // The Request-URI user may be a caller's number (R12): keep only the method and host.
    let start = match start.split_whitespace().collect::<Vec<_>>().as_slice() {
        [method, uri, _version] if !method.starts_with("SIP/") => {
            format!("{method} {}", uri.rsplit('@').next().unwrap_or(uri))
        }
        _ => start.to_string(),
    };
    let cseq = lines
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("CSeq")
                .then(|| value.trim())
        })
        .unwrap_or("");
    let call_id = text
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            let name = name.trim();
            (name.eq_ignore_ascii_case("Call-ID") || name.eq_ignore_ascii_case("i"))
                .then(|| value.trim())
        })
        .unwrap_or("");
    let short_call_id: String = call_id.chars().take(8).collect();
    format!("{start}  [{cseq}] {short_call_id}")
}
