//! Checks that the support code itself works, independently of the product.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::TlsConnector;

use super::dns::DnsServer;
use super::origin::{Decoy, Origin, Script, gzip_stored};
use super::pki::{LeafCert, TestCa, client_config};
use super::world::ORIGIN_IP;

fn query(name: &str, rtype: RecordType) -> Vec<u8> {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    message.to_vec().unwrap()
}

fn addresses(reply: &Message) -> Vec<IpAddr> {
    reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

async fn ask_udp(server: SocketAddr, name: &str, rtype: RecordType) -> Option<Message> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    socket.send_to(&query(name, rtype), server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let received = tokio::time::timeout(Duration::from_millis(300), socket.recv(&mut buf)).await;
    let len = received.ok()?.unwrap();
    Some(Message::from_vec(&buf[..len]).unwrap())
}

async fn ask_tcp(server: SocketAddr, name: &str, rtype: RecordType) -> Option<Message> {
    let mut stream = TcpStream::connect(server).await.unwrap();
    let q = query(name, rtype);
    stream.write_u16(q.len() as u16).await.unwrap();
    stream.write_all(&q).await.unwrap();
    let read = async {
        let len = stream.read_u16().await.unwrap();
        let mut buf = vec![0u8; usize::from(len)];
        stream.read_exact(&mut buf).await.unwrap();
        buf
    };
    let buf = tokio::time::timeout(Duration::from_millis(300), read)
        .await
        .ok()?;
    Some(Message::from_vec(&buf).unwrap())
}

#[tokio::test]
async fn dns_answers_over_udp_and_tcp_and_counts() {
    let dns = DnsServer::start().await;
    let v6: IpAddr = "fd00:ec2::254".parse().unwrap();
    dns.set("App.Test", &[ORIGIN_IP, v6]);
    dns.set_empty("empty.test");
    dns.set_silent("silent.test");

    let a = ask_udp(dns.addr(), "app.test.", RecordType::A)
        .await
        .unwrap();
    assert_eq!(addresses(&a), vec![ORIGIN_IP]);
    let aaaa = ask_tcp(dns.addr(), "APP.test.", RecordType::AAAA)
        .await
        .unwrap();
    assert_eq!(addresses(&aaaa), vec![v6]);

    let nx = ask_udp(dns.addr(), "unknown.test.", RecordType::A)
        .await
        .unwrap();
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    let empty = ask_tcp(dns.addr(), "empty.test.", RecordType::A)
        .await
        .unwrap();
    assert_eq!(empty.metadata.response_code, ResponseCode::NoError);
    assert!(empty.answers.is_empty());

    assert!(
        ask_udp(dns.addr(), "silent.test.", RecordType::A)
            .await
            .is_none()
    );
    assert!(
        ask_tcp(dns.addr(), "silent.test.", RecordType::A)
            .await
            .is_none()
    );

    assert_eq!(dns.queries("app.test"), 2);
    assert_eq!(dns.queries_of("app.test", RecordType::A), 1);
    assert_eq!(dns.queries("silent.test"), 2);
    assert_eq!(dns.queries("never.test"), 0);
    assert_eq!((dns.udp_queries(), dns.tcp_queries()), (3, 3));

    dns.set_truncate_udp(true);
    let truncated = ask_udp(dns.addr(), "app.test.", RecordType::A)
        .await
        .unwrap();
    assert!(truncated.metadata.truncation);
    assert!(truncated.answers.is_empty());
    let full = ask_tcp(dns.addr(), "app.test.", RecordType::A)
        .await
        .unwrap();
    assert_eq!(addresses(&full), vec![ORIGIN_IP]);
}

#[tokio::test]
async fn dns_sequence_is_consumed_one_answer_per_query() {
    let dns = DnsServer::start().await;
    let first = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let later = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    dns.set_sequence("rebind.test", RecordType::A, &[vec![first], vec![later]]);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let reply = ask_udp(dns.addr(), "rebind.test.", RecordType::A)
            .await
            .unwrap();
        seen.push(addresses(&reply));
    }
    assert_eq!(seen, vec![vec![first], vec![later], vec![later]]);

    dns.set_delay("rebind.test", Duration::from_millis(150));
    let started = std::time::Instant::now();
    assert!(
        ask_udp(dns.addr(), "rebind.test.", RecordType::A)
            .await
            .is_some()
    );
    assert!(
        ask_tcp(dns.addr(), "rebind.test.", RecordType::A)
            .await
            .is_some()
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    let aaaa = ask_udp(dns.addr(), "rebind.test.", RecordType::AAAA)
        .await
        .unwrap();
    assert_eq!(aaaa.metadata.response_code, ResponseCode::NoError);
    assert!(aaaa.answers.is_empty());
}

async fn fetch(
    ca: &TestCa,
    addr: SocketAddr,
    host: &str,
    request: &str,
) -> std::io::Result<Vec<u8>> {
    let connector = TlsConnector::from(client_config(ca.root_store()));
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(host.to_string()).unwrap();
    let mut tls = connector.connect(name, tcp).await?;
    tls.write_all(request.as_bytes()).await?;
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await?;
    Ok(out)
}

#[tokio::test]
async fn origin_serves_tls_records_requests_and_plays_scripts() {
    let ca = TestCa::new("selftest");
    let cert = ca.issue(&["app.test", "127.0.0.2"]);
    let script = Script::new()
        .write("HTTP/1.1 200 OK\r\n")
        .sleep(Duration::from_millis(10))
        .write("Content-Length: 2\r\nConnection: close\r\n\r\n{}");
    let origin = Origin::start(ORIGIN_IP, 0, &cert, script).await.unwrap();
    let request = "GET /cimd.json HTTP/1.1\r\nHost: app.test\r\nAccept: application/json\r\n\r\n";
    let body = fetch(&ca, origin.addr(), "app.test", request)
        .await
        .unwrap();
    assert!(body.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert!(body.ends_with(b"\r\n\r\n{}"));

    let requests = origin.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/cimd.json"));
    assert_eq!(r.header("accept"), Some("application/json"));
    assert_eq!(r.header("Accept-Encoding"), None);
    assert_eq!(r.local_addr, origin.addr());
    assert_eq!(r.sni.as_deref(), Some("app.test"));

    // An IP SAN works too, and a client that does not trust the CA fails.
    assert!(
        fetch(&ca, origin.addr(), "127.0.0.2", request)
            .await
            .is_ok()
    );
    let other = TestCa::new("other");
    assert!(
        fetch(&other, origin.addr(), "app.test", request)
            .await
            .is_err()
    );
    let wrong_name = fetch(&ca, origin.addr(), "other.test", request).await;
    assert!(wrong_name.is_err());
    assert_eq!(origin.connections(), 4);
}

#[tokio::test]
async fn origin_endless_and_silent_scripts_do_not_end() {
    let ca = TestCa::new("selftest");
    let cert = ca.issue(&["app.test"]);
    let endless = Origin::start(ORIGIN_IP, 0, &cert, Script::endless_chunked())
        .await
        .unwrap();
    let connector = TlsConnector::from(client_config(ca.root_store()));
    let tcp = TcpStream::connect(endless.addr()).await.unwrap();
    let name = ServerName::try_from("app.test").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut total = 0;
    let mut buf = [0u8; 8192];
    while total < 200_000 {
        total += tls.read(&mut buf).await.unwrap();
    }

    let silent = Origin::start_silent_tcp(ORIGIN_IP, 0).await.unwrap();
    let mut tcp = TcpStream::connect(silent.addr()).await.unwrap();
    let read = tokio::time::timeout(Duration::from_millis(200), tcp.read(&mut buf)).await;
    assert!(read.is_err(), "silent origin wrote something");
    assert_eq!(silent.connections(), 1);
}

#[tokio::test]
async fn self_signed_leaf_is_not_trusted_by_the_test_ca() {
    let ca = TestCa::new("selftest");
    let cert = LeafCert::self_signed(&["app.test"]);
    let origin = Origin::start(ORIGIN_IP, 0, &cert, Script::json("{}"))
        .await
        .unwrap();
    let request = "GET / HTTP/1.1\r\n\r\n";
    assert!(
        fetch(&ca, origin.addr(), "app.test", request)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn decoy_counts_connections_on_v4_and_v6_loopback() {
    let decoy = Decoy::start(SocketAddr::new(ORIGIN_IP, 0)).await.unwrap();
    assert_eq!(decoy.connections(), 0);
    let _ = TcpStream::connect(decoy.addr()).await.unwrap();
    let six = Decoy::start(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0))
        .await
        .unwrap();
    let _ = TcpStream::connect(six.addr()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(decoy.connections(), 1);
    assert_eq!(six.connections(), 1);
}

#[test]
fn gzip_stored_is_well_formed() {
    let gz = gzip_stored(b"123456789");
    assert_eq!(&gz[..3], &[0x1f, 0x8b, 8]);
    // CRC-32 of "123456789" is the standard check value 0xCBF43926.
    assert_eq!(
        &gz[gz.len() - 8..gz.len() - 4],
        &0xCBF4_3926u32.to_le_bytes()
    );
    assert_eq!(&gz[gz.len() - 4..], &9u32.to_le_bytes());
}

#[test]
fn tls_client_config_uses_explicit_provider() {
    let ca = TestCa::new("selftest");
    let config = client_config(ca.root_store());
    assert!(Arc::strong_count(&config) >= 1);
}

/// The product resolves with hickory-resolver; make sure it accepts our answers.
#[tokio::test]
async fn hickory_resolver_reads_our_answers_over_udp_and_tcp() {
    use hickory_resolver::Resolver;
    use hickory_resolver::config::{
        ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts,
    };
    use hickory_resolver::net::runtime::TokioRuntimeProvider;

    let dns = DnsServer::start().await;
    let v6: IpAddr = "64:ff9b::a00:1".parse().unwrap();
    dns.set("app.test", &[ORIGIN_IP, v6]);
    for transport in [ConnectionConfig::udp(), ConnectionConfig::tcp()] {
        let mut connection = transport;
        connection.port = dns.addr().port();
        let server = NameServerConfig::new(dns.addr().ip(), true, vec![connection]);
        let mut opts = ResolverOpts::default();
        opts.ip_strategy = hickory_resolver::config::LookupIpStrategy::Ipv4AndIpv6;
        opts.cache_size = 0;
        let resolver = Resolver::builder_with_config(
            ResolverConfig::from_parts(None, vec![], vec![server]),
            TokioRuntimeProvider::default(),
        )
        .with_options(opts)
        .build()
        .unwrap();
        let mut got: Vec<IpAddr> = resolver
            .lookup_ip("app.test.")
            .await
            .unwrap()
            .iter()
            .collect();
        got.sort();
        assert_eq!(got, vec![ORIGIN_IP, v6]);
        assert!(resolver.lookup_ip("nope.test.").await.is_err());
    }
    assert!(dns.queries("nope.test") >= 2);
}
