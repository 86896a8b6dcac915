//! SIP over UDP and TCP (RFC 3261 §18): the I/O edge. Transport tasks read bytes, frame
//! them (TCP), classify them with [`crate::sip::inbound::classify`], answer what is
//! malformed with `400` (or drop it when no answer is possible), and hand well-formed
//! messages on. Sending
//! never waits: a full socket or a stalled TCP peer loses that one message, which SIP
//! retransmission or the peer's own timers recover, and never holds up other calls.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use dashmap::DashMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::{debug, warn};

use crate::sip::framing::{self, Frame};
pub use crate::sip::inbound::{Inbound, TransportKind};
use crate::sip::inbound::{Received, classify};
use crate::sip::message;

/// The largest UDP datagram we accept; RFC 3261 §18.1.1 keeps SIP over UDP well below.
const MAX_DATAGRAM: usize = 65_535;
/// Outgoing messages queued per TCP connection. Policy when full: drop the message and
/// log it: a peer that does not read its socket is broken, and the engine must not
/// buffer for it without bound.
const TCP_WRITE_QUEUE: usize = 256;

/// Why a message could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The engine is not listening on that transport.
    #[error("no {0:?} transport is configured")]
    NotConfigured(TransportKind),
    /// No TCP connection to that peer is open (the engine does not dial out over TCP yet).
    #[error("no TCP connection to {0}")]
    NoConnection(SocketAddr),
    /// The socket or connection queue is full; the message was dropped.
    #[error("send queue to {0} is full; message dropped")]
    Congested(SocketAddr),
    /// The operating system refused the send.
    #[error("send to {peer} failed: {source}")]
    Io {
        peer: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The sending side of every transport, shared by the switch task and the transport
/// tasks.
#[derive(Clone)]
pub struct Transports {
    udp: Option<Arc<UdpSocket>>,
    tcp_connections: Arc<DashMap<SocketAddr, mpsc::Sender<Bytes>>>,
    /// Where connections we open deliver what they read. Weak, so that the inbound
    /// queue closes once the transport tasks have stopped.
    inbound: mpsc::WeakSender<Inbound>,
    shutdown: watch::Receiver<bool>,
}

impl Transports {
    pub fn new(
        udp: Option<Arc<UdpSocket>>,
        inbound: mpsc::Sender<Inbound>,
        shutdown: watch::Receiver<bool>,
    ) -> Transports {
        Transports {
            udp,
            tcp_connections: Arc::new(DashMap::new()),
            inbound: inbound.downgrade(),
            shutdown,
        }
    }

    /// Opens a TCP connection to `destination` for a request we send (an agent's phone
    /// whose connection closed, a destination over TCP): the message waits in the new
    /// connection's queue while it connects; a failure loses it like a dropped datagram,
    /// and the transaction's timer reports it.
    fn connect(&self, destination: SocketAddr, first: Bytes) -> Result<(), TransportError> {
        let inbound = self
            .inbound
            .upgrade()
            .ok_or(TransportError::NoConnection(destination))?;
        let (queue_tx, queue_rx) = mpsc::channel(TCP_WRITE_QUEUE);
        let _ = queue_tx.try_send(first);
        self.tcp_connections.insert(destination, queue_tx.clone());
        let transports = self.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            match TcpStream::connect(destination).await {
                Ok(stream) => {
                    serve_tcp_connection(
                        stream,
                        destination,
                        transports,
                        inbound,
                        shutdown,
                        Some((queue_tx, queue_rx)),
                    )
                    .await
                }
                Err(e) => {
                    debug!(%destination, error = %e, "TCP connection failed");
                    transports.tcp_connections.remove(&destination);
                }
            }
        });
        Ok(())
    }

    /// Sends without waiting; see the module doc for what a failure means.
    pub fn send(
        &self,
        destination: SocketAddr,
        transport: TransportKind,
        payload: &[u8],
    ) -> Result<(), TransportError> {
        match transport {
            TransportKind::Udp => {
                let socket = self
                    .udp
                    .as_ref()
                    .ok_or(TransportError::NotConfigured(TransportKind::Udp))?;
                match socket.try_send_to(payload, destination) {
                    Ok(_) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        Err(TransportError::Congested(destination))
                    }
                    Err(source) => Err(TransportError::Io {
                        peer: destination,
                        source,
                    }),
                }
            }
            TransportKind::Tcp => {
                let payload = Bytes::copy_from_slice(payload);
                let Some(queue) = self.tcp_connections.get(&destination).map(|q| q.clone()) else {
                    return self.connect(destination, payload);
                };
                queue
                    .try_send(payload)
                    .map_err(|_| TransportError::Congested(destination))
            }
        }
    }

    /// Open TCP connections, for metrics and tests.
    pub fn tcp_connection_count(&self) -> usize {
        self.tcp_connections.len()
    }
}

