//! Memory that crosses the plugin boundary by pointer and length, never by copy.
//!
//! An [`IoBuf`] is a reference-counted, FFI-safe view of a heap buffer: the
//! host keeps the application's MD memory in `IoBuf`s and hands an LND a
//! [`Payload`] (a list of fragments, the kernel's `kiov`) that points into it.
//! The LND reads from it to send and writes into it to receive, straight from
//! and to the socket or the registered memory.
//!
//! Access goes through guards that enforce Rust's aliasing rules at run time,
//! per underlying allocation: any number of [`BufRef`]s, or one [`BufMut`].
//! A conflicting borrow fails instead of aliasing, so the API is sound even if
//! a host or an LND breaks the MD contract (an application touching an MD while
//! LNet uses it gets [`Busy`], not a data race).

use std::fmt;
use std::ops::{Deref, DerefMut, Range};
use std::sync::atomic::{AtomicIsize, Ordering};

use abi_stable::std_types::{RArc, RVec};
use abi_stable::StableAbi;

/// The buffer is borrowed in a conflicting way (written while read, or read
/// while written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

impl fmt::Display for Busy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("buffer is in use by another reader or writer")
    }
}

impl std::error::Error for Busy {}

/// The shared allocation behind one or more [`IoBuf`]s.
#[repr(C)]
#[derive(StableAbi)]
struct BufOwner {
    /// Owns the memory; never touched again after construction except to drop.
    data: RVec<u8>,
    /// `data`'s heap pointer, taken once from a unique borrow.
    ptr: *mut u8,
    /// Length of the allocation's initialised part.
    len: usize,
    /// Borrow state: `n > 0` readers, `-1` one writer, 0 free.
    borrow: AtomicIsize,
}

// SAFETY: the raw pointer is only dereferenced under the borrow protocol of
// `borrow` (shared reads or one exclusive write), and the memory it points to
// is owned by `data`, which lives as long as the owner.
unsafe impl Send for BufOwner {}
// SAFETY: as above; all mutation goes through the atomic borrow flag.
unsafe impl Sync for BufOwner {}

/// A reference-counted view of `len` bytes at `offset` in a shared allocation.
#[repr(C)]
#[derive(StableAbi, Clone)]
pub struct IoBuf {
    owner: RArc<BufOwner>,
    offset: usize,
    len: usize,
}

impl fmt::Debug for IoBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoBuf")
            .field("offset", &self.offset)
            .field("len", &self.len)
            .finish()
    }
}

impl IoBuf {
    /// Takes ownership of `v` (no copy).
    pub fn from_vec(v: Vec<u8>) -> Self {
        let mut data = RVec::from(v);
        let ptr = data.as_mut_ptr();
        let len = data.len();
        IoBuf {
            owner: RArc::new(BufOwner {
                data,
                ptr,
                len,
                borrow: AtomicIsize::new(0),
            }),
            offset: 0,
            len,
        }
    }

    /// A zero-filled buffer of `len` bytes.
    pub fn zeroed(len: usize) -> Self {
        Self::from_vec(vec![0; len])
    }

    /// Length of this view in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether this view is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A sub-view of `range` (relative to this view); `None` when out of bounds.
    pub fn slice(&self, range: Range<usize>) -> Option<IoBuf> {
        if range.start > range.end || range.end > self.len {
            return None;
        }
        Some(IoBuf {
            owner: self.owner.clone(),
            offset: self.offset + range.start,
            len: range.end - range.start,
        })
    }

    /// Whether two views share their allocation.
    pub fn same_allocation(&self, other: &IoBuf) -> bool {
        std::ptr::eq(&*self.owner, &*other.owner)
    }

