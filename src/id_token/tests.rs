//! The PEM files under `testdata/` were made with openssl for these tests
//! only (`openssl genrsa -traditional`, `openssl genpkey`, `openssl ecparam
//! -genkey`); they protect nothing.

use std::io::Write;
use std::time::Duration;

use serde_json::json;

use super::*;
use jsonwebtoken::DecodingKey;

const ISSUER: &str = "https://idp.example";
const CLIENT: &str = "upstream-client";
const NOW: u64 = 1_700_000_000;

const P256_SEC1: &str = include_str!("testdata/p256-sec1.pem");
const P256_PKCS8: &str = include_str!("testdata/p256-pkcs8.pem");
const P384_PKCS8: &str = include_str!("testdata/p384-pkcs8.pem");
const ED25519: &str = include_str!("testdata/ed25519.pem");
const RSA2048_PKCS1: &str = include_str!("testdata/rsa2048-pkcs1.pem");
const RSA2048_PKCS8: &str = include_str!("testdata/rsa2048-pkcs8.pem");
const RSA1024_PKCS8: &str = include_str!("testdata/rsa1024-pkcs8.pem");

/// Writes `pem` to a temporary file, loads it, removes the file.
fn load_pem(pem: &str) -> Result<SigningKeys, SigningSetupError> {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(pem.as_bytes()).unwrap();
    SigningKeys::load(file.path())
}

fn jwk_set(keys: &SigningKeys) -> JwkSet {
    serde_json::from_value(keys.jwks()).unwrap()
}

fn verifier() -> IdTokenVerifier {
    IdTokenVerifier::new(ISSUER.to_owned(), CLIENT.to_owned())
}

fn claims() -> Value {
    json!({
        "iss": ISSUER,
        "sub": "user-1",
        "aud": CLIENT,
        "exp": NOW + 300,
        "iat": NOW,
        "nonce": "n-1",
        "email": "ada@example.com",
    })
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().unwrap().remove(name);
    claims
}

/// A compact JWS from raw parts, for headers jsonwebtoken will not write.
fn raw_jwt(header: &Value, claims: &Value, signature: &[u8]) -> String {
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    )
}

/// Signs with `keys`' newest key under any header.
fn sign_with_header(keys: &SigningKeys, header: &Header, claims: &Value) -> String {
    jsonwebtoken::encode(header, claims, &keys.newest().encoding).unwrap()
}

fn verify(
    keys: &JwkSet,
    token: &str,
    nonce: Option<&str>,
) -> Result<Map<String, Value>, IdTokenError> {
    verifier().verify_at(token, keys, nonce, NOW)
}

// ---- loading ----

#[test]
fn every_supported_pem_form_loads_with_its_algorithm() {
    for (pem, alg) in [
        (P256_SEC1, "ES256"),
        (P256_PKCS8, "ES256"),
        (RSA2048_PKCS1, "RS256"),
        (RSA2048_PKCS8, "RS256"),
    ] {
        let keys = load_pem(pem).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys.alg(), alg);
        let token = keys.sign(&claims()).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(alg_name(header.alg), alg);
    }
}

#[test]
fn the_sec1_file_openssl_writes_has_an_ec_parameters_block_that_is_skipped() {
    assert!(P256_SEC1.contains("EC PARAMETERS"));
    let keys = load_pem(P256_SEC1).unwrap();
    assert_eq!(keys.len(), 1);
}

#[test]
fn unsupported_keys_are_refused_by_block_position() {
    let cases: [(String, usize, &str); 6] = [
        (format!("{P256_PKCS8}{P384_PKCS8}"), 2, "P-256"),
        (ED25519.to_owned(), 1, "unsupported key type"),
        (format!("{RSA2048_PKCS1}{RSA1024_PKCS8}"), 2, "2048"),
        (
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
                .to_owned(),
            1,
            "encrypted",
        ),
        (
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".to_owned(),
            1,
            "public key",
        ),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n".to_owned(),
            1,
            "PKCS#1",
        ),
    ];
    for (pem, position, says) in cases {
        let error = load_pem(&pem).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, SigningSetupError::BadKey { position: p, .. } if p == position),
            "{message}"
        );
        assert!(message.contains(says), "{message}");
        // No line of key material shows up in the message.
        for line in pem.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!message.contains(line), "{message}");
        }
    }
}

