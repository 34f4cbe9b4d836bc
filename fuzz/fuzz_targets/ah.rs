#![no_main]

use libfuzzer_sys::fuzz_target;
use natpass_wire::ah::AhPacket;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = AhPacket::new_checked(data) {
        let _ = (p.next_header(), p.header_len(), p.spi(), p.seq(), p.icv().len());
    }
});
