//! The engine (I/O): everything that can fail is checked before a port is bound, then
//! the transports, the SIP endpoint, the HTTP server and one task per call are started.
//! Shutdown has two phases: on the signal, new INVITEs get `503`; calls in progress get
//! the grace period, then BYE; recordings and work orders are finalised before exit.

pub mod agents;
pub mod endpoint;
pub mod limits;
pub mod memory;
pub mod ports;
pub mod transport;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::config::{Config, StoreConfig};
use crate::media::prompt::Prompt;
use crate::metrics::ConnectionRateWindow;
use crate::recording::RecordingConfig;
use crate::sip::TransportKind;
use crate::workorder::sqlite::SqliteStore;
use crate::workorder::{AbandonReason, CallOutcome, WorkOrderStore};
use transport::Transports;

use agents::{AgentsActor, AgentsHandle, CallKey};
use endpoint::{Control, Endpoint};
use ports::RtpPorts;

/// Why the engine could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A prompt file is missing or not 8 kHz mono 16-bit.
    #[error("prompt: {0}")]
    Prompt(#[from] crate::media::rtp::MediaError),
    /// The work order store could not be opened or read.
    #[error("work order store: {0}")]
    Store(#[from] crate::workorder::StoreError),
    /// The recordings directory could not be created or scanned.
    #[error("recordings: {0}")]
    Recording(#[from] crate::recording::RecordingError),
    /// The config or agents file is invalid.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// The agents file does not make a working ACD.
    #[error("agents: {0}")]
    Agents(#[from] agents::AgentsError),
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

/// The prompts a call plays, loaded once at start (a missing one stops start-up).
pub struct Prompts {
    pub greeting: Arc<Prompt>,
    pub queue_wait: Arc<Prompt>,
    pub hold_music: Arc<Prompt>,
    pub closing: Arc<Prompt>,
    pub agent_logged_in: Arc<Prompt>,
    pub agent_logged_out: Arc<Prompt>,
    pub agent_paused: Arc<Prompt>,
    pub agent_resumed: Arc<Prompt>,
    pub feature_failed: Arc<Prompt>,
    position_prefix: Arc<Prompt>,
    position_suffix: Arc<Prompt>,
    digits: Vec<Arc<Prompt>>,
}

impl Prompts {
    pub fn load(config: &Config) -> Result<Prompts, EngineError> {
        let load = |name: &str| -> Result<Arc<Prompt>, EngineError> {
            Ok(Arc::new(Prompt::load(config.prompt_path(name))?))
        };
        Ok(Prompts {
            greeting: Arc::new(Prompt::load(config.greeting_path())?),
            queue_wait: load("queue-wait.wav")?,
            hold_music: Arc::new(Prompt::load(
                config.prompt_path(&config.acd.hold_music.to_string_lossy()),
            )?),
            closing: load("closing.wav")?,
            agent_logged_in: load("agent-logged-in.wav")?,
            agent_logged_out: load("agent-logged-out.wav")?,
            agent_paused: load("agent-paused.wav")?,
            agent_resumed: load("agent-resumed.wav")?,
            feature_failed: load("feature-failed.wav")?,
            position_prefix: load("position-prefix.wav")?,
            position_suffix: load("position-suffix.wav")?,
            digits: (0..10)
                .map(|d| load(&format!("digit-{d}.wav")))
                .collect::<Result<_, _>>()?,
        })
    }

    /// "您前面还有 N 位", N read digit by digit.
    pub fn position(&self, ahead: usize) -> Arc<Prompt> {
        let mut samples = self.position_prefix.samples().to_vec();
        for digit in ahead.to_string().bytes() {
            samples.extend_from_slice(self.digits[usize::from(digit - b'0')].samples());
        }
        samples.extend_from_slice(self.position_suffix.samples());
        Arc::new(Prompt::from_samples(samples))
    }
}

/// What every call task shares: settings, the store, prompts, ports and the rate window.
pub struct Shared {
    pub config: Config,
    pub store: Arc<dyn WorkOrderStore>,
    pub prompts: Prompts,
    pub agents: AgentsHandle,
    next_call_key: AtomicU64,
    pub ports: RtpPorts,
    pub recordings: RecordingConfig,
    /// R5: offered and answered calls over the rolling 24 h.
    pub connection_rate: Mutex<ConnectionRateWindow>,
}

impl Shared {
    /// The SIP port the engine listens on for `transport` (Via, Contact).
    pub fn local_port(&self, transport: TransportKind) -> u16 {
        let sip = &self.config.sip;
        match transport {
            TransportKind::Udp => sip.listen_udp.map(|a| a.port()),
            TransportKind::Tcp => sip.listen_tcp.map(|a| a.port()),
        }
        .unwrap_or(5060)
    }

    /// A key for the ACD, unique for the engine's life.
    pub fn next_call_key(&self) -> CallKey {
        self.next_call_key.fetch_add(1, Ordering::Relaxed)
    }

    /// Updates the rolling window and republishes its gauges.
    pub fn record_offered(&self, offered_at: chrono::DateTime<Utc>) {
        let now = Utc::now();
        if let Ok(mut window) = self.connection_rate.lock() {
            window.record_offered(offered_at);
            crate::metrics::publish_connection_rate(&window, now);
        }
    }

    /// An answer counts in the minute its call was offered (see [`ConnectionRateWindow`]).
    pub fn record_answered(&self, offered_at: chrono::DateTime<Utc>) {
        let now = Utc::now();
        if let Ok(mut window) = self.connection_rate.lock() {
            window.record_answered(offered_at);
            crate::metrics::publish_connection_rate(&window, now);
        }
    }
}

/// Opens the configured work order store.
pub fn open_store(config: &Config) -> Result<Arc<dyn WorkOrderStore>, EngineError> {
    match &config.store {
        StoreConfig::Sqlite { data_dir } => Ok(Arc::new(SqliteStore::open(data_dir)?)),
    }
}

/// `hotline work-orders list`: the newest work orders, caller numbers masked (R12).
pub async fn list_work_orders(config: &Config, limit: usize) -> Result<String, EngineError> {
    let store = open_store(config)?;
    let orders = store.list_recent(limit).await?;
    Ok(crate::workorder::format_listing(&orders))
}

/// Runs the engine until `shutdown` resolves, then shuts down in two phases.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), EngineError> {
    let metrics = crate::metrics::install_recorder()?;

    // Everything that can fail on a bad installation fails here, before any port.
    let prompts = Prompts::load(&config)?;
    let agents_config = config.load_agents()?;
    crate::recording::create_root(&config.recordings.dir)?;
    let repair = crate::recording::repair_directory(&config.recordings.dir)?;
    for fixed in &repair.repaired {
        warn!(path = %fixed.path.display(), "recording left by a crash repaired");
    }
    for failure in &repair.unrepaired {
        warn!(error = %failure, "recording could not be repaired; left as it is");
    }
    let store = open_store(&config)?;
    let now = Utc::now();
    let closed = store
        .end_unfinished(
            now,
            CallOutcome::Abandoned {
                reason: AbandonReason::EngineRestarted,
            },
        )
        .await?;
    if closed > 0 {
        warn!(
            closed,
            "work orders of calls cut by an earlier crash were closed"
        );
    }
    let mut window = ConnectionRateWindow::new();
    window.seed(
        &store
            .call_counts_since(now - chrono::Duration::hours(24))
            .await?,
    );
    crate::metrics::publish_connection_rate(&window, now);

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

    let (endpoint_tx, endpoint_rx) = mpsc::channel(endpoint::COMMAND_QUEUE);
    let (agents_actor, agents) = AgentsActor::new(&agents_config, &config, endpoint_tx.clone())?;
    let shared = Arc::new(Shared {
        prompts,
        agents,
        next_call_key: AtomicU64::new(1),
        ports: RtpPorts::new(config.media.rtp_ip, config.media.rtp_ports),
        recordings: RecordingConfig {
            root: config.recordings.dir.clone(),
            header_interval: config.recordings.header_interval,
        },
        connection_rate: Mutex::new(window),
        store,
        config,
    });
    let config = &shared.config;

    // Transports stop last: in-dialog messages (BYE and its 200) must flow while calls end.
    let (stop_transports, transports_stopped) = watch::channel(false);
    let (inbound_tx, inbound_rx) = mpsc::channel(4096);
    let transports = Transports::new(udp.clone());
    let mut io_tasks = Vec::new();
    if let Some(udp) = udp {
        io_tasks.push(tokio::spawn(transport::run_udp_with_limits(
            udp,
            inbound_tx.clone(),
            transports_stopped.clone(),
            crate::sip::inbound::InboundLimits {
                max_body_bytes: config.limits.max_body_bytes,
            },
        )));
    }
    if let Some(tcp) = tcp {
        io_tasks.push(tokio::spawn(transport::run_tcp_with_limits(
            tcp,
            transports.clone(),
            inbound_tx.clone(),
            transport::TcpLimits::from_config(config),
            transports_stopped.clone(),
        )));
    }
    drop(inbound_tx);
    io_tasks.push(tokio::spawn({
        let stopped = transports_stopped.clone();
        let shared = shared.clone();
        async move {
            if let Err(e) = crate::api::serve(http, metrics, shared, stopped).await {
                warn!(error = %e, "HTTP server stopped");
            }
        }
    }));
    io_tasks.push(tokio::spawn(agents_actor.run(transports_stopped.clone())));
    io_tasks.push(tokio::spawn(memory::return_freed_memory(
        transports_stopped.clone(),
    )));
    io_tasks.push(tokio::spawn(reload_on_sighup(
        shared.clone(),
        transports_stopped.clone(),
    )));

    let (control_tx, control_rx) = mpsc::channel(8);
    let (active_tx, mut active_rx) = watch::channel(0usize);
    let endpoint = Endpoint::new(
        shared.clone(),
        transports,
        active_tx,
        endpoint_tx,
        endpoint_rx,
    );
    let endpoint_task = tokio::spawn(endpoint.run(inbound_rx, control_rx));

    shutdown.await;
    info!("shutting down: new calls get 503, calls in progress have the grace period");
    let _ = control_tx.send(Control::StopAccepting).await;
    let grace = config.calls.shutdown_grace;
    let drained = tokio::time::timeout(grace, active_rx.wait_for(|n| *n == 0))
        .await
        .is_ok();
    if !drained {
        info!("grace period over: hanging up the remaining calls");
        let _ = control_tx.send(Control::HangUpAll).await;
        // A BYE transaction ends within 64·T1 (timer F); recordings finish right after.
        let bye_bound = config.sip.t1 * 64 + Duration::from_secs(2);
        if tokio::time::timeout(bye_bound, active_rx.wait_for(|n| *n == 0))
            .await
            .is_err()
        {
            warn!(
                "some calls did not end in time; their work orders stay open until the next start"
            );
        }
    }
    let _ = control_tx.send(Control::Exit).await;
    let _ = endpoint_task.await;
    let _ = stop_transports.send(true);
    for task in io_tasks {
        let _ = task.await;
    }
    info!("hotline stopped");
    Ok(())
}

/// Re-reads the agents file and applies it (R4: no restart). A bad file changes nothing
/// and says why.
pub async fn reload_agents(shared: &Shared) -> Result<(), EngineError> {
    let agents = shared.config.load_agents()?;
    shared.agents.reload(agents).await?;
    Ok(())
}

async fn reload_on_sighup(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        warn!("cannot listen for SIGHUP; reload agents with POST /reload");
        return;
    };
    loop {
        tokio::select! {
            _ = hangup.recv() => match reload_agents(&shared).await {
                Ok(()) => info!("agents file reloaded (SIGHUP)"),
                Err(e) => warn!(error = %e, "agents file not reloaded; the old one stays"),
            },
            _ = async { let _ = stop.wait_for(|s| *s).await; } => return,
        }
    }
}
