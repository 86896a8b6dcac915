//! SIP messages (R29): the project's facade over the parser crate.
//!
//! Pure. The parser is `rsipstack::sip` (a maintained fork of `rsip`; the evidence for
//! the choice is in `docs/sip-parser-choice.md` and `tests/sip_parser_choice.rs`). The
//! engine names SIP types only through this module, so swapping the crate touches one
//! file. On top of the crate this module adds what a UAS needs and the crate does not
//! do: LF-only line endings, Content-Length enforcement for datagrams (RFC 3261 §18.3),
//! a strict start line, comma-joined Via values, the mandatory-header checks of
//! RFC 3261 §8.2 ([`summary`]), a best-effort `400` for
//! messages the parser rejects ([`bad_request_from_raw`]), and RFC 3581 `rport`.

use std::net::{IpAddr, SocketAddr};

pub use rsipstack::sip::headers::make_header;
pub use rsipstack::sip::{
    Accept, Allow, Contact, HasHeaders, Header, Headers, HeadersExt, Method, Request, Response,
    RetryAfter, SipMessage, StatusCode, Uri, Version, Warning,
};

/// Why a message was refused. Variants map onto the response a UAS sends:
/// [`SipError::status_code`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SipError {
    /// The bytes are not a SIP message (start line, header syntax, encoding).
    #[error("malformed SIP message: {0}")]
    Parse(String),
    /// A header every request (or response) must carry is absent.
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// A header is present but unusable: bad syntax, out-of-range number, given twice.
    #[error("invalid {name} header: {reason}")]
    InvalidHeader {
        /// Header name, long form.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The datagram holds fewer body bytes than Content-Length announces (RFC 3261 §18.3).
    #[error("body of {received} bytes is shorter than Content-Length {declared}")]
    BodyLength {
        /// Content-Length value.
        declared: usize,
        /// Body bytes actually present.
        received: usize,
    },
    /// SIP-Version other than `SIP/2.0`; answered with `505`.
    #[error("unsupported SIP version {0}")]
    UnsupportedVersion(String),
    /// A syntactically valid method the engine does not implement; answered with `501`.
    #[error("method {0} not implemented")]
    UnknownMethod(String),
    /// Request-URI scheme other than sip, sips or tel; answered with `416`.
    #[error("unsupported Request-URI scheme {0}")]
    UnsupportedUriScheme(String),
    /// A body larger than the engine accepts; answered with `413` (RFC 3261 §21.4.14).
    #[error("body of {size} bytes exceeds the {limit}-byte limit")]
    BodyTooLarge {
        /// The body's (declared or actual) length.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
}

impl SipError {
    /// The final response a UAS sends for a request refused with this error
    /// (RFC 3261 §8.2.1–8.2.3, RFC 4475 §3).
    pub fn status_code(&self) -> u16 {
        match self {
            SipError::UnsupportedVersion(_) => 505,
            SipError::UnknownMethod(_) => 501,
            SipError::UnsupportedUriScheme(_) => 416,
            SipError::BodyTooLarge { .. } => 413,
            _ => 400,
        }
    }
}

/// Methods the parser crate can represent; any other token is a valid extension
/// method that the engine answers with `501`.
const KNOWN_METHODS: &[&str] = &[
    "ACK",
    "BYE",
    "CANCEL",
    "INFO",
    "INVITE",
    "MESSAGE",
    "NOTIFY",
    "OPTIONS",
    "PRACK",
    "PUBLISH",
    "REFER",
    "REGISTER",
    "SUBSCRIBE",
    "UPDATE",
];

/// Parses one datagram (UDP) or one framed stream message.
///
/// Content-Length is enforced as RFC 3261 §18.3 says for datagrams: a body shorter than
/// it is an error; bytes beyond it are discarded; without Content-Length the body runs
/// to the end of the datagram.
pub fn parse(datagram: &[u8]) -> Result<SipMessage, SipError> {
    let (header_end, body_start) = find_header_end(datagram)
        .ok_or_else(|| SipError::Parse("no empty line after the headers".into()))?;
    let head = std::str::from_utf8(&datagram[..header_end])
        .map_err(|_| SipError::Parse("header section is not UTF-8".into()))?;
    // RFC 3261 §25.1: a NUL may only stand escaped as a quoted-pair (`\` NUL inside a
    // quoted string, RFC 4475 `intmeth`); a bare one, in the Request-URI or any header,
    // would cut the value short for every C peer the engine talks to.
    if let Some(at) = bare_nul(head.as_bytes()) {
        let what = if head[..at].contains('\n') {
            "a header"
        } else {
            "the start line"
        };
        return Err(SipError::Parse(format!("NUL byte in {what}")));
    }
    let lines = unfold(head);
    let start_line = lines
        .first()
        .ok_or_else(|| SipError::Parse("empty message".into()))?;
    check_start_line(start_line)?;
    if let Some(line) = lines[1..].iter().find(|line| !line.contains(':')) {
        let shown: String = line.chars().take(40).collect();
        return Err(SipError::Parse(format!(
            "header line without a colon: {shown:?}"
        )));
    }

    let available = &datagram[body_start..];
    let body = match content_length(&lines)? {
        None => available,
        Some(declared) if declared > available.len() => {
            return Err(SipError::BodyLength {
                declared,
                received: available.len(),
            });
        }
        Some(declared) => &available[..declared],
    };

    // The crate wants CRLF line endings; folded lines are already joined.
    let mut normalised = lines.join("\r\n").into_bytes();
    normalised.extend_from_slice(b"\r\n\r\n");
    let mut message = rsipstack::sip::parser::parse_message(&normalised)
        .map_err(|e| SipError::Parse(e.to_string()))?;
    match &mut message {
        SipMessage::Request(request) => request.body = body.to_vec(),
        SipMessage::Response(response) => response.body = body.to_vec(),
    }
    Ok(message)
}

/// What the engine needs to know about a request, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSummary {
    pub method: Method,
    pub call_id: String,
    pub cseq: u32,
    pub cseq_method: Method,
    pub from_tag: Option<String>,
    pub to_tag: Option<String>,
    /// Empty for RFC 2543 peers, which send no branch.
    pub top_via_branch: String,
    pub top_via_sent_by: String,
    pub max_forwards: Option<u32>,
    /// The caller's number: user part of a sip/sips From URI, or the tel: number.
    pub from_user: Option<String>,
    pub request_uri_user: Option<String>,
    /// URI of the first Contact, or `*` for a REGISTER removing all bindings.
    pub contact: Option<String>,
}

