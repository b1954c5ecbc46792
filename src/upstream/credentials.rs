//! The pre-registered clients' credentials and how they are presented.
//!
//! Everything is read once, at start-up, so a missing variable or an
//! unreadable key stops the process before it serves anything. Errors name
//! the client and the variable or file, never the value; the values live in
//! types whose `Debug` prints nothing.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderValue;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::RsaPrivateKey;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::traits::PublicKeyParts;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use super::{UpstreamAuthMethod, UpstreamClient, UpstreamError};
use crate::secret::SecretSource;

/// RFC 7523 §2.2's `client_assertion_type`.
pub(super) const JWT_BEARER_ASSERTION: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long a client assertion is valid: one token call needs seconds.
const ASSERTION_LIFETIME_SECS: u64 = 60;

/// A secret or key file larger than this is not what the operator meant.
const MAX_CREDENTIAL_FILE_BYTES: u64 = 64 * 1024;

/// RSA keys below this size are refused (NIST SP 800-131A).
const MIN_RSA_BITS: usize = 2048;

/// A client secret. `Debug` prints nothing of it.
pub(super) struct Secret(String);

impl Secret {
    /// The value, for the one place it goes on the wire.
    pub(super) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// How one upstream client authenticates at the token endpoint.
#[derive(Debug)]
pub(super) enum Credential {
    /// `client_secret_basic`.
    Basic(Secret),
    /// `client_secret_post`.
    Post(Secret),
    /// `private_key_jwt`.
    PrivateKeyJwt(AssertionKey),
    /// `none`: a public client.
    None,
}

/// One `[upstream.clients.NAME]`, its credential loaded.
#[derive(Debug)]
pub(super) struct LoadedClient {
    /// Its client_id at the provider.
    pub client_id: String,
    /// What it presents.
    pub credential: Credential,
}

/// Loads the credential the client's `auth_method` needs (and only that).
pub(super) fn load_client(
    name: &str,
    client: &UpstreamClient,
) -> Result<LoadedClient, UpstreamError> {
    let failed = |reason: String| UpstreamError::Credential {
        client: name.to_owned(),
        reason,
    };
    let secret = || match &client.client_secret {
        Some(source) => read_secret(source).map_err(failed),
        None => Err(failed(
            "client_secret_env or client_secret_file is required for this auth_method".to_owned(),
        )),
    };
    let credential = match client.auth_method {
        UpstreamAuthMethod::ClientSecretBasic => Credential::Basic(secret()?),
        UpstreamAuthMethod::ClientSecretPost => Credential::Post(secret()?),
        UpstreamAuthMethod::PrivateKeyJwt => match &client.private_key_file {
            Some(path) => Credential::PrivateKeyJwt(AssertionKey::load(path).map_err(failed)?),
            None => {
                return Err(failed(
                    "private_key_file is required for private_key_jwt".to_owned(),
                ));
            }
        },
        UpstreamAuthMethod::None => Credential::None,
    };
    Ok(LoadedClient {
        client_id: client.client_id.clone(),
        credential,
    })
}

/// Reads a secret from its source. A file loses one trailing newline (what
/// `echo` and most editors add); an empty secret is refused.
pub(super) fn read_secret(source: &SecretSource) -> Result<Secret, String> {
    let value = match source {
        SecretSource::Env(name) => match std::env::var(name) {
            Ok(value) => value,
            Err(std::env::VarError::NotPresent) => {
                return Err(format!("environment variable {name} is not set"));
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(format!("environment variable {name} is not valid UTF-8"));
            }
        },
        SecretSource::File(path) => {
            let bytes = read_bounded(path, "client_secret_file")?;
            let mut text = String::from_utf8(bytes)
                .map_err(|_| format!("client_secret_file {} is not UTF-8", path.display()))?;
            if text.ends_with("\r\n") {
                text.truncate(text.len() - 2);
            } else if text.ends_with('\n') {
                text.truncate(text.len() - 1);
            }
            text
        }
    };
    if value.is_empty() {
        let place = match source {
            SecretSource::Env(name) => format!("environment variable {name}"),
            SecretSource::File(path) => format!("client_secret_file {}", path.display()),
        };
        return Err(format!("{place} is empty"));
    }
    Ok(Secret(value))
}

fn read_bounded(path: &Path, key: &str) -> Result<Vec<u8>, String> {
    let size = std::fs::metadata(path)
        .map_err(|error| format!("cannot read {key} {}: {error}", path.display()))?
        .len();
    if size > MAX_CREDENTIAL_FILE_BYTES {
        return Err(format!(
            "{key} {} is larger than {MAX_CREDENTIAL_FILE_BYTES} bytes",
            path.display()
        ));
    }
    std::fs::read(path).map_err(|error| format!("cannot read {key} {}: {error}", path.display()))
}

/// `client_secret_basic` per RFC 6749 §2.3.1: id and secret each
/// form-urlencoded, joined by `:`, then base64. (Plain `id:secret` breaks on
/// a `:` in the id and on non-ASCII; some providers' secrets hold `+`, `/`, `=`.)
pub(super) fn basic_authorization(
    client_id: &str,
    secret: &Secret,
    client_name: &str,
) -> Result<HeaderValue, UpstreamError> {
    let encode =
        |text: &str| url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    let credentials = format!("{}:{}", encode(client_id), encode(secret.expose()));
    let mut value = HeaderValue::try_from(format!("Basic {}", STANDARD.encode(credentials)))
        // Base64 output is always a valid header value; this is unreachable.
        .map_err(|_| UpstreamError::Credential {
            client: client_name.to_owned(),
            reason: "the Basic credentials do not form a header value".to_owned(),
        })?;
    value.set_sensitive(true);
    Ok(value)
}

/// A `private_key_jwt` signing key: RSA (≥ 2048 bits, RS256) or P-256
/// (ES256), with its RFC 7638 thumbprint as `kid`.
pub(super) struct AssertionKey {
    key: EncodingKey,
    algorithm: Algorithm,
    kid: String,
}

impl std::fmt::Debug for AssertionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionKey")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The claims of a client assertion (RFC 7523 §3).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct AssertionClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub jti: String,
    pub iat: u64,
    pub exp: u64,
}

