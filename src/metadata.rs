//! The client metadata document: strict parsing and the CIMD rules on its members.
//!
//! A document is an outsider's JSON, fetched from the client_id URL, that
//! decides where authorization codes are sent and how the client proves who
//! it is. [`validate`] turns the raw body into a [`ClientMetadata`] only when
//! every rule holds (CIMD-RULES.md rules 8 to 13); the first broken rule is
//! reported, with the member it concerns.
//!
//! Parsing is stricter than `serde_json`'s default: a member name that appears
//! twice in one object is refused at every depth. Parsers disagree on which
//! copy wins, so a duplicate lets a document show one `redirect_uris` to this
//! proxy and another to a different reader of the same bytes.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use url::{Host, Url};

use crate::client_id::{ClientIdUrl, shown};
use crate::error_code::ErrorCode;

/// The most `redirect_uris` a document may list.
///
/// Every request's redirect_uri is compared with each of them, and they are
/// shown to the user; no real client needs more.
pub const MAX_REDIRECT_URIS: usize = 64;

/// Client authentication methods that rely on a shared secret. A CIMD
/// document is public and no registration step ever hands out a secret, so
/// none of these can work and each is refused by name (draft §4.1).
const SHARED_SECRET_METHODS: [&str; 3] = [
    "client_secret_basic",
    "client_secret_post",
    "client_secret_jwt",
];

/// The JWS algorithms a `private_key_jwt` assertion may use: asymmetric ones
/// only, so that the document's public keys are enough to verify (rule 23).
const ASYMMETRIC_ALGS: [&str; 10] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
];

/// Redirect URI schemes that make a browser run code or read local data
/// instead of delivering the code to a client.
const FORBIDDEN_REDIRECT_SCHEMES: [&str; 5] = ["javascript", "data", "vbscript", "file", "blob"];

/// JWK members that hold private or symmetric key material (RFC 7518 §6.2.2,
/// §6.3.2, §6.4.1). A public document carrying one has leaked its key.
const PRIVATE_JWK_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A validated client metadata document.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClientMetadata {
    /// The client's identifier; byte-equal to the URL the document was fetched from.
    pub client_id: String,
    /// Where authorization codes may be sent; never empty.
    pub redirect_uris: Vec<String>,
    /// Self-declared display name; proves nothing about who the client is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// The client's home page (https).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    /// The client's logo (https); fetch it only through the egress rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    /// The client's privacy policy (https).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_uri: Option<String>,
    /// The client's terms of service (https).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tos_uri: Option<String>,
    /// Where the client's public keys are published (https); never set together with `jwks`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// The client's public keys inline: an object with a `keys` array, no private members.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    /// The method the client authenticates with at the token endpoint, as
    /// decided by [`validate`] (see there).
    pub token_endpoint_auth_method: AuthMethod,
    /// The methods the document lists as supported, if it lists any; empty otherwise.
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// The only JWS algorithm the client's assertions may use, if the document names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_signing_alg: Option<String>,
    /// Grant types; `["authorization_code"]` when absent (RFC 7591 §2).
    pub grant_types: Vec<String>,
    /// Response types; `["code"]` when absent (RFC 7591 §2).
    pub response_types: Vec<String>,
    /// Space-separated scopes the client says it uses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// `web`, `native` or anything else; real clients often omit it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_type: Option<String>,
    /// A signed JWT of metadata claims (draft §4.3); kept unverified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub software_statement: Option<String>,
    /// Members this crate does not interpret, kept for reporting.
    #[serde(flatten)]
    pub extra: ExtraMembers,
    /// Whether every redirect URI is a loopback one, decided once at
    /// validation: the policy asks on every request.
    #[serde(skip)]
    loopback_only: bool,
}

/// The members of a document this crate does not interpret, kept for
/// reports (`check --json`) as compact JSON text: one allocation, where a
/// parsed map costs several hundred bytes in every cached document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtraMembers(Option<Box<str>>);

