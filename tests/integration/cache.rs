//! The document cache against real origins: lifetimes from HTTP headers,
//! clamping, revalidation, single flight, bounds, and never caching errors.

use std::sync::Arc;
use std::time::Duration;

use cimd_proxy::{CacheStatus, ClientIdUrl, Config, DocumentCache, Egress, ErrorCode};

use crate::support::{ConfigFile, Script, World, client_id, document};

/// A cache over the test world's DNS and CA, with `extra_toml` appended.
fn cache_for(world: &World, port: u16, extra_toml: &str) -> DocumentCache {
    cache_from(&world.config(port).with_extra(extra_toml))
}

fn cache_from(file: &ConfigFile) -> DocumentCache {
    let config = Config::from_toml_str(&file.to_toml(), None).expect("valid test config");
    let egress = Egress::new(&config.fetch, Vec::new()).expect("egress");
    DocumentCache::new(Arc::new(egress), config.cache)
}

fn id(url: &str) -> ClientIdUrl {
    ClientIdUrl::parse(url).expect("valid client_id")
}

const CLAMPS: &str = "[cache]\nmin_ttl_s = 60\nmax_ttl_s = 3600\ndefault_ttl_s = 300\n";

#[tokio::test]
async fn lifetime_follows_cache_control_within_the_clamps() {
    let world = World::new().await;
    for (headers, expected_ttl) in [
        (vec![("Cache-Control", "max-age=120")], 120),
        (vec![("Cache-Control", "public, max-age=5")], 60),
        (vec![("Cache-Control", "max-age=999999")], 3600),
        (vec![("Cache-Control", "no-store")], 60),
        (vec![("Cache-Control", "no-cache")], 60),
        (vec![], 300),
        (vec![("Expires", "Thu, 01 Jan 1970 00:00:00 GMT")], 60),
    ] {
        let (origin, url) = world
            .app_with(|id| Script::json_with(&headers, document(id).to_string()))
            .await;
        let cache = cache_for(&world, origin.port(), CLAMPS);
        let resolved = cache.resolve(&id(&url)).await.expect("valid document");
        assert_eq!(
            resolved.document.fetch.cache_ttl_s, expected_ttl,
            "headers {headers:?}"
        );
    }
}

#[tokio::test]
async fn a_fresh_entry_is_served_without_a_second_fetch() {
    let world = World::new().await;
    let (origin, url) = world.valid_app().await;
    let cache = cache_for(&world, origin.port(), CLAMPS);
    let first = cache.resolve(&id(&url)).await.unwrap();
    let second = cache.resolve(&id(&url)).await.unwrap();
    assert_eq!(first.status, CacheStatus::Miss);
    assert_eq!(second.status, CacheStatus::Hit);
    assert_eq!(origin.requests().len(), 1);
}

#[tokio::test]
async fn an_expired_entry_is_revalidated_with_its_etag() {
    let world = World::new().await;
    let (origin, url) = world
        .app_with(|id| {
            Script::json_with(
                &[("Cache-Control", "max-age=0"), ("ETag", "\"v1\"")],
                document(id).to_string(),
            )
        })
        .await;
    let cache = cache_for(
        &world,
        origin.port(),
        "[cache]\nmin_ttl_s = 0\ndefault_ttl_s = 0\n",
    );
    assert_eq!(
        cache.resolve(&id(&url)).await.unwrap().status,
        CacheStatus::Miss
    );

    origin.set_script(Script::response(
        304,
        &[("ETag", "\"v1\""), ("Cache-Control", "max-age=0")],
        "",
    ));
    let revalidated = cache.resolve(&id(&url)).await.unwrap();
    assert_eq!(revalidated.status, CacheStatus::Revalidated);
    assert_eq!(revalidated.document.metadata.client_id, url);
    let requests = origin.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].header("if-none-match"), None);
    assert_eq!(requests[1].header("if-none-match"), Some("\"v1\""));
}

