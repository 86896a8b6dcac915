//! RTP port allocation: one even port per call from the configured range (RFC 3550
//! leaves the odd one above it for RTCP). Binding is the allocation: a port some other
//! process holds is skipped, and a port is free again as soon as its socket is dropped.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};

/// Hands out bound RTP sockets, round-robin over the range so a just-released port is
/// not reused at once (late packets of the old call would land in the new one).
#[derive(Debug)]
pub struct RtpPorts {
    ip: IpAddr,
    first_even: u16,
    slots: u32,
    cursor: AtomicU32,
}

/// No port in the range could be bound.
#[derive(Debug, thiserror::Error)]
#[error("no free RTP port in {ip} {first}..={last}")]
pub struct PortsExhausted {
    pub ip: IpAddr,
    pub first: u16,
    pub last: u16,
}

impl RtpPorts {
    pub fn new(ip: IpAddr, (min, max): (u16, u16)) -> RtpPorts {
        let first_even = min + (min % 2);
        let slots = u32::from(max.saturating_sub(first_even)) / 2 + 1;
        RtpPorts {
            ip,
            first_even,
            slots,
            cursor: AtomicU32::new(0),
        }
    }

    /// Binds the next free even port, non-blocking: the media workers read it once a
    /// tick without the reactor.
    pub fn bind(&self) -> Result<std::net::UdpSocket, PortsExhausted> {
        for _ in 0..self.slots {
            let slot = self.cursor.fetch_add(1, Ordering::Relaxed) % self.slots;
            let port = self.first_even + (slot * 2) as u16;
            let Ok(socket) = std::net::UdpSocket::bind(SocketAddr::new(self.ip, port)) else {
                continue;
            };
            if socket.set_nonblocking(true).is_ok() {
                return Ok(socket);
            }
        }
        Err(PortsExhausted {
            ip: self.ip,
            first: self.first_even,
            last: self.first_even + ((self.slots - 1) * 2) as u16,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hands_out_distinct_even_ports_and_skips_taken_ones() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let ports = RtpPorts::new(ip, (41001, 41010));
        let a = ports.bind().unwrap();
        let b = ports.bind().unwrap();
        let (pa, pb) = (
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port(),
        );
        assert_ne!(pa, pb);
        assert_eq!(pa % 2, 0);
        assert_eq!(pb % 2, 0);
        assert!((41002..=41010).contains(&pa));
    }

    #[tokio::test]
    async fn reports_exhaustion_instead_of_looping() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let ports = RtpPorts::new(ip, (41100, 41103));
        let _a = ports.bind().unwrap();
        let _b = ports.bind().unwrap();
        let err = ports.bind().unwrap_err();
        assert_eq!((err.first, err.last), (41100, 41102));
    }
}
