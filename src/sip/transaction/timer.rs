//! The one table of transaction timers (RFC 3261 §17, RFC 6026 §8) and the shared
//! deadline queue behind them. Pure: deadlines are plain `Instant`s handed in by the caller.

use std::collections::BTreeMap;
use std::time::Instant;

/// Internal handle of a transaction; keys are strings, so timers refer to this instead
/// of cloning a key for every arm.
pub(super) type TxId = u64;

/// Every timer a transaction can run. One table for all of them, so the whole timing
/// behaviour of the layer can be read in one place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKind {
    /// INVITE client: retransmit the INVITE over UDP, doubling from T1 without a cap.
    A,
    /// INVITE client: give up waiting for any response (64·T1).
    B,
    /// INVITE client: absorb retransmitted non-2xx finals after sending the ACK.
    D,
    /// Non-INVITE client: retransmit the request over UDP, doubling from T1 up to T2.
    E,
    /// Non-INVITE client: give up waiting for a final response (64·T1).
    F,
    /// INVITE server: retransmit a 300–699 final over UDP, doubling from T1 up to T2.
    G,
    /// INVITE server: give up waiting for the ACK of a 300–699 final (64·T1).
    H,
    /// INVITE server: absorb ACK retransmissions once confirmed (T4 over UDP).
    I,
    /// Non-INVITE server: absorb request retransmissions after the final (64·T1 over UDP).
    J,
    /// Non-INVITE client: absorb response retransmissions after the final (T4 over UDP).
    K,
    /// INVITE server in Accepted (RFC 6026): how long a 2xx waits for its ACK (64·T1).
    L,
    /// INVITE client in Accepted (RFC 6026): absorb 2xx retransmissions (64·T1).
    M,
    /// INVITE server: retransmit the 2xx over UDP until the ACK (RFC 3261 §13.3.1.4),
    /// doubling from T1 up to T2.
    Retransmit2xx,
}

impl TimerKind {
    const COUNT: usize = 13;

    fn slot(self) -> usize {
        match self {
            TimerKind::A => 0,
            TimerKind::B => 1,
            TimerKind::D => 2,
            TimerKind::E => 3,
            TimerKind::F => 4,
            TimerKind::G => 5,
            TimerKind::H => 6,
            TimerKind::I => 7,
            TimerKind::J => 8,
            TimerKind::K => 9,
            TimerKind::L => 10,
            TimerKind::M => 11,
            TimerKind::Retransmit2xx => 12,
        }
    }
}

/// Position of one armed timer in the shared queue: the deadline plus an arming
/// sequence number that keeps equal deadlines distinct and ordered by arming time.
type QueueSlot = (Instant, u64);

/// The timers one transaction has armed, indexed by kind, so each can be stopped
/// without searching the shared queue.
#[derive(Debug, Default)]
pub(super) struct TimerTable {
    armed: [Option<QueueSlot>; TimerKind::COUNT],
}

impl TimerTable {
    /// Forgets a timer the queue has already popped.
    pub(super) fn fired(&mut self, kind: TimerKind) {
        self.armed[kind.slot()] = None;
    }
}

/// All armed timers of all transactions, ordered by deadline. Arming, stopping and
/// finding the next deadline are O(log n) in the number of armed timers.
#[derive(Debug, Default)]
pub(super) struct TimerQueue {
    queue: BTreeMap<QueueSlot, (TxId, TimerKind)>,
    next_sequence: u64,
}

impl TimerQueue {
    /// Arms `kind` for `tx` at `deadline`, replacing the previous deadline of that kind.
    pub(super) fn arm(
        &mut self,
        table: &mut TimerTable,
        tx: TxId,
        kind: TimerKind,
        deadline: Instant,
    ) {
        self.stop(table, kind);
        let slot = (deadline, self.next_sequence);
        self.next_sequence += 1;
        self.queue.insert(slot, (tx, kind));
        table.armed[kind.slot()] = Some(slot);
    }

    pub(super) fn stop(&mut self, table: &mut TimerTable, kind: TimerKind) {
        if let Some(slot) = table.armed[kind.slot()].take() {
            self.queue.remove(&slot);
        }
    }

    pub(super) fn stop_all(&mut self, table: &mut TimerTable) {
        for slot in table.armed.iter_mut().filter_map(Option::take) {
            self.queue.remove(&slot);
        }
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.queue
            .first_key_value()
            .map(|((deadline, _), _)| *deadline)
    }

    /// Removes and returns the earliest timer due at `now`; the caller clears the
    /// fired kind from its transaction's table with [`TimerTable::fired`].
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<(TxId, TimerKind)> {
        let (&(deadline, _), _) = self.queue.first_key_value()?;
        if deadline > now {
            return None;
        }
        self.queue.pop_first().map(|(_, fired)| fired)
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }
}
