//! Unit tests: keys generated here, documents with inline `jwks`, a fake clock.
//! The `jwks_uri` path (fetch, refetch, rate limit, refused addresses) is
//! covered against real origins in tests/integration/client_auth.rs.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

use super::*;
use crate::client_id::ClientIdUrl;
use crate::egress::FetchConfig;
use crate::metadata;
use crate::store::MemoryStore;

const CLIENT: &str = "https://app.example/client.json";
const OTHER_CLIENT: &str = "https://other.example/client.json";
const ISSUER: &str = "https://proxy.example";
const TOKEN_ENDPOINT: &str = "https://proxy.example/token";
/// A fixed "now" for the fake clock.
const NOW: i64 = 1_800_000_000;

/// A signing key and its public JWK.
struct TestKey {
    encoding: EncodingKey,
    jwk: Value,
    alg: Algorithm,
}

impl TestKey {
    fn with_kid(mut self, kid: &str) -> Self {
        self.jwk["kid"] = kid.into();
        self
    }

    fn with_member(mut self, name: &str, value: Value) -> Self {
        self.jwk[name] = value;
        self
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// One RSA key per bit size per test binary: generation is slow in debug builds.
fn rsa_private(bits: usize) -> &'static rsa::RsaPrivateKey {
    static RSA_2048: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    static RSA_1024: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    let cell = if bits == 2048 { &RSA_2048 } else { &RSA_1024 };
    cell.get_or_init(|| {
        rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits).expect("generate RSA key")
    })
}

fn rsa_key_bits(bits: usize, alg: Algorithm) -> TestKey {
    let private = rsa_private(bits);
    let der = private.to_pkcs1_der().expect("PKCS#1 DER");
    TestKey {
        encoding: EncodingKey::from_rsa_der(der.as_bytes()),
        jwk: json!({
            "kty": "RSA",
            "n": b64(&private.n().to_bytes_be()),
            "e": b64(&private.e().to_bytes_be()),
        }),
        alg,
    }
}

fn rsa_key() -> TestKey {
    rsa_key_bits(2048, Algorithm::RS256)
}

fn ec_key() -> TestKey {
    let pair = rcgen::KeyPair::generate().expect("generate P-256 key");
    let point = pair.public_key_raw();
    assert_eq!(point.len(), 65, "uncompressed P-256 point");
    TestKey {
        encoding: EncodingKey::from_ec_der(&pair.serialize_der()),
        jwk: json!({
            "kty": "EC",
            "crv": "P-256",
            "x": b64(&point[1..33]),
            "y": b64(&point[33..]),
        }),
        alg: Algorithm::ES256,
    }
}

fn ed_key() -> TestKey {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("generate Ed25519 key");
    TestKey {
        encoding: EncodingKey::from_ed_der(&pair.serialize_der()),
        jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key_raw())}),
        alg: Algorithm::EdDSA,
    }
}

/// A document for `client_id` with `jwks` inline and `extra` members merged in.
fn document_for(client_id: &str, keys: &[&TestKey], extra: Value) -> ClientMetadata {
    let mut doc = json!({
        "client_id": client_id,
        "redirect_uris": ["https://app.example/cb"],
        "token_endpoint_auth_method": "private_key_jwt",
    });
    if !keys.is_empty() {
        doc["jwks"] = json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()});
    }
    if let (Value::Object(doc), Value::Object(extra)) = (&mut doc, extra) {
        for (name, value) in extra {
            if value.is_null() {
                doc.remove(&name);
            } else {
                doc.insert(name, value);
            }
        }
    }
    let id = ClientIdUrl::parse(client_id).expect("client_id");
    metadata::validate(&id, doc.to_string().as_bytes()).expect("valid test document")
}

fn document(keys: &[&TestKey]) -> ClientMetadata {
    document_for(CLIENT, keys, json!({}))
}

fn id(client_id: &str) -> ClientIdUrl {
    ClientIdUrl::parse(client_id).expect("client_id")
}

/// A fresh jti per call, so tests never replay by accident.
fn fresh_jti() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("jti-{}", NEXT.fetch_add(1, Ordering::SeqCst))
}

/// Valid claims for `CLIENT` at `NOW`.
fn claims() -> Value {
    json!({
        "iss": CLIENT,
        "sub": CLIENT,
        "aud": TOKEN_ENDPOINT,
        "iat": NOW,
        "exp": NOW + 120,
        "jti": fresh_jti(),
    })
}

