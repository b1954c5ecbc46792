//! Sealing: everything the proxy must remember between two requests travels
//! inside values it encrypts and authenticates itself, so it keeps no
//! database and any replica can open what another sealed.
//!
//! # Sealed form
//!
//! ```text
//! v2.<base64url, unpadded: purpose (1 byte) | key id (4) | nonce (24) | ciphertext + tag (16)>
//! ```
//!
//! Every character is URL-safe (`A–Z a–z 0–9 - _ .`), so a sealed value can
//! go in a query string or a form body as it is. The purpose and key id are in
//! the clear so that `open` can refuse a value meant for another purpose, and
//! pick the key, without trial decryption; both are also bound as associated
//! data, so changing them is caught by the AEAD like any other alteration.
//! The plaintext is the expiry (unix seconds, 8 bytes big-endian) followed
//! by the payload in postcard, a compact binary serde format: field names and
//! JSON's quoting would make the sealed `state` of every sign-in, which rides
//! in the provider URL's query, about half as long again. Postcard writes the
//! fields in declaration order without names, so a payload type is read back
//! only by the same type: values sealed by another version of a payload (or
//! by the JSON-based `v1.` format before it) do not open, and are refused as
//! malformed like any unreadable value. A sign-in under way while replicas
//! are upgraded starts again; a sealed refresh token from before the upgrade
//! ends its grant (the client signs in again).
//!
//! # Nonces
//!
//! From `rand`'s thread-local generator (ChaCha12, seeded from the operating
//! system and reseeded from it every 64 KiB of output) rather than a system
//! call per value: every sign-in seals a state.
//!
//! # Why XChaCha20-Poly1305 (the `chacha20poly1305` crate) and not `ring::aead`
//!
//! Nonces are random because replicas share keys and keep no counter. With
//! ring's 96-bit-nonce AEADs the birthday bound caps a key at about 2³²
//! messages for a 2⁻³² collision risk, and a collision under ChaCha20-Poly1305
//! or AES-GCM gives away the authentication key: a busy proxy (a few sealed
//! values per sign-in, refresh tokens living 30 days) can reach that within
//! one key's life. XChaCha20-Poly1305's 192-bit nonces make random nonces safe
//! at any volume without a home-made key-derivation step. The crate is
//! RustCrypto's, in the same family as the `p256`/`rsa`/`sha2` crates that
//! `jsonwebtoken`'s `rust_crypto` backend already brings in, and it zeroizes
//! its key on drop. `ring` supplies keys' randomness and SHA-256.
//!
//! # Keys
//!
//! A key is 32 random bytes written as 43 characters of unpadded base64url
//! ([`Sealer::generate_key`]). A key source holds one or more keys separated
//! by commas, whitespace or newlines, newest first: the first seals, every key
//! opens. To rotate, prepend a new key everywhere, wait until every replica
//! runs with it, and drop the oldest key once the longest-lived sealed value
//! (`seal.refresh_token_ttl_s`) made with it has expired.

use std::fmt;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::Rng as _;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::secret::SecretSource;

#[cfg(test)]
mod tests;

/// `[seal]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SealConfig {
    /// Where the sealing keys come from, newest first.
    pub keys: Option<SecretSource>,
    /// How long a sign-in may take at the provider (the sealed `state`'s lifetime).
    pub state_ttl: Duration,
    /// How long an issued authorization code stays valid.
    pub code_ttl: Duration,
    /// How long a sealed refresh token stays valid (the provider's own
    /// lifetime applies inside it too).
    pub refresh_token_ttl: Duration,
}

impl Default for SealConfig {
    fn default() -> Self {
        SealConfig {
            keys: None,
            state_ttl: Duration::from_secs(600),
            code_ttl: Duration::from_secs(60),
            refresh_token_ttl: Duration::from_secs(30 * 86_400),
        }
    }
}

/// The longest sealed value `open` looks at; anything longer is refused
/// before it is decoded, and `try_seal` refuses to produce one.
pub const MAX_SEALED_LEN: usize = 8 * 1024;

