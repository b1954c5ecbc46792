//! Gate mode: the ingress's external authorization in front of a provider
//! that accepts URL client_ids itself (oidc-provider's
//! `clientIdMetadataDocument`, Keycloak's CIMD client policy, …).
//!
//! NGINX `auth_request`, Envoy `ext_authz` (HTTP) and Traefik `forwardAuth`
//! ask `/gate/check` whether a request may go on to the provider, naming
//! the original request in the headers of the ingress `gate.ingress` names
//! (`X-Original-URI`, `X-Original-URL`, `X-Forwarded-Uri`, with the method
//! beside it) or, for Envoy, in the check request's own method, path (after
//! the `/gate/check` prefix) and body.
//! A request to the provider's authorization endpoint with a URL client_id
//! goes through the one admission relay mode uses ([`crate::admission`]);
//! a request to its token endpoint too (without a redirect_uri), so a
//! client the policy now denies can neither exchange a code nor refresh.
//! Everything else is answered 200 untouched: the provider fetches and
//! serves the documents, the gate only decides who reaches it, before its
//! own fetcher ever sees a hostile client_id.
//!
//! The ingress cannot read a request body before an `auth_request`
//! subrequest, so a body-bearing request to a guarded endpoint (every
//! token request, a POST authorization request) is only admitted when the
//! check carried that body (NGINX: the endpoint's location proxies to the
//! gate, which answers `X-Accel-Redirect` to the provider's location on
//! success; Envoy: `with_request_body`). A check that did not see the body
//! is refused rather than waved through on a client_id it could not read.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};

use crate::admission::{Ask, RedirectAsk};
use crate::client_id::is_url_client_id;
use crate::flow::{Sealed, SealedConsent};
use crate::metrics::{METRICS, Mode};
use crate::policy::{Action, Interstitial};
use crate::seal::{Purpose, SealConfig};
use crate::server::consent::{self, Choice};
use crate::server::interstitial::{self, ConsentRequest};
use crate::server::oauth::{OAuthErrorCode, TokenError, token_error_for_refusal};
use crate::server::oauth::{basic_user, error_redirect};
use crate::server::pages::{PageReason, error_page, refusal_page};
use crate::server::params::{MAX_PARAMS_BYTES, Params};
use crate::server::{AppState, Shared};
use crate::store::{SingleUseKind, Use};

pub mod config;
use config::canonical_path;
pub use config::{GateConfig, Ingress};

/// The path the ingress asks; Envoy appends the original path to it.
pub const CHECK_PATH: &str = "/gate/check";

/// Where the consent page's answer arrives (from `[gate] consent_path` on
/// the ingress).
pub const CONSENT_PATH: &str = "/gate/consent";

/// The header NGINX's page location adds: the consent page is then
/// answered 200 (the check itself answers it 401).
const PAGE_HEADER: &str = "x-cimd-gate-page";

/// The cookie carrying a confirmed request's sealed admission.
const ADMISSION_COOKIE: &str = "cimd_gate_admission";

/// How long a confirmed request may take to come back: one redirect.
const ADMISSION_TTL: Duration = Duration::from_secs(60);

/// One authorization request the user confirmed on the consent page,
/// sealed into a cookie and let through by the next check, once.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SealedGateAdmission {
    /// A random id: the single-use store's key.
    id: String,
    /// The CIMD client_id confirmed.
    client_id: String,
    /// SHA-256 (base64url) of the exact authorization URL confirmed.
    request: String,
}

impl Sealed for SealedGateAdmission {
    const PURPOSE: Purpose = Purpose::GateAdmission;

    fn lifetime(_config: &SealConfig) -> Duration {
        ADMISSION_TTL
    }
}

/// Which provider endpoint an original request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Authorization,
    Token,
    Other,
}

/// The request the ingress asks about.
#[derive(Debug)]
struct Original {
    method: Method,
    /// The request target as the client sent it (path and query).
    target: String,
    path: String,
    query: String,
}

