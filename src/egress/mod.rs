//! Everything that goes out to the network with a URL a stranger gave us.
//!
//! A fetch is a fixed sequence, and each step refuses rather than guesses:
//!
//! 1. The URL must be `https` with a host, on a port in `allowed_ports`;
//!    this is checked before any lookup, so a refused port costs no DNS query.
//! 2. A permit from a global semaphore: `max_concurrent_fetches` for
//!    documents and key sets, and a separate `max_concurrent_logo_fetches`
//!    for logos, so a slow logo host can never hold a permit a sign-in
//!    needs. There is no queue: when none is free the fetch fails at once
//!    with `fetch_overloaded`, so an attacker cannot pile up waiting work.
//! 3. Under one deadline (`timeout_ms`) covering everything below:
//!    resolution with our own hickory resolver (names made absolute, so no
//!    search domain can turn `api` into `api.default.svc.cluster.local`);
//!    IP-literal hosts skip DNS but not the check.
//! 4. Every address in the answer goes through [`classify`]; one refused
//!    address refuses the whole name (an answer that mixes public and
//!    internal addresses is hostile, not unlucky).
//! 5. A TCP connection to an address that was checked — the socket address
//!    is built from the checked `IpAddr` itself, and no HTTP client ever
//!    resolves the name again, so DNS rebinding has nothing to rebind.
//! 6. TLS with rustls, verifying the certificate against the URL's host name
//!    (the pinned socket does not weaken verification), web PKI roots plus
//!    `extra_root_certs`.
//! 7. One HTTP/1.1 request through a bare hyper connection: no redirect
//!    following, no proxy from the environment (there is no code path that
//!    reads one), no `Accept-Encoding`; a bounded response head; an encoded
//!    body, a non-JSON media type, a `Content-Length` over the cap, or a body
//!    that grows past it while streaming are refused.

pub mod classify;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use ipnet::IpNet;
use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;
use url::{Host, Url};

use crate::error_code::ErrorCode;
use crate::metrics::METRICS;
pub use classify::{AddressPolicy, RangeClass, Verdict};

/// What a caller expects the response body to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// `application/json` or any `application/*+json` type.
    Json,
    /// A raster image: PNG, JPEG, GIF or WebP (never SVG, which is a document
    /// that can carry script).
    RasterImage,
}

/// What a fetch is for: it decides the expected media type and the body
/// cap, and it is the `kind` label of the fetch metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum FetchKind {
    /// A client metadata document (`fetch.max_document_bytes`).
    Document,
    /// A client's JWK Set from its `jwks_uri` (`fetch.max_document_bytes`).
    Jwks,
    /// A client's logo (`fetch.max_logo_bytes`).
    Logo,
}

impl FetchKind {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The media type the body must have.
    pub const fn media(self) -> MediaKind {
        match self {
            FetchKind::Document | FetchKind::Jwks => MediaKind::Json,
            FetchKind::Logo => MediaKind::RasterImage,
        }
    }
}

/// The raster image types a logo may have.
pub const RASTER_IMAGE_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

impl MediaKind {
    fn accepts(self, content_type: &str) -> bool {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match self {
            MediaKind::Json => {
                essence == "application/json"
                    || essence
                        .strip_prefix("application/")
                        .and_then(|subtype| subtype.strip_suffix("+json"))
                        .is_some_and(|name| !name.is_empty() && !name.contains('/'))
            }
            MediaKind::RasterImage => RASTER_IMAGE_TYPES.contains(&essence.as_str()),
        }
    }

    fn accept_header(self) -> HeaderValue {
        match self {
            MediaKind::Json => HeaderValue::from_static("application/json"),
            MediaKind::RasterImage => {
                HeaderValue::from_static("image/png, image/jpeg, image/gif, image/webp")
            }
        }
    }
}

/// A successful response: a 200 with its body, or a 304 to a conditional request.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// 200, or 304 when the request carried validators and the origin confirmed them.
    pub status: StatusCode,
    /// The response headers (for cache semantics).
    pub headers: HeaderMap,
    /// The body, at most `max_document_bytes` (or `max_logo_bytes`) long (empty for a 304).
    pub body: Bytes,
    /// Every address the name resolved to, all of which passed the check.
    pub addresses: Vec<IpAddr>,
    /// The vetted address the connection was made to.
    pub connected_to: SocketAddr,
}

