//! SIP over UDP and TCP (RFC 3261 §18): the I/O edge. Transport tasks read bytes, frame
//! them (TCP), classify them with [`crate::sip::inbound::classify_with`], answer what is
//! malformed with `400` (`413` for a body over the limit; or drop it when no answer is
//! possible), and hand well-formed messages on. Sending
//! never waits: a full socket or a stalled TCP peer loses that one message, which SIP
//! retransmission or the peer's own timers recover, and never holds up other calls.
//!
//! What a TCP peer may hold (issue 9): a message must be complete within
//! [`TcpLimits::message_timeout`] of its first byte (and a new connection must deliver
//! its first message within it), a connection with no traffic for
//! [`TcpLimits::idle_timeout`] is closed, one IP address holds at most
//! [`TcpLimits::max_per_source`] connections, and at the global cap the longest-idle
//! connection is closed to admit a new one ([`ConnectionTable`], pure). Every close is
//! counted in `hotline_tcp_connections_closed_total{reason}`; open connections are the
//! gauge `hotline_tcp_connections`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use dashmap::DashMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tracing::{debug, warn};

use super::overload::OverloadGuard;
use crate::config::Config;
use crate::sip::framing::{self, Frame, FrameLimits};
use crate::sip::inbound::{InboundLimits, Received, classify_with};
use crate::sip::message;
pub use crate::sip::{Inbound, TransportKind};

/// The largest UDP datagram we accept; RFC 3261 §18.1.1 keeps SIP over UDP well below.
const MAX_DATAGRAM: usize = 65_535;
/// Outgoing messages queued per TCP connection. Policy when full: drop the message and
/// log it: a peer that does not read its socket is broken, and the engine must not
/// buffer for it without bound.
const TCP_WRITE_QUEUE: usize = 256;
/// How long a closing connection may take to flush its last answer (a `400`/`413`
/// before a close) to a peer that does not read: then it is dropped anyway.
const TCP_FLUSH_ON_CLOSE: Duration = Duration::from_secs(2);

/// Gauge: TCP connections open now.
pub const TCP_CONNECTIONS: &str = "hotline_tcp_connections";
/// Counter labelled `reason` (a [`CloseReason`]): TCP connections closed or refused.
pub const TCP_CONNECTIONS_CLOSED_TOTAL: &str = "hotline_tcp_connections_closed_total";

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
    /// Connections the engine opened itself (to an agent's phone, to a destination):
    /// their own table, under the same limits, apart from the accepted ones so a
    /// stranger's connections can never evict them.
    outbound: Arc<TcpShared>,
}

