//! SIP registrar (R29, RFC 3261 §10.3): where each agent's softphone can be reached.
//!
//! Pure. The engine's endpoint authenticates a REGISTER (see [`crate::sip::digest`]),
//! turns it into a [`RegisterRequest`] with [`RegisterRequest::from_request`], feeds it
//! to [`Registrar::register`] with the current [`Instant`] and answers from the
//! [`RegisterOutcome`]. When an agent must be called, [`Registrar::lookup`] gives the
//! phone's most recent binding. Bindings lapse at their expiry: the driver sleeps until
//! [`Registrar::poll_timeout`], calls [`Registrar::handle_timeout`], and drains
//! [`Registrar::poll_event`] to tell the ACD which agents came and went.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::sip::TransportKind;
use crate::sip::message::{Request, SipError, closing_quote, split_outside_quotes, summary};

/// Bindings kept per address-of-record. An agent has one phone; a few more cover a
/// phone that rebooted with a new contact before its old binding lapsed. Past this the
/// least recently refreshed binding goes, so a misbehaving client cannot grow the table.
const MAX_BINDINGS_PER_AOR: usize = 4;

/// Why a REGISTER cannot be processed. Every variant is answered with `400`, except
/// [`RegistrarError::InvalidLimits`], a configuration error.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegistrarError {
    /// The registration intervals do not satisfy `0 < min ≤ default ≤ max`.
    #[error(
        "registration intervals must satisfy 0 < min <= default <= max (min {min:?}, default {default:?}, max {max:?})"
    )]
    InvalidLimits {
        min: Duration,
        default: Duration,
        max: Duration,
    },
    /// The request fails the checks every request must pass (RFC 3261 §8.2).
    #[error(transparent)]
    Message(#[from] SipError),
    /// A header the registrar reads is unusable.
    #[error("invalid {name} header: {reason}")]
    InvalidHeader {
        /// Header name, long form.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// `Contact: *` with other contacts or without `Expires: 0` (RFC 3261 §10.3 step 6).
    #[error("Contact: * must stand alone and come with Expires: 0")]
    BadWildcard,
}

/// One Contact of a REGISTER.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactEntry {
    /// The contact URI, without angle brackets.
    pub uri: String,
    /// The `expires` parameter in seconds; absent or unreadable gives `None`.
    pub expires: Option<u32>,
}

/// The Contact headers of a REGISTER.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Contacts {
    /// `Contact: *`: every binding of the address-of-record (with `Expires: 0`).
    Wildcard,
    /// The listed contacts; none at all is a query for the current bindings.
    List(Vec<ContactEntry>),
}

/// A REGISTER, reduced to what the registrar decides on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterRequest {
    /// Address-of-record: the agent number, user part of the To URI.
    pub aor: String,
    pub contacts: Contacts,
    /// The `Expires` header in seconds, the default for contacts without `expires`.
    pub expires_header: Option<u32>,
    pub call_id: String,
    pub cseq: u32,
    /// Where the REGISTER came from (behind NAT, where to send the agent's calls).
    pub source: SocketAddr,
    pub transport: TransportKind,
}

impl RegisterRequest {
    /// Reads a REGISTER: To user part, Contacts, Expires, Call-ID and CSeq.
    pub fn from_request(
        request: &Request,
        source: SocketAddr,
        transport: TransportKind,
    ) -> Result<Self, RegistrarError> {
        let summary = summary(request)?;
        let to = header_values(request, &["to", "t"]);
        let to = to.first().ok_or(SipError::MissingHeader("To"))?;
        Ok(RegisterRequest {
            aor: address_of_record(to)?,
            contacts: contacts_of(request)?,
            expires_header: expires_of(request)?,
            call_id: summary.call_id,
            cseq: summary.cseq,
            source,
            transport,
        })
    }
}

/// The Contact headers of a request, comma-joined or one per line, compact `m:` too.
/// `*` must be the only contact.
pub fn contacts_of(request: &Request) -> Result<Contacts, RegistrarError> {
    let mut entries = Vec::new();
    let mut wildcard = false;
    for value in header_values(request, &["contact", "m"]) {
        for element in split_outside_quotes(&value, ',') {
            if element == "*" {
                wildcard = true;
            } else if !element.is_empty() {
                entries.push(parse_contact(&element)?);
            }
        }
    }
    match (wildcard, entries.is_empty()) {
        (false, _) => Ok(Contacts::List(entries)),
        (true, true) => Ok(Contacts::Wildcard),
        (true, false) => Err(RegistrarError::BadWildcard),
    }
}

