//! The servers the proxy talks to, in one process:
//!
//! * the document host (HTTPS, a generated CA) serving any number of client
//!   documents: `/c/ID.json` (public clients, answered at once),
//!   `/s/ID.json` (the stampede's document, answered after a delay, each
//!   fetch counted by path), `/t/ID.json` (private_key_jwt clients) and
//!   `/jwks/ID.json` (their keys);
//! * the slow host (HTTPS) for the flood: `/f/ID.json` answers a valid
//!   document after `slow_ms`; it counts connections open at once;
//! * the upstream stand-in (plain http): discovery, `/token`, `/jwks`;
//! * `/stats` on a separate port: what each of them saw, as JSON.
//!
//! Before it reports ready (the file `DIR/fixtures.ready`) it writes into
//! DIR the CA (`ca.pem`), the proxy's signing key (`signing.pem`) and the
//! private_key_jwt clients' RSA key (`client-key.der`, PKCS#8).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rsa::pkcs8::EncodePrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::net::{Gauge, ensure_loopback, respond, serve};

/// The upstream client_id the proxy is registered as at the stand-in.
pub const UPSTREAM_CLIENT_ID: &str = "bench-upstream";
/// The nonce sealed into every benchmark code and carried by the stand-in's id_token.
pub const BENCH_NONCE: &str = "bench-nonce-0123456789";
/// The kid of the private_key_jwt clients' key.
pub const CLIENT_KID: &str = "bench-client-1";

pub struct FixtureArgs {
    pub dir: PathBuf,
    pub docs: SocketAddr,
    pub slow: SocketAddr,
    pub upstream: SocketAddr,
    pub stats: SocketAddr,
    pub slow_ms: u64,
    pub stampede_delay_ms: u64,
    pub max_seconds: u64,
}

#[derive(Default)]
struct Counters {
    documents: AtomicU64,
    stampede: AtomicU64,
    token_documents: AtomicU64,
    jwks: AtomicU64,
    slow_requests: AtomicU64,
    upstream_discovery: AtomicU64,
    upstream_token: AtomicU64,
    upstream_jwks: AtomicU64,
    by_path: Mutex<HashMap<String, u64>>,
}

/// A realistic client metadata document (about 0.9 KB).
pub fn client_document(client_id: &str, id: &str, origin: &str) -> String {
    json!({
        "client_id": client_id,
        "client_name": format!("Bench Client {id}"),
        "client_uri": format!("{origin}/apps/{id}"),
        "logo_uri": format!("{origin}/logos/{id}.png"),
        "tos_uri": format!("{origin}/apps/{id}/terms"),
        "policy_uri": format!("{origin}/apps/{id}/privacy"),
        "redirect_uris": [
            redirect_uri(id),
            "http://127.0.0.1/oauth/callback",
        ],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "scope": "openid profile email offline_access mcp:tools mcp:resources",
        "application_type": "web",
        "software_id": "6f1c2a0e-5b7d-4c9b-9e0d-7d3f2c1b0a99",
        "software_version": "1.4.2",
        "contacts": [format!("security@app-{id}.bench.example")],
    })
    .to_string()
}

/// The redirect URI a benchmark client lists first.
pub fn redirect_uri(id: &str) -> String {
    format!("https://app-{id}.bench.example/oauth/callback")
}

pub fn token_client_document(client_id: &str, id: &str, origin: &str) -> String {
    json!({
        "client_id": client_id,
        "client_name": format!("Bench Confidential Client {id}"),
        "client_uri": format!("{origin}/apps/{id}"),
        "redirect_uris": [redirect_uri(id)],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "private_key_jwt",
        "token_endpoint_auth_signing_alg": "RS256",
        "jwks_uri": format!("{origin}/jwks/{id}.json"),
        "scope": "openid profile email offline_access",
        "software_version": "2.0.0",
    })
    .to_string()
}

fn rsa_jwk(key: &rsa::RsaPublicKey, kid: &str) -> Value {
    json!({
        "kty": "RSA",
        "kid": kid,
        "use": "sig",
        "alg": "RS256",
        "n": B64.encode(key.n().to_bytes_be()),
        "e": B64.encode(key.e().to_bytes_be()),
    })
}

fn new_rsa_key() -> rsa::RsaPrivateKey {
    rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("generate RSA key")
}

