//! PPTP passthrough (RFC 2637): an ALG on the TCP 1723 control connection that translates the
//! client's (the PNS's) Call ID to a public Call ID unique per (public address, server), and
//! enhanced GRE (IP protocol 47, RFC 2637 §4.1) translated with it.
//!
//! The control connection rides NAPT (a TCP session, RFC 5382); this module reads and rewrites
//! its payload before NAPT rewrites the headers. Control messages are parsed from the TCP byte
//! stream, so a message may span segments and a segment may hold several. Call ID fields are
//! rewritten in place (length-preserving) with incremental TCP checksum updates (RFC 1624). A
//! retransmitted segment gets the same rewrites again; a segment beyond a gap is dropped (TCP
//! resends it) because its Call IDs could not be found. A Call ID field split across two
//! segments can only have its second byte rewritten, so public Call IDs keep the client's high
//! byte when they can.
//!
//! Calls: Outgoing-Call-Request (or Incoming-Call-Reply) allocates the public Call ID; the
//! server's reply (Outgoing-Call-Reply) names the server's Call ID, and GRE then flows: outbound
//! GRE carries the server's Call ID and needs only the address rewrite; inbound GRE carries the
//! public Call ID, which maps back to the client and its own Call ID. Call-Disconnect-Notify,
//! and the end of the control connection (FIN or RST), end calls. GRE version 0 (RFC 2784) has
//! no Call ID to tell clients apart and is refused.
//!
//! ICMP errors quoting our outbound GRE go back to the client by the server's Call ID.
//!
//! For the diagnosis, each call counts its GRE both ways and reports at most once a second
//! while the client sends; the server's result codes (Outgoing-Call-Reply, RFC 2637 §2.8;
//! Call-Disconnect-Notify, §2.13) and GRE whose Call ID no call has are reported as seen.

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use foldhash::fast::FixedState;
use hashbrown::HashMap;
use natpass_wire::IpProtocol;
use natpass_wire::gre::{self, GrePacket};
use natpass_wire::icmp::QuotedDatagram;
use natpass_wire::ipv4::Ipv4Packet;
use natpass_wire::pptp::{CallIdOwner, ControlMessageType};
use natpass_wire::tcp::{TcpPacket, flags};

use super::{Flow, NaptPacket, Protocol, TunnelIds, VpnProtocol, nanos};
use crate::diagnosis::{
    CallResult, Carrier, DataReport, FindingKind, GreUnknown, Observation, PptpMessage, REPORT_EVERY, ServerAtPublic,
    Subject,
};
use crate::output::{Cx, Output};
use crate::time::Instant;
use crate::verdict::{DropReason, Side, Verdict};
use crate::{Event, TunnelInfo};

/// The PPTP control connection's port (RFC 2637 §1.3).
pub(crate) const CONTROL_PORT: u16 = 1723;

/// Rewrites remembered per stream for retransmissions.
const RETAIN_REWRITES: usize = 32;

/// One direction of a control connection's byte stream.
#[derive(Clone, Debug, Default)]
struct Stream {
    /// The TCP sequence number of the next byte expected.
    next_seq: Option<u32>,
    /// The current message's first 12 bytes (header), as far as seen.
    hdr: [u8; 12],
    /// Offset of the next byte within the current message.
    msg_off: usize,
    /// The current message's length once known.
    msg_len: usize,
    /// The first byte of a Call ID field whose second byte is in the next segment.
    split_hi: Option<u8>,
    /// Rewrites done, by stream sequence number, for retransmissions: (seq, old, new).
    rewrites: VecDeque<(u32, [u8; 2], [u8; 2])>,
    /// The stream no longer parses (a length out of range): passed through unparsed.
    broken: bool,
    /// The current message's bytes 12 to 19, where result codes are.
    body: [u8; 8],
}

#[derive(Clone, Copy, Debug)]
struct Call {
    client_cid: u16,
    public_cid: u16,
    server_cid: Option<u16>,
    bytes_out: u64,
    bytes_in: u64,
    /// GRE each way, for the diagnosis: the client's first, the counts, the server's last.
    first_out: Option<u64>,
    packets_out: u64,
    packets_in: u64,
    last_in: Option<u64>,
    reported: Option<u64>,
}

impl Call {
    fn new(client_cid: u16, public_cid: u16) -> Self {
        Self {
            client_cid,
            public_cid,
            server_cid: None,
            bytes_out: 0,
            bytes_in: 0,
            first_out: None,
            packets_out: 0,
            packets_in: 0,
            last_in: None,
            reported: None,
        }
    }

