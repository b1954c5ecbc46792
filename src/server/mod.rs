//! The public listener: discovery, `/authorize`, `/callback`, `/token`,
//! `/jwks.json`, and protected resource metadata.
//!
//! Handlers live one per file; this module holds the shared state, the
//! routes, and the HTTP/1.1 listener with its ingress limits (request head
//! size and read time, parameter size).

mod audit;
pub(crate) use audit::short as audit_short;
mod authorize;
mod callback;
pub(crate) mod consent;
mod discovery;
pub(crate) mod interstitial;
pub(crate) mod listener;
pub mod oauth;
pub mod pages;
pub(crate) mod params;
mod register;
pub mod reload;
mod request_id;
mod revoke;
mod token;

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::{PoisonError, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequestParts, RawQuery};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};

use crate::admission::{Admission, Ask};
use crate::cache::DocumentCache;
use crate::client_auth::{ClientAuthLimits, ClientAuthenticator};
use crate::config::Config;
use crate::egress::{self, Egress, EgressSetupError};
use crate::flow::Seals;
use crate::id_token::{SigningKeys, SigningSetupError};
use crate::logo::LogoCache;
use crate::policy::Policy;
use crate::registration::{Registrar, RegistrationSetupError, Registrations};
use crate::seal::{SealSetupError, Sealer};
use crate::store::{Store, StoreSetupError};
use crate::trust::{Trust, TrustSetupError};
use crate::upstream::{IdentityProvider, Provider, RedirectMode, UpstreamError};
pub use listener::{Listeners, Served, bind, bind_one};
use pages::{PageReason, error_page};
use params::{MAX_PARAMS_BYTES, Params};

/// Everything a request handler needs, shared by all requests.
pub struct AppState {
    /// The validated configuration.
    pub config: Config,
    /// The proxy's issuer identifier: `server.public_url` without a trailing slash.
    pub issuer: String,
    /// Client documents (kept across reloads).
    pub cache: Arc<DocumentCache>,
    /// The operator's policy.
    pub policy: Policy,
    /// Seals state, codes and refresh tokens.
    pub sealer: Sealer,
    /// The identity provider: the discovered [`Provider`], or in tests an
    /// in-process one.
    pub provider: Arc<dyn IdentityProvider>,
    /// `private_key_jwt` verification (kept across reloads: its key sets
    /// and its view of the store).
    pub client_auth: Arc<ClientAuthenticator>,
    /// The proxy's id_token keys.
    pub signing: SigningKeys,
    /// The shared store (`[store]`): `jti`s, consent tokens and states
    /// spent once, refresh families. Kept across reloads: a reload must not
    /// make a used value usable again, nor drop the Redis connection.
    pub store: Arc<Store>,
    /// Logos of allowed clients (kept across reloads).
    pub logos: Arc<LogoCache>,
    /// The issuers whose software statements vouch for clients (their
    /// fetched key sets are kept across reloads).
    pub trust: Trust,
    /// The clients seen, in the shared store (kept across reloads).
    pub inventory: crate::inventory::Inventory,
    /// The admin API's token, read at start (kept across reloads).
    pub admin_token: Option<Arc<crate::admin::AdminToken>>,
    /// The dynamic registration endpoint (`[registration]`), with its
    /// initial access token read.
    pub registrar: Registrar,
}

/// The state in force. A reload swaps it; a request in flight keeps the
/// state it started with, so nothing is dropped or half-applied.
pub struct Shared {
    current: RwLock<Arc<AppState>>,
}

impl Shared {
    /// Wraps the first state.
    pub fn new(state: AppState) -> Arc<Shared> {
        Arc::new(Shared {
            current: RwLock::new(Arc::new(state)),
        })
    }

    /// The state in force now.
    pub fn current(&self) -> Arc<AppState> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts `state` in force for every request from now on.
    pub fn replace(&self, state: AppState) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(state);
    }
}

/// Extracts the state in force when the request arrived.
struct Current(Arc<AppState>);

