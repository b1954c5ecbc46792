//! The provider's metadata: where to find it, and what must hold of it.
//!
//! OpenID Connect Discovery appends `/.well-known/openid-configuration` to
//! the issuer; RFC 8414 inserts `/.well-known/oauth-authorization-server`
//! between the origin and the issuer's path. Most providers serve the first,
//! some only the second, so the first is tried and a 404 falls back to the
//! second.
//!
//! The document's `issuer` must be the configured issuer (RFC 8414 §3.3),
//! which is what stops a document at one issuer's URL from speaking for
//! another. The comparison is on strings, with one allowance: a single
//! trailing `/` may differ. The configuration holds the issuer as a parsed
//! URL, and parsing turns `https://idp.example` into `https://idp.example/`,
//! so an operator could not write the bare-origin form most providers use.
//! Nothing else is normalised: write the issuer as the provider does.

use url::Url;

use super::UpstreamConfig;
use super::http::{self, HttpClient};
use super::{ProviderMetadata, UpstreamError};

/// OpenID Connect Discovery 1.0 §4: the issuer, less one trailing `/`, then
/// `/.well-known/openid-configuration`.
pub fn openid_configuration_url(issuer: &Url) -> Url {
    let mut url = issuer.clone();
    let path = issuer.path();
    let path = path.strip_suffix('/').unwrap_or(path);
    url.set_path(&format!("{path}/.well-known/openid-configuration"));
    url
}

/// RFC 8414 §3.1: `/.well-known/oauth-authorization-server` inserted between
/// the host and the issuer's path (less its terminating `/`).
pub fn oauth_authorization_server_url(issuer: &Url) -> Url {
    let mut url = issuer.clone();
    let path = issuer.path();
    let path = path.strip_suffix('/').unwrap_or(path);
    url.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    url
}

/// Whether the document's issuer is the configured one: equal strings, or
/// strings that differ by one trailing `/` (see the module comment).
pub(super) fn issuers_match(configured: &str, found: &str) -> bool {
    configured == found
        || configured.strip_suffix('/') == Some(found)
        || found.strip_suffix('/') == Some(configured)
}

/// Fetches and checks the metadata for `config.issuer`.
pub(super) async fn discover(
    client: &HttpClient,
    config: &UpstreamConfig,
) -> Result<ProviderMetadata, UpstreamError> {
    let issuer = config.issuer.as_ref().ok_or(UpstreamError::MissingIssuer)?;
    check_issuer(issuer)?;
    let openid = openid_configuration_url(issuer);
    let mut url = openid.clone();
    let mut answer = client.get(&url).await?;
    if answer.status == ::http::StatusCode::NOT_FOUND {
        url = oauth_authorization_server_url(issuer);
        answer = client.get(&url).await?;
    }
    if answer.status.is_server_error() {
        return Err(UpstreamError::Status {
            url: url.to_string(),
            status: answer.status.as_u16(),
        });
    }
    if !answer.status.is_success() {
        let reason = if answer.status == ::http::StatusCode::NOT_FOUND {
            format!("HTTP 404 here and at {openid}")
        } else {
            format!("HTTP {}", answer.status.as_u16())
        };
        return Err(UpstreamError::Discovery {
            url: url.to_string(),
            reason,
        });
    }
    let document = http::json_document(&answer, &url).map_err(|error| match error {
        UpstreamError::InvalidResponse { url, reason } => UpstreamError::Discovery { url, reason },
        other => other,
    })?;
    metadata_from_document(document, issuer, config).map_err(|error| match error {
        DocumentError::Mismatch(found) => UpstreamError::IssuerMismatch {
            expected: issuer.to_string(),
            found,
        },
        DocumentError::Invalid(reason) => UpstreamError::Discovery {
            url: url.to_string(),
            reason,
        },
    })
}

/// An issuer identifier is an http(s) URL without query or fragment
/// (RFC 8414 §2); anything else cannot have its metadata located.
fn check_issuer(issuer: &Url) -> Result<(), UpstreamError> {
    let reason = if !matches!(issuer.scheme(), "https" | "http") {
        "must be an http(s) URL"
    } else if issuer.query().is_some() {
        "must not have a query"
    } else if issuer.fragment().is_some() {
        "must not have a fragment"
    } else {
        return Ok(());
    };
    Err(UpstreamError::InvalidIssuer {
        issuer: issuer.to_string(),
        reason: reason.to_owned(),
    })
}

/// Why a document was refused.
#[derive(Debug, PartialEq)]
pub(super) enum DocumentError {
    /// It names another issuer (carried: the one it names).
    Mismatch(String),
    /// Something else is wrong with it.
    Invalid(String),
}

