//! `holdfast fleet`: central ops' view of every site, from the broker alone.
//!
//! It connects to the broker the sites publish to (the `generic` profile), subscribes to
//! `{prefix}/+/status` and `{prefix}/+/events`, and shows one row per site: state, mode and
//! since when, backlog, oldest pending, conflicts, last seen. A site is **dark** when its
//! retained status is its last will (the broker saw the connection die), **stopped** after a
//! clean stop, and **stale** when its last status is older than `--stale-after` of its own
//! intervals (a site that is cut off together with its broker link, or a broker that lost
//! the will). It keeps no state beyond what the broker retains: started anywhere, it shows
//! the same fleet.
//!
//! Messages on a status topic are taken in arrival order (MQTT keeps one publisher's order
//! on a topic, and the broker sends the will after the site's last message), except that a
//! message from an earlier boot of the site than the one shown is ignored. A payload that is
//! not a Holdfast message is counted and shown, never fatal.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde::Serialize;
use serde_json::Value;

/// Events kept for the watch view.
const RECENT_EVENTS: usize = 10;

/// `holdfast fleet`'s arguments.
#[derive(Debug, clap::Args)]
pub struct FleetArgs {
    /// The broker: HOST or HOST:PORT (1883, or 8883 with --tls).
    #[arg(long, env = "HOLDFAST_FLEET_BROKER")]
    broker: String,
    /// The sites' topic prefix (`telemetry.mqtt.topic_prefix`).
    #[arg(long, default_value = "holdfast")]
    topic_prefix: String,
    #[arg(long)]
    tls: bool,
    /// CA certificate (PEM) of the broker (with --tls).
    #[arg(long, default_value = "/etc/ssl/certs/ca-certificates.crt")]
    ca_file: PathBuf,
    /// Client certificate and key (PEM), for brokers that take certificates.
    #[arg(long, requires = "client_key_file")]
    client_cert_file: Option<PathBuf>,
    #[arg(long, requires = "client_cert_file")]
    client_key_file: Option<PathBuf>,
    #[arg(long, env = "HOLDFAST_FLEET_USERNAME")]
    username: Option<String>,
    /// File holding the password (never on the command line).
    #[arg(long, requires = "username")]
    password_file: Option<PathBuf>,
    /// A site is stale after this many of its status intervals without a status.
    #[arg(long, default_value_t = 3)]
    stale_after: u32,
    /// How long to gather retained statuses before printing (without --watch).
    #[arg(long, default_value_t = 2.0)]
    wait_secs: f64,
    /// JSON for scripts: one array of sites.
    #[arg(long)]
    json: bool,
    /// Keep running and redraw the table every second, with the latest events.
    #[arg(long)]
    watch: bool,
}

/// What the fleet view says of a site.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SiteState {
    Ok,
    Dark,
    Stopped,
    Stale,
}

impl SiteState {
    fn flagged(self) -> bool {
        self != SiteState::Ok
    }
}

/// One site, as the broker last told it.
#[derive(Clone, Debug, Default)]
struct Site {
    status: Option<Value>,
    last_event: Option<(String, String)>,
}

/// One row of the view.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Row {
    pub site: String,
    pub state: SiteState,
    pub mode: Option<String>,
    pub mode_since: Option<String>,
    pub open_entries: Option<i64>,
    pub oldest_pending_age_secs: Option<f64>,
    pub conflicts_open: Option<i64>,
    /// Time of the site's last status (RFC 3339).
    pub last_seen: Option<String>,
    /// Why the site is gone (dark, stopped), or its mode's reason.
    pub reason: Option<String>,
    pub last_event: Option<String>,
}

/// The fleet as the broker told it so far.
#[derive(Debug, Default)]
pub struct Fleet {
    sites: BTreeMap<String, Site>,
    events: VecDeque<String>,
    /// Messages that were not Holdfast's.
    pub bad: u64,
}

fn boot_of(v: &Value) -> Option<&str> {
    v.get("boot").and_then(Value::as_str)
}