/// Resolves when the stop flag turns true (or its sender is gone).
async fn stopped(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|stop| *stop).await;
}

fn count_malformed(transport: TransportKind) {
    metrics::counter!("hotline_sip_messages_malformed_total", "transport" => transport.label())
        .increment(1);
}

/// Reads datagrams until shutdown. Inbound queue policy when full: the datagram is
/// dropped and counted, since UDP peers retransmit; the socket keeps being read so a
/// burst never blocks the kernel buffer for everyone.
pub async fn run_udp(
    socket: Arc<UdpSocket>,
    inbound: mpsc::Sender<Inbound>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (len, source) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    // ICMP port unreachable from an earlier send shows up here on Linux;
                    // it concerns that peer only.
                    debug!(error = %e, "UDP receive error");
                    continue;
                }
            },
            _ = stopped(&mut shutdown) => return,
        };
        let bytes = &buf[..len];
        // RFC 5626 keep-alive: a lone CRLF CRLF gets a CRLF back.
        if bytes.iter().all(|b| *b == b'\r' || *b == b'\n') {
            if bytes == b"\r\n\r\n" {
                let _ = socket.try_send_to(b"\r\n", source);
            }
            continue;
        }
        match classify(bytes, source, TransportKind::Udp) {
            Received::Message(m) => {
                if inbound.try_send(*m).is_err() {
                    metrics::counter!("hotline_sip_inbound_dropped_total", "transport" => "udp")
                        .increment(1);
                }
            }
            Received::Malformed(reply) => {
                count_malformed(TransportKind::Udp);
                if let Some(reply) = reply {
                    let _ = socket.try_send_to(&reply, source);
                }
            }
        }
    }
}

/// Accepts TCP connections until shutdown; each holds a permit so the number of
/// connections is bounded (admission before allocation).
pub async fn run_tcp(
    listener: TcpListener,
    transports: Transports,
    inbound: mpsc::Sender<Inbound>,
    permits: Arc<Semaphore>,
    shutdown: watch::Receiver<bool>,
) {
    let mut stop = shutdown.clone();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(r) => r,
                Err(e) => {
                    warn!(error = %e, "TCP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => return,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            warn!(%peer, "TCP connection refused: too many connections");
            drop(stream);
            continue;
        };
        let transports = transports.clone();
        let inbound = inbound.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            serve_tcp_connection(stream, peer, transports, inbound, shutdown, None).await;
            drop(permit);
        });
    }
}

async fn serve_tcp_connection(
    stream: TcpStream,
    peer: SocketAddr,
    transports: Transports,
    inbound: mpsc::Sender<Inbound>,
    mut shutdown: watch::Receiver<bool>,
    queue: Option<(mpsc::Sender<Bytes>, mpsc::Receiver<Bytes>)>,
) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let (queue_tx, mut queue_rx) = queue.unwrap_or_else(|| mpsc::channel::<Bytes>(TCP_WRITE_QUEUE));
    transports.tcp_connections.insert(peer, queue_tx.clone());
    let writer_task = tokio::spawn(async move {
        while let Some(bytes) = queue_rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });

    let mut buf = BytesMut::with_capacity(4096);
    'read: loop {
        let n = tokio::select! {
            r = reader.read_buf(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = stopped(&mut shutdown) => break,
        };
        debug_assert!(n > 0);
        loop {
            match framing::next_frame(&mut buf) {
                Ok(None) => break,
                Ok(Some(Frame::KeepAlive)) => {
                    let _ = queue_tx.try_send(Bytes::from_static(b"\r\n"));
                }
                Ok(Some(Frame::Message(bytes))) => {
                    match classify(&bytes, peer, TransportKind::Tcp) {
                        // Backpressure: a TCP peer waits for the endpoint rather than
                        // losing a message it will never retransmit.
                        Received::Message(m) => {
                            if inbound.send(*m).await.is_err() {
                                break 'read;
                            }
                        }
                        Received::Malformed(reply) => {
                            count_malformed(TransportKind::Tcp);
                            if let Some(reply) = reply {
                                let _ = queue_tx.try_send(Bytes::from(reply));
                            }
                        }
                    }
                }
                Err(e) => {
                    // Without a trustworthy Content-Length the stream cannot be
                    // re-synchronised (RFC 3261 §18.3): answer if we can, then close.
                    count_malformed(TransportKind::Tcp);
                    debug!(%peer, error = %e, "TCP framing error; closing connection");
                    if let Some(reply) = message::bad_request_from_raw(&buf, &e.to_string()) {
                        let _ = queue_tx.try_send(Bytes::from(reply));
                    }
                    break 'read;
                }
            }
        }
    }
    transports.tcp_connections.remove(&peer);
    drop(queue_tx);
    let _ = writer_task.await;
}