impl Transports {
    pub fn new(
        udp: Option<Arc<UdpSocket>>,
        inbound: mpsc::Sender<Inbound>,
        limits: TcpLimits,
        shutdown: watch::Receiver<bool>,
    ) -> Transports {
        Transports {
            udp,
            tcp_connections: Arc::new(DashMap::new()),
            inbound: inbound.downgrade(),
            shutdown,
            outbound: Arc::new(TcpShared {
                table: Mutex::new(ConnectionTable::new(limits)),
                closers: Mutex::new(HashMap::new()),
                limits,
            }),
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
        let shared = self.outbound.clone();
        let id = match shared.table().admit(Instant::now(), destination.ip()) {
            Admission::Accept(id) => id,
            Admission::AcceptEvicting { id, victim } => {
                shared.evict(victim);
                id
            }
            Admission::Refuse(_) => return Err(TransportError::Congested(destination)),
        };
        let (queue_tx, queue_rx) = mpsc::channel(TCP_WRITE_QUEUE);
        let _ = queue_tx.try_send(first);
        self.tcp_connections.insert(destination, queue_tx.clone());
        let closer = Arc::new(Notify::new());
        shared
            .closers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, closer.clone());
        let transports = self.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            match TcpStream::connect(destination).await {
                Ok(stream) => {
                    let connection = Connection {
                        id,
                        peer: destination,
                        shared: shared.clone(),
                        closer,
                    };
                    // A connection we opened carries our calls' dialogs, which are
                    // never shed.
                    let never = OverloadGuard::disabled();
                    let reason = serve_tcp_connection(
                        stream,
                        &connection,
                        transports,
                        (inbound, &never),
                        shutdown,
                        Some((queue_tx, queue_rx)),
                    )
                    .await;
                    count_close(reason);
                }
                Err(e) => {
                    debug!(%destination, error = %e, "TCP connection failed");
                    transports.tcp_connections.remove(&destination);
                }
            }
            shared.table().remove(id);
            shared
                .closers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
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
    shutdown: watch::Receiver<bool>,
) {
    run_udp_with_limits(
        socket,
        inbound,
        shutdown,
        InboundLimits::default(),
        OverloadGuard::disabled(),
    )
    .await;
}

/// [`run_udp`] with the body limit of `[limits]` and overload control at the edge: a
/// new INVITE the engine cannot take now gets a stateless `503` here.
pub async fn run_udp_with_limits(
    socket: Arc<UdpSocket>,
    inbound: mpsc::Sender<Inbound>,
    mut shutdown: watch::Receiver<bool>,
    limits: InboundLimits,
    overload: Arc<OverloadGuard>,
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
        match classify_with(bytes, source, TransportKind::Udp, limits) {
            Received::Message(m) => {
                if OverloadGuard::absorbs(&m) {
                    continue;
                }
                if let Some(reply) = overload.refuse_before_queueing(&m, &inbound) {
                    let _ = socket.try_send_to(&reply, source);
                    continue;
                }
                if let Err(full) = inbound.try_send(*m) {
                    if let Some(reply) = overload.refuse_unqueued(&full.into_inner()) {
                        let _ = socket.try_send_to(&reply, source);
                    }
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

/// What one TCP connection and all of them together may hold (`[limits]`, `[sip]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpLimits {
    /// Connections open at once; at the cap the longest-idle one makes room.
    pub max_connections: usize,
    /// Connections from one IP address.
    pub max_per_source: usize,
    /// A message must be whole this long after its first byte.
    pub message_timeout: Duration,
    /// A connection with nothing received for this long is closed.
    pub idle_timeout: Duration,
    /// Larger bodies are answered `413` and the connection closed.
    pub max_body_bytes: usize,
}

impl TcpLimits {
    pub fn from_config(config: &Config) -> TcpLimits {
        TcpLimits {
            max_connections: config.sip.max_tcp_connections,
            max_per_source: config.limits.tcp_max_connections_per_source,
            message_timeout: config.limits.tcp_message_timeout,
            idle_timeout: config.limits.tcp_idle_timeout,
            max_body_bytes: config.limits.max_body_bytes,
        }
    }

    /// The limits of an engine with the default `[limits]` and `max_connections`.
    pub fn with_max_connections(max_connections: usize) -> TcpLimits {
        let defaults = crate::config::limits::LimitsConfig::default();
        TcpLimits {
            max_connections,
            max_per_source: defaults.tcp_max_connections_per_source,
            message_timeout: defaults.tcp_message_timeout,
            idle_timeout: defaults.tcp_idle_timeout,
            max_body_bytes: defaults.max_body_bytes,
        }
    }

    fn inbound(&self) -> InboundLimits {
        InboundLimits {
            max_body_bytes: self.max_body_bytes,
        }
    }
}

/// Why a TCP connection ended (or was never served): the `reason` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed it, or reading failed.
    PeerClosed,
    /// A message was not whole within the message timeout (slow bytes, a
    /// Content-Length larger than what follows).
    MessageTimeout,
    /// Nothing arrived within the idle timeout.
    IdleTimeout,
    /// Framing was lost (no Content-Length, oversize header or body).
    FramingError,
    /// Closed to make room for a new connection at the global cap.
    Evicted,
    /// Refused at accept: the global cap, and no connection could make room.
    ConnectionLimit,
    /// Refused at accept: the per-source cap.
    SourceLimit,
    /// The engine is shutting down or stopped reading.
    Shutdown,
}

impl CloseReason {
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::PeerClosed => "peer_closed",
            CloseReason::MessageTimeout => "message_timeout",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::FramingError => "framing_error",
            CloseReason::Evicted => "evicted",
            CloseReason::ConnectionLimit => "connection_limit",
            CloseReason::SourceLimit => "source_limit",
            CloseReason::Shutdown => "shutdown",
        }
    }
}

fn count_close(reason: CloseReason) {
    metrics::counter!(TCP_CONNECTIONS_CLOSED_TOTAL, "reason" => reason.label()).increment(1);
}

/// Identifies one accepted connection in the [`ConnectionTable`].
pub type ConnectionId = u64;

/// The table's verdict on a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Serve it.
    Accept(ConnectionId),
    /// Serve it, and close `victim` to make room.
    AcceptEvicting {
        id: ConnectionId,
        victim: ConnectionId,
    },
    /// Close it at once.
    Refuse(CloseReason),
}

