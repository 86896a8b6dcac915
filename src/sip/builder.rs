//! The one place SIP messages the engine sends are made (RFC 3261 §8.1.1, §8.2.6): a
//! typed [`RequestBuilder`] and [`ResponseBuilder`], the one Contact/Via builder
//! ([`LocalContact`], which keeps the transport), the messages derived from an INVITE
//! ([`cancel_for`] §9.1, [`ack_for_failure`] §17.1.1.3), the common extension headers,
//! and the seeded [`IdGenerator`] for tags, branches and Call-IDs.
//!
//! Pure and deterministic: nothing here draws randomness or reads a clock. Identifiers
//! are passed in, so a switch fed the same seed replays the same bytes. The 2xx ACK
//! (§13.2.2.4) is built from a dialog by `sip::dialog`, which uses this module.

use std::net::IpAddr;

use super::TransportKind;
use super::message::{
    Header, Headers, Method, Request, Response, StatusCode, Uri, Version, make_header,
};

/// Max-Forwards of every request we originate (RFC 3261 §8.1.1.6).
pub const MAX_FORWARDS: u32 = 70;
/// The RFC 3261 branch magic cookie (§8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";
/// The `Server` / `User-Agent` token of the engine.
pub const PRODUCT: &str = "hotline";

/// Our side of the signalling as a peer must reach it: the address and the transport a
/// message leaves by. Every Via and Contact the engine writes comes from here, so the
/// Contact of a TCP leg always says `;transport=tcp` (RFC 3261 §18.1.1: a UDP default
/// would send the peer's in-dialog requests to a port nobody reads).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LocalContact {
    pub ip: IpAddr,
    pub port: u16,
    pub transport: TransportKind,
}

impl LocalContact {
    /// `ip:port`, IPv6 in brackets (RFC 3261 §25.1 `hostport`).
    pub fn host_port(&self) -> String {
        match self.ip {
            IpAddr::V4(ip) => format!("{ip}:{}", self.port),
            IpAddr::V6(ip) => format!("[{ip}]:{}", self.port),
        }
    }

    /// `sip:user@ip:port`, with `;transport=tcp` for TCP (none for UDP, the default).
    pub fn uri(&self, user: &str) -> String {
        let transport = match self.transport {
            TransportKind::Udp => "",
            TransportKind::Tcp => ";transport=tcp",
        };
        format!("sip:{user}@{}{transport}", self.host_port())
    }

    /// [`Self::uri`] as a parsed [`Uri`]. `None` when `user` makes no valid URI.
    pub fn parsed_uri(&self, user: &str) -> Option<Uri> {
        Uri::try_from(self.uri(user).as_str()).ok()
    }

    /// The Contact value: `<sip:user@ip:port;transport=tcp>`.
    pub fn contact_header(&self, user: &str) -> String {
        format!("<{}>", self.uri(user))
    }

    /// Our Via value for a request leaving by this transport, asking for `rport`
    /// (RFC 3581 §3) so a NATed reply still finds us.
    pub fn via(&self, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            self.transport.via_token(),
            self.host_port()
        )
    }
}

/// A display name made safe for a quoted-string: quotes, backslashes and control
/// characters (CR/LF would inject headers) removed.
pub fn sanitise_display(display: &str) -> String {
    display
        .chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .collect()
}

fn name_addr(uri: &str, display: Option<&str>, tag: Option<&str>) -> String {
    let mut value = match display.map(sanitise_display) {
        Some(display) if !display.trim().is_empty() => format!("\"{}\" <{uri}>", display.trim()),
        _ => format!("<{uri}>"),
    };
    if let Some(tag) = tag {
        value.push_str(";tag=");
        value.push_str(tag);
    }
    value
}

/// Builds one request. Set Via, From, To, Call-ID and CSeq (every helper of this module
/// does); Max-Forwards and Content-Length are always written, and right.
#[derive(Clone, Debug)]
pub struct RequestBuilder {
    method: Method,
    request_uri: Uri,
    via: Vec<String>,
    routes: Vec<String>,
    from: Option<String>,
    to: Option<String>,
    call_id: Option<String>,
    cseq: Option<u32>,
    contact: Option<String>,
    headers: Vec<Header>,
    body: Option<(String, Vec<u8>)>,
}

impl RequestBuilder {
    pub fn new(method: Method, request_uri: Uri) -> Self {
        RequestBuilder {
            method,
            request_uri,
            via: Vec::new(),
            routes: Vec::new(),
            from: None,
            to: None,
            call_id: None,
            cseq: None,
            contact: None,
            headers: Vec::new(),
            body: None,
        }
    }

