//! The open-file limit (RLIMIT_NOFILE) against what the config lets the engine open
//! (issue 9 row 2): every TCP connection, two RTP sockets per call (caller and agent
//! legs), one recording file per call, and a fixed reserve for the store, listeners,
//! prompts and the runtime. With the common `ulimit -n 1024` and the default 1,024 TCP
//! connections, idle sockets would otherwise shut out RTP and every new softphone.
//!
//! [`plan`] is pure (numbers in, a decision out); [`apply`] is the thin
//! `getrlimit`/`setrlimit` call start-up makes before binding any port.

use crate::config::Config;
use crate::config::limits::FdLimitPolicy;

/// Descriptors kept for what is not per call or per connection: the store (SQLite and
/// its journal), the listening sockets, the HTTP server, stdio, epoll, prompt files
/// being read, the tokio blocking pool.
pub const FD_RESERVE: u64 = 64;

/// What the config lets the engine hold open at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdDemand {
    pub tcp_connections: u64,
    pub calls: u64,
}

impl FdDemand {
    pub fn of(config: &Config) -> FdDemand {
        FdDemand {
            tcp_connections: config.sip.max_tcp_connections as u64,
            calls: config.calls.max_concurrent as u64,
        }
    }

    pub fn rtp_sockets(&self) -> u64 {
        2 * self.calls
    }

    pub fn recording_files(&self) -> u64 {
        self.calls
    }

    pub fn total(&self) -> u64 {
        self.tcp_connections + self.rtp_sockets() + self.recording_files() + FD_RESERVE
    }
}

impl std::fmt::Display for FdDemand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} = {} TCP connections + {} RTP sockets (2 per call) + {} recordings + {} reserved",
            self.total(),
            self.tcp_connections,
            self.rtp_sockets(),
            self.recording_files(),
            FD_RESERVE
        )
    }
}

/// The process's RLIMIT_NOFILE; `u64::MAX` stands for unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdLimit {
    pub soft: u64,
    pub hard: u64,
}

/// What to do about the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdPlan {
    /// The soft limit already holds the demand.
    Enough,
    /// Raise the soft limit to this (the hard limit, or the demand if lower).
    Raise { to: u64 },
    /// Even the hard limit is below the demand.
    Short { needed: u64, hard: u64 },
}

/// Pure: the decision for `demand` under `limit`.
pub fn plan(demand: FdDemand, limit: FdLimit) -> FdPlan {
    let needed = demand.total();
    if limit.soft >= needed {
        FdPlan::Enough
    } else if limit.hard >= needed {
        // Raising to the hard limit itself would hand the engine, say, a million
        // descriptors it has no use for; the demand is what the config allows.
        FdPlan::Raise { to: needed }
    } else {
        // The caller raises to the hard limit anyway (closer is better), then refuses
        // or warns.
        FdPlan::Short {
            needed,
            hard: limit.hard,
        }
    }
}

/// Why start-up stops on the open-file limit.
#[derive(Debug, thiserror::Error)]
pub enum FdLimitError {
    #[error(
        "the open-file limit (RLIMIT_NOFILE) is {hard} even at its hard limit, but the config needs {demand}; \
         raise it (ulimit -n, LimitNOFILE= in systemd), lower sip.max_tcp_connections or calls.max_concurrent, \
         or set limits.fd_limit = \"warn\""
    )]
    TooLow { hard: u64, demand: FdDemand },
    #[error("cannot read or raise RLIMIT_NOFILE: {0}")]
    System(#[source] std::io::Error),
}

/// What [`apply`] did, for the start-up log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FdOutcome {
    Enough {
        soft: u64,
        needed: u64,
    },
    Raised {
        from: u64,
        to: u64,
        needed: u64,
    },
    /// Short, and `limits.fd_limit = "warn"`: the message to log.
    ShortWarned(String),
}