impl ExtraMembers {
    fn new(members: Map<String, Value>) -> Self {
        if members.is_empty() {
            ExtraMembers(None)
        } else {
            ExtraMembers(Some(Value::Object(members).to_string().into_boxed_str()))
        }
    }

    /// Whether the document had no such member.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// How many members there are.
    pub fn len(&self) -> usize {
        self.to_map().len()
    }

    /// The members, parsed again.
    pub fn to_map(&self) -> Map<String, Value> {
        self.0
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default()
    }
}

impl serde::Serialize for ExtraMembers {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_map().serialize(serializer)
    }
}

/// How a CIMD client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum AuthMethod {
    /// A public client: no client authentication, PKCE only.
    None,
    /// A JWT assertion signed with a key from the document's `jwks` or `jwks_uri` (RFC 7523).
    PrivateKeyJwt,
}

impl AuthMethod {
    /// The method's name as registered with IANA and used in documents.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Parses `body` and checks it against every CIMD document rule for the client
/// identified by `client_id`.
///
/// The effective `token_endpoint_auth_method` is the document's own if it
/// names one; otherwise `private_key_jwt` when the document both lists it in
/// `token_endpoint_auth_methods_supported` and publishes keys (rule 13: the
/// server may pick any listed method it supports, and the stronger one is
/// only usable with keys); otherwise `none`.
///
/// # Errors
///
/// The first rule broken, checked in this order: strict JSON object
/// ([`MetadataError::InvalidJson`]), `client_id`
/// ([`MetadataError::ClientIdMismatch`]), then the other members
/// ([`MetadataError::Invalid`], naming the member).
pub fn validate(client_id: &ClientIdUrl, body: &[u8]) -> Result<ClientMetadata, MetadataError> {
    let mut doc = parse_strict_object(body)?;
    let client_id = take_client_id(&mut doc, client_id)?;
    validate_members(client_id, doc)
}

/// Parses a dynamic registration request (RFC 7591 §3.1) and checks it
/// against every document rule but the client_id's: the same strict JSON,
/// redirect URI, authentication method and key rules as a CIMD document.
/// The proxy assigns the client_id, so a request naming one is refused, and
/// the result's `client_id` is empty until the caller sets it.
///
/// # Errors
///
/// The first rule broken, as [`validate`] reports it.
pub fn validate_registration(body: &[u8]) -> Result<ClientMetadata, MetadataError> {
    let doc = parse_strict_object(body)?;
    if doc.contains_key("client_id") {
        return Err(invalid(
            "client_id",
            "is assigned by the authorization server and must not be in a registration request",
        ));
    }
    validate_members(String::new(), doc)
}

/// Every rule on the members other than `client_id`.
fn validate_members(
    client_id: String,
    mut doc: Map<String, Value>,
) -> Result<ClientMetadata, MetadataError> {
    // Refused outright, whatever the value: a secret in a public document is
    // already leaked, and its value is never echoed in the message.
    for field in ["client_secret", "client_secret_expires_at"] {
        if doc.contains_key(field) {
            return Err(invalid(
                field,
                "a CIMD document is public and must not carry a shared secret",
            ));
        }
    }

    let redirect_uris = take_redirect_uris(&mut doc)?;

    let explicit_method = match take_string(&mut doc, "token_endpoint_auth_method")? {
        Some(method) => {
            Some(parse_auth_method(&method).map_err(|r| invalid("token_endpoint_auth_method", r))?)
        }
        None => None,
    };
    let supported = take_string_array(&mut doc, "token_endpoint_auth_methods_supported")?;
    if let Some(supported) = &supported {
        check_supported_methods(supported)
            .map_err(|r| invalid("token_endpoint_auth_methods_supported", r))?;
    }

    let jwks_uri = take_https_url(&mut doc, "jwks_uri")?;
    let jwks = doc.remove("jwks");
    if jwks.is_some() && jwks_uri.is_some() {
        // Two key sources would let the proxy and a relying party verify
        // against different keys; the draft forbids both (rule 10).
        return Err(invalid(
            "jwks",
            "jwks and jwks_uri must not both be present",
        ));
    }
    if let Some(jwks) = &jwks {
        check_jwks(jwks).map_err(|r| invalid("jwks", r))?;
    }
    let has_keys = jwks.is_some() || jwks_uri.is_some();

    let supported = supported.unwrap_or_default();
    let lists_private_key_jwt = supported
        .iter()
        .any(|m| m == AuthMethod::PrivateKeyJwt.as_str());
    let token_endpoint_auth_method = match explicit_method {
        Some(method) => method,
        None if has_keys && lists_private_key_jwt => AuthMethod::PrivateKeyJwt,
        None => AuthMethod::None,
    };
    if token_endpoint_auth_method == AuthMethod::PrivateKeyJwt && !has_keys {
        return Err(invalid(
            "token_endpoint_auth_method",
            "private_key_jwt needs the client's public keys in jwks or jwks_uri, and there are none",
        ));
    }

    let token_endpoint_auth_signing_alg =
        match take_string(&mut doc, "token_endpoint_auth_signing_alg")? {
            Some(alg) => {
                check_signing_alg(&alg)
                    .map_err(|r| invalid("token_endpoint_auth_signing_alg", r))?;
                Some(alg)
            }
            None => None,
        };

    let loopback_only = redirect_uris.iter().all(|uri| is_loopback_redirect(uri));
    Ok(ClientMetadata {
        client_id,
        loopback_only,
        redirect_uris,
        client_name: take_string(&mut doc, "client_name")?,
        client_uri: take_https_url(&mut doc, "client_uri")?,
        logo_uri: take_https_url(&mut doc, "logo_uri")?,
        policy_uri: take_https_url(&mut doc, "policy_uri")?,
        tos_uri: take_https_url(&mut doc, "tos_uri")?,
        jwks_uri,
        jwks,
        token_endpoint_auth_method,
        token_endpoint_auth_methods_supported: supported,
        token_endpoint_auth_signing_alg,
        grant_types: take_string_array(&mut doc, "grant_types")?
            .unwrap_or_else(|| vec!["authorization_code".to_owned()]),
        response_types: take_string_array(&mut doc, "response_types")?
            .unwrap_or_else(|| vec!["code".to_owned()]),
        scope: take_string(&mut doc, "scope")?,
        application_type: take_string(&mut doc, "application_type")?,
        software_statement: take_string(&mut doc, "software_statement")?,
        // Every interpreted member was removed above, so what is left is
        // exactly what this crate does not understand.
        extra: ExtraMembers::new(doc),
    })
}

/// The document `base` would be with `overrides` taking precedence over its
/// members, validated by every rule [`validate`] applies.
///
/// A software statement's claims take precedence over the plain JSON (RFC
/// 7591 §3.1.1), and what they bring is as untrusted in form as the document
/// itself: an http `logo_uri` or a shared-secret method is refused here just
/// as it would be in the document. `base` is written back out as the
/// document it was validated from, except that a
/// `token_endpoint_auth_method` it derived is now stated.
///
/// # Errors
///
/// The first rule the combined document breaks.
pub fn overlay(
    client_id: &ClientIdUrl,
    base: &ClientMetadata,
    overrides: &Map<String, Value>,
) -> Result<ClientMetadata, MetadataError> {
    let Ok(Value::Object(mut doc)) = serde_json::to_value(base) else {
        return Err(invalid(
            "client_id",
            "the validated document cannot be written back as JSON",
        ));
    };
    // Written back for every document, but an empty list is what the
    // document said by omitting the member, and "lists nothing" is refused.
    if base.token_endpoint_auth_methods_supported.is_empty() {
        doc.remove("token_endpoint_auth_methods_supported");
    }
    for (name, value) in overrides {
        doc.insert(name.clone(), value.clone());
    }
    let body = serde_json::to_vec(&Value::Object(doc)).map_err(|_| MetadataError::InvalidJson {
        reason: "the combined document cannot be written as JSON".to_owned(),
    })?;
    validate(client_id, &body)
}

impl ClientMetadata {
    /// The metadata of a client the operator configured instead of a
    /// document (`[[upstream.relayed_clients]]`): its redirect URIs (checked
    /// by [`check_redirect_uri`] when the configuration was read), a public
    /// client at the proxy (the provider authenticates it), the
    /// authorization-code and refresh grants.
    pub fn configured(
        client_id: &str,
        redirect_uris: Vec<String>,
        client_name: Option<String>,
    ) -> ClientMetadata {
        ClientMetadata {
            client_id: client_id.to_owned(),
            loopback_only: redirect_uris.iter().all(|uri| is_loopback_redirect(uri)),
            redirect_uris,
            client_name,
            client_uri: None,
            logo_uri: None,
            policy_uri: None,
            tos_uri: None,
            jwks_uri: None,
            jwks: None,
            token_endpoint_auth_method: AuthMethod::None,
            token_endpoint_auth_methods_supported: Vec::new(),
            token_endpoint_auth_signing_alg: None,
            grant_types: vec!["authorization_code".to_owned(), "refresh_token".to_owned()],
            response_types: vec!["code".to_owned()],
            scope: None,
            application_type: None,
            software_statement: None,
            extra: ExtraMembers::default(),
        }
    }

