//! The browser desks (I/O): one task per open desk runs its [`DeskSession`] and does
//! what it decides. It owns the desk's three endpoints:
//!
//! - a SIP socket on the engine's own address, where the session's user agent
//!   registers with the switch and is rung like any agent's phone;
//! - the WebRTC peer (the `webrtc` crate): one media session per desk, set up at
//!   login from the browser's offer (PCMU only, host candidates on the media address,
//!   DTLS-SRTP), so answering a call costs no ICE and no `getUserMedia`;
//! - the relay: an RTP socket the desk's SDP names. While a call is up, what the
//!   engine's agent leg sends it goes out on the WebRTC track, and what the browser's
//!   microphone sends goes to the agent leg. The bridge, the recording and the work
//!   order see an ordinary agent leg.
//!
//! Everything the task does not do itself (asking the switch, answering the offer,
//! writing a note) runs in a task of its own and comes back as a [`Reply`], so a slow
//! switch or store never stalls the relay.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use rtc_shared::marshal::{Marshal, Unmarshal};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};
use webrtc::media_stream::MediaStreamTrack;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceGatheringState, RTCSessionDescription, Registry,
    register_default_interceptors,
};

use crate::api::SwitchClient;
use crate::config::Config;
use crate::config::agents::AgentsConfig;
use crate::config::desk::DeskConfig;
use crate::desk::protocol::ErrorCode;
use crate::desk::session::{DeskAction, DeskSession, DeskSettings};
use crate::desk::{DeskClaim, DeskConnection, FromBrowser, ToBrowser};
use crate::switch::{AgentStatus, Command, Reply as SwitchReply};
use crate::workorder::{WorkOrderId, WorkOrderStore};

/// Registration expiry the desks ask for; refreshed at half.
const REGISTER_EXPIRES: u32 = 120;
/// How long the browser's ICE and DTLS get to answer our side's gathering.
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);
/// RTP packets from the browser waiting for the desk task: a second of audio.
const BROWSER_RTP_QUEUE: usize = 50;
/// The payload type both the relay and the WebRTC session use.
const PCMU: u8 = 0;

/// What every desk needs from the engine.
pub struct DeskServices {
    pub switch: SwitchClient,
    pub store: Arc<dyn WorkOrderStore>,
    /// Agent number → SIP password (the agents file as the engine started).
    pub passwords: HashMap<String, String>,
    /// The switch's SIP/UDP socket: the desks' registrar; `None` without SIP/UDP.
    pub registrar: Option<SocketAddr>,
    /// The registrar's domain (the engine's advertised address).
    pub domain: String,
    /// Where the desks' SIP and relay sockets bind (the engine's own address).
    pub local_ip: IpAddr,
    /// Where the WebRTC sessions gather their host candidates.
    pub media_ip: IpAddr,
    pub config: DeskConfig,
}

impl DeskServices {
    /// The desks' view of the engine as configured: its SIP/UDP socket as registrar,
    /// the agents' passwords as the engine started, its addresses for their sockets.
    pub fn from_config(
        config: &Config,
        agents: &AgentsConfig,
        switch: SwitchClient,
        store: Arc<dyn WorkOrderStore>,
    ) -> DeskServices {
        let registrar = config
            .sip
            .listen_udp
            .map(|addr| SocketAddr::new(reachable(addr.ip()), addr.port()));
        DeskServices {
            switch,
            store,
            passwords: crate::switch::passwords(agents),
            registrar,
            domain: config.sip.advertised_ip.to_string(),
            local_ip: registrar.map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |addr| addr.ip()),
            media_ip: reachable(config.media.rtp_ip),
            config: config.desk.clone(),
        }
    }
}

/// A wildcard listen address means "this host": a desk talks to it on loopback.
fn reachable(ip: IpAddr) -> IpAddr {
    if ip.is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        ip
    }
}

/// Starts a task for each desk the HTTP layer hands over, until the engine stops.
pub async fn run(
    mut desks: mpsc::Receiver<DeskConnection>,
    services: Arc<DeskServices>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            connection = desks.recv() => match connection {
                Some(connection) => {
                    tokio::spawn(run_desk(connection, Arc::clone(&services)));
                }
                None => return,
            },
            _ = stopped.wait_for(|stop| *stop) => return,
        }
    }
}

/// What comes back from the work a desk hands off.
enum Reply {
    Status(Option<AgentStatus>),
    Refused(String),
    Answered(Result<(String, DeskPeer), String>),
}

/// The desk's WebRTC session: the peer and the track the engine's audio goes out on.
struct DeskPeer {
    connection: Arc<dyn PeerConnection>,
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
}

