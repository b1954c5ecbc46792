//! The provider client against a real HTTP server on 127.0.0.1:0.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::http::header::{self, HeaderMap, HeaderValue};
use ::http::{Method, StatusCode};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use url::Url;

use super::*;
use crate::secret::SecretSource;
use credentials::AssertionClaims;

/// One request as the provider saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Seen {
    fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }

    fn field(&self, name: &str) -> Option<String> {
        let mut values = self
            .form()
            .into_iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value);
        let first = values.next();
        assert!(values.next().is_none(), "{name} sent twice");
        first
    }
}

enum Reply {
    Json(StatusCode, Value),
    Raw(
        StatusCode,
        &'static str,
        Vec<u8>,
        Vec<(&'static str, &'static str)>,
    ),
    /// Answers only after the client has long given up.
    Hang,
}

type Handler = dyn Fn(&str, &Seen) -> Reply + Send + Sync;

/// A provider stand-in: records every request and answers with `handler`,
/// which also gets the server's base URL (`http://127.0.0.1:PORT`).
struct TestServer {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    async fn start(handler: impl Fn(&str, &Seen) -> Reply + Send + Sync + 'static) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let task = {
            let (base, seen) = (base.clone(), Arc::clone(&seen));
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let (base, seen, handler) =
                        (base.clone(), Arc::clone(&seen), Arc::clone(&handler));
                    tokio::spawn(async move {
                        let service =
                            service_fn(move |request: ::http::Request<hyper::body::Incoming>| {
                                let (base, seen, handler) =
                                    (base.clone(), Arc::clone(&seen), Arc::clone(&handler));
                                async move {
                                    let (parts, body) = request.into_parts();
                                    let body = body.collect().await.unwrap().to_bytes();
                                    let request = Seen {
                                        method: parts.method,
                                        path: parts.uri.to_string(),
                                        headers: parts.headers,
                                        body,
                                    };
                                    seen.lock().unwrap().push(request.clone());
                                    let reply = handler(&base, &request);
                                    Ok::<_, Infallible>(respond(reply).await)
                                }
                            });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        };
        TestServer { base, seen, task }
    }

    fn url(&self, path: &str) -> Url {
        Url::parse(&format!("{}{path}", self.base)).unwrap()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn count(&self, path: &str) -> usize {
        self.seen().iter().filter(|seen| seen.path == path).count()
    }

    fn last(&self, path: &str) -> Seen {
        self.seen()
            .into_iter()
            .rev()
            .find(|seen| seen.path == path)
            .unwrap()
    }
}

async fn respond(reply: Reply) -> ::http::Response<Full<Bytes>> {
    let (status, content_type, body, extra) = match reply {
        Reply::Json(status, value) => (
            status,
            "application/json",
            serde_json::to_vec(&value).unwrap(),
            Vec::new(),
        ),
        Reply::Raw(status, content_type, body, extra) => (status, content_type, body, extra),
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            (
                StatusCode::OK,
                "application/json",
                b"{}".to_vec(),
                Vec::new(),
            )
        }
    };
    let mut response = ::http::Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type);
    for (name, value) in extra {
        response = response.header(name, value);
    }
    response.body(Full::new(Bytes::from(body))).unwrap()
}

fn discovery_document(base: &str) -> Value {
    json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "scopes_supported": ["openid", "profile"],
        "claims_supported": ["sub", "email"],
        "code_challenge_methods_supported": ["S256"]
    })
}

