//! `/callback`: the provider returns the user here (relay mode), and the
//! proxy relays the result to the client's validated redirect_uri.
//!
//! Everything about the client comes from the sealed `state`, which only
//! this deployment can have made; a state that does not open is an error
//! page, since there is then no trusted place to redirect to. A state is
//! spent once, in the shared store: a replayed callback would otherwise
//! mint a second code for the provider's one (which then fails there, and
//! may make the provider revoke the first grant).

use std::sync::Arc;

use axum::response::Response;

use super::AppState;
use super::audit::short;
use super::oauth::{OAuthErrorCode, error_redirect, redirect_with};
use super::pages::{PageReason, error_page};
use super::params::Params;
use crate::error_code::provider_description;
use crate::flow::{Sealed as _, SealedCode, SealedState};
use crate::store::{SingleUseKind, Use};

/// The provider's discovery member saying it sends `iss` (RFC 9207 §3).
const ISS_SUPPORTED: &str = "authorization_response_iss_parameter_supported";

/// Handles `GET /callback`.
pub async fn callback(state: Arc<AppState>, params: Params<'_>) -> Response {
    let Some(sealed) = params.get("state") else {
        return error_page(PageReason::InvalidState, "state is missing", None);
    };
    let flow: SealedState = match state.seals().open(sealed) {
        Ok(flow) => flow,
        Err(error) => {
            tracing::info!(target: "audit", event = "callback", outcome = "invalid_state", reason = %error);
            return error_page(PageReason::InvalidState, &error.to_string(), None);
        }
    };
    let audit = |outcome: &str| {
        tracing::info!(
            target: "audit",
            event = "callback",
            client_id = %short(&flow.client_id),
            upstream_client = %flow.upstream_client,
            outcome,
        );
    };
    // Spent for as long as it could open: its whole lifetime.
    let lifetime = SealedState::lifetime(&state.config.seal);
    match state
        .store
        .use_once(SingleUseKind::State, flow.id.as_bytes(), lifetime)
        .await
    {
        Ok(Use::First) => {}
        Ok(Use::Replayed) => {
            audit("state_replayed");
            return error_page(
                PageReason::InvalidState,
                "this sign-in was already completed",
                None,
            );
        }
        Err(error) => {
            tracing::warn!(%error, "cannot spend the sign-in's state");
            audit("store_unavailable");
            return error_page(
                PageReason::Unavailable,
                "the sign-in cannot be checked right now",
                None,
            );
        }
    }
    match relay(&state, &params, &flow) {
        Ok(response) => {
            audit("ok");
            response
        }
        Err((outcome, code, description)) => {
            audit(outcome);
            error_redirect(
                &flow.redirect_uri,
                code,
                &description,
                flow.state.as_deref(),
                &state.issuer,
            )
        }
    }
}

/// An error the client receives at its redirect_uri: the audit outcome, the
/// OAuth code and its description.
type Relayed = (&'static str, OAuthErrorCode, String);

/// The provider's answer relayed to the client: our sealed code, the
/// client's state and our issuer, or the provider's error.
fn relay(state: &AppState, params: &Params<'_>, flow: &SealedState) -> Result<Response, Relayed> {
    // RFC 9207: a provider that names itself must name the right issuer,
    // or this response may come from another server (mix-up attack); one
    // that says it always does (§2.4) must not be believed without it.
    let provider = state.provider.metadata();
    match params.get("iss") {
        Some(iss) if iss != provider.issuer => {
            return Err((
                "issuer_mismatch",
                OAuthErrorCode::AccessDenied,
                "the identity provider's response names another issuer".to_owned(),
            ));
        }
        None if provider.raw.get(ISS_SUPPORTED) == Some(&serde_json::Value::Bool(true)) => {
            return Err((
                "issuer_missing",
                OAuthErrorCode::AccessDenied,
                "the identity provider's response does not name its issuer".to_owned(),
            ));
        }
        _ => {}
    }
    if let Some(error) = params.get("error") {
        let code = OAuthErrorCode::from_provider(error);
        let provider_host = url::Url::parse(&provider.issuer).ok();
        let description = params
            .get("error_description")
            .map(|text| {
                provider_description(text, provider_host.as_ref().and_then(url::Url::host_str))
            })
            .filter(|text| !text.is_empty())
            .unwrap_or_else(|| "the identity provider refused the request".to_owned());
        return Err((code.as_str(), code, description));
    }
    let Some(upstream_code) = params.get("code") else {
        return Err((
            "invalid_request",
            OAuthErrorCode::ServerError,
            "the identity provider returned no code".to_owned(),
        ));
    };
    let code = state
        .seals()
        .seal(&SealedCode {
            upstream_code: upstream_code.to_owned(),
            client_id: flow.client_id.clone(),
            redirect_uri: flow.redirect_uri.clone(),
            redirect_uri_asked: flow.redirect_uri_asked,
            nonce: flow.nonce.clone(),
            scope: flow.scope.clone(),
            upstream_client: flow.upstream_client.clone(),
            granted_scope: flow.granted_scope.clone(),
            resource: flow.resource.clone(),
            metadata: flow.metadata,
        })
        .map_err(|error| {
            tracing::warn!(%error, "cannot seal the authorization code");
            (
                "seal_failed",
                OAuthErrorCode::ServerError,
                "the sign-in could not be completed".to_owned(),
            )
        })?;
    let mut response_params = vec![("code", code.as_str())];
    if let Some(client_state) = flow.state.as_deref() {
        response_params.push(("state", client_state));
    }
    response_params.push(("iss", state.issuer.as_str()));
    Ok(redirect_with(&flow.redirect_uri, &response_params))
}
