//! JWK Sets and signed JWTs verified against them, shared by everything that
//! checks a signature made by someone else's published key: client
//! assertions (`client_auth`), software statements (`trust`) and the
//! provider's id_tokens (`id_token`, with the key set `upstream` caches).
//!
//! The rules are the same for all of them, so they live here once:
//!
//! * the header names an asymmetric algorithm this crate can verify (never
//!   `none`, never HMAC, whose "secret" would be a public key) and no `crit`
//!   extension ([`read_header`]);
//! * key sets carrying private or symmetric material are refused whole, keys
//!   the crate cannot read are skipped ([`parse_jwk_set`]);
//! * the key is chosen by `kid`, or without one as the single key that fits
//!   the algorithm, and must fit it: type, curve, RSA ≥ 2048 bits, its own
//!   `alg`/`use`/`key_ops` ([`select_key`]);
//! * key sets behind a URL are cached, and refetched once (rate limited)
//!   for an unknown `kid` ([`KeySetSlot`]); clients' and issuers' through
//!   the hardened [`Egress`] ([`JwksCache`]), the provider's through its own
//!   client (`upstream`).
//!
//! Key material is only ever taken from the key set the caller names: a
//! header's `jwk`, `jku`, `x5u` and `x5c` are never used.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use url::Url;

use crate::client_id::shown;
use crate::egress::{Egress, FetchError, FetchKind};

/// The `alg` values that can be verified with a published public key and that
/// the `jsonwebtoken` crate implements (ES512 is not among them).
pub(crate) const SUPPORTED_ALGS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The smallest RSA modulus accepted, in bits (NIST SP 800-131A).
pub(crate) const MIN_RSA_BITS: usize = 2048;

/// JWK members holding private or symmetric key material (RFC 7518 §6.2.2,
/// §6.3.2, §6.4.1); the same list `metadata` refuses in an inline `jwks`.
const PRIVATE_JWK_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Why a JWT could not be verified against a key set, in words that do not
/// say what the JWT is for; each caller maps these onto its own error enum.
///
/// Messages never contain the token or key material; values taken from the
/// token (an `alg` name) are escaped and shortened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum JwtError {
    /// Not a well-formed JWS/JWT.
    #[error("malformed: {reason}")]
    Malformed {
        /// What is wrong, in fixed words.
        reason: &'static str,
    },
    /// `none` or an HMAC algorithm.
    #[error("alg \"{alg}\" is not accepted; an asymmetric algorithm is required")]
    #[strum(serialize = "disallowed_alg")]
    DisallowedAlgorithm {
        /// The header's `alg`, escaped and shortened.
        alg: String,
    },
    /// An algorithm this crate cannot verify (e.g. ES512).
    #[error("alg \"{alg}\" is not supported")]
    #[strum(serialize = "unsupported_alg")]
    UnsupportedAlgorithm {
        /// The header's `alg`, escaped and shortened.
        alg: String,
    },
    /// No key has the `kid` (or, without a `kid`, fits the `alg`).
    #[error("signed by an unknown key")]
    UnknownKey,
    /// Several keys fit and the token does not say which.
    #[error("several keys fit and the token does not name one with kid")]
    AmbiguousKey,
    /// The chosen key cannot verify this algorithm.
    #[error("the key is unsuitable: {reason}")]
    UnsuitableKey {
        /// Why, in fixed words.
        reason: &'static str,
    },
    /// The signature does not verify.
    #[error("the signature is invalid")]
    BadSignature,
    /// `iss` is not what the caller required.
    #[error("iss is wrong")]
    #[strum(serialize = "wrong_iss")]
    WrongIssuer,
    /// `sub` is not what the caller required.
    #[error("sub is wrong")]
    #[strum(serialize = "wrong_sub")]
    WrongSubject,
    /// `aud` holds none of the caller's audiences.
    #[error("aud is wrong")]
    #[strum(serialize = "wrong_aud")]
    WrongAudience,
    /// A claim the caller requires is absent (or not of its type).
    #[error("the {claim} claim is missing")]
    MissingClaim {
        /// The claim.
        claim: &'static str,
    },
    /// The key set's URL is not a URL.
    #[error("the key set URL is not a valid URL")]
    InvalidJwksUri,
    /// Fetching the key set failed.
    #[error("fetching the key set failed: {0}")]
    #[strum(serialize = "jwks_fetch_failed")]
    JwksFetch(FetchError),
    /// The key set is not a public JWK Set.
    #[error("the key set is not a public JWK Set: {reason}")]
    InvalidJwks {
        /// Why, in fixed words (never key material).
        reason: &'static str,
    },
}