/// The `Expires` header in seconds (RFC 3261 §20.19: larger than 2³²−1 means 2³²−1).
pub fn expires_of(request: &Request) -> Result<Option<u32>, RegistrarError> {
    let values = header_values(request, &["expires"]);
    match values.as_slice() {
        [] => Ok(None),
        [value] => parse_delta_seconds(value.trim()).map(Some).ok_or_else(|| {
            RegistrarError::InvalidHeader {
                name: "Expires",
                reason: format!("{value:?} is not a number of seconds"),
            }
        }),
        _ => Err(RegistrarError::InvalidHeader {
            name: "Expires",
            reason: "appears more than once".into(),
        }),
    }
}

/// Where an agent's phone can be reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The agent number.
    pub aor: String,
    /// The contact URI, without angle brackets.
    pub contact: String,
    /// The REGISTER's source address: behind NAT, the only reachable one.
    pub source: SocketAddr,
    pub transport: TransportKind,
    pub expires_at: Instant,
    pub call_id: String,
    pub cseq: u32,
    /// When the binding was last added or refreshed; the latest one is called.
    pub updated_at: Instant,
}

impl Binding {
    /// Time left before the binding lapses.
    pub fn expires_in(&self, now: Instant) -> Duration {
        self.expires_at.saturating_duration_since(now)
    }

    /// The Contact value for the `200` (RFC 3261 §10.3 step 8): `<uri>;expires=N`.
    pub fn contact_value(&self, now: Instant) -> String {
        format!(
            "<{}>;expires={}",
            self.contact,
            self.expires_in(now).as_secs()
        )
    }
}

/// What to answer a REGISTER with.
#[derive(Debug, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// `200`: contacts added or refreshed. `bindings` are all of the AOR's, for the
    /// Contact headers; `expires` is the interval granted (clamped to the maximum).
    Ok {
        bindings: Vec<Binding>,
        expires: Duration,
    },
    /// `200`: a query (no Contact); the current bindings.
    Current { bindings: Vec<Binding> },
    /// `200`: contacts removed (`Expires: 0` or `Contact: *`); what remains.
    Removed { bindings: Vec<Binding> },
    /// `423 Interval Too Brief` with `Min-Expires` (RFC 3261 §10.3 step 6).
    IntervalTooBrief { min_expires: Duration },
    /// A request older than the binding it would change (same Call-ID, CSeq not
    /// higher): nothing changed; RFC 3261 §10.3 step 7 says fail it, with `500`.
    OutOfOrder,
    /// `400`.
    BadRequest(RegistrarError),
}

/// Why an agent is no longer registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnregisterReason {
    /// The phone did not refresh in time.
    Expired,
    /// The phone unregistered (`Expires: 0` or `Contact: *`).
    Removed,
}

/// A change the ACD cares about: an agent's phone became reachable or stopped being.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistrarEvent {
    Registered {
        aor: String,
    },
    Unregistered {
        aor: String,
        reason: UnregisterReason,
    },
}

/// The location service: bindings per agent, their expiry, and the events.
#[derive(Debug)]
pub struct Registrar {
    default_expires: Duration,
    min_expires: Duration,
    max_expires: Duration,
    // Ordered so that expiries at the same instant come out in a stable order.
    bindings: BTreeMap<String, Vec<Binding>>,
    events: VecDeque<RegistrarEvent>,
}

impl Registrar {
    /// A registrar granting `default_expires` to contacts that ask for nothing,
    /// refusing less than `min_expires` with `423`, and cutting requests down to
    /// `max_expires`. Intervals are counted in whole seconds.
    pub fn new(
        default_expires: Duration,
        min_expires: Duration,
        max_expires: Duration,
    ) -> Result<Self, RegistrarError> {
        if min_expires.is_zero() || min_expires > default_expires || default_expires > max_expires {
            return Err(RegistrarError::InvalidLimits {
                min: min_expires,
                default: default_expires,
                max: max_expires,
            });
        }
        Ok(Registrar {
            default_expires,
            min_expires,
            max_expires,
            bindings: BTreeMap::new(),
            events: VecDeque::new(),
        })
    }

