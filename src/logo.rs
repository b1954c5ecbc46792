//! Client logos, fetched by the proxy and served from its own origin.
//!
//! A logo is a stranger's URL like any other, so it goes through the same
//! hardened fetcher (address rules, deadline, size cap via
//! `fetch.max_logo_bytes`). Only raster formats are accepted — never SVG,
//! which is a document that can carry script — and the bytes must *be* the
//! format the origin claims (magic numbers), so a browser is never handed
//! HTML labelled as an image. The proxy serves the bytes with the type it
//! verified, so the client's own origin is never contacted by the user's
//! browser. Whether a client may show a logo at all is the policy's call:
//! only clients it allows outright get one.
//!
//! Logos are fetched ahead of need, never while a person waits. When
//! admission fetches the document of a client the policy allows, it hands
//! the `logo_uri` to [`LogoCache::prefetch`], which queues it for a fixed
//! pool of workers, one per logo permit of the fetcher
//! (`fetch.max_concurrent_logo_fetches`, separate from the document
//! permits, so a slow logo host cannot starve sign-ins). The queue is
//! bounded (`fetch.logo_prefetch_queue`): when it is full the prefetch is
//! skipped and counted, never waited for. A logo is held as long as the
//! document's cache entry it came with, and `/logo` reads the held logos
//! only: a logo not fetched (yet) is a 404, and the page shows the
//! client's initials instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;
use tokio::sync::mpsc;
use url::Url;

use crate::egress::{Egress, FetchError, FetchKind};

/// How many logos are held at most.
const MAX_LOGOS: u64 = 1000;

/// A verified raster image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logo {
    /// The image bytes.
    pub bytes: Bytes,
    /// The verified media type (one of [`crate::egress::RASTER_IMAGE_TYPES`]).
    pub content_type: &'static str,
}

/// Why a logo is not shown.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogoError {
    /// The fetch failed (refused address, too large, wrong type, ...).
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The bytes are not the raster format they claim to be.
    #[error("the logo's bytes are not a PNG, JPEG, GIF or WebP image")]
    NotAnImage,
}

/// Fetches the logo at `url` through `egress` (on its logo permits) and
/// verifies that the bytes are the raster image they claim to be. This is
/// what a prefetch does; nothing fetches a logo while a page waits.
pub async fn fetch(egress: &Egress, url: &Url) -> Result<Logo, LogoError> {
    let fetched = egress
        .fetch(url, FetchKind::Logo, &HeaderMap::new())
        .await?;
    let content_type = sniff(&fetched.body).ok_or(LogoError::NotAnImage)?;
    Ok(Logo {
        bytes: fetched.body,
        content_type,
    })
}

/// What became of a prefetch: a closed set, the `outcome` label of
/// `cimd_proxy_logo_prefetches_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum PrefetchOutcome {
    /// Fetched and verified; held until the document's entry expires.
    Fetched,
    /// The fetch failed or the bytes are not an image: no logo is shown.
    Failed,
    /// Already held: kept for the document's new lifetime, not fetched again.
    Renewed,
    /// Already queued or being fetched.
    Coalesced,
    /// Skipped: `fetch.logo_prefetch_queue` prefetches were already waiting.
    QueueFull,
}

impl PrefetchOutcome {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    fn count(self) {
        crate::metrics::METRICS
            .logo_prefetches
            .with_label_values(&[self.as_str()])
            .inc();
    }
}

/// What [`LogoCache::prefetch`] did at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefetch {
    /// Queued for a worker; its outcome is counted when the fetch ends.
    Queued,
    /// Settled without a fetch (renewed, coalesced or skipped).
    Settled(PrefetchOutcome),
}

/// A held logo and when it goes: with the document it came with.
#[derive(Debug, Clone)]
struct Held {
    logo: Arc<Logo>,
    until: Instant,
}

/// Tells moka when each logo goes.
struct UntilDocumentExpires;

impl moka::Expiry<String, Held> for UntilDocumentExpires {
    fn expire_after_create(&self, _url: &String, held: &Held, now: Instant) -> Option<Duration> {
        Some(held.until.saturating_duration_since(now))
    }

    fn expire_after_update(
        &self,
        _url: &String,
        held: &Held,
        now: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(held.until.saturating_duration_since(now))
    }
}

/// Logos of allowed clients, keyed by URL, filled in the background.
/// Failures are not held: the next fetch of the document tries again.
pub struct LogoCache {
    /// Dropping the cache closes the queue, which stops the workers.
    queue: mpsc::Sender<Url>,
    shared: Arc<Shared>,
}

/// What the cache and its workers share.
struct Shared {
    egress: Arc<Egress>,
    logos: moka::sync::Cache<String, Held>,
    /// The logos queued or being fetched, with the latest expiry asked for
    /// each (two clients may share one logo URL).
    pending: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for LogoCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogoCache")
            .field("entries", &self.shared.logos.entry_count())
            .finish_non_exhaustive()
    }
}

impl LogoCache {
    /// A cache fetching through `egress`, with its prefetch queue
    /// (`fetch.logo_prefetch_queue`) and one worker per logo permit
    /// (`fetch.max_concurrent_logo_fetches`). Call it within a Tokio
    /// runtime: the workers are tasks on it.
    pub fn new(egress: Arc<Egress>) -> Self {
        let config = egress.config();
        let (queue, receiver) = mpsc::channel(config.logo_prefetch_queue.max(1));
        let workers = config.max_concurrent_logo_fetches.max(1);
        let shared = Arc::new(Shared {
            egress,
            logos: moka::sync::Cache::builder()
                .max_capacity(MAX_LOGOS)
                .expire_after(UntilDocumentExpires)
                .build(),
            pending: Mutex::new(HashMap::new()),
        });
        let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
        for _ in 0..workers {
            tokio::spawn(work(Arc::clone(&shared), Arc::clone(&receiver)));
        }
        LogoCache { queue, shared }
    }

