//! `/callback` and `/token` without a discovered provider: the real server
//! (router, listener, admission, sealing, client authentication, id_token
//! verification and re-issue) runs in-process against a real HTTPS document
//! host, and an in-process identity provider stands where the discovered
//! one would. The stand-in behaves as a provider does: it grants the
//! authorization request it is sent to, binds its code to the redirect_uri
//! and the PKCE challenge, checks the verifier, and signs its id_tokens
//! with a key it publishes. The Node end-to-end suite runs the same flows
//! against a real provider (oidc-provider); these pin the proxy's own
//! rules where a failure names the line.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use cimd_proxy::client_auth::{ClientAuthLimits, ClientAuthenticator};
use cimd_proxy::flow::{SealedCode, SealedRefresh, SealedState, Seals};
use cimd_proxy::logo::LogoCache;
use cimd_proxy::server::{AppState, Shared};
use cimd_proxy::store::{FamilyId, Store};
use cimd_proxy::upstream::Revocation;
use cimd_proxy::{
    Config, DocumentCache, Egress, IdentityProvider, Policy, ProviderMetadata, Purpose, Sealer,
    SigningKeys, TokenResponse, Trust, UpstreamError,
};
use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use http::{HeaderMap, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::JwkSet;
use serde_json::{Map, Value, json};
use url::Url;

use crate::support::{World, document};

/// The stand-in provider's issuer; never dialled.
const IDP: &str = "https://idp.test";
/// The proxy's issuer as the tests configure it.
const PROXY: &str = "https://proxy.test";
/// The pre-registered client CIMD clients are mapped onto.
const UPSTREAM_CLIENT_ID: &str = "proxy-app";
/// A pre-registered client of its own (`client_secret_basic` at the
/// provider) that the proxy relays: `[[upstream.relayed_clients]]`.
const RELAYED_CLIENT_ID: &str = "desktop-app";
/// Its secret, which only it and the provider know.
const RELAYED_SECRET: &str = "desktop-app-secret";
/// The PKCE verifier of every sign-in here, and its S256 challenge.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const SEAL_KEY: [u8; 32] = [5u8; 32];

fn challenge(verifier: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// What the stand-in granted at its authorization endpoint.
#[derive(Debug, Clone)]
struct Grant {
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    nonce: Option<String>,
}

/// An in-process identity provider: an authorization endpoint the test
/// "browser" visits, a token endpoint the proxy calls, a key set.
#[derive(Debug)]
struct StandInProvider {
    metadata: Arc<ProviderMetadata>,
    keys: SigningKeys,
    grants: Mutex<BTreeMap<String, Grant>>,
    /// Every form the proxy posted to the token endpoint.
    token_calls: Mutex<Vec<BTreeMap<String, String>>>,
    /// When set, the token endpoint answers with this error body instead.
    refuse_with: Mutex<Option<(StatusCode, Value)>>,
    /// Whether a refresh returns a new refresh token (Google's does not).
    rotates: Mutex<bool>,
    /// Every (upstream client, token, hint) the proxy revoked here.
    revocations: Mutex<Vec<(String, String, Option<String>)>>,
}

impl StandInProvider {
    fn new() -> Arc<Self> {
        Self::with_discovery(Map::new())
    }

    /// A provider whose discovery document holds `raw`.
    fn with_discovery(raw: Map<String, Value>) -> Arc<Self> {
        let url = |path: &str| Url::parse(&format!("{IDP}{path}")).unwrap();
        Arc::new(StandInProvider {
            metadata: Arc::new(ProviderMetadata {
                issuer: IDP.to_owned(),
                authorization_endpoint: url("/authorize"),
                token_endpoint: url("/token"),
                jwks_uri: Some(url("/jwks")),
                userinfo_endpoint: None,
                revocation_endpoint: raw
                    .get("revocation_endpoint")
                    .and_then(Value::as_str)
                    .map(|url| Url::parse(url).unwrap()),
                scopes_supported: None,
                claims_supported: None,
                raw,
            }),
            keys: SigningKeys::generate_ephemeral().expect("a provider key"),
            grants: Mutex::new(BTreeMap::new()),
            token_calls: Mutex::new(Vec::new()),
            refuse_with: Mutex::new(None),
            rotates: Mutex::new(true),
            revocations: Mutex::new(Vec::new()),
        })
    }

    /// The user signs in at the provider's authorization endpoint
    /// (`location`, where `/authorize` sent the browser): the provider
    /// issues a code and returns the browser to the redirect_uri.
    fn sign_in(&self, location: &str) -> Url {
        let location = Url::parse(location).unwrap();
        assert!(location.as_str().starts_with(&format!("{IDP}/authorize?")));
        let query: BTreeMap<String, String> = location.query_pairs().into_owned().collect();
        let code = format!("upstream-code-{}", self.grants.lock().unwrap().len());
        self.grants.lock().unwrap().insert(
            code.clone(),
            Grant {
                client_id: query["client_id"].clone(),
                redirect_uri: query["redirect_uri"].clone(),
                code_challenge: query["code_challenge"].clone(),
                nonce: query.get("nonce").cloned(),
            },
        );
        let mut back = Url::parse(&query["redirect_uri"]).unwrap();
        back.query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", query.get("state").map_or("", String::as_str))
            .append_pair("iss", IDP);
        back
    }

    fn refuse_next(&self, status: StatusCode, body: Value) {
        *self.refuse_with.lock().unwrap() = Some((status, body));
    }

    fn token_calls(&self) -> Vec<BTreeMap<String, String>> {
        self.token_calls.lock().unwrap().clone()
    }

    /// The token endpoint's answer to `form`, from the authenticated `client_id`.
    fn answer(&self, client_id: &str, form: &BTreeMap<String, String>) -> TokenResponse {
        if let Some((status, body)) = self.refuse_with.lock().unwrap().take() {
            return error(status, body);
        }
        let nonce = match form.get("grant_type").map(String::as_str) {
            Some("authorization_code") => {
                let Some(grant) = self.grants.lock().unwrap().remove(&form["code"]) else {
                    return error(StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"}));
                };
                // What a provider checks: the client, the redirect_uri and PKCE binding.
                if grant.client_id != client_id
                    || form.get("redirect_uri") != Some(&grant.redirect_uri)
                    || form.get("code_verifier").map(|v| challenge(v)) != Some(grant.code_challenge)
                {
                    return error(StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"}));
                }
                grant.nonce
            }
            Some("refresh_token") if form["refresh_token"].starts_with("upstream-refresh") => None,
            _ => return error(StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"})),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut claims = json!({
            "iss": IDP, "aud": client_id, "sub": "user-1",
            "iat": now, "exp": now + 300,
        });
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        let mut body = json!({
            "access_token": "upstream-access",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "openid",
            "id_token": self.keys.sign(&claims).unwrap(),
        });
        let refreshing = form.get("grant_type").map(String::as_str) == Some("refresh_token");
        if !refreshing || *self.rotates.lock().unwrap() {
            let calls = self.token_calls.lock().unwrap().len();
            body["refresh_token"] = json!(format!("upstream-refresh-{calls}"));
        }
        TokenResponse {
            status: StatusCode::OK,
            body: body.as_object().unwrap().clone(),
        }
    }
}

/// An `Authorization: Basic` value (RFC 6749 §2.3.1).
fn basic(client_id: &str, secret: &str) -> String {
    let encode =
        |text: &str| url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", encode(client_id), encode(secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

fn error(status: StatusCode, body: Value) -> TokenResponse {
    TokenResponse {
        status,
        body: body.as_object().unwrap().clone(),
    }
}

impl IdentityProvider for StandInProvider {
    fn metadata(&self) -> Arc<ProviderMetadata> {
        Arc::clone(&self.metadata)
    }

    fn refresh_metadata(&self) -> BoxFuture<'_, Result<(), UpstreamError>> {
        Box::pin(async { Ok(()) })
    }

    fn client_id_of(&self, upstream_client: &str) -> Option<&str> {
        (upstream_client == "main").then_some(UPSTREAM_CLIENT_ID)
    }

    fn token<'a>(
        &'a self,
        upstream_client: &'a str,
        params: &'a [(&'a str, &'a str)],
    ) -> BoxFuture<'a, Result<TokenResponse, UpstreamError>> {
        Box::pin(async move {
            if upstream_client != "main" {
                return Err(UpstreamError::UnknownClient(upstream_client.to_owned()));
            }
            let form: BTreeMap<String, String> = params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            self.token_calls.lock().unwrap().push(form.clone());
            Ok(self.answer(UPSTREAM_CLIENT_ID, &form))
        })
    }

    fn relayed_token<'a>(
        &'a self,
        client_id: &'a str,
        params: &'a [(&'a str, &'a str)],
        authorization: Option<http::HeaderValue>,
        client_secret: Option<&'a str>,
    ) -> BoxFuture<'a, Result<TokenResponse, UpstreamError>> {
        Box::pin(async move {
            let mut form: BTreeMap<String, String> = params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            form.insert("relayed_client_id".into(), client_id.to_owned());
            if let Some(value) = &authorization {
                form.insert("authorization".into(), value.to_str().unwrap().to_owned());
            }
            if let Some(secret) = client_secret {
                form.insert("client_secret".into(), secret.to_owned());
            }
            self.token_calls.lock().unwrap().push(form.clone());
            // The provider authenticates the client itself.
            let expected = basic(RELAYED_CLIENT_ID, RELAYED_SECRET);
            if client_id != RELAYED_CLIENT_ID
                || form.get("authorization") != Some(&expected)
                || client_secret.is_some()
            {
                return Ok(error(
                    StatusCode::UNAUTHORIZED,
                    json!({"error": "invalid_client", "error_description": "client authentication failed"}),
                ));
            }
            Ok(self.answer(client_id, &form))
        })
    }

    fn revoke<'a>(
        &'a self,
        upstream_client: &'a str,
        token: &'a str,
        token_type_hint: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Revocation, UpstreamError>> {
        Box::pin(async move {
            if self.metadata.revocation_endpoint.is_none() {
                return Ok(Revocation::NoEndpoint);
            }
            self.revocations.lock().unwrap().push((
                upstream_client.to_owned(),
                token.to_owned(),
                token_type_hint.map(str::to_owned),
            ));
            Ok(Revocation::Revoked)
        })
    }

    fn forward_token_request(
        &self,
        _body: Bytes,
        _authorization: Option<http::HeaderValue>,
    ) -> BoxFuture<'_, Result<http::Response<Bytes>, UpstreamError>> {
        Box::pin(async { Ok(http::Response::new(Bytes::from_static(b"{}"))) })
    }

    fn jwks(&self, _refresh: bool) -> BoxFuture<'_, Result<JwkSet, UpstreamError>> {
        let set: JwkSet = serde_json::from_value(self.keys.jwks()).unwrap();
        Box::pin(async move { Ok(set) })
    }
}

