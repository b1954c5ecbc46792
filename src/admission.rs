//! Admission: the one path a client_id takes before the proxy acts for it.
//!
//! ```text
//! client_id ─ relayed? ─ yes: the configured client ───────────────┐
//!            └ cached? ─ yes ──────────────────────────┐             │
//!            └ no: ClientIdUrl::parse ─ cache::resolve (fetch, validate)
//!                                                     └ trust::vet (the statement)
//!                                                        └ policy::decide ─ deny?
//!                                                           └ the upstream client
//!                                                              └ the redirect_uri, the scopes
//! ```
//!
//! A relayed pre-registered client (`[[upstream.relayed_clients]]`) is the
//! one client not admitted by a document: the operator listed it, so its
//! metadata comes from the configuration, the decision is `allow`, and it is
//! its own upstream client. From the redirect_uri on, it takes the same
//! steps as a CIMD client.
//!
//! Every entrance (`/authorize`, `/token`, `/logo`, `check`) calls
//! [`Admission::admit`] with the raw client_id and what it knows
//! ([`Ask`]), and gets either an [`Admitted`] client or one [`Refusal`],
//! which each entrance maps to its wire in one place (an error page, an
//! OAuth error, the `check` report). A new entrance is a new caller.
//!
//! A client_id issued by `/register` (`dcr.…`) is opened instead of
//! fetched ([`Registrations::open`]): its document is the sealed
//! registration, and `policy.registration` decides about it; everything
//! after that is the same path.
//!
//! The cached fast path parses nothing: only client_ids that parsed are
//! ever cached, and the cache entry keeps the parsed [`ClientIdUrl`], so a
//! hit yields it for free.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::cache::{CacheStatus, DocumentCache, Resolved};
use crate::client_id::{ClientIdError, ClientIdUrl};
use crate::error_code::ErrorCode;
use crate::flow::RedirectUri;
use crate::logo::LogoCache;
use crate::metadata::ClientMetadata;
use crate::policy::{Action, Decision, Policy};
use crate::registration::{
    Registration, RegistrationRefused, Registrations, is_registered_client_id,
};
use crate::trust::{ClientError, Trust, Verdict};
use crate::upstream::{RedirectMode, RelayedClient, UpstreamClient};

/// What admission consults: the document cache (and through it the
/// fetcher), the trusted issuers, the policy and the upstream clients.
#[derive(Clone, Copy)]
pub struct Admission<'a> {
    cache: &'a DocumentCache,
    trust: &'a Trust,
    policy: &'a Policy,
    upstream_clients: &'a BTreeMap<String, UpstreamClient>,
    /// Where allowed clients' logos are prefetched, for entrances that show
    /// them ([`Admission::prefetching_logos`]).
    logos: Option<&'a LogoCache>,
    relayed_clients: &'a [RelayedClient],
    /// Registration client_ids are opened here; `None`: every one is
    /// refused (an entrance that does not serve registered clients).
    registrations: Option<Registrations<'a>>,
}

/// What an entrance knows about the request besides the client_id.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ask<'a> {
    /// Whether a redirect_uri is to be chosen, and which one was asked for.
    pub redirect_uri: RedirectAsk<'a>,
    /// The space-separated scopes requested.
    pub scope: Option<&'a str>,
}

/// Whether the entrance sends the user back to the client.
#[derive(Debug, Clone, Copy, Default)]
pub enum RedirectAsk<'a> {
    /// It does not (`/token`, `/logo`, `check`).
    #[default]
    NotAsked,
    /// A sign-in: the redirect_uri the request names, if it names one.
    Asked(Option<&'a str>),
}

/// A client looked up for use: where it comes from, its metadata and its
/// statement's verdict.
#[derive(Debug, Clone)]
pub struct Client {
    /// A fetched document, the operator's configuration, or a registration.
    pub origin: Origin,
    /// The metadata to use: the document, with a verified statement's
    /// claims taking precedence; for a relayed client, the configuration's;
    /// for a registration, the opened registration.
    pub metadata: Arc<ClientMetadata>,
    /// The statement's verdict; `None` when the document carries none (and
    /// for a registration, whose statement was checked when it registered).
    pub statement: Option<Verdict>,
}