    /// Our Via with a fresh `branch` (a new transaction) or the INVITE's (CANCEL, ACK
    /// of a failure).
    pub fn via(mut self, local: &LocalContact, branch: &str) -> Self {
        self.via = vec![local.via(branch)];
        self
    }

    /// A Via value copied verbatim (CANCEL and failure ACK repeat the INVITE's top Via).
    pub fn via_value(mut self, value: impl Into<String>) -> Self {
        self.via = vec![value.into()];
        self
    }

    /// One `Route` per URI, in order (§12.2.1.1: the route set as it stands).
    pub fn route_set(mut self, routes: &[Uri]) -> Self {
        self.routes = routes.iter().map(|uri| format!("<{uri}>")).collect();
        self
    }

    /// Route values copied verbatim (a CANCEL repeats its INVITE's, §9.1).
    pub fn route_values(mut self, values: Vec<String>) -> Self {
        self.routes = values;
        self
    }

    /// From: `"display" <uri>;tag=tag`; the display name is sanitised.
    pub fn from(mut self, uri: &Uri, display: Option<&str>, tag: &str) -> Self {
        self.from = Some(name_addr(&uri.to_string(), display, Some(tag)));
        self
    }

    /// A From value copied verbatim.
    pub fn from_value(mut self, value: impl Into<String>) -> Self {
        self.from = Some(value.into());
        self
    }

    /// To: `<uri>` and the peer's tag once there is one.
    pub fn to(mut self, uri: &Uri, tag: Option<&str>) -> Self {
        self.to = Some(name_addr(&uri.to_string(), None, tag));
        self
    }

    /// A To value copied verbatim (the failure ACK carries the response's, §17.1.1.3).
    pub fn to_value(mut self, value: impl Into<String>) -> Self {
        self.to = Some(value.into());
        self
    }

    pub fn call_id(mut self, call_id: impl Into<String>) -> Self {
        self.call_id = Some(call_id.into());
        self
    }

    /// The CSeq number; the method is the request's. ACK and CANCEL pass their INVITE's
    /// number (§9.1, §13.2.2.4, §17.1.1.3).
    pub fn cseq(mut self, number: u32) -> Self {
        self.cseq = Some(number);
        self
    }

    pub fn contact(mut self, local: &LocalContact, user: &str) -> Self {
        self.contact = Some(local.contact_header(user));
        self
    }

    /// Any other header, after Contact, in the order given.
    pub fn header(mut self, header: Header) -> Self {
        self.headers.push(header);
        self
    }

    pub fn body(mut self, content_type: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.body = Some((content_type.to_owned(), bytes.into()));
        self
    }

    /// The request: Via, Max-Forwards, Route…, From, To, Call-ID, CSeq, Contact, the
    /// extra headers, Content-Type (with a body) and Content-Length.
    pub fn build(self) -> Request {
        debug_assert!(
            !self.via.is_empty()
                && self.from.is_some()
                && self.to.is_some()
                && self.call_id.is_some()
                && self.cseq.is_some(),
            "a request needs Via, From, To, Call-ID and CSeq (RFC 3261 §8.1.1)"
        );
        let mut headers: Vec<Header> = Vec::new();
        headers.extend(self.via.into_iter().map(|via| make_header("Via", via)));
        headers.push(make_header("Max-Forwards", MAX_FORWARDS.to_string()));
        headers.extend(
            self.routes
                .into_iter()
                .map(|route| make_header("Route", route)),
        );
        headers.extend(self.from.map(|from| make_header("From", from)));
        headers.extend(self.to.map(|to| make_header("To", to)));
        headers.extend(self.call_id.map(|id| make_header("Call-ID", id)));
        headers.extend(
            self.cseq
                .map(|n| make_header("CSeq", format!("{n} {}", self.method))),
        );
        headers.extend(self.contact.map(|c| make_header("Contact", c)));
        headers.extend(self.headers);
        let body = finish_body(&mut headers, self.body);
        Request {
            method: self.method,
            uri: self.request_uri,
            version: Version::V2,
            headers: Headers::from(headers),
            body,
        }
    }
}

fn finish_body(headers: &mut Vec<Header>, body: Option<(String, Vec<u8>)>) -> Vec<u8> {
    let body = match body {
        Some((content_type, bytes)) => {
            headers.push(make_header("Content-Type", content_type));
            bytes
        }
        None => Vec::new(),
    };
    headers.push(make_header("Content-Length", body.len().to_string()));
    body
}