fn tokens() -> Value {
    json!({"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600})
}

/// A provider at the server's root: discovery, `/token`, `/jwks`.
fn standard(base: &str, seen: &Seen) -> Reply {
    match seen.path.as_str() {
        "/.well-known/openid-configuration" => {
            Reply::Json(StatusCode::OK, discovery_document(base))
        }
        "/token" => Reply::Json(StatusCode::OK, tokens()),
        "/jwks" => Reply::Json(
            StatusCode::OK,
            json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256",
                "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}),
        ),
        _ => Reply::Json(StatusCode::NOT_FOUND, json!({"error": "not_found"})),
    }
}

fn testdata(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/upstream/testdata")
        .join(name)
}

/// One client per auth method, secrets in files under `dir`.
fn config(server: &TestServer, dir: &tempfile::TempDir) -> UpstreamConfig {
    let secret_file = |name: &str, value: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{value}\n")).unwrap();
        Some(SecretSource::File(path))
    };
    let client = |client_id: &str, auth_method, client_secret, private_key_file| UpstreamClient {
        client_id: client_id.to_owned(),
        auth_method,
        client_secret,
        private_key_file,
        redirect_mode: RedirectMode::Relay,
    };
    let clients = [
        (
            "basic",
            client(
                "basic:app",
                UpstreamAuthMethod::ClientSecretBasic,
                secret_file("basic", "s3cr3t+/="),
                None,
            ),
        ),
        (
            "post",
            client(
                "post-app",
                UpstreamAuthMethod::ClientSecretPost,
                secret_file("post", "p0st secret"),
                None,
            ),
        ),
        (
            "jwt",
            client(
                "jwt-app",
                UpstreamAuthMethod::PrivateKeyJwt,
                None,
                Some(testdata("p256-pkcs8.pem")),
            ),
        ),
        (
            "rsa",
            client(
                "rsa-app",
                UpstreamAuthMethod::PrivateKeyJwt,
                None,
                Some(testdata("rsa2048-pkcs1.pem")),
            ),
        ),
        (
            "public",
            client("public-app", UpstreamAuthMethod::None, None, None),
        ),
    ];
    UpstreamConfig {
        issuer: Some(server.url("")),
        timeout: Duration::from_secs(5),
        clients: clients
            .into_iter()
            .map(|(name, client)| (name.to_owned(), client))
            .collect(),
        ..UpstreamConfig::default()
    }
}

async fn start_provider(server: &TestServer) -> (Provider, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let provider = Provider::discover(&config(server, &dir)).await.unwrap();
    (provider, dir)
}

const CODE_GRANT: [(&str, &str); 3] = [
    ("code", "c0de"),
    ("redirect_uri", "https://proxy.example/callback"),
    ("code_verifier", "v3rifier"),
];

// ---- discovery ----

#[tokio::test]
async fn discovery_reads_the_openid_configuration() {
    let server = TestServer::start(standard).await;
    let (provider, _dir) = start_provider(&server).await;
    let metadata = provider.metadata();
    assert_eq!(metadata.issuer, server.base, "the provider's own spelling");
    assert_eq!(metadata.token_endpoint, server.url("/token"));
    assert_eq!(metadata.authorization_endpoint, server.url("/authorize"));
    assert_eq!(metadata.jwks_uri, Some(server.url("/jwks")));
    assert_eq!(metadata.userinfo_endpoint, Some(server.url("/userinfo")));
    assert_eq!(
        metadata.claims_supported,
        Some(vec!["sub".to_owned(), "email".to_owned()])
    );
    assert_eq!(
        metadata.raw["code_challenge_methods_supported"],
        json!(["S256"])
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, Method::GET);
    assert_eq!(seen[0].headers[header::ACCEPT], "application/json");
    assert_eq!(provider.client_id_of("basic"), Some("basic:app"));
    assert_eq!(provider.client_id_of("nobody"), None);
}

#[tokio::test]
async fn discovery_falls_back_to_rfc8414_on_404() {
    let server = TestServer::start(|base, seen| match seen.path.as_str() {
        "/.well-known/oauth-authorization-server/tenant" => {
            let mut document = discovery_document(base);
            document["issuer"] = json!(format!("{base}/tenant"));
            Reply::Json(StatusCode::OK, document)
        }
        _ => Reply::Json(StatusCode::NOT_FOUND, json!({})),
    })
    .await;
    let config = UpstreamConfig {
        issuer: Some(server.url("/tenant")),
        ..UpstreamConfig::default()
    };
    let provider = Provider::discover(&config).await.unwrap();
    assert_eq!(
        provider.metadata().issuer,
        format!("{}/tenant", server.base)
    );
    let paths: Vec<String> = server.seen().into_iter().map(|seen| seen.path).collect();
    assert_eq!(
        paths,
        [
            "/tenant/.well-known/openid-configuration",
            "/.well-known/oauth-authorization-server/tenant"
        ]
    );
}

#[tokio::test]
async fn discovery_refuses_another_issuer() {
    let server = TestServer::start(|base, _| {
        let mut document = discovery_document(base);
        document["issuer"] = json!("https://attacker.example");
        Reply::Json(StatusCode::OK, document)
    })
    .await;
    let config = UpstreamConfig {
        issuer: Some(server.url("")),
        ..UpstreamConfig::default()
    };
    let error = Provider::discover(&config).await.unwrap_err();
    assert!(
        matches!(&error, UpstreamError::IssuerMismatch { found, .. } if found == "https://attacker.example"),
        "{error}"
    );
    assert_eq!(error.oauth_error().as_str(), "server_error");
}

#[tokio::test]
async fn discovery_refuses_a_non_json_document_and_needs_an_issuer() {
    let server = TestServer::start(|_, _| {
        Reply::Raw(
            StatusCode::OK,
            "text/html",
            b"<html>login</html>".to_vec(),
            Vec::new(),
        )
    })
    .await;
    let config = UpstreamConfig {
        issuer: Some(server.url("")),
        ..UpstreamConfig::default()
    };
    let error = Provider::discover(&config).await.unwrap_err();
    assert!(matches!(error, UpstreamError::Discovery { .. }), "{error}");
    let error = Provider::discover(&UpstreamConfig::default())
        .await
        .unwrap_err();
    assert!(matches!(error, UpstreamError::MissingIssuer), "{error}");
}

#[tokio::test]
async fn credentials_fail_before_any_network_call() {
    let server = TestServer::start(standard).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&server, &dir);
    config.clients.insert(
        "broken".to_owned(),
        UpstreamClient {
            client_id: "x".to_owned(),
            auth_method: UpstreamAuthMethod::ClientSecretBasic,
            client_secret: Some(SecretSource::Env(
                "CIMD_PROXY_TEST_NEVER_SET_41d2".to_owned(),
            )),
            private_key_file: None,
            redirect_mode: RedirectMode::Relay,
        },
    );
    let error = Provider::discover(&config).await.unwrap_err().to_string();
    assert!(error.contains("upstream.clients.broken"), "{error}");
    assert!(error.contains("CIMD_PROXY_TEST_NEVER_SET_41d2"), "{error}");
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn refresh_keeps_the_last_good_metadata() {
    let status = Arc::new(AtomicU16::new(200));
    let server = {
        let status = Arc::clone(&status);
        TestServer::start(move |base, _| match status.load(Ordering::SeqCst) {
            200 => Reply::Json(StatusCode::OK, discovery_document(base)),
            201 => {
                let mut document = discovery_document(base);
                document["token_endpoint"] = json!(format!("{base}/token2"));
                Reply::Json(StatusCode::OK, document)
            }
            other => Reply::Json(StatusCode::from_u16(other).unwrap(), json!({})),
        })
        .await
    };
    let (provider, _dir) = start_provider(&server).await;
    status.store(500, Ordering::SeqCst);
    let error = provider.refresh_metadata().await.unwrap_err();
    assert_eq!(error.oauth_error().as_str(), "temporarily_unavailable");
    assert_eq!(provider.metadata().token_endpoint, server.url("/token"));
    status.store(201, Ordering::SeqCst);
    provider.refresh_metadata().await.unwrap();
    assert_eq!(provider.metadata().token_endpoint, server.url("/token2"));
}

// ---- token calls, one per auth method ----

#[tokio::test]
async fn token_with_client_secret_basic() {
    let server = TestServer::start(standard).await;
    let (provider, _dir) = start_provider(&server).await;
    let answer = provider.token("basic", &CODE_GRANT).await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["access_token"], "at-1");

    let seen = server.last("/token");
    assert_eq!(seen.method, Method::POST);
    assert_eq!(
        seen.headers[header::CONTENT_TYPE],
        "application/x-www-form-urlencoded"
    );
    let authorization = seen.headers[header::AUTHORIZATION].to_str().unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(authorization.strip_prefix("Basic ").unwrap())
        .unwrap();
    // RFC 6749 §2.3.1: each half form-urlencoded; the file's newline dropped.
    assert_eq!(decoded, b"basic%3Aapp:s3cr3t%2B%2F%3D");
    assert_eq!(
        seen.field("grant_type").as_deref(),
        Some("authorization_code")
    );
    assert_eq!(seen.field("code").as_deref(), Some("c0de"));
    assert_eq!(
        seen.field("redirect_uri").as_deref(),
        Some("https://proxy.example/callback")
    );
    assert_eq!(seen.field("code_verifier").as_deref(), Some("v3rifier"));
    assert_eq!(seen.field("client_secret"), None);
    assert_eq!(seen.field("client_id"), None);
}

