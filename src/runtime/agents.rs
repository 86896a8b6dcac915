//! The agents actor (I/O driver): one task owning the ACD core, the registrar and the
//! digest authenticator, so an agent's registration, state and calls change in one
//! place, in order. Calls talk to it through [`AgentsHandle`]; it answers REGISTERs
//! through the endpoint, tells calls which agent to ring, and publishes the queue and
//! agent gauges (R30).

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use super::endpoint::EndpointCommand;
use crate::acd::{
    Acd, AcdAction, AcdConfig, AcdError, AgentConfig, AgentState, AgentView, CancelReason,
    OfferFailure, Overflow, PauseReason, QueueConfig, QueueStats, Strategy,
};
use crate::call::agent_leg::AgentTarget;
use crate::call::core::AgentLegFailure;
use crate::call::driver::CallEvent;
use crate::config::agents::{AgentsConfig, OverflowTarget, StrategyName};
use crate::metrics::{AgentStateLabel, OfferResult};
use crate::sip::TransportKind;
use crate::sip::auth_guard::{self, AuthGuard, Verdict};
use crate::sip::digest::{self, AuthOutcome, Credential, DigestAuthenticator};
use crate::sip::message::{self, Header, Request, StatusCode, Uri};
use crate::sip::registrar::{RegisterOutcome, RegisterRequest, Registrar, RegistrarEvent};
use crate::sip::transaction::TransactionKey;

pub use crate::acd::CallKey;

/// Commands queued for the actor. Policy when full: senders wait; the actor never
/// waits on them (calls get events with `try_send`), so this cannot deadlock.
const COMMAND_QUEUE: usize = 1024;
/// How often queue depth, oldest wait and agent counts are published.
const GAUGE_INTERVAL: Duration = Duration::from_secs(1);

/// What a call tells the ACD about its offer or its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallReport {
    Answered {
        agent: String,
    },
    OfferFailed {
        agent: String,
        failure: AgentLegFailure,
    },
    /// The caller left while waiting (or the call could not go on).
    Abandoned,
    /// The connected call is over: the agent goes to wrap-up.
    Ended,
}

/// A change of an agent's state asked through the API or a feature code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentRequest {
    Login,
    Logout,
    Pause,
    Resume,
}

/// Why an agent request was refused.
#[derive(Debug, thiserror::Error)]
pub enum AgentsError {
    #[error(transparent)]
    Acd(#[from] AcdError),
    /// The registrar's limits are inconsistent (the config check should have caught it).
    #[error("registrar: {0}")]
    Registrar(String),
    /// The actor is gone (the engine is stopping).
    #[error("the agents service is stopped")]
    Stopped,
}

/// An agent as the API shows it: the agent number, never a name (R12).
#[derive(Clone, Debug, serde::Serialize)]
pub struct AgentStatus {
    pub id: String,
    pub state: &'static str,
    /// Why paused, if paused.
    pub reason: Option<&'static str>,
    /// Seconds in the current state.
    pub seconds_in_state: Option<u64>,
    pub registered: bool,
    pub calls_taken: u64,
}

/// A queue as the API shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct QueueStatus {
    pub name: String,
    pub depth: usize,
    pub ringing: usize,
    pub oldest_wait_seconds: Option<f64>,
    pub agents_available: usize,
}

enum Command {
    Enqueue {
        call: CallKey,
        queue: String,
        priority: u8,
        events: mpsc::Sender<CallEvent>,
    },
    Report {
        call: CallKey,
        report: CallReport,
    },
    Position {
        call: CallKey,
        reply: oneshot::Sender<Option<usize>>,
    },
    Register {
        request: Box<Request>,
        key: TransactionKey,
        source: std::net::SocketAddr,
        transport: TransportKind,
    },
    Authenticate {
        request: Box<Request>,
        reply: oneshot::Sender<Result<String, Vec<String>>>,
    },
    Agent {
        agent: String,
        request: AgentRequest,
        reply: oneshot::Sender<Result<AgentStatus, AgentsError>>,
    },
    Agents {
        reply: oneshot::Sender<(Vec<AgentStatus>, Vec<QueueStatus>)>,
    },
    Reload {
        config: Box<AgentsConfig>,
        reply: oneshot::Sender<Result<(), AgentsError>>,
    },
}

