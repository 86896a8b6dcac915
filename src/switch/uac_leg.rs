//! A leg the engine places (UAC): to an agent's softphone (the B2BUA's second leg) or to
//! a destination (an outbound call). It builds, through the typed builder, the INVITE
//! (with our SDP offer), its CANCEL (RFC 3261 §9.1), the ACKs (§17.1.1.3 for a failure,
//! §13.2.2.4 for a 2xx) and, once the peer answers, the dialog (§12.1.2) whose BYE ends
//! the leg.
//!
//! Pure: the switch sends what it builds. Nothing here names a caller except the
//! display given (a masked number for an agent's phone, R12).

use bytes::Bytes;

use crate::media::g711::Codec;
use crate::sip::TransportKind;
use crate::sip::builder::{self, IdGenerator, LocalContact, RequestBuilder};
use crate::sip::dialog::{Dialog, DialogError};
use crate::sip::digest;
use crate::sip::message::{Method, Request, Response, Uri};
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
    pub destination: std::net::SocketAddr,
    pub transport: TransportKind,
    /// Extra headers on the INVITE, name and value: a callback's
    /// `X-Hotline-Work-Order` for the agent's softphone.
    pub headers: Vec<(String, String)>,
    /// Digest credentials for a peer that challenges the INVITE (an outbound trunk's
    /// 401 or 407); answered once per leg.
    pub login: Option<crate::config::callbacks::TrunkLogin>,
}

/// Why the peer's answer could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LegError {
    /// The 2xx lacks what a dialog needs (To tag, Contact).
    #[error("answer unusable: {0}")]
    BadAnswer(#[from] DialogError),
    /// The target does not make a valid INVITE.
    #[error("cannot build an INVITE to {0}")]
    BadTarget(String),
    /// The 2xx's SDP has no codec we offered.
    #[error("SDP answer: {0}")]
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
    /// Over. `ack` is the ACK of the 2xx it had, if any: a retransmitted 2xx after our
    /// BYE gets that ACK again, never a second dialog.
    Ended {
        ack: Option<Bytes>,
    },
}

/// One INVITE we sent and what became of it.
#[derive(Debug)]
pub struct UacLeg {
    pub call_id: String,
    pub target: UacTarget,
    pub invite_key: TransactionKey,
    local: LocalContact,
    invite: Request,
    /// The INVITE's CSeq: 1, or 2 once re-sent with credentials.
    cseq: u32,
    local_tag: String,
    display: String,
    offer: String,
    /// The INVITE was re-sent with credentials (only once: a second challenge is a
    /// refusal).
    authenticated: bool,
    state: LegState,
}

/// The INVITE of a leg, first or re-sent with credentials (`authorization`: the
/// header's name and value).
struct InviteParts<'a> {
    target: &'a UacTarget,
    local: &'a LocalContact,
    call_id: &'a str,
    local_tag: &'a str,
    branch: &'a str,
    cseq: u32,
    display: &'a str,
    offer: &'a str,
    authorization: Option<(&'a str, String)>,
}

fn build_invite(parts: InviteParts<'_>) -> Result<Request, LegError> {
    let target = parts.target;
    let local = parts.local;
    let bad_target = || LegError::BadTarget(target.contact.to_string());
    let from = local.parsed_uri("hotline").ok_or_else(bad_target)?;
    let to = Uri::try_from(target.to.as_str()).map_err(|_| bad_target())?;
    let mut request = RequestBuilder::new(Method::Invite, target.contact.clone())
        .via(local, parts.branch)
        .from(&from, Some(parts.display), parts.local_tag)
        .to(&to, None)
        .call_id(parts.call_id.to_owned())
        .cseq(parts.cseq)
        .contact(local, "hotline")
        .header(builder::allow(super::ALLOWED_METHODS));
    for (name, value) in &target.headers {
        request = request.header(crate::sip::message::make_header(name, value.clone()));
    }
    if let Some((name, value)) = parts.authorization {
        request = request.header(crate::sip::message::make_header(name, value));
    }
    Ok(request
        .body("application/sdp", parts.offer.as_bytes().to_vec())
        .build())
}