/// Where an admitted client's metadata comes from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A CIMD client: the cache lookup, the document as fetched (with its
    /// parsed client_id) and how it was served.
    Document(Resolved),
    /// A pre-registered client the operator listed in
    /// `[[upstream.relayed_clients]]`.
    Relayed,
    /// A registration (`/register`): the client_id is the sealed,
    /// self-declared metadata.
    Registration(Registration),
}

impl Client {
    /// The parsed client_id of a CIMD client; `None` for a relayed one or a
    /// registration.
    pub fn id(&self) -> Option<&ClientIdUrl> {
        self.document()
            .map(|resolved| resolved.document.client_id())
    }

    /// The cache lookup of a CIMD client; `None` for the others.
    pub fn document(&self) -> Option<&Resolved> {
        match &self.origin {
            Origin::Document(resolved) => Some(resolved),
            Origin::Relayed | Origin::Registration(_) => None,
        }
    }

    /// The client_id as presented, of any kind.
    pub fn client_id(&self) -> &str {
        &self.metadata.client_id
    }

    /// Whether the client registered itself (nothing about it verified).
    pub fn is_registration(&self) -> bool {
        matches!(self.origin, Origin::Registration(_))
    }

    /// The issuer that vouches for the client, if any.
    pub fn vouched_by(&self) -> Option<&str> {
        match &self.origin {
            Origin::Registration(registration) => registration.vouched_by.as_deref(),
            Origin::Document(_) | Origin::Relayed => {
                self.statement.as_ref().and_then(Verdict::vouched_by)
            }
        }
    }

    /// The host shown to people: the client_id's (`[::1]` for IPv6); for a
    /// registration, which has no domain, its redirect host; a relayed
    /// client has no host, and its client_id stands in.
    pub fn host(&self) -> &str {
        match &self.origin {
            Origin::Document(resolved) => host_of(resolved.document.client_id()),
            Origin::Registration(registration) => &registration.redirect_host,
            Origin::Relayed => self.metadata.client_id.as_str(),
        }
    }
}

/// The pre-registered client a CIMD client is mapped onto.
#[derive(Debug, Clone, Copy)]
pub struct Upstream<'a> {
    /// Its name in `[upstream.clients]`.
    pub name: &'a str,
    /// Its configuration.
    pub client: &'a UpstreamClient,
}

impl Upstream<'_> {
    /// Whether the provider returns the user to the proxy or to the client.
    pub fn redirect_mode(&self) -> RedirectMode {
        self.client.redirect_mode
    }
}

/// A client the policy does not deny, with everything an entrance needs.
#[derive(Debug)]
pub struct Admitted<'a> {
    /// The client.
    pub client: Client,
    /// The policy's decision: allow or warn, its reasons, the ceiling.
    pub decision: Decision,
    /// The upstream client the decision maps onto; `None` when the
    /// configuration names none for it (a sign-in then cannot proceed).
    pub upstream: Option<Upstream<'a>>,
    /// The validated redirect_uri, when one was asked for.
    pub redirect_uri: Option<RedirectUri>,
    /// The scopes granted: the requested ones cut to the rule's ceiling
    /// (the translation for the provider comes after, in
    /// [`crate::upstream::Translation`]). A sign-in reports a refusal here
    /// only once its redirect_uri is trusted and the request itself
    /// checked, which is why it is carried, not returned.
    pub scope: Result<String, ScopeRefused>,
}

/// None of the requested scopes is within the client's ceiling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("none of the requested scopes is allowed for this client")]
pub struct ScopeRefused;

/// Why a client is not admitted. Each entrance maps this to its wire once.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The client_id is not a valid CIMD client identifier.
    #[error(transparent)]
    InvalidClientId(ClientIdError),
    /// The document could not be fetched or is invalid, or its statement
    /// does not verify.
    #[error("{error}")]
    Client {
        /// The client_id, parsed.
        client: ClientIdUrl,
        /// Why.
        error: ClientError,
    },
    /// The operator's policy denies the client.
    #[error("the operator's policy denies this client")]
    Denied(Box<Denied>),
    /// A registration client_id that does not open (or registration is off).
    #[error("{0}")]
    Registration(RegistrationRefused),
    /// The requested redirect_uri is not one the document lists.
    #[error("the redirect_uri is not listed in the client's metadata document")]
    RedirectUriNotRegistered(Box<Client>),
    /// The request names no redirect_uri and the document lists several.
    #[error("redirect_uri is required: the client lists several")]
    RedirectUriRequired(Box<Client>),
}

