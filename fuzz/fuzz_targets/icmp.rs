#![no_main]

use libfuzzer_sys::fuzz_target;
use natpass_wire::icmp::IcmpPacket;

fuzz_target!(|data: &[u8]| {
    let mut buf = data.to_vec();
    if let Ok(mut p) = IcmpPacket::new_checked(&mut buf[..]) {
        let _ = (p.msg_type(), p.code(), p.ident(), p.seq(), p.next_hop_mtu(), p.is_error(), p.is_query());
        let _ = (p.data().len(), p.verify_checksum());
        p.set_ident(7);
        p.fill_checksum();
    }
});
