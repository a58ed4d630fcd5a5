//! Any message on the telemetry broker, under any topic, as `holdfast fleet` reads it: taken,
//! ignored or counted as junk, never a panic; the table and the JSON rows are always made.
#![no_main]

use holdfast::fleet::{Fleet, table};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut fleet = Fleet::default();
    // Several messages: a length byte, the topic, then the payload up to the next message.
    let mut rest = data;
    while let Some((&n, tail)) = rest.split_first() {
        let (topic, tail) = tail.split_at(tail.len().min(usize::from(n % 48)));
        let m = tail.len().min(usize::from(tail.first().copied().unwrap_or(0)) * 4);
        let (payload, tail) = tail.split_at(m);
        fleet.apply("holdfast", &String::from_utf8_lossy(topic), payload);
        rest = tail;
        if m == 0 {
            break;
        }
    }
    for now in [0, 1_767_225_600_000, i64::MAX / 2] {
        let rows = fleet.rows(now, 3);
        let _ = table(&rows, now);
        let _ = serde_json::to_string(&rows);
    }
});
