//! The 160-byte message buffers of selftest RPCs (requests posted on the
//! lazy portals, replies sunk on portal 52, requests and replies sent),
//! kept and reused so that an RPC allocates nothing.
//!
//! Each buffer is a one-fragment [`PayloadSpan`]: an MD over it is a clone
//! (a reference count). Its owner gives it back when it is logically done,
//! even while an MD or an LND may still hold a clone; [`MsgBufs::take`] hands
//! out only a buffer nobody else holds any more ([`PayloadSpan::is_unique`]),
//! so a late LND write can never land in a reused buffer.

use std::collections::VecDeque;

use lnd_api::{BufMut, BufRef, IoBuf, PayloadSpan};

use super::wire::{ByteOrder, SrpcMsg, SRPC_MSG_SIZE};

/// A bulk buffer (a test unit's BRW source or sink, a server pool buffer)
/// of `len` bytes, every page written once.
///
/// Zero-filled memory from the allocator is mapped to the kernel's shared
/// zero page until written: a BRW WRITE with `check=none` would then send
/// the same cache-hot 4 KiB page over and over, and a benchmark would
/// measure a copy that never touches memory. Upstream's buffers are real
/// pages (`alloc_page`), so ours are too. The byte is arbitrary (not zero,
/// so that the fill cannot be elided). It starts on a page, as upstream's
/// do, wherever the allocator would have put it ([`IoBuf::page_aligned`]).
pub(super) fn bulk_buf(len: usize) -> IoBuf {
    IoBuf::page_aligned(len, BULK_FILL)
}

/// What [`bulk_buf`] fills a new buffer with.
pub(super) const BULK_FILL: u8 = 0x5a;

/// Free message buffers, oldest first.
#[derive(Debug, Default)]
pub(super) struct MsgBufs {
    free: VecDeque<PayloadSpan>,
    /// Buffers made so far (diagnostics and tests).
    made: usize,
}

impl MsgBufs {
    /// A buffer that nobody else holds: the oldest free one that is no
    /// longer shared, or a new one.
    pub(super) fn take(&mut self) -> PayloadSpan {
        for _ in 0..self.free.len() {
            let Some(b) = self.free.pop_front() else {
                break;
            };
            if b.is_unique() {
                return b;
            }
            // Still in an MD or an LND: look again later.
            self.free.push_back(b);
        }
        self.made += 1;
        PayloadSpan::from(IoBuf::zeroed(SRPC_MSG_SIZE))
    }

    /// A buffer holding `msg`.
    #[cfg(test)]
    pub(super) fn with(&mut self, msg: &[u8; SRPC_MSG_SIZE]) -> PayloadSpan {
        let b = self.take();
        let written = b.write_at(0, msg);
        debug_assert_eq!(written, Ok(SRPC_MSG_SIZE), "a taken buffer is free");
        b
    }

    /// A buffer holding `msg` (little-endian), written in place: no copy
    /// through a stack array.
    pub(super) fn emit(&mut self, msg: &SrpcMsg) -> PayloadSpan {
        let b = self.take();
        let done = match bytes_mut(&b) {
            Some(mut g) => match <&mut [u8; SRPC_MSG_SIZE]>::try_from(&mut g[..]) {
                Ok(out) => {
                    msg.emit_into(ByteOrder::Little, out);
                    true
                }
                Err(_) => false,
            },
            None => false,
        };
        if done {
            return b;
        }
        // Not reached: a taken buffer is one free fragment of the size.
        let written = b.write_at(0, &msg.emit());
        debug_assert_eq!(written, Ok(SRPC_MSG_SIZE), "a taken buffer is free");
        b
    }

    /// Gives a buffer back; it is reused once nothing else holds it.
    pub(super) fn give(&mut self, b: PayloadSpan) {
        if b.len() == SRPC_MSG_SIZE {
            self.free.push_back(b);
        }
    }

    /// Buffers made so far.
    pub(super) fn made(&self) -> usize {
        self.made
    }
}

/// The first `SRPC_MSG_SIZE` bytes of `b`, copied out (no allocation).
#[cfg(test)]
pub(super) fn read_msg(b: &PayloadSpan) -> Result<[u8; SRPC_MSG_SIZE], lnd_api::Busy> {
    let mut out = [0u8; SRPC_MSG_SIZE];
    b.read_at(0, &mut out)?;
    Ok(out)
}

/// The bytes of a one-fragment span (every selftest buffer is one), for
/// reading; `None` when it is empty, in pieces or busy.
pub(super) fn bytes(b: &PayloadSpan) -> Option<BufRef<'_>> {
    let mut pieces = b.pieces();
    let first = pieces.next()?;
    pieces
        .next()
        .is_none()
        .then(|| first.borrow().ok())
        .flatten()
}

/// [`bytes`] for writing.
pub(super) fn bytes_mut(b: &PayloadSpan) -> Option<BufMut<'_>> {
    let mut pieces = b.pieces();
    let first = pieces.next()?;
    pieces
        .next()
        .is_none()
        .then(|| first.borrow_mut().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message emitted in place into a reused buffer is exactly its
    /// bytes: what the buffer held before (a longer message) is gone.
    #[test]
    fn a_message_emitted_in_place_overwrites_the_whole_buffer() {
        use crate::wire::Body;
        let mut bufs = MsgBufs::default();
        let old = bufs.with(&[0xFF; SRPC_MSG_SIZE]);
        bufs.give(old);
        let msg = SrpcMsg::new(
            0,
            Body::PingReply {
                status: 0,
                magic: 0xeeb0_f00d,
                seq: 42,
            },
        );
        let b = bufs.emit(&msg);
        assert_eq!(bufs.made(), 1, "the buffer given back was reused");
        assert_eq!(read_msg(&b).expect("free"), msg.emit());
        let (parsed, _) = SrpcMsg::parse(&read_msg(&b).expect("free")).expect("parses");
        assert_eq!(parsed, msg);
    }

    #[test]
    fn a_buffer_is_reused_only_when_nothing_else_holds_it() {
        let mut bufs = MsgBufs::default();
        let a = bufs.with(&[7; SRPC_MSG_SIZE]);
        assert_eq!(read_msg(&a).expect("free"), [7; SRPC_MSG_SIZE]);
        let md = a.clone(); // an MD or an LND still holds it
        bufs.give(a);
        let b = bufs.take();
        assert_eq!(bufs.made(), 2, "the shared buffer was not handed out");
        drop(md);
        bufs.give(b);
        let c = bufs.take();
        let d = bufs.take();
        assert_eq!(bufs.made(), 2, "both came back once unshared");
        assert!(c.is_unique() && d.is_unique());
        assert!(!std::ptr::eq(c.frags(), d.frags()));
    }
}
