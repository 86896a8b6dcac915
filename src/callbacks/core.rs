//! The callback scheduler. Pure and sans-IO: every input carries `now` (UTC, from the
//! driver's clock or a simulated one), outputs are drained with
//! [`Scheduler::poll_output`], the next deadline is [`Scheduler::poll_timeout`].
//!
//! # What it decides
//! - **When**: a pending task is dialled once its window has opened and its backoff
//!   is over, most urgent (earliest `latest`) first. Late tasks are still dialled:
//!   late is better than never, and they count as overdue meanwhile (R20).
//! - **Who**: the owner agent (R7) alone until `owner_grace` after the window opens,
//!   then the owner first and any agent serving the task's queue after them. A task
//!   with no owner (a missed call) goes to any agent of its queue at once.
//! - **Inbound first (R9)**: a task is never handed to an agent while an inbound call
//!   waits in a queue that agent serves ([`AgentPool::inbound_waiting_for`]); an
//!   attempt still ringing when such a call starts waiting is preempted
//!   ([`Output::Preempt`]): back to pending, not counted as a failed attempt. A
//!   connected callback is never cut.
//! - **The reserve** (optional, off by default): see [`Scheduler::claim_freed_agent`].
//!
//! # Who owns what
//! The ACD owns agents' states and queues; the scheduler sees them only through the
//! [`AgentPool`] snapshot it is handed. It owns the tasks (open ones in memory; every
//! change goes out as [`Output::Save`] for the store, which also keeps finished ones).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::{
    CallbackError, CallbackTask, DialOutcome, PhoneNumber, Reason, TaskId, TaskState, Window,
};
use crate::acd::{Acd, AgentState};
use crate::config::callbacks::{CallbacksConfig, WindowOffsets};
use crate::workorder::WorkOrderId;

/// What the driver knows of agents and queues at one moment, taken from the ACD (which
/// owns those facts) before each scheduling decision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentPool {
    /// In preference order (the first free eligible agent is chosen).
    order: Vec<String>,
    agents: BTreeMap<String, PoolAgent>,
    /// Queues where at least one inbound call waits for an agent.
    waiting: BTreeSet<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct PoolAgent {
    queues: Vec<String>,
    free: bool,
}

impl AgentPool {
    pub fn new() -> AgentPool {
        AgentPool::default()
    }

    /// Adds an agent serving `queues`; `free` when it could take a call right now
    /// (logged in, available, phone registered).
    pub fn add_agent(&mut self, id: &str, queues: &[String], free: bool) {
        if self
            .agents
            .insert(
                id.to_owned(),
                PoolAgent {
                    queues: queues.to_vec(),
                    free,
                },
            )
            .is_none()
        {
            self.order.push(id.to_owned());
        }
    }

    /// Marks `queue` as having an inbound call waiting.
    pub fn set_inbound_waiting(&mut self, queue: &str) {
        self.waiting.insert(queue.to_owned());
    }

    /// The ACD's view: agents available with a registered phone are free; a queue with
    /// more unanswered calls than calls ringing an agent has a call waiting. `now` is
    /// the ACD's clock (only its wait figures use it).
    pub fn from_acd(acd: &Acd, now: Instant) -> AgentPool {
        let mut pool = AgentPool::new();
        for stats in acd.queue_stats(now) {
            if stats.depth > stats.ringing {
                pool.set_inbound_waiting(&stats.name);
            }
        }
        let mut ids: Vec<&str> = acd.agent_ids().collect();
        ids.sort_unstable();
        for id in ids {
            if let Some(view) = acd.agent(id) {
                let free =
                    view.state == AgentState::Available && view.registered && view.configured;
                pool.add_agent(id, &view.queues, free);
            }
        }
        pool
    }

    /// True while an inbound call waits in a queue `agent` serves (R9).
    pub fn inbound_waiting_for(&self, agent: &str) -> bool {
        self.agents
            .get(agent)
            .is_some_and(|a| a.queues.iter().any(|q| self.waiting.contains(q)))
    }

    pub fn is_free(&self, agent: &str) -> bool {
        self.agents.get(agent).is_some_and(|a| a.free)
    }

