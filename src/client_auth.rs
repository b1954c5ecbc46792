//! Client authentication at the token endpoint for CIMD clients.
//!
//! A CIMD client has no secret: its document is public. It either
//! authenticates with nothing (`none`, a public client whose code is protected
//! by PKCE) or with a JWT assertion signed by a key it publishes in its
//! document (`private_key_jwt`, RFC 7523 §2.2 and §3, OIDC Core §9,
//! CIMD-RULES.md rules 20 to 24). Every failure is OAuth `invalid_client`;
//! only running out of capacity (the replay store, the outbound fetcher) is
//! `temporarily_unavailable`.
//!
//! An assertion is checked in this order, and the first failure is reported:
//!
//! 1. size (at most [`MAX_ASSERTION_BYTES`], before anything decodes it);
//! 2. the header: an asymmetric `alg` only (never `none`, never HMAC, whose
//!    "secret" would be the public key everyone can read), the document's
//!    `token_endpoint_auth_signing_alg` if it names one, no `crit`;
//! 3. the key: chosen by `kid` from the document's `jwks`, or from its
//!    `jwks_uri` fetched through the hardened [`Egress`]; without a `kid`,
//!    the one key that fits the algorithm. The key must fit the algorithm
//!    (type, curve, RSA ≥ 2048 bits, its own `alg`/`use`/`key_ops`). Key
//!    material is only ever taken from the document: the header's `jwk`,
//!    `jku`, `x5u` and `x5c` are never used;
//! 4. the signature (by `jsonwebtoken`);
//! 5. the claims: `iss` = `sub` = client_id, `aud` one of the proxy's
//!    audiences, `exp` in the future but at most the assertion lifetime
//!    ahead, `iat`/`nbf` not in the future, all with the clock skew;
//! 6. `jti`: single use until the assertion can no longer be accepted.
//!
//! Key sets fetched from a `jwks_uri` are cached per URI (never per client:
//! a document that changes its `jwks_uri` is honoured on the next request).
//! An unknown `kid` forces one refetch, at most once per
//! [`ClientAuthLimits::jwks_refetch_interval`] per URI, so bogus kids cannot
//! become a fetch flood.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use crate::client_id::shown;
use crate::egress::{Egress, FetchError};
use crate::error_code::OAuthErrorCode;
use crate::jwks::{
    JwksCache, JwtError, JwtHeader, alg_name, numeric_date, parse_jwk_set, read_header, select_key,
};
use crate::metadata::{AuthMethod, ClientMetadata};
use crate::store::{SingleUseKind, Store, StoreError, Use};

/// The only `client_assertion_type` accepted (RFC 7523 §2.2, rule 21).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The largest assertion accepted, in bytes, checked before any decoding.
///
/// A real assertion is a few hundred bytes to 2 KiB (an RSA-4096 signature
/// is 683 characters); the cap bounds the work an outsider can make us do and
/// the size of what an unverified decode reads.
pub const MAX_ASSERTION_BYTES: usize = 8 * 1024;

/// The client-authentication fields of a token request, as the form carried them.
#[derive(Clone, Default)]
pub struct TokenClientAuth {
    /// The `client_id` form parameter, if sent.
    pub client_id: Option<String>,
    /// The `client_assertion_type` form parameter, if sent.
    pub client_assertion_type: Option<String>,
    /// The `client_assertion` form parameter, if sent. A credential: never log it.
    pub client_assertion: Option<String>,
    /// Whether a `client_secret` (form or HTTP Basic) came with the request.
    pub has_client_secret: bool,
}

impl std::fmt::Debug for TokenClientAuth {
    // The assertion is a bearer credential until it expires; only its size is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenClientAuth")
            .field("client_id", &self.client_id)
            .field("client_assertion_type", &self.client_assertion_type)
            .field(
                "client_assertion",
                &self
                    .client_assertion
                    .as_ref()
                    .map(|a| format!("<{} bytes>", a.len())),
            )
            .field("has_client_secret", &self.has_client_secret)
            .finish()
    }
}

