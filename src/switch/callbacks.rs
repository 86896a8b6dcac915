//! Callbacks in the switch (pure): the callback [`Scheduler`] driven with the ACD's
//! own view of agents and queues, so R9's inbound-first rule is decided where the
//! queues are, in the same step as every other call decision.
//!
//! - After every step ([`Switch::settle`]) the scheduler sees an [`AgentPool`] taken from
//!   the ACD: it preempts a ringing attempt whose agent now has an inbound call waiting,
//!   and hands due tasks to free agents with none waiting.
//! - **The reserve** (off by default, R9's one exception): while the scheduler has a
//!   task it could claim through the reserve ([`Scheduler::reserve_wanted`]), the ACD
//!   holds up to that many agents as they finish a call instead of offering them the
//!   next waiting call ([`crate::acd::Acd::set_callback_hold`]). Each held agent is
//!   offered to [`Scheduler::claim_freed_agent`] in the same step: claimed, they dial the
//!   callback (and stay held until it ends); not, they are released to the queues at
//!   once. The hold must be in the ACD because it frees and matches an agent in one
//!   input; the choice of task stays in the scheduler.
//! - Its dial orders become outbound calls (`outbound`): the agent's phone first, with
//!   the work order in [`WORK_ORDER_HEADER`] and the reason in the display name, then
//!   the citizen through the configured trunk. How each attempt ended goes back to the
//!   scheduler and, as a note, onto the callback's work order.
//! - Its saves leave as [`StoreWrite::Callback`] for the runtime's store writer.
//! - Tasks the engine creates itself: the switch's own work-order writes say who called
//!   (Create), where they waited (Queued), what the IVR learned (a complaint, a request
//!   to be called back), whether they reached an agent (Connected) and how the call
//!   ended: read here as they are queued, with no hook in the inbound call itself. A
//!   missed call or a requested callback becomes a `missed_call` task, a complaint
//!   against the hotline a `complaint` task for the agent who took it (R15, R19).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::outbound::AttemptEnd;
use super::{CallbackCommand, CallbackReply, StoreWrite, Switch};
use crate::acd::CallKey;
use crate::callbacks::api::CallbackView;
use crate::callbacks::{
    AgentPool, CallbackError, CallbackTask, DialOrder, DialOutcome, Output, PhoneNumber, Scheduler,
    TaskId, WORK_ORDER_HEADER,
};
use crate::callbacks::{NewTask, Reason, TaskState};
use crate::config::callbacks::CallbacksConfig;
use crate::ivr::WorkOrderWrite;
use crate::workorder::{AbandonReason, CallOutcome, Category, Direction, WorkOrderId};

/// An agent whose phone could not be rung for a callback, or refused or gave up on
/// one, is not handed another one for this long.
const REFUSED_AGENT_PAUSE: Duration = Duration::from_secs(30);

/// An inbound call's facts the engine's own callbacks need, from its work-order
/// writes.
#[derive(Debug, Default)]
struct SeenCall {
    number: Option<PhoneNumber>,
    queue: Option<String>,
    /// The agent who took it: a complaint's owner (R19).
    agent: Option<String>,
    /// A complaint against the hotline (R15).
    complaint: bool,
    /// The caller asked the IVR to be called back.
    callback_requested: bool,
}

/// The switch's callback state.
#[derive(Debug)]
pub(super) struct CallbackDesk {
    scheduler: Scheduler,
    /// The outbound call of each task being dialled or talked on.
    calls: BTreeMap<TaskId, CallKey>,
    /// Inbound calls in progress, by work order.
    seen: HashMap<WorkOrderId, SeenCall>,
    /// Writes at the head of the switch's store queue already read.
    observed: usize,
    /// Agents not to hand a callback to before the instant.
    refused: BTreeMap<String, Instant>,
    /// The agents as the scheduler last saw them: it is asked again only when they
    /// change, a task changes, or its clock says so, not on every SIP message.
    last_pool: Option<AgentPool>,
    /// A task changed since the scheduler last looked at the agents.
    changed: bool,
    /// The scheduler's last [`Scheduler::reserve_wanted`]: it changes only with the
    /// tasks or the clock, so it is not asked again on every SIP message.
    reserve_wanted: Option<usize>,
    /// When the scheduler (or an agent's pause after a refused call) next changes by
    /// the clock alone.
    next_at: Option<Instant>,
}

