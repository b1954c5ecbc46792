//! `cimd-proxy check` against real HTTPS origins, a real DNS server and a
//! test CA, all inside this process and on loopback only.
//!
//! Each test builds its own [`World`] (CA, DNS server, scratch directory) and
//! its own origins on port 0, so the tests run in parallel. Addresses the
//! product must refuse appear only as DNS answers; where a refused address is
//! on loopback a [`Decoy`] listens there to prove nothing connected.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

use crate::support::{
    APP_HOST, Cli, ConfigFile, Decoy, LeafCert, ORIGIN_IP, Origin, RunOutput, Script, World,
    client_id, document,
};

/// `fetch.timeout_ms` in every test configuration.
const TIMEOUT_MS: u64 = 1000;

/// How long past `timeout_ms` a bounded failure may take, process start included.
const SLACK: Duration = Duration::from_millis(1500);

/// The latest a fetch bounded by `fetch.timeout_ms` may end.
fn time_bound() -> Duration {
    Duration::from_millis(TIMEOUT_MS) + SLACK
}

/// Checks a run refused `url` with one of `codes`; the error text on failure.
fn refusal(out: &RunOutput, url: &str, codes: &[&str]) -> Result<Value, String> {
    let json: Value = serde_json::from_str(out.stdout.trim())
        .map_err(|e| format!("{url}: stdout is not JSON ({e})\n{out}"))?;
    let code = json["error"]["code"].as_str().unwrap_or("<none>");
    if out.status != Some(1) || json["ok"] != json!(false) || !codes.contains(&code) {
        return Err(format!(
            "{url}: expected exit 1, ok false, error.code in {codes:?}; got exit {:?}, ok {}, code {code}, message {}\n{out}",
            out.status, json["ok"], json["error"]["message"]
        ));
    }
    if json["client_id"] != json!(url) {
        return Err(format!(
            "{url}: JSON client_id is {}, not the URL checked",
            json["client_id"]
        ));
    }
    if !json["error"]["message"].is_string() {
        return Err(format!("{url}: error.message is not a string\n{out}"));
    }
    if code != "policy_denied" && !json["metadata"].is_null() {
        return Err(format!(
            "{url}: a document refused with {code} is reported as metadata\n{out}"
        ));
    }
    Ok(json)
}

/// Asserts a run refused `url` with exactly `code`, and returns the JSON.
fn assert_refused(out: &RunOutput, url: &str, code: &str) -> Value {
    refusal(out, url, &[code]).unwrap_or_else(|e| panic!("{e}"))
}

/// Asserts a run accepted `url` (exit 0, ok, no error) and returns the JSON.
fn assert_accepted(out: &RunOutput, url: &str) -> Value {
    let json = out.json();
    assert_eq!(out.status, Some(0), "{url}: exit code\n{out}");
    assert_eq!(json["ok"], json!(true), "{url}: ok\n{out}");
    assert_eq!(json["error"], Value::Null, "{url}: error\n{out}");
    assert_eq!(json["client_id"], json!(url), "{url}: client_id\n{out}");
    assert_eq!(
        json["metadata"]["client_id"],
        json!(url),
        "{url}: metadata\n{out}"
    );
    json
}

/// Asserts a run ended within the fetch time bound.
fn assert_bounded(out: &RunOutput) {
    assert!(
        out.elapsed < time_bound(),
        "took {:?}, bound is {:?}\n{out}",
        out.elapsed,
        time_bound()
    );
}

