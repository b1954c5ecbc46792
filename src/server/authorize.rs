//! `/authorize`: the front door, open to the internet.
//!
//! The order of checks follows what we can trust. Until the client's
//! document is valid, allowed, and lists the request's redirect_uri, every
//! problem is an error page: redirecting to an unvalidated redirect_uri would
//! make the proxy an open redirector (RFC 6749 §4.1.2.1). After that, errors
//! go back to the client as OAuth error redirects; for a client the policy
//! only warns about, on a page that names where the redirect goes, with a
//! link, rather than at once (RFC 9700 §4.11.2: anyone can publish a
//! document listing a phishing page as its redirect_uri).

use std::sync::Arc;

use axum::response::Response;

use super::AppState;
use super::audit::short;
use super::interstitial::{self, ConsentRequest};
use super::oauth::{OAuthErrorCode, error_location, error_redirect, found, with_query_url};
use super::pages::{PageReason, error_page, redirect_notice, refusal_page};
use super::params::Params;
use crate::admission::{Admitted, Ask, RedirectAsk, Upstream};
use crate::client_id::is_url_client_id;
use crate::flow::{MetadataFingerprint, RedirectUri, SealedState, random_id};
use crate::inventory::Newness;
use crate::policy::Action;
use crate::policy::Interstitial;
use crate::registration::is_registered_client_id;
use crate::upstream::{Grant, Leg, RedirectMode, UpstreamRequest, may_refresh};

/// Parameters passed to the provider as the client sent them (`prompt` is
/// the translation's: see [`crate::upstream::Translation`]).
const FORWARDED: [&str; 5] = [
    "login_hint",
    "max_age",
    "ui_locales",
    "acr_values",
    "display",
];

/// Handles GET and POST `/authorize` once parameters are read.
pub async fn authorize(state: Arc<AppState>, params: Params<'_>, raw_query: &str) -> Response {
    let Some(client_id) = params.get("client_id") else {
        return error_page(PageReason::BadRequest, "client_id is missing", None);
    };
    if !is_url_client_id(client_id)
        && !is_registered_client_id(client_id)
        && state.admission().relayed(client_id).is_none()
    {
        // A pre-registered client the operator did not list for relaying:
        // the provider knows it; pass it through.
        audit(client_id, "pass_through", "pass_through", None);
        state.inventory.passed_through(client_id);
        return pass_through(&state, raw_query);
    }
    let ask = Ask {
        redirect_uri: RedirectAsk::Asked(params.get("redirect_uri")),
        scope: params.get("scope"),
    };
    let admitted = match state.admission_with_logos().admit(client_id, ask).await {
        Ok(admitted) => admitted,
        Err(refusal) => {
            audit(client_id, "refused", refusal.outcome(), None);
            state.inventory.refused(client_id, &refusal);
            return refusal_page(&refusal);
        }
    };
    state.inventory.admitted(client_id, &admitted);
    let new_client = state
        .inventory
        .warning(&state.config.policy, &admitted)
        .await;
    let Some(redirect_uri) = &admitted.redirect_uri else {
        // Unreachable: a sign-in always asks for one, and admission refuses
        // rather than admit without it.
        return error_page(PageReason::BadRequest, "redirect_uri is required", None);
    };
    // From here on the redirect_uri is trusted: errors go back to the client.
    let reply = Reply {
        client_id,
        redirect_uri,
        state: params.get("state"),
        issuer: &state.issuer,
        warned_host: (admitted.decision.action == Action::Warn).then(|| admitted.client.host()),
    };
    sign_in(&state, &params, &admitted, &reply, new_client)
        .unwrap_or_else(|refused| reply.error(refused.code, &refused.description))
}

/// A sign-in refused once its redirect_uri is trusted: the client gets it.
struct Refused {
    code: OAuthErrorCode,
    description: String,
}

impl Refused {
    fn new(code: OAuthErrorCode, description: impl Into<String>) -> Self {
        Refused {
            code,
            description: description.into(),
        }
    }
}

/// Where and how a sign-in's errors go once its redirect_uri is trusted.
struct Reply<'r> {
    client_id: &'r str,
    redirect_uri: &'r RedirectUri,
    state: Option<&'r str>,
    issuer: &'r str,
    /// The client's host when the policy only warns about it: its errors
    /// are shown on a page, not redirected.
    warned_host: Option<&'r str>,
}

