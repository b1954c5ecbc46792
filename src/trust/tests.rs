//! Unit tests: issuers with keys in a file (the `jwks_uri` path runs against
//! real origins in tests/integration/trust.rs), statements made here, a
//! fake clock.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use super::*;
use crate::egress::FetchConfig;

const CLIENT: &str = "https://app.example/client.json";
const OTHER_CLIENT: &str = "https://other.example/client.json";
const REGISTRY: &str = "https://registry.example";
/// A fixed "now" for the fake clock.
const NOW: i64 = 1_800_000_000;

fn id(url: &str) -> ClientIdUrl {
    ClientIdUrl::parse(url).expect("client_id")
}

fn registry_keys() -> SigningKeys {
    SigningKeys::generate_ephemeral().expect("P-256 key")
}

thread_local! {
    /// The key files of this test's issuers, removed when its thread ends.
    static KEY_FILES: RefCell<Vec<tempfile::NamedTempFile>> = const { RefCell::new(Vec::new()) };
}

/// An issuer whose `jwks_file` holds the public half of `keys`.
fn issuer(name: &str, keys: &SigningKeys) -> IssuerConfig {
    let mut file = tempfile::NamedTempFile::new().expect("temporary file");
    file.write_all(keys.jwks().to_string().as_bytes())
        .expect("write the key set");
    let path = file.path().to_owned();
    KEY_FILES.with(|files| files.borrow_mut().push(file));
    IssuerConfig {
        name: name.to_owned(),
        keys: IssuerKeys::File(path),
        algorithms: DEFAULT_STATEMENT_ALGORITHMS.to_vec(),
        required_claims: BTreeMap::new(),
    }
}

fn trust_of(issuers: Vec<IssuerConfig>) -> Trust {
    let config = FetchConfig {
        // Never queried: these issuers' keys are in files.
        dns_servers: vec!["127.0.0.1:9".parse().expect("socket address")],
        ..FetchConfig::default()
    };
    let egress = Arc::new(Egress::new(&config, Vec::new()).expect("egress"));
    let now = Arc::new(AtomicI64::new(NOW));
    Trust::new(&TrustConfig { issuers }, egress)
        .expect("the issuers' key files are readable")
        .with_clock(Arc::new(move || now.load(Ordering::SeqCst)))
}

/// Valid statement claims for `CLIENT` from `REGISTRY` at `NOW`, with
/// `changes` applied (a null removes a claim).
fn claims(changes: Value) -> Value {
    let mut claims = json!({
        "iss": REGISTRY,
        "client_id": CLIENT,
        "iat": NOW,
        "exp": NOW + 86_400,
        "client_name": "Vouched App",
    });
    if let (Value::Object(claims), Value::Object(changes)) = (&mut claims, changes) {
        for (name, value) in changes {
            if value.is_null() {
                claims.remove(&name);
            } else {
                claims.insert(name, value);
            }
        }
    }
    claims
}

/// The client's document carrying `statement`, with `extra` members.
fn document(statement: Option<&str>, extra: Value) -> Arc<ClientMetadata> {
    let mut doc = json!({
        "client_id": CLIENT,
        "client_name": "Self-declared App",
        "redirect_uris": ["https://app.example/cb", "https://app.example/cb2"],
    });
    if let Some(statement) = statement {
        doc["software_statement"] = statement.into();
    }
    if let (Value::Object(doc), Value::Object(extra)) = (&mut doc, extra) {
        doc.extend(extra);
    }
    Arc::new(metadata::validate(&id(CLIENT), doc.to_string().as_bytes()).expect("valid document"))
}

async fn vet(
    trust: &Trust,
    statement: &str,
) -> Result<(Arc<ClientMetadata>, Option<Verdict>), ClientError> {
    trust
        .vet(&id(CLIENT), document(Some(statement), json!({})))
        .await
}

