//! The `hotline` command line: thin on purpose; the engine lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hotline::config::Config;

/// Exit code for a bad config or command line (BSD `EX_USAGE`/`EX_CONFIG` family).
const EXIT_BAD_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(
    name = "hotline",
    version,
    about = "Call-center engine for a public-service hotline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the engine.
    Run {
        #[arg(long, default_value = "config/hotline.toml")]
        config: PathBuf,
        /// Start even with the shipped demo secrets on a non-loopback address (warns).
        #[arg(long)]
        allow_demo_secrets: bool,
    },
    /// Validate a config file and exit (0 valid, 64 invalid).
    CheckConfig {
        file: PathBuf,
        /// Accept the shipped demo secrets on a non-loopback address (warns).
        #[arg(long)]
        allow_demo_secrets: bool,
    },
    /// Work orders in the configured store.
    WorkOrders {
        #[command(subcommand)]
        command: WorkOrdersCommand,
    },
}

#[derive(Subcommand)]
enum WorkOrdersCommand {
    /// Print the most recent work orders, caller numbers masked (R12).
    List {
        #[arg(long, default_value = "config/hotline.toml")]
        config: PathBuf,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

/// Loads the config and the agents file it names: both must be valid before anything
/// starts. Returns the warnings to show (demo secrets allowed on a reachable address).
fn load_config(
    path: &std::path::Path,
    allow_demo_secrets: bool,
) -> Result<(Config, Vec<String>), ExitCode> {
    let bad = |e: hotline::config::ConfigError| {
        eprintln!("hotline: bad config: {e}");
        ExitCode::from(EXIT_BAD_CONFIG)
    };
    let config = Config::load(path).map_err(bad)?;
    let agents = config.load_agents().map_err(bad)?;
    let warnings =
        hotline::config::security::check_demo_secrets(&config, &agents, allow_demo_secrets)
            .map_err(bad)?;
    Ok((config, warnings))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig {
            file,
            allow_demo_secrets,
        } => match load_config(&file, allow_demo_secrets) {
            Ok((_, warnings)) => {
                for warning in warnings {
                    eprintln!("hotline: WARNING: {warning}");
                }
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Run {
            config,
            allow_demo_secrets,
        } => {
            let (config, warnings) = match load_config(&config, allow_demo_secrets) {
                Ok(loaded) => loaded,
                Err(code) => return code,
            };
            init_logging(&config.log.filter);
            for warning in warnings {
                tracing::warn!("{warning}");
                eprintln!("hotline: WARNING: {warning}");
            }
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("hotline: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(hotline::runtime::run(config, shutdown_signal())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("hotline: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::WorkOrders {
            command: WorkOrdersCommand::List { config, limit },
        } => {
            // Listing work orders binds nothing: the demo-secret guard is not for it.
            let config = match load_config(&config, true) {
                Ok((config, _)) => config,
                Err(code) => return code,
            };
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("hotline: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(hotline::runtime::list_work_orders(&config, limit)) {
                Ok(listing) => {
                    print!("{listing}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("hotline: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
}

/// Resolves on SIGTERM or Ctrl-C: the first phase of the two-phase shutdown.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("cannot listen for SIGTERM: {e}");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