/// The gate's routes: `/gate/check` (NGINX, Traefik) and `/gate/check/…`
/// (Envoy's `path_prefix` followed by the original path), any method.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(CHECK_PATH, any(check))
        .route(&format!("{CHECK_PATH}/{{*original}}"), any(check))
        .route(CONSENT_PATH, post(consent))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(DefaultBodyLimit::max(MAX_PARAMS_BYTES))
        .with_state(shared)
}

async fn check(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let state = shared.current();
    let config = &state.config.gate;
    let Some(original) = original_request(config.ingress, &method, &uri, &headers) else {
        // Not asked the way this gate was configured for: nothing says
        // which request this is, so it is not let through.
        tracing::warn!(
            "gate: a check without the original request's headers; is gate.ingress right?"
        );
        return forbidden(error_page(
            PageReason::BadRequest,
            "the authorization check did not name the request",
            None,
        ));
    };
    let endpoint = classify(config, &original.path);
    if endpoint == Endpoint::Other {
        return allowed(config, &body);
    }
    // A body-bearing request whose body the gate did not see: its
    // client_id could be in that body, so it is not waved through.
    let body_expected = original.method == Method::POST || endpoint == Endpoint::Token;
    if body_expected && body.is_empty() {
        return refuse_unseen(endpoint);
    }
    match endpoint {
        Endpoint::Authorization => authorization(&state, &original, &headers, &body).await,
        Endpoint::Token => token(&state, &headers, &body).await,
        Endpoint::Other => allowed(config, &body),
    }
}

