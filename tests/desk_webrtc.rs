//! The browser desk's engine side, black-box (issue 13): a WebRTC peer written with the
//! `webrtc` crate plays the browser over the real WebSocket, ICE and DTLS-SRTP on
//! 127.0.0.1, and SIPp plays the caller. The page itself, in Chromium, is
//! tests/desk_browser.rs; this test pins the protocol and the media path without a
//! browser, so a failure here says which side broke.
//!
//! A desk registers as the agent's phone (R29's digest), is rung by the ACD with the
//! work order, queue and a masked number (R12), answers, and its audio lands in the
//! recording's right channel while the caller's lands in the left (R22); the agent owns
//! the work order (R7). Bad input on the socket gets an error frame and a close.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use webrtc::media_stream::MediaStreamTrack;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceGatheringState, RTCSessionDescription, Registry,
    register_default_interceptors,
};

use common::audio::{pcma_capture, speech};
use common::{Engine, EngineOptions, Sipp, channel_levels, work_orders};

const DESK_TOKEN: &str = "desk-token-1001-0123456789abcdef";
const QA_TOKEN: &str = "qa-token-0123456789abcdef-0123456";

fn engine() -> Engine {
    engine_with("")
}

fn engine_with(desk_section: &str) -> Engine {
    let token = |name: &str, role: &str, agent: Option<&str>, token: &str| {
        let agent = agent
            .map(|a| format!("agent = \"{a}\"\n"))
            .unwrap_or_default();
        format!(
            "[[access.tokens]]\nname = \"{name}\"\nrole = \"{role}\"\n{agent}sha256 = \"{}\"\n",
            hotline::api::auth::hash_token(token)
        )
    };
    Engine::start(EngineOptions {
        extra_config: format!(
            "{}\n{}\n{desk_section}",
            token("desk-1001", "agent", Some("1001"), DESK_TOKEN),
            token("qa", "qa", None, QA_TOKEN)
        ),
        ..EngineOptions::default()
    })
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The "browser": its socket, its peer connection, and what its peer received.
struct Browser {
    socket: Socket,
    peer: Arc<dyn PeerConnection>,
    packets_received: Arc<AtomicU64>,
    /// Set to stop the microphone's packets (a dead audio path).
    muted: Arc<AtomicBool>,
}

async fn connect(engine: &Engine) -> Socket {
    let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/desk/ws", engine.http))
        .await
        .expect("the desk socket opens");
    socket
}

async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .expect("frame sent");
}

/// The next frame of `kind`, answering heartbeats (as the page does) and skipping
/// state updates in between.
async fn expect(socket: &mut Socket, kind: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = tokio::time::timeout(left, socket.next())
            .await
            .unwrap_or_else(|_| panic!("no {kind} frame in 45 s"))
            .unwrap_or_else(|| panic!("socket closed waiting for {kind}"))
            .expect("socket readable");
        if let Message::Text(text) = frame {
            let value: Value = serde_json::from_str(&text).expect("JSON frame");
            if value["type"] == kind {
                return value;
            }
            if value["type"] == "heartbeat" {
                send(socket, json!({"type": "heartbeat"})).await;
            }
            assert_ne!(value["type"], "error", "waiting for {kind}: {value}");
        }
    }
}

/// The error frame and the close that must follow bad input.
async fn expect_refusal(socket: &mut Socket) -> (Value, u16) {
    let mut error = Value::Null;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("refused within 10 s");
        match frame {
            Some(Ok(Message::Text(text))) => error = serde_json::from_str(&text).unwrap(),
            Some(Ok(Message::Close(Some(close)))) => return (error, close.code.into()),
            other => panic!("expected an error frame and a close, got {other:?}"),
        }
    }
}

fn pcmu() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: "audio/PCMU".to_owned(),
            clock_rate: 8000,
            channels: 1,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![],
        },
        payload_type: 0,
    }
}

