//! The supervisors' wallboard (R5, R11, R15, R20, R30): `/wallboard` on the engine's
//! HTTP listener, pushed live over Server-Sent Events.
//!
//! | route | what |
//! |---|---|
//! | `GET /wallboard` | the page (Chinese labels, large type, red/amber states) |
//! | `GET /wallboard/events` | `text/event-stream`: one `snapshot` event a second |
//! | `GET /wallboard/agents/{id}/history` | the agent's state changes today |
//! | `POST /wallboard/agents/{id}/pause`, `…/logout` | a supervisor action, audited in the store's audit log |
//!
//! # One producer
//! A single feed task builds a [`WallboardSnapshot`] once a second, serialises it once
//! and publishes it on a `watch` channel; every open board only forwards the latest
//! text. However many boards are open, the engine is asked once a second.
//!
//! # Where the numbers come from
//! The board depends only on [`WallboardSnapshot`] (what it shows) and
//! [`SupervisorActions`] (what a supervisor may do). [`start`] feeds both from what
//! the engine has today: the switch core's board (agents, queues, the rolling 24 h
//! window, the counts since local midnight, the day's urgent calls and complaints, the
//! callback scheduler's figures) and the agents file; a different source only needs
//! to build a [`Board`] with its own `watch` sender and actions.
//!
//! # Credential
//! A supervisor token (the API token, `[api] token`, or a `[[access.tokens]]` entry
//! with `role = "supervisor"`; other roles get 403) as `Authorization: Bearer`, or —
//! because a browser's `EventSource` cannot set headers — as `?token=` (the page is
//! opened once as `/wallboard?token=…`, which sets an `HttpOnly`, `SameSite=Strict`
//! cookie scoped to `/wallboard`, so the token leaves the address bar and the stream
//! and actions use the cookie). Each action's audit entry names the token's holder.
//! Caller numbers never reach the board unmasked (R12).
//!
//! Pure parts ([`BoardCore`], [`assess`]) decide; the feed task and handlers do I/O.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Local, TimeZone, Utc};
use serde::Serialize;
use tokio::sync::watch;
use tracing::{info, warn};

use super::SwitchClient;
use super::auth::{Authenticator, Principal, Role};
use super::error::{ApiError, ApiPath};
use crate::callbacks::SchedulerStats;
use crate::config::Config;
use crate::config::agents::AgentsConfig;
use crate::switch::{AgentAction, AgentStatus, Command, LiveFact, LiveKind, QueueStatus, Reply};
use crate::workorder::{AuditedRead, ReadAuditEntry, WorkOrderStore};

/// The page, embedded so the binary is the whole installation.
const PAGE: &str = include_str!("wallboard.html");
/// The target the hotline promises (R5).
pub const CONNECTION_RATE_TARGET: f64 = 0.95;
/// Amber before red: the warning line of the alert rules.
pub const CONNECTION_RATE_WARNING: f64 = 0.96;
/// How often the feed publishes: the board's "at most once a second".
pub const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);
/// A day's state changes kept per agent; older ones of the same day are dropped first.
const HISTORY_PER_AGENT: usize = 500;
const COOKIE: &str = "hotline_wallboard";

/// Times go to the page as RFC 3339 text, which JavaScript's `Date` reads.
fn rfc3339<S: serde::Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// How a figure stands against its threshold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    #[default]
    Ok,
    Amber,
    Red,
}

/// Everything one board shows at one moment.
#[derive(Clone, Debug, Serialize)]
pub struct WallboardSnapshot {
    #[serde(serialize_with = "rfc3339")]
    pub at: DateTime<Utc>,
    pub ring_budget_seconds: f64,
    pub queues: Vec<QueueBoard>,
    pub agents: Vec<AgentBoard>,
    pub connection_rate: ConnectionRateBoard,
    /// `None` while the engine's callbacks are off (R20): shown as "not configured".
    pub callbacks: Option<CallbacksBoard>,
    /// Today's urgent calls (R11), newest first.
    pub urgent: Vec<LiveItem>,
    /// Today's complaints about the hotline (R15), newest first.
    pub complaints: Vec<LiveItem>,
}

#[derive(Clone, Debug, Serialize)]
pub struct QueueBoard {
    pub name: String,
    /// Calls not yet answered (waiting plus ringing an agent).
    pub depth: usize,
    pub ringing: usize,
    pub oldest_wait_seconds: Option<f64>,
    /// The queue's `max_wait_seconds`, when the agents file could be read.
    pub max_wait_seconds: Option<f64>,
    pub over_ring_budget: OverRingBudget,
    pub agents_available: usize,
    pub agents_busy: usize,
    pub agents_paused: usize,
    pub level: Level,
}