    fn ids(&self) -> TunnelIds {
        TunnelIds::Pptp {
            client_call_id: self.client_cid,
            public_call_id: self.public_cid,
            server_call_id: self.server_cid.unwrap_or(0),
        }
    }
}

/// A control connection: the client's address and port, and the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct ConnKey {
    client: Ipv4Addr,
    client_port: u16,
    server: Ipv4Addr,
}

#[derive(Clone, Debug)]
struct Conn {
    public: Ipv4Addr,
    /// The client's stream (index 0) and the server's (index 1).
    streams: [Stream; 2],
    calls: Vec<Call>,
    /// The call a Call-Disconnect-Notify ended last, for its result code.
    ended: Option<Call>,
}

/// A result code the server sent, with the message's bytes 12 to 19.
#[derive(Clone, Copy, Debug)]
struct ResultSeen {
    message: PptpMessage,
    body: [u8; 8],
}

/// Inbound GRE: the public Call ID the server sends to, per public address and server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct InKey {
    public: Ipv4Addr,
    server: Ipv4Addr,
    public_cid: u16,
}

/// Outbound GRE: the server's Call ID the client sends to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct OutKey {
    client: Ipv4Addr,
    server: Ipv4Addr,
    server_cid: u16,
}

/// A rewrite of two bytes at `at` in the TCP payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rewrite {
    at: usize,
    old: [u8; 2],
    new: [u8; 2],
}

/// One control segment being read: its connection, direction, and what it produced.
struct Segment<'a> {
    conn: ConnKey,
    public: Ipv4Addr,
    from_client: bool,
    rewrites: Vec<Rewrite>,
    /// Result codes from the server, for the diagnosis.
    results: Vec<ResultSeen>,
    out: &'a mut Output,
}

/// The PPTP passthrough of one engine.
pub(crate) struct Pptp {
    conns: HashMap<ConnKey, Conn, FixedState>,
    inbound: HashMap<InKey, ConnKey, FixedState>,
    /// The control connection port of a call's client, by its outbound GRE.
    outbound: HashMap<OutKey, u16, FixedState>,
}

impl Pptp {
    pub(crate) fn new(seed: u64) -> Self {
        let h = |x: u64| FixedState::with_seed(seed ^ x);
        Self {
            conns: HashMap::with_hasher(h(0x9971)),
            inbound: HashMap::with_hasher(h(0x9972)),
            outbound: HashMap::with_hasher(h(0x9973)),
        }
    }

    /// Calls with GRE flowing.
    pub(crate) fn calls(&self) -> usize {
        self.inbound.len()
    }

    /// The public Call ID of `client`'s call `client_cid` towards `server`.
    pub(crate) fn public_call_id(&self, client: Ipv4Addr, server: Ipv4Addr, client_cid: u16) -> Option<u16> {
        self.conns
            .iter()
            .filter(|(k, _)| k.client == client && k.server == server)
            .find_map(|(_, c)| c.calls.iter().find(|x| x.client_cid == client_cid).map(|x| x.public_cid))
    }

    /// A public Call ID for `client_cid` free for (public address, server): the client's own
    /// when free, else one with the same high byte, else any.
    fn allocate(&self, public: Ipv4Addr, server: Ipv4Addr, client_cid: u16) -> Option<u16> {
        let taken = |c: u16| {
            self.inbound.contains_key(&InKey { public, server, public_cid: c })
                || self
                    .conns
                    .values()
                    .any(|k| k.public == public && k.calls.iter().any(|x| x.public_cid == c && x.server_cid.is_none()))
        };
        let hi = client_cid & 0xff00;
        std::iter::once(client_cid)
            .chain((0..=0xffu16).map(|lo| hi | lo))
            .chain((0..=0xffffu16).filter(|c| c & 0xff00 != hi))
            .find(|&c| !taken(c))
    }

