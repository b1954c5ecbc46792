//! The sample client: what the browser sees in `cimd-proxy dev`.
//!
//! A small web app that behaves as a CIMD client should: its client_id is
//! the URL of its metadata document (served by [`super::dochost`]), it
//! signs in with PKCE (S256), `state` and `nonce`, checks the RFC 9207 `iss`
//! of the answer, exchanges the code at the proxy's `/token` as a public
//! client, and verifies the id_token against the proxy's `/jwks.json`. The
//! result page shows what the point of the proxy is: an id_token whose
//! `iss` is the proxy and whose `aud` is this client's URL, although the
//! identity provider behind it has never heard of the client.
//!
//! Sign-ins in progress (the PKCE verifier and nonce, keyed by `state`)
//! live in a bounded map that forgets them after ten minutes. The token
//! call is a plain HTTP request to the proxy on loopback: this is the
//! client's side, not the proxy's hardened fetcher.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::JwkSet;
use serde_json::{Map, Value, json};
use url::Url;

use super::{Params, SAMPLE_CLIENT_NAME, SAMPLE_SCOPE, TokenStore, random_token, s256};
use crate::id_token::IdTokenVerifier;

/// The link that starts a sign-in.
pub const START_PATH: &str = "/start";
/// The sample client's redirect_uri path.
pub const CALLBACK_PATH: &str = "/callback";

/// How long a person may take between the start link and the callback.
const SIGN_IN_TTL: Duration = Duration::from_secs(600);
/// The most sign-ins in progress at once.
const MAX_PENDING: usize = 1000;
/// One deadline over each call to the proxy.
const PROXY_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read from the proxy.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// How much of the access token the page shows.
const SHOWN_TOKEN_CHARS: usize = 8;
/// The sample client's one stylesheet, inlined and allowed by its hash.
/// The dev pages' stylesheet (the sample client's and the provider's).
pub(super) const CSS: &str = include_str!("../../templates/dev/dev.css");

/// The sample client's metadata document.
pub fn document(client_id: &str, redirect_uri: &str) -> String {
    let document = json!({
        "client_id": client_id,
        "client_name": SAMPLE_CLIENT_NAME,
        "redirect_uris": [redirect_uri],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "scope": SAMPLE_SCOPE,
    });
    // Serialising a `json!` value cannot fail; fall back to compact anyway.
    serde_json::to_string_pretty(&document).unwrap_or_else(|_| document.to_string())
}