/// Why a fetch failed. Each variant maps to one stable [`ErrorCode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// Not an https URL with a host.
    #[error("not an https URL with a host: {url}")]
    UnsupportedUrl {
        /// The URL.
        url: String,
    },
    /// The URL names a port outside `fetch.allowed_ports`.
    #[error("port {port} is not in fetch.allowed_ports")]
    PortNotAllowed {
        /// The port.
        port: u16,
    },
    /// All outbound fetch permits of the fetch's kind are in use.
    #[error("outbound fetch capacity exhausted ({limit} fetches in flight)")]
    Overloaded {
        /// `fetch.max_concurrent_fetches`, or for a logo
        /// `fetch.max_concurrent_logo_fetches`.
        limit: usize,
    },
    /// The name did not resolve.
    #[error("DNS lookup of {host} failed: {reason}")]
    Dns {
        /// The host name.
        host: String,
        /// The resolver's explanation.
        reason: String,
    },
    /// An address in the answer (or the literal) is refused.
    #[error("{} a refused address ({}{}, range {range})", refused_subject(.host, .address), .class.as_str(), embedded_note(.embedded))]
    Blocked {
        /// The host as written in the URL.
        host: String,
        /// The refused address.
        address: IpAddr,
        /// The range class that refused it.
        class: RangeClass,
        /// The matched range.
        range: IpNet,
        /// The IPv4 address decoded from an IPv6 transition form, when that decided it.
        embedded: Option<std::net::Ipv4Addr>,
    },
    /// No connection could be made to any vetted address.
    #[error("cannot connect to {address}: {reason}")]
    Connect {
        /// The last address tried.
        address: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The connection closed, or the fetch was cut short, before a complete response.
    #[error("fetch interrupted: {reason}")]
    Interrupted {
        /// What happened.
        reason: String,
    },
    /// The TLS handshake failed (certificate name, chain, protocol).
    #[error("TLS with {host} failed: {reason}")]
    Tls {
        /// The host the certificate had to match.
        host: String,
        /// rustls's explanation.
        reason: String,
    },
    /// The deadline passed.
    #[error("no complete response within {} ms", .after.as_millis())]
    Timeout {
        /// `fetch.timeout_ms`.
        after: Duration,
    },
    /// A status other than 200 (304 only for conditional requests).
    #[error("origin answered HTTP {status}{}", location_note(.location))]
    HttpStatus {
        /// The status code.
        status: u16,
        /// The `Location` of a redirect, which is never followed.
        location: Option<String>,
    },
    /// Not a valid HTTP/1.1 response.
    #[error("origin sent an invalid HTTP response: {reason}")]
    Protocol {
        /// hyper's explanation.
        reason: String,
    },
    /// The response head or body exceeded its cap.
    #[error("the response {part} went over the {limit}-byte limit")]
    TooLarge {
        /// `"headers"` or `"body"`.
        part: &'static str,
        /// The limit.
        limit: usize,
    },
    /// The media type is not the one expected.
    #[error("{} is not the expected media type", content_type_note(.found))]
    ContentType {
        /// The `Content-Type` received, if any.
        found: Option<String>,
    },
    /// The body is encoded; we asked for none and count raw bytes only.
    #[error("encoded response body (Content-Encoding: {encoding}) refused")]
    Encoded {
        /// The `Content-Encoding` received.
        encoding: String,
    },
}

/// "10.0.0.1 is" for an address literal, "app.example resolves to 10.0.0.1,
/// which is" for a name.
fn refused_subject(host: &str, address: &IpAddr) -> String {
    if host.trim_start_matches('[').trim_end_matches(']') == address.to_string() {
        format!("{address} is")
    } else {
        format!("{host} resolves to {address}, which is")
    }
}

fn content_type_note(found: &Option<String>) -> String {
    found.as_ref().map_or_else(
        || "a response without a content type".to_owned(),
        |found| format!("content type {found:?}"),
    )
}

/// What [`dns_reason`] says for each failure it tells apart, for the test
/// over every error code's message.
#[cfg(test)]
pub(crate) fn dns_reasons_for_tests() -> Vec<String> {
    use hickory_resolver::net::NetError;
    [
        NetError::Timeout,
        NetError::NoConnections,
        NetError::Busy,
        NetError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
    ]
    .iter()
    .map(dns_reason)
    .collect()
}