/// The proxy, served on loopback, with the stand-in as its provider.
struct Proxy {
    base: Url,
    admin: Url,
    shared: Arc<Shared>,
    idp: Arc<StandInProvider>,
    config_text: String,
    http: Client<HttpConnector, Full<Bytes>>,
    /// Dropped, it stops the server (as SIGTERM does).
    stop: tokio::sync::oneshot::Sender<()>,
    /// The server, until it has stopped.
    running: tokio::task::JoinHandle<()>,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> Url {
        let location = self.headers[header::LOCATION].to_str().unwrap();
        Url::parse(location).unwrap()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn query(url: &Url) -> BTreeMap<String, String> {
    url.query_pairs().into_owned().collect()
}

/// The state a configuration gives, with the stand-in provider. The cache
/// and the single-use stores are `keep`'s when given, as a reload keeps them.
fn app_state(config_text: &str, idp: &Arc<StandInProvider>, keep: Option<&AppState>) -> AppState {
    let config = Config::from_toml_str(config_text, None).expect("valid config");
    let egress = Arc::new(Egress::new(&config.fetch, Vec::new()).expect("egress"));
    let provider: Arc<dyn IdentityProvider> = Arc::clone(idp) as Arc<dyn IdentityProvider>;
    let store = keep.map_or_else(
        || Arc::new(Store::connect(&config.store).expect("the configured store")),
        |state| Arc::clone(&state.store),
    );
    AppState {
        issuer: PROXY.to_owned(),
        cache: keep.map_or_else(
            || {
                Arc::new(DocumentCache::new(
                    Arc::clone(&egress),
                    config.cache.clone(),
                ))
            },
            |state| Arc::clone(&state.cache),
        ),
        policy: Policy::new(config.policy.clone()),
        sealer: Sealer::new(vec![SEAL_KEY]).unwrap(),
        provider,
        client_auth: Arc::new(ClientAuthenticator::new(
            Arc::clone(&egress),
            vec![PROXY.to_owned(), format!("{PROXY}/token")],
            ClientAuthLimits::default(),
            Arc::clone(&store),
        )),
        signing: SigningKeys::generate_ephemeral().unwrap(),
        inventory: cimd_proxy::inventory::Inventory::new(
            Arc::clone(&store),
            config.inventory.clone(),
        ),
        admin_token: config.admin.token.as_ref().map(|source| {
            Arc::new(cimd_proxy::admin::AdminToken::read(source).expect("the admin token"))
        }),
        store,
        logos: Arc::new(LogoCache::new(Arc::clone(&egress))),
        trust: Trust::new(&config.trust, egress).expect("no issuers to read"),
        registrar: cimd_proxy::registration::Registrar::new(&config.registration)
            .expect("the registration endpoint"),
        config,
    }
}

impl Proxy {
    /// The proxy for a client document host on `port`, with `policy`
    /// (a `[policy]` section) appended to the configuration.
    async fn start(world: &World, port: u16, policy: &str) -> Proxy {
        Self::start_with(world, port, policy, StandInProvider::new()).await
    }

    /// The same, with `idp` as the provider.
    async fn start_with(
        world: &World,
        port: u16,
        policy: &str,
        idp: Arc<StandInProvider>,
    ) -> Proxy {
        Self::start_configured(world, port, "", policy, idp).await
    }

    /// The same, with `upstream` (keys of `[upstream]`) and `rest` (more
    /// sections, a `[policy]` among them).
    async fn start_configured(
        world: &World,
        port: u16,
        upstream: &str,
        rest: &str,
        idp: Arc<StandInProvider>,
    ) -> Proxy {
        let config_text = world
            .config(port)
            .with_extra(&format!(
                "[upstream]\n{upstream}\n[upstream.clients.main]\nclient_id = \"{UPSTREAM_CLIENT_ID}\"\n\
                 auth_method = \"none\"\n\n{rest}"
            ))
            .to_toml();
        let shared = Shared::new(app_state(&config_text, &idp, None));
        let listeners = cimd_proxy::server::bind(
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .expect("bind on loopback");
        let base = Url::parse(&format!(
            "http://{}/",
            listeners.public.local_addr().unwrap()
        ))
        .unwrap();
        let admin = Url::parse(&format!(
            "http://{}/",
            listeners.admin.local_addr().unwrap()
        ))
        .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(cimd_proxy::server::run(
            Arc::clone(&shared),
            listeners,
            async move {
                let _ = stopped.await;
            },
        ));
        Proxy {
            base,
            admin,
            shared,
            idp,
            config_text,
            http: Client::builder(TokioExecutor::new()).build_http(),
            stop,
            running,
        }
    }

    /// Stops the server as SIGTERM does, and waits until it has.
    async fn shut_down(self) {
        let Proxy { stop, running, .. } = self;
        drop(stop);
        running.await.expect("the server stops");
    }

    /// Puts a new policy in force, keeping the cache, as a reload does.
    fn reload_with_policy(&self, policy: &str) {
        let text = self.config_text.replace(
            "[policy]\ndefault_action = \"allow\"",
            &format!("[policy]\n{policy}"),
        );
        assert_ne!(text, self.config_text, "the policy must change");
        let current = self.shared.current();
        self.shared
            .replace(app_state(&text, &self.idp, Some(&current)));
    }

    async fn send(&self, method: &str, path_and_query: &str, form: Option<String>) -> Answer {
        let content_type = form
            .is_some()
            .then_some("application/x-www-form-urlencoded");
        let url = self.base.join(path_and_query).unwrap();
        self.send_to(method, url, content_type, form.unwrap_or_default())
            .await
    }

    async fn send_to(
        &self,
        method: &str,
        url: Url,
        content_type: Option<&str>,
        body: String,
    ) -> Answer {
        self.send_with(method, url, content_type, None, body).await
    }

    async fn send_with(
        &self,
        method: &str,
        url: Url,
        content_type: Option<&str>,
        authorization: Option<&str>,
        body: String,
    ) -> Answer {
        let mut request = http::Request::builder().method(method).uri(url.as_str());
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        if let Some(authorization) = authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        let body = Full::new(Bytes::from(body));
        let response = tokio::time::timeout(
            Duration::from_secs(15),
            self.http.request(request.body(body).unwrap()),
        )
        .await
        .expect("the proxy answers in time")
        .expect("the proxy answers");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    async fn get(&self, path: &str, params: &[(&str, &str)]) -> Answer {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        self.send("GET", &format!("{path}?{query}"), None).await
    }

    async fn token(&self, params: &[(&str, &str)]) -> Answer {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        self.send("POST", "token", Some(form)).await
    }

    /// `/token` with an `Authorization` header (a confidential client's Basic credentials).
    async fn token_with(&self, authorization: Option<&str>, params: &[(&str, &str)]) -> Answer {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let url = self.base.join("token").unwrap();
        self.send_with(
            "POST",
            url,
            Some("application/x-www-form-urlencoded"),
            authorization,
            form,
        )
        .await
    }

    /// `/authorize` for `client_id` and `redirect_uri` with the test's
    /// PKCE challenge.
    async fn authorize(&self, client_id: &str, redirect_uri: &str) -> Answer {
        self.authorize_with(client_id, redirect_uri, &[("scope", "openid")])
            .await
    }

    /// The same with `more` parameters (a `scope` among them, if any).
    async fn authorize_with(
        &self,
        client_id: &str,
        redirect_uri: &str,
        more: &[(&str, &str)],
    ) -> Answer {
        let challenge = challenge(VERIFIER);
        let mut params = vec![
            ("client_id", client_id),
            ("response_type", "code"),
            ("redirect_uri", redirect_uri),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("state", "client-state"),
            ("nonce", "client-nonce"),
        ];
        params.extend_from_slice(more);
        self.get("authorize", &params).await
    }

    /// A relayed sign-in with `more` authorization parameters, up to the
    /// code the client receives; also the provider URL it was sent to.
    async fn code_with(&self, client_id: &str, more: &[(&str, &str)]) -> (String, Url) {
        let authorized = self
            .authorize_with(client_id, "https://app.test/cb", more)
            .await;
        assert_eq!(authorized.status, StatusCode::FOUND, "{}", authorized.body);
        let at_provider = authorized.location();
        let back = self.idp.sign_in(at_provider.as_str());
        let relayed = self
            .send("GET", &format!("callback?{}", back.query().unwrap()), None)
            .await;
        let params = query(&relayed.location());
        (params["code"].clone(), at_provider)
    }

    /// `/readyz` on the admin listener.
    async fn readyz(&self) -> StatusCode {
        let url = self.admin.join("readyz").unwrap();
        self.send_to("GET", url, None, String::new()).await.status
    }

    /// The provider's redirect back to our callback, for a sign-in the
    /// user completed there: `(callback query, as the provider sent it)`.
    async fn back_from_provider(&self, client_id: &str) -> String {
        let authorized = self.authorize(client_id, "https://app.test/cb").await;
        assert_eq!(authorized.status, StatusCode::FOUND, "{}", authorized.body);
        let back = self.idp.sign_in(authorized.location().as_str());
        assert!(back.as_str().starts_with(&format!("{PROXY}/callback?")));
        back.query().unwrap().to_owned()
    }

    /// A whole relayed sign-in up to the code the client receives.
    async fn code_for(&self, client_id: &str) -> String {
        let back = self.back_from_provider(client_id).await;
        let relayed = self.send("GET", &format!("callback?{back}"), None).await;
        assert_eq!(relayed.status, StatusCode::FOUND, "{}", relayed.body);
        let at_client = relayed.location();
        assert!(at_client.as_str().starts_with("https://app.test/cb?"));
        let params = query(&at_client);
        assert_eq!(params["state"], "client-state");
        assert_eq!(params["iss"], PROXY);
        params["code"].clone()
    }

    fn seals(&self) -> (Sealer, cimd_proxy::seal::SealConfig) {
        (
            Sealer::new(vec![SEAL_KEY]).unwrap(),
            self.shared.current().config.seal.clone(),
        )
    }
}

const ALLOW: &str = "[policy]\ndefault_action = \"allow\"\n";

async fn proxy_with_client(world: &World) -> (crate::support::Origin, String, Proxy) {
    let (origin, client_id) = world.valid_app().await;
    let proxy = Proxy::start(world, origin.port(), ALLOW).await;
    (origin, client_id, proxy)
}

#[tokio::test]
async fn a_code_is_exchanged_with_the_clients_verifier_for_the_proxys_id_token() {
    let world = World::new().await;
    let (_origin, client_id, proxy) = proxy_with_client(&world).await;
    let code = proxy.code_for(&client_id).await;
    let answer = proxy
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", &code),
            ("redirect_uri", "https://app.test/cb"),
            ("code_verifier", VERIFIER),
        ])
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store");
    // The provider saw its own code, our callback and the client's verifier.
    let calls = proxy.idp.token_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["code"], "upstream-code-0");
    assert_eq!(calls[0]["redirect_uri"], format!("{PROXY}/callback"));
    assert_eq!(calls[0]["code_verifier"], VERIFIER);
    // The client gets our id_token (for it, with its nonce) and a sealed
    // refresh token, never the provider's.
    let body = answer.json();
    let id_token = body["id_token"].as_str().unwrap();
    let payload = id_token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["iss"], PROXY);
    assert_eq!(claims["aud"], client_id.as_str());
    assert_eq!(claims["nonce"], "client-nonce");
    assert_eq!(claims["sub"], "user-1");
    let refresh = body["refresh_token"].as_str().unwrap();
    assert_ne!(refresh, "upstream-refresh");
    assert!(!answer.body.contains("upstream-refresh"));
}

