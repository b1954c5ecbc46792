//! Dynamic client registration (RFC 7591) without a database: the client_id
//! *is* the registration, sealed.
//!
//! Clients that only know dynamic registration POST their metadata to
//! `/register`. The request goes through the same rules as a CIMD document
//! ([`metadata::validate_registration`]: strict JSON, redirect URIs with the
//! loopback rule, `none` or `private_key_jwt` with keys), and the answer's
//! client_id is `dcr.` followed by the validated members, sealed
//! ([`Purpose::Registration`]) under the seal keys with an expiry. Nothing
//! is stored: any replica holding the keys opens it, key rotation works as
//! for codes, and no number of registrations grows the proxy's state.
//!
//! ```text
//! POST /register
//!   registration.enabled?                        404 when off
//!   rate limit per source (a store counter)     429 + Retry-After
//!   initial access token (Bearer), if configured  401 invalid_token
//!   the global rate limit (a store counter)       429 + Retry-After
//!   body size                                     413 invalid_client_metadata
//!   metadata::validate_registration               invalid_redirect_uri / invalid_client_metadata
//!   grant and response types: the code flow only  invalid_client_metadata
//!   the software statement, when required          invalid_software_statement / unapproved_…
//!   seal(the validated members, compact)          invalid_client_metadata when it would not fit a URL
//! 201 {client_id, client_id_issued_at, client_id_expires_at, the registered metadata}
//! ```
//!
//! In the flow, [`Registrations::open`] turns such a client_id back into
//! metadata for [`crate::admission`], which treats it like a CIMD client
//! whose document is the sealed registration (its policy is
//! `policy.registration`). Everything in it is self-declared: there is no
//! domain behind it to verify, which the consent page says.
//!
//! Shared-secret authentication methods are refused like in a CIMD
//! document: a secret handed out here would have to be checked at `/token`,
//! which authenticates only with `none` and `private_key_jwt`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error_code::OAuthErrorCode;
use crate::metadata::{self, AuthMethod, ClientMetadata, MetadataError};
use crate::seal::{Purpose, SealError, Sealer};
use crate::secret::SecretSource;
use crate::store::Store;

#[cfg(test)]
mod tests;

/// What every registration client_id starts with: it tells one apart from a
/// CIMD URL and from a client pre-registered at the provider, whose
/// requests pass through untouched.
pub const CLIENT_ID_PREFIX: &str = "dcr.";

/// The longest registration client_id the proxy hands out. It travels in
/// query strings (`/authorize`), form bodies and inside other sealed values
/// (state, code, refresh token), so it must stay well under the 16 KiB
/// request head and the 8 KiB sealed-value limit; a registration with
/// inline keys that would not fit is told to use `jwks_uri`.
pub const MAX_CLIENT_ID_BYTES: usize = 3 * 1024;

/// The members of a registration kept in its client_id. Everything else is
/// dropped: `logo_uri` (a self-registered client's logo is never shown),
/// `software_statement` (verified once; its issuer is kept), members this
/// proxy does not interpret, and the defaults (added back on opening).
const SEALED_MEMBERS: [&str; 10] = [
    "redirect_uris",
    "client_name",
    "client_uri",
    "policy_uri",
    "tos_uri",
    "jwks_uri",
    "jwks",
    "token_endpoint_auth_signing_alg",
    "scope",
    "application_type",
];

/// Whether `client_id` claims to be a registration this proxy issued (it is
/// opened, and refused if it is not).
pub fn is_registered_client_id(client_id: &str) -> bool {
    client_id.starts_with(CLIENT_ID_PREFIX)
}