impl JwtError {
    /// A stable, closed label for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        self.into()
    }
}

/// What a JWT's header says, once it is known to name an acceptable algorithm.
#[derive(Debug, Clone)]
pub(crate) struct JwtHeader {
    /// The signing algorithm: one of [`SUPPORTED_ALGS`].
    pub(crate) alg: Algorithm,
    /// The key id, if the header names one.
    pub(crate) kid: Option<String>,
}

/// Reads the JOSE header with `jsonwebtoken` and refuses every algorithm but
/// the asymmetric ones, and any `crit` extension (none is understood here,
/// so RFC 7515 §4.1.11 requires refusing).
pub(crate) fn read_header(token: &str) -> Result<JwtHeader, JwtError> {
    let header = match jsonwebtoken::decode_header(token) {
        Ok(header) => header,
        // `none` and algorithms the crate lacks fail to parse at all; name
        // them in the error rather than calling the token malformed.
        Err(_) => {
            return Err(match raw_alg(token) {
                Some(alg) if alg.eq_ignore_ascii_case("none") || alg.starts_with("HS") => {
                    JwtError::DisallowedAlgorithm { alg: shown(&alg) }
                }
                Some(alg) => JwtError::UnsupportedAlgorithm { alg: shown(&alg) },
                None => JwtError::Malformed {
                    reason: "the header is not a base64url-encoded JSON object with an alg",
                },
            });
        }
    };
    if !SUPPORTED_ALGS.contains(&header.alg) {
        return Err(JwtError::DisallowedAlgorithm {
            alg: alg_name(header.alg).to_owned(),
        });
    }
    if header.crit.is_some() {
        return Err(JwtError::Malformed {
            reason: "the header has critical extensions (crit), which are not supported",
        });
    }
    Ok(JwtHeader {
        alg: header.alg,
        kid: header.kid,
    })
}

/// The header's `alg` string, read only to word an error about a header
/// `jsonwebtoken` refused; it is never used to verify anything.
fn raw_alg(token: &str) -> Option<String> {
    let encoded = token.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(encoded).ok()?;
    let header: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    header.get("alg")?.as_str().map(str::to_owned)
}

/// The JWS name of an algorithm.
pub(crate) fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        // `Algorithm` is non-exhaustive; a future variant is not on our list.
        _ => "unknown",
    }
}

/// Verifies the signature of `token` with `key` under `alg` and returns the
/// claims.
///
/// `validation` says which claims `jsonwebtoken` must find (and which values
/// of `iss`, `sub`, `aud` it must see); its algorithm is set here. Times are
/// never checked by the crate (it reads the system clock and takes `exp` as
/// unsigned): callers check them with [`numeric_date`] against their own
/// clock.
pub(crate) fn verify_signature(
    token: &str,
    key: &Jwk,
    alg: Algorithm,
    mut validation: Validation,
) -> Result<Map<String, Value>, JwtError> {
    let decoding_key = DecodingKey::from_jwk(key).map_err(|_| JwtError::UnsuitableKey {
        reason: "the key's parameters are not a valid public key",
    })?;
    // One backend, in the binary and in tests (see `jws_crypto`): when
    // jsonwebtoken settled on another provider before the library ran,
    // the signature is checked by ours too.
    if !crate::jws_crypto::install()
        && crate::jws_crypto::verify(token, alg, &decoding_key) == Some(false)
    {
        return Err(JwtError::BadSignature);
    }
    validation.algorithms = vec![alg];
    validation.leeway = 0;
    validation.validate_exp = false;
    validation.validate_nbf = false;
    match jsonwebtoken::decode::<Map<String, Value>>(token, &decoding_key, &validation) {
        Ok(data) => Ok(data.claims),
        Err(error) => Err(match error.kind() {
            JwtErrorKind::InvalidSignature => JwtError::BadSignature,
            JwtErrorKind::InvalidIssuer => JwtError::WrongIssuer,
            JwtErrorKind::InvalidSubject => JwtError::WrongSubject,
            JwtErrorKind::InvalidAudience => JwtError::WrongAudience,
            JwtErrorKind::MissingRequiredClaim(claim) => JwtError::MissingClaim {
                claim: match claim.as_str() {
                    "iss" => "iss",
                    "sub" => "sub",
                    "aud" => "aud",
                    "nbf" => "nbf",
                    _ => "exp",
                },
            },
            JwtErrorKind::InvalidAlgorithm
            | JwtErrorKind::InvalidEcdsaKey
            | JwtErrorKind::InvalidEddsaKey
            | JwtErrorKind::InvalidRsaKey(_)
            | JwtErrorKind::InvalidKeyFormat => JwtError::UnsuitableKey {
                reason: "the key cannot verify this algorithm",
            },
            _ => JwtError::Malformed {
                reason: "the token is not a valid signed JWT",
            },
        }),
    }
}