#[tokio::test]
async fn token_with_client_secret_post() {
    let server = TestServer::start(standard).await;
    let (provider, _dir) = start_provider(&server).await;
    let params = [("refresh_token", "rt-1"), ("scope", "openid email")];
    provider.token("post", &params).await.unwrap();
    let seen = server.last("/token");
    assert!(seen.headers.get(header::AUTHORIZATION).is_none());
    assert_eq!(seen.field("grant_type").as_deref(), Some("refresh_token"));
    assert_eq!(seen.field("refresh_token").as_deref(), Some("rt-1"));
    assert_eq!(seen.field("scope").as_deref(), Some("openid email"));
    assert_eq!(seen.field("client_id").as_deref(), Some("post-app"));
    assert_eq!(seen.field("client_secret").as_deref(), Some("p0st secret"));
}

#[tokio::test]
async fn token_with_private_key_jwt() {
    let server = TestServer::start(standard).await;
    let (provider, _dir) = start_provider(&server).await;
    let cases = [
        ("jwt", "jwt-app", Algorithm::ES256, "p256-public.pem"),
        ("rsa", "rsa-app", Algorithm::RS256, "rsa2048-public.pem"),
    ];
    for (name, client_id, algorithm, public) in cases {
        provider.token(name, &CODE_GRANT).await.unwrap();
        let seen = server.last("/token");
        assert!(seen.headers.get(header::AUTHORIZATION).is_none());
        assert_eq!(seen.field("client_id").as_deref(), Some(client_id));
        assert_eq!(
            seen.field("client_assertion_type").as_deref(),
            Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        );
        let assertion = seen.field("client_assertion").unwrap();
        let pem = std::fs::read(testdata(public)).unwrap();
        let key = match algorithm {
            Algorithm::ES256 => DecodingKey::from_ec_pem(&pem).unwrap(),
            _ => DecodingKey::from_rsa_pem(&pem).unwrap(),
        };
        let token_endpoint = server.url("/token").to_string();
        let mut validation = Validation::new(algorithm);
        validation.set_audience(&[&token_endpoint]);
        validation.set_issuer(&[client_id]);
        let claims = jsonwebtoken::decode::<AssertionClaims>(&assertion, &key, &validation)
            .unwrap()
            .claims;
        assert_eq!(claims.sub, client_id);
        assert_eq!(claims.aud, token_endpoint);
        assert_eq!(claims.exp - claims.iat, 60);
        let header = jsonwebtoken::decode_header(&assertion).unwrap();
        assert!(header.kid.is_some_and(|kid| kid.len() == 43));
    }
}

