//! id_tokens: verifying the provider's, and issuing the proxy's own.
//!
//! A CIMD client talks to the proxy as its OpenID provider, so the id_token
//! it receives must name the proxy as `iss` and the client's own client_id
//! as `aud`. The provider's id_token (issued to the pre-registered client)
//! is verified here against the provider's JWKS, its identity claims are
//! carried into a new token ([`reissue_claims`]), and that token is signed
//! with the proxy's key ([`SigningKeys`]), published at `/jwks.json`.
//!
//! The provider's token is checked by `jwks`, under the rules every
//! signed JWT the proxy verifies follows (header, key choice and fit, RSA
//! signatures by `ring`); only the claims rules are this module's. JWS and
//! JWK handling is `jsonwebtoken`'s (the `rust_crypto` backend).
//! `p256` and `rsa`, which that backend already uses, read the key formats
//! `jsonwebtoken` does not (SEC1 "EC PRIVATE KEY", PKCS#8 RSA to PKCS#1) and
//! check the curve and the RSA size; `ring` generates ephemeral keys and
//! computes `at_hash`.
//!
//! RSA keys sign through the `rsa` crate, whose private-key operations are
//! not constant-time (RUSTSEC-2023-0071, no fixed release). An id_token's
//! signing input is chosen by the proxy rather than an attacker and timing is
//! blurred by the network, but prefer P-256 keys (ES256) for the proxy.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    CommonParameters, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header, Validation};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, PrivateKeyInfo};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::traits::PublicKeyParts;
use serde_json::{Map, Value};

use crate::jwks::{self, JwtError, alg_name};

#[cfg(test)]
mod tests;

/// Clock skew allowed on `exp` and `iat` of a provider's id_token.
pub const CLOCK_SKEW_SECS: u64 = 60;
/// The longest provider id_token looked at.
pub const MAX_ID_TOKEN_LEN: usize = 16 * 1024;
/// A key file is a few PEM blocks; a bigger one is a wrong path.
const MAX_KEY_FILE_BYTES: u64 = 1024 * 1024;

/// The identity claims carried from the provider's id_token into the
/// proxy's (besides `sub`). Everything else is dropped: in particular the
/// provider's `iss`, `aud`, `azp`, `nonce`, `at_hash`, `c_hash` (they belong
/// to the provider's exchange with the pre-registered client) and `sid`,
/// which names a session at the provider that the client never talks to; the
/// proxy offers no logout, so a `sid` would only leak a correlatable
/// provider session identifier to every client.
const CARRIED_CLAIMS: [&str; 13] = [
    "name",
    "given_name",
    "family_name",
    "preferred_username",
    "email",
    "email_verified",
    "picture",
    "locale",
    "zoneinfo",
    "updated_at",
    "auth_time",
    "acr",
    "amr",
];

// ---------------------------------------------------------------------------
// The proxy's signing keys

/// Why the proxy's signing keys could not be set up. Names the file and the
/// PEM block, never key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningSetupError {
    /// The file cannot be read.
    #[error("signing key file {path} cannot be read: {reason}")]
    Unreadable {
        /// The file.
        path: String,
        /// Why, without any of the content.
        reason: String,
    },
    /// The file is not PEM.
    #[error("signing key file {path} is not a PEM file (or is damaged)")]
    NotPem {
        /// The file.
        path: String,
    },
    /// A PEM block is not a usable private key.
    #[error("signing key file {path}: block {position} ({label}): {problem}")]
    BadKey {
        /// The file.
        path: String,
        /// 1-based position of the PEM block in the file.
        position: usize,
        /// The block's label, e.g. `EC PRIVATE KEY`.
        label: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The file holds no private key.
    #[error(
        "signing key file {path} holds no private key (expected P-256 or RSA, PEM, newest first)"
    )]
    NoKeys {
        /// The file.
        path: String,
    },
    /// The same key appears twice.
    #[error("signing key file {path}: block {position} repeats block {first}")]
    DuplicateKey {
        /// The file.
        path: String,
        /// 1-based position of the repeat.
        position: usize,
        /// 1-based position of the first occurrence.
        first: usize,
    },
    /// An ephemeral key could not be generated.
    #[error("could not generate an ephemeral signing key: {0}")]
    Generate(String),
}

