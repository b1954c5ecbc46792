//! The HTTP/1.1 listeners, with the ingress limits the framework's default
//! server does not expose: a bounded request head (line plus headers), a
//! deadline for reading it (slow-loris), and a bounded header count.
//! Shutdown stops accepting, lets requests in flight finish within a grace
//! period, then returns. `cimd-proxy dev` serves its helper services
//! (over TLS for the document host) with the same loop.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::ServeError;

/// The largest request head accepted (request line and headers).
const MAX_REQUEST_HEAD_BYTES: usize = 16 * 1024;
/// The most header fields in one request.
const MAX_REQUEST_HEADERS: usize = 64;
/// How long a client may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long requests in flight may take to finish after shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// The bound listeners, before serving starts (so a caller can learn the
/// actual ports when it asked for port 0).
pub struct Listeners {
    /// The public listener.
    pub public: TcpListener,
    /// The admin listener.
    pub admin: TcpListener,
}

/// Binds both listeners; an address in use is reported with the address.
pub async fn bind(public: SocketAddr, admin: SocketAddr) -> Result<Listeners, ServeError> {
    let bind_one = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })
    };
    Ok(Listeners {
        public: bind_one(public).await?,
        admin: bind_one(admin).await?,
    })
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(listener: TcpListener, app: Router, shutdown: impl Future<Output = ()>) {
    accept_loop(listener, app, None, shutdown).await;
}

/// [`serve`] over TLS: the handshake must finish within the time allowed
/// for the request head. (Only `dev`'s document host serves TLS itself.)
#[cfg(feature = "dev")]
pub async fn serve_tls(
    listener: TcpListener,
    app: Router,
    tls: TlsAcceptor,
    shutdown: impl Future<Output = ()>,
) {
    accept_loop(listener, app, Some(tls), shutdown).await;
}

async fn accept_loop(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: back off briefly.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(app.clone());
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .max_buf_size(MAX_REQUEST_HEAD_BYTES)
                    .max_headers(MAX_REQUEST_HEADERS);
                let watcher = graceful.watcher();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let result = match tls {
                        None => {
                            watcher
                                .watch(builder.serve_connection(TokioIo::new(stream), service))
                                .await
                        }
                        Some(tls) => {
                            match tokio::time::timeout(HEADER_READ_TIMEOUT, tls.accept(stream)).await {
                                Ok(Ok(stream)) => {
                                    watcher
                                        .watch(builder.serve_connection(TokioIo::new(stream), service))
                                        .await
                                }
                                Ok(Err(error)) => {
                                    tracing::debug!(%error, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => return,
                            }
                        }
                    };
                    if let Err(error) = result {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("requests still in flight after the shutdown grace period");
        }
    }
}