    /// True when every redirect URI is a loopback one (RFC 8252 §7.3): anyone can present such a client's URL.
    ///
    /// The code then goes to whatever program listens on the user's own
    /// machine, so the client's URL proves nothing about who receives it
    /// (rule 17: warn harder).
    pub fn only_loopback_redirects(&self) -> bool {
        self.loopback_only
    }

    /// Finds the registered redirect URI the request's redirect_uri matches (exact string, or the loopback port rule).
    ///
    /// An exact match is preferred over a port-rule match, so the registration
    /// returned is the most specific one.
    pub fn match_redirect_uri(&self, requested: &str) -> Option<&str> {
        self.redirect_uris
            .iter()
            .find(|registered| registered.as_str() == requested)
            .or_else(|| {
                self.redirect_uris
                    .iter()
                    .find(|registered| redirect_uri_matches(registered, requested))
            })
            .map(String::as_str)
    }
}

/// RFC 8252 §7.3 / RFC 9700 §2.1: exact match, except an `http` loopback registration (host 127.0.0.1, [::1] or localhost)
/// matches the same URI with any port; a registration written without a port matches any port. Scheme, host, path and query must match exactly.
///
/// For the port exception both strings must already be in the form a URL
/// parser gives them, so that "everything but the port is equal" holds for
/// the strings and not only for what a parser makes of them. One consequence:
/// a request spelling the default port (`http://127.0.0.1:80/cb`) matches only
/// a registration written the same way.
pub fn redirect_uri_matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    let (Ok(reg), Ok(req)) = (Url::parse(registered), Url::parse(requested)) else {
        return false;
    };
    reg.as_str() == registered
        && req.as_str() == requested
        && reg.scheme() == "http"
        && is_loopback_host(&reg)
        && req.scheme() == reg.scheme()
        && req.username() == reg.username()
        && req.password() == reg.password()
        && req.host() == reg.host()
        && req.path() == reg.path()
        && req.query() == reg.query()
        && req.fragment().is_none()
        && reg.fragment().is_none()
}

