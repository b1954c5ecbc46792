//! `/authorize`: the front door, open to the internet.
//!
//! The order of checks follows what we can trust. Until the client's
//! document is valid, allowed, and lists the request's redirect_uri, every
//! problem is an error page: redirecting to an unvalidated redirect_uri would
//! make the proxy an open redirector (RFC 6749 §4.1.2.1). After that, errors
//! go back to the client as OAuth error redirects.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::consent::{self, ConsentRequest};
use super::oauth::{OAuthErrorCode, error_redirect, found, public_detail, with_query_url};
use super::pages::{PageReason, error_page};
use super::params::Params;
use crate::client_id::{ClientIdUrl, is_url_client_id};
use crate::policy::Action;
use crate::policy::Interstitial;
use crate::seal::Purpose;
use crate::trust::Vetted;
use crate::upstream::{RedirectMode, ResourceParameter};

/// What travels through the provider inside the sealed `state`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SealedState {
    /// The CIMD client_id.
    pub client_id: String,
    /// The client's redirect_uri, validated against its document.
    pub redirect_uri: String,
    /// The client's own `state`, returned to it untouched.
    pub state: Option<String>,
    /// The client's `nonce`, checked in the provider's id_token and put in ours.
    pub nonce: Option<String>,
    /// The scopes sent upstream.
    pub scope: String,
    /// The upstream client (configuration name) the client was mapped onto.
    pub upstream_client: String,
}

/// Parameters passed to the provider as the client sent them.
const FORWARDED: [&str; 6] = [
    "prompt",
    "login_hint",
    "max_age",
    "ui_locales",
    "acr_values",
    "display",
];

