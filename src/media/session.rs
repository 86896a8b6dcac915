//! One leg's RTP stream, the pure part: every 20 ms one G.711 frame out (prompt or
//! silence), one stereo frame recorded (R22), and incoming RTP turned into caller audio
//! and DTMF keys (R29). [`MediaCore`] is fed ticks and datagrams and returns packets,
//! frames and events; the runtime's stream task owns the socket and the pacing. A leg
//! the IVR listens to also runs the voice activity detector and, when the peer
//! negotiated no telephone-events, the in-band DTMF detector on the caller's audio.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::dtmf::{self, DtmfDetector, InbandDtmfDetector};
use super::g711::{self, Codec};
use super::prompt::Prompt;
use super::rtp::{self, RtpSender};
use super::vad::{VadEvent, VadSettings, VoiceActivityDetector};
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

/// What a leg's stream reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaEvent {
    /// The caller pressed a key (RFC 4733, or an in-band tone on a listening leg).
    Dtmf(char),
    /// No RTP has come from the peer for the configured time (not on hold).
    Inactive,
    /// The caller started speaking (listening legs).
    VoiceStarted,
    /// The caller went quiet (listening legs).
    VoiceEnded,
}

/// What a listening leg runs on the caller's decoded audio, once per frame.
#[derive(Debug)]
struct Listener {
    voice: VoiceActivityDetector,
    /// Only without RFC 4733: a phone that sends both would have every key twice.
    inband: Option<InbandDtmfDetector>,
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
    ssrc: u32,
    /// Ticks since the peer's last valid packet (or since the stream started).
    ticks_without_packets: u32,
    codec: Codec,
    telephone_event_pt: Option<u8>,
    destination: SocketAddr,
    latched: bool,
    sender: RtpSender,
    first_packet: bool,
    caller: CallerAudio,
    dtmf: DtmfDetector,
    playback: Option<Playback>,
    listener: Option<Box<Listener>>,
    /// Events found while taking caller frames, for [`MediaCore::poll_event`].
    events: VecDeque<MediaEvent>,
    stats: MediaStats,
    encoded: Vec<u8>,
    decoded: Vec<i16>,
}

impl MediaCore {
    /// `initial_seq` and `initial_ts` should be random (RFC 3550 §5.1).
    pub fn new(params: &MediaParams, initial_seq: u16, initial_ts: u32) -> MediaCore {
        MediaCore {
            ssrc: params.ssrc,
            ticks_without_packets: 0,
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
            listener: None,
            events: VecDeque::new(),
            stats: MediaStats::default(),
            encoded: Vec::with_capacity(FRAME_SAMPLES),
            decoded: Vec::with_capacity(FRAME_SAMPLES),
        }
    }

    /// Listens to the caller for the IVR from now on (see the module doc).
    pub fn listen(&mut self, voice: VadSettings) {
        self.listener = Some(Box::new(Listener {
            voice: VoiceActivityDetector::new(voice),
            inband: self
                .telephone_event_pt
                .is_none()
                .then(InbandDtmfDetector::default),
        }));
    }

    /// The next voice or in-band key event found in the caller's audio.
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// The SSRC of the packets sent.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The prompt playing now and where it is, to carry it over to a new core when the
    /// peer moves (re-INVITE).
    pub fn take_playback(&mut self) -> Option<(Arc<Prompt>, usize)> {
        self.playback.take().map(|p| (p.prompt, p.next_frame))
    }

    /// Carries the receive counters and the playing prompt over from an earlier core of
    /// the same leg.
    pub fn restore(&mut self, stats: MediaStats, playback: Option<(Arc<Prompt>, usize)>) {
        self.stats.packets_received += stats.packets_received;
        self.stats.packets_invalid += stats.packets_invalid;
        self.stats.caller_energy_frames += stats.caller_energy_frames;
        self.playback = playback.map(|(prompt, next_frame)| Playback { prompt, next_frame });
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
        self.ticks_without_packets = 0;
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

    /// How long the peer has sent nothing, counted in ticks (media time, not the clock).
    pub fn silent_for(&self) -> Duration {
        FRAME_DURATION * self.ticks_without_packets
    }

    /// Starts counting silence afresh (a call coming off hold).
    pub fn reset_silence(&mut self) {
        self.ticks_without_packets = 0;
    }

    /// The next 20 ms received from this leg's peer (silence when none arrived).
    pub fn received_frame(&mut self) -> [i16; FRAME_SAMPLES] {
        self.ticks_without_packets = self.ticks_without_packets.saturating_add(1);
        let frame = self.caller.take_frame();
        if has_voice_energy(&frame) {
            self.stats.caller_energy_frames += 1;
        }
        if let Some(listener) = &mut self.listener {
            match listener.voice.push_frame(&frame) {
                Some(VadEvent::VoiceStarted) => self.events.push_back(MediaEvent::VoiceStarted),
                Some(VadEvent::VoiceEnded) => self.events.push_back(MediaEvent::VoiceEnded),
                None => {}
            }
            if let Some(inband) = &mut listener.inband {
                self.events.extend(
                    inband
                        .push_samples(&frame)
                        .into_iter()
                        .map(MediaEvent::Dtmf),
                );
            }
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

/// Media the tests of this core and of the runtime's stream task both feed in.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// One 20 ms RTP packet of a constant sample, as a caller's phone would send it.
    pub(crate) fn caller_packet(sender: &mut RtpSender, codec: Codec, sample: i16) -> Bytes {
        let mut payload = Vec::new();
        g711::encode(codec, &[sample; FRAME_SAMPLES], &mut payload);
        sender.packet(&payload, FRAME_SAMPLES as u32, false)
    }

    /// A prompt of `frames` frames whose samples all differ, so a frame out of place shows.
    pub(crate) fn ramp_prompt(frames: usize) -> Arc<Prompt> {
        Arc::new(Prompt::from_samples(
            (0..frames * FRAME_SAMPLES)
                .map(|i| (i as i16).wrapping_mul(37))
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{caller_packet, ramp_prompt};
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
}