    /// Applies a REGISTER (RFC 3261 §10.3 steps 6–8). All contacts are checked before
    /// any binding changes, so a refused request changes nothing.
    pub fn register(&mut self, now: Instant, request: RegisterRequest) -> RegisterOutcome {
        // Lapsed bindings go first, so their event precedes this request's.
        self.handle_timeout(now);
        match &request.contacts {
            Contacts::Wildcard => self.remove_all(request),
            Contacts::List(entries) if entries.is_empty() => RegisterOutcome::Current {
                bindings: self.bindings(&request.aor).to_vec(),
            },
            Contacts::List(entries) => {
                let mut granted = Vec::with_capacity(entries.len());
                for entry in entries {
                    match self.grant(entry.expires.or(request.expires_header)) {
                        Ok(interval) => granted.push(interval),
                        Err(outcome) => return outcome,
                    }
                }
                let existing = self.bindings(&request.aor);
                let stale = entries.iter().any(|entry| {
                    existing.iter().any(|binding| {
                        same_uri(&binding.contact, &entry.uri) && is_out_of_order(binding, &request)
                    })
                });
                if stale {
                    return RegisterOutcome::OutOfOrder;
                }
                self.update(now, &request, entries, &granted)
            }
        }
    }

    /// The binding to call the agent on: the most recently refreshed.
    pub fn lookup(&self, aor: &str) -> Option<&Binding> {
        self.bindings(aor)
            .iter()
            .max_by_key(|binding| binding.updated_at)
    }

    /// Every live binding of an agent.
    pub fn bindings(&self, aor: &str) -> &[Binding] {
        self.bindings.get(aor).map_or(&[], Vec::as_slice)
    }

    /// The agents with at least one binding, in order.
    pub fn registered(&self) -> impl Iterator<Item = &str> {
        self.bindings.keys().map(String::as_str)
    }

    /// When the next binding lapses.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.bindings
            .values()
            .flatten()
            .map(|binding| binding.expires_at)
            .min()
    }

    /// Drops the bindings that have lapsed by `now`; an agent left with none is
    /// reported [`UnregisterReason::Expired`].
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut emptied = Vec::new();
        for (aor, bindings) in &mut self.bindings {
            bindings.retain(|binding| binding.expires_at > now);
            if bindings.is_empty() {
                emptied.push(aor.clone());
            }
        }
        for aor in emptied {
            self.bindings.remove(&aor);
            self.events.push_back(RegistrarEvent::Unregistered {
                aor,
                reason: UnregisterReason::Expired,
            });
        }
    }

    /// The next change to report, oldest first.
    pub fn poll_event(&mut self) -> Option<RegistrarEvent> {
        self.events.pop_front()
    }

    /// The interval to grant for a requested one (`None`: the default); `Ok(ZERO)`
    /// removes.
    fn grant(&self, requested: Option<u32>) -> Result<Duration, RegisterOutcome> {
        let requested = requested.map_or(self.default_expires, |secs| {
            Duration::from_secs(u64::from(secs))
        });
        if requested.is_zero() {
            return Ok(Duration::ZERO);
        }
        if requested < self.min_expires {
            return Err(RegisterOutcome::IntervalTooBrief {
                min_expires: self.min_expires,
            });
        }
        Ok(requested.min(self.max_expires))
    }

    fn remove_all(&mut self, request: RegisterRequest) -> RegisterOutcome {
        if request.expires_header != Some(0) {
            return RegisterOutcome::BadRequest(RegistrarError::BadWildcard);
        }
        let existing = self.bindings(&request.aor);
        if existing
            .iter()
            .any(|binding| is_out_of_order(binding, &request))
        {
            return RegisterOutcome::OutOfOrder;
        }
        if self.bindings.remove(&request.aor).is_some() {
            self.events.push_back(RegistrarEvent::Unregistered {
                aor: request.aor,
                reason: UnregisterReason::Removed,
            });
        }
        RegisterOutcome::Removed {
            bindings: Vec::new(),
        }
    }

    fn update(
        &mut self,
        now: Instant,
        request: &RegisterRequest,
        entries: &[ContactEntry],
        granted: &[Duration],
    ) -> RegisterOutcome {
        let bindings = self.bindings.entry(request.aor.clone()).or_default();
        let was_registered = !bindings.is_empty();
        let mut added = None;
        for (entry, &interval) in entries.iter().zip(granted) {
            let position = bindings
                .iter()
                .position(|binding| same_uri(&binding.contact, &entry.uri));
            if interval.is_zero() {
                if let Some(index) = position {
                    bindings.remove(index);
                }
                continue;
            }
            let binding = Binding {
                aor: request.aor.clone(),
                contact: entry.uri.clone(),
                source: request.source,
                transport: request.transport,
                expires_at: now + interval,
                call_id: request.call_id.clone(),
                cseq: request.cseq,
                updated_at: now,
            };
            match position {
                Some(index) => bindings[index] = binding,
                None => bindings.push(binding),
            }
            added = Some(interval);
        }
        while bindings.len() > MAX_BINDINGS_PER_AOR {
            let oldest = bindings
                .iter()
                .enumerate()
                .min_by_key(|(_, binding)| binding.updated_at)
                .map_or(0, |(index, _)| index);
            bindings.remove(oldest);
        }
        let current = bindings.clone();
        if current.is_empty() {
            self.bindings.remove(&request.aor);
        }
        match (was_registered, current.is_empty()) {
            (false, false) => self.events.push_back(RegistrarEvent::Registered {
                aor: request.aor.clone(),
            }),
            (true, true) => self.events.push_back(RegistrarEvent::Unregistered {
                aor: request.aor.clone(),
                reason: UnregisterReason::Removed,
            }),
            _ => {}
        }
        match added {
            Some(expires) => RegisterOutcome::Ok {
                bindings: current,
                expires,
            },
            None => RegisterOutcome::Removed { bindings: current },
        }
    }
}