#[tokio::test]
async fn a_code_is_refused_to_another_client_and_another_redirect_uri() {
    let world = World::new().await;
    let (_origin, client_id, proxy) = proxy_with_client(&world).await;
    let code = proxy.code_for(&client_id).await;
    // Another redirect_uri than the one the code was delivered to.
    let answer = proxy
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", &code),
            ("redirect_uri", "https://app.test/other"),
            ("code_verifier", VERIFIER),
        ])
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json()["error"], "invalid_grant");
    assert!(
        answer.body.contains("redirect_uri does not match"),
        "{}",
        answer.body
    );
    // A code sealed for another client, presented by this one.
    let (sealer, config) = proxy.seals();
    let mut grant: SealedCode = Seals::new(&sealer, &config).open(&code).unwrap();
    grant.client_id = "https://other.test/cimd.json".to_owned();
    let foreign = Seals::new(&sealer, &config).seal(&grant).unwrap();
    let answer = proxy
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", &foreign),
            ("code_verifier", VERIFIER),
        ])
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json()["error"], "invalid_grant");
    assert!(
        answer.body.contains("issued to another client"),
        "{}",
        answer.body
    );
    // A sealed state is not a code.
    let state = Seals::new(&sealer, &config)
        .seal(&SealedState {
            id: "state-1".into(),
            client_id: client_id.clone(),
            redirect_uri: grant.redirect_uri.clone(),
            redirect_uri_asked: true,
            state: None,
            nonce: None,
            scope: String::new(),
            upstream_client: "main".into(),
            granted_scope: String::new(),
            resource: None,
            metadata: None,
        })
        .unwrap();
    let answer = proxy
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", &state),
            ("code_verifier", VERIFIER),
        ])
        .await;
    assert_eq!(answer.json()["error"], "invalid_grant");
    // None of these reached the provider.
    assert!(proxy.idp.token_calls().is_empty());
}

#[tokio::test]
async fn a_wrong_pkce_verifier_is_refused_by_the_provider_and_relayed() {
    let world = World::new().await;
    let (_origin, client_id, proxy) = proxy_with_client(&world).await;
    let code = proxy.code_for(&client_id).await;
    let answer = proxy
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", &code),
            ("redirect_uri", "https://app.test/cb"),
            (
                "code_verifier",
                "not-the-verifier-of-this-sign-in-0000000000000",
            ),
        ])
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json()["error"], "invalid_grant");
    let calls = proxy.idp.token_calls();
    assert_eq!(
        calls[0]["code_verifier"],
        "not-the-verifier-of-this-sign-in-0000000000000"
    );
}

#[tokio::test]
async fn the_providers_token_errors_are_relayed_and_its_refusal_of_our_credentials_is_ours() {
    let world = World::new().await;
    let (_origin, client_id, proxy) = proxy_with_client(&world).await;
    let code = proxy.code_for(&client_id).await;
    let exchange = [
        ("grant_type", "authorization_code"),
        ("client_id", client_id.as_str()),
        ("code", code.as_str()),
        ("redirect_uri", "https://app.test/cb"),
        ("code_verifier", VERIFIER),
    ];
    proxy.idp.refuse_next(
        StatusCode::BAD_REQUEST,
        json!({"error": "invalid_grant", "error_description": "the code expired", "extra": "x"}),
    );
    let answer = proxy.token(&exchange).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer.json(),
        json!({"error": "invalid_grant", "error_description": "the code expired"})
    );
    // The provider refusing the proxy's own credentials is not the client's fault.
    proxy
        .idp
        .refuse_next(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
    let answer = proxy.token(&exchange).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.json()["error"], "server_error");
    // An error code the proxy does not know is not reflected.
    proxy
        .idp
        .refuse_next(StatusCode::BAD_REQUEST, json!({"error": "<script>"}));
    let answer = proxy.token(&exchange).await;
    assert_eq!(answer.json()["error"], "server_error");
}

#[tokio::test]
async fn a_refresh_token_is_bound_to_its_client() {
    let world = World::new().await;
    let (_origin, client_id, proxy) = proxy_with_client(&world).await;
    let (sealer, config) = proxy.seals();
    let seals = Seals::new(&sealer, &config);
    // Sealed as another replica (or this one before a restart) would
    // have: the memory store does not know its family, and adopts it.
    let refresh_for = |client: &str| {
        seals
            .seal(&SealedRefresh {
                upstream_refresh_token: "upstream-refresh".into(),
                client_id: client.to_owned(),
                scope: "openid".into(),
                upstream_client: "main".into(),
                family: FamilyId::random().unwrap(),
                generation: 3,
                family_expires_at: unix_now() + 3600,
                granted_scope: "openid".into(),
                resource: None,
                metadata: None,
            })
            .unwrap()
    };
    let foreign = refresh_for("https://other.test/cimd.json");
    let answer = proxy
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("refresh_token", &foreign),
        ])
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json()["error"], "invalid_grant");
    assert!(
        answer.body.contains("issued to another client"),
        "{}",
        answer.body
    );
    assert!(proxy.idp.token_calls().is_empty());
    // Its own refresh token works, and comes back sealed again.
    let own = refresh_for(&client_id);
    let answer = proxy
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("refresh_token", &own),
        ])
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let calls = proxy.idp.token_calls();
    assert_eq!(calls[0]["grant_type"], "refresh_token");
    assert_eq!(calls[0]["refresh_token"], "upstream-refresh");
    let renewed = answer.json()["refresh_token"].as_str().unwrap().to_owned();
    let opened: SealedRefresh = seals.open(&renewed).unwrap();
    assert_eq!(opened.client_id, client_id);
    assert_eq!(opened.generation, 4, "adopted at 3, rotated to the next");
    // A code is not a refresh token.
    let code = proxy.code_for(&client_id).await;
    let answer = proxy
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("refresh_token", &code),
        ])
        .await;
    assert_eq!(answer.json()["error"], "invalid_grant");
}

#[tokio::test]
async fn a_denied_clients_refresh_token_stops_working_at_once() {
    let world = World::new().await;
    let (_origin, client_id, proxy) = proxy_with_client(&world).await;
    let code = proxy.code_for(&client_id).await;
    let answer = proxy
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", &code),
            ("redirect_uri", "https://app.test/cb"),
            ("code_verifier", VERIFIER),
        ])
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let refresh = answer.json()["refresh_token"].as_str().unwrap().to_owned();
    proxy.reload_with_policy("default_action = \"deny\"");
    let answer = proxy
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("refresh_token", &refresh),
        ])
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.json()["error"], "invalid_client");
    assert!(answer.body.contains("policy denies"), "{}", answer.body);
    // Refused before the provider was asked.
    assert_eq!(proxy.idp.token_calls().len(), 1);
}

#[tokio::test]
async fn a_tampered_expired_or_foreign_state_at_the_callback_is_an_error_page() {
    let world = World::new().await;
    let (_origin, client_id, proxy) = proxy_with_client(&world).await;
    let authorized = proxy.authorize(&client_id, "https://app.test/cb").await;
    let state = query(&authorized.location())["state"].clone();
    // One character of the sealed state changed.
    let mut tampered = state.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    // The same payload, sealed an hour ago for a ten-minute sign-in.
    let (sealer, config) = proxy.seals();
    let flow: SealedState = Seals::new(&sealer, &config).open(&state).unwrap();
    let an_hour_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 3600;
    let expired = sealer
        .try_seal_at(Purpose::State, Duration::from_secs(600), &flow, an_hour_ago)
        .unwrap();
    // Sealed by another deployment's key.
    let foreign = Sealer::new(vec![[9u8; 32]])
        .unwrap()
        .try_seal(Purpose::State, Duration::from_secs(600), &flow)
        .unwrap();
    for bad in [tampered.as_str(), expired.as_str(), foreign.as_str(), ""] {
        let answer = proxy
            .get("callback", &[("code", "c"), ("state", bad), ("iss", IDP)])
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "state {bad:?}");
        assert!(answer.headers.get(header::LOCATION).is_none());
        assert!(answer.body.contains("invalid_state"), "{}", answer.body);
    }
    // The untouched state still relays.
    let answer = proxy
        .get(
            "callback",
            &[("code", "c"), ("state", &state), ("iss", IDP)],
        )
        .await;
    assert_eq!(answer.status, StatusCode::FOUND);
}

#[tokio::test]
async fn the_providers_refusal_at_the_callback_is_relayed_to_the_client() {
    let world = World::new().await;
    let (_origin, client_id, proxy) = proxy_with_client(&world).await;
    let authorized = proxy.authorize(&client_id, "https://app.test/cb").await;
    let state = query(&authorized.location())["state"].clone();
    let answer = proxy
        .get(
            "callback",
            &[
                ("error", "login_required"),
                ("error_description", "the user is not signed in"),
                ("state", &state),
                ("iss", IDP),
            ],
        )
        .await;
    assert_eq!(answer.status, StatusCode::FOUND);
    let location = answer.location();
    assert!(location.as_str().starts_with("https://app.test/cb?"));
    let params = query(&location);
    // Regression (issue 11): it was access_denied, which a client doing
    // prompt=none cannot tell from the user refusing.
    assert_eq!(params["error"], "login_required");
    assert_eq!(params["error_description"], "the user is not signed in");
    assert_eq!(params["state"], "client-state");
    assert_eq!(params["iss"], PROXY);
    assert!(!params.contains_key("code"));
    // A response naming another issuer is a mix-up: refused, not relayed.
    let authorized = proxy.authorize(&client_id, "https://app.test/cb").await;
    let state = query(&authorized.location())["state"].clone();
    let answer = proxy
        .get(
            "callback",
            &[
                ("code", "c"),
                ("state", &state),
                ("iss", "https://evil.test"),
            ],
        )
        .await;
    let params = query(&answer.location());
    assert_eq!(params["error"], "access_denied");
    assert!(!params.contains_key("code"));
}

#[tokio::test]
async fn a_document_naming_an_unlisted_redirect_uri_gets_an_error_page_not_a_redirect() {
    let world = World::new().await;
    let (_origin, client_id) = world
        .app_with(|id| {
            let mut doc = document(id);
            doc["redirect_uris"] = json!(["https://app.test/cb", "https://app.test/cb2"]);
            crate::support::Script::json(doc.to_string())
        })
        .await;
    let proxy = Proxy::start(&world, url_port(&client_id), ALLOW).await;
    let answer = proxy.authorize(&client_id, "https://evil.test/cb").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.headers.get(header::LOCATION).is_none());
    assert!(
        answer.body.contains("redirect_uri_mismatch"),
        "{}",
        answer.body
    );
}

/// Lines logged on this thread while held, as the server writes them (one
/// JSON object per line, with the request span).
struct CapturedLogs {
    lines: Arc<Mutex<Vec<u8>>>,
    _default: tracing::subscriber::DefaultGuard,
}

