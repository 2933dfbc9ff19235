//! Memory that crosses the plugin boundary by pointer and length, never by copy.
//!
//! An [`IoBuf`] is a reference-counted, FFI-safe view of a heap buffer: the
//! host keeps the application's MD memory in `IoBuf`s and hands an LND a
//! [`Payload`] (a list of fragments, the kernel's `kiov`) that points into it.
//! The LND reads from it to send and writes into it to receive, straight from
//! and to the socket or the registered memory.
//!
//! Since lnd-api 1.1 the host hands an LND a [`PayloadSpan`] instead: a byte
//! window (offset and length, as the kernel passes `kiov`, `offset`, `len`)
//! into a fragment list that the MD shares. Taking a span of an MD only bumps
//! reference counts, so a message costs no heap allocation.
//!
//! Access goes through guards that enforce Rust's aliasing rules at run time:
//! on one allocation, any number of [`BufRef`]s, or [`BufMut`]s of ranges
//! that do not overlap (since lnd-api 1.3; before, one `BufMut` per
//! allocation). A conflicting borrow fails instead of aliasing, so the API is
//! sound even if a host or an LND breaks the MD contract (an application
//! touching an MD while LNet uses it gets [`Busy`], not a data race), and two
//! LNDs landing two messages in disjoint parts of one MD both succeed.
//!
//! # The borrow word
//!
//! Each allocation has one atomic word, shared by every copy of this crate
//! in the process (the host's and each plugin's, of any 1.x version):
//! `0` free; `n > 0` that many readers; negative, written. Before 1.3 a
//! writer took the whole allocation with `0 → -1` and released it by
//! storing `0`. Since 1.3 a writer claims *stripes*: the allocation is cut
//! into [`WRITE_STRIPES`] equal parts, and the word holds the two top bits
//! set and one bit per claimed stripe (negative, so a 1.0–1.2 copy sees it
//! as written and refuses; `-1`, all stripes, is exactly what such a copy
//! stores for its whole-allocation write, so 1.3 sees that as taken
//! everywhere). Writes to disjoint ranges proceed together unless they
//! share a stripe (for a 1 MiB allocation, a 16.6 KiB part); overlapping
//! writes are always refused, and reads are refused while any part is
//! written (and writes while any reader holds the allocation), as before.

use std::fmt;
use std::ops::{Deref, DerefMut, Range};
use std::sync::atomic::{AtomicIsize, Ordering};

use abi_stable::std_types::{RArc, ROption, RVec};
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
    /// Borrow state: `n > 0` readers, 0 free, negative written (see the
    /// module docs: [`WRITE_MODE`] and one bit per written stripe).
    borrow: AtomicIsize,
}

/// The parts a written allocation is cut into for write borrows (one bit
/// each in the borrow word, under the two mode bits).
pub const WRITE_STRIPES: usize = 62;

/// The two top bits of the borrow word: set while any stripe is written.
const WRITE_MODE: isize = isize::MIN | (1 << 62);

/// The stripe bits of the borrow word.
const STRIPE_BITS: isize = !WRITE_MODE;

impl BufOwner {
    /// The stripe bits covering `start..end` (absolute, inside the
    /// allocation); 0 for an empty range.
    fn stripes(&self, start: usize, end: usize) -> isize {
        if start >= end || self.len == 0 {
            return 0;
        }
        let size = self.len.div_ceil(WRITE_STRIPES);
        let (first, last) = (start / size, (end - 1) / size);
        let (first, last) = (first.min(WRITE_STRIPES - 1), last.min(WRITE_STRIPES - 1));
        let n = last - first + 1;
        let ones: isize = if n >= WRITE_STRIPES {
            STRIPE_BITS
        } else {
            (1isize << n) - 1
        };
        ones << first
    }

    /// Claims `stripes` for writing: refused while the allocation is read
    /// or any of them is written.
    fn claim(&self, stripes: isize) -> Result<(), Busy> {
        if stripes == 0 {
            return Ok(());
        }
        let mut cur = self.borrow.load(Ordering::Relaxed);
        loop {
            let next = if cur == 0 {
                WRITE_MODE | stripes
            } else if cur < 0 && cur & stripes == 0 {
                cur | stripes
            } else {
                return Err(Busy);
            };
            match self
                .borrow
                .compare_exchange_weak(cur, next, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(now) => cur = now,
            }
        }
    }

