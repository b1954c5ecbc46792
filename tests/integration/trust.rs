//! Software statements against real origins: the issuer's keys behind a
//! `jwks_uri` fetched through the hardened fetcher and cached, a `jwks_uri`
//! at a refused address that is never connected to, and `check` reporting
//! the verdict, with statements made by the binary's own `statement` commands.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use cimd_proxy::{ClientIdUrl, Config, DocumentCache, Egress, SigningKeys, Trust};
use serde_json::{Value, json};

use crate::support::{Cli, ConfigFile, Decoy, Origin, Script, World, client_id};

/// The issuer name in every test: the `iss` and the `[[trust.issuers]]` name.
const REGISTRY: &str = "https://registry.test";

/// Writes a new P-256 private key (PKCS#8 PEM) and returns its path.
fn write_key(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let pair = rcgen::KeyPair::generate().expect("P-256 key");
    std::fs::write(&path, pair.serialize_pem()).expect("write key");
    path
}

/// Runs the binary and returns its standard output, which must be a success.
async fn run_ok(args: &[&str]) -> String {
    let out = Cli::new(args.iter().copied()).run().await;
    assert_eq!(out.status, Some(0), "{out}");
    out.stdout.trim().to_owned()
}

/// `cimd-proxy statement jwks --key KEY`.
async fn public_jwks(key: &Path) -> String {
    run_ok(&["statement", "jwks", "--key", &key.to_string_lossy()]).await
}

/// `cimd-proxy statement sign --key KEY --issuer REGISTRY --client-id CLIENT ARGS`.
async fn statement(key: &Path, client: &str, args: &[&str]) -> String {
    let key = key.to_string_lossy();
    let mut all = vec!["statement", "sign", "--key", &key, "--issuer", REGISTRY];
    all.extend(["--client-id", client]);
    all.extend(args);
    run_ok(&all).await
}

/// A public-client document for `client` carrying `statement`.
fn document_with(client: &str, statement: Option<&str>) -> String {
    let mut doc = json!({
        "client_id": client,
        "client_name": "Self-declared",
        "redirect_uris": ["https://app.test/cb"],
        "token_endpoint_auth_method": "none",
    });
    if let Some(statement) = statement {
        doc["software_statement"] = statement.into();
    }
    doc.to_string()
}

/// `registry.test` serving `jwks` at `/jwks.json`; the origin and the URL.
async fn registry(world: &World, jwks: &str) -> (Origin, String) {
    let (origin, _) = world.host_with("registry.test", |_| Script::new()).await;
    origin.set_route("/jwks.json", Script::json(jwks));
    let url = client_id("registry.test", origin.port(), "/jwks.json");
    (origin, url)
}

/// The test configuration for the app origin, also allowing `more_ports`,
/// trusting REGISTRY with keys from `keys_toml` (`jwks_uri = …` or
/// `jwks_file = …`), and `policy` appended.
fn trusting(
    world: &World,
    app_port: u16,
    more_ports: &[u16],
    keys_toml: &str,
    policy: &str,
) -> ConfigFile {
    let mut file = world.config(app_port);
    file.fetch.allowed_ports.extend_from_slice(more_ports);
    file.with_extra(&format!(
        "[[trust.issuers]]\nname = \"{REGISTRY}\"\n{keys_toml}\n\n{policy}"
    ))
}

const VOUCHED_ALLOW: &str = r#"[policy]
default_action = "warn"
[[policy.rules]]
require_statement_from = ["https://registry.test"]
action = "allow"
"#;

