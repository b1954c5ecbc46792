//! `POST /revoke` (RFC 7009): a client signing out ends its grant.
//!
//! The client authenticates as at `/token` (the same admission and client
//! authentication, [`super::token::admit_and_authenticate`]). What it
//! presents decides what is revoked:
//!
//! - one of the proxy's sealed refresh tokens, issued to this client: its
//!   whole family, in the shared store (so every replica sharing the store
//!   refuses every generation at once), and then the provider's own refresh
//!   token inside it at the provider's revocation endpoint, when its
//!   discovery names one. The store comes first and decides the answer: a
//!   provider that cannot be reached is logged, the proxy's grant is
//!   already over;
//! - anything else that is not sealed by the proxy: the provider's access
//!   token (the proxy issues none of its own), passed to the provider as
//!   the client's upstream client. Without a provider revocation endpoint
//!   it cannot be revoked: `unsupported_token_type` (§2.2.1);
//! - a token the proxy sealed that no longer opens (expired, an old key,
//!   another kind), or another client's refresh token: nothing to do, and
//!   200 like every invalid token (§2.2), so the answer tells a caller
//!   nothing about a token it does not own.
//!
//! The shared store unreachable is `temporarily_unavailable` (503): the
//! family may still be live, and the client should try again.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::AppState;
use super::audit::short;
use super::oauth::{OAuthErrorCode, TokenError, no_store};
use super::params::Params;
use super::token::{
    admit_and_authenticate, client_auth_of, form_params, provider_unavailable, revoke_grant,
};
use crate::client_auth::{ClientAuthenticator, TokenClientAuth};
use crate::client_id::is_url_client_id;
use crate::flow::SealedRefresh;
use crate::registration::is_registered_client_id;
use crate::seal::SealError;
use crate::upstream::Revocation;

/// Handles `POST /revoke`.
pub async fn revoke(state: Arc<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let params = match form_params(&headers, &body) {
        Ok(params) => params,
        Err(error) => return error.into_response(),
    };
    let auth = client_auth_of(&params);
    let client_id = match ClientAuthenticator::claimed_client_id(&auth) {
        Ok(Some(id)) if is_url_client_id(&id) || is_registered_client_id(&id) => id,
        Ok(_) => {
            // A pre-registered client revokes at the provider, where its
            // tokens come from: the proxy never saw them.
            return TokenError::new(
                OAuthErrorCode::InvalidClient,
                "only clients identified by a metadata document URL, or registered at /register, revoke here",
            )
            .into_response();
        }
        Err(error) => {
            return TokenError::new(OAuthErrorCode::InvalidClient, error.description())
                .into_response();
        }
    };
    let outcome = revoke_for(&state, &params, &auth, &client_id).await;
    let (status, result) = match &outcome {
        Ok(done) => (StatusCode::OK.as_u16(), *done),
        Err(error) => (error.code.token_status().as_u16(), error.code.as_str()),
    };
    tracing::info!(
        target: "audit",
        event = "revoke",
        client_id = %short(&client_id),
        status,
        outcome = result,
    );
    match outcome {
        Ok(_) => {
            let mut response = StatusCode::OK.into_response();
            no_store(&mut response);
            response
        }
        Err(error) => error.into_response(),
    }
}

/// Authenticates the client and revokes what it presents; the `Ok` value
/// says what was done, for the audit line.
async fn revoke_for(
    state: &AppState,
    params: &Params<'_>,
    auth: &TokenClientAuth,
    client_id: &str,
) -> Result<&'static str, TokenError> {
    let admitted = admit_and_authenticate(state, client_id, auth).await?;
    let Some(token) = params.get("token") else {
        return Err(TokenError::new(
            OAuthErrorCode::InvalidRequest,
            "token is missing",
        ));
    };
    // A hint never limits the search (§2.1): a sealed refresh token is
    // recognised whatever the hint says.
    let hint = params.get("token_type_hint");
    match state.seals().open::<SealedRefresh>(token) {
        Ok(sealed) if sealed.client_id == client_id => {
            revoke_grant(state, &sealed).await?;
            Ok("family_revoked")
        }
        Ok(_) => Ok("not_this_clients"),
        Err(SealError::Malformed) => {
            let upstream = admitted.upstream.map(|upstream| upstream.name);
            revoke_at_provider(state, upstream, token, hint).await
        }
        Err(_) => Ok("not_valid"),
    }
}

/// A token the proxy did not seal: the provider's, revoked there.
async fn revoke_at_provider(
    state: &AppState,
    upstream_client: Option<&str>,
    token: &str,
    hint: Option<&str>,
) -> Result<&'static str, TokenError> {
    let unsupported = || {
        TokenError::new(
            OAuthErrorCode::UnsupportedTokenType,
            "only the proxy's refresh tokens can be revoked here",
        )
    };
    let Some(upstream_client) = upstream_client else {
        return Err(unsupported());
    };
    match state.provider.revoke(upstream_client, token, hint).await {
        Ok(Revocation::Revoked) => Ok("revoked_at_provider"),
        Ok(Revocation::NoEndpoint) => Err(unsupported()),
        Ok(Revocation::Refused(code)) if code == "unsupported_token_type" => Err(unsupported()),
        Ok(Revocation::Refused(code)) => {
            tracing::warn!(
                upstream_client,
                error = %short(&code),
                "the provider refused a revocation"
            );
            Err(TokenError::new(
                OAuthErrorCode::ServerError,
                "the identity provider refused the revocation",
            ))
        }
        Err(error) => Err(provider_unavailable(&error)),
    }
}