impl Fleet {
    /// Takes one message from the broker.
    pub fn apply(&mut self, prefix: &str, topic: &str, payload: &[u8]) {
        let Some(rest) = topic.strip_prefix(prefix).and_then(|t| t.strip_prefix('/')) else {
            return;
        };
        let Some((site, leaf)) = rest.split_once('/') else {
            return;
        };
        if payload.is_empty() {
            // A retained status cleared by hand: the site is forgotten.
            if leaf == "status" {
                self.sites.remove(site);
            }
            return;
        }
        let message: Value = match serde_json::from_slice(payload) {
            Ok(v @ Value::Object(_)) if v.get("site").and_then(Value::as_str) == Some(site) => v,
            _ => {
                self.bad += 1;
                return;
            }
        };
        let entry = self.sites.entry(site.to_owned()).or_default();
        match (leaf, message.get("schema").and_then(Value::as_str)) {
            ("status", Some("holdfast.status")) => {
                let older_boot = entry
                    .status
                    .as_ref()
                    .and_then(boot_of)
                    .zip(boot_of(&message))
                    .is_some_and(|(shown, new)| new < shown);
                if !older_boot {
                    entry.status = Some(message);
                }
            }
            ("events", Some("holdfast.event")) => {
                let kind = message
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_owned();
                let time = message
                    .get("time")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_owned();
                let detail = message
                    .get("detail")
                    .filter(|d| d.as_object().is_some_and(|o| !o.is_empty()))
                    .map(|d| format!(" {d}"))
                    .unwrap_or_default();
                entry.last_event = Some((kind.clone(), time.clone()));
                self.note(format!("{time}  {site:<16} {kind}{detail}"));
            }
            _ => self.bad += 1,
        }
    }

    /// The rows at `now` (unix ms), by site id.
    pub fn rows(&self, now_ms: i64, stale_after: u32) -> Vec<Row> {
        self.sites
            .iter()
            .map(|(id, site)| {
                let s = site.status.as_ref();
                let field = |k: &str| s.and_then(|s| s.get(k));
                let text = |k: &str| field(k).and_then(Value::as_str).map(str::to_owned);
                let last_seen = text("time");
                let seen_ms = last_seen
                    .as_deref()
                    .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                    .map(|t| t.as_millisecond());
                let interval_ms = field("interval_secs")
                    .and_then(Value::as_i64)
                    .unwrap_or(60)
                    .clamp(1, 86_400)
                    * 1000;
                let state = match (field("online").and_then(Value::as_bool), text("cause")) {
                    (Some(false), Some(cause)) if cause == "stopped" => SiteState::Stopped,
                    (Some(false), _) => SiteState::Dark,
                    // Events but no status yet: nothing says it is well.
                    (None, _) => SiteState::Stale,
                    (Some(true), _)
                        if seen_ms.is_none_or(|seen| {
                            now_ms.saturating_sub(seen)
                                > interval_ms.saturating_mul(i64::from(stale_after))
                        }) =>
                    {
                        SiteState::Stale
                    }
                    (Some(true), _) => SiteState::Ok,
                };
                Row {
                    site: id.clone(),
                    state,
                    mode: text("mode"),
                    mode_since: text("mode_since"),
                    open_entries: field("open_entries").and_then(Value::as_i64),
                    oldest_pending_age_secs: field("oldest_pending_age_secs")
                        .and_then(Value::as_f64),
                    conflicts_open: field("conflicts")
                        .and_then(|c| c.get("open"))
                        .and_then(Value::as_i64),
                    last_seen,
                    reason: text("reason"),
                    last_event: site.last_event.as_ref().map(|(k, _)| k.clone()),
                }
            })
            .collect()
    }

    /// A line for the watch view's recent events.
    fn note(&mut self, line: String) {
        if self.events.len() == RECENT_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(line);
    }

    pub fn recent_events(&self) -> impl Iterator<Item = &String> {
        self.events.iter()
    }
}

