//! The physical frame allocator: a bitmap over 4 KiB machine frames.
//!
//! Its input is the list of free ranges that `super::memmap` computes
//! ([`MemoryMap::free_ranges`](super::memmap::MemoryMap::free_ranges)); its
//! output is [`Mfn`]s, which `super::paging` turns into page tables and the
//! rest of the hypervisor into domain memory. The allocator owns no memory of
//! its own: the caller hands it the bitmap storage, which in the kernel is
//! carved out of usable RAM (chosen by [`place_bitmap`]) and reached through
//! the direct map, and on the host is a plain array.
//!
//! The storage holds two bitmaps of equal size, one after the other:
//!
//! * the *free* bitmap: bit set = frame free;
//! * the *managed* bitmap: bit set = frame belongs to the allocator at all.
//!
//! A frame is managed when it lay in one of the free ranges given to
//! [`FrameAllocator::new`] (and not in the bitmap storage itself). Holes,
//! reserved memory, the kernel image and the bitmap are never managed, so
//! [`FrameAllocator::free`] on them is refused rather than silently adding
//! them to the pool. The managed bitmap costs as much as the free one (one bit
//! per frame, 32 KiB per GiB each) but answers in O(1) and has no capacity
//! limit; [`bitmap_words`] counts both.
//!
//! Invariants: every free frame is managed; every frame below `next_hint` is
//! in use, so [`FrameAllocator::alloc`] hands out the lowest free frame.

#![deny(unsafe_code)]

use core::fmt;

use super::memmap::{PAGE_SIZE, PhysRange, page_ceil, page_floor};

/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;

/// Frames per bitmap word.
const BITS_PER_WORD: u64 = u64::BITS as u64;

// Oxen targets x86-64 only: `usize` and `u64` have the same width, so the
// conversions between word counts and frame numbers below cannot truncate.
const _: () = assert!(usize::BITS == u64::BITS);

/// A machine frame number: a host-physical address divided by [`PAGE_SIZE`].
///
/// Only values below 2^52 name real frames (x86-64 physical addresses are at
/// most 52 bits, Intel SDM Vol. 3A 4.1.4); [`Mfn::addr`] of anything larger
/// loses its top bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mfn(pub u64);

impl Mfn {
    /// The physical address of the frame's first byte.
    pub const fn addr(self) -> u64 {
        self.0 << PAGE_SHIFT
    }

    /// The frame that starts at `addr`; `None` if `addr` is not page-aligned.
    pub const fn from_addr(addr: u64) -> Option<Self> {
        if addr.is_multiple_of(PAGE_SIZE) {
            Some(Self(addr >> PAGE_SHIFT))
        } else {
            None
        }
    }

    /// The frame that contains `addr`.
    pub const fn containing(addr: u64) -> Self {
        Self(addr >> PAGE_SHIFT)
    }
}

impl fmt::Display for Mfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mfn {:#x}", self.0)
    }
}

/// Why the frame allocator refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The frame is already free.
    DoubleFree(Mfn),
    /// The frame lies past the bitmap or was never given to the allocator
    /// (a hole, reserved memory, the kernel image, the bitmap itself).
    OutOfRange(Mfn),
    /// The frame was to be claimed but is already allocated.
    NotFree(Mfn),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DoubleFree(mfn) => write!(f, "{mfn} freed twice"),
            Self::OutOfRange(mfn) => write!(f, "{mfn} is not managed by the frame allocator"),
            Self::NotFree(mfn) => write!(f, "{mfn} is already allocated"),
        }
    }
}

impl core::error::Error for FrameError {}

/// Words per bitmap covering frames `[0, end_addr / PAGE_SIZE)`.
const fn words_per_bitmap(end_addr: u64) -> u64 {
    (end_addr / PAGE_SIZE).div_ceil(BITS_PER_WORD)
}

/// How many u64 words the bitmap needs to cover frames [0, end_addr / 4096).
///
/// This counts both bitmaps (free and managed, see the module docs), so it is
/// `2 * ceil(frames / 64)`: 64 KiB of storage per GiB of `end_addr`. Pass the
/// end of the highest free range ([`managed_end`]), not the highest address
/// of the whole map, which may be far-away MMIO.
#[allow(clippy::cast_possible_truncation)] // usize is 64 bits (asserted above)
pub const fn bitmap_words(end_addr: u64) -> usize {
    (2 * words_per_bitmap(end_addr)) as usize
}

