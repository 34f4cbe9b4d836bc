//! Plain counters the engine keeps; the control plane reads them, nothing locks.

use crate::diagnosis::FindingKind;
use crate::verdict::{DropReason, Side};

/// Engine counters since start.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Packets received, by ingress side (`[lan, wan]`).
    pub received: [u64; 2],
    /// Packets forwarded, by egress side (`[lan, wan]`).
    pub forwarded: [u64; 2],
    /// Bytes forwarded, by egress side.
    pub forwarded_bytes: [u64; 2],
    /// Drops by reason, indexed like [`DropReason::ALL`].
    pub drops: Vec<u64>,
    /// Packets sent back into the LAN through a public address (RFC 4787 REQ-9).
    pub hairpinned: u64,
    /// ICMP errors the router generated.
    pub icmp_errors_sent: u64,
    /// ICMP errors not generated because of the rate limit.
    pub icmp_errors_rate_limited: u64,
    /// Out-of-order fragments held until their first fragment came.
    pub fragments_held: u64,
    /// Held fragments released after their first fragment came.
    pub fragments_released: u64,
    /// Fragments made by the router to fit an egress MTU.
    pub fragments_created: u64,
    /// IP identifications rewritten so that fragmented datagrams of different LAN hosts do not
    /// share one on the same public address (RFC 6864 §5.3.1).
    pub ip_ids_rewritten: u64,
    /// Events not queued because the event queue was full.
    pub events_lost: u64,
    /// Findings made (new, or found again after they cleared), by kind, indexed like
    /// [`FindingKind::ALL`].
    pub findings: [u64; FindingKind::COUNT],
}

impl Stats {
    pub(crate) fn new() -> Self {
        Self { drops: vec![0; DropReason::COUNT], ..Default::default() }
    }

    /// The count for one drop reason.
    pub fn drop_count(&self, reason: DropReason) -> u64 {
        self.drops.get(reason as usize).copied().unwrap_or(0)
    }

    /// Every drop reason with its count, in declaration order.
    pub fn drops_by_reason(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().copied().zip(self.drops.iter().copied())
    }

    #[inline]
    pub(crate) fn count_drop(&mut self, reason: DropReason) {
        // Declaration order is counter order: `as usize` is the index.
        if let Some(c) = self.drops.get_mut(reason as usize) {
            *c += 1;
        }
    }

    /// The count of findings of one kind.
    pub fn finding_count(&self, kind: FindingKind) -> u64 {
        self.findings.get(kind as usize).copied().unwrap_or(0)
    }

    /// Every finding kind with its count, in declaration order.
    pub fn findings_by_kind(&self) -> impl Iterator<Item = (FindingKind, u64)> + '_ {
        FindingKind::ALL.iter().copied().zip(self.findings.iter().copied())
    }

    pub(crate) fn count_finding(&mut self, kind: FindingKind) {
        if let Some(c) = self.findings.get_mut(kind as usize) {
            *c += 1;
        }
    }

    #[inline]
    pub(crate) fn count_forward(&mut self, side: Side, bytes: usize) {
        let i = side as usize;
        self.forwarded[i] += 1;
        self.forwarded_bytes[i] += bytes as u64;
    }
}
