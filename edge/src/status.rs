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
