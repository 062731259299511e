//! The accept loop: TCP connections in, HTTP (and WebSocket upgrades) served, with the limits an
//! open-internet server needs and that `axum::serve` does not have.
//!
//! - **Header-read timeout** (`--http-header-timeout-secs`): hyper's HTTP/1 `header_read_timeout`.
//!   Its timer starts whenever hyper waits for a request head, so it also ends a keep-alive
//!   connection that sends no next request. A slowloris client is cut off here.
//! - **Idle timeout** (`--http-idle-timeout-secs`): a connection that moves no byte either way for
//!   this long is closed (a trickled body, a response nobody reads). It stops applying once the
//!   connection becomes a WebSocket, which has its own heartbeat.
//! - **Caps:** open connections per IP (`--max-connections-per-ip`) and in total (what the
//!   open-file limit allows, see [`raise_open_file_limit`]). A connection over a cap is closed at
//!   once, before any byte of it is read.
//! - **`TCP_NODELAY`** on every accepted socket: signaling messages are small and latency matters
//!   more than packet count.
//! - **Graceful shutdown:** when the shutdown signal fires the loop stops accepting and every HTTP
//!   connection finishes its request in flight and closes.
//!
//! [`serve_connection`] serves any byte stream with its peer address, so a TLS acceptor can sit
//! between [`accept`] and it.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::limits::{IpGuard, PerIpCounter};

/// Timeouts and caps of the accept loop.
#[derive(Debug, Clone)]
pub struct ServeLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub per_ip: Arc<PerIpCounter>,
    /// Connections open at once, all addresses together.
    pub max_connections: usize,
    pub open: Arc<AtomicUsize>,
}

impl ServeLimits {
    pub fn new(config: &crate::Config, max_connections: usize) -> Self {
        Self {
            header_timeout: Duration::from_secs(config.http_header_timeout_secs.max(1)),
            idle_timeout: Duration::from_secs(config.http_idle_timeout_secs.max(1)),
            per_ip: PerIpCounter::new(config.max_connections_per_ip),
            max_connections,
            open: Arc::default(),
        }
    }
}

/// A connection's place under the caps; it is given back when the socket (or the WebSocket it
/// became) is dropped.
#[derive(Debug)]
pub struct ConnSlot {
    _ip: IpGuard,
    open: Arc<AtomicUsize>,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Take a slot for a new connection from `peer`, or `None` if a cap is reached.
pub fn admit(limits: &ServeLimits, peer: SocketAddr) -> Option<ConnSlot> {
    let open = limits.open.fetch_add(1, Ordering::Relaxed);
    let slot_open = Arc::clone(&limits.open);
    if open >= limits.max_connections {
        slot_open.fetch_sub(1, Ordering::Relaxed);
        return None;
    }
    match limits.per_ip.acquire(peer.ip()) {
        Some(ip) => Some(ConnSlot {
            _ip: ip,
            open: slot_open,
        }),
        None => {
            slot_open.fetch_sub(1, Ordering::Relaxed);
            None
        }
    }
}

/// What every accepted socket gets before it is served: `TCP_NODELAY`, so a small signaling
/// message goes out at once instead of waiting on Nagle's algorithm for the previous one's ACK.
pub fn prepare_accepted(stream: &tokio::net::TcpStream) {
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(%err, "TCP_NODELAY not set");
    }
}

/// Resolves once `shutdown` turns true (or its sender is gone).
pub async fn until_shutdown(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, not held across the caller's awaits.
    let _ = shutdown.wait_for(|stop| *stop).await.is_ok();
}