/// The resolver's failure in words: hickory's own `Display` quotes its
/// query as a `Debug` dump (`Query { name: Name("…"), … }`).
fn dns_reason(error: &hickory_resolver::net::NetError) -> String {
    use hickory_resolver::net::NetError;
    if error.is_nx_domain() {
        return "no such name".to_owned();
    }
    if error.is_no_records_found() {
        return "no A or AAAA records".to_owned();
    }
    match error {
        NetError::Timeout => "the DNS servers did not answer in time".to_owned(),
        NetError::NoConnections => "no DNS server could be reached".to_owned(),
        NetError::Io(io) => format!("cannot reach the DNS servers: {io}"),
        other => format!(
            "the DNS servers answered with an error ({})",
            other.as_metrics_label().replace('_', " ")
        ),
    }
}

fn embedded_note(embedded: &Option<std::net::Ipv4Addr>) -> String {
    embedded.map_or_else(String::new, |ip| format!(" via embedded {ip}"))
}

fn location_note(location: &Option<String>) -> String {
    location.as_ref().map_or_else(String::new, |location| {
        format!(" redirecting to {location:?} (redirects are not followed)")
    })
}

impl FetchError {
    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            FetchError::UnsupportedUrl { .. } => ErrorCode::InvalidClientIdUrl,
            FetchError::PortNotAllowed { .. } => ErrorCode::PortNotAllowed,
            FetchError::Overloaded { .. } => ErrorCode::FetchOverloaded,
            FetchError::Dns { .. } => ErrorCode::DnsFailure,
            FetchError::Blocked { .. } => ErrorCode::BlockedAddress,
            FetchError::Connect { .. } | FetchError::Interrupted { .. } => {
                ErrorCode::ConnectFailure
            }
            FetchError::Tls { .. } => ErrorCode::TlsFailure,
            FetchError::Timeout { .. } => ErrorCode::Timeout,
            FetchError::HttpStatus { .. } | FetchError::Protocol { .. } => ErrorCode::HttpStatus,
            FetchError::TooLarge { .. } => ErrorCode::TooLarge,
            FetchError::ContentType { .. } | FetchError::Encoded { .. } => {
                ErrorCode::InvalidContentType
            }
        }
    }
}

/// `[fetch]`: the hardened fetcher's limits.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchConfig {
    /// One deadline over resolution, connect, TLS, headers and body.
    pub timeout: Duration,
    /// The body cap; exceeding it is an error, never a truncation.
    pub max_document_bytes: usize,
    /// The logo cap; a larger logo is not shown.
    pub max_logo_bytes: usize,
    /// The cap on the response head (status line and headers).
    pub max_response_header_bytes: usize,
    /// Ports a client_id (or a URL in a document) may name.
    pub allowed_ports: Vec<u16>,
    /// DNS servers to query; empty means the system resolver configuration.
    pub dns_servers: Vec<SocketAddr>,
    /// Exceptions to the block table; they win over everything else.
    pub allow_cidrs: Vec<IpNet>,
    /// Blocks on top of the table.
    pub deny_cidrs: Vec<IpNet>,
    /// A PEM file of CA certificates trusted beside the web PKI roots.
    pub extra_root_certs: Option<PathBuf>,
    /// Outbound fetches in flight at once; beyond it requests are refused.
    pub max_concurrent_fetches: usize,
    /// Logo fetches in flight at once, on permits of their own: logos never
    /// take one of `max_concurrent_fetches`.
    pub max_concurrent_logo_fetches: usize,
    /// Logo prefetches that may wait for a logo permit; beyond it a
    /// prefetch is skipped (and counted), never waited for.
    pub logo_prefetch_queue: usize,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            timeout: Duration::from_millis(5000),
            max_document_bytes: 5120,
            max_logo_bytes: 65_536,
            max_response_header_bytes: 8192,
            allowed_ports: vec![443],
            dns_servers: Vec::new(),
            allow_cidrs: Vec::new(),
            deny_cidrs: Vec::new(),
            extra_root_certs: None,
            max_concurrent_fetches: 64,
            max_concurrent_logo_fetches: 4,
            logo_prefetch_queue: 256,
        }
    }
}

/// Why the fetcher itself could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EgressSetupError {
    /// The resolver could not be built (e.g. no readable system configuration).
    #[error("cannot set up DNS resolution: {0}")]
    Resolver(String),
    /// `extra_root_certs` could not be loaded.
    #[error("fetch.extra_root_certs: {0}")]
    RootCerts(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(String),
}

