//! Throttling of failed digest authentications (issue 9 row 4), per source address and
//! per user, and the security log line fail2ban-style tools read.
//!
//! Pure: the caller passes `now`; nothing here reads a clock. The registrar path asks
//! [`AuthGuard::check`] before verifying credentials, and reports each verdict with
//! [`AuthGuard::record_failure`] or [`AuthGuard::record_success`].
//!
//! Policy: the first `failures_before_backoff` failures of a source (or for a user) are
//! free; each further one shuts that source (or user) out for a backoff that starts at
//! `backoff_initial` and doubles up to `backoff_max`, the temporary `403`. While shut
//! out, requests are refused unverified, so guessing goes no faster than the backoff
//! allows, whatever the attacker's rate; refused requests do not lengthen the backoff.
//! A success clears its user's count and its source's; a key with no failure for
//! `forget_after` starts afresh. Both tables are bounded: past [`MAX_TRACKED`] keys, the
//! ones with the oldest failure go first.
//!
//! A per-user block can shut an agent out while someone guesses at its password; it is
//! temporary, and the per-source count, which stops the guesser first, makes it rare.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Keys (sources, users) each table remembers at most.
pub const MAX_TRACKED: usize = 10_000;

/// Counter labelled `reason` (a [`crate::sip::digest::DigestError::reason`]): failed
/// authentications.
pub const AUTH_FAILURES_TOTAL: &str = "hotline_auth_failures_total";
/// Counter labelled `scope` (`source` or `user`): requests refused unverified because
/// their source or user is backing off.
pub const AUTH_THROTTLED_TOTAL: &str = "hotline_auth_throttled_total";

/// The guard's settings (`[security]`: `SecurityConfig::guard_settings`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuardSettings {
    pub failures_before_backoff: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub forget_after: Duration,
}

/// Which key is shut out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThrottleScope {
    Source,
    User,
}

impl ThrottleScope {
    pub fn label(self) -> &'static str {
        match self {
            ThrottleScope::Source => "source",
            ThrottleScope::User => "user",
        }
    }
}

/// The guard's verdict on a request about to be verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Refuse unverified (`403 Forbidden` with `Retry-After`).
    Throttled {
        retry_after: Duration,
        scope: ThrottleScope,
    },
}

#[derive(Clone, Copy, Debug)]
struct FailureRecord {
    failures: u32,
    last_failure: Instant,
    blocked_until: Option<Instant>,
}

#[derive(Debug)]
struct FailureTable<K> {
    records: HashMap<K, FailureRecord>,
}

impl<K: Hash + Eq + Clone> FailureTable<K> {
    fn new() -> Self {
        FailureTable {
            records: HashMap::new(),
        }
    }

    fn live(&self, key: &K, now: Instant, settings: &GuardSettings) -> Option<&FailureRecord> {
        self.records.get(key).filter(|record| {
            now.saturating_duration_since(record.last_failure) < settings.forget_after
        })
    }

    fn retry_after(&self, key: &K, now: Instant, settings: &GuardSettings) -> Option<Duration> {
        let until = self.live(key, now, settings)?.blocked_until?;
        (until > now).then(|| until - now)
    }

    fn fail(&mut self, key: &K, now: Instant, settings: &GuardSettings) {
        let previous = self.live(key, now, settings).map_or(0, |r| r.failures);
        let failures = previous.saturating_add(1);
        let blocked_until = failures
            .checked_sub(settings.failures_before_backoff)
            .filter(|over| *over > 0)
            .map(|over| now + backoff(settings, over));
        if !self.records.contains_key(key) && self.records.len() >= MAX_TRACKED {
            self.records.retain(|_, r| {
                now.saturating_duration_since(r.last_failure) < settings.forget_after
            });
            if self.records.len() >= MAX_TRACKED
                && let Some(oldest) = self
                    .records
                    .iter()
                    .min_by_key(|(_, r)| r.last_failure)
                    .map(|(k, _)| k.clone())
            {
                self.records.remove(&oldest);
            }
        }
        self.records.insert(
            key.clone(),
            FailureRecord {
                failures,
                last_failure: now,
                blocked_until,
            },
        );
    }