/// The fields that identify a request's transaction and dialog.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestKey {
    pub call_id: String,
    pub cseq: u32,
    pub method: String,
    pub top_via_branch: String,
}

impl RequestSummary {
    /// The key of this request (RFC 3261 §17.2.3 when the branch is magic-cookie style).
    pub fn key(&self) -> RequestKey {
        RequestKey {
            call_id: self.call_id.clone(),
            cseq: self.cseq,
            method: self.method.to_string(),
            top_via_branch: self.top_via_branch.clone(),
        }
    }
}

/// Validates a request the way a UAS must before acting on it (RFC 3261 §8.2) and
/// returns the fields the engine uses.
pub fn summary(request: &Request) -> Result<RequestSummary, SipError> {
    let fields = header_fields(&request.headers);
    let vias = via_entries(&fields)?;
    let top_via = parse_via(&vias[0])?;
    for via in &vias[1..] {
        parse_via(via)?;
    }
    let from = parse_name_addr(single(&fields, "From")?, "From")?;
    let to = parse_name_addr(single(&fields, "To")?, "To")?;
    let call_id = parse_call_id(single(&fields, "Call-ID")?)?;
    let (cseq, cseq_method) = parse_cseq(single(&fields, "CSeq")?)?;
    let method = request.method.to_string();
    if !cseq_method.eq_ignore_ascii_case(&method) {
        return Err(SipError::InvalidHeader {
            name: "CSeq",
            reason: format!("method {cseq_method} does not match request method {method}"),
        });
    }
    let max_forwards = optional_single(&fields, "Max-Forwards")?
        .map(parse_max_forwards)
        .transpose()?;
    if let Some(date) = optional_single(&fields, "Date")? {
        // RFC 3261 §20.17: GMT is the only time zone.
        if !date.trim_end().ends_with(" GMT") {
            return Err(SipError::InvalidHeader {
                name: "Date",
                reason: format!("{date:?} is not in GMT"),
            });
        }
    }
    let contact = match fields.iter().find(|(name, _)| name == "Contact") {
        None => None,
        Some((_, value)) if value.trim() == "*" => Some("*".to_string()),
        Some((_, value)) => {
            let first = split_outside_quotes(value, ',')
                .into_iter()
                .next()
                .unwrap_or_default();
            Some(parse_name_addr(&first, "Contact")?.uri)
        }
    };
    let request_uri = request.uri.to_string();
    let scheme = uri_scheme(&request_uri);
    if !["sip", "sips", "tel"].contains(&scheme.as_str()) {
        return Err(SipError::UnsupportedUriScheme(scheme));
    }
    Ok(RequestSummary {
        method: request.method,
        call_id,
        cseq,
        cseq_method: cseq_method
            .parse()
            .map_err(|_| SipError::UnknownMethod(cseq_method.clone()))?,
        from_tag: from.param("tag"),
        to_tag: to.param("tag"),
        top_via_branch: top_via.param("branch").unwrap_or_default(),
        top_via_sent_by: top_via.sent_by,
        max_forwards,
        from_user: uri_user(&from.uri),
        request_uri_user: uri_user(&request_uri),
        contact,
    })
}

/// What the engine needs to know about a response (as UAC), validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseSummary {
    pub status: u16,
    pub call_id: String,
    pub cseq: u32,
    pub cseq_method: Method,
    pub top_via_branch: String,
    /// The top Via's sent-by: ours, for a response to a request we sent.
    pub top_via_sent_by: String,
    pub to_tag: Option<String>,
}

/// Validates a response and returns the fields that match it to a client transaction.
pub fn response_summary(response: &Response) -> Result<ResponseSummary, SipError> {
    let fields = header_fields(&response.headers);
    let vias = via_entries(&fields)?;
    let top_via = parse_via(&vias[0])?;
    parse_name_addr(single(&fields, "From")?, "From")?;
    let to = parse_name_addr(single(&fields, "To")?, "To")?;
    let (cseq, cseq_method) = parse_cseq(single(&fields, "CSeq")?)?;
    Ok(ResponseSummary {
        status: response.status_code.code(),
        call_id: parse_call_id(single(&fields, "Call-ID")?)?,
        cseq,
        cseq_method: cseq_method
            .parse()
            .map_err(|_| SipError::UnknownMethod(cseq_method.clone()))?,
        top_via_branch: top_via.param("branch").unwrap_or_default(),
        top_via_sent_by: top_via.sent_by.clone(),
        to_tag: to.param("tag"),
    })
}

