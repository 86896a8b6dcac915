//! SIP legs both ways (pure): matching every request and response to its leg, the
//! answers a leg gives (provisional, 2xx with SDP, late offer, errors), in-dialog
//! requests checked against the dialog (RFC 3261 §12.2.2: tags and CSeq order, with
//! the RFC's answers), re-INVITE and UPDATE (hold, session refresh), BYE and CANCEL.
//! What a leg's end means for its call is the call's business (`inbound`, `outbound`,
//! `feature`); this file tells the call and carries out its orders.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use super::uac_leg::{LegError, UacLeg, UacTarget};
use super::{
    ALLOWED_METHODS, ClientRequest, Flow, MediaOrder, MediaParams, MediaReport,
    SUPPORTED_EXTENSIONS, Switch,
};
use crate::media::g711::Codec;
use crate::media::prompt::Prompt;
use crate::sip::TransportKind;
use crate::sip::builder;
use crate::sip::dialog::{Dialog, UasInvite};
use crate::sip::message::{
    self, Header, Method, Request, RequestSummary, Response, ResponseSummary,
};
use crate::sip::sdp::{self, Direction, LocalSession, Negotiated, SdpError};
use crate::sip::session_timer::{self, NextStep, Role, SessionTimer};
use crate::sip::transaction::{KeyMethod, RequestDisposition, TransactionKey};
use crate::workorder::RejectReason;

pub use super::io::LegId;

/// What a leg is to its call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LegRole {
    /// The citizen: an inbound trunk call, or the destination of an outbound call. Its
    /// audio is the recording's left channel.
    Customer,
    /// An agent's softphone.
    Agent(String),
    /// An agent's own call dialling a feature code.
    Feature,
    /// Where the dialplan transferred a caller (R11: a supervisor, a department).
    Transfer,
}

/// Where an inbound (UAS) leg stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UasState {
    /// Provisional answers only.
    Ringing,
    /// A 2xx is out; its ACK has not arrived.
    Answered,
    /// The dialog is confirmed.
    Confirmed,
    /// We sent BYE.
    Ending,
    /// Final error sent, BYE answered or received: nothing more to do.
    Ended,
}

#[derive(Debug)]
struct UasSide {
    invite: Request,
    invite_key: TransactionKey,
    local_tag: String,
    dialog: Dialog,
    state: UasState,
    bye_key: Option<TransactionKey>,
    /// RFC 4028: the session timer in force, and when it next acts.
    session: Option<SessionTimer>,
    session_deadline: Option<Instant>,
    /// The session-timer headers our 2xx carries.
    session_headers: Vec<Header>,
}

/// Where an outbound (UAC) leg stands beyond what [`UacLeg`] knows.
#[derive(Debug)]
struct UacSide {
    /// Built once the RTP port is known (the offer names it).
    leg: Option<UacLeg>,
    target: UacTarget,
    display: String,
    /// A 1xx arrived: a CANCEL may be sent (RFC 3261 §9.1).
    provisional_seen: bool,
    /// CANCEL wanted before any 1xx; sent on the first one.
    cancel_pending: bool,
    /// The leg is unwanted: a 2xx that still arrives is ACKed and hung up at once.
    abandoned: bool,
    bye_key: Option<TransactionKey>,
    ended: bool,
}

#[derive(Debug)]
enum Signalling {
    Uas(Box<UasSide>),
    Uac(Box<UacSide>),
}

/// A leg's media as the switch knows it; the stream itself is the runtime's.
#[derive(Debug)]
struct LegMedia {
    /// The bound RTP address, once the runtime reported it.
    local: Option<SocketAddr>,
    /// What SDP decided.
    negotiated: Option<Negotiated>,
    ssrc: u32,
    /// Our descriptions in this dialog: one session id, a version that moves only
    /// when the description changes (RFC 3264 §8).
    sdp: LocalSession,
    /// `Start` or `Attach` was ordered.
    running: bool,
    /// Attached into another leg's stream.
    attached_to: Option<LegId>,
    held: bool,
    /// A prompt asked for before the stream started.
    pending_prompt: Option<std::sync::Arc<Prompt>>,
    /// The number of the last prompt ordered: a finish report with another number is
    /// for a prompt that was replaced, and is dropped.
    play_seq: u64,
    closed: bool,
}

/// One leg: a dialog with its media.
#[derive(Debug)]
pub struct Leg {
    pub call: crate::acd::CallKey,
    pub role: LegRole,
    pub peer: SocketAddr,
    pub transport: TransportKind,
    pub call_id: String,
    /// The INVITE (initial or re-INVITE, either side's dialog) whose 2xx waits for its
    /// ACK.
    awaiting_ack: Option<TransactionKey>,
    /// Our offer went in that 2xx (late offer): its answer comes in the ACK.
    offer_in_answer: bool,
    sig: Signalling,
    media: LegMedia,
}

impl LegMedia {
    fn new(ssrc: u32, session_id: u64) -> LegMedia {
        LegMedia {
            local: None,
            negotiated: None,
            ssrc,
            sdp: LocalSession::new(session_id),
            running: false,
            attached_to: None,
            held: false,
            pending_prompt: None,
            play_seq: 0,
            closed: false,
        }
    }
}

impl Leg {
    pub fn agent(&self) -> Option<&str> {
        match &self.role {
            LegRole::Agent(agent) => Some(agent),
            _ => None,
        }
    }

    /// We sent BYE on this leg: its conversation is over, the BYE transaction is not.
    pub fn is_hanging_up(&self) -> bool {
        match &self.sig {
            Signalling::Uas(uas) => uas.state == UasState::Ending,
            Signalling::Uac(uac) => uac.bye_key.is_some() && !uac.ended,
        }
    }