/// `12 s`, `4 min`, `3 h`.
fn short(secs: f64) -> String {
    let secs = secs.max(0.0);
    if secs < 90.0 {
        format!("{secs:.0} s")
    } else if secs < 5400.0 {
        format!("{:.0} min", secs / 60.0)
    } else {
        format!("{:.0} h", secs / 3600.0)
    }
}

fn ago(now_ms: i64, iso: Option<&str>) -> String {
    iso.and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map_or_else(
            || "—".to_owned(),
            |t| {
                format!(
                    "{} ago",
                    short((now_ms - t.as_millisecond()) as f64 / 1000.0)
                )
            },
        )
}

/// The table, flagged sites marked with `!`.
pub fn table(rows: &[Row], now_ms: i64) -> String {
    let mut out = format!(
        "  {:<16} {:<8} {:<9} {:<12} {:>7} {:>9} {:>9}  {}\n",
        "SITE", "STATE", "MODE", "SINCE", "BACKLOG", "OLDEST", "CONFLICTS", "LAST SEEN"
    );
    for r in rows {
        let state = format!("{:?}", r.state).to_uppercase();
        out.push_str(&format!(
            "{} {:<16} {:<8} {:<9} {:<12} {:>7} {:>9} {:>9}  {}{}\n",
            if r.state.flagged() { "!" } else { " " },
            r.site,
            state,
            r.mode.as_deref().unwrap_or("—"),
            if r.mode_since.is_some() {
                ago(now_ms, r.mode_since.as_deref())
            } else {
                "—".to_owned()
            },
            r.open_entries.map_or("—".to_owned(), |n| n.to_string()),
            r.oldest_pending_age_secs.map_or("—".to_owned(), short),
            r.conflicts_open.map_or("—".to_owned(), |n| n.to_string()),
            ago(now_ms, r.last_seen.as_deref()),
            match (r.state, &r.reason) {
                (SiteState::Dark | SiteState::Stopped, Some(why)) => format!("  ({why})"),
                _ => String::new(),
            }
        ));
    }
    let flagged = rows.iter().filter(|r| r.state.flagged()).count();
    out.push_str(&format!("{} sites, {flagged} flagged\n", rows.len()));
    out
}

fn options(args: &FleetArgs) -> anyhow::Result<MqttOptions> {
    let (host, port) = match args.broker.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !h.ends_with(':') => (
            h.trim_start_matches('[').trim_end_matches(']').to_owned(),
            p.parse::<u16>()
                .with_context(|| format!("--broker {}: {p:?} is not a port", args.broker))?,
        ),
        _ => (args.broker.clone(), if args.tls { 8883 } else { 1883 }),
    };
    let mut o = MqttOptions::new(
        format!("holdfast-fleet-{}", uuid::Uuid::now_v7().simple()),
        host,
        port,
    );
    o.set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_max_packet_size(1 << 20, 1 << 16);
    if let Some(user) = &args.username {
        let password = match &args.password_file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --password-file {}", path.display()))?
                .trim_end()
                .to_owned(),
            None => std::env::var("HOLDFAST_FLEET_PASSWORD").unwrap_or_default(),
        };
        o.set_credentials(user, password);
    }
    if args.tls {
        let tls = holdfast_devices::mqtt::TlsSettings {
            ca_file: args.ca_file.clone(),
            client_cert: args
                .client_cert_file
                .clone()
                .zip(args.client_key_file.clone()),
        };
        let config = holdfast_devices::mqtt::tls_config(&tls)?;
        o.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(std::sync::Arc::new(config)),
        ));
    }
    Ok(o)
}