/// One past the last byte of the highest range in `free` (0 if none): the
/// `end_addr` to size the bitmap with.
pub fn managed_end(free: &[PhysRange]) -> u64 {
    free.iter()
        .filter(|r| !r.is_empty())
        .map(|r| r.end)
        .max()
        .unwrap_or(0)
}

/// Choose where the bitmap lives: the lowest free range (after
/// `free_ranges`) that can hold `bytes`, page-aligned, below `below` (the
/// kernel passes 4 GiB because early boot only reaches that much). Pure.
///
/// Returns the page-aligned range to reserve (`bytes` rounded up to pages),
/// lying entirely below `below`, at the lowest possible address. `None` if no
/// range is big enough, or if `bytes` is 0 (nothing to place).
pub fn place_bitmap(free: &[PhysRange], bytes: u64, below: u64) -> Option<PhysRange> {
    let size = page_ceil(bytes)?;
    if size == 0 {
        return None;
    }
    let limit = page_floor(below);
    free.iter()
        .filter_map(|r| {
            let start = page_ceil(r.start)?;
            let end = page_floor(r.end).min(limit);
            let stop = start.checked_add(size)?;
            (stop <= end).then_some(PhysRange::new(start, stop))
        })
        .min_by_key(|r| r.start)
}

/// The frames `[first, end)` of a page-aligned byte range (inner rounding).
fn frames_of(range: &PhysRange) -> (u64, u64) {
    let inner = range.page_inner();
    (inner.start >> PAGE_SHIFT, inner.end >> PAGE_SHIFT)
}

/// The frames `[first, end)` touched by a byte range (outer rounding).
fn frames_touching(range: &PhysRange) -> (u64, u64) {
    let outer = range.page_outer();
    // `page_outer` clamps the end at u64::MAX; the frame count still covers
    // every real frame because real frames end below 2^52 pages.
    (outer.start >> PAGE_SHIFT, outer.end.div_ceil(PAGE_SIZE))
}

/// A word number as a slice index.
#[allow(clippy::cast_possible_truncation)] // usize is 64 bits (asserted above)
const fn word_index(word: u64) -> usize {
    word as usize
}

/// Call `f(word_index, mask)` for each bitmap word overlapping frames
/// `[first, end)`, with `mask` selecting those frames in the word.
fn for_each_word(first: u64, end: u64, mut f: impl FnMut(usize, u64) -> bool) {
    let mut frame = first;
    while frame < end {
        let word = frame / BITS_PER_WORD;
        let lo = frame % BITS_PER_WORD;
        let word_end = (word + 1) * BITS_PER_WORD;
        let hi = end.min(word_end) - word * BITS_PER_WORD; // 1..=64
        let mask = if hi - lo == BITS_PER_WORD {
            u64::MAX
        } else {
            ((1u64 << (hi - lo)) - 1) << lo
        };
        if !f(word_index(word), mask) {
            return;
        }
        frame = word_end;
    }
}

/// The physical frame allocator; see the module docs.
pub struct FrameAllocator<'a> {
    /// Bit set = frame free.
    free_bits: &'a mut [u64],
    /// Bit set = frame managed. Fixed after construction.
    managed_bits: &'a [u64],
    /// Frames covered by the bitmaps: `[0, covered)`.
    covered: u64,
    /// Managed frames.
    total: u64,
    /// Free frames.
    free: u64,
    /// Every frame below this one is in use.
    next_hint: u64,
}

impl fmt::Debug for FrameAllocator<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameAllocator")
            .field("covered", &self.covered)
            .field("total", &self.total)
            .field("free", &self.free)
            .field("next_hint", &self.next_hint)
            .finish_non_exhaustive()
    }
}