impl AssertionKey {
    /// Reads the first private key of a PEM file: PKCS#1 (`RSA PRIVATE
    /// KEY`), SEC1 (`EC PRIVATE KEY`) or PKCS#8 (`PRIVATE KEY`).
    pub(super) fn load(path: &Path) -> Result<AssertionKey, String> {
        let pem = read_bounded(path, "private_key_file")?;
        AssertionKey::from_pem(&pem)
            .map_err(|reason| format!("private_key_file {}: {reason}", path.display()))
    }

    /// As [`Self::load`], from the file's bytes. Errors say what kind of
    /// key was wanted, never anything of the key.
    pub(super) fn from_pem(pem: &[u8]) -> Result<AssertionKey, String> {
        const WANTED: &str = "holds no RSA (2048 bits or more) or P-256 private key in PEM";
        // Before jsonwebtoken first touches a key, so its provider is ours.
        crate::jws_crypto::install();
        // The parser's own error can quote a line of the file; not repeated.
        let der = PrivateKeyDer::from_pem_slice(pem).map_err(|_| WANTED.to_owned())?;
        let (key, algorithm) = match &der {
            PrivateKeyDer::Pkcs1(pkcs1) => {
                let rsa = RsaPrivateKey::from_pkcs1_der(pkcs1.secret_pkcs1_der())
                    .map_err(|_| WANTED.to_owned())?;
                rsa_key(&rsa)?
            }
            PrivateKeyDer::Sec1(sec1) => {
                use p256::pkcs8::EncodePrivateKey as _;
                let secret = p256::SecretKey::from_sec1_der(sec1.secret_sec1_der())
                    .map_err(|_| WANTED.to_owned())?;
                // jsonwebtoken takes EC keys as PKCS#8 only.
                let pkcs8 = secret.to_pkcs8_der().map_err(|_| WANTED.to_owned())?;
                (EncodingKey::from_ec_der(pkcs8.as_bytes()), Algorithm::ES256)
            }
            PrivateKeyDer::Pkcs8(pkcs8) => {
                use p256::pkcs8::DecodePrivateKey as _;
                let der = pkcs8.secret_pkcs8_der();
                if p256::SecretKey::from_pkcs8_der(der).is_ok() {
                    (EncodingKey::from_ec_der(der), Algorithm::ES256)
                } else {
                    let rsa = RsaPrivateKey::from_pkcs8_der(der).map_err(|_| WANTED.to_owned())?;
                    rsa_key(&rsa)?
                }
            }
            _ => return Err(WANTED.to_owned()),
        };
        let kid = Jwk::from_encoding_key(&key, algorithm)
            .and_then(|jwk| jwk.thumbprint(ThumbprintHash::SHA256))
            .map_err(|_| WANTED.to_owned())?;
        let loaded = AssertionKey {
            key,
            algorithm,
            kid,
        };
        // Sign once now, so a key that parses but cannot sign fails at start-up.
        loaded
            .assertion("start-up-check", "https://start-up-check.invalid/")
            .map_err(|_| WANTED.to_owned())?;
        Ok(loaded)
    }