/// A client the policy denies, with the decision (`check` reports both).
#[derive(Debug)]
pub struct Denied {
    /// The client.
    pub client: Client,
    /// The decision, whose action is deny.
    pub decision: Decision,
}

impl Refusal {
    /// The stable error code of a refusal of the client itself; `None` for
    /// a redirect_uri the request got wrong.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Refusal::InvalidClientId(error) => Some(error.code()),
            Refusal::Client { error, .. } => Some(error.code()),
            Refusal::Denied(_) => Some(ErrorCode::PolicyDenied),
            Refusal::Registration(_) => Some(ErrorCode::InvalidRegistration),
            Refusal::RedirectUriNotRegistered(_) | Refusal::RedirectUriRequired(_) => None,
        }
    }

    /// The audit outcome and metric label: the error code, or the OAuth
    /// name of the redirect problem.
    pub fn outcome(&self) -> &'static str {
        match self {
            Refusal::RedirectUriNotRegistered(_) => "redirect_uri_mismatch",
            Refusal::RedirectUriRequired(_) => "invalid_request",
            other => other.code().map_or("invalid_request", ErrorCode::as_str),
        }
    }

    /// The client_id's host, once the client_id parsed.
    pub fn host(&self) -> Option<&str> {
        match self {
            Refusal::InvalidClientId(_) | Refusal::Registration(_) => None,
            Refusal::Client { client, .. } => Some(host_of(client)),
            Refusal::Denied(denied) => Some(denied.client.host()),
            Refusal::RedirectUriNotRegistered(client) | Refusal::RedirectUriRequired(client) => {
                Some(client.host())
            }
        }
    }
}

/// A relayed client as admission sees it: the configuration's metadata.
fn configured(relayed: &RelayedClient) -> Client {
    let metadata = ClientMetadata::configured(
        relayed.client_id(),
        relayed.redirect_uris.clone(),
        relayed.client_name.clone(),
    );
    Client {
        origin: Origin::Relayed,
        metadata: Arc::new(metadata),
        statement: None,
    }
}

fn host_of(client: &ClientIdUrl) -> &str {
    client.host_str()
}

impl<'a> Admission<'a> {
    /// Admission over these components.
    pub fn new(
        cache: &'a DocumentCache,
        trust: &'a Trust,
        policy: &'a Policy,
        upstream_clients: &'a BTreeMap<String, UpstreamClient>,
        relayed_clients: &'a [RelayedClient],
    ) -> Self {
        Admission {
            cache,
            trust,
            policy,
            upstream_clients,
            relayed_clients,
            logos: None,
            registrations: None,
        }
    }

    /// The same admission, handing the logo of every client the policy
    /// allows to `logos` when its document has just been fetched, so the
    /// consent page finds it without waiting on the logo's host.
    pub fn prefetching_logos(self, logos: &'a LogoCache) -> Self {
        Admission {
            logos: Some(logos),
            ..self
        }
    }

