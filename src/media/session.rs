//! The per-call RTP stream: every 20 ms send one G.711 frame (prompt or silence), record
//! one stereo frame (R22), and turn incoming RTP into caller audio and DTMF keys (R29).
//!
//! [`MediaCore`] is the pure part: fed ticks and datagrams, it returns packets, frames and
//! events. [`spawn`] is the tokio task that owns the UDP socket and drives the core.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::dtmf::{self, DtmfDetector};
use super::g711::{self, Codec};
use super::prompt::Prompt;
use super::rtp::{self, RtpSender};
use crate::recording::{FRAME_SAMPLES, StereoFrame};

/// One frame of media time: 160 samples at 8 kHz.
pub const FRAME_DURATION: Duration = Duration::from_millis(20);

/// Caller audio kept waiting for its recording slot: 10 frames (200 ms). Absorbs network
/// jitter and odd packet sizes; beyond it the oldest audio is dropped so a flood (or a
/// sender whose clock runs fast) can neither grow memory nor delay the left channel.
pub const CALLER_BUFFER_SAMPLES: usize = 10 * FRAME_SAMPLES;

/// Mean absolute amplitude above which a caller frame counts as carrying sound: about
/// -40 dBFS, above line noise and G.711 idle codes, well below speech.
pub const VOICE_ENERGY_FLOOR: u32 = 330;

/// Largest datagram read; a G.711 20 ms packet is 172 bytes, anything cut here is garbage.
const MAX_DATAGRAM: usize = 2048;
/// Commands come from the call task at human pace (prompt starts and stops).
const COMMAND_CAPACITY: usize = 8;
/// Events go to the call task; if it lags this far behind, events are dropped and logged
/// rather than stalling the 20 ms pacing.
const EVENT_CAPACITY: usize = 32;

/// What SDP negotiation decided for this leg.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaParams {
    /// Where the peer's SDP says to send RTP (until symmetric RTP learns better).
    pub remote: SocketAddr,
    pub codec: Codec,
    /// Payload type of RFC 4733 telephone-events, if negotiated.
    pub telephone_event_pt: Option<u8>,
    pub ssrc: u32,
}

/// Orders from the call task.
#[derive(Debug)]
pub enum MediaCommand {
    /// Play a prompt from its start, replacing any prompt playing now.
    Play(Arc<Prompt>),
    /// Stop the current prompt; silence follows and no `PlaybackFinished` is sent.
    StopPlayback,
    /// Bridge an agent's leg (B2BUA): from the next tick the caller hears the agent and
    /// the agent hears the caller, each side in its own codec; any prompt stops. The
    /// recording keeps one layout: left the caller, right what the caller heard.
    AttachAgent {
        socket: Arc<UdpSocket>,
        params: MediaParams,
    },
    /// Undo the bridge (the agent hung up); the caller hears silence or prompts again.
    DetachAgent,
}

/// News for the call task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaEvent {
    /// The last frame of the current prompt has been sent.
    PlaybackFinished,
    /// The caller pressed a key (RFC 4733).
    Dtmf(char),
}

/// Counters of one media stream, returned when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MediaStats {
    pub packets_sent: u64,
    /// Valid RTP packets from the peer.
    pub packets_received: u64,
    /// Datagrams that were not RTP, or came from a source other than the latched peer.
    pub packets_invalid: u64,
    pub frames_recorded: u64,
    /// Frames the recorder could not take (channel full or closed): it never blocks media.
    pub frames_dropped_for_recording: u64,
    /// Frames in which the caller's audio carried sound (see [`VOICE_ENERGY_FLOOR`]).
    pub caller_energy_frames: u64,
}

/// Caller samples waiting for the recording slot they belong to. Pure.
#[derive(Debug, Default)]
pub struct CallerAudio {
    samples: VecDeque<i16>,
    dropped_samples: u64,
}

impl CallerAudio {
    pub fn new() -> CallerAudio {
        CallerAudio::default()
    }

    /// Appends decoded caller audio, dropping the oldest beyond [`CALLER_BUFFER_SAMPLES`].
    pub fn push(&mut self, samples: &[i16]) {
        self.samples.extend(samples);
        let excess = self.samples.len().saturating_sub(CALLER_BUFFER_SAMPLES);
        if excess > 0 {
            self.samples.drain(..excess);
            self.dropped_samples += excess as u64;
        }
    }

    /// The next 20 ms of caller audio. Only whole frames are taken: with less buffered the
    /// slot is silence and the samples wait, so a stream that runs behind the tick gains a
    /// frame of latency once instead of being chopped into half-silent frames.
    pub fn take_frame(&mut self) -> [i16; FRAME_SAMPLES] {
        let mut frame = [0; FRAME_SAMPLES];
        if self.samples.len() >= FRAME_SAMPLES {
            for (slot, sample) in frame.iter_mut().zip(self.samples.drain(..FRAME_SAMPLES)) {
                *slot = sample;
            }
        }
        frame
    }

