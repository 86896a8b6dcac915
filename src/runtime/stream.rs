//! The legs' RTP streams (I/O): every 20 ms a stream sends one G.711 frame (a prompt,
//! silence, or the bridged leg's voice), records one stereo frame (R22), and turns what
//! arrives into audio and key presses. The pure logic is [`MediaCore`]; this file owns
//! the sockets and the pacing: [`MediaWorkers`], one task per core ticking every stream
//! it holds.

use std::io;
use std::net::UdpSocket as StdUdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::MissedTickBehavior;

use crate::media::prompt::Prompt;
use crate::media::session::{FRAME_DURATION, MediaCore, MediaEvent, MediaParams, MediaStats};
use crate::media::vad::VadSettings;
use crate::recording::FrameSink;

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
        socket: StdUdpSocket,
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
    stop: Option<oneshot::Sender<()>>,
    stats: oneshot::Receiver<MediaStats>,
}

impl MediaHandle {
    /// Asks the stream to stop at its worker's next tick, without waiting.
    pub fn request_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            // The worker may already be gone (engine shutdown): harmless.
            let _ = stop.send(());
        }
    }

    /// Stops the stream and returns its counters. The recording sender is dropped when
    /// the stream ends, which tells the writer the call's audio is complete. Dropping
    /// the handle stops the stream too.
    pub async fn stop(mut self) -> MediaStats {
        self.request_stop();
        match self.stats.await {
            Ok(stats) => stats,
            Err(_) => {
                tracing::error!("media worker gone before the stream's counters");
                MediaStats::default()
            }
        }
    }
}

/// The media workers: one task per core, each ticking every stream it holds on one
/// 20 ms clock, instead of a task (and a timer and a socket wake-up) per leg. A worker
/// reads each stream's sockets once per tick, without blocking, then sends and records
/// that tick's frame; the sockets are plain non-blocking ones, never registered with
/// the reactor. New streams go to the workers in turn.
#[derive(Debug)]
pub struct MediaWorkers {
    workers: Vec<mpsc::UnboundedSender<Box<Stream>>>,
    next: AtomicUsize,
}

impl MediaWorkers {
    /// `count` workers (at least one), started on the current tokio runtime.
    pub fn start(count: usize) -> MediaWorkers {
        let workers = (0..count.max(1))
            .map(|_| {
                let (streams_tx, streams_rx) = mpsc::unbounded_channel();
                tokio::spawn(work(streams_rx));
                streams_tx
            })
            .collect();
        MediaWorkers {
            workers,
            next: AtomicUsize::new(0),
        }
    }

