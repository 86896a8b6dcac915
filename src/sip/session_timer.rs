//! SIP session timers (RFC 4028) as a pure policy: reading `Session-Expires` (compact
//! `x`), `Min-SE` and `Supported`/`Require: timer`, deciding the interval and the
//! refresher for an INVITE we answer (§9) or sent (§7.2), the headers that say so,
//! and the two deadlines that follow (§10): when the refresher refreshes, and when the
//! other side gives up and sends BYE.
//!
//! Pure: headers in, decisions and `Instant`s out; the switch owns the timers.

use std::time::{Duration, Instant};

use super::message::{Header, Headers, make_header};

/// The option tag of the extension (RFC 4028 §3).
pub const TIMER: &str = "timer";
/// The smallest Min-SE any party may use (RFC 4028 §4, §5).
pub const RFC_MIN_SE: Duration = Duration::from_secs(90);

/// Our settings. The defaults are the RFC's floor for `min_se` (a smaller one is not
/// allowed) and the RFC's recommended interval, 30 minutes (§4), for `session_interval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionTimerConfig {
    /// The shortest interval we accept; a shorter Session-Expires gets `422`.
    pub min_se: Duration,
    /// The interval we ask for, and the longest we grant.
    pub session_interval: Duration,
}

impl Default for SessionTimerConfig {
    fn default() -> Self {
        SessionTimerConfig {
            min_se: RFC_MIN_SE,
            session_interval: Duration::from_secs(1800),
        }
    }
}

/// Malformed session-timer headers: the request is answered `400`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionTimerError {
    #[error("invalid {header} header {value:?}: {reason}")]
    Invalid {
        header: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// Which side of the dialog refreshes (the `refresher` parameter, §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refresher {
    Uac,
    Uas,
}

impl Refresher {
    pub fn as_str(self) -> &'static str {
        match self {
            Refresher::Uac => "uac",
            Refresher::Uas => "uas",
        }
    }
}

/// Our role in the INVITE that set up (or last refreshed) the session: the refresher
/// names a role, not a party, so each side needs to know which one it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Uac,
    Uas,
}

/// What a request (or response) says about session timers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimerHeaders {
    /// `Session-Expires` delta-seconds.
    pub session_expires: Option<Duration>,
    /// Its `refresher` parameter.
    pub refresher: Option<Refresher>,
    /// `Min-SE` delta-seconds.
    pub min_se: Option<Duration>,
    /// `timer` in `Supported`.
    pub supported: bool,
    /// `timer` in `Require`.
    pub required: bool,
}

/// Reads the session-timer headers of a message (compact `x` and `k` too).
pub fn parse(headers: &Headers) -> Result<TimerHeaders, SessionTimerError> {
    let mut timer = TimerHeaders::default();
    for header in headers.iter() {
        let name = header.name();
        let value = header.value().trim();
        if name.eq_ignore_ascii_case("Session-Expires") || name.eq_ignore_ascii_case("x") {
            let (seconds, refresher) = parse_session_expires(value)?;
            timer.session_expires = Some(seconds);
            timer.refresher = refresher;
        } else if name.eq_ignore_ascii_case("Min-SE") {
            let number = value.split(';').next().unwrap_or_default().trim();
            timer.min_se = Some(delta_seconds(number, "Min-SE", value)?);
        } else if name.eq_ignore_ascii_case("Supported") || name.eq_ignore_ascii_case("k") {
            timer.supported |= lists(value, TIMER);
        } else if name.eq_ignore_ascii_case("Require") {
            timer.required |= lists(value, TIMER);
        }
    }
    Ok(timer)
}

fn lists(value: &str, option: &str) -> bool {
    value
        .split(',')
        .any(|tag| tag.trim().eq_ignore_ascii_case(option))
}

fn delta_seconds(
    number: &str,
    header: &'static str,
    value: &str,
) -> Result<Duration, SessionTimerError> {
    let invalid = |reason| SessionTimerError::Invalid {
        header,
        value: value.to_owned(),
        reason,
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("not delta-seconds"));
    }
    // RFC 3261 §25.1 delta-seconds are at most 2^32-1; longer runs of digits are junk.
    number
        .parse::<u32>()
        .map(|seconds| Duration::from_secs(seconds.into()))
        .map_err(|_| invalid("too large"))
}

