//! `cimd-proxy dev`: the whole sign-in flow on one laptop, with nothing
//! else installed. **Development only; never run it anywhere else.**
//!
//! One process runs four services, every one of them on loopback:
//!
//! - the proxy itself ([`crate::server`]), on `--listen` and `--admin-listen`;
//! - [`idp`], a development identity provider that signs anyone in as
//!   `dev-user` without asking;
//! - [`dochost`], an HTTPS host with a freshly generated CA that serves the
//!   sample client's metadata document;
//! - [`sample_client`], a small web app that signs in as that client and
//!   shows the tokens it gets back.
//!
//! The proxy is configured as an operator would configure it, with three
//! exceptions that exist only here, because the document host lives on
//! loopback: `fetch.allow_cidrs = ["127.0.0.1/32"]` (loopback is otherwise
//! refused), `fetch.allowed_ports` = the document host's port, and
//! `fetch.extra_root_certs` = the generated CA. That CA is name-constrained
//! to 127.0.0.1, its key never leaves memory, and its certificate, the
//! provider's client secret and the sealing key live in a private temporary
//! folder that is removed when dev mode stops.
//!
//! Why loopback only: the development provider signs in whoever reaches it,
//! so every listener refuses any address but loopback ([`DevOptions::check`]).
//! Only the proxy's two ports are chosen by the user; the three embedded
//! services take ephemeral ports, so only those two can clash.

mod dochost;
mod idp;
mod sample_client;

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use url::Url;

use crate::client_id::ClientIdUrl;
use crate::config::{Config, ServerConfig};
use crate::egress::FetchConfig;
use crate::id_token::SigningConfig;
use crate::policy::Action;
use crate::policy::PolicyConfig;
use crate::replay::{ReplayError, SingleUse};
use crate::seal::SealConfig;
use crate::seal::Sealer;
use crate::secret::SecretSource;
use crate::server::params::Params;
use crate::server::{AppState, ServeError, listener};
use crate::upstream::{RedirectMode, UpstreamAuthMethod, UpstreamClient, UpstreamConfig};

/// The proxy's public listener unless `--listen` says otherwise.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);
/// The proxy's admin listener unless `--admin-listen` says otherwise.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9090);
/// The client_id under which the proxy is registered at the development provider.
pub const UPSTREAM_CLIENT_ID: &str = "cimd-proxy-dev";
/// The `client_name` of the sample client's document.
pub const SAMPLE_CLIENT_NAME: &str = "cimd-proxy dev sample client";
/// The scopes the sample client asks for.
pub const SAMPLE_SCOPE: &str = "openid profile email offline_access";

/// The name of the proxy's upstream client in the generated configuration.
const UPSTREAM_CLIENT_NAME: &str = "dev";
/// Where the embedded services listen: loopback, on a port the system picks.
const EPHEMERAL: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// What `cimd-proxy dev` is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevOptions {
    /// The proxy's public listener (`--listen`); loopback only.
    pub listen: SocketAddr,
    /// The proxy's admin listener (`--admin-listen`); loopback only.
    pub admin_listen: SocketAddr,
}

impl Default for DevOptions {
    fn default() -> Self {
        DevOptions {
            listen: DEFAULT_LISTEN,
            admin_listen: DEFAULT_ADMIN_LISTEN,
        }
    }
}

impl DevOptions {
    /// Refuses any listener that is not on loopback (the development
    /// provider signs in whoever reaches it), and two listeners on one
    /// address.
    pub fn check(&self) -> Result<(), DevError> {
        for (flag, addr) in [
            ("--listen", self.listen),
            ("--admin-listen", self.admin_listen),
        ] {
            if !addr.ip().is_loopback() {
                return Err(DevError::NotLoopback { flag, addr });
            }
        }
        if self.listen == self.admin_listen && self.listen.port() != 0 {
            return Err(DevError::SameAddress(self.listen));
        }
        Ok(())
    }
}