#[test]
fn empty_unreadable_non_pem_and_duplicate_files_are_refused() {
    assert!(matches!(
        load_pem("").unwrap_err(),
        SigningSetupError::NoKeys { .. }
    ));
    // Only parameters, no key.
    let params: String = P256_SEC1
        .split_inclusive('\n')
        .take_while(|l| !l.contains("BEGIN EC PRIVATE KEY"))
        .collect();
    assert!(matches!(
        load_pem(&params).unwrap_err(),
        SigningSetupError::NoKeys { .. }
    ));
    assert!(matches!(
        load_pem("-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n").unwrap_err(),
        SigningSetupError::NotPem { .. }
    ));
    assert!(matches!(
        SigningKeys::load(Path::new("/nonexistent/signing.pem")).unwrap_err(),
        SigningSetupError::Unreadable { .. }
    ));
    assert!(matches!(
        load_pem(&format!("{P256_SEC1}{RSA2048_PKCS1}{P256_SEC1}")).unwrap_err(),
        // Block 1 is EC PARAMETERS, 2 the key, 3 the RSA key, 4 parameters again.
        SigningSetupError::DuplicateKey {
            position: 5,
            first: 2,
            ..
        }
    ));
}

#[test]
fn kid_is_the_rfc7638_thumbprint() {
    // Recomputed here from the canonical members, independently of
    // jsonwebtoken's own thumbprint code.
    let thumbprint = |canonical: String| {
        URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            canonical.as_bytes(),
        ))
    };
    let ec = load_pem(P256_PKCS8).unwrap().jwks();
    let ec = &ec["keys"][0];
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        ec["x"].as_str().unwrap(),
        ec["y"].as_str().unwrap()
    );
    assert_eq!(ec["kid"], thumbprint(canonical));

    let rsa = load_pem(RSA2048_PKCS1).unwrap().jwks();
    let rsa = &rsa["keys"][0];
    let canonical = format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        rsa["e"].as_str().unwrap(),
        rsa["n"].as_str().unwrap()
    );
    assert_eq!(rsa["kid"], thumbprint(canonical));
    assert_eq!(rsa["e"], "AQAB");
}

#[test]
fn jwks_publishes_only_public_members() {
    let keys = load_pem(&format!("{P256_SEC1}{RSA2048_PKCS8}")).unwrap();
    let jwks = keys.jwks();
    let published = jwks["keys"].as_array().unwrap();
    assert_eq!(published.len(), 2);
    for jwk in published {
        let members: Vec<&str> = jwk
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let expected: &[&str] = match jwk["kty"].as_str().unwrap() {
            "EC" => &["alg", "crv", "kid", "kty", "use", "x", "y"],
            "RSA" => &["alg", "e", "kid", "kty", "n", "use"],
            other => panic!("unexpected kty {other}"),
        };
        assert_eq!(members, expected);
        assert_eq!(jwk["use"], "sig");
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            assert!(jwk.get(private).is_none(), "{private} published");
        }
    }
    assert_eq!(published[0]["crv"], "P-256");
    assert_eq!(published[0]["alg"], "ES256");
    assert_eq!(published[1]["alg"], "RS256");
    // Nothing private in the debug form either.
    assert!(!format!("{keys:?}").contains("MHcC"));
}

#[test]
fn a_two_key_file_publishes_both_and_signs_with_the_first() {
    for (pem, alg) in [
        (format!("{P256_SEC1}{RSA2048_PKCS1}"), "ES256"),
        (format!("{RSA2048_PKCS1}{P256_SEC1}"), "RS256"),
    ] {
        let keys = load_pem(&pem).unwrap();
        let jwks = keys.jwks();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
        assert_eq!(keys.alg(), alg);
        assert_eq!(keys.algorithms().len(), 2);
        assert_eq!(keys.algorithms()[0], alg);

        let token = keys.sign(&claims()).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), jwks["keys"][0]["kid"].as_str());
        assert_eq!(header.kid.as_deref(), Some(keys.kid()));
    }
}

#[test]
fn ephemeral_keys_are_fresh_p256_keys() {
    let a = SigningKeys::generate_ephemeral().unwrap();
    let b = SigningKeys::generate_ephemeral().unwrap();
    assert_eq!(a.alg(), "ES256");
    assert_eq!(a.jwks()["keys"][0]["crv"], "P-256");
    assert_ne!(a.kid(), b.kid());
}