/// A best-effort `400` (serialized) for a request the full parser rejected, so the
/// sender learns why instead of retransmitting into silence. Header lines are scanned
/// leniently (compact forms too); without a request line, Via, From, To, Call-ID and
/// CSeq, or for a response or an ACK (which are never answered), returns `None`.
pub fn bad_request_from_raw(bytes: &[u8], reason: &str) -> Option<Vec<u8>> {
    error_response_from_raw(bytes, 400, reason)
}

/// Like [`bad_request_from_raw`] with another status, for errors that have their own
/// code: 501 for an unknown method, 505 for another SIP version (see
/// [`SipError::status_code`]).
pub fn error_response_from_raw(bytes: &[u8], status: u16, reason: &str) -> Option<Vec<u8>> {
    let head_end = find_header_end(bytes).map_or(bytes.len(), |(end, _)| end);
    let head = String::from_utf8_lossy(&bytes[..head_end]);
    let lines = unfold(&head);
    let start: Vec<&str> = lines.first()?.split_whitespace().collect();
    if start.len() < 3
        || start[0].starts_with("SIP/")
        || !start[start.len() - 1].starts_with("SIP/")
    {
        return None;
    }
    if start[0].eq_ignore_ascii_case("ACK") {
        return None;
    }
    let mut vias = Vec::new();
    let (mut from, mut to, mut call_id, mut cseq) = (None, None, None, None);
    for line in &lines[1..] {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value: String = value.trim().chars().filter(|c| *c != '\0').collect();
        match canonical_name(name.trim()).as_str() {
            "Via" => vias.push(value),
            "From" => from = from.or(Some(value)),
            "To" => to = to.or(Some(value)),
            "Call-ID" => call_id = call_id.or(Some(value)),
            "CSeq" => cseq = cseq.or(Some(value)),
            _ => {}
        }
    }
    if vias.is_empty() {
        return None;
    }
    let reason: String = reason
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>();
    let reason = if reason.trim().is_empty() {
        "Bad Request".to_string()
    } else {
        reason
    };
    let mut out = format!("SIP/2.0 {status} {reason}\r\n");
    for via in vias {
        out.push_str(&format!("Via: {via}\r\n"));
    }
    out.push_str(&format!("From: {}\r\n", from?));
    out.push_str(&format!("To: {}\r\n", to?));
    out.push_str(&format!("Call-ID: {}\r\n", call_id?));
    out.push_str(&format!("CSeq: {}\r\n", cseq?));
    out.push_str("Server: hotline\r\nContent-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}

/// RFC 3261 §18.2.1 and RFC 3581 §4: records where the request really came from in its
/// top Via — `received=` when the sent-by host is not the source IP (always when
/// `rport` was asked for), and the source port in an empty `rport`.
pub fn via_received_rport(request: &mut Request, source: SocketAddr) -> Result<(), SipError> {
    let Some(index) = request
        .headers
        .iter()
        .position(|h| matches!(h, Header::Via(_)))
    else {
        return Err(SipError::MissingHeader("Via"));
    };
    let value = request.headers.0[index].value().to_string();
    let mut entries = split_outside_quotes(&value, ',');
    let top = entries
        .first()
        .cloned()
        .ok_or(SipError::MissingHeader("Via"))?;
    let mut via = parse_via(&top)?;
    let asked_rport = via.params.iter().any(|(name, _)| name == "rport");
    let source_ip = source.ip().to_string();
    if asked_rport || !same_ip(&host_of(&via.sent_by), source.ip()) {
        via.set_param("received", Some(source_ip));
    }
    if asked_rport {
        via.set_param("rport", Some(source.port().to_string()));
    }
    entries[0] = via.to_string();
    request.headers.0[index] = make_header("Via", entries.join(", "));
    Ok(())
}

/// Where to send a response to a request that arrived from `source` (RFC 3261 §18.2.2,
/// RFC 3581 §4): with `rport`, or when the request came from its sent-by port, back to
/// the source; otherwise to the source IP (the `received` address) at the sent-by port
/// (5060 when absent).
pub fn response_destination(request: &Request, source: SocketAddr) -> SocketAddr {
    let top = header_fields(&request.headers)
        .into_iter()
        .find(|(name, _)| name == "Via")
        .and_then(|(_, value)| split_outside_quotes(&value, ',').into_iter().next())
        .and_then(|entry| parse_via(&entry).ok());
    match top {
        Some(via) if !via.params.iter().any(|(name, _)| name == "rport") => {
            let port = port_of(&via.sent_by).unwrap_or(5060);
            SocketAddr::new(source.ip(), port)
        }
        _ => source,
    }
}

/// A fresh From/To tag.
pub fn new_tag() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A fresh RFC 3261 branch (magic cookie `z9hG4bK` then 96 random bits).
pub fn new_branch() -> String {
    format!(
        "z9hG4bK{:016x}{:08x}",
        rand::random::<u64>(),
        rand::random::<u32>()
    )
}

/// A fresh Call-ID, globally unique through 128 random bits.
pub fn new_call_id(host: &str) -> String {
    format!("{:032x}@{host}", rand::random::<u128>())
}

// ---- helpers ------------------------------------------------------------------

/// Index where the header section ends and where the body starts. Accepts CRLFCRLF
/// and, for lenient peers, LFLF (or a mix), whichever comes first. Shared with the TCP
/// framer, which must find the same boundary the parser does.
pub(crate) fn find_header_end(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut index = 0;
    while let Some(offset) = bytes[index..].iter().position(|&b| b == b'\n') {
        let lf = index + offset;
        let rest = &bytes[lf + 1..];
        if rest.starts_with(b"\r\n") {
            return Some((lf + 1, lf + 3));
        }
        if rest.starts_with(b"\n") {
            return Some((lf + 1, lf + 2));
        }
        index = lf + 1;
    }
    None
}

/// Where a NUL stands that is not the second octet of a quoted-pair.
fn bare_nul(head: &[u8]) -> Option<usize> {
    head.iter()
        .enumerate()
        .find(|&(at, &b)| b == 0 && (at == 0 || head[at - 1] != b'\\'))
        .map(|(at, _)| at)
}

/// Header section lines with CRLF or LF removed and folded continuation lines joined
/// onto their header with one space (RFC 3261 §7.3.1).
fn unfold(head: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for raw in head.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) && lines.len() > 1 {
            if let Some(last) = lines.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
        } else {
            lines.push(line.to_string());
        }
    }
    lines
}