/// Why dev mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// A listener address is not on loopback.
    #[error(
        "{flag} {addr} is not a loopback address: dev mode signs anyone in automatically, \
         so it listens only on loopback (for example {flag} 127.0.0.1:{port})",
        port = .addr.port()
    )]
    NotLoopback {
        /// The command line flag.
        flag: &'static str,
        /// The address given.
        addr: SocketAddr,
    },
    /// `--listen` and `--admin-listen` name the same address.
    #[error("--listen and --admin-listen are both {0}; give them different ports")]
    SameAddress(SocketAddr),
    /// One of the proxy's two ports is taken.
    #[error("cannot listen on {addr} ({flag}): {error}; choose another port with {flag}")]
    PortInUse {
        /// The command line flag that chose the address.
        flag: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The operating system's error (in the message, so not a `source`
        /// as well: chains would print it twice).
        error: std::io::Error,
    },
    /// An embedded service could not get a loopback port.
    #[error("cannot listen on loopback for the {service}: {error}")]
    Bind {
        /// Which embedded service.
        service: &'static str,
        /// The operating system's error (in the message, so not a `source`
        /// as well: chains would print it twice).
        error: std::io::Error,
    },
    /// The temporary folder or a file in it could not be written.
    #[error("cannot write {path}: {error}")]
    Files {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error (in the message, so not a `source`
        /// as well: chains would print it twice).
        error: std::io::Error,
    },
    /// The operating system's random source failed.
    #[error("the operating system's random source failed")]
    Random,
    /// The development CA, the document host's certificate or a key could not be made.
    #[error("cannot generate the development CA or keys: {0}")]
    Certificate(String),
    /// The development provider's signing key could not be made. (Not a
    /// `source` as well: the message carries it, and chains would repeat it.)
    #[error("cannot set up the development provider: {0}")]
    Provider(crate::id_token::SigningSetupError),
    /// The proxy refused the generated setup (discovery, keys, fetcher).
    #[error("the proxy cannot start: {0}")]
    Proxy(ServeError),
    /// The proxy cannot fetch the sample client's document.
    #[error("the proxy cannot fetch the sample client's document {client_id}: {reason}")]
    SelfCheck {
        /// The sample client_id.
        client_id: String,
        /// Why.
        reason: String,
    },
}

/// Where everything is, once dev mode is listening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevUrls {
    /// The sample client's home page: what a person opens.
    pub sample_app: String,
    /// The link that starts a sign-in as the sample client.
    pub start: String,
    /// The proxy's issuer (its public base URL, no trailing slash).
    pub proxy: String,
    /// The proxy's authorization server metadata.
    pub metadata: String,
    /// The admin listener's base URL (no trailing slash).
    pub admin: String,
    /// The sample client's client_id: its document on the HTTPS host.
    pub client_id: String,
    /// The development provider's issuer.
    pub idp: String,
    /// The generated CA certificate (PEM), removed at shutdown.
    pub ca_file: PathBuf,
}

/// Dev mode, running. Dropping it stops every service too, but only
/// [`DevHandle::shutdown`] waits for them.
pub struct DevHandle {
    urls: DevUrls,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Holds the CA, the secret and the sealing key; removed on drop.
    temp: PrivateDir,
}

impl std::fmt::Debug for DevHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevHandle")
            .field("urls", &self.urls)
            .finish_non_exhaustive()
    }
}

impl DevHandle {
    /// Where everything is.
    pub fn urls(&self) -> &DevUrls {
        &self.urls
    }

    /// The boxed banner printed once everything is listening.
    pub fn banner(&self) -> String {
        banner(&self.urls)
    }

    /// Stops every service, waits for requests in flight (within a grace
    /// period), and removes the temporary folder.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        drop(self.temp);
    }
}