/// The sample client app.
pub struct SampleClient {
    /// The proxy's issuer (its public base URL).
    proxy: String,
    client_id: String,
    redirect_uri: String,
    pending: TokenStore<Pending>,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for SampleClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SampleClient")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// What the callback needs from the start of a sign-in.
struct Pending {
    code_verifier: String,
    nonce: String,
}

impl SampleClient {
    /// A client of the proxy at `proxy` (its issuer), known by `client_id`,
    /// receiving codes at `redirect_uri`.
    pub fn new(proxy: String, client_id: String, redirect_uri: String) -> SampleClient {
        SampleClient {
            proxy,
            client_id,
            redirect_uri,
            pending: TokenStore::new(MAX_PENDING, SIGN_IN_TTL),
            http: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// The proxy's `/authorize` URL for a new sign-in, after remembering
    /// its verifier and nonce under a fresh `state`.
    fn start(&self) -> Result<String, &'static str> {
        let random = |bytes| random_token(bytes).map_err(|_| "the random source failed");
        let code_verifier = random(32)?;
        let state = random(16)?;
        let nonce = random(16)?;
        let challenge = s256(&code_verifier);
        let mut url = Url::parse(&format!("{}/authorize", self.proxy))
            .map_err(|_| "the proxy's URL is not valid")?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", SAMPLE_SCOPE)
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        self.pending
            .insert(
                &state,
                Pending {
                    code_verifier,
                    nonce,
                },
            )
            .map_err(|_| "too many sign-ins in progress; try again in a few minutes")?;
        Ok(url.into())
    }

    /// The callback: checks `state` and `iss`, shows an OAuth error, or
    /// exchanges the code and shows the tokens.
    async fn callback(&self, params: &Params<'_>) -> Outcome {
        let mut outcome = Outcome::new(self);
        let Some(pending) = params
            .get("state")
            .and_then(|state| self.pending.take(state))
        else {
            return outcome.failed(
                "unknown_state",
                "This sign-in was not started here, was already completed, or has expired. Start again.",
            );
        };
        match params.get("iss") {
            Some(iss) if iss == self.proxy => {
                outcome.issuer_note = format!("iss = {iss}: the answer comes from the proxy");
            }
            Some(_) => {
                return outcome.failed(
                    "iss_mismatch",
                    "The authorization response names another issuer (RFC 9207); it was ignored.",
                );
            }
            None => {
                outcome.issuer_note = "the authorization response carried no iss".to_owned();
            }
        }
        if let Some(error) = params.get("error") {
            let description = params
                .get("error_description")
                .unwrap_or("(no description)");
            return outcome.failed(error, description);
        }
        let Some(code) = params.get("code") else {
            return outcome.failed(
                "invalid_request",
                "The callback carried neither a code nor an error.",
            );
        };
        let tokens = match self.exchange(code, &pending.code_verifier).await {
            Ok(tokens) => tokens,
            Err((error, description)) => return outcome.failed(&error, &description),
        };
        outcome.refresh_token = tokens.get("refresh_token").is_some_and(Value::is_string);
        outcome.access_token = tokens
            .get("access_token")
            .and_then(Value::as_str)
            .map(shorten);
        match tokens.get("id_token").and_then(Value::as_str) {
            Some(id_token) => {
                self.show_id_token(&mut outcome, id_token, &pending.nonce)
                    .await
            }
            None => outcome.verification = "no id_token came back".to_owned(),
        }
        outcome.signed_in = true;
        outcome
    }

    /// `POST /token` at the proxy, as a public client with PKCE.
    async fn exchange(
        &self,
        code: &str,
        code_verifier: &str,
    ) -> Result<Map<String, Value>, (String, String)> {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("client_id", &self.client_id)
            .append_pair("code_verifier", code_verifier)
            .finish();
        let url = format!("{}/token", self.proxy);
        let (status, body) = self
            .call(
                http::Request::post(&url)
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header(header::ACCEPT, "application/json")
                    .body(Full::new(Bytes::from(form))),
            )
            .await
            .map_err(|reason| ("token_request_failed".to_owned(), reason))?;
        let object = serde_json::from_slice::<Map<String, Value>>(&body).map_err(|_| {
            (
                "invalid_token_response".to_owned(),
                format!("the proxy's /token answered HTTP {status} without a JSON object"),
            )
        })?;
        if let Some(error) = object.get("error").and_then(Value::as_str) {
            let description = object
                .get("error_description")
                .and_then(Value::as_str)
                .unwrap_or("(no description)");
            return Err((error.to_owned(), description.to_owned()));
        }
        if !status.is_success() {
            return Err((
                "invalid_token_response".to_owned(),
                format!("the proxy's /token answered HTTP {status}"),
            ));
        }
        Ok(object)
    }

    /// Verifies the id_token against the proxy's keys, as a client would,
    /// and lists its claims (unverified ones too, marked as such).
    async fn show_id_token(&self, outcome: &mut Outcome, id_token: &str, nonce: &str) {
        let verified = match self.proxy_keys().await {
            Ok(keys) => IdTokenVerifier::new(self.proxy.clone(), self.client_id.clone())
                .verify(id_token, &keys, Some(nonce))
                .map_err(|error| error.to_string()),
            Err(reason) => Err(reason),
        };
        let claims = match verified {
            Ok(claims) => {
                outcome.verified = true;
                outcome.verification = format!(
                    "signature verified with {}/jwks.json; iss, aud, exp and nonce checked",
                    self.proxy
                );
                claims
            }
            Err(reason) => {
                outcome.verification = format!("NOT verified: {reason}");
                unverified_claims(id_token).unwrap_or_default()
            }
        };
        outcome.iss_is_proxy = claims.get("iss").and_then(Value::as_str) == Some(&self.proxy);
        outcome.aud_is_client = match claims.get("aud") {
            Some(Value::String(aud)) => aud == &self.client_id,
            Some(Value::Array(auds)) => auds.iter().any(|aud| aud == self.client_id.as_str()),
            _ => false,
        };
        outcome.claims = claims_rows(claims);
    }

    async fn proxy_keys(&self) -> Result<JwkSet, String> {
        let url = format!("{}/jwks.json", self.proxy);
        let (status, body) = self
            .call(http::Request::get(&url).body(Full::new(Bytes::new())))
            .await?;
        if !status.is_success() {
            return Err(format!("the proxy's /jwks.json answered HTTP {status}"));
        }
        serde_json::from_slice(&body).map_err(|_| "the proxy's /jwks.json is not a JWK Set".into())
    }

    /// One request to the proxy, bounded in time and size.
    async fn call(
        &self,
        request: Result<http::Request<Full<Bytes>>, http::Error>,
    ) -> Result<(StatusCode, Bytes), String> {
        let request = request.map_err(|error| error.to_string())?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|error| format!("cannot reach the proxy: {error}"))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|error| format!("cannot read the proxy's answer: {error}"))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(PROXY_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| Err("the proxy did not answer in time".to_owned()))
    }
}

