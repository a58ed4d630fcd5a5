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
//! scan (an over-long line, an undecodable payload), each refusal with its [`Refusal`] so the
//! appliance can count them by kind.
//!
//! Every scan names the [`Transport`] it arrived on. A device id belongs to exactly one
//! transport (the config refuses an id used twice), and the hub refuses a scan that names an
//! id on a transport that does not own it: an MQTT client publishing under a serial scanner's
//! or an HTTP handheld's id must not act in that device's session.

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

/// The kind of link a scan arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Serial,
    Tcp,
    Mqtt,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Serial => "serial",
            Transport::Tcp => "tcp",
            Transport::Mqtt => "mqtt",
        }
    }
}

/// Why input was refused before it became a scan: the counters' keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refusal {
    /// A frame longer than the framer keeps.
    TooLong,
    /// A partial frame whose next byte did not come within the inter-character time-out.
    StaleFrame,
    /// A payload that is no scan message (too big, not the JSON form).
    BadPayload,
    /// More scans waiting for a device than it may queue.
    Busy,
    /// A retained MQTT message: an old scan, never acted on.
    Retained,
    /// An MQTT topic whose device level is not a valid id.
    BadTopic,
    /// An MQTT device id that is neither listed nor matches the site's pattern.
    UnlistedDevice,
    /// A device id owned by another transport (an HTTP handheld, a serial scanner).
    ForeignDevice,
    /// More MQTT devices than one link serves.
    TooManyDevices,
    /// A TCP connection from an address not on the scanner's allow-list.
    AddressNotAllowed,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::TooLong => "too_long",
            Refusal::StaleFrame => "stale_frame",
            Refusal::BadPayload => "bad_payload",
            Refusal::Busy => "busy",
            Refusal::Retained => "retained",
            Refusal::BadTopic => "bad_topic",
            Refusal::UnlistedDevice => "unlisted_device",
            Refusal::ForeignDevice => "foreign_device",
            Refusal::TooManyDevices => "too_many_devices",
            Refusal::AddressNotAllowed => "address_not_allowed",
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
    /// Input refused before it became a scan (too long, not a valid payload), and why.
    Refused { reason: Refusal, error: String },
}

/// Where scans go. Cheap to clone (each device task holds one).
pub trait Hub: Clone + Send + Sync + 'static {
    /// Handles one scan from `device`, arrived on `transport`, and says how it went. `key` is
    /// an idempotency key when the transport carries one (an MQTT message id): the same key
    /// gets the same answer and is acted on once.
    fn scan(
        &self,
        device: &str,
        transport: Transport,
        data: Vec<u8>,
        key: Option<String>,
    ) -> impl Future<Output = Feedback> + Send;

    /// Records a link event for `device`.
    fn event(&self, device: &str, event: DeviceEvent);
}