    /// Releases stripes [`BufOwner::claim`] took; the word goes back to 0
    /// with the last of them.
    fn unclaim(&self, stripes: isize) {
        if stripes == 0 {
            return;
        }
        let mut cur = self.borrow.load(Ordering::Relaxed);
        loop {
            let rest = cur & !stripes;
            let next = if rest & STRIPE_BITS == 0 { 0 } else { rest };
            match self
                .borrow
                .compare_exchange_weak(cur, next, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
    }
}

// SAFETY: the raw pointer is only dereferenced under the borrow protocol of
// `borrow` (shared reads or one exclusive write), and the memory it points to
// is owned by `data`, which lives as long as the owner.
unsafe impl Send for BufOwner {}
// SAFETY: as above; all mutation goes through the atomic borrow flag.
unsafe impl Sync for BufOwner {}

/// The page size [`IoBuf::page_aligned`] aligns to (Linux on x86-64 and
/// most of arm64).
pub const PAGE_SIZE: usize = 4096;

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

    /// A buffer of `len` bytes, each `fill`, that starts on a page boundary
    /// ([`PAGE_SIZE`]), as a kernel LND's pages do. For bulk buffers: where
    /// the allocator puts a large block depends on the process's history
    /// (glibc serves it from `mmap`, 16 bytes past a page, or from the heap
    /// once its threshold has grown); this one's place does not. Costs one
    /// page more than `len`.
    pub fn page_aligned(len: usize, fill: u8) -> Self {
        let whole = Self::from_vec(vec![fill; len + PAGE_SIZE]);
        let pad = (PAGE_SIZE - whole.owner.ptr as usize % PAGE_SIZE) % PAGE_SIZE;
        IoBuf {
            owner: whole.owner,
            offset: pad,
            len,
        }
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
        self.borrow_range(0..self.len)
    }

    /// Borrows the bytes for writing.
    pub fn borrow_mut(&self) -> Result<BufMut<'_>, Busy> {
        self.borrow_mut_range(0..self.len)
    }

    /// Borrows `range` (inside this view; see [`Piece`]) for reading.
    fn borrow_range(&self, range: Range<usize>) -> Result<BufRef<'_>, Busy> {
        assert!(range.start <= range.end && range.end <= self.len);
        let flag = &self.owner.borrow;
        let mut cur = flag.load(Ordering::Relaxed);
        loop {
            if cur < 0 {
                return Err(Busy);
            }
            match flag.compare_exchange_weak(cur, cur + 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Ok(BufRef { buf: self, range }),
                Err(now) => cur = now,
            }
        }
    }

    /// Borrows `range` (inside this view; see [`Piece`]) for writing: the
    /// allocation's stripes it touches (see the module docs).
    fn borrow_mut_range(&self, range: Range<usize>) -> Result<BufMut<'_>, Busy> {
        assert!(range.start <= range.end && range.end <= self.len);
        let stripes = self
            .owner
            .stripes(self.offset + range.start, self.offset + range.end);
        self.owner.claim(stripes)?;
        Ok(BufMut {
            buf: self,
            range,
            stripes,
        })
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

/// A shared borrow of an [`IoBuf`]'s bytes (or of a part of them, see
/// [`Piece`]).
pub struct BufRef<'a> {
    buf: &'a IoBuf,
    range: Range<usize>,
}

impl Deref for BufRef<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let (p, n) = self.buf.raw();
        debug_assert!(self.range.start <= self.range.end && self.range.end <= n);
        // SAFETY: the borrow flag counts this reader, so no writer exists while
        // the slice lives; `range` lies inside the view (checked where the
        // guard is made), which is valid for `n` bytes (see `raw`).
        unsafe { std::slice::from_raw_parts(p.add(self.range.start), self.range.len()) }
    }
}

impl Drop for BufRef<'_> {
    fn drop(&mut self) {
        self.buf.owner.borrow.fetch_sub(1, Ordering::Release);
    }
}