/// Why the proxy could not sign an id_token.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// The claims are not a JSON object.
    #[error("id_token claims must be a JSON object")]
    ClaimsNotObject,
    /// The signature could not be made.
    #[error("signing the id_token failed: {0}")]
    Sign(#[source] jsonwebtoken::errors::Error),
    /// The ES256 signature could not be made (no randomness).
    #[error("signing the id_token failed: the ES256 signature could not be made")]
    SignEs256,
}

/// `[signing]`: the proxy's id_token keys, read when [`SigningKeys`] is built.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SigningConfig {
    /// A file of id_token signing keys, newest first.
    pub keys_file: Option<std::path::PathBuf>,
}

/// The proxy's id_token signing keys, newest first: the first signs, all are
/// published so tokens signed before a rotation still verify.
///
/// Cheap to clone (one `Arc`), `Send + Sync`.
#[derive(Clone)]
pub struct SigningKeys {
    keys: Arc<[SigningKey]>,
    jwks: Arc<Value>,
}

struct SigningKey {
    alg: Algorithm,
    kid: String,
    encoding: EncodingKey,
    /// A P-256 key ready to sign, with `ring`. `jsonwebtoken` keeps keys as
    /// DER and parses them again on every signature, which for P-256
    /// includes deriving the public key (a scalar multiplication), and its
    /// `p256` arithmetic is several times slower than `ring`'s: together
    /// most of the CPU time of a token request.
    es256: Option<ring::signature::EcdsaKeyPair>,
    public: Jwk,
}

/// A key as read: its algorithm, `jsonwebtoken`'s form, and for P-256 the
/// parsed key.
type ReadKey = (
    Algorithm,
    EncodingKey,
    Option<ring::signature::EcdsaKeyPair>,
);

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("SigningKeys")
            .field("kids", &kids)
            .finish_non_exhaustive()
    }
}

impl SigningKeys {
    /// Reads a PEM file of private keys, newest first, keeping the file's
    /// order. Accepted: P-256 as SEC1 (`EC PRIVATE KEY`) or PKCS#8
    /// (`PRIVATE KEY`) ⇒ ES256; RSA of at least 2048 bits as PKCS#1
    /// (`RSA PRIVATE KEY`) or PKCS#8 ⇒ RS256. `EC PARAMETERS` blocks (as
    /// `openssl ecparam -genkey` writes them) are skipped; anything else
    /// (public keys, certificates, encrypted keys, other curves) is refused.
    pub fn load(path: &Path) -> Result<SigningKeys, SigningSetupError> {
        let shown = path.display().to_string();
        let unreadable = |reason: String| SigningSetupError::Unreadable {
            path: shown.clone(),
            reason,
        };
        let file = std::fs::File::open(path).map_err(|e| unreadable(e.to_string()))?;
        let mut bytes = Vec::new();
        file.take(MAX_KEY_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| unreadable(e.to_string()))?;
        if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
            return Err(unreadable(format!(
                "larger than {MAX_KEY_FILE_BYTES} bytes, not a key file"
            )));
        }
        // pem's messages can quote the damaged text; say only where.
        let blocks = pem::parse_many(&bytes).map_err(|_| SigningSetupError::NotPem {
            path: shown.clone(),
        })?;

