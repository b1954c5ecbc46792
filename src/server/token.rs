//! `/token`: authenticate the CIMD client, open what we sealed, call the
//! provider as the pre-registered client, and make the answer the client's.
//!
//! Every request re-resolves the client's document (through the cache) and
//! re-applies the current policy, which is how revocation works without a
//! registry: deny a client_id, or let its document vanish, and its refresh
//! tokens stop at once.
//!
//! Refresh tokens rotate, with reuse detection (OAuth 2.1 §4.3.1): the code
//! exchange starts a family in the shared store, every refresh returns the
//! family's next generation, and presenting an older one revokes the
//! family. The store is asked only after the provider answered, so a
//! provider failure never turns the client's retry into "reuse".

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Map, Value};

use super::AppState;
use super::audit::short;
use super::oauth::{OAuthErrorCode, TokenError, no_store, token_error_for_refusal};
use super::params::Params;
use crate::admission::Ask;
use crate::client_auth::{ClientAuthenticator, TokenClientAuth};
use crate::client_id::is_url_client_id;
use crate::flow::{RedirectUri, SealedCode, SealedRefresh};
use crate::id_token::{IdTokenVerifier, reissue_claims};
use crate::metadata::ClientMetadata;
use crate::registration::is_registered_client_id;
use crate::store::{Backend, FamilyStatus, Rotation, Store, StoreError};
use crate::upstream::RedirectMode;

/// The lifetime of the id_tokens the proxy issues.
const ID_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// Whether the request says its body is a form (RFC 6749 §3.2): the media
/// type, case-insensitive, with or without parameters (`charset`).
fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| {
            media
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// Handles `POST /token`.
pub async fn token(state: Arc<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !is_form(&headers) {
        count("", "invalid_request");
        return TokenError::new(
            OAuthErrorCode::InvalidRequest,
            "the body must be application/x-www-form-urlencoded",
        )
        .into_response();
    }
    let params = match Params::parse(&body) {
        Ok(params) => params,
        Err(error) => {
            return TokenError::new(OAuthErrorCode::InvalidRequest, error.to_string())
                .into_response();
        }
    };
    let auth = TokenClientAuth {
        client_id: params.get("client_id").map(str::to_owned),
        client_assertion_type: params.get("client_assertion_type").map(str::to_owned),
        client_assertion: params.get("client_assertion").map(str::to_owned),
        has_client_secret: params.get("client_secret").is_some(),
    };
    let claimed = match ClientAuthenticator::claimed_client_id(&auth) {
        Ok(claimed) => claimed,
        Err(error) => {
            return TokenError::new(OAuthErrorCode::InvalidClient, error.description())
                .into_response();
        }
    };
    let grant_type = params.get("grant_type").unwrap_or_default().to_owned();
    let client_id = match claimed {
        Some(id) if is_url_client_id(&id) || is_registered_client_id(&id) => id,
        // A pre-registered client (or one we cannot name): the provider's business.
        other => return forward(&state, body, &headers, other.as_deref(), &grant_type).await,
    };
    let mut upstream_client = None;
    let outcome = cimd_token(
        &state,
        &params,
        &auth,
        &client_id,
        &grant_type,
        &mut upstream_client,
    )
    .await;
    let (status, error) = match &outcome {
        Ok(response) => (response.status().as_u16(), "-"),
        Err(error) => (error.code.token_status().as_u16(), error.code.as_str()),
    };
    count(&grant_type, if error == "-" { "ok" } else { error });
    tracing::info!(
        target: "audit",
        event = "token",
        mode = crate::metrics::Mode::Relay.as_str(),
        client_id = %short(&client_id),
        upstream_client = upstream_client.as_deref().unwrap_or("-"),
        grant_type = %short(&grant_type),
        status,
        error = %error,
    );
    outcome.unwrap_or_else(IntoResponse::into_response)
}

async fn forward(
    state: &AppState,
    body: Bytes,
    headers: &HeaderMap,
    client_id: Option<&str>,
    grant_type: &str,
) -> Response {
    tracing::info!(
        target: "audit",
        event = "token",
        mode = crate::metrics::Mode::Relay.as_str(),
        client_id = %short(client_id.unwrap_or("-")),
        grant_type = %short(grant_type),
        decision = "pass_through",
    );
    count(grant_type, "pass_through");
    let authorization = headers.get(header::AUTHORIZATION).cloned();
    match state
        .provider
        .forward_token_request(body, authorization)
        .await
    {
        Ok(answer) => {
            let (parts, body) = answer.into_parts();
            let mut response = (parts.status, body).into_response();
            if let Some(content_type) = parts.headers.get(header::CONTENT_TYPE) {
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, content_type.clone());
            }
            no_store(&mut response);
            response
        }
        Err(error) => provider_unavailable(&error).into_response(),
    }
}

