//! The `cimd-proxy` command line: parses arguments and calls the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use cimd_proxy::Config;
use cimd_proxy::logging::{self, Delivery};
use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: the hot path allocates and
/// frees many small values per request, and every cached document is a few
/// dozen small allocations that glibc pads with a header each
/// (ARCHITECTURE.md, "Why the dependencies"; bench/notes.md has the figures).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Where a newcomer starts, under the command list of `--help`.
#[cfg(feature = "dev")]
const HELP_START: &str = "New here? Start with `cimd-proxy dev`: the whole sign-in on this machine \
(the proxy, a development identity provider and a sample client), nothing to configure.\n\
For a deployment: `cimd-proxy config check --config FILE`, then `cimd-proxy serve --config FILE`.";
#[cfg(not(feature = "dev"))]
const HELP_START: &str =
    "Start with `cimd-proxy config check --config FILE`, then `cimd-proxy serve --config FILE`.";

#[derive(Parser)]
#[command(
    name = "cimd-proxy",
    version,
    about = "An OAuth sidecar for Client ID Metadata Document clients",
    after_help = HELP_START
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy: the public listener and the admin listener.
    Serve {
        /// The configuration file.
        #[arg(long, env = "CIMD_PROXY_CONFIG")]
        config: PathBuf,
        /// Log format: JSON lines (for log collectors) or readable text.
        #[arg(long, env = "CIMD_PROXY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
        log_format: LogFormat,
    },
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
    /// Run the whole flow on this machine for development: the proxy, a
    /// development identity provider that signs everyone in, and a sample client.
    ///
    /// NOT FOR PRODUCTION: it signs anyone in automatically, so it listens on
    /// loopback only. Prints what to open once it is ready; Ctrl-C stops it.
    #[cfg(feature = "dev")]
    Dev {
        /// The proxy's public listener (loopback only).
        #[arg(long, default_value_t = cimd_proxy::dev::DEFAULT_LISTEN)]
        listen: std::net::SocketAddr,
        /// The proxy's admin listener (loopback only).
        #[arg(long, default_value_t = cimd_proxy::dev::DEFAULT_ADMIN_LISTEN)]
        admin_listen: std::net::SocketAddr,
    },
    /// Print a new random sealing key (for `seal.keys_env` / `seal.keys_file`).
    Keygen,
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Software statements: for operators who run a registry, and for testing.
    Statement {
        #[command(subcommand)]
        command: StatementCommand,
    },
    /// The clients a running proxy has seen, from its admin listener.
    ///
    /// Exit status: 0 done, 1 refused or not found, 2 usage error or no answer.
    Clients {
        /// The admin listener's URL.
        #[arg(
            long,
            env = "CIMD_PROXY_ADMIN_URL",
            default_value = "http://127.0.0.1:9090"
        )]
        admin: String,
        /// Print the admin API's JSON instead of a table.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        command: ClientsCommand,
    },
}

#[derive(Subcommand)]
enum ClientsCommand {
    /// The inventory, the most recently seen first.
    List {
        /// Only clients whose last decision is this (allow, warn, deny, refused, pass_through).
        #[arg(long)]
        decision: Option<String>,
        /// Only clients whose host matches this glob, e.g. *.example.com.
        #[arg(long)]
        host: Option<String>,
        /// The page, from 1.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        page: u32,
        /// Clients per page.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=500))]
        per_page: u32,
    },
    /// One client: its document, decisions and cache state.
    Show {
        /// The client_id.
        id: String,
    },
    /// Fetch the client's document, its jwks_uri keys and its logo again now
    /// (needs the admin token in CIMD_PROXY_ADMIN_TOKEN).
    Refresh {
        /// The client_id.
        id: String,
    },
    /// Drop the client from the caches; the next request fetches it again
    /// (needs the admin token in CIMD_PROXY_ADMIN_TOKEN).
    Invalidate {
        /// The client_id.
        id: String,
    },
}

impl From<ClientsCommand> for cimd_proxy::clients_cli::ClientsCommand {
    fn from(command: ClientsCommand) -> Self {
        use cimd_proxy::clients_cli::ClientsCommand as Library;
        match command {
            ClientsCommand::List {
                decision,
                host,
                page,
                per_page,
            } => Library::List {
                decision,
                host,
                page: page as usize,
                per_page: per_page as usize,
            },
            ClientsCommand::Show { id } => Library::Show(id),
            ClientsCommand::Refresh { id } => Library::Refresh(id),
            ClientsCommand::Invalidate { id } => Library::Invalidate(id),
        }
    }
}

/// The environment variable `cimd-proxy clients` reads the admin token from
/// (never a flag: it would show in the process list and shell history).
const ADMIN_TOKEN_ENV: &str = "CIMD_PROXY_ADMIN_TOKEN";