/// Handles GET and POST `/authorize` once parameters are read.
pub async fn authorize(state: Arc<AppState>, params: Params, raw_query: &str) -> Response {
    let Some(client_id) = params.get("client_id") else {
        return error_page(PageReason::BadRequest, "client_id is missing", None);
    };
    if !is_url_client_id(client_id) {
        // A pre-registered client: the provider knows it; pass it through.
        audit(client_id, "pass_through", "pass_through", None);
        return pass_through(&state, raw_query);
    }
    // A cached client without a software statement needs no parsing and no
    // vetting: only client_ids that parsed are ever cached, and there is no
    // statement to verify. Every other client takes the full path.
    let cached = state.cache.cached_if(client_id, |document| {
        document.metadata.software_statement.is_none()
    });
    let vetted = match cached {
        Some(resolved) => Vetted {
            metadata: Arc::clone(&resolved.document.metadata),
            resolved,
            statement: None,
        },
        None => {
            let client = match ClientIdUrl::parse(client_id) {
                Ok(client) => client,
                Err(error) => return refuse(client_id, None, error.code(), &error.to_string()),
            };
            match state.trust.resolve(&state.cache, &client).await {
                Ok(vetted) => vetted,
                Err(error) => {
                    let host = host_of(client_id);
                    return refuse(client_id, Some(&host), error.code(), &error.to_string());
                }
            }
        }
    };
    let metadata = Arc::clone(&vetted.metadata);
    let decision = state
        .policy
        .decide_str(client_id, &metadata, vetted.vouched_by());
    // Shown on pages only, so found only when one is shown.
    let host = || host_of(client_id);
    if decision.action == Action::Deny {
        return refuse(
            client_id,
            Some(&host()),
            crate::ErrorCode::PolicyDenied,
            "the operator's policy denies this client",
        );
    }

    // The redirect_uri must be one the document lists (exact, or the
    // loopback port rule). Without one, a document with a single URI names it.
    let redirect_uri = match params.get("redirect_uri") {
        Some(requested) => match metadata.match_redirect_uri(requested) {
            Some(_) => requested.to_owned(),
            None => {
                audit(client_id, "refused", "redirect_uri_mismatch", None);
                return error_page(
                    PageReason::RedirectUriNotRegistered,
                    "the redirect_uri is not listed in the client's metadata document",
                    Some(&host()),
                );
            }
        },
        None if metadata.redirect_uris.len() == 1 => metadata.redirect_uris[0].clone(),
        None => {
            audit(client_id, "refused", "invalid_request", None);
            return error_page(
                PageReason::BadRequest,
                "redirect_uri is required: the client lists several",
                Some(&host()),
            );
        }
    };

    // From here on the redirect_uri is trusted.
    let client_state = params.get("state");
    let issuer = state.issuer.as_str();
    let fail = |code: OAuthErrorCode, description: &str| {
        audit(client_id, "refused", code.as_str(), None);
        error_redirect(&redirect_uri, code, description, client_state, issuer)
    };
    if params.get("response_type") != Some("code") {
        return fail(
            OAuthErrorCode::UnsupportedResponseType,
            "only response_type=code is supported",
        );
    }
    let Some(code_challenge) = params.get("code_challenge") else {
        return fail(
            OAuthErrorCode::InvalidRequest,
            "PKCE is required: code_challenge is missing",
        );
    };
    if params.get("code_challenge_method") != Some("S256") {
        return fail(
            OAuthErrorCode::InvalidRequest,
            "PKCE with code_challenge_method=S256 is required",
        );
    }
    if !is_s256_challenge(code_challenge) {
        return fail(
            OAuthErrorCode::InvalidRequest,
            "code_challenge is not an S256 challenge",
        );
    }
    let scope = match granted_scope(
        params.get("scope"),
        decision.scopes.as_deref(),
        params.get("resource"),
        &state,
    ) {
        Ok(scope) => scope,
        Err(description) => return fail(OAuthErrorCode::InvalidScope, &description),
    };
    let Some(upstream_name) = state.upstream_client_for(decision.upstream_client.as_deref()) else {
        tracing::error!(
            client_id = %client_id,
            "no upstream client to map onto: set policy.default_upstream_client"
        );
        return fail(
            OAuthErrorCode::ServerError,
            "the proxy has no upstream client for this client",
        );
    };
    let Some(upstream) = state.config.upstream.clients.get(upstream_name) else {
        return fail(OAuthErrorCode::ServerError, "unknown upstream client");
    };

    let mut upstream_params: Vec<(&str, String)> = vec![
        ("client_id", upstream.client_id.clone()),
        ("response_type", "code".to_owned()),
        ("code_challenge", code_challenge.to_owned()),
        ("code_challenge_method", "S256".to_owned()),
    ];
    if !scope.is_empty() {
        upstream_params.push(("scope", scope.clone()));
    }
    match upstream.redirect_mode {
        RedirectMode::Relay => {
            let sealed = match state.sealer.try_seal(
                Purpose::State,
                state.config.seal.state_ttl,
                &SealedState {
                    client_id: client_id.to_owned(),
                    redirect_uri: redirect_uri.clone(),
                    state: client_state.map(str::to_owned),
                    nonce: params.get("nonce").map(str::to_owned),
                    scope: scope.clone(),
                    upstream_client: upstream_name.to_owned(),
                },
            ) {
                Ok(sealed) => sealed,
                // The client chose the sizes of state, nonce and redirect_uri.
                Err(error) => {
                    return fail(
                        OAuthErrorCode::InvalidRequest,
                        &format!("state, nonce and redirect_uri are too large together ({error})"),
                    );
                }
            };
            upstream_params.push(("redirect_uri", state.callback_url()));
            upstream_params.push(("state", sealed));
        }
        RedirectMode::Direct => {
            // The provider sends the user straight back to the client, which
            // must be registered there; the client's own state travels as is.
            upstream_params.push(("redirect_uri", redirect_uri.clone()));
            if let Some(client_state) = client_state {
                upstream_params.push(("state", client_state.to_owned()));
            }
        }
    }
    if let Some(nonce) = params.get("nonce") {
        upstream_params.push(("nonce", nonce.to_owned()));
    }
    if let (Some(resource), ResourceParameter::Forward) = (
        params.get("resource"),
        state.config.upstream.resource_parameter,
    ) {
        upstream_params.push(("resource", resource.to_owned()));
    }
    for name in FORWARDED {
        if let Some(value) = params.get(name) {
            upstream_params.push((name, value.to_owned()));
        }
    }

    let pairs: Vec<(&str, &str)> = upstream_params
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    let location = with_query_url(&state.provider.metadata().authorization_endpoint, &pairs);
    let show_page =
        decision.action == Action::Warn || state.config.policy.interstitial == Interstitial::Always;
    audit(
        client_id,
        decision.action.as_str(),
        if show_page { "consent_page" } else { "ok" },
        Some(upstream_name),
    );
    if show_page {
        let host = host();
        return consent::interstitial(
            &state,
            &ConsentRequest {
                client_id,
                host: &host,
                redirect_uri: &redirect_uri,
                state: client_state,
                scope: &scope,
                client_name: metadata.client_name.as_deref(),
                client_uri: metadata.client_uri.as_deref(),
                reasons: &decision.reasons,
                allowed: decision.action == Action::Allow,
                has_logo: metadata.logo_uri.is_some(),
                location: &location,
            },
        );
    }
    found(&location)
}