impl Switch {
    /// Turns callbacks on with the store's open tasks (R20): a task that was dialing
    /// when the engine stopped is pending again, one that was connected is done.
    /// `highest` is the store's highest task id ever. Without `settings.trunk` tasks are
    /// kept and listed but nobody is dialled.
    pub fn enable_callbacks(
        &mut self,
        now: Instant,
        settings: CallbacksConfig,
        open: Vec<CallbackTask>,
        highest: Option<TaskId>,
    ) {
        let wall = self.wall(now);
        let restored = open.len();
        let scheduler = Scheduler::restore(settings, wall, open, highest);
        if restored > 0 {
            info!(
                restored,
                "callback tasks restored from the store (dialing ones are pending again)"
            );
        }
        self.callbacks = Some(Box::new(CallbackDesk {
            scheduler,
            calls: BTreeMap::new(),
            seen: HashMap::new(),
            observed: self.store.len(),
            refused: BTreeMap::new(),
            last_pool: None,
            changed: true,
            reserve_wanted: None,
            next_at: None,
        }));
        self.settle(now);
    }

    /// The callback scheduler, when callbacks are on.
    pub fn callback_scheduler(&self) -> Option<&Scheduler> {
        self.callbacks.as_ref().map(|desk| &desk.scheduler)
    }

    /// The runtime took the oldest store write.
    pub(super) fn callbacks_store_taken(&mut self) {
        if let Some(desk) = self.callbacks.as_mut() {
            desk.observed = desk.observed.saturating_sub(1);
        }
    }

    /// When the scheduler next changes by the clock alone.
    pub(super) fn callbacks_timeout(&self) -> Option<Instant> {
        let desk = self.callbacks.as_ref()?;
        if desk.scheduler.settings().trunk.is_none() || !self.accepting {
            return None;
        }
        desk.next_at
    }

    /// The instant of a wall-clock time.
    fn instant_at(&self, at: chrono::DateTime<chrono::Utc>) -> Instant {
        let (epoch, wall) = self.epoch;
        match (at - wall).to_std() {
            Ok(after) => epoch + after,
            Err(_) => epoch,
        }
    }

    /// One round of the callbacks inside [`Switch::settle`]: the store writes queued
    /// since the last round (missed calls, callers who got through), then the scheduler
    /// with the agents as the ACD has them, then its orders. True if calls moved.
    pub(super) fn callbacks_settle(&mut self, now: Instant) -> bool {
        if self.callbacks.is_none() {
            return false;
        }
        self.observe_store(now);
        let wall = self.wall(now);
        let can_dial = self.accepting && self.calls.len() < self.settings.max_concurrent;
        let claimed = self.callbacks_reserve(now, can_dial);
        let Some(desk) = self.callbacks.as_mut() else {
            return false;
        };
        let dialing_on = desk.scheduler.settings().trunk.is_some();
        // A deadline that came is always followed by a new one (or none), even with no
        // task left, so the switch's timer never stays in the past.
        let due = desk.next_at.is_some_and(|at| at <= now);
        let mut touched = desk.changed || due;
        desk.refused.retain(|_, until| *until > now);
        if dialing_on && desk.scheduler.tasks().next().is_some() {
            let pool = callback_pool(&self.acd, now, can_dial, &desk.refused);
            if desk.changed || due || desk.last_pool.as_ref() != Some(&pool) {
                desk.scheduler.handle_agents(wall, &pool);
                desk.last_pool = Some(pool);
                touched = true;
            }
        }
        desk.changed = false;
        let moved = self.carry_out_callbacks(now) || claimed;
        let next = match self.callbacks.as_ref() {
            Some(desk) if touched || desk.changed => Some(
                desk.scheduler
                    .poll_timeout()
                    .map(|at| self.instant_at(at))
                    .into_iter()
                    .chain(desk.refused.values().copied())
                    .min(),
            ),
            _ => None,
        };
        if let (Some(next), Some(desk)) = (next, self.callbacks.as_mut()) {
            desk.next_at = next;
        }
        moved
    }