async fn run_desk(connection: DeskConnection, services: Arc<DeskServices>) {
    let DeskConnection {
        agent,
        mut from_browser,
        to_browser,
        claim,
    } = connection;
    let refuse = |code: ErrorCode, message: String| {
        let to_browser = to_browser.clone();
        async move {
            let _ = to_browser.send(ToBrowser::Frame(code.error(message))).await;
            let _ = to_browser
                .send(ToBrowser::Close(code.close_code().unwrap_or(4400)))
                .await;
        }
    };
    let Some(password) = services.passwords.get(&agent).cloned() else {
        return refuse(
            ErrorCode::Unauthenticated,
            format!("坐席 {agent} 不在坐席配置中 / agent {agent} is not in the agents file"),
        )
        .await;
    };
    let Some(registrar) = services.registrar else {
        return refuse(
            ErrorCode::RegistrationFailed,
            "引擎未开启 SIP/UDP / the engine has no SIP/UDP listener for desks".to_owned(),
        )
        .await;
    };
    let (sip, relay) = match bind_pair(services.local_ip).await {
        Ok(pair) => pair,
        Err(e) => {
            warn!(error = %e, "desk sockets could not be bound");
            return refuse(ErrorCode::RegistrationFailed, format!("no socket: {e}")).await;
        }
    };
    let (local_sip, relay_addr) = match (sip.local_addr(), relay.local_addr()) {
        (Ok(sip), Ok(relay)) => (sip, relay),
        (Err(e), _) | (_, Err(e)) => {
            return refuse(ErrorCode::RegistrationFailed, format!("no socket: {e}")).await;
        }
    };
    let settings = DeskSettings {
        agent: agent.clone(),
        password,
        local_sip,
        registrar,
        domain: services.domain.clone(),
        relay_port: relay_addr.port(),
        heartbeat: services.config.heartbeat,
        rtp_timeout: services.config.rtp_timeout,
        register_expires: REGISTER_EXPIRES,
    };
    info!(agent, sip = %local_sip, relay = %relay_addr, "desk opened");
    crate::metrics::desk_opened();
    let mut desk = Desk {
        claim: Some(claim),
        session: DeskSession::new(settings, Instant::now(), rand::random()),
        services,
        sip,
        relay,
        to_browser,
        browser_open: true,
        peer: None,
        relay_to: None,
        status_pending: false,
        status_again: false,
        seq: rand::random(),
        replies: mpsc::unbounded_channel(),
        browser_rtp: mpsc::channel(BROWSER_RTP_QUEUE),
    };
    desk.run(&mut from_browser).await;
    if let Some(peer) = desk.peer.take() {
        let _ = peer.connection.close().await;
    }
    crate::metrics::desk_closed();
    info!(
        agent,
        why = desk.session.lost().unwrap_or("engine stopping"),
        "desk closed"
    );
}

async fn bind_pair(ip: IpAddr) -> std::io::Result<(UdpSocket, UdpSocket)> {
    let sip = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
    let relay = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
    Ok((sip, relay))
}

struct Desk {
    /// The agent's one desk, given back the moment this one is lost (not after its
    /// last SIP transactions), so the agent can open a new one at once.
    claim: Option<DeskClaim>,
    session: DeskSession,
    services: Arc<DeskServices>,
    sip: UdpSocket,
    relay: UdpSocket,
    to_browser: mpsc::Sender<ToBrowser>,
    browser_open: bool,
    peer: Option<DeskPeer>,
    /// The engine's agent-leg RTP, while a call is relayed.
    relay_to: Option<SocketAddr>,
    status_pending: bool,
    /// Asked again while a question was in flight: ask once more when it is answered.
    status_again: bool,
    /// Sequence numbers of the packets we send the browser.
    seq: u16,
    replies: (mpsc::UnboundedSender<Reply>, mpsc::UnboundedReceiver<Reply>),
    browser_rtp: (
        mpsc::Sender<rtc::rtp::Packet>,
        mpsc::Receiver<rtc::rtp::Packet>,
    ),
}