/// The first characters of a token and its length: enough to see one came
/// back, not enough to use it.
fn shorten(token: &str) -> String {
    let shown: String = token.chars().take(SHOWN_TOKEN_CHARS).collect();
    format!("{shown}… ({} characters)", token.chars().count())
}

/// The payload of a JWT, without any check: for display only.
fn unverified_claims(jwt: &str) -> Option<Map<String, Value>> {
    let payload = jwt.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

/// The claims as rows, `iss` and `aud` first (they are the point).
fn claims_rows(claims: Map<String, Value>) -> Vec<Claim> {
    let mut rows: Vec<Claim> = claims
        .into_iter()
        .map(|(name, value)| Claim {
            value: match value {
                Value::String(text) => text,
                other => other.to_string(),
            },
            name,
        })
        .collect();
    let rank = |name: &str| match name {
        "iss" => 0,
        "aud" => 1,
        "sub" => 2,
        _ => 3,
    };
    rows.sort_by(|a, b| (rank(&a.name), &a.name).cmp(&(rank(&b.name), &b.name)));
    rows
}

/// One claim of the id_token.
struct Claim {
    name: String,
    value: String,
}

/// What the result page shows.
#[derive(Template)]
#[template(path = "dev/result.html")]
struct Outcome {
    css: &'static str,
    signed_in: bool,
    error: Option<(String, String)>,
    proxy: String,
    client_id: String,
    issuer_note: String,
    access_token: Option<String>,
    refresh_token: bool,
    verified: bool,
    verification: String,
    iss_is_proxy: bool,
    aud_is_client: bool,
    claims: Vec<Claim>,
}

impl Outcome {
    fn new(client: &SampleClient) -> Outcome {
        Outcome {
            css: CSS,
            signed_in: false,
            error: None,
            proxy: client.proxy.clone(),
            client_id: client.client_id.clone(),
            issuer_note: String::new(),
            access_token: None,
            refresh_token: false,
            verified: false,
            verification: String::new(),
            iss_is_proxy: false,
            aud_is_client: false,
            claims: Vec::new(),
        }
    }

    fn failed(mut self, error: &str, description: &str) -> Outcome {
        self.error = Some((error.to_owned(), description.to_owned()));
        self
    }
}

#[derive(Template)]
#[template(path = "dev/home.html")]
struct Home<'a> {
    css: &'static str,
    client_id: &'a str,
    proxy: &'a str,
    start: &'static str,
}

/// The sample client's routes: `/`, `/start`, `/callback`.
pub fn router(client: Arc<SampleClient>) -> Router {
    Router::new()
        .route("/", get(home))
        .route(START_PATH, get(start))
        .route(CALLBACK_PATH, get(callback))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(client)
}

/// The pages' Content-Security-Policy: no scripts, no forms, no framing,
/// nothing loaded; the one stylesheet allowed by its hash.
fn content_security_policy() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        let hash = ring::digest::digest(&ring::digest::SHA256, CSS.as_bytes());
        format!(
            "default-src 'none'; style-src 'sha256-{}'; form-action 'none'; \
             frame-ancestors 'none'; base-uri 'none'",
            STANDARD.encode(hash)
        )
    })
}