// ---- signing ----

#[test]
fn signed_tokens_verify_with_the_published_jwks() {
    for keys in [
        SigningKeys::generate_ephemeral().unwrap(),
        load_pem(RSA2048_PKCS1).unwrap(),
    ] {
        let token = keys.sign(&claims()).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(header.kid.as_deref(), Some(keys.kid()));
        assert_eq!(alg_name(header.alg), keys.alg());

        // Straight through jsonwebtoken, as a client library would.
        let set = jwk_set(&keys);
        let jwk = set.find(keys.kid()).unwrap();
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[CLIENT]);
        validation.set_issuer(&[ISSUER]);
        validation.validate_exp = false;
        let decoded = jsonwebtoken::decode::<Value>(
            &token,
            &DecodingKey::from_jwk(jwk).unwrap(),
            &validation,
        )
        .unwrap();
        assert_eq!(decoded.claims, claims());

        // And through the proxy's own verifier.
        assert!(verify(&set, &token, Some("n-1")).is_ok());
    }
}

#[test]
fn es256_tokens_are_signed_over_what_jsonwebtoken_would_sign() {
    let keys = SigningKeys::generate_ephemeral().unwrap();
    let key = keys.newest();
    assert!(key.es256.is_some());
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    let theirs = jsonwebtoken::encode(&header, &claims(), &key.encoding).unwrap();
    let ours = keys.sign(&claims()).unwrap();
    // The same header and claims; ECDSA signatures differ (random nonces)
    // but are the same size, and both verify.
    let (our_input, our_signature) = ours.rsplit_once('.').unwrap();
    let (their_input, their_signature) = theirs.rsplit_once('.').unwrap();
    assert_eq!(our_input, their_input);
    assert_eq!(our_signature.len(), their_signature.len());
    for pem_keys in [P256_SEC1, P256_PKCS8] {
        let loaded = load_pem(pem_keys).unwrap();
        assert!(loaded.newest().es256.is_some());
        let token = loaded.sign(&claims()).unwrap();
        assert!(verify(&jwk_set(&loaded), &token, Some("n-1")).is_ok());
    }
}

#[test]
fn only_objects_are_signed() {
    let keys = SigningKeys::generate_ephemeral().unwrap();
    assert!(matches!(
        keys.sign(&json!(["not", "an", "object"])),
        Err(SigningError::ClaimsNotObject)
    ));
}

// ---- verifying the provider's id_token ----

#[test]
fn a_valid_token_verifies_and_returns_its_claims() {
    let provider = SigningKeys::generate_ephemeral().unwrap();
    let token = provider.sign(&claims()).unwrap();
    let verified = verify(&jwk_set(&provider), &token, Some("n-1")).unwrap();
    assert_eq!(Value::Object(verified), claims());
    // A nonce that was not asked for is ignored.
    assert!(verify(&jwk_set(&provider), &token, None).is_ok());
}

#[test]
fn a_token_signed_by_another_key_is_refused() {
    let provider = SigningKeys::generate_ephemeral().unwrap();
    let attacker = SigningKeys::generate_ephemeral().unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(provider.kid().to_owned());
    let token = sign_with_header(&attacker, &header, &claims());
    assert_eq!(
        verify(&jwk_set(&provider), &token, None),
        Err(IdTokenError::Jwt(JwtError::BadSignature))
    );
    // A signature from the right key over other claims.
    let genuine = provider.sign(&claims()).unwrap();
    let forged = sign_with_header(&attacker, &header, &with(claims(), "sub", json!("admin")));
    let spliced = format!(
        "{}.{}",
        &forged[..forged.rfind('.').unwrap()],
        &genuine[genuine.rfind('.').unwrap() + 1..]
    );
    assert_eq!(
        verify(&jwk_set(&provider), &spliced, None),
        Err(IdTokenError::Jwt(JwtError::BadSignature))
    );
}

