//! Any body a device can send to any write endpoint of the device API: parsed into a floor
//! request or refused with a clear error. Nothing may panic.
#![no_main]

use holdfast::http::{WriteEndpoint, parse_write};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let id = "01a20a20-7e1b-724a-be27-b08916dfe2ea".to_owned();
    let endpoint = match which % 9 {
        0 => WriteEndpoint::Login,
        1 => WriteEndpoint::Logout,
        2 => WriteEndpoint::Start,
        3 => WriteEndpoint::Scan,
        4 => WriteEndpoint::Resume(id),
        5 => WriteEndpoint::Cancel(id),
        6 => WriteEndpoint::Quantity(id),
        7 => WriteEndpoint::Validate(id),
        _ => WriteEndpoint::Finish(id),
    };
    let _ = parse_write(endpoint, body);
});
