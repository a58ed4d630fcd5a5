//! The running appliance: one task per concern under one cancellation token.
//!
//! Today the concerns are the store writer (its own OS thread, see `store`), the HTTP
//! server (device API and handheld UI over [`crate::floor`]), the pull, the push and the
//! health probes (when an Odoo is configured, sharing one connectivity tracker, which starts
//! `unknown`), the backlog recorder (see [`crate::backlog`]), housekeeping and the systemd
//! watchdog, the scanners, printers and the MQTT telemetry (see [`crate::telemetry`]). SIGTERM or SIGINT cancels the token: the HTTP server stops accepting, finishes
//! the requests in hand, the store commits what is queued, and the process exits 0. A task that fails on its own
//! cancels the rest and the process exits non-zero, so systemd restarts it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::Config;
use crate::http::{self, AppState};
use crate::status::{CloudStatus, SiteStatus};
use crate::store::Store;

/// How long shutdown may take before the process gives up waiting (systemd's default stop
/// timeout is 90 s; stay well inside it).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Runs the appliance until a signal or a task failure.
pub async fn run(
    config: &Config,
    store: Store,
    listener: TcpListener,
    demo: Option<crate::demo::DemoCloud>,
) -> anyhow::Result<()> {
    run_until(config, store, listener, demo, CancellationToken::new()).await
}

