//! Flow offload: the plain NAPT flows the engine lets a kernel fast path carry, and how the
//! engine keeps their sessions alive and counted while it does (the router's
//! `natpass_io::fastpath` is one such fast path).
//!
//! With offers on ([`Engine::set_offload`]), a packet that went through a UDP or ICMP echo
//! session (answered or not: one-way flows are common), or an established TCP session with neither FIN nor RST seen and itself
//! no SYN, FIN or RST, leaves an [`Offload`] behind ([`Engine::take_offload`]). VPN
//! passthrough ports are never offered: their modules must see every packet. The fast path
//! only carries packets whose addresses and ports are exactly a session's, so the filtering
//! behaviour (RFC 4787 §5) is unchanged; what natpass no longer sees are the TCP sequence
//! windows of an offloaded connection, which [`Engine::offloaded`] forgets, as Linux's
//! flowtable does (conntrack's "be liberal"). The session's timer keeps running on the
//! fast path's reports ([`Engine::offload_seen`]); when the engine expires or removes the
//! session, [`Engine::offload_live`] says so and the router takes the flow back.

use crate::flow::Proto;
use crate::flow::table::Endpoint;
use crate::{Engine, Instant};

/// A NAPT flow a fast path may carry: both directions follow from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Offload {
    /// TCP, UDP or ICMP (echo).
    pub proto: Proto,
    /// The LAN endpoint (ICMP: the host and its identifier).
    pub lan: Endpoint,
    /// The remote endpoint (ICMP: port 0).
    pub remote: Endpoint,
    /// The public endpoint the LAN one is translated to.
    pub public: Endpoint,
}

impl Engine {
    /// Turns offers of offloadable flows on or off (off by default: nothing is recorded).
    pub fn set_offload(&mut self, on: bool) {
        self.offload_on = on;
        self.offer = None;
    }

    /// The flow the last processed packet showed offloadable, once.
    pub fn take_offload(&mut self) -> Option<Offload> {
        self.offer.take()
    }

    /// Records that the flow of session `idx` may be offered (called by NAPT after a packet
    /// went through it).
    #[inline]
    pub(crate) fn offer_offload(&mut self, idx: u32, proto: Proto, tcp_flags: Option<u8>) {
        if self.offload_on && self.table.offloadable(idx, tcp_flags) {
            let s = self.table.info(idx);
            self.offer = Some(Offload { proto, lan: s.lan, remote: s.remote, public: s.ext });
        }
    }

    /// The session of `o`, if it is still the same one (same public endpoint).
    fn offload_session(&self, o: &Offload) -> Option<u32> {
        let idx = self.table.find_out(o.proto, o.lan, o.remote)?;
        (self.table.ext_of(idx) == o.public).then_some(idx)
    }

    /// The fast path now carries `o`: its TCP sequence windows are no longer checked.
    pub fn offloaded(&mut self, o: &Offload) {
        if let Some(idx) = self.offload_session(o)
            && o.proto == Proto::Tcp
        {
            self.table.forget_tcp_window(idx);
        }
    }

    /// The fast path carried `bytes` of `o` (IP bytes) from the LAN (`from_lan`) or the WAN,
    /// the last at `now`: the session's timer restarts and its byte counters grow. False when
    /// the session is gone or, for TCP, saw FIN or RST: the flow must go back to natpass.
    pub fn offload_seen(&mut self, now: Instant, o: &Offload, from_lan: bool, bytes: u64) -> bool {
        match self.offload_session(o) {
            Some(idx) => {
                self.table.touch(idx, now, from_lan, usize::try_from(bytes).unwrap_or(usize::MAX), None);
                let tcp = (o.proto == Proto::Tcp).then_some(0);
                self.table.offloadable(idx, tcp)
            }
            None => false,
        }
    }

    /// Whether `o`'s session is still there (not expired, removed, or replaced) and, for TCP,
    /// still established with neither FIN nor RST seen.
    pub fn offload_live(&self, o: &Offload) -> bool {
        let tcp = (o.proto == Proto::Tcp).then_some(0);
        self.offload_session(o).is_some_and(|idx| self.table.offloadable(idx, tcp))
    }
}
