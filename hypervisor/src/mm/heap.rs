//! The hypervisor heap: `linked_list_allocator` over a contiguous block of
//! frames reached through the direct map, behind a spin lock. Its size is
//! fixed at boot (an eighth of free memory, at most 8 MiB).
#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};
use linked_list_allocator::Heap;
use spin::Mutex;

/// Largest heap the hypervisor sets up.
pub const MAX_HEAP_BYTES: u64 = 8 << 20;

/// The global allocator.
pub struct LockedHeap(Mutex<Heap>);

#[cfg(not(test))]
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

/// Hand the heap its memory.
///
/// # Safety
/// `[start, start + size)` must be mapped read-write, unused by anything
/// else, and stay so forever; call once.
#[cfg(not(test))]
pub unsafe fn init(start: u64, size: u64) {
    // SAFETY: upheld by the caller.
    unsafe {
        HEAP.0
            .lock()
            .init(start as *mut u8, crate::mm::layout::usize_from(size))
    };
}

/// Heap usage: (used bytes, free bytes).
#[cfg(not(test))]
pub fn usage() -> (usize, usize) {
    let heap = HEAP.0.lock();
    (heap.used(), heap.free())
}