/// The host of a client_id that parsed, for pages.
fn host_of(client_id: &str) -> String {
    url::Url::parse(client_id)
        .ok()
        .and_then(|url| url.host_str().map(str::to_owned))
        .unwrap_or_default()
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

/// An error page for a client we refuse, with the audit line.
fn refuse(client_id: &str, host: Option<&str>, code: crate::ErrorCode, detail: &str) -> Response {
    audit(client_id, "refused", code.as_str(), None);
    error_page(PageReason::Client(code), &public_detail(code, detail), host)
}

/// The scopes sent upstream: the request's, cut to the rule's ceiling, plus
/// what `upstream.resource_scopes` adds for a requested resource.
fn granted_scope(
    requested: Option<&str>,
    ceiling: Option<&[String]>,
    resource: Option<&str>,
    state: &AppState,
) -> Result<String, String> {
    let requested: Vec<&str> = requested
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    let mut granted: Vec<&str> = match ceiling {
        Some(ceiling) => requested
            .iter()
            .copied()
            .filter(|scope| ceiling.iter().any(|allowed| allowed == scope))
            .collect(),
        None => requested.clone(),
    };
    if !requested.is_empty() && granted.is_empty() {
        return Err("none of the requested scopes is allowed for this client".to_owned());
    }
    if let Some(extra) = resource.and_then(|r| state.config.upstream.resource_scopes.get(r)) {
        granted.push(extra);
    }
    let mut seen = BTreeSet::new();
    granted.retain(|scope| seen.insert(*scope));
    Ok(granted.join(" "))
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
        .with_label_values(&[outcome])
        .inc();
    tracing::info!(
        target: "audit",
        event = "authorize",
        client_id = %short(client_id),
        decision,
        outcome,
        upstream_client = upstream_client.unwrap_or("-"),
    );
}

/// Client ids in logs are bounded and escaped: an outsider chose them.
/// The common case, short printable ASCII with nothing to escape, is
/// borrowed as is.
pub fn short(value: &str) -> std::borrow::Cow<'_, str> {
    let plain = value.len() <= crate::client_id::MAX_CLIENT_ID_LEN
        && value
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && !matches!(b, b'"' | b'\\' | b'\''));
    if plain {
        return std::borrow::Cow::Borrowed(value);
    }
    std::borrow::Cow::Owned(
        value
            .chars()
            .take(crate::client_id::MAX_CLIENT_ID_LEN)
            .collect::<String>()
            .escape_debug()
            .to_string(),
    )
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
