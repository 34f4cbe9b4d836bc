//! The AF_PACKET backend seen by the link layer: what a TPACKET ring says about a frame, as
//! [`RxMeta`], and a `sendmmsg` batch as a [`FrameSink`], with the link layer's offload
//! requests written as virtio-net headers (PACKET_VNET_HDR).

use natpass_io::afpacket::{FrameInfo, TxBatch, VnetHdr};
use natpass_link::{FrameSink, RxMeta, Segmentation, TxOffload};

/// What the ring said about a received frame.
pub(crate) fn rx_meta(info: FrameInfo) -> RxMeta {
    let vnet = info.vnet;
    RxMeta {
        outgoing: info.outgoing,
        vlan_stripped: info.vlan_stripped,
        checksum_partial: info.csum_not_ready || vnet.is_some_and(|v| v.flags & VnetHdr::NEEDS_CSUM != 0),
        segmentation: vnet.filter(VnetHdr::is_gso).map(|v| Segmentation { size: v.gso_size, kind: v.gso_type }),
    }
}

/// The virtio-net header that asks the kernel for `o`.
fn vnet_hdr(o: TxOffload) -> VnetHdr {
    VnetHdr {
        flags: VnetHdr::NEEDS_CSUM,
        gso_type: o.segmentation.kind,
        hdr_len: o.header_len,
        gso_size: o.segmentation.size,
        csum_start: o.csum_start,
        csum_offset: o.csum_offset,
    }
}

/// One socket's transmit batch.
pub(crate) struct Tx(pub(crate) TxBatch);

impl FrameSink for Tx {
    fn push(&mut self, len: usize, offload: Option<TxOffload>, fill: impl FnOnce(&mut [u8])) {
        match offload {
            None => self.0.push_with(len, fill),
            Some(o) => self.0.push_offloaded(vnet_hdr(o), len, fill),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn offload_requests_become_virtio_net_headers() {
        let o = TxOffload {
            segmentation: Segmentation { size: 1448, kind: VnetHdr::GSO_TCPV4 },
            header_len: 54,
            csum_start: 34,
            csum_offset: 16,
        };
        let mut tx = Tx(TxBatch::with_vnet_hdr(true));
        tx.push(60, Some(o), |b| b[0] = 0xaa);
        tx.push(60, None, |b| b[0] = 0xbb);
        let frames: Vec<&[u8]> = tx.0.frames().collect();
        let h = VnetHdr::parse(frames[0]).unwrap();
        assert_eq!(
            (h.flags, h.gso_type, h.gso_size, h.hdr_len, h.csum_start, h.csum_offset),
            (VnetHdr::NEEDS_CSUM, VnetHdr::GSO_TCPV4, 1448, 54, 34, 16)
        );
        assert_eq!(frames[0][VnetHdr::LEN], 0xaa);
        assert_eq!(VnetHdr::parse(frames[1]), Some(VnetHdr::default()), "an ordinary frame asks nothing");
        // Without virtio-net headers the frame is sent as it is.
        let mut plain = Tx(TxBatch::with_vnet_hdr(false));
        plain.push(60, Some(o), |b| b[0] = 0xaa);
        assert_eq!(plain.0.frames().next().unwrap()[0], 0xaa);
    }

    #[test]
    fn ring_status_becomes_rx_meta() {
        let gso =
            VnetHdr { flags: VnetHdr::NEEDS_CSUM, gso_type: VnetHdr::GSO_UDP_L4, gso_size: 1472, ..VnetHdr::default() };
        let info =
            FrameInfo { wire_len: 0, csum_not_ready: false, vlan_stripped: false, outgoing: false, vnet: Some(gso) };
        let m = rx_meta(info);
        assert!(m.checksum_partial);
        assert_eq!(m.segmentation, Some(Segmentation { size: 1472, kind: VnetHdr::GSO_UDP_L4 }));
        let plain = rx_meta(FrameInfo { vnet: Some(VnetHdr::default()), csum_not_ready: true, ..info });
        assert!(plain.checksum_partial && plain.segmentation.is_none());
    }
}