    /// The relayed pre-registered client with this client_id, if the
    /// operator listed one; any other non-URL client_id is passed through.
    pub fn relayed(&self, client_id: &str) -> Option<&'a RelayedClient> {
        self.relayed_clients
            .iter()
            .find(|relayed| relayed.client_id() == client_id)
    }

    /// Admission that also opens registration client_ids.
    #[must_use]
    pub fn with_registrations(mut self, registrations: Registrations<'a>) -> Self {
        self.registrations = Some(registrations);
        self
    }

    /// Admits `client_id` for what `ask` describes, or says why not.
    ///
    /// # Errors
    ///
    /// A [`Refusal`], checked in this order: the identifier, the document,
    /// the statement, the policy, then the redirect_uri.
    pub async fn admit(&self, client_id: &str, ask: Ask<'_>) -> Result<Admitted<'a>, Refusal> {
        let relayed = self.relayed(client_id);
        let client = match relayed {
            Some(relayed) => configured(relayed),
            None => self.look_up(client_id).await?,
        };
        let decision = match client.id() {
            Some(id) => self
                .policy
                .decide(id, &client.metadata, client.vouched_by()),
            None if client.is_registration() => self
                .policy
                .decide_registered(&client.metadata, client.vouched_by()),
            // The operator listed it: allow, no ceiling (its registration
            // at the provider is its ceiling), no rule.
            None => Decision {
                action: Action::Allow,
                upstream_client: None,
                scopes: None,
                reasons: Vec::new(),
            },
        };
        if decision.action == Action::Deny {
            return Err(Refusal::Denied(Box::new(Denied { client, decision })));
        }
        if decision.action == Action::Allow {
            self.prefetch_logo(&client);
        }
        let redirect_uri = match ask.redirect_uri {
            RedirectAsk::NotAsked => None,
            RedirectAsk::Asked(Some(requested)) => {
                match RedirectUri::registered(&client.metadata, requested) {
                    Some(uri) => Some(uri),
                    None => return Err(Refusal::RedirectUriNotRegistered(Box::new(client))),
                }
            }
            RedirectAsk::Asked(None) => match RedirectUri::only(&client.metadata) {
                Some(uri) => Some(uri),
                None => return Err(Refusal::RedirectUriRequired(Box::new(client))),
            },
        };
        let upstream = match relayed {
            // Its own registration at the provider.
            Some(relayed) => Some(Upstream {
                name: relayed.client_id(),
                client: &relayed.registration,
            }),
            None => self.upstream_for(decision.upstream_client.as_deref()),
        };
        let scope = within_ceiling(ask.scope, decision.scopes.as_deref());
        Ok(Admitted {
            client,
            decision,
            upstream,
            redirect_uri,
            scope,
        })
    }

    /// The document (from the cache when fresh) and the statement's verdict.
    async fn look_up(&self, client_id: &str) -> Result<Client, Refusal> {
        if is_registered_client_id(client_id) {
            let registrations = self
                .registrations
                .ok_or(Refusal::Registration(RegistrationRefused::NotServed))?;
            let registration = registrations
                .open(client_id)
                .map_err(Refusal::Registration)?;
            return Ok(Client {
                metadata: Arc::clone(&registration.metadata),
                statement: None,
                origin: Origin::Registration(registration),
            });
        }
        let resolved = match self.cache.cached(client_id) {
            Some(resolved) => resolved,
            None => {
                let parsed = ClientIdUrl::parse(client_id).map_err(Refusal::InvalidClientId)?;
                match self.cache.resolve(&parsed).await {
                    Ok(resolved) => resolved,
                    Err(error) => {
                        return Err(Refusal::Client {
                            client: parsed,
                            error: error.into(),
                        });
                    }
                }
            }
        };
        let document = Arc::clone(&resolved.document);
        let (metadata, statement) = self
            .trust
            .vet(document.client_id(), Arc::clone(&document.metadata))
            .await
            .map_err(|error| Refusal::Client {
                client: document.client_id().clone(),
                error,
            })?;
        Ok(Client {
            origin: Origin::Document(resolved),
            metadata,
            statement,
        })
    }

    /// Queues the logo of an allowed client whose document was just fetched,
    /// to be held as long as the document. A cache hit queues nothing: the
    /// logo was queued when that document was fetched.
    fn prefetch_logo(&self, client: &Client) {
        let (Some(logos), Some(resolved)) = (self.logos, client.document()) else {
            return;
        };
        let fetched = matches!(
            resolved.status,
            CacheStatus::Miss | CacheStatus::Coalesced | CacheStatus::Revalidated
        );
        if !fetched {
            return;
        }
        if let Some(url) = client
            .metadata
            .logo_uri
            .as_deref()
            .and_then(|uri| url::Url::parse(uri).ok())
        {
            logos.prefetch(&url, resolved.document.held_until());
        }
    }

    /// The upstream client a decision maps onto: the named one, or the only
    /// one configured.
    fn upstream_for(&self, named: Option<&str>) -> Option<Upstream<'a>> {
        let clients = self.upstream_clients;
        let (name, client) = match named {
            Some(name) => clients.get_key_value(name)?,
            None if clients.len() == 1 => clients.iter().next()?,
            None => return None,
        };
        Some(Upstream { name, client })
    }
}

