//! Identifiers the switch makes up (pure): SIP tags, branches, Call-IDs, digest nonce
//! secrets and RTP SSRCs, drawn from one seeded generator so that a simulation seed
//! replays the same run message for message.
//!
//! SplitMix64 (Steele, Lea and Flood, 2014) rather than `rand`'s `StdRng`: its output
//! for a seed is fixed by this file, not by a crate version, so a seed printed by a
//! failing simulation still replays after a dependency upgrade. None of these values
//! is a secret an attacker must not guess except the digest secret, which the runtime
//! seeds from the operating system's generator.

/// The switch's source of identifiers.
#[derive(Clone, Debug)]
pub struct Ids {
    state: u64,
}

impl Ids {
    pub fn new(seed: u64) -> Ids {
        Ids { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A From/To tag: 64 random bits in hex.
    pub fn tag(&mut self) -> String {
        format!("{:016x}", self.next_u64())
    }

    /// An RFC 3261 branch: the magic cookie, then 96 random bits.
    pub fn branch(&mut self) -> String {
        let high = self.next_u64();
        let low = self.next_u64() as u32;
        format!("z9hG4bK{high:016x}{low:08x}")
    }

    /// A Call-ID, globally unique through 128 random bits.
    pub fn call_id(&mut self, host: &str) -> String {
        let high = self.next_u64();
        let low = self.next_u64();
        format!("{high:016x}{low:016x}@{host}")
    }

    /// 32 random bits (RTP SSRC, SDP session id).
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_and_two_seeds_differ() {
        let mut a = Ids::new(7);
        let mut b = Ids::new(7);
        let mut c = Ids::new(8);
        let first: Vec<String> = (0..4).map(|_| a.branch()).collect();
        let again: Vec<String> = (0..4).map(|_| b.branch()).collect();
        assert_eq!(first, again);
        assert_ne!(first[0], c.branch());
        assert!(
            first
                .iter()
                .all(|b| b.starts_with("z9hG4bK") && b.len() == 7 + 24)
        );
        let distinct: std::collections::HashSet<_> = first.iter().collect();
        assert_eq!(distinct.len(), 4);
    }
}
