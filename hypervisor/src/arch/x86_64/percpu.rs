//! Per-CPU data, reached through the GS base while the hypervisor runs
//! (guests run with their own GS base; `swapgs` switches on every entry and
//! exit). The entry stubs address fields by the byte offsets asserted below.

use core::cell::UnsafeCell;
use core::mem::offset_of;
use x86_64::VirtAddr;
use x86_64::registers::model_specific::{GsBase, KernelGsBase};

/// The per-CPU block. `repr(C)`: the assembly in `guest.rs` uses the offsets.
#[repr(C)]
pub struct PerCpu {
    /// Its own address (for `gs:0` loads).
    self_ptr: u64,
    /// Hypervisor stack pointer saved by `enter_guest`; exits resume there.
    hv_rsp: u64,
    /// The guest's `rsp` while the syscall stub builds the frame.
    scratch: u64,
    /// End of the current vCPU's register block: syscall frames are pushed
    /// downwards from here, as the CPU does for exceptions via TSS.RSP0.
    regs_end: u64,
    /// This CPU's index.
    cpu: u64,
}

/// Byte offset of `hv_rsp`.
pub const PCPU_HV_RSP: usize = offset_of!(PerCpu, hv_rsp);
/// Byte offset of `scratch`.
pub const PCPU_SCRATCH: usize = offset_of!(PerCpu, scratch);
/// Byte offset of `regs_end`.
pub const PCPU_REGS_END: usize = offset_of!(PerCpu, regs_end);
const _: () = assert!(PCPU_HV_RSP == 8 && PCPU_SCRATCH == 16 && PCPU_REGS_END == 24);

struct PerCpuCell(UnsafeCell<PerCpu>);
// SAFETY: each CPU touches only its own block (one CPU until SMP lands).
unsafe impl Sync for PerCpuCell {}

static BSP: PerCpuCell = PerCpuCell(UnsafeCell::new(PerCpu {
    self_ptr: 0,
    hv_rsp: 0,
    scratch: 0,
    regs_end: 0,
    cpu: 0,
}));

/// Point GS at the boot CPU's block. Call once, before any guest runs.
pub fn init_bsp() {
    let block = BSP.0.get();
    // SAFETY: the block is a static; only this CPU uses it, and nothing else
    // holds a reference while it is initialised.
    unsafe { (*block).self_ptr = block as u64 };
    GsBase::write(VirtAddr::from_ptr(block));
    KernelGsBase::write(VirtAddr::new(0));
}

/// Record where the current vCPU's register block ends (syscall frames).
pub fn set_regs_end(end: u64) {
    // SAFETY: a plain store to this CPU's own block; the entry stubs only read
    // it while this CPU runs a guest, never concurrently with this write.
    unsafe { (*BSP.0.get()).regs_end = end };
}