impl Desk {
    async fn run(&mut self, from_browser: &mut mpsc::Receiver<FromBrowser>) {
        let mut sip_buf = vec![0u8; 65_536];
        let mut rtp_buf = vec![0u8; 2048];
        loop {
            self.carry_out().await;
            if self.session.lost().is_some() {
                self.claim = None;
            }
            let now = Instant::now();
            if self.session.is_finished(now) {
                return;
            }
            let deadline = self
                .session
                .poll_timeout()
                .unwrap_or(now + Duration::from_secs(1));
            tokio::select! {
                message = from_browser.recv(), if self.browser_open => {
                    let now = Instant::now();
                    match message {
                        Some(FromBrowser::Message(message)) => self.session.handle_browser(now, message),
                        Some(FromBrowser::Gone(why)) => {
                            self.browser_open = false;
                            self.session.handle_browser_gone(now, &why);
                        }
                        None => {
                            self.browser_open = false;
                            self.session.handle_browser_gone(now, "socket closed");
                        }
                    }
                }
                received = self.sip.recv_from(&mut sip_buf) => {
                    if let Ok((n, from)) = received {
                        self.session.handle_datagram(Instant::now(), from, &sip_buf[..n]);
                    }
                }
                received = self.relay.recv_from(&mut rtp_buf) => {
                    if let Ok((n, from)) = received {
                        self.relay_engine_audio(from, &rtp_buf[..n]).await;
                    }
                }
                Some(packet) = self.browser_rtp.1.recv() => {
                    self.session.browser_audio(Instant::now());
                    self.relay_browser_audio(packet).await;
                }
                Some(reply) = self.replies.1.recv() => self.on_reply(reply),
                _ = tokio::time::sleep_until(deadline.into()) => {
                    self.session.handle_timeout(Instant::now());
                }
            }
        }
    }

    /// Sends what the session produced: SIP, frames, then its actions.
    async fn carry_out(&mut self) {
        while let Some(transmit) = self.session.poll_transmit() {
            if let Err(e) = self
                .sip
                .send_to(&transmit.payload, transmit.destination)
                .await
            {
                debug!(error = %e, "desk SIP send failed");
            }
        }
        while let Some(frame) = self.session.poll_frame() {
            self.send(ToBrowser::Frame(frame));
        }
        while let Some(action) = self.session.poll_action() {
            self.act(action);
        }
    }

    fn send(&mut self, message: ToBrowser) {
        if !self.browser_open {
            return;
        }
        if matches!(message, ToBrowser::Close(_)) {
            self.browser_open = false;
        }
        // The socket writer drains at once; a browser so stuck that 64 frames wait is
        // treated as gone by its heartbeats, not by blocking this task.
        if self.to_browser.try_send(message).is_err() {
            debug!(
                agent = self.session.agent(),
                "desk frame dropped: socket not keeping up"
            );
        }
    }

    fn act(&mut self, action: DeskAction) {
        let agent = self.session.agent().to_owned();
        let replies = self.replies.0.clone();
        match action {
            DeskAction::Agent(action) => {
                let switch = self.services.switch.clone();
                tokio::spawn(async move {
                    let reply = match switch.ask(Command::Agent { agent, action }).await {
                        Some(SwitchReply::Agent(Ok(status))) => Reply::Status(Some(status)),
                        Some(SwitchReply::Agent(Err(e))) => Reply::Refused(e.to_string()),
                        _ => Reply::Refused("the engine is stopping".to_owned()),
                    };
                    let _ = replies.send(reply);
                });
            }
            DeskAction::QueryStatus => {
                if self.status_pending {
                    // The answer in flight may predate what prompted this one.
                    self.status_again = true;
                    return;
                }
                self.status_pending = true;
                let switch = self.services.switch.clone();
                tokio::spawn(async move {
                    if let Some(SwitchReply::Status { agents, .. }) =
                        switch.ask(Command::Status).await
                    {
                        let status = agents.into_iter().find(|a| a.id == agent);
                        let _ = replies.send(Reply::Status(status));
                    }
                });
            }
            DeskAction::AnswerOffer(sdp) => {
                let media_ip = self.services.media_ip;
                let browser_rtp = self.browser_rtp.0.clone();
                tokio::spawn(async move {
                    let answer = answer_offer(sdp, media_ip, browser_rtp).await;
                    let _ = replies.send(Reply::Answered(answer));
                });
            }
            DeskAction::Relay(to) => self.relay_to = to,
            DeskAction::Note { work_order, text } => {
                let store = Arc::clone(&self.services.store);
                tokio::spawn(async move {
                    let Ok(id) = work_order.parse::<WorkOrderId>() else {
                        return warn!(work_order, "desk note for an unreadable work order id");
                    };
                    if let Err(e) = store.add_note(&id, &text, &agent, chrono::Utc::now()).await {
                        warn!(error = %e, "desk note not written");
                    }
                });
            }
            DeskAction::Close { code } => self.send(ToBrowser::Close(code)),
        }
    }

    fn on_reply(&mut self, reply: Reply) {
        match reply {
            Reply::Status(status) => {
                self.status_pending = false;
                self.session.handle_status(Instant::now(), status);
                if std::mem::take(&mut self.status_again) {
                    self.act(DeskAction::QueryStatus);
                }
            }
            Reply::Refused(why) => self.session.handle_refused(why),
            Reply::Answered(Ok((sdp, peer))) => {
                self.peer = Some(peer);
                self.session.offer_answered(Instant::now(), Ok(sdp));
            }
            Reply::Answered(Err(why)) => {
                warn!(
                    agent = self.session.agent(),
                    why, "desk media set-up failed"
                );
                self.session.offer_answered(Instant::now(), Err(why));
            }
        }
    }