/// Calls of a queue that have waited longer than the ring budget. A source that knows
/// only the oldest wait gives a lower bound (`exact: false`), shown as "≥ n".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct OverRingBudget {
    pub count: usize,
    pub exact: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct AgentBoard {
    /// The agent number, never a name (R12).
    pub id: String,
    pub state: String,
    pub reason: Option<String>,
    pub seconds_in_state: Option<u64>,
    pub registered: bool,
    pub calls_taken: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ConnectionRateBoard {
    pub target: f64,
    pub today: RateFigure,
    pub rolling_24h: RateFigure,
}

/// Offered and answered calls and their ratio (`None` when nothing was offered).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct RateFigure {
    pub offered: u64,
    pub answered: u64,
    pub rate: Option<f64>,
    pub level: Level,
}

impl RateFigure {
    pub fn new(offered: u64, answered: u64) -> RateFigure {
        let rate = (offered > 0).then(|| answered as f64 / offered as f64);
        let level = match rate {
            Some(r) if r < CONNECTION_RATE_TARGET => Level::Red,
            Some(r) if r < CONNECTION_RATE_WARNING => Level::Amber,
            _ => Level::Ok,
        };
        RateFigure {
            offered,
            answered,
            rate,
            level,
        }
    }
}

/// The callbacks (R20) as the scheduler counts them (the figures the callback metrics
/// publish): red when any is overdue, amber when any is due (its window open, waiting
/// for a free agent) and none is overdue.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CallbacksBoard {
    /// Waiting to be dialled: before their window, in backoff, or due.
    pub pending: u64,
    pub due: u64,
    pub overdue: u64,
    /// Ringing the agent or the citizen now.
    pub dialing: u64,
    /// How long the longest-overdue task is past its latest time.
    pub oldest_overdue_seconds: Option<f64>,
    pub level: Level,
}

impl CallbacksBoard {
    pub fn new(stats: &SchedulerStats) -> CallbacksBoard {
        let level = if stats.overdue > 0 {
            Level::Red
        } else if stats.due > 0 {
            Level::Amber
        } else {
            Level::Ok
        };
        CallbacksBoard {
            pending: stats.pending as u64,
            due: stats.due as u64,
            overdue: stats.overdue as u64,
            dialing: stats.dialing as u64,
            oldest_overdue_seconds: stats.oldest_overdue.map(|age| age.as_secs_f64()),
            level,
        }
    }
}

/// An urgent call or a complaint as it happens. `caller` must already be masked with
/// [`crate::privacy::mask_number`] (R12).
#[derive(Clone, Debug, Serialize)]
pub struct LiveItem {
    #[serde(serialize_with = "rfc3339")]
    pub at: DateTime<Utc>,
    pub queue: String,
    pub caller: String,
    pub agent: Option<String>,
}

/// One change of an agent's state, as the board saw it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StateChange {
    #[serde(serialize_with = "rfc3339")]
    pub at: DateTime<Utc>,
    pub state: String,
    pub reason: Option<String>,
    /// `Some("supervisor")` when a supervisor's action on the board caused it.
    pub by: Option<String>,
}

/// What the feed reads from the engine for one snapshot.
#[derive(Clone, Debug, Default)]
pub struct FeedInput {
    pub agents: Vec<AgentStatus>,
    pub queues: Vec<QueueStatus>,
    pub ring_budget: Duration,
    pub today: (u64, u64),
    pub rolling_24h: (u64, u64),
    /// Queue → max wait, and agent → the queues it serves, from the agents file.
    pub agents_file: Option<Arc<AgentsConfig>>,
    /// Today's urgent calls and complaints about the hotline, oldest first (callers
    /// already masked).
    pub live: Vec<LiveFact>,
    /// The callback scheduler's figures; `None` while callbacks are off.
    pub callbacks: Option<SchedulerStats>,
}

/// The pure part of the feed: turns each second's reading into a snapshot and keeps
/// every agent's state changes of the current local day.
#[derive(Debug, Default)]
pub struct BoardCore {
    history: HashMap<String, Vec<StateChange>>,
    day: Option<chrono::NaiveDate>,
}

impl BoardCore {
    pub fn new() -> BoardCore {
        BoardCore::default()
    }

    /// One reading at `now`: records state changes and returns the snapshot.
    pub fn observe<Tz: TimeZone>(
        &mut self,
        now: DateTime<Tz>,
        input: &FeedInput,
    ) -> WallboardSnapshot {
        let utc = now.with_timezone(&Utc);
        let today = now.date_naive();
        if self.day != Some(today) {
            self.history.clear();
            self.day = Some(today);
        }
        for agent in &input.agents {
            let reason = agent.reason.map(str::to_owned);
            self.note(&agent.id, utc, agent.state, reason, None);
        }
        snapshot(utc, input)
    }