impl<'a> FrameAllocator<'a> {
    /// Every frame starts used; then each range in `free` (page aligned) is
    /// released, minus `reserved_for_bitmap`.
    ///
    /// `bitmap` is the storage for both bitmaps, [`bitmap_words`] long; its
    /// previous contents do not matter. Frames past what it covers are
    /// dropped with a warning. Ranges in `free` are shrunk inwards to pages
    /// and may overlap or repeat; `reserved_for_bitmap` is grown outwards.
    pub fn new(bitmap: &'a mut [u64], free: &[PhysRange], reserved_for_bitmap: PhysRange) -> Self {
        let half = bitmap.len() / 2;
        let (free_bits, rest) = bitmap.split_at_mut(half);
        let managed_bits = &mut rest[..half];
        free_bits.fill(0);
        managed_bits.fill(0);
        let covered = u64::try_from(half).map_or(u64::MAX, |w| w.saturating_mul(BITS_PER_WORD));

        let (res_first, res_end) = frames_touching(&reserved_for_bitmap);
        let mut total = 0u64;
        let mut clipped = false;
        for range in free {
            let (first, end) = frames_of(range);
            clipped |= end > covered;
            let end = end.min(covered);
            // The range minus the bitmap's own frames: up to two pieces.
            for (lo, hi) in [(first, end.min(res_first)), (first.max(res_end), end)] {
                for_each_word(lo, hi, |word, mask| {
                    total += u64::from((mask & !free_bits[word]).count_ones());
                    free_bits[word] |= mask;
                    true
                });
            }
        }
        if clipped {
            log::warn!("frame: bitmap covers {covered} frames; RAM above is left unused");
        }
        managed_bits.copy_from_slice(free_bits);

        Self {
            free_bits,
            managed_bits,
            covered,
            total,
            free: total,
            next_hint: 0,
        }
    }

    /// Total managed frames (free or allocated).
    pub fn total_frames(&self) -> u64 {
        self.total
    }

    /// Frames currently free.
    pub fn free_frames(&self) -> u64 {
        self.free
    }

    /// Whether `mfn` is managed and currently free.
    pub fn is_free(&self, mfn: Mfn) -> bool {
        Self::test(self.free_bits, mfn.0)
    }

    /// Whether `mfn` belongs to the allocator at all (free or allocated).
    pub fn is_managed(&self, mfn: Mfn) -> bool {
        Self::test(self.managed_bits, mfn.0)
    }

    /// Allocate the lowest free frame.
    ///
    /// Scans from a hint below which everything is in use, skipping full
    /// words 64 frames at a time: O(words) worst case, O(1) typically.
    pub fn alloc(&mut self) -> Option<Mfn> {
        let Some(frame) = self.find_free_from(self.next_hint) else {
            self.next_hint = self.covered;
            return None;
        };
        self.take(frame, 1);
        self.next_hint = frame + 1;
        Some(Mfn(frame))
    }

    /// Allocate the lowest free frame that lies entirely below `limit_addr`
    /// (for devices or trampolines that need low memory).
    pub fn alloc_below(&mut self, limit_addr: u64) -> Option<Mfn> {
        let limit_frame = limit_addr / PAGE_SIZE;
        let frame = self.find_free_from(self.next_hint)?;
        if frame >= limit_frame {
            return None;
        }
        self.take(frame, 1);
        Some(Mfn(frame))
    }

    /// Allocate `count` physically contiguous frames, the first one's number a
    /// multiple of `align_frames` (0 counts as 1; need not be a power of two).
    /// Lowest fit. `None` if `count` is 0 or no run fits.
    pub fn alloc_contiguous(&mut self, count: u64, align_frames: u64) -> Option<Mfn> {
        if count == 0 {
            return None;
        }
        let align = align_frames.max(1);
        let align_up = |frame: u64| frame.div_ceil(align).checked_mul(align);
        let mut start = align_up(self.find_free_from(self.next_hint)?)?;
        loop {
            let end = start.checked_add(count)?;
            if end > self.covered {
                return None;
            }
            match self.find_used_in(start, end) {
                None => {
                    self.take(start, count);
                    return Some(Mfn(start));
                }
                Some(used) => start = align_up(self.find_free_from(used + 1)?)?,
            }
        }
    }

    /// Claim one specific free frame (say, a fixed-address AP trampoline).
    pub fn claim(&mut self, mfn: Mfn) -> Result<(), FrameError> {
        if !self.is_managed(mfn) {
            return Err(FrameError::OutOfRange(mfn));
        }
        if !self.is_free(mfn) {
            return Err(FrameError::NotFree(mfn));
        }
        self.take(mfn.0, 1);
        Ok(())
    }

    /// Return one frame to the pool.
    pub fn free(&mut self, mfn: Mfn) -> Result<(), FrameError> {
        self.free_contiguous(mfn, 1)
    }