    /// The reserve: tells the ACD how many agents to hold as they finish a call, and
    /// settles every agent it holds: a callback claimed for them is dialled, otherwise
    /// they go back to the queues. True if an agent moved.
    fn callbacks_reserve(&mut self, now: Instant, can_dial: bool) -> bool {
        let wall = self.wall(now);
        let Some(desk) = self.callbacks.as_mut() else {
            return false;
        };
        let dialing_on = desk.scheduler.settings().trunk.is_some();
        let due = desk.next_at.is_some_and(|at| at <= now);
        let reserve_wanted = match desk.reserve_wanted {
            Some(wanted) if !desk.changed && !due => wanted,
            _ => desk.scheduler.reserve_wanted(wall),
        };
        desk.reserve_wanted = Some(reserve_wanted);
        let wanted = if dialing_on && can_dial {
            reserve_wanted
        } else {
            0
        };
        let held_before = self.acd.held_count();
        self.acd.set_callback_hold(now, wanted);
        let mut moved = self.acd.held_count() != held_before;
        for agent in self.acd.held_for_callback() {
            moved = true;
            let Some(desk) = self.callbacks.as_mut() else {
                return moved;
            };
            let claim = if desk.refused.get(&agent).is_some_and(|until| *until > now) {
                None
            } else {
                let pool = callback_pool(&self.acd, now, can_dial, &desk.refused);
                desk.scheduler.claim_freed_agent(wall, &agent, &pool)
            };
            match claim {
                Some(order) => {
                    desk.changed = true;
                    info!(task = %order.task, agent, "callback through the reserve: the agent is kept from inbound calls for it");
                    self.callback_dial(now, order);
                }
                None => {
                    if let Err(e) = self.acd.release_held(now, &agent) {
                        tracing::debug!(error = %e, "release refused by the ACD");
                    }
                }
            }
        }
        moved
    }

    /// The scheduler's outputs, in order.
    fn carry_out_callbacks(&mut self, now: Instant) -> bool {
        let mut moved = false;
        loop {
            let Some(output) = self
                .callbacks
                .as_mut()
                .and_then(|desk| desk.scheduler.poll_output())
            else {
                return moved;
            };
            match output {
                Output::Save(task) => self.store.push_back(StoreWrite::Callback(Box::new(task))),
                Output::Dial(order) => {
                    moved = true;
                    self.callback_dial(now, order);
                }
                Output::Preempt { task, agent } => {
                    moved = true;
                    info!(task = %task, agent, "an inbound call waits for the agent: callback attempt withdrawn (R9)");
                    match self.callbacks.as_ref().and_then(|d| d.calls.get(&task)) {
                        Some(&call) => self.outbound_preempt(now, call),
                        None => self.callback_attempt_ended(now, task, AttemptEnd::Preempted, None),
                    }
                }
                Output::CancelDial { task, .. } => {
                    moved = true;
                    if let Some(call) = self.callbacks.as_mut().and_then(|d| d.calls.remove(&task))
                    {
                        self.outbound_drop_callback(now, call);
                    }
                }
            }
        }
    }

