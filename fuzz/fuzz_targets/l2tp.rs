#![no_main]

use libfuzzer_sys::fuzz_target;
use natpass_wire::l2tp::L2tpPacket;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = L2tpPacket::new_checked(data) {
        let _ = (p.version(), p.is_control(), p.length(), p.tunnel_id(), p.session_id(), p.connection_id());
        let _ = (p.sequence(), p.payload().len(), p.message_type());
        for avp in p.avps() {
            let _ = avp;
        }
    }
});
