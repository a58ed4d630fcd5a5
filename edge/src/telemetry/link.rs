//! The telemetry's own MQTT connection: its own task, its own client, never shared with the
//! floor. It takes messages from the [`Outbox`] one publication at a time and lets the
//! next go only once the broker acknowledged the last (QoS 1; at QoS 0 once written), so a
//! message in hand when the link drops is sent again on the next connection (a consumer may
//! see it twice; `(boot, seq)` tells). Reconnects back off with jitter. A SAS login
//! reconnects with a fresh token before the old one expires (see [`super::profile`]).
//!
//! MQTT 3.1.1 and 5 are two clients in rumqttc; [`Conn`] puts one face on both.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::BackoffBuilder;
use rumqttc::QoS;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::profile::{Broker, Kind, Protocol, Wire, credentials, unix_now};

/// How long a connection attempt may take before it counts as failed.
const CONNECT_TIMEOUT_SECS: u64 = 10;
/// A link that stayed up this long starts its reconnect delays from the minimum again.
const STABLE: Duration = Duration::from_secs(30);
/// How long a goodbye (DISCONNECT) may take.
const GOODBYE: Duration = Duration::from_secs(1);

/// One message waiting: its kind and its JSON.
#[derive(Clone, Debug)]
pub struct Pending {
    pub kind: Kind,
    pub payload: Vec<u8>,
}

#[derive(Debug, Default)]
struct Queue {
    /// Only the newest status matters.
    status: Option<Pending>,
    events: VecDeque<Pending>,
    closed: bool,
}

/// What waits to be sent: the newest status and up to `events_cap` events. Putting never
/// waits: an event that finds the buffer full pushes the oldest out, and that is counted.
#[derive(Debug)]
pub struct Outbox {
    queue: Mutex<Queue>,
    events_cap: usize,
    dropped: AtomicU64,
    wake: Notify,
}