#[test]
fn alg_none_is_refused() {
    let provider = SigningKeys::generate_ephemeral().unwrap();
    for header in [
        json!({"alg": "none"}),
        json!({"alg": "none", "kid": provider.kid()}),
        json!({"alg": "None", "typ": "JWT"}),
    ] {
        let token = raw_jwt(&header, &claims(), b"");
        assert!(
            matches!(
                verify(&jwk_set(&provider), &token, None),
                Err(IdTokenError::Jwt(JwtError::DisallowedAlgorithm { .. }))
            ),
            "{header}"
        );
    }
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_refused() {
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    let provider = load_pem(RSA2048_PKCS1).unwrap();
    let public_pem = rsa::RsaPrivateKey::from_pkcs1_pem(RSA2048_PKCS1)
        .unwrap()
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let hmac_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, public_pem.as_bytes());
    for header in [
        json!({"alg": "HS256", "kid": provider.kid(), "typ": "JWT"}),
        json!({"alg": "HS256", "typ": "JWT"}),
    ] {
        let unsigned = raw_jwt(&header, &claims(), b"");
        let input = &unsigned[..unsigned.len() - 1];
        let tag = ring::hmac::sign(&hmac_key, input.as_bytes());
        let token = raw_jwt(&header, &claims(), tag.as_ref());
        assert!(
            matches!(
                verify(&jwk_set(&provider), &token, None),
                Err(IdTokenError::Jwt(JwtError::DisallowedAlgorithm { .. }))
            ),
            "{header}"
        );
    }
    // Even a provider that publishes a symmetric key is not trusted with it.
    let oct: JwkSet = serde_json::from_value(json!({"keys": [
        {"kty": "oct", "k": URL_SAFE_NO_PAD.encode(b"secret"), "alg": "HS256", "kid": "h"}
    ]}))
    .unwrap();
    let token = jsonwebtoken::encode(
        &Header {
            kid: Some("h".to_owned()),
            ..Header::new(Algorithm::HS256)
        },
        &claims(),
        &EncodingKey::from_secret(b"secret"),
    )
    .unwrap();
    assert!(matches!(
        verify(&oct, &token, None),
        Err(IdTokenError::Jwt(JwtError::DisallowedAlgorithm { .. }))
    ));
}

#[test]
fn the_jwk_must_agree_with_the_algorithm() {
    let provider = SigningKeys::generate_ephemeral().unwrap();
    let token = provider.sign(&claims()).unwrap();

    // The JWK says ES384.
    let mut set = jwk_set(&provider);
    set.keys[0].common.key_algorithm = Some(KeyAlgorithm::ES384);
    assert!(matches!(
        verify(&set, &token, None),
        Err(IdTokenError::Jwt(JwtError::UnsuitableKey { .. }))
    ));

    // The JWK is an encryption key.
    let mut set = jwk_set(&provider);
    set.keys[0].common.public_key_use = Some(PublicKeyUse::Encryption);
    assert!(matches!(
        verify(&set, &token, None),
        Err(IdTokenError::Jwt(JwtError::UnsuitableKey { .. }))
    ));

    // Two keys under one kid: the signing one is used, not the first.
    let mut encryption = jwk_set(&provider).keys[0].clone();
    encryption.common.public_key_use = Some(PublicKeyUse::Encryption);
    let set = JwkSet {
        keys: vec![encryption, jwk_set(&provider).keys[0].clone()],
    };
    let token = provider.sign(&claims()).unwrap();
    assert!(verify(&set, &token, None).is_ok());

    // An ES256 token naming the provider's RSA key.
    let rsa = load_pem(RSA2048_PKCS1).unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(rsa.kid().to_owned());
    let token = sign_with_header(&provider, &header, &claims());
    assert!(matches!(
        verify(&jwk_set(&rsa), &token, None),
        Err(IdTokenError::Jwt(JwtError::UnsuitableKey { .. }))
    ));
}

/// A 1024-bit RSA key as a provider would publish it, and a token it signed.
fn short_rsa_token(kid: Option<&str>) -> (JwkSet, String) {
    use rsa::pkcs8::DecodePrivateKey as _;
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(RSA1024_PKCS8).unwrap();
    let mut jwk = json!({
        "kty": "RSA",
        "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
    });
    let mut header = Header::new(Algorithm::RS256);
    if let Some(kid) = kid {
        jwk["kid"] = json!(kid);
        header.kid = Some(kid.to_owned());
    }
    let der = key.to_pkcs1_der().unwrap();
    let token = jsonwebtoken::encode(
        &header,
        &claims(),
        &EncodingKey::from_rsa_der(der.as_bytes()),
    )
    .unwrap();
    let set = serde_json::from_value(json!({ "keys": [jwk] })).unwrap();
    (set, token)
}

