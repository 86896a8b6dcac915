//! The task that drives one inbound call (I/O): it feeds the [`CallCore`] what the
//! endpoint and the media task report, and carries out its actions: responses and BYE
//! through the endpoint, RTP and the recording through the media task, and the work
//! order, written as the call happens (R10), through the store.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tracing::{Instrument, error, info, info_span, warn};

use super::core::{CallAction, CallCore, CallInput, CallTimers, Ending, Side};
use crate::engine::Shared;
use crate::engine::endpoint::EndpointCommand;
use crate::media::session::{self, MediaCommand, MediaHandle, MediaParams};
use crate::privacy::mask_number;
use crate::recording::Recording;
use crate::sip::dialog::{Dialog, UasInvite, ViaParams};
use crate::sip::message::{self, Header, Request, RequestSummary, StatusCode};
use crate::sip::sdp::{self, Negotiated};
use crate::sip::transaction::{KeyMethod, TransactionKey};
use crate::sip::transport::TransportKind;
use crate::workorder::{AbandonReason, CallOutcome, HangupSide, WorkOrder, WorkOrderId};

/// What the endpoint tells a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallEvent {
    Cancelled,
    CallerHungUp,
    Acked,
    AckTimedOut,
    ByeFinished,
    Shutdown,
}

impl From<CallEvent> for CallInput {
    fn from(event: CallEvent) -> CallInput {
        match event {
            CallEvent::Cancelled => CallInput::CallerCancelled,
            CallEvent::CallerHungUp => CallInput::CallerHungUp,
            CallEvent::Acked => CallInput::Acked,
            CallEvent::AckTimedOut => CallInput::AckTimedOut,
            CallEvent::ByeFinished => CallInput::ByeFinished,
            CallEvent::Shutdown => CallInput::Shutdown,
        }
    }
}

/// Everything the endpoint learned and allocated for a new call.
pub struct CallSetup {
    pub invite: Request,
    pub summary: RequestSummary,
    pub invite_key: TransactionKey,
    /// The dialog's parts of the INVITE, read by the endpoint (which refuses an INVITE
    /// whose From, To or Contact cannot make a dialog).
    pub dialog: UasInvite,
    pub source: SocketAddr,
    pub transport: TransportKind,
    pub local_tag: String,
    pub negotiated: Negotiated,
    /// Bound by the endpoint so a call without a port is refused before it rings; the
    /// media task takes it at the answer.
    pub rtp_socket: Option<tokio::net::UdpSocket>,
    pub local_rtp: SocketAddr,
    /// Held for the call's life: the admission slot.
    pub permit: OwnedSemaphorePermit,
}

/// Runs one call to its end, then tells the endpoint.
pub async fn run(
    shared: Arc<Shared>,
    setup: CallSetup,
    endpoint: mpsc::Sender<EndpointCommand>,
    events: mpsc::Receiver<CallEvent>,
) {
    let call_id = setup.summary.call_id.clone();
    let offered_at = Utc::now();
    let work_order = WorkOrderId::generate(offered_at);
    let caller = setup.summary.from_user.clone().unwrap_or_default();
    let span = info_span!(
        "call",
        call_id = %call_id,
        work_order = %work_order,
        direction = "inbound",
        caller = %mask_number(&caller),
    );
    let call = Call::new(
        shared,
        setup,
        endpoint.clone(),
        work_order,
        caller,
        offered_at,
    );
    call.drive(events).instrument(span).await;
    let _ = endpoint.send(EndpointCommand::Ended { call_id }).await;
}

struct Call {
    shared: Arc<Shared>,
    setup: CallSetup,
    endpoint: mpsc::Sender<EndpointCommand>,
    work_order: WorkOrderId,
    caller: String,
    /// Wall-clock time of the INVITE, for the work order and the 24 h window.
    offered_at: DateTime<Utc>,
    core: CallCore,
    dialog: Dialog,
    media: Option<MediaHandle>,
    recording: Option<Recording>,
}

impl Call {
    fn new(
        shared: Arc<Shared>,
        setup: CallSetup,
        endpoint: mpsc::Sender<EndpointCommand>,
        work_order: WorkOrderId,
        caller: String,
        offered_at: DateTime<Utc>,
    ) -> Call {
        let timers = CallTimers {
            ring_before_answer: shared.config.calls.ring_before_answer,
            max_call_length: shared.config.calls.max_call_length,
        };
        let dialog = Dialog::new_uas(setup.dialog.clone(), &setup.local_tag);
        Call {
            core: CallCore::new(Instant::now(), timers),
            shared,
            setup,
            endpoint,
            work_order,
            caller,
            offered_at,
            dialog,
            media: None,
            recording: None,
        }
    }

