//! Overload control at the edge (RFC 6357 §5: reject early and cheaply; RFC 7339's idea
//! of acting on the server's own state rather than a fixed rate). The transports ask
//! [`OverloadGuard::shed`] before queueing a new INVITE; while the engine falls behind
//! (too many messages waiting for the switch, or the event loop running late) the INVITE
//! is answered with a stateless `503` and `Retry-After` right there, with no
//! transaction, dialog, work order or call made for it. The caller's ACK of that `503`
//! is recognised by the To tag the refusal gave it and dropped at the edge too
//! ([`OverloadGuard::absorbs`]): under a flood there is one for every refused INVITE,
//! and queued for the switch they would fill the very backlog being shed for. Everything
//! else (other ACKs, BYE, CANCEL, responses, in-dialog requests) always goes through, so
//! calls in progress finish and the backlog drains.
//!
//! Three signals, each the engine's own state:
//! - **queue delay** (RFC 8289, CoDel's reading of a queue): how long messages wait for
//!   the switch, taken as the switch dequeues each one ([`OverloadGuard::dequeued`]).
//!   A wait above `overload_max_queue_delay_ms` sheds once it has lasted
//!   [`STANDING_INTERVAL`]: a burst that the switch works off in a moment is absorbed,
//!   a standing queue is not. After shedding, for [`OVERLOAD_MEMORY`], any wait above
//!   the target sheds at once, so a sustained overload does not admit a fresh burst
//!   every interval.
//! - **backlog**: more messages waiting than `overload_max_backlog`, a hard cap for a
//!   switch that stopped dequeuing altogether;
//! - **event-loop lag**: how late a short timer fires ([`watch_event_loop`]), a signal
//!   that covers every task the engine runs.
//!
//! The decisions ([`shed_reason`], [`QueueDelay`]) are pure.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::sip::Inbound;
use crate::sip::builder::ResponseBuilder;
use crate::sip::message::{self, Header, Method};

/// Starts the To tag of every stateless refusal. The engine's own tags are hex
/// ([`message::new_tag`]), so no dialog of the engine's can carry it.
const REFUSAL_TAG_PREFIX: &str = "shed-";

/// How long the queue delay must stay above its target before new calls are shed
/// (CoDel's interval, RFC 8289 §4.3: about a round trip's worth of burst absorbed).
pub const STANDING_INTERVAL: Duration = Duration::from_millis(100);
/// After a shedding episode, how long a queue delay above the target sheds at once.
pub const OVERLOAD_MEMORY: Duration = Duration::from_secs(1);

/// How often the event loop's lag is sampled.
const LAG_SAMPLE: Duration = Duration::from_millis(10);
/// Weight of a new sample in the smoothed lag: over ~8 samples (80 ms), so one slow
/// tick does not shed and a real backlog is seen within a tenth of a second.
const LAG_SMOOTHING: f64 = 1.0 / 8.0;

/// Why a new call was shed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShedReason {
    /// More messages wait for the switch than `limits.overload_max_backlog`.
    Backlog,
    /// Messages have waited for the switch longer than
    /// `limits.overload_max_queue_delay_ms`, for longer than [`STANDING_INTERVAL`].
    QueueDelay,
    /// The event loop runs later than `limits.overload_max_lag_ms`.
    Lag,
    /// The inbound queue is full: the message could not even be queued.
    QueueFull,
}

impl ShedReason {
    pub fn label(self) -> &'static str {
        match self {
            ShedReason::Backlog => "backlog",
            ShedReason::QueueDelay => "queue_delay",
            ShedReason::Lag => "event_loop_lag",
            ShedReason::QueueFull => "queue_full",
        }
    }
}

/// The thresholds, from `[limits]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverloadSettings {
    pub max_backlog: usize,
    /// The queue delay's target (CoDel's `TARGET`).
    pub max_queue_delay: Duration,
    pub max_lag: Duration,
    /// Sent in `Retry-After` (`calls.retry_after_seconds`).
    pub retry_after: Duration,
}