/// True when `uri` sends the code to the user's own machine: its host is
/// 127.0.0.1, [::1] or localhost.
///
/// Both `http` and `https` count: the concern is where the code lands, and an
/// https listener on loopback is just as much "whoever runs locally".
pub fn is_loopback_redirect(uri: &str) -> bool {
    Url::parse(uri)
        .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && is_loopback_host(&url))
}

/// Why a metadata document was refused.
///
/// Values in messages are escaped and shortened to at most 100 characters;
/// secrets and private key material are never included.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// The body is not a strict JSON object: not UTF-8, a byte order mark,
    /// a syntax error, a duplicate member name, or a top level that is not an
    /// object.
    #[error("invalid JSON: {reason}")]
    InvalidJson {
        /// What is wrong, with the position where the parser gives one.
        reason: String,
    },
    /// The document's `client_id` is missing, not a string, or not the URL it
    /// was fetched from.
    #[error("client_id mismatch: the document has {found}, but it was fetched from \"{expected}\"")]
    ClientIdMismatch {
        /// The URL the document was fetched from, shortened.
        expected: String,
        /// What the document has instead, described and shortened.
        found: String,
    },
    /// A member breaks a CIMD metadata rule.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The member concerned.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl MetadataError {
    /// The stable error code: `invalid_json`, `client_id_mismatch` or `invalid_metadata`.
    pub fn code(&self) -> ErrorCode {
        match self {
            MetadataError::InvalidJson { .. } => ErrorCode::InvalidJson,
            MetadataError::ClientIdMismatch { .. } => ErrorCode::ClientIdMismatch,
            MetadataError::Invalid { .. } => ErrorCode::InvalidMetadata,
        }
    }
}

