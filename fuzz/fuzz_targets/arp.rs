#![no_main]

use libfuzzer_sys::fuzz_target;
use natpass_wire::arp::ArpPacket;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = ArpPacket::new_checked(data) {
        let _ = (p.operation(), p.sender_mac(), p.sender_ip(), p.target_mac(), p.target_ip());
    }
});
