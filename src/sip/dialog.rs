//! SIP dialogs (RFC 3261 §12), both sides: the state a leg keeps between requests (tags,
//! route set, remote target, CSeq spaces), the §12.2.2 checks of the peer's in-dialog
//! requests, and the in-dialog requests we send (re-INVITE, UPDATE, BYE, the 2xx ACK),
//! all made by `sip::builder`.
//!
//! Pure: built from messages the engine already parsed; produces `Request` values and
//! never touches the network.

use std::net::SocketAddr;

use rsipstack::sip::{HeadersExt, Method, Param, Request, Response, Transport, Uri};

use super::builder::{LocalContact, RequestBuilder};
use super::message::{RequestSummary, make_header};

/// Errors of the dialog layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    /// A message a dialog is made of lacks what the dialog needs (a tag, a parsable
    /// From/To/CSeq).
    #[error("cannot make a dialog: {0}")]
    BadMessage(String),
}

/// Why an in-dialog request from the peer is refused (RFC 3261 §12.2.2), with the
/// answer the RFC gives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InDialogRefusal {
    /// The tags or Call-ID name no dialog of ours: `481`.
    #[error("no dialog matches the request's Call-ID and tags")]
    NoSuchDialog,
    /// The dialog has ended (BYE sent or received): `481`.
    #[error("the dialog is terminated")]
    Terminated,
    /// The CSeq is not above the last one the peer used: `500`.
    #[error("CSeq {received} is not above the last one, {last}")]
    CSeqOutOfOrder { received: u32, last: u32 },
}

impl InDialogRefusal {
    /// The status code of the answer (§12.2.2).
    pub fn status_code(&self) -> u16 {
        match self {
            InDialogRefusal::NoSuchDialog | InDialogRefusal::Terminated => 481,
            InDialogRefusal::CSeqOutOfOrder { .. } => 500,
        }
    }

    /// A reason for the answer; the standard phrase for 481, the cause for 500, to
    /// go in a `Warning: 399` (the message layer writes standard reason phrases).
    pub fn reason(&self) -> &'static str {
        match self {
            InDialogRefusal::NoSuchDialog | InDialogRefusal::Terminated => {
                "Call/Transaction Does Not Exist"
            }
            InDialogRefusal::CSeqOutOfOrder { .. } => "CSeq out of order",
        }
    }
}

/// Identifies a dialog from our side (§12): Call-ID, our tag, the peer's tag.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    /// `None` for an RFC 2543 peer that sent no From tag.
    pub remote_tag: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialogState {
    /// A provisional or the 2xx is out; the ACK has not arrived.
    Early,
    /// The ACK for the 2xx arrived.
    Confirmed,
    /// BYE sent or received, or the 2xx was never acknowledged.
    Terminated,
}

/// The parts of an inbound INVITE a UAS dialog is made of (§12.1.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UasInvite {
    pub call_id: String,
    /// The From URI: the peer's address of record.
    pub from_uri: Uri,
    /// The From tag, absent from RFC 2543 peers.
    pub from_tag: Option<String>,
    /// The To URI: our address of record as the caller dialled it.
    pub to_uri: Uri,
    /// The INVITE's CSeq number, the start of the peer's CSeq space.
    pub cseq: u32,
    /// The Contact URI: where in-dialog requests go.
    pub contact: Uri,
    /// The Record-Route URIs in the order they appeared, flattened across header
    /// fields and comma-separated values.
    pub record_route: Vec<Uri>,
    /// Where the INVITE came from.
    pub peer: SocketAddr,
    pub transport: Transport,
}

impl UasInvite {
    /// Reads the dialog's parts from an INVITE the transport already validated (its
    /// From, To and CSeq parse). A missing Contact, which RFC 3261 §8.1.1.8 requires
    /// but some trunks omit, falls back to the address the INVITE came from, so the
    /// engine can still end the call.
    pub fn from_request(
        request: &Request,
        call_id: &str,
        from_tag: Option<&str>,
        cseq: u32,
        peer: SocketAddr,
        transport: Transport,
    ) -> Result<UasInvite, rsipstack::sip::Error> {
        let from_uri = request.from_header()?.uri()?;
        let to_uri = request.to_header()?.uri()?;
        let contact = match request.typed_contact_headers()?.into_iter().next() {
            Some(contact) => contact.uri,
            None => Uri::try_from(format!("sip:{peer}"))?,
        };
        let record_route = request
            .typed_record_route_headers()?
            .into_iter()
            .map(|rr| rr.uri)
            .collect();
        Ok(UasInvite {
            call_id: call_id.to_owned(),
            from_uri,
            from_tag: from_tag.map(str::to_owned),
            to_uri,
            cseq,
            contact,
            record_route,
            peer,
            transport,
        })
    }
}

