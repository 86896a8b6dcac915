//! QA sampling (R23): which of an agent's calls are picked for review. Pure: the time
//! comes with each call and the randomness from a seed, so a run replays.
//!
//! Stratified, not a coin toss per call: with a share of `p`, each agent's calls of a
//! day are cut into consecutive blocks of about `1/p` calls, and one call at a random
//! place in each block is picked. So every agent gets their share every day (within
//! one call), even on a quiet day where independent coin tosses could pick none or
//! many, and still no one can tell in advance which call it will be.

use std::collections::HashMap;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Shares are given in basis points: 10 000 is every call.
pub const ALL_BASIS_POINTS: u32 = 10_000;

/// Decides, call by call, which calls QA reviews.
#[derive(Debug)]
pub struct QaSampler {
    basis_points: u32,
    day_offset: FixedOffset,
    rng: StdRng,
    /// The hotline day the counters below belong to; a later day starts them afresh.
    day: Option<NaiveDate>,
    agents: HashMap<String, AgentDay>,
}

/// One agent's calls so far today.
#[derive(Debug, Default)]
struct AgentDay {
    /// Calls seen today: the next call's index.
    calls: u64,
    /// The index picked in the current block.
    pick: u64,
}

impl QaSampler {
    /// `basis_points` is the share (500 = 5 %, capped at 10 000); the day runs from
    /// local midnight, UTC plus `day_utc_offset_hours`.
    pub fn new(basis_points: u32, day_utc_offset_hours: i32, seed: u64) -> Self {
        let day_offset = FixedOffset::east_opt(day_utc_offset_hours.clamp(-23, 23) * 3600)
            .unwrap_or_else(|| FixedOffset::east_opt(0).expect("UTC"));
        QaSampler {
            basis_points: basis_points.min(ALL_BASIS_POINTS),
            day_offset,
            rng: StdRng::seed_from_u64(seed),
            day: None,
            agents: HashMap::new(),
        }
    }

    /// An agent took a call at `at`: is it picked for review?
    pub fn handle_call(&mut self, at: DateTime<Utc>, agent: &str) -> bool {
        let day = at.with_timezone(&self.day_offset).date_naive();
        if self.day.is_none_or(|current| day > current) {
            self.day = Some(day);
            self.agents.clear();
        }
        // A call stamped before today (a clock step back) counts in today's blocks.
        if self.basis_points == 0 {
            return false;
        }
        let share = u64::from(self.basis_points);
        let entry = self.agents.entry(agent.to_owned()).or_default();
        let index = entry.calls;
        entry.calls += 1;
        let block = index * share / u64::from(ALL_BASIS_POINTS);
        let start = block_start(block, share);
        if index == start {
            let len = block_start(block + 1, share) - start;
            entry.pick = start + self.rng.random_range(0..len);
        }
        index == entry.pick
    }
}

