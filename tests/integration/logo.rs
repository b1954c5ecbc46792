//! Logos go through the hardened fetcher and are served only when they
//! really are the raster image they claim to be.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use cimd_proxy::logo::{LogoCache, LogoError};
use cimd_proxy::{Config, Egress, ErrorCode};
use url::Url;

use crate::support::{Script, World};

const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

fn logos(world: &World, port: u16) -> LogoCache {
    logos_from(&world.config(port).to_toml())
}

fn logos_from(config: &str) -> LogoCache {
    let config = Config::from_toml_str(config, None).expect("valid config");
    LogoCache::new(Arc::new(
        Egress::new(&config.fetch, Vec::new()).expect("egress"),
    ))
}

fn fetch_code(error: &LogoError) -> Option<ErrorCode> {
    match error {
        LogoError::Fetch(error) => Some(error.code()),
        LogoError::NotAnImage => None,
    }
}

#[tokio::test]
async fn a_real_png_is_served_with_its_verified_type() {
    let world = World::new().await;
    let origin = world
        .app(Script::response(200, &[("Content-Type", "image/png")], PNG))
        .await;
    let url = Url::parse(&format!("https://app.test:{}/logo.png", origin.port())).unwrap();
    let cache = logos(&world, origin.port());
    let logo = cache.get(&url).await.expect("a PNG is served");
    assert_eq!(logo.content_type, "image/png");
    assert_eq!(&logo.bytes[..], PNG);
    // Cached: a second request does not reach the origin.
    cache.get(&url).await.unwrap();
    assert_eq!(origin.requests().len(), 1);
}

#[tokio::test]
async fn a_logo_at_a_refused_address_is_not_fetched() {
    let world = World::new().await;
    let origin = world.app(Script::json("{}")).await;
    world
        .dns
        .set("internal.test", &[IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))]);
    let url = Url::parse(&format!("https://internal.test:{}/logo.png", origin.port())).unwrap();
    let error = logos(&world, origin.port()).get(&url).await.unwrap_err();
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
    let url = Url::parse(&format!("https://app.test:{}/logo.png", origin.port())).unwrap();
    let cache = logos(&world, origin.port());
    // The cap is fetch.max_logo_bytes, not the document cap.
    let text = world.config(origin.port()).to_toml().replace(
        "max_document_bytes = 5120",
        "max_document_bytes = 5120\nmax_logo_bytes = 1024",
    );
    let error = logos_from(&text).get(&url).await.unwrap_err();
    assert_eq!(fetch_code(&error), Some(ErrorCode::TooLarge));
    assert!(
        cache.get(&url).await.is_ok(),
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
    let cache = logos(&world, port);
    for path in ["/svg", "/html"] {
        let url = Url::parse(&format!("https://app.test:{port}{path}")).unwrap();
        let error = cache.get(&url).await.unwrap_err();
        assert_eq!(
            fetch_code(&error),
            Some(ErrorCode::InvalidContentType),
            "{path}"
        );
    }
    let url = Url::parse(&format!("https://app.test:{port}/disguised")).unwrap();
    assert!(matches!(cache.get(&url).await, Err(LogoError::NotAnImage)));
}
