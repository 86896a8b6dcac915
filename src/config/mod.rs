//! The engine's configuration: one TOML file, parsed and validated before any port is
//! bound. Every error names the file, the line and the reason, so an operator fixing a
//! config at 3 a.m. does not have to guess (exit code 64 in `main`).
//!
//! Pure apart from reading the one file. Relative paths in the file (prompts,
//! recordings, data) resolve against the process's working directory, as the README says.

pub mod access;
pub mod agents;
pub mod desk;
pub mod qa;
pub mod secret_file;
pub mod session_timers;
pub mod store;
pub mod trunks;

pub use store::{StoreBackend, StoreConfig, StoreTls};
pub mod callbacks;
pub mod limits;
pub mod security;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// Why a config could not be used. Every variant carries the file; those about a
/// value also carry its line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key, or a value of the wrong type.
    #[error("{path}:{line}: {reason}")]
    Syntax {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// A value of the right type that makes no sense (a port range upside down, a ring
    /// budget shorter than the ringing time…).
    #[error("{path}:{line}: {key}: {reason}")]
    Invalid {
        path: PathBuf,
        line: usize,
        key: &'static str,
        reason: String,
    },
}

/// The validated configuration the engine runs on.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it came from, for messages.
    pub source: PathBuf,
    pub sip: SipConfig,
    pub http: HttpConfig,
    pub media: MediaConfig,
    pub calls: CallsConfig,
    pub prompts: PromptsConfig,
    pub recordings: RecordingsConfig,
    pub store: StoreConfig,
    pub log: LogConfig,
    pub acd: AcdSettings,
    /// `[ivr]`: the dialplan file; without one, the built-in flow (greeting, then
    /// `acd.default_queue`).
    pub ivr: IvrConfig,
    pub api: ApiConfig,
    pub registrar: RegistrarConfig,
    /// `[[trunks]]`: who may send calls in (R29); the loopback trunk when absent.
    pub trunks: Vec<crate::sip::trunk::Trunk>,
    /// `[session_timers]`: RFC 4028 Min-SE and interval; the RFC's values when absent.
    pub session_timers: crate::sip::session_timer::SessionTimerConfig,
    /// `[desk]`: the browser desk's heartbeat and audio timeout.
    pub desk: desk::DeskConfig,
    pub access: access::AccessConfig,
    pub qa: qa::QaConfig,
    pub callbacks: callbacks::CallbacksConfig,
    pub limits: limits::LimitsConfig,
    pub security: security::SecurityConfig,
}

/// `[acd]`: how calls reach agents (the agents themselves are in `agents_file`).
#[derive(Clone, Debug)]
pub struct AcdSettings {
    pub agents_file: PathBuf,
    /// The queue of the built-in call flow (no `[ivr] dialplan`), and of calls whose
    /// queue is not known.
    pub default_queue: String,
    /// An agent's phone rings this long before the call is offered to the next agent
    /// and the agent is paused `no_answer` (R6).
    pub agent_ring_timeout: Duration,
    /// Played in a loop while a caller waits.
    pub hold_music: PathBuf,
    /// How often a waiting caller hears "您前面还有 N 位".
    pub position_announcement_interval: Duration,
    /// Line of `default_queue` in the config, for the error when no such queue exists.
    default_queue_line: usize,
}

/// `[ivr]`: the call flow.
#[derive(Clone, Debug, Default)]
pub struct IvrConfig {
    /// The dialplan file (`dialplans/8890.toml`); its prompts are in `prompts.dir`.
    pub dialplan: Option<PathBuf>,
}

/// `[api]`: the HTTP API for agents and supervisors.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// The original single bearer token: a supervisor credential, kept so existing
    /// scripts and curl examples go on working. Other tokens are in `[access]`.
    pub token: String,
}

/// `[registrar]`: agents' softphones register here with digest authentication (R29).
#[derive(Clone, Debug)]
pub struct RegistrarConfig {
    pub realm: String,
    pub min_expires: Duration,
    pub max_expires: Duration,
    pub default_expires: Duration,
    /// A challenge's nonce is good this long; after it the phone is told `stale=true`.
    pub nonce_lifetime: Duration,
    /// Digest algorithms offered, one `WWW-Authenticate` each, in this order.
    pub digest_algorithms: Vec<crate::sip::digest::Algorithm>,
}