        let mut keys: Vec<SigningKey> = Vec::with_capacity(blocks.len());
        let mut positions: Vec<usize> = Vec::with_capacity(blocks.len());
        for (index, block) in blocks.iter().enumerate() {
            let position = index + 1;
            let bad = |problem: &str| SigningSetupError::BadKey {
                path: shown.clone(),
                position,
                label: block.tag().to_owned(),
                problem: problem.to_owned(),
            };
            let Some(read) = read_block(block.tag(), block.contents()).map_err(bad)? else {
                continue;
            };
            let key = SigningKey::new(read).map_err(bad)?;
            if let Some(first) = keys.iter().position(|k| k.kid == key.kid) {
                return Err(SigningSetupError::DuplicateKey {
                    path: shown,
                    position,
                    first: positions[first],
                });
            }
            keys.push(key);
            positions.push(position);
        }
        if keys.is_empty() {
            return Err(SigningSetupError::NoKeys { path: shown });
        }
        Self::from_keys(keys).map_err(|problem| unreadable(problem.to_owned()))
    }

    /// One P-256 key made in memory, for `dev` and for a proxy without
    /// `[signing]`.
    ///
    /// An ephemeral key does not survive a restart and is not shared between
    /// replicas: id_tokens signed before a restart, or by another replica,
    /// stop verifying against this process's `/jwks.json`. Configure
    /// `signing.keys_file` for anything but a single, short-lived instance.
    pub fn generate_ephemeral() -> Result<SigningKeys, SigningSetupError> {
        let generate = |problem: &str| SigningSetupError::Generate(problem.to_owned());
        let document = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &ring::rand::SystemRandom::new(),
        )
        .map_err(|_| generate("the operating system's random source failed"))?;
        let read = read_pkcs8(document.as_ref()).map_err(generate)?;
        let key = SigningKey::new(read).map_err(generate)?;
        Self::from_keys(vec![key]).map_err(generate)
    }

    fn from_keys(keys: Vec<SigningKey>) -> Result<SigningKeys, &'static str> {
        let published: Vec<Jwk> = keys.iter().map(|k| k.public.clone()).collect();
        let jwks = serde_json::to_value(JwkSet { keys: published })
            .map_err(|_| "the public keys cannot be written as a JWK Set")?;
        Ok(SigningKeys {
            keys: keys.into(),
            jwks: Arc::new(jwks),
        })
    }

    /// The public JWK Set to publish: every key, newest first, each with
    /// `kty`, `crv`/`x`/`y` or `n`/`e`, `kid` (its RFC 7638 thumbprint),
    /// `alg` and `use` = `sig`. Never a private member.
    pub fn jwks(&self) -> Value {
        Value::clone(&self.jwks)
    }

    /// Signs `claims` (a JSON object) with the newest key; the header is
    /// `{alg, kid, typ: "JWT"}`.
    pub fn sign(&self, claims: &Value) -> Result<String, SigningError> {
        if !claims.is_object() {
            return Err(SigningError::ClaimsNotObject);
        }
        let key = self.newest();
        let mut header = Header::new(key.alg);
        header.kid = Some(key.kid.clone());
        let Some(es256) = &key.es256 else {
            return jsonwebtoken::encode(&header, claims, &key.encoding)
                .map_err(SigningError::Sign);
        };
        // What jsonwebtoken::encode does, with the key parsed once: the
        // JSON header and claims, base64url, and the fixed-size r || s
        // signature (RFC 7518 §3.4) over them, by ring.
        let header = serde_json::to_vec(&header).map_err(|e| SigningError::Sign(e.into()))?;
        let payload = serde_json::to_vec(claims).map_err(|e| SigningError::Sign(e.into()))?;
        let mut jws = String::with_capacity((header.len() + payload.len() + 64) * 4 / 3 + 4);
        URL_SAFE_NO_PAD.encode_string(&header, &mut jws);
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut jws);
        let signature = es256
            .sign(&ring::rand::SystemRandom::new(), jws.as_bytes())
            .map_err(|_| SigningError::SignEs256)?;
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut jws);
        Ok(jws)
    }

    /// The newest key's algorithm (`ES256` or `RS256`): what [`sign`]
    /// uses, and what [`reissue_claims`] needs for `at_hash`.
    ///
    /// [`sign`]: SigningKeys::sign
    pub fn alg(&self) -> &'static str {
        alg_name(self.newest().alg)
    }

    /// The newest key's `kid`.
    pub fn kid(&self) -> &str {
        &self.newest().kid
    }

    /// Every algorithm in the set, newest key's first, without repeats: for
    /// discovery's `id_token_signing_alg_values_supported`.
    pub fn algorithms(&self) -> Vec<&'static str> {
        let mut algs: Vec<&'static str> = Vec::new();
        for key in self.keys.iter() {
            let alg = alg_name(key.alg);
            if !algs.contains(&alg) {
                algs.push(alg);
            }
        }
        algs
    }

    /// How many keys are published.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a key set holds at least one key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn newest(&self) -> &SigningKey {
        // Constructors refuse an empty set, so index 0 always exists.
        &self.keys[0]
    }
}

