//! SIP extensions a request demands (RFC 3261 §8.2.2.3): the option tags of
//! `Require` (and `Proxy-Require`), which of them the engine does not support, and the
//! `420 Bad Extension` that lists them in `Unsupported`.
//!
//! Pure. The supported list is a parameter: the switch passes what it actually
//! implements (`timer` once it runs RFC 4028 session timers), so this module never
//! claims an extension on its behalf.

use super::builder::{self, ResponseBuilder};
use super::message::{Headers, Method, Request, Response};

/// Which header names the extensions: a UAS checks `Require` (§8.2.2.3); a proxy,
/// `Proxy-Require` (§16.3). The engine is a UAS to its peers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequireHeader {
    Require,
    ProxyRequire,
}

impl RequireHeader {
    pub fn name(self) -> &'static str {
        match self {
            RequireHeader::Require => "Require",
            RequireHeader::ProxyRequire => "Proxy-Require",
        }
    }
}

/// Every option tag the header lists, across repeated headers and comma lists, in
/// order, without duplicates (compared case-insensitively, §19.2).
pub fn required(headers: &Headers, header: RequireHeader) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for value in headers
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case(header.name()))
        .map(|h| h.value().to_string())
    {
        for tag in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if !tags.iter().any(|seen| seen.eq_ignore_ascii_case(tag)) {
                tags.push(tag.to_owned());
            }
        }
    }
    tags
}

/// The required option tags not in `supported`, in the order they were required.
pub fn unsupported(required: &[String], supported: &[&str]) -> Vec<String> {
    required
        .iter()
        .filter(|tag| !supported.iter().any(|ours| ours.eq_ignore_ascii_case(tag)))
        .cloned()
        .collect()
}

/// The extensions of `request`'s `Require` that the engine cannot honour; empty when
/// it may go on. ACK and CANCEL are never refused for their `Require` (§8.2.2.3: the
/// 420 would answer a request that gets no answer, or a transaction already decided).
pub fn check_request(request: &Request, supported: &[&str]) -> Vec<String> {
    if matches!(request.method, Method::Ack | Method::Cancel) {
        return Vec::new();
    }
    unsupported(
        &required(&request.headers, RequireHeader::Require),
        supported,
    )
}

/// `420 Bad Extension` with `Unsupported:` naming what we cannot do (§8.2.2.3).
pub fn bad_extension(request: &Request, unsupported: &[String], to_tag: &str) -> Response {
    ResponseBuilder::to(request, 420)
        .to_tag(to_tag)
        .header(builder::unsupported(unsupported))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{self, SipMessage};

    fn request(extra: &str, method: &str) -> Request {
        let text = format!(
            "{method} sip:12345@hotline.example SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:13800138000@trunk.example>;tag=1928301774\r\n\
             To: <sip:12345@hotline.example>\r\n\
             Call-ID: ext@trunk.example\r\n\
             CSeq: 1 {method}\r\n\
             {extra}Content-Length: 0\r\n\r\n"
        );
        match message::parse(text.as_bytes()) {
            Ok(SipMessage::Request(request)) => request,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn option_tags_are_gathered_across_headers_and_lists_rfc3261_20_32() {
        let r = request(
            "Require: timer, 100rel\r\nRequire: Timer,foo\r\nProxy-Require: sec-agree\r\n",
            "INVITE",
        );
        assert_eq!(
            required(&r.headers, RequireHeader::Require),
            ["timer", "100rel", "foo"]
        );
        assert_eq!(
            required(&r.headers, RequireHeader::ProxyRequire),
            ["sec-agree"]
        );
        assert!(required(&request("", "INVITE").headers, RequireHeader::Require).is_empty());
    }

    #[test]
    fn unsupported_keeps_the_required_order_and_ignores_case() {
        let required = vec!["timer".to_string(), "100rel".into(), "FOO".into()];
        assert_eq!(unsupported(&required, &["TIMER"]), ["100rel", "FOO"]);
        assert_eq!(
            unsupported(&required, &["timer", "100rel", "foo"]),
            Vec::<String>::new()
        );
        assert_eq!(unsupported(&required, &[]), ["timer", "100rel", "FOO"]);
    }

    #[test]
    fn require_timer_without_timer_support_gets_420_with_unsupported_rfc3261_8_2_2_3() {
        let invite = request("Require: timer\r\nSupported: timer\r\n", "INVITE");
        let missing = check_request(&invite, &[]);
        assert_eq!(missing, ["timer"]);
        let response = bad_extension(&invite, &missing, "our-tag");
        let bytes = response.to_bytes();
        let Ok(SipMessage::Response(parsed)) = message::parse(&bytes) else {
            panic!("{}", String::from_utf8_lossy(&bytes));
        };
        let summary = message::response_summary(&parsed).expect("summary");
        assert_eq!(summary.status, 420);
        assert_eq!(summary.to_tag.as_deref(), Some("our-tag"));
        assert_eq!(summary.call_id, "ext@trunk.example");
        let unsupported_values: Vec<String> = parsed
            .headers
            .iter()
            .filter(|h| h.name() == "Unsupported")
            .map(|h| h.value().to_string())
            .collect();
        assert_eq!(unsupported_values, ["timer"]);
        // Once the switch runs session timers it passes "timer" and the INVITE proceeds.
        assert!(check_request(&invite, &["timer"]).is_empty());
    }

    #[test]
    fn ack_and_cancel_are_never_refused_for_require_rfc3261_8_2_2_3() {
        for method in ["ACK", "CANCEL"] {
            assert!(check_request(&request("Require: foo\r\n", method), &[]).is_empty());
        }
        assert_eq!(
            check_request(&request("Require: foo\r\n", "BYE"), &[]),
            ["foo"]
        );
    }
}