struct Events {
    gathered: mpsc::Sender<()>,
    packets_received: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Events {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.try_send(());
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let received = Arc::clone(&self.packets_received);
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(_) = event {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}

/// A 440 Hz tone in μ-law, 20 ms a packet: what the agent "says".
fn tone_frame(start: u32) -> Vec<u8> {
    (0..160u32)
        .map(|i| {
            let t = f64::from(start + i) / 8000.0;
            let sample = (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16;
            hotline::media::g711::ulaw_encode(sample)
        })
        .collect()
}

/// Opens the desk: hello, the one media session, the media check.
async fn open_desk(engine: &Engine) -> Browser {
    let mut socket = connect(engine).await;
    send(
        &mut socket,
        json!({"type": "hello", "version": 1, "token": DESK_TOKEN}),
    )
    .await;
    let welcome = expect(&mut socket, "welcome").await;
    assert_eq!(welcome["agent"], "1001");
    assert_eq!(welcome["version"], 1);

    let mut media_engine = MediaEngine::default();
    media_engine
        .register_codec(pcmu(), RtpCodecKind::Audio)
        .unwrap();
    let registry = register_default_interceptors(Registry::new(), &mut media_engine).unwrap();
    let (gathered, mut gathering) = mpsc::channel(1);
    let packets_received = Arc::new(AtomicU64::new(0));
    let peer = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(Events {
            gathered,
            packets_received: Arc::clone(&packets_received),
        }))
        .with_runtime(webrtc::runtime::default_runtime().unwrap())
        .with_udp_addrs(vec!["127.0.0.1:0"])
        .build()
        .await
        .expect("peer");
    let peer: Arc<dyn PeerConnection> = Arc::new(peer);
    let ssrc = 0x5eed_1001;
    let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "browser".to_owned(),
        "microphone".to_owned(),
        "microphone".to_owned(),
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: pcmu().rtp_codec,
            ..Default::default()
        }],
    )));
    let local: Arc<dyn TrackLocal> = track.clone();
    peer.add_track(local).await.unwrap();
    let offer = peer.create_offer(None).await.unwrap();
    peer.set_local_description(offer).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), gathering.recv())
        .await
        .expect("ICE gathering completes");
    let offer = peer.local_description().await.unwrap();
    send(&mut socket, json!({"type": "offer", "sdp": offer.sdp})).await;
    let answer = expect(&mut socket, "answer").await;
    let sdp = answer["sdp"].as_str().unwrap().to_owned();
    assert!(sdp.contains("PCMU/8000"), "{sdp}");
    assert!(!sdp.contains("opus"), "PCMU only: {sdp}");
    peer.set_remote_description(RTCSessionDescription::answer(sdp).unwrap())
        .await
        .unwrap();

    // The microphone: a tone, every 20 ms, for the whole shift.
    let muted = Arc::new(AtomicBool::new(false));
    let microphone_muted = Arc::clone(&muted);
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(20));
        for n in 0u32.. {
            interval.tick().await;
            if microphone_muted.load(Ordering::Relaxed) {
                continue;
            }
            let packet = rtc::rtp::Packet {
                header: rtc::rtp::header::Header {
                    version: 2,
                    payload_type: 0,
                    sequence_number: n as u16,
                    timestamp: n * 160,
                    ssrc,
                    ..Default::default()
                },
                payload: tone_frame(n * 160).into(),
            };
            if track.write_rtp(packet).await.is_err() && n > 500 {
                return;
            }
        }
    });
    let check = expect(&mut socket, "media_check").await;
    assert_eq!(check["ok"], true, "the engine heard the browser: {check}");
    Browser {
        socket,
        peer,
        packets_received,
        muted,
    }
}