/// The provider's RSA floor used to exist only when the binary installed
/// the ring backend; under jsonwebtoken's default a 1024-bit provider key
/// verified. It is now a key rule, the same as for client keys.
#[test]
fn provider_rsa_keys_under_2048_bits_are_refused_in_every_process() {
    let (set, token) = short_rsa_token(Some("short"));
    assert_eq!(
        verify(&set, &token, None),
        Err(IdTokenError::Jwt(JwtError::UnsuitableKey {
            reason: "the RSA key is shorter than 2048 bits"
        }))
    );
    // Without a kid the short key is no candidate at all.
    let (set, token) = short_rsa_token(None);
    assert_eq!(
        verify(&set, &token, None),
        Err(IdTokenError::Jwt(JwtError::UnknownKey))
    );
}

/// The provider's check used to take the first of two keys published under
/// one kid, where client assertions refused them: one rule now.
#[test]
fn two_different_provider_keys_under_one_kid_are_ambiguous() {
    let provider = SigningKeys::generate_ephemeral().unwrap();
    let other = SigningKeys::generate_ephemeral().unwrap();
    let token = provider.sign(&claims()).unwrap();
    let mut impostor = jwk_set(&other).keys[0].clone();
    impostor.common.key_id = Some(provider.kid().to_owned());
    for keys in [
        vec![jwk_set(&provider).keys[0].clone(), impostor.clone()],
        vec![impostor, jwk_set(&provider).keys[0].clone()],
    ] {
        assert_eq!(
            verify(&JwkSet { keys }, &token, None),
            Err(IdTokenError::Jwt(JwtError::AmbiguousKey))
        );
    }
    // The same key listed twice is one key.
    let twice = JwkSet {
        keys: [jwk_set(&provider).keys, jwk_set(&provider).keys].concat(),
    };
    assert!(verify(&twice, &token, None).is_ok());
}

#[test]
fn key_selection_by_kid() {
    let a = SigningKeys::generate_ephemeral().unwrap();
    let b = SigningKeys::generate_ephemeral().unwrap();
    let both = JwkSet {
        keys: [jwk_set(&a).keys, jwk_set(&b).keys].concat(),
    };

    // kid picks the key among several.
    let token = b.sign(&claims()).unwrap();
    assert!(verify(&both, &token, None).is_ok());

    // An unknown kid is its own error, so the caller can refetch once.
    assert_eq!(
        verify(&jwk_set(&a), &token, None),
        Err(IdTokenError::Jwt(JwtError::UnknownKey))
    );

    // No kid and one key: that key.
    let no_kid = sign_with_header(&a, &Header::new(Algorithm::ES256), &claims());
    assert!(verify(&jwk_set(&a), &no_kid, None).is_ok());
    // No kid and several fitting keys: refused.
    assert_eq!(
        verify(&both, &no_kid, None),
        Err(IdTokenError::Jwt(JwtError::AmbiguousKey))
    );
    // No kid and several keys of which one fits the algorithm: that one.
    let mixed = JwkSet {
        keys: [
            jwk_set(&a).keys,
            jwk_set(&load_pem(RSA2048_PKCS1).unwrap()).keys,
        ]
        .concat(),
    };
    assert!(verify(&mixed, &no_kid, None).is_ok());
    // No kid and no key at all.
    assert_eq!(
        verify(&JwkSet { keys: vec![] }, &no_kid, None),
        Err(IdTokenError::Jwt(JwtError::UnknownKey))
    );
}

#[test]
fn an_rs256_provider_token_verifies() {
    let provider = load_pem(RSA2048_PKCS8).unwrap();
    let token = provider.sign(&claims()).unwrap();
    assert!(verify(&jwk_set(&provider), &token, Some("n-1")).is_ok());
    let foreign = sign_with_header(
        &SigningKeys::generate_ephemeral().unwrap(),
        &Header::new(Algorithm::ES256),
        &claims(),
    );
    assert_eq!(
        verify(&jwk_set(&provider), &foreign, None),
        Err(IdTokenError::Jwt(JwtError::UnknownKey))
    );
}