fn parse_session_expires(value: &str) -> Result<(Duration, Option<Refresher>), SessionTimerError> {
    let mut parts = value.split(';');
    let seconds = delta_seconds(
        parts.next().unwrap_or_default().trim(),
        "Session-Expires",
        value,
    )?;
    let mut refresher = None;
    for param in parts {
        let Some((name, param_value)) = param.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("refresher") {
            refresher = match param_value.trim().to_ascii_lowercase().as_str() {
                "uac" => Some(Refresher::Uac),
                "uas" => Some(Refresher::Uas),
                _ => {
                    return Err(SessionTimerError::Invalid {
                        header: "Session-Expires",
                        value: value.to_owned(),
                        reason: "refresher is neither uac nor uas",
                    });
                }
            };
        }
    }
    Ok((seconds, refresher))
}

/// A session timer in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionTimer {
    pub interval: Duration,
    pub refresher: Refresher,
}

/// What to do with the session timer of an INVITE we answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No session timer: the peer asked for none and does not support the extension.
    None,
    /// The asked interval is below our minimum: answer `422` with this `Min-SE` (§9).
    Reject422 { min_se: Duration },
    /// Use this timer; put [`Decision::response_headers`] in the 2xx.
    Accept {
        interval: Duration,
        refresher: Refresher,
        /// The peer supports the extension, so the 2xx says `Require: timer` (§9).
        peer_supports: bool,
    },
}

impl Decision {
    /// The headers of our answer: `Session-Expires: N;refresher=…` and, when the peer
    /// supports timers, `Require: timer` for an accepted timer; `Min-SE: N` for a 422.
    pub fn response_headers(&self) -> Vec<Header> {
        match self {
            Decision::None => Vec::new(),
            Decision::Reject422 { min_se } => {
                vec![make_header("Min-SE", min_se.as_secs().to_string())]
            }
            Decision::Accept {
                interval,
                refresher,
                peer_supports,
            } => {
                let mut headers = vec![session_expires_header(*interval, Some(*refresher))];
                if *peer_supports {
                    headers.push(make_header("Require", TIMER.to_owned()));
                }
                headers
            }
        }
    }

    /// The timer in force, if any.
    pub fn timer(&self) -> Option<SessionTimer> {
        match self {
            Decision::Accept {
                interval,
                refresher,
                ..
            } => Some(SessionTimer {
                interval: *interval,
                refresher: *refresher,
            }),
            _ => None,
        }
    }
}

/// `Session-Expires: N` with `;refresher=` when given.
pub fn session_expires_header(interval: Duration, refresher: Option<Refresher>) -> Header {
    let value = match refresher {
        Some(refresher) => format!("{};refresher={}", interval.as_secs(), refresher.as_str()),
        None => interval.as_secs().to_string(),
    };
    make_header("Session-Expires", value)
}

/// The UAS decision for an INVITE or UPDATE (RFC 4028 §9).
///
/// - A Session-Expires below our `min_se` is refused with `422` and our Min-SE.
/// - The interval is the asked one, lowered to our `session_interval` if longer, but
///   never below the request's Min-SE or ours.
/// - The refresher is the one the request names (the UAS must not change it); when
///   none is named it is `uac` if the peer supports timers, else `uas` (a peer without
///   the extension cannot be asked to refresh).
/// - Without Session-Expires, a peer that supports timers still gets one, at our
///   interval with itself as refresher; a peer that supports nothing gets none.
pub fn negotiate_uas(request: &TimerHeaders, config: &SessionTimerConfig) -> Decision {
    let floor = request
        .min_se
        .unwrap_or(RFC_MIN_SE)
        .max(config.min_se)
        .max(RFC_MIN_SE);
    let asked = match request.session_expires {
        Some(asked) if asked < config.min_se.max(RFC_MIN_SE) => {
            return Decision::Reject422 {
                min_se: config.min_se.max(RFC_MIN_SE),
            };
        }
        Some(asked) => asked,
        None if request.supported => config.session_interval,
        None => return Decision::None,
    };
    let interval = asked.min(config.session_interval).max(floor);
    // §9: a peer without the extension cannot be asked to refresh, whatever a proxy
    // wrote; otherwise its choice stands, and uac when it made none.
    let refresher = if request.supported {
        request.refresher.unwrap_or(Refresher::Uac)
    } else {
        Refresher::Uas
    };
    Decision::Accept {
        interval,
        refresher,
        peer_supports: request.supported,
    }
}