    fn clear(&mut self, key: &K) {
        self.records.remove(key);
    }
}

/// `backoff_initial · 2^(over − 1)`, at most `backoff_max`.
fn backoff(settings: &GuardSettings, over: u32) -> Duration {
    let factor = 1u32.checked_shl(over.saturating_sub(1)).unwrap_or(u32::MAX);
    settings
        .backoff_initial
        .checked_mul(factor)
        .unwrap_or(settings.backoff_max)
        .min(settings.backoff_max)
}

/// Failure counts per source address and per user.
#[derive(Debug)]
pub struct AuthGuard {
    settings: GuardSettings,
    sources: FailureTable<IpAddr>,
    users: FailureTable<String>,
}

impl AuthGuard {
    pub fn new(settings: GuardSettings) -> AuthGuard {
        AuthGuard {
            settings,
            sources: FailureTable::new(),
            users: FailureTable::new(),
        }
    }

    /// May a request from `source` for `user` (the digest `username`, when it carries
    /// credentials) be verified now?
    pub fn check(&self, now: Instant, source: IpAddr, user: Option<&str>) -> Verdict {
        let by_source = self
            .sources
            .retry_after(&source, now, &self.settings)
            .map(|d| (d, ThrottleScope::Source));
        let by_user = user
            .and_then(|u| self.users.retry_after(&u.to_owned(), now, &self.settings))
            .map(|d| (d, ThrottleScope::User));
        // The longer wait wins; on a tie the source, which is what a firewall can act on.
        match by_user.into_iter().chain(by_source).max_by_key(|(d, _)| *d) {
            Some((retry_after, scope)) => Verdict::Throttled { retry_after, scope },
            None => Verdict::Allow,
        }
    }

    /// A request from `source` failed authentication (for `user`, when it named one).
    pub fn record_failure(&mut self, now: Instant, source: IpAddr, user: Option<&str>) {
        self.sources.fail(&source, now, &self.settings);
        if let Some(user) = user {
            self.users.fail(&user.to_owned(), now, &self.settings);
        }
    }

    /// `user` authenticated from `source`: both start afresh.
    pub fn record_success(&mut self, source: IpAddr, user: &str) {
        self.sources.clear(&source);
        self.users.clear(&user.to_owned());
    }
}

/// The security log line of a failed authentication, in the documented stable format
/// (README, "Security"): `security: auth_failed source=<ip> user=<name> reason=<token>`.
/// The user name comes from the attacker: anything but `[A-Za-z0-9._@+-]` becomes `_`
/// and it is cut to 64 characters, so the line always parses as three fields.
pub fn auth_failed_line(source: IpAddr, user: Option<&str>, reason: &str) -> String {
    let user: String = match user {
        None | Some("") => "-".to_owned(),
        Some(name) => name
            .chars()
            .take(64)
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '+' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect(),
    };
    format!("security: auth_failed source={source} user={user} reason={reason}")
}