/// Whether a new call is shed with `backlog` messages waiting, the queue's delay in
/// the state `queue_delay` says, and the loop `lag` late.
pub fn shed_reason(
    settings: &OverloadSettings,
    backlog: usize,
    queue_delay_standing: bool,
    lag: Duration,
) -> Option<ShedReason> {
    if backlog > settings.max_backlog {
        Some(ShedReason::Backlog)
    } else if queue_delay_standing {
        Some(ShedReason::QueueDelay)
    } else if lag > settings.max_lag {
        Some(ShedReason::Lag)
    } else {
        None
    }
}

/// The switch's inbound queue as CoDel reads it (pure): fed the wait of every message
/// the switch takes, it says whether the wait is a standing one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueDelay {
    /// Since when every message taken waited longer than the target.
    above_since: Option<Instant>,
    /// When the last shedding episode ended.
    last_episode_end: Option<Instant>,
}

impl QueueDelay {
    /// The switch took a message at `now` that had waited `waited`; `drained`: none
    /// waits behind it (RFC 8289 leaves its dropping state when the queue empties, so a
    /// long wait with nothing behind it is over, not standing).
    pub fn dequeued(&mut self, now: Instant, waited: Duration, target: Duration, drained: bool) {
        if waited > target && !drained {
            self.above_since.get_or_insert(now);
        } else if self.above_since.is_some() {
            if self.standing(now) {
                self.last_episode_end = Some(now);
            }
            self.above_since = None;
        }
    }

    /// Whether new calls are to be shed at `now`: the wait has stayed above the target
    /// for [`STANDING_INTERVAL`], or at all within [`OVERLOAD_MEMORY`] of an episode.
    pub fn standing(&self, now: Instant) -> bool {
        let Some(since) = self.above_since else {
            return false;
        };
        now.saturating_duration_since(since) >= STANDING_INTERVAL
            || self
                .last_episode_end
                .is_some_and(|end| now.saturating_duration_since(end) < OVERLOAD_MEMORY)
    }
}

/// A message on its way to the switch, with when the transport queued it (for the
/// queue delay).
#[derive(Debug)]
pub struct Queued {
    pub at: Instant,
    pub message: Inbound,
}

impl Queued {
    pub fn now(message: Inbound) -> Queued {
        Queued {
            at: Instant::now(),
            message,
        }
    }
}

/// What the transports consult; shared with the lag watcher and the switch task.
#[derive(Debug)]
pub struct OverloadGuard {
    settings: OverloadSettings,
    /// Smoothed event-loop lag in microseconds.
    lag_micros: AtomicU64,
    queue_delay: Mutex<QueueDelay>,
}

impl OverloadGuard {
    pub fn new(settings: OverloadSettings) -> Arc<OverloadGuard> {
        Arc::new(OverloadGuard {
            settings,
            lag_micros: AtomicU64::new(0),
            queue_delay: Mutex::new(QueueDelay::default()),
        })
    }

    /// The switch took `queued` off its queue now; `drained`: the queue is empty.
    pub fn dequeued(&self, queued: &Queued, drained: bool) {
        let now = Instant::now();
        let waited = now.saturating_duration_since(queued.at);
        self.queue_delay
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .dequeued(now, waited, self.settings.max_queue_delay, drained);
    }

    fn queue_delay_standing(&self) -> bool {
        self.queue_delay
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .standing(Instant::now())
    }

    /// A guard that never sheds (transports used without an engine around them).
    pub fn disabled() -> Arc<OverloadGuard> {
        OverloadGuard::new(OverloadSettings {
            max_backlog: usize::MAX,
            max_queue_delay: Duration::MAX,
            max_lag: Duration::MAX,
            retry_after: Duration::from_secs(5),
        })
    }

    pub fn lag(&self) -> Duration {
        Duration::from_micros(self.lag_micros.load(Ordering::Relaxed))
    }