    /// Records a change a supervisor made, at once (the next reading would see it a
    /// second later, without knowing who caused it).
    pub fn note_action(&mut self, at: DateTime<Utc>, agent: &AgentStatus) {
        let reason = agent.reason.map(str::to_owned);
        self.note(
            &agent.id,
            at,
            agent.state,
            reason,
            Some("supervisor".to_owned()),
        );
    }

    fn note(
        &mut self,
        agent: &str,
        at: DateTime<Utc>,
        state: &str,
        reason: Option<String>,
        by: Option<String>,
    ) {
        let changes = self.history.entry(agent.to_owned()).or_default();
        let same = changes
            .last()
            .is_some_and(|last| last.state == state && last.reason == reason);
        if same {
            return;
        }
        if changes.len() == HISTORY_PER_AGENT {
            changes.remove(0);
        }
        changes.push(StateChange {
            at,
            state: state.to_owned(),
            reason,
            by,
        });
    }

    /// The agent's state changes today, oldest first.
    pub fn history(&self, agent: &str) -> Vec<StateChange> {
        self.history.get(agent).cloned().unwrap_or_default()
    }
}

fn is_busy(state: &str) -> bool {
    matches!(state, "ringing" | "on_call" | "wrap_up")
}

/// Builds the snapshot: per-queue agent counts from who serves which queue, and the
/// red/amber levels.
fn snapshot(at: DateTime<Utc>, input: &FeedInput) -> WallboardSnapshot {
    let ring_budget = input.ring_budget.as_secs_f64();
    let file = input.agents_file.as_deref();
    let queues = input
        .queues
        .iter()
        .map(|q| {
            let spec = file.and_then(|f| f.queues.iter().find(|s| s.name == q.name));
            let serving: Vec<&AgentStatus> = input
                .agents
                .iter()
                .filter(|a| {
                    file.and_then(|f| f.agents.iter().find(|s| s.id == a.id))
                        .is_some_and(|agent| {
                            agent.queues.contains(&q.name)
                                && spec.is_none_or(|spec| {
                                    spec.required_skills.iter().all(|(skill, min)| {
                                        agent.skills.get(skill).is_some_and(|l| l >= min)
                                    })
                                })
                        })
                })
                .collect();
            let oldest = q.oldest_wait_seconds;
            let max_wait = spec.map(|s| s.max_wait.as_secs_f64());
            let over = usize::from(oldest.is_some_and(|w| w > ring_budget));
            let mut board = QueueBoard {
                name: q.name.clone(),
                depth: q.depth,
                ringing: q.ringing,
                oldest_wait_seconds: oldest,
                max_wait_seconds: max_wait,
                over_ring_budget: OverRingBudget {
                    count: over,
                    exact: over == 0,
                },
                agents_available: q.agents_available,
                agents_busy: serving.iter().filter(|a| is_busy(a.state)).count(),
                agents_paused: serving.iter().filter(|a| a.state == "paused").count(),
                level: Level::Ok,
            };
            board.level = assess(&board, ring_budget);
            board
        })
        .collect();
    WallboardSnapshot {
        at,
        ring_budget_seconds: ring_budget,
        queues,
        agents: input
            .agents
            .iter()
            .map(|a| AgentBoard {
                id: a.id.clone(),
                state: a.state.to_owned(),
                reason: a.reason.map(str::to_owned),
                seconds_in_state: a.seconds_in_state,
                registered: a.registered,
                calls_taken: a.calls_taken,
            })
            .collect(),
        connection_rate: ConnectionRateBoard {
            target: CONNECTION_RATE_TARGET,
            today: RateFigure::new(input.today.0, input.today.1),
            rolling_24h: RateFigure::new(input.rolling_24h.0, input.rolling_24h.1),
        },
        callbacks: input.callbacks.as_ref().map(CallbacksBoard::new),
        urgent: live_items(&input.live, LiveKind::Urgent),
        complaints: live_items(&input.live, LiveKind::HotlineComplaint),
    }
}

/// The facts of one kind, newest first.
fn live_items(facts: &[LiveFact], kind: LiveKind) -> Vec<LiveItem> {
    facts
        .iter()
        .rev()
        .filter(|fact| fact.kind == kind)
        .map(|fact| LiveItem {
            at: fact.at,
            queue: fact.queue.clone().unwrap_or_default(),
            caller: fact.caller.clone(),
            agent: fact.agent.clone(),
        })
        .collect()
}

/// A queue's state: red when its oldest call reached the queue's maximum wait or calls
/// wait with no agent to take them; amber when a call has waited past the ring budget.
pub fn assess(queue: &QueueBoard, ring_budget_seconds: f64) -> Level {
    let oldest = queue.oldest_wait_seconds.unwrap_or(0.0);
    let waiting = queue.depth > queue.ringing;
    if queue.max_wait_seconds.is_some_and(|max| oldest >= max)
        || (waiting && queue.agents_available == 0)
    {
        Level::Red
    } else if oldest > ring_budget_seconds {
        Level::Amber
    } else {
        Level::Ok
    }
}