    pub fn buffered(&self) -> usize {
        self.samples.len()
    }

    /// Samples thrown away because the buffer was full.
    pub fn dropped_samples(&self) -> u64 {
        self.dropped_samples
    }
}

/// Whether a frame carries sound rather than silence or line noise.
pub fn has_voice_energy(frame: &[i16; FRAME_SAMPLES]) -> bool {
    let total: u32 = frame.iter().map(|s| u32::from(s.unsigned_abs())).sum();
    total / FRAME_SAMPLES as u32 > VOICE_ENERGY_FLOOR
}

/// Everything one tick produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tick {
    /// The RTP datagram to send to [`MediaCore::destination`].
    pub rtp: Bytes,
    /// The recording frame: left = caller, right = what `rtp` carries.
    pub frame: StereoFrame,
    /// The current prompt ended with this frame.
    pub playback_finished: bool,
}

#[derive(Debug)]
struct Playback {
    prompt: Arc<Prompt>,
    next_frame: usize,
}

/// The pure media logic of one leg: pacing is the caller's job (one [`MediaCore::tick`]
/// per 20 ms), sockets are the caller's job (datagrams in, datagrams out).
#[derive(Debug)]
pub struct MediaCore {
    codec: Codec,
    telephone_event_pt: Option<u8>,
    destination: SocketAddr,
    latched: bool,
    sender: RtpSender,
    first_packet: bool,
    caller: CallerAudio,
    dtmf: DtmfDetector,
    playback: Option<Playback>,
    stats: MediaStats,
    encoded: Vec<u8>,
    decoded: Vec<i16>,
}

impl MediaCore {
    /// `initial_seq` and `initial_ts` should be random (RFC 3550 §5.1).
    pub fn new(params: &MediaParams, initial_seq: u16, initial_ts: u32) -> MediaCore {
        MediaCore {
            codec: params.codec,
            telephone_event_pt: params.telephone_event_pt,
            destination: params.remote,
            latched: false,
            sender: RtpSender::new(
                params.ssrc,
                params.codec.payload_type(),
                initial_seq,
                initial_ts,
            ),
            first_packet: true,
            caller: CallerAudio::new(),
            dtmf: DtmfDetector::new(),
            playback: None,
            stats: MediaStats::default(),
            encoded: Vec::with_capacity(FRAME_SAMPLES),
            decoded: Vec::with_capacity(FRAME_SAMPLES),
        }
    }

    /// Where outgoing RTP goes now.
    pub fn destination(&self) -> SocketAddr {
        self.destination
    }

    pub fn play(&mut self, prompt: Arc<Prompt>) {
        self.playback = Some(Playback {
            prompt,
            next_frame: 0,
        });
    }

    pub fn stop_playback(&mut self) {
        self.playback = None;
    }

    pub fn is_playing(&self) -> bool {
        self.playback.is_some()
    }

    /// The receive-side counters (packets received and invalid, caller energy frames).
    pub fn stats(&self) -> MediaStats {
        self.stats
    }

    /// Handles one datagram from `from`; returns a key press if it completed one.
    pub fn on_datagram(&mut self, from: SocketAddr, datagram: &[u8]) -> Option<MediaEvent> {
        // Once latched, only the latched source may feed the call: anyone who can reach
        // the port must not be able to inject audio or keys (RTP bleed).
        if self.latched && from != self.destination {
            self.stats.packets_invalid += 1;
            return None;
        }
        let Ok(packet) = rtp::parse(datagram) else {
            self.stats.packets_invalid += 1;
            return None;
        };
        self.stats.packets_received += 1;
        if !self.latched {
            // Symmetric RTP (RFC 4961): a softphone behind NAT advertises its private
            // address in SDP, which we cannot reach; the source of its packets is the NAT
            // binding that does reach it.
            self.destination = from;
            self.latched = true;
        }
        if Some(packet.payload_type) == self.telephone_event_pt {
            return match dtmf::parse(&packet.payload) {
                Ok(event) => self
                    .dtmf
                    .on_event(packet.timestamp, &event)
                    .map(MediaEvent::Dtmf),
                Err(_) => None,
            };
        }
        // Decode whichever G.711 arrives: some peers switch between the two they offered.
        // Other payload types (comfort noise, …) carry nothing to record.
        if let Some(codec) = Codec::from_payload_type(packet.payload_type) {
            self.decoded.clear();
            g711::decode(codec, &packet.payload, &mut self.decoded);
            self.caller.push(&self.decoded);
        }
        None
    }