#[tokio::test]
async fn a_changed_document_replaces_the_stale_one() {
    let world = World::new().await;
    let (origin, url) = world
        .app_with(|id| {
            Script::json_with(
                &[
                    ("Cache-Control", "max-age=0"),
                    ("Last-Modified", "Wed, 21 Oct 2026 07:28:00 GMT"),
                ],
                document(id).to_string(),
            )
        })
        .await;
    let cache = cache_for(
        &world,
        origin.port(),
        "[cache]\nmin_ttl_s = 0\ndefault_ttl_s = 0\n",
    );
    cache.resolve(&id(&url)).await.unwrap();

    let mut changed = document(&url);
    changed["client_name"] = "Renamed".into();
    origin.set_script(Script::json_with(
        &[("Cache-Control", "max-age=0")],
        changed.to_string(),
    ));
    let refreshed = cache.resolve(&id(&url)).await.unwrap();
    assert_eq!(refreshed.status, CacheStatus::Miss);
    assert_eq!(
        refreshed.document.metadata.client_name.as_deref(),
        Some("Renamed")
    );
    assert_eq!(
        origin.requests()[1].header("if-modified-since"),
        Some("Wed, 21 Oct 2026 07:28:00 GMT")
    );
}

#[tokio::test]
async fn concurrent_misses_share_one_fetch() {
    let world = World::new().await;
    let (origin, url) = world
        .app_with(|id| {
            Script::new()
                .sleep(Duration::from_millis(300))
                .write(json_response(&document(id).to_string()))
        })
        .await;
    let cache = Arc::new(cache_for(&world, origin.port(), CLAMPS));
    let lookups: Vec<_> = (0..50)
        .map(|_| {
            let cache = Arc::clone(&cache);
            let client = id(&url);
            tokio::spawn(async move { cache.resolve(&client).await.map(|r| r.status) })
        })
        .collect();
    let mut statuses = Vec::new();
    for lookup in lookups {
        statuses.push(lookup.await.unwrap().expect("valid document"));
    }
    assert_eq!(origin.requests().len(), 1, "one fetch for all lookups");
    let misses = statuses.iter().filter(|s| **s == CacheStatus::Miss).count();
    assert_eq!(misses, 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| matches!(
        s,
        CacheStatus::Miss | CacheStatus::Coalesced | CacheStatus::Hit
    )));
}

#[tokio::test]
async fn errors_and_invalid_documents_are_never_cached() {
    let world = World::new().await;
    let (origin, url) = world
        .app_with(|_| Script::response(500, &[("Content-Type", "application/json")], "{}"))
        .await;
    let cache = cache_for(&world, origin.port(), CLAMPS);
    let error = cache.resolve(&id(&url)).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::HttpStatus);

    origin.set_script(Script::json(r#"{"client_id": "https://elsewhere.test/c"}"#));
    let error = cache.resolve(&id(&url)).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::ClientIdMismatch);

    origin.set_script(Script::json(document(&url).to_string()));
    let resolved = cache.resolve(&id(&url)).await.expect("now valid");
    assert_eq!(resolved.status, CacheStatus::Miss);
    assert_eq!(origin.requests().len(), 3, "every failure was refetched");
}

#[tokio::test]
async fn max_entries_bounds_the_cache() {
    let world = World::new().await;
    let (origin, _) = world.valid_app().await;
    let port = origin.port();
    let urls: Vec<String> = (0..40)
        .map(|n| client_id("app.test", port, &format!("/c{n}.json")))
        .collect();
    for (n, url) in urls.iter().enumerate() {
        origin.set_route(
            &format!("/c{n}.json"),
            Script::json(document(url).to_string()),
        );
    }
    let cache = cache_for(&world, port, "[cache]\nmax_entries = 8\n");
    for url in &urls {
        cache.resolve(&id(url)).await.expect("valid document");
    }
    let held = cache.entry_count();
    assert!(
        held <= 8,
        "cache holds {held} entries, more than max_entries"
    );
}

#[tokio::test]
async fn fetches_beyond_the_cap_are_refused_at_once() {
    let world = World::new().await;
    let (origin, slow_url) = world
        .app_with(|id| {
            Script::new()
                .sleep(Duration::from_millis(800))
                .write(json_response(&document(id).to_string()))
        })
        .await;
    let other_url = client_id("app.test", origin.port(), "/other.json");
    origin.set_route(
        "/other.json",
        Script::json(document(&other_url).to_string()),
    );
    let mut config = world.config(origin.port());
    config.fetch.max_concurrent_fetches = 1;
    let capped = Arc::new(cache_from(&config));

    let slow = {
        let capped = Arc::clone(&capped);
        let client = id(&slow_url);
        tokio::spawn(async move { capped.resolve(&client).await.map(|r| r.status) })
    };
    while origin.connections() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = capped.resolve(&id(&other_url)).await.unwrap_err();
    assert_eq!(refused.code(), ErrorCode::FetchOverloaded);
    assert_eq!(slow.await.unwrap().unwrap(), CacheStatus::Miss);
    // The permit came back: the same request now succeeds.
    assert!(capped.resolve(&id(&other_url)).await.is_ok());
}

