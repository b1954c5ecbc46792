//! Scripted HTTPS origins and connection-counting decoys, on loopback only.
//!
//! An [`Origin`] accepts TLS connections on a chosen loopback address, reads
//! each request head (bounded), records it, and then plays a [`Script`]: raw
//! bytes, pauses, an endless repetition or silence. Scripts write raw bytes
//! so that a test can send exactly the malformed or hostile response it
//! needs. A [`Decoy`] is a plain TCP listener that only counts connections,
//! to prove that nothing ever connected to an address.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use super::pki::LeafCert;

/// The most request-head bytes an origin reads before giving up on a request.
pub const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// One step of a scripted response.
#[derive(Clone, Debug)]
pub enum Step {
    /// Write these bytes and flush.
    Write(Vec<u8>),
    /// Pause.
    Sleep(Duration),
    /// Play these steps over and over until the peer goes away.
    Forever(Vec<Step>),
    /// Write nothing more and keep the connection open until the origin stops.
    Silent,
}

/// What an origin sends back after reading a request head. When the script
/// ends the origin sends TLS close_notify and closes the connection.
#[derive(Clone, Debug, Default)]
pub struct Script {
    steps: Vec<Step>,
}

impl Script {
    /// An empty script: close right after the request head.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a write of `bytes`.
    pub fn write(mut self, bytes: impl AsRef<[u8]>) -> Self {
        self.steps.push(Step::Write(bytes.as_ref().to_vec()));
        self
    }

    /// Appends a pause.
    pub fn sleep(mut self, pause: Duration) -> Self {
        self.steps.push(Step::Sleep(pause));
        self
    }

    /// Appends an endless repetition of `inner`.
    pub fn forever(mut self, inner: Script) -> Self {
        self.steps.push(Step::Forever(inner.steps));
        self
    }

    /// Appends silence: nothing more is written and the connection stays open.
    pub fn silent(mut self) -> Self {
        self.steps.push(Step::Silent);
        self
    }

    /// A complete response with a `Content-Length` and `Connection: close`.
    pub fn response(status: u16, headers: &[(&str, &str)], body: impl AsRef<[u8]>) -> Self {
        let body = body.as_ref();
        let mut head = status_line(status);
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ));
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        Self::new().write(bytes)
    }

    /// 200 with `Content-Type: application/json`, the given extra headers and body.
    pub fn json_with(headers: &[(&str, &str)], body: impl AsRef<[u8]>) -> Self {
        let mut all = vec![("Content-Type", "application/json")];
        all.extend_from_slice(headers);
        Self::response(200, &all, body)
    }

    /// 200 with `Content-Type: application/json` and `body`.
    pub fn json(body: impl AsRef<[u8]>) -> Self {
        Self::json_with(&[], body)
    }

    /// 200 with the given `Content-Type` and `body`.
    pub fn content_type(content_type: &str, body: impl AsRef<[u8]>) -> Self {
        Self::response(200, &[("Content-Type", content_type)], body)
    }

    /// A redirect (`status` 301/302/307/308) to `location`, with a small JSON body.
    pub fn redirect(status: u16, location: &str) -> Self {
        Self::response(
            status,
            &[("Location", location), ("Content-Type", "application/json")],
            "{}",
        )
    }

    /// 200 JSON whose body is `json` gzip-compressed, with `Content-Encoding: gzip`.
    pub fn gzip_json(json: &str) -> Self {
        Self::response(
            200,
            &[
                ("Content-Type", "application/json"),
                ("Content-Encoding", "gzip"),
            ],
            gzip_stored(json.as_bytes()),
        )
    }

    /// Response headers announcing `length` body bytes, a few bytes of body,
    /// then silence: only a client that trusts the header to refuse is fast.
    pub fn huge_content_length(length: u64) -> Self {
        let head = format!(
            "{}Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n{{\"",
            status_line(200)
        );
        Self::new().write(head).silent()
    }

    /// 200 JSON with no `Content-Length`, delimited by closing the connection.
    pub fn close_delimited(body: impl AsRef<[u8]>) -> Self {
        let head = format!(
            "{}Content-Type: application/json\r\nConnection: close\r\n\r\n",
            status_line(200)
        );
        Self::new().write(head).write(body)
    }

    /// 200 JSON sent with chunked transfer encoding, in chunks of `chunk_size`.
    pub fn chunked(body: impl AsRef<[u8]>, chunk_size: usize) -> Self {
        let mut script = Self::new().write(chunked_head());
        for chunk in body.as_ref().chunks(chunk_size.max(1)) {
            script = script.write(chunk_frame(chunk));
        }
        script.write("0\r\n\r\n")
    }

    /// 200 JSON, chunked, whose body never ends: `{"pad":"xxxx...` forever.
    pub fn endless_chunked() -> Self {
        Self::new()
            .write(chunked_head())
            .write(chunk_frame(b"{\"pad\":\""))
            .forever(Self::new().write(chunk_frame(&[b'x'; 1024])))
    }

    /// The whole of `response` written one byte at a time, `interval` apart.
    pub fn slow_drip(response: impl AsRef<[u8]>, interval: Duration) -> Self {
        let mut script = Self::new();
        for byte in response.as_ref() {
            script = script.write([*byte]).sleep(interval);
        }
        script
    }

    /// A 200 JSON response whose head carries about `total` bytes of extra
    /// headers (`X-Pad-N`, 1 KiB each), followed by `body`.
    pub fn oversized_headers(total: usize, body: impl AsRef<[u8]>) -> Self {
        let body = body.as_ref();
        let mut head = status_line(200);
        head.push_str("Content-Type: application/json\r\n");
        let value = "a".repeat(1000);
        for i in 0..total.div_ceil(1024) {
            head.push_str(&format!("X-Pad-{i:04}: {value}\r\n"));
        }
        head.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ));
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        Self::new().write(bytes)
    }

    /// Nothing at all after the request head; the connection stays open.
    pub fn silent_after_request() -> Self {
        Self::new().silent()
    }
}

