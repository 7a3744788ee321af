//! The GDT and the TSS. The GDT holds the kernel and user segments in the
//! order `syscall`/`sysret` need (AMD APM Vol.2 6.1.1: STAR's user base + 8
//! is the user SS, + 16 the 64-bit user CS) and the TSS, whose IST slots give
//! NMI, double fault and machine check known-good stacks (Intel SDM Vol.3A
//! 7.14.5).

use core::cell::UnsafeCell;
use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, FS, GS, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::registers::segmentation::SegmentSelector;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use x86_64::structures::tss::TaskStateSegment;

/// IST slot (0-based, as the TSS array indexes it) for NMI.
pub const IST_NMI: usize = 0;
/// IST slot for double fault.
pub const IST_DOUBLE_FAULT: usize = 1;
/// IST slot for machine check.
pub const IST_MACHINE_CHECK: usize = 2;
/// How many IST stacks the hypervisor uses.
pub const IST_COUNT: usize = 3;
/// Ring-0 code selector (GDT slot 1).
pub const KERNEL_CS: u16 = 0x08;
/// Ring-3 data selector with RPL 3 (GDT slot 3): what `sysret` loads into SS.
pub const USER_SS: u16 = 0x18 | 3;
/// Ring-3 64-bit code selector with RPL 3 (GDT slot 4): `sysret`'s CS.
pub const USER_CS: u16 = 0x20 | 3;

/// The selectors of the loaded GDT.
#[derive(Clone, Copy, Debug)]
pub struct Selectors {
    /// Ring-0 64-bit code.
    pub kernel_code: SegmentSelector,
    /// Ring-0 data.
    pub kernel_data: SegmentSelector,
    /// Ring-3 data (sysret SS).
    pub user_data: SegmentSelector,
    /// Ring-3 64-bit code (sysret CS).
    pub user_code: SegmentSelector,
    /// The TSS.
    pub tss: SegmentSelector,
}

/// The boot CPU's TSS. RSP0 changes with every vCPU switch, so it lives in
/// an `UnsafeCell`; the CPU reads it only on a ring-3 to ring-0 transition.
struct TssCell(UnsafeCell<TaskStateSegment>);
// SAFETY: one CPU uses this TSS and writes RSP0 only while no guest runs.
unsafe impl Sync for TssCell {}
static TSS: TssCell = TssCell(UnsafeCell::new(TaskStateSegment::new()));
static TSS_READY: Once<()> = Once::new();
static GDT: Once<(GlobalDescriptorTable, Selectors)> = Once::new();

/// Build and load the GDT and TSS of the boot CPU. `ist_tops` are the tops
/// of the IST stacks, `rsp0` the stack for interrupts taken from ring 3.
pub fn init(ist_tops: [u64; IST_COUNT], rsp0: u64) -> Selectors {
    TSS_READY.call_once(|| {
        // SAFETY: first and only initialisation, before the TSS is loaded.
        let tss = unsafe { &mut *TSS.0.get() };
        for (slot, top) in ist_tops.iter().enumerate() {
            tss.interrupt_stack_table[slot] = VirtAddr::new(*top);
        }
        tss.privilege_stack_table[0] = VirtAddr::new(rsp0);
    });
    // SAFETY: the TSS is a static that lives forever; from here on it is
    // only written through `set_rsp0`, field by field.
    let tss: &'static TaskStateSegment = unsafe { &*TSS.0.get() };
    let (gdt, selectors) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let kernel_code = gdt.append(Descriptor::kernel_code_segment());
        let kernel_data = gdt.append(Descriptor::kernel_data_segment());
        let user_data = gdt.append(Descriptor::user_data_segment());
        let user_code = gdt.append(Descriptor::user_code_segment());
        let tss = gdt.append(Descriptor::tss_segment(tss));
        (
            gdt,
            Selectors {
                kernel_code,
                kernel_data,
                user_data,
                user_code,
                tss,
            },
        )
    });
    gdt.load();
    let null = SegmentSelector(0);
    // SAFETY: the selectors index the GDT just loaded, whose descriptors are
    // the flat 64-bit kernel code and data segments and a valid TSS that
    // lives forever in a `static`.
    unsafe {
        CS::set_reg(selectors.kernel_code);
        SS::set_reg(selectors.kernel_data);
        DS::set_reg(null);
        ES::set_reg(null);
        FS::set_reg(null);
        GS::set_reg(null);
        load_tss(selectors.tss);
    }
    debug_assert_eq!(selectors.kernel_code.0, KERNEL_CS);
    debug_assert_eq!(selectors.user_data.0, USER_SS);
    debug_assert_eq!(selectors.user_code.0, USER_CS);
    *selectors
}

/// Set the stack the CPU switches to when a guest enters ring 0.
pub fn set_rsp0(top: u64) {
    // SAFETY: a single aligned store to this CPU's TSS while no guest runs;
    // the CPU only reads the field on a privilege change.
    unsafe { (*TSS.0.get()).privilege_stack_table[0] = VirtAddr::new(top) };
}
