//! One logged-in browser desk (pure): every decision about it, between the browser's
//! frames, the desk's SIP user agent and the switch.
//!
//! To the switch a desk is an agent's phone: the session owns a SIP user agent (the
//! same [`UserAgent`] the simulation proves against the switch) that registers with
//! the agent's credentials, rings when the ACD offers a call, answers when the agent
//! clicks, and hangs up, holds and sends digits for them. So the ACD, the bridge, the
//! recording and the work order treat a browser leg exactly as a softphone's. The
//! media of that leg goes to the runtime's relay, which joins it to the desk's one
//! WebRTC session; this core only says when to relay and where.
//!
//! A desk that dies is a phone that un-registered: a closed socket, three missed
//! heartbeats, or no audio from the browser during a call. A ringing call is refused
//! with `480` (the ACD puts it back in its queue at its place and logs the agent out);
//! a connected call is hung up, and the work order's trail says why.
//!
//! The quinn-proto shape, like the switch: `handle_*` in with `now`, `poll_*` out.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::protocol::{ClientMessage, EndedBy, ErrorCode, ServerMessage, StateView};
use crate::media::g711::Codec;
use crate::sim::SimRng;
use crate::sim::ua::{CallIndex, Credentials, Direction, Side, UaConfig, UaEvent, UserAgent};
use crate::sip::TransportKind;
use crate::sip::message::Request;
use crate::switch::{AgentAction, AgentStatus, OFFER_QUEUE_HEADER, OFFER_WAITED_HEADER};

/// Heartbeats a desk may miss before it counts as dead.
pub const MISSED_HEARTBEATS: u32 = 3;
/// Audio packets from the browser that pass the media check (a fifth of a second).
const MEDIA_CHECK_PACKETS: u64 = 10;
/// How long after the answer to its offer the browser has to send audio.
const MEDIA_CHECK_WINDOW: Duration = Duration::from_secs(8);
/// How often the agent's state is asked of the switch (the wrap-up timer, a
/// supervisor's pause: changes the desk did not make).
const STATUS_INTERVAL: Duration = Duration::from_secs(1);
/// How long a lost desk waits for its last SIP transactions (the 480, the BYE, the
/// un-REGISTER) before the runtime drops it: RFC 3261's 64·T1.
const LINGER: Duration = Duration::from_secs(32);

/// What a desk is set up with.
#[derive(Clone, Debug)]
pub struct DeskSettings {
    pub agent: String,
    /// The agent's SIP password (the agents file), for the registrar's digest.
    pub password: String,
    /// The desk's own SIP socket.
    pub local_sip: SocketAddr,
    /// The engine's SIP socket: the registrar.
    pub registrar: SocketAddr,
    /// The registrar's domain (the engine's advertised address).
    pub domain: String,
    /// The relay's RTP port, on `local_sip`'s address: what the desk's SDP names.
    pub relay_port: u16,
    pub heartbeat: Duration,
    /// Silence from the browser during a call that ends it.
    pub rtp_timeout: Duration,
    /// Registration expiry asked for, in seconds; refreshed at half.
    pub register_expires: u32,
}

