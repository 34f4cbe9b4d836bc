#![no_main]

use libfuzzer_sys::fuzz_target;
use natpass_wire::ike::{IkePacket, classify_udp_4500};

fuzz_target!(|data: &[u8]| {
    let _ = classify_udp_4500(data);
    if let Ok(p) = IkePacket::new_checked(data) {
        let _ = (p.initiator_spi(), p.responder_spi(), p.next_payload(), p.major_version(), p.exchange_type());
        let _ = (p.flags(), p.is_response(), p.from_initiator(), p.message_id(), p.length());
    }
});