impl FromRequestParts<Arc<Shared>> for Current {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        _parts: &mut axum::http::request::Parts,
        shared: &Arc<Shared>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Current(shared.current()))
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration lacks what serving needs.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The fetcher could not be built.
    #[error(transparent)]
    Egress(#[from] EgressSetupError),
    /// The sealing keys could not be read.
    #[error(transparent)]
    Seal(#[from] SealSetupError),
    /// The signing keys could not be read.
    #[error(transparent)]
    Signing(#[from] SigningSetupError),
    /// A trust issuer's key file could not be used.
    #[error(transparent)]
    Trust(#[from] TrustSetupError),
    /// The registration endpoint's initial access token could not be read.
    #[error(transparent)]
    Registration(#[from] RegistrationSetupError),
    /// The shared store could not be set up (its URL unreadable or invalid).
    #[error(transparent)]
    Store(#[from] StoreSetupError),
    /// The admin token could not be read.
    #[error("admin: {0}")]
    AdminToken(#[from] crate::admin::AdminTokenError),
    /// The provider could not be discovered or its credentials loaded.
    #[error("upstream: {0}")]
    Upstream(#[from] UpstreamError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

impl AppState {
    /// Builds the state from a configuration: reads keys, discovers the
    /// provider, and sets up the fetcher. Fails before any port is bound.
    pub async fn build(config: Config) -> Result<AppState, ServeError> {
        config.require_serve()?;
        let (Some(public_url), Some(seal_keys)) = (&config.server.public_url, &config.seal.keys)
        else {
            // Unreachable: require_serve has just checked both.
            return Err(crate::config::ConfigError::Invalid(Vec::new()).into());
        };
        let issuer = public_url.as_str().trim_end_matches('/').to_owned();
        let sealer = Sealer::from_source(seal_keys)?;
        let signing = match &config.signing.keys_file {
            Some(path) => SigningKeys::load(path)?,
            None => {
                tracing::warn!(
                    "no [signing] keys_file: id_tokens are signed with an ephemeral key that \
                     does not survive a restart and is not shared between replicas"
                );
                SigningKeys::generate_ephemeral()?
            }
        };
        let admin_token = match &config.admin.token {
            Some(source) => Some(Arc::new(crate::admin::AdminToken::read(source)?)),
            None => None,
        };
        let provider = Provider::discover(&config.upstream).await?;
        let egress = Arc::new(Egress::new(&config.fetch, egress::local_addresses())?);
        let store = Arc::new(Store::connect(&config.store)?);
        let client_auth = ClientAuthenticator::new(
            Arc::clone(&egress),
            // The token endpoint's and the revocation endpoint's own URLs,
            // as RFC 7523 §3 lets a client address either it posts to.
            vec![
                issuer.clone(),
                format!("{issuer}/token"),
                format!("{issuer}/revoke"),
            ],
            ClientAuthLimits::default(),
            Arc::clone(&store),
        );
        Ok(AppState {
            inventory: crate::inventory::Inventory::new(
                Arc::clone(&store),
                config.inventory.clone(),
            ),
            admin_token,
            registrar: Registrar::new(&config.registration)?,
            logos: Arc::new(LogoCache::new(Arc::clone(&egress))),
            trust: Trust::new(&config.trust, Arc::clone(&egress))?,
            store,
            cache: Arc::new(DocumentCache::new(egress, config.cache.clone())),
            policy: Policy::new(config.policy.clone()),
            issuer,
            sealer,
            provider: Arc::new(provider),
            client_auth: Arc::new(client_auth),
            signing,
            config,
        })
    }

    /// The state a new configuration gives, keeping what must survive a
    /// reload: the document cache, the shared store (a reload must not
    /// make a used `jti`, consent token or state usable again, nor forget a
    /// refresh family), the logo cache. Keys, the policy and the provider
    /// (with its credentials) are read anew. Listeners, the public URL,
    /// `[fetch]`, `[cache]`, `[store]` and `[resource]` take effect only on
    /// restart; a change there is logged and
    /// the running values are kept.
    pub async fn reloaded(&self, mut config: Config) -> Result<AppState, ServeError> {
        config.require_serve()?;
        let Some(seal_keys) = &config.seal.keys else {
            // Unreachable: require_serve has just checked it.
            return Err(crate::config::ConfigError::Invalid(Vec::new()).into());
        };
        let sealer = Sealer::from_source(seal_keys)?;
        let signing = match &config.signing.keys_file {
            Some(path) => SigningKeys::load(path)?,
            None if self.config.signing.keys_file.is_none() => self.signing.clone(),
            None => SigningKeys::generate_ephemeral()?,
        };
        let provider = Provider::discover(&config.upstream).await?;
        let restart_only = [
            ("server", config.server != self.config.server),
            ("fetch", config.fetch != self.config.fetch),
            ("cache", config.cache != self.config.cache),
            ("resource", config.resource != self.config.resource),
            ("store", config.store != self.config.store),
            ("gate", config.gate != self.config.gate),
            ("inventory", config.inventory != self.config.inventory),
            ("admin", config.admin != self.config.admin),
        ];
        for (section, changed) in restart_only {
            if changed {
                tracing::warn!(section, "this section changed; it takes effect on restart");
            }
        }
        config.server = self.config.server.clone();
        config.fetch = self.config.fetch.clone();
        config.cache = self.config.cache.clone();
        config.resource = self.config.resource.clone();
        // The RFC 8707 allow-list is [resource]'s, so it waits for the restart too.
        config.upstream.translation.allowed_resources =
            self.config.upstream.translation.allowed_resources.clone();
        config.store = self.config.store.clone();
        config.gate = self.config.gate.clone();
        config.inventory = self.config.inventory.clone();
        config.admin = self.config.admin.clone();
        Ok(AppState {
            inventory: self.inventory.clone(),
            admin_token: self.admin_token.clone(),
            registrar: Registrar::new(&config.registration)?,
            issuer: self.issuer.clone(),
            cache: Arc::clone(&self.cache),
            policy: Policy::new(config.policy.clone()),
            sealer,
            provider: Arc::new(provider),
            client_auth: Arc::clone(&self.client_auth),
            signing,
            store: Arc::clone(&self.store),
            logos: Arc::clone(&self.logos),
            trust: self.trust.reconfigured(&config.trust)?,
            config,
        })
    }

    /// The relay callback the provider redirects to.
    pub fn callback_url(&self) -> String {
        format!("{}/callback", self.issuer)
    }

    /// The one admission path for clients, over this state's cache, trust,
    /// policy and upstream clients.
    pub fn admission(&self) -> Admission<'_> {
        Admission::new(
            &self.cache,
            &self.trust,
            &self.policy,
            &self.config.upstream.clients,
            &self.config.upstream.relayed_clients,
        )
        .with_registrations(Registrations::new(&self.sealer, &self.config.registration))
    }

    /// The admission path of the relay's sign-ins and `/logo`: as
    /// [`AppState::admission`], and the logo of a client the policy allows
    /// is prefetched when its document is fetched, for its consent page.
    pub fn admission_with_logos(&self) -> Admission<'_> {
        self.admission().prefetching_logos(&self.logos)
    }

    /// Seals and opens the flow's payloads under this state's keys and
    /// configured lifetimes.
    pub fn seals(&self) -> Seals<'_> {
        Seals::new(&self.sealer, &self.config.seal)
    }

    fn upstream_mode(&self, name: &str) -> RedirectMode {
        self.config
            .upstream
            .clients
            .get(name)
            .map_or(RedirectMode::Relay, |client| client.redirect_mode)
    }

    /// The path part of the public URL, without a trailing slash.
    fn path_prefix(&self) -> String {
        self.config
            .server
            .public_url
            .as_ref()
            .map(|url| url.path().trim_end_matches('/').to_owned())
            .unwrap_or_default()
    }
}

/// The public routes. Endpoints answer under the public URL's path and at
/// the root, for clients that build `/authorize` from the origin.
pub fn router(shared: Arc<Shared>) -> Router {
    let state = shared.current();
    let prefix = state.path_prefix();
    let mut router = Router::new();
    let mut seen = BTreeSet::new();
    let mut add = |router: Router<Arc<Shared>>, path: String, route| {
        if seen.insert(path.clone()) {
            router.route(&path, route)
        } else {
            router
        }
    };
    for well_known in ["oauth-authorization-server", "openid-configuration"] {
        for path in discovery::well_known_paths(well_known, &prefix) {
            router = add(router, path, get(metadata));
        }
    }
    if let Some(resource) = &state.config.resource {
        let resource_path = resource.resource.path().trim_end_matches('/').to_owned();
        for path in discovery::well_known_paths("oauth-protected-resource", "")
            .into_iter()
            .chain([format!(
                "/.well-known/oauth-protected-resource{resource_path}"
            )])
        {
            router = add(router, path, get(protected_resource));
        }
    }
    router = add(router, "/".to_owned(), get(root));
    router = add(router, format!("{prefix}/brand-logo"), get(brand_logo));
    for base in [prefix.as_str(), ""] {
        router = add(
            router,
            format!("{base}/authorize"),
            get(authorize_get).post(authorize_post),
        );
        router = add(router, format!("{base}/callback"), get(callback));
        router = add(router, format!("{base}/consent"), post(consent));
        router = add(router, format!("{base}/logo"), get(logo));
        router = add(router, format!("{base}/token"), post(token));
        router = add(router, format!("{base}/revoke"), post(revoke));
        router = add(router, format!("{base}/jwks.json"), get(jwks));
        // Its own body limit (`registration.max_body_bytes`), checked by
        // the handler, so the route takes up to the largest allowed.
        router = add(
            router,
            format!("{base}/register"),
            post(register).layer(DefaultBodyLimit::max(register::MAX_BODY_BYTES)),
        );
    }
    let router = router
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(DefaultBodyLimit::max(MAX_PARAMS_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shared),
            pages::page_context,
        ));
    request_id::layer(router).with_state(shared)
}

async fn root(Current(state): Current) -> Response {
    pages::root_page(&state.issuer)
}

async fn brand_logo(Current(state): Current) -> Response {
    pages::brand_logo(&state.config.pages)
}

async fn metadata(Current(state): Current) -> Response {
    let mut metadata = discovery::authorization_server_metadata(
        &state.issuer,
        &state.provider.metadata(),
        &state.signing.algorithms(),
    );
    if state.config.registration.enabled {
        discovery::add_registration_endpoint(&mut metadata, &state.issuer);
    }
    Json(metadata).into_response()
}

async fn protected_resource(Current(state): Current) -> Response {
    match &state.config.resource {
        Some(resource) => Json(discovery::protected_resource_metadata(
            &state.issuer,
            resource,
        ))
        .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn jwks(Current(state): Current) -> Response {
    Json(state.signing.jwks()).into_response()
}

async fn authorize_get(Current(state): Current, RawQuery(query): RawQuery) -> Response {
    let query = query.unwrap_or_default();
    match Params::parse(query.as_bytes()) {
        Ok(params) => authorize::authorize(state, params, &query).await,
        Err(error) => error_page(PageReason::BadRequest, &error.to_string(), None),
    }
}

async fn authorize_post(Current(state): Current, body: Bytes) -> Response {
    match Params::parse(&body) {
        Ok(params) => {
            let raw = String::from_utf8_lossy(&body).into_owned();
            authorize::authorize(state, params, &raw).await
        }
        Err(error) => error_page(PageReason::BadRequest, &error.to_string(), None),
    }
}

async fn callback(Current(state): Current, RawQuery(query): RawQuery) -> Response {
    match Params::parse(query.unwrap_or_default().as_bytes()) {
        Ok(params) => callback::callback(state, params).await,
        Err(error) => error_page(PageReason::BadRequest, &error.to_string(), None),
    }
}

async fn consent(Current(state): Current, headers: HeaderMap, body: Bytes) -> Response {
    match Params::parse(&body) {
        Ok(params) => consent::decide(state, &headers, params).await,
        Err(error) => error_page(PageReason::BadRequest, &error.to_string(), None),
    }
}

/// `GET /logo?client_id=…`: the logo of a client the policy allows, served
/// from our origin with the type its bytes were verified to be. Only a logo
/// already prefetched is served: this never waits on the logo's host, and
/// a page whose logo is not there (yet) shows the client's initials.
async fn logo(Current(state): Current, RawQuery(query): RawQuery) -> Response {
    let not_found = || StatusCode::NOT_FOUND.into_response();
    let query = query.unwrap_or_default();
    let Ok(params) = Params::parse(query.as_bytes()) else {
        return not_found();
    };
    let Some(client_id) = params.get("client_id") else {
        return not_found();
    };
    let Ok(admitted) = state
        .admission_with_logos()
        .admit(client_id, Ask::default())
        .await
    else {
        return not_found();
    };
    // Untrusted clients never get a logo: a warned one is not vouched for.
    if admitted.decision.action != crate::policy::Action::Allow {
        return not_found();
    }
    let Some(logo) = admitted
        .client
        .metadata
        .logo_uri
        .as_deref()
        .and_then(|uri| state.logos.held(uri))
    else {
        return not_found();
    };
    (
        [
            (axum::http::header::CONTENT_TYPE, logo.content_type),
            (axum::http::header::CACHE_CONTROL, "private, max-age=300"),
            (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (
                axum::http::header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; sandbox",
            ),
        ],
        logo.bytes.clone(),
    )
        .into_response()
}

async fn register(
    Current(state): Current,
    peer: Option<axum::Extension<listener::PeerAddr>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let peer = peer.map(|axum::Extension(listener::PeerAddr(addr))| addr.ip());
    register::register(state, peer, &headers, body).await
}

async fn token(Current(state): Current, headers: HeaderMap, body: Bytes) -> Response {
    token::token(state, headers, body).await
}

async fn revoke(Current(state): Current, headers: HeaderMap, body: Bytes) -> Response {
    revoke::revoke(state, headers, body).await
}

/// Runs the proxy on already bound listeners until `shutdown` resolves,
/// then drains: for `server.drain_s` both listeners keep serving, every
/// response with `Connection: close` and `/readyz` false; then they stop
/// accepting and let requests in flight finish (within a grace period).
pub async fn run(
    shared: Arc<Shared>,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let server = shared.current().config.server.clone();
    let (control, drain) = listener::DrainControl::new();
    let public = tokio::spawn(listener::serve(
        listeners.public,
        router(Arc::clone(&shared)),
        listener::ListenerSettings {
            name: "public",
            max_connections: server.max_connections,
        },
        drain.clone(),
    ));
    let more: Vec<_> = listeners
        .more
        .into_iter()
        .map(|served| {
            tokio::spawn(listener::serve(
                served.listener,
                served.router,
                listener::ListenerSettings {
                    name: served.name,
                    max_connections: server.max_connections,
                },
                drain.clone(),
            ))
        })
        .collect();
    let readiness = crate::admin::Readiness::new();
    let watcher = tokio::spawn(Arc::clone(&readiness).watch_provider({
        let shared = Arc::clone(&shared);
        move || {
            let state = shared.current();
            (
                Arc::clone(&state.provider),
                state.config.upstream.discovery_refresh,
            )
        }
    }));
    let store_watcher = tokio::spawn(Arc::clone(&readiness).watch_store({
        let shared = Arc::clone(&shared);
        move || Arc::clone(&shared.current().store)
    }));
    let clients_admin = {
        let state = shared.current();
        crate::admin::ClientsAdmin {
            inventory: state.inventory.clone(),
            cache: Arc::clone(&state.cache),
            logos: Arc::clone(&state.logos),
            client_auth: Arc::clone(&state.client_auth),
            token: state.admin_token.clone(),
            protect_reads: state.config.admin.protect_reads,
        }
    };
    let admin = tokio::spawn(listener::serve(
        listeners.admin,
        crate::admin::router(
            Arc::clone(&readiness),
            {
                let shared = Arc::clone(&shared);
                Arc::new(move || {
                    let entries = shared.current().cache.entry_count();
                    crate::metrics::METRICS
                        .cache_entries
                        .set(i64::try_from(entries).unwrap_or(i64::MAX));
                })
            },
            clients_admin,
        ),
        listener::ListenerSettings {
            name: "admin",
            max_connections: listener::ADMIN_MAX_CONNECTIONS,
        },
        drain,
    ));
    shutdown.await;
    watcher.abort();
    store_watcher.abort();
    readiness.start_draining();
    control.begin_drain();
    if !server.drain.is_zero() {
        tracing::info!(
            drain_s = server.drain.as_secs(),
            "draining: still serving, every response with Connection: close"
        );
        tokio::time::sleep(server.drain).await;
    }
    tracing::info!("shutting down: no new connections, finishing requests in flight");
    control.stop();
    let _ = tokio::join!(public, admin);
    for served in more {
        let _ = served.await;
    }
    // The last sightings, merged but not yet written.
    shared.current().inventory.flush().await;
}