/// A page with the same hygiene headers as the proxy's own pages.
pub(super) fn page(status: StatusCode, template: &impl Template) -> Response {
    let html = match template.render() {
        Ok(html) => html,
        Err(error) => {
            tracing::error!(%error, "cannot render a sample client page");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    crate::html::html_response(status, html, content_security_policy())
}

async fn home(State(client): State<Arc<SampleClient>>) -> Response {
    page(
        StatusCode::OK,
        &Home {
            css: CSS,
            client_id: &client.client_id,
            proxy: &client.proxy,
            start: START_PATH,
        },
    )
}

async fn start(State(client): State<Arc<SampleClient>>) -> Response {
    match client.start() {
        Ok(location) => match HeaderValue::try_from(location) {
            Ok(location) => {
                let mut response =
                    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response();
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response
            }
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
        Err(reason) => page(
            StatusCode::SERVICE_UNAVAILABLE,
            &Outcome::new(&client).failed("temporarily_unavailable", reason),
        ),
    }
}

async fn callback(State(client): State<Arc<SampleClient>>, RawQuery(query): RawQuery) -> Response {
    let outcome = match Params::parse(query.unwrap_or_default().as_bytes()) {
        Ok(params) => client.callback(&params).await,
        Err(reason) => Outcome::new(&client).failed("invalid_request", &reason.to_string()),
    };
    page(StatusCode::OK, &outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_one_the_proxy_accepts() {
        let client_id = "https://127.0.0.1:4443/client.json";
        let text = document(client_id, "http://127.0.0.1:5000/callback");
        let url = crate::ClientIdUrl::parse(client_id).unwrap();
        let metadata = crate::metadata::validate(&url, text.as_bytes()).unwrap();
        assert_eq!(metadata.client_name.as_deref(), Some(SAMPLE_CLIENT_NAME));
        assert!(metadata.only_loopback_redirects());
    }

    #[test]
    fn pages_allow_their_stylesheet_by_hash_and_nothing_else() {
        let client = SampleClient::new(
            "http://p".into(),
            "https://c/x".into(),
            "http://a/cb".into(),
        );
        let response = page(StatusCode::OK, &Outcome::new(&client));
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(
            csp.starts_with("default-src 'none'; style-src 'sha256-"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    }

    #[test]
    fn tokens_are_shortened_for_display() {
        assert_eq!(shorten("abcdefghijklmnop"), "abcdefgh… (16 characters)");
        assert_eq!(shorten("abc"), "abc… (3 characters)");
    }

    #[test]
    fn the_start_link_carries_pkce_state_and_nonce() {
        let client = SampleClient::new(
            "http://127.0.0.1:8080".into(),
            "https://127.0.0.1:4443/client.json".into(),
            "http://127.0.0.1:5000/callback".into(),
        );
        let url = Url::parse(&client.start().unwrap()).unwrap();
        assert_eq!(url.path(), "/authorize");
        let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(query["code_challenge_method"], "S256");
        assert_eq!(query["code_challenge"].len(), 43);
        assert_eq!(query["client_id"], "https://127.0.0.1:4443/client.json");
        assert_eq!(query["scope"], SAMPLE_SCOPE);
        let pending = client.pending.take(&query["state"]).unwrap();
        assert_eq!(s256(&pending.code_verifier), query["code_challenge"]);
        assert_eq!(pending.nonce, query["nonce"]);
    }

    #[tokio::test]
    async fn an_unknown_state_or_a_foreign_iss_is_refused() {
        let client = SampleClient::new(
            "http://127.0.0.1:8080".into(),
            "https://127.0.0.1:4443/client.json".into(),
            "http://127.0.0.1:5000/callback".into(),
        );
        let outcome = client
            .callback(&Params::parse(b"code=x&state=nope").unwrap())
            .await;
        assert_eq!(outcome.error.unwrap().0, "unknown_state");

        let start = Url::parse(&client.start().unwrap()).unwrap();
        let state = start
            .query_pairs()
            .find(|(name, _)| name == "state")
            .unwrap()
            .1
            .into_owned();
        let query = format!("code=x&state={state}&iss=http%3A%2F%2Fevil.example");
        let outcome = client
            .callback(&Params::parse(query.as_bytes()).unwrap())
            .await;
        assert_eq!(outcome.error.unwrap().0, "iss_mismatch");
    }

    #[test]
    fn hostile_error_descriptions_are_escaped() {
        let client = SampleClient::new(
            "http://p".into(),
            "https://c/x".into(),
            "http://a/cb".into(),
        );
        let html = Outcome::new(&client)
            .failed("access_denied", "<script>alert(1)</script>")
            .render()
            .unwrap();
        assert!(!html.contains("<script>"));
        assert!(html.contains("access_denied"));
    }
}
