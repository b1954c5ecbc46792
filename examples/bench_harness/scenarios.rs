//! The measuring clients: warming the cache, the cold fetch, the stampede,
//! the flood, and memory samples. Each returns its result as JSON.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

use crate::fixtures::redirect_uri;
use crate::net::{Conn, enc, ensure_loopback, memory_kib, metric, scrape, summary};

/// A fixed S256 challenge (43 base64url characters).
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// The `/authorize` request a real MCP client sends for document `id` at `origin/dir/id.json`.
pub fn authorize_path(origin: &str, dir: &str, id: &str) -> String {
    let client_id = format!("{origin}/{dir}/{id}.json");
    format!(
        "/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={CHALLENGE}\
         &code_challenge_method=S256&scope=openid%20profile%20email%20offline_access\
         &state=af0ifjsldkj-{id}&nonce=n-0S6_WzA2Mj-{id}\
         &resource=https%3A%2F%2Fmcp.bench.example%2Fmcp",
        enc(&client_id),
        enc(&redirect_uri(id)),
    )
}

/// Writes the `/authorize` paths of `count` cached clients, one per line (for wrk).
pub fn write_paths(origin: &str, prefix: &str, count: usize, out: &std::path::Path) {
    let text: String = (0..count)
        .map(|i| authorize_path(origin, "c", &format!("{prefix}{i}")) + "\n")
        .collect();
    std::fs::write(out, text).expect("write the paths file");
}

