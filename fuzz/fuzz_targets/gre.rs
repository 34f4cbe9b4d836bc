#![no_main]

use libfuzzer_sys::fuzz_target;
use natpass_wire::gre::GrePacket;

fuzz_target!(|data: &[u8]| {
    let mut buf = data.to_vec();
    if let Ok(mut p) = GrePacket::new_checked(&mut buf[..]) {
        let _ = (p.version(), p.protocol_type(), p.key(), p.payload_len(), p.call_id(), p.seq(), p.ack());
        let _ = (p.payload().len(), p.verify_checksum());
        p.set_call_id(9);
    }
});