/// Counts a token request; the grant type becomes a closed label.
fn count(grant_type: &str, outcome: &'static str) {
    let grant_type = match grant_type {
        "authorization_code" => "authorization_code",
        "refresh_token" => "refresh_token",
        _ => "other",
    };
    crate::metrics::METRICS
        .token_requests
        .with_label_values(&[crate::metrics::Mode::Relay.as_str(), grant_type, outcome])
        .inc();
}

/// A provider failure as the client sees it: the code, and a sentence
/// that does not reveal the provider's address or our transport; the
/// detail goes to the log.
fn provider_unavailable(error: &crate::upstream::UpstreamError) -> TokenError {
    tracing::warn!(%error, "token request to the provider failed");
    let code = error.oauth_error();
    let description = if code == OAuthErrorCode::TemporarilyUnavailable {
        "the identity provider is unavailable; try again later"
    } else {
        "the proxy could not complete the request at the identity provider"
    };
    TokenError::new(code, description)
}

/// The token request of a CIMD client. `upstream_client` learns, for the
/// audit line, which pre-registered client the grant was made as.
async fn cimd_token(
    state: &AppState,
    params: &Params,
    auth: &TokenClientAuth,
    client_id: &str,
    grant_type: &str,
    upstream_client: &mut Option<String>,
) -> Result<Response, TokenError> {
    // Revocation without a registry: the document and the policy, now.
    let admitted = state
        .admission()
        .admit(client_id, Ask::default())
        .await
        .map_err(|refusal| token_error_for_refusal(&refusal))?;
    let client = &admitted.client;
    state
        .client_auth
        .authenticate(client.client_id(), &client.metadata, auth)
        .await
        .map_err(|error| TokenError::new(error.oauth_error(), error.description()))?;
    match grant_type {
        "authorization_code" => {
            let direct = admitted
                .upstream
                .filter(|upstream| upstream.redirect_mode() == RedirectMode::Direct)
                .map(|upstream| upstream.name);
            let presented = open_code(state, params, &client.metadata, direct)?;
            *upstream_client = Some(presented.grant.upstream_client.clone());
            exchange_code(state, presented).await
        }
        "refresh_token" => refresh_token(state, params, client_id, upstream_client).await,
        "" => Err(TokenError::new(
            OAuthErrorCode::InvalidRequest,
            "grant_type is missing",
        )),
        _ => Err(TokenError::new(
            OAuthErrorCode::UnsupportedGrantType,
            "only authorization_code and refresh_token are supported",
        )),
    }
}

/// What an `authorization_code` request presents, opened and checked.
struct PresentedCode<'p> {
    /// The grant: the provider's code and what it is bound to.
    grant: SealedCode,
    /// The client's PKCE verifier, for the provider to check.
    verifier: &'p str,
    /// What to do with the provider's id_token.
    id_token: IdToken,
}

