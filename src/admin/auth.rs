//! The admin API's token: `[admin] token_env` / `token_file`, read once
//! at start, compared in constant time.

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq as _;

use crate::secret::SecretSource;

/// `[admin]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminConfig {
    /// Where the bearer token for the admin API comes from; without one,
    /// mutations are refused.
    pub token: Option<SecretSource>,
    /// Whether reads (`GET /clients`, the page) need the token too.
    pub protect_reads: bool,
}

/// The shortest token accepted: a guessable token would open the
/// mutations to anyone who can reach the admin listener.
pub const MIN_TOKEN_LEN: usize = 16;

/// Why the admin token could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    /// The environment variable is unset or not UTF-8.
    #[error("environment variable {0} holding the admin token is not set")]
    EnvMissing(String),
    /// The file could not be read.
    #[error("cannot read the admin token from {path}: {source}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The token is too short (its value is never shown).
    #[error("the admin token must be at least {MIN_TOKEN_LEN} characters")]
    TooShort,
}

/// The admin token. Its `Debug` never shows it.
pub struct AdminToken(Vec<u8>);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(***)")
    }
}

impl AdminToken {
    /// Reads the token from where the configuration says; surrounding
    /// whitespace (a file's final newline) is not part of it.
    pub fn read(source: &SecretSource) -> Result<AdminToken, AdminTokenError> {
        let text = match source {
            SecretSource::Env(var) => {
                std::env::var(var).map_err(|_| AdminTokenError::EnvMissing(var.clone()))?
            }
            SecretSource::File(path) => {
                std::fs::read_to_string(path).map_err(|source| AdminTokenError::File {
                    path: path.clone(),
                    source,
                })?
            }
        };
        AdminToken::new(text.trim())
    }

    /// A token from its text.
    pub fn new(text: &str) -> Result<AdminToken, AdminTokenError> {
        if text.chars().count() < MIN_TOKEN_LEN {
            return Err(AdminTokenError::TooShort);
        }
        Ok(AdminToken(text.as_bytes().to_vec()))
    }

    /// Whether `presented` is the token, in time independent of where
    /// they differ (both are hashed first, so the length does not show).
    pub fn matches(&self, presented: &[u8]) -> bool {
        let digest = |bytes: &[u8]| ring::digest::digest(&ring::digest::SHA256, bytes);
        let expected = digest(&self.0);
        let presented = digest(presented);
        bool::from(expected.as_ref().ct_eq(presented.as_ref()))
    }

    /// Whether the request carries `Authorization: Bearer <the token>`.
    pub fn bearer_matches(&self, headers: &HeaderMap) -> bool {
        bearer(headers).is_some_and(|presented| self.matches(presented.as_bytes()))
    }

    /// Whether the request carries HTTP Basic credentials whose password is
    /// the token (any user name): how a browser sends it to the page when
    /// reads are protected. Never accepted for a mutation, which a browser
    /// would replay on a cross-site form post.
    pub fn basic_matches(&self, headers: &HeaderMap) -> bool {
        use base64::Engine as _;
        let Some(encoded) = authorization(headers).and_then(|value| {
            value
                .strip_prefix("Basic ")
                .or_else(|| value.strip_prefix("basic "))
        }) else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Some(colon) = decoded.iter().position(|&b| b == b':') else {
            return false;
        };
        self.matches(&decoded[colon + 1..])
    }
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()
}

/// The bearer token a request presents.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = authorization(headers)?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_authorization(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn only_the_exact_token_matches() {
        let token = AdminToken::new("correct-horse-battery-staple").unwrap();
        assert!(token.matches(b"correct-horse-battery-staple"));
        assert!(!token.matches(b"correct-horse-battery-stapl"));
        assert!(!token.matches(b"correct-horse-battery-staplee"));
        assert!(!token.matches(b""));
        assert!(token.bearer_matches(&with_authorization("Bearer correct-horse-battery-staple")));
        assert!(token.bearer_matches(&with_authorization("bearer correct-horse-battery-staple")));
        assert!(!token.bearer_matches(&with_authorization("Bearer wrong-token-wrong-token")));
        assert!(!token.bearer_matches(&HeaderMap::new()));
        // Basic is for reads by a browser; it is not a bearer token.
        let basic = "Basic b3BlcmF0b3I6Y29ycmVjdC1ob3JzZS1iYXR0ZXJ5LXN0YXBsZQ==";
        assert!(token.basic_matches(&with_authorization(basic)));
        assert!(!token.bearer_matches(&with_authorization(basic)));
        assert!(!token.basic_matches(&with_authorization("Basic !!!")));
    }

    #[test]
    fn a_short_token_is_refused_and_never_shown() {
        let error = AdminToken::new("short").unwrap_err();
        assert!(!error.to_string().contains("short"), "{error}");
        let token = AdminToken::new("0123456789abcdef").unwrap();
        assert_eq!(format!("{token:?}"), "AdminToken(***)");
    }

    #[test]
    fn a_token_file_loses_its_final_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "0123456789abcdef-token\n").unwrap();
        let token = AdminToken::read(&SecretSource::File(path)).unwrap();
        assert!(token.matches(b"0123456789abcdef-token"));
    }
}