    /// Reads the TCP payload of a control segment with sequence number `seq`, rewriting Call
    /// IDs in `payload` and noting each rewrite in `s` (for the TCP checksum), or the reason to
    /// drop the segment.
    fn segment(&mut self, s: &mut Segment<'_>, seq: u32, payload: &mut [u8]) -> Result<(), DropReason> {
        if payload.is_empty() {
            return Ok(());
        }
        let public = s.public;
        let dir = usize::from(!s.from_client);
        let c = self.conns.entry(s.conn).or_insert_with(|| Conn {
            public,
            streams: Default::default(),
            calls: Vec::new(),
            ended: None,
        });
        let st = &mut c.streams[dir];
        let (next, broken) = (*st.next_seq.get_or_insert(seq), st.broken);
        let ahead = seq.wrapping_sub(next) as i32;
        if ahead > 0 {
            return Err(DropReason::PptpOutOfOrder);
        }
        // Bytes already seen (a retransmission): the same rewrites again, byte by byte.
        let seen = (-i64::from(ahead)) as usize;
        let upto = payload.len().min(seen);
        for &(at_seq, old, new) in &st.rewrites {
            for k in 0..2 {
                let pos = at_seq.wrapping_add(k as u32).wrapping_sub(seq) as usize;
                if pos < upto && payload[pos] == old[k] && old[k] != new[k] {
                    payload[pos] = new[k];
                    s.rewrites.push(Rewrite { at: pos, old: [old[k], 0], new: [new[k], 0] });
                }
            }
        }
        if broken {
            let end = seq.wrapping_add(payload.len() as u32);
            if (end.wrapping_sub(next) as i32) > 0 {
                st.next_seq = Some(end);
            }
            return Ok(());
        }
        if seen >= payload.len() {
            return Ok(());
        }
        for i in seen..payload.len() {
            self.byte(s, dir, seq.wrapping_add(i as u32), payload, i);
        }
        if let Some(c) = self.conns.get_mut(&s.conn) {
            c.streams[dir].next_seq = Some(seq.wrapping_add(payload.len() as u32));
        }
        Ok(())
    }

    /// One new byte of the stream at payload index `i`, stream sequence number `stream_seq`.
    fn byte(&mut self, s: &mut Segment<'_>, dir: usize, stream_seq: u32, payload: &mut [u8], i: usize) {
        let Some(c) = self.conns.get_mut(&s.conn) else { return };
        let st = &mut c.streams[dir];
        if st.broken {
            return;
        }
        let off = st.msg_off;
        if off < 12 {
            st.hdr[off] = payload[i];
        }
        if off == 1 {
            st.msg_len = usize::from(u16::from_be_bytes([st.hdr[0], st.hdr[1]]));
            if !(12..=1024).contains(&st.msg_len) {
                st.broken = true;
                return;
            }
        }
        st.msg_off += 1;
        let kind = if st.msg_off > 12 || off >= 9 {
            ControlMessageType::from_u16(u16::from_be_bytes([st.hdr[8], st.hdr[9]]))
        } else {
            None
        };
        if (12..20).contains(&off) {
            st.body[off - 12] = payload[i];
        }
        if off == 19 && !s.from_client {
            let message = match kind {
                Some(ControlMessageType::OutgoingCallReply) => Some(PptpMessage::OutgoingCallReply),
                Some(ControlMessageType::CallDisconnectNotify) => Some(PptpMessage::CallDisconnectNotify),
                _ => None,
            };
            if let Some(message) = message {
                s.results.push(ResultSeen { message, body: st.body });
            }
        }
        // Is this byte the second byte of a Call ID field?
        let field = kind.and_then(|k| k.call_id_fields().iter().find(|f| f.0 + 1 == off).copied());
        if off > 9 && field.is_none() && kind.is_some_and(|k| k.call_id_fields().iter().any(|f| f.0 == off)) {
            // The first byte of a field: remember it in case the segment ends here.
            st.split_hi = Some(payload[i]);
        }
        if st.msg_len > 0 && st.msg_off >= st.msg_len {
            st.msg_off = 0;
            st.msg_len = 0;
        }
        let (Some(kind), Some((_, owner))) = (kind, field) else { return };
        let hi = if i > 0 { payload[i - 1] } else { st.split_hi.unwrap_or(0) };
        let value = u16::from_be_bytes([hi, payload[i]]);
        let Some(new) = self.field(s, kind, owner, value) else { return };
        if new == value {
            return;
        }
        let Some(c) = self.conns.get_mut(&s.conn) else { return };
        let st = &mut c.streams[dir];
        let new_b = new.to_be_bytes();
        if i > 0 {
            let old = [payload[i - 1], payload[i]];
            payload[i - 1..=i].copy_from_slice(&new_b);
            s.rewrites.push(Rewrite { at: i - 1, old, new: new_b });
        } else if new_b[0] == hi {
            // Split field: only the low byte is in this segment.
            let old = [payload[i], 0];
            payload[i] = new_b[1];
            s.rewrites.push(Rewrite { at: i, old, new: [new_b[1], 0] });
        }
        st.rewrites.push_back((stream_seq.wrapping_sub(1), value.to_be_bytes(), new_b));
        if st.rewrites.len() > RETAIN_REWRITES {
            st.rewrites.pop_front();
        }
    }