/// Opens the code an `authorization_code` request presents. A relayed
/// sign-in presents the code we sealed at `/callback`; a client mapped onto
/// a `direct` upstream client presents the provider's own code, which the
/// provider has bound to the redirect_uri and the PKCE challenge.
fn open_code<'p>(
    state: &AppState,
    params: &'p Params,
    metadata: &ClientMetadata,
    direct_upstream: Option<&str>,
) -> Result<PresentedCode<'p>, TokenError> {
    let client_id = metadata.client_id.as_str();
    let Some(code) = params.get("code") else {
        return Err(TokenError::new(
            OAuthErrorCode::InvalidRequest,
            "code is missing",
        ));
    };
    let Some(verifier) = params.get("code_verifier") else {
        return Err(TokenError::new(
            OAuthErrorCode::InvalidRequest,
            "code_verifier is missing (PKCE is required)",
        ));
    };
    let (grant, id_token) = match (state.seals().open::<SealedCode>(code), direct_upstream) {
        (Ok(sealed), _) => {
            if sealed.client_id != client_id {
                return Err(TokenError::new(
                    OAuthErrorCode::InvalidGrant,
                    "the authorization code was issued to another client",
                ));
            }
            // RFC 6749 §4.1.3: required when the authorization request
            // named one, and then identical (see the README's security model).
            match params.get("redirect_uri") {
                Some(uri) if uri != sealed.redirect_uri.as_str() => {
                    return Err(TokenError::new(
                        OAuthErrorCode::InvalidGrant,
                        "redirect_uri does not match the authorization request",
                    ));
                }
                None if sealed.redirect_uri_asked => {
                    return Err(TokenError::new(
                        OAuthErrorCode::InvalidRequest,
                        "redirect_uri is missing: the authorization request named one",
                    ));
                }
                _ => {}
            }
            let id_token = if has_openid(&sealed.scope) {
                IdToken::Reissue {
                    expected_nonce: sealed.nonce.clone(),
                }
            } else {
                IdToken::Drop
            };
            (sealed, id_token)
        }
        (Err(_), Some(direct)) => {
            let Some(redirect_uri) = params
                .get("redirect_uri")
                .and_then(|uri| RedirectUri::registered(metadata, uri))
            else {
                return Err(TokenError::new(
                    OAuthErrorCode::InvalidGrant,
                    "redirect_uri is missing or not one the client lists",
                ));
            };
            let grant = SealedCode {
                upstream_code: code.to_owned(),
                client_id: client_id.to_owned(),
                redirect_uri,
                redirect_uri_asked: true,
                nonce: None,
                scope: String::new(),
                upstream_client: direct.to_owned(),
            };
            (grant, IdToken::ReissueWithProviderNonce)
        }
        (Err(error), None) => {
            return Err(TokenError::new(
                OAuthErrorCode::InvalidGrant,
                format!("the authorization code is not valid ({})", error.as_str()),
            ));
        }
    };
    Ok(PresentedCode {
        grant,
        verifier,
        id_token,
    })
}

/// The provider's code exchanged as the pre-registered client, with the
/// client's PKCE verifier, and the answer made the client's.
async fn exchange_code(
    state: &AppState,
    PresentedCode {
        grant,
        verifier,
        id_token,
    }: PresentedCode<'_>,
) -> Result<Response, TokenError> {
    let upstream_redirect = match state.upstream_mode(&grant.upstream_client) {
        RedirectMode::Relay => state.callback_url(),
        RedirectMode::Direct => grant.redirect_uri.as_str().to_owned(),
    };
    let answer = state
        .provider
        .token(
            &grant.upstream_client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &grant.upstream_code),
                ("redirect_uri", &upstream_redirect),
                ("code_verifier", verifier),
            ],
        )
        .await
        .map_err(|error| provider_unavailable(&error))?;
    finish(
        state,
        answer,
        &grant.client_id,
        &grant.upstream_client,
        &grant.scope,
        id_token,
        Refresh::Start,
    )
    .await
}

fn has_openid(scope: &str) -> bool {
    scope.split(' ').any(|scope| scope == "openid")
}

/// What to do with the provider's id_token in a token response.
enum IdToken {
    /// The client did not ask for `openid`: drop it.
    Drop,
    /// Verify it (with the nonce the client sent, if any) and issue ours.
    Reissue {
        /// The client's nonce, sealed since `/authorize`.
        expected_nonce: Option<String>,
    },
    /// Direct mode: we never saw the authorization request, so the nonce the
    /// provider verified and signed is carried over.
    ReissueWithProviderNonce,
}