    /// Produces the next 20 ms: the packet to send and the frame to record.
    pub fn tick(&mut self) -> Tick {
        let (outgoing, playback_finished) = self.next_outgoing_frame();
        let mut tick = self.tick_with(outgoing);
        tick.playback_finished = playback_finished;
        tick
    }

    /// Like [`MediaCore::tick`], sending `outgoing` (a bridged agent's voice) instead of
    /// the prompt.
    pub fn tick_with(&mut self, outgoing: [i16; FRAME_SAMPLES]) -> Tick {
        let rtp = self.packet(&outgoing);
        let caller = self.received_frame();
        Tick {
            rtp,
            frame: StereoFrame {
                left: caller,
                right: outgoing,
            },
            playback_finished: false,
        }
    }

    /// The next 20 ms received from this leg's peer (silence when none arrived).
    pub fn received_frame(&mut self) -> [i16; FRAME_SAMPLES] {
        let frame = self.caller.take_frame();
        if has_voice_energy(&frame) {
            self.stats.caller_energy_frames += 1;
        }
        frame
    }

    /// Encodes one frame in this leg's codec as the next RTP packet.
    pub fn packet(&mut self, frame: &[i16; FRAME_SAMPLES]) -> Bytes {
        self.encoded.clear();
        g711::encode(self.codec, frame, &mut self.encoded);
        // Marker on the first packet only: we send continuously, so there is exactly one
        // talkspurt start (RFC 3551 §4.1).
        let rtp = self
            .sender
            .packet(&self.encoded, FRAME_SAMPLES as u32, self.first_packet);
        self.first_packet = false;
        rtp
    }

    fn next_outgoing_frame(&mut self) -> ([i16; FRAME_SAMPLES], bool) {
        let Some(playback) = &mut self.playback else {
            return ([0; FRAME_SAMPLES], false);
        };
        let frame_count = playback.prompt.frame_count();
        if playback.next_frame >= frame_count {
            // An empty prompt ends at once.
            self.playback = None;
            return ([0; FRAME_SAMPLES], true);
        }
        let frame = playback.prompt.frame(playback.next_frame);
        playback.next_frame += 1;
        let finished = playback.next_frame == frame_count;
        if finished {
            self.playback = None;
        }
        (frame, finished)
    }
}

/// The call task's end of a running media stream.
#[derive(Debug)]
pub struct MediaHandle {
    pub commands: mpsc::Sender<MediaCommand>,
    pub events: mpsc::Receiver<MediaEvent>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<MediaStats>,
}

impl MediaHandle {
    /// Stops the stream and returns its counters. The recording sender is dropped when the
    /// task ends, which tells the writer the call's audio is complete. Dropping the handle
    /// stops the task too.
    pub async fn stop(self) -> MediaStats {
        // The task may already have ended (engine shutdown); then the send fails harmlessly.
        let _ = self.stop.send(());
        match self.task.await {
            Ok(stats) => stats,
            Err(error) => {
                tracing::error!(%error, "media task failed");
                MediaStats::default()
            }
        }
    }
}

/// Starts the media task of one leg on `socket`.
///
/// `recording` receives one [`StereoFrame`] per 20 ms (dropped and counted when full).
/// The task ends on [`MediaHandle::stop`] or when the handle is dropped: the call task
/// owns the stream's life, engine shutdown included (it hangs up, then stops media).
pub fn spawn(
    socket: UdpSocket,
    params: MediaParams,
    recording: Option<mpsc::Sender<StereoFrame>>,
) -> MediaHandle {
    let (commands_tx, commands_rx) = mpsc::channel(COMMAND_CAPACITY);
    let (events_tx, events_rx) = mpsc::channel(EVENT_CAPACITY);
    let (stop_tx, stop_rx) = oneshot::channel();
    let core = MediaCore::new(&params, rand::random(), rand::random());
    let task = tokio::spawn(run(
        socket,
        core,
        commands_rx,
        events_tx,
        recording,
        stop_rx,
    ));
    MediaHandle {
        commands: commands_tx,
        events: events_rx,
        stop: stop_tx,
        task,
    }
}

