//! `/callback`: the provider returns the user here (relay mode), and the
//! proxy relays the result to the client's validated redirect_uri.
//!
//! Everything about the client comes from the sealed `state`, which only
//! this deployment can have made; a state that does not open is an error
//! page, since there is then no trusted place to redirect to.

use std::sync::Arc;

use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::authorize::{SealedState, short};
use super::oauth::{OAuthErrorCode, error_redirect, redirect_with};
use super::pages::{PageReason, error_page};
use super::params::Params;
use crate::seal::Purpose;

/// The code the client receives: the provider's code, bound to the client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SealedCode {
    /// The provider's authorization code.
    pub upstream_code: String,
    /// The CIMD client_id the code was issued to.
    pub client_id: String,
    /// The redirect_uri the code was delivered to.
    pub redirect_uri: String,
    /// The client's nonce, expected in the provider's id_token.
    pub nonce: Option<String>,
    /// The scopes requested upstream.
    pub scope: String,
    /// The upstream client (configuration name).
    pub upstream_client: String,
}

/// Handles `GET /callback`.
pub fn callback(state: Arc<AppState>, params: Params) -> Response {
    let Some(sealed) = params.get("state") else {
        return error_page(PageReason::InvalidState, "state is missing", None);
    };
    let flow: SealedState = match state.sealer.open(Purpose::State, sealed) {
        Ok(flow) => flow,
        Err(error) => {
            tracing::info!(target: "audit", event = "callback", outcome = "invalid_state", reason = %error);
            return error_page(PageReason::InvalidState, &error.to_string(), None);
        }
    };
    let issuer = state.issuer.as_str();
    let client_state = flow.state.as_deref();
    let audit = |outcome: &str| {
        tracing::info!(
            target: "audit",
            event = "callback",
            client_id = %short(&flow.client_id),
            upstream_client = %flow.upstream_client,
            outcome,
        );
    };

    // RFC 9207: a provider that names itself must name the right issuer,
    // or this response may come from another server (mix-up attack).
    if let Some(iss) = params.get("iss") {
        if iss != state.provider.metadata().issuer {
            audit("issuer_mismatch");
            return error_redirect(
                &flow.redirect_uri,
                OAuthErrorCode::AccessDenied,
                "the identity provider's response names another issuer",
                client_state,
                issuer,
            );
        }
    }
    if let Some(error) = params.get("error") {
        let code = OAuthErrorCode::from_provider(error);
        audit(code.as_str());
        let description = params
            .get("error_description")
            .map(|text| text.chars().take(200).collect::<String>())
            .unwrap_or_else(|| "the identity provider refused the request".to_owned());
        return error_redirect(&flow.redirect_uri, code, &description, client_state, issuer);
    }
    let Some(upstream_code) = params.get("code") else {
        audit("invalid_request");
        return error_redirect(
            &flow.redirect_uri,
            OAuthErrorCode::ServerError,
            "the identity provider returned no code",
            client_state,
            issuer,
        );
    };
    let sealed_code = state.sealer.try_seal(
        Purpose::Code,
        state.config.seal.code_ttl,
        &SealedCode {
            upstream_code: upstream_code.to_owned(),
            client_id: flow.client_id.clone(),
            redirect_uri: flow.redirect_uri.clone(),
            nonce: flow.nonce.clone(),
            scope: flow.scope.clone(),
            upstream_client: flow.upstream_client.clone(),
        },
    );
    let code = match sealed_code {
        Ok(code) => code,
        Err(error) => {
            audit("seal_failed");
            tracing::warn!(%error, "cannot seal the authorization code");
            return error_redirect(
                &flow.redirect_uri,
                OAuthErrorCode::ServerError,
                "the sign-in could not be completed",
                client_state,
                issuer,
            );
        }
    };
    audit("ok");
    let mut response_params = vec![("code", code.as_str())];
    if let Some(client_state) = client_state {
        response_params.push(("state", client_state));
    }
    response_params.push(("iss", issuer));
    redirect_with(&flow.redirect_uri, &response_params)
}