/// Starts dev mode: binds the proxy's two listeners (so a clash is reported
/// first), generates the CA and the secrets, starts the development
/// provider, the document host and the sample client, builds the proxy
/// against them, and checks the proxy can fetch the sample document. Every
/// service is listening when this returns.
pub async fn start(options: DevOptions) -> Result<DevHandle, DevError> {
    options.check()?;
    // Until the handle exists, an early return drops `stop`, which stops
    // whatever was already spawned.
    let (stop, _) = watch::channel(false);
    let mut tasks = Vec::new();
    let temp = PrivateDir::create()?;

    let listeners = crate::server::bind(options.listen, options.admin_listen)
        .await
        .map_err(|error| match error {
            ServeError::Bind { addr, source } => DevError::PortInUse {
                flag: if addr == options.listen {
                    "--listen"
                } else {
                    "--admin-listen"
                },
                addr,
                error: source,
            },
            other => DevError::Proxy(other),
        })?;
    let proxy_addr = local_addr(&listeners.public, "proxy")?;
    let admin_addr = local_addr(&listeners.admin, "proxy's admin listener")?;
    let proxy = format!("http://{proxy_addr}");
    let callback = format!("{proxy}/callback");

    let (idp_listener, idp_addr) = bind_ephemeral("development identity provider").await?;
    let (doc_listener, doc_addr) = bind_ephemeral("document host").await?;
    let (app_listener, app_addr) = bind_ephemeral("sample client").await?;
    let idp_issuer = format!("http://{idp_addr}");
    let client_id = format!("https://{doc_addr}{}", dochost::DOCUMENT_PATH);
    let app = format!("http://{app_addr}");
    let redirect_uri = format!("{app}{}", sample_client::CALLBACK_PATH);

    let pki = dochost::DevPki::generate(doc_addr.ip())?;
    let ca_file = temp.path().join("ca.pem");
    write_private(&ca_file, pki.ca_pem())?;
    let upstream_secret = random_token(32)?;
    let secret_file = temp.path().join("upstream-client-secret");
    write_private(&secret_file, &upstream_secret)?;
    // The proxy's id_token key in a file, as a deployment has it: without
    // one the proxy makes its own and warns the operator to configure a
    // file, advice that does not apply to a throw-away run.
    let signing_file = temp.path().join("signing-key.pem");
    write_private(&signing_file, &signing_key_pem()?)?;
    let seal_file = temp.path().join("seal-keys");
    write_private(
        &seal_file,
        &Sealer::try_generate_key().map_err(|_| DevError::Random)?,
    )?;

    let provider = Arc::new(idp::DevIdp::new(idp::IdpConfig {
        issuer: idp_issuer.clone(),
        client_id: UPSTREAM_CLIENT_ID.to_owned(),
        client_secret: upstream_secret,
        redirect_uri: callback,
    })?);
    tasks.push(tokio::spawn(listener::serve_until(
        idp_listener,
        idp::router(provider),
        None,
        stopped(stop.subscribe()),
    )));
    let document = sample_client::document(&client_id, &redirect_uri);
    tasks.push(tokio::spawn(listener::serve_until(
        doc_listener,
        dochost::router(document),
        Some(pki.acceptor()?),
        stopped(stop.subscribe()),
    )));

    // The provider is listening, so discovery inside build succeeds.
    let config = proxy_config(&ProxySetup {
        listen: proxy_addr,
        admin_listen: admin_addr,
        idp_issuer: &idp_issuer,
        doc_port: doc_addr.port(),
        ca_file: &ca_file,
        secret_file: &secret_file,
        seal_file: &seal_file,
        signing_file: &signing_file,
    })?;
    let state = AppState::build(config).await.map_err(DevError::Proxy)?;
    // The generated CA, the allow range and the port must all line up; say
    // so now rather than on the first click.
    let parsed = ClientIdUrl::parse(&client_id).map_err(|error| DevError::SelfCheck {
        client_id: client_id.clone(),
        reason: error.to_string(),
    })?;
    state
        .cache
        .resolve(&parsed)
        .await
        .map_err(|error| DevError::SelfCheck {
            client_id: client_id.clone(),
            reason: error.to_string(),
        })?;
    tasks.push(tokio::spawn(crate::server::run(
        crate::server::Shared::new(state),
        listeners,
        stopped(stop.subscribe()),
    )));

    let sample = Arc::new(sample_client::SampleClient::new(
        proxy.clone(),
        client_id.clone(),
        redirect_uri,
    ));
    tasks.push(tokio::spawn(listener::serve_until(
        app_listener,
        sample_client::router(sample),
        None,
        stopped(stop.subscribe()),
    )));

    let urls = DevUrls {
        sample_app: format!("{app}/"),
        start: format!("{app}{}", sample_client::START_PATH),
        metadata: format!("{proxy}/.well-known/oauth-authorization-server"),
        proxy,
        admin: format!("http://{admin_addr}"),
        client_id,
        idp: idp_issuer,
        ca_file,
    };
    Ok(DevHandle {
        urls,
        stop,
        tasks,
        temp,
    })
}