fn check_start_line(line: &str) -> Result<(), SipError> {
    if let Some(rest) = line.strip_prefix("SIP/") {
        let mut parts = rest.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        let code = parts.next().unwrap_or_default();
        if code.len() != 3
            || !code.bytes().all(|b| b.is_ascii_digit())
            || !("100"..="699").contains(&code)
        {
            return Err(SipError::Parse(format!("bad status code {code:?}")));
        }
        if version != "2.0" {
            return Err(SipError::UnsupportedVersion(format!("SIP/{version}")));
        }
        return Ok(());
    }
    // RFC 3261 §7.1: Method SP Request-URI SP SIP-Version, single spaces, nothing after.
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, uri, version] = parts[..] else {
        return Err(SipError::Parse(format!("bad request line {line:?}")));
    };
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(SipError::Parse(format!("bad method {method:?}")));
    }
    if uri.is_empty() || uri.starts_with('<') || !uri.contains(':') {
        return Err(SipError::Parse(format!("bad Request-URI {uri:?}")));
    }
    let scheme = uri_scheme(uri);
    let after_userinfo = uri.rsplit_once('@').map_or(uri, |(_, host)| host);
    if (scheme == "sip" || scheme == "sips") && after_userinfo.contains('?') {
        // RFC 3261 §19.1.5: headers are not allowed in a Request-URI ('?' may still
        // appear in the user part).
        return Err(SipError::Parse(format!("headers in Request-URI {uri:?}")));
    }
    if version != "SIP/2.0" {
        if version.starts_with("SIP/") {
            return Err(SipError::UnsupportedVersion(version.to_string()));
        }
        return Err(SipError::Parse(format!("bad SIP-Version {version:?}")));
    }
    if !KNOWN_METHODS.contains(&method) {
        return Err(SipError::UnknownMethod(method.to_string()));
    }
    Ok(())
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

fn content_length(lines: &[String]) -> Result<Option<usize>, SipError> {
    let mut found: Option<usize> = None;
    for line in &lines[1..] {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if canonical_name(name.trim()) != "Content-Length" {
            continue;
        }
        let value = value.trim();
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SipError::InvalidHeader {
                name: "Content-Length",
                reason: format!("{value:?} is not a length"),
            });
        }
        let length: usize = value.parse().map_err(|_| SipError::InvalidHeader {
            name: "Content-Length",
            reason: format!("{value} is too large"),
        })?;
        if found.is_some_and(|previous| previous != length) {
            return Err(SipError::InvalidHeader {
                name: "Content-Length",
                reason: "conflicting values".into(),
            });
        }
        found = Some(length);
    }
    Ok(found)
}

/// Long form of a header name, for the headers this module reads; others unchanged.
fn canonical_name(name: &str) -> String {
    const NAMES: &[(&str, &str)] = &[
        ("via", "Via"),
        ("v", "Via"),
        ("from", "From"),
        ("f", "From"),
        ("to", "To"),
        ("t", "To"),
        ("call-id", "Call-ID"),
        ("i", "Call-ID"),
        ("cseq", "CSeq"),
        ("contact", "Contact"),
        ("m", "Contact"),
        ("content-length", "Content-Length"),
        ("l", "Content-Length"),
        ("max-forwards", "Max-Forwards"),
        ("date", "Date"),
    ];
    NAMES
        .iter()
        .find(|(short, _)| short.eq_ignore_ascii_case(name))
        .map_or_else(|| name.to_string(), |(_, long)| long.to_string())
}

/// `(long name, value)` for every header, in order.
fn header_fields(headers: &Headers) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|h| (canonical_name(h.name()), h.value().trim().to_string()))
        .collect()
}

fn single<'a>(fields: &'a [(String, String)], name: &'static str) -> Result<&'a str, SipError> {
    optional_single(fields, name)?.ok_or(SipError::MissingHeader(name))
}

fn optional_single<'a>(
    fields: &'a [(String, String)],
    name: &'static str,
) -> Result<Option<&'a str>, SipError> {
    let mut values = fields.iter().filter(|(n, _)| n == name);
    let first = values.next().map(|(_, v)| v.as_str());
    if values.next().is_some() {
        return Err(SipError::InvalidHeader {
            name,
            reason: "appears more than once".into(),
        });
    }
    Ok(first)
}

fn via_entries(fields: &[(String, String)]) -> Result<Vec<String>, SipError> {
    let mut entries = Vec::new();
    for (_, value) in fields.iter().filter(|(n, _)| n == "Via") {
        entries.extend(split_outside_quotes(value, ','));
    }
    if entries.is_empty() {
        return Err(SipError::MissingHeader("Via"));
    }
    Ok(entries)
}

/// Splits on `separator` except inside double quotes or angle brackets; trims parts.
/// Splits on `separator` outside double quotes and angle brackets; trims the parts.
pub(crate) fn split_outside_quotes(value: &str, separator: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let (mut quoted, mut escaped, mut angle) = (false, false, false);
    for c in value.chars() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if !quoted && c == '<' {
            angle = true;
        } else if !quoted && c == '>' {
            angle = false;
        } else if !quoted && !angle && c == separator {
            parts.push(current.trim().to_string());
            current.clear();
            continue;
        }
        current.push(c);
    }
    parts.push(current.trim().to_string());
    parts
}

