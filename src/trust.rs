//! Software statements: trust beyond domain ownership.
//!
//! A valid document proves who is asking (whoever controls the client_id's
//! host), not whether they should be trusted: anyone can host a valid
//! document on a new domain. A software statement (RFC 7591 §2.3) is a JWT,
//! signed by a party the operator trusts (an enterprise agent registry, a
//! platform vendor), that vouches for the client; a CIMD document may carry
//! one in `software_statement` (draft §4.3, CIMD-RULES rule 12).
//!
//! [`Trust::vet`] evaluates a validated document's statement; the one path a
//! client is looked up for use is [`crate::admission`], which calls it after
//! the document cache. With no `[[trust.issuers]]`
//! configured, statements are not evaluated ([`Verdict::NotChecked`]), so an
//! operator who does not use this feature never has a client refused by it.
//! Otherwise a statement is checked in this order, and the first failure
//! makes the client invalid (`invalid_metadata`, "software_statement: …"):
//!
//! 1. size (at most [`MAX_STATEMENT_BYTES`]) and the header (an asymmetric
//!    `alg`, no `crit`: the shared rules in `jwks`);
//! 2. `iss` names a configured issuer, and the `alg` is one it may use;
//! 3. the key, from the issuer's `jwks_file` or `jwks_uri` (fetched through
//!    the hardened fetcher, cached, one rate-limited refetch on an unknown
//!    `kid`), and the signature;
//! 4. `exp`, `nbf` and `iat` against our clock with [`CLOCK_SKEW`] (`exp`
//!    is optional: a registry may vouch without an end date);
//! 5. the statement names this client: its `client_id` claim, or without
//!    one its `sub`, equals the client_id;
//! 6. it does not contradict the document on `redirect_uris` (as sets),
//!    `jwks_uri` or `jwks`: those decide where codes go and which keys speak for the
//!    client, and a statement vouching for other ones vouches for another
//!    client;
//! 7. the issuer's `required_claims`;
//! 8. its other claims take precedence over the plain JSON (RFC 7591
//!    §3.1.1), and the combined document must pass every document rule
//!    ([`metadata::overlay`]).
//!
//! The verdict is a [`Verdict::Vouched`] naming the issuer, which policy
//! rules match with `require_statement_from` and the consent page shows.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};
use url::Url;

use crate::cache::ResolveError;
use crate::client_id::{ClientIdUrl, shown};
use crate::egress::{Egress, FetchError};
use crate::error_code::ErrorCode;
use crate::id_token::{SigningError, SigningKeys};
use crate::jwks::{self, JwksCache, JwtError, numeric_date, read_header, select_key};
use crate::metadata::{self, ClientMetadata, MetadataError};

/// The largest statement looked at, in bytes, checked before any decoding.
pub const MAX_STATEMENT_BYTES: usize = 8 * 1024;

/// Clock skew allowed on a statement's `exp`, `nbf` and `iat`.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// How long an issuer's fetched key set is used before it is fetched again.
const KEY_SET_TTL: Duration = Duration::from_secs(300);
/// The least time between two refetches of one issuer's key set forced by an unknown `kid`.
const KEY_SET_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// Key set URLs cached at once; each is an operator-configured issuer, so
/// this only bounds what a long run of reloads with changing URLs leaves.
const MAX_KEY_SETS: u64 = 256;

/// Claims about the JWT itself rather than the client; they never take the
/// place of document members. `redirect_uris` agree with the document as a
/// set (step 6) and the document's order is kept.
const NOT_METADATA: [&str; 9] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "software_statement",
    "redirect_uris",
];

