//! The HTTP/1.1 listeners, with the ingress limits the framework's default
//! server does not expose: a bounded request head (line plus headers), a
//! deadline for reading it (slow-loris, and the end of an idle keep-alive
//! connection), a bounded header count, and a bounded number of connections.
//!
//! **The connection cap.** At the cap, a new connection takes the place of
//! the connection idle the longest (for at least [`IDLE_GRACE`]): one
//! between keep-alive requests, or one whose client has sent nothing since
//! it connected. Closing an idle connection loses nothing (hyper closes it
//! only if no request has started on it), and an idle-connection flood then
//! costs real users nothing but a turn in the accept queue. Failing an idle
//! one, a connection whose request head has been arriving for longer than
//! [`SLOW_HEAD`] is cut off (a slow-loris must not hold a place until the
//! head deadline). Only when neither exists does a new one wait, in the
//! kernel's accept queue, costing no file descriptor.
//!
//! **Shutdown** comes in two steps driven by [`DrainControl`]. First the
//! drain: the listeners keep accepting and serving, but every response says
//! `Connection: close`, so each client learns, from the answer to a request
//! it already sent, not to reuse the connection; a request already written on
//! an idle keep-alive connection is read and answered, not cut off. Then the
//! stop: no more accepting, idle connections are closed, and requests in
//! flight get [`SHUTDOWN_GRACE`] to finish.
//!
//! `cimd-proxy dev` serves its helper services (over TLS for the document
//! host) with the same loop, through [`serve_until`].

use std::collections::HashMap;
use std::convert::Infallible;
#[cfg(feature = "dev")]
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderValue, header};
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
#[cfg(feature = "dev")]
use tokio_rustls::TlsAcceptor;

use super::ServeError;
use crate::metrics::METRICS;

/// The largest request head accepted (request line and headers).
const MAX_REQUEST_HEAD_BYTES: usize = 16 * 1024;
/// The most header fields in one request.
const MAX_REQUEST_HEADERS: usize = 64;
/// How long a client may take to send its request head. The clock also runs
/// while a keep-alive connection waits for its next request, so this is the
/// idle keep-alive timeout too.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long requests in flight may take to finish after the drain.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// The connection cap of the admin listener: probes and scrapes need few,
/// and it must not be a way around the public listener's cap.
pub const ADMIN_MAX_CONNECTIONS: usize = 64;

/// The bound listeners, before serving starts (so a caller can learn the
/// actual ports when it asked for port 0).
pub struct Listeners {
    /// The public listener.
    pub public: TcpListener,
    /// The admin listener.
    pub admin: TcpListener,
    /// More listeners served beside these two, under the same drain and
    /// the public listener's connection cap: gate mode's, when it is on.
    pub more: Vec<Served>,
}

/// A listener with the routes it serves and its metric label.
pub struct Served {
    /// The bound socket.
    pub listener: TcpListener,
    /// What it answers.
    pub router: Router,
    /// The `listener` label of its connection metrics.
    pub name: &'static str,
}

/// The TCP peer of the connection a request came on, in the request's
/// extensions (the registration endpoint's rate limit counts by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Binds both listeners; an address in use is reported with the address.
pub async fn bind(public: SocketAddr, admin: SocketAddr) -> Result<Listeners, ServeError> {
    Ok(Listeners {
        public: bind_one(public).await?,
        admin: bind_one(admin).await?,
        more: Vec::new(),
    })
}

