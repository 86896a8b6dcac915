//! A leg the engine places (UAC): to an agent's softphone (the B2BUA's second leg) or to
//! a destination (an outbound call). It builds the INVITE (with our SDP offer), its
//! CANCEL, the ACKs (RFC 3261 §17.1.1.3 for a failure, §13.2.2.4 for a 2xx) and, once
//! the peer answers, the dialog whose BYE ends the leg.
//!
//! Pure: the switch sends what it builds. Nothing here names a caller except the
//! display given (a masked number for an agent's phone, R12).

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;

use super::ids::Ids;
use crate::media::g711::Codec;
use crate::sip::TransportKind;
use crate::sip::dialog::{Dialog, DialogState, ViaParams};
use crate::sip::message::{self, HeadersExt, Method, Request, Response, Uri};
use crate::sip::sdp::{self, Negotiated, SdpError};
use crate::sip::transaction::{KeyMethod, TransactionKey};

/// Where a placed leg goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UacTarget {
    /// The INVITE's Request-URI: the Contact an agent's phone registered, or the
    /// destination of an outbound call.
    pub contact: Uri,
    /// The To URI (an agent's address of record, or the destination).
    pub to: String,
    /// Where the INVITE goes: where an agent's REGISTER came from (the phone may sit
    /// behind NAT, and over TCP it is the open connection), or the destination's host.
    pub destination: SocketAddr,
    pub transport: TransportKind,
}

/// Our side of the signalling, as Via, From and Contact show it.
#[derive(Clone, Debug)]
pub struct LocalSide {
    pub ip: IpAddr,
    pub port: u16,
}

/// Why the phone's answer could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LegError {
    /// The 2xx could not be parsed or lacks what a dialog needs (To tag, Contact).
    #[error("agent's answer unusable: {0}")]
    BadAnswer(String),
    /// The registered Contact does not make a valid INVITE.
    #[error("cannot build an INVITE to {contact}: {reason}")]
    BadTarget { contact: String, reason: String },
    /// The 2xx's SDP has no codec we offered.
    #[error("agent's SDP answer: {0}")]
    Sdp(#[from] SdpError),
}

#[derive(Debug)]
enum LegState {
    Inviting,
    Cancelled,
    /// Answered and acknowledged; `ack` is resent if the 2xx is retransmitted.
    Confirmed {
        dialog: Box<Dialog>,
        ack: Bytes,
    },
    Ended,
}

/// One INVITE we sent and what became of it.
#[derive(Debug)]
pub struct UacLeg {
    pub call_id: String,
    pub target: UacTarget,
    pub invite_key: TransactionKey,
    local: LocalSide,
    local_tag: String,
    branch: String,
    invite: Request,
    state: LegState,
}

impl UacLeg {
    /// Builds the INVITE offering PCMU, PCMA and telephone-event on `rtp_port`. The
    /// peer's display shows `display` (for an agent, a masked caller number, R12).
    pub fn new(
        ids: &mut Ids,
        target: UacTarget,
        local: LocalSide,
        rtp_port: u16,
        display: &str,
    ) -> Result<UacLeg, LegError> {
        let call_id = ids.call_id(&local.ip.to_string());
        let local_tag = ids.tag();
        let branch = ids.branch();
        let sdp = sdp::offer(
            local.ip,
            rtp_port,
            &[Codec::Pcmu, Codec::Pcma],
            ids.next_u32().into(),
        );
        let transport_param = match target.transport {
            TransportKind::Udp => "",
            TransportKind::Tcp => ";transport=tcp",
        };
        let text = format!(
            "INVITE {contact} SIP/2.0\r\n\
             Via: SIP/2.0/{via} {ip}:{port};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: \"{display}\" <sip:hotline@{ip}:{port}>;tag={local_tag}\r\n\
             To: <{to}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:hotline@{ip}:{port}{transport_param}>\r\n\
             Content-Type: application/sdp\r\n\
             Content-Length: {len}\r\n\r\n{sdp}",
            contact = target.contact,
            via = target.transport.via_token(),
            ip = local.ip,
            port = local.port,
            len = sdp.len(),
            display = display.replace(['"', '\\'], ""),
            to = target.to,
        );
        // The Contact came from a phone's REGISTER: parse what we built, so a Contact
        // that makes no valid request fails this one leg, visibly, not the call.
        let invite = match message::parse(text.as_bytes()) {
            Ok(message::SipMessage::Request(request)) => request,
            other => {
                return Err(LegError::BadTarget {
                    contact: target.contact.to_string(),
                    reason: other
                        .err()
                        .map_or("not a request".into(), |e| e.to_string()),
                });
            }
        };
        let invite_key = TransactionKey::rfc3261(
            &branch,
            KeyMethod::Invite,
            &format!("{}:{}", local.ip, local.port),
        );
        Ok(UacLeg {
            call_id,
            target,
            invite_key,
            local,
            local_tag,
            branch,
            invite,
            state: LegState::Inviting,
        })
    }