    pub fn serves(&self, agent: &str, queue: &str) -> bool {
        self.agents
            .get(agent)
            .is_some_and(|a| a.queues.iter().any(|q| q == queue))
    }

    /// Agent ids in preference order.
    pub fn agent_ids(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }
}

/// A task to create. `window: None` takes the reason's default from the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTask {
    pub work_order: WorkOrderId,
    pub number: PhoneNumber,
    pub reason: Reason,
    pub window: Option<Window>,
    pub owner: Option<String>,
    pub queue: String,
}

/// Dial this task: ring `agent`'s phone first (the softphone shows `reason` and the
/// work order), then, when the agent answers, the citizen at `number` through the
/// outbound trunk. The task is `Dialing` already.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialOrder {
    pub task: TaskId,
    pub work_order: WorkOrderId,
    pub number: PhoneNumber,
    pub reason: Reason,
    pub agent: String,
    /// Taken through the reserve (not preempted by inbound calls).
    pub via_reserve: bool,
}

impl DialOrder {
    /// The display name on the INVITE to the agent's phone: why, and whom (masked,
    /// R12), e.g. `转办回访 138******78`. The work order goes in
    /// [`super::WORK_ORDER_HEADER`].
    pub fn agent_display_name(&self) -> String {
        format!("{} {}", self.reason.label(), self.number.masked())
    }
}

/// What the driver must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Start a callback (see [`DialOrder`]).
    Dial(DialOrder),
    /// An inbound call waits for `agent` while this attempt rings (R9): CANCEL the
    /// ringing leg (the citizen's, or the agent's if it still rings). The task is
    /// pending again; this did not count as an attempt. Keep the agent until that
    /// leg's end is known: on 487 (or the agent's leg ending) report
    /// [`Scheduler::preempted`] and give the agent back to the ACD, which offers them
    /// the waiting call; if the citizen's 200 OK crossed the CANCEL, bridge and report
    /// `dial_result(Connected)` (a connected callback is never cut). Until then the
    /// task is not dialled again.
    Preempt { task: TaskId, agent: String },
    /// The task was cancelled while dialing: CANCEL its ringing legs.
    CancelDial { task: TaskId, agent: String },
    /// Persist this task as it now is (in order; later saves supersede earlier).
    Save(CallbackTask),
}

/// Figures for the metrics (R30).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchedulerStats {
    pub pending: usize,
    /// Pending with their window open and backoff over.
    pub due: usize,
    pub overdue: usize,
    pub dialing: usize,
    pub connected: usize,
    /// How long the longest-overdue task is past its latest time.
    pub oldest_overdue: Option<Duration>,
}

/// Attempts by outcome and preemptions since start-up (counters for the metrics).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchedulerCounters {
    pub connected: u64,
    pub no_answer: u64,
    pub busy: u64,
    pub failed: u64,
    pub preemptions: u64,
}

/// The callback scheduler: every open task of the engine.
#[derive(Debug)]
pub struct Scheduler {
    settings: CallbacksConfig,
    /// Open tasks (pending, dialing, connected); finished ones live only in the store.
    tasks: BTreeMap<TaskId, CallbackTask>,
    next_id: u64,
    outputs: VecDeque<Output>,
    /// Attempts the scheduler preempted ([`Output::Preempt`]) whose legs the driver is
    /// still cancelling, with their agent. Such a task is pending but not dialled again
    /// until the driver reports the legs gone ([`Scheduler::preempted`], any
    /// non-connected [`Scheduler::dial_result`]), so one task never has two attempts;
    /// a 200 OK crossing the CANCEL connects it (a connected callback is never cut).
    clearing: BTreeMap<TaskId, String>,
    /// Open tasks dialled through the reserve.
    via_reserve: BTreeSet<TaskId>,
    counters: SchedulerCounters,
    last_now: Option<DateTime<Utc>>,
}

impl Scheduler {
    /// A scheduler with no task.
    pub fn new(settings: CallbacksConfig) -> Scheduler {
        Scheduler {
            settings,
            tasks: BTreeMap::new(),
            next_id: 1,
            outputs: VecDeque::new(),
            clearing: BTreeMap::new(),
            via_reserve: BTreeSet::new(),
            counters: SchedulerCounters::default(),
            last_now: None,
        }
    }

