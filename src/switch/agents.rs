//! Agents (pure): REGISTER with digest authentication (RFC 3261 §10.3, R29), the
//! registrar's bindings telling the ACD which phones can ring, the ACD's actions turned
//! into what calls do, and agent commands from the API and feature codes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::call::CallInput;
use super::uac_leg::UacTarget;
use super::{AgentAction, AgentStatus, CommandError, QueueStatus, StoreWrite, Switch};
use crate::acd::{
    AcdAction, AcdConfig, AgentConfig, AgentState, AgentView, CancelReason, OfferFailure, Overflow,
    PauseReason, QueueConfig, QueueStats, Strategy,
};
use crate::config::agents::{AgentsConfig, OverflowTarget, StrategyName};
use crate::metrics::OfferResult;
use crate::sip::TransportKind;
use crate::sip::auth_guard::{self, Verdict};
use crate::sip::digest::{self, AuthOutcome, Credential};
use crate::sip::message::{self, Request, Uri};
use crate::sip::registrar::{RegisterOutcome, RegisterRequest, RegistrarEvent};
use crate::sip::transaction::TransactionKey;

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

pub fn passwords(agents: &AgentsConfig) -> HashMap<String, String> {
    agents
        .agents
        .iter()
        .map(|a| (a.id.clone(), a.password.clone()))
        .collect()
}

/// What digest authentication decided about a request.
pub(super) enum Authenticated {
    Agent(String),
    /// Send these challenges in a `401`.
    Challenge(Vec<String>),
}

impl Switch {
    /// The agent number whose password answered the challenge, or the challenges. Nonces
    /// are sealed to the request's `source` (an answer replayed from elsewhere gets a
    /// fresh challenge), and failures count in the throttle and the security log.
    pub(super) fn authenticate(
        &mut self,
        now: Instant,
        source: SocketAddr,
        request: &Request,
    ) -> Authenticated {
        let at = self.system_time(now);
        let outcome = self
            .digest
            .verify_request_from(at, source, request, |user| {
                self.passwords
                    .get(user)
                    .map(|p| Credential::Password(p.clone()))
            });
        match outcome {
            AuthOutcome::Authenticated { username } => {
                self.auth_guard.record_success(source.ip(), &username);
                Authenticated::Agent(username)
            }
            AuthOutcome::Stale => {
                Authenticated::Challenge(self.digest.challenges_for(at, source, true))
            }
            AuthOutcome::Invalid(e) => {
                let claimed = digest::claimed_username(request);
                self.record_auth_failure(now, source, claimed.as_deref(), e.reason());
                Authenticated::Challenge(self.digest.challenges_for(at, source, false))
            }
            AuthOutcome::Missing => {
                Authenticated::Challenge(self.digest.challenges_for(at, source, false))
            }
        }
    }

    /// A source or user shut out after repeated failures: `403` with `Retry-After`,
    /// counted and logged in the security log's stable format. `None`: go ahead.
    pub(super) fn throttled(
        &mut self,
        now: Instant,
        source: SocketAddr,
        request: &Request,
    ) -> Option<Vec<crate::sip::message::Header>> {
        let claimed = digest::claimed_username(request);
        let Verdict::Throttled { retry_after, scope } =
            self.auth_guard.check(now, source.ip(), claimed.as_deref())
        else {
            return None;
        };
        warn!(
            "{}",
            auth_guard::auth_throttled_line(source.ip(), claimed.as_deref(), scope, retry_after)
        );
        metrics::counter!(auth_guard::AUTH_THROTTLED_TOTAL, "scope" => scope.label()).increment(1);
        let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
        Some(vec![crate::sip::builder::retry_after(seconds)])
    }

    /// One failed authentication: the throttle, the metric and the security log line.
    fn record_auth_failure(
        &mut self,
        now: Instant,
        source: SocketAddr,
        user: Option<&str>,
        reason: &'static str,
    ) {
        self.auth_guard.record_failure(now, source.ip(), user);
        metrics::counter!(auth_guard::AUTH_FAILURES_TOTAL, "reason" => reason).increment(1);
        warn!(
            "{}",
            auth_guard::auth_failed_line(source.ip(), user, reason)
        );
    }

