//! OAuth errors and how each reaches the wire.
//!
//! There are exactly three ways to tell a client something went wrong, and
//! which one applies is decided by what we trust at that moment:
//!
//! * nothing about the client is trusted yet (no valid document, or a
//!   redirect_uri the document does not list): an HTML error page for the
//!   person in the browser — never a redirect (RFC 6749 §4.1.2.1);
//! * the redirect_uri is trusted: an error redirect carrying the client's
//!   `state` and our `iss` (RFC 6749 §4.1.2.1, RFC 9207);
//! * the token endpoint: a JSON error body with the right status (RFC 6749
//!   §5.2).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use url::Url;

use crate::admission::Refusal;
use crate::error_code::ErrorCode;
use crate::flow::RedirectUri;

pub use crate::error_code::OAuthErrorCode;

/// An error at the token endpoint: a JSON body and a status.
#[derive(Debug, Clone)]
pub struct TokenError {
    /// The OAuth code.
    pub code: OAuthErrorCode,
    /// A short sentence; never a secret, code, token or assertion.
    pub description: String,
}

impl TokenError {
    /// Builds an error with a description.
    pub fn new(code: OAuthErrorCode, description: impl Into<String>) -> Self {
        TokenError {
            code,
            description: description.into(),
        }
    }
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": self.code.on_the_wire(),
            "error_description": self.description,
        });
        let mut response = (self.code.token_status(), Json(body)).into_response();
        no_store(&mut response);
        response
    }
}

