#![no_main]

use libfuzzer_sys::fuzz_target;
use natpass_wire::ethernet::EthernetFrame;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = EthernetFrame::new_checked(data) {
        let _ = (p.dst(), p.src(), p.ethertype(), p.vlan_id(), p.payload().len());
    }
});