#[test]
fn each_claim_rule_has_its_own_refusal() {
    let provider = SigningKeys::generate_ephemeral().unwrap();
    let set = jwk_set(&provider);
    let check = |claims: Value, nonce: Option<&str>| {
        let token = provider.sign(&claims).unwrap();
        verify(&set, &token, nonce)
    };
    use IdTokenError::*;
    let cases: Vec<(Value, Option<&str>, Result<(), IdTokenError>)> = vec![
        (
            with(claims(), "iss", json!("https://evil.example")),
            None,
            Err(WrongIssuer),
        ),
        (
            with(claims(), "iss", json!([ISSUER])),
            None,
            Err(BadClaim("iss")),
        ),
        (without(claims(), "iss"), None, Err(BadClaim("iss"))),
        (
            with(claims(), "aud", json!("someone-else")),
            None,
            Err(WrongAudience),
        ),
        (
            with(claims(), "aud", json!(["a", "b"])),
            None,
            Err(WrongAudience),
        ),
        (without(claims(), "aud"), None, Err(BadClaim("aud"))),
        (with(claims(), "aud", json!([CLIENT])), None, Ok(())),
        (
            with(claims(), "aud", json!([CLIENT, "other"])),
            None,
            Err(WrongAuthorizedParty),
        ),
        (
            with(
                with(claims(), "aud", json!([CLIENT, "other"])),
                "azp",
                json!(CLIENT),
            ),
            None,
            Ok(()),
        ),
        (
            with(claims(), "azp", json!("other")),
            None,
            Err(WrongAuthorizedParty),
        ),
        (without(claims(), "sub"), None, Err(BadClaim("sub"))),
        (with(claims(), "sub", json!("")), None, Err(BadClaim("sub"))),
        (with(claims(), "exp", json!(NOW - 61)), None, Err(Expired)),
        (with(claims(), "exp", json!(NOW - 60)), None, Err(Expired)),
        (with(claims(), "exp", json!(NOW - 59)), None, Ok(())),
        (
            with(claims(), "exp", json!("tomorrow")),
            None,
            Err(BadClaim("exp")),
        ),
        (with(claims(), "exp", json!(-1)), None, Err(BadClaim("exp"))),
        (
            with(claims(), "exp", json!((NOW + 300) as f64 + 0.5)),
            None,
            Ok(()),
        ),
        (without(claims(), "exp"), None, Err(BadClaim("exp"))),
        (
            with(claims(), "iat", json!(NOW + 61)),
            None,
            Err(IssuedInFuture),
        ),
        (with(claims(), "iat", json!(NOW + 60)), None, Ok(())),
        (without(claims(), "iat"), None, Err(BadClaim("iat"))),
        (claims(), Some("n-2"), Err(NonceMismatch)),
        (without(claims(), "nonce"), Some("n-1"), Err(NonceMismatch)),
        (
            with(claims(), "nonce", json!(1)),
            Some("1"),
            Err(NonceMismatch),
        ),
        (without(claims(), "nonce"), None, Ok(())),
    ];
    for (claims, nonce, expected) in cases {
        assert_eq!(
            check(claims.clone(), nonce).map(|_| ()),
            expected,
            "{claims} nonce={nonce:?}"
        );
    }
}

#[test]
fn the_real_clock_is_used_by_verify() {
    let provider = SigningKeys::generate_ephemeral().unwrap();
    let now = unix_now();
    let fresh = with(with(claims(), "iat", json!(now)), "exp", json!(now + 300));
    let token = provider.sign(&fresh).unwrap();
    assert!(
        verifier()
            .verify(&token, &jwk_set(&provider), Some("n-1"))
            .is_ok()
    );
    // `claims()` expired long ago by the real clock.
    let old = provider.sign(&claims()).unwrap();
    assert_eq!(
        verifier().verify(&old, &jwk_set(&provider), None),
        Err(IdTokenError::Expired)
    );
}