    /// A scheduler after a restart, from the store's open tasks (R20). A task that was
    /// dialing when the engine died is pending again (its legs died with the engine):
    /// not lost, and dialled only once more since the scheduler alone starts dials. One
    /// that was connected was reached, so it is done. Changed tasks are saved.
    /// `highest_id` is the store's highest task id ever (finished ones included).
    pub fn restore(
        settings: CallbacksConfig,
        now: DateTime<Utc>,
        tasks: Vec<CallbackTask>,
        highest_id: Option<TaskId>,
    ) -> Scheduler {
        let mut scheduler = Scheduler::new(settings);
        scheduler.last_now = Some(now);
        let mut highest = highest_id.map_or(0, |id| id.0);
        for mut task in tasks {
            highest = highest.max(task.id.0);
            match task.state {
                TaskState::Dialing { .. } => {
                    task.state = TaskState::Pending;
                    task.updated_at = now;
                    scheduler.outputs.push_back(Output::Save(task.clone()));
                }
                TaskState::Connected { .. } => {
                    task.state = TaskState::Done;
                    task.updated_at = now;
                    scheduler.outputs.push_back(Output::Save(task));
                    continue;
                }
                TaskState::Pending => {}
                TaskState::Done | TaskState::Failed | TaskState::Cancelled => continue,
            }
            scheduler.tasks.insert(task.id, task);
        }
        scheduler.next_id = highest + 1;
        scheduler
    }

    pub fn settings(&self) -> &CallbacksConfig {
        &self.settings
    }

    /// Takes new settings (a reload): defaults apply to tasks created from now on.
    pub fn set_settings(&mut self, settings: CallbacksConfig) {
        self.settings = settings;
    }

    /// The reason's default window, counted from `now`.
    pub fn default_window(&self, reason: Reason, now: DateTime<Utc>) -> Window {
        default_window(&self.settings, reason, now)
    }

    // ----- inputs: tasks -------------------------------------------------------------

    /// Creates a task (from the API, or by the engine for a complaint, R19). The
    /// caller has checked that the work order exists.
    pub fn create(&mut self, now: DateTime<Utc>, new: NewTask) -> Result<TaskId, CallbackError> {
        self.last_now = Some(now);
        if new.queue.trim().is_empty() {
            return Err(CallbackError::Empty("queue"));
        }
        if new.owner.as_deref().is_some_and(|o| o.trim().is_empty()) {
            return Err(CallbackError::Empty("owner"));
        }
        let window = match new.window {
            Some(window) => Window::new(window.earliest, window.latest)?,
            None => self.default_window(new.reason, now),
        };
        let id = TaskId(self.next_id);
        self.next_id += 1;
        let task = CallbackTask {
            id,
            work_order: new.work_order,
            number: new.number,
            reason: new.reason,
            window,
            owner: new.owner,
            queue: new.queue,
            attempts: 0,
            max_attempts: self.settings.max_attempts,
            not_before: window.earliest,
            state: TaskState::Pending,
            last_outcome: None,
            preemptions: 0,
            created_at: now,
            updated_at: now,
        };
        self.outputs.push_back(Output::Save(task.clone()));
        self.tasks.insert(id, task);
        Ok(id)
    }

    /// A caller hung up while queued: a `missed_call` task for any agent of `queue`.
    /// An open missed-call task for the same number is kept instead of a second one.
    pub fn missed_call(
        &mut self,
        now: DateTime<Utc>,
        work_order: WorkOrderId,
        number: PhoneNumber,
        queue: &str,
    ) -> Result<TaskId, CallbackError> {
        if let Some(task) = self
            .tasks
            .values()
            .find(|t| t.reason == Reason::MissedCall && t.number.same_subscriber(&number))
        {
            return Ok(task.id);
        }
        self.create(
            now,
            NewTask {
                work_order,
                number,
                reason: Reason::MissedCall,
                window: None,
                owner: None,
                queue: queue.to_owned(),
            },
        )
    }