/// Builds a response to a request (RFC 3261 §8.2.6): every Via in order, From, To (with
/// our tag added when the request's To has none), Call-ID and CSeq are copied; for a
/// response that creates a dialog (101–299 to an INVITE) every Record-Route too, in
/// order (§12.1.1), so the peer's ACK and BYE follow the proxies that asked to stay.
#[derive(Clone, Debug)]
pub struct ResponseBuilder<'a> {
    request: &'a Request,
    status: u16,
    to_tag: Option<String>,
    contact: Option<String>,
    headers: Vec<Header>,
    body: Option<(String, Vec<u8>)>,
}

impl<'a> ResponseBuilder<'a> {
    pub fn to(request: &'a Request, status: u16) -> Self {
        ResponseBuilder {
            request,
            status,
            to_tag: None,
            contact: None,
            headers: Vec::new(),
            body: None,
        }
    }

    /// Our To tag, added only when the request's To has none (an in-dialog request
    /// already carries ours).
    pub fn to_tag(mut self, tag: &str) -> Self {
        self.to_tag = Some(tag.to_owned());
        self
    }

    pub fn contact(mut self, local: &LocalContact, user: &str) -> Self {
        self.contact = Some(local.contact_header(user));
        self
    }

    /// Any other header, after Contact, in the order given.
    pub fn header(mut self, header: Header) -> Self {
        self.headers.push(header);
        self
    }

    pub fn body(mut self, content_type: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.body = Some((content_type.to_owned(), bytes.into()));
        self
    }

    pub fn build(self) -> Response {
        let creates_dialog =
            self.request.method == Method::Invite && (101..=299).contains(&self.status);
        let mut headers: Vec<Header> = Vec::new();
        for header in self.request.headers.iter() {
            match header {
                Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => {
                    headers.push(header.clone())
                }
                Header::To(to) => {
                    let value = to.value().to_string();
                    let value = match &self.to_tag {
                        Some(tag) if !has_tag(&value) => format!("{value};tag={tag}"),
                        _ => value,
                    };
                    headers.push(make_header("To", value));
                }
                other if creates_dialog && other.name().eq_ignore_ascii_case("Record-Route") => {
                    headers.push(make_header("Record-Route", other.value().to_string()))
                }
                _ => {}
            }
        }
        headers.extend(self.contact.map(|c| make_header("Contact", c)));
        headers.extend(self.headers);
        headers.push(make_header("Server", PRODUCT.to_owned()));
        let body = finish_body(&mut headers, self.body);
        Response {
            status_code: StatusCode::from(self.status),
            wire_reason: None,
            version: Version::V2,
            headers: Headers::from(headers),
            body,
        }
    }
}

/// Whether a To/From value carries a `tag` parameter outside its URI and quotes.
fn has_tag(value: &str) -> bool {
    let after_uri = match value.rfind('>') {
        Some(end) => &value[end + 1..],
        None => value,
    };
    after_uri.split(';').skip(1).any(|param| {
        param
            .split('=')
            .next()
            .is_some_and(|name| name.trim().eq_ignore_ascii_case("tag"))
    })
}

fn header_values<'r>(headers: &'r Headers, name: &str) -> impl Iterator<Item = String> + 'r {
    let name = name.to_owned();
    headers
        .iter()
        .filter(move |header| header.name().eq_ignore_ascii_case(&name) || compact(header, &name))
        .map(|header| header.value().to_string())
}

fn compact(header: &Header, long: &str) -> bool {
    let short = match long {
        "Via" => "v",
        "From" => "f",
        "To" => "t",
        "Call-ID" => "i",
        _ => return false,
    };
    header.name().eq_ignore_ascii_case(short)
}

fn first_value(headers: &Headers, name: &str) -> String {
    header_values(headers, name).next().unwrap_or_default()
}

/// The top Via value, first entry of a comma-joined header.
fn top_via(headers: &Headers) -> String {
    let value = first_value(headers, "Via");
    super::message::split_outside_quotes(&value, ',')
        .into_iter()
        .next()
        .unwrap_or_default()
}

