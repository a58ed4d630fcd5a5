//! A fault proxy: sits between the appliance and an Odoo (the simulator or a real one) and
//! cuts the link on command, the way a WAN does — refused connections, a black hole
//! (connections accepted, nothing ever answered), resets, or a stall (every connection,
//! open or new, goes silent without being closed).
//!
//! Two kinds:
//! - [`FaultProxy::start`] relays TCP byte for byte. Behind it the client sees the upstream's
//!   own connection handling (the simulator, like Odoo's threaded server, closes after every
//!   answer).
//! - [`FaultProxy::start_keep_alive`] is an HTTP reverse proxy the way nginx, Azure
//!   Application Gateway or Front Door are put in front of Odoo: it keeps the client's
//!   connections alive between requests (so the client pools them) and opens a new upstream
//!   connection per request. A stall then freezes pooled connections the client believes
//!   are good, which is the case a TCP relay in front of a `Connection: close` server cannot
//!   show.
//!
//! Switching the link cuts every connection in flight (so a call that was sent may or may
//! not have reached Odoo), except a switch to [`Link::Stall`], which freezes them; a frozen
//! connection is closed when the link changes again, as a middlebox that forgot the flow
//! answers the client's next packet with a reset.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What the link does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// Bytes flow both ways.
    Up,
    /// Nothing listens: connections are refused.
    Refuse,
    /// Connections are accepted and then hang; nothing reaches Odoo. Connections open at
    /// the switch are cut.
    BlackHole,
    /// Connections are accepted and closed at once.
    Reset,
    /// Nothing flows and nothing is closed, on open connections as on new ones: a path that
    /// died silently. The client learns it only from its own time-outs.
    Stall,
}

impl Link {
    pub fn as_str(self) -> &'static str {
        match self {
            Link::Up => "up",
            Link::Refuse => "down",
            Link::BlackHole => "blackhole",
            Link::Reset => "reset",
            Link::Stall => "stall",
        }
    }

    /// `up`, `down` (refused), `blackhole`, `reset`, `stall`.
    pub fn parse(s: &str) -> Option<Link> {
        match s {
            "up" | "online" => Some(Link::Up),
            "down" | "offline" | "refuse" => Some(Link::Refuse),
            "blackhole" | "black-hole" => Some(Link::BlackHole),
            "reset" => Some(Link::Reset),
            "stall" | "silent" => Some(Link::Stall),
            _ => None,
        }
    }
}

/// Connections and requests a proxy has seen.
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Client connections accepted.
    pub connections: AtomicU64,
    /// Requests forwarded (HTTP kind only).
    pub requests: AtomicU64,
}

/// How a proxy relays.
#[derive(Clone, Debug)]
enum Relay {
    Tcp,
    /// HTTP with keep-alive towards clients, a new upstream connection per request.
    Http(reqwest::Client),
}

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    link: watch::Sender<Link>,
    stop: CancellationToken,
    stats: Arc<ProxyStats>,
}

/// Largest request body the HTTP kind forwards.
const MAX_REQUEST: usize = 64 * 1024 * 1024;
/// How long the HTTP kind waits for the upstream's answer (the simulator's own black hole
/// never answers).
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(120);