/// Runs the appliance until a signal, a task failure, or `token` is cancelled (how tests
/// stop an appliance they run in-process).
pub async fn run_until(
    config: &Config,
    store: Store,
    listener: TcpListener,
    demo: Option<crate::demo::DemoCloud>,
    token: CancellationToken,
) -> anyhow::Result<()> {
    let pull_progress = config
        .odoo
        .as_ref()
        .map(|_| crate::pull::ProgressHandle::default());
    let pull_now = config
        .odoo
        .as_ref()
        .map(|_| crate::pull::PullNowHandle::default());
    let floor = crate::floor::Floor::new(
        store.clone(),
        config.floor.policy,
        config.floor.gs1_separator,
        config.devices.clone(),
    );
    floor.set_lockout(config.floor.lockout);
    let registry =
        crate::registry::Registry::load(&store).context("loading the device registry")?;
    let printing = crate::printing::Printing::new(store.clone(), config.lan.clone());
    floor.set_printing(printing.clone());
    // Jobs caught mid-send by the last stop may have printed: hold them for a person.
    // With the store full this write is refused: the appliance still serves (reads, probes,
    // refusals with their reason), and a printer whose job was cut off waits behind it, never
    // sending it again, until a start with room holds it as unknown.
    let held = match store.devices(crate::store::DeviceCmd::Recover).await {
        Ok(held) => held,
        Err(crate::store::StoreError::Full) => {
            tracing::error!(
                "the store is full: print jobs cut off by the last stop stay as they were until there is room"
            );
            0
        }
        Err(e) => return Err(e).context("recovering the print spool"),
    };
    if held > 0 {
        tracing::warn!(
            jobs = held,
            "print jobs interrupted by the last stop are held as unknown (reprint or cancel them)"
        );
    }
    for p in &config.lan.printers {
        let (transport, address) = match &p.address {
            holdfast_devices::printer::PrinterAddress::Tcp(a) => ("tcp", a.clone()),
            holdfast_devices::printer::PrinterAddress::Serial(s) => {
                ("serial", s.path.display().to_string())
            }
        };
        registry.configure(&p.id, "printer", transport, Some(address));
    }
    // Unknown until Odoo first answers: the mode the last run recorded is history.
    let connectivity = crate::connectivity::Connectivity::with_limits(
        Some(store.clone()),
        crate::connectivity::Limits {
            stale_after: config.sync.stale_after,
            ..Default::default()
        },
    );
    connectivity.record_start().await;
    let push_stats = config
        .odoo
        .as_ref()
        .map(|_| Arc::new(crate::push::PushStats::default()));
    // A certificate that cannot be served stops the start, naming the file and the reason.
    let tls = crate::tls::TlsHandle::load(&config.http.tls, &config.store.path)
        .context("https (http.tls) cannot start")?;
    if let Some(tls) = &tls {
        let s = tls.status();
        tracing::info!(
            mode = s.mode,
            file = %tls.cert_path().display(),
            fingerprint_sha256 = %s.fingerprint_sha256,
            not_after = %s.not_after,
            "https certificate"
        );
    }
    let redirect_listener = match config.http.redirect_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (http.redirect_listen)"))?,
        ),
        None => None,
    };
    // The metrics recorder before any task records into it.
    crate::metrics::handle();
    // The console's decoy password hash (see `managers::decoy_hash`), made now on the
    // blocking pool: the first sign-in with an unknown name then costs what any other does.
    tokio::task::spawn_blocking(|| {
        crate::managers::decoy_hash();
    });
    let state = AppState {
        store: store.clone(),
        site: SiteStatus {
            id: config.site.id.clone(),
            name: config.site.name.clone(),
        },
        cloud: CloudStatus {
            target: config.odoo.as_ref().map(|o| o.url.clone()),
        },
        floor: floor.clone(),
        started: Instant::now(),
        pull: pull_progress.clone(),
        pull_now: pull_now.clone(),
        push: push_stats.clone(),
        connectivity: connectivity.clone(),
        manager_token: config.http.manager_token.clone(),
        demo: demo.clone(),
        registry: registry.clone(),
        printing: printing.clone(),
        managers: Default::default(),
        tls: tls.clone(),
        runbook: Arc::new(crate::runbook::Runbook::from_config(config)),
        metrics_token: config.telemetry.metrics_token.clone(),
        telemetry: config
            .telemetry
            .mqtt
            .as_ref()
            .map(crate::telemetry::Telemetry::new),
    };
    // Listen for signals before serving: a SIGTERM that arrives once we answer must not
    // meet the default action (an abrupt exit).
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot listen for SIGINT")?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, scheme, site = %config.site.id, "holdfast is serving");

    let fd_limit = raise_fd_limit();
    let options = http::ServeOptions {
        limits: http::ConnLimits::for_fd_limit(fd_limit),
        public_status: config.http.public_status,
    };
    tracing::info!(
        fd_limit,
        max_connections = options.limits.max_connections,
        per_client = options.limits.per_client,
        "http connection caps"
    );
    // The redirect listener answers little and holds connections briefly: a small share.
    let redirect_task = match redirect_listener {
        Some(redirects) => {
            let redirect_limits = http::ConnLimits {
                max_connections: (options.limits.max_connections / 8).max(1),
                ..options.limits.clone()
            };
            tracing::info!(addr = %redirects.local_addr()?, "plain http redirects to https");
            Some(tokio::spawn(http::serve_redirects(
                redirects,
                addr.port(),
                redirect_limits,
                token.clone(),
            )))
        }
        None => None,
    };
    tokio::spawn(run_status_notify(state.clone(), token.clone()));
    // Sync health for central ops: its own task and connection, off the floor's path.
    let telemetry_task = match (&config.telemetry.mqtt, &state.telemetry) {
        (Some(settings), Some(telemetry)) => Some(tokio::spawn(
            crate::telemetry::run(
                state.clone(),
                settings.clone(),
                telemetry.clone(),
                token.clone(),
            )
            .instrument(tracing::info_span!("telemetry")),
        )),
        _ => None,
    };
    let mut http_task = tokio::spawn(http::serve_with(listener, state, options, token.clone()));
    let pull_task = match (&config.odoo, pull_progress.clone(), pull_now) {
        (Some(odoo), Some(progress), Some(now)) => Some(tokio::spawn(
            crate::pull::run_pull(
                store.clone(),
                odoo.clone(),
                config.sync.clone(),
                progress,
                connectivity.clone(),
                now,
                token.clone(),
            )
            .instrument(tracing::info_span!("pull")),
        )),
        _ => None,
    };
    // Health probes on their own connections, from the start: they need no login, so they
    // tell "unreachable" from "refused" while the pull and the push are still connecting.
    let probe_task = match (&config.odoo, &pull_progress) {
        (Some(odoo), Some(progress)) => {
            match holdfast_sync::odoo::HealthProbe::new(crate::pull::client_config(odoo)) {
                Ok(probe) => Some(tokio::spawn(
                    crate::connectivity::run_probes(
                        Arc::new(probe),
                        connectivity.clone(),
                        config.push.probe,
                        Some(crate::connectivity::PullWatch {
                            progress: progress.clone(),
                            store: store.clone(),
                        }),
                        token.clone(),
                    )
                    .instrument(tracing::info_span!("probe")),
                )),
                Err(e) => {
                    tracing::error!(error = %e, "cannot build the health probe; the mode follows calls only");
                    None
                }
            }
        }
        _ => None,
    };
    let push_task = match (&config.odoo, push_stats) {
        (Some(odoo), Some(stats)) => Some(tokio::spawn(
            crate::push::run_push(
                store.clone(),
                crate::pull::client_config(odoo),
                odoo.warehouse_id,
                config.push.clone(),
                config.push_limit,
                connectivity.clone(),
                stats,
                token.clone(),
            )
            .instrument(tracing::info_span!("push")),
        )),
        _ => None,
    };
    // Devices on the LAN: scanners feed the floor, printers drain the spool.
    let hub = crate::scanners::ScanHub::new(
        floor.clone(),
        registry.clone(),
        printing.clone(),
        &config.lan,
    );
    let mut lan_tasks = crate::scanners::spawn(&hub, &config.lan, &token)?;
    lan_tasks.extend(printing.spawn_workers(&registry, &token));
    let registry_task = tokio::spawn(registry.clone().run(store.clone(), token.clone()));
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    tokio::spawn(reload_on_hangup(
        hangup,
        printing.clone(),
        tls.clone(),
        token.clone(),
    ));
    // The backlog's history for the console's chart: a first sample now, so a fresh
    // appliance has a point to show.
    tokio::spawn(
        crate::backlog::run_recorder(store.clone(), crate::backlog::EVERY, token.clone())
            .instrument(tracing::info_span!("backlog")),
    );
    tokio::spawn(
        run_housekeeping(floor, token.clone()).instrument(tracing::info_span!("housekeeping")),
    );
    if let Some(period) = sd_notify::watchdog_enabled() {
        tokio::spawn(run_watchdog(store.clone(), period, token.clone()));
    }
    // systemd (Type=notify) starts dependants only once we serve; a no-op elsewhere.
    notify(&[sd_notify::NotifyState::Ready]);
    let result = tokio::select! {
        signal = async {
            tokio::select! {
                _ = sigterm.recv() => "SIGTERM",
                _ = sigint.recv() => "SIGINT",
                _ = token.cancelled() => "stop",
            }
        } => {
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
            // The server also stops on the token: a stop asked by `token` may be seen here
            // first.
            let asked = token.is_cancelled();
            token.cancel();
            match joined {
                Ok(Ok(())) if asked => Ok(()),
                Ok(Ok(())) => Err(anyhow::anyhow!("http server stopped unexpectedly")),
                Ok(Err(e)) => Err(anyhow::Error::new(e).context("http server failed")),
                Err(e) => Err(anyhow::Error::new(e).context("http task panicked")),
            }
        }
    };
    if let Some(task) = probe_task {
        // Probes hold no state worth waiting for.
        task.abort();
    }
    if let Some(task) = redirect_task {
        // Redirects hold nothing; it stopped on the token like the HTTP server.
        match tokio::time::timeout(SHUTDOWN_GRACE, task).await {
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the redirect listener failed"),
            Ok(_) => {}
            Err(_) => tracing::warn!("the redirect listener did not stop in time"),
        }
    }
    if let Some(task) = pull_task {
        // The pull stops between pages; wait for the page in hand to commit.
        if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
            tracing::warn!("pull did not stop in time");
        }
    }
    if let Some(task) = push_task {
        // Batches in hand settle (or are recovered as ambiguous at the next start).
        if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
            tracing::warn!("push did not stop in time");
        }
    }
    for task in lan_tasks {
        if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
            tracing::warn!("a device task did not stop in time");
        }
    }
    // The registry's last changes, after the devices stopped.
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, registry_task).await;
    if let Some(task) = telemetry_task {
        // The goodbye (`stopping`, then an offline status); bounded inside the task.
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, task).await;
    }
    notify(&[sd_notify::NotifyState::Stopping]);
    // Commit whatever is queued before exiting, on every path.
    store.shutdown().await.context("store shutdown")?;
    tracing::info!("stopped");
    result
}