/// A caller who talks all along (sip-tester's speech sample, five times over) and
/// stays until the hotline hangs up.
fn talking_caller(engine: &Engine) -> common::RunningSipp {
    let speech: Vec<Vec<u8>> = (0..5).flat_map(|_| speech()).collect();
    Sipp::new("caller_audio_until_bye.xml", engine.sip)
        .with_file("audio.pcap", &pcma_capture(&speech))
        .args(["-m", "1"])
        .spawn(Duration::from_secs(150))
}

/// A full call on the desk: rung with the work order, answered, audio both ways (the
/// peer's inbound packets rise; the WAV's two channels carry sound after the connect),
/// the caller hangs up, the agent submits the work order and ends wrap-up.
#[test]
fn a_desk_takes_a_call_with_audio_both_ways_and_fills_in_its_work_order() {
    let engine = engine();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut desk = runtime.block_on(open_desk(&engine));
    runtime.block_on(async {
        send(&mut desk.socket, json!({"type": "login"})).await;
        let state = expect(&mut desk.socket, "state").await;
        assert_eq!(state["state"], "available", "{state}");
    });
    let (_, agents) = engine.api("GET", "/agents");
    assert_eq!(
        common::agent_field(&agents, "1001", "registered").as_deref(),
        Some("true"),
        "the desk is the agent's registered phone: {agents}"
    );

    let caller = talking_caller(&engine);
    let offered = runtime.block_on(expect(&mut desk.socket, "offered"));
    assert_eq!(offered["queue"], "general", "{offered}");
    let work_order = offered["work_order"]
        .as_str()
        .expect("work order")
        .to_owned();
    let shown = offered["caller"].as_str().unwrap();
    assert!(
        shown.contains('*') && !shown.contains("13900001"),
        "R12: the desk sees a masked number only: {shown}"
    );
    assert!(offered["waited_seconds"].as_u64().is_some(), "{offered}");
    let call = offered["call"].as_str().unwrap().to_owned();

    let before = desk.packets_received.load(Ordering::Relaxed);
    runtime.block_on(async {
        send(&mut desk.socket, json!({"type": "answer", "call": call})).await;
        let connected = expect(&mut desk.socket, "connected").await;
        assert_eq!(connected["work_order"], work_order.as_str());
        tokio::time::sleep(Duration::from_secs(4)).await;
    });
    let heard = desk.packets_received.load(Ordering::Relaxed) - before;
    assert!(
        heard > 100,
        "the browser's inbound RTP rises while connected: {heard} packets in 4 s"
    );

    // The agent hangs up; the caller hears the closing and gets the hotline's BYE.
    let ended = runtime.block_on(async {
        send(&mut desk.socket, json!({"type": "hangup", "call": call})).await;
        expect(&mut desk.socket, "ended").await
    });
    assert_eq!(ended["by"], "agent", "{ended}");
    caller.wait().assert_success_against(&engine);

    // The agent fills in the work order over REST with the desk's token, then ends
    // wrap-up on the socket.
    let (status, body) = common::http_json_as(
        engine.http,
        "PATCH",
        &format!("/work-orders/{work_order}"),
        &json!({"category": "consultation", "matter": "路灯不亮", "answer": "已转城管处理"})
            .to_string(),
        DESK_TOKEN,
    );
    assert_eq!(status, 200, "{body}");
    runtime.block_on(async {
        send(
            &mut desk.socket,
            json!({"type": "wrapup_done", "work_order": work_order}),
        )
        .await;
    });

    let orders = work_orders(&engine);
    let order = orders
        .iter()
        .find(|o| o.id.as_str() == work_order)
        .expect("the call's work order");
    assert_eq!(
        order.agent.as_deref(),
        Some("1001"),
        "R7: the desk's agent owns it"
    );
    let (status, detail) = common::http_json_as(
        engine.http,
        "GET",
        &format!("/work-orders/{work_order}"),
        "",
        DESK_TOKEN,
    );
    assert_eq!(status, 200, "{detail}");
    let detail: Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(detail["matter"], "路灯不亮", "{detail}");
    assert_eq!(detail["order"]["category"], "consultation", "{detail}");

    common::wait_for_metric(&engine, "hotline_recordings_written_total", "", 1.0);
    let recording = engine.recordings().pop().expect("a recording");
    let connected_at = (order.connected_at.unwrap() - order.answered_at.unwrap()).num_milliseconds()
        as f64
        / 1000.0;
    let (caller_level, agent_level) =
        channel_levels(&recording, connected_at + 0.5, connected_at + 4.0);
    assert!(
        caller_level > 300.0,
        "R22: the caller's channel carries sound: {caller_level}"
    );
    assert!(
        agent_level > 300.0,
        "R22: the desk's audio is on the agent's channel: {agent_level}"
    );
    runtime.block_on(async { desk.peer.close().await.unwrap() });
}

