#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use natpass_wire::icmp::{IcmpPacket, QuotedDatagram};

fuzz_target!(|data: &[u8]| {
    let mut buf = data.to_vec();
    if let Ok(mut p) = IcmpPacket::new_checked(&mut buf[..]) {
        let _ = (p.msg_type(), p.code(), p.ident(), p.seq(), p.next_hop_mtu(), p.is_error(), p.is_query());
        let _ = (p.data().len(), p.verify_checksum());
        // The datagram an error quotes: every getter and setter on any bytes.
        if let Ok(mut q) = QuotedDatagram::new_checked(p.data_mut()) {
            let _ = (q.header_len(), q.protocol(), q.src(), q.dst(), q.frag_offset(), q.transport().len());
            let _ = (q.src_port(), q.dst_port(), q.icmp_type(), q.icmp_ident());
            q.set_src(Ipv4Addr::new(0, 0, 0, 1));
            q.set_dst(Ipv4Addr::new(0, 0, 0, 2));
            q.set_src_port(3);
            q.set_dst_port(4);
            q.set_icmp_ident(5);
        }
        let _ = natpass_wire::gre::quoted_call_id(p.data());
        p.set_ident(7);
        p.set_msg_type(3);
        p.set_code(1);
        p.set_next_hop_mtu(1280);
        p.fill_checksum();
    }
});
