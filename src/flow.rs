//! The values a sign-in carries from one request to the next.
//!
//! Nothing is stored between `/authorize`, `/callback`, `/consent` and
//! `/token`: what must survive travels sealed (see [`crate::seal`]). Every
//! sealed payload is defined here, beside the [`Purpose`] it is sealed under
//! and the lifetime it gets, so a handler that opens what another made
//! imports this module, not the other handler. [`RedirectUri`] is the
//! redirect_uri after it was matched against the client's document: made
//! once, by [`RedirectUri::registered`], and carried from there.

use std::sync::OnceLock;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::metadata::ClientMetadata;
use crate::seal::SealConfig;
use crate::seal::{Purpose, SealError, Sealer};
use crate::store::FamilyId;

/// A redirect_uri the client's document lists (exactly, or under the
/// loopback port rule of RFC 8252 §7.3). Only [`RedirectUri::registered`]
/// makes one from a request; a sealed payload carries it as the plain
/// string it was, since only this deployment can have sealed it.
///
/// The URL is parsed at most once, and only when something needs its parts
/// (an error redirect, the consent page): the cached sign-in's hot path
/// never does.
#[derive(Debug, Clone)]
pub struct RedirectUri {
    raw: String,
    parsed: OnceLock<Option<Url>>,
}

impl RedirectUri {
    /// The requested redirect_uri when `metadata` lists it: the exact
    /// string, or a loopback registration matching it on any port.
    pub fn registered(metadata: &ClientMetadata, requested: &str) -> Option<RedirectUri> {
        metadata
            .match_redirect_uri(requested)
            .map(|_| RedirectUri::trusted(requested.to_owned()))
    }

    /// The only redirect URI of a document that lists one, which a request
    /// naming none gets (RFC 6749 §3.1.2.3).
    pub fn only(metadata: &ClientMetadata) -> Option<RedirectUri> {
        match metadata.redirect_uris.as_slice() {
            [only] => Some(RedirectUri::trusted(only.clone())),
            _ => None,
        }
    }

    /// A string already validated, read back from a sealed payload.
    fn trusted(raw: String) -> RedirectUri {
        RedirectUri {
            raw,
            parsed: OnceLock::new(),
        }
    }

    /// The redirect_uri exactly as the client sent it: what is compared at
    /// `/token` and sent upstream in direct mode.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The parsed URL; `None` only for a registration no URL parser reads
    /// (a document rule should have refused it).
    pub fn url(&self) -> Option<&Url> {
        self.parsed
            .get_or_init(|| Url::parse(&self.raw).ok())
            .as_ref()
    }

    /// Whether the redirect lands on this machine (loopback), where any
    /// local program could be listening.
    pub fn is_loopback(&self) -> bool {
        crate::metadata::is_loopback_redirect(&self.raw)
    }
}

impl PartialEq for RedirectUri {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Eq for RedirectUri {}

impl Serialize for RedirectUri {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for RedirectUri {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(RedirectUri::trusted)
    }
}

/// A payload the proxy seals, bound to one [`Purpose`] (so one kind can
/// never be opened as another) and one lifetime.
pub trait Sealed: Serialize + DeserializeOwned {
    /// What it is sealed as: the associated data of the seal.
    const PURPOSE: Purpose;

    /// How long it stays valid under this configuration.
    fn lifetime(config: &SealConfig) -> Duration;
}

/// The sealer with the configured lifetimes: seals and opens [`Sealed`]
/// payloads, each under its own purpose and lifetime.
#[derive(Clone, Copy)]
pub struct Seals<'a> {
    sealer: &'a Sealer,
    config: &'a SealConfig,
}

impl<'a> Seals<'a> {
    /// Seals with `sealer` under the lifetimes of `config`.
    pub fn new(sealer: &'a Sealer, config: &'a SealConfig) -> Self {
        Seals { sealer, config }
    }

    /// Seals `payload` for its purpose and lifetime.
    ///
    /// # Errors
    ///
    /// [`SealError`] when the payload is too large to seal (its sizes are
    /// partly the client's choice).
    pub fn seal<T: Sealed>(&self, payload: &T) -> Result<String, SealError> {
        self.sealer
            .try_seal(T::PURPOSE, T::lifetime(self.config), payload)
    }

