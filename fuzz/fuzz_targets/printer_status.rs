//! Any bytes a printer (or something pretending to be one) answers to `~HS`: read or refused,
//! never a panic; what was read re-encodes to an answer that reads the same (after the
//! encoder's clamping of out-of-range counters).
#![no_main]

use holdfast_devices::printer::HostStatus;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(status) = HostStatus::parse(data) {
        let _ = status.faults();
        let once = HostStatus::parse(&status.encode()).expect("an encoded status parses");
        assert_eq!(once.faults(), status.faults());
        assert_eq!(HostStatus::parse(&once.encode()), Ok(once));
    }
});
