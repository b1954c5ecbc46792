//! Configuration: one TOML file, secrets only by reference.
//!
//! Loading happens in two stages. [`reader`] reads every key on its own into
//! raw values; this module then checks each value and builds the validated
//! [`Config`]. Both stages append to one list of [`Problem`]s, so an
//! operator sees everything wrong with a file in one run, each problem named
//! by its dotted key (`fetch.timeout_ms`), and the process fails once.
//!
//! Every section is optional. A file holding only `[fetch]` is a complete
//! configuration for `cimd-proxy check`; what `serve` additionally needs is
//! checked by [`Config::require_serve`].
//!
//! Each section's type belongs to the component it configures (`[fetch]` is
//! [`FetchConfig`] in `egress`, `[trust]` is [`TrustConfig`] in `trust`, …);
//! this module only reads the file into them and checks what spans sections
//! (an upstream client a policy rule names, a trust issuer's port). Files the
//! configuration names (PEM roots, JWK Sets) are read by their component when
//! it is built; a caller that wants their problems listed with the others
//! passes a [`FileCheck`] (`serve`, `check`, `config check` and a reload do,
//! through `preflight`).

mod reader;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use jsonwebtoken::Algorithm;
use strum::VariantNames;
use url::Url;

use crate::cache::CacheConfig;
use crate::egress::FetchConfig;
use crate::id_token::SigningConfig;
use crate::policy::{
    Action, ClientIdPattern, PolicyConfig, RegistrationPolicy, RegistrationTier, RuleConfig,
};
use crate::seal::SealConfig;
use crate::secret::SecretSource;
use crate::trust::{DEFAULT_STATEMENT_ALGORITHMS, IssuerConfig, IssuerKeys, TrustConfig};
use crate::upstream::{
    Profile, RedirectMode, RelayedClient, Translation, UpstreamAuthMethod, UpstreamClient,
    UpstreamConfig, normalise_resource,
};
use reader::Section;

/// A file the configuration names, which its component reads when built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamedFile<'a> {
    /// PEM CA certificates (`fetch.extra_root_certs`, `upstream.extra_root_certs`,
    /// `store.root_certs`).
    RootCertificates(&'a Path),
    /// A public JWK Set (a trust issuer's `jwks_file`).
    JwkSet(&'a Path),
    /// The organisation's logo (`pages.logo_file`): a raster image.
    Logo(&'a Path),
}

/// Reads a [`NamedFile`] as its component would; `Err` is the problem's
/// message (it names the file, never its contents).
pub type FileCheck<'a> = &'a dyn Fn(NamedFile<'_>) -> Result<(), String>;

/// The whole validated configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// `[server]`: where the proxy listens and what it calls itself.
    pub server: ServerConfig,
    /// `[upstream]`: the identity provider and its pre-registered clients.
    pub upstream: UpstreamConfig,
    /// `[fetch]`: the limits of the hardened fetcher.
    pub fetch: FetchConfig,
    /// `[cache]`: the document cache.
    pub cache: CacheConfig,
    /// `[policy]`: which clients are allowed, warned about or denied.
    pub policy: PolicyConfig,
    /// `[seal]`: the keys that seal state, codes and refresh tokens.
    pub seal: SealConfig,
    /// `[signing]`: the proxy's own id_token signing keys.
    pub signing: SigningConfig,
    /// `[trust]`: the parties whose software statements vouch for clients.
    pub trust: TrustConfig,
    /// `[resource]`: the protected resource beside the sidecar, if any.
    pub resource: Option<ResourceConfig>,
    /// `[store]`: where single-use values and refresh families are kept.
    pub store: crate::store::StoreConfig,
    /// `[pages]`: whose service the consent and error pages name.
    pub pages: crate::server::pages::PagesConfig,
    /// `[gate]`: the ingress's authorization check (gate mode).
    pub gate: crate::gate::config::GateConfig,
    /// `[inventory]`: the clients the proxy has seen.
    pub inventory: crate::inventory::InventoryConfig,
    /// `[admin]`: the admin API's token and what it protects.
    pub admin: crate::admin::AdminConfig,
    /// `[registration]`: the dynamic registration endpoint (RFC 7591).
    pub registration: crate::registration::RegistrationConfig,
}

/// `[resource]`: RFC 9728 metadata for the MCP server (or API) beside the
/// sidecar, and the resources the proxy grants tokens for (RFC 8707).
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceConfig {
    /// The resource identifier (the MCP server's URL): the first of
    /// `resource`, the one the protected resource metadata describes.
    pub resource: Url,
    /// The other identifiers `resource` lists: tokens may be asked for
    /// them too.
    pub additional: Vec<Url>,
    /// The scopes the resource understands.
    pub scopes_supported: Vec<String>,
}

impl ResourceConfig {
    /// Every resource tokens are granted for, the described one first.
    pub fn identifiers(&self) -> impl Iterator<Item = &Url> {
        std::iter::once(&self.resource).chain(&self.additional)
    }
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// The proxy's public URL, which is also its OAuth issuer identifier.
    pub public_url: Option<Url>,
    /// The public listener (authorization endpoints).
    pub listen: SocketAddr,
    /// The admin listener (metrics and health).
    pub admin_listen: SocketAddr,
    /// Connections held open at once on the public listener.
    pub max_connections: usize,
    /// After SIGTERM: how long the listeners keep serving, every response
    /// with `Connection: close`, before requests in flight are finished.
    pub drain: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            public_url: None,
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            admin_listen: SocketAddr::from(([0, 0, 0, 0], 9090)),
            max_connections: 1024,
            drain: Duration::from_secs(5),
        }
    }
}