/// The text form of a key: 32 bytes as unpadded base64url.
const KEY_TEXT_LEN: usize = 43;
/// The version prefix; a future format gets a new one.
const PREFIX: &str = "v2.";
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// purpose tag + key id + nonce
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;
/// Separates this use of SHA-256 and of the AEAD's associated data from any other.
const KEY_ID_DOMAIN: &[u8] = b"cimd-proxy seal key id\0";
const AAD_DOMAIN: &[u8] = b"cimd-proxy seal v2\0";
/// The expiry at the start of the plaintext.
const EXPIRY_LEN: usize = 8;
/// A key file is a few lines; a bigger one is a wrong path (e.g. a device).
const MAX_KEY_SOURCE_BYTES: u64 = 64 * 1024;

/// What a sealed value is for. It is bound into the seal, so a value sealed
/// for one purpose never opens as another (a `state` as a `code`, a `code` as
/// a refresh token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "snake_case")]
pub enum Purpose {
    /// The `state` sent to the provider, carrying the client's request.
    State,
    /// The authorization code handed to the client.
    Code,
    /// A provider refresh token, sealed to the CIMD client.
    RefreshToken,
    /// A consent decision.
    Consent,
    /// Gate mode: one authorization request the user confirmed, let
    /// through once.
    GateAdmission,
    /// A dynamic registration (RFC 7591): the client's validated metadata,
    /// which is its client_id.
    Registration,
}

impl Purpose {
    /// Every purpose.
    pub const ALL: [Purpose; 6] = [
        Purpose::State,
        Purpose::Code,
        Purpose::RefreshToken,
        Purpose::Consent,
        Purpose::GateAdmission,
        Purpose::Registration,
    ];

    /// The purpose's stable name, as bound into the seal.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The byte that names the purpose in the clear header.
    const fn tag(self) -> u8 {
        match self {
            Purpose::State => b's',
            Purpose::Code => b'c',
            Purpose::RefreshToken => b'r',
            Purpose::Consent => b'k',
            Purpose::GateAdmission => b'g',
            Purpose::Registration => b'd',
        }
    }

    fn from_tag(tag: u8) -> Option<Purpose> {
        Purpose::ALL.into_iter().find(|p| p.tag() == tag)
    }
}

/// Why a sealed value was refused (or, for [`SealError::TooLarge`] and
/// [`SealError::Failed`], could not be made). Messages never echo the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum SealError {
    /// Not a sealed value of this format: empty, wrong prefix, not base64url,
    /// too short, or (authenticated but) not the expected payload shape.
    #[error("not a sealed value")]
    Malformed,
    /// Sealed under a key this proxy no longer (or never) had.
    #[error("sealed under an unknown key")]
    UnknownKey,
    /// Authentication failed: altered or truncated.
    #[error("sealed value failed authentication")]
    Tampered,
    /// Sealed for another purpose.
    #[error("sealed for another purpose")]
    WrongPurpose,
    /// Authentic, but past its expiry.
    #[error("sealed value has expired")]
    Expired,
    /// Longer than [`MAX_SEALED_LEN`] (refused unread by `open`; refused to
    /// produce by `try_seal`).
    #[error("sealed value is too large")]
    TooLarge,
    /// Sealing only: the payload could not be serialised.
    #[error("sealing failed")]
    #[strum(serialize = "seal_failed")]
    Failed,
}

impl SealError {
    /// A stable name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Why the sealing keys could not be set up. Names the variable or file and
/// the key's position, never a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealSetupError {
    /// The variable is unset or not UTF-8, or the file cannot be read.
    #[error("{origin} cannot be read: {reason}")]
    Unreadable {
        /// `environment variable NAME` or `file PATH`.
        origin: String,
        /// Why, without any of the content.
        reason: String,
    },
    /// A key is not 43 characters of unpadded base64url encoding 32 bytes.
    #[error(
        "{origin}: key {position} is not a sealing key ({problem}); a key is 32 random bytes as 43 characters of unpadded base64url, e.g. from `cimd-proxy keygen`"
    )]
    BadKey {
        /// `environment variable NAME` or `file PATH`.
        origin: String,
        /// 1-based position in the list (newest first).
        position: usize,
        /// What is wrong, without the value.
        problem: String,
    },
    /// The source holds no key at all.
    #[error("{origin} holds no sealing key")]
    NoKeys {
        /// `environment variable NAME` or `file PATH`.
        origin: String,
    },
    /// A key appears twice (or two keys share a key id, which is as unlikely
    /// as a collision of 32 random bits).
    #[error("{origin}: key {position} repeats key {first}")]
    DuplicateKey {
        /// `environment variable NAME` or `file PATH`.
        origin: String,
        /// 1-based position of the repeat.
        position: usize,
        /// 1-based position of the first occurrence.
        first: usize,
    },
    /// The operating system's random source failed.
    #[error("the operating system's random source failed")]
    Random,
}

