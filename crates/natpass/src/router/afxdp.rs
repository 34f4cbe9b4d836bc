//! The AF_XDP backend seen by the link layer: an AF_XDP transmit queue as a [`FrameSink`].
//! A received frame the plane forwards leaves from the UMEM chunk it arrived in
//! ([`FrameSink::push_in_place`] → [`TxQueue::push_received`]); frames the plane builds (ARP,
//! ping answers, ICMP errors, packets that waited for ARP) are written into spare chunks.
//!
//! AF_XDP carries frames, not GSO super-frames, so the plane never hands it an offload
//! request. It says nothing of checksums either: a TCP or UDP checksum a local sender (a veth
//! peer with `tx` offload on) left unfinished is recognised by its value
//! ([`offload::checksum_left_partial`]) and completed by the plane.

use natpass_io::afxdp::TxQueue;
use natpass_link::{FrameSink, RxMeta, TxOffload, offload};
use natpass_wire::ethernet;

/// What the link layer should know of a frame AF_XDP received.
pub(crate) fn rx_meta(frame: &[u8]) -> RxMeta {
    let ipv4 = frame.get(12..14) == Some(&ethernet::ethertype::IPV4.to_be_bytes()[..]);
    let partial = ipv4 && frame.get(ethernet::HEADER_LEN..).is_some_and(offload::checksum_left_partial);
    RxMeta { checksum_partial: partial, ..RxMeta::default() }
}

/// One socket's transmit queue.
pub(crate) struct Tx(pub(crate) TxQueue);

impl FrameSink for Tx {
    fn push(&mut self, len: usize, offload: Option<TxOffload>, fill: impl FnOnce(&mut [u8])) {
        self.0.push_with(len, |b| {
            fill(b);
            // Never asked for (no super-frames come in), but a request must not leave a
            // half-made checksum on the wire.
            if offload.is_some() {
                complete(b);
            }
        });
    }

    fn push_in_place(&mut self, frame: &[u8], offload: Option<TxOffload>) {
        if offload.is_none() && self.0.push_received(frame) {
            return;
        }
        self.push(frame.len(), offload, |b| b.copy_from_slice(frame));
    }
}

fn complete(frame: &mut [u8]) {
    if let Some(ip) = frame.get_mut(ethernet::HEADER_LEN..) {
        offload::complete_l4_checksum(ip);
    }
}
