//! `private_key_jwt` with keys behind a `jwks_uri`, fetched from real origins
//! through the hardened fetcher: caching, the one refetch an unknown `kid`
//! may force and its rate limit, a document that changes its key source,
//! and refused addresses that are never connected to.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cimd_proxy::metadata::{self, ClientMetadata};
use cimd_proxy::store::Store;
use cimd_proxy::{
    ClientAuthLimits, ClientAuthenticator, ClientIdUrl, Config, Egress, JWT_BEARER, TokenClientAuth,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::support::{ConfigFile, Decoy, Origin, Script, World, client_id};

const AUDIENCE: &str = "https://proxy.test/token";

/// A P-256 signing key and its public JWK.
struct Key {
    encoding: EncodingKey,
    jwk: Value,
}

fn key(kid: &str) -> Key {
    let pair = rcgen::KeyPair::generate().expect("P-256 key");
    let point = pair.public_key_raw();
    Key {
        encoding: EncodingKey::from_ec_der(&pair.serialize_der()),
        jwk: json!({
            "kty": "EC",
            "crv": "P-256",
            "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..]),
        }),
    }
}

fn jwks(keys: &[&Key]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

/// A signed assertion for `client` under `kid` (which need not be the key's own).
fn assertion(key: &Key, kid: &str, client: &str) -> TokenClientAuth {
    static JTI: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let claims = json!({
        "iss": client,
        "sub": client,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 60,
        "jti": format!("jti-{}", JTI.fetch_add(1, Ordering::SeqCst)),
    });
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    TokenClientAuth {
        client_id: None,
        client_assertion_type: Some(JWT_BEARER.to_owned()),
        client_assertion: Some(
            jsonwebtoken::encode(&header, &claims, &key.encoding).expect("sign"),
        ),
        has_client_secret: false,
    }
}

/// A `private_key_jwt` document for `client` whose keys are at `jwks_uri`.
fn document(client: &str, jwks_uri: &str) -> ClientMetadata {
    let doc = json!({
        "client_id": client,
        "redirect_uris": ["https://app.test/cb"],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks_uri": jwks_uri,
    });
    metadata::validate(&id(client), doc.to_string().as_bytes()).expect("valid document")
}

fn id(url: &str) -> ClientIdUrl {
    ClientIdUrl::parse(url).expect("valid client_id")
}

fn authenticator(file: &ConfigFile, limits: ClientAuthLimits) -> ClientAuthenticator {
    let config = Config::from_toml_str(&file.to_toml(), None).expect("valid test config");
    let egress = Egress::new(&config.fetch, Vec::new()).expect("egress");
    let store = Store::connect(&config.store).expect("the memory store");
    ClientAuthenticator::new(
        Arc::new(egress),
        vec![AUDIENCE.to_owned()],
        limits,
        Arc::new(store),
    )
}

/// Requests the origin received for `path`.
fn fetches(origin: &Origin, path: &str) -> usize {
    origin
        .requests()
        .iter()
        .filter(|request| request.path == path)
        .count()
}

/// `app.test` serving `keys` at `/jwks.json`; returns the origin, the client_id and the jwks_uri.
async fn keys_origin(world: &World, keys: &[&Key]) -> (Origin, String, String) {
    let (origin, client) = world.app_with(|_| Script::new()).await;
    origin.set_route("/jwks.json", Script::json(jwks(keys)));
    let jwks_uri = client_id("app.test", origin.port(), "/jwks.json");
    (origin, client, jwks_uri)
}

#[tokio::test]
async fn keys_are_fetched_once_and_then_served_from_the_cache() {
    let world = World::new().await;
    let k1 = key("k1");
    let (origin, client, jwks_uri) = keys_origin(&world, &[&k1]).await;
    let auth = authenticator(&world.config(origin.port()), ClientAuthLimits::default());
    let doc = document(&client, &jwks_uri);
    for _ in 0..3 {
        auth.authenticate(id(&client).as_str(), &doc, &assertion(&k1, "k1", &client))
            .await
            .expect("valid assertion");
    }
    assert_eq!(fetches(&origin, "/jwks.json"), 1);
}

#[tokio::test]
async fn an_unknown_kid_forces_exactly_one_refetch_and_bogus_kids_no_more() {
    let world = World::new().await;
    let k1 = key("k1");
    let (origin, client, jwks_uri) = keys_origin(&world, &[&k1]).await;
    let auth = authenticator(&world.config(origin.port()), ClientAuthLimits::default());
    let doc = document(&client, &jwks_uri);

    auth.authenticate(id(&client).as_str(), &doc, &assertion(&k1, "k1", &client))
        .await
        .expect("valid assertion");
    assert_eq!(fetches(&origin, "/jwks.json"), 1);

    let error = auth
        .authenticate(
            id(&client).as_str(),
            &doc,
            &assertion(&k1, "bogus-1", &client),
        )
        .await
        .expect_err("unknown kid");
    assert_eq!(error.as_str(), "unknown_key");
    assert_eq!(error.oauth_error().as_str(), "invalid_client");
    assert_eq!(
        fetches(&origin, "/jwks.json"),
        2,
        "the unknown kid forced one refetch"
    );

    // Within the rate-limit window: neither one more bogus kid nor a burst
    // of them reaches the origin again.
    let error = auth
        .authenticate(
            id(&client).as_str(),
            &doc,
            &assertion(&k1, "bogus-2", &client),
        )
        .await
        .expect_err("unknown kid");
    assert_eq!(error.as_str(), "unknown_key");
    let auth = Arc::new(auth);
    let burst: Vec<_> = (0..20)
        .map(|n| {
            let (auth, client, doc) = (Arc::clone(&auth), client.clone(), doc.clone());
            let params = assertion(&k1, &format!("burst-{n}"), &client);
            tokio::spawn(
                async move { auth.authenticate(id(&client).as_str(), &doc, &params).await },
            )
        })
        .collect();
    for task in burst {
        assert!(task.await.expect("task").is_err());
    }
    assert_eq!(fetches(&origin, "/jwks.json"), 2, "rate limited");
}

#[tokio::test]
async fn concurrent_unknown_kids_share_one_refetch() {
    let world = World::new().await;
    let k1 = key("k1");
    let (origin, client, jwks_uri) = keys_origin(&world, &[&k1]).await;
    let auth = Arc::new(authenticator(
        &world.config(origin.port()),
        ClientAuthLimits::default(),
    ));
    let doc = document(&client, &jwks_uri);
    auth.authenticate(id(&client).as_str(), &doc, &assertion(&k1, "k1", &client))
        .await
        .expect("valid assertion");
    // The refetch is slow, so every request below arrives while it runs.
    let k2 = key("k2");
    origin.set_route(
        "/jwks.json",
        Script::new()
            .sleep(Duration::from_millis(300))
            .write(json_response(&jwks(&[&k1, &k2]))),
    );
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (auth, client, doc) = (Arc::clone(&auth), client.clone(), doc.clone());
            let params = assertion(&k2, "k2", &client);
            tokio::spawn(
                async move { auth.authenticate(id(&client).as_str(), &doc, &params).await },
            )
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("the rotated key is found");
    }
    assert_eq!(fetches(&origin, "/jwks.json"), 2, "one shared refetch");
}

#[tokio::test]
async fn a_rotated_key_is_found_by_a_refetch_once_the_window_has_passed() {
    let world = World::new().await;
    let k1 = key("k1");
    let (origin, client, jwks_uri) = keys_origin(&world, &[&k1]).await;
    let limits = ClientAuthLimits {
        jwks_refetch_interval: Duration::from_millis(300),
        ..ClientAuthLimits::default()
    };
    let auth = authenticator(&world.config(origin.port()), limits);
    let doc = document(&client, &jwks_uri);
    let k2 = key("k2");

    // A kid the origin does not publish yet: one refetch, still unknown.
    let error = auth
        .authenticate(id(&client).as_str(), &doc, &assertion(&k2, "k2", &client))
        .await
        .expect_err("k2 is not published yet");
    assert_eq!(error.as_str(), "unknown_key");
    assert_eq!(fetches(&origin, "/jwks.json"), 2);

    origin.set_route("/jwks.json", Script::json(jwks(&[&k1, &k2])));
    let error = auth
        .authenticate(id(&client).as_str(), &doc, &assertion(&k2, "k2", &client))
        .await
        .expect_err("inside the window the new key is not fetched");
    assert_eq!(error.as_str(), "unknown_key");
    assert_eq!(fetches(&origin, "/jwks.json"), 2);

    tokio::time::sleep(Duration::from_millis(400)).await;
    auth.authenticate(id(&client).as_str(), &doc, &assertion(&k2, "k2", &client))
        .await
        .expect("after the window one refetch finds the rotated key");
    assert_eq!(fetches(&origin, "/jwks.json"), 3);
}

#[tokio::test]
async fn a_document_that_changes_its_key_source_is_honoured_at_once() {
    let world = World::new().await;
    let old = key("old");
    let (origin, client, old_uri) = keys_origin(&world, &[&old]).await;
    let new = key("new");
    origin.set_route("/jwks-v2.json", Script::json(jwks(&[&new])));
    let new_uri = client_id("app.test", origin.port(), "/jwks-v2.json");
    let auth = authenticator(&world.config(origin.port()), ClientAuthLimits::default());

    let before = document(&client, &old_uri);
    auth.authenticate(
        id(&client).as_str(),
        &before,
        &assertion(&old, "old", &client),
    )
    .await
    .expect("old key under the old document");

    let after = document(&client, &new_uri);
    auth.authenticate(
        id(&client).as_str(),
        &after,
        &assertion(&new, "new", &client),
    )
    .await
    .expect("new key under the new document");
    let error = auth
        .authenticate(
            id(&client).as_str(),
            &after,
            &assertion(&old, "old", &client),
        )
        .await
        .expect_err("the old key no longer speaks for the client");
    assert_eq!(error.as_str(), "unknown_key");
}

#[tokio::test]
async fn a_published_private_key_is_refused() {
    let world = World::new().await;
    let k1 = key("k1");
    let (origin, client, jwks_uri) = keys_origin(&world, &[&k1]).await;
    let mut leaked = k1.jwk.clone();
    leaked["d"] = "c2VjcmV0".into();
    origin.set_route(
        "/jwks.json",
        Script::json(json!({ "keys": [leaked] }).to_string()),
    );
    let auth = authenticator(&world.config(origin.port()), ClientAuthLimits::default());
    let error = auth
        .authenticate(
            id(&client).as_str(),
            &document(&client, &jwks_uri),
            &assertion(&k1, "k1", &client),
        )
        .await
        .expect_err("private key material");
    assert_eq!(error.as_str(), "invalid_jwks");
    assert!(!error.description().contains("c2VjcmV0"));
}

#[tokio::test]
async fn a_jwks_uri_resolving_to_a_refused_address_is_never_connected_to() {
    let world = World::new().await;
    let k1 = key("k1");
    // The client's own document host is fine; its keys host is not.
    let (origin, client) = world.app_with(|_| Script::new()).await;
    let decoy = Decoy::start(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0))
        .await
        .expect("decoy on 127.0.0.1");
    let mut file = world.config(origin.port());
    file.fetch.allowed_ports.push(decoy.port());
    let auth = authenticator(&file, ClientAuthLimits::default());

    for (host, answer) in [
        ("loopback-keys.test", IpAddr::V4(Ipv4Addr::LOCALHOST)),
        (
            "metadata-keys.test",
            IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
        ),
        ("private-keys.test", IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
    ] {
        world.dns.set(host, &[answer]);
        let jwks_uri = client_id(host, decoy.port(), "/jwks.json");
        let error = auth
            .authenticate(
                id(&client).as_str(),
                &document(&client, &jwks_uri),
                &assertion(&k1, "k1", &client),
            )
            .await
            .expect_err("refused address");
        assert_eq!(error.as_str(), "jwks_fetch_failed", "{host}: {error}");
        assert_eq!(error.oauth_error().as_str(), "invalid_client");
        assert!(
            error.description().contains("blocked_address"),
            "{host}: {}",
            error.description()
        );
    }
    assert_eq!(decoy.connections(), 0, "nothing connected to 127.0.0.1");
    assert_eq!(origin.connections(), 0);
}

#[tokio::test]
async fn a_jwks_uri_on_a_port_not_allowed_is_refused_before_any_lookup() {
    let world = World::new().await;
    let k1 = key("k1");
    let (origin, client, _) = keys_origin(&world, &[&k1]).await;
    let auth = authenticator(&world.config(origin.port()), ClientAuthLimits::default());
    let other_port = if origin.port() == 8443 { 9443 } else { 8443 };
    let jwks_uri = client_id("elsewhere.test", other_port, "/jwks.json");
    let error = auth
        .authenticate(
            id(&client).as_str(),
            &document(&client, &jwks_uri),
            &assertion(&k1, "k1", &client),
        )
        .await
        .expect_err("port not allowed");
    assert_eq!(error.as_str(), "jwks_fetch_failed");
    assert!(error.description().contains("port_not_allowed"));
    assert_eq!(world.dns.queries("elsewhere.test"), 0);
}

/// A complete 200 JSON response, for scripts that pause before answering.
fn json_response(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
