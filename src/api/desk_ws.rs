//! `GET /desk/ws`: the browser desk's WebSocket (`docs/desk-protocol.md`).
//!
//! This file owns the socket's edge: the first frame must be `hello` with the protocol
//! version and an agent's token (browsers cannot put an `Authorization` header on a
//! WebSocket) within [`HELLO_TIMEOUT`]; the agent may have one desk open; every later
//! text frame is parsed here, and a frame that is not the protocol gets a clear error
//! and a close. What a desk does is the runtime's (`crate::desk` and the runtime's desk
//! task): this file hands it a [`DeskConnection`] and then only carries frames.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::auth::{Authenticator, Role};
use crate::desk::protocol::{self, ClientMessage, ErrorCode};
use crate::desk::{DeskConnection, Desks, FromBrowser, ToBrowser};

/// How long a new socket may take to say `hello`.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest frame a desk sends is an SDP offer of a few kilobytes.
const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Frames waiting each way between the socket and the desk task.
const FRAME_QUEUE: usize = 64;

#[derive(Clone)]
struct DeskSockets {
    authenticator: Arc<Authenticator>,
    desks: Desks,
}

pub fn routes(authenticator: Arc<Authenticator>, desks: Desks) -> Router {
    Router::new()
        .route("/desk/ws", get(upgrade))
        .with_state(DeskSockets {
            authenticator,
            desks,
        })
}

async fn upgrade(ws: WebSocketUpgrade, State(sockets): State<DeskSockets>) -> Response {
    ws.max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| serve(socket, sockets))
}

async fn serve(mut socket: WebSocket, sockets: DeskSockets) {
    let agent = match hello(&mut socket, &sockets.authenticator).await {
        Ok(agent) => agent,
        Err((code, message)) => {
            warn!(reason = %message, "desk socket refused at hello");
            return refuse(socket, code, message).await;
        }
    };
    let Some(claim) = sockets.desks.claim(&agent) else {
        info!(agent, "second desk for an agent refused");
        return refuse(
            socket,
            ErrorCode::DeskTaken,
            format!("坐席 {agent} 已在别处打开坐席台 / agent {agent} already has a desk open"),
        )
        .await;
    };
    let (from_browser, from_browser_rx) = mpsc::channel(FRAME_QUEUE);
    let (to_browser_tx, mut to_browser) = mpsc::channel(FRAME_QUEUE);
    let connection = DeskConnection {
        agent,
        from_browser: from_browser_rx,
        to_browser: to_browser_tx,
        claim,
    };
    if !sockets.desks.launch(connection).await {
        return refuse(
            socket,
            ErrorCode::RegistrationFailed,
            "引擎正在停止 / the engine is stopping".to_owned(),
        )
        .await;
    }
    loop {
        tokio::select! {
            frame = socket.recv() => {
                let gone = match frame {
                    Some(Ok(Message::Text(text))) => match protocol::parse(&text) {
                        Ok(message) => {
                            if from_browser.send(FromBrowser::Message(message)).await.is_err() {
                                return;
                            }
                            continue;
                        }
                        Err(why) => {
                            let _ = from_browser
                                .send(FromBrowser::Gone(format!("bad message: {why}")))
                                .await;
                            return refuse(socket, ErrorCode::BadMessage, why).await;
                        }
                    },
                    Some(Ok(Message::Binary(_))) => {
                        let why = "二进制帧不属于协议 / binary frames are not part of the protocol";
                        let _ = from_browser.send(FromBrowser::Gone(why.to_owned())).await;
                        return refuse(socket, ErrorCode::BadMessage, why.to_owned()).await;
                    }
                    // axum answers pings itself.
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None => "socket closed".to_owned(),
                    Some(Err(e)) => format!("socket broke: {e}"),
                };
                let _ = from_browser.send(FromBrowser::Gone(gone)).await;
                return;
            }
            out = to_browser.recv() => match out {
                Some(ToBrowser::Frame(frame)) => {
                    if socket.send(Message::Text(frame.to_json().into())).await.is_err() {
                        let _ = from_browser.send(FromBrowser::Gone("socket broke".to_owned())).await;
                        return;
                    }
                }
                Some(ToBrowser::Close(code)) => {
                    let _ = socket.send(close(code, "")).await;
                    return;
                }
                // The desk task ended (the engine is stopping).
                None => {
                    let _ = socket.send(close(1001, "engine stopping")).await;
                    return;
                }
            },
        }
    }
}

/// The agent behind the first frame, or why the socket is refused.
async fn hello(
    socket: &mut WebSocket,
    authenticator: &Authenticator,
) -> Result<String, (ErrorCode, String)> {
    let unauthenticated = |why: &str| (ErrorCode::Unauthenticated, why.to_owned());
    let first = tokio::time::timeout(HELLO_TIMEOUT, socket.recv())
        .await
        .map_err(|_| unauthenticated("5 秒内未收到 hello / no hello within 5 s"))?;
    let text = match first {
        Some(Ok(Message::Text(text))) => text,
        _ => {
            return Err(unauthenticated(
                "第一帧须为 hello / the first frame must be hello",
            ));
        }
    };
    match protocol::parse(&text) {
        Ok(ClientMessage::Hello { version, token }) => {
            if version != protocol::VERSION {
                return Err((
                    ErrorCode::UnsupportedVersion,
                    format!(
                        "不支持协议版本 {version} / protocol version {version} is not spoken here (this engine speaks {})",
                        protocol::VERSION
                    ),
                ));
            }
            let principal = authenticator
                .authenticate(&token)
                .ok_or_else(|| unauthenticated("令牌无效 / unknown token"))?;
            match (&principal.role, &principal.agent) {
                (Role::Agent, Some(agent)) => Ok(agent.clone()),
                _ => Err(unauthenticated(
                    "坐席台需要坐席令牌 / the desk needs an agent's token",
                )),
            }
        }
        Ok(_) => Err(unauthenticated(
            "第一帧须为 hello / the first frame must be hello",
        )),
        Err(why) => Err((ErrorCode::BadMessage, why)),
    }
}

async fn refuse(mut socket: WebSocket, code: ErrorCode, message: String) {
    let close_code = code.close_code().unwrap_or(4400);
    let frame = code.error(message).to_json();
    let _ = socket.send(Message::Text(frame.into())).await;
    let _ = socket.send(close(close_code, "")).await;
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}