    /// REGISTER (RFC 3261 §10.3): the throttle, digest, then the registrar. An agent
    /// registers only its own number (R29): the credentials name the address of record.
    pub(super) fn on_register(
        &mut self,
        now: Instant,
        key: TransactionKey,
        request: Request,
        source: SocketAddr,
        transport: TransportKind,
    ) {
        let tag = self.ids.tag();
        if let Some(headers) = self.throttled(now, source, &request) {
            return self.respond(now, &key, &request, 403, Some(&tag), headers, None);
        }
        let user = match self.authenticate(now, source, &request) {
            Authenticated::Agent(user) => user,
            Authenticated::Challenge(challenges) => {
                let headers = challenges
                    .into_iter()
                    .map(crate::sip::builder::www_authenticate)
                    .collect();
                return self.respond(now, &key, &request, 401, Some(&tag), headers, None);
            }
        };
        let register = match RegisterRequest::from_request(&request, source, transport) {
            Ok(register) => register,
            Err(e) => {
                debug!(error = %e, "bad REGISTER");
                return self.respond(now, &key, &request, 400, Some(&tag), vec![], None);
            }
        };
        if register.aor != user {
            self.record_auth_failure(now, source, Some(&user), "wrong_aor");
            return self.respond(now, &key, &request, 403, Some(&tag), vec![], None);
        }
        let (status, headers) = match self.registrar.register(now, register) {
            RegisterOutcome::Ok { bindings, .. }
            | RegisterOutcome::Current { bindings }
            | RegisterOutcome::Removed { bindings } => (
                200,
                bindings
                    .iter()
                    .map(|b| message::make_header("Contact", b.contact_value(now)))
                    .collect(),
            ),
            RegisterOutcome::IntervalTooBrief { min_expires } => (
                423,
                vec![message::make_header(
                    "Min-Expires",
                    min_expires.as_secs().to_string(),
                )],
            ),
            RegisterOutcome::OutOfOrder => (500, vec![]),
            RegisterOutcome::BadRequest(e) => {
                debug!(error = %e, "bad REGISTER");
                (400, vec![])
            }
        };
        self.respond(now, &key, &request, status, Some(&tag), headers, None);
    }

    pub(super) fn on_registrar_event(&mut self, now: Instant, event: RegistrarEvent) {
        let (aor, registered) = match event {
            RegistrarEvent::Registered { aor } => (aor, true),
            RegistrarEvent::Unregistered { aor, reason } => {
                info!(agent = %aor, ?reason, "agent's phone unregistered");
                (aor, false)
            }
        };
        if let Err(e) = self.acd.set_registered(now, &aor, registered) {
            debug!(error = %e, agent = %aor, "registration for an agent the ACD does not know");
        }
    }

    /// Where an agent's phone is registered, to ring it.
    pub(super) fn agent_target(&self, agent: &str) -> Option<UacTarget> {
        let binding = self.registrar.lookup(agent)?;
        Some(UacTarget {
            contact: Uri::try_from(binding.contact.as_str()).ok()?,
            to: format!("sip:{agent}@{}", self.settings.advertised_ip),
            destination: binding.source,
            transport: binding.transport,
            headers: Vec::new(),
            login: None,
        })
    }

    /// Carries out one ACD decision.
    pub(super) fn on_acd_action(&mut self, now: Instant, action: AcdAction) {
        match action {
            AcdAction::Offer { call, agent } => match self.agent_target(&agent) {
                Some(mut target) => {
                    target.headers.extend(self.offer_headers(now, call));
                    self.set_offered_target(call, agent.clone(), target);
                    self.inbound_input(now, call, CallInput::AgentOffered { agent });
                }
                None => {
                    warn!(agent, "offered agent has no usable registration");
                    if let Err(e) =
                        self.acd
                            .offer_failed(now, call, &agent, OfferFailure::Unreachable)
                    {
                        debug!(error = %e, "offer failure refused");
                    }
                }
            },
            AcdAction::CancelOffer {
                call,
                agent,
                reason,
            } => {
                let queue = self
                    .acd
                    .call(call)
                    .map(|view| view.queue)
                    .unwrap_or_default();
                match reason {
                    CancelReason::NoAnswer => {
                        crate::metrics::count_offer_result(&queue, OfferResult::NoAnswer);
                        info!(agent, "agent did not answer in time: redirecting the call");
                    }
                    CancelReason::CallerGone => {
                        crate::metrics::count_offer_result(&queue, OfferResult::CallerGone);
                    }
                    CancelReason::AgentLeft | CancelReason::QueueRemoved => {}
                }
                self.inbound_input(now, call, CallInput::OfferWithdrawn { agent });
            }
            AcdAction::Overflow { call, target } => match target {
                Overflow::Queue(queue) => {
                    info!(call, queue, "call overflowed to another queue");
                    crate::metrics::count_queued(&queue);
                    if let Some(id) = self.work_order_of(call) {
                        let at = self.wall(now);
                        self.store.push_back(StoreWrite::Queued { id, at, queue });
                    }
                }
                // The step names the overflow in the agents file; where the caller goes
                // is the dialplan queue node's `overflow`.
                Overflow::Dialplan(step) => {
                    debug!(call, step, "overflow to the dialplan");
                    self.inbound_input(now, call, CallInput::Overflowed)
                }
            },
            AcdAction::Connected { call, agent } => debug!(call, agent, "connected"),
            AcdAction::AgentStateChanged { agent, state } => {
                debug!(agent, state = state.as_str(), "agent state")
            }
        }
    }

