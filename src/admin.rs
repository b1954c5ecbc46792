//! The admin listener: liveness now; metrics and readiness join it later.
//! It is separate from the public listener so that it can stay off the
//! Service that faces the internet.

use axum::Router;
use axum::routing::get;

/// The admin routes.
pub fn router() -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(|| async { axum::http::StatusCode::NOT_FOUND })
}
