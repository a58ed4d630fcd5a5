//! The running appliance: one task per concern under one cancellation token.
//!
//! Today the concerns are the store writer (its own OS thread, see `store`) and the HTTP
//! server; the pull, push, device and telemetry tasks join them here. SIGTERM or SIGINT
//! cancels the token: the HTTP server stops accepting, finishes the requests in hand, the
//! store commits what is queued, and the process exits 0. A task that fails on its own
//! cancels the rest and the process exits non-zero, so systemd restarts it.

use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::http::{self, AppState};
use crate::status::{CloudStatus, SiteStatus};
use crate::store::Store;

/// How long shutdown may take before the process gives up waiting (systemd's default stop
/// timeout is 90 s; stay well inside it).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Runs the appliance until a signal or a task failure.
pub async fn run(config: &Config, store: Store, listener: TcpListener) -> anyhow::Result<()> {
    let token = CancellationToken::new();
    let state = AppState {
        store: store.clone(),
        site: SiteStatus {
            id: config.site.id.clone(),
            name: config.site.name.clone(),
        },
        cloud: CloudStatus {
            target: config.odoo.as_ref().map(|o| o.url.clone()),
        },
        started: Instant::now(),
    };
    let addr = listener.local_addr()?;
    tracing::info!(%addr, site = %config.site.id, "holdfast is serving");

    let mut http_task = tokio::spawn(http::serve(listener, state, token.clone()));
    let result = tokio::select! {
        signal = shutdown_signal() => {
            tracing::info!(signal, "shutting down");
            token.cancel();
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut http_task).await {
                Ok(joined) => joined.context("http task panicked")?.context("http server failed"),
                Err(_) => {
                    tracing::warn!("http server did not stop in time");
                    Ok(())
                }
            }
        }
        joined = &mut http_task => {
            token.cancel();
            match joined {
                Ok(Ok(())) => Err(anyhow::anyhow!("http server stopped unexpectedly")),
                Ok(Err(e)) => Err(anyhow::Error::new(e).context("http server failed")),
                Err(e) => Err(anyhow::Error::new(e).context("http task panicked")),
            }
        }
    };
    // Commit whatever is queued before exiting, on every path.
    store.shutdown().await.context("store shutdown")?;
    tracing::info!("stopped");
    result
}

/// Resolves with the name of the first termination signal.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}
