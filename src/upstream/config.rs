//! `[upstream]`: the identity provider and the clients pre-registered at it,
//! as the configuration describes them. The provider is discovered, and
//! client credentials read, when [`super::Provider`] is built.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::translate::Translation;
use crate::secret::SecretSource;

/// `[upstream]`.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    /// The provider's issuer identifier, used for discovery.
    pub issuer: Option<Url>,
    /// Overrides the discovered authorization endpoint.
    pub authorization_endpoint: Option<Url>,
    /// Overrides the discovered token endpoint.
    pub token_endpoint: Option<Url>,
    /// The profile and the keys over it, resolved: how a grant is
    /// translated for this provider (`resource_parameter`,
    /// `resource_scopes`, `offline_access`, ...).
    pub translation: Translation,
    /// One deadline over each call to the provider.
    pub timeout: Duration,
    /// A PEM file of CA certificates trusted for the provider beside the web PKI roots.
    pub extra_root_certs: Option<PathBuf>,
    /// The pre-registered clients CIMD clients are mapped onto, by name.
    pub clients: BTreeMap<String, UpstreamClient>,
    /// Pre-registered clients the proxy relays like CIMD clients instead of
    /// passing them through (`[[upstream.relayed_clients]]`).
    pub relayed_clients: Vec<RelayedClient>,
    /// How often the discovery document is refreshed to decide readiness.
    pub discovery_refresh: Duration,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            issuer: None,
            authorization_endpoint: None,
            token_endpoint: None,
            translation: Translation::default(),
            timeout: Duration::from_millis(10_000),
            extra_root_certs: None,
            clients: BTreeMap::new(),
            relayed_clients: Vec::new(),
            discovery_refresh: Duration::from_secs(30),
        }
    }
}

/// `[upstream.clients.NAME]`: one application registered at the provider.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamClient {
    /// Its client_id at the provider.
    pub client_id: String,
    /// How the proxy authenticates as this client at the token endpoint.
    pub auth_method: UpstreamAuthMethod,
    /// Where its client secret comes from (never the file itself).
    pub client_secret: Option<SecretSource>,
    /// The private key for `private_key_jwt`.
    pub private_key_file: Option<PathBuf>,
    /// Whether the proxy relays the callback or the client's own redirect goes upstream.
    pub redirect_mode: RedirectMode,
}

/// `auth_method` of an upstream client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::VariantNames)]
#[strum(serialize_all = "snake_case")]
pub enum UpstreamAuthMethod {
    /// HTTP Basic with the client secret.
    ClientSecretBasic,
    /// The client secret in the form body.
    ClientSecretPost,
    /// A JWT assertion signed with `private_key_file`.
    PrivateKeyJwt,
    /// A public client.
    None,
}

/// `redirect_mode` of an upstream client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, strum::EnumString, strum::VariantNames)]
#[strum(serialize_all = "snake_case")]
pub enum RedirectMode {
    /// The provider redirects to the proxy's `/callback`, which relays to the client.
    #[default]
    Relay,
    /// The client's own redirect_uri goes upstream (it must be registered there).
    Direct,
}

/// `[[upstream.relayed_clients]]`: a client registered at the provider
/// under its own client_id, with the proxy's `/callback` among its
/// redirect URIs, that the proxy relays like a CIMD client. Its user comes
/// back through the proxy, so the client receives the proxy's `iss` (RFC
/// 9207), the proxy's id_token and the proxy's sealed code and refresh
/// token: what a client that discovered the proxy as its authorization
/// server checks for.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayedClient {
    /// The client as registered at the provider: its client_id and
    /// auth_method, in relay mode. The proxy holds no credential for it:
    /// the client's own (its Basic header or `client_secret`) travel with
    /// each of its token requests, and the provider checks them.
    pub registration: UpstreamClient,
    /// The client's own redirect URIs, where the proxy sends the user back
    /// (matched as a CIMD document's are, loopback port rule included).
    pub redirect_uris: Vec<String>,
    /// The name shown on the consent page, if the operator gives one.
    pub client_name: Option<String>,
}

impl RelayedClient {
    /// Its client_id at the provider, which is also its client_id here.
    pub fn client_id(&self) -> &str {
        &self.registration.client_id
    }
}
