//! Logos go through the hardened fetcher, on permits of their own, and are
//! held only when they really are the raster image they claim to be. They
//! are prefetched through a bounded queue and held as long as the document
//! that named them.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cimd_proxy::logo::{self, LogoCache, LogoError, Prefetch, PrefetchOutcome};
use cimd_proxy::{ClientIdUrl, Config, DocumentCache, Egress, ErrorCode};
use url::Url;

use crate::support::{ConfigFile, Script, World, client_id, document};

const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

/// The fetcher of `file` with `fetch_keys` added to its `[fetch]` section.
fn egress_of(file: &ConfigFile, fetch_keys: &str) -> Arc<Egress> {
    let text = file
        .to_toml()
        .replacen("[fetch]\n", &format!("[fetch]\n{fetch_keys}\n"), 1);
    let config = Config::from_toml_str(&text, None).expect("valid config");
    Arc::new(Egress::new(&config.fetch, Vec::new()).expect("egress"))
}

/// The world's fetcher for an origin on `port`, with `fetch_keys`.
fn egress(world: &World, port: u16, fetch_keys: &str) -> Arc<Egress> {
    egress_of(&world.config(port), fetch_keys)
}

fn fetch_code(error: &LogoError) -> Option<ErrorCode> {
    match error {
        LogoError::Fetch(error) => Some(error.code()),
        LogoError::NotAnImage => None,
    }
}

fn url(port: u16, path: &str) -> Url {
    Url::parse(&format!("https://app.test:{port}{path}")).unwrap()
}

/// A PNG answered after `pause`.
fn slow_png(pause: Duration) -> Script {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        PNG.len()
    );
    let mut response = head.into_bytes();
    response.extend_from_slice(PNG);
    Script::new().sleep(pause).write(response)
}

/// Waits (at most 5 s) until `done` holds.
async fn until(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_prefetched_png_is_held_with_its_verified_type_until_its_document_goes() {
    let world = World::new().await;
    let origin = world
        .app(Script::response(200, &[("Content-Type", "image/png")], PNG))
        .await;
    let logo_url = url(origin.port(), "/logo.png");
    let logos = LogoCache::new(egress(&world, origin.port(), ""));
    assert!(logos.held(logo_url.as_str()).is_none());

    let document_goes = Instant::now() + Duration::from_millis(1500);
    assert_eq!(logos.prefetch(&logo_url, document_goes), Prefetch::Queued);
    until(|| logos.held(logo_url.as_str()).is_some()).await;
    let logo = logos.held(logo_url.as_str()).unwrap();
    assert_eq!(logo.content_type, "image/png");
    assert_eq!(&logo.bytes[..], PNG);

    // Held: a second prefetch (the document fetched again) renews it
    // without reaching the origin.
    let document_goes = Instant::now() + Duration::from_millis(400);
    assert_eq!(
        logos.prefetch(&logo_url, document_goes),
        Prefetch::Settled(PrefetchOutcome::Renewed)
    );
    assert_eq!(origin.requests().len(), 1);
    // It goes with the later of the two documents' lifetimes, not before.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(logos.held(logo_url.as_str()).is_some());
    until(|| logos.held(logo_url.as_str()).is_none()).await;
}

#[tokio::test]
async fn a_logo_at_a_refused_address_is_not_fetched() {
    let world = World::new().await;
    let origin = world.app(Script::json("{}")).await;
    world
        .dns
        .set("internal.test", &[IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))]);
    let url = Url::parse(&format!("https://internal.test:{}/logo.png", origin.port())).unwrap();
    let error = logo::fetch(&egress(&world, origin.port(), ""), &url)
        .await
        .unwrap_err();
    assert_eq!(fetch_code(&error), Some(ErrorCode::BlockedAddress));
    assert_eq!(origin.connections(), 0);
}

#[tokio::test]
async fn an_oversized_logo_is_refused() {
    let world = World::new().await;
    let mut big = PNG.to_vec();
    big.resize(4096, 0);
    let origin = world
        .app(Script::response(
            200,
            &[("Content-Type", "image/png")],
            &big,
        ))
        .await;
    let url = url(origin.port(), "/logo.png");
    // The cap is fetch.max_logo_bytes, not the document cap.
    let capped = egress(&world, origin.port(), "max_logo_bytes = 1024");
    let error = logo::fetch(&capped, &url).await.unwrap_err();
    assert_eq!(fetch_code(&error), Some(ErrorCode::TooLarge));
    assert!(
        logo::fetch(&egress(&world, origin.port(), ""), &url)
            .await
            .is_ok(),
        "4 KiB is within the default 64 KiB"
    );
}

