//! The words of the shared-info page (dom0-abi `SharedInfo`) the
//! benchmarks poll and clear directly: vCPU 0's upcall flag, mask and
//! selector, and the event pending bitmap. The guest SDK has an event layer
//! of its own; the benchmarks stay below it on purpose, so that what they
//! time is the hypervisor's path plus a handful of instructions, and so
//! that an SDK upcall handler cannot consume the events they wait for
//! (every waiting role masks upcalls first).

use core::mem::offset_of;
use core::sync::atomic::Ordering::SeqCst;
use core::sync::atomic::{AtomicU8, AtomicU64};
use oxen_guest_sdk::dom0_abi::{EVTCHN_PORTS, PAGE_SIZE, SharedInfo, VcpuInfo};
use oxen_guest_sdk::start_info;

/// The shared-info page of this domain.
#[derive(Clone, Copy)]
pub struct Page {
    base: u64,
}

/// Offset of vCPU 0's `VcpuInfo` (the benchmarks run on vCPU 0).
const VCPU0: usize = offset_of!(SharedInfo, vcpu_info);

impl Page {
    /// The page the builder mapped; `None` if `start_info` names no
    /// usable address.
    pub fn get() -> Option<Page> {
        let base = start_info().shared_info_va;
        (base != 0 && base.is_multiple_of(PAGE_SIZE)).then_some(Page { base })
    }

    fn byte(self, offset: usize) -> &'static AtomicU8 {
        // SAFETY: `offset` is a field offset inside the 4 KiB page, which
        // the builder maps read-write for the domain's whole life
        // (dom0_abi::GUEST_SHARED_INFO_VA); the hypervisor updates the page
        // with atomics too, so an atomic view of the byte is sound.
        unsafe { AtomicU8::from_ptr((self.base as *mut u8).wrapping_add(offset)) }
    }

    fn word(self, offset: usize) -> &'static AtomicU64 {
        debug_assert!(offset.is_multiple_of(8));
        // SAFETY: as for `byte`; every offset passed is an 8-aligned u64
        // field (dom0-abi's layout asserts), so the pointer is aligned.
        unsafe { AtomicU64::from_ptr((self.base as *mut u8).wrapping_add(offset).cast()) }
    }

    /// vCPU 0's `evtchn_upcall_pending`.
    pub fn upcall_pending(self) -> &'static AtomicU8 {
        self.byte(VCPU0 + offset_of!(VcpuInfo, evtchn_upcall_pending))
    }

    /// vCPU 0's `evtchn_upcall_mask`.
    pub fn upcall_mask(self) -> &'static AtomicU8 {
        self.byte(VCPU0 + offset_of!(VcpuInfo, evtchn_upcall_mask))
    }

    /// vCPU 0's `evtchn_pending_sel`.
    pub fn pending_sel(self) -> &'static AtomicU64 {
        self.word(VCPU0 + offset_of!(VcpuInfo, evtchn_pending_sel))
    }

    /// Word `w` of the pending bitmap.
    fn pending_word(self, w: usize) -> &'static AtomicU64 {
        self.word(offset_of!(SharedInfo, evtchn_pending) + (w % (EVTCHN_PORTS / 64)) * 8)
    }

    /// Clear `port`'s pending bit; whether it was set.
    pub fn take_pending(self, port: u32) -> bool {
        let bit = 1u64 << (port % 64);
        self.pending_word(port as usize / 64).fetch_and(!bit, SeqCst) & bit != 0
    }

    /// Clear the upcall flag, the selector and every pending bit the
    /// selector names: what an upcall handler does, minus the handlers.
    pub fn drain(self) {
        self.upcall_pending().store(0, SeqCst);
        let mut sel = self.pending_sel().swap(0, SeqCst);
        while sel != 0 {
            let w = sel.trailing_zeros() as usize;
            sel &= sel - 1;
            self.pending_word(w).store(0, SeqCst);
        }
    }
}