fn status_line(status: u16) -> String {
    let reason = match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Status",
    };
    format!("HTTP/1.1 {status} {reason}\r\n")
}

fn chunked_head() -> String {
    format!(
        "{}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        status_line(200)
    )
}

fn chunk_frame(data: &[u8]) -> Vec<u8> {
    let mut frame = format!("{:x}\r\n", data.len()).into_bytes();
    frame.extend_from_slice(data);
    frame.extend_from_slice(b"\r\n");
    frame
}

/// A valid gzip member holding `data` in stored (uncompressed) deflate
/// blocks: real gzip that any decoder accepts, without a compression crate.
pub fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    let mut blocks = data.chunks(65_535).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        out.push(u8::from(blocks.peek().is_none()));
        let len = u16::try_from(block.len()).expect("block fits");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for byte in data {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// One request head as an origin received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// The request method, e.g. `GET`.
    pub method: String,
    /// The request target as sent, e.g. `/cimd.json`.
    pub path: String,
    /// The HTTP version token, e.g. `HTTP/1.1`.
    pub version: String,
    /// Header fields in the order received (names as sent).
    pub headers: Vec<(String, String)>,
    /// The local address the connection arrived on.
    pub local_addr: SocketAddr,
    /// The TLS server name (SNI) the client sent, if any.
    pub sni: Option<String>,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Whether the origin speaks TLS before reading the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Tls,
    /// Accept the TCP connection and never write a byte, not even a ServerHello.
    SilentTcp,
}

#[derive(Default)]
struct OriginState {
    script: Mutex<Script>,
    routes: Mutex<Vec<(String, Script)>>,
    connections: AtomicUsize,
    handshakes: AtomicUsize,
    requests: Mutex<Vec<RecordedRequest>>,
}

