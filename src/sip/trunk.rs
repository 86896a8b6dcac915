//! Trunk admission (R29) as a pure policy: which configured trunk a new INVITE comes
//! from — by its source address (a CIDR block or a single address, IPv4 or IPv6), or
//! by digest credentials checked by `sip::digest` — and, when none, whether to challenge
//! or refuse it with `403`, with a reason for the metric label.
//!
//! Pure: the source address, the request, the wall-clock `now` (for digest nonces)
//! and the authenticator come in; a decision comes out.
//!
//! The CIDR type is written here rather than taken from `ipnet`: it needs parsing,
//! `contains` and `Display` — forty lines over `std` — while the config layer wants
//! its own error wording (with the file and line) anyway, and one crate fewer is one
//! audit fewer for a government deployment.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::SystemTime;

use super::digest::{AuthOutcome, Credential, DigestAuthenticator};
use super::message::Request;

/// A block of addresses: `10.0.0.0/8`, `2001:db8::/32`, or one address (`/32`, `/128`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a string is not a CIDR block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{0:?} is not an IP address")]
    Address(String),
    #[error("prefix length {prefix:?} is not a number from 0 to {max}")]
    Prefix { prefix: String, max: u8 },
    #[error("{text:?} has bits set after the prefix; the block is {network}/{prefix}")]
    HostBits {
        text: String,
        network: IpAddr,
        prefix: u8,
    },
}

impl Cidr {
    /// 127.0.0.0/8: every loopback address.
    pub fn loopback_v4() -> Cidr {
        Cidr {
            network: IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 0)),
            prefix: 8,
        }
    }

    pub fn network(&self) -> IpAddr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in the block. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, how
    /// a dual-stack socket reports an IPv4 peer) is compared as the IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => {
                let mask = mask_v4(self.prefix);
                u32::from(ip) & mask == u32::from(network)
            }
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                let mask = mask_v6(self.prefix);
                u128::from(ip) & mask == u128::from(network)
            }
            _ => false,
        }
    }
}

fn mask_v4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_v6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// `address/prefix` or a bare address. Bits set beyond the prefix are an error,
    /// not silently cleared: `10.0.0.1/8` is more likely a typo than a wish to admit
    /// all of `10.0.0.0/8`.
    fn from_str(text: &str) -> Result<Cidr, CidrError> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| CidrError::Address(address.to_owned()))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max && prefix.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| CidrError::Prefix {
                    prefix: prefix.to_owned(),
                    max,
                })?,
        };
        let masked = match network {
            IpAddr::V4(ip) => IpAddr::V4((u32::from(ip) & mask_v4(prefix)).into()),
            IpAddr::V6(ip) => IpAddr::V6((u128::from(ip) & mask_v6(prefix)).into()),
        };
        if masked != network {
            return Err(CidrError::HostBits {
                text: text.to_owned(),
                network: masked,
                prefix,
            });
        }
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Digest credentials a trunk may present instead of (or besides) coming from an
/// allowed address.
#[derive(Clone, PartialEq, Eq)]
pub struct TrunkCredentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for TrunkCredentials {
    // The password stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrunkCredentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// One trunk from the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trunk {
    /// Its name: the label of its calls and metrics.
    pub name: String,
    pub allow: Vec<Cidr>,
    pub credentials: Option<TrunkCredentials>,
}

/// Why an INVITE is refused with `403`; [`ForbiddenReason::as_str`] is the metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ForbiddenReason {
    /// From an address no trunk allows, and no trunk takes credentials.
    Address,
    /// Credentials were presented and are wrong (or name no trunk).
    Credentials,
}

impl ForbiddenReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ForbiddenReason::Address => "address",
            ForbiddenReason::Credentials => "credentials",
        }
    }
}

/// The decision for a new INVITE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// It comes from this trunk.
    Allowed { trunk: String },
    /// Answer `401` with the authenticator's challenges (`stale=true` when the
    /// credentials were right but the nonce had expired, RFC 7616 §3.3).
    Challenge { stale: bool },
    /// Answer `403` and count it under `reason`.
    Forbidden { reason: ForbiddenReason },
}

/// The configured trunks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrunkPolicy {
    trunks: Vec<Trunk>,
}

impl TrunkPolicy {
    pub fn new(trunks: Vec<Trunk>) -> TrunkPolicy {
        TrunkPolicy { trunks }
    }