/// What a supervisor may do from the board. The engine's agents service implements
/// it today; a switch core's command handle can take its place.
#[async_trait::async_trait]
pub trait SupervisorActions: Send + Sync {
    /// Pauses the agent; the agent's new status.
    async fn pause(&self, agent: &str) -> Result<AgentStatus, ActionError>;
    /// Logs the agent out; the agent's new status.
    async fn logout(&self, agent: &str) -> Result<AgentStatus, ActionError>;
}

/// Why a supervisor action was refused.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// Not possible in the agent's state, or no such agent.
    #[error("{0}")]
    Refused(String),
    /// The engine is stopping.
    #[error("the engine is stopping")]
    Stopped,
}

#[async_trait::async_trait]
impl SupervisorActions for SwitchClient {
    async fn pause(&self, agent: &str) -> Result<AgentStatus, ActionError> {
        agent_action(self, agent, AgentAction::Pause).await
    }

    async fn logout(&self, agent: &str) -> Result<AgentStatus, ActionError> {
        agent_action(self, agent, AgentAction::Logout).await
    }
}

async fn agent_action(
    switch: &SwitchClient,
    agent: &str,
    action: AgentAction,
) -> Result<AgentStatus, ActionError> {
    let command = Command::Agent {
        agent: agent.to_owned(),
        action,
    };
    match switch.ask(command).await {
        Some(Reply::Agent(Ok(status))) => Ok(status),
        Some(Reply::Agent(Err(e))) => Err(ActionError::Refused(e.to_string())),
        _ => Err(ActionError::Stopped),
    }
}

/// A snapshot as published: the value and its JSON, serialised once for every board.
#[derive(Debug)]
pub struct Published {
    pub snapshot: WallboardSnapshot,
    pub json: String,
}

impl Published {
    pub fn new(snapshot: WallboardSnapshot) -> Arc<Published> {
        let json = serde_json::to_string(&snapshot).unwrap_or_else(|e| {
            warn!(error = %e, "wallboard snapshot not serialisable");
            "{}".to_owned()
        });
        Arc::new(Published { snapshot, json })
    }
}

/// What the wallboard routes need.
#[derive(Clone)]
pub struct Board {
    /// The latest snapshot; `None` until the first one is published.
    pub snapshots: watch::Receiver<Option<Arc<Published>>>,
    pub core: Arc<Mutex<BoardCore>>,
    pub actions: Arc<dyn SupervisorActions>,
    /// Who may use the board: supervisor tokens (the API token among them).
    pub authenticator: Arc<Authenticator>,
    /// Where every supervisor action is audited before it is carried out (the work
    /// order store's append-only audit log); `None` only logs it.
    pub audit: Option<Arc<dyn WorkOrderStore>>,
}

impl Board {
    /// Audits every supervisor action in `store`'s audit log (who, what, when) before
    /// carrying it out: an action that cannot be recorded is refused (503).
    pub fn with_audit(mut self, store: Arc<dyn WorkOrderStore>) -> Board {
        self.audit = Some(store);
        self
    }
}

/// Starts the one feed task over the switch (when called inside a tokio runtime) and
/// returns what the routes need; the feed stops when the switch stops or no board route
/// is left.
pub fn start(config: Arc<Config>, switch: SwitchClient) -> Board {
    let (sender, snapshots) = watch::channel(None);
    let core = Arc::new(Mutex::new(BoardCore::new()));
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(feed(config.clone(), switch.clone(), core.clone(), sender));
    }
    Board {
        snapshots,
        core,
        actions: Arc::new(switch),
        authenticator: Arc::new(Authenticator::from_config(&config)),
        audit: None,
    }
}

/// The agents file, for each queue's maximum wait and who serves which queue: re-read
/// when it changes on disk. A file that does not load is skipped and the last good one
/// stays. An edit shows here within a second, possibly before SIGHUP applies it to the
/// ACD: the switch core, which owns the applied file, is the better source.
struct AgentsFileCache {
    config: Option<Arc<AgentsConfig>>,
    modified: Option<SystemTime>,
}

impl AgentsFileCache {
    fn refresh(&mut self, config: &Config) {
        let modified = std::fs::metadata(&config.acd.agents_file)
            .and_then(|m| m.modified())
            .ok();
        if self.config.is_some() && modified == self.modified {
            return;
        }
        self.modified = modified;
        match config.load_agents() {
            Ok(config) => {
                for queue in &config.queues {
                    crate::metrics::set_queue_max_wait(&queue.name, queue.max_wait);
                }
                self.config = Some(Arc::new(config));
            }
            Err(e) => warn!(error = %e, "wallboard keeps the last good agents file"),
        }
    }
}