/// One thing wrong with a configuration, named by its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The dotted key path, e.g. `fetch.timeout_ms`.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl Problem {
    /// A problem with `key`.
    pub fn new(key: &str, message: impl Into<String>) -> Self {
        Problem {
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("configuration file {path} is not valid TOML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The file is TOML, but values are wrong; every problem is listed.
    #[error("{}", render_problems(.0))]
    Invalid(Vec<Problem>),
}

fn render_problems(problems: &[Problem]) -> String {
    let mut out = format!(
        "configuration has {} problem{}:",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for problem in problems {
        out.push_str("\n  ");
        out.push_str(&problem.to_string());
    }
    out
}

impl Config {
    /// Reads and validates a configuration file, reporting every problem at
    /// once. The files it names are not read (their components read them).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_checking(path, &|_| Ok(()))
    }

    /// [`Config::load`], with every file the configuration names read by
    /// `check_file` too, its problems listed with the others under their keys.
    pub fn load_checking(path: &Path, check_file: FileCheck<'_>) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml_str_checking(&text, path.parent(), check_file).map_err(
            |error| match error {
                ConfigError::Syntax { message, .. } => ConfigError::Syntax {
                    path: path.to_owned(),
                    message,
                },
                other => other,
            },
        )
    }

    /// Validates configuration text. Relative file paths in it are resolved
    /// against `base_dir` (the configuration file's folder) when given; the
    /// files are not read.
    pub fn from_toml_str(text: &str, base_dir: Option<&Path>) -> Result<Config, ConfigError> {
        Config::from_toml_str_checking(text, base_dir, &|_| Ok(()))
    }

    /// [`Config::from_toml_str`], with every file named checked by `check_file`.
    pub fn from_toml_str_checking(
        text: &str,
        base_dir: Option<&Path>,
        check_file: FileCheck<'_>,
    ) -> Result<Config, ConfigError> {
        let table: toml::Table =
            text.parse()
                .map_err(|error: toml::de::Error| ConfigError::Syntax {
                    path: PathBuf::new(),
                    message: error.to_string().trim_end().to_owned(),
                })?;
        let mut problems = Vec::new();
        let mut root = Section::root(&table);
        let files = FileResolver {
            base_dir,
            check_file,
        };

        let server = root.read("server", &mut problems, read_server);
        let mut upstream = root.read("upstream", &mut problems, |section, problems| {
            read_upstream(section, &files, problems)
        });
        let fetch = root.read("fetch", &mut problems, |section, problems| {
            read_fetch(section, &files, problems)
        });
        let cache = root.read("cache", &mut problems, read_cache);
        let trust = root.read("trust", &mut problems, |section, problems| {
            read_trust(section, &files, &fetch, problems)
        });
        let policy = root.read("policy", &mut problems, |section, problems| {
            read_policy(section, &upstream, &trust, problems)
        });
        let seal = root.read("seal", &mut problems, |section, problems| {
            read_seal(section, &files, problems)
        });
        let resource = root.read("resource", &mut problems, read_resource);
        // RFC 8707: the resources tokens are granted for are the ones the
        // proxy protects.
        upstream.translation.allowed_resources = resource.as_ref().map(|resource| {
            resource
                .identifiers()
                .map(|url| url.as_str().to_owned())
                .collect()
        });
        let store = root.read("store", &mut problems, |section, problems| {
            read_store(section, &files, problems)
        });
        let signing = root.read("signing", &mut problems, |section, problems| {
            SigningConfig {
                keys_file: section
                    .get::<String>("keys_file", problems)
                    .map(|file| files.resolve(&file)),
            }
        });

        let pages = root.read("pages", &mut problems, |section, problems| {
            read_pages(section, &files, problems)
        });
        let gate = root.read("gate", &mut problems, read_gate);
        let inventory = root.read("inventory", &mut problems, |section, problems| {
            let defaults = crate::inventory::InventoryConfig::default();
            crate::inventory::InventoryConfig {
                max_entries: section
                    .get_between("max_entries", 1, 1_000_000, problems)
                    .map_or(defaults.max_entries, |n| n as usize),
            }
        });
        let admin = root.read("admin", &mut problems, |section, problems| {
            let token = read_secret_source(section, "token_env", "token_file", &files, problems);
            let protect_reads = section.get("protect_reads", problems).unwrap_or(false);
            if protect_reads && token.is_none() {
                problems.push(Problem::new(
                    &section.key_path("protect_reads"),
                    "needs a token: set admin.token_env or admin.token_file",
                ));
            }
            crate::admin::AdminConfig {
                token,
                protect_reads,
            }
        });
        let registration = root.read("registration", &mut problems, |section, problems| {
            read_registration(section, &files, &trust, problems)
        });

        root.finish(&mut problems);
        if problems.is_empty() {
            Ok(Config {
                server,
                upstream,
                fetch,
                cache,
                policy,
                seal,
                signing,
                trust,
                resource,
                store,
                pages,
                gate,
                inventory,
                admin,
                registration,
            })
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Checks what `serve` needs beyond what `check` needs, reporting every
    /// missing piece at once.
    pub fn require_serve(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.server.public_url.is_none() {
            problems.push(Problem::new("server.public_url", "required to serve"));
        }
        if self.upstream.issuer.is_none() {
            problems.push(Problem::new("upstream.issuer", "required to serve"));
        }
        // A gate-only deployment relays no sign-in: the provider knows the
        // clients by their URLs.
        if self.upstream.clients.is_empty() && !self.gate.enabled {
            problems.push(Problem::new(
                "upstream.clients",
                "at least one pre-registered client is required to serve",
            ));
        }
        if self.seal.keys.is_none() {
            problems.push(Problem::new(
                "seal",
                "keys_env or keys_file is required to serve",
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

/// Resolves file names in the configuration relative to the file itself,
/// and has the caller's [`FileCheck`] read the ones a component will read.
struct FileResolver<'a> {
    base_dir: Option<&'a Path>,
    check_file: FileCheck<'a>,
}

impl FileResolver<'_> {
    fn resolve(&self, name: &str) -> PathBuf {
        match self.base_dir {
            Some(base) if Path::new(name).is_relative() => base.join(name),
            _ => PathBuf::from(name),
        }
    }

    /// Whether `file` passed the check; a failure is a problem of `key`.
    fn check(&self, key: &str, file: NamedFile<'_>, problems: &mut Vec<Problem>) -> bool {
        match (self.check_file)(file) {
            Ok(()) => true,
            Err(message) => {
                problems.push(Problem::new(key, message));
                false
            }
        }
    }
}

/// One of `T`'s names (its strum table), `default` when the key is absent;
/// `None` (and a problem) for any other value.
fn read_choice<T: FromStr + VariantNames>(
    section: &mut Section<'_>,
    key: &'static str,
    default: T,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    let Some(value) = section.get::<String>(key, problems) else {
        return Some(default);
    };
    value.parse().ok().or_else(|| {
        let names: Vec<String> = T::VARIANTS.iter().map(|name| format!("{name:?}")).collect();
        let expected = match names.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        };
        problems.push(Problem::new(
            &section.key_path(key),
            format!("expected {expected}, found {value:?}"),
        ));
        None
    })
}

fn read_server(section: &mut Section<'_>, problems: &mut Vec<Problem>) -> ServerConfig {
    let defaults = ServerConfig::default();
    let public_url = section
        .get::<String>("public_url", problems)
        .and_then(|value| {
            let key = section.key_path("public_url");
            parse_public_url(&value)
                .map_err(|message| problems.push(Problem::new(&key, message)))
                .ok()
        });
    ServerConfig {
        public_url,
        listen: read_socket_addr(section, "listen", problems).unwrap_or(defaults.listen),
        admin_listen: read_socket_addr(section, "admin_listen", problems)
            .unwrap_or(defaults.admin_listen),
        max_connections: section
            .get_between("max_connections", 1, 1_000_000, problems)
            .and_then(|value| usize::try_from(value).ok())
            .unwrap_or(defaults.max_connections),
        drain: section
            .get_between("drain_s", 0, 300, problems)
            .map_or(defaults.drain, Duration::from_secs),
    }
}

/// The issuer identifier rules of RFC 8414 §2: https, no query, no fragment.
/// Plain http is tolerated only on loopback, for development.
fn parse_public_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|error| format!("not a URL ({error}): {value:?}"))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    };
    if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
        return Err(format!(
            "must be an https URL (http only on loopback): {value:?}"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("must not have a query or fragment: {value:?}"));
    }
    Ok(url)
}

fn read_socket_addr(
    section: &mut Section<'_>,
    key: &'static str,
    problems: &mut Vec<Problem>,
) -> Option<SocketAddr> {
    let value = section.get::<String>(key, problems)?;
    match value.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            problems.push(Problem::new(
                &section.key_path(key),
                format!("expected \"ip:port\", found {value:?}"),
            ));
            None
        }
    }
}

