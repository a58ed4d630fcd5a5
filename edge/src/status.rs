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
    /// Where these figures come from: `appliance` (the running appliance, asked over HTTP)
    /// or `database` (read from the file while the appliance is not running).
    pub source: &'static str,
    /// Said to the reader when the figures are only the database's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// `unknown`, `online`, `degraded` or `offline`.
    pub mode: String,
    pub mode_since: String,
    /// Why the mode is not online, e.g. `mirror stale: last pull 14 min ago: …` (absent
    /// when online, and when read from the database).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode_reason: Option<String>,
    pub cloud: CloudStatus,
    /// Journal entries by state.
    pub queue: BTreeMap<String, i64>,
    /// Age of the oldest entry not yet settled with the cloud, in seconds.
    pub oldest_pending_age_secs: Option<f64>,
    pub last_pull_at: Option<String>,
    pub last_push_at: Option<String>,
    /// When the mirror was last refreshed by a whole pull...
    pub mirror_as_of: Option<String>,
    /// ...and how old that makes it, in seconds.
    pub mirror_age_secs: Option<f64>,
    /// The last pull failure, while pulls fail (known only to the running appliance).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_error: Option<PullError>,
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
    /// Features off because the connected Odoo lacks an optional model or field (from the
    /// pull's connection); empty when all is there or nothing is connected.
    pub degraded_features: Vec<String>,
    /// Failed sign-ins and lock-outs since the start, when running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sign_in: Option<crate::floor::LockoutStatus>,
    /// The HTTPS certificate served, when running with `http.tls` on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsStatus>,
    /// The MQTT telemetry link's health, when `[telemetry.mqtt]` is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<crate::telemetry::message::LinkHealth>,
}

/// The HTTPS certificate in use: what a handheld is pinned to.
#[derive(Clone, Debug, Serialize)]
pub struct TlsStatus {
    /// `self-signed` or `files`.
    pub mode: &'static str,
    /// SHA-256 of the certificate, `AB:CD:…` as `openssl x509 -fingerprint -sha256` prints it.
    pub fingerprint_sha256: String,
    /// RFC 3339.
    pub not_after: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct PullError {
    pub message: String,
    pub at: Option<String>,
    /// Pulls failed since the last one that succeeded.
    pub failures_in_row: u32,
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
    /// Batches in hand allowed now, with the latency they are judged on; absent before the
    /// first call.
    pub limit: Option<crate::push::LimitStatus>,
    /// Times a ready batch waited for a batch in flight on the same products.
    pub waited_on_claims: u64,
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

/// When the mirror was last refreshed as a whole: every model is as fresh as its last
/// completed pull, and the mirror as its stalest model (models never pulled do not count).
pub fn mirror_as_of(reader: &Reader<'_>) -> Result<Option<i64>, StoreError> {
    let mut oldest: Option<i64> = None;
    for &model in holdfast_sync::records::Model::ALL {
        let cursor = reader.cursor(model)?;
        if let Some(at) = cursor.full_at.max(cursor.incremental_at) {
            oldest = Some(oldest.map_or(at, |o| o.min(at)));
        }
    }
    Ok(oldest)
}

/// What the appliance says when `holdfast status` cannot ask it.
pub const NOT_RUNNING: &str = "appliance not running; figures from the database";

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
        let mirror_as_of = mirror_as_of(reader)?;
        Ok(Status {
            version: env!("CARGO_PKG_VERSION"),
            site,
            source: "database",
            note: None,
            mode: state.mode,
            mode_since: rfc3339(state.mode_since),
            mode_reason: None,
            cloud,
            queue: queue.by_state,
            oldest_pending_age_secs: queue
                .oldest_open_created_at
                .map(|t| (now - t).max(0) as f64 / 1000.0),
            last_pull_at: state.last_pull_at.map(rfc3339),
            last_push_at: state.last_push_at.map(rfc3339),
            mirror_as_of: mirror_as_of.map(rfc3339),
            mirror_age_secs: mirror_as_of.map(|t| age_secs(now, t)),
            pull_error: None,
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
            degraded_features: Vec::new(),
            sign_in: None,
            tls: None,
            telemetry: None,
        })
    }

