//! A programmable DNS server on loopback, for the product's `fetch.dns_servers`.
//!
//! It listens on `127.0.0.1:<port>` over UDP and TCP (same port), answers
//! A and AAAA questions from a table the test fills in, and counts every
//! question it receives per name. Names are compared case-insensitively and
//! without their trailing dot. A name with no entry gets NXDOMAIN; a known
//! name asked for a type it has no entry for gets an empty NOERROR answer.
//! Everything stops when the [`DnsServer`] is dropped.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};

/// TTL of fixed answers.
pub const DEFAULT_TTL: u32 = 60;

/// What the server does with questions for one (name, type).
#[derive(Clone, Debug)]
enum Entry {
    /// The same answer list for every question (may be empty: NOERROR, no data).
    Fixed(Vec<IpAddr>, u32),
    /// One answer list per question, in order; the last one repeats. TTL 0,
    /// as a rebinding attacker would use, so no resolver cache hides a
    /// second lookup.
    Sequence(VecDeque<Vec<IpAddr>>),
}

#[derive(Default)]
struct Zone {
    /// Answers by (normalised name, A or AAAA).
    entries: HashMap<(String, RecordType), Entry>,
    /// Names that exist but get no answer at all, over either transport.
    silent: Vec<String>,
    /// Names whose answers are sent only after a pause.
    delays: HashMap<String, Duration>,
    /// Names that get NXDOMAIN even though other tables mention them.
    nxdomain: Vec<String>,
    /// Questions received, by normalised name.
    counts: HashMap<String, usize>,
    /// Questions received, by (normalised name, type).
    typed_counts: HashMap<(String, RecordType), usize>,
    /// Answer UDP questions with an empty, truncated (TC) reply.
    truncate_udp: bool,
    /// Questions received over UDP and over TCP.
    udp_queries: usize,
    tcp_queries: usize,
}

/// How to answer one question.
enum Reply {
    Answers(Vec<IpAddr>, u32),
    NxDomain,
    Silent,
}

impl Zone {
    fn exists(&self, name: &str) -> bool {
        self.entries.keys().any(|(n, _)| n == name)
    }

    fn count(&mut self, name: &str, rtype: RecordType, transport: Transport) {
        *self.counts.entry(name.to_string()).or_default() += 1;
        *self
            .typed_counts
            .entry((name.to_string(), rtype))
            .or_default() += 1;
        match transport {
            Transport::Udp => self.udp_queries += 1,
            Transport::Tcp => self.tcp_queries += 1,
        }
    }

    fn reply(&mut self, name: &str, rtype: RecordType) -> Reply {
        if self.silent.iter().any(|n| n == name) {
            return Reply::Silent;
        }
        if self.nxdomain.iter().any(|n| n == name) || !self.exists(name) {
            return Reply::NxDomain;
        }
        match self.entries.get_mut(&(name.to_string(), rtype)) {
            None => Reply::Answers(Vec::new(), DEFAULT_TTL),
            Some(Entry::Fixed(ips, ttl)) => Reply::Answers(ips.clone(), *ttl),
            Some(Entry::Sequence(seq)) => {
                let next = if seq.len() > 1 {
                    seq.pop_front().unwrap_or_default()
                } else {
                    seq.front().cloned().unwrap_or_default()
                };
                Reply::Answers(next, 0)
            }
        }
    }
}