/// One Via value: `SIP/2.0/transport sent-by *(;param)`.
#[derive(Debug, Clone)]
struct ViaEntry {
    transport: String,
    sent_by: String,
    params: Vec<(String, Option<String>)>,
}

impl ViaEntry {
    fn param(&self, name: &str) -> Option<String> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone().unwrap_or_default())
    }

    fn set_param(&mut self, name: &str, value: Option<String>) {
        match self
            .params
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(param) => param.1 = value,
            None => self.params.push((name.to_string(), value)),
        }
    }
}

impl std::fmt::Display for ViaEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.sent_by)?;
        for (name, value) in &self.params {
            match value {
                Some(value) => write!(f, ";{name}={value}")?,
                None => write!(f, ";{name}")?,
            }
        }
        Ok(())
    }
}

fn invalid(name: &'static str, reason: impl Into<String>) -> SipError {
    SipError::InvalidHeader {
        name,
        reason: reason.into(),
    }
}

fn parse_via(entry: &str) -> Result<ViaEntry, SipError> {
    let mut pieces = entry.splitn(3, '/');
    let protocol = pieces.next().unwrap_or_default().trim();
    let version = pieces.next().unwrap_or_default().trim();
    let rest = pieces
        .next()
        .ok_or_else(|| invalid("Via", format!("no sent-protocol in {entry:?}")))?
        .trim_start();
    if !protocol.eq_ignore_ascii_case("SIP") || version != "2.0" {
        return Err(invalid("Via", format!("protocol {protocol}/{version}")));
    }
    let transport_end = rest
        .find(|c: char| c.is_whitespace())
        .ok_or_else(|| invalid("Via", format!("no sent-by in {entry:?}")))?;
    let transport = rest[..transport_end].to_string();
    let mut segments = rest[transport_end..].split(';');
    let sent_by = segments.next().unwrap_or_default().trim().to_string();
    if sent_by.is_empty() || sent_by.contains(char::is_whitespace) {
        return Err(invalid("Via", format!("bad sent-by {sent_by:?}")));
    }
    let params = parse_params(segments, "Via")?;
    Ok(ViaEntry {
        transport,
        sent_by,
        params,
    })
}

fn parse_params<'a>(
    segments: impl Iterator<Item = &'a str>,
    header: &'static str,
) -> Result<Vec<(String, Option<String>)>, SipError> {
    segments
        .map(|segment| {
            let (name, value) = match segment.split_once('=') {
                Some((name, value)) => (name.trim(), Some(value.trim().to_string())),
                None => (segment.trim(), None),
            };
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(invalid(header, format!("bad parameter {segment:?}")));
            }
            if value.as_deref() == Some("") {
                return Err(invalid(header, format!("empty value for {name}")));
            }
            Ok((name.to_string(), value))
        })
        .collect()
}

/// A From, To or Contact value.
struct NameAddr {
    uri: String,
    params: Vec<(String, Option<String>)>,
}

impl NameAddr {
    fn param(&self, name: &str) -> Option<String> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone().unwrap_or_default())
    }
}

/// Index of the `"` that closes a quoted string whose opening quote was already
/// stripped, honouring backslash escapes (RFC 3261 §25.1 quoted-pair).
pub(crate) fn closing_quote(quoted: &str) -> Option<usize> {
    let mut escaped = false;
    quoted
        .char_indices()
        .find(|&(_, c)| {
            let closes = !escaped && c == '"';
            escaped = !escaped && c == '\\';
            closes
        })
        .map(|(index, _)| index)
}

/// RFC 3261 §20.10 `(name-addr / addr-spec) *(SEMI param)`.
fn parse_name_addr(value: &str, header: &'static str) -> Result<NameAddr, SipError> {
    let value = value.trim();
    let (uri, after) = if let Some(quoted) = value.strip_prefix('"') {
        let close = closing_quote(quoted)
            .ok_or_else(|| invalid(header, "unterminated quoted display name"))?;
        let rest = quoted[close + 1..].trim_start();
        bracketed(rest, header)?
    } else if let Some(open) = value.find('<') {
        let display = &value[..open];
        if !display
            .split_whitespace()
            .all(|word| word.bytes().all(is_token_byte))
        {
            return Err(invalid(
                header,
                format!("unquoted display name {display:?}"),
            ));
        }
        bracketed(&value[open..], header)?
    } else {
        // addr-spec: no display name, the URI ends at the first ';' and may not carry
        // ',', '?' or ';' of its own (RFC 3261 §20).
        let end = value.find(';').unwrap_or(value.len());
        let uri = value[..end].trim();
        if uri.contains([',', '?']) {
            return Err(invalid(header, format!("{uri:?} must be enclosed in <>")));
        }
        (uri.to_string(), &value[end..])
    };
    if uri.is_empty() || uri.contains(char::is_whitespace) || !uri.contains(':') {
        return Err(invalid(header, format!("bad URI {uri:?}")));
    }
    let after = after.trim_start();
    let params = if after.is_empty() {
        Vec::new()
    } else {
        let rest = after
            .strip_prefix(';')
            .ok_or_else(|| invalid(header, format!("unexpected {after:?}")))?;
        parse_params(rest.split(';'), header)?
    };
    Ok(NameAddr { uri, params })
}

