//! Request ids: every request gets one, the audit lines it produces carry it
//! (as the `id` field of the `request` span) and the response returns it in
//! `X-Request-Id`, so a user's report can be matched to the log. A caller's
//! own id is kept only if it is short and plain; otherwise one is made.
//!
//! tower-http's request-id layers carry the id and its trace layer opens
//! the span; what is ours is the rule for a caller's id and the id maker.

use axum::Router;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

/// `router` with request ids. The last layer added runs first: a caller's
/// id that is not plain is dropped, one is made where none is left, the
/// request runs in a `request` span naming it, and the response returns it.
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
        .layer(SetRequestIdLayer::new(X_REQUEST_ID, MakeId))
        .layer(axum::middleware::map_request(drop_caller_id_unless_plain))
}

/// The header a request's id travels in, both ways.
const X_REQUEST_ID: axum::http::HeaderName = axum::http::HeaderName::from_static("x-request-id");

/// A caller's own id is kept only if it is short and plain (it ends up in
/// log lines); otherwise it is removed here and [`MakeId`] makes one.
async fn drop_caller_id_unless_plain(
    mut request: axum::extract::Request,
) -> axum::extract::Request {
    let plain = request.headers().get(X_REQUEST_ID).is_none_or(|id| {
        let id = id.as_bytes();
        !id.is_empty()
            && id.len() <= 64
            && id
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
    });
    if !plain {
        request.headers_mut().remove(X_REQUEST_ID);
    }
    request
}

/// Makes the id of a request that came without a plain one.
#[derive(Clone, Copy)]
struct MakeId;

impl MakeRequestId for MakeId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        axum::http::HeaderValue::from_str(&new_request_id())
            .ok()
            .map(RequestId::new)
    }
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
fn new_request_id() -> String {
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
    format!("{z:016x}")
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