    /// Seals `payload` for its purpose with a lifetime shorter than its
    /// own: what is left of a refresh family's, so rotation never extends
    /// a grant.
    ///
    /// # Errors
    ///
    /// As [`Seals::seal`].
    pub fn seal_for<T: Sealed>(&self, payload: &T, ttl: Duration) -> Result<String, SealError> {
        self.sealer
            .try_seal(T::PURPOSE, ttl.min(T::lifetime(self.config)), payload)
    }

    /// Opens a token sealed as `T`.
    ///
    /// # Errors
    ///
    /// [`SealError`] when the token is malformed, forged, sealed for another
    /// purpose or expired.
    pub fn open<T: Sealed>(&self, token: &str) -> Result<T, SealError> {
        self.sealer.open(T::PURPOSE, token)
    }
}

/// What travels through the provider inside the sealed `state` (relay mode).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SealedState {
    /// 128 random bits (base64url): the state is spent under this id at
    /// `/callback`, so a replayed callback cannot mint a second code.
    pub id: String,
    /// The CIMD client_id.
    pub client_id: String,
    /// The client's redirect_uri, validated against its document.
    pub redirect_uri: RedirectUri,
    /// Whether the authorization request named the redirect_uri (rather
    /// than getting the document's only one): then `/token` requires it
    /// (RFC 6749 §4.1.3).
    pub redirect_uri_asked: bool,
    /// The client's own `state`, returned to it untouched.
    pub state: Option<String>,
    /// The client's `nonce`, checked in the provider's id_token and put in ours.
    pub nonce: Option<String>,
    /// The scopes sent upstream.
    pub scope: String,
    /// The upstream client (configuration name) the client was mapped onto.
    pub upstream_client: String,
    /// The scopes granted to the client (its request within the
    /// ceiling), before the translation for the provider: what a refresh
    /// may narrow (RFC 6749 §6).
    pub granted_scope: String,
    /// The RFC 8707 resource granted (normalised), if the client named one:
    /// a token request naming another is refused.
    pub resource: Option<String>,
    /// The client's document when the sign-in began, handed on to the code.
    pub metadata: Option<MetadataFingerprint>,
}

impl Sealed for SealedState {
    const PURPOSE: Purpose = Purpose::State;

    fn lifetime(config: &SealConfig) -> Duration {
        config.state_ttl
    }
}

/// The code the client receives at its redirect_uri: the provider's code,
/// bound to the client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SealedCode {
    /// The provider's authorization code.
    pub upstream_code: String,
    /// The CIMD client_id the code was issued to.
    pub client_id: String,
    /// The redirect_uri the code was delivered to.
    pub redirect_uri: RedirectUri,
    /// Whether the authorization request named it: then the token request
    /// must name it too.
    pub redirect_uri_asked: bool,
    /// The client's nonce, expected in the provider's id_token.
    pub nonce: Option<String>,
    /// The scopes requested upstream.
    pub scope: String,
    /// The upstream client (configuration name).
    pub upstream_client: String,
    /// The scopes granted to the client (its request within the
    /// ceiling), before the translation for the provider: what a refresh
    /// may narrow (RFC 6749 §6).
    pub granted_scope: String,
    /// The RFC 8707 resource granted (normalised), if the client named one:
    /// a token request naming another is refused.
    pub resource: Option<String>,
    /// What the client's document said when the user signed in; `/token`
    /// compares it with the live document (`None`: not bound; the proxy
    /// always binds what it seals).
    pub metadata: Option<MetadataFingerprint>,
}

impl Sealed for SealedCode {
    const PURPOSE: Purpose = Purpose::Code;

    fn lifetime(config: &SealConfig) -> Duration {
        config.code_ttl
    }
}