    fn callback_dial(&mut self, now: Instant, order: DialOrder) {
        let wall = self.wall(now);
        let Some(trunk) = self
            .callbacks
            .as_ref()
            .and_then(|d| d.scheduler.settings().trunk.clone())
        else {
            return;
        };
        let destination = trunk.uri_for(order.number.dial_string());
        let placed = self.place_outbound(
            now,
            super::outbound::Placement {
                agent: order.agent.clone(),
                destination,
                caller_id: Some(trunk.caller_id.clone()),
                agent_display: order.agent_display_name(),
                agent_headers: vec![(
                    WORK_ORDER_HEADER.to_owned(),
                    order.work_order.as_str().to_owned(),
                )],
                destination_login: trunk.credentials.clone(),
                callback: Some(super::outbound::CallbackLink {
                    task: order.task,
                    work_order: order.work_order.clone(),
                    preempted: false,
                }),
            },
        );
        let Some(desk) = self.callbacks.as_mut() else {
            return;
        };
        desk.changed = true;
        match placed {
            Ok((call, id)) => {
                info!(
                    task = %order.task,
                    agent = order.agent,
                    number = %order.number,
                    call_work_order = %id,
                    "callback: ringing the agent first"
                );
                desk.calls.insert(order.task, call);
            }
            Err(e) => {
                warn!(task = %order.task, agent = order.agent, error = %e, "callback not placed");
                if let Err(e) = self.acd.release_held(now, &order.agent) {
                    tracing::debug!(error = %e, "release refused by the ACD");
                }
                desk.refused
                    .insert(order.agent.clone(), now + REFUSED_AGENT_PAUSE);
                if let Err(e) = desk.scheduler.agent_leg_failed(wall, order.task) {
                    tracing::debug!(error = %e, "agent failure refused by the scheduler");
                }
            }
        }
    }

    /// The citizen answered: agent and citizen are bridged.
    pub(super) fn callback_connected(&mut self, now: Instant, task: TaskId) {
        let wall = self.wall(now);
        if let Some(desk) = self.callbacks.as_mut() {
            desk.changed = true;
            if let Err(e) = desk
                .scheduler
                .dial_result(wall, task, DialOutcome::Connected)
            {
                tracing::debug!(error = %e, "connection refused by the scheduler");
            }
        }
        self.carry_out_callbacks(now);
    }

