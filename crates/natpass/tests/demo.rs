//! The README's main job: the bundled demo capture replays as documented.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use natpass::replay::{self, Options};
use natpass_engine::{DropReason, EngineConfig};

fn demo_path() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/lan-clients.pcap"))
}

#[test]
fn bundled_capture_is_what_the_generator_writes() {
    let tmp = std::env::temp_dir().join(format!("natpass-demo-{}.pcap", std::process::id()));
    natpass::demo::write_capture(&tmp).unwrap();
    let fresh = std::fs::read(&tmp).unwrap();
    std::fs::remove_file(&tmp).unwrap();
    assert_eq!(fresh, std::fs::read(demo_path()).unwrap(), "run `natpass demo-capture` and commit");
}

#[test]
fn demo_replays_as_documented() {
    let opts = Options {
        input: demo_path(),
        lan: Vec::new(),
        public: [203, 0, 113, 1].into(),
        out_dir: None,
        base: EngineConfig { max_sessions: 1 << 16, ..Default::default() },
        progress: false,
    };
    let s = replay::run(&opts).unwrap();
    assert_eq!(s.lan_hosts.len(), 3);
    // Every answer from a server reaches its client exactly as in the capture.
    assert_eq!(s.ipv4.restored, 18);
    assert_eq!(s.ipv4.restored_differs, 0);
    // The traceroute probe expires at the router (answered), the stray probe finds no mapping.
    assert_eq!(s.ipv4.dropped(DropReason::TtlExceeded), 1);
    assert_eq!(s.ipv4.dropped(DropReason::NoMapping), 1);
    assert_eq!(s.ipv4.drops.len(), 2);
    // Two clients with the same source port to the same server got different public ports.
    assert_eq!(s.ports_used[1], 3);
}