/// A sealer with the proxy's key (`seal.key` in the work directory), to
/// seal codes as `/callback` does.
pub fn proxy_sealer(dir: &Path) -> cimd_proxy::Sealer {
    let seal_key = std::fs::read_to_string(dir.join("seal.key")).expect("read seal.key");
    let key_bytes: [u8; 32] = B64
        .decode(seal_key.trim())
        .expect("seal key is base64url")
        .try_into()
        .expect("seal key is 32 bytes");
    cimd_proxy::Sealer::new(vec![key_bytes]).expect("sealer")
}

/// Writes `lines` round-robin over `files` files (`PREFIX.0`,
/// `PREFIX.1`, ...), one per wrk thread's Lua state.
pub fn write_spread(lines: &[String], files: usize, prefix: &Path) {
    use std::io::Write as _;
    let mut writers: Vec<_> = (0..files)
        .map(|f| {
            std::io::BufWriter::new(
                std::fs::File::create(format!("{}.{f}", prefix.display())).expect("bodies file"),
            )
        })
        .collect();
    for (n, line) in lines.iter().enumerate() {
        writeln!(writers[n % files], "{line}").expect("write a body");
    }
    for mut writer in writers {
        writer.flush().expect("flush bodies");
    }
}

/// The code `/callback` would seal for `client_id` (whose document is
/// `document`, as the document host serves it) and its `redirect`: the
/// library's own payload, bound to that document, under the proxy's key.
pub fn sealed_code(
    sealer: &cimd_proxy::Sealer,
    (client_id, document): (&str, &str),
    redirect: &str,
    n: u64,
) -> String {
    use cimd_proxy::flow::{MetadataFingerprint, RedirectUri, SealedCode};
    let parsed = cimd_proxy::client_id::ClientIdUrl::parse(client_id).expect("a bench client_id");
    let metadata =
        cimd_proxy::metadata::validate(&parsed, document.as_bytes()).expect("a valid document");
    let scope = "openid profile email offline_access";
    sealer.seal(
        cimd_proxy::Purpose::Code,
        Duration::from_secs(600),
        &SealedCode {
            upstream_code: format!("upstream-code-{n:012}"),
            client_id: client_id.to_owned(),
            redirect_uri: RedirectUri::registered(&metadata, redirect).expect("registered"),
            redirect_uri_asked: true,
            nonce: Some(BENCH_NONCE.to_owned()),
            scope: scope.to_owned(),
            upstream_client: "main".to_owned(),
            granted_scope: scope.to_owned(),
            resource: None,
            metadata: Some(MetadataFingerprint::of(&metadata)),
        },
    )
}

/// Signs a JWT with RS256 (ring).
pub fn sign_rs256(key: &ring::signature::RsaKeyPair, header: &Value, claims: &Value) -> String {
    let rng = ring::rand::SystemRandom::new();
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let mut signature = vec![0u8; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &rng,
        input.as_bytes(),
        &mut signature,
    )
    .expect("RS256 signature");
    format!("{input}.{}", B64.encode(signature))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The id of a document path `/PREFIX/ID.json`, when ID is plain.
fn document_id<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let id = path.strip_prefix(prefix)?.strip_suffix(".json")?;
    (!id.is_empty()
        && id.len() <= 80
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    .then_some(id)
}

/// A document as a static host serves it: a lifetime, and validators.
fn json_response(body: String) -> Response<Full<Bytes>> {
    use hyper::header::{CACHE_CONTROL, ETAG, HeaderValue, LAST_MODIFIED};
    let digest = ring::digest::digest(&ring::digest::SHA256, body.as_bytes());
    let etag = format!(
        "\"{:x}-{}\"",
        body.len(),
        B64.encode(&digest.as_ref()[..12])
    );
    let mut response = respond(StatusCode::OK, "application/json", body);
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=3600"));
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(ETAG, etag);
    }
    headers.insert(
        LAST_MODIFIED,
        HeaderValue::from_static("Mon, 02 Nov 2026 09:30:00 GMT"),
    );
    response
}

