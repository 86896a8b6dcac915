//! SIP dialogs (RFC 3261 §12), UAS side: the state a call leg keeps between requests
//! (tags, route set, remote target, CSeq spaces) and the in-dialog requests built from
//! it, such as the BYE that ends a call.
//!
//! Pure: built from the parts of the INVITE the engine already parsed; produces
//! `rsipstack::sip::Request` values and never touches the network.

use std::net::SocketAddr;

use rsipstack::sip::{
    CSeq, CallId, ContentLength, From, Header, Headers, MaxForwards, Method, Param, Request, Route,
    To, Transport, Uri, Version, Via,
};

/// Errors of the dialog layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    /// An in-dialog request whose CSeq is not above the last one seen (§12.2.2): the
    /// engine answers it 500.
    #[error("in-dialog CSeq {received} is not above the last one, {last}")]
    CSeqOutOfOrder { received: u32, last: u32 },
    /// The dialog is over; it takes no more requests.
    #[error("the dialog is terminated")]
    Terminated,
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
        use rsipstack::sip::HeadersExt;
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

/// Where and how an in-dialog request leaves: our Via for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViaParams<'a> {
    pub host: &'a str,
    pub port: u16,
    pub transport: Transport,
    /// A fresh `z9hG4bK…` branch; it becomes the client transaction's key.
    pub branch: &'a str,
}

/// One dialog, as the UAS that answered the INVITE sees it.
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

    /// Accepts the CSeq of a new in-dialog request from the peer (§12.2.2). Not for ACK
    /// or CANCEL, which reuse their INVITE's number.
    pub fn check_remote_cseq(&mut self, cseq: u32) -> Result<(), DialogError> {
        if self.state == DialogState::Terminated {
            return Err(DialogError::Terminated);
        }
        if cseq <= self.remote_cseq {
            return Err(DialogError::CSeqOutOfOrder {
                received: cseq,
                last: self.remote_cseq,
            });
        }
        self.remote_cseq = cseq;
        Ok(())
    }

    /// The BYE that ends this dialog; the dialog is terminated from then on (§15.1.1).
    pub fn build_bye(&mut self, via: &ViaParams<'_>) -> Request {
        let bye = self.build_request(Method::Bye, via);
        self.state = DialogState::Terminated;
        bye
    }

    /// An in-dialog request (§12.2.1.1) with the next local CSeq and no body. Its
    /// Request-URI and Route follow the route set: loose routing when the first hop
    /// has `lr`, strict routing (first hop as Request-URI, remote target last) otherwise.
    pub fn build_request(&mut self, method: Method, via: &ViaParams<'_>) -> Request {
        self.local_cseq = self.local_cseq.saturating_add(1);
        let (request_uri, routes) = self.request_uri_and_routes();

        let mut headers = Headers::default();
        headers.push(
            Via::new(format!(
                "SIP/2.0/{} {}:{};branch={};rport",
                via.transport, via.host, via.port, via.branch
            ))
            .into(),
        );
        headers.push(MaxForwards::new("70").into());
        for route in routes {
            headers.push(Route::new(format!("<{route}>")).into());
        }
        headers.push(From::new(format!("<{}>;tag={}", self.local_uri, self.local_tag)).into());
        let to = match &self.remote_tag {
            Some(tag) => format!("<{}>;tag={tag}", self.remote_uri),
            None => format!("<{}>", self.remote_uri),
        };
        headers.push(To::new(to).into());
        headers.push(CallId::new(self.call_id.clone()).into());
        headers.push(Header::CSeq(CSeq::new(format!(
            "{} {method}",
            self.local_cseq
        ))));
        headers.push(ContentLength::new("0").into());

        Request {
            method,
            uri: request_uri,
            version: Version::V2,
            headers,
            body: Vec::new(),
        }
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

    fn our_via() -> ViaParams<'static> {
        ViaParams {
            host: "198.51.100.1",
            port: 5060,
            transport: Transport::Udp,
            branch: "z9hG4bK-bye-1",
        }
    }

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
        let bye = reparse(&dialog.build_bye(&our_via()));

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
        let bye = reparse(&dialog.build_bye(&our_via()));
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
        let bye = dialog.build_bye(&our_via());
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
        let reinvite = reparse(&dialog.build_request(Method::Invite, &our_via()));
        assert_eq!(cseq_of(&reinvite), (1, Method::Invite));
        let bye = reparse(&dialog.build_bye(&our_via()));
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
        let bye = reparse(&dialog.build_bye(&our_via()));
        let to = bye.to_header().expect("To").typed().expect("typed To");
        assert_eq!(to.tag(), None);
    }

    #[test]
    fn r29_in_dialog_requests_need_increasing_cseq() {
        let mut dialog = Dialog::new_uas(invite(&[]), "t");
        assert_eq!(
            dialog.check_remote_cseq(314159),
            Err(DialogError::CSeqOutOfOrder {
                received: 314159,
                last: 314159
            })
        );
        assert_eq!(dialog.check_remote_cseq(314160), Ok(()));
        assert_eq!(
            dialog.check_remote_cseq(314160),
            Err(DialogError::CSeqOutOfOrder {
                received: 314160,
                last: 314160
            })
        );
        assert_eq!(dialog.check_remote_cseq(400000), Ok(()), "gaps are allowed");
        dialog.terminate();
        assert_eq!(
            dialog.check_remote_cseq(400001),
            Err(DialogError::Terminated)
        );
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
}
