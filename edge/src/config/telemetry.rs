//! `[telemetry]`: what central ops reads from the appliance. For now who may scrape
//! `GET /metrics` from the LAN (it is always open on loopback, for a Prometheus agent or
//! node exporter on the box itself).
//!
//! ```toml
//! [telemetry]
//! metrics_token_file = "metrics.token"   # or metrics_token; 16+ characters
//! ```

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::Secret;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    /// Bearer token a Prometheus on the LAN presents for `/metrics`; none: loopback only.
    pub metrics_token: Option<SecretString>,
    pub metrics_token_file: Option<PathBuf>,
}

/// The checked `[telemetry]` section.
#[derive(Clone, Debug, Default)]
pub struct TelemetryConfig {
    /// `/metrics` from another host needs this bearer token; `None`: refused off loopback.
    pub metrics_token: Option<Secret>,
}

pub(super) fn validate(
    raw: &RawTelemetry,
    problem: &mut impl FnMut(&str, String),
) -> TelemetryConfig {
    let metrics_token = match (&raw.metrics_token, &raw.metrics_token_file) {
        (None, None) => None,
        (inline, file) => super::secret(
            "telemetry.metrics_token",
            inline.as_ref().map(ExposeSecret::expose_secret),
            file.as_deref(),
            problem,
        ),
    };
    if metrics_token
        .as_ref()
        .is_some_and(|t| t.expose().len() < 16)
    {
        problem(
            "telemetry.metrics_token",
            "too short; use at least 16 characters".into(),
        );
    }
    TelemetryConfig { metrics_token }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: RawTelemetry) -> (TelemetryConfig, Vec<String>) {
        let mut problems = Vec::new();
        let config = validate(&raw, &mut |key: &str, why: String| {
            problems.push(format!("{key}: {why}"))
        });
        (config, problems)
    }

    #[test]
    fn the_metrics_token_is_optional_long_and_given_once() {
        let (config, problems) = check(RawTelemetry::default());
        assert!(config.metrics_token.is_none() && problems.is_empty());
        let (config, problems) = check(RawTelemetry {
            metrics_token: Some("a-scrape-token-of-sixteen+".into()),
            metrics_token_file: None,
        });
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            config.metrics_token.map(|t| t.expose().to_owned()),
            Some("a-scrape-token-of-sixteen+".to_owned())
        );
        let (_, problems) = check(RawTelemetry {
            metrics_token: Some("short".into()),
            metrics_token_file: None,
        });
        assert_eq!(
            problems,
            ["telemetry.metrics_token: too short; use at least 16 characters"]
        );
        let (_, problems) = check(RawTelemetry {
            metrics_token: Some("a-scrape-token-of-sixteen+".into()),
            metrics_token_file: Some("metrics.token".into()),
        });
        assert_eq!(problems.len(), 1, "{problems:?}");
    }
}
