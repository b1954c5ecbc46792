//! The admin listener: liveness, readiness, Prometheus metrics, and the
//! operator's view of clients (the inventory's API in `api`, its page in
//! `page`, the token in `auth`). It is separate from the public listener
//! so that it can stay off the Service that faces the internet.
//!
//! Liveness only says the process answers. Readiness says it can do its
//! job: configuration loaded, listeners bound (both are true once this
//! router serves), the provider's discovery document refreshable (every
//! `upstream.discovery_refresh_s`), the shared store answering (pinged
//! every [`STORE_PING_INTERVAL`]; always true for the memory backend), and
//! no shutdown under way. A provider
//! outage turns readiness false without failing liveness, so Kubernetes
//! stops routing to the pod instead of restarting it; so does the drain
//! after SIGTERM, for load balancers that only look at `/readyz`.

mod api;
mod auth;
mod page;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};

pub use api::{
    Action, AdminError, ClientsAdmin, InvalidateReport, RefreshReport, Step, parse_list_query,
};
pub use auth::{AdminConfig, AdminToken, AdminTokenError, MIN_TOKEN_LEN};

use crate::store::Store;
use crate::upstream::IdentityProvider;

/// How often the shared store is pinged for `/readyz`: often enough that a
/// Redis outage turns readiness false (and its return true) within seconds.
pub const STORE_PING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// What `/readyz` reports; shared with the refresh task.
#[derive(Debug)]
pub struct Readiness {
    provider_reachable: AtomicBool,
    store_reachable: AtomicBool,
    draining: AtomicBool,
}

impl Readiness {
    /// Ready: the server starts only after discovery succeeded.
    pub fn new() -> Arc<Readiness> {
        Arc::new(Readiness {
            provider_reachable: AtomicBool::new(true),
            store_reachable: AtomicBool::new(true),
            draining: AtomicBool::new(false),
        })
    }

    /// Why the proxy is not ready, if it is not.
    fn not_ready(&self) -> Option<&'static str> {
        if self.draining.load(Ordering::Relaxed) {
            Some("not ready: shutting down\n")
        } else if !self.provider_reachable.load(Ordering::Relaxed) {
            Some("not ready: the provider's discovery document cannot be refreshed\n")
        } else if !self.store_reachable.load(Ordering::Relaxed) {
            Some("not ready: the shared store does not answer\n")
        } else {
            None
        }
    }

    /// From now on `/readyz` says the proxy is shutting down.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Refreshes the provider's metadata forever, recording the outcome.
    /// `current` is asked for the provider and the interval
    /// (`upstream.discovery_refresh_s`) in force each round: a reload may
    /// replace either.
    pub async fn watch_provider(
        self: Arc<Self>,
        current: impl Fn() -> (Arc<dyn IdentityProvider>, std::time::Duration),
    ) {
        loop {
            let (_, interval) = current();
            tokio::time::sleep(interval).await;
            let (provider, _) = current();
            let ok = match provider.refresh_metadata().await {
                Ok(()) => true,
                Err(error) => {
                    tracing::warn!(%error, "cannot refresh the provider's discovery document; not ready");
                    false
                }
            };
            if self.provider_reachable.swap(ok, Ordering::Relaxed) != ok && ok {
                tracing::info!("provider discovery refreshed again; ready");
            }
        }
    }
}

impl Readiness {
    /// Pings the shared store forever, every [`STORE_PING_INTERVAL`],
    /// recording the outcome; the first ping is at once, so a Redis that is
    /// down at start turns readiness false without waiting. `current` is
    /// asked for the store in force each round.
    pub async fn watch_store(self: Arc<Self>, current: impl Fn() -> Arc<Store>) {
        loop {
            let ok = match current().ping().await {
                Ok(()) => true,
                Err(error) => {
                    tracing::warn!(%error, "the shared store does not answer; not ready");
                    false
                }
            };
            if self.store_reachable.swap(ok, Ordering::Relaxed) != ok && ok {
                tracing::info!("the shared store answers again; ready");
            }
            tokio::time::sleep(STORE_PING_INTERVAL).await;
        }
    }
}

/// Refreshes gauges that are cheaper to read at scrape time than to keep
/// current on every request (the cache's entry count).
pub type ScrapeHook = Arc<dyn Fn() + Send + Sync>;

#[derive(Clone)]
struct AdminState {
    readiness: Arc<Readiness>,
    before_scrape: ScrapeHook,
}

/// The admin routes.
pub fn router(
    readiness: Arc<Readiness>,
    before_scrape: ScrapeHook,
    clients: ClientsAdmin,
) -> Router {
    let clients = Router::new()
        .route("/", get(page::clients))
        .route("/client", get(page::client))
        .route("/client/action", post(page::action))
        .route("/clients", get(api::list))
        .route("/clients/{id}", get(api::show))
        .route("/clients/{id}/refresh", post(api::refresh))
        .route("/clients/{id}/invalidate", post(api::invalidate))
        .with_state(clients);
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(AdminState {
            readiness,
            before_scrape,
        })
        .merge(clients)
        .fallback(|| async { StatusCode::NOT_FOUND })
}

async fn metrics(State(admin): State<AdminState>) -> impl axum::response::IntoResponse {
    (admin.before_scrape)();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::METRICS.render(),
    )
}

async fn readyz(State(admin): State<AdminState>) -> (StatusCode, &'static str) {
    match admin.readiness.not_ready() {
        None => (StatusCode::OK, "ready\n"),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason),
    }
}