/// `[registration]`: the dynamic registration endpoint, off by default.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistrationConfig {
    /// Whether `/register` is served and advertised, and registration
    /// client_ids accepted (turning it off refuses every one issued).
    pub enabled: bool,
    /// How long a registration client_id stays valid.
    pub lifetime: Duration,
    /// The largest registration request body accepted.
    pub max_body_bytes: usize,
    /// Registrations accepted per source address (an IPv6 address counts
    /// by its /64) in one window.
    pub per_source_limit: u64,
    /// Registrations accepted from everyone together in one window.
    pub global_limit: u64,
    /// The rate limits' window.
    pub window: Duration,
    /// The initial access token (RFC 7591 §3) a registration must present
    /// as a Bearer token; none: open registration.
    pub initial_access_token: Option<SecretSource>,
    /// Whether a registration must carry a software statement verified
    /// against `[[trust.issuers]]`.
    pub require_software_statement: bool,
    /// Peers whose `X-Forwarded-For` is believed (the ingress in front of
    /// the proxy); empty: the TCP peer is the source.
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        RegistrationConfig {
            enabled: false,
            lifetime: Duration::from_secs(30 * 86_400),
            max_body_bytes: 16 * 1024,
            per_source_limit: 10,
            global_limit: 1_000,
            window: Duration::from_secs(60),
            initial_access_token: None,
            require_software_statement: false,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Why the registration endpoint could not be set up. Names the variable or
/// file, never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationSetupError {
    /// The initial access token cannot be read, or is empty.
    #[error("{key}: {reason}")]
    InitialAccessToken {
        /// The configuration key naming the source.
        key: &'static str,
        /// Why, without any of the content.
        reason: String,
    },
}

/// A registration request refused (RFC 7591 §3.2.2), or the endpoint not
/// answering it. Messages never echo a token or key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// A redirect URI breaks a rule.
    #[error("{0}")]
    InvalidRedirectUri(String),
    /// Another member breaks a rule, or the body is not strict JSON.
    #[error("{0}")]
    InvalidClientMetadata(String),
    /// The body is larger than `registration.max_body_bytes`.
    #[error("the registration request is larger than {0} bytes")]
    TooLarge(usize),
    /// The software statement does not verify.
    #[error("{0}")]
    InvalidSoftwareStatement(String),
    /// A software statement is required and there is none.
    #[error("a software statement from an issuer this server trusts is required")]
    StatementRequired,
    /// The initial access token is missing or wrong.
    #[error("a valid initial access token is required to register")]
    InvalidToken,
    /// A rate limit is reached; try again after the window.
    #[error("too many registrations; try again in {0} seconds")]
    RateLimited(u64),
    /// The shared store cannot count (fail closed).
    #[error("registration is unavailable; try again later")]
    Unavailable,
}

impl RegistrationError {
    /// The OAuth error code on the wire.
    pub fn code(&self) -> OAuthErrorCode {
        match self {
            RegistrationError::InvalidRedirectUri(_) => OAuthErrorCode::InvalidRedirectUri,
            RegistrationError::InvalidClientMetadata(_) | RegistrationError::TooLarge(_) => {
                OAuthErrorCode::InvalidClientMetadata
            }
            RegistrationError::InvalidSoftwareStatement(_) => {
                OAuthErrorCode::InvalidSoftwareStatement
            }
            RegistrationError::StatementRequired => OAuthErrorCode::UnapprovedSoftwareStatement,
            RegistrationError::InvalidToken => OAuthErrorCode::InvalidToken,
            RegistrationError::RateLimited(_) | RegistrationError::Unavailable => {
                OAuthErrorCode::TemporarilyUnavailable
            }
        }
    }

    /// The HTTP status (RFC 7591 §3.2.2: 400; RFC 6750 §3.1: 401 for the
    /// token).
    pub fn status(&self) -> http::StatusCode {
        match self {
            RegistrationError::InvalidToken => http::StatusCode::UNAUTHORIZED,
            RegistrationError::TooLarge(_) => http::StatusCode::PAYLOAD_TOO_LARGE,
            RegistrationError::RateLimited(_) => http::StatusCode::TOO_MANY_REQUESTS,
            RegistrationError::Unavailable => http::StatusCode::SERVICE_UNAVAILABLE,
            _ => http::StatusCode::BAD_REQUEST,
        }
    }

    /// A stable name for the audit line and the metric label.
    pub fn outcome(&self) -> &'static str {
        match self {
            RegistrationError::TooLarge(_) => "too_large",
            RegistrationError::RateLimited(_) => "rate_limited",
            RegistrationError::Unavailable => "store_unavailable",
            other => other.code().as_str(),
        }
    }
}

