//! `[desk]`: the agent desk in a browser (issue 13). Optional: without the section
//! desks are served with a 5 s heartbeat and a 10 s audio timeout.
//!
//! Pure: validates what `config::Config::parse` read; errors name the file and line.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Validator};

/// How browser desks are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeskConfig {
    /// How often the engine sends a heartbeat; three missed answers lose the desk.
    pub heartbeat: Duration,
    /// No audio from the browser for this long during a call loses the desk.
    pub rtp_timeout: Duration,
}

impl Default for DeskConfig {
    fn default() -> Self {
        DeskConfig {
            heartbeat: Duration::from_secs(5),
            rtp_timeout: Duration::from_secs(10),
        }
    }
}

/// The section as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDesk {
    heartbeat_seconds: Option<Spanned<u64>>,
    rtp_timeout_seconds: Option<Spanned<u64>>,
}

/// Validates `[desk]`: a heartbeat of 1–60 s (slower would leave a dead desk holding
/// calls for minutes), an audio timeout of 2–300 s.
pub(super) fn validate(
    v: &Validator<'_>,
    raw: &Option<RawDesk>,
) -> Result<DeskConfig, ConfigError> {
    let defaults = DeskConfig::default();
    let Some(raw) = raw else {
        return Ok(defaults);
    };
    let seconds = |value: &Option<Spanned<u64>>,
                   key: &'static str,
                   range: std::ops::RangeInclusive<u64>,
                   default: Duration| {
        match value {
            None => Ok(default),
            Some(value) if range.contains(value.get_ref()) => {
                Ok(Duration::from_secs(*value.get_ref()))
            }
            Some(value) => Err(v.invalid(
                value.span(),
                key,
                format!(
                    "{} is outside {}..={} seconds",
                    value.get_ref(),
                    range.start(),
                    range.end()
                ),
            )),
        }
    };
    Ok(DeskConfig {
        heartbeat: seconds(
            &raw.heartbeat_seconds,
            "desk.heartbeat_seconds",
            1..=60,
            defaults.heartbeat,
        )?,
        rtp_timeout: seconds(
            &raw.rtp_timeout_seconds,
            "desk.rtp_timeout_seconds",
            2..=300,
            defaults.rtp_timeout,
        )?,
    })
}
