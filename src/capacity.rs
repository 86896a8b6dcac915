//! Giving back the room a burst left in long-lived tables (issue 9, row 6). A flood of
//! INVITEs grows the switch's and the transaction layer's maps and queues to thousands
//! of slots; Rust's collections never shrink on their own, so that capacity stays
//! resident after the flood is over. The cores call [`ShrinkIdle::shrink_idle`] on
//! their tables about once a second: a table using under a quarter of its room is cut
//! to twice what it holds. Pure.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};

/// Below this many slots a table is left alone: reallocating it costs more than it
/// holds.
const KEEP: usize = 64;

/// The capacity to shrink to, if any.
fn shrunk(len: usize, capacity: usize) -> Option<usize> {
    (capacity > KEEP && len.saturating_mul(4) < capacity).then(|| len.saturating_mul(2).max(KEEP))
}

pub trait ShrinkIdle {
    /// Frees most of the room a burst left, keeping twice what is in use.
    fn shrink_idle(&mut self);
}

impl<K: Eq + Hash, V, S: BuildHasher> ShrinkIdle for HashMap<K, V, S> {
    fn shrink_idle(&mut self) {
        if let Some(target) = shrunk(self.len(), self.capacity()) {
            self.shrink_to(target);
        }
    }
}

impl<T> ShrinkIdle for Vec<T> {
    fn shrink_idle(&mut self) {
        if let Some(target) = shrunk(self.len(), self.capacity()) {
            self.shrink_to(target);
        }
    }
}

impl<T> ShrinkIdle for VecDeque<T> {
    fn shrink_idle(&mut self) {
        if let Some(target) = shrunk(self.len(), self.capacity()) {
            self.shrink_to(target);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_left_mostly_empty_by_a_burst_gives_its_room_back() {
        let mut map: HashMap<u32, [u8; 64]> = HashMap::new();
        for key in 0..10_000 {
            map.insert(key, [0; 64]);
        }
        map.retain(|key, _| *key < 100);
        let before = map.capacity();
        map.shrink_idle();
        assert!(
            map.capacity() < before / 10,
            "{} → {}",
            before,
            map.capacity()
        );
        assert!(map.capacity() >= 100);
        assert_eq!(map.len(), 100);

        let mut queue: VecDeque<u64> = (0..5_000).collect();
        queue.clear();
        queue.shrink_idle();
        assert!(queue.capacity() <= 2 * KEEP);

        // A busy table, or a small one, is left as it is.
        let mut busy: HashMap<u32, u32> = (0..1000).map(|k| (k, k)).collect();
        let capacity = busy.capacity();
        busy.shrink_idle();
        assert_eq!(busy.capacity(), capacity);
        assert_eq!(shrunk(3, 60), None);
    }
}
