//! The document cache: validated client metadata, keyed by client_id.
//!
//! * Lifetimes follow the origin's HTTP cache headers, as computed by the
//!   `http-cache-semantics` crate (RFC 9111), clamped to
//!   `[cache.min_ttl_s, cache.max_ttl_s]`; `cache.default_ttl_s` applies when
//!   the origin sends neither `Cache-Control` nor `Expires`. The floor also
//!   covers `no-store`/`no-cache`: an origin must not be able to make us
//!   refetch on every request.
//! * An expired entry whose response carried `ETag` or `Last-Modified` is
//!   kept (for at most another `max_ttl_s`) so it can be revalidated with a
//!   conditional request; a 304 renews it without re-validating the body.
//! * Concurrent lookups of one client_id share one fetch (single flight).
//!   The fetch runs in its own task, so a caller that goes away cannot
//!   strand a half-done fetch holding a fetch permit; the task is bounded by
//!   the fetch deadline, and the in-flight table by the fetch permits.
//! * Only valid documents are cached; every error is returned, never stored.
//! * stale-if-error (RFC 5861): when an expired document's origin cannot be
//!   reached (no DNS answer, no connection, a timeout, an HTTP 5xx, or no
//!   fetch capacity left), the expired document is served for up to
//!   `cache.stale_if_error_s` past its expiry, counted and logged as an audit
//!   event. Any other failure (404, 410, an invalid document, a refused
//!   address, a TLS failure) drops the entry at once, so removing or breaking
//!   a document still revokes the client, and no later outage brings the old
//!   one back. Each lookup of a stale entry tries the origin again (single
//!   flight), so the first answer from a recovered origin is used.
//! * `cache.max_entries` bounds the number of documents held.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use http::header::{self, HeaderMap};
use http_cache_semantics::{AfterResponse, CacheOptions, CachePolicy};

use crate::client_id::ClientIdUrl;
use crate::egress::{Egress, FetchError, FetchKind, Fetched};
use crate::error_code::ErrorCode;
use crate::metadata::{self, ClientMetadata, MetadataError};

/// `[cache]`: lifetimes of cached documents.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    /// The shortest lifetime, whatever the origin says (a floor against refetch floods).
    pub min_ttl: Duration,
    /// The longest lifetime, whatever the origin says.
    pub max_ttl: Duration,
    /// The lifetime when the origin sends neither `Cache-Control` nor `Expires`.
    pub default_ttl: Duration,
    /// The most documents held at once.
    pub max_entries: u64,
    /// How long after expiry a document may still be served while its origin
    /// cannot be reached (RFC 5861 `stale-if-error`); zero turns it off.
    pub stale_if_error: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(86_400),
            default_ttl: Duration::from_secs(300),
            max_entries: 10_000,
            stale_if_error: Duration::from_secs(300),
        }
    }
}

/// How a lookup was served; a closed set, used as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum CacheStatus {
    /// A fresh entry was in the cache.
    Hit,
    /// Nothing usable was cached; this lookup fetched the document.
    Miss,
    /// Another lookup was already fetching it; this one shared that fetch.
    Coalesced,
    /// The entry had expired and the origin confirmed it unchanged (304).
    Revalidated,
    /// The entry had expired and its origin could not be reached: served
    /// within `cache.stale_if_error_s` of its expiry.
    Stale,
}

impl CacheStatus {
    /// The status as a metric label value.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Where and how a cached document was fetched, for reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FetchReport {
    /// Every address the host resolved to (all vetted).
    pub addresses: Vec<std::net::IpAddr>,
    /// The vetted address the connection went to.
    pub connected_to: std::net::SocketAddr,
    /// The document's size in bytes.
    pub bytes: usize,
    /// How long the entry stays fresh, after clamping.
    pub cache_ttl_s: u64,
}

/// A validated document and what the cache needs to keep it current.
#[derive(Debug)]
pub struct CachedDocument {
    /// The client_id it was fetched for, parsed (and shared with the
    /// entry's key): a cache hit yields it without parsing the string again.
    client_id: Arc<ClientIdUrl>,
    /// The validated metadata.
    pub metadata: Arc<ClientMetadata>,
    /// How it was fetched.
    pub fetch: FetchReport,
    fresh_until: Instant,
    /// When it was fetched (or last revalidated), by the wall clock.
    received_at: SystemTime,
    /// `fresh_until` by the wall clock, for reports.
    expires_at: SystemTime,
    retain_for: Duration,
    /// When the entry leaves the cache (the logo it names is held until then).
    held_until: Instant,
    /// Kept only when the origin sent validators (`ETag`, `Last-Modified`).
    revalidation: Option<StoredHead>,
}

