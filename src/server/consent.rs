//! The interstitial consent page: the provider's own sign-in screen names
//! the proxy's pre-registered application, not the client the user is
//! really authorizing, so for `warn` decisions (or every client, with
//! `[policy] interstitial = "always"`) the proxy first shows who is asking.
//!
//! Continue and Cancel post a sealed, single-use, short-lived token that
//! holds the whole validated decision (where to go next), so nothing in the
//! form can be altered. The token is also bound to the browser that saw the
//! page: rendering sets a random `SameSite=Strict` cookie whose hash the
//! token carries, and the post must present that cookie. A cross-site page
//! auto-submitting a token it obtained can therefore not skip the page for
//! a victim: the victim's browser does not send the cookie cross-site, and
//! the attacker cannot set it.

use std::sync::Arc;

use askama::Template;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use url::Url;

use super::AppState;
use super::audit::short;
use super::oauth::{OAuthErrorCode, error_redirect, found};
use super::pages::{CSS, PageReason, content_security_policy, error_page, html_response};
use super::params::Params;
use crate::flow::{CONSENT_TTL, RedirectUri, Sealed as _, SealedConsent};
use crate::policy::Reason;
use crate::replay::ReplayError;

/// The cookie binding a consent token to the browser that saw the page.
const COOKIE: &str = "cimd_proxy_consent";

/// Everything the page shows, all of it already validated.
pub struct ConsentRequest<'a> {
    /// The CIMD client_id.
    pub client_id: &'a str,
    /// Its host, the headline.
    pub host: &'a str,
    /// The validated redirect_uri.
    pub redirect_uri: &'a RedirectUri,
    /// The client's own `state`.
    pub state: Option<&'a str>,
    /// The scopes that will be requested.
    pub scope: &'a str,
    /// The self-declared name from the document.
    pub client_name: Option<&'a str>,
    /// The self-declared homepage from the document.
    pub client_uri: Option<&'a str>,
    /// Why the policy flagged it.
    pub reasons: &'a [Reason],
    /// Whether the policy allows the client outright (only then a logo).
    pub allowed: bool,
    /// Whether the document has a logo.
    pub has_logo: bool,
    /// The provider authorization URL Continue leads to.
    pub location: &'a str,
}

#[derive(Template)]
#[template(path = "interstitial.html")]
struct InterstitialPage<'a> {
    css: &'static str,
    host: &'a str,
    client_id: &'a str,
    logo_url: Option<String>,
    vouched_by: Option<&'a str>,
    reasons: Vec<String>,
    redirect_host: String,
    redirect_warnings: Vec<String>,
    scopes: Vec<&'a str>,
    client_name: Option<&'a str>,
    client_uri: Option<&'a str>,
    action: String,
    token: String,
}