/// A complete 200 JSON response, for scripts that pause before answering.
fn json_response(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A cache whose entries expire at once, with a stale-if-error window.
fn expiring_cache(world: &World, port: u16, stale_if_error_s: u64) -> DocumentCache {
    cache_for(
        world,
        port,
        &format!(
            "[cache]\nmin_ttl_s = 0\ndefault_ttl_s = 0\nstale_if_error_s = {stale_if_error_s}\n"
        ),
    )
}

/// A valid document that expires at once (an ETag, so it is revalidated).
async fn expiring_app(world: &World) -> (crate::support::Origin, String) {
    world
        .app_with(|id| {
            Script::json_with(
                &[("Cache-Control", "max-age=0"), ("ETag", "\"v1\"")],
                document(id).to_string(),
            )
        })
        .await
}

#[tokio::test]
async fn an_expired_document_is_served_stale_while_its_origin_fails_within_the_window() {
    let world = World::new().await;
    let (origin, url) = expiring_app(&world).await;
    let cache = expiring_cache(&world, origin.port(), 2);
    assert_eq!(
        cache.resolve(&id(&url)).await.unwrap().status,
        CacheStatus::Miss
    );

    // An HTTP 5xx, then a connection closed without an answer.
    origin.set_script(Script::response(503, &[], "down for maintenance"));
    let stale = cache.resolve(&id(&url)).await.expect("served stale");
    assert_eq!(stale.status, CacheStatus::Stale);
    assert_eq!(stale.document.metadata.client_id, url);
    origin.set_script(Script::new());
    let stale = cache.resolve(&id(&url)).await.expect("served stale");
    assert_eq!(stale.status, CacheStatus::Stale);
    // Every stale lookup asked the origin again.
    assert_eq!(origin.requests().len(), 2 + 1);

    // Past the window the error is the answer.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    origin.set_script(Script::response(503, &[], "still down"));
    let error = cache.resolve(&id(&url)).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::HttpStatus);

    // A recovered origin is used at once.
    origin.set_script(Script::json(document(&url).to_string()));
    assert_eq!(
        cache.resolve(&id(&url)).await.unwrap().status,
        CacheStatus::Miss
    );
}

#[tokio::test]
async fn a_removed_or_invalid_document_is_never_served_stale() {
    let world = World::new().await;
    for (answer, code) in [
        (Script::response(404, &[], "gone"), ErrorCode::HttpStatus),
        (Script::response(410, &[], "gone"), ErrorCode::HttpStatus),
        (
            Script::json(r#"{"client_id": "https://elsewhere.test/c"}"#),
            ErrorCode::ClientIdMismatch,
        ),
    ] {
        let (origin, url) = expiring_app(&world).await;
        let cache = expiring_cache(&world, origin.port(), 300);
        cache.resolve(&id(&url)).await.expect("valid at first");

        origin.set_script(answer);
        let error = cache.resolve(&id(&url)).await.unwrap_err();
        assert_eq!(error.code(), code);
        // The entry is gone: an outage right after does not bring it back,
        // and no conditional request is made for it any more.
        origin.set_script(Script::response(503, &[], "down"));
        let error = cache.resolve(&id(&url)).await.unwrap_err();
        assert_eq!(error.code(), ErrorCode::HttpStatus);
        let requests = origin.requests();
        assert_eq!(requests.last().unwrap().header("if-none-match"), None);
    }
}

#[tokio::test]
async fn stale_if_error_zero_serves_nothing_stale() {
    let world = World::new().await;
    let (origin, url) = expiring_app(&world).await;
    let cache = expiring_cache(&world, origin.port(), 0);
    cache.resolve(&id(&url)).await.unwrap();
    origin.set_script(Script::response(502, &[], "bad gateway"));
    let error = cache.resolve(&id(&url)).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::HttpStatus);
}