    /// Borrows the bytes for reading.
    pub fn borrow(&self) -> Result<BufRef<'_>, Busy> {
        let flag = &self.owner.borrow;
        let mut cur = flag.load(Ordering::Relaxed);
        loop {
            if cur < 0 {
                return Err(Busy);
            }
            match flag.compare_exchange_weak(cur, cur + 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Ok(BufRef { buf: self }),
                Err(now) => cur = now,
            }
        }
    }

    /// Borrows the bytes for writing.
    pub fn borrow_mut(&self) -> Result<BufMut<'_>, Busy> {
        self.owner
            .borrow
            .compare_exchange(0, -1, Ordering::Acquire, Ordering::Relaxed)
            .map(|_| BufMut { buf: self })
            .map_err(|_| Busy)
    }

    /// A copy of the bytes.
    pub fn to_vec(&self) -> Result<Vec<u8>, Busy> {
        Ok(self.borrow()?.to_vec())
    }

    fn raw(&self) -> (*mut u8, usize) {
        debug_assert!(self.offset + self.len <= self.owner.len);
        // SAFETY: `offset + len <= owner.len` is an invariant of every
        // constructor and of `slice`, so the pointer stays inside the allocation.
        (unsafe { self.owner.ptr.add(self.offset) }, self.len)
    }
}

/// A shared borrow of an [`IoBuf`]'s bytes.
pub struct BufRef<'a> {
    buf: &'a IoBuf,
}

impl Deref for BufRef<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let (p, n) = self.buf.raw();
        // SAFETY: the borrow flag counts this reader, so no writer exists while
        // the slice lives; the memory is valid for `n` bytes (see `raw`).
        unsafe { std::slice::from_raw_parts(p, n) }
    }
}

impl Drop for BufRef<'_> {
    fn drop(&mut self) {
        self.buf.owner.borrow.fetch_sub(1, Ordering::Release);
    }
}

/// An exclusive borrow of an [`IoBuf`]'s bytes.
pub struct BufMut<'a> {
    buf: &'a IoBuf,
}

impl Deref for BufMut<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let (p, n) = self.buf.raw();
        // SAFETY: this guard holds the exclusive borrow flag.
        unsafe { std::slice::from_raw_parts(p, n) }
    }
}

impl DerefMut for BufMut<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        let (p, n) = self.buf.raw();
        // SAFETY: this guard holds the exclusive borrow flag, and `&mut self`
        // makes the returned slice unique for its lifetime.
        unsafe { std::slice::from_raw_parts_mut(p, n) }
    }
}

impl Drop for BufMut<'_> {
    fn drop(&mut self) {
        self.buf.owner.borrow.store(0, Ordering::Release);
    }
}

/// A message payload: an ordered list of fragments (the kernel's `kiov`).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default)]
pub struct Payload {
    frags: RVec<IoBuf>,
}

impl Payload {
    /// An empty payload.
    pub fn new() -> Self {
        Payload { frags: RVec::new() }
    }

    /// A payload of one fragment.
    pub fn single(buf: IoBuf) -> Self {
        let mut frags = RVec::new();
        frags.push(buf);
        Payload { frags }
    }

    /// Appends a fragment.
    pub fn push(&mut self, buf: IoBuf) {
        if !buf.is_empty() {
            self.frags.push(buf);
        }
    }

    /// The fragments in order.
    pub fn frags(&self) -> &[IoBuf] {
        &self.frags
    }

    /// Total length in bytes.
    pub fn len(&self) -> usize {
        self.frags.iter().map(IoBuf::len).sum()
    }

    /// Whether the payload has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The part `offset..offset + len` of this payload, as a new fragment list
    /// sharing the same memory; `None` when out of bounds.
    pub fn sub(&self, offset: usize, len: usize) -> Option<Payload> {
        if offset.checked_add(len)? > self.len() {
            return None;
        }
        self.spans(offset, len)
            .map(|(f, r, _)| f.slice(r))
            .collect()
    }

