//! SIP digest authentication (R29): agents' softphones register with digest
//! credentials (RFC 3261 §22, RFC 2617 / RFC 7616 with `qop=auth`, RFC 8760 for
//! SHA-256).
//!
//! Pure. The caller passes the wall-clock time; nothing here reads a clock or touches a
//! socket. Nonces are stateless: a nonce is its issue time and a serial, sealed with an
//! HMAC under the engine's secret, so no per-nonce state is kept and a restart with the
//! same secret still accepts the nonces it handed out. The only state is a small,
//! bounded table of the highest nonce-count seen per (user, nonce), which refuses a
//! replayed `nc` (RFC 7616 §3.4.5).
//!
//! Replay defences (issue 9 row 3): an answer must use `qop=auth` with a nonce-count
//! unless [`DigestAuthenticator::with_rfc2069_allowed`] says otherwise, and then an
//! RFC 2069 answer (no qop) is good once per nonce. A nonce handed out with
//! [`DigestAuthenticator::challenges_for`] is sealed to the address it was sent to, and
//! [`DigestAuthenticator::verify_request_from`] answers the same credentials from another
//! address as [`AuthOutcome::Stale`]: a registration change from a new source always
//! takes a fresh challenge, which a replayer cannot answer.
//!
//! The engine answers an unauthenticated REGISTER with `401` and every value of
//! [`DigestAuthenticator::challenges`] as a `WWW-Authenticate` header, then checks the
//! retried request with [`DigestAuthenticator::verify`] (or
//! [`DigestAuthenticator::verify_request`]).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};

use crate::sip::message::Request;

/// How many (user, nonce) pairs the nonce-count table remembers. Past this, entries of
/// expired nonces go first, then the oldest: a flood of fresh nonces can only make the
/// engine forget counts, never grow without bound.
const NONCE_COUNT_CAPACITY: usize = 4096;
/// Bytes of HMAC kept in a nonce: 128 bits are beyond guessing.
const NONCE_MAC_LEN: usize = 16;
/// Nonce payload: issue time (unix seconds), a serial, and the tag of the address it was
/// issued to (zero when unbound), each 8 bytes big-endian.
const NONCE_PAYLOAD_LEN: usize = 24;

type HmacSha256 = Hmac<Sha256>;

/// Why a digest header was refused. Parse errors come from [`parse_authorization`] and
/// [`parse_challenge`]; the rest from [`DigestAuthenticator::verify`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The header's scheme is not `Digest` (for example `Basic`).
    #[error("authentication scheme is not Digest")]
    NotDigest,
    /// The parameter list does not follow `name=token-or-quoted-string, …`.
    #[error("malformed digest parameters: {0}")]
    Syntax(String),
    /// A parameter appears twice (RFC 7616 §3.4: each at most once).
    #[error("digest parameter {0} given twice")]
    DuplicateParameter(String),
    /// A parameter the header must carry is absent.
    #[error("digest parameter {0} missing")]
    MissingParameter(&'static str),
    /// The credentials are for another realm.
    #[error("realm {0:?} is not ours")]
    WrongRealm(String),
    /// An algorithm other than MD5, MD5-sess, SHA-256 or SHA-256-sess.
    #[error("unsupported digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// A qop other than `auth` (`auth-int` is not offered).
    #[error("unsupported qop {0:?}")]
    UnsupportedQop(String),
    /// `qop=auth` without a usable `nc` (8 hex digits) or `cnonce`.
    #[error("qop=auth needs nc and cnonce: {0}")]
    BadNonceCount(String),
    /// The nonce was not issued by this server (or under another secret or realm).
    #[error("nonce was not issued here")]
    ForgedNonce,
    /// The `opaque` value is not the one this server hands out.
    #[error("opaque does not match")]
    OpaqueMismatch,
    /// A nonce-count not above the highest already accepted for this user and nonce.
    #[error("nonce count {0:08x} replayed")]
    NonceCountReplayed(u32),
    /// No such user.
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    /// The user's stored HA1 is not for the algorithm the client chose.
    #[error("no credential of user {user:?} for {algorithm}")]
    NoCredentialForAlgorithm {
        /// The user name.
        user: String,
        /// The algorithm token the client used.
        algorithm: &'static str,
    },
    /// The response does not match: wrong password, method, uri or tampering.
    #[error("digest response does not match")]
    WrongResponse,
    /// An RFC 2069 answer (no `qop`) where `qop=auth` is required.
    #[error("qop=auth is required")]
    QopRequired,
    /// An RFC 2069 answer with a nonce already used once.
    #[error("nonce already used")]
    NonceReused,
}

impl DigestError {
    /// A short stable token for logs and metrics (`reason=` of the security log line).
    pub fn reason(&self) -> &'static str {
        match self {
            DigestError::NotDigest => "not_digest",
            DigestError::Syntax(_) => "syntax",
            DigestError::DuplicateParameter(_) => "duplicate_parameter",
            DigestError::MissingParameter(_) => "missing_parameter",
            DigestError::WrongRealm(_) => "wrong_realm",
            DigestError::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            DigestError::UnsupportedQop(_) => "unsupported_qop",
            DigestError::BadNonceCount(_) => "bad_nonce_count",
            DigestError::ForgedNonce => "forged_nonce",
            DigestError::OpaqueMismatch => "opaque_mismatch",
            DigestError::NonceCountReplayed(_) => "nonce_count_replayed",
            DigestError::UnknownUser(_) => "unknown_user",
            DigestError::NoCredentialForAlgorithm { .. } => "no_credential_for_algorithm",
            DigestError::WrongResponse => "wrong_password",
            DigestError::QopRequired => "qop_required",
            DigestError::NonceReused => "nonce_reused",
        }
    }
}

/// A digest hash algorithm (RFC 7616 §3.2, RFC 8760).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

impl Algorithm {
    /// The `algorithm=` token.
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    /// The algorithm named by a token, case-insensitively.
    pub fn from_token(token: &str) -> Option<Self> {
        [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
        ]
        .into_iter()
        .find(|algorithm| algorithm.token().eq_ignore_ascii_case(token))
    }

    /// Whether HA1 also covers the nonce and cnonce (the `-sess` variants).
    pub fn is_session(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    /// The hash family, which decides which stored HA1 applies.
    pub fn hash(self) -> HashFamily {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => HashFamily::Md5,
            Algorithm::Sha256 | Algorithm::Sha256Sess => HashFamily::Sha256,
        }
    }

    /// Lowercase hex digest of `data`.
    pub fn hex_digest(self, data: &[u8]) -> String {
        match self.hash() {
            HashFamily::Md5 => to_hex(&Md5::digest(data)),
            HashFamily::Sha256 => to_hex(&Sha256::digest(data)),
        }
    }
}

/// The hash under an algorithm: an HA1 computed for MD5 serves MD5 and MD5-sess.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashFamily {
    Md5,
    Sha256,
}

/// What the engine knows about a user's secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// The plain password.
    Password(String),
    /// Precomputed `HA1 = H(username ":" realm ":" password)` in hex, per hash family,
    /// so passwords need not be stored; an absent one makes that family unusable.
    Ha1 {
        md5: Option<String>,
        sha256: Option<String>,
    },
}

