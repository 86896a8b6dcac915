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
    },
    /// Validate a config file and exit (0 valid, 64 invalid).
    CheckConfig { file: PathBuf },
    /// Validate a dialplan and exit (0 valid, 64 invalid): every error as FILE:LINE: reason.
    CheckDialplan {
        file: PathBuf,
        /// The agents file whose queues the dialplan may use.
        #[arg(long, default_value = "config/agents.toml")]
        agents: PathBuf,
        /// Where the prompts are; by default `prompts/` beside the dialplan file.
        #[arg(long)]
        prompts: Option<PathBuf>,
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
/// starts.
fn load_config(path: &std::path::Path) -> Result<Config, ExitCode> {
    let bad = |e: hotline::config::ConfigError| {
        eprintln!("hotline: bad config: {e}");
        ExitCode::from(EXIT_BAD_CONFIG)
    };
    let config = Config::load(path).map_err(bad)?;
    config.load_agents().map_err(bad)?;
    Ok(config)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => match load_config(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::CheckDialplan {
            file,
            agents,
            prompts,
        } => check_dialplan(&file, &agents, prompts),
        Command::Run { config } => {
            let config = match load_config(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            init_logging(&config.log.filter);
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
            let config = match load_config(&config) {
                Ok(c) => c,
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

/// Compiles a dialplan against an agents file and its prompts directory.
fn check_dialplan(
    file: &std::path::Path,
    agents: &std::path::Path,
    prompts: Option<PathBuf>,
) -> ExitCode {
    let agents = match hotline::config::agents::AgentsConfig::load(agents) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("hotline: bad agents file: {e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    let queues: Vec<String> = agents.queues.iter().map(|q| q.name.clone()).collect();
    let prompts = prompts.unwrap_or_else(|| {
        file.parent()
            .unwrap_or_else(|| std::path::Path::new("."))
            .join("prompts")
    });
    match hotline::ivr::load(file, &prompts, &queues) {
        Ok(plan) => {
            println!("{}: ok ({} nodes)", file.display(), plan.nodes.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(EXIT_BAD_CONFIG)
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