#[derive(Clone, Debug)]
pub struct SipConfig {
    pub listen_udp: Option<SocketAddr>,
    pub listen_tcp: Option<SocketAddr>,
    /// The address written into Contact, Via and SDP: the listen address unless it is a
    /// wildcard, then this must be given.
    pub advertised_ip: IpAddr,
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
    /// At most this many simultaneous TCP connections; more are refused at accept.
    pub max_tcp_connections: usize,
}

#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub listen: SocketAddr,
}

#[derive(Clone, Debug)]
pub struct MediaConfig {
    /// Local address RTP sockets bind to.
    pub rtp_ip: IpAddr,
    /// Inclusive port range for RTP; one even port per call.
    pub rtp_ports: (u16, u16),
}

#[derive(Clone, Debug)]
pub struct CallsConfig {
    pub max_concurrent: usize,
    /// How long the trunk leg rings (180) before the engine answers: a caller can still
    /// CANCEL in this time (R6: answered on the 2nd–3rd ring).
    pub ring_before_answer: Duration,
    /// The trunk leg must have its final answer within this (R6).
    pub ring_budget: Duration,
    /// A call still up after this is ended by the engine with BYE.
    pub max_call_length: Duration,
    /// On SIGTERM, calls in progress get this long before the engine hangs up.
    pub shutdown_grace: Duration,
    /// Sent with `503` when the engine is full or shutting down.
    pub retry_after: Duration,
    /// An answered call from which no RTP has arrived for this long (and not on hold) is
    /// ended: the caller vanished. `None`: never.
    pub rtp_timeout: Option<Duration>,
}

#[derive(Clone, Debug)]
pub struct PromptsConfig {
    pub dir: PathBuf,
    pub greeting: PathBuf,
}

#[derive(Clone, Debug)]
pub struct RecordingsConfig {
    pub dir: PathBuf,
    /// How often the WAV header is rewritten so a crash leaves a playable file (R22).
    pub header_interval: Duration,
}

#[derive(Clone, Debug)]
pub struct LogConfig {
    /// A `tracing` filter, e.g. `info` or `hotline=debug`; `RUST_LOG` overrides it.
    pub filter: String,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(path, &text)
    }

    /// Parses and validates config text; `path` is only used in messages. A secret
    /// named by `api.token_env` is read from this process's environment.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        Config::parse_with_env(path, text, &|name| std::env::var(name).ok())
    }

    /// [`Config::parse`] with the environment given: tests name their own variables
    /// instead of changing the process's environment under other threads.
    pub fn parse_with_env(
        path: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            line: e.span().map(|s| line_of(text, s.start)).unwrap_or(1),
            reason: e.message().trim().to_owned(),
        })?;
        Validator { path, text, env }.validate(raw)
    }

    /// The path of the greeting prompt, resolved against the prompts directory.
    pub fn greeting_path(&self) -> PathBuf {
        self.prompts.dir.join(&self.prompts.greeting)
    }

    /// A prompt by file name, resolved against the prompts directory.
    pub fn prompt_path(&self, file: &str) -> PathBuf {
        self.prompts.dir.join(file)
    }

    /// Reads and validates the agents file, and checks that `acd.default_queue` is one
    /// of its queues.
    pub fn load_agents(&self) -> Result<agents::AgentsConfig, ConfigError> {
        let agents = agents::AgentsConfig::load(&self.acd.agents_file)?;
        if agents.queue(&self.acd.default_queue).is_none() {
            return Err(ConfigError::Invalid {
                path: self.source.clone(),
                line: self.acd.default_queue_line,
                key: "acd.default_queue",
                reason: format!(
                    "no queue named {:?} in {}",
                    self.acd.default_queue,
                    self.acd.agents_file.display()
                ),
            });
        }
        Ok(agents)
    }
}

/// The 1-based line of a byte offset in a TOML text, for errors that name file and line
/// (the config, the agents file and the dialplan all use it).
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