/// RFC 3261 §10.3 step 7: a binding is only changed by a newer request of the same
/// registration (Call-ID); another Call-ID is another registration and always wins.
fn is_out_of_order(binding: &Binding, request: &RegisterRequest) -> bool {
    binding.call_id == request.call_id && request.cseq <= binding.cseq
}

/// URI equality as RFC 3261 §19.1.4 has it for what phones vary: scheme and host are
/// case-insensitive, the user part is not.
fn same_uri(a: &str, b: &str) -> bool {
    fn normalise(uri: &str) -> (String, String) {
        let (scheme, rest) = uri.split_once(':').unwrap_or(("", uri));
        let (user, host) = match rest.rsplit_once('@') {
            Some((user, host)) => (format!("{}:{user}", scheme.to_ascii_lowercase()), host),
            None => (scheme.to_ascii_lowercase(), rest),
        };
        (user, host.to_ascii_lowercase())
    }
    normalise(a) == normalise(b)
}

/// The values of the headers with any of `names` (lowercase), in order.
fn header_values(request: &Request, names: &[&str]) -> Vec<String> {
    request
        .headers
        .iter()
        .filter(|header| {
            names
                .iter()
                .any(|name| header.name().eq_ignore_ascii_case(name))
        })
        .map(|header| header.value().trim().to_string())
        .collect()
}

/// The agent number of a To value: the user part of a sip/sips URI, or a tel number.
fn address_of_record(to: &str) -> Result<String, RegistrarError> {
    let (uri, _) = split_name_addr(to)
        .map_err(|reason| RegistrarError::InvalidHeader { name: "To", reason })?;
    let invalid = |reason: &str| RegistrarError::InvalidHeader {
        name: "To",
        reason: format!("{reason} in {uri:?}"),
    };
    let (scheme, rest) = uri.split_once(':').ok_or_else(|| invalid("no scheme"))?;
    let user = if scheme.eq_ignore_ascii_case("tel") {
        rest.split(';').next().unwrap_or_default()
    } else if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
        let (userinfo, _) = rest
            .rsplit_once('@')
            .ok_or_else(|| invalid("no user part"))?;
        // A password in the URI is not part of the identity.
        userinfo.split(':').next().unwrap_or_default()
    } else {
        return Err(invalid("unsupported scheme"));
    };
    if user.is_empty() {
        return Err(invalid("empty user part"));
    }
    Ok(user.to_string())
}

/// One Contact element: `name-addr` or `addr-spec`, then `;params`.
fn parse_contact(element: &str) -> Result<ContactEntry, RegistrarError> {
    let (uri, params) =
        split_name_addr(element).map_err(|reason| RegistrarError::InvalidHeader {
            name: "Contact",
            reason,
        })?;
    if !uri.contains(':') || uri.contains(char::is_whitespace) {
        return Err(RegistrarError::InvalidHeader {
            name: "Contact",
            reason: format!("bad URI {uri:?}"),
        });
    }
    let expires = params
        .split(';')
        .filter_map(|param| param.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("expires"))
        .and_then(|(_, value)| parse_delta_seconds(value.trim().trim_matches('"')));
    Ok(ContactEntry { uri, expires })
}

/// Splits `"Name" <uri>;params`, `Name <uri>;params` or `uri;params` into the URI and
/// the parameter text after it (starting after the first `;`, or empty).
fn split_name_addr(value: &str) -> Result<(String, String), String> {
    let value = value.trim();
    let search_from = if let Some(quoted) = value.strip_prefix('"') {
        let close = closing_quote(quoted).ok_or("unterminated display name")?;
        close + 2
    } else {
        0
    };
    let rest = &value[search_from..];
    let (uri, after) = match rest.find('<') {
        Some(open) => {
            let inner = &rest[open + 1..];
            let close = inner.find('>').ok_or("missing '>'")?;
            (&inner[..close], &inner[close + 1..])
        }
        None if search_from > 0 => return Err("display name without <uri>".into()),
        None => match rest.find(';') {
            Some(semicolon) => (&rest[..semicolon], &rest[semicolon..]),
            None => (rest, ""),
        },
    };
    let uri = uri.trim();
    if uri.is_empty() {
        return Err("empty URI".into());
    }
    let after = after.trim();
    let params = match after.strip_prefix(';') {
        Some(params) => params.to_string(),
        None if after.is_empty() => String::new(),
        None => return Err(format!("unexpected {after:?} after the URI")),
    };
    Ok((uri.to_string(), params))
}

