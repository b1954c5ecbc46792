//! The proxy's own metadata: RFC 8414 / OpenID discovery, the JWKS of its
//! id_token keys, and RFC 9728 protected resource metadata.
//!
//! The proxy is the authorization server its clients see, so `issuer` and
//! every endpoint are its own (CIMD-RULES 26). From the provider it carries
//! over only what stays true through the proxy: the userinfo endpoint (the
//! access token is the provider's), scopes and claims.

use serde_json::{Map, Value, json};

use crate::config::ResourceConfig;
use crate::upstream::ProviderMetadata;

/// Provider members that remain true when the proxy fronts it.
const CARRIED_OVER: [&str; 5] = [
    "userinfo_endpoint",
    "scopes_supported",
    "claims_supported",
    "subject_types_supported",
    "claims_parameter_supported",
];

/// The algorithms a client's `private_key_jwt` assertion may use, at
/// `/token` and `/revoke` alike.
const ASSERTION_ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// Advertises `/register` (RFC 8414 `registration_endpoint`): only when
/// `[registration] enabled`, so a client never tries an endpoint that is off.
pub fn add_registration_endpoint(metadata: &mut Value, issuer: &str) {
    if let Value::Object(metadata) = metadata {
        metadata.insert(
            "registration_endpoint".to_owned(),
            Value::String(format!("{issuer}/register")),
        );
    }
}

/// The authorization server metadata the proxy serves.
pub fn authorization_server_metadata(
    issuer: &str,
    provider: &ProviderMetadata,
    id_token_algorithms: &[&str],
) -> Value {
    let mut metadata = Map::new();
    for key in CARRIED_OVER {
        if let Some(value) = provider.raw.get(key) {
            metadata.insert(key.to_owned(), value.clone());
        }
    }
    let ours = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "revocation_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
        "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
        "jwks_uri": format!("{issuer}/jwks.json"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
        "id_token_signing_alg_values_supported": id_token_algorithms,
        "client_id_metadata_document_supported": true,
        "authorization_response_iss_parameter_supported": true,
    });
    if let Value::Object(ours) = ours {
        metadata.extend(ours);
    }
    if !metadata.contains_key("subject_types_supported") {
        metadata.insert("subject_types_supported".into(), json!(["public"]));
    }
    Value::Object(metadata)
}

/// The scope a resource does not advertise: `offline_access` is about the
/// client's relationship with the authorization server, not a permission
/// on the resource, and MCP (2026-07) says a protected resource should not
/// list it; a client that may refresh asks the authorization server for it.
const NOT_A_RESOURCE_SCOPE: &str = "offline_access";

/// RFC 9728 metadata for the resource beside the sidecar. `offline_access`
/// is left out of `scopes_supported` even when `[resource]` lists it.
pub fn protected_resource_metadata(issuer: &str, resource: &ResourceConfig) -> Value {
    let mut metadata = json!({
        "resource": resource.resource.as_str(),
        "authorization_servers": [issuer],
        "bearer_methods_supported": ["header"],
    });
    let scopes: Vec<&str> = resource
        .scopes_supported
        .iter()
        .map(String::as_str)
        .filter(|scope| *scope != NOT_A_RESOURCE_SCOPE)
        .collect();
    if !scopes.is_empty() {
        metadata["scopes_supported"] = json!(scopes);
    }
    metadata
}

/// The paths a metadata document is served at for an issuer with `path`
/// (no trailing slash): RFC 8414 §3.1 inserts the well-known segment before
/// the path; OpenID Discovery §4 appends it. Both are served, and the
/// root forms too, so a client that guesses either way finds it.
pub fn well_known_paths(well_known: &str, path: &str) -> Vec<String> {
    let mut paths = vec![format!("/.well-known/{well_known}")];
    if !path.is_empty() {
        paths.push(format!("/.well-known/{well_known}{path}"));
        paths.push(format!("{path}/.well-known/{well_known}"));
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_paths_cover_both_conventions() {
        assert_eq!(
            well_known_paths("oauth-authorization-server", ""),
            vec!["/.well-known/oauth-authorization-server"]
        );
        assert_eq!(
            well_known_paths("openid-configuration", "/auth"),
            vec![
                "/.well-known/openid-configuration",
                "/.well-known/openid-configuration/auth",
                "/auth/.well-known/openid-configuration",
            ]
        );
    }

    #[test]
    fn protected_resource_metadata_does_not_advertise_offline_access() {
        let resource = |scopes: &[&str]| ResourceConfig {
            resource: "https://mcp.example/mcp".parse().unwrap(),
            additional: Vec::new(),
            scopes_supported: scopes.iter().map(|scope| (*scope).to_owned()).collect(),
        };
        let metadata = protected_resource_metadata(
            "https://auth.example",
            &resource(&["openid", "offline_access", "mcp:tools"]),
        );
        assert_eq!(metadata["scopes_supported"], json!(["openid", "mcp:tools"]));
        assert_eq!(
            metadata["authorization_servers"],
            json!(["https://auth.example"])
        );
        // Nothing left to advertise: no member rather than an empty list.
        let metadata =
            protected_resource_metadata("https://auth.example", &resource(&["offline_access"]));
        assert!(metadata.get("scopes_supported").is_none(), "{metadata}");
    }
}
