//! `/token`: authenticate the CIMD client, open what we sealed, call the
//! provider as the pre-registered client, and make the answer the client's.
//!
//! Every request re-resolves the client's document (through the cache) and
//! re-applies the current policy, which is how revocation works without a
//! registry: deny a client_id, or let its document vanish, and its refresh
//! tokens stop at once.
//!
//! A relayed pre-registered client (`[[upstream.relayed_clients]]`) takes
//! the same path, except that the provider authenticates it: the proxy
//! checks only that it presented what it is registered with, and makes the
//! grant as that client with those credentials. Remove it from the list and
//! its refresh tokens stop too (they are then passed through, and the
//! provider does not know them).
//!
//! Refresh tokens rotate, with reuse detection (OAuth 2.1 §4.3.1): the code
//! exchange starts a family in the shared store, every refresh returns the
//! family's next generation, and presenting an older one revokes the
//! family. The family advances in one store call before the provider is
//! asked (a reused or revoked token never reaches it), and goes back if
//! the refresh then fails (`rewind_family`), so a provider failure never
//! turns the client's retry into "reuse". A grant
//! that ends here (reuse, or a client document that changed what the user
//! trusted) ends at the provider too, when it has a revocation endpoint.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Map, Value};

use super::AppState;
use super::audit::short;
use super::oauth::{OAuthErrorCode, TokenError, basic_user, no_store, token_error_for_refusal};
use super::params::Params;
use crate::admission::{Admitted, Ask, Origin, ScopeRefused};
use crate::client_auth::{ClientAuthenticator, TokenClientAuth};
use crate::client_id::is_url_client_id;
use crate::error_code::provider_description;
use crate::flow::{MetadataFingerprint, RedirectUri, SealedCode, SealedRefresh};
use crate::id_token::{IdTokenVerifier, reissue_claims};
use crate::metadata::ClientMetadata;
use crate::policy::OnMetadataChange;
use crate::registration::is_registered_client_id;
use crate::store::{Backend, FamilyId, Rotation, StoreError};
use crate::upstream::{Grant, Leg, RedirectMode, Revocation, TargetError, normalise_resource};

/// The lifetime of the id_tokens the proxy issues.
const ID_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// Whether the request says its body is a form (RFC 6749 §3.2): the media
/// type, case-insensitive, with or without parameters (`charset`).
pub(super) fn is_form(headers: &HeaderMap) -> bool {
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

/// A token endpoint's body (`/token`, `/revoke`): a form, and only a form
/// (RFC 6749 §3.2, RFC 7009 §2.1), with strict parameters.
pub(super) fn form_params<'b>(
    headers: &HeaderMap,
    body: &'b [u8],
) -> Result<Params<'b>, TokenError> {
    if !is_form(headers) {
        return Err(TokenError::new(
            OAuthErrorCode::InvalidRequest,
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    Params::parse(body)
        .map_err(|error| TokenError::new(OAuthErrorCode::InvalidRequest, error.to_string()))
}

/// Handles `POST /token`.
pub async fn token(state: Arc<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let params = match form_params(&headers, &body) {
        Ok(params) => params,
        Err(error) => {
            count("", "invalid_request");
            return error.into_response();
        }
    };
    let auth = client_auth_of(&params);
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
        other => {
            // A confidential pre-registered client may name itself only in
            // its Basic credentials (RFC 6749 §2.3.1).
            let named = other.or_else(|| basic_user(&headers));
            match named {
                Some(id) if state.admission().relayed(&id).is_some() => id,
                // A pre-registered client (or one we cannot name): the provider's business.
                other => {
                    return forward(&state, body, &headers, other.as_deref(), &grant_type).await;
                }
            }
        }
    };
    let mut upstream_client = None;
    let outcome = cimd_token(
        &state,
        &params,
        (&auth, &headers),
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

/// The client-authentication fields of a `/token` or `/revoke` form.
pub(super) fn client_auth_of(params: &Params<'_>) -> TokenClientAuth {
    TokenClientAuth {
        client_id: params.get("client_id").map(str::to_owned),
        client_assertion_type: params.get("client_assertion_type").map(str::to_owned),
        client_assertion: params.get("client_assertion").map(str::to_owned),
        has_client_secret: params.get("client_secret").is_some(),
    }
}

/// Admission for a token endpoint: the document and the policy (or the
/// relayed list), now: revocation without a registry.
async fn admit<'s>(state: &'s AppState, client_id: &str) -> Result<Admitted<'s>, TokenError> {
    state
        .admission()
        .admit(client_id, Ask::default())
        .await
        .map_err(|refusal| token_error_for_refusal(&refusal))
}

/// A client's authentication at the proxy, against its document (or its
/// registration).
async fn authenticate(
    state: &AppState,
    id: &str,
    metadata: &ClientMetadata,
    auth: &TokenClientAuth,
) -> Result<(), TokenError> {
    state
        .client_auth
        .authenticate(id, metadata, auth)
        .await
        .map_err(|error| TokenError::new(error.oauth_error(), error.description()))
}

/// The sequence `/revoke` shares with `/token` for a CIMD client:
/// admission, then the request's client authentication against the
/// document. A relayed pre-registered client is refused: the proxy cannot
/// check the secret it shares with the provider.
pub(super) async fn admit_and_authenticate<'s>(
    state: &'s AppState,
    client_id: &str,
    auth: &TokenClientAuth,
) -> Result<Admitted<'s>, TokenError> {
    let admitted = admit(state, client_id).await?;
    let client = &admitted.client;
    if matches!(client.origin, Origin::Relayed) {
        return Err(TokenError::new(
            OAuthErrorCode::InvalidClient,
            "a relayed pre-registered client cannot revoke at the proxy",
        ));
    }
    authenticate(state, client.client_id(), &client.metadata, auth).await?;
    Ok(admitted)
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
pub(super) fn provider_unavailable(error: &crate::upstream::UpstreamError) -> TokenError {
    tracing::warn!(%error, "token request to the provider failed");
    let code = error.oauth_error();
    let description = if code == OAuthErrorCode::TemporarilyUnavailable {
        "the identity provider is unavailable; try again later"
    } else {
        "the proxy could not complete the request at the identity provider"
    };
    TokenError::new(code, description)
}