    pub fn invite_bytes(&self) -> Bytes {
        Bytes::from(self.invite.to_string())
    }

    /// True while the INVITE has no final answer and was not cancelled.
    pub fn is_ringing(&self) -> bool {
        matches!(self.state, LegState::Inviting)
    }

    pub fn is_connected(&self) -> bool {
        matches!(self.state, LegState::Confirmed { .. })
    }

    /// The CANCEL for the ringing INVITE (§9.1): same Request-URI, Via branch, Call-ID,
    /// From, To and CSeq number. `None` when the leg is not ringing.
    pub fn cancel(&mut self) -> Option<(TransactionKey, Bytes)> {
        if !self.is_ringing() {
            return None;
        }
        self.state = LegState::Cancelled;
        let mut cancel = self.invite.clone();
        cancel.method = Method::Cancel;
        cancel.body.clear();
        let headers: Vec<_> = cancel
            .headers
            .iter()
            .filter(|h| {
                !matches!(
                    h,
                    message::Header::Contact(_)
                        | message::Header::ContentType(_)
                        | message::Header::ContentLength(_)
                        | message::Header::CSeq(_)
                )
            })
            .cloned()
            .chain([
                message::make_header("CSeq", "1 CANCEL".to_owned()),
                message::make_header("Content-Length", "0".to_owned()),
            ])
            .collect();
        cancel.headers = message::Headers::from(headers);
        let key = TransactionKey::rfc3261(&self.branch, KeyMethod::Cancel, &self.sent_by());
        Some((key, Bytes::from(cancel.to_string())))
    }

    /// The ACK for a 300–699 to the INVITE (§17.1.1.3): part of the INVITE transaction,
    /// so same branch, and the To of the response (with its tag).
    pub fn ack_for_failure(&mut self, response: &Response) -> Bytes {
        self.state = LegState::Ended;
        let to = response
            .to_header()
            .map(|to| to.value().to_owned())
            .unwrap_or_else(|_| format!("<{}>", self.target.to));
        Bytes::from(self.ack_text(&self.branch.clone(), &self.invite.uri.to_string(), &to, &[]))
    }

    /// Takes the phone's 2xx: builds the dialog (§12.1.2), reads the SDP answer and
    /// returns it with the ACK to send (a new transaction: new branch, §13.2.2.4).
    pub fn answered(
        &mut self,
        ids: &mut Ids,
        response: &Response,
    ) -> Result<(Negotiated, Bytes), LegError> {
        if let LegState::Confirmed { ack, .. } = &self.state {
            return Err(LegError::BadAnswer(format!(
                "already answered; resend the ACK ({} bytes)",
                ack.len()
            )));
        }
        let to = response
            .to_header()
            .map_err(|e| LegError::BadAnswer(e.to_string()))?;
        let remote_tag = to
            .tag()
            .ok()
            .flatten()
            .map(|t| t.value().to_owned())
            .ok_or_else(|| LegError::BadAnswer("2xx without a To tag".into()))?;
        let remote_uri = to.uri().map_err(|e| LegError::BadAnswer(e.to_string()))?;
        let remote_target = response
            .typed_contact_headers()
            .ok()
            .and_then(|c| c.into_iter().next())
            .map(|c| c.uri)
            .unwrap_or_else(|| self.target.contact.clone());
        // A UAC's route set is the 2xx's Record-Route in reverse (§12.1.2).
        let mut route_set: Vec<Uri> = response
            .typed_record_route_headers()
            .unwrap_or_default()
            .into_iter()
            .map(|rr| rr.uri)
            .collect();
        route_set.reverse();
        let negotiated = sdp::negotiate(&response.body, &[Codec::Pcmu, Codec::Pcma])?;
        let local_uri = Uri::try_from(format!("sip:hotline@{}:{}", self.local.ip, self.local.port))
            .map_err(|e| LegError::BadAnswer(e.to_string()))?;
        let dialog = Dialog {
            call_id: self.call_id.clone(),
            local_tag: self.local_tag.clone(),
            remote_tag: Some(remote_tag.clone()),
            local_uri,
            remote_uri,
            remote_target: remote_target.clone(),
            route_set: route_set.clone(),
            local_cseq: 1,
            remote_cseq: 0,
            state: DialogState::Confirmed,
            peer: self.target.destination,
            transport: self.target.transport.into(),
        };
        let routes: Vec<String> = route_set.iter().map(|r| format!("<{r}>")).collect();
        let to_value = format!(
            "{};tag={remote_tag}",
            to.value().split(";tag=").next().unwrap_or("")
        );
        let ack = Bytes::from(self.ack_text(
            &ids.branch(),
            &remote_target.to_string(),
            &to_value,
            &routes,
        ));
        self.state = LegState::Confirmed {
            dialog: Box::new(dialog),
            ack: ack.clone(),
        };
        Ok((negotiated, ack))
    }