    /// For a message about to be queued with `backlog` already waiting: the stateless
    /// `503` to send instead when it is a new INVITE the engine cannot take now.
    pub fn shed(&self, message: &Inbound, backlog: usize) -> Option<(ShedReason, Vec<u8>)> {
        if !is_new_invite(message) {
            return None;
        }
        let reason = shed_reason(
            &self.settings,
            backlog,
            self.queue_delay_standing(),
            self.lag(),
        )?;
        Some((reason, self.refusal(message)?))
    }

    /// Whether `message` is the ACK of one of the engine's stateless refusals: nothing
    /// waits for it (the refusal made no transaction), so the transport drops it
    /// instead of queueing it. RFC 3261 §17.1.1.3: that ACK only stops the refusal's
    /// retransmission, which a stateless `503` never has.
    pub fn absorbs(message: &Inbound) -> bool {
        matches!(
            message,
            Inbound::Request { summary, .. }
                if summary.method == Method::Ack
                    && summary.to_tag.as_deref().is_some_and(|tag| tag.starts_with(REFUSAL_TAG_PREFIX))
        )
    }

    /// What a transport asks before queueing `message` on `queue`: the stateless `503`
    /// to send instead, counted, when it is a new INVITE the engine cannot take now.
    pub fn refuse_before_queueing(
        &self,
        message: &Inbound,
        queue: &tokio::sync::mpsc::Sender<Queued>,
    ) -> Option<Vec<u8>> {
        let backlog = queue.max_capacity() - queue.capacity();
        let (reason, reply) = self.shed(message, backlog)?;
        count_shed(reason);
        Some(reply)
    }

    /// The same for a message the full queue refused: the counted `503`, if it is a new
    /// INVITE (anything else is dropped; its sender retransmits).
    pub fn refuse_unqueued(&self, message: &Inbound) -> Option<Vec<u8>> {
        let (reason, reply) = self.queue_full(message)?;
        count_shed(reason);
        Some(reply)
    }

    /// The stateless `503` for a new INVITE that could not be queued at all.
    pub fn queue_full(&self, message: &Inbound) -> Option<(ShedReason, Vec<u8>)> {
        if !is_new_invite(message) {
            return None;
        }
        Some((ShedReason::QueueFull, self.refusal(message)?))
    }

    fn refusal(&self, message: &Inbound) -> Option<Vec<u8>> {
        let Inbound::Request { request, .. } = message else {
            return None;
        };
        let retry = self.settings.retry_after.as_secs().to_string();
        // RFC 3261 §8.2.6.2: a response outside any dialog carries a To tag of ours.
        let tag = format!("{REFUSAL_TAG_PREFIX}{}", message::new_tag());
        let response = ResponseBuilder::to(request, 503)
            .to_tag(&tag)
            .header(Header::RetryAfter(message::RetryAfter::new(retry)))
            .build();
        Some(response.to_string().into_bytes())
    }
}

/// Counts a shed INVITE.
fn count_shed(reason: ShedReason) {
    metrics::counter!(crate::metrics::OVERLOAD_SHED_TOTAL, crate::metrics::REASON_LABEL => reason.label())
        .increment(1);
}

fn is_new_invite(message: &Inbound) -> bool {
    matches!(
        message,
        Inbound::Request { summary, .. }
            if summary.method == Method::Invite && summary.to_tag.is_none()
    )
}