/// Builds the error for a member that breaks a rule.
fn invalid(field: &'static str, reason: impl Into<String>) -> MetadataError {
    MetadataError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Parses `body` as one strict JSON object.
fn parse_strict_object(body: &[u8]) -> Result<Map<String, Value>, MetadataError> {
    let json_error = |reason: String| MetadataError::InvalidJson { reason };
    // RFC 8259 §8.1 forbids sending a byte order mark; refusing it by name
    // gives a clearer message than the parser's "expected value".
    if body.starts_with(b"\xEF\xBB\xBF") {
        return Err(json_error(
            "the body starts with a byte order mark, which JSON text must not".to_owned(),
        ));
    }
    let text = std::str::from_utf8(body).map_err(|e| {
        json_error(format!(
            "the body is not UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    // serde_json refuses trailing data, comments, trailing commas, lone
    // surrogates and non-finite numbers, and bounds nesting depth, so only
    // duplicate names need the custom visitor below.
    let StrictValue(value) = serde_json::from_str(text).map_err(|e| json_error(e.to_string()))?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(json_error(format!(
            "the top level is {}, not an object",
            json_type(&other)
        ))),
    }
}

/// A JSON value parsed with duplicate member names refused at every depth.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

/// Builds a [`Value`] like `serde_json`'s own visitor, except that a repeated
/// member name is an error instead of silently keeping the last copy.
///
/// This relies on `serde_json` being built without its `arbitrary_precision`
/// feature, which would hand numbers over as one-member maps; the
/// `numbers_stay_numbers` test catches it if a dependency ever enables it.
struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        // JSON text cannot spell a non-finite number; refuse rather than
        // turn one into null as serde_json's own visitor would.
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number is not finite"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        // Names are compared after unescaping, so `"a"` and `"\u0061"` are
        // the same name, as they are to every other JSON reader.
        while let Some(name) = map.next_key::<String>()? {
            if members.contains_key(&name) {
                return Err(de::Error::custom(format_args!(
                    "duplicate member name \"{}\"",
                    shown(&name)
                )));
            }
            let StrictValue(value) = map.next_value()?;
            members.insert(name, value);
        }
        Ok(Value::Object(members))
    }
}

/// Removes `client_id` and checks it is byte-equal to the URL fetched (rule 8).
fn take_client_id(
    doc: &mut Map<String, Value>,
    expected: &ClientIdUrl,
) -> Result<String, MetadataError> {
    let found = match doc.remove("client_id") {
        Some(Value::String(found)) if found == expected.as_str() => return Ok(found),
        Some(Value::String(found)) => format!("client_id \"{}\"", shown(&found)),
        Some(other) => format!("{} as client_id, not a string", json_type(&other)),
        None => "no client_id".to_owned(),
    };
    Err(MetadataError::ClientIdMismatch {
        expected: shown(expected.as_str()),
        found,
    })
}

/// Removes `redirect_uris` and checks every entry (rule 11).
fn take_redirect_uris(doc: &mut Map<String, Value>) -> Result<Vec<String>, MetadataError> {
    const FIELD: &str = "redirect_uris";
    let Some(uris) = take_string_array(doc, FIELD)? else {
        return Err(invalid(
            FIELD,
            "is required: the authorization-code flow needs somewhere to send the code",
        ));
    };
    if uris.is_empty() {
        return Err(invalid(FIELD, "must list at least one redirect URI"));
    }
    if uris.len() > MAX_REDIRECT_URIS {
        return Err(invalid(
            FIELD,
            format!(
                "lists {} redirect URIs, more than the {MAX_REDIRECT_URIS} allowed",
                uris.len()
            ),
        ));
    }
    for (index, uri) in uris.iter().enumerate() {
        check_redirect_uri(uri).map_err(|r| invalid(FIELD, format!("entry {index} {r}")))?;
    }
    Ok(uris)
}

/// Checks one registered redirect URI; the error completes "entry N ...".
pub fn check_redirect_uri(uri: &str) -> Result<(), String> {
    let url =
        Url::parse(uri).map_err(|e| format!("\"{}\" is not an absolute URI: {e}", shown(uri)))?;
    // An authorization response carries its parameters in the query or the
    // fragment; a registered fragment would collide with the latter
    // (RFC 6749 §3.1.2). Even an empty `#` is refused.
    if uri.contains('#') {
        return Err(format!("\"{}\" must not contain a fragment", shown(uri)));
    }
    // The parser lower-cases the scheme, so `JavaScript:` is caught too.
    if FORBIDDEN_REDIRECT_SCHEMES.contains(&url.scheme()) {
        return Err(format!(
            "\"{}\" uses the {} scheme, which runs code or reads local data in the browser",
            shown(uri),
            url.scheme()
        ));
    }
    // Plain http is only safe when the code never leaves the machine
    // (RFC 8252 §8.3). Private-use schemes such as `com.example.app:/cb`
    // stay allowed (RFC 8252 §7.1).
    if url.scheme() == "http" && !is_loopback_host(&url) {
        return Err(format!(
            "\"{}\" uses http on a host that is not loopback (127.0.0.1, [::1] or localhost); use https",
            shown(uri)
        ));
    }
    Ok(())
}

/// True when the URL's host is one of the three loopback names RFC 8252 §7.3
/// and the CIMD rules list. Other 127/8 addresses are deliberately not
/// included: clients are told to use exactly these.
fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(addr)) => addr == Ipv4Addr::LOCALHOST,
        Some(Host::Ipv6(addr)) => addr == Ipv6Addr::LOCALHOST,
        Some(Host::Domain(name)) => name == "localhost",
        None => false,
    }
}