/// RFC 3261 delta-seconds: digits; more than 2³²−1 means 2³²−1.
fn parse_delta_seconds(value: &str) -> Option<u32> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(value.parse::<u32>().unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{SipMessage, parse};

    const PHONE: &str = "192.0.2.20:5062";

    fn registrar() -> Registrar {
        Registrar::new(
            Duration::from_secs(600),
            Duration::from_secs(60),
            Duration::from_secs(3600),
        )
        .expect("limits")
    }

    fn register(
        aor: &str,
        contact: &str,
        expires: Option<u32>,
        call_id: &str,
        cseq: u32,
    ) -> RegisterRequest {
        RegisterRequest {
            aor: aor.into(),
            contacts: Contacts::List(vec![ContactEntry {
                uri: contact.into(),
                expires: None,
            }]),
            expires_header: expires,
            call_id: call_id.into(),
            cseq,
            source: PHONE.parse().expect("addr"),
            transport: TransportKind::Udp,
        }
    }

    fn events(registrar: &mut Registrar) -> Vec<RegistrarEvent> {
        std::iter::from_fn(|| registrar.poll_event()).collect()
    }

    fn registered(aor: &str) -> RegistrarEvent {
        RegistrarEvent::Registered { aor: aor.into() }
    }

    fn unregistered(aor: &str, reason: UnregisterReason) -> RegistrarEvent {
        RegistrarEvent::Unregistered {
            aor: aor.into(),
            reason,
        }
    }

    fn request(text: &str) -> Request {
        match parse(text.as_bytes()) {
            Ok(SipMessage::Request(request)) => request,
            other => panic!("not a request: {other:?}"),
        }
    }

    const REGISTER: &str = "REGISTER sip:hotline.example SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.20:5062;branch=z9hG4bKreg1;rport\r\n\
        Max-Forwards: 70\r\n\
        From: \"Agent 1001\" <sip:1001@hotline.example>;tag=a1\r\n\
        To: \"Agent 1001\" <sip:1001@hotline.example>\r\n\
        Call-ID: reg-1@192.0.2.20\r\n\
        CSeq: 2 REGISTER\r\n\
        Contact: <sip:1001@192.0.2.20:5062;transport=udp>;expires=300;q=0.9\r\n\
        Expires: 1200\r\n\
        Content-Length: 0\r\n\r\n";

    #[test]
    fn r29_a_phone_registers_and_is_found() {
        let mut registrar = registrar();
        let t0 = Instant::now();
        let outcome = registrar.register(
            t0,
            register("1001", "sip:1001@192.0.2.20:5062", Some(300), "c1", 1),
        );
        let RegisterOutcome::Ok { bindings, expires } = outcome else {
            panic!("{outcome:?}");
        };
        assert_eq!(expires, Duration::from_secs(300));
        assert_eq!(bindings.len(), 1);
        assert_eq!(
            bindings[0].contact_value(t0),
            "<sip:1001@192.0.2.20:5062>;expires=300"
        );
        let binding = registrar.lookup("1001").expect("binding");
        assert_eq!(
            binding.source,
            PHONE.parse::<std::net::SocketAddr>().expect("addr")
        );
        assert_eq!(binding.expires_at, t0 + Duration::from_secs(300));
        assert_eq!(registrar.lookup("1002"), None);
        assert_eq!(events(&mut registrar), [registered("1001")]);
        assert_eq!(
            registrar.poll_timeout(),
            Some(t0 + Duration::from_secs(300))
        );
        assert_eq!(registrar.registered().collect::<Vec<_>>(), ["1001"]);
    }

    #[test]
    fn r29_a_refresh_before_expiry_keeps_the_agent_registered_silently() {
        let mut registrar = registrar();
        let t0 = Instant::now();
        registrar.register(
            t0,
            register("1001", "sip:1001@192.0.2.20:5062", Some(300), "c1", 1),
        );
        events(&mut registrar);
        for (step, cseq) in (1..=5u32).zip(2..) {
            let now = t0 + Duration::from_secs(u64::from(step) * 280);
            registrar.handle_timeout(now);
            let outcome = registrar.register(
                now,
                register("1001", "SIP:1001@192.0.2.20:5062", Some(300), "c1", cseq),
            );
            assert!(matches!(outcome, RegisterOutcome::Ok { .. }), "{outcome:?}");
            assert_eq!(
                registrar.poll_timeout(),
                Some(now + Duration::from_secs(300))
            );
        }
        assert_eq!(events(&mut registrar), []);
        assert_eq!(
            registrar.bindings("1001").len(),
            1,
            "the refresh updated the binding"
        );
    }

    #[test]
    fn r29_a_binding_that_is_not_refreshed_expires_at_its_instant() {
        let mut registrar = registrar();
        let t0 = Instant::now();
        registrar.register(
            t0,
            register("1001", "sip:1001@192.0.2.20:5062", Some(300), "c1", 1),
        );
        registrar.register(
            t0 + Duration::from_secs(10),
            register("1002", "sip:1002@192.0.2.21", None, "c2", 1),
        );
        events(&mut registrar);
        let deadline = registrar.poll_timeout().expect("deadline");
        assert_eq!(deadline, t0 + Duration::from_secs(300));
        registrar.handle_timeout(deadline - Duration::from_millis(1));
        assert_eq!(events(&mut registrar), []);
        registrar.handle_timeout(deadline);
        assert_eq!(
            events(&mut registrar),
            [unregistered("1001", UnregisterReason::Expired)]
        );
        assert_eq!(registrar.lookup("1001"), None);
        // The default interval applied to 1002, which asked for none.
        assert_eq!(
            registrar.poll_timeout(),
            Some(t0 + Duration::from_secs(610))
        );
        registrar.handle_timeout(t0 + Duration::from_secs(610));
        assert_eq!(
            events(&mut registrar),
            [unregistered("1002", UnregisterReason::Expired)]
        );
        assert_eq!(registrar.poll_timeout(), None);
    }

    #[test]
    fn r29_expires_zero_unregisters() {
        let mut registrar = registrar();
        let t0 = Instant::now();
        registrar.register(
            t0,
            register("1001", "sip:1001@192.0.2.20:5062", Some(300), "c1", 1),
        );
        let outcome = registrar.register(
            t0,
            register("1001", "sip:1001@192.0.2.20:5062", Some(0), "c1", 2),
        );
        assert_eq!(outcome, RegisterOutcome::Removed { bindings: vec![] });
        assert_eq!(
            events(&mut registrar),
            [
                registered("1001"),
                unregistered("1001", UnregisterReason::Removed)
            ]
        );
        assert_eq!(registrar.lookup("1001"), None);
        assert_eq!(registrar.poll_timeout(), None);
        // Removing what is not there is fine and silent.
        let outcome = registrar.register(
            t0,
            register("1001", "sip:1001@192.0.2.20:5062", Some(0), "c1", 3),
        );
        assert_eq!(outcome, RegisterOutcome::Removed { bindings: vec![] });
        assert_eq!(events(&mut registrar), []);
    }

    #[test]
    fn a_wildcard_with_expires_zero_removes_every_binding() {
        let mut registrar = registrar();
        let t0 = Instant::now();
        registrar.register(
            t0,
            register("1001", "sip:1001@192.0.2.20:5062", None, "c1", 1),
        );
        registrar.register(
            t0,
            register("1001", "sip:1001@198.51.100.7:5060", None, "c2", 1),
        );
        assert_eq!(registrar.bindings("1001").len(), 2);
        let mut wildcard = register("1001", "x", Some(0), "c3", 1);
        wildcard.contacts = Contacts::Wildcard;
        assert_eq!(
            registrar.register(t0, wildcard.clone()),
            RegisterOutcome::Removed { bindings: vec![] }
        );
        assert_eq!(
            events(&mut registrar),
            [
                registered("1001"),
                unregistered("1001", UnregisterReason::Removed)
            ]
        );
        wildcard.expires_header = Some(60);
        assert_eq!(
            registrar.register(t0, wildcard),
            RegisterOutcome::BadRequest(RegistrarError::BadWildcard)
        );
    }

    #[test]
    fn too_brief_intervals_get_423_and_long_ones_are_clamped() {
        let mut registrar = registrar();
        let t0 = Instant::now();
        assert_eq!(
            registrar.register(
                t0,
                register("1001", "sip:1001@192.0.2.20", Some(30), "c1", 1)
            ),
            RegisterOutcome::IntervalTooBrief {
                min_expires: Duration::from_secs(60)
            }
        );
        assert_eq!(
            registrar.lookup("1001"),
            None,
            "a refused request changes nothing"
        );
        let RegisterOutcome::Ok { expires, .. } = registrar.register(
            t0,
            register("1001", "sip:1001@192.0.2.20", Some(86_400), "c1", 2),
        ) else {
            panic!("not registered");
        };
        assert_eq!(expires, Duration::from_secs(3600));
        // The contact's own expires parameter wins over the Expires header.
        let mut request = register("1001", "sip:1001@192.0.2.20", Some(30), "c1", 3);
        request.contacts = Contacts::List(vec![ContactEntry {
            uri: "sip:1001@192.0.2.20".into(),
            expires: Some(120),
        }]);
        assert!(matches!(
            registrar.register(t0, request),
            RegisterOutcome::Ok { expires, .. } if expires == Duration::from_secs(120)
        ));
    }

    #[test]
    fn an_older_request_of_the_same_registration_is_refused() {
        let mut registrar = registrar();
        let t0 = Instant::now();
        registrar.register(
            t0,
            register("1001", "sip:1001@192.0.2.20", Some(300), "c1", 5),
        );
        for cseq in [5, 4] {
            assert_eq!(
                registrar.register(
                    t0,
                    register("1001", "sip:1001@192.0.2.20", Some(0), "c1", cseq)
                ),
                RegisterOutcome::OutOfOrder
            );
        }
        assert!(registrar.lookup("1001").is_some());
        // A rebooted phone starts a new Call-ID at CSeq 1 and takes over.
        assert!(matches!(
            registrar.register(
                t0,
                register("1001", "sip:1001@192.0.2.20", Some(300), "fresh", 1)
            ),
            RegisterOutcome::Ok { .. }
        ));
        assert_eq!(registrar.lookup("1001").expect("binding").call_id, "fresh");
    }

    #[test]
    fn the_latest_phone_is_called_and_bindings_stay_bounded() {
        let mut registrar = registrar();
        let t0 = Instant::now();
        for port in 0..6u64 {
            let contact = format!("sip:1001@192.0.2.20:{}", 5060 + port);
            registrar.register(
                t0 + Duration::from_secs(port),
                register("1001", &contact, None, &format!("c{port}"), 1),
            );
        }
        assert_eq!(registrar.bindings("1001").len(), MAX_BINDINGS_PER_AOR);
        assert_eq!(
            registrar.lookup("1001").expect("binding").contact,
            "sip:1001@192.0.2.20:5065"
        );
        let query = register("1001", "unused", None, "q", 1);
        let outcome = registrar.register(
            t0 + Duration::from_secs(10),
            RegisterRequest {
                contacts: Contacts::List(vec![]),
                ..query
            },
        );
        assert!(
            matches!(outcome, RegisterOutcome::Current { bindings } if bindings.len() == MAX_BINDINGS_PER_AOR)
        );
    }

    #[test]
    fn a_register_after_the_deadline_reports_the_lapse_first() {
        let mut registrar = registrar();
        let t0 = Instant::now();
        registrar.register(
            t0,
            register("1001", "sip:1001@192.0.2.20", Some(60), "c1", 1),
        );
        // The driver was late: the phone re-registers after the binding lapsed.
        registrar.register(
            t0 + Duration::from_secs(61),
            register("1001", "sip:1001@192.0.2.20", Some(60), "c1", 2),
        );
        assert_eq!(
            events(&mut registrar),
            [
                registered("1001"),
                unregistered("1001", UnregisterReason::Expired),
                registered("1001")
            ]
        );
    }

    #[test]
    fn limits_must_be_ordered() {
        let s = Duration::from_secs;
        for (default, min, max) in [
            (s(600), s(0), s(3600)),
            (s(30), s(60), s(3600)),
            (s(600), s(60), s(300)),
        ] {
            assert!(matches!(
                Registrar::new(default, min, max),
                Err(RegistrarError::InvalidLimits { .. })
            ));
        }
    }

    #[test]
    fn r29_a_real_register_is_read_through_the_facade() {
        let source: SocketAddr = "203.0.113.5:40000".parse().expect("addr");
        let read = RegisterRequest::from_request(&request(REGISTER), source, TransportKind::Udp)
            .expect("REGISTER");
        assert_eq!(
            read,
            RegisterRequest {
                aor: "1001".into(),
                contacts: Contacts::List(vec![ContactEntry {
                    uri: "sip:1001@192.0.2.20:5062;transport=udp".into(),
                    expires: Some(300),
                }]),
                expires_header: Some(1200),
                call_id: "reg-1@192.0.2.20".into(),
                cseq: 2,
                source,
                transport: TransportKind::Udp,
            }
        );
        let mut registrar = registrar();
        let t0 = Instant::now();
        assert!(matches!(
            registrar.register(t0, read),
            RegisterOutcome::Ok { expires, .. } if expires == Duration::from_secs(300)
        ));
    }

    #[test]
    fn contacts_come_comma_joined_compact_or_as_a_wildcard() {
        let joined = REGISTER.replace(
            "Contact: <sip:1001@192.0.2.20:5062;transport=udp>;expires=300;q=0.9\r\n",
            "m: \"Desk, left\" <sip:1001@192.0.2.20:5062>;EXPIRES=60, sip:1001@192.0.2.21;expires=soon\r\n\
             Contact: <sip:1001@192.0.2.22>;expires=99999999999\r\n",
        );
        assert_eq!(
            contacts_of(&request(&joined)).expect("contacts"),
            Contacts::List(vec![
                ContactEntry {
                    uri: "sip:1001@192.0.2.20:5062".into(),
                    expires: Some(60)
                },
                ContactEntry {
                    uri: "sip:1001@192.0.2.21".into(),
                    expires: None
                },
                ContactEntry {
                    uri: "sip:1001@192.0.2.22".into(),
                    expires: Some(u32::MAX)
                },
            ])
        );
        let wildcard = REGISTER
            .replace(
                "<sip:1001@192.0.2.20:5062;transport=udp>;expires=300;q=0.9",
                "*",
            )
            .replace("Expires: 1200", "Expires: 0");
        let read = RegisterRequest::from_request(
            &request(&wildcard),
            PHONE.parse().expect("addr"),
            TransportKind::Tcp,
        )
        .expect("wildcard");
        assert_eq!(
            (read.contacts, read.expires_header),
            (Contacts::Wildcard, Some(0))
        );
        let mixed = REGISTER.replace(
            "Contact: <sip:1001@192.0.2.20:5062;transport=udp>;expires=300;q=0.9",
            "Contact: *, <sip:1001@192.0.2.20>",
        );
        assert_eq!(
            contacts_of(&request(&mixed)),
            Err(RegistrarError::BadWildcard)
        );
        let query = REGISTER.replace(
            "Contact: <sip:1001@192.0.2.20:5062;transport=udp>;expires=300;q=0.9\r\n",
            "",
        );
        assert_eq!(contacts_of(&request(&query)), Ok(Contacts::List(vec![])));
        assert_eq!(expires_of(&request(&query)), Ok(Some(1200)));
    }

    #[test]
    fn unusable_registers_are_bad_requests() {
        let source: SocketAddr = PHONE.parse().expect("addr");
        for (from, to, header) in [
            ("Expires: 1200", "Expires: soon", "Expires"),
            (
                "To: \"Agent 1001\" <sip:1001@hotline.example>",
                "To: <sip:hotline.example>",
                "To",
            ),
            (
                "To: \"Agent 1001\" <sip:1001@hotline.example>",
                "To: <http://1001@hotline.example>",
                "To",
            ),
        ] {
            let text = REGISTER.replace(from, to);
            match RegisterRequest::from_request(&request(&text), source, TransportKind::Udp) {
                Err(RegistrarError::InvalidHeader { name, .. }) => assert_eq!(name, header, "{to}"),
                other => panic!("{to}: {other:?}"),
            }
        }
        let tel = REGISTER.replace(
            "To: \"Agent 1001\" <sip:1001@hotline.example>",
            "To: <tel:1001;phone-context=hotline.example>",
        );
        assert_eq!(
            RegisterRequest::from_request(&request(&tel), source, TransportKind::Udp)
                .expect("tel")
                .aor,
            "1001"
        );
    }

    #[test]
    fn name_addr_splitting_never_panics_on_odd_input() {
        for value in [
            "",
            "\"",
            "\"x\"",
            "<",
            "<>",
            "\"é\" <sip:a@b",
            "é;é",
            "\"a\\\"\" x",
            "sip:a@b;",
        ] {
            let _ = split_name_addr(value);
            let _ = parse_contact(value);
            let _ = address_of_record(value);
        }
        assert_eq!(
            split_name_addr("\"a, \\\"b\\\"\" <sip:x@y>;tag=1"),
            Ok(("sip:x@y".into(), "tag=1".into()))
        );
    }

    proptest::proptest! {
        #[test]
        fn header_readers_never_panic(value in "[a-z0-9:@;=<>\"\\, *\u{e9}]{0,40}") {
            let _ = split_name_addr(&value);
            let _ = parse_contact(&value);
            let _ = address_of_record(&value);
            let _ = split_outside_quotes(&value, ',');
        }
    }
}