fn local_midnight(now: DateTime<Local>) -> DateTime<Utc> {
    now.date_naive()
        .and_hms_opt(0, 0, 0)
        .and_then(|m| m.and_local_timezone(Local).earliest())
        .map_or(now.with_timezone(&Utc), |m| m.with_timezone(&Utc))
}

async fn feed(
    config: Arc<Config>,
    switch: SwitchClient,
    core: Arc<Mutex<BoardCore>>,
    sender: watch::Sender<Option<Arc<Published>>>,
) {
    let mut tick = tokio::time::interval(PUBLISH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut agents_file = AgentsFileCache {
        config: None,
        modified: None,
    };
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = sender.closed() => return,
        }
        let now = Local::now();
        let command = Command::Board {
            today_since: local_midnight(now),
        };
        let Some(Reply::Board {
            agents,
            queues,
            today,
            rolling_24h,
            live,
            callbacks,
        }) = switch.ask(command).await
        else {
            return;
        };
        agents_file.refresh(&config);
        let input = FeedInput {
            agents,
            queues,
            ring_budget: config.calls.ring_budget,
            today,
            rolling_24h,
            agents_file: agents_file.config.clone(),
            live,
            callbacks,
        };
        let snapshot = match core.lock() {
            Ok(mut core) => core.observe(now, &input),
            Err(_) => return,
        };
        sender.send_replace(Some(Published::new(snapshot)));
    }
}

/// The routes, given a board (another source of snapshots builds its own [`Board`]).
pub fn routes<S: Clone + Send + Sync + 'static>(board: Board) -> Router<S> {
    Router::new()
        .route("/wallboard", get(page))
        .route("/wallboard/events", get(events))
        .route("/wallboard/agents/{id}/history", get(history))
        .route("/wallboard/agents/{id}/{action}", post(act))
        .route_layer(middleware::from_fn_with_state(
            board.clone(),
            require_supervisor,
        ))
        .with_state(board)
}

/// Where a request's credential came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Credential {
    Header,
    Query,
    Cookie,
}

/// The first credential the request presents that `accept` knows, looked for in the
/// `Authorization` header, then `?token=`, then the board's cookie: where it came
/// from, the token itself (for the cookie) and what `accept` made of it.
fn credential_of<T>(
    request: &Request,
    accept: impl Fn(&str) -> Option<T>,
) -> Option<(Credential, String, T)> {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let query = request.uri().query().unwrap_or("");
    let from_query = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| percent_decode(v));
    let from_cookie = request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| percent_decode(v));
    [
        (Credential::Header, header),
        (Credential::Query, from_query),
        (Credential::Cookie, from_cookie),
    ]
    .into_iter()
    .find_map(|(source, token)| {
        let token = token?;
        let accepted = accept(&token)?;
        Some((source, token, accepted))
    })
}

/// Every byte but ASCII letters and digits as `%XX`: safe in a cookie and a query.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// R12: the board and its actions need a supervisor credential: the API token, or a
/// `[[access.tokens]]` token with the supervisor role. Another role's token is 403. The
/// holder goes into the request, so an action's audit entry names them.
async fn require_supervisor(
    State(board): State<Board>,
    mut request: Request,
    next: Next,
) -> Response {
    let found = credential_of(&request, |token| {
        board.authenticator.authenticate(token).cloned()
    });
    match found {
        Some((_, _, principal)) if principal.role != Role::Supervisor => {
            ApiError::forbidden(format!(
                "the {} role may not use the wallboard; it is for supervisors",
                principal.role
            ))
            .into_response()
        }
        Some((source, token, principal)) => {
            request.extensions_mut().insert(principal);
            let mut response = next.run(request).await;
            if source == Credential::Query {
                // Trade the token in the address for a cookie the stream and actions send.
                let cookie = format!(
                    "{COOKIE}={}; Path=/wallboard; HttpOnly; SameSite=Strict",
                    percent_encode(&token)
                );
                if let Ok(value) = header::HeaderValue::from_str(&cookie) {
                    response.headers_mut().append(header::SET_COOKIE, value);
                }
            }
            response
        }
        None if request.uri().path() == "/wallboard" => {
            (StatusCode::UNAUTHORIZED, Html(LOGIN_PAGE)).into_response()
        }
        None => ApiError::Unauthorized.into_response(),
    }
}

const LOGIN_PAGE: &str = r#"<!doctype html><html lang="zh-CN"><meta charset="utf-8"><title>大屏 · 登录</title>
<body style="font:28px sans-serif;background:#111;color:#eee;padding:2em">
<form method="get" action="/wallboard"><label>管理人员口令 <input name="token" type="password" autofocus style="font-size:28px"></label>
<button style="font-size:28px">进入</button></form></body></html>"#;