/// Reads a `token_endpoint_auth_method` value; the error is the reason.
fn parse_auth_method(method: &str) -> Result<AuthMethod, String> {
    match method {
        "none" => Ok(AuthMethod::None),
        "private_key_jwt" => Ok(AuthMethod::PrivateKeyJwt),
        _ if SHARED_SECRET_METHODS.contains(&method) => Err(shared_secret_reason(method)),
        _ => Err(format!(
            "\"{}\" is not supported; use \"none\" or \"private_key_jwt\"",
            shown(method)
        )),
    }
}

/// The one wording for every shared-secret method, wherever it appears.
fn shared_secret_reason(method: &str) -> String {
    format!(
        "\"{method}\" uses a shared secret, and shared secrets are not allowed for CIMD clients"
    )
}

/// Checks `token_endpoint_auth_methods_supported` (rules 9 and 13).
fn check_supported_methods(methods: &[String]) -> Result<(), String> {
    if let Some(secret) = methods
        .iter()
        .find(|m| SHARED_SECRET_METHODS.contains(&m.as_str()))
    {
        return Err(shared_secret_reason(secret));
    }
    // Other methods (tls_client_auth, ...) may be listed as long as one this
    // proxy can use is there.
    if !methods
        .iter()
        .any(|m| m == AuthMethod::None.as_str() || m == AuthMethod::PrivateKeyJwt.as_str())
    {
        return Err("lists neither \"none\" nor \"private_key_jwt\"".to_owned());
    }
    Ok(())
}

