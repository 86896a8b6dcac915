//! Running under systemd (I/O): readiness notification (`Type=notify`) and the
//! process's own health metrics (CPU, memory, open files) for the dashboard.
//!
//! The notification protocol is one datagram of `KEY=VALUE` lines to the Unix socket
//! named by `$NOTIFY_SOCKET` (sd_notify(3)); a path starting with `@` is in the abstract
//! namespace. Outside systemd the variable is unset and every call here does nothing.
//! Parsing `/proc/self/stat` is pure ([`parse_proc_stat`]); reading it is not.

use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, warn};

/// How often the process metrics are refreshed: finer than any scrape interval worth
/// having, coarse enough to cost nothing.
const PROCESS_METRICS_INTERVAL: Duration = Duration::from_secs(5);

/// Why a notification could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot notify systemd at {socket}: {source}")]
    Notify {
        socket: String,
        #[source]
        source: std::io::Error,
    },
}

/// Tells systemd the engine is ready: every port is bound and calls are taken. Call it
/// once, after binding. Does nothing when not started by systemd.
pub fn notify_ready() {
    notify_logged("READY=1\nSTATUS=taking calls");
}

/// Tells systemd the engine is draining for shutdown (calls get their grace period).
pub fn notify_stopping() {
    notify_logged("STOPPING=1\nSTATUS=draining calls");
}

fn notify_logged(state: &str) {
    match notify(state) {
        Ok(true) => debug!(state, "systemd notified"),
        Ok(false) => {}
        Err(e) => warn!(error = %e, "systemd readiness not sent"),
    }
}

/// Sends `state` to `$NOTIFY_SOCKET`: `Ok(false)` when there is none (not under systemd).
pub fn notify(state: &str) -> Result<bool, ServiceError> {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let socket = socket.to_string_lossy().into_owned();
    send_datagram(&socket, state.as_bytes())
        .map(|()| true)
        .map_err(|source| ServiceError::Notify { socket, source })
}

fn send_datagram(socket: &str, payload: &[u8]) -> std::io::Result<()> {
    use std::os::unix::net::UnixDatagram;
    let sender = UnixDatagram::unbound()?;
    if let Some(name) = socket.strip_prefix('@') {
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            sender.send_to_addr(payload, &addr)?;
            return Ok(());
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = name;
            return Err(std::io::Error::other("abstract sockets need Linux"));
        }
    }
    sender.send_to(payload, Path::new(socket))?;
    Ok(())
}

/// CPU time (user + system) in clock ticks, from the text of `/proc/<pid>/stat`.
///
/// The second field (the command name) is in parentheses and may itself hold spaces
/// and parentheses, so fields are counted from the last `)`.
pub fn parse_proc_stat(text: &str) -> Option<u64> {
    let after_name = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Resident memory in bytes, from the text of `/proc/<pid>/status` (`VmRSS: N kB`).
pub fn parse_vm_rss(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf reads a constant of the system; it has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|t| *t > 0).unwrap_or(100)
}

fn read_process_metrics(ticks_per_second: u64) -> Option<(u64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let cpu_seconds = parse_proc_stat(&stat)? / ticks_per_second;
    let rss = parse_vm_rss(&status)?;
    let fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some((cpu_seconds, rss, fds))
}

/// Publishes the process metrics every few seconds until `stop` turns true. Where
/// `/proc` is missing (not Linux) it publishes the start time only.
pub async fn publish_process_metrics(mut stop: watch::Receiver<bool>) {
    crate::metrics::set_process_start_time(chrono::Utc::now());
    let ticks = clock_ticks_per_second();
    let mut interval = tokio::time::interval(PROCESS_METRICS_INTERVAL);
    loop {
        tokio::select! {
            _ = interval.tick() => match read_process_metrics(ticks) {
                Some((cpu, rss, fds)) => crate::metrics::set_process_metrics(cpu, rss, fds),
                None => return,
            },
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_counted_after_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (hot line (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 75 0 0 20 0 9 0 12345 100000000 2000 18446744073709551615";
        assert_eq!(parse_proc_stat(stat), Some(325));
        assert_eq!(parse_proc_stat("garbage"), None);
        assert_eq!(parse_proc_stat("1 (x) S 1 2"), None);
    }

    #[test]
    fn resident_memory_is_read_in_bytes() {
        let status = "Name:\thotline\nVmPeak:\t  9000 kB\nVmRSS:\t    2048 kB\nThreads:\t9\n";
        assert_eq!(parse_vm_rss(status), Some(2048 * 1024));
        assert_eq!(parse_vm_rss("Name:\thotline\n"), None);
    }

    #[test]
    fn this_process_can_be_measured() {
        let (_, rss, fds) = read_process_metrics(clock_ticks_per_second()).expect("/proc");
        assert!(rss > 0 && fds > 0);
    }

    #[test]
    fn readiness_reaches_a_notify_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        send_datagram(path.to_str().unwrap(), b"READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