async fn page() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], Html(PAGE))
}

async fn events(State(board): State<Board>) -> impl IntoResponse {
    let mut snapshots = board.snapshots.clone();
    snapshots.mark_changed();
    let stream = futures_util::stream::unfold(snapshots, |mut snapshots| async move {
        loop {
            snapshots.changed().await.ok()?;
            let latest = snapshots.borrow_and_update().clone();
            if let Some(published) = latest {
                let event = Event::default()
                    .event("snapshot")
                    .data(published.json.as_str());
                return Some((Ok::<Event, Infallible>(event), snapshots));
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn history(State(board): State<Board>, ApiPath(id): ApiPath<String>) -> Response {
    let changes = match board.core.lock() {
        Ok(core) => core.history(&id),
        Err(_) => {
            return ApiError::Internal("the wallboard's history is unavailable".into())
                .into_response();
        }
    };
    Json(HistoryAnswer { agent: id, changes }).into_response()
}

#[derive(Serialize)]
struct HistoryAnswer {
    agent: String,
    changes: Vec<StateChange>,
}

/// Every supervisor action is written to the store's audit log before it is carried
/// out ([`Board::with_audit`]); its outcome goes to the log (target `hotline::audit`).
fn audit(by: &str, action: &str, agent: &str, outcome: &Result<AgentStatus, ActionError>) {
    match outcome {
        Ok(status) => info!(
            target: "hotline::audit",
            by,
            action,
            agent,
            state = status.state,
            "wallboard action done"
        ),
        Err(e) => info!(
            target: "hotline::audit",
            by,
            action,
            agent,
            error = %e,
            "wallboard action refused"
        ),
    }
}

async fn act(
    State(board): State<Board>,
    principal: Principal,
    ApiPath((id, action)): ApiPath<(String, String)>,
) -> Response {
    let audited = match action.as_str() {
        "pause" => AuditedRead::AgentPause,
        "logout" => AuditedRead::AgentLogout,
        _ => {
            return ApiError::NotFound(format!(
                "no wallboard action {action:?}; actions: pause, logout"
            ))
            .into_response();
        }
    };
    if let Some(store) = &board.audit {
        let entry = ReadAuditEntry {
            at: Utc::now(),
            actor: principal.name.clone(),
            read: audited,
            work_order: None,
            target: format!("agent {id}"),
        };
        if let Err(e) = store.append_read_audit(&entry).await {
            warn!(error = %e, action, agent = id, "wallboard action refused: cannot audit it");
            return ApiError::from(e).into_response();
        }
    }
    let outcome = match audited {
        AuditedRead::AgentLogout => board.actions.logout(&id).await,
        _ => board.actions.pause(&id).await,
    };
    audit(&principal.name, &action, &id, &outcome);
    match outcome {
        Ok(status) => {
            if let Ok(mut core) = board.core.lock() {
                core.note_action(Utc::now(), &status);
            }
            Json(status).into_response()
        }
        Err(ActionError::Stopped) => {
            ApiError::Unavailable("the engine is stopping".into()).into_response()
        }
        Err(e) => ApiError::Conflict(e.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::agents::AgentsConfig;

    const AGENTS: &str = r#"
[[queues]]
name = "general"
strategy = "longest_idle"
max_wait_seconds = 120
wrap_up_seconds = 0

[[queues]]
name = "complaints"
strategy = "longest_idle"
max_wait_seconds = 60
wrap_up_seconds = 0
required_skills = { complaints = 5 }

[[agents]]
id = "1001"
password = "pw1001"
queues = ["general", "complaints"]
skills = { complaints = 7 }

[[agents]]
id = "1002"
password = "pw1002"
queues = ["general", "complaints"]
skills = { complaints = 2 }
"#;

    fn agent(id: &str, state: &'static str, reason: Option<&'static str>) -> AgentStatus {
        AgentStatus {
            id: id.to_owned(),
            state,
            reason,
            seconds_in_state: Some(3),
            registered: true,
            calls_taken: 0,
        }
    }

    fn queue(name: &str, depth: usize, oldest: Option<f64>, available: usize) -> QueueStatus {
        QueueStatus {
            name: name.to_owned(),
            depth,
            ringing: 0,
            oldest_wait_seconds: oldest,
            agents_available: available,
        }
    }

    fn input(agents: Vec<AgentStatus>, queues: Vec<QueueStatus>) -> FeedInput {
        let file = AgentsConfig::parse(std::path::Path::new("agents.toml"), AGENTS).unwrap();
        FeedInput {
            agents,
            queues,
            ring_budget: Duration::from_secs(10),
            today: (100, 96),
            rolling_24h: (1000, 940),
            agents_file: Some(Arc::new(file)),
            live: Vec::new(),
            callbacks: None,
        }
    }

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, m, s).unwrap()
    }

    #[test]
    fn queues_count_only_the_agents_skilled_for_them() {
        let mut core = BoardCore::new();
        let snap = core.observe(
            at(9, 0, 0),
            &input(
                vec![
                    agent("1001", "on_call", None),
                    agent("1002", "paused", Some("break")),
                ],
                vec![
                    queue("general", 0, None, 0),
                    queue("complaints", 0, None, 0),
                ],
            ),
        );
        let general = &snap.queues[0];
        assert_eq!((general.agents_busy, general.agents_paused), (1, 1));
        let complaints = &snap.queues[1];
        assert_eq!((complaints.agents_busy, complaints.agents_paused), (1, 0));
        assert_eq!(general.max_wait_seconds, Some(120.0));
    }

    #[test]
    fn waits_past_the_ring_budget_are_amber_and_past_the_maximum_red() {
        let mut core = BoardCore::new();
        let snap = core.observe(
            at(9, 0, 0),
            &input(
                vec![],
                vec![
                    queue("general", 2, Some(11.0), 1),
                    queue("complaints", 1, Some(61.0), 1),
                ],
            ),
        );
        assert_eq!(snap.queues[0].level, Level::Amber);
        assert_eq!(
            snap.queues[0].over_ring_budget,
            OverRingBudget {
                count: 1,
                exact: false
            }
        );
        assert_eq!(snap.queues[1].level, Level::Red);
        let quiet = core.observe(
            at(9, 0, 1),
            &input(vec![], vec![queue("general", 1, Some(3.0), 1)]),
        );
        assert_eq!(quiet.queues[0].level, Level::Ok);
        assert!(quiet.queues[0].over_ring_budget.exact);
    }

    #[test]
    fn calls_waiting_with_no_agent_free_are_red() {
        let mut core = BoardCore::new();
        let snap = core.observe(
            at(9, 0, 0),
            &input(vec![], vec![queue("general", 1, Some(1.0), 0)]),
        );
        assert_eq!(snap.queues[0].level, Level::Red);
    }

    #[test]
    fn connection_rate_is_red_under_95_and_amber_under_96_r5() {
        assert_eq!(RateFigure::new(100, 94).level, Level::Red);
        assert_eq!(RateFigure::new(1000, 955).level, Level::Amber);
        assert_eq!(RateFigure::new(100, 96).level, Level::Ok);
        let idle = RateFigure::new(0, 0);
        assert_eq!((idle.rate, idle.level), (None, Level::Ok));
        let snap = BoardCore::new().observe(at(9, 0, 0), &input(vec![], vec![]));
        assert_eq!(snap.connection_rate.rolling_24h.level, Level::Red);
        assert_eq!(snap.connection_rate.today.rate, Some(0.96));
    }

    #[test]
    fn callbacks_off_show_as_not_configured_and_nothing_is_made_up() {
        let snap = BoardCore::new().observe(at(9, 0, 0), &input(vec![], vec![]));
        assert!(snap.callbacks.is_none());
        assert!(snap.urgent.is_empty() && snap.complaints.is_empty());
        let json = serde_json::to_string(&snap).unwrap();
        assert!(json.contains("\"callbacks\":null"), "{json}");
    }

    /// R20: the scheduler's figures reach the board as they are; an overdue callback is
    /// red whatever else, a due one amber, none waiting ok.
    #[test]
    fn callbacks_show_the_scheduler_figures_red_when_overdue_amber_when_due_r20() {
        let board = |stats: SchedulerStats| {
            let mut feed = input(vec![], vec![]);
            feed.callbacks = Some(stats);
            BoardCore::new()
                .observe(at(9, 0, 0), &feed)
                .callbacks
                .expect("callbacks are on")
        };
        let idle = board(SchedulerStats::default());
        assert_eq!(
            idle,
            CallbacksBoard {
                pending: 0,
                due: 0,
                overdue: 0,
                dialing: 0,
                oldest_overdue_seconds: None,
                level: Level::Ok,
            }
        );
        let waiting = board(SchedulerStats {
            pending: 3,
            dialing: 1,
            ..SchedulerStats::default()
        });
        assert_eq!((waiting.pending, waiting.dialing), (3, 1));
        assert_eq!(waiting.level, Level::Ok, "not yet due: nothing to see");
        let due = board(SchedulerStats {
            pending: 3,
            due: 2,
            ..SchedulerStats::default()
        });
        assert_eq!((due.due, due.overdue, due.level), (2, 0, Level::Amber));
        let overdue = board(SchedulerStats {
            pending: 3,
            due: 2,
            overdue: 1,
            dialing: 1,
            connected: 1,
            oldest_overdue: Some(Duration::from_secs(1200)),
        });
        assert_eq!(
            overdue,
            CallbacksBoard {
                pending: 3,
                due: 2,
                overdue: 1,
                dialing: 1,
                oldest_overdue_seconds: Some(1200.0),
                level: Level::Red,
            }
        );
        let mut feed = input(vec![], vec![]);
        feed.callbacks = Some(SchedulerStats {
            overdue: 1,
            oldest_overdue: Some(Duration::from_secs(90)),
            ..SchedulerStats::default()
        });
        let json = serde_json::to_string(&BoardCore::new().observe(at(9, 0, 0), &feed)).unwrap();
        assert!(
            json.contains("\"overdue\":1") && json.contains("\"oldest_overdue_seconds\":90.0"),
            "{json}"
        );
        assert!(json.contains("\"level\":\"red\""), "{json}");
    }

    /// R11, R15: urgent calls and complaints about the hotline appear as they happen,
    /// newest first, each in its own list, with the caller as the switch masked it.
    #[test]
    fn urgent_calls_and_hotline_complaints_are_listed_newest_first() {
        let fact = |minute, kind, queue: Option<&str>, agent: Option<&str>| LiveFact {
            at: at(9, minute, 0),
            kind,
            work_order: crate::workorder::WorkOrderId::from_parts(at(9, minute, 0), minute.into()),
            queue: queue.map(str::to_owned),
            caller: "138****5678".into(),
            agent: agent.map(str::to_owned),
        };
        let mut feed = input(vec![], vec![]);
        feed.live = vec![
            fact(1, LiveKind::Urgent, Some("general"), Some("1001")),
            fact(2, LiveKind::HotlineComplaint, Some("complaints"), None),
            fact(3, LiveKind::Urgent, None, None),
        ];
        let snap = BoardCore::new().observe(at(9, 5, 0), &feed);
        let urgent: Vec<_> = snap
            .urgent
            .iter()
            .map(|i| (i.at, i.queue.as_str()))
            .collect();
        assert_eq!(urgent, [(at(9, 3, 0), ""), (at(9, 1, 0), "general")]);
        assert_eq!(snap.urgent[1].agent.as_deref(), Some("1001"));
        assert_eq!(snap.complaints.len(), 1);
        assert_eq!(snap.complaints[0].queue, "complaints");
        let json = serde_json::to_string(&snap).unwrap();
        assert!(
            json.contains("138****5678") && !json.contains("13812345678"),
            "{json}"
        );
    }

    #[test]
    fn history_keeps_each_change_once_marks_supervisor_actions_and_resets_at_midnight() {
        let mut core = BoardCore::new();
        let agents = |state| input(vec![agent("1001", state, None)], vec![]);
        core.observe(at(9, 0, 0), &agents("available"));
        core.observe(at(9, 0, 1), &agents("available"));
        core.note_action(at(9, 0, 2), &agent("1001", "paused", Some("break")));
        core.observe(
            at(9, 0, 3),
            &input(vec![agent("1001", "paused", Some("break"))], vec![]),
        );
        let history = core.history("1001");
        assert_eq!(history.len(), 2, "{history:?}");
        assert_eq!(history[1].by.as_deref(), Some("supervisor"));
        assert_eq!(history[1].reason.as_deref(), Some("break"));
        core.observe(
            at(9, 0, 0) + chrono::Duration::days(1),
            &agents("available"),
        );
        assert_eq!(core.history("1001").len(), 1);
    }

    #[test]
    fn the_token_is_accepted_from_header_query_or_cookie() {
        let request = |uri: &str, header: Option<(&str, &str)>| {
            let mut builder = axum::http::Request::builder().uri(uri);
            if let Some((k, v)) = header {
                builder = builder.header(k, v);
            }
            builder.body(axum::body::Body::empty()).unwrap()
        };
        let token = "s3cret+token";
        let source = |request: &Request| {
            credential_of(request, |given| (given == token).then_some(())).map(
                |(source, given, ())| {
                    assert_eq!(given, token);
                    source
                },
            )
        };
        assert_eq!(
            source(&request(
                "/wallboard",
                Some(("authorization", "Bearer s3cret+token"))
            )),
            Some(Credential::Header)
        );
        assert_eq!(
            source(&request("/wallboard?x=1&token=s3cret%2Btoken", None)),
            Some(Credential::Query)
        );
        assert_eq!(
            source(&request(
                "/wallboard/events",
                Some(("cookie", "a=b; hotline_wallboard=s3cret%2Btoken"))
            )),
            Some(Credential::Cookie)
        );
        assert_eq!(source(&request("/wallboard?token=wrong", None)), None);
        assert_eq!(source(&request("/wallboard", None)), None);
    }
}