/// Checks an inline JWK set: public asymmetric keys only (rules 9 and 10).
fn check_jwks(jwks: &Value) -> Result<(), String> {
    let Value::Object(set) = jwks else {
        return Err(format!("must be an object, not {}", json_type(jwks)));
    };
    let keys = match set.get("keys") {
        Some(Value::Array(keys)) => keys,
        Some(other) => return Err(format!("keys must be an array, not {}", json_type(other))),
        None => return Err("has no keys array".to_owned()),
    };
    // An empty set would make `private_key_jwt` impossible while looking
    // like "the document has keys".
    if keys.is_empty() {
        return Err("keys is empty".to_owned());
    }
    for (index, key) in keys.iter().enumerate() {
        let Value::Object(key) = key else {
            return Err(format!(
                "key {index} must be an object, not {}",
                json_type(key)
            ));
        };
        let kty = match key.get("kty") {
            Some(Value::String(kty)) => kty,
            Some(other) => {
                return Err(format!(
                    "key {index} kty must be a string, not {}",
                    json_type(other)
                ));
            }
            None => return Err(format!("key {index} has no kty")),
        };
        if kty == "oct" {
            return Err(format!(
                "key {index} is a symmetric key (kty \"oct\"); only public asymmetric keys are allowed"
            ));
        }
        // Only the member name is reported, never its value.
        if let Some(member) = PRIVATE_JWK_MEMBERS.iter().find(|m| key.contains_key(**m)) {
            return Err(format!(
                "key {index} contains the private member \"{member}\"; a public document must not carry private key material"
            ));
        }
    }
    Ok(())
}

/// Checks `token_endpoint_auth_signing_alg` (rule 23).
fn check_signing_alg(alg: &str) -> Result<(), String> {
    if ASYMMETRIC_ALGS.contains(&alg) {
        return Ok(());
    }
    if alg == "none" {
        return Err(
            "\"none\" means unsigned assertions; an asymmetric algorithm is required".to_owned(),
        );
    }
    if alg.starts_with("HS") {
        return Err(format!(
            "\"{}\" is an HMAC algorithm, which needs a shared secret; an asymmetric algorithm is required",
            shown(alg)
        ));
    }
    Err(format!(
        "\"{}\" is not supported; use one of {}",
        shown(alg),
        ASYMMETRIC_ALGS.join(", ")
    ))
}

/// Removes an optional string member.
fn take_string(
    doc: &mut Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, MetadataError> {
    match doc.remove(field) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong_type(field, "a string", &other)),
    }
}

/// Removes an optional member that must be an array of strings.
fn take_string_array(
    doc: &mut Map<String, Value>,
    field: &'static str,
) -> Result<Option<Vec<String>>, MetadataError> {
    let items = match doc.remove(field) {
        None => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(wrong_type(field, "an array of strings", &other)),
    };
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::String(s) => Ok(s),
            other => Err(invalid(
                field,
                format!("entry {index} must be a string, not {}", json_type(&other)),
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Removes an optional member that must be an absolute `https` URL with a
/// host, no fragment and no userinfo.
fn take_https_url(
    doc: &mut Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, MetadataError> {
    let Some(value) = take_string(doc, field)? else {
        return Ok(None);
    };
    let url = Url::parse(&value).map_err(|e| {
        invalid(
            field,
            format!("\"{}\" is not an absolute URL: {e}", shown(&value)),
        )
    })?;
    let problem = if url.scheme() != "https" {
        Some("must use https")
    } else if url.host_str().is_none_or(str::is_empty) {
        Some("has no host")
    } else if value.contains('#') {
        Some("must not contain a fragment")
    } else if !url.username().is_empty() || url.password().is_some() {
        // `https://app.example.com@evil.example/` reads as one host and
        // reaches another.
        Some("must not contain userinfo")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(invalid(field, format!("\"{}\" {problem}", shown(&value)))),
        None => Ok(Some(value)),
    }
}

/// The error for a member of the wrong JSON type.
fn wrong_type(field: &'static str, expected: &str, found: &Value) -> MetadataError {
    invalid(
        field,
        format!("must be {expected}, not {}", json_type(found)),
    )
}

/// The JSON type of a value, for messages: the value itself is not shown,
/// since it may be large or secret.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