/// The bounds of client authentication; every one limits what an outsider can make us hold or do.
#[derive(Debug, Clone)]
pub struct ClientAuthLimits {
    /// The most `jwks_uri`s whose key sets are cached.
    pub max_jwks_entries: u64,
    /// How long a fetched key set is used before it is fetched again.
    pub jwks_ttl: Duration,
    /// The least time between two refetches of one `jwks_uri` forced by an unknown `kid`.
    pub jwks_refetch_interval: Duration,
    /// Clock skew allowed on `exp`, `iat` and `nbf`.
    pub clock_skew: Duration,
    /// How far ahead `exp` may be (plus the skew): a short-lived assertion
    /// keeps the replay store small and a stolen one useless soon.
    pub max_assertion_lifetime: Duration,
}

impl Default for ClientAuthLimits {
    fn default() -> Self {
        ClientAuthLimits {
            max_jwks_entries: 1_000,
            jwks_ttl: Duration::from_secs(300),
            jwks_refetch_interval: Duration::from_secs(30),
            clock_skew: Duration::from_secs(60),
            max_assertion_lifetime: Duration::from_secs(300),
        }
    }
}

/// Why a client could not be authenticated.
///
/// Messages never contain the assertion, a key or a secret; values taken
/// from the assertion (an `alg` name) are escaped and shortened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum ClientAuthError {
    /// The `client_id` parameter names a different client than the assertion or the document.
    #[error("the client_id parameter does not match the client the assertion is for")]
    ClientIdMismatch,
    /// A `client_assertion` came without `client_assertion_type`.
    #[error("client_assertion_type is required with client_assertion")]
    AssertionTypeMissing,
    /// The `client_assertion_type` is not the JWT bearer type.
    #[error("client_assertion_type must be {JWT_BEARER}")]
    UnsupportedAssertionType,
    /// `private_key_jwt` without an assertion, or an assertion type without an assertion.
    #[error("the client must authenticate with a client_assertion (private_key_jwt)")]
    AssertionMissing,
    /// A `client_secret` was sent; CIMD clients have no secrets.
    #[error("client_secret is not accepted: a CIMD client has no shared secret")]
    SecretNotAllowed,
    /// An assertion from a client whose document publishes no keys.
    #[error("the client's metadata document publishes no keys to verify a client_assertion")]
    NoKeys,
    /// The assertion exceeds [`MAX_ASSERTION_BYTES`].
    #[error("client_assertion is longer than {limit} bytes")]
    AssertionTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The document names another `token_endpoint_auth_signing_alg`.
    #[strum(serialize = "alg_not_allowed")]
    #[error(
        "client_assertion alg \"{alg}\" is not the document's token_endpoint_auth_signing_alg \"{expected}\""
    )]
    AlgorithmNotAllowed {
        /// The header's `alg`.
        alg: String,
        /// The document's `token_endpoint_auth_signing_alg`.
        expected: String,
    },
    /// The assertion as a signed JWT: its header, the key from the client's
    /// key set (inline or fetched from its `jwks_uri`) or the signature, by
    /// the rules every signed JWT the proxy verifies follows.
    #[error("client_assertion: {0}")]
    #[strum(transparent)]
    Jwt(JwtError),
    /// `iss` is missing, not a string, or not the client_id.
    #[error("client_assertion iss must be the client_id")]
    #[strum(serialize = "wrong_iss")]
    WrongIssuer,
    /// `sub` is missing, not a string, or not the client_id.
    #[error("client_assertion sub must be the client_id")]
    #[strum(serialize = "wrong_sub")]
    WrongSubject,
    /// `aud` names none of the proxy's audiences.
    #[error("client_assertion aud must contain this server's issuer or token endpoint")]
    #[strum(serialize = "wrong_aud")]
    WrongAudience,
    /// A required claim is absent.
    #[error("client_assertion has no {claim} claim")]
    MissingClaim {
        /// The claim.
        claim: &'static str,
    },
    /// `exp` has passed (beyond the clock skew).
    #[error("client_assertion has expired")]
    Expired,
    /// `exp` is further ahead than the assertion lifetime allows.
    #[error("client_assertion exp is more than {} seconds ahead", .max.as_secs())]
    #[strum(serialize = "exp_too_far")]
    ExpiresTooLate {
        /// The largest lifetime accepted, skew included.
        max: Duration,
    },
    /// `iat` is in the future (beyond the clock skew).
    #[error("client_assertion iat is in the future")]
    #[strum(serialize = "iat_in_future")]
    IssuedInFuture,
    /// `nbf` is in the future (beyond the clock skew).
    #[error("client_assertion is not valid yet (nbf)")]
    #[strum(serialize = "nbf_in_future")]
    NotYetValid,
    /// No `jti`, or an empty one.
    #[error("client_assertion has no jti")]
    MissingJti,
    /// The `jti` was already used by this client and has not expired.
    #[error("client_assertion jti was already used")]
    Replayed,
    /// The replay store is full of unexpired `jti`s.
    #[error("too many client assertions in flight; retry later")]
    ReplayStoreFull,
    /// The shared store could not say whether the `jti` was used: refused
    /// rather than let a possible replay through.
    #[error("the assertion cannot be checked for replay right now; retry later")]
    StoreUnavailable,
    /// The document passed in is not the client's (a caller bug, refused rather than trusted).
    #[error("the metadata document is not the client's")]
    MetadataMismatch,
}