    /// Adds what only the running appliance knows: the mode as its tracker holds it now
    /// (with the reason), and the pull's last error and last success.
    pub fn with_live(
        &mut self,
        mode: &crate::connectivity::ModeNow,
        pull: Option<&crate::pull::PullProgress>,
    ) {
        let now = now_ms();
        self.source = "appliance";
        self.note = None;
        self.mode = mode.mode.as_str().to_owned();
        self.mode_since = rfc3339(mode.since_ms);
        self.mode_reason = match &self.cloud.target {
            Some(_) => mode.reason.clone(),
            None => Some("no odoo configured; nothing is reconciled".to_owned()),
        };
        let Some(pull) = pull else { return };
        if let Some(at) = pull.last_ok_at {
            self.mirror_as_of = Some(rfc3339(at));
            self.mirror_age_secs = Some(age_secs(now, at));
        }
        self.pull_error = pull.last_error.as_ref().map(|message| PullError {
            message: message.clone(),
            at: pull.last_error_at.map(rfc3339),
            failures_in_row: pull.failures_in_row,
        });
    }

    /// One line for systemd's `STATUS=` (what `systemctl status holdfast` shows): the mode
    /// and the backlog, e.g. `online · queue 0 · oldest pending —`, then a paused push and
    /// open conflicts when there are any. Whole seconds and minutes only, so the line
    /// changes (and is sent again) at most about once a second while entries wait.
    pub fn status_line(&self) -> String {
        let open: i64 = ["pending", "in_flight"]
            .iter()
            .map(|s| self.queue.get(*s).copied().unwrap_or(0))
            .sum();
        let oldest = match self.oldest_pending_age_secs {
            None => "—".to_owned(),
            Some(secs) if secs < 120.0 => format!("{secs:.0} s"),
            Some(secs) if secs < 7200.0 => format!("{:.0} min", (secs / 60.0).floor()),
            Some(secs) => format!("{:.0} h", (secs / 3600.0).floor()),
        };
        let mut line = format!("{} · queue {open} · oldest pending {oldest}", self.mode);
        if self.push.as_ref().is_some_and(|p| p.paused.is_some()) {
            line.push_str(" · push paused (credentials refused)");
        }
        if self.conflicts.open > 0 {
            line.push_str(&format!(" · {} conflicts open", self.conflicts.open));
        }
        line
    }

