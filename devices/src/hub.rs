//! What every scanner transport hands to the appliance, and what it gets back.
//!
//! A transport (serial, TCP, MQTT) frames bytes into scans and calls [`Hub::scan`] once per
//! scan, in order, waiting for the [`Feedback`] before it reads the device's next scan: one
//! device is one operator session, and its scans must not overtake each other. What the hub
//! does with a scan (sign-in, workflow step) is the appliance's business; the transport only
//! turns the feedback into the device's language (beep bytes, a reply message).
//!
//! Transports also report what happens to the link ([`DeviceEvent`]) so the appliance can keep
//! its device registry: connected, disconnected (with why), input refused before it became a
//! scan (an over-long line, an undecodable payload).

use std::future::Future;

/// The appliance's answer to one scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Feedback {
    /// Accepted (good beep) or refused (bad beep).
    pub good: bool,
    /// A stable code (`ok`, or the refusal's code such as `wrong_location`).
    pub code: String,
    /// What a person should read: the next prompt, or why the scan was refused.
    pub message: String,
}

impl Feedback {
    pub fn good(message: impl Into<String>) -> Feedback {
        Feedback {
            good: true,
            code: "ok".into(),
            message: message.into(),
        }
    }

    pub fn bad(code: impl Into<String>, message: impl Into<String>) -> Feedback {
        Feedback {
            good: false,
            code: code.into(),
            message: message.into(),
        }
    }
}

/// Something that happened to a device's link, for the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceEvent {
    /// The link is up (a port opened, a connection made or accepted, a broker subscribed).
    Connected { address: String },
    /// The link went down; `error` says why when it was not an orderly close.
    Disconnected { error: Option<String> },
    /// Input refused before it became a scan (too long, not a valid payload).
    Refused { error: String },
}

/// Where scans go. Cheap to clone (each device task holds one).
pub trait Hub: Clone + Send + Sync + 'static {
    /// Handles one scan from `device` and says how it went. `key` is an idempotency key when
    /// the transport carries one (an MQTT message id): the same key gets the same answer and
    /// is acted on once.
    fn scan(
        &self,
        device: &str,
        data: Vec<u8>,
        key: Option<String>,
    ) -> impl Future<Output = Feedback> + Send;

    /// Records a link event for `device`.
    fn event(&self, device: &str, event: DeviceEvent);
}
