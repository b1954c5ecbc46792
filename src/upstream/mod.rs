//! Everything the proxy says to the identity provider.
//!
//! The provider is configured by the operator (`[upstream]`), so its URLs do
//! not go through the SSRF-hardened [`crate::egress::Egress`]: it may sit on
//! a private address in the cluster, or on plain http on loopback in tests.
//! What still holds for every call (see [`http`]): rustls with the ring
//! provider, the web PKI roots plus `extra_root_certs`, one deadline
//! (`timeout_ms`) over connect, headers and body, no redirect followed, no
//! proxy from the environment, and a 1 MiB cap on every answer.
//!
//! The pieces:
//! - [`discovery`]: the provider's metadata, from OpenID discovery or
//!   RFC 8414, checked against the configured issuer;
//! - [`credentials`]: the pre-registered clients' secrets and private keys,
//!   loaded once at start-up (fail fast) and never logged;
//! - [`Provider`]: token calls as a pre-registered client, the verbatim
//!   forwarding of a pre-registered client's own token request, and the
//!   provider's JWKS, read and cached by the same rules as every key set
//!   (`jwks`: parsing, a rate-limited refetch, one fetch at a
//!   time), kept when a refetch fails.

mod config;
mod credentials;
mod discovery;
mod http;
mod identity_provider;
mod translate;

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use ::http::header::{self, HeaderValue};
use ::http::{Response, StatusCode};
use bytes::Bytes;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use url::Url;

use crate::error_code::OAuthErrorCode;
use crate::jwks::{self, KeySetPolicy, KeySetSlot, WhenRefetchFails};
pub use config::{RedirectMode, RelayedClient, UpstreamAuthMethod, UpstreamClient, UpstreamConfig};
use credentials::{Credential, LoadedClient};
pub use discovery::{oauth_authorization_server_url, openid_configuration_url};
use http::HttpClient;
pub use identity_provider::IdentityProvider;
pub use translate::{
    Grant, Leg, OIDC_SCOPES, Profile, ResourceParameter, TargetError, Translation, UpstreamRequest,
    may_refresh, normalise_resource,
};

/// The provider's metadata: what discovery found, with the configured
/// endpoint overrides applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderMetadata {
    /// The issuer exactly as the provider wrote it. This, not the configured
    /// URL (which `url` normalises), is what the provider's `iss` values are
    /// compared with.
    pub issuer: String,
    /// Where users are sent to sign in (the override, if configured).
    pub authorization_endpoint: Url,
    /// Where codes and refresh tokens are exchanged (the override, if configured).
    pub token_endpoint: Url,
    /// The provider's signing keys, for its id_tokens.
    pub jwks_uri: Option<Url>,
    /// The OpenID userinfo endpoint, if the provider has one.
    pub userinfo_endpoint: Option<Url>,
    /// The RFC 7009 revocation endpoint, if the provider has one.
    pub revocation_endpoint: Option<Url>,
    /// The scopes the provider advertises.
    pub scopes_supported: Option<Vec<String>>,
    /// The claims the provider advertises.
    pub claims_supported: Option<Vec<String>>,
    /// The whole discovery document, for carrying other fields over.
    pub raw: serde_json::Map<String, serde_json::Value>,
}

/// What the provider did with a revocation ([`Provider::revoke`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// It answered 2xx: the token is revoked (or was not valid; RFC 7009
    /// §2.2 does not tell them apart).
    Revoked,
    /// Its discovery names no revocation endpoint: nothing was sent.
    NoEndpoint,
    /// It refused with this OAuth error code (a 4xx with an error object).
    Refused(String),
}

/// The answer to a grant the proxy made as a pre-registered client: a 2xx
/// token response, or the provider's OAuth error body (4xx) with its status,
/// which the server relays to the client.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenResponse {
    /// The provider's HTTP status.
    pub status: StatusCode,
    /// The provider's JSON object, untouched. Holds tokens: never log it.
    pub body: serde_json::Map<String, serde_json::Value>,
}