    /// One worker per core the process may use.
    pub fn per_core() -> MediaWorkers {
        MediaWorkers::start(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// Starts the media of one leg on `socket` (non-blocking).
    ///
    /// `recording` gets one stereo frame per 20 ms (dropped and counted when its
    /// writer's queue is full). The stream ends on [`MediaHandle::stop`] or when the
    /// handle is dropped: the switch owns the stream's life, engine shutdown included
    /// (it hangs up, then stops media). Key presses and prompt ends go to `events` (a
    /// bounded queue of [`EVENT_CAPACITY`]: when its reader lags, events are dropped and
    /// logged, never the pacing held up).
    pub fn spawn(
        &self,
        socket: StdUdpSocket,
        params: MediaParams,
        recording: Option<FrameSink>,
        events: mpsc::Sender<StreamEvent>,
        rtp_timeout: Option<Duration>,
        listen: Option<VadSettings>,
    ) -> MediaHandle {
        let (commands_tx, commands) = mpsc::channel(COMMAND_CAPACITY);
        let (stop_tx, stop) = oneshot::channel();
        let (stats_tx, stats) = oneshot::channel();
        let mut core = MediaCore::new(&params, rand::random(), rand::random());
        if let Some(voice) = listen {
            core.listen(voice);
        }
        let stream = Box::new(Stream {
            ssrc: core.ssrc(),
            socket,
            core,
            commands,
            commands_open: true,
            events,
            recording,
            recorder_gone_logged: false,
            stop,
            stats: Some(stats_tx),
            rtp_timeout,
            listen,
            sent: MediaStats::default(),
            agent: None,
            agent_stats: MediaStats::default(),
            playing_seq: 0,
            caller_held: false,
            inactivity_reported: false,
        });
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.workers.len();
        if let Err(returned) = self.workers[turn].send(stream) {
            // The worker is gone (the runtime is shutting down): end the stream here,
            // so its handle still gets counters and its recording still ends.
            returned.0.finish();
        }
        MediaHandle {
            commands: commands_tx,
            stop: Some(stop_tx),
            stats,
        }
    }
}

/// One worker: takes new streams, and every 20 ms ticks all it holds.
async fn work(mut arrivals: mpsc::UnboundedReceiver<Box<Stream>>) {
    // Burst, not Delay or Skip: after a stall (a busy runtime, a paused VM) the missed
    // ticks run at once, so frames sent and recorded always equal elapsed time / 20 ms
    // and the recording lasts as long as the call (R22). Delay would shift the schedule
    // and Skip would drop the missed frames, both making the recording shorter than the
    // call. The catch-up burst carries correct RTP timestamps, which the peer's jitter
    // buffer absorbs.
    let mut pacing = tokio::time::interval(FRAME_DURATION);
    pacing.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut streams: Vec<Box<Stream>> = Vec::new();
    let mut datagram = vec![0u8; MAX_DATAGRAM];
    let mut arrivals_open = true;
    loop {
        tokio::select! {
            // Pacing first, so a burst of new calls cannot delay the outgoing streams.
            biased;
            _ = pacing.tick() => {
                streams.retain_mut(|stream| stream.step(&mut datagram));
                if !arrivals_open && streams.is_empty() {
                    return;
                }
            }
            arrival = arrivals.recv(), if arrivals_open => match arrival {
                // Its first frame goes out now, as the answer's 200 does; from the
                // next tick on it keeps the worker's pace.
                Some(mut stream) => {
                    if stream.step(&mut datagram) {
                        streams.push(stream);
                    }
                }
                None => arrivals_open = false,
            },
        }
        crate::capacity::ShrinkIdle::shrink_idle(&mut streams);
    }
}

/// One leg's stream, as its worker holds it.
#[derive(Debug)]
struct Stream {
    socket: StdUdpSocket,
    core: MediaCore,
    ssrc: u32,
    commands: mpsc::Receiver<MediaCommand>,
    commands_open: bool,
    events: mpsc::Sender<StreamEvent>,
    recording: Option<FrameSink>,
    recorder_gone_logged: bool,
    stop: oneshot::Receiver<()>,
    stats: Option<oneshot::Sender<MediaStats>>,
    rtp_timeout: Option<Duration>,
    listen: Option<VadSettings>,
    sent: MediaStats,
    agent: Option<AgentLeg>,
    agent_stats: MediaStats,
    playing_seq: u64,
    /// Hold: the peer asked for no media (RFC 3264 §8.4); the pacing and the recording
    /// go on so the file keeps wall-clock time.
    caller_held: bool,
    inactivity_reported: bool,
}

impl Stream {
    /// One 20 ms tick: stop if asked, apply commands, read what arrived, then send and
    /// record this tick's frame. False once the stream has ended.
    fn step(&mut self, datagram: &mut [u8]) -> bool {
        match self.stop.try_recv() {
            Err(oneshot::error::TryRecvError::Empty) => {}
            // Asked to stop, or the handle was dropped.
            _ => {
                self.finish_in_place();
                return false;
            }
        }
        while self.commands_open {
            match self.commands.try_recv() {
                Ok(command) => self.apply(command),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => self.commands_open = false,
            }
        }
        self.receive(datagram);
        self.tick();
        true
    }

    fn emit(&self, event: StreamEvent) {
        emit_to(&self.events, event);
    }

    fn apply(&mut self, command: MediaCommand) {
        match command {
            MediaCommand::Play(prompt, seq) => {
                self.playing_seq = seq;
                self.core.play(prompt);
            }
            MediaCommand::StopPlayback => self.core.stop_playback(),
            MediaCommand::AttachAgent { socket, params } => {
                self.core.stop_playback();
                if let Some(old) = self.agent.take() {
                    self.agent_stats.add(old.core.stats());
                }
                self.agent = Some(AgentLeg {
                    core: MediaCore::new(&params, rand::random(), rand::random()),
                    socket,
                    held: false,
                });
            }
            MediaCommand::Update {
                agent: false,
                params,
            } => {
                let playing = self.core.take_playback();
                let old = self.core.stats();
                self.core = MediaCore::new(
                    &MediaParams {
                        ssrc: self.ssrc,
                        ..params
                    },
                    rand::random(),
                    rand::random(),
                );
                self.core.restore(old, playing);
                if let Some(voice) = self.listen {
                    self.core.listen(voice);
                }
            }
            MediaCommand::Update {
                agent: true,
                params,
            } => {
                if let Some(leg) = self.agent.as_mut() {
                    self.agent_stats.add(leg.core.stats());
                    leg.core = MediaCore::new(&params, rand::random(), rand::random());
                }
            }
            MediaCommand::Hold { agent: false, held } => {
                self.caller_held = held;
                self.core.reset_silence();
            }
            MediaCommand::Hold { agent: true, held } => {
                if let Some(leg) = self.agent.as_mut() {
                    leg.held = held;
                }
            }
            MediaCommand::DetachAgent => {
                if let Some(old) = self.agent.take() {
                    self.agent_stats.add(old.core.stats());
                }
            }
        }
    }

    /// Everything that arrived since the last tick, on both legs.
    fn receive(&mut self, datagram: &mut [u8]) {
        let events = &self.events;
        drain(&self.socket, &mut self.core, datagram, "caller", |event| {
            emit_to(events, StreamEvent::Media(event));
        });
        if let Some(leg) = self.agent.as_mut() {
            // Keys the agent presses are not the caller's: not reported.
            drain(&leg.socket, &mut leg.core, datagram, "agent", |_| {});
        }
    }

    fn tick(&mut self) {
        let mut tick = match self.agent.as_mut() {
            Some(leg) => {
                let agent_voice = leg.core.received_frame();
                let tick = self.core.tick_with(agent_voice);
                let to_agent = leg.core.packet(&tick.frame.left);
                if !leg.held {
                    match leg.socket.send_to(&to_agent, leg.core.destination()) {
                        Ok(_) => self.sent.packets_sent += 1,
                        Err(error) => tracing::debug!(%error, "agent RTP send failed"),
                    }
                }
                tick
            }
            None => self.core.tick(),
        };
        if self.caller_held {
            tick.frame.right = [0; crate::recording::FRAME_SAMPLES];
        } else {
            match self.socket.send_to(&tick.rtp, self.core.destination()) {
                Ok(_) => self.sent.packets_sent += 1,
                Err(error) => tracing::debug!(%error, "RTP send failed"),
            }
        }
        if tick.playback_finished {
            self.emit(StreamEvent::PlaybackFinished {
                seq: self.playing_seq,
            });
        }
        while let Some(event) = self.core.poll_event() {
            self.emit(StreamEvent::Media(event));
        }
        if let Some(limit) = self.rtp_timeout
            && !self.caller_held
            && !self.inactivity_reported
            && self.core.silent_for() >= limit
        {
            self.emit(StreamEvent::Media(MediaEvent::Inactive));
            self.inactivity_reported = true;
        }
        if let Some(recording) = self.recording.as_mut() {
            self.sent.frames_recorded += 1;
            let dropped = recording.push(&tick.frame);
            self.count_dropped(dropped);
        }
    }

    /// Frames the recording's queue had no room for (a whole chunk, already counted
    /// as recorded when it was buffered) move from recorded to dropped.
    fn count_dropped(&mut self, dropped: u64) {
        if dropped == 0 {
            return;
        }
        self.sent.frames_recorded = self.sent.frames_recorded.saturating_sub(dropped);
        self.sent.frames_dropped_for_recording += dropped;
        if !self.recorder_gone_logged && self.recording.as_ref().is_some_and(FrameSink::writer_gone)
        {
            tracing::warn!("recording writer gone; call audio is not recorded");
            self.recorder_gone_logged = true;
        }
    }

    /// The stream's counters to its handle. The recording's last partial chunk is
    /// handed over first, so the counters include its fate, and the sink goes with the
    /// stream.
    fn finish_in_place(&mut self) {
        if let Some(dropped) = self.recording.as_mut().map(FrameSink::flush) {
            self.count_dropped(dropped);
        }
        if let Some(leg) = self.agent.take() {
            self.agent_stats.add(leg.core.stats());
        }
        let received = self.core.stats();
        let stats = MediaStats {
            packets_received: received.packets_received + self.agent_stats.packets_received,
            packets_invalid: received.packets_invalid + self.agent_stats.packets_invalid,
            caller_energy_frames: received.caller_energy_frames,
            ..self.sent
        };
        self.recording = None;
        if let Some(to) = self.stats.take() {
            let _ = to.send(stats);
        }
    }

    fn finish(mut self) {
        self.finish_in_place();
    }
}

/// Passes `event` to the switch task without waiting; when it lags, drops and logs it.
fn emit_to(events: &mpsc::Sender<StreamEvent>, event: StreamEvent) {
    if events.try_send(event).is_err() {
        tracing::warn!(?event, "switch task not taking media events; event dropped");
    }
}

/// Feeds `core` every datagram waiting on one leg's `socket`, handing on the events it
/// reports, until the socket would block.
fn drain(
    socket: &StdUdpSocket,
    core: &mut MediaCore,
    datagram: &mut [u8],
    leg: &'static str,
    mut on_event: impl FnMut(MediaEvent),
) {
    loop {
        match socket.recv_from(datagram) {
            Ok((len, from)) => {
                if let Some(event) = core.on_datagram(from, &datagram[..len]) {
                    on_event(event);
                }
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
            // ICMP port-unreachable from an earlier send surfaces here on Linux; the
            // peer may simply not be listening yet.
            Err(error) => {
                tracing::debug!(%error, leg, "RTP receive failed");
                return;
            }
        }
    }
}

/// The agent's side of a bridged call: its own socket, codec, RTP sequence and jitter
/// buffer, so the two legs never need the same codec (the bridge transcodes via PCM).
#[derive(Debug)]
struct AgentLeg {
    core: MediaCore,
    socket: StdUdpSocket,
    held: bool,
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
    use crate::recording::{AudioChunk, FRAME_SAMPLES, StereoFrame};
    use std::time::Duration;
    use tokio::net::UdpSocket;

    /// A stream on a worker of its own, from a tokio socket as the tests bind them.
    fn spawn(
        socket: UdpSocket,
        params: MediaParams,
        recording: Option<FrameSink>,
        events: mpsc::Sender<StreamEvent>,
        rtp_timeout: Option<Duration>,
        listen: Option<VadSettings>,
    ) -> MediaHandle {
        MediaWorkers::start(1).spawn(
            socket.into_std().expect("a std socket"),
            params,
            recording,
            events,
            rtp_timeout,
            listen,
        )
    }

    fn spawn_test(
        socket: UdpSocket,
        params: MediaParams,
        recording: Option<FrameSink>,
    ) -> (MediaHandle, mpsc::Receiver<StreamEvent>) {
        let (events_tx, events) = mpsc::channel(EVENT_CAPACITY);
        (
            spawn(socket, params, recording, events_tx, None, None),
            events,
        )
    }

    /// The stereo frames of a chunk, as the media side recorded them.
    fn frames_of(chunk: &AudioChunk) -> Vec<StereoFrame> {
        chunk
            .bytes
            .chunks_exact(crate::recording::wav::FRAME_BYTES)
            .map(|bytes| {
                let mut frame = StereoFrame::SILENCE;
                for (i, sample) in bytes.chunks_exact(4).enumerate() {
                    frame.left[i] = i16::from_le_bytes([sample[0], sample[1]]);
                    frame.right[i] = i16::from_le_bytes([sample[2], sample[3]]);
                }
                frame
            })
            .collect()
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
        let (recording_tx, mut recording_rx) = FrameSink::channel(1000, 1);
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
        while let Some(chunk) = recording_rx.recv().await {
            frames.extend(frames_of(&chunk));
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
        let agent_socket = bind().await.into_std().expect("a std socket");
        let agent_addr = agent_socket.local_addr().expect("addr");
        let (recording_tx, mut recording_rx) = FrameSink::channel(1000, 1);
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
        while let Some(chunk) = recording_rx.recv().await {
            frames.extend(frames_of(&chunk));
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
        let (recording_tx, mut recording_rx) = FrameSink::channel(100_000, 1);
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
        while let Some(chunk) = recording_rx.recv().await {
            count += chunk.frames;
        }
        assert_eq!(count, stats.frames_recorded);
    }

    /// One worker carries many streams, each on its own socket with its own counters:
    /// stopping one leaves the others paced, and a dropped handle ends its stream.
    #[tokio::test(start_paused = true)]
    async fn one_worker_paces_many_streams_and_stops_each_alone() {
        let workers = MediaWorkers::start(1);
        let sink = bind().await;
        let params = MediaParams {
            remote: sink.local_addr().expect("sink addr"),
            codec: Codec::Pcmu,
            telephone_event_pt: None,
            ssrc: 1,
        };
        let mut handles = Vec::new();
        for _ in 0..3 {
            let (events_tx, _events) = mpsc::channel(EVENT_CAPACITY);
            let socket = bind().await.into_std().expect("a std socket");
            handles.push(workers.spawn(socket, params.clone(), None, events_tx, None, None));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let first = handles.remove(0).stop().await;
        drop(handles.remove(0));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let last = handles.remove(0).stop().await;
        assert!((10..=12).contains(&first.packets_sent), "{first:?}");
        assert!((20..=22).contains(&last.packets_sent), "{last:?}");
        // Every packet of the three streams reached the sink: 200 ms of all three,
        // then 200 ms of the last one (the dropped one ended with its handle).
        let mut buf = [0u8; 2048];
        let mut received = 0;
        while let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(1), sink.recv_from(&mut buf)).await
        {
            received += 1;
        }
        assert!(
            received >= first.packets_sent + last.packets_sent + 10,
            "{received} packets at the sink"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn full_recorder_drops_frames_instead_of_blocking() {
        let socket = bind().await;
        let sink = bind().await;
        let (recording_tx, _recording_rx) = FrameSink::channel(5, 1);
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
