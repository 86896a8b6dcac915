//! The media runtime (I/O): carries out the switch's media orders. It binds each leg's
//! RTP port, starts one stream per started leg on the media workers (a bridged leg
//! joins its partner's stream, so a bridged call is one stream), starts and finishes
//! the recordings, and
//! reports back what the switch must know. The switch names legs; only this file knows
//! their sockets. A WebRTC leg would be one more kind of endpoint here.

use std::collections::HashMap;

use std::net::UdpSocket;

use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use super::ports::RtpPorts;
use super::stream::{self, MediaCommand, MediaHandle, MediaWorkers, StreamEvent};
use crate::media::session::MediaEvent;
use crate::recording::{Recording, RecordingConfig};
use crate::switch::{LegId, MediaCounters, MediaOrder, MediaReport, RecordingOrder};

/// Reports to the switch task. Unbounded on purpose: their number is bounded by the
/// legs and prompts the switch itself ordered (a few per call, at human pace), and an
/// `Opened` must never be lost or the call would wait for it for ever.
pub type Reports = mpsc::UnboundedSender<(LegId, MediaReport)>;

enum LegMedia {
    /// Bound, not streaming yet.
    Idle(UdpSocket),
    /// Its own stream task.
    Streaming(Box<Stream>),
    /// Joined into the stream of `to`.
    Attached { to: LegId },
}

struct Stream {
    handle: MediaHandle,
    recording: Option<Recording>,
}

/// Every leg's media.
pub struct MediaRuntime {
    ports: RtpPorts,
    workers: MediaWorkers,
    rtp_timeout: Option<std::time::Duration>,
    recordings: RecordingConfig,
    reports: Reports,
    legs: HashMap<LegId, LegMedia>,
}

impl MediaRuntime {
    pub fn new(
        ports: RtpPorts,
        rtp_timeout: Option<std::time::Duration>,
        recordings: RecordingConfig,
        reports: Reports,
    ) -> MediaRuntime {
        MediaRuntime {
            ports,
            workers: MediaWorkers::per_core(),
            rtp_timeout,
            recordings,
            reports,
            legs: HashMap::new(),
        }
    }

    fn report(&self, leg: LegId, report: MediaReport) {
        let _ = self.reports.send((leg, report));
    }

    /// Streams running now.
    pub fn streams(&self) -> usize {
        self.legs
            .values()
            .filter(|m| matches!(m, LegMedia::Streaming(_)))
            .count()
    }

    /// Gives back the room a burst of calls left in the leg table (see
    /// [`crate::capacity`]).
    pub fn shrink_idle(&mut self) {
        use crate::capacity::ShrinkIdle;
        self.legs.shrink_idle();
    }

    /// Carries out one order. Never waits: commands go to stream tasks with `try_send`,
    /// and stopping a stream finishes in a task of its own.
    pub fn apply(&mut self, order: MediaOrder) {
        match order {
            MediaOrder::Open { leg } => match self.ports.bind() {
                Ok(socket) => match socket.local_addr() {
                    Ok(local) => {
                        self.legs.insert(leg, LegMedia::Idle(socket));
                        self.report(leg, MediaReport::Opened { local });
                    }
                    Err(e) => {
                        warn!(error = %e, "RTP socket without an address");
                        self.report(leg, MediaReport::OpenFailed);
                    }
                },
                Err(e) => {
                    warn!(error = %e, "no RTP port");
                    self.report(leg, MediaReport::OpenFailed);
                }
            },
            MediaOrder::Start {
                leg,
                params,
                recording,
                listen,
            } => {
                let Some(LegMedia::Idle(socket)) = self.legs.remove(&leg) else {
                    error!(%leg, "start of a leg that is not open");
                    return self.report(leg, MediaReport::OpenFailed);
                };
                let recording = recording.and_then(|order| self.start_recording(&order));
                let (events_tx, events_rx) = mpsc::channel(stream::EVENT_CAPACITY);
                let handle = self.workers.spawn(
                    socket,
                    params,
                    recording.as_ref().map(Recording::sink),
                    events_tx,
                    self.rtp_timeout,
                    listen,
                );
                forward_events(leg, events_rx, self.reports.clone());
                self.legs.insert(
                    leg,
                    LegMedia::Streaming(Box::new(Stream { handle, recording })),
                );
            }
            MediaOrder::Attach { leg, to, params } => {
                let Some(LegMedia::Idle(socket)) = self.legs.remove(&leg) else {
                    error!(%leg, "attach of a leg that is not open");
                    return;
                };
                let command = MediaCommand::AttachAgent { socket, params };
                if self.command(to, command) {
                    self.legs.insert(leg, LegMedia::Attached { to });
                }
            }
            MediaOrder::Detach { leg } => {
                if let Some(LegMedia::Attached { to }) = self.legs.remove(&leg) {
                    self.command(to, MediaCommand::DetachAgent);
                }
            }
            MediaOrder::Update { leg, params } => match self.legs.get(&leg) {
                Some(LegMedia::Attached { to }) => {
                    let to = *to;
                    self.command(
                        to,
                        MediaCommand::Update {
                            agent: true,
                            params,
                        },
                    );
                }
                _ => {
                    self.command(
                        leg,
                        MediaCommand::Update {
                            agent: false,
                            params,
                        },
                    );
                }
            },
            MediaOrder::Hold { leg, held } => match self.legs.get(&leg) {
                Some(LegMedia::Attached { to }) => {
                    let to = *to;
                    self.command(to, MediaCommand::Hold { agent: true, held });
                }
                _ => {
                    self.command(leg, MediaCommand::Hold { agent: false, held });
                }
            },
            MediaOrder::Play { leg, prompt, seq } => {
                self.command(leg, MediaCommand::Play(prompt, seq));
            }
            MediaOrder::StopPlayback { leg } => {
                self.command(leg, MediaCommand::StopPlayback);
            }
            MediaOrder::Close { leg } => self.close(leg),
        }
    }