/// The original request, from where `ingress` puts it; `None` when the
/// ingress did not say (the check then refuses).
fn original_request(
    ingress: Ingress,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Option<Original> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let parse_method = |value: &str| Method::from_bytes(value.as_bytes()).ok();
    let (method, target) = match ingress {
        Ingress::Nginx => (
            parse_method(header("x-original-method")?)?,
            header("x-original-uri")?.to_owned(),
        ),
        Ingress::IngressNginx => {
            // The whole URL; its path and query are taken as sent.
            let (_, rest) = header("x-original-url")?.split_once("://")?;
            let target = rest.find('/').map_or("/", |at| &rest[at..]).to_owned();
            (parse_method(header("x-original-method")?)?, target)
        }
        Ingress::Traefik => (
            parse_method(header("x-forwarded-method")?)?,
            header("x-forwarded-uri")?.to_owned(),
        ),
        Ingress::Envoy => {
            let own = uri.path_and_query().map_or("/", |pq| pq.as_str());
            let rest = own.strip_prefix(CHECK_PATH)?;
            let target = if rest.starts_with('/') {
                rest.to_owned()
            } else {
                format!("/{rest}")
            };
            (method.clone(), target)
        }
    };
    if !target.starts_with('/') {
        return None;
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    Some(Original {
        method,
        path: canonical_path(path),
        query: query.to_owned(),
        target: target.clone(),
    })
}

fn classify(config: &GateConfig, path: &str) -> Endpoint {
    if config.authorization_paths.iter().any(|p| p == path) {
        Endpoint::Authorization
    } else if config.token_paths.iter().any(|p| p == path) {
        Endpoint::Token
    } else {
        Endpoint::Other
    }
}

/// 200: the ingress sends the request on. A check that carried the body
/// (NGINX's body route) names where NGINX sends it.
fn allowed(config: &GateConfig, body: &Bytes) -> Response {
    let mut response = StatusCode::OK.into_response();
    if let (false, Some(location)) = (body.is_empty(), &config.accel_redirect)
        && let Ok(value) = HeaderValue::from_str(location)
    {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-accel-redirect"), value);
    }
    response
}

/// The authorization endpoint: the query's (or the seen body's) client_id.
async fn authorization(
    state: &AppState,
    original: &Original,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let raw: &[u8] = if original.method == Method::POST {
        body
    } else {
        original.query.as_bytes()
    };
    let params = match Params::parse(raw) {
        Ok(params) => params,
        Err(error) => {
            count_authorize("invalid_request");
            return forbidden(error_page(PageReason::BadRequest, &error.to_string(), None));
        }
    };
    let Some(client_id) = params.get("client_id").filter(|id| is_url_client_id(id)) else {
        // A pre-registered client, or none: the provider's business.
        count_authorize("pass_through");
        return allowed(&state.config.gate, body);
    };
    let ask = Ask {
        redirect_uri: RedirectAsk::Asked(params.get("redirect_uri")),
        scope: params.get("scope"),
    };
    match state.admission().admit(client_id, ask).await {
        Ok(admitted)
            if admitted.decision.action == Action::Allow
                && state.config.policy.interstitial != Interstitial::Always =>
        {
            audit("authorize", client_id, "allow", "ok");
            count_authorize("ok");
            allowed(&state.config.gate, body)
        }
        Ok(admitted) => {
            // Warn (or every client, with `interstitial = "always"`): the
            // user confirms on the consent page, once per request.
            let decision = admitted.decision.action.as_str();
            if original.method != Method::GET {
                // Continue returns the user with a GET; a POST's
                // parameters would not come back with it.
                audit("authorize", client_id, decision, "consent_required");
                count_authorize("consent_required");
                return forbidden(error_page(
                    PageReason::BadRequest,
                    "this application needs your confirmation, which a sign-in sent as a form \
                     post cannot ask for; start it again from the application",
                    Some(admitted.client.host()),
                ));
            }
            let location = original_url(state, original);
            if take_admission(state, headers, client_id, &location).await {
                audit("authorize", client_id, decision, "confirmed");
                count_authorize("confirmed");
                return allowed(&state.config.gate, body);
            }
            audit("authorize", client_id, decision, "consent_page");
            count_authorize("consent_page");
            let Some(redirect_uri) = &admitted.redirect_uri else {
                // Unreachable: a sign-in asks for one, and admission
                // refuses rather than admit without it.
                return forbidden(error_page(
                    PageReason::BadRequest,
                    "redirect_uri is required",
                    None,
                ));
            };
            let metadata = &admitted.client.metadata;
            let action = format!(
                "{}{}",
                provider_origin(state),
                state.config.gate.consent_path
            );
            let mut page = interstitial::interstitial_posting_to(
                state,
                &ConsentRequest {
                    client_id,
                    host: admitted.client.host(),
                    redirect_uri,
                    state: params.get("state"),
                    scope: params.get("scope").unwrap_or_default(),
                    client_name: metadata.client_name.as_deref(),
                    client_uri: metadata.client_uri.as_deref(),
                    reasons: &admitted.decision.reasons,
                    allowed: admitted.decision.action == Action::Allow,
                    // The logo is served by the relay's listener, which the
                    // provider's users need not reach.
                    has_logo: false,
                    location: &location,
                    new_client: None,
                },
                &action,
            );
            // The check itself answers 401, which no ingress takes for
            // "allowed": Envoy and Traefik show its body (this page), NGINX
            // goes to its page location (`error_page 401`), which asks
            // again with the page header and gets the page with 200.
            if page.status() == StatusCode::OK && headers.get(PAGE_HEADER).is_none() {
                *page.status_mut() = StatusCode::UNAUTHORIZED;
            }
            page
        }
        Err(refusal) => {
            audit("authorize", client_id, "refused", refusal.outcome());
            count_authorize(refusal.outcome());
            forbidden(refusal_page(&refusal))
        }
    }
}

/// The provider's public origin, from its discovered authorization
/// endpoint (never from a request header).
fn provider_origin(state: &AppState) -> String {
    state
        .provider
        .metadata()
        .authorization_endpoint
        .origin()
        .ascii_serialization()
}

/// The original authorization request as an absolute URL: where Continue
/// returns the user, and what the admission is bound to.
fn original_url(state: &AppState, original: &Original) -> String {
    format!("{}{}", provider_origin(state), original.target)
}

/// Whether the request carries a confirmation of exactly this request for
/// this client, not used before; using it up happens here, in the shared
/// store, so an admission is spent once across replicas sharing a Redis. A
/// store that cannot answer admits nothing: the user is asked again.
async fn take_admission(
    state: &AppState,
    headers: &HeaderMap,
    client_id: &str,
    location: &str,
) -> bool {
    let Some(sealed) = consent::cookie(headers, ADMISSION_COOKIE) else {
        return false;
    };
    let Ok(admission) = state.seals().open::<SealedGateAdmission>(sealed) else {
        return false;
    };
    if admission.client_id != client_id || admission.request != interstitial::digest(location) {
        return false;
    }
    match state
        .store
        .use_once(
            SingleUseKind::GateAdmission,
            admission.id.as_bytes(),
            ADMISSION_TTL,
        )
        .await
    {
        Ok(Use::First) => true,
        Ok(Use::Replayed) => false,
        Err(error) => {
            tracing::warn!(%error, "cannot spend a gate admission; asking again");
            false
        }
    }
}

/// `POST /gate/consent`: the consent page's answer, checked as relay
/// mode's (`server::consent`). Continue returns the user to the original
/// authorization URL with the sealed admission cookie; Cancel returns
/// `access_denied` to the client.
async fn consent(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let state = shared.current();
    let params = match Params::parse(&body) {
        Ok(params) => params,
        Err(error) => return error_page(PageReason::BadRequest, &error.to_string(), None),
    };
    match consent::check(&state.sealer, &state.store, &headers, &params).await {
        Ok((token, Choice::Continue)) => continue_to(&state, &token),
        Ok((token, Choice::Cancel)) => {
            audit("consent", &token.client_id, "cancel", "cancel");
            error_redirect(
                &token.redirect_uri,
                OAuthErrorCode::AccessDenied,
                "the user cancelled the sign-in",
                token.state.as_deref(),
                &state.provider.metadata().issuer,
            )
        }
        Err((refusal, client_id)) => consent::refused(refusal, client_id.as_deref()),
    }
}

/// Continue: back to the confirmed request, carrying its admission.
fn continue_to(state: &AppState, token: &SealedConsent) -> Response {
    let Some(id) = interstitial::random_token() else {
        return error_page(PageReason::Unavailable, "no randomness available", None);
    };
    let admission = SealedGateAdmission {
        id,
        client_id: token.client_id.clone(),
        request: interstitial::digest(&token.location),
    };
    let sealed = match state.seals().seal(&admission) {
        Ok(sealed) => sealed,
        Err(error) => {
            tracing::warn!(%error, "cannot seal the gate admission");
            return error_page(PageReason::BadRequest, "the request is too large", None);
        }
    };
    audit("consent", &token.client_id, "warn", "continue");
    let secure = if token.location.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let mut response = consent::see_other(&token.location);
    let cookie = format!(
        "{ADMISSION_COOKIE}={sealed}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        ADMISSION_TTL.as_secs()
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response
            .headers_mut()
            .append(axum::http::header::SET_COOKIE, value);
    }
    response
}

/// The token endpoint: the body's client_id, or HTTP Basic's user name.
async fn token(state: &AppState, headers: &HeaderMap, body: &Bytes) -> Response {
    let params = match Params::parse(body) {
        Ok(params) => params,
        Err(error) => {
            count_token("other", "invalid_request");
            return TokenError::new(OAuthErrorCode::InvalidRequest, error.to_string())
                .into_response();
        }
    };
    let grant_type = match params.get("grant_type") {
        Some("authorization_code") => "authorization_code",
        Some("refresh_token") => "refresh_token",
        _ => "other",
    };
    // Every name the request gives its client: the form's client_id,
    // HTTP Basic's user, a client assertion's iss and sub (RFC 7523 lets
    // the assertion alone name the client; unverified here, only to choose
    // whom to vet: the provider verifies it).
    let basic = basic_user(headers);
    let asserted = params
        .get("client_assertion")
        .map(assertion_names)
        .unwrap_or_default();
    let mut named: Vec<&str> = [params.get("client_id"), basic.as_deref()]
        .into_iter()
        .flatten()
        .chain(asserted.iter().map(String::as_str))
        .filter(|id| is_url_client_id(id))
        .collect();
    named.sort_unstable();
    named.dedup();
    if named.is_empty() {
        count_token(grant_type, "pass_through");
        return allowed(&state.config.gate, body);
    }
    for client_id in named {
        match state.admission().admit(client_id, Ask::default()).await {
            Ok(admitted) => {
                audit("token", client_id, admitted.decision.action.as_str(), "ok");
            }
            Err(refusal) => {
                let error = token_error_for_refusal(&refusal);
                audit("token", client_id, "refused", refusal.outcome());
                count_token(grant_type, error.code.as_str());
                return error.into_response();
            }
        }
    }
    count_token(grant_type, "ok");
    allowed(&state.config.gate, body)
}

/// The `iss` and `sub` of a JWT client assertion, read without verifying
/// it (nothing is trusted from it but which clients to vet).
fn assertion_names(assertion: &str) -> Vec<String> {
    use base64::Engine as _;
    let Some(payload) = assertion.split('.').nth(1) else {
        return Vec::new();
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload) else {
        return Vec::new();
    };
    let Ok(claims) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes)
    else {
        return Vec::new();
    };
    ["iss", "sub"]
        .into_iter()
        .filter_map(|claim| claims.get(claim)?.as_str().map(str::to_owned))
        .collect()
}