/// `cimd-proxy dev`: starts, prints the banner to stdout once everything
/// is listening, runs until `shutdown` resolves (Ctrl-C or SIGTERM in the
/// binary), then stops everything and removes the temporary folder.
pub async fn run(
    options: DevOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), DevError> {
    let handle = start(options).await?;
    let mut stdout = std::io::stdout().lock();
    // A closed stdout must not stop the servers: the logs still say it all.
    let _ = writeln!(stdout, "{}", handle.banner());
    let _ = stdout.flush();
    drop(stdout);
    tracing::info!(
        open = %handle.urls().sample_app,
        proxy = %handle.urls().proxy,
        "cimd-proxy dev is ready"
    );
    shutdown.await;
    tracing::info!("stopping dev mode");
    handle.shutdown().await;
    Ok(())
}

/// The banner: loud, boxed, then the URLs.
fn banner(urls: &DevUrls) -> String {
    let lines = [
        "DEVELOPMENT MODE — NOT FOR PRODUCTION",
        "",
        "Throw-away CA, automatic sign-in as a test user (dev-user),",
        "and loopback exceptions to the proxy's address rules.",
    ];
    let width = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0) + 4;
    let mut out = String::new();
    out.push_str(&format!("╔{}╗\n", "═".repeat(width)));
    for line in lines {
        let pad = width - 2 - line.chars().count();
        out.push_str(&format!("║  {line}{}║\n", " ".repeat(pad)));
    }
    out.push_str(&format!("╚{}╝\n\n", "═".repeat(width)));
    out.push_str(&format!(
        "  Open {} to sign in as the sample client\n\n",
        urls.sample_app
    ));
    for (label, value) in [
        ("sign-in link", urls.start.as_str()),
        ("proxy metadata", urls.metadata.as_str()),
        ("admin health", &format!("{}/healthz", urls.admin)),
        ("sample client_id", urls.client_id.as_str()),
        ("dev provider", urls.idp.as_str()),
        ("generated CA", &urls.ca_file.display().to_string()),
    ] {
        out.push_str(&format!("  {label:<17} {value}\n"));
    }
    out.push_str("\n  Press Ctrl-C to stop.");
    out
}

/// What the generated proxy configuration is made of.
struct ProxySetup<'a> {
    listen: SocketAddr,
    admin_listen: SocketAddr,
    idp_issuer: &'a str,
    doc_port: u16,
    ca_file: &'a Path,
    secret_file: &'a Path,
    seal_file: &'a Path,
    signing_file: &'a Path,
}

/// The proxy's configuration, as an operator would write it, plus the three
/// loopback exceptions the module comment lists. Secrets are referenced by
/// file, as `serve` requires, and so are the proxy's id_token keys.
fn proxy_config(setup: &ProxySetup<'_>) -> Result<Config, DevError> {
    let url = |key: &str, text: &str| {
        Url::parse(text).map_err(|error| DevError::Proxy(ServeError::Config(invalid(key, &error))))
    };
    let mut clients = BTreeMap::new();
    clients.insert(
        UPSTREAM_CLIENT_NAME.to_owned(),
        UpstreamClient {
            client_id: UPSTREAM_CLIENT_ID.to_owned(),
            auth_method: UpstreamAuthMethod::ClientSecretBasic,
            client_secret: Some(SecretSource::File(setup.secret_file.to_owned())),
            private_key_file: None,
            redirect_mode: RedirectMode::Relay,
        },
    );
    Ok(Config {
        server: ServerConfig {
            public_url: Some(url(
                "server.public_url",
                &format!("http://{}", setup.listen),
            )?),
            listen: setup.listen,
            admin_listen: setup.admin_listen,
            // Ctrl-C stops development mode at once: nothing to drain.
            drain: std::time::Duration::ZERO,
            ..ServerConfig::default()
        },
        upstream: UpstreamConfig {
            issuer: Some(url("upstream.issuer", setup.idp_issuer)?),
            clients,
            ..UpstreamConfig::default()
        },
        fetch: FetchConfig {
            allowed_ports: vec![setup.doc_port],
            allow_cidrs: vec![ipnet::IpNet::from(IpAddr::V4(Ipv4Addr::LOCALHOST))],
            extra_root_certs: Some(setup.ca_file.to_owned()),
            ..FetchConfig::default()
        },
        policy: PolicyConfig {
            default_action: Action::Warn,
            default_upstream_client: Some(UPSTREAM_CLIENT_NAME.to_owned()),
            loopback_only_redirects: Action::Warn,
            ..PolicyConfig::default()
        },
        seal: SealConfig {
            keys: Some(SecretSource::File(setup.seal_file.to_owned())),
            ..SealConfig::default()
        },
        signing: SigningConfig {
            keys_file: Some(setup.signing_file.to_owned()),
        },
        ..Config::default()
    })
}