/// What can go wrong talking to the provider. Messages name URLs, files,
/// variables and statuses, never a secret, code, token or assertion, and
/// never a byte of a provider's answer body.
#[derive(Debug, thiserror::Error, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum UpstreamError {
    /// `[upstream] issuer` is not configured.
    #[error("upstream.issuer is required")]
    #[strum(serialize = "invalid_issuer")]
    MissingIssuer,
    /// The configured issuer cannot be an RFC 8414 issuer identifier.
    #[error("upstream.issuer {issuer}: {reason}")]
    InvalidIssuer {
        /// The configured issuer.
        issuer: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A pre-registered client's secret or key could not be loaded.
    #[error("upstream.clients.{client}: {reason}")]
    Credential {
        /// The client's name in the configuration.
        client: String,
        /// What failed, naming the variable or file, never the value.
        reason: String,
    },
    /// The TLS client could not be built (e.g. `extra_root_certs`).
    #[error("upstream TLS setup: {0}")]
    #[strum(serialize = "tls_setup")]
    Tls(String),
    /// The discovery document is missing or unusable.
    #[error("provider discovery at {url}: {reason}")]
    Discovery {
        /// The URL that was read.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The discovered `issuer` is not the configured one (RFC 8414 §3.3).
    #[error("the provider's metadata names issuer {found:?}, but upstream.issuer is {expected:?}")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The issuer in the document.
        found: String,
    },
    /// No `[upstream.clients.NAME]` of that name (a server bug or a stale policy).
    #[error("no upstream client named {0:?}")]
    UnknownClient(String),
    /// The `private_key_jwt` client assertion could not be made.
    #[error("cannot sign the client assertion for upstream client {client}: {reason}")]
    Assertion {
        /// The client's name in the configuration.
        client: String,
        /// What failed.
        reason: String,
    },
    /// The provider's metadata has no `jwks_uri`.
    #[error("the provider publishes no jwks_uri")]
    NoJwksUri,
    /// The call did not finish within `upstream.timeout_ms`.
    #[error("the provider did not answer {url} within {timeout:?}")]
    Timeout {
        /// The URL called.
        url: String,
        /// The deadline.
        timeout: Duration,
    },
    /// No connection, a TLS failure, or the connection broke.
    #[error("cannot reach the provider at {url}: {reason}")]
    Unavailable {
        /// The URL called.
        url: String,
        /// The transport's reason.
        reason: String,
    },
    /// A 5xx (or another status the call cannot use).
    #[error("the provider answered {url} with HTTP {status}")]
    Status {
        /// The URL called.
        url: String,
        /// The provider's status.
        status: u16,
    },
    /// An answer that is not JSON, too large, encoded, or a 4xx without an OAuth error.
    #[error("unusable answer from the provider at {url}: {reason}")]
    InvalidResponse {
        /// The URL called.
        url: String,
        /// What is wrong with it (never its content).
        reason: String,
    },
}

impl UpstreamError {
    /// The OAuth `error` code to answer a client with: the provider being
    /// slow, down or odd is `temporarily_unavailable`; our own
    /// configuration or code being wrong is `server_error`.
    pub fn oauth_error(&self) -> OAuthErrorCode {
        if self.is_transient() {
            OAuthErrorCode::TemporarilyUnavailable
        } else {
            OAuthErrorCode::ServerError
        }
    }

    /// The HTTP status that goes with [`Self::oauth_error`]: 503 or 500.
    pub fn http_status(&self) -> u16 {
        self.oauth_error().token_status().as_u16()
    }

    /// A stable, closed label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        self.into()
    }

    fn is_transient(&self) -> bool {
        matches!(
            self,
            UpstreamError::Timeout { .. }
                | UpstreamError::Unavailable { .. }
                | UpstreamError::Status { .. }
                | UpstreamError::InvalidResponse { .. }
        )
    }
}

