//! TCP sequence windows per session, so that a blind attacker who knows a connection's four
//! addresses and ports cannot inject into it: a segment is forwarded only when its sequence
//! and acknowledgment numbers are acceptable (RFC 9293 §3.10.7.4) for what the connection has
//! shown, with the bounds Linux conntrack and pf use (after Rooij, "Real Stateful TCP Packet
//! Filtering in IP Filter"). A RST is held to the same window (RFC 5961 §3: in-window only), and
//! so is a SYN on a connection that is not closed. Window scaling follows RFC 7323 §2: it
//! applies when both SYNs carry the option.
//!
//! A connection first seen mid-stream (natpass restarted, say) has no known windows: it is
//! tracked loosely, as conntrack's picked-up connections are, and never checked.

use crate::verdict::Side;
use natpass_wire::tcp::flags;

/// The largest acknowledgment lag accepted whatever the windows (conntrack's MAXACKWINDOW).
const MIN_ACK_WINDOW: u32 = 66_000;

/// A TCP segment as the window check reads it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Segment {
    pub(crate) seq: u32,
    pub(crate) ack: u32,
    pub(crate) flags: u8,
    /// Payload bytes.
    pub(crate) len: u32,
    /// The window field, unscaled.
    pub(crate) window: u16,
    /// The Window Scale option of a SYN.
    pub(crate) scale: Option<u8>,
}

/// What one side of the connection has shown.
#[derive(Clone, Copy, Debug, Default)]
struct Sender {
    /// Seen at all.
    known: bool,
    /// The highest sequence number it sent, plus one (data, SYN and FIN count).
    end: u32,
    /// The highest sequence number the other side allowed it to send (ack + window).
    max_end: u32,
    /// The largest window it advertised, scaled.
    max_win: u32,
    /// The Window Scale its SYN offered.
    offered: Option<u8>,
}

/// The two directions of one TCP session.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TcpWindow {
    /// Indexed by the side a segment comes from: `[lan, wan]`.
    sides: [Sender; 2],
    /// First seen mid-stream: not checked.
    loose: bool,
}

/// `a` is at or before `b` in sequence space (RFC 1982 arithmetic).
#[inline]
fn before_eq(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) >= 0
}

impl TcpWindow {
    /// The state for a session opened by `seg` from `side`.
    pub(crate) fn open(side: Side, seg: &Segment) -> Self {
        let mut w = Self { loose: seg.flags & (flags::SYN | flags::ACK) != flags::SYN, ..Self::default() };
        w.start(side, seg);
        w
    }

    /// The shift a side's windows take: its offer, when both SYNs offered one.
    fn shift(&self, side: usize) -> u32 {
        match (self.sides[side].offered, self.sides[1 - side].offered) {
            (Some(s), Some(_)) => u32::from(s),
            _ => 0,
        }
    }

    /// The sender's state from its first segment (a SYN, or any segment picked up).
    fn start(&mut self, side: Side, seg: &Segment) {
        let i = side as usize;
        let end = end_of(seg);
        self.sides[i] = Sender {
            known: true,
            end,
            max_end: end,
            max_win: u32::from(seg.window).max(1),
            offered: if seg.flags & flags::SYN != 0 { seg.scale } else { None },
        };
    }

    /// Checks a segment from `side` (`reopen`: the session is closed or reset, so a new SYN
    /// may start over) and, when acceptable, learns from it. False: drop it.
    pub(crate) fn accept(&mut self, side: Side, seg: &Segment, reopen: bool) -> bool {
        let (s, r) = (side as usize, 1 - side as usize);
        let syn = seg.flags & flags::SYN != 0;
        let has_ack = seg.flags & flags::ACK != 0;
        if syn && !has_ack && (reopen || !self.sides[s].known) {
            // A connection opening, or reopening a closed 4-tuple: the sender starts over.
            *self = Self::default();
            self.start(side, seg);
            return true;
        }
        if self.loose {
            return true;
        }
        if !self.sides[s].known {
            // The answer to the opening SYN: it must acknowledge it.
            if has_ack && self.sides[r].known && seg.ack != self.sides[r].end {
                return false;
            }
            self.start(side, seg);
            if has_ack {
                self.grant(s, seg);
            }
            return true;
        }
        let (snd, rcv) = (self.sides[s], self.sides[r]);
        let end = end_of(seg);
        if rcv.known {
            let ack = if has_ack { seg.ack } else { rcv.end };
            // I: nothing past what the receiver allowed; II: nothing older than a window.
            let in_window = before_eq(end, snd.max_end)
                && before_eq(snd.end.wrapping_sub(rcv.max_win), seg.seq.wrapping_add(seg.len));
            // III: no acknowledgment of data not sent; IV: nor of data long acknowledged.
            let lag = snd.max_win.max(MIN_ACK_WINDOW);
            let ack_ok = before_eq(ack, rcv.end) && before_eq(rcv.end.wrapping_sub(lag), ack);
            if !(in_window && ack_ok) {
                return false;
            }
        }
        let shift = self.shift(s);
        let x = &mut self.sides[s];
        if !before_eq(end, x.end) {
            x.end = end;
        }
        if !rcv.known && !before_eq(end, x.max_end) {
            x.max_end = end;
        }
        x.max_win = x.max_win.max((u32::from(seg.window) << shift).max(1));
        if has_ack {
            self.grant(s, seg);
        }
        true
    }

