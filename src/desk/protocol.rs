//! The desk's WebSocket messages, version 1 (`docs/desk-protocol.md`): what the browser
//! sends, what the engine answers, and the errors with their close codes. Pure: serde
//! types and a parser that says precisely what was wrong with a frame.

use serde::{Deserialize, Serialize};

/// The protocol version this engine speaks; `hello` must name it.
pub const VERSION: u32 = 1;

/// A frame from the browser.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    Hello {
        version: u32,
        token: String,
    },
    /// The desk's one media session: a complete (non-trickle) SDP offer.
    Offer {
        sdp: String,
    },
    Login,
    Pause {
        #[serde(default)]
        reason: Option<String>,
    },
    Resume,
    Logout,
    Answer {
        call: String,
    },
    Hangup {
        call: String,
    },
    Hold {
        call: String,
        held: bool,
    },
    Dtmf {
        call: String,
        digit: char,
    },
    WrapupDone {
        work_order: String,
    },
    Heartbeat,
}

/// The agent's state as the desk shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StateView {
    /// `logged_out`, `available`, `ringing`, `on_call`, `wrap_up`, `paused`.
    pub state: String,
    /// Seconds in that state.
    pub seconds: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Who ended a call, as `ended` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndedBy {
    Agent,
    Caller,
    DeskLost,
}

/// A frame to the browser.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Welcome {
        version: u32,
        agent: String,
        heartbeat_seconds: u64,
        state: StateView,
    },
    Answer {
        sdp: String,
    },
    MediaCheck {
        ok: bool,
        packets: u64,
    },
    State(StateView),
    Offered {
        call: String,
        work_order: Option<String>,
        queue: Option<String>,
        waited_seconds: Option<u64>,
        /// Masked by the switch before it reaches the desk (R12).
        caller: String,
    },
    OfferWithdrawn {
        call: String,
        reason: String,
    },
    Connected {
        call: String,
        work_order: Option<String>,
    },
    Held {
        call: String,
        held: bool,
    },
    Ended {
        call: String,
        work_order: Option<String>,
        by: EndedBy,
    },
    Heartbeat,
    Error {
        code: ErrorCode,
        message: String,
        fatal: bool,
    },
}

/// What went wrong, as the `error` frame's `code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    Unauthenticated,
    UnsupportedVersion,
    BadMessage,
    DeskTaken,
    RegistrationFailed,
    DeskLost,
    NotNow,
    MediaFailed,
}

impl ErrorCode {
    /// The WebSocket close code that follows a fatal error; `None` for errors the desk
    /// survives.
    pub fn close_code(self) -> Option<u16> {
        match self {
            ErrorCode::Unauthenticated => Some(4401),
            ErrorCode::UnsupportedVersion => Some(4426),
            ErrorCode::BadMessage => Some(4400),
            ErrorCode::DeskTaken => Some(4409),
            ErrorCode::RegistrationFailed => Some(4503),
            ErrorCode::DeskLost => Some(4408),
            ErrorCode::NotNow | ErrorCode::MediaFailed => None,
        }
    }

    pub fn error(self, message: impl Into<String>) -> ServerMessage {
        ServerMessage::Error {
            code: self,
            message: message.into(),
            fatal: self.close_code().is_some(),
        }
    }
}

impl ServerMessage {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("desk messages always serialize")
    }
}

/// Parses one text frame: the error names what was wrong, for the `bad_message` frame.
pub fn parse(text: &str) -> Result<ClientMessage, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("不是 JSON / not JSON: {e}"))?;
    let Some(kind) = value.get("type").and_then(|t| t.as_str()) else {
        return Err("缺少 type / no \"type\" field".to_owned());
    };
    let kind = kind.to_owned();
    serde_json::from_value(value).map_err(|e| format!("消息 {kind:?} 无效 / bad {kind:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_message_parses_from_its_documented_form() {
        let cases = [
            (
                r#"{"type":"hello","version":1,"token":"t"}"#,
                ClientMessage::Hello {
                    version: 1,
                    token: "t".into(),
                },
            ),
            (
                r#"{"type":"offer","sdp":"v=0"}"#,
                ClientMessage::Offer { sdp: "v=0".into() },
            ),
            (r#"{"type":"login"}"#, ClientMessage::Login),
            (
                r#"{"type":"pause","reason":"break"}"#,
                ClientMessage::Pause {
                    reason: Some("break".into()),
                },
            ),
            (r#"{"type":"pause"}"#, ClientMessage::Pause { reason: None }),
            (r#"{"type":"resume"}"#, ClientMessage::Resume),
            (r#"{"type":"logout"}"#, ClientMessage::Logout),
            (
                r#"{"type":"answer","call":"c1"}"#,
                ClientMessage::Answer { call: "c1".into() },
            ),
            (
                r#"{"type":"hangup","call":"c1"}"#,
                ClientMessage::Hangup { call: "c1".into() },
            ),
            (
                r#"{"type":"hold","call":"c1","held":true}"#,
                ClientMessage::Hold {
                    call: "c1".into(),
                    held: true,
                },
            ),
            (
                r##"{"type":"dtmf","call":"c1","digit":"#"}"##,
                ClientMessage::Dtmf {
                    call: "c1".into(),
                    digit: '#',
                },
            ),
            (
                r#"{"type":"wrapup_done","work_order":"WO-1"}"#,
                ClientMessage::WrapupDone {
                    work_order: "WO-1".into(),
                },
            ),
            (r#"{"type":"heartbeat"}"#, ClientMessage::Heartbeat),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn a_bad_frame_is_refused_with_what_was_wrong() {
        assert!(parse("not json").unwrap_err().contains("not JSON"));
        assert!(
            parse(r#"{"call":"c1"}"#)
                .unwrap_err()
                .contains("no \"type\"")
        );
        assert!(
            parse(r#"{"type":"dance"}"#)
                .unwrap_err()
                .contains("\"dance\"")
        );
        assert!(
            parse(r#"{"type":"answer"}"#)
                .unwrap_err()
                .contains("missing field `call`")
        );
        assert!(
            parse(r#"{"type":"answer","call":"c1","extra":1}"#)
                .unwrap_err()
                .contains("unknown field")
        );
    }

    #[test]
    fn fatal_errors_carry_their_close_codes_and_others_none() {
        assert_eq!(ErrorCode::Unauthenticated.close_code(), Some(4401));
        assert_eq!(ErrorCode::UnsupportedVersion.close_code(), Some(4426));
        assert_eq!(ErrorCode::BadMessage.close_code(), Some(4400));
        assert_eq!(ErrorCode::NotNow.close_code(), None);
        let frame = ErrorCode::BadMessage.error("x").to_json();
        assert_eq!(
            frame,
            r#"{"type":"error","code":"bad_message","message":"x","fatal":true}"#
        );
    }

    #[test]
    fn server_messages_serialize_as_documented() {
        let state = ServerMessage::State(StateView {
            state: "available".into(),
            seconds: 3,
            reason: None,
        });
        assert_eq!(
            state.to_json(),
            r#"{"type":"state","state":"available","seconds":3}"#
        );
        let ended = ServerMessage::Ended {
            call: "c1".into(),
            work_order: Some("WO-1".into()),
            by: EndedBy::DeskLost,
        };
        assert_eq!(
            ended.to_json(),
            r#"{"type":"ended","call":"c1","work_order":"WO-1","by":"desk_lost"}"#
        );
    }
}