    /// Return `count` frames starting at `first` to the pool. All or nothing:
    /// the whole run is validated before any bit changes, and the error names
    /// the lowest offending frame. `count` 0 is a no-op.
    pub fn free_contiguous(&mut self, first: Mfn, count: u64) -> Result<(), FrameError> {
        if count == 0 {
            return Ok(());
        }
        let Some(end) = first.0.checked_add(count) else {
            return Err(FrameError::OutOfRange(first));
        };
        if first.0 >= self.covered {
            return Err(FrameError::OutOfRange(first));
        }
        let in_bitmap_end = end.min(self.covered);
        let mut unmanaged = None;
        let mut already_free = None;
        for_each_word(first.0, in_bitmap_end, |word, mask| {
            let frame0 = word as u64 * BITS_PER_WORD;
            let outside = mask & !self.managed_bits[word];
            if outside != 0 && unmanaged.is_none() {
                unmanaged = Some(frame0 + u64::from(outside.trailing_zeros()));
            }
            let free = mask & self.free_bits[word];
            if free != 0 && already_free.is_none() {
                already_free = Some(frame0 + u64::from(free.trailing_zeros()));
            }
            // Later words hold only higher frames: stop at the first hit.
            unmanaged.is_none() && already_free.is_none()
        });
        // Report the lowest offender; anything past the bitmap comes last.
        match (unmanaged, already_free) {
            (Some(u), Some(d)) if d < u => return Err(FrameError::DoubleFree(Mfn(d))),
            (Some(u), _) => return Err(FrameError::OutOfRange(Mfn(u))),
            (None, Some(d)) => return Err(FrameError::DoubleFree(Mfn(d))),
            (None, None) if end > self.covered => {
                return Err(FrameError::OutOfRange(Mfn(self.covered)));
            }
            (None, None) => {}
        }

        for_each_word(first.0, end, |word, mask| {
            self.free_bits[word] |= mask;
            true
        });
        self.free += count;
        self.next_hint = self.next_hint.min(first.0);
        Ok(())
    }

    /// Bit `frame` of `bits`; false past the end.
    fn test(bits: &[u64], frame: u64) -> bool {
        usize::try_from(frame / BITS_PER_WORD)
            .ok()
            .and_then(|w| bits.get(w))
            .is_some_and(|word| word & (1 << (frame % BITS_PER_WORD)) != 0)
    }

    /// Mark the free frames `[first, first + count)` used.
    fn take(&mut self, first: u64, count: u64) {
        for_each_word(first, first + count, |word, mask| {
            debug_assert_eq!(self.free_bits[word] & mask, mask, "taking a used frame");
            self.free_bits[word] &= !mask;
            true
        });
        self.free -= count;
    }

    /// The lowest free frame at or after `from`.
    fn find_free_from(&self, from: u64) -> Option<u64> {
        let first_word = usize::try_from(from / BITS_PER_WORD).ok()?;
        let first_mask = u64::MAX << (from % BITS_PER_WORD);
        self.free_bits
            .get(first_word..)?
            .iter()
            .enumerate()
            .find_map(|(i, &word)| {
                let word = if i == 0 { word & first_mask } else { word };
                (word != 0)
                    .then(|| (first_word + i) as u64 * BITS_PER_WORD + u64::from(word.trailing_zeros()))
            })
    }