/// Renders the interstitial and sets the browser-binding cookie.
pub fn interstitial(state: &AppState, request: &ConsentRequest<'_>) -> Response {
    let (Some(browser_secret), Some(id)) = (random_token(), random_token()) else {
        return error_page(PageReason::Unavailable, "no randomness available", None);
    };
    let token = SealedConsent {
        id,
        browser: digest(&browser_secret),
        client_id: request.client_id.to_owned(),
        redirect_uri: request.redirect_uri.clone(),
        state: request.state.map(str::to_owned),
        location: request.location.to_owned(),
    };
    let sealed = match state.seals().seal(&token) {
        Ok(sealed) => sealed,
        Err(error) => {
            tracing::warn!(%error, "cannot seal the consent token");
            return error_redirect(
                request.redirect_uri,
                OAuthErrorCode::InvalidRequest,
                "the request is too large",
                request.state,
                &state.issuer,
            );
        }
    };
    let (redirect_host, redirect_warnings) = describe_redirect(request.host, request.redirect_uri);
    let page = InterstitialPage {
        css: CSS,
        host: request.host,
        client_id: request.client_id,
        logo_url: (request.allowed && request.has_logo).then(|| {
            let mut url = format!("{}/logo?", state.issuer);
            url.push_str(
                &url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("client_id", request.client_id)
                    .finish(),
            );
            url
        }),
        vouched_by: request.reasons.iter().find_map(|reason| match reason {
            Reason::Vouched { issuer } => Some(issuer.as_str()),
            _ => None,
        }),
        reasons: request.reasons.iter().filter_map(explain).collect(),
        redirect_host,
        redirect_warnings,
        scopes: request.scope.split(' ').filter(|s| !s.is_empty()).collect(),
        client_name: request.client_name,
        client_uri: request.client_uri,
        action: format!("{}/consent", state.issuer),
        token: sealed,
    };
    let html = match page.render() {
        Ok(html) => html,
        Err(error) => {
            tracing::error!(%error, "cannot render the consent page");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let csp = content_security_policy(&form_targets(request.location, request.redirect_uri));
    let mut response = html_response(StatusCode::OK, html, &csp);
    let secure = if state.issuer.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{COOKIE}={browser_secret}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        CONSENT_TTL.as_secs()
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// What the user chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    Continue,
    Cancel,
}

/// Why a consent post is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Missing,
    Invalid(&'static str),
    OtherBrowser,
    Replayed,
    Busy,
    NoChoice,
}

/// Checks a consent post: the token opens, was issued to this browser, has
/// not been used, and a choice was made. Using it up happens here.
fn check(
    sealer: &crate::seal::Sealer,
    consents: &crate::replay::ReplayStore,
    headers: &HeaderMap,
    params: &Params,
    now: i64,
) -> Result<(SealedConsent, Choice), (Refusal, Option<String>)> {
    let sealed = params.get("consent").ok_or((Refusal::Missing, None))?;
    let token: SealedConsent = sealer
        .open(SealedConsent::PURPOSE, sealed)
        .map_err(|error| (Refusal::Invalid(error.as_str()), None))?;
    let presented = cookie(headers, COOKIE).map(digest);
    if presented.as_deref() != Some(token.browser.as_str()) {
        return Err((Refusal::OtherBrowser, Some(token.client_id)));
    }
    let choice = match params.get("decision") {
        Some("continue") => Choice::Continue,
        Some("cancel") => Choice::Cancel,
        _ => return Err((Refusal::NoChoice, Some(token.client_id))),
    };
    let keep_until = now.saturating_add(CONSENT_TTL.as_secs() as i64);
    match consents.insert(digest_bytes(&token.id), keep_until, now) {
        Ok(()) => Ok((token, choice)),
        Err(ReplayError::Replayed) => Err((Refusal::Replayed, Some(token.client_id))),
        Err(ReplayError::Full) => Err((Refusal::Busy, Some(token.client_id))),
    }
}

/// Handles `POST /consent`: Continue goes to the provider, Cancel returns
/// `access_denied` to the validated redirect_uri; either uses the token up.
pub fn decide(state: Arc<AppState>, headers: &HeaderMap, params: Params) -> Response {
    match check(&state.sealer, &state.consents, headers, &params, unix_now()) {
        Ok((token, Choice::Continue)) => {
            audit(&token.client_id, "continue");
            see_other(&token.location)
        }
        Ok((token, Choice::Cancel)) => {
            audit(&token.client_id, "cancel");
            error_redirect(
                &token.redirect_uri,
                OAuthErrorCode::AccessDenied,
                "the user cancelled the sign-in",
                token.state.as_deref(),
                &state.issuer,
            )
        }
        Err((refusal, client_id)) => {
            let host = client_id
                .as_deref()
                .and_then(|id| Url::parse(id).ok())
                .and_then(|url| url.host_str().map(str::to_owned));
            let client_id = client_id.as_deref().unwrap_or("-");
            let (reason, detail, outcome) = match refusal {
                Refusal::Missing => (
                    PageReason::BadRequest,
                    "the confirmation is missing",
                    "consent_missing",
                ),
                Refusal::Invalid(why) => (PageReason::InvalidState, why, "consent_invalid"),
                Refusal::OtherBrowser => (
                    PageReason::InvalidState,
                    "this confirmation was not made in this browser",
                    "consent_other_browser",
                ),
                Refusal::Replayed => (
                    PageReason::InvalidState,
                    "this confirmation was already used",
                    "consent_replayed",
                ),
                Refusal::Busy => (
                    PageReason::Unavailable,
                    "too many sign-ins in progress",
                    "consent_busy",
                ),
                Refusal::NoChoice => (
                    PageReason::BadRequest,
                    "choose Continue or Cancel",
                    "consent_no_choice",
                ),
            };
            audit(client_id, outcome);
            error_page(reason, detail, host.as_deref())
        }
    }
}

/// After a POST, 303 makes the browser follow with a GET.
fn see_other(location: &str) -> Response {
    let mut response = found(location);
    *response.status_mut() = StatusCode::SEE_OTHER;
    response
}

/// Where the consent form's submission may lead: ourselves, the provider
/// (Continue) and the client's redirect_uri (Cancel), as CSP sources.
fn form_targets(location: &str, redirect_uri: &RedirectUri) -> Vec<String> {
    let mut targets = vec!["'self'".to_owned()];
    let location = Url::parse(location).ok();
    for url in [location.as_ref(), redirect_uri.url()]
        .into_iter()
        .flatten()
    {
        let source = match url.host_str() {
            Some(_) => url.origin().ascii_serialization(),
            // A private-use scheme (com.example.app:/cb) is a scheme source.
            None => format!("{}:", url.scheme()),
        };
        if !targets.contains(&source) && source != "null" {
            targets.push(source);
        }
    }
    targets
}

/// The redirect's host and the plain warnings about it.
fn describe_redirect(client_host: &str, redirect_uri: &RedirectUri) -> (String, Vec<String>) {
    let Some(url) = redirect_uri.url() else {
        return (redirect_uri.as_str().to_owned(), Vec::new());
    };
    let host = url.host_str().map_or_else(
        || format!("{}: (an app on this device)", url.scheme()),
        str::to_owned,
    );
    let mut warnings = Vec::new();
    if redirect_uri.is_loopback() {
        warnings.push(
            "This is an application running on this computer (loopback). Any program on it can receive the sign-in."
                .to_owned(),
        );
    } else if url
        .host_str()
        .is_some_and(|redirect| redirect != client_host)
    {
        warnings.push(format!(
            "This is not {client_host}: the sign-in goes back to a different site."
        ));
    }
    (host, warnings)
}

/// One sentence per reason the policy flagged the client.
fn explain(reason: &Reason) -> Option<String> {
    match reason {
        Reason::Default => Some(
            "Your organisation has not listed this application: its domain is unknown here."
                .to_owned(),
        ),
        Reason::LoopbackOnlyRedirects => Some(
            "This application only signs in through programs on your own computer, so anyone can present its address. Make sure you started this sign-in yourself."
                .to_owned(),
        ),
        // Not a warning: the page states it apart (`vouched_by`).
        Reason::Rule { .. } | Reason::Vouched { .. } => None,
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// 128 random bits, base64url; `None` only if the OS has no randomness.
fn random_token() -> Option<String> {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

fn digest_bytes(value: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, value.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn digest(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest_bytes(value))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

fn audit(client_id: &str, outcome: &str) {
    tracing::info!(target: "audit", event = "consent", client_id = %short(client_id), outcome);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::ReplayStore;
    use crate::seal::{Purpose, Sealer};
    use std::time::Duration;

    fn sealer() -> Sealer {
        Sealer::new(vec![[7u8; 32]]).unwrap()
    }

    fn uri(value: &str) -> RedirectUri {
        serde_json::from_value(serde_json::json!(value)).unwrap()
    }

    fn token(browser_secret: &str) -> SealedConsent {
        SealedConsent {
            id: "id-1".into(),
            browser: digest(browser_secret),
            client_id: "https://app.example/c".into(),
            redirect_uri: uri("https://app.example/cb"),
            state: Some("s".into()),
            location: "https://idp.example/authorize?x=1".into(),
        }
    }

    fn post(sealed: &str, decision: &str) -> Params {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("consent", sealed)
            .append_pair("decision", decision)
            .finish();
        Params::parse(body.as_bytes()).unwrap()
    }

    fn with_cookie(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {COOKIE}={value}")).unwrap(),
        );
        headers
    }

    #[test]
    fn a_valid_token_is_accepted_once() {
        let sealer = sealer();
        let store = ReplayStore::new(10);
        let sealed = sealer.seal(Purpose::Consent, CONSENT_TTL, &token("secret"));
        let (accepted, choice) = check(
            &sealer,
            &store,
            &with_cookie("secret"),
            &post(&sealed, "continue"),
            0,
        )
        .unwrap();
        assert_eq!(choice, Choice::Continue);
        assert_eq!(accepted.location, "https://idp.example/authorize?x=1");
        let replay = check(
            &sealer,
            &store,
            &with_cookie("secret"),
            &post(&sealed, "cancel"),
            1,
        );
        assert_eq!(replay.unwrap_err().0, Refusal::Replayed);
    }

    #[test]
    fn a_forged_or_foreign_token_is_refused() {
        let sealer = sealer();
        let store = ReplayStore::new(10);
        let forged = check(
            &sealer,
            &store,
            &with_cookie("secret"),
            &post("v1.AAAA", "continue"),
            0,
        );
        assert!(matches!(forged.unwrap_err().0, Refusal::Invalid(_)));
        // Sealed by another deployment's key.
        let other = Sealer::new(vec![[8u8; 32]]).unwrap();
        let sealed = other.seal(Purpose::Consent, CONSENT_TTL, &token("secret"));
        let foreign = check(
            &sealer,
            &store,
            &with_cookie("secret"),
            &post(&sealed, "continue"),
            0,
        );
        assert!(matches!(foreign.unwrap_err().0, Refusal::Invalid(_)));
        // A sealed state is not a consent token.
        let state = sealer.seal(Purpose::State, CONSENT_TTL, &token("secret"));
        let wrong = check(
            &sealer,
            &store,
            &with_cookie("secret"),
            &post(&state, "continue"),
            0,
        );
        assert!(matches!(wrong.unwrap_err().0, Refusal::Invalid(_)));
    }

    #[test]
    fn a_token_from_another_browser_is_refused_and_not_used_up() {
        let sealer = sealer();
        let store = ReplayStore::new(10);
        let sealed = sealer.seal(Purpose::Consent, CONSENT_TTL, &token("victim"));
        // A cross-site auto-submit carries no cookie, or the attacker's.
        for headers in [HeaderMap::new(), with_cookie("attacker")] {
            let refused = check(&sealer, &store, &headers, &post(&sealed, "continue"), 0);
            assert_eq!(refused.unwrap_err().0, Refusal::OtherBrowser);
        }
        assert!(store.is_empty());
        assert!(
            check(
                &sealer,
                &store,
                &with_cookie("victim"),
                &post(&sealed, "continue"),
                0
            )
            .is_ok()
        );
    }

    #[test]
    fn an_expired_token_is_refused() {
        let sealer = sealer();
        let store = ReplayStore::new(10);
        let sealed = sealer
            .try_seal_at(Purpose::Consent, Duration::from_secs(1), &token("s"), 1_000)
            .unwrap();
        let refused = check(
            &sealer,
            &store,
            &with_cookie("s"),
            &post(&sealed, "continue"),
            0,
        );
        assert!(matches!(refused.unwrap_err().0, Refusal::Invalid(_)));
    }

    #[test]
    fn hostile_names_scopes_and_urls_are_escaped() {
        let page = InterstitialPage {
            css: CSS,
            host: "app.example",
            client_id: "https://app.example/c?<script>alert(1)</script>",
            logo_url: None,
            vouched_by: Some("<b>registry</b>"),
            reasons: vec![],
            redirect_host: "app.example".into(),
            redirect_warnings: vec![],
            scopes: vec!["openid", "<img src=x onerror=alert(1)>"],
            client_name: Some("\"><script>alert('name')</script>"),
            client_uri: Some("https://app.example/\"><a href=javascript:alert(1)>x</a>"),
            action: "https://proxy.example/consent".into(),
            token: "v1.token\"><b>".into(),
        };
        let html = page.render().unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(!html.contains("<a href"), "{html}");
        assert!(html.contains("self-declared"));
        assert!(html.contains("Vouched for by"), "{html}");
        // The inline style is exactly the one the CSP hash allows.
        let style = html
            .split("<style>")
            .nth(1)
            .and_then(|rest| rest.split("</style>").next());
        assert_eq!(style, Some(CSS));
    }

    #[test]
    fn redirect_descriptions_warn_about_loopback_and_other_hosts() {
        let (host, warnings) = describe_redirect("app.example", &uri("https://app.example/cb"));
        assert_eq!(host, "app.example");
        assert!(warnings.is_empty());
        let (host, warnings) = describe_redirect("app.example", &uri("https://evil.example/cb"));
        assert_eq!(host, "evil.example");
        assert!(warnings[0].contains("not app.example"));
        let (_, warnings) = describe_redirect("app.example", &uri("http://127.0.0.1:5000/cb"));
        assert!(warnings[0].contains("loopback"));
    }

    #[test]
    fn the_form_may_lead_only_to_the_provider_and_the_client() {
        assert_eq!(
            form_targets(
                "https://idp.example/authorize?x",
                &uri("com.example.app:/cb")
            ),
            vec!["'self'", "https://idp.example", "com.example.app:"]
        );
        assert_eq!(
            form_targets("https://idp.example/a", &uri("https://app.example:8443/cb")),
            vec!["'self'", "https://idp.example", "https://app.example:8443"]
        );
    }
}