/// Raises the soft limit on open descriptors to the hard one (a login shell often starts at
/// 1,024 while the hard limit is far higher) and returns the soft limit in force. Under
/// systemd, `LimitNOFILE=` sets both and nothing is changed (the unit's system call filter
/// does not allow `setrlimit`).
pub fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    // An unlimited hard limit still meets the kernel's own ceiling (fs.nr_open).
    let target = hard.min(1 << 20);
    if soft >= target {
        return soft;
    }
    match setrlimit(Resource::RLIMIT_NOFILE, target, hard) {
        Ok(()) => {
            tracing::debug!(from = soft, to = target, "raised the open-file limit");
            target
        }
        Err(e) => {
            tracing::warn!(error = %e, soft, hard, "cannot raise the open-file limit");
            soft
        }
    }
}

/// How long a device's idempotency key is remembered: far longer than any retry.
const ANSWER_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// Periodic clean-up of what is only kept for a while (answers to device requests). The
/// journal is never pruned: business entries are bounded by disk, not by age.
async fn run_housekeeping(floor: crate::floor::Floor, token: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = floor.prune_answers(ANSWER_RETENTION).await {
            tracing::warn!(error = %e, "cannot prune old device answers");
        }
    }
}

fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// How often the status line for systemd is built again (sent only when it changed).
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// Keeps systemd's `STATUS=` (what `systemctl status holdfast` shows) on the mode and the
/// backlog: the one status snapshot every few seconds, sent only when its line changed. Also
/// keeps the metrics recorder's pending histogram samples bounded between scrapes.
async fn run_status_notify(state: AppState, token: CancellationToken) {
    let under_systemd = std::env::var_os("NOTIFY_SOCKET").is_some();
    let mut tick = tokio::time::interval(STATUS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sent = String::new();
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        crate::metrics::upkeep();
        if !under_systemd {
            continue;
        }
        let line = match http::full_status(&state) {
            Ok(status) => status.status_line(),
            Err(e) => {
                tracing::warn!(error = ?e, "cannot build the status for systemd");
                continue;
            }
        };
        if line != sent {
            notify(&[sd_notify::NotifyState::Status(&line)]);
            sent = line;
        }
    }
}