/// Why a registration client_id is not accepted. Each is `invalid_client`
/// at `/token` and an error page at `/authorize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationRefused {
    /// `registration.enabled` is off: no registration is accepted.
    #[error("dynamic registration is turned off on this server")]
    Disabled,
    /// Past its expiry.
    #[error("this registration has expired; the client must register again")]
    Expired,
    /// Sealed under a key the proxy no longer has.
    #[error(
        "this registration was made under a key this server no longer holds; the client must register again"
    )]
    UnknownKey,
    /// Altered, truncated, or never issued here.
    #[error("this client_id is not a registration issued by this server")]
    Invalid,
    /// Presented where registrations are not opened (`check`, gate mode).
    #[error(
        "registration client_ids are only accepted by the server's /authorize and /token, not here"
    )]
    NotServed,
}

/// The sealed form: the validated members and when they were registered.
/// It is the client_id, and travels in every URL: the seal's compact
/// binary encoding, with the members as JSON text inside (the encoding
/// carries no self-describing values, and the members are re-validated
/// from JSON when opened anyway).
#[derive(Debug, Serialize, Deserialize)]
struct SealedRegistration {
    /// The validated members ([`SEALED_MEMBERS`], the auth method when it
    /// is not `none`, types when not the defaults), as compact JSON.
    members: String,
    /// When it was registered (unix seconds).
    issued_at: u64,
    /// The trust issuer whose software statement vouched, if one did.
    vouched_by: Option<String>,
}

/// A registration client_id, opened.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The metadata, validated again, with `client_id` the presented one.
    pub metadata: Arc<ClientMetadata>,
    /// The trust issuer whose software statement vouched at registration.
    pub vouched_by: Option<String>,
    /// When it was registered (unix seconds).
    pub issued_at: u64,
    /// The host of its first redirect URI (what the user is shown), or the
    /// scheme of a private-use one.
    pub redirect_host: String,
}

/// Opens registration client_ids for admission, under the seal keys in force.
#[derive(Debug, Clone, Copy)]
pub struct Registrations<'a> {
    sealer: &'a Sealer,
    config: &'a RegistrationConfig,
}

impl<'a> Registrations<'a> {
    /// Over these keys and this configuration.
    pub fn new(sealer: &'a Sealer, config: &'a RegistrationConfig) -> Self {
        Registrations { sealer, config }
    }

    /// The registration `client_id` stands for.
    ///
    /// # Errors
    ///
    /// [`RegistrationRefused`]: registration off, expired, an unknown key,
    /// or anything else wrong with it.
    pub fn open(&self, client_id: &str) -> Result<Registration, RegistrationRefused> {
        self.open_at(client_id, unix_now())
    }

    /// [`Registrations::open`] with the clock given (unix seconds).
    pub fn open_at(&self, client_id: &str, now: u64) -> Result<Registration, RegistrationRefused> {
        if !self.config.enabled {
            return Err(RegistrationRefused::Disabled);
        }
        let sealed = client_id
            .strip_prefix(CLIENT_ID_PREFIX)
            .filter(|_| client_id.len() <= MAX_CLIENT_ID_BYTES)
            .ok_or(RegistrationRefused::Invalid)?;
        let opened: SealedRegistration = self
            .sealer
            .open_at(Purpose::Registration, sealed, now)
            .map_err(|error| match error {
                SealError::Expired => RegistrationRefused::Expired,
                SealError::UnknownKey => RegistrationRefused::UnknownKey,
                _ => RegistrationRefused::Invalid,
            })?;
        // Validated again: the rules may have tightened since it was sealed,
        // and the result must be a ClientMetadata built by the one validator.
        let mut metadata = metadata::validate_registration(opened.members.as_bytes())
            .map_err(|_| RegistrationRefused::Invalid)?;
        metadata.client_id = client_id.to_owned();
        let redirect_host = redirect_host(&metadata);
        Ok(Registration {
            metadata: Arc::new(metadata),
            vouched_by: opened.vouched_by,
            issued_at: opened.issued_at,
            redirect_host,
        })
    }
}

/// The host a registration's codes go to, as the user is shown it.
fn redirect_host(metadata: &ClientMetadata) -> String {
    metadata
        .redirect_uris
        .first()
        .and_then(|uri| url::Url::parse(uri).ok())
        .map(|url| match url.host_str() {
            Some(host) if !host.is_empty() => host.to_owned(),
            _ => format!("{}:", url.scheme()),
        })
        .unwrap_or_default()
}

/// The registration endpoint's state: its configuration and the initial
/// access token's digest, read when the server state is built.
#[derive(Clone)]
pub struct Registrar {
    config: RegistrationConfig,
    /// SHA-256 of the initial access token, if one is configured.
    token_digest: Option<[u8; 32]>,
}