/// An exclusive borrow of an [`IoBuf`]'s bytes (or of a part of them, see
/// [`Piece`]).
pub struct BufMut<'a> {
    buf: &'a IoBuf,
    range: Range<usize>,
    /// The stripes of the borrow word this guard holds.
    stripes: isize,
}

impl Deref for BufMut<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let (p, n) = self.buf.raw();
        debug_assert!(self.range.start <= self.range.end && self.range.end <= n);
        // SAFETY: this guard holds the exclusive borrow flag; `range` lies
        // inside the view (checked where the guard is made).
        unsafe { std::slice::from_raw_parts(p.add(self.range.start), self.range.len()) }
    }
}

impl DerefMut for BufMut<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        let (p, n) = self.buf.raw();
        debug_assert!(self.range.start <= self.range.end && self.range.end <= n);
        // SAFETY: this guard holds the exclusive borrow flag, `&mut self`
        // makes the returned slice unique for its lifetime, and `range` lies
        // inside the view.
        unsafe { std::slice::from_raw_parts_mut(p.add(self.range.start), self.range.len()) }
    }
}

impl Drop for BufMut<'_> {
    fn drop(&mut self) {
        self.buf.owner.unclaim(self.stripes);
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
    /// sharing the same memory; `None` when out of bounds. The list is made
    /// at its final size: one heap allocation (none when it is empty).
    /// [`PayloadSpan::sub`] makes none.
    pub fn sub(&self, offset: usize, len: usize) -> Option<Payload> {
        if offset.checked_add(len)? > self.len() {
            return None;
        }
        let mut frags = RVec::with_capacity(pieces(&self.frags, offset, len).count());
        for p in pieces(&self.frags, offset, len) {
            frags.push(p.buf.slice(p.range)?);
        }
        Some(Payload { frags })
    }

    /// Borrows every fragment for reading (for a vectored write).
    pub fn borrow_all(&self) -> Result<Vec<BufRef<'_>>, Busy> {
        self.frags.iter().map(IoBuf::borrow).collect()
    }

    /// Borrows every fragment for writing (for a vectored read); fails with
    /// [`Busy`] when two fragments overlap, or share a stripe of one
    /// allocation (see the module docs).
    pub fn borrow_all_mut(&self) -> Result<Vec<BufMut<'_>>, Busy> {
        self.frags.iter().map(IoBuf::borrow_mut).collect()
    }

    /// Copies `src` into the payload at `offset`; returns the bytes copied
    /// (fewer when the payload ends first).
    pub fn write_at(&self, offset: usize, src: &[u8]) -> Result<usize, Busy> {
        write_at(pieces(&self.frags, offset, src.len()), src)
    }

    /// Copies payload bytes starting at `offset` into `dst`; returns the bytes
    /// copied (fewer when the payload ends first).
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) -> Result<usize, Busy> {
        read_at(pieces(&self.frags, offset, dst.len()), dst)
    }

    /// Copies all of `self` into `dst` (as far as `dst` reaches), fragment by
    /// fragment with no intermediate buffer; returns the bytes copied.
    pub fn copy_to(&self, dst: &Payload) -> Result<usize, Busy> {
        copy_pieces(pieces(&self.frags, 0, usize::MAX), |off, src| {
            dst.write_at(off, src)
        })
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

/// A byte window into a fragment list that several holders share (lnd-api
/// 1.1): the kernel's `kiov` with `offset` and `len`.
///
/// An MD keeps its memory as a span of its whole length; the part a message
/// moves is [`PayloadSpan::sub`] of it, which, like `clone`, only bumps a
/// reference count. Cloning never copies bytes or fragment lists.
#[repr(C)]
#[derive(StableAbi, Clone, Default)]
pub struct PayloadSpan {
    /// The shared fragments; `None` for an empty span.
    frags: ROption<RArc<RVec<IoBuf>>>,
    /// Where the window starts, in bytes from the first fragment's start.
    offset: usize,
    /// The window's length in bytes.
    len: usize,
}

impl fmt::Debug for PayloadSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PayloadSpan")
            .field("frags", &self.frags().len())
            .field("offset", &self.offset)
            .field("len", &self.len)
            .finish()
    }
}