/// What the client's refresh token holds: the provider's, bound to the client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SealedRefresh {
    /// The provider's refresh token.
    pub upstream_refresh_token: String,
    /// The CIMD client_id it was issued to.
    pub client_id: String,
    /// The scopes of the grant.
    pub scope: String,
    /// The upstream client (configuration name) the grant was made as.
    pub upstream_client: String,
    /// The refresh family (see [`crate::store`]): every rotation of this
    /// grant carries the same one.
    pub family: FamilyId,
    /// This token's generation in its family: 0 from the code exchange, one
    /// more at every refresh. Presenting an older one revokes the family.
    pub generation: u64,
    /// When the family ends (Unix seconds): fixed at the code exchange, so
    /// rotation never extends a grant.
    pub family_expires_at: u64,
    /// The scopes granted to the client (its request within the
    /// ceiling), before the translation for the provider: what a refresh
    /// may narrow (RFC 6749 §6).
    pub granted_scope: String,
    /// The RFC 8707 resource granted (normalised), if the client named one:
    /// a token request naming another is refused.
    pub resource: Option<String>,
    /// The client's document the grant was last checked against (see
    /// [`MetadataFingerprint`]); `None`: not bound (the proxy always binds
    /// what it seals; the next refresh would bind it to the live document).
    pub metadata: Option<MetadataFingerprint>,
}

impl Sealed for SealedRefresh {
    const PURPOSE: Purpose = Purpose::RefreshToken;

    fn lifetime(config: &SealConfig) -> Duration {
        config.refresh_token_ttl
    }
}

/// A short hash of what the user agreed to trust when a grant was made:
/// where the client receives codes (`redirect_uris`), how it authenticates
/// (`token_endpoint_auth_method`) and with which keys (`jwks` or
/// `jwks_uri`). Codes and refresh tokens carry it, so a grant made for one
/// version of a document does not silently pass to another: a document
/// that now sends codes elsewhere or trusts another key is a different
/// client for what the user consented to (`policy.on_metadata_change`).
///
/// SHA-256 over a length-prefixed encoding of those members, truncated to
/// 128 bits (a collision would need a second document chosen to match one
/// the attacker does not control, which 128 bits rules out), shown as
/// base64url. The redirect URIs are sorted and deduplicated: their order
/// in the document means nothing. Other members (name, logo, scope) can
/// change without touching the grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MetadataFingerprint([u8; 16]);

impl MetadataFingerprint {
    /// The fingerprint of `metadata`.
    pub fn of(metadata: &ClientMetadata) -> Self {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        let mut field = |tag: &[u8], value: &[u8]| {
            // Length-prefixed, so no two different inputs share an encoding.
            context.update(&(tag.len() as u64).to_be_bytes());
            context.update(tag);
            context.update(&(value.len() as u64).to_be_bytes());
            context.update(value);
        };
        field(b"version", b"1");
        let mut redirect_uris: Vec<&str> =
            metadata.redirect_uris.iter().map(String::as_str).collect();
        redirect_uris.sort_unstable();
        redirect_uris.dedup();
        for uri in redirect_uris {
            field(b"redirect_uri", uri.as_bytes());
        }
        field(
            b"token_endpoint_auth_method",
            metadata.token_endpoint_auth_method.as_str().as_bytes(),
        );
        if let Some(jwks_uri) = &metadata.jwks_uri {
            field(b"jwks_uri", jwks_uri.as_bytes());
        }
        if let Some(jwks) = &metadata.jwks {
            // serde_json's map is ordered by key (no `preserve_order`), so
            // this text is the same for every spelling of the same keys.
            field(b"jwks", jwks.to_string().as_bytes());
        }
        let digest = context.finish();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest.as_ref()[..16]);
        MetadataFingerprint(bytes)
    }
}

impl From<MetadataFingerprint> for String {
    fn from(fingerprint: MetadataFingerprint) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(fingerprint.0)
    }
}

impl TryFrom<String> for MetadataFingerprint {
    type Error = &'static str;
    fn try_from(text: String) -> Result<Self, &'static str> {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .ok()
            .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
            .map(MetadataFingerprint)
            .ok_or("a metadata fingerprint is 16 bytes in base64url")
    }
}

/// 128 random bits, base64url: the id of a sealed value spent once.
pub fn random_id() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 16];
    crate::seal::fill_random(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// How long a consent page's decision stays valid.
pub const CONSENT_TTL: Duration = Duration::from_secs(300);

/// What the consent form carries, sealed: the whole validated decision, so
/// nothing in the form can be altered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SealedConsent {
    /// A random id, so the token is single-use.
    pub id: String,
    /// SHA-256 of the browser cookie's value (base64url).
    pub browser: String,
    /// The CIMD client_id.
    pub client_id: String,
    /// The validated redirect_uri (where Cancel goes).
    pub redirect_uri: RedirectUri,
    /// The client's own `state`.
    pub state: Option<String>,
    /// Where Continue goes: the provider's authorization URL, complete.
    pub location: String,
}

