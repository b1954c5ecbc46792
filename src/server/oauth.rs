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

use crate::error_code::ErrorCode;

/// The OAuth error codes the proxy emits (RFC 6749 §4.1.2.1 and §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthErrorCode {
    /// Malformed or missing parameter.
    InvalidRequest,
    /// Client authentication failed, or the client is no longer acceptable.
    InvalidClient,
    /// The code or refresh token is invalid, expired, or belongs to another client.
    InvalidGrant,
    /// The client may not use this grant.
    UnauthorizedClient,
    /// The grant type is not supported.
    UnsupportedGrantType,
    /// Only `code` is supported.
    UnsupportedResponseType,
    /// The requested scope is not allowed.
    InvalidScope,
    /// The user or the provider refused.
    AccessDenied,
    /// Something unexpected on our side.
    ServerError,
    /// The provider or the fetcher cannot answer now.
    TemporarilyUnavailable,
}

impl OAuthErrorCode {
    /// The code as it goes on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            OAuthErrorCode::InvalidRequest => "invalid_request",
            OAuthErrorCode::InvalidClient => "invalid_client",
            OAuthErrorCode::InvalidGrant => "invalid_grant",
            OAuthErrorCode::UnauthorizedClient => "unauthorized_client",
            OAuthErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            OAuthErrorCode::UnsupportedResponseType => "unsupported_response_type",
            OAuthErrorCode::InvalidScope => "invalid_scope",
            OAuthErrorCode::AccessDenied => "access_denied",
            OAuthErrorCode::ServerError => "server_error",
            OAuthErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }

    /// The HTTP status of this error at the token endpoint.
    pub const fn token_status(self) -> StatusCode {
        match self {
            OAuthErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            OAuthErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            OAuthErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// Parses a code the provider sent, keeping only ones we know (an
    /// unknown one becomes `server_error` rather than being reflected).
    pub fn from_provider(code: &str) -> OAuthErrorCode {
        match code {
            "invalid_request" => OAuthErrorCode::InvalidRequest,
            "invalid_client" => OAuthErrorCode::InvalidClient,
            "invalid_grant" => OAuthErrorCode::InvalidGrant,
            "unauthorized_client" => OAuthErrorCode::UnauthorizedClient,
            "unsupported_grant_type" => OAuthErrorCode::UnsupportedGrantType,
            "unsupported_response_type" => OAuthErrorCode::UnsupportedResponseType,
            "invalid_scope" => OAuthErrorCode::InvalidScope,
            "access_denied"
            | "login_required"
            | "consent_required"
            | "interaction_required"
            | "account_selection_required" => OAuthErrorCode::AccessDenied,
            "temporarily_unavailable" => OAuthErrorCode::TemporarilyUnavailable,
            _ => OAuthErrorCode::ServerError,
        }
    }
}

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
            "error": self.code.as_str(),
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
    redirect_uri: &str,
    code: OAuthErrorCode,
    description: &str,
    state: Option<&str>,
    issuer: &str,
) -> Response {
    let mut params = vec![("error", code.as_str()), ("error_description", description)];
    if let Some(state) = state {
        params.push(("state", state));
    }
    params.push(("iss", issuer));
    redirect_with(redirect_uri, &params)
}

/// A 302 to `base` with `params` added to its query (existing ones kept).
pub fn redirect_with(base: &str, params: &[(&str, &str)]) -> Response {
    match with_query(base, params) {
        Some(location) => found(&location),
        // Only validated URIs get here; refuse rather than build a bad Location.
        None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `base` with `params` added to its query (existing ones kept).
pub fn with_query(base: &str, params: &[(&str, &str)]) -> Option<String> {
    let mut url = Url::parse(base).ok()?;
    url.query_pairs_mut().extend_pairs(params);
    Some(url.into())
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
/// logged for the operator.
pub fn public_detail(code: ErrorCode, message: &str) -> String {
    match code {
        ErrorCode::BlockedAddress
        | ErrorCode::PortNotAllowed
        | ErrorCode::DnsFailure
        | ErrorCode::ConnectFailure
        | ErrorCode::TlsFailure
        | ErrorCode::Timeout
        | ErrorCode::FetchOverloaded => {
            tracing::info!(code = code.as_str(), detail = %message, "client document not retrieved");
            format!("the client's metadata document could not be retrieved ({code})")
        }
        _ => message.to_owned(),
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
        let response = error_redirect(
            "https://app.example/cb?tenant=1",
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
        assert_eq!(
            OAuthErrorCode::from_provider("login_required"),
            OAuthErrorCode::AccessDenied
        );
    }
}
