#![no_main]

use libfuzzer_sys::fuzz_target;
use natpass_wire::icmpv6::Icmpv6Packet;
use natpass_wire::ipv6::Ipv6Packet;

// Untrusted IPv6 packets: the header, the extension header walk and an ICMPv6 message with
// its Neighbor Discovery options; nothing may panic.
fuzz_target!(|data: &[u8]| {
    let mut buf = data.to_vec();
    if let Ok(mut p) = Ipv6Packet::new_checked(&mut buf[..]) {
        let _ = (p.traffic_class(), p.flow_label(), p.next_header(), p.hop_limit(), p.src(), p.dst());
        for h in p.extension_headers() {
            let _ = h.map(|h| (h.kind, h.bytes.len(), h.next, h.offset));
        }
        if let Ok(up) = p.upper_layer() {
            let _ = up.fragment.map(|f| f.is_atomic());
            let _ = p.pseudo_header_sum(up.protocol, 8);
        }
        p.decrement_hop_limit();
    }
    if let Ok(m) = Icmpv6Packet::new_checked(data) {
        let _ = (m.msg_type(), m.code(), m.ident(), m.seq(), m.mtu(), m.target(), m.verify_checksum(0));
        for o in m.nd_options().take(64) {
            let _ = o.map(|o| natpass_wire::icmpv6::link_layer_address(&o));
        }
    }
});