/// Reads a PEM file of CA certificates; at least one must be present.
pub fn load_pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("{} is not a PEM certificate file: {error}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// The hardened fetcher. Cheap to share behind an `Arc`; one per process.
pub struct Egress {
    resolver: TokioResolver,
    addresses: AddressPolicy,
    tls: TlsConnector,
    permits: Arc<Semaphore>,
    logo_permits: Arc<Semaphore>,
    config: FetchConfig,
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Egress")
            .field("addresses", &self.addresses)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The user agent sent with every fetch, so origins can tell who is asking.
const USER_AGENT: &str = concat!("cimd-proxy/", env!("CARGO_PKG_VERSION"));

impl Egress {
    /// Builds the fetcher. `own_addresses` are the proxy's own addresses
    /// (its listeners and interfaces), refused like internal ones.
    pub fn new(config: &FetchConfig, own_addresses: Vec<IpAddr>) -> Result<Self, EgressSetupError> {
        let resolver = build_resolver(config)?;
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = &config.extra_root_certs {
            for cert in load_pem_certificates(path).map_err(EgressSetupError::RootCerts)? {
                roots
                    .add(cert)
                    .map_err(|error| EgressSetupError::RootCerts(error.to_string()))?;
            }
        }
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|error| EgressSetupError::Tls(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        METRICS
            .fetch_capacity
            .set(config.max_concurrent_fetches as i64);
        Ok(Egress {
            resolver,
            addresses: AddressPolicy::new(
                config.allow_cidrs.clone(),
                config.deny_cidrs.clone(),
                own_addresses,
            ),
            tls: TlsConnector::from(Arc::new(tls)),
            permits: Arc::new(Semaphore::new(config.max_concurrent_fetches)),
            logo_permits: Arc::new(Semaphore::new(config.max_concurrent_logo_fetches)),
            config: config.clone(),
        })
    }

    /// The fetch limits in force.
    pub fn config(&self) -> &FetchConfig {
        &self.config
    }

    /// Document and key-set fetches in flight right now (for the metrics
    /// gauge; logos have permits of their own).
    pub fn in_flight(&self) -> usize {
        self.config.max_concurrent_fetches - self.permits.available_permits()
    }

    /// Fetches `url` for `kind`. `conditional` carries revalidation headers
    /// (`If-None-Match`, `If-Modified-Since`); when it is non-empty a 304 is
    /// a success too. Every fetch is counted and timed by kind and outcome.
    pub async fn fetch(
        &self,
        url: &Url,
        kind: FetchKind,
        conditional: &HeaderMap,
    ) -> Result<Fetched, FetchError> {
        let started = std::time::Instant::now();
        let result = self.fetch_unmeasured(url, kind, conditional).await;
        let metrics = &*METRICS;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(error) => error.code().as_str(),
        };
        metrics
            .fetches
            .with_label_values(&[kind.as_str(), outcome])
            .inc();
        metrics
            .fetch_duration
            .with_label_values(&[kind.as_str()])
            .observe(started.elapsed().as_secs_f64());
        if let Err(FetchError::Blocked { class, .. }) = &result {
            metrics
                .refused_addresses
                .with_label_values(&[class.as_str()])
                .inc();
        }
        result
    }

    async fn fetch_unmeasured(
        &self,
        url: &Url,
        kind: FetchKind,
        conditional: &HeaderMap,
    ) -> Result<Fetched, FetchError> {
        let (host, port) = match (url.scheme(), url.host(), url.port_or_known_default()) {
            ("https", Some(host), Some(port)) => (host, port),
            _ => {
                return Err(FetchError::UnsupportedUrl {
                    url: url.to_string(),
                });
            }
        };
        if !self.config.allowed_ports.contains(&port) {
            return Err(FetchError::PortNotAllowed { port });
        }
        let (permits, limit) = match kind {
            FetchKind::Document | FetchKind::Jwks => {
                (&self.permits, self.config.max_concurrent_fetches)
            }
            FetchKind::Logo => (&self.logo_permits, self.config.max_concurrent_logo_fetches),
        };
        let _permit = permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| FetchError::Overloaded { limit })?;
        // The gauge is read against `fetch.max_concurrent_fetches`.
        let _in_flight = (kind != FetchKind::Logo).then(InFlight::enter);
        let attempt = self.fetch_pinned(url, host, port, kind.media(), conditional);
        tokio::time::timeout(self.config.timeout, attempt)
            .await
            .unwrap_or(Err(FetchError::Timeout {
                after: self.config.timeout,
            }))
    }

    async fn fetch_pinned(
        &self,
        url: &Url,
        host: Host<&str>,
        port: u16,
        kind: MediaKind,
        conditional: &HeaderMap,
    ) -> Result<Fetched, FetchError> {
        let addresses = self.resolve(&host).await?;
        let (tcp, connected_to) = connect_any(&addresses, port).await?;
        let server_name = match host {
            Host::Domain(name) => ServerName::try_from(name.to_owned()),
            Host::Ipv4(ip) => Ok(ServerName::from(IpAddr::V4(ip))),
            Host::Ipv6(ip) => Ok(ServerName::from(IpAddr::V6(ip))),
        }
        .map_err(|error| FetchError::Tls {
            host: host.to_string(),
            reason: error.to_string(),
        })?;
        let tls = self
            .tls
            .connect(server_name, tcp)
            .await
            .map_err(|error| FetchError::Tls {
                host: host.to_string(),
                reason: error.to_string(),
            })?;
        let mut response = self.exchange(tls, url, kind, conditional).await?;
        response.addresses = addresses;
        response.connected_to = connected_to;
        Ok(response)
    }

    /// Resolves and vets. Every address must pass, or the name is refused.
    async fn resolve(&self, host: &Host<&str>) -> Result<Vec<IpAddr>, FetchError> {
        let addresses = match host {
            Host::Ipv4(ip) => vec![IpAddr::V4(*ip)],
            Host::Ipv6(ip) => vec![IpAddr::V6(*ip)],
            Host::Domain(name) => {
                let dns_error = |reason: String| FetchError::Dns {
                    host: (*name).to_owned(),
                    reason,
                };
                // Absolute name: search domains never apply.
                let mut fqdn = hickory_resolver::proto::rr::Name::from_ascii(name)
                    .map_err(|error| dns_error(error.to_string()))?;
                fqdn.set_fqdn(true);
                let lookup = self
                    .resolver
                    .lookup_ip(fqdn)
                    .await
                    .map_err(|error| dns_error(dns_reason(&error)))?;
                let addresses: Vec<IpAddr> = lookup.iter().collect();
                if addresses.is_empty() {
                    return Err(dns_error("no A or AAAA records".to_owned()));
                }
                addresses
            }
        };
        for &address in &addresses {
            if let Verdict::Blocked {
                class,
                range,
                embedded,
            } = self.addresses.classify(address)
            {
                return Err(FetchError::Blocked {
                    host: host.to_string(),
                    address,
                    class,
                    range,
                    embedded,
                });
            }
        }
        Ok(addresses)
    }

    async fn exchange(
        &self,
        io: tokio_rustls::client::TlsStream<TcpStream>,
        url: &Url,
        kind: MediaKind,
        conditional: &HeaderMap,
    ) -> Result<Fetched, FetchError> {
        let header_limit = self.config.max_response_header_bytes;
        let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
            .max_header_size(header_limit)
            // hyper's floor for its read buffer; the body is counted by us.
            .max_buf_size(header_limit.max(8192))
            .handshake::<_, Empty<Bytes>>(TokioIo::new(io))
            .await
            .map_err(|error| protocol_error(&error, header_limit))?;
        // The connection task dies with this future (deadline or return).
        let driver = AbortOnDrop(tokio::spawn(connection));

        let mut request = Request::builder()
            .method(Method::GET)
            .uri(&url[url::Position::BeforePath..url::Position::AfterQuery])
            .header(header::HOST, host_header(url))
            .header(header::USER_AGENT, USER_AGENT)
            .header(header::ACCEPT, kind.accept_header())
            .header(header::CONNECTION, "close")
            .body(Empty::<Bytes>::new())
            .map_err(|error| FetchError::UnsupportedUrl {
                url: format!("{url} ({error})"),
            })?;
        for (name, value) in conditional {
            request.headers_mut().append(name, value.clone());
        }

        let response = sender
            .send_request(request)
            .await
            .map_err(|error| protocol_error(&error, header_limit))?;
        let status = response.status();
        let not_modified = status == StatusCode::NOT_MODIFIED && !conditional.is_empty();
        if status != StatusCode::OK && !not_modified {
            return Err(FetchError::HttpStatus {
                status: status.as_u16(),
                location: response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|value| value.to_str().ok())
                    .map(|location| location.chars().take(200).collect()),
            });
        }
        let (parts, mut body) = response.into_parts();
        let mut collected = BytesMut::new();
        if !not_modified {
            let limit = match kind {
                MediaKind::Json => self.config.max_document_bytes,
                MediaKind::RasterImage => self.config.max_logo_bytes,
            };
            check_representation(&parts.headers, kind, limit)?;
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|error| protocol_error(&error, header_limit))?;
                if let Ok(data) = frame.into_data() {
                    if collected.len() + data.len() > limit {
                        return Err(FetchError::TooLarge {
                            part: "body",
                            limit,
                        });
                    }
                    collected.extend_from_slice(&data);
                }
            }
        }
        drop(driver);
        Ok(Fetched {
            status,
            headers: owned_headers(&parts.headers),
            body: collected.freeze(),
            addresses: Vec::new(),
            connected_to: SocketAddr::from(([0, 0, 0, 0], 0)),
        })
    }
}