/// Builds the metadata from a discovery document: the issuer checked, the
/// configured endpoints in place of the discovered ones.
pub(super) fn metadata_from_document(
    raw: serde_json::Map<String, serde_json::Value>,
    configured_issuer: &Url,
    config: &UpstreamConfig,
) -> Result<ProviderMetadata, DocumentError> {
    let found = raw
        .get("issuer")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| DocumentError::Invalid("no \"issuer\" string".to_owned()))?
        .to_owned();
    if !issuers_match(configured_issuer.as_str(), &found) {
        return Err(DocumentError::Mismatch(found));
    }
    // An https issuer whose document sends secrets to an http endpoint is a
    // downgrade, unless the operator wrote that endpoint in the config.
    let https_only = configured_issuer.scheme() == "https";
    let endpoint = |key: &str| -> Result<Option<Url>, DocumentError> {
        let Some(value) = raw.get(key) else {
            return Ok(None);
        };
        let parsed = value
            .as_str()
            .and_then(|text| Url::parse(text).ok())
            .filter(|url| match url.scheme() {
                "https" => true,
                "http" => !https_only,
                _ => false,
            });
        match parsed {
            Some(url) => Ok(Some(url)),
            None if https_only => Err(DocumentError::Invalid(format!(
                "\"{key}\" is not an https URL"
            ))),
            None => Err(DocumentError::Invalid(format!(
                "\"{key}\" is not an http(s) URL"
            ))),
        }
    };
    let required = |key: &str, configured: &Option<Url>| -> Result<Url, DocumentError> {
        match configured {
            Some(url) => Ok(url.clone()),
            None => endpoint(key)?.ok_or_else(|| DocumentError::Invalid(format!("no \"{key}\""))),
        }
    };
    let authorization_endpoint =
        required("authorization_endpoint", &config.authorization_endpoint)?;
    let token_endpoint = required("token_endpoint", &config.token_endpoint)?;
    let jwks_uri = endpoint("jwks_uri")?;
    let userinfo_endpoint = endpoint("userinfo_endpoint")?;
    // Optional to the proxy: one it cannot use is left out (and revocation
    // then ends the proxy's grant only), rather than failing discovery.
    let revocation_endpoint = endpoint("revocation_endpoint").unwrap_or_else(|error| {
        let (DocumentError::Invalid(reason) | DocumentError::Mismatch(reason)) = error;
        tracing::warn!(%reason, "the provider's revocation endpoint is not used");
        None
    });
    Ok(ProviderMetadata {
        issuer: found,
        authorization_endpoint,
        token_endpoint,
        jwks_uri,
        userinfo_endpoint,
        revocation_endpoint,
        scopes_supported: string_list(&raw, "scopes_supported"),
        claims_supported: string_list(&raw, "claims_supported"),
        raw,
    })
}