    /// Moves a task's window (any task may change its own). A connected task is
    /// refused: its call is under way.
    pub fn reschedule(
        &mut self,
        now: DateTime<Utc>,
        id: TaskId,
        window: Window,
    ) -> Result<(), CallbackError> {
        self.last_now = Some(now);
        let window = Window::new(window.earliest, window.latest)?;
        let task = self.task_mut(id)?;
        if matches!(task.state, TaskState::Connected { .. }) {
            return Err(CallbackError::Connected { task: id });
        }
        task.window = window;
        // A window chosen by a person replaces any backoff still running.
        task.not_before = window.earliest;
        task.updated_at = now;
        let saved = task.clone();
        self.outputs.push_back(Output::Save(saved));
        Ok(())
    }

    /// Cancels a task. One that is dialing has its legs cancelled
    /// ([`Output::CancelDial`]); a connected one is refused (never cut, R9).
    pub fn cancel(&mut self, now: DateTime<Utc>, id: TaskId) -> Result<(), CallbackError> {
        self.last_now = Some(now);
        let task = self.task_mut(id)?;
        if matches!(task.state, TaskState::Connected { .. }) {
            return Err(CallbackError::Connected { task: id });
        }
        self.finish(now, id, TaskState::Cancelled);
        Ok(())
    }

    /// The same number called in and was connected to an agent: its open missed-call
    /// tasks are cancelled by themselves (one ringing now has its legs cancelled).
    /// Returns the tasks cancelled.
    pub fn inbound_connected(&mut self, now: DateTime<Utc>, number: &PhoneNumber) -> Vec<TaskId> {
        self.last_now = Some(now);
        let ids: Vec<TaskId> = self
            .tasks
            .values()
            .filter(|t| {
                t.reason == Reason::MissedCall
                    && t.number.same_subscriber(number)
                    && !matches!(t.state, TaskState::Connected { .. })
            })
            .map(|t| t.id)
            .collect();
        for &id in &ids {
            self.finish(now, id, TaskState::Cancelled);
        }
        ids
    }

    // ----- inputs: the dialing -------------------------------------------------------

    /// The agent's leg failed (no answer, refused, unreachable) before the citizen was
    /// dialled: the task is pending again and no attempt is counted.
    pub fn agent_leg_failed(
        &mut self,
        now: DateTime<Utc>,
        id: TaskId,
    ) -> Result<(), CallbackError> {
        self.last_now = Some(now);
        if self.clearing.remove(&id).is_some() {
            return Ok(());
        }
        self.dialing_agent(id)?;
        self.back_to_pending(now, id);
        Ok(())
    }

    /// The citizen's leg got its final answer (or gave up). `Connected` bridges the
    /// call (also when it crosses a preemption's CANCEL: a connected callback is never
    /// cut). Anything else counts an attempt: retried after the backoff, or `failed`
    /// once attempts run out or the number cannot be reached; for a preempted attempt
    /// it only says the legs are gone (no attempt counted).
    pub fn dial_result(
        &mut self,
        now: DateTime<Utc>,
        id: TaskId,
        outcome: DialOutcome,
    ) -> Result<(), CallbackError> {
        self.last_now = Some(now);
        let agent = match self.clearing.remove(&id) {
            Some(agent) if outcome == DialOutcome::Connected => agent,
            Some(_) => return Ok(()),
            None => self.dialing_agent(id)?,
        };
        self.count(outcome);
        let settings_backoff = (self.settings.backoff_first, self.settings.backoff_max);
        let task = self.task_mut(id)?;
        task.attempts += 1;
        task.last_outcome = Some(outcome);
        task.updated_at = now;
        if outcome == DialOutcome::Connected {
            task.state = TaskState::Connected { agent };
            let saved = task.clone();
            self.outputs.push_back(Output::Save(saved));
            return Ok(());
        }
        if outcome.is_permanent() || task.attempts >= task.max_attempts {
            self.finish(now, id, TaskState::Failed);
            return Ok(());
        }
        task.not_before = now + to_chrono(backoff(settings_backoff, task.attempts));
        self.back_to_pending(now, id);
        Ok(())
    }

    /// The legs of a preempted attempt are gone (R9). After an [`Output::Preempt`]
    /// this confirms the CANCEL went through (487, or the agent's leg ended), and the
    /// task may be dialled again. A driver that saw the inbound call first and
    /// abandoned a dialing attempt by itself says so here too: the task is pending
    /// again, not a failed attempt.
    pub fn preempted(&mut self, now: DateTime<Utc>, id: TaskId) -> Result<(), CallbackError> {
        self.last_now = Some(now);
        if self.clearing.remove(&id).is_some() {
            return Ok(());
        }
        self.dialing_agent(id)?;
        self.preempt(now, id);
        Ok(())
    }

