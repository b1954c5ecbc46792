//! What every HTML page the proxy serves shares: the one stylesheet
//! (inlined, allowed by its hash), the Content-Security-Policy, and the
//! response with its hygiene headers. The consent and error pages
//! (`server::pages`), the admin page and `dev`'s pages all use it; it sits
//! below them all, so none of them imports another for it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The one stylesheet, inlined into every page and allowed by its hash, so
/// the Content-Security-Policy needs neither `'unsafe-inline'` nor a route.
pub const CSS: &str = include_str!("../templates/page.css");

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