impl UacLeg {
    /// Builds the INVITE carrying `offer` (our SDP). The peer's display shows `display`
    /// (for an agent, a masked caller number, R12).
    pub fn new(
        ids: &mut IdGenerator,
        target: UacTarget,
        local: LocalContact,
        offer: String,
        display: &str,
    ) -> Result<UacLeg, LegError> {
        let call_id = ids.call_id(&local.ip.to_string());
        let local_tag = ids.tag();
        let branch = ids.branch();
        let invite = build_invite(InviteParts {
            target: &target,
            local: &local,
            call_id: &call_id,
            local_tag: &local_tag,
            branch: &branch,
            cseq: 1,
            display,
            offer: &offer,
            authorization: None,
        })?;
        let invite_key = TransactionKey::rfc3261(&branch, KeyMethod::Invite, &local.host_port());
        Ok(UacLeg {
            call_id,
            target,
            invite_key,
            local,
            invite,
            cseq: 1,
            local_tag,
            display: display.to_owned(),
            offer,
            authenticated: false,
            state: LegState::Inviting,
        })
    }

    /// The peer challenged the INVITE (`401` with `WWW-Authenticate`, `407` with
    /// `Proxy-Authenticate`, RFC 3261 §22.2–22.3): the same INVITE again, in the same
    /// dialog-to-be (Call-ID, From tag), CSeq 2 and a new branch, answering the first
    /// challenge it can. `None` without credentials, after one retry already, or when no
    /// challenge can be answered: then the challenge is the leg's final answer. Call
    /// after [`UacLeg::ack_for_failure`].
    pub fn answer_challenge(
        &mut self,
        ids: &mut IdGenerator,
        status: u16,
        response: &Response,
    ) -> Option<(TransactionKey, Bytes)> {
        let (challenge_header, authorization_header) = match status {
            401 => ("www-authenticate", "Authorization"),
            407 => ("proxy-authenticate", "Proxy-Authorization"),
            _ => return None,
        };
        let login = self.target.login.clone()?;
        if self.authenticated {
            return None;
        }
        let uri = self.invite.uri.to_string();
        let cnonce = ids.branch();
        let value = response
            .headers
            .iter()
            .filter(|h| h.name().eq_ignore_ascii_case(challenge_header))
            .filter_map(|h| digest::parse_challenge(h.value()).ok())
            .find_map(|challenge| {
                digest::answer_challenge(
                    &challenge,
                    "INVITE",
                    &uri,
                    &login.username,
                    &login.password,
                    (&cnonce, 1),
                )
                .ok()
            })?;
        let branch = ids.branch();
        let invite = build_invite(InviteParts {
            target: &self.target,
            local: &self.local,
            call_id: &self.call_id,
            local_tag: &self.local_tag,
            branch: &branch,
            cseq: 2,
            display: &self.display,
            offer: &self.offer,
            authorization: Some((authorization_header, value)),
        })
        .ok()?;
        self.invite = invite;
        self.cseq = 2;
        self.authenticated = true;
        self.invite_key =
            TransactionKey::rfc3261(&branch, KeyMethod::Invite, &self.local.host_port());
        self.state = LegState::Inviting;
        Some((self.invite_key.clone(), self.invite_bytes()))
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

    /// The CANCEL for the ringing INVITE (§9.1). `None` when the leg is not ringing.
    pub fn cancel(&mut self) -> Option<(TransactionKey, Bytes)> {
        if !self.is_ringing() {
            return None;
        }
        self.state = LegState::Cancelled;
        let cancel = builder::cancel_for(&self.invite);
        let key = TransactionKey::rfc3261(
            &self.invite_key.branch,
            KeyMethod::Cancel,
            &self.local.host_port(),
        );
        Some((key, Bytes::from(cancel.to_string())))
    }

    /// The ACK for a 300–699 to the INVITE (§17.1.1.3).
    pub fn ack_for_failure(&mut self, response: &Response) -> Bytes {
        self.state = LegState::Ended { ack: None };
        Bytes::from(builder::ack_for_failure(&self.invite, response).to_string())
    }

    /// Takes the peer's 2xx: builds the dialog (§12.1.2), reads the SDP answer and
    /// returns it with the ACK to send (a new transaction: new branch, §13.2.2.4).
    pub fn answered(
        &mut self,
        ids: &mut IdGenerator,
        response: &Response,
    ) -> Result<(Negotiated, Bytes), LegError> {
        let dialog = Dialog::new_uac(
            &self.invite,
            response,
            self.target.destination,
            self.target.transport.into(),
        )?;
        let negotiated = sdp::read_answer(&response.body, &[Codec::Pcmu, Codec::Pcma], 1)?;
        let ack = dialog.ack_for_2xx(self.cseq, &self.local, &ids.branch(), None);
        let ack = Bytes::from(ack.to_string());
        self.state = LegState::Confirmed {
            dialog: Box::new(dialog),
            ack: ack.clone(),
        };
        Ok((negotiated, ack))
    }

    /// The ACK again, for a retransmitted 2xx (our ACK was lost), even after our BYE.
    pub fn ack_again(&self) -> Option<Bytes> {
        match &self.state {
            LegState::Confirmed { ack, .. } => Some(ack.clone()),
            LegState::Ended { ack } => ack.clone(),
            _ => None,
        }
    }

    /// The BYE that ends a connected leg, with its transaction key.
    pub fn bye(&mut self, ids: &mut IdGenerator) -> Option<(TransactionKey, Bytes)> {
        let LegState::Confirmed { dialog, ack } = &mut self.state else {
            return None;
        };
        let branch = ids.branch();
        let bye = dialog.bye(&self.local, &branch);
        let ack = Some(ack.clone());
        self.state = LegState::Ended { ack };
        let key = TransactionKey::rfc3261(
            &branch,
            KeyMethod::from_name("BYE"),
            &self.local.host_port(),
        );
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
        let ack = self.ack_again();
        self.state = LegState::Ended { ack };
    }

    /// Our From tag.
    #[cfg(test)]
    pub fn local_tag(&self) -> String {
        self.invite
            .headers
            .iter()
            .find(|h| matches!(h, crate::sip::message::Header::From(_)))
            .and_then(|h| h.value().split(";tag=").nth(1).map(str::to_owned))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{self, SipMessage};

    fn leg() -> UacLeg {
        UacLeg::new(
            &mut IdGenerator::new(1),
            UacTarget {
                contact: Uri::try_from("sip:1001@127.0.0.1:5071").unwrap(),
                to: "sip:1001@127.0.0.1".into(),
                destination: "127.0.0.1:5071".parse().unwrap(),
                transport: TransportKind::Udp,
                headers: vec![("X-Hotline-Work-Order".into(), "WO-1".into())],
                login: Some(crate::config::callbacks::TrunkLogin {
                    username: "hotline".into(),
                    password: "trunk-secret".into(),
                }),
            },
            LocalContact {
                ip: "127.0.0.1".parse().unwrap(),
                port: 5060,
                transport: TransportKind::Udp,
            },
            sdp::offer(
                "127.0.0.1".parse().unwrap(),
                20002,
                &[Codec::Pcmu, Codec::Pcma],
                1,
            ),
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
            leg.local_tag(),
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
        assert!(text.contains("X-Hotline-Work-Order: WO-1\r\n"), "{text}");
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
        let (negotiated, ack) = leg
            .answered(&mut IdGenerator::new(2), &ok)
            .expect("usable 2xx");
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

        let (key, bye) = leg.bye(&mut IdGenerator::new(3)).expect("connected");
        let bye = request(&bye);
        let summary = message::summary(&bye).expect("valid BYE");
        assert_eq!(bye.method, Method::Bye);
        assert_eq!(summary.cseq, 2);
        assert_eq!(summary.to_tag.as_deref(), Some("phone-tag"));
        assert_eq!(summary.from_tag.as_deref(), Some(leg.local_tag().as_str()));
        assert_eq!(key.branch, summary.top_via_branch);
        assert!(leg.bye(&mut IdGenerator::new(4)).is_none(), "only once");
    }

    #[test]
    fn a_failure_is_acked_on_the_invite_branch() {
        let mut leg = leg();
        let busy = response(&format!(
            "SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={}\r\n\
             From: <sip:hotline@127.0.0.1:5060>;tag={}\r\nTo: <sip:1001@127.0.0.1>;tag=busy\r\n\
             Call-ID: {}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
            leg.invite_key.branch,
            leg.local_tag(),
            leg.call_id
        ));
        let ack = request(&leg.ack_for_failure(&busy));
        let summary = message::summary(&ack).expect("valid ACK");
        assert_eq!(summary.top_via_branch, leg.invite_key.branch);
        assert_eq!(summary.to_tag.as_deref(), Some("busy"));
        assert!(!leg.is_ringing());
    }

    fn challenge(leg: &UacLeg, status: u16, header: &str, value: &str) -> Response {
        response(&format!(
            "SIP/2.0 {status} Unauthorized\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={}\r\n\
             From: <sip:hotline@127.0.0.1:5060>;tag={}\r\nTo: <sip:1001@127.0.0.1>;tag=trunk\r\n\
             Call-ID: {}\r\nCSeq: {} INVITE\r\n{header}: {value}\r\nContent-Length: 0\r\n\r\n",
            leg.invite_key.branch,
            leg.local_tag(),
            leg.call_id,
            leg.cseq,
        ))
    }

    #[test]
    fn a_trunk_challenge_is_answered_once_in_the_same_dialog_rfc3261_22() {
        use crate::sip::digest::{Algorithm, AuthOutcome, Credential, DigestAuthenticator};
        let trunk = DigestAuthenticator::new(
            "trunk.example",
            [7; 32],
            std::time::Duration::from_secs(300),
        );
        let now = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let mut ids = IdGenerator::new(9);
        for (status, asks, answers) in [
            (401, "WWW-Authenticate", "Authorization"),
            (407, "Proxy-Authenticate", "Proxy-Authorization"),
        ] {
            let mut leg = leg();
            let first_branch = leg.invite_key.branch.clone();
            let denied = challenge(
                &leg,
                status,
                asks,
                &trunk.challenge(now, Algorithm::Md5, false),
            );
            leg.ack_for_failure(&denied);
            let (key, bytes) = leg
                .answer_challenge(&mut ids, status, &denied)
                .expect("credentials answer the challenge");
            let retry = request(&bytes);
            let summary = message::summary(&retry).expect("valid INVITE");
            assert_eq!(summary.call_id, leg.call_id, "same Call-ID");
            assert_eq!(summary.from_tag.as_deref(), Some(leg.local_tag().as_str()));
            assert_eq!(summary.cseq, 2);
            assert_ne!(summary.top_via_branch, first_branch);
            assert_eq!(key.branch, summary.top_via_branch);
            assert!(leg.is_ringing());
            let text = retry.to_string();
            assert!(text.contains("X-Hotline-Work-Order: WO-1"), "{text}");
            let authorization = retry
                .headers
                .iter()
                .find(|h| h.name().eq_ignore_ascii_case(answers))
                .map(|h| h.value().to_string());
            let outcome = trunk.verify(now, "INVITE", authorization.as_deref(), |user| {
                (user == "hotline").then(|| Credential::Password("trunk-secret".into()))
            });
            assert!(
                matches!(outcome, AuthOutcome::Authenticated { .. }),
                "{outcome:?}: {text}"
            );
            assert!(!text.contains("trunk-secret"));

            let again = challenge(
                &leg,
                status,
                asks,
                &trunk.challenge(now, Algorithm::Md5, false),
            );
            leg.ack_for_failure(&again);
            assert!(
                leg.answer_challenge(&mut ids, status, &again).is_none(),
                "a second challenge is a refusal"
            );
        }
        let mut plain = leg();
        plain.target.login = None;
        let denied = challenge(
            &plain,
            401,
            "WWW-Authenticate",
            &trunk.challenge(now, Algorithm::Md5, false),
        );
        plain.ack_for_failure(&denied);
        assert!(
            plain.answer_challenge(&mut ids, 401, &denied).is_none(),
            "no credentials"
        );
    }

    #[test]
    fn a_2xx_without_sdp_we_can_use_is_an_error_not_a_panic() {
        let mut leg = leg();
        let text = format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={}\r\n\
             From: <sip:hotline@127.0.0.1:5060>;tag={}\r\nTo: <sip:1001@127.0.0.1>;tag=t\r\n\
             Call-ID: {}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
            leg.invite_key.branch,
            leg.local_tag(),
            leg.call_id
        );
        assert!(
            leg.answered(&mut IdGenerator::new(5), &response(&text))
                .is_err()
        );
    }
}