impl Credential {
    /// HA1 (not yet session-keyed) for `family`, lowercase hex.
    fn ha1(&self, family: HashFamily, username: &str, realm: &str) -> Option<String> {
        match (self, family) {
            (Credential::Password(password), HashFamily::Md5) => {
                Some(ha1(Algorithm::Md5, username, realm, password))
            }
            (Credential::Password(password), HashFamily::Sha256) => {
                Some(ha1(Algorithm::Sha256, username, realm, password))
            }
            (Credential::Ha1 { md5, .. }, HashFamily::Md5) => {
                md5.as_deref().map(str::to_ascii_lowercase)
            }
            (Credential::Ha1 { sha256, .. }, HashFamily::Sha256) => {
                sha256.as_deref().map(str::to_ascii_lowercase)
            }
        }
    }
}

/// `H(username ":" realm ":" password)` in lowercase hex: what to store instead of a
/// password ([`Credential::Ha1`]). For a `-sess` algorithm this is the HA1 of its hash
/// family; the session keying happens per request.
pub fn ha1(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> String {
    algorithm.hex_digest(format!("{username}:{realm}:{password}").as_bytes())
}

/// The `request-digest` of RFC 7616 §3.4.1 (RFC 2069 form when `qop` is `None`), with
/// `ha1` the user's HA1 of the algorithm's hash family (session keying is applied here
/// for `-sess` algorithms, which need `qop` for the cnonce).
pub fn request_digest(
    algorithm: Algorithm,
    ha1: &str,
    nonce: &str,
    qop: Option<QopFields<'_>>,
    method: &str,
    uri: &str,
) -> String {
    let ha1 = match (algorithm.is_session(), qop) {
        (true, Some(fields)) => {
            algorithm.hex_digest(format!("{ha1}:{nonce}:{}", fields.cnonce).as_bytes())
        }
        _ => ha1.to_string(),
    };
    let ha2 = algorithm.hex_digest(format!("{method}:{uri}").as_bytes());
    let data = match qop {
        Some(QopFields { nc, cnonce, qop }) => {
            format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
        }
        None => format!("{ha1}:{nonce}:{ha2}"),
    };
    algorithm.hex_digest(data.as_bytes())
}

/// The parameters that join the response computation when `qop` is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QopFields<'a> {
    /// Nonce-count exactly as sent: 8 hex digits.
    pub nc: &'a str,
    pub cnonce: &'a str,
    /// `auth`.
    pub qop: &'a str,
}

/// The parameters of an `Authorization` header (RFC 3261 §25.1 `digest-response`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestResponse {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    /// The `uri` parameter (digest-uri), which entered the response hash.
    pub uri: String,
    pub response: String,
    /// Absent means MD5 (RFC 2617 §3.2.2).
    pub algorithm: Option<String>,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
}

/// The parameters of a `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    /// Absent means MD5.
    pub algorithm: Option<String>,
    /// The offered qop values (`qop="auth,auth-int"` gives two); empty for RFC 2069.
    pub qop: Vec<String>,
    pub stale: bool,
}

/// Parses an `Authorization` (or `Proxy-Authorization`) value:
/// `Digest username="…", realm="…", …`. Names are case-insensitive, values tokens or
/// quoted strings with `\` escapes, unknown parameters are ignored. Never panics.
pub fn parse_authorization(value: &str) -> Result<DigestResponse, DigestError> {
    let mut params = DigestParams::parse(value)?;
    Ok(DigestResponse {
        username: params.required("username")?,
        realm: params.required("realm")?,
        nonce: params.required("nonce")?,
        uri: params.required("uri")?,
        response: params.required("response")?,
        algorithm: params.take("algorithm"),
        qop: params.take("qop"),
        nc: params.take("nc"),
        cnonce: params.take("cnonce"),
        opaque: params.take("opaque"),
    })
}

/// Parses a `WWW-Authenticate` (or `Proxy-Authenticate`) value with one challenge.
pub fn parse_challenge(value: &str) -> Result<Challenge, DigestError> {
    let mut params = DigestParams::parse(value)?;
    Ok(Challenge {
        realm: params.required("realm")?,
        nonce: params.required("nonce")?,
        opaque: params.take("opaque"),
        algorithm: params.take("algorithm"),
        qop: params
            .take("qop")
            .map(|qop| {
                qop.split(',')
                    .map(|value| value.trim().to_string())
                    .filter(|value| !value.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        stale: params
            .take("stale")
            .is_some_and(|stale| stale.eq_ignore_ascii_case("true")),
    })
}

/// What a phone sends back: the `Authorization` value answering `challenge` for a
/// request with `method` and digest-uri `uri`. Uses `qop=auth` with `nc` and `cnonce`
/// when the challenge offers it, the RFC 2069 form otherwise. Used by the tests and by
/// anything in the engine that must authenticate as a client.
pub fn answer_challenge(
    challenge: &Challenge,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    cnonce_and_count: (&str, u32),
) -> Result<String, DigestError> {
    let algorithm_token = challenge.algorithm.as_deref().unwrap_or("MD5");
    let algorithm = Algorithm::from_token(algorithm_token)
        .ok_or_else(|| DigestError::UnsupportedAlgorithm(algorithm_token.to_string()))?;
    let offers_auth = challenge
        .qop
        .iter()
        .any(|qop| qop.eq_ignore_ascii_case("auth"));
    if algorithm.is_session() && !offers_auth {
        return Err(DigestError::UnsupportedQop(
            "a -sess algorithm needs qop=auth".into(),
        ));
    }
    let (cnonce, count) = cnonce_and_count;
    let nc = format!("{count:08x}");
    let qop = offers_auth.then_some(QopFields {
        nc: &nc,
        cnonce,
        qop: "auth",
    });
    let ha1 = ha1(algorithm, username, &challenge.realm, password);
    let response = request_digest(algorithm, &ha1, &challenge.nonce, qop, method, uri);
    let mut header = format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{response}\", algorithm={}",
        quote_escape(username),
        quote_escape(&challenge.realm),
        quote_escape(&challenge.nonce),
        quote_escape(uri),
        algorithm.token(),
    );
    if qop.is_some() {
        let _ = write!(
            header,
            ", qop=auth, nc={nc}, cnonce=\"{}\"",
            quote_escape(cnonce)
        );
    }
    if let Some(opaque) = &challenge.opaque {
        let _ = write!(header, ", opaque=\"{}\"", quote_escape(opaque));
    }
    Ok(header)
}

/// The `username` a request's credentials claim (the first parsable `Authorization`),
/// unverified: for throttling and the security log, never for trust.
pub fn claimed_username(request: &Request) -> Option<String> {
    request
        .headers
        .iter()
        .filter(|header| header.name().eq_ignore_ascii_case("Authorization"))
        .find_map(|header| parse_authorization(header.value()).ok())
        .map(|response| response.username)
}

/// The result of checking a request's credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthOutcome {
    /// The response is right and the nonce fresh.
    Authenticated { username: String },
    /// The response is right but the nonce has expired: challenge again with
    /// `stale=true` so the phone retries without asking its user (RFC 7616 §3.3).
    Stale,
    /// Credentials present but wrong or unusable: challenge again (`401`).
    Invalid(DigestError),
    /// No credentials for our realm: challenge (`401`).
    Missing,
}

/// Issues digest challenges and verifies the answers, for one realm.
pub struct DigestAuthenticator {
    realm: String,
    secret: [u8; 32],
    nonce_lifetime: Duration,
    offered: Vec<Algorithm>,
    allow_rfc2069: bool,
    serial: AtomicU64,
    nonce_counts: Mutex<HashMap<(String, String), NonceCountRecord>>,
}

/// The highest count recorded for a nonce an RFC 2069 answer used: it is spent.
const NONCE_SPENT: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct NonceCountRecord {
    highest: u32,
    issued_at: u64,
}

impl std::fmt::Debug for DigestAuthenticator {
    // The secret stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestAuthenticator")
            .field("realm", &self.realm)
            .field("nonce_lifetime", &self.nonce_lifetime)
            .field("offered", &self.offered)
            .finish_non_exhaustive()
    }
}

