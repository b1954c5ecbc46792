//! A development identity provider: just enough OpenID Connect for the
//! proxy to sign a person in through it, on loopback, inside `cimd-proxy dev`.
//!
//! It is **not** a conformant OpenID provider and **not** safe anywhere but
//! a developer's own machine: there is no login page and no consent;
//! whoever reaches `/authorize` is signed in as `dev-user` ("Dev User",
//! dev@example.test). It knows one client, the proxy's pre-registered one.
//!
//! What it does check is what exercises the proxy's side of the flow
//! honestly: the client_id and the exact redirect_uri at `/authorize`
//! (anything else is an error page, never a redirect); PKCE with S256 only;
//! codes that are random, single use, bound to their redirect_uri and
//! valid for a minute; `client_secret_basic` with a secret generated at
//! start; refresh tokens that rotate; id_tokens signed with an ephemeral
//! P-256 key published at `/jwks.json`; `iss` on the authorization response
//! (RFC 9207). All state lives in bounded in-memory maps.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use url::Url;

use super::{DevError, Params, TokenStore, constant_time_eq, random_token, s256};
use crate::id_token::SigningKeys;

/// The one user everybody is signed in as.
pub const USER_SUB: &str = "dev-user";
/// The user's `name`.
pub const USER_NAME: &str = "Dev User";
/// The user's `email`.
pub const USER_EMAIL: &str = "dev@example.test";

/// The scopes this provider knows; others are dropped from a grant.
const SUPPORTED_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];
const CODE_TTL: Duration = Duration::from_secs(60);
const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(300);
const ID_TOKEN_TTL: Duration = Duration::from_secs(300);
/// A working day: long enough to try refreshing, short enough to be a toy.
const REFRESH_TOKEN_TTL: Duration = Duration::from_secs(8 * 3600);
/// The most codes, access tokens and refresh tokens held, each.
const MAX_ENTRIES: usize = 1000;

/// Who the provider is and which client it knows.
pub struct IdpConfig {
    /// The issuer: `http://127.0.0.1:<port>`, no trailing slash.
    pub issuer: String,
    /// The proxy's client_id here.
    pub client_id: String,
    /// The proxy's client secret here (generated at start; never logged).
    pub client_secret: String,
    /// The one redirect_uri registered for the proxy: its `/callback`.
    pub redirect_uri: String,
}

/// The development provider's state. Share it behind an `Arc`.
pub struct DevIdp {
    config: IdpConfig,
    signing: SigningKeys,
    codes: TokenStore<CodeGrant>,
    access_tokens: TokenStore<Grant>,
    refresh_tokens: TokenStore<Grant>,
}

impl std::fmt::Debug for DevIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client secret and the tokens stay out of any output.
        f.debug_struct("DevIdp")
            .field("issuer", &self.config.issuer)
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

/// What a grant is for: carried from the code to the tokens.
#[derive(Debug, Clone)]
struct Grant {
    scope: Vec<String>,
    auth_time: u64,
}

impl Grant {
    fn has(&self, scope: &str) -> bool {
        self.scope.iter().any(|s| s == scope)
    }
}

#[derive(Debug)]
struct CodeGrant {
    grant: Grant,
    code_challenge: String,
    redirect_uri: String,
    nonce: Option<String>,
}

/// The answer to an authorization request.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Authorize {
    /// Back to the (validated) redirect_uri, with a code or an error.
    Redirect(String),
    /// An error page: the client or its redirect_uri is unknown, so there
    /// is nowhere trusted to redirect to.
    Refuse(&'static str),
}

/// An OAuth error from `/token` or `/userinfo`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct TokenError {
    status: StatusCode,
    error: &'static str,
    description: &'static str,
}

impl TokenError {
    const fn new(status: StatusCode, error: &'static str, description: &'static str) -> Self {
        TokenError {
            status,
            error,
            description,
        }
    }