impl ClientAuthError {
    /// The OAuth `error` code (RFC 6749 §5.2): `invalid_client`, or `temporarily_unavailable` for capacity and time limits.
    pub fn oauth_error(&self) -> OAuthErrorCode {
        if self.is_unavailable() {
            OAuthErrorCode::TemporarilyUnavailable
        } else {
            OAuthErrorCode::InvalidClient
        }
    }

    /// The HTTP status of the error response: 401 for `invalid_client`, 503 otherwise.
    pub fn http_status(&self) -> u16 {
        self.oauth_error().token_status().as_u16()
    }

    /// One sentence for `error_description`; never the assertion or a key.
    ///
    /// A fetch failure is reported by its stable code only: the details
    /// (addresses, resolver messages) belong in the log, not in a response
    /// to whoever presented the assertion.
    pub fn description(&self) -> String {
        match self {
            ClientAuthError::Jwt(JwtError::JwksFetch(error)) => {
                format!("fetching the client's jwks_uri failed ({})", error.code())
            }
            other => other.to_string(),
        }
    }

    /// A stable, closed label for logs and metrics: the [`JwtError`]'s own
    /// for a JWT problem, except that a malformed assertion keeps the name
    /// it had before those checks were shared.
    pub fn as_str(&self) -> &'static str {
        match self {
            ClientAuthError::Jwt(JwtError::Malformed { .. }) => "malformed_assertion",
            other => other.into(),
        }
    }

    fn is_unavailable(&self) -> bool {
        matches!(
            self,
            ClientAuthError::ReplayStoreFull
                | ClientAuthError::StoreUnavailable
                | ClientAuthError::Jwt(JwtError::JwksFetch(
                    FetchError::Overloaded { .. } | FetchError::Timeout { .. }
                ))
        )
    }
}

/// A shared JWT check's error, nested; the claim checks are this module's
/// own rules (RFC 7523 §3, which `verify_signature` hands to
/// `jsonwebtoken`), so they keep the words that say what is expected.
impl From<JwtError> for ClientAuthError {
    fn from(error: JwtError) -> Self {
        match error {
            JwtError::WrongIssuer => ClientAuthError::WrongIssuer,
            JwtError::WrongSubject => ClientAuthError::WrongSubject,
            JwtError::WrongAudience => ClientAuthError::WrongAudience,
            JwtError::MissingClaim { claim } => ClientAuthError::MissingClaim { claim },
            other => ClientAuthError::Jwt(other),
        }
    }
}

/// Seconds since the Unix epoch; JWT times are in these units.
type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

fn system_clock() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

/// Authenticates CIMD clients at the token endpoint. One per process, shared behind an `Arc`.
pub struct ClientAuthenticator {
    egress: Arc<Egress>,
    audiences: Vec<String>,
    limits: ClientAuthLimits,
    jwks: JwksCache,
    store: Arc<Store>,
    clock: Clock,
}