/// Authorizes `count` distinct clients `/c/PREFIX{from..}` with `concurrency`
/// connections, so that each is fetched and cached once. A `fetch_overloaded`
/// answer is retried shortly after.
pub async fn warm(
    proxy: SocketAddr,
    origin: &str,
    prefix: &str,
    from: usize,
    count: usize,
    concurrency: usize,
) -> Value {
    let next = Arc::new(AtomicUsize::new(from));
    let end = from + count;
    let retries = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let next = Arc::clone(&next);
        let retries = Arc::clone(&retries);
        let failures = Arc::clone(&failures);
        let origin = origin.to_owned();
        let prefix = prefix.to_owned();
        workers.push(tokio::spawn(async move {
            let mut conn = Conn::new(proxy);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    break;
                }
                let path = authorize_path(&origin, "c", &format!("{prefix}{i}"));
                let mut ok = false;
                for _ in 0..200 {
                    match conn.get(&path).await {
                        Ok(answer) if answer.status == StatusCode::FOUND => {
                            ok = true;
                            break;
                        }
                        Ok(answer) if answer.status == StatusCode::SERVICE_UNAVAILABLE => {
                            retries.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Ok(answer) => {
                            eprintln!(
                                "warm: {} for {path}: {}",
                                answer.status,
                                String::from_utf8_lossy(&answer.body)
                                    .chars()
                                    .take(300)
                                    .collect::<String>()
                            );
                            break;
                        }
                        Err(error) => {
                            eprintln!("warm: {error}");
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                }
                if !ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
    let seconds = started.elapsed().as_secs_f64();
    json!({
        "count": count,
        "failures": failures.load(Ordering::Relaxed),
        "overload_retries": retries.load(Ordering::Relaxed),
        "seconds": seconds,
        "per_second": count as f64 / seconds,
    })
}

fn tls_connector(ca_pem: &std::path::Path) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca_pem).expect("read ca.pem") {
        roots.add(cert.expect("CA certificate")).expect("add CA");
    }
    // The same construction as the proxy's fetcher: ring, safe defaults,
    // default session resumption, ALPN http/1.1.
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// One plain TLS GET: connect, handshake, request, whole body. The same
/// steps the proxy's fetcher takes, without its checks.
async fn plain_tls_get(
    tls: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
    path: &str,
) -> Result<(Duration, usize), String> {
    let started = Instant::now();
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let name = rustls_pki_types::ServerName::from(addr.ip());
    let stream = tls.connect(name, tcp).await.map_err(|e| e.to_string())?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let request = Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .header(hyper::header::USER_AGENT, "cimd-proxy-bench")
        .header(hyper::header::ACCEPT, "application/json")
        .header(hyper::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    if response.status() != StatusCode::OK {
        return Err(format!("document host answered {}", response.status()));
    }
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let elapsed = started.elapsed();
    driver.abort();
    Ok((elapsed, body.len()))
}

/// Scenario 2: a first `/authorize` for an uncached client, against a
/// plain TLS GET of a document of the same kind, interleaved; then the
/// same client again (cached), on the same connection.
pub async fn cold(
    proxy: SocketAddr,
    docs: SocketAddr,
    ca_pem: &std::path::Path,
    n: usize,
) -> Value {
    ensure_loopback(&docs);
    let tls = tls_connector(ca_pem);
    let origin = format!("https://{docs}");
    let run = std::process::id();
    let mut conn = Conn::new(proxy);
    conn.connect().await.expect("connect to the proxy");
    let warmup = 20;
    let (mut plain, mut first, mut cached) = (Vec::new(), Vec::new(), Vec::new());
    let mut bytes = 0;
    let mut errors = 0;
    for i in 0..(n + warmup) {
        let plain_id = format!("cold-{run}-{i}-a");
        let proxy_id = format!("cold-{run}-{i}-b");
        let plain_result = plain_tls_get(&tls, docs, &format!("/c/{plain_id}.json")).await;
        let path = authorize_path(&origin, "c", &proxy_id);
        let first_result = conn.get(&path).await;
        let cached_result = conn.get(&path).await;
        match (plain_result, first_result, cached_result) {
            (Ok((p, len)), Ok(f), Ok(c))
                if f.status == StatusCode::FOUND && c.status == StatusCode::FOUND =>
            {
                if i >= warmup {
                    plain.push(p);
                    first.push(f.elapsed);
                    cached.push(c.elapsed);
                    bytes = len;
                }
            }
            (p, f, _) => {
                errors += 1;
                eprintln!(
                    "cold: plain {:?} proxy {:?}",
                    p.err(),
                    f.map(|a| (
                        a.status,
                        String::from_utf8_lossy(&a.body)
                            .chars()
                            .take(200)
                            .collect::<String>()
                    ))
                );
            }
        }
        // Let each measurement start from an idle machine.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let p50 = |v: &Value| v["p50_ms"].as_f64().unwrap_or(0.0);
    let (plain, first, cached) = (summary(&plain), summary(&first), summary(&cached));
    let added = p50(&first) - p50(&plain);
    json!({
        "n": n,
        "errors": errors,
        "document_bytes": bytes,
        "plain_tls_get": plain,
        "proxy_first_request": first,
        "proxy_cached_request": cached,
        "added_p50_ms": (added * 1000.0).round() / 1000.0,
        "added_p99_ms": ((first["p99_ms"].as_f64().unwrap_or(0.0) - plain["p99_ms"].as_f64().unwrap_or(0.0)) * 1000.0).round() / 1000.0,
    })
}

/// Scenario 3: `n` connections send the first request for one uncached
/// client at the same moment; the document host counts its fetches.
pub async fn stampede(
    proxy: SocketAddr,
    admin: SocketAddr,
    stats: SocketAddr,
    docs: SocketAddr,
    n: usize,
) -> Value {
    ensure_loopback(&stats);
    let origin = format!("https://{docs}");
    let id = format!("stampede-{}-{}", std::process::id(), n);
    let doc_path = format!("/s/{id}.json");
    let path = Arc::new(authorize_path(&origin, "s", &id));
    let before = scrape(admin).await.unwrap_or_default();
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut conn = Conn::new(proxy);
        conn.connect().await.expect("connect to the proxy");
        conns.push(conn);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::with_capacity(n);
    for mut conn in conns {
        let barrier = Arc::clone(&barrier);
        let path = Arc::clone(&path);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            conn.get(&path).await.map(|a| (a.status, a.elapsed))
        }));
    }
    let (mut found, mut other, mut latencies) = (0, 0, Vec::new());
    for task in tasks {
        match task.await {
            Ok(Ok((status, elapsed))) if status == StatusCode::FOUND => {
                found += 1;
                latencies.push(elapsed);
            }
            _ => other += 1,
        }
    }
    let after = scrape(admin).await.unwrap_or_default();
    let delta = |status: &str| {
        let label = format!("status=\"{status}\"");
        metric(&after, "cimd_proxy_cache_lookups_total", &[&label])
            - metric(&before, "cimd_proxy_cache_lookups_total", &[&label])
    };
    let fixture_stats = fetch_stats(stats).await;
    let fetches = fixture_stats["stampede_by_path"][&doc_path]
        .as_u64()
        .unwrap_or(0);
    json!({
        "requests": n,
        "redirected": found,
        "other": other,
        "document_fetches": fetches,
        "lookups": { "miss": delta("miss"), "coalesced": delta("coalesced"), "hit": delta("hit") },
        "latency": summary(&latencies),
    })
}

pub async fn fetch_stats(stats: SocketAddr) -> Value {
    let mut conn = Conn::new(stats);
    match conn.get("/stats").await {
        Ok(answer) => serde_json::from_slice(&answer.body).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

/// Real users: `conns` keep-alive connections, each sending on a fixed
/// schedule (together `rate` requests per second) for `duration`, to the
/// cached clients in `paths`. Latency is from sending to the last byte.
async fn paced_users(
    proxy: SocketAddr,
    paths: Arc<Vec<String>>,
    rate: f64,
    conns: usize,
    duration: Duration,
) -> Value {
    let period = Duration::from_secs_f64(conns as f64 / rate);
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for w in 0..conns {
        let paths = Arc::clone(&paths);
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(proxy);
            let _ = conn.connect().await;
            let offset = period.mul_f64(w as f64 / conns as f64);
            let mut ticks = tokio::time::interval_at(start + offset, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let (mut samples, mut bad, mut i) = (Vec::new(), 0u64, 0usize);
            loop {
                let tick = ticks.tick().await;
                if tick >= deadline {
                    break;
                }
                let path = &paths[(w + i * conns) % paths.len()];
                i += 1;
                match conn.get(path).await {
                    Ok(answer) if answer.status == StatusCode::FOUND => {
                        samples.push(answer.elapsed)
                    }
                    _ => bad += 1,
                }
            }
            (samples, bad)
        }));
    }
    let (mut samples, mut bad) = (Vec::new(), 0);
    for task in tasks {
        if let Ok((s, b)) = task.await {
            samples.extend(s);
            bad += b;
        }
    }
    let mut result = summary(&samples);
    result["errors"] = json!(bad);
    result["rate_per_second"] = json!(samples.len() as f64 / duration.as_secs_f64());
    result
}

pub struct FloodArgs {
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    pub stats: SocketAddr,
    pub docs: SocketAddr,
    pub slow: SocketAddr,
    pub cached_prefix: String,
    pub cached_count: usize,
    pub seconds: f64,
    pub user_rate: f64,
    pub user_conns: usize,
    pub attack_rate: f64,
    pub attack_conns: usize,
    pub proxy_pid: u32,
    pub max_fetches: u64,
    /// `fetch.max_concurrent_logo_fetches`: the logo permits, apart.
    pub max_logo_fetches: u64,
}

/// Scenario 4: real users on cached clients, first alone, then while an
/// attacker streams unique client_ids on the slow host.
pub async fn flood(a: FloodArgs) -> Value {
    ensure_loopback(&a.slow);
    let docs_origin = format!("https://{}", a.docs);
    let slow_origin = format!("https://{}", a.slow);
    let paths: Arc<Vec<String>> = Arc::new(
        (0..a.cached_count)
            .map(|i| authorize_path(&docs_origin, "c", &format!("{}{i}", a.cached_prefix)))
            .collect(),
    );
    let duration = Duration::from_secs_f64(a.seconds);
    let calm = paced_users(
        a.proxy,
        Arc::clone(&paths),
        a.user_rate,
        a.user_conns,
        duration,
    )
    .await;

    let _ = Conn::new(a.stats).get("/reset-slow-max").await;
    let stats_before = fetch_stats(a.stats).await;
    let metrics_before = scrape(a.admin).await.unwrap_or_default();
    let (rss_before, _) = memory_kib(a.proxy_pid).unwrap_or((0, 0));

    // The fetch gauge, sampled while the attack runs.
    let stop = Arc::new(AtomicBool::new(false));
    let monitor = {
        let stop = Arc::clone(&stop);
        let admin = a.admin;
        tokio::spawn(async move {
            let mut max_in_flight = 0f64;
            let mut samples = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(text) = scrape(admin).await {
                    max_in_flight =
                        max_in_flight.max(metric(&text, "cimd_proxy_fetches_in_flight", &[]));
                    samples += 1;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (max_in_flight, samples)
        })
    };

    // The attacker: a ticket bucket refilled every 10 ms at `attack_rate`,
    // `attack_conns` connections taking tickets.
    let tickets = Arc::new(tokio::sync::Semaphore::new(0));
    let dropped = Arc::new(AtomicU64::new(0));
    let ticker = {
        let tickets = Arc::clone(&tickets);
        let dropped = Arc::clone(&dropped);
        let stop = Arc::clone(&stop);
        let per_tick = a.attack_rate / 100.0;
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_millis(10));
            let mut owed = 0.0;
            while !stop.load(Ordering::Relaxed) {
                ticks.tick().await;
                owed += per_tick;
                let whole = owed.floor() as usize;
                owed -= whole as f64;
                let room =
                    (per_tick.ceil() as usize * 10).saturating_sub(tickets.available_permits());
                tickets.add_permits(whole.min(room));
                dropped.fetch_add(whole.saturating_sub(room) as u64, Ordering::Relaxed);
            }
            tickets.close();
        })
    };
    let sequence = Arc::new(AtomicU64::new(0));
    let run = std::process::id();
    let mut attackers = Vec::new();
    for _ in 0..a.attack_conns {
        let tickets = Arc::clone(&tickets);
        let sequence = Arc::clone(&sequence);
        let origin = slow_origin.clone();
        let proxy = a.proxy;
        attackers.push(tokio::spawn(async move {
            let mut conn = Conn::new(proxy);
            let _ = conn.connect().await;
            let mut outcomes: Vec<(u16, Duration)> = Vec::new();
            while let Ok(permit) = tickets.acquire().await {
                permit.forget();
                let n = sequence.fetch_add(1, Ordering::Relaxed);
                let path = authorize_path(&origin, "f", &format!("flood-{run}-{n}"));
                match conn.get(&path).await {
                    Ok(answer) => outcomes.push((answer.status.as_u16(), answer.elapsed)),
                    Err(_) => outcomes.push((0, Duration::ZERO)),
                }
            }
            outcomes
        }));
    }
    // Let the attack fill every fetch slot before the users are measured.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let under_attack = paced_users(
        a.proxy,
        Arc::clone(&paths),
        a.user_rate,
        a.user_conns,
        duration,
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let _ = ticker.await;
    let (max_in_flight, gauge_samples) = monitor.await.unwrap_or((0.0, 0));
    let (mut refused, mut fetched, mut other) = (Vec::new(), Vec::new(), 0u64);
    for attacker in attackers {
        for (status, elapsed) in attacker.await.unwrap_or_default() {
            match status {
                503 => refused.push(elapsed),
                302 => fetched.push(elapsed),
                _ => other += 1,
            }
        }
    }
    let (rss_after, _) = memory_kib(a.proxy_pid).unwrap_or((0, 0));
    let stats_after = fetch_stats(a.stats).await;
    let metrics_after = scrape(a.admin).await.unwrap_or_default();
    let delta = |name: &str, labels: &[&str]| {
        metric(&metrics_after, name, labels) - metric(&metrics_before, name, labels)
    };
    let slow_max = stats_after["slow"]["max_open"].as_i64().unwrap_or(-1);
    let slow_connections = stats_after["slow"]["connections"].as_u64().unwrap_or(0)
        - stats_before["slow"]["connections"].as_u64().unwrap_or(0);
    json!({
        "seconds": a.seconds,
        "max_concurrent_fetches": a.max_fetches,
        "max_concurrent_logo_fetches": a.max_logo_fetches,
        "users": { "rate": a.user_rate, "connections": a.user_conns, "calm": calm, "under_attack": under_attack },
        "attack": {
            "rate": a.attack_rate,
            "connections": a.attack_conns,
            "sent": sequence.load(Ordering::Relaxed),
            "not_sent_bucket_full": dropped.load(Ordering::Relaxed),
            "refused_fetch_overloaded": refused.len(),
            "refused_latency": summary(&refused),
            "fetched_slowly": fetched.len(),
            "fetched_latency": summary(&fetched),
            "other": other,
        },
        "slow_host": { "max_open_connections": slow_max, "connections": slow_connections },
        "proxy": {
            "max_fetches_in_flight_sampled": max_in_flight,
            "gauge_samples": gauge_samples,
            "authorize_fetch_overloaded": delta("cimd_proxy_authorize_requests_total", &["outcome=\"fetch_overloaded\""]),
            "document_fetches_ok": delta("cimd_proxy_fetches_total", &["kind=\"document\"", "outcome=\"ok\""]),
            "document_fetches_overloaded": delta("cimd_proxy_fetches_total", &["kind=\"document\"", "outcome=\"fetch_overloaded\""]),
            "rss_kib_before": rss_before,
            "rss_kib_after": rss_after,
        },
    })
}

/// Appends one memory sample of the proxy (RSS, peak, cached entries) to `out` as a JSON line.
pub async fn sample(pid: u32, admin: SocketAddr, label: &str, out: &std::path::Path) -> Value {
    // Settle: let moka apply pending evictions before reading.
    let text = scrape(admin).await.unwrap_or_default();
    let _ = text;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let text = scrape(admin).await.unwrap_or_default();
    let (rss, hwm) = memory_kib(pid).unwrap_or((0, 0));
    let line = json!({
        "label": label,
        "rss_kib": rss,
        "hwm_kib": hwm,
        "cache_entries": metric(&text, "cimd_proxy_cache_entries", &[]),
    });
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .expect("open the memory samples file");
    writeln!(file, "{line}").expect("write a memory sample");
    line
}