fn cseq_number(request: &Request) -> u32 {
    first_value(&request.headers, "CSeq")
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

/// The error response (serialized) for a parsed request that failed
/// [`super::message::summary`], its reason phrase saying what was wrong; `None` for an
/// ACK, which is never answered (RFC 3261 §17.2.1).
pub fn error_response(request: &Request, error: &super::message::SipError) -> Option<Vec<u8>> {
    if request.method == Method::Ack {
        return None;
    }
    let reason: String = error
        .to_string()
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let mut response = ResponseBuilder::to(request, error.status_code()).build();
    response.wire_reason = Some(reason);
    Some(response.to_string().into_bytes())
}

/// The CANCEL for an INVITE we sent (RFC 3261 §9.1): same Request-URI, Call-ID, To,
/// From, CSeq number and Route, one Via equal to the INVITE's top Via (so it matches
/// the INVITE's server transaction downstream); no body.
pub fn cancel_for(invite: &Request) -> Request {
    RequestBuilder::new(Method::Cancel, invite.uri.clone())
        .via_value(top_via(&invite.headers))
        .route_values(header_values(&invite.headers, "Route").collect())
        .from_value(first_value(&invite.headers, "From"))
        .to_value(first_value(&invite.headers, "To"))
        .call_id(first_value(&invite.headers, "Call-ID"))
        .cseq(cseq_number(invite))
        .build()
}

/// The ACK for a 300–699 answer to our INVITE (§17.1.1.3): part of the INVITE
/// transaction, so its Request-URI, top Via, From, Call-ID, CSeq number and Route are
/// the INVITE's, and its To is the response's (with the peer's tag).
pub fn ack_for_failure(invite: &Request, response: &Response) -> Request {
    RequestBuilder::new(Method::Ack, invite.uri.clone())
        .via_value(top_via(&invite.headers))
        .route_values(header_values(&invite.headers, "Route").collect())
        .from_value(first_value(&invite.headers, "From"))
        .to_value(first_value(&response.headers, "To"))
        .call_id(first_value(&invite.headers, "Call-ID"))
        .cseq(cseq_number(invite))
        .build()
}

// ---- the headers the engine adds ------------------------------------------------

/// `Allow: INVITE, ACK, ...` (§20.5).
pub fn allow(methods: &[Method]) -> Header {
    let list: Vec<String> = methods.iter().map(Method::to_string).collect();
    make_header("Allow", list.join(", "))
}

/// `Supported: timer, ...` (§20.37); an empty list is an empty header, which RFC 3261
/// allows and which says "nothing".
pub fn supported(options: &[&str]) -> Header {
    make_header("Supported", options.join(", "))
}

/// `Require: timer` (§20.32).
pub fn require(options: &[&str]) -> Header {
    make_header("Require", options.join(", "))
}

/// `Unsupported: a, b` of a 420 (§20.40).
pub fn unsupported(options: &[String]) -> Header {
    make_header("Unsupported", options.join(", "))
}

/// `Retry-After: seconds` (§20.33).
pub fn retry_after(seconds: u64) -> Header {
    make_header("Retry-After", seconds.to_string())
}

/// `Warning: code hotline "text"` (§20.43); `text` is sanitised like a display name.
/// Code 399 is "miscellaneous warning", the one for a human-readable reason.
pub fn warning(code: u16, text: &str) -> Header {
    make_header(
        "Warning",
        format!("{code} {PRODUCT} \"{}\"", sanitise_display(text)),
    )
}

/// `WWW-Authenticate: <challenge>` (§22.1); the value comes from `sip::digest`.
pub fn www_authenticate(challenge: String) -> Header {
    make_header("WWW-Authenticate", challenge)
}

// ---- identifiers ----------------------------------------------------------------

/// Tags, branches and Call-IDs from a seed: the same seed gives the same identifiers,
/// so a simulation run replays byte for byte.
///
/// The generator is SplitMix64 (Steele, Lea, Flood 2014), written here rather than
/// `rand::rngs::StdRng` because `rand` documents that StdRng's algorithm may change
/// between versions: a dependency bump would silently change every recorded seed's
/// run. SplitMix64 passes BigCrush, has a full 2^64 period and is six lines; the
/// identifiers need uniqueness within a run, not secrecy (nonces are `sip::digest`'s
/// and sealed with a key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdGenerator {
    state: u64,
}