/// One dialog, from our side: the UAS that answered an INVITE ([`Dialog::new_uas`]) or
/// the UAC whose INVITE was answered ([`Dialog::new_uac`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dialog {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: Option<String>,
    pub local_uri: Uri,
    pub remote_uri: Uri,
    /// The peer's Contact; Request-URI of in-dialog requests (unless strict routing).
    pub remote_target: Uri,
    /// Record-Route of the INVITE in its order, which is the UAS's route set (§12.1.1).
    pub route_set: Vec<Uri>,
    /// The last CSeq we used; 0 until our first in-dialog request.
    pub local_cseq: u32,
    /// The last CSeq the peer used.
    pub remote_cseq: u32,
    pub state: DialogState,
    pub peer: SocketAddr,
    pub transport: Transport,
}

impl Dialog {
    /// The dialog created by answering `invite` with our `local_tag` in the To of the
    /// response. Starts [`DialogState::Early`].
    pub fn new_uas(invite: UasInvite, local_tag: &str) -> Self {
        Dialog {
            call_id: invite.call_id,
            local_tag: local_tag.to_owned(),
            remote_tag: invite.from_tag,
            local_uri: invite.to_uri,
            remote_uri: invite.from_uri,
            remote_target: invite.contact,
            route_set: invite.record_route,
            local_cseq: 0,
            remote_cseq: invite.cseq,
            state: DialogState::Early,
            peer: invite.peer,
            transport: invite.transport,
        }
    }

    /// The dialog our INVITE created when `ok` (its 2xx) arrived (§12.1.2): our From
    /// is the local side, the 2xx's To (with the peer's tag) the remote one, the route
    /// set is the 2xx's Record-Route reversed, the remote target its Contact (the
    /// INVITE's Request-URI if a careless peer sent none), and our CSeq space continues
    /// from the INVITE's. The remote CSeq stays empty (0) until the peer's first request.
    /// Starts [`DialogState::Confirmed`]: the 2xx confirms a UAC dialog.
    pub fn new_uac(
        invite: &Request,
        ok: &Response,
        peer: SocketAddr,
        transport: Transport,
    ) -> Result<Dialog, DialogError> {
        let bad =
            |what: &str, e: rsipstack::sip::Error| DialogError::BadMessage(format!("{what}: {e}"));
        let from = invite.from_header().map_err(|e| bad("INVITE From", e))?;
        let local_uri = from.uri().map_err(|e| bad("INVITE From", e))?;
        let local_tag = from
            .tag()
            .ok()
            .flatten()
            .map(|tag| tag.value().to_owned())
            .ok_or_else(|| DialogError::BadMessage("our INVITE has no From tag".into()))?;
        let to = ok.to_header().map_err(|e| bad("2xx To", e))?;
        let remote_uri = to.uri().map_err(|e| bad("2xx To", e))?;
        let remote_tag = to
            .tag()
            .ok()
            .flatten()
            .map(|tag| tag.value().to_owned())
            .ok_or_else(|| DialogError::BadMessage("2xx without a To tag".into()))?;
        let call_id = invite
            .call_id_header()
            .map_err(|e| bad("INVITE Call-ID", e))?
            .value()
            .trim()
            .to_owned();
        let local_cseq = invite
            .cseq_header()
            .map_err(|e| bad("INVITE CSeq", e))?
            .value()
            .split_whitespace()
            .next()
            .and_then(|number| number.parse::<u32>().ok())
            .ok_or_else(|| DialogError::BadMessage("our INVITE's CSeq has no number".into()))?;
        let remote_target = match ok.typed_contact_headers() {
            Ok(contacts) if !contacts.is_empty() => contacts[0].uri.clone(),
            _ => invite.uri.clone(),
        };
        let mut route_set: Vec<Uri> = ok
            .typed_record_route_headers()
            .map_err(|e| bad("2xx Record-Route", e))?
            .into_iter()
            .map(|rr| rr.uri)
            .collect();
        route_set.reverse();
        Ok(Dialog {
            call_id,
            local_tag,
            remote_tag: Some(remote_tag),
            local_uri,
            remote_uri,
            remote_target,
            route_set,
            local_cseq,
            remote_cseq: 0,
            state: DialogState::Confirmed,
            peer,
            transport,
        })
    }

    pub fn id(&self) -> DialogId {
        DialogId {
            call_id: self.call_id.clone(),
            local_tag: self.local_tag.clone(),
            remote_tag: self.remote_tag.clone(),
        }
    }

    /// The ACK for our 2xx arrived.
    pub fn confirm(&mut self) {
        if self.state == DialogState::Early {
            self.state = DialogState::Confirmed;
        }
    }

    pub fn terminate(&mut self) {
        self.state = DialogState::Terminated;
    }