#[tokio::test]
async fn svg_html_and_disguised_bytes_are_refused() {
    let world = World::new().await;
    let origin = world.app(Script::json("{}")).await;
    let port = origin.port();
    let svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>";
    origin.set_route(
        "/svg",
        Script::response(200, &[("Content-Type", "image/svg+xml")], svg),
    );
    origin.set_route(
        "/html",
        Script::response(200, &[("Content-Type", "text/html")], "<p>hi</p>"),
    );
    origin.set_route(
        "/disguised",
        Script::response(
            200,
            &[("Content-Type", "image/png")],
            "<html><script>x</script>",
        ),
    );
    let egress = egress(&world, port, "");
    for path in ["/svg", "/html"] {
        let error = logo::fetch(&egress, &url(port, path)).await.unwrap_err();
        assert_eq!(
            fetch_code(&error),
            Some(ErrorCode::InvalidContentType),
            "{path}"
        );
    }
    // A failed prefetch holds nothing: the page shows no logo.
    let logos = LogoCache::new(Arc::clone(&egress));
    let disguised = url(port, "/disguised");
    assert_eq!(
        logos.prefetch(&disguised, Instant::now() + Duration::from_secs(60)),
        Prefetch::Queued
    );
    until(|| origin.requests().len() == 3).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(logos.held(disguised.as_str()).is_none());
    assert!(matches!(
        logo::fetch(&egress, &disguised).await,
        Err(LogoError::NotAnImage)
    ));
}

/// Issue 16: a slow logo host holds logo permits only; document fetches,
/// which sign-ins wait on, keep theirs.
#[tokio::test]
async fn a_slow_logo_host_cannot_take_a_document_permit() {
    let world = World::new().await;
    let origin = world.app(slow_png(Duration::from_millis(1500))).await;
    let port = origin.port();
    let document_url = client_id("app.test", port, "/client.json");
    origin.set_route(
        "/client.json",
        Script::json(document(&document_url).to_string()),
    );
    let mut file = world.config(port);
    file.fetch.max_concurrent_fetches = 1;
    file.fetch.timeout_ms = 5000;
    let egress = egress_of(&file, "max_concurrent_logo_fetches = 1");
    let slow = {
        let egress = Arc::clone(&egress);
        tokio::spawn(async move { logo::fetch(&egress, &url(port, "/slow.png")).await })
    };
    until(|| origin.connections() == 1).await;

    // The one logo permit is taken: another logo is refused at once...
    let started = Instant::now();
    let refused = logo::fetch(&egress, &url(port, "/other.png"))
        .await
        .unwrap_err();
    assert_eq!(fetch_code(&refused), Some(ErrorCode::FetchOverloaded));
    assert!(
        refused.to_string().contains("(1 fetches in flight)"),
        "{refused}"
    );
    assert!(started.elapsed() < Duration::from_millis(500));
    // ...while the one document permit is free for a sign-in.
    let cache = DocumentCache::new(Arc::clone(&egress), Default::default());
    let client = ClientIdUrl::parse(&document_url).unwrap();
    cache
        .resolve(&client)
        .await
        .expect("the document is fetched");
    assert!(started.elapsed() < Duration::from_millis(1000));
    let slow = slow.await.unwrap();
    assert!(slow.is_ok(), "the slow logo arrives: {slow:?}");
}

/// Issue 16: prefetches wait in a bounded queue; beyond it they are skipped,
/// never waited for, and a logo already queued is not queued twice.
#[tokio::test]
async fn prefetches_beyond_the_queue_are_skipped() {
    let world = World::new().await;
    let origin = world.app(slow_png(Duration::from_millis(800))).await;
    let port = origin.port();
    let logos = LogoCache::new(egress(
        &world,
        port,
        "max_concurrent_logo_fetches = 1\nlogo_prefetch_queue = 1",
    ));
    let later = Instant::now() + Duration::from_secs(60);
    let [first, second, third] = ["/a.png", "/b.png", "/c.png"].map(|path| url(port, path));

    assert_eq!(logos.prefetch(&first, later), Prefetch::Queued);
    // The one worker has taken it: the queue is empty again.
    until(|| origin.connections() == 1).await;
    assert_eq!(logos.prefetch(&second, later), Prefetch::Queued);
    assert_eq!(
        logos.prefetch(&third, later),
        Prefetch::Settled(PrefetchOutcome::QueueFull)
    );
    assert_eq!(
        logos.prefetch(&second, later),
        Prefetch::Settled(PrefetchOutcome::Coalesced)
    );
    until(|| logos.held(second.as_str()).is_some()).await;
    assert!(logos.held(first.as_str()).is_some());
    assert!(logos.held(third.as_str()).is_none());
    let paths: Vec<String> = origin.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/a.png", "/b.png"]);
}
