//! The HTTP accept loop: how many connections the appliance holds, and for how long.
//!
//! Every connection costs a file descriptor, and the process shares its descriptors with the
//! store (database, WAL and shared-memory files per connection), the scanners' listeners and
//! connections, printers and the Odoo client. A client that opens connections and never
//! finishes a request must not be able to take them all, so:
//!
//! - connections are capped globally ([`ConnLimits::max_connections`], sized from the
//!   descriptor limit at start) and per client address ([`ConnLimits::per_client`]); a
//!   connection over either cap is not held waiting: it is admitted to a small separate
//!   budget ([`ConnLimits::health_connections`]) that answers only `/healthz` and `/readyz`
//!   (anything else gets 503 `busy` with `Retry-After`), one request each, under a short
//!   header time-out, at most [`ConnLimits::health_per_client`] from one address (so one
//!   flooding client cannot take the probes' budget too); past that it is closed at once;
//! - the request head must arrive within [`ConnLimits::header_timeout`] of the connection
//!   opening or of the previous response (hyper starts that timer whenever it waits for a
//!   head, so it is also the idle keep-alive time-out);
//! - the body must arrive within [`ConnLimits::body_timeout`] of the head (408 otherwise;
//!   see `read_body` in `http.rs`);
//! - a connection on which no byte moves either way for [`ConnLimits::idle_timeout`] is
//!   closed: a client that stops reading its answer, or a request stuck past every other
//!   time-out.
//!
//! With `http.tls` on, every connection is TLS (see [`crate::tls`]): it is counted against the
//! caps above before its handshake, the handshake must finish within the connection's header
//! time-out, and the first request head within what is left of it (so a client that opens
//! connections and never finishes a handshake is bounded exactly like one that never sends a
//! head). A failed handshake (plain HTTP on the TLS port, an unknown certificate, a scan) is
//! only a closed connection, logged at debug. Each connection takes the certificate in force
//! when it opens, so a SIGHUP reload never touches connections already served.
//!
//! The loop never blocks on a full descriptor table: `accept` failing with "too many open
//! files" is logged (at most every few seconds) and retried shortly, and the listener stays.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::tls::TlsHandle;

/// Caps and time-outs of the HTTP server.
#[derive(Clone, Debug)]
pub struct ConnLimits {
    /// Connections served at once, from every client together.
    pub max_connections: usize,
    /// Connections served at once from one client address.
    pub per_client: usize,
    /// Connections over a cap that are still answered, for health probes only.
    pub health_connections: usize,
    /// Of those, how many one client address may hold.
    pub health_per_client: usize,
    /// Time to send a request head, counted from the connection opening or the last answer.
    pub header_timeout: Duration,
    /// Header time-out of a connection over a cap (a probe sends its head at once).
    pub over_cap_header_timeout: Duration,
    /// Time to send a request body, counted from its head.
    pub body_timeout: Duration,
    /// Time without a byte moving either way before a connection is closed.
    pub idle_timeout: Duration,
}

/// Descriptors kept for everything but HTTP: the store's files (about three per SQLite
/// connection, five connections), the scanners' listeners and connections, printers, the
/// Odoo and MQTT clients, logs.
pub const FD_RESERVE: u64 = 256;