impl std::fmt::Debug for ClientAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAuthenticator")
            .field("audiences", &self.audiences)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Where the keys for one assertion come from.
enum KeySource<'a> {
    Inline(&'a Value),
    Uri(&'a str),
}

impl ClientAuthenticator {
    /// Builds the authenticator.
    ///
    /// `audiences`: the proxy's issuer and its token endpoint URL (either is
    /// accepted in `aud`). `egress` fetches `jwks_uri`s under the same rules
    /// as documents. `store` spends each `jti` once: with Redis, once across
    /// every replica; a memory store is bounded and refuses when full
    /// rather than forget an unexpired `jti`.
    pub fn new(
        egress: Arc<Egress>,
        audiences: Vec<String>,
        limits: ClientAuthLimits,
        store: Arc<Store>,
    ) -> Self {
        Self::with_clock(egress, audiences, limits, store, Arc::new(system_clock))
    }

    fn with_clock(
        egress: Arc<Egress>,
        audiences: Vec<String>,
        limits: ClientAuthLimits,
        store: Arc<Store>,
        clock: Clock,
    ) -> Self {
        ClientAuthenticator {
            egress,
            jwks: JwksCache::new(
                limits.max_jwks_entries,
                limits.jwks_ttl,
                limits.jwks_refetch_interval,
            ),
            store,
            audiences,
            limits,
            clock,
        }
    }

    /// Fetches a client's `jwks_uri` key set again now (an operator's
    /// refresh through the admin API); how many usable keys it holds.
    pub async fn refetch_key_set(&self, jwks_uri: &str) -> Result<usize, JwtError> {
        self.jwks.refetch(&self.egress, jwks_uri).await
    }

    /// Forgets a client's `jwks_uri` key set (an operator's invalidate).
    pub fn forget_key_set(&self, jwks_uri: &str) {
        self.jwks.forget(jwks_uri);
    }

    /// The limits in force.
    pub fn limits(&self) -> &ClientAuthLimits {
        &self.limits
    }

    /// Which client_id a token request is for: the form's `client_id`, or the
    /// assertion's `sub`/`iss` read WITHOUT verification (only to know which
    /// document to fetch); both present ⇒ they must agree (rule 24).
    ///
    /// `Ok(None)` means the request names no client at all.
    ///
    /// # Errors
    ///
    /// An assertion with a missing or wrong `client_assertion_type`, one over
    /// [`MAX_ASSERTION_BYTES`] or unreadable, `sub` and `iss` that differ, or
    /// a `client_id` parameter naming another client.
    pub fn claimed_client_id(params: &TokenClientAuth) -> Result<Option<String>, ClientAuthError> {
        let Some(assertion) = assertion_of(params)? else {
            return Ok(params.client_id.clone());
        };
        let claims: Map<String, Value> = jsonwebtoken::dangerous::insecure_decode_claims(assertion)
            .map_err(|_| JwtError::Malformed {
                reason: "the claims are not a base64url-encoded JSON object",
            })?;
        let claim = |name: &str, error: ClientAuthError| match claims.get(name) {
            None => Ok(None),
            Some(Value::String(value)) => Ok(Some(value.clone())),
            Some(_) => Err(error),
        };
        let sub = claim("sub", ClientAuthError::WrongSubject)?;
        let iss = claim("iss", ClientAuthError::WrongIssuer)?;
        let named = match (sub, iss) {
            (Some(sub), Some(iss)) if sub != iss => return Err(ClientAuthError::WrongIssuer),
            (Some(sub), _) => sub,
            (None, Some(iss)) => iss,
            (None, None) => return Err(ClientAuthError::MissingClaim { claim: "sub" }),
        };
        match &params.client_id {
            Some(client_id) if *client_id != named => Err(ClientAuthError::ClientIdMismatch),
            _ => Ok(Some(named)),
        }
    }

    /// Authenticates a CIMD client per its validated document.
    ///
    /// `metadata` must be the document just resolved for `client_id`; it is
    /// re-resolved by the caller on every token request, and nothing that
    /// belongs to it is cached here by client_id.
    ///
    /// # Errors
    ///
    /// A [`ClientAuthError`]; see [`ClientAuthError::oauth_error`] for what goes on the wire.
    pub async fn authenticate(
        &self,
        client_id: &str,
        metadata: &ClientMetadata,
        params: &TokenClientAuth,
    ) -> Result<(), ClientAuthError> {
        if metadata.client_id != client_id {
            return Err(ClientAuthError::MetadataMismatch);
        }
        if params
            .client_id
            .as_deref()
            .is_some_and(|named| named != client_id)
        {
            return Err(ClientAuthError::ClientIdMismatch);
        }
        // A secret is refused whatever the method: CIMD clients have none
        // (rule 9), and RFC 6749 §2.3 allows one method per request.
        if params.has_client_secret {
            return Err(ClientAuthError::SecretNotAllowed);
        }
        let assertion = assertion_of(params)?;
        let source = match (&metadata.jwks, &metadata.jwks_uri) {
            (Some(jwks), _) => Some(KeySource::Inline(jwks)),
            (None, Some(uri)) => Some(KeySource::Uri(uri)),
            (None, None) => None,
        };
        match (metadata.token_endpoint_auth_method, assertion, source) {
            (AuthMethod::None, None, _) => Ok(()),
            (AuthMethod::PrivateKeyJwt, None, _) => Err(ClientAuthError::AssertionMissing),
            // A public client that signs anyway is held to its signature.
            (_, Some(_), None) => Err(ClientAuthError::NoKeys),
            (_, Some(assertion), Some(source)) => {
                self.verify(client_id, metadata, assertion, source).await
            }
        }
    }

    async fn verify(
        &self,
        client_id: &str,
        metadata: &ClientMetadata,
        assertion: &str,
        source: KeySource<'_>,
    ) -> Result<(), ClientAuthError> {
        let header = read_header(assertion)?;
        if let Some(expected) = &metadata.token_endpoint_auth_signing_alg
            && alg_name(header.alg) != expected.as_str()
        {
            return Err(ClientAuthError::AlgorithmNotAllowed {
                alg: alg_name(header.alg).to_owned(),
                expected: shown(expected),
            });
        }
        let key = self.find_key(&source, &header).await?;
        let claims = verify_signature(assertion, &key, header.alg, client_id, &self.audiences)?;
        self.check_claims(client_id, &claims).await
    }

    /// The key for `header`, refetching a `jwks_uri` once (rate limited) when none fits.
    async fn find_key(
        &self,
        source: &KeySource<'_>,
        header: &JwtHeader,
    ) -> Result<Jwk, ClientAuthError> {
        match source {
            KeySource::Inline(jwks) => {
                let set = parse_jwk_set(jwks)?;
                Ok(select_key(&set, header.kid.as_deref(), header.alg).cloned()?)
            }
            KeySource::Uri(uri) => Ok(self.jwks.key_for(&self.egress, uri, header).await?),
        }
    }

    /// The claim checks `jsonwebtoken` does not make (or makes more loosely),
    /// then the single-use check, last, so only a fully valid assertion
    /// spends its `jti`.
    async fn check_claims(
        &self,
        client_id: &str,
        claims: &Map<String, Value>,
    ) -> Result<(), ClientAuthError> {
        // jsonwebtoken accepts an array `iss`; RFC 7523 §3 wants the client_id itself.
        if claims.get("iss").and_then(Value::as_str) != Some(client_id) {
            return Err(ClientAuthError::WrongIssuer);
        }
        if claims.get("sub").and_then(Value::as_str) != Some(client_id) {
            return Err(ClientAuthError::WrongSubject);
        }
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => self.audiences.contains(aud),
            Some(Value::Array(auds)) => auds
                .iter()
                .filter_map(Value::as_str)
                .any(|aud| self.audiences.iter().any(|ours| ours == aud)),
            _ => false,
        };
        if !audience_ok {
            return Err(ClientAuthError::WrongAudience);
        }

        let now = (self.clock)();
        let skew = secs(self.limits.clock_skew);
        let exp =
            numeric_date(claims, "exp")?.ok_or(ClientAuthError::MissingClaim { claim: "exp" })?;
        if now > exp.saturating_add(skew) {
            return Err(ClientAuthError::Expired);
        }
        let latest = now
            .saturating_add(secs(self.limits.max_assertion_lifetime))
            .saturating_add(skew);
        if exp > latest {
            return Err(ClientAuthError::ExpiresTooLate {
                max: self.limits.max_assertion_lifetime + self.limits.clock_skew,
            });
        }
        if numeric_date(claims, "iat")?.is_some_and(|iat| iat > now.saturating_add(skew)) {
            return Err(ClientAuthError::IssuedInFuture);
        }
        if numeric_date(claims, "nbf")?.is_some_and(|nbf| nbf > now.saturating_add(skew)) {
            return Err(ClientAuthError::NotYetValid);
        }
        let jti = match claims.get("jti") {
            Some(Value::String(jti)) if !jti.is_empty() => jti,
            _ => return Err(ClientAuthError::MissingJti),
        };
        // Kept as long as the assertion could still be accepted: until
        // `exp` plus the skew, not `exp` alone, or an assertion accepted
        // within the skew could be replayed after its entry expired. At
        // least a second: the store refuses a zero lifetime.
        let keep = exp.saturating_add(skew).saturating_sub(now).max(1);
        let keep = Duration::from_secs(u64::try_from(keep).unwrap_or(1));
        match self
            .store
            .use_once(SingleUseKind::Jti, &replay_key(client_id, jti), keep)
            .await
        {
            Ok(Use::First) => Ok(()),
            Ok(Use::Replayed) => Err(ClientAuthError::Replayed),
            Err(StoreError::Full) => Err(ClientAuthError::ReplayStoreFull),
            Err(error) => {
                tracing::warn!(%error, "cannot spend a client assertion's jti");
                Err(ClientAuthError::StoreUnavailable)
            }
        }
    }
}