    /// The engine's agent leg → the browser.
    async fn relay_engine_audio(&mut self, from: SocketAddr, bytes: &[u8]) {
        let (Some(peer), Some(engine)) = (&self.peer, self.relay_to) else {
            return;
        };
        // Only the leg we relay for, and only voice (its telephone-events stay here).
        if from.ip() != engine.ip() {
            return;
        }
        let Ok(mut packet) = rtc::rtp::Packet::unmarshal(&mut &bytes[..]) else {
            return;
        };
        if packet.header.payload_type != PCMU {
            return;
        }
        self.seq = self.seq.wrapping_add(1);
        packet.header.ssrc = peer.ssrc;
        packet.header.sequence_number = self.seq;
        if let Err(e) = peer.track.write_rtp(packet).await {
            debug!(error = %e, "desk track write failed");
        }
    }

    /// The browser's microphone → the engine's agent leg.
    async fn relay_browser_audio(&mut self, packet: rtc::rtp::Packet) {
        let Some(engine) = self.relay_to else {
            return;
        };
        if packet.header.payload_type != PCMU {
            return;
        }
        match packet.marshal() {
            Ok(bytes) => {
                if let Err(e) = self.relay.send_to(&bytes, engine).await {
                    debug!(error = %e, "desk relay send failed");
                }
            }
            Err(e) => debug!(error = %e, "browser RTP not re-marshalled"),
        }
    }
}

/// PCMU at 8 kHz, payload type 0: the one codec a desk speaks.
fn pcmu() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: "audio/PCMU".to_owned(),
            clock_rate: 8000,
            channels: 1,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![],
        },
        payload_type: PCMU,
    }
}

/// The peer's events the desk cares about: the browser's audio and the end of
/// gathering.
struct PeerEvents {
    browser_rtp: mpsc::Sender<rtc::rtp::Packet>,
    gathered: mpsc::Sender<()>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for PeerEvents {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.try_send(());
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let browser_rtp = self.browser_rtp.clone();
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                match event {
                    // Full: the desk task is behind; a lost packet beats a late one.
                    TrackRemoteEvent::OnRtpPacket(packet) => {
                        let _ = browser_rtp.try_send(packet);
                    }
                    TrackRemoteEvent::OnEnded => return,
                    _ => {}
                }
            }
        });
    }
}

/// Answers the browser's offer: a peer with one PCMU track each way, gathering
/// complete before the answer goes back (the protocol has no trickle).
async fn answer_offer(
    sdp: String,
    media_ip: IpAddr,
    browser_rtp: mpsc::Sender<rtc::rtp::Packet>,
) -> Result<(String, DeskPeer), String> {
    let text = |e: webrtc::error::Error| e.to_string();
    let mut media_engine = MediaEngine::default();
    media_engine
        .register_codec(pcmu(), RtpCodecKind::Audio)
        .map_err(text)?;
    let registry =
        register_default_interceptors(Registry::new(), &mut media_engine).map_err(text)?;
    let runtime = webrtc::runtime::default_runtime().ok_or("no WebRTC runtime")?;
    let (gathered, mut gathering) = mpsc::channel(1);
    let connection = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(PeerEvents {
            browser_rtp,
            gathered,
        }))
        .with_runtime(runtime)
        .with_udp_addrs(vec![SocketAddr::new(media_ip, 0)])
        .build()
        .await
        .map_err(text)?;
    let connection: Arc<dyn PeerConnection> = Arc::new(connection);
    let ssrc: u32 = rand::random();
    let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "hotline".to_owned(),
        "hotline-audio".to_owned(),
        "hotline".to_owned(),
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
    connection.add_track(local).await.map_err(text)?;
    let offer = RTCSessionDescription::offer(sdp).map_err(text)?;
    connection
        .set_remote_description(offer)
        .await
        .map_err(text)?;
    let answer = connection.create_answer(None).await.map_err(text)?;
    connection
        .set_local_description(answer)
        .await
        .map_err(text)?;
    if tokio::time::timeout(GATHER_TIMEOUT, gathering.recv())
        .await
        .is_err()
    {
        let _ = connection.close().await;
        return Err("ICE gathering did not complete".to_owned());
    }
    let Some(local) = connection.local_description().await else {
        let _ = connection.close().await;
        return Err("no local description".to_owned());
    };
    Ok((
        local.sdp,
        DeskPeer {
            connection,
            track,
            ssrc,
        },
    ))
}