impl From<Payload> for PayloadSpan {
    /// Shares `p`'s fragment list (one heap allocation, for the count; none
    /// when `p` is empty).
    fn from(p: Payload) -> Self {
        let len = p.len();
        if len == 0 {
            return PayloadSpan::new();
        }
        PayloadSpan {
            frags: ROption::RSome(RArc::new(p.frags)),
            offset: 0,
            len,
        }
    }
}

impl From<IoBuf> for PayloadSpan {
    fn from(b: IoBuf) -> Self {
        PayloadSpan::from(Payload::single(b))
    }
}

impl PayloadSpan {
    /// An empty span (no allocation).
    pub const fn new() -> Self {
        PayloadSpan {
            frags: ROption::RNone,
            offset: 0,
            len: 0,
        }
    }

    /// Length of the window in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where the window starts in the shared fragment list.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The whole shared fragment list (the window is [`PayloadSpan::pieces`]).
    pub fn frags(&self) -> &[IoBuf] {
        match &self.frags {
            ROption::RSome(f) => f,
            ROption::RNone => &[],
        }
    }

    /// The part `offset..offset + len` of this window (relative to it);
    /// `None` when out of bounds. Shares the fragment list: no allocation.
    pub fn sub(&self, offset: usize, len: usize) -> Option<PayloadSpan> {
        if offset.checked_add(len)? > self.len {
            return None;
        }
        if len == 0 {
            return Some(PayloadSpan::new());
        }
        Some(PayloadSpan {
            frags: self.frags.clone(),
            offset: self.offset + offset,
            len,
        })
    }

    /// The window's pieces in order: each fragment it touches, with the part
    /// of it that lies inside the window. No allocation.
    pub fn pieces(&self) -> impl Iterator<Item = Piece<'_>> + Clone {
        pieces(self.frags(), self.offset, self.len)
    }

    /// Copies `src` into the window at `offset`; returns the bytes copied
    /// (fewer when the window ends first).
    pub fn write_at(&self, offset: usize, src: &[u8]) -> Result<usize, Busy> {
        let (start, n) = self.clip(offset, src.len());
        write_at(pieces(self.frags(), start, n), &src[..n])
    }

    /// Copies window bytes starting at `offset` into `dst`; returns the bytes
    /// copied (fewer when the window ends first).
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) -> Result<usize, Busy> {
        let (start, n) = self.clip(offset, dst.len());
        read_at(pieces(self.frags(), start, n), &mut dst[..n])
    }

    /// Copies all of `self` into `dst` (as far as `dst` reaches), piece by
    /// piece with no intermediate buffer; returns the bytes copied.
    pub fn copy_to(&self, dst: &PayloadSpan) -> Result<usize, Busy> {
        copy_pieces(self.pieces(), |off, src| dst.write_at(off, src))
    }

    /// Whether `self` and `other` are the same bytes: the same parts of the
    /// same allocations, in the same order (lnd-api 1.3). An LND that had a
    /// GET's REPLY written into the GET's sink ([`crate::GET_SINK`]) checks
    /// the REPLY's receive window with it: the same memory needs no copy.
    /// Two empty spans are the same. No allocation.
    pub fn same_memory(&self, other: &PayloadSpan) -> bool {
        if self.len != other.len {
            return false;
        }
        let (mut a, mut b) = (self.pieces(), other.pieces());
        // Pieces may be cut differently (two fragment lists over the same
        // memory): compare runs of contiguous bytes.
        let (mut pa, mut pb) = (a.next(), b.next());
        let (mut oa, mut ob) = (0usize, 0usize);
        loop {
            match (&pa, &pb) {
                (None, None) => return true,
                (Some(x), Some(y)) => {
                    let (xs, ys) = (
                        x.buf.offset + x.range.start + oa,
                        y.buf.offset + y.range.start + ob,
                    );
                    if !x.buf.same_allocation(y.buf) || xs != ys {
                        return false;
                    }
                    let n = (x.len() - oa).min(y.len() - ob);
                    oa += n;
                    ob += n;
                    if oa == x.len() {
                        pa = a.next();
                        oa = 0;
                    }
                    if ob == y.len() {
                        pb = b.next();
                        ob = 0;
                    }
                }
                _ => return false,
            }
        }
    }

    /// Whether this span is the only holder of its fragment list and of
    /// every fragment's memory: no MD, LND, other span or [`IoBuf`] can
    /// read or write it, so its owner may reuse it for the next message.
    pub fn is_unique(&self) -> bool {
        match &self.frags {
            ROption::RNone => true,
            ROption::RSome(list) => {
                RArc::strong_count(list) == 1
                    && list.iter().all(|b| RArc::strong_count(&b.owner) == 1)
            }
        }
    }

    /// The window as a fragment list of its own, for an LND built against
    /// lnd-api 1.0 (one heap allocation; none when empty).
    pub fn to_payload(&self) -> Payload {
        let mut frags = RVec::with_capacity(self.pieces().count());
        for p in self.pieces() {
            if let Some(b) = p.buf.slice(p.range) {
                frags.push(b);
            }
        }
        Payload { frags }
    }

    /// `offset..offset + want` of the window, clipped to it, as a start in
    /// the fragment list and a length.
    fn clip(&self, offset: usize, want: usize) -> (usize, usize) {
        let offset = offset.min(self.len);
        (self.offset + offset, want.min(self.len - offset))
    }
}

