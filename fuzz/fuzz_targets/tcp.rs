#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use natpass_wire::AddrChange;
use natpass_wire::tcp::TcpPacket;

const CHANGE: AddrChange = AddrChange::new(Ipv4Addr::new(0, 0, 0, 1), Ipv4Addr::new(0, 0, 0, 2));

fuzz_target!(|data: &[u8]| {
    let mut buf = data.to_vec();
    if let Ok(mut p) = TcpPacket::new_checked(&mut buf[..]) {
        let _ = (p.src_port(), p.dst_port(), p.seq(), p.ack(), p.flags(), p.checksum(), p.payload().len());
        let _ = p.verify_checksum(0);
        p.set_src_port(1, Some(CHANGE));
        p.set_dst_port(2, None);
        p.fill_checksum(0);
    }
    if let Ok(mut p) = TcpPacket::new_ports_only(&mut buf[..]) {
        p.set_src_port(1, Some(CHANGE));
    }
});