    fn set_offered_target(&mut self, call: crate::acd::CallKey, agent: String, target: UacTarget) {
        if let Some(super::Call {
            kind: super::CallKind::Inbound(inbound),
            ..
        }) = self.calls.get_mut(&call)
        {
            inbound.set_offered_target(agent, target);
        }
    }

    /// What the agent's phone (or browser desk) shows while the call rings: the work
    /// order to fill in, the queue and how long the caller waited. Never the number.
    fn offer_headers(&self, now: Instant, call: crate::acd::CallKey) -> Vec<(String, String)> {
        let mut headers = Vec::new();
        if let Some(id) = self.work_order_of(call) {
            headers.push((
                crate::callbacks::WORK_ORDER_HEADER.to_owned(),
                id.as_str().to_owned(),
            ));
        }
        if let Some(view) = self.acd.call(call) {
            headers.push((super::OFFER_QUEUE_HEADER.to_owned(), view.queue.clone()));
            let waited = now.saturating_duration_since(view.enqueued_at);
            headers.push((
                super::OFFER_WAITED_HEADER.to_owned(),
                waited.as_secs().to_string(),
            ));
        }
        headers
    }

    fn work_order_of(&self, call: crate::acd::CallKey) -> Option<crate::workorder::WorkOrderId> {
        match &self.calls.get(&call)?.kind {
            super::CallKind::Inbound(inbound) => Some(inbound.work_order().clone()),
            super::CallKind::Outbound(outbound) => Some(outbound.work_order().clone()),
            super::CallKind::Feature(_) => None,
        }
    }

    /// An agent command from the API or a feature code.
    pub(super) fn agent_action(
        &mut self,
        now: Instant,
        agent: &str,
        action: AgentAction,
    ) -> Result<AgentStatus, CommandError> {
        match action {
            AgentAction::Login => self.acd.login(now, agent),
            AgentAction::Logout => self.acd.logout(now, agent),
            AgentAction::Pause => self.acd.pause(now, agent, PauseReason::Break),
            AgentAction::Resume => self.acd.resume(now, agent),
        }?;
        info!(agent, ?action, "agent state changed");
        self.acd
            .agent(agent)
            .map(|view| agent_status(&view, now))
            .ok_or_else(|| {
                crate::acd::AcdError::UnknownAgent {
                    agent: agent.to_owned(),
                }
                .into()
            })
    }

    pub(super) fn agents_status(&self, now: Instant) -> (Vec<AgentStatus>, Vec<QueueStatus>) {
        let agents = self
            .acd
            .agent_ids()
            .filter_map(|id| self.acd.agent(id))
            .map(|view| agent_status(&view, now))
            .collect();
        let queues = self
            .acd
            .queue_stats(now)
            .into_iter()
            .map(queue_status)
            .collect();
        (agents, queues)
    }

    /// R4: a new agents file; every call and agent state is kept.
    pub(super) fn reload_agents(
        &mut self,
        now: Instant,
        agents: &AgentsConfig,
    ) -> Result<(), CommandError> {
        self.acd
            .reload(now, acd_config(agents, self.settings.agent_ring_timeout))?;
        self.passwords = passwords(agents);
        info!("agents file reloaded");
        Ok(())
    }
}

fn agent_status(view: &AgentView, now: Instant) -> AgentStatus {
    AgentStatus {
        id: view.id.clone(),
        state: view.state.as_str(),
        reason: match view.state {
            AgentState::Paused { reason } => Some(reason.as_str()),
            _ => None,
        },
        seconds_in_state: view
            .since
            .map(|since| now.saturating_duration_since(since).as_secs()),
        registered: view.registered,
        calls_taken: view.calls_taken,
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