impl DigestAuthenticator {
    /// An authenticator for `realm`; `secret` seals the nonces (keep it across restarts
    /// so outstanding nonces stay valid), `nonce_lifetime` is how long a nonce is
    /// accepted before it is answered as stale. Offers SHA-256 then MD5 (RFC 8760 §2.4:
    /// the preferred algorithm first).
    pub fn new(realm: impl Into<String>, secret: [u8; 32], nonce_lifetime: Duration) -> Self {
        DigestAuthenticator {
            realm: realm.into(),
            secret,
            nonce_lifetime,
            offered: vec![Algorithm::Sha256, Algorithm::Md5],
            allow_rfc2069: false,
            serial: AtomicU64::new(0),
            nonce_counts: Mutex::new(HashMap::new()),
        }
    }

    /// Offers these algorithms, in this order, in [`Self::challenges`]. Clients that
    /// read only the first challenge and know only MD5 (SIPp 3.6.1, older phones) need
    /// MD5 alone or first. An empty list keeps the current offer.
    pub fn with_offered_algorithms(mut self, algorithms: Vec<Algorithm>) -> Self {
        if !algorithms.is_empty() {
            self.offered = algorithms;
        }
        self
    }

    /// Also accepts RFC 2069 answers (no `qop`, so no nonce-count), each nonce then good
    /// for one request (`security.digest_allow_rfc2069`). Off by default: such an answer
    /// can be replayed for the nonce's lifetime by whoever captured it.
    pub fn with_rfc2069_allowed(mut self, allowed: bool) -> Self {
        self.allow_rfc2069 = allowed;
        self
    }

    /// The realm of the challenges.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// One `WWW-Authenticate` value offering `algorithm` with `qop="auth"`.
    pub fn challenge(&self, now: SystemTime, algorithm: Algorithm, stale: bool) -> String {
        self.format_challenge(&self.new_nonce(now, 0), algorithm, stale)
    }

    /// One `WWW-Authenticate` value per offered algorithm, preferred first, sharing one
    /// nonce; each goes in its own header of the `401`.
    pub fn challenges(&self, now: SystemTime, stale: bool) -> Vec<String> {
        self.challenges_with(now, 0, stale)
    }

    /// [`Self::challenges`] with a nonce sealed to `source`, the address the `401` goes
    /// to: [`Self::verify_request_from`] accepts it from that address only.
    pub fn challenges_for(&self, now: SystemTime, source: SocketAddr, stale: bool) -> Vec<String> {
        self.challenges_with(now, self.source_tag(source), stale)
    }

    fn challenges_with(&self, now: SystemTime, source_tag: u64, stale: bool) -> Vec<String> {
        let nonce = self.new_nonce(now, source_tag);
        self.offered
            .iter()
            .map(|&algorithm| self.format_challenge(&nonce, algorithm, stale))
            .collect()
    }

    /// [`Self::verify_request`] for a request that came from `source`: the right answer
    /// to a nonce issued to another address (a replay from elsewhere, or a phone whose
    /// address changed) is [`AuthOutcome::Stale`], so it gets a fresh challenge, which
    /// only the password's owner can answer.
    pub fn verify_request_from(
        &self,
        now: SystemTime,
        source: SocketAddr,
        request: &Request,
        lookup: impl Fn(&str) -> Option<Credential>,
    ) -> AuthOutcome {
        let chosen = self.authorization_of(request);
        let Some(value) = chosen else {
            return AuthOutcome::Missing;
        };
        match self.check(
            now,
            Some(source),
            &request.method.to_string(),
            &value,
            lookup,
        ) {
            Ok(outcome) => outcome,
            Err(error) => AuthOutcome::Invalid(error),
        }
    }

    /// The `Authorization` value for our realm, else the first one.
    fn authorization_of(&self, request: &Request) -> Option<String> {
        let values: Vec<String> = request
            .headers
            .iter()
            .filter(|header| header.name().eq_ignore_ascii_case("Authorization"))
            .map(|header| header.value().to_string())
            .collect();
        let ours = values.iter().position(|value| {
            parse_authorization(value).is_ok_and(|response| response.realm == self.realm)
        });
        ours.or((!values.is_empty()).then_some(0))
            .map(|index| values[index].clone())
    }

    /// Checks the `Authorization` values of a request: the one for our realm counts
    /// (a phone may carry credentials for several); none at all is [`AuthOutcome::Missing`].
    pub fn verify_request(
        &self,
        now: SystemTime,
        request: &Request,
        lookup: impl Fn(&str) -> Option<Credential>,
    ) -> AuthOutcome {
        let chosen = self.authorization_of(request);
        self.verify(now, &request.method.to_string(), chosen.as_deref(), lookup)
    }

    /// Checks one `Authorization` value for a request with `method`. `lookup` gives
    /// the credential of a user name, or `None` for an unknown user.
    pub fn verify(
        &self,
        now: SystemTime,
        method: &str,
        authorization: Option<&str>,
        lookup: impl Fn(&str) -> Option<Credential>,
    ) -> AuthOutcome {
        let Some(value) = authorization else {
            return AuthOutcome::Missing;
        };
        match self.check(now, None, method, value, lookup) {
            Ok(outcome) => outcome,
            Err(error) => AuthOutcome::Invalid(error),
        }
    }

