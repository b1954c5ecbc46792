//! Request ids: every request gets one, the audit lines it produces carry it
//! (as the `id` field of the `request` span) and the response returns it in
//! `X-Request-Id`, so a user's report can be matched to the log. A caller's
//! own id is kept only if it is short and plain; otherwise one is made.
//!
//! tower-http's layers set the request's id header, return it in the
//! response and open the span; what is ours is the rule for a caller's id
//! and the id maker. One header layer does both (keep a plain id, replace
//! anything else) so that a request costs no boxed middleware and no
//! extension map: the id travels in the request's header only.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Request};
use tower_http::request_id::PropagateRequestIdLayer;
use tower_http::set_header::SetRequestHeaderLayer;
use tower_http::trace::TraceLayer;

/// `router` with request ids. The last layer added runs first: the request
/// gets its id (the caller's if plain, else a new one), runs in a `request`
/// span naming it, and the response returns it.
pub(super) fn layer<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .layer(
            // Only the span: the proxy's own audit lines say what happened.
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(())
                .on_body_chunk(())
                .on_eos(())
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::new(X_REQUEST_ID))
        .layer(SetRequestHeaderLayer::overriding(
            X_REQUEST_ID,
            request_id::<axum::body::Body>,
        ))
}

/// The header a request's id travels in, both ways.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id: the caller's own if it is short and plain (it ends up
/// in log lines), otherwise a new one.
fn request_id<B>(request: &Request<B>) -> Option<HeaderValue> {
    let caller = request.headers().get(X_REQUEST_ID).filter(|id| {
        let id = id.as_bytes();
        !id.is_empty()
            && id.len() <= 64
            && id
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
    });
    Some(caller.cloned().unwrap_or_else(new_request_id))
}

/// The `request` span, with the id the request now carries.
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let id = request
        .headers()
        .get(X_REQUEST_ID)
        .and_then(|id| id.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!("request", id = %id)
}

/// 64 bits as hex, unique within the process and unpredictable from
/// outside: a counter through a bijective mix (SplitMix64's finalizer)
/// keyed with a random value drawn once. No system call per request.
fn new_request_id() -> HeaderValue {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static KEY: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let key = *KEY.get_or_init(|| {
        let mut bytes = [0u8; 8];
        // Without randomness the ids are only less unique across processes.
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
        u64::from_le_bytes(bytes)
    });
    let mut z = key.wrapping_add(
        COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    // Written in place: no string is made on the way to the header.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 16];
    for (pair, byte) in text.chunks_exact_mut(2).zip(z.to_be_bytes()) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0xf)];
    }
    HeaderValue::from_bytes(&text).unwrap_or(HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::routing::get;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;
    use crate::server::listener;

    /// The `id` field of every `request` span opened while a test runs.
    #[derive(Clone, Default)]
    struct SpanIds(Arc<Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SpanIds {
        fn on_new_span(
            &self,
            attrs: &tracing::span::Attributes<'_>,
            _: &tracing::span::Id,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            struct Id<'a>(&'a mut Vec<String>);
            impl tracing::field::Visit for Id<'_> {
                fn record_debug(
                    &mut self,
                    field: &tracing::field::Field,
                    value: &dyn std::fmt::Debug,
                ) {
                    if field.name() == "id" {
                        self.0.push(format!("{value:?}"));
                    }
                }
            }
            if attrs.metadata().name() == "request" {
                attrs.record(&mut Id(&mut self.0.lock().unwrap()));
            }
        }
    }

    /// Sends one request with `header` (a raw header line, or none) to a
    /// router with request ids; returns the X-Request-Id of the response.
    async fn id_for(header: Option<&str>) -> Option<String> {
        let listener_socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener_socket.local_addr().unwrap();
        let app = layer(Router::new().route("/", get(|| async { "ok" })));
        let (control, drain) = listener::DrainControl::new();
        let settings = listener::ListenerSettings {
            name: "public",
            max_connections: 4,
        };
        let server = tokio::spawn(listener::serve(listener_socket, app, settings, drain));
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let extra = header.map_or(String::new(), |line| format!("{line}\r\n"));
        let request = format!("GET / HTTP/1.1\r\nhost: test\r\n{extra}connection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        control.stop();
        server.await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        response.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("x-request-id")
                .then(|| value.trim().to_owned())
        })
    }

    fn is_made(id: &str) -> bool {
        id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())
    }

    #[tokio::test]
    async fn a_plain_caller_id_is_kept_and_anything_else_replaced() {
        let spans = SpanIds::default();
        // While a scoped subscriber is the only one registered, tracing
        // judges a call site first reached on another thread (another
        // test's server) by that thread's default alone and caches it as
        // unwanted: this test would then miss its spans. A global
        // subscriber that wants nothing keeps every call site judged
        // against this one too.
        let _ =
            tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default());
        let _guard =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
        assert_eq!(
            id_for(Some("x-request-id: e2e-audit_1")).await.as_deref(),
            Some("e2e-audit_1")
        );
        let long = format!("x-request-id: {}", "a".repeat(65));
        for header in [
            None,
            Some("x-request-id: has space"),
            Some("x-request-id: semi;colon"),
            Some(long.as_str()),
            Some("x-request-id:"),
        ] {
            let id = id_for(header).await.expect("an id is returned");
            assert!(is_made(&id), "{header:?} gave {id:?}");
        }
        let (a, b) = (id_for(None).await.unwrap(), id_for(None).await.unwrap());
        assert_ne!(a, b, "made ids differ");
        let seen = spans.0.lock().unwrap().clone();
        assert_eq!(seen.len(), 8, "one request span each: {seen:?}");
        assert_eq!(seen[0], "e2e-audit_1");
        assert_eq!(seen[6..], [a, b], "the span names the id returned");
    }
}