    /// An attempt's calls are over: the scheduler learns how, and the callback's work
    /// order gets a note (the outcome and SIP status; `call` is the attempt's own work
    /// order, with its recording).
    pub(super) fn callback_attempt_ended(
        &mut self,
        now: Instant,
        task: TaskId,
        end: AttemptEnd,
        call: Option<(&WorkOrderId, &WorkOrderId)>,
    ) {
        let wall = self.wall(now);
        let Some(desk) = self.callbacks.as_mut() else {
            return;
        };
        desk.calls.remove(&task);
        desk.changed = true;
        if end == AttemptEnd::AgentFailed
            && let Some(TaskState::Dialing { agent }) =
                desk.scheduler.task(task).map(|t| t.state.clone())
        {
            // An agent whose phone refused or gave up is not rung again at once for a
            // callback; once the owner's grace is over another agent may take it.
            desk.refused.insert(agent, now + REFUSED_AGENT_PAUSE);
        }
        let scheduler = &mut desk.scheduler;
        let result = match end {
            AttemptEnd::AgentFailed => scheduler.agent_leg_failed(wall, task),
            AttemptEnd::Dialled(outcome, _) => scheduler.dial_result(wall, task, outcome),
            AttemptEnd::Preempted => scheduler.preempted(wall, task),
            AttemptEnd::Talked => scheduler.call_ended(wall, task),
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, task = %task, "attempt end refused by the scheduler");
        }
        if let Some((parent, attempt)) = call {
            let state = scheduler
                .task(task)
                .map_or("finished", |t| t.state.as_str());
            let text = format!(
                "callback {task}: {} (call {attempt}); task now {state}",
                describe(end)
            );
            self.store.push_back(StoreWrite::Note {
                id: parent.clone(),
                at: wall,
                text,
            });
        }
        self.carry_out_callbacks(now);
    }

    /// An API command on the callbacks.
    pub(super) fn callbacks_command(
        &mut self,
        now: Instant,
        command: CallbackCommand,
    ) -> CallbackReply {
        let wall = self.wall(now);
        let Some(desk) = self.callbacks.as_mut() else {
            return CallbackReply::Disabled;
        };
        desk.changed = true;
        let scheduler = &mut desk.scheduler;
        let view = |scheduler: &Scheduler, id: TaskId| {
            scheduler
                .task(id)
                .map(|t| CallbackView::new(t, wall))
                .ok_or(CallbackError::UnknownTask(id))
        };
        let reply = match command {
            CallbackCommand::Create(new) => CallbackReply::Task(Box::new(
                scheduler
                    .create(wall, new)
                    .and_then(|id| view(scheduler, id)),
            )),
            CallbackCommand::List(filter) => {
                let mut tasks: Vec<&CallbackTask> = scheduler
                    .tasks()
                    .filter(|t| filter.matches(t, wall))
                    .collect();
                if filter.due || filter.overdue {
                    tasks.sort_by_key(|t| (t.window.latest, t.id));
                } else {
                    tasks.sort_by_key(|t| std::cmp::Reverse(t.id));
                }
                CallbackReply::List(
                    tasks
                        .into_iter()
                        .take(filter.limit)
                        .map(|t| CallbackView::new(t, wall))
                        .collect(),
                )
            }
            CallbackCommand::Reschedule { id, window } => CallbackReply::Task(Box::new(
                scheduler
                    .reschedule(wall, id, window)
                    .and_then(|()| view(scheduler, id)),
            )),
            CallbackCommand::Cancel(id) => {
                let before = scheduler.task(id).cloned();
                CallbackReply::Task(Box::new(scheduler.cancel(wall, id).and_then(|()| {
                    let mut task = before.ok_or(CallbackError::UnknownTask(id))?;
                    task.state = crate::callbacks::TaskState::Cancelled;
                    Ok(CallbackView::new(&task, wall))
                })))
            }
        };
        self.carry_out_callbacks(now);
        reply
    }

    /// The callback gauges and counters (R30).
    pub(super) fn callbacks_publish(&self, now: Instant) {
        if let Some(desk) = &self.callbacks {
            crate::callbacks::metrics::publish(&desk.scheduler, self.wall(now));
        }
    }

    /// Reads the work-order writes queued since the last round. When an inbound call
    /// ends: a complaint against the hotline (R15: the IVR's `service_complaint`
    /// category or its complaint flag) gets a `complaint` callback by the agent who took
    /// it (R19); a caller who hung up in the queue, or asked the IVR to be called back,
    /// gets a `missed_call` task. A caller who reaches an agent cancels their open
    /// missed-call tasks.
    fn observe_store(&mut self, now: Instant) {
        let wall = self.wall(now);
        let default_queue = self.settings.default_queue.clone();
        let Some(desk) = self.callbacks.as_mut() else {
            return;
        };
        let mut ended = Vec::new();
        for write in self.store.iter().skip(desk.observed) {
            match write {
                StoreWrite::Create(order) if order.direction == Direction::Inbound => {
                    desk.seen.insert(
                        order.id.clone(),
                        SeenCall {
                            number: order.caller.parse().ok(),
                            ..SeenCall::default()
                        },
                    );
                }
                StoreWrite::Queued { id, queue, .. } => {
                    if let Some(seen) = desk.seen.get_mut(id) {
                        seen.queue = Some(queue.clone());
                    }
                }
                StoreWrite::Ivr { id, write, .. } => {
                    let Some(seen) = desk.seen.get_mut(id) else {
                        continue;
                    };
                    match write {
                        WorkOrderWrite::Category(Category::ServiceComplaint)
                        | WorkOrderWrite::HotlineComplaint => seen.complaint = true,
                        WorkOrderWrite::CallbackRequested { queue } => {
                            seen.callback_requested = true;
                            if queue.is_some() {
                                seen.queue.clone_from(queue);
                            }
                        }
                        _ => {}
                    }
                }
                StoreWrite::Connected { id, agent, .. } => {
                    let Some(seen) = desk.seen.get_mut(id) else {
                        continue;
                    };
                    seen.agent = Some(agent.clone());
                    if let Some(number) = seen.number.as_ref() {
                        desk.changed = true;
                        let cancelled = desk.scheduler.inbound_connected(wall, number);
                        if !cancelled.is_empty() {
                            info!(tasks = ?cancelled, number = %number, "the caller got through: missed-call callbacks cancelled");
                        }
                    }
                }
                StoreWrite::Ended { id, outcome, .. } => {
                    if let Some(seen) = desk.seen.remove(id) {
                        ended.push((id.clone(), *outcome, seen));
                    }
                }
                _ => {}
            }
        }
        desk.observed = self.store.len();
        for (id, outcome, seen) in ended {
            let Some(number) = seen.number else {
                continue;
            };
            let abandoned_in_queue = matches!(
                outcome,
                CallOutcome::Abandoned {
                    reason: AbandonReason::CallerHungUpInQueue
                        | AbandonReason::CallerHungUpWhileAgentRang
                }
            );
            let queue = seen.queue.unwrap_or_else(|| default_queue.clone());
            let created = if seen.complaint {
                desk.scheduler.create(
                    wall,
                    NewTask {
                        work_order: id,
                        number,
                        reason: Reason::Complaint,
                        window: None,
                        owner: seen.agent,
                        queue,
                    },
                )
            } else if abandoned_in_queue || seen.callback_requested {
                desk.scheduler.missed_call(wall, id, number, &queue)
            } else {
                continue;
            };
            desk.changed = true;
            match created {
                Ok(task) => info!(task = %task, "callback task created by the engine"),
                Err(e) => warn!(error = %e, "callback task refused"),
            }
        }
    }
}