impl Outbox {
    pub fn new(events_cap: usize) -> Outbox {
        Outbox {
            queue: Mutex::default(),
            events_cap: events_cap.max(1),
            dropped: AtomicU64::new(0),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The status to send next, replacing one not yet sent.
    pub fn status(&self, payload: Vec<u8>) {
        self.lock().status = Some(Pending {
            kind: Kind::Status,
            payload,
        });
        self.wake.notify_one();
    }

    /// An event; the oldest waiting one is dropped (and counted) when the buffer is full.
    pub fn event(&self, payload: Vec<u8>) {
        let mut queue = self.lock();
        if queue.events.len() >= self.events_cap {
            queue.events.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
            crate::metrics::telemetry_dropped(1);
        }
        queue.events.push_back(Pending {
            kind: Kind::Event,
            payload,
        });
        drop(queue);
        self.wake.notify_one();
    }

    /// Nothing more will be put: the link sends what waits, says goodbye and ends.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    /// The status first (the freshest news), then events in order.
    fn take(&self) -> Option<Pending> {
        let mut queue = self.lock();
        queue.status.take().or_else(|| queue.events.pop_front())
    }

    fn closed_and_empty(&self) -> bool {
        let queue = self.lock();
        queue.closed && queue.status.is_none() && queue.events.is_empty()
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn buffered(&self) -> u64 {
        self.lock().events.len() as u64
    }
}

/// The link's state for the status and `/metrics`.
#[derive(Debug, Default)]
pub struct Health {
    pub connected: AtomicBool,
    pub reconnects: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

impl Health {
    fn failed(&self, error: String) {
        self.connected.store(false, Ordering::Relaxed);
        self.note(error);
    }

    fn note(&self, error: String) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// What the link saw on its connection.
enum Seen {
    Connected,
    /// The broker acknowledged a publication (QoS 1), or it was written (QoS 0).
    Done,
    /// The broker refused a publication (MQTT 5 reason code): it is not sent again.
    Refused(String),
    Other,
}

/// A connection on either protocol.
enum Conn {
    V4(rumqttc::AsyncClient, Box<rumqttc::EventLoop>),
    V5(rumqttc::v5::AsyncClient, Box<rumqttc::v5::EventLoop>),
}

fn qos(qos1: bool) -> QoS {
    if qos1 {
        QoS::AtLeastOnce
    } else {
        QoS::AtMostOnce
    }
}

impl Conn {
    fn open(broker: &Broker, will: &Wire, login: Option<(String, String)>) -> Result<Conn, String> {
        let transport = match &broker.tls {
            Some(tls) => {
                let config = holdfast_devices::mqtt::tls_config(tls).map_err(|e| e.to_string())?;
                Some(rumqttc::Transport::tls_with_config(
                    rumqttc::TlsConfiguration::Rustls(Arc::new(config)),
                ))
            }
            None => None,
        };
        let will_qos = qos(broker.qos1);
        Ok(match broker.protocol {
            Protocol::V311 => {
                let mut o = rumqttc::MqttOptions::new(&broker.client_id, &broker.host, broker.port);
                o.set_keep_alive(broker.keep_alive)
                    .set_clean_session(true)
                    .set_last_will(rumqttc::LastWill::new(
                        &will.topic,
                        will.payload.clone(),
                        will_qos,
                        will.retain,
                    ));
                if let Some((user, password)) = login {
                    o.set_credentials(user, password);
                }
                if let Some(t) = transport {
                    o.set_transport(t);
                }
                let (client, mut eventloop) = rumqttc::AsyncClient::new(o, 16);
                let mut net = eventloop.network_options();
                net.set_connection_timeout(CONNECT_TIMEOUT_SECS);
                net.set_tcp_nodelay(true);
                eventloop.set_network_options(net);
                Conn::V4(client, Box::new(eventloop))
            }
            Protocol::V5 => {
                use rumqttc::v5::mqttbytes::v5::{ConnectProperties, LastWillProperties};
                let mut o =
                    rumqttc::v5::MqttOptions::new(&broker.client_id, &broker.host, broker.port);
                let delay = u32::try_from(broker.will_delay.as_secs()).unwrap_or(u32::MAX);
                let mut props = ConnectProperties::new();
                // The will waits for the session's end or its delay, whichever comes first:
                // the session lasts as long as the delay.
                props.session_expiry_interval = (delay > 0).then_some(delay);
                o.set_keep_alive(broker.keep_alive)
                    .set_clean_start(true)
                    .set_connect_properties(props)
                    .set_last_will(rumqttc::v5::mqttbytes::v5::LastWill::new(
                        &will.topic,
                        will.payload.clone(),
                        v5_qos(will_qos),
                        will.retain,
                        Some(LastWillProperties {
                            delay_interval: (delay > 0).then_some(delay),
                            payload_format_indicator: Some(1),
                            message_expiry_interval: None,
                            content_type: Some("application/json".into()),
                            response_topic: None,
                            correlation_data: None,
                            user_properties: will.user.clone(),
                        }),
                    ));
                if let Some((user, password)) = login {
                    o.set_credentials(user, password);
                }
                if let Some(t) = transport {
                    o.set_transport(t);
                }
                o.set_connection_timeout(CONNECT_TIMEOUT_SECS);
                let mut net = o.network_options();
                net.set_tcp_nodelay(true);
                o.set_network_options(net);
                let (client, eventloop) = rumqttc::v5::AsyncClient::new(o, 16);
                Conn::V5(client, Box::new(eventloop))
            }
        })
    }

    async fn poll(&mut self, qos1: bool) -> Result<Seen, String> {
        match self {
            Conn::V4(_, eventloop) => {
                use rumqttc::{Event, Outgoing, Packet};
                Ok(match eventloop.poll().await.map_err(|e| e.to_string())? {
                    Event::Incoming(Packet::ConnAck(_)) => Seen::Connected,
                    Event::Incoming(Packet::PubAck(_)) if qos1 => Seen::Done,
                    Event::Outgoing(Outgoing::Publish(_)) if !qos1 => Seen::Done,
                    _ => Seen::Other,
                })
            }
            Conn::V5(_, eventloop) => {
                use rumqttc::Outgoing;
                use rumqttc::v5::Event;
                use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason};
                Ok(match eventloop.poll().await.map_err(|e| e.to_string())? {
                    Event::Incoming(Packet::ConnAck(_)) => Seen::Connected,
                    Event::Incoming(Packet::PubAck(ack)) if qos1 => match ack.reason {
                        PubAckReason::Success | PubAckReason::NoMatchingSubscribers => Seen::Done,
                        reason => Seen::Refused(format!(
                            "{reason:?}{}",
                            ack.properties
                                .and_then(|p| p.reason_string)
                                .map(|s| format!(": {s}"))
                                .unwrap_or_default()
                        )),
                    },
                    Event::Outgoing(Outgoing::Publish(_)) if !qos1 => Seen::Done,
                    _ => Seen::Other,
                })
            }
        }
    }

    fn publish(&self, wire: &Wire, qos1: bool) -> Result<(), String> {
        let qos = qos(qos1);
        match self {
            Conn::V4(client, _) => client
                .try_publish(&wire.topic, qos, wire.retain, wire.payload.clone())
                .map_err(|e| e.to_string()),
            Conn::V5(client, _) => {
                use rumqttc::v5::mqttbytes::v5::PublishProperties;
                let props = PublishProperties {
                    payload_format_indicator: Some(1),
                    message_expiry_interval: wire
                        .expiry
                        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX)),
                    content_type: Some("application/json".into()),
                    user_properties: wire.user.clone(),
                    ..PublishProperties::default()
                };
                client
                    .try_publish_with_properties(
                        wire.topic.clone(),
                        v5_qos(qos),
                        wire.retain,
                        wire.payload.clone(),
                        props,
                    )
                    .map_err(|e| e.to_string())
            }
        }
    }

    fn subscribe(&self, topic: &str) -> Result<(), String> {
        match self {
            Conn::V4(client, _) => client
                .try_subscribe(topic, QoS::AtMostOnce)
                .map_err(|e| e.to_string()),
            Conn::V5(client, _) => client
                .try_subscribe(topic, rumqttc::v5::mqttbytes::QoS::AtMostOnce)
                .map_err(|e| e.to_string()),
        }
    }

    /// A clean goodbye: the broker drops the last will.
    async fn goodbye(&mut self) {
        let asked = match self {
            Conn::V4(client, _) => client.try_disconnect().is_ok(),
            Conn::V5(client, _) => client.try_disconnect().is_ok(),
        };
        if !asked {
            return;
        }
        let _ = tokio::time::timeout(GOODBYE, async {
            loop {
                let gone = match self {
                    Conn::V4(_, eventloop) => matches!(
                        eventloop.poll().await,
                        Err(_) | Ok(rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect))
                    ),
                    Conn::V5(_, eventloop) => matches!(
                        eventloop.poll().await,
                        Err(_) | Ok(rumqttc::v5::Event::Outgoing(rumqttc::Outgoing::Disconnect))
                    ),
                };
                if gone {
                    return;
                }
            }
        })
        .await;
    }
}

fn v5_qos(qos: QoS) -> rumqttc::v5::mqttbytes::QoS {
    match qos {
        QoS::AtMostOnce => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        QoS::ExactlyOnce => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
    }
}

fn backoff(broker: &Broker) -> impl Iterator<Item = Duration> {
    backon::ExponentialBuilder::default()
        .with_min_delay(broker.retry_min)
        .with_max_delay(broker.retry_max)
        .with_jitter()
        .without_max_times()
        .build()
}

/// Sends what the outbox holds until it is closed and empty. `will` makes the last will's
/// payload for each new connection.
pub async fn run(
    broker: Broker,
    site: String,
    outbox: Arc<Outbox>,
    health: Arc<Health>,
    will: impl Fn() -> Vec<u8>,
) {
    let address = format!("{}:{}", broker.host, broker.port);
    let mut delays = backoff(&broker);
    // Publications of the message in hand, the one awaiting its acknowledgement first.
    let mut in_hand: VecDeque<Wire> = VecDeque::new();
    let mut rid: u64 = 0;
    let mut ever_connected = false;
    let mut down_logged = false;
    loop {
        if in_hand.is_empty() && outbox.closed_and_empty() {
            return;
        }
        let (login, serves) = credentials(&broker.login, unix_now());
        let will = broker.will(&site, will());
        let mut conn = match Conn::open(&broker, &will, login) {
            Ok(conn) => conn,
            Err(e) => {
                // A setting that cannot work (a CA file gone): say so, keep trying, since a
                // person may fix the file.
                tracing::error!(broker = %address, error = %e, "telemetry link cannot be set up");
                health.failed(e);
                tokio::time::sleep(delays.next().unwrap_or(broker.retry_max)).await;
                continue;
            }
        };
        let renew_at = serves.map(|d| Instant::now() + d);
        let mut connected_at: Option<Instant> = None;
        // Whether the first of `in_hand` was handed to the client (and awaits its ack).
        let mut sent = false;
        let reason = loop {
            if connected_at.is_some() && !sent {
                if in_hand.is_empty()
                    && let Some(next) = outbox.take()
                {
                    rid += 1;
                    in_hand.extend(broker.wires(&site, next.kind, next.payload, rid));
                }
                if let Some(wire) = in_hand.front() {
                    if let Err(e) = conn.publish(wire, broker.qos1) {
                        break format!("publishing: {e}");
                    }
                    sent = true;
                } else if outbox.closed_and_empty() {
                    conn.goodbye().await;
                    return;
                }
            }
            let renew = async {
                match renew_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                seen = conn.poll(broker.qos1) => match seen {
                    Ok(Seen::Connected) => {
                        connected_at = Some(Instant::now());
                        health.connected.store(true, Ordering::Relaxed);
                        if ever_connected {
                            health.reconnects.fetch_add(1, Ordering::Relaxed);
                            crate::metrics::telemetry_reconnected();
                        }
                        ever_connected = true;
                        down_logged = false;
                        tracing::info!(broker = %address, profile = broker.profile.name(), "telemetry link connected");
                        for topic in broker.subscriptions() {
                            if let Err(e) = conn.subscribe(&topic) {
                                tracing::warn!(%topic, error = %e, "telemetry subscribe failed");
                            }
                        }
                        // A publication handed to the last connection goes again.
                        sent = false;
                    }
                    Ok(Seen::Done) if sent => {
                        if let Some(wire) = in_hand.pop_front() {
                            crate::metrics::telemetry_sent(wire.kind.as_str(), wire.payload.len());
                        }
                        sent = false;
                    }
                    Ok(Seen::Refused(why)) if sent => {
                        // Sending it again would be refused again: drop it, say so.
                        if let Some(wire) = in_hand.pop_front() {
                            tracing::warn!(topic = %wire.topic, reason = %why, "the broker refused a telemetry message");
                            health.note(format!("refused on {}: {why}", wire.topic));
                        }
                        sent = false;
                    }
                    Ok(_) => {}
                    Err(e) => break e,
                },
                _ = outbox.wake.notified(), if connected_at.is_some() && !sent => {}
                _ = renew => {
                    tracing::info!(broker = %address, "telemetry link renews its SAS token");
                    conn.goodbye().await;
                    break String::new();
                }
            }
        };
        if reason.is_empty() {
            // A planned reconnect (token renewal): no delay, no failure.
            continue;
        }
        if connected_at.is_some_and(|t| t.elapsed() >= STABLE) {
            delays = backoff(&broker);
        }
        if !down_logged {
            down_logged = true;
            tracing::warn!(broker = %address, error = %reason, "telemetry link down; retrying");
        }
        health.failed(reason);
        tokio::time::sleep(delays.next().unwrap_or(broker.retry_max)).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_outbox_keeps_the_newest_status_and_counts_dropped_events() {
        let outbox = Outbox::new(2);
        outbox.status(b"s1".to_vec());
        outbox.status(b"s2".to_vec());
        for e in [b"e1", b"e2", b"e3"] {
            outbox.event(e.to_vec());
        }
        assert_eq!(outbox.dropped(), 1);
        assert_eq!(outbox.buffered(), 2);
        let taken: Vec<Vec<u8>> = std::iter::from_fn(|| outbox.take())
            .map(|p| p.payload)
            .collect();
        assert_eq!(taken, [b"s2".to_vec(), b"e2".to_vec(), b"e3".to_vec()]);
        assert!(!outbox.closed_and_empty());
        outbox.close();
        assert!(outbox.closed_and_empty());
    }
}
