//! `[callbacks]`: follow-up calls (回访) and their default due windows (R17–R20), the
//! owner's grace (R7), retries and the optional reserve of agents for due callbacks
//! (R9). Every key has a default, so a config without the section runs with them.
//!
//! Pure: raw and validated structs and their check.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Validator};

/// A default due window: a task created at `t` is due from `t + earliest` to
/// `t + latest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowOffsets {
    pub earliest: Duration,
    pub latest: Duration,
}

/// Keep N agents for callbacks close to their latest time, even while inbound calls
/// wait (off by default: it bends R9 on purpose, for a supervisor who decides that a
/// long inbound peak must not make every follow-up overdue).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallbackReserve {
    /// At most this many agents at a time on callbacks taken through the reserve.
    pub agents: usize,
    /// A pending callback qualifies once its latest time is this close (or past).
    pub within: Duration,
}

/// The validated `[callbacks]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallbacksConfig {
    /// R17: the check that the referred enterprise got in touch.
    pub referral_check: WindowOffsets,
    /// R18: the caller's evaluation.
    pub evaluation: WindowOffsets,
    /// R19: complaints, at once.
    pub complaint: WindowOffsets,
    /// A caller who hung up while queued.
    pub missed_call: WindowOffsets,
    /// A callback a supervisor or agent asks for without a window.
    pub manual: WindowOffsets,
    /// After the window opens, only the owner agent (R7) may take the task for this
    /// long; then any agent of the task's queue may.
    pub owner_grace: Duration,
    /// Citizen legs dialled at most this many times; then the task is `failed`.
    pub max_attempts: u32,
    /// The wait before the 2nd attempt; doubled for each further one, up to
    /// `backoff_max`.
    pub backoff_first: Duration,
    pub backoff_max: Duration,
    /// `None` (the default): inbound calls always come first (R9).
    pub reserve: Option<CallbackReserve>,
    /// Where citizens are dialled; `None` (the default): tasks are kept and listed but
    /// nobody is dialled.
    pub trunk: Option<OutboundTrunk>,
}

/// The outbound trunk callbacks dial citizens through: `trunk_uri` (a `sip:` URI with a
/// numeric host, the number goes in its user part), optional digest credentials for
/// the trunk's 401/407, and the caller-id the citizen's display shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundTrunk {
    /// Where the INVITE goes.
    pub address: std::net::SocketAddr,
    pub transport: crate::sip::TransportKind,
    pub credentials: Option<TrunkLogin>,
    /// The From user of the citizen's leg (the number the citizen sees).
    pub caller_id: String,
}

/// Digest credentials the trunk asks for.
#[derive(Clone, PartialEq, Eq)]
pub struct TrunkLogin {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for TrunkLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrunkLogin")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl OutboundTrunk {
    /// The Request-URI that reaches `number` through the trunk.
    pub fn uri_for(&self, number: &str) -> String {
        let transport = match self.transport {
            crate::sip::TransportKind::Tcp => ";transport=tcp",
            _ => "",
        };
        format!("sip:{number}@{}{transport}", self.address)
    }
}

/// Reads `sip:<ip>[:port][;transport=udp|tcp]`: the trunk's host must be an address
/// (the engine resolves no names), and the URI has no user part (the number goes there).
fn parse_trunk_uri(
    text: &str,
) -> Result<(std::net::SocketAddr, crate::sip::TransportKind), String> {
    let rest = text
        .trim()
        .strip_prefix("sip:")
        .ok_or("must start with sip: (e.g. \"sip:10.0.0.5:5060\")")?;
    if rest.contains('@') {
        return Err("must have no user part: the citizen's number goes there".to_owned());
    }
    let mut parts = rest.split(';');
    let hostport = parts.next().unwrap_or_default();
    let mut transport = crate::sip::TransportKind::Udp;
    for param in parts {
        match param.to_ascii_lowercase().as_str() {
            "transport=udp" => transport = crate::sip::TransportKind::Udp,
            "transport=tcp" => transport = crate::sip::TransportKind::Tcp,
            other => {
                return Err(format!(
                    "unsupported parameter {other:?}: only transport=udp or transport=tcp"
                ));
            }
        }
    }
    let address = match hostport.parse::<std::net::SocketAddr>() {
        Ok(address) => address,
        Err(_) => {
            let host = hostport.trim_start_matches('[').trim_end_matches(']');
            let ip: std::net::IpAddr = host.parse().map_err(|_| {
                format!("host {hostport:?} is not an IP address (with an optional port)")
            })?;
            std::net::SocketAddr::new(ip, 5060)
        }
    };
    if address.port() == 0 {
        return Err("port 0 cannot be dialled".to_owned());
    }
    Ok((address, transport))
}

const MINUTE: u64 = 60;
const HOUR: u64 = 3600;