    /// The new value of a Call ID field, with the call bookkeeping it implies.
    fn field(&mut self, s: &mut Segment<'_>, kind: ControlMessageType, owner: CallIdOwner, value: u16) -> Option<u16> {
        use ControlMessageType::*;
        let key = s.conn;
        match (s.from_client, kind, owner) {
            // The client names a new call: a public Call ID for it.
            (true, OutgoingCallRequest | IncomingCallReply, CallIdOwner::Pns) => {
                let c = self.conns.get(&key)?;
                if let Some(x) = c.calls.iter().find(|x| x.client_cid == value) {
                    return Some(x.public_cid);
                }
                let public = self.allocate(s.public, key.server, value)?;
                let c = self.conns.get_mut(&key)?;
                c.calls.push(Call::new(value, public));
                Some(public)
            }
            // The client's own Call ID in other messages (Call-Clear-Request).
            (true, _, CallIdOwner::Pns) => {
                let c = self.conns.get(&key)?;
                c.calls.iter().find(|x| x.client_cid == value).map(|x| x.public_cid)
            }
            // Incoming-Call-Reply also names the server's Call ID: GRE may flow.
            (true, IncomingCallReply, CallIdOwner::Pac) => {
                self.bind(key, None, value, s.out);
                Some(value)
            }
            // The server names our public Call ID: back to the client's.
            (false, OutgoingCallReply, CallIdOwner::Pns) => {
                let c = self.conns.get(&key)?;
                let client_cid = c.calls.iter().find(|x| x.public_cid == value)?.client_cid;
                self.bind(key, Some(value), 0, s.out);
                Some(client_cid)
            }
            (false, OutgoingCallReply, CallIdOwner::Pac) => {
                // Remember the server's Call ID for the call it is about (named next, at 14).
                let c = self.conns.get_mut(&key)?;
                if let Some(call) = c.calls.iter_mut().rev().find(|x| x.server_cid.is_none()) {
                    call.server_cid = Some(value);
                }
                Some(value)
            }
            (false, CallDisconnectNotify, CallIdOwner::Pac) => {
                self.end_call(key, value, s.out);
                Some(value)
            }
            (false, _, CallIdOwner::Pns) => {
                let c = self.conns.get(&key)?;
                c.calls.iter().find(|x| x.public_cid == value).map(|x| x.client_cid)
            }
            _ => Some(value),
        }
    }

    /// A call's GRE may flow: index it both ways. `public_cid` names the call, or `None` for
    /// the newest call without a server Call ID, which becomes `server_cid`.
    fn bind(&mut self, key: ConnKey, public_cid: Option<u16>, server_cid: u16, out: &mut Output) {
        let Some(c) = self.conns.get_mut(&key) else { return };
        let public = c.public;
        let call = match public_cid {
            Some(p) => c.calls.iter_mut().find(|x| x.public_cid == p),
            None => c.calls.iter_mut().rev().find(|x| x.server_cid.is_none()),
        };
        let Some(call) = call else { return };
        if public_cid.is_none() {
            call.server_cid = Some(server_cid);
        }
        let Some(s) = call.server_cid else { return };
        let call = *call;
        self.inbound.insert(InKey { public, server: key.server, public_cid: call.public_cid }, key);
        self.outbound.insert(OutKey { client: key.client, server: key.server, server_cid: s }, key.client_port);
        out.event(Event::TunnelUp {
            protocol: Protocol::Pptp,
            client: key.client,
            server: key.server,
            public,
            ids: TunnelIds::Pptp {
                client_call_id: call.client_cid,
                public_call_id: call.public_cid,
                server_call_id: s,
            },
        });
    }

    fn end_call(&mut self, key: ConnKey, server_cid: u16, out: &mut Output) {
        let Some(c) = self.conns.get_mut(&key) else { return };
        let public = c.public;
        let Some(pos) = c.calls.iter().position(|x| x.server_cid == Some(server_cid)) else { return };
        let call = c.calls.remove(pos);
        c.ended = Some(call);
        self.inbound.remove(&InKey { public, server: key.server, public_cid: call.public_cid });
        self.outbound.remove(&OutKey { client: key.client, server: key.server, server_cid });
        out.event(down(key, &call, server_cid));
    }

    /// The control connection ended (FIN or RST): its calls end with it.
    fn end_connection(&mut self, key: ConnKey, out: &mut Output) {
        let Some(c) = self.conns.remove(&key) else { return };
        for call in &c.calls {
            self.inbound.remove(&InKey { public: c.public, server: key.server, public_cid: call.public_cid });
            if let Some(s) = call.server_cid {
                self.outbound.remove(&OutKey { client: key.client, server: key.server, server_cid: s });
                out.event(down(key, call, s));
            }
        }
    }

