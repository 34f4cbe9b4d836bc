//! Where the link layer puts the frames it sends: a backend's transmit batch for one
//! interface (AF_PACKET's `sendmmsg` batch, later an AF_XDP ring), or a [`FrameQueue`].

use crate::offload::TxOffload;

/// One interface's transmit side, as the link layer sees it.
pub trait FrameSink {
    /// Appends a frame of `len` bytes: a zeroed area that `fill` writes. With `offload`, the
    /// backend asks the kernel or the NIC to finish the frame's checksum and cut it into
    /// segments; a backend that cannot must not be given super-frames (its [`crate::RxMeta`]
    /// never reports segmentation).
    fn push(&mut self, len: usize, offload: Option<TxOffload>, fill: impl FnOnce(&mut [u8]));

    /// Sends `frame`, the received frame being handled, already rewritten in place (Ethernet
    /// header and translated packet). A backend whose receive buffers can leave by the other
    /// interface as they are (AF_XDP with one UMEM for both) queues the buffer itself, with
    /// no copy; the default copies it like [`FrameSink::push`].
    fn push_in_place(&mut self, frame: &[u8], offload: Option<TxOffload>) {
        self.push(frame.len(), offload, |b| b.copy_from_slice(frame));
    }
}

/// A frame as a [`FrameQueue`] keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedFrame {
    /// The Ethernet frame.
    pub bytes: Vec<u8>,
    /// What it asks of the backend.
    pub offload: Option<TxOffload>,
}

/// A transmit queue that keeps each frame in a buffer of its own: for tests, and for drivers
/// that hand frames on one at a time.
#[derive(Clone, Debug, Default)]
pub struct FrameQueue {
    frames: Vec<QueuedFrame>,
}

impl FrameQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// The frames queued, oldest first.
    pub fn frames(&self) -> &[QueuedFrame] {
        &self.frames
    }

    /// Takes every frame out, oldest first.
    pub fn drain(&mut self) -> impl Iterator<Item = QueuedFrame> + '_ {
        self.frames.drain(..)
    }

    /// Frames queued.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

impl FrameSink for FrameQueue {
    fn push(&mut self, len: usize, offload: Option<TxOffload>, fill: impl FnOnce(&mut [u8])) {
        let mut bytes = vec![0u8; len];
        fill(&mut bytes);
        self.frames.push(QueuedFrame { bytes, offload });
    }
}
