//! PPTP passthrough (RFC 2637): an ALG on the TCP 1723 control connection that translates the
//! client's (the PNS's) Call ID to a public Call ID unique per (public address, server), and
//! enhanced GRE (RFC 2637 §4.1) translated with it.
//!
//! Control messages are parsed from the TCP byte stream, so a message may span segments and
//! a segment may hold several. Call ID fields are rewritten in place (length-preserving) with
//! incremental TCP checksum updates. A retransmitted segment gets the same rewrites again; a
//! segment beyond a gap is dropped (TCP resends it) because its Call IDs could not be found.
//! A Call ID field split across two segments can only have its second byte rewritten, so
//! public Call IDs keep the client's high byte when they can.
//!
//! Calls: Outgoing-Call-Request (or Incoming-Call-Reply) allocates the public Call ID; the
//! server's reply (Outgoing-Call-Reply) names the server's Call ID, and GRE then flows: outbound
//! GRE carries the server's Call ID and needs only the address rewrite; inbound GRE carries the
//! public Call ID, which maps back to the client and its own Call ID. Call-Disconnect-Notify,
//! and the end of the control connection, end calls.

use std::collections::VecDeque;

use foldhash::fast::FixedState;
use hashbrown::HashMap;
use natpass_wire::pptp::{CallIdOwner, ControlMessageType};

use super::{Protocol, TunnelIds};
use crate::Event;
use crate::verdict::DropReason;

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
}

#[derive(Clone, Copy, Debug)]
struct Call {
    client_cid: u16,
    public_cid: u16,
    server_cid: Option<u16>,
    bytes_out: u64,
    bytes_in: u64,
}

#[derive(Clone, Debug)]
struct Conn {
    ext_ip: u32,
    streams: [Stream; 2],
    calls: Vec<Call>,
}

/// PPTP state of one engine.
pub(crate) struct PptpTable {
    /// Control connections by (client, client port, server).
    conns: HashMap<(u32, u16, u32), Conn, FixedState>,
    /// Inbound GRE: (public address, server, public Call ID) → (client, control connection port).
    inbound: HashMap<(u32, u32, u16), (u32, u16), FixedState>,
    /// Outbound GRE: (client, server, server Call ID) → control connection port.
    outbound: HashMap<(u32, u32, u16), u16, FixedState>,
}