    /// The key's RFC 7638 thumbprint, sent as `kid`.
    pub(super) fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm assertions are signed with.
    pub(super) fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// A fresh client assertion: `iss` = `sub` = the client_id, `aud` = the
    /// token endpoint, a random `jti`, valid for 60 s. No `x5t`: there is no
    /// certificate to take it from.
    pub(super) fn assertion(&self, client_id: &str, audience: &str) -> Result<String, String> {
        let iat = jsonwebtoken::get_current_timestamp();
        let claims = AssertionClaims {
            iss: client_id.to_owned(),
            sub: client_id.to_owned(),
            aud: audience.to_owned(),
            jti: random_jti()?,
            iat,
            exp: iat + ASSERTION_LIFETIME_SECS,
        };
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|error| error.to_string())
    }
}

fn rsa_key(rsa: &RsaPrivateKey) -> Result<(EncodingKey, Algorithm), String> {
    let bits = rsa.size() * 8;
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "holds a {bits}-bit RSA key; at least {MIN_RSA_BITS} bits are required"
        ));
    }
    // jsonwebtoken's RSA signer takes PKCS#1 DER.
    let pkcs1 = rsa
        .to_pkcs1_der()
        .map_err(|_| "cannot re-encode the RSA key".to_owned())?;
    Ok((
        EncodingKey::from_rsa_der(pkcs1.as_bytes()),
        Algorithm::RS256,
    ))
}

