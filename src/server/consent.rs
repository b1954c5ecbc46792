//! `POST /consent`: the answer to the interstitial page (`interstitial.rs`).
//!
//! Continue goes to the provider, Cancel returns `access_denied` to the
//! validated redirect_uri. The sealed token must open, must have been
//! issued to this browser (the `SameSite=Strict` cookie the page set), and
//! must not have been used. A cross-site page auto-submitting a token it
//! obtained can therefore not skip the page for a victim: the victim's
//! browser does not send the cookie cross-site, and the attacker cannot set
//! it.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use url::Url;

use super::AppState;
use super::audit::short;
use super::interstitial::{COOKIE, digest};
use super::oauth::{OAuthErrorCode, error_redirect, found};
use super::pages::{PageReason, error_page};
use super::params::Params;
use crate::flow::{CONSENT_TTL, Sealed as _, SealedConsent};
use crate::store::{SingleUseKind, Store, Use};

/// What the user chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Choice {
    /// Go on to the provider.
    Continue,
    /// Return `access_denied` to the client.
    Cancel,
}

/// Why a consent post is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Missing,
    Invalid(&'static str),
    OtherBrowser,
    Replayed,
    Busy,
    NoChoice,
}

/// Checks a consent post: the token opens, was issued to this browser, has
/// not been used, and a choice was made. Using it up happens here, in the
/// shared store, so a token is spent once across replicas sharing a Redis;
/// a store that cannot answer refuses the post rather than skip the check.
pub(crate) async fn check(
    sealer: &crate::seal::Sealer,
    store: &Store,
    headers: &HeaderMap,
    params: &Params<'_>,
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
    match store
        .use_once(SingleUseKind::Consent, token.id.as_bytes(), CONSENT_TTL)
        .await
    {
        Ok(Use::First) => Ok((token, choice)),
        Ok(Use::Replayed) => Err((Refusal::Replayed, Some(token.client_id))),
        Err(error) => {
            tracing::warn!(%error, "cannot spend a consent token");
            Err((Refusal::Busy, Some(token.client_id)))
        }
    }
}

/// Handles `POST /consent`: Continue goes to the provider, Cancel returns
/// `access_denied` to the validated redirect_uri; either uses the token up.
pub async fn decide(state: Arc<AppState>, headers: &HeaderMap, params: Params<'_>) -> Response {
    match check(&state.sealer, &state.store, headers, &params).await {
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
        Err((refusal, client_id)) => refused(refusal, client_id.as_deref()),
    }
}

/// The error page for a refused consent post, with its audit line.
pub(crate) fn refused(refusal: Refusal, client_id: Option<&str>) -> Response {
    let host = client_id
        .and_then(|id| Url::parse(id).ok())
        .and_then(|url| url.host_str().map(str::to_owned));
    let client_id = client_id.unwrap_or("-");
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
            "the confirmation cannot be checked right now",
            "consent_unavailable",
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

/// After a POST, 303 makes the browser follow with a GET.
pub(crate) fn see_other(location: &str) -> Response {
    let mut response = found(location);
    *response.status_mut() = StatusCode::SEE_OTHER;
    response
}

/// The value of the cookie `name` the request carries.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

fn audit(client_id: &str, outcome: &str) {
    crate::metrics::METRICS
        .consent_decisions
        .with_label_values(&[outcome])
        .inc();
    tracing::info!(target: "audit", event = "consent", client_id = %short(client_id), outcome);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::RedirectUri;
    use crate::seal::{Purpose, Sealer};
    use crate::store::MemoryStore;
    use axum::http::HeaderValue;
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

    fn post(sealed: &str, decision: &str) -> Params<'static> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("consent", sealed)
            .append_pair("decision", decision)
            .finish();
        Params::parse(body.as_bytes()).unwrap().into_owned()
    }

    fn memory() -> Store {
        Store::Memory(MemoryStore::new(10))
    }

    fn spent(store: &Store) -> usize {
        match store {
            Store::Memory(memory) => memory.single_use_len(),
            Store::Redis(_) => unreachable!("these tests use the memory backend"),
        }
    }

    fn with_cookie(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {COOKIE}={value}")).unwrap(),
        );
        headers
    }

    #[tokio::test]
    async fn a_valid_token_is_accepted_once() {
        let sealer = sealer();
        let store = memory();
        let sealed = sealer.seal(Purpose::Consent, CONSENT_TTL, &token("secret"));
        let (accepted, choice) = check(
            &sealer,
            &store,
            &with_cookie("secret"),
            &post(&sealed, "continue"),
        )
        .await
        .unwrap();
        assert_eq!(choice, Choice::Continue);
        assert_eq!(accepted.location, "https://idp.example/authorize?x=1");
        let replay = check(
            &sealer,
            &store,
            &with_cookie("secret"),
            &post(&sealed, "cancel"),
        )
        .await;
        assert_eq!(replay.unwrap_err().0, Refusal::Replayed);
    }

    #[tokio::test]
    async fn a_forged_or_foreign_token_is_refused() {
        let sealer = sealer();
        let store = memory();
        let forged = check(
            &sealer,
            &store,
            &with_cookie("secret"),
            &post("v1.AAAA", "continue"),
        )
        .await;
        assert!(matches!(forged.unwrap_err().0, Refusal::Invalid(_)));
        // Sealed by another deployment's key.
        let other = Sealer::new(vec![[8u8; 32]]).unwrap();
        let sealed = other.seal(Purpose::Consent, CONSENT_TTL, &token("secret"));
        let foreign = check(
            &sealer,
            &store,
            &with_cookie("secret"),
            &post(&sealed, "continue"),
        )
        .await;
        assert!(matches!(foreign.unwrap_err().0, Refusal::Invalid(_)));
        // A sealed state is not a consent token.
        let state = sealer.seal(Purpose::State, CONSENT_TTL, &token("secret"));
        let wrong = check(
            &sealer,
            &store,
            &with_cookie("secret"),
            &post(&state, "continue"),
        )
        .await;
        assert!(matches!(wrong.unwrap_err().0, Refusal::Invalid(_)));
    }

    #[tokio::test]
    async fn a_token_from_another_browser_is_refused_and_not_used_up() {
        let sealer = sealer();
        let store = memory();
        let sealed = sealer.seal(Purpose::Consent, CONSENT_TTL, &token("victim"));
        // A cross-site auto-submit carries no cookie, or the attacker's.
        for headers in [HeaderMap::new(), with_cookie("attacker")] {
            let refused = check(&sealer, &store, &headers, &post(&sealed, "continue")).await;
            assert_eq!(refused.unwrap_err().0, Refusal::OtherBrowser);
        }
        assert_eq!(spent(&store), 0);
        assert!(
            check(
                &sealer,
                &store,
                &with_cookie("victim"),
                &post(&sealed, "continue"),
            )
            .await
            .is_ok()
        );
    }

    #[tokio::test]
    async fn an_expired_token_is_refused() {
        let sealer = sealer();
        let store = memory();
        let sealed = sealer
            .try_seal_at(Purpose::Consent, Duration::from_secs(1), &token("s"), 1_000)
            .unwrap();
        let refused = check(
            &sealer,
            &store,
            &with_cookie("s"),
            &post(&sealed, "continue"),
        )
        .await;
        assert!(matches!(refused.unwrap_err().0, Refusal::Invalid(_)));
    }
}
