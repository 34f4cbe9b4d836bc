//! Every counter of the link layer (`natpass_link::Plane::counters`, what the router reports
//! to the control plane) has a metric of its own in `/metrics`: a counter added to the link
//! layer without one fails here, not silently on a dashboard.

#![allow(clippy::unwrap_used)]

use natpass_control::metrics::{FRAMES_IGNORED, LINK_DROPS, LINK_OWN};
use natpass_engine::{Engine, EngineConfig, Instant, Ipv4Net};
use natpass_link::{FrameSink, LinkConfig, Plane, PortConfig, TxOffload};

struct Discard;

impl FrameSink for Discard {
    fn push(&mut self, len: usize, _: Option<TxOffload>, fill: impl FnOnce(&mut [u8])) {
        fill(&mut vec![0; len]);
    }
}

#[test]
fn every_link_counter_has_a_metric() {
    let c = EngineConfig::default();
    let port = |addr| PortConfig { mac: [2, 0, 0, 0, 0, 1], mtu: 1500, addr, net: Ipv4Net::new(addr, 24), v6: None };
    let link =
        LinkConfig { lan: port(c.lan_addr), wan: port(c.public_addrs[0]), gateway: None, gateway6: None, ra: None };
    let plane = Plane::new(link, Engine::new(c, Instant::ZERO).unwrap(), Discard, Discard);
    for (name, _) in plane.counters() {
        let known = LINK_DROPS.iter().chain(FRAMES_IGNORED.iter()).any(|(c, _)| *c == name)
            || LINK_OWN.iter().any(|(c, _, _)| *c == name);
        assert!(known, "the link counter {name} has no metric in natpass_control::metrics");
    }
}
