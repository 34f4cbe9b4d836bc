#![no_main]

use libfuzzer_sys::fuzz_target;
use natpass_engine::{Engine, EngineConfig, Instant, Side};

// Feeds a sequence of packets, both ways, with a moving clock: the first byte of each chunk
// picks the side and the time step. No input may panic the engine.
fuzz_target!(|data: &[u8]| {
    let Ok(mut e) = Engine::new(EngineConfig { max_sessions: 64, ..Default::default() }, Instant::ZERO) else {
        return;
    };
    let mut now = 0u64;
    for chunk in data.split(|&b| b == 0xa5) {
        let Some((&ctl, pkt)) = chunk.split_first() else { continue };
        now += u64::from(ctl >> 1) * 1_000_000_000;
        let side = if ctl & 1 == 0 { Side::Lan } else { Side::Wan };
        let mut buf = pkt.to_vec();
        let _ = e.process(Instant::from_nanos(now), side, &mut buf);
        e.handle_timeout(Instant::from_nanos(now));
        while e.poll_transmit().is_some() {}
    }
});