    /// The connected callback ended: the task is done.
    pub fn call_ended(&mut self, now: DateTime<Utc>, id: TaskId) -> Result<(), CallbackError> {
        self.last_now = Some(now);
        let task = self.task_mut(id)?;
        if !matches!(task.state, TaskState::Connected { .. }) {
            return Err(CallbackError::NotConnected {
                task: id,
                state: task.state.as_str(),
            });
        }
        self.finish(now, id, TaskState::Done);
        Ok(())
    }

    // ----- scheduling ----------------------------------------------------------------

    /// Looks at the agents and queues as they are now: preempts ringing attempts whose
    /// agent has an inbound call waiting (R9), then hands due tasks to free agents who
    /// have none. Call after every ACD change and at [`Scheduler::poll_timeout`].
    pub fn handle_agents(&mut self, now: DateTime<Utc>, pool: &AgentPool) {
        self.last_now = Some(now);
        let to_preempt: Vec<(TaskId, String)> = self
            .tasks
            .values()
            .filter(|t| !self.via_reserve.contains(&t.id))
            .filter_map(|t| match &t.state {
                TaskState::Dialing { agent } if pool.inbound_waiting_for(agent) => {
                    Some((t.id, agent.clone()))
                }
                _ => None,
            })
            .collect();
        for (id, agent) in to_preempt {
            self.preempt(now, id);
            self.clearing.insert(id, agent.clone());
            self.outputs.push_back(Output::Preempt { task: id, agent });
        }

        let mut busy = self.busy_agents();
        for id in self.due_order(now) {
            let Some(task) = self.tasks.get(&id) else {
                continue;
            };
            let chosen = self.candidates(task, now, pool).into_iter().find(|agent| {
                pool.is_free(agent) && !busy.contains(agent) && !pool.inbound_waiting_for(agent)
            });
            if let Some(agent) = chosen {
                busy.insert(agent.clone());
                let order = self.start_dial(now, id, agent, false);
                self.outputs.push_back(Output::Dial(order));
            }
        }
    }

    /// Same as [`Scheduler::handle_agents`], for the timer.
    pub fn handle_timeout(&mut self, now: DateTime<Utc>, pool: &AgentPool) {
        self.handle_agents(now, pool);
    }

    /// The reserve (optional, off by default): `agent` is finishing a call and is about
    /// to become available. Ask before handing them back to the ACD: if the reserve has
    /// a free slot (fewer than `reserve.agents` agents on reserve callbacks) and a due
    /// task within `reserve.within` of its latest time (or overdue) may go to this
    /// agent, the task is theirs even though inbound calls wait. The driver then keeps
    /// the agent out of inbound distribution until the callback ends, and dials. Such an
    /// attempt is not preempted. Returns `None` (and changes nothing) otherwise.
    pub fn claim_freed_agent(
        &mut self,
        now: DateTime<Utc>,
        agent: &str,
        pool: &AgentPool,
    ) -> Option<DialOrder> {
        self.last_now = Some(now);
        let reserve = self.settings.reserve?;
        if self.via_reserve.len() >= reserve.agents || self.busy_agents().contains(agent) {
            return None;
        }
        let within = to_chrono(reserve.within);
        let id = self.due_order(now).into_iter().find(|id| {
            self.tasks.get(id).is_some_and(|task| {
                now + within >= task.window.latest
                    && self
                        .candidates(task, now, pool)
                        .iter()
                        .any(|candidate| candidate == agent)
            })
        })?;
        Some(self.start_dial(now, id, agent.to_owned(), true))
    }