/// What the runtime must do for the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeskAction {
    /// Ask the switch to change the agent's state; the answer comes back through
    /// [`DeskSession::handle_status`] or [`DeskSession::handle_refused`].
    Agent(AgentAction),
    /// Ask the switch for the agent's state.
    QueryStatus,
    /// Answer the browser's WebRTC offer; the result comes back through
    /// [`DeskSession::offer_answered`].
    AnswerOffer(String),
    /// Relay audio between the browser and the engine's RTP at this address (a call
    /// answered), or stop relaying (`None`).
    Relay(Option<SocketAddr>),
    /// A line on the work order's trail.
    Note { work_order: String, text: String },
    /// Close the socket with this code, after the frames before it.
    Close { code: u16 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Media {
    NotOffered,
    Negotiating,
    Checking { deadline: Instant },
    Checked,
}

#[derive(Clone, Debug)]
struct DeskCall {
    index: CallIndex,
    /// The browser's name for the call.
    id: String,
    work_order: Option<String>,
    remote_rtp: Option<SocketAddr>,
    answered_at: Option<Instant>,
    connected: bool,
}

pub struct DeskSession {
    settings: DeskSettings,
    ua: UserAgent,
    call: Option<DeskCall>,
    calls_rung: u64,
    media: Media,
    browser_packets: u64,
    last_browser_audio: Option<Instant>,
    last_heard: Instant,
    next_heartbeat: Instant,
    next_status: Instant,
    refresh_at: Option<Instant>,
    /// The switch's last view of the agent; `None` until its first answer, which
    /// welcomes the browser.
    state: Option<StateView>,
    lost: Option<String>,
    linger_until: Option<Instant>,
    frames: VecDeque<ServerMessage>,
    actions: VecDeque<DeskAction>,
}

impl DeskSession {
    /// A desk that has just passed `hello`: it registers at once, and welcomes the
    /// browser when the switch has said the agent's state.
    pub fn new(settings: DeskSettings, now: Instant, seed: u64) -> DeskSession {
        let mut config = UaConfig::new(settings.local_sip, &settings.agent);
        config.domain = settings.domain.clone();
        config.transport = TransportKind::Udp;
        config.credentials = Some(Credentials {
            username: settings.agent.clone(),
            password: settings.password.clone(),
        });
        config.media_port = Some(settings.relay_port);
        // The WebRTC side speaks PCMU only, so the relay copies payloads untouched.
        config.codecs = vec![Codec::Pcmu];
        let mut ua = UserAgent::new(config, SimRng::new(seed));
        ua.register(
            now,
            settings.registrar,
            &settings.domain,
            settings.register_expires,
        );
        let mut session = DeskSession {
            next_heartbeat: now + settings.heartbeat,
            settings,
            ua,
            call: None,
            calls_rung: 0,
            media: Media::NotOffered,
            browser_packets: 0,
            last_browser_audio: None,
            last_heard: now,
            next_status: now + STATUS_INTERVAL,
            refresh_at: None,
            state: None,
            lost: None,
            linger_until: None,
            frames: VecDeque::new(),
            actions: VecDeque::new(),
        };
        session.drain_ua(now);
        session.actions.push_back(DeskAction::QueryStatus);
        session
    }

    pub fn agent(&self) -> &str {
        &self.settings.agent
    }

    /// Why the desk was lost, once it was.
    pub fn lost(&self) -> Option<&str> {
        self.lost.as_deref()
    }

    /// True once a lost desk has nothing left to do: the runtime drops it.
    pub fn is_finished(&self, now: Instant) -> bool {
        match self.linger_until {
            Some(until) => self.ua.live_transactions() == 0 || now >= until,
            None => false,
        }
    }

    // ---- input ------------------------------------------------------------------

    /// A frame from the browser.
    pub fn handle_browser(&mut self, now: Instant, message: ClientMessage) {
        if self.lost.is_some() {
            return;
        }
        self.last_heard = now;
        match message {
            ClientMessage::Hello { .. } => {
                self.not_now("hello 只能发一次 / hello was already accepted")
            }
            ClientMessage::Offer { sdp } => {
                if self.media == Media::NotOffered {
                    self.media = Media::Negotiating;
                    self.actions.push_back(DeskAction::AnswerOffer(sdp));
                } else {
                    self.not_now("媒体会话已建立 / the media session is already set up");
                }
            }
            ClientMessage::Login => self.agent_action(AgentAction::Login),
            ClientMessage::Pause { reason } => match reason.as_deref() {
                None | Some("break") => self.agent_action(AgentAction::Pause),
                Some(other) => self.not_now(format!(
                    "未知的小休原因 {other:?} / unknown pause reason {other:?} (break)"
                )),
            },
            ClientMessage::Resume => self.agent_action(AgentAction::Resume),
            ClientMessage::Logout => {
                if self.call.is_some() {
                    self.not_now("通话中不能签出 / cannot log out during a call");
                } else {
                    self.agent_action(AgentAction::Logout);
                }
            }
            ClientMessage::Answer { call } => self.answer(now, &call),
            ClientMessage::Hangup { call } => self.hang_up(now, &call),
            ClientMessage::Hold { call, held } => self.hold(now, &call, held),
            ClientMessage::Dtmf { call, digit } => self.dtmf(now, &call, digit),
            ClientMessage::WrapupDone { .. } => {
                // The work order went over REST; only wrap-up itself ends here.
                if self.state.as_ref().is_some_and(|s| s.state == "wrap_up") {
                    self.agent_action(AgentAction::Resume);
                }
            }
            ClientMessage::Heartbeat => {}
        }
        self.drain_ua(now);
    }

    /// The socket closed (or could not be read): the desk is gone.
    pub fn handle_browser_gone(&mut self, now: Instant, why: &str) {
        self.lose(now, why, false);
    }

    /// One RTP packet from the browser's microphone arrived.
    pub fn browser_audio(&mut self, now: Instant) {
        self.browser_packets += 1;
        self.last_browser_audio = Some(now);
        if matches!(self.media, Media::Checking { .. })
            && self.browser_packets >= MEDIA_CHECK_PACKETS
        {
            self.media = Media::Checked;
            self.frames.push_back(ServerMessage::MediaCheck {
                ok: true,
                packets: self.browser_packets,
            });
        }
    }

    /// The runtime answered the browser's offer (or could not).
    pub fn offer_answered(&mut self, now: Instant, answer: Result<String, String>) {
        match answer {
            Ok(sdp) => {
                self.frames.push_back(ServerMessage::Answer { sdp });
                self.media = Media::Checking {
                    deadline: now + MEDIA_CHECK_WINDOW,
                };
            }
            Err(why) => {
                self.media = Media::NotOffered;
                self.frames.push_back(
                    ErrorCode::MediaFailed
                        .error(format!("媒体协商失败 / media set-up failed: {why}")),
                );
            }
        }
    }

    /// The switch's view of the agent; `None` when it does not know the agent.
    pub fn handle_status(&mut self, now: Instant, status: Option<AgentStatus>) {
        if self.lost.is_some() {
            return;
        }
        let Some(status) = status else {
            return self.fatal(
                now,
                ErrorCode::Unauthenticated,
                format!(
                    "坐席 {} 不在坐席配置中 / agent {} is not in the agents file",
                    self.settings.agent, self.settings.agent
                ),
            );
        };
        let view = StateView {
            state: match status.state {
                "reserved" => "ringing".to_owned(),
                other => other.to_owned(),
            },
            seconds: status.seconds_in_state.unwrap_or(0),
            reason: status.reason.map(str::to_owned),
        };
        match &self.state {
            // The switch's first answer: the browser is welcomed with it.
            None => self.frames.push_back(ServerMessage::Welcome {
                version: super::protocol::VERSION,
                agent: self.settings.agent.clone(),
                heartbeat_seconds: self.settings.heartbeat.as_secs(),
                state: view.clone(),
            }),
            Some(old) if old.state != view.state || old.reason != view.reason => {
                self.frames.push_back(ServerMessage::State(view.clone()));
            }
            Some(_) => {}
        }
        self.state = Some(view);
    }

    /// The switch refused a state change (not logged in, unknown agent...).
    pub fn handle_refused(&mut self, why: String) {
        self.not_now(why);
    }

    /// A SIP datagram for the desk's user agent.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.ua
            .handle_datagram(now, from, TransportKind::Udp, bytes);
        self.drain_ua(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.ua.handle_timeout(now);
        self.drain_ua(now);
        if self.lost.is_some() {
            return;
        }
        if now >= self.next_heartbeat {
            self.next_heartbeat = now + self.settings.heartbeat;
            self.frames.push_back(ServerMessage::Heartbeat);
            if let Some(state) = &self.state {
                self.frames.push_back(ServerMessage::State(state.clone()));
            }
        }
        if now.saturating_duration_since(self.last_heard)
            >= self.settings.heartbeat * MISSED_HEARTBEATS
        {
            let why = format!(
                "{MISSED_HEARTBEATS} heartbeats missed ({} s without a frame)",
                now.saturating_duration_since(self.last_heard).as_secs()
            );
            return self.lose(now, &why, true);
        }
        if now >= self.next_status {
            self.next_status = now + STATUS_INTERVAL;
            self.actions.push_back(DeskAction::QueryStatus);
        }
        if self.refresh_at.is_some_and(|at| now >= at) {
            self.refresh_at = None;
            self.ua.register(
                now,
                self.settings.registrar,
                &self.settings.domain,
                self.settings.register_expires,
            );
            self.drain_ua(now);
        }
        if let Media::Checking { deadline } = self.media
            && now >= deadline
        {
            self.media = Media::Checked;
            self.frames.push_back(ServerMessage::MediaCheck {
                ok: false,
                packets: self.browser_packets,
            });
        }
        if let Some(since) = self.silent_since()
            && now.saturating_duration_since(since) >= self.settings.rtp_timeout
        {
            let why = format!(
                "no audio from the browser for {} s",
                now.saturating_duration_since(since).as_secs()
            );
            self.lose(now, &why, true);
        }
    }

    // ---- output -----------------------------------------------------------------

    pub fn poll_transmit(&mut self) -> Option<crate::sim::Transmit> {
        self.ua.poll_transmit()
    }

    pub fn poll_frame(&mut self) -> Option<ServerMessage> {
        self.frames.pop_front()
    }

    pub fn poll_action(&mut self) -> Option<DeskAction> {
        self.actions.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next = self.ua.poll_timeout();
        let mut consider = |at: Option<Instant>| {
            if let Some(at) = at {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        };
        if let Some(until) = self.linger_until {
            consider(Some(until));
            return next;
        }
        consider(Some(self.next_heartbeat));
        consider(Some(
            self.last_heard + self.settings.heartbeat * MISSED_HEARTBEATS,
        ));
        consider(Some(self.next_status));
        consider(self.refresh_at);
        if let Media::Checking { deadline } = self.media {
            consider(Some(deadline));
        }
        consider(
            self.silent_since()
                .map(|since| since + self.settings.rtp_timeout),
        );
        next
    }

    // ---- the agent's actions ------------------------------------------------------

    fn agent_action(&mut self, action: AgentAction) {
        self.actions.push_back(DeskAction::Agent(action));
    }

    fn current(&self, id: &str) -> Option<&DeskCall> {
        self.call.as_ref().filter(|c| c.id == id)
    }

    fn answer(&mut self, now: Instant, id: &str) {
        let Some(call) = self.current(id).filter(|c| c.answered_at.is_none()) else {
            return self.not_now(format!("没有可接听的来电 {id} / no call {id} ringing"));
        };
        let index = call.index;
        let Some(remote) = call.remote_rtp else {
            // The engine always offers; without an offer there is nowhere to relay.
            self.ua.reject(now, index, 488);
            return;
        };
        self.ua.answer(now, index);
        if let Some(call) = self.call.as_mut() {
            call.answered_at = Some(now);
        }
        // Relay from the 200 on, so the agent's first words are not clipped waiting
        // for the ACK.
        self.actions.push_back(DeskAction::Relay(Some(remote)));
    }

    fn hang_up(&mut self, now: Instant, id: &str) {
        let Some(call) = self.current(id) else {
            return self.not_now(format!("没有通话 {id} / no call {id}"));
        };
        let index = call.index;
        if call.answered_at.is_some() {
            self.ua.bye(now, index);
        } else {
            // 603: the agent declined; the ACD offers the call to someone else.
            self.ua.reject(now, index, 603);
        }
    }

    fn hold(&mut self, now: Instant, id: &str, held: bool) {
        let Some(call) = self.current(id).filter(|c| c.connected) else {
            return self.not_now(format!("没有接通的通话 {id} / no connected call {id}"));
        };
        let index = call.index;
        let direction = if held {
            Direction::SendOnly
        } else {
            Direction::SendRecv
        };
        self.ua.reinvite(now, index, direction);
        self.frames.push_back(ServerMessage::Held {
            call: id.to_owned(),
            held,
        });
    }

    fn dtmf(&mut self, now: Instant, id: &str, digit: char) {
        if !matches!(digit, '0'..='9' | '*' | '#' | 'A'..='D') {
            return self.not_now(format!("无效按键 {digit:?} / not a DTMF digit: {digit:?}"));
        }
        let Some(call) = self.current(id).filter(|c| c.connected) else {
            return self.not_now(format!("没有接通的通话 {id} / no connected call {id}"));
        };
        let index = call.index;
        self.ua.info(
            now,
            index,
            "application/dtmf-relay",
            format!("Signal={digit}\r\nDuration=160\r\n"),
        );
    }

    // ---- the user agent's events ----------------------------------------------------

    fn drain_ua(&mut self, now: Instant) {
        while let Some(event) = self.ua.poll_event() {
            self.on_ua_event(now, event);
        }
    }

    fn on_ua_event(&mut self, now: Instant, event: UaEvent) {
        if matches!(
            event,
            UaEvent::Incoming { .. }
                | UaEvent::Answered { .. }
                | UaEvent::Failed { .. }
                | UaEvent::Ended { .. }
        ) {
            // The agent's state just changed in the switch: show it now, not at the
            // next poll.
            self.actions.push_back(DeskAction::QueryStatus);
        }
        match event {
            UaEvent::Incoming { call } => self.incoming(now, call),
            UaEvent::Answered { call } => {
                if let Some(c) = self.call.as_mut().filter(|c| c.index == call) {
                    c.connected = true;
                    self.frames.push_back(ServerMessage::Connected {
                        call: c.id.clone(),
                        work_order: c.work_order.clone(),
                    });
                }
            }
            UaEvent::Failed { call, status } => {
                if let Some(c) = self.call.take_if(|c| c.index == call) {
                    let reason = match status {
                        487 => "cancelled".to_owned(),
                        603 => "declined".to_owned(),
                        480 => "desk_lost".to_owned(),
                        other => format!("status {other}"),
                    };
                    self.actions.push_back(DeskAction::Relay(None));
                    self.frames
                        .push_back(ServerMessage::OfferWithdrawn { call: c.id, reason });
                }
            }
            UaEvent::Ended { call, by } => {
                if let Some(c) = self.call.take_if(|c| c.index == call) {
                    let by = match (by, self.lost.is_some()) {
                        (_, true) => EndedBy::DeskLost,
                        (Side::Local, false) => EndedBy::Agent,
                        (Side::Remote, false) => EndedBy::Caller,
                    };
                    self.actions.push_back(DeskAction::Relay(None));
                    self.frames.push_back(ServerMessage::Ended {
                        call: c.id,
                        work_order: c.work_order,
                        by,
                    });
                }
            }
            UaEvent::Registered { expires } => {
                if self.lost.is_none() {
                    self.refresh_at = Some(now + expires / 2);
                }
            }
            UaEvent::RegisterFailed { status } => {
                if self.lost.is_none() {
                    self.fatal(
                        now,
                        ErrorCode::RegistrationFailed,
                        format!(
                            "注册被拒绝 ({status}) / the registrar refused the desk ({status})"
                        ),
                    );
                }
            }
            UaEvent::Unregistered | UaEvent::Provisional { .. } => {}
        }
    }

    /// A call for the agent: ring the desk, unless it is busy or dying.
    fn incoming(&mut self, now: Instant, index: CallIndex) {
        if self.call.is_some() || self.lost.is_some() {
            self.ua.reject(now, index, 486);
            return;
        }
        let Some(invite) = self.ua.incoming_invite(index) else {
            return;
        };
        let offer = OfferedCall::read(invite);
        self.ua.ring(now, index);
        self.calls_rung += 1;
        let id = format!("c{}", self.calls_rung);
        self.frames.push_back(ServerMessage::Offered {
            call: id.clone(),
            work_order: offer.work_order.clone(),
            queue: offer.queue,
            waited_seconds: offer.waited_seconds,
            caller: offer.caller,
        });
        self.call = Some(DeskCall {
            index,
            id,
            work_order: offer.work_order,
            remote_rtp: offer.remote_rtp,
            answered_at: None,
            connected: false,
        });
    }

    // ---- a desk that dies ---------------------------------------------------------

    /// Since when the browser has been silent during an answered call.
    fn silent_since(&self) -> Option<Instant> {
        let answered = self.call.as_ref()?.answered_at?;
        Some(
            self.last_browser_audio
                .map_or(answered, |at| at.max(answered)),
        )
    }

    /// The desk is gone: what a phone that un-registers does, and the socket closed
    /// if it is still `open`.
    fn lose(&mut self, now: Instant, why: &str, open: bool) {
        if self.lost.is_some() {
            return;
        }
        self.lost = Some(why.to_owned());
        if let Some(call) = self.call.clone() {
            if call.answered_at.is_some() {
                if let Some(work_order) = call.work_order {
                    self.actions.push_back(DeskAction::Note {
                        work_order,
                        text: format!("desk lost: {why}; the agent's side was hung up"),
                    });
                }
                self.ua.bye(now, call.index);
            } else {
                // 480: the phone cannot take calls; the ACD re-queues the call at its
                // place and logs the agent out.
                self.ua.reject(now, call.index, 480);
            }
        }
        self.refresh_at = None;
        self.ua
            .register(now, self.settings.registrar, &self.settings.domain, 0);
        self.actions.push_back(DeskAction::Relay(None));
        self.actions
            .push_back(DeskAction::Agent(AgentAction::Logout));
        self.linger_until = Some(now + LINGER);
        // The call's `ended` goes out before the error and the close.
        self.drain_ua(now);
        if open {
            self.close(
                ErrorCode::DeskLost,
                format!("坐席台已断开 / desk lost: {why}"),
            );
        }
    }

    fn not_now(&mut self, message: impl Into<String>) {
        self.frames.push_back(ErrorCode::NotNow.error(message));
    }

    /// An error the desk does not survive: said, the socket closed, and the desk
    /// torn down like one that died.
    fn fatal(&mut self, now: Instant, code: ErrorCode, message: String) {
        self.close(code, message.clone());
        self.lose(now, &message, false);
    }

    fn close(&mut self, code: ErrorCode, message: String) {
        self.frames.push_back(code.error(message));
        let close = code.close_code().unwrap_or(4400);
        self.actions.push_back(DeskAction::Close { code: close });
    }
}

/// What the ringing INVITE tells the desk.
struct OfferedCall {
    work_order: Option<String>,
    queue: Option<String>,
    waited_seconds: Option<u64>,
    caller: String,
    remote_rtp: Option<SocketAddr>,
}

impl OfferedCall {
    fn read(invite: &Request) -> OfferedCall {
        let header = |name: &str| {
            invite
                .headers
                .iter()
                .find(|h| h.name().eq_ignore_ascii_case(name))
                .map(|h| h.value().trim().to_owned())
        };
        OfferedCall {
            work_order: header(crate::callbacks::WORK_ORDER_HEADER),
            queue: header(OFFER_QUEUE_HEADER),
            waited_seconds: header(OFFER_WAITED_HEADER).and_then(|w| w.parse().ok()),
            // The switch shows agents a masked number as the display name (R12).
            caller: header("From")
                .map(|from| display_name(&from))
                .unwrap_or_default(),
            remote_rtp: crate::sip::sdp::negotiate(&invite.body, &[Codec::Pcmu])
                .ok()
                .map(|n| n.remote_rtp),
        }
    }
}

/// The display name of a From value (`"138****5678" <sip:...>`), unquoted.
fn display_name(value: &str) -> String {
    let name = value.split('<').next().unwrap_or("").trim();
    name.trim_matches('"').to_owned()
}

#[cfg(test)]
mod tests;