/// Why a software statement does not vouch for the client. Every one makes
/// the client invalid.
///
/// Messages never contain the statement or key material; values taken from
/// the statement are escaped and shortened.
#[derive(Debug, Clone, thiserror::Error, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum StatementError {
    /// Longer than [`MAX_STATEMENT_BYTES`].
    #[error("is longer than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// Not a well-formed signed JWT.
    #[error("is not a valid signed JWT: {reason}")]
    Malformed {
        /// What is wrong, in fixed words.
        reason: &'static str,
    },
    /// No `iss` string.
    #[error("has no iss claim naming its issuer")]
    #[strum(serialize = "missing_iss")]
    MissingIssuer,
    /// `iss` is not a configured issuer.
    #[error("is issued by \"{iss}\", which is not a trusted issuer")]
    UnknownIssuer {
        /// The statement's `iss`, escaped and shortened.
        iss: String,
    },
    /// The issuer is not configured to use this algorithm.
    #[error("alg \"{alg}\" is not among the algorithms accepted from {issuer}")]
    #[strum(serialize = "alg_not_allowed")]
    AlgorithmNotAllowed {
        /// The header's `alg`.
        alg: &'static str,
        /// The issuer's name.
        issuer: String,
    },
    /// The statement as a signed JWT, by the rules every signed JWT the
    /// proxy verifies follows: its header (`none`, HMAC or an unknown
    /// algorithm, a `crit` extension), the issuer's key (none with the
    /// `kid`, several that fit, one that does not fit), or the signature.
    #[error(transparent)]
    #[strum(transparent)]
    Jwt(JwtError),
    /// `exp` has passed (beyond the clock skew).
    #[error("has expired")]
    Expired,
    /// `nbf` is in the future (beyond the clock skew).
    #[error("is not valid yet (nbf)")]
    NotYetValid,
    /// `iat` is in the future (beyond the clock skew).
    #[error("was issued in the future (iat)")]
    #[strum(serialize = "iat_in_future")]
    IssuedInFuture,
    /// Neither a `client_id` nor a `sub` string names a client.
    #[error("does not name this client (it has no client_id or sub claim)")]
    NamesNoClient,
    /// The statement is for another client.
    #[error("is for another client: \"{named}\"")]
    OtherClient {
        /// The client it names, escaped and shortened.
        named: String,
    },
    /// The statement disagrees with the document on a member that decides
    /// where codes go or which keys speak for the client.
    #[error("its {claim} disagree with the document's")]
    #[strum(serialize = "contradicts_document")]
    Contradicts {
        /// `redirect_uris`, `jwks_uri` or `jwks`.
        claim: &'static str,
    },
    /// A claim the issuer's configuration requires is missing or different.
    #[error("lacks the claim \"{claim}\" with the value {issuer} requires")]
    RequiredClaim {
        /// The claim.
        claim: String,
        /// The issuer's name.
        issuer: String,
    },
    /// Fetching the issuer's `jwks_uri` failed. Only the stable code is in
    /// the message (it reaches error pages); the detail is logged.
    #[error("fetching {issuer}'s keys failed ({})", .error.code())]
    KeysUnavailable {
        /// The issuer's name.
        issuer: String,
        /// The fetch error.
        error: FetchError,
    },
    /// The issuer's `jwks_uri` does not hold a public JWK Set.
    #[error("the issuer's jwks_uri does not hold a public JWK Set: {reason}")]
    InvalidKeySet {
        /// Why, in fixed words.
        reason: &'static str,
    },
    /// With the statement's claims in force, the document breaks a rule.
    #[error("its claims make the document invalid: {0}")]
    #[strum(serialize = "invalid_effective_document")]
    Effective(MetadataError),
}

impl StatementError {
    /// A stable, closed label for logs.
    pub fn as_str(&self) -> &'static str {
        self.into()
    }

    /// A shared JWT check's error: nested, except where a statement says
    /// more (whose key set could not be fetched, that `iss` is missing).
    /// `issuer` names whose key set a fetch was for.
    fn from_jwt(error: JwtError, issuer: &str) -> Self {
        match error {
            JwtError::JwksFetch(error) => StatementError::KeysUnavailable {
                issuer: issuer.to_owned(),
                error,
            },
            JwtError::InvalidJwks { reason } => StatementError::InvalidKeySet { reason },
            // The configuration accepts only https URLs for jwks_uri.
            JwtError::InvalidJwksUri => StatementError::InvalidKeySet {
                reason: "its jwks_uri is not a URL",
            },
            // Only `iss` is required of jsonwebtoken, and checked by us.
            JwtError::MissingClaim { .. } | JwtError::WrongIssuer => StatementError::MissingIssuer,
            JwtError::WrongSubject | JwtError::WrongAudience => StatementError::Malformed {
                reason: "its claims cannot be read",
            },
            other => StatementError::Jwt(other),
        }
    }
}