/// One fragment's part of a [`PayloadSpan`]: a range inside one [`IoBuf`].
#[derive(Clone, Debug)]
pub struct Piece<'a> {
    buf: &'a IoBuf,
    range: Range<usize>,
}

impl<'a> Piece<'a> {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.range.len()
    }

    /// Whether the piece has no bytes.
    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }

    /// The fragment the piece lies in.
    pub fn buf(&self) -> &'a IoBuf {
        self.buf
    }

    /// The piece's range inside [`Piece::buf`].
    pub fn range(&self) -> Range<usize> {
        self.range.clone()
    }

    /// Borrows the piece's bytes for reading (a read borrow covers the
    /// whole allocation, as [`IoBuf::borrow`] does).
    pub fn borrow(&self) -> Result<BufRef<'a>, Busy> {
        self.buf.borrow_range(self.range.clone())
    }

    /// Borrows the piece's bytes for writing (the stripes of the allocation
    /// it touches: a write to a disjoint part of the same allocation may
    /// proceed at the same time; see the module docs).
    pub fn borrow_mut(&self) -> Result<BufMut<'a>, Busy> {
        self.buf.borrow_mut_range(self.range.clone())
    }
}

/// The pieces of `offset..offset + len` of a fragment list (clipped to it).
fn pieces(frags: &[IoBuf], offset: usize, len: usize) -> impl Iterator<Item = Piece<'_>> + Clone {
    let end = offset.saturating_add(len);
    let mut pos = 0;
    frags
        .iter()
        .map(move |f| {
            let (fs, fe) = (pos, pos + f.len());
            pos = fe;
            (f, fs, fe)
        })
        .take_while(move |&(_, fs, _)| fs < end)
        .filter_map(move |(f, fs, fe)| {
            let (s, e) = (offset.max(fs), end.min(fe));
            (s < e).then(|| Piece {
                buf: f,
                range: s - fs..e - fs,
            })
        })
}

/// Copies `src` into `pieces` in order; returns the bytes copied.
fn write_at<'a>(pieces: impl Iterator<Item = Piece<'a>>, src: &[u8]) -> Result<usize, Busy> {
    let mut done = 0;
    for p in pieces {
        let n = p.len().min(src.len() - done);
        p.borrow_mut()?[..n].copy_from_slice(&src[done..done + n]);
        done += n;
    }
    Ok(done)
}

/// Copies `pieces` in order into `dst`; returns the bytes copied.
fn read_at<'a>(pieces: impl Iterator<Item = Piece<'a>>, dst: &mut [u8]) -> Result<usize, Busy> {
    let mut done = 0;
    for p in pieces {
        let n = p.len().min(dst.len() - done);
        dst[done..done + n].copy_from_slice(&p.borrow()?[..n]);
        done += n;
    }
    Ok(done)
}

