//! Any text in any label field, through the built-in layouts and through site templates: the
//! ZPL has exactly one format, and no field carries a raw `^` or `~` (no command can be
//! injected).
#![no_main]

use holdfast_devices::label::{Address, Label};
use holdfast_devices::template::Templates;
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
    let site = TEMPLATES.get_or_init(|| {
        Templates::from_sources(&[
            (
                "product",
                "^XA^FO1,1^FH_^FD{{ name }}|{{ code }}|{{ code128 }}^FS^XZ",
            ),
            (
                "location",
                "^XA{% for c in name %}^FO1,1^FH_^FD{{ c }}^FS{% endfor %}^XZ",
            ),
            (
                "delivery",
                "^XA^FO1,1^FH_^FD{{ ship_to.name|upper }} {{ ship_to.city }}^FS^XZ",
            ),
        ])
        .expect("the fuzz templates load")
    });
    for label in labels {
        for zpl in [
            label.render(&LabelSize::default(), 1),
            site.render(&label, &LabelSize::default(), 1),
        ] {
            let Ok(zpl) = zpl else {
                continue;
            };
            assert_eq!(zpl.matches("^XA").count(), 1);
            assert_eq!(zpl.matches("^XZ").count(), 1);
            for field in zpl.split("^FD").skip(1) {
                let data = field.split("^FS").next().unwrap_or("");
                assert!(!data.contains('^') && !data.contains('~'), "{data:?}");
            }
        }
    }
});

/// Site templates (placeholders, a loop, a filter), loaded once.
static TEMPLATES: std::sync::OnceLock<Templates> = std::sync::OnceLock::new();
