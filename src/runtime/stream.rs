//! One leg's RTP stream as a task (I/O): every 20 ms it sends one G.711 frame (a prompt,
//! silence, or the bridged leg's voice), records one stereo frame (R22), and turns what
//! arrives into audio and key presses. The pure logic is [`MediaCore`]; this task owns
//! the sockets and the pacing.

use std::net::SocketAddr;
use std::sync::Arc;

use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::media::prompt::Prompt;
use crate::media::session::{FRAME_DURATION, MediaCore, MediaEvent, MediaParams, MediaStats};
use crate::media::vad::VadSettings;
use crate::recording::StereoFrame;

/// Largest datagram read; a G.711 20 ms packet is 172 bytes, anything cut here is garbage.
const MAX_DATAGRAM: usize = 2048;
/// Commands come from the switch task at human pace (prompt starts and stops).
const COMMAND_CAPACITY: usize = 16;

/// Orders for a running stream.
#[derive(Debug)]
pub enum MediaCommand {
    /// Play a prompt from its start, replacing any prompt playing now; its end is
    /// reported with this number.
    Play(Arc<Prompt>, u64),
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
    /// The peer moved its RTP or changed codec (re-INVITE): `agent` says which leg.
    Update { agent: bool, params: MediaParams },
    /// Hold: send nothing to that leg (its peer put the call on hold), `false` resumes.
    /// The recording goes on, silent on the right while the caller is held.
    Hold { agent: bool, held: bool },
}

/// What a stream tells the switch task: a media event, or the end of prompt `seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEvent {
    Media(MediaEvent),
    PlaybackFinished { seq: u64 },
}

/// Events queued for the switch task; if it lags this far behind, events are dropped
/// and logged rather than stalling the 20 ms pacing.
pub const EVENT_CAPACITY: usize = 32;