/// The calls' and the API's way to the actor.
#[derive(Clone)]
pub struct AgentsHandle {
    commands: mpsc::Sender<Command>,
}

impl AgentsHandle {
    /// Queues a call; its events (offers, withdrawals, overflow) go to `events`.
    pub async fn enqueue(
        &self,
        call: CallKey,
        queue: String,
        priority: u8,
        events: mpsc::Sender<CallEvent>,
    ) {
        let _ = self
            .commands
            .send(Command::Enqueue {
                call,
                queue,
                priority,
                events,
            })
            .await;
    }

    pub async fn report(&self, call: CallKey, report: CallReport) {
        let _ = self.commands.send(Command::Report { call, report }).await;
    }

    /// The call's 1-based place in its queue, `None` once an agent is ringing.
    pub async fn position(&self, call: CallKey) -> Option<usize> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Position { call, reply })
            .await
            .ok()?;
        answer.await.ok().flatten()
    }

    /// A REGISTER from a softphone; the actor answers it through the endpoint. Never
    /// waits: when the actor is this far behind the REGISTER is dropped, and the phone
    /// retransmits it (UDP) or retries its registration.
    pub fn try_register(
        &self,
        request: Request,
        key: TransactionKey,
        source: std::net::SocketAddr,
        transport: TransportKind,
    ) -> bool {
        self.commands
            .try_send(Command::Register {
                request: Box::new(request),
                key,
                source,
                transport,
            })
            .is_ok()
    }

    /// Checks an agent's digest credentials on a request (a feature-code INVITE): the
    /// agent number, or the challenges to send in a `401`.
    pub async fn authenticate(&self, request: Request) -> Result<String, Vec<String>> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Authenticate {
            request: Box::new(request),
            reply,
        };
        if self.commands.send(command).await.is_err() {
            return Err(vec![]);
        }
        answer.await.unwrap_or(Err(vec![]))
    }

    pub async fn agent_request(
        &self,
        agent: &str,
        request: AgentRequest,
    ) -> Result<AgentStatus, AgentsError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Agent {
                agent: agent.to_owned(),
                request,
                reply,
            })
            .await
            .map_err(|_| AgentsError::Stopped)?;
        answer.await.map_err(|_| AgentsError::Stopped)?
    }

    pub async fn status(&self) -> Option<(Vec<AgentStatus>, Vec<QueueStatus>)> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Agents { reply }).await.ok()?;
        answer.await.ok()
    }

    /// Applies a new agents file; calls and agents' states are kept.
    pub async fn reload(&self, config: AgentsConfig) -> Result<(), AgentsError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Reload {
                config: Box::new(config),
                reply,
            })
            .await
            .map_err(|_| AgentsError::Stopped)?;
        answer.await.map_err(|_| AgentsError::Stopped)?
    }
}

/// The ACD's view of the agents file.
pub fn acd_config(agents: &AgentsConfig, ring_timeout: Duration) -> AcdConfig {
    AcdConfig {
        queues: agents
            .queues
            .iter()
            .map(|q| QueueConfig {
                name: q.name.clone(),
                required_skills: q.required_skills.clone(),
                strategy: match q.strategy {
                    StrategyName::LongestIdle => Strategy::LongestIdle,
                    StrategyName::RoundRobin => Strategy::RoundRobin,
                    StrategyName::FewestCalls => Strategy::FewestCalls,
                    StrategyName::SkillsWeighted => Strategy::SkillsWeighted,
                },
                max_wait: q.max_wait,
                overflow: q.overflow.as_ref().map(|o| match o {
                    OverflowTarget::Queue(name) => Overflow::Queue(name.clone()),
                    OverflowTarget::Dialplan(step) => Overflow::Dialplan(step.clone()),
                }),
                wrap_up: q.wrap_up,
            })
            .collect(),
        agents: agents
            .agents
            .iter()
            .map(|a| AgentConfig {
                id: a.id.clone(),
                skills: a.skills.clone(),
                queues: a.queues.clone(),
                penalty: a.penalty,
            })
            .collect(),
        agent_ring_timeout: ring_timeout,
    }
}