fn read_url(
    section: &mut Section<'_>,
    key: &'static str,
    problems: &mut Vec<Problem>,
) -> Option<Url> {
    let value = section.get::<String>(key, problems)?;
    match Url::parse(&value) {
        Ok(url) if url.scheme() == "https" || url.scheme() == "http" => Some(url),
        _ => {
            problems.push(Problem::new(
                &section.key_path(key),
                format!("expected an http(s) URL, found {value:?}"),
            ));
            None
        }
    }
}

fn read_upstream(
    section: &mut Section<'_>,
    files: &FileResolver<'_>,
    problems: &mut Vec<Problem>,
) -> UpstreamConfig {
    let translation = read_translation(section, problems);
    let defaults = UpstreamConfig::default();
    let timeout = section
        .get_between("timeout_ms", 1, 120_000, problems)
        .map_or(defaults.timeout, Duration::from_millis);
    let extra_root_certs = section
        .get::<String>("extra_root_certs", problems)
        .filter(|file| !file.is_empty())
        .map(|file| files.resolve(&file));
    if let Some(file) = &extra_root_certs {
        let key = section.key_path("extra_root_certs");
        files.check(&key, NamedFile::RootCertificates(file), problems);
    }
    let mut config = UpstreamConfig {
        issuer: read_url(section, "issuer", problems),
        authorization_endpoint: read_url(section, "authorization_endpoint", problems),
        token_endpoint: read_url(section, "token_endpoint", problems),
        translation,
        timeout,
        extra_root_certs,
        clients: BTreeMap::new(),
        relayed_clients: Vec::new(),
        discovery_refresh: section
            .get_between("discovery_refresh_s", 1, 3600, problems)
            .map_or(defaults.discovery_refresh, Duration::from_secs),
    };
    for (name, mut client) in section.named_tables("clients", problems) {
        if let Some(parsed) = read_upstream_client(&mut client, files, problems) {
            config.clients.insert(name.to_owned(), parsed);
        }
        client.finish(problems);
    }
    for mut relayed in section.array_of_tables("relayed_clients", problems) {
        if let Some(parsed) = read_relayed_client(&mut relayed, &config, problems) {
            config.relayed_clients.push(parsed);
        }
        relayed.finish(problems);
    }
    config
}

/// `profile` and the keys it sets defaults for, resolved into one
/// [`Translation`]: the operator's keys win over the profile's defaults.
fn read_translation(section: &mut Section<'_>, problems: &mut Vec<Problem>) -> Translation {
    let profile = read_choice(section, "profile", Profile::default(), problems).unwrap_or_default();
    let mut translation = Translation::for_profile(profile);
    if let Some(parameter) = read_choice(
        section,
        "resource_parameter",
        translation.resource_parameter,
        problems,
    ) {
        translation.resource_parameter = parameter;
    }
    for (key, value) in [
        ("offline_access", &mut translation.offline_access),
        ("qualify_scopes", &mut translation.qualify_scopes),
        (
            "resource_requires_scope",
            &mut translation.resource_requires_scope,
        ),
        ("access_type_offline", &mut translation.access_type_offline),
    ] {
        if let Some(set) = section.get::<bool>(key, problems) {
            *value = set;
        }
    }
    let key = section.key_path("resource_scopes");
    for (resource, scopes) in section
        .get::<BTreeMap<String, String>>("resource_scopes", problems)
        .unwrap_or_default()
    {
        // Compared with requests in one form: the URL parser's.
        match normalise_resource(&resource) {
            Ok(resource) => {
                translation.resource_scopes.insert(resource, scopes);
            }
            Err(error) => problems.push(Problem::new(&key, format!("{resource:?}: {error}"))),
        }
    }
    translation
}

/// `[[upstream.relayed_clients]]`: a pre-registered client relayed like a
/// CIMD client. Its client_id must be one a request could not mistake for a
/// CIMD client_id, and appear once.
fn read_relayed_client(
    section: &mut Section<'_>,
    upstream: &UpstreamConfig,
    problems: &mut Vec<Problem>,
) -> Option<RelayedClient> {
    let client_id = section.require::<String>("client_id", problems);
    let auth_method = read_choice(section, "auth_method", UpstreamAuthMethod::None, problems);
    let redirect_uris = section.require::<Vec<String>>("redirect_uris", problems);
    let client_name = section.get::<String>("client_name", problems);
    if let Some(id) = &client_id {
        let problem = if id.is_empty() {
            Some("must not be empty".to_owned())
        } else if crate::client_id::is_url_client_id(id) {
            Some(
                "is an https URL: such a client_id is a CIMD client, admitted by its document"
                    .to_owned(),
            )
        } else if upstream.relayed_clients.iter().any(|c| c.client_id() == id) {
            Some(format!("\"{id}\" is listed twice"))
        } else {
            None
        };
        if let Some(problem) = problem {
            problems.push(Problem::new(&section.key_path("client_id"), problem));
        }
    }
    // The client's own secret travels with its token requests and the
    // provider checks it; an assertion signed for the proxy's token
    // endpoint would not verify at the provider's.
    if auth_method == Some(UpstreamAuthMethod::PrivateKeyJwt) {
        problems.push(Problem::new(
            &section.key_path("auth_method"),
            "private_key_jwt cannot be relayed: the client's assertion names the proxy, not the provider; use \"none\", \"client_secret_basic\" or \"client_secret_post\"",
        ));
    }
    if let Some(uris) = &redirect_uris {
        if uris.is_empty() {
            problems.push(Problem::new(
                &section.key_path("redirect_uris"),
                "must list at least one redirect URI",
            ));
        }
        for (index, uri) in uris.iter().enumerate() {
            if let Err(reason) = crate::metadata::check_redirect_uri(uri) {
                problems.push(Problem::new(
                    &section.key_path("redirect_uris"),
                    format!("entry {index} {reason}"),
                ));
            }
        }
    }
    Some(RelayedClient {
        registration: UpstreamClient {
            client_id: client_id?,
            auth_method: auth_method?,
            client_secret: None,
            private_key_file: None,
            redirect_mode: RedirectMode::Relay,
        },
        redirect_uris: redirect_uris?,
        client_name,
    })
}