/// Appends to the captured lines.
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    /// Captures what the current-thread runtime (the server included) logs.
    fn start() -> CapturedLogs {
        // tracing caches, per call site, whether any subscriber wants it.
        // While this test's subscriber is the only one registered, a call
        // site first reached on another test's thread is judged by that
        // thread's default alone (none) and cached as unwanted, and this
        // test's request span would then be lost. A global subscriber that
        // wants nothing keeps the count at two, so every call site is
        // judged against this test's subscriber too.
        static GLOBAL: std::sync::Once = std::sync::Once::new();
        GLOBAL.call_once(|| {
            let _ = tracing::subscriber::set_global_default(
                tracing::subscriber::NoSubscriber::default(),
            );
        });
        let lines = Arc::new(Mutex::new(Vec::new()));
        let writer = Arc::clone(&lines);
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(move || Capture(Arc::clone(&writer)))
            .finish();
        CapturedLogs {
            lines,
            _default: tracing::subscriber::set_default(subscriber),
        }
    }

    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.lines.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// Issue 16: the refused address and its range are the administrator's: the
/// refusal's log line carries them (as `check` prints them) with the request
/// id, and the public error page shows that id only, never the address or
/// the range, which would make the proxy an oracle for the internal network.
#[tokio::test]
async fn a_refused_address_is_in_the_log_line_and_never_on_the_error_page() {
    let world = World::new().await;
    let (origin, _client_id) = world.valid_app().await;
    world.dns.set(
        "internal.test",
        &[std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 2, 3, 4))],
    );
    let proxy = Proxy::start(&world, origin.port(), ALLOW).await;
    let logs = CapturedLogs::start();
    let client_id = format!("https://internal.test:{}/client.json", origin.port());

    let answer = proxy.authorize(&client_id, "https://app.test/cb").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.body.contains("blocked_address"), "{}", answer.body);
    let request_id = answer.headers["x-request-id"].to_str().unwrap().to_owned();
    assert!(
        answer
            .body
            .contains(&format!("Request id: <code>{request_id}</code>")),
        "{}",
        answer.body
    );
    for internal in ["10.2.3.4", "10.0.0.0/8", "resolves to"] {
        assert!(!answer.body.contains(internal), "{internal} on the page");
    }
    assert_eq!(origin.connections(), 0);

    let lines = logs.lines();
    // The capture is process-wide and other tests refuse 10.2.3.4 too: this
    // request's line is the one carrying its id.
    let refusal = lines
        .iter()
        .find(|line| line.contains("10.2.3.4") && line.contains(request_id.as_str()))
        .unwrap_or_else(|| panic!("no log line of this request names the address: {lines:#?}"));
    let refusal: Value = serde_json::from_str(refusal).unwrap();
    assert_eq!(refusal["target"], "audit", "{refusal}");
    assert_eq!(refusal["span"]["id"], request_id.as_str(), "{refusal}");
    assert_eq!(refusal["fields"]["code"], "blocked_address", "{refusal}");
    let detail = refusal["fields"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("internal.test resolves to 10.2.3.4") && detail.contains("10.0.0.0/8"),
        "{detail}"
    );
}

fn url_port(client_id: &str) -> u16 {
    Url::parse(client_id).unwrap().port().unwrap()
}

// ---------------------------------------------------------------------------
// Issue 17: flow hardening, and refresh rotation through the shared store
// ---------------------------------------------------------------------------

/// A `[store]` section naming the run's Redis (its URL in a file, as a
/// mounted Secret would hold it) under a key prefix of its own; the
/// directory must outlive the proxy.
fn redis_store(server: &crate::support::redis::RedisServer) -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url_file = dir.path().join("redis-url");
    std::fs::write(&url_file, format!("{}\n", server.url())).expect("write the URL file");
    let section = format!(
        "[store]\nbackend = \"redis\"\nurl_file = \"{}\"\nkey_prefix = \"flow-{}:\"\n",
        url_file.display(),
        FamilyId::random().unwrap()
    );
    (section, dir)
}

/// Both backends, for the behaviours that must hold with either: the
/// `[store]` section to append, and what keeps it alive.
async fn each_backend() -> Vec<(&'static str, String, Option<tempfile::TempDir>)> {
    let (redis, dir) = redis_store(crate::support::redis::redis());
    vec![("memory", String::new(), None), ("redis", redis, Some(dir))]
}

async fn exchange(proxy: &Proxy, client_id: &str, code: &str) -> Answer {
    proxy
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", code),
            ("redirect_uri", "https://app.test/cb"),
            ("code_verifier", VERIFIER),
        ])
        .await
}

async fn refresh(proxy: &Proxy, client_id: &str, token: &str) -> Answer {
    proxy
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", client_id),
            ("refresh_token", token),
        ])
        .await
}

fn refresh_token_of(answer: &Answer) -> String {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.json()["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned()
}

#[tokio::test]
async fn a_callback_without_iss_is_refused_when_the_provider_advertises_it() {
    let world = World::new().await;
    let (origin, client_id) = world.valid_app().await;
    let mut raw = Map::new();
    raw.insert(
        "authorization_response_iss_parameter_supported".into(),
        json!(true),
    );
    let idp = StandInProvider::with_discovery(raw);
    let proxy = Proxy::start_with(&world, origin.port(), ALLOW, idp).await;
    let back = proxy.back_from_provider(&client_id).await;
    let without_iss: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            url::form_urlencoded::parse(back.as_bytes()).filter(|(name, _)| name != "iss"),
        )
        .finish();
    assert_ne!(without_iss, back);
    let answer = proxy
        .send("GET", &format!("callback?{without_iss}"), None)
        .await;
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.body);
    let params = query(&answer.location());
    assert_eq!(params["error"], "access_denied");
    assert!(params["error_description"].contains("does not name its issuer"));
    assert!(!params.contains_key("code"));

    // A provider that does not advertise it may leave `iss` out (RFC 9207 §2.4).
    let proxy = Proxy::start(&world, origin.port(), ALLOW).await;
    let back = proxy.back_from_provider(&client_id).await;
    let without_iss: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            url::form_urlencoded::parse(back.as_bytes()).filter(|(name, _)| name != "iss"),
        )
        .finish();
    let answer = proxy
        .send("GET", &format!("callback?{without_iss}"), None)
        .await;
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.body);
    assert!(query(&answer.location()).contains_key("code"));
}

#[tokio::test]
async fn a_code_redeemed_without_redirect_uri_is_refused() {
    let world = World::new().await;
    let (_origin, client_id, proxy) = proxy_with_client(&world).await;
    let code = proxy.code_for(&client_id).await;
    let answer = proxy
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", &code),
            ("code_verifier", VERIFIER),
        ])
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json()["error"], "invalid_request");
    assert!(
        answer.body.contains("redirect_uri is missing"),
        "{}",
        answer.body
    );
    assert!(proxy.idp.token_calls().is_empty());
    // With it, the same code is good.
    let answer = exchange(&proxy, &client_id, &code).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);

    // An authorization request that named no redirect_uri (the document
    // lists one) needs none at the token endpoint (RFC 6749 §4.1.3).
    let params = [
        ("client_id", client_id.as_str()),
        ("response_type", "code"),
        ("code_challenge", &challenge(VERIFIER)),
        ("code_challenge_method", "S256"),
        ("scope", "openid"),
    ];
    let authorized = proxy.get("authorize", &params).await;
    assert_eq!(authorized.status, StatusCode::FOUND, "{}", authorized.body);
    let back = proxy.idp.sign_in(authorized.location().as_str());
    let relayed = proxy
        .send("GET", &format!("callback?{}", back.query().unwrap()), None)
        .await;
    let code = query(&relayed.location())["code"].clone();
    let answer = proxy
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", &code),
            ("code_verifier", VERIFIER),
        ])
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

#[tokio::test]
async fn a_replayed_callback_gets_the_error_page() {
    let world = World::new().await;
    let (origin, client_id) = world.valid_app().await;
    let server = crate::support::redis::redis();
    let _shared = server.shared().await;
    for (backend, store, _keep) in each_backend().await {
        let proxy = Proxy::start(&world, origin.port(), &format!("{ALLOW}{store}")).await;
        let back = proxy.back_from_provider(&client_id).await;
        let first = proxy.send("GET", &format!("callback?{back}"), None).await;
        assert_eq!(first.status, StatusCode::FOUND, "{backend}: {}", first.body);
        let replayed = proxy.send("GET", &format!("callback?{back}"), None).await;
        assert_eq!(replayed.status, StatusCode::BAD_REQUEST, "{backend}");
        assert!(
            replayed.headers.get(header::LOCATION).is_none(),
            "{backend}"
        );
        assert!(replayed.body.contains("invalid_state"), "{backend}");
        assert!(replayed.body.contains("already completed"), "{backend}");
        if backend == "redis" {
            // Another replica on the same Redis refuses it too.
            let other = Proxy::start(&world, origin.port(), &format!("{ALLOW}{store}")).await;
            let replayed = other.send("GET", &format!("callback?{back}"), None).await;
            assert_eq!(replayed.status, StatusCode::BAD_REQUEST);
        }
    }
}

