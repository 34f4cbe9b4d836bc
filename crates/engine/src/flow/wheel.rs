//! A hashed timing wheel of one-second slots holding sessions in intrusive doubly linked
//! lists, with lazy expiry: the packet path only stamps `last_seen`; a sweep looks at a session
//! when the slot of its possible expiry comes round and re-files it if it was refreshed.
//! This is VPP NAT44-ED's "no scanning" idea with exact (±1 s) expiry for any timeout.

use super::session::Session;

/// No session: the end of a list.
pub(crate) const NIL: u32 = u32::MAX;
/// Slots in a wheel (seconds covered before a far expiry is re-filed).
pub(crate) const SLOTS: u64 = 4096;

/// One wheel. natpass keeps two: sessions that may be evicted first (unreplied, transitory)
/// and established ones (RFC 7857 §2.1 eviction order).
pub(crate) struct Wheel {
    heads: Vec<u32>,
    len: u32,
}

impl Wheel {
    pub(crate) fn new() -> Self {
        Self { heads: vec![NIL; SLOTS as usize], len: 0 }
    }

    /// Files session `idx` in the slot of second `at`.
    pub(crate) fn link(&mut self, sessions: &mut [Session], idx: u32, at: u64) {
        let slot = (at % SLOTS) as usize;
        let head = self.heads[slot];
        {
            let s = &mut sessions[idx as usize];
            s.wheel_prev = NIL;
            s.wheel_next = head;
            s.slot = slot as u16;
        }
        if head != NIL {
            sessions[head as usize].wheel_prev = idx;
        }
        self.heads[slot] = idx;
        self.len += 1;
    }

    /// Takes session `idx` out of this wheel.
    pub(crate) fn unlink(&mut self, sessions: &mut [Session], idx: u32) {
        let (prev, next, slot) = {
            let s = &sessions[idx as usize];
            (s.wheel_prev, s.wheel_next, s.slot)
        };
        if prev == NIL {
            self.heads[usize::from(slot)] = next;
        } else {
            sessions[prev as usize].wheel_next = next;
        }
        if next != NIL {
            sessions[next as usize].wheel_prev = prev;
        }
        self.len -= 1;
    }

    /// Detaches the whole list of the slot for second `at` and returns its first session.
    /// The caller walks `wheel_next` and re-files or frees every session in it.
    pub(crate) fn take_slot(&mut self, sessions: &[Session], at: u64) -> u32 {
        let slot = (at % SLOTS) as usize;
        let head = self.heads[slot];
        self.heads[slot] = NIL;
        let mut n = head;
        while n != NIL {
            self.len -= 1;
            n = sessions[n as usize].wheel_next;
        }
        head
    }

    /// The first session filed in the earliest slot from second `from` on, if any.
    pub(crate) fn first_from(&self, from: u64) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        (0..SLOTS).map(|i| self.heads[((from + i) % SLOTS) as usize]).find(|&h| h != NIL)
    }
}
