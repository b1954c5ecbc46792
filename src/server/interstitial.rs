//! The interstitial consent page: the provider's own sign-in screen names
//! the proxy's pre-registered application, not the client the user is
//! really authorizing, so for `warn` decisions (or every client, with
//! `[policy] interstitial = "always"`) the proxy first shows who is asking.
//!
//! The page's Continue and Cancel post a sealed, single-use, short-lived
//! token ([`SealedConsent`]) that holds the whole validated decision (where
//! to go next), so nothing in the form can be altered. Rendering also sets a
//! random `SameSite=Strict` cookie whose hash the token carries, binding the
//! token to this browser; `/consent` (`consent.rs`) checks both.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use url::Url;

use super::AppState;
use super::oauth::{OAuthErrorCode, error_redirect};
use super::pages::{
    Branding, CSS, PageReason, content_security_policy, display_host, error_page, html_response,
};
use crate::flow::{CONSENT_TTL, RedirectUri, SealedConsent};
use crate::policy::Reason;
use crate::registration::is_registered_client_id;

/// The cookie binding a consent token to the browser that saw the page.
pub(super) const COOKIE: &str = "cimd_proxy_consent";

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
    /// Whether the document's logo has been fetched (a page never waits for one).
    pub has_logo: bool,
    /// The provider authorization URL Continue leads to.
    pub location: &'a str,
    /// Set while `policy.new_client_warning` says the client is new to
    /// the organisation: the page says so, with how many people used it.
    pub new_client: Option<crate::inventory::Newness>,
}

#[derive(Template)]
#[template(path = "interstitial.html")]
struct InterstitialPage<'a> {
    css: &'static str,
    brand: Branding,
    host: &'a str,
    client_id: &'a str,
    logo_url: Option<String>,
    vouched_by: Option<&'a str>,
    reasons: Vec<String>,
    redirect_host: String,
    redirect_warnings: Vec<String>,
    /// The client registered itself at `/register`: the page says that
    /// nothing about it is verified, and shows no client_id (it is the
    /// sealed registration, meaningless to a person).
    self_registered: bool,
    scopes: Vec<ScopeLine<'a>>,
    client_name: Option<&'a str>,
    client_uri: Option<&'a str>,
    action: String,
    token: String,
    new_client: Option<String>,
}

/// One requested scope as the page lists it.
#[derive(Debug, PartialEq, Eq)]
struct ScopeLine<'a> {
    /// The scope as the protocol names it.
    name: &'a str,
    /// What it lets the application do, in plain words; `None` for a scope
    /// neither the OpenID Connect table nor `[pages.scopes]` describes.
    description: Option<String>,
}

/// Plain words for the OpenID Connect scopes (Core §5.4 and §11).
/// `[pages.scopes]` describes the operator's own, and may reword these.
const BUILT_IN_SCOPES: &[(&str, &str)] = &[
    ("openid", "Confirm who you are"),
    ("profile", "See your name and basic profile"),
    ("email", "See your email address"),
    ("address", "See your postal address"),
    ("phone", "See your phone number"),
    (
        "offline_access",
        "Stay signed in and act for you when you are not using it",
    ),
];

/// The requested scopes, each with its description where one is known.
fn describe_scopes<'a>(
    scope: &'a str,
    operator: &std::collections::BTreeMap<String, String>,
) -> Vec<ScopeLine<'a>> {
    scope
        .split(' ')
        .filter(|name| !name.is_empty())
        .map(|name| ScopeLine {
            name,
            description: operator.get(name).cloned().or_else(|| {
                BUILT_IN_SCOPES
                    .iter()
                    .find(|(known, _)| *known == name)
                    .map(|(_, description)| (*description).to_owned())
            }),
        })
        .collect()
}

/// Renders the interstitial and sets the browser-binding cookie.
pub fn interstitial(state: &AppState, request: &ConsentRequest<'_>) -> Response {
    interstitial_posting_to(state, request, &format!("{}/consent", state.issuer))
}

/// The interstitial whose form posts to `action` (gate mode: the path the
/// ingress routes to the gate's `/gate/consent`).
pub(crate) fn interstitial_posting_to(
    state: &AppState,
    request: &ConsentRequest<'_>,
    action: &str,
) -> Response {
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
    let self_registered = is_registered_client_id(request.client_id);
    let (redirect_host, redirect_warnings) = describe_redirect(request.host, request.redirect_uri);
    // The port too: it is what tells two applications on one host apart.
    let host = Url::parse(request.client_id)
        .ok()
        .and_then(|url| display_host(&url))
        .unwrap_or_else(|| request.host.to_owned());
    let page = InterstitialPage {
        css: CSS,
        brand: Branding::new(&state.config.pages, &state.issuer),
        host: &host,
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
        self_registered,
        scopes: describe_scopes(request.scope, &state.config.pages.scopes),
        client_name: request.client_name,
        client_uri: request.client_uri,
        action: action.to_owned(),
        token: sealed,
        new_client: request.new_client.map(new_client_sentence),
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
    let host =
        display_host(url).unwrap_or_else(|| format!("{}: (an app on this device)", url.scheme()));
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
        // Not a warning either: the page says it in its own notice.
        Reason::Rule { .. } | Reason::Vouched { .. } | Reason::SelfRegistered { .. } => None,
    }
}

/// The new-client warning, in plain words.
fn new_client_sentence(newness: crate::inventory::Newness) -> String {
    match newness.users {
        Some(1) => "New to your organisation: 1 person has used it.".to_owned(),
        Some(users) => format!("New to your organisation: {users} people have used it."),
        None => "New to your organisation: how many people have used it cannot be told right now."
            .to_owned(),
    }
}

