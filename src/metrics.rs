//! Prometheus metrics, served on the admin listener at `/metrics`.
//!
//! Every label value comes from a closed set defined in this crate (error
//! codes, range classes, cache statuses, fixed outcome names), never from
//! request data: no client_id, host or URL ever becomes a label, so an
//! outsider cannot grow the number of series. Names are prefixed
//! `cimd_proxy_`. The metrics live in one process-wide registry: there is
//! one proxy per process, and instrumented code needs no plumbing.

use std::sync::LazyLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// How a request reached admission: the `mode` label of the authorization
/// and token series and of the audit lines.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString, strum::VariantNames,
)]
#[strum(serialize_all = "snake_case")]
pub enum Mode {
    /// The proxy is the authorization server clients talk to.
    Relay,
    /// The proxy answers the ingress's external authorization checks in
    /// front of a provider that accepts URL client_ids itself.
    Gate,
}

impl Mode {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Buckets for fetches and provider calls: milliseconds to the deadline.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The proxy's metrics.
pub struct Metrics {
    registry: Registry,
    /// Outbound fetches by kind (`document`, `jwks`, `logo`) and outcome
    /// (`ok` or the stable error code).
    pub fetches: IntCounterVec,
    /// Fetch duration by kind.
    pub fetch_duration: HistogramVec,
    /// Fetches in flight now.
    pub fetches_in_flight: IntGauge,
    /// The cap on fetches in flight (`fetch.max_concurrent_fetches`).
    pub fetch_capacity: IntGauge,
    /// Addresses refused by the block table, by range class.
    pub refused_addresses: IntCounterVec,
    /// Document cache lookups by status.
    pub cache_lookups: IntCounterVec,
    /// Documents held in the cache.
    pub cache_entries: IntGauge,
    /// `/authorize` outcomes.
    pub authorize: IntCounterVec,
    /// `/token` requests by grant type and outcome.
    pub token_requests: IntCounterVec,
    /// Calls to the provider by operation, with their duration.
    pub provider_duration: HistogramVec,
    /// Failed calls to the provider by operation and error kind.
    pub provider_errors: IntCounterVec,
    /// Sealed values that did not open, by purpose and reason.
    pub seal_failures: IntCounterVec,
    /// Configuration reloads by result (`success`, `failure`).
    pub config_reloads: IntCounterVec,
    /// Log lines dropped because the log output was blocked, by kind
    /// (`audit`, `other`).
    pub log_lines_dropped: IntCounterVec,
    /// Shared-store operations that failed (unavailable, timed out, full),
    /// by operation.
    pub store_errors: IntCounterVec,
    /// Token requests whose grant was made under another version of the
    /// client's document, by what `policy.on_metadata_change` did
    /// (`refuse`, `allow`).
    pub metadata_changes: IntCounterVec,
    /// Connections open now, by listener (`public`, `admin`).
    pub connections_open: IntGaugeVec,
    /// Connections that arrived at the cap, by listener and what made room:
    /// `closed_idle` (the connection idle the longest was closed),
    /// `closed_slow_head` (a request head arriving for over 1 s was cut off)
    /// or `waited` (every connection was busy; it waited in the accept queue).
    pub connections_over_limit: IntCounterVec,
    /// Documents served past their expiry because their origin could not be
    /// reached, by the fetch's error code.
    pub stale_served: IntCounterVec,
    /// Answers to the consent page, by outcome: `continue`, `cancel`, or
    /// why the answer was refused (`consent_invalid`, `consent_replayed`, …).
    pub consent_decisions: IntCounterVec,
    /// Background fetches of allowed clients' logos, by outcome
    /// ([`crate::logo::PrefetchOutcome`]).
    pub logo_prefetches: IntCounterVec,
    /// Clients in the inventory (refreshed at scrape time).
    pub inventory_entries: IntGauge,
    /// Inventory entries evicted to stay within `inventory.max_entries`.
    pub inventory_evictions: IntCounter,
    /// Inventory writes that failed (the sign-in went on), by kind.
    pub inventory_write_failures: IntCounterVec,
    /// Admin API actions by kind (`refresh`, `invalidate`) and result.
    pub admin_actions: IntCounterVec,
    build_info: IntGaugeVec,
}

/// The process-wide metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// A metric definition that cannot fail at run time: names and labels are
/// constants, checked by the unit test that builds them.
fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    if let Err(error) = registry.register(Box::new(metric.clone())) {
        tracing::error!(%error, "cannot register a metric");
    }
    metric
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|_| unreachable_metric(name));
    register(registry, metric)
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
    let metric = HistogramVec::new(opts, labels).unwrap_or_else(|_| unreachable_metric(name));
    register(registry, metric)
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let metric = IntGauge::new(name, help).unwrap_or_else(|_| unreachable_metric(name));
    register(registry, metric)
}

