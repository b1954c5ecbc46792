//! Client logos, fetched by the proxy and served from its own origin.
//!
//! A logo is a stranger's URL like any other, so it goes through the same
//! hardened fetcher (address rules, deadline, size cap via
//! `fetch.max_logo_bytes`). Only raster formats are accepted — never SVG,
//! which is a document that can carry script — and the bytes must *be* the
//! format the origin claims (magic numbers), so a browser is never handed
//! HTML labelled as an image. The proxy serves the bytes with the type it
//! verified, so the client's own origin is never contacted by the user's
//! browser. Whether a client may show a logo at all is the policy's call
//! (the caller checks it): untrusted clients never get one.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use url::Url;

use crate::egress::{Egress, FetchError, FetchKind};

/// How long a fetched logo is kept.
const LOGO_TTL: Duration = Duration::from_secs(3600);
/// How many logos are kept at most.
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

/// Fetched logos, keyed by URL. Errors are not cached.
pub struct LogoCache {
    egress: Arc<Egress>,
    logos: moka::sync::Cache<String, Arc<Logo>>,
}

impl std::fmt::Debug for LogoCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogoCache")
            .field("entries", &self.logos.entry_count())
            .finish_non_exhaustive()
    }
}

impl LogoCache {
    /// A cache fetching through `egress`.
    pub fn new(egress: Arc<Egress>) -> Self {
        LogoCache {
            egress,
            logos: moka::sync::Cache::builder()
                .max_capacity(MAX_LOGOS)
                .time_to_live(LOGO_TTL)
                .build(),
        }
    }

    /// Forgets the logo at `url`: the next request fetches it again.
    pub fn forget(&self, url: &Url) {
        self.logos.invalidate(url.as_str());
    }

    /// Fetches the logo at `url` again now, replacing the one held.
    pub async fn refetch(&self, url: &Url) -> Result<Arc<Logo>, LogoError> {
        self.forget(url);
        self.get(url).await
    }

    /// The logo at `url`, fetched once and verified.
    pub async fn get(&self, url: &Url) -> Result<Arc<Logo>, LogoError> {
        if let Some(logo) = self.logos.get(url.as_str()) {
            return Ok(logo);
        }
        let fetched = self
            .egress
            .fetch(url, FetchKind::Logo, &HeaderMap::new())
            .await?;
        let content_type = sniff(&fetched.body).ok_or(LogoError::NotAnImage)?;
        let logo = Arc::new(Logo {
            bytes: fetched.body,
            content_type,
        });
        self.logos
            .insert(url.as_str().to_owned(), Arc::clone(&logo));
        Ok(logo)
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
    use super::sniff;

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