/// What the client's refresh token becomes in a successful answer.
enum Refresh {
    /// The code exchange: a refresh token from the provider starts a family.
    Start,
    /// A refresh: the family advances from the presented generation; the
    /// provider's new refresh token travels inside, or the one it kept.
    Rotate(SealedRefresh),
}

/// A store that cannot answer: the step is refused, never skipped.
fn store_unavailable(error: &StoreError) -> TokenError {
    tracing::warn!(%error, "the shared store cannot answer; refusing the grant");
    TokenError::new(
        OAuthErrorCode::TemporarilyUnavailable,
        "the grant cannot be checked right now; try again later",
    )
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

async fn refresh_token(
    state: &AppState,
    params: &Params,
    client_id: &str,
    upstream_client: &mut Option<String>,
) -> Result<Response, TokenError> {
    let Some(token) = params.get("refresh_token") else {
        return Err(TokenError::new(
            OAuthErrorCode::InvalidRequest,
            "refresh_token is missing",
        ));
    };
    let sealed: SealedRefresh = state.seals().open(token).map_err(|error| {
        TokenError::new(
            OAuthErrorCode::InvalidGrant,
            format!("the refresh token is not valid: {error}"),
        )
    })?;
    if sealed.client_id != client_id {
        return Err(TokenError::new(
            OAuthErrorCode::InvalidGrant,
            "the refresh token was issued to another client",
        ));
    }
    *upstream_client = Some(sealed.upstream_client.clone());
    // A revoked family, or an old generation, is refused before the
    // provider is asked; an old generation revokes the family here.
    check_family(&state.store, &sealed).await?;
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", sealed.upstream_refresh_token.as_str()),
    ];
    if let Some(scope) = params.get("scope") {
        form.push(("scope", scope));
    }
    let answer = state
        .provider
        .token(&sealed.upstream_client, &form)
        .await
        .map_err(|error| provider_unavailable(&error))?;
    let id_token = if has_openid(&sealed.scope) {
        // On refresh there is no nonce (OIDC Core §12.2).
        IdToken::Reissue {
            expected_nonce: None,
        }
    } else {
        IdToken::Drop
    };
    let (scope, upstream) = (sealed.scope.clone(), sealed.upstream_client.clone());
    finish(
        state,
        answer,
        client_id,
        &upstream,
        &scope,
        id_token,
        Refresh::Rotate(sealed),
    )
    .await
}

/// Where the presented token's family stands, before the provider is
/// asked. With the memory backend an unknown family (made by another
/// replica, or before a restart) goes on, to be adopted; with Redis it is
/// refused.
async fn check_family(store: &Store, sealed: &SealedRefresh) -> Result<(), TokenError> {
    match store
        .family_status(sealed.family)
        .await
        .map_err(|error| store_unavailable(&error))?
    {
        FamilyStatus::Current(current) if current == sealed.generation => Ok(()),
        FamilyStatus::Current(_) => {
            // Presented before: the store revokes the family as it refuses.
            let rotation = store
                .advance_family(sealed.family, sealed.generation)
                .await
                .map_err(|error| store_unavailable(&error))?;
            Err(refused_rotation(rotation, sealed))
        }
        FamilyStatus::Revoked => Err(refused_rotation(Rotation::Revoked, sealed)),
        FamilyStatus::Unknown if store.backend() == Backend::Memory => Ok(()),
        FamilyStatus::Unknown => Err(refused_rotation(Rotation::Unknown, sealed)),
    }
}

/// The refusal of a refresh token whose family did not advance.
fn refused_rotation(rotation: Rotation, sealed: &SealedRefresh) -> TokenError {
    let description = match rotation {
        Rotation::Reused => {
            tracing::warn!(
                target: "audit",
                event = "refresh_reuse",
                client_id = %short(&sealed.client_id),
                family = %sealed.family,
                generation = sealed.generation,
                "a rotated refresh token was presented again; its family is revoked"
            );
            "the refresh token was already used; the grant is revoked"
        }
        Rotation::Revoked => "the refresh token's grant was revoked",
        Rotation::Unknown | Rotation::Advanced { .. } => "the refresh token's grant has ended",
    };
    TokenError::new(OAuthErrorCode::InvalidGrant, description)
}