fn read_upstream_client(
    section: &mut Section<'_>,
    files: &FileResolver<'_>,
    problems: &mut Vec<Problem>,
) -> Option<UpstreamClient> {
    let client_id = section.require::<String>("client_id", problems);
    let auth_method = read_choice(
        section,
        "auth_method",
        UpstreamAuthMethod::ClientSecretBasic,
        problems,
    );
    let client_secret = read_secret_source(
        section,
        "client_secret_env",
        "client_secret_file",
        files,
        problems,
    );
    let private_key_file = section
        .get::<String>("private_key_file", problems)
        .map(|file| files.resolve(&file));
    let redirect_mode =
        read_choice(section, "redirect_mode", RedirectMode::Relay, problems).unwrap_or_default();
    let auth_method = auth_method?;
    match auth_method {
        UpstreamAuthMethod::ClientSecretBasic | UpstreamAuthMethod::ClientSecretPost
            if client_secret.is_none() =>
        {
            problems.push(Problem::new(
                &section.key_path("client_secret_env"),
                "client_secret_env or client_secret_file is required for this auth_method",
            ));
        }
        UpstreamAuthMethod::PrivateKeyJwt if private_key_file.is_none() => {
            problems.push(Problem::new(
                &section.key_path("private_key_file"),
                "required for auth_method = \"private_key_jwt\"",
            ));
        }
        _ => {}
    }
    Some(UpstreamClient {
        client_id: client_id?,
        auth_method,
        client_secret,
        private_key_file,
        redirect_mode,
    })
}

/// Reads a secret reference given either as an environment variable name or
/// a file name (exactly one). The value itself is read when it is used.
fn read_secret_source(
    section: &mut Section<'_>,
    env_key: &'static str,
    file_key: &'static str,
    files: &FileResolver<'_>,
    problems: &mut Vec<Problem>,
) -> Option<SecretSource> {
    let env = section.get::<String>(env_key, problems);
    let file = section.get::<String>(file_key, problems);
    match (env, file) {
        (Some(_), Some(_)) => {
            problems.push(Problem::new(
                &section.key_path(env_key),
                format!("set either {env_key} or {file_key}, not both"),
            ));
            None
        }
        (Some(var), None) if var.is_empty() => {
            problems.push(Problem::new(
                &section.key_path(env_key),
                "must name an environment variable",
            ));
            None
        }
        (Some(var), None) => Some(SecretSource::Env(var)),
        (None, Some(file)) => Some(SecretSource::File(files.resolve(&file))),
        (None, None) => None,
    }
}

fn read_fetch(
    section: &mut Section<'_>,
    files: &FileResolver<'_>,
    problems: &mut Vec<Problem>,
) -> FetchConfig {
    let defaults = FetchConfig::default();
    let timeout = section
        .get_between("timeout_ms", 1, 60_000, problems)
        .map(Duration::from_millis);
    let max_document_bytes = section.get_between("max_document_bytes", 1, 1 << 20, problems);
    let max_logo_bytes = section.get_between("max_logo_bytes", 1, 1 << 20, problems);
    let max_response_header_bytes =
        section.get_between("max_response_header_bytes", 1024, 1 << 16, problems);
    let max_concurrent_fetches = section.get_between("max_concurrent_fetches", 1, 4096, problems);
    let max_concurrent_logo_fetches =
        section.get_between("max_concurrent_logo_fetches", 1, 256, problems);
    let logo_prefetch_queue = section.get_between("logo_prefetch_queue", 1, 65_536, problems);

    let allowed_ports = section
        .get::<Vec<u16>>("allowed_ports", problems)
        .and_then(|ports| {
            if ports.is_empty() || ports.contains(&0) {
                problems.push(Problem::new(
                    &section.key_path("allowed_ports"),
                    "must list at least one port, each from 1 to 65535",
                ));
                None
            } else {
                Some(ports)
            }
        });
    let dns_servers = read_list(section, "dns_servers", problems, parse_dns_server);
    let allow_cidrs = read_list(section, "allow_cidrs", problems, parse_cidr);
    let deny_cidrs = read_list(section, "deny_cidrs", problems, parse_cidr);
    let extra_root_certs = section
        .get::<String>("extra_root_certs", problems)
        .filter(|file| !file.is_empty())
        .map(|file| files.resolve(&file));
    if let Some(file) = &extra_root_certs {
        let key = section.key_path("extra_root_certs");
        files.check(&key, NamedFile::RootCertificates(file), problems);
    }

    FetchConfig {
        timeout: timeout.unwrap_or(defaults.timeout),
        max_document_bytes: max_document_bytes.map_or(defaults.max_document_bytes, |n| n as usize),
        max_logo_bytes: max_logo_bytes.map_or(defaults.max_logo_bytes, |n| n as usize),
        max_response_header_bytes: max_response_header_bytes
            .map_or(defaults.max_response_header_bytes, |n| n as usize),
        allowed_ports: allowed_ports.unwrap_or(defaults.allowed_ports),
        dns_servers: dns_servers.unwrap_or_default(),
        allow_cidrs: allow_cidrs.unwrap_or_default(),
        deny_cidrs: deny_cidrs.unwrap_or_default(),
        extra_root_certs,
        max_concurrent_fetches: max_concurrent_fetches
            .map_or(defaults.max_concurrent_fetches, |n| n as usize),
        max_concurrent_logo_fetches: max_concurrent_logo_fetches
            .map_or(defaults.max_concurrent_logo_fetches, |n| n as usize),
        logo_prefetch_queue: logo_prefetch_queue
            .map_or(defaults.logo_prefetch_queue, |n| n as usize),
    }
}