impl SigningKey {
    fn new((alg, encoding, es256): ReadKey) -> Result<SigningKey, &'static str> {
        // Before jsonwebtoken first touches a key, so its provider is ours.
        crate::jws_crypto::install();
        let mut public = Jwk::from_encoding_key(&encoding, alg)
            .map_err(|_| "the public key cannot be derived from it")?;
        let kid = public
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|_| "its JWK thumbprint cannot be computed")?;
        public.common = CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::from(alg)),
            key_id: Some(kid.clone()),
            ..CommonParameters::default()
        };
        Ok(SigningKey {
            alg,
            kid,
            encoding,
            es256,
            public,
        })
    }
}

/// Reads one PEM block: `Ok(None)` for a block that carries no key and is
/// skipped, the key for a supported one, or what is wrong.
fn read_block(label: &str, der: &[u8]) -> Result<Option<ReadKey>, &'static str> {
    match label {
        "EC PARAMETERS" => Ok(None),
        "EC PRIVATE KEY" => {
            let secret = p256::SecretKey::from_sec1_der(der)
                .map_err(|_| "not a P-256 private key (only P-256 EC keys are supported)")?;
            ec_key(&secret).map(Some)
        }
        "RSA PRIVATE KEY" => {
            let key = rsa::RsaPrivateKey::from_pkcs1_der(der)
                .map_err(|_| "not a valid PKCS#1 RSA private key")?;
            rsa_key(&key).map(Some)
        }
        "PRIVATE KEY" => read_pkcs8(der).map(Some),
        "ENCRYPTED PRIVATE KEY" => Err("encrypted keys are not supported; store it decrypted"),
        "PUBLIC KEY" | "RSA PUBLIC KEY" | "CERTIFICATE" => {
            Err("a private key is needed here, not a public key or certificate")
        }
        _ => Err("not a private key"),
    }
}

/// A PKCS#8 private key: P-256 or RSA.
fn read_pkcs8(der: &[u8]) -> Result<ReadKey, &'static str> {
    let info = PrivateKeyInfo::try_from(der).map_err(|_| "not a valid PKCS#8 private key")?;
    if info.algorithm.oid == p256::elliptic_curve::ALGORITHM_OID {
        let secret = p256::SecretKey::from_pkcs8_der(der)
            .map_err(|_| "an EC key on a curve other than P-256 (only P-256 is supported)")?;
        ec_key(&secret)
    } else if info.algorithm.oid == rsa::pkcs1::ALGORITHM_OID {
        let key = rsa::RsaPrivateKey::from_pkcs8_der(der)
            .map_err(|_| "not a valid PKCS#8 RSA private key")?;
        rsa_key(&key)
    } else {
        Err("an unsupported key type (only P-256 and RSA are supported)")
    }
}

/// `jsonwebtoken`'s ES256 form (PKCS#8 DER, for the public JWK) and the
/// key that signs.
fn ec_key(secret: &p256::SecretKey) -> Result<ReadKey, &'static str> {
    let pkcs8 = secret
        .to_pkcs8_der()
        .map_err(|_| "the P-256 key cannot be re-encoded")?;
    let signer = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8.as_bytes(),
        &ring::rand::SystemRandom::new(),
    )
    .map_err(|_| "the P-256 key cannot be used for signing")?;
    Ok((
        Algorithm::ES256,
        EncodingKey::from_ec_der(pkcs8.as_bytes()),
        Some(signer),
    ))
}