/// Feeds `pieces` to `write(offset, bytes)` until it writes short; returns
/// the bytes written.
fn copy_pieces<'a>(
    pieces: impl Iterator<Item = Piece<'a>>,
    mut write: impl FnMut(usize, &[u8]) -> Result<usize, Busy>,
) -> Result<usize, Busy> {
    let mut off = 0;
    for p in pieces {
        let n = write(off, &p.borrow()?)?;
        off += n;
        if n < p.len() {
            break;
        }
    }
    Ok(off)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_aligned_buffer_starts_on_a_page_and_holds_its_fill() {
        for len in [1, 4096, 1 << 20] {
            let b = IoBuf::page_aligned(len, 0x5a);
            assert_eq!(b.len(), len);
            let r = b.borrow().expect("free");
            assert_eq!(r.as_ptr() as usize % PAGE_SIZE, 0, "len {len}");
            assert!(r.iter().all(|x| *x == 0x5a));
            drop(r);
            let p = PayloadSpan::from(b);
            assert!(p.is_unique());
            assert_eq!(p.write_at(len - 1, &[7]), Ok(1));
        }
    }

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

    /// The old (lnd-api 1.0 to 1.2) writer protocol, as a plugin built
    /// against those versions runs it on the shared word.
    fn old_claim(b: &IoBuf) -> bool {
        b.owner
            .borrow
            .compare_exchange(0, -1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    #[test]
    fn disjoint_writes_to_one_allocation_proceed_together() {
        // 62 stripes of 1000 bytes each.
        let whole = IoBuf::zeroed(62_000);
        let low = whole.slice(0..31_000).expect("in bounds");
        let high = whole.slice(31_000..62_000).expect("in bounds");
        let mut w1 = low.borrow_mut().expect("free");
        let mut w2 = high
            .borrow_mut()
            .expect("a disjoint range of the same allocation");
        w1[0] = 1;
        w2[0] = 2;
        // Overlapping writes, and any read, are refused meanwhile.
        assert_eq!(whole.borrow_mut().err(), Some(Busy));
        let mid = whole.slice(30_000..32_000).expect("in bounds");
        assert_eq!(mid.borrow_mut().err(), Some(Busy));
        assert_eq!(low.borrow().err(), Some(Busy));
        // So is the whole-allocation write of a 1.0-1.2 copy of this crate.
        assert!(!old_claim(&whole));
        drop(w1);
        // The low half is free again; the high half still written.
        let w3 = low
            .slice(10..20)
            .expect("in bounds")
            .borrow_mut()
            .map(|_| ());
        assert_eq!(w3, Ok(()));
        assert_eq!(whole.borrow().err(), Some(Busy));
        drop(w2);
        assert_eq!(whole.owner.borrow.load(Ordering::Relaxed), 0, "free again");
        assert_eq!(whole.to_vec().expect("free")[31_000], 2);
        assert_eq!(whole.to_vec().expect("free")[0], 1);
    }

    #[test]
    fn disjoint_writes_sharing_a_stripe_are_refused() {
        let whole = IoBuf::zeroed(62_000);
        let a = whole.slice(0..500).expect("in bounds");
        let b = whole.slice(500..1000).expect("in bounds");
        let c = whole.slice(1000..1500).expect("in bounds");
        let _g = a.borrow_mut().expect("free");
        assert_eq!(b.borrow_mut().err(), Some(Busy), "same 1000-byte stripe");
        assert!(c.borrow_mut().is_ok(), "next stripe");
        // Empty borrows hold nothing and conflict with nothing.
        let e = whole.slice(100..100).expect("in bounds");
        assert!(e.borrow_mut().is_ok());
    }

    #[test]
    fn an_old_copys_whole_write_keeps_every_range_out() {
        let whole = IoBuf::zeroed(100);
        assert!(old_claim(&whole), "free");
        let part = whole.slice(90..100).expect("in bounds");
        assert_eq!(part.borrow_mut().err(), Some(Busy));
        assert_eq!(part.borrow().err(), Some(Busy));
        // The old copy releases by storing 0.
        whole.owner.borrow.store(0, Ordering::Release);
        let g = part.borrow_mut().expect("free");
        assert!(!old_claim(&whole), "an old copy sees the range write");
        drop(g);
        assert!(old_claim(&whole));
        whole.owner.borrow.store(0, Ordering::Release);
        // Small allocations: fewer bytes than stripes.
        let tiny = IoBuf::from_vec(vec![0; 3]);
        let (t0, t1) = (tiny.slice(0..1).expect("a"), tiny.slice(1..3).expect("b"));
        let g0 = t0.borrow_mut().expect("free");
        assert!(t1.borrow_mut().is_ok());
        assert_eq!(tiny.borrow_mut().err(), Some(Busy));
        drop(g0);
    }

    #[test]
    fn concurrent_disjoint_writers_from_threads() {
        let whole = IoBuf::zeroed(62 * 4096);
        let halves: Vec<IoBuf> = (0..2)
            .map(|i| {
                whole
                    .slice(i * 31 * 4096..(i + 1) * 31 * 4096)
                    .expect("in bounds")
            })
            .collect();
        std::thread::scope(|s| {
            for (i, h) in halves.iter().enumerate() {
                s.spawn(move || {
                    for round in 0..2000u32 {
                        let mut g = h.borrow_mut().expect("never busy: disjoint stripes");
                        g[(round as usize * 7) % h.len()] = i as u8 + 1;
                    }
                });
            }
        });
        assert_eq!(whole.owner.borrow.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn same_memory_compares_bytes_not_lists() {
        let a = IoBuf::zeroed(10);
        let b = IoBuf::zeroed(10);
        let md = PayloadSpan::from([a.clone(), b.clone()].into_iter().collect::<Payload>());
        let sink = md.sub(0, 20).expect("in bounds");
        assert!(sink.same_memory(&md));
        assert!(md
            .sub(0, 15)
            .expect("a")
            .same_memory(&sink.sub(0, 15).expect("b")));
        // Another list over the same memory, cut differently.
        let other: Payload = [
            a.slice(0..4).expect("a"),
            a.slice(4..10).expect("b"),
            b.clone(),
        ]
        .into_iter()
        .collect();
        assert!(PayloadSpan::from(other).same_memory(&md));
        assert!(!md
            .sub(1, 15)
            .expect("a")
            .same_memory(&md.sub(0, 15).expect("b")));
        assert!(!md.sub(0, 15).expect("a").same_memory(&md));
        let copy = PayloadSpan::from(IoBuf::zeroed(20));
        assert!(!copy.same_memory(&md));
        assert!(PayloadSpan::new().same_memory(&md.sub(3, 0).expect("empty")));
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
    fn span_windows_share_the_fragment_list() {
        let a = IoBuf::from_vec(vec![0, 1, 2]);
        let b = IoBuf::from_vec(vec![3, 4, 5, 6, 7]);
        let c = IoBuf::from_vec(vec![8, 9]);
        let whole = PayloadSpan::from([a.clone(), b.clone(), c].into_iter().collect::<Payload>());
        assert_eq!(
            (whole.len(), whole.offset(), whole.frags().len()),
            (10, 0, 3)
        );

        // A window across the first two fragments, then a window of it.
        let w = whole.sub(2, 5).expect("in bounds");
        let parts: Vec<(usize, std::ops::Range<usize>)> =
            w.pieces().map(|p| (p.buf().len(), p.range())).collect();
        assert_eq!(parts, vec![(3, 2..3), (5, 0..4)]);
        let ww = w.sub(1, 4).expect("in bounds");
        assert_eq!(ww.offset(), 3);
        assert!(std::ptr::eq(ww.frags(), whole.frags()), "no new list");
        let mut out = [0u8; 4];
        assert_eq!(ww.read_at(0, &mut out).expect("free"), 4);
        assert_eq!(out, [3, 4, 5, 6]);
        assert!(w.sub(3, 3).is_none());
        assert!(w.sub(5, 0).expect("empty at the end").is_empty());

        // Writes stay inside the window, and stop at its end.
        assert_eq!(w.write_at(3, &[70, 71, 72, 73]).expect("free"), 2);
        assert_eq!(b.to_vec().expect("free"), vec![3, 4, 70, 71, 7]);
        assert_eq!(a.to_vec().expect("free"), vec![0, 1, 2]);
        let mut big = [0u8; 8];
        assert_eq!(w.read_at(0, &mut big).expect("free"), 5);
        assert_eq!(&big[..5], &[2, 3, 4, 70, 71]);

        // A piece's write guard covers only its range's stripes, but any
        // write keeps readers of the allocation out.
        let first = ww.pieces().next().expect("a piece");
        let g = first.borrow_mut().expect("free");
        assert_eq!(&*g, &[3, 4, 70, 71]);
        assert_eq!(b.borrow().err(), Some(Busy));
        drop(g);

        // For a 1.0 LND: its own fragment list over the same memory.
        let p = w.to_payload();
        assert_eq!(p.len(), 5);
        assert!(p.frags()[1].same_allocation(&b));
        let dst = PayloadSpan::from(IoBuf::zeroed(3));
        assert_eq!(w.copy_to(&dst).expect("free"), 3);
        assert_eq!(dst.frags()[0].to_vec().expect("free"), vec![2, 3, 4]);
        assert!(PayloadSpan::from(Payload::new()).frags().is_empty());

        // Unique only when no other span, list or buffer shares it.
        let own = PayloadSpan::from(IoBuf::zeroed(8));
        assert!(own.is_unique());
        let window = own.sub(1, 2).expect("in bounds");
        assert!(!own.is_unique());
        drop(window);
        assert!(own.is_unique());
        let list = own.to_payload();
        assert!(!own.is_unique(), "a fragment list over the same memory");
        drop(list);
        assert!(own.is_unique());
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        /// Fragments of the given sizes holding 0, 1, 2, ... (mod 251).
        fn frags(sizes: &[usize]) -> (Vec<IoBuf>, Vec<u8>) {
            let mut all = Vec::new();
            let bufs = sizes
                .iter()
                .map(|&n| {
                    let v: Vec<u8> = (all.len()..all.len() + n)
                        .map(|i| (i % 251) as u8)
                        .collect();
                    all.extend_from_slice(&v);
                    IoBuf::from_vec(v)
                })
                .collect();
            (bufs, all)
        }

        proptest! {
            /// A window of a window reads, writes and splits into pieces
            /// exactly as the same range of the concatenated bytes.
            #[test]
            fn windows_match_the_concatenated_bytes(
                sizes in proptest::collection::vec(0usize..40, 0..8),
                a in 0usize..300, b in 0usize..300, c in 0usize..300, d in 0usize..300,
            ) {
                let (bufs, all) = frags(&sizes);
                let total = all.len();
                let whole = PayloadSpan::from(bufs.iter().cloned().collect::<Payload>());
                prop_assert_eq!(whole.len(), total);
                let (off, len) = (a.min(total), b.min(total - a.min(total)));
                let w = whole.sub(off, len).expect("in bounds");
                prop_assert!(whole.sub(total + 1, 0).is_none());
                prop_assert!(whole.sub(off, total - off + 1).is_none());
                let (o2, l2) = (c.min(len), d.min(len - c.min(len)));
                let ww = w.sub(o2, l2).expect("in bounds");
                let want = &all[off + o2..off + o2 + l2];

                let mut got = vec![0u8; l2 + 3];
                prop_assert_eq!(ww.read_at(0, &mut got).expect("free"), l2);
                prop_assert_eq!(&got[..l2], want);
                let piece_bytes: Vec<u8> = ww
                    .pieces()
                    .flat_map(|p| p.borrow().expect("free").to_vec())
                    .collect();
                prop_assert_eq!(&piece_bytes[..], want);
                prop_assert!(ww.pieces().all(|p| !p.is_empty()));
                prop_assert_eq!(ww.to_payload().len(), l2);

                // Writing through the inner window changes exactly its range.
                let src: Vec<u8> = (0..l2).map(|i| 255 - (i % 200) as u8).collect();
                prop_assert_eq!(ww.write_at(0, &src).expect("free"), l2);
                let mut after = vec![0u8; total];
                prop_assert_eq!(whole.read_at(0, &mut after).expect("free"), total);
                let mut expect = all.clone();
                expect[off + o2..off + o2 + l2].copy_from_slice(&src);
                prop_assert_eq!(after, expect);
            }
        }
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
