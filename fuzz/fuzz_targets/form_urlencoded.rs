//! The web admin's form and query decoder (application/x-www-form-urlencoded) on arbitrary
//! bytes: never panics, and decoding text without '%', '+', '&' or '=' gives it back.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let pairs = natpass_control::server::form_decode(&s);
    if !s.is_empty() && !s.contains(['%', '+', '&', '=']) {
        assert_eq!(pairs, vec![(s.to_string(), String::new())]);
    }
});