/// Reads RLIMIT_NOFILE, raises the soft limit when that helps, and refuses (or warns,
/// per `limits.fd_limit`) when even the hard limit is too low.
pub fn apply(config: &Config) -> Result<FdOutcome, FdLimitError> {
    let demand = FdDemand::of(config);
    let limit = read_limit()?;
    let raise_to = |to: u64| -> Result<(), FdLimitError> {
        set_soft_limit(to, limit.hard)?;
        Ok(())
    };
    match plan(demand, limit) {
        FdPlan::Enough => Ok(FdOutcome::Enough {
            soft: limit.soft,
            needed: demand.total(),
        }),
        FdPlan::Raise { to } => {
            raise_to(to)?;
            Ok(FdOutcome::Raised {
                from: limit.soft,
                to,
                needed: demand.total(),
            })
        }
        FdPlan::Short { hard, .. } => {
            if hard > limit.soft {
                raise_to(hard)?;
            }
            let error = FdLimitError::TooLow { hard, demand };
            match config.limits.fd_limit {
                FdLimitPolicy::Refuse => Err(error),
                FdLimitPolicy::Warn => Ok(FdOutcome::ShortWarned(error.to_string())),
            }
        }
    }
}

// rlim_t is u64 on Linux but not everywhere: the conversions are for the others.
#[allow(clippy::useless_conversion)]
fn from_rlim(value: libc::rlim_t) -> u64 {
    if value == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        u64::try_from(value).unwrap_or(u64::MAX)
    }
}

fn read_limit() -> Result<FdLimit, FdLimitError> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if rc != 0 {
        return Err(FdLimitError::System(std::io::Error::last_os_error()));
    }
    Ok(FdLimit {
        soft: from_rlim(limit.rlim_cur),
        hard: from_rlim(limit.rlim_max),
    })
}

#[allow(clippy::useless_conversion)]
fn set_soft_limit(soft: u64, hard: u64) -> Result<(), FdLimitError> {
    let to_rlim = |v: u64| {
        if v == u64::MAX {
            libc::RLIM_INFINITY
        } else {
            libc::rlim_t::try_from(v).unwrap_or(libc::RLIM_INFINITY)
        }
    };
    let limit = libc::rlimit {
        rlim_cur: to_rlim(soft),
        rlim_max: to_rlim(hard),
    };
    // SAFETY: setrlimit reads one rlimit from the struct we own.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    if rc != 0 {
        return Err(FdLimitError::System(std::io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: FdDemand = FdDemand {
        tcp_connections: 1024,
        calls: 1000,
    };

    #[test]
    fn the_demand_counts_connections_two_rtp_sockets_and_a_file_per_call() {
        assert_eq!(DEFAULTS.total(), 1024 + 2000 + 1000 + FD_RESERVE);
        assert!(DEFAULTS.to_string().contains("2000 RTP sockets"));
    }

    #[test]
    fn a_soft_limit_that_holds_the_demand_is_left_alone() {
        let limit = FdLimit {
            soft: 65_536,
            hard: 65_536,
        };
        assert_eq!(plan(DEFAULTS, limit), FdPlan::Enough);
    }

    #[test]
    fn the_common_1024_soft_limit_is_raised_to_the_demand_when_the_hard_limit_allows() {
        let limit = FdLimit {
            soft: 1024,
            hard: 1_048_576,
        };
        assert_eq!(
            plan(DEFAULTS, limit),
            FdPlan::Raise {
                to: DEFAULTS.total()
            }
        );
        let unlimited = FdLimit {
            soft: 1024,
            hard: u64::MAX,
        };
        assert_eq!(
            plan(DEFAULTS, unlimited),
            FdPlan::Raise {
                to: DEFAULTS.total()
            }
        );
    }

    #[test]
    fn a_hard_limit_below_the_demand_is_short_with_the_numbers() {
        let limit = FdLimit {
            soft: 1024,
            hard: 1024,
        };
        assert_eq!(
            plan(DEFAULTS, limit),
            FdPlan::Short {
                needed: DEFAULTS.total(),
                hard: 1024
            }
        );
        let message = FdLimitError::TooLow {
            hard: 1024,
            demand: DEFAULTS,
        }
        .to_string();
        assert!(message.contains("1024"), "{message}");
        assert!(message.contains(&DEFAULTS.total().to_string()), "{message}");
    }

    #[test]
    fn the_real_limit_can_be_read() {
        let limit = read_limit().expect("getrlimit");
        assert!(limit.soft <= limit.hard);
        assert!(limit.soft > 0);
    }
}
