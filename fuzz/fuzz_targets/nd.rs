#![no_main]

use libfuzzer_sys::fuzz_target;
use natpass_link::nd;

// Untrusted IPv6 packets as the router's link layer takes them in (RFC 4861 §6.1.1, §7.1.1,
// §7.1.2): Neighbor Discovery validation and the reads the forwarding path makes; nothing
// may panic, and what is accepted has a consistent message.
fuzz_target!(|data: &[u8]| {
    let _ = nd::icmpv6_message(data);
    let _ = (nd::destination(data), nd::packet_len(data));
    if let Ok(Some(m)) = nd::parse(data) {
        let _ = format!("{m:?}");
    }
});