    /// How many agents the ACD should hold for the reserve as they finish a call
    /// ([`crate::acd::Acd::set_callback_hold`]): the reserve's size while a pending task
    /// could be claimed now (due, and within `reserve.within` of its latest time or
    /// overdue), else 0, so that with nothing to claim no agent is kept from inbound
    /// calls even for a moment. A held agent is then offered to
    /// [`Scheduler::claim_freed_agent`], which may still decline (a task for another
    /// queue, the owner's grace); the driver then releases them.
    pub fn reserve_wanted(&self, now: DateTime<Utc>) -> usize {
        let Some(reserve) = self.settings.reserve else {
            return 0;
        };
        let within = to_chrono(reserve.within);
        let claimable = self.tasks.values().any(|task| {
            task.is_due(now)
                && !self.clearing.contains_key(&task.id)
                && now + within >= task.window.latest
        });
        if claimable { reserve.agents } else { 0 }
    }

    /// The next output for the driver.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When something changes by the clock alone: a window opening, a backoff or an
    /// owner's grace ending, a task turning overdue or entering the reserve's reach.
    /// Call [`Scheduler::handle_timeout`] then.
    pub fn poll_timeout(&self) -> Option<DateTime<Utc>> {
        let after = self.last_now?;
        let grace = to_chrono(self.settings.owner_grace);
        let reserve = self.settings.reserve.map(|r| to_chrono(r.within));
        self.tasks
            .values()
            .filter(|t| t.state == TaskState::Pending)
            .flat_map(|t| {
                let opens = t.window.earliest.max(t.not_before);
                [
                    Some(opens),
                    t.owner.as_ref().map(|_| t.window.earliest + grace),
                    Some(t.window.latest + chrono::Duration::milliseconds(1)),
                    reserve.map(|within| t.window.latest - within),
                ]
            })
            .flatten()
            .filter(|at| *at > after)
            .min()
    }

    // ----- queries -------------------------------------------------------------------

    /// An open task (pending, dialing or connected).
    pub fn task(&self, id: TaskId) -> Option<&CallbackTask> {
        self.tasks.get(&id)
    }

    /// Every open task, by id.
    pub fn tasks(&self) -> impl Iterator<Item = &CallbackTask> {
        self.tasks.values()
    }

    /// The open task `agent` is dialing or talking on, if any.
    pub fn task_of_agent(&self, agent: &str) -> Option<&CallbackTask> {
        self.tasks.values().find(|t| match &t.state {
            TaskState::Dialing { agent: a } | TaskState::Connected { agent: a } => a == agent,
            _ => false,
        })
    }

    /// The gauges' figures at `now`. O(open tasks).
    pub fn stats(&self, now: DateTime<Utc>) -> SchedulerStats {
        let mut stats = SchedulerStats::default();
        for task in self.tasks.values() {
            match task.state {
                TaskState::Pending => stats.pending += 1,
                TaskState::Dialing { .. } => stats.dialing += 1,
                TaskState::Connected { .. } => stats.connected += 1,
                _ => {}
            }
            if task.is_due(now) {
                stats.due += 1;
            }
            if task.is_overdue(now) {
                stats.overdue += 1;
                let late = (now - task.window.latest).to_std().unwrap_or_default();
                stats.oldest_overdue = Some(stats.oldest_overdue.map_or(late, |o| o.max(late)));
            }
        }
        stats
    }

    /// Attempts by outcome and preemptions since start-up.
    pub fn counters(&self) -> &SchedulerCounters {
        &self.counters
    }

    // ----- internals -----------------------------------------------------------------

    fn task_mut(&mut self, id: TaskId) -> Result<&mut CallbackTask, CallbackError> {
        self.tasks
            .get_mut(&id)
            .ok_or(CallbackError::UnknownTask(id))
    }

    fn dialing_agent(&self, id: TaskId) -> Result<String, CallbackError> {
        let task = self.tasks.get(&id).ok_or(CallbackError::UnknownTask(id))?;
        match &task.state {
            TaskState::Dialing { agent } => Ok(agent.clone()),
            other => Err(CallbackError::NotDialing {
                task: id,
                state: other.as_str(),
            }),
        }
    }

    fn busy_agents(&self) -> BTreeSet<String> {
        self.tasks
            .values()
            .filter_map(|t| match &t.state {
                TaskState::Dialing { agent } | TaskState::Connected { agent } => {
                    Some(agent.clone())
                }
                _ => None,
            })
            .collect()
    }