/// What a document's statement says about the client, once it did not make
/// the client invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No `[[trust.issuers]]` are configured: the statement was not evaluated.
    NotChecked {
        /// The `iss` it claims, read without verification, for reports.
        claimed_issuer: Option<String>,
    },
    /// The statement verified: this issuer vouches for the client.
    Vouched {
        /// The `[[trust.issuers]]` name.
        issuer: String,
    },
}

/// A statement's verdict as `check --json` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StatementReport {
    /// The issuer: the configured name when it verified, otherwise the
    /// `iss` it claims (unverified), if readable.
    pub issuer: Option<String>,
    /// Whether it verified.
    pub valid: bool,
    /// Why not, when it did not.
    pub reason: Option<String>,
}

impl Verdict {
    /// The issuer that vouches for the client, if the statement verified.
    pub fn vouched_by(&self) -> Option<&str> {
        match self {
            Verdict::Vouched { issuer } => Some(issuer),
            Verdict::NotChecked { .. } => None,
        }
    }

    /// The verdict for a report.
    pub fn report(&self) -> StatementReport {
        match self {
            Verdict::Vouched { issuer } => StatementReport {
                issuer: Some(issuer.clone()),
                valid: true,
                reason: None,
            },
            Verdict::NotChecked { claimed_issuer } => StatementReport {
                issuer: claimed_issuer.clone(),
                valid: false,
                reason: Some("not checked: no [[trust.issuers]] are configured".to_owned()),
            },
        }
    }
}

/// Why a client cannot be used: its document, or its statement.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The document could not be fetched or is invalid.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The document carries a statement that does not verify.
    #[error("software_statement: {error}")]
    Statement {
        /// The `iss` it claims, read without verification, for reports.
        claimed_issuer: Option<String>,
        /// Why it does not verify.
        error: StatementError,
    },
}

impl ClientError {
    /// The stable error code: the document's, or `invalid_metadata` for a
    /// statement (`fetch_overloaded` when only capacity stood in the way of
    /// fetching the issuer's keys, which a retry can fix).
    pub fn code(&self) -> ErrorCode {
        match self {
            ClientError::Resolve(error) => error.code(),
            ClientError::Statement {
                error:
                    StatementError::KeysUnavailable {
                        error: FetchError::Overloaded { .. },
                        ..
                    },
                ..
            } => ErrorCode::FetchOverloaded,
            ClientError::Statement { .. } => ErrorCode::InvalidMetadata,
        }
    }

    /// The statement's verdict for a report, when the statement is what failed.
    pub fn statement_report(&self) -> Option<StatementReport> {
        match self {
            ClientError::Resolve(_) => None,
            ClientError::Statement {
                claimed_issuer,
                error,
            } => Some(StatementReport {
                issuer: claimed_issuer.clone(),
                valid: false,
                reason: Some(error.to_string()),
            }),
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

/// `[trust]`: who may vouch for clients with a software statement.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrustConfig {
    /// `[[trust.issuers]]`, in file order. Empty: statements are not evaluated.
    pub issuers: Vec<IssuerConfig>,
}

/// The algorithms an issuer's statements may use when the file names none.
pub const DEFAULT_STATEMENT_ALGORITHMS: [Algorithm; 4] = [
    Algorithm::ES256,
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::EdDSA,
];

/// `[[trust.issuers]]`: one party whose software statements the operator trusts.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuerConfig {
    /// The exact `iss` its statements carry, and the label policy rules use.
    pub name: String,
    /// Where its public keys come from.
    pub keys: IssuerKeys,
    /// The signing algorithms accepted from it: asymmetric only.
    pub algorithms: Vec<Algorithm>,
    /// Claims its statements must carry, each with exactly this string value.
    pub required_claims: BTreeMap<String, String>,
}

/// Where an issuer's public keys come from.
#[derive(Debug, Clone, PartialEq)]
pub enum IssuerKeys {
    /// `jwks_file`: a JWK Set read when [`Trust`] is built (and on every reload).
    File(PathBuf),
    /// `jwks_uri`: a JWK Set fetched through the hardened fetcher and cached.
    Uri(Url),
}

/// The largest JWKS file read; a key set is a few KiB, a bigger file is a wrong path.
const MAX_JWKS_FILE_BYTES: u64 = 1024 * 1024;

/// Why [`Trust`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TrustSetupError {
    /// An issuer's `jwks_file` is unreadable or holds no usable public key.
    #[error("[[trust.issuers]] {issuer}: jwks_file: {message}")]
    JwksFile {
        /// The issuer's name.
        issuer: String,
        /// What is wrong, naming the file (never its contents).
        message: String,
    },
}

