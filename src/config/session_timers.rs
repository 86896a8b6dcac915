//! `[session_timers]`: RFC 4028 session timers on the calls the engine answers and
//! places. Optional: without the section the RFC's values apply (Min-SE 90 s, the
//! floor; a 30-minute interval, the RFC's recommendation).
//!
//! Pure: validates what `config::Config::parse` read; errors name the file and line.

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Validator};
use crate::sip::session_timer::{RFC_MIN_SE, SessionTimerConfig};
use std::time::Duration;

/// The section as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSessionTimers {
    min_se_seconds: Option<Spanned<u64>>,
    session_expires_seconds: Option<Spanned<u64>>,
}

/// Validates `[session_timers]`: Min-SE at least the RFC's 90 s (RFC 4028 §4), the
/// interval at least Min-SE and at most a day (a longer one would keep a dead call's
/// resources for longer than any real call lasts).
pub(super) fn validate(
    v: &Validator<'_>,
    raw: &Option<RawSessionTimers>,
) -> Result<SessionTimerConfig, ConfigError> {
    let defaults = SessionTimerConfig::default();
    let Some(raw) = raw else {
        return Ok(defaults);
    };
    let min_se = match &raw.min_se_seconds {
        None => defaults.min_se,
        Some(value) if *value.get_ref() < RFC_MIN_SE.as_secs() => {
            return Err(v.invalid(
                value.span(),
                "session_timers.min_se_seconds",
                format!(
                    "{} is below RFC 4028's floor of {} s",
                    value.get_ref(),
                    RFC_MIN_SE.as_secs()
                ),
            ));
        }
        Some(value) => Duration::from_secs(*value.get_ref()),
    };
    let session_interval = match &raw.session_expires_seconds {
        None => defaults.session_interval.max(min_se),
        Some(value) => {
            let seconds = *value.get_ref();
            if seconds < min_se.as_secs() || seconds > 86_400 {
                return Err(v.invalid(
                    value.span(),
                    "session_timers.session_expires_seconds",
                    format!(
                        "{seconds} is outside {}..=86400 (Min-SE up to a day)",
                        min_se.as_secs()
                    ),
                ));
            }
            Duration::from_secs(seconds)
        }
    };
    Ok(SessionTimerConfig {
        min_se,
        session_interval,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};
    use std::path::Path;
    use std::time::Duration;

    const SHIPPED: &str = include_str!("../../config/hotline.toml");

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("hotline.toml"), text)
    }

    #[test]
    fn the_shipped_values_are_the_rfc_defaults_rfc4028_4() {
        let config = parse(SHIPPED).expect("shipped");
        assert_eq!(config.session_timers.min_se, Duration::from_secs(90));
        assert_eq!(
            config.session_timers.session_interval,
            Duration::from_secs(1800)
        );
    }

    #[test]
    fn without_the_section_the_rfc_defaults_apply() {
        let start = SHIPPED.find("\n[session_timers]").expect("section") + 1;
        let end = SHIPPED[start..]
            .find("\n[")
            .map_or(SHIPPED.len(), |e| start + e + 1);
        let text = format!("{}{}", &SHIPPED[..start], &SHIPPED[end..]);
        assert!(!text.contains("[session_timers]"));
        let config = parse(&text).expect("config without the section");
        assert_eq!(
            config.session_timers,
            crate::sip::session_timer::SessionTimerConfig::default()
        );
    }

    #[test]
    fn out_of_range_values_name_the_line() {
        for (from, to, key) in [
            (
                "min_se_seconds = 90",
                "min_se_seconds = 30",
                "session_timers.min_se_seconds",
            ),
            (
                "session_expires_seconds = 1800",
                "session_expires_seconds = 60",
                "session_timers.session_expires_seconds",
            ),
            (
                "session_expires_seconds = 1800",
                "session_expires_seconds = 100000",
                "session_timers.session_expires_seconds",
            ),
        ] {
            let text = SHIPPED.replace(from, to);
            let line = text
                .lines()
                .position(|l| l.starts_with(to))
                .expect("edited line")
                + 1;
            match parse(&text) {
                Err(ConfigError::Invalid {
                    line: got, key: k, ..
                }) => assert_eq!((got, k), (line, key), "{to}"),
                other => panic!("{to}: {other:?}"),
            }
        }
    }
}