    const fn grant(description: &'static str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    const fn request(description: &'static str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    const fn client() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed (client_secret_basic is required)",
        )
    }

    const fn server() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the development provider could not issue tokens",
        )
    }

    /// The OAuth error code.
    #[cfg(test)]
    pub(super) fn error(&self) -> &'static str {
        self.error
    }
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(json!({ "error": self.error, "error_description": self.description })),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = if self.error == "invalid_token" {
                "Bearer error=\"invalid_token\""
            } else {
                "Basic realm=\"cimd-proxy dev\""
            };
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

impl DevIdp {
    /// A provider with a fresh signing key and empty stores.
    pub fn new(config: IdpConfig) -> Result<DevIdp, DevError> {
        Ok(DevIdp {
            config,
            signing: SigningKeys::generate_ephemeral().map_err(DevError::Provider)?,
            codes: TokenStore::new(MAX_ENTRIES, CODE_TTL),
            access_tokens: TokenStore::new(MAX_ENTRIES, ACCESS_TOKEN_TTL),
            refresh_tokens: TokenStore::new(MAX_ENTRIES, REFRESH_TOKEN_TTL),
        })
    }

    fn metadata(&self) -> Value {
        let issuer = &self.config.issuer;
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks.json"),
            "userinfo_endpoint": format!("{issuer}/userinfo"),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "scopes_supported": SUPPORTED_SCOPES,
            "claims_supported": ["sub", "name", "email", "email_verified", "auth_time"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": self.signing.algorithms(),
            "authorization_response_iss_parameter_supported": true,
        })
    }

    /// `/authorize`: checks the client, its redirect_uri and PKCE, then
    /// signs `dev-user` in without asking and redirects with a code.
    pub(super) fn authorize(&self, params: &Params<'_>) -> Authorize {
        if params.get("client_id") != Some(self.config.client_id.as_str()) {
            return Authorize::Refuse("unknown client_id: this provider knows only the proxy");
        }
        if params.get("redirect_uri") != Some(self.config.redirect_uri.as_str()) {
            return Authorize::Refuse("redirect_uri is not the proxy's registered /callback");
        }
        let state = params.get("state");
        let fail = |error: &str, description: &str| {
            self.redirect(
                &[("error", error), ("error_description", description)],
                state,
            )
        };
        if params.get("response_type") != Some("code") {
            return fail(
                "unsupported_response_type",
                "only response_type=code is supported",
            );
        }
        let Some(code_challenge) = params.get("code_challenge") else {
            return fail(
                "invalid_request",
                "PKCE is required: code_challenge is missing",
            );
        };
        if params.get("code_challenge_method") != Some("S256") || !is_s256(code_challenge) {
            return fail(
                "invalid_request",
                "PKCE with code_challenge_method=S256 is required",
            );
        }
        let scope = params
            .get("scope")
            .unwrap_or_default()
            .split(' ')
            .filter(|scope| SUPPORTED_SCOPES.contains(scope))
            .map(str::to_owned)
            .collect();
        let Ok(code) = random_token(32) else {
            return fail("server_error", "the random source failed");
        };
        let grant = CodeGrant {
            grant: Grant {
                scope,
                auth_time: unix_now(),
            },
            code_challenge: code_challenge.to_owned(),
            redirect_uri: self.config.redirect_uri.clone(),
            nonce: params.get("nonce").map(str::to_owned),
        };
        if self.codes.insert(&code, grant).is_err() {
            return fail(
                "temporarily_unavailable",
                "too many sign-ins in progress; try again in a minute",
            );
        }
        tracing::info!(
            user = USER_SUB,
            "development provider signed the user in automatically"
        );
        self.redirect(&[("code", code.as_str())], state)
    }

    /// A redirect to the proxy's callback with `params`, the state and `iss`.
    fn redirect(&self, params: &[(&str, &str)], state: Option<&str>) -> Authorize {
        let Ok(mut url) = Url::parse(&self.config.redirect_uri) else {
            return Authorize::Refuse("the registered redirect_uri is not a URL");
        };
        {
            let mut query = url.query_pairs_mut();
            for (name, value) in params {
                query.append_pair(name, value);
            }
            if let Some(state) = state {
                query.append_pair("state", state);
            }
            query.append_pair("iss", &self.config.issuer);
        }
        Authorize::Redirect(url.into())
    }

    /// `/token`: `client_secret_basic`, then the code (with PKCE) or a
    /// refresh token (rotated).
    pub(super) fn token(
        &self,
        authorization: Option<&str>,
        params: &Params<'_>,
    ) -> Result<Value, TokenError> {
        if !self.client_authenticated(authorization) {
            return Err(TokenError::client());
        }
        match params.get("grant_type") {
            Some("authorization_code") => {
                let code = params
                    .get("code")
                    .ok_or(TokenError::request("code is missing"))?;
                // Taken out before anything else is checked: a code is
                // spent by its first use, right or wrong.
                let grant = self
                    .codes
                    .take(code)
                    .ok_or(TokenError::grant("the code is unknown, used or expired"))?;
                if params.get("redirect_uri") != Some(grant.redirect_uri.as_str()) {
                    return Err(TokenError::grant(
                        "redirect_uri does not match the authorization request",
                    ));
                }
                let verifier = params
                    .get("code_verifier")
                    .ok_or(TokenError::request("code_verifier is missing"))?;
                if !pkce_matches(verifier, &grant.code_challenge) {
                    return Err(TokenError::grant("code_verifier does not match"));
                }
                self.issue(&grant.grant, grant.nonce.as_deref())
            }
            Some("refresh_token") => {
                let token = params
                    .get("refresh_token")
                    .ok_or(TokenError::request("refresh_token is missing"))?;
                let mut grant = self.refresh_tokens.take(token).ok_or(TokenError::grant(
                    "the refresh token is unknown, used or expired",
                ))?;
                if let Some(scope) = params.get("scope") {
                    let asked: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
                    if !asked.iter().all(|scope| grant.has(scope)) {
                        return Err(TokenError::new(
                            StatusCode::BAD_REQUEST,
                            "invalid_scope",
                            "a refresh cannot widen the grant",
                        ));
                    }
                    grant.scope.retain(|s| asked.contains(&s.as_str()));
                }
                self.issue(&grant, None)
            }
            Some(_) => Err(TokenError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only authorization_code and refresh_token are supported",
            )),
            None => Err(TokenError::request("grant_type is missing")),
        }
    }

    fn client_authenticated(&self, authorization: Option<&str>) -> bool {
        let Some((id, secret)) = authorization.and_then(parse_basic) else {
            return false;
        };
        // Both compared in full, so the answer's timing says nothing about
        // which part was wrong or where.
        let id_ok = constant_time_eq(id.as_bytes(), self.config.client_id.as_bytes());
        let secret_ok = constant_time_eq(secret.as_bytes(), self.config.client_secret.as_bytes());
        id_ok & secret_ok
    }

    fn issue(&self, grant: &Grant, nonce: Option<&str>) -> Result<Value, TokenError> {
        let access_token = random_token(32).map_err(|_| TokenError::server())?;
        self.access_tokens
            .insert(&access_token, grant.clone())
            .map_err(|_| busy())?;
        let mut body = Map::new();
        if grant.has("offline_access") {
            let refresh_token = random_token(32).map_err(|_| TokenError::server())?;
            self.refresh_tokens
                .insert(&refresh_token, grant.clone())
                .map_err(|_| busy())?;
            body.insert("refresh_token".into(), refresh_token.into());
        }
        if grant.has("openid") {
            let now = unix_now();
            let mut claims = json!({
                "iss": self.config.issuer,
                "sub": USER_SUB,
                "aud": self.config.client_id,
                "iat": now,
                "exp": now + ID_TOKEN_TTL.as_secs(),
                "auth_time": grant.auth_time,
            });
            claims["at_hash"] = crate::id_token::at_hash(self.signing.alg(), &access_token).into();
            if let Some(nonce) = nonce {
                claims["nonce"] = nonce.into();
            }
            self.user_claims(grant, &mut claims);
            let id_token = self.signing.sign(&claims).map_err(|error| {
                tracing::error!(%error, "development provider cannot sign an id_token");
                TokenError::server()
            })?;
            body.insert("id_token".into(), id_token.into());
        }
        body.insert("access_token".into(), access_token.into());
        body.insert("token_type".into(), "Bearer".into());
        body.insert("expires_in".into(), ACCESS_TOKEN_TTL.as_secs().into());
        body.insert("scope".into(), grant.scope.join(" ").into());
        Ok(Value::Object(body))
    }

    /// The claims `profile` and `email` release.
    fn user_claims(&self, grant: &Grant, claims: &mut Value) {
        if grant.has("profile") {
            claims["name"] = USER_NAME.into();
        }
        if grant.has("email") {
            claims["email"] = USER_EMAIL.into();
            claims["email_verified"] = true.into();
        }
    }

    /// `/userinfo`: the user's claims for a live access token.
    pub(super) fn userinfo(&self, authorization: Option<&str>) -> Result<Value, TokenError> {
        let grant = authorization
            .and_then(|value| value.strip_prefix("Bearer "))
            .and_then(|token| self.access_tokens.get(token.trim()))
            .ok_or(TokenError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the access token is unknown or expired",
            ))?;
        let mut claims = json!({ "sub": USER_SUB });
        self.user_claims(&grant, &mut claims);
        Ok(claims)
    }
}