/// Reads an array of strings, parsing each; every bad element is a problem
/// of its own, named by index.
fn read_list<T>(
    section: &mut Section<'_>,
    key: &'static str,
    problems: &mut Vec<Problem>,
    parse: fn(&str) -> Result<T, String>,
) -> Option<Vec<T>> {
    let values = section.get::<Vec<String>>(key, problems)?;
    let mut parsed = Vec::with_capacity(values.len());
    let mut ok = true;
    for (index, value) in values.iter().enumerate() {
        match parse(value) {
            Ok(item) => parsed.push(item),
            Err(message) => {
                ok = false;
                problems.push(Problem::new(
                    &format!("{}[{index}]", section.key_path(key)),
                    message,
                ));
            }
        }
    }
    ok.then_some(parsed)
}

/// `"ip:port"`, or a bare IP meaning port 53.
fn parse_dns_server(value: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    value
        .parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("expected \"ip:port\" or an IP address, found {value:?}"))
}

/// A CIDR block; a bare address means that one host.
fn parse_cidr(value: &str) -> Result<IpNet, String> {
    if let Ok(net) = value.parse::<IpNet>() {
        if net.trunc() != net {
            return Err(format!(
                "{value:?} has host bits set; did you mean {}?",
                net.trunc()
            ));
        }
        return Ok(net);
    }
    value
        .parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("expected a CIDR block like \"10.0.0.0/8\", found {value:?}"))
}

fn read_gate(
    section: &mut Section<'_>,
    problems: &mut Vec<Problem>,
) -> crate::gate::config::GateConfig {
    use crate::gate::config::GateConfig;
    let defaults = GateConfig::default();
    let enabled = section.get::<bool>("enabled", problems).unwrap_or(false);
    let mut paths = |key: &'static str| {
        let present = section.has(key);
        let paths = read_list(section, key, problems, GateConfig::check_path);
        // A list with a bad element is reported element by element already.
        if enabled && (!present || paths.as_ref().is_some_and(Vec::is_empty)) {
            problems.push(Problem::new(
                &section.key_path(key),
                "required when the gate is enabled: the provider's endpoint paths",
            ));
        }
        paths.unwrap_or_default()
    };
    let authorization_paths = paths("authorization_paths");
    let token_paths = paths("token_paths");
    let accel_redirect = section.get::<String>("accel_redirect", problems);
    if let Some(location) = &accel_redirect
        && (!(location.starts_with('@') || location.starts_with('/'))
            || location.chars().any(|c| c.is_ascii_control() || c == ' '))
    {
        problems.push(Problem::new(
            &section.key_path("accel_redirect"),
            format!("expected an NGINX location (\"@name\" or \"/path\"), found {location:?}"),
        ));
    }
    let consent_path = section
        .get::<String>("consent_path", problems)
        .and_then(|path| {
            let plain = path.starts_with('/')
                && !path.contains(['?', '#'])
                && !path
                    .chars()
                    .any(|c| c.is_ascii_control() || c.is_whitespace());
            if !plain {
                problems.push(Problem::new(
                    &section.key_path("consent_path"),
                    format!("expected an absolute path without query or fragment, found {path:?}"),
                ));
            }
            plain.then_some(path)
        })
        .unwrap_or(defaults.consent_path);
    let ingress = read_choice(section, "ingress", defaults.ingress, problems).unwrap_or_default();
    GateConfig {
        enabled,
        ingress,
        consent_path,
        listen: read_socket_addr(section, "listen", problems).unwrap_or(defaults.listen),
        authorization_paths,
        token_paths,
        accel_redirect,
    }
}

fn read_cache(section: &mut Section<'_>, problems: &mut Vec<Problem>) -> CacheConfig {
    let defaults = CacheConfig::default();
    // The MCP guidance caps document lifetimes at 24 hours.
    const DAY_S: u64 = 86_400;
    let mut seconds =
        |section: &mut Section<'_>, key: &'static str, default: Duration| match section
            .get::<u64>(key, problems)
        {
            Some(value) if value <= DAY_S => Duration::from_secs(value),
            Some(value) => {
                problems.push(Problem::new(
                    &section.key_path(key),
                    format!("must be at most {DAY_S} (24 hours), found {value}"),
                ));
                default
            }
            None => default,
        };
    let min_ttl = seconds(section, "min_ttl_s", defaults.min_ttl);
    let max_ttl = seconds(section, "max_ttl_s", defaults.max_ttl);
    let default_ttl = seconds(section, "default_ttl_s", defaults.default_ttl);
    let stale_if_error = seconds(section, "stale_if_error_s", defaults.stale_if_error);
    if min_ttl > max_ttl {
        problems.push(Problem::new(
            &section.key_path("min_ttl_s"),
            "must not be greater than cache.max_ttl_s",
        ));
    }
    if default_ttl < min_ttl || default_ttl > max_ttl {
        problems.push(Problem::new(
            &section.key_path("default_ttl_s"),
            "must lie between cache.min_ttl_s and cache.max_ttl_s",
        ));
    }
    let max_entries = match section.get::<u64>("max_entries", problems) {
        Some(0) => {
            problems.push(Problem::new(
                &section.key_path("max_entries"),
                "must be at least 1",
            ));
            defaults.max_entries
        }
        Some(n) => n,
        None => defaults.max_entries,
    };
    CacheConfig {
        min_ttl,
        max_ttl,
        default_ttl,
        max_entries,
        stale_if_error,
    }
}

fn read_action(
    section: &mut Section<'_>,
    key: &'static str,
    value: Option<String>,
    problems: &mut Vec<Problem>,
) -> Option<Action> {
    let value = value?;
    match value.parse() {
        Ok(action) => Some(action),
        Err(_) => {
            problems.push(Problem::new(
                &section.key_path(key),
                format!("expected \"allow\", \"warn\" or \"deny\", found {value:?}"),
            ));
            None
        }
    }
}

/// An upstream client name only has to exist once upstream clients are
/// configured at all: a `check`-only file has none.
fn check_upstream_name(
    upstream: &UpstreamConfig,
    section: &Section<'_>,
    key: &str,
    name: Option<&str>,
    problems: &mut Vec<Problem>,
) {
    if let Some(name) = name {
        if !upstream.clients.is_empty() && !upstream.clients.contains_key(name) {
            problems.push(Problem::new(
                &section.key_path(key),
                format!("names no [upstream.clients.{name}]"),
            ));
        }
    }
}