/// Runs `holdfast fleet`.
pub async fn run(args: FleetArgs) -> anyhow::Result<()> {
    let prefix = args.topic_prefix.trim_end_matches('/').to_owned();
    let (client, mut eventloop) = AsyncClient::new(options(&args)?, 64);
    let mut fleet = Fleet::default();
    let mut connected = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(args.wait_secs.max(0.1));
    let mut redraw = tokio::time::interval(Duration::from_secs(1));
    let now = || jiff::Timestamp::now().as_millisecond();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline), if !args.watch => break,
            _ = redraw.tick(), if args.watch => {
                let mut out = std::io::stdout().lock();
                // Home and clear, then the view: redrawn in place.
                let _ = write!(out, "\x1b[H\x1b[2J{}", view(&fleet, now(), &args));
                let _ = out.flush();
            }
            _ = tokio::signal::ctrl_c(), if args.watch => return Ok(()),
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    connected = true;
                    for leaf in ["status", "events"] {
                        client
                            .subscribe(format!("{prefix}/+/{leaf}"), QoS::AtLeastOnce)
                            .await
                            .context("subscribing")?;
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    fleet.apply(&prefix, &p.topic, &p.payload);
                }
                Ok(_) => {}
                Err(e) if !connected || !args.watch => {
                    anyhow::bail!("cannot reach the broker at {}: {e}", args.broker)
                }
                Err(e) => {
                    // Watching: say so in the view and try again.
                    connected = false;
                    fleet.note(format!("broker link lost: {e}; retrying"));
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    }
    let rows = fleet.rows(now(), args.stale_after);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", view(&fleet, now(), &args));
    }
    Ok(())
}