/// A JWT NumericDate claim (RFC 7519 §2): a JSON number, possibly
/// fractional, read as whole seconds (rounded down).
pub(crate) fn numeric_date(
    claims: &Map<String, Value>,
    claim: &'static str,
) -> Result<Option<i64>, JwtError> {
    let malformed = JwtError::Malformed {
        reason: "exp, iat and nbf must be numbers",
    };
    match claims.get(claim) {
        None => Ok(None),
        Some(Value::Number(number)) => {
            if let Some(seconds) = number.as_i64() {
                Ok(Some(seconds))
            } else if let Some(seconds) = number.as_u64() {
                Ok(Some(i64::try_from(seconds).unwrap_or(i64::MAX)))
            } else {
                // Finite by construction (JSON has no NaN); `as` saturates.
                number
                    .as_f64()
                    .map(|seconds| Some(seconds.floor() as i64))
                    .ok_or(malformed)
            }
        }
        Some(_) => Err(malformed),
    }
}

/// Checks a JWK Set and keeps the keys this crate can read.
///
/// A set carrying private or symmetric key material is refused whole: its
/// owner has leaked a key, and whatever it signs proves nothing. Entries the
/// `jsonwebtoken` types cannot read (another curve, an encryption key, not
/// an object at all) are skipped rather than failing the set, so one
/// unusual key does not lock its owner out; they can never be chosen. A set
/// that has entries but not one readable key is refused: it is not a JWK
/// Set. These rules hold for clients, statement issuers and the provider.
pub(crate) fn parse_jwk_set(value: &Value) -> Result<Vec<Jwk>, JwtError> {
    let invalid = |reason| JwtError::InvalidJwks { reason };
    let Some(keys) = value.get("keys").and_then(Value::as_array) else {
        return Err(invalid("it is not an object with a keys array"));
    };
    let mut usable = Vec::with_capacity(keys.len());
    for key in keys {
        let Value::Object(members) = key else {
            continue;
        };
        if members.get("kty").and_then(Value::as_str) == Some("oct") {
            return Err(invalid("it contains a symmetric (oct) key"));
        }
        if PRIVATE_JWK_MEMBERS.iter().any(|m| members.contains_key(*m)) {
            return Err(invalid("it contains private key material"));
        }
        if let Ok(jwk) = serde_json::from_value::<Jwk>(key.clone()) {
            usable.push(jwk);
        }
    }
    if usable.is_empty() && !keys.is_empty() {
        return Err(invalid("none of its keys is a readable public JWK"));
    }
    Ok(usable)
}

