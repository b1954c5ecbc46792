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
        "jwks_uri": format!("{issuer}/jwks.json"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": [
            "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"
        ],
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

/// RFC 9728 metadata for the resource beside the sidecar.
pub fn protected_resource_metadata(issuer: &str, resource: &ResourceConfig) -> Value {
    let mut metadata = json!({
        "resource": resource.resource.as_str(),
        "authorization_servers": [issuer],
        "bearer_methods_supported": ["header"],
    });
    if !resource.scopes_supported.is_empty() {
        metadata["scopes_supported"] = json!(resource.scopes_supported);
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
}
