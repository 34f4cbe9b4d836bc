#![no_main]

use libfuzzer_sys::fuzz_target;
use natpass_wire::esp::EspPacket;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = EspPacket::new_checked(data) {
        let _ = (p.spi(), p.seq(), p.is_reserved_spi(), p.payload().len());
    }
});