/// How often an unknown `kid` may trigger a JWKS refetch: a flood of tokens
/// with made-up kids must not become a flood of requests to the provider.
const JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// A cached JWKS older than this is refetched even without an unknown kid,
/// so a key the provider withdrew stops being trusted.
const JWKS_MAX_AGE: Duration = Duration::from_secs(3600);

/// Fields of the token request that only this module sets: the upstream
/// client's identity is ours, never the caller's.
const RESERVED_PARAMS: [&str; 5] = [
    "grant_type",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
];

/// The identity provider. `Send + Sync`; share it behind an `Arc`.
pub struct Provider {
    config: UpstreamConfig,
    http: HttpClient,
    metadata: RwLock<Arc<ProviderMetadata>>,
    clients: BTreeMap<String, LoadedClient>,
    /// The provider's key set (one fetch at a time, see [`KeySetSlot`]).
    jwks: KeySetSlot,
    jwks_refresh_interval: Duration,
    jwks_max_age: Duration,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The clients hold secrets; list only their names.
        f.debug_struct("Provider")
            .field("metadata", &self.metadata())
            .field("clients", &self.clients.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// Loads every pre-registered client's secret or key as [`Provider::discover`]
    /// does, without any network: `(client name, what failed)` for each that
    /// fails, for `config check --secrets` and `serve` to list them all.
    pub fn credential_problems(config: &UpstreamConfig) -> Vec<(String, String)> {
        config
            .clients
            .iter()
            .filter_map(
                |(name, client)| match credentials::load_client(name, client) {
                    Ok(_) => None,
                    Err(UpstreamError::Credential { client, reason }) => Some((client, reason)),
                    Err(other) => Some((name.clone(), other.to_string())),
                },
            )
            .collect()
    }

    /// Reads OpenID discovery (`<issuer>/.well-known/openid-configuration`)
    /// or, when that is a 404, RFC 8414
    /// (`<origin>/.well-known/oauth-authorization-server<issuer path>`);
    /// explicit endpoint keys override the discovered ones; the discovered
    /// `issuer` must equal the configured one. Loads every upstream client's
    /// secret / private key now (fail fast, never log them).
    pub async fn discover(config: &UpstreamConfig) -> Result<Provider, UpstreamError> {
        // Credentials first: a missing secret is found without any network.
        let clients = config
            .clients
            .iter()
            .map(|(name, client)| Ok((name.clone(), credentials::load_client(name, client)?)))
            .collect::<Result<BTreeMap<_, _>, UpstreamError>>()?;
        for (name, client) in &clients {
            if let Credential::PrivateKeyJwt(key) = &client.credential {
                // Public facts, logged so the operator can match the key
                // registered at the provider.
                tracing::info!(
                    upstream_client = %name,
                    alg = ?key.algorithm(),
                    kid = key.kid(),
                    "private_key_jwt assertion key loaded"
                );
            }
        }
        let http = HttpClient::new(config)?;
        let metadata = measured("discovery", discovery::discover(&http, config)).await?;
        tracing::info!(
            issuer = %metadata.issuer,
            token_endpoint = %metadata.token_endpoint,
            clients = clients.len(),
            profile = config.translation.profile.as_str(),
            "upstream provider discovered"
        );
        Ok(Provider {
            config: config.clone(),
            http,
            metadata: RwLock::new(Arc::new(metadata)),
            clients,
            jwks: KeySetSlot::default(),
            jwks_refresh_interval: JWKS_REFRESH_INTERVAL,
            jwks_max_age: JWKS_MAX_AGE,
        })
    }

    /// The metadata in force. An `Arc` rather than a reference, because
    /// [`Self::refresh_metadata`] may replace it while a request holds it.
    pub fn metadata(&self) -> Arc<ProviderMetadata> {
        Arc::clone(&self.metadata.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Runs discovery again (for readiness). On failure the last good
    /// metadata stays in force and the error is returned.
    pub async fn refresh_metadata(&self) -> Result<(), UpstreamError> {
        let fresh = measured("discovery", discovery::discover(&self.http, &self.config)).await?;
        let jwks_moved = self.metadata().jwks_uri != fresh.jwks_uri;
        *self
            .metadata
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(fresh);
        if jwks_moved {
            // Keys cached from the old URI say nothing about the new one.
            self.jwks.clear().await;
        }
        Ok(())
    }

    /// The provider-side client_id of the named upstream client.
    pub fn client_id_of(&self, upstream_client: &str) -> Option<&str> {
        self.clients
            .get(upstream_client)
            .map(|client| client.client_id.as_str())
    }

    /// A grant made as the named pre-registered client. `params` are the
    /// grant's own form fields (`code`, `redirect_uri`, `code_verifier` |
    /// `refresh_token`, `scope`, ...). `grant_type` may be among them;
    /// without it, it is `refresh_token` when a `refresh_token` is given and
    /// `authorization_code` otherwise. Client authentication fields in
    /// `params` are ignored: the client's configured method supplies them.
    pub async fn token(
        &self,
        upstream_client: &str,
        params: &[(&str, &str)],
    ) -> Result<TokenResponse, UpstreamError> {
        let client = self
            .clients
            .get(upstream_client)
            .ok_or_else(|| UpstreamError::UnknownClient(upstream_client.to_owned()))?;
        let metadata = self.metadata();
        let endpoint = &metadata.token_endpoint;

        let grant_type = params
            .iter()
            .find(|(name, _)| *name == "grant_type")
            .map(|(_, value)| *value)
            .unwrap_or_else(|| {
                if params.iter().any(|(name, _)| *name == "refresh_token") {
                    "refresh_token"
                } else {
                    "authorization_code"
                }
            });
        let (body, authorization) =
            token_request(client, upstream_client, Some(grant_type), params, endpoint)?;
        let started = Instant::now();
        let answer = measured("token", self.http.post_form(endpoint, body, authorization)).await?;
        let result = token_response(answer, endpoint);
        tracing::debug!(
            upstream_client,
            grant_type,
            status = result.as_ref().map(|ok| ok.status.as_u16()).ok(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "upstream token call"
        );
        result
    }

    /// A grant made as a relayed pre-registered client
    /// (`[[upstream.relayed_clients]]`) with the credentials it presented
    /// to the proxy, which the provider checks: its `Authorization: Basic`
    /// header as sent, or its `client_secret` in the form, or nothing (a
    /// public client, PKCE only). `params` are the grant's own form fields,
    /// `grant_type` first among them; client authentication fields in
    /// `params` are ignored.
    pub async fn relayed_token(
        &self,
        client_id: &str,
        params: &[(&str, &str)],
        authorization: Option<HeaderValue>,
        client_secret: Option<&str>,
    ) -> Result<TokenResponse, UpstreamError> {
        let metadata = self.metadata();
        let endpoint = &metadata.token_endpoint;
        // Built whole before the call: the serializer is not `Send`.
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in params {
                if *name == "grant_type" || !RESERVED_PARAMS.contains(name) {
                    form.append_pair(name, value);
                }
            }
            if authorization.is_none() {
                form.append_pair("client_id", client_id);
                if let Some(secret) = client_secret {
                    form.append_pair("client_secret", secret);
                }
            }
            Bytes::from(form.finish())
        };
        let answer = measured("token", self.http.post_form(endpoint, body, authorization)).await?;
        token_response(answer, endpoint)
    }

    /// Revokes `token` at the provider (RFC 7009) as the named
    /// pre-registered client, authenticated as for its grants. A 5xx or a
    /// transport failure is an error; the provider's 4xx OAuth error is
    /// [`Revocation::Refused`].
    pub async fn revoke(
        &self,
        upstream_client: &str,
        token: &str,
        token_type_hint: Option<&str>,
    ) -> Result<Revocation, UpstreamError> {
        let client = self
            .clients
            .get(upstream_client)
            .ok_or_else(|| UpstreamError::UnknownClient(upstream_client.to_owned()))?;
        let metadata = self.metadata();
        let Some(endpoint) = &metadata.revocation_endpoint else {
            return Ok(Revocation::NoEndpoint);
        };
        let mut params = vec![("token", token)];
        if let Some(hint) = token_type_hint {
            params.push(("token_type_hint", hint));
        }
        let (body, authorization) =
            token_request(client, upstream_client, None, &params, endpoint)?;
        let answer = measured("revoke", self.http.post_form(endpoint, body, authorization)).await?;
        if answer.status.is_success() {
            return Ok(Revocation::Revoked);
        }
        let error = answer
            .status
            .is_client_error()
            .then(|| http::json_object(&answer, endpoint).ok())
            .flatten()
            .and_then(|body| body.get("error")?.as_str().map(str::to_owned));
        match error {
            Some(code) => Ok(Revocation::Refused(code)),
            None => Err(UpstreamError::Status {
                url: endpoint.to_string(),
                status: answer.status.as_u16(),
            }),
        }
    }

    /// A pre-registered (non-URL) client's token request, forwarded
    /// untouched (body and Authorization header); the provider's answer is
    /// returned untouched: status, `Content-Type`, the cache headers and
    /// `WWW-Authenticate`, and the body. A 5xx, like a transport failure,
    /// is an error (`temporarily_unavailable`).
    pub async fn forward_token_request(
        &self,
        body: Bytes,
        authorization: Option<HeaderValue>,
    ) -> Result<Response<Bytes>, UpstreamError> {
        let metadata = self.metadata();
        let endpoint = &metadata.token_endpoint;
        let answer = measured(
            "forward_token",
            self.http.post_form(endpoint, body, authorization),
        )
        .await?;
        if answer.status.is_server_error() {
            return Err(UpstreamError::Status {
                url: endpoint.to_string(),
                status: answer.status.as_u16(),
            });
        }
        let mut response = Response::builder().status(answer.status);
        for name in [
            header::CONTENT_TYPE,
            header::CACHE_CONTROL,
            header::PRAGMA,
            header::WWW_AUTHENTICATE,
        ] {
            for value in answer.headers.get_all(&name) {
                response = response.header(&name, value);
            }
        }
        response
            .body(answer.body)
            .map_err(|error| UpstreamError::InvalidResponse {
                url: endpoint.to_string(),
                reason: error.to_string(),
            })
    }

    /// The provider's JWKS. Cached; `refresh = true` (for an unknown `kid`)
    /// refetches, but at most once per 30 s; a set older than an hour is
    /// refetched on its own, and kept if that refetch fails.
    pub async fn jwks(&self, refresh: bool) -> Result<JwkSet, UpstreamError> {
        let policy = KeySetPolicy {
            max_age: self.jwks_max_age,
            refetch_interval: self.jwks_refresh_interval,
            when_refetch_fails: WhenRefetchFails::ServeStale,
        };
        let fetch = || self.fetch_jwks();
        let refreshed = if refresh {
            self.jwks.refresh(&policy, None, fetch).await?
        } else {
            None
        };
        let keys = match refreshed {
            Some(keys) => keys,
            // No refresh asked, or one was made less than the interval ago.
            None => self.jwks.current(&policy, fetch).await?,
        };
        Ok(JwkSet {
            keys: Vec::clone(&keys),
        })
    }

    async fn fetch_jwks(&self) -> Result<Arc<Vec<Jwk>>, UpstreamError> {
        let metadata = self.metadata();
        let url = metadata.jwks_uri.as_ref().ok_or(UpstreamError::NoJwksUri)?;
        let answer = measured("jwks", self.http.get(url)).await?;
        if !answer.status.is_success() {
            return Err(UpstreamError::Status {
                url: url.to_string(),
                status: answer.status.as_u16(),
            });
        }
        let document = http::json_document(&answer, url)?;
        jwks::parse_jwk_set(&serde_json::Value::Object(document))
            .map(Arc::new)
            .map_err(|error| UpstreamError::InvalidResponse {
                url: url.to_string(),
                reason: error.to_string(),
            })
    }
}

/// A token endpoint's answer: 2xx with a JSON object, or a 4xx with an
/// OAuth error object, is the provider speaking OAuth; anything else is the
/// provider being unavailable.
fn token_response(answer: http::Answer, endpoint: &Url) -> Result<TokenResponse, UpstreamError> {
    let status = answer.status;
    if status.is_success() || status.is_client_error() {
        let object = http::json_object(&answer, endpoint).ok();
        match object {
            Some(body) if status.is_success() => return Ok(TokenResponse { status, body }),
            Some(body) if body.get("error").is_some_and(serde_json::Value::is_string) => {
                return Ok(TokenResponse { status, body });
            }
            _ => {
                return Err(UpstreamError::InvalidResponse {
                    url: endpoint.to_string(),
                    reason: if status.is_success() {
                        format!("HTTP {status} without a JSON object")
                    } else {
                        format!("HTTP {status} without an OAuth error object")
                    },
                });
            }
        }
    }
    Err(UpstreamError::Status {
        url: endpoint.to_string(),
        status: status.as_u16(),
    })
}

#[cfg(test)]
mod tests;

/// The form body and `Authorization` header of a request made as `client`
/// to `endpoint`: a grant (with its `grant_type`) or a revocation (none).
/// Kept out of the async path: the form serializer is not `Send`.
fn token_request(
    client: &LoadedClient,
    upstream_client: &str,
    grant_type: Option<&str>,
    params: &[(&str, &str)],
    endpoint: &Url,
) -> Result<(Bytes, Option<HeaderValue>), UpstreamError> {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    if let Some(grant_type) = grant_type {
        form.append_pair("grant_type", grant_type);
    }
    for (name, value) in params {
        if !RESERVED_PARAMS.contains(name) {
            form.append_pair(name, value);
        }
    }
    let mut authorization = None;
    match &client.credential {
        Credential::Basic(secret) => {
            authorization = Some(credentials::basic_authorization(
                &client.client_id,
                secret,
                upstream_client,
            )?);
        }
        Credential::Post(secret) => {
            form.append_pair("client_id", &client.client_id);
            form.append_pair("client_secret", secret.expose());
        }
        Credential::PrivateKeyJwt(key) => {
            let assertion = key
                .assertion(&client.client_id, endpoint.as_str())
                .map_err(|reason| UpstreamError::Assertion {
                    client: upstream_client.to_owned(),
                    reason,
                })?;
            // Optional per RFC 7521 §4.2, but some providers (Entra ID) want it.
            form.append_pair("client_id", &client.client_id);
            form.append_pair("client_assertion_type", credentials::JWT_BEARER_ASSERTION);
            form.append_pair("client_assertion", &assertion);
        }
        Credential::None => {
            form.append_pair("client_id", &client.client_id);
        }
    }
    Ok((Bytes::from(form.finish()), authorization))
}

/// Times a call to the provider and counts its failure by kind.
async fn measured<T>(
    operation: &'static str,
    call: impl std::future::Future<Output = Result<T, UpstreamError>>,
) -> Result<T, UpstreamError> {
    let started = Instant::now();
    let result = call.await;
    let metrics = &*crate::metrics::METRICS;
    metrics
        .provider_duration
        .with_label_values(&[operation])
        .observe(started.elapsed().as_secs_f64());
    if let Err(error) = &result {
        metrics
            .provider_errors
            .with_label_values(&[operation, error.kind()])
            .inc();
    }
    result
}