fn read_policy(
    section: &mut Section<'_>,
    upstream: &UpstreamConfig,
    trust: &TrustConfig,
    problems: &mut Vec<Problem>,
) -> PolicyConfig {
    let defaults = PolicyConfig::default();
    let default_upstream_client = section.get::<String>("default_upstream_client", problems);
    check_upstream_name(
        upstream,
        section,
        "default_upstream_client",
        default_upstream_client.as_deref(),
        problems,
    );
    let default_action = section.get("default_action", problems);
    let loopback_only_redirects = section.get("loopback_only_redirects", problems);
    let mut policy = PolicyConfig {
        default_action: read_action(section, "default_action", default_action, problems)
            .unwrap_or(defaults.default_action),
        default_upstream_client,
        loopback_only_redirects: read_action(
            section,
            "loopback_only_redirects",
            loopback_only_redirects,
            problems,
        )
        .unwrap_or(defaults.loopback_only_redirects),
        interstitial: read_choice(section, "interstitial", defaults.interstitial, problems)
            .unwrap_or_default(),
        on_metadata_change: read_choice(
            section,
            "on_metadata_change",
            defaults.on_metadata_change,
            problems,
        )
        .unwrap_or_default(),
        new_client_warning: section
            .has("new_client_warning")
            .then(|| section.read("new_client_warning", problems, read_new_client_warning)),
        rules: Vec::new(),
        registration: defaults.registration.clone(),
    };
    for mut rule in section.array_of_tables("rules", problems) {
        let require_statement_from =
            read_statement_issuers(&mut rule, "require_statement_from", trust, problems);
        // A rule about trust alone ("whoever our registry vouches for")
        // needs no pattern: it then covers every client_id.
        let client_id = match rule.get::<String>("client_id", problems) {
            Some(pattern) => ClientIdPattern::new(&pattern)
                .map_err(|message| {
                    problems.push(Problem::new(&rule.key_path("client_id"), message))
                })
                .ok(),
            None if require_statement_from.is_some() => ClientIdPattern::new("https://**").ok(),
            None => {
                problems.push(Problem::new(
                    &rule.key_path("client_id"),
                    "required (or require_statement_from)",
                ));
                None
            }
        };
        let action = rule.require("action", problems);
        let action = read_action(&mut rule, "action", action, problems);
        let upstream_client = rule.get::<String>("upstream_client", problems);
        check_upstream_name(
            upstream,
            &rule,
            "upstream_client",
            upstream_client.as_deref(),
            problems,
        );
        let scopes = rule.get::<Vec<String>>("scopes", problems);
        rule.finish(problems);
        if let (Some(client_id), Some(action)) = (client_id, action) {
            policy.rules.push(RuleConfig {
                client_id,
                action,
                upstream_client,
                scopes,
                require_statement_from,
            });
        }
    }
    policy.registration = section.read("registration", problems, |section, problems| {
        read_registration_policy(section, upstream, trust, problems)
    });
    policy
}

/// `policy.new_client_warning = { until_users = 100, until_days = 7 }`.
fn read_new_client_warning(
    section: &mut Section<'_>,
    problems: &mut Vec<Problem>,
) -> crate::policy::NewClientWarning {
    crate::policy::NewClientWarning {
        until_users: section
            .get_between("until_users", 1, 1_000_000_000, problems)
            .unwrap_or(100),
        until_days: section
            .get_between("until_days", 1, 36_500, problems)
            .unwrap_or(7),
    }
}

/// `[policy.registration]` and its `[[policy.registration.tiers]]`.
fn read_registration_policy(
    section: &mut Section<'_>,
    upstream: &UpstreamConfig,
    trust: &TrustConfig,
    problems: &mut Vec<Problem>,
) -> RegistrationPolicy {
    let defaults = RegistrationPolicy::default();
    let action = section.get("action", problems);
    let action = read_action(section, "action", action, problems).unwrap_or(defaults.action);
    let upstream_client = section.get::<String>("upstream_client", problems);
    check_upstream_name(
        upstream,
        section,
        "upstream_client",
        upstream_client.as_deref(),
        problems,
    );
    let scopes = section.get::<Vec<String>>("scopes", problems);
    let mut tiers = Vec::new();
    for mut tier in section.array_of_tables("tiers", problems) {
        let issuers = if tier.has("issuers") {
            read_statement_issuers(&mut tier, "issuers", trust, problems)
        } else {
            problems.push(Problem::new(&tier.key_path("issuers"), "required"));
            None
        };
        let tier_action = tier.require("action", problems);
        let tier_action = read_action(&mut tier, "action", tier_action, problems);
        let tier_upstream = tier.get::<String>("upstream_client", problems);
        check_upstream_name(
            upstream,
            &tier,
            "upstream_client",
            tier_upstream.as_deref(),
            problems,
        );
        let tier_scopes = tier.get::<Vec<String>>("scopes", problems);
        tier.finish(problems);
        if let (Some(issuers), Some(action)) = (issuers, tier_action) {
            tiers.push(RegistrationTier {
                issuers,
                action,
                upstream_client: tier_upstream,
                scopes: tier_scopes,
            });
        }
    }
    RegistrationPolicy {
        action,
        upstream_client,
        scopes,
        tiers,
    }
}

/// A rule's list of issuer names: at least one, each a `[[trust.issuers]]` name.
fn read_statement_issuers(
    rule: &mut Section<'_>,
    key: &'static str,
    trust: &TrustConfig,
    problems: &mut Vec<Problem>,
) -> Option<Vec<String>> {
    let names = rule.get::<Vec<String>>(key, problems)?;
    if names.is_empty() {
        problems.push(Problem::new(
            &rule.key_path(key),
            "must name at least one [[trust.issuers]] name",
        ));
        return None;
    }
    let mut ok = true;
    for (index, name) in names.iter().enumerate() {
        if !trust.issuers.iter().any(|issuer| issuer.name == *name) {
            ok = false;
            problems.push(Problem::new(
                &format!("{}[{index}]", rule.key_path(key)),
                format!("names no [[trust.issuers]] entry with name = {name:?}"),
            ));
        }
    }
    ok.then_some(names)
}

fn read_trust(
    section: &mut Section<'_>,
    files: &FileResolver<'_>,
    fetch: &FetchConfig,
    problems: &mut Vec<Problem>,
) -> TrustConfig {
    let mut trust = TrustConfig::default();
    // Every name, even of entries with other problems, so a repeat is
    // reported however the first one fared.
    let mut names = std::collections::BTreeSet::new();
    for mut entry in section.array_of_tables("issuers", problems) {
        let name = entry.require::<String>("name", problems).and_then(|name| {
            let key = entry.key_path("name");
            if name.is_empty() {
                problems.push(Problem::new(&key, "must not be empty"));
                None
            } else if !names.insert(name.clone()) {
                problems.push(Problem::new(&key, format!("{name:?} is configured twice")));
                None
            } else {
                Some(name)
            }
        });
        let keys = read_issuer_keys(&mut entry, files, fetch, problems);
        let algorithms = match entry.get::<Vec<String>>("algorithms", problems) {
            None => Some(DEFAULT_STATEMENT_ALGORITHMS.to_vec()),
            Some(names) => read_statement_algorithms(&entry, &names, problems),
        };
        let required_claims = entry
            .get::<BTreeMap<String, String>>("required_claims", problems)
            .unwrap_or_default();
        entry.finish(problems);
        if let (Some(name), Some(keys), Some(algorithms)) = (name, keys, algorithms) {
            trust.issuers.push(IssuerConfig {
                name,
                keys,
                algorithms,
                required_claims,
            });
        }
    }
    trust
}

