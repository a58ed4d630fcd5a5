//! Holdfast, the edge warehouse continuity appliance: the binary's library.
//!
//! `main.rs` only calls [`cli::main`]. The pieces:
//!
//! - [`config`]: TOML + environment configuration, validated into a typed [`config::Config`];
//! - [`store`]: the SQLite store (mirror, journal, view); the only module with SQL;
//! - [`runtime`]: the long-running appliance: tasks under one cancellation token, signals;
//! - [`http`]: the HTTP API (probes, status);
//! - [`managers`]: site managers: roles, console sessions, the authorisation rules;
//! - [`i18n`]: the console's and the handheld's languages (Fluent catalogues);
//! - [`runbook`]: the degraded-mode runbook: what the configuration keeps working offline;
//! - [`status`]: the status snapshot shown by the API and the CLI;
//! - [`metrics`]: the counters and histograms behind `/metrics`, recorded where events happen;
//! - [`tls`]: HTTPS on the HTTP listener: the certificate, its reload, the redirects;
//! - [`backlog`]: the backlog's history, one sample a minute, for the console's chart;
//! - [`pull`]: refreshing the mirror from Odoo (full, incremental, scheduled);
//! - [`resolve`]: what a decoded scan stands for on this site;
//! - [`demo`]: the built-in demo warehouse;
//! - [`cli`]: the command line.

/// The allocator of every binary built on this library (the appliance, its tests and
/// benchmarks): mimalloc, which with its `override` feature also serves the bundled SQLite's
/// `malloc`. Per-thread free lists instead of glibc's arenas and chunk consolidation: each
/// scan allocates a few hundred blocks (page buffers re-read after a commit, JSON values).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod backlog;
pub mod backups;
pub mod cli;
pub mod config;
pub mod connectivity;
pub mod demo;
pub mod fleet;
pub mod floor;
pub mod http;
pub mod i18n;
pub mod logging;
pub mod managers;
pub mod metrics;
pub mod printing;
pub mod pull;
pub mod push;
pub mod registry;
pub mod resolve;
pub mod runbook;
pub mod runtime;
pub mod scanners;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod ui;
pub mod workflow;