impl FaultProxy {
    /// Listens on `127.0.0.1:<free port>` and relays TCP to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        Self::spawn(upstream, Relay::Tcp).await
    }

    /// Listens on `127.0.0.1:<free port>` as a keep-alive HTTP reverse proxy to `upstream`.
    pub async fn start_keep_alive(upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(UPSTREAM_TIMEOUT)
            // One upstream connection per request, as in front of Odoo's threaded server.
            .pool_max_idle_per_host(0)
            .build()
            .map_err(std::io::Error::other)?;
        Self::spawn(upstream, Relay::Http(client)).await
    }

    async fn spawn(upstream: SocketAddr, relay: Relay) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (link, watch) = watch::channel(Link::Up);
        let stop = CancellationToken::new();
        let stats = Arc::new(ProxyStats::default());
        tokio::spawn(run(
            Some(listener),
            Target {
                addr,
                upstream,
                relay,
                stats: stats.clone(),
            },
            watch,
            stop.clone(),
        ));
        Ok(FaultProxy {
            addr,
            link,
            stop,
            stats,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches the link; connections in flight are cut (frozen, for [`Link::Stall`]).
    pub fn set(&self, link: Link) {
        self.link.send_replace(link);
    }

    pub fn link(&self) -> Link {
        *self.link.borrow()
    }

    /// Client connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.stats.connections.load(Ordering::Relaxed)
    }

    /// Requests forwarded so far (HTTP kind).
    pub fn requests(&self) -> u64 {
        self.stats.requests.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Where and how a proxy relays.
#[derive(Clone, Debug)]
struct Target {
    addr: SocketAddr,
    upstream: SocketAddr,
    relay: Relay,
    stats: Arc<ProxyStats>,
}

async fn run(
    mut listener: Option<TcpListener>,
    target: Target,
    mut link: watch::Receiver<Link>,
    stop: CancellationToken,
) {
    loop {
        let current = *link.borrow_and_update();
        // Refusing means not listening at all; come back to the same port afterwards.
        if current == Link::Refuse {
            listener = None;
        } else if listener.is_none() {
            match TcpListener::bind(target.addr).await {
                Ok(l) => listener = Some(l),
                Err(e) => {
                    tracing::warn!(error = %e, addr = %target.addr, "fault proxy cannot listen again; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
        }
        let accepted = async {
            match &listener {
                Some(l) => l.accept().await.ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = link.changed() => if changed.is_err() { return },
            conn = accepted => {
                let Some((client, _)) = conn else { continue };
                target.stats.connections.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(serve(client, target.clone(), current, link.clone(), stop.clone()));
            }
        }
    }
}

/// Waits for the next switch of the link (or the proxy's stop); `None` when stopped.
async fn next_switch(cut: &mut watch::Receiver<Link>, stop: &CancellationToken) -> Option<Link> {
    tokio::select! {
        _ = stop.cancelled() => None,
        changed = cut.changed() => changed.ok().map(|()| *cut.borrow_and_update()),
    }
}

/// Holds a connection frozen until the link switches again (the caller then drops it).
async fn frozen(cut: &mut watch::Receiver<Link>, stop: &CancellationToken) {
    let _ = next_switch(cut, stop).await;
}

async fn serve(
    mut client: TcpStream,
    target: Target,
    link: Link,
    mut cut: watch::Receiver<Link>,
    stop: CancellationToken,
) {
    // Only switches after this connection's acceptance count.
    cut.borrow_and_update();
    match link {
        Link::Reset | Link::Refuse => drop(client),
        Link::BlackHole | Link::Stall => frozen(&mut cut, &stop).await,
        Link::Up => match &target.relay {
            Relay::Tcp => relay_tcp(&mut client, target.upstream, &mut cut, &stop).await,
            Relay::Http(http) => {
                relay_http(
                    client,
                    target.upstream,
                    http.clone(),
                    &target.stats,
                    cut,
                    stop,
                )
                .await
            }
        },
    }
}

async fn relay_tcp(
    client: &mut TcpStream,
    upstream: SocketAddr,
    cut: &mut watch::Receiver<Link>,
    stop: &CancellationToken,
) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        let _ = client.shutdown().await;
        return;
    };
    let copy = tokio::io::copy_bidirectional(client, &mut server);
    tokio::pin!(copy);
    tokio::select! {
        _ = &mut copy => {}
        switched = next_switch(cut, stop) => {
            // A stall leaves both sockets open and the copy unpolled: nothing flows.
            if switched == Some(Link::Stall) {
                frozen(cut, stop).await;
            }
        }
    }
}

async fn relay_http(
    client: TcpStream,
    upstream: SocketAddr,
    http: reqwest::Client,
    stats: &Arc<ProxyStats>,
    mut cut: watch::Receiver<Link>,
    stop: CancellationToken,
) {
    let stats = stats.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let http = http.clone();
        let stats = stats.clone();
        async move {
            stats.requests.fetch_add(1, Ordering::Relaxed);
            Ok::<_, Infallible>(forward(&http, upstream, request).await)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(hyper_util::rt::TokioIo::new(client), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = &mut conn => {}
        switched = next_switch(&mut cut, &stop) => {
            // The connection (and any request in it) stays open and unserved.
            if switched == Some(Link::Stall) {
                frozen(&mut cut, &stop).await;
            }
        }
    }
}

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1), plus the ones the
/// proxy sets itself.
fn hop_by_hop(name: &hyper::header::HeaderName) -> bool {
    use hyper::header;
    [
        header::CONNECTION,
        header::HOST,
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
    ]
    .contains(name)
        || name.as_str().eq_ignore_ascii_case("keep-alive")
}

/// Forwards one request upstream; an upstream failure is a 502, as nginx answers.
async fn forward(
    http: &reqwest::Client,
    upstream: SocketAddr,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_REQUEST).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return bad_gateway("request body unreadable or too large"),
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut out = http.request(parts.method, format!("http://{upstream}{path}"));
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) {
            out = out.header(name, value);
        }
    }
    let answer = match out.body(body).send().await {
        Ok(a) => a,
        Err(e) => return bad_gateway(&format!("upstream: {e}")),
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let body = match answer.bytes().await {
        Ok(b) => b,
        Err(e) => return bad_gateway(&format!("upstream answer cut: {e}")),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if !hop_by_hop(name) {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}

fn bad_gateway(why: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!(
        "<html><body><h1>502 Bad Gateway</h1><p>{why}</p></body></html>"
    ))));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_link_reads_back_from_its_name() {
        for link in [
            Link::Up,
            Link::Refuse,
            Link::BlackHole,
            Link::Reset,
            Link::Stall,
        ] {
            assert_eq!(Link::parse(link.as_str()), Some(link));
        }
        assert_eq!(Link::parse("silent"), Some(Link::Stall));
        assert_eq!(Link::parse("sideways"), None);
    }
}