/// Chooses the key for a token: by `kid` when it names one, else the single
/// key that fits `alg`. Two candidates are refused, not guessed between.
///
/// Two different keys that both fit under one `kid` are refused too
/// ([`JwtError::AmbiguousKey`]), for clients, statement issuers and the
/// provider alike. RFC 7517 §4.5 allows one `kid` for alternatives of
/// different types (an RSA and an EC key, a signing and an encryption key),
/// and those never both fit one `alg`; two that do mean the set cannot say
/// which key signed. Taking the first (what the provider's id_token check
/// used to do) would make the answer depend on the order of the array,
/// which whoever serves the set controls, and trying each would let one
/// token cost as many signature checks as the set has keys. The same key
/// listed twice is one key, not two: nothing is ambiguous about it.
pub(crate) fn select_key<'a>(
    keys: &'a [Jwk],
    kid: Option<&str>,
    alg: Algorithm,
) -> Result<&'a Jwk, JwtError> {
    let named: Vec<&Jwk> = match kid {
        Some(kid) => keys
            .iter()
            .filter(|jwk| jwk.common.key_id.as_deref() == Some(kid))
            .collect(),
        None => keys.iter().collect(),
    };
    if named.is_empty() {
        return Err(JwtError::UnknownKey);
    }
    let mut first_reason = None;
    let mut fitting = named.into_iter().filter(|jwk| match key_fits(jwk, alg) {
        Ok(()) => true,
        Err(reason) => {
            first_reason.get_or_insert(reason);
            false
        }
    });
    let first = fitting.next();
    let other = match first {
        Some(key) => fitting.find(|jwk| jwk.algorithm != key.algorithm),
        None => None,
    };
    match (first, other) {
        (Some(key), None) => Ok(key),
        (Some(_), Some(_)) => Err(JwtError::AmbiguousKey),
        // Without a kid, "no key of the right type" is an unknown key: the
        // signer may have just rotated to a new key type.
        (None, _) if kid.is_none() => Err(JwtError::UnknownKey),
        (None, _) => Err(JwtError::UnsuitableKey {
            reason: first_reason.unwrap_or("the key does not fit the algorithm"),
        }),
    }
}

/// Whether `jwk` may verify a token signed with `alg`; the error is the reason.
fn key_fits(jwk: &Jwk, alg: Algorithm) -> Result<(), &'static str> {
    if let Some(key_alg) = jwk.common.key_algorithm
        && key_alg != KeyAlgorithm::from(alg)
    {
        return Err("the key's alg is not the token's alg");
    }
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|usage| *usage != PublicKeyUse::Signature)
    {
        return Err("the key's use is not sig");
    }
    if jwk
        .common
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return Err("the key's key_ops do not include verify");
    }
    match (&jwk.algorithm, alg) {
        (
            AlgorithmParameters::RSA(rsa),
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => {
            let modulus = URL_SAFE_NO_PAD
                .decode(&rsa.n)
                .map_err(|_| "the RSA modulus is not base64url")?;
            if modulus_bits(&modulus) < MIN_RSA_BITS {
                return Err("the RSA key is shorter than 2048 bits");
            }
            Ok(())
        }
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256)
            if ec.curve == EllipticCurve::P256 =>
        {
            Ok(())
        }
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES384)
            if ec.curve == EllipticCurve::P384 =>
        {
            Ok(())
        }
        (AlgorithmParameters::OctetKeyPair(okp), Algorithm::EdDSA)
            if okp.curve == EllipticCurve::Ed25519 =>
        {
            Ok(())
        }
        _ => Err("the key's type or curve does not fit the token's alg"),
    }
}

/// The bit length of a big-endian unsigned integer.
fn modulus_bits(bytes: &[u8]) -> usize {
    let mut significant = bytes.iter().skip_while(|byte| **byte == 0);
    match significant.next() {
        Some(first) => (significant.count() + 1) * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

/// What to do when fetching a key set again fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WhenRefetchFails {
    /// Fail the request: a client's (or statement issuer's) keys are theirs
    /// to serve, and a set older than its lifetime is not trusted any
    /// longer. Only refetches forced by an unknown `kid` are rate limited:
    /// without a set there is nothing to answer with.
    Fail,
    /// Keep using the set fetched before: the provider's, so that a short
    /// outage of its JWKS endpoint does not stop sign-ins. Every fetch then
    /// opens the rate-limit window, so a failing provider is asked at most
    /// once per interval, whatever the reason.
    ServeStale,
}

/// How one cached key set is kept fresh.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeySetPolicy {
    /// A set older than this is fetched again before it is used.
    pub(crate) max_age: Duration,
    /// The least time between two refetches forced by an unknown `kid` (and
    /// with [`WhenRefetchFails::ServeStale`], between any two fetches).
    pub(crate) refetch_interval: Duration,
    /// What a failed refetch of an aged set does.
    pub(crate) when_refetch_fails: WhenRefetchFails,
}

/// One key set behind one URL: the keys, when they were fetched, and when a
/// rate-limited fetch was last attempted.
///
/// Held behind an async mutex across a fetch: concurrent requests wait for
/// the one fetch in progress instead of each fetching (single flight), and
/// the rate limit is decided under that lock, so a burst of bogus kids
/// yields one refetch, not one per request. Fetch errors are returned,
/// never stored.
#[derive(Default)]
pub(crate) struct KeySetSlot {
    state: tokio::sync::Mutex<KeySetState>,
}