/// Everything the actor owns.
pub struct AgentsActor {
    inbox: mpsc::Receiver<Command>,
    acd: Acd,
    registrar: Registrar,
    digest: DigestAuthenticator,
    /// Failed-authentication throttle of REGISTER (issue 9 row 4).
    guard: AuthGuard,
    passwords: HashMap<String, String>,
    /// Each queued call's event queue.
    calls: HashMap<CallKey, (mpsc::Sender<CallEvent>, String)>,
    endpoint: mpsc::Sender<EndpointCommand>,
    ring_timeout: Duration,
}

impl AgentsActor {
    pub fn new(
        agents: &AgentsConfig,
        settings: &crate::config::Config,
        endpoint: mpsc::Sender<EndpointCommand>,
    ) -> Result<(AgentsActor, AgentsHandle), AgentsError> {
        let ring_timeout = settings.acd.agent_ring_timeout;
        let acd = Acd::new(acd_config(agents, ring_timeout))?;
        let reg = &settings.registrar;
        let registrar = Registrar::new(reg.default_expires, reg.min_expires, reg.max_expires)
            .map_err(|e| AgentsError::Registrar(e.to_string()))?;
        // A fresh secret per start: nonces from before a restart are answered `stale`,
        // which phones retry without asking their user.
        let digest =
            DigestAuthenticator::new(reg.realm.clone(), rand::random(), reg.nonce_lifetime)
                .with_offered_algorithms(reg.digest_algorithms.clone())
                .with_rfc2069_allowed(settings.security.digest_allow_rfc2069);
        let guard = AuthGuard::new(settings.security.guard_settings());
        metrics::describe_counter!(
            auth_guard::AUTH_FAILURES_TOTAL,
            "Failed digest authentications of REGISTER, by reason (security log: auth_failed)."
        );
        metrics::describe_counter!(
            auth_guard::AUTH_THROTTLED_TOTAL,
            "REGISTERs refused 403 unverified while their source or user backs off, by scope."
        );
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let actor = AgentsActor {
            inbox: rx,
            acd,
            registrar,
            digest,
            guard,
            passwords: passwords(agents),
            calls: HashMap::new(),
            endpoint,
            ring_timeout,
        };
        Ok((actor, AgentsHandle { commands: tx }))
    }
}

fn passwords(agents: &AgentsConfig) -> HashMap<String, String> {
    agents
        .agents
        .iter()
        .map(|a| (a.id.clone(), a.password.clone()))
        .collect()
}

impl AgentsActor {
    /// Runs until `stop` turns true.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut gauges = tokio::time::interval(GAUGE_INTERVAL);
        loop {
            let deadline = [self.acd.poll_timeout(), self.registrar.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            let timer = async move {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                command = self.inbox.recv() => match command {
                    Some(command) => self.handle(command).await,
                    None => return,
                },
                _ = timer => {
                    let now = Instant::now();
                    self.registrar.handle_timeout(now);
                    self.acd.handle_timeout(now);
                }
                _ = gauges.tick() => self.publish_gauges(),
                _ = async { let _ = stop.wait_for(|s| *s).await; } => return,
            }
            self.drain();
        }
    }