    /// The ACK again, for a retransmitted 2xx (our ACK was lost).
    pub fn ack_again(&self) -> Option<Bytes> {
        match &self.state {
            LegState::Confirmed { ack, .. } => Some(ack.clone()),
            _ => None,
        }
    }

    /// The BYE that ends a connected leg, with its transaction key.
    pub fn bye(&mut self, ids: &mut Ids) -> Option<(TransactionKey, Bytes)> {
        let LegState::Confirmed { dialog, .. } = &mut self.state else {
            return None;
        };
        let branch = ids.branch();
        let host = self.local.ip.to_string();
        let bye = dialog.build_bye(&ViaParams {
            host: &host,
            port: self.local.port,
            transport: self.target.transport.into(),
            branch: &branch,
        });
        self.state = LegState::Ended;
        let key = TransactionKey::rfc3261(&branch, KeyMethod::from_name("BYE"), &self.sent_by());
        Some((key, Bytes::from(bye.to_string())))
    }

    /// The dialog of a connected leg, to match and check the peer's requests.
    pub fn dialog(&self) -> Option<&Dialog> {
        match &self.state {
            LegState::Confirmed { dialog, .. } => Some(dialog),
            _ => None,
        }
    }

    pub fn dialog_mut(&mut self) -> Option<&mut Dialog> {
        match &mut self.state {
            LegState::Confirmed { dialog, .. } => Some(dialog),
            _ => None,
        }
    }

    /// The peer hung up: nothing more to send on this leg.
    pub fn ended_by_peer(&mut self) {
        self.state = LegState::Ended;
    }

    fn sent_by(&self) -> String {
        format!("{}:{}", self.local.ip, self.local.port)
    }

    fn ack_text(&self, branch: &str, request_uri: &str, to: &str, routes: &[String]) -> String {
        let mut text = format!(
            "ACK {request_uri} SIP/2.0\r\n\
             Via: SIP/2.0/{via} {ip}:{port};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n",
            via = self.target.transport.via_token(),
            ip = self.local.ip,
            port = self.local.port,
        );
        for route in routes {
            text.push_str(&format!("Route: {route}\r\n"));
        }
        let from = self
            .invite
            .from_header()
            .map(|f| f.value().to_owned())
            .unwrap_or_default();
        text.push_str(&format!(
            "From: {from}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            self.call_id
        ));
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::SipMessage;

    fn leg() -> UacLeg {
        UacLeg::new(
            &mut Ids::new(1),
            UacTarget {
                contact: Uri::try_from("sip:1001@127.0.0.1:5071").unwrap(),
                to: "sip:1001@127.0.0.1".into(),
                destination: "127.0.0.1:5071".parse().unwrap(),
                transport: TransportKind::Udp,
            },
            LocalSide {
                ip: "127.0.0.1".parse().unwrap(),
                port: 5060,
            },
            20002,
            "139****0001",
        )
        .expect("valid target")
    }

    fn request(bytes: &[u8]) -> Request {
        match message::parse(bytes).expect("parses") {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => panic!("not a request"),
        }
    }

    fn response(text: &str) -> Response {
        match message::parse(text.as_bytes()).expect("parses") {
            SipMessage::Response(r) => r,
            SipMessage::Request(_) => panic!("not a response"),
        }
    }

    fn ok_from_phone(leg: &UacLeg) -> Response {
        let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
        response(&format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={}\r\n\
             From: <sip:hotline@127.0.0.1:5060>;tag={}\r\nTo: <sip:1001@127.0.0.1>;tag=phone-tag\r\n\
             Call-ID: {}\r\nCSeq: 1 INVITE\r\nContact: <sip:1001@127.0.0.1:5071>\r\n\
             Record-Route: <sip:p1.example.com;lr>\r\nRecord-Route: <sip:p2.example.com;lr>\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            leg.invite_key.branch,
            leg.local_tag,
            leg.call_id,
            sdp.len()
        ))
    }