#[test]
fn malformed_tokens_are_refused() {
    let provider = SigningKeys::generate_ephemeral().unwrap();
    let set = jwk_set(&provider);
    let genuine = provider.sign(&claims()).unwrap();
    let header = &genuine[..genuine.find('.').unwrap()];
    for token in [
        String::new(),
        "a".to_owned(),
        "a.b".to_owned(),
        "a.b.c".to_owned(),
        "..".to_owned(),
        format!("{header}.!!!.AAAA"),
        format!("{header}.{}.", URL_SAFE_NO_PAD.encode(b"[1,2]")),
        format!("{genuine}x{}", "A".repeat(MAX_ID_TOKEN_LEN)),
    ] {
        assert!(
            matches!(
                verify(&set, &token, None),
                Err(IdTokenError::Malformed
                    | IdTokenError::Jwt(JwtError::Malformed { .. } | JwtError::BadSignature))
            ),
            "{token:.40}"
        );
    }
    // An extension the proxy does not understand.
    let crit = Header {
        kid: Some(provider.kid().to_owned()),
        crit: Some(vec!["exp".to_owned()]),
        ..Header::new(Algorithm::ES256)
    };
    let token = sign_with_header(&provider, &crit, &claims());
    assert!(matches!(
        verify(&set, &token, None),
        Err(IdTokenError::Jwt(JwtError::Malformed { .. }))
    ));
}

#[test]
fn refusals_never_echo_the_token() {
    for error in [
        IdTokenError::Malformed,
        IdTokenError::Jwt(JwtError::DisallowedAlgorithm {
            alg: "none".to_owned(),
        }),
        IdTokenError::Jwt(JwtError::UnknownKey),
        IdTokenError::Jwt(JwtError::AmbiguousKey),
        IdTokenError::Jwt(JwtError::UnsuitableKey { reason: "x" }),
        IdTokenError::Jwt(JwtError::BadSignature),
        IdTokenError::BadClaim("exp"),
        IdTokenError::WrongIssuer,
        IdTokenError::WrongAudience,
        IdTokenError::WrongAuthorizedParty,
        IdTokenError::Expired,
        IdTokenError::IssuedInFuture,
        IdTokenError::NonceMismatch,
    ] {
        assert!(!error.as_str().is_empty());
        assert!(!error.to_string().contains("eyJ"));
    }
}

// ---- re-issuing ----