/// `jwks_file` XOR `jwks_uri`. The file is `trust`'s to read; when the
/// caller checks files, a bad one is a problem named by its key.
fn read_issuer_keys(
    entry: &mut Section<'_>,
    files: &FileResolver<'_>,
    fetch: &FetchConfig,
    problems: &mut Vec<Problem>,
) -> Option<IssuerKeys> {
    let file = entry.get::<String>("jwks_file", problems);
    let uri = entry.get::<String>("jwks_uri", problems);
    match (file, uri) {
        (Some(_), Some(_)) => {
            problems.push(Problem::new(
                &entry.key_path("jwks_file"),
                "set either jwks_file or jwks_uri, not both",
            ));
            None
        }
        (None, None) => {
            problems.push(Problem::new(
                &entry.key_path("jwks_file"),
                "jwks_file or jwks_uri is required",
            ));
            None
        }
        (Some(file), None) => {
            let path = files.resolve(&file);
            let key = entry.key_path("jwks_file");
            files
                .check(&key, NamedFile::JwkSet(&path), problems)
                .then_some(IssuerKeys::File(path))
        }
        (None, Some(uri)) => {
            let key = entry.key_path("jwks_uri");
            match Url::parse(&uri) {
                Ok(url) if url.scheme() == "https" && url.host().is_some() => {
                    // The fetcher refuses other ports before any lookup; say so now.
                    let port = url.port_or_known_default().unwrap_or(443);
                    if fetch.allowed_ports.contains(&port) {
                        Some(IssuerKeys::Uri(url))
                    } else {
                        problems.push(Problem::new(
                            &key,
                            format!("port {port} is not in fetch.allowed_ports"),
                        ));
                        None
                    }
                }
                _ => {
                    problems.push(Problem::new(
                        &key,
                        format!("expected an https URL, found {uri:?}"),
                    ));
                    None
                }
            }
        }
    }
}

/// Algorithm names for statements: asymmetric ones this crate verifies.
fn read_statement_algorithms(
    entry: &Section<'_>,
    names: &[String],
    problems: &mut Vec<Problem>,
) -> Option<Vec<Algorithm>> {
    let key = entry.key_path("algorithms");
    if names.is_empty() {
        problems.push(Problem::new(&key, "must list at least one algorithm"));
        return None;
    }
    let mut algorithms = Vec::with_capacity(names.len());
    let mut ok = true;
    for (index, name) in names.iter().enumerate() {
        let supported = crate::jwks::SUPPORTED_ALGS
            .iter()
            .copied()
            .find(|alg| crate::jwks::alg_name(*alg) == name);
        match supported {
            Some(alg) => algorithms.push(alg),
            None => {
                ok = false;
                let why = if name.eq_ignore_ascii_case("none") || name.starts_with("HS") {
                    format!(
                        "{name:?} is never accepted: a statement must be signed with an \
                         asymmetric key, or anyone holding the verification key could forge one"
                    )
                } else {
                    let known: Vec<&str> = crate::jwks::SUPPORTED_ALGS
                        .iter()
                        .map(|alg| crate::jwks::alg_name(*alg))
                        .collect();
                    format!(
                        "{name:?} is not supported; expected one of {}",
                        known.join(", ")
                    )
                };
                problems.push(Problem::new(&format!("{key}[{index}]"), why));
            }
        }
    }
    ok.then_some(algorithms)
}

fn read_resource(section: &mut Section<'_>, problems: &mut Vec<Problem>) -> Option<ResourceConfig> {
    let present = section.is_present();
    // One identifier, or several (`resource = ["…", "…"]`).
    let values = if present {
        match section.require::<toml::Value>("resource", problems) {
            Some(toml::Value::String(one)) => Some(vec![one]),
            Some(toml::Value::Array(several)) if !several.is_empty() => several
                .into_iter()
                .map(|value| match value {
                    toml::Value::String(text) => Some(text),
                    _ => None,
                })
                .collect::<Option<Vec<String>>>(),
            Some(_) => None,
            None => return None,
        }
    } else {
        None
    };
    let scopes_supported = section
        .get::<Vec<String>>("scopes_supported", problems)
        .unwrap_or_default();
    if present && values.is_none() {
        problems.push(Problem::new(
            &section.key_path("resource"),
            "expected a URL or a non-empty array of URLs",
        ));
    }
    let mut urls = Vec::new();
    for value in values? {
        match Url::parse(&value) {
            Ok(url)
                if (url.scheme() == "https" || url.scheme() == "http")
                    && url.fragment().is_none() =>
            {
                urls.push(url);
            }
            _ => problems.push(Problem::new(
                &section.key_path("resource"),
                format!("expected an http(s) URL without a fragment, found {value:?}"),
            )),
        }
    }
    if urls.is_empty() {
        return None;
    }
    let resource = urls.remove(0);
    Some(ResourceConfig {
        resource,
        additional: urls,
        scopes_supported,
    })
}

fn read_seal(
    section: &mut Section<'_>,
    files: &FileResolver<'_>,
    problems: &mut Vec<Problem>,
) -> SealConfig {
    let defaults = SealConfig::default();
    let keys = read_secret_source(section, "keys_env", "keys_file", files, problems);
    let code_ttl = section
        .get_between("code_ttl_s", 1, 600, problems)
        .map_or(defaults.code_ttl, Duration::from_secs);
    let state_ttl = section
        .get_between("state_ttl_s", 10, 3600, problems)
        .map_or(defaults.state_ttl, Duration::from_secs);
    let refresh_token_ttl = section
        .get_between("refresh_token_ttl_s", 60, 365 * 86_400, problems)
        .map_or(defaults.refresh_token_ttl, Duration::from_secs);
    SealConfig {
        keys,
        state_ttl,
        code_ttl,
        refresh_token_ttl,
    }
}