/// 128 random bits, base64url; `None` only if the OS has no randomness.
pub(crate) fn random_token() -> Option<String> {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

/// SHA-256 of a value, for the single-use store.
pub(crate) fn digest_bytes(value: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, value.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// SHA-256 of a value, base64url: what the token carries of the cookie.
pub(crate) fn digest(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest_bytes(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(value: &str) -> RedirectUri {
        serde_json::from_value(serde_json::json!(value)).unwrap()
    }

    #[test]
    fn hostile_names_scopes_and_urls_are_escaped() {
        let page = InterstitialPage {
            css: CSS,
            brand: Branding {
                name: "<i>Example Corp</i>".into(),
                named: true,
                ..Branding::default()
            },
            host: "app.example",
            client_id: "https://app.example/c?<script>alert(1)</script>",
            logo_url: None,
            vouched_by: Some("<b>registry</b>"),
            reasons: vec![],
            redirect_host: "app.example".into(),
            redirect_warnings: vec![],
            self_registered: false,
            scopes: describe_scopes("openid <img src=x onerror=alert(1)>", &Default::default()),
            client_name: Some("\"><script>alert('name')</script>"),
            client_uri: Some("https://app.example/\"><a href=javascript:alert(1)>x</a>"),
            action: "https://proxy.example/consent".into(),
            token: "v1.token\"><b>".into(),
            new_client: Some(new_client_sentence(crate::inventory::Newness {
                users: Some(3),
            })),
        };
        let html = page.render().unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(!html.contains("<a href"), "{html}");
        assert!(!html.contains("<i>"), "{html}");
        assert!(html.contains("self-declared"));
        assert!(html.contains("Vouched for by"), "{html}");
        assert!(
            html.contains("New to your organisation: 3 people have used it."),
            "{html}"
        );
        // The inline style is exactly the one the CSP hash allows.
        let style = html
            .split("<style>")
            .nth(1)
            .and_then(|rest| rest.split("</style>").next());
        assert_eq!(style, Some(CSS));
    }

    #[test]
    fn a_self_registered_client_is_said_to_be_unverified_and_its_redirect_host_named() {
        let page = InterstitialPage {
            css: CSS,
            brand: Branding::default(),
            host: "agent.example",
            client_id: "dcr.v1.sealed-registration",
            logo_url: None,
            vouched_by: None,
            reasons: vec![],
            redirect_host: "agent.example".into(),
            new_client: None,
            redirect_warnings: vec![],
            self_registered: true,
            scopes: vec![],
            client_name: Some("Totally Official App"),
            client_uri: None,
            action: "https://proxy.example/consent".into(),
            token: "v1.token".into(),
        };
        let html = page.render().unwrap();
        assert!(html.contains("registered itself"), "{html}");
        assert!(html.contains("Nothing about it is verified"), "{html}");
        assert!(
            html.contains("send you back to <strong>agent.example</strong>"),
            "{html}"
        );
        // The sealed client_id means nothing to a person and is not shown.
        assert!(!html.contains("dcr.v1.sealed-registration"), "{html}");
        assert!(html.contains("self-declared"));
    }

    #[test]
    fn redirect_descriptions_warn_about_loopback_and_other_hosts() {
        let (host, warnings) = describe_redirect("app.example", &uri("https://app.example/cb"));
        assert_eq!(host, "app.example");
        assert!(warnings.is_empty());
        let (host, warnings) = describe_redirect("app.example", &uri("https://evil.example/cb"));
        assert_eq!(host, "evil.example");
        assert!(warnings[0].contains("not app.example"));
        let (host, warnings) = describe_redirect("app.example", &uri("http://127.0.0.1:5000/cb"));
        assert!(warnings[0].contains("loopback"));
        // Regression: loopback clients showed 127.0.0.1 without the port.
        assert_eq!(host, "127.0.0.1:5000");
        let (host, _) = describe_redirect("app.example", &uri("http://[::1]:5001/cb"));
        assert_eq!(host, "[::1]:5001");
    }

    #[test]
    fn scopes_are_described_in_plain_words() {
        let operator = [(
            "mcp:tools".to_owned(),
            "Use the tools of the MCP server".to_owned(),
        )]
        .into_iter()
        .collect();
        let lines = describe_scopes("openid offline_access mcp:tools custom:thing", &operator);
        let described: Vec<_> = lines
            .iter()
            .map(|line| (line.name, line.description.as_deref()))
            .collect();
        assert_eq!(
            described,
            vec![
                ("openid", Some("Confirm who you are")),
                (
                    "offline_access",
                    Some("Stay signed in and act for you when you are not using it")
                ),
                ("mcp:tools", Some("Use the tools of the MCP server")),
                ("custom:thing", None),
            ]
        );
        let page = InterstitialPage {
            css: CSS,
            brand: Branding {
                name: "Example Corp".into(),
                named: true,
                ..Branding::default()
            },
            host: "127.0.0.1:5000",
            client_id: "https://app.example/c",
            logo_url: None,
            vouched_by: None,
            reasons: vec![],
            redirect_host: "127.0.0.1:5000".into(),
            redirect_warnings: vec![],
            self_registered: false,
            scopes: lines,
            client_name: None,
            client_uri: None,
            action: "https://proxy.example/consent".into(),
            token: "t".into(),
            new_client: None,
        };
        let html = page.render().unwrap();
        assert!(
            html.contains("<title>Allow 127.0.0.1:5000 to sign you in with Example Corp?</title>"),
            "{html}"
        );
        assert!(html.contains("Stay signed in and act for you"), "{html}");
        assert!(html.contains("not described by Example Corp"), "{html}");
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