/// Binds one listener; an address in use is reported with the address.
pub async fn bind_one(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Starts the drain and then the stop of every listener it was handed to.
pub struct DrainControl {
    draining: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
}

/// A listener's view of [`DrainControl`].
#[derive(Clone)]
pub struct Drain {
    draining: Arc<AtomicBool>,
    stop: watch::Receiver<bool>,
}

impl DrainControl {
    /// A control and the view to hand to each listener.
    pub fn new() -> (DrainControl, Drain) {
        let draining = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = watch::channel(false);
        (
            DrainControl {
                draining: Arc::clone(&draining),
                stop,
            },
            Drain {
                draining,
                stop: stopped,
            },
        )
    }

    /// From now on every response carries `Connection: close`.
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Stops accepting and closes every connection once its request in
    /// flight, if any, has been answered.
    pub fn stop(&self) {
        self.begin_drain();
        let _ = self.stop.send(true);
    }
}

impl Drain {
    /// Resolves once the stop has begun (or its control is gone).
    async fn stopped(&mut self) {
        let _ = self.stop.wait_for(|stop| *stop).await;
    }
}

/// What distinguishes one listener from the other.
#[derive(Debug, Clone, Copy)]
pub struct ListenerSettings {
    /// The metric label: `public`, `admin` or `gate`.
    pub name: &'static str,
    /// Connections held open at once.
    pub max_connections: usize,
}

/// Serves `app` on `listener` until the drain's stop, then lets requests in
/// flight finish within [`SHUTDOWN_GRACE`].
pub async fn serve(listener: TcpListener, app: Router, settings: ListenerSettings, drain: Drain) {
    accept_loop(listener, app, Handshake::None, settings, drain).await;
}

/// Serves `app` until `shutdown` resolves, then stops without a drain
/// window: `dev`'s helper services (the development provider, the
/// document host over TLS with `tls`, the sample client).
#[cfg(feature = "dev")]
pub async fn serve_until(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let (control, drain) = DrainControl::new();
    let settings = ListenerSettings {
        name: "dev",
        max_connections: ADMIN_MAX_CONNECTIONS,
    };
    let handshake = tls.map_or(Handshake::None, Handshake::Tls);
    let serving = accept_loop(listener, app, handshake, settings, drain);
    tokio::pin!(serving);
    tokio::select! {
        () = &mut serving => return,
        () = shutdown => control.stop(),
    }
    serving.await;
}

/// What a connection goes through before its first request.
#[derive(Clone)]
enum Handshake {
    /// Plain HTTP.
    None,
    /// TLS, within the time allowed for the request head.
    #[cfg(feature = "dev")]
    Tls(TlsAcceptor),
}

async fn accept_loop(
    listener: TcpListener,
    app: Router,
    handshake: Handshake,
    settings: ListenerSettings,
    drain: Drain,
) {
    let max_connections = settings.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max_connections));
    let registry = Arc::new(Registry::new());
    let mut stop = drain.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.stopped() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: back off briefly.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(permit) = make_room(&slots, &registry, settings.name, &mut stop).await else {
            break;
        };
        let _ = stream.set_nodelay(true);
        let slot = Slot::open(permit, &registry, settings.name);
        let (app, drain) = (app.clone(), drain.clone());
        match handshake.clone() {
            Handshake::None => {
                tokio::spawn(serve_connection(stream, peer, app, drain, slot));
            }
            #[cfg(feature = "dev")]
            Handshake::Tls(tls) => {
                tokio::spawn(async move {
                    match tokio::time::timeout(HEADER_READ_TIMEOUT, tls.accept(stream)).await {
                        Ok(Ok(stream)) => serve_connection(stream, peer, app, drain, slot).await,
                        Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                });
            }
        }
    }
    drop(listener);
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(SHUTDOWN_GRACE, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            listener = settings.name,
            "requests still in flight after the shutdown grace period"
        );
    }
}

/// A place under the cap for a connection just accepted: at once when there
/// is one; otherwise the connection idle the longest is asked to close and
/// its place taken. A connection not yet read from is not idle: it may hold
/// a request nobody has looked at. `None` when the stop comes first.
async fn make_room(
    slots: &Arc<Semaphore>,
    registry: &Registry,
    name: &'static str,
    stop: &mut Drain,
) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = Arc::clone(slots).try_acquire_owned() {
        return Some(permit);
    }
    let mut made = registry.close_one();
    let permit = loop {
        tokio::select! {
            permit = Arc::clone(slots).acquire_owned() => break permit.ok(),
            // Connections accepted a moment ago become idle (or busy) once
            // read from, and slow heads become too slow: look again shortly.
            () = tokio::time::sleep(RECHECK_IDLE), if made.is_none() => {
                made = registry.close_one();
            }
            () = stop.stopped() => break None,
        }
    };
    METRICS
        .connections_over_limit
        .with_label_values(&[name, made.unwrap_or(Room::Waited).as_str()])
        .inc();
    permit
}