/// The statement is refused with `expected` (by label); returns the message.
#[track_caller]
fn refused(
    result: Result<(Arc<ClientMetadata>, Option<Verdict>), ClientError>,
    expected: &str,
) -> String {
    match result {
        Ok((_, verdict)) => panic!("accepted ({verdict:?}); expected {expected}"),
        Err(error) => {
            let ClientError::Statement { error: inner, .. } = &error else {
                panic!("not a statement error: {error}");
            };
            assert_eq!(inner.as_str(), expected, "{error}");
            assert_eq!(error.code(), ErrorCode::InvalidMetadata, "{error}");
            let message = error.to_string();
            assert!(message.starts_with("software_statement: "), "{message}");
            message
        }
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

// ---------------------------------------------------------------------------
// Accepted
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_valid_statement_vouches_and_its_claims_take_precedence() {
    let keys = registry_keys();
    let trust = trust_of(vec![issuer(REGISTRY, &keys)]);
    let statement = keys.sign(&claims(json!({}))).unwrap();
    let (metadata, verdict) = vet(&trust, &statement).await.expect("valid statement");
    assert_eq!(
        verdict,
        Some(Verdict::Vouched {
            issuer: REGISTRY.to_owned()
        })
    );
    assert_eq!(
        verdict.as_ref().and_then(Verdict::vouched_by),
        Some(REGISTRY)
    );
    // RFC 7591 §3.1.1: the statement's claim wins over the plain JSON.
    assert_eq!(metadata.client_name.as_deref(), Some("Vouched App"));
    assert_eq!(metadata.redirect_uris.len(), 2);
    // JWT claims are not metadata.
    for claim in ["iss", "iat", "exp"] {
        assert!(!metadata.extra.to_map().contains_key(claim), "{claim}");
    }
    let report = verdict.unwrap().report();
    assert!(report.valid);
    assert_eq!(report.issuer.as_deref(), Some(REGISTRY));
}

#[tokio::test]
async fn the_statement_helper_makes_what_the_verifier_accepts() {
    let keys = registry_keys();
    let trust = trust_of(vec![issuer(REGISTRY, &keys)]);
    let extra = Map::from_iter([("client_name".to_owned(), Value::from("Signed By Helper"))]);
    let statement = sign_statement_at(
        &keys,
        REGISTRY,
        &id(CLIENT),
        &extra,
        Duration::from_secs(90 * 86_400),
        NOW,
    )
    .unwrap();
    let (metadata, verdict) = vet(&trust, &statement).await.expect("valid statement");
    assert_eq!(verdict.unwrap().vouched_by(), Some(REGISTRY));
    assert_eq!(metadata.client_name.as_deref(), Some("Signed By Helper"));
    let (header, _) = statement.split_once('.').unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    assert_eq!(header["kid"], keys.kid());

    let reserved = Map::from_iter([("iss".to_owned(), Value::from("someone else"))]);
    assert!(matches!(
        sign_statement_at(&keys, REGISTRY, &id(CLIENT), &reserved, Duration::ZERO, NOW),
        Err(StatementSignError::ReservedClaim(claim)) if claim == "iss"
    ));
}

#[tokio::test]
async fn sub_names_the_client_when_there_is_no_client_id_claim() {
    let keys = registry_keys();
    let trust = trust_of(vec![issuer(REGISTRY, &keys)]);
    let statement = keys
        .sign(&claims(json!({"client_id": null, "sub": CLIENT})))
        .unwrap();
    vet(&trust, &statement).await.expect("sub names the client");
}

#[tokio::test]
async fn redirect_uris_in_another_order_agree_and_times_within_the_skew_pass() {
    let keys = registry_keys();
    let trust = trust_of(vec![issuer(REGISTRY, &keys)]);
    let statement = keys
        .sign(&claims(json!({
            "redirect_uris": ["https://app.example/cb2", "https://app.example/cb"],
            "exp": NOW - 59,
            "iat": NOW + 59,
            "nbf": NOW + 59,
        })))
        .unwrap();
    let (metadata, _) = vet(&trust, &statement).await.expect("agrees");
    assert_eq!(
        metadata.redirect_uris[0], "https://app.example/cb",
        "document order kept"
    );
    // No exp at all: a registry may vouch without an end date.
    let statement = keys.sign(&claims(json!({"exp": null}))).unwrap();
    vet(&trust, &statement).await.expect("no exp");
}

#[tokio::test]
async fn without_configured_issuers_statements_are_not_checked() {
    let trust = trust_of(Vec::new());
    let (metadata, verdict) = vet(&trust, "not even a JWT").await.expect("not evaluated");
    assert_eq!(
        verdict,
        Some(Verdict::NotChecked {
            claimed_issuer: None
        })
    );
    // Unverified claims never take precedence.
    assert_eq!(metadata.client_name.as_deref(), Some("Self-declared App"));

    let statement = registry_keys().sign(&claims(json!({}))).unwrap();
    let (_, verdict) = vet(&trust, &statement).await.expect("not evaluated");
    let report = verdict.unwrap().report();
    assert!(!report.valid);
    assert_eq!(report.issuer.as_deref(), Some(REGISTRY));
    assert!(report.reason.unwrap().contains("not checked"));
}

#[tokio::test]
async fn a_document_without_a_statement_has_no_verdict() {
    let keys = registry_keys();
    let trust = trust_of(vec![issuer(REGISTRY, &keys)]);
    let (metadata, verdict) = trust
        .vet(&id(CLIENT), document(None, json!({})))
        .await
        .expect("no statement");
    assert_eq!(verdict, None);
    assert_eq!(metadata.client_name.as_deref(), Some("Self-declared App"));
}

// ---------------------------------------------------------------------------
// Refused
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_expired_or_not_yet_valid_statement_is_refused() {
    let keys = registry_keys();
    let trust = trust_of(vec![issuer(REGISTRY, &keys)]);
    for (changes, expected) in [
        (json!({"exp": NOW - 61}), "expired"),
        (json!({"nbf": NOW + 61}), "not_yet_valid"),
        (json!({"iat": NOW + 61}), "iat_in_future"),
        (json!({"exp": "tomorrow"}), "malformed"),
    ] {
        let statement = keys.sign(&claims(changes.clone())).unwrap();
        let message = refused(vet(&trust, &statement).await, expected);
        if expected == "expired" {
            assert_eq!(message, "software_statement: has expired");
        }
    }
}

#[tokio::test]
async fn a_statement_from_an_issuer_not_configured_is_refused() {
    let keys = registry_keys();
    let trust = trust_of(vec![issuer(REGISTRY, &keys)]);
    // Signed with the registry's own key, but claiming another issuer.
    let statement = keys
        .sign(&claims(json!({"iss": "https://evil.example"})))
        .unwrap();
    let message = refused(vet(&trust, &statement).await, "unknown_issuer");
    assert!(message.contains("https://evil.example"), "{message}");
    let statement = keys.sign(&claims(json!({"iss": null}))).unwrap();
    refused(vet(&trust, &statement).await, "missing_iss");
    let statement = keys.sign(&claims(json!({"iss": [REGISTRY]}))).unwrap();
    refused(vet(&trust, &statement).await, "missing_iss");
}

#[tokio::test]
async fn a_statement_signed_by_an_unknown_key_is_refused() {
    let keys = registry_keys();
    let trust = trust_of(vec![issuer(REGISTRY, &keys)]);
    let impostor = registry_keys();
    let statement = impostor.sign(&claims(json!({}))).unwrap();
    let message = refused(vet(&trust, &statement).await, "unknown_key");
    assert_eq!(message, "software_statement: signed by an unknown key");

    // Another key presenting the registry key's kid: the signature fails.
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(keys.kid().to_owned());
    let pair = rcgen::KeyPair::generate().expect("P-256 key");
    let forged = jsonwebtoken::encode(
        &header,
        &claims(json!({})),
        &EncodingKey::from_ec_der(&pair.serialize_der()),
    )
    .unwrap();
    refused(vet(&trust, &forged).await, "bad_signature");
}

#[tokio::test]
async fn alg_none_and_hmac_statements_are_refused() {
    let keys = registry_keys();
    let trust = trust_of(vec![issuer(REGISTRY, &keys)]);
    let payload = b64(claims(json!({})).to_string().as_bytes());
    for header in [
        json!({"alg": "none"}),
        json!({"alg": "none", "kid": keys.kid()}),
        json!({"alg": "None"}),
    ] {
        let token = format!("{}.{payload}.", b64(header.to_string().as_bytes()));
        let message = refused(vet(&trust, &token).await, "disallowed_alg");
        assert!(message.contains("asymmetric"), "{message}");
    }
    // HS256 keyed with the registry's public key, the classic confusion.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(keys.kid().to_owned());
    let public = keys.jwks().to_string();
    let hmac = jsonwebtoken::encode(
        &header,
        &claims(json!({})),
        &EncodingKey::from_secret(public.as_bytes()),
    )
    .unwrap();
    let message = refused(vet(&trust, &hmac).await, "disallowed_alg");
    assert!(message.contains("HS256"), "{message}");
}

#[tokio::test]
async fn an_algorithm_the_issuer_is_not_configured_for_is_refused() {
    let keys = registry_keys();
    let mut rsa_only = issuer(REGISTRY, &keys);
    rsa_only.algorithms = vec![Algorithm::RS256];
    let trust = trust_of(vec![rsa_only]);
    let statement = keys.sign(&claims(json!({}))).unwrap();
    refused(vet(&trust, &statement).await, "alg_not_allowed");
}

#[tokio::test]
async fn a_statement_for_another_client_is_refused() {
    let keys = registry_keys();
    let trust = trust_of(vec![issuer(REGISTRY, &keys)]);
    let statement = keys
        .sign(&claims(json!({"client_id": OTHER_CLIENT})))
        .unwrap();
    let message = refused(vet(&trust, &statement).await, "other_client");
    assert!(message.contains(OTHER_CLIENT), "{message}");
    // client_id wins over sub: a matching sub does not rescue it.
    let statement = keys
        .sign(&claims(json!({"client_id": OTHER_CLIENT, "sub": CLIENT})))
        .unwrap();
    refused(vet(&trust, &statement).await, "other_client");
    let statement = keys
        .sign(&claims(json!({"client_id": null, "sub": OTHER_CLIENT})))
        .unwrap();
    refused(vet(&trust, &statement).await, "other_client");
    let statement = keys.sign(&claims(json!({"client_id": null}))).unwrap();
    let message = refused(vet(&trust, &statement).await, "names_no_client");
    assert!(message.contains("does not name this client"), "{message}");
}

#[tokio::test]
async fn a_statement_contradicting_the_document_is_refused() {
    let keys = registry_keys();
    let trust = trust_of(vec![issuer(REGISTRY, &keys)]);
    for uris in [
        json!(["https://app.example/cb"]),
        json!([
            "https://app.example/cb",
            "https://app.example/cb2",
            "https://evil.example/cb"
        ]),
        json!(["https://evil.example/cb", "https://app.example/cb2"]),
        json!("https://app.example/cb"),
        json!([1, 2]),
    ] {
        let statement = keys.sign(&claims(json!({"redirect_uris": uris}))).unwrap();
        let message = refused(vet(&trust, &statement).await, "contradicts_document");
        assert_eq!(
            message,
            "software_statement: its redirect_uris disagree with the document's"
        );
    }
    // jwks_uri: stated by the statement but not the document's.
    let statement = keys
        .sign(&claims(
            json!({"jwks_uri": "https://evil.example/jwks.json"}),
        ))
        .unwrap();
    refused(vet(&trust, &statement).await, "contradicts_document");
    let with_keys = document(
        Some(
            &keys
                .sign(&claims(
                    json!({"jwks_uri": "https://evil.example/jwks.json"}),
                ))
                .unwrap(),
        ),
        json!({"jwks_uri": "https://app.example/jwks.json"}),
    );
    refused(
        trust.vet(&id(CLIENT), with_keys).await,
        "contradicts_document",
    );
}

#[tokio::test]
async fn required_claims_must_be_present_with_their_value() {
    let keys = registry_keys();
    let mut strict = issuer(REGISTRY, &keys);
    strict
        .required_claims
        .insert("tier".to_owned(), "verified".to_owned());
    let trust = trust_of(vec![strict]);
    for changes in [
        json!({}),
        json!({"tier": "basic"}),
        json!({"tier": ["verified"]}),
    ] {
        let statement = keys.sign(&claims(changes)).unwrap();
        let message = refused(vet(&trust, &statement).await, "required_claim");
        assert!(message.contains("\"tier\""), "{message}");
    }
    let statement = keys.sign(&claims(json!({"tier": "verified"}))).unwrap();
    vet(&trust, &statement)
        .await
        .expect("required claim present");
}

#[tokio::test]
async fn claims_that_would_break_the_document_are_refused() {
    let keys = registry_keys();
    let trust = trust_of(vec![issuer(REGISTRY, &keys)]);
    let statement = keys
        .sign(&claims(
            json!({"logo_uri": "http://registry.example/logo.png"}),
        ))
        .unwrap();
    let message = refused(vet(&trust, &statement).await, "invalid_effective_document");
    assert!(message.contains("logo_uri"), "{message}");
}

#[tokio::test]
async fn malformed_and_oversized_statements_are_refused() {
    let keys = registry_keys();
    let trust = trust_of(vec![issuer(REGISTRY, &keys)]);
    refused(vet(&trust, "not-a-jwt").await, "malformed");
    let big = "a".repeat(MAX_STATEMENT_BYTES + 1);
    refused(vet(&trust, &big).await, "too_large");
    // A header with crit is not understood, so it is refused.
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(keys.kid().to_owned());
    header.crit = Some(vec!["exp".to_owned()]);
    let token = format!(
        "{}.{}.sig",
        b64(serde_json::to_string(&header).unwrap().as_bytes()),
        b64(claims(json!({})).to_string().as_bytes())
    );
    refused(vet(&trust, &token).await, "malformed");
}

#[tokio::test]
async fn messages_never_carry_the_statement() {
    let keys = registry_keys();
    let trust = trust_of(vec![issuer(REGISTRY, &keys)]);
    let statement = registry_keys().sign(&claims(json!({}))).unwrap();
    let error = vet(&trust, &statement).await.unwrap_err();
    let signature = statement.rsplit('.').next().unwrap();
    assert!(!error.to_string().contains(signature));
    assert!(!format!("{error:?}").contains(signature));
}

#[tokio::test]
async fn a_reload_puts_the_new_issuers_in_force() {
    let keys = registry_keys();
    let trust = trust_of(vec![issuer(REGISTRY, &keys)]);
    let statement = keys.sign(&claims(json!({}))).unwrap();
    vet(&trust, &statement).await.expect("trusted");
    let renamed = trust
        .reconfigured(&TrustConfig {
            issuers: vec![issuer("https://other-registry.example", &keys)],
        })
        .expect("readable key file");
    refused(vet(&renamed, &statement).await, "unknown_issuer");
    let none = trust
        .reconfigured(&TrustConfig::default())
        .expect("no issuers");
    let (_, verdict) = vet(&none, &statement).await.expect("not evaluated");
    assert!(matches!(verdict, Some(Verdict::NotChecked { .. })));
}

#[test]
fn statement_error_labels_are_pinned() {
    // Log fields: the strings are a contract, whether the check is this
    // module's or the shared JWT rules'.
    let jwt = |error| StatementError::from_jwt(error, "registry");
    let labels: Vec<(StatementError, &str)> = vec![
        (StatementError::TooLarge { limit: 1 }, "too_large"),
        (StatementError::Malformed { reason: "x" }, "malformed"),
        (jwt(JwtError::Malformed { reason: "x" }), "malformed"),
        (
            jwt(JwtError::DisallowedAlgorithm { alg: "none".into() }),
            "disallowed_alg",
        ),
        (
            jwt(JwtError::UnsupportedAlgorithm {
                alg: "ES512".into(),
            }),
            "unsupported_alg",
        ),
        (StatementError::MissingIssuer, "missing_iss"),
        (
            StatementError::UnknownIssuer { iss: "x".into() },
            "unknown_issuer",
        ),
        (
            StatementError::AlgorithmNotAllowed {
                alg: "RS256",
                issuer: "x".into(),
            },
            "alg_not_allowed",
        ),
        (jwt(JwtError::UnknownKey), "unknown_key"),
        (jwt(JwtError::AmbiguousKey), "ambiguous_key"),
        (
            jwt(JwtError::UnsuitableKey { reason: "x" }),
            "unsuitable_key",
        ),
        (jwt(JwtError::BadSignature), "bad_signature"),
        (StatementError::Expired, "expired"),
        (StatementError::NotYetValid, "not_yet_valid"),
        (StatementError::IssuedInFuture, "iat_in_future"),
        (StatementError::NamesNoClient, "names_no_client"),
        (
            StatementError::OtherClient { named: "x".into() },
            "other_client",
        ),
        (
            StatementError::Contradicts { claim: "jwks" },
            "contradicts_document",
        ),
        (
            StatementError::RequiredClaim {
                claim: "tier".into(),
                issuer: "x".into(),
            },
            "required_claim",
        ),
        (
            jwt(JwtError::JwksFetch(crate::egress::FetchError::Overloaded {
                limit: 1,
            })),
            "keys_unavailable",
        ),
        (
            jwt(JwtError::InvalidJwks { reason: "x" }),
            "invalid_key_set",
        ),
    ];
    for (error, label) in labels {
        assert_eq!(error.as_str(), label, "{error}");
    }
}

/// The issuer's `jwks_file` is read when `Trust` is built (and again on a
/// reload), not when the configuration is validated: a bad one refuses the
/// build, naming the issuer and the file, never the file's contents.
#[test]
fn a_jwks_file_is_read_when_trust_is_built() {
    let keys = registry_keys();
    let mut leaked = keys.jwks();
    leaked["keys"][0]["d"] = "c2VjcmV0".into();
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("leaked.json");
    std::fs::write(&path, leaked.to_string()).expect("write");
    let config = TrustConfig {
        issuers: vec![IssuerConfig {
            keys: IssuerKeys::File(path.clone()),
            ..issuer(REGISTRY, &keys)
        }],
    };
    let egress = Arc::new(Egress::new(&FetchConfig::default(), Vec::new()).expect("egress"));
    let error = Trust::new(&config, Arc::clone(&egress)).expect_err("private key material");
    let text = error.to_string();
    assert!(text.contains(REGISTRY), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(!text.contains("c2VjcmV0"), "{text}");
    let good = trust_of(vec![issuer(REGISTRY, &keys)]);
    assert!(good.reconfigured(&config).is_err(), "a reload reads it too");
}

// ---------------------------------------------------------------------------
// Registrations (/register)
// ---------------------------------------------------------------------------

fn registration(statement: Option<&str>) -> ClientMetadata {
    let mut body = json!({
        "client_name": "Self-declared Agent",
        "redirect_uris": ["https://agent.example/cb"],
    });
    if let Some(statement) = statement {
        body["software_statement"] = statement.into();
    }
    metadata::validate_registration(body.to_string().as_bytes()).expect("valid registration")
}

#[tokio::test]
async fn a_registration_statement_vouches_without_naming_a_client_id() {
    let keys = registry_keys();
    let trust = trust_of(vec![issuer(REGISTRY, &keys)]);
    let statement = keys
        .sign(&claims(
            json!({"client_id": null, "software_id": "agent-1"}),
        ))
        .unwrap();
    let (issuer_name, overrides) = trust
        .vet_registration(&registration(Some(&statement)))
        .await
        .expect("verifies")
        .expect("vouched");
    assert_eq!(issuer_name, REGISTRY);
    assert_eq!(overrides["client_name"], "Vouched App");
    assert_eq!(overrides["software_id"], "agent-1");
    for claim in ["iss", "iat", "exp"] {
        assert!(!overrides.contains_key(claim), "{claim}");
    }
    // No statement, or no issuers configured: nothing to judge.
    assert!(
        trust
            .vet_registration(&registration(None))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        trust_of(Vec::new())
            .vet_registration(&registration(Some(&statement)))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_registration_statement_is_held_to_its_signature_and_the_request() {
    let keys = registry_keys();
    let trust = trust_of(vec![issuer(REGISTRY, &keys)]);
    let stranger = registry_keys().sign(&claims(json!({}))).unwrap();
    let error = trust
        .vet_registration(&registration(Some(&stranger)))
        .await
        .unwrap_err();
    assert_eq!(error.as_str(), "unknown_key", "{error}");
    let other_redirects = keys
        .sign(&claims(
            json!({"redirect_uris": ["https://evil.example/cb"]}),
        ))
        .unwrap();
    let error = trust
        .vet_registration(&registration(Some(&other_redirects)))
        .await
        .unwrap_err();
    assert_eq!(error.as_str(), "contradicts_document", "{error}");
    let expired = keys
        .sign(&claims(json!({"exp": NOW - 3600, "iat": NOW - 7200})))
        .unwrap();
    let error = trust
        .vet_registration(&registration(Some(&expired)))
        .await
        .unwrap_err();
    assert_eq!(error.as_str(), "expired", "{error}");
}