#[derive(Default)]
struct KeySetState {
    keys: Option<Arc<Vec<Jwk>>>,
    loaded_at: Option<Instant>,
    last_attempt: Option<Instant>,
}

impl KeySetState {
    fn attempted_within(&self, interval: Duration) -> bool {
        self.last_attempt.is_some_and(|at| at.elapsed() < interval)
    }

    fn store(&mut self, keys: &Arc<Vec<Jwk>>) {
        self.keys = Some(Arc::clone(keys));
        self.loaded_at = Some(Instant::now());
    }
}

impl KeySetSlot {
    /// The set, fetched with `fetch` when there is none or it is older than
    /// the policy's `max_age` (see [`WhenRefetchFails`] for a failed
    /// refetch).
    pub(crate) async fn current<E, Fut>(
        &self,
        policy: &KeySetPolicy,
        fetch: impl FnOnce() -> Fut,
    ) -> Result<Arc<Vec<Jwk>>, E>
    where
        Fut: Future<Output = Result<Arc<Vec<Jwk>>, E>>,
        E: std::fmt::Display,
    {
        let mut state = self.state.lock().await;
        let serve_stale = policy.when_refetch_fails == WhenRefetchFails::ServeStale;
        if let Some(keys) = &state.keys {
            let fresh = state
                .loaded_at
                .is_some_and(|at| at.elapsed() < policy.max_age);
            if fresh || (serve_stale && state.attempted_within(policy.refetch_interval)) {
                return Ok(Arc::clone(keys));
            }
        }
        if serve_stale {
            state.last_attempt = Some(Instant::now());
        }
        match fetch().await {
            Ok(keys) => {
                state.store(&keys);
                Ok(keys)
            }
            Err(error) => match &state.keys {
                Some(stale) if serve_stale => {
                    tracing::warn!(%error, "refetching an aged key set failed; keeping the cached set");
                    Ok(Arc::clone(stale))
                }
                _ => {
                    state.keys = None;
                    Err(error)
                }
            },
        }
    }

    /// A refetch for an unknown key: `Some` with the newer set (fetched now,
    /// or by another request since `seen` was read), or `None` when a
    /// rate-limited fetch happened less than the refetch interval ago.
    /// `seen: None` asks for a refetch whatever is cached.
    pub(crate) async fn refresh<E, Fut>(
        &self,
        policy: &KeySetPolicy,
        seen: Option<&Arc<Vec<Jwk>>>,
        fetch: impl FnOnce() -> Fut,
    ) -> Result<Option<Arc<Vec<Jwk>>>, E>
    where
        Fut: Future<Output = Result<Arc<Vec<Jwk>>, E>>,
    {
        let mut state = self.state.lock().await;
        if let (Some(current), Some(seen)) = (&state.keys, seen)
            && !Arc::ptr_eq(current, seen)
        {
            return Ok(Some(Arc::clone(current)));
        }
        if state.attempted_within(policy.refetch_interval) {
            return Ok(None);
        }
        // Counted before the fetch, so a failing URL is not retried early either.
        state.last_attempt = Some(Instant::now());
        let keys = fetch().await?;
        state.store(&keys);
        Ok(Some(keys))
    }

    /// Forgets the set (its URL changed).
    pub(crate) async fn clear(&self) {
        *self.state.lock().await = KeySetState::default();
    }
}

/// Key sets fetched from URLs through the hardened [`Egress`], keyed by the
/// URL: clients' `jwks_uri`s and statement issuers' key sets.
///
/// Each URL has a [`KeySetSlot`]; the slots live in a bounded moka cache
/// with LRU eviction (which always admits a new entry); a slot idle for
/// longer than both the key lifetime and the refetch interval is dropped,
/// by which time it holds nothing worth keeping.
pub(crate) struct JwksCache {
    slots: moka::sync::Cache<String, Arc<KeySetSlot>>,
    policy: KeySetPolicy,
}