    /// Sends a command to a leg's stream; false when the leg has none.
    fn command(&self, leg: LegId, command: MediaCommand) -> bool {
        let Some(LegMedia::Streaming(stream)) = self.legs.get(&leg) else {
            debug!(%leg, "media command for a leg without a stream");
            return false;
        };
        if stream.handle.commands.try_send(command).is_err() {
            warn!(%leg, "stream not taking commands; command dropped");
            return false;
        }
        true
    }

    fn start_recording(&self, order: &RecordingOrder) -> Option<Recording> {
        match crate::recording::start(&self.recordings, order.date, order.work_order.as_str()) {
            Ok(recording) => Some(recording),
            Err(e) => {
                // The call goes on (R3); `start` counted the failure (R30).
                error!(error = %e, "recording could not start");
                None
            }
        }
    }

    fn close(&mut self, leg: LegId) {
        match self.legs.remove(&leg) {
            None => self.report(
                leg,
                MediaReport::Closed {
                    counters: MediaCounters::default(),
                },
            ),
            Some(LegMedia::Idle(_socket)) => self.report(
                leg,
                MediaReport::Closed {
                    counters: MediaCounters::default(),
                },
            ),
            Some(LegMedia::Attached { to }) => {
                self.command(to, MediaCommand::DetachAgent);
                self.report(
                    leg,
                    MediaReport::Closed {
                        counters: MediaCounters::default(),
                    },
                );
            }
            Some(LegMedia::Streaming(stream)) => {
                // Legs still attached to this stream lose it with the task.
                self.legs
                    .retain(|_, media| !matches!(media, LegMedia::Attached { to } if *to == leg));
                let reports = self.reports.clone();
                tokio::spawn(async move {
                    let Stream { handle, recording } = *stream;
                    let stats = handle.stop().await;
                    metrics::counter!(crate::metrics::RTP_PACKETS_SENT_TOTAL)
                        .increment(stats.packets_sent);
                    metrics::counter!(crate::metrics::RTP_PACKETS_RECEIVED_TOTAL)
                        .increment(stats.packets_received);
                    metrics::counter!(crate::metrics::RECORDING_FRAMES_DROPPED_TOTAL)
                        .increment(stats.frames_dropped_for_recording);
                    if let Some(recording) = recording {
                        match recording.finish().await {
                            Ok(summary) => info!(
                                path = %summary.path.display(),
                                seconds = summary.duration.as_secs_f64(),
                                "recording finished"
                            ),
                            Err(e) => error!(error = %e, "recording failed"),
                        }
                    }
                    let _ = reports.send((
                        leg,
                        MediaReport::Closed {
                            counters: MediaCounters {
                                packets_sent: stats.packets_sent,
                                packets_received: stats.packets_received,
                                frames_dropped_for_recording: stats.frames_dropped_for_recording,
                            },
                        },
                    ));
                });
            }
        }
    }

    /// Stops every stream and finishes every recording (shutdown), waiting for them.
    pub async fn close_all(&mut self) {
        let mut streams: Vec<Stream> = self
            .legs
            .drain()
            .filter_map(|(_, media)| match media {
                LegMedia::Streaming(stream) => Some(*stream),
                _ => None,
            })
            .collect();
        // All at once: each stops at its worker's next tick, so a thousand calls take
        // one tick, not a thousand.
        for stream in &mut streams {
            stream.handle.request_stop();
        }
        for Stream { handle, recording } in streams {
            handle.stop().await;
            if let Some(recording) = recording
                && let Err(e) = recording.finish().await
            {
                error!(error = %e, "recording failed");
            }
        }
    }
}

/// Passes a stream's events on to the switch, tagged with its leg.
fn forward_events(leg: LegId, mut events: mpsc::Receiver<StreamEvent>, reports: Reports) {
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let report = match event {
                StreamEvent::PlaybackFinished { seq } => MediaReport::PlaybackFinished { seq },
                StreamEvent::Media(MediaEvent::Dtmf(digit)) => MediaReport::Dtmf(digit),
                StreamEvent::Media(MediaEvent::Inactive) => MediaReport::Inactive,
                StreamEvent::Media(MediaEvent::VoiceStarted) => MediaReport::VoiceStarted,
                StreamEvent::Media(MediaEvent::VoiceEnded) => MediaReport::VoiceEnded,
            };
            if reports.send((leg, report)).is_err() {
                return;
            }
        }
    });
}
