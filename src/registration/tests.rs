use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::store::{Backend, StoreConfig};

const NOW: u64 = 1_800_000_000;

fn sealer(key: u8) -> Sealer {
    Sealer::new(vec![[key; 32]]).expect("a sealer")
}

fn config() -> RegistrationConfig {
    RegistrationConfig {
        enabled: true,
        ..RegistrationConfig::default()
    }
}

fn registrar(config: &RegistrationConfig) -> Registrar {
    Registrar::new(config).expect("no token to read")
}

fn register(body: &Value) -> Result<Registered, RegistrationError> {
    registrar(&config()).register(&sealer(1), body.to_string().as_bytes(), None, NOW)
}

fn public_client() -> Value {
    json!({
        "client_name": "Some Agent",
        "redirect_uris": ["http://localhost:3000/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "logo_uri": "https://agent.example/logo.png",
        "software_version": "1.2.3",
    })
}

fn client_id(registered: &Registered) -> &str {
    registered.body["client_id"].as_str().expect("a client_id")
}

#[test]
fn a_registration_opens_on_any_replica_with_the_keys_and_round_trips_its_metadata() {
    let registered = register(&public_client()).expect("registered");
    let id = client_id(&registered);
    assert!(id.starts_with(CLIENT_ID_PREFIX), "{id}");
    assert!(is_registered_client_id(id));
    // URL-safe as it is: it goes in query strings and form bodies unescaped.
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
        "{id}"
    );
    assert_eq!(registered.body["client_id_issued_at"], json!(NOW));
    assert_eq!(
        registered.body["client_id_expires_at"],
        json!(NOW + 30 * 86_400)
    );
    assert_eq!(registered.body["token_endpoint_auth_method"], "none");
    assert_eq!(
        registered.body["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );

    // Another replica: its own Sealer over the same key.
    let config = config();
    let other = sealer(1);
    let opened = Registrations::new(&other, &config)
        .open_at(id, NOW + 1)
        .expect("opens");
    assert_eq!(opened.metadata.client_id, id);
    assert_eq!(
        opened.metadata.redirect_uris,
        ["http://localhost:3000/callback"]
    );
    assert_eq!(opened.metadata.client_name.as_deref(), Some("Some Agent"));
    assert_eq!(opened.metadata.token_endpoint_auth_method, AuthMethod::None);
    assert_eq!(
        opened.metadata.grant_types,
        ["authorization_code", "refresh_token"]
    );
    assert!(opened.metadata.only_loopback_redirects());
    assert_eq!(opened.redirect_host, "localhost");
    assert_eq!(opened.issued_at, NOW);
    assert_eq!(opened.vouched_by, None);
    // Only what the proxy uses is sealed: no logo (never shown for a
    // self-registered client), no member it does not interpret.
    assert_eq!(opened.metadata.logo_uri, None);
    assert!(opened.metadata.extra.is_empty());
}

#[test]
fn the_client_id_stays_compact() {
    let registered = register(&public_client()).expect("registered");
    // A typical MCP client's registration: a few hundred bytes, not kilobytes.
    assert!(
        client_id(&registered).len() < 400,
        "{}",
        client_id(&registered).len()
    );
}

#[test]
fn one_byte_changed_expired_or_an_unknown_key_is_refused_with_its_reason() {
    let registered = register(&public_client()).expect("registered");
    let id = client_id(&registered).to_owned();
    let config = config();
    let keys = sealer(1);
    let registrations = Registrations::new(&keys, &config);

    let altered = |index: usize| {
        let mut bytes = id.clone().into_bytes();
        bytes[index] = if bytes[index] == b'A' { b'B' } else { b'A' };
        registrations
            .open_at(&String::from_utf8(bytes).unwrap(), NOW)
            .unwrap_err()
    };
    for index in [id.len() / 2, id.len() - 10, id.len() - 1] {
        assert_eq!(altered(index), RegistrationRefused::Invalid, "byte {index}");
    }
    // In the clear key id: a key this proxy does not hold (and never did).
    assert_eq!(
        altered(CLIENT_ID_PREFIX.len() + 5),
        RegistrationRefused::UnknownKey
    );
    assert_eq!(
        registrations.open_at(&id[..id.len() - 4], NOW).unwrap_err(),
        RegistrationRefused::Invalid
    );
    assert_eq!(
        registrations.open_at(&id, NOW + 30 * 86_400).unwrap_err(),
        RegistrationRefused::Expired
    );
    let rotated_away = sealer(2);
    assert_eq!(
        Registrations::new(&rotated_away, &config)
            .open_at(&id, NOW)
            .unwrap_err(),
        RegistrationRefused::UnknownKey
    );
    // Rotation: a new key first, the old one still listed, opens it.
    let rotated = Sealer::new(vec![[2; 32], [1; 32]]).unwrap();
    assert!(
        Registrations::new(&rotated, &config)
            .open_at(&id, NOW)
            .is_ok()
    );
    // Registration turned off: every registration is refused.
    let off = RegistrationConfig::default();
    assert_eq!(
        Registrations::new(&keys, &off)
            .open_at(&id, NOW)
            .unwrap_err(),
        RegistrationRefused::Disabled
    );
    // Another purpose's sealed value under the same keys is not a registration.
    let state = keys.seal_at(Purpose::State, Duration::from_secs(60), &json!({}), NOW);
    assert_eq!(
        registrations
            .open_at(&format!("{CLIENT_ID_PREFIX}{state}"), NOW)
            .unwrap_err(),
        RegistrationRefused::Invalid
    );
    for message in [
        RegistrationRefused::Expired.to_string(),
        RegistrationRefused::UnknownKey.to_string(),
    ] {
        assert!(message.contains("register again"), "{message}");
    }
}

#[test]
fn a_registration_request_goes_through_the_document_rules() {
    let refused = |patch: Value| {
        let mut body = public_client();
        for (name, value) in patch.as_object().unwrap() {
            if value.is_null() {
                body.as_object_mut().unwrap().remove(name);
            } else {
                body[name] = value.clone();
            }
        }
        register(&body).expect_err("refused")
    };
    let redirect = |error: RegistrationError| {
        assert_eq!(error.code(), OAuthErrorCode::InvalidRedirectUri, "{error}");
        error.to_string()
    };
    let metadata = |error: RegistrationError| {
        assert_eq!(
            error.code(),
            OAuthErrorCode::InvalidClientMetadata,
            "{error}"
        );
        error.to_string()
    };
    assert!(redirect(refused(json!({"redirect_uris": null}))).contains("required"));
    assert!(redirect(refused(json!({"redirect_uris": []}))).contains("at least one"));
    assert!(
        redirect(refused(
            json!({"redirect_uris": ["http://evil.example/cb"]})
        ))
        .contains("not loopback")
    );
    assert!(
        redirect(refused(json!({"redirect_uris": ["javascript:alert(1)"]}))).contains("javascript")
    );
    assert!(
        redirect(refused(
            json!({"redirect_uris": ["https://app.example/cb#x"]})
        ))
        .contains("fragment")
    );
    assert!(
        metadata(refused(
            json!({"token_endpoint_auth_method": "client_secret_basic"})
        ))
        .contains("shared secret")
    );
    assert!(
        metadata(refused(
            json!({"token_endpoint_auth_method": "private_key_jwt"})
        ))
        .contains("public keys")
    );
    assert!(
        metadata(refused(json!({"client_id": "https://app.example/c"})))
            .contains("assigned by the authorization server")
    );
    assert!(metadata(refused(json!({"response_types": ["token"]}))).contains("response_types"));
    assert!(
        metadata(refused(json!({"grant_types": ["client_credentials"]})))
            .contains("client_credentials")
    );
    assert!(
        metadata(refused(json!({"grant_types": ["refresh_token"]}))).contains("authorization_code")
    );
    assert!(
        metadata(refused(
            json!({"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}})
        ))
        .contains("symmetric")
    );

    // Strict JSON: a duplicate member is refused, not resolved one way.
    let duplicate =
        br#"{"redirect_uris":["https://a.example/cb"],"redirect_uris":["https://b.example/cb"]}"#;
    let error = registrar(&config())
        .register(&sealer(1), duplicate, None, NOW)
        .unwrap_err();
    assert!(metadata(error).contains("duplicate member"));
    let error = registrar(&config())
        .register(&sealer(1), b"[1]", None, NOW)
        .unwrap_err();
    assert!(metadata(error).contains("not an object"));
}

#[test]
fn private_key_jwt_registers_with_its_keys_and_too_many_keys_do_not_fit_a_client_id() {
    let key = json!({"kty": "EC", "crv": "P-256", "kid": "k1",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
    let mut body = public_client();
    body["token_endpoint_auth_method"] = json!("private_key_jwt");
    body["redirect_uris"] = json!(["https://app.example/cb"]);
    body["jwks"] = json!({"keys": [key.clone()]});
    let registered = register(&body).expect("registered");
    assert_eq!(
        registered.body["token_endpoint_auth_method"],
        "private_key_jwt"
    );
    let config = config();
    let keys = sealer(1);
    let opened = Registrations::new(&keys, &config)
        .open_at(client_id(&registered), NOW)
        .unwrap();
    assert_eq!(
        opened.metadata.token_endpoint_auth_method,
        AuthMethod::PrivateKeyJwt
    );
    assert_eq!(opened.metadata.jwks, Some(json!({"keys": [key.clone()]})));
    assert_eq!(opened.redirect_host, "app.example");

    body["jwks"] = json!({"keys": vec![key; 40]});
    let error = register(&body).unwrap_err();
    assert_eq!(error.code(), OAuthErrorCode::InvalidClientMetadata);
    assert!(error.to_string().contains("jwks_uri"), "{error}");
}

#[test]
fn the_body_size_limit_is_the_configured_one() {
    let config = RegistrationConfig {
        max_body_bytes: 1024,
        ..config()
    };
    let mut body = public_client();
    body["client_name"] = json!("x".repeat(1100));
    let error = registrar(&config)
        .register(&sealer(1), body.to_string().as_bytes(), None, NOW)
        .unwrap_err();
    assert_eq!(error, RegistrationError::TooLarge(1024));
    assert_eq!(error.status(), http::StatusCode::PAYLOAD_TOO_LARGE);
}

#[test]
fn a_required_statement_is_refused_without_one() {
    let config = RegistrationConfig {
        require_software_statement: true,
        ..config()
    };
    let error = registrar(&config)
        .register(
            &sealer(1),
            public_client().to_string().as_bytes(),
            None,
            NOW,
        )
        .unwrap_err();
    assert_eq!(error.code(), OAuthErrorCode::UnapprovedSoftwareStatement);
    // With a verified issuer it registers, and the issuer travels sealed.
    let registered = registrar(&config)
        .register(
            &sealer(1),
            public_client().to_string().as_bytes(),
            Some("registry".to_owned()),
            NOW,
        )
        .unwrap();
    let keys = sealer(1);
    let opened = Registrations::new(&keys, &config)
        .open_at(client_id(&registered), NOW)
        .unwrap();
    assert_eq!(opened.vouched_by.as_deref(), Some("registry"));
}

#[test]
fn the_initial_access_token_is_a_bearer_token_compared_whole() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "s3cret-token\n").unwrap();
    let config = RegistrationConfig {
        initial_access_token: Some(SecretSource::File(file)),
        ..config()
    };
    let registrar = registrar(&config);
    assert_eq!(registrar.check_token(Some(b"Bearer s3cret-token")), Ok(()));
    assert_eq!(registrar.check_token(Some(b"bearer s3cret-token")), Ok(()));
    for wrong in [
        None,
        Some(&b"Bearer s3cret-toke"[..]),
        Some(b"Bearer s3cret-token2"),
        Some(b"Basic s3cret-token"),
        Some(b"s3cret-token"),
        Some(b"Bearer "),
    ] {
        assert_eq!(
            registrar.check_token(wrong),
            Err(RegistrationError::InvalidToken)
        );
    }
    // No token configured: open registration.
    assert_eq!(
        super::tests::registrar(&super::tests::config()).check_token(None),
        Ok(())
    );
    // The debug form says whether there is a token, never what it is.
    assert!(!format!("{registrar:?}").contains("s3cret"));
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let error = Registrar::new(&RegistrationConfig {
        initial_access_token: Some(SecretSource::File(empty)),
        ..config
    })
    .unwrap_err();
    assert!(error.to_string().contains("empty"), "{error}");
}

#[tokio::test]
async fn the_rate_limits_count_per_source_and_globally_and_recover_after_the_window() {
    let store = Store::connect(&StoreConfig {
        backend: Backend::Memory,
        ..StoreConfig::default()
    })
    .unwrap();
    let config = RegistrationConfig {
        per_source_limit: 2,
        global_limit: 3,
        window: Duration::from_millis(400),
        ..config()
    };
    let registrar = registrar(&config);
    let both = |source| {
        let (registrar, store) = (&registrar, &store);
        async move {
            registrar.limit_source(store, source).await?;
            registrar.limit_global(store).await
        }
    };
    let a = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let b = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
    let c = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3));
    assert_eq!(both(a).await, Ok(()));
    assert_eq!(both(a).await, Ok(()));
    let limited = both(a).await.unwrap_err();
    assert!(matches!(limited, RegistrationError::RateLimited(_)));
    assert_eq!(limited.status(), http::StatusCode::TOO_MANY_REQUESTS);
    // A refused source did not use up the global share.
    assert_eq!(both(b).await, Ok(()));
    assert!(both(c).await.is_err(), "global limit");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(both(a).await, Ok(()));
    assert_eq!(both(c).await, Ok(()));
}

#[test]
fn an_ipv6_source_counts_by_its_64() {
    let one: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
    let other: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
    assert_eq!(source_key(one), source_key(other));
    assert_eq!(source_key(one), "2001:db8:1:2::/64");
    assert_ne!(
        source_key(one),
        source_key("2001:db8:1:3::1".parse().unwrap())
    );
    let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
    assert_eq!(source_key(mapped), "192.0.2.7");
    assert_eq!(source_key(IpAddr::V6(Ipv6Addr::LOCALHOST)), "::/64");
}

#[test]
fn x_forwarded_for_is_believed_only_from_a_trusted_proxy() {
    let client: IpAddr = "198.51.100.7".parse().unwrap();
    let ingress: IpAddr = "10.0.0.5".parse().unwrap();
    let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
    // No trusted proxies: the peer, whatever the header says.
    assert_eq!(source_address(client, &["203.0.113.1"], &[]), client);
    assert_eq!(source_address(ingress, &["203.0.113.1"], &[]), ingress);
    // From the ingress: the nearest address it did not add itself.
    assert_eq!(
        source_address(ingress, &["203.0.113.1, 198.51.100.7"], &trusted),
        client
    );
    assert_eq!(
        source_address(
            ingress,
            &["203.0.113.1", "198.51.100.7, 10.0.0.9"],
            &trusted
        ),
        client
    );
    // A client spoofing the header directly is not believed.
    assert_eq!(source_address(client, &["10.0.0.1"], &trusted), client);
    // Garbage stops the walk at the last readable hop.
    assert_eq!(
        source_address(ingress, &["198.51.100.7, not-an-ip"], &trusted),
        ingress
    );
}

#[test]
fn a_statements_claims_take_precedence_and_are_held_to_the_same_rules() {
    let registrar = registrar(&config());
    let metadata = registrar
        .validate(public_client().to_string().as_bytes())
        .unwrap();
    let overrides = json!({"client_name": "Vouched Agent"});
    let combined = registrar
        .with_statement(&metadata, overrides.as_object().unwrap().clone())
        .unwrap();
    assert_eq!(combined.client_name.as_deref(), Some("Vouched Agent"));
    assert_eq!(combined.redirect_uris, metadata.redirect_uris);
    let overrides = json!({"token_endpoint_auth_method": "client_secret_post"});
    let error = registrar
        .with_statement(&metadata, overrides.as_object().unwrap().clone())
        .unwrap_err();
    assert_eq!(error.code(), OAuthErrorCode::InvalidSoftwareStatement);
    assert!(error.to_string().contains("shared secret"), "{error}");
}