/// A guarded request whose body the gate was not shown.
fn refuse_unseen(endpoint: Endpoint) -> Response {
    const WHY: &str = "the request body did not reach the authorization check";
    tracing::warn!(
        "gate: a body-bearing request to a guarded endpoint was checked without its body; \
         route it through the gate's body route (see the README)"
    );
    match endpoint {
        Endpoint::Token => {
            count_token("other", "invalid_request");
            let mut response = TokenError::new(OAuthErrorCode::InvalidRequest, WHY).into_response();
            // auth_request passes only 401 and 403 on as refusals.
            *response.status_mut() = StatusCode::FORBIDDEN;
            response
        }
        _ => {
            count_authorize("invalid_request");
            forbidden(error_page(PageReason::BadRequest, WHY, None))
        }
    }
}

/// Every refusal of a sign-in is a 403: `auth_request` and `forwardAuth`
/// take any other status as the check failing (NGINX answers 500), and the
/// page keeps its body for the ingress to show.
fn forbidden(mut page: Response) -> Response {
    *page.status_mut() = StatusCode::FORBIDDEN;
    page
}

fn count_authorize(outcome: &'static str) {
    METRICS
        .authorize
        .with_label_values(&[Mode::Gate.as_str(), outcome])
        .inc();
}

fn count_token(grant_type: &'static str, outcome: &'static str) {
    METRICS
        .token_requests
        .with_label_values(&[Mode::Gate.as_str(), grant_type, outcome])
        .inc();
}