/// Token responses and errors must not be cached (RFC 6749 §5.1).
pub fn no_store(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// The error redirect to a redirect_uri we trust (RFC 6749 §4.1.2.1, RFC 9207).
pub fn error_redirect(
    redirect_uri: &RedirectUri,
    code: OAuthErrorCode,
    description: &str,
    state: Option<&str>,
    issuer: &str,
) -> Response {
    match error_location(redirect_uri, code, description, state, issuer) {
        Some(location) => found(&location),
        // A registration no parser reads; refuse rather than build a bad Location.
        None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Where [`error_redirect`] sends the browser; `None` for a registration
/// no URL parser reads.
pub fn error_location(
    redirect_uri: &RedirectUri,
    code: OAuthErrorCode,
    description: &str,
    state: Option<&str>,
    issuer: &str,
) -> Option<String> {
    let mut params = vec![
        ("error", code.on_the_wire()),
        ("error_description", description),
    ];
    if let Some(state) = state {
        params.push(("state", state));
    }
    params.push(("iss", issuer));
    redirect_uri.url().map(|url| with_query_url(url, &params))
}

/// A 302 to the client's `redirect_uri` with `params` added to its query
/// (existing ones kept).
pub fn redirect_with(redirect_uri: &RedirectUri, params: &[(&str, &str)]) -> Response {
    match redirect_uri.url() {
        Some(url) => found(&with_query_url(url, params)),
        // A registration no parser reads; refuse rather than build a bad Location.
        None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `base` with `params` added to its query (existing ones kept): the same
/// string the url crate's `query_pairs_mut` makes, built in one pass (this
/// is on every `/authorize`, and the sealed state alone is hundreds of bytes).
pub fn with_query_url(base: &Url, params: &[(&str, &str)]) -> String {
    if base.fragment().is_some() {
        // Not an endpoint anyone configures (RFC 6749 §3.1 forbids it); the
        // url crate knows where the pairs go.
        let mut url = base.clone();
        url.query_pairs_mut().extend_pairs(params);
        return url.into();
    }
    let size = params
        .iter()
        .map(|(n, v)| n.len() + v.len() + 2)
        .sum::<usize>();
    let mut out = String::with_capacity(base.as_str().len() + size + size / 8);
    out.push_str(base.as_str());
    let mut separate = match base.query() {
        None => {
            out.push('?');
            false
        }
        Some(query) => !query.is_empty(),
    };
    for (name, value) in params {
        if separate {
            out.push('&');
        }
        separate = true;
        push_form_encoded(&mut out, name);
        out.push('=');
        push_form_encoded(&mut out, value);
    }
    out
}

/// `application/x-www-form-urlencoded` byte serialization (WHATWG URL
/// §5.2), as `form_urlencoded::byte_serialize`: alphanumerics and `*-._`
/// kept, space as `+`, every other byte percent-encoded in upper case.
fn push_form_encoded(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    /// The bytes written as they are.
    const KEPT: [bool; 256] = {
        let mut kept = [false; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            kept[b] = c.is_ascii_alphanumeric() || matches!(c, b'*' | b'-' | b'.' | b'_');
            b += 1;
        }
        kept
    };
    let bytes = value.as_bytes();
    let mut start = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        if KEPT[usize::from(byte)] {
            continue;
        }
        // A run of kept ASCII bytes: both ends are character boundaries.
        if start < i {
            out.push_str(&value[start..i]);
        }
        if byte == b' ' {
            out.push('+');
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        start = i + 1;
    }
    if start < bytes.len() {
        out.push_str(&value[start..]);
    }
}

/// A plain 302 with `Cache-Control: no-store`.
pub fn found(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => {
            let mut response = StatusCode::FOUND.into_response();
            response.headers_mut().insert(header::LOCATION, value);
            no_store(&mut response);
            response
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// What a requester may learn about why a client was refused.
///
/// Problems with the client's own document are the client developer's to
/// fix, so they are told precisely. Network-level refusals are not echoed:
/// "internal.corp resolves to 10.2.3.4" would turn the proxy into an oracle
/// for the internal DNS and network of whoever runs it. The full detail is
/// an audit line for the operator.
pub fn public_detail(code: ErrorCode, message: &str) -> String {
    match code {
        ErrorCode::BlockedAddress
        | ErrorCode::PortNotAllowed
        | ErrorCode::DnsFailure
        | ErrorCode::ConnectFailure
        | ErrorCode::TlsFailure
        | ErrorCode::Timeout
        | ErrorCode::FetchOverloaded => {
            // An audit line, in the request's span: the id the page shows
            // leads the administrator here.
            tracing::info!(
                target: "audit",
                event = "document_not_retrieved",
                code = code.as_str(),
                detail = %message,
                "client document not retrieved"
            );
            format!("the client's metadata document could not be retrieved ({code})")
        }
        _ => message.to_owned(),
    }
}

/// Maps an admission refusal to what the token endpoint says: the one place
/// a [`Refusal`] becomes a token error.
pub fn token_error_for_refusal(refusal: &Refusal) -> TokenError {
    match refusal.code() {
        Some(code) => token_error_for_client(code, &refusal.to_string()),
        // The token endpoint asks admission for no redirect_uri.
        None => TokenError::new(OAuthErrorCode::InvalidRequest, refusal.to_string()),
    }
}

/// Maps a refusal of the client itself to what the token endpoint says.
pub fn token_error_for_client(code: ErrorCode, message: &str) -> TokenError {
    let description = public_detail(code, message);
    match code {
        ErrorCode::FetchOverloaded | ErrorCode::Timeout => {
            TokenError::new(OAuthErrorCode::TemporarilyUnavailable, description)
        }
        _ => TokenError::new(OAuthErrorCode::InvalidClient, description),
    }
}

/// The user name of an HTTP Basic `Authorization` header, form-decoded as
/// RFC 6749 §2.3.1 requires: how a confidential client that sends no
/// `client_id` in the form names itself at a token endpoint.
pub fn basic_user(headers: &axum::http::HeaderMap) -> Option<String> {
    use base64::Engine as _;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials.trim())
        .ok()?;
    let user = decoded.split(|&b| b == b':').next()?;
    url::form_urlencoded::parse(&[b"u=", user].concat())
        .next()
        .map(|(_, value)| value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_refusals_do_not_reveal_internal_addresses() {
        let message = "internal.corp resolves to 10.2.3.4, a refused address (private, 10.0.0.0/8)";
        for code in [
            ErrorCode::BlockedAddress,
            ErrorCode::DnsFailure,
            ErrorCode::ConnectFailure,
            ErrorCode::TlsFailure,
            ErrorCode::Timeout,
        ] {
            let detail = public_detail(code, message);
            assert!(!detail.contains("10.2.3.4"), "{detail}");
            assert!(detail.contains(code.as_str()));
        }
        // The client's own document problems are the developer's to fix.
        let mismatch = "the document has client_id \"https://a.example/x\"";
        assert_eq!(
            public_detail(ErrorCode::ClientIdMismatch, mismatch),
            mismatch
        );
        let error = token_error_for_client(ErrorCode::BlockedAddress, message);
        assert_eq!(error.code, OAuthErrorCode::InvalidClient);
        assert!(!error.description.contains("10.2.3.4"));
        assert_eq!(
            token_error_for_client(ErrorCode::FetchOverloaded, "busy").code,
            OAuthErrorCode::TemporarilyUnavailable
        );
    }

    #[test]
    fn error_redirects_keep_the_clients_query_and_add_state_and_iss() {
        let redirect_uri: RedirectUri =
            serde_json::from_value(serde_json::json!("https://app.example/cb?tenant=1")).unwrap();
        let response = error_redirect(
            &redirect_uri,
            OAuthErrorCode::InvalidRequest,
            "PKCE is required",
            Some("xyz"),
            "https://proxy.example",
        );
        assert_eq!(response.status(), StatusCode::FOUND);
        let location = response.headers()[header::LOCATION].to_str().unwrap();
        let url = Url::parse(location).unwrap();
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs[0], ("tenant".into(), "1".into()));
        assert!(pairs.contains(&("error".into(), "invalid_request".into())));
        assert!(pairs.contains(&("state".into(), "xyz".into())));
        assert!(pairs.contains(&("iss".into(), "https://proxy.example".into())));
    }

    #[test]
    fn unknown_provider_errors_are_not_reflected() {
        assert_eq!(
            OAuthErrorCode::from_provider("<script>"),
            OAuthErrorCode::ServerError
        );
        // A registered code keeps its meaning (issue 11).
        assert_eq!(
            OAuthErrorCode::from_provider("login_required"),
            OAuthErrorCode::LoginRequired
        );
    }

    #[test]
    fn queries_are_built_exactly_as_the_url_crate_builds_them() {
        let params = [
            ("client_id", "https://app.example/c.json?x=1&y=2"),
            ("scope", "openid profile  mcp:tools"),
            ("state", "a-b_c.d*e~f'g\"h<i>%j+k/l"),
            ("nonce", "héllo wörld 日本 \u{1F600}"),
            ("redirect_uri", "http://127.0.0.1:8080/cb#frag"),
            ("empty", ""),
            ("ctl", "\u{0}\t\r\n\u{7f}"),
        ];
        for base in [
            "https://idp.example/authorize",
            "https://idp.example/authorize?",
            "https://idp.example/authorize?tenant=a%20b",
            "https://idp.example/oauth2/v2.0/authorize?p=1&q",
            "https://idp.example/authorize#fragment",
            "http://127.0.0.1:9000/",
        ] {
            let mut expected = Url::parse(base).unwrap();
            expected.query_pairs_mut().extend_pairs(params);
            let expected: String = expected.into();
            let built = with_query_url(&Url::parse(base).unwrap(), &params);
            assert_eq!(built, expected, "{base}");
            assert_eq!(Url::parse(&built).unwrap().as_str(), built, "{base}");
        }
    }

    #[test]
    fn basic_credentials_name_the_client_form_decoded() {
        use base64::Engine as _;
        let mut headers = axum::http::HeaderMap::new();
        let credentials = base64::engine::general_purpose::STANDARD
            .encode("https%3A%2F%2Fapp.example%2Fc:secret");
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {credentials}").parse().unwrap(),
        );
        assert_eq!(
            basic_user(&headers).as_deref(),
            Some("https://app.example/c")
        );
        headers.insert(header::AUTHORIZATION, "Bearer x".parse().unwrap());
        assert_eq!(basic_user(&headers), None);
        headers.insert(header::AUTHORIZATION, "Basic !!not-base64".parse().unwrap());
        assert_eq!(basic_user(&headers), None);
    }
}
