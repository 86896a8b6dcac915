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
//! The decision ([`shed_reason`]) is pure; [`watch_event_loop`] measures the lag by how
//! late a short timer fires, a signal that covers every task the engine runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::sip::Inbound;
use crate::sip::builder::ResponseBuilder;
use crate::sip::message::{self, Header, Method};

/// Starts the To tag of every stateless refusal. The engine's own tags are hex
/// ([`message::new_tag`]), so no dialog of the engine's can carry it.
const REFUSAL_TAG_PREFIX: &str = "shed-";

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
    /// The event loop runs later than `limits.overload_max_lag_ms`.
    Lag,
    /// The inbound queue is full: the message could not even be queued.
    QueueFull,
}

impl ShedReason {
    pub fn label(self) -> &'static str {
        match self {
            ShedReason::Backlog => "backlog",
            ShedReason::Lag => "event_loop_lag",
            ShedReason::QueueFull => "queue_full",
        }
    }
}

/// The thresholds, from `[limits]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverloadSettings {
    pub max_backlog: usize,
    pub max_lag: Duration,
    /// Sent in `Retry-After` (`calls.retry_after_seconds`).
    pub retry_after: Duration,
}

/// Whether a new call is shed with `backlog` messages waiting and the loop `lag` late.
pub fn shed_reason(
    settings: &OverloadSettings,
    backlog: usize,
    lag: Duration,
) -> Option<ShedReason> {
    if backlog > settings.max_backlog {
        Some(ShedReason::Backlog)
    } else if lag > settings.max_lag {
        Some(ShedReason::Lag)
    } else {
        None
    }
}

/// What the transports consult; shared with the lag watcher.
#[derive(Debug)]
pub struct OverloadGuard {
    settings: OverloadSettings,
    /// Smoothed event-loop lag in microseconds.
    lag_micros: AtomicU64,
}

impl OverloadGuard {
    pub fn new(settings: OverloadSettings) -> Arc<OverloadGuard> {
        Arc::new(OverloadGuard {
            settings,
            lag_micros: AtomicU64::new(0),
        })
    }

    /// A guard that never sheds (transports used without an engine around them).
    pub fn disabled() -> Arc<OverloadGuard> {
        OverloadGuard::new(OverloadSettings {
            max_backlog: usize::MAX,
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
        let reason = shed_reason(&self.settings, backlog, self.lag())?;
        Some((reason, self.refusal(message)?))
    }

    /// Whether `message` is the ACK of one of the engine's stateless refusals: nothing
    /// waits for it (the refusal made no transaction), so the transport drops it
    /// instead of queueing it. RFC 3261 §17.1.1.3: that ACK only stops the refusal's
    /// retransmission, which a stateless `503` never has.
    pub fn absorbs(message: &Inbound) -> bool {
        let Inbound::Request { summary, .. } = message else {
            return false;
        };
        summary.method == Method::Ack
            && summary
                .to_tag
                .as_deref()
                .is_some_and(|tag| tag.starts_with(REFUSAL_TAG_PREFIX))
    }

    /// What a transport asks before queueing `message` on `queue`: the stateless `503`
    /// to send instead, counted, when it is a new INVITE the engine cannot take now.
    pub fn refuse_before_queueing(
        &self,
        message: &Inbound,
        queue: &tokio::sync::mpsc::Sender<Inbound>,
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
        assert_eq!(shed_reason(&SETTINGS, 10, Duration::from_millis(2)), None);
        assert_eq!(
            shed_reason(&SETTINGS, 513, Duration::ZERO),
            Some(ShedReason::Backlog)
        );
        assert_eq!(
            shed_reason(&SETTINGS, 0, Duration::from_millis(101)),
            Some(ShedReason::Lag)
        );
        assert_eq!(
            shed_reason(&SETTINGS, 512, Duration::from_millis(100)),
            None
        );
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