#[tokio::test]
async fn token_as_a_public_client_and_reserved_params_ignored() {
    let server = TestServer::start(standard).await;
    let (provider, _dir) = start_provider(&server).await;
    let params = [
        ("grant_type", "authorization_code"),
        ("code", "c"),
        ("client_id", "someone-else"),
        ("client_secret", "guess"),
    ];
    provider.token("public", &params).await.unwrap();
    let seen = server.last("/token");
    assert!(seen.headers.get(header::AUTHORIZATION).is_none());
    assert_eq!(seen.field("client_id").as_deref(), Some("public-app"));
    assert_eq!(seen.field("client_secret"), None);
    assert_eq!(
        seen.field("grant_type").as_deref(),
        Some("authorization_code")
    );
    let error = provider.token("nobody", &params).await.unwrap_err();
    assert!(matches!(error, UpstreamError::UnknownClient(_)));
    assert_eq!(error.http_status(), 500);
}

// ---- the provider's answers ----

#[tokio::test]
async fn a_provider_oauth_error_is_relayed_with_its_status() {
    let server = TestServer::start(|base, seen| match seen.path.as_str() {
        "/token" => Reply::Json(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_grant", "error_description": "code expired"}),
        ),
        _ => standard(base, seen),
    })
    .await;
    let (provider, _dir) = start_provider(&server).await;
    let answer = provider.token("basic", &CODE_GRANT).await.unwrap();
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body["error"], "invalid_grant");
}

