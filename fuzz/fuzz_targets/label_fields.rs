//! Any text in any label field: the ZPL has exactly one format, and no field carries a raw
//! `^` or `~` (no command can be injected).
#![no_main]

use holdfast_devices::label::{Address, Label};
use holdfast_devices::zpl::LabelSize;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let labels = [
        Label::Product {
            name: text.clone(),
            code: Some(text.clone()),
            barcode: Some(text.clone()),
        },
        Label::Location {
            name: text.clone(),
            barcode: text.clone(),
        },
        Label::Delivery {
            ship_to: Address {
                name: text.clone(),
                street: Some(text.clone()),
                city: Some(text.clone()),
                ..Default::default()
            },
            picking: text.clone(),
            origin: Some(text.clone()),
            sscc: None,
            carrier: Some(text.clone()),
        },
    ];
    for label in labels {
        let Ok(zpl) = label.render(&LabelSize::default(), 1) else {
            continue;
        };
        assert_eq!(zpl.matches("^XA").count(), 1);
        assert_eq!(zpl.matches("^XZ").count(), 1);
        for field in zpl.split("^FD").skip(1) {
            let data = field.split("^FS").next().unwrap_or("");
            assert!(!data.contains('^') && !data.contains('~'), "{data:?}");
        }
    }
});
