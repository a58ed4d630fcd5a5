//! The status snapshot: what a site manager or an ops engineer asks first. Served at
//! `GET /api/v1/status` and printed by `holdfast status`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::store::{Reader, StoreError, now_ms};

/// Appliance status at one moment.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub version: &'static str,
    pub site: SiteStatus,
    /// `online`, `degraded` or `offline`.
    pub mode: String,
    pub mode_since: String,
    pub cloud: CloudStatus,
    /// Journal entries by state.
    pub queue: BTreeMap<String, i64>,
    /// Age of the oldest entry not yet settled with the cloud, in seconds.
    pub oldest_pending_age_secs: Option<f64>,
    pub last_pull_at: Option<String>,
    pub last_push_at: Option<String>,
    pub database: DatabaseStatus,
    pub mirror: BTreeMap<String, i64>,
    /// Only when the appliance is running (absent when read from the file by the CLI).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeStatus>,
    /// The pull's progress and last result, when running with an Odoo configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull: Option<crate::pull::PullProgress>,
    /// Cloud-side changes to pickings the floor owns, waiting for reconciliation.
    pub cloud_changes_open: usize,
    /// Conflicts waiting for a person (`open`) or applied and flagged (`flagged`).
    pub conflicts: ConflictSummary,
    /// The push's figures, when it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<PushStatus>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ConflictSummary {
    pub open: i64,
    pub flagged: i64,
    /// `status/kind` → count.
    pub by_kind: BTreeMap<String, i64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PushStatus {
    /// Why the push is paused (refused credentials), if it is.
    pub paused: Option<String>,
    pub calls: u64,
    pub applied: u64,
    /// Entries applied per second over the last minute.
    pub drain_rate_per_sec: f64,
    /// Pending entries / drain rate; absent when nothing drains.
    pub eta_drain_secs: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SiteStatus {
    pub id: String,
    pub name: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct CloudStatus {
    /// Where the site reconciles: an Odoo URL, or none.
    pub target: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DatabaseStatus {
    pub path: String,
    pub size_bytes: u64,
    pub schema_version: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RuntimeStatus {
    pub uptime_secs: f64,
    pub writer_commits: u64,
    pub writer_commands: u64,
    pub device_queue: usize,
    pub background_queue: usize,
}

/// Formats unix milliseconds as RFC 3339 (UTC).
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string())
}

impl Status {
    /// Reads everything the store knows.
    pub fn collect(
        reader: &Reader<'_>,
        site: SiteStatus,
        cloud: CloudStatus,
        db_path: &str,
    ) -> Result<Status, StoreError> {
        let state = reader.appliance_state()?;
        let queue = reader.queue_stats()?;
        let now = now_ms();
        Ok(Status {
            version: env!("CARGO_PKG_VERSION"),
            site,
            mode: state.mode,
            mode_since: rfc3339(state.mode_since),
            cloud,
            queue: queue.by_state,
            oldest_pending_age_secs: queue
                .oldest_open_created_at
                .map(|t| (now - t).max(0) as f64 / 1000.0),
            last_pull_at: state.last_pull_at.map(rfc3339),
            last_push_at: state.last_push_at.map(rfc3339),
            database: DatabaseStatus {
                path: db_path.to_owned(),
                size_bytes: reader.db_size()?,
                schema_version: reader.schema_version()?.0,
            },
            mirror: reader.mirror_counts()?,
            runtime: None,
            pull: None,
            cloud_changes_open: reader.cloud_changes_open()?,
            conflicts: {
                let mut c = ConflictSummary::default();
                for (status, kind, n) in reader.conflict_counts()? {
                    match status.as_str() {
                        "open" => c.open += n,
                        _ => c.flagged += n,
                    }
                    c.by_kind.insert(format!("{status}/{kind}"), n);
                }
                c
            },
            push: None,
        })
    }

    /// A few lines for a terminal.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let open: i64 = ["pending", "in_flight", "conflict", "rejected"]
            .iter()
            .map(|s| self.queue.get(*s).copied().unwrap_or(0))
            .sum();
        out.push_str(&format!(
            "site      {} ({})\nmode      {} since {}\ncloud     {}\n",
            self.site.name,
            self.site.id,
            self.mode,
            self.mode_since,
            self.cloud.target.as_deref().unwrap_or("none configured"),
        ));
        out.push_str(&format!(
            "queue     {open} open ({})\n",
            self.queue
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        if let Some(age) = self.oldest_pending_age_secs {
            out.push_str(&format!("oldest    {age:.0} s waiting\n"));
        }
        out.push_str(&format!(
            "conflicts {} open, {} flagged{}\n",
            self.conflicts.open,
            self.conflicts.flagged,
            if self.conflicts.open > 0 {
                " (holdfast conflicts list)"
            } else {
                ""
            }
        ));
        if let Some(push) = &self.push {
            if let Some(why) = &push.paused {
                out.push_str(&format!("PAUSED    {why}\n"));
            }
            out.push_str(&format!(
                "draining  {:.1} entries/s{}\n",
                push.drain_rate_per_sec,
                push.eta_drain_secs
                    .map(|s| format!(", about {s:.0} s to go"))
                    .unwrap_or_default()
            ));
        }
        out.push_str(&format!(
            "pull      {}\npush      {}\n",
            self.last_pull_at.as_deref().unwrap_or("never"),
            self.last_push_at.as_deref().unwrap_or("never")
        ));
        out.push_str(&format!(
            "database  {} ({:.1} MB, schema {})\nmirror    {}\n",
            self.database.path,
            self.database.size_bytes as f64 / 1e6,
            self.database.schema_version,
            self.mirror
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        out
    }
}