/// 128 random bits, hex: unique enough that a provider's replay cache never
/// sees the same `jti` twice.
fn random_jti() -> Result<String, String> {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "the system random generator failed".to_owned())?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    const RSA_PKCS1: &str = include_str!("testdata/rsa2048-pkcs1.pem");
    const RSA_PKCS8: &str = include_str!("testdata/rsa2048-pkcs8.pem");
    const RSA_PUBLIC: &str = include_str!("testdata/rsa2048-public.pem");
    const RSA_1024: &str = include_str!("testdata/rsa1024-pkcs1.pem");
    const P256_SEC1: &str = include_str!("testdata/p256-sec1.pem");
    const P256_PKCS8: &str = include_str!("testdata/p256-pkcs8.pem");
    const P256_PUBLIC: &str = include_str!("testdata/p256-public.pem");
    const P384_PKCS8: &str = include_str!("testdata/p384-pkcs8.pem");

    fn verify(token: &str, key: &DecodingKey, algorithm: Algorithm, aud: &str) -> AssertionClaims {
        let mut validation = Validation::new(algorithm);
        validation.set_audience(&[aud]);
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        jsonwebtoken::decode::<AssertionClaims>(token, key, &validation)
            .unwrap()
            .claims
    }

    #[test]
    fn rsa_assertion_claims_and_signature() {
        let aud = "https://idp.example.com/oauth2/token";
        for pem in [RSA_PKCS1, RSA_PKCS8] {
            let key = AssertionKey::from_pem(pem.as_bytes()).unwrap();
            assert_eq!(key.algorithm(), Algorithm::RS256);
            let token = key.assertion("app-123", aud).unwrap();
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.alg, Algorithm::RS256);
            assert_eq!(header.kid.as_deref(), Some(key.kid()));
            assert_eq!(header.x5t, None);
            let public = DecodingKey::from_rsa_pem(RSA_PUBLIC.as_bytes()).unwrap();
            let claims = verify(&token, &public, Algorithm::RS256, aud);
            assert_eq!(claims.iss, "app-123");
            assert_eq!(claims.sub, "app-123");
            assert_eq!(claims.aud, aud);
            assert_eq!(claims.exp, claims.iat + 60);
            let now = jsonwebtoken::get_current_timestamp();
            assert!(claims.iat.abs_diff(now) <= 5);
            assert_eq!(claims.jti.len(), 32);
        }
        // The same key in both encodings has one thumbprint.
        assert_eq!(
            AssertionKey::from_pem(RSA_PKCS1.as_bytes()).unwrap().kid,
            AssertionKey::from_pem(RSA_PKCS8.as_bytes()).unwrap().kid
        );
    }

    #[test]
    fn p256_assertion_claims_and_signature() {
        let aud = "https://idp.example.com/token";
        let public = DecodingKey::from_ec_pem(P256_PUBLIC.as_bytes()).unwrap();
        let sec1 = AssertionKey::from_pem(P256_SEC1.as_bytes()).unwrap();
        let pkcs8 = AssertionKey::from_pem(P256_PKCS8.as_bytes()).unwrap();
        assert_eq!(sec1.kid, pkcs8.kid);
        for key in [sec1, pkcs8] {
            assert_eq!(key.algorithm(), Algorithm::ES256);
            let first = key.assertion("app", aud).unwrap();
            let second = key.assertion("app", aud).unwrap();
            let one = verify(&first, &public, Algorithm::ES256, aud);
            let two = verify(&second, &public, Algorithm::ES256, aud);
            assert_eq!((one.iss.as_str(), one.sub.as_str()), ("app", "app"));
            assert_ne!(one.jti, two.jti, "every assertion has a fresh jti");
        }
    }

    #[test]
    fn kid_is_the_rfc7638_thumbprint_of_the_public_key() {
        let key = AssertionKey::from_pem(P256_SEC1.as_bytes()).unwrap();
        let public = DecodingKey::from_ec_pem(P256_PUBLIC.as_bytes()).unwrap();
        let jwk = Jwk::from_decoding_key(&public, Some(Algorithm::ES256)).unwrap();
        assert_eq!(key.kid(), jwk.thumbprint(ThumbprintHash::SHA256).unwrap());
    }

    #[test]
    fn weak_or_unsupported_keys_are_refused() {
        let error = AssertionKey::from_pem(RSA_1024.as_bytes()).unwrap_err();
        assert!(error.contains("1024-bit"), "{error}");
        assert!(AssertionKey::from_pem(P384_PKCS8.as_bytes()).is_err());
        assert!(AssertionKey::from_pem(RSA_PUBLIC.as_bytes()).is_err());
        assert!(AssertionKey::from_pem(b"not a key").is_err());
    }

    #[test]
    fn bad_key_file_errors_name_the_file_and_not_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upstream.pem");
        std::fs::write(
            &path,
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let error = AssertionKey::load(&path).unwrap_err();
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(!error.contains("c2VjcmV0"), "{error}");
        let missing = AssertionKey::load(&dir.path().join("absent.pem")).unwrap_err();
        assert!(missing.contains("absent.pem"), "{missing}");
    }

    fn client(method: UpstreamAuthMethod, secret: Option<SecretSource>) -> UpstreamClient {
        UpstreamClient {
            client_id: "app".to_owned(),
            auth_method: method,
            client_secret: secret,
            private_key_file: None,
            redirect_mode: crate::upstream::RedirectMode::Relay,
        }
    }

    #[test]
    fn a_missing_env_var_is_named_in_the_error() {
        let var = "CIMD_PROXY_TEST_SURELY_UNSET_8f3a1c";
        let error = load_client(
            "web",
            &client(
                UpstreamAuthMethod::ClientSecretBasic,
                Some(SecretSource::Env(var.to_owned())),
            ),
        )
        .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("upstream.clients.web"), "{message}");
        assert!(message.contains(var), "{message}");
        assert_eq!(error.kind(), "credential");
    }

    #[test]
    fn a_secret_from_env_is_read() {
        // No test may set a variable (that is unsafe); PATH is always there.
        let secret = read_secret(&SecretSource::Env("PATH".to_owned())).unwrap();
        assert_eq!(secret.expose(), std::env::var("PATH").unwrap());
        assert_eq!(format!("{secret:?}"), "Secret(..)");
    }

    #[test]
    fn a_secret_file_loses_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("s3cr3t\n", "s3cr3t"),
            ("s3cr3t\r\n", "s3cr3t"),
            ("s3cr3t\n\n", "s3cr3t\n"),
            (" s3cr3t ", " s3cr3t "),
        ];
        for (index, (written, read)) in cases.iter().enumerate() {
            let path = dir.path().join(format!("secret-{index}"));
            std::fs::write(&path, written).unwrap();
            let secret = read_secret(&SecretSource::File(path)).unwrap();
            assert_eq!(secret.expose(), *read);
        }
    }

    #[test]
    fn missing_or_empty_secret_files_are_named_not_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let error = load_client(
            "api",
            &client(
                UpstreamAuthMethod::ClientSecretPost,
                Some(SecretSource::File(missing.clone())),
            ),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("upstream.clients.api"), "{error}");
        assert!(error.contains(&missing.display().to_string()), "{error}");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let error = read_secret(&SecretSource::File(empty)).unwrap_err();
        assert!(error.contains("is empty"), "{error}");
    }

    #[test]
    fn a_missing_private_key_file_names_client_and_file() {
        let mut config = client(UpstreamAuthMethod::PrivateKeyJwt, None);
        config.private_key_file = Some("/nonexistent/cimd/key.pem".into());
        let error = load_client("signer", &config).unwrap_err().to_string();
        assert!(error.contains("upstream.clients.signer"), "{error}");
        assert!(error.contains("/nonexistent/cimd/key.pem"), "{error}");
    }

    #[test]
    fn a_public_client_needs_no_credential() {
        let loaded = load_client("public", &client(UpstreamAuthMethod::None, None)).unwrap();
        assert!(matches!(loaded.credential, Credential::None));
    }

    #[test]
    fn basic_auth_form_encodes_id_and_secret() {
        let value =
            basic_authorization("urn:app:1 2", &Secret("p@ss:w+rd/é=".to_owned()), "web").unwrap();
        assert!(value.is_sensitive());
        let text = value.to_str().unwrap();
        let encoded = text.strip_prefix("Basic ").unwrap();
        let decoded = String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap();
        assert_eq!(decoded, "urn%3Aapp%3A1+2:p%40ss%3Aw%2Brd%2F%C3%A9%3D");
        // Exactly one unencoded ':' separates the two.
        assert_eq!(decoded.matches(':').count(), 1);
    }
}
