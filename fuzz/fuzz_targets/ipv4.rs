#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use natpass_wire::ipv4::Ipv4Packet;

fuzz_target!(|data: &[u8]| {
    let mut buf = data.to_vec();
    if let Ok(mut p) = Ipv4Packet::new_checked(&mut buf[..]) {
        let _ = (p.header_len(), p.total_len(), p.ident(), p.frag_offset(), p.is_fragment(), p.ttl());
        let _ = (p.protocol(), p.src(), p.dst(), p.verify_checksum(), p.payload().len(), p.pseudo_header_sum());
        p.set_src(Ipv4Addr::new(0, 0, 0, 1));
        p.set_dst(Ipv4Addr::new(0, 0, 0, 2));
        p.decrement_ttl();
        p.set_ident(3);
        p.fill_checksum();
        let _ = p.payload_mut().len();
    }
});