/// Every way the token endpoint can fail that is the provider's trouble,
/// not the client's: `temporarily_unavailable`, 503.
#[tokio::test]
async fn provider_failures_are_temporarily_unavailable() {
    let big = vec![b' '; super::http::MAX_RESPONSE_BYTES + 1];
    type MakeReply = Box<dyn Fn() -> Reply + Send + Sync>;
    let replies: Vec<(&str, MakeReply, &str)> = vec![
        (
            "503",
            Box::new(|| Reply::Json(StatusCode::SERVICE_UNAVAILABLE, json!({"error": "busy"}))),
            "status",
        ),
        (
            "html 400",
            Box::new(|| {
                Reply::Raw(
                    StatusCode::BAD_REQUEST,
                    "text/html",
                    b"<h1>no</h1>".to_vec(),
                    Vec::new(),
                )
            }),
            "invalid_response",
        ),
        (
            "non-JSON 200",
            Box::new(|| {
                Reply::Raw(
                    StatusCode::OK,
                    "application/json",
                    b"access_token=x".to_vec(),
                    Vec::new(),
                )
            }),
            "invalid_response",
        ),
        (
            "too large",
            Box::new(move || {
                Reply::Raw(StatusCode::OK, "application/json", big.clone(), Vec::new())
            }),
            "invalid_response",
        ),
        (
            "redirect",
            Box::new(|| {
                Reply::Raw(
                    StatusCode::FOUND,
                    "text/plain",
                    Vec::new(),
                    vec![("location", "/elsewhere")],
                )
            }),
            "status",
        ),
    ];
    for (case, reply, kind) in replies {
        let reply: Arc<dyn Fn() -> Reply + Send + Sync> = Arc::from(reply);
        let server = TestServer::start(move |base, seen| match seen.path.as_str() {
            "/token" => reply(),
            _ => standard(base, seen),
        })
        .await;
        let (provider, _dir) = start_provider(&server).await;
        let error = provider.token("basic", &CODE_GRANT).await.unwrap_err();
        assert_eq!(error.kind(), kind, "{case}: {error}");
        assert_eq!(
            error.oauth_error().as_str(),
            "temporarily_unavailable",
            "{case}"
        );
        assert_eq!(error.http_status(), 503, "{case}");
        assert_eq!(
            server.count("/elsewhere"),
            0,
            "{case}: no redirect followed"
        );
    }
}