#[derive(Clone, Copy, Debug)]
struct ConnectionRecord {
    source: IpAddr,
    last_received: Instant,
    /// Whether a whole SIP message ever came on it: a connection that never spoke SIP
    /// is evicted before one that did.
    spoke_sip: bool,
}

/// The open TCP connections, for admission and eviction (pure: the caller gives `now`).
///
/// At the global cap a new connection evicts, in this order: the longest-idle
/// connection that never delivered a whole SIP message, then the longest-idle one that
/// has been quiet for at least `min_idle_to_evict`. A connection that is busy is never
/// evicted; when none qualifies the new one is refused.
#[derive(Debug)]
pub struct ConnectionTable {
    limits: TcpLimits,
    min_idle_to_evict: Duration,
    next_id: ConnectionId,
    open: HashMap<ConnectionId, ConnectionRecord>,
    per_source: HashMap<IpAddr, usize>,
}

impl ConnectionTable {
    pub fn new(limits: TcpLimits) -> ConnectionTable {
        ConnectionTable {
            limits,
            // A connection that spoke SIP within a message timeout is doing real work.
            min_idle_to_evict: limits.message_timeout,
            next_id: 1,
            open: HashMap::new(),
            per_source: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Decides on a connection from `source` accepted at `now`; an accepted one is in
    /// the table (an evicted victim stays until [`Self::remove`]).
    pub fn admit(&mut self, now: Instant, source: IpAddr) -> Admission {
        if self.per_source.get(&source).copied().unwrap_or(0) >= self.limits.max_per_source {
            return Admission::Refuse(CloseReason::SourceLimit);
        }
        let victim = if self.open.len() >= self.limits.max_connections {
            match self.eviction_victim(now) {
                Some(victim) => Some(victim),
                None => return Admission::Refuse(CloseReason::ConnectionLimit),
            }
        } else {
            None
        };
        let id = self.next_id;
        self.next_id += 1;
        self.open.insert(
            id,
            ConnectionRecord {
                source,
                last_received: now,
                spoke_sip: false,
            },
        );
        *self.per_source.entry(source).or_insert(0) += 1;
        match victim {
            Some(victim) => {
                // Not counted as open any more: two evictions never pick the same one.
                self.remove(victim);
                Admission::AcceptEvicting { id, victim }
            }
            None => Admission::Accept(id),
        }
    }

    /// The connection to close to make room now, if any may be closed.
    pub fn eviction_victim(&self, now: Instant) -> Option<ConnectionId> {
        let longest_idle = |silent_only: bool| {
            self.open
                .iter()
                .filter(|(_, record)| !(silent_only && record.spoke_sip))
                .filter(|(_, record)| {
                    !record.spoke_sip
                        || now.saturating_duration_since(record.last_received)
                            >= self.min_idle_to_evict
                })
                .min_by_key(|(id, record)| (record.last_received, **id))
                .map(|(id, _)| *id)
        };
        longest_idle(true).or_else(|| longest_idle(false))
    }

    /// Bytes arrived on `id`.
    pub fn received(&mut self, id: ConnectionId, now: Instant, whole_message: bool) {
        if let Some(record) = self.open.get_mut(&id) {
            record.last_received = now;
            record.spoke_sip |= whole_message;
        }
    }

    /// `id` is closed (or was evicted); unknown ids are ignored.
    pub fn remove(&mut self, id: ConnectionId) {
        let Some(record) = self.open.remove(&id) else {
            return;
        };
        if let Some(count) = self.per_source.get_mut(&record.source) {
            *count -= 1;
            if *count == 0 {
                self.per_source.remove(&record.source);
            }
        }
    }
}

/// Accepts TCP connections until shutdown, with the default `[limits]` and at most as
/// many connections as `permits` holds.
pub async fn run_tcp(
    listener: TcpListener,
    transports: Transports,
    inbound: mpsc::Sender<Inbound>,
    permits: Arc<Semaphore>,
    shutdown: watch::Receiver<bool>,
) {
    let limits = TcpLimits::with_max_connections(permits.available_permits());
    run_tcp_with_limits(
        listener,
        transports,
        inbound,
        limits,
        shutdown,
        OverloadGuard::disabled(),
    )
    .await;
}

/// What the accept loop and the connection tasks share.
struct TcpShared {
    table: Mutex<ConnectionTable>,
    /// How to tell an open connection to close (eviction).
    closers: Mutex<HashMap<ConnectionId, Arc<Notify>>>,
    limits: TcpLimits,
}

impl TcpShared {
    fn table(&self) -> std::sync::MutexGuard<'_, ConnectionTable> {
        // A panic elsewhere mid-update leaves a table that is still consistent enough
        // to admit and evict by.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn evict(&self, victim: ConnectionId) {
        let closer = self
            .closers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&victim);
        if let Some(closer) = closer {
            closer.notify_one();
        }
    }