/// The headers of an INVITE we send (§7.1): `Supported: timer`, our interval and our
/// Min-SE, no refresher (the UAS picks, §7.1 lets the UAC leave it out). `min_se`
/// overrides ours after a `422` ([`retry_after_422`]).
pub fn uac_request_headers(config: &SessionTimerConfig) -> Vec<Header> {
    vec![
        make_header("Supported", TIMER.to_owned()),
        session_expires_header(config.session_interval.max(config.min_se), None),
        make_header("Min-SE", config.min_se.as_secs().to_string()),
    ]
}

/// After a `422` to our INVITE (§7.3): the settings to retry with, using the larger of
/// our Min-SE and the one the 422 demands. `None` when the 422 names no usable Min-SE
/// (then retrying would loop).
pub fn retry_after_422(
    config: &SessionTimerConfig,
    response: &TimerHeaders,
) -> Option<SessionTimerConfig> {
    let demanded = response.min_se?;
    let min_se = demanded.max(config.min_se);
    Some(SessionTimerConfig {
        min_se,
        session_interval: config.session_interval.max(min_se),
    })
}

/// The timer of an INVITE we sent, read from its 2xx (§7.2): the 2xx's Session-Expires
/// and refresher (a 2xx without a refresher leaves refreshing to us, the UAC); without
/// Session-Expires the UAS does not do timers and neither do we.
pub fn negotiate_uac(response: &TimerHeaders) -> Option<SessionTimer> {
    let interval = response.session_expires?;
    Some(SessionTimer {
        interval,
        refresher: response.refresher.unwrap_or(Refresher::Uac),
    })
}

/// When the refresher sends its refresh: half the interval after the last one (§10).
pub fn refresh_deadline(now: Instant, interval: Duration) -> Instant {
    now + interval / 2
}

/// When the side that does not refresh gives up and sends BYE: the session's expiry
/// minus the smaller of 32 s and a third of the interval (§10).
pub fn expiry_deadline(now: Instant, interval: Duration) -> Instant {
    now + interval - (interval / 3).min(Duration::from_secs(32))
}

/// What our side of a dialog waits for next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextStep {
    /// We are the refresher: send a re-INVITE or UPDATE at this instant.
    Refresh(Instant),
    /// The peer is: if no refresh arrives by this instant, send BYE.
    HangUpUnlessRefreshed(Instant),
}

impl SessionTimer {
    /// Whether our side refreshes, given our role in the INVITE (or refresh) that set
    /// this timer.
    pub fn we_refresh(&self, our_role: Role) -> bool {
        matches!(
            (self.refresher, our_role),
            (Refresher::Uac, Role::Uac) | (Refresher::Uas, Role::Uas)
        )
    }

