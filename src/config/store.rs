//! The `[store]` section: where work orders are kept (R31) and for how long. Pure:
//! the PostgreSQL password is not read here, only the name of the environment
//! variable that holds it (read when the store is opened).

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Validator};

/// The validated `[store]` section.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    /// Work orders and recordings older than this are purged; `None` keeps them for
    /// ever (`retention_days = 0`).
    pub retention: Option<chrono::Duration>,
    /// How often the retention job looks for orders past `retention`
    /// (`purge_interval_minutes`, default an hour).
    pub purge_interval: std::time::Duration,
}

#[derive(Clone, Debug)]
pub enum StoreBackend {
    /// The embedded default: a SQLite file under `data_dir`, created on first start.
    Sqlite { data_dir: PathBuf },
    /// PostgreSQL for production.
    Postgres {
        /// `postgres://user@host:port/database`, no password in it.
        url: String,
        /// The environment variable holding the password, if the server wants one.
        password_env: Option<String>,
        tls: StoreTls,
    },
}

/// How the PostgreSQL connection is encrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreTls {
    Disable,
    Require,
    VerifyFull { ca_file: Option<PathBuf> },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    kind: Spanned<String>,
    #[serde(default)]
    data_dir: Option<Spanned<String>>,
    #[serde(default)]
    url: Option<Spanned<String>>,
    #[serde(default)]
    password_env: Option<Spanned<String>>,
    #[serde(default)]
    tls: Option<Spanned<String>>,
    #[serde(default)]
    ca_file: Option<Spanned<String>>,
    #[serde(default)]
    retention_days: Option<Spanned<u64>>,
    #[serde(default)]
    purge_interval_minutes: Option<Spanned<u64>>,
}

/// The retention job's default interval, and the longest accepted (a week).
const DEFAULT_PURGE_INTERVAL_MINUTES: u64 = 60;
const MAX_PURGE_INTERVAL_MINUTES: u64 = 7 * 24 * 60;

/// Longest retention accepted: 30 years.
const MAX_RETENTION_DAYS: u64 = 30 * 366;

