//! The admin listener: liveness, readiness and Prometheus metrics.
//! It is separate from the public listener so that it can stay off the
//! Service that faces the internet.
//!
//! Liveness only says the process answers. Readiness says it can do its
//! job: configuration loaded, listeners bound (both are true once this
//! router serves), and the provider's discovery document refreshable. A
//! provider outage turns readiness false without failing liveness, so
//! Kubernetes stops routing to the pod instead of restarting it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::upstream::Provider;

/// How often the provider's metadata is refreshed to decide readiness.
pub const READINESS_REFRESH: Duration = Duration::from_secs(30);

/// What `/readyz` reports; shared with the refresh task.
#[derive(Debug)]
pub struct Readiness {
    provider_reachable: AtomicBool,
}

impl Readiness {
    /// Ready: the server starts only after discovery succeeded.
    pub fn new() -> Arc<Readiness> {
        Arc::new(Readiness {
            provider_reachable: AtomicBool::new(true),
        })
    }

    /// Whether the last discovery refresh succeeded.
    pub fn is_ready(&self) -> bool {
        self.provider_reachable.load(Ordering::Relaxed)
    }

    /// Refreshes the provider's metadata forever, recording the outcome.
    /// `current` is asked for the provider each time: a reload may replace it.
    pub async fn watch_provider(self: Arc<Self>, current: impl Fn() -> Arc<Provider>) {
        let mut ticks = tokio::time::interval(READINESS_REFRESH);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let provider = current();
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

/// Refreshes gauges that are cheaper to read at scrape time than to keep
/// current on every request (the cache's entry count).
pub type ScrapeHook = Arc<dyn Fn() + Send + Sync>;

#[derive(Clone)]
struct AdminState {
    readiness: Arc<Readiness>,
    before_scrape: ScrapeHook,
}

/// The admin routes.
pub fn router(readiness: Arc<Readiness>, before_scrape: ScrapeHook) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(AdminState {
            readiness,
            before_scrape,
        })
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
    if admin.readiness.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the provider's discovery document cannot be refreshed\n",
        )
    }
}