    fn check(
        &self,
        now: SystemTime,
        source: Option<SocketAddr>,
        method: &str,
        value: &str,
        lookup: impl Fn(&str) -> Option<Credential>,
    ) -> Result<AuthOutcome, DigestError> {
        let response = parse_authorization(value)?;
        if response.realm != self.realm {
            return Err(DigestError::WrongRealm(response.realm));
        }
        let algorithm = match response.algorithm.as_deref() {
            None => Algorithm::Md5,
            Some(token) => Algorithm::from_token(token)
                .ok_or_else(|| DigestError::UnsupportedAlgorithm(token.to_string()))?,
        };
        let qop = match response.qop.as_deref() {
            None => None,
            Some(qop) if qop.eq_ignore_ascii_case("auth") => {
                let nc = response
                    .nc
                    .as_deref()
                    .ok_or_else(|| DigestError::BadNonceCount("nc missing".into()))?;
                let count = parse_nonce_count(nc)?;
                let cnonce = response
                    .cnonce
                    .as_deref()
                    .filter(|cnonce| !cnonce.is_empty())
                    .ok_or_else(|| DigestError::BadNonceCount("cnonce missing".into()))?;
                Some((QopFields { nc, cnonce, qop }, count))
            }
            Some(other) => return Err(DigestError::UnsupportedQop(other.to_string())),
        };
        if qop.is_none() && !self.allow_rfc2069 {
            return Err(DigestError::QopRequired);
        }
        if algorithm.is_session() && qop.is_none() {
            return Err(DigestError::UnsupportedQop(format!(
                "{} without qop",
                algorithm.token()
            )));
        }
        let (issued_at, issued_to) = self.open_nonce(&response.nonce)?;
        if let Some(opaque) = &response.opaque
            && !constant_time_eq(opaque.as_bytes(), self.opaque().as_bytes())
        {
            return Err(DigestError::OpaqueMismatch);
        }
        let credential = lookup(&response.username)
            .ok_or_else(|| DigestError::UnknownUser(response.username.clone()))?;
        let ha1 = credential
            .ha1(algorithm.hash(), &response.username, &self.realm)
            .ok_or_else(|| DigestError::NoCredentialForAlgorithm {
                user: response.username.clone(),
                algorithm: algorithm.token(),
            })?;
        let expected = request_digest(
            algorithm,
            &ha1,
            &response.nonce,
            qop.map(|(fields, _)| fields),
            method,
            &response.uri,
        );
        let given = response.response.to_ascii_lowercase();
        if !constant_time_eq(expected.as_bytes(), given.as_bytes()) {
            return Err(DigestError::WrongResponse);
        }
        let now_secs = unix_seconds(now);
        if !self.is_fresh(issued_at, now_secs) {
            return Ok(AuthOutcome::Stale);
        }
        if let Some(source) = source
            && issued_to != self.source_tag(source)
        {
            return Ok(AuthOutcome::Stale);
        }
        // Without qop there is no count: the nonce is spent by its first use.
        let count = qop.map_or(NONCE_SPENT, |(_, count)| count);
        self.record_nonce_count(
            &response.username,
            &response.nonce,
            count,
            issued_at,
            now_secs,
        )
        .map_err(|error| match (qop, error) {
            (None, DigestError::NonceCountReplayed(_)) => DigestError::NonceReused,
            (_, error) => error,
        })?;
        Ok(AuthOutcome::Authenticated {
            username: response.username,
        })
    }

    fn format_challenge(&self, nonce: &str, algorithm: Algorithm, stale: bool) -> String {
        let mut value = format!(
            "Digest realm=\"{}\", nonce=\"{nonce}\", opaque=\"{}\", algorithm={}, qop=\"auth\"",
            quote_escape(&self.realm),
            self.opaque(),
            algorithm.token(),
        );
        if stale {
            value.push_str(", stale=true");
        }
        value
    }

    fn mac(&self, label: &[u8], data: &[u8]) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(&self.secret).expect("HMAC accepts keys of any length");
        mac.update(label);
        mac.update(data);
        mac.update(self.realm.as_bytes());
        mac
    }

    /// Constant per realm and secret: the client echoes it, and a mismatch says the
    /// answer was meant for another server.
    fn opaque(&self) -> String {
        to_hex(&self.mac(b"opaque\0", &[]).finalize().into_bytes()[..NONCE_MAC_LEN])
    }

    /// A keyed tag of an address (never zero, which marks an unbound nonce): the
    /// nonce carries it without revealing the address.
    fn source_tag(&self, source: SocketAddr) -> u64 {
        let mut data = match source.ip() {
            IpAddr::V4(ip) => ip.to_ipv6_mapped().octets().to_vec(),
            IpAddr::V6(ip) => ip.octets().to_vec(),
        };
        data.extend_from_slice(&source.port().to_be_bytes());
        let tag = self.mac(b"source\0", &data).finalize().into_bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(&tag[..8]);
        u64::from_be_bytes(first).max(1)
    }

    fn new_nonce(&self, now: SystemTime, source_tag: u64) -> String {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let mut payload = [0u8; NONCE_PAYLOAD_LEN];
        payload[..8].copy_from_slice(&unix_seconds(now).to_be_bytes());
        payload[8..16].copy_from_slice(&serial.to_be_bytes());
        payload[16..].copy_from_slice(&source_tag.to_be_bytes());
        let tag = self.mac(b"nonce\0", &payload).finalize().into_bytes();
        let mut nonce = to_hex(&payload);
        nonce.push_str(&to_hex(&tag[..NONCE_MAC_LEN]));
        nonce
    }

    /// The issue time of a nonce this server made and the tag of the address it was
    /// issued to, or [`DigestError::ForgedNonce`].
    fn open_nonce(&self, nonce: &str) -> Result<(u64, u64), DigestError> {
        let bytes = from_hex(nonce).ok_or(DigestError::ForgedNonce)?;
        if bytes.len() != NONCE_PAYLOAD_LEN + NONCE_MAC_LEN {
            return Err(DigestError::ForgedNonce);
        }
        let (payload, tag) = bytes.split_at(NONCE_PAYLOAD_LEN);
        self.mac(b"nonce\0", payload)
            .verify_truncated_left(tag)
            .map_err(|_| DigestError::ForgedNonce)?;
        let mut issued = [0u8; 8];
        issued.copy_from_slice(&payload[..8]);
        let mut issued_to = [0u8; 8];
        issued_to.copy_from_slice(&payload[16..]);
        Ok((u64::from_be_bytes(issued), u64::from_be_bytes(issued_to)))
    }

    /// A nonce is fresh within its lifetime; one issued "in the future" (the clock went
    /// back) is fresh as long as it is not further ahead than a lifetime.
    fn is_fresh(&self, issued_at: u64, now_secs: u64) -> bool {
        let lifetime = self.nonce_lifetime.as_secs();
        now_secs.saturating_sub(issued_at) <= lifetime
            && issued_at.saturating_sub(now_secs) <= lifetime
    }

    fn record_nonce_count(
        &self,
        username: &str,
        nonce: &str,
        count: u32,
        issued_at: u64,
        now_secs: u64,
    ) -> Result<(), DigestError> {
        // A poisoned lock only means another thread panicked mid-update of a cache
        // of counts; its content is still a valid map.
        let mut counts = self
            .nonce_counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (username.to_string(), nonce.to_string());
        if let Some(record) = counts.get_mut(&key) {
            if count <= record.highest {
                return Err(DigestError::NonceCountReplayed(count));
            }
            record.highest = count;
            return Ok(());
        }
        if counts.len() >= NONCE_COUNT_CAPACITY {
            counts.retain(|_, record| self.is_fresh(record.issued_at, now_secs));
        }
        if counts.len() >= NONCE_COUNT_CAPACITY
            && let Some(oldest) = counts
                .iter()
                .min_by_key(|(_, record)| record.issued_at)
                .map(|(key, _)| key.clone())
        {
            counts.remove(&oldest);
        }
        counts.insert(
            key,
            NonceCountRecord {
                highest: count,
                issued_at,
            },
        );
        Ok(())
    }
}

