//! HTML pages for people: the error page shown when the proxy must not
//! redirect back to a client, the root page, and what every page says about
//! whose service this is (`[pages]`, [`PagesConfig`]: the organisation's
//! name, logo and support contact, and the operator's scope descriptions).
//!
//! Error pages are made deep inside handlers that know nothing of the
//! request or the configuration; [`page_context`], a middleware on the
//! public router, hands them the request's id and the branding in force
//! through a task-local, so no handler passes them along.
//!
//! Templates are askama's, compiled in, with HTML auto-escaping: nothing a
//! client controls (its host, a message quoting its document) can become
//! markup. Every page carries a strict Content-Security-Policy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use askama::Template;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use url::Url;

use crate::admission::Refusal;
use crate::error_code::ErrorCode;
pub use crate::html::{CSS, content_security_policy, html_response};
use crate::logo::{Logo, sniff};

/// `[pages]`: what the proxy's pages say about whose service this is.
/// Without any of it the pages name the proxy's public host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PagesConfig {
    /// `organisation_name`: who the user signs in with ("Example Corp").
    pub organisation_name: Option<String>,
    /// `logo_file`: a PNG, JPEG, GIF or WebP file, served from the proxy's
    /// own origin at `/brand-logo`.
    pub logo_file: Option<PathBuf>,
    /// `support_url`: where a user gets help (https).
    pub support_url: Option<Url>,
    /// `support_email`: whom a user writes to for help.
    pub support_email: Option<String>,
    /// `[pages.scopes]`: the operator's own scopes, described in plain words.
    pub scopes: BTreeMap<String, String>,
}

/// The most bytes a `pages.logo_file` may have: a logo, not a photograph.
pub const MAX_LOGO_FILE_BYTES: u64 = 256 * 1024;

/// Reads and verifies `pages.logo_file` as logos from clients are verified:
/// a raster image by its magic number, never SVG. `Err` is the problem's
/// message (it names the file, never its contents).
pub fn load_logo_file(path: &Path) -> Result<Logo, String> {
    let shown = path.display();
    let metadata =
        std::fs::metadata(path).map_err(|error| format!("cannot read {shown}: {error}"))?;
    if metadata.len() > MAX_LOGO_FILE_BYTES {
        return Err(format!(
            "{shown} is {} bytes, more than the {MAX_LOGO_FILE_BYTES} allowed",
            metadata.len()
        ));
    }
    let bytes = std::fs::read(path).map_err(|error| format!("cannot read {shown}: {error}"))?;
    let content_type =
        sniff(&bytes).ok_or_else(|| format!("{shown} is not a PNG, JPEG, GIF or WebP image"))?;
    Ok(Logo {
        bytes: bytes.into(),
        content_type,
    })
}

/// The organisation's logo, read once per file name (a reload naming
/// another file reads that one).
fn brand_logo_bytes(path: &Path) -> Option<Arc<Logo>> {
    static LOADED: Mutex<Option<(PathBuf, Arc<Logo>)>> = Mutex::new(None);
    let mut loaded = LOADED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((loaded_path, logo)) = loaded.as_ref()
        && loaded_path == path
    {
        return Some(Arc::clone(logo));
    }
    match load_logo_file(path) {
        Ok(logo) => {
            let logo = Arc::new(logo);
            *loaded = Some((path.to_owned(), Arc::clone(&logo)));
            Some(logo)
        }
        Err(error) => {
            tracing::warn!(%error, "pages.logo_file cannot be served");
            None
        }
    }
}