impl CachedDocument {
    /// The client_id the document was fetched for and validated against.
    pub fn client_id(&self) -> &ClientIdUrl {
        &self.client_id
    }

    /// When this entry leaves the cache: its freshness, then the time it is
    /// kept for revalidation and stale-if-error.
    pub fn held_until(&self) -> Instant {
        self.held_until
    }

    /// When it was fetched, or last revalidated (wall clock).
    pub fn received_at(&self) -> SystemTime {
        self.received_at
    }

    /// When it stops being fresh (wall clock).
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// The origin's `ETag`, when it sent one.
    pub fn etag(&self) -> Option<String> {
        let stored = self.revalidation.as_ref()?.header_map();
        let etag = stored.get(header::ETAG)?.to_str().ok()?;
        Some(etag.to_owned())
    }

    fn is_fresh(&self, now: Instant) -> bool {
        now < self.fresh_until
    }

    /// Whether it may stand in for its origin's answer at `now`, given the
    /// stale-if-error window.
    fn usable_on_error(&self, now: Instant, window: Duration) -> bool {
        now < self.fresh_until + window
    }
}

/// What a conditional request and a 304 need from the stored response: its
/// caching headers (as `name: value` lines, one allocation rather than a
/// header map and a cache policy per document: there may be a hundred
/// thousand of them) and when it was received.
#[derive(Debug)]
struct StoredHead {
    headers: Box<[u8]>,
    received_at: SystemTime,
}

/// The response headers RFC 9111 caching and revalidation read.
const CACHING_HEADERS: [header::HeaderName; 8] = [
    header::CACHE_CONTROL,
    header::EXPIRES,
    header::DATE,
    header::AGE,
    header::ETAG,
    header::LAST_MODIFIED,
    header::VARY,
    header::PRAGMA,
];

impl StoredHead {
    fn new(headers: &HeaderMap, received_at: SystemTime) -> StoredHead {
        let mut lines = Vec::new();
        for name in &CACHING_HEADERS {
            for value in headers.get_all(name) {
                lines.extend_from_slice(name.as_str().as_bytes());
                lines.extend_from_slice(b": ");
                lines.extend_from_slice(value.as_bytes());
                lines.push(b'\n');
            }
        }
        StoredHead {
            headers: lines.into_boxed_slice(),
            received_at,
        }
    }

    /// The stored headers as a map again (a header value never holds a
    /// line feed, and a name never a colon).
    fn header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        for line in self.headers.split(|&b| b == b'\n') {
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let value = line[colon + 1..]
                .strip_prefix(b" ")
                .unwrap_or(&line[colon + 1..]);
            if let (Ok(name), Ok(value)) = (
                header::HeaderName::from_bytes(&line[..colon]),
                header::HeaderValue::from_bytes(value),
            ) {
                map.append(name, value);
            }
        }
        map
    }
}

/// Why a client_id could not be resolved to a valid document.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ResolveError {
    /// The fetch failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The document is invalid.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}

impl ResolveError {
    /// Whether it says the origin could not be reached (or not fetched from
    /// for lack of capacity), rather than that the document is gone or bad:
    /// only then may an expired document stand in (RFC 5861 stale-if-error).
    pub fn origin_unreachable(&self) -> bool {
        match self {
            ResolveError::Fetch(
                FetchError::Dns { .. }
                | FetchError::Connect { .. }
                | FetchError::Interrupted { .. }
                | FetchError::Timeout { .. }
                | FetchError::Overloaded { .. },
            ) => true,
            ResolveError::Fetch(FetchError::HttpStatus { status, .. }) => {
                (500..=599).contains(status)
            }
            _ => false,
        }
    }

    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            ResolveError::Fetch(error) => error.code(),
            ResolveError::Metadata(error) => error.code(),
        }
    }
}

/// A successful lookup.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The document.
    pub document: Arc<CachedDocument>,
    /// How the lookup was served.
    pub status: CacheStatus,
}

