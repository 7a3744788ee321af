//! Every property, by name: what `prop=NAME` selects. xtask keeps the
//! same list, with a group for each (`xtask/src/props.rs`), and a unit test
//! there reads this file to check that the two agree: keep one
//! `Prop::success("name", ..)` or `Prop::crash("name", ..)` per entry.

use crate::framework::Prop;
use crate::{crash, evtchn, fpu, hvmem, hypercalls, isolation, mmu, privileged, storm, traps};

/// The registry.
pub const PROPS: &[Prop] = &[
    // Privileged instructions.
    Prop::success("priv-cli", privileged::cli),
    Prop::success("priv-sti", privileged::sti),
    Prop::success("priv-hlt", privileged::hlt),
    Prop::success("priv-read-cr3", privileged::read_cr3),
    Prop::success("priv-write-cr3", privileged::write_cr3),
    Prop::success("priv-read-cr0", privileged::read_cr0),
    Prop::success("priv-write-cr0", privileged::write_cr0),
    Prop::success("priv-read-dr7", privileged::read_dr7),
    Prop::success("priv-wrmsr", privileged::wrmsr),
    Prop::success("priv-rdmsr", privileged::rdmsr),
    Prop::success("priv-in", privileged::port_in),
    Prop::success("priv-out", privileged::port_out),
    Prop::success("priv-lgdt", privileged::lgdt),
    Prop::success("priv-lidt", privileged::lidt),
    Prop::success("priv-ltr", privileged::ltr),
    Prop::success("priv-invlpg", privileged::invlpg),
    Prop::success("priv-swapgs", privileged::swapgs),
    Prop::success("priv-wbinvd", privileged::wbinvd),
    Prop::success("priv-clts", privileged::clts),
    Prop::success("priv-xsetbv", privileged::xsetbv),
    Prop::success("iret-iopl", privileged::iret_iopl),
    // The hypervisor's memory.
    Prop::success("hv-image-read", hvmem::image_read),
    Prop::success("hv-image-write", hvmem::image_write),
    Prop::success("hv-image-exec", hvmem::image_exec),
    Prop::success("hv-directmap-read", hvmem::directmap_read),
    Prop::success("hv-directmap-write", hvmem::directmap_write),
    Prop::success("hv-directmap-exec", hvmem::directmap_exec),
    Prop::success("noncanonical-access", hvmem::noncanonical),
    // Trap delivery.
    Prop::success("trap-frame", traps::frame),
    Prop::success("single-step", traps::single_step),
    // Entry state a guest controls.
    Prop::success("entry-df-fault", traps::df_fault),
    Prop::success("entry-df-interrupt", traps::df_interrupt),
    Prop::crash("entry-df-crash", traps::df_crash),
    // The hypercall boundary.
    Prop::success("efault-upper-half", hypercalls::efault_upper_half),
    Prop::success("efault-noncanonical", hypercalls::efault_noncanonical),
    Prop::success("efault-straddle", hypercalls::efault_straddle),
    Prop::success("efault-unmapped", hypercalls::efault_unmapped),
    Prop::success("efault-readonly", hypercalls::efault_readonly),
    Prop::success("enosys", hypercalls::enosys),
    Prop::success("einval-mmu", hypercalls::einval_mmu),
    Prop::success("einval-trap-table", hypercalls::einval_trap_table),
    Prop::success("einval-callbacks", hypercalls::einval_callbacks),
    Prop::success("einval-shutdown", hypercalls::einval_shutdown),
    Prop::success("counts-bounded", hypercalls::counts_bounded),
    // Memory and mappings.
    Prop::success("mmu-unowned-gfn", mmu::unowned_gfn),
    Prop::success("mmu-beyond-max", mmu::beyond_max),
    Prop::success("mmu-wx", mmu::wx),
    Prop::success("mmu-overlap", mmu::overlap),
    Prop::success("mmu-bad-va", mmu::bad_va),
    Prop::success("mmu-existing", mmu::existing),
    Prop::success("memory-decrease-bounds", mmu::decrease_bounds),
    // Other domains.
    Prop::success("domctl-eperm", isolation::domctl_eperm),
    Prop::success("console-ring-eperm", isolation::console_ring_eperm),
    Prop::success("foreign-frame-eperm", isolation::foreign_frame_eperm),
    Prop::success("foreign-space-eperm", isolation::foreign_space_eperm),
    // Event channels.
    Prop::success("evtchn-missing-domain", evtchn::missing_domain),
    Prop::success("evtchn-port-range", evtchn::port_range),
    Prop::success("evtchn-virq-twice", evtchn::virq_twice),
    Prop::success("evtchn-send-closed", evtchn::send_closed),
    Prop::success("evtchn-peer-closed", evtchn::peer_closed),
    Prop::success("evtchn-dom0-virqs", evtchn::dom0_virqs),
    Prop::success("evtchn-not-offered", evtchn::not_offered),
    Prop::success("evtchn-exhaust", evtchn::exhaust),
    Prop::success("evtchn-poll-args", evtchn::poll_args),
    // Contexts that cannot be resumed or delivered to.
    Prop::crash("crash-no-handler", crash::no_handler),
    Prop::crash("crash-iret-noncanonical-rip", crash::iret_noncanonical_rip),
    Prop::crash("crash-iret-upper-rip", crash::iret_upper_rip),
    Prop::crash("crash-iret-upper-rsp", crash::iret_upper_rsp),
    Prop::crash("crash-iret-unmapped-frame", crash::iret_unmapped_frame),
    Prop::crash("crash-iret-straddle", crash::iret_straddle),
    Prop::crash("crash-handler-unmapped", crash::handler_unmapped),
    Prop::crash("crash-pf-recursion", crash::pf_handler_recursion),
    Prop::crash("crash-stack-unmapped", crash::stack_unmapped),
    Prop::crash("crash-stack-upper-half", crash::stack_upper_half),
    Prop::crash("crash-stack-noncanonical", crash::stack_noncanonical),
    Prop::crash("crash-stack-readonly", crash::stack_readonly),
    Prop::crash("crash-stack-overflow", crash::stack_overflow),
    Prop::crash("crash-upcall-bad-stack", crash::upcall_bad_stack),
    Prop::crash("crash-callback-unmapped", crash::callback_unmapped),
    Prop::crash("crash-syscall-at-top", crash::syscall_at_top),
    // FPU state between domains.
    Prop::success("fpu-leak-writer", fpu::writer),
    Prop::success("fpu-leak-reader", fpu::reader),
    // Starvation.
    Prop::success("storm-timer", storm::timer),
    Prop::success("storm-event", storm::event),
    Prop::success("liveness", storm::liveness),
];

/// The index of the property called `name`.
pub fn find(name: &str) -> Option<usize> {
    PROPS.iter().position(|p| p.name == name)
}