fn minutes(n: u64) -> Duration {
    Duration::from_secs(n * MINUTE)
}

impl Default for CallbacksConfig {
    fn default() -> Self {
        CallbacksConfig {
            referral_check: WindowOffsets {
                earliest: minutes(20),
                latest: minutes(30),
            },
            evaluation: WindowOffsets {
                earliest: Duration::from_secs(24 * HOUR),
                latest: Duration::from_secs(48 * HOUR),
            },
            complaint: WindowOffsets {
                earliest: Duration::ZERO,
                latest: minutes(10),
            },
            missed_call: WindowOffsets {
                earliest: Duration::ZERO,
                latest: minutes(30),
            },
            manual: WindowOffsets {
                earliest: Duration::ZERO,
                latest: minutes(60),
            },
            owner_grace: minutes(5),
            max_attempts: 3,
            backoff_first: minutes(2),
            backoff_max: minutes(30),
            reserve: None,
            trunk: None,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCallbacks {
    referral_check_window_minutes: Option<Spanned<[u64; 2]>>,
    evaluation_window_hours: Option<Spanned<[u64; 2]>>,
    complaint_window_minutes: Option<Spanned<[u64; 2]>>,
    missed_call_window_minutes: Option<Spanned<[u64; 2]>>,
    manual_window_minutes: Option<Spanned<[u64; 2]>>,
    owner_grace_minutes: Option<Spanned<u64>>,
    max_attempts: Option<Spanned<u64>>,
    backoff_first_seconds: Option<Spanned<u64>>,
    backoff_max_seconds: Option<Spanned<u64>>,
    reserve_agents: Option<Spanned<u64>>,
    reserve_within_minutes: Option<Spanned<u64>>,
    trunk_uri: Option<Spanned<String>>,
    trunk_username: Option<Spanned<String>>,
    trunk_password: Option<Spanned<String>>,
    trunk_caller_id: Option<Spanned<String>>,
}

/// Windows reach at most 30 days out: a follow-up later than that is not a callback.
const MAX_WINDOW_SECONDS: u64 = 30 * 24 * HOUR;

impl Validator<'_> {
    fn window(
        &self,
        value: &Option<Spanned<[u64; 2]>>,
        key: &'static str,
        unit_seconds: u64,
        default: WindowOffsets,
    ) -> Result<WindowOffsets, ConfigError> {
        let Some(value) = value else {
            return Ok(default);
        };
        let [earliest, latest] = *value.get_ref();
        let (earliest, latest) = (
            earliest.saturating_mul(unit_seconds),
            latest.saturating_mul(unit_seconds),
        );
        if latest < earliest {
            return Err(self.invalid(
                value.span(),
                key,
                "[earliest, latest]: latest is before earliest",
            ));
        }
        if latest == 0 || latest > MAX_WINDOW_SECONDS {
            return Err(self.invalid(
                value.span(),
                key,
                "latest must be above zero and at most 30 days",
            ));
        }
        Ok(WindowOffsets {
            earliest: Duration::from_secs(earliest),
            latest: Duration::from_secs(latest),
        })
    }

    fn optional_in_range(
        &self,
        value: &Option<Spanned<u64>>,
        key: &'static str,
        range: std::ops::RangeInclusive<u64>,
        default: u64,
    ) -> Result<u64, ConfigError> {
        match value {
            Some(value) => self.in_range(value, key, range),
            None => Ok(default),
        }
    }

    fn outbound_trunk(&self, raw: &RawCallbacks) -> Result<Option<OutboundTrunk>, ConfigError> {
        let Some(uri) = &raw.trunk_uri else {
            for (value, key) in [
                (&raw.trunk_username, "callbacks.trunk_username"),
                (&raw.trunk_password, "callbacks.trunk_password"),
                (&raw.trunk_caller_id, "callbacks.trunk_caller_id"),
            ] {
                if let Some(value) = value {
                    return Err(self.invalid(value.span(), key, "needs callbacks.trunk_uri"));
                }
            }
            return Ok(None);
        };
        let (address, transport) = parse_trunk_uri(uri.get_ref())
            .map_err(|reason| self.invalid(uri.span(), "callbacks.trunk_uri", reason))?;
        let credentials = match (&raw.trunk_username, &raw.trunk_password) {
            (None, None) => None,
            (Some(username), Some(password)) => {
                if username.get_ref().trim().is_empty() {
                    return Err(self.invalid(
                        username.span(),
                        "callbacks.trunk_username",
                        "must not be empty",
                    ));
                }
                if password.get_ref().is_empty() {
                    return Err(self.invalid(
                        password.span(),
                        "callbacks.trunk_password",
                        "must not be empty",
                    ));
                }
                Some(TrunkLogin {
                    username: username.get_ref().trim().to_owned(),
                    password: password.get_ref().clone(),
                })
            }
            (Some(username), None) => {
                return Err(self.invalid(
                    username.span(),
                    "callbacks.trunk_username",
                    "needs callbacks.trunk_password too",
                ));
            }
            (None, Some(password)) => {
                return Err(self.invalid(
                    password.span(),
                    "callbacks.trunk_password",
                    "needs callbacks.trunk_username too",
                ));
            }
        };
        let caller_id = match &raw.trunk_caller_id {
            None => "hotline".to_owned(),
            Some(value) => {
                let text = value.get_ref().trim();
                let valid = !text.is_empty()
                    && text.len() <= 32
                    && text
                        .trim_start_matches('+')
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric());
                if !valid {
                    return Err(self.invalid(
                        value.span(),
                        "callbacks.trunk_caller_id",
                        "must be 1 to 32 digits or letters, with an optional leading +",
                    ));
                }
                text.to_owned()
            }
        };
        Ok(Some(OutboundTrunk {
            address,
            transport,
            credentials,
            caller_id,
        }))
    }

    pub(super) fn callbacks(&self, raw: &RawCallbacks) -> Result<CallbacksConfig, ConfigError> {
        let d = CallbacksConfig::default();
        let owner_grace = self.optional_in_range(
            &raw.owner_grace_minutes,
            "callbacks.owner_grace_minutes",
            0..=7 * 24 * 60,
            d.owner_grace.as_secs() / MINUTE,
        )?;
        let max_attempts = self.optional_in_range(
            &raw.max_attempts,
            "callbacks.max_attempts",
            1..=20,
            u64::from(d.max_attempts),
        )?;
        let backoff_first = self.optional_in_range(
            &raw.backoff_first_seconds,
            "callbacks.backoff_first_seconds",
            1..=86_400,
            d.backoff_first.as_secs(),
        )?;
        let backoff_max = self.optional_in_range(
            &raw.backoff_max_seconds,
            "callbacks.backoff_max_seconds",
            backoff_first..=7 * 86_400,
            d.backoff_max.as_secs().max(backoff_first),
        )?;
        let reserve_agents = self.optional_in_range(
            &raw.reserve_agents,
            "callbacks.reserve_agents",
            0..=10_000,
            0,
        )?;
        let reserve_within = self.optional_in_range(
            &raw.reserve_within_minutes,
            "callbacks.reserve_within_minutes",
            1..=7 * 24 * 60,
            10,
        )?;
        let trunk = self.outbound_trunk(raw)?;
        Ok(CallbacksConfig {
            trunk,
            referral_check: self.window(
                &raw.referral_check_window_minutes,
                "callbacks.referral_check_window_minutes",
                MINUTE,
                d.referral_check,
            )?,
            evaluation: self.window(
                &raw.evaluation_window_hours,
                "callbacks.evaluation_window_hours",
                HOUR,
                d.evaluation,
            )?,
            complaint: self.window(
                &raw.complaint_window_minutes,
                "callbacks.complaint_window_minutes",
                MINUTE,
                d.complaint,
            )?,
            missed_call: self.window(
                &raw.missed_call_window_minutes,
                "callbacks.missed_call_window_minutes",
                MINUTE,
                d.missed_call,
            )?,
            manual: self.window(
                &raw.manual_window_minutes,
                "callbacks.manual_window_minutes",
                MINUTE,
                d.manual,
            )?,
            owner_grace: minutes(owner_grace),
            max_attempts: max_attempts as u32,
            backoff_first: Duration::from_secs(backoff_first),
            backoff_max: Duration::from_secs(backoff_max),
            reserve: (reserve_agents > 0).then(|| CallbackReserve {
                agents: reserve_agents as usize,
                within: minutes(reserve_within),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::{CallbackReserve, CallbacksConfig};
    use crate::config::{Config, ConfigError};

    const SHIPPED: &str = include_str!("../../config/hotline.toml");

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("test.toml"), text)
    }

    /// The shipped file without its `[callbacks]` section, plus `section`.
    fn with_section(section: &str) -> String {
        let start = SHIPPED.find("\n[callbacks]").expect("shipped [callbacks]");
        let rest = &SHIPPED[start + 1..];
        let end = rest[1..]
            .find("\n[")
            .map_or(SHIPPED.len(), |i| start + 2 + i);
        format!("{}{}\n{}", &SHIPPED[..start + 1], section, &SHIPPED[end..])
    }

    #[test]
    fn shipped_values_are_the_defaults_r17_r18_r19() {
        let cfg = parse(SHIPPED).expect("shipped config");
        assert_eq!(cfg.callbacks, CallbacksConfig::default());
        assert_eq!(
            cfg.callbacks.referral_check.earliest,
            Duration::from_secs(20 * 60)
        );
        assert_eq!(
            cfg.callbacks.referral_check.latest,
            Duration::from_secs(30 * 60)
        );
        assert_eq!(
            cfg.callbacks.evaluation.earliest,
            Duration::from_secs(86_400)
        );
        assert_eq!(
            cfg.callbacks.evaluation.latest,
            Duration::from_secs(2 * 86_400)
        );
        assert_eq!(cfg.callbacks.complaint.earliest, Duration::ZERO);
        assert_eq!(cfg.callbacks.complaint.latest, Duration::from_secs(600));
        assert_eq!(cfg.callbacks.reserve, None, "the reserve is off by default");
    }

    #[test]
    fn a_config_without_the_section_takes_the_defaults() {
        let cfg = parse(&with_section("")).expect("config without [callbacks]");
        assert_eq!(cfg.callbacks, CallbacksConfig::default());
    }

    #[test]
    fn values_and_the_reserve_are_read() {
        let cfg = parse(&with_section(
            "[callbacks]\nreferral_check_window_minutes = [15, 45]\nowner_grace_minutes = 0\n\
             max_attempts = 5\nreserve_agents = 2\nreserve_within_minutes = 7\n",
        ))
        .expect("config");
        assert_eq!(
            cfg.callbacks.referral_check.earliest,
            Duration::from_secs(15 * 60)
        );
        assert_eq!(
            cfg.callbacks.referral_check.latest,
            Duration::from_secs(45 * 60)
        );
        assert_eq!(cfg.callbacks.owner_grace, Duration::ZERO);
        assert_eq!(cfg.callbacks.max_attempts, 5);
        assert_eq!(
            cfg.callbacks.reserve,
            Some(CallbackReserve {
                agents: 2,
                within: Duration::from_secs(7 * 60)
            })
        );
    }

    #[test]
    fn an_inverted_window_names_its_line_and_key() {
        let text = with_section("[callbacks]\n\nevaluation_window_hours = [48, 24]\n");
        let err = parse(&text).unwrap_err();
        let line = text
            .lines()
            .position(|l| l.starts_with("evaluation_window_hours"))
            .unwrap()
            + 1;
        match &err {
            ConfigError::Invalid { line: at, key, .. } => {
                assert_eq!((*at, *key), (line, "callbacks.evaluation_window_hours"));
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        assert!(
            err.to_string().contains("latest is before earliest"),
            "{err}"
        );
    }

    #[test]
    fn the_outbound_trunk_is_read_and_bad_values_name_their_line() {
        let cfg = parse(&with_section(
            "[callbacks]\ntrunk_uri = \"sip:127.0.0.1:5080;transport=tcp\"\n\
             trunk_username = \"hotline\"\ntrunk_password = \"s3cret\"\ntrunk_caller_id = \"+8612345\"\n",
        ))
        .expect("config");
        let trunk = cfg.callbacks.trunk.expect("a trunk");
        assert_eq!(
            trunk.address,
            "127.0.0.1:5080".parse::<std::net::SocketAddr>().unwrap()
        );
        assert_eq!(trunk.transport, crate::sip::TransportKind::Tcp);
        assert_eq!(trunk.caller_id, "+8612345");
        assert_eq!(
            trunk.uri_for("13800001111"),
            "sip:13800001111@127.0.0.1:5080;transport=tcp"
        );
        assert!(
            !format!("{trunk:?}").contains("s3cret"),
            "no password in logs"
        );
        for (bad, key) in [
            (
                "trunk_uri = \"sip:trunk.example.com\"",
                "callbacks.trunk_uri",
            ),
            ("trunk_uri = \"tel:+861234\"", "callbacks.trunk_uri"),
            ("trunk_uri = \"sip:1@127.0.0.1\"", "callbacks.trunk_uri"),
            (
                "trunk_uri = \"sip:127.0.0.1\"\ntrunk_username = \"u\"",
                "callbacks.trunk_username",
            ),
            ("trunk_caller_id = \"1\"", "callbacks.trunk_caller_id"),
        ] {
            let text = with_section(&format!("[callbacks]\n{bad}\n"));
            let err = parse(&text).unwrap_err();
            let line = text
                .lines()
                .position(|l| l.starts_with(key.trim_start_matches("callbacks.")))
                .unwrap()
                + 1;
            match &err {
                ConfigError::Invalid {
                    line: at, key: k, ..
                } => {
                    assert_eq!((*at, *k), (line, key), "{bad}: {err}");
                }
                other => panic!("{bad}: expected Invalid, got {other:?}"),
            }
        }
    }

    #[test]
    fn zero_attempts_and_unknown_keys_are_refused() {
        let err = parse(&with_section("[callbacks]\nmax_attempts = 0\n")).unwrap_err();
        assert!(err.to_string().contains("callbacks.max_attempts"), "{err}");
        let err = parse(&with_section("[callbacks]\nretries = 2\n")).unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
    }
}
