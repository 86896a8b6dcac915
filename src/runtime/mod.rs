//! The runtime (I/O): thin tokio tasks around the switch core. Everything that can fail
//! is checked before a port is bound; then the tasks only move bytes and events:
//!
//! - the UDP and TCP transport tasks read and classify messages ([`transport`]) and
//!   shed new INVITEs with a stateless `503` while the engine falls behind
//!   ([`overload`]);
//! - ONE switch task owns the [`Switch`], feeds it messages, media reports, API
//!   commands and its timer, and carries out what it decides: transmits, media orders,
//!   store writes, replies. There is no task per call. The engine is not sharded: one
//!   switch serves every call (measured in `benches/RESULTS.md`);
//! - the media runtime binds RTP ports and starts a stream per started leg on the media
//!   workers (one task per core, one 20 ms tick for all its streams), with the
//!   recording writers ([`media`], [`stream`]);
//! - one store writer applies work-order writes in order and offers each call an agent
//!   takes to the QA sampler ([`store`]);
//! - the retention job purges work orders and recordings past their keeping period
//!   ([`retention`]);
//! - the HTTP server (`crate::api`), which reaches the switch through commands.
//!
//! Shutdown has phases: on the signal new INVITEs get `503`; calls in progress get the
//! grace period, then BYE; calls whose peers do not answer the BYE within a short bound
//! are closed anyway; recordings and work orders are finalised before exit.

pub mod alive;
pub mod callbacks;
pub mod desk;
pub mod limits;
pub mod media;
pub mod memory;
pub mod overload;
pub mod ports;
pub mod retention;
pub mod store;
pub mod stream;
pub mod transport;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

use crate::api::{SwitchClient, SwitchRequest};
use crate::config::Config;
use crate::recording::RecordingConfig;
use crate::sip::Inbound;
use crate::switch::{Command, CommandId, MediaReport, Reply, Switch, SwitchEvent, SwitchSettings};
use crate::workorder::{AbandonReason, CallOutcome, WorkOrderStore};
use media::MediaRuntime;
use ports::RtpPorts;
use store::StoreWriter;
use transport::Transports;

/// Messages read by the transports, waiting for the switch. Policy when full: UDP
/// datagrams are dropped and counted (peers retransmit); TCP readers wait.
const INBOUND_QUEUE: usize = 4096;
/// API commands waiting for the switch.
const COMMAND_QUEUE: usize = 256;
/// Desks that passed `hello`, waiting for the runtime to start them.
const DESK_QUEUE: usize = 16;
/// After the BYEs of shutdown, how long peers get to answer them before the calls are
/// closed anyway (RFC 3261 lets a BYE take 64·T1; a shutdown does not wait that long).
const SHUTDOWN_BYE_BOUND: Duration = Duration::from_secs(4);