    /// The held logo at `logo_uri` (a document's), if there is one;
    /// nothing is fetched.
    pub fn held(&self, logo_uri: &str) -> Option<Arc<Logo>> {
        // Keyed by the parsed form, as prefetches are.
        let url = Url::parse(logo_uri).ok()?;
        self.shared
            .logos
            .get(url.as_str())
            .filter(|held| Instant::now() < held.until)
            .map(|held| held.logo)
    }

    /// Asks for the logo at `url` to be held until `until` (when the
    /// document naming it leaves the cache): renewed if it is held, queued
    /// if not, skipped if the queue is full. Never waits.
    pub fn prefetch(&self, url: &Url, until: Instant) -> Prefetch {
        let prefetch = self.prefetch_uncounted(url, until);
        if let Prefetch::Settled(outcome) = prefetch {
            outcome.count();
        }
        prefetch
    }

    /// Forgets the logo at `url`: the page shows none until its document
    /// is fetched again (an operator's invalidate).
    pub fn forget(&self, url: &Url) {
        self.shared.logos.invalidate(url.as_str());
    }

    /// Fetches a held logo again now (an operator's refresh), kept as long
    /// as it was. `None` when it is not held: logos are fetched only for
    /// allowed clients, when their document is, and a refresh does not
    /// change that.
    pub async fn refetch(&self, url: &Url) -> Option<Result<Arc<Logo>, LogoError>> {
        let held = self.shared.logos.get(url.as_str())?;
        let result = fetch(&self.shared.egress, url).await.map(Arc::new);
        if let Ok(logo) = &result {
            self.shared.logos.insert(
                url.as_str().to_owned(),
                Held {
                    logo: Arc::clone(logo),
                    until: held.until,
                },
            );
        }
        Some(result)
    }

    fn prefetch_uncounted(&self, url: &Url, until: Instant) -> Prefetch {
        let key = url.as_str();
        // One lock over the look-ups and the send: a worker moves a logo
        // from pending to held under it too, so a logo is always found in
        // one of them and never queued twice.
        let mut pending = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = self.shared.logos.get(key) {
            if until > held.until {
                self.shared.logos.insert(
                    key.to_owned(),
                    Held {
                        logo: held.logo,
                        until,
                    },
                );
            }
            return Prefetch::Settled(PrefetchOutcome::Renewed);
        }
        if let Some(latest) = pending.get_mut(key) {
            *latest = (*latest).max(until);
            return Prefetch::Settled(PrefetchOutcome::Coalesced);
        }
        match self.queue.try_send(url.clone()) {
            Ok(()) => {
                pending.insert(key.to_owned(), until);
                Prefetch::Queued
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                Prefetch::Settled(PrefetchOutcome::QueueFull)
            }
            // The workers are gone: the runtime is shutting down.
            Err(mpsc::error::TrySendError::Closed(_)) => Prefetch::Settled(PrefetchOutcome::Failed),
        }
    }
}

/// One worker: takes queued logos one at a time until the queue closes.
async fn work(shared: Arc<Shared>, queue: Arc<tokio::sync::Mutex<mpsc::Receiver<Url>>>) {
    loop {
        let Some(url) = queue.lock().await.recv().await else {
            return;
        };
        shared.fetch_and_hold(&url).await.count();
    }
}

impl Shared {
    async fn fetch_and_hold(&self, url: &Url) -> PrefetchOutcome {
        let result = fetch(&self.egress, url).await;
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let until = pending.remove(url.as_str());
        match result {
            Ok(logo) => {
                // A document that has left the cache meanwhile takes its logo with it.
                if let Some(until) = until.filter(|until| Instant::now() < *until) {
                    self.logos.insert(
                        url.as_str().to_owned(),
                        Held {
                            logo: Arc::new(logo),
                            until,
                        },
                    );
                }
                PrefetchOutcome::Fetched
            }
            Err(error) => {
                drop(pending);
                tracing::info!(
                    logo_uri = %crate::client_id::loggable(url.as_str()),
                    %error,
                    "client logo not fetched; its page shows no logo"
                );
                PrefetchOutcome::Failed
            }
        }
    }
}

/// The raster format the bytes really are, by their magic numbers.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::{PrefetchOutcome, sniff};

    #[test]
    fn prefetch_outcome_labels_are_pinned() {
        // Metric labels: the strings are a contract (dashboards, alerts).
        let labels: Vec<&str> = <PrefetchOutcome as strum::VariantArray>::VARIANTS
            .iter()
            .map(|outcome| outcome.as_str())
            .collect();
        assert_eq!(
            labels,
            ["fetched", "failed", "renewed", "coalesced", "queue_full"]
        );
    }

    #[test]
    fn only_real_raster_images_pass() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nrest"), Some("image/png"));
        assert_eq!(sniff(&[0xff, 0xd8, 0xff, 0xe0]), Some("image/jpeg"));
        assert_eq!(sniff(b"GIF89a..."), Some("image/gif"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>"), None);
        assert_eq!(sniff(b"<html><script>alert(1)</script>"), None);
        assert_eq!(sniff(b"RIFF\0\0\0\0WAVE"), None);
        assert_eq!(sniff(b""), None);
    }
}