fn parse_nonce_count(nc: &str) -> Result<u32, DigestError> {
    if nc.len() != 8 || !nc.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(DigestError::BadNonceCount(format!(
            "nc {nc:?} is not 8 hex digits"
        )));
    }
    u32::from_str_radix(nc, 16).map_err(|_| DigestError::BadNonceCount(format!("nc {nc:?}")))
}

fn unix_seconds(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

/// Equality whose time does not depend on where the inputs differ (lengths are public).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let value = |digit: u8| char::from(digit).to_digit(16);
    digits
        .chunks(2)
        .map(|pair| Some((value(pair[0])? as u8) << 4 | value(pair[1])? as u8))
        .collect()
}

/// Escapes `"` and `\` for a quoted-string.
fn quote_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The parameters of a `Digest` credentials or challenge value, names lowercased.
struct DigestParams {
    params: Vec<(String, String)>,
}

impl DigestParams {
    /// `Digest 1*SP #(token BWS "=" BWS (token / quoted-string))` (RFC 7235 §2.1),
    /// with empty list elements allowed and unquoted values read leniently up to the
    /// next comma or space (some phones leave `uri` unquoted).
    fn parse(value: &str) -> Result<Self, DigestError> {
        let bytes = value.as_bytes();
        let mut at = skip_space(bytes, 0);
        let scheme_end = at + bytes[at..].iter().take_while(|&&b| is_tchar(b)).count();
        if !value[at..scheme_end].eq_ignore_ascii_case("Digest") {
            return Err(DigestError::NotDigest);
        }
        at = scheme_end;
        if at < bytes.len() && !is_space(bytes[at]) {
            return Err(DigestError::NotDigest);
        }
        let mut params: Vec<(String, String)> = Vec::new();
        loop {
            at = skip_space(bytes, at);
            while at < bytes.len() && bytes[at] == b',' {
                at = skip_space(bytes, at + 1);
            }
            if at >= bytes.len() {
                break;
            }
            let name_end = at + bytes[at..].iter().take_while(|&&b| is_tchar(b)).count();
            if name_end == at {
                return Err(syntax(format!("expected a parameter name at byte {at}")));
            }
            let name = value[at..name_end].to_ascii_lowercase();
            at = skip_space(bytes, name_end);
            if bytes.get(at) != Some(&b'=') {
                return Err(syntax(format!("expected '=' after {name}")));
            }
            at = skip_space(bytes, at + 1);
            let (parameter, next) = if bytes.get(at) == Some(&b'"') {
                read_quoted(bytes, at + 1)?
            } else {
                let end = at
                    + bytes[at..]
                        .iter()
                        .take_while(|&&b| b != b',' && !is_space(b) && b != b'"')
                        .count();
                if end == at {
                    return Err(syntax(format!("empty value for {name}")));
                }
                (value[at..end].to_string(), end)
            };
            at = skip_space(bytes, next);
            if at < bytes.len() && bytes[at] != b',' {
                return Err(syntax(format!("unexpected text after {name}")));
            }
            if params.iter().any(|(existing, _)| *existing == name) {
                return Err(DigestError::DuplicateParameter(name));
            }
            params.push((name, parameter));
        }
        Ok(DigestParams { params })
    }

    fn take(&mut self, name: &str) -> Option<String> {
        let index = self.params.iter().position(|(n, _)| n == name)?;
        Some(self.params.swap_remove(index).1)
    }

    fn required(&mut self, name: &'static str) -> Result<String, DigestError> {
        self.take(name).ok_or(DigestError::MissingParameter(name))
    }
}

fn syntax(reason: String) -> DigestError {
    DigestError::Syntax(reason)
}

/// Reads a quoted-string body starting after the opening quote; returns the unescaped
/// text and the index after the closing quote.
fn read_quoted(bytes: &[u8], start: usize) -> Result<(String, usize), DigestError> {
    let mut out = Vec::new();
    let mut at = start;
    while at < bytes.len() {
        match bytes[at] {
            b'"' => {
                let text = String::from_utf8(out)
                    .map_err(|_| syntax("quoted string is not UTF-8".into()))?;
                return Ok((text, at + 1));
            }
            // Dropping the backslash before any byte keeps the text valid UTF-8: the
            // byte after it is either ASCII or the first of a whole character.
            b'\\' if at + 1 < bytes.len() => {
                out.push(bytes[at + 1]);
                at += 2;
            }
            byte => {
                out.push(byte);
                at += 1;
            }
        }
    }
    Err(syntax("unterminated quoted string".into()))
}

fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n')
}

fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while at < bytes.len() && is_space(bytes[at]) {
        at += 1;
    }
    at
}

