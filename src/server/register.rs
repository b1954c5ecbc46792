//! `POST /register`: dynamic client registration (RFC 7591), answered with
//! a sealed client_id and nothing stored (see [`crate::registration`]).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::AppState;
use super::audit::short;
use super::oauth::no_store;
use crate::registration::{RegistrationError, source_address, unix_now};

/// The most any registration body may be (`registration.max_body_bytes`
/// is at most this): the route's own limit, above the parameter limit of
/// the other routes. The configured limit is checked by the handler, so a
/// reload that changes it takes effect at once.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Handles `POST /register`. `peer` is the TCP peer (absent only when the
/// router is called in-process, which then counts as one source).
pub async fn register(
    state: Arc<AppState>,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let config = state.registrar.config();
    if !config.enabled {
        return StatusCode::NOT_FOUND.into_response();
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    let source = source_address(
        peer.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        &forwarded,
        &config.trusted_proxies,
    );
    let outcome = registration(&state, source, headers, &body).await;
    let (status, detail) = match &outcome {
        Ok(registered) => ("registered", short(&registered.client_id).to_string()),
        Err(error) => (error.outcome(), "-".to_owned()),
    };
    tracing::info!(
        target: "audit",
        event = "register",
        outcome = status,
        client_id = %detail,
    );
    match outcome {
        Ok(registered) => {
            let mut response = (StatusCode::CREATED, Json(registered.body)).into_response();
            no_store(&mut response);
            response
        }
        Err(error) => error_response(&error),
    }
}

/// The checks in order: who may register, how often, then what.
async fn registration(
    state: &AppState,
    source: IpAddr,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<crate::registration::Registered, RegistrationError> {
    let registrar = &state.registrar;
    registrar.limit_source(&state.store, source).await?;
    registrar.check_token(
        headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
    )?;
    registrar.limit_global(&state.store).await?;
    if !is_json(headers) {
        return Err(RegistrationError::InvalidClientMetadata(
            "the body must be application/json".to_owned(),
        ));
    }
    let metadata = registrar.validate(body)?;
    let (metadata, vouched_by) = match state.trust.vet_registration(&metadata).await {
        Ok(Some((issuer, overrides))) => (
            registrar.with_statement(&metadata, overrides)?,
            Some(issuer),
        ),
        Ok(None) => (metadata, None),
        Err(error) => {
            return Err(RegistrationError::InvalidSoftwareStatement(format!(
                "software_statement: {error}"
            )));
        }
    };
    registrar.seal(&state.sealer, &metadata, vouched_by, unix_now())
}

/// Whether the request says its body is JSON: the media type,
/// case-insensitive, with or without parameters (`charset`).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// An RFC 7591 §3.2.2 error: JSON, not cached, with the header a 401 or a
/// 429 calls for.
fn error_response(error: &RegistrationError) -> Response {
    let body = serde_json::json!({
        "error": error.code().on_the_wire(),
        "error_description": error.to_string(),
    });
    let mut response = (error.status(), Json(body)).into_response();
    no_store(&mut response);
    match error {
        RegistrationError::InvalidToken => {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer error="invalid_token""#),
            );
        }
        RegistrationError::RateLimited(seconds) => {
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        _ => {}
    }
    response
}