    /// A placed leg whose INVITE still waits for its final answer: it must stay known
    /// after its call is over, to CANCEL it (RFC 3261 §9.1: only after a provisional)
    /// and to ACK its 487, or to hang up a 2xx that crosses.
    pub fn is_still_inviting(&self) -> bool {
        match &self.sig {
            Signalling::Uas(_) => false,
            Signalling::Uac(uac) => {
                !uac.ended
                    && uac
                        .leg
                        .as_ref()
                        .is_none_or(|placed| !placed.is_connected() && uac.bye_key.is_none())
            }
        }
    }

    pub fn is_ended(&self) -> bool {
        match &self.sig {
            Signalling::Uas(uas) => uas.state == UasState::Ended,
            Signalling::Uac(uac) => uac.ended,
        }
    }

    /// When the leg's session timer acts next (RFC 4028 §10).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.sig {
            Signalling::Uas(uas) => uas.session_deadline,
            Signalling::Uac(_) => None,
        }
    }

    /// The caller's number as the INVITE's From shows it (inbound legs).
    pub fn caller_number(&self) -> Option<String> {
        match &self.sig {
            Signalling::Uas(uas) => message::summary(&uas.invite).ok()?.from_user,
            Signalling::Uac(_) => None,
        }
    }

    pub fn is_connected(&self) -> bool {
        match &self.sig {
            Signalling::Uas(uas) => {
                matches!(uas.state, UasState::Answered | UasState::Confirmed)
            }
            Signalling::Uac(uac) => uac.leg.as_ref().is_some_and(UacLeg::is_connected),
        }
    }
}

/// What an inbound INVITE offers, read before a call exists.
pub struct InviteOffer {
    pub dialog: UasInvite,
    /// `None`: no SDP in the INVITE (late offer, RFC 3261 §13.2.1).
    pub negotiated: Option<Negotiated>,
    /// The session timer our 2xx will set (RFC 4028).
    pub session: session_timer::Decision,
}

impl Switch {
    // ----- routing ---------------------------------------------------------------

    pub(super) fn on_request(
        &mut self,
        now: Instant,
        request: Request,
        summary: RequestSummary,
        source: SocketAddr,
        transport: TransportKind,
    ) {
        let key = TransactionKey::for_request(
            KeyMethod::from(&summary.method),
            Some(summary.top_via_branch.as_str()).filter(|b| !b.is_empty()),
            &summary.top_via_sent_by,
            &summary.call_id,
            summary.from_tag.as_deref().unwrap_or(""),
            summary.cseq,
            &summary.top_via_sent_by,
        );
        let is_ack = summary.method == Method::Ack;
        let disposition = self.transactions.handle_request(
            now,
            key.clone(),
            is_ack,
            source,
            Self::reliability(transport),
        );
        match disposition {
            RequestDisposition::Retransmission | RequestDisposition::AckForNon2xx => {}
            RequestDisposition::AckFor2xx => self.on_ack(now, &request, &summary, false),
            RequestDisposition::StrayAck => self.on_ack(now, &request, &summary, true),
            RequestDisposition::CancelTarget {
                invite_key,
                invite_final_sent,
            } => {
                self.respond(now, &key, &request, 200, None, vec![], None);
                if !invite_final_sent && let Some(&leg) = self.server_invites.get(&invite_key) {
                    self.leg_cancelled(now, leg);
                }
            }
            RequestDisposition::CancelNoMatch => {
                self.respond(now, &key, &request, 481, None, vec![], None)
            }
            RequestDisposition::New => {
                self.on_new_request(now, key, request, summary, source, transport)
            }
        }
    }

    fn on_new_request(
        &mut self,
        now: Instant,
        key: TransactionKey,
        request: Request,
        summary: RequestSummary,
        source: SocketAddr,
        transport: TransportKind,
    ) {
        let in_dialog = summary.to_tag.is_some();
        match summary.method {
            Method::Invite if !in_dialog => {
                self.on_new_invite(now, key, request, summary, source, transport)
            }
            Method::Register => self.on_register(now, key, request, source, transport),
            Method::Options => {
                let headers = vec![
                    builder::allow(ALLOWED_METHODS),
                    Header::Accept(message::Accept::new("application/sdp")),
                    builder::supported(SUPPORTED_EXTENSIONS),
                ];
                self.respond(now, &key, &request, 200, None, headers, None)
            }
            Method::Invite | Method::Bye | Method::Update | Method::Info => {
                let Some(leg) = self.in_dialog_leg(&summary) else {
                    // RFC 3261 §12.2.2: a request for a dialog we do not have.
                    tracing::debug!(method = %summary.method, call_id = %summary.call_id, "no such dialog: 481");
                    return self.respond(now, &key, &request, 481, None, vec![], None);
                };
                if let Err((status, reason)) = self.check_in_dialog(leg, &summary) {
                    tracing::debug!(status, reason, "in-dialog request refused");
                    return self.respond(now, &key, &request, status, None, vec![], None);
                }
                match summary.method {
                    Method::Bye => {
                        self.respond(now, &key, &request, 200, None, vec![], None);
                        self.leg_hung_up(now, leg);
                    }
                    Method::Invite | Method::Update => {
                        self.on_session_update(now, leg, key, request)
                    }
                    Method::Info => {
                        self.respond(now, &key, &request, 200, None, vec![], None);
                        if let Some(digit) = info_dtmf(&request) {
                            self.leg_event(now, leg, LegEvent::Dtmf(digit));
                        }
                    }
                    _ => self.respond(now, &key, &request, 200, None, vec![], None),
                }
            }
            Method::Ack | Method::Cancel => {}
            _ => self.respond(
                now,
                &key,
                &request,
                405,
                None,
                vec![builder::allow(ALLOWED_METHODS)],
                None,
            ),
        }
    }