fn busy() -> TokenError {
    TokenError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "too many tokens outstanding; try again later",
    )
}

/// RFC 7636 §4.1 (a verifier is 43 to 128 unreserved characters) and §4.6.
fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    well_formed && constant_time_eq(s256(verifier).as_bytes(), challenge.as_bytes())
}

/// An S256 challenge is 43 base64url characters.
fn is_s256(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1).
fn parse_basic(value: &str) -> Option<(String, String)> {
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id)?, form_decode(secret)?))
}

/// One form-urlencoded component (`+` is a space, `%XX` a byte).
fn form_decode(raw: &str) -> Option<String> {
    if raw.contains(['&', '=']) {
        return None;
    }
    let mut pairs = url::form_urlencoded::parse(raw.as_bytes());
    match pairs.next() {
        Some((name, _)) => Some(name.into_owned()),
        None => Some(String::new()),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The provider's routes.
pub fn router(idp: Arc<DevIdp>) -> Router {
    Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(|State(idp): State<Arc<DevIdp>>| async move { Json(idp.metadata()) }),
        )
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .route(
            "/jwks.json",
            get(|State(idp): State<Arc<DevIdp>>| async move { Json(idp.signing.jwks()) }),
        )
        .route("/userinfo", get(userinfo))
        .route("/", get(home))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(idp)
}

#[derive(askama::Template)]
#[template(path = "dev/idp.html")]
struct Home<'a> {
    css: &'static str,
    issuer: &'a str,
    client_id: &'a str,
}

