//! Small HTTP/1.1 servers and clients on loopback, latency summaries, and
//! readers for the proxy's metrics and resident memory.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// Every address the harness listens on or sends to must be loopback.
pub fn ensure_loopback(addr: &SocketAddr) {
    assert!(
        addr.ip().is_loopback(),
        "{addr} is not a loopback address: the benchmark only runs on 127.0.0.0/8"
    );
}

/// A response with a body and a content type.
pub fn respond(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

/// Counts connections open at once and the most seen.
#[derive(Default)]
pub struct Gauge {
    open: AtomicI64,
    max: AtomicI64,
    total: AtomicU64,
}

/// Holds one place in a [`Gauge`] until dropped.
pub struct GaugeGuard(Arc<Gauge>);

impl Gauge {
    pub fn enter(self: &Arc<Self>) -> GaugeGuard {
        let now = self.open.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        self.total.fetch_add(1, Ordering::SeqCst);
        GaugeGuard(Arc::clone(self))
    }

    pub fn snapshot(&self) -> Value {
        json!({
            "open": self.open.load(Ordering::SeqCst),
            "max_open": self.max.load(Ordering::SeqCst),
            "connections": self.total.load(Ordering::SeqCst),
        })
    }

    pub fn reset_max(&self) {
        self.max
            .store(self.open.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves HTTP/1.1 (over TLS when `tls` is given) with `handler`, forever.
pub async fn serve<H, F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    gauge: Option<Arc<Gauge>>,
    handler: H,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let handler = handler.clone();
        let tls = tls.clone();
        let gauge = gauge.clone();
        tokio::spawn(async move {
            let _guard = gauge.as_ref().map(Gauge::enter);
            let service = hyper::service::service_fn(move |request| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler(request).await) }
            });
            let builder = hyper::server::conn::http1::Builder::new();
            match tls {
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(tcp).await {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
                None => {
                    let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                }
            }
        });
    }
}

/// One keep-alive HTTP/1.1 client connection (plain TCP, loopback).
pub struct Conn {
    addr: SocketAddr,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

/// A response: status, body, and the time from sending to the last byte.
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
    pub elapsed: Duration,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Self {
        ensure_loopback(&addr);
        Conn { addr, sender: None }
    }

    /// Opens the connection now (so that connecting is not timed later).
    pub async fn connect(&mut self) -> Result<(), String> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect {}: {e}", self.addr))?;
        let _ = tcp.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        self.sender = Some(sender);
        Ok(())
    }

    pub async fn get(&mut self, path: &str) -> Result<Answer, String> {
        self.send("GET", path, None).await
    }

    pub async fn post_form(&mut self, path: &str, body: String) -> Result<Answer, String> {
        self.send("POST", path, Some(body)).await
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> Result<Answer, String> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.connect().await?;
        }
        let sender = self.sender.as_mut().ok_or("no connection")?;
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, self.addr.to_string())
            .header(hyper::header::USER_AGENT, "cimd-proxy-bench");
        if body.is_some() {
            request = request.header(
                hyper::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| e.to_string())?;
        let started = Instant::now();
        let result = async {
            sender.ready().await.map_err(|e| e.to_string())?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((status, body))
        }
        .await;
        match result {
            Ok((status, body)) => Ok(Answer {
                status,
                body,
                elapsed: started.elapsed(),
            }),
            Err(error) => {
                self.sender = None;
                Err(error)
            }
        }
    }
}

/// Percentiles (nearest rank) and mean of durations, in milliseconds.
pub fn summary(samples: &[Duration]) -> Value {
    let mut sorted: Vec<Duration> = samples.to_vec();
    sorted.sort();
    let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
    let pct = |p: f64| -> f64 {
        if sorted.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        ms(sorted[rank.clamp(1, sorted.len()) - 1])
    };
    let mean = if sorted.is_empty() {
        0.0
    } else {
        ms(sorted.iter().sum::<Duration>() / sorted.len() as u32)
    };
    json!({
        "n": sorted.len(),
        "p50_ms": pct(50.0),
        "p90_ms": pct(90.0),
        "p99_ms": pct(99.0),
        "max_ms": sorted.last().map_or(0.0, |d| ms(*d)),
        "mean_ms": mean,
    })
}

/// The proxy's Prometheus text from its admin listener.
pub async fn scrape(admin: SocketAddr) -> Result<String, String> {
    let mut conn = Conn::new(admin);
    let answer = conn.get("/metrics").await?;
    Ok(String::from_utf8_lossy(&answer.body).into_owned())
}

/// The sum of a metric's samples whose label set contains every `labels` pair text.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric_name, label_text) = match series.split_once('{') {
                Some((n, rest)) => (n, rest),
                None => (series, ""),
            };
            (metric_name == name && labels.iter().all(|l| label_text.contains(l)))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// VmRSS and VmHWM of a process, in KiB.
pub fn memory_kib(pid: u32) -> Result<(u64, u64), String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    let field = |name: &str| -> Result<u64, String> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// Percent-encodes a query or form value.
pub fn enc(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