impl Default for ConnLimits {
    fn default() -> ConnLimits {
        ConnLimits {
            // A site has tens of handhelds, each browser keeping a few connections.
            max_connections: 512,
            per_client: 32,
            health_connections: 16,
            health_per_client: 2,
            header_timeout: Duration::from_secs(10),
            over_cap_header_timeout: Duration::from_secs(2),
            body_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

impl ConnLimits {
    /// The default caps, lowered to fit `fd_limit` open descriptors: HTTP gets what is left
    /// after [`FD_RESERVE`], so the store and the scanners never run short because of it.
    pub fn for_fd_limit(fd_limit: u64) -> ConnLimits {
        let mut limits = ConnLimits::default();
        let room = fd_limit.saturating_sub(FD_RESERVE) as usize;
        let health = limits.health_connections.min(room / 8).max(1);
        limits.health_connections = health;
        limits.max_connections = limits
            .max_connections
            .min(room.saturating_sub(health))
            .max(1);
        limits.per_client = limits.per_client.min(limits.max_connections);
        limits
    }
}

/// Largest buffer of one connection (request head included).
const MAX_BUF: usize = 64 * 1024;

/// The two routers a connection may get.
#[derive(Clone, Debug)]
pub(super) struct Routers {
    /// Everything, for connections within the caps.
    pub main: Router,
    /// `/healthz` and `/readyz` only, for connections over a cap.
    pub health: Router,
}

/// Accepts and serves connections until `shutdown`, then lets the requests in hand finish.
pub(super) async fn run_accept_loop(
    listener: TcpListener,
    routers: Routers,
    limits: ConnLimits,
    tls: Option<TlsHandle>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let global = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let health = Arc::new(Semaphore::new(limits.health_connections.max(1)));
    let clients = Clients::default();
    let health_clients = Clients::default();
    let tracker = TaskTracker::new();
    let mut last_accept_warning: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Per-connection failures (reset before accept) are the client's; a full
                // descriptor table is ours and passes as connections close.
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
                ) {
                    if last_accept_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) {
                        tracing::warn!(error = %e, "http: cannot accept a connection; retrying");
                        last_accept_warning = Some(Instant::now());
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    }
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let ip = peer.ip().to_canonical();
        let admitted = clients.admit(ip, limits.per_client).and_then(|slot| {
            global
                .clone()
                .try_acquire_owned()
                .ok()
                .map(|permit| (slot, permit))
        });
        match admitted {
            Some(held) => {
                let config = ConnConfig {
                    header_timeout: limits.header_timeout,
                    idle_timeout: limits.idle_timeout,
                    keep_alive: true,
                };
                // Handlers that need the client's address (the console sign-in's lock-out)
                // read it as `ConnectInfo`.
                let router = routers
                    .main
                    .clone()
                    .layer(axum::Extension(axum::extract::ConnectInfo(peer)));
                tracker.spawn(serve_connection(
                    stream,
                    router,
                    config,
                    tls.as_ref().map(TlsHandle::acceptor),
                    shutdown.clone(),
                    Held::Full(held),
                ));
            }
            None => match health_clients
                .admit(ip, limits.health_per_client)
                .and_then(|slot| health.clone().try_acquire_owned().ok().map(|p| (slot, p)))
            {
                Some(held) => {
                    tracing::debug!(%ip, "http: over the connection cap; health probes only");
                    let config = ConnConfig {
                        header_timeout: limits.over_cap_header_timeout,
                        idle_timeout: limits.over_cap_header_timeout * 2,
                        keep_alive: false,
                    };
                    tracker.spawn(serve_connection(
                        stream,
                        routers.health.clone(),
                        config,
                        tls.as_ref().map(TlsHandle::acceptor),
                        shutdown.clone(),
                        Held::Health(held),
                    ));
                }
                // Closing at once hands the descriptor back; the client sees a reset.
                None => drop(stream),
            },
        }
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// What a connection holds until it ends (released on drop).
#[derive(Debug)]
#[allow(dead_code)] // held for their drop only
enum Held {
    Full((ClientSlot, OwnedSemaphorePermit)),
    Health((ClientSlot, OwnedSemaphorePermit)),
}

#[derive(Clone, Copy)]
struct ConnConfig {
    header_timeout: Duration,
    idle_timeout: Duration,
    keep_alive: bool,
}

async fn serve_connection(
    stream: TcpStream,
    router: Router,
    config: ConnConfig,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: CancellationToken,
    held: Held,
) {
    let activity = Activity::new();
    let watched = Watched {
        inner: stream,
        activity: activity.clone(),
    };
    match tls {
        None => serve_http(watched, router, config, activity, shutdown).await,
        Some(acceptor) => {
            let opened = Instant::now();
            let handshake = tokio::select! {
                _ = shutdown.cancelled() => None,
                done = tokio::time::timeout(config.header_timeout, acceptor.accept(watched)) => {
                    match done {
                        Ok(Ok(stream)) => Some(stream),
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "http: tls handshake failed");
                            None
                        }
                        Err(_) => {
                            tracing::debug!("http: tls handshake timed out");
                            None
                        }
                    }
                }
            };
            if let Some(stream) = handshake {
                // The head is due within the header time-out of the connection opening; hyper
                // applies the one figure to every head, so later heads on this connection
                // get the same (a handshake takes milliseconds on a LAN).
                let left = config
                    .header_timeout
                    .saturating_sub(opened.elapsed())
                    .max(Duration::from_millis(100));
                let config = ConnConfig {
                    header_timeout: left,
                    ..config
                };
                serve_http(stream, router, config, activity, shutdown).await;
            }
        }
    }
    drop(held);
}

/// Serves HTTP/1.1 on an open (plain or TLS) connection until it ends.
async fn serve_http<I>(
    stream: I,
    router: Router,
    config: ConnConfig,
    activity: Activity,
    shutdown: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(stream);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .keep_alive(config.keep_alive)
        // Read and write buffers: hyper's default (about 400 KiB) for every connection at the
        // cap would pass the unit's MemoryMax; a longer request head is answered 431.
        .max_buf_size(MAX_BUF);
    let conn = builder.serve_connection(io, TowerToHyperService::new(router));
    tokio::pin!(conn);
    let check_every = (config.idle_timeout / 4).max(Duration::from_millis(100));
    let mut check = tokio::time::interval(check_every);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "http: connection ended");
                }
                break;
            }
            _ = shutdown.cancelled(), if !closing => {
                // Idle connections close now, requests in hand finish first.
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = check.tick() => {
                if activity.idle_for() >= config.idle_timeout {
                    tracing::debug!("http: closing a connection on which nothing moved");
                    break;
                }
            }
        }
    }
}

