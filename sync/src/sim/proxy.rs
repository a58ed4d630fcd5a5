//! A TCP fault proxy: sits between the appliance and an Odoo (the simulator or a real one)
//! and cuts the link on command, the way a WAN does — refused connections, a black hole
//! (connections accepted, nothing ever answered), or resets. Switching the link cuts every
//! connection in flight, so a call that was sent may or may not have reached Odoo.

use std::net::SocketAddr;

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
    /// Connections are accepted and then hang; nothing reaches Odoo.
    BlackHole,
    /// Connections are accepted and closed at once.
    Reset,
}

impl Link {
    pub fn as_str(self) -> &'static str {
        match self {
            Link::Up => "up",
            Link::Refuse => "down",
            Link::BlackHole => "blackhole",
            Link::Reset => "reset",
        }
    }

    /// `up`, `down` (refused), `blackhole`, `reset`.
    pub fn parse(s: &str) -> Option<Link> {
        match s {
            "up" | "online" => Some(Link::Up),
            "down" | "offline" | "refuse" => Some(Link::Refuse),
            "blackhole" | "black-hole" => Some(Link::BlackHole),
            "reset" => Some(Link::Reset),
            _ => None,
        }
    }
}

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    link: watch::Sender<Link>,
    stop: CancellationToken,
}

impl FaultProxy {
    /// Listens on `127.0.0.1:<free port>` and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (link, watch) = watch::channel(Link::Up);
        let stop = CancellationToken::new();
        tokio::spawn(run(Some(listener), addr, upstream, watch, stop.clone()));
        Ok(FaultProxy { addr, link, stop })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches the link; connections in flight are cut.
    pub fn set(&self, link: Link) {
        self.link.send_replace(link);
    }

    pub fn link(&self) -> Link {
        *self.link.borrow()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn run(
    mut listener: Option<TcpListener>,
    addr: SocketAddr,
    upstream: SocketAddr,
    mut link: watch::Receiver<Link>,
    stop: CancellationToken,
) {
    loop {
        let current = *link.borrow_and_update();
        // Refusing means not listening at all; come back to the same port afterwards.
        if current == Link::Refuse {
            listener = None;
        } else if listener.is_none() {
            match TcpListener::bind(addr).await {
                Ok(l) => listener = Some(l),
                Err(e) => {
                    tracing::warn!(error = %e, %addr, "fault proxy cannot listen again; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
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
                let cut = link.clone();
                let stop = stop.clone();
                tokio::spawn(serve(client, upstream, current, cut, stop));
            }
        }
    }
}

async fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    link: Link,
    mut cut: watch::Receiver<Link>,
    stop: CancellationToken,
) {
    match link {
        Link::Reset | Link::Refuse => {
            drop(client);
        }
        Link::BlackHole => {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = cut.changed() => {}
            }
        }
        Link::Up => {
            let Ok(mut server) = TcpStream::connect(upstream).await else {
                let _ = client.shutdown().await;
                return;
            };
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = cut.changed() => {}
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
            }
        }
    }
}