/// The switch task's end of a running media stream.
#[derive(Debug)]
pub struct MediaHandle {
    pub commands: mpsc::Sender<MediaCommand>,
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
/// Key presses and prompt ends go to `events` (a bounded queue of [`EVENT_CAPACITY`]:
/// when its reader lags, events are dropped and logged, never the pacing held up).
pub fn spawn(
    socket: UdpSocket,
    params: MediaParams,
    recording: Option<mpsc::Sender<StereoFrame>>,
    events_tx: mpsc::Sender<StreamEvent>,
    rtp_timeout: Option<Duration>,
    listen: Option<VadSettings>,
) -> MediaHandle {
    let (commands_tx, commands_rx) = mpsc::channel(COMMAND_CAPACITY);
    let (stop_tx, stop_rx) = oneshot::channel();
    let mut core = MediaCore::new(&params, rand::random(), rand::random());
    if let Some(voice) = listen {
        core.listen(voice);
    }
    let task = tokio::spawn(run(
        socket,
        core,
        commands_rx,
        events_tx,
        recording,
        stop_rx,
        rtp_timeout,
        listen,
    ));
    MediaHandle {
        commands: commands_tx,
        stop: stop_tx,
        task,
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    socket: UdpSocket,
    mut core: MediaCore,
    mut commands: mpsc::Receiver<MediaCommand>,
    events: mpsc::Sender<StreamEvent>,
    recording: Option<mpsc::Sender<StereoFrame>>,
    mut stop: oneshot::Receiver<()>,
    rtp_timeout: Option<Duration>,
    listen: Option<VadSettings>,
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
    let mut playing_seq = 0;
    let emit = |event: StreamEvent| {
        if events.try_send(event).is_err() {
            tracing::warn!(?event, "call task not taking media events; event dropped");
        }
    };

    let mut agent: Option<AgentLeg> = None;
    let mut agent_datagram = vec![0u8; MAX_DATAGRAM];
    // Hold: the peer asked for no media (RFC 3264 §8.4); the pacing and the recording
    // go on so the file keeps wall-clock time.
    let mut caller_held = false;
    let mut inactivity_reported = false;
    let ssrc = core.ssrc();
    loop {
        tokio::select! {
            // Stop first, then pacing ahead of the sockets so a flood of
            // datagrams cannot delay the outgoing stream.
            biased;
            _ = &mut stop => break,
            _ = pacing.tick() => {
                let mut tick = match agent.as_mut() {
                    Some(leg) => {
                        let agent_voice = leg.core.received_frame();
                        let tick = core.tick_with(agent_voice);
                        let to_agent = leg.core.packet(&tick.frame.left);
                        if !leg.held {
                            match leg.socket.send_to(&to_agent, leg.core.destination()).await {
                                Ok(_) => sent.packets_sent += 1,
                                Err(error) => tracing::debug!(%error, "agent RTP send failed"),
                            }
                        }
                        tick
                    }
                    None => core.tick(),
                };
                if caller_held {
                    tick.frame.right = [0; crate::recording::FRAME_SAMPLES];
                } else {
                    match socket.send_to(&tick.rtp, core.destination()).await {
                        Ok(_) => sent.packets_sent += 1,
                        Err(error) => tracing::debug!(%error, "RTP send failed"),
                    }
                }
                if tick.playback_finished {
                    emit(StreamEvent::PlaybackFinished { seq: playing_seq });
                }
                while let Some(event) = core.poll_event() {
                    emit(StreamEvent::Media(event));
                }
                if let Some(limit) = rtp_timeout
                    && !caller_held
                    && !inactivity_reported
                    && core.silent_for() >= limit
                {
                    emit(StreamEvent::Media(MediaEvent::Inactive));
                    inactivity_reported = true;
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
                Some(MediaCommand::Play(prompt, seq)) => {
                    playing_seq = seq;
                    core.play(prompt);
                }
                Some(MediaCommand::StopPlayback) => core.stop_playback(),
                Some(MediaCommand::AttachAgent { socket, params }) => {
                    core.stop_playback();
                    if let Some(old) = agent.take() {
                        agent_stats.add(old.core.stats());
                    }
                    agent = Some(AgentLeg {
                        core: MediaCore::new(&params, rand::random(), rand::random()),
                        socket,
                        held: false,
                    });
                }
                Some(MediaCommand::Update { agent: false, params }) => {
                    let playing = core.take_playback();
                    let old = core.stats();
                    core = MediaCore::new(&MediaParams { ssrc, ..params }, rand::random(), rand::random());
                    core.restore(old, playing);
                    if let Some(voice) = listen {
                        core.listen(voice);
                    }
                }
                Some(MediaCommand::Update { agent: true, params }) => {
                    if let Some(leg) = agent.as_mut() {
                        agent_stats.add(leg.core.stats());
                        leg.core = MediaCore::new(&params, rand::random(), rand::random());
                    }
                }
                Some(MediaCommand::Hold { agent: false, held }) => {
                    caller_held = held;
                    core.reset_silence();
                }
                Some(MediaCommand::Hold { agent: true, held }) => {
                    if let Some(leg) = agent.as_mut() {
                        leg.held = held;
                    }
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
                        emit(StreamEvent::Media(event));
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
    held: bool,
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
    use crate::media::g711::{self, Codec};
    use crate::media::rtp::{self, RtpSender};
    use crate::media::session::fixtures::{caller_packet, ramp_prompt};
    use crate::recording::FRAME_SAMPLES;
    use std::time::Duration;

    fn spawn_test(
        socket: UdpSocket,
        params: MediaParams,
        recording: Option<mpsc::Sender<StereoFrame>>,
    ) -> (MediaHandle, mpsc::Receiver<StreamEvent>) {
        let (events_tx, events) = mpsc::channel(EVENT_CAPACITY);
        (
            spawn(socket, params, recording, events_tx, None, None),
            events,
        )
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
        let (handle, mut events) = spawn_test(
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
            .send(MediaCommand::Play(prompt.clone(), 7))
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
            events.recv().await,
            Some(StreamEvent::PlaybackFinished { seq: 7 })
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
        let (handle, _events) = spawn_test(
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
        let (handle, _events) = spawn_test(
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
        let (handle, _events) = spawn_test(
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

    /// A caller who vanished (no BYE, no RTP) is reported once the timeout passes; a
    /// caller on hold is not (issue: RTP inactivity).
    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_is_reported_inactive_unless_on_hold() {
        let socket = bind().await;
        let sink = bind().await;
        let params = MediaParams {
            remote: sink.local_addr().expect("sink addr"),
            codec: Codec::Pcmu,
            telephone_event_pt: Some(101),
            ssrc: 1,
        };
        let (events_tx, mut events) = mpsc::channel(EVENT_CAPACITY);
        let handle = spawn(
            socket,
            params.clone(),
            None,
            events_tx,
            Some(Duration::from_secs(2)),
            None,
        );
        assert_eq!(
            events.recv().await,
            Some(StreamEvent::Media(MediaEvent::Inactive))
        );
        handle.stop().await;

        let socket = bind().await;
        let (events_tx, mut events) = mpsc::channel(EVENT_CAPACITY);
        let handle = spawn(
            socket,
            params,
            None,
            events_tx,
            Some(Duration::from_secs(2)),
            None,
        );
        handle
            .commands
            .send(MediaCommand::Hold {
                agent: false,
                held: true,
            })
            .await
            .expect("running");
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(events.try_recv().is_err(), "held: silence is expected");
        handle.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn stop_ends_the_task_and_garbage_is_survived() {
        let socket = bind().await;
        let addr = socket.local_addr().expect("addr");
        let sink = bind().await;
        let (handle, _events) = spawn_test(
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