    async fn handle(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Enqueue {
                call,
                queue,
                priority,
                events,
            } => {
                if let Err(e) = self.acd.enqueue(now, call, &queue, priority) {
                    warn!(error = %e, queue, "call not queued");
                    return;
                }
                self.calls.insert(call, (events, queue));
            }
            Command::Report { call, report } => self.on_report(now, call, report),
            Command::Position { call, reply } => {
                let _ = reply.send(self.acd.position(call));
            }
            Command::Register {
                request,
                key,
                source,
                transport,
            } => {
                self.on_register(now, *request, key, source, transport)
                    .await
            }
            Command::Authenticate { request, reply } => {
                let _ = reply.send(
                    self.authenticate(&request, None)
                        .map_err(|(challenges, _)| challenges),
                );
            }
            Command::Agent {
                agent,
                request,
                reply,
            } => {
                let result = match request {
                    AgentRequest::Login => self.acd.login(now, &agent),
                    AgentRequest::Logout => self.acd.logout(now, &agent),
                    AgentRequest::Pause => self.acd.pause(now, &agent, PauseReason::Break),
                    AgentRequest::Resume => self.acd.resume(now, &agent),
                };
                let answer = result.map_err(AgentsError::from).and_then(|()| {
                    self.status_of(&agent, now).ok_or_else(|| {
                        AcdError::UnknownAgent {
                            agent: agent.clone(),
                        }
                        .into()
                    })
                });
                if answer.is_ok() {
                    info!(agent, ?request, "agent state changed");
                }
                let _ = reply.send(answer);
            }
            Command::Agents { reply } => {
                let agents = self
                    .acd
                    .agent_ids()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
                    .iter()
                    .filter_map(|id| self.status_of(id, now))
                    .collect();
                let queues = self
                    .acd
                    .queue_stats(now)
                    .into_iter()
                    .map(queue_status)
                    .collect();
                let _ = reply.send((agents, queues));
            }
            Command::Reload { config, reply } => {
                let result = self
                    .acd
                    .reload(now, acd_config(&config, self.ring_timeout))
                    .map_err(AgentsError::from);
                if result.is_ok() {
                    self.passwords = passwords(&config);
                    info!(
                        agents = config.agents.len(),
                        queues = config.queues.len(),
                        "agents reloaded"
                    );
                }
                let _ = reply.send(result);
            }
        }
    }

    fn status_of(&self, agent: &str, now: Instant) -> Option<AgentStatus> {
        let view: AgentView = self.acd.agent(agent)?;
        Some(AgentStatus {
            id: view.id,
            state: match view.state {
                AgentState::Reserved { .. } => "ringing",
                other => other.as_str(),
            },
            reason: match view.state {
                AgentState::Paused { reason } => Some(reason.as_str()),
                _ => None,
            },
            seconds_in_state: view
                .since
                .map(|s| now.saturating_duration_since(s).as_secs()),
            registered: view.registered,
            calls_taken: view.calls_taken,
        })
    }

    fn on_report(&mut self, now: Instant, call: CallKey, report: CallReport) {
        let queue = self
            .calls
            .get(&call)
            .map(|(_, q)| q.clone())
            .unwrap_or_default();
        let result = match report {
            CallReport::Answered { agent } => {
                crate::metrics::count_offer_result(&queue, OfferResult::Answered);
                self.acd.offer_answered(now, call, &agent)
            }
            CallReport::OfferFailed { agent, failure } => {
                let (why, result) = match failure {
                    AgentLegFailure::Refused => (OfferFailure::Refused, OfferResult::Refused),
                    AgentLegFailure::Unreachable => {
                        (OfferFailure::Unreachable, OfferResult::Unreachable)
                    }
                };
                crate::metrics::count_offer_result(&queue, result);
                self.acd.offer_failed(now, call, &agent, why)
            }
            CallReport::Abandoned => {
                self.acd.abandon(now, call);
                self.calls.remove(&call);
                Ok(())
            }
            CallReport::Ended => {
                self.calls.remove(&call);
                self.acd.call_ended(now, call)
            }
        };
        if let Err(e) = result {
            // A report racing the ACD's own decision (an answer after the ring timeout
            // withdrew the offer) is refused here; the call hangs that leg up itself.
            debug!(error = %e, call, "call report refused by the ACD");
        }
    }

    /// REGISTER (RFC 3261 §10.3): digest first, then the registrar.
    async fn on_register(
        &mut self,
        now: Instant,
        request: Request,
        key: TransactionKey,
        source: std::net::SocketAddr,
        transport: TransportKind,
    ) {
        let claimed = digest::claimed_username(&request);
        if let Verdict::Throttled { retry_after, scope } =
            self.guard.check(now, source.ip(), claimed.as_deref())
        {
            warn!(
                "{}",
                auth_guard::auth_throttled_line(
                    source.ip(),
                    claimed.as_deref(),
                    scope,
                    retry_after
                )
            );
            metrics::counter!(auth_guard::AUTH_THROTTLED_TOTAL, "scope" => scope.label())
                .increment(1);
            let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            let headers = vec![message::make_header("Retry-After", seconds.to_string())];
            return self
                .respond(&key, &request, StatusCode::Forbidden, headers)
                .await;
        }
        let user = match self.authenticate(&request, Some(source)) {
            Ok(user) => {
                self.guard.record_success(source.ip(), &user);
                user
            }
            Err((challenges, status)) => {
                let headers = challenges
                    .into_iter()
                    .map(|c| message::make_header("WWW-Authenticate", c))
                    .collect();
                return self.respond(&key, &request, status, headers).await;
            }
        };
        let register = match RegisterRequest::from_request(&request, source, transport) {
            Ok(r) => r,
            Err(e) => {
                debug!(error = %e, "bad REGISTER");
                return self
                    .respond(&key, &request, StatusCode::BadRequest, vec![])
                    .await;
            }
        };
        // An agent registers only its own number (R29): the credentials name the AOR.
        if register.aor != user {
            self.record_auth_failure(now, source, Some(&user), "wrong_aor");
            return self
                .respond(&key, &request, StatusCode::Forbidden, vec![])
                .await;
        }
        let outcome = self.registrar.register(now, register);
        let (status, headers) = match outcome {
            RegisterOutcome::Ok { bindings, .. }
            | RegisterOutcome::Current { bindings }
            | RegisterOutcome::Removed { bindings } => (
                StatusCode::OK,
                bindings
                    .iter()
                    .map(|b| message::make_header("Contact", b.contact_value(now)))
                    .collect(),
            ),
            RegisterOutcome::IntervalTooBrief { min_expires } => (
                StatusCode::IntervalTooBrief,
                vec![message::make_header(
                    "Min-Expires",
                    min_expires.as_secs().to_string(),
                )],
            ),
            RegisterOutcome::OutOfOrder => (StatusCode::ServerInternalError, vec![]),
            RegisterOutcome::BadRequest(e) => {
                debug!(error = %e, "bad REGISTER");
                (StatusCode::BadRequest, vec![])
            }
        };
        self.respond(&key, &request, status, headers).await;
    }

    /// The agent number whose password answered the challenge, or the challenges to send.
    /// With the request's `source` (REGISTER), nonces are sealed to it and failures
    /// count in the throttle and the security log.
    fn authenticate(
        &mut self,
        request: &Request,
        source: Option<std::net::SocketAddr>,
    ) -> Result<String, (Vec<String>, StatusCode)> {
        let lookup = |user: &str| {
            self.passwords
                .get(user)
                .map(|p| Credential::Password(p.clone()))
        };
        let outcome = match source {
            Some(source) => {
                self.digest
                    .verify_request_from(SystemTime::now(), source, request, lookup)
            }
            None => self
                .digest
                .verify_request(SystemTime::now(), request, lookup),
        };
        let challenges = |stale: bool| match source {
            Some(source) => self.digest.challenges_for(SystemTime::now(), source, stale),
            None => self.digest.challenges(SystemTime::now(), stale),
        };
        match outcome {
            AuthOutcome::Authenticated { username } => Ok(username),
            AuthOutcome::Stale => Err((challenges(true), StatusCode::Unauthorized)),
            AuthOutcome::Invalid(e) => {
                let challenges = challenges(false);
                match source {
                    Some(source) => {
                        let claimed = digest::claimed_username(request);
                        self.record_auth_failure(
                            Instant::now(),
                            source,
                            claimed.as_deref(),
                            e.reason(),
                        );
                    }
                    // Logged without the user name's password, never the caller's number.
                    None => info!(error = %e, "digest authentication failed"),
                }
                Err((challenges, StatusCode::Unauthorized))
            }
            AuthOutcome::Missing => Err((challenges(false), StatusCode::Unauthorized)),
        }
    }

    /// One failed authentication: the throttle, the metric and the security log line.
    fn record_auth_failure(
        &mut self,
        now: Instant,
        source: std::net::SocketAddr,
        user: Option<&str>,
        reason: &'static str,
    ) {
        self.guard.record_failure(now, source.ip(), user);
        metrics::counter!(auth_guard::AUTH_FAILURES_TOTAL, "reason" => reason).increment(1);
        warn!(
            "{}",
            auth_guard::auth_failed_line(source.ip(), user, reason)
        );
    }

    async fn respond(
        &self,
        key: &TransactionKey,
        request: &Request,
        status: StatusCode,
        headers: Vec<Header>,
    ) {
        let code = u16::from(status.clone());
        let response =
            message::build_response(request, status, Some(&message::new_tag()), headers, None);
        let _ = self
            .endpoint
            .send(EndpointCommand::Respond {
                key: key.clone(),
                status: code,
                payload: Bytes::from(response.to_string()),
            })
            .await;
    }

    /// Carries out what the registrar and the ACD decided.
    fn drain(&mut self) {
        let now = Instant::now();
        while let Some(event) = self.registrar.poll_event() {
            let (aor, registered) = match &event {
                RegistrarEvent::Registered { aor } => (aor.clone(), true),
                RegistrarEvent::Unregistered { aor, reason } => {
                    info!(agent = %aor, ?reason, "agent's phone unregistered");
                    (aor.clone(), false)
                }
            };
            if let Err(e) = self.acd.set_registered(now, &aor, registered) {
                debug!(error = %e, agent = %aor, "registration for an agent the ACD does not know");
            }
        }
        while let Some(action) = self.acd.poll_action() {
            match action {
                AcdAction::Offer { call, agent } => self.offer(now, call, agent),
                AcdAction::CancelOffer {
                    call,
                    agent,
                    reason,
                } => {
                    let queue = self
                        .calls
                        .get(&call)
                        .map(|(_, q)| q.clone())
                        .unwrap_or_default();
                    if reason == CancelReason::NoAnswer {
                        crate::metrics::count_offer_result(&queue, OfferResult::NoAnswer);
                        info!(agent, "agent did not answer in time: redirecting the call");
                    }
                    if reason == CancelReason::CallerGone {
                        crate::metrics::count_offer_result(&queue, OfferResult::CallerGone);
                    }
                    self.tell(call, CallEvent::OfferWithdrawn { agent });
                }
                AcdAction::Overflow { call, target } => match target {
                    Overflow::Queue(queue) => {
                        info!(call, queue, "call overflowed to another queue");
                        if let Some(entry) = self.calls.get_mut(&call) {
                            entry.1 = queue;
                        }
                    }
                    Overflow::Dialplan(step) => {
                        self.tell(call, CallEvent::Overflowed { step });
                        self.calls.remove(&call);
                    }
                },
                AcdAction::Connected { call, agent } => debug!(call, agent, "connected"),
                AcdAction::AgentStateChanged { agent, state } => {
                    debug!(agent, state = state.as_str(), "agent state")
                }
            }
        }
    }

    /// Sends an offer to the call, with where the agent's phone is registered.
    fn offer(&mut self, now: Instant, call: CallKey, agent: String) {
        let target = self.registrar.lookup(&agent).and_then(|binding| {
            Some(AgentTarget {
                contact: Uri::try_from(binding.contact.as_str()).ok()?,
                destination: binding.source,
                transport: binding.transport,
            })
        });
        match target {
            Some(target) => self.tell(call, CallEvent::AgentOffered { agent, target }),
            None => {
                warn!(agent, "offered agent has no usable registration");
                if let Err(e) = self
                    .acd
                    .offer_failed(now, call, &agent, OfferFailure::Unreachable)
                {
                    debug!(error = %e, "offer failure refused");
                }
            }
        }
    }

    fn tell(&self, call: CallKey, event: CallEvent) {
        if let Some((events, _)) = self.calls.get(&call)
            && events.try_send(event).is_err()
        {
            warn!(call, "call not taking ACD events; event dropped");
        }
    }

    fn publish_gauges(&self) {
        let now = Instant::now();
        for stats in self.acd.queue_stats(now) {
            crate::metrics::set_queue_gauges(&stats.name, stats.depth, stats.oldest_wait);
        }
        let counts = self.acd.agent_counts();
        crate::metrics::set_agent_counts(&[
            (AgentStateLabel::LoggedOut, counts.logged_out),
            (AgentStateLabel::Available, counts.available),
            (AgentStateLabel::Ringing, counts.reserved),
            (AgentStateLabel::OnCall, counts.on_call),
            (AgentStateLabel::WrapUp, counts.wrap_up),
            (AgentStateLabel::Paused, counts.paused),
        ]);
    }
}

fn queue_status(stats: QueueStats) -> QueueStatus {
    QueueStatus {
        name: stats.name,
        depth: stats.depth,
        ringing: stats.ringing,
        oldest_wait_seconds: stats.oldest_wait.map(|w| w.as_secs_f64()),
        agents_available: stats.agents_available,
    }
}