/// Why the engine could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A prompt file is missing or not 8 kHz mono 16-bit.
    #[error("prompt: {0}")]
    Prompt(#[from] crate::media::rtp::MediaError),
    /// The work order store could not be opened or read.
    #[error("work order store: {0}")]
    Store(#[from] crate::workorder::StoreError),
    /// The callback store could not be opened or read.
    #[error("callback store: {0}")]
    Callbacks(#[from] crate::callbacks::CallbackStoreError),
    /// The recordings directory could not be created or scanned.
    #[error("recordings: {0}")]
    Recording(#[from] crate::recording::RecordingError),
    /// The config or agents file is invalid.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// The dialplan or its prompts are invalid (every problem as FILE:LINE: reason).
    #[error("{0}")]
    Dialplan(#[from] crate::ivr::IvrError),
    /// The agents file does not make a working ACD, or the registrar's limits are off.
    #[error("{0}")]
    Switch(#[from] crate::switch::SwitchError),
    /// The metrics recorder could not be installed.
    #[error("metrics: {0}")]
    Metrics(#[from] crate::metrics::MetricsError),
    /// A listening socket could not be bound (port in use, no permission).
    #[error("cannot listen on {what} {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The open-file limit cannot hold what the config allows.
    #[error("{0}")]
    FdLimit(#[from] limits::FdLimitError),
    /// A directory the engine writes to could not be created.
    #[error("cannot create {path}: {source}")]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Ends the work orders a crash (or `kill -9`) left open at the engine's last sign of
/// life, not at this restart, and says so on each one's trail (issue 9, row 8).
async fn close_orders_cut_by_a_crash(
    store: &dyn WorkOrderStore,
    config: &Config,
    now: chrono::DateTime<Utc>,
) -> Result<(), EngineError> {
    let mark = alive::last_sign_of_life(&alive::mark_path(&config.recordings.dir));
    let cut_at = alive::crash_end_time(mark, now);
    // Calls open at the crash are the newest orders: nothing was created after them.
    let open: Vec<_> = store
        .list_recent(config.calls.max_concurrent.saturating_mul(2).max(100))
        .await?
        .into_iter()
        .filter(|order| order.ended_at.is_none())
        .map(|order| order.id)
        .collect();
    let closed = store
        .end_unfinished(
            cut_at,
            CallOutcome::Abandoned {
                reason: AbandonReason::EngineRestarted,
            },
        )
        .await?;
    for id in &open {
        let note = "call cut short by an engine crash; ended at the engine's last sign of life";
        store.add_note(id, note, "engine", cut_at).await?;
    }
    if closed > 0 {
        warn!(
            closed,
            ended_at = %cut_at,
            "work orders of calls cut by an earlier crash were closed"
        );
    }
    Ok(())
}

/// Opens the configured work order store.
pub fn open_store(config: &Config) -> Result<Arc<dyn WorkOrderStore>, EngineError> {
    Ok(crate::workorder::open_shared(&config.store)?)
}

/// `hotline work-orders list`: the newest work orders, caller numbers masked (R12).
pub async fn list_work_orders(config: &Config, limit: usize) -> Result<String, EngineError> {
    let store = open_store(config)?;
    let orders = store.list_recent(limit).await?;
    Ok(crate::workorder::format_listing(&orders))
}

/// Runs the engine until `shutdown` resolves, then shuts down in phases.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), EngineError> {
    let metrics = crate::metrics::install_recorder()?;
    crate::callbacks::metrics::describe();

    // Everything that can fail on a bad installation fails here, before any port.
    let agents = config.load_agents()?;
    let flow = crate::ivr::load_call_flow(&config, &agents, crate::switch::ENGINE_PROMPTS)?;
    info!(
        dialplan = %flow.plan.source,
        nodes = flow.plan.nodes.len(),
        "call flow loaded"
    );
    crate::recording::create_root(&config.recordings.dir)?;
    let repair = crate::recording::repair_directory(&config.recordings.dir)?;
    for fixed in &repair.repaired {
        warn!(path = %fixed.path.display(), "recording left by a crash repaired");
    }
    for failure in &repair.unrepaired {
        warn!(error = %failure, "recording could not be repaired; left as it is");
    }
    let store = open_store(&config)?;
    let wall = Utc::now();
    close_orders_cut_by_a_crash(store.as_ref(), &config, wall).await?;
    let history = store
        .call_counts_since(wall - chrono::Duration::hours(24))
        .await?;
    // A fresh digest secret per start: nonces from before a restart are answered
    // `stale`, which phones retry without asking their user.
    let settings = SwitchSettings::from_config(&config, rand::random());
    let mut switch = Switch::new(
        settings,
        &agents,
        flow,
        rand::random(),
        Instant::now(),
        wall,
        &history,
    )?;
    let callback_store = callbacks::open_store(&config).await?;
    callbacks::restore(&mut switch, callback_store.as_ref(), &config).await?;

    match limits::apply(&config)? {
        limits::FdOutcome::ShortWarned(message) => warn!("{message}"),
        outcome => info!(?outcome, "open-file limit"),
    }
    let udp = match config.sip.listen_udp {
        Some(addr) => Some(Arc::new(UdpSocket::bind(addr).await.map_err(|source| {
            EngineError::Bind {
                what: "SIP/UDP",
                addr,
                source,
            }
        })?)),
        None => None,
    };
    let tcp = match config.sip.listen_tcp {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| EngineError::Bind {
                    what: "SIP/TCP",
                    addr,
                    source,
                })?,
        ),
        None => None,
    };
    let http = crate::api::bind(config.http.listen)
        .await
        .map_err(|source| EngineError::Bind {
            what: "HTTP",
            addr: config.http.listen,
            source,
        })?;
    info!(
        udp = ?config.sip.listen_udp,
        tcp = ?config.sip.listen_tcp,
        http = %config.http.listen,
        "hotline is taking calls"
    );
    let config = Arc::new(config);

    // Transports stop last: in-dialog messages (BYE and its 200) must flow while calls end.
    let (stop_transports, transports_stopped) = watch::channel(false);
    let overload = overload::OverloadGuard::new(overload::OverloadSettings {
        max_backlog: config.limits.overload_max_backlog,
        max_lag: config.limits.overload_max_lag,
        retry_after: config.calls.retry_after,
    });
    let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
    let transports = Transports::new(
        udp.clone(),
        inbound_tx.clone(),
        transport::TcpLimits::from_config(&config),
        transports_stopped.clone(),
    );
    let mut io_tasks = Vec::new();
    if let Some(udp) = udp {
        io_tasks.push(tokio::spawn(transport::run_udp_with_limits(
            udp,
            inbound_tx.clone(),
            transports_stopped.clone(),
            crate::sip::inbound::InboundLimits {
                max_body_bytes: config.limits.max_body_bytes,
            },
            overload.clone(),
        )));
    }
    if let Some(tcp) = tcp {
        io_tasks.push(tokio::spawn(transport::run_tcp_with_limits(
            tcp,
            transports.clone(),
            inbound_tx.clone(),
            transport::TcpLimits::from_config(&config),
            transports_stopped.clone(),
            overload.clone(),
        )));
    }
    io_tasks.push(tokio::spawn(overload::watch_event_loop(
        overload,
        transports_stopped.clone(),
    )));
    drop(inbound_tx);

    let (client, requests) = SwitchClient::channel(COMMAND_QUEUE);
    let (desks, desk_connections) = crate::desk::Desks::channel(DESK_QUEUE);
    io_tasks.push(tokio::spawn(desk::run(
        desk_connections,
        Arc::new(desk::DeskServices::from_config(
            &config,
            &agents,
            client.clone(),
            store.clone(),
        )),
        transports_stopped.clone(),
    )));
    io_tasks.push(tokio::spawn({
        let stopped = transports_stopped.clone();
        let (config, client, store) = (config.clone(), client.clone(), store.clone());
        let metrics = metrics.clone();
        async move {
            if let Err(e) =
                crate::api::serve(http, metrics, config, client, store, desks, stopped).await
            {
                warn!(error = %e, "HTTP server stopped");
            }
        }
    }));
    io_tasks.push(tokio::spawn(alive::keep_marking(
        alive::mark_path(&config.recordings.dir),
        transports_stopped.clone(),
    )));
    io_tasks.push(tokio::spawn(memory::return_freed_memory(
        store.clone(),
        metrics.clone(),
        transports_stopped.clone(),
    )));
    io_tasks.push(tokio::spawn(reload_on_sighup(
        config.clone(),
        client.clone(),
        transports_stopped.clone(),
    )));

    io_tasks.push(tokio::spawn(retention::run(
        store.clone(),
        config.store.retention,
        config.store.purge_interval,
        std::path::PathBuf::from("."),
        transports_stopped.clone(),
    )));
    // R23: each call an agent takes is offered to the QA sampler in the store writer.
    let sampler = crate::qa::QaSampler::new(
        config.qa.sample_basis_points,
        config.qa.day_utc_offset_hours,
        rand::random(),
    );
    let (store_writer, store_task) =
        StoreWriter::start_with_callbacks(store, Some(sampler), Some(callback_store));
    let (reports_tx, reports_rx) = mpsc::unbounded_channel();
    let media = MediaRuntime::new(
        RtpPorts::new(config.media.rtp_ip, config.media.rtp_ports),
        config.calls.rtp_timeout,
        RecordingConfig {
            root: config.recordings.dir.clone(),
            header_interval: config.recordings.header_interval,
        },
        reports_tx,
    );
    let (active_tx, mut active_rx) = watch::channel(0usize);
    let driver = SwitchTask {
        switch,
        transports,
        media,
        store: store_writer,
        active: active_tx,
        replies: HashMap::new(),
        next_command: 1,
    };
    let switch_task = tokio::spawn(driver.run(inbound_rx, reports_rx, requests));
    io_tasks.push(tokio::spawn(crate::service::publish_process_metrics(
        transports_stopped.clone(),
    )));
    crate::service::notify_ready();

    shutdown.await;
    info!("shutting down: new calls get 503, calls in progress have the grace period");
    client.ask(Command::StopAccepting).await;
    let grace = config.calls.shutdown_grace;
    let drained = tokio::time::timeout(grace, active_rx.wait_for(|n| *n == 0))
        .await
        .is_ok();
    if !drained {
        info!("grace period over: hanging up the remaining calls");
        client.ask(Command::HangUpAll).await;
        if tokio::time::timeout(SHUTDOWN_BYE_BOUND, active_rx.wait_for(|n| *n == 0))
            .await
            .is_err()
        {
            warn!("some peers did not answer the BYE in time; their calls are closed anyway");
            client.ask(Command::Abandon).await;
        }
    }
    drop(client);
    let _ = stop_transports.send(true);
    let _ = switch_task.await;
    let _ = store_task.await;
    for task in io_tasks {
        let _ = task.await;
    }
    info!("hotline stopped");
    Ok(())
}

/// The one task that owns the switch.
struct SwitchTask {
    switch: Switch,
    transports: Transports,
    media: MediaRuntime,
    store: StoreWriter,
    active: watch::Sender<usize>,
    replies: HashMap<CommandId, oneshot::Sender<Reply>>,
    next_command: CommandId,
}

impl SwitchTask {
    /// Runs until the transports have stopped (after the calls have ended). It does
    /// not wait for every command sender to go: the HTTP server holds some until its
    /// open streams (wallboards) end, and those end when this task does.
    async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Inbound>,
        mut reports: mpsc::UnboundedReceiver<(crate::switch::LegId, MediaReport)>,
        mut requests: mpsc::Receiver<SwitchRequest>,
    ) {
        let mut requests_open = true;
        let mut inbound_open = true;
        while inbound_open {
            let deadline = self.switch.poll_timeout();
            let timer = async move {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                message = inbound.recv(), if inbound_open => match message {
                    Some(message) => self.switch.handle_inbound(Instant::now(), message),
                    None => inbound_open = false,
                },
                Some((leg, report)) = reports.recv() => {
                    self.switch.handle_media(Instant::now(), leg, report)
                }
                request = requests.recv(), if requests_open => match request {
                    Some(SwitchRequest { command, reply }) => {
                        let id = self.next_command;
                        self.next_command += 1;
                        self.replies.insert(id, reply);
                        self.switch.handle_command(Instant::now(), id, command);
                    }
                    None => requests_open = false,
                },
                _ = timer => {
                    self.switch.handle_timeout(Instant::now());
                    self.media.shrink_idle();
                }
            }
            self.carry_out();
        }
        self.media.close_all().await;
    }

    /// Carries out everything the switch decided; never waits. Media first: a 200 OK
    /// goes out after its stream and recording exist, so the peer's first RTP packet
    /// finds them.
    fn carry_out(&mut self) {
        while let Some(order) = self.switch.poll_media() {
            self.media.apply(order);
        }
        while let Some(transmit) = self.switch.poll_transmit() {
            if let Err(e) =
                self.transports
                    .send(transmit.destination, transmit.transport, &transmit.payload)
            {
                tracing::debug!(error = %e, "message not sent");
            }
        }
        while let Some(write) = self.switch.poll_store() {
            self.store.push(write);
        }
        while let Some(event) = self.switch.poll_event() {
            match event {
                SwitchEvent::Reply { id, reply } => {
                    if let Some(sender) = self.replies.remove(&id) {
                        let _ = sender.send(reply);
                    }
                }
                SwitchEvent::ActiveCalls(n) => {
                    self.active.send_replace(n);
                }
            }
        }
    }
}

async fn reload_on_sighup(
    config: Arc<Config>,
    client: SwitchClient,
    mut stop: watch::Receiver<bool>,
) {
    let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        warn!("cannot listen for SIGHUP; reload agents with POST /reload");
        return;
    };
    loop {
        tokio::select! {
            _ = hangup.recv() => match client.reload(&config).await {
                Ok(version) => info!(dialplan_version = version, "agents file and dialplan reloaded (SIGHUP)"),
                Err(e) => warn!(error = %e, "not reloaded; the running agents file and dialplan stay"),
            },
            _ = async { let _ = stop.wait_for(|s| *s).await; } => return,
        }
    }
}