type Flight = Shared<BoxFuture<'static, Result<Resolved, ResolveError>>>;

/// The cache, shared by every request of the process.
pub struct DocumentCache {
    inner: Arc<Inner>,
}

struct Inner {
    egress: Arc<Egress>,
    config: CacheConfig,
    entries: moka::sync::Cache<Key, Arc<CachedDocument>>,
    in_flight: Mutex<HashMap<String, Flight>>,
}

impl std::fmt::Debug for DocumentCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentCache")
            .field("entries", &self.inner.entries.entry_count())
            .finish_non_exhaustive()
    }
}

/// An entry's key: the document's own parsed client_id, shared with the
/// entry rather than copied, and looked up by the string (`Borrow<str>`:
/// equality and hashing are the string's).
#[derive(Debug, Clone)]
struct Key(Arc<ClientIdUrl>);

impl std::borrow::Borrow<str> for Key {
    fn borrow(&self) -> &str {
        self.0.as_str()
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for Key {}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.as_str().hash(state);
    }
}

/// Tells moka how long each entry may stay: stale entries with validators
/// linger so they can be revalidated; the rest go when they expire.
struct Retention;

impl moka::Expiry<Key, Arc<CachedDocument>> for Retention {
    fn expire_after_create(
        &self,
        _key: &Key,
        value: &Arc<CachedDocument>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.retain_for)
    }

    fn expire_after_update(
        &self,
        _key: &Key,
        value: &Arc<CachedDocument>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.retain_for)
    }
}