#[derive(Subcommand)]
enum StatementCommand {
    /// Print a software statement (a signed JWT) vouching for one client.
    ///
    /// The client's document carries it as "software_statement"; a proxy
    /// that lists NAME in [[trust.issuers]] with this key's public JWK Set
    /// verifies it.
    Sign {
        /// The issuer's private key (PEM: P-256 or RSA ≥ 2048, as for signing.keys_file).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The issuer's name: the statement's iss, and [[trust.issuers]] name.
        #[arg(long, value_name = "NAME")]
        issuer: String,
        /// The client_id URL vouched for.
        #[arg(long, value_name = "URL")]
        client_id: String,
        /// Another claim with a string value, e.g. client_name=Example (repeatable).
        #[arg(long = "claim", value_name = "NAME=VALUE")]
        claims: Vec<String>,
        /// Another claim with a JSON value, e.g. redirect_uris=["https://app.example/cb"] (repeatable).
        #[arg(long = "claim-json", value_name = "NAME=JSON")]
        json_claims: Vec<String>,
        /// Days until the statement expires.
        #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=3650))]
        ttl_days: u32,
    },
    /// Print the public JWK Set of a key file, to publish as the issuer's
    /// jwks_uri or to name as its jwks_file.
    Jwks {
        /// The issuer's private key file (PEM), as given to `statement sign`.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file and list every problem in it.
    ///
    /// Without --secrets the file alone (and the files it names), as a CI
    /// pipeline that validates a ConfigMap without its Secrets needs.
    Check {
        /// The configuration file.
        #[arg(long, env = "CIMD_PROXY_CONFIG")]
        config: PathBuf,
        /// Also everything `serve` would refuse: read the sealing keys, the
        /// signing key file and the upstream credentials from their
        /// environment variables and files (no network).
        #[arg(long)]
        secrets: bool,
    },
}

/// How log lines are written.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// One JSON object per line, with the request span's fields.
    Json,
    /// Readable text.
    Text,
}

impl From<&LogFormat> for logging::LogFormat {
    fn from(format: &LogFormat) -> Self {
        match format {
            LogFormat::Json => logging::LogFormat::Json,
            LogFormat::Text => logging::LogFormat::Text,
        }
    }
}