/// Samples how late a short timer fires, smoothed, until `stop` turns true.
pub async fn watch_event_loop(guard: Arc<OverloadGuard>, mut stop: watch::Receiver<bool>) {
    let mut smoothed = 0.0f64;
    loop {
        let planned = tokio::time::Instant::now() + LAG_SAMPLE;
        tokio::select! {
            _ = tokio::time::sleep_until(planned) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let late = tokio::time::Instant::now().saturating_duration_since(planned);
        smoothed += (late.as_secs_f64() - smoothed) * LAG_SMOOTHING;
        guard
            .lag_micros
            .store((smoothed * 1e6) as u64, Ordering::Relaxed);
        metrics::gauge!(crate::metrics::EVENT_LOOP_LAG_SECONDS).set(smoothed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::TransportKind;
    use crate::sip::inbound::{Received, classify};

    const SETTINGS: OverloadSettings = OverloadSettings {
        max_backlog: 512,
        max_queue_delay: Duration::from_millis(20),
        max_lag: Duration::from_millis(100),
        retry_after: Duration::from_secs(5),
    };

    fn message(text: &str) -> Inbound {
        let source = "127.0.0.1:5070".parse().unwrap();
        match classify(text.as_bytes(), source, TransportKind::Udp) {
            Received::Message(m) => *m,
            Received::Malformed(_) => panic!("test message is malformed"),
        }
    }

    fn request(method: &str, to_tag: Option<&str>) -> Inbound {
        let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        message(&format!(
            "{method} sip:8890@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:13800138000@127.0.0.1>;tag=caller\r\n\
             To: <sip:8890@127.0.0.1>{to_tag}\r\n\
             Call-ID: overload-1\r\n\
             CSeq: 1 {method}\r\n\
             Contact: <sip:13800138000@127.0.0.1:5070>\r\n\
             Content-Length: 0\r\n\r\n"
        ))
    }

    #[test]
    fn the_decision_follows_backlog_then_lag() {
        let decide = |backlog, standing, lag_ms| {
            shed_reason(&SETTINGS, backlog, standing, Duration::from_millis(lag_ms))
        };
        assert_eq!(decide(10, false, 2), None);
        assert_eq!(decide(513, true, 0), Some(ShedReason::Backlog));
        assert_eq!(decide(10, true, 200), Some(ShedReason::QueueDelay));
        assert_eq!(decide(0, false, 101), Some(ShedReason::Lag));
        assert_eq!(decide(512, false, 100), None);
    }

    #[test]
    fn only_new_invites_are_shed_and_they_get_a_stateless_503_with_retry_after() {
        let guard = OverloadGuard::new(SETTINGS);
        let (reason, reply) = guard
            .shed(&request("INVITE", None), 600)
            .expect("a new INVITE is shed over the backlog");
        assert_eq!(reason, ShedReason::Backlog);
        let reply = String::from_utf8(reply).unwrap();
        assert!(reply.starts_with("SIP/2.0 503"), "{reply}");
        assert!(reply.contains("Retry-After: 5"), "{reply}");
        assert!(reply.contains("branch=z9hG4bK-1"), "{reply}");
        assert!(reply.contains(";tag="), "a To tag of ours: {reply}");
        // What keeps calls in progress alive always passes.
        for passing in [
            request("INVITE", Some("ours")),
            request("BYE", Some("ours")),
            request("ACK", Some("ours")),
            request("CANCEL", None),
        ] {
            assert!(guard.shed(&passing, 4000).is_none());
            assert!(guard.queue_full(&passing).is_none());
        }
        assert!(guard.shed(&request("INVITE", None), 3).is_none());
        assert_eq!(
            guard.queue_full(&request("INVITE", None)).map(|(r, _)| r),
            Some(ShedReason::QueueFull)
        );
        assert!(
            OverloadGuard::disabled()
                .shed(&request("INVITE", None), 4000)
                .is_none()
        );
    }

    const TARGET: Duration = Duration::from_millis(20);
    const MS: Duration = Duration::from_millis(1);

    /// A burst the switch works off within the interval sheds nothing; a wait that
    /// stays above the target for the interval does (RFC 8289's standing queue).
    #[test]
    fn a_passing_burst_is_absorbed_and_a_standing_queue_sheds() {
        let start = Instant::now();
        let mut queue = QueueDelay::default();
        for ms in 0..90 {
            queue.dequeued(start + MS * ms, MS * 40, TARGET, false);
        }
        assert!(!queue.standing(start + MS * 90), "90 ms above the target");
        queue.dequeued(start + MS * 91, MS * 2, TARGET, false);
        assert!(
            !queue.standing(start + MS * 300),
            "the burst was worked off"
        );

        for ms in 300..=400 {
            queue.dequeued(start + MS * ms, MS * 40, TARGET, false);
        }
        assert!(queue.standing(start + MS * 400));
        assert!(
            queue.standing(start + MS * 450),
            "nothing dequeued: still standing"
        );
    }

    /// After an episode, the next wait above the target sheds at once; a second later
    /// the full interval applies again. A drained queue ends any episode.
    #[test]
    fn after_an_episode_the_next_long_wait_sheds_at_once_for_a_while() {
        let start = Instant::now();
        let mut queue = QueueDelay::default();
        queue.dequeued(start, MS * 30, TARGET, false);
        queue.dequeued(start + MS * 150, MS * 30, TARGET, false);
        assert!(queue.standing(start + MS * 150));
        queue.dequeued(start + MS * 200, MS * 5, TARGET, false);
        assert!(!queue.standing(start + MS * 200));

        queue.dequeued(start + MS * 400, MS * 30, TARGET, false);
        assert!(
            queue.standing(start + MS * 400),
            "within a second of the episode"
        );
        queue.dequeued(start + MS * 420, MS * 30, TARGET, true);
        assert!(!queue.standing(start + MS * 420), "the queue drained");

        queue.dequeued(start + MS * 1500, MS * 30, TARGET, false);
        assert!(
            !queue.standing(start + MS * 1500),
            "a second after: the interval again"
        );
    }

    /// The ACK of a stateless refusal is absorbed at the edge (RFC 6357 §5: shedding
    /// must stay cheap); every other ACK, the ones of the engine's own calls, passes.
    #[test]
    fn the_ack_of_a_refusal_is_absorbed_and_no_other() {
        let guard = OverloadGuard::new(SETTINGS);
        let (_, reply) = guard.shed(&request("INVITE", None), 600).unwrap();
        let reply = String::from_utf8(reply).unwrap();
        let to = reply
            .lines()
            .find(|line| line.starts_with("To:"))
            .expect("a To header");
        let tag = to.split(";tag=").nth(1).expect("a To tag").trim();
        assert!(tag.starts_with(REFUSAL_TAG_PREFIX), "{to}");
        assert!(OverloadGuard::absorbs(&request("ACK", Some(tag))));
        let own_tag = message::new_tag();
        assert!(!OverloadGuard::absorbs(&request("ACK", Some(&own_tag))));
        assert!(!OverloadGuard::absorbs(&request("ACK", None)));
        assert!(!OverloadGuard::absorbs(&request("BYE", Some(tag))));
    }

    /// A task that holds the (single) worker thread makes the watcher's timer fire late:
    /// the lag it reports is at least a share of the time held, however fast the machine.
    #[tokio::test(flavor = "current_thread")]
    async fn the_watcher_sees_a_loop_that_is_held_up() {
        let guard = OverloadGuard::new(SETTINGS);
        let (stop_tx, stop) = watch::channel(false);
        let watcher = tokio::spawn(watch_event_loop(guard.clone(), stop));
        tokio::time::sleep(Duration::from_millis(30)).await;
        // Hogs the only worker, as a switch task drowning in messages would.
        std::thread::sleep(Duration::from_millis(400));
        tokio::time::sleep(Duration::from_millis(15)).await;
        // One sample 400 ms late, smoothed by 1/8: at least 50 ms.
        assert!(
            guard.lag() >= Duration::from_millis(40),
            "{:?}",
            guard.lag()
        );
        assert!(guard.shed(&request("INVITE", None), 0).is_none());
        stop_tx.send(true).unwrap();
        watcher.await.unwrap();
    }
}
