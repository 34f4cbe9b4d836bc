#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use natpass_io::pcap::PcapReader;

// Untrusted capture files: every packet is read and classified, and the reader stops at the
// first error; nothing may panic or allocate past its bounds.
fuzz_target!(|data: &[u8]| {
    if let Ok(reader) = PcapReader::from_bytes(Path::new("fuzz.pcap"), data.to_vec()) {
        for p in reader.take(10_000) {
            let Ok(p) = p else { break };
            let _ = (p.l3, p.data.len());
        }
    }
});
