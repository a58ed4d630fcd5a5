//! Any config file text: parsed and checked into a config, or refused with the problems listed.
//! Nothing may panic, and no error may quote a secret the text holds.
#![no_main]

use holdfast::config::RawConfig;
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "fuzz-secret-Q7x9";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The fuzzer's text, with a known secret wherever it wrote `@`.
    let text = text.replace('@', SECRET);
    match RawConfig::from_toml(&text).and_then(|raw| raw.validate()) {
        Ok(config) => assert!(!format!("{config:?}").contains(SECRET)),
        Err(e) => {
            let shown = e.to_string();
            // A secret may be quoted only where it sits at a key that is not secret-looking.
            if shown.contains(SECRET) {
                for key in ["api_key", "token", "password"] {
                    assert!(
                        !text.lines().any(|l| l.trim_start().starts_with(key) && l.contains(SECRET)),
                        "{shown}"
                    );
                }
            }
        }
    }
});