    /// Borrows every fragment for reading (for a vectored write).
    pub fn borrow_all(&self) -> Result<Vec<BufRef<'_>>, Busy> {
        self.frags.iter().map(IoBuf::borrow).collect()
    }

    /// Borrows every fragment for writing (for a vectored read); fails with
    /// [`Busy`] when two fragments share an allocation.
    pub fn borrow_all_mut(&self) -> Result<Vec<BufMut<'_>>, Busy> {
        self.frags.iter().map(IoBuf::borrow_mut).collect()
    }

    /// The pieces of `offset..offset + len` (clipped to the payload): each
    /// fragment touched, the range inside it, and where that piece starts
    /// relative to `offset`.
    fn spans(
        &self,
        offset: usize,
        len: usize,
    ) -> impl Iterator<Item = (&IoBuf, Range<usize>, usize)> {
        let end = offset.saturating_add(len);
        let mut pos = 0;
        self.frags.iter().filter_map(move |f| {
            let (fs, fe) = (pos, pos + f.len());
            pos = fe;
            let (s, e) = (offset.max(fs), end.min(fe));
            (s < e).then(|| (f, s - fs..e - fs, s - offset))
        })
    }

    /// Copies `src` into the payload at `offset`; returns the bytes copied
    /// (fewer when the payload ends first).
    pub fn write_at(&self, offset: usize, src: &[u8]) -> Result<usize, Busy> {
        let mut done = 0;
        for (f, r, at) in self.spans(offset, src.len()) {
            let n = r.len();
            f.borrow_mut()?[r].copy_from_slice(&src[at..at + n]);
            done += n;
        }
        Ok(done)
    }

    /// Copies payload bytes starting at `offset` into `dst`; returns the bytes
    /// copied (fewer when the payload ends first).
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) -> Result<usize, Busy> {
        let mut done = 0;
        for (f, r, at) in self.spans(offset, dst.len()) {
            let n = r.len();
            dst[at..at + n].copy_from_slice(&f.borrow()?[r]);
            done += n;
        }
        Ok(done)
    }

    /// Copies all of `self` into `dst` (as far as `dst` reaches), fragment by
    /// fragment with no intermediate buffer; returns the bytes copied.
    pub fn copy_to(&self, dst: &Payload) -> Result<usize, Busy> {
        let mut off = 0;
        for f in self.frags.iter() {
            let n = dst.write_at(off, &f.borrow()?)?;
            off += n;
            if n < f.len() {
                break;
            }
        }
        Ok(off)
    }
}

impl FromIterator<IoBuf> for Payload {
    fn from_iter<T: IntoIterator<Item = IoBuf>>(iter: T) -> Self {
        let mut p = Payload::new();
        for b in iter {
            p.push(b);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrow_rules_are_enforced() {
        let b = IoBuf::from_vec(vec![1, 2, 3, 4]);
        let r1 = b.borrow().expect("first reader");
        let tail = b.slice(1..3).expect("in bounds");
        let r2 = tail.borrow().expect("second reader");
        assert_eq!(&*r2, &[2, 3]);
        assert_eq!(b.borrow_mut().err(), Some(Busy));
        drop((r1, r2));
        let mut w = b.borrow_mut().expect("writer when free");
        w[0] = 9;
        assert_eq!(b.borrow().err(), Some(Busy));
        drop(w);
        assert_eq!(b.to_vec().expect("free"), vec![9, 2, 3, 4]);
    }

    #[test]
    fn payload_sub_write_read_copy() {
        let a = IoBuf::zeroed(3);
        let b = IoBuf::zeroed(5);
        let p: Payload = [a.clone(), b.clone()].into_iter().collect();
        assert_eq!(p.len(), 8);
        assert_eq!(p.write_at(2, &[1, 2, 3, 4]).expect("free"), 4);
        assert_eq!(a.to_vec().expect("free"), vec![0, 0, 1]);
        assert_eq!(b.to_vec().expect("free"), vec![2, 3, 4, 0, 0]);
        let s = p.sub(1, 5).expect("in bounds");
        assert_eq!(s.frags().len(), 2);
        let mut out = [0u8; 5];
        assert_eq!(s.read_at(0, &mut out).expect("free"), 5);
        assert_eq!(out, [0, 1, 2, 3, 4]);
        assert!(p.sub(7, 2).is_none());
        let dst = Payload::single(IoBuf::zeroed(4));
        assert_eq!(s.copy_to(&dst).expect("free"), 4);
        assert_eq!(dst.frags()[0].to_vec().expect("free"), vec![0, 1, 2, 3]);
    }

    #[test]
    fn out_of_bounds_slices_are_refused() {
        let b = IoBuf::zeroed(4);
        assert!(b.slice(2..5).is_none());
        #[allow(clippy::reversed_empty_ranges)]
        let backwards = 3..2;
        assert!(b.slice(backwards).is_none());
        assert_eq!(b.slice(4..4).map(|s| s.len()), Some(0));
    }
}