/// `jsonwebtoken`'s RS256 signer wants PKCS#1 DER.
fn rsa_key(key: &rsa::RsaPrivateKey) -> Result<ReadKey, &'static str> {
    key.validate()
        .map_err(|_| "an inconsistent RSA private key")?;
    if key.n().bits() < crate::jwks::MIN_RSA_BITS {
        return Err("an RSA key shorter than 2048 bits");
    }
    let pkcs1 = key
        .to_pkcs1_der()
        .map_err(|_| "the RSA key cannot be re-encoded")?;
    Ok((
        Algorithm::RS256,
        EncodingKey::from_rsa_der(pkcs1.as_bytes()),
        None,
    ))
}

// ---------------------------------------------------------------------------
// The provider's id_token

/// Why a provider's id_token was refused. Messages never echo the token or
/// its claims.
///
/// What concerns the signature (the header, the key, the signature itself)
/// is decided by the rules every signed JWT the proxy verifies follows, and
/// reported as the [`JwtError`] they give.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum IdTokenError {
    /// Longer than [`MAX_ID_TOKEN_LEN`]: refused unread.
    #[error("id_token is malformed")]
    Malformed,
    /// The header, the key or the signature: `none` or HS* or an unknown
    /// algorithm, a `crit` header, no key with the `kid` (the caller may
    /// refetch the JWKS once and retry), several keys and no `kid`, a key
    /// that does not fit the algorithm (RSA under 2048 bits among them), or
    /// a signature that does not verify.
    #[error("id_token signature check failed: {0}")]
    #[strum(transparent)]
    Jwt(JwtError),
    /// A required claim (`iss`, `sub`, `aud`, `exp`, `iat`) is missing or of
    /// the wrong type.
    #[error("id_token claim {0} is missing or malformed")]
    BadClaim(&'static str),
    /// `iss` is not the provider's issuer.
    #[error("id_token iss is not the provider's issuer")]
    WrongIssuer,
    /// `aud` does not contain the upstream client_id.
    #[error("id_token aud does not contain the client")]
    WrongAudience,
    /// Several audiences and `azp` is not the client, or `azp` names another.
    #[error("id_token azp is not the client")]
    #[strum(serialize = "wrong_azp")]
    WrongAuthorizedParty,
    /// `exp` is past (beyond the allowed skew).
    #[error("id_token has expired")]
    Expired,
    /// `iat` is in the future (beyond the allowed skew).
    #[error("id_token was issued in the future")]
    IssuedInFuture,
    /// A nonce was sent and the token's is missing or different.
    #[error("id_token nonce does not match")]
    NonceMismatch,
}

impl IdTokenError {
    /// A stable name for logs and metric labels: the [`JwtError`]'s own for
    /// a signature problem, except the two that had their own names here
    /// before the checks were shared.
    pub fn as_str(&self) -> &'static str {
        match self {
            IdTokenError::Jwt(
                JwtError::DisallowedAlgorithm { .. } | JwtError::UnsupportedAlgorithm { .. },
            ) => "disallowed_algorithm",
            IdTokenError::Jwt(JwtError::UnsuitableKey { .. }) => "key_mismatch",
            other => other.into(),
        }
    }

    /// Whether no key in the set has the token's `kid`: the provider may
    /// have rotated its keys, and one refetch of its JWKS is worth it.
    pub fn is_unknown_key(&self) -> bool {
        matches!(self, IdTokenError::Jwt(JwtError::UnknownKey))
    }
}

impl From<JwtError> for IdTokenError {
    fn from(error: JwtError) -> Self {
        IdTokenError::Jwt(error)
    }
}

/// Verifies id_tokens issued by the provider to one upstream client.
#[derive(Debug, Clone)]
pub struct IdTokenVerifier {
    issuer: String,
    audience: String,
}