/// A DNS server the test controls; see the module documentation.
pub struct DnsServer {
    addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl DnsServer {
    /// Starts a server on `127.0.0.1`, UDP and TCP on one free port.
    pub async fn start() -> Self {
        let (udp, tcp) = bind_pair().await;
        let addr = udp.local_addr().expect("udp local addr");
        let zone = Arc::new(Mutex::new(Zone::default()));
        let tasks = vec![
            tokio::spawn(serve_udp(udp, zone.clone())),
            tokio::spawn(serve_tcp(tcp, zone.clone())),
        ];
        Self { addr, zone, tasks }
    }

    /// The address both transports listen on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers `name` with `ips`: the IPv4 ones for A, the IPv6 ones for
    /// AAAA (either list may end up empty, which is a NOERROR answer).
    pub fn set(&self, name: &str, ips: &[IpAddr]) {
        let v4: Vec<IpAddr> = ips.iter().copied().filter(IpAddr::is_ipv4).collect();
        let v6: Vec<IpAddr> = ips.iter().copied().filter(IpAddr::is_ipv6).collect();
        self.set_records(name, RecordType::A, &v4);
        self.set_records(name, RecordType::AAAA, &v6);
    }

    /// Answers questions of type `rtype` (A or AAAA) for `name` with `ips`.
    pub fn set_records(&self, name: &str, rtype: RecordType, ips: &[IpAddr]) {
        self.set_records_ttl(name, rtype, ips, DEFAULT_TTL);
    }

    /// Like [`DnsServer::set_records`] with the answers' TTL in seconds.
    pub fn set_records_ttl(&self, name: &str, rtype: RecordType, ips: &[IpAddr], ttl: u32) {
        self.insert(name, rtype, Entry::Fixed(ips.to_vec(), ttl));
    }

    /// Answers successive `rtype` questions for `name` with successive
    /// lists from `answers`, with TTL 0; once one list is left it answers
    /// every later question. Other types for `name` get empty answers
    /// unless set.
    pub fn set_sequence(&self, name: &str, rtype: RecordType, answers: &[Vec<IpAddr>]) {
        assert!(!answers.is_empty(), "a sequence needs at least one answer");
        self.insert(
            name,
            rtype,
            Entry::Sequence(answers.iter().cloned().collect()),
        );
    }

    /// Makes `name` exist with no address of either type (NOERROR, no data).
    pub fn set_empty(&self, name: &str) {
        self.set(name, &[]);
    }

    /// Makes `name` answer NXDOMAIN (also the behaviour for any unknown name).
    pub fn set_nxdomain(&self, name: &str) {
        self.zone.lock().unwrap().nxdomain.push(normalise(name));
    }

    /// Makes the server never answer questions about `name`.
    pub fn set_silent(&self, name: &str) {
        self.zone.lock().unwrap().silent.push(normalise(name));
    }

    /// Delays every answer about `name` (NXDOMAIN included) by `pause`.
    pub fn set_delay(&self, name: &str, pause: Duration) {
        self.zone
            .lock()
            .unwrap()
            .delays
            .insert(normalise(name), pause);
    }

    /// How many questions (any type, either transport) arrived for `name`.
    pub fn queries(&self, name: &str) -> usize {
        let zone = self.zone.lock().unwrap();
        zone.counts.get(&normalise(name)).copied().unwrap_or(0)
    }

    /// How many questions of type `rtype` arrived for `name`.
    pub fn queries_of(&self, name: &str, rtype: RecordType) -> usize {
        let zone = self.zone.lock().unwrap();
        let key = (normalise(name), rtype);
        zone.typed_counts.get(&key).copied().unwrap_or(0)
    }

    /// Makes every UDP reply empty with the TC bit set, so that a resolver
    /// must retry over TCP.
    pub fn set_truncate_udp(&self, truncate: bool) {
        self.zone.lock().unwrap().truncate_udp = truncate;
    }

    /// How many questions arrived over UDP.
    pub fn udp_queries(&self) -> usize {
        self.zone.lock().unwrap().udp_queries
    }

    /// How many questions arrived over TCP.
    pub fn tcp_queries(&self) -> usize {
        self.zone.lock().unwrap().tcp_queries
    }

    /// How many questions arrived in total.
    pub fn total_queries(&self) -> usize {
        self.zone.lock().unwrap().counts.values().sum()
    }

    fn insert(&self, name: &str, rtype: RecordType, entry: Entry) {
        assert!(
            matches!(rtype, RecordType::A | RecordType::AAAA),
            "only A and AAAA are programmable"
        );
        let mut zone = self.zone.lock().unwrap();
        let name = normalise(name);
        // A name that exists must answer the other address type with NOERROR.
        for other in [RecordType::A, RecordType::AAAA] {
            zone.entries
                .entry((name.clone(), other))
                .or_insert_with(|| Entry::Fixed(Vec::new(), DEFAULT_TTL));
        }
        zone.entries.insert((name, rtype), entry);
    }
}

/// Lower case, no trailing dot.
fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Binds UDP and TCP on the same free loopback port, retrying on collision.
async fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind udp");
        let port = udp.local_addr().expect("udp addr").port();
        if let Ok(tcp) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
            return (udp, tcp);
        }
    }
    panic!("no loopback port free for both UDP and TCP");
}