#[tokio::test]
async fn the_whole_chain_from_key_to_vouched_check() {
    let world = World::new().await;
    let key = write_key(world.dir.path(), "registry.pem");
    let jwks = public_jwks(&key).await;
    let jwks_file = world.dir.path().join("registry.jwks.json");
    std::fs::write(&jwks_file, &jwks).expect("write jwks");

    // The statement is made once the client_id (with the origin's port) is known.
    let (origin, client) = world.app_with(|_| Script::new()).await;
    let signed = statement(&key, &client, &["--claim", "client_name=Vouched App"]).await;
    origin.set_script(Script::json(document_with(&client, Some(&signed))));

    let keys = format!("jwks_file = {:?}", jwks_file.to_string_lossy());
    let file = trusting(&world, origin.port(), &[], &keys, VOUCHED_ALLOW);
    let out = world.check(&file, &client).await;
    assert_eq!(out.status, Some(0), "{out}");
    let report = out.json();
    assert_eq!(report["decision"], "allow", "{out}");
    assert_eq!(
        report["statement"],
        json!({"issuer": REGISTRY, "valid": true, "reason": null})
    );
    assert_eq!(report["metadata"]["client_name"], "Vouched App");
    assert!(
        report["policy"]["reasons"]
            .as_array()
            .expect("reasons")
            .contains(&json!({"kind": "vouched", "issuer": REGISTRY})),
        "{out}"
    );
    let human = Cli::check_human(&world.write_config(&file), &client)
        .run()
        .await;
    assert!(
        human.stdout.contains(&format!("vouched for by {REGISTRY}")),
        "{human}"
    );

    // The same document without the statement: valid, but only warned about.
    origin.set_script(Script::json(document_with(&client, None)));
    let out = world.check(&file, &client).await;
    assert_eq!(out.status, Some(0), "{out}");
    assert_eq!(out.json()["decision"], "warn");
    assert_eq!(out.json()["statement"], Value::Null);
}

#[tokio::test]
async fn check_reports_a_bad_statement_as_invalid_metadata_with_its_reason() {
    let world = World::new().await;
    let key = write_key(world.dir.path(), "registry.pem");
    let other_key = write_key(world.dir.path(), "impostor.pem");
    let jwks_file = world.dir.path().join("registry.jwks.json");
    std::fs::write(&jwks_file, public_jwks(&key).await).expect("write jwks");
    let (origin, client) = world.app_with(|_| Script::new()).await;
    let keys = format!("jwks_file = {:?}", jwks_file.to_string_lossy());
    let file = trusting(&world, origin.port(), &[], &keys, VOUCHED_ALLOW);

    let cases = [
        (
            statement(&other_key, &client, &[]).await,
            "software_statement: signed by an unknown key",
        ),
        (
            statement(&key, "https://other.test/client.json", &[]).await,
            "software_statement: is for another client: \"https://other.test/client.json\"",
        ),
        (
            statement(
                &key,
                &client,
                &["--claim-json", r#"redirect_uris=["https://evil.test/cb"]"#],
            )
            .await,
            "software_statement: its redirect_uris disagree with the document's",
        ),
    ];
    for (signed, message) in cases {
        origin.set_script(Script::json(document_with(&client, Some(&signed))));
        let out = world.check(&file, &client).await;
        assert_eq!(out.status, Some(1), "{out}");
        assert_eq!(
            out.error_code().as_deref(),
            Some("invalid_metadata"),
            "{out}"
        );
        assert_eq!(out.error_message().as_deref(), Some(message), "{out}");
        let report = out.json();
        assert_eq!(report["statement"]["valid"], false);
        assert_eq!(report["statement"]["issuer"], REGISTRY);
        assert_eq!(
            report["statement"]["reason"],
            message.trim_start_matches("software_statement: ")
        );
        assert!(
            !out.stdout
                .contains(signed.rsplit('.').next().unwrap_or_default())
        );
    }

    // Without [[trust.issuers]] the same statement is not evaluated at all.
    let mut plain = world.config(origin.port());
    plain = plain.with_policy("warn", &[]);
    let out = world.check(&plain, &client).await;
    assert_eq!(out.status, Some(0), "{out}");
    assert_eq!(out.json()["statement"]["valid"], false);
    assert!(
        out.json()["statement"]["reason"]
            .as_str()
            .is_some_and(|reason| reason.starts_with("not checked")),
        "{out}"
    );
}

#[tokio::test]
async fn an_issuer_jwks_uri_at_a_refused_address_fails_the_statement_and_is_never_connected_to() {
    let world = World::new().await;
    let key = write_key(world.dir.path(), "registry.pem");
    let (origin, client) = world.app_with(|_| Script::new()).await;
    let signed = statement(&key, &client, &[]).await;
    origin.set_script(Script::json(document_with(&client, Some(&signed))));
    let decoy = Decoy::start(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0))
        .await
        .expect("decoy on 127.0.0.1");

    for (host, answer) in [
        ("loopback-registry.test", IpAddr::V4(Ipv4Addr::LOCALHOST)),
        (
            "metadata-registry.test",
            IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
        ),
        (
            "private-registry.test",
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        ),
    ] {
        world.dns.set(host, &[answer]);
        let jwks_uri = client_id(host, decoy.port(), "/jwks.json");
        let keys = format!("jwks_uri = {jwks_uri:?}");
        let file = trusting(&world, origin.port(), &[decoy.port()], &keys, VOUCHED_ALLOW);
        let out = world.check(&file, &client).await;
        assert_eq!(out.status, Some(1), "{host}: {out}");
        assert_eq!(
            out.error_code().as_deref(),
            Some("invalid_metadata"),
            "{out}"
        );
        let message = out.error_message().unwrap_or_default();
        assert_eq!(
            message,
            format!("software_statement: fetching {REGISTRY}'s keys failed (blocked_address)"),
            "{host}"
        );
        // The refused address is for the operator's log, not the message.
        assert!(!message.contains(&answer.to_string()), "{message}");
    }
    assert_eq!(decoy.connections(), 0, "nothing connected to 127.0.0.1");
}