    /// Due tasks, most urgent first.
    fn due_order(&self, now: DateTime<Utc>) -> Vec<TaskId> {
        let mut due: Vec<(DateTime<Utc>, TaskId)> = self
            .tasks
            .values()
            .filter(|t| t.is_due(now) && !self.clearing.contains_key(&t.id))
            .map(|t| (t.window.latest, t.id))
            .collect();
        due.sort_unstable();
        due.into_iter().map(|(_, id)| id).collect()
    }

    /// Agents who may take `task` now, the owner first (R7), then, once the grace is
    /// over (or with no owner), every agent serving its queue in the pool's order.
    fn candidates(&self, task: &CallbackTask, now: DateTime<Utc>, pool: &AgentPool) -> Vec<String> {
        let mut out: Vec<String> = task.owner.iter().cloned().collect();
        let grace_over = task.owner.is_none()
            || now >= task.window.earliest + to_chrono(self.settings.owner_grace);
        if grace_over {
            out.extend(
                pool.agent_ids()
                    .filter(|id| task.owner.as_deref() != Some(*id))
                    .filter(|id| pool.serves(id, &task.queue))
                    .map(str::to_owned),
            );
        }
        out
    }

    fn start_dial(
        &mut self,
        now: DateTime<Utc>,
        id: TaskId,
        agent: String,
        via_reserve: bool,
    ) -> DialOrder {
        if via_reserve {
            self.via_reserve.insert(id);
        }
        let task = self
            .tasks
            .get_mut(&id)
            .expect("start_dial is given an open task");
        task.state = TaskState::Dialing {
            agent: agent.clone(),
        };
        task.updated_at = now;
        let order = DialOrder {
            task: id,
            work_order: task.work_order.clone(),
            number: task.number.clone(),
            reason: task.reason,
            agent,
            via_reserve,
        };
        let saved = task.clone();
        self.outputs.push_back(Output::Save(saved));
        order
    }

    fn preempt(&mut self, now: DateTime<Utc>, id: TaskId) {
        self.counters.preemptions += 1;
        if let Some(task) = self.tasks.get_mut(&id) {
            task.preemptions += 1;
        }
        self.back_to_pending(now, id);
    }

    fn back_to_pending(&mut self, now: DateTime<Utc>, id: TaskId) {
        self.via_reserve.remove(&id);
        if let Some(task) = self.tasks.get_mut(&id) {
            task.state = TaskState::Pending;
            task.updated_at = now;
            let saved = task.clone();
            self.outputs.push_back(Output::Save(saved));
        }
    }

    /// Ends a task for good: saved, and out of memory.
    fn finish(&mut self, now: DateTime<Utc>, id: TaskId, state: TaskState) {
        self.via_reserve.remove(&id);
        self.clearing.remove(&id);
        let Some(mut task) = self.tasks.remove(&id) else {
            return;
        };
        if let TaskState::Dialing { agent } = &task.state
            && state == TaskState::Cancelled
        {
            self.outputs.push_back(Output::CancelDial {
                task: id,
                agent: agent.clone(),
            });
        }
        task.state = state;
        task.updated_at = now;
        self.outputs.push_back(Output::Save(task));
    }

    fn count(&mut self, outcome: DialOutcome) {
        let counter = match outcome {
            DialOutcome::Connected => &mut self.counters.connected,
            DialOutcome::NoAnswer => &mut self.counters.no_answer,
            DialOutcome::Busy => &mut self.counters.busy,
            DialOutcome::Failed(_) => &mut self.counters.failed,
        };
        *counter += 1;
    }
}

/// The reason's default window from the config, counted from `now`.
pub fn default_window(settings: &CallbacksConfig, reason: Reason, now: DateTime<Utc>) -> Window {
    let offsets: WindowOffsets = match reason {
        Reason::ReferralCheck => settings.referral_check,
        Reason::Evaluation => settings.evaluation,
        Reason::Complaint => settings.complaint,
        Reason::MissedCall => settings.missed_call,
        Reason::Manual => settings.manual,
    };
    Window {
        earliest: now + to_chrono(offsets.earliest),
        latest: now + to_chrono(offsets.latest),
    }
}

/// The wait after attempt `attempts` (1-based): `first`, doubled per further attempt,
/// at most `max`.
pub fn backoff((first, max): (Duration, Duration), attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(30);
    first.saturating_mul(1u32 << doublings).min(max)
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}
