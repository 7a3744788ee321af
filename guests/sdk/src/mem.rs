//! Guest memory: where a guest frame is in the physmap, and the frame pool.
//!
//! At entry the runtime splits the frames the builder left free,
//! `[first_free_gfn, nr_pages)`: the top [`POOL_FRAMES`] (at most half of
//! them) form the frame pool that [`alloc_frame`] hands out, whole pages
//! for `mmu_batch` experiments and the like; everything below is the
//! heap. Pool frames are never freed. Frames that `memory_increase` adds are
//! the caller's own business: the SDK does not take them.

use crate::info;
use core::ops::Range;
use dom0_abi::{GUEST_PHYSMAP_VA, PAGE_SIZE};
use spin::Mutex;

/// Most frames the pool takes from the top of the free range.
pub const POOL_FRAMES: u64 = 16;

/// The split of the free frames between the heap and the frame pool.
#[cfg_attr(not(target_os = "none"), allow(dead_code))] // Used by the guest runtime (rt.rs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MemoryPlan {
    /// Frames under the heap.
    pub heap: Range<u64>,
    /// Frames of the pool (the top of the free range).
    pub pool: Range<u64>,
}

/// Split `[first_free, nr_pages)`: the top `min(POOL_FRAMES, free / 2)`
/// frames to the pool, the rest to the heap.
#[cfg_attr(not(target_os = "none"), allow(dead_code))] // Used by the guest runtime (rt.rs).
pub(crate) fn plan(first_free: u64, nr_pages: u64) -> MemoryPlan {
    let first_free = first_free.min(nr_pages);
    let pool_frames = POOL_FRAMES.min((nr_pages - first_free) / 2);
    let split = nr_pages - pool_frames;
    MemoryPlan {
        heap: first_free..split,
        pool: split..nr_pages,
    }
}

/// Frames `[low, next)` are still free; they go out from the top.
struct FramePool {
    low: u64,
    next: u64,
}

impl FramePool {
    fn take(&mut self) -> Option<u64> {
        if self.next <= self.low {
            return None;
        }
        self.next -= 1;
        Some(self.next)
    }

    fn remaining(&self) -> u64 {
        self.next.saturating_sub(self.low)
    }
}

static POOL: Mutex<FramePool> = Mutex::new(FramePool { low: 0, next: 0 });

/// Give the pool its frames (the runtime, once, at entry).
#[cfg_attr(not(target_os = "none"), allow(dead_code))] // Used by the guest runtime (rt.rs).
pub(crate) fn init_pool(frames: Range<u64>) {
    *POOL.lock() = FramePool {
        low: frames.start,
        next: frames.end,
    };
}

/// The virtual address of guest frame `gfn` in the physmap (read-write for
/// every frame the domain owns).
pub fn frame_va(gfn: u64) -> u64 {
    let base = info::try_start_info().map_or(GUEST_PHYSMAP_VA, |si| si.physmap_va);
    gfn.saturating_mul(PAGE_SIZE).saturating_add(base)
}

/// A free frame from the top of the free range, zeroed; `None` once the
/// pool is empty. The frame is the caller's for good.
pub fn alloc_frame() -> Option<u64> {
    let gfn = POOL.lock().take()?;
    let len = usize::try_from(PAGE_SIZE).expect("a page fits in usize");
    // SAFETY: the frame is one of the domain's own, mapped read-write in
    // the physmap (dom0_abi::GUEST_PHYSMAP_VA); the runtime kept the pool
    // out of the heap and `take` hands each frame out once, so nothing else
    // refers to it.
    unsafe { core::ptr::write_bytes(frame_va(gfn) as *mut u8, 0, len) };
    Some(gfn)
}

/// Frames left in the pool.
pub fn free_frames() -> u64 {
    POOL.lock().remaining()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_keeps_the_top_for_the_pool() {
        assert_eq!(
            plan(100, 4096),
            MemoryPlan {
                heap: 100..4080,
                pool: 4080..4096
            }
        );
        assert_eq!(
            plan(100, 110),
            MemoryPlan {
                heap: 100..105,
                pool: 105..110
            }
        );
        assert_eq!(
            plan(100, 101),
            MemoryPlan {
                heap: 100..101,
                pool: 101..101
            }
        );
        assert_eq!(
            plan(100, 100),
            MemoryPlan {
                heap: 100..100,
                pool: 100..100
            }
        );
        assert_eq!(
            plan(200, 100),
            MemoryPlan {
                heap: 100..100,
                pool: 100..100
            }
        );
    }

    #[test]
    fn pool_hands_frames_out_from_the_top_once() {
        let mut p = FramePool { low: 10, next: 13 };
        assert_eq!(p.remaining(), 3);
        assert_eq!(
            [p.take(), p.take(), p.take(), p.take()],
            [Some(12), Some(11), Some(10), None]
        );
        assert_eq!(p.remaining(), 0);
    }

    #[test]
    fn physmap_addresses() {
        assert_eq!(frame_va(0), GUEST_PHYSMAP_VA);
        assert_eq!(frame_va(3), GUEST_PHYSMAP_VA + 3 * 4096);
        assert_eq!(frame_va(u64::MAX), u64::MAX);
    }
}
