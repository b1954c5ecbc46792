//! The `cimd-proxy` command line: parses arguments and calls the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use cimd_proxy::Config;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cimd-proxy",
    version,
    about = "An OAuth sidecar for Client ID Metadata Document clients"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch and validate one client_id exactly as the server would, and report.
    ///
    /// Exit status: 0 valid and not denied, 1 rejected, 2 usage or configuration error.
    Check {
        /// The configuration file (the same one `serve` uses); defaults apply without one.
        #[arg(long, env = "CIMD_PROXY_CONFIG")]
        config: Option<PathBuf>,
        /// Print one JSON object instead of a sentence.
        #[arg(long)]
        json: bool,
        /// The client_id URL to check.
        url: String,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file and list every problem in it.
    Check {
        /// The configuration file.
        #[arg(long, env = "CIMD_PROXY_CONFIG")]
        config: PathBuf,
    },
}

/// Exit status for a usage or configuration error (clap uses it too).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli.command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("cimd-proxy: {error:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Check { config, json, url } => {
            let config = load(config.as_deref())?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let report = runtime.block_on(cimd_proxy::check(&config, &url))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{}", report.summary());
            }
            Ok(ExitCode::from(u8::from(!report.ok)))
        }
        Command::Config {
            command: ConfigCommand::Check { config },
        } => {
            load(Some(&config))?;
            println!("{}: ok", config.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn load(path: Option<&std::path::Path>) -> anyhow::Result<Config> {
    Ok(match path {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    })
}

/// Diagnostics go to stderr, so `--json` output on stdout stays clean.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CIMD_PROXY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