/// `claims()` with `changes` applied; a null value removes the claim.
fn claims_with(changes: Value) -> Value {
    let mut claims = claims();
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

fn sign_header(header: &Header, key: &TestKey, claims: &Value) -> String {
    jsonwebtoken::encode(header, claims, &key.encoding).expect("sign")
}

/// Signs with the key's algorithm and its kid, if it has one.
fn sign(key: &TestKey, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = key.jwk["kid"].as_str().map(str::to_owned);
    sign_header(&header, key, claims)
}

/// A token with an arbitrary header and no valid signature.
fn unsigned(header: Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

fn with_assertion(assertion: &str) -> TokenClientAuth {
    TokenClientAuth {
        client_id: None,
        client_assertion_type: Some(JWT_BEARER.to_owned()),
        client_assertion: Some(assertion.to_owned()),
        has_client_secret: false,
    }
}

/// An authenticator over a fake clock set to `NOW`, and the clock.
fn authenticator(limits: ClientAuthLimits) -> (ClientAuthenticator, Arc<AtomicI64>) {
    authenticator_holding(limits, 100_000)
}

/// The same, over a memory store holding at most `max_entries` `jti`s.
fn authenticator_holding(
    limits: ClientAuthLimits,
    max_entries: usize,
) -> (ClientAuthenticator, Arc<AtomicI64>) {
    let config = FetchConfig {
        // Never queried: inline keys need no fetch.
        dns_servers: vec!["127.0.0.1:9".parse().expect("socket address")],
        ..FetchConfig::default()
    };
    let egress = Arc::new(Egress::new(&config, Vec::new()).expect("egress"));
    let now = Arc::new(AtomicI64::new(NOW));
    let clock = Arc::clone(&now);
    let auth = ClientAuthenticator::with_clock(
        egress,
        vec![ISSUER.to_owned(), TOKEN_ENDPOINT.to_owned()],
        limits,
        Arc::new(Store::Memory(MemoryStore::new(max_entries))),
        Arc::new(move || clock.load(Ordering::SeqCst)),
    );
    (auth, now)
}

/// `jti`s spent so far.
fn replay_entries(auth: &ClientAuthenticator) -> usize {
    match auth.store.as_ref() {
        Store::Memory(memory) => memory.single_use_len(),
        Store::Redis(_) => unreachable!("these tests use the memory backend"),
    }
}

fn default_authenticator() -> ClientAuthenticator {
    authenticator(ClientAuthLimits::default()).0
}

async fn check(
    auth: &ClientAuthenticator,
    doc: &ClientMetadata,
    params: &TokenClientAuth,
) -> Result<(), ClientAuthError> {
    auth.authenticate(id(&doc.client_id).as_str(), doc, params)
        .await
}

/// Asserts the refusal is `expected` (by label) and is an `invalid_client` 401.
#[track_caller]
fn assert_invalid_client(result: Result<(), ClientAuthError>, expected: &str) {
    match result {
        Ok(()) => panic!("accepted; expected {expected}"),
        Err(error) => {
            assert_eq!(error.as_str(), expected, "{error}");
            assert_eq!(error.oauth_error().as_str(), "invalid_client", "{error}");
            assert_eq!(error.http_status(), 401, "{error}");
        }
    }
}

// ---------------------------------------------------------------------------
// Accepted assertions
// ---------------------------------------------------------------------------

#[tokio::test]
async fn valid_rs256_assertion_is_accepted() {
    let auth = default_authenticator();
    let key = rsa_key().with_kid("rsa-1");
    let doc = document(&[&key]);
    check(&auth, &doc, &with_assertion(&sign(&key, &claims())))
        .await
        .expect("valid RS256 assertion");
}

#[tokio::test]
async fn valid_es256_assertion_is_accepted() {
    let auth = default_authenticator();
    let key = ec_key().with_kid("ec-1");
    let doc = document(&[&key]);
    check(&auth, &doc, &with_assertion(&sign(&key, &claims())))
        .await
        .expect("valid ES256 assertion");
}

#[tokio::test]
async fn valid_ps256_and_eddsa_assertions_are_accepted() {
    let auth = default_authenticator();
    let ps = rsa_key_bits(2048, Algorithm::PS256).with_kid("ps");
    let ed = ed_key().with_kid("ed");
    let doc = document(&[&ps, &ed]);
    for key in [&ps, &ed] {
        check(&auth, &doc, &with_assertion(&sign(key, &claims())))
            .await
            .unwrap_or_else(|e| panic!("{:?}: {e}", key.alg));
    }
}

#[tokio::test]
async fn without_kid_the_single_fitting_key_is_used() {
    let auth = default_authenticator();
    // One RSA and one EC key: an ES256 assertion without kid can only mean the EC key.
    let rsa = rsa_key();
    let ec = ec_key();
    let doc = document(&[&rsa, &ec]);
    check(&auth, &doc, &with_assertion(&sign(&ec, &claims())))
        .await
        .expect("the one EC key");
}

#[tokio::test]
async fn aud_may_be_the_issuer_or_an_array_holding_the_token_endpoint() {
    let auth = default_authenticator();
    let key = ec_key().with_kid("k");
    let doc = document(&[&key]);
    for aud in [
        json!(ISSUER),
        json!(["https://someone-else.example", TOKEN_ENDPOINT]),
    ] {
        let assertion = sign(&key, &claims_with(json!({ "aud": aud })));
        check(&auth, &doc, &with_assertion(&assertion))
            .await
            .unwrap_or_else(|e| panic!("aud {aud}: {e}"));
    }
}

#[tokio::test]
async fn times_within_the_clock_skew_are_accepted() {
    let auth = default_authenticator();
    let key = ec_key().with_kid("k");
    let doc = document(&[&key]);
    for changes in [
        json!({"exp": NOW - 59}),
        json!({"exp": NOW + 300 + 59}),
        json!({"iat": NOW + 59, "nbf": NOW + 59}),
        json!({"exp": (NOW + 100) as f64 + 0.5}),
    ] {
        let assertion = sign(&key, &claims_with(changes.clone()));
        check(&auth, &doc, &with_assertion(&assertion))
            .await
            .unwrap_or_else(|e| panic!("{changes}: {e}"));
    }
}

#[tokio::test]
async fn the_client_id_parameter_may_accompany_the_assertion() {
    let auth = default_authenticator();
    let key = ec_key().with_kid("k");
    let doc = document(&[&key]);
    let mut params = with_assertion(&sign(&key, &claims()));
    params.client_id = Some(CLIENT.to_owned());
    check(&auth, &doc, &params)
        .await
        .expect("agreeing client_id");
}

// ---------------------------------------------------------------------------
// Replay
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_replayed_jti_is_refused() {
    let auth = default_authenticator();
    let key = ec_key().with_kid("k");
    let doc = document(&[&key]);
    let assertion = sign(&key, &claims());
    check(&auth, &doc, &with_assertion(&assertion))
        .await
        .expect("first use");
    assert_invalid_client(
        check(&auth, &doc, &with_assertion(&assertion)).await,
        "replayed",
    );
    // A different assertion reusing the jti is refused too: the jti is the key.
    let mut reused = claims();
    reused["jti"] = serde_json::from_str::<Value>(
        &String::from_utf8(
            URL_SAFE_NO_PAD
                .decode(assertion.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap(),
    )
    .unwrap()["jti"]
        .clone();
    reused["exp"] = json!(NOW + 200);
    assert_invalid_client(
        check(&auth, &doc, &with_assertion(&sign(&key, &reused))).await,
        "replayed",
    );
}

#[tokio::test]
async fn the_same_jti_from_two_clients_is_two_entries() {
    let auth = default_authenticator();
    let key = ec_key().with_kid("k");
    let doc = document(&[&key]);
    let other = document_for(OTHER_CLIENT, &[&key], json!({}));
    let shared = json!({"jti": "shared"});
    check(
        &auth,
        &doc,
        &with_assertion(&sign(&key, &claims_with(shared.clone()))),
    )
    .await
    .expect("first client");
    let mut claims = claims_with(shared);
    claims["iss"] = OTHER_CLIENT.into();
    claims["sub"] = OTHER_CLIENT.into();
    check(&auth, &other, &with_assertion(&sign(&key, &claims)))
        .await
        .expect("second client, same jti");
}

#[tokio::test]
async fn a_refused_assertion_does_not_spend_its_jti() {
    let auth = default_authenticator();
    let key = ec_key().with_kid("k");
    let doc = document(&[&key]);
    let claims = claims_with(json!({"aud": "https://elsewhere.example"}));
    assert_invalid_client(
        check(&auth, &doc, &with_assertion(&sign(&key, &claims))).await,
        "wrong_aud",
    );
    assert_eq!(replay_entries(&auth), 0);
}

#[tokio::test]
async fn a_full_replay_store_refuses_with_temporarily_unavailable() {
    let (auth, _clock) = authenticator_holding(ClientAuthLimits::default(), 1);
    let key = ec_key().with_kid("k");
    let doc = document(&[&key]);
    check(
        &auth,
        &doc,
        &with_assertion(&sign(&key, &claims_with(json!({"exp": NOW + 10})))),
    )
    .await
    .expect("first assertion fills the store");
    // An unexpired jti is never forgotten to make room.
    let second = claims_with(json!({"exp": NOW + 200}));
    let error = check(&auth, &doc, &with_assertion(&sign(&key, &second)))
        .await
        .expect_err("store is full");
    assert_eq!(error.as_str(), "replay_store_full");
    assert_eq!(error.oauth_error().as_str(), "temporarily_unavailable");
    assert_eq!(error.http_status(), 503);
    assert_eq!(replay_entries(&auth), 1);
}

#[test]
fn replay_keys_separate_clients_and_do_not_grow_with_the_jti() {
    assert_ne!(
        replay_key("https://a/x", "y"),
        replay_key("https://a/", "xy")
    );
    assert_eq!(replay_key("c", "j"), replay_key("c", "j"));
    assert_eq!(replay_key("c", &"j".repeat(8000)).len(), 32);
}

// ---------------------------------------------------------------------------
// Claims
// ---------------------------------------------------------------------------

#[tokio::test]
async fn wrong_claims_are_refused() {
    let auth = default_authenticator();
    let key = ec_key().with_kid("k");
    let doc = document(&[&key]);
    for (changes, expected) in [
        (json!({"iss": OTHER_CLIENT}), "wrong_iss"),
        (json!({"iss": [CLIENT]}), "wrong_iss"),
        (json!({"iss": null}), "missing_claim"),
        (json!({"sub": OTHER_CLIENT}), "wrong_sub"),
        (json!({"sub": null}), "missing_claim"),
        (
            json!({"aud": "https://elsewhere.example/token"}),
            "wrong_aud",
        ),
        (json!({"aud": ["https://elsewhere.example"]}), "wrong_aud"),
        (json!({"aud": null}), "missing_claim"),
        (json!({"exp": null}), "missing_claim"),
        (json!({"exp": NOW - 61}), "expired"),
        (json!({"exp": NOW + 300 + 61}), "exp_too_far"),
        (json!({"exp": "soon"}), "missing_claim"),
        (json!({"iat": NOW + 61}), "iat_in_future"),
        (json!({"nbf": NOW + 61}), "nbf_in_future"),
        (json!({"iat": "now"}), "malformed_assertion"),
        (json!({"jti": null}), "missing_jti"),
        (json!({"jti": ""}), "missing_jti"),
        (json!({"jti": 42}), "missing_jti"),
    ] {
        let assertion = sign(&key, &claims_with(changes.clone()));
        let result = check(&auth, &doc, &with_assertion(&assertion)).await;
        let error = result.expect_err(&format!("{changes} must be refused"));
        assert_eq!(error.as_str(), expected, "{changes}: {error}");
        assert_eq!(error.oauth_error().as_str(), "invalid_client");
    }
    assert_eq!(replay_entries(&auth), 0);
}

#[tokio::test]
async fn an_iss_or_sub_naming_another_client_is_refused_even_when_the_other_agrees() {
    // Both iss and sub name another client the same key could speak for.
    let auth = default_authenticator();
    let key = ec_key().with_kid("k");
    let doc = document(&[&key]);
    let claims = claims_with(json!({"iss": OTHER_CLIENT, "sub": OTHER_CLIENT}));
    assert!(
        check(&auth, &doc, &with_assertion(&sign(&key, &claims)))
            .await
            .is_err()
    );
}

// ---------------------------------------------------------------------------
// Algorithms and keys
// ---------------------------------------------------------------------------

#[tokio::test]
async fn alg_none_is_refused() {
    let auth = default_authenticator();
    let key = ec_key().with_kid("k");
    let doc = document(&[&key]);
    for header in [
        json!({"alg": "none", "typ": "JWT"}),
        json!({"alg": "none", "kid": "k"}),
        json!({"alg": "None"}),
    ] {
        let assertion = unsigned(header.clone(), &claims(), "");
        assert_invalid_client(
            check(&auth, &doc, &with_assertion(&assertion)).await,
            "disallowed_alg",
        );
    }
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    let auth = default_authenticator();
    let key = rsa_key().with_kid("rsa-1");
    let doc = document(&[&key]);
    // The classic confusion attack: the public key, in every form a
    // verifier might hand to HMAC, used as the shared secret.
    let private = rsa_private(2048);
    let secrets: Vec<Vec<u8>> = vec![
        key.jwk.to_string().into_bytes(),
        private.n().to_bytes_be(),
        rsa::pkcs1::EncodeRsaPublicKey::to_pkcs1_der(&private.to_public_key())
            .unwrap()
            .as_bytes()
            .to_vec(),
    ];
    for secret in secrets {
        let forged = EncodingKey::from_secret(&secret);
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("rsa-1".to_owned());
        let assertion = jsonwebtoken::encode(&header, &claims(), &forged).unwrap();
        assert_invalid_client(
            check(&auth, &doc, &with_assertion(&assertion)).await,
            "disallowed_alg",
        );
    }
}

#[tokio::test]
async fn an_alg_other_than_the_documents_signing_alg_is_refused() {
    let auth = default_authenticator();
    let rsa = rsa_key().with_kid("rsa");
    let ec = ec_key().with_kid("ec");
    let doc = document_for(
        CLIENT,
        &[&rsa, &ec],
        json!({"token_endpoint_auth_signing_alg": "ES256"}),
    );
    let error = check(&auth, &doc, &with_assertion(&sign(&rsa, &claims())))
        .await
        .expect_err("RS256 where ES256 is named");
    assert_eq!(error.as_str(), "alg_not_allowed");
    assert!(error.description().contains("ES256"));
    check(&auth, &doc, &with_assertion(&sign(&ec, &claims())))
        .await
        .expect("ES256 as named");
}

#[tokio::test]
async fn an_unsupported_alg_is_named_and_refused() {
    let auth = default_authenticator();
    let key = ec_key().with_kid("k");
    let doc = document(&[&key]);
    let assertion = unsigned(json!({"alg": "ES512", "kid": "k"}), &claims(), "AAAA");
    let error = check(&auth, &doc, &with_assertion(&assertion))
        .await
        .expect_err("ES512");
    assert_eq!(error.as_str(), "unsupported_alg");
    assert!(error.description().contains("ES512"));
}

#[tokio::test]
async fn an_unknown_kid_is_refused() {
    let auth = default_authenticator();
    let key = ec_key().with_kid("k1");
    let doc = document(&[&key]);
    let stranger = ec_key().with_kid("k2");
    assert_invalid_client(
        check(&auth, &doc, &with_assertion(&sign(&stranger, &claims()))).await,
        "unknown_key",
    );
}

#[tokio::test]
async fn a_signature_by_another_key_under_a_known_kid_is_refused() {
    let auth = default_authenticator();
    let key = ec_key().with_kid("k");
    let doc = document(&[&key]);
    let impostor = ec_key().with_kid("k");
    assert_invalid_client(
        check(&auth, &doc, &with_assertion(&sign(&impostor, &claims()))).await,
        "bad_signature",
    );
    // A token whose signature was cut off is no better.
    let genuine = sign(&key, &claims());
    let (signed, _) = genuine.rsplit_once('.').unwrap();
    assert_invalid_client(
        check(&auth, &doc, &with_assertion(&format!("{signed}."))).await,
        "bad_signature",
    );
}

#[tokio::test]
async fn keys_that_do_not_fit_the_alg_are_refused() {
    let auth = default_authenticator();
    let rsa = rsa_key().with_kid("rsa");
    let pinned = rsa_key()
        .with_kid("pinned")
        .with_member("alg", json!("RS384"));
    let enc = rsa_key().with_kid("enc").with_member("use", json!("enc"));
    let wrapping = rsa_key()
        .with_kid("wrap")
        .with_member("key_ops", json!(["wrapKey"]));
    let short = rsa_key_bits(1024, Algorithm::RS256).with_kid("short");
    let doc = document(&[&rsa, &pinned, &enc, &wrapping, &short]);
    // An ES256 assertion pointing at the RSA key.
    let ec = ec_key().with_kid("rsa");
    for (assertion, what) in [
        (sign(&ec, &claims()), "EC alg, RSA key"),
        (sign(&pinned, &claims()), "key alg RS384, header RS256"),
        (sign(&enc, &claims()), "use enc"),
        (sign(&wrapping, &claims()), "key_ops without verify"),
        (sign(&short, &claims()), "1024-bit RSA"),
    ] {
        let error = check(&auth, &doc, &with_assertion(&assertion))
            .await
            .expect_err(what);
        assert_eq!(error.as_str(), "unsuitable_key", "{what}: {error}");
    }
}

#[tokio::test]
async fn several_fitting_keys_without_a_kid_are_ambiguous() {
    let auth = default_authenticator();
    let first = ec_key();
    let second = ec_key();
    let doc = document(&[&first, &second]);
    assert_invalid_client(
        check(&auth, &doc, &with_assertion(&sign(&first, &claims()))).await,
        "ambiguous_key",
    );
    // No key of the assertion's type at all, and no kid to look for.
    let rsa_only = document(&[&rsa_key()]);
    assert_invalid_client(
        check(&auth, &rsa_only, &with_assertion(&sign(&first, &claims()))).await,
        "unknown_key",
    );
}

/// One rule with the provider's id_tokens: two different keys that fit
/// under one kid are refused, whatever their order; the same key twice is
/// one key.
#[tokio::test]
async fn two_different_keys_under_one_kid_are_ambiguous() {
    let auth = default_authenticator();
    let signer = ec_key().with_kid("k");
    let other = ec_key().with_kid("k");
    for doc in [document(&[&signer, &other]), document(&[&other, &signer])] {
        assert_invalid_client(
            check(&auth, &doc, &with_assertion(&sign(&signer, &claims()))).await,
            "ambiguous_key",
        );
    }
    let twice = document(&[&signer, &signer]);
    check(&auth, &twice, &with_assertion(&sign(&signer, &claims())))
        .await
        .expect("the same key listed twice");
}

#[tokio::test]
async fn header_keys_and_critical_extensions_are_not_honoured() {
    let auth = default_authenticator();
    let key = ec_key().with_kid("k");
    let doc = document(&[&key]);
    // The attacker's own key embedded in the header is never used.
    let attacker = ec_key();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("attacker".to_owned());
    header.jwk = Some(serde_json::from_value(attacker.jwk.clone()).unwrap());
    assert_invalid_client(
        check(
            &auth,
            &doc,
            &with_assertion(&sign_header(&header, &attacker, &claims())),
        )
        .await,
        "unknown_key",
    );
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("k".to_owned());
    header.crit = Some(vec!["exp".to_owned()]);
    assert_invalid_client(
        check(
            &auth,
            &doc,
            &with_assertion(&sign_header(&header, &key, &claims())),
        )
        .await,
        "malformed_assertion",
    );
}

#[tokio::test]
async fn malformed_and_oversized_assertions_are_refused() {
    let auth = default_authenticator();
    let key = ec_key().with_kid("k");
    let doc = document(&[&key]);
    for garbage in ["", "abc", "a.b.c", "..", "eyJhbGciOiJFUzI1NiJ9.%%%.sig"] {
        let error = check(&auth, &doc, &with_assertion(garbage))
            .await
            .expect_err(garbage);
        assert_eq!(error.oauth_error().as_str(), "invalid_client", "{garbage}");
    }
    let huge = "a".repeat(MAX_ASSERTION_BYTES + 1);
    assert_invalid_client(
        check(&auth, &doc, &with_assertion(&huge)).await,
        "assertion_too_large",
    );
}

// ---------------------------------------------------------------------------
// Methods, parameters and the claimed client
// ---------------------------------------------------------------------------

#[tokio::test]
async fn private_key_jwt_requires_an_assertion() {
    let auth = default_authenticator();
    let key = ec_key().with_kid("k");
    let doc = document(&[&key]);
    let params = TokenClientAuth {
        client_id: Some(CLIENT.to_owned()),
        ..TokenClientAuth::default()
    };
    assert_invalid_client(check(&auth, &doc, &params).await, "assertion_missing");
}

#[tokio::test]
async fn a_public_client_needs_nothing_and_may_send_no_secret() {
    let auth = default_authenticator();
    let doc = document_for(CLIENT, &[], json!({"token_endpoint_auth_method": "none"}));
    let mut params = TokenClientAuth {
        client_id: Some(CLIENT.to_owned()),
        ..TokenClientAuth::default()
    };
    check(&auth, &doc, &params).await.expect("public client");
    params.has_client_secret = true;
    assert_invalid_client(check(&auth, &doc, &params).await, "secret_not_allowed");
}

#[tokio::test]
async fn a_secret_is_refused_from_a_private_key_jwt_client_too() {
    let auth = default_authenticator();
    let key = ec_key().with_kid("k");
    let doc = document(&[&key]);
    let mut params = with_assertion(&sign(&key, &claims()));
    params.has_client_secret = true;
    assert_invalid_client(check(&auth, &doc, &params).await, "secret_not_allowed");
}

#[tokio::test]
async fn a_public_client_that_sends_an_assertion_is_held_to_it() {
    let auth = default_authenticator();
    let key = ec_key().with_kid("k");
    let with_keys = document_for(
        CLIENT,
        &[&key],
        json!({"token_endpoint_auth_method": "none"}),
    );
    assert_eq!(with_keys.token_endpoint_auth_method, AuthMethod::None);
    check(&auth, &with_keys, &with_assertion(&sign(&key, &claims())))
        .await
        .expect("valid assertion from a public client with keys");
    let expired = sign(&key, &claims_with(json!({"exp": NOW - 3600})));
    assert_invalid_client(
        check(&auth, &with_keys, &with_assertion(&expired)).await,
        "expired",
    );
    let without_keys = document_for(CLIENT, &[], json!({"token_endpoint_auth_method": "none"}));
    assert_invalid_client(
        check(
            &auth,
            &without_keys,
            &with_assertion(&sign(&key, &claims())),
        )
        .await,
        "no_keys",
    );
}

#[tokio::test]
async fn assertion_types_other_than_jwt_bearer_are_refused() {
    let auth = default_authenticator();
    let key = ec_key().with_kid("k");
    let doc = document(&[&key]);
    let assertion = sign(&key, &claims());
    let mut wrong = with_assertion(&assertion);
    wrong.client_assertion_type =
        Some("urn:ietf:params:oauth:client-assertion-type:saml2-bearer".to_owned());
    assert_invalid_client(
        check(&auth, &doc, &wrong).await,
        "unsupported_assertion_type",
    );
    assert_eq!(
        ClientAuthenticator::claimed_client_id(&wrong)
            .unwrap_err()
            .as_str(),
        "unsupported_assertion_type"
    );
    let mut untyped = with_assertion(&assertion);
    untyped.client_assertion_type = None;
    assert_invalid_client(check(&auth, &doc, &untyped).await, "assertion_type_missing");
    let mut typed_only = with_assertion(&assertion);
    typed_only.client_assertion = None;
    assert_invalid_client(check(&auth, &doc, &typed_only).await, "assertion_missing");
}

#[tokio::test]
async fn a_client_id_parameter_disagreeing_with_the_assertion_is_refused() {
    let auth = default_authenticator();
    let key = ec_key().with_kid("k");
    let doc = document(&[&key]);
    let mut params = with_assertion(&sign(&key, &claims()));
    params.client_id = Some(OTHER_CLIENT.to_owned());
    assert_eq!(
        ClientAuthenticator::claimed_client_id(&params)
            .unwrap_err()
            .as_str(),
        "client_id_mismatch"
    );
    assert_invalid_client(check(&auth, &doc, &params).await, "client_id_mismatch");
    // `https://app.example:443/client.json` is another client (rule 2).
    params.client_id = Some("https://app.example:443/client.json".to_owned());
    assert_invalid_client(check(&auth, &doc, &params).await, "client_id_mismatch");
}

#[tokio::test]
async fn a_document_for_another_client_is_refused() {
    let auth = default_authenticator();
    let key = ec_key().with_kid("k");
    let doc = document(&[&key]);
    let error = auth
        .authenticate(
            id(OTHER_CLIENT).as_str(),
            &doc,
            &with_assertion(&sign(&key, &claims())),
        )
        .await
        .unwrap_err();
    assert_eq!(error.as_str(), "metadata_mismatch");
}

#[test]
fn the_claimed_client_comes_from_the_form_or_the_unverified_assertion() {
    let none = TokenClientAuth::default();
    assert_eq!(ClientAuthenticator::claimed_client_id(&none).unwrap(), None);

    let form_only = TokenClientAuth {
        client_id: Some(CLIENT.to_owned()),
        ..TokenClientAuth::default()
    };
    assert_eq!(
        ClientAuthenticator::claimed_client_id(&form_only).unwrap(),
        Some(CLIENT.to_owned())
    );

    // Not verified: any signature will do for knowing which document to fetch.
    let unverified = unsigned(json!({"alg": "ES256"}), &claims(), "bm90LWEtc2lnbmF0dXJl");
    assert_eq!(
        ClientAuthenticator::claimed_client_id(&with_assertion(&unverified)).unwrap(),
        Some(CLIENT.to_owned())
    );
    let mut both = with_assertion(&unverified);
    both.client_id = Some(CLIENT.to_owned());
    assert_eq!(
        ClientAuthenticator::claimed_client_id(&both).unwrap(),
        Some(CLIENT.to_owned())
    );

    for (changes, expected) in [
        (json!({"iss": OTHER_CLIENT}), "wrong_iss"),
        (json!({"sub": 7}), "wrong_sub"),
        (json!({"sub": null, "iss": null}), "missing_claim"),
    ] {
        let assertion = unsigned(
            json!({"alg": "ES256"}),
            &claims_with(changes.clone()),
            "c2ln",
        );
        assert_eq!(
            ClientAuthenticator::claimed_client_id(&with_assertion(&assertion))
                .unwrap_err()
                .as_str(),
            expected,
            "{changes}"
        );
    }
    let huge = with_assertion(&"a".repeat(MAX_ASSERTION_BYTES + 1));
    assert_eq!(
        ClientAuthenticator::claimed_client_id(&huge)
            .unwrap_err()
            .as_str(),
        "assertion_too_large"
    );
    assert_eq!(
        ClientAuthenticator::claimed_client_id(&with_assertion("not-a-jwt"))
            .unwrap_err()
            .as_str(),
        "malformed_assertion"
    );
}

// ---------------------------------------------------------------------------
// What errors show
// ---------------------------------------------------------------------------

#[tokio::test]
async fn descriptions_and_debug_output_never_contain_the_assertion_or_a_key() {
    let auth = default_authenticator();
    let key = rsa_key().with_kid("rsa-1");
    let doc = document(&[&key]);
    let modulus = key.jwk["n"].as_str().unwrap().to_owned();
    let mut errors = Vec::new();
    for claims in [
        claims_with(json!({"aud": "https://elsewhere.example"})),
        claims_with(json!({"exp": NOW - 999})),
        claims_with(json!({"jti": null})),
    ] {
        let assertion = sign(&key, &claims);
        let params = with_assertion(&assertion);
        let error = check(&auth, &doc, &params).await.unwrap_err();
        let segments: Vec<&str> = assertion.split('.').collect();
        for text in [
            error.description(),
            error.to_string(),
            format!("{params:?}"),
        ] {
            for segment in &segments {
                assert!(!text.contains(segment), "{text}");
            }
            assert!(!text.contains(&modulus[..40]), "{text}");
        }
        errors.push(error);
    }
    assert_eq!(errors.len(), 3);
}

#[test]
fn only_capacity_and_time_limits_are_temporarily_unavailable() {
    let unavailable = [
        ClientAuthError::ReplayStoreFull,
        ClientAuthError::StoreUnavailable,
        ClientAuthError::Jwt(JwtError::JwksFetch(FetchError::Overloaded { limit: 1 })),
        ClientAuthError::Jwt(JwtError::JwksFetch(FetchError::Timeout {
            after: Duration::from_secs(1),
        })),
    ];
    for error in unavailable {
        assert_eq!(
            error.oauth_error().as_str(),
            "temporarily_unavailable",
            "{error}"
        );
        assert_eq!(error.http_status(), 503);
    }
    let refused = [
        ClientAuthError::Jwt(JwtError::JwksFetch(FetchError::PortNotAllowed {
            port: 8443,
        })),
        ClientAuthError::Jwt(JwtError::JwksFetch(FetchError::HttpStatus {
            status: 404,
            location: None,
        })),
        ClientAuthError::Jwt(JwtError::BadSignature),
        ClientAuthError::Replayed,
        ClientAuthError::Jwt(JwtError::InvalidJwks { reason: "x" }),
    ];
    for error in refused {
        assert_eq!(error.oauth_error().as_str(), "invalid_client", "{error}");
        assert_eq!(error.http_status(), 401);
    }
    let fetch = ClientAuthError::Jwt(JwtError::JwksFetch(FetchError::Dns {
        host: "internal.example".to_owned(),
        reason: "resolver detail".to_owned(),
    }));
    assert_eq!(
        fetch.description(),
        "fetching the client's jwks_uri failed (dns_failure)"
    );
}

// ---------------------------------------------------------------------------
// Key sets
// ---------------------------------------------------------------------------

#[test]
fn key_sets_with_private_or_symmetric_material_are_refused_whole() {
    let public = ec_key().jwk;
    for (leak, what) in [
        (
            json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "d": "AA"}),
            "d",
        ),
        (
            json!({"kty": "RSA", "n": "AA", "e": "AQAB", "p": "AA"}),
            "p",
        ),
        (json!({"kty": "oct", "k": "c2VjcmV0"}), "oct"),
    ] {
        let set = json!({"keys": [public.clone(), leak]});
        assert_eq!(
            parse_jwk_set(&set).unwrap_err().as_str(),
            "invalid_jwks",
            "{what}"
        );
    }
    for bad in [json!([]), json!({"keys": {}}), json!({"keys": [1]})] {
        assert!(parse_jwk_set(&bad).is_err(), "{bad}");
    }
    // An unreadable extra key is skipped, not fatal.
    let set = json!({"keys": [public, {"kty": "EC", "kid": 5}]});
    assert_eq!(parse_jwk_set(&set).unwrap().len(), 1);
}

#[test]
fn error_labels_are_pinned() {
    // Log fields and metric labels: the strings are a contract, whether the
    // check is this module's or the shared JWT rules'.
    let fetch = FetchError::Overloaded { limit: 1 };
    for (error, label) in [
        (ClientAuthError::ClientIdMismatch, "client_id_mismatch"),
        (
            ClientAuthError::AssertionTypeMissing,
            "assertion_type_missing",
        ),
        (
            ClientAuthError::UnsupportedAssertionType,
            "unsupported_assertion_type",
        ),
        (ClientAuthError::AssertionMissing, "assertion_missing"),
        (ClientAuthError::SecretNotAllowed, "secret_not_allowed"),
        (ClientAuthError::NoKeys, "no_keys"),
        (
            ClientAuthError::AssertionTooLarge { limit: 1 },
            "assertion_too_large",
        ),
        (
            ClientAuthError::AlgorithmNotAllowed {
                alg: "ES256".into(),
                expected: "RS256".into(),
            },
            "alg_not_allowed",
        ),
        (ClientAuthError::Expired, "expired"),
        (
            ClientAuthError::ExpiresTooLate {
                max: Duration::from_secs(1),
            },
            "exp_too_far",
        ),
        (ClientAuthError::IssuedInFuture, "iat_in_future"),
        (ClientAuthError::NotYetValid, "nbf_in_future"),
        (ClientAuthError::MissingJti, "missing_jti"),
        (ClientAuthError::Replayed, "replayed"),
        (ClientAuthError::ReplayStoreFull, "replay_store_full"),
        (ClientAuthError::StoreUnavailable, "store_unavailable"),
        (ClientAuthError::MetadataMismatch, "metadata_mismatch"),
        (
            JwtError::Malformed { reason: "x" }.into(),
            "malformed_assertion",
        ),
        (
            JwtError::DisallowedAlgorithm { alg: "none".into() }.into(),
            "disallowed_alg",
        ),
        (
            JwtError::UnsupportedAlgorithm {
                alg: "ES512".into(),
            }
            .into(),
            "unsupported_alg",
        ),
        (JwtError::UnknownKey.into(), "unknown_key"),
        (JwtError::AmbiguousKey.into(), "ambiguous_key"),
        (
            JwtError::UnsuitableKey { reason: "x" }.into(),
            "unsuitable_key",
        ),
        (JwtError::BadSignature.into(), "bad_signature"),
        (JwtError::WrongIssuer.into(), "wrong_iss"),
        (JwtError::WrongSubject.into(), "wrong_sub"),
        (JwtError::WrongAudience.into(), "wrong_aud"),
        (
            JwtError::MissingClaim { claim: "exp" }.into(),
            "missing_claim",
        ),
        (JwtError::InvalidJwksUri.into(), "invalid_jwks_uri"),
        (JwtError::JwksFetch(fetch).into(), "jwks_fetch_failed"),
        (JwtError::InvalidJwks { reason: "x" }.into(), "invalid_jwks"),
    ] {
        assert_eq!(error.as_str(), label, "{error}");
    }
}
