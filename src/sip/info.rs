//! DTMF carried in SIP INFO requests, which some phones send instead of RFC 4733
//! packets: bodies of type `application/dtmf-relay` (`Signal=5\r\nDuration=160`) and
//! `application/dtmf` (the key alone). Pure: a content type and a body in, a key out.
//! The switch answers the INFO `200 OK` and feeds the key to the call's IVR.

/// Why an INFO body carries no usable key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InfoDtmfError {
    /// The INFO is about something else (a content type other than the two DTMF ones).
    #[error("content type {0:?} carries no DTMF")]
    NotDtmf(String),
    /// A `dtmf-relay` body without a `Signal=` line.
    #[error("dtmf-relay body has no Signal line")]
    NoSignal,
    /// A signal that is not a keypad key.
    #[error("{0:?} is not a keypad key")]
    BadKey(String),
    /// A `Duration=` that is not a number of milliseconds.
    #[error("duration {0:?} is not a number of milliseconds")]
    BadDuration(String),
}

/// One key press from an INFO body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InfoDigit {
    /// `0`–`9`, `*`, `#`, `A`–`D`.
    pub key: char,
    /// How long the key was held, when the sender said (ms).
    pub duration_ms: Option<u32>,
}

/// Parses an INFO body by its `Content-Type` (parameters after `;` are ignored, case
/// does not matter).
pub fn parse_dtmf_info(content_type: &str, body: &str) -> Result<InfoDigit, InfoDtmfError> {
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media_type.as_str() {
        "application/dtmf-relay" => parse_dtmf_relay(body),
        "application/dtmf" => Ok(InfoDigit {
            key: key(body.trim())?,
            duration_ms: None,
        }),
        _ => Err(InfoDtmfError::NotDtmf(content_type.trim().to_owned())),
    }
}

/// `Signal=<key>` and optionally `Duration=<ms>`, one per line (CRLF or LF), names in
/// any case, spaces around `=` allowed; other lines are ignored.
fn parse_dtmf_relay(body: &str) -> Result<InfoDigit, InfoDtmfError> {
    let mut signal = None;
    let mut duration_ms = None;
    for line in body.lines() {
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "signal" => signal = Some(key(value)?),
            "duration" => {
                duration_ms = Some(
                    value
                        .parse::<u32>()
                        .map_err(|_| InfoDtmfError::BadDuration(value.to_owned()))?,
                )
            }
            _ => {}
        }
    }
    Ok(InfoDigit {
        key: signal.ok_or(InfoDtmfError::NoSignal)?,
        duration_ms,
    })
}

/// A key as written: `0`–`9`, `*`, `#`, `A`–`D` (any case), or the RFC 4733 event
/// numbers 10 (`*`) and 11 (`#`) that some phones send.
fn key(text: &str) -> Result<char, InfoDtmfError> {
    let bad = || InfoDtmfError::BadKey(text.to_owned());
    match text {
        "10" => return Ok('*'),
        "11" => return Ok('#'),
        _ => {}
    }
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_digit() || c == '*' || c == '#' => Ok(c),
        (Some(c), None) if ('A'..='D').contains(&c.to_ascii_uppercase()) => {
            Ok(c.to_ascii_uppercase())
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtmf_relay_signal_and_duration() {
        assert_eq!(
            parse_dtmf_info("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n"),
            Ok(InfoDigit {
                key: '5',
                duration_ms: Some(160)
            })
        );
        // LF only, spaces, lower case, content-type parameters, an unknown line.
        assert_eq!(
            parse_dtmf_info(
                "Application/DTMF-Relay; charset=utf-8",
                "signal = #\nduration = 250\nVolume=10\n"
            ),
            Ok(InfoDigit {
                key: '#',
                duration_ms: Some(250)
            })
        );
        assert_eq!(
            parse_dtmf_info("application/dtmf-relay", "Signal=11").map(|d| d.key),
            Ok('#')
        );
        assert_eq!(
            parse_dtmf_info("application/dtmf-relay", "Signal=*").map(|d| d.duration_ms),
            Ok(None)
        );
    }

    #[test]
    fn application_dtmf_is_the_key_alone() {
        assert_eq!(
            parse_dtmf_info("application/dtmf", "7\r\n").map(|d| d.key),
            Ok('7')
        );
        assert_eq!(
            parse_dtmf_info("application/dtmf", "a").map(|d| d.key),
            Ok('A')
        );
    }

    #[test]
    fn bad_bodies_say_why() {
        assert_eq!(
            parse_dtmf_info("application/dtmf-relay", "Duration=160"),
            Err(InfoDtmfError::NoSignal)
        );
        assert_eq!(
            parse_dtmf_info("application/dtmf-relay", "Signal=12\r\nDuration=160"),
            Err(InfoDtmfError::BadKey("12".into()))
        );
        assert_eq!(
            parse_dtmf_info("application/dtmf-relay", "Signal=1\r\nDuration=long"),
            Err(InfoDtmfError::BadDuration("long".into()))
        );
        assert_eq!(
            parse_dtmf_info("application/dtmf", ""),
            Err(InfoDtmfError::BadKey(String::new()))
        );
        assert!(matches!(
            parse_dtmf_info("application/media_control+xml", "<x/>"),
            Err(InfoDtmfError::NotDtmf(_))
        ));
    }
}