impl Reply<'_> {
    /// An OAuth error for the client, with the audit line: a redirect for an
    /// allowed client, the notice page for a warned one.
    fn error(&self, code: OAuthErrorCode, description: &str) -> Response {
        audit(self.client_id, "refused", code.as_str(), None);
        let Some(host) = self.warned_host else {
            return error_redirect(
                self.redirect_uri,
                code,
                description,
                self.state,
                self.issuer,
            );
        };
        let location = error_location(
            self.redirect_uri,
            code,
            description,
            self.state,
            self.issuer,
        );
        let (Some(location), Some(url)) = (location, self.redirect_uri.url()) else {
            return error_page(PageReason::BadRequest, description, Some(host));
        };
        // Named without its query: the words show where, the link carries what.
        let mut destination = url.clone();
        destination.set_query(None);
        destination.set_fragment(None);
        redirect_notice(
            host,
            &location,
            destination.as_str(),
            code.on_the_wire(),
            description,
        )
    }
}

/// The admitted client's sign-in: the request checked, the provider URL
/// built, then the consent page or the redirect to the provider.
fn sign_in(
    state: &AppState,
    params: &Params<'_>,
    admitted: &Admitted<'_>,
    reply: &Reply<'_>,
    new_client: Option<Newness>,
) -> Result<Response, Refused> {
    let code_challenge = check_request(params)?;
    let scope = admitted
        .scope
        .as_deref()
        .map_err(|refused| Refused::new(OAuthErrorCode::InvalidScope, refused.to_string()))?;
    // RFC 8707: only a resource the proxy protects, refused as
    // invalid_target before the provider is asked.
    let translation = &state.config.upstream.translation;
    let invalid_target = |error: crate::upstream::TargetError| {
        Refused::new(OAuthErrorCode::InvalidTarget, error.to_string())
    };
    let resource = params
        .get("resource")
        .map(|resource| translation.allowed_resource(resource))
        .transpose()
        .map_err(invalid_target)?;
    let grant = Grant {
        scope,
        resource: resource.as_deref(),
        may_refresh: may_refresh(&admitted.client.metadata.grant_types, Some(scope)),
    };
    let translated = translation
        .translate(
            &grant,
            Leg::Authorize {
                prompt: params.get("prompt"),
            },
        )
        .map_err(invalid_target)?;
    let Some(upstream) = admitted.upstream else {
        tracing::error!(
            client_id = %short(reply.client_id),
            "no upstream client to map onto: set policy.default_upstream_client"
        );
        return Err(Refused::new(
            OAuthErrorCode::ServerError,
            "the proxy has no upstream client for this client",
        ));
    };
    let fingerprint = MetadataFingerprint::of(&admitted.client.metadata);
    let location = provider_url(
        state,
        params,
        upstream,
        code_challenge,
        (&grant, &translated),
        reply,
        fingerprint,
    )?;
    let decision = &admitted.decision;
    let show_page = decision.action == Action::Warn
        || state.config.policy.interstitial == Interstitial::Always
        || new_client.is_some();
    audit(
        reply.client_id,
        decision.action.as_str(),
        if show_page { "consent_page" } else { "ok" },
        Some(upstream.name),
    );
    if !show_page {
        return Ok(found(&location));
    }
    let metadata = &admitted.client.metadata;
    Ok(interstitial::interstitial(
        state,
        &ConsentRequest {
            client_id: reply.client_id,
            host: admitted.client.host(),
            redirect_uri: reply.redirect_uri,
            state: reply.state,
            scope,
            client_name: metadata.client_name.as_deref(),
            client_uri: metadata.client_uri.as_deref(),
            reasons: &decision.reasons,
            allowed: decision.action == Action::Allow,
            has_logo: metadata
                .logo_uri
                .as_deref()
                .is_some_and(|uri| state.logos.held(uri).is_some()),
            location: &location,
            new_client,
        },
    ))
}

/// The request itself: `response_type=code` and an S256 PKCE challenge,
/// which is returned.
fn check_request<'p>(params: &'p Params<'_>) -> Result<&'p str, Refused> {
    if params.get("response_type") != Some("code") {
        return Err(Refused::new(
            OAuthErrorCode::UnsupportedResponseType,
            "only response_type=code is supported",
        ));
    }
    let Some(code_challenge) = params.get("code_challenge") else {
        return Err(Refused::new(
            OAuthErrorCode::InvalidRequest,
            "PKCE is required: code_challenge is missing",
        ));
    };
    if params.get("code_challenge_method") != Some("S256") {
        return Err(Refused::new(
            OAuthErrorCode::InvalidRequest,
            "PKCE with code_challenge_method=S256 is required",
        ));
    }
    if !is_s256_challenge(code_challenge) {
        return Err(Refused::new(
            OAuthErrorCode::InvalidRequest,
            "code_challenge is not an S256 challenge",
        ));
    }
    Ok(code_challenge)
}

