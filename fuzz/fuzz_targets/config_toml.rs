//! The config file parser (natpass-config) on arbitrary text: it must refuse with an error,
//! never panic, and whatever it accepts must be a valid engine configuration.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(c) = natpass_config::parse_config(text)
    {
        assert!(c.engine.validate().is_ok());
    }
});