/// The scopes granted for `requested`: those within the rule's `ceiling`
/// (all of them without one), each once. Sign-in and refresh both cut here.
///
/// # Errors
///
/// [`ScopeRefused`] when scopes were asked for and none is within the ceiling.
pub fn within_ceiling(
    requested: Option<&str>,
    ceiling: Option<&[String]>,
) -> Result<String, ScopeRefused> {
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
        return Err(ScopeRefused);
    }
    let mut seen = BTreeSet::new();
    granted.retain(|scope| seen.insert(*scope));
    Ok(granted.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::egress::Egress;

    /// The components admission consults, from a configuration.
    struct Parts {
        config: Config,
        cache: DocumentCache,
        trust: Trust,
        policy: Policy,
    }

    impl Parts {
        fn new(toml: &str) -> Parts {
            let config = Config::from_toml_str(toml, None).expect("valid config");
            let egress = Arc::new(Egress::new(&config.fetch, Vec::new()).expect("egress"));
            Parts {
                cache: DocumentCache::new(Arc::clone(&egress), config.cache.clone()),
                trust: Trust::new(&config.trust, egress).expect("no issuers to read"),
                policy: Policy::new(config.policy.clone()),
                config,
            }
        }

        fn admission(&self) -> Admission<'_> {
            Admission::new(
                &self.cache,
                &self.trust,
                &self.policy,
                &self.config.upstream.clients,
                &self.config.upstream.relayed_clients,
            )
        }
    }

    const TWO_CLIENTS: &str = r#"
        [upstream.clients.main]
        client_id = "proxy-app"
        auth_method = "none"
        [upstream.clients.other]
        client_id = "other-app"
        auth_method = "none"
    "#;

    #[test]
    fn scopes_are_cut_to_the_ceiling_each_once() {
        let ceiling = ["openid".to_owned(), "mcp:tools".to_owned()];
        assert_eq!(
            within_ceiling(Some("openid admin mcp:tools openid"), Some(&ceiling)),
            Ok("openid mcp:tools".to_owned())
        );
        assert_eq!(
            within_ceiling(Some("admin"), Some(&ceiling)),
            Err(ScopeRefused)
        );
        // No ceiling: everything asked for; nothing asked: nothing refused.
        assert_eq!(within_ceiling(Some("a  b"), None), Ok("a b".to_owned()));
        assert_eq!(within_ceiling(None, Some(&ceiling)), Ok(String::new()));
    }

    #[test]
    fn a_decision_maps_onto_the_named_or_the_only_upstream_client() {
        let parts = Parts::new(TWO_CLIENTS);
        let admission = parts.admission();
        assert_eq!(admission.upstream_for(Some("other")).unwrap().name, "other");
        // A stale name, or no name among several: none, and a sign-in stops.
        assert!(admission.upstream_for(Some("gone")).is_none());
        assert!(admission.upstream_for(None).is_none());
        let single = Parts::new(
            "[upstream.clients.main]\nclient_id = \"proxy-app\"\nauth_method = \"none\"\n",
        );
        let only = single.admission().upstream_for(None).unwrap();
        assert_eq!(only.name, "main");
        assert_eq!(only.client.client_id, "proxy-app");
    }

    #[tokio::test]
    async fn an_invalid_client_id_is_refused_before_any_fetch() {
        let parts = Parts::new(TWO_CLIENTS);
        for client_id in ["http://app.example/c", "https://App.example/c", "https://"] {
            let refusal = parts
                .admission()
                .admit(client_id, Ask::default())
                .await
                .expect_err("refused");
            assert!(matches!(refusal, Refusal::InvalidClientId(_)), "{refusal}");
            assert_eq!(refusal.code(), Some(ErrorCode::InvalidClientIdUrl));
            assert_eq!(refusal.outcome(), "invalid_client_id_url");
            // The host of a client_id that did not parse is never shown.
            assert_eq!(refusal.host(), None);
        }
        assert_eq!(parts.cache.entry_count(), 0);
    }

    #[tokio::test]
    async fn a_relayed_client_is_admitted_from_configuration_without_a_fetch() {
        let parts = Parts::new(&format!(
            "{TWO_CLIENTS}\n[[upstream.relayed_clients]]\nclient_id = \"desktop-app\"\n\
             redirect_uris = [\"http://127.0.0.1/cb\"]\n"
        ));
        let admission = parts.admission();
        let ask = |uri| Ask {
            redirect_uri: RedirectAsk::Asked(uri),
            scope: Some("openid"),
        };
        let admitted = admission
            .admit("desktop-app", ask(Some("http://127.0.0.1:8123/cb")))
            .await
            .expect("admitted");
        assert!(matches!(admitted.client.origin, Origin::Relayed));
        assert!(admitted.client.id().is_none());
        assert_eq!(admitted.client.host(), "desktop-app");
        assert_eq!(admitted.decision.action, Action::Allow);
        // Its own registration is its upstream client, whatever the policy says.
        let upstream = admitted.upstream.expect("an upstream client");
        assert_eq!(upstream.name, "desktop-app");
        assert_eq!(upstream.client.client_id, "desktop-app");
        assert_eq!(upstream.redirect_mode(), RedirectMode::Relay);
        assert_eq!(
            admitted.redirect_uri.as_ref().map(RedirectUri::as_str),
            Some("http://127.0.0.1:8123/cb")
        );
        assert_eq!(admitted.scope, Ok("openid".to_owned()));
        // A redirect_uri it does not list is refused as a document's would be.
        let refusal = admission
            .admit("desktop-app", ask(Some("https://attacker.example/cb")))
            .await
            .expect_err("refused");
        assert!(matches!(refusal, Refusal::RedirectUriNotRegistered(_)));
        assert_eq!(refusal.host(), Some("desktop-app"));
        // Another non-URL client_id is no relayed client: not admitted here.
        assert!(admission.relayed("legacy-app").is_none());
        let refusal = admission
            .admit("legacy-app", ask(None))
            .await
            .expect_err("refused");
        assert!(matches!(refusal, Refusal::InvalidClientId(_)));
        assert_eq!(parts.cache.entry_count(), 0, "nothing was fetched");
    }

    #[tokio::test]
    async fn a_registration_is_opened_only_where_registrations_are_served() {
        let parts = Parts::new(&format!("{TWO_CLIENTS}\n[registration]\nenabled = true\n"));
        let sealer = crate::seal::Sealer::new(vec![[7; 32]]).unwrap();
        let registrar = crate::registration::Registrar::new(&parts.config.registration).unwrap();
        let body = br#"{"redirect_uris":["https://agent.example/cb"],"client_name":"Agent"}"#;
        let registered = registrar
            .register(&sealer, body, None, crate::registration::unix_now())
            .unwrap();
        let ask = Ask {
            redirect_uri: RedirectAsk::Asked(None),
            ..Ask::default()
        };
        // `check` and the gate build admission without registrations.
        let refusal = parts
            .admission()
            .admit(&registered.client_id, ask)
            .await
            .expect_err("refused");
        assert!(matches!(refusal, Refusal::Registration(_)), "{refusal}");
        assert_eq!(refusal.code(), Some(ErrorCode::InvalidRegistration));

        let registrations =
            crate::registration::Registrations::new(&sealer, &parts.config.registration);
        let admitted = parts
            .admission()
            .with_registrations(registrations)
            .admit(&registered.client_id, ask)
            .await
            .expect("admitted");
        assert!(admitted.client.is_registration());
        assert_eq!(admitted.client.id(), None);
        assert_eq!(admitted.client.client_id(), registered.client_id);
        assert_eq!(admitted.client.host(), "agent.example");
        assert_eq!(admitted.decision.action, Action::Warn);
        assert_eq!(
            admitted.redirect_uri.as_ref().map(RedirectUri::as_str),
            Some("https://agent.example/cb")
        );
        // Nothing was fetched or cached for it.
        assert_eq!(parts.cache.entry_count(), 0);
    }
}
