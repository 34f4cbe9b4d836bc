#![no_main]

use libfuzzer_sys::fuzz_target;
use natpass_wire::pptp::{CallIdOwner, PptpControl, next_message_len};

fuzz_target!(|data: &[u8]| {
    let _ = next_message_len(data);
    let mut buf = data.to_vec();
    if let Ok(mut p) = PptpControl::new_checked(&mut buf[..]) {
        let _ = (p.length(), p.message_type(), p.call_id_of(CallIdOwner::Pns), p.call_id_of(CallIdOwner::Pac));
        for &(at, _) in p.call_id_fields() {
            let _ = p.call_id_at(at);
            p.set_call_id_at(at, 1);
        }
    }
});