/// A desk closed while a call rings on it: the call goes back to the queue and the next
/// agent (a SIPp softphone) takes it; the desk's agent is logged out.
#[test]
fn a_desk_closed_while_ringing_sends_the_call_to_the_next_agent() {
    let engine = engine();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut desk = runtime.block_on(open_desk(&engine));
    runtime.block_on(async {
        send(&mut desk.socket, json!({"type": "login"})).await;
        expect(&mut desk.socket, "state").await;
    });
    let caller = Sipp::new("uac_pcap.xml", engine.sip)
        .args(["-m", "1", "-d", "20000"])
        .spawn(Duration::from_secs(90));
    runtime.block_on(expect(&mut desk.socket, "offered"));
    // Another agent comes on shift while the desk rings; then the desk dies.
    let phone = common::agent_phone(&engine, "1002", "agent_answer.xml", Duration::from_secs(60));
    engine.log_in_when_registered(&["1002"]);
    runtime.block_on(async {
        desk.socket.close(None).await.unwrap();
        desk.peer.close().await.unwrap();
    });
    caller.wait().assert_success_against(&engine);
    let orders = work_orders(&engine);
    assert_eq!(orders[0].agent.as_deref(), Some("1002"), "{:?}", orders[0]);
    let (_, agents) = engine.api("GET", "/agents");
    assert_eq!(
        common::agent_field(&agents, "1001", "state").as_deref(),
        Some("logged_out"),
        "{agents}"
    );
    drop(phone);
}

/// A desk whose audio stops during a call is lost like a phone that died: the caller
/// hears the closing and is hung up by the hotline, the work order's trail says why,
/// and the agent is logged out.
#[test]
fn a_desk_silent_during_a_call_is_lost_and_the_work_order_says_why() {
    let engine = engine_with("[desk]\nrtp_timeout_seconds = 2\n");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut desk = runtime.block_on(open_desk(&engine));
    runtime.block_on(async {
        send(&mut desk.socket, json!({"type": "login"})).await;
        expect(&mut desk.socket, "state").await;
    });
    let caller = talking_caller(&engine);
    let offered = runtime.block_on(expect(&mut desk.socket, "offered"));
    let work_order = offered["work_order"].as_str().unwrap().to_owned();
    let (ended, error, close) = runtime.block_on(async {
        send(
            &mut desk.socket,
            json!({"type": "answer", "call": offered["call"]}),
        )
        .await;
        expect(&mut desk.socket, "connected").await;
        desk.muted.store(true, Ordering::Relaxed);
        let ended = expect(&mut desk.socket, "ended").await;
        let (error, close) = expect_refusal(&mut desk.socket).await;
        (ended, error, close)
    });
    assert_eq!(ended["by"], "desk_lost", "{ended}");
    assert_eq!(error["code"], "desk_lost", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("no audio from the browser for 2 s"),
        "{error}"
    );
    assert_eq!(close, 4408);
    caller.wait().assert_success_against(&engine);

    let (status, events) = engine.api("GET", &format!("/work-orders/{work_order}/events"));
    assert_eq!(status, 200, "{events}");
    assert!(
        events.contains("desk lost: no audio from the browser for 2 s"),
        "the trail says why: {events}"
    );
    let orders = work_orders(&engine);
    let order = orders.iter().find(|o| o.id.as_str() == work_order).unwrap();
    assert_eq!(order.agent.as_deref(), Some("1001"));
    assert_eq!(
        order.hangup_side,
        Some(hotline::workorder::HangupSide::Agent)
    );
    let (_, agents) = engine.api("GET", "/agents");
    assert_eq!(
        common::agent_field(&agents, "1001", "state").as_deref(),
        Some("logged_out"),
        "{agents}"
    );
    runtime.block_on(async { desk.peer.close().await.unwrap() });
}