/// Accept TCP connections until `shutdown` turns true, serving each on its own task.
pub async fn accept(
    listener: TcpListener,
    app: Router,
    limits: ServeLimits,
    mut shutdown: watch::Receiver<bool>,
    tls: Option<crate::tls::Tls>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors or a connection reset before accept: keep going,
                    // after a breath so a full table is not spun on.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = until_shutdown(&mut shutdown) => break,
        };
        let Some(slot) = admit(&limits, peer) else {
            tracing::debug!(%peer, "connection over the caps, closed");
            drop(stream);
            continue;
        };
        prepare_accepted(&stream);
        let (app, limits, shutdown) = (app.clone(), limits.clone(), shutdown.clone());
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, peer, slot, app, &limits, shutdown).await,
                // The handshake holds the connection's slot, and gets as long as headers do.
                Some(tls) => {
                    match tokio::time::timeout(limits.header_timeout, tls.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            serve_connection(stream, peer, slot, app, &limits, shutdown).await
                        }
                        Ok(Err(err)) => tracing::debug!(%peer, %err, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// Serve HTTP/1 or HTTP/2 (with WebSocket upgrades) on one connection from `peer` until it
/// closes, times out, or shutdown. `slot` is held for as long as the connection lives, upgrades
/// included.
pub async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    slot: ConnSlot,
    app: Router,
    limits: &ServeLimits,
    mut shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let started = Instant::now();
    let activity = Arc::new(AtomicU64::new(0));
    let io = Watched {
        inner: io,
        started,
        activity: Arc::clone(&activity),
        _slot: slot,
    };
    let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(req)
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.header_timeout))
        .keep_alive_timeout(limits.header_timeout);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let idle = limits.idle_timeout;
    let mut check = tokio::time::interval((idle / 4).max(Duration::from_millis(250)));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut draining = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%peer, %err, "HTTP connection ended with an error");
                }
                return;
            }
            _ = check.tick() => {
                let last = Duration::from_millis(activity.load(Ordering::Relaxed));
                if started.elapsed().saturating_sub(last) > idle {
                    tracing::debug!(%peer, "HTTP connection idle, closed");
                    return;
                }
            }
            _ = until_shutdown(&mut shutdown), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// A byte stream that notes when it last moved a byte and holds the connection's slot.
struct Watched<I> {
    inner: I,
    started: Instant,
    activity: Arc<AtomicU64>,
    _slot: ConnSlot,
}

impl<I> Watched<I> {
    fn touch(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.activity.store(now, Ordering::Relaxed);
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        poll
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// File descriptors kept for the database, the media socket, logs and the runtime.
const RESERVED_FDS: u64 = 64;

/// Raise the soft open-file limit to the hard limit, and return how many connections that leaves
/// room for (the limit minus what the process needs besides connections).
pub fn raise_open_file_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    let soft = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            1024
        } else {
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: limit.rlim_max,
                    rlim_max: limit.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    limit.rlim_cur = limit.rlim_max;
                }
            }
            limit.rlim_cur
        }
    };
    let soft = if soft == libc::RLIM_INFINITY {
        1 << 20
    } else {
        soft as u64
    };
    soft.saturating_sub(RESERVED_FDS).max(16) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_sockets_have_nodelay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(!accepted.nodelay().unwrap(), "off by default");
        prepare_accepted(&accepted);
        assert!(accepted.nodelay().unwrap());
    }

    #[test]
    fn a_connection_over_either_cap_is_not_admitted() {
        let limits = ServeLimits {
            header_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            per_ip: PerIpCounter::new(2),
            max_connections: 3,
            open: Arc::default(),
        };
        let a: SocketAddr = "192.0.2.1:1000".parse().unwrap();
        let b: SocketAddr = "192.0.2.2:1000".parse().unwrap();
        let first = admit(&limits, a).unwrap();
        let _second = admit(&limits, a).unwrap();
        assert!(admit(&limits, a).is_none(), "per address");
        let _third = admit(&limits, b).unwrap();
        assert!(admit(&limits, b).is_none(), "in total");
        assert_eq!(limits.open.load(Ordering::Relaxed), 3);
        drop(first);
        assert!(admit(&limits, b).is_some(), "a slot came back");
    }
}