    /// Outbound GRE from `client` to `server` with the server's Call ID at `now`: the public
    /// address, or `None` when no call of that client uses it; and, at most once a second,
    /// what the diagnosis needs of the call.
    fn gre_out(&mut self, key: OutKey, bytes: usize, now: Instant) -> Option<(Ipv4Addr, Option<Observation>)> {
        let client_port = *self.outbound.get(&key)?;
        let c = self.conns.get_mut(&ConnKey { client: key.client, client_port, server: key.server })?;
        let public = c.public;
        let Some(call) = c.calls.iter_mut().find(|x| x.server_cid == Some(key.server_cid)) else {
            return Some((public, None));
        };
        let t = now.as_nanos();
        call.bytes_out += bytes as u64;
        call.packets_out += 1;
        let first_out = *call.first_out.get_or_insert(t);
        if call.reported.is_some_and(|r| t.saturating_sub(r) < nanos(REPORT_EVERY)) {
            return Some((public, None));
        }
        call.reported = Some(t);
        let report = DataReport {
            carrier: Carrier::Gre,
            subject: call_subject(key.client, key.server, public, call),
            first_out: Instant::from_nanos(first_out),
            packets_out: call.packets_out,
            packets_in: call.packets_in,
            last_in: call.last_in.map(Instant::from_nanos),
            last_ike_in: None,
        };
        Some((public, Some(Observation::Data(report))))
    }

    /// Inbound GRE with our public Call ID at `now`: the client and its own Call ID, and the
    /// call's first answer for the diagnosis.
    fn gre_in(&mut self, key: InKey, bytes: usize, now: Instant) -> Option<(Ipv4Addr, u16, Option<Observation>)> {
        let conn = *self.inbound.get(&key)?;
        let c = self.conns.get_mut(&conn)?;
        let public = c.public;
        let call = c.calls.iter_mut().find(|x| x.public_cid == key.public_cid)?;
        call.bytes_in += bytes as u64;
        call.packets_in += 1;
        let first = call.last_in.is_none();
        call.last_in = Some(now.as_nanos());
        let answered = first.then(|| Observation::DataAnswered {
            kind: FindingKind::GreOneWay,
            subject: call_subject(conn.client, conn.server, public, call),
        });
        Some((conn.client, call.client_cid, answered))
    }

    /// The diagnosis's view of result codes the server sent on control connection `conn`.
    fn results(&self, conn: ConnKey, public: Ipv4Addr, results: &[ResultSeen]) -> Vec<Observation> {
        let c = self.conns.get(&conn);
        results
            .iter()
            .map(|r| {
                let b = r.body;
                let be = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
                // OCRP: Call ID, Peer's Call ID, result, error, cause (§2.8); CDN: Call ID,
                // result, error, cause (§2.13).
                let (call, result, error, cause) = match r.message {
                    PptpMessage::OutgoingCallReply => {
                        let call = c.and_then(|c| c.calls.iter().find(|x| x.public_cid == be(2)));
                        (call.copied(), b[4], b[5], be(6))
                    }
                    PptpMessage::CallDisconnectNotify => {
                        let call = c.and_then(|c| c.ended).filter(|x| x.server_cid == Some(be(0)));
                        (call, b[2], b[3], be(4))
                    }
                };
                let mut subject = Subject {
                    protocol: Protocol::Pptp,
                    client: conn.client,
                    server: conn.server,
                    public: Some(public),
                    ids: None,
                    ports: None,
                };
                subject.ids = call.map(|x| {
                    let server_call_id = x.server_cid.unwrap_or(be(0));
                    TunnelIds::Pptp { client_call_id: x.client_cid, public_call_id: x.public_cid, server_call_id }
                });
                Observation::CallResult(CallResult { subject, message: r.message, result, error, cause })
            })
            .collect()
    }

    /// The client of the call whose outbound GRE to `server` carries `server_cid` and leaves
    /// from `public` (ICMP errors quote our outbound GRE).
    fn client_of_outbound(&self, public: Ipv4Addr, server: Ipv4Addr, server_cid: u16) -> Option<Ipv4Addr> {
        self.outbound
            .iter()
            .find(|(k, port)| {
                k.server == server
                    && k.server_cid == server_cid
                    && self
                        .conns
                        .get(&ConnKey { client: k.client, client_port: **port, server })
                        .is_some_and(|c| c.public == public)
            })
            .map(|(k, _)| k.client)
    }