    /// A segment from side `s` acknowledges up to `ack` with its window: the other side may
    /// send up to there.
    fn grant(&mut self, s: usize, seg: &Segment) {
        let win = (u32::from(seg.window) << self.shift(s)).max(1);
        let limit = seg.ack.wrapping_add(win);
        let rcv = &mut self.sides[1 - s];
        if !before_eq(limit, rcv.max_end) {
            rcv.max_end = limit;
        }
    }
}

/// The sequence number after a segment: SYN and FIN take one each.
fn end_of(seg: &Segment) -> u32 {
    let ctl = u32::from(seg.flags & flags::SYN != 0) + u32::from(seg.flags & flags::FIN != 0);
    seg.seq.wrapping_add(seg.len).wrapping_add(ctl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use natpass_wire::tcp::flags::{ACK, FIN, RST, SYN};

    fn seg(seq: u32, ack: u32, fl: u8, len: u32) -> Segment {
        Segment { seq, ack, flags: fl, len, window: 65535, scale: None }
    }

    /// A connection LAN (ISN 1000) ↔ WAN (ISN 5000), open and with data acknowledged.
    fn open() -> TcpWindow {
        let mut w = TcpWindow::open(Side::Lan, &seg(1000, 0, SYN, 0));
        assert!(w.accept(Side::Wan, &seg(5000, 1001, SYN | ACK, 0), false));
        assert!(w.accept(Side::Lan, &seg(1001, 5001, ACK, 100), false));
        assert!(w.accept(Side::Wan, &seg(5001, 1101, ACK, 1000), false));
        w
    }

    #[test]
    fn the_handshake_and_data_pass() {
        let mut w = open();
        assert!(w.accept(Side::Lan, &seg(1101, 6001, ACK, 0), false));
        assert!(w.accept(Side::Wan, &seg(6001, 1101, ACK | FIN, 0), false));
    }

    #[test]
    fn a_syn_ack_that_acknowledges_nothing_sent_is_refused() {
        let mut w = TcpWindow::open(Side::Lan, &seg(1000, 0, SYN, 0));
        assert!(!w.accept(Side::Wan, &seg(5000, 77, SYN | ACK, 0), false));
        assert!(w.accept(Side::Wan, &seg(5000, 1001, SYN | ACK, 0), false));
    }

    #[test]
    fn blind_segments_with_random_numbers_are_refused() {
        let mut w = open();
        // RST, SYN and data far outside the window (RFC 5961's blind attacks).
        assert!(!w.accept(Side::Wan, &seg(5001 + 0x4000_0000, 0, RST, 0), false));
        assert!(!w.accept(Side::Wan, &seg(0x9000_0000, 0, SYN, 0), false));
        assert!(!w.accept(Side::Wan, &seg(0x9000_0000, 1101, ACK, 10), false));
        // An acknowledgment of data the LAN side never sent.
        assert!(!w.accept(Side::Wan, &seg(6001, 0x7000_0000, ACK, 0), false));
        // An in-window RST passes.
        assert!(w.accept(Side::Wan, &seg(6001, 0, RST, 0), false));
    }

    #[test]
    fn a_new_syn_reopens_a_closed_connection() {
        let mut w = open();
        assert!(w.accept(Side::Lan, &seg(0x7777_0000, 0, SYN, 0), true));
        assert!(w.accept(Side::Wan, &seg(0x1234_0000, 0x7777_0001, SYN | ACK, 0), false));
    }

    #[test]
    fn scaled_windows_allow_what_they_grant() {
        let syn = Segment { scale: Some(7), ..seg(1000, 0, SYN, 0) };
        let mut w = TcpWindow::open(Side::Lan, &syn);
        let syn_ack = Segment { scale: Some(7), ..seg(5000, 1001, SYN | ACK, 0) };
        assert!(w.accept(Side::Wan, &syn_ack, false));
        // The LAN side grants 65535 << 7 (8 MB): the WAN side may send 4 MB ahead.
        assert!(w.accept(Side::Lan, &seg(1001, 5001, ACK, 0), false));
        assert!(w.accept(Side::Wan, &seg(5001 + 4_000_000, 1001, ACK, 1400), false));
        assert!(!w.accept(Side::Wan, &seg(5001 + 9_000_000, 1001, ACK, 1400), false));
    }

    #[test]
    fn a_connection_picked_up_mid_stream_is_not_checked() {
        let mut w = TcpWindow::open(Side::Lan, &seg(1000, 9000, ACK, 10));
        assert!(w.accept(Side::Wan, &seg(0x5000_0000, 1010, ACK, 10), false));
    }
}