/// `GET /brand-logo`: the organisation's logo, or 404 without one.
pub fn brand_logo(config: &PagesConfig) -> Response {
    let Some(logo) = config.logo_file.as_deref().and_then(brand_logo_bytes) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut response = (StatusCode::OK, logo.bytes.clone()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(logo.content_type),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

/// Whose service a page belongs to, as the pages show it.
#[derive(Debug, Clone, Default)]
pub struct Branding {
    /// The organisation's name, or the proxy's public host without one.
    pub name: String,
    /// Whether `name` is the organisation's (`pages.organisation_name`)
    /// rather than the host's: only an organisation has accounts.
    pub named: bool,
    /// The logo's URL on the proxy's own origin.
    pub logo_url: Option<String>,
    /// Where to get help.
    pub support_url: Option<String>,
    /// Whom to write to for help.
    pub support_email: Option<String>,
}

impl Branding {
    /// The branding `config` gives a proxy whose issuer is `issuer`.
    pub fn new(config: &PagesConfig, issuer: &str) -> Branding {
        Branding {
            named: config.organisation_name.is_some(),
            name: config.organisation_name.clone().unwrap_or_else(|| {
                Url::parse(issuer)
                    .ok()
                    .and_then(|url| display_host(&url))
                    .unwrap_or_else(|| issuer.to_owned())
            }),
            logo_url: config
                .logo_file
                .as_ref()
                .map(|_| format!("{issuer}/brand-logo")),
            support_url: config.support_url.as_ref().map(Url::to_string),
            support_email: config.support_email.clone(),
        }
    }
}

/// What an error page made during a request knows about it.
#[derive(Debug, Clone, Default)]
struct PageContext {
    request_id: Option<String>,
    branding: Branding,
}

/// What a request's error pages are made from. The request keeps only its
/// id and the state in force; the branding is worked out when a page is
/// rendered, which few requests do (every cached sign-in paid for it).
enum PageSource {
    Request {
        request_id: Option<HeaderValue>,
        state: Arc<super::AppState>,
    },
    #[cfg(test)]
    Context(PageContext),
}

impl PageSource {
    fn context(&self) -> PageContext {
        match self {
            PageSource::Request { request_id, state } => PageContext {
                request_id: request_id
                    .as_ref()
                    .and_then(|id| id.to_str().ok())
                    .map(str::to_owned),
                branding: Branding::new(&state.config.pages, &state.issuer),
            },
            #[cfg(test)]
            PageSource::Context(context) => context.clone(),
        }
    }
}

tokio::task_local! {
    static PAGE: PageSource;
}

/// Middleware: runs the request with its id and the branding in force
/// available to [`error_page`].
pub(super) async fn page_context(
    State(shared): State<Arc<super::Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let source = PageSource::Request {
        request_id: request.headers().get("x-request-id").cloned(),
        state: shared.current(),
    };
    PAGE.scope(source, next.run(request)).await
}

/// Why a page is shown instead of a redirect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageReason {
    /// The client was refused by the fetcher, the validator or the policy.
    Client(ErrorCode),
    /// The request's redirect_uri is not in the client's document.
    RedirectUriNotRegistered,
    /// A parameter needed before any redirect can be trusted is missing or malformed.
    BadRequest,
    /// The sign-in's sealed state is invalid, expired or from elsewhere.
    InvalidState,
    /// The proxy cannot complete the request (configuration or provider).
    Unavailable,
}

impl PageReason {
    /// The code shown to the administrator.
    pub fn code(self) -> &'static str {
        match self {
            PageReason::Client(code) => code.as_str(),
            PageReason::RedirectUriNotRegistered => "redirect_uri_mismatch",
            PageReason::BadRequest => "invalid_request",
            PageReason::InvalidState => "invalid_state",
            PageReason::Unavailable => "temporarily_unavailable",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            PageReason::Client(ErrorCode::PolicyDenied) => StatusCode::FORBIDDEN,
            PageReason::Client(ErrorCode::FetchOverloaded) | PageReason::Unavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn title(self) -> &'static str {
        match self {
            PageReason::Client(ErrorCode::PolicyDenied) => "This application is not allowed",
            PageReason::Client(_) | PageReason::RedirectUriNotRegistered => {
                "This application cannot sign you in"
            }
            PageReason::BadRequest | PageReason::InvalidState => "This sign-in link is not valid",
            PageReason::Unavailable => "Sign-in is unavailable right now",
        }
    }

    /// One sentence a person understands.
    pub fn sentence(self) -> &'static str {
        match self {
            PageReason::Client(code) => match code {
                ErrorCode::InvalidClientIdUrl => {
                    "The application identified itself with an address that is not a valid client identifier."
                }
                ErrorCode::BlockedAddress | ErrorCode::PortNotAllowed => {
                    "The application's description is hosted at an address this service does not contact."
                }
                ErrorCode::DnsFailure
                | ErrorCode::ConnectFailure
                | ErrorCode::TlsFailure
                | ErrorCode::Timeout
                | ErrorCode::HttpStatus => {
                    "The application's description could not be retrieved from its website."
                }
                ErrorCode::TooLarge
                | ErrorCode::InvalidContentType
                | ErrorCode::InvalidJson
                | ErrorCode::ClientIdMismatch
                | ErrorCode::InvalidMetadata => {
                    "The application's description is not valid, so it cannot be trusted."
                }
                ErrorCode::PolicyDenied => {
                    "Your organisation does not allow this application to sign in."
                }
                ErrorCode::FetchOverloaded => "The service is busy. Please try again in a moment.",
                ErrorCode::InvalidRegistration => {
                    "The application's registration with this service is not valid or has expired. It must register again."
                }
            },
            PageReason::RedirectUriNotRegistered => {
                "The application asked to send you back to an address it has not declared, so the sign-in was stopped."
            }
            PageReason::BadRequest => "The sign-in request is incomplete or malformed.",
            PageReason::InvalidState => {
                "This sign-in has expired or was not started here. Start again from the application."
            }
            PageReason::Unavailable => "Please try again in a moment.",
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    css: &'static str,
    brand: &'a Branding,
    request_id: Option<&'a str>,
    title: &'a str,
    sentence: &'a str,
    code: &'a str,
    detail: &'a str,
    client_host: Option<&'a str>,
}

/// Renders the error page. `detail` is for the administrator; it is escaped
/// like everything else and must never hold a secret.
pub fn error_page(reason: PageReason, detail: &str, client_host: Option<&str>) -> Response {
    // Outside a request (a unit test), the page still renders, unbranded.
    let context = PAGE.try_with(PageSource::context).unwrap_or_default();
    let page = ErrorPage {
        css: CSS,
        brand: &context.branding,
        request_id: context.request_id.as_deref(),
        title: reason.title(),
        sentence: reason.sentence(),
        code: reason.code(),
        detail,
        client_host,
    };
    match page.render() {
        Ok(html) => html_response(reason.status(), html, &content_security_policy(&[])),
        Err(error) => {
            tracing::error!(%error, "cannot render the error page");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "redirect_notice.html")]
struct RedirectNotice<'a> {
    css: &'static str,
    client_host: &'a str,
    location: &'a str,
    destination: &'a str,
    code: &'a str,
    detail: &'a str,
}

/// The page a client the policy only warns about gets instead of an error
/// redirect (RFC 9700 §4.11.2): anyone can publish a document, so the
/// proxy's origin must not bounce a browser to whatever it lists without
/// the person seeing where. `location` is the whole error redirect, linked;
/// the page names its destination (scheme, host and path) in words.
pub fn redirect_notice(
    client_host: &str,
    location: &str,
    destination: &str,
    code: &str,
    detail: &str,
) -> Response {
    let page = RedirectNotice {
        css: CSS,
        client_host,
        location,
        destination,
        code,
        detail,
    };
    match page.render() {
        Ok(html) => html_response(StatusCode::BAD_REQUEST, html, &content_security_policy(&[])),
        Err(error) => {
            tracing::error!(%error, "cannot render the redirect notice");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The error page for a client admission refused: the one place a
/// [`Refusal`] becomes a page. Network-level details stay in the log.
pub fn refusal_page(refusal: &Refusal) -> Response {
    let reason = match refusal {
        Refusal::RedirectUriNotRegistered(_) => PageReason::RedirectUriNotRegistered,
        Refusal::RedirectUriRequired(_) => PageReason::BadRequest,
        other => other
            .code()
            .map_or(PageReason::BadRequest, PageReason::Client),
    };
    let message = refusal.to_string();
    let detail = match refusal.code() {
        Some(code) => super::oauth::public_detail(code, &message),
        None => message,
    };
    // Host and port where the client_id has one: the port tells two
    // applications on one host apart.
    let client = match refusal {
        Refusal::InvalidClientId(_) | Refusal::Registration(_) => None,
        Refusal::Client { client, .. } => Some(client),
        Refusal::Denied(denied) => denied.client.id(),
        Refusal::RedirectUriNotRegistered(client) | Refusal::RedirectUriRequired(client) => {
            client.id()
        }
    };
    let host = client.map(crate::client_id::ClientIdUrl::authority);
    error_page(reason, &detail, host.or_else(|| refusal.host()))
}

#[derive(Template)]
#[template(path = "root.html")]
struct RootPage<'a> {
    css: &'static str,
    host: &'a str,
    metadata: String,
}

/// The host (and port, when there is one) a person recognises in a URL.
pub fn display_host(url: &url::Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

/// `/`: a small page saying what this address is, for the person who
/// typed it, instead of a blank 404.
pub fn root_page(issuer: &str) -> Response {
    let host = url::Url::parse(issuer)
        .ok()
        .and_then(|url| display_host(&url))
        .unwrap_or_else(|| issuer.to_owned());
    let page = RootPage {
        css: CSS,
        host: &host,
        metadata: format!("{issuer}/.well-known/oauth-authorization-server"),
    };
    match page.render() {
        Ok(html) => html_response(StatusCode::OK, html, &content_security_policy(&[])),
        Err(error) => {
            tracing::error!(%error, "cannot render the root page");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn hostile_values_are_escaped() {
        let response = error_page(
            PageReason::Client(ErrorCode::InvalidMetadata),
            "<script>alert(1)</script>",
            Some("\"><img src=x onerror=alert(1)>.example"),
        );
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(csp.contains("form-action 'none'"));
        assert!(!csp.contains("unsafe-inline"));
        let html = body(response).await;
        assert!(!html.contains("<script>"));
        assert!(!html.contains("<img"));
        // Present, but as text.
        assert!(html.contains("script&#62;alert(1)") || html.contains("script&gt;alert(1)"));
    }

    /// Issue 16: an error page names whose service it is, gives the
    /// request id to quote, and the operator's support contact.
    #[tokio::test]
    async fn error_pages_carry_the_request_id_and_the_branding() {
        let config = PagesConfig {
            organisation_name: Some("Example Corp".into()),
            support_url: Some(Url::parse("https://help.example.com/").unwrap()),
            support_email: Some("it@example.com".into()),
            ..PagesConfig::default()
        };
        let context = PageContext {
            request_id: Some("req-123".into()),
            branding: Branding::new(&config, "https://login.example.com"),
        };
        let response = PAGE
            .scope(PageSource::Context(context), async {
                error_page(PageReason::InvalidState, "expired", None)
            })
            .await;
        let html = body(response).await;
        assert!(html.contains("Example Corp"), "{html}");
        assert!(
            html.contains("quote this reference: <code>req-123</code>"),
            "{html}"
        );
        assert!(
            html.contains("href=\"https://help.example.com/\""),
            "{html}"
        );
        assert!(html.contains("mailto:it@example.com"), "{html}");
        // Without [pages], the page names the proxy's public host and port.
        let unbranded = Branding::new(&PagesConfig::default(), "http://127.0.0.1:8080");
        assert_eq!(unbranded.name, "127.0.0.1:8080");
        assert_eq!(unbranded.logo_url, None);
    }

    #[test]
    fn the_logo_file_must_be_a_small_raster_image() {
        let dir = std::env::temp_dir().join(format!("cimd-pages-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let png = dir.join("logo.png");
        std::fs::write(&png, b"\x89PNG\r\n\x1a\nrest").unwrap();
        assert_eq!(load_logo_file(&png).unwrap().content_type, "image/png");
        let svg = dir.join("logo.svg");
        std::fs::write(&svg, b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>").unwrap();
        assert!(
            load_logo_file(&svg)
                .unwrap_err()
                .contains("not a PNG, JPEG, GIF or WebP")
        );
        let big = dir.join("big.png");
        let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
        bytes.resize(MAX_LOGO_FILE_BYTES as usize + 1, 0);
        std::fs::write(&big, bytes).unwrap();
        assert!(load_logo_file(&big).unwrap_err().contains("more than"));
        let missing = load_logo_file(&dir.join("missing.png")).unwrap_err();
        assert!(missing.starts_with("cannot read "), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Regression: the proxy's root URL answered a blank 404.
    #[tokio::test]
    async fn the_root_page_names_the_host_and_its_port() {
        let response = root_page("http://127.0.0.1:8080");
        assert_eq!(response.status(), StatusCode::OK);
        let html = body(response).await;
        assert!(html.contains("<h1>127.0.0.1:8080</h1>"), "{html}");
        assert!(html.contains("http://127.0.0.1:8080/.well-known/oauth-authorization-server"));
    }

    #[test]
    fn the_stylesheet_hash_is_the_inline_style() {
        use base64::Engine as _;
        let digest = ring::digest::digest(&ring::digest::SHA256, CSS.as_bytes());
        let expected = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
        assert!(content_security_policy(&[]).contains(&format!("style-src 'sha256-{expected}'")));
    }

    #[tokio::test]
    async fn every_client_code_has_a_sentence_and_a_status() {
        for code in ErrorCode::ALL {
            let reason = PageReason::Client(code);
            assert!(!reason.sentence().is_empty());
            let response = error_page(reason, "detail", Some("app.example"));
            assert!(response.status().is_client_error() || response.status().is_server_error());
            assert!(body(response).await.contains(code.as_str()));
        }
    }
}