/// Panics with every collected failure of a table test.
fn assert_no_failures(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// A valid document serialised to exactly `len` bytes (padded `client_name`).
fn padded_document(id: &str, len: usize) -> String {
    let mut doc = document(id);
    doc["client_name"] = json!("");
    let base = doc.to_string().len();
    assert!(
        len >= base,
        "cannot pad a {base}-byte document down to {len}"
    );
    doc["client_name"] = json!("x".repeat(len - base));
    let text = doc.to_string();
    assert_eq!(text.len(), len);
    text
}

/// Starts a decoy on `ip` using the same port as `port`, or any free port
/// on `ip` when `port` is 0.
async fn decoy_on(ip: IpAddr, port: u16) -> Decoy {
    Decoy::start(SocketAddr::new(ip, port))
        .await
        .unwrap_or_else(|e| panic!("decoy on {ip}:{port}: {e}"))
}

/// An origin on 127.0.0.2 and a decoy on `decoy_ip`, both on one port.
async fn origin_and_decoy_on_one_port(
    world: &World,
    host: &str,
    decoy_ip: IpAddr,
) -> (Origin, Decoy, String) {
    let cert = world.leaf(&[host]);
    for _ in 0..50 {
        let origin = Origin::start(ORIGIN_IP, 0, &cert, Script::new())
            .await
            .expect("origin");
        if let Ok(decoy) = Decoy::start(SocketAddr::new(decoy_ip, origin.port())).await {
            let id = client_id(host, origin.port(), "/cimd.json");
            origin.set_script(Script::json(document(&id).to_string()));
            return (origin, decoy, id);
        }
    }
    panic!("no port free on both {ORIGIN_IP} and {decoy_ip}");
}

// ---------------------------------------------------------------------------
// The happy path
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn valid_document_is_let_through_with_a_warning() {
    let world = World::new().await;
    let (origin, id) = world.valid_app().await;
    let out = world.check(&world.config(origin.port()), &id).await;

    let json = assert_accepted(&out, &id);
    assert_eq!(
        json["decision"],
        json!("warn"),
        "no [policy] means warn\n{out}"
    );
    assert_eq!(
        json["metadata"]["redirect_uris"],
        json!(["https://app.test/cb"])
    );
    let fetch = &json["fetch"];
    assert_eq!(
        fetch["connected_to"],
        json!(format!("127.0.0.2:{}", origin.port())),
        "{out}"
    );
    assert_eq!(fetch["addresses"], json!(["127.0.0.2"]), "{out}");
    let body_len = document(&id).to_string().len() as u64;
    assert_eq!(fetch["bytes"], json!(body_len), "{out}");
    assert!(fetch["cache_ttl_s"].is_u64(), "cache_ttl_s\n{out}");

    let requests = origin.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let request = &requests[0];
    assert_eq!(request.method, "GET");
    assert_eq!(request.path, "/cimd.json");
    assert_eq!(request.local_addr, origin.addr());
    assert_eq!(
        request.header("accept-encoding"),
        None,
        "the fetcher must not ask for encoded bodies: {request:?}"
    );
    assert_eq!(
        request.header("host"),
        Some(format!("app.test:{}", origin.port()).as_str()),
        "Host must be the client_id's authority: {request:?}"
    );
    assert_eq!(
        request.sni.as_deref(),
        Some(APP_HOST),
        "TLS SNI: {request:?}"
    );
    assert!(world.dns.queries(APP_HOST) >= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_refused_is_connect_failure() {
    let world = World::new().await;
    world.dns.set(APP_HOST, &[ORIGIN_IP]);
    let closed = std::net::TcpListener::bind((ORIGIN_IP, 0)).unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let id = client_id(APP_HOST, port, "/cimd.json");
    let out = world.check(&world.config(port), &id).await;
    assert_refused(&out, &id, "connect_failure");
}

// ---------------------------------------------------------------------------
// The client_id URL
// ---------------------------------------------------------------------------

/// An IP-literal client_id on a refused loopback address, with a decoy there.
async fn ip_literal_is_blocked(decoy_ip: IpAddr, url_host: &str) {
    let world = World::new().await;
    let decoy = decoy_on(decoy_ip, 0).await;
    let url = format!("https://{url_host}:{}/x", decoy.port());
    let out = world.check(&world.config(decoy.port()), &url).await;
    assert_refused(&out, &url, "blocked_address");
    assert_eq!(decoy.connections(), 0, "something connected to {decoy_ip}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ipv4_loopback_literal_is_blocked_without_connecting() {
    ip_literal_is_blocked(IpAddr::V4(Ipv4Addr::LOCALHOST), "127.0.0.1").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ipv6_loopback_literal_is_blocked_without_connecting() {
    ip_literal_is_blocked(IpAddr::V6(Ipv6Addr::LOCALHOST), "[::1]").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ipv4_mapped_loopback_literal_is_blocked_without_connecting() {
    // ::ffff:127.0.0.1 reaches a listener on 127.0.0.1.
    ip_literal_is_blocked(IpAddr::V4(Ipv4Addr::LOCALHOST), "[::ffff:7f00:1]").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn client_ids_a_url_parser_would_rewrite_or_refuse_are_invalid() {
    let world = World::new().await;
    let (origin, _) = world.valid_app().await;
    let p = origin.port();
    let mut config = world.config(p);
    config.fetch.allowed_ports = vec![p, 443];
    let cases = [
        "https://0x7f.1/x".to_string(),
        "https://127.1/x".to_string(),
        "https://2130706433/x".to_string(),
        "https://APP.test/x".to_string(),
        format!("https://APP.test:{p}/cimd.json"),
        "https://app.test:443/x".to_string(),
        "https://app.test./x".to_string(),
        format!("https://app.test.:{p}/cimd.json"),
        "http://app.test/x".to_string(),
        format!("http://app.test:{p}/cimd.json"),
        format!("https://user@app.test:{p}/cimd.json"),
        format!("https://app.test:{p}/cimd.json#frag"),
        format!("https://app.test:{p}/a/../cimd.json"),
        format!("https://app.test:{p}/./cimd.json"),
        format!("https://app.test:{p}"),
        format!("https://app.test:0{p}/cimd.json"),
        "not a url".to_string(),
    ];
    let mut failures = Vec::new();
    for url in &cases {
        let out = world.check(&config, url).await;
        if let Err(e) = refusal(&out, url, &["invalid_client_id_url"]) {
            failures.push(e);
        }
    }
    assert_no_failures(failures);
    assert_eq!(
        world.dns.total_queries(),
        0,
        "an invalid client_id must be refused before any DNS lookup"
    );
    assert_eq!(origin.connections(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn port_outside_allowed_ports_is_refused_before_dns() {
    let world = World::new().await;
    let (origin, id) = world.valid_app().await;
    let mut config = world.config(origin.port());
    config.fetch.allowed_ports = vec![443];
    let out = world.check(&config, &id).await;
    assert_refused(&out, &id, "port_not_allowed");
    assert_eq!(world.dns.queries(APP_HOST), 0, "DNS was queried");
    assert_eq!(origin.connections(), 0);
}

// ---------------------------------------------------------------------------
// Addresses from DNS
// ---------------------------------------------------------------------------

/// Does `message` name `ip` as resolved, in its canonical text form
/// (RFC 5952 for IPv6, e.g. `::ffff:10.0.0.1`, `64:ff9b::a00:1`)?
fn names_address(message: &str, ip: IpAddr) -> bool {
    message.contains(&ip.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn names_resolving_to_special_purpose_addresses_are_blocked() {
    let world = World::new().await;
    // A decoy where loopback answers (and 0.0.0.0, which Linux routes to
    // the local host) would land, on the one allowed port.
    let decoy = decoy_on(IpAddr::V4(Ipv4Addr::LOCALHOST), 0).await;
    let config = world.config(decoy.port());
    let addresses = [
        "10.0.0.1",
        "127.0.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "100.100.100.200",
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",
        "2002:7f00:1::",
        "fd00:ec2::254",
        "fe80::1",
        "0.0.0.0",
        "::1",
        "::",
        "192.168.1.1",
        "172.16.0.1",
        "224.0.0.1",
        "255.255.255.255",
    ];
    let mut failures = Vec::new();
    for (i, text) in addresses.iter().enumerate() {
        let ip: IpAddr = text.parse().unwrap();
        let host = format!("blocked{i}.test");
        world.dns.set(&host, &[ip]);
        let url = client_id(&host, decoy.port(), "/cimd.json");
        let out = world.check(&config, &url).await;
        match refusal(&out, &url, &["blocked_address"]) {
            Err(e) => failures.push(format!("[{text}] {e}")),
            Ok(json) => {
                let message = json["error"]["message"].as_str().unwrap_or_default();
                if !names_address(message, ip) {
                    failures.push(format!("[{text}] message does not name it: {message:?}"));
                }
            }
        }
    }
    assert_no_failures(failures);
    assert_eq!(decoy.connections(), 0, "something connected to 127.0.0.1");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_blocked_answer_among_allowed_ones_blocks_the_name() {
    let world = World::new().await;
    let (origin, id) = world.valid_app().await;
    let config = world.config(origin.port());
    let cases: [&[IpAddr]; 2] = [
        &[ORIGIN_IP, "10.0.0.1".parse().unwrap()],
        &[ORIGIN_IP, "fd00:ec2::254".parse().unwrap()],
    ];
    let mut failures = Vec::new();
    for answers in cases {
        world.dns.set(APP_HOST, answers);
        let out = world.check(&config, &id).await;
        if let Err(e) = refusal(&out, &id, &["blocked_address"]) {
            failures.push(format!("{answers:?}: {e}"));
        }
    }
    assert_no_failures(failures);
    assert_eq!(
        origin.connections(),
        0,
        "connected despite a blocked answer"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_rebinding_cannot_redirect_the_connection() {
    let world = World::new().await;
    let rebound = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    let (origin, decoy, id) = origin_and_decoy_on_one_port(&world, "rebind.test", rebound).await;
    world.dns.set_sequence(
        "rebind.test",
        RecordType::A,
        &[vec![ORIGIN_IP], vec![rebound]],
    );
    let out = world.check(&world.config(origin.port()), &id).await;

    let json = assert_accepted(&out, &id);
    assert_eq!(
        json["fetch"]["connected_to"],
        json!(format!("127.0.0.2:{}", origin.port()))
    );
    assert_eq!(decoy.connections(), 0, "connected to the rebound address");
    assert_eq!(origin.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_or_empty_names_are_dns_failures() {
    let world = World::new().await;
    let (origin, _) = world.valid_app().await;
    let config = world.config(origin.port());
    world.dns.set_empty("empty.test");
    let mut failures = Vec::new();
    for host in ["missing.test", "empty.test"] {
        let url = client_id(host, origin.port(), "/cimd.json");
        let out = world.check(&config, &url).await;
        if let Err(e) = refusal(&out, &url, &["dns_failure"]) {
            failures.push(e);
        }
    }
    assert_no_failures(failures);
    assert!(
        world.dns.queries("missing.test") >= 1,
        "configured DNS server not used"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_udp_answers_are_retried_over_tcp() {
    let world = World::new().await;
    let (origin, id) = world.valid_app().await;
    world.dns.set_truncate_udp(true);
    let out = world.check(&world.config(origin.port()), &id).await;
    let json = assert_accepted(&out, &id);
    assert_eq!(json["fetch"]["addresses"], json!(["127.0.0.2"]));
    assert!(world.dns.tcp_queries() >= 1, "no question over TCP");
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_dns_server_fails_within_the_fetch_timeout() {
    let world = World::new().await;
    world.dns.set_silent("silent.test");
    let (origin, _) = world.valid_app().await;
    let url = client_id("silent.test", origin.port(), "/cimd.json");
    let out = world.check(&world.config(origin.port()), &url).await;
    refusal(&out, &url, &["timeout", "dns_failure"]).unwrap_or_else(|e| panic!("{e}"));
    assert_bounded(&out);
    assert!(world.dns.queries("silent.test") >= 1);
}

// ---------------------------------------------------------------------------
// HTTP status and redirects
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn redirects_are_not_followed() {
    let world = World::new().await;
    world.dns.set("internal.test", &[ORIGIN_IP]);
    let mut failures = Vec::new();
    for (status, target) in [
        (302, "https://127.0.0.2:{p}/other"),
        (302, "https://internal.test:{p}/cimd.json"),
        (301, "https://app.test:{p}/other.json"),
        (307, "/other.json"),
        (308, "https://app.test:{p}/other.json"),
    ] {
        let (origin, id) = world
            .app_with(|id| {
                let port = id.rsplit(':').next().unwrap().split('/').next().unwrap();
                Script::redirect(status, &target.replace("{p}", port))
            })
            .await;
        // Whatever the redirect points to would be a valid document.
        origin.set_route("/other", Script::json(document(&id).to_string()));
        origin.set_route("/other.json", Script::json(document(&id).to_string()));
        let out = world.check(&world.config(origin.port()), &id).await;
        if let Err(e) = refusal(&out, &id, &["http_status"]) {
            failures.push(format!("[{status} -> {target}] {e}"));
        }
        if origin.requests().len() != 1 {
            failures.push(format!(
                "[{status} -> {target}] origin saw {} requests",
                origin.requests().len()
            ));
        }
    }
    assert_no_failures(failures);
    assert_eq!(
        world.dns.queries("internal.test"),
        0,
        "redirect target resolved"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn non_200_statuses_are_http_status() {
    let world = World::new().await;
    let mut failures = Vec::new();
    for status in [404u16, 500, 201, 204, 304, 203] {
        let (origin, id) = world
            .app_with(|id| {
                Script::response(
                    status,
                    &[("Content-Type", "application/json")],
                    document(id).to_string(),
                )
            })
            .await;
        let out = world.check(&world.config(origin.port()), &id).await;
        if let Err(e) = refusal(&out, &id, &["http_status"]) {
            failures.push(format!("[{status}] {e}"));
        }
    }
    assert_no_failures(failures);
}

// ---------------------------------------------------------------------------
// Size limits
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn huge_content_length_is_refused_without_reading_the_body() {
    let world = World::new().await;
    let (origin, id) = world
        .app_with(|_| Script::huge_content_length(10_000_000))
        .await;
    let out = world.check(&world.config(origin.port()), &id).await;
    assert_refused(&out, &id, "too_large");
    assert!(
        out.elapsed < Duration::from_millis(TIMEOUT_MS),
        "waited for the body instead of trusting Content-Length: {:?}",
        out.elapsed
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_over_max_document_bytes_are_too_large_however_delimited() {
    let world = World::new().await;
    type Make = fn(String) -> Script;
    let cases: [(&str, Make); 3] = [
        ("content-length", |body| Script::json(body)),
        ("close-delimited", |body| Script::close_delimited(body)),
        ("chunked", |body| Script::chunked(body, 1000)),
    ];
    let mut failures = Vec::new();
    for (label, make) in cases {
        let (origin, id) = world.app_with(|id| make(padded_document(id, 6000))).await;
        let out = world.check(&world.config(origin.port()), &id).await;
        if let Err(e) = refusal(&out, &id, &["too_large"]) {
            failures.push(format!("[{label}] {e}"));
        }
    }
    assert_no_failures(failures);
}

#[tokio::test(flavor = "multi_thread")]
async fn max_document_bytes_is_inclusive() {
    let world = World::new().await;
    let mut failures = Vec::new();
    for (label, chunked) in [("content-length", false), ("chunked", true)] {
        for (len, ok) in [(5120, true), (5121, false)] {
            let (origin, id) = world
                .app_with(|id| {
                    let body = padded_document(id, len);
                    if chunked {
                        Script::chunked(body, 700)
                    } else {
                        Script::json(body)
                    }
                })
                .await;
            let out = world.check(&world.config(origin.port()), &id).await;
            let json = out.json();
            let passed = if ok {
                out.status == Some(0) && json["ok"] == json!(true)
            } else {
                refusal(&out, &id, &["too_large"]).is_ok()
            };
            if !passed {
                failures.push(format!("[{label}, {len} bytes, expected ok={ok}]\n{out}"));
            }
        }
    }
    assert_no_failures(failures);
}

#[tokio::test(flavor = "multi_thread")]
async fn endless_chunked_body_is_too_large_not_a_hang() {
    let world = World::new().await;
    let (origin, id) = world.app_with(|_| Script::endless_chunked()).await;
    let out = world.check(&world.config(origin.port()), &id).await;
    assert_refused(&out, &id, "too_large");
    assert_bounded(&out);
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_response_headers_are_too_large() {
    let world = World::new().await;
    let (origin, id) = world
        .app_with(|id| Script::oversized_headers(64 * 1024, document(id).to_string()))
        .await;
    let out = world.check(&world.config(origin.port()), &id).await;
    assert_refused(&out, &id, "too_large");
    assert_bounded(&out);
}

// ---------------------------------------------------------------------------
// Time limits
// ---------------------------------------------------------------------------

/// A valid response, as raw bytes, for `id`.
fn raw_response(id: &str) -> Vec<u8> {
    let body = document(id).to_string();
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_drip_response_times_out() {
    let world = World::new().await;
    let drip = Duration::from_millis(200);
    let (origin, id) = world
        .app_with(|id| Script::slow_drip(raw_response(id), drip))
        .await;
    let out = world.check(&world.config(origin.port()), &id).await;
    assert_refused(&out, &id, "timeout");
    assert_bounded(&out);
}

#[tokio::test(flavor = "multi_thread")]
async fn fast_headers_then_slow_body_times_out() {
    let world = World::new().await;
    let (origin, id) = world
        .app_with(|id| {
            let body = document(id).to_string();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let mut script = Script::new().write(head);
            for byte in body.bytes() {
                script = script.write([byte]).sleep(Duration::from_millis(200));
            }
            script
        })
        .await;
    let out = world.check(&world.config(origin.port()), &id).await;
    assert_refused(&out, &id, "timeout");
    assert_bounded(&out);
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_and_http_share_one_time_budget() {
    // 650 ms of DNS plus 650 ms of HTTP: each phase is within timeout_ms,
    // the fetch as a whole is not.
    let pause = Duration::from_millis(650);
    let world = World::new().await;
    let (origin, id) = world
        .app_with(|id| Script::new().sleep(pause).write(raw_response(id)))
        .await;
    world.dns.set_delay(APP_HOST, pause);
    let out = world.check(&world.config(origin.port()), &id).await;
    assert_refused(&out, &id, "timeout");
    assert_bounded(&out);
}

#[tokio::test(flavor = "multi_thread")]
async fn origin_silent_after_accept_times_out() {
    let world = World::new().await;
    world.dns.set(APP_HOST, &[ORIGIN_IP]);
    let origin = Origin::start_silent_tcp(ORIGIN_IP, 0).await.unwrap();
    let id = client_id(APP_HOST, origin.port(), "/cimd.json");
    let out = world.check(&world.config(origin.port()), &id).await;
    assert_refused(&out, &id, "timeout");
    assert_bounded(&out);
    assert_eq!(origin.connections(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn origin_silent_after_the_request_times_out() {
    let world = World::new().await;
    let (origin, id) = world.app_with(|_| Script::silent_after_request()).await;
    let out = world.check(&world.config(origin.port()), &id).await;
    assert_refused(&out, &id, "timeout");
    assert_bounded(&out);
    assert_eq!(origin.requests().len(), 1);
}

// ---------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------

/// Serves a valid document for `app.test` with `cert` and checks it.
async fn check_with_cert(world: &World, cert: &LeafCert) -> (Origin, String, RunOutput) {
    world.dns.set(APP_HOST, &[ORIGIN_IP]);
    let origin = Origin::start(ORIGIN_IP, 0, cert, Script::new())
        .await
        .unwrap();
    let id = client_id(APP_HOST, origin.port(), "/cimd.json");
    origin.set_script(Script::json(document(&id).to_string()));
    let out = world.check(&world.config(origin.port()), &id).await;
    (origin, id, out)
}

#[tokio::test(flavor = "multi_thread")]
async fn certificate_for_another_name_is_a_tls_failure() {
    let world = World::new().await;
    let cert = world.leaf(&["other.test"]);
    let (origin, id, out) = check_with_cert(&world, &cert).await;
    assert_refused(&out, &id, "tls_failure");
    assert!(
        origin.requests().is_empty(),
        "a request went over a bad TLS session"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn certificate_for_the_pinned_ip_only_is_a_tls_failure() {
    // The socket goes to 127.0.0.2, but TLS must be verified against app.test.
    let world = World::new().await;
    let cert = world.leaf(&["127.0.0.2"]);
    let (origin, id, out) = check_with_cert(&world, &cert).await;
    assert_refused(&out, &id, "tls_failure");
    assert!(origin.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn self_signed_certificate_is_a_tls_failure() {
    let world = World::new().await;
    let cert = LeafCert::self_signed(&[APP_HOST]);
    let (origin, id, out) = check_with_cert(&world, &cert).await;
    assert_refused(&out, &id, "tls_failure");
    assert!(origin.requests().is_empty());
}

// ---------------------------------------------------------------------------
// Content type and encoding
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn non_json_content_types_and_encoded_bodies_are_refused() {
    let world = World::new().await;
    type Make = fn(&str) -> Script;
    let cases: [(&str, Make); 7] = [
        ("text/json", |id| {
            Script::content_type("text/json", document(id).to_string())
        }),
        ("application/jsonbogus", |id| {
            Script::content_type("application/jsonbogus", document(id).to_string())
        }),
        ("text/html", |id| {
            Script::content_type("text/html", document(id).to_string())
        }),
        ("text/plain", |id| {
            Script::content_type("text/plain", document(id).to_string())
        }),
        ("no content-type", |id| {
            Script::response(200, &[], document(id).to_string())
        }),
        ("gzip", |id| Script::gzip_json(&document(id).to_string())),
        ("identity body labelled br", |id| {
            Script::response(
                200,
                &[
                    ("Content-Type", "application/json"),
                    ("Content-Encoding", "br"),
                ],
                document(id).to_string(),
            )
        }),
    ];
    let mut failures = Vec::new();
    for (label, make) in cases {
        let (origin, id) = world.app_with(make).await;
        let out = world.check(&world.config(origin.port()), &id).await;
        if let Err(e) = refusal(&out, &id, &["invalid_content_type"]) {
            failures.push(format!("[{label}] {e}"));
        }
    }
    assert_no_failures(failures);
}

#[tokio::test(flavor = "multi_thread")]
async fn json_media_types_with_suffix_or_parameters_are_accepted() {
    let world = World::new().await;
    for content_type in [
        "application/jrd+json",
        "application/json; charset=utf-8",
        "Application/JSON",
    ] {
        let (origin, id) = world
            .app_with(|id| Script::content_type(content_type, document(id).to_string()))
            .await;
        let out = world.check(&world.config(origin.port()), &id).await;
        assert_accepted(&out, &id);
    }
}

// ---------------------------------------------------------------------------
// Proxies from the environment
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn proxy_variables_are_ignored() {
    let world = World::new().await;
    let proxy = decoy_on(IpAddr::V4(Ipv4Addr::LOCALHOST), 0).await;
    let proxy_url = format!("http://127.0.0.1:{}", proxy.port());
    let (origin, id) = world.valid_app().await;
    let config = world.write_config(&world.config(origin.port()));
    let mut failures = Vec::new();
    for vars in [
        &["HTTPS_PROXY"][..],
        &["https_proxy"],
        &["ALL_PROXY"],
        &["all_proxy"],
        &[
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
        ],
    ] {
        let mut cli = Cli::check_json(&config, &id);
        for var in vars {
            cli = cli.env(var, &proxy_url);
        }
        let out = cli.run().await;
        let json = out.json();
        if out.status != Some(0) || json["ok"] != json!(true) {
            failures.push(format!("{vars:?}: not fetched directly\n{out}"));
        }
    }
    assert_no_failures(failures);
    assert_eq!(
        proxy.connections(),
        0,
        "the proxy from the environment was used"
    );
    assert_eq!(origin.requests().len(), 5);
}

// ---------------------------------------------------------------------------
// The document
// ---------------------------------------------------------------------------

/// An EC P-256 public key (RFC 7517 JWK) and its private scalar `d`.
const EC_X: &str = "1iQjG-PLPccKwdbyLVzrTGo3I-aZPrlNjrK-F-zrZcw";
const EC_Y: &str = "y7SiQkng4n7sOmg6riLhr7Ftj2g3rfypRxefevrzrZo";
const EC_D: &str = "PZtx_0rRS1YttAvAezBXZHoOpKTbYtCsIIQCkVXNMK0";

/// A 2048-bit RSA public modulus (base64url), for an RS256 JWKS.
const RSA_N: &str = "t74SuqaRYS2rkpbBOp5yNek094TKIQlLCH49xqxKPKd1sSvQtl5x-H4U_FxBqNco5b-xT-AWA89_W5oczvbg_0j6U58RlHdg_RghnK1CcilSH_7l4tUw0jWtzyjBlEutap9FH1RkIXvvixn2ppkXMKnmUeHdceISELh5n7Ej7BH9R29xT40q5_k15XhkD6joQo9DpZSY6mLwkkxsM04LFSebNj2KqvDZyrM8bbuphsII_zHc5fGFvtvO-4swvtkLGFvU8XP1YWCTN-Av9fnXIcW7sYZonlURsODccPW-oOQ_x2GY5ipiwO_0E17ozqMDVBWtR7Q8uOiW_WF5ZrR9nQ";

fn ec_public_jwk() -> Value {
    json!({"kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_Y, "use": "sig", "alg": "ES256", "kid": "k1"})
}

/// What a document test serves: a JSON edit of the valid document, or a raw body.
enum Body {
    Edit(fn(&mut Value, &str)),
    Raw(fn(&str) -> String),
}

/// Serves each case's body for its own origin and checks the refusal code.
async fn document_cases(cases: Vec<(&str, Body, &[&str])>) {
    let world = World::new().await;
    let mut failures = Vec::new();
    for (label, body, codes) in cases {
        let (origin, id) = world
            .app_with(|id| {
                let text = match body {
                    Body::Edit(edit) => {
                        let mut doc = document(id);
                        edit(&mut doc, id);
                        doc.to_string()
                    }
                    Body::Raw(make) => make(id),
                };
                Script::json(text)
            })
            .await;
        let out = world.check(&world.config(origin.port()), &id).await;
        if let Err(e) = refusal(&out, &id, codes) {
            failures.push(format!("[{label}] {e}"));
        }
    }
    assert_no_failures(failures);
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_that_are_not_one_strict_json_object_are_invalid_json() {
    const CODE: &[&str] = &["invalid_json"];
    document_cases(vec![
        ("not JSON", Body::Raw(|_| "client_id=nope".into()), CODE),
        ("empty body", Body::Raw(|_| String::new()), CODE),
        ("array", Body::Raw(|id| json!([document(id)]).to_string()), CODE),
        ("string", Body::Raw(|id| json!(id).to_string()), CODE),
        (
            "duplicate key",
            Body::Raw(|id| {
                format!(
                    r#"{{"client_id":"{id}","redirect_uris":["https://app.test/cb"],"token_endpoint_auth_method":"client_secret_basic","token_endpoint_auth_method":"none"}}"#
                )
            }),
            CODE,
        ),
        (
            "trailing garbage",
            Body::Raw(|id| format!("{} x", document(id))),
            CODE,
        ),
        (
            "truncated",
            Body::Raw(|id| {
                let text = document(id).to_string();
                text[..text.len() - 1].to_string()
            }),
            CODE,
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn document_client_id_must_equal_the_url_as_a_string() {
    const CODE: &[&str] = &["client_id_mismatch"];
    document_cases(vec![
        (
            "trailing slash",
            Body::Edit(|doc, id| doc["client_id"] = json!(format!("{id}/"))),
            CODE,
        ),
        (
            "upper-case host",
            Body::Edit(|doc, id| doc["client_id"] = json!(id.replace("app.test", "APP.test"))),
            CODE,
        ),
        (
            "port dropped",
            Body::Edit(|doc, id| {
                let port = id.rsplit(':').next().unwrap().split('/').next().unwrap();
                doc["client_id"] = json!(id.replace(&format!(":{port}"), ""));
            }),
            CODE,
        ),
        (
            "port 443 instead",
            Body::Edit(|doc, id| {
                let port = id.rsplit(':').next().unwrap().split('/').next().unwrap();
                doc["client_id"] = json!(id.replace(&format!(":{port}"), ":443"));
            }),
            CODE,
        ),
        (
            "other path",
            Body::Edit(|doc, id| doc["client_id"] = json!(id.replace("cimd", "other"))),
            CODE,
        ),
        (
            "missing",
            Body::Edit(|doc, _| {
                doc.as_object_mut().unwrap().remove("client_id");
            }),
            &["client_id_mismatch", "invalid_metadata"],
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn documents_breaking_cimd_rules_are_invalid_metadata() {
    const CODE: &[&str] = &["invalid_metadata"];
    document_cases(vec![
        (
            "missing redirect_uris",
            Body::Edit(|doc, _| {
                doc.as_object_mut().unwrap().remove("redirect_uris");
            }),
            CODE,
        ),
        (
            "empty redirect_uris",
            Body::Edit(|doc, _| doc["redirect_uris"] = json!([])),
            CODE,
        ),
        (
            "client_secret_basic",
            Body::Edit(|doc, _| doc["token_endpoint_auth_method"] = json!("client_secret_basic")),
            CODE,
        ),
        (
            "client_secret_post",
            Body::Edit(|doc, _| doc["token_endpoint_auth_method"] = json!("client_secret_post")),
            CODE,
        ),
        (
            "client_secret_jwt",
            Body::Edit(|doc, _| doc["token_endpoint_auth_method"] = json!("client_secret_jwt")),
            CODE,
        ),
        (
            "client_secret member",
            Body::Edit(|doc, _| doc["client_secret"] = json!("s3cr3t")),
            CODE,
        ),
        (
            "client_secret_expires_at member",
            Body::Edit(|doc, _| doc["client_secret_expires_at"] = json!(0)),
            CODE,
        ),
        (
            "private d in jwks",
            Body::Edit(|doc, _| {
                let mut jwk = ec_public_jwk();
                jwk["d"] = json!(EC_D);
                doc["token_endpoint_auth_method"] = json!("private_key_jwt");
                doc["jwks"] = json!({"keys": [jwk]});
            }),
            CODE,
        ),
        (
            "jwks and jwks_uri",
            Body::Edit(|doc, id| {
                doc["token_endpoint_auth_method"] = json!("private_key_jwt");
                doc["jwks"] = json!({"keys": [ec_public_jwk()]});
                doc["jwks_uri"] = json!(id.replace("cimd.json", "jwks.json"));
            }),
            CODE,
        ),
        (
            "http jwks_uri",
            Body::Edit(|doc, id| {
                doc["token_endpoint_auth_method"] = json!("private_key_jwt");
                doc["jwks_uri"] = json!(
                    id.replace("https://", "http://")
                        .replace("cimd.json", "jwks.json")
                );
            }),
            CODE,
        ),
        (
            "fragment in a redirect URI",
            Body::Edit(|doc, _| doc["redirect_uris"] = json!(["https://app.test/cb#frag"])),
            CODE,
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_in_a_refused_document_are_never_echoed() {
    const SECRET: &str = "s3cr3t-do-not-print-7f1c";
    let world = World::new().await;
    let (origin, id) = world
        .app_with(|id| {
            let mut doc = document(id);
            let mut jwk = ec_public_jwk();
            jwk["d"] = json!(EC_D);
            doc["token_endpoint_auth_method"] = json!("private_key_jwt");
            doc["client_secret"] = json!(SECRET);
            doc["jwks"] = json!({"keys": [jwk]});
            Script::json(doc.to_string())
        })
        .await;
    let config = world.write_config(&world.config(origin.port()));
    let json_out = Cli::check_json(&config, &id).run().await;
    assert_refused(&json_out, &id, "invalid_metadata");
    let human_out = Cli::check_human(&config, &id).run().await;
    assert_eq!(human_out.status, Some(1), "{human_out}");
    for out in [&json_out, &human_out] {
        for secret in [SECRET, EC_D] {
            assert!(
                !out.stdout.contains(secret) && !out.stderr.contains(secret),
                "a secret was printed\n{out}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn public_jwks_without_private_members_is_accepted() {
    // The control for "private d in jwks": the same key without `d` passes.
    let world = World::new().await;
    let (origin, id) = world
        .app_with(|id| {
            let mut doc = document(id);
            doc["token_endpoint_auth_method"] = json!("private_key_jwt");
            doc["jwks"] = json!({"keys": [ec_public_jwk()]});
            Script::json(doc.to_string())
        })
        .await;
    let out = world.check(&world.config(origin.port()), &id).await;
    assert_accepted(&out, &id);
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_client_with_portless_loopback_redirects_is_accepted() {
    let world = World::new().await;
    let (origin, id) = world
        .app_with(|id| {
            Script::json(
                json!({
                    "client_id": id,
                    "client_name": "Example CLI",
                    "redirect_uris": ["http://localhost/callback", "http://127.0.0.1/callback"],
                    "grant_types": ["authorization_code", "refresh_token"],
                    "response_types": ["code"],
                    "token_endpoint_auth_method": "none",
                })
                .to_string(),
            )
        })
        .await;
    let out = world.check(&world.config(origin.port()), &id).await;
    let json = assert_accepted(&out, &id);
    assert_eq!(json["decision"], json!("warn"));
}

#[tokio::test(flavor = "multi_thread")]
async fn hosted_client_with_private_key_jwt_and_foreign_logo_is_accepted() {
    let world = World::new().await;
    let (origin, id) = world
        .app_with(|id| {
            Script::json(
                json!({
                    "client_id": id,
                    "client_name": "Hosted Chat",
                    "client_uri": "https://app.test/",
                    "logo_uri": "https://cdn.other.test/logo.png",
                    "redirect_uris": ["https://app.test/api/mcp/auth_callback"],
                    "grant_types": ["authorization_code", "refresh_token"],
                    "response_types": ["code"],
                    "token_endpoint_auth_method": "private_key_jwt",
                    "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
                    "token_endpoint_auth_signing_alg": "RS256",
                    "jwks_uri": id.replace("cimd.json", "jwks.json"),
                })
                .to_string(),
            )
        })
        .await;
    origin.set_route(
        "/jwks.json",
        Script::json(
            json!({"keys": [{"kty": "RSA", "n": RSA_N, "e": "AQAB", "alg": "RS256", "use": "sig", "kid": "r1"}]})
                .to_string(),
        ),
    );
    let out = world.check(&world.config(origin.port()), &id).await;
    let json = assert_accepted(&out, &id);
    assert_eq!(json["decision"], json!("warn"));
    assert_eq!(
        world.dns.queries("cdn.other.test"),
        0,
        "the logo host was resolved"
    );
}

// ---------------------------------------------------------------------------
// Policy and configuration
// ---------------------------------------------------------------------------

fn deny_evil(config: ConfigFile) -> ConfigFile {
    config.with_policy("allow", &[("https://evil.test:*/**", "deny")])
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_deny_rule_refuses_the_client() {
    let world = World::new().await;
    let (origin, id) = world
        .host_with("evil.test", |id| Script::json(document(id).to_string()))
        .await;
    let out = world
        .check(&deny_evil(world.config(origin.port())), &id)
        .await;
    let json = assert_refused(&out, &id, "policy_denied");
    assert_eq!(json["decision"], json!("deny"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_allow_decision_is_reported() {
    let world = World::new().await;
    let (origin, id) = world.valid_app().await;
    let out = world
        .check(&deny_evil(world.config(origin.port())), &id)
        .await;
    let json = assert_accepted(&out, &id);
    assert_eq!(json["decision"], json!("allow"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_allow_rule_overrides_a_deny_default() {
    let world = World::new().await;
    let (app, app_id) = world.valid_app().await;
    let (other, other_id) = world
        .host_with("other.test", |id| Script::json(document(id).to_string()))
        .await;
    let mut config = world
        .config(app.port())
        .with_policy("deny", &[("https://app.test:*/**", "allow")]);
    config.fetch.allowed_ports = vec![app.port(), other.port()];

    let out = world.check(&config, &app_id).await;
    assert_eq!(assert_accepted(&out, &app_id)["decision"], json!("allow"));
    let out = world.check(&config, &other_id).await;
    let json = assert_refused(&out, &other_id, "policy_denied");
    assert_eq!(json["decision"], json!("deny"));
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_config_reports_every_problem_and_exits_2() {
    let world = World::new().await;
    let (origin, id) = world.valid_app().await;
    let text = world.config(origin.port()).to_toml().replace(
        "timeout_ms = 1000",
        "timeout_ms = \"fast\"\ncolour = \"blue\"",
    );
    let path = world.write_raw_config(&text);
    let out = Cli::check_json(&path, &id).run().await;
    assert_eq!(out.status, Some(2), "{out}");
    assert!(out.stderr.contains("fetch.timeout_ms"), "{out}");
    assert!(out.stderr.contains("fetch.colour"), "{out}");
    assert_eq!(
        origin.connections(),
        0,
        "fetched despite a bad configuration"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_and_missing_config_errors_exit_2() {
    let world = World::new().await;
    let missing = world.dir.path().join("does-not-exist.toml");
    let url = "https://app.test:8443/cimd.json";
    let out = Cli::check_json(&missing, url).run().await;
    assert_eq!(out.status, Some(2), "missing config file\n{out}");
    let out = Cli::new(["check", "--json"]).run().await;
    assert_eq!(out.status, Some(2), "missing URL\n{out}");
    let out = Cli::new(["check", "--no-such-flag", url]).run().await;
    assert_eq!(out.status, Some(2), "unknown flag\n{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn human_output_is_one_line_naming_the_code() {
    let world = World::new().await;
    let (origin, id) = world.valid_app().await;
    let mut config = world.config(origin.port());
    config.fetch.allowed_ports = vec![443];
    let out = Cli::check_human(&world.write_config(&config), &id)
        .run()
        .await;
    assert_eq!(out.status, Some(1), "{out}");
    let stdout: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    let stderr: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    let (lines, stream) = if stdout.is_empty() {
        (stderr, "stderr")
    } else {
        (stdout, "stdout")
    };
    assert_eq!(lines.len(), 1, "expected one line on {stream}\n{out}");
    assert!(lines[0].contains("port_not_allowed"), "{out}");
    assert!(
        serde_json::from_str::<Value>(lines[0]).is_err(),
        "human output is JSON\n{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn human_output_for_a_valid_client_exits_0() {
    let world = World::new().await;
    let (origin, id) = world.valid_app().await;
    let out = Cli::check_human(&world.write_config(&world.config(origin.port())), &id)
        .run()
        .await;
    assert_eq!(out.status, Some(0), "{out}");
    assert!(
        !(out.stdout.trim().is_empty() && out.stderr.trim().is_empty()),
        "{out}"
    );
}