    /// The control connection ALG on a TCP segment between a client and port 1723: rewrites
    /// Call IDs in the payload and fixes the TCP checksum. `Err` drops the segment.
    #[cold]
    #[inline(never)]
    fn control(&mut self, cx: &mut Cx<'_>, napt: &NaptPacket, packet: &mut [u8]) -> Result<(), DropReason> {
        let mut ip = Ipv4Packet::new_unchecked(&mut *packet);
        let l4 = ip.payload_mut();
        let Ok(tcp) = TcpPacket::new_checked(&*l4) else { return Err(DropReason::Malformed) };
        let (thl, seq, fl, check) = (tcp.header_len(), tcp.seq(), tcp.flags(), tcp.checksum());
        let conn = ConnKey { client: napt.peers.client, client_port: napt.client_port, server: napt.peers.server };
        let mut s = Segment {
            conn,
            public: napt.peers.public,
            from_client: napt.from == Side::Lan,
            rewrites: Vec::new(),
            results: Vec::new(),
            out: &mut *cx.out,
        };
        let r = self.segment(&mut s, seq, &mut l4[thl..]);
        if !s.rewrites.is_empty() {
            let mut c = check;
            for w in &s.rewrites {
                c = natpass_wire::checksum::update_bytes(c, thl + w.at, w.old, w.new);
            }
            TcpPacket::new_unchecked(l4).set_checksum(c);
        }
        if !s.results.is_empty() {
            let results = core::mem::take(&mut s.results);
            for obs in self.results(conn, napt.peers.public, &results) {
                cx.observe(obs);
            }
        }
        if r.is_ok() && fl & (flags::FIN | flags::RST) != 0 {
            self.end_connection(conn, cx.out);
        }
        r
    }

    fn translate_gre(&mut self, cx: &mut Cx<'_>, side: Side, flow: &Flow, packet: &mut [u8]) -> Verdict {
        let ip = Ipv4Packet::new_unchecked(&*packet);
        if ip.frag_offset() != 0 {
            return Verdict::Drop(DropReason::FragmentDropped);
        }
        let call_id = match GrePacket::new_checked(ip.payload()) {
            Ok(g) if g.version() == 1 => match g.call_id() {
                Some(c) => c,
                None => return Verdict::Drop(DropReason::Malformed),
            },
            Ok(_) => return Verdict::Drop(DropReason::UnsupportedProtocol),
            Err(_) => return Verdict::Drop(DropReason::Malformed),
        };
        let bytes = usize::from(ip.total_len());
        let mut ip = Ipv4Packet::new_unchecked(&mut *packet);
        let obs = match side {
            Side::Lan => {
                let key = OutKey { client: flow.src, server: flow.dst, server_cid: call_id };
                let Some((public, obs)) = self.gre_out(key, bytes, cx.now) else {
                    return self.unknown_call(cx, side, flow, call_id);
                };
                ip.set_src(public);
                obs
            }
            Side::Wan => {
                let key = InKey { public: flow.dst, server: flow.src, public_cid: call_id };
                let Some((client, client_cid, obs)) = self.gre_in(key, bytes, cx.now) else {
                    return self.unknown_call(cx, side, flow, call_id);
                };
                GrePacket::new_unchecked(ip.payload_mut()).set_call_id(client_cid);
                ip.set_dst(client);
                obs
            }
        };
        ip.decrement_ttl();
        if let Some(obs) = obs {
            cx.observe(obs);
        }
        Verdict::Forward(side.other())
    }

    /// GRE whose Call ID no call has: dropped, and told to the diagnosis.
    #[cold]
    fn unknown_call(&self, cx: &mut Cx<'_>, side: Side, flow: &Flow, call_id: u16) -> Verdict {
        let g = match side {
            Side::Lan => GreUnknown {
                from_client: true,
                client: Some(flow.src),
                at: ServerAtPublic {
                    public: cx
                        .table
                        .paired_ext(flow.src)
                        .or(cx.config.public_addrs.first().copied())
                        .unwrap_or(flow.src),
                    server: flow.dst,
                },
                call_id,
                control_seen: self.conns.keys().any(|k| k.client == flow.src && k.server == flow.dst),
            },
            Side::Wan => GreUnknown {
                from_client: false,
                client: None,
                at: ServerAtPublic { public: flow.dst, server: flow.src },
                call_id,
                control_seen: self.conns.keys().any(|k| k.server == flow.src),
            },
        };
        cx.observe(Observation::GreUnknown(g));
        Verdict::Drop(DropReason::GreUnknownCallId)
    }
}

/// A call as the diagnosis names it.
fn call_subject(client: Ipv4Addr, server: Ipv4Addr, public: Ipv4Addr, call: &Call) -> Subject {
    Subject { protocol: Protocol::Pptp, client, server, public: Some(public), ids: Some(call.ids()), ports: None }
}