/// A URL formatted from a socket address did not parse (it cannot, but
/// the generated configuration reports it as any configuration would).
fn invalid(key: &str, error: &url::ParseError) -> crate::config::ConfigError {
    crate::config::ConfigError::Invalid(vec![crate::config::Problem {
        key: key.to_owned(),
        message: error.to_string(),
    }])
}

fn local_addr(listener: &TcpListener, service: &'static str) -> Result<SocketAddr, DevError> {
    listener
        .local_addr()
        .map_err(|error| DevError::Bind { service, error })
}

async fn bind_ephemeral(service: &'static str) -> Result<(TcpListener, SocketAddr), DevError> {
    let listener = TcpListener::bind(EPHEMERAL)
        .await
        .map_err(|error| DevError::Bind { service, error })?;
    let addr = local_addr(&listener, service)?;
    Ok((listener, addr))
}

/// A folder only this user can enter, under the system's temporary folder,
/// removed with everything in it when dropped (also on an early error).
/// Written out rather than taken from a crate: it is a dozen lines, and the
/// usual crate would bring its own system-call layer into the binary.
struct PrivateDir {
    path: PathBuf,
}

impl PrivateDir {
    fn create() -> Result<PrivateDir, DevError> {
        let path = std::env::temp_dir().join(format!("cimd-proxy-dev-{}", random_token(12)?));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        // Not `recursive`: an existing folder (or a planted symlink) of this
        // random name is an error, not something to reuse.
        builder.create(&path).map_err(|error| DevError::Files {
            path: path.clone(),
            error,
        })?;
        Ok(PrivateDir { path })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(%error, path = %self.path.display(), "cannot remove the temporary folder");
        }
    }
}

/// A fresh P-256 private key, PKCS#8 PEM (what `signing.keys_file` reads).
fn signing_key_pem() -> Result<String, DevError> {
    rcgen::KeyPair::generate()
        .map(|key| key.serialize_pem())
        .map_err(|error| DevError::Certificate(error.to_string()))
}

/// Writes a file only this user can read (the folder is private too).
fn write_private(path: &Path, contents: &str) -> Result<(), DevError> {
    let failed = |error| DevError::Files {
        path: path.to_owned(),
        error,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(failed)?;
    file.write_all(contents.as_bytes()).map_err(failed)
}

/// `bytes` random bytes as unpadded base64url.
fn random_token(bytes: usize) -> Result<String, DevError> {
    let mut buffer = vec![0u8; bytes];
    SystemRandom::new()
        .fill(&mut buffer)
        .map_err(|_| DevError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(buffer))
}

/// RFC 7636 §4.2: `BASE64URL(SHA256(verifier))`.
fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ))
}

/// Equality whose time does not depend on where two secrets first differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

/// Resolves once `stop` says so, or once its sender is gone.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// A dev service's short-lived entries (codes, tokens, pending sign-ins),
/// keyed by the random token itself: the proxy's single-use store, which
/// refuses when full rather than forgetting a live entry, so a flood of
/// sign-ins cannot grow memory or evict a real one.
struct TokenStore<V> {
    entries: SingleUse<V>,
    ttl: i64,
}

impl<V> TokenStore<V> {
    fn new(capacity: usize, ttl: Duration) -> Self {
        TokenStore {
            entries: SingleUse::new(capacity),
            ttl: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
        }
    }

    fn insert(&self, token: &str, value: V) -> Result<(), ReplayError> {
        let now = unix_now();
        self.entries
            .insert(token_key(token), value, now.saturating_add(self.ttl), now)
    }

    /// The entry, once, if it has not expired.
    fn take(&self, token: &str) -> Option<V> {
        self.entries.take(&token_key(token), unix_now())
    }
}