/// Reads a public JWK Set file under the rules the fetched ones follow.
/// [`Trust::new`] reads every `jwks_file` with it; `config check` calls it
/// to list a bad file among the configuration's problems.
///
/// # Errors
///
/// A message naming the file: unreadable, too large, not JSON, not a
/// public JWK Set (private material is refused), or no usable key.
pub fn load_jwks_file(path: &Path) -> Result<Vec<Jwk>, String> {
    use std::io::Read as _;
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_JWKS_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if bytes.len() as u64 > MAX_JWKS_FILE_BYTES {
        return Err(format!(
            "{shown} is larger than {MAX_JWKS_FILE_BYTES} bytes, not a JWK Set"
        ));
    }
    // serde_json's message can quote the file; a private key may be in it.
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|_| format!("{shown} is not JSON"))?;
    let keys = jwks::parse_jwk_set(&value).map_err(|error| format!("{shown}: {error}"))?;
    if keys.is_empty() {
        return Err(format!("{shown} holds no usable public key"));
    }
    Ok(keys)
}

/// A configured issuer with its keys at hand.
#[derive(Debug)]
struct Issuer {
    name: String,
    keys: KeySource,
    algorithms: Vec<Algorithm>,
    required_claims: BTreeMap<String, String>,
}

/// An issuer's keys: read from its file when built, or fetched when needed.
#[derive(Debug)]
enum KeySource {
    Read(Vec<Jwk>),
    Uri(Url),
}

impl Issuer {
    fn build(config: &IssuerConfig) -> Result<Issuer, TrustSetupError> {
        let keys = match &config.keys {
            IssuerKeys::File(path) => KeySource::Read(load_jwks_file(path).map_err(|message| {
                TrustSetupError::JwksFile {
                    issuer: config.name.clone(),
                    message,
                }
            })?),
            IssuerKeys::Uri(url) => KeySource::Uri(url.clone()),
        };
        Ok(Issuer {
            name: config.name.clone(),
            keys,
            algorithms: config.algorithms.clone(),
            required_claims: config.required_claims.clone(),
        })
    }
}

fn build_issuers(config: &TrustConfig) -> Result<Arc<[Issuer]>, TrustSetupError> {
    config.issuers.iter().map(Issuer::build).collect()
}

/// The configured issuers and their keys. Cheap to clone.
///
/// The issuers come from the configuration in force; the cache of fetched
/// key sets outlives a reload ([`Trust::reconfigured`]), keyed by URL, so a
/// changed `jwks_uri` is fetched anew and an unchanged one is not.
#[derive(Clone)]
pub struct Trust {
    issuers: Arc<[Issuer]>,
    egress: Arc<Egress>,
    key_sets: Arc<JwksCache>,
    clock: Clock,
}

impl fmt::Debug for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.issuers.iter().map(|i| i.name.as_str()).collect();
        f.debug_struct("Trust")
            .field("issuers", &names)
            .finish_non_exhaustive()
    }
}

impl Trust {
    /// The issuers of `config`, with every `jwks_file` read now and
    /// `jwks_uri`s fetched through `egress` when a statement needs them.
    ///
    /// # Errors
    ///
    /// [`TrustSetupError`] when a `jwks_file` cannot be used.
    pub fn new(config: &TrustConfig, egress: Arc<Egress>) -> Result<Trust, TrustSetupError> {
        Ok(Trust {
            issuers: build_issuers(config)?,
            egress,
            key_sets: Arc::new(JwksCache::new(
                MAX_KEY_SETS,
                KEY_SET_TTL,
                KEY_SET_REFETCH_INTERVAL,
            )),
            clock: Arc::new(system_clock),
        })
    }