fn down(key: ConnKey, call: &Call, server_cid: u16) -> Event {
    Event::TunnelDown {
        protocol: Protocol::Pptp,
        client: key.client,
        server: key.server,
        ids: TunnelIds::Pptp {
            client_call_id: call.client_cid,
            public_call_id: call.public_cid,
            server_call_id: server_cid,
        },
        bytes_out: call.bytes_out,
        bytes_in: call.bytes_in,
    }
}

impl VpnProtocol for Pptp {
    fn switch(&self) -> Protocol {
        Protocol::Pptp
    }

    fn claims(&self, protocol: IpProtocol, a: u16, b: u16) -> bool {
        match protocol {
            IpProtocol::GRE => true,
            IpProtocol::TCP => a == CONTROL_PORT || b == CONTROL_PORT,
            _ => false,
        }
    }

    fn ports(&self) -> &'static [u16] {
        &[CONTROL_PORT]
    }

    /// GRE is translated here; the control connection rides NAPT.
    fn packet(&mut self, cx: &mut Cx<'_>, side: Side, flow: &Flow, packet: &mut [u8]) -> Option<Verdict> {
        (flow.protocol == IpProtocol::GRE).then(|| self.translate_gre(cx, side, flow, packet))
    }

    fn napt_packet(&mut self, cx: &mut Cx<'_>, napt: &NaptPacket, packet: &mut [u8]) -> Result<(), DropReason> {
        if napt.protocol == IpProtocol::TCP && napt.server_port == CONTROL_PORT {
            self.control(cx, napt, packet)
        } else {
            Ok(())
        }
    }

    fn icmp_error_client(&self, quoted: &QuotedDatagram<&[u8]>) -> Option<Result<Ipv4Addr, DropReason>> {
        if quoted.protocol() != IpProtocol::GRE {
            return None;
        }
        let server_cid = gre::quoted_call_id(quoted.transport())?;
        Some(self.client_of_outbound(quoted.src(), quoted.dst(), server_cid).ok_or(DropReason::IcmpErrorNoSession))
    }

    /// Every call (GRE has no idle clock of its own here: 0).
    fn tunnels(&self, _now: Instant, out: &mut Vec<TunnelInfo>) {
        for (k, conn) in &self.conns {
            for call in &conn.calls {
                out.push(TunnelInfo {
                    protocol: Protocol::Pptp,
                    kind: "PPTP call (GRE)",
                    client: k.client.into(),
                    server: k.server.into(),
                    public: Some(conn.public.into()),
                    ids: TunnelIds::Pptp {
                        client_call_id: call.client_cid,
                        public_call_id: call.public_cid,
                        server_call_id: call.server_cid.unwrap_or(0),
                    },
                    bytes_out: call.bytes_out,
                    bytes_in: call.bytes_in,
                    idle_secs: 0,
                    state: if call.server_cid.is_some() { "up" } else { "call requested" },
                });
            }
        }
    }

    fn clear(&mut self) -> usize {
        let n = self.conns.values().map(|c| c.calls.len()).sum();
        self.conns.clear();
        self.inbound.clear();
        self.outbound.clear();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EngineConfig;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
    const SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
    const PUBLIC: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
    const CONN: ConnKey = ConnKey { client: CLIENT, client_port: 40000, server: SERVER };

    /// An Outgoing-Call-Request (RFC 2637 §2.7) with the client's Call ID.
    fn ocrq(call_id: u16) -> Vec<u8> {
        let mut m = vec![0u8; 168];
        m[0..2].copy_from_slice(&168u16.to_be_bytes());
        m[2..4].copy_from_slice(&1u16.to_be_bytes());
        m[4..8].copy_from_slice(&0x1a2b_3c4du32.to_be_bytes());
        m[8..10].copy_from_slice(&7u16.to_be_bytes());
        m[12..14].copy_from_slice(&call_id.to_be_bytes());
        m
    }

    /// An Outgoing-Call-Reply (RFC 2637 §2.8): the server's Call ID and the peer's.
    fn ocrp(server_cid: u16, peer_cid: u16) -> Vec<u8> {
        let mut m = vec![0u8; 32];
        m[0..2].copy_from_slice(&32u16.to_be_bytes());
        m[2..4].copy_from_slice(&1u16.to_be_bytes());
        m[4..8].copy_from_slice(&0x1a2b_3c4du32.to_be_bytes());
        m[8..10].copy_from_slice(&8u16.to_be_bytes());
        m[12..14].copy_from_slice(&server_cid.to_be_bytes());
        m[14..16].copy_from_slice(&peer_cid.to_be_bytes());
        m[16] = 1;
        m
    }

    fn feed(p: &mut Pptp, out: &mut Output, from_client: bool, seq: u32, payload: &mut [u8]) -> Vec<Rewrite> {
        let mut s = Segment { conn: CONN, public: PUBLIC, from_client, rewrites: Vec::new(), results: Vec::new(), out };
        p.segment(&mut s, seq, payload).unwrap();
        s.rewrites
    }

    #[test]
    fn a_call_binds_gre_both_ways() {
        let mut p = Pptp::new(1);
        let mut out = Output::new(&EngineConfig::default(), Instant::ZERO);
        let mut req = ocrq(0x0102);
        // The client's own Call ID is free: it is kept.
        assert!(feed(&mut p, &mut out, true, 1000, &mut req).is_empty());
        let mut rep = ocrp(0x0777, 0x0102);
        let _ = feed(&mut p, &mut out, false, 5000, &mut rep);
        assert!(matches!(
            out.pop_event(),
            Some(Event::TunnelUp { ids: TunnelIds::Pptp { server_call_id: 0x0777, .. }, .. })
        ));
        assert_eq!(p.calls(), 1);
        let gre_out = OutKey { client: CLIENT, server: SERVER, server_cid: 0x0777 };
        assert_eq!(p.gre_out(gre_out, 100, Instant::ZERO).map(|g| g.0), Some(PUBLIC));
        let gre_in = InKey { public: PUBLIC, server: SERVER, public_cid: 0x0102 };
        assert_eq!(p.gre_in(gre_in, 100, Instant::ZERO).map(|g| (g.0, g.1)), Some((CLIENT, 0x0102)));
        assert_eq!(p.client_of_outbound(PUBLIC, SERVER, 0x0777), Some(CLIENT));
    }

    #[test]
    fn a_taken_call_id_is_renumbered_and_restored() {
        let mut p = Pptp::new(1);
        let mut out = Output::new(&EngineConfig::default(), Instant::ZERO);
        let other = ConnKey { client: Ipv4Addr::new(192, 168, 1, 11), ..CONN };
        let mut s = Segment {
            conn: other,
            public: PUBLIC,
            from_client: true,
            rewrites: Vec::new(),
            results: Vec::new(),
            out: &mut out,
        };
        p.segment(&mut s, 1, &mut ocrq(0x0102)).unwrap();
        // The second client's Call ID 0x0102 is taken at this public address and server.
        let mut req = ocrq(0x0102);
        let rw = feed(&mut p, &mut out, true, 1000, &mut req);
        assert_eq!(rw.len(), 1);
        let public_cid = u16::from_be_bytes([req[12], req[13]]);
        assert_ne!(public_cid, 0x0102);
        assert_eq!(public_cid & 0xff00, 0x0100, "the high byte is kept");
        // The server's reply names the public Call ID; the client sees its own again.
        let mut rep = ocrp(0x0888, public_cid);
        let _ = feed(&mut p, &mut out, false, 5000, &mut rep);
        assert_eq!(u16::from_be_bytes([rep[14], rep[15]]), 0x0102);
        // A retransmission of the request is rewritten the same way.
        let mut again = ocrq(0x0102);
        let rw = feed(&mut p, &mut out, true, 1000, &mut again);
        assert_eq!(rw.len(), 1, "the byte that differs, again");
        assert_eq!(u16::from_be_bytes([again[12], again[13]]), public_cid);
    }

    #[test]
    fn a_gap_in_the_stream_drops_the_segment() {
        let mut p = Pptp::new(1);
        let mut out = Output::new(&EngineConfig::default(), Instant::ZERO);
        let _ = feed(&mut p, &mut out, true, 1000, &mut ocrq(1)[..100]);
        let mut s = Segment {
            conn: CONN,
            public: PUBLIC,
            from_client: true,
            rewrites: Vec::new(),
            results: Vec::new(),
            out: &mut out,
        };
        assert_eq!(p.segment(&mut s, 1200, &mut [0u8; 10]), Err(DropReason::PptpOutOfOrder));
    }

    #[test]
    fn the_end_of_the_control_connection_ends_its_calls() {
        let mut p = Pptp::new(1);
        let mut out = Output::new(&EngineConfig::default(), Instant::ZERO);
        let _ = feed(&mut p, &mut out, true, 1000, &mut ocrq(5));
        let _ = feed(&mut p, &mut out, false, 5000, &mut ocrp(9, 5));
        let _ = out.pop_event();
        p.end_connection(CONN, &mut out);
        assert!(matches!(out.pop_event(), Some(Event::TunnelDown { protocol: Protocol::Pptp, .. })));
        assert_eq!(p.calls(), 0);
        assert!(p.gre_out(OutKey { client: CLIENT, server: SERVER, server_cid: 9 }, 1, Instant::ZERO).is_none());
    }
}