/// Seals and opens values with a list of keys, newest first.
///
/// Cheap to clone (one `Arc`), `Send + Sync`; share one per process.
#[derive(Clone)]
pub struct Sealer {
    inner: Arc<Inner>,
}

struct Inner {
    /// Newest first; `keys[0]` seals.
    keys: Vec<SealKey>,
}

struct SealKey {
    id: [u8; KEY_ID_LEN],
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("keys", &self.inner.keys.len())
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer over raw keys, newest first (at least one).
    pub fn new(keys: Vec<[u8; 32]>) -> Result<Sealer, SealSetupError> {
        Self::build(keys, "the sealing key list")
    }

    fn build(keys: Vec<[u8; 32]>, origin: &str) -> Result<Sealer, SealSetupError> {
        if keys.is_empty() {
            return Err(SealSetupError::NoKeys {
                origin: origin.to_owned(),
            });
        }
        let mut built: Vec<SealKey> = Vec::with_capacity(keys.len());
        for (index, key) in keys.iter().enumerate() {
            let id = key_id(key);
            if let Some(first) = built.iter().position(|k| k.id == id) {
                return Err(SealSetupError::DuplicateKey {
                    origin: origin.to_owned(),
                    position: index + 1,
                    first: first + 1,
                });
            }
            built.push(SealKey {
                id,
                cipher: XChaCha20Poly1305::new(Key::from_slice(key)),
            });
        }
        Ok(Sealer {
            inner: Arc::new(Inner { keys: built }),
        })
    }

    /// A sealer over the keys in an environment variable or a file.
    pub fn from_source(source: &SecretSource) -> Result<Sealer, SealSetupError> {
        let (origin, text) = read_source(source)?;
        let keys = parse_keys(&text, &origin)?;
        Self::build(keys, &origin)
    }

    /// A fresh key in the text form keys are written in.
    ///
    /// # Panics
    ///
    /// If the operating system's random source fails, as nothing safe can be
    /// done without it; [`Sealer::try_generate_key`] returns the failure.
    pub fn generate_key() -> String {
        match Self::try_generate_key() {
            Ok(key) => key,
            Err(error) => panic!("{error}"),
        }
    }