    /// The issuers of a reloaded `config`, their `jwks_file`s read anew,
    /// keeping the fetcher and the cache of fetched key sets.
    ///
    /// # Errors
    ///
    /// [`TrustSetupError`] when a `jwks_file` cannot be used.
    pub fn reconfigured(&self, config: &TrustConfig) -> Result<Trust, TrustSetupError> {
        Ok(Trust {
            issuers: build_issuers(config)?,
            ..self.clone()
        })
    }

    #[cfg(test)]
    fn with_clock(mut self, clock: Clock) -> Trust {
        self.clock = clock;
        self
    }

    /// Evaluates the statement of a validated document: the metadata to use
    /// and the verdict (`None` without a statement).
    ///
    /// # Errors
    ///
    /// [`ClientError::Statement`] when issuers are configured and the
    /// statement does not verify.
    pub async fn vet(
        &self,
        client: &ClientIdUrl,
        metadata: Arc<ClientMetadata>,
    ) -> Result<(Arc<ClientMetadata>, Option<Verdict>), ClientError> {
        let Some(statement) = metadata.software_statement.as_deref() else {
            return Ok((metadata, None));
        };
        let claimed_issuer = claimed_issuer(statement);
        if self.issuers.is_empty() {
            return Ok((
                Arc::clone(&metadata),
                Some(Verdict::NotChecked { claimed_issuer }),
            ));
        }
        match self.verify(client, &metadata, statement).await {
            Ok((issuer, effective)) => Ok((Arc::new(effective), Some(Verdict::Vouched { issuer }))),
            Err(error) => {
                if let StatementError::KeysUnavailable { issuer, error } = &error {
                    // The message carries only the code; the operator needs the rest.
                    tracing::warn!(issuer = %issuer, %error, "cannot fetch a trusted issuer's keys");
                }
                tracing::info!(
                    client_id = %shown(client.as_str()),
                    reason = error.as_str(),
                    "software statement refused"
                );
                Err(ClientError::Statement {
                    claimed_issuer,
                    error,
                })
            }
        }
    }

    /// A dynamic registration's statement (`/register`): steps 1 to 4, 6
    /// and 7 of the module documentation. There is no client_id yet for it
    /// to name (step 5); the claims that take precedence are returned for
    /// the registration to apply and validate (step 8). `None` when the
    /// request carries no statement, or no issuer is configured (then, as
    /// for documents, statements are not evaluated).
    ///
    /// # Errors
    ///
    /// Why the statement does not vouch for the registration.
    pub async fn vet_registration(
        &self,
        metadata: &ClientMetadata,
    ) -> Result<Option<(String, Map<String, Value>)>, StatementError> {
        let Some(statement) = metadata.software_statement.as_deref() else {
            return Ok(None);
        };
        if self.issuers.is_empty() {
            return Ok(None);
        }
        let (issuer, claims) = self.authenticate(statement).await?;
        check_agrees(&claims, metadata)?;
        check_required_claims(issuer, &claims)?;
        let overrides = claims
            .into_iter()
            .filter(|(name, _)| !NOT_METADATA.contains(&name.as_str()))
            .collect();
        Ok(Some((issuer.name.clone(), overrides)))
    }

    /// Steps 1 to 8 of the module documentation: the issuer's name and the
    /// effective metadata.
    async fn verify(
        &self,
        client: &ClientIdUrl,
        metadata: &ClientMetadata,
        statement: &str,
    ) -> Result<(String, ClientMetadata), StatementError> {
        let (issuer, claims) = self.authenticate(statement).await?;
        check_names_client(&claims, client)?;
        check_agrees(&claims, metadata)?;
        check_required_claims(issuer, &claims)?;
        let overrides: Map<String, Value> = claims
            .into_iter()
            .filter(|(name, _)| !NOT_METADATA.contains(&name.as_str()))
            .collect();
        let effective =
            metadata::overlay(client, metadata, &overrides).map_err(StatementError::Effective)?;
        Ok((issuer.name.clone(), effective))
    }