fn bracketed<'a>(rest: &'a str, header: &'static str) -> Result<(String, &'a str), SipError> {
    let inner = rest
        .strip_prefix('<')
        .ok_or_else(|| invalid(header, "expected <URI>"))?;
    let close = inner
        .find('>')
        .ok_or_else(|| invalid(header, "unterminated <URI>"))?;
    Ok((inner[..close].to_string(), &inner[close + 1..]))
}

fn parse_call_id(value: &str) -> Result<String, SipError> {
    if value.is_empty() || value.contains(char::is_whitespace) {
        return Err(invalid("Call-ID", format!("{value:?}")));
    }
    Ok(value.to_string())
}

fn parse_cseq(value: &str) -> Result<(u32, String), SipError> {
    let mut words = value.split_whitespace();
    let (Some(number), Some(method), None) = (words.next(), words.next(), words.next()) else {
        return Err(invalid("CSeq", format!("{value:?} is not `number method`")));
    };
    if !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("CSeq", format!("{number:?} is not a number")));
    }
    // RFC 3261 §8.1.1.5: the sequence number is a 32-bit unsigned integer.
    let number: u32 = number
        .parse()
        .map_err(|_| invalid("CSeq", format!("{number} exceeds 2**32-1")))?;
    Ok((number, method.to_string()))
}

fn parse_max_forwards(value: &str) -> Result<u32, SipError> {
    value
        .parse::<u32>()
        .ok()
        .filter(|hops| *hops <= 255)
        .ok_or_else(|| invalid("Max-Forwards", format!("{value:?} is not 0-255")))
}

