//! The hypervisor's side of a domain's shared-info page (dom0-abi
//! `SharedInfo`): event pending and mask bits, the per-vCPU upcall flags and
//! time records, the wall clock and the toolstack's requests. The guest can
//! write the page at any time, so every access is an atomic on the word the
//! ABI defines; nothing read from it is trusted beyond its bits.
#![allow(unsafe_code)]

use crate::arch::phys::{atomic_u8, atomic_u32, atomic_u64};
use crate::mm::frame::Mfn;
use core::mem::offset_of;
use core::sync::atomic::Ordering::SeqCst;
use dom0_abi::{SharedInfo, VcpuInfo, VcpuTimeInfo};

const VCPU_INFO: u64 = offset_of!(SharedInfo, vcpu_info) as u64;
const VCPU_INFO_SIZE: u64 = core::mem::size_of::<VcpuInfo>() as u64;
const UPCALL_PENDING: u64 = offset_of!(VcpuInfo, evtchn_upcall_pending) as u64;
const UPCALL_MASK: u64 = offset_of!(VcpuInfo, evtchn_upcall_mask) as u64;
const PENDING_SEL: u64 = offset_of!(VcpuInfo, evtchn_pending_sel) as u64;
const TIME: u64 = offset_of!(VcpuInfo, time) as u64;
const PENDING: u64 = offset_of!(SharedInfo, evtchn_pending) as u64;
const MASK: u64 = offset_of!(SharedInfo, evtchn_mask) as u64;

/// A domain's shared-info frame. Valid while the domain exists (it owns
/// the frame and frees it only when destroyed).
#[derive(Clone, Copy, Debug)]
pub struct Shared {
    base: u64,
}

impl Shared {
    /// The shared-info page in frame `mfn`.
    pub fn new(mfn: Mfn) -> Self {
        Shared { base: mfn.addr() }
    }

    fn u64_at(&self, off: u64) -> &'static core::sync::atomic::AtomicU64 {
        // SAFETY: every offset used here is an 8-aligned field inside the
        // 4 KiB page (asserted by dom0-abi's layout), and the frame lives as
        // long as the domain, whose lock the callers hold.
        unsafe { atomic_u64(self.base + off) }
    }

    fn u32_at(&self, off: u64) -> &'static core::sync::atomic::AtomicU32 {
        // SAFETY: as for `u64_at`, 4-aligned.
        unsafe { atomic_u32(self.base + off) }
    }

    fn u8_at(&self, off: u64) -> &'static core::sync::atomic::AtomicU8 {
        // SAFETY: as for `u64_at`.
        unsafe { atomic_u8(self.base + off) }
    }

    fn vcpu(v: usize) -> u64 {
        VCPU_INFO + v as u64 * VCPU_INFO_SIZE
    }

    /// Set `port`'s pending bit; whether it was already set.
    pub fn test_and_set_pending(&self, port: u32) -> bool {
        let bit = 1u64 << (port % 64);
        self.u64_at(PENDING + u64::from(port / 64) * 8)
            .fetch_or(bit, SeqCst)
            & bit
            != 0
    }

    /// Whether `port` is pending.
    pub fn is_pending(&self, port: u32) -> bool {
        self.u64_at(PENDING + u64::from(port / 64) * 8).load(SeqCst) & (1 << (port % 64)) != 0
    }

    /// Clear `port`'s pending bit.
    pub fn clear_pending(&self, port: u32) {
        self.u64_at(PENDING + u64::from(port / 64) * 8)
            .fetch_and(!(1 << (port % 64)), SeqCst);
    }

    /// Whether the guest masked `port`.
    pub fn is_masked(&self, port: u32) -> bool {
        self.u64_at(MASK + u64::from(port / 64) * 8).load(SeqCst) & (1 << (port % 64)) != 0
    }

    /// Clear `port`'s mask bit.
    pub fn unmask(&self, port: u32) {
        self.u64_at(MASK + u64::from(port / 64) * 8)
            .fetch_and(!(1 << (port % 64)), SeqCst);
    }

    /// Flag word `port / 64` in vCPU `v`'s selector and raise its upcall.
    pub fn mark_upcall(&self, v: usize, port: u32) {
        self.u64_at(Self::vcpu(v) + PENDING_SEL)
            .fetch_or(1 << (port / 64), SeqCst);
        self.u8_at(Self::vcpu(v) + UPCALL_PENDING).store(1, SeqCst);
    }

    /// Whether vCPU `v` has an upcall pending.
    pub fn upcall_pending(&self, v: usize) -> bool {
        self.u8_at(Self::vcpu(v) + UPCALL_PENDING).load(SeqCst) != 0
    }

    /// Whether vCPU `v` masked upcalls.
    pub fn upcall_masked(&self, v: usize) -> bool {
        self.u8_at(Self::vcpu(v) + UPCALL_MASK).load(SeqCst) != 0
    }

    /// Mask vCPU `v`'s upcalls (done when one is delivered).
    pub fn mask_upcall(&self, v: usize) {
        self.u8_at(Self::vcpu(v) + UPCALL_MASK).store(1, SeqCst);
    }

    /// Write vCPU `v`'s time record under its seqlock.
    pub fn write_time(&self, v: usize, t: &VcpuTimeInfo) {
        let base = Self::vcpu(v) + TIME;
        let version = self.u32_at(base);
        let odd = version.load(SeqCst).wrapping_add(1) | 1;
        version.store(odd, SeqCst);
        self.u64_at(base + offset_of!(VcpuTimeInfo, tsc_timestamp) as u64)
            .store(t.tsc_timestamp, SeqCst);
        self.u64_at(base + offset_of!(VcpuTimeInfo, system_time) as u64)
            .store(t.system_time, SeqCst);
        // mul (u32) at 24, shift (i8) at 28, flags at 29: one 8-byte word at 24.
        let word = u64::from(t.tsc_to_system_mul) | (u64::from(t.tsc_shift as u8) << 32);
        self.u64_at(base + 24).store(word, SeqCst);
        version.store(odd.wrapping_add(1), SeqCst);
    }

    /// Write the wall clock (time of system time 0) under its seqlock.
    pub fn write_wallclock(&self, sec: u32, nsec: u32) {
        let version = self.u32_at(offset_of!(SharedInfo, wc_version) as u64);
        let odd = version.load(SeqCst).wrapping_add(1) | 1;
        version.store(odd, SeqCst);
        self.u32_at(offset_of!(SharedInfo, wc_sec) as u64)
            .store(sec, SeqCst);
        self.u32_at(offset_of!(SharedInfo, wc_nsec) as u64)
            .store(nsec, SeqCst);
        version.store(odd.wrapping_add(1), SeqCst);
    }

    /// Post a shutdown request (1 + reason).
    pub fn request_shutdown(&self, code: u32) {
        self.u32_at(offset_of!(SharedInfo, shutdown_request) as u64)
            .store(code, SeqCst);
    }

    /// Post a memory target in pages.
    pub fn set_mem_target(&self, pages: u64) {
        self.u64_at(offset_of!(SharedInfo, mem_target_pages) as u64)
            .store(pages, SeqCst);
    }
}
