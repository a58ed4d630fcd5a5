//! Any bytes a scanner, a TCP peer or an MQTT client can send: checked, then decoded as
//! AIM + GS1 with and without a substitute separator. Nothing may panic.
#![no_main]

use holdfast_devices::gs1::{DecodeOptions, decode};
use holdfast_devices::scan::RawScan;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(scan) = RawScan::parse(data) {
        let _ = decode(scan.as_str(), &DecodeOptions::default());
        let _ = decode(
            scan.as_str(),
            &DecodeOptions {
                separator: Some('|'),
            },
        );
    }
});