    /// The deadline that follows the last successful refresh (or the 2xx) at `now`.
    pub fn next_step(&self, now: Instant, our_role: Role) -> NextStep {
        if self.we_refresh(our_role) {
            NextStep::Refresh(refresh_deadline(now, self.interval))
        } else {
            NextStep::HangUpUnlessRefreshed(expiry_deadline(now, self.interval))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[(&str, &str)]) -> Headers {
        Headers::from(
            lines
                .iter()
                .map(|(name, value)| make_header(name, value.to_string()))
                .collect::<Vec<_>>(),
        )
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    const CONFIG: SessionTimerConfig = SessionTimerConfig {
        min_se: Duration::from_secs(90),
        session_interval: Duration::from_secs(1800),
    };

    #[test]
    fn defaults_are_the_rfc_floor_and_half_an_hour_rfc4028_4() {
        assert_eq!(SessionTimerConfig::default(), CONFIG);
    }

    #[test]
    fn headers_are_read_in_long_and_compact_form_rfc4028_4_5() {
        let long = parse(&headers(&[
            ("Supported", "100rel, timer"),
            ("Session-Expires", "1800;refresher=uac"),
            ("Min-SE", "120"),
        ]))
        .expect("valid");
        assert_eq!(
            long,
            TimerHeaders {
                session_expires: Some(secs(1800)),
                refresher: Some(Refresher::Uac),
                min_se: Some(secs(120)),
                supported: true,
                required: false,
            }
        );
        let compact = parse(&headers(&[
            ("k", "timer"),
            ("x", "90 ; refresher=UAS"),
            ("Require", "timer"),
        ]))
        .expect("valid");
        assert_eq!(compact.session_expires, Some(secs(90)));
        assert_eq!(compact.refresher, Some(Refresher::Uas));
        assert!(compact.supported && compact.required);
        let none = parse(&headers(&[("Supported", "replaces")])).expect("valid");
        assert_eq!(none, TimerHeaders::default());
    }

    #[test]
    fn malformed_values_are_errors() {
        for (name, value) in [
            ("Session-Expires", "soon"),
            ("Session-Expires", ""),
            ("Session-Expires", "90;refresher=both"),
            ("Session-Expires", "99999999999"),
            ("Min-SE", "-5"),
        ] {
            assert!(
                parse(&headers(&[(name, value)])).is_err(),
                "{name}: {value}"
            );
        }
    }

    #[test]
    fn too_short_an_interval_gets_422_with_our_min_se_rfc4028_9() {
        let request = TimerHeaders {
            session_expires: Some(secs(60)),
            supported: true,
            ..TimerHeaders::default()
        };
        let decision = negotiate_uas(&request, &CONFIG);
        assert_eq!(decision, Decision::Reject422 { min_se: secs(90) });
        let headers = decision.response_headers();
        assert_eq!(headers.len(), 1);
        assert_eq!((headers[0].name(), headers[0].value()), ("Min-SE", "90"));
        assert_eq!(decision.timer(), None);
    }

    #[test]
    fn a_named_refresher_is_kept_and_timer_is_required_back_rfc4028_9() {
        let request = TimerHeaders {
            session_expires: Some(secs(90)),
            refresher: Some(Refresher::Uac),
            supported: true,
            ..TimerHeaders::default()
        };
        let decision = negotiate_uas(&request, &CONFIG);
        assert_eq!(
            decision,
            Decision::Accept {
                interval: secs(90),
                refresher: Refresher::Uac,
                peer_supports: true
            }
        );
        let headers: Vec<(String, String)> = decision
            .response_headers()
            .iter()
            .map(|h| (h.name().to_string(), h.value().to_string()))
            .collect();
        assert_eq!(
            headers,
            [
                (
                    "Session-Expires".to_string(),
                    "90;refresher=uac".to_string()
                ),
                ("Require".to_string(), "timer".to_string())
            ]
        );
        let uas_named = TimerHeaders {
            refresher: Some(Refresher::Uas),
            ..request
        };
        assert_eq!(
            negotiate_uas(&uas_named, &CONFIG).timer(),
            Some(SessionTimer {
                interval: secs(90),
                refresher: Refresher::Uas
            })
        );
    }

    #[test]
    fn an_unnamed_refresher_is_the_uac_when_it_supports_timers_else_uas_rfc4028_9() {
        let supports = TimerHeaders {
            session_expires: Some(secs(600)),
            supported: true,
            ..TimerHeaders::default()
        };
        assert_eq!(
            negotiate_uas(&supports, &CONFIG)
                .timer()
                .map(|t| t.refresher),
            Some(Refresher::Uac)
        );
        // A proxy inserted Session-Expires for a UAC without the extension.
        let proxy_inserted = TimerHeaders {
            session_expires: Some(secs(600)),
            refresher: Some(Refresher::Uac),
            supported: false,
            ..TimerHeaders::default()
        };
        let decision = negotiate_uas(&proxy_inserted, &CONFIG);
        assert_eq!(decision.timer().map(|t| t.refresher), Some(Refresher::Uas));
        assert!(
            decision
                .response_headers()
                .iter()
                .all(|h| h.name() != "Require"),
            "no Require: timer for a peer that does not support it"
        );
    }

    #[test]
    fn interval_is_capped_at_ours_but_not_below_any_min_se_rfc4028_9() {
        let long = TimerHeaders {
            session_expires: Some(secs(7200)),
            supported: true,
            ..TimerHeaders::default()
        };
        assert_eq!(
            negotiate_uas(&long, &CONFIG).timer().map(|t| t.interval),
            Some(secs(1800))
        );
        let with_min = TimerHeaders {
            session_expires: Some(secs(7200)),
            min_se: Some(secs(3600)),
            supported: true,
            ..TimerHeaders::default()
        };
        assert_eq!(
            negotiate_uas(&with_min, &CONFIG)
                .timer()
                .map(|t| t.interval),
            Some(secs(3600)),
            "the request's Min-SE is a floor for our reduction"
        );
    }

    #[test]
    fn without_session_expires_only_a_supporting_peer_gets_a_timer_rfc4028_9() {
        let supports = TimerHeaders {
            supported: true,
            ..TimerHeaders::default()
        };
        assert_eq!(
            negotiate_uas(&supports, &CONFIG),
            Decision::Accept {
                interval: secs(1800),
                refresher: Refresher::Uac,
                peer_supports: true
            }
        );
        assert_eq!(
            negotiate_uas(&TimerHeaders::default(), &CONFIG),
            Decision::None
        );
        assert!(Decision::None.response_headers().is_empty());
    }

    #[test]
    fn deadlines_follow_rfc4028_10() {
        let start = Instant::now();
        assert_eq!(refresh_deadline(start, secs(90)), start + secs(45));
        // 90 s: a third (30 s) is less than 32 s.
        assert_eq!(expiry_deadline(start, secs(90)), start + secs(60));
        // 1800 s: 32 s before expiry.
        assert_eq!(expiry_deadline(start, secs(1800)), start + secs(1768));
        let timer = SessionTimer {
            interval: secs(1800),
            refresher: Refresher::Uac,
        };
        assert!(timer.we_refresh(Role::Uac) && !timer.we_refresh(Role::Uas));
        assert_eq!(
            timer.next_step(start, Role::Uac),
            NextStep::Refresh(start + secs(900))
        );
        assert_eq!(
            timer.next_step(start, Role::Uas),
            NextStep::HangUpUnlessRefreshed(start + secs(1768))
        );
    }

    #[test]
    fn our_invite_asks_for_a_timer_and_reads_the_answer_rfc4028_7() {
        let ours: Vec<(String, String)> = uac_request_headers(&CONFIG)
            .iter()
            .map(|h| (h.name().to_string(), h.value().to_string()))
            .collect();
        assert_eq!(
            ours,
            [
                ("Supported".to_string(), "timer".to_string()),
                ("Session-Expires".to_string(), "1800".to_string()),
                ("Min-SE".to_string(), "90".to_string())
            ]
        );
        let ok = parse(&headers(&[
            ("Session-Expires", "1800;refresher=uas"),
            ("Require", "timer"),
        ]))
        .expect("2xx");
        let timer = negotiate_uac(&ok).expect("timer");
        assert_eq!(timer.refresher, Refresher::Uas);
        assert!(!timer.we_refresh(Role::Uac));
        let no_refresher = parse(&headers(&[("Session-Expires", "600")])).expect("2xx");
        assert_eq!(
            negotiate_uac(&no_refresher).map(|t| t.refresher),
            Some(Refresher::Uac)
        );
        assert_eq!(negotiate_uac(&TimerHeaders::default()), None);
    }

    #[test]
    fn a_422_raises_our_min_se_for_the_retry_rfc4028_7_3() {
        let too_small = parse(&headers(&[("Min-SE", "3600")])).expect("422");
        let retry = retry_after_422(&CONFIG, &too_small).expect("retry");
        assert_eq!(retry.min_se, secs(3600));
        assert_eq!(retry.session_interval, secs(3600));
        assert_eq!(retry_after_422(&CONFIG, &TimerHeaders::default()), None);
    }
}