    /// Steps 1 to 4: the issuer, and the claims its signature covers.
    async fn authenticate(
        &self,
        statement: &str,
    ) -> Result<(&Issuer, Map<String, Value>), StatementError> {
        if statement.len() > MAX_STATEMENT_BYTES {
            return Err(StatementError::TooLarge {
                limit: MAX_STATEMENT_BYTES,
            });
        }
        let header = read_header(statement).map_err(|e| StatementError::from_jwt(e, ""))?;
        // Read unverified only to know whose keys to verify with.
        let unverified: Map<String, Value> =
            jsonwebtoken::dangerous::insecure_decode_claims(statement).map_err(|_| {
                StatementError::Malformed {
                    reason: "the claims are not a base64url-encoded JSON object",
                }
            })?;
        let Some(Value::String(iss)) = unverified.get("iss") else {
            return Err(StatementError::MissingIssuer);
        };
        let Some(issuer) = self.issuers.iter().find(|issuer| issuer.name == *iss) else {
            return Err(StatementError::UnknownIssuer { iss: shown(iss) });
        };
        if !issuer.algorithms.contains(&header.alg) {
            return Err(StatementError::AlgorithmNotAllowed {
                alg: jwks::alg_name(header.alg),
                issuer: issuer.name.clone(),
            });
        }
        let from_jwt = |error| StatementError::from_jwt(error, &issuer.name);
        let key = match &issuer.keys {
            KeySource::Read(keys) => select_key(keys, header.kid.as_deref(), header.alg)
                .cloned()
                .map_err(from_jwt)?,
            KeySource::Uri(url) => self
                .key_sets
                .key_for(&self.egress, url.as_str(), &header)
                .await
                .map_err(from_jwt)?,
        };
        let mut validation = Validation::new(header.alg);
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["iss"]);
        let claims =
            jwks::verify_signature(statement, &key, header.alg, validation).map_err(from_jwt)?;
        // The same bytes were read unverified above; checked again on what
        // the signature covers, so nothing rests on the unverified read.
        if claims.get("iss").and_then(Value::as_str) != Some(issuer.name.as_str()) {
            return Err(StatementError::MissingIssuer);
        }
        check_times(&claims, (self.clock)())?;
        Ok((issuer, claims))
    }
}

/// Step 7: the issuer's `required_claims`.
fn check_required_claims(
    issuer: &Issuer,
    claims: &Map<String, Value>,
) -> Result<(), StatementError> {
    for (claim, expected) in &issuer.required_claims {
        if claims.get(claim).and_then(Value::as_str) != Some(expected.as_str()) {
            return Err(StatementError::RequiredClaim {
                claim: claim.clone(),
                issuer: issuer.name.clone(),
            });
        }
    }
    Ok(())
}

/// `exp` (optional), `nbf` and `iat` against `now`, with the skew.
fn check_times(claims: &Map<String, Value>, now: i64) -> Result<(), StatementError> {
    let date =
        |claim| numeric_date(claims, claim).map_err(|error| StatementError::from_jwt(error, ""));
    let skew = i64::try_from(CLOCK_SKEW.as_secs()).unwrap_or(i64::MAX);
    let latest = now.saturating_add(skew);
    if date("exp")?.is_some_and(|exp| now > exp.saturating_add(skew)) {
        return Err(StatementError::Expired);
    }
    if date("nbf")?.is_some_and(|nbf| nbf > latest) {
        return Err(StatementError::NotYetValid);
    }
    if date("iat")?.is_some_and(|iat| iat > latest) {
        return Err(StatementError::IssuedInFuture);
    }
    Ok(())
}

/// The statement's `client_id` claim, or without one its `sub`, must be the client_id.
fn check_names_client(
    claims: &Map<String, Value>,
    client: &ClientIdUrl,
) -> Result<(), StatementError> {
    let named = claims.get("client_id").or_else(|| claims.get("sub"));
    match named {
        Some(Value::String(named)) if named == client.as_str() => Ok(()),
        Some(Value::String(named)) => Err(StatementError::OtherClient {
            named: shown(named),
        }),
        _ => Err(StatementError::NamesNoClient),
    }
}