#[tokio::test]
async fn a_hanging_provider_hits_the_deadline() {
    let server = TestServer::start(|base, seen| match seen.path.as_str() {
        "/token" => Reply::Hang,
        _ => standard(base, seen),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&server, &dir);
    config.timeout = Duration::from_millis(300);
    let provider = Provider::discover(&config).await.unwrap();
    let started = std::time::Instant::now();
    let error = provider.token("basic", &CODE_GRANT).await.unwrap_err();
    assert!(matches!(error, UpstreamError::Timeout { .. }), "{error}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(error.oauth_error().as_str(), "temporarily_unavailable");
    assert_eq!(error.http_status(), 503);
}

#[tokio::test]
async fn an_unreachable_token_endpoint_is_unavailable() {
    let server = TestServer::start(standard).await;
    // A port that was just free: nothing listens there any more.
    let closed: SocketAddr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&server, &dir);
    config.token_endpoint = Some(Url::parse(&format!("http://{closed}/token")).unwrap());
    let provider = Provider::discover(&config).await.unwrap();
    let error = provider.token("public", &CODE_GRANT).await.unwrap_err();
    assert!(
        matches!(error, UpstreamError::Unavailable { .. }),
        "{error}"
    );
    assert_eq!(error.oauth_error().as_str(), "temporarily_unavailable");
}

#[tokio::test]
async fn errors_never_carry_secrets_or_bodies() {
    let server = TestServer::start(|base, seen| match seen.path.as_str() {
        "/token" => Reply::Raw(
            StatusCode::BAD_REQUEST,
            "text/plain",
            b"echo: s3cr3t c0de".to_vec(),
            Vec::new(),
        ),
        _ => standard(base, seen),
    })
    .await;
    let (provider, _dir) = start_provider(&server).await;
    let error = provider.token("basic", &CODE_GRANT).await.unwrap_err();
    let text = format!("{error} {error:?} {provider:?}");
    for secret in ["s3cr3t", "c0de", "v3rifier", "p0st"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

// ---- forwarding a pre-registered client's own request ----

#[tokio::test]
async fn forwarding_passes_body_and_answer_through_untouched() {
    let server = TestServer::start(|base, seen| match seen.path.as_str() {
        "/token" => Reply::Raw(
            StatusCode::UNAUTHORIZED,
            "application/json;charset=UTF-8",
            br#"{"error":"invalid_client"}"#.to_vec(),
            vec![
                ("www-authenticate", "Basic realm=\"idp\""),
                ("set-cookie", "a=b"),
            ],
        ),
        _ => standard(base, seen),
    })
    .await;
    let (provider, _dir) = start_provider(&server).await;
    let body = Bytes::from_static(b"grant_type=client_credentials&scope=a+b&x=%2F");
    let authorization = HeaderValue::from_static("Basic Zm9vOmJhcg==");
    let response = provider
        .forward_token_request(body.clone(), Some(authorization.clone()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/json;charset=UTF-8"
    );
    assert_eq!(
        response.headers()[header::WWW_AUTHENTICATE],
        "Basic realm=\"idp\""
    );
    assert!(response.headers().get(header::SET_COOKIE).is_none());
    assert_eq!(
        response.body(),
        &Bytes::from_static(br#"{"error":"invalid_client"}"#)
    );
    let seen = server.last("/token");
    assert_eq!(seen.body, body);
    assert_eq!(seen.headers[header::AUTHORIZATION], authorization);
    assert_eq!(
        seen.headers[header::CONTENT_TYPE],
        "application/x-www-form-urlencoded"
    );
}

#[tokio::test]
async fn forwarding_maps_a_5xx_to_temporarily_unavailable() {
    let server = TestServer::start(|base, seen| match seen.path.as_str() {
        "/token" => Reply::Json(StatusCode::BAD_GATEWAY, json!({})),
        _ => standard(base, seen),
    })
    .await;
    let (provider, _dir) = start_provider(&server).await;
    let error = provider
        .forward_token_request(Bytes::from_static(b"grant_type=x"), None)
        .await
        .unwrap_err();
    assert_eq!(error.oauth_error().as_str(), "temporarily_unavailable");
    assert!(
        server
            .last("/token")
            .headers
            .get(header::AUTHORIZATION)
            .is_none()
    );
}

// ---- the provider's JWKS ----

#[tokio::test]
async fn jwks_is_cached_and_refetched_at_most_once_per_interval() {
    let server = TestServer::start(standard).await;
    let (mut provider, _dir) = start_provider(&server).await;
    let set = provider.jwks(false).await.unwrap();
    assert_eq!(set.keys.len(), 1);
    assert!(set.find("k1").is_some());
    provider.jwks(false).await.unwrap();
    assert_eq!(server.count("/jwks"), 1, "served from the cache");
    provider.jwks(true).await.unwrap();
    provider.jwks(true).await.unwrap();
    assert_eq!(server.count("/jwks"), 1, "refresh is rate limited");

    provider.jwks_refresh_interval = Duration::ZERO;
    provider.jwks(true).await.unwrap();
    assert_eq!(
        server.count("/jwks"),
        2,
        "refresh after the interval refetches"
    );
    provider.jwks(false).await.unwrap();
    assert_eq!(server.count("/jwks"), 2, "no refresh asked, none made");
}

#[tokio::test]
async fn an_aged_jwks_is_refetched_and_kept_when_that_fails() {
    let status = Arc::new(AtomicU16::new(200));
    let server = {
        let status = Arc::clone(&status);
        TestServer::start(move |base, seen| {
            match (seen.path.as_str(), status.load(Ordering::SeqCst)) {
                ("/jwks", 500) => Reply::Json(StatusCode::INTERNAL_SERVER_ERROR, json!({})),
                _ => standard(base, seen),
            }
        })
        .await
    };
    let (mut provider, _dir) = start_provider(&server).await;
    provider.jwks(false).await.unwrap();
    provider.jwks_max_age = Duration::ZERO;
    provider.jwks_refresh_interval = Duration::ZERO;
    provider.jwks(false).await.unwrap();
    assert_eq!(server.count("/jwks"), 2, "an aged set is refetched");
    status.store(500, Ordering::SeqCst);
    let stale = provider.jwks(false).await.unwrap();
    assert!(
        stale.find("k1").is_some(),
        "the stale set serves while the provider fails"
    );
    let error = provider.jwks(true).await.unwrap_err();
    assert_eq!(
        error.oauth_error().as_str(),
        "temporarily_unavailable",
        "an explicit refresh reports"
    );
    assert_eq!(server.count("/jwks"), 4);
}

#[test]
fn provider_is_send_and_sync() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Provider>();
    shareable::<UpstreamError>();
}

#[tokio::test]
async fn jwks_skips_keys_it_cannot_read() {
    let server = TestServer::start(|base, seen| match seen.path.as_str() {
        "/jwks" => Reply::Raw(
            StatusCode::OK,
            "application/jwk-set+json",
            serde_json::to_vec(&json!({"keys": [
                "not-a-key",
                {"kty": "EC", "crv": "P-256", "kid": 5, "x": "AA", "y": "AA"},
                {"kty": "EC", "crv": "P-256", "kid": "k1",
                 "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                 "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
            ]}))
            .unwrap(),
            Vec::new(),
        ),
        _ => standard(base, seen),
    })
    .await;
    let (provider, _dir) = start_provider(&server).await;
    let set = provider.jwks(false).await.unwrap();
    assert_eq!(set.keys.len(), 1);
    assert!(set.find("k1").is_some());
}

#[tokio::test]
async fn jwks_errors() {
    let server = TestServer::start(|base, seen| match seen.path.as_str() {
        "/.well-known/openid-configuration" => {
            let mut document = discovery_document(base);
            document.as_object_mut().unwrap().remove("jwks_uri");
            Reply::Json(StatusCode::OK, document)
        }
        _ => standard(base, seen),
    })
    .await;
    let (provider, _dir) = start_provider(&server).await;
    let error = provider.jwks(false).await.unwrap_err();
    assert!(matches!(error, UpstreamError::NoJwksUri), "{error}");

    let server = TestServer::start(|base, seen| match seen.path.as_str() {
        "/jwks" => Reply::Json(StatusCode::INTERNAL_SERVER_ERROR, json!({})),
        _ => standard(base, seen),
    })
    .await;
    let (provider, _dir) = start_provider(&server).await;
    let error = provider.jwks(false).await.unwrap_err();
    assert_eq!(error.oauth_error().as_str(), "temporarily_unavailable");
}

/// The provider's set used to be read by rules of its own, which kept a
/// set that leaks a private key; it follows the rules of every key set now.
#[tokio::test]
async fn a_provider_jwks_that_leaks_private_key_material_is_refused() {
    let server = TestServer::start(|base, seen| match seen.path.as_str() {
        "/jwks" => Reply::Json(
            StatusCode::OK,
            json!({"keys": [
                {"kty": "EC", "crv": "P-256", "kid": "k1",
                 "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                 "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
                 "d": "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}
            ]}),
        ),
        _ => standard(base, seen),
    })
    .await;
    let (provider, _dir) = start_provider(&server).await;
    let error = provider.jwks(false).await.unwrap_err();
    assert!(
        matches!(&error, UpstreamError::InvalidResponse { reason, .. } if reason.contains("private key material")),
        "{error}"
    );
    assert!(!error.to_string().contains("jpsQnnGQ"), "{error}");
}

#[test]
fn error_kinds_are_pinned() {
    // The `kind` label of cimd_proxy_provider_errors_total: a contract.
    let text = || "x".to_owned();
    for (error, kind) in [
        (UpstreamError::MissingIssuer, "invalid_issuer"),
        (
            UpstreamError::InvalidIssuer {
                issuer: text(),
                reason: text(),
            },
            "invalid_issuer",
        ),
        (
            UpstreamError::Credential {
                client: text(),
                reason: text(),
            },
            "credential",
        ),
        (UpstreamError::Tls(text()), "tls_setup"),
        (
            UpstreamError::Discovery {
                url: text(),
                reason: text(),
            },
            "discovery",
        ),
        (
            UpstreamError::IssuerMismatch {
                expected: text(),
                found: text(),
            },
            "issuer_mismatch",
        ),
        (UpstreamError::UnknownClient(text()), "unknown_client"),
        (
            UpstreamError::Assertion {
                client: text(),
                reason: text(),
            },
            "assertion",
        ),
        (UpstreamError::NoJwksUri, "no_jwks_uri"),
        (
            UpstreamError::Timeout {
                url: text(),
                timeout: Duration::from_secs(1),
            },
            "timeout",
        ),
        (
            UpstreamError::Unavailable {
                url: text(),
                reason: text(),
            },
            "unavailable",
        ),
        (
            UpstreamError::Status {
                url: text(),
                status: 502,
            },
            "status",
        ),
        (
            UpstreamError::InvalidResponse {
                url: text(),
                reason: text(),
            },
            "invalid_response",
        ),
    ] {
        assert_eq!(error.kind(), kind, "{error}");
    }
}

// ---- revocation (RFC 7009) ----

/// A provider with a revocation endpoint at `/revoke` that answers each
/// token as its value says: `ok`, `unsupported` (400 with an OAuth error),
/// or anything else (a 503).
fn revoking(base: &str, seen: &Seen) -> Reply {
    match seen.path.as_str() {
        "/.well-known/openid-configuration" => {
            let mut document = discovery_document(base);
            document["revocation_endpoint"] = json!(format!("{base}/revoke"));
            Reply::Json(StatusCode::OK, document)
        }
        "/revoke" => match seen.field("token").as_deref() {
            Some("ok") => Reply::Raw(StatusCode::OK, "text/plain", Vec::new(), Vec::new()),
            Some("unsupported") => Reply::Json(
                StatusCode::BAD_REQUEST,
                json!({"error": "unsupported_token_type"}),
            ),
            _ => Reply::Json(StatusCode::SERVICE_UNAVAILABLE, json!({})),
        },
        _ => standard(base, seen),
    }
}

#[tokio::test]
async fn revocation_is_sent_as_the_upstream_client_without_a_grant_type() {
    let server = TestServer::start(revoking).await;
    let (provider, _dir) = start_provider(&server).await;
    assert_eq!(
        provider.metadata().revocation_endpoint,
        Some(server.url("/revoke"))
    );
    let answer = provider
        .revoke("basic", "ok", Some("refresh_token"))
        .await
        .unwrap();
    assert_eq!(answer, Revocation::Revoked);
    let seen = server.last("/revoke");
    assert_eq!(seen.method, Method::POST);
    assert!(
        seen.headers[header::AUTHORIZATION]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
    assert_eq!(seen.field("token").as_deref(), Some("ok"));
    assert_eq!(
        seen.field("token_type_hint").as_deref(),
        Some("refresh_token")
    );
    assert_eq!(seen.field("grant_type"), None);
    // The provider's refusal is an answer; its outage an error.
    assert_eq!(
        provider.revoke("basic", "unsupported", None).await.unwrap(),
        Revocation::Refused("unsupported_token_type".to_owned())
    );
    let failed = provider.revoke("basic", "down", None).await.unwrap_err();
    assert_eq!(
        failed.oauth_error(),
        crate::error_code::OAuthErrorCode::TemporarilyUnavailable
    );
    assert!(matches!(
        provider.revoke("nonexistent", "ok", None).await,
        Err(UpstreamError::UnknownClient(_))
    ));
}

#[tokio::test]
async fn without_a_revocation_endpoint_nothing_is_sent() {
    let server = TestServer::start(standard).await;
    let (provider, _dir) = start_provider(&server).await;
    assert_eq!(
        provider.revoke("basic", "ok", None).await.unwrap(),
        Revocation::NoEndpoint
    );
    assert_eq!(server.count("/revoke"), 0);
}

#[tokio::test]
async fn an_unusable_revocation_endpoint_is_left_out_not_fatal() {
    // An https issuer whose document names a plain-http revocation endpoint
    // would be a downgrade: the endpoint is dropped, discovery succeeds.
    let raw = serde_json::from_value(json!({
        "issuer": "https://idp.example",
        "authorization_endpoint": "https://idp.example/authorize",
        "token_endpoint": "https://idp.example/token",
        "revocation_endpoint": "http://idp.example/revoke",
    }))
    .unwrap();
    let issuer = Url::parse("https://idp.example").unwrap();
    let metadata =
        discovery::metadata_from_document(raw, &issuer, &UpstreamConfig::default()).unwrap();
    assert_eq!(metadata.revocation_endpoint, None);
}