/// The provider's authorization URL for this sign-in, as the
/// pre-registered client: in relay mode with our callback and the sealed
/// state, in direct mode with the client's own redirect_uri and state.
fn provider_url(
    state: &AppState,
    params: &Params<'_>,
    upstream: Upstream<'_>,
    code_challenge: &str,
    (grant, translated): (&Grant<'_>, &UpstreamRequest),
    reply: &Reply<'_>,
    fingerprint: MetadataFingerprint,
) -> Result<String, Refused> {
    let scope = translated.scope.as_deref().unwrap_or_default();
    // Only the sealed state and the callback URL are made here; every other
    // value is borrowed from the request or the configuration.
    let sealed;
    let callback;
    let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(16);
    pairs.extend([
        ("client_id", upstream.client.client_id.as_str()),
        ("response_type", "code"),
        ("code_challenge", code_challenge),
        ("code_challenge_method", "S256"),
    ]);
    if !scope.is_empty() {
        pairs.push(("scope", scope));
    }
    match upstream.redirect_mode() {
        RedirectMode::Relay => {
            sealed = state
                .seals()
                .seal(&SealedState {
                    id: random_id(),
                    client_id: reply.client_id.to_owned(),
                    redirect_uri: reply.redirect_uri.clone(),
                    redirect_uri_asked: params.get("redirect_uri").is_some(),
                    state: reply.state.map(str::to_owned),
                    nonce: params.get("nonce").map(str::to_owned),
                    scope: scope.to_owned(),
                    upstream_client: upstream.name.to_owned(),
                    granted_scope: grant.scope.to_owned(),
                    resource: grant.resource.map(str::to_owned),
                    metadata: Some(fingerprint),
                })
                // The client chose the sizes of state, nonce and redirect_uri.
                .map_err(|error| {
                    Refused::new(
                        OAuthErrorCode::InvalidRequest,
                        format!("state, nonce and redirect_uri are too large together ({error})"),
                    )
                })?;
            callback = state.callback_url();
            pairs.push(("redirect_uri", &callback));
            pairs.push(("state", &sealed));
        }
        RedirectMode::Direct => {
            // The provider sends the user straight back to the client, which
            // must be registered there; the client's own state travels as is.
            pairs.push(("redirect_uri", reply.redirect_uri.as_str()));
            if let Some(client_state) = reply.state {
                pairs.push(("state", client_state));
            }
        }
    }
    if let Some(nonce) = params.get("nonce") {
        pairs.push(("nonce", nonce));
    }
    for (name, value) in &translated.params {
        pairs.push((name, value));
    }
    for name in FORWARDED {
        if let Some(value) = params.get(name) {
            pairs.push((name, value));
        }
    }
    Ok(with_query_url(
        &state.provider.metadata().authorization_endpoint,
        &pairs,
    ))
}

/// A pre-registered client's request goes to the provider untouched.
fn pass_through(state: &AppState, raw_query: &str) -> Response {
    let mut target = state.provider.metadata().authorization_endpoint.clone();
    let query = match target.query() {
        Some(existing) if !raw_query.is_empty() => format!("{existing}&{raw_query}"),
        Some(existing) => existing.to_owned(),
        None => raw_query.to_owned(),
    };
    target.set_query((!query.is_empty()).then_some(query.as_str()));
    found(target.as_str())
}

/// RFC 7636 §4.2: an S256 challenge is 43 base64url characters.
fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// One audit line per authorization decision: who asked, what was decided.
/// `outcome` is from a closed set (codes and fixed words): it is a metric label.
fn audit(client_id: &str, decision: &str, outcome: &'static str, upstream_client: Option<&str>) {
    crate::metrics::METRICS
        .authorize
        .with_label_values(&[crate::metrics::Mode::Relay.as_str(), outcome])
        .inc();
    tracing::info!(
        target: "audit",
        event = "authorize",
        mode = crate::metrics::Mode::Relay.as_str(),
        client_id = %short(client_id),
        decision,
        outcome,
        upstream_client = upstream_client.unwrap_or("-"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_challenges_are_43_base64url_characters() {
        assert!(is_s256_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!is_s256_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c"
        ));
        assert!(!is_s256_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"
        ));
        assert!(!is_s256_challenge("plain-verifier"));
    }
}