    /// A fresh key in the text form keys are written in, or the random
    /// source's failure.
    pub fn try_generate_key() -> Result<String, SealSetupError> {
        let mut key = [0u8; 32];
        SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| SealSetupError::Random)?;
        Ok(URL_SAFE_NO_PAD.encode(key))
    }

    /// How many keys this sealer opens with.
    pub fn key_count(&self) -> usize {
        self.inner.keys.len()
    }

    /// Seals `payload` for `purpose`, valid for `ttl` (whole seconds).
    ///
    /// Infallible by contract: if sealing fails (a payload that does not
    /// serialise, a result over [`MAX_SEALED_LEN`]) the failure is logged
    /// and an empty string is returned, which every `open` refuses as
    /// malformed. Where the payload holds anything an
    /// outsider sized (a redirect_uri, a state), prefer [`Sealer::try_seal`].
    pub fn seal<T: Serialize>(&self, purpose: Purpose, ttl: Duration, payload: &T) -> String {
        self.seal_at(purpose, ttl, payload, unix_now())
    }

    /// [`Sealer::seal`] with the clock given (unix seconds).
    pub fn seal_at<T: Serialize>(
        &self,
        purpose: Purpose,
        ttl: Duration,
        payload: &T,
        now: u64,
    ) -> String {
        match self.try_seal_at(purpose, ttl, payload, now) {
            Ok(sealed) => sealed,
            Err(error) => {
                tracing::error!(
                    purpose = purpose.as_str(),
                    error = error.as_str(),
                    "sealing failed"
                );
                String::new()
            }
        }
    }

    /// Seals `payload` for `purpose`, valid for `ttl`, or says why it cannot
    /// ([`SealError::TooLarge`], [`SealError::Failed`]).
    pub fn try_seal<T: Serialize>(
        &self,
        purpose: Purpose,
        ttl: Duration,
        payload: &T,
    ) -> Result<String, SealError> {
        self.try_seal_at(purpose, ttl, payload, unix_now())
    }

    /// [`Sealer::try_seal`] with the clock given (unix seconds).
    pub fn try_seal_at<T: Serialize>(
        &self,
        purpose: Purpose,
        ttl: Duration,
        payload: &T,
        now: u64,
    ) -> Result<String, SealError> {
        let expiry = now.saturating_add(ttl.as_secs()).to_be_bytes();
        let plaintext =
            postcard::to_extend(payload, expiry.to_vec()).map_err(|_| SealError::Failed)?;
        let blob_len = HEADER_LEN + plaintext.len() + TAG_LEN;
        if PREFIX.len() + base64_len(blob_len) > MAX_SEALED_LEN {
            return Err(SealError::TooLarge);
        }

        let key = &self.inner.keys[0];
        let mut header = [0u8; HEADER_LEN];
        header[0] = purpose.tag();
        header[1..1 + KEY_ID_LEN].copy_from_slice(&key.id);
        fill_random(&mut header[1 + KEY_ID_LEN..]);
        let aad = associated_data(purpose, &header);
        let ciphertext = key
            .cipher
            .encrypt(
                XNonce::from_slice(&header[1 + KEY_ID_LEN..]),
                Payload {
                    msg: &plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Failed)?;

        let mut blob = Vec::with_capacity(blob_len);
        blob.extend_from_slice(&header);
        blob.extend_from_slice(&ciphertext);
        let mut sealed = String::with_capacity(PREFIX.len() + base64_len(blob.len()));
        sealed.push_str(PREFIX);
        URL_SAFE_NO_PAD.encode_string(&blob, &mut sealed);
        Ok(sealed)
    }

    /// Opens a value sealed (by this or any replica sharing a key) for
    /// `purpose`, checking its expiry against the clock.
    pub fn open<T: DeserializeOwned>(
        &self,
        purpose: Purpose,
        sealed: &str,
    ) -> Result<T, SealError> {
        self.open_at(purpose, sealed, unix_now())
            .inspect_err(|error| {
                crate::metrics::METRICS
                    .seal_failures
                    .with_label_values(&[purpose.as_str(), error.as_str()])
                    .inc();
            })
    }

    /// [`Sealer::open`] with the clock given (unix seconds). A value is valid
    /// while `now < exp`.
    pub fn open_at<T: DeserializeOwned>(
        &self,
        purpose: Purpose,
        sealed: &str,
        now: u64,
    ) -> Result<T, SealError> {
        // Checked first: nothing longer is even decoded.
        if sealed.len() > MAX_SEALED_LEN {
            return Err(SealError::TooLarge);
        }
        let body = sealed.strip_prefix(PREFIX).ok_or(SealError::Malformed)?;
        let blob = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| SealError::Malformed)?;
        if blob.len() < HEADER_LEN + TAG_LEN {
            return Err(SealError::Malformed);
        }
        let (header, ciphertext) = blob.split_at(HEADER_LEN);

        // The clear purpose is unauthenticated until decryption succeeds, so
        // a mismatch here only ever turns into a refusal.
        let sealed_for = Purpose::from_tag(header[0]).ok_or(SealError::Malformed)?;
        if sealed_for != purpose {
            return Err(SealError::WrongPurpose);
        }
        let id = &header[1..1 + KEY_ID_LEN];
        let key = self
            .inner
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or(SealError::UnknownKey)?;
        let aad = associated_data(purpose, header);
        let plaintext = key
            .cipher
            .decrypt(
                XNonce::from_slice(&header[1 + KEY_ID_LEN..]),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Tampered)?;

        // Authentic, so the purpose is the one bound as associated data.
        let (expiry, payload) = plaintext
            .split_first_chunk::<EXPIRY_LEN>()
            .ok_or(SealError::Malformed)?;
        if now >= u64::from_be_bytes(*expiry) {
            return Err(SealError::Expired);
        }
        // Authentic but of another shape (a payload type changed between
        // versions) is refused like any unreadable value; so is a payload
        // followed by anything.
        match postcard::take_from_bytes(payload) {
            Ok((value, [])) => Ok(value),
            _ => Err(SealError::Malformed),
        }
    }
}