impl Sealed for SealedConsent {
    const PURPOSE: Purpose = Purpose::Consent;

    /// Fixed: the page is answered within minutes or not at all.
    fn lifetime(_config: &SealConfig) -> Duration {
        CONSENT_TTL
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_id::ClientIdUrl;

    fn metadata(redirect_uris: &[&str]) -> ClientMetadata {
        let id = "https://app.example/c.json";
        let body = serde_json::json!({ "client_id": id, "redirect_uris": redirect_uris });
        crate::metadata::validate(
            &ClientIdUrl::parse(id).unwrap(),
            body.to_string().as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn a_redirect_uri_is_made_only_from_the_documents_match() {
        let metadata = metadata(&["https://app.example/cb", "http://127.0.0.1/cb"]);
        let exact = RedirectUri::registered(&metadata, "https://app.example/cb").unwrap();
        assert_eq!(exact.as_str(), "https://app.example/cb");
        // The loopback port rule: the requested port is kept.
        let loopback = RedirectUri::registered(&metadata, "http://127.0.0.1:5173/cb").unwrap();
        assert_eq!(loopback.as_str(), "http://127.0.0.1:5173/cb");
        assert!(loopback.is_loopback());
        assert_eq!(loopback.url().and_then(Url::port), Some(5173));
        assert!(RedirectUri::registered(&metadata, "https://app.example/cb2").is_none());
        assert!(RedirectUri::registered(&metadata, "https://evil.example/cb").is_none());
        // Several registered: none is chosen for a request naming none.
        assert!(RedirectUri::only(&metadata).is_none());
        let single = self::metadata(&["https://app.example/cb"]);
        assert_eq!(
            RedirectUri::only(&single).map(|uri| uri.as_str().to_owned()),
            Some("https://app.example/cb".to_owned())
        );
    }

    #[test]
    fn sealed_payloads_open_only_as_their_own_kind() {
        let sealer = Sealer::new(vec![[3u8; 32]]).unwrap();
        let config = SealConfig::default();
        let seals = Seals::new(&sealer, &config);
        let state = SealedState {
            id: random_id(),
            client_id: "https://app.example/c.json".into(),
            redirect_uri: RedirectUri::trusted("https://app.example/cb".into()),
            redirect_uri_asked: true,
            state: Some("s".into()),
            nonce: None,
            scope: "openid".into(),
            upstream_client: "main".into(),
            granted_scope: "openid".into(),
            resource: None,
            metadata: None,
        };
        let sealed = seals.seal(&state).unwrap();
        let opened: SealedState = seals.open(&sealed).unwrap();
        assert_eq!(opened.redirect_uri, state.redirect_uri);
        // The same bytes under another purpose do not open.
        assert!(seals.open::<SealedCode>(&sealed).is_err());
        assert!(seals.open::<SealedConsent>(&sealed).is_err());
        assert!(seals.open::<SealedRefresh>(&sealed).is_err());
    }

    fn document(extra: serde_json::Value) -> ClientMetadata {
        let id = "https://app.example/c.json";
        let mut body = serde_json::json!({
            "client_id": id,
            "redirect_uris": ["https://app.example/cb", "https://app.example/cb2"],
        });
        if let (Some(body), serde_json::Value::Object(extra)) = (body.as_object_mut(), extra) {
            body.extend(extra);
        }
        crate::metadata::validate(
            &ClientIdUrl::parse(id).unwrap(),
            body.to_string().as_bytes(),
        )
        .unwrap()
    }

    fn key(x: &str) -> serde_json::Value {
        serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": x})
    }

    #[test]
    fn the_metadata_fingerprint_changes_with_what_the_user_trusted_only() {
        let base = MetadataFingerprint::of(&document(serde_json::json!({})));
        // The same trust, written differently or with other members changed.
        for same in [
            serde_json::json!({"redirect_uris": ["https://app.example/cb2", "https://app.example/cb"]}),
            serde_json::json!({"redirect_uris": ["https://app.example/cb", "https://app.example/cb2", "https://app.example/cb"]}),
            serde_json::json!({"client_name": "Renamed", "scope": "openid email"}),
        ] {
            assert_eq!(
                MetadataFingerprint::of(&document(same.clone())),
                base,
                "{same}"
            );
        }
        // Another redirect URI, method or key set: another fingerprint.
        let jwks = |x: &str| serde_json::json!({"keys": [key(x)]});
        let changed = [
            serde_json::json!({"redirect_uris": ["https://app.example/cb"]}),
            serde_json::json!({"redirect_uris": ["https://app.example/cb", "https://evil.example/cb"]}),
            serde_json::json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": jwks("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")}),
            serde_json::json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": jwks("3p7bfXt9wbTTW2HC7OQ1Nz-DQ8hbeGdNrfx-FG-IK08")}),
            serde_json::json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://app.example/jwks.json"}),
            serde_json::json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://app.example/other-jwks.json"}),
        ];
        let prints: Vec<_> = changed
            .iter()
            .map(|extra| MetadataFingerprint::of(&document(extra.clone())))
            .collect();
        for (index, print) in prints.iter().enumerate() {
            assert_ne!(*print, base, "{}", changed[index]);
            for other in &prints[index + 1..] {
                assert_ne!(print, other, "{}", changed[index]);
            }
        }
    }

    #[test]
    fn the_key_sets_member_order_does_not_change_the_fingerprint() {
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let reordered: serde_json::Value = serde_json::from_str(&format!(
            r#"{{"keys": [{{"x": "{x}", "kid": "k1", "crv": "Ed25519", "kty": "OKP"}}]}}"#
        ))
        .unwrap();
        let method = "private_key_jwt";
        let a = document(
            serde_json::json!({"token_endpoint_auth_method": method, "jwks": {"keys": [key(x)]}}),
        );
        let b =
            document(serde_json::json!({"token_endpoint_auth_method": method, "jwks": reordered}));
        assert_eq!(MetadataFingerprint::of(&a), MetadataFingerprint::of(&b));
    }

    #[test]
    fn a_refresh_token_keeps_its_fingerprint_or_its_absence_through_the_seal() {
        // Postcard carries no member names: an optional field must be
        // written either way, or the fields after it would shift.
        let sealer = Sealer::new(vec![[3u8; 32]]).unwrap();
        let config = SealConfig::default();
        let seals = Seals::new(&sealer, &config);
        let print = MetadataFingerprint::of(&document(serde_json::json!({})));
        for metadata in [None, Some(print)] {
            let refresh = SealedRefresh {
                upstream_refresh_token: "r".into(),
                client_id: "https://app.example/c.json".into(),
                scope: "openid".into(),
                upstream_client: "main".into(),
                family: crate::store::FamilyId::from_bytes([7; 16]),
                generation: 4,
                family_expires_at: 4_000_000_000,
                granted_scope: "openid".into(),
                resource: Some("https://mcp.example/".into()),
                metadata,
            };
            let opened: SealedRefresh = seals.open(&seals.seal(&refresh).unwrap()).unwrap();
            assert_eq!(opened.metadata, metadata);
            assert_eq!(opened.generation, 4);
            assert_eq!(opened.resource.as_deref(), Some("https://mcp.example/"));
        }
        // And a fingerprint travels as 22 base64url characters, both ways.
        let text = serde_json::to_string(&print).unwrap();
        assert_eq!(text.len(), 24, "{text}");
        assert_eq!(
            serde_json::from_str::<MetadataFingerprint>(&text).unwrap(),
            print
        );
        assert!(serde_json::from_str::<MetadataFingerprint>("\"short\"").is_err());
    }

    #[test]
    fn the_redirect_uri_travels_as_the_plain_string() {
        let uri = RedirectUri::trusted("com.example.app:/cb".into());
        assert_eq!(
            serde_json::to_string(&uri).unwrap(),
            "\"com.example.app:/cb\""
        );
        let back: RedirectUri = serde_json::from_str("\"com.example.app:/cb\"").unwrap();
        assert_eq!(back, uri);
        assert_eq!(back.url().map(Url::scheme), Some("com.example.app"));
    }
}