/// How room was made for a connection at the cap; a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
enum Room {
    /// The connection idle the longest was closed.
    ClosedIdle,
    /// A connection whose request head had been arriving for longer than
    /// [`SLOW_HEAD`] was cut off.
    ClosedSlowHead,
    /// Nothing could be closed: it waited for a connection to end.
    Waited,
}

impl Room {
    fn as_str(self) -> &'static str {
        self.into()
    }
}

/// How often a connection waiting at the cap looks again for an idle one.
const RECHECK_IDLE: Duration = Duration::from_millis(5);
/// How long a connection must have been idle before the cap may close it.
/// A client writes its request right after connecting, but a loaded client
/// may take a moment; closing its connection in that moment would lose the
/// request. It also bounds how fast a flood can churn: at most
/// `max_connections` per grace period.
const IDLE_GRACE: Duration = Duration::from_millis(25);
/// How long a request head may take to arrive, once started, before the cap
/// may cut its connection off to make room. A client sends its head in one
/// or two round trips; a head still arriving after this is most likely a
/// slow-loris holding a place (the 10 s head deadline ends it anyway).
const SLOW_HEAD: Duration = Duration::from_secs(1);

/// One connection, from accept to close.
async fn serve_connection<S>(stream: S, peer: SocketAddr, app: Router, mut drain: Drain, slot: Slot)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let tracker = Arc::clone(&slot.tracker);
    let io = TokioIo::new(Tracked {
        inner: stream,
        tracker: Arc::clone(&tracker),
        epoch: slot.registry.epoch,
    });
    let service = {
        let app = TowerToHyperService::new(app);
        let draining = Arc::clone(&drain.draining);
        let tracker = Arc::clone(&tracker);
        let epoch = slot.registry.epoch;
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(PeerAddr(peer));
            let response = app.call(request);
            let draining = Arc::clone(&draining);
            let tracker = Arc::clone(&tracker);
            tracker.state.store(BUSY, Ordering::Relaxed);
            async move {
                let Ok(mut response) = response.await;
                // Read when the answer is ready, not when the request came:
                // a request that spans the signal still tells its client.
                if draining.load(Ordering::Relaxed) {
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                tracker.set_idle(epoch);
                Ok::<_, Infallible>(response)
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_REQUEST_HEAD_BYTES)
        .max_headers(MAX_REQUEST_HEADERS);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = async {
            tokio::select! {
                () = tracker.close.notified() => {}
                () = drain.stopped() => {}
            }
        } => {
            if tracker.cut_off.load(Ordering::Relaxed)
                && tracker.state.load(Ordering::Relaxed) == RECEIVING
            {
                // A head arriving too slowly while others wait: dropping the
                // connection closes the socket; no request was taken.
                Ok(())
            } else {
                // Closes at once when no request has started; otherwise
                // after its response.
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, "connection ended with an error");
    }
    drop(slot);
}

/// The open connections of one listener, so that the cap can close the one
/// idle the longest.
struct Registry {
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Tracker>>>,
}

impl Registry {
    fn new() -> Registry {
        Registry {
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Makes room for one connection: asks the connection idle the longest
    /// (for at least [`IDLE_GRACE`]) to close, or failing that cuts off the
    /// one whose request head has been arriving the longest (for at least
    /// [`SLOW_HEAD`]). `None` when there is neither. Only called at the cap.
    fn close_one(&self) -> Option<Room> {
        let now = millis_since(self.epoch);
        let before =
            |age: Duration| now.saturating_sub(u64::try_from(age.as_millis()).unwrap_or(u64::MAX));
        let (tracker, room) = {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            let longest = |state: u8, since_before: u64| {
                open.iter()
                    .filter(|(_, tracker)| {
                        tracker.state.load(Ordering::Relaxed) == state
                            && tracker.since_ms.load(Ordering::Relaxed) <= since_before
                    })
                    .min_by_key(|(_, tracker)| tracker.since_ms.load(Ordering::Relaxed))
                    .map(|(id, _)| *id)
            };
            let (id, room) = longest(WAITING, before(IDLE_GRACE))
                .map(|id| (id, Room::ClosedIdle))
                .or_else(|| {
                    longest(RECEIVING, before(SLOW_HEAD)).map(|id| (id, Room::ClosedSlowHead))
                })?;
            // Out of the table at once, so the next arrival picks another.
            (open.remove(&id)?, room)
        };
        if room == Room::ClosedSlowHead {
            tracker.cut_off.store(true, Ordering::Relaxed);
        }
        tracker.close.notify_one();
        Some(room)
    }
}

/// A connection not read from yet.
const UNREAD: u8 = 0;
/// A connection waiting for its client: nothing of a request has arrived.
const WAITING: u8 = 1;
/// Part of a request head has arrived; the request has not started yet.
const RECEIVING: u8 = 2;
/// A request is being handled and has not been answered yet.
const BUSY: u8 = 3;

/// What the cap needs to know about one connection.
struct Tracker {
    /// `UNREAD`, `WAITING`, `RECEIVING` or `BUSY`. Only the connection
    /// task changes it.
    state: AtomicU8,
    /// Milliseconds from the registry's epoch to when it became `WAITING`
    /// (or was accepted) or `RECEIVING`.
    since_ms: AtomicU64,
    /// Set when the cap chose this connection to close.
    close: Notify,
    /// Set when the cap chose to cut off its slow request head.
    cut_off: AtomicBool,
}

impl Tracker {
    fn set_idle(&self, epoch: Instant) {
        self.since_ms.store(millis_since(epoch), Ordering::Relaxed);
        self.state.store(WAITING, Ordering::Relaxed);
    }
}

fn millis_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A connection's place under the cap: given back, with its table entry and
/// its count in the gauge, when the connection ends.
struct Slot {
    _permit: OwnedSemaphorePermit,
    registry: Arc<Registry>,
    id: u64,
    tracker: Arc<Tracker>,
    gauge: prometheus::IntGauge,
}

impl Slot {
    fn open(permit: OwnedSemaphorePermit, registry: &Arc<Registry>, name: &str) -> Slot {
        let id = registry.next_id.fetch_add(1, Ordering::Relaxed);
        let tracker = Arc::new(Tracker {
            state: AtomicU8::new(UNREAD),
            since_ms: AtomicU64::new(millis_since(registry.epoch)),
            close: Notify::new(),
            cut_off: AtomicBool::new(false),
        });
        registry
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, Arc::clone(&tracker));
        let gauge = METRICS.connections_open.with_label_values(&[name]);
        gauge.inc();
        Slot {
            _permit: permit,
            registry: Arc::clone(registry),
            id,
            tracker,
            gauge,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.registry
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
        self.gauge.dec();
    }
}

/// The socket, noting when its connection starts receiving a request head
/// and when it finds nothing to read (waiting for its client): the cap
/// closes an idle connection only while nothing of a request has arrived.
struct Tracked<S> {
    inner: S,
    tracker: Arc<Tracker>,
    epoch: Instant,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            let state = this.tracker.state.load(Ordering::Relaxed);
            if state == UNREAD || state == WAITING {
                this.tracker
                    .since_ms
                    .store(millis_since(this.epoch), Ordering::Relaxed);
                this.tracker.state.store(RECEIVING, Ordering::Relaxed);
            }
        } else if polled.is_pending() {
            // Nothing there: waiting for the client, unless a request has
            // started (its body may simply be slow).
            let _ = this.tracker.state.compare_exchange(
                UNREAD,
                WAITING,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::Room;

    #[test]
    fn room_labels_are_pinned() {
        // Metric labels: the strings are a contract.
        for (room, label) in [
            (Room::ClosedIdle, "closed_idle"),
            (Room::ClosedSlowHead, "closed_slow_head"),
            (Room::Waited, "waited"),
        ] {
            assert_eq!(room.as_str(), label);
        }
    }
}