    fn publish_gauge(&self, open: usize) {
        metrics::gauge!(TCP_CONNECTIONS).set(open as f64);
    }
}

/// Accepts TCP connections until shutdown under `limits`: admission by the
/// [`ConnectionTable`] before anything is allocated for a connection.
pub async fn run_tcp_with_limits(
    listener: TcpListener,
    transports: Transports,
    inbound: mpsc::Sender<Inbound>,
    limits: TcpLimits,
    shutdown: watch::Receiver<bool>,
    overload: Arc<OverloadGuard>,
) {
    metrics::describe_gauge!(TCP_CONNECTIONS, "SIP/TCP connections open now.");
    metrics::describe_counter!(
        TCP_CONNECTIONS_CLOSED_TOTAL,
        "SIP/TCP connections closed by the engine or the peer, or refused at accept, by reason."
    );
    let shared = Arc::new(TcpShared {
        table: Mutex::new(ConnectionTable::new(limits)),
        closers: Mutex::new(HashMap::new()),
        limits,
    });
    shared.publish_gauge(0);
    let mut stop = shutdown.clone();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(r) => r,
                Err(e) => {
                    warn!(error = %e, "TCP accept failed");
                    // Out of file descriptors: an idle connection gives one back.
                    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                        let victim = {
                            let mut table = shared.table();
                            let victim = table.eviction_victim(Instant::now());
                            if let Some(victim) = victim {
                                table.remove(victim);
                            }
                            victim
                        };
                        if let Some(victim) = victim {
                            shared.evict(victim);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => return,
        };
        let admission = shared.table().admit(Instant::now(), peer.ip());
        let id = match admission {
            Admission::Accept(id) => id,
            Admission::AcceptEvicting { id, victim } => {
                debug!(%peer, "TCP connection limit reached: closing the longest-idle connection");
                shared.evict(victim);
                id
            }
            Admission::Refuse(reason) => {
                warn!(%peer, reason = reason.label(), "TCP connection refused");
                count_close(reason);
                drop(stream);
                continue;
            }
        };
        let closer = Arc::new(Notify::new());
        shared
            .closers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, closer.clone());
        shared.publish_gauge(shared.table().len());
        let transports = transports.clone();
        let inbound = inbound.clone();
        let shutdown = shutdown.clone();
        let shared = shared.clone();
        let overload = overload.clone();
        tokio::spawn(async move {
            let connection = Connection {
                id,
                peer,
                shared: shared.clone(),
                closer,
            };
            let reason = serve_tcp_connection(
                stream,
                &connection,
                transports,
                (inbound, &overload),
                shutdown,
                None,
            )
            .await;
            count_close(reason);
            debug!(%peer, reason = reason.label(), "TCP connection closed");
            shared.table().remove(id);
            shared
                .closers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            shared.publish_gauge(shared.table().len());
        });
    }
}