    /// The BYE that ends this dialog, leaving by `local` on a fresh `branch`; the dialog
    /// is terminated from then on (§15.1.1).
    pub fn bye(&mut self, local: &LocalContact, branch: &str) -> Request {
        let bye = self.build_request(Method::Bye, local, branch, None);
        self.state = DialogState::Terminated;
        bye
    }

    /// An in-dialog request (§12.2.1.1): re-INVITE, UPDATE, BYE, INFO… with the next
    /// local CSeq. Its Request-URI and Route follow the route set: loose routing when the
    /// first hop has `lr`, strict routing (first hop as Request-URI, remote target last)
    /// otherwise. Target-refresh requests (INVITE, UPDATE) carry our Contact (§14.1,
    /// RFC 3311 §5.1), which keeps `local`'s transport.
    pub fn build_request(
        &mut self,
        method: Method,
        local: &LocalContact,
        branch: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Request {
        let contact = matches!(method, Method::Invite | Method::Update)
            .then(|| local.contact_header(&self.local_user()));
        self.in_dialog(method, local.via(branch), contact, body)
    }

    /// The ACK for a 2xx to our INVITE (§13.2.2.4): a transaction of its own (fresh
    /// `branch`), the INVITE's CSeq number, the route set, and for a late offer the SDP
    /// answer as `body` (§13.2.1). Does not consume a local CSeq.
    pub fn ack_for_2xx(
        &self,
        invite_cseq: u32,
        local: &LocalContact,
        branch: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Request {
        let (request_uri, routes) = self.request_uri_and_routes();
        let mut builder = self
            .builder(Method::Ack, request_uri, &routes)
            .via(local, branch)
            .cseq(invite_cseq);
        if let Some((content_type, bytes)) = body {
            builder = builder.body(content_type, bytes);
        }
        builder.build()
    }

    /// A re-INVITE or UPDATE from the peer refreshed its target (§12.2.2): in-dialog
    /// requests go to its new Contact from now on.
    pub fn refresh_target(&mut self, contact: Uri) {
        self.remote_target = contact;
    }

    /// Checks an in-dialog request from the peer against this dialog (§12.2.2) and, when
    /// it is acceptable, records its CSeq. The To tag must be ours and the From tag the
    /// peer's, else `481`; a terminated dialog takes nothing more (`481`); the CSeq must
    /// be above the last one seen, else `500` — except for ACK and CANCEL, which reuse
    /// their INVITE's number. A UAC dialog has no remote CSeq until the peer's first
    /// request (§12.1.2), so that one is accepted whatever its number.
    pub fn check_request(&mut self, request: &RequestSummary) -> Result<(), InDialogRefusal> {
        if request.call_id != self.call_id
            || request.to_tag.as_deref() != Some(self.local_tag.as_str())
            || request.from_tag != self.remote_tag
        {
            return Err(InDialogRefusal::NoSuchDialog);
        }
        if self.state == DialogState::Terminated {
            return Err(InDialogRefusal::Terminated);
        }
        if matches!(request.method, Method::Ack | Method::Cancel) {
            return Ok(());
        }
        if self.remote_cseq != 0 && request.cseq <= self.remote_cseq {
            return Err(InDialogRefusal::CSeqOutOfOrder {
                received: request.cseq,
                last: self.remote_cseq,
            });
        }
        self.remote_cseq = request.cseq;
        Ok(())
    }

    /// The user part of our URI, for our Contact; `hotline` when it has none.
    fn local_user(&self) -> String {
        self.local_uri
            .auth
            .as_ref()
            .map_or_else(|| "hotline".to_owned(), |auth| auth.user.clone())
    }

    fn builder(&self, method: Method, request_uri: Uri, routes: &[Uri]) -> RequestBuilder {
        RequestBuilder::new(method, request_uri)
            .route_set(routes)
            .from(&self.local_uri, None, &self.local_tag)
            .to(&self.remote_uri, self.remote_tag.as_deref())
            .call_id(self.call_id.clone())
    }

    fn in_dialog(
        &mut self,
        method: Method,
        via_value: String,
        contact: Option<String>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Request {
        self.local_cseq = self.local_cseq.saturating_add(1);
        let (request_uri, routes) = self.request_uri_and_routes();
        let mut builder = self
            .builder(method, request_uri, &routes)
            .via_value(via_value)
            .cseq(self.local_cseq);
        if let Some(contact) = contact {
            builder = builder.header(make_header("Contact", contact));
        }
        if let Some((content_type, bytes)) = body {
            builder = builder.body(content_type, bytes);
        }
        builder.build()
    }

    fn request_uri_and_routes(&self) -> (Uri, Vec<Uri>) {
        match self.route_set.split_first() {
            Some((first, rest)) if !is_loose_router(first) => {
                let mut routes = rest.to_vec();
                routes.push(self.remote_target.clone());
                (first.clone(), routes)
            }
            _ => (self.remote_target.clone(), self.route_set.clone()),
        }
    }
}

fn is_loose_router(uri: &Uri) -> bool {
    uri.params.iter().any(|param| match param {
        Param::Lr => true,
        Param::Other(name, _) => name.value().eq_ignore_ascii_case("lr"),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::TransportKind;
    use crate::sip::builder::{IdGenerator, ResponseBuilder};
    use crate::sip::message::{self, Header, RequestSummary};
    use rsipstack::sip::SipMessage;
    use rsipstack::sip::prelude::*;

    fn uri(text: &str) -> Uri {
        Uri::try_from(text).expect("test URI")
    }

    fn invite(record_route: &[&str]) -> UasInvite {
        UasInvite {
            call_id: "a84b4c76e66710@pc33.example.com".into(),
            from_uri: uri("sip:13800138000@trunk.example.com"),
            from_tag: Some("1928301774".into()),
            to_uri: uri("sip:8890@hotline.example.gov.cn"),
            cseq: 314159,
            contact: uri("sip:13800138000@192.0.2.4:5070;transport=udp"),
            record_route: record_route.iter().map(|text| uri(text)).collect(),
            peer: "192.0.2.4:5070".parse().expect("test address"),
            transport: Transport::Udp,
        }
    }

    const LOCAL_UDP: LocalContact = LocalContact {
        ip: std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 1)),
        port: 5060,
        transport: TransportKind::Udp,
    };
    const LOCAL_TCP: LocalContact = LocalContact {
        ip: std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 1)),
        port: 5060,
        transport: TransportKind::Tcp,
    };

    fn reparse(request: &Request) -> Request {
        let bytes = bytes::Bytes::from(request.to_bytes());
        match SipMessage::try_from(bytes).expect("the BYE parses") {
            SipMessage::Request(parsed) => parsed,
            SipMessage::Response(_) => panic!("a BYE parsed as a response"),
        }
    }

    #[test]
    fn r29_bye_targets_the_remote_contact_with_tags_swapped() {
        let mut dialog = Dialog::new_uas(invite(&[]), "hotline-tag");
        dialog.confirm();
        let bye = reparse(&dialog.bye(&LOCAL_UDP, "z9hG4bK-bye-1"));

        assert_eq!(bye.method, Method::Bye);
        assert_eq!(bye.uri, uri("sip:13800138000@192.0.2.4:5070;transport=udp"));
        let from = bye
            .from_header()
            .expect("From")
            .typed()
            .expect("typed From");
        assert_eq!(from.uri.to_string(), "sip:8890@hotline.example.gov.cn");
        assert_eq!(
            from.tag().map(|tag| tag.value().to_owned()),
            Some("hotline-tag".into())
        );
        let to = bye.to_header().expect("To").typed().expect("typed To");
        assert_eq!(to.uri.to_string(), "sip:13800138000@trunk.example.com");
        assert_eq!(
            to.tag().map(|tag| tag.value().to_owned()),
            Some("1928301774".into())
        );
        assert_eq!(
            bye.call_id_header().expect("Call-ID").value(),
            "a84b4c76e66710@pc33.example.com"
        );
        assert_eq!(
            bye.max_forwards_header().expect("Max-Forwards").value(),
            "70"
        );
        let via = bye.via_header().expect("Via").typed().expect("typed Via");
        assert_eq!(via.uri.to_string(), "sip:198.51.100.1:5060");
        assert!(via.params.contains(&Param::Branch("z9hG4bK-bye-1".into())));
        assert!(bye.body.is_empty());
        assert!(bye.headers.iter().any(
            |header| matches!(header, Header::ContentLength(length) if length.value() == "0")
        ));
        assert!(
            !bye.headers
                .iter()
                .any(|header| matches!(header, Header::Route(_)))
        );
        assert_eq!(dialog.state, DialogState::Terminated);
    }

    #[test]
    fn r29_bye_carries_the_record_route_in_order_as_route() {
        let mut dialog = Dialog::new_uas(
            invite(&["sip:p1.example.com;lr", "sip:p2.example.com;lr"]),
            "hotline-tag",
        );
        let bye = reparse(&dialog.bye(&LOCAL_UDP, "z9hG4bK-bye-1"));
        assert_eq!(bye.uri, uri("sip:13800138000@192.0.2.4:5070;transport=udp"));
        let routes: Vec<String> = bye
            .headers
            .iter()
            .filter_map(|header| match header {
                Header::Route(route) => Some(route.value().to_owned()),
                _ => None,
            })
            .collect();
        assert_eq!(
            routes,
            ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
        );
    }

    #[test]
    fn r29_strict_router_becomes_the_request_uri() {
        let mut dialog = Dialog::new_uas(
            invite(&["sip:strict.example.com", "sip:p2.example.com;lr"]),
            "t",
        );
        let bye = dialog.bye(&LOCAL_UDP, "z9hG4bK-bye-1");
        assert_eq!(bye.uri.to_string(), "sip:strict.example.com");
        let routes: Vec<&str> = bye
            .headers
            .iter()
            .filter_map(|header| match header {
                Header::Route(route) => Some(route.value()),
                _ => None,
            })
            .collect();
        let remote_target = format!("<{}>", dialog.remote_target);
        assert_eq!(routes, ["<sip:p2.example.com;lr>", remote_target.as_str()]);
    }

    #[test]
    fn r29_local_cseq_increments_per_request() {
        let mut dialog = Dialog::new_uas(invite(&[]), "t");
        let cseq_of = |request: &Request| {
            let cseq = request
                .cseq_header()
                .expect("CSeq")
                .typed()
                .expect("typed CSeq");
            (cseq.seq, cseq.method)
        };
        let reinvite =
            reparse(&dialog.build_request(Method::Invite, &LOCAL_UDP, "z9hG4bK-re", None));
        assert_eq!(cseq_of(&reinvite), (1, Method::Invite));
        let bye = reparse(&dialog.bye(&LOCAL_UDP, "z9hG4bK-bye-1"));
        assert_eq!(cseq_of(&bye), (2, Method::Bye));
        assert_eq!(dialog.local_cseq, 2);
        assert_eq!(
            dialog.remote_cseq, 314159,
            "the peer's CSeq space is separate"
        );
    }

    #[test]
    fn r29_rfc2543_peer_without_from_tag_gets_a_to_without_tag() {
        let mut parts = invite(&[]);
        parts.from_tag = None;
        let mut dialog = Dialog::new_uas(parts, "t");
        assert_eq!(dialog.id().remote_tag, None);
        let bye = reparse(&dialog.bye(&LOCAL_UDP, "z9hG4bK-bye-1"));
        let to = bye.to_header().expect("To").typed().expect("typed To");
        assert_eq!(to.tag(), None);
    }

    #[test]
    fn r29_dialog_id_and_states() {
        let mut dialog = Dialog::new_uas(invite(&[]), "hotline-tag");
        assert_eq!(
            dialog.id(),
            DialogId {
                call_id: "a84b4c76e66710@pc33.example.com".into(),
                local_tag: "hotline-tag".into(),
                remote_tag: Some("1928301774".into()),
            }
        );
        assert_eq!(dialog.state, DialogState::Early);
        dialog.confirm();
        assert_eq!(dialog.state, DialogState::Confirmed);
        dialog.terminate();
        dialog.confirm();
        assert_eq!(
            dialog.state,
            DialogState::Terminated,
            "a late ACK does not revive it"
        );
    }

    fn parse_request(text: &str) -> Request {
        match message::parse(text.as_bytes()) {
            Ok(SipMessage::Request(request)) => request,
            other => panic!("{other:?}"),
        }
    }

    fn summarise(request: &Request) -> RequestSummary {
        let bytes = request.to_bytes();
        match message::parse(&bytes) {
            Ok(SipMessage::Request(parsed)) => message::summary(&parsed)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes))),
            other => panic!("{other:?}"),
        }
    }

    fn values(request: &Request, name: &str) -> Vec<String> {
        request
            .headers
            .iter()
            .filter(|h| h.name().eq_ignore_ascii_case(name))
            .map(|h| h.value().to_string())
            .collect()
    }

    /// Our INVITE to an agent and the agent's 2xx through two record-routing proxies.
    fn uac_dialog(transport: TransportKind) -> (Request, Dialog) {
        let local = LocalContact {
            transport,
            ..LOCAL_UDP
        };
        let mut ids = IdGenerator::new(9);
        let invite = RequestBuilder::new(Method::Invite, uri("sip:1001@192.0.2.50:5071"))
            .via(&local, &ids.branch())
            .from(
                &uri("sip:hotline@198.51.100.1"),
                Some("139****0001"),
                "our-tag",
            )
            .to(&uri("sip:1001@198.51.100.1"), None)
            .call_id("leg-1@198.51.100.1")
            .cseq(17)
            .contact(&local, "hotline")
            .build();
        let ok = ResponseBuilder::to(&invite, 200)
            .to_tag("phone-tag")
            .header(make_header(
                "Record-Route",
                "<sip:p2.example.com;lr>, <sip:p1.example.com;lr>".into(),
            ))
            .header(make_header(
                "Contact",
                "<sip:1001@192.0.2.50:5071;transport=tcp>".into(),
            ))
            .build();
        let ok = match message::parse(&ok.to_bytes()) {
            Ok(SipMessage::Response(ok)) => ok,
            other => panic!("{other:?}"),
        };
        let dialog = Dialog::new_uac(
            &invite,
            &ok,
            "192.0.2.50:5071".parse().expect("addr"),
            transport.into(),
        )
        .expect("a usable 2xx");
        (invite, dialog)
    }

    #[test]
    fn uac_dialog_from_our_invite_and_the_2xx_rfc3261_12_1_2() {
        let (_, dialog) = uac_dialog(TransportKind::Tcp);
        assert_eq!(dialog.call_id, "leg-1@198.51.100.1");
        assert_eq!(dialog.local_tag, "our-tag");
        assert_eq!(dialog.remote_tag.as_deref(), Some("phone-tag"));
        assert_eq!(dialog.local_uri, uri("sip:hotline@198.51.100.1"));
        assert_eq!(dialog.remote_uri, uri("sip:1001@198.51.100.1"));
        assert_eq!(
            dialog.remote_target,
            uri("sip:1001@192.0.2.50:5071;transport=tcp")
        );
        // The 2xx's Record-Route, reversed.
        assert_eq!(
            dialog.route_set,
            [uri("sip:p1.example.com;lr"), uri("sip:p2.example.com;lr")]
        );
        assert_eq!((dialog.local_cseq, dialog.remote_cseq), (17, 0));
        assert_eq!(dialog.state, DialogState::Confirmed);
    }

    #[test]
    fn uac_dialog_needs_the_peers_tag() {
        let mut ids = IdGenerator::new(1);
        let invite = RequestBuilder::new(Method::Invite, uri("sip:1001@192.0.2.50"))
            .via(&LOCAL_UDP, &ids.branch())
            .from(&uri("sip:hotline@198.51.100.1"), None, "t")
            .to(&uri("sip:1001@198.51.100.1"), None)
            .call_id("c@h")
            .cseq(1)
            .build();
        let tagless = ResponseBuilder::to(&invite, 200).build();
        assert!(matches!(
            Dialog::new_uac(
                &invite,
                &tagless,
                "192.0.2.50:5060".parse().expect("a"),
                Transport::Udp
            ),
            Err(DialogError::BadMessage(_))
        ));
    }

    #[test]
    fn ack_for_2xx_is_a_new_transaction_with_the_route_set_rfc3261_13_2_2_4() {
        let (invite, dialog) = uac_dialog(TransportKind::Tcp);
        let invite_summary = summarise(&invite);
        let ack = dialog.ack_for_2xx(
            17,
            &LOCAL_TCP,
            "z9hG4bK-ack",
            Some(("application/sdp", b"v=0\r\n".to_vec())),
        );
        let s = summarise(&ack);
        assert_eq!(ack.method, Method::Ack);
        assert_eq!((s.cseq, s.cseq_method), (17, Method::Ack));
        assert_ne!(s.top_via_branch, invite_summary.top_via_branch);
        assert_eq!(s.top_via_branch, "z9hG4bK-ack");
        assert_eq!(s.to_tag.as_deref(), Some("phone-tag"));
        assert_eq!(s.from_tag.as_deref(), Some("our-tag"));
        assert_eq!(ack.uri, uri("sip:1001@192.0.2.50:5071;transport=tcp"));
        assert_eq!(
            values(&ack, "Route"),
            ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
        );
        assert!(values(&ack, "Via")[0].starts_with("SIP/2.0/TCP "));
        assert_eq!(
            ack.body, b"v=0\r\n",
            "a late offer's answer rides in the ACK (§13.2.1)"
        );
        assert_eq!(dialog.local_cseq, 17, "an ACK takes no CSeq of its own");
    }

    #[test]
    fn uac_reinvite_and_bye_continue_the_invites_cseq_rfc3261_12_2_1_1() {
        let (_, mut dialog) = uac_dialog(TransportKind::Tcp);
        let reinvite = dialog.build_request(
            Method::Invite,
            &LOCAL_TCP,
            "z9hG4bK-re",
            Some(("application/sdp", b"v=0\r\n".to_vec())),
        );
        let s = summarise(&reinvite);
        assert_eq!((s.cseq, s.cseq_method), (18, Method::Invite));
        assert_eq!(
            s.contact.as_deref().map(str::to_ascii_lowercase).as_deref(),
            Some("sip:hotline@198.51.100.1:5060;transport=tcp"),
            "a target refresh carries our Contact with its transport"
        );
        assert_eq!(values(&reinvite, "Content-Type"), ["application/sdp"]);
        let update = dialog.build_request(Method::Update, &LOCAL_TCP, "z9hG4bK-up", None);
        assert_eq!(summarise(&update).cseq, 19);
        assert!(summarise(&update).contact.is_some());
        let info = dialog.build_request(Method::Info, &LOCAL_TCP, "z9hG4bK-in", None);
        assert_eq!(summarise(&info).contact, None);
        let bye = dialog.bye(&LOCAL_TCP, "z9hG4bK-bye");
        let s = summarise(&bye);
        assert_eq!((s.cseq, s.cseq_method), (21, Method::Bye));
        assert_eq!(s.contact, None);
        assert_eq!(
            values(&bye, "Route"),
            ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
        );
        assert_eq!(dialog.state, DialogState::Terminated);
    }

    #[test]
    fn uas_strict_route_set_through_the_builder_rfc3261_12_2_1_1() {
        let mut dialog = Dialog::new_uas(
            invite(&["sip:strict.example.com", "sip:p2.example.com;lr"]),
            "t",
        );
        dialog.confirm();
        let update = dialog.build_request(Method::Update, &LOCAL_UDP, "z9hG4bK-u", None);
        assert_eq!(update.uri, uri("sip:strict.example.com"));
        assert_eq!(
            values(&update, "Route"),
            [
                "<sip:p2.example.com;lr>".to_string(),
                format!("<{}>", dialog.remote_target)
            ]
        );
        let s = summarise(&update);
        assert_eq!(s.from_tag.as_deref(), Some("t"));
        assert_eq!(s.to_tag.as_deref(), Some("1928301774"));
    }

    const PEER_REINVITE: &str = "INVITE sip:hotline@198.51.100.1:5060 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.4:5070;branch=z9hG4bKre1;rport\r\n\
        Max-Forwards: 70\r\n\
        From: <sip:13800138000@trunk.example.com>;tag=1928301774\r\n\
        To: <sip:8890@hotline.example.gov.cn>;tag=hotline-tag\r\n\
        Call-ID: a84b4c76e66710@pc33.example.com\r\n\
        CSeq: 314160 INVITE\r\n\
        Contact: <sip:13800138000@192.0.2.4:5070>\r\n\
        Content-Length: 0\r\n\r\n";

    fn peer_request(edit: impl Fn(String) -> String) -> RequestSummary {
        message::summary(&parse_request(&edit(PEER_REINVITE.to_string()))).expect("summary")
    }

    #[test]
    fn uas_accepts_an_in_dialog_request_and_records_its_cseq_rfc3261_12_2_2() {
        let mut dialog = Dialog::new_uas(invite(&[]), "hotline-tag");
        dialog.confirm();
        assert_eq!(dialog.check_request(&peer_request(|t| t)), Ok(()));
        assert_eq!(dialog.remote_cseq, 314160);
        // The same CSeq again is a new request out of order: 500.
        let refusal = dialog
            .check_request(&peer_request(|t| t))
            .expect_err("repeat");
        assert_eq!(
            refusal,
            InDialogRefusal::CSeqOutOfOrder {
                received: 314160,
                last: 314160
            }
        );
        assert_eq!(refusal.status_code(), 500);
        assert_eq!(refusal.reason(), "CSeq out of order");
        // A lower one too.
        let lower = peer_request(|t| t.replace("314160 INVITE", "3 INVITE"));
        assert_eq!(
            dialog.check_request(&lower).map_err(|r| r.status_code()),
            Err(500)
        );
        // ACK and CANCEL reuse their INVITE's number and are not checked.
        let ack = peer_request(|t| {
            t.replace("INVITE sip", "ACK sip")
                .replace("314160 INVITE", "314160 ACK")
        });
        assert_eq!(dialog.check_request(&ack), Ok(()));
        let bye = peer_request(|t| {
            t.replace("INVITE sip", "BYE sip")
                .replace("314160 INVITE", "314161 BYE")
        });
        assert_eq!(dialog.check_request(&bye), Ok(()));
    }

    #[test]
    fn wrong_tags_or_call_id_are_481_rfc3261_12_2_2() {
        let mut dialog = Dialog::new_uas(invite(&[]), "hotline-tag");
        dialog.confirm();
        for edit in [
            |t: String| t.replace(";tag=hotline-tag", ";tag=someone-else"),
            |t: String| t.replace(";tag=1928301774", ";tag=intruder"),
            |t: String| t.replace("Call-ID: a84b", "Call-ID: ffff"),
            |t: String| t.replace(";tag=hotline-tag", ""),
        ] {
            let refusal = dialog
                .check_request(&peer_request(edit))
                .expect_err("refused");
            assert_eq!(refusal, InDialogRefusal::NoSuchDialog);
            assert_eq!(refusal.status_code(), 481);
            assert_eq!(refusal.reason(), "Call/Transaction Does Not Exist");
        }
        assert_eq!(
            dialog.remote_cseq, 314159,
            "a refused request changes nothing"
        );
    }

    #[test]
    fn a_terminated_dialog_answers_481() {
        let mut dialog = Dialog::new_uas(invite(&[]), "hotline-tag");
        dialog.terminate();
        let refusal = dialog
            .check_request(&peer_request(|t| t))
            .expect_err("over");
        assert_eq!(refusal, InDialogRefusal::Terminated);
        assert_eq!(refusal.status_code(), 481);
    }

    #[test]
    fn uac_dialog_takes_any_first_cseq_from_the_peer_then_checks_order() {
        let (_, mut dialog) = uac_dialog(TransportKind::Udp);
        let bye_from_phone = |cseq: u32| {
            let text = format!(
                "BYE sip:hotline@198.51.100.1:5060 SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 192.0.2.50:5071;branch=z9hG4bKp{cseq}\r\n\
                 From: <sip:1001@198.51.100.1>;tag=phone-tag\r\n\
                 To: <sip:hotline@198.51.100.1>;tag=our-tag\r\n\
                 Call-ID: leg-1@198.51.100.1\r\nCSeq: {cseq} BYE\r\nContent-Length: 0\r\n\r\n"
            );
            message::summary(&parse_request(&text)).expect("summary")
        };
        assert_eq!(dialog.check_request(&bye_from_phone(3)), Ok(()));
        assert_eq!(
            dialog
                .check_request(&bye_from_phone(2))
                .map_err(|r| r.status_code()),
            Err(500)
        );
    }

    #[test]
    fn behind_a_record_routing_proxy_both_sides_route_through_it_rfc3261_12_1() {
        // The caller's INVITE reached us through two record-routing proxies; the caller's
        // side of the dialog is built from our 2xx, which must carry the Record-Route.
        let invite_text = "INVITE sip:8890@198.51.100.1 SIP/2.0\r\n\
            Via: SIP/2.0/UDP 192.0.2.30;branch=z9hG4bKp2\r\n\
            Via: SIP/2.0/UDP 192.0.2.20;branch=z9hG4bKp1\r\n\
            Via: SIP/2.0/UDP 192.0.2.4:5070;branch=z9hG4bKcaller\r\n\
            Record-Route: <sip:192.0.2.30;lr>\r\n\
            Record-Route: <sip:192.0.2.20;lr>\r\n\
            Max-Forwards: 68\r\n\
            From: <sip:13800138000@trunk.example.com>;tag=caller-tag\r\n\
            To: <sip:8890@hotline.example.gov.cn>\r\n\
            Call-ID: rr@trunk.example.com\r\nCSeq: 1 INVITE\r\n\
            Contact: <sip:13800138000@192.0.2.4:5070>\r\nContent-Length: 0\r\n\r\n";
        let invite = parse_request(invite_text);
        let ok = ResponseBuilder::to(&invite, 200)
            .to_tag("hotline-tag")
            .contact(&LOCAL_UDP, "hotline")
            .build();
        let ok = match message::parse(&ok.to_bytes()) {
            Ok(SipMessage::Response(ok)) => ok,
            other => panic!("{other:?}"),
        };
        // Our side (UAS): the route set is the Record-Route in order.
        let parts = UasInvite::from_request(
            &invite,
            "rr@trunk.example.com",
            Some("caller-tag"),
            1,
            "192.0.2.30:5060".parse().expect("addr"),
            Transport::Udp,
        )
        .expect("parts");
        let mut ours = Dialog::new_uas(parts, "hotline-tag");
        ours.confirm();
        let our_bye = ours.clone().bye(&LOCAL_UDP, "z9hG4bK-ours");
        assert_eq!(
            values(&our_bye, "Route"),
            ["<sip:192.0.2.30;lr>", "<sip:192.0.2.20;lr>"]
        );
        assert_eq!(our_bye.uri, uri("sip:13800138000@192.0.2.4:5070"));
        // The caller's side (UAC): the 2xx's Record-Route reversed, our Contact as target.
        let mut caller = Dialog::new_uac(
            &invite,
            &ok,
            "192.0.2.20:5060".parse().expect("addr"),
            Transport::Udp,
        )
        .expect("caller's dialog");
        let caller_bye = caller.bye(&LOCAL_UDP, "z9hG4bK-caller-bye");
        assert_eq!(
            values(&caller_bye, "Route"),
            ["<sip:192.0.2.20;lr>", "<sip:192.0.2.30;lr>"]
        );
        assert_eq!(caller_bye.uri, uri("sip:hotline@198.51.100.1:5060"));
        // And our dialog accepts the caller's BYE (§12.2.2).
        let s = summarise(&caller_bye);
        assert_eq!(ours.check_request(&s), Ok(()));
    }

    #[test]
    fn a_target_refresh_moves_the_remote_target() {
        let mut dialog = Dialog::new_uas(invite(&[]), "t");
        dialog.refresh_target(uri("sip:13800138000@192.0.2.99:5070"));
        let bye = dialog.bye(&LOCAL_UDP, "z9hG4bK-b");
        assert_eq!(bye.uri, uri("sip:13800138000@192.0.2.99:5070"));
    }
}
