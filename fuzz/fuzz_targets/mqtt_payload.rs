//! Any MQTT scan payload (raw or JSON) and any topic: parsed or refused, never a panic; a
//! reply can always be made.
#![no_main]

use holdfast_devices::hub::Feedback;
use holdfast_devices::mqtt::{TopicPattern, parse_payload, reply_payload};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (topic, payload) = data.split_at(
        data.len()
            .min(usize::from(data.first().copied().unwrap_or(0)) % 64),
    );
    if let Ok(pattern) = TopicPattern::parse("holdfast/site/scanner/{device}/scan") {
        let _ = pattern.device(&String::from_utf8_lossy(topic));
    }
    match parse_payload(payload) {
        Ok(message) => {
            let _ = reply_payload(message.id.as_deref(), &message.data, &Feedback::good("ok"));
        }
        Err(e) => {
            let _ = reply_payload(None, b"", &Feedback::bad("bad_payload", e));
        }
    }
});