impl IdGenerator {
    pub fn new(seed: u64) -> Self {
        IdGenerator { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A From/To tag: 64 bits in hex (RFC 3261 §19.3 asks for at least 32).
    pub fn tag(&mut self) -> String {
        format!("{:016x}", self.next_u64())
    }

    /// A branch: the magic cookie, then 96 bits in hex (§8.1.1.7).
    pub fn branch(&mut self) -> String {
        let high = self.next_u64();
        let low = self.next_u64() as u32;
        format!("{MAGIC_COOKIE}{high:016x}{low:08x}")
    }

    /// A Call-ID: 128 bits in hex `@host` (§8.1.1.4).
    pub fn call_id(&mut self, host: &str) -> String {
        let high = self.next_u64();
        let low = self.next_u64();
        format!("{high:016x}{low:016x}@{host}")
    }

    /// An SDP session id / version start (RFC 4566 §5.2: a numeric, NTP-like value).
    pub fn sdp_session_id(&mut self) -> u64 {
        // Keep it below 2^62 so version increments never overflow a signed 64-bit peer.
        self.next_u64() >> 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{self, RequestSummary, ResponseSummary, SipMessage};

    const UDP: LocalContact = LocalContact {
        ip: IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)),
        port: 5060,
        transport: TransportKind::Udp,
    };
    const TCP: LocalContact = LocalContact {
        ip: IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)),
        port: 5062,
        transport: TransportKind::Tcp,
    };

    fn uri(text: &str) -> Uri {
        Uri::try_from(text).expect("test URI")
    }

    fn reparse_request(request: &Request) -> (Request, RequestSummary) {
        let bytes = request.to_bytes();
        match message::parse(&bytes) {
            Ok(SipMessage::Request(parsed)) => {
                let summary = message::summary(&parsed)
                    .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
                (parsed, summary)
            }
            other => panic!("{other:?}: {}", String::from_utf8_lossy(&bytes)),
        }
    }

    fn reparse_response(response: &Response) -> (Response, ResponseSummary) {
        let bytes = response.to_bytes();
        match message::parse(&bytes) {
            Ok(SipMessage::Response(parsed)) => {
                let summary = message::response_summary(&parsed)
                    .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
                (parsed, summary)
            }
            other => panic!("{other:?}: {}", String::from_utf8_lossy(&bytes)),
        }
    }

    fn values(headers: &Headers, name: &str) -> Vec<String> {
        headers
            .iter()
            .filter(|h| h.name().eq_ignore_ascii_case(name))
            .map(|h| h.value().to_string())
            .collect()
    }

    fn agent_invite(local: &LocalContact, ids: &mut IdGenerator) -> Request {
        let branch = ids.branch();
        let tag = ids.tag();
        RequestBuilder::new(Method::Invite, uri("sip:1001@192.0.2.50:5071"))
            .via(local, &branch)
            .from(
                &uri(&format!("sip:hotline@{}", local.host_port())),
                Some("139****0001"),
                &tag,
            )
            .to(&uri("sip:1001@192.0.2.1"), None)
            .call_id(ids.call_id("192.0.2.1"))
            .cseq(1)
            .contact(local, "hotline")
            .body("application/sdp", b"v=0\r\n".to_vec())
            .build()
    }

    const TRUNK_INVITE: &str = "INVITE sip:12345@hotline.example SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.30:5060;branch=z9hG4bKproxy1;rport\r\n\
        Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds\r\n\
        Record-Route: <sip:p2.example.com;lr>\r\n\
        Record-Route: <sip:p1.example.com;lr>, <sip:p0.example.com;lr>\r\n\
        Max-Forwards: 69\r\n\
        From: \"Caller\" <sip:13800138000@trunk.example>;tag=1928301774\r\n\
        To: <sip:12345@hotline.example>\r\n\
        Call-ID: a84b4c76e66710@trunk.example\r\n\
        CSeq: 314159 INVITE\r\n\
        Contact: <sip:13800138000@192.0.2.10:5060>\r\n\
        Content-Length: 0\r\n\r\n";

    fn trunk_invite() -> Request {
        match message::parse(TRUNK_INVITE.as_bytes()) {
            Ok(SipMessage::Request(request)) => request,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn local_contact_keeps_the_transport_rfc3261_18_1_1() {
        assert_eq!(
            UDP.contact_header("hotline"),
            "<sip:hotline@192.0.2.1:5060>"
        );
        assert_eq!(
            TCP.contact_header("hotline"),
            "<sip:hotline@192.0.2.1:5062;transport=tcp>"
        );
        assert_eq!(
            TCP.via("z9hG4bKx"),
            "SIP/2.0/TCP 192.0.2.1:5062;branch=z9hG4bKx;rport"
        );
        assert_eq!(
            UDP.via("z9hG4bKx"),
            "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx;rport"
        );
        let v6 = LocalContact {
            ip: "2001:db8::1".parse().expect("v6"),
            port: 5060,
            transport: TransportKind::Tcp,
        };
        assert_eq!(v6.uri("h"), "sip:h@[2001:db8::1]:5060;transport=tcp");
        assert!(v6.parsed_uri("h").is_some());
        // The URI type writes the parameter value upper-case; URI parameters compare
        // case-insensitively (RFC 3261 §19.1.4).
        assert!(
            TCP.parsed_uri("hotline")
                .expect("uri")
                .to_string()
                .eq_ignore_ascii_case("sip:hotline@192.0.2.1:5062;transport=tcp")
        );
    }

    #[test]
    fn agent_invite_reparses_field_by_field_over_udp_and_tcp_rfc3261_8_1_1() {
        for local in [UDP, TCP] {
            let mut ids = IdGenerator::new(7);
            let invite = agent_invite(&local, &mut ids);
            let (parsed, s) = reparse_request(&invite);
            let mut again = IdGenerator::new(7);
            let branch = again.branch();
            let tag = again.tag();
            assert_eq!(s.method, Method::Invite);
            assert_eq!((s.cseq, s.cseq_method), (1, Method::Invite));
            assert_eq!(s.top_via_branch, branch);
            assert_eq!(s.top_via_sent_by, local.host_port());
            assert_eq!(s.from_tag.as_deref(), Some(tag.as_str()));
            assert_eq!(s.to_tag, None);
            assert_eq!(s.call_id, again.call_id("192.0.2.1"));
            assert_eq!(s.max_forwards, Some(70));
            assert_eq!(s.request_uri_user.as_deref(), Some("1001"));
            assert_eq!(s.contact, Some(local.uri("hotline")));
            assert_eq!(parsed.body, b"v=0\r\n");
            assert_eq!(values(&parsed.headers, "Content-Length"), ["5"]);
            assert_eq!(values(&parsed.headers, "Content-Type"), ["application/sdp"]);
            let via = &values(&parsed.headers, "Via")[0];
            assert!(via.starts_with(&format!("SIP/2.0/{}", local.transport.via_token())));
            assert!(values(&parsed.headers, "From")[0].starts_with("\"139****0001\" <"));
        }
    }

    #[test]
    fn display_names_cannot_break_out_of_their_quotes() {
        let request = RequestBuilder::new(Method::Invite, uri("sip:1001@192.0.2.50"))
            .via(&UDP, "z9hG4bK1")
            .from(
                &uri("sip:hotline@192.0.2.1"),
                Some("a\"b\\c\r\nX-Evil: 1"),
                "t",
            )
            .to(&uri("sip:1001@192.0.2.1"), None)
            .call_id("c@h")
            .cseq(1)
            .build();
        let (parsed, s) = reparse_request(&request);
        assert_eq!(
            values(&parsed.headers, "From")[0],
            "\"abcX-Evil: 1\" <sip:hotline@192.0.2.1>;tag=t"
        );
        assert!(values(&parsed.headers, "X-Evil").is_empty());
        assert_eq!(s.from_tag.as_deref(), Some("t"));
        // No body: Content-Length 0 and no Content-Type.
        assert_eq!(values(&parsed.headers, "Content-Length"), ["0"]);
        assert!(values(&parsed.headers, "Content-Type").is_empty());
    }

    #[test]
    fn routes_are_written_in_order_after_max_forwards_rfc3261_12_2_1_1() {
        let request = RequestBuilder::new(Method::Bye, uri("sip:1001@192.0.2.50"))
            .via(&TCP, "z9hG4bKb")
            .route_set(&[uri("sip:p1.example.com;lr"), uri("sip:p2.example.com;lr")])
            .from(&uri("sip:hotline@192.0.2.1"), None, "a")
            .to(&uri("sip:1001@192.0.2.1"), Some("b"))
            .call_id("c@h")
            .cseq(7)
            .build();
        let (parsed, s) = reparse_request(&request);
        assert_eq!(
            values(&parsed.headers, "Route"),
            ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
        );
        assert_eq!((s.cseq, s.cseq_method), (7, Method::Bye));
        assert_eq!(s.to_tag.as_deref(), Some("b"));
        let names: Vec<&str> = parsed.headers.iter().map(|h| h.name()).collect();
        assert_eq!(
            names,
            [
                "Via",
                "Max-Forwards",
                "Route",
                "Route",
                "From",
                "To",
                "Call-ID",
                "CSeq",
                "Content-Length"
            ]
        );
    }

    #[test]
    fn cancel_repeats_the_invite_transaction_rfc3261_9_1() {
        for local in [UDP, TCP] {
            let mut ids = IdGenerator::new(1);
            let mut invite = agent_invite(&local, &mut ids);
            invite
                .headers
                .push(make_header("Route", "<sip:edge.example;lr>".into()));
            let (_, invite_summary) = reparse_request(&invite);
            let (cancel, s) = reparse_request(&cancel_for(&invite));
            assert_eq!(cancel.method, Method::Cancel);
            assert_eq!(cancel.uri, invite.uri);
            assert_eq!((s.cseq, s.cseq_method), (1, Method::Cancel));
            assert_eq!(s.top_via_branch, invite_summary.top_via_branch);
            assert_eq!(s.top_via_sent_by, invite_summary.top_via_sent_by);
            assert_eq!(s.call_id, invite_summary.call_id);
            assert_eq!(s.from_tag, invite_summary.from_tag);
            assert_eq!(s.to_tag, None);
            assert_eq!(values(&cancel.headers, "Via").len(), 1);
            assert_eq!(values(&cancel.headers, "Route"), ["<sip:edge.example;lr>"]);
            assert!(cancel.body.is_empty());
            assert!(values(&cancel.headers, "Contact").is_empty());
            assert_eq!(values(&cancel.headers, "Content-Length"), ["0"]);
        }
    }

    #[test]
    fn failure_ack_is_on_the_invite_branch_with_the_response_to_rfc3261_17_1_1_3() {
        for local in [UDP, TCP] {
            let mut ids = IdGenerator::new(2);
            let invite = agent_invite(&local, &mut ids);
            let (_, invite_summary) = reparse_request(&invite);
            let busy = ResponseBuilder::to(&invite, 486).to_tag("busy-tag").build();
            let (ack, s) = reparse_request(&ack_for_failure(&invite, &busy));
            assert_eq!(ack.method, Method::Ack);
            assert_eq!(ack.uri, invite.uri);
            assert_eq!((s.cseq, s.cseq_method), (1, Method::Ack));
            assert_eq!(s.top_via_branch, invite_summary.top_via_branch);
            assert_eq!(s.to_tag.as_deref(), Some("busy-tag"));
            assert_eq!(s.from_tag, invite_summary.from_tag);
            assert!(ack.body.is_empty());
        }
    }

    #[test]
    fn a_2xx_to_an_invite_copies_every_record_route_in_order_rfc3261_12_1_1() {
        let invite = trunk_invite();
        for status in [180, 183, 200] {
            let response = ResponseBuilder::to(&invite, status)
                .to_tag("ours")
                .contact(&TCP, "hotline")
                .body("application/sdp", b"v=0\r\n".to_vec())
                .build();
            let (parsed, s) = reparse_response(&response);
            assert_eq!(s.status, status);
            assert_eq!(s.to_tag.as_deref(), Some("ours"));
            assert_eq!((s.cseq, s.cseq_method), (314159, Method::Invite));
            assert_eq!(s.call_id, "a84b4c76e66710@trunk.example");
            assert_eq!(s.top_via_branch, "z9hG4bKproxy1");
            assert_eq!(
                values(&parsed.headers, "Record-Route"),
                [
                    "<sip:p2.example.com;lr>",
                    "<sip:p1.example.com;lr>, <sip:p0.example.com;lr>"
                ],
                "status {status}"
            );
            assert_eq!(values(&parsed.headers, "Via").len(), 2);
            assert_eq!(
                values(&parsed.headers, "Contact"),
                ["<sip:hotline@192.0.2.1:5062;transport=tcp>"]
            );
            assert_eq!(values(&parsed.headers, "Content-Length"), ["5"]);
            assert_eq!(
                values(&parsed.headers, "From"),
                ["\"Caller\" <sip:13800138000@trunk.example>;tag=1928301774"]
            );
        }
    }

    #[test]
    fn responses_that_create_no_dialog_carry_no_record_route() {
        let invite = trunk_invite();
        for status in [100, 403, 486, 500] {
            let (parsed, _) = reparse_response(&ResponseBuilder::to(&invite, status).build());
            assert!(
                values(&parsed.headers, "Record-Route").is_empty(),
                "{status}"
            );
        }
        let options = TRUNK_INVITE
            .replace("INVITE sip", "OPTIONS sip")
            .replace("314159 INVITE", "1 OPTIONS");
        let Ok(SipMessage::Request(options)) = message::parse(options.as_bytes()) else {
            panic!("options");
        };
        let (parsed, _) = reparse_response(&ResponseBuilder::to(&options, 200).build());
        assert!(values(&parsed.headers, "Record-Route").is_empty());
    }

    #[test]
    fn an_existing_to_tag_is_kept_and_extension_headers_follow_contact() {
        let in_dialog = TRUNK_INVITE.replace(
            "To: <sip:12345@hotline.example>",
            "To: <sip:12345@hotline.example>;tag=ours",
        );
        let Ok(SipMessage::Request(reinvite)) = message::parse(in_dialog.as_bytes()) else {
            panic!("re-INVITE");
        };
        let response = ResponseBuilder::to(&reinvite, 200)
            .to_tag("other")
            .contact(&UDP, "hotline")
            .header(allow(&[Method::Invite, Method::Ack, Method::Bye]))
            .header(supported(&["timer"]))
            .header(require(&["timer"]))
            .header(make_header("Session-Expires", "1800;refresher=uac".into()))
            .build();
        let (parsed, s) = reparse_response(&response);
        assert_eq!(s.to_tag.as_deref(), Some("ours"));
        assert_eq!(values(&parsed.headers, "Allow"), ["INVITE, ACK, BYE"]);
        assert_eq!(values(&parsed.headers, "Supported"), ["timer"]);
        assert_eq!(values(&parsed.headers, "Require"), ["timer"]);
        assert_eq!(
            values(&parsed.headers, "Session-Expires"),
            ["1800;refresher=uac"]
        );
        let names: Vec<&str> = parsed.headers.iter().map(|h| h.name()).collect();
        let contact = names.iter().position(|n| *n == "Contact").expect("contact");
        let allow_at = names.iter().position(|n| *n == "Allow").expect("allow");
        assert!(contact < allow_at);
    }

    #[test]
    fn error_responses_with_retry_after_warning_and_challenge() {
        let invite = trunk_invite();
        let response = ResponseBuilder::to(&invite, 503)
            .to_tag("t")
            .header(retry_after(30))
            .header(warning(399, "over \"capacity\""))
            .build();
        let (parsed, s) = reparse_response(&response);
        assert_eq!(s.status, 503);
        assert_eq!(values(&parsed.headers, "Retry-After"), ["30"]);
        assert_eq!(
            values(&parsed.headers, "Warning"),
            ["399 hotline \"over capacity\""]
        );
        let challenge = ResponseBuilder::to(&invite, 401)
            .header(www_authenticate(
                "Digest realm=\"hotline\", nonce=\"abc\", qop=\"auth\"".into(),
            ))
            .build();
        let (parsed, _) = reparse_response(&challenge);
        assert_eq!(
            values(&parsed.headers, "WWW-Authenticate"),
            ["Digest realm=\"hotline\", nonce=\"abc\", qop=\"auth\""]
        );
        let unsupported_response = ResponseBuilder::to(&invite, 420)
            .header(unsupported(&["foo".into(), "bar".into()]))
            .build();
        let (parsed, s) = reparse_response(&unsupported_response);
        assert_eq!(s.status, 420);
        assert_eq!(values(&parsed.headers, "Unsupported"), ["foo, bar"]);
    }

    #[test]
    fn ids_replay_under_a_seed_and_differ_between_seeds() {
        let mut a = IdGenerator::new(42);
        let mut b = IdGenerator::new(42);
        let mut c = IdGenerator::new(43);
        let run = |ids: &mut IdGenerator| (ids.tag(), ids.branch(), ids.call_id("h.example"));
        let (ra, rb, rc) = (run(&mut a), run(&mut b), run(&mut c));
        assert_eq!(ra, rb);
        assert_ne!(ra, rc);
        assert!(ra.1.starts_with(MAGIC_COOKIE) && ra.1.len() == 7 + 24);
        assert_eq!(ra.0.len(), 16);
        assert!(ra.2.ends_with("@h.example") && ra.2.len() == 32 + 10);
        // Many draws, no repeats.
        let mut seen = std::collections::HashSet::new();
        let mut ids = IdGenerator::new(0);
        for _ in 0..10_000 {
            assert!(seen.insert(ids.tag()));
        }
        assert!(ids.sdp_session_id() < 1 << 62);
    }

    proptest::proptest! {
        /// Whatever a display name holds (a masked caller number, a trunk's text), the
        /// request still parses and its tags and Call-ID survive (RFC 3261 §25.1).
        #[test]
        fn any_display_name_yields_a_parseable_request(
            display in "\\PC{0,40}",
            seed in proptest::prelude::any::<u64>(),
            tcp in proptest::prelude::any::<bool>(),
        ) {
            let local = if tcp { TCP } else { UDP };
            let mut ids = IdGenerator::new(seed);
            let (branch, tag, call_id) = (ids.branch(), ids.tag(), ids.call_id("192.0.2.1"));
            let request = RequestBuilder::new(Method::Invite, uri("sip:1001@192.0.2.50"))
                .via(&local, &branch)
                .from(&uri("sip:hotline@192.0.2.1"), Some(&display), &tag)
                .to(&uri("sip:1001@192.0.2.1"), None)
                .call_id(call_id.clone())
                .cseq(1)
                .contact(&local, "hotline")
                .build();
            let (_, s) = reparse_request(&request);
            proptest::prop_assert_eq!(s.from_tag, Some(tag));
            proptest::prop_assert_eq!(s.call_id, call_id);
            proptest::prop_assert_eq!(s.top_via_branch, branch);
            proptest::prop_assert_eq!(s.contact, Some(local.uri("hotline")));
        }
    }

    #[test]
    fn has_tag_looks_outside_the_uri() {
        assert!(has_tag("<sip:a@b>;tag=1"));
        assert!(has_tag("sip:a@b;tag=1"));
        assert!(!has_tag("<sip:a@b;tag=1>"));
        assert!(!has_tag("\"x;tag=1\" <sip:a@b>"));
    }
}