/// The agents as the ACD has them now. With `can_dial` false (shutting down, at the
/// call limit) nobody is free, so only preemptions can happen.
fn callback_pool(
    acd: &crate::acd::Acd,
    now: Instant,
    can_dial: bool,
    refused: &BTreeMap<String, Instant>,
) -> AgentPool {
    let mut pool = AgentPool::from_acd(acd, now);
    let unfree: Vec<String> = acd
        .agent_ids()
        .filter(|id| !can_dial || refused.contains_key(*id))
        .map(str::to_owned)
        .collect();
    for id in unfree {
        if let Some(view) = acd.agent(&id) {
            pool.add_agent(&id, &view.queues, false);
        }
    }
    pool
}

fn describe(end: AttemptEnd) -> String {
    match end {
        AttemptEnd::AgentFailed => "the agent's phone did not take the call".to_owned(),
        AttemptEnd::Dialled(outcome, 0) => outcome.as_str().to_owned(),
        AttemptEnd::Dialled(outcome, status) => format!("{} (SIP {status})", outcome.as_str()),
        AttemptEnd::Preempted => {
            "withdrawn for a waiting inbound call (R9), not counted as an attempt".to_owned()
        }
        AttemptEnd::Talked => "connected and ended".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::switch::SwitchSettings;
    use crate::workorder::WorkOrder;

    const AGENTS: &str = "[[queues]]\nname = \"general\"\nstrategy = \"longest_idle\"\nmax_wait_seconds = 600\nwrap_up_seconds = 0\n\n[[agents]]\nid = \"1001\"\npassword = \"pw1001\"\nqueues = [\"general\"]\n";

    fn switch() -> (Switch, Instant) {
        let agents = crate::config::agents::AgentsConfig::parse(Path::new("agents.toml"), AGENTS)
            .expect("agents");
        let now = Instant::now();
        let wall = Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap();
        let mut switch = Switch::new(
            SwitchSettings::loopback(5060),
            &agents,
            super::super::tests::test_flow(),
            7,
            now,
            wall,
            &[],
        )
        .expect("switch");
        switch.enable_callbacks(now, CallbacksConfig::default(), Vec::new(), None);
        (switch, now)
    }

    /// An inbound call's work-order writes as the switch would queue them, `middle`
    /// between its creation and its end.
    fn call(
        switch: &mut Switch,
        now: Instant,
        n: u64,
        middle: Vec<StoreWrite>,
        outcome: CallOutcome,
    ) {
        let at = switch.wall(now);
        let id = WorkOrderId::from_parts(at, n);
        let order =
            WorkOrder::new_inbound(id.clone(), format!("call-{n}"), "13800001111", "8890", at);
        switch.store.push_back(StoreWrite::Create(Box::new(order)));
        for mut write in middle {
            match &mut write {
                StoreWrite::Queued { id: on, .. }
                | StoreWrite::Connected { id: on, .. }
                | StoreWrite::Ivr { id: on, .. } => *on = id.clone(),
                _ => {}
            }
            switch.store.push_back(write);
        }
        switch.store.push_back(StoreWrite::Ended {
            id,
            at,
            side: None,
            outcome,
            reason: None,
        });
        switch.settle(now);
    }

    fn placeholder() -> WorkOrderId {
        WorkOrderId::from_parts(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(), 0)
    }

    fn ivr(write: WorkOrderWrite) -> StoreWrite {
        StoreWrite::Ivr {
            id: placeholder(),
            at: Utc::now(),
            write,
        }
    }

    fn tasks(switch: &Switch) -> Vec<CallbackTask> {
        switch
            .callback_scheduler()
            .unwrap()
            .tasks()
            .cloned()
            .collect()
    }

    #[test]
    fn a_complaint_against_the_hotline_gets_a_callback_by_the_agent_who_took_it_r15_r19() {
        let (mut switch, now) = switch();
        let queued = StoreWrite::Queued {
            id: placeholder(),
            at: Utc::now(),
            queue: "general".into(),
        };
        let connected = StoreWrite::Connected {
            id: placeholder(),
            at: Utc::now(),
            agent: "1001".into(),
        };
        call(
            &mut switch,
            now,
            1,
            vec![queued, ivr(WorkOrderWrite::HotlineComplaint), connected],
            CallOutcome::Answered,
        );
        let tasks = tasks(&switch);
        assert_eq!(tasks.len(), 1, "{tasks:?}");
        let task = &tasks[0];
        assert_eq!(task.reason, Reason::Complaint);
        assert_eq!(task.owner.as_deref(), Some("1001"), "its owner (R19)");
        assert_eq!(task.queue, "general");
        assert_eq!(task.window.earliest, switch.wall(now), "at once");
        assert_eq!(task.number.dial_string(), "13800001111");
        let saved = switch
            .store
            .iter()
            .any(|w| matches!(w, StoreWrite::Callback(t) if t.id == task.id));
        assert!(saved, "saved for the store (R20)");
    }

    #[test]
    fn a_caller_who_asks_the_ivr_for_a_callback_gets_one_and_an_ordinary_call_none() {
        let (mut switch, now) = switch();
        call(&mut switch, now, 1, Vec::new(), CallOutcome::Answered);
        assert!(tasks(&switch).is_empty(), "an ordinary call makes no task");
        call(
            &mut switch,
            now,
            2,
            vec![ivr(WorkOrderWrite::CallbackRequested {
                queue: Some("general".into()),
            })],
            CallOutcome::Answered,
        );
        let tasks = tasks(&switch);
        assert_eq!(tasks.len(), 1, "{tasks:?}");
        assert_eq!(tasks[0].reason, Reason::MissedCall);
        assert_eq!(tasks[0].owner, None);
        assert_eq!(tasks[0].queue, "general");
    }
}