/// A scripted HTTPS server on a loopback address; stops when dropped.
pub struct Origin {
    addr: SocketAddr,
    state: Arc<OriginState>,
    task: JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Origin {
    /// Starts a TLS origin on `ip:port` (port 0 picks one) presenting
    /// `cert`, playing `script` on every connection.
    pub async fn start(ip: IpAddr, port: u16, cert: &LeafCert, script: Script) -> io::Result<Self> {
        let listener = bind_loopback(ip, port).await?;
        let acceptor = TlsAcceptor::from(cert.server_config());
        Ok(Self::spawn(listener, Mode::Tls, Some(acceptor), script))
    }

    /// Starts a listener on `ip:port` that accepts TCP connections and never
    /// writes anything (no TLS handshake); it still counts connections.
    pub async fn start_silent_tcp(ip: IpAddr, port: u16) -> io::Result<Self> {
        let listener = bind_loopback(ip, port).await?;
        Ok(Self::spawn(listener, Mode::SilentTcp, None, Script::new()))
    }

    fn spawn(
        listener: TcpListener,
        mode: Mode,
        acceptor: Option<TlsAcceptor>,
        script: Script,
    ) -> Self {
        let addr = listener.local_addr().expect("origin local addr");
        let state = Arc::new(OriginState {
            script: Mutex::new(script),
            ..OriginState::default()
        });
        let task = tokio::spawn(accept_loop(listener, mode, acceptor, state.clone()));
        Self { addr, state, task }
    }

    /// The address the origin listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port the origin listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Replaces the default script for requests received from now on
    /// (useful when the script must contain the origin's own port).
    pub fn set_script(&self, script: Script) {
        *self.state.script.lock().unwrap() = script;
    }

    /// Plays `script` instead of the default one for requests whose target
    /// is exactly `path` (e.g. `/jwks.json`).
    pub fn set_route(&self, path: &str, script: Script) {
        let mut routes = self.state.routes.lock().unwrap();
        routes.retain(|(p, _)| p != path);
        routes.push((path.to_string(), script));
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// TLS handshakes completed so far.
    pub fn handshakes(&self) -> usize {
        self.state.handshakes.load(Ordering::SeqCst)
    }

    /// Every request head received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests.lock().unwrap().clone()
    }
}

/// Binds a listener, refusing anything but a loopback address.
async fn bind_loopback(ip: IpAddr, port: u16) -> io::Result<TcpListener> {
    assert!(
        ip.is_loopback(),
        "tests only ever listen on loopback, not {ip}"
    );
    TcpListener::bind(SocketAddr::new(ip, port)).await
}

async fn accept_loop(
    listener: TcpListener,
    mode: Mode,
    acceptor: Option<TlsAcceptor>,
    state: Arc<OriginState>,
) {
    // Owned here so that aborting the loop aborts every connection too.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                state.connections.fetch_add(1, Ordering::SeqCst);
                let state = state.clone();
                let acceptor = acceptor.clone();
                connections.spawn(async move {
                    match (mode, acceptor) {
                        (Mode::Tls, Some(acceptor)) => {
                            serve_tls(stream, acceptor, state).await;
                        }
                        _ => {
                            // Hold the socket open without a byte.
                            let _stream = stream;
                            std::future::pending::<()>().await;
                        }
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_tls(stream: TcpStream, acceptor: TlsAcceptor, state: Arc<OriginState>) {
    let Ok(local_addr) = stream.local_addr() else {
        return;
    };
    let Ok(mut tls) = acceptor.accept(stream).await else {
        return;
    };
    state.handshakes.fetch_add(1, Ordering::SeqCst);
    let sni = tls.get_ref().1.server_name().map(str::to_string);
    let Some(head) = read_head(&mut tls).await else {
        return;
    };
    let Some(mut request) = parse_head(&head, local_addr) else {
        return;
    };
    request.sni = sni;
    let routed = state
        .routes
        .lock()
        .unwrap()
        .iter()
        .find(|(path, _)| *path == request.path)
        .map(|(_, script)| script.clone());
    let script = routed.unwrap_or_else(|| state.script.lock().unwrap().clone());
    state.requests.lock().unwrap().push(request);
    if play(&mut tls, &script.steps).await.is_ok() {
        let _ = tls.shutdown().await;
    }
}

/// Reads up to the end of the request head, at most [`MAX_REQUEST_HEAD`] bytes.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() >= MAX_REQUEST_HEAD {
            return None;
        }
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Some(head)
}

fn parse_head(head: &[u8], local_addr: SocketAddr) -> Option<RecordedRequest> {
    let text = String::from_utf8_lossy(head);
    let text = text.split("\r\n\r\n").next()?;
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_string();
    let path = request_line.next()?.to_string();
    let version = request_line.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_string(), value.trim().to_string()))
        })
        .collect();
    Some(RecordedRequest {
        method,
        path,
        version,
        headers,
        local_addr,
        sni: None,
    })
}

/// Plays `steps`; an error means the peer went away.
fn play<'a, S: AsyncWrite + Unpin + Send>(
    stream: &'a mut S,
    steps: &'a [Step],
) -> std::pin::Pin<Box<dyn std::future::Future<Output = io::Result<()>> + Send + 'a>> {
    Box::pin(async move {
        for step in steps {
            match step {
                Step::Write(bytes) => {
                    stream.write_all(bytes).await?;
                    stream.flush().await?;
                }
                Step::Sleep(pause) => tokio::time::sleep(*pause).await,
                Step::Forever(inner) => loop {
                    play(stream, inner).await?;
                    // Let other tasks run even if the peer reads very fast.
                    tokio::task::yield_now().await;
                },
                Step::Silent => std::future::pending::<()>().await,
            }
        }
        Ok(())
    })
}

/// A plain TCP listener that counts connections and closes them at once.
pub struct Decoy {
    addr: SocketAddr,
    count: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Decoy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Decoy {
    /// Starts a decoy on `addr` (a loopback address; port 0 picks one).
    pub async fn start(addr: SocketAddr) -> io::Result<Self> {
        let listener = bind_loopback(addr.ip(), addr.port()).await?;
        let addr = listener.local_addr()?;
        let count = Arc::new(AtomicUsize::new(0));
        let counter = count.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Ok((stream, _)) = listener.accept().await {
                    counter.fetch_add(1, Ordering::SeqCst);
                    drop(stream);
                }
            }
        });
        Ok(Self { addr, count, task })
    }

    /// The address the decoy listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port the decoy listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}