    /// The lowest used frame in `[first, end)`, which must lie in the bitmap.
    fn find_used_in(&self, first: u64, end: u64) -> Option<u64> {
        let mut used = None;
        for_each_word(first, end, |word, mask| {
            let busy = mask & !self.free_bits[word];
            if busy != 0 {
                used = Some(word as u64 * BITS_PER_WORD + u64::from(busy.trailing_zeros()));
            }
            busy == 0
        });
        used
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap in a test is a failed assertion
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::mm::memmap::{MemoryMap, RegionKind};

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    fn pr(start: u64, end: u64) -> PhysRange {
        PhysRange::new(start, end)
    }

    /// A bitmap for `free`, and the allocator over it (bitmap not in RAM).
    fn storage(free: &[PhysRange]) -> Vec<u64> {
        vec![0xdead_beef; bitmap_words(managed_end(free))]
    }

    fn drain(a: &mut FrameAllocator<'_>) -> Vec<Mfn> {
        std::iter::from_fn(|| a.alloc()).collect()
    }

    fn in_any(ranges: &[PhysRange], mfn: Mfn) -> bool {
        ranges.iter().any(|r| r.contains(mfn.addr()))
    }

    #[test]
    fn mfn_conversions() {
        assert_eq!(Mfn(5).addr(), 0x5000);
        assert_eq!(Mfn::from_addr(0x5000), Some(Mfn(5)));
        assert_eq!(Mfn::from_addr(0x5001), None);
        assert_eq!(Mfn::containing(0x5fff), Mfn(5));
        assert_eq!(Mfn(0x10).to_string(), "mfn 0x10");
        assert!(FrameError::DoubleFree(Mfn(1)).to_string().contains("twice"));
    }

    #[test]
    fn bitmap_sizing() {
        assert_eq!(bitmap_words(0), 0);
        assert_eq!(bitmap_words(4096), 2);
        assert_eq!(bitmap_words(64 * 4096), 2);
        assert_eq!(bitmap_words(65 * 4096), 4);
        assert_eq!(bitmap_words(64 * 4096 + 4095), 2); // partial frame not covered
        assert_eq!(bitmap_words(GIB) * 8, 64 * 1024);
        assert_eq!(bitmap_words(u64::MAX), 2 * (1 << 46));
        assert_eq!(
            managed_end(&[pr(0, 0x1000), pr(0x5000, 0x9000), pr(0x10000, 0x10000)]),
            0x9000
        );
        assert_eq!(managed_end(&[]), 0);
    }

    #[test]
    fn place_bitmap_picks_lowest_fit_below_limit() {
        let free = [
            pr(0x300000, 0x400000),
            pr(0x100000, 0x102000),
            pr(0x200000, 0x280000),
        ];
        assert_eq!(place_bitmap(&free, 0x3000, 4 * GIB), Some(pr(0x200000, 0x203000)));
        assert_eq!(place_bitmap(&free, 0x2000, 4 * GIB), Some(pr(0x100000, 0x102000)));
        assert_eq!(place_bitmap(&free, 1, 4 * GIB), Some(pr(0x100000, 0x101000)));
        assert_eq!(
            place_bitmap(&free, 0x100000, 4 * GIB),
            Some(pr(0x300000, 0x400000))
        );
        assert_eq!(place_bitmap(&free, 0x100001, 4 * GIB), None);
        assert_eq!(place_bitmap(&free, 0x80000, 0x27ffff), None);
        assert_eq!(
            place_bitmap(&free, 0x7f000, 0x27ffff),
            Some(pr(0x200000, 0x27f000))
        );
        assert_eq!(
            place_bitmap(&free, 0x1000, 0x101fff),
            Some(pr(0x100000, 0x101000))
        );
        assert_eq!(place_bitmap(&free, 0, 4 * GIB), None);
        assert_eq!(place_bitmap(&free, u64::MAX, u64::MAX), None);
        assert_eq!(place_bitmap(&[], 1, u64::MAX), None);
        // Unaligned free ranges are shrunk inwards.
        assert_eq!(
            place_bitmap(&[pr(0x1001, 0x4000)], 0x2000, u64::MAX),
            Some(pr(0x2000, 0x4000))
        );
    }

    #[test]
    fn drain_returns_every_free_frame_once() {
        let free = [pr(0x1000, 0x5000), pr(0x10000, 0x12000), pr(0x41000, 0x43000)];
        let mut bits = storage(&free);
        let mut a = FrameAllocator::new(&mut bits, &free, pr(0, 0));
        assert_eq!(a.total_frames(), 4 + 2 + 2);
        assert_eq!(a.free_frames(), 8);
        let got = drain(&mut a);
        let want: Vec<Mfn> = [1, 2, 3, 4, 0x10, 0x11, 0x41, 0x42]
            .into_iter()
            .map(Mfn)
            .collect();
        assert_eq!(got, want);
        assert_eq!(a.free_frames(), 0);
        assert_eq!(a.alloc(), None);
        assert_eq!(a.alloc_below(u64::MAX), None);
        assert_eq!(a.alloc_contiguous(1, 1), None);
    }

    #[test]
    fn bitmap_frames_and_holes_never_handed_out() {
        let free = [pr(0x100000, 0x200000)];
        let bitmap_at = pr(0x180800, 0x181800); // unaligned: costs two frames
        let mut bits = storage(&free);
        let mut a = FrameAllocator::new(&mut bits, &free, bitmap_at);
        assert_eq!(a.total_frames(), 256 - 2);
        let got = drain(&mut a);
        assert_eq!(got.len(), 254);
        for mfn in &got {
            assert!(
                in_any(&free, *mfn) && !in_any(&[bitmap_at.page_outer()], *mfn),
                "{mfn}"
            );
        }
        assert_eq!(a.free(Mfn(0x180)), Err(FrameError::OutOfRange(Mfn(0x180))));
        assert_eq!(a.free(Mfn(0x181)), Err(FrameError::OutOfRange(Mfn(0x181))));
        assert_eq!(a.free(Mfn(0xff)), Err(FrameError::OutOfRange(Mfn(0xff))));
        assert_eq!(a.free(Mfn(0x200)), Err(FrameError::OutOfRange(Mfn(0x200))));
        assert_eq!(a.free(Mfn(u64::MAX)), Err(FrameError::OutOfRange(Mfn(u64::MAX))));
    }

    #[test]
    fn free_and_double_free() {
        let free = [pr(0, 0x10000)];
        let mut bits = storage(&free);
        let mut a = FrameAllocator::new(&mut bits, &free, pr(0, 0));
        let got = drain(&mut a);
        assert_eq!(got.len(), 16);
        for mfn in &got {
            a.free(*mfn).unwrap();
        }
        assert_eq!(a.free_frames(), 16);
        assert_eq!(a.free(Mfn(3)), Err(FrameError::DoubleFree(Mfn(3))));
        assert_eq!(a.free_frames(), 16);
        // Lowest-first after frees in any order.
        let _ = drain(&mut a);
        a.free(Mfn(9)).unwrap();
        a.free(Mfn(2)).unwrap();
        assert_eq!(a.alloc(), Some(Mfn(2)));
        assert_eq!(a.alloc(), Some(Mfn(9)));
        assert_eq!(a.alloc(), None);
    }

    #[test]
    fn overlapping_free_ranges_counted_once() {
        let free = [pr(0, 0x8000), pr(0x4000, 0xc000), pr(0, 0x8000)];
        let mut bits = storage(&free);
        let mut a = FrameAllocator::new(&mut bits, &free, pr(0, 0));
        assert_eq!(a.total_frames(), 12);
        assert_eq!(drain(&mut a).len(), 12);
    }

    #[test]
    fn free_contiguous_is_all_or_nothing() {
        let free = [pr(0x1000, 0x9000), pr(0xa000, 0xc000)];
        let mut bits = storage(&free);
        let mut a = FrameAllocator::new(&mut bits, &free, pr(0, 0));
        let _ = drain(&mut a);
        a.free(Mfn(5)).unwrap();
        // 3..8 includes already-free 5.
        assert_eq!(a.free_contiguous(Mfn(3), 5), Err(FrameError::DoubleFree(Mfn(5))));
        assert!(!a.is_free(Mfn(3)) && !a.is_free(Mfn(4)));
        // 6..11 crosses unmanaged frame 9.
        assert_eq!(a.free_contiguous(Mfn(6), 5), Err(FrameError::OutOfRange(Mfn(9))));
        assert!(!a.is_free(Mfn(6)));
        // Past the bitmap.
        assert_eq!(
            a.free_contiguous(Mfn(0xa), 100),
            Err(FrameError::OutOfRange(Mfn(0xc)))
        );
        assert_eq!(
            a.free_contiguous(Mfn(u64::MAX), 2),
            Err(FrameError::OutOfRange(Mfn(u64::MAX)))
        );
        assert_eq!(a.free_frames(), 1);
        a.free_contiguous(Mfn(6), 3).unwrap();
        assert_eq!(a.free_frames(), 4);
        a.free_contiguous(Mfn(6), 0).unwrap();
        assert_eq!(a.alloc(), Some(Mfn(5)));
    }

    #[test]
    fn contiguous_with_alignment() {
        let free = [pr(0x1000, 0x400000)];
        let mut bits = storage(&free);
        let mut a = FrameAllocator::new(&mut bits, &free, pr(0, 0));
        // 2 MiB aligned, 2 MiB long: only 0x200000 fits.
        assert_eq!(a.alloc_contiguous(512, 512), Some(Mfn(0x200)));
        assert_eq!(a.alloc_contiguous(512, 512), None);
        for f in 0x200..0x400 {
            assert!(!a.is_free(Mfn(f)));
        }
        assert_eq!(a.alloc_contiguous(4, 4), Some(Mfn(4)));
        assert_eq!(a.alloc(), Some(Mfn(1)));
        // A used frame in the middle of the first candidate run.
        a.claim(Mfn(0xc)).unwrap();
        assert_eq!(a.alloc_contiguous(8, 8), Some(Mfn(0x10)));
        assert_eq!(a.alloc_contiguous(3, 0), Some(Mfn(8)));
        // Non-power-of-two alignment.
        assert_eq!(a.alloc_contiguous(1, 3), Some(Mfn(3)));
        assert_eq!(a.alloc_contiguous(0, 1), None);
        assert_eq!(a.alloc_contiguous(u64::MAX, 1), None);
        // Runs spanning whole words are checked 64 frames at a time.
        let total_free = a.free_frames();
        assert!(a.alloc_contiguous(total_free + 1, 1).is_none());
        a.free_contiguous(Mfn(0x200), 512).unwrap();
        assert_eq!(a.alloc_contiguous(600, 64), Some(Mfn(0x40)));
        assert_eq!(a.alloc_contiguous(300, 64), Some(Mfn(0x2c0)));
        assert_eq!(a.alloc_contiguous(300, 64), None);
    }

    #[test]
    fn claim_specific_frames() {
        let free = [pr(0x8000, 0x10000)];
        let mut bits = storage(&free);
        let mut a = FrameAllocator::new(&mut bits, &free, pr(0, 0));
        assert_eq!(a.claim(Mfn(8)), Ok(()));
        assert_eq!(a.claim(Mfn(8)), Err(FrameError::NotFree(Mfn(8))));
        assert_eq!(a.claim(Mfn(7)), Err(FrameError::OutOfRange(Mfn(7))));
        assert_eq!(a.alloc(), Some(Mfn(9)));
        assert_eq!(a.free_frames(), 6);
    }

    #[test]
    fn alloc_below_limits() {
        let free = [pr(0x1000, 0x3000), pr(0x100000, 0x102000)];
        let mut bits = storage(&free);
        let mut a = FrameAllocator::new(&mut bits, &free, pr(0, 0));
        assert_eq!(a.alloc_below(0x1000), None);
        assert_eq!(a.alloc_below(0x1fff), None); // frame 1 ends at 0x2000
        assert_eq!(a.alloc_below(0x2000), Some(Mfn(1)));
        assert_eq!(a.alloc_below(0x100000), Some(Mfn(2)));
        assert_eq!(a.alloc_below(0x100000), None);
        assert_eq!(a.alloc(), Some(Mfn(0x100)));
        assert_eq!(a.alloc_below(u64::MAX), Some(Mfn(0x101)));
    }

    #[test]
    fn storage_too_small_clips() {
        let free = [pr(0, 0x100000)];
        let mut bits = vec![0u64; 2]; // covers 64 frames
        let mut a = FrameAllocator::new(&mut bits, &free, pr(0, 0));
        assert_eq!(a.total_frames(), 64);
        assert_eq!(drain(&mut a).len(), 64);
        assert_eq!(a.free(Mfn(64)), Err(FrameError::OutOfRange(Mfn(64))));
        let mut none: [u64; 0] = [];
        let mut empty = FrameAllocator::new(&mut none, &free, pr(0, 0));
        assert_eq!(empty.total_frames(), 0);
        assert_eq!(empty.alloc(), None);
        assert_eq!(empty.free(Mfn(0)), Err(FrameError::OutOfRange(Mfn(0))));
    }

    /// The whole boot flow: map, free ranges, bitmap placed inside RAM.
    fn boot_flow(map: &MemoryMap, kernel: PhysRange) -> (Vec<PhysRange>, PhysRange, u64, Vec<Mfn>) {
        let mut ranges = [PhysRange::new(0, 0); 32];
        let n = map.free_ranges(&[kernel], MIB, &mut ranges);
        let ranges = ranges[..n].to_vec();
        let words = bitmap_words(managed_end(&ranges));
        let bytes = u64::try_from(words).unwrap() * 8;
        let place = place_bitmap(&ranges, bytes, 4 * GIB).expect("bitmap fits");
        let mut bits = vec![0u64; words];
        let mut a = FrameAllocator::new(&mut bits, &ranges, place);
        let total = a.total_frames();
        let got = drain(&mut a);
        assert_eq!(got.len() as u64, total);
        assert_eq!(a.free_frames(), 0);
        let distinct: HashSet<Mfn> = got.iter().copied().collect();
        assert_eq!(distinct.len(), got.len());
        for mfn in &got {
            assert!(in_any(&ranges, *mfn), "{mfn} outside free RAM");
            assert!(!place.contains(mfn.addr()), "{mfn} inside the bitmap");
            assert!(
                !kernel.page_outer().contains(mfn.addr()),
                "{mfn} inside the kernel"
            );
        }
        // Free everything back, in reverse; counts come back exactly.
        for mfn in got.iter().rev() {
            a.free(*mfn).unwrap();
        }
        assert_eq!(a.free_frames(), total);
        assert_eq!(a.free(got[0]), Err(FrameError::DoubleFree(got[0])));
        (ranges, place, total, got)
    }

    #[test]
    fn q35_5_gib_with_pci_hole() {
        let mut map = MemoryMap::new();
        for (start, len, kind) in [
            (0, 0x9fc00, RegionKind::Usable),
            (0x9fc00, 0x400, RegionKind::Reserved),
            (0xf0000, 0x10000, RegionKind::Reserved),
            (0x100000, 0x7ffe0000 - 0x100000, RegionKind::Usable),
            (0x7ffe0000, 0x20000, RegionKind::Reserved),
            (0xfeffc000, 0x4000, RegionKind::Reserved),
            (0xfffc0000, 0x40000, RegionKind::Reserved),
            (0x1_0000_0000, 0x8000_0000, RegionKind::Usable),
        ] {
            map.add(start, len, kind).unwrap();
        }
        map.normalize();
        let kernel = pr(0x200000, 0x4c3210);
        let (ranges, place, total, got) = boot_flow(&map, kernel);
        // 6 GiB of span -> 2 x 192 KiB of bitmaps, placed right after 1 MiB.
        assert_eq!(place, pr(MIB, MIB + 384 * 1024));
        let ram = ranges.iter().map(PhysRange::len).sum::<u64>();
        assert_eq!(total, ram / PAGE_SIZE - 96);
        // Nothing in the PCI hole.
        assert!(
            !got.iter()
                .any(|m| (0x7ffe_0000..0x1_0000_0000).contains(&m.addr()))
        );
        assert_eq!(got.last().map(|m| m.addr()), Some(0x1_8000_0000 - PAGE_SIZE));
    }

    #[test]
    fn microvm_64_mib() {
        let mut map = MemoryMap::new();
        map.add(0, 0x9fc00, RegionKind::Usable).unwrap();
        map.add(0x100000, 63 * MIB, RegionKind::Usable).unwrap();
        map.add(0xfec00000, 0x1000, RegionKind::Reserved).unwrap();
        map.normalize();
        let kernel = pr(MIB, 0x2f0000);
        let (_, place, total, _) = boot_flow(&map, kernel);
        // 64 MiB -> 16384 frames -> 2 x 2 KiB of bitmap -> one page.
        assert_eq!(place, pr(0x2f0000, 0x2f1000));
        assert_eq!(total, (64 * MIB - 0x2f0000) / PAGE_SIZE - 1);
    }

    #[test]
    fn alloc_then_free_interleaved_keeps_counts() {
        let free = [pr(0, 0x200000)];
        let mut bits = storage(&free);
        let mut a = FrameAllocator::new(&mut bits, &free, pr(0, 0));
        let mut held = Vec::new();
        for i in 0..400u64 {
            if i % 3 == 2 {
                let m: Mfn = held.remove(held.len() / 2);
                a.free(m).unwrap();
            } else {
                held.push(a.alloc().unwrap());
            }
            assert_eq!(a.free_frames() + held.len() as u64, 512);
        }
        let distinct: HashSet<Mfn> = held.iter().copied().collect();
        assert_eq!(distinct.len(), held.len());
    }
}