async fn run(
    socket: UdpSocket,
    mut core: MediaCore,
    mut commands: mpsc::Receiver<MediaCommand>,
    events: mpsc::Sender<MediaEvent>,
    recording: Option<mpsc::Sender<StereoFrame>>,
    mut stop: oneshot::Receiver<()>,
) -> MediaStats {
    let mut sent = MediaStats::default();
    // Burst, not Delay or Skip: after a stall (a busy runtime, a paused VM) the missed
    // ticks run at once, so frames sent and recorded always equal elapsed time / 20 ms and
    // the recording lasts as long as the call (R22). Delay would shift the schedule and
    // Skip would drop the missed frames, both making the recording shorter than the call.
    // The catch-up burst carries correct RTP timestamps, which the peer's jitter buffer
    // absorbs.
    let mut pacing = tokio::time::interval(FRAME_DURATION);
    pacing.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut datagram = vec![0u8; MAX_DATAGRAM];
    let mut commands_open = true;
    let mut recorder_gone_logged = false;
    let mut agent_stats = MediaStats::default();
    let emit = |event: MediaEvent| {
        if events.try_send(event).is_err() {
            tracing::warn!(?event, "call task not taking media events; event dropped");
        }
    };

    let mut agent: Option<AgentLeg> = None;
    let mut agent_datagram = vec![0u8; MAX_DATAGRAM];
    loop {
        tokio::select! {
            // Stop first, then pacing ahead of the sockets so a flood of
            // datagrams cannot delay the outgoing stream.
            biased;
            _ = &mut stop => break,
            _ = pacing.tick() => {
                let tick = match agent.as_mut() {
                    Some(leg) => {
                        let agent_voice = leg.core.received_frame();
                        let tick = core.tick_with(agent_voice);
                        let to_agent = leg.core.packet(&tick.frame.left);
                        match leg.socket.send_to(&to_agent, leg.core.destination()).await {
                            Ok(_) => sent.packets_sent += 1,
                            Err(error) => tracing::debug!(%error, "agent RTP send failed"),
                        }
                        tick
                    }
                    None => core.tick(),
                };
                match socket.send_to(&tick.rtp, core.destination()).await {
                    Ok(_) => sent.packets_sent += 1,
                    Err(error) => tracing::debug!(%error, "RTP send failed"),
                }
                if tick.playback_finished {
                    emit(MediaEvent::PlaybackFinished);
                }
                if let Some(recording) = &recording {
                    match recording.try_send(tick.frame) {
                        Ok(()) => sent.frames_recorded += 1,
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            sent.frames_dropped_for_recording += 1;
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => {
                            sent.frames_dropped_for_recording += 1;
                            if !recorder_gone_logged {
                                tracing::warn!("recording writer gone; call audio is not recorded");
                                recorder_gone_logged = true;
                            }
                        }
                    }
                }
            }
            command = commands.recv(), if commands_open => match command {
                Some(MediaCommand::Play(prompt)) => core.play(prompt),
                Some(MediaCommand::StopPlayback) => core.stop_playback(),
                Some(MediaCommand::AttachAgent { socket, params }) => {
                    core.stop_playback();
                    if let Some(old) = agent.take() {
                        agent_stats.add(old.core.stats());
                    }
                    agent = Some(AgentLeg {
                        core: MediaCore::new(&params, rand::random(), rand::random()),
                        socket,
                    });
                }
                Some(MediaCommand::DetachAgent) => {
                    if let Some(old) = agent.take() {
                        agent_stats.add(old.core.stats());
                    }
                }
                None => commands_open = false,
            },
            received = socket.recv_from(&mut datagram) => match received {
                Ok((len, from)) => {
                    if let Some(event) = core.on_datagram(from, &datagram[..len]) {
                        emit(event);
                    }
                }
                // ICMP port-unreachable from an earlier send surfaces here on Linux; the
                // peer may simply not be listening yet.
                Err(error) => tracing::debug!(%error, "RTP receive failed"),
            },
            received = recv_agent(agent.as_ref(), &mut agent_datagram) => match received {
                Ok((len, from)) => {
                    if let Some(leg) = agent.as_mut() {
                        // Keys the agent presses are not the caller's: not reported.
                        let _ = leg.core.on_datagram(from, &agent_datagram[..len]);
                    }
                }
                Err(error) => tracing::debug!(%error, "agent RTP receive failed"),
            },
        }
    }
    if let Some(leg) = agent.take() {
        agent_stats.add(leg.core.stats());
    }
    let received = core.stats();
    MediaStats {
        packets_received: received.packets_received + agent_stats.packets_received,
        packets_invalid: received.packets_invalid + agent_stats.packets_invalid,
        caller_energy_frames: received.caller_energy_frames,
        ..sent
    }
}

/// The agent's side of a bridged call: its own socket, codec, RTP sequence and jitter
/// buffer, so the two legs never need the same codec (the bridge transcodes via PCM).
struct AgentLeg {
    core: MediaCore,
    socket: Arc<UdpSocket>,
}

