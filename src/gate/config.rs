//! `[gate]`: the gate's configuration, apart from the gate itself so that
//! the configuration loader does not depend on the server.

use std::net::SocketAddr;

/// Which ingress asks, and so which headers name the original request.
/// Exactly one source is read: a header the ingress does not set itself
/// would come from the client, who could name a harmless path in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, strum::EnumString, strum::VariantNames)]
#[strum(serialize_all = "kebab-case")]
pub enum Ingress {
    /// NGINX `auth_request` with the README's block: `X-Original-URI` and
    /// `X-Original-Method`, set by `proxy_set_header`.
    #[default]
    Nginx,
    /// ingress-nginx's `auth-url`: `X-Original-URL` (the whole URL) and
    /// `X-Original-Method`.
    IngressNginx,
    /// Traefik `forwardAuth`: `X-Forwarded-Uri` and `X-Forwarded-Method`.
    Traefik,
    /// Envoy `ext_authz` (HTTP): the check request's own method, and its
    /// path after the `/gate/check` prefix.
    Envoy,
}

/// `[gate]`: the check endpoint and the provider endpoints it guards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateConfig {
    /// Whether `serve` opens the gate's listener.
    pub enabled: bool,
    /// The gate's own listener, reached by the ingress only (not the public
    /// Service).
    pub listen: SocketAddr,
    /// Which ingress asks (where the original request is read from).
    pub ingress: Ingress,
    /// The provider's authorization endpoint paths (`/auth`, `/authorize`).
    pub authorization_paths: Vec<String>,
    /// The provider's token endpoint paths.
    pub token_paths: Vec<String>,
    /// NGINX: the location (`@name` or a path) a check that carried the
    /// request body answers with in `X-Accel-Redirect` when it admits, so
    /// NGINX sends that same request, body included, on to the provider.
    pub accel_redirect: Option<String>,
    /// The path, on the ingress, that it routes to the gate's
    /// `/gate/consent`: where the consent page's form posts.
    pub consent_path: String,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            enabled: false,
            listen: SocketAddr::from(([0, 0, 0, 0], 8081)),
            ingress: Ingress::Nginx,
            authorization_paths: Vec::new(),
            token_paths: Vec::new(),
            accel_redirect: None,
            consent_path: "/cimd-gate/consent".to_owned(),
        }
    }
}

impl GateConfig {
    /// A guarded path as configured, in the form requests are compared in.
    /// Configuration reading calls it so a path that could never match is
    /// reported, not silently ignored.
    pub fn check_path(path: &str) -> Result<String, String> {
        if !path.starts_with('/') || path.contains(['?', '#']) {
            return Err(format!(
                "expected an absolute path without query or fragment, found {path:?}"
            ));
        }
        Ok(canonical_path(path))
    }
}

/// A path in the form guarded paths are compared in: percent-decoded,
/// dot segments resolved, empty segments and a trailing slash dropped,
/// lower case. Routers differ on each of these (Koa's, under
/// oidc-provider, ignores case and a trailing slash), so the gate errs
/// towards a match: a spelling the provider treats as its endpoint must
/// not slip past as "another path".
pub(crate) fn canonical_path(raw: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split(['/', '\\']) {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut path = String::with_capacity(decoded.len() + 1);
    for segment in segments {
        path.push('/');
        path.push_str(segment);
    }
    if path.is_empty() {
        path.push('/');
    }
    path.to_lowercase()
}
