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
    /// Print the SHA-256 of a bearer token read from stdin, for `[[access.tokens]]`
    /// in the config. The token is read from stdin so it stays out of shell history
    /// and the process list.
    HashToken,
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
    /// Print one work order in full: fields, calls, follow-ups, history. The caller
    /// number is masked unless --unmasked, which is written to the read-audit log.
    Show {
        /// The work order id, e.g. 20261128-153012-7f3a9c2b41d0.
        id: String,
        #[arg(long, default_value = "config/hotline.toml")]
        config: PathBuf,
        /// Show the full caller number (R12: the read is audited).
        #[arg(long)]
        unmasked: bool,
    },
    /// Export the work orders offered since a date, oldest first, as CSV or JSON,
    /// caller numbers masked unless --unmasked (audited, one entry per order).
    Export {
        /// A date (2026-11-28, midnight UTC) or an RFC 3339 time.
        #[arg(long)]
        since: String,
        /// Up to (not including) this date or time; default: now.
        #[arg(long)]
        until: Option<String>,
        #[arg(long, default_value = "csv")]
        format: String,
        #[arg(long, default_value = "config/hotline.toml")]
        config: PathBuf,
        #[arg(long)]
        unmasked: bool,
    },
    /// Add or replace knowledge-base entries from a .json or .csv file (R13).
    ImportKnowledge {
        file: PathBuf,
        #[arg(long, default_value = "config/hotline.toml")]
        config: PathBuf,
    },
    /// Add or replace service-directory providers from a .json or .csv file (R13).
    ImportProviders {
        file: PathBuf,
        #[arg(long, default_value = "config/hotline.toml")]
        config: PathBuf,
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
        Command::HashToken => hash_token(),
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
        Command::CheckDialplan {
            file,
            agents,
            prompts,
        } => check_dialplan(&file, &agents, prompts),
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
            hotline::runtime::memory::tune_allocator();
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
                    // A bad file the operator must fix exits like check-config and
                    // check-dialplan do; anything else (a busy port) is a failure.
                    match e {
                        hotline::runtime::EngineError::Config(_)
                        | hotline::runtime::EngineError::Dialplan(_) => {
                            ExitCode::from(EXIT_BAD_CONFIG)
                        }
                        _ => ExitCode::FAILURE,
                    }
                }
            }
        }
        Command::WorkOrders { command } => work_order_command(command),
    }
}

/// Every `work-orders` command: open the configured store, run, close it.
fn work_order_command(command: WorkOrdersCommand) -> ExitCode {
    use hotline::workorder::cli;
    use hotline::workorder::export::{ExportFormat, Numbers};

    let usage = |message: String| {
        eprintln!("hotline: {message}");
        ExitCode::from(EXIT_BAD_CONFIG)
    };
    let numbers = |unmasked: bool| {
        if unmasked {
            Numbers::Full
        } else {
            Numbers::Masked
        }
    };
    let config_path = match &command {
        WorkOrdersCommand::List { config, .. }
        | WorkOrdersCommand::Show { config, .. }
        | WorkOrdersCommand::Export { config, .. }
        | WorkOrdersCommand::ImportKnowledge { config, .. }
        | WorkOrdersCommand::ImportProviders { config, .. } => config.clone(),
    };
    // Work-order commands bind nothing: the demo-secret guard is not for them.
    let config = match load_config(&config_path, true) {
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
    let actor = cli::cli_actor();
    let now = chrono::Utc::now();
    runtime.block_on(async move {
        use hotline::workorder::WorkOrderStore;
        let store = match hotline::workorder::open_configured(&config.store) {
            Ok(store) => store,
            Err(e) => {
                eprintln!("hotline: {e}");
                return ExitCode::FAILURE;
            }
        };
        let result = match command {
            WorkOrdersCommand::List { limit, .. } => store
                .list_recent(limit)
                .await
                .map(|orders| hotline::workorder::format_listing(&orders))
                .map_err(cli::CommandError::from),
            WorkOrdersCommand::Show { id, unmasked, .. } => {
                let id = match id.parse() {
                    Ok(id) => id,
                    Err(e) => return usage(format!("{e}")),
                };
                cli::show(&store, &id, numbers(unmasked), &actor, now).await
            }
            WorkOrdersCommand::Export {
                since,
                until,
                format,
                unmasked,
                ..
            } => {
                let since = match cli::parse_instant(&since) {
                    Ok(at) => at,
                    Err(e) => return usage(format!("--since: {e}")),
                };
                let until = match until.as_deref().map(cli::parse_instant).transpose() {
                    Ok(at) => at,
                    Err(e) => return usage(format!("--until: {e}")),
                };
                let format: ExportFormat = match format.parse() {
                    Ok(f) => f,
                    Err(e) => return usage(format!("--format: {e}")),
                };
                cli::export_orders(&store, since, until, format, numbers(unmasked), &actor, now)
                    .await
            }
            WorkOrdersCommand::ImportKnowledge { file, .. } => cli::import_knowledge(&store, &file)
                .await
                .map(|n| format!("{n} knowledge-base entries imported\n")),
            WorkOrdersCommand::ImportProviders { file, .. } => cli::import_providers(&store, &file)
                .await
                .map(|n| format!("{n} providers imported\n")),
        };
        let closed = store.close().await;
        match (result, closed) {
            (Ok(text), Ok(())) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            (Err(e), _) => {
                eprintln!("hotline: {e}");
                ExitCode::FAILURE
            }
            (Ok(_), Err(e)) => {
                eprintln!("hotline: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Shortest token `hash-token` accepts: 128 bits of base64 is 22 characters, so 32
/// leaves room and still refuses a word someone could guess.
const MIN_TOKEN_CHARS: usize = 32;

fn hash_token() -> ExitCode {
    let mut token = String::new();
    if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut token) {
        eprintln!("hotline: cannot read the token from stdin: {e}");
        return ExitCode::FAILURE;
    }
    let token = token.trim();
    if token.chars().count() < MIN_TOKEN_CHARS || token.chars().any(char::is_whitespace) {
        eprintln!(
            "hotline: a token must be at least {MIN_TOKEN_CHARS} characters without spaces; \
             make one with: head -c 32 /dev/urandom | base64"
        );
        return ExitCode::from(EXIT_BAD_CONFIG);
    }
    println!("{}", hotline::api::auth::hash_token(token));
    ExitCode::SUCCESS
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
