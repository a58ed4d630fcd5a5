//! Errors of the Odoo wire client, each classified by what the caller should do next.

use std::time::Duration;

/// What a failed call means for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Nothing was applied; try again later (with backoff).
    Transient,
    /// The call may or may not have been applied in Odoo: look before sending it again.
    Ambiguous,
    /// Credentials refused: stop calling until a person fixes them.
    Auth,
    /// Odoo refused this call; sending it again will give the same answer.
    Permanent,
}

/// A failed Odoo call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OdooError {
    /// The request never reached Odoo (refused connection, DNS, TLS handshake).
    #[error("cannot reach Odoo at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// No answer in time; the request may have been processed.
    #[error("no answer from Odoo within {0:?}; the call may or may not have been applied")]
    Timeout(Duration),
    /// The connection broke after the request was sent.
    #[error(
        "connection to Odoo lost before its answer ({0}); the call may or may not have been applied"
    )]
    Lost(String),
    /// Odoo (or a proxy in front of it) is overloaded or restarting.
    #[error("Odoo is busy (HTTP {status}){}", retry_after.map(|d| format!(", retry after {} s", d.as_secs())).unwrap_or_default())]
    Busy {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// Login or API key refused, or the key expired.
    #[error("Odoo refused the credentials: {0}")]
    Auth(String),
    /// Odoo raised an exception (the transaction was rolled back).
    #[error("{name}: {message}")]
    Server {
        /// The exception's class, e.g. `odoo.exceptions.UserError`.
        name: String,
        message: String,
        /// HTTP status on JSON-2 (JSON-RPC answers 200).
        status: Option<u16>,
    },
    /// An answer that is not what the protocol promises (HTML page, malformed or wrongly
    /// typed JSON, truncated body).
    #[error("unexpected answer from Odoo (HTTP {status}): {reason}")]
    Protocol { status: u16, reason: String },
    /// The answer is larger than the client accepts.
    #[error("answer from Odoo exceeds {limit} bytes")]
    TooLarge { limit: usize },
    /// The client is misconfigured (bad CA bundle, bad URL).
    #[error("Odoo client configuration: {0}")]
    Config(String),
    /// A major version Holdfast has not been verified with, refused unless allowed.
    #[error(
        "odoo {0} has not been verified with holdfast; set odoo.allow_unverified_version = true to try it"
    )]
    UnverifiedVersion(String),
    /// The server lacks a model or field Holdfast cannot work without.
    #[error(transparent)]
    Incompatible(#[from] super::models::ModelMapError),
}

/// Exception names that mean "try again": the database was busy, nothing was applied.
const TRANSIENT_NAMES: &[&str] = &[
    "psycopg2.errors.SerializationFailure",
    "psycopg2.errors.LockNotAvailable",
    "psycopg2.errors.DeadlockDetected",
    "psycopg2.OperationalError",
    "odoo.exceptions.ConcurrencyError",
];

impl OdooError {
    /// What the caller should do about this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            OdooError::Unreachable { .. } | OdooError::Busy { .. } => ErrorClass::Transient,
            OdooError::Timeout(_) | OdooError::Lost(_) | OdooError::Protocol { .. } => {
                ErrorClass::Ambiguous
            }
            OdooError::Auth(_) => ErrorClass::Auth,
            OdooError::Server { name, status, .. } => {
                if name == "odoo.exceptions.AccessDenied" || *status == Some(401) {
                    ErrorClass::Auth
                } else if TRANSIENT_NAMES.contains(&name.as_str()) || *status == Some(409) {
                    ErrorClass::Transient
                } else {
                    ErrorClass::Permanent
                }
            }
            OdooError::TooLarge { .. }
            | OdooError::Config(_)
            | OdooError::UnverifiedVersion(_)
            | OdooError::Incompatible(_) => ErrorClass::Permanent,
        }
    }

    /// How long Odoo asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            OdooError::Busy { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The short exception name (`UserError`), for Server errors.
    pub fn exception(&self) -> Option<&str> {
        match self {
            OdooError::Server { name, .. } => Some(name.rsplit('.').next().unwrap_or(name)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, status: Option<u16>) -> OdooError {
        OdooError::Server {
            name: name.into(),
            message: "m".into(),
            status,
        }
    }

    #[test]
    fn errors_are_classified_as_the_push_needs() {
        let cases = [
            (
                server("odoo.exceptions.UserError", None),
                ErrorClass::Permanent,
            ),
            (
                server("odoo.exceptions.ValidationError", Some(422)),
                ErrorClass::Permanent,
            ),
            (
                server("odoo.exceptions.MissingError", Some(404)),
                ErrorClass::Permanent,
            ),
            (
                server("odoo.exceptions.AccessError", Some(403)),
                ErrorClass::Permanent,
            ),
            (
                server("builtins.ValueError", Some(500)),
                ErrorClass::Permanent,
            ),
            (
                server("odoo.exceptions.AccessDenied", None),
                ErrorClass::Auth,
            ),
            (
                server("werkzeug.exceptions.Unauthorized", Some(401)),
                ErrorClass::Auth,
            ),
            (
                server("psycopg2.errors.SerializationFailure", None),
                ErrorClass::Transient,
            ),
            (
                server("odoo.exceptions.LockError", Some(409)),
                ErrorClass::Transient,
            ),
            (
                OdooError::Busy {
                    status: 429,
                    retry_after: Some(Duration::from_secs(3)),
                },
                ErrorClass::Transient,
            ),
            (
                OdooError::Timeout(Duration::from_secs(30)),
                ErrorClass::Ambiguous,
            ),
            (OdooError::Lost("reset".into()), ErrorClass::Ambiguous),
            (
                OdooError::Protocol {
                    status: 200,
                    reason: "html".into(),
                },
                ErrorClass::Ambiguous,
            ),
            (OdooError::Auth("bad key".into()), ErrorClass::Auth),
        ];
        for (error, class) in cases {
            assert_eq!(error.class(), class, "{error}");
        }
        assert_eq!(
            server("odoo.exceptions.UserError", None).exception(),
            Some("UserError")
        );
    }
}