impl IdTokenVerifier {
    /// `issuer`: the provider's issuer identifier; `audience`: the upstream
    /// (pre-registered) client_id the token was issued to.
    pub fn new(issuer: String, audience: String) -> Self {
        IdTokenVerifier { issuer, audience }
    }

    /// Verifies `id_token` against the provider's JWKS and returns its claims.
    ///
    /// Signature with the JWK whose `kid` matches (without `kid`, the one key
    /// that fits); asymmetric algorithms only, agreeing with the JWK; `iss`
    /// equal to the provider's issuer; `aud` containing the client (and with
    /// several audiences, `azp` equal to it); `exp` not past and `iat` not in
    /// the future, with [`CLOCK_SKEW_SECS`]; `nonce` equal to
    /// `expected_nonce` when one is given (a nonce that was not asked for is
    /// ignored).
    pub fn verify(
        &self,
        id_token: &str,
        keys: &JwkSet,
        expected_nonce: Option<&str>,
    ) -> Result<Map<String, Value>, IdTokenError> {
        self.verify_at(id_token, keys, expected_nonce, unix_now())
    }

    /// [`IdTokenVerifier::verify`] with the clock given (unix seconds).
    pub fn verify_at(
        &self,
        id_token: &str,
        keys: &JwkSet,
        expected_nonce: Option<&str>,
        now: u64,
    ) -> Result<Map<String, Value>, IdTokenError> {
        if id_token.len() > MAX_ID_TOKEN_LEN {
            return Err(IdTokenError::Malformed);
        }
        // The same header, key and signature rules as every other JWT.
        let header = jwks::read_header(id_token)?;
        let jwk = jwks::select_key(&keys.keys, header.kid.as_deref(), header.alg)?;
        // Only the signature here: the claims are checked below, against
        // `now` and with the provider-specific rules.
        let mut validation = Validation::new(header.alg);
        validation.required_spec_claims.clear();
        validation.validate_aud = false;
        let claims = jwks::verify_signature(id_token, jwk, header.alg, validation)?;

        self.check_claims(&claims, expected_nonce, now)?;
        Ok(claims)
    }

    fn check_claims(
        &self,
        claims: &Map<String, Value>,
        expected_nonce: Option<&str>,
        now: u64,
    ) -> Result<(), IdTokenError> {
        let iss = claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(IdTokenError::BadClaim("iss"))?;
        if iss != self.issuer {
            return Err(IdTokenError::WrongIssuer);
        }
        match claims.get("sub").and_then(Value::as_str) {
            Some(sub) if !sub.is_empty() => {}
            _ => return Err(IdTokenError::BadClaim("sub")),
        }

        let audiences: Vec<&str> = match claims.get("aud") {
            Some(Value::String(aud)) => vec![aud.as_str()],
            Some(Value::Array(auds)) => auds
                .iter()
                .map(|aud| aud.as_str().ok_or(IdTokenError::BadClaim("aud")))
                .collect::<Result<_, _>>()?,
            _ => return Err(IdTokenError::BadClaim("aud")),
        };
        if !audiences.contains(&self.audience.as_str()) {
            return Err(IdTokenError::WrongAudience);
        }
        match claims.get("azp") {
            None if audiences.len() > 1 => return Err(IdTokenError::WrongAuthorizedParty),
            None => {}
            Some(azp) if azp.as_str() == Some(self.audience.as_str()) => {}
            Some(_) => return Err(IdTokenError::WrongAuthorizedParty),
        }

        let exp = numeric_date(claims.get("exp")).ok_or(IdTokenError::BadClaim("exp"))?;
        if exp.saturating_add(CLOCK_SKEW_SECS) <= now {
            return Err(IdTokenError::Expired);
        }
        let iat = numeric_date(claims.get("iat")).ok_or(IdTokenError::BadClaim("iat"))?;
        if iat > now.saturating_add(CLOCK_SKEW_SECS) {
            return Err(IdTokenError::IssuedInFuture);
        }

        if let Some(expected) = expected_nonce
            && claims.get("nonce").and_then(Value::as_str) != Some(expected)
        {
            return Err(IdTokenError::NonceMismatch);
        }
        Ok(())
    }
}