#[tokio::test]
async fn an_issuer_jwks_uri_is_fetched_once_and_then_served_from_the_cache() {
    let world = World::new().await;
    let keys = SigningKeys::generate_ephemeral().expect("key");
    let (registry_origin, jwks_uri) = registry(&world, &keys.jwks().to_string()).await;
    let (origin, client) = world.app_with(|_| Script::new()).await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let signed = keys
        .sign(&json!({"iss": REGISTRY, "client_id": client, "iat": now, "exp": now + 600}))
        .expect("sign");
    origin.set_script(Script::json(document_with(&client, Some(&signed))));

    let file = trusting(
        &world,
        origin.port(),
        &[registry_origin.port()],
        &format!("jwks_uri = {jwks_uri:?}"),
        "",
    );
    let config = Config::from_toml_str(&file.to_toml(), None).expect("valid config");
    let egress = Arc::new(Egress::new(&config.fetch, Vec::new()).expect("egress"));
    let cache = DocumentCache::new(Arc::clone(&egress), config.cache.clone());
    let trust = Trust::new(&config.trust, egress).expect("trust");
    let id = ClientIdUrl::parse(&client).expect("client_id");
    for _ in 0..3 {
        let vetted = trust.resolve(&cache, &id).await.expect("vouched");
        assert_eq!(vetted.vouched_by(), Some(REGISTRY));
    }
    let fetches = || {
        registry_origin
            .requests()
            .iter()
            .filter(|request| request.path == "/jwks.json")
            .count()
    };
    assert_eq!(fetches(), 1);

    // A reload keeps the fetched keys; a statement by an unknown key forces
    // one refetch, and a burst of them no more.
    let trust = trust.reconfigured(&config.trust).expect("trust");
    let impostor = SigningKeys::generate_ephemeral().expect("key");
    let forged = impostor
        .sign(&json!({"iss": REGISTRY, "client_id": client, "iat": now}))
        .expect("sign");
    let forged_doc = Arc::new(
        cimd_proxy::metadata::validate(&id, document_with(&client, Some(&forged)).as_bytes())
            .expect("valid document"),
    );
    for _ in 0..5 {
        let error = trust
            .vet(&id, Arc::clone(&forged_doc))
            .await
            .expect_err("unknown key");
        assert_eq!(
            error.to_string(),
            "software_statement: signed by an unknown key"
        );
    }
    assert_eq!(
        fetches(),
        2,
        "one refetch for the unknown kid, rate limited"
    );
}
