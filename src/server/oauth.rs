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
    match Url::parse(base) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(params);
            found(url.as_str())
        }
        // Only validated URIs get here; refuse rather than build a bad Location.
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
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

/// Maps a refusal of the client itself to what the token endpoint says.
pub fn token_error_for_client(code: ErrorCode, message: String) -> TokenError {
    match code {
        ErrorCode::FetchOverloaded | ErrorCode::Timeout => {
            TokenError::new(OAuthErrorCode::TemporarilyUnavailable, message)
        }
        _ => TokenError::new(OAuthErrorCode::InvalidClient, message),
    }
}