    /// The leg an in-dialog request belongs to: our tag in its To, the Call-ID.
    fn in_dialog_leg(&self, summary: &RequestSummary) -> Option<LegId> {
        let to_tag = summary.to_tag.clone()?;
        self.dialogs
            .get(&(summary.call_id.clone(), to_tag))
            .copied()
            .filter(|leg| self.legs.get(leg).is_some_and(|l| !l.is_ended()))
    }

    /// RFC 3261 §12.2.2: the remote tag must be the dialog's, and the CSeq must grow.
    fn check_in_dialog(
        &mut self,
        leg: LegId,
        summary: &RequestSummary,
    ) -> Result<(), (u16, &'static str)> {
        let Some(leg) = self.legs.get_mut(&leg) else {
            return Err((481, "no such dialog"));
        };
        let dialog = match &mut leg.sig {
            Signalling::Uas(uas) => &mut uas.dialog,
            Signalling::Uac(uac) => match uac.leg.as_mut().and_then(UacLeg::dialog_mut) {
                Some(dialog) => dialog,
                None => return Err((481, "dialog not established")),
            },
        };
        dialog
            .check_request(summary)
            .map_err(|refusal| (refusal.status_code(), refusal.reason()))
    }

    pub(super) fn on_response(
        &mut self,
        now: Instant,
        response: Response,
        summary: ResponseSummary,
    ) {
        let key = TransactionKey::rfc3261(
            &summary.top_via_branch,
            KeyMethod::from(&summary.cseq_method),
            &summary.top_via_sent_by,
        );
        self.pending_response = Some((key.clone(), response));
        if !self
            .transactions
            .handle_response(now, &key, summary.status, Bytes::new())
        {
            tracing::debug!(status = summary.status, "stray response dropped");
        }
    }

    // ----- inbound legs ------------------------------------------------------------

    /// Reads what a new INVITE offers, or the reason to refuse it.
    pub(super) fn read_invite(
        request: &Request,
        summary: &RequestSummary,
        source: SocketAddr,
        transport: TransportKind,
    ) -> Result<InviteOffer, (RejectReason, &'static str)> {
        let dialog = UasInvite::from_request(
            request,
            &summary.call_id,
            summary.from_tag.as_deref(),
            summary.cseq,
            source,
            transport.into(),
        )
        .map_err(|_| (RejectReason::BadRequest, "unusable From, To or Contact"))?;
        if request.body.is_empty() {
            return Ok(InviteOffer {
                dialog,
                negotiated: None,
                session: session_timer::Decision::None,
            });
        }
        let negotiated = match sdp::negotiate(&request.body, &[Codec::Pcmu, Codec::Pcma]) {
            Ok(negotiated) => negotiated,
            Err(SdpError::Malformed(_)) => return Err((RejectReason::BadRequest, "malformed SDP")),
            Err(_) => {
                return Err((
                    RejectReason::NotAcceptableHere,
                    "no common codec: PCMU or PCMA",
                ));
            }
        };
        Ok(InviteOffer {
            dialog,
            negotiated: Some(negotiated),
            session: session_timer::Decision::None,
        })
    }

    /// Refuses a new INVITE before any call state exists, and counts why. `detail`
    /// goes into a `Warning` (RFC 3261 §20.43) so the trunk's engineer can tell why.
    pub(super) fn refuse(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        request: &Request,
        reason: RejectReason,
        detail: &str,
    ) {
        crate::metrics::count_rejected(reason);
        let mut headers = vec![];
        if reason.status_code() == 503 {
            let retry = self.settings.retry_after.as_secs().to_string();
            headers.push(Header::RetryAfter(message::RetryAfter::new(retry)));
        }
        if !detail.is_empty() {
            headers.push(Header::Warning(message::Warning::new(format!(
                "399 hotline \"{detail}\""
            ))));
        }
        let tag = self.ids.tag();
        self.respond(
            now,
            key,
            request,
            reason.status_code(),
            Some(&tag),
            headers,
            None,
        );
    }