fn view(fleet: &Fleet, now_ms: i64, args: &FleetArgs) -> String {
    let mut out = table(&fleet.rows(now_ms, args.stale_after), now_ms);
    if fleet.bad > 0 {
        out.push_str(&format!(
            "{} messages under {}/ were not Holdfast telemetry\n",
            fleet.bad, args.topic_prefix
        ));
    }
    if args.watch {
        out.push_str("\nrecent events\n");
        for e in fleet.recent_events() {
            out.push_str(&format!("  {e}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn status(site: &str, boot: &str, seq: u64, time: &str, extra: Value) -> Vec<u8> {
        let mut v = json!({
            "schema": "holdfast.status", "schema_version": 1, "site": site, "boot": boot,
            "seq": seq, "time": time, "interval_secs": 60,
        });
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::to_vec(&v).unwrap()
    }

    fn online(mode: &str) -> Value {
        json!({"online": true, "mode": mode, "mode_since": "2026-12-06T06:00:00Z",
               "open_entries": 4, "oldest_pending_age_secs": 30.0, "conflicts": {"open": 1, "flagged": 0}})
    }

    const NOW: &str = "2026-12-06T06:10:00Z";

    fn now_ms() -> i64 {
        NOW.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn dark_stopped_stale_and_well_sites_are_told_apart() {
        let mut f = Fleet::default();
        let p = "holdfast";
        f.apply(
            p,
            "holdfast/a/status",
            &status("a", "b1", 5, "2026-12-06T06:09:30Z", online("online")),
        );
        f.apply(
            p,
            "holdfast/b/status",
            &status("b", "b1", 5, "2026-12-06T06:09:30Z", online("offline")),
        );
        f.apply(p, "holdfast/b/status", &status("b", "b1", 2, "2026-12-06T06:00:00Z",
            json!({"online": false, "cause": "last_will", "reason": "connection lost (last will)"})));
        f.apply(
            p,
            "holdfast/c/status",
            &status(
                "c",
                "b1",
                9,
                "2026-12-06T06:09:00Z",
                json!({"online": false, "cause": "stopped", "reason": "stopped"}),
            ),
        );
        // Last seen 4 intervals ago.
        f.apply(
            p,
            "holdfast/d/status",
            &status("d", "b1", 5, "2026-12-06T06:06:00Z", online("online")),
        );
        let rows = f.rows(now_ms(), 3);
        let states: Vec<_> = rows.iter().map(|r| (r.site.as_str(), r.state)).collect();
        assert_eq!(
            states,
            [
                ("a", SiteState::Ok),
                ("b", SiteState::Dark),
                ("c", SiteState::Stopped),
                ("d", SiteState::Stale)
            ]
        );
        assert_eq!(rows[0].open_entries, Some(4));
        assert_eq!(rows[0].conflicts_open, Some(1));
        let text = table(&rows, now_ms());
        assert!(text.contains("! b                DARK"), "{text}");
        assert!(text.contains("(connection lost (last will))"), "{text}");
        assert!(text.ends_with("4 sites, 3 flagged\n"), "{text}");
    }

    #[test]
    fn an_earlier_boot_never_hides_the_current_one_and_junk_is_counted() {
        let mut f = Fleet::default();
        let p = "holdfast";
        f.apply(
            p,
            "holdfast/a/status",
            &status("a", "0002", 1, "2026-12-06T06:09:30Z", online("online")),
        );
        // The previous run's will, delivered late.
        f.apply(
            p,
            "holdfast/a/status",
            &status(
                "a",
                "0001",
                7,
                "2026-12-06T05:00:00Z",
                json!({"online": false, "cause": "last_will", "reason": "x"}),
            ),
        );
        assert_eq!(f.rows(now_ms(), 3)[0].state, SiteState::Ok);
        for (topic, payload) in [
            ("holdfast/a/status", &b"not json"[..]),
            ("holdfast/a/status", br#"{"site":"other"}"#),
            ("holdfast/a/events", br#"[1,2]"#),
            (
                "holdfast/a/status",
                br#"{"site":"a","schema":"something.else"}"#,
            ),
        ] {
            f.apply(p, topic, payload);
        }
        assert_eq!(f.bad, 4);
        assert_eq!(f.rows(now_ms(), 3).len(), 1);
        // Outside the prefix: not ours, not counted.
        f.apply(p, "other/a/status", b"junk");
        assert_eq!(f.bad, 4);
    }

    #[test]
    fn events_show_as_the_site_s_last_and_in_the_recent_list() {
        let mut f = Fleet::default();
        let event = json!({"schema": "holdfast.event", "schema_version": 1, "site": "a", "boot": "b",
            "seq": 3, "time": "2026-12-06T06:09:00Z", "kind": "mode_changed",
            "detail": {"from": "online", "to": "offline", "reason": null}, "state": null});
        f.apply(
            "holdfast",
            "holdfast/a/events",
            &serde_json::to_vec(&event).unwrap(),
        );
        let rows = f.rows(now_ms(), 3);
        assert_eq!(rows[0].last_event.as_deref(), Some("mode_changed"));
        assert_eq!(rows[0].state, SiteState::Stale, "no status yet");
        let recent: Vec<_> = f.recent_events().collect();
        assert!(
            recent[0].contains("a                mode_changed {"),
            "{recent:?}"
        );
    }

    fn topic() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("holdfast/a/status".to_owned()),
            Just("holdfast/a/events".to_owned()),
            "[a-z/+#]{0,24}",
        ]
    }

    fn payload() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            Just(status("a", "b", 1, "2026-12-06T06:09:30Z", online("online"))),
            r#"\{"site":"a","schema":"holdfast.(status|event)","interval_secs":-?[0-9]{1,20},"online":(true|false),"time":"[0-9T:.Z-]{0,30}","kind":"[a-z]{0,5}"\}"#
                .prop_map(String::into_bytes),
        ]
    }

    proptest! {
        #[test]
        fn any_message_under_any_topic_is_taken_ignored_or_counted(
            messages in proptest::collection::vec((topic(), payload()), 0..12),
            now in any::<i64>(),
        ) {
            let mut f = Fleet::default();
            for (topic, payload) in &messages {
                f.apply("holdfast", topic, payload);
            }
            let rows = f.rows(now, 3);
            prop_assert!(rows.len() <= 1);
            let text = table(&rows, now);
            let summary = format!("{} sites, ", rows.len());
            prop_assert!(text.contains(&summary));
            prop_assert!(serde_json::to_string(&rows).is_ok());
        }
    }
}