    #[test]
    fn the_invite_targets_the_registered_contact_and_shows_no_full_number_r12() {
        let leg = leg();
        let invite = request(&leg.invite_bytes());
        let summary = message::summary(&invite).expect("valid INVITE");
        assert_eq!(invite.uri.to_string(), "sip:1001@127.0.0.1:5071");
        assert_eq!(summary.top_via_branch, leg.invite_key.branch);
        assert_eq!(summary.call_id, leg.call_id);
        let text = leg.invite_bytes();
        let text = String::from_utf8_lossy(&text);
        assert!(text.contains("\"139****0001\""), "{text}");
        let offered = sdp::negotiate(&invite.body, &[Codec::Pcmu]).expect("our offer");
        assert_eq!(offered.remote_rtp.port(), 20002);
    }

    #[test]
    fn cancel_matches_the_invite_transaction_rfc3261_9_1() {
        let mut leg = leg();
        let (key, bytes) = leg.cancel().expect("ringing");
        let cancel = request(&bytes);
        let summary = message::summary(&cancel).expect("valid CANCEL");
        assert_eq!(cancel.method, Method::Cancel);
        assert_eq!(summary.top_via_branch, leg.invite_key.branch);
        assert_eq!(key.branch, leg.invite_key.branch);
        assert_eq!(key.method, KeyMethod::Cancel);
        assert_eq!(summary.cseq, 1);
        assert_eq!(summary.cseq_method, Method::Cancel);
        assert!(leg.cancel().is_none(), "only once");
    }

    #[test]
    fn a_2xx_makes_a_dialog_acked_on_a_new_branch_with_the_route_set_reversed() {
        let mut leg = leg();
        let ok = ok_from_phone(&leg);
        let (negotiated, ack) = leg.answered(&mut Ids::new(2), &ok).expect("usable 2xx");
        assert_eq!(negotiated.codec, Codec::Pcmu);
        assert_eq!(negotiated.remote_rtp.port(), 6000);
        let ack = request(&ack);
        let summary = message::summary(&ack).expect("valid ACK");
        assert_eq!(ack.method, Method::Ack);
        assert_ne!(summary.top_via_branch, leg.invite_key.branch);
        assert_eq!(summary.to_tag.as_deref(), Some("phone-tag"));
        assert_eq!(summary.cseq, 1);
        let text = ack.to_string();
        let p2 = text.find("p2.example.com").expect("route p2");
        let p1 = text.find("p1.example.com").expect("route p1");
        assert!(p2 < p1, "reversed Record-Route: {text}");
        assert!(leg.ack_again().is_some());

        let (key, bye) = leg.bye(&mut Ids::new(3)).expect("connected");
        let bye = request(&bye);
        let summary = message::summary(&bye).expect("valid BYE");
        assert_eq!(bye.method, Method::Bye);
        assert_eq!(summary.cseq, 2);
        assert_eq!(summary.to_tag.as_deref(), Some("phone-tag"));
        assert_eq!(summary.from_tag.as_deref(), Some(leg.local_tag.as_str()));
        assert_eq!(key.branch, summary.top_via_branch);
        assert!(leg.bye(&mut Ids::new(4)).is_none(), "only once");
    }

    #[test]
    fn a_failure_is_acked_on_the_invite_branch() {
        let mut leg = leg();
        let busy = response(&format!(
            "SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={}\r\n\
             From: <sip:hotline@127.0.0.1:5060>;tag={}\r\nTo: <sip:1001@127.0.0.1>;tag=busy\r\n\
             Call-ID: {}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
            leg.invite_key.branch, leg.local_tag, leg.call_id
        ));
        let ack = request(&leg.ack_for_failure(&busy));
        let summary = message::summary(&ack).expect("valid ACK");
        assert_eq!(summary.top_via_branch, leg.invite_key.branch);
        assert_eq!(summary.to_tag.as_deref(), Some("busy"));
        assert!(!leg.is_ringing());
    }

    #[test]
    fn a_2xx_without_sdp_we_can_use_is_an_error_not_a_panic() {
        let mut leg = leg();
        let text = format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={}\r\n\
             From: <sip:hotline@127.0.0.1:5060>;tag={}\r\nTo: <sip:1001@127.0.0.1>;tag=t\r\n\
             Call-ID: {}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
            leg.invite_key.branch, leg.local_tag, leg.call_id
        );
        assert!(leg.answered(&mut Ids::new(5), &response(&text)).is_err());
    }
}