/// The response head copied out of the connection's read buffer. hyper's
/// header values are slices of that buffer, and the cache keeps a
/// document's headers (for revalidation) as long as the document: without
/// the copy, every cached document would keep its whole read buffer
/// (8 KiB or more) alive.
fn owned_headers(headers: &HeaderMap) -> HeaderMap {
    let mut owned = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        // Always Ok: the bytes come from a valid header value.
        if let Ok(copy) = HeaderValue::from_bytes(value.as_bytes()) {
            owned.append(name.clone(), copy);
        }
    }
    owned
}

/// Refuses encodings, wrong media types and announced oversize bodies
/// before a byte of the body is read.
fn check_representation(
    headers: &HeaderMap,
    kind: MediaKind,
    limit: usize,
) -> Result<(), FetchError> {
    if let Some(encoding) = headers.get(header::CONTENT_ENCODING) {
        let encoding = String::from_utf8_lossy(encoding.as_bytes()).into_owned();
        if !encoding.trim().eq_ignore_ascii_case("identity") {
            return Err(FetchError::Encoded { encoding });
        }
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    if !content_type.as_deref().is_some_and(|ct| kind.accepts(ct)) {
        return Err(FetchError::ContentType {
            found: content_type,
        });
    }
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if announced.is_some_and(|length| length > limit as u64) {
        return Err(FetchError::TooLarge {
            part: "body",
            limit,
        });
    }
    Ok(())
}

fn protocol_error(error: &hyper::Error, header_limit: usize) -> FetchError {
    if error.is_parse_too_large() {
        FetchError::TooLarge {
            part: "headers",
            limit: header_limit,
        }
    } else if error.is_incomplete_message() || error.is_closed() || error.is_canceled() {
        FetchError::Interrupted {
            reason: format!("connection closed before a complete response ({error})"),
        }
    } else {
        FetchError::Protocol {
            reason: error.to_string(),
        }
    }
}

/// `Host` carries the port only when the URL wrote one.
fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// The host's own interface addresses, refused as fetch targets: a document
/// URL must never reach a service on the proxy's own machine or pod.
/// Loopback addresses are left to the table, which names them for what they are.
pub fn local_addresses() -> Vec<IpAddr> {
    match if_addrs::get_if_addrs() {
        Ok(interfaces) => interfaces
            .into_iter()
            .map(|interface| interface.ip())
            .filter(|ip| !ip.is_loopback())
            .collect(),
        Err(error) => {
            tracing::warn!(%error, "cannot list local interface addresses");
            Vec::new()
        }
    }
}

/// Tries each vetted address in turn; the deadline bounds the whole walk.
async fn connect_any(
    addresses: &[IpAddr],
    port: u16,
) -> Result<(TcpStream, SocketAddr), FetchError> {
    let mut last = None;
    for &ip in addresses {
        let target = SocketAddr::new(ip, port);
        match TcpStream::connect(target).await {
            Ok(stream) => {
                // Latency matters more than segment count for one small request.
                let _ = stream.set_nodelay(true);
                return Ok((stream, target));
            }
            Err(error) => last = Some((target, error)),
        }
    }
    let (address, error) = last.unwrap_or_else(|| {
        (
            SocketAddr::from(([0, 0, 0, 0], port)),
            std::io::Error::other("no address to connect to"),
        )
    });
    Err(FetchError::Connect {
        address,
        reason: error.to_string(),
    })
}

fn build_resolver(config: &FetchConfig) -> Result<TokioResolver, EgressSetupError> {
    let provider = TokioRuntimeProvider::default();
    let mut builder = if config.dns_servers.is_empty() {
        TokioResolver::builder(provider)
            .map_err(|error| EgressSetupError::Resolver(error.to_string()))?
    } else {
        let servers = config
            .dns_servers
            .iter()
            .map(|server| {
                let mut udp = ConnectionConfig::udp();
                udp.port = server.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = server.port();
                let mut name_server = NameServerConfig::udp_and_tcp(server.ip());
                name_server.connections = vec![udp, tcp];
                name_server
            })
            .collect();
        TokioResolver::builder_with_config(
            ResolverConfig::from_parts(None, vec![], servers),
            provider,
        )
    };
    let options = builder.options_mut();
    // Both families, so every address a name has is checked.
    options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    // The fetch deadline bounds resolution; one attempt per server within it.
    options.timeout = config.timeout;
    options.attempts = 1;
    builder
        .build()
        .map_err(|error| EgressSetupError::Resolver(error.to_string()))
}

/// Counts a fetch in the in-flight gauge for as long as it holds a permit.
struct InFlight;

impl InFlight {
    fn enter() -> InFlight {
        METRICS.fetches_in_flight.inc();
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        METRICS.fetches_in_flight.dec();
    }
}

/// Aborts a spawned task when dropped, so a fetch abandoned at its deadline
/// leaves no connection behind.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/jrd+json",
            "application/oauth-client-metadata+json ; q=1",
        ] {
            assert!(MediaKind::Json.accepts(ok), "{ok}");
        }
        for bad in [
            "text/html",
            "text/json",
            "application/jsonp",
            "application/+json",
            "application/x/y+json",
            "application/json-seq",
            "",
        ] {
            assert!(!MediaKind::Json.accepts(bad), "{bad}");
        }
    }

    #[test]
    fn representation_checks_come_before_the_body() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        assert!(check_representation(&headers, MediaKind::Json, 10).is_ok());
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("11"));
        assert!(matches!(
            check_representation(&headers, MediaKind::Json, 10),
            Err(FetchError::TooLarge { part: "body", .. })
        ));
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        assert_eq!(
            check_representation(&headers, MediaKind::Json, 10)
                .unwrap_err()
                .code(),
            ErrorCode::InvalidContentType
        );
        let empty = HeaderMap::new();
        assert!(matches!(
            check_representation(&empty, MediaKind::Json, 10),
            Err(FetchError::ContentType { found: None })
        ));
    }

    #[test]
    fn kept_headers_do_not_share_the_read_buffer() {
        // As hyper parses them: every value a slice of one buffer.
        let buffer = Bytes::from(b"max-age=60\"v1\"\"v2\"".to_vec());
        let range = buffer.as_ptr_range();
        let mut parsed = HeaderMap::new();
        for (name, part) in [
            (header::CACHE_CONTROL, buffer.slice(0..10)),
            (header::ETAG, buffer.slice(10..14)),
            (header::ETAG, buffer.slice(14..18)),
        ] {
            parsed.append(name, HeaderValue::from_maybe_shared(part).unwrap());
        }
        let owned = owned_headers(&parsed);
        assert_eq!(owned, parsed);
        assert_eq!(owned.get_all(header::ETAG).iter().count(), 2);
        for value in owned.values() {
            assert!(!range.contains(&value.as_bytes().as_ptr()));
        }
    }

    #[test]
    fn host_header_keeps_an_explicit_port_only() {
        let url = Url::parse("https://a.example:8443/x").unwrap();
        assert_eq!(host_header(&url), "a.example:8443");
        let url = Url::parse("https://a.example/x").unwrap();
        assert_eq!(host_header(&url), "a.example");
        let url = Url::parse("https://[2001:db8::1]:8443/x").unwrap();
        assert_eq!(host_header(&url), "[2001:db8::1]:8443");
    }

    #[test]
    fn fetch_kind_labels_are_pinned() {
        // Metric labels and log fields: the strings are a contract.
        for (value, text) in [
            (FetchKind::Document, "document"),
            (FetchKind::Jwks, "jwks"),
            (FetchKind::Logo, "logo"),
        ] {
            assert_eq!(value.as_str(), text);
        }
    }
}