/// RFC 7230 §3.2.6 `tchar`.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{SipMessage, parse};
    use proptest::prelude::*;

    const REALM: &str = "hotline.example";
    const SECRET: [u8; 32] = [7; 32];
    const LIFETIME: Duration = Duration::from_secs(300);

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds)
    }

    fn authenticator() -> DigestAuthenticator {
        DigestAuthenticator::new(REALM, SECRET, LIFETIME)
    }

    fn agents(user: &str) -> Option<Credential> {
        (user == "1001").then(|| Credential::Password("s3cret".into()))
    }

    /// The phone's side: answer the challenge the way a softphone does.
    fn answer(challenge_value: &str, password: &str, count: u32) -> String {
        let challenge = parse_challenge(challenge_value).expect("challenge");
        answer_challenge(
            &challenge,
            "REGISTER",
            "sip:hotline.example",
            "1001",
            password,
            ("0a4f113b", count),
        )
        .expect("answer")
    }

    #[test]
    fn rfc2617_example_response_is_reproduced() {
        let header = r#"Digest username="Mufasa",
                 realm="testrealm@host.com",
                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                 uri="/dir/index.html",
                 qop=auth,
                 nc=00000001,
                 cnonce="0a4f113b",
                 response="6629fae49393a05397450978507c4ef1",
                 opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
        let parsed = parse_authorization(header).expect("RFC 2617 header");
        let ha1 = ha1(
            Algorithm::Md5,
            &parsed.username,
            &parsed.realm,
            "Circle Of Life",
        );
        let fields = QopFields {
            nc: parsed.nc.as_deref().expect("nc"),
            cnonce: parsed.cnonce.as_deref().expect("cnonce"),
            qop: parsed.qop.as_deref().expect("qop"),
        };
        let digest = request_digest(
            Algorithm::Md5,
            &ha1,
            &parsed.nonce,
            Some(fields),
            "GET",
            &parsed.uri,
        );
        assert_eq!(digest, parsed.response);
        assert_eq!(parsed.response, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn rfc7616_sha256_and_md5_examples_are_reproduced() {
        for (algorithm, expected) in [
            (
                "SHA-256",
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
            ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ] {
            let challenge = parse_challenge(&format!(
                r#"Digest realm="http-auth@example.org", qop="auth, auth-int",
                   algorithm={algorithm},
                   nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
                   opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#
            ))
            .expect("RFC 7616 challenge");
            assert_eq!(challenge.qop, ["auth", "auth-int"]);
            let header = answer_challenge(
                &challenge,
                "GET",
                "/dir/index.html",
                "Mufasa",
                "Circle of Life",
                ("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", 1),
            )
            .expect("answer");
            let parsed = parse_authorization(&header).expect("own header parses");
            assert_eq!(parsed.response, expected, "{algorithm}");
            assert_eq!(parsed.nc.as_deref(), Some("00000001"));
            assert_eq!(
                parsed.opaque.as_deref(),
                Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
            );
        }
    }

    #[test]
    fn r29_both_offered_algorithms_authenticate_a_phone() {
        let auth = authenticator();
        let challenges = auth.challenges(at(0), false);
        assert_eq!(challenges.len(), 2);
        assert!(
            challenges[0].contains("algorithm=SHA-256"),
            "{}",
            challenges[0]
        );
        assert!(challenges[1].contains("algorithm=MD5"), "{}", challenges[1]);
        // One nonce serves both challenges, so the count goes on across them.
        for (count, challenge) in (1..).zip(&challenges) {
            assert!(challenge.starts_with("Digest realm=\"hotline.example\", nonce=\""));
            assert!(challenge.contains("qop=\"auth\"") && challenge.contains("opaque=\""));
            assert!(!challenge.contains("stale"));
            let outcome = auth.verify(
                at(10),
                "REGISTER",
                Some(&answer(challenge, "s3cret", count)),
                agents,
            );
            assert_eq!(
                outcome,
                AuthOutcome::Authenticated {
                    username: "1001".into()
                },
                "{challenge}"
            );
        }
    }

    #[test]
    fn sipp_style_md5_answers_verify_with_and_without_qop() {
        let auth = authenticator().with_offered_algorithms(vec![Algorithm::Md5]);
        let challenge = parse_challenge(&auth.challenges(at(0), false)[0]).expect("challenge");
        let md5 = |text: String| to_hex(&Md5::digest(text.as_bytes()));
        let ha1 = md5(format!("1001:{REALM}:s3cret"));
        let ha2 = md5("REGISTER:sip:127.0.0.1:5060".to_string());
        let nonce = &challenge.nonce;
        // SIPp against a challenge with qop: nc=00000001 and an 8-hex-digit cnonce.
        let with_qop = md5(format!("{ha1}:{nonce}:00000001:6b8b4567:auth:{ha2}"));
        let header = format!(
            "Digest username=\"1001\",realm=\"{REALM}\",cnonce=\"6b8b4567\",nc=00000001,qop=auth,uri=\"sip:127.0.0.1:5060\",nonce=\"{nonce}\",response=\"{with_qop}\",algorithm=MD5,opaque=\"{}\"",
            challenge.opaque.as_deref().expect("opaque")
        );
        assert_eq!(
            auth.verify(at(1), "REGISTER", Some(&header), agents),
            AuthOutcome::Authenticated {
                username: "1001".into()
            }
        );
        // Uppercase hex from a sloppy client is still the same response.
        let upper = header
            .replace(&with_qop, &with_qop.to_ascii_uppercase())
            .replace("nc=00000001", "nc=00000002");
        let with_qop_2 = md5(format!("{ha1}:{nonce}:00000002:6b8b4567:auth:{ha2}"));
        let upper = upper.replace(
            &with_qop.to_ascii_uppercase(),
            &with_qop_2.to_ascii_uppercase(),
        );
        assert!(matches!(
            auth.verify(at(1), "REGISTER", Some(&upper), agents),
            AuthOutcome::Authenticated { .. }
        ));
        // SIPp (and RFC 2069 phones) without qop: refused unless allowed (issue 9 row 3).
        let without_qop = md5(format!("{ha1}:{nonce}:{ha2}"));
        let header = format!(
            "Digest username=\"1001\",realm=\"{REALM}\",uri=\"sip:127.0.0.1:5060\",nonce=\"{nonce}\",response=\"{without_qop}\",algorithm=MD5"
        );
        assert_eq!(
            auth.verify(at(1), "REGISTER", Some(&header), agents),
            AuthOutcome::Invalid(DigestError::QopRequired)
        );
    }

    /// The RFC 2069 answer of `challenge` (no qop), as an old phone sends it.
    fn rfc2069_answer(challenge_value: &str, password: &str) -> String {
        let challenge = parse_challenge(challenge_value).expect("challenge");
        let md5 = |text: String| to_hex(&Md5::digest(text.as_bytes()));
        let ha1 = md5(format!("1001:{REALM}:{password}"));
        let ha2 = md5("REGISTER:sip:hotline.example".to_string());
        let response = md5(format!("{ha1}:{}:{ha2}", challenge.nonce));
        format!(
            "Digest username=\"1001\",realm=\"{REALM}\",uri=\"sip:hotline.example\",nonce=\"{}\",response=\"{response}\",algorithm=MD5",
            challenge.nonce
        )
    }

    #[test]
    fn an_rfc2069_answer_is_refused_by_default_and_single_use_where_allowed() {
        let strict = authenticator();
        let challenge = strict.challenge(at(0), Algorithm::Md5, false);
        let old_phone = rfc2069_answer(&challenge, "s3cret");
        assert_eq!(
            strict.verify(at(1), "REGISTER", Some(&old_phone), agents),
            AuthOutcome::Invalid(DigestError::QopRequired)
        );

        let lenient = authenticator().with_rfc2069_allowed(true);
        let challenge = lenient.challenge(at(0), Algorithm::Md5, false);
        let old_phone = rfc2069_answer(&challenge, "s3cret");
        assert_eq!(
            lenient.verify(at(1), "REGISTER", Some(&old_phone), agents),
            AuthOutcome::Authenticated {
                username: "1001".into()
            }
        );
        // The captured answer replayed within the nonce's lifetime: refused.
        assert_eq!(
            lenient.verify(at(2), "REGISTER", Some(&old_phone), agents),
            AuthOutcome::Invalid(DigestError::NonceReused)
        );
        // And a qop answer cannot reuse the spent nonce either.
        assert!(matches!(
            lenient.verify(
                at(2),
                "REGISTER",
                Some(&answer(&challenge, "s3cret", 1)),
                agents
            ),
            AuthOutcome::Invalid(DigestError::NonceCountReplayed(_))
        ));
    }

    #[test]
    fn a_nonce_sealed_to_one_address_is_stale_from_another() {
        let auth = authenticator();
        let phone: SocketAddr = "192.0.2.10:5060".parse().unwrap();
        let attacker: SocketAddr = "192.0.2.10:5070".parse().unwrap();
        let challenge = &auth.challenges_for(at(0), phone, false)[0];
        let register = |authorization: &str| {
            let wire = format!(
                "REGISTER sip:hotline.example SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKsrc\r\n\
                 From: <sip:1001@hotline.example>;tag=1\r\n\
                 To: <sip:1001@hotline.example>\r\n\
                 Call-ID: src-1\r\nCSeq: 1 REGISTER\r\n\
                 Authorization: {authorization}\r\n\
                 Content-Length: 0\r\n\r\n"
            );
            match parse(wire.as_bytes()).expect("request") {
                SipMessage::Request(request) => request,
                SipMessage::Response(_) => unreachable!(),
            }
        };
        let first = register(&answer(challenge, "s3cret", 1));
        let replay = register(&answer(challenge, "s3cret", 2));
        // From another port, even with a fresh count, the right answer earns only a
        // fresh challenge.
        assert_eq!(
            auth.verify_request_from(at(1), attacker, &replay, agents),
            AuthOutcome::Stale
        );
        assert_eq!(
            auth.verify_request_from(at(1), phone, &first, agents),
            AuthOutcome::Authenticated {
                username: "1001".into()
            }
        );
        // A wrong password from elsewhere is still just wrong.
        let wrong = register(&answer(challenge, "guess", 3));
        assert_eq!(
            auth.verify_request_from(at(1), attacker, &wrong, agents),
            AuthOutcome::Invalid(DigestError::WrongResponse)
        );
        // The error tokens the security log uses are stable.
        assert_eq!(DigestError::WrongResponse.reason(), "wrong_password");
        assert_eq!(DigestError::NonceReused.reason(), "nonce_reused");
    }

    #[test]
    fn r29_wrong_or_unusable_credentials_are_invalid() {
        let auth = authenticator();
        let challenge = auth.challenge(at(0), Algorithm::Md5, false);
        let good = answer(&challenge, "s3cret", 1);
        let verify = |header: &str| auth.verify(at(1), "REGISTER", Some(header), agents);
        assert_eq!(
            verify(&answer(&challenge, "guess", 1)),
            AuthOutcome::Invalid(DigestError::WrongResponse)
        );
        assert_eq!(
            auth.verify(at(1), "REGISTER", None, agents),
            AuthOutcome::Missing
        );
        // The response covers the method.
        assert_eq!(
            auth.verify(at(1), "INVITE", Some(&good), agents),
            AuthOutcome::Invalid(DigestError::WrongResponse)
        );
        assert_eq!(
            verify(&good.replace("username=\"1001\"", "username=\"1002\"")),
            AuthOutcome::Invalid(DigestError::UnknownUser("1002".into()))
        );
        assert_eq!(
            verify(&good.replace("realm=\"hotline.example\"", "realm=\"other\"")),
            AuthOutcome::Invalid(DigestError::WrongRealm("other".into()))
        );
        let nonce = parse_challenge(&challenge).expect("challenge").nonce;
        let mut forged = nonce.clone().into_bytes();
        forged[3] = if forged[3] == b'0' { b'1' } else { b'0' };
        let forged = String::from_utf8(forged).expect("hex");
        assert_eq!(
            verify(&good.replace(&nonce, &forged)),
            AuthOutcome::Invalid(DigestError::ForgedNonce)
        );
        assert_eq!(
            verify(&good.replace(&nonce, "not-hex")),
            AuthOutcome::Invalid(DigestError::ForgedNonce)
        );
        let opaque = parse_challenge(&challenge)
            .expect("c")
            .opaque
            .expect("opaque");
        assert_eq!(
            verify(&good.replace(&opaque, "0000")),
            AuthOutcome::Invalid(DigestError::OpaqueMismatch)
        );
        assert_eq!(
            verify(&good.replace("qop=auth", "qop=auth-int")),
            AuthOutcome::Invalid(DigestError::UnsupportedQop("auth-int".into()))
        );
        assert_eq!(
            verify(&good.replace("algorithm=MD5", "algorithm=SHA-512")),
            AuthOutcome::Invalid(DigestError::UnsupportedAlgorithm("SHA-512".into()))
        );
        assert!(matches!(
            verify(&good.replace("nc=00000001", "nc=1")),
            AuthOutcome::Invalid(DigestError::BadNonceCount(_))
        ));
        assert_eq!(
            verify(&good.replace("uri=", "url=")),
            AuthOutcome::Invalid(DigestError::MissingParameter("uri"))
        );
        assert_eq!(
            verify("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            AuthOutcome::Invalid(DigestError::NotDigest)
        );
    }

    #[test]
    fn r29_an_expired_nonce_is_stale_only_when_the_password_is_right() {
        let auth = authenticator();
        let challenge = auth.challenge(at(0), Algorithm::Sha256, false);
        let late = at(LIFETIME.as_secs() + 1);
        assert_eq!(
            auth.verify(
                late,
                "REGISTER",
                Some(&answer(&challenge, "s3cret", 1)),
                agents
            ),
            AuthOutcome::Stale
        );
        assert_eq!(
            auth.verify(
                late,
                "REGISTER",
                Some(&answer(&challenge, "guess", 1)),
                agents
            ),
            AuthOutcome::Invalid(DigestError::WrongResponse)
        );
        // Still fresh at the last second of its lifetime.
        assert!(matches!(
            auth.verify(
                at(LIFETIME.as_secs()),
                "REGISTER",
                Some(&answer(&challenge, "s3cret", 2)),
                agents
            ),
            AuthOutcome::Authenticated { .. }
        ));
        let again = auth.challenges(late, true);
        assert!(
            again.iter().all(|c| c.ends_with(", stale=true")),
            "{again:?}"
        );
        assert!(parse_challenge(&again[0]).expect("stale challenge").stale);
    }

    #[test]
    fn nonces_survive_a_restart_with_the_same_secret_only() {
        let challenge = authenticator().challenge(at(0), Algorithm::Md5, false);
        let header = answer(&challenge, "s3cret", 1);
        assert!(matches!(
            authenticator().verify(at(5), "REGISTER", Some(&header), agents),
            AuthOutcome::Authenticated { .. }
        ));
        let rekeyed = DigestAuthenticator::new(REALM, [8; 32], LIFETIME);
        assert_eq!(
            rekeyed.verify(at(5), "REGISTER", Some(&header), agents),
            AuthOutcome::Invalid(DigestError::ForgedNonce)
        );
    }

    #[test]
    fn each_challenge_has_its_own_nonce() {
        let auth = authenticator();
        let nonce = |value: String| parse_challenge(&value).expect("challenge").nonce;
        let first = nonce(auth.challenge(at(0), Algorithm::Md5, false));
        let second = nonce(auth.challenge(at(0), Algorithm::Md5, false));
        assert_ne!(first, second);
        let shared = auth.challenges(at(0), false);
        assert_eq!(nonce(shared[0].clone()), nonce(shared[1].clone()));
    }

    #[test]
    fn a_replayed_nonce_count_is_refused() {
        let auth = authenticator();
        let challenge = auth.challenge(at(0), Algorithm::Md5, false);
        let verify = |count| {
            auth.verify(
                at(1),
                "REGISTER",
                Some(&answer(&challenge, "s3cret", count)),
                agents,
            )
        };
        assert!(matches!(verify(1), AuthOutcome::Authenticated { .. }));
        assert_eq!(
            verify(1),
            AuthOutcome::Invalid(DigestError::NonceCountReplayed(1))
        );
        assert!(matches!(verify(2), AuthOutcome::Authenticated { .. }));
        assert!(matches!(verify(7), AuthOutcome::Authenticated { .. }));
        assert_eq!(
            verify(5),
            AuthOutcome::Invalid(DigestError::NonceCountReplayed(5))
        );
        // A wrong answer does not advance the count.
        let wrong = answer(&challenge, "guess", 9);
        assert!(matches!(
            auth.verify(at(1), "REGISTER", Some(&wrong), agents),
            AuthOutcome::Invalid(DigestError::WrongResponse)
        ));
        assert!(matches!(verify(8), AuthOutcome::Authenticated { .. }));
    }

    #[test]
    fn the_nonce_count_table_stays_bounded() {
        let auth = authenticator();
        for i in 0..NONCE_COUNT_CAPACITY + 10 {
            let challenge = auth.challenge(at(i as u64 / 100), Algorithm::Md5, false);
            let outcome = auth.verify(
                at(i as u64 / 100),
                "REGISTER",
                Some(&answer(&challenge, "s3cret", 1)),
                agents,
            );
            assert!(matches!(outcome, AuthOutcome::Authenticated { .. }), "{i}");
        }
        let table = auth.nonce_counts.lock().expect("lock");
        assert_eq!(table.len(), NONCE_COUNT_CAPACITY);
    }

    #[test]
    fn stored_ha1_replaces_the_password_per_hash_family() {
        let auth = authenticator();
        let md5_only = |user: &str| {
            (user == "1001").then(|| Credential::Ha1 {
                md5: Some(ha1(Algorithm::Md5, "1001", REALM, "s3cret").to_ascii_uppercase()),
                sha256: None,
            })
        };
        let md5 = answer(&auth.challenge(at(0), Algorithm::Md5, false), "s3cret", 1);
        assert!(matches!(
            auth.verify(at(1), "REGISTER", Some(&md5), md5_only),
            AuthOutcome::Authenticated { .. }
        ));
        let sha = answer(
            &auth.challenge(at(0), Algorithm::Sha256, false),
            "s3cret",
            1,
        );
        assert_eq!(
            auth.verify(at(1), "REGISTER", Some(&sha), md5_only),
            AuthOutcome::Invalid(DigestError::NoCredentialForAlgorithm {
                user: "1001".into(),
                algorithm: "SHA-256"
            })
        );
    }

    #[test]
    fn session_algorithms_key_ha1_with_the_cnonce() {
        let auth = authenticator()
            .with_offered_algorithms(vec![Algorithm::Sha256Sess, Algorithm::Md5Sess]);
        for (count, challenge) in (1..).zip(auth.challenges(at(0), false)) {
            let header = answer(&challenge, "s3cret", count);
            assert!(matches!(
                auth.verify(at(1), "REGISTER", Some(&header), agents),
                AuthOutcome::Authenticated { .. }
            ));
            let other_cnonce = header.replace("0a4f113b", "0a4f113c");
            assert_eq!(
                auth.verify(at(1), "REGISTER", Some(&other_cnonce), agents),
                AuthOutcome::Invalid(DigestError::WrongResponse)
            );
        }
    }

    #[test]
    fn the_parser_reads_escapes_case_and_unquoted_values() {
        let parsed = parse_authorization(
            "  digest  USERNAME = \"agent \\\"one\\\"\" ,, Realm=\"a\\\\b\",nonce=abc,\turi=sip:hotline.example;transport=udp , response=\"ff\", x-unknown=\"1, 2\", QOP=auth, nc=0000000a, cnonce=\"c\"",
        )
        .expect("lenient header");
        assert_eq!(parsed.username, "agent \"one\"");
        assert_eq!(parsed.realm, "a\\b");
        assert_eq!(parsed.nonce, "abc");
        assert_eq!(parsed.uri, "sip:hotline.example;transport=udp");
        assert_eq!(parsed.qop.as_deref(), Some("auth"));
        assert_eq!(parsed.nc.as_deref(), Some("0000000a"));
        assert_eq!(parsed.algorithm, None);
    }

    #[test]
    fn the_parser_refuses_broken_headers() {
        for (value, error) in [
            ("", DigestError::NotDigest),
            ("Digestusername=\"a\"", DigestError::NotDigest),
            ("Basic abc", DigestError::NotDigest),
            (
                "Digest realm=\"a\", realm=\"b\"",
                DigestError::DuplicateParameter("realm".into()),
            ),
            (
                "Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"u\"",
                DigestError::MissingParameter("response"),
            ),
        ] {
            assert_eq!(parse_authorization(value), Err(error), "{value:?}");
        }
        for value in [
            "Digest username=\"unterminated",
            "Digest username",
            "Digest =\"x\"",
            "Digest username=\"a\" realm=\"b\"",
            "Digest username=,",
            "Digest username=\"a\\",
        ] {
            assert!(
                matches!(parse_authorization(value), Err(DigestError::Syntax(_))),
                "{value:?}: {:?}",
                parse_authorization(value)
            );
        }
    }

    #[test]
    fn verify_request_picks_the_credentials_for_our_realm() {
        let auth = authenticator();
        let header = answer(&auth.challenge(at(0), Algorithm::Md5, false), "s3cret", 1);
        let foreign = header.replace("hotline.example\"", "elsewhere.example\"");
        let register = format!(
            "REGISTER sip:hotline.example SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.20:5062;branch=z9hG4bKreg1;rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:1001@hotline.example>;tag=a1\r\n\
             To: <sip:1001@hotline.example>\r\n\
             Call-ID: reg-1@192.0.2.20\r\n\
             CSeq: 2 REGISTER\r\n\
             Contact: <sip:1001@192.0.2.20:5062>\r\n\
             Authorization: {foreign}\r\n\
             Authorization: {header}\r\n\
             Content-Length: 0\r\n\r\n"
        );
        let Ok(SipMessage::Request(request)) = parse(register.as_bytes()) else {
            panic!("REGISTER did not parse");
        };
        assert_eq!(
            auth.verify_request(at(1), &request, agents),
            AuthOutcome::Authenticated {
                username: "1001".into()
            }
        );
        let bare = register
            .lines()
            .filter(|line| !line.starts_with("Authorization"))
            .collect::<Vec<_>>()
            .join("\r\n")
            + "\r\n\r\n";
        let Ok(SipMessage::Request(request)) = parse(bare.as_bytes()) else {
            panic!("bare REGISTER did not parse");
        };
        assert_eq!(
            auth.verify_request(at(1), &request, agents),
            AuthOutcome::Missing
        );
    }

    #[test]
    fn the_secret_stays_out_of_debug_output() {
        let debug = format!("{:?}", authenticator());
        assert!(
            debug.contains("hotline.example") && !debug.contains("7, 7"),
            "{debug}"
        );
    }

    proptest! {
        #[test]
        fn parsing_garbage_never_panics(value in any::<String>()) {
            let _ = parse_authorization(&value);
            let _ = parse_challenge(&value);
        }

        #[test]
        fn parsing_digest_shaped_garbage_never_panics(
            body in "[a-zA-Z0-9=\",\\\\ \t\u{e9}\u{4e2d}-]{0,80}",
        ) {
            let value = format!("Digest {body}");
            let _ = parse_authorization(&value);
            let _ = parse_challenge(&value);
            let _ = authenticator().verify(at(0), "REGISTER", Some(&value), agents);
        }

        #[test]
        fn quoted_values_round_trip(username in "[ -~\u{e9}\u{4e2d}]{1,20}") {
            let header = format!(
                "Digest username=\"{}\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"x\"",
                quote_escape(&username)
            );
            prop_assert_eq!(parse_authorization(&header).map(|p| p.username), Ok(username));
        }
    }
}