fn provider_claims() -> Map<String, Value> {
    let value = json!({
        "iss": ISSUER,
        "aud": [CLIENT, "other"],
        "azp": CLIENT,
        "sub": "user-1",
        "nonce": "provider-nonce",
        "at_hash": "provider-at-hash",
        "c_hash": "provider-c-hash",
        "sid": "provider-session",
        "exp": NOW + 300,
        "iat": NOW,
        "jti": "provider-jti",
        "name": "Ada Lovelace",
        "given_name": "Ada",
        "family_name": "Lovelace",
        "preferred_username": "ada",
        "email": "ada@example.com",
        "email_verified": true,
        "picture": "https://idp.example/ada.png",
        "locale": "en-GB",
        "zoneinfo": "Europe/London",
        "updated_at": 1_600_000_000,
        "auth_time": NOW - 10,
        "acr": "urn:mace:incommon:iap:silver",
        "amr": ["pwd", "mfa"],
        "groups": ["admins"],
    });
    match value {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

const PROXY: &str = "https://proxy.example";
const CIMD_CLIENT: &str = "https://app.example/cimd.json";

#[test]
fn reissue_replaces_the_providers_binding_and_keeps_identity() {
    let claims = reissue_claims_at(
        &provider_claims(),
        PROXY,
        CIMD_CLIENT,
        Some("client-nonce"),
        None,
        "ES256",
        Duration::from_secs(600),
        NOW,
    );
    assert_eq!(claims["iss"], PROXY);
    assert_eq!(claims["aud"], CIMD_CLIENT);
    assert_eq!(claims["azp"], CIMD_CLIENT);
    assert_eq!(claims["sub"], "user-1");
    assert_eq!(claims["nonce"], "client-nonce");
    assert_eq!(claims["iat"], NOW);
    assert_eq!(claims["exp"], NOW + 600);
    for carried in CARRIED_CLAIMS {
        assert_eq!(claims[carried], provider_claims()[carried], "{carried}");
    }
    for dropped in ["at_hash", "c_hash", "sid", "jti", "groups"] {
        assert!(claims.get(dropped).is_none(), "{dropped} carried over");
    }
    let members = claims.as_object().unwrap().len();
    assert_eq!(members, 7 + CARRIED_CLAIMS.len());

    // Without a client nonce, the provider's is not carried either.
    let claims = reissue_claims_at(
        &provider_claims(),
        PROXY,
        CIMD_CLIENT,
        None,
        None,
        "ES256",
        Duration::from_secs(600),
        NOW,
    );
    assert!(claims.get("nonce").is_none());
    // Absent identity claims stay absent.
    let mut sparse = Map::new();
    sparse.insert("sub".to_owned(), json!("u"));
    let claims = reissue_claims(
        &sparse,
        PROXY,
        CIMD_CLIENT,
        None,
        None,
        "ES256",
        Duration::from_secs(60),
    );
    assert_eq!(claims.as_object().unwrap().len(), 6);
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        60
    );
}

#[test]
fn at_hash_matches_the_openid_connect_core_example() {
    // OpenID Connect Core 1.0, Appendix A.3 (RS256).
    let token = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";
    assert_eq!(
        at_hash("RS256", token).as_deref(),
        Some("77QmUPtjPfzWtF2AnpK9RQ")
    );
    assert_eq!(
        at_hash("ES256", token).as_deref(),
        Some("77QmUPtjPfzWtF2AnpK9RQ")
    );
    // Longer hashes give longer halves.
    assert_eq!(at_hash("ES384", token).unwrap().len(), 32);
    assert_eq!(at_hash("RS512", token).unwrap().len(), 43);
    assert_eq!(at_hash("none", token), None);

    let claims = reissue_claims_at(
        &provider_claims(),
        PROXY,
        CIMD_CLIENT,
        None,
        Some(token),
        "RS256",
        Duration::from_secs(600),
        NOW,
    );
    assert_eq!(claims["at_hash"], "77QmUPtjPfzWtF2AnpK9RQ");
}

#[test]
fn a_reissued_token_verifies_for_the_cimd_client() {
    let proxy = SigningKeys::generate_ephemeral().unwrap();
    let claims = reissue_claims_at(
        &provider_claims(),
        PROXY,
        CIMD_CLIENT,
        Some("client-nonce"),
        Some("access"),
        proxy.alg(),
        Duration::from_secs(600),
        NOW,
    );
    let token = proxy.sign(&claims).unwrap();
    let client_side = IdTokenVerifier::new(PROXY.to_owned(), CIMD_CLIENT.to_owned());
    let verified = client_side
        .verify_at(&token, &jwk_set(&proxy), Some("client-nonce"), NOW)
        .unwrap();
    assert_eq!(Value::Object(verified), claims);
    // The provider's verifier (its issuer, the upstream client) refuses it.
    assert_eq!(
        verify(&jwk_set(&proxy), &token, None),
        Err(IdTokenError::WrongIssuer)
    );
}

#[test]
fn id_token_error_names_are_pinned() {
    // Log fields and metric labels: the strings are a contract.
    for (value, text) in [
        (IdTokenError::Malformed, "malformed"),
        (
            IdTokenError::Jwt(JwtError::DisallowedAlgorithm {
                alg: "HS256".into(),
            }),
            "disallowed_algorithm",
        ),
        (
            IdTokenError::Jwt(JwtError::UnsupportedAlgorithm {
                alg: "ES512".into(),
            }),
            "disallowed_algorithm",
        ),
        (IdTokenError::Jwt(JwtError::UnknownKey), "unknown_key"),
        (IdTokenError::Jwt(JwtError::AmbiguousKey), "ambiguous_key"),
        (
            IdTokenError::Jwt(JwtError::UnsuitableKey { reason: "x" }),
            "key_mismatch",
        ),
        (IdTokenError::Jwt(JwtError::BadSignature), "bad_signature"),
        (
            IdTokenError::Jwt(JwtError::Malformed { reason: "x" }),
            "malformed",
        ),
        (IdTokenError::BadClaim("exp"), "bad_claim"),
        (IdTokenError::WrongIssuer, "wrong_issuer"),
        (IdTokenError::WrongAudience, "wrong_audience"),
        (IdTokenError::WrongAuthorizedParty, "wrong_azp"),
        (IdTokenError::Expired, "expired"),
        (IdTokenError::IssuedInFuture, "issued_in_future"),
        (IdTokenError::NonceMismatch, "nonce_mismatch"),
    ] {
        assert_eq!(value.as_str(), text);
    }
}