fn audit(event: &'static str, client_id: &str, decision: &str, outcome: &'static str) {
    tracing::info!(
        target: "audit",
        event,
        mode = Mode::Gate.as_str(),
        client_id = %crate::server::audit_short(client_id),
        decision,
        outcome,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> GateConfig {
        GateConfig {
            enabled: true,
            authorization_paths: vec!["/auth".into()],
            token_paths: vec!["/token".into()],
            ..GateConfig::default()
        }
    }

    #[test]
    fn spellings_the_provider_routes_to_its_endpoint_are_guarded() {
        let config = config();
        for path in [
            "/auth",
            "/auth/",
            "//auth",
            "/AUTH",
            "/%61uth",
            "/x/../auth",
            "/./auth",
            "\\auth",
        ] {
            assert_eq!(
                classify(&config, &canonical_path(path)),
                Endpoint::Authorization,
                "{path}"
            );
        }
        for path in ["/token", "/Token/", "/%74oken"] {
            assert_eq!(classify(&config, &canonical_path(path)), Endpoint::Token);
        }
        for path in [
            "/",
            "/authx",
            "/me",
            "/auth/x",
            "/.well-known/openid-configuration",
        ] {
            assert_eq!(classify(&config, &canonical_path(path)), Endpoint::Other);
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn the_original_request_comes_from_nginx_traefik_or_envoy() {
        let check: Uri = "/gate/check".parse().unwrap();
        let get = Method::GET;
        let nginx = headers(&[
            ("x-original-uri", "/auth?client_id=a"),
            ("x-original-method", "POST"),
        ]);
        let original = original_request(Ingress::Nginx, &get, &check, &nginx).unwrap();
        assert_eq!(
            (original.method, original.path.as_str()),
            (Method::POST, "/auth")
        );
        assert_eq!(original.query, "client_id=a");

        let ingress = headers(&[
            ("x-original-url", "https://idp.example/auth?client_id=c"),
            ("x-original-method", "GET"),
        ]);
        let original = original_request(Ingress::IngressNginx, &get, &check, &ingress).unwrap();
        assert_eq!(original.path, "/auth");
        assert_eq!(original.target, "/auth?client_id=c");

        let traefik = headers(&[
            ("x-forwarded-uri", "/token"),
            ("x-forwarded-method", "POST"),
        ]);
        let original = original_request(Ingress::Traefik, &get, &check, &traefik).unwrap();
        assert_eq!(
            (original.method, original.path.as_str()),
            (Method::POST, "/token")
        );

        // Envoy: the check is the original request under the prefix.
        let envoy: Uri = "/gate/check/auth?client_id=b".parse().unwrap();
        let original =
            original_request(Ingress::Envoy, &Method::POST, &envoy, &HeaderMap::new()).unwrap();
        assert_eq!(
            (original.method, original.path.as_str()),
            (Method::POST, "/auth")
        );
        assert_eq!(original.query, "client_id=b");
    }

    #[test]
    fn a_header_another_ingress_uses_cannot_name_the_request() {
        // Regression: with several sources read in turn, a client of
        // ingress-nginx or Traefik (which pass the client's own headers on)
        // sent X-Original-URI: / beside its /auth request and was let through.
        let check: Uri = "/gate/check".parse().unwrap();
        let smuggled = headers(&[
            ("x-original-uri", "/"),
            ("x-original-method", "GET"),
            ("x-forwarded-uri", "/auth?client_id=https://evil.example/c"),
            ("x-forwarded-method", "GET"),
        ]);
        let original = original_request(Ingress::Traefik, &Method::GET, &check, &smuggled).unwrap();
        assert_eq!(original.path, "/auth");
        // The ingress's own header missing: no request, refused.
        let bare = headers(&[("x-original-uri", "/")]);
        assert!(original_request(Ingress::Traefik, &Method::GET, &check, &bare).is_none());
        assert!(original_request(Ingress::IngressNginx, &Method::GET, &check, &bare).is_none());
        assert!(original_request(Ingress::Nginx, &Method::GET, &check, &bare).is_none());
        // Envoy's check always carries the prefix; a target must be a path.
        let other: Uri = "/elsewhere".parse().unwrap();
        assert!(original_request(Ingress::Envoy, &Method::GET, &other, &bare).is_none());
        let absolute = headers(&[
            ("x-original-uri", "http://x/auth"),
            ("x-original-method", "GET"),
        ]);
        assert!(original_request(Ingress::Nginx, &Method::GET, &check, &absolute).is_none());
    }

    #[test]
    fn a_configured_path_must_be_one_a_request_can_match() {
        assert_eq!(GateConfig::check_path("/Auth/").unwrap(), "/auth");
        assert!(GateConfig::check_path("auth").is_err());
        assert!(GateConfig::check_path("/auth?x").is_err());
    }

    #[test]
    fn a_client_assertion_names_its_client_without_being_trusted() {
        use base64::Engine as _;
        let encode = |value: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value);
        let assertion = format!(
            "{}.{}.sig",
            encode(r#"{"alg":"ES256"}"#),
            encode(r#"{"iss":"https://app.example/c","sub":"https://app.example/c","aud":"x"}"#)
        );
        assert_eq!(
            assertion_names(&assertion),
            vec!["https://app.example/c", "https://app.example/c"]
        );
        for garbage in ["", "a", "a.!!!.c", "a.bm90IGpzb24.c", "a.WzFd.c"] {
            assert!(assertion_names(garbage).is_empty(), "{garbage}");
        }
    }

    #[test]
    fn an_accel_redirect_is_named_only_after_a_check_that_saw_the_body() {
        let mut config = config();
        config.accel_redirect = Some("@provider".into());
        let with_body = allowed(&config, &Bytes::from_static(b"grant_type=x"));
        assert_eq!(with_body.headers()["x-accel-redirect"], "@provider");
        let without = allowed(&config, &Bytes::new());
        assert!(without.headers().get("x-accel-redirect").is_none());
    }
}