/// The first call index of block `block`: the smallest `n` with `n * share / 10 000`
/// at least `block`.
fn block_start(block: u64, share: u64) -> u64 {
    (block * u64::from(ALL_BASIS_POINTS)).div_ceil(share)
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn day_start(day: i64) -> DateTime<Utc> {
        // 00:00 in China (UTC+8) on 1 November 2026, plus `day` days.
        Utc.with_ymd_and_hms(2026, 10, 31, 16, 0, 0)
            .single()
            .unwrap()
            + Duration::days(day)
    }

    #[test]
    fn blocks_tile_the_calls_without_gaps() {
        for share in [1, 7, 250, 500, 3_333, 5_000, 9_999, 10_000] {
            let mut previous = 0;
            for block in 1..200 {
                let start = block_start(block, share);
                assert!(start > previous, "share {share}: empty block {block}");
                assert_eq!((start - 1) * share / 10_000, block - 1);
                assert_eq!(start * share / 10_000, block);
                previous = start;
            }
        }
    }

    #[test]
    fn each_agent_gets_the_share_every_day_within_one_call_r23() {
        let mut sampler = QaSampler::new(500, 8, 42);
        let mut rng = StdRng::seed_from_u64(7);
        for day in 0..200 {
            for agent in ["1001", "1002", "1003"] {
                let calls: u64 = rng.random_range(0..120);
                let picked = (0..calls)
                    .filter(|i| {
                        let at = day_start(day) + Duration::minutes(8 * 60 + *i as i64 * 4);
                        sampler.handle_call(at, agent)
                    })
                    .count() as f64;
                let expected = calls as f64 * 0.05;
                assert!(
                    (picked - expected).abs() <= 1.0,
                    "day {day}, agent {agent}: {picked} of {calls} picked, expected about {expected}"
                );
            }
        }
    }

    #[test]
    fn proportion_over_many_days_lies_within_statistical_bounds_r23() {
        // 5 % of 365 days × 4 agents × 30–80 calls: the overall share must be within
        // 4 standard deviations of a binomial draw of the same size (it is tighter in
        // fact, since blocks are stratified), and every call position must be picked
        // about as often as the others (the place in the block is random).
        let mut sampler = QaSampler::new(500, 8, 2026);
        let mut rng = StdRng::seed_from_u64(99);
        let (mut total, mut picked) = (0u64, 0u64);
        let mut by_place_in_block = [0u64; 20];
        for day in 0..365 {
            for agent in ["1001", "1002", "1003", "1004"] {
                let calls: u64 = rng.random_range(30..=80);
                for i in 0..calls {
                    let at = day_start(day)
                        + Duration::minutes(9 * 60)
                        + Duration::seconds(i as i64 * 300);
                    total += 1;
                    if sampler.handle_call(at, agent) {
                        picked += 1;
                        // The day's last block is cut short when the calls stop, so
                        // only whole blocks show where in a block the pick falls.
                        if i < calls / 20 * 20 {
                            by_place_in_block[(i % 20) as usize] += 1;
                        }
                    }
                }
            }
        }
        let p = 0.05;
        let n = total as f64;
        let sigma = (n * p * (1.0 - p)).sqrt();
        assert!(
            (picked as f64 - n * p).abs() < 4.0 * sigma,
            "{picked} of {total} picked"
        );
        let mean = by_place_in_block.iter().sum::<u64>() as f64 / 20.0;
        let chi_square: f64 = by_place_in_block
            .iter()
            .map(|&o| (o as f64 - mean).powi(2) / mean)
            .sum();
        // 19 degrees of freedom: P(χ² > 43.8) ≈ 0.001.
        assert!(
            chi_square < 43.8,
            "places in block not uniform: {by_place_in_block:?}"
        );
    }

    #[test]
    fn a_new_day_starts_new_blocks() {
        // One call a day at 10 %: every day's first call opens a block of 10 calls of
        // which only the first is ever made, so the pick lands on it one day in ten.
        let mut sampler = QaSampler::new(1_000, 8, 5);
        let picks = (0..2_000)
            .filter(|day| sampler.handle_call(day_start(*day) + Duration::hours(10), "1001"))
            .count();
        assert!(
            (120..=280).contains(&picks),
            "{picks} of 2000 single-call days"
        );
    }

    #[test]
    fn the_day_is_the_hotlines_local_day() {
        // 23:30 and 00:30 China time are two days: with 100 % sampling a block is one
        // call, so both are picked, and the counter restarts at local midnight.
        let mut sampler = QaSampler::new(10_000, 8, 1);
        let late = day_start(1) - Duration::minutes(30);
        assert!(sampler.handle_call(late, "1001"));
        assert!(sampler.handle_call(late + Duration::hours(1), "1001"));
        assert_eq!(
            sampler.day,
            Some(NaiveDate::from_ymd_opt(2026, 11, 2).unwrap())
        );
        assert_eq!(sampler.agents["1001"].calls, 1);
    }

    #[test]
    fn zero_share_picks_nothing_and_full_share_everything() {
        let mut none = QaSampler::new(0, 8, 3);
        let mut all = QaSampler::new(10_000, 8, 3);
        for i in 0..500 {
            let at = day_start(0) + Duration::minutes(i);
            assert!(!none.handle_call(at, "1001"));
            assert!(all.handle_call(at, "1001"));
        }
    }

    #[test]
    fn same_seed_same_picks() {
        let run = |seed| {
            let mut sampler = QaSampler::new(500, 8, seed);
            (0..400)
                .map(|i| sampler.handle_call(day_start(0) + Duration::minutes(i), "1002"))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(11), run(11));
        assert_ne!(run(11), run(12));
    }
}