/// When a connection last moved a byte, shared by its I/O and its watcher.
#[derive(Clone, Debug)]
struct Activity {
    start: Instant,
    /// Milliseconds since `start`.
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let now = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// A stream that records when bytes move.
struct Watched<T> {
    inner: T,
    activity: Activity,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Connections held per client address.
#[derive(Clone, Debug, Default)]
struct Clients(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One connection of one client; counted until dropped.
#[derive(Debug)]
struct ClientSlot {
    clients: Clients,
    ip: IpAddr,
}

impl Clients {
    fn admit(&self, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        // A poisoned lock only means a panic elsewhere mid-update of a counter.
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = held.entry(ip).or_insert(0);
        if *n >= max.max(1) {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            clients: self.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut held = self.clients.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_fit_the_descriptor_limit() {
        // (descriptor limit, expected global cap, expected health budget)
        for (fds, max, health) in [
            (1024, 512, 16),
            (512, 240, 16),
            (300, 39, 5),
            (100, 1, 1),
            (1 << 20, 512, 16),
        ] {
            let limits = ConnLimits::for_fd_limit(fds);
            assert_eq!(
                (limits.max_connections, limits.health_connections),
                (max, health),
                "{fds}"
            );
            assert!(limits.per_client <= limits.max_connections);
        }
    }

    #[test]
    fn per_client_slots_are_counted_and_released() {
        let clients = Clients::default();
        let ip: IpAddr = [10, 0, 0, 7].into();
        let first = clients.admit(ip, 2);
        let second = clients.admit(ip, 2);
        assert!(first.is_some() && second.is_some());
        assert!(
            clients.admit(ip, 2).is_none(),
            "third connection over a cap of two"
        );
        drop(first);
        assert!(
            clients.admit(ip, 2).is_some(),
            "a closed connection frees its slot"
        );
        let other: IpAddr = [10, 0, 0, 8].into();
        assert!(clients.admit(other, 2).is_some());
    }
}