// The raw file, as written. `Spanned` keeps where each value stood so that validation
// errors point at a line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    sip: RawSip,
    #[serde(default)]
    http: RawHttp,
    media: RawMedia,
    calls: RawCalls,
    prompts: RawPrompts,
    recordings: RawRecordings,
    store: store::RawStore,
    #[serde(default)]
    log: RawLog,
    acd: RawAcd,
    #[serde(default)]
    ivr: RawIvr,
    api: Spanned<RawApi>,
    registrar: RawRegistrar,
    trunks: Option<Vec<trunks::RawTrunk>>,
    session_timers: Option<session_timers::RawSessionTimers>,
    desk: Option<desk::RawDesk>,
    #[serde(default)]
    access: access::RawAccess,
    #[serde(default)]
    qa: qa::RawQa,
    #[serde(default)]
    callbacks: callbacks::RawCallbacks,
    #[serde(default)]
    limits: limits::RawLimits,
    #[serde(default)]
    security: security::RawSecurity,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAcd {
    agents_file: Spanned<String>,
    default_queue: Spanned<String>,
    agent_ring_timeout_ms: Spanned<u64>,
    hold_music: Spanned<String>,
    position_announcement_seconds: Spanned<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIvr {
    dialplan: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    #[serde(default)]
    token: Option<Spanned<String>>,
    #[serde(default)]
    token_env: Option<Spanned<String>>,
    /// A file holding the token, mode 0600 (systemd's `LoadCredential=`).
    #[serde(default)]
    token_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistrar {
    realm: Spanned<String>,
    min_expires_seconds: Spanned<u64>,
    max_expires_seconds: Spanned<u64>,
    default_expires_seconds: Spanned<u64>,
    nonce_lifetime_seconds: Spanned<u64>,
    digest_algorithms: Spanned<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSip {
    listen_udp: Option<Spanned<String>>,
    listen_tcp: Option<Spanned<String>>,
    advertised_ip: Option<Spanned<String>>,
    #[serde(default = "default_t1_ms")]
    t1_ms: Spanned<u64>,
    #[serde(default = "default_t2_ms")]
    t2_ms: Spanned<u64>,
    #[serde(default = "default_t4_ms")]
    t4_ms: Spanned<u64>,
    #[serde(default = "default_max_tcp")]
    max_tcp_connections: Spanned<u64>,
}

fn default_t1_ms() -> Spanned<u64> {
    Spanned::new(0..0, 500)
}
fn default_t2_ms() -> Spanned<u64> {
    Spanned::new(0..0, 4000)
}
fn default_t4_ms() -> Spanned<u64> {
    Spanned::new(0..0, 5000)
}
fn default_max_tcp() -> Spanned<u64> {
    Spanned::new(0..0, 1024)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Spanned<String>,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            listen: Spanned::new(0..0, "127.0.0.1:9090".to_owned()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMedia {
    rtp_ip: Spanned<String>,
    rtp_port_min: Spanned<u64>,
    rtp_port_max: Spanned<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalls {
    max_concurrent: Spanned<u64>,
    ring_before_answer_ms: Spanned<u64>,
    ring_budget_ms: Spanned<u64>,
    max_call_seconds: Spanned<u64>,
    shutdown_grace_seconds: Spanned<u64>,
    retry_after_seconds: Spanned<u64>,
    #[serde(default = "default_rtp_timeout")]
    rtp_timeout_seconds: Spanned<u64>,
}

fn default_rtp_timeout() -> Spanned<u64> {
    Spanned::new(0..0, 60)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrompts {
    dir: Spanned<String>,
    greeting: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecordings {
    dir: Spanned<String>,
    header_interval_ms: Spanned<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    filter: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            filter: "info".to_owned(),
        }
    }
}

struct Validator<'a> {
    path: &'a Path,
    text: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Validator<'_> {
    /// The API's legacy supervisor token: written in the file (`api.token`) or, so the
    /// file can be shared without it, read from the environment variable that
    /// `api.token_env` names. Exactly one of the two.
    fn api_token(&self, api: &Spanned<RawApi>) -> Result<String, ConfigError> {
        if let Some(file) = &api.get_ref().token_file {
            return self.api_token_from_file(api, file);
        }
        let (token, span, key) = match (&api.get_ref().token, &api.get_ref().token_env) {
            (Some(_), Some(name)) => {
                return Err(self.invalid(
                    name.span(),
                    "api.token_env",
                    "give api.token or api.token_env, not both",
                ));
            }
            (None, None) => {
                return Err(self.invalid(
                    api.span(),
                    "api.token",
                    "missing: give api.token, api.token_env naming the environment \
                     variable that holds it, or api.token_file naming a mode 0600 file",
                ));
            }
            (Some(token), None) => (token.get_ref().clone(), token.span(), "api.token"),
            (None, Some(name)) => {
                let variable = self.env_var_name(name, "api.token_env")?;
                let Some(token) = (self.env)(&variable) else {
                    return Err(self.invalid(
                        name.span(),
                        "api.token_env",
                        format!("the environment variable {variable} is not set"),
                    ));
                };
                (token, name.span(), "api.token_env")
            }
        };
        if token.len() < 16 {
            return Err(self.invalid(
                span,
                key,
                "the token must be at least 16 characters: it guards caller data (R12)",
            ));
        }
        Ok(token)
    }

    /// The API token from `api.token_file` (e.g. systemd's `LoadCredential=`, read as
    /// `/run/credentials/hotline.service/api-token`): the only one of the three ways
    /// given, in a file only its owner may read ([`secret_file::read_secret_file`]).
    fn api_token_from_file(
        &self,
        api: &Spanned<RawApi>,
        file: &Spanned<String>,
    ) -> Result<String, ConfigError> {
        let raw = api.get_ref();
        if raw.token.is_some() || raw.token_env.is_some() {
            return Err(self.invalid(
                file.span(),
                "api.token_file",
                "give one of api.token, api.token_env and api.token_file",
            ));
        }
        let path = self.non_empty_path(file, "api.token_file")?;
        let token = secret_file::read_secret_file(&path)
            .map_err(|reason| self.invalid(file.span(), "api.token_file", reason))?;
        if token.len() < 16 {
            return Err(self.invalid(
                file.span(),
                "api.token_file",
                "the token must be at least 16 characters: it guards caller data (R12)",
            ));
        }
        Ok(token)
    }

    /// A value that names an environment variable: letters, digits and `_`, not
    /// starting with a digit.
    fn env_var_name(
        &self,
        name: &Spanned<String>,
        key: &'static str,
    ) -> Result<String, ConfigError> {
        let n = name.get_ref();
        let valid = !n.is_empty()
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !n.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(self.invalid(
                name.span(),
                key,
                format!("{n:?} is not an environment variable name"),
            ));
        }
        Ok(n.clone())
    }

    fn invalid(
        &self,
        span: Range<usize>,
        key: &'static str,
        reason: impl fmt::Display,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_owned(),
            line: line_of(self.text, span.start),
            key,
            reason: reason.to_string(),
        }
    }

    fn socket_addr(
        &self,
        value: &Spanned<String>,
        key: &'static str,
    ) -> Result<SocketAddr, ConfigError> {
        value.get_ref().parse().map_err(|_| {
            self.invalid(
                value.span(),
                key,
                format!(
                    "{:?} is not an address:port such as \"127.0.0.1:5060\"",
                    value.get_ref()
                ),
            )
        })
    }

    fn ip(&self, value: &Spanned<String>, key: &'static str) -> Result<IpAddr, ConfigError> {
        value.get_ref().parse().map_err(|_| {
            self.invalid(
                value.span(),
                key,
                format!("{:?} is not an IP address", value.get_ref()),
            )
        })
    }

    fn in_range(
        &self,
        value: &Spanned<u64>,
        key: &'static str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64, ConfigError> {
        let v = *value.get_ref();
        if range.contains(&v) {
            Ok(v)
        } else {
            Err(self.invalid(
                value.span(),
                key,
                format!("{v} is outside {}..={}", range.start(), range.end()),
            ))
        }
    }

    fn non_empty_path(
        &self,
        value: &Spanned<String>,
        key: &'static str,
    ) -> Result<PathBuf, ConfigError> {
        if value.get_ref().trim().is_empty() {
            Err(self.invalid(value.span(), key, "must not be empty"))
        } else {
            Ok(PathBuf::from(value.get_ref()))
        }
    }

    fn validate(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let trunks = trunks::validate(self, &raw.trunks)?;
        let session_timers = session_timers::validate(self, &raw.session_timers)?;
        let desk = desk::validate(self, &raw.desk)?;
        let listen_udp = raw
            .sip
            .listen_udp
            .as_ref()
            .map(|v| self.socket_addr(v, "sip.listen_udp"))
            .transpose()?;
        let listen_tcp = raw
            .sip
            .listen_tcp
            .as_ref()
            .map(|v| self.socket_addr(v, "sip.listen_tcp"))
            .transpose()?;
        let Some(first_listen) = listen_udp.or(listen_tcp) else {
            return Err(ConfigError::Invalid {
                path: self.path.to_owned(),
                line: 1,
                key: "sip",
                reason: "neither listen_udp nor listen_tcp is set: the engine would take no calls"
                    .into(),
            });
        };
        let advertised_ip = match &raw.sip.advertised_ip {
            Some(v) => self.ip(v, "sip.advertised_ip")?,
            None if first_listen.ip().is_unspecified() => {
                return Err(ConfigError::Invalid {
                    path: self.path.to_owned(),
                    line: 1,
                    key: "sip.advertised_ip",
                    reason: "required when listening on a wildcard address: peers need a routable address in Contact and SDP".into(),
                });
            }
            None => first_listen.ip(),
        };
        let t1 = self.in_range(&raw.sip.t1_ms, "sip.t1_ms", 50..=5_000)?;
        let t2 = self.in_range(&raw.sip.t2_ms, "sip.t2_ms", t1..=60_000)?;
        let t4 = self.in_range(&raw.sip.t4_ms, "sip.t4_ms", 0..=60_000)?;
        let max_tcp = self.in_range(
            &raw.sip.max_tcp_connections,
            "sip.max_tcp_connections",
            1..=100_000,
        )?;

        let http_listen = self.socket_addr(&raw.http.listen, "http.listen")?;

        let rtp_ip = self.ip(&raw.media.rtp_ip, "media.rtp_ip")?;
        let port_min =
            self.in_range(&raw.media.rtp_port_min, "media.rtp_port_min", 1024..=65_534)?;
        let port_max =
            self.in_range(&raw.media.rtp_port_max, "media.rtp_port_max", 1024..=65_535)?;
        if port_max <= port_min {
            return Err(self.invalid(
                raw.media.rtp_port_max.span(),
                "media.rtp_port_max",
                format!("must be above rtp_port_min ({port_min})"),
            ));
        }

        let calls = &raw.calls;
        let max_concurrent =
            self.in_range(&calls.max_concurrent, "calls.max_concurrent", 1..=100_000)?;
        // One even port per call (the odd one above is RTCP's), as the port pool allocates.
        let first_even = port_min + port_min % 2;
        let ports_available = (port_max - first_even) / 2 + 1;
        if max_concurrent > ports_available {
            return Err(self.invalid(
                calls.max_concurrent.span(),
                "calls.max_concurrent",
                format!("{max_concurrent} calls need more RTP ports than media.rtp_port_min..=rtp_port_max gives ({ports_available} calls)"),
            ));
        }
        let ring_budget = self.in_range(
            &calls.ring_budget_ms,
            "calls.ring_budget_ms",
            1_000..=60_000,
        )?;
        let ring_before = self.in_range(
            &calls.ring_before_answer_ms,
            "calls.ring_before_answer_ms",
            0..=60_000,
        )?;
        if ring_before >= ring_budget {
            return Err(self.invalid(
                calls.ring_before_answer_ms.span(),
                "calls.ring_before_answer_ms",
                format!("{ring_before} ms of ringing leaves no room inside the ring budget of {ring_budget} ms (R6)"),
            ));
        }
        let max_call = self.in_range(
            &calls.max_call_seconds,
            "calls.max_call_seconds",
            1..=86_400,
        )?;
        let grace = self.in_range(
            &calls.shutdown_grace_seconds,
            "calls.shutdown_grace_seconds",
            0..=3_600,
        )?;
        let retry_after = self.in_range(
            &calls.retry_after_seconds,
            "calls.retry_after_seconds",
            1..=3_600,
        )?;
        let rtp_timeout = self.in_range(
            &calls.rtp_timeout_seconds,
            "calls.rtp_timeout_seconds",
            0..=86_400,
        )?;

        let prompts_dir = self.non_empty_path(&raw.prompts.dir, "prompts.dir")?;
        let greeting = self.non_empty_path(&raw.prompts.greeting, "prompts.greeting")?;

        let recordings_dir = self.non_empty_path(&raw.recordings.dir, "recordings.dir")?;
        let header_interval = self.in_range(
            &raw.recordings.header_interval_ms,
            "recordings.header_interval_ms",
            100..=2_000,
        )?;

        let store = self.store(&raw.store)?;

        let acd = &raw.acd;
        let agents_file = self.non_empty_path(&acd.agents_file, "acd.agents_file")?;
        if acd.default_queue.get_ref().trim().is_empty() {
            return Err(self.invalid(
                acd.default_queue.span(),
                "acd.default_queue",
                "must not be empty",
            ));
        }
        let agent_ring_timeout = self.in_range(
            &acd.agent_ring_timeout_ms,
            "acd.agent_ring_timeout_ms",
            1_000..=120_000,
        )?;
        let hold_music = self.non_empty_path(&acd.hold_music, "acd.hold_music")?;
        let announce = self.in_range(
            &acd.position_announcement_seconds,
            "acd.position_announcement_seconds",
            5..=600,
        )?;

        let token = self.api_token(&raw.api)?;

        let reg = &raw.registrar;
        if reg.realm.get_ref().trim().is_empty() || reg.realm.get_ref().contains('"') {
            return Err(self.invalid(
                reg.realm.span(),
                "registrar.realm",
                "must be non-empty and free of '\"'",
            ));
        }
        let min_expires = self.in_range(
            &reg.min_expires_seconds,
            "registrar.min_expires_seconds",
            10..=86_400,
        )?;
        let max_expires = self.in_range(
            &reg.max_expires_seconds,
            "registrar.max_expires_seconds",
            min_expires..=86_400,
        )?;
        let default_expires = self.in_range(
            &reg.default_expires_seconds,
            "registrar.default_expires_seconds",
            min_expires..=max_expires,
        )?;
        let nonce_lifetime = self.in_range(
            &reg.nonce_lifetime_seconds,
            "registrar.nonce_lifetime_seconds",
            10..=86_400,
        )?;
        let mut digest_algorithms = Vec::new();
        for name in reg.digest_algorithms.get_ref() {
            match crate::sip::digest::Algorithm::from_token(name) {
                Some(a) => digest_algorithms.push(a),
                None => {
                    return Err(self.invalid(
                        reg.digest_algorithms.span(),
                        "registrar.digest_algorithms",
                        format!(
                            "unknown algorithm {name:?}; MD5, MD5-sess, SHA-256 or SHA-256-sess"
                        ),
                    ));
                }
            }
        }
        if digest_algorithms.is_empty() {
            return Err(self.invalid(
                reg.digest_algorithms.span(),
                "registrar.digest_algorithms",
                "name at least one algorithm",
            ));
        }

        let access = access::validate(self, &raw.access)?;
        let qa = qa::validate(self, &raw.qa)?;
        let callbacks = self.callbacks(&raw.callbacks)?;
        let limits = self.limits(&raw.limits)?;
        let security = self.security(&raw.security)?;
        let dialplan = match &raw.ivr.dialplan {
            Some(path) => Some(self.non_empty_path(path, "ivr.dialplan")?),
            None => None,
        };

        Ok(Config {
            trunks,
            session_timers,
            desk,
            access,
            qa,
            callbacks,
            limits,
            security,
            acd: AcdSettings {
                agents_file,
                default_queue: acd.default_queue.get_ref().trim().to_owned(),
                agent_ring_timeout: Duration::from_millis(agent_ring_timeout),
                hold_music,
                position_announcement_interval: Duration::from_secs(announce),
                default_queue_line: line_of(self.text, acd.default_queue.span().start),
            },
            ivr: IvrConfig { dialplan },
            api: ApiConfig { token },
            registrar: RegistrarConfig {
                realm: reg.realm.get_ref().clone(),
                min_expires: Duration::from_secs(min_expires),
                max_expires: Duration::from_secs(max_expires),
                default_expires: Duration::from_secs(default_expires),
                nonce_lifetime: Duration::from_secs(nonce_lifetime),
                digest_algorithms,
            },
            source: self.path.to_owned(),
            sip: SipConfig {
                listen_udp,
                listen_tcp,
                advertised_ip,
                t1: Duration::from_millis(t1),
                t2: Duration::from_millis(t2),
                t4: Duration::from_millis(t4),
                max_tcp_connections: max_tcp as usize,
            },
            http: HttpConfig {
                listen: http_listen,
            },
            media: MediaConfig {
                rtp_ip,
                rtp_ports: (port_min as u16, port_max as u16),
            },
            calls: CallsConfig {
                max_concurrent: max_concurrent as usize,
                ring_before_answer: Duration::from_millis(ring_before),
                ring_budget: Duration::from_millis(ring_budget),
                max_call_length: Duration::from_secs(max_call),
                shutdown_grace: Duration::from_secs(grace),
                retry_after: Duration::from_secs(retry_after),
                rtp_timeout: (rtp_timeout > 0).then(|| Duration::from_secs(rtp_timeout)),
            },
            prompts: PromptsConfig {
                dir: prompts_dir,
                greeting,
            },
            recordings: RecordingsConfig {
                dir: recordings_dir,
                header_interval: Duration::from_millis(header_interval),
            },
            store,
            log: LogConfig {
                filter: raw.log.filter,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../config/hotline.toml");

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("test.toml"), text)
    }

    #[test]
    fn shipped_config_is_valid_and_local() {
        let cfg = parse(SHIPPED).expect("shipped config");
        assert_eq!(cfg.sip.listen_udp, Some("127.0.0.1:5060".parse().unwrap()));
        assert_eq!(cfg.sip.listen_tcp, Some("127.0.0.1:5060".parse().unwrap()));
        assert_eq!(
            cfg.http.listen,
            "127.0.0.1:9090".parse::<std::net::SocketAddr>().unwrap()
        );
        // R6: three rings of 1 s on / 4 s off is the default budget.
        assert_eq!(cfg.calls.ring_budget, Duration::from_secs(10));
        assert_eq!(cfg.calls.ring_before_answer, Duration::from_secs(2));
        assert!(matches!(cfg.store.backend, StoreBackend::Sqlite { .. }));
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let text = SHIPPED.replacen("[calls]", "[calls\n", 1);
        let err = parse(&text).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("test.toml:"), "{msg}");
        assert!(matches!(err, ConfigError::Syntax { .. }));
    }

    #[test]
    fn unknown_key_is_rejected_with_its_line() {
        let text = SHIPPED.replacen("[calls]\n", "[calls]\nring_budgit_ms = 3\n", 1);
        let line = text
            .lines()
            .position(|l| l.starts_with("ring_budgit_ms"))
            .unwrap()
            + 1;
        let err = parse(&text).unwrap_err();
        match err {
            ConfigError::Syntax {
                line: l,
                ref reason,
                ..
            } => {
                assert_eq!(l, line);
                assert!(reason.contains("ring_budgit_ms"), "{reason}");
            }
            other => panic!("expected syntax error, got {other}"),
        }
    }

    #[test]
    fn bad_address_points_at_its_line() {
        let text = SHIPPED.replacen(
            "listen_udp = \"127.0.0.1:5060\"",
            "listen_udp = \"127.0.0.1\"",
            1,
        );
        let line = text
            .lines()
            .position(|l| l.starts_with("listen_udp"))
            .unwrap()
            + 1;
        let err = parse(&text).unwrap_err();
        assert!(
            matches!(err, ConfigError::Invalid { line: l, key: "sip.listen_udp", .. } if l == line),
            "{err}"
        );
    }

    const SHIPPED_TOKEN_LINE: &str = "token = \"demo-token-change-me-0123456789\"";

    fn with_env(text: &str, variable: &str, value: Option<&str>) -> Result<Config, ConfigError> {
        Config::parse_with_env(Path::new("test.toml"), text, &|name| {
            (name == variable)
                .then(|| value.map(str::to_owned))
                .flatten()
        })
    }

    fn line_starting(text: &str, start: &str) -> usize {
        text.lines().position(|l| l.starts_with(start)).unwrap() + 1
    }

    #[test]
    fn the_api_token_can_come_from_the_environment_r12() {
        let text = SHIPPED.replacen(SHIPPED_TOKEN_LINE, "token_env = \"HOTLINE_API_TOKEN\"", 1);
        let secret = "a-token-kept-out-of-the-file-42";
        let cfg = with_env(&text, "HOTLINE_API_TOKEN", Some(secret)).expect("token from env");
        assert_eq!(cfg.api.token, secret);

        let line = line_starting(&text, "token_env");
        let err = with_env(&text, "HOTLINE_API_TOKEN", None).unwrap_err();
        assert!(
            matches!(err, ConfigError::Invalid { line: l, key: "api.token_env", .. } if l == line),
            "{err}"
        );
        assert!(
            err.to_string().contains("HOTLINE_API_TOKEN is not set"),
            "{err}"
        );

        let err = with_env(&text, "HOTLINE_API_TOKEN", Some("short")).unwrap_err();
        assert!(err.to_string().contains("at least 16 characters"), "{err}");
    }

    #[test]
    fn the_api_token_is_given_exactly_once() {
        let both = SHIPPED.replacen(
            SHIPPED_TOKEN_LINE,
            &format!("{SHIPPED_TOKEN_LINE}\ntoken_env = \"HOTLINE_API_TOKEN\""),
            1,
        );
        let err = with_env(&both, "HOTLINE_API_TOKEN", Some("x".repeat(20).as_str())).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    key: "api.token_env",
                    ..
                }
            ),
            "{err}"
        );

        let neither = SHIPPED.replacen(SHIPPED_TOKEN_LINE, "", 1);
        let err = parse(&neither).unwrap_err();
        let line = line_starting(&neither, "[api]");
        assert!(
            matches!(err, ConfigError::Invalid { line: l, key: "api.token", .. } if l == line),
            "{err}"
        );

        let bad_name = SHIPPED.replacen(SHIPPED_TOKEN_LINE, "token_env = \"1-token\"", 1);
        let err = parse(&bad_name).unwrap_err();
        assert!(
            err.to_string().contains("not an environment variable name"),
            "{err}"
        );
    }

    #[test]
    fn ringing_longer_than_the_ring_budget_is_refused_r6() {
        let text = SHIPPED.replacen(
            "ring_before_answer_ms = 2000",
            "ring_before_answer_ms = 12000",
            1,
        );
        let err = parse(&text).unwrap_err();
        assert!(err.to_string().contains("ring budget"), "{err}");
    }

    #[test]
    fn upside_down_port_range_is_refused() {
        let text = SHIPPED.replacen("rtp_port_max = 29999", "rtp_port_max = 10000", 1);
        let err = parse(&text).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    key: "media.rtp_port_max",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn unknown_store_is_refused() {
        let text = SHIPPED.replacen("kind = \"sqlite\"", "kind = \"oracle\"", 1);
        let err = parse(&text).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    key: "store.kind",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn wildcard_listen_needs_an_advertised_address() {
        let text = SHIPPED
            .replace("127.0.0.1:5060", "0.0.0.0:5060")
            .replace("advertised_ip = \"127.0.0.1\"\n", "");
        let err = parse(&text).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    key: "sip.advertised_ip",
                    ..
                }
            ),
            "{err}"
        );
    }
}
