//! The guest heap (`alloc` works in every guest): `linked_list_allocator`
//! over the free frames below the frame pool, reached through the physmap,
//! behind a spin lock (as the hypervisor's `mm/heap.rs` does). Built for the
//! guest target only; host builds use the system allocator. An allocation
//! failure goes through the default handler, a panic, hence `Crash`.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};
use linked_list_allocator::Heap;
use spin::Mutex;

/// The global allocator.
pub struct LockedHeap(Mutex<Heap>);

#[global_allocator]
static HEAP: LockedHeap = LockedHeap(Mutex::new(Heap::empty()));

// SAFETY: allocation is delegated to `linked_list_allocator`, serialised by
// the lock; a failed allocation returns null as `GlobalAlloc` requires.
unsafe impl GlobalAlloc for LockedHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .lock()
            .allocate_first_fit(layout)
            .map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: `GlobalAlloc` callers pass back a pointer this heap
            // returned with the same layout.
            unsafe { self.0.lock().deallocate(p, layout) };
        }
    }
}

/// Smallest heap worth setting up (the allocator needs a few words of
/// metadata; anything below a page is useless anyway).
const MIN_HEAP_BYTES: u64 = 4096;

/// Hand the heap its memory; a range smaller than a page leaves the heap
/// empty (every allocation then fails).
///
/// # Safety
/// `[start, start + size)` must be mapped read-write, unused by anything
/// else, and stay so forever; call once.
pub unsafe fn init(start: u64, size: u64) {
    if size < MIN_HEAP_BYTES {
        return;
    }
    let Ok(size) = usize::try_from(size) else { return };
    // SAFETY: upheld by the caller; the size is above the allocator's
    // minimum.
    unsafe { HEAP.0.lock().init(start as *mut u8, size) };
}