/// Tells systemd's watchdog we are alive, but only while the store writer still commits: a
/// wedged writer means nothing new is acknowledged, and a restart is the right cure.
async fn run_watchdog(store: Store, period: Duration, token: CancellationToken) {
    let half = period / 2;
    let mut tick = tokio::time::interval(half);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        match tokio::time::timeout(half, store.ping()).await {
            Ok(Ok(())) => notify(&[sd_notify::NotifyState::Watchdog]),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "store not answering; withholding the watchdog ping")
            }
            Err(_) => tracing::warn!("store ping timed out; withholding the watchdog ping"),
        }
    }
}

/// SIGHUP (`systemctl reload holdfast`): the site's label templates and the HTTPS certificate
/// files are read again (new connections get the new certificate). Other settings take a
/// restart.
async fn reload_on_hangup(
    mut hangup: tokio::signal::unix::Signal,
    printing: crate::printing::Printing,
    tls: Option<crate::tls::TlsHandle>,
    cancel: CancellationToken,
) {
    use crate::printing::TemplatesReloaded;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            got = hangup.recv() => if got.is_none() { return },
        }
        match printing.reload_templates() {
            Ok(TemplatesReloaded::NoneConfigured) => {
                tracing::info!("SIGHUP: no site label templates (printing.templates) to reload");
            }
            Ok(TemplatesReloaded::Loaded(files)) => {
                tracing::info!(?files, "SIGHUP: site label templates reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: site label templates not reloaded; the ones in use stay");
            }
        }
        if let Some(tls) = &tls {
            match tls.reload() {
                Ok(s) => tracing::info!(
                    fingerprint_sha256 = %s.fingerprint_sha256,
                    not_after = %s.not_after,
                    "SIGHUP: https certificate reloaded"
                ),
                Err(e) => tracing::error!(
                    error = %e,
                    "SIGHUP: https certificate not reloaded; the one in use stays"
                ),
            }
        }
    }
}