/// The security log line of a request refused while its source or user backs off.
pub fn auth_throttled_line(
    source: IpAddr,
    user: Option<&str>,
    scope: ThrottleScope,
    retry_after: Duration,
) -> String {
    let failed = auth_failed_line(source, user, "throttled");
    format!(
        "{} scope={} retry_after={}",
        failed.replacen("auth_failed", "auth_throttled", 1),
        scope.label(),
        retry_after.as_secs().max(1)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> GuardSettings {
        GuardSettings {
            failures_before_backoff: 5,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            forget_after: Duration::from_secs(900),
        }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn the_first_failures_are_free_then_backoff_doubles_to_the_cap() {
        let t0 = Instant::now();
        let mut guard = AuthGuard::new(settings());
        for _ in 0..5 {
            assert_eq!(guard.check(t0, ip(1), Some("1001")), Verdict::Allow);
            guard.record_failure(t0, ip(1), Some("1001"));
        }
        assert_eq!(guard.check(t0, ip(1), Some("1001")), Verdict::Allow);
        let mut now = t0;
        let mut expected = Duration::from_secs(1);
        for _ in 0..12 {
            guard.record_failure(now, ip(1), Some("1001"));
            let Verdict::Throttled { retry_after, .. } = guard.check(now, ip(1), Some("1001"))
            else {
                panic!("not throttled after a failure past the free ones");
            };
            assert_eq!(retry_after, expected);
            now += retry_after;
            assert_eq!(guard.check(now, ip(1), Some("1001")), Verdict::Allow);
            expected = (expected * 2).min(Duration::from_secs(300));
        }
        assert_eq!(expected, Duration::from_secs(300));
    }

    #[test]
    fn two_hundred_wrong_passwords_then_the_right_one_is_throttled_issue_9() {
        let t0 = Instant::now();
        let mut guard = AuthGuard::new(settings());
        let mut refused = 0;
        for i in 0..200u32 {
            let now = t0 + Duration::from_micros(150 * u64::from(i));
            match guard.check(now, ip(9), Some("1001")) {
                Verdict::Allow => guard.record_failure(now, ip(9), Some("1001")),
                Verdict::Throttled { .. } => refused += 1,
            }
        }
        assert_eq!(
            refused, 194,
            "5 free failures and 1 that starts the backoff"
        );
        let after = t0 + Duration::from_millis(30);
        assert!(matches!(
            guard.check(after, ip(9), Some("1001")),
            Verdict::Throttled { .. }
        ));
    }

    #[test]
    fn a_user_is_protected_across_sources_and_a_source_across_users() {
        let now = Instant::now();
        let mut guard = AuthGuard::new(settings());
        for i in 0..6 {
            guard.record_failure(now, ip(i), Some("1001"));
        }
        assert!(matches!(
            guard.check(now, ip(100), Some("1001")),
            Verdict::Throttled {
                scope: ThrottleScope::User,
                ..
            }
        ));
        assert_eq!(guard.check(now, ip(100), Some("1002")), Verdict::Allow);

        for i in 0..6 {
            guard.record_failure(now, ip(50), Some(&format!("user{i}")));
        }
        assert!(matches!(
            guard.check(now, ip(50), Some("1003")),
            Verdict::Throttled {
                scope: ThrottleScope::Source,
                ..
            }
        ));
    }

    #[test]
    fn success_and_quiet_time_start_afresh() {
        let t0 = Instant::now();
        let mut guard = AuthGuard::new(settings());
        for _ in 0..4 {
            guard.record_failure(t0, ip(1), Some("1001"));
        }
        guard.record_success(ip(1), "1001");
        for _ in 0..5 {
            guard.record_failure(t0, ip(1), Some("1001"));
        }
        assert_eq!(guard.check(t0, ip(1), Some("1001")), Verdict::Allow);
        let later = t0 + Duration::from_secs(901);
        guard.record_failure(later, ip(1), Some("1001"));
        assert_eq!(guard.check(later, ip(1), Some("1001")), Verdict::Allow);
    }

    #[test]
    fn the_tables_stay_bounded_under_a_spray_of_sources() {
        let now = Instant::now();
        let mut guard = AuthGuard::new(settings());
        for i in 0..(MAX_TRACKED as u32 + 500) {
            let source = IpAddr::from(i.to_be_bytes());
            guard.record_failure(now, source, None);
        }
        assert!(guard.sources.records.len() <= MAX_TRACKED);
    }

    #[test]
    fn the_log_line_is_stable_and_cannot_be_forged_through_the_user_name() {
        assert_eq!(
            auth_failed_line(ip(4), Some("1001"), "wrong_password"),
            "security: auth_failed source=192.0.2.4 user=1001 reason=wrong_password"
        );
        assert_eq!(
            auth_failed_line(
                ip(4),
                Some("x reason=ok\nsecurity: source=10.0.0.1"),
                "unknown_user"
            ),
            "security: auth_failed source=192.0.2.4 user=x_reason_ok_security__source_10.0.0.1 reason=unknown_user"
        );
        assert_eq!(
            auth_failed_line(ip(4), None, "missing"),
            "security: auth_failed source=192.0.2.4 user=- reason=missing"
        );
        assert_eq!(
            auth_throttled_line(
                ip(4),
                Some("1001"),
                ThrottleScope::Source,
                Duration::from_millis(1500)
            ),
            "security: auth_throttled source=192.0.2.4 user=1001 reason=throttled scope=source retry_after=1"
        );
    }
}