pub async fn run(args: FixtureArgs) {
    for addr in [&args.docs, &args.slow, &args.upstream, &args.stats] {
        ensure_loopback(addr);
    }
    std::fs::create_dir_all(&args.dir).expect("create the fixture directory");

    // The CA and one leaf for both hosts' addresses.
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "cimd-proxy benchmark CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign CA");
    let issuer = Issuer::new(ca_params, ca_key);
    let names: Vec<String> = [args.docs.ip(), args.slow.ip()]
        .iter()
        .map(ToString::to_string)
        .collect();
    let leaf_key = KeyPair::generate().expect("leaf key");
    let mut leaf_params = CertificateParams::new(names).expect("leaf params");
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = leaf_params
        .signed_by(&leaf_key, &issuer)
        .expect("sign leaf");
    std::fs::write(args.dir.join("ca.pem"), ca_cert.pem()).expect("write ca.pem");
    let server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![
            leaf.der().clone(),
            CertificateDer::from(ca_cert.der().to_vec()),
        ],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    )
    .expect("server certificate");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));

    // The proxy's id_token signing key (P-256), the clients' and the provider's RSA keys.
    let signing = KeyPair::generate().expect("signing key");
    std::fs::write(args.dir.join("signing.pem"), signing.serialize_pem()).expect("signing.pem");
    let client_key = new_rsa_key();
    let client_der = client_key
        .to_pkcs8_der()
        .expect("PKCS#8")
        .as_bytes()
        .to_vec();
    std::fs::write(args.dir.join("client-key.der"), &client_der).expect("client-key.der");
    let client_jwks =
        json!({ "keys": [rsa_jwk(&client_key.to_public_key(), CLIENT_KID)] }).to_string();
    let provider_key = new_rsa_key();
    let provider_jwks =
        json!({ "keys": [rsa_jwk(&provider_key.to_public_key(), "upstream-1")] }).to_string();
    let provider_pair = ring::signature::RsaKeyPair::from_pkcs8(
        provider_key.to_pkcs8_der().expect("PKCS#8").as_bytes(),
    )
    .expect("ring RSA key");
    let issuer_url = format!("http://{}", args.upstream);
    let now = unix_now();
    let id_token = sign_rs256(
        &provider_pair,
        &json!({ "alg": "RS256", "kid": "upstream-1", "typ": "JWT" }),
        &json!({
            "iss": issuer_url,
            "sub": "00000000-user-bench-0001",
            "aud": UPSTREAM_CLIENT_ID,
            "exp": now + args.max_seconds + 3600,
            "iat": now,
            "auth_time": now,
            "nonce": BENCH_NONCE,
            "email": "user@bench.example",
            "name": "Bench User",
        }),
    );

    let counters = Arc::new(Counters::default());
    let slow_gauge = Arc::new(Gauge::default());
    let docs_origin = format!("https://{}", args.docs);
    let slow_origin = format!("https://{}", args.slow);

    // The document host.
    let docs = {
        let counters = Arc::clone(&counters);
        let origin = docs_origin.clone();
        let client_jwks = client_jwks.clone();
        let delay = Duration::from_millis(args.stampede_delay_ms);
        move |request: Request<Incoming>| {
            let counters = Arc::clone(&counters);
            let origin = origin.clone();
            let client_jwks = client_jwks.clone();
            async move {
                let path = request.uri().path().to_owned();
                if let Some(id) = document_id(&path, "/c/") {
                    counters.documents.fetch_add(1, Ordering::Relaxed);
                    let client_id = format!("{origin}{path}");
                    return json_response(client_document(&client_id, id, &origin));
                }
                if let Some(id) = document_id(&path, "/s/") {
                    counters.stampede.fetch_add(1, Ordering::Relaxed);
                    *counters
                        .by_path
                        .lock()
                        .unwrap()
                        .entry(path.clone())
                        .or_default() += 1;
                    tokio::time::sleep(delay).await;
                    let client_id = format!("{origin}{path}");
                    return json_response(client_document(&client_id, id, &origin));
                }
                if let Some(id) = document_id(&path, "/t/") {
                    counters.token_documents.fetch_add(1, Ordering::Relaxed);
                    let client_id = format!("{origin}{path}");
                    return json_response(token_client_document(&client_id, id, &origin));
                }
                if document_id(&path, "/jwks/").is_some() {
                    counters.jwks.fetch_add(1, Ordering::Relaxed);
                    return json_response(client_jwks);
                }
                respond(StatusCode::NOT_FOUND, "text/plain", "not found")
            }
        }
    };

    // The slow host.
    let slow = {
        let counters = Arc::clone(&counters);
        let origin = slow_origin.clone();
        let delay = Duration::from_millis(args.slow_ms);
        move |request: Request<Incoming>| {
            let counters = Arc::clone(&counters);
            let origin = origin.clone();
            async move {
                counters.slow_requests.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(delay).await;
                let path = request.uri().path().to_owned();
                match document_id(&path, "/f/") {
                    Some(id) => {
                        let client_id = format!("{origin}{path}");
                        json_response(client_document(&client_id, id, &origin))
                    }
                    None => respond(StatusCode::NOT_FOUND, "text/plain", "not found"),
                }
            }
        }
    };

    // The upstream stand-in.
    let upstream = {
        let counters = Arc::clone(&counters);
        let issuer = issuer_url.clone();
        let discovery = json!({
            "issuer": issuer_url,
            "authorization_endpoint": format!("{issuer_url}/authorize"),
            "token_endpoint": format!("{issuer_url}/token"),
            "jwks_uri": format!("{issuer_url}/jwks"),
            "userinfo_endpoint": format!("{issuer_url}/userinfo"),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        })
        .to_string();
        let token_count = Arc::new(AtomicU64::new(0));
        move |request: Request<Incoming>| {
            let counters = Arc::clone(&counters);
            let discovery = discovery.clone();
            let provider_jwks = provider_jwks.clone();
            let id_token = id_token.clone();
            let token_count = Arc::clone(&token_count);
            let _ = &issuer;
            async move {
                match (request.method().as_str(), request.uri().path()) {
                    ("GET", "/.well-known/openid-configuration") => {
                        counters.upstream_discovery.fetch_add(1, Ordering::Relaxed);
                        respond(StatusCode::OK, "application/json", discovery)
                    }
                    ("GET", "/jwks") => {
                        counters.upstream_jwks.fetch_add(1, Ordering::Relaxed);
                        respond(StatusCode::OK, "application/json", provider_jwks)
                    }
                    ("POST", "/token") => {
                        counters.upstream_token.fetch_add(1, Ordering::Relaxed);
                        // Drain the form; the stand-in trusts it (it is not under test).
                        let _ = http_body_util::BodyExt::collect(request.into_body()).await;
                        let n = token_count.fetch_add(1, Ordering::Relaxed);
                        let body = json!({
                            "access_token": format!("at-bench-{n:012}-ZXhhbXBsZSBhY2Nlc3MgdG9rZW4"),
                            "token_type": "Bearer",
                            "expires_in": 3600,
                            "refresh_token": format!("rt-bench-{n:012}-ZXhhbXBsZSByZWZyZXNo"),
                            "scope": "openid profile email offline_access",
                            "id_token": id_token,
                        })
                        .to_string();
                        let mut response = respond(StatusCode::OK, "application/json", body);
                        response.headers_mut().insert(
                            hyper::header::CACHE_CONTROL,
                            hyper::header::HeaderValue::from_static("no-store"),
                        );
                        response
                    }
                    _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found"),
                }
            }
        }
    };

    // The stats endpoint.
    let stats = {
        let counters = Arc::clone(&counters);
        let slow_gauge = Arc::clone(&slow_gauge);
        move |request: Request<Incoming>| {
            let counters = Arc::clone(&counters);
            let slow_gauge = Arc::clone(&slow_gauge);
            async move {
                if request.uri().path() == "/reset-slow-max" {
                    slow_gauge.reset_max();
                }
                let load = |c: &AtomicU64| c.load(Ordering::SeqCst);
                let body = json!({
                    "documents": load(&counters.documents),
                    "stampede": load(&counters.stampede),
                    "token_documents": load(&counters.token_documents),
                    "jwks": load(&counters.jwks),
                    "stampede_by_path": *counters.by_path.lock().unwrap(),
                    "slow_requests": load(&counters.slow_requests),
                    "slow": slow_gauge.snapshot(),
                    "upstream": {
                        "discovery": load(&counters.upstream_discovery),
                        "token": load(&counters.upstream_token),
                        "jwks": load(&counters.upstream_jwks),
                    },
                })
                .to_string();
                respond(StatusCode::OK, "application/json", body)
            }
        }
    };

    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("cannot listen on {addr}: {e}"))
    };
    tokio::spawn(serve(
        bind(args.docs).await,
        Some(acceptor.clone()),
        None,
        docs,
    ));
    tokio::spawn(serve(
        bind(args.slow).await,
        Some(acceptor),
        Some(slow_gauge),
        slow,
    ));
    tokio::spawn(serve(bind(args.upstream).await, None, None, upstream));
    tokio::spawn(serve(bind(args.stats).await, None, None, stats));
    std::fs::write(args.dir.join("fixtures.ready"), "ready\n").expect("ready file");
    eprintln!(
        "fixtures: documents {docs_origin}, slow {slow_origin}, upstream {issuer_url}, stats http://{}",
        args.stats
    );
    // Bounded: the fixtures stop by themselves even if nobody kills them.
    tokio::time::sleep(Duration::from_secs(args.max_seconds)).await;
    eprintln!("fixtures: --max-seconds reached, stopping");
}