/// An informative list of strings. A malformed one is dropped (and logged)
/// rather than failing discovery: nothing the proxy enforces rests on it.
fn string_list(raw: &serde_json::Map<String, serde_json::Value>, key: &str) -> Option<Vec<String>> {
    let value = raw.get(key)?;
    let list = value.as_array().and_then(|items| {
        items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
    });
    if list.is_none() {
        tracing::warn!(
            key,
            "provider metadata field is not a list of strings; ignored"
        );
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    fn document(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn well_known_urls_for_a_bare_origin_issuer() {
        let issuer = url("https://idp.example.com");
        assert_eq!(
            openid_configuration_url(&issuer).as_str(),
            "https://idp.example.com/.well-known/openid-configuration"
        );
        assert_eq!(
            oauth_authorization_server_url(&issuer).as_str(),
            "https://idp.example.com/.well-known/oauth-authorization-server"
        );
    }

    #[test]
    fn well_known_urls_for_an_issuer_with_a_path() {
        let issuer = url("https://idp.example.com:8443/realms/acme");
        assert_eq!(
            openid_configuration_url(&issuer).as_str(),
            "https://idp.example.com:8443/realms/acme/.well-known/openid-configuration"
        );
        assert_eq!(
            oauth_authorization_server_url(&issuer).as_str(),
            "https://idp.example.com:8443/.well-known/oauth-authorization-server/realms/acme"
        );
        // RFC 8414 §3.1: a terminating "/" is removed before inserting.
        let trailing = url("https://idp.example.com/tenant/v2.0/");
        assert_eq!(
            openid_configuration_url(&trailing).as_str(),
            "https://idp.example.com/tenant/v2.0/.well-known/openid-configuration"
        );
        assert_eq!(
            oauth_authorization_server_url(&trailing).as_str(),
            "https://idp.example.com/.well-known/oauth-authorization-server/tenant/v2.0"
        );
    }

    #[test]
    fn issuers_match_exactly_or_by_one_trailing_slash() {
        assert!(issuers_match(
            "https://idp.example.com/",
            "https://idp.example.com"
        ));
        assert!(issuers_match(
            "https://idp.example.com/",
            "https://idp.example.com/"
        ));
        assert!(issuers_match(
            "https://idp.example.com/a",
            "https://idp.example.com/a/"
        ));
        assert!(!issuers_match(
            "https://idp.example.com/a",
            "https://idp.example.com/a//"
        ));
        assert!(!issuers_match(
            "https://idp.example.com/a",
            "https://idp.example.com/b"
        ));
        assert!(!issuers_match(
            "https://idp.example.com/",
            "https://IDP.example.com"
        ));
        assert!(!issuers_match(
            "https://idp.example.com/",
            "http://idp.example.com"
        ));
        assert!(!issuers_match(
            "https://idp.example.com/a",
            "https://idp.example.com/a/b"
        ));
    }

    fn good() -> serde_json::Value {
        json!({
            "issuer": "https://idp.example.com",
            "authorization_endpoint": "https://idp.example.com/authorize",
            "token_endpoint": "https://idp.example.com/token",
            "jwks_uri": "https://idp.example.com/jwks",
            "scopes_supported": ["openid", "email"],
            "claims_supported": ["sub", 7],
            "grant_types_supported": ["authorization_code"]
        })
    }

    #[test]
    fn a_document_for_another_issuer_is_refused() {
        let mut doc = good();
        doc["issuer"] = json!("https://evil.example.com");
        let error = metadata_from_document(
            document(doc),
            &url("https://idp.example.com"),
            &UpstreamConfig::default(),
        )
        .unwrap_err();
        assert_eq!(
            error,
            DocumentError::Mismatch("https://evil.example.com".into())
        );
    }

    #[test]
    fn the_document_is_read_and_kept_whole() {
        let metadata = metadata_from_document(
            document(good()),
            &url("https://idp.example.com"),
            &UpstreamConfig::default(),
        )
        .unwrap();
        // The provider's own spelling, not the normalised configured URL.
        assert_eq!(metadata.issuer, "https://idp.example.com");
        assert_eq!(
            metadata.token_endpoint.as_str(),
            "https://idp.example.com/token"
        );
        assert_eq!(
            metadata.scopes_supported,
            Some(vec!["openid".to_owned(), "email".to_owned()])
        );
        assert_eq!(
            metadata.claims_supported, None,
            "a malformed list is dropped"
        );
        assert!(metadata.raw.contains_key("grant_types_supported"));
    }

    #[test]
    fn configured_endpoints_override_the_discovered_ones() {
        let mut doc = good();
        doc.as_object_mut().unwrap().remove("token_endpoint");
        let config = UpstreamConfig {
            token_endpoint: Some(url("http://internal.svc:8080/oauth/token")),
            authorization_endpoint: Some(url("https://login.example.com/auth")),
            ..UpstreamConfig::default()
        };
        let metadata =
            metadata_from_document(document(doc), &url("https://idp.example.com"), &config)
                .unwrap();
        assert_eq!(
            metadata.token_endpoint.as_str(),
            "http://internal.svc:8080/oauth/token"
        );
        assert_eq!(
            metadata.authorization_endpoint.as_str(),
            "https://login.example.com/auth"
        );
    }

    #[test]
    fn missing_or_downgraded_endpoints_are_refused() {
        let issuer = url("https://idp.example.com");
        let config = UpstreamConfig::default();
        let mut doc = good();
        doc.as_object_mut().unwrap().remove("token_endpoint");
        assert_eq!(
            metadata_from_document(document(doc), &issuer, &config).unwrap_err(),
            DocumentError::Invalid("no \"token_endpoint\"".into())
        );
        let mut doc = good();
        doc["token_endpoint"] = json!("http://idp.example.com/token");
        assert!(matches!(
            metadata_from_document(document(doc), &issuer, &config),
            Err(DocumentError::Invalid(reason)) if reason.contains("https")
        ));
        let mut doc = good();
        doc["jwks_uri"] = json!(17);
        assert!(metadata_from_document(document(doc), &issuer, &config).is_err());
        let mut doc = good();
        doc.as_object_mut().unwrap().remove("issuer");
        assert!(metadata_from_document(document(doc), &issuer, &config).is_err());
    }

    #[test]
    fn an_issuer_with_a_query_or_fragment_is_refused() {
        assert!(check_issuer(&url("https://idp.example.com/?tenant=a")).is_err());
        assert!(check_issuer(&url("https://idp.example.com/#a")).is_err());
        assert!(check_issuer(&url("https://idp.example.com/a")).is_ok());
    }
}