/// Reads a key source, naming it for error messages.
fn read_source(source: &SecretSource) -> Result<(String, String), SealSetupError> {
    match source {
        SecretSource::Env(var) => {
            let origin = format!("environment variable {var}");
            match std::env::var(var) {
                Ok(text) => Ok((origin, text)),
                Err(std::env::VarError::NotPresent) => Err(SealSetupError::Unreadable {
                    origin,
                    reason: "not set".to_owned(),
                }),
                Err(std::env::VarError::NotUnicode(_)) => Err(SealSetupError::Unreadable {
                    origin,
                    reason: "not valid UTF-8".to_owned(),
                }),
            }
        }
        SecretSource::File(path) => {
            let origin = format!("file {}", path.display());
            let unreadable = |reason: String| SealSetupError::Unreadable {
                origin: origin.clone(),
                reason,
            };
            let file = std::fs::File::open(path).map_err(|e| unreadable(e.to_string()))?;
            let mut bytes = Vec::new();
            file.take(MAX_KEY_SOURCE_BYTES + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| unreadable(e.to_string()))?;
            if bytes.len() as u64 > MAX_KEY_SOURCE_BYTES {
                return Err(unreadable(format!(
                    "larger than {MAX_KEY_SOURCE_BYTES} bytes, not a key file"
                )));
            }
            let text =
                String::from_utf8(bytes).map_err(|_| unreadable("not valid UTF-8".to_owned()))?;
            Ok((origin, text))
        }
    }
}

/// Splits a key list on commas and whitespace and decodes each key.
fn parse_keys(text: &str, origin: &str) -> Result<Vec<[u8; 32]>, SealSetupError> {
    let mut keys = Vec::new();
    for (index, token) in text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .enumerate()
    {
        let bad = |problem: String| SealSetupError::BadKey {
            origin: origin.to_owned(),
            position: index + 1,
            problem,
        };
        let chars = token.chars().count();
        if chars != KEY_TEXT_LEN {
            let hint = if token.ends_with('=') {
                "; padding '=' is not allowed"
            } else {
                ""
            };
            return Err(bad(format!(
                "{chars} characters, expected {KEY_TEXT_LEN}{hint}"
            )));
        }
        // 43 characters of canonical unpadded base64url are exactly 32 bytes;
        // the engine refuses `+`/`/` and non-zero trailing bits.
        let decoded = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| bad("not unpadded base64url".to_owned()))?;
        let key: [u8; 32] = decoded
            .try_into()
            .map_err(|_| bad("does not decode to 32 bytes".to_owned()))?;
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(SealSetupError::NoKeys {
            origin: origin.to_owned(),
        });
    }
    Ok(keys)
}

/// A short, non-secret name for a key, so `open` finds it without trial
/// decryption. A hash, so it says nothing about the key.
fn key_id(key: &[u8; 32]) -> [u8; KEY_ID_LEN] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(KEY_ID_DOMAIN);
    ctx.update(key);
    let digest = ctx.finish();
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&digest.as_ref()[..KEY_ID_LEN]);
    id
}

/// Binds the format version, the purpose and the clear header.
fn associated_data(purpose: Purpose, header: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_DOMAIN.len() + 16 + header.len());
    aad.extend_from_slice(AAD_DOMAIN);
    aad.extend_from_slice(purpose.as_str().as_bytes());
    aad.push(0);
    aad.extend_from_slice(header);
    aad
}

/// Fills `bytes` from a fast generator that is safe for secrets and unique
/// ids: the thread's ChaCha12, seeded from the operating system, instead of
/// a system call per value (`ring`'s `SystemRandom`): every sign-in draws a
/// state id and a nonce.
///
/// # Panics
///
/// When the operating system's random source fails while seeding or
/// reseeding the generator, as nothing safe can be done without it; on
/// Linux `getrandom(2)` does not fail once the kernel's pool is ready.
pub fn fill_random(bytes: &mut [u8]) {
    rand::rng().fill_bytes(bytes);
}

/// Length of `n` bytes as unpadded base64.
const fn base64_len(n: usize) -> usize {
    (n * 4).div_ceil(3)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