impl JwksCache {
    /// A cache of at most `max_entries` URLs, each set used for `ttl`, and
    /// refetched for an unknown `kid` at most once per `refetch_interval`.
    pub(crate) fn new(max_entries: u64, ttl: Duration, refetch_interval: Duration) -> Self {
        JwksCache {
            slots: moka::sync::Cache::builder()
                .max_capacity(max_entries)
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .time_to_idle(ttl.max(refetch_interval).max(Duration::from_secs(1)))
                .build(),
            policy: KeySetPolicy {
                max_age: ttl,
                refetch_interval,
                when_refetch_fails: WhenRefetchFails::Fail,
            },
        }
    }

    /// Fetches the set at `url` now (an operator's refresh), replacing what
    /// is held; returns how many usable keys it has. A failed fetch forgets
    /// the held set, as a failed first fetch would have none.
    pub(crate) async fn refetch(&self, egress: &Egress, url: &str) -> Result<usize, JwtError> {
        let url = Url::parse(url).map_err(|_| JwtError::InvalidJwksUri)?;
        self.slots.invalidate(url.as_str());
        let slot = self
            .slots
            .get_with(url.as_str().to_owned(), Default::default);
        let keys = slot
            .current(&self.policy, || fetch_jwks(egress, &url))
            .await?;
        Ok(keys.len())
    }

    /// Forgets the set at `url`: the next token it verifies fetches it.
    pub(crate) fn forget(&self, url: &str) {
        if let Ok(url) = Url::parse(url) {
            self.slots.invalidate(url.as_str());
        }
    }

    /// The key for a token's `kid` and `alg` in the set at `url`, refetching
    /// the set once (rate limited) when no key has the `kid`.
    pub(crate) async fn key_for(
        &self,
        egress: &Egress,
        url: &str,
        header: &JwtHeader,
    ) -> Result<Jwk, JwtError> {
        let url = Url::parse(url).map_err(|_| JwtError::InvalidJwksUri)?;
        let kid = header.kid.as_deref();
        let slot = self
            .slots
            .get_with(url.as_str().to_owned(), Default::default);
        let set = slot
            .current(&self.policy, || fetch_jwks(egress, &url))
            .await?;
        match select_key(&set, kid, header.alg) {
            Err(JwtError::UnknownKey) => {
                let refreshed = slot
                    .refresh(&self.policy, Some(&set), || {
                        tracing::debug!(jwks_uri = %url, "unknown kid: refetching the key set");
                        fetch_jwks(egress, &url)
                    })
                    .await?;
                match refreshed {
                    Some(fresh) => select_key(&fresh, kid, header.alg).cloned(),
                    None => Err(JwtError::UnknownKey),
                }
            }
            other => other.cloned(),
        }
    }
}

async fn fetch_jwks(egress: &Egress, url: &Url) -> Result<Arc<Vec<Jwk>>, JwtError> {
    let fetched = egress
        .fetch(url, FetchKind::Jwks, &HeaderMap::new())
        .await
        .map_err(JwtError::JwksFetch)?;
    let value: Value =
        serde_json::from_slice(&fetched.body).map_err(|_| JwtError::InvalidJwks {
            reason: "it is not JSON",
        })?;
    parse_jwk_set(&value).map(Arc::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modulus_bits_counts_significant_bits() {
        assert_eq!(modulus_bits(&[]), 0);
        assert_eq!(modulus_bits(&[0, 0]), 0);
        assert_eq!(modulus_bits(&[1]), 1);
        assert_eq!(modulus_bits(&[0, 0x80, 0]), 16);
        assert_eq!(modulus_bits(&[0x7f; 256]), 2047);
        assert_eq!(modulus_bits(&[0xff; 256]), 2048);
    }

    #[test]
    fn entries_that_are_not_readable_keys_are_skipped_but_a_set_needs_one() {
        let ec = serde_json::json!({"kty": "EC", "crv": "P-256", "kid": "k1",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
        let unreadable =
            serde_json::json!({"kty": "EC", "crv": "P-256", "kid": 5, "x": "AA", "y": "AA"});
        let set = serde_json::json!({"keys": ["not-a-key", 7, unreadable.clone(), ec]});
        assert_eq!(parse_jwk_set(&set).unwrap().len(), 1);
        let empty = serde_json::json!({"keys": []});
        assert!(parse_jwk_set(&empty).unwrap().is_empty());
        for junk in [
            serde_json::json!({"keys": ["not-a-key"]}),
            serde_json::json!({"keys": [unreadable]}),
        ] {
            assert_eq!(parse_jwk_set(&junk).unwrap_err().as_str(), "invalid_jwks");
        }
    }
}