/// `redirect_uris` (as sets of strings), `jwks_uri` and `jwks` must be the
/// document's when the statement states them.
fn check_agrees(
    claims: &Map<String, Value>,
    metadata: &ClientMetadata,
) -> Result<(), StatementError> {
    if let Some(uris) = claims.get("redirect_uris") {
        let stated: Option<BTreeSet<&str>> = uris
            .as_array()
            .and_then(|uris| uris.iter().map(Value::as_str).collect());
        let documented: BTreeSet<&str> =
            metadata.redirect_uris.iter().map(String::as_str).collect();
        if stated.as_ref() != Some(&documented) {
            return Err(StatementError::Contradicts {
                claim: "redirect_uris",
            });
        }
    }
    if let Some(uri) = claims.get("jwks_uri")
        && uri.as_str() != metadata.jwks_uri.as_deref()
    {
        return Err(StatementError::Contradicts { claim: "jwks_uri" });
    }
    // Inline keys are the other way of naming which keys speak for the client.
    if let Some(jwks) = claims.get("jwks")
        && Some(jwks) != metadata.jwks.as_ref()
    {
        return Err(StatementError::Contradicts { claim: "jwks" });
    }
    Ok(())
}

/// The `iss` a statement claims, read without verification, for reports.
fn claimed_issuer(statement: &str) -> Option<String> {
    if statement.len() > MAX_STATEMENT_BYTES {
        return None;
    }
    let claims: Map<String, Value> =
        jsonwebtoken::dangerous::insecure_decode_claims(statement).ok()?;
    claims.get("iss")?.as_str().map(shown)
}

/// Why a statement could not be made.
#[derive(Debug, thiserror::Error)]
pub enum StatementSignError {
    /// `--claim` tried to set a claim the command sets itself.
    #[error("the {0} claim is set by the command itself")]
    ReservedClaim(String),
    /// The lifetime does not fit in a timestamp.
    #[error("the lifetime is too long")]
    Lifetime,
    /// The signature could not be made.
    #[error(transparent)]
    Sign(#[from] SigningError),
}

/// The claims `statement sign` sets itself.
const SIGNED_BY_COMMAND: [&str; 4] = ["iss", "client_id", "iat", "exp"];

/// Makes a software statement: `iss` = `issuer`, `client_id`, `iat` now,
/// `exp` now + `lifetime`, and `claims` (which may not set those four),
/// signed with the newest of `keys` under its `kid`.
///
/// # Errors
///
/// A reserved claim in `claims`, or a signing failure.
pub fn sign_statement(
    keys: &SigningKeys,
    issuer: &str,
    client_id: &ClientIdUrl,
    claims: &Map<String, Value>,
    lifetime: Duration,
) -> Result<String, StatementSignError> {
    sign_statement_at(keys, issuer, client_id, claims, lifetime, system_clock())
}

fn sign_statement_at(
    keys: &SigningKeys,
    issuer: &str,
    client_id: &ClientIdUrl,
    claims: &Map<String, Value>,
    lifetime: Duration,
    now: i64,
) -> Result<String, StatementSignError> {
    if let Some(reserved) = claims
        .keys()
        .find(|name| SIGNED_BY_COMMAND.contains(&name.as_str()))
    {
        return Err(StatementSignError::ReservedClaim(reserved.clone()));
    }
    let exp = i64::try_from(lifetime.as_secs())
        .ok()
        .and_then(|seconds| now.checked_add(seconds))
        .ok_or(StatementSignError::Lifetime)?;
    let mut all = claims.clone();
    all.insert("iss".to_owned(), Value::from(issuer));
    all.insert("client_id".to_owned(), Value::from(client_id.as_str()));
    all.insert("iat".to_owned(), Value::from(now));
    all.insert("exp".to_owned(), Value::from(exp));
    Ok(keys.sign(&Value::Object(all))?)
}

#[cfg(test)]
mod tests;