    pub fn trunks(&self) -> &[Trunk] {
        &self.trunks
    }

    /// The first trunk whose `allow` holds `source`.
    pub fn by_address(&self, source: IpAddr) -> Option<&Trunk> {
        self.trunks
            .iter()
            .find(|trunk| trunk.allow.iter().any(|cidr| cidr.contains(source)))
    }

    /// Decides on a new INVITE from `source`: an allowed address admits it; otherwise,
    /// when some trunk takes digest credentials, the request's `Authorization` is
    /// checked by `digest` (none yet: challenge; right: that trunk; wrong: 403
    /// `credentials`); otherwise 403 `address`.
    pub fn admit(
        &self,
        now: SystemTime,
        source: IpAddr,
        request: &Request,
        digest: &DigestAuthenticator,
    ) -> Admission {
        if let Some(trunk) = self.by_address(source) {
            return Admission::Allowed {
                trunk: trunk.name.clone(),
            };
        }
        if !self.trunks.iter().any(|trunk| trunk.credentials.is_some()) {
            return Admission::Forbidden {
                reason: ForbiddenReason::Address,
            };
        }
        let credentials_of = |username: &str| {
            self.trunks.iter().find(|trunk| {
                trunk
                    .credentials
                    .as_ref()
                    .is_some_and(|c| c.username == username)
            })
        };
        let lookup = |username: &str| {
            credentials_of(username)
                .and_then(|trunk| trunk.credentials.as_ref())
                .map(|c| Credential::Password(c.password.clone()))
        };
        match digest.verify_request(now, request, lookup) {
            AuthOutcome::Authenticated { username } => match credentials_of(&username) {
                Some(trunk) => Admission::Allowed {
                    trunk: trunk.name.clone(),
                },
                None => Admission::Forbidden {
                    reason: ForbiddenReason::Credentials,
                },
            },
            AuthOutcome::Missing => Admission::Challenge { stale: false },
            AuthOutcome::Stale => Admission::Challenge { stale: true },
            AuthOutcome::Invalid(_) => Admission::Forbidden {
                reason: ForbiddenReason::Credentials,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::digest::{Algorithm, answer_challenge, parse_challenge};
    use crate::sip::message::{self, SipMessage, make_header};
    use std::time::Duration;

    fn cidr(text: &str) -> Cidr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn cidr_blocks_parse_and_match_ipv4_and_ipv6() {
        let block = cidr("10.0.0.0/8");
        assert!(block.contains(ip("10.255.1.2")));
        assert!(!block.contains(ip("11.0.0.1")));
        assert!(!block.contains(ip("::1")));
        let single = cidr("127.0.0.1");
        assert_eq!(single.prefix(), 32);
        assert!(single.contains(ip("127.0.0.1")) && !single.contains(ip("127.0.0.2")));
        assert!(
            single.contains(ip("::ffff:127.0.0.1")),
            "IPv4-mapped from a dual-stack socket"
        );
        let v6 = cidr("2001:db8::/32");
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        assert_eq!(cidr("::1").prefix(), 128);
        let everything = cidr("0.0.0.0/0");
        assert!(everything.contains(ip("203.0.113.9")));
        assert!(cidr("::/0").contains(ip("2001:db8::1")));
        assert_eq!(cidr(" 192.0.2.0/24 ").to_string(), "192.0.2.0/24");
    }

    #[test]
    fn bad_cidrs_say_why() {
        assert_eq!(
            "10.0.0/8".parse::<Cidr>(),
            Err(CidrError::Address("10.0.0".into()))
        );
        assert!(matches!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(CidrError::Prefix { max: 32, .. })
        ));
        assert!(matches!(
            "::/129".parse::<Cidr>(),
            Err(CidrError::Prefix { max: 128, .. })
        ));
        assert!(matches!(
            "10.0.0.0/+8".parse::<Cidr>(),
            Err(CidrError::Prefix { .. })
        ));
        let host_bits = "10.0.0.1/8".parse::<Cidr>().expect_err("host bits");
        assert_eq!(
            host_bits.to_string(),
            "\"10.0.0.1/8\" has bits set after the prefix; the block is 10.0.0.0/8"
        );
        assert!("example.com".parse::<Cidr>().is_err());
    }

    fn invite(authorization: Option<String>) -> Request {
        let text = "INVITE sip:12345@hotline.example SIP/2.0\r\n\
             Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKtrunk\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:13800138000@carrier.example>;tag=1\r\n\
             To: <sip:12345@hotline.example>\r\n\
             Call-ID: trunk@carrier.example\r\n\
             CSeq: 2 INVITE\r\n\
             Content-Length: 0\r\n\r\n";
        let Ok(SipMessage::Request(mut request)) = message::parse(text.as_bytes()) else {
            panic!("invite");
        };
        if let Some(value) = authorization {
            request.headers.push(make_header("Authorization", value));
        }
        request
    }

    fn policy() -> TrunkPolicy {
        TrunkPolicy::new(vec![
            Trunk {
                name: "local".into(),
                allow: vec![cidr("127.0.0.1/32"), cidr("::1")],
                credentials: None,
            },
            Trunk {
                name: "carrier".into(),
                allow: vec![cidr("10.0.0.0/8")],
                credentials: Some(TrunkCredentials {
                    username: "carrier-a".into(),
                    password: "s3cret".into(),
                }),
            },
        ])
    }

    fn authenticator() -> DigestAuthenticator {
        DigestAuthenticator::new("hotline", [7; 32], Duration::from_secs(300))
            .with_offered_algorithms(vec![Algorithm::Md5])
    }

    fn answer(digest: &DigestAuthenticator, now: SystemTime, user: &str, pass: &str) -> String {
        let challenge =
            parse_challenge(&digest.challenge(now, Algorithm::Md5, false)).expect("challenge");
        answer_challenge(
            &challenge,
            "INVITE",
            "sip:12345@hotline.example",
            user,
            pass,
            ("cnonce1", 1),
        )
        .expect("answer")
    }

    #[test]
    fn an_allowed_address_admits_without_credentials_r29() {
        let digest = authenticator();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let policy = policy();
        for (source, trunk) in [
            ("127.0.0.1", "local"),
            ("::1", "local"),
            ("10.1.2.3", "carrier"),
        ] {
            assert_eq!(
                policy.admit(now, ip(source), &invite(None), &digest),
                Admission::Allowed {
                    trunk: trunk.into()
                },
                "{source}"
            );
        }
    }

    #[test]
    fn elsewhere_credentials_are_asked_for_and_checked_r29() {
        let digest = authenticator();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let policy = policy();
        let stranger = ip("203.0.113.9");
        assert_eq!(
            policy.admit(now, stranger, &invite(None), &digest),
            Admission::Challenge { stale: false }
        );
        let right = answer(&digest, now, "carrier-a", "s3cret");
        assert_eq!(
            policy.admit(now, stranger, &invite(Some(right)), &digest),
            Admission::Allowed {
                trunk: "carrier".into()
            }
        );
        let wrong = answer(&digest, now, "carrier-a", "guess");
        let refused = policy.admit(now, stranger, &invite(Some(wrong)), &digest);
        assert_eq!(
            refused,
            Admission::Forbidden {
                reason: ForbiddenReason::Credentials
            }
        );
        let unknown_user = answer(&digest, now, "nobody", "s3cret");
        assert_eq!(
            policy.admit(now, stranger, &invite(Some(unknown_user)), &digest),
            Admission::Forbidden {
                reason: ForbiddenReason::Credentials
            }
        );
        // The nonce has outlived its lifetime: challenge again, stale.
        let old = answer(&digest, now, "carrier-a", "s3cret");
        assert_eq!(
            policy.admit(
                now + Duration::from_secs(301),
                stranger,
                &invite(Some(old)),
                &digest
            ),
            Admission::Challenge { stale: true }
        );
    }

    #[test]
    fn without_credential_trunks_a_stranger_is_forbidden_by_address_r29() {
        let digest = authenticator();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let policy = TrunkPolicy::new(vec![Trunk {
            name: "local".into(),
            allow: vec![cidr("127.0.0.1")],
            credentials: None,
        }]);
        let decision = policy.admit(now, ip("192.0.2.1"), &invite(None), &digest);
        assert_eq!(
            decision,
            Admission::Forbidden {
                reason: ForbiddenReason::Address
            }
        );
        assert_eq!(ForbiddenReason::Address.as_str(), "address");
        assert_eq!(ForbiddenReason::Credentials.as_str(), "credentials");
    }

    #[test]
    fn passwords_stay_out_of_debug_output() {
        let text = format!("{:?}", policy());
        assert!(
            text.contains("carrier-a") && !text.contains("s3cret"),
            "{text}"
        );
    }
}