/// The sealed refresh token the client gets: a new family's first
/// generation after a code exchange, the family's next after a refresh.
async fn rotated_refresh(
    state: &AppState,
    refresh: Refresh,
    upstream_refresh_token: Option<String>,
    client_id: &str,
    upstream_client: &str,
    scope: &str,
) -> Result<Option<String>, TokenError> {
    let now = unix_now();
    let payload = match refresh {
        // A provider that issues no refresh token gets the client none.
        Refresh::Start => {
            let Some(upstream_refresh_token) = upstream_refresh_token else {
                return Ok(None);
            };
            let ttl = state.config.seal.refresh_token_ttl;
            let family = state
                .store
                .create_family(ttl)
                .await
                .map_err(|error| store_unavailable(&error))?;
            SealedRefresh {
                upstream_refresh_token,
                client_id: client_id.to_owned(),
                scope: scope.to_owned(),
                upstream_client: upstream_client.to_owned(),
                family: family.id,
                generation: family.generation,
                family_expires_at: now.saturating_add(ttl.as_secs()),
            }
        }
        Refresh::Rotate(presented) => {
            let remaining = Duration::from_secs(presented.family_expires_at.saturating_sub(now));
            let mut rotation = state
                .store
                .advance_family(presented.family, presented.generation)
                .await
                .map_err(|error| store_unavailable(&error))?;
            if rotation == Rotation::Unknown
                && state
                    .store
                    .adopt_family(
                        presented.family,
                        presented.generation.saturating_add(1),
                        remaining,
                    )
                    .await
                    .map_err(|error| store_unavailable(&error))?
            {
                rotation = Rotation::Advanced {
                    generation: presented.generation.saturating_add(1),
                };
            }
            let Rotation::Advanced { generation } = rotation else {
                // The provider's fresh tokens are dropped with the grant.
                return Err(refused_rotation(rotation, &presented));
            };
            SealedRefresh {
                // Google never rotates: then the provider's own token is kept.
                upstream_refresh_token: upstream_refresh_token
                    .unwrap_or(presented.upstream_refresh_token),
                generation,
                ..presented
            }
        }
    };
    let remaining = Duration::from_secs(payload.family_expires_at.saturating_sub(now));
    state
        .seals()
        .seal_for(&payload, remaining)
        .map(Some)
        .map_err(|error| {
            tracing::warn!(%error, "cannot seal the refresh token");
            TokenError::new(OAuthErrorCode::ServerError, "cannot issue a refresh token")
        })
}