    /// A few lines for a terminal.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let open: i64 = ["pending", "in_flight", "conflict", "rejected"]
            .iter()
            .map(|s| self.queue.get(*s).copied().unwrap_or(0))
            .sum();
        if let Some(note) = &self.note {
            out.push_str(&format!("note      {note}\n"));
        }
        out.push_str(&format!(
            "site      {} ({})\nmode      {} since {}{}\n",
            self.site.name,
            self.site.id,
            self.mode,
            self.mode_since,
            if self.source == "database" {
                " (as last recorded)"
            } else {
                ""
            },
        ));
        if let Some(why) = &self.mode_reason {
            out.push_str(&format!("why       {why}\n"));
        }
        out.push_str(&format!(
            "cloud     {}\n",
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
        if let Some(s) = &self.sign_in
            && (s.failures > 0 || s.site_locked_for_secs.is_some())
        {
            out.push_str(&format!(
                "sign-in   {} failed, {} device lock-outs, {} site lock-outs{}{}\n",
                s.failures,
                s.device_lockouts,
                s.site_lockouts,
                if s.locked_devices.is_empty() {
                    String::new()
                } else {
                    format!("; locked now: {}", s.locked_devices.join(", "))
                },
                s.site_locked_for_secs
                    .map(|secs| format!("; SITE LOCKED for {secs} s"))
                    .unwrap_or_default()
            ));
        }
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
            if let Some(l) = &push.limit {
                let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0} ms"));
                out.push_str(&format!(
                    "in hand   {} of {} batches ({}), calls {} against {} quiet\n",
                    l.limit,
                    l.max,
                    if l.adaptive { "adaptive" } else { "fixed" },
                    ms(l.recent_ms),
                    ms(l.baseline_ms),
                ));
            }
        }
        for feature in &self.degraded_features {
            out.push_str(&format!("degraded  {feature}\n"));
        }
        if let Some(t) = &self.telemetry {
            out.push_str(&format!(
                "telemetry {}{}{}\n",
                if t.connected {
                    "connected"
                } else {
                    "NOT CONNECTED"
                },
                if t.buffered_events + t.dropped_events > 0 {
                    format!(
                        ", {} events waiting, {} dropped",
                        t.buffered_events, t.dropped_events
                    )
                } else {
                    String::new()
                },
                match (&t.last_error, t.connected) {
                    (Some(e), false) => format!(": {e}"),
                    _ => String::new(),
                }
            ));
        }
        if let Some(tls) = &self.tls {
            out.push_str(&format!(
                "https     {}, until {}, sha256 {}\n",
                tls.mode, tls.not_after, tls.fingerprint_sha256
            ));
        }
        out.push_str(&format!(
            "pull      {}\n",
            match (&self.mirror_as_of, self.mirror_age_secs) {
                (Some(at), Some(age)) => format!(
                    "last complete {at} ({} ago)",
                    crate::connectivity::ago(std::time::Duration::from_secs_f64(age))
                ),
                _ => "no complete pull yet".to_owned(),
            }
        ));
        if let Some(e) = &self.pull_error {
            out.push_str(&format!(
                "PULL FAIL {} failure{} in a row, last at {}: {}\n",
                e.failures_in_row,
                if e.failures_in_row == 1 { "" } else { "s" },
                e.at.as_deref().unwrap_or("?"),
                e.message
            ));
        }
        out.push_str(&format!(
            "push      {}\n",
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

/// Seconds from `then` to `now` (unix ms), never negative.
fn age_secs(now: i64, then: i64) -> f64 {
    (now - then).max(0) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::connectivity::{Mode, ModeNow, PullHealth, PullWatch};
    use crate::store::{Store, StoreOptions};

    fn collect(store: &Store, target: Option<&str>) -> Status {
        store
            .read(|r| {
                Status::collect(
                    r,
                    SiteStatus {
                        id: "s1".into(),
                        name: "Site one".into(),
                    },
                    CloudStatus {
                        target: target.map(str::to_owned),
                    },
                    "/var/lib/holdfast/holdfast.db",
                )
            })
            .unwrap()
    }

    #[test]
    fn the_systemd_status_line_says_mode_and_backlog() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreOptions::new(dir.path().join("h.db"), "s1")).unwrap();
        let mut status = collect(&store, None);
        status.mode = "online".into();
        assert_eq!(status.status_line(), "online · queue 0 · oldest pending —");
        status.mode = "offline".into();
        status.queue.insert("pending".into(), 3);
        status.queue.insert("in_flight".into(), 1);
        status.queue.insert("applied".into(), 50);
        for (age, shown) in [(42.4, "42 s"), (600.0, "10 min"), (9000.0, "2 h")] {
            status.oldest_pending_age_secs = Some(age);
            assert_eq!(
                status.status_line(),
                format!("offline · queue 4 · oldest pending {shown}")
            );
        }
        status.conflicts.open = 2;
        status.push = Some(PushStatus {
            paused: Some("access denied".into()),
            calls: 0,
            applied: 0,
            drain_rate_per_sec: 0.0,
            eta_drain_secs: None,
            limit: None,
            waited_on_claims: 0,
        });
        assert_eq!(
            status.status_line(),
            "offline · queue 4 · oldest pending 2 h · push paused (credentials refused) · 2 conflicts open"
        );
    }

    #[test]
    fn a_failing_pull_is_what_a_site_manager_reads_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreOptions::new(dir.path().join("h.db"), "s1")).unwrap();
        let now = now_ms();
        let progress = crate::pull::ProgressHandle::default();
        {
            let mut p = progress.lock().unwrap();
            p.last_ok_at = Some(now - 14 * 60_000);
            p.last_error = Some("reading product.packaging: the model does not exist".into());
            p.last_error_at = Some(now - 30_000);
            p.failures_in_row = 13;
        }
        // What the probe task feeds the tracker.
        let health = PullWatch {
            progress: progress.clone(),
            store: store.clone(),
        }
        .health();
        assert_eq!(
            health,
            PullHealth {
                mirror_as_of: Some(now - 14 * 60_000),
                failures_in_row: 13,
                last_error: Some("reading product.packaging: the model does not exist".into()),
            }
        );
        let mut tracker = crate::connectivity::Tracker::new(Mode::Online, now - 3_600_000);
        tracker.observe(crate::connectivity::Event::Pull(health), now);
        let mode = ModeNow {
            mode: tracker.mode(),
            since_ms: tracker.since_ms(),
            reason: tracker.reason(now),
        };
        let mut status = collect(&store, Some("https://odoo.example"));
        status.with_live(&mode, Some(&progress.lock().unwrap()));
        let text = status.to_text();
        for line in [
            "mode      degraded since ",
            "why       mirror stale: last pull 14 min ago: reading product.packaging: the model does not exist\n",
            "pull      last complete ",
            "(14 min ago)\n",
            "PULL FAIL 13 failures in a row, last at ",
        ] {
            assert!(text.contains(line), "{line:?} not in:\n{text}");
        }
        assert!(
            !text.contains("note "),
            "live figures carry no note:\n{text}"
        );
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["source"], "appliance");
        assert_eq!(json["pull_error"]["failures_in_row"], 13);
        assert!((json["mirror_age_secs"].as_f64().unwrap() - 840.0).abs() < 5.0);
        assert!(
            json["mode_reason"]
                .as_str()
                .unwrap()
                .starts_with("mirror stale: last pull 14 min ago: reading product.packaging")
        );
    }

    #[test]
    fn the_push_s_concurrency_limit_shows_with_its_latency() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreOptions::new(dir.path().join("h.db"), "s1")).unwrap();
        let mut status = collect(&store, Some("https://odoo.example"));
        status.push = Some(PushStatus {
            paused: None,
            calls: 120,
            applied: 40,
            drain_rate_per_sec: 2.0,
            eta_drain_secs: Some(30.0),
            limit: Some(crate::push::LimitStatus {
                adaptive: true,
                limit: 2,
                max: 4,
                baseline_ms: Some(61.4),
                recent_ms: Some(88.0),
                latency_ratio: Some(1.4),
                decreases: 3,
                symptoms: 1,
            }),
            waited_on_claims: 5,
        });
        let text = status.to_text();
        assert!(
            text.contains("in hand   2 of 4 batches (adaptive), calls 88 ms against 61 ms quiet\n"),
            "{text}"
        );
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["push"]["limit"]["limit"], 2);
        assert_eq!(json["push"]["limit"]["baseline_ms"], 61.4);
        assert_eq!(json["push"]["limit"]["recent_ms"], 88.0);
        assert_eq!(json["push"]["waited_on_claims"], 5);
    }

    #[test]
    fn read_from_the_database_it_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreOptions::new(dir.path().join("h.db"), "s1")).unwrap();
        let mut status = collect(&store, None);
        status.note = Some(NOT_RUNNING.into());
        let text = status.to_text();
        assert!(
            text.starts_with("note      appliance not running; figures from the database\n"),
            "{text}"
        );
        assert!(text.contains("(as last recorded)"), "{text}");
        assert!(text.contains("pull      no complete pull yet"), "{text}");
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["source"], "database");
        assert!(json.get("pull_error").is_none());
    }
}