/// Exit status for a usage or configuration error (clap uses it too).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A one-shot command keeps stderr for what went wrong; a server narrates,
    // through a queue its requests never wait on.
    let (format, filter, delivery) = match &cli.command {
        Command::Serve { log_format, .. } => (log_format.into(), "info", Delivery::Queued),
        #[cfg(feature = "dev")]
        Command::Dev { .. } => (logging::LogFormat::Text, "info", Delivery::Queued),
        _ => (logging::LogFormat::Text, "warn", Delivery::Direct),
    };
    let logging = match logging::init(format, filter, delivery) {
        Ok(logging) => logging,
        Err(error) => {
            eprintln!("cimd-proxy: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Dropping `logging` on return flushes what is still queued.
    match run(cli.command) {
        Ok(code) => code,
        Err(error) => {
            logging.fatal(&format_args!("{}", each_cause_once(&error)));
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve { config: path, .. } => {
            let config = load(Some(&path))?;
            // Every missing key or unreadable secret at once, not one a run.
            refuse_unservable(&config)?;
            runtime()?.block_on(serve(config, path))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { config, json, url } => {
            let config = load(config.as_deref())?;
            let report = runtime()?.block_on(cimd_proxy::check(&config, &url))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{}", report.summary());
            }
            Ok(ExitCode::from(u8::from(!report.ok)))
        }
        #[cfg(feature = "dev")]
        Command::Dev {
            listen,
            admin_listen,
        } => {
            let options = cimd_proxy::dev::DevOptions {
                listen,
                admin_listen,
            };
            // Refused before anything starts, with the usage exit status.
            options.check()?;
            let runtime = runtime()?;
            let shutdown = {
                let _context = runtime.enter();
                shutdown_signal()
            };
            runtime.block_on(cimd_proxy::dev::run(options, shutdown))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Keygen => {
            println!("{}", cimd_proxy::Sealer::generate_key());
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            command: ConfigCommand::Check { config, secrets },
        } => {
            let loaded = load(Some(&config))?;
            if secrets {
                refuse_unservable(&loaded)?;
            }
            println!("{}: ok", config.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Statement {
            command:
                StatementCommand::Sign {
                    key,
                    issuer,
                    client_id,
                    claims,
                    json_claims,
                    ttl_days,
                },
        } => {
            let keys = cimd_proxy::SigningKeys::load(&key)?;
            let client_id = cimd_proxy::ClientIdUrl::parse(&client_id)
                .map_err(|error| anyhow::anyhow!("--client-id: {error}"))?;
            let mut extra = serde_json::Map::new();
            for claim in &claims {
                let (name, value) = split_claim("--claim", claim)?;
                extra.insert(name.to_owned(), serde_json::Value::from(value));
            }
            for claim in &json_claims {
                let (name, value) = split_claim("--claim-json", claim)?;
                let value = serde_json::from_str(value)
                    .with_context(|| format!("--claim-json {name}: the value is not JSON"))?;
                extra.insert(name.to_owned(), value);
            }
            let lifetime = std::time::Duration::from_secs(u64::from(ttl_days) * 86_400);
            let statement =
                cimd_proxy::trust::sign_statement(&keys, &issuer, &client_id, &extra, lifetime)?;
            println!("{statement}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Clients {
            admin,
            json,
            command,
        } => {
            let request = cimd_proxy::clients_cli::ClientsRequest {
                admin,
                token: std::env::var(ADMIN_TOKEN_ENV)
                    .ok()
                    .filter(|token| !token.is_empty()),
                json,
                command: command.into(),
            };
            let outcome = runtime()?.block_on(cimd_proxy::clients_cli::run(&request))?;
            print!("{}", outcome.stdout);
            eprint!("{}", outcome.stderr);
            Ok(ExitCode::from(outcome.exit))
        }
        Command::Statement {
            command: StatementCommand::Jwks { key },
        } => {
            let keys = cimd_proxy::SigningKeys::load(&key)?;
            println!("{}", serde_json::to_string_pretty(&keys.jwks())?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Fails with every problem that would stop `serve`, listed together.
fn refuse_unservable(config: &Config) -> anyhow::Result<()> {
    let problems = cimd_proxy::preflight::serve_problems(config);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(cimd_proxy::config::ConfigError::Invalid(problems).into())
    }
}

/// The error and its causes, joined by ": ", each cause once: many errors
/// already quote their source in their own message (`cannot read x: No
/// such file or directory`), and anyhow's `{:#}` would print it again.
fn each_cause_once(error: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// `NAME=VALUE`, with a non-empty name.
fn split_claim<'a>(flag: &str, claim: &'a str) -> anyhow::Result<(&'a str, &'a str)> {
    match claim.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name, value)),
        _ => anyhow::bail!("{flag} expects NAME=VALUE, found {claim:?}"),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Everything is read and checked before a port is bound; then both
/// listeners run until SIGTERM or Ctrl-C, reloading the configuration on
/// SIGHUP or when the file changes.
async fn serve(config: Config, path: PathBuf) -> anyhow::Result<()> {
    // First: a SIGTERM during start-up then drains and exits 0 once serving.
    let shutdown = shutdown_signal();
    let state = cimd_proxy::server::AppState::build(config).await?;
    let server = &state.config.server;
    let mut listeners = cimd_proxy::server::bind(server.listen, server.admin_listen).await?;
    let gate = match state.config.gate.enabled {
        true => Some(cimd_proxy::server::bind_one(state.config.gate.listen).await?),
        false => None,
    };
    tracing::info!(
        issuer = %state.issuer,
        public = %listeners.public.local_addr()?,
        admin = %listeners.admin.local_addr()?,
        "cimd-proxy is serving"
    );
    let shared = cimd_proxy::server::Shared::new(state);
    if let Some(listener) = gate {
        tracing::info!(gate = %listener.local_addr()?, "gate mode: answering the ingress's checks");
        listeners.more.push(cimd_proxy::server::Served {
            listener,
            router: cimd_proxy::gate::router(std::sync::Arc::clone(&shared)),
            name: "gate",
        });
    }
    let reloader = tokio::spawn(cimd_proxy::server::reload::watch(
        std::sync::Arc::clone(&shared),
        path,
    ));
    cimd_proxy::server::run(shared, listeners, shutdown).await;
    reloader.abort();
    Ok(())
}

/// Resolves on SIGTERM (Kubernetes) or SIGINT (Ctrl-C). The handlers are
/// installed when this is called (inside the runtime), not when the future
/// is first polled: a signal that comes while the server is still starting
/// is then remembered, where without a handler it would kill the process.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let listen = |kind: SignalKind, name: &'static str| match signal(kind) {
        Ok(stream) => Some(stream),
        Err(error) => {
            tracing::warn!(%error, signal = name, "cannot listen for the signal");
            None
        }
    };
    let terminate = listen(SignalKind::terminate(), "SIGTERM");
    let interrupt = listen(SignalKind::interrupt(), "SIGINT");
    async move {
        tokio::select! {
            () = received(terminate) => {}
            () = received(interrupt) => {}
        }
    }
}

/// Resolves when `signal` is delivered; never without a handler.
async fn received(signal: Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(mut signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// The configuration, with the files it names read ahead so that every
/// problem is reported at once, before anything starts.
fn load(path: Option<&std::path::Path>) -> anyhow::Result<Config> {
    Ok(match path {
        Some(path) => cimd_proxy::preflight::load_config(path)?,
        None => Config::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read keys.pem: {0}")]
    struct Quoting(#[source] std::io::Error);

    /// Regression: "No such file or directory (os error 2): No such file or
    /// directory (os error 2)".
    #[test]
    fn a_cause_already_quoted_is_not_repeated() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let text = io.to_string();
        let error = anyhow::Error::new(Quoting(io)).context("signing.keys_file");
        assert_eq!(
            each_cause_once(&error),
            format!("signing.keys_file: cannot read keys.pem: {text}")
        );
    }

    #[test]
    fn help_names_dev_as_the_place_to_start() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        if cfg!(feature = "dev") {
            assert!(help.contains("Start with `cimd-proxy dev`"), "{help}");
        }
        assert!(help.contains("config check"), "{help}");
    }
}