impl PptpTable {
    /// Every call, for the tunnel table (GRE has no idle clock of its own here: 0).
    pub(crate) fn list(&self, out: &mut Vec<crate::TunnelInfo>) {
        for (&(client, _port, server), conn) in &self.conns {
            for call in &conn.calls {
                out.push(crate::TunnelInfo {
                    protocol: super::Protocol::Pptp,
                    kind: "PPTP call (GRE)",
                    client,
                    server,
                    public: conn.ext_ip,
                    ids: super::TunnelIds::Pptp {
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
}

/// A rewrite of two bytes at `at` in the TCP payload.
pub(crate) struct Rewrite {
    pub(crate) at: usize,
    pub(crate) old: [u8; 2],
    pub(crate) new: [u8; 2],
}

const RETAIN_REWRITES: usize = 32;

impl PptpTable {
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

    /// A public Call ID for `client_cid` free for (public address, server): the client's own
    /// when free, else one with the same high byte, else any.
    fn allocate(&self, ext_ip: u32, server: u32, client_cid: u16) -> Option<u16> {
        let taken = |c: u16| {
            self.inbound.contains_key(&(ext_ip, server, c))
                || self
                    .conns
                    .values()
                    .any(|k| k.ext_ip == ext_ip && k.calls.iter().any(|x| x.public_cid == c && x.server_cid.is_none()))
        };
        let hi = client_cid & 0xff00;
        std::iter::once(client_cid)
            .chain((0..=0xffu16).map(|lo| hi | lo))
            .chain((0..=0xffffu16).filter(|c| c & 0xff00 != hi))
            .find(|&c| !taken(c))
    }

    /// Processes the TCP payload of a control connection segment, rewriting Call IDs in
    /// `payload`. `from_client` tells the direction. Returns the rewrites done (for the TCP
    /// checksum) or the reason to drop the segment.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn segment(
        &mut self,
        client: u32,
        client_port: u16,
        server: u32,
        ext_ip: u32,
        from_client: bool,
        seq: u32,
        payload: &mut [u8],
        rewrites: &mut Vec<Rewrite>,
        events: &mut Vec<Event>,
    ) -> Result<(), DropReason> {
        if payload.is_empty() {
            return Ok(());
        }
        let key = (client, client_port, server);
        if !self.conns.contains_key(&key) {
            self.conns.insert(key, Conn { ext_ip, streams: Default::default(), calls: Vec::new() });
        }
        let dir = usize::from(!from_client);
        let (next, broken) = {
            let Some(c) = self.conns.get_mut(&key) else { return Ok(()) };
            let st = &mut c.streams[dir];
            (*st.next_seq.get_or_insert(seq), st.broken)
        };
        let ahead = seq.wrapping_sub(next) as i32;
        if ahead > 0 {
            return Err(DropReason::PptpOutOfOrder);
        }
        // Bytes already seen (a retransmission): the same rewrites again, byte by byte.
        let seen = (-i64::from(ahead)) as usize;
        if let Some(c) = self.conns.get(&key) {
            let upto = payload.len().min(seen);
            for &(at_seq, old, new) in &c.streams[dir].rewrites {
                for k in 0..2 {
                    let pos = at_seq.wrapping_add(k as u32).wrapping_sub(seq) as usize;
                    if pos < upto && payload[pos] == old[k] && old[k] != new[k] {
                        payload[pos] = new[k];
                        rewrites.push(Rewrite { at: pos, old: [old[k], 0], new: [new[k], 0] });
                    }
                }
            }
        }
        if broken {
            if let Some(c) = self.conns.get_mut(&key) {
                let end = seq.wrapping_add(payload.len() as u32);
                if (end.wrapping_sub(next) as i32) > 0 {
                    c.streams[dir].next_seq = Some(end);
                }
            }
            return Ok(());
        }
        if seen >= payload.len() {
            return Ok(());
        }
        for i in seen..payload.len() {
            self.byte(key, dir, ext_ip, seq.wrapping_add(i as u32), payload, i, rewrites, events);
        }
        if let Some(c) = self.conns.get_mut(&key) {
            c.streams[dir].next_seq = Some(seq.wrapping_add(payload.len() as u32));
        }
        Ok(())
    }

    /// One new byte of the stream at payload index `i`.
    #[allow(clippy::too_many_arguments)]
    fn byte(
        &mut self,
        key: (u32, u16, u32),
        dir: usize,
        ext_ip: u32,
        stream_seq: u32,
        payload: &mut [u8],
        i: usize,
        rewrites: &mut Vec<Rewrite>,
        events: &mut Vec<Event>,
    ) {
        let Some(c) = self.conns.get_mut(&key) else { return };
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
        // Is this byte the second byte of a Call ID field?
        let field = kind.and_then(|k| k.call_id_fields().iter().find(|f| f.0 + 1 == off).copied());
        if off > 9 && field.is_none() && kind.is_some_and(|k| k.call_id_fields().iter().any(|f| f.0 == off)) {
            // The first byte of a field: remember it in case the segment ends here.
            st.split_hi = Some(payload[i]);
        }
        let done = st.msg_len > 0 && st.msg_off >= st.msg_len;
        if done {
            st.msg_off = 0;
            st.msg_len = 0;
        }
        let (Some(kind), Some((_, owner))) = (kind, field) else { return };
        let hi = if i > 0 { payload[i - 1] } else { st.split_hi.unwrap_or(0) };
        let value = u16::from_be_bytes([hi, payload[i]]);
        let from_client = dir == 0;
        let Some(new) = self.field(key, ext_ip, kind, owner, from_client, value, events) else { return };
        if new == value {
            return;
        }
        let Some(c) = self.conns.get_mut(&key) else { return };
        let st = &mut c.streams[dir];
        let new_b = new.to_be_bytes();
        if i > 0 {
            let old = [payload[i - 1], payload[i]];
            payload[i - 1..=i].copy_from_slice(&new_b);
            rewrites.push(Rewrite { at: i - 1, old, new: new_b });
        } else if new_b[0] == hi {
            // Split field: only the low byte is in this segment.
            let old = [payload[i], 0];
            payload[i] = new_b[1];
            rewrites.push(Rewrite { at: i, old, new: [new_b[1], 0] });
        }
        st.rewrites.push_back((stream_seq.wrapping_sub(1), value.to_be_bytes(), new_b));
        if st.rewrites.len() > RETAIN_REWRITES {
            st.rewrites.pop_front();
        }
    }

    /// The new value of a Call ID field, with the call bookkeeping it implies.
    #[allow(clippy::too_many_arguments)]
    fn field(
        &mut self,
        key: (u32, u16, u32),
        ext_ip: u32,
        kind: ControlMessageType,
        owner: CallIdOwner,
        from_client: bool,
        value: u16,
        events: &mut Vec<Event>,
    ) -> Option<u16> {
        use ControlMessageType::*;
        let (client, port, server) = key;
        match (from_client, kind, owner) {
            // The client names a new call: a public Call ID for it.
            (true, OutgoingCallRequest | IncomingCallReply, CallIdOwner::Pns) => {
                let c = self.conns.get(&key)?;
                if let Some(x) = c.calls.iter().find(|x| x.client_cid == value) {
                    return Some(x.public_cid);
                }
                let public = self.allocate(ext_ip, server, value)?;
                let c = self.conns.get_mut(&key)?;
                c.calls.push(Call {
                    client_cid: value,
                    public_cid: public,
                    server_cid: None,
                    bytes_out: 0,
                    bytes_in: 0,
                });
                Some(public)
            }
            // The client's own Call ID in other messages (Call-Clear-Request).
            (true, _, CallIdOwner::Pns) => {
                let c = self.conns.get(&key)?;
                c.calls.iter().find(|x| x.client_cid == value).map(|x| x.public_cid)
            }
            // Incoming-Call-Reply also names the server's Call ID: GRE may flow.
            (true, IncomingCallReply, CallIdOwner::Pac) => {
                self.bind(key, ext_ip, None, value, events);
                Some(value)
            }
            // The server names our public Call ID: back to the client's.
            (false, OutgoingCallReply, CallIdOwner::Pns) => {
                let c = self.conns.get(&key)?;
                let call = c.calls.iter().find(|x| x.public_cid == value)?;
                let client_cid = call.client_cid;
                self.bind(key, ext_ip, Some(value), 0, events);
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
                self.end_call(key, value, events);
                Some(value)
            }
            (false, _, CallIdOwner::Pns) => {
                let c = self.conns.get(&key)?;
                c.calls.iter().find(|x| x.public_cid == value).map(|x| x.client_cid)
            }
            _ => {
                let _ = (client, port);
                Some(value)
            }
        }
    }

    /// A call's GRE may flow: index it both ways.
    fn bind(
        &mut self,
        key: (u32, u16, u32),
        ext_ip: u32,
        public: Option<u16>,
        server_cid: u16,
        events: &mut Vec<Event>,
    ) {
        let (client, port, server) = key;
        let Some(c) = self.conns.get_mut(&key) else { return };
        let call = match public {
            Some(p) => c.calls.iter_mut().find(|x| x.public_cid == p),
            None => c.calls.iter_mut().rev().find(|x| x.server_cid.is_none()),
        };
        let Some(call) = call else { return };
        if public.is_none() {
            call.server_cid = Some(server_cid);
        }
        let Some(s) = call.server_cid else { return };
        let call = *call;
        self.inbound.insert((ext_ip, server, call.public_cid), (client, port));
        self.outbound.insert((client, server, s), port);
        events.push(Event::TunnelUp {
            protocol: Protocol::Pptp,
            client,
            server,
            public: ext_ip,
            ids: TunnelIds::Pptp {
                client_call_id: call.client_cid,
                public_call_id: call.public_cid,
                server_call_id: s,
            },
        });
    }

    fn end_call(&mut self, key: (u32, u16, u32), server_cid: u16, events: &mut Vec<Event>) {
        let (client, _, server) = key;
        let Some(c) = self.conns.get_mut(&key) else { return };
        let ext_ip = c.ext_ip;
        let Some(pos) = c.calls.iter().position(|x| x.server_cid == Some(server_cid)) else { return };
        let call = c.calls.remove(pos);
        self.inbound.remove(&(ext_ip, server, call.public_cid));
        self.outbound.remove(&(client, server, server_cid));
        events.push(down(client, server, &call, server_cid));
    }

    /// The control connection ended (FIN, RST, expiry): its calls end with it.
    pub(crate) fn end_connection(&mut self, client: u32, port: u16, server: u32, events: &mut Vec<Event>) {
        let Some(c) = self.conns.remove(&(client, port, server)) else { return };
        for call in &c.calls {
            self.inbound.remove(&(c.ext_ip, server, call.public_cid));
            if let Some(s) = call.server_cid {
                self.outbound.remove(&(client, server, s));
                events.push(down(client, server, call, s));
            }
        }
    }

    /// Outbound GRE from `client` to `server` with the server's Call ID: the public address,
    /// or `None` when no call of that client uses it.
    pub(crate) fn gre_out(&mut self, client: u32, server: u32, server_cid: u16, bytes: usize) -> Option<u32> {
        let port = *self.outbound.get(&(client, server, server_cid))?;
        let c = self.conns.get_mut(&(client, port, server))?;
        if let Some(call) = c.calls.iter_mut().find(|x| x.server_cid == Some(server_cid)) {
            call.bytes_out += bytes as u64;
        }
        Some(c.ext_ip)
    }

    /// Inbound GRE to public `ext_ip` from `server` with our public Call ID: the client and its
    /// own Call ID.
    pub(crate) fn gre_in(&mut self, ext_ip: u32, server: u32, public_cid: u16, bytes: usize) -> Option<(u32, u16)> {
        let (client, port) = *self.inbound.get(&(ext_ip, server, public_cid))?;
        let c = self.conns.get_mut(&(client, port, server))?;
        let call = c.calls.iter_mut().find(|x| x.public_cid == public_cid)?;
        call.bytes_in += bytes as u64;
        Some((client, call.client_cid))
    }

    /// The client of the call whose outbound GRE to `server` carries `server_cid` and leaves
    /// from `ext_ip` (ICMP errors embed our outbound GRE).
    pub(crate) fn lan_for_outbound(&self, ext_ip: u32, server: u32, server_cid: u16) -> Option<u32> {
        self.outbound
            .iter()
            .find(|(k, port)| {
                k.1 == server
                    && k.2 == server_cid
                    && self.conns.get(&(k.0, **port, server)).is_some_and(|c| c.ext_ip == ext_ip)
            })
            .map(|(k, _)| k.0)
    }

    /// The public Call ID of `client`'s call `client_cid` towards `server`.
    pub(crate) fn public_call_id(&self, client: u32, server: u32, client_cid: u16) -> Option<u16> {
        self.conns
            .iter()
            .filter(|(k, _)| k.0 == client && k.2 == server)
            .find_map(|(_, c)| c.calls.iter().find(|x| x.client_cid == client_cid).map(|x| x.public_cid))
    }

    /// Forgets everything (the PPTP switch went off).
    pub(crate) fn clear(&mut self) {
        self.conns.clear();
        self.inbound.clear();
        self.outbound.clear();
    }
}

fn down(client: u32, server: u32, call: &Call, server_cid: u16) -> Event {
    Event::TunnelDown {
        protocol: Protocol::Pptp,
        client,
        server,
        ids: TunnelIds::Pptp {
            client_call_id: call.client_cid,
            public_call_id: call.public_cid,
            server_call_id: server_cid,
        },
        bytes_out: call.bytes_out,
        bytes_in: call.bytes_in,
    }
}
