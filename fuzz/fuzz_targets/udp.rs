#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use natpass_wire::AddrChange;
use natpass_wire::udp::UdpPacket;

const CHANGE: AddrChange = AddrChange::new(Ipv4Addr::new(0, 0, 0, 1), Ipv4Addr::new(0, 0, 0, 2));

fuzz_target!(|data: &[u8]| {
    let mut buf = data.to_vec();
    if let Ok(mut p) = UdpPacket::new_checked(&mut buf[..]) {
        let _ = (p.src_port(), p.dst_port(), p.len_field(), p.checksum(), p.payload().len(), p.verify_checksum(0));
        p.set_src_port(1, Some(CHANGE));
        p.set_dst_port(2, None);
        p.set_pseudo_addr(CHANGE);
        p.fill_checksum(0);
        let _ = p.payload_mut().len();
    }
});