impl<V: Clone> TokenStore<V> {
    /// A copy of the entry if it has not expired, leaving it in place.
    fn get(&self, token: &str) -> Option<V> {
        self.entries.get(&token_key(token), unix_now())
    }
}

/// The store's key for a token: its SHA-256, so keys have one size.
fn token_key(token: &str) -> [u8; 32] {
    let mut key = [0; 32];
    key.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref());
    key
}

/// Seconds since the Unix epoch.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn only_loopback_listeners_are_accepted() {
        assert!(DevOptions::default().check().is_ok());
        let options = DevOptions {
            listen: addr("[::1]:8080"),
            admin_listen: addr("127.0.0.2:0"),
        };
        assert!(options.check().is_ok());

        let public = DevOptions {
            listen: addr("0.0.0.0:8080"),
            ..DevOptions::default()
        };
        let error = public.check().unwrap_err();
        assert!(matches!(
            error,
            DevError::NotLoopback {
                flag: "--listen",
                ..
            }
        ));
        assert!(error.to_string().contains("0.0.0.0:8080"), "{error}");

        let admin = DevOptions {
            admin_listen: addr("192.168.1.10:9090"),
            ..DevOptions::default()
        };
        assert!(matches!(
            admin.check(),
            Err(DevError::NotLoopback {
                flag: "--admin-listen",
                ..
            })
        ));
        let unspecified_v6 = DevOptions {
            listen: addr("[::]:8080"),
            ..DevOptions::default()
        };
        assert!(unspecified_v6.check().is_err());
    }

    #[test]
    fn the_two_listeners_must_differ() {
        let options = DevOptions {
            listen: DEFAULT_LISTEN,
            admin_listen: DEFAULT_LISTEN,
        };
        assert!(matches!(options.check(), Err(DevError::SameAddress(_))));
        // Port 0 twice is two different ephemeral ports.
        let ephemeral = DevOptions {
            listen: EPHEMERAL,
            admin_listen: EPHEMERAL,
        };
        assert!(ephemeral.check().is_ok());
    }

    #[test]
    fn the_private_folder_is_private_and_removed_on_drop() {
        let dir = PrivateDir::create().unwrap();
        let path = dir.path().to_owned();
        write_private(&path.join("secret"), "x").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o700);
            assert_eq!(mode(&path.join("secret")), 0o600);
        }
        assert!(
            write_private(&path.join("secret"), "y").is_err(),
            "never overwritten"
        );
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn a_token_store_gives_an_entry_once() {
        let store = TokenStore::new(1, Duration::from_secs(60));
        store.insert("code", 1).unwrap();
        assert_eq!(store.insert("other", 2), Err(ReplayError::Full));
        assert_eq!(store.get("code"), Some(1));
        assert_eq!(store.take("code"), Some(1));
        assert_eq!(store.take("code"), None, "take is single use");
        assert_eq!(store.get("nope"), None);
    }

    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn the_banner_is_loud_and_lists_the_urls() {
        let urls = DevUrls {
            sample_app: "http://127.0.0.1:5000/".into(),
            start: "http://127.0.0.1:5000/start".into(),
            proxy: "http://127.0.0.1:8080".into(),
            metadata: "http://127.0.0.1:8080/.well-known/oauth-authorization-server".into(),
            admin: "http://127.0.0.1:9090".into(),
            client_id: "https://127.0.0.1:5001/client.json".into(),
            idp: "http://127.0.0.1:5002".into(),
            ca_file: PathBuf::from("/tmp/x/ca.pem"),
        };
        let text = banner(&urls);
        assert!(text.contains("DEVELOPMENT MODE — NOT FOR PRODUCTION"));
        assert!(text.contains("Open http://127.0.0.1:5000/ to sign in as the sample client"));
        assert!(text.contains("http://127.0.0.1:9090/healthz"));
        assert!(text.contains("https://127.0.0.1:5001/client.json"));
        // Every line of the box has the same width.
        let boxed: Vec<usize> = text
            .lines()
            .take_while(|line| !line.is_empty())
            .map(|line| line.chars().count())
            .collect();
        assert!(boxed.windows(2).all(|pair| pair[0] == pair[1]), "{text}");
    }
}
