//! `[[trunks]]`: who may send calls in (R29). Each trunk is admitted by its source
//! address (`allow`: CIDR blocks or single addresses, IPv4 or IPv6), by digest
//! credentials (`username` and `password`), or both. Without any `[[trunks]]` the engine
//! admits the loopback addresses alone (the [`loopback`] trunk), so a config written
//! before this section keeps working on one machine and admits nothing from outside.
//!
//! Pure: validates what `config::Config::parse` read; errors name the file and line.

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Validator};
use crate::sip::trunk::{Cidr, Trunk, TrunkCredentials};

/// One `[[trunks]]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrunk {
    name: Spanned<String>,
    #[serde(default)]
    allow: Vec<Spanned<String>>,
    username: Option<Spanned<String>>,
    password: Option<Spanned<String>>,
}

/// The trunk assumed when the file has no `[[trunks]]`: 127.0.0.1 and ::1.
pub fn loopback() -> Trunk {
    Trunk {
        name: "loopback".to_owned(),
        allow: ["127.0.0.1/32", "::1/128"]
            .iter()
            .filter_map(|text| text.parse::<Cidr>().ok())
            .collect(),
        credentials: None,
    }
}

/// Validates the `[[trunks]]` tables: a non-empty, unique name; every `allow` entry a
/// CIDR block or address; `username` and `password` together; and some way in (an
/// address or credentials), since a trunk that admits nothing is a mistake.
pub(super) fn validate(
    v: &Validator<'_>,
    raw: &Option<Vec<RawTrunk>>,
) -> Result<Vec<Trunk>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(vec![loopback()]);
    };
    let mut trunks: Vec<Trunk> = Vec::with_capacity(raw.len());
    for table in raw {
        let name = table.name.get_ref().trim();
        if name.is_empty() {
            return Err(v.invalid(table.name.span(), "trunks.name", "must not be empty"));
        }
        if trunks.iter().any(|trunk| trunk.name == name) {
            return Err(v.invalid(
                table.name.span(),
                "trunks.name",
                format!("a trunk named {name:?} is already defined"),
            ));
        }
        let allow = table
            .allow
            .iter()
            .map(|entry| {
                entry.get_ref().parse::<Cidr>().map_err(|error| {
                    v.invalid(
                        entry.span(),
                        "trunks.allow",
                        format!("{error} (write an address or a block such as \"10.0.0.0/8\")"),
                    )
                })
            })
            .collect::<Result<Vec<Cidr>, ConfigError>>()?;
        let credentials = match (&table.username, &table.password) {
            (None, None) => None,
            (Some(username), Some(password)) => {
                if username.get_ref().trim().is_empty() {
                    return Err(v.invalid(username.span(), "trunks.username", "must not be empty"));
                }
                if password.get_ref().is_empty() {
                    return Err(v.invalid(password.span(), "trunks.password", "must not be empty"));
                }
                Some(TrunkCredentials {
                    username: username.get_ref().trim().to_owned(),
                    password: password.get_ref().clone(),
                })
            }
            (Some(username), None) => {
                return Err(v.invalid(
                    username.span(),
                    "trunks.username",
                    "a username needs a password",
                ));
            }
            (None, Some(password)) => {
                return Err(v.invalid(
                    password.span(),
                    "trunks.password",
                    "a password needs a username",
                ));
            }
        };
        if allow.is_empty() && credentials.is_none() {
            return Err(v.invalid(
                table.name.span(),
                "trunks",
                format!("trunk {name:?} has neither `allow` addresses nor credentials: it admits nothing"),
            ));
        }
        if let Some(credentials) = &credentials
            && trunks.iter().any(|trunk| {
                trunk
                    .credentials
                    .as_ref()
                    .is_some_and(|other| other.username == credentials.username)
            })
        {
            return Err(v.invalid(
                table
                    .username
                    .as_ref()
                    .map_or(table.name.span(), Spanned::span),
                "trunks.username",
                format!(
                    "user {:?} belongs to another trunk already",
                    credentials.username
                ),
            ));
        }
        trunks.push(Trunk {
            name: name.to_owned(),
            allow,
            credentials,
        });
    }
    Ok(trunks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    const SHIPPED: &str = include_str!("../../config/hotline.toml");

    /// The shipped config without its `[[trunks]]` tables (they are last in the file).
    fn without_trunks() -> &'static str {
        let start = SHIPPED.find("\n[[trunks]]").expect("shipped trunks");
        &SHIPPED[..=start]
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("hotline.toml"), text)
    }

    fn ip(text: &str) -> std::net::IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn the_shipped_config_is_open_on_loopback_only_r29() {
        let config = parse(SHIPPED).expect("shipped config");
        assert_eq!(config.trunks.len(), 1);
        let local = &config.trunks[0];
        assert_eq!(local.name, "local");
        assert!(local.allow.iter().any(|c| c.contains(ip("127.0.0.1"))));
        assert!(local.allow.iter().any(|c| c.contains(ip("::1"))));
        assert!(!local.allow.iter().any(|c| c.contains(ip("192.0.2.1"))));
        assert!(local.credentials.is_none());
    }

    #[test]
    fn without_trunks_only_loopback_is_admitted() {
        let config = parse(without_trunks()).expect("config without trunks");
        assert_eq!(config.trunks, [loopback()]);
        assert!(
            config.trunks[0]
                .allow
                .iter()
                .any(|c| c.contains(ip("127.0.0.1")))
        );
        assert!(
            !config.trunks[0]
                .allow
                .iter()
                .any(|c| c.contains(ip("10.0.0.1")))
        );
    }

    #[test]
    fn trunks_with_blocks_addresses_and_credentials_r29() {
        let text = format!(
            "{}[[trunks]]\nname = \"carrier\"\nallow = [\"10.0.0.0/8\", \"2001:db8::/32\", \"192.0.2.7\"]\n\n\
             [[trunks]]\nname = \"roaming\"\nusername = \"carrier-b\"\npassword = \"pw\"\n",
            without_trunks()
        );
        let config = parse(&text).expect("valid trunks");
        assert_eq!(config.trunks.len(), 2);
        assert_eq!(config.trunks[0].allow.len(), 3);
        assert!(config.trunks[0].allow[1].contains(ip("2001:db8::5")));
        let credentials = config.trunks[1].credentials.as_ref().expect("credentials");
        assert_eq!(credentials.username, "carrier-b");
        assert!(config.trunks[1].allow.is_empty());
    }

    /// Each broken trunk table, the key the error names, and a piece of its reason.
    #[test]
    fn bad_trunks_stop_start_up_with_file_line_and_reason() {
        let base = without_trunks();
        let base_lines = base.lines().count();
        let cases = [
            (
                "[[trunks]]\nname = \"x\"\nallow = [\"127.0.0.1/32\",\n  \"10.0.0.0/33\"]\n",
                "trunks.allow",
                4,
                "prefix length",
            ),
            (
                "[[trunks]]\nname = \"x\"\nallow = [\"10.0.0.1/8\"]\n",
                "trunks.allow",
                3,
                "the block is 10.0.0.0/8",
            ),
            (
                "[[trunks]]\nname = \"x\"\nallow = [\"carrier.example\"]\n",
                "trunks.allow",
                3,
                "not an IP address",
            ),
            (
                "[[trunks]]\nname = \" \"\nallow = [\"::1\"]\n",
                "trunks.name",
                2,
                "empty",
            ),
            ("[[trunks]]\nname = \"x\"\n", "trunks", 2, "admits nothing"),
            (
                "[[trunks]]\nname = \"x\"\nusername = \"u\"\n",
                "trunks.username",
                3,
                "needs a password",
            ),
            (
                "[[trunks]]\nname = \"x\"\npassword = \"p\"\n",
                "trunks.password",
                3,
                "needs a username",
            ),
            (
                "[[trunks]]\nname = \"x\"\nallow = [\"::1\"]\n[[trunks]]\nname = \"x\"\nallow = [\"::2\"]\n",
                "trunks.name",
                5,
                "already defined",
            ),
            (
                "[[trunks]]\nname = \"a\"\nusername = \"u\"\npassword = \"p\"\n[[trunks]]\nname = \"b\"\nusername = \"u\"\npassword = \"q\"\n",
                "trunks.username",
                7,
                "another trunk",
            ),
        ];
        for (tables, want_key, want_line, want_reason) in cases {
            let text = format!("{base}{tables}");
            match parse(&text) {
                Err(ConfigError::Invalid {
                    path,
                    line,
                    key,
                    reason,
                }) => {
                    assert_eq!(path, Path::new("hotline.toml"));
                    assert_eq!(key, want_key, "{tables}");
                    assert_eq!(line, base_lines + want_line, "{tables}: {reason}");
                    assert!(reason.contains(want_reason), "{tables}: {reason}");
                    let shown = ConfigError::Invalid {
                        path,
                        line,
                        key,
                        reason,
                    }
                    .to_string();
                    assert!(shown.starts_with(&format!("hotline.toml:{line}: {want_key}: ")));
                }
                other => panic!("{tables}: {other:?}"),
            }
        }
        // An unknown key is a syntax error with its line too.
        match parse(&format!(
            "{base}[[trunks]]\nname = \"x\"\nallows = [\"::1\"]\n"
        )) {
            Err(ConfigError::Syntax { line, .. }) => assert_eq!(line, base_lines + 3),
            other => panic!("{other:?}"),
        }
    }
}