/// Turns the provider's answer into the client's: the id_token re-issued
/// under the proxy's key, then the refresh token sealed to the client. The
/// refresh family advances last, once nothing else can fail: a failure
/// before it leaves the presented token usable for a retry.
async fn finish(
    state: &AppState,
    answer: crate::upstream::TokenResponse,
    client_id: &str,
    upstream_client: &str,
    scope: &str,
    id_token: IdToken,
    refresh: Refresh,
) -> Result<Response, TokenError> {
    let mut body = answer.body;
    if !answer.status.is_success() {
        return Err(provider_refusal(&body, upstream_client));
    }
    if let Some(Value::String(provider_id_token)) = body.remove("id_token") {
        let nonce = match &id_token {
            IdToken::Drop => None,
            IdToken::Reissue { expected_nonce } => {
                Some(NonceRule::Expect(expected_nonce.as_deref()))
            }
            IdToken::ReissueWithProviderNonce => Some(NonceRule::CarryOver),
        };
        if let Some(nonce) = nonce {
            let ours = reissue_id_token(
                state,
                &provider_id_token,
                client_id,
                upstream_client,
                nonce,
                body.get("access_token").and_then(Value::as_str),
            )
            .await?;
            body.insert("id_token".into(), Value::String(ours));
        }
    }
    let upstream_refresh_token = match body.remove("refresh_token") {
        Some(Value::String(token)) => Some(token),
        _ => None,
    };
    // Direct mode never saw the request's scopes: the provider's answer names them.
    let scope = if scope.is_empty() {
        body.get("scope")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    } else {
        scope.to_owned()
    };
    if let Some(sealed) = rotated_refresh(
        state,
        refresh,
        upstream_refresh_token,
        client_id,
        upstream_client,
        &scope,
    )
    .await?
    {
        body.insert("refresh_token".into(), Value::String(sealed));
    }
    let mut response = (StatusCode::OK, Json(Value::Object(body))).into_response();
    no_store(&mut response);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// The provider's OAuth error, relayed reduced to its known fields.
fn provider_refusal(body: &Map<String, Value>, upstream_client: &str) -> TokenError {
    let code = body
        .get("error")
        .and_then(Value::as_str)
        .map_or(OAuthErrorCode::ServerError, OAuthErrorCode::from_provider);
    if code == OAuthErrorCode::InvalidClient {
        // The client authenticated to us; the provider refusing *our*
        // credentials is our fault, not the client's.
        tracing::error!(
            upstream_client,
            "the provider refused the proxy's credentials for this upstream client"
        );
        return TokenError::new(
            OAuthErrorCode::ServerError,
            "the proxy's credentials were refused by the identity provider",
        );
    }
    let description = body
        .get("error_description")
        .and_then(Value::as_str)
        .map(|text| text.chars().take(300).collect::<String>())
        .unwrap_or_default();
    TokenError::new(code, description)
}

/// Which nonce the proxy's id_token carries.
enum NonceRule<'a> {
    /// The provider's must equal this one (when set), and ours carries it.
    Expect(Option<&'a str>),
    /// Ours carries whatever the provider's verified token carries.
    CarryOver,
}

/// Verifies the provider's id_token and issues the proxy's own.
async fn reissue_id_token(
    state: &AppState,
    id_token: &str,
    client_id: &str,
    upstream_client: &str,
    nonce: NonceRule<'_>,
    access_token: Option<&str>,
) -> Result<String, TokenError> {
    let expected_nonce = match nonce {
        NonceRule::Expect(expected) => expected,
        NonceRule::CarryOver => None,
    };
    let provider = state.provider.metadata();
    let audience = state
        .provider
        .client_id_of(upstream_client)
        .unwrap_or_default()
        .to_owned();
    let verifier = IdTokenVerifier::new(provider.issuer.clone(), audience);
    let unavailable = |error: &dyn std::fmt::Display| {
        tracing::warn!(%error, "cannot read the provider's JWKS");
        TokenError::new(
            OAuthErrorCode::TemporarilyUnavailable,
            "the identity provider's keys are unavailable; try again later",
        )
    };
    let keys = state
        .provider
        .jwks(false)
        .await
        .map_err(|e| unavailable(&e))?;
    let claims = match verifier.verify(id_token, &keys, expected_nonce) {
        Err(error) if error.is_unknown_key() => {
            // The provider may have rotated its keys: refetch once.
            let keys = state
                .provider
                .jwks(true)
                .await
                .map_err(|e| unavailable(&e))?;
            verifier.verify(id_token, &keys, expected_nonce)
        }
        other => other,
    }
    .map_err(|error| {
        tracing::warn!(%error, "the provider's id_token failed verification");
        TokenError::new(
            OAuthErrorCode::ServerError,
            "the identity provider's id_token could not be verified",
        )
    })?;
    let claims: Map<String, Value> = claims;
    let nonce = match nonce {
        NonceRule::Expect(expected) => expected,
        NonceRule::CarryOver => claims.get("nonce").and_then(Value::as_str),
    };
    let ours = reissue_claims(
        &claims,
        &state.issuer,
        client_id,
        nonce,
        access_token,
        state.signing.alg(),
        ID_TOKEN_LIFETIME,
    );
    state.signing.sign(&ours).map_err(|error| {
        tracing::error!(%error, "cannot sign an id_token");
        TokenError::new(OAuthErrorCode::ServerError, "cannot sign the id_token")
    })
}