/// `[store]`. The URL (which carries the password) is only named here;
/// it is read when the store is built.
fn read_store(
    section: &mut Section<'_>,
    files: &FileResolver<'_>,
    problems: &mut Vec<Problem>,
) -> crate::store::StoreConfig {
    use crate::store::{Backend, StoreConfig};
    let defaults = StoreConfig::default();
    // None: a backend was named wrongly (already a problem), so the keys
    // below are not checked against either backend.
    let backend = read_choice(section, "backend", defaults.backend, problems);
    let url = read_secret_source(section, "url_env", "url_file", files, problems);
    let key_prefix = section
        .get::<String>("key_prefix", problems)
        .and_then(|prefix| {
            if prefix.len() <= 64 && prefix.bytes().all(|b| b.is_ascii_graphic()) {
                Some(prefix)
            } else {
                problems.push(Problem::new(
                    &section.key_path("key_prefix"),
                    "must be at most 64 printable ASCII characters without spaces",
                ));
                None
            }
        });
    let timeout = section
        .get_between("timeout_ms", 1, 10_000, problems)
        .map(Duration::from_millis);
    let max_entries = section.get_between("max_entries", 1, 10_000_000, problems);
    let root_certs = section
        .get::<String>("root_certs", problems)
        .filter(|file| !file.is_empty())
        .map(|file| files.resolve(&file));
    if let Some(file) = &root_certs {
        let key = section.key_path("root_certs");
        files.check(&key, NamedFile::RootCertificates(file), problems);
    }
    // Settings the memory backend would silently ignore are a mistake.
    if backend == Some(Backend::Memory) {
        for key in ["url_env", "url_file", "root_certs"] {
            if section.has(key) {
                problems.push(Problem::new(
                    &section.key_path(key),
                    "only used with backend = \"redis\"",
                ));
            }
        }
    }
    StoreConfig {
        backend: backend.unwrap_or(defaults.backend),
        url: url.unwrap_or(defaults.url),
        key_prefix: key_prefix.unwrap_or(defaults.key_prefix),
        timeout: timeout.unwrap_or(defaults.timeout),
        root_certs,
        max_entries: max_entries.map_or(defaults.max_entries, |n| n as usize),
    }
}

/// `[registration]`. The initial access token is only named here; the
/// registration endpoint reads it when it is built.
fn read_registration(
    section: &mut Section<'_>,
    files: &FileResolver<'_>,
    trust: &TrustConfig,
    problems: &mut Vec<Problem>,
) -> crate::registration::RegistrationConfig {
    let defaults = crate::registration::RegistrationConfig::default();
    let enabled = section.get::<bool>("enabled", problems);
    let lifetime = section
        .get_between("lifetime_s", 60, 365 * 86_400, problems)
        .map(Duration::from_secs);
    let max_body_bytes = section.get_between("max_body_bytes", 1024, 64 * 1024, problems);
    let per_source_limit = section.get_between("per_source_limit", 1, 1_000_000, problems);
    let global_limit = section.get_between("global_limit", 1, 100_000_000, problems);
    let window = section
        .get_between("window_s", 1, 86_400, problems)
        .map(Duration::from_secs);
    let initial_access_token = read_secret_source(
        section,
        "initial_access_token_env",
        "initial_access_token_file",
        files,
        problems,
    );
    let require_software_statement = section.get::<bool>("require_software_statement", problems);
    if require_software_statement == Some(true) && trust.issuers.is_empty() {
        problems.push(Problem::new(
            &section.key_path("require_software_statement"),
            "needs at least one [[trust.issuers]] to verify statements against",
        ));
    }
    let trusted_proxies = read_list(section, "trusted_proxies", problems, parse_cidr);
    crate::registration::RegistrationConfig {
        enabled: enabled.unwrap_or(defaults.enabled),
        lifetime: lifetime.unwrap_or(defaults.lifetime),
        max_body_bytes: max_body_bytes.map_or(defaults.max_body_bytes, |n| n as usize),
        per_source_limit: per_source_limit.unwrap_or(defaults.per_source_limit),
        global_limit: global_limit.unwrap_or(defaults.global_limit),
        window: window.unwrap_or(defaults.window),
        initial_access_token,
        require_software_statement: require_software_statement
            .unwrap_or(defaults.require_software_statement),
        trusted_proxies: trusted_proxies.unwrap_or(defaults.trusted_proxies),
    }
}

#[cfg(test)]
mod tests;

/// `[pages]`: plain text a person reads, so short and free of control
/// characters; a support URL the browser may follow, so https.
fn read_pages(
    section: &mut Section<'_>,
    files: &FileResolver<'_>,
    problems: &mut Vec<Problem>,
) -> crate::server::pages::PagesConfig {
    let mut text = |section: &mut Section<'_>, key: &'static str, max: usize| {
        let value = section.get::<String>(key, problems)?;
        match plain_text(&value, max) {
            Ok(()) => Some(value),
            Err(message) => {
                problems.push(Problem::new(&section.key_path(key), message));
                None
            }
        }
    };
    let organisation_name = text(section, "organisation_name", 100);
    let support_email = text(section, "support_email", 254);
    if let Some(email) = &support_email {
        let valid = email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        }) && !email.contains(char::is_whitespace);
        if !valid {
            problems.push(Problem::new(
                &section.key_path("support_email"),
                "must be an email address such as help@example.com",
            ));
        }
    }
    let support_url = section
        .get::<String>("support_url", problems)
        .and_then(|value| match Url::parse(&value) {
            Ok(url) if url.scheme() == "https" && url.host_str().is_some() => Some(url),
            Ok(_) => {
                problems.push(Problem::new(
                    &section.key_path("support_url"),
                    "must be an https URL",
                ));
                None
            }
            Err(error) => {
                problems.push(Problem::new(
                    &section.key_path("support_url"),
                    format!("not a valid URL: {error}"),
                ));
                None
            }
        });
    let logo_file = section
        .get::<String>("logo_file", problems)
        .and_then(|name| {
            let path = files.resolve(&name);
            let key = section.key_path("logo_file");
            files
                .check(&key, NamedFile::Logo(&path), problems)
                .then_some(path)
        });
    let mut scopes = section
        .get::<BTreeMap<String, String>>("scopes", problems)
        .unwrap_or_default();
    scopes.retain(|scope, description| match plain_text(description, 200) {
        Ok(()) => true,
        Err(message) => {
            let key = section.key_path("scopes");
            problems.push(Problem::new(&format!("{key}.{scope}"), message));
            false
        }
    });
    crate::server::pages::PagesConfig {
        organisation_name,
        logo_file,
        support_url,
        support_email,
        scopes,
    }
}

/// One line of text for a page: not empty, at most `max` characters, no
/// control characters.
fn plain_text(value: &str, max: usize) -> Result<(), String> {
    if value.trim().is_empty() {
        Err("must not be empty".to_owned())
    } else if value.chars().count() > max {
        Err(format!("must be at most {max} characters"))
    } else if value.chars().any(char::is_control) {
        Err("must be one line of text, without control characters".to_owned())
    } else {
        Ok(())
    }
}