#[tokio::test]
async fn a_token_body_that_is_not_a_form_is_refused() {
    let world = World::new().await;
    let (_origin, client_id, proxy) = proxy_with_client(&world).await;
    let code = proxy.code_for(&client_id).await;
    let form = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "authorization_code"),
            ("client_id", client_id.as_str()),
            ("code", code.as_str()),
            ("redirect_uri", "https://app.test/cb"),
            ("code_verifier", VERIFIER),
        ])
        .finish();
    let url = proxy.base.join("token").unwrap();
    for content_type in [Some("text/plain"), Some("application/json"), None] {
        let answer = proxy
            .send_to("POST", url.clone(), content_type, form.clone())
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{content_type:?}");
        assert_eq!(
            answer.json()["error"],
            "invalid_request",
            "{content_type:?}"
        );
    }
    assert!(proxy.idp.token_calls().is_empty());
    // The media type is case-insensitive and may carry a charset.
    let answer = proxy
        .send_to(
            "POST",
            url,
            Some("Application/X-WWW-Form-Urlencoded; charset=UTF-8"),
            form,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

#[tokio::test]
async fn a_warned_clients_error_is_a_page_naming_where_it_would_go_not_a_redirect() {
    let world = World::new().await;
    let (origin, client_id) = world.valid_app().await;
    let no_pkce = [
        ("client_id", client_id.as_str()),
        ("response_type", "code"),
        ("redirect_uri", "https://app.test/cb"),
        ("state", "client-state"),
    ];
    let warned = Proxy::start(
        &world,
        origin.port(),
        "[policy]\ndefault_action = \"warn\"\n",
    )
    .await;
    let answer = warned.get("authorize", &no_pkce).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert!(answer.headers.get(header::LOCATION).is_none());
    assert!(
        answer.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    // Names the destination in words, and links the error redirect.
    assert!(
        answer.body.contains(">https://app.test/cb<"),
        "{}",
        answer.body
    );
    assert!(
        answer
            .body
            .contains("href=\"https://app.test/cb?error=invalid_request&#38;"),
        "{}",
        answer.body
    );
    assert!(
        answer.body.contains("state=client-state"),
        "{}",
        answer.body
    );
    // An allowed client keeps the error redirect.
    let allowed = Proxy::start(&world, origin.port(), ALLOW).await;
    let answer = allowed.get("authorize", &no_pkce).await;
    assert_eq!(answer.status, StatusCode::FOUND);
    let params = query(&answer.location());
    assert_eq!(params["error"], "invalid_request");
    assert_eq!(params["state"], "client-state");
}

#[tokio::test]
async fn refresh_reuse_after_rotation_revokes_family() {
    let world = World::new().await;
    let (origin, client_id) = world.valid_app().await;
    let server = crate::support::redis::redis();
    let _shared = server.shared().await;
    for (backend, store, _keep) in each_backend().await {
        let proxy = Proxy::start(&world, origin.port(), &format!("{ALLOW}{store}")).await;
        let code = proxy.code_for(&client_id).await;
        let first = refresh_token_of(&exchange(&proxy, &client_id, &code).await);
        // Each refresh returns the family's next generation, with the
        // provider's rotated token inside.
        let second = refresh_token_of(&refresh(&proxy, &client_id, &first).await);
        let third = refresh_token_of(&refresh(&proxy, &client_id, &second).await);
        let (sealer, config) = proxy.seals();
        let seals = Seals::new(&sealer, &config);
        let opened: SealedRefresh = seals.open(&third).unwrap();
        let original: SealedRefresh = seals.open(&first).unwrap();
        assert_eq!(opened.family, original.family, "{backend}");
        assert_eq!(opened.generation, 2, "{backend}");
        assert_eq!(opened.family_expires_at, original.family_expires_at);
        // The provider rotated at every call (its token numbered by call).
        let calls = proxy.idp.token_calls();
        assert_eq!(calls.last().unwrap()["refresh_token"], "upstream-refresh-2");
        assert_eq!(opened.upstream_refresh_token, "upstream-refresh-3");
        // The first token again: refused, and the whole family with it,
        // before the provider is asked.
        let reused = refresh(&proxy, &client_id, &first).await;
        assert_eq!(reused.status, StatusCode::BAD_REQUEST, "{backend}");
        assert_eq!(reused.json()["error"], "invalid_grant");
        assert!(reused.body.contains("already used"), "{}", reused.body);
        let latest = refresh(&proxy, &client_id, &third).await;
        assert_eq!(latest.json()["error"], "invalid_grant", "{backend}");
        assert!(latest.body.contains("revoked"), "{}", latest.body);
        assert_eq!(proxy.idp.token_calls().len(), calls.len(), "{backend}");
    }
}

#[tokio::test]
async fn a_provider_that_does_not_rotate_keeps_its_refresh_token_inside_ours() {
    let world = World::new().await;
    let (_origin, client_id, proxy) = proxy_with_client(&world).await;
    *proxy.idp.rotates.lock().unwrap() = false;
    let code = proxy.code_for(&client_id).await;
    let first = refresh_token_of(&exchange(&proxy, &client_id, &code).await);
    let second = refresh_token_of(&refresh(&proxy, &client_id, &first).await);
    let third = refresh_token_of(&refresh(&proxy, &client_id, &second).await);
    let (sealer, config) = proxy.seals();
    let opened: SealedRefresh = Seals::new(&sealer, &config).open(&third).unwrap();
    assert_eq!(opened.generation, 2);
    // The one the code exchange gave, still.
    assert_eq!(opened.upstream_refresh_token, "upstream-refresh-1");
    let calls = proxy.idp.token_calls();
    assert_eq!(calls[2]["refresh_token"], "upstream-refresh-1");
}

#[tokio::test]
async fn a_provider_failure_does_not_advance_the_family() {
    let world = World::new().await;
    let (_origin, client_id, proxy) = proxy_with_client(&world).await;
    let code = proxy.code_for(&client_id).await;
    let first = refresh_token_of(&exchange(&proxy, &client_id, &code).await);
    proxy.idp.refuse_next(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"error": "temporarily_unavailable"}),
    );
    let failed = refresh(&proxy, &client_id, &first).await;
    assert_eq!(failed.json()["error"], "temporarily_unavailable");
    // The client's retry with the same token is not "reuse".
    refresh_token_of(&refresh(&proxy, &client_id, &first).await);
}

#[tokio::test]
async fn an_unknown_family_is_refused_with_redis() {
    let world = World::new().await;
    let (origin, client_id) = world.valid_app().await;
    let server = crate::support::redis::redis();
    let _shared = server.shared().await;
    let (store, _keep) = redis_store(server);
    let proxy = Proxy::start(&world, origin.port(), &format!("{ALLOW}{store}")).await;
    let (sealer, config) = proxy.seals();
    let token = Seals::new(&sealer, &config)
        .seal(&SealedRefresh {
            upstream_refresh_token: "upstream-refresh".into(),
            client_id: client_id.clone(),
            scope: "openid".into(),
            upstream_client: "main".into(),
            family: FamilyId::random().unwrap(),
            generation: 0,
            family_expires_at: unix_now() + 3600,
            granted_scope: "openid".into(),
            resource: None,
            metadata: None,
        })
        .unwrap();
    let answer = refresh(&proxy, &client_id, &token).await;
    assert_eq!(answer.json()["error"], "invalid_grant");
    assert!(proxy.idp.token_calls().is_empty());
}

#[tokio::test]
async fn with_redis_stopped_the_store_steps_refuse_and_readyz_is_false_until_it_returns() {
    let world = World::new().await;
    let (origin, client_id) = world.valid_app().await;
    let server = crate::support::redis::redis();
    let _exclusive = server.exclusive().await;
    let (store, _keep) = redis_store(server);
    let proxy = Proxy::start(&world, origin.port(), &format!("{ALLOW}{store}")).await;
    let code = proxy.code_for(&client_id).await;
    let token = refresh_token_of(&exchange(&proxy, &client_id, &code).await);
    let back = proxy.back_from_provider(&client_id).await;
    assert_eq!(proxy.readyz().await, StatusCode::OK);

    server.stop();
    // Redis is started again whatever the assertions say, so a failure here
    // does not take the other tests' server with it.
    let outage = std::panic::AssertUnwindSafe(async {
        // A refresh: temporarily_unavailable, never a skipped check.
        let answer = refresh(&proxy, &client_id, &token).await;
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            answer.body
        );
        assert_eq!(answer.json()["error"], "temporarily_unavailable");
        // The callback: an error page, no code.
        let answer = proxy.send("GET", &format!("callback?{back}"), None).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(answer.headers.get(header::LOCATION).is_none());
        assert!(answer.body.contains("temporarily_unavailable"));
        // /readyz turns false within a few pings.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while proxy.readyz().await == StatusCode::OK {
            assert!(std::time::Instant::now() < deadline, "/readyz stayed true");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .catch_unwind()
    .await;
    server.start();
    if let Err(panic) = outage {
        std::panic::resume_unwind(panic);
    }
    // Back by itself, with no restart: ready, and sign-ins work again. (This
    // Redis keeps nothing on disk, so what it held is gone: the family of
    // `token` is unknown now, and refused.)
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while proxy.readyz().await != StatusCode::OK {
        assert!(std::time::Instant::now() < deadline, "/readyz stayed false");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let answer = proxy.send("GET", &format!("callback?{back}"), None).await;
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.body);
    let code = query(&answer.location())["code"].clone();
    let fresh = refresh_token_of(&exchange(&proxy, &client_id, &code).await);
    refresh_token_of(&refresh(&proxy, &client_id, &fresh).await);
    assert_eq!(
        refresh(&proxy, &client_id, &token).await.json()["error"],
        "invalid_grant"
    );
}

/// The resource the RFC 8707 tests protect, and another one.
const MCP: &str = "https://mcp.test/mcp";
const OTHER_RESOURCE: &str = "https://other.test/mcp";

/// A client whose document lists the refresh_token grant.
async fn refreshing_app(world: &World) -> (crate::support::Origin, String) {
    world
        .app_with(|id| {
            let mut body = document(id);
            body["grant_types"] = json!(["authorization_code", "refresh_token"]);
            crate::support::Script::json(body.to_string())
        })
        .await
}

fn resource_section() -> String {
    format!("[resource]\nresource = \"{MCP}\"\n\n{ALLOW}")
}

#[tokio::test]
async fn an_unlisted_resource_is_invalid_target_and_the_granted_one_is_bound_to_code_and_refresh() {
    let world = World::new().await;
    let (origin, client_id) = refreshing_app(&world).await;
    let proxy = Proxy::start_configured(
        &world,
        origin.port(),
        "",
        &resource_section(),
        StandInProvider::new(),
    )
    .await;
    // At /authorize: the redirect_uri is trusted by then, so a redirect.
    for bad in [OTHER_RESOURCE, "mcp", "https://mcp.test/mcp#frag"] {
        let answer = proxy
            .authorize_with(
                &client_id,
                "https://app.test/cb",
                &[("scope", "openid"), ("resource", bad)],
            )
            .await;
        assert_eq!(answer.status, StatusCode::FOUND, "{bad}");
        let location = answer.location();
        assert!(
            location.as_str().starts_with("https://app.test/cb?"),
            "{bad}"
        );
        let params = query(&location);
        assert_eq!(params["error"], "invalid_target", "{bad}");
        assert_eq!(params["state"], "client-state");
    }
    // The listed one (in another spelling) goes to the provider, normalised.
    let (code, at_provider) = proxy
        .code_with(
            &client_id,
            &[("scope", "openid"), ("resource", "HTTPS://mcp.test/mcp")],
        )
        .await;
    assert_eq!(query(&at_provider)["resource"], MCP);
    // At /token: another resource is refused before the provider is asked.
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("client_id", client_id.as_str()),
        ("code", code.as_str()),
        ("redirect_uri", "https://app.test/cb"),
        ("code_verifier", VERIFIER),
        ("resource", OTHER_RESOURCE),
    ];
    let answer = proxy.token(&form).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json()["error"], "invalid_target");
    assert!(proxy.idp.token_calls().is_empty());
    form.pop();
    form.push(("resource", MCP));
    let answer = proxy.token(&form).await;
    let refresh = refresh_token_of(&answer);
    assert_eq!(proxy.idp.token_calls()[0]["resource"], MCP);
    // The refresh token carries the resource: another is refused, the
    // granted one (or none) is what the provider is asked for.
    let answer = proxy
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("refresh_token", &refresh),
            ("resource", OTHER_RESOURCE),
        ])
        .await;
    assert_eq!(answer.json()["error"], "invalid_target");
    assert_eq!(proxy.idp.token_calls().len(), 1);
    let refresh = refresh_token_of(&refresh_with(&proxy, &client_id, &refresh, None).await);
    assert_eq!(proxy.idp.token_calls()[1]["resource"], MCP);
    refresh_token_of(&refresh_with(&proxy, &client_id, &refresh, None).await);
}

async fn refresh_with(proxy: &Proxy, client_id: &str, token: &str, scope: Option<&str>) -> Answer {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("client_id", client_id),
        ("refresh_token", token),
    ];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    proxy.token(&form).await
}