/// The transport a question arrived on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

/// Builds the reply to one wire-format query and the pause before sending
/// it; `None` means stay silent.
fn answer(zone: &Mutex<Zone>, query: &[u8], transport: Transport) -> Option<(Vec<u8>, Duration)> {
    let request = Message::from_vec(query).ok()?;
    if request.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.metadata.authoritative = true;
    if let Some(edns) = &request.edns {
        let mut reply_edns = Edns::new();
        reply_edns.set_max_payload(edns.max_payload().max(512));
        response.set_edns(reply_edns);
    }
    let Some(question) = request.queries.first().cloned() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return response.to_vec().ok().map(|r| (r, Duration::ZERO));
    };
    if request.metadata.op_code != OpCode::Query {
        response.metadata.response_code = ResponseCode::NotImp;
        return response.to_vec().ok().map(|r| (r, Duration::ZERO));
    }
    response.add_query(question.clone());
    let name = normalise(&question.name().to_ascii());
    let (reply, delay) = {
        let mut zone = zone.lock().unwrap();
        zone.count(&name, question.query_type(), transport);
        if transport == Transport::Udp && zone.truncate_udp {
            response.metadata.truncation = true;
            return response.to_vec().ok().map(|r| (r, Duration::ZERO));
        }
        let delay = zone.delays.get(&name).copied().unwrap_or_default();
        (zone.reply(&name, question.query_type()), delay)
    };
    match reply {
        Reply::Silent => return None,
        Reply::NxDomain => response.metadata.response_code = ResponseCode::NXDomain,
        Reply::Answers(ips, ttl) => {
            let owner: Name = question.name().clone();
            for ip in ips {
                let rdata = match (ip, question.query_type()) {
                    (IpAddr::V4(v4), RecordType::A) => RData::A(A(v4)),
                    (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(v6)),
                    _ => continue,
                };
                response.add_answer(Record::from_rdata(owner.clone(), ttl, rdata));
            }
        }
    }
    response.to_vec().ok().map(|r| (r, delay))
}

async fn serve_udp(socket: UdpSocket, zone: Arc<Mutex<Zone>>) {
    let socket = Arc::new(socket);
    // Delayed replies; owned here so that aborting this task aborts them.
    let mut delayed = JoinSet::new();
    let mut buf = vec![0u8; 4096];
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let Ok((len, peer)) = received else { continue };
                match answer(&zone, &buf[..len], Transport::Udp) {
                    Some((reply, pause)) if pause.is_zero() => {
                        let _ = socket.send_to(&reply, peer).await;
                    }
                    Some((reply, pause)) => {
                        let socket = socket.clone();
                        delayed.spawn(async move {
                            tokio::time::sleep(pause).await;
                            let _ = socket.send_to(&reply, peer).await;
                        });
                    }
                    None => {}
                }
            }
            Some(_) = delayed.join_next(), if !delayed.is_empty() => {}
        }
    }
}

async fn serve_tcp(listener: TcpListener, zone: Arc<Mutex<Zone>>) {
    // Owned here so that aborting this task aborts every connection too.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(serve_tcp_connection(stream, zone.clone()));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_tcp_connection(mut stream: TcpStream, zone: Arc<Mutex<Zone>>) {
    loop {
        let Ok(len) = stream.read_u16().await else {
            return;
        };
        let mut query = vec![0u8; usize::from(len)];
        if stream.read_exact(&mut query).await.is_err() {
            return;
        }
        match answer(&zone, &query, Transport::Tcp) {
            Some((reply, pause)) => {
                tokio::time::sleep(pause).await;
                let Ok(reply_len) = u16::try_from(reply.len()) else {
                    return;
                };
                let mut framed = reply_len.to_be_bytes().to_vec();
                framed.extend_from_slice(&reply);
                if stream.write_all(&framed).await.is_err() {
                    return;
                }
            }
            // Silent: keep the connection open and never answer.
            None => std::future::pending::<()>().await,
        }
    }
}