/// Receives from the agent's socket when one is attached; otherwise never resolves, so
/// the select above simply has no agent branch.
async fn recv_agent(
    agent: Option<&AgentLeg>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match agent {
        Some(leg) => leg.socket.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

impl MediaStats {
    fn add(&mut self, other: MediaStats) {
        self.packets_received += other.packets_received;
        self.packets_invalid += other.packets_invalid;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    const PEER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20)), 4000);
    const NAT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)), 31000);

    fn params(codec: Codec) -> MediaParams {
        MediaParams {
            remote: PEER,
            codec,
            telephone_event_pt: Some(101),
            ssrc: 0x1234_5678,
        }
    }

    fn caller_packet(sender: &mut RtpSender, codec: Codec, sample: i16) -> Bytes {
        let mut payload = Vec::new();
        g711::encode(codec, &[sample; FRAME_SAMPLES], &mut payload);
        sender.packet(&payload, FRAME_SAMPLES as u32, false)
    }

    fn ramp_prompt(frames: usize) -> Arc<Prompt> {
        Arc::new(Prompt::from_samples(
            (0..frames * FRAME_SAMPLES)
                .map(|i| (i as i16).wrapping_mul(37))
                .collect(),
        ))
    }

    #[test]
    fn caller_audio_takes_whole_frames_and_pads_with_silence() {
        let mut caller = CallerAudio::new();
        assert_eq!(caller.take_frame(), [0; FRAME_SAMPLES]);
        caller.push(&[5; 240]);
        assert_eq!(caller.take_frame(), [5; FRAME_SAMPLES]);
        // 80 left: not a whole frame, so silence now and the 80 wait.
        assert_eq!(caller.take_frame(), [0; FRAME_SAMPLES]);
        caller.push(&[6; 80]);
        let frame = caller.take_frame();
        assert_eq!(&frame[..80], &[5; 80]);
        assert_eq!(&frame[80..], &[6; 80]);
        assert_eq!(caller.buffered(), 0);
    }

    #[test]
    fn caller_audio_is_bounded_under_a_flood() {
        let mut caller = CallerAudio::new();
        for i in 0..1000 {
            caller.push(&[i as i16; FRAME_SAMPLES]);
        }
        assert_eq!(caller.buffered(), CALLER_BUFFER_SAMPLES);
        assert_eq!(
            caller.dropped_samples(),
            (1000 * FRAME_SAMPLES - CALLER_BUFFER_SAMPLES) as u64
        );
        // The newest audio is kept: the oldest surviving frame is number 990.
        assert_eq!(caller.take_frame(), [990; FRAME_SAMPLES]);
    }

    #[test]
    fn voice_energy_separates_speech_from_idle_line() {
        assert!(!has_voice_energy(&[0; FRAME_SAMPLES]));
        assert!(!has_voice_energy(&[g711::ulaw_decode(0xFE); FRAME_SAMPLES]));
        assert!(has_voice_energy(&[3000; FRAME_SAMPLES]));
        let mut alternating = [0i16; FRAME_SAMPLES];
        for (i, s) in alternating.iter_mut().enumerate() {
            *s = if i % 2 == 0 { 2000 } else { -2000 };
        }
        assert!(has_voice_energy(&alternating));
    }

    #[test]
    fn prompt_frames_go_out_encoded_then_silence_and_one_finish() {
        let mut core = MediaCore::new(&params(Codec::Pcma), 100, 1000);
        let prompt = ramp_prompt(3);
        core.play(prompt.clone());
        let mut finishes = 0;
        for i in 0..5u16 {
            let tick = core.tick();
            let packet = rtp::parse(&tick.rtp).expect("valid RTP");
            assert_eq!(packet.payload_type, 8);
            assert_eq!(packet.sequence, 100 + i);
            assert_eq!(packet.timestamp, 1000 + u32::from(i) * 160);
            assert_eq!(packet.ssrc, 0x1234_5678);
            assert_eq!(packet.marker, i == 0);
            let expected = prompt.frame(usize::from(i));
            assert_eq!(tick.frame.right, expected);
            let mut payload = Vec::new();
            g711::encode(Codec::Pcma, &expected, &mut payload);
            assert_eq!(&packet.payload[..], &payload[..]);
            finishes += usize::from(tick.playback_finished);
            assert_eq!(tick.playback_finished, i == 2);
        }
        assert_eq!(finishes, 1);
        assert!(!core.is_playing());
    }

    #[test]
    fn stop_playback_and_empty_prompts() {
        let mut core = MediaCore::new(&params(Codec::Pcmu), 0, 0);
        core.play(ramp_prompt(10));
        core.tick();
        core.stop_playback();
        let tick = core.tick();
        assert_eq!(tick.frame.right, [0; FRAME_SAMPLES]);
        assert!(
            !tick.playback_finished,
            "a stopped prompt does not report finishing"
        );

        core.play(Arc::new(Prompt::from_samples(Vec::new())));
        assert!(core.tick().playback_finished);
        assert!(!core.tick().playback_finished);
    }

    #[test]
    fn caller_packets_land_in_the_left_channel_of_the_next_tick() {
        let mut core = MediaCore::new(&params(Codec::Pcmu), 0, 0);
        let mut caller = RtpSender::new(99, 0, 7, 0);
        assert_eq!(core.tick().frame.left, [0; FRAME_SAMPLES]);
        core.on_datagram(PEER, &caller_packet(&mut caller, Codec::Pcmu, 1000));
        let tick = core.tick();
        assert_eq!(
            tick.frame.left,
            [g711::ulaw_decode(g711::ulaw_encode(1000)); 160]
        );
        assert_eq!(tick.frame.right, [0; FRAME_SAMPLES]);
        // A-law from a peer that offered both is decoded too.
        let mut alaw_caller = RtpSender::new(99, 8, 8, 160);
        core.on_datagram(PEER, &caller_packet(&mut alaw_caller, Codec::Pcma, -2000));
        assert_eq!(
            core.tick().frame.left,
            [g711::alaw_decode(g711::alaw_encode(-2000)); 160]
        );
        assert_eq!(core.tick().frame.left, [0; FRAME_SAMPLES]);
        let stats = core.stats();
        assert_eq!(stats.packets_received, 2);
        assert_eq!(stats.caller_energy_frames, 2);
    }

    #[test]
    fn symmetric_rtp_latches_onto_the_first_valid_source() {
        let mut core = MediaCore::new(&params(Codec::Pcmu), 0, 0);
        assert_eq!(core.destination(), PEER);
        // Garbage does not move the destination.
        core.on_datagram(NAT, b"hello");
        assert_eq!(core.destination(), PEER);
        let mut caller = RtpSender::new(99, 0, 0, 0);
        core.on_datagram(NAT, &caller_packet(&mut caller, Codec::Pcmu, 500));
        assert_eq!(core.destination(), NAT);
        // Once latched, another source is ignored: no audio, no redirect.
        core.tick();
        core.on_datagram(PEER, &caller_packet(&mut caller, Codec::Pcmu, 500));
        assert_eq!(core.destination(), NAT);
        assert_eq!(core.tick().frame.left, [0; FRAME_SAMPLES]);
        let stats = core.stats();
        assert_eq!(stats.packets_received, 1);
        assert_eq!(stats.packets_invalid, 2);
    }

    #[test]
    fn telephone_events_become_one_dtmf_per_press_r29() {
        let mut core = MediaCore::new(&params(Codec::Pcmu), 0, 0);
        let mut events = Vec::new();
        // Two updates and a repeated end packet, all with the press's start timestamp.
        for (sequence, end) in [(0, false), (1, false), (2, true), (3, true)] {
            let mut sender = RtpSender::new(99, 101, sequence, 0);
            let bytes = sender.packet(&[1, u8::from(end) << 7, 0, 160], 0, false);
            events.extend(core.on_datagram(PEER, &bytes));
        }
        let mut later = RtpSender::new(99, 101, 50, 8000);
        events.extend(core.on_datagram(PEER, &later.packet(&[11, 0x80, 1, 0], 0, false)));
        // A truncated telephone-event is valid RTP with a useless payload: no key, no panic.
        let mut broken = RtpSender::new(99, 101, 51, 9000);
        events.extend(core.on_datagram(PEER, &broken.packet(&[3], 0, false)));
        assert_eq!(events, vec![MediaEvent::Dtmf('1'), MediaEvent::Dtmf('#')]);
        assert_eq!(
            core.tick().frame.left,
            [0; FRAME_SAMPLES],
            "DTMF is not audio"
        );
    }

    #[test]
    fn garbage_is_counted_never_fatal() {
        let mut core = MediaCore::new(&params(Codec::Pcmu), 0, 0);
        for datagram in [&b""[..], &[0xFF; 3], &[0x00; 40], &[0x8F; 14]] {
            assert_eq!(core.on_datagram(PEER, datagram), None);
        }
        assert_eq!(core.stats().packets_invalid, 4);
        assert_eq!(core.stats().packets_received, 0);
        core.tick();
    }

    async fn bind() -> UdpSocket {
        UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1")
    }

    /// A prompt goes out as paced RTP, caller audio lands in the left channel, and the
    /// recording gets one frame per 20 ms (R22).
    #[tokio::test(start_paused = true)]
    async fn task_paces_prompt_and_records_both_sides_r22() {
        let peer = bind().await;
        let media_socket = bind().await;
        let media_addr = media_socket.local_addr().expect("local addr");
        let (recording_tx, mut recording_rx) = mpsc::channel(1000);
        let mut handle = spawn(
            media_socket,
            MediaParams {
                remote: peer.local_addr().expect("peer addr"),
                codec: Codec::Pcmu,
                telephone_event_pt: Some(101),
                ssrc: 42,
            },
            Some(recording_tx),
        );
        let prompt = ramp_prompt(5);
        handle
            .commands
            .send(MediaCommand::Play(prompt.clone()))
            .await
            .expect("task running");

        let mut caller = RtpSender::new(7, 0, 0, 0);
        let mut received = Vec::new();
        let mut buf = [0u8; 2048];
        for _ in 0..20 {
            let (len, from) = peer.recv_from(&mut buf).await.expect("RTP from media task");
            assert_eq!(from, media_addr);
            received.push((
                tokio::time::Instant::now(),
                rtp::parse(&buf[..len]).expect("valid RTP"),
            ));
            let reply = caller_packet(&mut caller, Codec::Pcmu, 1000);
            peer.send_to(&reply, media_addr)
                .await
                .expect("send caller RTP");
        }
        assert_eq!(
            handle.events.recv().await,
            Some(MediaEvent::PlaybackFinished)
        );

        // Sequence and timestamp advance by one frame per packet.
        for pair in received.windows(2) {
            let (before, after) = (&pair[0].1, &pair[1].1);
            assert_eq!(after.sequence, before.sequence.wrapping_add(1));
            assert_eq!(after.timestamp, before.timestamp.wrapping_add(160));
            assert_eq!(after.ssrc, 42);
        }
        // Paced at 20 ms: 19 intervals span 380 ms (one frame of slack for IO wake-ups).
        let span = received[19].0 - received[0].0;
        assert!(
            span >= Duration::from_millis(360) && span <= Duration::from_millis(400),
            "{span:?}"
        );
        // The prompt went out as five consecutive frames (it may start on the second tick
        // if the first fired before the Play command arrived).
        let start = received
            .iter()
            .position(|(_, p)| p.payload.iter().any(|&b| b != 0xFF))
            .expect("prompt was sent");
        assert!(start <= 1, "prompt started late at packet {start}");
        for i in 0..5 {
            let mut expected = Vec::new();
            g711::encode(Codec::Pcmu, &prompt.frame(i), &mut expected);
            assert_eq!(&received[start + i].1.payload[..], &expected[..]);
        }

        // Let the last caller packet reach its tick before stopping.
        tokio::time::sleep(Duration::from_millis(40)).await;
        let stats = handle.stop().await;
        let mut frames = Vec::new();
        while let Some(frame) = recording_rx.recv().await {
            frames.push(frame);
        }
        // recv() returned None: the task dropped the recording sender when it ended.
        assert_eq!(frames.len() as u64, stats.frames_recorded);
        assert_eq!(stats.frames_dropped_for_recording, 0);
        assert_eq!(stats.packets_sent, stats.frames_recorded);
        assert_eq!(stats.packets_received, 20);
        let caller_sample = g711::ulaw_decode(g711::ulaw_encode(1000));
        let caller_frames = frames
            .iter()
            .filter(|f| f.left == [caller_sample; FRAME_SAMPLES])
            .count();
        assert!(
            caller_frames >= 19,
            "only {caller_frames} caller frames recorded"
        );
        assert!(stats.caller_energy_frames >= 19);
        let prompt_frames = frames
            .iter()
            .filter(|f| f.right != [0; FRAME_SAMPLES])
            .count();
        assert_eq!(prompt_frames, 5);
    }

    /// B2BUA bridge: the caller (PCMA) and the agent (PCMU) hear each other through the
    /// engine, and the recording keeps the caller left and the agent right (R22).
    #[tokio::test(start_paused = true)]
    async fn attached_agent_is_bridged_both_ways_and_recorded_on_the_right() {
        let caller_peer = bind().await;
        let agent_peer = bind().await;
        let caller_socket = bind().await;
        let caller_addr = caller_socket.local_addr().expect("addr");
        let agent_socket = Arc::new(bind().await);
        let agent_addr = agent_socket.local_addr().expect("addr");
        let (recording_tx, mut recording_rx) = mpsc::channel(1000);
        let handle = spawn(
            caller_socket,
            MediaParams {
                remote: caller_peer.local_addr().expect("addr"),
                codec: Codec::Pcma,
                telephone_event_pt: None,
                ssrc: 1,
            },
            Some(recording_tx),
        );
        handle
            .commands
            .send(MediaCommand::AttachAgent {
                socket: agent_socket,
                params: MediaParams {
                    remote: agent_peer.local_addr().expect("addr"),
                    codec: Codec::Pcmu,
                    telephone_event_pt: None,
                    ssrc: 2,
                },
            })
            .await
            .expect("task running");

        let mut caller_rtp = RtpSender::new(7, 8, 0, 0);
        let mut agent_rtp = RtpSender::new(9, 0, 0, 0);
        let mut buf = [0u8; 2048];
        let (mut heard_by_agent, mut heard_by_caller) = (0, 0);
        let agent_voice = g711::ulaw_decode(g711::ulaw_encode(-2000));
        let caller_voice = g711::alaw_decode(g711::alaw_encode(1000));
        for _ in 0..30 {
            caller_peer
                .send_to(
                    &caller_packet(&mut caller_rtp, Codec::Pcma, 1000),
                    caller_addr,
                )
                .await
                .expect("send");
            agent_peer
                .send_to(
                    &caller_packet(&mut agent_rtp, Codec::Pcmu, -2000),
                    agent_addr,
                )
                .await
                .expect("send");
            let (len, _) = agent_peer.recv_from(&mut buf).await.expect("RTP to agent");
            let packet = rtp::parse(&buf[..len]).expect("RTP");
            assert_eq!(packet.payload_type, 0, "the agent gets its own codec");
            let mut pcm = Vec::new();
            g711::decode(Codec::Pcmu, &packet.payload, &mut pcm);
            if pcm.iter().all(|&s| (s - caller_voice).abs() < 64) {
                heard_by_agent += 1;
            }
            let (len, _) = caller_peer
                .recv_from(&mut buf)
                .await
                .expect("RTP to caller");
            let packet = rtp::parse(&buf[..len]).expect("RTP");
            assert_eq!(packet.payload_type, 8, "the caller gets its own codec");
            let mut pcm = Vec::new();
            g711::decode(Codec::Pcma, &packet.payload, &mut pcm);
            if pcm.iter().all(|&s| (s - agent_voice).abs() < 64) {
                heard_by_caller += 1;
            }
        }
        assert!(
            heard_by_agent >= 25,
            "agent heard the caller in {heard_by_agent} frames"
        );
        assert!(
            heard_by_caller >= 25,
            "caller heard the agent in {heard_by_caller} frames"
        );
        let stats = handle.stop().await;
        assert!(stats.packets_received >= 55, "{stats:?}");
        let mut frames = Vec::new();
        while let Some(frame) = recording_rx.recv().await {
            frames.push(frame);
        }
        let both = frames
            .iter()
            .filter(|f| f.left[0] == caller_voice && f.right[0] == agent_voice)
            .count();
        assert!(
            both >= 25,
            "only {both} frames have caller left and agent right"
        );
    }

    /// R22: the recording lasts as long as the call, within 1 %.
    #[tokio::test(start_paused = true)]
    async fn recorded_frames_match_elapsed_time_r22() {
        let socket = bind().await;
        let sink = bind().await;
        let (recording_tx, mut recording_rx) = mpsc::channel(100_000);
        let handle = spawn(
            socket,
            MediaParams {
                remote: sink.local_addr().expect("sink addr"),
                codec: Codec::Pcma,
                telephone_event_pt: None,
                ssrc: 1,
            },
            Some(recording_tx),
        );
        let call = Duration::from_secs(60);
        tokio::time::sleep(call).await;
        let stats = handle.stop().await;
        let expected = call.as_millis() as u64 / 20;
        assert!(
            stats.frames_recorded.abs_diff(expected) <= expected / 100,
            "{} frames for {expected}",
            stats.frames_recorded
        );
        let mut count = 0u64;
        while recording_rx.recv().await.is_some() {
            count += 1;
        }
        assert_eq!(count, stats.frames_recorded);
    }

    #[tokio::test(start_paused = true)]
    async fn full_recorder_drops_frames_instead_of_blocking() {
        let socket = bind().await;
        let sink = bind().await;
        let (recording_tx, _recording_rx) = mpsc::channel(5);
        let handle = spawn(
            socket,
            MediaParams {
                remote: sink.local_addr().expect("sink addr"),
                codec: Codec::Pcmu,
                telephone_event_pt: None,
                ssrc: 1,
            },
            Some(recording_tx),
        );
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let stats = handle.stop().await;
        assert_eq!(stats.frames_recorded, 5);
        assert!(stats.frames_dropped_for_recording >= 45);
        assert_eq!(
            stats.packets_sent,
            stats.frames_recorded + stats.frames_dropped_for_recording,
            "media kept its pace"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stop_ends_the_task_and_garbage_is_survived() {
        let socket = bind().await;
        let addr = socket.local_addr().expect("addr");
        let sink = bind().await;
        let handle = spawn(
            socket,
            MediaParams {
                remote: sink.local_addr().expect("sink addr"),
                codec: Codec::Pcmu,
                telephone_event_pt: Some(101),
                ssrc: 1,
            },
            None,
        );
        sink.send_to(b"\x00\x01garbage", addr).await.expect("send");
        sink.send_to(&[0x80; 8], addr).await.expect("send");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stats = handle.stop().await;
        assert_eq!(stats.packets_invalid, 2);
        // About 100 ms of ticks before the stop.
        assert!((5..=7).contains(&stats.packets_sent), "{stats:?}");
    }
}
