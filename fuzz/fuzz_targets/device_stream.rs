//! Any byte stream a serial or TCP scanner can send, cut into chunks anywhere, under any
//! terminator: framing never panics, never holds more than its limit, and frames the same
//! whatever the chunking; each frame then goes through the scan checks and GS1 decoding.
#![no_main]

use holdfast_devices::frame::{Frame, FrameConfig, Framer, Terminator};
use holdfast_devices::gs1::{DecodeOptions, decode};
use holdfast_devices::scan::RawScan;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let terminator = match mode % 5 {
        0 => Terminator::Cr,
        1 => Terminator::Lf,
        2 => Terminator::CrLf,
        3 => Terminator::Tab,
        _ => Terminator::Byte(mode),
    };
    let config = FrameConfig {
        terminator,
        max_len: 64,
        strip_prefix: b"]C1".to_vec(),
        strip_suffix: b"#".to_vec(),
    };
    let mut whole = Framer::new(config.clone());
    let mut expected = Vec::new();
    whole.push(rest, &mut expected);
    expected.extend(whole.finish());
    let mut chunked = Framer::new(config);
    let mut got = Vec::new();
    for chunk in rest.chunks(usize::from(mode % 7) + 1) {
        chunked.push(chunk, &mut got);
        assert!(chunked.buffered() <= 64);
    }
    got.extend(chunked.finish());
    assert_eq!(got, expected);
    for frame in got {
        if let Frame::Scan(bytes) = frame
            && let Ok(scan) = RawScan::parse(&bytes)
        {
            let _ = decode(scan.as_str(), &DecodeOptions::default());
        }
    }
});