/// Regression (issue 11): the refresh grant forwarded the client's raw
/// `scope` upstream, without the translation and ceiling of the sign-in
/// ("works on sign-in, fails on reconnect" with Entra).
#[tokio::test]
async fn a_refresh_is_translated_like_the_sign_in_and_its_scope_may_only_narrow() {
    let world = World::new().await;
    let (origin, client_id) = refreshing_app(&world).await;
    let upstream = format!(
        "profile = \"entra\"\n[upstream.resource_scopes]\n\"{MCP}\" = \"api://6b1f4c2e\"\n"
    );
    let rest = format!(
        "[resource]\nresource = \"{MCP}\"\n\n{ALLOW}\n[[policy.rules]]\nclient_id = \"https://app.test:*/**\"\naction = \"allow\"\nscopes = [\"openid\", \"mcp\", \"profile\"]\n"
    );
    let proxy = Proxy::start_configured(
        &world,
        origin.port(),
        &upstream,
        &rest,
        StandInProvider::new(),
    )
    .await;
    // Sign-in: `admin` is cut by the ceiling, `mcp` qualified, offline_access
    // added (the document lists refresh_token), resource dropped.
    let (code, at_provider) = proxy
        .code_with(
            &client_id,
            &[
                ("scope", "openid mcp admin"),
                ("resource", MCP),
                ("prompt", "admin_consent"),
            ],
        )
        .await;
    let sent = query(&at_provider);
    assert_eq!(sent["scope"], "openid api://6b1f4c2e/mcp offline_access");
    assert!(!sent.contains_key("resource"), "Entra refuses resource");
    assert!(
        !sent.contains_key("prompt"),
        "never an admin-consent prompt"
    );
    let refresh = refresh_token_of(&exchange(&proxy, &client_id, &code).await);
    // A wider scope: invalid_scope, and the provider is not asked.
    for wider in ["openid mcp admin", "profile"] {
        let answer = refresh_with(&proxy, &client_id, &refresh, Some(wider)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{wider}");
        assert_eq!(answer.json()["error"], "invalid_scope", "{wider}");
    }
    assert_eq!(proxy.idp.token_calls().len(), 1);
    // The same scope, or a narrower one (by its name or the provider's),
    // is translated exactly as at sign-in.
    let refresh =
        refresh_token_of(&refresh_with(&proxy, &client_id, &refresh, Some("openid mcp")).await);
    assert_eq!(
        proxy.idp.token_calls()[1]["scope"],
        "openid api://6b1f4c2e/mcp offline_access"
    );
    let refresh = refresh_token_of(&refresh_with(&proxy, &client_id, &refresh, Some("mcp")).await);
    assert_eq!(
        proxy.idp.token_calls()[2]["scope"],
        "api://6b1f4c2e/mcp offline_access"
    );
    let refresh = refresh_token_of(
        &refresh_with(&proxy, &client_id, &refresh, Some("api://6b1f4c2e/mcp")).await,
    );
    // None asked: the grant's own, which the provider keeps.
    refresh_token_of(&refresh_with(&proxy, &client_id, &refresh, None).await);
    let calls = proxy.idp.token_calls();
    assert!(!calls[4].contains_key("scope"));
    assert!(calls.iter().all(|call| !call.contains_key("resource")));
}

#[tokio::test]
async fn entra_refuses_a_resource_without_a_scope_before_the_provider() {
    let world = World::new().await;
    let (origin, client_id) = world.valid_app().await;
    let proxy = Proxy::start_configured(
        &world,
        origin.port(),
        "profile = \"entra\"\n",
        &resource_section(),
        StandInProvider::new(),
    )
    .await;
    let answer = proxy
        .authorize_with(
            &client_id,
            "https://app.test/cb",
            &[("scope", "openid"), ("resource", MCP)],
        )
        .await;
    let params = query(&answer.location());
    assert_eq!(params["error"], "invalid_target");
    assert!(
        params["error_description"].contains("no scope is configured"),
        "{params:?}"
    );
}

// ---------------------------------------------------------------------------
// Issue 12: revocation (RFC 7009), grants bound to the client's metadata
// ---------------------------------------------------------------------------

async fn revoke(proxy: &Proxy, params: &[(&str, &str)]) -> Answer {
    let form = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    proxy.send("POST", "revoke", Some(form)).await
}

/// A provider whose discovery names a revocation endpoint.
fn revoking_provider() -> Arc<StandInProvider> {
    let mut raw = Map::new();
    raw.insert("revocation_endpoint".into(), json!(format!("{IDP}/revoke")));
    StandInProvider::with_discovery(raw)
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_family_and_the_providers_token() {
    let world = World::new().await;
    let (origin, client_id) = world.valid_app().await;
    let server = crate::support::redis::redis();
    let _shared = server.shared().await;
    for (backend, store, _keep) in each_backend().await {
        let proxy = Proxy::start_with(
            &world,
            origin.port(),
            &format!("{ALLOW}{store}"),
            revoking_provider(),
        )
        .await;
        let code = proxy.code_for(&client_id).await;
        let first = refresh_token_of(&exchange(&proxy, &client_id, &code).await);
        let second = refresh_token_of(&refresh(&proxy, &client_id, &first).await);
        // Revoking the current generation, with a hint that is wrong on
        // purpose: the hint never limits the search (RFC 7009 §2.1).
        let answer = revoke(
            &proxy,
            &[
                ("token", &second),
                ("token_type_hint", "access_token"),
                ("client_id", &client_id),
            ],
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{backend}: {}", answer.body);
        assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store");
        let refused = refresh(&proxy, &client_id, &second).await;
        assert_eq!(refused.json()["error"], "invalid_grant", "{backend}");
        assert!(refused.body.contains("revoked"), "{}", refused.body);
        // The provider was told, as the upstream client, with its own token.
        let (sealer, config) = proxy.seals();
        let opened: SealedRefresh = Seals::new(&sealer, &config).open(&second).unwrap();
        assert_eq!(
            proxy.idp.revocations.lock().unwrap().clone(),
            vec![(
                "main".to_owned(),
                opened.upstream_refresh_token,
                Some("refresh_token".to_owned())
            )],
            "{backend}"
        );
    }
}

#[tokio::test]
async fn revoke_answers_200_for_invalid_foreign_and_expired_tokens_and_revokes_nothing() {
    let world = World::new().await;
    let (_origin, client_id, proxy) = proxy_with_client(&world).await;
    let code = proxy.code_for(&client_id).await;
    let token = refresh_token_of(&exchange(&proxy, &client_id, &code).await);
    let (sealer, config) = proxy.seals();
    let seals = Seals::new(&sealer, &config);
    let mut foreign: SealedRefresh = seals.open(&token).unwrap();
    foreign.client_id = "https://other.test/cimd.json".into();
    let foreign = seals.seal(&foreign).unwrap();
    let expired = sealer
        .try_seal_at(
            Purpose::RefreshToken,
            Duration::from_secs(60),
            &seals.open::<SealedRefresh>(&token).unwrap(),
            unix_now() - 3600,
        )
        .unwrap();
    // A code is sealed too, but is not a refresh token.
    for presented in [foreign.as_str(), expired.as_str(), code.as_str()] {
        let answer = revoke(&proxy, &[("token", presented), ("client_id", &client_id)]).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert!(answer.body.is_empty());
    }
    // The family the foreign copy names is untouched: its owner refreshes.
    refresh_token_of(&refresh(&proxy, &client_id, &token).await);
}

#[tokio::test]
async fn revoke_authenticates_the_client_and_needs_a_token() {
    let world = World::new().await;
    let (_origin, client_id, proxy) = proxy_with_client(&world).await;
    let no_client = revoke(&proxy, &[("token", "anything")]).await;
    assert_eq!(
        no_client.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        no_client.body
    );
    assert_eq!(no_client.json()["error"], "invalid_client");
    let no_token = revoke(&proxy, &[("client_id", &client_id)]).await;
    assert_eq!(no_token.status, StatusCode::BAD_REQUEST);
    assert_eq!(no_token.json()["error"], "invalid_request");
    let not_a_form = proxy
        .send_to(
            "POST",
            proxy.base.join("revoke").unwrap(),
            Some("application/json"),
            "{}".into(),
        )
        .await;
    assert_eq!(not_a_form.json()["error"], "invalid_request");
}

#[tokio::test]
async fn an_access_token_is_unsupported_without_a_provider_revocation_endpoint() {
    let world = World::new().await;
    let (_origin, client_id, proxy) = proxy_with_client(&world).await;
    let answer = revoke(
        &proxy,
        &[("token", "upstream-access"), ("client_id", &client_id)],
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert_eq!(answer.json()["error"], "unsupported_token_type");
    // With one, the provider's access token is passed on to it.
    let (origin, client_id) = world.valid_app().await;
    let proxy = Proxy::start_with(&world, origin.port(), ALLOW, revoking_provider()).await;
    let answer = revoke(
        &proxy,
        &[
            ("token", "upstream-access"),
            ("token_type_hint", "access_token"),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        proxy.idp.revocations.lock().unwrap().clone(),
        vec![(
            "main".to_owned(),
            "upstream-access".to_owned(),
            Some("access_token".to_owned())
        )]
    );
}

#[tokio::test]
async fn provider_errors_keep_their_code_and_lose_the_providers_addresses() {
    let world = World::new().await;
    let (_origin, client_id, proxy) = proxy_with_client(&world).await;
    for (code, relayed) in [
        ("invalid_target", "invalid_target"),
        ("consent_required", "consent_required"),
        ("interaction_required", "interaction_required"),
        ("AADSTS50058", "server_error"),
    ] {
        let authorized = proxy.authorize(&client_id, "https://app.test/cb").await;
        let state = query(&authorized.location())["state"].clone();
        let answer = proxy
            .get(
                "callback",
                &[
                    ("error", code),
                    (
                        "error_description",
                        "AADSTS500011: The resource principal named https://internal.test/x was not found; see idp.test/help",
                    ),
                    ("state", &state),
                    ("iss", IDP),
                ],
            )
            .await;
        let params = query(&answer.location());
        assert_eq!(params["error"], relayed, "{code}");
        assert_eq!(
            params["error_description"],
            "AADSTS500011: The resource principal named (address removed) was not found; see (address removed)"
        );
    }
    // At /token too.
    let code = proxy.code_for(&client_id).await;
    proxy.idp.refuse_next(
        StatusCode::BAD_REQUEST,
        json!({"error": "invalid_target", "error_description": "no such audience at http://10.0.0.7:8080/"}),
    );
    let answer = exchange(&proxy, &client_id, &code).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json()["error"], "invalid_target");
    assert_eq!(
        answer.json()["error_description"],
        "no such audience at (address removed)"
    );
}

/// The ceiling applies on refresh as at sign-in: a policy that shrank since
/// narrows what the provider is asked, and one that allows nothing of the
/// grant refuses it.
#[tokio::test]
async fn a_refresh_is_cut_to_the_ceiling_in_force_now() {
    let world = World::new().await;
    let (origin, client_id) = refreshing_app(&world).await;
    let upstream = format!(
        "profile = \"entra\"\n[upstream.resource_scopes]\n\"{MCP}\" = \"api://6b1f4c2e\"\n"
    );
    let proxy = Proxy::start_configured(
        &world,
        origin.port(),
        &upstream,
        &resource_section(),
        StandInProvider::new(),
    )
    .await;
    let (code, _) = proxy
        .code_with(
            &client_id,
            &[("scope", "openid mcp profile"), ("resource", MCP)],
        )
        .await;
    let refresh = refresh_token_of(&exchange(&proxy, &client_id, &code).await);
    let rule = |scopes: &str| {
        format!(
            "default_action = \"allow\"\n[[policy.rules]]\nclient_id = \"https://app.test:*/**\"\n\
             action = \"allow\"\nscopes = [{scopes}]"
        )
    };
    proxy.reload_with_policy(&rule("\"openid\", \"mcp\""));
    let refresh = refresh_token_of(&refresh_with(&proxy, &client_id, &refresh, None).await);
    assert_eq!(
        proxy.idp.token_calls()[1]["scope"],
        "openid api://6b1f4c2e/mcp offline_access"
    );
    proxy.reload_with_policy(&rule("\"email\""));
    let answer = refresh_with(&proxy, &client_id, &refresh, None).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json()["error"], "invalid_scope");
    assert_eq!(proxy.idp.token_calls().len(), 2);
}

/// The `[policy]` of the relayed tests, with the relayed client listed: its
/// own loopback redirect URI, registered without a port.
const ALLOW_AND_RELAY: &str = "[policy]\ndefault_action = \"allow\"\n\n\
    [[upstream.relayed_clients]]\nclient_id = \"desktop-app\"\n\
    auth_method = \"client_secret_basic\"\nredirect_uris = [\"http://127.0.0.1/cb\"]\n";

fn claims_of(id_token: &str) -> Value {
    let payload = id_token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn a_relayed_pre_registered_client_gets_the_proxys_iss_id_token_and_sealed_tokens() {
    let world = World::new().await;
    let proxy = Proxy::start(&world, 1, ALLOW_AND_RELAY).await;
    // /authorize: sent to the provider as itself, returning to our /callback.
    let redirect_uri = "http://127.0.0.1:53682/cb";
    let authorized = proxy.authorize(RELAYED_CLIENT_ID, redirect_uri).await;
    assert_eq!(authorized.status, StatusCode::FOUND, "{}", authorized.body);
    let upstream = query(&authorized.location());
    assert_eq!(upstream["client_id"], RELAYED_CLIENT_ID);
    assert_eq!(upstream["redirect_uri"], format!("{PROXY}/callback"));
    assert_ne!(upstream["state"], "client-state", "the state is sealed");
    // /callback: the client gets our issuer and our sealed code.
    let back = proxy.idp.sign_in(authorized.location().as_str());
    let relayed = proxy
        .send("GET", &format!("callback?{}", back.query().unwrap()), None)
        .await;
    assert_eq!(relayed.status, StatusCode::FOUND, "{}", relayed.body);
    let at_client = relayed.location();
    assert!(at_client.as_str().starts_with(redirect_uri), "{at_client}");
    let params = query(&at_client);
    assert_eq!(params["iss"], PROXY);
    assert_eq!(params["state"], "client-state");
    assert_ne!(params["code"], "upstream-code-0");
    // /token: its Basic credentials go to the provider as it sent them.
    let credentials = basic(RELAYED_CLIENT_ID, RELAYED_SECRET);
    let answer = proxy
        .token_with(
            Some(&credentials),
            &[
                ("grant_type", "authorization_code"),
                ("code", &params["code"]),
                ("redirect_uri", redirect_uri),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let calls = proxy.idp.token_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["relayed_client_id"], RELAYED_CLIENT_ID);
    assert_eq!(calls[0]["authorization"], credentials);
    assert_eq!(calls[0]["code"], "upstream-code-0");
    assert_eq!(calls[0]["redirect_uri"], format!("{PROXY}/callback"));
    // Our id_token, for the client; a sealed refresh token.
    let body = answer.json();
    let claims = claims_of(body["id_token"].as_str().unwrap());
    assert_eq!(claims["iss"], PROXY);
    assert_eq!(claims["aud"], RELAYED_CLIENT_ID);
    assert_eq!(claims["nonce"], "client-nonce");
    let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
    assert!(!answer.body.contains("upstream-refresh"), "{}", answer.body);
    // A refresh, authenticated the same way, rotates it.
    let refreshed = proxy
        .token_with(
            Some(&credentials),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh_token),
            ],
        )
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    assert_eq!(
        proxy.idp.token_calls()[1]["refresh_token"],
        "upstream-refresh-1"
    );
    let claims = claims_of(refreshed.json()["id_token"].as_str().unwrap());
    assert_eq!(claims["aud"], RELAYED_CLIENT_ID);
    let next = refreshed.json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(next, refresh_token);
    // Without its credentials, or with a secret in the form instead, the
    // proxy refuses before the provider is asked.
    for (authorization, form_secret) in [(None, None), (None, Some(RELAYED_SECRET))] {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("client_id", RELAYED_CLIENT_ID),
            ("refresh_token", next.as_str()),
        ];
        form.extend(form_secret.map(|secret| ("client_secret", secret)));
        let refused = proxy.token_with(authorization, &form).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
        assert_eq!(refused.json()["error"], "invalid_client");
    }
    assert_eq!(proxy.idp.token_calls().len(), 2);
    // A wrong secret is the provider's to refuse, and the client's error.
    let wrong = basic(RELAYED_CLIENT_ID, "not-the-secret");
    let refused = proxy
        .token_with(
            Some(&wrong),
            &[("grant_type", "refresh_token"), ("refresh_token", &next)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    assert_eq!(refused.json()["error"], "invalid_client");
    assert_eq!(proxy.idp.token_calls().len(), 3);
}

#[tokio::test]
async fn a_relayed_client_is_sent_back_only_to_its_listed_redirect_uris() {
    let world = World::new().await;
    let proxy = Proxy::start(&world, 1, ALLOW_AND_RELAY).await;
    // Not listed: an error page, never a redirect to it.
    let answer = proxy
        .authorize(RELAYED_CLIENT_ID, "https://attacker.test/cb")
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert!(answer.headers.get(header::LOCATION).is_none());
    // A client the operator did not list is still passed through untouched.
    let answer = proxy
        .authorize("legacy-app", "https://legacy.test/cb")
        .await;
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.body);
    let upstream = query(&answer.location());
    assert_eq!(upstream["client_id"], "legacy-app");
    assert_eq!(upstream["redirect_uri"], "https://legacy.test/cb");
    assert_eq!(upstream["state"], "client-state");
}

#[tokio::test]
async fn revoke_with_redis_stopped_is_temporarily_unavailable() {
    let world = World::new().await;
    let (origin, client_id) = world.valid_app().await;
    let server = crate::support::redis::redis();
    let _exclusive = server.exclusive().await;
    let (store, _keep) = redis_store(server);
    let proxy = Proxy::start(&world, origin.port(), &format!("{ALLOW}{store}")).await;
    let code = proxy.code_for(&client_id).await;
    let token = refresh_token_of(&exchange(&proxy, &client_id, &code).await);
    server.stop();
    let answer = revoke(&proxy, &[("token", &token), ("client_id", &client_id)]).await;
    server.start();
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.body
    );
    assert_eq!(answer.json()["error"], "temporarily_unavailable");
}

#[tokio::test]
async fn the_metadata_advertises_the_revocation_endpoint() {
    let world = World::new().await;
    let (_origin, _client_id, proxy) = proxy_with_client(&world).await;
    let answer = proxy
        .send("GET", ".well-known/oauth-authorization-server", None)
        .await;
    let metadata = answer.json();
    assert_eq!(metadata["revocation_endpoint"], format!("{PROXY}/revoke"));
    assert_eq!(
        metadata["revocation_endpoint_auth_methods_supported"],
        json!(["none", "private_key_jwt"])
    );
}

/// The client's document now sends codes elsewhere: the same client_id,
/// another redirect URI.
fn moved_document(origin: &crate::support::Origin, client_id: &str) {
    let mut moved = document(client_id);
    moved["redirect_uris"] = json!(["https://elsewhere.test/cb"]);
    origin.set_route(
        "/cimd.json",
        crate::support::Script::json(moved.to_string()),
    );
}

#[tokio::test]
async fn refresh_after_redirect_uris_changed_is_refused_and_the_family_revoked() {
    let world = World::new().await;
    let (origin, client_id) = world.valid_app().await;
    let server = crate::support::redis::redis();
    let _shared = server.shared().await;
    let (store, _keep) = redis_store(server);
    let config = format!("{ALLOW}{store}");
    let signed_in_at = Proxy::start(&world, origin.port(), &config).await;
    let code = signed_in_at.code_for(&client_id).await;
    let token = refresh_token_of(&exchange(&signed_in_at, &client_id, &code).await);
    moved_document(&origin, &client_id);
    // A replica that reads the document as it is now.
    let fresh = Proxy::start(&world, origin.port(), &config).await;
    let before = cimd_proxy::metrics::METRICS
        .metadata_changes
        .with_label_values(&["refuse"])
        .get();
    let refused = refresh(&fresh, &client_id, &token).await;
    assert_eq!(refused.json()["error"], "invalid_grant", "{}", refused.body);
    assert!(
        refused.body.contains("metadata changed"),
        "{}",
        refused.body
    );
    assert!(
        fresh.idp.token_calls().is_empty(),
        "refused before the provider"
    );
    assert!(
        cimd_proxy::metrics::METRICS
            .metadata_changes
            .with_label_values(&["refuse"])
            .get()
            > before
    );
    // The family is revoked: the first replica, its old document cached,
    // refuses the token too.
    let cached = refresh(&signed_in_at, &client_id, &token).await;
    assert_eq!(cached.json()["error"], "invalid_grant");
    assert!(cached.body.contains("revoked"), "{}", cached.body);
}

#[tokio::test]
async fn a_code_issued_before_the_document_changed_is_refused() {
    let world = World::new().await;
    let (origin, client_id) = world.valid_app().await;
    let first = Proxy::start(&world, origin.port(), ALLOW).await;
    let code = first.code_for(&client_id).await;
    moved_document(&origin, &client_id);
    let fresh = Proxy::start(&world, origin.port(), ALLOW).await;
    let answer = exchange(&fresh, &client_id, &code).await;
    assert_eq!(answer.json()["error"], "invalid_grant", "{}", answer.body);
    assert!(fresh.idp.token_calls().is_empty());
}

#[tokio::test]
async fn on_metadata_change_allow_lets_the_grant_go_on_rebound_to_the_new_document() {
    let world = World::new().await;
    let (origin, client_id) = world.valid_app().await;
    let server = crate::support::redis::redis();
    let _shared = server.shared().await;
    let (store, _keep) = redis_store(server);
    let config = format!("{ALLOW}on_metadata_change = \"allow\"\n{store}");
    let signed_in_at = Proxy::start(&world, origin.port(), &config).await;
    let code = signed_in_at.code_for(&client_id).await;
    let token = refresh_token_of(&exchange(&signed_in_at, &client_id, &code).await);
    moved_document(&origin, &client_id);
    let fresh = Proxy::start(&world, origin.port(), &config).await;
    let before = cimd_proxy::metrics::METRICS
        .metadata_changes
        .with_label_values(&["allow"])
        .get();
    let rotated = refresh_token_of(&refresh(&fresh, &client_id, &token).await);
    assert!(
        cimd_proxy::metrics::METRICS
            .metadata_changes
            .with_label_values(&["allow"])
            .get()
            > before
    );
    let (sealer, seal_config) = fresh.seals();
    let seals = Seals::new(&sealer, &seal_config);
    let old: SealedRefresh = seals.open(&token).unwrap();
    let new: SealedRefresh = seals.open(&rotated).unwrap();
    assert!(new.metadata.is_some());
    assert_ne!(
        new.metadata, old.metadata,
        "bound to the document as it is now"
    );
}

#[tokio::test]
async fn refresh_reuse_and_a_changed_document_revoke_the_providers_grant_too() {
    let world = World::new().await;
    let (origin, client_id) = world.valid_app().await;
    let proxy = Proxy::start_with(&world, origin.port(), ALLOW, revoking_provider()).await;
    let code = proxy.code_for(&client_id).await;
    let first = refresh_token_of(&exchange(&proxy, &client_id, &code).await);
    let second = refresh_token_of(&refresh(&proxy, &client_id, &first).await);
    assert!(proxy.idp.revocations.lock().unwrap().is_empty());
    // The first generation again: reuse. The provider's refresh token it
    // carries is revoked at the provider, as the upstream client.
    let reused = refresh(&proxy, &client_id, &first).await;
    assert_eq!(reused.json()["error"], "invalid_grant");
    let (sealer, config) = proxy.seals();
    let seals = Seals::new(&sealer, &config);
    let opened: SealedRefresh = seals.open(&first).unwrap();
    assert_eq!(
        proxy.idp.revocations.lock().unwrap().clone(),
        vec![(
            "main".to_owned(),
            opened.upstream_refresh_token,
            Some("refresh_token".to_owned())
        )]
    );
    // The holder of the newest generation is stopped too.
    assert_eq!(
        refresh(&proxy, &client_id, &second).await.json()["error"],
        "invalid_grant"
    );

    // A grant refused because the document changed ends at the provider too.
    let code = proxy.code_for(&client_id).await;
    let token = refresh_token_of(&exchange(&proxy, &client_id, &code).await);
    moved_document(&origin, &client_id);
    let fresh = Proxy::start_with(&world, origin.port(), ALLOW, revoking_provider()).await;
    let refused = refresh(&fresh, &client_id, &token).await;
    assert_eq!(refused.json()["error"], "invalid_grant", "{}", refused.body);
    let opened: SealedRefresh = seals.open(&token).unwrap();
    assert_eq!(
        fresh.idp.revocations.lock().unwrap().clone(),
        vec![(
            "main".to_owned(),
            opened.upstream_refresh_token,
            Some("refresh_token".to_owned())
        )]
    );
}

/// The client inventory, its admin API, page and command (a child module:
/// it drives the proxy through this module's harness).
mod inventory;

// ---------------------------------------------------------------------------
// Dynamic registration (/register): the client_id is the sealed registration
// ---------------------------------------------------------------------------

const REGISTRATION_ON: &str = "[policy]\ndefault_action = \"allow\"\n\
    [policy.registration]\naction = \"allow\"\n\
    [registration]\nenabled = true\n";

/// `POST /register` with a JSON body and, optionally, a bearer token.
async fn register(proxy: &Proxy, body: &str, bearer: Option<&str>) -> Answer {
    let mut request = http::Request::builder()
        .method("POST")
        .uri(proxy.base.join("register").unwrap().as_str())
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = bearer {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = tokio::time::timeout(
        Duration::from_secs(15),
        proxy.http.request(
            request
                .body(Full::new(Bytes::from(body.to_owned())))
                .unwrap(),
        ),
    )
    .await
    .expect("the proxy answers in time")
    .expect("the proxy answers");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

const AGENT: &str = r#"{"client_name":"Agent","redirect_uris":["https://app.test/cb"],
    "grant_types":["authorization_code","refresh_token"],"response_types":["code"],
    "token_endpoint_auth_method":"none"}"#;

/// The registration's client_id, from a 201.
fn registered_client_id(answer: &Answer) -> String {
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store");
    answer.json()["client_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_registered_client_signs_in_and_refreshes_on_any_replica_and_one_changed_byte_is_invalid_client()
 {
    let world = World::new().await;
    let (origin, _) = world.valid_app().await;
    let proxy = Proxy::start(&world, origin.port(), REGISTRATION_ON).await;
    let other_replica = Proxy::start(&world, origin.port(), REGISTRATION_ON).await;

    let discovery = proxy
        .get(".well-known/oauth-authorization-server", &[])
        .await
        .json();
    assert_eq!(
        discovery["registration_endpoint"],
        format!("{PROXY}/register")
    );

    let answer = register(&proxy, AGENT, None).await;
    let client_id = registered_client_id(&answer);
    let body = answer.json();
    assert!(client_id.starts_with("dcr."), "{client_id}");
    assert_eq!(body["client_name"], "Agent");
    assert_eq!(body["token_endpoint_auth_method"], "none");
    assert!(body["client_id_issued_at"].as_u64().is_some());
    assert!(body["client_id_expires_at"].as_u64() > body["client_id_issued_at"].as_u64());

    // Signs in and refreshes at the other replica: nothing was stored.
    let code = other_replica.code_for(&client_id).await;
    let tokens = exchange(&other_replica, &client_id, &code).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.body);
    let id_token = tokens.json()["id_token"].as_str().unwrap().to_owned();
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(id_token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["aud"], client_id.as_str());
    let refreshed = refresh(&other_replica, &client_id, &refresh_token_of(&tokens)).await;
    refresh_token_of(&refreshed);

    // One byte changed: invalid_client at /token, an error page at /authorize.
    let mut altered = client_id.clone().into_bytes();
    let middle = altered.len() / 2;
    altered[middle] = if altered[middle] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    let refused = exchange(&proxy, &altered, &code).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    assert_eq!(refused.json()["error"], "invalid_client");
    assert!(
        refused.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("not a registration issued by this server"),
        "{}",
        refused.body
    );
    let page = proxy.authorize(&altered, "https://app.test/cb").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("must register again"), "{}", page.body);
    assert!(
        proxy.idp.token_calls().is_empty(),
        "nothing reached the provider"
    );

    // A redirect_uri it did not register is refused as for any client.
    let page = proxy.authorize(&client_id, "https://app.test/other").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
}

/// A registered client's tokens are the proxy's: it revokes them at
/// `/revoke` like a CIMD client (regression: `/revoke` took only URL
/// client_ids).
#[tokio::test]
async fn a_registered_client_revokes_its_refresh_token_at_revoke() {
    let world = World::new().await;
    let (origin, _) = world.valid_app().await;
    let proxy = Proxy::start(&world, origin.port(), REGISTRATION_ON).await;
    let client_id = registered_client_id(&register(&proxy, AGENT, None).await);
    let code = proxy.code_for(&client_id).await;
    let tokens = exchange(&proxy, &client_id, &code).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.body);
    let refresh_token = refresh_token_of(&tokens);
    let answer = revoke(
        &proxy,
        &[
            ("token", refresh_token.as_str()),
            ("client_id", client_id.as_str()),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let refused = refresh(&proxy, &client_id, &refresh_token).await;
    assert_eq!(refused.json()["error"], "invalid_grant", "{}", refused.body);
}

#[tokio::test]
async fn a_warned_registered_client_gets_the_self_registered_consent_page() {
    let world = World::new().await;
    let (origin, _) = world.valid_app().await;
    let proxy = Proxy::start(
        &world,
        origin.port(),
        "[policy]\ndefault_action = \"allow\"\n[registration]\nenabled = true\n",
    )
    .await;
    let client_id = registered_client_id(&register(&proxy, AGENT, None).await);
    let page = proxy.authorize(&client_id, "https://app.test/cb").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("registered itself"), "{}", page.body);
    assert!(
        page.body.contains("<strong>app.test</strong>"),
        "{}",
        page.body
    );
    assert!(!page.body.contains(&client_id));
}

#[tokio::test]
async fn registration_refusals_limits_and_the_initial_access_token() {
    let world = World::new().await;
    let (origin, _) = world.valid_app().await;

    // Off (the default): no endpoint, not advertised, no registration accepted.
    let off = Proxy::start(&world, origin.port(), ALLOW).await;
    assert_eq!(
        register(&off, AGENT, None).await.status,
        StatusCode::NOT_FOUND
    );
    let discovery = off.get(".well-known/oauth-authorization-server", &[]).await;
    assert!(discovery.json().get("registration_endpoint").is_none());

    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "let-me-register\n").unwrap();
    let proxy = Proxy::start(
        &world,
        origin.port(),
        &format!(
            "{REGISTRATION_ON}per_source_limit = 8\nwindow_s = 2\nmax_body_bytes = 2048\n\
             initial_access_token_file = \"{}\"\n",
            token_file.display()
        ),
    )
    .await;
    // A registration made while it was on is refused once it is off.
    let client_id = registered_client_id(&register(&proxy, AGENT, Some("let-me-register")).await);
    let refused = exchange(&off, &client_id, "code").await;
    assert_eq!(
        refused.json()["error"],
        "invalid_client",
        "{}",
        refused.body
    );

    let token = Some("let-me-register");
    let missing = register(&proxy, AGENT, None).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED, "{}", missing.body);
    assert_eq!(missing.json()["error"], "invalid_token");
    assert_eq!(
        missing.headers[header::WWW_AUTHENTICATE],
        r#"Bearer error="invalid_token""#
    );
    let wrong = register(&proxy, AGENT, Some("let-me-in")).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);

    let cases = [
        (
            r#"{"redirect_uris":["http://app.test/cb"]}"#,
            "invalid_redirect_uri",
        ),
        (
            r#"{"redirect_uris":["https://app.test/cb"],"redirect_uris":["https://evil.test/cb"]}"#,
            "invalid_client_metadata",
        ),
        (
            r#"{"redirect_uris":["https://app.test/cb"],"token_endpoint_auth_method":"client_secret_basic"}"#,
            "invalid_client_metadata",
        ),
    ];
    for (body, error) in cases {
        let answer = register(&proxy, body, token).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            answer.body
        );
        assert_eq!(answer.json()["error"], error, "{body}");
    }
    let large = format!(
        r#"{{"redirect_uris":["https://app.test/cb"],"client_name":"{}"}}"#,
        "x".repeat(3000)
    );
    let answer = register(&proxy, &large, token).await;
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        answer.body
    );
    assert_eq!(answer.json()["error"], "invalid_client_metadata");

    // Eight from this address in the window (one registration, two without
    // the token: guessing it is limited too, three refusals, the large one,
    // and one more) have been counted: the next is limited, with
    // Retry-After, until the window ends.
    registered_client_id(&register(&proxy, AGENT, token).await);
    let limited = register(&proxy, AGENT, token).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.body
    );
    assert_eq!(limited.headers[header::RETRY_AFTER], "2");
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    registered_client_id(&register(&proxy, AGENT, token).await);
}