/// A JWT NumericDate: seconds since the epoch, possibly fractional.
fn numeric_date(value: Option<&Value>) -> Option<u64> {
    let value = value?;
    if let Some(n) = value.as_u64() {
        return Some(n);
    }
    let f = value.as_f64()?;
    // Truncation is intended: a NumericDate counts whole seconds here.
    (f.is_finite() && f >= 0.0 && f < u64::MAX as f64).then_some(f as u64)
}

// ---------------------------------------------------------------------------
// The proxy's id_token

/// The proxy's own id_token claims from the provider's verified claims.
///
/// `iss` = the proxy's issuer; `aud` and `azp` = the CIMD client_id; `sub`
/// and the identity claims listed in `CARRIED_CLAIMS` copied when present;
/// `nonce` = the client's nonce when given; `iat` now and `exp` now +
/// `lifetime`; `at_hash` for `access_token` under the signing algorithm
/// `alg` (omitted for an algorithm it is not defined for). Nothing else of
/// the provider's token is carried, `sid` included (see `CARRIED_CLAIMS`).
pub fn reissue_claims(
    provider: &Map<String, Value>,
    issuer: &str,
    client_id: &str,
    nonce: Option<&str>,
    access_token: Option<&str>,
    alg: &str,
    lifetime: Duration,
) -> Value {
    reissue_claims_at(
        provider,
        issuer,
        client_id,
        nonce,
        access_token,
        alg,
        lifetime,
        unix_now(),
    )
}

/// [`reissue_claims`] with the clock given (unix seconds).
#[allow(clippy::too_many_arguments)]
pub fn reissue_claims_at(
    provider: &Map<String, Value>,
    issuer: &str,
    client_id: &str,
    nonce: Option<&str>,
    access_token: Option<&str>,
    alg: &str,
    lifetime: Duration,
    now: u64,
) -> Value {
    let mut claims = Map::new();
    claims.insert("iss".to_owned(), Value::from(issuer));
    if let Some(sub) = provider.get("sub") {
        claims.insert("sub".to_owned(), sub.clone());
    }
    claims.insert("aud".to_owned(), Value::from(client_id));
    claims.insert("azp".to_owned(), Value::from(client_id));
    claims.insert("iat".to_owned(), Value::from(now));
    claims.insert(
        "exp".to_owned(),
        Value::from(now.saturating_add(lifetime.as_secs())),
    );
    for name in CARRIED_CLAIMS {
        if let Some(value) = provider.get(name) {
            claims.insert(name.to_owned(), value.clone());
        }
    }
    if let Some(nonce) = nonce {
        claims.insert("nonce".to_owned(), Value::from(nonce));
    }
    if let Some(hash) = access_token.and_then(|token| at_hash(alg, token)) {
        claims.insert("at_hash".to_owned(), Value::from(hash));
    }
    Value::Object(claims)
}

/// OpenID Connect's `at_hash`: the left half of the access token's hash under
/// the hash of the signing algorithm, base64url. `None` for an algorithm
/// without a defined hash (`none`, unknown names).
pub fn at_hash(alg: &str, access_token: &str) -> Option<String> {
    let digest = match alg {
        "ES256" | "RS256" | "PS256" | "HS256" => &ring::digest::SHA256,
        "ES384" | "RS384" | "PS384" | "HS384" => &ring::digest::SHA384,
        // EdDSA with Ed25519 uses SHA-512 (OpenID Connect Core errata).
        "ES512" | "RS512" | "PS512" | "HS512" | "EdDSA" => &ring::digest::SHA512,
        _ => return None,
    };
    let hash = ring::digest::digest(digest, access_token.as_bytes());
    let bytes = hash.as_ref();
    Some(URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() / 2]))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