impl Validator<'_> {
    pub(super) fn store(&self, raw: &RawStore) -> Result<StoreConfig, ConfigError> {
        let backend = match raw.kind.get_ref().as_str() {
            "sqlite" => {
                for (value, key) in [
                    (&raw.url, "store.url"),
                    (&raw.password_env, "store.password_env"),
                    (&raw.tls, "store.tls"),
                    (&raw.ca_file, "store.ca_file"),
                ] {
                    if let Some(v) = value {
                        return Err(self.invalid(v.span(), key, "only for kind = \"postgres\""));
                    }
                }
                let Some(data_dir) = &raw.data_dir else {
                    return Err(self.invalid(
                        raw.kind.span(),
                        "store.data_dir",
                        "kind = \"sqlite\" needs data_dir, the directory of the database file",
                    ));
                };
                StoreBackend::Sqlite {
                    data_dir: self.non_empty_path(data_dir, "store.data_dir")?,
                }
            }
            "postgres" => self.postgres(raw)?,
            other => {
                return Err(self.invalid(
                    raw.kind.span(),
                    "store.kind",
                    format!(
                        "unknown store {other:?}; this build knows \"sqlite\" and \"postgres\""
                    ),
                ));
            }
        };
        let retention = match &raw.retention_days {
            None => None,
            Some(days) => {
                match self.in_range(days, "store.retention_days", 0..=MAX_RETENTION_DAYS)? {
                    0 => None,
                    n => Some(chrono::Duration::days(n as i64)),
                }
            }
        };
        let purge_interval_minutes = match &raw.purge_interval_minutes {
            None => DEFAULT_PURGE_INTERVAL_MINUTES,
            Some(minutes) => self.in_range(
                minutes,
                "store.purge_interval_minutes",
                1..=MAX_PURGE_INTERVAL_MINUTES,
            )?,
        };
        Ok(StoreConfig {
            backend,
            retention,
            purge_interval: std::time::Duration::from_secs(purge_interval_minutes * 60),
        })
    }

    fn postgres(&self, raw: &RawStore) -> Result<StoreBackend, ConfigError> {
        if let Some(v) = &raw.data_dir {
            return Err(self.invalid(v.span(), "store.data_dir", "only for kind = \"sqlite\""));
        }
        let Some(url) = &raw.url else {
            return Err(self.invalid(
                raw.kind.span(),
                "store.url",
                "kind = \"postgres\" needs url, e.g. \"postgres://hotline@db.example:5432/hotline\"",
            ));
        };
        let text = url.get_ref().trim();
        if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
            return Err(self.invalid(
                url.span(),
                "store.url",
                format!("{text:?} is not a postgres:// URL"),
            ));
        }
        // The user-info part (before '@' in the authority) must not hold a password.
        let authority = text
            .split_once("://")
            .map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or(""))
            .unwrap_or("");
        if let Some((user_info, _)) = authority.rsplit_once('@')
            && user_info.contains(':')
        {
            return Err(self.invalid(
                url.span(),
                "store.url",
                "holds a password: put it in the environment variable named by \
                 store.password_env instead, so it is not in the config file",
            ));
        }
        let password_env = raw
            .password_env
            .as_ref()
            .map(|name| self.env_var_name(name, "store.password_env"))
            .transpose()?;
        let ca_file = raw
            .ca_file
            .as_ref()
            .map(|v| self.non_empty_path(v, "store.ca_file"))
            .transpose()?;
        let tls = match raw.tls.as_ref().map(|t| t.get_ref().as_str()) {
            None | Some("verify-full") => StoreTls::VerifyFull { ca_file },
            Some(mode @ ("disable" | "require")) => {
                if let Some(v) = &raw.ca_file {
                    return Err(self.invalid(
                        v.span(),
                        "store.ca_file",
                        "only for tls = \"verify-full\"",
                    ));
                }
                if mode == "disable" {
                    StoreTls::Disable
                } else {
                    StoreTls::Require
                }
            }
            Some(other) => {
                let span = raw.tls.as_ref().map(|t| t.span()).unwrap_or(0..0);
                return Err(self.invalid(
                    span,
                    "store.tls",
                    format!("unknown TLS mode {other:?}; use \"disable\", \"require\" or \"verify-full\""),
                ));
            }
        };
        Ok(StoreBackend::Postgres {
            url: text.to_owned(),
            password_env,
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, ConfigError};

    use super::*;

    const SHIPPED: &str = include_str!("../../config/hotline.toml");

    fn with_store(section: &str) -> Result<Config, ConfigError> {
        let start = SHIPPED.find("[store]").expect("store section");
        let end = SHIPPED[start + 1..]
            .find("\n[")
            .map_or(SHIPPED.len(), |i| start + 2 + i);
        let text = format!("{}{section}\n{}", &SHIPPED[..start], &SHIPPED[end..]);
        Config::parse(Path::new("test.toml"), &text)
    }

    fn refused_key(section: &str) -> &'static str {
        match with_store(section) {
            Err(ConfigError::Invalid { key, .. }) => key,
            Err(other) => panic!("expected Invalid, got {other}"),
            Ok(_) => panic!("accepted {section}"),
        }
    }

    #[test]
    fn the_shipped_store_is_sqlite_keeping_orders_for_a_set_period() {
        let cfg = Config::parse(Path::new("test.toml"), SHIPPED).expect("shipped");
        assert!(matches!(cfg.store.backend, StoreBackend::Sqlite { .. }));
        assert!(cfg.store.retention.is_some());
        assert_eq!(
            cfg.store.purge_interval,
            std::time::Duration::from_secs(3600)
        );
    }

    #[test]
    fn the_purge_interval_is_configurable() {
        let cfg = with_store(
            "[store]\nkind = \"sqlite\"\ndata_dir = \"d\"\nretention_days = 30\n\
             purge_interval_minutes = 1440",
        )
        .expect("valid");
        assert_eq!(
            cfg.store.purge_interval,
            std::time::Duration::from_secs(24 * 3600)
        );
    }

    #[test]
    fn postgres_takes_url_password_variable_and_tls() {
        let cfg = with_store(
            "[store]\nkind = \"postgres\"\nurl = \"postgres://hotline@db.example:5432/hotline\"\n\
             password_env = \"HOTLINE_PG_PASSWORD\"\ntls = \"require\"\nretention_days = 0",
        )
        .expect("valid");
        match cfg.store.backend {
            StoreBackend::Postgres {
                url,
                password_env,
                tls,
            } => {
                assert_eq!(url, "postgres://hotline@db.example:5432/hotline");
                assert_eq!(password_env.as_deref(), Some("HOTLINE_PG_PASSWORD"));
                assert_eq!(tls, StoreTls::Require);
            }
            other => panic!("expected postgres, got {other:?}"),
        }
        assert_eq!(cfg.store.retention, None);
    }

    #[test]
    fn tls_defaults_to_verify_full() {
        let cfg =
            with_store("[store]\nkind = \"postgres\"\nurl = \"postgres://h@db/x\"").expect("valid");
        assert!(matches!(
            cfg.store.backend,
            StoreBackend::Postgres {
                tls: StoreTls::VerifyFull { ca_file: None },
                ..
            }
        ));
    }

    #[test]
    fn bad_store_settings_name_their_key() {
        for (section, key) in [
            ("[store]\nkind = \"postgres\"", "store.url"),
            (
                "[store]\nkind = \"postgres\"\nurl = \"postgres://u:secret@db/x\"",
                "store.url",
            ),
            (
                "[store]\nkind = \"postgres\"\nurl = \"mysql://db/x\"",
                "store.url",
            ),
            (
                "[store]\nkind = \"postgres\"\nurl = \"postgres://db/x\"\ntls = \"maybe\"",
                "store.tls",
            ),
            (
                "[store]\nkind = \"postgres\"\nurl = \"postgres://db/x\"\npassword_env = \"A-B\"",
                "store.password_env",
            ),
            (
                "[store]\nkind = \"postgres\"\nurl = \"postgres://db/x\"\ndata_dir = \"d\"",
                "store.data_dir",
            ),
            (
                "[store]\nkind = \"sqlite\"\ndata_dir = \"d\"\nurl = \"postgres://db/x\"",
                "store.url",
            ),
            ("[store]\nkind = \"sqlite\"", "store.data_dir"),
            (
                "[store]\nkind = \"sqlite\"\ndata_dir = \"d\"\nretention_days = 99999",
                "store.retention_days",
            ),
            (
                "[store]\nkind = \"sqlite\"\ndata_dir = \"d\"\npurge_interval_minutes = 0",
                "store.purge_interval_minutes",
            ),
        ] {
            assert_eq!(refused_key(section), key, "{section}");
        }
    }
}