    /// Makes the UAS leg of an admitted INVITE, sends `100 Trying` and asks for its RTP
    /// port.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn open_uas_leg(
        &mut self,
        now: Instant,
        call: crate::acd::CallKey,
        role: LegRole,
        key: TransactionKey,
        request: Request,
        summary: &RequestSummary,
        offer: InviteOffer,
        source: SocketAddr,
        transport: TransportKind,
    ) -> LegId {
        let id = self.new_leg_id();
        let local_tag = self.ids.tag();
        let dialog = Dialog::new_uas(offer.dialog, &local_tag);
        self.respond(now, &key, &request, 100, None, vec![], None);
        self.server_invites.insert(key.clone(), id);
        self.dialogs
            .insert((summary.call_id.clone(), local_tag.clone()), id);
        if let Some(from_tag) = &summary.from_tag {
            self.inbound_dialogs
                .insert((summary.call_id.clone(), from_tag.clone()), id);
        }
        let session_id = self.ids.sdp_session_id();
        let ssrc = (self.ids.next_u64() >> 32) as u32;
        self.legs.insert(
            id,
            Leg {
                call,
                role,
                peer: source,
                transport,
                call_id: summary.call_id.clone(),
                awaiting_ack: None,
                offer_in_answer: false,
                sig: Signalling::Uas(Box::new(UasSide {
                    invite: request,
                    invite_key: key,
                    local_tag,
                    dialog,
                    state: UasState::Ringing,
                    bye_key: None,
                    session: offer.session.timer(),
                    session_deadline: None,
                    session_headers: offer.session.response_headers(),
                })),
                media: LegMedia {
                    negotiated: offer.negotiated,
                    ..LegMedia::new(ssrc, session_id)
                },
            },
        );
        self.media.push_back(MediaOrder::Open { leg: id });
        id
    }

    /// Our Contact for a transport: it keeps `;transport=tcp` (RFC 3261 §8.1.1.8).
    pub(super) fn contact(&self, transport: TransportKind) -> Header {
        message::make_header("Contact", self.local(transport).contact_header("hotline"))
    }

    /// A response on a UAS leg's INVITE (with our tag and, for 101–299, our Contact and
    /// the INVITE's Record-Route, RFC 3261 §12.1.1).
    pub(super) fn uas_respond(
        &mut self,
        now: Instant,
        leg: LegId,
        status: u16,
        mut headers: Vec<Header>,
        body: Option<String>,
    ) {
        let Some(l) = self.legs.get(&leg) else {
            return;
        };
        let Signalling::Uas(uas) = &l.sig else {
            return;
        };
        if (101..300).contains(&status) {
            headers.push(self.contact(l.transport));
            headers.push(builder::allow(ALLOWED_METHODS));
        }
        if (200..300).contains(&status) {
            headers.push(builder::supported(SUPPORTED_EXTENSIONS));
            headers.extend(uas.session_headers.iter().cloned());
        }
        let (key, invite, tag) = (
            uas.invite_key.clone(),
            uas.invite.clone(),
            uas.local_tag.clone(),
        );
        let body = body.map(|b| ("application/sdp", b.into_bytes()));
        self.respond(now, &key, &invite, status, Some(&tag), headers, body);
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        if let Signalling::Uas(uas) = &mut l.sig {
            if (200..300).contains(&status) {
                uas.state = UasState::Answered;
                l.awaiting_ack = Some(key);
                uas.session_deadline = uas.session.and_then(|timer| session_deadline(timer, now));
            } else if status >= 300 {
                uas.state = UasState::Ended;
            }
        }
    }

    /// Answers a UAS leg `200 OK` with SDP: our answer to its offer, or our offer when the
    /// INVITE had none (its answer then comes in the ACK). Returns false when the leg
    /// cannot be answered yet (no RTP port).
    pub(super) fn uas_answer(&mut self, now: Instant, leg: LegId) -> bool {
        let ip = self.settings.advertised_ip;
        let Some(l) = self.legs.get_mut(&leg) else {
            return false;
        };
        let Some(local) = l.media.local else {
            return false;
        };
        let body = match &l.media.negotiated {
            Some(negotiated) => l.media.sdp.answer(ip, local.port(), negotiated),
            None => {
                l.offer_in_answer = true;
                l.media.sdp.offer(
                    ip,
                    local.port(),
                    &[Codec::Pcmu, Codec::Pcma],
                    Direction::SendRecv,
                )
            }
        };
        self.uas_respond(now, leg, 200, vec![], Some(body));
        true
    }

    /// The ACK for a 2xx: late-offer answers are read from it, then the transaction
    /// layer is told (its event confirms the leg).
    fn on_ack(&mut self, now: Instant, request: &Request, summary: &RequestSummary, stray: bool) {
        let Some(leg) = self.in_dialog_leg(summary) else {
            return;
        };
        let mut awaiting = None;
        let mut answer_failed = false;
        if let Some(l) = self.legs.get_mut(&leg) {
            awaiting = l.awaiting_ack.clone();
            if l.offer_in_answer {
                l.offer_in_answer = false;
                match sdp::read_answer(&request.body, &[Codec::Pcmu, Codec::Pcma], 1) {
                    Ok(negotiated) => l.media.negotiated = Some(negotiated),
                    Err(e) => {
                        tracing::info!(error = %e, "the ACK carries no usable SDP answer");
                        answer_failed = true;
                    }
                }
            }
        }
        if stray && let Some(key) = awaiting {
            self.transactions.handle_2xx_ack(now, &key);
        }
        if answer_failed {
            // RFC 3261 §13.2.1: a bad answer in the ACK ends the session with BYE.
            self.leg_media_failed(now, leg);
        }
    }

    pub(super) fn leg_acked(&mut self, now: Instant, leg: LegId) {
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        l.awaiting_ack = None;
        let Signalling::Uas(uas) = &mut l.sig else {
            return;
        };
        if uas.state == UasState::Answered {
            uas.state = UasState::Confirmed;
            uas.dialog.confirm();
        }
        self.leg_event(now, leg, LegEvent::Acked);
    }

    pub(super) fn leg_ack_timed_out(&mut self, now: Instant, leg: LegId) {
        let answered = self.legs.get(&leg).is_some_and(
            |l| matches!(&l.sig, Signalling::Uas(uas) if uas.state == UasState::Answered),
        );
        if answered {
            self.leg_event(now, leg, LegEvent::AckTimedOut);
        }
    }

    fn leg_cancelled(&mut self, now: Instant, leg: LegId) {
        let ringing = self.legs.get(&leg).is_some_and(
            |l| matches!(&l.sig, Signalling::Uas(uas) if uas.state == UasState::Ringing),
        );
        if ringing {
            self.leg_event(now, leg, LegEvent::Cancelled);
        }
    }

    fn leg_hung_up(&mut self, now: Instant, leg: LegId) {
        if let Some(l) = self.legs.get_mut(&leg) {
            match &mut l.sig {
                Signalling::Uas(uas) => uas.state = UasState::Ended,
                Signalling::Uac(uac) => {
                    uac.ended = true;
                    if let Some(leg) = uac.leg.as_mut() {
                        leg.ended_by_peer();
                    }
                }
            }
        }
        self.leg_event(now, leg, LegEvent::HungUp);
    }

    /// A re-INVITE or UPDATE in a confirmed dialog (RFC 3261 §14, RFC 3311): hold,
    /// unhold, a new address, or a session refresh (RFC 4028). An offer is answered at
    /// once with ours, in the direction that answers it (RFC 3264 §6.1); an offerless
    /// re-INVITE gets our offer and its answer comes in the ACK; an offerless UPDATE
    /// only refreshes the session. One we cannot accept leaves the session as it was.
    fn on_session_update(
        &mut self,
        now: Instant,
        leg: LegId,
        key: TransactionKey,
        request: Request,
    ) {
        let is_invite = request.method == Method::Invite;
        let timer_headers = match session_timer::parse(&request.headers) {
            Ok(headers) => headers,
            Err(e) => {
                tracing::debug!(error = %e, "bad session-timer headers");
                return self.respond(now, &key, &request, 400, None, vec![], None);
            }
        };
        let decision = session_timer::negotiate_uas(&timer_headers, &self.settings.session_timers);
        if matches!(decision, session_timer::Decision::Reject422 { .. }) {
            let headers = decision.response_headers();
            return self.respond(now, &key, &request, 422, None, headers, None);
        }
        let ip = self.settings.advertised_ip;
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        let Some(local) = l.media.local else {
            return self.respond(now, &key, &request, 500, None, vec![], None);
        };
        let transport = l.transport;
        let mut orders = Vec::new();
        let body = if request.body.is_empty() {
            is_invite.then(|| {
                l.offer_in_answer = true;
                l.media.sdp.offer(
                    ip,
                    local.port(),
                    &[Codec::Pcmu, Codec::Pcma],
                    Direction::SendRecv,
                )
            })
        } else {
            match sdp::negotiate(&request.body, &[Codec::Pcmu, Codec::Pcma]) {
                Ok(negotiated) => {
                    let body = l.media.sdp.answer(ip, local.port(), &negotiated);
                    let changed = l.media.negotiated.as_ref().map(|n| (n.remote_rtp, n.codec))
                        != Some((negotiated.remote_rtp, negotiated.codec));
                    // Hold (RFC 3264 §8.4): the peer will not receive, so we send nothing.
                    let held = !negotiated.peer_receives();
                    l.media.negotiated = Some(negotiated);
                    if changed
                        && l.media.running
                        && let Some(params) = media_params(l)
                    {
                        orders.push(MediaOrder::Update { leg, params });
                    }
                    if held != l.media.held {
                        l.media.held = held;
                        orders.push(MediaOrder::Hold { leg, held });
                    }
                    Some(body)
                }
                Err(_) => return self.respond(now, &key, &request, 488, None, vec![], None),
            }
        };
        // A refresh re-arms the session timer with what it negotiated (RFC 4028 §9–10).
        if let Signalling::Uas(uas) = &mut l.sig {
            uas.session = decision.timer();
            uas.session_headers = decision.response_headers();
            uas.session_deadline = uas.session.and_then(|timer| session_deadline(timer, now));
        }
        self.media.extend(orders);
        let mut headers = vec![
            self.contact(transport),
            builder::allow(ALLOWED_METHODS),
            builder::supported(SUPPORTED_EXTENSIONS),
        ];
        headers.extend(decision.response_headers());
        self.respond(
            now,
            &key,
            &request,
            200,
            None,
            headers,
            body.map(|b| ("application/sdp", b.into_bytes())),
        );
        if is_invite {
            self.server_invites.insert(key.clone(), leg);
            if let Some(l) = self.legs.get_mut(&leg) {
                l.awaiting_ack = Some(key);
            }
        }
    }

    /// Sends BYE on a leg (either side). Its response, or its timeout, ends the leg.
    pub(super) fn hang_up_leg(&mut self, now: Instant, leg: LegId) {
        let Some(transport) = self.legs.get(&leg).map(|l| l.transport) else {
            return;
        };
        let local = self.local(transport);
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        let peer = l.peer;
        let bye = match &mut l.sig {
            Signalling::Uas(uas) => {
                if matches!(uas.state, UasState::Ending | UasState::Ended) {
                    return;
                }
                if uas.state == UasState::Ringing {
                    // Nothing to hang up: the INVITE still waits for its final answer.
                    return;
                }
                let branch = self.ids.branch();
                let bye = uas.dialog.bye(&local, &branch);
                uas.state = UasState::Ending;
                uas.session_deadline = None;
                let key = TransactionKey::rfc3261(
                    &branch,
                    KeyMethod::from_name("BYE"),
                    &local.host_port(),
                );
                uas.bye_key = Some(key.clone());
                let destination = uas.dialog_destination(peer);
                Some((key, Bytes::from(bye.to_string()), destination))
            }
            Signalling::Uac(uac) => {
                if uac.ended {
                    return;
                }
                match uac.leg.as_mut() {
                    Some(placed) if placed.is_connected() => match placed.bye(&mut self.ids) {
                        Some((key, bytes)) => {
                            uac.bye_key = Some(key.clone());
                            Some((key, bytes, uac.target.destination))
                        }
                        None => return,
                    },
                    _ => {
                        uac.abandoned = true;
                        None
                    }
                }
            }
        };
        match bye {
            Some((key, bytes, destination)) => self.send_request(
                now,
                leg,
                ClientRequest::Bye,
                key,
                destination,
                transport,
                bytes,
            ),
            None => self.cancel_leg(now, leg),
        }
    }

    // ----- outbound legs -----------------------------------------------------------

    /// Makes a leg the engine places; the INVITE goes once its RTP port is open.
    pub(super) fn open_uac_leg(
        &mut self,
        call: crate::acd::CallKey,
        role: LegRole,
        target: UacTarget,
        display: String,
    ) -> LegId {
        let id = self.new_leg_id();
        let session_id = self.ids.sdp_session_id();
        let ssrc = (self.ids.next_u64() >> 32) as u32;
        self.legs.insert(
            id,
            Leg {
                call,
                role,
                peer: target.destination,
                transport: target.transport,
                call_id: String::new(),
                awaiting_ack: None,
                offer_in_answer: false,
                sig: Signalling::Uac(Box::new(UacSide {
                    leg: None,
                    target,
                    display,
                    provisional_seen: false,
                    cancel_pending: false,
                    abandoned: false,
                    bye_key: None,
                    ended: false,
                })),
                media: LegMedia::new(ssrc, session_id),
            },
        );
        self.media.push_back(MediaOrder::Open { leg: id });
        id
    }

    /// The RTP port of a placed leg is open: send its INVITE.
    fn send_invite(&mut self, now: Instant, leg: LegId, rtp_port: u16) {
        let ip = self.settings.advertised_ip;
        let Some(transport) = self.legs.get(&leg).map(|l| l.transport) else {
            return;
        };
        let local = self.local(transport);
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        let Signalling::Uac(uac) = &mut l.sig else {
            return;
        };
        if uac.abandoned {
            uac.ended = true;
            return self.leg_event(now, leg, LegEvent::Failed { status: 487 });
        }
        let offer = l.media.sdp.offer(
            ip,
            rtp_port,
            &[Codec::Pcmu, Codec::Pcma],
            Direction::SendRecv,
        );
        let placed = match UacLeg::new(
            &mut self.ids,
            uac.target.clone(),
            local,
            offer,
            &uac.display,
        ) {
            Ok(placed) => placed,
            Err(e) => {
                tracing::warn!(error = %e, "cannot place the leg");
                uac.ended = true;
                return self.leg_event(now, leg, LegEvent::Failed { status: 0 });
            }
        };
        let (key, bytes) = (placed.invite_key.clone(), placed.invite_bytes());
        let (destination, transport) = (uac.target.destination, uac.target.transport);
        l.call_id = placed.call_id.clone();
        uac.leg = Some(placed);
        self.send_request(
            now,
            leg,
            ClientRequest::Invite,
            key,
            destination,
            transport,
            bytes,
        );
    }

    /// Withdraws a ringing placed leg (RFC 3261 §9.1: only after a provisional response;
    /// before one, the CANCEL waits for it).
    pub(super) fn cancel_leg(&mut self, now: Instant, leg: LegId) {
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        let Signalling::Uac(uac) = &mut l.sig else {
            return;
        };
        uac.abandoned = true;
        let Some(placed) = uac.leg.as_mut() else {
            // Not sent yet: it never will be.
            return;
        };
        if !placed.is_ringing() {
            return;
        }
        if !uac.provisional_seen {
            uac.cancel_pending = true;
            return;
        }
        if let Some((key, bytes)) = placed.cancel() {
            let (destination, transport) = (uac.target.destination, uac.target.transport);
            self.send_request(
                now,
                leg,
                ClientRequest::Cancel,
                key,
                destination,
                transport,
                bytes,
            );
        }
    }

    pub(super) fn client_response(
        &mut self,
        now: Instant,
        leg: LegId,
        purpose: ClientRequest,
        key: &TransactionKey,
        status: u16,
        response: &Response,
    ) {
        match purpose {
            ClientRequest::Cancel => {}
            ClientRequest::Bye => {
                if status >= 200 {
                    self.leg_bye_finished(now, leg);
                }
            }
            ClientRequest::Invite => self.invite_response(now, leg, key, status, response),
        }
    }

    pub(super) fn client_timed_out(&mut self, now: Instant, leg: LegId, purpose: ClientRequest) {
        match purpose {
            ClientRequest::Cancel => {}
            ClientRequest::Bye => self.leg_bye_finished(now, leg),
            ClientRequest::Invite => {
                if let Some(Signalling::Uac(uac)) = self.legs.get_mut(&leg).map(|l| &mut l.sig)
                    && !uac.ended
                    && !uac.leg.as_ref().is_some_and(UacLeg::is_connected)
                {
                    uac.ended = true;
                    self.leg_event(now, leg, LegEvent::Failed { status: 408 });
                }
                self.forget_if_orphan(leg);
            }
        }
    }

    fn leg_bye_finished(&mut self, now: Instant, leg: LegId) {
        if let Some(l) = self.legs.get_mut(&leg) {
            match &mut l.sig {
                Signalling::Uas(uas) => uas.state = UasState::Ended,
                Signalling::Uac(uac) => uac.ended = true,
            }
        }
        self.leg_event(now, leg, LegEvent::ByeFinished);
        self.forget_if_orphan(leg);
    }

    fn invite_response(
        &mut self,
        now: Instant,
        leg: LegId,
        key: &TransactionKey,
        status: u16,
        response: &Response,
    ) {
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        let Signalling::Uac(uac) = &mut l.sig else {
            return;
        };
        let Some(placed) = uac.leg.as_mut() else {
            return;
        };
        let (destination, transport) = (uac.target.destination, uac.target.transport);
        match status {
            100..=199 => {
                uac.provisional_seen = true;
                if uac.cancel_pending {
                    uac.cancel_pending = false;
                    if let Some((key, bytes)) = placed.cancel() {
                        self.send_request(
                            now,
                            leg,
                            ClientRequest::Cancel,
                            key,
                            destination,
                            transport,
                            bytes,
                        );
                    }
                }
            }
            200..=299 => {
                if let Some(ack) = placed.ack_again() {
                    // A retransmitted 2xx: our ACK was lost (RFC 3261 §13.2.2.4).
                    return self.transmit(destination, transport, ack);
                }
                let answered: Result<(Negotiated, Bytes), LegError> =
                    placed.answered(&mut self.ids, response);
                match answered {
                    Ok((negotiated, ack)) => {
                        let local_tag = placed.dialog().map(|d| d.local_tag.clone());
                        let call_id = placed.call_id.clone();
                        let abandoned = uac.abandoned;
                        l.media.negotiated = Some(negotiated);
                        self.transmit(destination, transport, ack);
                        if let Some(tag) = local_tag {
                            self.dialogs.insert((call_id, tag), leg);
                        }
                        if abandoned {
                            // Answered as we withdrew it: the leg goes at once.
                            self.hang_up_leg(now, leg);
                        } else {
                            self.leg_event(now, leg, LegEvent::Answered);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "answer unusable; hanging the leg up");
                        uac.ended = true;
                        self.leg_event(now, leg, LegEvent::Failed { status: 488 });
                    }
                }
            }
            _ => {
                let was_ringing = placed.is_ringing();
                let ack = placed.ack_for_failure(response);
                if let Err(e) = self.transactions.send_ack(key, ack) {
                    tracing::debug!(error = %e, "ACK not sent");
                }
                // A trunk's digest challenge, answered once (RFC 3261 §22.2).
                if was_ringing
                    && !uac.abandoned
                    && let Some((retry, bytes)) =
                        placed.answer_challenge(&mut self.ids, status, response)
                {
                    return self.send_request(
                        now,
                        leg,
                        ClientRequest::Invite,
                        retry,
                        destination,
                        transport,
                        bytes,
                    );
                }
                uac.ended = true;
                // 487 answers our own CANCEL: the call already moved on.
                if was_ringing && status != 487 {
                    self.leg_event(now, leg, LegEvent::Failed { status });
                }
                self.forget_if_orphan(leg);
            }
        }
    }

    // ----- media -------------------------------------------------------------------

    pub(super) fn on_media(&mut self, now: Instant, leg: LegId, report: MediaReport) {
        match report {
            MediaReport::Opened { local } => {
                let Some(l) = self.legs.get_mut(&leg) else {
                    // The call ended while the port was being bound.
                    return self.media.push_back(MediaOrder::Close { leg });
                };
                l.media.local = Some(local);
                if matches!(l.sig, Signalling::Uac(_)) {
                    self.send_invite(now, leg, local.port());
                } else {
                    self.leg_event(now, leg, LegEvent::MediaReady);
                }
            }
            MediaReport::OpenFailed => {
                tracing::warn!(%leg, "no RTP port for the leg");
                if let Some(Signalling::Uac(uac)) = self.legs.get_mut(&leg).map(|l| &mut l.sig) {
                    uac.ended = true;
                    return self.leg_event(now, leg, LegEvent::Failed { status: 503 });
                }
                self.leg_media_failed(now, leg);
            }
            MediaReport::PlaybackFinished { seq } => {
                let current = self.legs.get(&leg).map(|l| l.media.play_seq);
                if current == Some(seq) {
                    self.leg_event(now, leg, LegEvent::PromptFinished);
                }
            }
            MediaReport::Dtmf(digit) => self.leg_event(now, leg, LegEvent::Dtmf(digit)),
            MediaReport::VoiceStarted => self.leg_event(now, leg, LegEvent::VoiceStarted),
            MediaReport::VoiceEnded => self.leg_event(now, leg, LegEvent::VoiceEnded),
            MediaReport::Inactive => self.leg_event(now, leg, LegEvent::MediaInactive),
            MediaReport::Closed { .. } => {}
        }
    }

    pub(super) fn leg_media_failed(&mut self, now: Instant, leg: LegId) {
        self.leg_event(now, leg, LegEvent::MediaFailed);
    }

    /// Starts a leg's stream on its own (prompts, recording when `recording`).
    pub(super) fn start_media(
        &mut self,
        leg: LegId,
        recording: Option<super::RecordingOrder>,
    ) -> bool {
        self.start_media_listening(leg, recording, None)
    }

    /// Like [`Switch::start_media`], listening to the peer for the IVR: voice activity
    /// with `listen`'s settings, and in-band keys.
    pub(super) fn start_media_listening(
        &mut self,
        leg: LegId,
        recording: Option<super::RecordingOrder>,
        listen: Option<crate::media::vad::VadSettings>,
    ) -> bool {
        let Some(l) = self.legs.get_mut(&leg) else {
            return false;
        };
        if l.media.running || l.media.closed {
            return l.media.running;
        }
        let Some(params) = media_params(l) else {
            return false;
        };
        l.media.running = true;
        let pending = l.media.pending_prompt.take();
        self.media.push_back(MediaOrder::Start {
            leg,
            params,
            recording,
            listen,
        });
        if let Some(prompt) = pending {
            let seq = l.media.play_seq;
            self.media.push_back(MediaOrder::Play { leg, prompt, seq });
        }
        true
    }

    /// Joins `leg` into the stream of `to` (the bridge).
    pub(super) fn attach_media(&mut self, leg: LegId, to: LegId) -> bool {
        let Some(l) = self.legs.get_mut(&leg) else {
            return false;
        };
        let Some(params) = media_params(l) else {
            return false;
        };
        l.media.running = true;
        l.media.attached_to = Some(to);
        self.media.push_back(MediaOrder::Attach { leg, to, params });
        if let Some(customer) = self.legs.get_mut(&to) {
            customer.media.pending_prompt = None;
        }
        true
    }

    pub(super) fn detach_media(&mut self, leg: LegId) {
        if let Some(l) = self.legs.get_mut(&leg)
            && l.media.attached_to.take().is_some()
        {
            l.media.running = false;
            self.media.push_back(MediaOrder::Detach { leg });
        }
    }

    /// Plays a prompt on a leg; one asked for before the stream starts plays when it does.
    pub(super) fn play(&mut self, leg: LegId, prompt: std::sync::Arc<Prompt>) {
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        if l.media.closed {
            return;
        }
        l.media.play_seq += 1;
        if l.media.running {
            let seq = l.media.play_seq;
            self.media.push_back(MediaOrder::Play { leg, prompt, seq });
        } else {
            l.media.pending_prompt = Some(prompt);
        }
    }

    /// Stops what plays on a leg (a key interrupted the prompt, an agent answered).
    pub(super) fn stop_playback(&mut self, leg: LegId) {
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        l.media.pending_prompt = None;
        // A finish already on its way is for the stopped prompt.
        l.media.play_seq += 1;
        if l.media.running && !l.media.closed {
            self.media.push_back(MediaOrder::StopPlayback { leg });
        }
    }

    pub(super) fn close_media(&mut self, leg: LegId) {
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        if l.media.closed {
            return;
        }
        l.media.closed = true;
        l.media.running = false;
        if l.media.local.is_some() {
            self.media.push_back(MediaOrder::Close { leg });
        }
    }

    /// A placed leg that outlived its call (see `Switch::remove_call`) is forgotten once
    /// its INVITE or BYE is over.
    fn forget_if_orphan(&mut self, leg: LegId) {
        let orphan_done = self.legs.get(&leg).is_some_and(|l| {
            !self.calls.contains_key(&l.call)
                && (l.is_ended() || !l.is_still_inviting() && !l.is_hanging_up())
        });
        if orphan_done {
            self.forget_leg(leg);
        }
    }

    /// Forgets a leg of a finished call: its indexes go; its transactions finish on
    /// their own (a late response is dropped as stray).
    pub(super) fn forget_leg(&mut self, leg: LegId) {
        self.close_media(leg);
        let Some(l) = self.legs.remove(&leg) else {
            return;
        };
        match &l.sig {
            Signalling::Uas(uas) => {
                self.dialogs
                    .remove(&(l.call_id.clone(), uas.local_tag.clone()));
                if let Some(tag) = &uas.dialog.remote_tag {
                    self.inbound_dialogs
                        .remove(&(l.call_id.clone(), tag.clone()));
                }
            }
            Signalling::Uac(uac) => {
                if let Some(dialog) = uac.leg.as_ref().and_then(UacLeg::dialog) {
                    self.dialogs
                        .remove(&(l.call_id.clone(), dialog.local_tag.clone()));
                }
            }
        }
    }

    /// A leg's session timer ran out: the peer stopped refreshing (RFC 4028 §10).
    pub(super) fn leg_timeout(&mut self, now: Instant, leg: LegId) {
        let expired = match self.legs.get_mut(&leg).map(|l| &mut l.sig) {
            Some(Signalling::Uas(uas)) if uas.session_deadline.is_some_and(|at| at <= now) => {
                uas.session_deadline = None;
                true
            }
            _ => false,
        };
        if expired {
            tracing::info!(%leg, "the session was not refreshed in time: hanging up");
            self.leg_event(now, leg, LegEvent::SessionExpired);
        }
    }

    /// Tells the leg's call what happened to the leg.
    fn leg_event(&mut self, now: Instant, leg: LegId, event: LegEvent) {
        let Some(call) = self.legs.get(&leg).map(|l| l.call) else {
            return;
        };
        match self.flow(call) {
            Some(Flow::Inbound) => self.inbound_leg_event(now, call, leg, event),
            Some(Flow::Outbound) => self.outbound_leg_event(now, call, leg, event),
            Some(Flow::Feature) => self.feature_leg_event(now, call, leg, event),
            None => return,
        }
        self.rearm(call);
    }
}