/// `/`: what this is, for whoever follows the banner's link.
async fn home(State(idp): State<Arc<DevIdp>>) -> Response {
    super::sample_client::page(
        StatusCode::OK,
        &Home {
            css: super::sample_client::CSS,
            issuer: &idp.config.issuer,
            client_id: &idp.config.client_id,
        },
    )
}

async fn authorize(State(idp): State<Arc<DevIdp>>, RawQuery(query): RawQuery) -> Response {
    let outcome = match Params::parse(query.unwrap_or_default().as_bytes()) {
        Ok(params) => idp.authorize(&params),
        Err(_) => Authorize::Refuse("the request's parameters are malformed or repeated"),
    };
    match outcome {
        Authorize::Redirect(location) => match HeaderValue::try_from(location) {
            Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
        Authorize::Refuse(reason) => (
            StatusCode::BAD_REQUEST,
            format!("The development identity provider refused this sign-in: {reason}.\n"),
        )
            .into_response(),
    }
}

async fn token(State(idp): State<Arc<DevIdp>>, headers: HeaderMap, body: Bytes) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let result = Params::parse(&body)
        .map_err(|_| TokenError::request("the form is malformed or repeats a parameter"))
        .and_then(|params| idp.token(authorization, &params));
    match result {
        Ok(body) => {
            let mut response = Json(body).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => error.into_response(),
    }
}

async fn userinfo(State(idp): State<Arc<DevIdp>>, headers: HeaderMap) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    match idp.userinfo(authorization) {
        Ok(claims) => Json(claims).into_response(),
        Err(error) => error.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::jwk::JwkSet;

    use super::*;

    const ISSUER: &str = "http://127.0.0.1:4000";
    const CALLBACK: &str = "http://127.0.0.1:8080/callback";
    const SECRET: &str = "s3cret+/=";
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn idp() -> DevIdp {
        DevIdp::new(IdpConfig {
            issuer: ISSUER.into(),
            client_id: "cimd-proxy-dev".into(),
            client_secret: SECRET.into(),
            redirect_uri: CALLBACK.into(),
        })
        .unwrap()
    }

    /// Regression: the banner's "dev provider" link answered a blank 404.
    #[tokio::test]
    async fn the_root_is_a_page_saying_what_this_is() {
        let response = home(State(Arc::new(idp()))).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let html = String::from_utf8(body.to_vec()).unwrap();
        assert!(html.contains("NOT FOR PRODUCTION"), "{html}");
        assert!(html.contains(&format!("{ISSUER}/.well-known/openid-configuration")));
    }

    fn params(pairs: &[(&str, &str)]) -> Params<'static> {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in pairs {
            form.append_pair(name, value);
        }
        Params::parse(form.finish().as_bytes())
            .unwrap()
            .into_owned()
    }

    fn basic(id: &str, secret: &str) -> String {
        let encode =
            |text: &str| url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
        format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", encode(id), encode(secret)))
        )
    }

    fn authorize_request() -> Vec<(&'static str, &'static str)> {
        vec![
            ("client_id", "cimd-proxy-dev"),
            ("redirect_uri", CALLBACK),
            ("response_type", "code"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
            ("scope", "openid profile email offline_access unknown"),
            ("state", "st-1"),
            ("nonce", "n-1"),
        ]
    }

    /// Signs in and returns the code from the redirect.
    fn code(idp: &DevIdp) -> String {
        let Authorize::Redirect(location) = idp.authorize(&params(&authorize_request())) else {
            panic!("no redirect");
        };
        let url = Url::parse(&location).unwrap();
        assert!(location.starts_with(CALLBACK));
        let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(query["state"], "st-1");
        assert_eq!(query["iss"], ISSUER);
        query["code"].clone()
    }

    fn exchange(idp: &DevIdp, code: &str, verifier: &str) -> Result<Value, TokenError> {
        idp.token(
            Some(&basic("cimd-proxy-dev", SECRET)),
            &params(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", CALLBACK),
                ("code_verifier", verifier),
            ]),
        )
    }

    #[test]
    fn the_code_verifier_must_match_the_challenge() {
        let idp = idp();
        let wrong = "x".repeat(43);
        let error = exchange(&idp, &code(&idp), &wrong).unwrap_err();
        assert_eq!(error.error(), "invalid_grant");
        // A malformed verifier is refused too, even before hashing.
        assert_eq!(
            exchange(&idp, &code(&idp), "short").unwrap_err().error(),
            "invalid_grant"
        );

        let tokens = exchange(&idp, &code(&idp), VERIFIER).unwrap();
        assert_eq!(tokens["token_type"], "Bearer");
        assert_eq!(tokens["scope"], "openid profile email offline_access");
        assert!(tokens["refresh_token"].is_string());
        let keys: JwkSet = serde_json::from_value(idp.signing.jwks()).unwrap();
        let claims = crate::id_token::IdTokenVerifier::new(ISSUER.into(), "cimd-proxy-dev".into())
            .verify(tokens["id_token"].as_str().unwrap(), &keys, Some("n-1"))
            .unwrap();
        assert_eq!(claims["sub"], USER_SUB);
        assert_eq!(claims["email"], USER_EMAIL);
        assert_eq!(claims["name"], USER_NAME);
    }

    #[test]
    fn codes_are_single_use() {
        let idp = idp();
        let code = code(&idp);
        assert!(exchange(&idp, &code, VERIFIER).is_ok());
        assert_eq!(
            exchange(&idp, &code, VERIFIER).unwrap_err().error(),
            "invalid_grant"
        );
        // A failed attempt spends the code as well.
        let code2 = self::code(&idp);
        assert!(exchange(&idp, &code2, &"y".repeat(43)).is_err());
        assert!(exchange(&idp, &code2, VERIFIER).is_err());
    }

    #[test]
    fn the_client_must_authenticate() {
        let idp = idp();
        let form = params(&[("grant_type", "authorization_code"), ("code", "x")]);
        for authorization in [
            None,
            Some(basic("cimd-proxy-dev", "wrong")),
            Some(basic("other", SECRET)),
            Some("Bearer abc".to_owned()),
        ] {
            let error = idp.token(authorization.as_deref(), &form).unwrap_err();
            assert_eq!(error.error(), "invalid_client");
            assert_eq!(error.status, StatusCode::UNAUTHORIZED);
        }
    }

    #[test]
    fn unknown_clients_and_redirects_get_an_error_page_not_a_redirect() {
        let idp = idp();
        let mut request = authorize_request();
        request[0] = ("client_id", "someone-else");
        assert!(matches!(
            idp.authorize(&params(&request)),
            Authorize::Refuse(_)
        ));
        let mut request = authorize_request();
        request[1] = ("redirect_uri", "http://127.0.0.1:8080/callback/x");
        assert!(matches!(
            idp.authorize(&params(&request)),
            Authorize::Refuse(_)
        ));
        // Without PKCE the error goes back to the (valid) redirect_uri.
        let request: Vec<_> = authorize_request()
            .into_iter()
            .filter(|(name, _)| *name != "code_challenge")
            .collect();
        let Authorize::Redirect(location) = idp.authorize(&params(&request)) else {
            panic!("expected an error redirect");
        };
        assert!(location.contains("error=invalid_request"), "{location}");
        assert!(location.contains("state=st-1"), "{location}");
    }

    #[test]
    fn refresh_tokens_rotate_and_userinfo_answers() {
        let idp = idp();
        let tokens = exchange(&idp, &code(&idp), VERIFIER).unwrap();
        let refresh = tokens["refresh_token"].as_str().unwrap();
        let auth = basic("cimd-proxy-dev", SECRET);
        let form = params(&[("grant_type", "refresh_token"), ("refresh_token", refresh)]);
        let refreshed = idp.token(Some(&auth), &form).unwrap();
        assert!(refreshed["id_token"].is_string());
        assert_ne!(refreshed["refresh_token"], tokens["refresh_token"]);
        assert_eq!(
            idp.token(Some(&auth), &form).unwrap_err().error(),
            "invalid_grant",
            "a refresh token is single use"
        );
        let bearer = format!("Bearer {}", refreshed["access_token"].as_str().unwrap());
        assert_eq!(idp.userinfo(Some(&bearer)).unwrap()["email"], USER_EMAIL);
        assert!(idp.userinfo(Some("Bearer nope")).is_err());
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        assert_eq!(
            parse_basic(&basic("a:b", "c d+e")),
            Some(("a:b".to_owned(), "c d+e".to_owned()))
        );
        assert_eq!(parse_basic("Basic !!!"), None);
    }
}