    async fn drive(mut self, mut events: mpsc::Receiver<CallEvent>) {
        // R10: the work order exists from the moment the INVITE is taken. A store
        // failure does not refuse the call (R3): it is logged and counted.
        let order = WorkOrder::new_inbound(
            self.work_order.clone(),
            self.setup.summary.call_id.clone(),
            self.caller.clone(),
            self.setup
                .summary
                .request_uri_user
                .clone()
                .unwrap_or_default(),
            self.offered_at,
        );
        if let Err(e) = self.shared.store.create(&order).await {
            error!(error = %e, "work order not written");
            metrics::counter!("hotline_store_errors_total").increment(1);
        }
        metrics::counter!("hotline_calls_offered_total").increment(1);
        self.shared.record_offered(self.offered_at);

        loop {
            while let Some(action) = self.core.poll_action() {
                self.perform(action).await;
            }
            if self.core.is_done() {
                break;
            }
            let deadline = self.core.poll_timeout();
            let timer = async move {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            let media_event = async {
                match self.media.as_mut() {
                    Some(m) => m.events.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = events.recv() => {
                    // The endpoint is gone only when the engine stops: end the call.
                    let input = event.map(CallInput::from).unwrap_or(CallInput::Shutdown);
                    self.core.handle_input(Instant::now(), input);
                }
                _ = timer => self.core.handle_timeout(Instant::now()),
                event = media_event => match event {
                    // The skeleton plays the greeting once; digits come with the IVR.
                    Some(event) => tracing::debug!(?event, "media event"),
                    None => {
                        // The media task is gone while the call is up: it cannot be
                        // served any more, so the hotline hangs up rather than leave
                        // the caller in silence.
                        error!("media task ended unexpectedly");
                        self.media = None;
                        self.core.handle_input(Instant::now(), CallInput::MediaFailed);
                    }
                },
            }
        }
    }

    async fn perform(&mut self, action: CallAction) {
        match action {
            CallAction::SendRinging => self.respond(StatusCode::Ringing, vec![], None).await,
            CallAction::Answer => self.answer().await,
            CallAction::RejectTerminated => {
                self.respond(StatusCode::RequestTerminated, vec![], None)
                    .await
            }
            CallAction::RejectUnavailable => {
                let retry = self.shared.config.calls.retry_after.as_secs().to_string();
                let headers = vec![Header::RetryAfter(message::RetryAfter::new(retry))];
                self.respond(StatusCode::ServiceUnavailable, headers, None)
                    .await
            }
            CallAction::RejectFailed => {
                self.respond(StatusCode::ServerInternalError, vec![], None)
                    .await
            }
            CallAction::SendBye => self.send_bye().await,
            CallAction::StopMedia => self.stop_media().await,
            CallAction::Finish(ending) => self.finish(ending).await,
        }
    }

    fn contact(&self) -> Header {
        let ip = self.shared.config.sip.advertised_ip;
        let port = self.local_port();
        let transport = match self.setup.transport {
            TransportKind::Udp => "",
            TransportKind::Tcp => ";transport=tcp",
        };
        Header::Contact(message::Contact::new(format!(
            "<sip:hotline@{ip}:{port}{transport}>"
        )))
    }

    fn local_port(&self) -> u16 {
        let sip = &self.shared.config.sip;
        match self.setup.transport {
            TransportKind::Udp => sip.listen_udp.map(|a| a.port()),
            TransportKind::Tcp => sip.listen_tcp.map(|a| a.port()),
        }
        .unwrap_or(5060)
    }

    async fn respond(&self, status: StatusCode, mut headers: Vec<Header>, sdp: Option<String>) {
        let code = u16::from(status.clone());
        if (101..300).contains(&code) {
            headers.push(self.contact());
        }
        let body = sdp.map(|s| ("application/sdp", s.into_bytes()));
        let response = message::build_response(
            &self.setup.invite,
            status,
            Some(&self.setup.local_tag),
            headers,
            body,
        );
        let _ = self
            .endpoint
            .send(EndpointCommand::Respond {
                key: self.setup.invite_key.clone(),
                status: code,
                payload: Bytes::from(response.to_string()),
            })
            .await;
    }

    async fn answer(&mut self) {
        let date = Utc::now().date_naive();
        let recording = match crate::recording::start(
            &self.shared.recordings,
            date,
            &self.work_order.to_string(),
        ) {
            Ok(r) => Some(r),
            Err(e) => {
                // The call is still answered (R3); the failure is counted for R30.
                error!(error = %e, "recording could not start");
                metrics::counter!("hotline_recording_failures_total").increment(1);
                None
            }
        };
        let Some(socket) = self.setup.rtp_socket.take() else {
            // Answer runs once per call; a second would be a core bug, not a network event.
            error!("answer without an RTP socket");
            return;
        };
        let params = MediaParams {
            remote: self.setup.negotiated.remote_rtp,
            codec: self.setup.negotiated.codec,
            telephone_event_pt: self.setup.negotiated.remote_telephone_event_pt,
            ssrc: rand::random(),
        };
        let media = session::spawn(socket, params, recording.as_ref().map(|r| r.frames()));
        let _ = media
            .commands
            .send(MediaCommand::Play(self.shared.greeting.clone()))
            .await;
        self.media = Some(media);

        let answer_sdp = sdp::answer(
            self.shared.config.sip.advertised_ip,
            self.setup.local_rtp.port(),
            &self.setup.negotiated,
            rand::random::<u32>() as u64,
        );
        self.respond(StatusCode::OK, vec![], Some(answer_sdp)).await;

        let delay = self.core.answered_at().unwrap_or_else(Instant::now) - self.core.offered_at();
        metrics::counter!("hotline_calls_answered_total").increment(1);
        metrics::histogram!("hotline_answer_delay_seconds").record(delay.as_secs_f64());
        if delay <= self.shared.config.calls.ring_budget {
            metrics::counter!("hotline_answered_within_ring_budget_total").increment(1);
        }
        self.shared.record_answered(self.offered_at);
        let path = recording.as_ref().map(|r| r.path().display().to_string());
        if let Err(e) = self
            .shared
            .store
            .mark_answered(&self.work_order, Utc::now(), path.as_deref())
            .await
        {
            error!(error = %e, "work order answer not written");
            metrics::counter!("hotline_store_errors_total").increment(1);
        }
        self.recording = recording;
        info!(delay_ms = delay.as_millis() as u64, "answered");
    }

    async fn send_bye(&mut self) {
        let sip = &self.shared.config.sip;
        let branch = message::new_branch();
        let via_host = sip.advertised_ip.to_string();
        let bye = self.dialog.build_bye(&ViaParams {
            host: &via_host,
            port: self.local_port(),
            transport: self.setup.transport.into(),
            branch: &branch,
        });
        let sent_by = format!("{via_host}:{}", self.local_port());
        let key = TransactionKey::rfc3261(&branch, KeyMethod::from_name("BYE"), &sent_by);
        let _ = self
            .endpoint
            .send(EndpointCommand::SendRequest {
                call_id: self.setup.summary.call_id.clone(),
                key,
                destination: self.setup.source,
                transport: self.setup.transport,
                payload: Bytes::from(bye.to_string()),
            })
            .await;
    }

    async fn stop_media(&mut self) {
        if let Some(media) = self.media.take() {
            let stats = media.stop().await;
            metrics::counter!("hotline_rtp_packets_sent_total").increment(stats.packets_sent);
            metrics::counter!("hotline_rtp_packets_received_total")
                .increment(stats.packets_received);
            metrics::counter!("hotline_recording_frames_dropped_total")
                .increment(stats.frames_dropped_for_recording);
        }
        if let Some(recording) = self.recording.take() {
            match recording.finish().await {
                Ok(summary) => info!(
                    path = %summary.path.display(),
                    seconds = summary.duration.as_secs_f64(),
                    "recording finished"
                ),
                Err(e) => error!(error = %e, "recording failed"),
            }
        }
    }

    async fn finish(&mut self, ending: Ending) {
        // Media may still run if the call ended before StopMedia (e.g. no ACK).
        self.stop_media().await;
        let (side, outcome) = match ending {
            Ending::Completed { side } => (
                Some(match side {
                    Side::Caller => HangupSide::Caller,
                    Side::Hotline => HangupSide::Hotline,
                }),
                CallOutcome::Answered,
            ),
            Ending::CallerAbandoned => (
                Some(HangupSide::Caller),
                abandoned(AbandonReason::CallerCancelled),
            ),
            Ending::ShutdownBeforeAnswer => (
                Some(HangupSide::Hotline),
                abandoned(AbandonReason::Shutdown),
            ),
            Ending::NoAck => (Some(HangupSide::Hotline), CallOutcome::Answered),
            Ending::Failed => (Some(HangupSide::Hotline), abandoned(AbandonReason::Failed)),
        };
        if let CallOutcome::Abandoned { reason } = outcome {
            crate::metrics::count_abandoned(reason);
        }
        if let Err(e) = self
            .shared
            .store
            .mark_ended(&self.work_order, Utc::now(), side, outcome)
            .await
        {
            error!(error = %e, "work order end not written");
            metrics::counter!("hotline_store_errors_total").increment(1);
        }
        if ending == Ending::NoAck {
            warn!("caller never acknowledged the answer");
        }
        info!(?ending, "call ended");
    }
}

fn abandoned(reason: AbandonReason) -> CallOutcome {
    CallOutcome::Abandoned { reason }
}