impl std::fmt::Debug for Registrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrar")
            .field("enabled", &self.config.enabled)
            .field("initial_access_token", &self.token_digest.is_some())
            .finish_non_exhaustive()
    }
}

/// What a successful registration answers (RFC 7591 §3.2.1).
#[derive(Debug, Clone, PartialEq)]
pub struct Registered {
    /// The response body: the client_id, its times, the registered metadata.
    pub body: Map<String, Value>,
    /// The client_id, for the audit line.
    pub client_id: String,
}

impl Registrar {
    /// The endpoint for `config`, reading its initial access token.
    ///
    /// # Errors
    ///
    /// The token's source cannot be read, or holds nothing.
    pub fn new(config: &RegistrationConfig) -> Result<Registrar, RegistrationSetupError> {
        let token_digest = match &config.initial_access_token {
            Some(source) => Some(digest(read_token(source)?.as_bytes())),
            None => None,
        };
        Ok(Registrar {
            config: config.clone(),
            token_digest,
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &RegistrationConfig {
        &self.config
    }

    /// Checks the request's `Authorization` header against the initial
    /// access token, when one is configured.
    ///
    /// # Errors
    ///
    /// [`RegistrationError::InvalidToken`]: missing, not Bearer, or wrong.
    pub fn check_token(&self, authorization: Option<&[u8]>) -> Result<(), RegistrationError> {
        let Some(expected) = &self.token_digest else {
            return Ok(());
        };
        let presented = authorization
            .and_then(|value| std::str::from_utf8(value).ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        // Digests compared, not the tokens: how long the comparison takes
        // then says nothing about the token's bytes.
        match presented {
            Some(token) if digest(token.as_bytes()) == *expected => Ok(()),
            _ => Err(RegistrationError::InvalidToken),
        }
    }

    /// Counts the request against the per-source limit. Checked before the
    /// initial access token, so that guessing the token is rate limited too.
    ///
    /// # Errors
    ///
    /// [`RegistrationError::RateLimited`] when it is reached;
    /// [`RegistrationError::Unavailable`] when the store cannot count.
    pub async fn limit_source(
        &self,
        store: &Store,
        source: IpAddr,
    ) -> Result<(), RegistrationError> {
        let key = format!("registration:source:{}", source_key(source));
        self.limit(store, &key, self.config.per_source_limit).await
    }

    /// Counts the request against the global limit. Checked after the
    /// initial access token, so that requests without it cannot use up
    /// everyone's share.
    ///
    /// # Errors
    ///
    /// As [`Registrar::limit_source`].
    pub async fn limit_global(&self, store: &Store) -> Result<(), RegistrationError> {
        self.limit(store, "registration:global", self.config.global_limit)
            .await
    }

    async fn limit(&self, store: &Store, key: &str, limit: u64) -> Result<(), RegistrationError> {
        let window = self.config.window;
        let count = store.count(key, window).await.map_err(|error| {
            tracing::warn!(%error, "registration rate limit not counted");
            RegistrationError::Unavailable
        })?;
        if count > limit {
            return Err(RegistrationError::RateLimited(window.as_secs().max(1)));
        }
        Ok(())
    }

    /// [`Registrar::validate`] then [`Registrar::seal`], for a request
    /// whose statement (if any) the caller has already judged.
    ///
    /// # Errors
    ///
    /// Why the request is refused (RFC 7591 §3.2.2).
    pub fn register(
        &self,
        sealer: &Sealer,
        body: &[u8],
        vouched_by: Option<String>,
        now: u64,
    ) -> Result<Registered, RegistrationError> {
        let metadata = self.validate(body)?;
        self.seal(sealer, &metadata, vouched_by, now)
    }

    /// The request's metadata, if `body` is within the size limit and
    /// passes every document rule and the code-flow-only types.
    ///
    /// # Errors
    ///
    /// Why the request is refused (RFC 7591 §3.2.2).
    pub fn validate(&self, body: &[u8]) -> Result<ClientMetadata, RegistrationError> {
        if body.len() > self.config.max_body_bytes {
            return Err(RegistrationError::TooLarge(self.config.max_body_bytes));
        }
        let metadata = metadata::validate_registration(body).map_err(refusal_for)?;
        check_types(&metadata)?;
        Ok(metadata)
    }

    /// The metadata with a verified software statement's claims taking
    /// precedence (RFC 7591 §3.1.1), validated again by every rule.
    ///
    /// # Errors
    ///
    /// The combined metadata breaks a rule: `invalid_software_statement`.
    pub fn with_statement(
        &self,
        metadata: &ClientMetadata,
        overrides: Map<String, Value>,
    ) -> Result<ClientMetadata, RegistrationError> {
        let Ok(Value::Object(mut members)) = serde_json::to_value(metadata) else {
            return Err(RegistrationError::InvalidSoftwareStatement(
                "the registration cannot be combined with the statement".to_owned(),
            ));
        };
        members.remove("client_id");
        // Written back for every registration, but an empty list is what the
        // request said by omitting it, and "lists nothing" is refused.
        if metadata.token_endpoint_auth_methods_supported.is_empty() {
            members.remove("token_endpoint_auth_methods_supported");
        }
        members.extend(overrides);
        let body = serde_json::to_vec(&members).unwrap_or_default();
        let combined = metadata::validate_registration(&body).map_err(|error| {
            RegistrationError::InvalidSoftwareStatement(format!(
                "software_statement: with its claims the registration is invalid: {error}"
            ))
        })?;
        check_types(&combined).map_err(|error| {
            RegistrationError::InvalidSoftwareStatement(format!("software_statement: {error}"))
        })?;
        Ok(combined)
    }

    /// Seals validated metadata into a client_id. `vouched_by` is the
    /// issuer whose statement the caller verified, if any.
    ///
    /// # Errors
    ///
    /// A statement is required and none vouched; the registration is too
    /// large for a client_id.
    pub fn seal(
        &self,
        sealer: &Sealer,
        metadata: &ClientMetadata,
        vouched_by: Option<String>,
        now: u64,
    ) -> Result<Registered, RegistrationError> {
        if self.config.require_software_statement && vouched_by.is_none() {
            return Err(RegistrationError::StatementRequired);
        }
        let members = sealed_members(metadata);
        let sealed = SealedRegistration {
            members: Value::Object(members.clone()).to_string(),
            issued_at: now,
            vouched_by,
        };
        let sealed = sealer
            .try_seal_at(Purpose::Registration, self.config.lifetime, &sealed, now)
            .map_err(|error| match error {
                SealError::TooLarge => too_large_for_a_client_id(),
                _ => RegistrationError::Unavailable,
            })?;
        let client_id = format!("{CLIENT_ID_PREFIX}{sealed}");
        if client_id.len() > MAX_CLIENT_ID_BYTES {
            return Err(too_large_for_a_client_id());
        }
        let mut body = members;
        body.insert("client_id".into(), Value::String(client_id.clone()));
        body.insert("client_id_issued_at".into(), now.into());
        body.insert(
            "client_id_expires_at".into(),
            now.saturating_add(self.config.lifetime.as_secs()).into(),
        );
        body.insert(
            "token_endpoint_auth_method".into(),
            metadata.token_endpoint_auth_method.as_str().into(),
        );
        body.insert("grant_types".into(), metadata.grant_types.clone().into());
        body.insert(
            "response_types".into(),
            metadata.response_types.clone().into(),
        );
        Ok(Registered { body, client_id })
    }
}

/// The refusal for a registration whose sealed form would be too long.
fn too_large_for_a_client_id() -> RegistrationError {
    RegistrationError::InvalidClientMetadata(format!(
        "the registration does not fit in a client_id of at most {MAX_CLIENT_ID_BYTES} bytes; \
         publish the keys at a jwks_uri instead of inline jwks, or register fewer redirect URIs"
    ))
}

/// A validation failure as RFC 7591 names it.
fn refusal_for(error: MetadataError) -> RegistrationError {
    match &error {
        MetadataError::Invalid {
            field: "redirect_uris",
            ..
        } => RegistrationError::InvalidRedirectUri(error.to_string()),
        _ => RegistrationError::InvalidClientMetadata(error.to_string()),
    }
}

/// The proxy runs the authorization-code flow only: `code` as the one
/// response type, and no grant but the code and its refresh.
fn check_types(metadata: &ClientMetadata) -> Result<(), RegistrationError> {
    if metadata.response_types.iter().any(|t| t != "code") {
        return Err(RegistrationError::InvalidClientMetadata(
            "invalid response_types: only \"code\" is supported".to_owned(),
        ));
    }
    let supported = ["authorization_code", "refresh_token"];
    if let Some(other) = metadata
        .grant_types
        .iter()
        .find(|grant| !supported.contains(&grant.as_str()))
    {
        return Err(RegistrationError::InvalidClientMetadata(format!(
            "invalid grant_types: \"{}\" is not supported; use authorization_code and refresh_token",
            crate::client_id::shown(other)
        )));
    }
    if !metadata
        .grant_types
        .iter()
        .any(|grant| grant == "authorization_code")
    {
        return Err(RegistrationError::InvalidClientMetadata(
            "invalid grant_types: must include authorization_code".to_owned(),
        ));
    }
    Ok(())
}

/// The members kept in the client_id: the interpreted ones the request set,
/// the auth method when it is not `none`, the types when not the defaults.
fn sealed_members(metadata: &ClientMetadata) -> Map<String, Value> {
    let Ok(Value::Object(all)) = serde_json::to_value(metadata) else {
        return Map::new();
    };
    let mut kept: Map<String, Value> = all
        .into_iter()
        .filter(|(name, _)| SEALED_MEMBERS.contains(&name.as_str()))
        .collect();
    if metadata.token_endpoint_auth_method == AuthMethod::PrivateKeyJwt {
        kept.insert(
            "token_endpoint_auth_method".into(),
            AuthMethod::PrivateKeyJwt.as_str().into(),
        );
    }
    if metadata.grant_types != ["authorization_code"] {
        kept.insert("grant_types".into(), metadata.grant_types.clone().into());
    }
    if metadata.response_types != ["code"] {
        kept.insert(
            "response_types".into(),
            metadata.response_types.clone().into(),
        );
    }
    kept
}

/// What a source is counted as: an IPv4 address, or an IPv6 address's /64
/// (one subscriber usually holds a whole /64, so counting single IPv6
/// addresses would limit nothing).
fn source_key(source: IpAddr) -> String {
    match source {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let prefix = IpNet::new(IpAddr::V6(v6), 64).map(|net| net.trunc());
                prefix.map_or_else(|_| v6.to_string(), |net| net.to_string())
            }
        },
    }
}

/// The request's source address: the TCP peer, or, when the peer is a
/// configured trusted proxy, the nearest `X-Forwarded-For` entry that is not
/// one (the entries further left were written by the client itself and
/// prove nothing).
pub fn source_address(peer: IpAddr, forwarded_for: &[&str], trusted_proxies: &[IpNet]) -> IpAddr {
    let trusted = |addr: &IpAddr| trusted_proxies.iter().any(|net| net.contains(addr));
    if !trusted(&peer) {
        return peer;
    }
    let mut source = peer;
    for entry in forwarded_for
        .iter()
        .rev()
        .flat_map(|header| header.rsplit(','))
    {
        match entry.trim().parse::<IpAddr>() {
            Ok(addr) => {
                source = addr;
                if !trusted(&addr) {
                    break;
                }
            }
            // Garbage in the chain: stop at the last address we could read.
            Err(_) => break,
        }
    }
    source
}

fn read_token(source: &SecretSource) -> Result<String, RegistrationSetupError> {
    let key = match source {
        SecretSource::Env(_) => "registration.initial_access_token_env",
        SecretSource::File(_) => "registration.initial_access_token_file",
    };
    let failed = |reason| RegistrationSetupError::InitialAccessToken { key, reason };
    let text = match source {
        SecretSource::Env(var) => std::env::var(var).map_err(|_| {
            failed(format!(
                "environment variable {var} is not set or not UTF-8"
            ))
        })?,
        SecretSource::File(path) => {
            let bytes = std::fs::read(path)
                .map_err(|error| failed(format!("file {}: {error}", path.display())))?;
            if bytes.len() > 4096 {
                return Err(failed(format!(
                    "file {} is larger than 4096 bytes, not a token",
                    path.display()
                )));
            }
            String::from_utf8(bytes)
                .map_err(|_| failed(format!("file {} is not UTF-8", path.display())))?
        }
    };
    let token = text.trim();
    if token.is_empty() {
        return Err(failed("the token is empty".to_owned()));
    }
    Ok(token.to_owned())
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}

/// Now, in unix seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