/// Metric construction only fails on an invalid name or label, which are
/// constants here; `every_metric_is_exposed` proves they are valid.
fn unreachable_metric(name: &str) -> ! {
    panic!("invalid metric definition: {name}")
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let r = &registry.clone();
        let metrics = Metrics {
            fetches: counter(
                r,
                "cimd_proxy_fetches_total",
                "Outbound fetches by kind and outcome (ok or the stable error code).",
                &["kind", "outcome"],
            ),
            fetch_duration: histogram(
                r,
                "cimd_proxy_fetch_duration_seconds",
                "Outbound fetch duration by kind, from lookup to the last body byte.",
                &["kind"],
            ),
            fetches_in_flight: gauge(
                r,
                "cimd_proxy_fetches_in_flight",
                "Outbound fetches in flight now.",
            ),
            fetch_capacity: gauge(
                r,
                "cimd_proxy_fetch_capacity",
                "The cap on outbound fetches in flight (fetch.max_concurrent_fetches).",
            ),
            refused_addresses: counter(
                r,
                "cimd_proxy_refused_addresses_total",
                "Addresses refused by the block table, by range class.",
                &["range_class"],
            ),
            cache_lookups: counter(
                r,
                "cimd_proxy_cache_lookups_total",
                "Document cache lookups by status (hit, miss, coalesced, revalidated).",
                &["status"],
            ),
            cache_entries: gauge(
                r,
                "cimd_proxy_cache_entries",
                "Client metadata documents held in the cache.",
            ),
            authorize: counter(
                r,
                "cimd_proxy_authorize_requests_total",
                "Authorization requests by mode (relay, or gate checks) and outcome.",
                &["mode", "outcome"],
            ),
            token_requests: counter(
                r,
                "cimd_proxy_token_requests_total",
                "Token requests by mode (relay, or gate checks), grant type and outcome (ok or the OAuth error).",
                &["mode", "grant_type", "outcome"],
            ),
            provider_duration: histogram(
                r,
                "cimd_proxy_provider_request_duration_seconds",
                "Calls to the identity provider by operation.",
                &["operation"],
            ),
            provider_errors: counter(
                r,
                "cimd_proxy_provider_errors_total",
                "Failed calls to the identity provider by operation and error kind.",
                &["operation", "kind"],
            ),
            seal_failures: counter(
                r,
                "cimd_proxy_seal_failures_total",
                "Sealed values (state, code, refresh token, consent) that did not open, by reason.",
                &["purpose", "reason"],
            ),
            config_reloads: counter(
                r,
                "cimd_proxy_config_reloads_total",
                "Configuration reloads by result (success, failure).",
                &["result"],
            ),
            log_lines_dropped: counter(
                r,
                "cimd_proxy_log_lines_dropped_total",
                "Log lines dropped because the log output was blocked, by kind (audit, other).",
                &["kind"],
            ),
            store_errors: counter(
                r,
                "cimd_proxy_store_errors_total",
                "Shared-store operations that failed (unavailable, timed out or full), by operation.",
                &["operation"],
            ),
            metadata_changes: counter(
                r,
                "cimd_proxy_metadata_changes_total",
                "Token requests whose grant was made under another version of the client's document, by action (refuse, allow).",
                &["action"],
            ),
            connections_open: register(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "cimd_proxy_connections_open",
                        "Connections open now, by listener (public, admin).",
                    ),
                    &["listener"],
                )
                .unwrap_or_else(|_| unreachable_metric("cimd_proxy_connections_open")),
            ),
            connections_over_limit: counter(
                r,
                "cimd_proxy_connections_over_limit_total",
                "Connections that arrived at the connection cap, by listener and action \
                 (closed_idle: the longest idle connection made room; closed_slow_head: a \
                 request head arriving for over 1 s was cut off; waited: all were busy).",
                &["listener", "action"],
            ),
            stale_served: counter(
                r,
                "cimd_proxy_stale_documents_served_total",
                "Expired documents served because their origin could not be reached \
                 (stale-if-error), by the fetch's error code.",
                &["reason"],
            ),
            consent_decisions: counter(
                r,
                "cimd_proxy_consent_decisions_total",
                "Answers to the consent page by outcome (continue, cancel, or why it was refused).",
                &["outcome"],
            ),
            logo_prefetches: counter(
                r,
                "cimd_proxy_logo_prefetches_total",
                "Background fetches of allowed clients' logos by outcome (fetched, failed, \
                 renewed: still held, kept for the document's new lifetime; coalesced: already \
                 queued; queue_full: skipped, fetch.logo_prefetch_queue was full).",
                &["outcome"],
            ),
            inventory_entries: gauge(
                r,
                "cimd_proxy_inventory_entries",
                "Clients in the inventory.",
            ),
            inventory_evictions: register(
                r,
                IntCounter::new(
                    "cimd_proxy_inventory_evictions_total",
                    "Inventory entries evicted (least recently seen) to stay within inventory.max_entries.",
                )
                .unwrap_or_else(|_| unreachable_metric("cimd_proxy_inventory_evictions_total")),
            ),
            inventory_write_failures: counter(
                r,
                "cimd_proxy_inventory_write_failures_total",
                "Inventory writes that failed, by kind (sighting, user); the sign-in goes on.",
                &["kind"],
            ),
            admin_actions: counter(
                r,
                "cimd_proxy_admin_actions_total",
                "Admin API actions by kind (refresh, invalidate) and result (ok, not_found, \
                 failed, unauthorized).",
                &["kind", "result"],
            ),
            build_info: register(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "cimd_proxy_build_info",
                        "Build information; the value is 1.",
                    ),
                    &["version"],
                )
                .unwrap_or_else(|_| unreachable_metric("cimd_proxy_build_info")),
            ),
            registry,
        };
        metrics
            .build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        metrics
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(%error, "cannot encode metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::METRICS;

    #[test]
    fn every_metric_is_exposed_with_the_prefix() {
        METRICS.fetches.with_label_values(&["document", "ok"]).inc();
        METRICS
            .token_requests
            .with_label_values(&["relay", "refresh_token", "ok"])
            .inc();
        METRICS.log_lines_dropped.with_label_values(&["audit"]);
        METRICS.store_errors.with_label_values(&["ping"]);
        METRICS.metadata_changes.with_label_values(&["allow"]);
        METRICS
            .connections_over_limit
            .with_label_values(&["public", "closed_idle"])
            .inc();
        METRICS.stale_served.with_label_values(&["timeout"]).inc();
        METRICS.logo_prefetches.with_label_values(&["fetched"]);
        METRICS.connections_open.with_label_values(&["admin"]).get();
        METRICS.inventory_evictions.inc_by(0);
        METRICS
            .admin_actions
            .with_label_values(&["refresh", "ok"])
            .inc_by(0);
        let text = METRICS.render();
        for name in [
            "cimd_proxy_fetches_total",
            "cimd_proxy_token_requests_total",
            "cimd_proxy_build_info",
            "cimd_proxy_fetches_in_flight",
            "cimd_proxy_cache_entries",
            "cimd_proxy_log_lines_dropped_total",
            "cimd_proxy_store_errors_total",
            "cimd_proxy_metadata_changes_total",
            "cimd_proxy_connections_open",
            "cimd_proxy_connections_over_limit_total",
            "cimd_proxy_stale_documents_served_total",
            "cimd_proxy_logo_prefetches_total",
            "cimd_proxy_inventory_entries",
            "cimd_proxy_inventory_evictions_total",
            "cimd_proxy_admin_actions_total",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            assert!(line.starts_with("cimd_proxy_"), "{line}");
        }
    }
}