fn uri_scheme(uri: &str) -> String {
    uri.split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// User part of a sip/sips URI (without user parameters), or the number of a tel URI.
fn uri_user(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once(':')?;
    let user = match scheme.to_ascii_lowercase().as_str() {
        "sip" | "sips" => rest.split_once('@')?.0.split([':', ';']).next()?,
        "tel" => rest.split(';').next()?,
        _ => return None,
    };
    (!user.is_empty()).then(|| user.to_string())
}

fn host_of(sent_by: &str) -> String {
    if let Some(v6) = sent_by.strip_prefix('[') {
        return v6.split(']').next().unwrap_or_default().to_string();
    }
    sent_by.split(':').next().unwrap_or_default().to_string()
}

fn port_of(sent_by: &str) -> Option<u16> {
    let after_host = match sent_by.strip_prefix('[') {
        Some(v6) => v6.split_once(']')?.1,
        None => sent_by.split_once(':').map_or("", |(_, port)| port),
    };
    after_host.trim_start_matches(':').parse().ok()
}

/// True when `host` (a sent-by host) is an IP literal equal to `ip`.
fn same_ip(host: &str, ip: IpAddr) -> bool {
    host.parse::<IpAddr>().is_ok_and(|h| h == ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/torture/{name}.sip",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn request(bytes: &[u8]) -> Request {
        match parse(bytes) {
            Ok(SipMessage::Request(request)) => request,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    /// Parse then summarise, as the engine does for every request.
    fn check(bytes: &[u8]) -> Result<RequestSummary, SipError> {
        match parse(bytes)? {
            SipMessage::Request(request) => summary(&request),
            SipMessage::Response(response) => {
                response_summary(&response)?;
                Err(SipError::Parse("test expected a request".into()))
            }
        }
    }

    const INVITE: &str = "INVITE sip:12345@hotline.example SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n\
        Via: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bKproxy\r\n\
        Max-Forwards: 70\r\n\
        From: \"Caller\" <sip:13800138000@trunk.example>;tag=1928301774\r\n\
        To: <sip:12345@hotline.example>\r\n\
        Call-ID: a84b4c76e66710@trunk.example\r\n\
        CSeq: 314159 INVITE\r\n\
        Contact: <sip:13800138000@192.0.2.10:5060>\r\n\
        Content-Type: application/sdp\r\n\
        Content-Length: 4\r\n\r\nv=0\n";

    #[test]
    fn every_valid_torture_request_parses_and_summarises_r29() {
        for name in [
            "wsinv",
            "esc01",
            "escnull",
            "lwsdisp",
            "longreq",
            "dblreq",
            "semiuri",
            "transports",
            "mpart01",
        ] {
            let summary = check(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!summary.call_id.is_empty(), "{name}");
        }
    }

    #[test]
    fn valid_torture_requests_with_extension_methods_get_501() {
        // RFC 4475 3.1.1.2 and 3.1.1.5: well-formed, but endpoints answer 501.
        for name in ["intmeth", "esc02"] {
            let error = check(&fixture(name)).expect_err(name);
            assert!(
                matches!(error, SipError::UnknownMethod(_)),
                "{name}: {error}"
            );
            assert_eq!(error.status_code(), 501);
        }
    }

    #[test]
    fn valid_torture_responses_parse_and_summarise() {
        for (name, status) in [("unreason", 200), ("noreason", 100), ("bcast", 200)] {
            let Ok(SipMessage::Response(response)) = parse(&fixture(name)) else {
                panic!("{name} did not parse as a response");
            };
            assert_eq!(response_summary(&response).expect(name).status, status);
        }
    }

    #[test]
    fn the_tortuous_invite_yields_the_right_fields() {
        let s = check(&fixture("wsinv")).expect("wsinv");
        assert_eq!(s.method, Method::Invite);
        assert_eq!(s.call_id, "wsinv.ndaksdj@192.0.2.1");
        assert_eq!((s.cseq, s.cseq_method), (9, Method::Invite));
        assert_eq!(s.max_forwards, Some(68));
        assert_eq!(s.from_tag.as_deref(), Some("98asjd8"));
        assert_eq!(s.to_tag.as_deref(), Some("1918181833n"));
        assert_eq!(s.top_via_branch, "390skdjuw");
        assert_eq!(s.top_via_sent_by, "192.0.2.2");
        assert_eq!(s.from_user.as_deref(), Some("jdrosen"));
        assert_eq!(s.request_uri_user.as_deref(), Some("vivekg"));
        assert_eq!(s.contact.as_deref(), Some("sip:jdrosen@example.com"));
    }

    #[test]
    fn trailing_octets_in_a_datagram_are_ignored() {
        // RFC 4475 3.1.1.8: the INVITE after the REGISTER is noise.
        let request = request(&fixture("dblreq"));
        assert_eq!(request.method, Method::Register);
        assert!(request.body.is_empty());
        assert_eq!(
            summary(&request).expect("dblreq").call_id,
            "dblreq.0ha0isndaksdj99sdfafnl3lk233412"
        );
    }

    #[test]
    fn binary_bodies_survive_byte_for_byte() {
        let raw = fixture("mpart01");
        let request = request(&raw);
        assert_eq!(request.body.len(), 553);
        assert_eq!(&request.body[..], &raw[raw.len() - 553..]);
    }

    #[test]
    fn every_invalid_torture_message_is_refused() {
        // (fixture, status a UAS answers with; 0 = drop, it is a response)
        let cases = [
            ("badinv01", 400),
            ("clerr", 400),
            ("ncl", 400),
            ("scalar02", 400),
            ("quotbal", 400),
            ("ltgtruri", 400),
            ("lwsruri", 400),
            ("lwsstart", 400),
            ("trws", 400),
            ("escruri", 400),
            ("baddate", 400),
            ("regbadct", 400),
            ("badaspec", 400),
            ("baddn", 400),
            ("badvers", 505),
            ("mismatch01", 400),
            ("mismatch02", 501),
            ("scalarlg", 0),
            ("bigcode", 0),
        ];
        for (name, status) in cases {
            let bytes = fixture(name);
            let error = check(&bytes).expect_err(name);
            if status == 0 {
                assert!(bytes.starts_with(b"SIP/2.0 "), "{name}");
                assert!(bad_request_from_raw(&bytes, "x").is_none(), "{name}");
            } else {
                assert_eq!(error.status_code(), status, "{name}: {error}");
            }
        }
    }

    #[test]
    fn application_layer_torture_messages_get_their_answers() {
        // RFC 4475 3.2-3.4: the parser accepts; these are the UAS decisions.
        assert_eq!(
            check(&fixture("badbranch"))
                .expect("badbranch")
                .top_via_branch,
            "z9hG4bK"
        );
        assert_eq!(
            check(&fixture("insuf")),
            Err(SipError::MissingHeader("From"))
        );
        for name in ["unkscm", "novelsc"] {
            assert_eq!(
                check(&fixture(name)).expect_err(name).status_code(),
                416,
                "{name}"
            );
        }
        for name in ["multi01", "mcl01"] {
            assert_eq!(
                check(&fixture(name)).expect_err(name).status_code(),
                400,
                "{name}"
            );
        }
        for name in [
            "unksm2", "bext01", "invut", "regaut01", "zeromf", "cparam01", "cparam02", "regescrt",
            "sdp01",
        ] {
            check(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert_eq!(
            check(&fixture("zeromf")).expect("zeromf").max_forwards,
            Some(0)
        );
        // RFC 2543 peer: no branch, no Content-Length; the body runs to the datagram end.
        let inv2543 = request(&fixture("inv2543"));
        assert_eq!(inv2543.body.len(), 105);
        let s = summary(&inv2543).expect("inv2543");
        assert_eq!((s.top_via_branch.as_str(), s.from_tag), ("", None));
        assert_eq!(s.from_user.as_deref(), Some("+13035551111"));
    }

    #[test]
    fn lf_only_compact_and_folded_forms_parse() {
        let lf_only = INVITE.replace("\r\n", "\n");
        assert_eq!(check(lf_only.as_bytes()).expect("lf").cseq, 314159);
        let compact = INVITE
            .replace("Via:", "v:")
            .replace("From:", "f:")
            .replace("To:", "t:")
            .replace("Call-ID:", "i:")
            .replace("Contact:", "m:")
            .replace("Content-Length:", "l:");
        let s = check(compact.as_bytes()).expect("compact");
        assert_eq!(s.call_id, "a84b4c76e66710@trunk.example");
        assert_eq!(
            s.contact.as_deref(),
            Some("sip:13800138000@192.0.2.10:5060")
        );
        let folded = INVITE.replace(";tag=1928301774", "\r\n  ;tag=1928301774");
        assert_eq!(
            check(folded.as_bytes())
                .expect("folded")
                .from_tag
                .as_deref(),
            Some("1928301774")
        );
    }

    #[test]
    fn content_length_is_enforced_for_datagrams() {
        let longer = format!("{INVITE}TRAILING");
        assert_eq!(request(longer.as_bytes()).body, b"v=0\n");
        let shorter = INVITE.replace("Content-Length: 4", "Content-Length: 40");
        assert_eq!(
            parse(shorter.as_bytes()).map(|_| ()),
            Err(SipError::BodyLength {
                declared: 40,
                received: 4
            })
        );
    }

    #[test]
    fn comma_joined_vias_tel_uris_and_ipv6_are_understood() {
        let joined = INVITE.replace(
            "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\nVia: ",
            "Via: SIP/2.0/UDP [2001:db8::10]:5060;branch=z9hG4bK776asdhds;rport, ",
        );
        let s = check(joined.as_bytes()).expect("joined");
        assert_eq!(s.top_via_sent_by, "[2001:db8::10]:5060");
        assert_eq!(s.top_via_branch, "z9hG4bK776asdhds");
        let tel = INVITE
            .replace("INVITE sip:12345@hotline.example", "INVITE tel:12345")
            .replace(
                "<sip:13800138000@trunk.example>",
                "<tel:+8613800138000;phone-context=x>",
            );
        let s = check(tel.as_bytes()).expect("tel");
        assert_eq!(s.request_uri_user.as_deref(), Some("12345"));
        assert_eq!(s.from_user.as_deref(), Some("+8613800138000"));
    }

    #[test]
    fn cseq_problems_are_invalid_headers() {
        for (cseq, reason) in [
            ("CSeq: abc INVITE", "not a number"),
            ("CSeq: 4294967296 INVITE", "exceeds"),
            ("CSeq: 1 BYE", "does not match"),
            ("CSeq: 1", "not `number method`"),
        ] {
            let bytes = INVITE.replace("CSeq: 314159 INVITE", cseq);
            match check(bytes.as_bytes()) {
                Err(SipError::InvalidHeader {
                    name: "CSeq",
                    reason: got,
                }) => {
                    assert!(got.contains(reason), "{cseq}: {got}")
                }
                other => panic!("{cseq}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_400_is_built_from_a_request_the_parser_rejected() {
        for broken in [
            INVITE.replace("CSeq: 314159 INVITE", "CSeq: abc INVITE"),
            INVITE.replace("Content-Length: 4", "Content-Length: four"),
        ] {
            assert!(check(broken.as_bytes()).is_err());
            let answer = bad_request_from_raw(broken.as_bytes(), "Bad CSeq\r\nX").expect("400");
            let Ok(SipMessage::Response(response)) = parse(&answer) else {
                panic!("unparseable 400: {}", String::from_utf8_lossy(&answer));
            };
            assert_eq!(response.status_code.code(), 400);
            assert!(answer.starts_with(b"SIP/2.0 400 Bad CSeqX\r\n"));
            let fields = header_fields(&response.headers);
            let vias: Vec<_> = fields.iter().filter(|(n, _)| n == "Via").collect();
            assert_eq!(vias.len(), 2);
            assert!(vias[0].1.contains("z9hG4bK776asdhds"));
            assert_eq!(
                single(&fields, "Call-ID"),
                Ok("a84b4c76e66710@trunk.example")
            );
            assert!(single(&fields, "CSeq").expect("cseq").ends_with("INVITE"));
        }
    }

    #[test]
    fn no_400_for_acks_responses_or_messages_without_the_basics() {
        let ack = INVITE
            .replace("INVITE sip", "ACK sip")
            .replace("CSeq: 314159 INVITE", "CSeq: x ACK");
        assert_eq!(bad_request_from_raw(ack.as_bytes(), "bad"), None);
        let no_call_id = INVITE.replace("Call-ID: a84b4c76e66710@trunk.example\r\n", "");
        assert_eq!(bad_request_from_raw(no_call_id.as_bytes(), "bad"), None);
        assert_eq!(bad_request_from_raw(b"\x00\xff garbage", "bad"), None);
        // Compact forms are recognised too.
        let compact = INVITE.replace("Call-ID:", "i:").replace("Via:", "v:");
        assert!(bad_request_from_raw(compact.as_bytes(), "bad").is_some());
    }

    #[test]
    fn rport_and_received_are_filled_from_the_source() {
        let mut request = request(INVITE.as_bytes());
        let source: SocketAddr = "203.0.113.9:40000".parse().expect("addr");
        via_received_rport(&mut request, source).expect("via");
        let top = request.via_header().expect("via").value().to_string();
        assert!(
            top.starts_with("SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport=40000;received=203.0.113.9"),
            "{top}"
        );
        assert_eq!(response_destination(&request, source), source);
    }

    #[test]
    fn received_is_added_only_when_the_host_differs_without_rport() {
        let plain = INVITE.replace(";branch=z9hG4bK776asdhds;rport", ";branch=z9hG4bK776asdhds");
        let mut same = request(plain.as_bytes());
        via_received_rport(&mut same, "192.0.2.10:5060".parse().expect("addr")).expect("via");
        assert!(!same.via_header().expect("via").value().contains("received"));
        let mut nat = request(plain.as_bytes());
        let source: SocketAddr = "203.0.113.9:40000".parse().expect("addr");
        via_received_rport(&mut nat, source).expect("via");
        assert!(
            nat.via_header()
                .expect("via")
                .value()
                .contains(";received=203.0.113.9")
        );
        // Without rport the response goes to the sent-by port (RFC 3261 §18.2.2).
        assert_eq!(
            response_destination(&nat, source),
            "203.0.113.9:5060"
                .parse::<std::net::SocketAddr>()
                .expect("addr")
        );
    }

    #[test]
    fn identifiers_are_fresh_and_well_formed() {
        let (a, b) = (new_branch(), new_branch());
        assert!(a.starts_with("z9hG4bK") && a.len() > 20 && a != b);
        assert_ne!(new_tag(), new_tag());
        let call_id = new_call_id("hotline.example");
        assert!(call_id.ends_with("@hotline.example") && call_id.len() > 40);
    }

    #[test]
    fn garbage_never_panics() {
        for bytes in [
            &b""[..],
            b"\r\n\r\n",
            b"INVITE\r\n\r\n",
            b"SIP/2.0\r\n\r\n",
            b"\xff\xfe\r\n\r\n",
        ] {
            assert!(parse(bytes).is_err());
            let _ = bad_request_from_raw(bytes, "x");
        }
    }
}