/// The assertion, after the checks that need no key: type and size.
fn assertion_of(params: &TokenClientAuth) -> Result<Option<&str>, ClientAuthError> {
    match (
        params.client_assertion_type.as_deref(),
        params.client_assertion.as_deref(),
    ) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(ClientAuthError::AssertionMissing),
        (None, Some(_)) => Err(ClientAuthError::AssertionTypeMissing),
        (Some(kind), Some(_)) if kind != JWT_BEARER => {
            Err(ClientAuthError::UnsupportedAssertionType)
        }
        (Some(_), Some(assertion)) if assertion.len() > MAX_ASSERTION_BYTES => {
            Err(ClientAuthError::AssertionTooLarge {
                limit: MAX_ASSERTION_BYTES,
            })
        }
        (Some(_), Some(assertion)) => Ok(Some(assertion)),
    }
}

/// Verifies the signature and returns the claims.
///
/// `jsonwebtoken` also checks `iss`, `sub`, `aud` and the presence of `exp`;
/// times are left to [`ClientAuthenticator::check_claims`], which reads our
/// own clock.
fn verify_signature(
    assertion: &str,
    key: &Jwk,
    alg: Algorithm,
    client_id: &str,
    audiences: &[String],
) -> Result<Map<String, Value>, ClientAuthError> {
    let mut validation = Validation::new(alg);
    validation.validate_aud = true;
    validation.set_audience(audiences);
    validation.set_issuer(&[client_id]);
    validation.sub = Some(client_id.to_owned());
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    Ok(crate::jwks::verify_signature(
        assertion, key, alg, validation,
    )?)
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// The replay-store key: a SHA-256 of the client_id and the `jti`, so an
/// entry costs 32 bytes however long the `jti` is, and two clients' `jti`s
/// never collide (the client_id is length-prefixed).
fn replay_key(client_id: &str, jti: &str) -> [u8; 32] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(&(client_id.len() as u64).to_be_bytes());
    context.update(client_id.as_bytes());
    context.update(jti.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(context.finish().as_ref());
    key
}

#[cfg(test)]
mod tests;