/// The token request of a CIMD client, or of a relayed pre-registered one.
/// `upstream_client` learns, for the audit line, which pre-registered
/// client the grant was made as.
async fn cimd_token(
    state: &AppState,
    params: &Params<'_>,
    (auth, headers): (&TokenClientAuth, &HeaderMap),
    client_id: &str,
    grant_type: &str,
    upstream_client: &mut Option<String>,
) -> Result<Response, TokenError> {
    let admitted = admit(state, client_id).await?;
    let client = &admitted.client;
    // A relayed client authenticates to the provider, with what it
    // presents here; any other to the proxy, against its metadata.
    let relayed = if matches!(client.origin, Origin::Relayed) {
        // Admission gives a relayed client its own registration.
        let Some(registration) = admitted.upstream else {
            return Err(TokenError::new(
                OAuthErrorCode::InvalidClient,
                "the client is not known to the proxy",
            ));
        };
        Some(relayed_credentials(registration.client, params, headers)?)
    } else {
        authenticate(state, client.client_id(), &client.metadata, auth).await?;
        None
    };
    match grant_type {
        "authorization_code" => {
            let direct = admitted
                .upstream
                .filter(|upstream| upstream.redirect_mode() == RedirectMode::Direct)
                .map(|upstream| upstream.name);
            let presented = open_code(state, params, &client.metadata, direct)?;
            *upstream_client = Some(presented.grant.upstream_client.clone());
            let live = MetadataFingerprint::of(&client.metadata);
            if metadata_changed(state, presented.grant.metadata, live, client_id) {
                return Err(metadata_refusal());
            }
            let answer = exchange_code(state, presented, relayed.as_ref(), live).await;
            answer.inspect(|_| state.inventory.completed(client_id))
        }
        "refresh_token" => {
            let ceiling = admitted.decision.scopes.as_deref();
            refresh_token(
                state,
                params,
                (client_id, &client.metadata),
                ceiling,
                upstream_client,
                relayed.as_ref(),
            )
            .await
        }
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

/// Who the proxy makes a grant as at the provider.
enum Party<'a> {
    /// The `[upstream.clients]` entry of this name, sealed into the grant,
    /// with the proxy's credentials for it (a CIMD client's grant).
    Upstream(&'a str),
    /// A relayed pre-registered client, as itself, with the credentials it
    /// presented to the proxy: the provider checks them.
    Relayed {
        /// Its client_id, at the provider and here.
        client_id: &'a str,
        /// What it authenticated with.
        credentials: &'a RelayedCredentials,
    },
}

/// The credentials a relayed client presented, passed on to the provider.
/// No `Debug`: they are the client's secret.
enum RelayedCredentials {
    /// A public client: PKCE only.
    None,
    /// Its `Authorization: Basic` header, as sent.
    Basic(HeaderValue),
    /// Its `client_secret` form parameter.
    Post(String),
}

impl<'a> Party<'a> {
    /// The party a grant sealed with `upstream_client` for `client_id` is
    /// made as: the relayed client itself when it presented `relayed`.
    fn of(
        upstream_client: &'a str,
        client_id: &'a str,
        relayed: Option<&'a RelayedCredentials>,
    ) -> Self {
        match relayed {
            None => Party::Upstream(upstream_client),
            Some(credentials) => Party::Relayed {
                client_id,
                credentials,
            },
        }
    }

    /// The name sealed into the grant's tokens: the upstream client's, or
    /// the relayed client's client_id.
    fn name(&self) -> &'a str {
        match self {
            Party::Upstream(name) => name,
            Party::Relayed { client_id, .. } => client_id,
        }
    }

    /// The token request at the provider.
    async fn token(
        &self,
        state: &AppState,
        form: &[(&str, &str)],
    ) -> Result<crate::upstream::TokenResponse, TokenError> {
        let answer = match self {
            Party::Upstream(name) => state.provider.token(name, form).await,
            Party::Relayed {
                client_id,
                credentials,
            } => {
                let (authorization, secret) = match credentials {
                    RelayedCredentials::None => (None, None),
                    RelayedCredentials::Basic(header) => (Some(header.clone()), None),
                    RelayedCredentials::Post(secret) => (None, Some(secret.as_str())),
                };
                state
                    .provider
                    .relayed_token(client_id, form, authorization, secret)
                    .await
            }
        };
        answer.map_err(|error| provider_unavailable(&error))
    }

    /// The provider-side client_id the provider's id_token is issued to.
    fn provider_client_id<'s>(&'s self, state: &'s AppState) -> &'s str {
        match self {
            Party::Upstream(name) => state.provider.client_id_of(name).unwrap_or_default(),
            Party::Relayed { client_id, .. } => client_id,
        }
    }
}

/// Checks that a relayed client authenticated the way it is registered at
/// the provider, and returns what to pass on. The provider verifies the
/// secret; the proxy only refuses what cannot be right, before the
/// provider is asked.
fn relayed_credentials(
    registration: &crate::upstream::UpstreamClient,
    params: &Params<'_>,
    headers: &HeaderMap,
) -> Result<RelayedCredentials, TokenError> {
    use crate::upstream::UpstreamAuthMethod;
    let basic = headers
        .get(header::AUTHORIZATION)
        .filter(|_| basic_user(headers).is_some());
    let form_secret = params.get("client_secret");
    if params.get("client_assertion").is_some() {
        return Err(TokenError::new(
            OAuthErrorCode::InvalidClient,
            "this client does not authenticate with a client_assertion",
        ));
    }
    if let (Some(form_id), Some(named)) = (params.get("client_id"), basic_user(headers)) {
        if form_id != named {
            return Err(TokenError::new(
                OAuthErrorCode::InvalidClient,
                "the client_id parameter does not match the Basic credentials",
            ));
        }
    }
    let invalid =
        |description: &str| Err(TokenError::new(OAuthErrorCode::InvalidClient, description));
    match (registration.auth_method, basic, form_secret) {
        (UpstreamAuthMethod::None, None, None) => Ok(RelayedCredentials::None),
        (UpstreamAuthMethod::None, _, _) => {
            invalid("this client is public: it must not send a client secret")
        }
        (UpstreamAuthMethod::ClientSecretBasic, Some(header), None) => {
            Ok(RelayedCredentials::Basic(header.clone()))
        }
        (UpstreamAuthMethod::ClientSecretBasic, _, _) => {
            invalid("this client must authenticate with HTTP Basic (client_secret_basic)")
        }
        (UpstreamAuthMethod::ClientSecretPost, None, Some(secret)) => {
            Ok(RelayedCredentials::Post(secret.to_owned()))
        }
        (UpstreamAuthMethod::ClientSecretPost, _, _) => {
            invalid("this client must send its client_secret in the form (client_secret_post)")
        }
        // Refused when the configuration is read.
        (UpstreamAuthMethod::PrivateKeyJwt, _, _) => {
            invalid("this client's authentication method cannot be relayed")
        }
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
            check_resource(params, sealed.resource.as_deref())?;
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
            // The provider bound the code to the resource it was asked
            // for; the proxy binds the refresh token to the one named here.
            let resource = params
                .get("resource")
                .map(|resource| state.config.upstream.translation.allowed_resource(resource))
                .transpose()
                .map_err(|error| invalid_target(&error))?;
            let grant = SealedCode {
                upstream_code: code.to_owned(),
                client_id: client_id.to_owned(),
                redirect_uri,
                redirect_uri_asked: true,
                nonce: None,
                scope: String::new(),
                upstream_client: direct.to_owned(),
                granted_scope: String::new(),
                resource,
                // The provider's code: bound to the document as it is now.
                metadata: Some(MetadataFingerprint::of(metadata)),
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
    relayed: Option<&RelayedCredentials>,
    live: MetadataFingerprint,
) -> Result<Response, TokenError> {
    let party = Party::of(&grant.upstream_client, &grant.client_id, relayed);
    let mode = match party {
        Party::Upstream(name) => state.upstream_mode(name),
        Party::Relayed { .. } => RedirectMode::Relay,
    };
    let upstream_redirect = match mode {
        RedirectMode::Relay => state.callback_url(),
        RedirectMode::Direct => grant.redirect_uri.as_str().to_owned(),
    };
    let translated = state
        .config
        .upstream
        .translation
        .translate(
            &Grant {
                scope: &grant.granted_scope,
                resource: grant.resource.as_deref(),
                may_refresh: true,
            },
            Leg::CodeExchange,
        )
        .map_err(|error| invalid_target(&error))?;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", grant.upstream_code.as_str()),
        ("redirect_uri", upstream_redirect.as_str()),
        ("code_verifier", verifier),
    ];
    form.extend(
        translated
            .params
            .iter()
            .map(|(name, value)| (*name, value.as_str())),
    );
    let answer = party.token(state, &form).await?;
    finish(
        state,
        answer,
        &grant.client_id,
        &party,
        &grant.scope,
        id_token,
        Refresh::Start {
            granted_scope: grant.granted_scope.clone(),
            resource: grant.resource.clone(),
            metadata: live,
        },
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
    /// The code exchange: a refresh token from the provider starts a
    /// family, bound to the grant's scopes and resource and to the
    /// client's document as it is now.
    Start {
        /// The scopes granted to the client, before translation.
        granted_scope: String,
        /// The resource granted.
        resource: Option<String>,
        /// The client's document at the code exchange.
        metadata: MetadataFingerprint,
    },
    /// A refresh: the family, advanced before the provider was asked,
    /// stands at `generation`; the provider's new refresh token travels
    /// inside, or the one it kept.
    Rotate {
        /// The token presented.
        presented: SealedRefresh,
        /// The family's generation now.
        generation: u64,
    },
}

/// A store that cannot answer: the step is refused, never skipped.
pub(super) fn store_unavailable(error: &StoreError) -> TokenError {
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

/// A refresh: the grant's binding checked (client, resource, a scope that
/// only narrows), then the same translation as at sign-in.
async fn refresh_token(
    state: &AppState,
    params: &Params<'_>,
    (client_id, metadata): (&str, &ClientMetadata),
    ceiling: Option<&[String]>,
    upstream_client: &mut Option<String>,
    relayed: Option<&RelayedCredentials>,
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
    check_resource(params, sealed.resource.as_deref())?;
    let narrowed = narrowed_scope(&sealed, params.get("scope"), ceiling)
        .map_err(|refused| TokenError::new(OAuthErrorCode::InvalidScope, refused.to_string()))?;
    let translated = state
        .config
        .upstream
        .translation
        .translate(
            &Grant {
                scope: &sealed.granted_scope,
                resource: sealed.resource.as_deref(),
                may_refresh: true,
            },
            Leg::Refresh {
                scope: narrowed.as_deref(),
            },
        )
        .map_err(|error| invalid_target(&error))?;
    // A revoked family, or an old generation, is refused before the
    // provider is asked; an old generation revokes the family here.
    let generation = advance_family(state, &sealed).await?;
    let live = MetadataFingerprint::of(metadata);
    if metadata_changed(state, sealed.metadata, live, client_id) {
        // The grant ends here: every generation of the family with it (so
        // there is no advance to take back).
        revoke_grant(state, &sealed).await?;
        return Err(metadata_refusal());
    }
    // From here on the grant is bound to the document it was checked against.
    let sealed = SealedRefresh {
        metadata: Some(live),
        ..sealed
    };
    let (family, presented) = (sealed.family, sealed.generation);
    let refreshed =
        refresh_advanced(state, client_id, sealed, generation, translated, relayed).await;
    if refreshed.is_err() {
        // The client keeps the token it presented, for a retry.
        rewind_family(state, family, generation, presented).await;
    }
    refreshed
}

/// A refresh after its family advanced to `generation` and the document
/// was checked against the grant: the provider asked, the answer made the
/// client's.
async fn refresh_advanced(
    state: &AppState,
    client_id: &str,
    sealed: SealedRefresh,
    generation: u64,
    translated: crate::upstream::UpstreamRequest,
    relayed: Option<&RelayedCredentials>,
) -> Result<Response, TokenError> {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", sealed.upstream_refresh_token.as_str()),
    ];
    if let Some(scope) = &translated.scope {
        form.push(("scope", scope));
    }
    form.extend(
        translated
            .params
            .iter()
            .map(|(name, value)| (*name, value.as_str())),
    );
    let upstream_name = sealed.upstream_client.clone();
    let party = Party::of(&upstream_name, client_id, relayed);
    let answer = party.token(state, &form).await?;
    let id_token = if has_openid(&sealed.scope) {
        // On refresh there is no nonce (OIDC Core §12.2).
        IdToken::Reissue {
            expected_nonce: None,
        }
    } else {
        IdToken::Drop
    };
    let scope = sealed.scope.clone();
    finish(
        state,
        answer,
        client_id,
        &party,
        &scope,
        id_token,
        Refresh::Rotate {
            presented: sealed,
            generation,
        },
    )
    .await
}

/// A refused resource, as the client sees it.
fn invalid_target(error: &TargetError) -> TokenError {
    TokenError::new(OAuthErrorCode::InvalidTarget, error.to_string())
}

/// RFC 8707 §2.2: a token request may name the resource again, and then
/// only the one granted.
fn check_resource(params: &Params<'_>, granted: Option<&str>) -> Result<(), TokenError> {
    let Some(asked) = params.get("resource") else {
        return Ok(());
    };
    let asked = normalise_resource(asked).map_err(|error| invalid_target(&error))?;
    if granted == Some(asked.as_str()) {
        Ok(())
    } else {
        Err(invalid_target(&TargetError::NotGranted))
    }
}

/// The scope a refresh asks the provider for, `None` for the grant's own:
/// what the client asks may only narrow the grant (RFC 6749 §6), and the
/// policy's current ceiling applies as at sign-in.
///
/// A client may name a granted scope as it asked for it (`mcp`) or as the
/// provider's answer named it after translation (`api://app/mcp`); the
/// latter was derived from a scope within the ceiling, so only the former
/// is cut by it.
fn narrowed_scope(
    sealed: &SealedRefresh,
    asked: Option<&str>,
    ceiling: Option<&[String]>,
) -> Result<Option<String>, NarrowingRefused> {
    let granted: Vec<&str> = sealed
        .granted_scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    let translated: Vec<&str> = sealed.scope.split(' ').filter(|s| !s.is_empty()).collect();
    let within = |scope: &str| ceiling.is_none_or(|ceiling| ceiling.iter().any(|c| c == scope));
    let Some(asked) = asked else {
        // Nothing asked: the grant, unless the ceiling has shrunk since.
        if granted.iter().all(|scope| within(scope)) {
            return Ok(None);
        }
        let kept: Vec<&str> = granted.into_iter().filter(|scope| within(scope)).collect();
        return if kept.is_empty() {
            Err(NarrowingRefused::Ceiling(ScopeRefused))
        } else {
            Ok(Some(kept.join(" ")))
        };
    };
    let mut kept = Vec::new();
    for scope in asked.split(' ').filter(|s| !s.is_empty()) {
        if granted.contains(&scope) {
            if within(scope) {
                kept.push(scope);
            }
        } else if translated.contains(&scope) {
            kept.push(scope);
        } else {
            return Err(NarrowingRefused::Wider);
        }
    }
    if kept.is_empty() {
        return Err(NarrowingRefused::Ceiling(ScopeRefused));
    }
    // Repeated scopes are dropped by the translation.
    Ok(Some(kept.join(" ")))
}

/// Why a refresh's scope is refused (`invalid_scope`).
#[derive(Debug, thiserror::Error)]
enum NarrowingRefused {
    /// A scope the grant does not hold.
    #[error("the requested scope exceeds the scope originally granted")]
    Wider,
    /// Nothing the policy still allows.
    #[error(transparent)]
    Ceiling(ScopeRefused),
}

/// Advances the presented token's family to its next generation, before
/// the provider is asked. With the memory backend an unknown family (made
/// by another replica, or before a restart) is adopted at the next
/// generation; with Redis it is refused. An old generation revokes the
/// family, here and at the provider.
async fn advance_family(state: &AppState, sealed: &SealedRefresh) -> Result<u64, TokenError> {
    let store = &state.store;
    let rotation = store
        .advance_family(sealed.family, sealed.generation)
        .await
        .map_err(|error| store_unavailable(&error))?;
    let next = sealed.generation.saturating_add(1);
    match rotation {
        Rotation::Advanced { generation } => Ok(generation),
        Rotation::Unknown if store.backend() == Backend::Memory => {
            let remaining =
                Duration::from_secs(sealed.family_expires_at.saturating_sub(unix_now()));
            let adopted = store
                .adopt_family(sealed.family, next, remaining)
                .await
                .map_err(|error| store_unavailable(&error))?;
            // Not adopted: another request took it on first.
            adopted
                .then_some(next)
                .ok_or_else(|| refused_rotation(Rotation::Unknown, sealed))
        }
        Rotation::Reused => {
            // A token was stolen and used: the provider's grant ends too.
            revoke_upstream(
                state,
                &sealed.upstream_client,
                &sealed.upstream_refresh_token,
            )
            .await;
            Err(refused_rotation(rotation, sealed))
        }
        Rotation::Unknown | Rotation::Revoked => Err(refused_rotation(rotation, sealed)),
    }
}

/// Takes back an advance whose refresh failed, so that the client's retry
/// with the token it holds is not "reuse". A store that cannot do it is
/// logged: that retry then revokes the family, and the user signs in again.
async fn rewind_family(state: &AppState, family: FamilyId, advanced: u64, presented: u64) {
    if let Err(error) = state.store.rewind_family(family, advanced, presented).await {
        tracing::warn!(
            %error,
            %family,
            "cannot take back a refresh family's advance; a retry will end the grant"
        );
    }
}

/// Whether a grant bound to `bound` must stop now that the client's
/// document is `live`: only when they differ and the policy refuses. A
/// difference the policy allows is logged and counted, and the grant goes
/// on. A grant sealed before fingerprints existed (`None`) goes on.
fn metadata_changed(
    state: &AppState,
    bound: Option<MetadataFingerprint>,
    live: MetadataFingerprint,
    client_id: &str,
) -> bool {
    if bound.is_none_or(|bound| bound == live) {
        return false;
    }
    let action = state.config.policy.on_metadata_change;
    let label: &'static str = action.into();
    crate::metrics::METRICS
        .metadata_changes
        .with_label_values(&[label])
        .inc();
    tracing::warn!(
        target: "audit",
        event = "metadata_change",
        client_id = %short(client_id),
        action = label,
        "the client's redirect URIs, authentication method or keys changed since the grant was made"
    );
    action == OnMetadataChange::Refuse
}

/// The refusal of a grant made under another version of the document.
fn metadata_refusal() -> TokenError {
    TokenError::new(
        OAuthErrorCode::InvalidGrant,
        "the client's metadata changed since the grant was made; sign in again",
    )
}

/// Ends the grant `sealed` belongs to: its family in the store (which
/// decides the answer), then at the provider ([`revoke_upstream`]: its
/// failure is only logged).
pub(super) async fn revoke_grant(
    state: &AppState,
    sealed: &SealedRefresh,
) -> Result<(), TokenError> {
    state
        .store
        .revoke_family(sealed.family)
        .await
        .map_err(|error| store_unavailable(&error))?;
    revoke_upstream(
        state,
        &sealed.upstream_client,
        &sealed.upstream_refresh_token,
    )
    .await;
    Ok(())
}

/// Tells the provider that a grant ended here: `token`, its refresh token,
/// revoked at its revocation endpoint (RFC 7009) when its discovery names
/// one. A failure is only logged: the proxy's own grant is over either way.
pub(super) async fn revoke_upstream(state: &AppState, upstream_client: &str, token: &str) {
    match state
        .provider
        .revoke(upstream_client, token, Some("refresh_token"))
        .await
    {
        Ok(Revocation::Revoked | Revocation::NoEndpoint) => {}
        Ok(Revocation::Refused(code)) => tracing::warn!(
            upstream_client,
            error = %short(&code),
            "the provider refused to revoke its refresh token; the proxy's grant is revoked"
        ),
        Err(error) => tracing::warn!(
            %error,
            "the provider's revocation endpoint failed; the proxy's grant is revoked"
        ),
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
        Refresh::Start {
            granted_scope,
            resource,
            metadata,
        } => {
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
                granted_scope,
                resource,
                metadata: Some(metadata),
            }
        }
        Refresh::Rotate {
            presented,
            generation,
        } => SealedRefresh {
            // Google never rotates: then the provider's own token is kept.
            upstream_refresh_token: upstream_refresh_token
                .unwrap_or(presented.upstream_refresh_token),
            generation,
            ..presented
        },
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
/// under the proxy's key, then the refresh token sealed to the client: a
/// new family after a code exchange, the family's generation (advanced
/// before the provider was asked) after a refresh.
async fn finish(
    state: &AppState,
    answer: crate::upstream::TokenResponse,
    client_id: &str,
    party: &Party<'_>,
    scope: &str,
    id_token: IdToken,
    refresh: Refresh,
) -> Result<Response, TokenError> {
    let mut body = answer.body;
    if !answer.status.is_success() {
        let provider = state.provider.metadata();
        let issuer = url::Url::parse(&provider.issuer).ok();
        let host = issuer.as_ref().and_then(url::Url::host_str);
        return Err(provider_refusal(&body, party, host));
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
            let (ours, sub) = reissue_id_token(
                state,
                &provider_id_token,
                client_id,
                party,
                nonce,
                body.get("access_token").and_then(Value::as_str),
            )
            .await?;
            // A user is counted when they sign in; a refresh is the same
            // user again, and would cost a store write per refresh.
            if let (Some(sub), Refresh::Start { .. }) = (sub, &refresh) {
                let issuer = &state.provider.metadata().issuer;
                state.inventory.user(client_id, issuer, &sub);
            }
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
        party.name(),
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
fn provider_refusal(
    body: &Map<String, Value>,
    party: &Party<'_>,
    provider_host: Option<&str>,
) -> TokenError {
    let code = body
        .get("error")
        .and_then(Value::as_str)
        .map_or(OAuthErrorCode::ServerError, OAuthErrorCode::from_provider);
    if let (OAuthErrorCode::InvalidClient, Party::Upstream(upstream_client)) = (code, party) {
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
        .map(|text| provider_description(text, provider_host))
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

/// Verifies the provider's id_token and issues the proxy's own; with the
/// provider's `sub`, the user it names.
async fn reissue_id_token(
    state: &AppState,
    id_token: &str,
    client_id: &str,
    party: &Party<'_>,
    nonce: NonceRule<'_>,
    access_token: Option<&str>,
) -> Result<(String, Option<String>), TokenError> {
    let expected_nonce = match nonce {
        NonceRule::Expect(expected) => expected,
        NonceRule::CarryOver => None,
    };
    let provider = state.provider.metadata();
    let audience = party.provider_client_id(state).to_owned();
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
    let signed = state.signing.sign(&ours).map_err(|error| {
        tracing::error!(%error, "cannot sign an id_token");
        TokenError::new(OAuthErrorCode::ServerError, "cannot sign the id_token")
    })?;
    let sub = claims.get("sub").and_then(Value::as_str).map(str::to_owned);
    Ok((signed, sub))
}