impl DocumentCache {
    /// A cache that fetches through `egress`.
    pub fn new(egress: Arc<Egress>, config: CacheConfig) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(config.max_entries)
            .expire_after(Retention)
            .build();
        DocumentCache {
            inner: Arc::new(Inner {
                egress,
                config,
                entries,
                in_flight: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The number of documents held, after pending evictions are applied.
    pub fn entry_count(&self) -> u64 {
        self.inner.entries.run_pending_tasks();
        self.inner.entries.entry_count()
    }

    /// The fetcher behind this cache.
    pub fn egress(&self) -> &Arc<Egress> {
        &self.inner.egress
    }

    /// Returns the client's validated document, from the cache when fresh,
    /// otherwise by fetching (or revalidating) it once for all concurrent callers.
    pub async fn resolve(&self, client_id: &ClientIdUrl) -> Result<Resolved, ResolveError> {
        let result = self.resolve_unmeasured(client_id).await;
        let metrics = &*crate::metrics::METRICS;
        if let Ok(resolved) = &result {
            metrics
                .cache_lookups
                .with_label_values(&[resolved.status.as_str()])
                .inc();
        }
        result
    }

    /// The fresh cached document for exactly this client_id string, if
    /// there is one, counted as a hit; nothing is fetched. Only strings that
    /// parsed as client_ids are ever cached, and the entry keeps the parsed
    /// form, so a hit needs no parsing: this is the hot path of every
    /// sign-in by a known client.
    pub fn cached(&self, client_id: &str) -> Option<Resolved> {
        let document = self.fresh(client_id)?;
        crate::metrics::METRICS
            .cache_lookups
            .with_label_values(&[CacheStatus::Hit.as_str()])
            .inc();
        Some(Resolved {
            document,
            status: CacheStatus::Hit,
        })
    }

    /// Drops the client's document, so that the next lookup fetches it
    /// again (unconditionally: no validators are kept either). `true` when
    /// one was held.
    pub fn invalidate(&self, client_id: &str) -> bool {
        self.inner.entries.remove(client_id).is_some()
    }

    /// Fetches the client's document again now, fresh or not (an
    /// operator's refresh), through the same single flight as every
    /// lookup. The copy held until then is the stale one of that fetch:
    /// its validators make the request conditional, it stands in while the
    /// host is unreachable (stale-if-error), and a 404 or an invalid
    /// document drops it, as any refresh would.
    pub async fn refetch(&self, client_id: &ClientIdUrl) -> Result<Resolved, ResolveError> {
        let flight = {
            let mut in_flight = self
                .inner
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match in_flight.get(client_id.as_str()) {
                // One under way is as fresh as a new one would be.
                Some(flight) => flight.clone(),
                None => {
                    let flight = self.launch(client_id.clone());
                    in_flight.insert(client_id.as_str().to_owned(), flight.clone());
                    flight
                }
            }
        };
        flight.await
    }

    async fn resolve_unmeasured(&self, client_id: &ClientIdUrl) -> Result<Resolved, ResolveError> {
        let key = client_id.as_str();
        if let Some(document) = self.fresh(key) {
            return Ok(Resolved {
                document,
                status: CacheStatus::Hit,
            });
        }
        let (flight, leader) = {
            let mut in_flight = self
                .inner
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // Re-checked under the lock: a flight may have landed since.
            if let Some(document) = self.fresh(key) {
                return Ok(Resolved {
                    document,
                    status: CacheStatus::Hit,
                });
            }
            match in_flight.get(key) {
                Some(flight) => (flight.clone(), false),
                None => {
                    let flight = self.launch(client_id.clone());
                    in_flight.insert(key.to_owned(), flight.clone());
                    (flight, true)
                }
            }
        };
        let mut resolved = flight.await?;
        if !leader && resolved.status != CacheStatus::Stale {
            resolved.status = CacheStatus::Coalesced;
        }
        Ok(resolved)
    }

    fn fresh(&self, key: &str) -> Option<Arc<CachedDocument>> {
        self.inner
            .entries
            .get(key)
            .filter(|document| document.is_fresh(Instant::now()))
    }

    /// Starts the one fetch for `client_id` in its own task.
    fn launch(&self, client_id: ClientIdUrl) -> Flight {
        let inner = Arc::clone(&self.inner);
        let task = tokio::spawn(async move {
            let key = client_id.as_str().to_owned();
            let stale = inner.entries.get(key.as_str());
            let outcome = match inner.refresh(&client_id, stale.clone()).await {
                Ok(resolved) => {
                    inner.entries.insert(
                        Key(Arc::clone(&resolved.document.client_id)),
                        Arc::clone(&resolved.document),
                    );
                    Ok(resolved)
                }
                Err(error) => inner.on_error(&client_id, stale, error),
            };
            // After the insert, so a caller never finds neither.
            inner
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&key);
            outcome
        });
        async move {
            // The task does not panic by design; it can still be cancelled
            // when the runtime shuts down under it.
            task.await.unwrap_or_else(|join_error| {
                Err(FetchError::Interrupted {
                    reason: join_error.to_string(),
                }
                .into())
            })
        }
        .boxed()
        .shared()
    }
}

impl Inner {
    /// A failed refresh: the expired document stands in while its origin is
    /// unreachable and the window lasts; any other failure drops it.
    fn on_error(
        &self,
        client_id: &ClientIdUrl,
        stale: Option<Arc<CachedDocument>>,
        error: ResolveError,
    ) -> Result<Resolved, ResolveError> {
        let Some(stale) = stale else {
            return Err(error);
        };
        let now = Instant::now();
        if !error.origin_unreachable() {
            // The origin has spoken (404, 410, an invalid document...):
            // revoked now, and no later outage may bring the old copy back.
            self.entries.invalidate(client_id.as_str());
            return Err(error);
        }
        if !stale.usable_on_error(now, self.config.stale_if_error) {
            return Err(error);
        }
        let code = error.code();
        crate::metrics::METRICS
            .stale_served
            .with_label_values(&[code.as_str()])
            .inc();
        // The client_id parsed as a CIMD URL: printable, bounded, no quotes.
        tracing::warn!(
            target: "audit",
            event = "stale_document",
            client_id = client_id.as_str(),
            reason = code.as_str(),
            expired_s = now.saturating_duration_since(stale.fresh_until).as_secs(),
            %error,
            "serving an expired document: its origin cannot be reached"
        );
        Ok(Resolved {
            document: stale,
            status: CacheStatus::Stale,
        })
    }

    async fn refresh(
        &self,
        client_id: &ClientIdUrl,
        stale: Option<Arc<CachedDocument>>,
    ) -> Result<Resolved, ResolveError> {
        let stored = stale
            .as_ref()
            .and_then(|document| document.revalidation.as_ref());
        let conditional = stored
            .map(|stored| validators(&stored.header_map()))
            .unwrap_or_default();
        // Never refused: `ClientIdUrl::parse` accepted what the parser keeps as is.
        let url = client_id.to_url().map_err(|_| FetchError::UnsupportedUrl {
            url: client_id.as_str().to_owned(),
        })?;
        let fetched = self
            .egress
            .fetch(&url, FetchKind::Document, &conditional)
            .await?;
        let request = cache_request(client_id);
        let now = SystemTime::now();
        let options = CacheOptions {
            shared: true,
            ..CacheOptions::default()
        };

        if let (http::StatusCode::NOT_MODIFIED, Some(stale), Some(stored)) =
            (fetched.status, &stale, stored)
        {
            let response = response_head(fetched.status, &fetched.headers);
            let stored_response = response_head(http::StatusCode::OK, &stored.header_map());
            let policy =
                CachePolicy::new_options(&request, &stored_response, stored.received_at, options);
            if let AfterResponse::NotModified(policy, parts) =
                policy.after_response(&request, &response, now)
            {
                let document = self.entry(
                    (Arc::clone(&stale.client_id), Arc::clone(&stale.metadata)),
                    &policy,
                    &parts.headers,
                    &fetched,
                    stale.fetch.bytes,
                    now,
                );
                return Ok(Resolved {
                    document: Arc::new(document),
                    status: CacheStatus::Revalidated,
                });
            }
            // A 304 whose validators do not match what we hold: we cannot
            // use our copy, and we will not guess.
            return Err(FetchError::HttpStatus {
                status: 304,
                location: None,
            }
            .into());
        }

        let metadata = metadata::validate(client_id, &fetched.body)?;
        let policy = CachePolicy::new_options(
            &request,
            &response_head(fetched.status, &fetched.headers),
            now,
            options,
        );
        let document = self.entry(
            (Arc::new(client_id.clone()), Arc::new(metadata)),
            &policy,
            &fetched.headers,
            &fetched,
            fetched.body.len(),
            now,
        );
        Ok(Resolved {
            document: Arc::new(document),
            status: CacheStatus::Miss,
        })
    }

    /// The cache entry for a validated document (the client_id it was
    /// fetched for, and its metadata).
    fn entry(
        &self,
        (client_id, metadata): (Arc<ClientIdUrl>, Arc<ClientMetadata>),
        policy: &CachePolicy,
        headers: &HeaderMap,
        fetched: &Fetched,
        bytes: usize,
        received_at: SystemTime,
    ) -> CachedDocument {
        let ttl = self.lifetime(policy, headers, received_at);
        let revalidation =
            (!validators(headers).is_empty()).then(|| StoredHead::new(headers, received_at));
        // Kept past its freshness for revalidation, and for stale-if-error.
        let revalidate_for = if revalidation.is_some() {
            self.config.max_ttl
        } else {
            Duration::ZERO
        };
        let retain_for = ttl + revalidate_for.max(self.config.stale_if_error);
        let now = Instant::now();
        CachedDocument {
            client_id,
            metadata,
            fetch: FetchReport {
                addresses: fetched.addresses.clone(),
                connected_to: fetched.connected_to,
                bytes,
                cache_ttl_s: ttl.as_secs(),
            },
            fresh_until: now + ttl,
            received_at,
            expires_at: received_at + ttl,
            retain_for,
            held_until: now + retain_for,
            revalidation,
        }
    }

    /// The origin's lifetime, or the default when it says nothing, clamped.
    fn lifetime(&self, policy: &CachePolicy, headers: &HeaderMap, now: SystemTime) -> Duration {
        let says_something =
            headers.contains_key(header::CACHE_CONTROL) || headers.contains_key(header::EXPIRES);
        let origin = if says_something {
            policy.time_to_live(now)
        } else {
            self.config.default_ttl
        };
        origin.clamp(self.config.min_ttl, self.config.max_ttl)
    }
}

/// The request as the cache-semantics crate sees it.
fn cache_request(client_id: &ClientIdUrl) -> http::request::Parts {
    let (parts, ()) = http::Request::get(client_id.as_str())
        .body(())
        .unwrap_or_default()
        .into_parts();
    parts
}

fn response_head(status: http::StatusCode, headers: &HeaderMap) -> http::response::Parts {
    let mut response = http::Response::new(());
    *response.status_mut() = status;
    *response.headers_mut() = headers.clone();
    response.into_parts().0
}

/// The conditional request headers for a stored response (RFC 9110 §13.1).
fn validators(headers: &HeaderMap) -> HeaderMap {
    let mut conditional = HeaderMap::new();
    if let Some(etag) = headers.get(header::ETAG) {
        conditional.insert(header::IF_NONE_MATCH, etag.clone());
    }
    if let Some(modified) = headers.get(header::LAST_MODIFIED) {
        conditional.insert(header::IF_MODIFIED_SINCE, modified.clone());
    }
    conditional
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn the_stored_head_keeps_the_caching_headers_only() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("content-type", "application/json"),
            ("cache-control", "max-age=60, must-revalidate"),
            ("etag", "W/\"a:b\""),
            ("vary", "accept"),
            ("vary", "origin"),
            ("x-other", "1"),
        ] {
            headers.append(
                header::HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        headers.append(
            header::LAST_MODIFIED,
            HeaderValue::from_bytes(b"Wed, 21 Oct 2026 07:28:00 GMT \xe9").unwrap(),
        );
        let stored = StoredHead::new(&headers, SystemTime::UNIX_EPOCH).header_map();
        assert_eq!(stored.len(), 5);
        assert_eq!(stored[header::CACHE_CONTROL], "max-age=60, must-revalidate");
        assert_eq!(stored[header::ETAG], "W/\"a:b\"");
        assert_eq!(stored.get_all(header::VARY).iter().count(), 2);
        assert_eq!(
            stored[header::LAST_MODIFIED].as_bytes(),
            b"Wed, 21 Oct 2026 07:28:00 GMT \xe9"
        );
        assert!(stored.get(header::CONTENT_TYPE).is_none());
        assert_eq!(validators(&stored), validators(&headers));
    }

    #[test]
    fn only_an_unreachable_origin_lets_an_expired_document_stand_in() {
        let address = std::net::SocketAddr::from(([192, 0, 2, 1], 443));
        let status = |status| FetchError::HttpStatus {
            status,
            location: None,
        };
        let unreachable = [
            FetchError::Dns {
                host: "app.example".into(),
                reason: "no answer".into(),
            },
            FetchError::Connect {
                address,
                reason: "refused".into(),
            },
            FetchError::Interrupted {
                reason: "closed".into(),
            },
            FetchError::Timeout {
                after: Duration::from_secs(5),
            },
            FetchError::Overloaded { limit: 64 },
            status(500),
            status(503),
            status(599),
        ];
        for error in unreachable {
            assert!(
                ResolveError::from(error.clone()).origin_unreachable(),
                "{error}"
            );
        }
        let answered = [
            status(404),
            status(410),
            status(403),
            status(301),
            status(304),
            FetchError::Tls {
                host: "app.example".into(),
                reason: "unknown issuer".into(),
            },
            FetchError::TooLarge {
                part: "body",
                limit: 5120,
            },
            FetchError::ContentType { found: None },
        ];
        for error in answered {
            assert!(
                !ResolveError::from(error.clone()).origin_unreachable(),
                "{error}"
            );
        }
        let invalid = ResolveError::Metadata(MetadataError::InvalidJson {
            reason: "trailing comma".into(),
        });
        assert!(!invalid.origin_unreachable());
    }

    #[test]
    fn validators_carry_etag_and_last_modified() {
        let mut headers = HeaderMap::new();
        assert!(validators(&headers).is_empty());
        headers.insert(header::ETAG, HeaderValue::from_static("\"v1\""));
        headers.insert(
            header::LAST_MODIFIED,
            HeaderValue::from_static("Wed, 21 Oct 2026 07:28:00 GMT"),
        );
        let conditional = validators(&headers);
        assert_eq!(conditional[header::IF_NONE_MATCH], "\"v1\"");
        assert_eq!(
            conditional[header::IF_MODIFIED_SINCE],
            "Wed, 21 Oct 2026 07:28:00 GMT"
        );
    }

    #[test]
    fn cache_status_labels_are_pinned() {
        // Metric labels and log fields: the strings are a contract.
        for (value, text) in [
            (CacheStatus::Hit, "hit"),
            (CacheStatus::Miss, "miss"),
            (CacheStatus::Coalesced, "coalesced"),
            (CacheStatus::Revalidated, "revalidated"),
            (CacheStatus::Stale, "stale"),
        ] {
            assert_eq!(value.as_str(), text);
        }
    }
}
