//! HTML pages for people: the error page shown when the proxy must not
//! redirect back to a client.
//!
//! Templates are askama's, compiled in, with HTML auto-escaping: nothing a
//! client controls (its host, a message quoting its document) can become
//! markup. Every page carries a strict Content-Security-Policy.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::admission::Refusal;
use crate::error_code::ErrorCode;

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
    title: &'a str,
    sentence: &'a str,
    code: &'a str,
    detail: &'a str,
    client_host: Option<&'a str>,
}

/// The one stylesheet, inlined into every page and allowed by its hash, so
/// the Content-Security-Policy needs neither `'unsafe-inline'` nor a route.
pub const CSS: &str = include_str!("../../templates/page.css");

/// `'sha256-…'` of [`CSS`], computed once.
fn css_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        use base64::Engine as _;
        let digest = ring::digest::digest(&ring::digest::SHA256, CSS.as_bytes());
        format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
        )
    })
}

/// The Content-Security-Policy of a page: no scripts at all, our stylesheet
/// by hash, images only from ourselves, no framing, and forms only to the
/// given targets (browsers apply `form-action` to the redirects a form
/// submission leads to, so the consent form lists where it may go).
pub fn content_security_policy(form_action: &[String]) -> String {
    let form_action = if form_action.is_empty() {
        "'none'".to_owned()
    } else {
        form_action.join(" ")
    };
    format!(
        "default-src 'none'; style-src {}; img-src 'self'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'",
        css_hash()
    )
}

/// Renders the error page. `detail` is for the administrator; it is escaped
/// like everything else and must never hold a secret.
pub fn error_page(reason: PageReason, detail: &str, client_host: Option<&str>) -> Response {
    let page = ErrorPage {
        css: CSS,
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
    error_page(reason, &detail, refusal.host())
}

/// An HTML response with the page hygiene headers.
pub fn html_response(status: StatusCode, html: String, csp: &str) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(csp) = HeaderValue::from_str(csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
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