/// What happened to a leg, for its call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegEvent {
    /// The RTP port is open (UAS legs: the 200 can carry SDP now).
    MediaReady,
    /// The peer CANCELled before our final answer.
    Cancelled,
    /// The ACK for our 2xx arrived.
    Acked,
    /// Our 2xx was never acknowledged (RFC 3261 §13.3.1.4).
    AckTimedOut,
    /// A placed leg was answered (and ACKed).
    Answered,
    /// A placed leg failed with this status (0: could not be sent, 408: timeout).
    Failed {
        status: u16,
    },
    /// The peer sent BYE.
    HungUp,
    /// Our BYE got its final response or timed out.
    ByeFinished,
    PromptFinished,
    Dtmf(char),
    /// The peer started speaking / went quiet (legs started listening).
    VoiceStarted,
    VoiceEnded,
    /// The leg's media could not be set up.
    MediaFailed,
    /// The peer has sent no RTP for the configured time (not on hold): it vanished.
    MediaInactive,
    /// The peer stopped refreshing the session (RFC 4028 §10).
    SessionExpired,
}

/// The key an INFO carries (`application/dtmf-relay`, `application/dtmf`), if any; an
/// INFO about anything else, or a malformed one, is answered and otherwise ignored.
fn info_dtmf(request: &Request) -> Option<char> {
    let content_type = request.headers.iter().find_map(|header| match header {
        Header::ContentType(value) => Some(value.value().to_owned()),
        _ => None,
    })?;
    let body = std::str::from_utf8(&request.body).ok()?;
    match crate::sip::info::parse_dtmf_info(&content_type, body) {
        Ok(digit) => Some(digit.key),
        Err(e) => {
            tracing::debug!(error = %e, "INFO without a usable key");
            None
        }
    }
}

impl UasSide {
    /// Where in-dialog requests go: the source of the INVITE (it reached us; a trunk
    /// behind NAT or a proxy is reachable there, and over TCP it is the connection).
    fn dialog_destination(&self, peer: SocketAddr) -> SocketAddr {
        peer
    }
}

/// When a session timer acts next after a 2xx or a refresh at `now`: the expiry
/// deadline when the peer refreshes (RFC 4028 §10). When we are the refresher (only for a
/// peer that does not support timers, §9) the engine sends no refreshes: such a peer
/// expects none, and the RTP inactivity timeout ends a session whose peer vanished.
fn session_deadline(timer: SessionTimer, now: Instant) -> Option<Instant> {
    match timer.next_step(now, Role::Uas) {
        NextStep::HangUpUnlessRefreshed(at) => Some(at),
        NextStep::Refresh(_) => None,
    }
}

fn media_params(leg: &Leg) -> Option<MediaParams> {
    let negotiated = leg.media.negotiated.as_ref()?;
    Some(MediaParams {
        remote: negotiated.remote_rtp,
        codec: negotiated.codec,
        telephone_event_pt: negotiated.remote_telephone_event_pt,
        ssrc: leg.media.ssrc,
    })
}