struct Connection {
    id: ConnectionId,
    peer: SocketAddr,
    shared: Arc<TcpShared>,
    closer: Arc<Notify>,
}

async fn serve_tcp_connection(
    stream: TcpStream,
    connection: &Connection,
    transports: Transports,
    (inbound, overload): (mpsc::Sender<Inbound>, &OverloadGuard),
    mut shutdown: watch::Receiver<bool>,
    queue: Option<(mpsc::Sender<Bytes>, mpsc::Receiver<Bytes>)>,
) -> CloseReason {
    let peer = connection.peer;
    let limits = connection.shared.limits;
    let frame_limits = FrameLimits {
        max_body_bytes: limits.max_body_bytes,
    };
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let (queue_tx, mut queue_rx) = queue.unwrap_or_else(|| mpsc::channel::<Bytes>(TCP_WRITE_QUEUE));
    transports.tcp_connections.insert(peer, queue_tx.clone());
    let mut writer_task = tokio::spawn(async move {
        while let Some(bytes) = queue_rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });

    let mut buf = BytesMut::with_capacity(4096);
    let accepted_at = Instant::now();
    let mut last_received = accepted_at;
    // The first message is due within the message timeout of the accept: a connection
    // that never speaks is as much a slowloris as one that speaks slowly.
    let mut message_started: Option<Instant> = Some(accepted_at);
    let reason = 'read: loop {
        let message_deadline = message_started.map(|start| start + limits.message_timeout);
        let idle_deadline = last_received + limits.idle_timeout;
        let deadline = message_deadline.map_or(idle_deadline, |d| d.min(idle_deadline));
        let n = tokio::select! {
            r = reader.read_buf(&mut buf) => match r {
                Ok(0) | Err(_) => break CloseReason::PeerClosed,
                Ok(n) => n,
            },
            _ = tokio::time::sleep_until(deadline.into()) => {
                if message_deadline.is_some_and(|d| d <= Instant::now()) {
                    // RFC 4475 `clerr` over a stream: a Content-Length the bytes never
                    // reach. Say why when the headers allow an answer, then close.
                    if !buf.is_empty()
                        && let Some(reply) = message::bad_request_from_raw(
                            &buf,
                            "Incomplete message: timed out",
                        )
                    {
                        let _ = queue_tx.try_send(Bytes::from(reply));
                    }
                    break CloseReason::MessageTimeout;
                }
                break CloseReason::IdleTimeout;
            }
            _ = connection.closer.notified() => break CloseReason::Evicted,
            _ = stopped(&mut shutdown) => break CloseReason::Shutdown,
        };
        debug_assert!(n > 0);
        let now = Instant::now();
        last_received = now;
        let mut whole_message = false;
        loop {
            match framing::next_frame_with(&mut buf, frame_limits) {
                Ok(None) => break,
                Ok(Some(Frame::KeepAlive)) => {
                    let _ = queue_tx.try_send(Bytes::from_static(b"\r\n"));
                }
                Ok(Some(Frame::Message(bytes))) => {
                    whole_message = true;
                    match classify_with(&bytes, peer, TransportKind::Tcp, limits.inbound()) {
                        // Backpressure: a TCP peer waits for the endpoint rather than
                        // losing a message it will never retransmit.
                        Received::Message(m) => {
                            if OverloadGuard::absorbs(&m) {
                                continue;
                            }
                            if let Some(reply) = overload.refuse_before_queueing(&m, &inbound) {
                                let _ = queue_tx.try_send(Bytes::from(reply));
                                continue;
                            }
                            if inbound.send(*m).await.is_err() {
                                break 'read CloseReason::Shutdown;
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
                    let reason = match e.status_code() {
                        413 => "Request Entity Too Large".to_owned(),
                        _ => e.to_string(),
                    };
                    if let Some(reply) =
                        message::error_response_from_raw(&buf, e.status_code(), &reason)
                    {
                        let _ = queue_tx.try_send(Bytes::from(reply));
                    }
                    break 'read CloseReason::FramingError;
                }
            }
        }
        connection
            .shared
            .table()
            .received(connection.id, now, whole_message);
        message_started = if buf.is_empty() {
            None
        } else if whole_message || message_started.is_none() {
            Some(now)
        } else {
            message_started
        };
    };
    transports.tcp_connections.remove(&peer);
    drop(queue_tx);
    // The last answer gets a moment to leave; a peer that does not read loses it.
    if tokio::time::timeout(TCP_FLUSH_ON_CLOSE, &mut writer_task)
        .await
        .is_err()
    {
        writer_task.abort();
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_connections: usize, max_per_source: usize) -> TcpLimits {
        TcpLimits {
            max_connections,
            max_per_source,
            message_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(600),
            max_body_bytes: 65_536,
        }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn one_source_cannot_take_more_than_its_share() {
        let now = Instant::now();
        let mut table = ConnectionTable::new(limits(100, 2));
        assert!(matches!(table.admit(now, ip(1)), Admission::Accept(_)));
        assert!(matches!(table.admit(now, ip(1)), Admission::Accept(_)));
        assert_eq!(
            table.admit(now, ip(1)),
            Admission::Refuse(CloseReason::SourceLimit)
        );
        assert!(matches!(table.admit(now, ip(2)), Admission::Accept(_)));
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn closing_a_connection_gives_its_source_room_again() {
        let now = Instant::now();
        let mut table = ConnectionTable::new(limits(100, 1));
        let Admission::Accept(id) = table.admit(now, ip(1)) else {
            panic!("first connection refused");
        };
        table.remove(id);
        assert!(matches!(table.admit(now, ip(1)), Admission::Accept(_)));
    }

    #[test]
    fn at_the_cap_a_silent_connection_goes_before_a_quiet_phone() {
        let start = Instant::now();
        let mut table = ConnectionTable::new(limits(3, 10));
        let Admission::Accept(phone) = table.admit(start, ip(1)) else {
            panic!()
        };
        table.received(phone, start, true);
        let Admission::Accept(silent_old) = table.admit(start + Duration::from_secs(1), ip(2))
        else {
            panic!()
        };
        let Admission::Accept(_silent_new) = table.admit(start + Duration::from_secs(2), ip(3))
        else {
            panic!()
        };
        // The phone has been quiet longest, but the silent ones never spoke SIP.
        let later = start + Duration::from_secs(100);
        assert!(matches!(
            table.admit(later, ip(4)),
            Admission::AcceptEvicting { victim, .. } if victim == silent_old
        ));
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn at_the_cap_the_longest_idle_phone_goes_but_a_busy_one_never() {
        let start = Instant::now();
        let mut table = ConnectionTable::new(limits(2, 10));
        let Admission::Accept(old) = table.admit(start, ip(1)) else {
            panic!()
        };
        let Admission::Accept(busy) = table.admit(start, ip(2)) else {
            panic!()
        };
        let now = start + Duration::from_secs(60);
        table.received(old, start, true);
        table.received(busy, now, true);
        assert!(matches!(
            table.admit(now, ip(3)),
            Admission::AcceptEvicting { victim, .. } if victim == old
        ));
        // Now the busy one and the newcomer (silent for 0 s) are left; the newcomer
        // never spoke, so it goes before the busy phone.
        let Admission::AcceptEvicting { victim, .. } = table.admit(now, ip(4)) else {
            panic!("expected an eviction")
        };
        assert_ne!(victim, busy);
    }

    #[test]
    fn at_the_cap_with_only_busy_connections_the_newcomer_is_refused() {
        let now = Instant::now();
        let mut table = ConnectionTable::new(limits(1, 10));
        let Admission::Accept(busy) = table.admit(now, ip(1)) else {
            panic!()
        };
        table.received(busy, now, true);
        assert_eq!(
            table.admit(now + Duration::from_secs(1), ip(2)),
            Admission::Refuse(CloseReason::ConnectionLimit)
        );
    }

    fn invite(call: u32) -> String {
        format!(
            "INVITE sip:8890@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-{call}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:13800138000@127.0.0.1>;tag=caller{call}\r\n\
             To: <sip:8890@127.0.0.1>\r\n\
             Call-ID: flood-{call}\r\n\
             CSeq: 1 INVITE\r\n\
             Content-Length: 0\r\n\r\n"
        )
    }

    /// Issue 12: with the switch stalled, the UDP transport queues new INVITEs up to the
    /// backlog limit and answers the rest `503` with `Retry-After` itself, statelessly;
    /// a request of a call in progress still goes to the switch.
    #[tokio::test]
    async fn a_stalled_engine_sheds_new_invites_at_the_edge() {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let engine = socket.local_addr().unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (inbound_tx, mut inbound_rx) = mpsc::channel(8);
        let (_stop_tx, stop) = watch::channel(false);
        let guard = OverloadGuard::new(super::super::overload::OverloadSettings {
            max_backlog: 4,
            max_lag: Duration::from_secs(10),
            retry_after: Duration::from_secs(7),
        });
        tokio::spawn(run_udp_with_limits(
            socket,
            inbound_tx,
            stop,
            InboundLimits::default(),
            guard,
        ));
        for call in 0..7 {
            peer.send_to(invite(call).as_bytes(), engine).await.unwrap();
        }
        let mut refusals = Vec::new();
        let mut buf = [0u8; 4096];
        while refusals.len() < 2 {
            let (len, _) = tokio::time::timeout(Duration::from_secs(5), peer.recv_from(&mut buf))
                .await
                .expect("the shed INVITEs are answered")
                .unwrap();
            refusals.push(String::from_utf8_lossy(&buf[..len]).into_owned());
        }
        for refusal in &refusals {
            assert!(refusal.starts_with("SIP/2.0 503"), "{refusal}");
            assert!(refusal.contains("Retry-After: 7"), "{refusal}");
        }
        // Calls 0–4 were queued (up to a backlog of 4, the fifth finds 4 waiting), the
        // other two answered at the edge.
        let mut queued = Vec::new();
        while let Ok(message) = inbound_rx.try_recv() {
            if let Inbound::Request { summary, .. } = message {
                queued.push(summary.call_id);
            }
        }
        assert_eq!(
            queued,
            (0..5).map(|c| format!("flood-{c}")).collect::<Vec<_>>()
        );
        assert!(refusals.iter().any(|r| r.contains("flood-5")));
        assert!(refusals.iter().any(|r| r.contains("flood-6")));
    }
}