/// Bad input: each gets a clear error frame and a close, and the engine is unaffected.
#[test]
fn bad_input_on_the_desk_socket_gets_an_error_and_a_close() {
    let engine = engine();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let cases = [
            (
                json!({"type": "hello", "version": 1}).to_string(),
                "bad_message",
                4400,
            ),
            (
                json!({"type": "hello", "version": 1, "token": "wrong"}).to_string(),
                "unauthenticated",
                4401,
            ),
            (
                json!({"type": "hello", "version": 1, "token": QA_TOKEN}).to_string(),
                "unauthenticated",
                4401,
            ),
            (
                json!({"type": "hello", "version": 9, "token": DESK_TOKEN}).to_string(),
                "unsupported_version",
                4426,
            ),
            ("{not json".to_owned(), "bad_message", 4400),
            (
                json!({"type": "login"}).to_string(),
                "unauthenticated",
                4401,
            ),
        ];
        for (first, code, close) in cases {
            let mut socket = connect(&engine).await;
            socket
                .send(Message::Text(first.clone().into()))
                .await
                .unwrap();
            let (error, closed_with) = expect_refusal(&mut socket).await;
            assert_eq!(error["code"], code, "{first}: {error}");
            assert_eq!(error["fatal"], true);
            assert!(!error["message"].as_str().unwrap().is_empty());
            assert_eq!(closed_with, close, "{first}");
        }
        // A good hello, then a malformed frame: refused, and the desk is gone.
        let mut socket = connect(&engine).await;
        send(
            &mut socket,
            json!({"type": "hello", "version": 1, "token": DESK_TOKEN}),
        )
        .await;
        expect(&mut socket, "welcome").await;
        send(&mut socket, json!({"type": "answer"})).await;
        let (error, closed_with) = expect_refusal(&mut socket).await;
        assert_eq!(error["code"], "bad_message", "{error}");
        assert!(
            error["message"].as_str().unwrap().contains("call"),
            "{error}"
        );
        assert_eq!(closed_with, 4400);
        // Silence after connecting: no hello in 5 s.
        let mut socket = connect(&engine).await;
        let (error, closed_with) = expect_refusal(&mut socket).await;
        assert_eq!(error["code"], "unauthenticated");
        assert_eq!(closed_with, 4401);
    });
    let (status, _) = engine.api("GET", "/agents");
    assert_eq!(status, 200, "the engine is unaffected");
    assert!(common::http_get(engine.http, "/health").is_some());
}

/// An open desk does not hold the engine up: SIGTERM with a desk logged in (and its
/// media session up) still drains and exits 0, and the desk is told the engine went.
#[test]
fn the_engine_stops_cleanly_with_a_desk_open() {
    let mut engine = engine();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut desk = runtime.block_on(open_desk(&engine));
    runtime.block_on(async {
        send(&mut desk.socket, json!({"type": "login"})).await;
        expect(&mut desk.socket, "state").await;
    });
    let status = engine.terminate();
    assert!(status.success(), "{status:?}\n{}", engine.log());
    let closed = runtime.block_on(async {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), desk.socket.next()).await {
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(_))) => continue,
                Err(_) => return false,
            }
        }
    });
    assert!(closed, "the desk's socket ends with the engine");
}
