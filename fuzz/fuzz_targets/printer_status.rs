//! Any bytes a printer (or something pretending to be one) answers to `~HS`: read or refused,
//! never a panic.
#![no_main]

use holdfast_devices::printer::HostStatus;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(status) = HostStatus::parse(data) {
        let _ = status.faults();
        assert_eq!(HostStatus::parse(&status.encode()), Ok(status));
    }
});
