//! The HTTP client for the provider: hyper's pooled client over rustls.
//!
//! Unlike [`crate::egress`], the destination is the operator's, so names
//! are resolved by the system resolver and private addresses are fine. What
//! is kept: rustls with the ring provider and the web PKI roots plus
//! `extra_root_certs`; one deadline over the whole call; no redirect followed
//! (hyper's client never follows one); no proxy from the environment (no
//! code path reads one); a bounded, unencoded response.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use url::Url;

use super::UpstreamConfig;
use super::UpstreamError;

/// The cap on any answer from the provider. Discovery documents and JWKS
/// are a few KiB; a token response a few more.
pub(super) const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// The most idle connections kept to the provider: as many as a busy
/// replica has token calls in flight at once.
const MAX_IDLE_CONNECTIONS: usize = 256;

/// Sent with every call, so the provider's logs can tell who is asking.
const USER_AGENT: &str = concat!("cimd-proxy/", env!("CARGO_PKG_VERSION"));

/// One answer from the provider, its body complete and within the cap.
#[derive(Debug)]
pub(super) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The pooled client and the deadline it works under.
pub(super) struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl HttpClient {
    /// Builds the client from `[upstream]`: TLS roots and the deadline.
    pub(super) fn new(config: &UpstreamConfig) -> Result<Self, UpstreamError> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = &config.extra_root_certs {
            for cert in crate::egress::load_pem_certificates(path).map_err(UpstreamError::Tls)? {
                roots
                    .add(cert)
                    .map_err(|error| UpstreamError::Tls(format!("{}: {error}", path.display())))?;
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|error| UpstreamError::Tls(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();

        let mut connector = HttpConnector::new();
        // The https wrapper below decides per scheme; plain http stays
        // allowed for an in-cluster or loopback provider the operator named.
        connector.enforce_http(false);
        connector.set_connect_timeout(Some(config.timeout));
        connector.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        // Every token call goes to one host. Connections a burst opened
        // stay for the next one: with too few kept, each call beyond them
        // paid a new connection (and against a real provider a TLS
        // handshake) under load. Idle ones close after 30 s.
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(MAX_IDLE_CONNECTIONS)
            .build(https);
        Ok(HttpClient {
            client,
            timeout: config.timeout,
        })
    }

    /// A GET asking for JSON.
    pub(super) async fn get(&self, url: &Url) -> Result<Answer, UpstreamError> {
        let request = self
            .request(Method::GET, url)
            .body(Full::new(Bytes::new()))
            .map_err(|error| invalid_request(url, &error))?;
        self.send(request, url).await
    }

    /// A form POST; `authorization` (marked sensitive) if given.
    pub(super) async fn post_form(
        &self,
        url: &Url,
        body: Bytes,
        authorization: Option<HeaderValue>,
    ) -> Result<Answer, UpstreamError> {
        let mut builder = self.request(Method::POST, url).header(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        if let Some(mut value) = authorization {
            value.set_sensitive(true);
            builder = builder.header(header::AUTHORIZATION, value);
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|error| invalid_request(url, &error))?;
        self.send(request, url).await
    }

    fn request(&self, method: Method, url: &Url) -> http::request::Builder {
        Request::builder()
            .method(method)
            .uri(url.as_str())
            .header(header::USER_AGENT, USER_AGENT)
            .header(header::ACCEPT, "application/json")
    }

    /// Sends and reads the whole answer under one deadline.
    async fn send(
        &self,
        request: Request<Full<Bytes>>,
        url: &Url,
    ) -> Result<Answer, UpstreamError> {
        match tokio::time::timeout(self.timeout, self.exchange(request, url)).await {
            Ok(result) => result,
            Err(_) => Err(UpstreamError::Timeout {
                url: url.to_string(),
                timeout: self.timeout,
            }),
        }
    }

    async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
        url: &Url,
    ) -> Result<Answer, UpstreamError> {
        let response =
            self.client
                .request(request)
                .await
                .map_err(|error| UpstreamError::Unavailable {
                    url: url.to_string(),
                    reason: error_chain(&error),
                })?;
        let (parts, mut body) = response.into_parts();
        let invalid = |reason: String| UpstreamError::InvalidResponse {
            url: url.to_string(),
            reason,
        };
        if let Some(encoding) = parts.headers.get(header::CONTENT_ENCODING) {
            // We never ask for an encoding; an encoded body could not be
            // parsed here nor relayed without its header.
            if !encoding.as_bytes().eq_ignore_ascii_case(b"identity") {
                return Err(invalid("the body is content-encoded".to_owned()));
            }
        }
        let announced = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok());
        if announced.is_some_and(|length| length > MAX_RESPONSE_BYTES as u64) {
            return Err(invalid(format!(
                "the body is larger than {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        let mut collected = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|error| UpstreamError::Unavailable {
                url: url.to_string(),
                reason: format!("the answer broke off: {}", error_chain(&error)),
            })?;
            if let Ok(data) = frame.into_data() {
                if collected.len() + data.len() > MAX_RESPONSE_BYTES {
                    return Err(invalid(format!(
                        "the body is larger than {MAX_RESPONSE_BYTES} bytes"
                    )));
                }
                collected.extend_from_slice(&data);
            }
        }
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body: collected.freeze(),
        })
    }
}

/// The body as a JSON object, whatever the content type says: token
/// endpoints in the wild label JSON oddly, and parsing decides.
pub(super) fn json_object(
    answer: &Answer,
    url: &Url,
) -> Result<serde_json::Map<String, serde_json::Value>, UpstreamError> {
    match serde_json::from_slice::<serde_json::Value>(&answer.body) {
        Ok(serde_json::Value::Object(object)) => Ok(object),
        _ => Err(UpstreamError::InvalidResponse {
            url: url.to_string(),
            reason: "the body is not a JSON object".to_owned(),
        }),
    }
}

/// The body of a metadata document or JWKS: labelled as JSON and a JSON object.
pub(super) fn json_document(
    answer: &Answer,
    url: &Url,
) -> Result<serde_json::Map<String, serde_json::Value>, UpstreamError> {
    if !is_json_content_type(&answer.headers) {
        return Err(UpstreamError::InvalidResponse {
            url: url.to_string(),
            reason: "the answer is not labelled application/json".to_owned(),
        });
    }
    json_object(answer, url)
}

/// Whether the answer is labelled as JSON (`application/json` or
/// `application/*+json`), as metadata documents and JWKS must be.
fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn invalid_request(url: &Url, error: &http::Error) -> UpstreamError {
    UpstreamError::InvalidResponse {
        url: url.to_string(),
        reason: format!("cannot build the request: {error}"),
    }
}

/// hyper's client errors say little at the top ("client error (Connect)");
/// the cause is further down the chain.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
