//! The degraded-mode runbook the console shows: what keeps working at this site while the
//! cloud is away and what waits for it, derived from the running configuration (not from a
//! document that can drift from it), plus the site's own procedure text.
//!
//! The site's text is Markdown in a file named by `site.runbook_file`, read at each view (an
//! edit shows without a restart), at most [`MAX_PROCEDURE_BYTES`]. It is rendered with
//! pulldown-cmark; raw HTML in it is shown as text, and links other than http(s), mailto and
//! relative ones are dropped, so a procedure file cannot script the console.

use std::path::PathBuf;

use holdfast_sync::push::ConflictKind;
use serde::Serialize;

use crate::config::Config;
use crate::config::ScannerLink;

/// The largest procedure file shown.
pub const MAX_PROCEDURE_BYTES: u64 = 256 * 1024;

/// What this site's configuration makes of an outage.
#[derive(Clone, Debug, Serialize)]
pub struct Runbook {
    /// An Odoo is configured (otherwise the site runs on its local copy only).
    pub odoo: bool,
    /// The mirror counts as stale (degraded) after this many seconds without a pull.
    pub stale_after_secs: u64,
    /// HTTP handhelds configured (`[[devices]]`).
    pub handhelds: usize,
    pub serial_scanners: usize,
    pub tcp_scanners: usize,
    /// Scanners on the site's MQTT broker (the broker is on the LAN, not in the cloud).
    pub mqtt: bool,
    pub printers: usize,
    /// `refuse`, `warn` or `allow`.
    pub over_pick: &'static str,
    /// Each conflict kind with its policy (`manual`, `edge_wins`, `cloud_wins`).
    pub policies: Vec<(&'static str, &'static str)>,
    /// The store's size cap, in bytes.
    pub store_cap_bytes: Option<u64>,
    /// The site's own procedure (Markdown), if configured.
    #[serde(skip)]
    pub procedure_file: Option<PathBuf>,
}

impl Default for Runbook {
    /// A site with nothing configured beyond the defaults.
    fn default() -> Runbook {
        Runbook {
            odoo: false,
            stale_after_secs: 0,
            handhelds: 0,
            serial_scanners: 0,
            tcp_scanners: 0,
            mqtt: false,
            printers: 0,
            over_pick: "refuse",
            policies: policy_list(&crate::push::Policies::default()),
            store_cap_bytes: None,
            procedure_file: None,
        }
    }
}

impl Runbook {
    pub fn from_config(config: &Config) -> Runbook {
        let count = |serial: bool| {
            config
                .lan
                .scanners
                .iter()
                .filter(|s| matches!(s.link, ScannerLink::Serial(_)) == serial)
                .count()
        };
        Runbook {
            odoo: config.odoo.is_some(),
            stale_after_secs: config.sync.stale_after.as_secs(),
            handhelds: config.devices.len(),
            serial_scanners: count(true),
            tcp_scanners: count(false),
            mqtt: config.lan.mqtt.is_some(),
            printers: config.lan.printers.len(),
            over_pick: match config.floor.policy.over_pick {
                crate::workflow::OverPick::Refuse => "refuse",
                crate::workflow::OverPick::Warn => "warn",
                crate::workflow::OverPick::Allow => "allow",
            },
            policies: policy_list(&config.push.policies),
            store_cap_bytes: config.store.max_size_bytes,
            procedure_file: config.site.runbook_file.clone(),
        }
    }

    /// The site's procedure as safe HTML: `Ok(None)` when none is configured, `Err` with the
    /// reason when the file cannot be shown (the page says so instead).
    pub fn procedure_html(&self) -> Result<Option<String>, String> {
        let Some(path) = &self.procedure_file else {
            return Ok(None);
        };
        let shown = path.display();
        let size = std::fs::metadata(path)
            .map_err(|e| format!("{shown}: {e}"))?
            .len();
        if size > MAX_PROCEDURE_BYTES {
            return Err(format!(
                "{shown}: {size} bytes; the console shows at most {MAX_PROCEDURE_BYTES}"
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
        Ok(Some(markdown_html(&text)))
    }
}

/// Each conflict kind with the policy `policies` gives it.
fn policy_list(policies: &crate::push::Policies) -> Vec<(&'static str, &'static str)> {
    ConflictKind::ALL
        .iter()
        .map(|k| (k.as_str(), policies.get(*k).as_str()))
        .collect()
}

/// Markdown to HTML with raw HTML escaped and only harmless link targets kept.
pub fn markdown_html(text: &str) -> String {
    use pulldown_cmark::{Event, Options, Parser, Tag};
    fn safe_url(url: &str) -> bool {
        let lower = url.trim().to_ascii_lowercase();
        match lower.split_once(':') {
            // A colon before any slash, '?' or '#' names a scheme.
            Some((scheme, _)) if !scheme.contains(['/', '?', '#']) => {
                matches!(scheme, "http" | "https" | "mailto")
            }
            _ => true,
        }
    }
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let events = Parser::new_ext(text, options).map(|event| match event {
        // Raw HTML is shown, not interpreted.
        Event::Html(html) | Event::InlineHtml(html) => Event::Text(html),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) if !safe_url(&dest_url) => Event::Start(Tag::Link {
            link_type,
            dest_url: "#".into(),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) if !safe_url(&dest_url) => Event::Start(Tag::Image {
            link_type,
            dest_url: "#".into(),
            title,
            id,
        }),
        other => other,
    });
    let mut html = String::with_capacity(text.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn markdown_renders_and_raw_html_is_escaped() {
        let html = markdown_html(
            "# Outage\n\n1. Call **Ops** on 555\n2. <script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n",
        );
        assert!(html.contains("<h1>Outage</h1>"), "{html}");
        assert!(html.contains("<strong>Ops</strong>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
    }

    #[test]
    fn script_links_are_dropped_and_plain_ones_kept() {
        let html = markdown_html(
            "[a](javascript:alert(1)) [b](JavaScript:x) [c](data:text/html,x) [d](https://ops.example/runbook) [e](/console/) [f](mailto:ops@example.com)",
        );
        assert!(!html.to_ascii_lowercase().contains("javascript:"), "{html}");
        assert!(!html.contains("data:"), "{html}");
        assert!(
            html.contains("href=\"https://ops.example/runbook\""),
            "{html}"
        );
        assert!(html.contains("href=\"/console/\""), "{html}");
        assert!(html.contains("href=\"mailto:ops@example.com\""), "{html}");
    }

    proptest! {
        /// Whatever the file holds, no element that runs script or loads a page comes out.
        #[test]
        fn no_markup_of_the_file_survives(text in ".{0,400}", tag in "(script|iframe|img|svg|object|style)") {
            let input = format!("{text}<{tag} onload=x>{text}</{tag}>");
            let html = markdown_html(&input).to_ascii_lowercase();
            let opened = format!("<{tag}");
            prop_assert!(!html.contains(&opened), "{}", html);
            prop_assert!(!html.contains("href=\"javascript"), "{}", html);
        }
    }
}
